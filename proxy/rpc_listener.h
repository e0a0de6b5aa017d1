/*
 * rpc_listener — what a listener with `mode = rpc` runs in one shard
 * (docs/RPC.md): its pool of upstream connections (rpc_upstream.c) and its
 * clients (rpc_client.c), over the pure core (rpc_req, rpc_order,
 * rpc_inflight, rpc_field).
 *
 * The listener still accepts, admits (ACL, limits) and writes the access
 * line; it hands each admitted client to rpc_client_start instead of
 * connecting it upstream. The upstream connections are opened by
 * rpc_listener_start, pool_size per server, and live until
 * rpc_listener_free; a connection that fails is opened again with backoff.
 */
#ifndef FRAMEPROXY_PROXY_RPC_LISTENER_H
#define FRAMEPROXY_PROXY_RPC_LISTENER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "poll/poll.h"
#include "proxy/reason.h"
#include "proxy/rpc_field.h"

/* The rpc keys of a listener, copied from config_rpc in plan_listener. */
typedef struct rpc_params {
	uint32_t pool_size;             /* connections per server */
	uint32_t max_inflight;          /* requests per client */
	uint64_t max_held;              /* held reply bytes per client */
	uint32_t upstream_max_inflight; /* requests per connection */
	int64_t request_timeout_ns;     /* 0 = none */
	/* A request whose servers are all at their maxconn waits this
	 * long, then its client closes with queue_timeout; 0 = no bound
	 * but request_timeout. */
	int64_t queue_timeout_ns;
	bool retry;
	rpc_field tag;                  /* len 0: FIFO */
	rpc_field hash_key;             /* len 0: the client address */
} rpc_params;

/* How one rpc client ended, for the access line. */
typedef struct rpc_summary {
	reason_code reason;
	uint32_t oversize_len;          /* announced length, reason oversize */
	uint64_t requests;              /* admitted */
	uint64_t replied;               /* replies written to the client */
	uint64_t lost;                  /* failed: upstream_lost, no_upstream */
	uint64_t request_bytes;
	uint64_t reply_bytes;
	int64_t ended_ns;
	bool handed_off;                /* its socket went to the next shard */
} rpc_summary;

typedef void (*rpc_done_fn)(const rpc_summary *summary, void *arg);

typedef struct listener listener;
typedef struct rpc_listener rpc_listener;

/* Set up the pool for listener `l` (its upstream_pool, params and
 * counters); nothing runs until rpc_listener_start. -errno. */
int rpc_listener_open(listener *l, rpc_listener **out);
/* Open the upstream connections. */
int rpc_listener_start(rpc_listener *rl);
/* A server from a name joined the pool: its pool_size connections start.
 * One left: each of its connections closes once it has nothing in flight
 * (new requests never go to it). For upstream_hooks. */
void rpc_listener_server_added(void *rl, uint32_t index);
void rpc_listener_server_removed(void *rl, uint32_t index);
/* Serve a client. Takes the pd; `done` runs once when it is closed.
 * -errno (then nothing was taken). */
int rpc_client_start(rpc_listener *rl, poll_desc *client,
		     const struct sockaddr *peer, rpc_done_fn done, void *arg);
/* Every client reads no new request; each closes with `drain` once the
 * replies it is owed are written. Clients that come later drain too. */
void rpc_listener_drain(rpc_listener *rl);
/* Close every client now. */
void rpc_listener_close_all(rpc_listener *rl, reason_code reason);
/* Reply bytes the clients hold (the rpc_held_bytes gauge). */
uint64_t rpc_listener_held_bytes(const rpc_listener *rl);
/* The overload guard (proxy/overload.h): the open client holding the
 * most reply bytes (NULL when none holds any), how many in *bytes; and
 * closing one, reason "overload" (its held replies go at once). */
struct rpc_client *rpc_listener_largest(rpc_listener *rl, uint64_t *bytes);
void rpc_client_shed(struct rpc_client *c);
/* Requests on server `index`'s connections (the rpc_inflight gauge). */
uint64_t rpc_listener_inflight(const rpc_listener *rl, uint32_t index);
/*
 * Handoff on reload (proxy/handoff.h). A client is at rest when it has
 * nothing in flight: no request read and not answered, nothing buffered,
 * idle on its read watch. fn runs for each client at rest now (its `done`
 * argument, as given to rpc_client_start); it may hand it over.
 */
typedef struct rpc_client rpc_client;
typedef void (*rpc_rest_fn)(rpc_client *c, void *done_arg, void *arg);
void rpc_listener_offer_all(rpc_listener *rl, rpc_rest_fn fn, void *arg);
/* fn also runs for a client the moment it comes to rest (NULL: never). */
void rpc_listener_set_rest_hook(rpc_listener *rl, rpc_rest_fn fn, void *arg);
/* A client at rest: its counts so far and a dup of its socket. 0, -errno. */
int rpc_client_export(rpc_client *c, rpc_summary *so_far, int *fd);
/* Its socket was handed on: close it here; `done` runs with handed_off. */
void rpc_client_handed_off(rpc_client *c);
/* A client handed over by another shard, its counts from `so_far`: as
 * rpc_client_start. */
int rpc_client_adopt(rpc_listener *rl, poll_desc *client,
		     const struct sockaddr *peer, const rpc_summary *so_far,
		     rpc_done_fn done, void *arg);

/* After sched_run: closes the connections, frees every record. */
void rpc_listener_free(rpc_listener *rl);

#endif
