// Stacks: pooling and reuse, giving touched pages back, and the guard page.
#include "helpers.hpp"

#include <cstring>
#include <string>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

TEST_CASE("freed stacks are reused from the pool", "[stack]")
{
	SchedScope scope;
	Bodies b;
	b.spawn([] {});
	sched_run();
	CHECK(stats().stacks_mapped == 1);
	CHECK(stats().stacks_reused == 0);
	for (int i = 0; i < 10; i++) {
		b.spawn([] {});
		sched_run();
	}
	CHECK(stats().stacks_mapped == 1);
	CHECK(stats().stacks_reused == 10);
}

TEST_CASE("only default-size stacks are pooled, up to stack_pool_max", "[stack]")
{
	sched_config cfg = {};
	cfg.stack_pool_max = 2;
	SchedScope scope(&cfg);
	Bodies b;
	for (int i = 0; i < 5; i++)
		b.spawn([] {});
	b.spawn([] {}, "big", 256 * 1024);
	sched_run();
	CHECK(stats().stacks_mapped == 6);
	for (int i = 0; i < 5; i++)
		b.spawn([] {});
	b.spawn([] {}, "big", 256 * 1024);
	sched_run();
	CHECK(stats().stacks_reused == 2);
	CHECK(stats().stacks_mapped == 6 + 4);
}

TEST_CASE("a configured stack size is usable", "[stack]")
{
	sched_config cfg = {};
	cfg.stack_size = 256 * 1024;
	SchedScope scope(&cfg);
	Bodies b;
	size_t used = 0;
	b.spawn([&] {
		volatile char big[160 * 1024];
		for (size_t i = 0; i < sizeof(big); i += 64)
			big[i] = 1;
		size_t ok = 0;
		for (size_t i = 0; i < sizeof(big); i += 64)
			ok += big[i] == 1;
		used = ok * 64;
	});
	sched_run();
	CHECK(used == 160 * 1024);
}

namespace {

const uintptr_t page_size = (uintptr_t)sysconf(_SC_PAGESIZE);
// SCHED_POOL_SCAVENGE_NS (sched/internal.h): how long a pooled stack may
// stay unused and dirty before an idle loop gives its pages back.
const int64_t scavenge_ns = 100000000;

// Resident whole pages within [lo, hi) (an address range on a pooled stack).
size_t resident_pages(uintptr_t lo, uintptr_t hi)
{
	char *start = (char *)((lo + page_size - 1) & ~(page_size - 1));
	char *end = (char *)(hi & ~(page_size - 1));
	if (end <= start)
		return 0;
	std::vector<unsigned char> vec((end - start) / page_size);
	if (mincore(start, end - start, vec.data()) != 0)
		return (size_t)-1;  // unmapped: the stack was not pooled
	size_t n = 0;
	for (unsigned char v : vec)
		n += v & 1;
	return n;
}

struct Span {
	uintptr_t lo, hi;
};

// A coroutine body that dirties 32 KiB of its stack and says where.
std::function<void()> dirty_32k(Span *out)
{
	return [out] {
		volatile char buf[32 * 1024];
		for (size_t i = 0; i < sizeof(buf); i += 64)
			buf[i] = 7;  // volatile stores: none can be optimized away
		out->lo = (uintptr_t)buf;  // addresses only: the frame is gone later
		out->hi = out->lo + sizeof(buf);
	};
}

}  // namespace

TEST_CASE("pooled stacks nobody needs give their pages back while the loop idles", "[stack]")
{
	SchedScope scope;
	Bodies b;
	Span span = {};
	bool hot_after_short_idle = false;
	b.spawn(dirty_32k(&span));
	b.spawn([&] {
		// A short idle keeps the stack hot: a relay idles between messages.
		coro_sleep(2000000);
		hot_after_short_idle = resident_pages(span.lo, span.hi) > 0;
		// Longer than two scavenge periods: unused, it must be clean.
		coro_sleep(2 * scavenge_ns + 20000000);
	});
	sched_run();
	REQUIRE(span.lo != 0);
	CHECK(hot_after_short_idle);
	CHECK(resident_pages(span.lo, span.hi) == 0);
	CHECK(stats().stacks_mapped == 2);
}

