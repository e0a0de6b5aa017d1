// Timer heap: order by deadline, ties in insertion order, modify, cancel,
// and a randomized comparison against a sorted reference.
#include "helpers.hpp"

#include <algorithm>
#include <random>

namespace {

struct Rec {
	sched_timer t;
	int id;
	std::vector<int> *fired;
};

void record(sched_timer *t, void *arg)
{
	(void)t;
	Rec *r = static_cast<Rec *>(arg);
	r->fired->push_back(r->id);
}

}  // namespace

TEST_CASE("timers fire in deadline order", "[timer]")
{
	SchedScope scope;
	std::vector<int> fired;
	Rec r[3];
	const int64_t now = sched_now();
	const int64_t at[3] = { now + 3000000, now + 1000000, now + 2000000 };

	for (int i = 0; i < 3; i++) {
		r[i] = Rec{ {}, i, &fired };
		sched_timer_init(&r[i].t, record, &r[i]);
		REQUIRE(sched_timer_set(&r[i].t, at[i]) == 0);
		CHECK(sched_timer_pending(&r[i].t));
	}
	sched_run();  // pending timers alone keep the loop alive
	CHECK(fired == std::vector<int>{ 1, 2, 0 });
	CHECK(sched_now() >= at[0]);
	for (auto &x : r)
		CHECK_FALSE(sched_timer_pending(&x.t));
	CHECK(stats().timers_fired == 3);
}

TEST_CASE("equal deadlines fire in insertion order", "[timer]")
{
	SchedScope scope;
	std::vector<int> fired, want;
	std::vector<Rec> r(300);
	const int64_t when = sched_now() + 1000000;

	for (int i = 0; i < 300; i++) {
		r[i] = Rec{ {}, i, &fired };
		sched_timer_init(&r[i].t, record, &r[i]);
		REQUIRE(sched_timer_set(&r[i].t, when) == 0);
		want.push_back(i);
	}
	sched_run();
	CHECK(fired == want);
}

TEST_CASE("cancelled timers never fire", "[timer]")
{
	SchedScope scope;
	std::vector<int> fired;
	std::vector<Rec> r(200);
	const int64_t now = sched_now();

	for (int i = 0; i < 200; i++) {
		r[i] = Rec{ {}, i, &fired };
		sched_timer_init(&r[i].t, record, &r[i]);
		REQUIRE(sched_timer_set(&r[i].t, now + (i % 7) * 100000) == 0);
	}
	for (int i = 0; i < 200; i += 2)
		CHECK(sched_timer_cancel(&r[i].t));
	CHECK_FALSE(sched_timer_cancel(&r[0].t));  // second cancel: not pending
	sched_run();
	CHECK(fired.size() == 100);
	for (int id : fired)
		CHECK(id % 2 == 1);
}

TEST_CASE("a timer cancelled by an earlier callback does not fire", "[timer]")
{
	SchedScope scope;
	std::vector<int> fired;
	Rec victim{ {}, 2, &fired };
	struct Killer {
		sched_timer t;
		sched_timer *victim;
		bool cancelled;
	} killer{ {}, &victim.t, false };
	const int64_t when = sched_now() - 1;  // both already due

	sched_timer_init(&killer.t, [](sched_timer *, void *arg) {
		Killer *k = static_cast<Killer *>(arg);
		k->cancelled = sched_timer_cancel(k->victim);
	}, &killer);
	sched_timer_init(&victim.t, record, &victim);
	REQUIRE(sched_timer_set(&killer.t, when) == 0);
	REQUIRE(sched_timer_set(&victim.t, when) == 0);
	sched_run();
	CHECK(killer.cancelled);
	CHECK(fired.empty());
}

