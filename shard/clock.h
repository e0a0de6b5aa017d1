/* The one clock of shard/: CLOCK_MONOTONIC in nanoseconds. The supervisor's
 * loop, the admin endpoint and the slots' publish times all compare against
 * it, so they must read the same clock. Private to shard/. */
#ifndef FRAMEPROXY_SHARD_CLOCK_H
#define FRAMEPROXY_SHARD_CLOCK_H

#include "sched/sched.h"

static inline int64_t shard_monotonic_ns(void)
{
	return sched_clock_ns(CLOCK_MONOTONIC);
}

#endif
