/*
 * frameecho — an echo upstream for frameproxy's tests and demos.
 *
 * Speaks the frame protocol (4-byte big-endian length, then the payload) and
 * answers every frame, in order: with the same frame, or with --reply-size N
 * with an N-byte frame derived from the request (see tools/lib/payload.h).
 *
 * Written in blocking style on our own stack: each connection is a reader
 * and a writer coroutine sharing a bounded byte ring. The reader copies each
 * reply into the ring as the request streams in (so a 16 MiB frame never
 * needs 16 MiB of memory) and stops reading while the ring is full
 * (backpressure); the writer drains the ring. With --delay each frame's
 * reply is held until DELAY after its length prefix arrived (after the
 * whole request with --reply-size), independently of the frames around it.
 *
 * --reorder MAX answers out of order: each reply is built whole in a buffer
 * of its own (a held_reply) once its request is complete, is due a random
 * 0..MAX (plus --delay) later, and the writer sends the due ones earliest
 * first, so replies leave in another order than their requests. At most
 * --reorder-held of them (and REORDER_BYTES_MAX bytes, one reply whatever
 * its size) exist per connection; past that the reader stops reading.
 *
 * --tls-cert/--tls-key: every connection speaks TLS (a TLS upstream for
 * frameproxy's upstream_tls), over proxy/tls.h as framebench's --tls: the
 * handshake in the reader, then the same reader and writer on plaintext.
 *
 * SIGUSR1 prints one line on stdout: the connections accepted since start,
 * those open now, and those that sent a request since the previous line
 * (tools/compare and the tests count upstream connections with it).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "poll/poll.h"
#include "proxy/frame.h"
#include "proxy/tls.h"
#include "sched/sched.h"
#include "tools/lib/io.h"
#include "tools/lib/payload.h"
#include "tools/lib/cli.h"

#define RING_SIZE (32u * 1024u)    /* replies queued per connection */
#define IN_SIZE (16u * 1024u)      /* one read */
#define MARKS_MAX 1024u            /* delayed frames queued per connection */
#define STOP_GRACE_NS (2 * 1000000000ll)
#define REORDER_HELD_DEFAULT 64u   /* held replies per connection */
#define REORDER_BYTES_MAX (4u * 1024u * 1024u)
#define WRITE_IOV_MAX 64u          /* due replies sent in one writev */
#define TLS_HANDSHAKE_NS (5 * 1000000000ll)

typedef struct echo_options {
	struct sockaddr_storage addr;
	socklen_t addr_len;
	poll_kind poller;
	int64_t delay_ns;
	bool reply_sized;
	uint32_t reply_size;
	uint64_t close_after;      /* 0 = never */
	uint32_t max_frame;
	int64_t reorder_ns;        /* 0 = replies in request order */
	uint32_t reorder_held;
	bool seeded;
	uint64_t seed;
	bool quiet;
	const char *tls_cert;      /* --tls-cert / --tls-key, else NULL */
	const char *tls_key;
} echo_options;

/* Where a delayed reply starts in the ring, and when it may be written. */
typedef struct reply_mark {
	uint64_t pos;
	int64_t due;
} reply_mark;

/* One reply under --reorder, whole, waiting for its time. */
typedef struct held_reply {
	struct held_reply *next;   /* the connection's list, earliest due first */
	int64_t due;
	uint64_t len;              /* bytes in data: prefix + payload */
	uint64_t have;             /* bytes filled in so far */
	uint8_t data[];
} held_reply;

typedef enum reader_end {
	END_NONE,
	END_EOF,          /* client half-closed: flush, then shut our write side */
	END_LIMIT,        /* --close-after reached: same, so the peer sees a FIN */
	END_CLOSE,        /* oversized frame or error: flush what we can, close */
} reader_end;

