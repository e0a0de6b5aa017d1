/*
 * frametop_stats — one sample of the supervisor's GET /stats (the JSON
 * shape is documented at the top of shard/metrics.h), the rates between
 * two samples, and the table frametop prints.
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
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FT_TEXT_MAX 16           /* state and poller names, truncated */
#define FT_IMBALANCE_RATIO 2.0   /* busiest > 2x idlest: mark both */
#define FT_IMBALANCE_MIN 1.0     /* frames/s below which nothing is marked */

typedef struct ft_shard {
	int64_t index;
	int64_t pid;                 /* 0: no live process */
	char state[FT_TEXT_MAX];     /* printable ASCII only */
	char poller[FT_TEXT_MAX];
	uint64_t generation;
	uint64_t active;             /* gauge */
	uint64_t accepted;           /* counters */
	uint64_t frames_in, frames_out;
	uint64_t bytes_in, bytes_out;
	double cpu_s;                /* user + system */
	uint64_t rss_bytes;          /* gauges */
	uint64_t runq_length;
} ft_shard;

typedef struct ft_sample {
	int64_t pid;                 /* the supervisor's */
	double uptime_s;
	uint64_t shards_configured;
	uint64_t reloads, restarts, retiring;
	ft_shard *shards;
	size_t shard_count;
	int64_t mono_ns;             /* CLOCK_MONOTONIC when it arrived */
} ft_sample;

/* Per-second rates of one shard between two samples. */
typedef struct ft_rates {
	bool valid;                  /* false: nothing to compare with */
	double accepted;
	double frames_in, frames_out;
	double bytes;                /* both directions */
	double cpu_pct;              /* of one CPU */
} ft_rates;

/*
 * Fill *out from a /stats body (mono_ns is left 0). 0; -EBADMSG when it is
 * not JSON or lacks a field (why says which); -ENOMEM. ft_sample_free
 * after success.
 */
int ft_sample_parse(const char *text, size_t len, ft_sample *out, char *why,
		    size_t why_len);
void ft_sample_free(ft_sample *s);

/* (cur - prev) / seconds; 0 when the counter went backwards or seconds <= 0. */
double ft_rate(uint64_t prev, uint64_t cur, double seconds);
/* CPU seconds used over wall seconds, in percent of one CPU; 0 likewise. */
double ft_cpu_pct(double prev_s, double cur_s, double seconds);
/* The shard with that index, or NULL. */
const ft_shard *ft_find_shard(const ft_sample *s, int64_t index);
/* Rates of cur against prev's shard of the same index (invalid if none). */
ft_rates ft_shard_rates(const ft_sample *prev, const ft_sample *cur,
			const ft_shard *shard);
/*
 * Indexes into rates[0..n) of the busiest and the idlest shard by frames/s
 * (in + out), both -1 unless at least two are valid, the busiest does at
 * least FT_IMBALANCE_MIN and more than FT_IMBALANCE_RATIO times the idlest.
 */
void ft_imbalance(const ft_rates *rates, size_t n, long *busiest,
		  long *idlest);

/* "950", "9.5", "12.3k", "4.56M": counts per second, about 6 characters. */
const char *ft_human_count(double v, char *buf, size_t len);
/* "512B", "1.5KiB", "23.4MiB". */
const char *ft_human_bytes(double v, char *buf, size_t len);
/* "3.2s", "4m05s", "2h03m", "3d04h". */
const char *ft_human_duration(double seconds, char *buf, size_t len);

/*
 * Print one table: the header line, the column names, one row per shard of
 * cur, and a totals line. Rates need prev (NULL: they show as "-"). Every
 * line ends with eol ("\n", or "\033[K\n" to clear what a longer earlier
 * screen left). 0 or -EIO.
 */
int ft_render(FILE *out, const ft_sample *prev, const ft_sample *cur,
	      const char *admin, const char *eol);

#ifdef __cplusplus
}
#endif

#endif
