/*
 * idleconns — hold many idle frame connections open (for memory figures).
 *
 *   idleconns --target HOST:PORT -n N [--size BYTES] [--timeout DUR]
 *             [--batch N]
 *
 * Opens N TCP connections to the target in batches (so a listener backlog
 * is never overrun), sends one frame on each (4-byte big-endian length, then
 * a payload that differs per connection), reads the echoed frame back and
 * checks it byte for byte. Then it prints `ready N` on stdout and keeps
 * every connection open and idle until stdin reaches EOF or SIGTERM/SIGINT
 * arrives; then it closes them all and exits 0.
 *
 * Any connect failure, mismatch, early close or timeout is one line on
 * stderr naming the connection index and the reason, and exit status 1.
 * A connection the peer closes (or writes to) while held idle is reported
 * the same way; it is left alone and makes the exit status 1 at the end.
 *
 * Plain POSIX sockets and poll(2); of the project it takes only inline
 * helpers and the address parser (poll_addr_parse), no scheduler or poller.
 * The soft RLIMIT_NOFILE is raised to the hard limit first.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "poll/poll.h"
#include "proxy/frame.h"
#include "sched/sched.h"

#define MAX_SIZE (1u << 20)          /* largest --size */
#define DEFAULT_BATCH 256u
#define MAX_BATCH 4096u
#define DEFAULT_TIMEOUT_MS 10000

typedef enum conn_state { CONNECTING, SENDING, RECEIVING, DONE } conn_state;

typedef struct idle_conn {
	int fd;
	conn_state state;
	uint32_t done;      /* bytes sent (SENDING) or received (RECEIVING) */
} idle_conn;

static struct {
	const char *target;
	struct sockaddr_storage addr;
	socklen_t addr_len;
	uint32_t n;
	uint32_t size;
	uint32_t batch;
	int64_t timeout_ms;
} opt = {.size = 64, .batch = DEFAULT_BATCH, .timeout_ms = DEFAULT_TIMEOUT_MS};

static volatile sig_atomic_t stop_signal;
static int stop_pipe[2] = {-1, -1};

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("idleconns: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static void on_signal(int sig)
{
	int saved = errno;
	stop_signal = sig;
	if (stop_pipe[1] >= 0) {
		char c = 1;
		ssize_t r = write(stop_pipe[1], &c, 1);
		(void)r;
	}
	errno = saved;
}

/* "10s", "250ms", "1m", "2" (seconds), "1.5s". */
static bool parse_duration_ms(const char *s, int64_t *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || v < 0)
		return false;
	double mult;
	if (!*end || !strcmp(end, "s"))
		mult = 1000;
	else if (!strcmp(end, "ms"))
		mult = 1;
	else if (!strcmp(end, "us"))
		mult = 0.001;
	else if (!strcmp(end, "m"))
		mult = 60000;
	else
		return false;
	double ms = v * mult;
	if (ms > 1e12)
		return false;
	*out = (int64_t)ms;
	return *out > 0;
}

/* "64", "4K", "4KiB", "1M", "1MiB". */
static bool parse_size(const char *s, uint32_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *s == '-')
		return false;
	unsigned long long mult = 1;
	if (!*end || !strcmp(end, "B"))
		mult = 1;
	else if (!strcmp(end, "K") || !strcmp(end, "k") || !strcmp(end, "KiB"))
		mult = 1024;
	else if (!strcmp(end, "M") || !strcmp(end, "MiB"))
		mult = 1024 * 1024;
	else
		return false;
	if (v > UINT32_MAX / mult)
		return false;
	*out = (uint32_t)(v * mult);
	return true;
}

static bool parse_count(const char *s, uint32_t *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || v == 0 || v > 1000000)
		return false;
	*out = (uint32_t)v;
	return true;
}

