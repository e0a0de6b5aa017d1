/*
 * Timers: a 4-ary min-heap of pointers to embedded sched_timer records,
 * keyed on (when, order). `order` is a global insertion counter, so equal
 * deadlines fire first-set first-fired. Each timer knows its heap index,
 * which makes modify and cancel O(log n) without searching. A 4-ary heap is
 * shallower than a binary one and its children share a cache line (Go's
 * runtime uses the same shape).
 */
#include "sched/internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NOT_PENDING UINT32_MAX

int64_t sched_now(void)
{
	return sched_clock_ns(CLOCK_MONOTONIC);
}

static bool fires_before(const sched_timer *a, const sched_timer *b)
{
	if (a->when != b->when)
		return a->when < b->when;
	return a->order < b->order;
}

static void place(timer_heap *h, uint32_t i, sched_timer *t)
{
	h->v[i] = t;
	t->heap_index = i;
}

static void sift_up(timer_heap *h, uint32_t i)
{
	sched_timer *t = h->v[i];

	while (i > 0) {
		uint32_t parent = (i - 1) / 4;
		if (!fires_before(t, h->v[parent]))
			break;
		place(h, i, h->v[parent]);
		i = parent;
	}
	place(h, i, t);
}

static uint32_t min_child(const timer_heap *h, uint32_t first)
{
	uint32_t end = first + 4 < h->len ? first + 4 : h->len;
	uint32_t best = first;

	for (uint32_t c = first + 1; c < end; c++)
		if (fires_before(h->v[c], h->v[best]))
			best = c;
	return best;
}

static void sift_down(timer_heap *h, uint32_t i)
{
	sched_timer *t = h->v[i];

	for (;;) {
		uint32_t first = 4 * i + 1;
		if (first >= h->len)
			break;
		uint32_t c = min_child(h, first);
		if (!fires_before(h->v[c], t))
			break;
		place(h, i, h->v[c]);
		i = c;
	}
	place(h, i, t);
}

static void heap_remove(timer_heap *h, uint32_t i)
{
	sched_timer *last = h->v[--h->len];

	h->v[i]->heap_index = NOT_PENDING;
	if (i == h->len)
		return;
	place(h, i, last);
	sift_down(h, i);
	sift_up(h, last->heap_index);
}

static int heap_grow(timer_heap *h)
{
	if (h->len < h->cap)
		return 0;
	uint32_t cap = h->cap ? h->cap * 2 : 64;
	if (cap <= h->cap)
		return -ENOMEM;
	sched_timer **v = realloc(h->v, sizeof(*v) * cap);
	if (!v)
		return -ENOMEM;
	h->v = v;
	h->cap = cap;
	return 0;
}

void sched_timer_init(sched_timer *timer, sched_timer_fn fn, void *arg)
{
	memset(timer, 0, sizeof(*timer));
	timer->fn = fn;
	timer->arg = arg;
	timer->heap_index = NOT_PENDING;
}

bool sched_timer_pending(const sched_timer *timer)
{
	return timer->heap_index != NOT_PENDING;
}

int sched_timer_set(sched_timer *timer, int64_t when)
{
	timer_heap *h = &sched_g.timers;

	/* A moved timer counts as set now: it queues behind existing ties. */
	timer->when = when;
	timer->order = h->next_order++;
	if (sched_timer_pending(timer)) {
		sift_down(h, timer->heap_index);
		sift_up(h, timer->heap_index);
		return 0;
	}
	int err = heap_grow(h);
	if (err)
		return err;
	place(h, h->len++, timer);
	sift_up(h, timer->heap_index);
	return 0;
}

bool sched_timer_cancel(sched_timer *timer)
{
	if (!sched_timer_pending(timer))
		return false;
	heap_remove(&sched_g.timers, timer->heap_index);
	return true;
}

int64_t timers_next(const timer_heap *h)
{
	return h->len ? h->v[0]->when : INT64_MAX;
}

/*
 * Fire what is due at `now`. Timers (re)armed by a callback during this pass
 * wait for the next round even if already due, so a callback that re-arms
 * itself in the past cannot keep the loop here forever.
 */
void timers_run(timer_heap *h, int64_t now)
{
	uint64_t horizon = h->next_order;

	while (h->len && h->v[0]->when <= now && h->v[0]->order < horizon) {
		sched_timer *t = h->v[0];
		heap_remove(h, 0);
		sched_g.stats.timers_fired++;
		t->fn(t, t->arg);
	}
}

void timers_free(timer_heap *h)
{
	for (uint32_t i = 0; i < h->len; i++)
		h->v[i]->heap_index = NOT_PENDING;
	free(h->v);
	memset(h, 0, sizeof(*h));
}
