// poll/ tests. The same binary runs once per backend: POLL_TEST_BACKEND=
// epoll|uring (tests/poll/meson.build registers both), and io_uring also
// with write batching (POLL_TEST_URING_BATCH=1) and with completion I/O
// (POLL_TEST_URING_IO=completion; every test then also audits the buffer
// ring at its end). Coroutines never
// REQUIRE (an exception must not unwind across a coroutine switch): they
// record what they saw and the test body asserts after sched_run().
#include <catch2/catch.hpp>

#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <functional>
#include <string>
#include <vector>

// Older sched.h spelled coro_exit with C11's _Noreturn only.
#ifndef _Noreturn
#define _Noreturn [[noreturn]]
#endif
#include "poll/poll.h"
#include "sched/sched.h"

namespace {

poll_kind test_kind()
{
	const char *env = getenv("POLL_TEST_BACKEND");
	poll_kind kind = POLL_EPOLL;
	if (env && poll_kind_parse(env, &kind) != 0)
		kind = POLL_EPOLL;
	return kind;
}

const int64_t MS = 1000000;

bool test_completion()
{
	const char *env = getenv("POLL_TEST_URING_IO");
	return env && strcmp(env, "completion") == 0;
}

// Setup failures inside coroutines are counted here (no REQUIRE there).
int g_setup_failures;
#define SETUP(expr)                                  \
	do {                                         \
		if ((expr) != 0) {                   \
			g_setup_failures++;          \
			return;                      \
		}                                    \
	} while (0)

// One scheduler + poller per test case.
struct Loop {
	Loop()
	{
		REQUIRE(sched_init(nullptr) == 0);
		char why[256];
		int rc = poll_open(test_kind(), why, sizeof(why));
		INFO("poll_open: " << rc << " " << why);
		REQUIRE(rc == 0);
		REQUIRE(poll_backend() == test_kind());
		if (getenv("POLL_TEST_URING_BATCH"))
			REQUIRE(poll_set_uring_write_batching(true) == 0);
		else if (test_kind() == POLL_EPOLL)
			REQUIRE(poll_set_uring_write_batching(true) == -ENOTSUP);
		if (test_completion()) {
			poll_uring_io_config cfg = {};
			cfg.mode = POLL_URING_IO_COMPLETION;
			rc = poll_set_uring_io(&cfg, why, sizeof(why));
			INFO("poll_set_uring_io: " << rc << " " << why);
			REQUIRE(rc == 0);
			REQUIRE(poll_uring_io_mode() == POLL_URING_IO_COMPLETION);
		}
		g_setup_failures = 0;
	}
	~Loop()
	{
		CHECK(g_setup_failures == 0);
		if (test_completion()) {
			// No buffer handed out twice or lost, whatever the test did.
			uint32_t in_ring = 0, queued = 0;
			CHECK(poll_uring_audit_buffers(&in_ring, &queued) == 0);
			CHECK(in_ring + queued == 2048);
		}
		poll_close();
		sched_shutdown();
	}
	Loop(const Loop &) = delete;
	Loop &operator=(const Loop &) = delete;
};

void trampoline(void *arg)
{
	auto *fn = static_cast<std::function<void()> *>(arg);
	(*fn)();
	delete fn;
}

void go(std::function<void()> fn)
{
	auto *heap = new std::function<void()>(std::move(fn));
	coro *c = coro_spawn(trampoline, heap, nullptr);
	if (!c) {
		delete heap;
		FAIL("coro_spawn failed");
	}
}

poll_stats stats()
{
	poll_stats s;
	poll_get_stats(&s);
	return s;
}

sockaddr_in loopback4(uint16_t port)
{
	sockaddr_in a;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons(port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return a;
}

uint16_t port_of(int fd)
{
	sockaddr_in a;
	socklen_t len = sizeof(a);
	getsockname(fd, (sockaddr *)&a, &len);
	return ntohs(a.sin_port);
}

int listen_any(poll_desc **out, int backlog = 128)
{
	sockaddr_in a = loopback4(0);
	return poll_listen((sockaddr *)&a, sizeof(a), backlog, 0, out);
}

// A connected TCP pair over loopback; call from a coroutine.
int tcp_pair(poll_desc **client, poll_desc **server)
{
	poll_desc *l;
	int rc = listen_any(&l);
	if (rc < 0)
		return rc;
	sockaddr_in a = loopback4(port_of(pd_fd(l)));
	rc = poll_connect((sockaddr *)&a, sizeof(a), 2000 * MS, client);
	if (rc == 0)
		rc = pd_accept(l, server, nullptr, nullptr);
	pd_close(l);
	return rc;
}

// A unix stream pair, no coroutine needed.
int unix_pair(poll_desc **a, poll_desc **b)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	int rc = pd_open(sv[0], a);
	if (rc == 0)
		rc = pd_open(sv[1], b);
	return rc;
}

int64_t cpu_ns()
{
	timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

// Run `child` in a fork()ed process; returns its wait status.
int in_child(const std::function<int()> &child)
{
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		// Catch2's handlers must not report a child's deliberate abort.
		signal(SIGABRT, SIG_DFL);
		signal(SIGSEGV, SIG_DFL);
		_exit(child());
	}
	int status = 0;
	REQUIRE(waitpid(pid, &status, 0) == pid);
	return status;
}

} // namespace

TEST_CASE("backend is the one asked for and counts its work", "[poll]")
{
	Loop loop;
	poll_desc *a = nullptr, *b = nullptr;
	REQUIRE(unix_pair(&a, &b) == 0);
	ssize_t got = -1;
	go([&] {
		char c = 0;
		got = pd_read(a, &c, 1);
	});
	go([&] {
		coro_sleep(5 * MS);
		pd_write_full(b, "x", 1);
	});
	sched_run();
	CHECK(got == 1);
	poll_stats s = stats();
	CHECK(s.waits >= 1);
	CHECK(s.events >= 1);
	CHECK(s.netpoll_calls >= 1);
	CHECK(s.syscalls > 0);
	if (test_kind() == POLL_URING)
		CHECK(s.submits >= 1);
	else
		CHECK(s.submits == 0);
	pd_close(a);
	pd_close(b);
}

TEST_CASE("5000 loopback connections echo at once", "[poll][scale]")
{
	Loop loop;
	const int conns = 5000, rounds = 3;
	int echoed = 0, failures = 0, accepted = 0;
	int first_error = 0;
	poll_desc *l = nullptr;
	REQUIRE(listen_any(&l, 8192) == 0);
	uint16_t port = port_of(pd_fd(l));

	go([&] {
		while (accepted < conns) {
			poll_desc *c;
			int rc = pd_accept(l, &c, nullptr, nullptr);
			if (rc < 0) {
				first_error = first_error ? first_error : rc;
				break;
			}
			accepted++;
			go([c] {
				char buf[256];
				for (;;) {
					ssize_t n = pd_read(c, buf, sizeof(buf));
					if (n <= 0 || pd_write_full(c, buf, (size_t)n) < 0)
						break;
				}
				pd_close(c);
			});
		}
		pd_close(l);
	});
	for (int i = 0; i < conns; i++) {
		go([&, i] {
			sockaddr_in a = loopback4(port);
			poll_desc *c;
			int rc = poll_connect((sockaddr *)&a, sizeof(a), 20000 * MS, &c);
			if (rc < 0) {
				failures++;
				first_error = first_error ? first_error : rc;
				return;
			}
			bool ok = true;
			for (int r = 0; r < rounds && ok; r++) {
				char out[64], in[64];
				snprintf(out, sizeof(out), "conn %d round %d", i, r);
				ok = pd_write_full(c, out, sizeof(out)) == (ssize_t)sizeof(out) &&
				     pd_read_full(c, in, sizeof(in)) == (ssize_t)sizeof(in) &&
				     memcmp(in, out, sizeof(in)) == 0;
			}
			if (ok)
				echoed++;
			else
				failures++;
			pd_close(c);
		});
	}
	sched_run();
	INFO("first error " << first_error);
	CHECK(failures == 0);
	CHECK(accepted == conns);
	CHECK(echoed == conns);
	CHECK(stats().stale_events < (uint64_t)conns); // sanity: not every event stale
}

