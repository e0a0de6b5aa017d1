/*
 * rpc_client — one client of an rpc listener (docs/RPC.md, sections 2
 * and 3).
 *
 * Reader: a read watch while the client is quiet; a coroutine with a
 * pooled buffer while it sends. It admits each whole frame as a request
 * and queues it on a connection (rpc_dispatch). At max_inflight or
 * max_held it parks, leaving the rest unread in the kernel
 * (backpressure), until the writer releases replies; when every
 * connection is full it parks on the listener's waiter list. A request
 * lost with its connection that may be sent again but finds every
 * connection full waits on that list too, in the client's resends, and is
 * sent by whoever wakes the client (a match or a connection's change).
 *
 * Writer: a coroutine spawned when a reply becomes deliverable. It writes
 * every reply deliverable by then in one writev, in request order, and
 * exits when none is left. Replies made deliverable in the same scheduler
 * round go out together, because a kick only spawns or readies it.
 *
 * Stops (rpc_order_stop/fail) end reading; the client closes with the
 * stop's reason once the replies before it are written. A close (reset,
 * timeout, drain timeout) closes the pd first, which wakes a writer
 * parked on it with -EBADF before its iovecs' records go (detach).
 * The client holds a reference of its own from start to close (replies
 * may be owed while no agent runs), and every agent (reader or its watch,
 * writer) one; the last one out reports and frees.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/outlier.h"
#include "proxy/counters.h"
#include "proxy/frame.h"
#include "proxy/listener.h"
#include "proxy/log.h"
#include "proxy/rpc_internal.h"

struct rpc_client {
	rpc_order order;           /* first: rpc_client_of */
	rpc_listener *rl;
	rpc_client *prev, *next;   /* the listener's clients */
	rpc_client *wait_next;     /* the waiter list */
	rpc_client *kick_next;     /* the kick list */
	poll_desc *pd;
	struct sockaddr_storage peer;
	rpc_done_fn done;
	void *done_arg;
	rpc_rbuf rb;
	rpc_req *pending;          /* admitted, waiting for a connection */
	rpc_req_list resends;      /* lost, to be sent again when there is
				    * room (retry), oldest first */
	coro *reader_parked;       /* parked at a bound or for room */
	sched_timer timer;         /* request_timeout and idle_timeout */
	int64_t timer_due;
	int64_t last_active;
	int64_t full_since;        /* pending waits on full servers since; 0: not */
	int64_t frame_started;     /* a partial frame is being read */
	uint32_t refs;
	uint32_t oversize_len;
	reason_code reason;
	bool reader_running;       /* a reader coroutine exists */
	bool watching;             /* the read watch is armed */
	bool reading_done;         /* no more reading: stopped or ended */
	bool writer_running;
	bool waiting;              /* on the waiter list: pending or resends */
	bool kick_queued;
	bool closing;
	bool draining;
	bool handed_off;           /* rpc_client_handed_off */
	bool recv_paused;          /* rpc_client_export paused its receive */
	uint64_t requests;
	uint64_t replied;
	uint64_t lost;
	uint64_t request_bytes;
	uint64_t reply_bytes;
};

static void reader_spawn(rpc_client *c);
static void client_close(rpc_client *c, reason_code reason);
static void offer_if_at_rest(rpc_client *c);

rpc_client *rpc_client_of(rpc_order *o)
{
	return (rpc_client *)o;
}

const struct sockaddr *rpc_client_peer(const rpc_client *c)
{
	return (const struct sockaddr *)&c->peer;
}

void rpc_client_count_lost(rpc_client *c)
{
	c->lost++;
}

/* --- lifetime ----------------------------------------------------------------- */

static void client_finish(rpc_client *c)
{
	rpc_listener *rl = c->rl;
	rpc_summary summary = {
		.reason = c->reason != REASON_NONE ? c->reason
						   : REASON_internal_error,
		.oversize_len = c->oversize_len,
		.requests = c->requests,
		.replied = c->replied,
		.lost = c->lost,
		.request_bytes = c->request_bytes,
		.reply_bytes = c->reply_bytes,
		.ended_ns = sched_now(),
		.handed_off = c->handed_off,
	};

	rpc_buffer_give(rl, &c->rb);
	rpc_order_free(&c->order);
	if (c->prev)
		c->prev->next = c->next;
	else
		rl->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	if (c->done)
		c->done(&summary, c->done_arg);
	free(c);
}

