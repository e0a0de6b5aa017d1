// The tables of metrics_tables.h: the application's entries, copied.
#include "metrics_tables.h"

#include <stddef.h>

static const char *const *g_reasons;

static const char *test_direction(uint32_t k)
{
	return k ? "upstream_to_client" : "client_to_upstream";
}

static const char *test_reason(uint32_t k)
{
	return g_reasons ? g_reasons[k] : NULL;
}

static const char *const frames_keys[] = { "frames_in", "frames_out" };
static const char *const bytes_keys[] = { "bytes_in", "bytes_out" };

static const shard_metric shard_table[] = {
	{ .name = "log_lines_dropped_total", .width = 1,
	  .help = "Log lines dropped because stderr had no room for them.",
	  .json = "log_lines_dropped" },
};

static shard_metric listener_table[] = {
	{ .name = "connections_active", .type = SHARD_GAUGE, .width = 1,
	  .help = "Client connections open.", .json = "active",
	  .json_total = "connections_active" },
	{ .name = "connections_accepted_total", .width = 1,
	  .help = "Client connections accepted.", .json = "accepted" },
	{ .name = "accept_errors_total", .width = 1,
	  .help = "accept() calls that failed.", .json = "accept_errors" },
	{ .name = "frames_total", .width = 2, .help = "Frames relayed.",
	  .label = "direction", .label_value = test_direction,
	  .json_each = frames_keys },
	{ .name = "bytes_total", .width = 2,
	  .help = "Frame bytes relayed, length prefixes included.",
	  .label = "direction", .label_value = test_direction,
	  .json_each = bytes_keys },
	{ .name = "connections_closed_total", .width = TEST_MAX_REASONS,
	  .help = "Client connections closed, by reason.", .label = "reason",
	  .label_value = test_reason, .json = "closed" },
};

const uint64_t test_latency_bounds[TEST_LATENCY_BOUNDS] = {
	1000000, 10000000, 1500000000,
};

static const shard_metric upstream_table[] = {
	{ .name = "upstream_up", .type = SHARD_GAUGE, .width = 1,
	  .merge = SHARD_MERGE_NEWEST,
	  .help = "1 when the upstream is usable (not ejected, checks up).",
	  .json = "up" },
	{ .name = "upstream_connects_total", .width = 1,
	  .help = "Connections opened to the upstream.", .json = "connects" },
	{ .name = "upstream_connect_failures_total", .width = 1,
	  .help = "Connection attempts to the upstream that failed.",
	  .json = "connect_failures" },
	{ .name = "upstream_ejections_total", .width = 1,
	  .help = "Times the upstream was taken out of the balancing.",
	  .json = "ejections" },
	{ .name = "request_duration_seconds", .type = SHARD_HISTOGRAM,
	  .unit = SHARD_UNIT_NS,
	  .width = SHARD_HISTOGRAM_WIDTH(TEST_LATENCY_BOUNDS),
	  .bounds = test_latency_bounds, .bound_count = TEST_LATENCY_BOUNDS,
	  .help = "Time from a request to its reply.", .json = "latency" },
};

static const shard_metric name_table[] = {
	{ .name = "name_lookups_total", .width = 1,
	  .help = "Lookups of the server name.", .json = "lookups" },
	{ .name = "name_servers", .type = SHARD_GAUGE, .width = 1,
	  .merge = SHARD_MERGE_NEWEST,
	  .help = "Servers the name resolves to now.", .json = "servers" },
};

#define LIST(t) { t, sizeof(t) / sizeof(t[0]) }

static const shard_app_metrics tables = {
	.shard = LIST(shard_table),
	.listener = LIST(listener_table),
	.upstream = LIST(upstream_table),
	.name = LIST(name_table),
};

const shard_app_metrics *test_metrics(const char *const *reasons,
				      uint32_t count)
{
	g_reasons = reasons;
	// The closed family is the last: its width moves no other value.
	listener_table[sizeof(listener_table) / sizeof(listener_table[0]) - 1]
		.width = count <= TEST_MAX_REASONS ? count : TEST_MAX_REASONS;
	return &tables;
}
