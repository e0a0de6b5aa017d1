/*
 * framebench — load generator and verifier for the frame protocol.
 *
 * Each connection is a writer and a reader coroutine (blocking style on
 * sched/ + poll/). The writer keeps at most -d frames in flight: closed-loop
 * it sends whenever the window has room; open-loop (--rate) it sends on a
 * fixed schedule and stamps each frame with its *scheduled* time, so a stall
 * (full window, slow server) shows up in the latency instead of silently
 * delaying the schedule (no coordinated omission). The reader checks every
 * reply against the deterministic payload of the frame it answers (see
 * tools/lib/payload.h), so nothing sent is ever stored, only a ring of
 * (send time, length) per frame in flight.
 *
 * Every run is bounded: sending stops at --duration or --frames, then every
 * connection half-closes and waits at most --grace for its outstanding
 * replies; what has not arrived by then is lost.
 *
 * Payload sizes are fixed, uniform in a range, or drawn from a weighted list
 * (--size-dist, sizedist.h), always as a pure function of (seed,
 * connection, sequence), so a run is repeatable. A progress line on stderr
 * (each second, from a histogram reset every second) is for people: on by
 * default only on a terminal, so pipes, logs and tests see none.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "poll/poll.h"
#include "proxy/frame.h"
#include "proxy/tls.h"
#include "sched/sched.h"
#include "tools/lib/io.h"
#include "tools/lib/payload.h"
#include "tools/framebench/sizedist.h"
#include "tools/lib/cli.h"
#include "tools/lib/hist.h"

#define NS_PER_SEC 1000000000ll
#define BUF_MIN (4u * 1024u)
#define BUF_MAX (64u * 1024u)
#define CONNECT_WAVE 256u       /* connects in flight at once */
#define OPEN_LOOP_DEPTH 1024u   /* default window with --rate */

typedef struct bench_options {
	struct sockaddr_storage target;
	socklen_t target_len;
	char target_text[96];
	uint32_t conns;
	uint32_t depth;
	bool depth_set;
	uint32_t size_min, size_max;  /* with --size-dist: the extremes */
	bool size_set;
	bool dist_set;              /* sizes drawn from `dist` (--size-dist) */
	sizedist dist;
	int64_t duration_ns;        /* 0 = until --frames */
	uint64_t frames;            /* 0 = until --duration */
	double rate;                /* frames/s over all connections; 0 = closed */
	poll_kind poller;
	bool json;
	uint64_t seed;
	int64_t grace_ns;
	int64_t connect_timeout_ns;
	int64_t warmup_ns;          /* frames sent before start + warmup: not measured */
	bool reply_sized;           /* the target answers like frameecho --reply-size */
	uint32_t reply_size;
	enum { PROGRESS_AUTO, PROGRESS_ON, PROGRESS_OFF } progress;
	/* --tls: every connection speaks TLS, the target's certificate
	 * verified against --tls-ca for --tls-name (default: the host of
	 * --target). */
	bool tls;
	const char *tls_ca;
	char tls_name[96];
} bench_options;

typedef struct inflight_frame {
	int64_t t0;                 /* send time (scheduled time when open-loop) */
	uint64_t digest;            /* FNV-1a of the payload, with --reply-size */
	uint32_t len;
} inflight_frame;

typedef struct bench_conn {
	uint32_t id;
	poll_desc *pd;
	tls_conn *tls;              /* --tls, else NULL */
	int connect_error;          /* negative errno of a failed connect */
	bool closed;                /* pd_close done */
	bool dead;                  /* error or EOF: stop both directions */
	bool writer_done;
	int refs;
	coro *writer_wait;        /* writer parked on a full window */

	inflight_frame *ring;       /* frames in flight, depth entries */
	uint64_t sent, received;    /* sequence numbers: next to send/expect */
	uint64_t quota;             /* frames this connection may send */

	/* reply parsing */
	uint8_t prefix[4];
	uint32_t prefix_have;
	bool in_payload;
	payload_verifier verifier;
	unsigned read_streak;       /* reads without parking (fairness) */

	uint8_t *wbuf, *rbuf;
	size_t buf_size;
} bench_conn;

typedef struct bench_totals {
	uint64_t sent, received, bytes, errors, mismatches, lost;
	uint64_t measured, measured_bytes;  /* frames sent after the warm-up */
	uint64_t payload_sent;      /* payload bytes of every frame sent */
	uint64_t replies;           /* live count (received is summed at the end) */
	uint64_t connect_failures;
	int first_connect_error;
	int64_t t_start, t_send_end, t_last_reply;
} bench_totals;

static bench_options opt;
static bench_conn *conns;
static hist latency;
static hist send_lag;     /* open loop: how late each frame left its slot */
static bench_totals tot;
static uint32_t connects_pending;
static uint32_t conns_running;
static coro *controller;
static bool controller_parked;
static uint32_t writers_unstarted;  /* writers not yet at the start line */
static bool started;
static volatile sig_atomic_t interrupted;

