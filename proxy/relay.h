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
#include "proxy/overload.h"
#include "proxy/reason.h"
#include "proxy/tls.h"

typedef enum relay_side {
	RELAY_CLIENT = 0, /* client -> upstream, read from the client */
	RELAY_UPSTREAM = 1,
} relay_side;

typedef struct relay_params {
	uint32_t max_frame;      /* payload bytes */
	uint32_t buffer_size;    /* per direction */
	int64_t idle_timeout_ns; /* 0 = none */
	int64_t frame_timeout_ns;/* 0 = none */
	/* The client side, and the upstream side, speak TLS through these
	 * (proxy/tls.h; the caller's, freed after `done`), or NULL. Such a
	 * relay is never at rest for a handoff: its TLS state cannot cross to
	 * another shard. */
	tls_conn *client_tls;
	tls_conn *upstream_tls;
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
	bool handed_off;         /* its sockets went to the next shard */
} relay_summary;

typedef void (*relay_done_fn)(const relay_summary *summary, void *arg);

typedef struct relay_conn relay_conn;

/* What a relay at rest carries to another shard (proxy/handoff.h). */
typedef struct relay_state {
	bool done[2];            /* by side: ended, EOF passed on */
	reason_code first_eof;
	uint64_t frames[2];
	uint64_t bytes[2];
	int64_t started_ns;
	int64_t last_active_ns;
} relay_state;

/* A relay of a group that hands off came to rest (relay_at_rest). */
typedef void (*relay_rest_fn)(relay_conn *r, void *done_arg, void *arg);

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
	uint32_t free_low;       /* the fewest pooled since the last trim */
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
	/* Set while the shard hands its connections on: called when a relay
	 * comes to rest, from its pump (the relay stays valid until the call
	 * returns). NULL: never. */
	relay_rest_fn on_rest;
	void *on_rest_arg;
	/* The shard's overload guard (proxy/overload.h), shared by every
	 * group of the shard, or NULL: buffers are counted there, and client
	 * input waits while it is near its budget. */
	overload *overload;
} relay_group;

void relay_group_init(relay_group *group, uint32_t buffer_size,
		      uint32_t pool_max, uint64_t *counters);
void relay_group_free(relay_group *group);
/* Free the pooled buffers no take needed since the last call (the fewest
 * the pool held in between): after a burst the pool shrinks back, one
 * period later, to what the load still uses. */
void relay_group_trim(relay_group *group);

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

/*
 * Overload (proxy/overload.h): the open relay of `groups` holding the most
 * buffer bytes (NULL when none holds any) and how many in *bytes; what
 * relays already closing still hold is added to *closing.
 */
relay_conn *relay_largest(relay_group *groups, uint32_t count,
			  uint64_t *bytes, uint64_t *closing);
/* Close it now, reason "overload". */
void relay_shed(relay_conn *r);

/*
 * Handoff. A relay is at rest when both directions are at a frame boundary
 * with nothing read and not forwarded: each idle on its watch (no pump, no
 * buffer) or ended; every byte in flight is in the kernel's buffers.
 */
bool relay_at_rest(const relay_conn *r);
/* A relay at rest: its state and a dup of each socket. 0 or -errno;
 * -EAGAIN while a receive may still take its bytes (io_uring completion
 * I/O: the first call pauses them, pd_recv_pause; offer it again later). */
int relay_export(relay_conn *r, relay_state *state, int *client_fd,
		 int *upstream_fd);
/* The handoff is over (done, failed or replaced by a drain): relays that
 * relay_export paused receive again. */
void relay_resume_all(relay_group *group);
/* Its sockets were handed on: close its pollDescs here; `done` runs with
 * handed_off set. */
void relay_handed_off(relay_conn *r);
/* on_rest for every relay at rest now (it may close them). */
void relay_offer_all(relay_group *group);
/*
 * A relay handed over by another shard: idle from the start (a watch per
 * open side, no pump, no buffer), its counts and times from `state`.
 * Takes both pollDescs, as relay_start. 0 or -errno (nothing taken).
 */
int relay_adopt(relay_group *group, poll_desc *client, poll_desc *upstream,
		const relay_params *params, const relay_state *state,
		relay_done_fn done, void *done_arg);

#endif