typedef struct echo_conn {
	struct echo_conn *prev, *next;
	poll_desc *pd;
	tls_conn *tls;             /* --tls-cert: over pd, else NULL */
	bool closed;               /* pd_close done: nobody may touch pd */
	int refs;                  /* reader + writer */
	uint64_t id;
	char peer[64];

	uint64_t head, tail;       /* ring positions, bytes ever pushed/written */
	uint32_t mark_head, mark_tail;
	coro *reader_wait;       /* reader parked for ring or mark space */
	coro *writer_wait;       /* writer parked for data */
	reader_end end;

	/* request parsing */
	uint8_t prefix[4];
	uint32_t prefix_have;
	bool in_payload;
	uint32_t remaining;
	uint32_t request_len;
	uint64_t digest;
	uint64_t frames;
	unsigned streak;           /* reads without parking (fairness) */

	/* --reorder: the replies held (filling included) and their bytes */
	held_reply *held;          /* complete, sorted by due */
	held_reply *filling;       /* the reply of the request being read */
	uint32_t held_count;
	uint64_t held_bytes;
	uint64_t rng;              /* splitmix64 state of the random holds */
	sched_timer due_timer;     /* wakes the writer when the first is due */
	uint64_t report_round;     /* last report round this one sent a request in */

	/* Not zeroed (see conn_start): pages are touched only when used. */
	reply_mark marks[MARKS_MAX];
	uint8_t in[IN_SIZE];
	uint8_t ring[RING_SIZE];
} echo_conn;

