/*
 * metrics — the shared mapping of shard_slots (shard/shard.h) and how the
 * supervisor turns it into Prometheus text (metrics_prom.c), /stats JSON
 * (metrics_json.c) and the tables of docs/METRICS.md (metrics_doc.c).
 * Private to shard/. docs/METRICS.md lists every family and says how values
 * add up and in what order they come; all of it follows from the tables
 * ("metric tables" in shard/shard.h): shard/runtime.h, the application's,
 * and the supervisor's below.
 *
 * The supervisor maps the slots once, before it forks (metrics_map), claims
 * a slot for every shard it starts (metrics_claim) and releases it when it
 * has reaped that shard's process (metrics_release). Releasing folds the
 * slot's values into *retired totals* in the supervisor's own memory, keyed
 * by shard index, (index, listener), (index, listener, upstream) and
 * (index, listener, server name). A
 * scrape (metrics_collect) takes only the counters from those, then merges
 * every live slot (STARTING, READY, RETIRING, DRAINING) of each index as
 * its table entries say; the listener, upstream and server-name series of
 * a STARTING slot are left out, its names may still be being written.
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

/* The scopes a table can be for. */
typedef enum metrics_scope {
	METRICS_SHARD,
	METRICS_LISTENER,
	METRICS_UPSTREAM,
	METRICS_NAME,                 /* a server line naming a host */
} metrics_scope;

/* A shard index's values: the runtime table's, then the application's. */
#define METRICS_APP_BASE SHARD_MAX_RUNTIME_VALUES
#define METRICS_MAX2(a, b) ((a) > (b) ? (a) : (b))
#define METRICS_SERIES_VALUES METRICS_MAX2(METRICS_MAX2( \
	SHARD_MAX_LISTENER_VALUES, SHARD_MAX_UPSTREAM_VALUES), \
	SHARD_MAX_RUNTIME_VALUES + SHARD_MAX_APP_VALUES)

/* The values of a shard index, or of a listener or an upstream under one. */
typedef struct metrics_series {
	uint32_t shard;
	char listener[SHARD_NAME_MAX]; /* an upstream's or server name's
					* listener, else "" */
	char name[SHARD_NAME_MAX];    /* the listener's, upstream's or server
				       * name's, else "" */
	char origin[SHARD_NAME_MAX];  /* an upstream's server name, or "" */
	bool live;                    /* some live slot has it */
	uint32_t newest;              /* generation of its SHARD_MERGE_NEWEST values */
	uint64_t values[METRICS_SERIES_VALUES];
} metrics_series;

typedef struct metrics_series_list {
	metrics_series *at;
	size_t count, cap;
} metrics_series_list;