TEST_CASE("readiness that arrives before the park is not lost", "[poll]")
{
	Loop loop;
	poll_desc *a = nullptr, *b = nullptr;
	int wait_rc = -1, watch_rc = -1;
	uint64_t waits_before = 0, waits_after = 0;
	ssize_t got = -1;
	go([&] {
		SETUP(tcp_pair(&a, &b));
		coro_sleep(5 * MS); // let the registration settle
		pd_write_full(b, "abc", 3);
		coro_sleep(20 * MS); // the poller runs: READY is left on a
		waits_before = stats().waits;
		wait_rc = pd_wait(a, PD_READ); // must not park
		waits_after = stats().waits;
		char buf[8];
		got = pd_try_read(a, buf, sizeof(buf));
		// Same for a watch: it reports 1 instead of arming.
		pd_write_full(b, "d", 1);
		coro_sleep(20 * MS);
		watch_rc = pd_watch(a, PD_READ, [](poll_desc *, void *) {}, nullptr);
		pd_close(a);
		pd_close(b);
	});
	sched_run();
	CHECK(wait_rc == 0);
	CHECK(waits_after == waits_before);
	CHECK(got == 3);
	CHECK(watch_rc == 1);
}

TEST_CASE("close wakes parked coroutines with -EBADF", "[poll]")
{
	Loop loop;
	poll_desc *a = nullptr, *b = nullptr;
	ssize_t read_rc = 0, write_rc = 0;
	bool read_done = false, write_done = false;
	go([&] {
		SETUP(tcp_pair(&a, &b));
		go([&] {
			char c;
			read_rc = pd_read(a, &c, 1);
			read_done = true;
		});
		go([&] {
			// Nobody reads b: this fills the buffers and parks.
			std::vector<char> big(64 << 20, 'x');
			write_rc = pd_write_full(a, big.data(), big.size());
			write_done = true;
		});
		coro_sleep(50 * MS);
		CHECK_FALSE(read_done);
		CHECK_FALSE(write_done);
		CHECK(pd_close(a) == 0);
		coro_sleep(5 * MS);
		pd_close(b);
	});
	sched_run();
	CHECK(read_done);
	CHECK(write_done);
	CHECK(read_rc == -EBADF);
	CHECK(write_rc == -EBADF);
}

TEST_CASE("closing really closes: the peer sees EOF", "[poll]")
{
	Loop loop;
	ssize_t got = -1;
	int64_t waited = -1;
	go([&] {
		poll_desc *a, *b;
		SETUP(tcp_pair(&a, &b));
		coro_sleep(5 * MS);
		pd_close(a);
		pd_set_deadline(b, PD_READ, sched_now() + 2000 * MS);
		int64_t t0 = sched_now();
		char c;
		got = pd_read(b, &c, 1);
		waited = sched_now() - t0;
		pd_close(b);
	});
	sched_run();
	CHECK(got == 0);
	CHECK(waited < 1000 * MS);
}

TEST_CASE("EOF queued behind data is seen after a short read", "[poll]")
{
	// Data and FIN arrive before the reader looks: one edge reports both.
	// The read after the short one must not park waiting for another edge.
	Loop loop;
	ssize_t first = -1, second = -1;
	int64_t waited = -1;
	go([&] {
		poll_desc *a, *b;
		SETUP(tcp_pair(&a, &b));
		pd_write_full(a, "abc", 3);
		pd_close(a);
		coro_sleep(20 * MS);
		char buf[100];
		first = pd_read(b, buf, sizeof(buf));
		pd_set_deadline(b, PD_READ, sched_now() + 2000 * MS);
		int64_t t0 = sched_now();
		second = pd_read(b, buf, sizeof(buf));
		waited = sched_now() - t0;
		pd_close(b);
	});
	sched_run();
	CHECK(first == 3);
	CHECK(second == 0);
	CHECK(waited < 1000 * MS);
}

TEST_CASE("read and write deadlines expire", "[poll][deadline]")
{
	Loop loop;
	ssize_t read_rc = 0, write_rc = 0;
	int64_t read_took = 0, write_took = 0;
	go([&] {
		poll_desc *a, *b;
		SETUP(tcp_pair(&a, &b));
		int64_t t0 = sched_now();
		pd_set_deadline(a, PD_READ, t0 + 50 * MS);
		char c;
		read_rc = pd_read(a, &c, 1);
		read_took = sched_now() - t0;

		// b never reads, so a blocks once the socket buffers are full.
		std::vector<char> big(64 << 20, 'y');
		t0 = sched_now();
		pd_set_deadline(a, PD_WRITE, t0 + 100 * MS);
		write_rc = pd_write_full(a, big.data(), big.size());
		write_took = sched_now() - t0;
		pd_close(a);
		pd_close(b);
	});
	sched_run();
	CHECK(read_rc == -ETIMEDOUT);
	CHECK(read_took >= 50 * MS);
	CHECK(read_took < 1000 * MS);
	CHECK(write_rc == -ETIMEDOUT);
	CHECK(write_took >= 100 * MS);
	CHECK(write_took < 2000 * MS);
	CHECK(stats().timeouts == 2);
}

TEST_CASE("a deadline moved while parked takes effect", "[poll][deadline]")
{
	Loop loop;
	ssize_t rc = 0;
	int64_t took = 0;
	go([&] {
		poll_desc *a, *b;
		SETUP(unix_pair(&a, &b));
		pd_set_deadline(a, PD_READ, sched_now() + 5000 * MS);
		go([&] {
			coro_sleep(20 * MS);
			pd_set_deadline(a, PD_READ, sched_now() + 20 * MS);
		});
		int64_t t0 = sched_now();
		char c;
		rc = pd_read(a, &c, 1);
		took = sched_now() - t0;
		// Clearing the deadline makes the fd usable again.
		pd_set_deadline(a, PD_READ, 0);
		pd_write_full(b, "z", 1);
		if (pd_read(a, &c, 1) != 1)
			rc = -999;
		pd_close(a);
		pd_close(b);
	});
	sched_run();
	CHECK(rc == -ETIMEDOUT);
	CHECK(took >= 40 * MS);
	CHECK(took < 1000 * MS);
}

TEST_CASE("a deadline already past fails at once without a syscall", "[poll][deadline]")
{
	Loop loop;
	poll_desc *a = nullptr, *b = nullptr;
	REQUIRE(unix_pair(&a, &b) == 0);
	ssize_t r1 = 0, r2 = 0, r3 = 0, r4 = 0;
	uint64_t sys_before = 0, sys_after = 0, waits_before = 0, waits_after = 0;
	go([&] {
		pd_write_full(b, "data", 4); // even with data there, no read happens
		pd_set_deadline(a, PD_BOTH, sched_now() - 1);
		poll_stats s = stats();
		sys_before = s.syscalls;
		waits_before = s.waits;
		char buf[8];
		r1 = pd_read(a, buf, sizeof(buf));
		r2 = pd_write_full(a, "x", 1);
		r3 = pd_wait(a, PD_READ);
		r4 = pd_try_read(a, buf, sizeof(buf));
		s = stats();
		sys_after = s.syscalls;
		waits_after = s.waits;
	});
	sched_run();
	CHECK(r1 == -ETIMEDOUT);
	CHECK(r2 == -ETIMEDOUT);
	CHECK(r3 == -ETIMEDOUT);
	CHECK(r4 == -ETIMEDOUT);
	CHECK(sys_after == sys_before);
	CHECK(waits_after == waits_before);
	pd_close(a);
	pd_close(b);
}

