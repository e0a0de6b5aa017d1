#include "proxy/counters.h"

_Static_assert(COUNTER_SHARD_VALUES <= SHARD_MAX_APP_VALUES &&
	       COUNTER_LISTENER_VALUES <= SHARD_MAX_LISTENER_VALUES &&
	       COUNTER_UPSTREAM_VALUES <= SHARD_MAX_UPSTREAM_VALUES,
	       "a metrics slot has room for every counter");

static const char *counters_direction(uint32_t k)
{
	return k ? "upstream_to_client" : "client_to_upstream";
}

static const char *counters_reason(uint32_t k)
{
	return reason_name((reason_code)k);
}

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

#define COUNTERS_LIST(table) { table, sizeof(table) / sizeof(table[0]) }

const shard_app_metrics counters_metrics = {
	.shard = COUNTERS_LIST(shard_table),
	.listener = COUNTERS_LIST(listener_table),
	.upstream = COUNTERS_LIST(upstream_table),
};
