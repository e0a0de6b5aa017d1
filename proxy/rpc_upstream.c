/*
 * rpc_upstream — an rpc listener's pool of upstream connections in one
 * shard (docs/RPC.md, sections 1, 2 and 4).
 *
 * Each connection has one long-lived coroutine that connects, writes and
 * backs off: while up it gathers every request queued since its last
 * write into one writev (requests pushed in the same scheduler round go
 * out together, because pushing only readies it) and parks when nothing
 * is queued. A reader coroutine per connection, parked in pd_read while
 * the upstream is quiet, matches each reply to its request (FIFO or
 * rpc_tag) and hands it to the request's client. There are few
 * connections, so a stack and a buffer each is cheap.
 *
 * A connection dies on EOF, a read or write error, an oversize reply or a
 * reply that matches nothing: the pd is closed first (a parked writer wakes
 * with -EBADF before any record it points at can go), then its requests
 * come off it and are sent again (waiting for room on their client when
 * every other connection is full) or failed, and it reconnects after a
 * backoff that doubles from RPC_BACKOFF_MIN_NS up to fail_timeout.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/outlier.h"
#include "proxy/counters.h"
#include "proxy/frame.h"
#include "proxy/listener.h"
#include "proxy/log.h"
#include "proxy/rpc_internal.h"

#define RPC_BACKOFF_MIN_NS (100 * 1000 * 1000)
/* Records and buffer bytes a shard keeps for reuse (docs/RPC.md, 5). */
#define RPC_POOL_FREE_MAX 4096
#define RPC_POOL_KEEP_BYTES 4096
#define RPC_BUFFER_POOL_MAX 256

/* --- read buffers ---------------------------------------------------------- */

uint8_t *rpc_buffer_take(rpc_listener *rl, uint32_t *cap)
{
	*cap = rl->buffer_size;
	if (rl->free_count > 0)
		return rl->free_buffers[--rl->free_count];
	return malloc(rl->buffer_size);
}

void rpc_buffer_give(rpc_listener *rl, rpc_rbuf *rb)
{
	if (!rb->buf)
		return;
	if (rb->cap == rl->buffer_size && rl->free_count < rl->free_max)
		rl->free_buffers[rl->free_count++] = rb->buf;
	else
		free(rb->buf);
	*rb = (rpc_rbuf){0};
}

int rpc_rbuf_reserve(rpc_rbuf *rb, size_t need)
{
	uint32_t pending = rb->end - rb->start;

	if (rb->start + need <= rb->cap)
		return 0;
	if (need <= rb->cap) {
		memmove(rb->buf, rb->buf + rb->start, pending);
		rb->start = 0;
		rb->end = pending;
		return 0;
	}
	/* A frame larger than the buffer is held whole (requests are
	 * reordered and may be resent, so they are never streamed). */
	uint8_t *grown = malloc(need);
	if (!grown)
		return -ENOMEM;
	memcpy(grown, rb->buf + rb->start, pending);
	free(rb->buf);
	rb->buf = grown;
	rb->cap = (uint32_t)need;
	rb->start = 0;
	rb->end = pending;
	return 0;
}

/* --- picking a connection ------------------------------------------------- */

static rpc_conn *conn_of(rpc_listener *rl, uint32_t server, uint32_t slot)
{
	return &rl->conns[server * rl->params.pool_size + slot];
}

/* The server's connection with the fewest requests that has room, or
 * NULL. *open says whether it has one up or about to be (first connect). */
static rpc_conn *server_best_conn(rpc_listener *rl, uint32_t server,
				  bool *open)
{
	rpc_conn *best = NULL;

	for (uint32_t k = 0; k < rl->params.pool_size; k++) {
		rpc_conn *cn = conn_of(rl, server, k);
		if (cn->state == RPC_CONN_CONNECTING && !cn->ever_failed)
			*open = true;
		if (cn->state != RPC_CONN_UP)
			continue;
		*open = true;
		if (rpc_inflight_full(&cn->q))
			continue;
		if (!best || rpc_inflight_count(&cn->q) < rpc_inflight_count(&best->q))
			best = cn;
	}
	return best;
}

/* Readied once: whoever wakes it clears the flag first. */
static void conn_wake_main(rpc_conn *cn)
{
	if (!cn->main_parked)
		return;
	cn->main_parked = false;
	coro_ready(cn->main);
}

