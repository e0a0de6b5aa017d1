/*
 * metrics — the shared mapping of shard_slots (shard/shard.h) and how the
 * supervisor turns it into Prometheus text (metrics_prom.c) and JSON
 * (metrics_json.c). Private to shard/.
 *
 * The supervisor maps the slots once, before it forks (metrics_map), claims
 * a slot for every shard it starts (metrics_claim) and releases it when it
 * has reaped that shard's process (metrics_release). Releasing folds the
 * slot's monotonic counters into *retired totals* in the supervisor's own
 * memory, keyed by shard index, (index, listener) and (index, listener,
 * upstream), so a counter labelled shard="i" never goes backwards across a
 * restart or a reload. Gauges (active connections, run-queue length, live
 * coroutines, RSS, upstream up) come only from live slots.
 *
 * A value for shard index i is: retired totals of i + the sum over live
 * slots (STARTING, READY, RETIRING, DRAINING) of index i. During a reload an
 * old shard that retires and its replacement share an index: their gauges
 * are summed, except upstream `up` and the poller name, which come from the
 * newest generation that has them. Listener and upstream series of a
 * STARTING slot are left out until it is READY: its names may still be being
 * written (shard.h: names are written before the state becomes READY).
 *
 * Prometheus (text format 0.0.4): every family has # HELP and # TYPE, names
 * start with frameproxy_, counters end in _total. Per shard {shard}:
 *   poller_{waits,events,syscalls,polls,submits}_total,
 *   sched_{rounds,switches}_total, sched_runq_length, sched_coroutines,
 *   shard_cpu_seconds_total{mode="user"|"system"}, shard_resident_bytes,
 *   shard_up (1 when a READY slot has the index), shard_info{poller} 1 (only
 *   for an index with a live slot that has published its poller).
 * Per listener {shard,listener}: connections_accepted_total,
 *   connections_active, connections_closed_total{reason},
 *   accept_errors_total, frames_total and bytes_total
 *   {direction="client_to_upstream"|"upstream_to_client"}.
 * Per upstream {shard,listener,upstream}: upstream_connects_total,
 *   upstream_connect_failures_total, upstream_ejections_total, and
 *   upstream_up (only for upstreams some live slot has).
 * Supervisor: shards (configured), shards_retiring, shard_restarts_total,
 *   reloads_total, start_time_seconds.
 *
 * JSON (metrics_render_json), one object, for tools such as frametop:
 *
 * {"pid":S, "started_unix_s":F, "uptime_s":F, "shards_configured":N,
 *  "reloads":N, "restarts":N, "retiring":N,
 *  "shards":[
 *   {"shard":I, "pid":P, "state":"ready", "generation":G, "poller":"epoll",
 *    "processes":[{"pid":P, "state":"retiring", "generation":G}, ...],
 *    "connections_active":N, "accepted":N, "accept_errors":N,
 *    "frames_in":N, "frames_out":N, "bytes_in":N, "bytes_out":N,
 *    "cpu_user_s":F, "cpu_system_s":F, "rss_bytes":N,
 *    "runq_length":N, "coroutines":N, "sched_rounds":N, "sched_switches":N,
 *    "poller_waits":N, "poller_events":N, "poller_syscalls":N,
 *    "poller_polls":N, "poller_submits":N,
 *    "listeners":[{"name":"api", "active":N, "accepted":N,
 *      "accept_errors":N, "frames_in":N, "frames_out":N, "bytes_in":N,
 *      "bytes_out":N, "closed":{"<reason>":N, ...}}, ...],
 *    "upstreams":[{"listener":"api", "name":"10.0.0.2:9000", "up":0|1,
 *      "connects":N, "connect_failures":N, "ejections":N}, ...]}, ...]}
 *
 * One entry per shard index 0..shards-1, in order. "in" is client ->
 * upstream, "out" upstream -> client; the shard's totals are the sums over
 * its listeners. pid, state, generation and poller are the newest live
 * slot's ("processes" lists every live one): an index with no live slot
 * has pid 0, state "down", generation 0, poller "". Counters are
 * monotonic like the Prometheus ones (frametop derives rates from them);
 * seconds are decimals with up to 9 fraction digits; an upstream that no
 * live slot has any more keeps its counters with "up":0.
 */
#ifndef FRAMEPROXY_SHARD_METRICS_H
#define FRAMEPROXY_SHARD_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shard/shard.h"
#include "shard/strbuf.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Counters of one shard index that survive its processes. */
typedef struct metrics_shard_totals {
	uint64_t sched_rounds;
	uint64_t sched_switches;
	uint64_t poll_waits;
	uint64_t poll_events;
	uint64_t poll_syscalls;
	uint64_t poll_polls;
	uint64_t poll_submits;
	uint64_t cpu_user_ns;
	uint64_t cpu_system_ns;
	uint64_t log_lines_dropped;
} metrics_shard_totals;

