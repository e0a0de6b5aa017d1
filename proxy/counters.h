/*
 * counters — the application's metric tables ("metric tables" in
 * shard/shard.h): per shard, per listener, per upstream, per server
 * name. shard/ moves and
 * renders these values without knowing them by name; server.c publishes
 * each at the index its entry names (COUNTER_...). docs/METRICS.md lists
 * them with shard/'s own; a test fails until it is regenerated.
 *
 * Adding a counter: one entry here and the code that counts it, into the
 * array the entry's scope keeps by these indexes (listener->counters,
 * upstream_server->counters; server.c publishes whole arrays); then
 * `ninja -C build metrics-doc`. Only a value computed when published (a
 * gauge of the moment such as COUNTER_UP) has its store in server.c. A
 * histogram's values are filled by shard_histogram_observe, through a
 * function here that knows its bounds (counters_observe_rpc_latency).
 * Entries are in /stats order.
 */
#ifndef FRAMEPROXY_PROXY_COUNTERS_H
#define FRAMEPROXY_PROXY_COUNTERS_H

#include "proxy/reason.h"
#include "proxy/tls.h"
#include "shard/shard.h"

#define COUNTERS_SHARD(X) \
	X(COUNTER_LOG_LINES_DROPPED, 1, .name = "log_lines_dropped_total", \
	  .help = "Log lines dropped because stderr had no room for them.", \
	  .json = "log_lines_dropped") \
	X(COUNTER_BUFFER_BYTES, 1, .name = "buffer_bytes", .type = SHARD_GAUGE, \
	  .help = "Bytes in relay buffers the shards hold for connections " \
		  "(max_buffer_memory's count).", \
	  .json = "buffer_bytes") \
	X(COUNTER_BUFFER_POOLED_BYTES, 1, .name = "buffer_pooled_bytes", \
	  .type = SHARD_GAUGE, \
	  .help = "Bytes in idle relay buffers kept for reuse.", \
	  .json = "buffer_pooled_bytes") \
	X(COUNTER_ACCEPT_PAUSES, 1, .name = "overload_accept_pauses_total", \
	  .help = "Times a shard stopped accepting near max_buffer_memory.", \
	  .json = "overload_accept_pauses")

