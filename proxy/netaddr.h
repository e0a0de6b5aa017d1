/* netaddr — socket addresses as the proxy uses them: "host:port" text (the
 * netpoller's poll_addr_parse / poll_addr_format, see poll/poll.h, over a
 * struct that keeps the length with the address), equality, and the IP
 * bytes that ACLs, hashing and per-client limits compare.
 */
#ifndef FRAMEPROXY_PROXY_NETADDR_H
#define FRAMEPROXY_PROXY_NETADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "poll/poll.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NETADDR_STRLEN POLL_ADDR_STRLEN

typedef struct netaddr {
	struct sockaddr_storage ss;
	socklen_t len;
} netaddr;

typedef enum netaddr_flags {
	NETADDR_NUMERIC = POLL_ADDR_NUMERIC,
	NETADDR_ALLOW_PORT0 = POLL_ADDR_PORT0,
} netaddr_flags;

/* poll_addr_parse into `out`: 0, -EINVAL, -ERANGE or -ENOENT. */
int netaddr_parse(netaddr *out, const char *text, unsigned flags);

/* poll_addr_format: "1.2.3.4:80", "[::1]:80" or "?"; returns buf. */
char *netaddr_format(const struct sockaddr *sa, char *buf, size_t len);

/* Address only, no port and no brackets. */
char *netaddr_format_ip(const struct sockaddr *sa, char *buf, size_t len);

int netaddr_port(const struct sockaddr *sa);

/* Same family, address and port (IPv6 scope id included). */
bool netaddr_equal(const struct sockaddr *a, const struct sockaddr *b);

/* The 4 (IPv4, or IPv4-mapped IPv6) or 16 address bytes of sa in out;
 * returns how many, or 0 for other families. Lets ACLs, hashing and
 * per-client limits treat ::ffff:1.2.3.4 and 1.2.3.4 as one client. */
size_t netaddr_ip_bytes(const struct sockaddr *sa, unsigned char out[16]);

#ifdef __cplusplus
}
#endif

#endif