static void client_release(rpc_client *c)
{
	if (--c->refs == 0)
		client_finish(c);
}

static void client_touch(rpc_client *c)
{
	c->last_active = sched_now();
}

static void reader_wake(rpc_client *c)
{
	coro *reader = c->reader_parked;

	if (!reader)
		return;
	c->reader_parked = NULL;
	coro_ready(reader);
}

/* --- waiting for room on the connections ------------------------------------- */

/* Once: a client whose reader and resends both wait keeps one place. */
static void waiter_add(rpc_client *c)
{
	rpc_listener *rl = c->rl;

	if (c->waiting)
		return;
	c->waiting = true;
	c->wait_next = NULL;
	if (rl->waiters_tail)
		rl->waiters_tail->wait_next = c;
	else
		rl->waiters = c;
	rl->waiters_tail = c;
}

static void waiter_remove(rpc_client *c)
{
	rpc_listener *rl = c->rl;
	rpc_client **p = &rl->waiters, *prev = NULL;

	if (!c->waiting)
		return;
	while (*p && *p != c) {
		prev = *p;
		p = &(*p)->wait_next;
	}
	if (*p)
		*p = c->wait_next;
	if (rl->waiters_tail == c)
		rl->waiters_tail = prev;
	c->waiting = false;
}

static rpc_client *waiter_pop(rpc_listener *rl)
{
	rpc_client *c = rl->waiters;

	if (!c)
		return NULL;
	rl->waiters = c->wait_next;
	if (!rl->waiters)
		rl->waiters_tail = NULL;
	c->waiting = false;
	return c;
}

/* Still the oldest: back in front. */
static void waiter_add_front(rpc_client *c)
{
	rpc_listener *rl = c->rl;

	c->waiting = true;
	c->wait_next = rl->waiters;
	rl->waiters = c;
	if (!rl->waiters_tail)
		rl->waiters_tail = c;
}

void rpc_client_resend_later(rpc_client *c, rpc_req *req)
{
	rpc_req_list_append(&c->resends, req);
	waiter_add(c);
}

/*
 * Send the client's lost requests again, oldest first: how many went out,
 * or -EAGAIN when one still finds every connection full (it stays first,
 * and those before it went out). One that finds no
 * server fit fails the client (upstream_lost, as a request lost and not
 * retried); the ones after it are past that stop and are let go (the
 * close's detach frees them). The client is looked at later
 * (rpc_kicks_flush): a close now could free a waiter still to be served.
 */
static int resends_flush(rpc_client *c)
{
	rpc_listener *rl = c->rl;
	rpc_req *req;
	int sent = 0;

	while ((req = rpc_req_list_pop(&c->resends))) {
		if (rpc_order_past_stop(&c->order, req))
			continue;
		int rc = rpc_resend(rl, req, rpc_client_peer(c), NULL);
		if (rc == 0) {
			sent++;
			continue;
		}
		if (rc == -EAGAIN || rc == -EBUSY) {
			rpc_req_list rest = c->resends;
			rpc_req *more;
			c->resends = (rpc_req_list){0};
			rpc_req_list_append(&c->resends, req);
			while ((more = rpc_req_list_pop(&rest)))
				rpc_req_list_append(&c->resends, more);
			return -EAGAIN;
		}
		c->lost++;
		rl->l->counters[COUNTER_RPC_LOST]++;
		rpc_order_fail(&c->order, req, REASON_upstream_lost);
		rpc_client_kick_later(c);
	}
	return sent;
}

/* A waiter's turn: its resends go first, then its reader tries its next
 * request. -EAGAIN when it still waits; 1 when it took room (a resend went
 * out, or its reader was woken to try); 0 when it had nothing left to send
 * (everything past a stop). */
static int waiter_serve(rpc_client *c)
{
	int sent = resends_flush(c);

	if (sent < 0)
		return sent;
	if (c->pending) {
		reader_wake(c); /* it joins again if there is no room */
		return 1;
	}
	return sent > 0;
}

/* Room for one more: the oldest waiter that can use it gets it. */
void rpc_waiters_wake_one(rpc_listener *rl)
{
	rpc_client *c;

	while ((c = waiter_pop(rl))) {
		int rc = waiter_serve(c);
		if (rc < 0)
			waiter_add_front(c);
		if (rc != 0)
			break;
	}
	rpc_kicks_flush(rl);
}