/* The once-a-second progress line on stderr (see progress_start). */
static struct {
	bool on;
	bool tty;                   /* redraw in place: stderr is a terminal */
	bool drawn;                 /* a line is on the terminal, not cleared */
	sched_timer timer;
	int64_t next_at;            /* on whole seconds from the start */
	int64_t last_at;
	uint64_t last_replies;
	hist window;                /* latencies since the last line */
} progress;

static void progress_erase(void);

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	progress_erase();
	fputs("framebench: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* The controller parks in one place at a time; ready it at most once. */
static void wake_controller(void)
{
	if (controller_parked) {
		controller_parked = false;
		coro_ready(controller);
	}
}

static void controller_wait(const char *why)
{
	controller_parked = true;
	coro_park(why);
	controller_parked = false;
}

static uint64_t in_flight(const bench_conn *c)
{
	return c->sent - c->received;
}

/* --- connection lifetime ------------------------------------------------- */

static void conn_abort(bench_conn *c)
{
	c->dead = true;
	if (!io_close_once(c->pd, &c->closed))
		return;
	io_wake(&c->writer_wait);
}

static void conn_release(bench_conn *c)
{
	if (--c->refs > 0)
		return;
	io_close_once(c->pd, &c->closed);
	tot.sent += c->sent;
	tot.received += c->received;
	tot.lost += in_flight(c);
	if (--conns_running == 0)
		wake_controller();
}

static void conn_error(bench_conn *c, const char *what, int err)
{
	if (c->dead)
		return;
	tot.errors++;
	note("connection %u: %s%s%s (%" PRIu64 " frames outstanding)", c->id,
	     what, err ? ": " : "", err ? strerror(err) : "", in_flight(c));
	conn_abort(c);
}

/* --- the writer ----------------------------------------------------------- */

static bool sending_over(const bench_conn *c, int64_t when)
{
	if (c->dead || interrupted || c->sent >= c->quota)
		return true;
	return opt.duration_ns > 0 && when >= tot.t_start + opt.duration_ns;
}

/* Open loop: frame k of connection i is due at start + (i + k*conns)/rate. */
static int64_t scheduled(const bench_conn *c)
{
	double slot = (double)c->id + (double)c->sent * (double)opt.conns;
	return tot.t_start + (int64_t)(slot * 1e9 / opt.rate);
}

static uint32_t next_size(const bench_conn *c)
{
	if (opt.dist_set)
		return sizedist_pick(&opt.dist, opt.seed, c->id, c->sent);
	return payload_pick_size(opt.seed, c->id, c->sent, opt.size_min,
				 opt.size_max);
}

static int flush(bench_conn *c, size_t *used)
{
	if (*used == 0)
		return 0;
	pd_set_deadline(c->pd, PD_WRITE, sched_now() + opt.grace_ns);
	ssize_t rc = c->tls ? tls_write_full(c->tls, c->wbuf, *used)
			    : pd_write_full(c->pd, c->wbuf, *used);
	*used = 0;
	if (rc < 0) {
		conn_error(c, "write", (int)-rc);
		return (int)rc;
	}
	return 0;
}

/* Append frame `c->sent` to the write buffer, streaming it when too big. */
static int put_frame(bench_conn *c, int64_t t0, size_t *used)
{
	uint32_t len = next_size(c);
	payload_frame_id id = {opt.seed, c->id, c->sent, len};
	inflight_frame *slot = &c->ring[c->sent % opt.depth];
	if (opt.rate > 0)
		hist_record(&send_lag, sched_now() - t0);
	slot->t0 = t0;
	slot->len = len;
	slot->digest = PAYLOAD_FNV_INIT;
	c->sent++;
	tot.payload_sent += len;
	if (*used + 4 > c->buf_size && flush(c, used) < 0)
		return -EPIPE;
	frame_write_length(c->wbuf + *used, len);
	*used += 4;
	for (uint32_t off = 0; off < len;) {
		if (*used == c->buf_size && flush(c, used) < 0)
			return -EPIPE;
		size_t k = c->buf_size - *used;
		if (k > len - off)
			k = len - off;
		payload_fill(c->wbuf + *used, k, &id, off);
		if (opt.reply_sized)
			slot->digest = payload_fnv1a(slot->digest, c->wbuf + *used, k);
		*used += k;
		off += (uint32_t)k;
	}
	return 0;
}

static void wait_window(bench_conn *c)
{
	c->writer_wait = coro_self();
	coro_park("framebench window");
	c->writer_wait = NULL;
}

/* One batch: as many frames as the window (and schedule) allow. */
static int send_batch(bench_conn *c)
{
	size_t used = 0;
	int64_t now = sched_now();
	bool open_loop = opt.rate > 0;
	while (in_flight(c) < opt.depth) {
		int64_t t0 = open_loop ? scheduled(c) : now;
		if (sending_over(c, t0) || (open_loop && t0 > now))
			break;
		if (put_frame(c, t0, &used) < 0)
			return -EPIPE;
		/* Keep batches small enough that replies start flowing. */
		if (used >= c->buf_size / 2)
			break;
	}
	return flush(c, &used);
}

static void writer_loop(bench_conn *c)
{
	for (;;) {
		int64_t now = sched_now();
		int64_t due = opt.rate > 0 ? scheduled(c) : now;
		if (sending_over(c, due))
			return;
		if (in_flight(c) >= opt.depth) {
			wait_window(c);
			continue;
		}
		if (due > now) {
			coro_sleep(due - now);
			continue;
		}
		if (send_batch(c) < 0)
			return;
	}
}

/*
 * Coroutines, stacks and buffers are all set up before the clock starts:
 * their first-touch page faults are not part of what is measured.
 */
static void await_start(bench_conn *c)
{
	if (--writers_unstarted == 0)
		wake_controller();
	if (!started && !c->dead)
		wait_window(c);  /* readied by the controller, or by an abort */
}

static void writer_main(void *arg)
{
	bench_conn *c = arg;
	await_start(c);
	writer_loop(c);
	c->writer_done = true;
	int64_t now = sched_now();
	if (now > tot.t_send_end)
		tot.t_send_end = now;
	if (!c->closed) {
		/* The reader waits at most --grace from here for the rest. */
		pd_set_deadline(c->pd, PD_READ, now + opt.grace_ns);
		if (in_flight(c) > 0 && c->tls)
			tls_shutdown_write(c->tls);
		else if (in_flight(c) > 0)
			pd_shutdown(c->pd, SHUT_WR);
		else
			conn_abort(c);  /* nothing owed: stop the reader now */
	}
	conn_release(c);
}

/* --- the reader ----------------------------------------------------------- */

static void frame_received(bench_conn *c, int64_t now)
{
	inflight_frame *slot = &c->ring[c->received % opt.depth];
	if (c->verifier.bad) {
		tot.mismatches++;
		if (tot.mismatches <= 10)
			note("connection %u: frame %" PRIu64 " (%u bytes) differs "
			     "from what was sent at payload offset %u",
			     c->id, c->received, slot->len,
			     c->verifier.bad_offset);
	}
	uint64_t bytes = 4 + (uint64_t)c->verifier.id.len;  /* the reply's */
	tot.bytes += bytes;
	tot.replies++;
	if (progress.on)
		hist_record(&progress.window, now - slot->t0);
	if (slot->t0 >= tot.t_start + opt.warmup_ns) {
		hist_record(&latency, now - slot->t0);
		tot.measured++;
		tot.measured_bytes += bytes;
	}
	c->received++;
	c->in_payload = false;
	c->prefix_have = 0;
	io_wake(&c->writer_wait);
}

/* A complete length prefix: check it against the frame we expect next. */
static int reply_start(bench_conn *c, int64_t now)
{
	uint32_t len = frame_read_length(c->prefix);
	if (in_flight(c) == 0) {
		tot.mismatches++;
		note("connection %u: a %u-byte frame arrived that was never sent",
		     c->id, len);
		return -EPROTO;
	}
	inflight_frame *slot = &c->ring[c->received % opt.depth];
	uint32_t want = opt.reply_sized ? opt.reply_size : slot->len;
	if (len != want) {
		/* After a wrong length the stream cannot be realigned. */
		tot.mismatches++;
		c->received++;
		note("connection %u: frame %" PRIu64 " came back with length %u, "
		     "expected %u", c->id, c->received - 1, len, want);
		return -EPROTO;
	}
	payload_frame_id id = {opt.seed, c->id, c->received, len};
	if (opt.reply_sized)
		payload_verify_begin_reply(&c->verifier, slot->digest, len);
	else
		payload_verify_begin(&c->verifier, &id);
	c->in_payload = true;
	if (len == 0)
		frame_received(c, now);
	return 0;
}

static int consume(bench_conn *c, const uint8_t *p, size_t n, int64_t now)
{
	while (n > 0) {
		size_t k;
		if (c->in_payload) {
			k = payload_verify_feed(&c->verifier, p, n);
			if (payload_verify_done(&c->verifier))
				frame_received(c, now);
		} else {
			k = io_take_prefix(c->prefix, &c->prefix_have, p, n);
			if (c->prefix_have == 4 && reply_start(c, now) < 0)
				return -EPROTO;
		}
		p += k;
		n -= k;
	}
	return 0;
}

/* 1 when the reader is finished normally, <0 on a failure, 0 to go on. */
static int read_once(bench_conn *c)
{
	if (!c->writer_done)
		pd_set_deadline(c->pd, PD_READ, sched_now() + opt.grace_ns);
	ssize_t n = c->tls ? tls_read(c->tls, c->rbuf, c->buf_size)
			   : io_read(c->pd, c->rbuf, c->buf_size, &c->read_streak);
	if (c->closed)
		return 1;
	if (n == -ETIMEDOUT && in_flight(c) == 0)
		return c->writer_done ? 1 : 0;
	if (n == 0) {
		/* EOF is only fine once we said we were done and got it all. */
		if (c->writer_done && in_flight(c) == 0 && !c->prefix_have &&
		    !c->in_payload)
			return 1;
		conn_error(c, "closed by the peer", 0);
		return -ECONNRESET;
	}
	if (n < 0) {
		if (n == -ETIMEDOUT)
			conn_error(c, "no reply within --grace", 0);
		else
			conn_error(c, "read", (int)-n);
		return (int)n;
	}
	int64_t now = sched_now();
	tot.t_last_reply = now;
	if (consume(c, c->rbuf, (size_t)n, now) < 0) {
		conn_error(c, "reply stream out of step, closing", 0);
		return -EPROTO;
	}
	return c->writer_done && in_flight(c) == 0 ? 1 : 0;
}

static void reader_main(void *arg)
{
	bench_conn *c = arg;
	while (read_once(c) == 0)
		;
	conn_abort(c);
	conn_release(c);
}

/* --- progress ----------------------------------------------------------------- */

/*
 * On a terminal the line is redrawn in place ("\r", then "erase to end of
 * line" for what a longer previous line left); elsewhere (--progress into a
 * pipe or file) each second gets its own line, so a log reads in order.
 */
static void progress_fired(sched_timer *t, void *arg)
{
	(void)arg;
	int64_t now = sched_now();
	double window = (double)(now - progress.last_at) / 1e9;
	uint64_t replies = tot.replies - progress.last_replies;
	fprintf(stderr, "%s[%6.1fs] %8.0f frames/s  p99 %9.1f us  %" PRIu64
		" errors%s", progress.tty ? "\r" : "",
		(double)(now - tot.t_start) / 1e9,
		window > 0 ? (double)replies / window : 0.0,
		(double)hist_percentile(&progress.window, 99.0) / 1e3,
		tot.errors + tot.mismatches, progress.tty ? "\033[K" : "\n");
	fflush(stderr);
	progress.drawn = progress.tty;
	/* A fresh histogram each second: the p99 is this second's alone. */
	hist_init(&progress.window);
	progress.last_replies = tot.replies;
	progress.last_at = now;
	/* Stay on whole seconds from the start; skip ticks we slept through. */
	do
		progress.next_at += NS_PER_SEC;
	while (progress.next_at <= now);
	sched_timer_set(t, progress.next_at);
}

/* Clear a line drawn in place, before anything else goes to stderr. */
static void progress_erase(void)
{
	if (!progress.drawn)
		return;
	fputs("\r\033[K", stderr);
	progress.drawn = false;
}

static bool progress_wanted(void)
{
	if (opt.progress != PROGRESS_AUTO)
		return opt.progress == PROGRESS_ON;
	/* Automatic only for a person watching: never into pipes or logs,
	 * and not next to JSON, which is for scripts. */
	return !opt.json && isatty(STDERR_FILENO);
}

static void progress_start(void)
{
	sched_timer_init(&progress.timer, progress_fired, NULL);
	if (!progress_wanted())
		return;
	progress.on = true;
	progress.tty = isatty(STDERR_FILENO);
	progress.last_at = tot.t_start;
	progress.next_at = tot.t_start + NS_PER_SEC;
	sched_timer_set(&progress.timer, progress.next_at);
}

static void progress_stop(void)
{
	sched_timer_cancel(&progress.timer);
	progress_erase();
}

/* --- connecting and the controller ------------------------------------------ */

static void on_interrupt(int signo)
{
	(void)signo;
	interrupted = 1;
}

static tls_ctx *tls_client; /* --tls: the context every connection uses */

/* --tls: the handshake, within --connect-timeout. 0 or -errno. */
static int conn_tls(bench_conn *c)
{
	char why[TLS_WHY_MAX] = "";

	if (!(c->tls = tls_conn_new_client(tls_client, c->pd, opt.tls_name)))
		return -ENOMEM;
	int rc = tls_handshake(c->tls, sched_now() + opt.connect_timeout_ns,
			       why, sizeof(why));
	if (rc < 0)
		note("connection %u: TLS handshake: %s", c->id, why);
	return rc;
}

static void connect_main(void *arg)
{
	bench_conn *c = arg;
	int rc = poll_connect((const struct sockaddr *)&opt.target,
			      opt.target_len, opt.connect_timeout_ns, &c->pd);
	if (rc == 0 && opt.tls && (rc = conn_tls(c)) < 0) {
		pd_close(c->pd);
		tls_conn_free(c->tls);
		c->tls = NULL;
	}
	if (rc < 0) {
		c->connect_error = rc;
		c->pd = NULL;
	}
	if (--connects_pending == 0)
		wake_controller();
}

static int connect_all(void)
{
	coro_opts co = {.name = "bench-connect", .stack_size = 0};
	for (uint32_t first = 0; first < opt.conns; first += CONNECT_WAVE) {
		uint32_t n = opt.conns - first;
		if (n > CONNECT_WAVE)
			n = CONNECT_WAVE;
		connects_pending = n;
		for (uint32_t i = first; i < first + n; i++) {
			if (!coro_spawn(connect_main, &conns[i], &co))
				return -ENOMEM;
		}
		controller_wait("framebench connecting");
	}
	for (uint32_t i = 0; i < opt.conns; i++) {
		if (conns[i].connect_error == 0)
			continue;
		if (tot.connect_failures++ == 0)
			tot.first_connect_error = conns[i].connect_error;
	}
	return tot.connect_failures ? -ECONNREFUSED : 0;
}

static int conn_setup(bench_conn *c, uint32_t id)
{
	uint32_t biggest = opt.reply_sized && opt.reply_size > opt.size_max
				   ? opt.reply_size : opt.size_max;
	uint64_t want = (uint64_t)opt.depth * ((uint64_t)biggest + 4);
	c->id = id;
	c->buf_size = want < BUF_MIN ? BUF_MIN : want > BUF_MAX ? BUF_MAX : want;
	c->ring = calloc(opt.depth, sizeof(*c->ring));
	c->wbuf = malloc(c->buf_size);
	c->rbuf = malloc(c->buf_size);
	c->quota = UINT64_MAX;
	if (opt.frames)
		c->quota = opt.frames / opt.conns +
			   (id < opt.frames % opt.conns ? 1 : 0);
	return c->ring && c->wbuf && c->rbuf ? 0 : -ENOMEM;
}

static void start_conn(bench_conn *c)
{
	coro_opts ro = {.name = "bench-read"}, wo = {.name = "bench-write"};
	c->refs = 2;
	conns_running++;
	if (!coro_spawn(reader_main, c, &ro)) {
		c->refs = 1;
		conn_error(c, "spawn reader", ENOMEM);
	}
	if (!coro_spawn(writer_main, c, &wo)) {
		conn_error(c, "spawn writer", ENOMEM);
		writers_unstarted--;
		conn_release(c);
	}
}

static void close_unused(void)
{
	for (uint32_t i = 0; i < opt.conns; i++) {
		if (conns[i].connect_error == 0 && conns[i].pd)
			pd_close(conns[i].pd);
	}
}

static void controller_main(void *arg)
{
	(void)arg;
	controller = coro_self();
	int rc = connect_all();
	if (rc < 0) {
		if (tot.connect_failures)
			note("connect to %s failed for %" PRIu64 " of %u "
			     "connections: %s", opt.target_text,
			     tot.connect_failures, opt.conns,
			     strerror(-tot.first_connect_error));
		tot.errors += tot.connect_failures;
		close_unused();
		return;
	}
	writers_unstarted = opt.conns;
	for (uint32_t i = 0; i < opt.conns; i++)
		start_conn(&conns[i]);
	while (writers_unstarted > 0)
		controller_wait("framebench starting");
	tot.t_start = sched_now();
	started = true;
	for (uint32_t i = 0; i < opt.conns; i++)
		io_wake(&conns[i].writer_wait);
	progress_start();
	while (conns_running > 0)
		controller_wait("framebench running");
	progress_stop();
	controller = NULL;
}

/* --- output ----------------------------------------------------------------- */

static double run_seconds(void)
{
	int64_t end = tot.t_send_end > tot.t_last_reply ? tot.t_send_end
							: tot.t_last_reply;
	double s = (double)(end - tot.t_start - opt.warmup_ns) / 1e9;
	return s > 0 ? s : 0;
}

static double us(double percentile)
{
	return (double)hist_percentile(&latency, percentile) / 1e3;
}

/* How sizes were chosen: "fixed 64", "uniform 0-5000", "dist 64:90,1024:9". */
static const char *size_mode(char *buf, size_t len)
{
	char spec[SIZEDIST_TEXT_MAX];
	if (opt.dist_set)
		snprintf(buf, len, "dist %s",
			 sizedist_format(&opt.dist, spec, sizeof(spec)));
	else if (opt.size_min == opt.size_max)
		snprintf(buf, len, "fixed %" PRIu32, opt.size_min);
	else
		snprintf(buf, len, "uniform %" PRIu32 "-%" PRIu32, opt.size_min,
			 opt.size_max);
	return buf;
}

static double mean_payload(void)
{
	return tot.sent ? (double)tot.payload_sent / (double)tot.sent : 0.0;
}

static void print_json(double secs)
{
	char size[SIZEDIST_TEXT_MAX + 16];
	printf("{\"frames\": %" PRIu64 ", \"frames_sent\": %" PRIu64
	       ", \"frames_per_sec\": %.1f, \"bytes\": %" PRIu64
	       ", \"bytes_per_sec\": %.1f, \"p50_us\": %.2f, \"p90_us\": %.2f"
	       ", \"p99_us\": %.2f, \"p999_us\": %.2f, \"max_us\": %.2f"
	       ", \"mean_us\": %.2f, \"errors\": %" PRIu64
	       ", \"mismatches\": %" PRIu64 ", \"lost\": %" PRIu64
	       ", \"connections\": %u, \"connect_failures\": %" PRIu64
	       ", \"duration_s\": %.3f, \"mode\": \"%s\", \"poller\": \"%s\""
	       ", \"send_lag_p99_us\": %.2f, \"warmup_s\": %.3f"
	       ", \"size\": \"%s\", \"mean_payload_bytes\": %.1f}\n",
	       tot.received, tot.sent,
	       secs > 0 ? (double)tot.measured / secs : 0.0, tot.bytes,
	       secs > 0 ? (double)tot.measured_bytes / secs : 0.0, us(50), us(90),
	       us(99), us(99.9), us(100), hist_mean(&latency) / 1e3,
	       tot.errors, tot.mismatches, tot.lost, opt.conns,
	       tot.connect_failures, secs, opt.rate > 0 ? "open" : "closed",
	       poll_kind_name(poll_backend()),
	       (double)hist_percentile(&send_lag, 99) / 1e3,
	       (double)opt.warmup_ns / 1e9, size_mode(size, sizeof(size)),
	       mean_payload());
}

static void print_text(double secs)
{
	char size[SIZEDIST_TEXT_MAX + 16];
	printf("framebench: %s, %u connections, depth %u, size %s", opt.target_text,
	       opt.conns, opt.depth, size_mode(size, sizeof(size)));
	if (opt.size_max != opt.size_min)
		printf(" (mean %.1f bytes sent)", mean_payload());
	if (opt.rate > 0)
		printf(", open-loop %.0f frames/s", opt.rate);
	else
		printf(", closed-loop");
	printf(", poller %s\n", poll_kind_name(poll_backend()));
	printf("  frames   sent %" PRIu64 "  received %" PRIu64 "  lost %" PRIu64
	       "  mismatches %" PRIu64 "  errors %" PRIu64 "\n",
	       tot.sent, tot.received, tot.lost, tot.mismatches, tot.errors);
	printf("  rate     %.0f frames/s  %.2f MB/s  over %.3f s",
	       secs > 0 ? (double)tot.measured / secs : 0.0,
	       secs > 0 ? (double)tot.measured_bytes / secs / 1e6 : 0.0, secs);
	if (opt.warmup_ns > 0)
		printf(" after %.3f s of warm-up", (double)opt.warmup_ns / 1e9);
	putchar('\n');
	printf("  latency  p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f"
	       "  mean %.1f (us)\n", us(50), us(90), us(99), us(99.9), us(100),
	       hist_mean(&latency) / 1e3);
	/* Open loop: part of the latency is the generator missing its slots
	 * (timer granularity, a busy CPU); this says how much. */
	if (opt.rate > 0)
		printf("  send lag p50 %.1f  p99 %.1f  max %.1f (us behind schedule)\n",
		       (double)hist_percentile(&send_lag, 50) / 1e3,
		       (double)hist_percentile(&send_lag, 99) / 1e3,
		       (double)hist_percentile(&send_lag, 100) / 1e3);
}

/* --- command line ----------------------------------------------------------- */

static void usage(FILE *out)
{
	fputs("usage: framebench --target ADDR [-c CONNS] [-d IN_FLIGHT]\n"
	      "                  [--size N | --size MIN-MAX | --size-dist SPEC]\n"
	      "                  [--duration DUR] [--frames N] [--rate FPS]\n"
	      "                  [--poller epoll|uring|auto] [--json] [--seed N]\n"
	      "                  [--grace DUR] [--connect-timeout DUR] [--warmup DUR]\n"
	      "                  [--reply-size N] [--progress | --no-progress]\n"
	      "                  [--tls --tls-ca FILE [--tls-name NAME]]\n"
	      "  --target ADDR        HOST:PORT or [V6]:PORT of a frame echo server\n"
	      "  -c, --connections N  connections (default 1)\n"
	      "  -d, --depth N        frames in flight per connection (default 1;\n"
	      "                       1024 with --rate)\n"
	      "  --size N|MIN-MAX     payload bytes, fixed or uniform (default 64,\n"
	      "                       up to 16MiB; K/M suffixes)\n"
	      "  --size-dist SPEC     payload bytes drawn per frame from a weighted\n"
	      "                       list SIZE:WEIGHT,... where SIZE is N or MIN-MAX\n"
	      "                       (uniform), e.g. 64:90,1KiB-4KiB:9,64KiB:1;\n"
	      "                       weights are positive integers (not with --size)\n"
	      "  --duration DUR       send for DUR (default 10s unless --frames)\n"
	      "  --frames N           send N frames in total over all connections\n"
	      "  --rate FPS           open loop: FPS frames/s in total, latency\n"
	      "                       measured from each frame's scheduled time\n"
	      "  --json               one JSON object on stdout instead of text\n"
	      "  --seed N             payload and size seed (default 1)\n"
	      "  --grace DUR          wait for outstanding replies (default 5s)\n"
	      "  --connect-timeout DUR  (default 5s)\n"
	      "  --warmup DUR         leave frames sent in the first DUR out of the\n"
	      "                       rates and latencies (still verified)\n"
	      "  --reply-size N       expect N-byte answers as frameecho --reply-size N\n"
	      "                       makes them, and verify those\n"
	      "  --progress           a line on stderr every second: frames/s and p99\n"
	      "                       of that second, errors and mismatches so far\n"
	      "                       (default: only when stderr is a terminal and\n"
	      "                       without --json; redrawn in place there)\n"
	      "  --no-progress        never print it\n"
	      "  --tls                speak TLS to the target (verified)\n"
	      "  --tls-ca FILE        PEM CA the target's certificate must chain to\n"
	      "  --tls-name NAME      the name (SNI) verified, default the target's\n"
	      "                       host\n"
	      "Exits 1 on any mismatch, lost frame, error or connect failure;\n"
	      "2 on bad usage.\n",
	      out);
}

static int parse_size_range(const char *text)
{
	char lo[64];
	const char *dash = strchr(text, '-');
	uint64_t min, max;
	if (!dash) {
		if (cli_parse_size(text, &min) < 0)
			return -EINVAL;
		max = min;
	} else {
		size_t n = (size_t)(dash - text);
		if (n >= sizeof(lo))
			return -EINVAL;
		memcpy(lo, text, n);
		lo[n] = '\0';
		if (cli_parse_size(lo, &min) < 0 ||
		    cli_parse_size(dash + 1, &max) < 0 || max < min)
			return -EINVAL;
	}
	if (max > PAYLOAD_MAX_FRAME)
		return -ERANGE;
	opt.size_min = (uint32_t)min;
	opt.size_max = (uint32_t)max;
	return 0;
}

/* Why the last option value was refused, when there is more to say than
 * "bad value". */
static char bad_value_why[192];

static int parse_size_dist(const char *text)
{
	int rc = sizedist_parse(text, &opt.dist, bad_value_why,
				sizeof(bad_value_why));
	if (rc < 0)
		return rc;
	opt.dist_set = true;
	/* Buffers are sized for the largest frame, as with --size MIN-MAX. */
	opt.size_min = sizedist_min(&opt.dist);
	opt.size_max = sizedist_max(&opt.dist);
	return 0;
}

static int parse_rate(const char *text)
{
	char *end;
	errno = 0;
	double v = strtod(text, &end);
	if (errno || *end || !(v > 0) || v > 1e9)
		return -EINVAL;
	opt.rate = v;
	return 0;
}

static int parse_one(int ch, const char *arg)
{
	uint64_t v;
	int rc;
	switch (ch) {
	case 't':
		rc = cli_parse_addr(arg, &opt.target, &opt.target_len);
		snprintf(opt.target_text, sizeof(opt.target_text), "%s", arg);
		return rc;
	case 'c':
		rc = cli_parse_u64(arg, 1000000, &v);
		opt.conns = (uint32_t)v;
		return rc == 0 && v == 0 ? -EINVAL : rc;
	case 'd':
		rc = cli_parse_u64(arg, 1u << 20, &v);
		opt.depth = (uint32_t)v;
		opt.depth_set = true;
		return rc == 0 && v == 0 ? -EINVAL : rc;
	case 's':
		opt.size_set = true;
		return parse_size_range(arg);
	case 'z':
		return parse_size_dist(arg);
	case 'D':
		return cli_parse_duration(arg, &opt.duration_ns);
	case 'n':
		return cli_parse_u64(arg, UINT64_MAX, &opt.frames);
	case 'r':
		return parse_rate(arg);
	case 'p':
		return poll_kind_parse(arg, &opt.poller);
	case 'S':
		return cli_parse_u64(arg, UINT64_MAX, &opt.seed);
	case 'g':
		return cli_parse_duration(arg, &opt.grace_ns);
	case 'T':
		return cli_parse_duration(arg, &opt.connect_timeout_ns);
	case 'W':
		return cli_parse_duration(arg, &opt.warmup_ns);
	case 'A':
		opt.tls_ca = arg;
		return 0;
	case 'N':
		snprintf(opt.tls_name, sizeof(opt.tls_name), "%s", arg);
		return 0;
	case 'R':
		rc = cli_parse_size(arg, &v);
		if (rc == 0 && v > PAYLOAD_MAX_FRAME)
			rc = -ERANGE;
		opt.reply_sized = true;
		opt.reply_size = (uint32_t)v;
		return rc;
	default:
		return -EINVAL;
	}
}

/* Options without a value; false when `ch` is not one. */
static bool parse_flag(int ch)
{
	switch (ch) {
	case 'j':
		opt.json = true;
		return true;
	case 'P':
		opt.progress = PROGRESS_ON;
		return true;
	case 'Q':
		opt.progress = PROGRESS_OFF;
		return true;
	case 'L':
		opt.tls = true;
		return true;
	default:
		return false;
	}
}

static void bad_value(const char *value, const char *option)
{
	if (bad_value_why[0])
		note("bad value '%s' for %s: %s", value, option, bad_value_why);
	else
		note("bad value '%s' for %s (see --help)", value, option);
}

/* The host of --target: "127.0.0.1:9000" -> 127.0.0.1, "[::1]:9" -> ::1. */
static void target_host(char *out, size_t len)
{
	const char *t = opt.target_text;
	const char *end = strrchr(t, ':');
	size_t n = end ? (size_t)(end - t) : strlen(t);

	if (t[0] == '[' && n >= 2 && t[n - 1] == ']') {
		t++;
		n -= 2;
	}
	snprintf(out, len, "%.*s", (int)n, t);
}

static int parse_args(int argc, char **argv)
{
	static const struct option longs[] = {
		{"target", required_argument, NULL, 't'},
		{"connections", required_argument, NULL, 'c'},
		{"depth", required_argument, NULL, 'd'},
		{"size", required_argument, NULL, 's'},
		{"size-dist", required_argument, NULL, 'z'},
		{"duration", required_argument, NULL, 'D'},
		{"frames", required_argument, NULL, 'n'},
		{"rate", required_argument, NULL, 'r'},
		{"poller", required_argument, NULL, 'p'},
		{"json", no_argument, NULL, 'j'},
		{"seed", required_argument, NULL, 'S'},
		{"grace", required_argument, NULL, 'g'},
		{"connect-timeout", required_argument, NULL, 'T'},
		{"warmup", required_argument, NULL, 'W'},
		{"reply-size", required_argument, NULL, 'R'},
		{"progress", no_argument, NULL, 'P'},
		{"no-progress", no_argument, NULL, 'Q'},
		{"tls", no_argument, NULL, 'L'},
		{"tls-ca", required_argument, NULL, 'A'},
		{"tls-name", required_argument, NULL, 'N'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	opt = (bench_options){
		.conns = 1, .depth = 1, .size_min = 64, .size_max = 64,
		.poller = POLL_AUTO, .seed = 1, .grace_ns = 5 * NS_PER_SEC,
		.connect_timeout_ns = 5 * NS_PER_SEC,
	};
	bool have_target = false;
	int ch;
	while ((ch = getopt_long(argc, argv, "t:c:d:jh", longs, NULL)) != -1) {
		if (ch == 'h') {
			usage(stdout);
			exit(0);
		}
		if (parse_flag(ch))
			continue;
		if (ch == '?') {
			usage(stderr);
			return -EINVAL;
		}
		if (parse_one(ch, optarg) < 0) {
			bad_value(optarg, argv[optind - 1][0] == '-'
						  ? argv[optind - 1]
						  : argv[optind - 2]);
			return -EINVAL;
		}
		have_target |= ch == 't';
	}
	if (optind != argc || !have_target) {
		usage(stderr);
		return -EINVAL;
	}
	/* Which of the two a user meant cannot be guessed: refuse both. */
	if (opt.size_set && opt.dist_set) {
		note("--size and --size-dist cannot be used together");
		return -EINVAL;
	}
	if (opt.tls != (opt.tls_ca != NULL)) {
		note("--tls and --tls-ca go together");
		return -EINVAL;
	}
	if (opt.tls && !opt.tls_name[0])
		target_host(opt.tls_name, sizeof(opt.tls_name));
	if (!opt.depth_set && opt.rate > 0)
		opt.depth = OPEN_LOOP_DEPTH;
	if (!opt.duration_ns && !opt.frames)
		opt.duration_ns = 10 * NS_PER_SEC;
	if (opt.duration_ns && opt.warmup_ns >= opt.duration_ns) {
		note("--warmup must be shorter than --duration");
		return -EINVAL;
	}
	return 0;
}

static void free_conns(void)
{
	for (uint32_t i = 0; i < opt.conns; i++) {
		free(conns[i].ring);
		free(conns[i].wbuf);
		free(conns[i].rbuf);
		tls_conn_free(conns[i].tls);
	}
	free(conns);
	tls_ctx_free(tls_client);
}

static int run(void)
{
	char why[256] = "";
	int rc = poll_open(opt.poller, why, sizeof(why));
	if (why[0])
		note("%s", why);
	if (rc < 0) {
		note("poller %s: %s", poll_kind_name(opt.poller), strerror(-rc));
		return rc;
	}
	if (opt.tls && tls_client_ctx_build(opt.tls_ca, why, sizeof(why),
					    &tls_client) < 0) {
		note("--tls-ca: %s", why);
		return -EINVAL;
	}
	conns = calloc(opt.conns, sizeof(*conns));
	if (!conns)
		return -ENOMEM;
	for (uint32_t i = 0; i < opt.conns; i++) {
		if (conn_setup(&conns[i], i) < 0)
			return -ENOMEM;
	}
	coro_opts co = {.name = "bench-control"};
	if (!coro_spawn(controller_main, NULL, &co))
		return -ENOMEM;
	sched_run();
	return 0;
}

int main(int argc, char **argv)
{
	if (parse_args(argc, argv) < 0)
		return 2;
	signal(SIGPIPE, SIG_IGN);
	/* First ^C ends sending (replies are still awaited); a second kills. */
	struct sigaction sa = {.sa_handler = on_interrupt,
			       .sa_flags = SA_RESETHAND};
	sigaction(SIGINT, &sa, NULL);
	/* Open-loop sends are timer driven: 50 us of default slack would be
	 * measured as latency. */
	prctl(PR_SET_TIMERSLACK, 1ul, 0ul, 0ul, 0ul);
	hist_init(&latency);
	hist_init(&send_lag);
	hist_init(&progress.window);
	/* Keep every exited coroutine's stack until the end: unmapping
	 * thousands of them while the last replies arrive would be measured. */
	sched_config sc = {.stack_pool_max = 2u * opt.conns + 64u};
	int rc = sched_init(&sc);
	if (rc == 0)
		rc = run();
	if (rc < 0) {
		note("%s", strerror(-rc));
		return 1;
	}
	double secs = run_seconds();
	if (opt.json)
		print_json(secs);
	else
		print_text(secs);
	free_conns();
	poll_close();
	sched_shutdown();
	bool failed = tot.errors || tot.mismatches || tot.lost ||
		      tot.connect_failures;
	return failed ? 1 : 0;
}