namespace {
struct StaleCase {
	poll_desc *a, *a_peer, *b, *b_peer, *c, *c_peer;
	int b_fd;
	int a_fired, c_fired, b_fired;
	int reused_fd;
};

void stale_c_watch(poll_desc *, void *arg)
{
	static_cast<StaleCase *>(arg)->c_fired++;
}

void stale_b_watch(poll_desc *, void *arg)
{
	static_cast<StaleCase *>(arg)->b_fired++;
}

// Runs first in the batch: closes b while b's event is still pending in the
// same batch (epoll array / CQ), and puts a new fd on b's number.
void stale_a_watch(poll_desc *, void *arg)
{
	auto *t = static_cast<StaleCase *>(arg);
	t->a_fired++;
	pd_close(t->b);
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return;
	if (sv[0] != t->b_fd) {
		dup2(sv[0], t->b_fd);
		close(sv[0]);
	}
	t->reused_fd = t->b_fd;
	if (pd_open(t->b_fd, &t->c) == 0 && pd_open(sv[1], &t->c_peer) == 0)
		pd_watch(t->c, PD_READ, stale_c_watch, t);
}
} // namespace

TEST_CASE("an fd closed and reused with events pending gets no stale wake-up", "[poll][stale]")
{
	Loop loop;
	StaleCase t;
	memset(&t, 0, sizeof(t));
	t.reused_fd = -1;
	uint64_t stale_before = 0, stale_after = 0;
	go([&] {
		SETUP(unix_pair(&t.a, &t.a_peer));
		SETUP(unix_pair(&t.b, &t.b_peer));
		t.b_fd = pd_fd(t.b);
		SETUP(pd_watch(t.a, PD_READ, stale_a_watch, &t));
		SETUP(pd_watch(t.b, PD_READ, stale_b_watch, &t));
		coro_sleep(10 * MS); // registrations reach the kernel
		stale_before = stats().stale_events;
		// Both become ready before the poller runs: one batch, a first.
		// Plain write(2): both land before any poll, whatever the backend.
		if (write(pd_fd(t.a_peer), "1", 1) != 1 || write(pd_fd(t.b_peer), "2", 1) != 1)
			g_setup_failures++;
		coro_sleep(50 * MS);
		stale_after = stats().stale_events;
		if (t.c) {
			pd_unwatch(t.c, PD_READ);
			pd_close(t.c);
			pd_close(t.c_peer);
		}
		pd_close(t.a);
		pd_close(t.a_peer);
		pd_close(t.b_peer);
	});
	sched_run();
	CHECK(t.a_fired == 1);
	CHECK(t.b_fired == 1); // by the close, not by its stale event
	REQUIRE(t.c != nullptr);
	CHECK(t.reused_fd == t.b_fd);
	CHECK(t.c_fired == 0);
	CHECK(stale_after > stale_before);
}

TEST_CASE("peer half-close reads as EOF while writing still works", "[poll]")
{
	Loop loop;
	ssize_t eof = -1, wrote = -1, got = -1;
	char buf[8] = {0};
	go([&] {
		poll_desc *a, *b;
		SETUP(tcp_pair(&a, &b));
		pd_write_full(b, "hi", 2);
		pd_shutdown(b, SHUT_WR);
		char tmp[8];
		if (pd_read_full(a, tmp, 2) != 2)
			return;
		eof = pd_read(a, tmp, sizeof(tmp));
		wrote = pd_write_full(a, "hello", 5);
		got = pd_read_full(b, buf, 5);
		pd_close(a);
		pd_close(b);
	});
	sched_run();
	CHECK(eof == 0);
	CHECK(wrote == 5);
	CHECK(got == 5);
	CHECK(std::string(buf, 5) == "hello");
}

TEST_CASE("connect to a closed port is refused", "[poll][connect]")
{
	Loop loop;
	int rc = 0;
	go([&] {
		int s = socket(AF_INET, SOCK_STREAM, 0);
		sockaddr_in a = loopback4(0);
		bind(s, (sockaddr *)&a, sizeof(a));
		uint16_t port = port_of(s);
		close(s); // bound, never listened: nothing there now
		a = loopback4(port);
		poll_desc *c = nullptr;
		rc = poll_connect((sockaddr *)&a, sizeof(a), 1000 * MS, &c);
	});
	sched_run();
	CHECK(rc == -ECONNREFUSED);
}

TEST_CASE("connect times out against a full backlog", "[poll][connect]")
{
	Loop loop;
	// A listener that never accepts, with the smallest backlog: once its
	// queue is full, loopback SYNs are dropped and connect hangs.
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	sockaddr_in a = loopback4(0);
	REQUIRE(bind(l, (sockaddr *)&a, sizeof(a)) == 0);
	REQUIRE(listen(l, 1) == 0);
	a = loopback4(port_of(l));
	int timed_out_at = -1, other_error = 0;
	int64_t took = 0;
	std::vector<poll_desc *> held;
	go([&] {
		for (int i = 0; i < 16 && timed_out_at < 0; i++) {
			poll_desc *c = nullptr;
			int64_t t0 = sched_now();
			int rc = poll_connect((sockaddr *)&a, sizeof(a), 200 * MS, &c);
			if (rc == 0) {
				held.push_back(c);
			} else if (rc == -ETIMEDOUT) {
				timed_out_at = i;
				took = sched_now() - t0;
			} else {
				other_error = rc;
				break;
			}
		}
		for (poll_desc *c : held)
			pd_close(c);
	});
	sched_run();
	close(l);
	CHECK(other_error == 0);
	CHECK(timed_out_at >= 1);
	CHECK(took >= 200 * MS);
	CHECK(took < 2000 * MS);
}

namespace {
struct EmfileResult {
	int accept_rc;
	uint64_t pauses_while_full;
	uint64_t pauses_total;
	int64_t cpu_while_full_ns;
	int64_t accept_after_free_ns;
	int hog_count;
};

struct EmfileCtx {
	EmfileResult r;
	std::vector<int> hogs;
	poll_desc *l;
	poll_desc *client;
	int64_t freed_at;
	bool done;
};

void emfile_acceptor(void *arg)
{
	auto *x = static_cast<EmfileCtx *>(arg);
	poll_desc *conn;
	x->r.accept_rc = pd_accept(x->l, &conn, nullptr, nullptr);
	x->r.accept_after_free_ns = sched_now() - x->freed_at;
	x->done = true;
	if (x->r.accept_rc == 0)
		pd_close(conn);
}

void emfile_main(void *arg)
{
	auto *x = static_cast<EmfileCtx *>(arg);
	if (listen_any(&x->l) < 0)
		return;
	// Take every fd, then give one back for the client socket.
	for (int i = 0; i < 128; i++) {
		int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			break;
		x->hogs.push_back(fd);
	}
	x->r.hog_count = (int)x->hogs.size();
	close(x->hogs.back());
	x->hogs.pop_back();
	sockaddr_in a = loopback4(port_of(pd_fd(x->l)));
	if (poll_connect((sockaddr *)&a, sizeof(a), 1000 * MS, &x->client) < 0)
		return;
	coro_spawn(emfile_acceptor, x, nullptr);
	int64_t cpu0 = cpu_ns();
	coro_sleep(300 * MS);
	x->r.cpu_while_full_ns = cpu_ns() - cpu0;
	x->r.pauses_while_full = stats().accept_pauses;
	x->freed_at = sched_now();
	close(x->hogs.back());
	x->hogs.pop_back();
	for (int i = 0; i < 200 && !x->done; i++)
		coro_sleep(10 * MS);
	x->r.pauses_total = stats().accept_pauses;
	pd_close(x->client);
	pd_close(x->l); // wakes the acceptor with -EBADF if it never got one
}

int emfile_child(int report_fd)
{
	EmfileCtx x;
	memset(&x.r, 0, sizeof(x.r));
	x.r.accept_rc = 1;
	x.l = x.client = nullptr;
	x.freed_at = 0;
	x.done = false;
	rlimit lim = {64, 64};
	if (setrlimit(RLIMIT_NOFILE, &lim) < 0)
		return 10;
	if (sched_init(nullptr) < 0)
		return 11;
	if (poll_open(test_kind(), nullptr, 0) < 0)
		return 12;
	coro_spawn(emfile_main, &x, nullptr);
	sched_run();
	poll_close();
	sched_shutdown();
	if (write(report_fd, &x.r, sizeof(x.r)) != (ssize_t)sizeof(x.r))
		return 13;
	return 0;
}
} // namespace

