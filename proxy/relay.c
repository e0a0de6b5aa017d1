/*
 * Relay: two directions per connection, each driven by one agent at a time.
 *
 * Idle direction: a readiness watch on its source, no coroutine, no buffer.
 * Busy direction: a pump coroutine that reads into a bounded buffer, forwards
 * complete frames in one write, and parks on the destination when it is full
 * (backpressure: it does not read while it cannot write). When the source
 * says EAGAIN at a frame boundary, the pump returns its buffer, arms the
 * watch and exits, giving its stack back to the pool.
 *
 * Lifetime: every agent holds a reference on the relay; relay_close closes
 * both pollDescs, which wakes parked pumps (-EBADF) and fires armed watches,
 * so every agent lets go and the last one out logs and frees.
 */
#include "proxy/relay.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy/counters.h"
#include "proxy/frame.h"

/* A pump that never meets EAGAIN yields after moving this many buffers. */
#define RELAY_YIELD_BUFFERS 4
/* How often a client pump held back by the overload guard looks again,
 * and after how long of it the guard is told it starves. */
#define RELAY_MEMORY_WAIT_NS (5 * 1000 * 1000)
#define RELAY_MEMORY_STARVE_NS (200 * 1000 * 1000)

typedef struct relay_dir {
	relay_conn *owner;
	relay_side side;       /* which side this direction reads from */
	uint8_t *buf;
	uint32_t start;        /* buf[start, end) is read but not forwarded */
	uint32_t end;
	frame_scanner scanner;
	int64_t frame_started; /* when the pending partial frame began, or 0 */
	uint64_t bytes;        /* forwarded */
	bool watching;         /* idle: a readiness watch is the agent */
	bool done;             /* source ended cleanly and EOF was passed on */
	bool quiet;            /* client side, draining: stopped at a boundary */
	bool awaiting_memory;  /* client side: the shard is near its budget */
} relay_dir;

/* One client connection and its upstream connection, relayed. */
typedef struct relay_conn {
	relay_group *group;
	relay_conn *prev, *next;
	poll_desc *pd[2];           /* indexed by relay_side */
	relay_dir dir[2];
	relay_params params;
	relay_done_fn done;
	void *done_arg;
	sched_timer idle_timer;
	int64_t last_active;
	int64_t started;
	reason_code reason;    /* REASON_NONE until decided */
	reason_code first_eof; /* REASON_NONE until a side ends */
	uint32_t refs;
	bool closing;
	bool draining;
	/*
	 * The close is a drain's, with both directions at a frame boundary
	 * and no pump parked on the client: it lingers (proxy/linger.h), so a
	 * client that still sends (its requests are no longer read) sees a
	 * FIN after its last reply, never an RST.
	 */
	bool linger;
	bool handed_off;       /* relay_handed_off: the sockets live on elsewhere */
	bool recv_paused;      /* relay_export paused both sides' receives */
} relay_conn;

static void pump_spawn(relay_dir *dir);
static void relay_recv_resume(relay_conn *r);

/* --- buffers --------------------------------------------------------------- */

void relay_group_init(relay_group *group, uint32_t buffer_size,
		      uint32_t pool_max, uint64_t *counters)
{
	*group = (relay_group){
		.counters = counters,
		.buffer_size = buffer_size,
		.free_max = pool_max,
		.free_buffers = calloc(pool_max ? pool_max : 1, sizeof(void *)),
	};
}

void relay_group_free(relay_group *group)
{
	for (uint32_t i = 0; i < group->free_count; i++) {
		free(group->free_buffers[i]);
		if (group->overload)
			overload_unpool(group->overload, group->buffer_size);
	}
	free(group->free_buffers);
	group->free_buffers = NULL;
	group->free_count = 0;
}

