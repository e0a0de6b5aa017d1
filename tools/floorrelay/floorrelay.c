/*
 * floorrelay — the least a TCP relay can do, as a benchmark floor.
 *
 * Accepts clients, connects each to one upstream and copies bytes both
 * ways: no frame parsing, no timeouts, no limits, no logs, no balancing. Whatever CPU a forwarded
 * frame costs here is what the kernel charges any relay for the same
 * traffic, so tools/compare runs it beside frameproxy, HAProxy and nginx
 * to show how much of their CPU per frame user space could still save.
 * An end of stream is passed on as shutdown(SHUT_WR), as load generators
 * half-close to wait for their last replies.
 *
 *   --poller epoll   edge-triggered epoll: read until EAGAIN, write at once
 *                    (the syscalls a readiness-based proxy makes).
 *   --poller uring   io_uring completions: one recv or send in flight per
 *                    direction, every round's SQEs in one io_uring_enter
 *                    (SINGLE_ISSUER + DEFER_TASKRUN): no readiness step and
 *                    no per-call syscall.
 *
 * Not a proxy to deploy: it is a measuring stick. Connection setup (accept
 * plus a blocking connect, instant on loopback) is not what it measures.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "poll/poll.h"
#include "tools/lib/cli.h"

typedef enum floor_poller { FLOOR_EPOLL, FLOOR_URING } floor_poller;

typedef struct floor_options {
	struct sockaddr_storage listen_addr;
	socklen_t listen_len;
	struct sockaddr_storage server_addr;
	socklen_t server_len;
	floor_poller poller;
	size_t buffer;
} floor_options;

typedef struct floor_pair floor_pair;

/*
 * One direction of a relayed connection: bytes read from `from` wait in
 * `buf` until written to `to`. A pair owns two directions and two fds.
 */
typedef struct floor_direction {
	floor_pair *pair;
	int from;
	int to;
	char *buf;
	size_t len; /* bytes in buf */
	size_t off; /* bytes of buf already written */
	bool ended; /* `from` reached end of stream, passed on to `to` */
} floor_direction;

struct floor_pair {
	floor_direction up;          /* client -> server */
	floor_direction down;        /* server -> client */
	int client;
	int server;
	int in_flight; /* uring: SQEs not yet completed */
	bool closing;
};

static volatile sig_atomic_t floor_stop;

static void floor_on_signal(int sig)
{
	(void)sig;
	floor_stop = 1;
}

