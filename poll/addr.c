/*
 * Addresses: "HOST:PORT" text to a socket address and back (see poll.h).
 * Plain functions on plain sockaddrs: no pollDesc, no poller, so a
 * supervisor, a config loader and the tools use them as they are.
 */
#include "poll/poll.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Host part is at most a DNS name (253) or a bracketed IPv6 literal. */
#define ADDR_HOST_MAX 256

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
	if (v == 0 && !(flags & POLL_ADDR_PORT0))
		return -ERANGE;
	*port = htons((in_port_t)v);
	return 0;
}

/* Splits "host:port" / "[v6]:port" into host (brackets removed) and the
 * port text. The host is empty only for ":port" with POLL_ADDR_ANY_HOST. */
static int split_host_port(const char *text, unsigned flags, char *host,
			   const char **port)
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
		if (hlen == 0)
			return -EINVAL;
	} else {
		colon = strrchr(text, ':');
		if (!colon)
			return -EINVAL;
		hlen = (size_t)(colon - text);
		/* An unbracketed IPv6 literal would be ambiguous. */
		if (memchr(text, ':', hlen))
			return -EINVAL;
		if (hlen == 0 && !(flags & POLL_ADDR_ANY_HOST))
			return -EINVAL;
	}
	if (hlen >= ADDR_HOST_MAX)
		return -EINVAL;
	memcpy(host, text, hlen);
	host[hlen] = '\0';
	*port = colon + 1;
	return 0;
}

static void set_port(struct sockaddr_storage *ss, in_port_t port)
{
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)ss)->sin_port = port;
	else
		((struct sockaddr_in6 *)ss)->sin6_port = port;
}

static int try_numeric(const char *host, struct sockaddr_storage *out,
		       socklen_t *len)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)out;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)out;

	memset(out, 0, sizeof(*out));
	if (host[0] == '\0' || inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET; /* empty: INADDR_ANY */
		*len = sizeof(*sin);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		*len = sizeof(*sin6);
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

static int resolve(const char *host, struct sockaddr_storage *out,
		   socklen_t *len)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC,
				  .ai_socktype = SOCK_STREAM };
	struct addrinfo *list = NULL;

	if (getaddrinfo(host, NULL, &hints, &list) != 0)
		return -ENOENT;
	const struct addrinfo *ai = prefer_ipv4(list);
	if (!ai || ai->ai_addrlen > sizeof(*out)) {
		freeaddrinfo(list);
		return -ENOENT;
	}
	memset(out, 0, sizeof(*out));
	memcpy(out, ai->ai_addr, ai->ai_addrlen);
	*len = (socklen_t)ai->ai_addrlen;
	freeaddrinfo(list);
	return 0;
}

int poll_addr_parse(const char *text, unsigned flags,
		    struct sockaddr_storage *out, socklen_t *len)
{
	char host[ADDR_HOST_MAX];
	const char *port_text;
	in_port_t port;
	int rc;

	if (!text)
		return -EINVAL;
	rc = split_host_port(text, flags, host, &port_text);
	if (rc < 0)
		return rc;
	rc = parse_port(port_text, flags, &port);
	if (rc < 0)
		return rc;
	if (try_numeric(host, out, len) < 0) {
		/* A bracketed host must be an IPv6 literal, never a name. */
		if (text[0] == '[')
			return -EINVAL;
		if (flags & POLL_ADDR_NUMERIC)
			return -ENOENT;
		if ((rc = resolve(host, out, len)) < 0)
			return rc;
	}
	set_port(out, port);
	return 0;
}

char *poll_addr_format(const struct sockaddr *addr, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN] = "?";

	if (addr->sa_family == AF_INET) {
		const struct sockaddr_in *a4 = (const struct sockaddr_in *)addr;
		inet_ntop(AF_INET, &a4->sin_addr, ip, sizeof(ip));
		snprintf(buf, len, "%s:%u", ip, ntohs(a4->sin_port));
	} else if (addr->sa_family == AF_INET6) {
		const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)addr;
		inet_ntop(AF_INET6, &a6->sin6_addr, ip, sizeof(ip));
		snprintf(buf, len, "[%s]:%u", ip, ntohs(a6->sin6_port));
	} else {
		snprintf(buf, len, "?");
	}
	return buf;
}
