/* The one clock of shard/: CLOCK_MONOTONIC in nanoseconds. The supervisor's
 * loop, the admin endpoint and the slots' publish times all compare against
 * it, so they must read the same clock. Private to shard/. */
#ifndef FRAMEPROXY_SHARD_CLOCK_H
#define FRAMEPROXY_SHARD_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t shard_monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

#endif
