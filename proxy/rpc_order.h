/*
 * rpc_order — one rpc client's requests in the order it sent them, so its
 * replies go back in that order whichever server answered first.
 *
 * A ring of the client's outstanding requests, indexed by sequence number:
 *
 *   head ........ taken ........ tail
 *   [ in the current write ][ waiting, some with their reply already ]
 *
 * A reply is copied into its request's slot (rpc_order_fill); the client's
 * writer takes the contiguous run of stored replies after the current
 * write (rpc_order_take: an iovec per reply, one writev for all) and
 * releases them once written (rpc_order_release).
 *
 * Bounds. At most max_inflight requests are outstanding; at that bound
 * rpc_order_push fails and the caller stops reading the client. Reply bytes
 * stored and not yet released are `held`. A reply has already been read
 * when it arrives, so it is always stored: refusing it would mean leaving
 * it unread on its upstream connection, which is shared, and two clients
 * whose heads wait behind each other's early replies on two connections
 * would never move again. The byte budget therefore acts on the client's
 * side: while held >= budget no new request is admitted, so held bytes
 * return below the budget as the client reads. The hard bound is
 * max_inflight * (max_frame + 4) per client.
 *
 * Stopping. rpc_order_fail (a request lost with its connection, not
 * retried) and rpc_order_stop (no further request will be read: drain, a
 * bad request) both mark a point in the sequence; the earliest point wins,
 * and with it its reason. No request is admitted after that; the replies
 * before the point are delivered as usual, and rpc_order_finished says when
 * the last of them is released: then the caller closes the client with
 * rpc_order_reason. Replies after the point are never delivered, and
 * their bytes are not kept; requests after it not written yet come off
 * their connection, and a lost one is not worth a retry
 * (rpc_order_past_stop).
 *
 * Client close: rpc_order_detach lets go of every request. Those that are
 * written or being written stay with their upstream connection, ownerless,
 * and their replies are dropped when they come.
 */
#ifndef FRAMEPROXY_PROXY_RPC_ORDER_H
#define FRAMEPROXY_PROXY_RPC_ORDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "proxy/rpc_req.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RPC_ORDER_MAX_INFLIGHT 65536u
#define RPC_ORDER_NO_STOP UINT64_MAX

typedef struct rpc_order {
	rpc_pool *pool;
	rpc_req **ring;        /* seq & mask -> request */
	uint32_t mask;
	uint32_t max_inflight;
	uint64_t head;         /* oldest request not released */
	uint64_t taken;        /* first one after the current write */
	uint64_t tail;         /* seq of the next request */
	uint64_t stop;         /* first seq not delivered, or NO_STOP */
	int reason;            /* the caller's reason for stop */
	size_t held;           /* reply bytes stored, not released */
	size_t budget;
} rpc_order;

/* max_inflight 1..RPC_ORDER_MAX_INFLIGHT, else -EINVAL; -ENOMEM. */
int rpc_order_init(rpc_order *o, rpc_pool *pool, uint32_t max_inflight,
		   size_t budget);
/* After rpc_order_detach (or with nothing outstanding). */
void rpc_order_free(rpc_order *o);

static inline uint32_t rpc_order_outstanding(const rpc_order *o)
{
	return (uint32_t)(o->tail - o->head);
}

/* A new request may be read: below max_inflight and the byte budget, and
 * not stopped. */
bool rpc_order_can_push(const rpc_order *o);

/* Append a request (state NEW, no owner): it gets its seq and this owner.
 * -EAGAIN at a bound, -EPIPE once stopped. */
int rpc_order_push(rpc_order *o, rpc_req *req);

/* Store the reply of a request of this client that was just matched (state
 * SENT, on no connection). 0, or -ENOMEM (then nothing changed). A reply
 * after the stop point is not stored, only noted. */
int rpc_order_fill(rpc_order *o, rpc_req *req, const uint8_t *reply,
		   size_t len);

typedef enum rpc_answer {
	RPC_ANSWER_DROPPED = 0, /* the client had gone: back to the pool */
	RPC_ANSWER_STORED = 1,
} rpc_answer;

/* What the upstream side does with a matched request: fill its client's
 * slot, or drop it when the client is gone. rpc_answer, or -ENOMEM: the
 * request is untouched, and the caller fails it (no_memory). */
int rpc_order_answer(rpc_pool *pool, rpc_req *req, const uint8_t *reply,
		     size_t len);

/* There is a reply rpc_order_take would return: wake the writer. */
bool rpc_order_deliverable(const rpc_order *o);

/*
 * The stored replies that come next, in order and before any stop point,
 * as up to max_iov iovecs; they become TAKEN. Returns the count and adds
 * their bytes to *bytes when bytes is not NULL. The next rpc_order_release
 * releases everything taken until then.
 */
size_t rpc_order_take(rpc_order *o, struct iovec *iov, size_t max_iov,
		      size_t *bytes);

/* Everything taken is written: those requests go back to the pool. */
void rpc_order_release(rpc_order *o);

/* The request is lost: no reply will be delivered from it on. It is off
 * its connection: drained (state NEW), or matched but its reply could not
 * be stored (SENT, after rpc_order_answer's -ENOMEM). */
void rpc_order_fail(rpc_order *o, rpc_req *req, int reason);

/* No request after the ones already pushed will be delivered. */
void rpc_order_stop(rpc_order *o, int reason);

/* Stopped, and every reply before the stop point has been released. */
static inline bool rpc_order_finished(const rpc_order *o)
{
	return o->stop != RPC_ORDER_NO_STOP && o->head >= o->stop;
}

/* The request will never be delivered: fail it rather than retry it. */
static inline bool rpc_order_past_stop(const rpc_order *o,
				       const rpc_req *req)
{
	return req->seq >= o->stop;
}

static inline int rpc_order_reason(const rpc_order *o)
{
	return o->reason;
}

/* The oldest request before the stop point still waiting for its reply
 * (for request_timeout), or NULL. */
const rpc_req *rpc_order_oldest_waiting(const rpc_order *o);

/*
 * The client is gone: every request is let go. Queued ones come off their
 * connection, and those no connection holds go back to the pool. Returns
 * how many stay with an upstream connection (their replies will be
 * dropped). Nothing is outstanding afterwards.
 */
uint32_t rpc_order_detach(rpc_order *o);

#ifdef __cplusplus
}
#endif

#endif
