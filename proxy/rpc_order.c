#include "proxy/rpc_order.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/rpc_inflight.h"

int rpc_order_init(rpc_order *o, rpc_pool *pool, uint32_t max_inflight,
		   size_t budget)
{
	uint32_t size = 1;

	memset(o, 0, sizeof(*o));
	if (max_inflight < 1 || max_inflight > RPC_ORDER_MAX_INFLIGHT)
		return -EINVAL;
	while (size < max_inflight)
		size <<= 1;
	o->ring = calloc(size, sizeof(*o->ring));
	if (!o->ring)
		return -ENOMEM;
	o->pool = pool;
	o->mask = size - 1;
	o->max_inflight = max_inflight;
	o->stop = RPC_ORDER_NO_STOP;
	o->budget = budget;
	return 0;
}

void rpc_order_free(rpc_order *o)
{
	assert(o->head == o->tail);
	free(o->ring);
	o->ring = NULL;
}

static rpc_req *req_slot(const rpc_order *o, uint64_t seq)
{
	return o->ring[seq & o->mask];
}

bool rpc_order_can_push(const rpc_order *o)
{
	return o->stop == RPC_ORDER_NO_STOP &&
	       rpc_order_outstanding(o) < o->max_inflight &&
	       o->held < o->budget;
}

int rpc_order_push(rpc_order *o, rpc_req *req)
{
	assert(req->state == RPC_REQ_NEW && !req->owner);
	if (o->stop != RPC_ORDER_NO_STOP)
		return -EPIPE;
	if (!rpc_order_can_push(o))
		return -EAGAIN;
	req->owner = o;
	req->seq = o->tail++;
	o->ring[req->seq & o->mask] = req;
	return 0;
}

int rpc_order_fill(rpc_order *o, rpc_req *req, const uint8_t *reply,
		   size_t len)
{
	assert(req->owner == o && !req->on && req->state == RPC_REQ_SENT);
	assert(req_slot(o, req->seq) == req);
	if (req->seq >= o->stop) {
		rpc_req_drop_bytes(req, o->pool->keep_bytes);
		req->state = RPC_REQ_READY;
		return 0;
	}
	int rc = rpc_req_store(req, reply, len);
	if (rc < 0)
		return rc;
	req->state = RPC_REQ_READY;
	o->held += len;
	return 0;
}

int rpc_order_answer(rpc_pool *pool, rpc_req *req, const uint8_t *reply,
		     size_t len)
{
	if (rpc_req_settle(pool, req))
		return RPC_ANSWER_DROPPED;
	int rc = rpc_order_fill(req->owner, req, reply, len);
	return rc < 0 ? rc : RPC_ANSWER_STORED;
}

bool rpc_order_deliverable(const rpc_order *o)
{
	return o->taken < o->tail && o->taken < o->stop &&
	       req_slot(o, o->taken)->state == RPC_REQ_READY;
}

size_t rpc_order_take(rpc_order *o, struct iovec *iov, size_t max_iov,
		      size_t *bytes)
{
	size_t n = 0;

	for (; n < max_iov && rpc_order_deliverable(o); n++, o->taken++) {
		rpc_req *req = req_slot(o, o->taken);
		iov[n].iov_base = req->bytes;
		iov[n].iov_len = req->len;
		if (bytes)
			*bytes += req->len;
		req->state = RPC_REQ_TAKEN;
	}
	return n;
}

void rpc_order_release(rpc_order *o)
{
	for (; o->head < o->taken; o->head++) {
		rpc_req *req = req_slot(o, o->head);
		o->ring[o->head & o->mask] = NULL;
		o->held -= req->len;
		req->owner = NULL;
		rpc_pool_put(o->pool, req);
	}
}

/* A request past the stop point will never be answered to the client:
 * its stored reply goes now, and so does a request not written yet (off
 * its connection, so no server does work for nobody). None of them is
 * taken: a request that can fail has no reply, so the run of taken
 * replies ends before it. */
static void forget(rpc_order *o, rpc_req *req)
{
	if (req->state == RPC_REQ_READY)
		o->held -= req->len;
	else if (req->state != RPC_REQ_QUEUED ||
		 rpc_inflight_cancel(req->on, req) < 0)
		return;
	rpc_req_drop_bytes(req, o->pool->keep_bytes);
}

static void mark_stop(rpc_order *o, uint64_t seq, int reason)
{
	uint64_t end = o->stop < o->tail ? o->stop : o->tail;

	if (seq >= o->stop)
		return;
	for (uint64_t s = seq; s < end; s++)
		forget(o, req_slot(o, s));
	o->stop = seq;
	o->reason = reason;
}

void rpc_order_fail(rpc_order *o, rpc_req *req, int reason)
{
	assert(req->owner == o && !req->on);
	assert(req->state == RPC_REQ_NEW || req->state == RPC_REQ_SENT);
	req->state = RPC_REQ_FAILED;
	rpc_req_drop_bytes(req, o->pool->keep_bytes);
	mark_stop(o, req->seq, reason);
}

void rpc_order_stop(rpc_order *o, int reason)
{
	mark_stop(o, o->tail, reason);
}

static bool answered(const rpc_req *req)
{
	return req->state == RPC_REQ_READY || req->state == RPC_REQ_TAKEN;
}

const rpc_req *rpc_order_oldest_waiting(const rpc_order *o)
{
	for (uint64_t seq = o->taken; seq < o->tail && seq < o->stop; seq++) {
		const rpc_req *req = req_slot(o, seq);
		if (!answered(req))
			return req;
	}
	return NULL;
}

/* Let go of one request; true when a connection keeps it. */
static bool let_go(rpc_order *o, rpc_req *req)
{
	req->owner = NULL;
	if (req->on && rpc_inflight_cancel(req->on, req) < 0)
		return true;
	rpc_pool_put(o->pool, req);
	return false;
}

uint32_t rpc_order_detach(rpc_order *o)
{
	uint32_t kept = 0;

	for (uint64_t seq = o->head; seq < o->tail; seq++) {
		kept += let_go(o, req_slot(o, seq));
		o->ring[seq & o->mask] = NULL;
	}
	o->head = o->taken = o->tail;
	o->held = 0;
	return kept;
}