static uint8_t *buffer_take(relay_conn *r)
{
	relay_group *group = r->group;
	uint8_t *buf = NULL;
	bool pooled = false;

	if (r->params.buffer_size == group->buffer_size && group->free_count > 0) {
		buf = group->free_buffers[--group->free_count];
		pooled = true;
		if (group->free_count < group->free_low)
			group->free_low = group->free_count;
	} else {
		buf = malloc(r->params.buffer_size);
	}
	if (buf && group->overload)
		overload_take(group->overload, r->params.buffer_size, pooled);
	return buf;
}

void relay_group_trim(relay_group *group)
{
	uint32_t unused = group->free_low < group->free_count ? group->free_low
							       : group->free_count;

	for (uint32_t i = 0; i < unused; i++) {
		free(group->free_buffers[--group->free_count]);
		if (group->overload)
			overload_unpool(group->overload, group->buffer_size);
	}
	group->free_low = group->free_count;
}

static void buffer_give(relay_conn *r, relay_dir *dir)
{
	relay_group *group = r->group;

	if (!dir->buf)
		return;
	/* The guard's word first: near the budget the pool gives memory back
	 * instead of keeping it. */
	bool may_pool = !group->overload ||
			overload_give(group->overload, r->params.buffer_size);
	if (may_pool && r->params.buffer_size == group->buffer_size &&
	    group->free_count < group->free_max && group->free_buffers) {
		group->free_buffers[group->free_count++] = dir->buf;
	} else {
		if (may_pool && group->overload)
			overload_unpool(group->overload, r->params.buffer_size);
		free(dir->buf);
	}
	dir->buf = NULL;
	dir->start = dir->end = 0;
}

/* --- lifetime -------------------------------------------------------------- */

static void group_unlink(relay_conn *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		r->group->head = r->next;
	if (r->next)
		r->next->prev = r->prev;
	r->group->active--;
}

static void relay_finish(relay_conn *r)
{
	relay_summary summary = {
		.reason = r->reason != REASON_NONE ? r->reason
						   : REASON_internal_error,
		.started_ns = r->started,
		.ended_ns = sched_now(),
		.handed_off = r->handed_off,
	};

	for (int side = 0; side < 2; side++) {
		relay_dir *dir = &r->dir[side];
		summary.frames[side] = dir->scanner.frames;
		summary.bytes[side] = dir->bytes;
		if (dir->scanner.oversize) {
			summary.oversize_side = (relay_side)side;
			summary.oversize_len = dir->scanner.oversize_len;
		}
		buffer_give(r, dir);
	}
	sched_timer_cancel(&r->idle_timer);
	group_unlink(r);
	if (r->done)
		r->done(&summary, r->done_arg);
	free(r);
}

static void relay_release(relay_conn *r)
{
	if (--r->refs == 0)
		relay_finish(r);
}

/* The relay lets go of the pd at once, as with pd_close: a parked pump or
 * a watch must not stay on a socket the linger now owns. */
static void close_lingering(relay_conn *r, poll_desc *pd)
{
	relay_dir *dir = &r->dir[RELAY_CLIENT];

	if (dir->watching) {
		dir->watching = false;
		pd_unwatch(pd, PD_READ);
		relay_release(r);
	}
	linger_close(&r->group->linger, pd);
}

/* Close both connections now; parked pumps wake and watches fire. */
static void relay_close(relay_conn *r, reason_code reason)
{
	if (r->closing)
		return;
	r->closing = true;
	if (r->reason == REASON_NONE)
		r->reason = reason;
	r->refs++; /* closing fires watches that release: stay alive until done */
	for (int side = 0; side < 2; side++) {
		if (r->pd[side]) {
			poll_desc *pd = r->pd[side];
			r->pd[side] = NULL;
			if (side == RELAY_CLIENT && r->linger)
				close_lingering(r, pd);
			else
				pd_close(pd);
		}
	}
	relay_release(r);
}

static void relay_touch(relay_conn *r)
{
	r->last_active = sched_now();
}

