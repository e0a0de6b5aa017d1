/* The admin endpoint: request parsing and a small poll(2) server
 * (see shard/admin.h). */
#include "shard/admin.h"
#include "sched/sched.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/un.h>
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

static bool has_prefix(const char *s, size_t n, const char *lit)
{
	return n >= strlen(lit) && memcmp(s, lit, strlen(lit)) == 0;
}

/* /servers/LISTENER/SERVER: two non-empty parts, no more. */
static bool is_server_path(const char *p, size_t n)
{
	if (!has_prefix(p, n, "/servers/"))
		return false;
	const char *rest = p + 9, *end = p + n;
	const char *slash = memchr(rest, '/', (size_t)(end - rest));
	return slash && slash > rest && slash + 1 < end &&
	       !memchr(slash + 1, '/', (size_t)(end - slash - 1));
}

static admin_route route_path(const char *target, size_t n, bool get,
			      bool post)
{
	const char *q = memchr(target, '?', n);
	size_t path_len = q ? (size_t)(q - target) : n;
	admin_route route = ADMIN_NOT_FOUND;
	bool writes = false;

	if (equals(target, path_len, "/metrics"))
		route = ADMIN_METRICS;
	else if (equals(target, path_len, "/stats"))
		route = ADMIN_STATS;
	else if (equals(target, path_len, "/servers"))
		route = ADMIN_SERVERS;
	else if (is_server_path(target, path_len))
		route = ADMIN_SERVER_SET, writes = true;
	else if (equals(target, path_len, "/reload"))
		route = ADMIN_RELOAD, writes = true;
	else if (equals(target, path_len, "/upgrade"))
		route = ADMIN_UPGRADE, writes = true;
	if (route == ADMIN_NOT_FOUND)
		return get ? ADMIN_NOT_FOUND : ADMIN_BAD_METHOD;
	if (writes ? !post : !get)
		return ADMIN_BAD_METHOD;
	return route;
}

bool admin_route_writes(admin_route route)
{
	return route == ADMIN_SERVER_SET || route == ADMIN_RELOAD ||
	       route == ADMIN_UPGRADE;
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

	bool get = equals(s, method, "GET") || equals(s, method, "HEAD");
	bool post = equals(s, method, "POST");
	return route_path(target, target_len, get, post);
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

static const char *skip_space(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	return p;
}

/* Content-Length: digits only, one value; -1 when malformed. */
static long parse_length(const char *v, const char *end)
{
	long n = 0;

	if (v == end)
		return -1;
	for (; v < end; v++) {
		if (*v < '0' || *v > '9')
			return -1;
		n = n * 10 + (*v - '0');
		if (n > ADMIN_MAX_BODY)
			return ADMIN_MAX_BODY + 1L;
	}
	return n;
}

/* One header line [p, end) without its line end: what admin_parse needs of
 * it. Returns false for a line that makes the request bad. */
static bool header_line(const char *p, const char *end, admin_request *req,
			long *length)
{
	const char *colon = memchr(p, ':', (size_t)(end - p));
	if (!colon)
		return false;
	size_t name = (size_t)(colon - p);
	const char *v = skip_space(colon + 1, end), *vend = end;
	while (vend > v && (vend[-1] == ' ' || vend[-1] == '\t'))
		vend--;

	if (name == 14 && strncasecmp(p, "Content-Length", 14) == 0) {
		long n = parse_length(v, vend);
		if (n < 0 || (*length >= 0 && *length != n))
			return false;
		*length = n;
	} else if (name == 17 && strncasecmp(p, "Transfer-Encoding", 17) == 0) {
		return false; /* no chunked bodies: a length or nothing */
	} else if (name == 13 && strncasecmp(p, "Authorization", 13) == 0) {
		if (vend - v > 7 && strncasecmp(v, "Bearer ", 7) == 0) {
			const char *t = skip_space(v + 7, vend);
			req->token = t;
			req->token_len = (size_t)(vend - t);
		}
	}
	return true;
}

static void request_target(const char *buf, size_t line, admin_request *req)
{
	const char *sp = memchr(buf, ' ', line);
	if (!sp)
		return;
	const char *t = sp + 1, *end = buf + line;
	const char *sp2 = memchr(t, ' ', (size_t)(end - t));
	const char *q = memchr(t, '?', (size_t)((sp2 ? sp2 : end) - t));
	req->path = t;
	req->path_len = (size_t)((q ? q : sp2 ? sp2 : end) - t);
	req->head = (size_t)(sp - buf) == 4 && memcmp(buf, "HEAD", 4) == 0;
}

admin_route admin_parse(const char *buf, size_t len, admin_request *req)
{
	size_t hdr = 0;

	*req = (admin_request){ .route = admin_parse_request(buf, len, &hdr) };
	if (req->route == ADMIN_INCOMPLETE || req->route == ADMIN_BAD_REQUEST)
		return req->route;

	const char *p = buf, *end = buf + hdr;
	const char *nl = memchr(p, '\n', (size_t)(end - p));
	size_t line = (size_t)(nl - p);
	request_target(buf, line > 0 && buf[line - 1] == '\r' ? line - 1 : line,
		       req);
	long length = -1;
	for (p = nl + 1; p < end; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(end - p));
		const char *e = nl > p && nl[-1] == '\r' ? nl - 1 : nl;
		if (e == p)
			break; /* the blank line */
		if (!header_line(p, e, req, &length))
			return req->route = ADMIN_BAD_REQUEST;
	}
	if (length > ADMIN_MAX_BODY)
		return req->route = ADMIN_TOO_LARGE;
	size_t body = length > 0 ? (size_t)length : 0;
	if (len - hdr < body)
		return req->route = ADMIN_INCOMPLETE;
	req->body = buf + hdr;
	req->body_len = body;
	req->length = hdr + body;
	return req->route;
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
	a->local = false;
	a->token_len = 0;
	memset(a->token, 0, sizeof(a->token));
	for (int k = 0; k < ADMIN_MAX_CLIENTS; k++)
		client_init(&a->clients[k]);
}

