/* The admin endpoint: request parsing and a small poll(2) server
 * (see shard/admin.h). */
#include "shard/admin.h"
#include "sched/sched.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* --- parsing ---------------------------------------------------------------- */

/* Just past the blank line that ends the header in buf[0..n), 0 if none. */
static size_t header_end(const char *buf, size_t n)
{
	const char *p = buf, *end = buf + n;

	while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		size_t i = (size_t)(p - buf);
		if (i + 1 < n && buf[i + 1] == '\n')
			return i + 2;
		if (i + 2 < n && buf[i + 1] == '\r' && buf[i + 2] == '\n')
			return i + 3;
		p++;
	}
	return 0;
}

/* RFC 9110 tchar: what a method may be made of. */
static bool is_tchar(char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return true;
	return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool is_target_char(char c)
{
	return c > 0x20 && c < 0x7f;
}

static size_t span(const char *s, size_t n, bool (*ok)(char))
{
	size_t i = 0;

	while (i < n && ok(s[i]))
		i++;
	return i;
}

static bool equals(const char *s, size_t n, const char *lit)
{
	return n == strlen(lit) && memcmp(s, lit, n) == 0;
}

static admin_route route_path(const char *target, size_t n)
{
	const char *q = memchr(target, '?', n);
	size_t path_len = q ? (size_t)(q - target) : n;

	if (equals(target, path_len, "/metrics"))
		return ADMIN_METRICS;
	if (equals(target, path_len, "/stats"))
		return ADMIN_STATS;
	return ADMIN_NOT_FOUND;
}

/* `METHOD SP origin-form SP HTTP/1.x`, without its line end. */
static admin_route parse_request_line(const char *s, size_t n)
{
	size_t method = span(s, n, is_tchar);
	if (method == 0 || method == n || s[method] != ' ')
		return ADMIN_BAD_REQUEST;

	const char *target = s + method + 1;
	size_t rest = n - method - 1;
	size_t target_len = span(target, rest, is_target_char);
	if (target_len == 0 || target[0] != '/' || target_len == rest ||
	    target[target_len] != ' ')
		return ADMIN_BAD_REQUEST;

	const char *version = target + target_len + 1;
	size_t version_len = rest - target_len - 1;
	if (!equals(version, version_len, "HTTP/1.1") &&
	    !equals(version, version_len, "HTTP/1.0"))
		return ADMIN_BAD_REQUEST;

	if (!equals(s, method, "GET") && !equals(s, method, "HEAD"))
		return ADMIN_BAD_METHOD;
	return route_path(target, target_len);
}

admin_route admin_parse_request(const char *buf, size_t len,
				size_t *consumed)
{
	size_t looked = len < ADMIN_MAX_REQUEST ? len : ADMIN_MAX_REQUEST;
	/* len 0 may come with buf NULL, which memchr must not see. */
	size_t end = looked ? header_end(buf, looked) : 0;

	if (consumed)
		*consumed = end;
	if (end == 0) {
		if (len < ADMIN_MAX_REQUEST)
			return ADMIN_INCOMPLETE;
		if (consumed)
			*consumed = looked;
		return ADMIN_BAD_REQUEST;
	}

	size_t line = (size_t)((const char *)memchr(buf, '\n', end) - buf);
	if (line > 0 && buf[line - 1] == '\r')
		line--;
	return parse_request_line(buf, line);
}

/* --- the server ----------------------------------------------------------------- */

static void client_init(admin_client *c)
{
	c->fd = -1;
	c->deadline_ns = 0;
	c->seq = 0;
	c->writing = false;
	strbuf_init(&c->in);
	strbuf_init(&c->out);
	c->out_off = 0;
}

void admin_init(admin_server *a)
{
	a->listen_fd = -1;
	a->client_count = 0;
	a->accepted = 0;
	a->evicted = 0;
	a->refused = 0;
	a->accept_paused_until = 0;
	for (int k = 0; k < ADMIN_MAX_CLIENTS; k++)
		client_init(&a->clients[k]);
}

int admin_open(admin_server *a, const struct sockaddr *addr, socklen_t len)
{
	admin_init(a);
	int fd = socket(addr->sa_family,
			SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;

	int one = 1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, addr, len) < 0 || listen(fd, ADMIN_BACKLOG) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	a->listen_fd = fd;
	return 0;
}

int admin_bound(const admin_server *a, struct sockaddr *addr, socklen_t *len)
{
	if (a->listen_fd < 0)
		return -EBADF;
	return getsockname(a->listen_fd, addr, len) < 0 ? -errno : 0;
}

size_t admin_pollfds(const admin_server *a, struct pollfd *fds, size_t max)
{
	size_t n = 0;

	if (a->listen_fd >= 0 && n < max &&
	    sched_clock_ns(CLOCK_MONOTONIC) >= a->accept_paused_until) {
		fds[n].fd = a->listen_fd;
		fds[n].events = POLLIN;
		fds[n++].revents = 0;
	}
	for (int k = 0; k < ADMIN_MAX_CLIENTS && n < max; k++) {
		const admin_client *c = &a->clients[k];
		if (c->fd < 0)
			continue;
		fds[n].fd = c->fd;
		fds[n].events = c->writing ? POLLOUT : POLLIN;
		fds[n++].revents = 0;
	}
	return n;
}

static void client_close(admin_server *a, admin_client *c)
{
	close(c->fd);
	strbuf_free(&c->in);
	strbuf_free(&c->out);
	client_init(c);
	a->client_count--;
}

/* Unread input makes close() send a RST, which can destroy the response
 * in the client's receive queue: read what is there first (bounded). */
static void client_finish(admin_server *a, admin_client *c)
{
	char junk[4096];

	for (int k = 0; k < 4; k++)
		if (recv(c->fd, junk, sizeof(junk), MSG_DONTWAIT) <= 0)
			break;
	client_close(a, c);
}

static void client_write(admin_server *a, admin_client *c)
{
	while (c->out_off < c->out.len) {
		/* MSG_NOSIGNAL: a client gone away must not SIGPIPE the
		 * supervisor. */
		ssize_t w = send(c->fd, c->out.data + c->out_off,
				 c->out.len - c->out_off, MSG_NOSIGNAL);
		if (w > 0) {
			c->out_off += (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return; /* the rest when poll says POLLOUT */
		client_close(a, c);
		return;
	}
	client_finish(a, c);
}

typedef struct admin_status {
	int code;
	const char *reason;
	const char *body;             /* for errors */
} admin_status;

static admin_status route_status(admin_route route)
{
	switch (route) {
	case ADMIN_METRICS:
	case ADMIN_STATS:
		return (admin_status){ 200, "OK", NULL };
	case ADMIN_NOT_FOUND:
		return (admin_status){ 404, "Not Found", "not found\n" };
	case ADMIN_BAD_METHOD:
		return (admin_status){ 405, "Method Not Allowed",
				       "method not allowed\n" };
	case ADMIN_INCOMPLETE:
	case ADMIN_BAD_REQUEST:
		break;
	}
	return (admin_status){ 400, "Bad Request", "bad request\n" };
}

static const char *const admin_text_type = "text/plain; charset=utf-8";

/* 200 with the rendered body, or 500 when rendering failed. */
static admin_status render_body(admin_route route, strbuf *body,
				const char **type, admin_render_fn render,
				void *arg)
{
	*type = route == ADMIN_METRICS ?
		"text/plain; version=0.0.4; charset=utf-8" :
		"application/json";
	int err = render ? render(arg, route, body, type) : -ENOSYS;
	if (err == 0)
		return route_status(route);

	strbuf_reset(body);
	*type = admin_text_type;
	return (admin_status){ 500, "Internal Server Error",
			       "internal error\n" };
}

static int build_response(strbuf *out, admin_status st, const char *type,
			  const strbuf *body, bool head)
{
	int err = strbuf_printf(out, "HTTP/1.1 %d %s\r\n"
				"Content-Type: %s\r\n"
				"Content-Length: %zu\r\n"
				"Connection: close\r\n"
				"%s\r\n", st.code, st.reason, type, body->len,
				st.code == 405 ? "Allow: GET, HEAD\r\n" : "");
	if (!err && !head && body->len)
		err = strbuf_append(out, body->data, body->len);
	return err;
}

static void respond(admin_server *a, admin_client *c, admin_route route,
		    int64_t now_ns, admin_render_fn render, void *arg)
{
	bool head = c->in.len >= 5 && memcmp(c->in.data, "HEAD ", 5) == 0;
	const char *type = admin_text_type;
	admin_status st = route_status(route);
	strbuf body;

	strbuf_init(&body);
	if (st.code == 200)
		st = render_body(route, &body, &type, render, arg);
	if (st.body)
		strbuf_puts(&body, st.body); /* on ENOMEM: an empty body */
	int err = build_response(&c->out, st, type, &body, head);
	strbuf_free(&body);
	strbuf_free(&c->in);
	if (err) {
		client_close(a, c);
		return;
	}
	c->writing = true;
	c->out_off = 0;
	c->deadline_ns = now_ns + ADMIN_TIMEOUT_NS;
	client_write(a, c);
}

static void client_read(admin_server *a, admin_client *c, int64_t now_ns,
			admin_render_fn render, void *arg)
{
	char buf[ADMIN_MAX_REQUEST];
	/* Never more than a full header: past that the request is refused. */
	size_t room = ADMIN_MAX_REQUEST - c->in.len;
	ssize_t r = recv(c->fd, buf, room ? room : 1, 0);

	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (r <= 0 || strbuf_append(&c->in, buf, (size_t)r) < 0) {
		client_close(a, c);
		return;
	}
	admin_route route = admin_parse_request(c->in.data, c->in.len, NULL);
	if (route != ADMIN_INCOMPLETE)
		respond(a, c, route, now_ns, render, arg);
}

static admin_client *client_by_fd(admin_server *a, int fd)
{
	for (int k = 0; k < ADMIN_MAX_CLIENTS; k++)
		if (a->clients[k].fd == fd)
			return &a->clients[k];
	return NULL;
}

static admin_client *client_free_slot(admin_server *a)
{
	return client_by_fd(a, -1);
}

static const char admin_busy[] =
	"HTTP/1.1 503 Service Unavailable\r\n"
	"Content-Type: text/plain; charset=utf-8\r\n"
	"Content-Length: 5\r\n"
	"Connection: close\r\n"
	"Retry-After: 1\r\n"
	"\r\n"
	"busy\n";

/* A best-effort 503 into an fd with no slot: it fits any socket buffer,
 * and what it does not take is dropped rather than waited for. */
static void send_busy(int fd)
{
	char junk[4096];

	(void)!send(fd, admin_busy, sizeof(admin_busy) - 1,
		    MSG_DONTWAIT | MSG_NOSIGNAL);
	for (int k = 0; k < 4; k++)
		if (recv(fd, junk, sizeof(junk), MSG_DONTWAIT) <= 0)
			break;
}

/* The oldest client still sending its request, NULL if all are answering. */
static admin_client *oldest_reading(admin_server *a)
{
	admin_client *old = NULL;

	for (int k = 0; k < ADMIN_MAX_CLIENTS; k++) {
		admin_client *c = &a->clients[k];
		if (c->fd >= 0 && !c->writing &&
		    (!old || c->seq < old->seq))
			old = c;
	}
	return old;
}

/*
 * A slot for a new connection at the limit: the oldest client that has not
 * sent a whole request loses its own. Its bytes are read once more first,
 * so a request that arrived since the last poll is answered, not lost.
 */
static admin_client *client_evict(admin_server *a, int64_t now_ns,
				  admin_render_fn render, void *arg)
{
	for (int k = 0; k < 4; k++) {
		admin_client *c = oldest_reading(a);
		if (!c)
			return NULL;
		client_read(a, c, now_ns, render, arg);
		if (c->fd < 0)
			return c; /* it finished or left by itself */
		if (c->writing)
			continue;
		send_busy(c->fd);
		client_close(a, c);
		a->evicted++;
		return c;
	}
	return client_free_slot(a);
}

static void client_accept(admin_server *a, int fd, int64_t now_ns,
			  admin_render_fn render, void *arg)
{
	admin_client *c = client_free_slot(a);
	if (!c)
		c = client_evict(a, now_ns, render, arg);
	if (!c) {
		send_busy(fd); /* every slot is answering: refuse, politely */
		close(fd);
		a->refused++;
		return;
	}
	c->fd = fd;
	c->deadline_ns = now_ns + ADMIN_HEADER_TIMEOUT_NS;
	c->seq = ++a->accepted;
	a->client_count++;
	/* Its request is often queued already: read it now, before another
	 * accept can take this slot. */
	client_read(a, c, now_ns, render, arg);
}

static void accept_clients(admin_server *a, int64_t now_ns,
			   admin_render_fn render, void *arg)
{
	/* Bounded, so a flood of connections cannot starve the supervisor's
	 * other work; the rest wait in the backlog for the next round. */
	for (int k = 0; k < ADMIN_MAX_CLIENTS + ADMIN_BACKLOG; k++) {
		int fd = accept4(a->listen_fd, NULL, NULL,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0 && (errno == EINTR || errno == ECONNABORTED))
			continue;
		if (fd < 0 && (errno == EMFILE || errno == ENFILE)) {
			/* The connection stays queued and the socket readable:
			 * polling it now would spin the supervisor. */
			a->accept_paused_until = now_ns + ADMIN_ACCEPT_PAUSE_NS;
			return;
		}
		if (fd < 0)
			return; /* EAGAIN */
		client_accept(a, fd, now_ns, render, arg);
	}
}

static void expire_clients(admin_server *a, int64_t now_ns)
{
	for (int k = 0; k < ADMIN_MAX_CLIENTS; k++) {
		admin_client *c = &a->clients[k];
		if (c->fd >= 0 && c->deadline_ns <= now_ns)
			client_close(a, c);
	}
}

void admin_service(admin_server *a, const struct pollfd *fds, size_t n,
		   int64_t now_ns, admin_render_fn render, void *arg)
{
	bool accept_ready = false;

	for (size_t k = 0; k < n; k++) {
		short ev = fds[k].revents;
		if (fds[k].fd < 0 || ev == 0)
			continue;
		if (fds[k].fd == a->listen_fd) {
			accept_ready = true;
			continue;
		}
		admin_client *c = client_by_fd(a, fds[k].fd);
		if (!c)
			continue;
		if (c->writing)
			client_write(a, c);
		else
			client_read(a, c, now_ns, render, arg);
	}
	expire_clients(a, now_ns);
	/* Last, so an fd number freed above cannot be matched to a new
	 * client within this same round. */
	if (accept_ready)
		accept_clients(a, now_ns, render, arg);
}

int64_t admin_next_deadline(const admin_server *a)
{
	int64_t next = INT64_MAX;

	if (a->accept_paused_until > sched_clock_ns(CLOCK_MONOTONIC))
		next = a->accept_paused_until;
	for (int k = 0; k < ADMIN_MAX_CLIENTS; k++) {
		const admin_client *c = &a->clients[k];
		if (c->fd >= 0 && c->deadline_ns < next)
			next = c->deadline_ns;
	}
	return next;
}

void admin_close(admin_server *a)
{
	for (int k = 0; k < ADMIN_MAX_CLIENTS; k++)
		if (a->clients[k].fd >= 0)
			client_close(a, &a->clients[k]);
	if (a->listen_fd >= 0)
		close(a->listen_fd);
	a->listen_fd = -1;
}