/*
 * Input that could move now (readable source, writable destination) which
 * no pump has read yet. After the shard was stalled (stopped, starved of
 * CPU) timers run before the pumps the waiting bytes woke, so without this
 * look a connection whose peer just spoke would be closed as idle. A
 * direction held back by a full destination does not count: that is what
 * the idle timeout is for.
 */
static bool input_waiting(relay_conn *r)
{
	int ready[2];

	for (int side = 0; side < 2; side++)
		if ((ready[side] = pd_ready_now(r->pd[side])) < 0)
			return false;
	for (int side = 0; side < 2; side++) {
		const relay_dir *dir = &r->dir[side];
		/* An ended or quiet side stays readable (its EOF, or what it
		 * may not send while draining) and is no sign of life. */
		if (dir->done || dir->quiet || dir->awaiting_memory)
			continue;
		if ((ready[side] & PD_READ) && (ready[!side] & PD_WRITE))
			return true;
	}
	return false;
}

static void idle_timer_fired(sched_timer *timer, void *arg)
{
	relay_conn *r = arg;
	int64_t expires = r->last_active + r->params.idle_timeout_ns;

	(void)timer;
	if (r->closing)
		return;
	if (sched_now() >= expires && input_waiting(r)) {
		relay_touch(r);
		expires = r->last_active + r->params.idle_timeout_ns;
	}
	if (sched_now() >= expires) {
		relay_close(r, REASON_idle_timeout);
		return;
	}
	/* Activity since arming: re-arm lazily rather than on every byte. */
	sched_timer_set(&r->idle_timer, expires);
}

/* --- drain ----------------------------------------------------------------- */

/*
 * A side with no pump and no frame started: idle on its watch, quiet
 * (draining), or done (ended).
 */
static bool dir_at_rest(const relay_dir *dir)
{
	return dir->watching || dir->quiet || dir->done;
}

/*
 * The client waits for a reply: fewer frames came back than went up. A
 * protocol that pushes more than it is asked owes nothing; an upstream that
 * ended can send nothing more.
 */
static bool replies_owed(const relay_conn *r)
{
	const relay_dir *up = &r->dir[RELAY_UPSTREAM];

	return !up->done &&
	       up->scanner.frames < r->dir[RELAY_CLIENT].scanner.frames;
}

/*
 * Draining, and `dir` is at a frame boundary: close if the other side is too
 * and no reply is owed. True when the relay is closed (or closing). The
 * reason is "drain", unless a side had ended first: its EOF stays the reason,
 * as it would have been without the drain.
 */
static bool drain_settle(relay_dir *dir)
{
	relay_conn *r = dir->owner;

	if (r->closing)
		return true;
	if (replies_owed(r) || !dir_at_rest(&r->dir[!dir->side]))
		return false;
	r->linger = true;
	relay_close(r, r->first_eof != REASON_NONE ? r->first_eof
						   : REASON_drain);
	return true;
}

/*
 * Draining: the client side starts no new request. It rests without a watch
 * or a buffer; the relay closes once the replies it is owed are through.
 */
static void dir_quiet(relay_dir *dir)
{
	buffer_give(dir->owner, dir);
	dir->quiet = true;
	drain_settle(dir);
}

/*
 * Draining, at a frame boundary: true when the pump should stop. The client
 * side stops here. The upstream side reads on while replies are owed, so a
 * reply already on its way still reaches the client.
 */
static bool dir_drain_boundary(relay_dir *dir)
{
	if (dir->side == RELAY_CLIENT) {
		dir_quiet(dir);
		return true;
	}
	return drain_settle(dir);
}

/* --- one direction ------------------------------------------------------- */

static poll_desc *dir_source(relay_dir *dir)
{
	return dir->owner->pd[dir->side];
}

static poll_desc *dir_destination(relay_dir *dir)
{
	return dir->owner->pd[!dir->side];
}

/* A side's TLS (termination on the client's, origination on the
 * upstream's), or NULL when it is plain. */
