/* clock.h — CLOCK_MONOTONIC for the tools that do not link sched/. */
#ifndef FRAMEPROXY_TOOLS_CLOCK_H
#define FRAMEPROXY_TOOLS_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t tool_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

static inline int64_t tool_now_ms(void)
{
	return tool_now_ns() / 1000000;
}

#endif