int rpc_dispatch(rpc_listener *rl, rpc_req *req, const struct sockaddr *peer,
		 const balance_tried *tried)
{
	listener *l = rl->l;
	upstream_pool *pool = &l->pool;
	balance_tried skip;
	bool any_open = false;
	int64_t now = sched_now();
	int server = -1;

	if (tried)
		skip = *tried;
	else
		balance_tried_clear(&skip);
	upstream_pool_refresh(pool);
	for (uint32_t s = 0; s < pool->count; s++) {
		bool open = false;
		bool usable = upstream_server_open(pool, s, now);
		if (!server_best_conn(rl, s, &open) || !usable)
			balance_tried_add(&skip, s);
		if (usable && open && !balance_tried_has(tried, s))
			any_open = true;
	}
	if (rl->params.hash_key.len) {
		if (rpc_field_pick(&pool->balancer, &rl->params.hash_key,
				   req->bytes, req->len, &skip, &server) < 0)
			return -EHOSTUNREACH; /* checked at admission */
	} else {
		server = balance_pick(&pool->balancer, peer, &skip);
	}
	if (server == BALANCE_FULL && any_open)
		return -EBUSY;
	if (server < 0)
		return any_open ? -EAGAIN : -EHOSTUNREACH;
	bool open = false;
	rpc_conn *cn = server_best_conn(rl, (uint32_t)server, &open);
	if (!cn || rpc_inflight_push(&cn->q, req) < 0)
		return -EAGAIN;
	req->server = (uint32_t)server;
	conn_wake_main(cn);
	return 0;
}

int rpc_resend(rpc_listener *rl, rpc_req *req, const struct sockaddr *peer,
	       const balance_tried *tried)
{
	bool was_sent = req->sent;
	int rc = rpc_dispatch(rl, req, peer, tried);

	if (rc == 0 && was_sent)
		rl->l->pool.servers[req->server].counters[COUNTER_RPC_RETRIES]++;
	return rc;
}

/* --- a connection dies ------------------------------------------------------ */

/*
 * Its requests came off it: each is sent again elsewhere when that is safe
 * and allowed (waiting for room when every other connection is full), or
 * fails its client (which then gets every reply before it and is closed
 * with upstream_lost). The clients are looked at only after the whole list
 * is gone through: a close frees that client's records.
 */
static void conn_requeue(rpc_listener *rl, rpc_req_list *lost,
			 uint32_t server)
{
	rpc_req *req;

	while ((req = rpc_req_list_pop(lost))) {
		rpc_order *o = req->owner;
		rpc_client *c = rpc_client_of(o);
		bool may = !rpc_order_past_stop(o, req) &&
			   (!req->sent || rl->params.retry) &&
			   req->attempts <= rl->retries;

		if (may) {
			balance_tried tried;
			balance_tried_clear(&tried);
			balance_tried_add(&tried, server);
			int rc = rpc_resend(rl, req, rpc_client_peer(c), &tried);
			if (rc == 0)
				continue;
			if (rc == -EAGAIN || rc == -EBUSY) {
				/* Servers are up but full: it waits its turn
				 * with the clients parked at a full pool. */
				rpc_client_resend_later(c, req);
				continue;
			}
		}
		if (!rpc_order_past_stop(o, req)) {
			rpc_client_count_lost(c);
			rl->l->counters[COUNTER_RPC_LOST]++;
		}
		rpc_order_fail(o, req, REASON_upstream_lost);
		rpc_client_kick_later(c);
	}
}

static void conn_early_free(rpc_conn *cn)
{
	while (cn->early) {
		rpc_early *e = cn->early;
		cn->early = e->next;
		free(e);
	}
	cn->early_tail = NULL;
	cn->early_count = 0;
}

static void conn_fail(rpc_conn *cn, const char *why, int err)
{
	rpc_listener *rl = cn->rl;
	upstream_server *server = &rl->l->pool.servers[cn->server];
	rpc_req_list lost = {0};

	if (cn->state != RPC_CONN_UP)
		return;
	cn->state = RPC_CONN_BACKOFF;
	poll_desc *pd = cn->pd;
	cn->pd = NULL;
	pd_close(pd);
	server->counters[COUNTER_RPC_POOL_OPEN]--;
	log_ratelimited(&rl->conn_log, LOG_LEVEL_WARN, "rpc upstream connection lost",
			"listener=%s upstream=%s why=%s error=%s in_flight=%u",
			rl->l->params.name, server->name, why,
			err ? strerror(-err) : "none", rpc_inflight_count(&cn->q));
	conn_early_free(cn);
	outlier_error(&rl->l->pool, cn->server, "connections_lost");
	rpc_inflight_drain(&cn->q, &lost);
	conn_requeue(rl, &lost, cn->server);
	conn_wake_main(cn);
	rpc_waiters_wake_all(rl);
	rpc_kicks_flush(rl);
}