static tls_conn *side_tls(const relay_conn *r, relay_side side)
{
	return side == RELAY_CLIENT ? r->params.client_tls
				    : r->params.upstream_tls;
}

static tls_conn *dir_dest_tls(const relay_dir *dir)
{
	return side_tls(dir->owner, !dir->side);
}

static tls_conn *dir_source_tls(const relay_dir *dir)
{
	return side_tls(dir->owner, dir->side);
}

/* Decrypted bytes wait inside OpenSSL: the socket may say nothing more. */
static bool dir_source_pending(const relay_dir *dir)
{
	tls_conn *t = dir_source_tls(dir);

	return t && tls_pending(t);
}

/* EOF passed on: close_notify first when the destination speaks TLS. */
static void dir_shutdown_destination(relay_dir *dir)
{
	tls_conn *t = dir_dest_tls(dir);

	if (t)
		tls_shutdown_write(t);
	else
		pd_shutdown(dir_destination(dir), SHUT_WR);
}

static reason_code side_reason(relay_side side, reason_code client_reason,
			       reason_code upstream_reason)
{
	return side == RELAY_CLIENT ? client_reason : upstream_reason;
}

static void on_source_readable(poll_desc *pd, void *arg)
{
	relay_dir *dir = arg;
	relay_conn *r = dir->owner;

	(void)pd;
	dir->watching = false;
	if (r->closing) {
		relay_release(r);
		return;
	}
	/* Paused for a handoff, and input came after all: both sides go
	 * on as before until the relay rests again. */
	relay_recv_resume(r);
	if (r->draining && dir->side == RELAY_CLIENT) {
		/* A new request would start here: do not read it. */
		dir_quiet(dir);
		relay_release(r);
		return;
	}
	pump_spawn(dir);
}

/*
 * Nothing pending: give the buffer back and let readiness wake us instead
 * of a parked coroutine. Returns true when the pump should exit (the watch
 * now holds the reference), false to retry a read that became ready.
 */
static bool dir_go_idle(relay_dir *dir)
{
	relay_conn *r = dir->owner;

	buffer_give(r, dir);
	if (r->draining && dir_drain_boundary(dir))
		return true;
	if (dir_source_pending(dir))
		return false;
	int rc = pd_watch(dir_source(dir), PD_READ, on_source_readable, dir);
	if (rc == 1)
		return false;
	if (rc < 0) {
		relay_close(r, REASON_internal_error);
		return true;
	}
	dir->watching = true;
	r->refs++; /* the watch's; the pump's own is released on exit */
	/* The pump's reference keeps r valid through the call. */
	if (r->group->on_rest && relay_at_rest(r))
		r->group->on_rest(r, r->done_arg, r->group->on_rest_arg);
	return true;
}

/* A partial frame is pending: wait for the rest, no longer than allowed. */
static int dir_wait_rest(relay_dir *dir)
{
	relay_conn *r = dir->owner;
	poll_desc *src = dir_source(dir);

	if (r->params.frame_timeout_ns > 0)
		pd_set_deadline(src, PD_READ,
				dir->frame_started + r->params.frame_timeout_ns);
	int rc = pd_wait(src, PD_READ);
	if (r->closing)
		return -EBADF;
	if (r->params.frame_timeout_ns > 0)
		pd_set_deadline(src, PD_READ, 0);
	if (rc == -ETIMEDOUT) {
		relay_close(r, REASON_frame_timeout);
		return rc;
	}
	return 0;
}

/* Move the partial frame to the front if the rest of it would not fit. */
static void dir_compact(relay_dir *dir)
{
	uint32_t pending = dir->end - dir->start;

	if (pending == 0) {
		dir->start = dir->end = 0;
		return;
	}
	size_t need = frame_partial_need(dir->buf + dir->start, pending);
	if (dir->start + need <= dir->owner->params.buffer_size)
		return;
	memmove(dir->buf, dir->buf + dir->start, pending);
	dir->start = 0;
	dir->end = pending;
}