void rpc_waiters_wake_all(rpc_listener *rl)
{
	rpc_client *c = rl->waiters;

	/* Taken off first: those that still wait join again, in order. */
	rl->waiters = rl->waiters_tail = NULL;
	while (c) {
		rpc_client *next = c->wait_next;
		c->waiting = false;
		if (waiter_serve(c) < 0)
			waiter_add(c);
		c = next;
	}
	rpc_kicks_flush(rl);
}

/* --- the writer ---------------------------------------------------------------- */

/* Stopped and every reply before the stop is written: close with its
 * reason. May free c. */
static void client_settle(rpc_client *c)
{
	if (!c->closing && !c->writer_running &&
	    rpc_order_finished(&c->order))
		client_close(c, (reason_code)rpc_order_reason(&c->order));
}

static void writer_main(void *arg)
{
	rpc_client *c = arg;
	rpc_listener *rl = c->rl;
	struct iovec iov[RPC_MAX_IOV];

	while (!c->closing) {
		size_t bytes = 0;
		size_t n = rpc_order_take(&c->order, iov, RPC_MAX_IOV, &bytes);
		if (n == 0)
			break;
		ssize_t w = pd_writev_full(c->pd, iov, (int)n);
		if (c->closing)
			break; /* detached: iov is stale */
		if (w < 0) {
			client_close(c, REASON_client_reset);
			break;
		}
		rpc_order_release(&c->order);
		c->replied += n;
		c->reply_bytes += bytes;
		rl->l->counters[COUNTER_RPC_REPLIES] += n;
		rl->l->counters[COUNTER_FRAMES + 1] += n;
		rl->l->counters[COUNTER_BYTES + 1] += bytes;
		client_touch(c);
		if (c->reader_parked && !c->pending &&
		    rpc_order_can_push(&c->order))
			reader_wake(c);
	}
	c->writer_running = false;
	client_settle(c);
	offer_if_at_rest(c);
	client_release(c);
}

void rpc_client_kick(rpc_client *c)
{
	/* A running writer takes what became deliverable on its next turn. */
	if (c->closing || c->writer_running)
		return;
	if (rpc_order_deliverable(&c->order)) {
		coro_opts opts = {.name = "rpc-client-write"};
		c->writer_running = true;
		c->refs++;
		if (!coro_spawn(writer_main, c, &opts)) {
			c->writer_running = false;
			c->refs--;
			client_close(c, REASON_no_memory);
		}
		return;
	}
	client_settle(c);
}

void rpc_client_kick_later(rpc_client *c)
{
	if (c->kick_queued)
		return;
	c->kick_queued = true;
	c->kick_next = c->rl->kicks;
	c->rl->kicks = c;
}

void rpc_kicks_flush(rpc_listener *rl)
{
	rpc_client *c;

	while ((c = rl->kicks)) {
		rl->kicks = c->kick_next;
		c->kick_queued = false;
		rpc_client_kick(c);
	}
}

/* --- timers ---------------------------------------------------------------------- */

static void timer_arm(rpc_client *c, int64_t due)
{
	if (sched_timer_pending(&c->timer) && c->timer_due <= due)
		return;
	c->timer_due = due;
	sched_timer_set(&c->timer, due);
}

/* Lazy, as the relay's idle timer: it looks when it fires and re-arms. */
static void timer_fired(sched_timer *timer, void *arg)
{
	rpc_client *c = arg;
	rpc_listener *rl = c->rl;
	int64_t now = sched_now(), next = INT64_MAX;

	(void)timer;
	if (c->closing)
		return;
	if (c->full_since && c->pending && rl->params.queue_timeout_ns > 0) {
		int64_t due = c->full_since + rl->params.queue_timeout_ns;
		if (now >= due) {
			client_close(c, REASON_queue_timeout);
			return;
		}
		next = due;
	}
	const rpc_req *oldest = rpc_order_oldest_waiting(&c->order);
	if (oldest && rl->params.request_timeout_ns > 0) {
		int64_t due = oldest->read_ns + rl->params.request_timeout_ns;
		if (now >= due) {
			if (oldest->sent)
				outlier_error(&rl->l->pool, oldest->server, "timeouts");
			client_close(c, REASON_request_timeout);
			return;
		}
		next = due;
	}
	if (rl->idle_timeout_ns > 0) {
		int64_t due = c->last_active + rl->idle_timeout_ns;
		bool quiet = rpc_order_outstanding(&c->order) == 0 &&
			     !c->writer_running && c->frame_started == 0;
		/* After a stalled shard, timers run before the readers the
		 * waiting bytes woke: a client that just spoke is not idle
		 * (as in the relay). */
		if (quiet && now >= due && !c->reading_done) {
			int ready = pd_ready_now(c->pd);
			if (ready > 0 && (ready & PD_READ)) {
				client_touch(c);
				due = c->last_active + rl->idle_timeout_ns;
			}
		}
		if (quiet && now >= due) {
			client_close(c, REASON_idle_timeout);
			return;
		}
		if (due <= now)
			due = now + rl->idle_timeout_ns;
		if (due < next)
			next = due;
	}
	if (next != INT64_MAX) {
		c->timer_due = next;
		sched_timer_set(&c->timer, next);
	}
}

