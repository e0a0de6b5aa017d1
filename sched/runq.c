/*
 * Run queue: a FIFO ring plus one `runnext` slot (Go's P.runnext). The ring
 * only grows at spawn time (runq_reserve), so readying never allocates and
 * never fails: a coroutine is queued at most once.
 */
#include "sched/internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int runq_reserve(run_queue *q, uint32_t n)
{
	if (n <= q->cap)
		return 0;
	uint32_t cap = q->cap ? q->cap : 64;
	while (cap < n) {
		if (cap > UINT32_MAX / 2)
			return -ENOMEM;
		cap *= 2;
	}
	coro **ring = malloc(sizeof(*ring) * cap);
	if (!ring)
		return -ENOMEM;
	/* Unwrap the old ring so the head starts at index 0. */
	for (uint32_t i = 0; i < q->len; i++)
		ring[i] = q->ring[(q->head + i) & (q->cap - 1)];
	free(q->ring);
	q->ring = ring;
	q->cap = cap;
	q->head = 0;
	return 0;
}

void runq_push(run_queue *q, coro *c)
{
	if (q->len == q->cap)
		sched_fatal("run queue overflow (coroutine queued twice?)", c);
	q->ring[(q->head + q->len) & (q->cap - 1)] = c;
	q->len++;
}

/* The displaced runnext goes to the tail: it was ready first, it still runs. */
void runq_push_next(run_queue *q, coro *c)
{
	coro *old = q->runnext;

	q->runnext = c;
	if (old)
		runq_push(q, old);
}

static coro *pop_head(run_queue *q)
{
	coro *c = q->ring[q->head];

	q->head = (q->head + 1) & (q->cap - 1);
	q->len--;
	return c;
}

/*
 * runnext first, except that after SCHED_RUNNEXT_STREAK runnext picks in a
 * row the queue head gets a turn, so two coroutines readying each other
 * with coro_ready_next cannot starve everyone else.
 */
coro *runq_pop(run_queue *q)
{
	coro *c = q->runnext;

	if (c && (q->len == 0 || q->streak < SCHED_RUNNEXT_STREAK)) {
		q->runnext = NULL;
		q->streak = q->len ? q->streak + 1 : 0;
		return c;
	}
	q->streak = 0;
	return q->len ? pop_head(q) : NULL;
}

uint32_t runq_len(const run_queue *q)
{
	return q->len + (q->runnext != NULL);
}

void runq_free(run_queue *q)
{
	free(q->ring);
	memset(q, 0, sizeof(*q));
}