/*
 * The source announced a frame over the limit. Everything it completed
 * before is already forwarded; for a client, the replies to those frames
 * must still reach it, so stop reading it, pass EOF to the upstream and let
 * the other direction finish. An oversize reply has no such debt: close.
 */
static void dir_refuse(relay_dir *dir)
{
	relay_conn *r = dir->owner;

	if (dir->side == RELAY_UPSTREAM) {
		relay_close(r, REASON_upstream_oversize);
		return;
	}
	r->reason = REASON_oversize;
	dir->done = true;
	buffer_give(r, dir);
	if (r->dir[!dir->side].done) {
		relay_close(r, r->reason);
		return;
	}
	dir_shutdown_destination(dir);
	if (r->draining)
		drain_settle(dir);
}

/* Forward whatever is complete. 0, or -errno after closing the relay. */
static int dir_forward(relay_dir *dir)
{
	relay_conn *r = dir->owner;
	uint64_t frames_before = dir->scanner.frames;
	size_t ready = frame_scan(&dir->scanner, dir->buf + dir->start,
				  dir->end - dir->start);

	if (ready > 0) {
		tls_conn *t = dir_dest_tls(dir);
		ssize_t n = t ? tls_write_full(t, dir->buf + dir->start, ready)
			      : pd_write_full(dir_destination(dir),
					      dir->buf + dir->start, ready);
		if (r->closing)
			return -EBADF;
		if (n < 0) {
			relay_close(r, side_reason(!dir->side, REASON_client_reset,
						   REASON_upstream_reset));
			return (int)n;
		}
		dir->start += (uint32_t)ready;
		dir->bytes += ready;
		r->group->counters[COUNTER_BYTES + dir->side] += ready;
		r->group->counters[COUNTER_FRAMES + dir->side] +=
			dir->scanner.frames - frames_before;
		relay_touch(r);
	}
	if (dir->scanner.oversize) {
		dir_refuse(dir);
		return -EMSGSIZE;
	}
	dir_compact(dir);
	if (dir->start == dir->end && dir->scanner.stream_left == 0)
		dir->frame_started = 0;
	else if (dir->frame_started == 0)
		dir->frame_started = sched_now();
	return 0;
}

/* The source ended. At a frame boundary pass it on; mid-frame cut both. */
static void dir_end(relay_dir *dir)
{
	relay_conn *r = dir->owner;

	if (!frame_at_boundary(&dir->scanner, dir->end - dir->start)) {
		relay_close(r, side_reason(dir->side, REASON_client_truncated,
					   REASON_upstream_truncated));
		return;
	}
	if (r->first_eof == REASON_NONE)
		r->first_eof = side_reason(dir->side, REASON_client_eof,
					   REASON_upstream_eof);
	dir->done = true;
	buffer_give(r, dir);
	if (r->dir[!dir->side].done) {
		relay_close(r, r->first_eof);
		return;
	}
	dir_shutdown_destination(dir);
	if (r->draining)
		drain_settle(dir);
}

/* One read. >0 bytes, 0 at EOF, -EAGAIN, or another -errno. */
static ssize_t dir_read(relay_dir *dir)
{
	relay_conn *r = dir->owner;
	tls_conn *t = dir_source_tls(dir);
	ssize_t n = t ? tls_try_read(t, dir->buf + dir->end,
				     r->params.buffer_size - dir->end)
		      : pd_try_read(dir_source(dir), dir->buf + dir->end,
				    r->params.buffer_size - dir->end);

	if (n > 0) {
		dir->end += (uint32_t)n;
		relay_touch(r);
	}
	return n;
}

/*
 * Near the shard's memory budget a client pump takes no buffer for new
 * input (backpressure: the bytes stay in the kernel) until memory comes
 * back. Only the client side waits: the upstream side writes replies out,
 * which is what gives memory back. The idle timeout still runs (a waiting
 * side is no sign of life); a wait that lasts tells the guard, whose
 * closes free memory. 0 to go on, -1 when the pump should stop.
 */