static echo_options opt;
static echo_conn *conns;           /* live connections */
static uint64_t conns_live;
static uint64_t conns_accepted;
static uint64_t conns_active;      /* sent a request in this report round */
static uint64_t report_round = 1;  /* the next SIGUSR1 line's number */
static uint64_t next_conn_id;
static poll_desc *listener;
static tls_ctx *tls_server;        /* --tls-cert: every connection's */
static bool stopping;
static bool acceptor_running;
static sched_timer stop_timer;

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...)
{
	if (opt.quiet)
		return;
	va_list ap;
	va_start(ap, fmt);
	fputs("frameecho: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* --- shutdown bookkeeping ----------------------------------------------- */

static void maybe_finish_stop(void)
{
	/* The grace timer would keep sched_run alive: drop it once all is gone. */
	if (stopping && conns_live == 0 && !acceptor_running)
		sched_timer_cancel(&stop_timer);
}

static void conn_abort(echo_conn *c)
{
	if (!io_close_once(c->pd, &c->closed))
		return;
	io_wake(&c->reader_wait);
	io_wake(&c->writer_wait);
}

static void conn_release(echo_conn *c)
{
	if (--c->refs > 0)
		return;
	io_close_once(c->pd, &c->closed);
	if (c->prev)
		c->prev->next = c->next;
	else
		conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	conns_live--;
	sched_timer_cancel(&c->due_timer);
	tls_conn_free(c->tls);
	free(c->filling);
	while (c->held) {
		held_reply *h = c->held;
		c->held = h->next;
		free(h);
	}
	free(c);
	maybe_finish_stop();
}

/* Park the calling coroutine in `slot` until the other side readies it. */
static void park_in(coro **slot, const char *why)
{
	*slot = coro_self();
	coro_park(why);
	*slot = NULL;
}

/* --- the ring (reader side) ---------------------------------------------- */

static size_t ring_space(const echo_conn *c)
{
	return RING_SIZE - (size_t)(c->head - c->tail);
}

static int ring_push(echo_conn *c, const uint8_t *data, size_t n)
{
	while (n > 0) {
		if (c->closed)
			return -EBADF;
		size_t space = ring_space(c);
		if (space == 0) {
			io_wake(&c->writer_wait);
			park_in(&c->reader_wait, "frameecho ring full");
			continue;
		}
		size_t off = (size_t)(c->head % RING_SIZE);
		size_t k = n < space ? n : space;
		if (k > RING_SIZE - off)
			k = RING_SIZE - off;
		memcpy(c->ring + off, data, k);
		c->head += k;
		data += k;
		n -= k;
	}
	return 0;
}

static int push_mark(echo_conn *c)
{
	if (opt.delay_ns <= 0)
		return 0;
	while (c->mark_head - c->mark_tail == MARKS_MAX) {
		if (c->closed)
			return -EBADF;
		io_wake(&c->writer_wait);
		park_in(&c->reader_wait, "frameecho marks full");
	}
	reply_mark *m = &c->marks[c->mark_head % MARKS_MAX];
	m->pos = c->head;
	m->due = sched_now() + opt.delay_ns;
	c->mark_head++;
	return 0;
}

static int push_reply(echo_conn *c)
{
	uint8_t chunk[4096];
	frame_write_length(chunk, opt.reply_size);
	int rc = ring_push(c, chunk, 4);
	for (uint32_t off = 0; rc == 0 && off < opt.reply_size;) {
		uint32_t k = opt.reply_size - off;
		if (k > sizeof(chunk))
			k = sizeof(chunk);
		payload_reply_fill(chunk, k, c->digest, off);
		rc = ring_push(c, chunk, k);
		off += k;
	}
	return rc;
}

/* --- held replies (--reorder) ---------------------------------------------- */

/* A hold drawn uniformly from 0..--reorder (splitmix64 on the conn's state). */
static int64_t reorder_hold(echo_conn *c)
{
	c->rng += 0x9e3779b97f4a7c15ull;
	return (int64_t)(payload_mix64(c->rng) % ((uint64_t)opt.reorder_ns + 1));
}

/* One more reply of `len` bytes fits (the first one always does). */
static bool held_room(const echo_conn *c, uint64_t len)
{
	if (c->held_count == 0)
		return true;
	return c->held_count < opt.reorder_held &&
	       c->held_bytes + len <= REORDER_BYTES_MAX;
}

/*
 * Start the reply to a request of `request_len` bytes. While the connection
 * holds all it may, the reader parks here and reads nothing more: the rest
 * of its last read waits in `in`, the client's further requests in the
 * socket (backpressure).
 */
static int held_begin(echo_conn *c, uint32_t request_len)
{
	uint64_t payload = opt.reply_sized ? opt.reply_size : request_len;
	uint64_t len = 4 + payload;
	while (!held_room(c, len)) {
		if (c->closed)
			return -EBADF;
		io_wake(&c->writer_wait);
		park_in(&c->reader_wait, "frameecho holding all it may");
	}
	if (c->closed)
		return -EBADF;
	held_reply *h = malloc(sizeof(*h) + len);
	if (!h) {
		note("%s: out of memory for a held reply of %llu bytes, closing",
		     c->peer, (unsigned long long)len);
		return -ENOMEM;
	}
	h->next = NULL;
	h->due = 0;
	h->len = len;
	frame_write_length(h->data, (uint32_t)payload);
	h->have = 4;
	c->filling = h;
	c->held_count++;
	c->held_bytes += len;
	return 0;
}

/* The request is whole: its reply gets its time and joins the list. */
static void held_finish(echo_conn *c)
{
	held_reply *h = c->filling;
	c->filling = NULL;
	if (opt.reply_sized)
		payload_reply_fill(h->data + 4, opt.reply_size, c->digest, 0);
	h->due = sched_now() + opt.delay_ns + reorder_hold(c);
	held_reply **at = &c->held;
	while (*at && (*at)->due <= h->due)
		at = &(*at)->next;
	h->next = *at;
	*at = h;
}

/* --- the reader ---------------------------------------------------------- */

/* The first request of this connection since the last SIGUSR1 line. */
static void count_active(echo_conn *c)
{
	if (c->report_round == report_round)
		return;
	c->report_round = report_round;
	conns_active++;
}

/* 1 when the connection should stop (close-after reached). */
static int frame_done(echo_conn *c)
{
	c->in_payload = false;
	c->prefix_have = 0;
	if (opt.reorder_ns > 0) {
		held_finish(c);
	} else if (opt.reply_sized) {
		int rc = push_mark(c);
		if (rc == 0)
			rc = push_reply(c);
		if (rc < 0)
			return rc;
	}
	c->frames++;
	if (opt.close_after && c->frames >= opt.close_after) {
		note("%s: closing after %llu frames (--close-after)", c->peer,
		     (unsigned long long)c->frames);
		return 1;
	}
	return 0;
}

static int frame_start(echo_conn *c)
{
	uint32_t len = frame_read_length(c->prefix);
	if (len > opt.max_frame) {
		note("%s: frame of %u bytes exceeds --max-frame %u, closing",
		     c->peer, len, opt.max_frame);
		return -EMSGSIZE;
	}
	c->request_len = len;
	c->remaining = len;
	c->in_payload = true;
	c->digest = PAYLOAD_FNV_INIT;
	count_active(c);
	if (opt.reorder_ns > 0) {
		int rc = held_begin(c, len);
		if (rc < 0)
			return rc;
	} else if (!opt.reply_sized) {
		int rc = push_mark(c);
		if (rc == 0)
			rc = ring_push(c, c->prefix, 4);
		if (rc < 0)
			return rc;
	}
	return len == 0 ? frame_done(c) : 0;
}

static int take_payload(echo_conn *c, const uint8_t *p, size_t k)
{
	if (opt.reply_sized) {
		c->digest = payload_fnv1a(c->digest, p, k);
	} else if (opt.reorder_ns > 0) {
		memcpy(c->filling->data + c->filling->have, p, k);
		c->filling->have += k;
	} else if (ring_push(c, p, k) < 0)
		return -EBADF;
	c->remaining -= (uint32_t)k;
	return c->remaining == 0 ? frame_done(c) : 0;
}

/* Feed freshly read bytes through the parser. <0 or 1 ends the reader. */
static int consume(echo_conn *c, const uint8_t *p, size_t n)
{
	while (n > 0) {
		int rc;
		size_t k;
		if (c->in_payload) {
			k = n < c->remaining ? n : c->remaining;
			rc = take_payload(c, p, k);
		} else {
			k = io_take_prefix(c->prefix, &c->prefix_have, p, n);
			rc = c->prefix_have == 4 ? frame_start(c) : 0;
		}
		if (rc != 0)
			return rc;
		p += k;
		n -= k;
	}
	return 0;
}

static reader_end read_loop(echo_conn *c)
{
	for (;;) {
		if (c->closed)
			return END_CLOSE;
		ssize_t n = c->tls ? tls_read(c->tls, c->in, sizeof(c->in))
				   : io_read(c->pd, c->in, sizeof(c->in), &c->streak);
		if (c->closed)
			return END_CLOSE;
		if (n == 0) {
			if (c->in_payload || c->prefix_have)
				note("%s: peer closed in the middle of a frame",
				     c->peer);
			return END_EOF;
		}
		if (n < 0) {
			note("%s: read: %s", c->peer, strerror((int)-n));
			return END_CLOSE;
		}
		int rc = consume(c, c->in, (size_t)n);
		io_wake(&c->writer_wait);
		if (rc != 0)
			return rc == 1 ? END_LIMIT : END_CLOSE;
	}
}

/* --tls-cert: the handshake, before anything is read. */
static bool conn_tls(echo_conn *c)
{
	char why[TLS_WHY_MAX] = "";

	if (!(c->tls = tls_conn_new(tls_server, c->pd))) {
		note("%s: out of memory for TLS", c->peer);
		return false;
	}
	if (tls_handshake(c->tls, sched_now() + TLS_HANDSHAKE_NS, why,
			  sizeof(why)) < 0) {
		note("%s: tls handshake: %s", c->peer, why);
		return false;
	}
	return true;
}

static void reader_main(void *arg)
{
	echo_conn *c = arg;
	if (tls_server && !conn_tls(c)) {
		c->end = END_CLOSE;
		conn_abort(c);
	} else {
		c->end = read_loop(c);
	}
	io_wake(&c->writer_wait);
	conn_release(c);
}

/* --- the writer ---------------------------------------------------------- */

/* How far the writer may go now; sets *sleep_until when a reply waits. */
static uint64_t write_limit(echo_conn *c, int64_t *sleep_until)
{
	*sleep_until = 0;
	if (opt.delay_ns <= 0)
		return c->head;
	int64_t now = sched_now();
	while (c->mark_tail != c->mark_head) {
		reply_mark *m = &c->marks[c->mark_tail % MARKS_MAX];
		if (m->due > now) {
			*sleep_until = m->due;
			return m->pos;
		}
		c->mark_tail++;
		io_wake(&c->reader_wait);
	}
	return c->head;
}

/* pd_writev_full, or through TLS one piece after the other. */
static ssize_t conn_writev(echo_conn *c, struct iovec *iov, int n)
{
	if (!c->tls)
		return pd_writev_full(c->pd, iov, n);
	ssize_t total = 0;
	for (int i = 0; i < n; i++) {
		ssize_t rc = tls_write_full(c->tls, iov[i].iov_base,
					    iov[i].iov_len);
		if (rc < 0)
			return rc;
		total += rc;
	}
	return total;
}

static int write_some(echo_conn *c, uint64_t limit)
{
	size_t off = (size_t)(c->tail % RING_SIZE);
	size_t n = (size_t)(limit - c->tail);
	struct iovec iov[2] = {{c->ring + off, n}, {c->ring, 0}};
	if (n > RING_SIZE - off) {
		iov[0].iov_len = RING_SIZE - off;
		iov[1].iov_len = n - iov[0].iov_len;
	}
	ssize_t rc = conn_writev(c, iov, iov[1].iov_len ? 2 : 1);
	if (rc < 0)
		return (int)rc;
	c->tail += n;
	io_wake(&c->reader_wait);
	return 0;
}

/* In request order, from the ring (no --reorder). */
static void ring_writer(echo_conn *c)
{
	while (!c->closed) {
		int64_t sleep_until;
		uint64_t limit = write_limit(c, &sleep_until);
		if (limit > c->tail) {
			int rc = write_some(c, limit);
			if (rc < 0 && !c->closed) {
				note("%s: write: %s", c->peer, strerror(-rc));
				conn_abort(c);
			}
			continue;
		}
		if (sleep_until) {
			coro_sleep(sleep_until - sched_now());
			continue;
		}
		if (c->end != END_NONE)
			break;
		park_in(&c->writer_wait, "frameecho idle");
	}
}

static void due_timer_fired(sched_timer *t, void *arg)
{
	(void)t;
	echo_conn *c = arg;
	io_wake(&c->writer_wait);
}

/* Take the due replies off the list, earliest first, into iov. */
static int held_take_due(echo_conn *c, held_reply **batch, struct iovec *iov)
{
	int64_t now = sched_now();
	int n = 0;
	while (c->held && c->held->due <= now && n < (int)WRITE_IOV_MAX) {
		held_reply *h = c->held;
		c->held = h->next;
		batch[n] = h;
		iov[n].iov_base = h->data;
		iov[n].iov_len = h->len;
		n++;
	}
	return n;
}

/*
 * --reorder: the replies that are due go out in one write; then the writer
 * parks until the first held one is due (due_timer) or the reader adds one,
 * which may be due earlier.
 */
static void reorder_writer(echo_conn *c)
{
	held_reply *batch[WRITE_IOV_MAX];
	struct iovec iov[WRITE_IOV_MAX];
	while (!c->closed) {
		int n = held_take_due(c, batch, iov);
		if (n > 0) {
			ssize_t rc = conn_writev(c, iov, n);
			for (int i = 0; i < n; i++) {
				c->held_count--;
				c->held_bytes -= batch[i]->len;
				free(batch[i]);
			}
			io_wake(&c->reader_wait);
			if (rc < 0 && !c->closed) {
				note("%s: write: %s", c->peer, strerror((int)-rc));
				conn_abort(c);
			}
			continue;
		}
		if (c->held) {
			sched_timer_set(&c->due_timer, c->held->due);
			park_in(&c->writer_wait, "frameecho holding replies");
			continue;
		}
		if (c->end != END_NONE)
			break;
		park_in(&c->writer_wait, "frameecho idle");
	}
}

static void writer_main(void *arg)
{
	echo_conn *c = arg;
	if (opt.reorder_ns > 0)
		reorder_writer(c);
	else
		ring_writer(c);
	if (!c->closed && (c->end == END_EOF || c->end == END_LIMIT)) {
		if (c->tls)
			tls_shutdown_write(c->tls);
		else
			pd_shutdown(c->pd, SHUT_WR);
	}
	conn_release(c);
}

/* --- accepting ------------------------------------------------------------ */

static void conn_start(poll_desc *pd, const struct sockaddr_storage *peer)
{
	echo_conn *c = malloc(sizeof(*c));
	if (c)
		memset(c, 0, offsetof(echo_conn, marks));
	if (!c) {
		note("out of memory for a connection, dropping it");
		pd_close(pd);
		return;
	}
	c->pd = pd;
	c->refs = 2;
	c->id = next_conn_id++;
	c->rng = payload_mix64(opt.seed ^ (c->id * 0xbf58476d1ce4e5b9ull));
	sched_timer_init(&c->due_timer, due_timer_fired, c);
	poll_addr_format((const struct sockaddr *)peer, c->peer, sizeof(c->peer));
	coro_opts ro = {.name = "echo-read"}, wo = {.name = "echo-write"};
	if (!coro_spawn(reader_main, c, &ro)) {
		note("%s: cannot spawn reader", c->peer);
		pd_close(pd);
		free(c);
		return;
	}
	c->next = conns;
	if (conns)
		conns->prev = c;
	conns = c;
	conns_live++;
	if (!coro_spawn(writer_main, c, &wo)) {
		note("%s: cannot spawn writer", c->peer);
		c->end = END_CLOSE;
		conn_abort(c);
		c->refs--;
	}
}

static void acceptor_main(void *arg)
{
	(void)arg;
	while (!stopping) {
		poll_desc *pd;
		struct sockaddr_storage peer;
		socklen_t peer_len = sizeof(peer);
		int rc = pd_accept(listener, &pd, &peer, &peer_len);
		if (rc == -EBADF || stopping) {
			if (rc == 0)
				pd_close(pd);
			break;
		}
		if (rc < 0) {
			note("accept: %s", strerror(-rc));
			coro_sleep(10 * 1000000ll);  /* never spin on a hard error */
			continue;
		}
		conns_accepted++;
		conn_start(pd, &peer);
	}
	acceptor_running = false;
	maybe_finish_stop();
}

/* --- signals -------------------------------------------------------------- */

static void stop_timer_fired(sched_timer *t, void *arg)
{
	(void)t;
	(void)arg;
	note("connections still open after the stop grace period; exiting");
	sched_stop();
}

static void begin_stop(int signo)
{
	stopping = true;
	note("signal %d: stopping (%llu connections open)", signo,
	     (unsigned long long)conns_live);
	sched_timer_init(&stop_timer, stop_timer_fired, NULL);
	sched_timer_set(&stop_timer, sched_now() + STOP_GRACE_NS);
	pd_close(listener);
	for (echo_conn *c = conns; c; c = c->next)
		conn_abort(c);
	maybe_finish_stop();
}

/* SIGUSR1: one line on stdout; a new round of "active" starts. */
static void report_connections(void)
{
	printf("connections report=%llu accepted=%llu open=%llu active=%llu\n",
	       (unsigned long long)report_round,
	       (unsigned long long)conns_accepted,
	       (unsigned long long)conns_live,
	       (unsigned long long)conns_active);
	fflush(stdout);
	report_round++;
	conns_active = 0;
}

static void signal_main(void *arg)
{
	poll_desc *spd = arg;
	int signo = 0;
	for (;;) {
		struct signalfd_siginfo si;
		ssize_t n = pd_try_read(spd, &si, sizeof(si));
		if (n == -EINTR)
			continue;
		if (n == -EAGAIN) {
			if (pd_wait(spd, PD_READ) < 0)
				break;
			continue;
		}
		if (n == (ssize_t)sizeof(si) && si.ssi_signo == SIGUSR1) {
			report_connections();
			continue;
		}
		if (n == (ssize_t)sizeof(si))
			signo = (int)si.ssi_signo;
		break;
	}
	pd_close(spd);
	begin_stop(signo);
}

static int open_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGUSR1);
	if (sigprocmask(SIG_BLOCK, set, NULL) < 0)
		return -errno;
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

static int start_signal_coroutine(const sigset_t *set)
{
	int fd = signalfd(-1, set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	poll_desc *spd;
	int rc = pd_open(fd, &spd);
	if (rc < 0) {
		close(fd);
		return rc;
	}
	coro_opts so = {.name = "echo-signals"};
	if (!coro_spawn(signal_main, spd, &so)) {
		pd_close(spd);
		return -ENOMEM;
	}
	return 0;
}

/* --- command line ---------------------------------------------------------- */

static void usage(FILE *out)
{
	fputs("usage: frameecho --listen ADDR [--poller epoll|uring|auto]\n"
	      "                 [--delay DUR] [--reorder MAX [--reorder-held N]\n"
	      "                 [--seed N]] [--reply-size N] [--close-after N]\n"
	      "                 [--max-frame SIZE] [--quiet]\n"
	      "                 [--tls-cert FILE --tls-key FILE]\n"
	      "\n"
	      "An echo upstream: answers every frame (4-byte big-endian length,\n"
	      "then the payload) with the same frame, in order, unless told\n"
	      "otherwise.\n"
	      "\n"
	      "  --listen ADDR     HOST:PORT, [V6]:PORT or :PORT; port 0 picks one\n"
	      "  --poller KIND     netpoller backend (default auto)\n"
	      "  --delay DUR       hold each reply DUR after its request (e.g. 5ms)\n"
	      "  --reorder MAX     answer out of order: hold each reply a random\n"
	      "                    0..MAX (uniform; plus --delay) after its whole\n"
	      "                    request arrived, and send replies as their time\n"
	      "                    comes, so on one connection they leave in another\n"
	      "                    order than the requests (e.g. 5ms; 0 = in order)\n"
	      "  --reorder-held N  with --reorder, hold at most N replies per\n"
	      "                    connection (default 64; and 4 MiB, though one\n"
	      "                    reply of any size is always taken); at the limit\n"
	      "                    the connection is not read until one has left\n"
	      "  --seed N          the holds' random sequence: with the same N, the\n"
	      "                    k-th connection accepted draws the same holds\n"
	      "                    (default: from the clock)\n"
	      "  --reply-size N    answer each frame with an N-byte frame whose\n"
	      "                    payload is FNV-1a64(request) big-endian, then a\n"
	      "                    stream keyed by it (tools/lib/payload.h)\n"
	      "  --close-after N   close each connection after answering N frames\n"
	      "  --max-frame SIZE  largest request accepted (default 16MiB);\n"
	      "                    a larger one closes that connection\n"
	      "  --quiet           no log lines on stderr\n"
	      "  --tls-cert FILE   speak TLS: certificate chain PEM\n"
	      "  --tls-key FILE    its private key PEM (with --tls-cert)\n"
	      "\n"
	      "Prints 'listening on ADDR' first. SIGTERM/SIGINT stop it. SIGUSR1\n"
	      "prints one line on stdout:\n"
	      "  connections report=R accepted=A open=O active=K\n"
	      "R counts these lines from 1; A is the connections accepted since\n"
	      "start, O those open now, K those that sent at least one request\n"
	      "since the previous line (or since start), closed ones included.\n"
	      "Signal, wait for line R, signal again after a run: K of the second\n"
	      "line is how many connections carried that run's requests.\n",
	      out);
}

static int parse_args(int argc, char **argv)
{
	static const struct option longs[] = {
		{"listen", required_argument, NULL, 'l'},
		{"poller", required_argument, NULL, 'p'},
		{"delay", required_argument, NULL, 'D'},
		{"reorder", required_argument, NULL, 'R'},
		{"reorder-held", required_argument, NULL, 'H'},
		{"seed", required_argument, NULL, 'S'},
		{"reply-size", required_argument, NULL, 'r'},
		{"close-after", required_argument, NULL, 'C'},
		{"max-frame", required_argument, NULL, 'm'},
		{"quiet", no_argument, NULL, 'q'},
		{"tls-cert", required_argument, NULL, 'c'},
		{"tls-key", required_argument, NULL, 'k'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	bool have_listen = false;
	opt.max_frame = PAYLOAD_MAX_FRAME;
	opt.poller = POLL_AUTO;
	opt.reorder_held = REORDER_HELD_DEFAULT;
	int ch;
	while ((ch = getopt_long(argc, argv, "l:qh", longs, NULL)) != -1) {
		uint64_t v;
		int rc = 0;
		switch (ch) {
		case 'l':
			rc = cli_parse_addr(optarg, &opt.addr, &opt.addr_len);
			have_listen = rc == 0;
			break;
		case 'p':
			rc = poll_kind_parse(optarg, &opt.poller);
			break;
		case 'D':
			rc = cli_parse_duration(optarg, &opt.delay_ns);
			break;
		case 'R':
			rc = cli_parse_duration(optarg, &opt.reorder_ns);
			break;
		case 'H':
			rc = cli_parse_u64(optarg, UINT32_MAX, &v);
			if (rc == 0 && v == 0)
				rc = -ERANGE;
			opt.reorder_held = (uint32_t)v;
			break;
		case 'S':
			rc = cli_parse_u64(optarg, UINT64_MAX, &opt.seed);
			opt.seeded = rc == 0;
			break;
		case 'r':
			rc = cli_parse_size(optarg, &v);
			if (rc == 0 && v > UINT32_MAX)
				rc = -ERANGE;
			opt.reply_sized = true;
			opt.reply_size = (uint32_t)v;
			break;
		case 'C':
			rc = cli_parse_u64(optarg, UINT64_MAX, &opt.close_after);
			break;
		case 'm':
			rc = cli_parse_size(optarg, &v);
			if (rc == 0 && v > UINT32_MAX)
				rc = -ERANGE;
			opt.max_frame = (uint32_t)v;
			break;
		case 'q':
			opt.quiet = true;
			break;
		case 'c':
			opt.tls_cert = optarg;
			break;
		case 'k':
			opt.tls_key = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -EINVAL;
		}
		if (rc < 0) {
			fprintf(stderr, "frameecho: bad value '%s' for %s (see --help)\n",
				optarg, argv[optind - 1][0] == '-'
						? argv[optind - 1] : argv[optind - 2]);
			return -EINVAL;
		}
	}
	if (optind != argc || !have_listen) {
		usage(stderr);
		return -EINVAL;
	}
	if (!opt.tls_cert != !opt.tls_key) {
		fprintf(stderr, "frameecho: --tls-cert and --tls-key go together\n");
		return -EINVAL;
	}
	if (!opt.seeded)
		opt.seed = (uint64_t)sched_clock_ns(CLOCK_REALTIME) ^
			   ((uint64_t)getpid() << 32);
	return 0;
}

static int announce(void)
{
	struct sockaddr_storage bound;
	socklen_t len = sizeof(bound);
	if (getsockname(pd_fd(listener), (struct sockaddr *)&bound, &len) < 0)
		return -errno;
	char text[80];
	printf("listening on %s\n",
	       poll_addr_format((struct sockaddr *)&bound, text, sizeof(text)));
	fflush(stdout);
	return 0;
}

/* --tls-cert: the one context every connection uses. */
static int tls_start(void)
{
	char *certs[1] = {(char *)opt.tls_cert}, *keys[1] = {(char *)opt.tls_key};
	tls_settings ts = {.certs = certs, .keys = keys, .pairs = 1,
			   .min_version = TLS_VERSION_1_2};
	char why[TLS_WHY_MAX];

	if (!opt.tls_cert || tls_ctx_build(&ts, &tls_server, why, sizeof(why)) == 0)
		return 0;
	fprintf(stderr, "frameecho: %s\n", why);
	return -EINVAL;
}

static int start(void)
{
	char why[256] = "";
	if (tls_start() < 0)
		return -EINVAL;
	int rc = poll_open(opt.poller, why, sizeof(why));
	if (why[0])
		fprintf(stderr, "frameecho: %s\n", why);
	if (rc < 0) {
		fprintf(stderr, "frameecho: poller %s: %s\n",
			poll_kind_name(opt.poller), strerror(-rc));
		return rc;
	}
	rc = poll_listen((struct sockaddr *)&opt.addr, opt.addr_len, 4096, 0,
			 &listener);
	if (rc < 0) {
		char text[80];
		fprintf(stderr, "frameecho: listen on %s: %s\n",
			poll_addr_format((struct sockaddr *)&opt.addr, text,
					 sizeof(text)),
			strerror(-rc));
		return rc;
	}
	return announce();
}

int main(int argc, char **argv)
{
	if (parse_args(argc, argv) < 0)
		return 2;
	sigset_t set;
	int rc = open_signals(&set);
	if (rc == 0)
		rc = sched_init(NULL);
	if (rc < 0) {
		fprintf(stderr, "frameecho: init: %s\n", strerror(-rc));
		return 1;
	}
	rc = start();
	if (rc == 0)
		rc = start_signal_coroutine(&set);
	coro_opts ao = {.name = "echo-accept"};
	if (rc == 0) {
		acceptor_running = coro_spawn(acceptor_main, NULL, &ao) != NULL;
		rc = acceptor_running ? 0 : -ENOMEM;
	}
	if (rc < 0) {
		fprintf(stderr, "frameecho: start: %s\n", strerror(-rc));
		return 1;
	}
	sched_run();
	note("stopped");
	poll_close();
	sched_shutdown();
	tls_ctx_free(tls_server);
	return 0;
}
