/*
 * stats — one sample of the supervisor's GET /stats (the JSON shape is
 * documented at the top of shard/metrics.h) and the rates between two
 * samples; the table frametop prints of them is in table.h. Prefix stats_.
 *
 * The rpc view (stats_rpc_rows) reads each shard's upstream objects:
 * requests sent (rpc_sent), in flight (rpc_inflight), pool connections
 * (rpc_pool_open) and the latency histogram (rpc_latency).
 *
 * Counters in /stats are monotonic per shard index (the supervisor folds a
 * dead shard's counts into retired totals). Should one still go backwards
 * (an older supervisor, or one restarted under the same address), the rate
 * for that interval is 0, never negative.
 */
#ifndef FRAMEPROXY_TOOLS_FRAMETOP_STATS_H
#define FRAMEPROXY_TOOLS_FRAMETOP_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define STATS_TEXT_MAX 16        /* state and poller names, truncated */
#define STATS_IMBALANCE_RATIO 2.0   /* busiest > 2x idlest: mark both */
#define STATS_IMBALANCE_MIN 1.0  /* frames/s below which nothing is marked */
#define STATS_NAME_MAX 64        /* listener and server names, truncated */
#define STATS_MAX_BUCKETS 32     /* finite bounds of one histogram */
#define STATS_RPC_QUANTILE 0.99  /* the latency column of the rpc view */

typedef struct stats_shard {
	int64_t index;
	int64_t pid;                 /* 0: no live process */
	char state[STATS_TEXT_MAX];  /* printable ASCII only */
	char poller[STATS_TEXT_MAX];
	uint64_t generation;
	uint64_t active;             /* gauge */
	uint64_t accepted;           /* counters */
	uint64_t frames_in, frames_out;
	uint64_t bytes_in, bytes_out;
	double cpu_s;                /* user + system */
	uint64_t rss_bytes;          /* gauges */
	uint64_t runq_length;
} stats_shard;

/*
 * A histogram of /stats ({"count","sum","buckets":[[le,cumulative],...]}):
 * finite upper bounds, increasing, each with the observations up to it;
 * what is above the last is count minus its bucket.
 */
typedef struct stats_histogram {
	bool present;
	uint64_t count;
	double sum;
	uint32_t bucket_count;
	double le[STATS_MAX_BUCKETS];
	uint64_t cumulative[STATS_MAX_BUCKETS];
} stats_histogram;

/* One upstream object of a shard: its rpc figures, each optional (a
 * stream-only frameproxy, or one before rpc mode, has none of them). */
typedef struct stats_upstream {
	int64_t shard;               /* the shard index it is under */
	char listener[STATS_NAME_MAX]; /* printable ASCII only */
	char name[STATS_NAME_MAX];
	bool has_sent;               /* rpc_sent was there */
	uint64_t rpc_sent;           /* counter */
	uint64_t rpc_inflight;       /* gauges */
	uint64_t rpc_pool_open;
	stats_histogram latency;     /* rpc_latency, in seconds */
} stats_upstream;

typedef struct stats_sample {
	int64_t pid;                 /* the supervisor's */
	double uptime_s;
	uint64_t shards_configured;
	uint64_t reloads, restarts, retiring;
	stats_shard *shards;
	size_t shard_count;
	stats_upstream *upstreams;   /* every shard's, in document order */
	size_t upstream_count;
	int64_t mono_ns;             /* CLOCK_MONOTONIC when it arrived */
} stats_sample;

/* Per-second rates of one shard between two samples. */
typedef struct stats_rates {
	bool valid;                  /* false: nothing to compare with */
	double accepted;
	double frames_in, frames_out;
	double bytes;                /* both directions */
	double cpu_pct;              /* of one CPU */
} stats_rates;

/*
 * Fill *out from a /stats body (mono_ns is left 0). 0; -EBADMSG when it is
 * not JSON or lacks a field (why says which); -ENOMEM. stats_sample_free
 * after success.
 */
int stats_sample_parse(const char *text, size_t len, stats_sample *out, char *why,
		       size_t why_len);
void stats_sample_free(stats_sample *s);

/* (cur - prev) / seconds; 0 when the counter went backwards or seconds <= 0. */
double stats_rate(uint64_t prev, uint64_t cur, double seconds);
/* CPU seconds used over wall seconds, in percent of one CPU; 0 likewise. */
double stats_cpu_pct(double prev_s, double cur_s, double seconds);
/* The shard with that index, or NULL. */
const stats_shard *stats_find_shard(const stats_sample *s, int64_t index);
/* Rates of cur against prev's shard of the same index (invalid if none). */
stats_rates stats_shard_rates(const stats_sample *prev, const stats_sample *cur,
			      const stats_shard *shard);
/*
 * Indexes into rates[0..n) of the busiest and the idlest shard by frames/s
 * (in + out), both -1 unless at least two are valid, the busiest does at
 * least STATS_IMBALANCE_MIN and more than STATS_IMBALANCE_RATIO times the idlest.
 */
void stats_imbalance(const stats_rates *rates, size_t n, long *busiest,
		     long *idlest);

/* --- the rpc view: per server, summed over the shards --------------------- */

typedef enum stats_quantile_kind {
	STATS_QUANTILE_NONE,         /* no observation in the interval */
	STATS_QUANTILE_VALUE,        /* estimated: *out */
	STATS_QUANTILE_ABOVE,        /* above the last bound: *out is it */
} stats_quantile_kind;

/*
 * The q-quantile (0 < q <= 1) of `count` observations in buckets with
 * upper bounds le[0..n) and cumulative counts cumulative[0..n) (the rest
 * above le[n-1]): the bucket holding the rank q * count, and within it a
 * straight line from its lower bound (0 for the first) to its upper one,
 * as if its observations were spread evenly.
 */
stats_quantile_kind stats_quantile(const double *le, const uint64_t *cumulative,
				   size_t n, uint64_t count, double q,
				   double *out);

/* One row of the rpc view: a server (listener, name) over all shards. */
typedef struct stats_rpc_row {
	char listener[STATS_NAME_MAX];
	char name[STATS_NAME_MAX];
	uint64_t inflight;           /* gauges, summed over the shards */
	uint64_t pool_open;
	bool has_sent;               /* some shard publishes rpc_sent */
	bool rates;                  /* false: nothing to compare with */
	double requests;             /* rpc_sent per second */
	stats_quantile_kind p99;     /* of the interval's latencies */
	double p99_s;
} stats_rpc_row;

/*
 * The servers of cur that do rpc (an rpc figure nonzero: requests sent or
 * in flight, pool connections open, latencies observed), sorted by listener
 * and name, malloc'd in *rows (NULL when none). Rates and p99 are over the
 * interval since prev (NULL: none), from the deltas of each shard's entry
 * against the same shard's entry in prev; a counter that went backwards
 * counts 0, a histogram that did (or changed bounds) gives no p99.
 * 0 or -ENOMEM.
 */
int stats_rpc_rows(const stats_sample *prev, const stats_sample *cur,
		   stats_rpc_row **rows, size_t *count);

#ifdef __cplusplus
}
#endif

#endif
