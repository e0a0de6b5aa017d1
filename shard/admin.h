/*
 * admin — the supervisor's HTTP endpoint: GET /metrics (Prometheus text),
 * GET /stats and GET /servers (JSON), and the write endpoints
 * POST /servers/LISTENER/SERVER and POST /reload. Private to shard/.
 *
 * Writes are refused (403, with the reason) unless the listener is a Unix
 * socket (its file mode says who may connect) or the request carries
 * `Authorization: Bearer TOKEN` with the token set by admin_set_token,
 * compared in constant time. Reads are open to whoever can connect.
 *
 * The supervisor forks, so it runs no coroutines: this is a plain,
 * non-blocking poll(2) server that the supervisor's own loop drives:
 *
 *   n = admin_pollfds(&a, fds, max);         // plus the loop's own fds
 *   poll(fds, n, timeout until admin_next_deadline(&a));
 *   admin_service(&a, fds, n, now_ns, render, arg);
 *
 * One request per connection (Connection: close), at most
 * ADMIN_MAX_CLIENTS at once; a client must send its request within
 * ADMIN_HEADER_TIMEOUT_NS of connecting and take the response within
 * ADMIN_TIMEOUT_NS of it being ready. Nothing here blocks the supervisor.
 *
 * Idle sockets cannot starve it: at the client limit a new connection
 * takes the slot of the oldest client that has not sent a whole request
 * (that one gets a 503), and only when every slot is busy answering is
 * the new one turned away, with a 503 too rather than a reset.
 *
 * A shard inherits these fds through fork: it should call admin_close on
 * its copy (the listening socket must stay the supervisor's alone).
 */
#ifndef FRAMEPROXY_SHARD_ADMIN_H
#define FRAMEPROXY_SHARD_ADMIN_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "shard/strbuf.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ADMIN_MAX_CLIENTS 64
/* Deep enough that a burst of idle connects does not drop a scraper's SYN
 * (a dropped SYN costs it a second); each round drains it. */
#define ADMIN_BACKLOG 1024
#define ADMIN_MAX_REQUEST 8192                   /* request line + headers */
#define ADMIN_MAX_BODY 4096                      /* a POST's Content-Length */
#define ADMIN_MAX_TOKEN 256
#define ADMIN_TIMEOUT_NS (5 * (int64_t)1000000000)      /* response */
#define ADMIN_HEADER_TIMEOUT_NS (2 * (int64_t)1000000000) /* request */

typedef enum admin_route {
	ADMIN_INCOMPLETE = 0,   /* no end of header yet */
	ADMIN_METRICS,          /* GET /metrics */
	ADMIN_STATS,            /* GET /stats */
	ADMIN_NOT_FOUND,        /* GET of another path */
	ADMIN_BAD_METHOD,       /* a well-formed request, not GET or HEAD */
	ADMIN_BAD_REQUEST,      /* malformed, or no end of header in 8 KiB */
	ADMIN_SERVERS,          /* GET /servers */
	ADMIN_SERVER_SET,       /* POST /servers/LISTENER/SERVER (a write) */
	ADMIN_RELOAD,           /* POST /reload (a write) */
	ADMIN_UPGRADE,          /* POST /upgrade (a write) */
	ADMIN_TOO_LARGE,        /* a body over ADMIN_MAX_BODY */
} admin_route;

/* What admin_parse found; pointers are into the caller's buffer. */
typedef struct admin_request {
	admin_route route;
	bool head;
	const char *path;             /* without the query */
	size_t path_len;
	const char *token;            /* Authorization: Bearer ..., or NULL */
	size_t token_len;
	const char *body;             /* Content-Length bytes after the header */
	size_t body_len;
	size_t length;                /* header and body */
} admin_request;

/* The route writes (needs the Unix socket or the token). */
bool admin_route_writes(admin_route route);

/*
 * Parse the start of a request. Pure: no allocation, no global state, any
 * bytes at all are safe input. The header ends at "\r\n\r\n" or "\n\n"
 * (a bare "\n" ends a line too) and must end within ADMIN_MAX_REQUEST
 * bytes. The request line is `METHOD SP /path[?query] SP HTTP/1.0|1.1`;
 * header lines are not interpreted. HEAD routes like GET. *consumed (may be
 * NULL) is the header's length with its end, 0 while ADMIN_INCOMPLETE, and
 * for ADMIN_BAD_REQUEST on size the bytes looked at.
 */