TEST_CASE("the scavenger wakes a loop that would block forever", "[stack][netpoll]")
{
	SchedScope scope;
	Bodies b;
	Span span = {};
	std::vector<int64_t> delays;
	sched_set_netpoll([](void *ctx, int64_t delay) {
		auto *d = static_cast<std::vector<int64_t> *>(ctx);
		d->push_back(delay);
		if (delay > 0) {
			struct timespec ts = { (time_t)(delay / 1000000000), (long)(delay % 1000000000) };
			nanosleep(&ts, nullptr);
		}
		if (d->size() >= 4)
			sched_release();  // let the loop end
		return 0;
	}, &delays);
	sched_hold();
	b.spawn(dirty_32k(&span));
	sched_run();
	REQUIRE(delays.size() >= 2);
	// With a dirty stack pooled, the first polls are bounded, not forever.
	CHECK(delays[0] > 0);
	CHECK(delays[0] <= scavenge_ns);
	CHECK(resident_pages(span.lo, span.hi) == 0);
	// Once clean, nothing is left to scavenge: the loop may block forever.
	CHECK(delays.back() == -1);
}

TEST_CASE("a busy loop keeps a bounded number of dirty pooled stacks", "[stack]")
{
	SchedScope scope;
	Bodies b;
	std::vector<Span> spans(200);
	for (auto &s : spans)
		b.spawn(dirty_32k(&s));
	sched_run();  // never blocks: only the bound limits what stays resident
	size_t dirty = 0;
	for (auto &s : spans) {
		size_t n = resident_pages(s.lo, s.hi);
		REQUIRE(n != (size_t)-1);
		dirty += n > 0;
	}
	CHECK(dirty >= 1);    // the most recent stay hot for reuse
	CHECK(dirty <= 64);   // the rest were cleaned on the way into the pool
	CHECK(stats().stacks_mapped == 200);
}

TEST_CASE("a dirty pooled stack is reused before a clean one", "[stack]")
{
	SchedScope scope;
	Bodies b;
	Span first = {}, second = {};
	b.spawn(dirty_32k(&first));
	sched_run();
	b.spawn(dirty_32k(&second));
	sched_run();
	CHECK(stats().stacks_reused == 1);
	CHECK(first.lo == second.lo);  // same stack, same frame address
}

namespace {

volatile int depth_limit = 1 << 30;

int recurse(int n)
{
	volatile char frame[256];
	frame[0] = (char)n;
	if (n >= depth_limit)
		return frame[0];
	return recurse(n + 1) + frame[0];
}

// Runs in a fork()ed child: overflow a small stack on purpose.
[[noreturn]] void overflow_child(int err_fd)
{
	dup2(err_fd, STDERR_FILENO);
	alarm(20);
	signal(SIGSEGV, SIG_DFL);  // drop Catch's handler: the child is not a test run
	if (sched_init(nullptr) != 0)
		_exit(3);
	coro_opts opts = {};
	opts.name = "deep-recursion";
	opts.stack_size = 16 * 1024;
	coro_spawn([](void *) { recurse(0); }, nullptr, &opts);
	sched_run();
	_exit(0);  // not reached if the guard page works
}

}  // namespace

TEST_CASE("overflowing into the guard page names the coroutine and ends the process", "[stack]")
{
	int fds[2];
	REQUIRE(pipe(fds) == 0);
	fflush(nullptr);
	pid_t pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		close(fds[0]);
		overflow_child(fds[1]);
	}
	close(fds[1]);
	std::string err;
	char buf[512];
	ssize_t n;
	while ((n = read(fds[0], buf, sizeof(buf))) > 0)
		err.append(buf, (size_t)n);
	close(fds[0]);
	int status = 0;
	REQUIRE(waitpid(pid, &status, 0) == pid);
	INFO("child stderr: " << err);
	CHECK(err.find("coroutine stack overflow") != std::string::npos);
	CHECK(err.find("deep-recursion") != std::string::npos);
	CHECK_FALSE((WIFEXITED(status) && WEXITSTATUS(status) == 0));
	CHECK(WIFSIGNALED(status));
	if (WIFSIGNALED(status))
		CHECK(WTERMSIG(status) == SIGSEGV);
}

TEST_CASE("a SIGSEGV outside any guard page keeps its default action", "[stack]")
{
	fflush(nullptr);
	pid_t pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		int null_fd = open("/dev/null", O_WRONLY);
		dup2(null_fd, STDERR_FILENO);
		alarm(20);
		signal(SIGSEGV, SIG_DFL);
		if (sched_init(nullptr) != 0)
			_exit(3);
		raise(SIGSEGV);  // si_addr is not in a guard page
		_exit(0);
	}
	int status = 0;
	REQUIRE(waitpid(pid, &status, 0) == pid);
	CHECK(WIFSIGNALED(status));
	if (WIFSIGNALED(status))
		CHECK(WTERMSIG(status) == SIGSEGV);
}