/* frames and bytes: [0] client -> upstream ("in"), [1] back ("out"). */
#define COUNTERS_LISTENER(X) \
	X(COUNTER_ACTIVE, 1, .name = "connections_active", \
	  .type = SHARD_GAUGE, .help = "Client connections open.", \
	  .json = "active", .json_total = "connections_active") \
	X(COUNTER_ACCEPTED, 1, .name = "connections_accepted_total", \
	  .help = "Client connections accepted.", .json = "accepted") \
	X(COUNTER_ACCEPT_ERRORS, 1, .name = "accept_errors_total", \
	  .help = "accept() calls that failed.", .json = "accept_errors") \
	X(COUNTER_FRAMES, 2, .name = "frames_total", \
	  .help = "Frames relayed.", .label = "direction", \
	  .label_value = counters_direction, \
	  .json_each = counters_frames_keys) \
	X(COUNTER_BYTES, 2, .name = "bytes_total", \
	  .help = "Frame bytes relayed, length prefixes included.", \
	  .label = "direction", .label_value = counters_direction, \
	  .json_each = counters_bytes_keys) \
	X(COUNTER_CLOSED, REASON_COUNT, \
	  .name = "connections_closed_total", \
	  .help = "Client connections closed, by reason.", .label = "reason", \
	  .label_value = counters_reason, .json = "closed") \
	X(COUNTER_RPC_REQUESTS, 1, .name = "rpc_requests_total", \
	  .help = "rpc mode: requests admitted.", .json = "rpc_requests") \
	X(COUNTER_RPC_REPLIES, 1, .name = "rpc_replies_total", \
	  .help = "rpc mode: replies delivered to clients.", \
	  .json = "rpc_replies") \
	X(COUNTER_RPC_REPLIES_DROPPED, 1, .name = "rpc_replies_dropped_total", \
	  .help = "rpc mode: replies read whose client was gone.", \
	  .json = "rpc_replies_dropped") \
	X(COUNTER_RPC_LOST, 1, .name = "rpc_requests_lost_total", \
	  .help = "rpc mode: requests failed (upstream_lost, no_upstream).", \
	  .json = "rpc_lost") \
	X(COUNTER_RPC_HELD_BYTES, 1, .name = "rpc_held_bytes", \
	  .type = SHARD_GAUGE, \
	  .help = "rpc mode: reply bytes held for clients, not written yet.", \
	  .json = "rpc_held_bytes") \
	X(COUNTER_PROXY_HEADERS_ACCEPTED, 1, \
	  .name = "proxy_headers_accepted_total", \
	  .help = "accept_proxy: PROXY headers read and accepted.", \
	  .json = "proxy_headers_accepted") \
	X(COUNTER_PROXY_HEADERS_REJECTED, 1, \
	  .name = "proxy_headers_rejected_total", \
	  .help = "accept_proxy: connections closed for a missing, malformed, " \
		  "truncated or slow PROXY header (bad_proxy_header).", \
	  .json = "proxy_headers_rejected") \
	X(COUNTER_HANDOFFS, 1, .name = "connections_handed_off_total", \
	  .help = "Client connections handed live to the next shard on reload.", \
	  .json = "handed_off") \
	X(COUNTER_DNS_RESOLUTIONS, 1, .name = "dns_resolutions_total", \
	  .help = "Server names resolved by this shard (answers taken from " \
		  "the owner shard not counted).", \
	  .json = "dns_resolutions") \
	X(COUNTER_DNS_FAILURES, 1, .name = "dns_failures_total", \
	  .help = "Server name lookups by this shard that failed (the last " \
		  "answer is kept).", \
	  .json = "dns_failures") \
	X(COUNTER_DNS_SERVERS, 1, .name = "dns_servers", .type = SHARD_GAUGE, \
	  .help = "Servers the listener's server names resolve to now.", \
	  .json = "dns_servers") \
	X(COUNTER_TLS_HANDSHAKES, 1, .name = "tls_handshakes_total", \
	  .help = "TLS listeners: client handshakes completed.", \
	  .json = "tls_handshakes") \
	X(COUNTER_TLS_HANDSHAKE_FAILURES, 1, \
	  .name = "tls_handshake_failures_total", \
	  .help = "TLS listeners: client handshakes that failed or timed out " \
		  "(closed as tls_handshake).", \
	  .json = "tls_handshake_failures") \
	X(COUNTER_TLS_VERSIONS, TLS_VERSION_COUNT, \
	  .name = "tls_connections_total", \
	  .help = "TLS listeners: client connections by protocol version " \
		  "negotiated.", .label = "version", \
	  .label_value = counters_tls_version, \
	  .json_each = counters_tls_version_keys) \
	X(COUNTER_QUEUED, 1, .name = "upstream_queue", .type = SHARD_GAUGE, \
	  .help = "Stream mode: clients waiting for a server below its " \
		  "maxconn (closed as queue_timeout after queue_timeout).", \
	  .json = "queued")

/* rpc latency: 50 us .. 10 s (counters_rpc_latency_bounds), and +Inf. */
#define COUNTERS_RPC_LATENCY_BOUNDS 17

