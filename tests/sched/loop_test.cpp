// The loop: when it returns, what keeps it alive, and how it drives the
// netpoll hook (delay to the next timer, -1 for forever, 0 every
// SCHED_POLL_INTERVAL rounds while the queue never empties).
#include "helpers.hpp"

#include <time.h>

namespace {

struct HookLog {
	std::vector<int64_t> delays;
	std::function<int(int64_t)> on_call;
};

int hook(void *context, int64_t delay_ns)
{
	HookLog *log = static_cast<HookLog *>(context);
	log->delays.push_back(delay_ns);
	return log->on_call ? log->on_call(delay_ns) : 0;
}

void sleep_ns(int64_t ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000), (long)(ns % 1000000000) };
	nanosleep(&ts, nullptr);
}

}  // namespace

TEST_CASE("sched_run returns at once with nothing to do", "[loop]")
{
	SchedScope scope;
	HookLog log;
	sched_set_netpoll(hook, &log);
	sched_run();
	CHECK(log.delays.empty());
	CHECK(stats().rounds == 0);
}

TEST_CASE("without a hook, a parked coroutine that nothing can wake ends the loop", "[loop]")
{
	SchedScope scope;
	Bodies b;
	bool woke = false;

	b.spawn([&] { coro_park("forever"); woke = true; }, "sleeper");
	sched_run();  // must return, not hang
	CHECK_FALSE(woke);
	CHECK(stats().live == 1);
	// sched_shutdown (scope) releases the parked coroutine's stack.
}

TEST_CASE("the hook gets the delay to the next timer", "[loop][netpoll]")
{
	SchedScope scope;
	Bodies b;
	HookLog log;
	const int64_t wait = 50000000;  // 50 ms
	log.on_call = [](int64_t delay) {
		if (delay > 0)
			sleep_ns(delay);  // a real poller would block this long
		return 0;
	};
	sched_set_netpoll(hook, &log);
	int64_t slept = 0;
	b.spawn([&] {
		int64_t t0 = sched_now();
		coro_sleep(wait);
		slept = sched_now() - t0;
	});
	sched_run();
	REQUIRE_FALSE(log.delays.empty());
	CHECK(log.delays[0] <= wait);
	CHECK(log.delays[0] > wait - 20000000);  // generous for a loaded machine
	for (int64_t d : log.delays)
		CHECK(d >= 0);  // a pending timer bounds the wait: never -1
	CHECK(slept >= wait);
	CHECK(stats().polls_blocking >= 1);
}

TEST_CASE("the hook gets -1 when only a poller can wake a parked coroutine", "[loop][netpoll]")
{
	SchedScope scope;
	Bodies b;
	HookLog log;
	bool woke = false;
	coro *c = b.spawn([&] { coro_park("io"); woke = true; });
	log.on_call = [&](int64_t) {
		coro_ready(c);  // "the fd became ready"
		return 1;
	};
	sched_set_netpoll(hook, &log);
	sched_run();
	CHECK(woke);
	REQUIRE(log.delays.size() == 1);
	CHECK(log.delays[0] == -1);
	CHECK(stats().polls_blocking == 1);
}

TEST_CASE("a busy queue still polls with delay 0 every SCHED_POLL_INTERVAL rounds", "[loop][netpoll]")
{
	SchedScope scope;
	Bodies b;
	HookLog log;
	sched_set_netpoll(hook, &log);
	const int yields = 20 * SCHED_POLL_INTERVAL;
	uint64_t nonblocking_seen = 0;

	b.spawn([&] {
		for (int i = 0; i < yields; i++)
			coro_yield();
	});
	b.spawn([&] {
		for (int i = 0; i < yields; i++)
			coro_yield();
		nonblocking_seen = stats().polls_nonblocking;
	});
	sched_run();
	sched_stats s = stats();
	// Both coroutines always keep the queue non-empty: every call is a peek.
	CHECK(s.rounds == 2 * (uint64_t)(yields + 1));
	CHECK(log.delays.size() == s.rounds / SCHED_POLL_INTERVAL);
	for (int64_t d : log.delays)
		CHECK(d == 0);
	CHECK(s.polls_nonblocking == log.delays.size());
	CHECK(s.polls_blocking == 0);
	CHECK(nonblocking_seen > 0);
}