/* --- the reader ------------------------------------------------------------- */

/* One whole reply frame; false when the connection died of it. */
static bool conn_reply(rpc_conn *cn, uint8_t *frame, size_t len,
		       int64_t first_ns)
{
	rpc_listener *rl = cn->rl;
	upstream_server *server = &rl->l->pool.servers[cn->server];
	rpc_req *req = NULL;
	rpc_match m = rpc_inflight_match(&cn->q, frame, len, &req);

	if (m != RPC_MATCH_OK) {
		server->counters[COUNTER_RPC_UNMATCHED]++;
		log_ratelimited(&rl->conn_log, LOG_LEVEL_WARN,
				"rpc reply matches no request",
				"listener=%s upstream=%s len=%zu short=%s",
				rl->l->params.name, server->name, len,
				m == RPC_MATCH_SHORT ? "true" : "false");
		upstream_server_failed(&rl->l->pool, cn->server);
		conn_fail(cn, "unmatched_reply", -EPROTO);
		return false;
	}
	server->counters[COUNTER_RPC_RECEIVED]++;
	upstream_server_answered(&rl->l->pool, cn->server);
	outlier_success(&rl->l->pool, cn->server);
	outlier_latency(&rl->l->pool, cn->server, first_ns - req->read_ns);
	if (rpc_inflight_count(&cn->q) == 0 &&
	    !upstream_server_in_set(&rl->l->pool, cn->server))
		conn_wake_main(cn); /* removed: it may close now */
	counters_observe_rpc_latency(server->counters, first_ns - req->read_ns);
	rpc_order *o = req->owner;
	int rc = rpc_order_answer(&rl->pool, req, frame, len);
	if (rc == RPC_ANSWER_DROPPED) {
		rl->l->counters[COUNTER_RPC_REPLIES_DROPPED]++;
	} else if (rc < 0) {
		rpc_client *c = rpc_client_of(o);
		if (!rpc_order_past_stop(o, req)) {
			rpc_client_count_lost(c);
			rl->l->counters[COUNTER_RPC_LOST]++;
		}
		rpc_order_fail(o, req, REASON_no_memory);
		rpc_client_kick(c);
	} else {
		rpc_client_kick(rpc_client_of(o));
	}
	rpc_waiters_wake_one(rl);
	return true;
}

/*
 * The reply is for a request of the write in progress: the kernel has
 * sent it (the upstream answered), but the writer has not been told yet
 * (it is parked for the rest of its writev, or for its io_uring
 * completion). Matching now would take the record from under the writer.
 */
static bool reply_awaits_write(const rpc_conn *cn, const uint8_t *frame,
			       size_t len)
{
	const rpc_inflight *q = &cn->q;
	size_t at;

	if (!q->writing)
		return false;
	if (!q->tag.len)
		return q->list.head && q->list.head->state == RPC_REQ_WRITING;
	if (rpc_field_find(&q->tag, frame, len, &at) < 0)
		return false;
	uint64_t id = rpc_field_get(frame + at, q->tag.len);
	const rpc_req *req = q->slots[id & q->slot_mask];
	return req && req->wire_id == id && req->state == RPC_REQ_WRITING;
}

/* Keep a reply for after the write; false when the connection died. At
 * most one per request being written: more is a broken upstream. */
static bool conn_defer(rpc_conn *cn, const uint8_t *frame, size_t len,
		       int64_t first_ns)
{
	rpc_early *e;

	if (cn->early_count >= cn->q.writing_count)
		return false;
	if (!(e = malloc(sizeof(*e) + len))) {
		conn_fail(cn, "no_memory", -ENOMEM);
		return false;
	}
	e->next = NULL;
	e->first_ns = first_ns;
	e->len = (uint32_t)len;
	memcpy(e->bytes, frame, len);
	if (cn->early_tail)
		cn->early_tail->next = e;
	else
		cn->early = e;
	cn->early_tail = e;
	cn->early_count++;
	return true;
}

