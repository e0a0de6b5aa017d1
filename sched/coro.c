/* Coroutines: spawn, the switch in and out of the loop, park/ready, sleep. */
#include "sched/internal.h"

#include <errno.h>
#include <string.h>

#if defined(SCHED_ASAN)
#include <sanitizer/common_interface_defs.h>
#endif

static void *stack_lo(const coro *c)
{
	return c->stack.base + sched_g.page;
}

/* Usable bytes from the guard page up to the record. */
static size_t stack_len(const coro *c)
{
	return (size_t)((const char *)c - (const char *)stack_lo(c));
}

/*
 * Switch from `from` to `to`. ASan keeps one shadow stack per fiber and must
 * be told about each switch, or it reports the other stack's frames as
 * overflows; a fiber that never comes back passes NULL to free its fake stack.
 */
static void switch_ctx(sched_ctx *from, const sched_ctx *to,
	const void *to_lo, size_t to_size, bool from_exits)
{
	sched_g.stats.switches++;
#if defined(SCHED_ASAN)
	void *fake = NULL;
	__sanitizer_start_switch_fiber(from_exits ? NULL : &fake, to_lo, to_size);
	ctx_swap(from, to);
	__sanitizer_finish_switch_fiber(fake, NULL, NULL);
#else
	(void)to_lo;
	(void)to_size;
	(void)from_exits;
	ctx_swap(from, to);
#endif
}

static void to_loop(coro *c, bool exits)
{
	switch_ctx(&c->ctx, &sched_g.ctx, sched_g.loop_stack_lo,
		sched_g.loop_stack_size, exits);
}

static void unlink_live(coro *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		sched_g.live = c->next;
	if (c->next)
		c->next->prev = c->prev;
}

void coro_run(coro *c)
{
	c->state = CORO_RUNNING;
	sched_g.current = c;
	sched_g.stats.rounds++;
	switch_ctx(&sched_g.ctx, &c->ctx, stack_lo(c), stack_len(c), false);
	sched_g.current = NULL;
	if (c->state != CORO_DEAD)
		return;
	/* Back on the loop's stack, the dead coroutine's stack can be recycled. */
	unlink_live(c);
	sched_g.stats.live--;
	sched_g.stats.exited++;
	stack_put(c);
}

static void coro_main(void *arg)
{
	coro *c = arg;

#if defined(SCHED_ASAN)
	/* The loop's stack bounds are only learnt on entering a fiber. */
	__sanitizer_finish_switch_fiber(NULL, &sched_g.loop_stack_lo,
		&sched_g.loop_stack_size);
#endif
	c->entry(c->arg);
	coro_exit();
}

static coro *current_or_die(const char *what)
{
	coro *c = sched_g.current;

	if (!c)
		sched_fatal(what, NULL);
	return c;
}

static size_t stack_size_for(const coro_opts *opts)
{
	if (!opts || !opts->stack_size)
		return sched_g.stack_size;
	/* The record and the first frames need the top page; then round up. */
	size_t min = 2 * sched_g.page;
	size_t size = opts->stack_size < min ? min : opts->stack_size;
	return (size + sched_g.page - 1) / sched_g.page * sched_g.page;
}

static void link_live(coro *c)
{
	c->next = sched_g.live;
	if (c->next)
		c->next->prev = c;
	sched_g.live = c;
	sched_g.stats.live++;
	sched_g.stats.spawned++;
}

coro *coro_spawn(coro_entry_fn entry, void *arg, const coro_opts *opts)
{
	if (!sched_g.initialized || !entry) {
		errno = EINVAL;
		return NULL;
	}
	/* Room in the ring for every live coroutine: readying never allocates. */
	if (runq_reserve(&sched_g.runq, sched_g.stats.live + 1) != 0) {
		errno = ENOMEM;
		return NULL;
	}
	coro *c = stack_get(stack_size_for(opts));
	if (!c)
		return NULL;  /* errno from mmap/mprotect */
	coro_stack st = c->stack;
	memset(c, 0, sizeof(*c));
	c->stack = st;
	c->entry = entry;
	c->arg = arg;
	if (opts && opts->name)
		strncpy(c->name, opts->name, SCHED_NAME_MAX - 1);
	sched_timer_init(&c->sleep_timer, NULL, c);
	ctx_make(&c->ctx, stack_lo(c), stack_len(c), coro_main, c);
	link_live(c);
	c->state = CORO_RUNNABLE;
	runq_push(&sched_g.runq, c);
	return c;
}

_Noreturn void coro_exit(void)
{
	coro *c = current_or_die("coro_exit outside a coroutine");

	c->state = CORO_DEAD;
	to_loop(c, true);
	sched_fatal("dead coroutine resumed", c);
}

void coro_yield(void)
{
	coro *c = current_or_die("coro_yield outside a coroutine");

	c->state = CORO_RUNNABLE;
	runq_push(&sched_g.runq, c);
	to_loop(c, false);
}

void coro_park(const char *reason)
{
	coro *c = current_or_die("coro_park outside a coroutine");

	c->state = CORO_PARKED;
	c->park_reason = reason ? reason : "parked";
	to_loop(c, false);
	c->park_reason = NULL;
}

static void make_runnable(coro *c)
{
	if (!c || c->state != CORO_PARKED)
		sched_fatal("coro_ready on a coroutine that is not parked", c);
	c->state = CORO_RUNNABLE;
}

void coro_ready(coro *coroutine)
{
	make_runnable(coroutine);
	runq_push(&sched_g.runq, coroutine);
}

void coro_ready_next(coro *coroutine)
{
	make_runnable(coroutine);
	runq_push_next(&sched_g.runq, coroutine);
}

static void sleep_done(sched_timer *timer, void *arg)
{
	(void)timer;
	coro_ready(arg);
}

void coro_sleep(int64_t ns)
{
	coro *c = current_or_die("coro_sleep outside a coroutine");

	if (ns <= 0) {
		coro_yield();
		return;
	}
	int64_t deadline = sched_now() + ns;
	sched_timer_init(&c->sleep_timer, sleep_done, c);
	if (sched_timer_set(&c->sleep_timer, deadline) == 0) {
		coro_park("sleep");
		return;
	}
	/* No memory to grow the heap: still never wake early, just spin politely. */
	while (sched_now() < deadline)
		coro_yield();
}

coro *coro_self(void)
{
	return sched_g.current;
}

const char *coro_name(const coro *coroutine)
{
	return coroutine ? coroutine->name : "";
}

const char *coro_park_reason(const coro *coroutine)
{
	if (!coroutine || coroutine->state != CORO_PARKED)
		return NULL;
	return coroutine->park_reason;
}
