/*
 * The loop: pick the next coroutine (timers first, then runnext/queue), run
 * it until it parks, yields or exits, and when nothing is runnable block in
 * the netpoll hook until the next timer. Every coroutine switches back to
 * this loop rather than to its successor, like Go's g0: exits and stack
 * frees then always happen on a stack that is not the one being freed.
 */
#include "sched/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

scheduler sched_g;

_Noreturn void sched_fatal(const char *what, const coro *c)
{
	fprintf(stderr, "sched: fatal: %s", what);
	if (c)
		fprintf(stderr, " (coroutine \"%s\")", c->name[0] ? c->name : "(unnamed)");
	fputc('\n', stderr);
	abort();
}

static size_t round_up(size_t n, size_t to)
{
	return (n + to - 1) / to * to;
}

int sched_init(const sched_config *config)
{
	if (sched_g.initialized)
		return -EALREADY;
	memset(&sched_g, 0, sizeof(sched_g));
	sched_g.page = (size_t)sysconf(_SC_PAGESIZE);
	size_t size = config && config->stack_size ? config->stack_size
		: SCHED_DEFAULT_STACK_SIZE;
	/* The record plus a few frames must fit above the guard page. */
	if (size < 2 * sched_g.page)
		size = 2 * sched_g.page;
	sched_g.stack_size = round_up(size, sched_g.page);
	sched_g.pool_max = config && config->stack_pool_max ? config->stack_pool_max : 1024;
	int err = runq_reserve(&sched_g.runq, 64);
	if (err)
		return err;
	err = stack_guard_install();
	if (err) {
		runq_free(&sched_g.runq);
		return err;
	}
	sched_g.initialized = true;
	return 0;
}

/* Coroutines still parked when the loop stopped are dropped with their stacks. */
static void drop_live(void)
{
	sched_g.pool_max = 0;  /* unmap rather than pool */
	while (sched_g.live) {
		coro *c = sched_g.live;
		sched_g.live = c->next;
		sched_timer_cancel(&c->sleep_timer);
		stack_put(c);
	}
}

void sched_shutdown(void)
{
	if (!sched_g.initialized || sched_g.running)
		return;
	drop_live();
	stack_pool_drain();
	timers_free(&sched_g.timers);
	runq_free(&sched_g.runq);
	stack_guard_remove();
	memset(&sched_g, 0, sizeof(sched_g));
}

void sched_stop(void)
{
	sched_g.stop = true;
}

void sched_get_stats(sched_stats *out)
{
	*out = sched_g.stats;
	out->runq_len = runq_len(&sched_g.runq);
}

const char *sched_switch_name(void)
{
	return SCHED_SWITCH_NAME;
}

void sched_set_netpoll(sched_netpoll_fn hook, void *context)
{
	sched_g.netpoll = hook;
	sched_g.netpoll_context = context;
}

void sched_hold(void)
{
	sched_g.holds++;
}

void sched_release(void)
{
	if (sched_g.holds == 0)
		sched_fatal("sched_release without sched_hold", NULL);
	sched_g.holds--;
}

static void call_netpoll(int64_t delay_ns)
{
	sched_g.since_poll = 0;
	if (delay_ns == 0)
		sched_g.stats.polls_nonblocking++;
	else
		sched_g.stats.polls_blocking++;
	sched_g.netpoll(sched_g.netpoll_context, delay_ns);
}

static void sleep_until(int64_t when)
{
	struct timespec ts = {
		.tv_sec = when / 1000000000,
		.tv_nsec = when % 1000000000,
	};
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

/*
 * Nothing is runnable. Returns false when the loop is done: nothing exists
 * that could ever make work again, or only a poller could and there is none.
 */
static bool idle(void)
{
	int64_t next = timers_next(&sched_g.timers);
	bool timers = next != INT64_MAX;

	if (!sched_g.stats.live && !timers && !sched_g.holds)
		return false;
	/* About to block: a good moment to give back unneeded stacks' pages,
	 * and the loop must wake when the scavenger wants to look again. */
	int64_t now = sched_now();
	int64_t scavenge = stack_pool_scavenge(now);
	if (!sched_g.netpoll) {
		if (!timers)
			return false;
		sleep_until(next < scavenge ? next : scavenge);
		return true;
	}
	if (scavenge < next)
		next = scavenge;
	call_netpoll(next == INT64_MAX ? -1 : next > now ? next - now : 0);
	return true;
}

void sched_run(void)
{
	if (!sched_g.initialized || sched_g.running)
		return;
	sched_g.running = true;
	sched_g.stop = false;
	while (!sched_g.stop) {
		if (sched_g.timers.len)
			timers_run(&sched_g.timers, sched_now());
		/* A timer callback may have stopped the loop: blocking now would hang. */
		if (sched_g.stop)
			break;
		coro *c = runq_pop(&sched_g.runq);
		if (!c) {
			if (!idle())
				break;
			continue;
		}
		/* A busy queue must not starve ready I/O: peek without blocking. */
		if (++sched_g.since_poll >= SCHED_POLL_INTERVAL && sched_g.netpoll)
			call_netpoll(0);
		coro_run(c);
	}
	sched_g.running = false;
}
