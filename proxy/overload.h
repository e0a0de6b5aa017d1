/*
 * The overload guard's accounting: one per shard (the server owns it and
 * hands a pointer to every relay group). It counts the bytes the shard
 * holds in user space for connections: relay buffers taken (their
 * capacity, not just what is filled) and pooled, and rpc mode's reply
 * bytes held for clients (looked at by the server every publish). Near the budget
 * (OVERLOAD_NEAR_PERCENT) the shard stops accepting and relays stop taking
 * buffers for client input; past it, the server closes the connections
 * holding the most (reason `overload`) until what is held is down to
 * OVERLOAD_LOW_PERCENT. Input that waited near the budget for long
 * (connections whose peers stopped reading hold it there without ever
 * going past) starts the same closes: a shard never stalls at the mark.
 *
 * Pure bookkeeping: no I/O, no clock, so it is tested on its own.
 */
#ifndef FRAMEPROXY_PROXY_OVERLOAD_H
#define FRAMEPROXY_PROXY_OVERLOAD_H

#include <stdbool.h>
#include <stdint.h>

/* Accepting and client reads pause at this share of the budget. */
#define OVERLOAD_NEAR_PERCENT 90
/* Closes go on until what is held is down to this share: back under the
 * near mark, so that what waited can move. */
#define OVERLOAD_LOW_PERCENT 80
/* max_buffer_memory's default: this fraction of physical memory, divided
 * by the number of shards. */
#define OVERLOAD_DEFAULT_DIVISOR 4

typedef void (*overload_over_fn)(void *arg);

typedef struct overload {
	uint64_t budget;   /* bytes; 0 = the guard is off */
	uint64_t held;     /* in buffers taken now */
	uint64_t pooled;   /* in idle buffers kept for reuse */
	uint64_t rpc_held; /* rpc mode: reply bytes held for clients, as last
			    * looked at (overload_set_rpc_held) */
	uint64_t accept_pauses; /* times accepting paused near the budget */
	bool paused;       /* accepting is paused now (one pause counted) */
	bool starved;      /* input waited long near the budget */
	/* Called when a take leaves `held` past the budget (the server
	 * schedules the closes there, never inside the taker's call). */
	overload_over_fn on_over;
	void *on_over_arg;
} overload;

void overload_init(overload *o, uint64_t budget);
/* A buffer of `bytes` taken (from the pool when `from_pool`). */
void overload_take(overload *o, uint64_t bytes, bool from_pool);
/* A buffer of `bytes` given back: true when it may be pooled (the pool
 * never makes the total pass the budget), false to free it. */
bool overload_give(overload *o, uint64_t bytes);
/* rpc mode's held reply bytes, summed over the shard's clients now. */
void overload_set_rpc_held(overload *o, uint64_t bytes);
/* What counts against the budget: held buffers and rpc held replies. */
uint64_t overload_total(const overload *o);
/* A pooled buffer freed (the pool is trimmed). */
void overload_unpool(overload *o, uint64_t bytes);
/* At or past OVERLOAD_NEAR_PERCENT of the budget: no new client input. */
bool overload_near(const overload *o);
/* Bytes held past the budget, 0 when under (or off). */
uint64_t overload_excess(const overload *o);
/* Input has waited long near the budget: closes are wanted (on_over). */
void overload_starving(overload *o);
/* Bytes the closes should free now: past the budget, or starving, down
 * to OVERLOAD_LOW_PERCENT; 0 when nothing is to be closed. */
uint64_t overload_shed_bytes(const overload *o);
/* The closes for the bytes overload_shed_bytes asked were made. */
void overload_shed_done(overload *o);
/* The acceptor asks whether to accept: false near the budget. Counts a
 * pause each time accepting stops after it went on. */
bool overload_may_accept(overload *o);
/* max_buffer_memory's default for `mem_total` bytes of physical memory
 * and `shards` shards (0 counts as 1). */
uint64_t overload_default_budget(uint64_t mem_total, unsigned shards);

#endif
