#include "proxy/netaddr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Host part is at most a DNS name (253) or a bracketed IPv6 literal. */
#define HOST_MAX 256

static int parse_port(const char *p, unsigned flags, in_port_t *port)
{
	char *end;
	unsigned long v;

	if (*p < '0' || *p > '9')
		return -EINVAL;
	errno = 0;
	v = strtoul(p, &end, 10);
	if (*end != '\0')
		return -EINVAL;
	if (errno == ERANGE || v > 65535)
		return -ERANGE;
	if (v == 0 && !(flags & NETADDR_ALLOW_PORT0))
		return -ERANGE;
	*port = htons((in_port_t)v);
	return 0;
}

/* Splits "host:port" / "[v6]:port" into host (brackets removed) and the
 * port text. */
static int split_host_port(const char *text, char *host, const char **port)
{
	const char *colon;
	size_t hlen;

	if (text[0] == '[') {
		const char *close = strchr(text, ']');
		if (!close || close[1] != ':')
			return -EINVAL;
		hlen = (size_t)(close - text - 1);
		text++;
		colon = close + 1;
	} else {
		colon = strrchr(text, ':');
		if (!colon)
			return -EINVAL;
		hlen = (size_t)(colon - text);
		/* An unbracketed IPv6 literal would be ambiguous. */
		if (memchr(text, ':', hlen))
			return -EINVAL;
	}
	if (hlen == 0 || hlen >= HOST_MAX)
		return -EINVAL;
	memcpy(host, text, hlen);
	host[hlen] = '\0';
	*port = colon + 1;
	return 0;
}

static int try_numeric(struct netaddr *out, const char *host, in_port_t port)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&out->ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->ss;

	memset(&out->ss, 0, sizeof(out->ss));
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = port;
		out->len = sizeof(*sin);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = port;
		out->len = sizeof(*sin6);
		return 0;
	}
	return -ENOENT;
}

static const struct addrinfo *prefer_ipv4(const struct addrinfo *list)
{
	for (const struct addrinfo *ai = list; ai; ai = ai->ai_next) {
		if (ai->ai_family == AF_INET)
			return ai;
	}
	for (const struct addrinfo *ai = list; ai; ai = ai->ai_next) {
		if (ai->ai_family == AF_INET6)
			return ai;
	}
	return NULL;
}

static int resolve(struct netaddr *out, const char *host, in_port_t port)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC,
				  .ai_socktype = SOCK_STREAM };
	struct addrinfo *list = NULL;

	if (getaddrinfo(host, NULL, &hints, &list) != 0)
		return -ENOENT;
	const struct addrinfo *ai = prefer_ipv4(list);
	if (!ai || ai->ai_addrlen > sizeof(out->ss)) {
		freeaddrinfo(list);
		return -ENOENT;
	}
	memset(&out->ss, 0, sizeof(out->ss));
	memcpy(&out->ss, ai->ai_addr, ai->ai_addrlen);
	out->len = (socklen_t)ai->ai_addrlen;
	if (ai->ai_family == AF_INET)
		((struct sockaddr_in *)&out->ss)->sin_port = port;
	else
		((struct sockaddr_in6 *)&out->ss)->sin6_port = port;
	freeaddrinfo(list);
	return 0;
}

int netaddr_parse(struct netaddr *out, const char *text, unsigned flags)
{
	char host[HOST_MAX];
	const char *port_text;
	in_port_t port;
	int rc;

	rc = split_host_port(text, host, &port_text);
	if (rc < 0)
		return rc;
	rc = parse_port(port_text, flags, &port);
	if (rc < 0)
		return rc;
	if (try_numeric(out, host, port) == 0)
		return 0;
	/* A bracketed host must be an IPv6 literal, never a name. */
	if (text[0] == '[' || (flags & NETADDR_NUMERIC))
		return text[0] == '[' ? -EINVAL : -ENOENT;
	return resolve(out, host, port);
}

char *netaddr_format_ip(const struct sockaddr *sa, char *buf, size_t len)
{
	const void *addr = NULL;

	if (sa->sa_family == AF_INET)
		addr = &((const struct sockaddr_in *)sa)->sin_addr;
	else if (sa->sa_family == AF_INET6)
		addr = &((const struct sockaddr_in6 *)sa)->sin6_addr;
	if (!addr || !inet_ntop(sa->sa_family, addr, buf, (socklen_t)len))
		snprintf(buf, len, "?");
	return buf;
}

char *netaddr_format(const struct sockaddr *sa, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN];

	if (sa->sa_family != AF_INET && sa->sa_family != AF_INET6) {
		snprintf(buf, len, "?");
		return buf;
	}
	netaddr_format_ip(sa, ip, sizeof(ip));
	if (sa->sa_family == AF_INET6)
		snprintf(buf, len, "[%s]:%d", ip, netaddr_port(sa));
	else
		snprintf(buf, len, "%s:%d", ip, netaddr_port(sa));
	return buf;
}

int netaddr_port(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)sa)->sin_port);
	if (sa->sa_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
	return -1;
}

bool netaddr_equal(const struct sockaddr *a, const struct sockaddr *b)
{
	if (a->sa_family != b->sa_family)
		return false;
	if (a->sa_family == AF_INET) {
		const struct sockaddr_in *x = (const struct sockaddr_in *)a;
		const struct sockaddr_in *y = (const struct sockaddr_in *)b;
		return x->sin_port == y->sin_port &&
		       x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	if (a->sa_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a;
		const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)b;
		return x->sin6_port == y->sin6_port &&
		       x->sin6_scope_id == y->sin6_scope_id &&
		       memcmp(&x->sin6_addr, &y->sin6_addr, 16) == 0;
	}
	return false;
}

size_t netaddr_ip_bytes(const struct sockaddr *sa, unsigned char out[16])
{
	if (sa->sa_family == AF_INET) {
		memcpy(out, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		return 4;
	}
	if (sa->sa_family != AF_INET6)
		return 0;
	const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
	if (IN6_IS_ADDR_V4MAPPED(a)) {
		memcpy(out, &a->s6_addr[12], 4);
		return 4;
	}
	memcpy(out, a->s6_addr, 16);
	return 16;
}
