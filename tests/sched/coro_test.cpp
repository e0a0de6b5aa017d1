// Coroutine lifecycle: spawn, run, exit, self, names, park reasons, sleep.
#include "helpers.hpp"

#include <cstring>
#include <string>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

TEST_CASE("100,000 coroutines spawn, run and exit", "[coro]")
{
	SchedScope scope;
	Bodies b;
	const int total = 100000;
	int ran = 0;
	uint64_t sum = 0;
	struct Arg {
		int *ran;
		uint64_t *sum;
		uint64_t value;
	};
	std::vector<Arg> args(total);

	// Batches of 1000: the spawner yields after each, the batch runs and
	// exits, and the next batch gets the pooled stacks. All 100,000 at once
	// would need 200,000 mappings (stack + guard), over vm.max_map_count.
	b.spawn([&] {
		for (int i = 0; i < total; i++) {
			args[i] = Arg{ &ran, &sum, (uint64_t)i };
			coro *c = coro_spawn(
				[](void *p) {
					Arg *a = static_cast<Arg *>(p);
					++*a->ran;
					*a->sum += a->value;
				},
				&args[i], nullptr);
			if (!c)
				return;
			if (i % 1000 == 999)
				coro_yield();
		}
	});
	sched_run();
	sched_stats s = stats();
	CHECK(ran == total);
	CHECK(sum == (uint64_t)total * (total - 1) / 2);
	CHECK(s.spawned == total + 1);
	CHECK(s.exited == total + 1);
	CHECK(s.live == 0);
	CHECK(s.stacks_mapped + s.stacks_reused == total + 1);
	CHECK(s.stacks_mapped <= 1002);  // one batch plus the spawner
}

TEST_CASE("10,000 coroutines alive at once", "[coro]")
{
	SchedScope scope;
	Bodies b;
	const int total = 10000;
	std::vector<coro *> parked;
	int woke = 0;

	for (int i = 0; i < total; i++) {
		coro *c = b.spawn([&] {
			parked.push_back(coro_self());
			coro_park("test");
			woke++;
		});
		REQUIRE(c != nullptr);
	}
	b.spawn([&] {
		CHECK(stats().live == (uint32_t)total + 1);
		for (coro *c : parked)
			coro_ready(c);
	});
	sched_run();
	CHECK(parked.size() == (size_t)total);
	CHECK(woke == total);
	CHECK(stats().live == 0);
}

TEST_CASE("coro_self, names and park reasons", "[coro]")
{
	SchedScope scope;
	Bodies b;
	coro *self_seen = nullptr;
	std::string reason_seen, name_seen;
	const char *reason_after = "not checked";

	CHECK(coro_self() == nullptr);
	coro *a = b.spawn([&] {
		self_seen = coro_self();
		coro_park("waiting for test");
		reason_after = coro_park_reason(coro_self());
	}, "a-name-that-is-longer-than-thirty-one-bytes");
	b.spawn([&] {
		reason_seen = coro_park_reason(a) ? coro_park_reason(a) : "(null)";
		name_seen = coro_name(a);
		coro_ready(a);
	}, "b");
	sched_run();
	CHECK(self_seen == a);
	CHECK(reason_seen == "waiting for test");
	CHECK(name_seen == std::string("a-name-that-is-longer-than-thirty-one-bytes").substr(0, 31));
	CHECK(reason_after == nullptr);  // running, so not parked
	CHECK(coro_self() == nullptr);
}

TEST_CASE("coro_exit ends the coroutine where it is called", "[coro]")
{
	SchedScope scope;
	Bodies b;
	int before = 0, after = 0;

	b.spawn([&] {
		before++;
		coro_exit();
		after++;  // never reached
	});
	sched_run();
	CHECK(before == 1);
	CHECK(after == 0);
	CHECK(stats().exited == 1);
}

TEST_CASE("coro_sleep wakes no earlier than asked", "[coro][timer]")
{
	SchedScope scope;
	Bodies b;
	const int64_t asks[] = { 1000000, 5000000, 20000000, 3000000 };
	int64_t slept[4] = {};
	std::vector<int> wake_order;

	for (int i = 0; i < 4; i++) {
		b.spawn([&, i] {
			int64_t t0 = sched_now();
			coro_sleep(asks[i]);
			slept[i] = sched_now() - t0;
			wake_order.push_back(i);
		});
	}
	sched_run();
	for (int i = 0; i < 4; i++)
		CHECK(slept[i] >= asks[i]);
	CHECK(wake_order == std::vector<int>{ 0, 3, 1, 2 });
	CHECK(stats().timers_fired == 4);
}

TEST_CASE("coro_sleep(0) yields instead of parking", "[coro]")
{
	SchedScope scope;
	Bodies b;
	std::vector<char> trace;

	b.spawn([&] { trace.push_back('a'); coro_sleep(0); trace.push_back('a'); });
	b.spawn([&] { trace.push_back('b'); });
	sched_run();
	CHECK(trace == std::vector<char>{ 'a', 'b', 'a' });
	CHECK(stats().timers_fired == 0);
}

TEST_CASE("spawn from a coroutine and before init", "[coro]")
{
	CHECK(coro_spawn(Bodies::trampoline, nullptr, nullptr) == nullptr);
	SchedScope scope;
	Bodies b;
	int inner = 0;

	b.spawn([&] {
		b.spawn([&] { inner++; });
		CHECK(stats().runq_len == 1);
	});
	sched_run();
	CHECK(inner == 1);
}

TEST_CASE("readying a coroutine that is not parked is a fatal bug", "[coro]")
{
	int fds[2];
	REQUIRE(pipe(fds) == 0);
	fflush(nullptr);
	pid_t pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		close(fds[0]);
		dup2(fds[1], STDERR_FILENO);
		signal(SIGABRT, SIG_DFL);  // Catch's handler belongs to the parent
		alarm(20);
		if (sched_init(nullptr) != 0)
			_exit(3);
		coro_opts opts = {};
		opts.name = "twice";
		coro *c = coro_spawn([](void *) {}, nullptr, &opts);
		coro_ready(c);  // runnable already: would be queued twice
		_exit(0);
	}
	close(fds[1]);
	std::string err;
	char buf[256];
	ssize_t n;
	while ((n = read(fds[0], buf, sizeof(buf))) > 0)
		err.append(buf, (size_t)n);
	close(fds[0]);
	int status = 0;
	REQUIRE(waitpid(pid, &status, 0) == pid);
	INFO("child stderr: " << err);
	CHECK(err.find("not parked") != std::string::npos);
	CHECK(err.find("twice") != std::string::npos);
	CHECK(WIFSIGNALED(status));
}