TEST_CASE("EMFILE on accept backs off without spinning and resumes", "[poll][accept]")
{
	int p[2];
	REQUIRE(pipe(p) == 0);
	int status = in_child([&] {
		close(p[0]);
		return emfile_child(p[1]);
	});
	close(p[1]);
	EmfileResult r;
	memset(&r, 0, sizeof(r));
	ssize_t n = read(p[0], &r, sizeof(r));
	close(p[0]);
	REQUIRE(WIFEXITED(status));
	REQUIRE(WEXITSTATUS(status) == 0);
	REQUIRE(n == (ssize_t)sizeof(r));
	INFO("hogs " << r.hog_count << " pauses " << r.pauses_while_full << "/"
		     << r.pauses_total << " cpu " << r.cpu_while_full_ns / 1000 << "us");
	CHECK(r.hog_count > 0);
	CHECK(r.hog_count < 64);
	CHECK(r.accept_rc == 0);
	// 300 ms of backoff from 1 ms doubling: about 8 naps, not thousands.
	CHECK(r.pauses_while_full >= 3);
	CHECK(r.pauses_while_full <= 20);
	CHECK(r.pauses_total <= 22);
	CHECK(r.cpu_while_full_ns < 100 * MS);
	// Resumes by the next backoff step (<= 256 ms).
	CHECK(r.accept_after_free_ns < 600 * MS);
}

namespace {
struct WatchCount {
	int fired;
	ssize_t read_in_cb;
};

void count_watch(poll_desc *pd, void *arg)
{
	auto *w = static_cast<WatchCount *>(arg);
	w->fired++;
	char buf[16];
	w->read_in_cb = pd_try_read(pd, buf, sizeof(buf));
}
} // namespace

TEST_CASE("watch callbacks fire once, first readiness is kept, close fires", "[poll][watch]")
{
	Loop loop;
	WatchCount w1 = {0, 0}, w2 = {0, 0}, w3 = {0, 0};
	int armed = -1, again = -1, busy = 0, first = -1, unwatch1 = -1,
	    unwatch2 = 0, on_close = -1;
	int fired_after_one = -1, fired_after_two = -1;
	ssize_t z_read = -1;
	go([&] {
		poll_desc *a, *b;
		SETUP(tcp_pair(&a, &b));
		coro_sleep(5 * MS);
		armed = pd_watch(a, PD_READ, count_watch, &w1);
		busy = pd_watch(a, PD_READ, count_watch, &w1);
		pd_write_full(b, "x", 1);
		coro_sleep(20 * MS);
		fired_after_one = w1.fired;
		pd_write_full(b, "y", 1); // the watch is spent: nothing fires
		coro_sleep(20 * MS);
		fired_after_two = w1.fired;

		// Readiness first: pd_watch says 1 instead of arming.
		first = pd_watch(a, PD_READ, count_watch, &w2);
		char buf[4];
		pd_try_read(a, buf, sizeof(buf));

		// Unwatch disarms: later readiness calls nothing.
		again = pd_watch(a, PD_READ, count_watch, &w2);
		unwatch1 = pd_unwatch(a, PD_READ);
		unwatch2 = pd_unwatch(a, PD_READ);
		pd_write_full(b, "z", 1);
		coro_sleep(20 * MS);
		z_read = pd_try_read(a, buf, sizeof(buf));
		// try_read looked at the fd itself, so the edge "z" left is gone.

		// Close fires the watch; the retried I/O in it sees -EBADF.
		on_close = pd_watch(a, PD_READ, count_watch, &w3);
		pd_close(a);
		pd_close(b);
	});
	sched_run(); // returns: no watch still holds the scheduler
	CHECK(armed == 0);
	CHECK(busy == -EBUSY);
	CHECK(fired_after_one == 1);
	CHECK(w1.read_in_cb == 1);
	CHECK(fired_after_two == 1);
	CHECK(first == 1);
	CHECK(again == 0);
	CHECK(unwatch1 == 0);
	CHECK(unwatch2 == -ENOENT);
	CHECK(w2.fired == 0);
	CHECK(z_read == 1);
	CHECK(on_close == 0);
	CHECK(w3.fired == 1);
	CHECK(w3.read_in_cb == -EBADF);
}

namespace {
void hold_watch(poll_desc *, void *arg)
{
	*static_cast<int *>(arg) += 1;
}
} // namespace

TEST_CASE("an armed watch keeps the scheduler alive until it fires", "[poll][watch]")
{
	Loop loop;
	poll_desc *a = nullptr, *b = nullptr;
	REQUIRE(unix_pair(&a, &b) == 0);
	int fired = 0;
	REQUIRE(pd_watch(a, PD_READ, hold_watch, &fired) == 0);
	// No coroutine is parked on a: only the watch's hold keeps sched_run
	// going until the writer's data arrives.
	go([&] {
		coro_sleep(30 * MS);
		pd_write_full(b, "q", 1);
	});
	sched_run();
	CHECK(fired == 1);
	pd_close(a);
	pd_close(b);
}

TEST_CASE("a watch fires when its deadline expires", "[poll][watch][deadline]")
{
	Loop loop;
	poll_desc *a = nullptr, *b = nullptr;
	REQUIRE(unix_pair(&a, &b) == 0);
	WatchCount w = {0, 0};
	pd_set_deadline(a, PD_READ, sched_now() + 30 * MS);
	REQUIRE(pd_watch(a, PD_READ, count_watch, &w) == 0);
	sched_run();
	CHECK(w.fired == 1);
	CHECK(w.read_in_cb == -ETIMEDOUT);
	pd_close(a);
	pd_close(b);
}

TEST_CASE("a second waiter on one direction aborts with a message", "[poll]")
{
	int errp[2];
	REQUIRE(pipe(errp) == 0);
	int status = in_child([&] {
		dup2(errp[1], 2);
		close(errp[0]);
		sched_init(nullptr);
		poll_open(test_kind(), nullptr, 0);
		poll_desc *a, *b;
		if (unix_pair(&a, &b) < 0)
			return 3;
		auto waiter = [](void *arg) { pd_wait(static_cast<poll_desc *>(arg), PD_READ); };
		coro_spawn(waiter, a, nullptr);
		coro_spawn(waiter, a, nullptr);
		sched_run();
		return 4; // not reached: the second waiter aborts
	});
	close(errp[1]);
	char msg[512] = {0};
	ssize_t n = read(errp[0], msg, sizeof(msg) - 1);
	close(errp[0]);
	REQUIRE(WIFSIGNALED(status));
	CHECK(WTERMSIG(status) == SIGABRT);
	REQUIRE(n > 0);
	CHECK(std::string(msg).find("only one coroutine may wait") != std::string::npos);
}

TEST_CASE("a busy run queue does not starve ready I/O", "[poll][fair]")
{
	Loop loop;
	bool woke = false, stop = false;
	long spins_at_wake = -1;
	long spins = 0;
	poll_desc *a = nullptr, *b = nullptr;
	REQUIRE(unix_pair(&a, &b) == 0);
	go([&] {
		char c;
		pd_read(a, &c, 1);
		woke = true;
		spins_at_wake = spins;
	});
	go([&] {
		coro_sleep(10 * MS); // reader is parked now
		pd_write_full(b, "w", 1);
		// From here the run queue never empties until the reader runs.
		for (spins = 0; spins < 200000 && !woke && !stop; spins++)
			coro_yield();
		stop = true;
	});
	sched_run();
	CHECK(woke);
	// Polled without blocking every SCHED_POLL_INTERVAL rounds.
	CHECK(spins_at_wake >= 0);
	CHECK(spins_at_wake < 20 * SCHED_POLL_INTERVAL);
	pd_close(a);
	pd_close(b);
}