/* A Unix socket's path: a socket left by an earlier run is replaced;
 * anything else there is not ours to remove. */
static int unix_prepare(const struct sockaddr *addr)
{
	const struct sockaddr_un *un = (const struct sockaddr_un *)addr;
	struct stat st;

	if (lstat(un->sun_path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	return unlink(un->sun_path) < 0 ? -errno : 0;
}

static int bind_listen(int fd, const struct sockaddr *addr, socklen_t len,
		       unsigned unix_mode)
{
	if (addr->sa_family != AF_UNIX)
		return bind(fd, addr, len) < 0 || listen(fd, ADMIN_BACKLOG) < 0 ?
		       -errno : 0;
	const char *path = ((const struct sockaddr_un *)addr)->sun_path;
	int rc = unix_prepare(addr);
	if (rc < 0)
		return rc;
	/* Never reachable with wider rights than asked, not even briefly. */
	mode_t old = umask(0777);
	rc = bind(fd, addr, len) < 0 ? -errno : 0;
	umask(old);
	if (rc == 0 && chmod(path, unix_mode & 0777) < 0)
		rc = -errno;
	if (rc == 0 && listen(fd, ADMIN_BACKLOG) < 0)
		rc = -errno;
	return rc;
}

int admin_open(admin_server *a, const struct sockaddr *addr, socklen_t len,
	       unsigned unix_mode)
{
	admin_init(a);
	int fd = socket(addr->sa_family,
			SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;

	int one = 1;
	int rc = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ?
		 -errno : bind_listen(fd, addr, len, unix_mode);
	if (rc < 0) {
		close(fd);
		return rc;
	}
	a->listen_fd = fd;
	a->local = addr->sa_family == AF_UNIX;
	return 0;
}

int admin_adopt(admin_server *a, int fd)
{
	int listening = 0;
	socklen_t len = sizeof(listening);

	admin_init(a);
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0)
		return -errno;
	if (!listening)
		return -EINVAL;
	struct sockaddr_storage self;
	socklen_t self_len = sizeof(self);
	if (getsockname(fd, (struct sockaddr *)&self, &self_len) < 0)
		return -errno;
	a->local = self.ss_family == AF_UNIX;
	a->listen_fd = fd;
	return 0;
}

int admin_set_token(admin_server *a, const char *token)
{
	size_t n = token ? strlen(token) : 0;

	a->token_len = 0;
	if (n >= sizeof(a->token))
		return -ENAMETOOLONG;
	memset(a->token, 0, sizeof(a->token));
	memcpy(a->token, token ? token : "", n);
	a->token_len = n;
	return 0;
}

/* Constant time in what is compared: every byte of the stored token is
 * looked at whatever the given one is, so timing tells nothing of where a
 * guess went wrong. */
static bool token_matches(const admin_server *a, const char *t, size_t n)
{
	unsigned diff = n != a->token_len;

	for (size_t k = 0; k < a->token_len; k++)
		diff |= (unsigned)(uint8_t)a->token[k] ^
			(unsigned)(uint8_t)(k < n ? t[k] : 0);
	return a->token_len > 0 && t && diff == 0;
}

/* NULL when the request may write, else why not. */
static const char *write_refusal(const admin_server *a, const admin_request *r)
{
	if (a->local)
		return NULL;
	if (a->token_len == 0)
		return "forbidden: writes need the admin Unix socket "
		       "(admin = unix:PATH) or admin_token\n";
	if (!r->token)
		return "forbidden: no Authorization: Bearer token\n";
	if (!token_matches(a, r->token, r->token_len))
		return "forbidden: wrong token\n";
	return NULL;
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

static const char *status_reason(int code)
{
	switch (code) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 413: return "Content Too Large";
	case 503: return "Service Unavailable";
	}
	return code >= 500 ? "Internal Server Error" : "Bad Request";
}

static admin_status route_status(admin_route route)
{
	switch (route) {
	case ADMIN_METRICS:
	case ADMIN_STATS:
	case ADMIN_SERVERS:
	case ADMIN_SERVER_SET:
	case ADMIN_RELOAD:
	case ADMIN_UPGRADE:
		return (admin_status){ 200, "OK", NULL };
	case ADMIN_NOT_FOUND:
		return (admin_status){ 404, "Not Found", "not found\n" };
	case ADMIN_BAD_METHOD:
		return (admin_status){ 405, "Method Not Allowed",
				       "method not allowed\n" };
	case ADMIN_TOO_LARGE:
		return (admin_status){ 413, "Content Too Large",
				       "request body too large\n" };
	case ADMIN_INCOMPLETE:
	case ADMIN_BAD_REQUEST:
		break;
	}
	return (admin_status){ 400, "Bad Request", "bad request\n" };
}

static const char *const admin_text_type = "text/plain; charset=utf-8";

/* 200 with the rendered body, the renderer's own error status with its
 * text, or 500 when rendering failed. */
static admin_status render_body(const admin_request *req, strbuf *body,
				const char **type, admin_render_fn render,
				void *arg)
{
	*type = req->route == ADMIN_METRICS ?
		"text/plain; version=0.0.4; charset=utf-8" :
		"application/json";
	int rc = render ? render(arg, req, body, type) : -ENOSYS;
	if (rc == 0)
		return route_status(req->route);
	if (rc >= 400 && rc <= 599) {
		*type = admin_text_type;
		return (admin_status){ rc, status_reason(rc), NULL };
	}

	strbuf_reset(body);
	*type = admin_text_type;
	return (admin_status){ 500, "Internal Server Error",
			       "internal error\n" };
}

static const char *allow_header(const admin_request *req)
{
	bool writes = req->path &&
		      (is_server_path(req->path, req->path_len) ||
		       equals(req->path, req->path_len, "/reload") ||
		       equals(req->path, req->path_len, "/upgrade"));
	return writes ? "Allow: POST\r\n" : "Allow: GET, HEAD\r\n";
}

static int build_response(strbuf *out, admin_status st, const char *type,
			  const strbuf *body, const admin_request *req)
{
	int err = strbuf_printf(out, "HTTP/1.1 %d %s\r\n"
				"Content-Type: %s\r\n"
				"Content-Length: %zu\r\n"
				"Connection: close\r\n"
				"%s\r\n", st.code, st.reason, type, body->len,
				st.code == 405 ? allow_header(req) : "");
	if (!err && !req->head && body->len)
		err = strbuf_append(out, body->data, body->len);
	return err;
}

static void respond(admin_server *a, admin_client *c, const admin_request *req,
		    int64_t now_ns, admin_render_fn render, void *arg)
{
	const char *type = admin_text_type;
	admin_status st = route_status(req->route);
	const char *refusal = admin_route_writes(req->route) ?
			      write_refusal(a, req) : NULL;
	strbuf body;

	strbuf_init(&body);
	if (refusal)
		st = (admin_status){ 403, "Forbidden", refusal };
	else if (st.code == 200)
		st = render_body(req, &body, &type, render, arg);
	if (st.body)
		strbuf_puts(&body, st.body); /* on ENOMEM: an empty body */
	int err = build_response(&c->out, st, type, &body, req);
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
	char buf[ADMIN_MAX_REQUEST + ADMIN_MAX_BODY];
	/* Never more than a full header and body: past that the request is
	 * refused. */
	size_t room = sizeof(buf) - c->in.len;
	ssize_t r = recv(c->fd, buf, room ? room : 1, 0);

	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (r <= 0 || strbuf_append(&c->in, buf, (size_t)r) < 0) {
		client_close(a, c);
		return;
	}
	admin_request req;
	if (admin_parse(c->in.data, c->in.len, &req) == ADMIN_INCOMPLETE &&
	    c->in.len >= sizeof(buf))
		req.route = ADMIN_TOO_LARGE; /* cannot happen: the body is bounded */
	if (req.route != ADMIN_INCOMPLETE)
		respond(a, c, &req, now_ns, render, arg);
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
