/*
 * rpc_req — one request of an rpc listener, from the client read that
 * completed it to the client write that delivered its reply, and the
 * per-shard pool the records come from.
 *
 * A record has up to two holders: its client (`owner`, an rpc_order) and
 * the upstream connection it is queued or in flight on (`on`, an
 * rpc_inflight). Each holder clears its pointer when it lets go, and the
 * record goes back to the pool when both are clear (rpc_req_settle). A
 * client that closes clears `owner` on every request it still has, so a
 * reply that arrives later finds no owner and is dropped; no pointer to a
 * closed client survives it.
 *
 * One byte buffer per record carries the request (a whole frame, header
 * included) until it is written, or until it is answered when requests are
 * kept for retry, and then the reply frame. So a request never holds more
 * than max(request, reply) bytes, and keeping requests for retry costs
 * memory only between the write and the reply.
 *
 * Records are fixed-size and recycled through the pool's free list with
 * their buffer (up to keep_bytes of capacity), so a shard in steady state
 * does not go to malloc per request. Single-threaded, like a shard.
 */
#ifndef FRAMEPROXY_PROXY_RPC_REQ_H
#define FRAMEPROXY_PROXY_RPC_REQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxy/rpc_field.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum rpc_req_state {
	RPC_REQ_FREE,    /* in the pool */
	RPC_REQ_NEW,     /* holds its request, on no connection */
	RPC_REQ_QUEUED,  /* on a connection, not written yet */
	RPC_REQ_WRITING, /* in the connection's current write */
	RPC_REQ_SENT,    /* written; its reply is awaited (or was just matched) */
	RPC_REQ_READY,   /* reply stored, waiting for the ones before it */
	RPC_REQ_TAKEN,   /* reply in the client's current write */
	RPC_REQ_FAILED,  /* lost with its connection, not retried */
} rpc_req_state;

typedef struct rpc_order rpc_order;
typedef struct rpc_inflight rpc_inflight;
typedef struct rpc_req rpc_req;

typedef struct rpc_req {
	rpc_req *prev;              /* list links: the connection's list, */
	rpc_req *next;              /* a drained list, or the free list */
	rpc_order *owner;           /* NULL: the client is gone */
	rpc_inflight *on;           /* NULL: on no upstream connection */
	uint64_t seq;               /* position in its client's order */
	uint64_t wire_id;           /* rpc_tag id on `on` */
	int64_t read_ns;            /* request read completely */
	uint8_t *bytes;             /* request frame, then reply frame */
	uint32_t len;
	uint32_t cap;
	uint32_t server;            /* the caller's server index, for retry */
	uint8_t state;              /* rpc_req_state */
	uint8_t attempts;           /* connections it was queued on */
	bool sent;                  /* may have reached a server: resent
				     * elsewhere only when retry is on */
	bool tag_saved;             /* orig_tag holds the client's bytes */
	uint8_t orig_tag[RPC_TAG_MAX_LEN];
} rpc_req;

/* A list of records through prev/next, in order; O(1) unlink. */
typedef struct rpc_req_list {
	rpc_req *head;
	rpc_req *tail;
	uint32_t count;
} rpc_req_list;

void rpc_req_list_append(rpc_req_list *list, rpc_req *req);
void rpc_req_list_unlink(rpc_req_list *list, rpc_req *req);
rpc_req *rpc_req_list_pop(rpc_req_list *list);

typedef struct rpc_pool {
	rpc_req *free;        /* singly linked through next */
	uint32_t free_count;
	uint32_t free_max;    /* records kept for reuse; more are freed */
	uint32_t keep_bytes;  /* buffer capacity a recycled record keeps */
	uint64_t live;        /* handed out and not put back */
} rpc_pool;

void rpc_pool_init(rpc_pool *pool, uint32_t free_max, uint32_t keep_bytes);
/* Frees the free list. Every record must have been put back (live == 0). */
void rpc_pool_free(rpc_pool *pool);

/* A record in state NEW with no bytes, holders or links; NULL on ENOMEM. */
rpc_req *rpc_pool_get(rpc_pool *pool);
/* Back to the pool; it must have no holder left. */
void rpc_pool_put(rpc_pool *pool, rpc_req *req);

/* Put the record back if neither its client nor a connection holds it.
 * True when it went back. */
bool rpc_req_settle(rpc_pool *pool, rpc_req *req);

/* Replace the record's bytes with a copy of `data`. -ENOMEM (the old bytes
 * are kept), -EMSGSIZE above UINT32_MAX. */
int rpc_req_store(rpc_req *req, const void *data, size_t len);

/* Forget the bytes (len 0); a buffer above keep_bytes is freed. */
void rpc_req_drop_bytes(rpc_req *req, uint32_t keep_bytes);

#ifdef __cplusplus
}
#endif

#endif