/* The write completed: match the replies that came early. */
static void conn_early_flush(rpc_conn *cn)
{
	while (cn->early && cn->state == RPC_CONN_UP) {
		rpc_early *e = cn->early;
		cn->early = e->next;
		if (!cn->early)
			cn->early_tail = NULL;
		cn->early_count--;
		bool ok = conn_reply(cn, e->bytes, e->len, e->first_ns);
		free(e);
		if (!ok)
			return;
	}
}

/* The whole replies in rb, just read at `now`; false when the
 * connection died. A reply begun by an earlier read dates from that one
 * (the latency runs to a reply's first byte). */
static bool conn_scan(rpc_conn *cn, rpc_rbuf *rb, int64_t now,
		      bool continued)
{
	rpc_listener *rl = cn->rl;
	int64_t first_ns = continued ? cn->partial_ns : now;

	while (rb->end - rb->start >= FRAME_HEADER_SIZE) {
		uint8_t *p = rb->buf + rb->start;
		uint32_t len = frame_read_length(p);
		if (len > rl->max_frame) {
			log_ratelimited(&rl->conn_log, LOG_LEVEL_WARN, "frame too large",
					"listener=%s upstream=%s side=upstream length=%u "
					"max_frame=%u", rl->l->params.name,
					rl->l->pool.servers[cn->server].name, len,
					rl->max_frame);
			conn_fail(cn, "upstream_oversize", -EMSGSIZE);
			return false;
		}
		size_t total = FRAME_HEADER_SIZE + (size_t)len;
		if (rb->end - rb->start < total) {
			if (rpc_rbuf_reserve(rb, total) < 0) {
				conn_fail(cn, "no_memory", -ENOMEM);
				return false;
			}
			cn->partial_ns = first_ns;
			return true;
		}
		if (cn->early || reply_awaits_write(cn, p, total)) {
			if (!conn_defer(cn, p, total, first_ns) &&
			    (cn->state != RPC_CONN_UP ||
			     !conn_reply(cn, p, total, first_ns)))
				return false;
		} else if (!conn_reply(cn, p, total, first_ns)) {
			return false;
		}
		rb->start += (uint32_t)total;
		first_ns = now;
	}
	cn->partial_ns = first_ns;
	if (rb->start == rb->end)
		rb->start = rb->end = 0;
	else if (rpc_rbuf_reserve(rb, FRAME_HEADER_SIZE) < 0) {
		conn_fail(cn, "no_memory", -ENOMEM);
		return false;
	}
	return true;
}

static void conn_reader_main(void *arg)
{
	rpc_conn *cn = arg;
	rpc_listener *rl = cn->rl;
	poll_desc *pd = cn->pd;
	rpc_rbuf *rb = &cn->rb;

	while (cn->state == RPC_CONN_UP && cn->pd == pd) {
		if (!rb->buf && !(rb->buf = rpc_buffer_take(rl, &rb->cap))) {
			conn_fail(cn, "no_memory", -ENOMEM);
			break;
		}
		bool continued = rb->end > rb->start;
		ssize_t n = pd_read(pd, rb->buf + rb->end, rb->cap - rb->end);
		if (cn->state != RPC_CONN_UP || cn->pd != pd)
			break;
		if (n == 0) {
			conn_fail(cn, rb->end > rb->start ? "upstream_truncated"
							  : "upstream_eof", 0);
			break;
		}
		if (n < 0) {
			conn_fail(cn, "read", (int)n);
			break;
		}
		rb->end += (uint32_t)n;
		if (!conn_scan(cn, rb, sched_now(), continued))
			break;
		if (rb->end == 0)
			rpc_buffer_give(rl, rb); /* idle: nothing pending */
	}
	rpc_buffer_give(rl, rb);
	cn->reader = NULL;
	conn_wake_main(cn);
}

/* --- connect, write, back off ------------------------------------------------ */

static void conn_park(rpc_conn *cn, const char *why)
{
	cn->main_parked = true;
	coro_park(why);
	cn->main_parked = false;
}

/* The server left the pool (a name's answer dropped it) and nothing is in
 * flight here: close without a warning; no request is lost. */
