/*
 * The relay: moves frames between one client and one upstream connection.
 *
 * Each direction has at most one agent at a time: a readiness watch while
 * idle (no coroutine, no buffer), or a pump coroutine while data is in
 * flight. So an idle proxied connection costs a struct and two pollDescs,
 * and a busy one a pooled stack and a bounded buffer per direction.
 */
#ifndef FRAMEPROXY_PROXY_RELAY_H
#define FRAMEPROXY_PROXY_RELAY_H

#include <stdint.h>

#include "poll/poll.h"
#include "proxy/linger.h"
#include "proxy/reason.h"

typedef enum relay_side {
	RELAY_CLIENT = 0, /* client -> upstream, read from the client */
	RELAY_UPSTREAM = 1,
} relay_side;

typedef struct relay_params {
	uint32_t max_frame;      /* payload bytes */
	uint32_t buffer_size;    /* per direction */
	int64_t idle_timeout_ns; /* 0 = none */
	int64_t frame_timeout_ns;/* 0 = none */
} relay_params;

typedef struct relay_summary {
	reason_code reason;      /* never REASON_NONE */
	relay_side oversize_side;
	uint32_t oversize_len;   /* announced length when reason is oversize or
				  * upstream_oversize */
	uint64_t frames[2];      /* forwarded, indexed by the side read from */
	uint64_t bytes[2];
	int64_t started_ns;
	int64_t ended_ns;
} relay_summary;

typedef void (*relay_done_fn)(const relay_summary *summary, void *arg);

typedef struct relay_conn relay_conn;

/*
 * The relays of one listener: their list (for drain) and a pool of idle
 * buffers of the listener's size, so a connection that wakes up does not go
 * to malloc each time.
 */
typedef struct relay_group {
	relay_conn *head;
	uint64_t active;
	void **free_buffers;
	uint32_t free_count;
	uint32_t free_max;
	uint32_t buffer_size;    /* the size pooled buffers have */
	bool draining;           /* relays started from now on drain too */
	/* Client sockets closed by a drain linger here (proxy/linger.h); the
	 * listener's rpc clients use it too. */
	linger_set linger;
	/* The listener's COUNTERS_LISTENER (proxy/counters.h): every relay
	 * of the group adds COUNTER_FRAMES and COUNTER_BYTES + the side read
	 * from as frames go out, so metrics move while long connections are
	 * open (the access log has the per-connection numbers). */
	uint64_t *counters;
} relay_group;

void relay_group_init(relay_group *group, uint32_t buffer_size,
		      uint32_t pool_max, uint64_t *counters);
void relay_group_free(relay_group *group);

/*
 * Start relaying. Takes ownership of both pollDescs; `done` runs once when
 * both are closed. 0 or -errno (then nothing was taken).
 */
int relay_start(relay_group *group, poll_desc *client, poll_desc *upstream,
		const relay_params *params, relay_done_fn done, void *done_arg);

/*
 * Drain: no relay reads a new frame from its client any more; a frame the
 * client had started is finished and forwarded. Replies keep flowing: a
 * relay closes (reason "drain") at a frame boundary of both directions once
 * the frames forwarded upstream->client are at least those forwarded
 * client->upstream, i.e. every request got a reply (an upstream that pushes
 * more than it is asked for drains at once). It closes right after the last
 * owed reply is written, and at once if nothing is owed when the drain
 * starts. A side that had ended (EOF) keeps its reason; an upstream that
 * ended owes nothing more. A relay whose replies never come stays open until
 * the caller's relay_close_all at the drain timeout.
 */
void relay_drain(relay_group *group);
/* Close every relay now (drain timeout, shutdown). */
void relay_close_all(relay_group *group, reason_code reason);

#endif