/* HOST:PORT or [V6]:PORT, numeric or resolvable. */
static void parse_target(const char *text)
{
	int rc = poll_addr_parse(text, POLL_ADDR_ANY_HOST, &opt.addr,
				 &opt.addr_len);

	if (rc == -ENOENT)
		fail("--target %s: the name does not resolve", text);
	if (rc < 0)
		fail("--target %s: expected HOST:PORT or [V6]:PORT", text);
}

static void usage(FILE *f)
{
	fputs("usage: idleconns --target HOST:PORT -n N [--size BYTES] "
	      "[--timeout DUR] [--batch N]\n"
	      "  --target ADDR     HOST:PORT or [V6]:PORT of a frame echo "
	      "(or a proxy to one)\n"
	      "  -n N              connections to open and hold\n"
	      "  --size BYTES      payload of the one frame sent on each "
	      "(default 64, up to 1MiB)\n"
	      "  --timeout DUR     per batch: connect, send and echo within DUR "
	      "(default 10s)\n"
	      "  --batch N         connections set up at once (default 256)\n"
	      "Prints 'ready N' once all N echoed their frame, then holds them "
	      "idle until\n"
	      "stdin reaches EOF or SIGTERM/SIGINT; exits 0. Any failure: one "
	      "line on\n"
	      "stderr naming the connection, exit 1. Raises the soft "
	      "RLIMIT_NOFILE to the hard one.\n",
	      f);
}

static void parse_args(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"target", required_argument, NULL, 't'},
		{"size", required_argument, NULL, 's'},
		{"timeout", required_argument, NULL, 'T'},
		{"batch", required_argument, NULL, 'b'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c;
	while ((c = getopt_long(argc, argv, "n:h", longopts, NULL)) != -1) {
		switch (c) {
		case 't':
			opt.target = optarg;
			break;
		case 'n':
			if (!parse_count(optarg, &opt.n))
				fail("-n %s: expected a count from 1 to 1000000", optarg);
			break;
		case 's':
			if (!parse_size(optarg, &opt.size) || opt.size > MAX_SIZE)
				fail("--size %s: expected 0 to 1MiB", optarg);
			break;
		case 'T':
			if (!parse_duration_ms(optarg, &opt.timeout_ms))
				fail("--timeout %s: expected a duration like 10s or 500ms",
				     optarg);
			break;
		case 'b':
			if (!parse_count(optarg, &opt.batch) || opt.batch > MAX_BATCH)
				fail("--batch %s: expected a count up to %u", optarg,
				     MAX_BATCH);
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (optind < argc)
		fail("unexpected argument '%s' (see --help)", argv[optind]);
	if (!opt.target || !opt.n) {
		usage(stderr);
		exit(2);
	}
	parse_target(opt.target);
}

static void raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		fail("getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			fail("setrlimit(RLIMIT_NOFILE, %llu): %s",
			     (unsigned long long)rl.rlim_max, strerror(errno));
	}
	/* stdin/out/err, the signal pipe, and a little slack. */
	if (rl.rlim_cur != RLIM_INFINITY && (uint64_t)opt.n + 16 > rl.rlim_cur)
		fail("-n %u needs about %u file descriptors; the limit is %llu",
		     opt.n, opt.n + 16, (unsigned long long)rl.rlim_cur);
}

/* Payload byte i of connection idx: differs between connections. */
static uint8_t payload_byte(uint32_t idx, uint32_t i)
{
	uint32_t x = idx * 2654435761u + i * 40503u + 0x9e37u;
	x ^= x >> 13;
	return (uint8_t)(x ^ (x >> 8));
}

static void fill_frame(uint8_t *buf, uint32_t idx)
{
	frame_write_length(buf, opt.size);
	for (uint32_t i = 0; i < opt.size; i++)
		buf[4 + i] = payload_byte(idx, i);
}

static void conn_fail(uint32_t idx, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), noreturn));
static void conn_fail(uint32_t idx, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "idleconns: connection %u (to %s): ", idx, opt.target);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