static void conn_retire(rpc_conn *cn)
{
	upstream_server *server = &cn->rl->l->pool.servers[cn->server];
	poll_desc *pd = cn->pd;

	cn->state = RPC_CONN_BACKOFF;
	cn->pd = NULL;
	pd_close(pd);
	server->counters[COUNTER_RPC_POOL_OPEN]--;
	conn_early_free(cn);
}

static void conn_write_loop(rpc_conn *cn)
{
	rpc_listener *rl = cn->rl;
	upstream_server *server = &rl->l->pool.servers[cn->server];
	struct iovec iov[RPC_MAX_IOV];

	while (cn->state == RPC_CONN_UP) {
		size_t n = rpc_inflight_gather(&cn->q, iov, RPC_MAX_IOV, NULL);
		if (n == 0 && rpc_inflight_count(&cn->q) == 0 &&
		    !upstream_server_in_set(&rl->l->pool, cn->server)) {
			conn_retire(cn);
			break;
		}
		if (n == 0) {
			conn_park(cn, "rpc upstream idle");
			continue;
		}
		poll_desc *pd = cn->pd;
		ssize_t w = pd_writev_full(pd, iov, (int)n);
		/* Died while writing: its records were drained, iov is stale. */
		if (cn->state != RPC_CONN_UP || cn->pd != pd)
			break;
		if (w < 0) {
			conn_fail(cn, "write", (int)w);
			break;
		}
		rpc_inflight_wrote(&cn->q);
		server->counters[COUNTER_RPC_SENT] += n;
		conn_early_flush(cn);
	}
}

static void conn_main(void *arg)
{
	rpc_conn *cn = arg;
	rpc_listener *rl = cn->rl;
	upstream_pool *pool = &rl->l->pool;
	int64_t max_backoff = pool->params.fail_timeout_ns;

	while (!rl->stopping && upstream_server_in_set(pool, cn->server)) {
		poll_desc *pd = NULL;
		cn->state = RPC_CONN_CONNECTING;
		int rc = upstream_connect_to(pool, cn->server, &pd);
		if (rc == 0 && (rl->stopping ||
				!upstream_server_in_set(pool, cn->server))) {
			pd_close(pd);
			break;
		}
		if (rc == 0) {
			coro_opts opts = {.name = "rpc-upstream-read"};
			cn->pd = pd;
			cn->state = RPC_CONN_UP;
			cn->ever_failed = false;
			cn->backoff_ns = 0;
			pool->servers[cn->server].counters[COUNTER_RPC_POOL_OPEN]++;
			cn->reader = coro_spawn(conn_reader_main, cn, &opts);
			if (!cn->reader)
				conn_fail(cn, "no_memory", -ENOMEM);
			rpc_waiters_wake_all(rl);
			conn_write_loop(cn);
			while (cn->reader)
				conn_park(cn, "rpc upstream reader leaving");
		} else {
			cn->state = RPC_CONN_BACKOFF;
			cn->ever_failed = true;
			/* Waiting clients may have no server left. */
			rpc_waiters_wake_all(rl);
		}
		if (rl->stopping || !upstream_server_in_set(pool, cn->server))
			break;
		cn->state = RPC_CONN_BACKOFF;
		cn->backoff_ns = cn->backoff_ns ? cn->backoff_ns * 2
						: RPC_BACKOFF_MIN_NS;
		if (cn->backoff_ns > max_backoff)
			cn->backoff_ns = max_backoff > RPC_BACKOFF_MIN_NS
						 ? max_backoff : RPC_BACKOFF_MIN_NS;
		coro_sleep(cn->backoff_ns);
	}
	cn->state = RPC_CONN_BACKOFF;
	cn->main = NULL;
	pool->servers[cn->server].attached--;
}

static int conn_start(rpc_listener *rl, rpc_conn *cn)
{
	coro_opts opts = {.name = "rpc-upstream"};

	if (cn->main || rl->stopping)
		return 0;
	cn->state = RPC_CONN_CONNECTING;
	cn->ever_failed = false;
	cn->backoff_ns = 0;
	cn->main = coro_spawn(conn_main, cn, &opts);
	if (!cn->main)
		return -ENOMEM;
	rl->l->pool.servers[cn->server].attached++;
	return 0;
}

void rpc_listener_server_added(void *arg, uint32_t index)
{
	rpc_listener *rl = arg;

	for (uint32_t k = 0; k < rl->params.pool_size; k++)
		if (conn_start(rl, conn_of(rl, index, k)) < 0)
			log_line(LOG_LEVEL_WARN, "no memory for an rpc connection",
				 "listener=%s upstream=%s", rl->l->params.name,
				 rl->l->pool.servers[index].name);
	rpc_waiters_wake_all(rl);
}