TEST_CASE("a read loop that never meets EAGAIN yields", "[poll][fair]")
{
	Loop loop;
	long other_ran = 0;
	bool done = false;
	ssize_t total = 0;
	go([&] {
		poll_desc *a, *b;
		SETUP(unix_pair(&a, &b));
		std::vector<char> blob(10000, 'r');
		pd_write_full(b, blob.data(), blob.size());
		// 1-byte reads: thousands of reads, all without EAGAIN.
		char c;
		while (total < 5000 && pd_read(a, &c, 1) == 1)
			total++;
		done = true;
		pd_close(a);
		pd_close(b);
	});
	go([&] {
		for (int i = 0; i < 100000 && !done; i++) {
			other_ran++;
			coro_yield();
		}
	});
	sched_run();
	CHECK(total == 5000);
	CHECK(other_ran >= 5000 / 64 - 2);
}

TEST_CASE("writev_full writes every iovec and advances them", "[poll]")
{
	Loop loop;
	ssize_t wrote = -1, got = -1;
	std::string in;
	go([&] {
		poll_desc *a, *b;
		SETUP(tcp_pair(&a, &b));
		std::vector<char> big(3 << 20, 'B');
		char head[] = "head:", tail[] = ":tail";
		iovec iov[4] = {{head, 5}, {nullptr, 0}, {big.data(), big.size()}, {tail, 5}};
		bool read_done = false;
		go([&, b] {
			std::vector<char> buf(10 + big.size());
			got = pd_read_full(b, buf.data(), buf.size());
			if (got > 0)
				in.assign(buf.data(), (size_t)got);
			read_done = true;
		});
		wrote = pd_writev_full(a, iov, 4);
		for (int i = 0; i < 2000 && !read_done; i++)
			coro_sleep(5 * MS);
		pd_close(a);
		pd_close(b);
	});
	sched_run();
	CHECK(wrote == (ssize_t)(10 + (3 << 20)));
	CHECK(got == wrote);
	REQUIRE(in.size() == (size_t)got);
	CHECK(in.substr(0, 5) == "head:");
	CHECK(in.substr(in.size() - 5) == ":tail");
}

TEST_CASE("a pipe reads and writes like a socket, one writev per write once known", "[poll][io]")
{
	Loop loop;
	int p[2];
	REQUIRE(pipe2(p, O_CLOEXEC) == 0);
	poll_desc *r = nullptr, *w = nullptr;
	REQUIRE(pd_open(p[0], &r) == 0);
	REQUIRE(pd_open(p[1], &w) == 0);
	ssize_t first = -1, second = -1, got = -1, tried = 0;
	uint64_t second_syscalls = 0;
	std::string in;
	go([&] {
		// The first write learns that the fd is no socket (sendmsg, or
		// the ring's send, says ENOTSOCK) and falls back to writev.
		first = pd_write_full(w, "ab", 2);
		char cd[] = "cd";
		iovec iov[2] = {{cd, 1}, {cd + 1, 1}};
		uint64_t before = stats().syscalls;
		second = pd_writev_full(w, iov, 2);
		second_syscalls = stats().syscalls - before;
		char buf[8];
		got = pd_read_full(r, buf, 4);
		if (got > 0)
			in.assign(buf, (size_t)got);
		tried = pd_try_read(r, buf, sizeof(buf));
	});
	sched_run();
	CHECK(first == 2);
	CHECK(second == 2);
	CHECK(second_syscalls == 1);
	CHECK(got == 4);
	CHECK(in == "abcd");
	CHECK(tried == -EAGAIN);
	pd_close(r);
	pd_close(w);
}

namespace {
struct Pong {
	ssize_t wrote;
};

void pong_watch(poll_desc *pd, void *arg)
{
	char buf[8];
	pd_try_read(pd, buf, sizeof(buf));
	static_cast<Pong *>(arg)->wrote = pd_write_full(pd, "pong", 4);
}
} // namespace

TEST_CASE("a write from a watch callback completes without parking", "[poll][io][watch]")
{
	Loop loop;
	poll_desc *a = nullptr, *b = nullptr;
	REQUIRE(unix_pair(&a, &b) == 0);
	Pong pong = {-1};
	// The callback runs in scheduler context: even with write batching its
	// write must take the plain syscall, as nothing could park there.
	REQUIRE(pd_watch(a, PD_READ, pong_watch, &pong) == 0);
	ssize_t got = -1;
	char buf[4] = {0};
	go([&] {
		pd_write_full(b, "ping", 4);
		got = pd_read_full(b, buf, sizeof(buf));
	});
	sched_run();
	CHECK(pong.wrote == 4);
	CHECK(got == 4);
	CHECK(std::string(buf, 4) == "pong");
	pd_close(a);
	pd_close(b);
}

namespace {
// Make io_uring_setup fail with `err`: EPERM like a container's seccomp
// profile, ENOSYS like a kernel without io_uring.
bool deny_io_uring(int err = EPERM)
{
	sock_filter filter[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (unsigned)err),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	sock_fprog prog = {(unsigned short)(sizeof(filter) / sizeof(filter[0])), filter};
	return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
	       prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0;
}
} // namespace

TEST_CASE("io_uring forbidden: uring fails with one line, auto falls back", "[poll][open]")
{
	int p[2];
	REQUIRE(pipe(p) == 0);
	int status = in_child([&] {
		close(p[0]);
		if (!deny_io_uring())
			return 20;
		sched_init(nullptr);
		char why_uring[256] = "", why_auto[256] = "";
		int rc_uring = poll_open(POLL_URING, why_uring, sizeof(why_uring));
		int rc_auto = poll_open(POLL_AUTO, why_auto, sizeof(why_auto));
		int backend = (int)poll_backend();
		dprintf(p[1], "%d|%s|%d|%d|%s", rc_uring, why_uring, rc_auto, backend, why_auto);
		poll_close();
		sched_shutdown();
		return 0;
	});
	close(p[1]);
	char buf[1024] = {0};
	ssize_t n = read(p[0], buf, sizeof(buf) - 1);
	close(p[0]);
	REQUIRE(WIFEXITED(status));
	REQUIRE(WEXITSTATUS(status) == 0);
	REQUIRE(n > 0);
	std::string out(buf);
	INFO(out);
	CHECK(out.rfind(std::to_string(-EPERM) + "|io_uring unavailable", 0) == 0);
	CHECK(out.find("seccomp") != std::string::npos);
	CHECK(out.find("|0|" + std::to_string((int)POLL_EPOLL) + "|") != std::string::npos);
	CHECK(out.find("using epoll") != std::string::npos);
	CHECK(out.find('\n') == std::string::npos);
}

TEST_CASE("a write in flight never lands on an fd number reused after close", "[poll][stale]")
{
	Loop loop;
	poll_desc *x = nullptr, *xp = nullptr;
	REQUIRE(unix_pair(&x, &xp) == 0);
	int xfd = pd_fd(x);
	ssize_t wrote = 0, leaked = 0;
	int new_peer = -1;
	go([&] { wrote = pd_write_full(x, "secret", 6); });
	go([&] {
		// Runs while the writer may still be parked on its queued send.
		pd_close(x);
		int sv[2];
		SETUP(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv));
		if (sv[0] != xfd) {
			dup2(sv[0], xfd);
			close(sv[0]);
		}
		new_peer = sv[1];
		coro_sleep(20 * MS);
		char buf[16];
		leaked = read(new_peer, buf, sizeof(buf));
		close(xfd);
		close(new_peer);
	});
	sched_run();
	CHECK(leaked == -1); // EAGAIN: nothing reached the new socket
	CHECK((wrote == 6 || wrote == -EBADF));
	pd_close(xp);
}

TEST_CASE("closing with a wake-up still pending really closes", "[poll][close]")
{
	Loop loop;
	ssize_t got = -1;
	go([&] {
		poll_desc *x, *xp;
		SETUP(tcp_pair(&x, &xp));
		coro_sleep(5 * MS); // both registrations are in the kernel
		// A wake-up for x that the poller has not seen yet (io_uring with
		// DEFER_TASKRUN: its poll owns it until the next enter, and a
		// POLL_REMOVE submitted then fails with -EALREADY).
		if (write(pd_fd(xp), "x", 1) != 1)
			g_setup_failures++;
		pd_close(x);
		pd_set_deadline(xp, PD_READ, sched_now() + 2000 * MS);
		char c;
		got = pd_read(xp, &c, 1);
		pd_close(xp);
	});
	sched_run();
	// x had unread data, so its close sends RST: -ECONNRESET (or EOF), but
	// never -ETIMEDOUT, which would mean x's socket was still open.
	CHECK((got == -ECONNRESET || got == 0));
}

