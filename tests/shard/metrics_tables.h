// Tables shaped like the application's (proxy/counters.h) for shard/'s own
// tests, with close reasons the test chooses.
#ifndef FRAMEPROXY_TESTS_SHARD_METRICS_TABLES_H
#define FRAMEPROXY_TESTS_SHARD_METRICS_TABLES_H

#include "shard/shard.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TEST_MAX_REASONS 8

// X(id, width, ...) as in shard/shard.h; only the enum is made here.
#define TEST_SHARD_METRICS(X) X(T_LOG_DROPPED, 1)
#define TEST_LISTENER_METRICS(X) \
	X(T_ACTIVE, 1) X(T_ACCEPTED, 1) X(T_ACCEPT_ERRORS, 1) \
	X(T_FRAMES, 2) X(T_BYTES, 2) X(T_CLOSED, TEST_MAX_REASONS)
// The latency histogram's bounds: 1 ms, 10 ms, 1.5 s (in ns).
#define TEST_LATENCY_BOUNDS 3
#define TEST_UPSTREAM_METRICS(X) \
	X(T_UP, 1) X(T_CONNECTS, 1) X(T_CONNECT_FAILURES, 1) X(T_EJECTIONS, 1) \
	X(T_LATENCY, SHARD_HISTOGRAM_WIDTH(TEST_LATENCY_BOUNDS))

#define TEST_NAME_METRICS(X) X(T_NAME_LOOKUPS, 1) X(T_NAME_SERVERS, 1)

enum { TEST_SHARD_METRICS(SHARD_METRIC_ENUM) T_SHARD_VALUES };
enum { TEST_LISTENER_METRICS(SHARD_METRIC_ENUM) T_LISTENER_VALUES };
enum { TEST_UPSTREAM_METRICS(SHARD_METRIC_ENUM) T_UPSTREAM_VALUES };
enum { TEST_NAME_METRICS(SHARD_METRIC_ENUM) T_NAME_VALUES };

// The tables, with `count` (at most TEST_MAX_REASONS) close reasons named
// by `reasons` (NULL entries get shard/'s default names). One set of tables
// per process: each call replaces the last one's reasons.
const shard_app_metrics *test_metrics(const char *const *reasons,
				      uint32_t count);

extern const uint64_t test_latency_bounds[TEST_LATENCY_BOUNDS];

#ifdef __cplusplus
}
#endif

#endif
