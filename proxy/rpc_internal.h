/*
 * rpc_internal — the types rpc_upstream.c and rpc_client.c share; private
 * to them (rpc_listener.h is the public side).
 *
 * A listener's rpc state in one shard: the record pool, servers x
 * pool_size connections, and its clients. Connections live as long as the
 * rpc_listener (they are reopened in place, never freed before it), so a
 * pointer to one is always valid; a client is freed by the last of its
 * agents (reader, writer, close) to let go.
 */
#ifndef FRAMEPROXY_PROXY_RPC_INTERNAL_H
#define FRAMEPROXY_PROXY_RPC_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "poll/poll.h"
#include "proxy/balance.h"
#include "proxy/log.h"
#include "proxy/rpc_inflight.h"
#include "proxy/rpc_listener.h"
#include "proxy/rpc_order.h"
#include "proxy/rpc_req.h"
#include "sched/sched.h"

/* iovecs per writev: requests gathered for a connection, replies for a
 * client. More wait for the next write. */
#define RPC_MAX_IOV 64

typedef enum rpc_conn_state {
	RPC_CONN_CONNECTING,
	RPC_CONN_UP,
	RPC_CONN_BACKOFF,
} rpc_conn_state;

/* A byte range read from a socket: buf[start, end) not consumed yet. It
 * grows past the listener's buffer only for a frame larger than that. */
typedef struct rpc_rbuf {
	uint8_t *buf;
	uint32_t cap;
	uint32_t start;
	uint32_t end;
} rpc_rbuf;

/* A reply that came before its request's write was reported complete
 * (the upstream was quicker than the writer's wake-up): kept aside, in
 * order, and matched when the write completes. */
typedef struct rpc_early {
	struct rpc_early *next;
	int64_t first_ns;       /* its first byte read */
	uint32_t len;
	uint8_t bytes[];
} rpc_early;

/* One pooled connection to one server. */
typedef struct rpc_conn {
	rpc_listener *rl;
	uint32_t server;
	rpc_conn_state state;
	bool ever_failed;       /* a connect failed since it was last up */
	bool main_parked;       /* its coroutine waits for work or the reader */
	poll_desc *pd;          /* while UP */
	rpc_inflight q;
	coro *main;             /* connect, write, back off, again */
	coro *reader;           /* while UP, and until it has left */
	int64_t backoff_ns;
	rpc_rbuf rb;            /* the reader's (here, so that a reader
				 * parked when the shard stops leaks nothing) */
	int64_t partial_ns;     /* first byte of the reply pending in rb */
	rpc_early *early;       /* oldest first */
	rpc_early *early_tail;
	uint32_t early_count;
} rpc_conn;

typedef struct rpc_client rpc_client;

struct rpc_listener {
	listener *l;
	rpc_params params;
	uint32_t max_frame;
	uint32_t buffer_size;
	int64_t idle_timeout_ns;
	int64_t frame_timeout_ns;
	uint32_t retries;       /* resends of one request */
	rpc_pool pool;
	rpc_conn *conns;        /* server s, slot k at s * pool_size + k */
	uint32_t conn_count;
	rpc_client *clients;    /* all open clients, for drain and close */
	rpc_client *waiters;    /* readers waiting for room, oldest first */
	rpc_client *waiters_tail;
	rpc_client *kicks;      /* clients to look at after a connection died */
	uint8_t **free_buffers; /* idle read buffers of buffer_size */
	uint32_t free_count;
	uint32_t free_max;
	bool draining;
	bool stopping;
	log_ratelimit conn_log; /* connection lost / unmatched reply lines */
	rpc_rest_fn on_rest;    /* retiring with handoff, else NULL */
	void *on_rest_arg;
};

/* --- rpc_upstream.c, for the clients ------------------------------------ */

/*
 * Queue a request (admitted, state NEW) on a connection of a server the
 * balancer picks, leaving out the servers in `tried` (NULL: none). 0;
 * -EAGAIN when servers are up but every connection of theirs is full (wait
 * on the waiter list); -EBUSY when the servers left are at their maxconn
 * (wait too, at most queue_timeout); -EHOSTUNREACH when no server is fit
 * (no_upstream).
 */
int rpc_dispatch(rpc_listener *rl, rpc_req *req, const struct sockaddr *peer,
		 const balance_tried *tried);
/* rpc_dispatch for a request that came off a dead connection: the same
 * results, and a request that may have been written counts as a retry of
 * the server it goes to. */
int rpc_resend(rpc_listener *rl, rpc_req *req, const struct sockaddr *peer,
	       const balance_tried *tried);

/* Read buffers of the listener's size, pooled. */
uint8_t *rpc_buffer_take(rpc_listener *rl, uint32_t *cap);
void rpc_buffer_give(rpc_listener *rl, rpc_rbuf *rb);
/* Room for `need` bytes from rb->start: compacts, or grows for a frame
 * larger than the buffer. -ENOMEM. */
int rpc_rbuf_reserve(rpc_rbuf *rb, size_t need);

/* --- rpc_client.c, for the connections --------------------------------- */

/* The client whose requests `o` orders. */
rpc_client *rpc_client_of(rpc_order *o);
/* Something changed for the client (a reply stored, a request failed):
 * start its writer, or close it when it is finished. May free it. */
void rpc_client_kick(rpc_client *c);
/* Later, from rpc_kicks_flush: a connection's lost requests are being
 * gone through, and a close now would free records still on that list. */
void rpc_client_kick_later(rpc_client *c);
void rpc_kicks_flush(rpc_listener *rl);
/* A request of the client's that came off a dead connection may be sent
 * again but every connection is full: it waits on the client, which joins
 * the waiter list (rpc_waiters_wake_* send it when there is room). */
void rpc_client_resend_later(rpc_client *c, rpc_req *req);
/* The client's peer address, for balancing. */
const struct sockaddr *rpc_client_peer(const rpc_client *c);
/* Counts a request lost (no_upstream or upstream_lost) for the access line. */
void rpc_client_count_lost(rpc_client *c);
/* Clients waiting for room on the connections (a reader parked with its
 * next request, or lost requests to send again): serve the oldest one, or
 * all, in order. A resend that finds no server at all fails its client
 * with upstream_lost. */
void rpc_waiters_wake_one(rpc_listener *rl);
void rpc_waiters_wake_all(rpc_listener *rl);

#endif
