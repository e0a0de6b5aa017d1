/*
 * stats — one sample of the supervisor's GET /stats (the JSON shape is
 * documented at the top of shard/metrics.h) and the rates between two
 * samples; the table frametop prints of them is in table.h. Prefix stats_.
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

typedef struct stats_sample {
	int64_t pid;                 /* the supervisor's */
	double uptime_s;
	uint64_t shards_configured;
	uint64_t reloads, restarts, retiring;
	stats_shard *shards;
	size_t shard_count;
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

#ifdef __cplusplus
}
#endif

#endif