/* --- the reader ------------------------------------------------------------------ */

typedef enum admit_result {
	ADMIT_MORE,    /* the next frame is not whole yet */
	ADMIT_BLOCKED, /* at a bound, or its request waits for room */
	ADMIT_STOP,    /* reading is over */
} admit_result;

/* No more requests from this client (its reason is already set). */
static void reader_stop(rpc_client *c, int reason)
{
	rpc_order_stop(&c->order, reason);
	c->reading_done = true;
}

/* The request waits no longer: it failed, so nothing after it is read. */
static void request_failed(rpc_client *c, rpc_req *req, reason_code reason)
{
	c->lost++;
	c->rl->l->counters[COUNTER_RPC_LOST]++;
	rpc_order_fail(&c->order, req, reason);
	c->reading_done = true;
}

/* Queue an admitted request; ADMIT_BLOCKED leaves it pending. */
static admit_result request_dispatch(rpc_client *c, rpc_req *req)
{
	int rc = rpc_dispatch(c->rl, req, rpc_client_peer(c), NULL);

	if (rc == 0) {
		c->pending = NULL;
		c->full_since = 0;
		return ADMIT_MORE;
	}
	if (rc == -EBUSY && !c->full_since && c->rl->params.queue_timeout_ns > 0) {
		c->full_since = sched_now();
		timer_arm(c, c->full_since + c->rl->params.queue_timeout_ns);
	}
	if (rc == -EAGAIN || rc == -EBUSY) {
		c->pending = req;
		return ADMIT_BLOCKED;
	}
	c->pending = NULL;
	request_failed(c, req, REASON_no_upstream);
	return ADMIT_STOP;
}

static admit_result request_admit(rpc_client *c, const uint8_t *frame,
				  size_t len)
{
	rpc_listener *rl = c->rl;
	rpc_req *req = rpc_pool_get(&rl->pool);
	size_t at;

	if (!req || rpc_req_store(req, frame, len) < 0) {
		if (req)
			rpc_pool_put(&rl->pool, req);
		reader_stop(c, REASON_no_memory);
		return ADMIT_STOP;
	}
	if ((rl->params.tag.len &&
	     rpc_field_find(&rl->params.tag, frame, len, &at) < 0) ||
	    (rl->params.hash_key.len &&
	     rpc_field_find(&rl->params.hash_key, frame, len, &at) < 0)) {
		rpc_pool_put(&rl->pool, req);
		reader_stop(c, REASON_bad_request);
		return ADMIT_STOP;
	}
	req->read_ns = sched_now();
	rpc_order_push(&c->order, req); /* can_push was checked */
	c->requests++;
	c->request_bytes += len;
	rl->l->counters[COUNTER_RPC_REQUESTS]++;
	rl->l->counters[COUNTER_FRAMES]++;
	rl->l->counters[COUNTER_BYTES] += len;
	if (rl->params.request_timeout_ns > 0)
		timer_arm(c, req->read_ns + rl->params.request_timeout_ns);
	return request_dispatch(c, req);
}