static void floor_nodelay(int fd)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static int floor_set_nonblocking(int fd)
{
	int flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

/* Blocking connect: on loopback the handshake completes inside connect(). */
static int floor_connect(const floor_options *opt)
{
	int fd = socket(opt->server_addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC,
			0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (const struct sockaddr *)&opt->server_addr,
		    opt->server_len) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	floor_nodelay(fd);
	return fd;
}

static floor_pair *floor_pair_new(int client, int server, size_t size)
{
	floor_pair *p = calloc(1, sizeof *p);
	char *bufs = malloc(2 * size);
	if (!p || !bufs) {
		free(p);
		free(bufs);
		return NULL;
	}
	p->client = client;
	p->server = server;
	p->up = (floor_direction){.pair = p, .from = client,
					 .to = server, .buf = bufs};
	p->down = (floor_direction){.pair = p, .from = server,
					   .to = client, .buf = bufs + size};
	return p;
}

static void floor_pair_free(floor_pair *p)
{
	close(p->client);
	close(p->server);
	free(p->up.buf); /* both directions' buffers, one allocation */
	free(p);
}

static int floor_listen(const floor_options *opt)
{
	int fd = socket(opt->listen_addr.ss_family,
			SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int one = 1;
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, (const struct sockaddr *)&opt->listen_addr,
		 opt->listen_len) < 0 ||
	    listen(fd, 4096) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

/*
 * Connect an accepted client's server and pair them: the pair, or NULL with
 * both closed. epoll wants non-blocking fds; io_uring does not need them.
 */
static floor_pair *floor_pair_open(int client,
				   const floor_options *opt,
				   bool nonblocking)
{
	int server = floor_connect(opt);
	if (server < 0) {
		fprintf(stderr, "floorrelay: connect: %s\n", strerror(-server));
		close(client);
		return NULL;
	}
	floor_nodelay(client);
	floor_pair *p = NULL;
	if (!nonblocking || (floor_set_nonblocking(client) == 0 &&
			     floor_set_nonblocking(server) == 0))
		p = floor_pair_new(client, server, opt->buffer);
	if (!p) {
		close(client);
		close(server);
	}
	return p;
}

/* Accept one client (epoll): its pair, or NULL when none is waiting. */
static floor_pair *floor_accept(int listener,
				const floor_options *opt)
{
	for (;;) {
		int client = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
		if (client < 0)
			return NULL;
		floor_pair *p = floor_pair_open(client, opt, true);
		if (p)
			return p;
	}
}

/* --- epoll ------------------------------------------------------------ */

/*
 * Epoll registers each fd with a tagged pointer to its pair: bit 0 says
 * which fd woke (0 client, 1 server). The listener's tag is NULL.
 */
static void *floor_tag(floor_pair *p, int side)
{
	return (void *)((uintptr_t)p | (uintptr_t)side);
}

/* Pass an end of stream on: -1 once both directions have ended. */
static int floor_end(floor_direction *d)
{
	floor_pair *p = d->pair;
	d->ended = true;
	shutdown(d->to, SHUT_WR);
	return p->up.ended && p->down.ended ? -1 : 0;
}

/*
 * Write what is buffered, then read and write until the sender has no more
 * or the receiver is full. 0 to keep going, -1 when the pair must close.
 */
static int floor_epoll_pump(floor_direction *d, size_t size)
{
	for (;;) {
		while (d->off < d->len) {
			ssize_t n = write(d->to, d->buf + d->off,
					  d->len - d->off);
			if (n < 0)
				return errno == EAGAIN ? 0 : -1;
			d->off += (size_t)n;
		}
		d->off = d->len = 0;
		if (d->ended)
			return 0;
		ssize_t n = read(d->from, d->buf, size);
		if (n == 0)
			return floor_end(d);
		if (n < 0)
			return errno == EAGAIN ? 0 : -1;
		d->len = (size_t)n;
	}
}

static int floor_epoll_add(int ep, floor_pair *p)
{
	struct epoll_event ev = {
		.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
		.data.ptr = floor_tag(p, 0),
	};
	if (epoll_ctl(ep, EPOLL_CTL_ADD, p->client, &ev) < 0)
		return -errno;
	ev.data.ptr = floor_tag(p, 1);
	if (epoll_ctl(ep, EPOLL_CTL_ADD, p->server, &ev) < 0)
		return -errno;
	return 0;
}

/*
 * A pair closed in this batch may still have an event later in it; closed
 * pairs wait in `dead` until the batch is done.
 */
static int floor_run_epoll(int listener, const floor_options *opt)
{
	enum { BATCH = 256 };
	struct epoll_event events[BATCH];
	floor_pair *dead[BATCH];
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, listener, &lev) < 0)
		return -errno;
	while (!floor_stop) {
		int n = epoll_wait(ep, events, BATCH, 200);
		int ndead = 0;
		for (int i = 0; i < n; i++) {
			uintptr_t tag = (uintptr_t)events[i].data.ptr;
			if (tag == 0) {
				floor_pair *p;
				while ((p = floor_accept(listener, opt)))
					if (floor_epoll_add(ep, p) < 0)
						floor_pair_free(p);
				continue;
			}
			floor_pair *p = (void *)(tag & ~(uintptr_t)1);
			if (p->closing)
				continue;
			/* Either fd's edge can unblock both directions. */
			if (floor_epoll_pump(&p->up, opt->buffer) < 0 ||
			    floor_epoll_pump(&p->down, opt->buffer) < 0) {
				p->closing = true;
				dead[ndead++] = p;
			}
		}
		for (int i = 0; i < ndead; i++)
			floor_pair_free(dead[i]);
	}
	close(ep);
	return 0;
}

/* --- io_uring ---------------------------------------------------------- */