admin_route admin_parse_request(const char *buf, size_t len,
				size_t *consumed);
/*
 * The whole request: admin_parse_request's route, then the headers it
 * needs (Content-Length, at most ADMIN_MAX_BODY, else ADMIN_TOO_LARGE;
 * Authorization: Bearer; Transfer-Encoding is refused as ADMIN_BAD_REQUEST)
 * and the body. ADMIN_INCOMPLETE until the body is all there. Pure, like
 * admin_parse_request; `req` is always filled.
 */
admin_route admin_parse(const char *buf, size_t len, admin_request *req);

/* Fills `body`; may set *content_type (preset by route). 0 (200), an HTTP
 * status >= 400 with `body` its text (e.g. 404 for an unknown server), or
 * -errno (the client then gets a 500). */
typedef int (*admin_render_fn)(void *arg, const admin_request *req,
			       strbuf *body, const char **content_type);

typedef struct admin_client {
	int fd;                       /* -1: unused */
	int64_t deadline_ns;
	uint64_t seq;                 /* accept order: oldest goes first */
	bool writing;                 /* the response is ready */
	strbuf in;                    /* request bytes so far */
	strbuf out;                   /* the whole response */
	size_t out_off;               /* bytes of out already sent */
} admin_client;

/* Out of file descriptors: how long the listening socket is left alone. */
#define ADMIN_ACCEPT_PAUSE_NS (100 * 1000 * 1000LL)

typedef struct admin_server {
	int listen_fd;                /* -1: closed */
	uint32_t client_count;
	uint64_t accepted;            /* every accept, for admin_client.seq */
	uint64_t evicted;             /* idle clients closed for a new one */
	uint64_t refused;             /* turned away: every slot answering */
	int64_t accept_paused_until;  /* out of fds: not polled until then */
	bool local;                   /* a Unix socket: writes allowed */
	size_t token_len;             /* 0: no token */
	char token[ADMIN_MAX_TOKEN];
	admin_client clients[ADMIN_MAX_CLIENTS];
} admin_server;

/* A closed server: admin_close on it is harmless (admin_open does this). */
void admin_init(admin_server *a);
/* Non-blocking listening socket, SO_REUSEADDR, backlog ADMIN_BACKLOG.
 * AF_UNIX: a stale socket file at the path is replaced, and the new one
 * gets `unix_mode` (e.g. 0600). 0 or -errno; on failure `a` is closed
 * (admin_close is harmless). */
int admin_open(admin_server *a, const struct sockaddr *addr, socklen_t len,
	       unsigned unix_mode);
/* The bearer token that allows writes; NULL or "" for none. 0, or
 * -ENAMETOOLONG (no token is set then). */
int admin_set_token(admin_server *a, const char *token);
/* Binary upgrade: serve on a listening socket the old supervisor opened
 * (non-blocking already). 0, -EINVAL when it is not listening, -errno. */
int admin_adopt(admin_server *a, int fd);
/* The bound address (for port 0). 0 or -errno. */
int admin_bound(const admin_server *a, struct sockaddr *addr, socklen_t *len);
/* The listening socket and every client, with the events each waits for.
 * At most `max` entries (1 + ADMIN_MAX_CLIENTS always suffice). */
size_t admin_pollfds(const admin_server *a, struct pollfd *fds, size_t max);
/*
 * Act on poll's results: entries are matched by fd, so `fds` may be the
 * caller's bigger array. Reads and answers clients, closes those past
 * their deadline (now_ns, CLOCK_MONOTONIC), accepts new ones.
 */
void admin_service(admin_server *a, const struct pollfd *fds, size_t n,
		   int64_t now_ns, admin_render_fn render, void *arg);
/* The earliest client deadline, INT64_MAX with no client. */
int64_t admin_next_deadline(const admin_server *a);
/* Close every socket and free the buffers. */
void admin_close(admin_server *a);

#ifdef __cplusplus
}
#endif

#endif
