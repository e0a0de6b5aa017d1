/* Outlier ejection (proxy/outlier.h). */
#include "proxy/outlier.h"

#include <stdlib.h>

#include "proxy/log.h"

/* The smoothed latency moves an eighth of the way to each new reply. */
#define OUTLIER_EWMA_SHIFT 3

static bool ejected_now(const upstream_pool *pool, uint32_t index, int64_t now)
{
	return upstream_server_in_set(pool, index) &&
	       now < pool->servers[index].out_until;
}

/* Taking `index` out keeps the share out within max_ejected. */
static bool may_eject(upstream_pool *pool, uint32_t index, const char *why)
{
	int64_t now = sched_now();
	uint32_t in_set = 0, out = 0;

	for (uint32_t i = 0; i < pool->count; i++) {
		if (!upstream_server_in_set(pool, i))
			continue;
		in_set++;
		out += i != index && ejected_now(pool, i, now);
	}
	if ((uint64_t)(out + 1) * 100 <= (uint64_t)pool->params.max_ejected * in_set)
		return true;
	log_ratelimited(&pool->outlier_log, LOG_LEVEL_WARN,
			"upstream kept in: max_ejected reached",
			"listener=%s upstream=%s reason=%s out=%u servers=%u max_ejected=%u%%",
			pool->listener_name, pool->servers[index].name, why, out,
			in_set, pool->params.max_ejected);
	return false;
}

static void outlier_eject(upstream_pool *pool, uint32_t index, const char *why)
{
	upstream_server *server = &pool->servers[index];

	server->outlier_errors = 0;
	server->latency_samples = 0;
	if (ejected_now(pool, index, sched_now()) || !may_eject(pool, index, why))
		return;
	server->counters[COUNTER_OUTLIER_EJECTIONS]++;
	upstream_eject(pool, index, why);
}

void outlier_error(upstream_pool *pool, uint32_t index, const char *why)
{
	if (index >= pool->count || pool->params.outlier_errors == 0)
		return;
	upstream_server *server = &pool->servers[index];
	if (++server->outlier_errors >= pool->params.outlier_errors)
		outlier_eject(pool, index, why);
}

void outlier_success(upstream_pool *pool, uint32_t index)
{
	if (index < pool->count)
		pool->servers[index].outlier_errors = 0;
}

static int compare_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* The median smoothed latency of the usable servers other than `index`
 * with enough replies; -1 with fewer than two of them. */
static int64_t others_median(const upstream_pool *pool, uint32_t index)
{
	int64_t v[UPSTREAM_MAX_SERVERS];
	uint32_t n = 0;
	int64_t now = sched_now();

	for (uint32_t i = 0; i < pool->count; i++) {
		const upstream_server *s = &pool->servers[i];
		if (i != index && upstream_server_usable(pool, i, now) &&
		    s->latency_samples >= OUTLIER_MIN_SAMPLES)
			v[n++] = s->latency_ewma_ns;
	}
	if (n < 2)
		return -1;
	qsort(v, n, sizeof(v[0]), compare_i64);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void outlier_latency(upstream_pool *pool, uint32_t index, int64_t latency_ns)
{
	if (index >= pool->count || latency_ns < 0)
		return;
	upstream_server *s = &pool->servers[index];
	if (s->latency_samples == 0)
		s->latency_ewma_ns = latency_ns;
	else
		s->latency_ewma_ns += (latency_ns - s->latency_ewma_ns) >> OUTLIER_EWMA_SHIFT;
	if (s->latency_samples < UINT32_MAX)
		s->latency_samples++;
	uint32_t factor = pool->params.outlier_latency;
	if (factor == 0 || s->latency_samples < OUTLIER_MIN_SAMPLES)
		return;
	int64_t median = others_median(pool, index);
	if (median > 0 && s->latency_ewma_ns > (int64_t)factor * median)
		outlier_eject(pool, index, "outlier_latency");
}
