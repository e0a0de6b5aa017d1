#include "proxy/rpc_req.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Buffers grow in steps of this, so a stream of frames whose sizes differ
 * by a few bytes does not realloc on every one. */
#define RPC_REQ_GRAIN 64u

void rpc_req_list_append(rpc_req_list *list, rpc_req *req)
{
	req->next = NULL;
	req->prev = list->tail;
	if (list->tail)
		list->tail->next = req;
	else
		list->head = req;
	list->tail = req;
	list->count++;
}

void rpc_req_list_unlink(rpc_req_list *list, rpc_req *req)
{
	if (req->prev)
		req->prev->next = req->next;
	else
		list->head = req->next;
	if (req->next)
		req->next->prev = req->prev;
	else
		list->tail = req->prev;
	req->prev = req->next = NULL;
	list->count--;
}

rpc_req *rpc_req_list_pop(rpc_req_list *list)
{
	rpc_req *req = list->head;

	if (req)
		rpc_req_list_unlink(list, req);
	return req;
}

void rpc_pool_init(rpc_pool *pool, uint32_t free_max, uint32_t keep_bytes)
{
	memset(pool, 0, sizeof(*pool));
	pool->free_max = free_max;
	pool->keep_bytes = keep_bytes;
}

void rpc_pool_free(rpc_pool *pool)
{
	assert(pool->live == 0);
	while (pool->free) {
		rpc_req *req = pool->free;
		pool->free = req->next;
		free(req->bytes);
		free(req);
	}
	pool->free_count = 0;
}

/* A record as rpc_pool_get hands it out, keeping its buffer. */
static void req_reset(rpc_req *req)
{
	uint8_t *bytes = req->bytes;
	uint32_t cap = req->cap;

	memset(req, 0, sizeof(*req));
	req->bytes = bytes;
	req->cap = cap;
	req->state = RPC_REQ_NEW;
}

rpc_req *rpc_pool_get(rpc_pool *pool)
{
	rpc_req *req = pool->free;

	if (req) {
		pool->free = req->next;
		pool->free_count--;
	} else {
		req = calloc(1, sizeof(*req));
		if (!req)
			return NULL;
	}
	req_reset(req);
	pool->live++;
	return req;
}

void rpc_pool_put(rpc_pool *pool, rpc_req *req)
{
	assert(req->state != RPC_REQ_FREE);
	assert(!req->owner && !req->on);
	assert(pool->live > 0);
	pool->live--;
	rpc_req_drop_bytes(req, pool->keep_bytes);
	if (pool->free_count >= pool->free_max) {
		free(req->bytes);
		free(req);
		return;
	}
	req->state = RPC_REQ_FREE;
	req->prev = NULL;
	req->next = pool->free;
	pool->free = req;
	pool->free_count++;
}

bool rpc_req_settle(rpc_pool *pool, rpc_req *req)
{
	if (req->owner || req->on)
		return false;
	rpc_pool_put(pool, req);
	return true;
}

int rpc_req_store(rpc_req *req, const void *data, size_t len)
{
	if (len > UINT32_MAX)
		return -EMSGSIZE;
	if (len > req->cap) {
		size_t cap = (len + RPC_REQ_GRAIN - 1) / RPC_REQ_GRAIN *
			     RPC_REQ_GRAIN;
		if (cap > UINT32_MAX)
			cap = UINT32_MAX;
		/* No realloc: the old bytes need not be copied, and they
		 * must survive a failure. */
		uint8_t *bytes = malloc(cap);
		if (!bytes)
			return -ENOMEM;
		free(req->bytes);
		req->bytes = bytes;
		req->cap = (uint32_t)cap;
	}
	if (len)
		memcpy(req->bytes, data, len);
	req->len = (uint32_t)len;
	return 0;
}

void rpc_req_drop_bytes(rpc_req *req, uint32_t keep_bytes)
{
	req->len = 0;
	if (req->cap <= keep_bytes)
		return;
	free(req->bytes);
	req->bytes = NULL;
	req->cap = 0;
}
