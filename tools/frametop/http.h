/*
 * http — the smallest HTTP/1.0 client that frametop needs: one GET,
 * Connection: close, the whole response read until EOF within a time limit
 * and a size limit. Prefix http_.
 */
#ifndef FRAMEPROXY_TOOLS_FRAMETOP_HTTP_H
#define FRAMEPROXY_TOOLS_FRAMETOP_HTTP_H

#include <stddef.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HTTP_TIMEOUT_MS 2000
#define HTTP_MAX_RESPONSE (4u << 20)     /* head + body */

typedef struct http_reply {
	char *data;           /* the whole response, NUL-terminated */
	size_t len;
	int status;           /* after http_get: the status code */
	const char *body;     /* into data */
	size_t body_len;
} http_reply;

/*
 * GET `path` from addr within timeout_ms (connect included). 0 with a 200
 * reply; -EPROTO with another status (reply->status says which);
 * -EBADMSG when the response is not HTTP; -EFBIG over
 * HTTP_MAX_RESPONSE; -ETIMEDOUT; -EINTR when a signal arrived (the
 * caller decides whether to stop); -ENOMEM; or connect's -errno.
 * http_free the reply in every case.
 */
int http_get(const struct sockaddr *addr, socklen_t addr_len,
	     const char *host, const char *path, int timeout_ms,
	     http_reply *reply);
void http_free(http_reply *reply);

/*
 * Pure: split a complete response into status and body. 0, or -EBADMSG
 * when the status line or the header end is missing, or the body is
 * shorter or longer than a Content-Length header says.
 */
int http_parse(const char *data, size_t len, int *status,
	       const char **body, size_t *body_len);

/* One short phrase for an error of http_get, written into buf. */
const char *http_strerror(int err, const http_reply *reply, char *buf,
			  size_t len);

#ifdef __cplusplus
}
#endif

#endif