static int dir_await_memory(relay_dir *dir)
{
	relay_conn *r = dir->owner;
	overload *o = r->group->overload;
	int64_t starve_at = sched_now() + RELAY_MEMORY_STARVE_NS;

	if (dir->side != RELAY_CLIENT || !o)
		return 0;
	while (overload_near(o)) {
		if (sched_now() >= starve_at) {
			overload_starving(o);
			starve_at = sched_now() + RELAY_MEMORY_STARVE_NS;
		}
		dir->awaiting_memory = true;
		coro_sleep(RELAY_MEMORY_WAIT_NS);
		dir->awaiting_memory = false;
		if (r->closing)
			return -1;
		if (r->draining && dir_drain_boundary(dir))
			return -1;
	}
	return 0;
}

/* The body of a pump: runs until idle, done, or the relay closes. */
static void dir_pump(relay_dir *dir)
{
	relay_conn *r = dir->owner;
	uint32_t moved = 0;

	while (!r->closing) {
		if (!dir->buf && dir_await_memory(dir) < 0)
			return;
		if (!dir->buf && !(dir->buf = buffer_take(r))) {
			relay_close(r, REASON_no_memory);
			return;
		}
		/* After a short read the socket is empty: wait for the next edge
		 * instead of paying a read(2) to hear EAGAIN. */
		ssize_t n = pd_read_drained(dir_source(dir)) &&
					    !dir_source_pending(dir)
				    ? -EAGAIN
				    : dir_read(dir);
		if (n == -EAGAIN) {
			if (frame_at_boundary(&dir->scanner, dir->end - dir->start)) {
				if (dir_go_idle(dir))
					return;
				continue;
			}
			if (dir_wait_rest(dir) < 0)
				return;
			continue;
		}
		if (n < 0) {
			relay_close(r, side_reason(dir->side, REASON_client_reset,
						   REASON_upstream_reset));
			return;
		}
		if (dir_forward(dir) < 0)
			return;
		if (n == 0) {
			dir_end(dir);
			return;
		}
		moved += (uint32_t)n;
		if (moved >= RELAY_YIELD_BUFFERS * r->params.buffer_size) {
			/* Fairness: a source that never runs dry must not starve
			 * the other connections of this scheduler. */
			moved = 0;
			coro_yield();
		}
		/* After the yield: a drain may have begun while it lasted. */
		if (r->draining &&
		    frame_at_boundary(&dir->scanner, dir->end - dir->start) &&
		    dir_drain_boundary(dir))
			return;
	}
}

static void pump_main(void *arg)
{
	relay_dir *dir = arg;
	relay_conn *r = dir->owner;

	dir_pump(dir);
	relay_release(r);
}

static void pump_spawn(relay_dir *dir)
{
	static const char *names[2] = {"relay-client", "relay-upstream"};
	coro_opts opts = {.name = names[dir->side]};

	if (!coro_spawn(pump_main, dir, &opts)) {
		relay_close(dir->owner, REASON_no_memory);
		relay_release(dir->owner);
	}
}

/* --- start and drain ----------------------------------------------------- */

static void dir_init(relay_conn *r, relay_side side)
{
	relay_dir *dir = &r->dir[side];

	dir->owner = r;
	dir->side = side;
	frame_scanner_init(&dir->scanner, r->params.max_frame,
			   r->params.buffer_size);
}

/* A relay in the group, its sides set up, its idle timer running from
 * `last_active`: what starting and adopting share. */