TEST_CASE("modifying a pending timer moves it", "[timer]")
{
	SchedScope scope;
	std::vector<int> fired;
	Rec a{ {}, 1, &fired }, b{ {}, 2, &fired }, c{ {}, 3, &fired };
	const int64_t now = sched_now();

	sched_timer_init(&a.t, record, &a);
	sched_timer_init(&b.t, record, &b);
	sched_timer_init(&c.t, record, &c);
	REQUIRE(sched_timer_set(&a.t, now + 3600 * 1000000000LL) == 0);  // an hour
	REQUIRE(sched_timer_set(&b.t, now + 2000000) == 0);
	REQUIRE(sched_timer_set(&c.t, now + 2000000) == 0);
	REQUIRE(sched_timer_set(&a.t, now + 1000000) == 0);  // pulled in
	REQUIRE(sched_timer_set(&b.t, now + 2000000) == 0);  // same time, set again: after c
	sched_run();
	CHECK(fired == std::vector<int>{ 1, 3, 2 });
	CHECK(stats().timers_fired == 3);
}

TEST_CASE("a callback can re-arm its own timer", "[timer]")
{
	SchedScope scope;
	struct Tick {
		sched_timer t;
		int n;
		int64_t last;
	} tick{ {}, 0, 0 };

	sched_timer_init(&tick.t, [](sched_timer *t, void *arg) {
		Tick *k = static_cast<Tick *>(arg);
		k->last = sched_now();
		if (++k->n < 5)
			sched_timer_set(t, k->last + 500000);
	}, &tick);
	const int64_t start = sched_now();
	REQUIRE(sched_timer_set(&tick.t, start) == 0);
	sched_run();
	CHECK(tick.n == 5);
	CHECK(tick.last - start >= 4 * 500000);
}

TEST_CASE("callbacks run in scheduler context and can wake coroutines", "[timer]")
{
	SchedScope scope;
	Bodies b;
	bool in_coro = true;
	bool woke = false;
	coro *c = b.spawn([&] { coro_park("timer"); woke = true; });
	struct W {
		sched_timer t;
		coro *c;
		bool *in_coro;
	} w{ {}, c, &in_coro };

	sched_timer_init(&w.t, [](sched_timer *, void *arg) {
		W *x = static_cast<W *>(arg);
		*x->in_coro = coro_self() != nullptr;
		coro_ready(x->c);
	}, &w);
	REQUIRE(sched_timer_set(&w.t, sched_now() + 1000000) == 0);
	sched_run();
	CHECK(woke);
	CHECK_FALSE(in_coro);
}

TEST_CASE("randomized set/modify/cancel matches a sorted reference", "[timer]")
{
	SchedScope scope;
	std::mt19937_64 rng(12345);
	const int n = 3000;
	std::vector<int> fired;
	std::vector<Rec> r(n);
	struct Ref {
		int64_t when;
		uint64_t seq;
		int id;
		bool live;
	};
	std::vector<Ref> ref(n);
	uint64_t seq = 0;
	// All in the past, with many ties, so everything fires in one pass.
	const int64_t base = sched_now() - 1000000000;

	for (int i = 0; i < n; i++) {
		r[i] = Rec{ {}, i, &fired };
		sched_timer_init(&r[i].t, record, &r[i]);
		int64_t when = base + (int64_t)(rng() % 500);
		REQUIRE(sched_timer_set(&r[i].t, when) == 0);
		ref[i] = Ref{ when, seq++, i, true };
	}
	for (int k = 0; k < 4000; k++) {
		int i = (int)(rng() % n);
		if (rng() % 3 == 0) {
			CHECK(sched_timer_cancel(&r[i].t) == ref[i].live);
			ref[i].live = false;
		} else {
			int64_t when = base + (int64_t)(rng() % 500);
			REQUIRE(sched_timer_set(&r[i].t, when) == 0);
			ref[i] = Ref{ when, seq++, i, true };
		}
	}
	std::vector<Ref> want;
	for (auto &x : ref)
		if (x.live)
			want.push_back(x);
	std::sort(want.begin(), want.end(), [](const Ref &a, const Ref &b) {
		return a.when != b.when ? a.when < b.when : a.seq < b.seq;
	});
	std::vector<int> want_ids;
	for (auto &x : want)
		want_ids.push_back(x.id);
	sched_run();
	CHECK(fired == want_ids);
	CHECK(stats().timers_fired == want_ids.size());
}