TEST_CASE("no io_uring in the kernel: uring names ENOSYS, auto falls back", "[poll][open]")
{
	int p[2];
	REQUIRE(pipe(p) == 0);
	int status = in_child([&] {
		close(p[0]);
		if (!deny_io_uring(ENOSYS))
			return 20;
		sched_init(nullptr);
		char why_uring[256] = "", why_auto[256] = "";
		int rc_uring = poll_open(POLL_URING, why_uring, sizeof(why_uring));
		int rc_auto = poll_open(POLL_AUTO, why_auto, sizeof(why_auto));
		dprintf(p[1], "%d|%s|%d|%d|%s", rc_uring, why_uring, rc_auto,
			(int)poll_backend(), why_auto);
		poll_close();
		sched_shutdown();
		return 0;
	});
	close(p[1]);
	char buf[1024] = {0};
	ssize_t n = read(p[0], buf, sizeof(buf) - 1);
	close(p[0]);
	REQUIRE(WIFEXITED(status));
	REQUIRE(WEXITSTATUS(status) == 0);
	REQUIRE(n > 0);
	std::string out(buf);
	INFO(out);
	CHECK(out.rfind(std::to_string(-ENOSYS) + "|io_uring unavailable", 0) == 0);
	CHECK(out.find("ENOSYS") != std::string::npos);
	CHECK(out.find("|0|" + std::to_string((int)POLL_EPOLL) + "|") != std::string::npos);
	CHECK(out.find("using epoll") != std::string::npos);
}

// --- io_uring completion I/O ([completion]: run by 'poll uring-completion'
// only; each opens its own ring with the buffers it needs) -----------------

namespace {
struct CompletionLoop {
	explicit CompletionLoop(uint32_t buffers = 0, uint32_t size = 0,
				bool no_bundles = false)
	{
		REQUIRE(sched_init(nullptr) == 0);
		char why[256] = "";
		REQUIRE(poll_open(POLL_URING, why, sizeof(why)) == 0);
		poll_uring_io_config cfg = {};
		cfg.mode = POLL_URING_IO_COMPLETION;
		cfg.buffers = buffers;
		cfg.buffer_size = size;
		cfg.no_bundles = no_bundles;
		int rc = poll_set_uring_io(&cfg, why, sizeof(why));
		INFO("poll_set_uring_io: " << rc << " " << why);
		REQUIRE(rc == 0);
		total = buffers ? buffers : 2048;
		g_setup_failures = 0;
	}
	~CompletionLoop()
	{
		CHECK(g_setup_failures == 0);
		audit_all_back();
		poll_close();
		sched_shutdown();
	}
	// Every buffer is in exactly one place, and none is held.
	void audit_all_back()
	{
		uint32_t in_ring = 0, queued = 0;
		CHECK(poll_uring_audit_buffers(&in_ring, &queued) == 0);
		CHECK(in_ring == total);
		CHECK(queued == 0);
		CHECK(stats().bufs_in_use == 0);
	}
	uint32_t total = 0;
	CompletionLoop(const CompletionLoop &) = delete;
	CompletionLoop &operator=(const CompletionLoop &) = delete;
};

std::string pattern(size_t len, unsigned seed)
{
	std::string s(len, '\0');
	for (size_t i = 0; i < len; i++)
		s[i] = (char)('a' + (i * 7 + seed) % 26);
	return s;
}

// write(2) on the peer, outside the ring, so its sends add no CQE.
bool raw_write(poll_desc *pd, const std::string &data)
{
	return write(pd_fd(pd), data.data(), data.size()) == (ssize_t)data.size();
}
} // namespace

TEST_CASE("completion: the mode is chosen once, before any pd", "[poll][completion]")
{
	REQUIRE(sched_init(nullptr) == 0);
	char why[256] = "";
	REQUIRE(poll_open(POLL_URING, why, sizeof(why)) == 0);
	poll_uring_io_config bad = {};
	bad.mode = POLL_URING_IO_COMPLETION;
	bad.buffers = 1000; // not a power of two
	CHECK(poll_set_uring_io(&bad, why, sizeof(why)) == -EINVAL);
	CHECK(std::string(why).find("power of two") != std::string::npos);
	poll_uring_io_config cfg = {};
	cfg.mode = POLL_URING_IO_AUTO;
	CHECK(poll_set_uring_io(&cfg, why, sizeof(why)) == 0);
	CHECK(poll_uring_io_mode() == POLL_URING_IO_COMPLETION);
	CHECK(std::string(why).find("using completion") != std::string::npos);
	CHECK(poll_set_uring_io(&cfg, why, sizeof(why)) == -EBUSY);
	poll_close();
	sched_shutdown();

	REQUIRE(sched_init(nullptr) == 0);
	REQUIRE(poll_open(POLL_EPOLL, why, sizeof(why)) == 0);
	cfg.mode = POLL_URING_IO_COMPLETION;
	CHECK(poll_set_uring_io(&cfg, why, sizeof(why)) == -ENOTSUP);
	CHECK(poll_uring_io_mode() == POLL_URING_IO_POLL);
	poll_close();
	sched_shutdown();

	poll_uring_io parsed = POLL_URING_IO_POLL;
	CHECK(poll_uring_io_parse("completion", &parsed) == 0);
	CHECK(parsed == POLL_URING_IO_COMPLETION);
	CHECK(poll_uring_io_parse("ring", &parsed) == -EINVAL);
	CHECK(std::string(poll_uring_io_name(POLL_URING_IO_AUTO)) == "auto");
}

TEST_CASE("completion: reads copy out of ring buffers; an idle socket holds none", "[poll][completion]")
{
	CompletionLoop loop;
	poll_desc *a = nullptr, *b = nullptr;
	std::string got, sent = pattern(10000, 1);
	uint64_t held_while_idle = 1, held_before_read = 0;
	uint64_t read_syscalls = 1;
	ssize_t first = 0;
	go([&] {
		SETUP(tcp_pair(&a, &b));
		char buf[4096];
		// The first read is read(2) and arms the recv.
		first = pd_try_read(a, buf, sizeof(buf));
		coro_sleep(10 * MS);
		held_while_idle = stats().bufs_in_use; // recv armed, no data
		if (!raw_write(b, sent))
			g_setup_failures++;
		coro_sleep(20 * MS); // the data is in a's queue now
		held_before_read = stats().bufs_in_use;
		uint64_t before = stats().syscalls;
		while (got.size() < sent.size()) {
			ssize_t n = pd_read(a, buf, sizeof(buf));
			if (n <= 0)
				break;
			got.append(buf, (size_t)n);
		}
		read_syscalls = stats().syscalls - before;
		pd_close(a);
		pd_close(b);
	});
	sched_run();
	CHECK(first == -EAGAIN);
	CHECK(held_while_idle == 0);
	CHECK(held_before_read >= 3); // 10000 bytes in 4096-byte buffers
	CHECK(got == sent);
	CHECK(read_syscalls == 0);    // all copied out of the queue
	CHECK(stats().completions > 0);
}

TEST_CASE("completion: EOF and a reset come after the queued data", "[poll][completion]")
{
	CompletionLoop loop;
	std::string got;
	ssize_t end = 1, again = 1;
	go([&] {
		poll_desc *a, *b;
		SETUP(tcp_pair(&a, &b));
		char buf[64];
		pd_try_read(a, buf, sizeof(buf)); // arms the recv
		if (!raw_write(b, "tail"))
			g_setup_failures++;
		pd_shutdown(b, SHUT_WR);
		coro_sleep(20 * MS);
		ssize_t n;
		while ((n = pd_read(a, buf, sizeof(buf))) > 0)
			got.append(buf, (size_t)n);
		end = n;
		again = pd_read(a, buf, sizeof(buf));
		pd_close(a);
		pd_close(b);
	});
	sched_run();
	CHECK(got == "tail");
	CHECK(end == 0);
	CHECK(again == 0);
}