#define COUNTERS_UPSTREAM(X) \
	X(COUNTER_UP, 1, .name = "upstream_up", .type = SHARD_GAUGE, \
	  .merge = SHARD_MERGE_NEWEST, \
	  .help = "1 when the upstream is usable (not ejected, checks up).", \
	  .json = "up") \
	X(COUNTER_WEIGHT, 1, .name = "upstream_weight", .type = SHARD_GAUGE, \
	  .merge = SHARD_MERGE_NEWEST, \
	  .help = "The weight the balancer gives the upstream (configured, or " \
		  "set through POST /servers).", .json = "weight") \
	X(COUNTER_UPSTREAM_ACTIVE, 1, .name = "upstream_connections_active", \
	  .type = SHARD_GAUGE, \
	  .help = "Stream mode: client connections relayed to the upstream now.", \
	  .json = "active") \
	X(COUNTER_CONNECTS, 1, .name = "upstream_connects_total", \
	  .help = "Connections opened to the upstream.", .json = "connects") \
	X(COUNTER_CONNECT_FAILURES, 1, \
	  .name = "upstream_connect_failures_total", \
	  .help = "Connection attempts to the upstream that failed.", \
	  .json = "connect_failures") \
	X(COUNTER_EJECTIONS, 1, .name = "upstream_ejections_total", \
	  .help = "Times the upstream was taken out of the balancing.", \
	  .json = "ejections") \
	X(COUNTER_OUTLIER_EJECTIONS, 1, \
	  .name = "upstream_outlier_ejections_total", \
	  .help = "Of those, times for resets, timeouts or slow replies after " \
		  "the connect (outlier ejection).", .json = "outlier_ejections") \
	X(COUNTER_RPC_SENT, 1, .name = "rpc_requests_sent_total", \
	  .help = "rpc mode: requests written to the upstream.", \
	  .json = "rpc_sent") \
	X(COUNTER_RPC_RECEIVED, 1, .name = "rpc_replies_received_total", \
	  .help = "rpc mode: replies read from the upstream and matched.", \
	  .json = "rpc_received") \
	X(COUNTER_RPC_INFLIGHT, 1, .name = "rpc_inflight", \
	  .type = SHARD_GAUGE, \
	  .help = "rpc mode: requests on the upstream's connections.", \
	  .json = "rpc_inflight") \
	X(COUNTER_RPC_RETRIES, 1, .name = "rpc_retries_total", \
	  .help = "rpc mode: requests sent again after a connection was lost.", \
	  .json = "rpc_retries") \
	X(COUNTER_RPC_UNMATCHED, 1, .name = "rpc_unmatched_replies_total", \
	  .help = "rpc mode: replies that matched no request (the connection " \
		  "is closed).", \
	  .json = "rpc_unmatched") \
	X(COUNTER_RPC_POOL_OPEN, 1, .name = "rpc_pool_connections", \
	  .type = SHARD_GAUGE, \
	  .help = "rpc mode: pooled connections to the upstream that are up.", \
	  .json = "rpc_pool_open") \
	X(COUNTER_RPC_LATENCY, \
	  SHARD_HISTOGRAM_WIDTH(COUNTERS_RPC_LATENCY_BOUNDS), \
	  .name = "rpc_request_duration_seconds", .type = SHARD_HISTOGRAM, \
	  .unit = SHARD_UNIT_NS, .bounds = counters_rpc_latency_bounds, \
	  .bound_count = COUNTERS_RPC_LATENCY_BOUNDS, \
	  .help = "Time from a request's last byte read from the client to " \
		  "its reply's first byte read from the upstream.", \
	  .json = "rpc_latency")

/* Per server name (a `server =` line naming a host or SRV name): every
 * value is computed when published, from the line (upstream_line) and its
 * lookups (resolve_name). Summed over a listener's lines, the first three
 * are also the listener's dns_* families. */
#define COUNTERS_NAME(X) \
	X(COUNTER_NAME_RESOLUTIONS, 1, .name = "dns_name_resolutions_total", \
	  .help = "Lookups of this server name answered to this shard (the " \
		  "shard that owns the name asks; the others read its " \
		  "answer and count nothing).", \
	  .json = "resolutions") \
	X(COUNTER_NAME_FAILURES, 1, .name = "dns_name_failures_total", \
	  .help = "Lookups of this server name by this shard that failed " \
		  "(the last answer is kept).", \
	  .json = "failures") \
	X(COUNTER_NAME_SERVERS, 1, .name = "dns_name_servers", \
	  .type = SHARD_GAUGE, .merge = SHARD_MERGE_NEWEST, \
	  .help = "Servers this name resolves to now (its upstream series " \
		  "carry it as server_name).", \
	  .json = "servers") \
	X(COUNTER_NAME_RESOLVED, 1, .name = "dns_name_resolved", \
	  .type = SHARD_GAUGE, .merge = SHARD_MERGE_NEWEST, \
	  .help = "1 once the name has had an answer (its own or the owner " \
		  "shard's); 0 while it never resolved.", \
	  .json = "resolved")

enum { COUNTERS_SHARD(SHARD_METRIC_ENUM) COUNTER_SHARD_VALUES };
enum { COUNTERS_LISTENER(SHARD_METRIC_ENUM) COUNTER_LISTENER_VALUES };
enum { COUNTERS_UPSTREAM(SHARD_METRIC_ENUM) COUNTER_UPSTREAM_VALUES };
enum { COUNTERS_NAME(SHARD_METRIC_ENUM) COUNTER_NAME_VALUES };

/* For shard_settings.metrics. */
extern const shard_app_metrics counters_metrics;

/* One rpc reply's latency (ns; negative counts as 0) into an upstream's
 * counters (upstream_server->counters): COUNTER_RPC_LATENCY's buckets and
 * sum. Called once per reply. */
void counters_observe_rpc_latency(uint64_t *upstream_counters, int64_t ns);

#endif
