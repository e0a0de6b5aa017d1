/*
 * hist — a latency histogram that never stores samples (HDR-style).
 * Prefix hist_.
 *
 * Log-linear buckets over nanoseconds: values below 2^HIST_SUB_BITS are
 * exact; above, each power of two is split into 2^HIST_SUB_BITS linear
 * sub-buckets, so a bucket is at most 1/128 of its lower bound wide and the
 * reported value (bucket midpoint, clamped to the observed min/max) is within
 * 0.4% of any sample in it. Values up to 2^HIST_MAX_EXP ns (~18 minutes) are
 * bucketed; larger ones land in the last bucket (max stays exact).
 *
 * Fixed size (about 34 KiB), so one per connection or one per run is cheap;
 * merge adds them up.
 */
#ifndef FRAMEPROXY_TOOLS_LIB_HIST_H
#define FRAMEPROXY_TOOLS_LIB_HIST_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HIST_SUB_BITS 7
#define HIST_SUB_COUNT (1u << HIST_SUB_BITS)
#define HIST_MAX_EXP 40
/* Exact region, then one group of sub-buckets per exponent 7..39. */
#define HIST_BUCKETS (HIST_SUB_COUNT * (HIST_MAX_EXP - HIST_SUB_BITS + 1))

typedef struct hist {
	uint64_t count;
	int64_t min;
	int64_t max;
	double sum;
	uint64_t buckets[HIST_BUCKETS];
} hist;

void hist_init(hist *h);
/* Negative values are recorded as 0. */
void hist_record(hist *h, int64_t value);
void hist_merge(hist *dst, const hist *src);
/*
 * The value below which `percentile` percent of samples fall (0..100).
 * 0 when the histogram is empty.
 */
int64_t hist_percentile(const hist *h, double percentile);
double hist_mean(const hist *h);

/* Bucket geometry, exposed for tests. */
size_t hist_bucket_of(int64_t value);
int64_t hist_bucket_low(size_t index);   /* smallest value in the bucket */
int64_t hist_bucket_high(size_t index);  /* largest value in the bucket */

#ifdef __cplusplus
}
#endif

#endif