namespace {
// Read 32 KiB sent in one write(2) through 1 KiB buffers; returns the
// CQEs it took.
uint64_t read_32k_cqes(bool no_bundles, std::string &got)
{
	CompletionLoop loop(64, 1024, no_bundles);
	std::string sent = pattern(32768, 3);
	uint64_t cqes = 0;
	go([&] {
		poll_desc *a, *b;
		SETUP(tcp_pair(&a, &b));
		char buf[1024];
		pd_try_read(a, buf, sizeof(buf)); // arms the recv
		coro_sleep(10 * MS);
		uint64_t before = stats().completions;
		if (!raw_write(b, sent))
			g_setup_failures++;
		coro_sleep(20 * MS);
		cqes = stats().completions - before;
		char big[40000];
		ssize_t n;
		while (got.size() < sent.size() &&
		       (n = pd_read(a, big, sizeof(big))) > 0)
			got.append(big, (size_t)n);
		pd_close(a);
		pd_close(b);
	});
	sched_run();
	CHECK(got == sent);
	return cqes;
}
} // namespace

TEST_CASE("completion: bundles take many buffers per completion", "[poll][completion][bundle]")
{
	std::string one, many;
	uint64_t single = read_32k_cqes(true, one);
	CHECK(single >= 32); // one CQE per buffer
	bool bundles = false;
	{
		CompletionLoop probe;
		bundles = poll_uring_bundles();
	}
	uint64_t bundled = read_32k_cqes(false, many);
	INFO("bundles " << bundles << ": " << single << " CQEs without, "
			<< bundled << " with");
	if (bundles)
		CHECK(bundled < 16);
	else
		CHECK(bundled >= 32);
	CHECK(one == many);
}

TEST_CASE("completion: an empty ring (-ENOBUFS) waits for buffers, no busy loop", "[poll][completion][nobufs]")
{
	CompletionLoop loop(4, 64); // 256 bytes of buffers in all
	std::string sent_a = pattern(1000, 5), sent_b = pattern(1000, 9);
	std::string got_a, got_b;
	uint64_t nobufs = 0, enters_while_stuck = 1000;
	uint32_t stuck_in_ring = 99;
	go([&] {
		poll_desc *a, *ap, *b, *bp;
		SETUP(tcp_pair(&a, &ap));
		SETUP(tcp_pair(&b, &bp));
		char buf[64];
		pd_try_read(a, buf, sizeof(buf)); // both recvs armed
		pd_try_read(b, buf, sizeof(buf));
		coro_sleep(10 * MS);
		if (!raw_write(ap, sent_a) || !raw_write(bp, sent_b))
			g_setup_failures++;
		coro_sleep(10 * MS); // the ring runs dry: nobody reads yet
		uint64_t enters = stats().enters;
		coro_sleep(30 * MS);
		enters_while_stuck = stats().enters - enters;
		nobufs = stats().recv_nobufs;
		poll_uring_audit_buffers(&stuck_in_ring, nullptr);
		go([&] {
			char rb[100];
			while (got_b.size() < sent_b.size()) {
				ssize_t n = pd_read(b, rb, sizeof(rb));
				if (n <= 0)
					break;
				got_b.append(rb, (size_t)n);
			}
		});
		char ra[100];
		while (got_a.size() < sent_a.size()) {
			ssize_t n = pd_read(a, ra, sizeof(ra));
			if (n <= 0)
				break;
			got_a.append(ra, (size_t)n);
		}
		coro_sleep(20 * MS);
		pd_close(a);
		pd_close(ap);
		pd_close(b);
		pd_close(bp);
	});
	sched_run();
	CHECK(nobufs >= 1);
	CHECK(stuck_in_ring == 0);
	CHECK(enters_while_stuck <= 5); // the sleep's timer, not a retry loop
	CHECK(got_a == sent_a);
	CHECK(got_b == sent_b);
}

TEST_CASE("completion: a reader that stops reading stops its recv", "[poll][completion]")
{
	CompletionLoop loop;
	std::string sent = pattern(24 << 20, 11), got;
	uint64_t held = 0, held_later = 0, nobufs = 1;
	go([&] {
		poll_desc *a, *b;
		SETUP(tcp_pair(&a, &b));
		char buf[4096];
		pd_try_read(a, buf, sizeof(buf)); // arms the recv
		coro_sleep(5 * MS);
		go([&] { pd_write_full(b, sent.data(), sent.size()); });
		coro_sleep(50 * MS); // a reads nothing meanwhile
		held = stats().bufs_in_use;
		coro_sleep(50 * MS);
		held_later = stats().bufs_in_use;
		nobufs = stats().recv_nobufs;
		static char big[1 << 16];
		while (got.size() < sent.size()) {
			ssize_t n = pd_read(a, big, sizeof(big));
			if (n <= 0)
				break;
			got.append(big, (size_t)n);
		}
		pd_close(a);
		pd_close(b);
	});
	sched_run();
	INFO("held " << held << " then " << held_later << " buffers");
	// Its queue went past the cap, the recv was cancelled and the rest
	// of the 24 MiB waits in the sockets: the 2048 buffers never ran out.
	CHECK(held >= 16);
	CHECK(held_later == held);
	CHECK(held < 2048);
	CHECK(nobufs == 0);
	CHECK(got.size() == sent.size());
	CHECK(got == sent);
}

namespace {
// Bytes waiting in the socket itself (not in the ring's queue).
int socket_bytes(poll_desc *pd)
{
	int n = -1;
	return ioctl(pd_fd(pd), FIONREAD, &n) == 0 ? n : -1;
}
} // namespace

TEST_CASE("completion: a paused recv takes nothing more; a read or resume re-arms it", "[poll][completion][pause]")
{
	CompletionLoop loop;
	const std::string first = pattern(1000, 3), second = pattern(3000, 4),
			  third = pattern(500, 5);
	std::string got_first, got_second, got_third;
	bool quiet_with_queue = true, quiet_after_cancel = false, watch_fired = false;
	bool quiet_while_paused = false;
	uint64_t held_paused = 1;
	int in_socket = -1;
	go([&] {
		poll_desc *a, *b;
		SETUP(tcp_pair(&a, &b));
		char buf[8192];
		pd_try_read(a, buf, sizeof(buf)); // arms the recv
		coro_sleep(5 * MS);
		if (!raw_write(b, first))
			g_setup_failures++;
		coro_sleep(20 * MS);
		// Bytes already taken stay readable after the pause...
		pd_recv_pause(a);
		quiet_with_queue = pd_recv_quiet(a);
		coro_sleep(10 * MS);
		ssize_t n = pd_try_read(a, buf, sizeof(buf));
		if (n > 0)
			got_first.assign(buf, (size_t)n);
		// ...and that read re-armed it: pause again, now with nothing
		// queued, and let the cancel end.
		pd_recv_pause(a);
		coro_sleep(10 * MS);
		quiet_after_cancel = pd_recv_quiet(a);
		// What arrives now stays in the socket, and wakes nobody.
		if (pd_watch(a, PD_READ, [](poll_desc *, void *arg) {
			    *(bool *)arg = true;
		    }, &watch_fired) != 0)
			g_setup_failures++;
		if (!raw_write(b, second))
			g_setup_failures++;
		coro_sleep(30 * MS);
		held_paused = stats().bufs_in_use;
		in_socket = socket_bytes(a);
		quiet_while_paused = pd_recv_quiet(a);
		pd_unwatch(a, PD_READ);
		pd_recv_resume(a);
		while (got_second.size() < second.size()) {
			n = pd_read(a, buf, sizeof(buf));
			if (n <= 0)
				break;
			got_second.append(buf, (size_t)n);
		}
		// A read of an empty queue re-arms a paused recv too.
		pd_recv_pause(a);
		coro_sleep(10 * MS);
		if (pd_try_read(a, buf, sizeof(buf)) != -EAGAIN)
			g_setup_failures++;
		if (!raw_write(b, third))
			g_setup_failures++;
		coro_sleep(20 * MS);
		if (socket_bytes(a) != 0)
			g_setup_failures++;
		n = pd_read(a, buf, sizeof(buf));
		if (n > 0)
			got_third.assign(buf, (size_t)n);
		pd_close(a);
		pd_close(b);
	});
	sched_run();
	CHECK_FALSE(quiet_with_queue);
	CHECK(got_first == first);
	CHECK(quiet_after_cancel);
	CHECK_FALSE(watch_fired);
	CHECK(held_paused == 0);
	CHECK(in_socket == (int)second.size());
	CHECK(quiet_while_paused);
	CHECK(got_second == second);
	CHECK(got_third == third);
}

