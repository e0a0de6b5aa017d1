/*
 * http — see http.h. Non-blocking socket + poll(2), so
 * that one deadline covers connect, send and receive, and a signal (q or
 * Ctrl-C in frametop) interrupts a slow endpoint at once.
 */
#include "tools/frametop/http.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "sched/sched.h"

#define READ_CHUNK 16384

/* 0 when fd is ready for events before the deadline. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	int64_t left = deadline - sched_clock_ns(CLOCK_MONOTONIC) / 1000000;
	if (left <= 0)
		return -ETIMEDOUT;
	struct pollfd p = {fd, events, 0};
	int n = poll(&p, 1, (int)left);
	if (n < 0)
		return -errno;
	return n == 0 ? -ETIMEDOUT : 0;
}

static int connect_by(const struct sockaddr *addr, socklen_t addr_len,
		      int64_t deadline, int *fd_out)
{
	int fd = socket(addr->sa_family,
			SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	*fd_out = fd;
	if (connect(fd, addr, addr_len) == 0)
		return 0;
	if (errno != EINPROGRESS)
		return -errno;
	int err = wait_fd(fd, POLLOUT, deadline);
	if (err < 0)
		return err;
	int so_error = 0;
	socklen_t len = sizeof(so_error);
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len) < 0)
		return -errno;
	return -so_error;
}

static int send_all(int fd, const char *buf, size_t len, int64_t deadline)
{
	while (len > 0) {
		/* MSG_NOSIGNAL: a closed peer is an error here, not SIGPIPE. */
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n < 0 && errno != EAGAIN)
			return -errno;
		if (n < 0) {
			int err = wait_fd(fd, POLLOUT, deadline);
			if (err < 0)
				return err;
			continue;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Room for one more read, never past the limit (+1 to notice excess). */
static int reserve(http_reply *r, size_t *cap)
{
	if (r->len + READ_CHUNK + 1 <= *cap)
		return 0;
	size_t want = *cap ? *cap * 2 : 4 * READ_CHUNK;
	if (want > HTTP_MAX_RESPONSE + READ_CHUNK + 1)
		want = HTTP_MAX_RESPONSE + READ_CHUNK + 1;
	char *data = realloc(r->data, want);
	if (!data)
		return -ENOMEM;
	r->data = data;
	*cap = want;
	return 0;
}

/* Until EOF: the server closes after the response (HTTP/1.0). */
static int read_all(int fd, http_reply *r, int64_t deadline)
{
	size_t cap = 0;
	for (;;) {
		int err = reserve(r, &cap);
		if (err < 0)
			return err;
		ssize_t n = read(fd, r->data + r->len, cap - r->len - 1);
		if (n == 0)
			break;
		if (n < 0 && errno != EAGAIN)
			return -errno;
		if (n < 0) {
			err = wait_fd(fd, POLLIN, deadline);
			if (err < 0)
				return err;
			continue;
		}
		r->len += (size_t)n;
		if (r->len > HTTP_MAX_RESPONSE)
			return -EFBIG;
	}
	r->data[r->len] = '\0';
	return 0;
}

static int exchange(int fd, const char *host, const char *path,
		    int64_t deadline, http_reply *r)
{
	char req[512];
	int n = snprintf(req, sizeof(req),
			 "GET %s HTTP/1.0\r\nHost: %s\r\n"
			 "User-Agent: frametop\r\nAccept: application/json\r\n"
			 "Connection: close\r\n\r\n",
			 path, host);
	if (n < 0 || (size_t)n >= sizeof(req))
		return -EINVAL;
	int err = send_all(fd, req, (size_t)n, deadline);
	if (err == 0)
		err = read_all(fd, r, deadline);
	if (err == 0)
		err = http_parse(r->data, r->len, &r->status, &r->body,
				 &r->body_len);
	if (err == 0 && r->status != 200)
		err = -EPROTO;
	return err;
}

int http_get(const struct sockaddr *addr, socklen_t addr_len,
	     const char *host, const char *path, int timeout_ms,
	     http_reply *reply)
{
	memset(reply, 0, sizeof(*reply));
	int64_t deadline = sched_clock_ns(CLOCK_MONOTONIC) / 1000000 + timeout_ms;
	int fd = -1;
	int err = connect_by(addr, addr_len, deadline, &fd);
	if (err == 0)
		err = exchange(fd, host, path, deadline, reply);
	if (fd >= 0)
		close(fd);
	return err;
}

void http_free(http_reply *reply)
{
	free(reply->data);
	memset(reply, 0, sizeof(*reply));
}

/* --- parsing -------------------------------------------------------------- */

/* "HTTP/1.x DDD ..." at the start of data. */
static int parse_status(const char *data, size_t len, int *status)
{
	if (len < 12 || memcmp(data, "HTTP/1.", 7) != 0 ||
	    (data[7] != '0' && data[7] != '1') || data[8] != ' ')
		return -EBADMSG;
	int code = 0;
	for (int i = 9; i < 12; i++) {
		if (data[i] < '0' || data[i] > '9')
			return -EBADMSG;
		code = code * 10 + (data[i] - '0');
	}
	if (len > 12 && data[12] != ' ' && data[12] != '\r' &&
	    data[12] != '\n')
		return -EBADMSG;
	*status = code;
	return 0;
}

/* Offset of the body: after the first empty line ("\r\n\r\n" or "\n\n"). */
static int find_body(const char *data, size_t len, size_t *head_len)
{
	for (size_t i = 0; i + 1 < len; i++) {
		if (data[i] != '\n')
			continue;
		if (data[i + 1] == '\n') {
			*head_len = i + 2;
			return 0;
		}
		if (data[i + 1] == '\r' && i + 2 < len && data[i + 2] == '\n') {
			*head_len = i + 3;
			return 0;
		}
	}
	return -EBADMSG;
}

/* Digits, blanks around them, then the line end; -2 when malformed. */
static long long header_number(const char *s, const char *end)
{
	while (s < end && (*s == ' ' || *s == '\t'))
		s++;
	long long v = 0;
	const char *digits = s;
	for (; s < end && *s >= '0' && *s <= '9'; s++) {
		if (v > (INT64_MAX - 9) / 10)
			return -2;
		v = v * 10 + (*s - '0');
	}
	if (s == digits)
		return -2;
	while (s < end && (*s == ' ' || *s == '\t'))
		s++;
	if (s == end || (*s != '\r' && *s != '\n'))
		return -2;
	return v;
}

/* The Content-Length header's value within head: -1 absent, -2 malformed. */
static long long content_length(const char *head, size_t len)
{
	static const char name[] = "\ncontent-length:";
	size_t n = sizeof(name) - 1;
	for (size_t i = 0; i + n <= len; i++)
		if (strncasecmp(head + i, name, n) == 0)
			return header_number(head + i + n, head + len);
	return -1;
}

int http_parse(const char *data, size_t len, int *status,
	       const char **body, size_t *body_len)
{
	size_t head_len;
	int err = parse_status(data, len, status);
	if (err == 0)
		err = find_body(data, len, &head_len);
	if (err < 0)
		return err;
	/* Read until EOF, so a Content-Length that disagrees means a cut or
	 * padded response. */
	long long want = content_length(data, head_len);
	if (want == -2 || (want >= 0 && (size_t)want != len - head_len))
		return -EBADMSG;
	*body = data + head_len;
	*body_len = len - head_len;
	return 0;
}

const char *http_strerror(int err, const http_reply *reply, char *buf,
			  size_t len)
{
	switch (err) {
	case -ECONNREFUSED:
		snprintf(buf, len, "connection refused (is frameproxy running "
			 "with --admin there?)");
		return buf;
	case -ETIMEDOUT:
		snprintf(buf, len, "no complete response within %d ms",
			 HTTP_TIMEOUT_MS);
		return buf;
	case -EPROTO:
		snprintf(buf, len, "HTTP status %d", reply ? reply->status : 0);
		return buf;
	case -EBADMSG:
		snprintf(buf, len, "not an HTTP/1.x response");
		return buf;
	case -EFBIG:
		snprintf(buf, len, "response larger than %u bytes",
			 HTTP_MAX_RESPONSE);
		return buf;
	default:
		snprintf(buf, len, "%s", strerror(-err));
		return buf;
	}
}
