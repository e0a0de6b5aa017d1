/*
 * rpc_inflight — the requests on one upstream connection of an rpc
 * listener, and how a reply read from it finds its request.
 *
 * The connection's requests are one list in the order they were queued:
 * sent ones (awaiting a reply), then the ones in the current write, then
 * the queued ones. The writer takes every queued request at once
 * (rpc_inflight_gather: one writev for all that were queued since its last
 * write) and reports the write done (rpc_inflight_wrote).
 *
 * Matching:
 *   FIFO (no tag)  the upstream answers in request order: a reply belongs
 *                  to the oldest sent request.
 *   rpc_tag        the proxy rewrites the request's tag field to an id
 *                  unique on this connection and keeps the client's bytes;
 *                  the reply carries the id back, in any order, and the
 *                  client's bytes are put back into it. Ids count up
 *                  through the field's whole range, wrap, and skip ids in
 *                  use; a slot table indexed by the low bits of the id
 *                  finds the request in O(1). Because ids wrap through the
 *                  whole field, a late or repeated reply usually names an
 *                  id no request has now and is caught as no match.
 *
 * A reply that matches nothing (no request sent, unknown id, or a request
 * still being written) is RPC_MATCH_NONE: the upstream broke the protocol
 * and the caller closes this connection. In flight per connection is
 * bounded by `max`, and with a tag also by the field's id space (LEN 1:
 * 256).
 */
#ifndef FRAMEPROXY_PROXY_RPC_INFLIGHT_H
#define FRAMEPROXY_PROXY_RPC_INFLIGHT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "proxy/rpc_field.h"
#include "proxy/rpc_req.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum rpc_match {
	RPC_MATCH_OK,    /* *out is the request; taken off the connection */
	RPC_MATCH_NONE,  /* no request awaits this reply */
	RPC_MATCH_SHORT, /* the reply is too short to hold the tag field */
} rpc_match;

typedef struct rpc_inflight_params {
	uint32_t max;         /* requests on the connection at once, >= 1 */
	rpc_field tag;        /* len 0: FIFO matching */
	bool keep_requests;   /* retry = on: a written request keeps its
			       * bytes until answered */
	unsigned *load;       /* NULL, or a count shared by the connections
			       * of one server: requests on them (leastconn
			       * per request), kept by every way on and off */
} rpc_inflight_params;

typedef struct rpc_inflight {
	rpc_pool *pool;
	rpc_req_list list;    /* sent, then writing, then queued */
	rpc_req *writing;     /* first of the current write, or NULL */
	rpc_req *queued;      /* first queued, or NULL */
	uint32_t writing_count;
	uint32_t max;         /* params.max, capped by the id space */
	rpc_field tag;
	bool keep_requests;
	unsigned *load;
	rpc_req **slots;      /* tag mode: id & slot_mask -> request */
	uint64_t slot_mask;
	uint64_t id_mask;     /* the field's value range */
	uint64_t id_next;
} rpc_inflight;

/* -EINVAL (max 0, tag longer than RPC_TAG_MAX_LEN), -ENOMEM. */
int rpc_inflight_init(rpc_inflight *q, rpc_pool *pool,
		      const rpc_inflight_params *params);
/* The connection must be empty (drained). */
void rpc_inflight_free(rpc_inflight *q);

static inline uint32_t rpc_inflight_count(const rpc_inflight *q)
{
	return q->list.count;
}

static inline bool rpc_inflight_full(const rpc_inflight *q)
{
	return q->list.count >= q->max;
}

/*
 * Queue a request (state NEW, its bytes a whole frame) on the connection.
 * With a tag, the field in its bytes is rewritten to a fresh id (the
 * client's bytes are saved the first time, so a retried request still
 * gets them back). -EAGAIN when the connection is full, -EBADMSG when the
 * request is too short for the tag (nothing changed either way).
 */
int rpc_inflight_push(rpc_inflight *q, rpc_req *req);

/*
 * The queued requests, oldest first, as at most max_iov iovecs (one per
 * request) for one write; they become WRITING. Returns the count (0:
 * nothing to write) and adds their bytes to *bytes when bytes is not NULL.
 * Call again only after rpc_inflight_wrote.
 */
size_t rpc_inflight_gather(rpc_inflight *q, struct iovec *iov, size_t max_iov,
			   size_t *bytes);

/* The gathered write is complete: those requests are SENT; their bytes
 * are dropped unless keep_requests. */
void rpc_inflight_wrote(rpc_inflight *q);

/*
 * Find the request a reply frame (header included, `len` bytes) answers.
 * On RPC_MATCH_OK the request is off the connection (`on` cleared, state
 * still SENT) and, with a tag, the client's bytes are back in `reply`.
 * Then the caller hands it to its client (rpc_order_answer), which drops
 * it if the client is gone. The connection is unchanged otherwise.
 */
rpc_match rpc_inflight_match(rpc_inflight *q, uint8_t *reply, size_t len,
			     rpc_req **out);

/* Take a QUEUED request off again (its client left before it was
 * written). -EBUSY when it is being written or sent. */
int rpc_inflight_cancel(rpc_inflight *q, rpc_req *req);

/*
 * The connection is gone: every request comes off it, in queue order.
 * Those whose client is gone go back to the pool; the others are appended
 * to `out` in state NEW, `on` cleared, for the caller to retry (needs
 * `sent` false, or retry on and the bytes kept) or to fail. Ids are all
 * free again. Returns how many went back to the pool.
 */
uint32_t rpc_inflight_drain(rpc_inflight *q, rpc_req_list *out);

#ifdef __cplusplus
}
#endif

#endif