TEST_CASE("pause: without completion I/O a pd is always quiet", "[poll][pause]")
{
	for (poll_kind kind : {POLL_EPOLL, POLL_URING}) {
		REQUIRE(sched_init(nullptr) == 0);
		char why[256] = "";
		REQUIRE(poll_open(kind, why, sizeof(why)) == 0);
		g_setup_failures = 0;
		std::string got;
		bool quiet = false;
		go([&] {
			poll_desc *a, *b;
			SETUP(tcp_pair(&a, &b));
			pd_recv_pause(a);
			quiet = pd_recv_quiet(a);
			// Pausing changes nothing: the read still finds the data.
			pd_write_full(b, "hello", 5);
			char buf[16];
			ssize_t n = pd_read(a, buf, sizeof(buf));
			if (n > 0)
				got.assign(buf, (size_t)n);
			pd_recv_resume(a);
			pd_close(a);
			pd_close(b);
		});
		sched_run();
		CHECK(g_setup_failures == 0);
		CHECK(quiet);
		CHECK(got == "hello");
		poll_close();
		sched_shutdown();
	}
}

TEST_CASE("completion: close with a recv and a send in flight", "[poll][completion][close]")
{
	CompletionLoop loop;
	ssize_t read_rc = 1, write_rc = 1, peer_rc = 1;
	uint64_t held_before_close = 0;
	go([&] {
		poll_desc *x, *xp;
		SETUP(tcp_pair(&x, &xp));
		char c;
		pd_try_read(x, &c, 1); // the recv is armed
		// Data queued on x that nobody will read: close gives it back.
		if (!raw_write(xp, pattern(8000, 2)))
			g_setup_failures++;
		coro_sleep(20 * MS);
		held_before_close = stats().bufs_in_use;
		// A send in flight: its SQE is queued for this round's enter.
		go([&] { write_rc = pd_write_full(x, "pending send", 12); });
		// A reader parked on x... that has data: take it all first.
		go([&] {
			char buf[16384];
			while ((read_rc = pd_read(x, buf, sizeof(buf))) > 0) {
			}
		});
		coro_yield();
		coro_yield();
		pd_close(x);
		pd_set_deadline(xp, PD_READ, sched_now() + 2000 * MS);
		char buf[64];
		do
			peer_rc = pd_read(xp, buf, sizeof(buf));
		while (peer_rc > 0);
		pd_close(xp);
	});
	sched_run();
	CHECK(held_before_close >= 1);
	CHECK(read_rc == -EBADF);
	CHECK((write_rc == 12 || write_rc == -EBADF));
	// The socket really closed: EOF (or a reset), never -ETIMEDOUT.
	CHECK((peer_rc == 0 || peer_rc == -ECONNRESET));
}

namespace {
// Both ends become ring readers: a byte each way, read through the ring.
void become_ring_readers(poll_desc *a, poll_desc *b)
{
	char c;
	pd_try_read(a, &c, 1);
	pd_try_read(b, &c, 1);
	if (!raw_write(a, "x") || !raw_write(b, "y"))
		g_setup_failures++;
	if (pd_read(a, &c, 1) != 1 || pd_read(b, &c, 1) != 1)
		g_setup_failures++;
	coro_sleep(10 * MS); // the polls' removals are done
}

// Write `total` bytes on `from` while `to` reads only after `delay`; the
// writer has to park on a full socket and be woken by write readiness.
void full_socket_round_trip(poll_desc *from, poll_desc *to, size_t total,
			    int64_t delay, ssize_t *wrote, size_t *read_n)
{
	std::string big = pattern(total, 3);
	bool done = false;
	go([&, from] {
		pd_set_deadline(from, PD_WRITE, sched_now() + 5000 * MS);
		*wrote = pd_write_full(from, big.data(), big.size());
		done = true;
	});
	coro_sleep(delay);
	pd_set_deadline(to, PD_READ, sched_now() + 5000 * MS);
	std::string got;
	std::vector<char> buf(65536); // not on the coroutine's small stack
	while (got.size() < total) {
		ssize_t n = pd_read(to, buf.data(), buf.size());
		if (n <= 0)
			break;
		got.append(buf.data(), (size_t)n);
	}
	*read_n = got == big ? got.size() : 0;
	while (!done)
		coro_sleep(MS);
}
} // namespace

TEST_CASE("completion: a ring reader gets one completion per arrival and still wakes a writer on a full socket", "[poll][completion]")
{
	CompletionLoop loop;
	const int arrivals = 20;
	uint64_t cqes = 0;
	ssize_t wrote = 0, wrote_early = 0;
	size_t read_n = 0, read_early = 0;
	const size_t total = 8u << 20; // far above loopback's socket buffers
	go([&] {
		poll_desc *a, *b;
		SETUP(tcp_pair(&a, &b));
		become_ring_readers(a, b);
		uint64_t before = stats().completions;
		char buf[256];
		for (int i = 0; i < arrivals; i++) {
			if (!raw_write(b, pattern(100, (unsigned)i)))
				g_setup_failures++;
			size_t got = 0;
			while (got < 100) {
				ssize_t n = pd_read(a, buf, sizeof(buf));
				if (n <= 0)
					break;
				got += (size_t)n;
			}
		}
		cqes = stats().completions - before;
		full_socket_round_trip(a, b, total, 30 * MS, &wrote, &read_n);
		pd_close(a);
		pd_close(b);

		// A writer that parked while the poll was still there: the
		// first recv drops the poll, and the writer must still wake.
		SETUP(tcp_pair(&a, &b));
		char c;
		pd_try_read(a, &c, 1);
		go([&, a, b] {
			coro_sleep(20 * MS); // a's writer is parked by now
			if (!raw_write(b, "z"))
				g_setup_failures++;
			char z;
			if (pd_read(a, &z, 1) != 1)
				g_setup_failures++;
		});
		full_socket_round_trip(a, b, total, 60 * MS, &wrote_early, &read_early);
		pd_close(a);
		pd_close(b);
	});
	sched_run();
	// A poll beside the recv would double this (its POLLIN per arrival).
	CHECK(cqes >= (uint64_t)arrivals);
	CHECK(cqes <= (uint64_t)arrivals + 2);
	CHECK(wrote == (ssize_t)total);
	CHECK(read_n == total);
	CHECK(wrote_early == (ssize_t)total);
	CHECK(read_early == total);
}

TEST_CASE("completion: slots closed with requests in flight are reused cleanly", "[poll][completion][close]")
{
	CompletionLoop loop(16, 256);
	int ok = 0, rounds = 200;
	go([&] {
		for (int i = 0; i < rounds; i++) {
			poll_desc *x, *xp;
			if (tcp_pair(&x, &xp) != 0) {
				g_setup_failures++;
				return;
			}
			char buf[512];
			pd_try_read(x, buf, sizeof(buf));
			std::string msg = pattern(300 + (size_t)i, (unsigned)i);
			raw_write(xp, msg);
			if (i % 2)
				coro_sleep(1 * MS); // sometimes the data is queued
			if (i % 3 == 0) {
				std::string got;
				while (got.size() < msg.size()) {
					ssize_t n = pd_read(x, buf, sizeof(buf));
					if (n <= 0)
						break;
					got.append(buf, (size_t)n);
				}
				ok += got == msg;
			} else {
				ok++;
			}
			pd_close(x);
			pd_close(xp);
		}
		coro_sleep(10 * MS); // the last cancels complete
	});
	sched_run();
	CHECK(ok == rounds);
}
