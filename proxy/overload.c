#include "proxy/overload.h"

static uint64_t percent_of(uint64_t n, unsigned percent)
{
	return n / 100 * percent + n % 100 * percent / 100;
}

void overload_init(overload *o, uint64_t budget)
{
	*o = (overload){.budget = budget};
}

uint64_t overload_total(const overload *o)
{
	return o->held + o->rpc_held;
}

void overload_set_rpc_held(overload *o, uint64_t bytes)
{
	o->rpc_held = bytes;
	if (o->on_over && overload_excess(o) > 0)
		o->on_over(o->on_over_arg);
}

void overload_take(overload *o, uint64_t bytes, bool from_pool)
{
	if (from_pool)
		o->pooled -= bytes < o->pooled ? bytes : o->pooled;
	o->held += bytes;
	if (o->on_over && overload_excess(o) > 0)
		o->on_over(o->on_over_arg);
}

bool overload_give(overload *o, uint64_t bytes)
{
	o->held -= bytes < o->held ? bytes : o->held;
	if (o->budget && overload_total(o) + o->pooled + bytes > o->budget)
		return false;
	o->pooled += bytes;
	return true;
}

void overload_unpool(overload *o, uint64_t bytes)
{
	o->pooled -= bytes < o->pooled ? bytes : o->pooled;
}

bool overload_near(const overload *o)
{
	return o->budget &&
	       overload_total(o) >= percent_of(o->budget, OVERLOAD_NEAR_PERCENT);
}

uint64_t overload_excess(const overload *o)
{
	uint64_t total = overload_total(o);

	return o->budget && total > o->budget ? total - o->budget : 0;
}

void overload_starving(overload *o)
{
	if (!o->budget)
		return;
	o->starved = true;
	if (o->on_over)
		o->on_over(o->on_over_arg);
}

uint64_t overload_shed_bytes(const overload *o)
{
	uint64_t low = percent_of(o->budget, OVERLOAD_LOW_PERCENT);

	uint64_t total = overload_total(o);

	if (!o->budget || !(total > o->budget || o->starved))
		return 0;
	return total > low ? total - low : 0;
}

void overload_shed_done(overload *o)
{
	o->starved = false;
}

bool overload_may_accept(overload *o)
{
	if (!overload_near(o)) {
		o->paused = false;
		return true;
	}
	if (!o->paused) {
		o->paused = true;
		o->accept_pauses++;
	}
	return false;
}

uint64_t overload_default_budget(uint64_t mem_total, unsigned shards)
{
	return mem_total / OVERLOAD_DEFAULT_DIVISOR / (shards ? shards : 1);
}