/* Series keyed by shard index (and names), in the supervisor's memory. */
typedef struct metrics_table {
	metrics_series *shards;       /* [shard_count], by index */
	uint32_t shard_count;
	metrics_series_list listeners;
	metrics_series_list upstreams;
	metrics_series_list names;
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
	const shard_app_metrics *app; /* the application's tables, or NULL */
	int32_t pid;                  /* the supervisor's */
	int64_t started_unix_ns;      /* the supervisor's start, CLOCK_REALTIME */
	int64_t now_unix_ns;          /* 0: read CLOCK_REALTIME */
	uint64_t reloads;
	uint64_t restarts;            /* dead shards replaced */
	const char *version;          /* the supervisor's; NULL: unknown */
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
 * After the slot's process has been reaped: fold its values into the
 * retired totals, then mark it FREE. A FREE slot or a pointer outside the
 * mapping is ignored. Should memory for a new retired series run out, that
 * series' counts are lost (the slot is freed all the same).
 */
void metrics_release(shard_metrics *m, shard_slot *slot);

/* --- what a scrape shows -------------------------------------------------- */

typedef struct metrics_proc {
	uint32_t generation;
	int32_t pid;
	shard_state state;
} metrics_proc;

/* Per shard index: what is not a value, and where its series are. */
typedef struct metrics_live {
	uint32_t ready;               /* READY slots */
	bool has_newest;
	metrics_proc newest;
	bool has_poller;
	uint32_t poller_generation;
	char poller[16];
	size_t l_from, l_to;          /* ranges in the scrape's table */
	size_t u_from, u_to;
	size_t n_from, n_to;
	size_t p_from, p_to;          /* range in the scrape's procs */
} metrics_live;

typedef struct metrics_scrape {
	const metrics_view *v;
	metrics_table t;              /* retired + live, grouped by index */
	metrics_live *live;           /* [v->shards] */
	metrics_proc *procs;          /* live slots, grouped by index */
	size_t proc_count;
	uint32_t retiring;            /* live slots RETIRING or DRAINING */
} metrics_scrape;

/* Retired totals and live slots merged; free it with metrics_scrape_free
 * even on failure. 0, -ENOMEM, or -EINVAL for tables that do not fit. */
int metrics_collect(metrics_scrape *c, shard_metrics *m, const metrics_view *v);
void metrics_scrape_free(metrics_scrape *c);

/* --- families ------------------------------------------------------------- */

/* A family and where its values start in its scope's series. */
typedef struct metrics_family {
	const shard_metric *metric;
	uint32_t at;
} metrics_family;

typedef enum metrics_order {
	METRICS_TABLE_ORDER,          /* /stats */
	METRICS_PROM_ORDER,           /* plain counters first (see above) */
} metrics_order;

#define METRICS_MAX_FAMILIES METRICS_SERIES_VALUES

/* The families of a scope (app NULL: shard/'s own only), at most
 * METRICS_MAX_FAMILIES: their count. */
size_t metrics_families(const shard_app_metrics *app, metrics_scope scope,
			metrics_order order, metrics_family *out);
/* The k-th value of f's label; "<label><k>" in buf when it has no name. */
const char *metrics_label_value(const shard_metric *f, uint32_t k,
				char buf[32]);
/* A histogram's count: the sum of its buckets (v is its first value). */
uint64_t metrics_histogram_count(const shard_metric *f, const uint64_t *v);
/* Its bound k as a decimal number: seconds for SHARD_UNIT_NS, exact and
 * without trailing zeros ("0.00005", "2.5", "10"). */
void metrics_histogram_bound(strbuf *sb, const shard_metric *f, uint32_t k);

/* The supervisor's own families (their values come from the view and the
 * scrape), and the two it derives per index from the slots' states. */
#define METRICS_SUPERVISOR(X) \
	X(METRICS_SUP_SHARDS, 1, .name = "shards", .type = SHARD_GAUGE, \
	  .help = "Shards configured.", .json = "shards_configured") \
	X(METRICS_SUP_RETIRING, 1, .name = "shards_retiring", \
	  .type = SHARD_GAUGE, \
	  .help = "Shard processes retiring or draining after a reload.", \
	  .json = "retiring") \
	X(METRICS_SUP_RESTARTS, 1, .name = "shard_restarts_total", \
	  .help = "Shard processes that died and were replaced.", \
	  .json = "restarts") \
	X(METRICS_SUP_RELOADS, 1, .name = "reloads_total", \
	  .help = "Configuration reloads applied.", .json = "reloads") \
	X(METRICS_SUP_STARTED, 1, .name = "start_time_seconds", \
	  .type = SHARD_GAUGE, .unit = SHARD_UNIT_NS, \
	  .help = "Start of the supervisor, seconds since the Unix epoch.", \
	  .json = "started_unix_s")
#define METRICS_INDEX(X) \
	X(METRICS_INDEX_UP, 1, .name = "shard_up", .type = SHARD_GAUGE, \
	  .help = "1 when a shard process of this index is accepting.") \
	X(METRICS_INDEX_INFO, 1, .name = "shard_info", .type = SHARD_GAUGE, \
	  .help = "Always 1; the poller of the newest process of the shard.", \
	  .label = "poller")

enum { METRICS_SUPERVISOR(SHARD_METRIC_ENUM) METRICS_SUP_COUNT };
enum { METRICS_INDEX(SHARD_METRIC_ENUM) METRICS_INDEX_COUNT };
extern const shard_metric metrics_supervisor[METRICS_SUP_COUNT];
extern const shard_metric metrics_index[METRICS_INDEX_COUNT];
/* Always 1, labelled with metrics_view.version. */
extern const shard_metric metrics_build_info;

/* The values of metrics_supervisor, by its enum. */
void metrics_supervisor_values(const metrics_scrape *c,
			       uint64_t out[METRICS_SUP_COUNT]);

/* --- rendering ------------------------------------------------------------ */

/* Append to `out`. 0, -ENOMEM (out may then hold part of the text) or
 * -EINVAL for tables that do not fit a slot. */
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