/* user_data: a direction pointer, or FLOOR_ACCEPT for the listener. */
#define FLOOR_ACCEPT ((uint64_t)1)

static struct io_uring_sqe *floor_sqe(struct io_uring *ring)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
	if (!sqe) {
		io_uring_submit(ring);
		sqe = io_uring_get_sqe(ring);
	}
	return sqe;
}

static void floor_uring_recv(struct io_uring *ring, floor_direction *d,
			     size_t size)
{
	struct io_uring_sqe *sqe = floor_sqe(ring);
	io_uring_prep_recv(sqe, d->from, d->buf, size, 0);
	io_uring_sqe_set_data(sqe, d);
	d->pair->in_flight++;
}

static void floor_uring_send(struct io_uring *ring, floor_direction *d)
{
	struct io_uring_sqe *sqe = floor_sqe(ring);
	io_uring_prep_send(sqe, d->to, d->buf + d->off, d->len - d->off,
			   MSG_NOSIGNAL);
	io_uring_sqe_set_data(sqe, d);
	d->pair->in_flight++;
}

/*
 * shutdown() ends the other direction's pending recv (it reads 0) or send
 * (EPIPE); the fds stay open, so not reused, until the pair's last CQE.
 */
static void floor_uring_close(floor_pair *p)
{
	if (!p->closing) {
		p->closing = true;
		shutdown(p->client, SHUT_RDWR);
		shutdown(p->server, SHUT_RDWR);
	}
	if (p->in_flight == 0)
		floor_pair_free(p);
}

/* A recv or send of `d` completed with `res`. */
static void floor_uring_done(struct io_uring *ring, floor_direction *d,
			     int res, size_t size)
{
	floor_pair *p = d->pair;
	p->in_flight--;
	if (p->closing || res < 0) {
		floor_uring_close(p);
		return;
	}
	if (res == 0 && d->len == 0) { /* a recv saw the end of stream */
		if (floor_end(d) < 0)
			floor_uring_close(p);
		return;
	}
	if (d->len == 0) { /* it was a recv */
		d->len = (size_t)res;
		d->off = 0;
		floor_uring_send(ring, d);
		return;
	}
	d->off += (size_t)res;
	if (d->off < d->len) {
		floor_uring_send(ring, d);
		return;
	}
	d->len = d->off = 0;
	floor_uring_recv(ring, d, size);
}

static void floor_uring_accept(struct io_uring *ring, int listener)
{
	struct io_uring_sqe *sqe = floor_sqe(ring);
	io_uring_prep_multishot_accept(sqe, listener, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, FLOOR_ACCEPT);
}

static void floor_uring_accepted(struct io_uring *ring, int listener,
				 const struct io_uring_cqe *cqe,
				 const floor_options *opt)
{
	if (!(cqe->flags & IORING_CQE_F_MORE))
		floor_uring_accept(ring, listener);
	if (cqe->res < 0)
		return;
	floor_pair *p = floor_pair_open(cqe->res, opt, false);
	if (!p)
		return;
	floor_uring_recv(ring, &p->up, opt->buffer);
	floor_uring_recv(ring, &p->down, opt->buffer);
}

static int floor_run_uring(int listener, const floor_options *opt)
{
	struct io_uring ring;
	struct io_uring_params params = {
		.flags = IORING_SETUP_SINGLE_ISSUER |
			 IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_COOP_TASKRUN,
	};
	int rc = io_uring_queue_init_params(4096, &ring, &params);
	if (rc < 0)
		return rc;
	floor_uring_accept(&ring, listener);
	struct __kernel_timespec wait = {.tv_nsec = 200 * 1000 * 1000};
	while (!floor_stop) {
		struct io_uring_cqe *cqe;
		rc = io_uring_submit_and_wait_timeout(&ring, &cqe, 1, &wait,
						      NULL);
		if (rc < 0 && rc != -ETIME && rc != -EINTR)
			break;
		unsigned head, seen = 0;
		io_uring_for_each_cqe(&ring, head, cqe) {
			uint64_t tag = io_uring_cqe_get_data64(cqe);
			seen++;
			if (tag == FLOOR_ACCEPT)
				floor_uring_accepted(&ring, listener, cqe, opt);
			else if (tag != 0)
				floor_uring_done(&ring, (void *)tag, cqe->res,
						 opt->buffer);
		}
		io_uring_cq_advance(&ring, seen);
	}
	io_uring_queue_exit(&ring);
	return rc < 0 && rc != -ETIME && rc != -EINTR ? rc : 0;
}

