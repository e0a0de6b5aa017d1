// The overload guard's accounting (proxy/overload.h): what is held and
// pooled, the near and over thresholds, the pool's share of the budget,
// the accept pauses and the default budget.
#include <catch2/catch.hpp>

extern "C" {
#include "proxy/overload.h"
}

static int over_calls;
static void count_over(void *arg)
{
	(void)arg;
	over_calls++;
}

TEST_CASE("overload: off holds no bound", "[overload-unit]")
{
	overload o;

	overload_init(&o, 0);
	overload_take(&o, 1u << 30, false);
	CHECK(o.held == 1u << 30);
	CHECK_FALSE(overload_near(&o));
	CHECK(overload_excess(&o) == 0);
	CHECK(overload_may_accept(&o));
	CHECK(overload_give(&o, 1u << 30));
	CHECK(o.held == 0);
	CHECK(o.pooled == 1u << 30);
	CHECK(o.accept_pauses == 0);
}

TEST_CASE("overload: near at 90%, over past the budget", "[overload-unit]")
{
	overload o;

	overload_init(&o, 1000);
	over_calls = 0;
	o.on_over = count_over;
	overload_take(&o, 899, false);
	CHECK_FALSE(overload_near(&o));
	CHECK(overload_may_accept(&o));
	overload_take(&o, 1, false);
	CHECK(overload_near(&o));
	CHECK(overload_excess(&o) == 0);
	CHECK(over_calls == 0);
	overload_take(&o, 100, false);
	CHECK(overload_excess(&o) == 0); /* exactly at the budget */
	CHECK(over_calls == 0);
	overload_take(&o, 50, false);
	CHECK(overload_excess(&o) == 50);
	CHECK(over_calls == 1);
	overload_take(&o, 50, false);
	CHECK(over_calls == 2);
	CHECK(overload_excess(&o) == 100);
}

TEST_CASE("overload: the pool never makes the total pass the budget",
	  "[overload-unit]")
{
	overload o;

	overload_init(&o, 1000);
	overload_take(&o, 400, false);
	overload_take(&o, 400, false);
	overload_take(&o, 400, false);
	CHECK(o.held == 1200);
	/* 800 still held + 400 would be 1200: freed, not pooled. */
	CHECK_FALSE(overload_give(&o, 400));
	CHECK(o.held == 800);
	CHECK(o.pooled == 0);
	/* 400 held + 400: fits. */
	CHECK(overload_give(&o, 400));
	CHECK(o.pooled == 400);
	CHECK(o.held == 400);
	/* 0 held + 400 pooled + 400 = 800: fits. */
	CHECK(overload_give(&o, 400));
	CHECK(o.pooled == 800);
	CHECK(o.held == 0);
	/* From the pool: held again, pooled no more. */
	overload_take(&o, 400, true);
	CHECK(o.pooled == 400);
	CHECK(o.held == 400);
	overload_unpool(&o, 400);
	CHECK(o.pooled == 0);
	/* Never below zero, whatever the caller does. */
	overload_unpool(&o, 400);
	CHECK(o.pooled == 0);
}

TEST_CASE("overload: a pause is counted once per episode", "[overload-unit]")
{
	overload o;

	overload_init(&o, 100);
	CHECK(overload_may_accept(&o));
	overload_take(&o, 95, false);
	CHECK_FALSE(overload_may_accept(&o));
	CHECK_FALSE(overload_may_accept(&o));
	CHECK(o.accept_pauses == 1);
	CHECK(o.paused);
	overload_give(&o, 95);
	CHECK(overload_may_accept(&o));
	CHECK_FALSE(o.paused);
	overload_take(&o, 95, false);
	CHECK_FALSE(overload_may_accept(&o));
	CHECK(o.accept_pauses == 2);
}

TEST_CASE("overload: the default budget", "[overload-unit]")
{
	uint64_t gib = UINT64_C(1) << 30;

	CHECK(overload_default_budget(16 * gib, 4) == gib);
	CHECK(overload_default_budget(16 * gib, 1) == 4 * gib);
	CHECK(overload_default_budget(16 * gib, 0) == 4 * gib);
	CHECK(overload_default_budget(0, 2) == 0);
}

TEST_CASE("overload: near for small and odd budgets", "[overload-unit]")
{
	overload o;

	overload_init(&o, 10);
	overload_take(&o, 8, false);
	CHECK_FALSE(overload_near(&o));
	overload_take(&o, 1, false);
	CHECK(overload_near(&o));
	overload_init(&o, 2 * 1024 * 1024 + 7);
	overload_take(&o, (2 * 1024 * 1024 + 7) * 9 / 10 - 1, false);
	CHECK_FALSE(overload_near(&o));
	overload_take(&o, 1, false);
	CHECK(overload_near(&o));
}

TEST_CASE("overload: closes bring it down to the low mark", "[overload-unit]")
{
	overload o;

	overload_init(&o, 1000);
	over_calls = 0;
	o.on_over = count_over;
	overload_take(&o, 950, false);
	/* Near, not past, nobody starving: nothing to close. */
	CHECK(overload_shed_bytes(&o) == 0);
	overload_starving(&o);
	CHECK(over_calls == 1);
	CHECK(overload_shed_bytes(&o) == 150);
	overload_shed_done(&o);
	CHECK(overload_shed_bytes(&o) == 0);
	overload_take(&o, 100, false);
	CHECK(overload_shed_bytes(&o) == 250);
	overload_shed_done(&o); /* past the budget is no flag: still asked */
	CHECK(overload_shed_bytes(&o) == 250);
	overload_give(&o, 300);
	CHECK(overload_shed_bytes(&o) == 0);
	/* Starving while under the low mark asks for nothing. */
	overload_starving(&o);
	CHECK(overload_shed_bytes(&o) == 0);
	/* Off: starving does nothing. */
	overload_init(&o, 0);
	o.on_over = count_over;
	over_calls = 0;
	overload_starving(&o);
	CHECK(over_calls == 0);
	CHECK(overload_shed_bytes(&o) == 0);
}

TEST_CASE("overload: rpc held replies count against the budget", "[overload-unit]")
{
	overload o;

	overload_init(&o, 1000);
	over_calls = 0;
	o.on_over = count_over;
	overload_take(&o, 500, false);
	CHECK_FALSE(overload_near(&o));
	overload_set_rpc_held(&o, 400);
	CHECK(overload_total(&o) == 900);
	CHECK(overload_near(&o));
	CHECK(over_calls == 0);
	overload_set_rpc_held(&o, 600);
	CHECK(over_calls == 1);
	CHECK(overload_excess(&o) == 100);
	CHECK(overload_shed_bytes(&o) == 300);
	/* The pool keeps nothing that would pass the budget with them. */
	CHECK_FALSE(overload_give(&o, 500));
	CHECK(o.pooled == 0);
	overload_set_rpc_held(&o, 0);
	CHECK(overload_total(&o) == 0);
	CHECK_FALSE(overload_near(&o));
}