TEST_CASE("the hook may spawn coroutines", "[loop][netpoll]")
{
	SchedScope scope;
	Bodies b;
	HookLog log;
	int ran = 0;
	sched_hold();  // e.g. a listening socket: work may still come
	log.on_call = [&](int64_t) {
		if (log.delays.size() == 3) {
			b.spawn([&] { ran++; });
			sched_release();
		}
		return 1;
	};
	sched_set_netpoll(hook, &log);
	sched_run();
	CHECK(ran == 1);
	CHECK(log.delays.size() == 3);
	for (int64_t d : log.delays)
		CHECK(d == -1);
}

TEST_CASE("sched_hold keeps sched_run alive until released", "[loop]")
{
	SchedScope scope;
	Bodies b;
	HookLog log;
	sched_set_netpoll(hook, &log);
	sched_hold();
	struct Rel {
		sched_timer t;
		int64_t at;
	} rel{ {}, 0 };
	sched_timer_init(&rel.t, [](sched_timer *, void *arg) {
		static_cast<Rel *>(arg)->at = sched_now();
		sched_release();
	}, &rel);
	log.on_call = [](int64_t delay) {
		if (delay > 0)
			sleep_ns(delay);
		return 0;
	};
	const int64_t start = sched_now();
	REQUIRE(sched_timer_set(&rel.t, start + 10000000) == 0);
	sched_run();
	const int64_t end = sched_now();
	CHECK(rel.at >= start + 10000000);
	CHECK(end >= rel.at);
	// After the timer fired only the hold kept the loop; releasing ended it.
	CHECK(log.delays.size() >= 1);
	CHECK(stats().timers_fired == 1);
}

TEST_CASE("a hold without a hook cannot be released by anyone: the loop returns", "[loop]")
{
	SchedScope scope;
	sched_hold();
	sched_run();
	CHECK(stats().rounds == 0);
	sched_release();
}

TEST_CASE("sched_stop returns after the current coroutine switches out; run resumes", "[loop]")
{
	SchedScope scope;
	Bodies b;
	std::string trace;

	b.spawn([&] { trace += 'a'; sched_stop(); coro_yield(); trace += 'A'; });
	b.spawn([&] { trace += 'b'; });
	sched_run();
	CHECK(trace == "a");
	CHECK(stats().live == 2);
	sched_run();
	CHECK(trace == "abA");
	CHECK(stats().live == 0);
}

TEST_CASE("sched_stop from a timer callback returns without blocking in the hook", "[loop][netpoll]")
{
	// Regression: the loop used to fire timers, find the queue empty and
	// block in the hook forever (a parked coroutine and a hold keep it alive).
	SchedScope scope;
	Bodies b;
	HookLog log;
	sched_set_netpoll(hook, &log);
	log.on_call = [](int64_t delay) {
		// A real poller would block forever on -1; recorded and checked below.
		if (delay > 0)
			sleep_ns(delay);
		return 0;
	};
	b.spawn([] { coro_park("forever"); }, "parked");
	sched_hold();
	sched_timer t;
	sched_timer_init(&t, [](sched_timer *, void *) { sched_stop(); }, nullptr);
	REQUIRE(sched_timer_set(&t, sched_now() + 5000000) == 0);
	sched_run();
	CHECK(stats().timers_fired == 1);
	CHECK(stats().live == 1);
	for (int64_t d : log.delays)
		CHECK(d >= 0);
	sched_release();
}

TEST_CASE("stats count rounds, switches, spawns and exits", "[loop]")
{
	SchedScope scope;
	Bodies b;
	b.spawn([] { coro_yield(); coro_yield(); });
	sched_run();
	sched_stats s = stats();
	CHECK(s.spawned == 1);
	CHECK(s.exited == 1);
	CHECK(s.rounds == 3);
	CHECK(s.switches == 6);  // in and out, per round
	CHECK(s.live == 0);
}