static relay_conn *relay_new(relay_group *group, poll_desc *client,
			     poll_desc *upstream, const relay_params *params,
			     int64_t started, int64_t last_active,
			     relay_done_fn done, void *done_arg)
{
	relay_conn *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->group = group;
	r->pd[RELAY_CLIENT] = client;
	r->pd[RELAY_UPSTREAM] = upstream;
	r->params = *params;
	r->done = done;
	r->done_arg = done_arg;
	r->draining = group->draining;
	r->started = started;
	r->last_active = last_active;
	r->reason = r->first_eof = REASON_NONE;
	dir_init(r, RELAY_CLIENT);
	dir_init(r, RELAY_UPSTREAM);
	r->next = group->head;
	if (group->head)
		group->head->prev = r;
	group->head = r;
	group->active++;
	sched_timer_init(&r->idle_timer, idle_timer_fired, r);
	if (params->idle_timeout_ns > 0)
		sched_timer_set(&r->idle_timer,
				last_active + params->idle_timeout_ns);
	return r;
}

int relay_start(relay_group *group, poll_desc *client, poll_desc *upstream,
		const relay_params *params, relay_done_fn done, void *done_arg)
{
	int64_t now = sched_now();
	relay_conn *r = relay_new(group, client, upstream, params, now, now,
				  done, done_arg);

	if (!r)
		return -ENOMEM;
	/* Start both pumps: either side may have sent already. Each finds
	 * EAGAIN quickly and turns into a watch if not. */
	r->refs = 2;
	pump_spawn(&r->dir[RELAY_CLIENT]);
	pump_spawn(&r->dir[RELAY_UPSTREAM]);
	return 0;
}

void relay_drain(relay_group *group)
{
	relay_conn *r = group->head;

	group->draining = true;
	while (r) {
		relay_conn *next = r->next;

		r->draining = true;
		/* A busy pump settles at its next frame boundary; only a relay
		 * whose client side rests must be looked at now. Closing may
		 * free r, so `next` is taken first. */
		if (dir_at_rest(&r->dir[RELAY_CLIENT]))
			drain_settle(&r->dir[RELAY_CLIENT]);
		r = next;
	}
}

void relay_close_all(relay_group *group, reason_code reason)
{
	relay_conn *r = group->head;

	while (r) {
		relay_conn *next = r->next; /* closing may free r */
		r->linger = r->draining && dir_at_rest(&r->dir[RELAY_CLIENT]) &&
			    dir_at_rest(&r->dir[RELAY_UPSTREAM]);
		relay_close(r, reason);
		r = next;
	}
}

/* --- overload --------------------------------------------------------------- */

static uint64_t relay_held(const relay_conn *r)
{
	return (r->dir[RELAY_CLIENT].buf ? r->params.buffer_size : 0) +
	       (r->dir[RELAY_UPSTREAM].buf ? r->params.buffer_size : 0);
}

relay_conn *relay_largest(relay_group *groups, uint32_t count,
			  uint64_t *bytes, uint64_t *closing)
{
	relay_conn *largest = NULL;
	uint64_t most = 0;

	for (uint32_t i = 0; i < count; i++) {
		for (relay_conn *r = groups[i].head; r; r = r->next) {
			uint64_t held = relay_held(r);
			if (r->closing)
				*closing += held;
			else if (held > most)
				largest = r, most = held;
		}
	}
	*bytes = most;
	return largest;
}

void relay_shed(relay_conn *r)
{
	relay_close(r, REASON_overload);
}

/* --- handoff ---------------------------------------------------------------- */

static bool dir_at_rest_for_handoff(const relay_dir *dir)
{
	return (dir->watching || dir->done) && !dir->buf && !dir->quiet &&
	       !dir->scanner.oversize && dir->scanner.stream_left == 0 &&
	       dir->frame_started == 0;
}

bool relay_at_rest(const relay_conn *r)
{
	return !r->closing && !r->draining && !r->params.client_tls &&
	       !r->params.upstream_tls &&
	       !(r->dir[RELAY_CLIENT].done && r->dir[RELAY_UPSTREAM].done) &&
	       dir_at_rest_for_handoff(&r->dir[RELAY_CLIENT]) &&
	       dir_at_rest_for_handoff(&r->dir[RELAY_UPSTREAM]);
}