/* Admit the whole frames in the buffer, as far as the bounds let. */
static admit_result reader_admit(rpc_client *c)
{
	rpc_listener *rl = c->rl;
	rpc_rbuf *rb = &c->rb;

	while (rb->end - rb->start >= FRAME_HEADER_SIZE) {
		const uint8_t *p = rb->buf + rb->start;
		uint32_t len = frame_read_length(p);
		if (len > rl->max_frame) {
			c->oversize_len = len;
			reader_stop(c, REASON_oversize);
			return ADMIT_STOP;
		}
		size_t total = FRAME_HEADER_SIZE + (size_t)len;
		if (rb->end - rb->start < total) {
			if (rpc_rbuf_reserve(rb, total) < 0) {
				reader_stop(c, REASON_no_memory);
				return ADMIT_STOP;
			}
			return ADMIT_MORE;
		}
		if (c->order.stop != RPC_ORDER_NO_STOP) {
			c->reading_done = true; /* a request failed */
			return ADMIT_STOP;
		}
		if (!rpc_order_can_push(&c->order))
			return ADMIT_BLOCKED;
		rb->start += (uint32_t)total;
		admit_result r = request_admit(c, p, total);
		if (r != ADMIT_MORE)
			return r;
	}
	if (rb->start == rb->end) {
		rb->start = rb->end = 0;
	} else if (rpc_rbuf_reserve(rb, FRAME_HEADER_SIZE) < 0) {
		reader_stop(c, REASON_no_memory);
		return ADMIT_STOP;
	}
	return ADMIT_MORE;
}

static bool reader_at_boundary(const rpc_client *c)
{
	return c->rb.end == c->rb.start;
}

static void on_client_readable(poll_desc *pd, void *arg)
{
	rpc_client *c = arg;

	(void)pd;
	c->watching = false;
	c->recv_paused = false; /* the reader's read resumes the receive */
	if (c->closing || c->reading_done) {
		client_release(c);
		return;
	}
	reader_spawn(c); /* takes over the watch's reference */
}

/* Quiet at a frame boundary: the watch replaces the coroutine. True when
 * the reader should exit; false to read again (readiness slipped in). */
static bool reader_go_idle(rpc_client *c)
{
	rpc_buffer_give(c->rl, &c->rb);
	int rc = pd_watch(c->pd, PD_READ, on_client_readable, c);
	if (rc == 1)
		return false;
	if (rc < 0) {
		client_close(c, REASON_internal_error);
		return true;
	}
	c->watching = true;
	c->refs++;
	return true;
}

/* A partial frame: wait for the rest, no longer than frame_timeout. */
static int reader_wait_rest(rpc_client *c)
{
	rpc_listener *rl = c->rl;

	if (rl->frame_timeout_ns > 0)
		pd_set_deadline(c->pd, PD_READ,
				c->frame_started + rl->frame_timeout_ns);
	int rc = pd_wait(c->pd, PD_READ);
	if (c->closing)
		return -EBADF;
	if (rl->frame_timeout_ns > 0)
		pd_set_deadline(c->pd, PD_READ, 0);
	if (rc == -ETIMEDOUT) {
		client_close(c, REASON_frame_timeout);
		return rc;
	}
	return 0;
}

static void reader_park(rpc_client *c, const char *why)
{
	c->reader_parked = coro_self();
	coro_park(why);
}

/* The body of the reader coroutine: until idle, stopped or closed. */
static void reader_pump(rpc_client *c)
{
	rpc_listener *rl = c->rl;

	while (!c->closing) {
		if (c->pending && rpc_order_past_stop(&c->order, c->pending)) {
			/* An earlier request failed: this one is never
			 * delivered, so it is not sent (detach frees it). */
			c->pending = NULL;
			c->reading_done = true;
		}
		if (c->pending) {
			if (request_dispatch(c, c->pending) == ADMIT_BLOCKED) {
				waiter_add(c);
				reader_park(c, "rpc client waits for room");
				continue;
			}
			rpc_client_kick(c);
			if (c->closing)
				return;
		}
		if (c->reading_done)
			return;
		if (c->rb.buf) {
			admit_result r = reader_admit(c);
			if (r == ADMIT_STOP) {
				client_settle(c);
				return;
			}
			if (r == ADMIT_BLOCKED) {
				if (!c->pending)
					reader_park(c, "rpc client at its bound");
				continue;
			}
		}
		if (reader_at_boundary(c)) {
			c->frame_started = 0;
			if (c->draining) {
				reader_stop(c, REASON_drain);
				client_settle(c);
				return;
			}
		} else if (c->frame_started == 0) {
			c->frame_started = sched_now();
		}
		if (!c->rb.buf && !(c->rb.buf = rpc_buffer_take(rl, &c->rb.cap))) {
			client_close(c, REASON_no_memory);
			return;
		}
		ssize_t n = pd_read_drained(c->pd) ? -EAGAIN
			    : pd_try_read(c->pd, c->rb.buf + c->rb.end,
					  c->rb.cap - c->rb.end);
		if (c->closing)
			return;
		if (n == -EAGAIN) {
			if (reader_at_boundary(c)) {
				if (reader_go_idle(c))
					return;
				continue;
			}
			if (reader_wait_rest(c) < 0)
				return;
			continue;
		}
		if (n < 0) {
			client_close(c, REASON_client_reset);
			return;
		}
		if (n == 0) {
			if (!reader_at_boundary(c)) {
				client_close(c, REASON_client_truncated);
				return;
			}
			reader_stop(c, REASON_client_eof);
			rpc_buffer_give(rl, &c->rb);
			client_settle(c);
			return;
		}
		c->rb.end += (uint32_t)n;
		client_touch(c);
	}
}