/* One step for a connection poll says is ready. */
static void conn_step(idle_conn *c, uint32_t idx, short revents,
		      uint8_t *sendbuf, uint8_t *recvbuf)
{
	uint32_t frame_len = 4 + opt.size;
	if (c->state == CONNECTING) {
		int err = 0;
		socklen_t len = sizeof(err);
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
			err = errno;
		if (err)
			conn_fail(idx, "connect: %s", strerror(err));
		if (!(revents & POLLOUT))
			return;
		c->state = SENDING;
		c->done = 0;
		fill_frame(sendbuf, idx);
	}
	if (c->state == SENDING) {
		while (c->done < frame_len) {
			ssize_t r = send(c->fd, sendbuf + c->done, frame_len - c->done,
					 MSG_NOSIGNAL);
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				return;
			if (r < 0)
				conn_fail(idx, "send: %s", strerror(errno));
			c->done += (uint32_t)r;
		}
		c->state = RECEIVING;  /* sendbuf stays: what must come back */
		c->done = 0;
		return;
	}
	if (c->state == RECEIVING) {
		for (;;) {
			/* One byte more than the frame: anything extra is wrong. */
			ssize_t r = recv(c->fd, recvbuf + c->done,
					 frame_len + 1 - c->done, 0);
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				break;
			if (r < 0)
				conn_fail(idx, "receive: %s", strerror(errno));
			if (r == 0)
				conn_fail(idx, "closed by the peer after %u of the %u "
					  "echoed bytes", c->done, frame_len);
			uint32_t from = c->done;
			c->done += (uint32_t)r;
			uint32_t to = c->done < frame_len ? c->done : frame_len;
			for (uint32_t i = from; i < to; i++) {
				if (recvbuf[i] == sendbuf[i])
					continue;
				if (i < 4)
					conn_fail(idx, "the echo's length prefix differs "
						  "from the %u sent", opt.size);
				conn_fail(idx, "the echoed frame differs at payload "
					  "offset %u", i - 4);
			}
			if (c->done > frame_len)
				conn_fail(idx, "more than the %u-byte frame came back",
					  frame_len);
		}
		if (c->done == frame_len)
			c->state = DONE;
	}
}

