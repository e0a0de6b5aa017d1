/* netaddr — "host:port" text to a socket address and back.
 *
 * Accepted forms:  127.0.0.1:9000   [::1]:9000   localhost:9000
 * Numeric addresses never touch the resolver. A name is resolved once, with
 * getaddrinfo, when it is parsed; when it has both kinds of address the
 * first IPv4 one is taken, because local services are most often bound to
 * 127.0.0.1 only, while glibc tends to list ::1 first for "localhost".
 * An IPv6 address must be in brackets so its colons are not read as the
 * port separator.
 */
#ifndef FRAMEPROXY_PROXY_NETADDR_H
#define FRAMEPROXY_PROXY_NETADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Long enough for "[ffff:...:255.255.255.255]:65535" and a NUL. */
#define NETADDR_STRLEN 64

struct netaddr {
	struct sockaddr_storage ss;
	socklen_t len;
};

enum netaddr_flags {
	NETADDR_NUMERIC = 1 << 0,    /* refuse names: no resolver call */
	NETADDR_ALLOW_PORT0 = 1 << 1 /* ":0" = pick a port (listen sockets) */
};

/* Errors (negative):
 *   -EINVAL  malformed (no port, bad port, unbalanced brackets, empty host)
 *   -ERANGE  port outside 1..65535 (0 allowed with NETADDR_ALLOW_PORT0)
 *   -ENOENT  the name did not resolve (or was refused: NETADDR_NUMERIC)
 */
int netaddr_parse(struct netaddr *out, const char *text, unsigned flags);

/* "1.2.3.4:80" or "[::1]:80"; "?" for families other than IPv4/IPv6.
 * Returns buf so it can be used inline in a log call. */
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
