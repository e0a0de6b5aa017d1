/*
 * proxy_header — the PROXY protocol header (version 1 text and version 2
 * binary, as HAProxy's proxy-protocol.txt defines them) that a load
 * balancer puts in front of a connection to name the client it accepted.
 * Pure logic: a parser fed bytes as they arrive, and writers.
 *
 * The parser is incremental and never needs to look past the header:
 * proxy_header_need() says how many more bytes certainly belong to it (a
 * lower bound for version 1, whose end is a CRLF somewhere, the exact rest
 * for version 2), so a reader that asks the socket for no more than that
 * leaves the first frame's bytes in the socket for whoever reads next.
 * proxy_header_feed() takes any number of bytes and says how many it used:
 * all of them while more are needed, the header's own when it is done.
 *
 * Accepted: v1 TCP4, TCP6 and UNKNOWN lines of at most 107 bytes ending in
 * CRLF; v2 PROXY over AF_INET / AF_INET6 STREAM, PROXY with AF_UNSPEC, and
 * LOCAL with any family (the two last carry no client: the connection's own
 * addresses stand). v2 TLVs are walked (each must fit the header) and
 * skipped; a v2 header longer than PROXY_HEADER_V2_MAX is refused.
 */
#ifndef FRAMEPROXY_PROXY_PROXY_HEADER_H
#define FRAMEPROXY_PROXY_PROXY_HEADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PROXY_HEADER_V1_MAX 107   /* bytes, CRLF included (the spec's) */
#define PROXY_HEADER_V2_MAX 4096  /* bytes, the 16-byte fixed part included */
#define PROXY_HEADER_V2_FIXED 16
#define PROXY_HEADER_WRITE_MAX 108 /* room enough for either writer */

/* What a listener accepts (accept_proxy) or sends (send_proxy; no ANY). */
typedef enum proxy_header_mode {
	PROXY_HEADER_OFF = 0,
	PROXY_HEADER_V1,
	PROXY_HEADER_V2,
	PROXY_HEADER_ANY, /* v1 or v2, told apart by the first byte */
} proxy_header_mode;

/* "off", "v1", "v2", "any": 0 or -EINVAL. */
int proxy_header_mode_parse(const char *text, proxy_header_mode *out);
const char *proxy_header_mode_name(proxy_header_mode mode);

typedef enum proxy_header_status {
	PROXY_HEADER_MORE = 0,       /* feed more bytes */
	PROXY_HEADER_DONE,           /* the header is complete */
	PROXY_HEADER_ERR_SIGNATURE,  /* not a header this mode accepts */
	PROXY_HEADER_ERR_VERSION,    /* v2 with a version other than 2 */
	PROXY_HEADER_ERR_COMMAND,    /* v2 command neither LOCAL nor PROXY */
	PROXY_HEADER_ERR_FAMILY,     /* protocol or family not supported */
	PROXY_HEADER_ERR_ADDRESS,    /* v1 field that is no address or port */
	PROXY_HEADER_ERR_SYNTAX,     /* v1 line badly formed */
	PROXY_HEADER_ERR_TOO_LONG,   /* past PROXY_HEADER_V1_MAX or _V2_MAX */
	PROXY_HEADER_ERR_LENGTH,     /* v2 length too short for the family */
	PROXY_HEADER_ERR_TLV,        /* a v2 TLV running past the header */
	PROXY_HEADER_ERR_TRUNCATED,  /* the caller saw EOF before the end */
} proxy_header_status;

/* "more", "done", "signature", ..., for log lines. */
const char *proxy_header_status_name(proxy_header_status status);

/* What a complete header said. */
typedef struct proxy_header_info {
	uint8_t version;       /* 1 or 2 */
	bool local;            /* v2 LOCAL */
	bool has_addr;         /* false: LOCAL, UNKNOWN, UNSPEC (use the
				* connection's own addresses) */
	struct sockaddr_storage src, dst;
	socklen_t addr_len;    /* of src and dst when has_addr */
} proxy_header_info;

typedef struct proxy_header_parser {
	proxy_header_mode mode;
	proxy_header_status status;
	uint8_t version;       /* 0 until the first byte says */
	uint32_t have;         /* bytes taken so far */
	uint32_t total;        /* v2: 16 + its length, once known */
	uint32_t addr_len;     /* v2: the address block kept in buf */
	/* v1: the line; v2: the fixed part and the address block */
	uint8_t buf[PROXY_HEADER_V2_FIXED + 36 > PROXY_HEADER_V1_MAX + 1
		    ? PROXY_HEADER_V2_FIXED + 36 : PROXY_HEADER_V1_MAX + 1];
	uint8_t tlv_head[3];   /* v2: the TLV header being read */
	uint8_t tlv_head_have;
	uint32_t tlv_skip;     /* v2: value bytes of the current TLV left */
	proxy_header_info info;
} proxy_header_parser;

/* mode is V1, V2 or ANY. */
void proxy_header_init(proxy_header_parser *p, proxy_header_mode mode);

/*
 * Take up to len bytes. *consumed says how many were used: all of them
 * with PROXY_HEADER_MORE, the header's last ones with PROXY_HEADER_DONE
 * (the rest is the connection's data), and 0 once the parser has finished
 * or failed (its status is returned again). Errors are final.
 */
proxy_header_status proxy_header_feed(proxy_header_parser *p,
				      const void *data, size_t len,
				      size_t *consumed);

/*
 * Bytes that certainly still belong to the header: >= 1 while the status
 * is PROXY_HEADER_MORE, 0 after. Reading at most this many never takes a
 * byte past the header's end (if the header is well formed).
 */
uint32_t proxy_header_need(const proxy_header_parser *p);

/* The result once proxy_header_feed returned PROXY_HEADER_DONE. */
const proxy_header_info *proxy_header_result(const proxy_header_parser *p);

/*
 * Write a header naming src (the client) and dst (the address it reached)
 * into buf: a v1 line or a v2 PROXY header without TLVs. IPv4-mapped IPv6
 * addresses are written as IPv4; a mix of IPv4 and IPv6 is written as IPv6
 * (the IPv4 one mapped); other families give v1 UNKNOWN or v2 AF_UNSPEC.
 * Returns the length (<= PROXY_HEADER_WRITE_MAX), -ENOSPC when len is too
 * small, -EINVAL for a mode that is not V1 or V2.
 */
int proxy_header_write(proxy_header_mode version, const struct sockaddr *src,
		       const struct sockaddr *dst, void *buf, size_t len);

/*
 * The header that names no client, for connections of the proxy's own
 * (health checks): v1 "PROXY UNKNOWN\r\n", v2 LOCAL. NULL for other modes.
 */
const uint8_t *proxy_header_local(proxy_header_mode version, uint32_t *len);

#ifdef __cplusplus
}
#endif

#endif