/* --- command line ----------------------------------------------------- */

static void floor_usage(FILE *out)
{
	fputs("usage: floorrelay --listen ADDR --server ADDR\n"
	      "                  [--poller epoll|uring] [--buffer SIZE]\n"
	      "A benchmark floor, not a proxy: copies bytes between each client\n"
	      "and one upstream connection with the fewest syscalls its poller\n"
	      "allows; no frames, limits, timeouts or half-close.\n"
	      "  --listen ADDR   HOST:PORT or [V6]:PORT; port 0 picks one\n"
	      "  --server ADDR   the upstream every client is connected to\n"
	      "  --poller KIND   epoll (edge-triggered, read/write) or uring\n"
	      "                  (recv/send completions; default epoll)\n"
	      "  --buffer SIZE   bytes per direction (default 64KiB)\n"
	      "Prints 'listening on ADDR' first; SIGTERM/SIGINT stop it.\n",
	      out);
}

static int floor_parse(int argc, char **argv, floor_options *opt)
{
	static const struct option longopts[] = {
		{"listen", required_argument, NULL, 'l'},
		{"server", required_argument, NULL, 's'},
		{"poller", required_argument, NULL, 'p'},
		{"buffer", required_argument, NULL, 'b'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	bool have_listen = false, have_server = false;
	uint64_t size;
	int c, index = 0;
	*opt = (floor_options){.poller = FLOOR_EPOLL, .buffer = 65536};
	while ((c = getopt_long(argc, argv, "h", longopts, &index)) != -1) {
		int rc = 0;
		switch (c) {
		case 'l':
			rc = cli_parse_addr(optarg, &opt->listen_addr,
					    &opt->listen_len);
			have_listen = rc == 0;
			break;
		case 's':
			rc = cli_parse_addr(optarg, &opt->server_addr,
					    &opt->server_len);
			have_server = rc == 0;
			break;
		case 'p':
			if (strcmp(optarg, "epoll") == 0)
				opt->poller = FLOOR_EPOLL;
			else if (strcmp(optarg, "uring") == 0)
				opt->poller = FLOOR_URING;
			else
				rc = -EINVAL;
			break;
		case 'b':
			rc = cli_parse_size(optarg, &size);
			if (rc == 0 && (size == 0 || size > (1u << 30)))
				rc = -EINVAL;
			opt->buffer = (size_t)size;
			break;
		case 'h':
			floor_usage(stdout);
			exit(0);
		default:
			floor_usage(stderr);
			return -1;
		}
		if (rc < 0) {
			fprintf(stderr, "floorrelay: bad --%s value '%s'\n",
				longopts[index].name, optarg);
			return -1;
		}
	}
	if (optind != argc || !have_listen || !have_server) {
		floor_usage(stderr);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	floor_options opt;
	if (floor_parse(argc, argv, &opt) < 0)
		return 2;
	signal(SIGPIPE, SIG_IGN);
	struct sigaction sa = {.sa_handler = floor_on_signal};
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	int listener = floor_listen(&opt);
	if (listener < 0) {
		fprintf(stderr, "floorrelay: listen: %s\n", strerror(-listener));
		return 1;
	}
	struct sockaddr_storage bound;
	socklen_t len = sizeof bound;
	char text[64];
	getsockname(listener, (struct sockaddr *)&bound, &len);
	printf("listening on %s\n",
	       poll_addr_format((struct sockaddr *)&bound, text, sizeof text));
	fflush(stdout);
	int rc = opt.poller == FLOOR_URING ? floor_run_uring(listener, &opt)
					   : floor_run_epoll(listener, &opt);
	close(listener);
	if (rc < 0) {
		fprintf(stderr, "floorrelay: %s\n", strerror(-rc));
		return 1;
	}
	return 0;
}
