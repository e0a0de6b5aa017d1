// Run queue order: FIFO for coro_ready and yield, runnext first for
// coro_ready_next, and a ready_next ping-pong pair cannot starve the rest.
#include "helpers.hpp"

#include <string>

TEST_CASE("spawned coroutines run in spawn order", "[runq]")
{
	SchedScope scope;
	Bodies b;
	std::string trace;

	for (char ch = 'a'; ch <= 'e'; ch++)
		b.spawn([&, ch] { trace += ch; coro_yield(); trace += ch; });
	sched_run();
	CHECK(trace == "abcdeabcde");
}

TEST_CASE("coro_ready appends to the tail in call order", "[runq]")
{
	SchedScope scope;
	Bodies b;
	std::string trace;
	coro *c[3];

	for (int i = 0; i < 3; i++)
		c[i] = b.spawn([&, i] { coro_park("test"); trace += char('0' + i); });
	b.spawn([&] {
		coro_ready(c[2]);
		coro_ready(c[0]);
		coro_ready(c[1]);
		trace += 'w';
	});
	sched_run();
	CHECK(trace == "w201");
}

TEST_CASE("coro_ready_next runs before the queue; a displaced runnext goes to the tail", "[runq]")
{
	SchedScope scope;
	Bodies b;
	std::string trace;
	coro *p[3];

	for (int i = 0; i < 3; i++)
		p[i] = b.spawn([&, i] { coro_park("test"); trace += char('0' + i); });
	b.spawn([&] {
		b.spawn([&] { trace += 'q'; });  // already queued, at the tail
		coro_ready_next(p[0]);
		coro_ready_next(p[1]);           // p0 moves to the tail behind q
		coro_ready(p[2]);
		trace += 'w';
	});
	sched_run();
	CHECK(trace == "w1q02");
}

TEST_CASE("a ready_next ping-pong pair cannot starve the queue", "[runq]")
{
	SchedScope scope;
	Bodies b;
	const int exchanges = 20000;
	int count = 0;
	bool done = false;
	std::vector<int> seen_by_others;
	coro *q = nullptr, *p = nullptr;

	q = b.spawn([&] {
		for (;;) {
			coro_park("pong");
			if (done)
				return;
			count++;
			coro_ready_next(p);
		}
	}, "pong");
	p = b.spawn([&] {
		for (int i = 0; i < exchanges; i++) {
			count++;
			coro_ready_next(q);
			coro_park("ping");
		}
		done = true;
		coro_ready(q);
	}, "ping");
	// Two others that keep coming back to the tail.
	for (int k = 0; k < 2; k++) {
		b.spawn([&] {
			for (int i = 0; i < 50; i++) {
				seen_by_others.push_back(count);
				coro_yield();
			}
		});
	}
	sched_run();
	REQUIRE(seen_by_others.size() == 100);
	CHECK(count == 2 * exchanges);
	// Without the bound both would only run after all 40,000 exchanges.
	int max_gap = 0;
	for (size_t i = 1; i < seen_by_others.size(); i++)
		max_gap = std::max(max_gap, seen_by_others[i] - seen_by_others[i - 1]);
	CHECK(seen_by_others.back() < 2 * exchanges);
	CHECK(max_gap <= 64);
	CHECK(max_gap > 0);  // and the pair did get runnext priority in between
}

TEST_CASE("runq_len counts the queue and the runnext slot", "[runq]")
{
	SchedScope scope;
	Bodies b;
	uint32_t len_seen = 0;
	coro *x = b.spawn([&] { coro_park("test"); });
	coro *y = b.spawn([&] { coro_park("test"); });

	b.spawn([&] {
		coro_ready(x);
		coro_ready_next(y);
		len_seen = stats().runq_len;
	});
	CHECK(stats().runq_len == 3);
	sched_run();
	CHECK(len_seen == 2);
	CHECK(stats().runq_len == 0);
}