/* Set up connections [first, first + count): connect, send, verify echo. */
static void setup_batch(idle_conn *conns, uint32_t first, uint32_t count,
			struct pollfd *pfds, uint32_t *map, uint8_t **bufs)
{
	int64_t deadline =
		sched_clock_ns(CLOCK_MONOTONIC) / 1000000 + opt.timeout_ms;
	for (uint32_t k = 0; k < count; k++) {
		uint32_t idx = first + k;
		idle_conn *c = &conns[idx];
		c->fd = socket(opt.addr.ss_family,
			       SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (c->fd < 0)
			conn_fail(idx, "socket: %s", strerror(errno));
		int one = 1;
		setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c->state = CONNECTING;
		c->done = 0;
		if (connect(c->fd, (struct sockaddr *)&opt.addr, opt.addr_len) != 0 &&
		    errno != EINPROGRESS)
			conn_fail(idx, "connect: %s", strerror(errno));
	}
	uint32_t left = count;
	while (left > 0) {
		uint32_t np = 0;
		for (uint32_t k = 0; k < count; k++) {
			idle_conn *c = &conns[first + k];
			if (c->state == DONE)
				continue;
			short ev = c->state == RECEIVING ? POLLIN
				 : POLLOUT;
			pfds[np] = (struct pollfd){.fd = c->fd, .events = ev};
			map[np++] = k;
		}
		int64_t wait = deadline - sched_clock_ns(CLOCK_MONOTONIC) / 1000000;
		if (wait <= 0)
			wait = 0;
		int r = poll(pfds, np, (int)wait);
		if (r < 0 && errno == EINTR) {
			if (stop_signal)
				fail("stopped by signal %d during setup",
				     (int)stop_signal);
			continue;
		}
		if (r < 0)
			fail("poll: %s", strerror(errno));
		if (r == 0) {
			idle_conn *c = &conns[first + map[0]];
			static const char *const what[] = {
				[CONNECTING] = "connecting",
				[SENDING] = "sending its frame",
				[RECEIVING] = "waiting for the echo",
				[DONE] = "done",
			};
			conn_fail(first + map[0], "timed out after %lld ms %s "
				  "(%u of this batch of %u still unfinished)",
				  (long long)opt.timeout_ms, what[c->state],
				  np, count);
		}
		for (uint32_t p = 0; p < np; p++) {
			if (!pfds[p].revents)
				continue;
			uint32_t k = map[p];
			conn_step(&conns[first + k], first + k, pfds[p].revents,
				  bufs[2 * k], bufs[2 * k + 1]);
			if (conns[first + k].state == DONE)
				left--;
		}
		if (stop_signal)
			fail("stopped by signal %d during setup", (int)stop_signal);
	}
}

int main(int argc, char **argv)
{
	parse_args(argc, argv);
	raise_nofile();

	if (pipe2(stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
		fail("pipe: %s", strerror(errno));
	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	idle_conn *conns = calloc(opt.n, sizeof(*conns));
	struct pollfd *pfds = calloc((size_t)opt.n + 2, sizeof(*pfds));
	uint32_t batch = opt.batch < opt.n ? opt.batch : opt.n;
	uint8_t **bufs = calloc(2 * (size_t)batch, sizeof(*bufs));
	uint32_t *map = calloc(batch, sizeof(*map));
	if (!conns || !pfds || !bufs || !map)
		fail("out of memory for %u connections", opt.n);
	for (uint32_t i = 0; i < 2 * batch; i++) {
		bufs[i] = malloc((size_t)opt.size + 5);
		if (!bufs[i])
			fail("out of memory for %u-byte frames", opt.size);
	}

	for (uint32_t first = 0; first < opt.n; first += batch) {
		uint32_t count = opt.n - first < batch ? opt.n - first : batch;
		setup_batch(conns, first, count, pfds, map, bufs);
	}
	for (uint32_t i = 0; i < 2 * batch; i++)
		free(bufs[i]);
	free(bufs);
	free(map);

	printf("ready %u\n", opt.n);
	fflush(stdout);

	/* Hold: stdin, the signal pipe, and every connection (for closes). */
	bool stdin_open = true;
	uint32_t broken = 0;
	pfds[0] = (struct pollfd){.fd = STDIN_FILENO, .events = POLLIN};
	pfds[1] = (struct pollfd){.fd = stop_pipe[0], .events = POLLIN};
	for (uint32_t i = 0; i < opt.n; i++)
		pfds[2 + i] = (struct pollfd){.fd = conns[i].fd, .events = POLLIN};
	while (stdin_open && !stop_signal) {
		int r = poll(pfds, (nfds_t)opt.n + 2, -1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			fail("poll: %s", strerror(errno));
		if (pfds[0].revents) {
			char buf[4096];
			ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
			if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
				stdin_open = false;
			if (pfds[0].revents & POLLNVAL)
				stdin_open = false;
		}
		for (uint32_t i = 0; i < opt.n; i++) {
			struct pollfd *p = &pfds[2 + i];
			if (p->fd < 0 || !p->revents)
				continue;
			char b;
			ssize_t n = recv(p->fd, &b, 1, MSG_DONTWAIT);
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (n > 0)
				fprintf(stderr, "idleconns: connection %u (to %s): "
					"unexpected bytes while idle\n", i, opt.target);
			else if (n == 0)
				fprintf(stderr, "idleconns: connection %u (to %s): "
					"closed by the peer while idle\n", i, opt.target);
			else
				fprintf(stderr, "idleconns: connection %u (to %s): "
					"error while idle: %s\n", i, opt.target,
					strerror(errno));
			p->fd = -1;  /* report each connection once */
			broken++;
		}
	}
	for (uint32_t i = 0; i < opt.n; i++)
		close(conns[i].fd);
	free(conns);
	free(pfds);
	if (broken) {
		fprintf(stderr, "idleconns: %u of %u connections broke while "
			"held idle\n", broken, opt.n);
		return 1;
	}
	return 0;
}
