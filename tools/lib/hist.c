#include "tools/lib/hist.h"

#include <string.h>

void hist_init(hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = INT64_MAX;
}

static int top_bit(uint64_t v)
{
	return 63 - __builtin_clzll(v);
}

size_t hist_bucket_of(int64_t value)
{
	if (value < (int64_t)HIST_SUB_COUNT)
		return value < 0 ? 0 : (size_t)value;
	int e = top_bit((uint64_t)value);
	if (e >= HIST_MAX_EXP)
		return HIST_BUCKETS - 1;
	size_t sub = (size_t)((uint64_t)value >> (e - HIST_SUB_BITS)) &
		     (HIST_SUB_COUNT - 1);
	return HIST_SUB_COUNT * (size_t)(e - HIST_SUB_BITS + 1) + sub;
}

int64_t hist_bucket_low(size_t index)
{
	if (index < HIST_SUB_COUNT)
		return (int64_t)index;
	size_t group = index / HIST_SUB_COUNT;  /* 1 = exponent HIST_SUB_BITS */
	size_t sub = index % HIST_SUB_COUNT;
	int shift = (int)group - 1;
	return (int64_t)((HIST_SUB_COUNT + sub) << shift);
}

int64_t hist_bucket_high(size_t index)
{
	if (index + 1 >= HIST_BUCKETS)
		return INT64_MAX;
	return hist_bucket_low(index + 1) - 1;
}

void hist_record(hist *h, int64_t value)
{
	if (value < 0)
		value = 0;
	h->buckets[hist_bucket_of(value)]++;
	h->count++;
	h->sum += (double)value;
	if (value < h->min)
		h->min = value;
	if (value > h->max)
		h->max = value;
}

void hist_merge(hist *dst, const hist *src)
{
	if (src->count == 0)
		return;
	for (size_t i = 0; i < HIST_BUCKETS; i++)
		dst->buckets[i] += src->buckets[i];
	dst->count += src->count;
	dst->sum += src->sum;
	if (src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
}

/* Midpoint of the bucket, kept inside what was actually observed. */
static int64_t representative(const hist *h, size_t index)
{
	int64_t low = hist_bucket_low(index);
	int64_t high = hist_bucket_high(index);
	int64_t mid = index + 1 >= HIST_BUCKETS ? h->max : low + (high - low) / 2;
	if (mid < h->min)
		return h->min;
	if (mid > h->max)
		return h->max;
	return mid;
}

int64_t hist_percentile(const hist *h, double percentile)
{
	if (h->count == 0)
		return 0;
	if (percentile >= 100.0)
		return h->max;
	if (percentile <= 0.0)
		return h->min;
	/* Rank of the sample (1-based) that the percentile names. */
	double exact = percentile / 100.0 * (double)h->count;
	uint64_t rank = (uint64_t)exact;
	if ((double)rank < exact || rank == 0)
		rank++;
	uint64_t seen = 0;
	for (size_t i = 0; i < HIST_BUCKETS; i++) {
		seen += h->buckets[i];
		if (seen >= rank)
			return representative(h, i);
	}
	return h->max;
}

double hist_mean(const hist *h)
{
	return h->count ? h->sum / (double)h->count : 0.0;
}