/* c.name is the listener; c.active is a gauge, 0 in the retired table. */
typedef struct metrics_listener_totals {
	uint32_t shard;
	shard_listener_counters c;
} metrics_listener_totals;

/* c.name is the upstream; c.up is a gauge (see has_up), c.listener unused. */
typedef struct metrics_upstream_totals {
	uint32_t shard;
	char listener[SHARD_NAME_MAX];
	shard_upstream_counters c;
	bool has_up;                  /* some live slot has this upstream */
	uint32_t up_generation;       /* the newest one, which c.up is from */
} metrics_upstream_totals;

/* Series keyed by shard index (and names), in the supervisor's memory. */
typedef struct metrics_table {
	metrics_shard_totals *shards; /* [shard_count], by index */
	uint32_t shard_count;
	metrics_listener_totals *listeners;
	size_t listener_count, listener_cap;
	metrics_upstream_totals *upstreams;
	size_t upstream_count, upstream_cap;
} metrics_table;

typedef struct shard_metrics {
	shard_slot *slots;            /* MAP_SHARED, inherited by the shards */
	uint32_t slot_count;
	size_t map_len;
	metrics_table retired;        /* private to the supervisor */
} shard_metrics;

/* What the supervisor knows that the slots do not. */
typedef struct metrics_view {
	uint32_t shards;              /* indexes 0..shards-1 are rendered */
	const char *const *reason_names; /* closed[j] is reason j */
	uint32_t reason_count;        /* at most SHARD_MAX_REASONS are used */
	int32_t pid;                  /* the supervisor's */
	int64_t started_unix_ns;      /* the supervisor's start, CLOCK_REALTIME */
	int64_t now_unix_ns;          /* 0: read CLOCK_REALTIME */
	uint64_t reloads;
	uint64_t restarts;            /* dead shards replaced */
} metrics_view;

/* Before forking: slot_count zeroed (FREE) slots. 0, -EINVAL or -errno. */
int metrics_map(shard_metrics *m, uint32_t slot_count);
/* Unmaps and frees the retired totals; harmless on a zeroed struct. */
void metrics_unmap(shard_metrics *m);

/* A FREE slot, zeroed, STARTING, with index and generation set; NULL if
 * every slot is in use. */
shard_slot *metrics_claim(shard_metrics *m, uint32_t index,
			  uint32_t generation);
/*
 * After the slot's process has been reaped: fold its counters into the
 * retired totals, then mark it FREE. A FREE slot or a pointer outside the
 * mapping is ignored. Should memory for a new retired series run out, that
 * series' counts are lost (the slot is freed all the same).
 */
void metrics_release(shard_metrics *m, shard_slot *slot);

typedef struct metrics_proc {
	uint32_t generation;
	int32_t pid;
	shard_state state;
} metrics_proc;

/* Per shard index: the gauges of its live slots and where its series are. */
typedef struct metrics_live {
	uint64_t runq_len;
	uint64_t coroutines;
	uint64_t rss_bytes;
	uint32_t ready;               /* READY slots */
	bool has_newest;
	metrics_proc newest;
	bool has_poller;
	uint32_t poller_generation;
	char poller[16];
	size_t l_from, l_to;          /* ranges in the render's table */
	size_t u_from, u_to;
	size_t p_from, p_to;          /* range in the render's procs */
} metrics_live;

typedef struct metrics_scrape {
	const metrics_view *v;
	metrics_table t;              /* retired + live, grouped by index */
	metrics_live *live;           /* [v->shards] */
	metrics_proc *procs;          /* live slots, grouped by index */
	size_t proc_count;
	uint32_t retiring;            /* live slots RETIRING or DRAINING */
} metrics_scrape;

/* What a render shows, from the retired totals and the live slots; free it
 * with metrics_scrape_free even on failure. 0 or -ENOMEM. */
int metrics_collect(metrics_scrape *c, shard_metrics *m, const metrics_view *v);
void metrics_scrape_free(metrics_scrape *c);
/* Adds s to d: counters always, the `active` gauge only `gauges`. */
void metrics_listener_add(shard_listener_counters *d,
			  const shard_listener_counters *s, bool gauges);
/* The name of close reason j, or "reason<j>" written into buf. */
const char *metrics_reason_name(const metrics_view *v, uint32_t j,
				char buf[16]);
uint32_t metrics_reason_count(const metrics_view *v);

/* Append to `out`. 0 or -ENOMEM (out may then hold part of the text). */
int metrics_render_prometheus(shard_metrics *m, const metrics_view *v,
			      strbuf *out);
int metrics_render_json(shard_metrics *m, const metrics_view *v,
			strbuf *out);

/* "free", "starting", "ready", "retiring", "draining". */
const char *metrics_state_name(shard_state state);

#ifdef __cplusplus
}
#endif

#endif
