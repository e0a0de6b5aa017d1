#include "proxy/rpc_inflight.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static uint64_t id_mask_of(uint32_t len)
{
	return len >= 8 ? UINT64_MAX : (UINT64_C(1) << (8 * len)) - 1;
}

static uint64_t pow2_at_least(uint64_t n)
{
	uint64_t p = 1;

	while (p < n)
		p <<= 1;
	return p;
}

static int tag_init(rpc_inflight *q, uint32_t max)
{
	q->id_mask = id_mask_of(q->tag.len);
	q->max = max;
	if (q->id_mask < (uint64_t)max - 1)
		q->max = (uint32_t)(q->id_mask + 1);
	/* A power of two no larger than the id space, so consecutive ids
	 * visit consecutive slots even across the wrap. */
	uint64_t slots = pow2_at_least(q->max);
	q->slots = calloc(slots, sizeof(*q->slots));
	if (!q->slots)
		return -ENOMEM;
	q->slot_mask = slots - 1;
	return 0;
}

int rpc_inflight_init(rpc_inflight *q, rpc_pool *pool,
		      const rpc_inflight_params *params)
{
	memset(q, 0, sizeof(*q));
	if (params->max == 0 || params->tag.len > RPC_TAG_MAX_LEN)
		return -EINVAL;
	q->pool = pool;
	q->max = params->max;
	q->tag = params->tag;
	q->keep_requests = params->keep_requests;
	q->load = params->load;
	if (q->tag.len == 0)
		return 0;
	return tag_init(q, params->max);
}

void rpc_inflight_free(rpc_inflight *q)
{
	assert(q->list.count == 0);
	free(q->slots);
	q->slots = NULL;
}

/* The next id whose slot is free. There is one within slot_mask + 1 tries
 * because fewer than max <= slot_mask + 1 requests are on the connection. */
static uint64_t tag_alloc(rpc_inflight *q)
{
	for (;;) {
		uint64_t id = q->id_next++ & q->id_mask;
		if (!q->slots[id & q->slot_mask])
			return id;
	}
}

static int tag_rewrite(rpc_inflight *q, rpc_req *req)
{
	size_t at;

	if (rpc_field_find(&q->tag, req->bytes, req->len, &at) < 0)
		return -EBADMSG;
	if (!req->tag_saved) {
		memcpy(req->orig_tag, req->bytes + at, q->tag.len);
		req->tag_saved = true;
	}
	req->wire_id = tag_alloc(q);
	rpc_field_put(req->bytes + at, q->tag.len, req->wire_id);
	q->slots[req->wire_id & q->slot_mask] = req;
	return 0;
}

int rpc_inflight_push(rpc_inflight *q, rpc_req *req)
{
	assert(req->state == RPC_REQ_NEW && !req->on);
	if (rpc_inflight_full(q))
		return -EAGAIN;
	if (q->tag.len) {
		int rc = tag_rewrite(q, req);
		if (rc < 0)
			return rc;
	}
	req->state = RPC_REQ_QUEUED;
	req->on = q;
	req->attempts++;
	rpc_req_list_append(&q->list, req);
	if (q->load)
		(*q->load)++;
	if (!q->queued)
		q->queued = req;
	return 0;
}

size_t rpc_inflight_gather(rpc_inflight *q, struct iovec *iov, size_t max_iov,
			   size_t *bytes)
{
	size_t n = 0;
	rpc_req *req = q->queued;

	assert(!q->writing);
	for (; req && n < max_iov; req = req->next, n++) {
		iov[n].iov_base = req->bytes;
		iov[n].iov_len = req->len;
		if (bytes)
			*bytes += req->len;
		req->state = RPC_REQ_WRITING;
		req->sent = true;
	}
	if (n) {
		q->writing = q->queued;
		q->writing_count = (uint32_t)n;
	}
	q->queued = req;
	return n;
}

void rpc_inflight_wrote(rpc_inflight *q)
{
	rpc_req *req = q->writing;

	for (uint32_t i = 0; i < q->writing_count; i++, req = req->next) {
		req->state = RPC_REQ_SENT;
		if (!q->keep_requests)
			rpc_req_drop_bytes(req, q->pool->keep_bytes);
	}
	q->writing = NULL;
	q->writing_count = 0;
}

static void take_off(rpc_inflight *q, rpc_req *req)
{
	if (q->tag.len)
		q->slots[req->wire_id & q->slot_mask] = NULL;
	rpc_req_list_unlink(&q->list, req);
	req->on = NULL;
	if (q->load)
		(*q->load)--;
}

static rpc_match match_tag(rpc_inflight *q, uint8_t *reply, size_t len,
			   rpc_req **out)
{
	size_t at;

	if (rpc_field_find(&q->tag, reply, len, &at) < 0)
		return RPC_MATCH_SHORT;
	uint64_t id = rpc_field_get(reply + at, q->tag.len);
	rpc_req *req = q->slots[id & q->slot_mask];
	if (!req || req->wire_id != id || req->state != RPC_REQ_SENT)
		return RPC_MATCH_NONE;
	take_off(q, req);
	memcpy(reply + at, req->orig_tag, q->tag.len);
	*out = req;
	return RPC_MATCH_OK;
}

rpc_match rpc_inflight_match(rpc_inflight *q, uint8_t *reply, size_t len,
			     rpc_req **out)
{
	rpc_req *req = q->list.head;

	if (q->tag.len)
		return match_tag(q, reply, len, out);
	/* A reply to a request not wholly written yet is a broken upstream,
	 * and its request's buffer is still in the writer's hands. */
	if (!req || req->state != RPC_REQ_SENT)
		return RPC_MATCH_NONE;
	take_off(q, req);
	*out = req;
	return RPC_MATCH_OK;
}

int rpc_inflight_cancel(rpc_inflight *q, rpc_req *req)
{
	assert(req->on == q);
	if (req->state != RPC_REQ_QUEUED)
		return -EBUSY;
	if (q->queued == req)
		q->queued = req->next;
	take_off(q, req);
	req->state = RPC_REQ_NEW;
	return 0;
}

uint32_t rpc_inflight_drain(rpc_inflight *q, rpc_req_list *out)
{
	uint32_t dropped = 0;
	rpc_req *req;

	while ((req = q->list.head)) {
		take_off(q, req);
		req->state = RPC_REQ_NEW;
		if (rpc_req_settle(q->pool, req))
			dropped++;
		else
			rpc_req_list_append(out, req);
	}
	q->writing = q->queued = NULL;
	q->writing_count = 0;
	return dropped;
}
