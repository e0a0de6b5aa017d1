#include "proxy/counters.h"

_Static_assert(COUNTER_SHARD_VALUES <= SHARD_MAX_APP_VALUES &&
	       COUNTER_LISTENER_VALUES <= SHARD_MAX_LISTENER_VALUES &&
	       COUNTER_UPSTREAM_VALUES <= SHARD_MAX_UPSTREAM_VALUES &&
	       COUNTER_NAME_VALUES <= SHARD_MAX_NAME_VALUES,
	       "a metrics slot has room for every counter");

static const char *counters_direction(uint32_t k)
{
	return k ? "upstream_to_client" : "client_to_upstream";
}

static const char *counters_reason(uint32_t k)
{
	return reason_name((reason_code)k);
}

/* 1-2.5-5 steps, in ns. */
static const uint64_t counters_rpc_latency_bounds[] = {
	50000, 100000, 250000, 500000,
	1000000, 2500000, 5000000, 10000000, 25000000, 50000000,
	100000000, 250000000, 500000000,
	1000000000, 2500000000, 5000000000, 10000000000,
};
_Static_assert(sizeof(counters_rpc_latency_bounds) /
	       sizeof(counters_rpc_latency_bounds[0]) ==
	       COUNTERS_RPC_LATENCY_BOUNDS, "one bound per bucket");

static const char *counters_tls_version(uint32_t k)
{
	return tls_version_name((tls_version)k);
}

static const char *const counters_tls_version_keys[] = {
	"tls_connections_tls12", "tls_connections_tls13"};
static const char *const counters_frames_keys[] = { "frames_in", "frames_out" };
static const char *const counters_bytes_keys[] = { "bytes_in", "bytes_out" };

static const shard_metric shard_table[] = {
	COUNTERS_SHARD(SHARD_METRIC_ENTRY)
};
static const shard_metric listener_table[] = {
	COUNTERS_LISTENER(SHARD_METRIC_ENTRY)
};
static const shard_metric upstream_table[] = {
	COUNTERS_UPSTREAM(SHARD_METRIC_ENTRY)
};
static const shard_metric name_table[] = {
	COUNTERS_NAME(SHARD_METRIC_ENTRY)
};

#define COUNTERS_LIST(table) { table, sizeof(table) / sizeof(table[0]) }

const shard_app_metrics counters_metrics = {
	.shard = COUNTERS_LIST(shard_table),
	.listener = COUNTERS_LIST(listener_table),
	.upstream = COUNTERS_LIST(upstream_table),
	.name = COUNTERS_LIST(name_table),
};

void counters_observe_rpc_latency(uint64_t *upstream_counters, int64_t ns)
{
	shard_histogram_observe(upstream_counters + COUNTER_RPC_LATENCY,
				counters_rpc_latency_bounds,
				COUNTERS_RPC_LATENCY_BOUNDS,
				ns > 0 ? (uint64_t)ns : 0);
}