static void reader_main(void *arg)
{
	rpc_client *c = arg;

	reader_pump(c);
	c->reader_running = false;
	c->reader_parked = NULL;
	if (c->reading_done || c->closing)
		rpc_buffer_give(c->rl, &c->rb);
	offer_if_at_rest(c); /* our reference keeps c through it */
	client_release(c);
}

/* Takes one reference (the caller's, or the watch's it replaces). */
static void reader_spawn(rpc_client *c)
{
	coro_opts opts = {.name = "rpc-client-read"};

	c->reader_running = true;
	if (!coro_spawn(reader_main, c, &opts)) {
		c->reader_running = false;
		client_close(c, REASON_no_memory);
		client_release(c);
	}
}

/* --- close ------------------------------------------------------------------------ */

/*
 * A drain's close with nobody parked on the socket (no writer, no frame
 * being read) lingers (proxy/linger.h): a client that still sends (its
 * requests are no longer read) sees a FIN after its last reply, not an
 * RST that would throw that reply away.
 */
static bool client_lingers(const rpc_client *c, reason_code reason)
{
	return c->draining && !c->writer_running && c->frame_started == 0 &&
	       reason != REASON_client_reset && reason != REASON_client_truncated;
}

static void client_close(rpc_client *c, reason_code reason)
{
	if (c->closing)
		return;
	c->closing = true;
	c->reason = reason;
	waiter_remove(c);
	c->pending = NULL; /* detach lets go of them */
	c->resends = (rpc_req_list){0};
	reader_wake(c);
	sched_timer_cancel(&c->timer);
	poll_desc *pd = c->pd;
	if (c->handed_off) {
		pd_close(pd);
	} else if (client_lingers(c, reason)) {
		if (c->watching && pd_unwatch(pd, PD_READ) == 0) {
			c->watching = false;
			c->refs--; /* the watch's; the client's own keeps c */
		}
		linger_close(&c->rl->l->relays->linger, pd);
	} else if (reason == REASON_client_reset) {
		pd_close(pd);
	} else {
		linger_close(&(linger_set){0}, pd); /* drops what came, closes */
	}
	rpc_order_detach(&c->order);
	client_release(c); /* the open client's own reference */
}

/* --- the listener's side ---------------------------------------------------------- */

int rpc_client_start(rpc_listener *rl, poll_desc *client,
		     const struct sockaddr *peer, rpc_done_fn done, void *arg)
{
	rpc_client *c = calloc(1, sizeof(*c));
	socklen_t len = peer->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
						    : sizeof(struct sockaddr_in);

	if (!c)
		return -ENOMEM;
	int rc = rpc_order_init(&c->order, &rl->pool, rl->params.max_inflight,
				rl->params.max_held);
	if (rc < 0) {
		free(c);
		return rc;
	}
	c->rl = rl;
	c->pd = client;
	memcpy(&c->peer, peer, len);
	c->done = done;
	c->done_arg = arg;
	c->reason = REASON_NONE;
	c->draining = rl->draining;
	c->last_active = sched_now();
	c->next = rl->clients;
	if (rl->clients)
		rl->clients->prev = c;
	rl->clients = c;
	sched_timer_init(&c->timer, timer_fired, c);
	if (rl->idle_timeout_ns > 0)
		timer_arm(c, c->last_active + rl->idle_timeout_ns);
	c->refs = 2; /* its own until the close, and the reader's */
	reader_spawn(c);
	return 0;
}

