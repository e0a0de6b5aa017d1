/*
 * Why a client connection ended: one code, named only at the edges (the
 * access line, the metrics labels). The relay and the listener carry the
 * code; the names are the X-macro's spelling, and their order is the order
 * of the per-listener close counters and of their metrics labels, so a new
 * reason goes at the end of the list, and adding one is one entry here.
 */
#ifndef FRAMEPROXY_PROXY_REASON_H
#define FRAMEPROXY_PROXY_REASON_H

#define REASON_LIST(X) \
	X(client_eof) X(upstream_eof) X(oversize) X(upstream_oversize) \
	X(idle_timeout) X(frame_timeout) X(connect_failed) X(no_upstream) \
	X(denied) X(client_limit) X(client_reset) X(upstream_reset) \
	X(client_truncated) X(upstream_truncated) X(drain) X(shutdown) \
	X(no_memory) X(internal_error) X(upstream_lost) X(request_timeout) \
	X(bad_request) X(bad_proxy_header) X(tls_handshake) \
	X(upstream_tls_handshake) X(queue_timeout) X(overload)

#define REASON_ENUM(name) REASON_##name,
typedef enum reason_code {
	REASON_LIST(REASON_ENUM)
	REASON_COUNT,
	REASON_NONE = REASON_COUNT, /* not decided yet: never counted or named */
} reason_code;
#undef REASON_ENUM

/* The name in access lines and metrics labels; "unknown" out of range. */
const char *reason_name(reason_code reason);

#endif