void rpc_listener_server_removed(void *arg, uint32_t index)
{
	rpc_listener *rl = arg;

	for (uint32_t k = 0; k < rl->params.pool_size; k++)
		conn_wake_main(conn_of(rl, index, k));
}

/* --- lifecycle --------------------------------------------------------------- */

int rpc_listener_open(listener *l, rpc_listener **out)
{
	const listener_params *p = &l->params;
	rpc_listener *rl = calloc(1, sizeof(*rl));
	int rc = -ENOMEM;

	if (!rl)
		return -ENOMEM;
	*rl = (rpc_listener){
		.l = l,
		.params = p->rpc,
		.max_frame = p->relay.max_frame,
		.buffer_size = p->relay.buffer_size,
		.idle_timeout_ns = p->relay.idle_timeout_ns,
		.frame_timeout_ns = p->relay.frame_timeout_ns,
		.retries = p->upstream.retries,
		.free_max = RPC_BUFFER_POOL_MAX,
		.conn_log = LOG_RATELIMIT_INIT(10),
	};
	rpc_pool_init(&rl->pool, RPC_POOL_FREE_MAX, RPC_POOL_KEEP_BYTES);
	rl->conn_count = l->pool.count * p->rpc.pool_size;
	rl->conns = calloc(rl->conn_count, sizeof(*rl->conns));
	rl->free_buffers = calloc(rl->free_max, sizeof(*rl->free_buffers));
	if (!rl->conns || !rl->free_buffers)
		goto fail;
	for (uint32_t i = 0; i < rl->conn_count; i++) {
		rpc_conn *cn = &rl->conns[i];
		uint32_t server = i / p->rpc.pool_size;
		rpc_inflight_params qp = {
			.max = p->rpc.upstream_max_inflight,
			.tag = p->rpc.tag,
			.keep_requests = p->rpc.retry,
			.load = balance_active(&l->pool.balancer, server),
		};
		cn->rl = rl;
		cn->server = server;
		cn->state = RPC_CONN_BACKOFF;
		if ((rc = rpc_inflight_init(&cn->q, &rl->pool, &qp)) < 0) {
			rl->conn_count = i;
			goto fail;
		}
	}
	*out = rl;
	return 0;
fail:
	rpc_listener_free(rl);
	return rc;
}

int rpc_listener_start(rpc_listener *rl)
{
	for (uint32_t i = 0; i < rl->conn_count; i++) {
		rpc_conn *cn = &rl->conns[i];
		if (!upstream_server_in_set(&rl->l->pool, cn->server))
			continue;
		int rc = conn_start(rl, cn);
		if (rc < 0)
			return rc;
	}
	return 0;
}

uint64_t rpc_listener_inflight(const rpc_listener *rl, uint32_t index)
{
	uint64_t n = 0;

	for (uint32_t k = 0; k < rl->params.pool_size; k++)
		n += rpc_inflight_count(&rl->conns[index * rl->params.pool_size + k].q);
	return n;
}

void rpc_listener_free(rpc_listener *rl)
{
	if (!rl)
		return;
	rl->stopping = true;
	for (uint32_t i = 0; i < rl->conn_count; i++) {
		rpc_conn *cn = &rl->conns[i];
		rpc_req_list left = {0};
		rpc_req *req;

		if (cn->pd) {
			pd_close(cn->pd);
			cn->pd = NULL;
		}
		/* The clients are gone (server.c stops the loop when none is
		 * left): only ownerless records can be on a connection, and
		 * those go back to the pool. */
		conn_early_free(cn);
		rpc_buffer_give(rl, &cn->rb);
		rpc_inflight_drain(&cn->q, &left);
		while ((req = rpc_req_list_pop(&left)))
			req->on = NULL; /* a client's still: it keeps it */
		rpc_inflight_free(&cn->q);
	}
	free(rl->conns);
	for (uint32_t i = 0; i < rl->free_count; i++)
		free(rl->free_buffers[i]);
	free(rl->free_buffers);
	/* A client still open here (start-up failed half way) keeps its
	 * records: the process is about to exit. */
	if (rl->pool.live == 0)
		rpc_pool_free(&rl->pool);
	free(rl);
}