static void client_drain(rpc_client *c)
{
	c->draining = true;
	if (c->reading_done)
		return;
	if (!c->reader_running) {
		/* Idle on its watch: no frame started. */
		reader_stop(c, REASON_drain);
		client_settle(c);
		return;
	}
	if (c->reader_parked && !c->pending) {
		/* At a bound: what it holds unread stays unread. */
		reader_stop(c, REASON_drain);
		reader_wake(c);
	}
}

void rpc_listener_drain(rpc_listener *rl)
{
	rpc_client *c = rl->clients;

	rl->draining = true;
	while (c) {
		rpc_client *next = c->next; /* a close may free c */
		client_drain(c);
		c = next;
	}
}

void rpc_listener_close_all(rpc_listener *rl, reason_code reason)
{
	rpc_client *c = rl->clients;

	while (c) {
		rpc_client *next = c->next;
		client_close(c, reason);
		c = next;
	}
}

uint64_t rpc_listener_held_bytes(const rpc_listener *rl)
{
	uint64_t held = 0;

	for (const rpc_client *c = rl->clients; c; c = c->next)
		held += c->order.held;
	return held;
}

rpc_client *rpc_listener_largest(rpc_listener *rl, uint64_t *bytes)
{
	rpc_client *largest = NULL;
	uint64_t most = 0;

	for (rpc_client *c = rl->clients; c; c = c->next)
		if (!c->closing && c->order.held > most)
			largest = c, most = c->order.held;
	*bytes = most;
	return largest;
}

void rpc_client_shed(rpc_client *c)
{
	client_close(c, REASON_overload);
}

/* --- handoff ----------------------------------------------------------------------- */

static bool client_at_rest(const rpc_client *c)
{
	return !c->closing && !c->draining && !c->reading_done && c->watching &&
	       !c->reader_running && !c->writer_running && !c->pending &&
	       !c->waiting && c->resends.count == 0 && !c->kick_queued &&
	       rpc_order_outstanding(&c->order) == 0 && c->rb.start == c->rb.end &&
	       c->frame_started == 0;
}

/* A retiring shard's hook (rpc_listener_set_rest_hook): a client that
 * has just come to rest goes at once, not at the next sweep. */
static void offer_if_at_rest(rpc_client *c)
{
	rpc_listener *rl = c->rl;

	if (rl->on_rest && client_at_rest(c))
		rl->on_rest(c, c->done_arg, rl->on_rest_arg);
}

void rpc_listener_set_rest_hook(rpc_listener *rl, rpc_rest_fn fn, void *arg)
{
	rl->on_rest = fn;
	rl->on_rest_arg = arg;
	if (fn)
		return;
	for (rpc_client *c = rl->clients; c; c = c->next)
		if (c->recv_paused) {
			c->recv_paused = false;
			pd_recv_resume(c->pd);
		}
}

void rpc_listener_offer_all(rpc_listener *rl, rpc_rest_fn fn, void *arg)
{
	rpc_client *c = rl->clients;

	while (c) {
		rpc_client *next = c->next; /* fn may free c */
		if (client_at_rest(c))
			fn(c, c->done_arg, arg);
		c = next;
	}
}

int rpc_client_export(rpc_client *c, rpc_summary *so_far, int *fd)
{
	if (!client_at_rest(c))
		return -EBUSY;
	if (!c->recv_paused) {
		c->recv_paused = true;
		pd_recv_pause(c->pd);
	}
	if (!pd_recv_quiet(c->pd))
		return -EAGAIN;
	*so_far = (rpc_summary){.requests = c->requests, .replied = c->replied,
				.lost = c->lost, .request_bytes = c->request_bytes,
				.reply_bytes = c->reply_bytes};
	*fd = fcntl(pd_fd(c->pd), F_DUPFD_CLOEXEC, 0);
	return *fd < 0 ? -errno : 0;
}

void rpc_client_handed_off(rpc_client *c)
{
	c->handed_off = true;
	client_close(c, REASON_drain);
}

int rpc_client_adopt(rpc_listener *rl, poll_desc *client,
		     const struct sockaddr *peer, const rpc_summary *so_far,
		     rpc_done_fn done, void *arg)
{
	int rc = rpc_client_start(rl, client, peer, done, arg);

	if (rc < 0)
		return rc;
	/* The newest client is first on the list. */
	rpc_client *c = rl->clients;
	c->requests = so_far->requests;
	c->replied = so_far->replied;
	c->lost = so_far->lost;
	c->request_bytes = so_far->request_bytes;
	c->reply_bytes = so_far->reply_bytes;
	return 0;
}