static void relay_recv_resume(relay_conn *r)
{
	if (!r->recv_paused)
		return;
	r->recv_paused = false;
	for (int side = 0; side < 2; side++)
		pd_recv_resume(r->pd[side]);
}

/* At rest, and no receive can still take bytes into this process (see
 * pd_recv_pause): with completion I/O the first call pauses them. */
static bool relay_recv_quiet(relay_conn *r)
{
	if (!r->recv_paused) {
		r->recv_paused = true;
		for (int side = 0; side < 2; side++)
			pd_recv_pause(r->pd[side]);
	}
	return pd_recv_quiet(r->pd[RELAY_CLIENT]) &&
	       pd_recv_quiet(r->pd[RELAY_UPSTREAM]);
}

void relay_resume_all(relay_group *group)
{
	for (relay_conn *r = group->head; r; r = r->next)
		relay_recv_resume(r);
}

int relay_export(relay_conn *r, relay_state *state, int *client_fd,
		 int *upstream_fd)
{
	if (!relay_at_rest(r))
		return -EBUSY;
	if (!relay_recv_quiet(r))
		return -EAGAIN;
	*state = (relay_state){.first_eof = r->first_eof,
			       .started_ns = r->started,
			       .last_active_ns = r->last_active};
	for (int side = 0; side < 2; side++) {
		state->done[side] = r->dir[side].done;
		state->frames[side] = r->dir[side].scanner.frames;
		state->bytes[side] = r->dir[side].bytes;
	}
	*client_fd = fcntl(pd_fd(r->pd[RELAY_CLIENT]), F_DUPFD_CLOEXEC, 0);
	if (*client_fd < 0)
		return -errno;
	*upstream_fd = fcntl(pd_fd(r->pd[RELAY_UPSTREAM]), F_DUPFD_CLOEXEC, 0);
	if (*upstream_fd < 0) {
		int err = -errno;
		close(*client_fd);
		return err;
	}
	return 0;
}

void relay_handed_off(relay_conn *r)
{
	r->handed_off = true;
	r->linger = false;
	relay_close(r, REASON_drain);
}

void relay_offer_all(relay_group *group)
{
	relay_conn *r = group->head;

	while (r && group->on_rest) {
		relay_conn *next = r->next; /* the hook may free r */
		if (relay_at_rest(r))
			group->on_rest(r, r->done_arg, group->on_rest_arg);
		r = next;
	}
}

/* One open side of an adopted relay: its watch, or at once a pump when
 * input is already there. */
static void adopt_side(relay_conn *r, relay_dir *dir)
{
	int rc = pd_watch(r->pd[dir->side], PD_READ, on_source_readable, dir);

	r->refs++;
	if (rc == 0) {
		dir->watching = true;
		return;
	}
	if (rc == 1) {
		pump_spawn(dir);
		return;
	}
	relay_close(r, REASON_internal_error);
	relay_release(r);
}

int relay_adopt(relay_group *group, poll_desc *client, poll_desc *upstream,
		const relay_params *params, const relay_state *state,
		relay_done_fn done, void *done_arg)
{
	relay_conn *r = relay_new(group, client, upstream, params,
				  state->started_ns, state->last_active_ns,
				  done, done_arg);

	if (!r)
		return -ENOMEM;
	r->first_eof = state->first_eof;
	for (int side = 0; side < 2; side++) {
		r->dir[side].scanner.frames = state->frames[side];
		r->dir[side].bytes = state->bytes[side];
		r->dir[side].done = state->done[side];
	}
	r->refs = 1; /* ours while the sides are set up */
	for (int side = 0; side < 2 && !r->closing; side++)
		if (!r->dir[side].done)
			adopt_side(r, &r->dir[side]);
	relay_release(r);
	return 0;
}
