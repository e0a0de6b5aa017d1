#include "tools/framebench_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int fbu_parse_u64(const char *text, uint64_t max, uint64_t *out)
{
	if (!text || *text < '0' || *text > '9')
		return -EINVAL;
	errno = 0;
	char *end;
	unsigned long long v = strtoull(text, &end, 10);
	if (errno || *end || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

struct unit {
	const char *name;
	double factor;
};

static int scaled(const char *text, const struct unit *units, double *out)
{
	if (!text || !((*text >= '0' && *text <= '9') || *text == '.'))
		return -EINVAL;
	char *end;
	errno = 0;
	double v = strtod(text, &end);
	if (errno || !isfinite(v) || v < 0)
		return -EINVAL;
	for (const struct unit *u = units; u->name; u++) {
		if (strcasecmp(end, u->name) == 0) {
			*out = v * u->factor;
			return 0;
		}
	}
	return -EINVAL;
}

int fbu_parse_duration(const char *text, int64_t *ns_out)
{
	static const struct unit units[] = {
		{"", 1e9}, {"s", 1e9}, {"ms", 1e6}, {"us", 1e3},
		{"ns", 1}, {"m", 60e9}, {"min", 60e9}, {"h", 3600e9},
		{NULL, 0},
	};
	double ns;
	int rc = scaled(text, units, &ns);
	if (rc < 0)
		return rc;
	/* A year is plenty and keeps every deadline sum inside int64. */
	if (ns > 365.0 * 86400e9)
		return -ERANGE;
	*ns_out = (int64_t)ns;
	return 0;
}

int fbu_parse_size(const char *text, uint64_t *out)
{
	static const struct unit units[] = {
		{"", 1}, {"b", 1}, {"k", 1024.0}, {"kib", 1024.0},
		{"m", 1048576.0}, {"mib", 1048576.0},
		{"g", 1073741824.0}, {"gib", 1073741824.0},
		{NULL, 0},
	};
	double v;
	int rc = scaled(text, units, &v);
	if (rc < 0)
		return rc;
	if (v > 1e18 || v != floor(v))
		return -ERANGE;
	*out = (uint64_t)v;
	return 0;
}

static int split_host_port(const char *text, char *host, size_t host_len,
			   const char **port)
{
	const char *colon;
	const char *host_start = text;
	size_t n;
	if (*text == '[') {
		const char *close = strchr(text, ']');
		if (!close || close[1] != ':')
			return -EINVAL;
		host_start = text + 1;
		n = (size_t)(close - host_start);
		colon = close + 1;
	} else {
		colon = strrchr(text, ':');
		if (!colon)
			return -EINVAL;
		n = (size_t)(colon - text);
	}
	if (n >= host_len || colon[1] == '\0')
		return -EINVAL;
	memcpy(host, host_start, n);
	host[n] = '\0';
	*port = colon + 1;
	return 0;
}

int fbu_parse_addr(const char *text, struct sockaddr_storage *out,
		   socklen_t *len_out)
{
	char host[256];
	const char *port;
	if (!text || split_host_port(text, host, sizeof(host), &port) < 0)
		return -EINVAL;
	uint64_t port_num;
	if (fbu_parse_u64(port, 65535, &port_num) < 0)
		return -EINVAL;
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
		.ai_flags = AI_NUMERICSERV | (host[0] ? 0 : AI_PASSIVE),
	};
	if (!host[0])
		hints.ai_family = AF_INET;
	struct addrinfo *res = NULL;
	int rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
	if (rc != 0 || !res)
		return rc == EAI_SYSTEM ? -errno : -EADDRNOTAVAIL;
	memcpy(out, res->ai_addr, res->ai_addrlen);
	*len_out = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

const char *fbu_format_addr(const struct sockaddr *addr, char *buf,
			    size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;
	if (addr->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)addr;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		port = ntohs(in->sin_port);
		snprintf(buf, len, "%s:%u", host, port);
	} else if (addr->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 =
			(const struct sockaddr_in6 *)addr;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		port = ntohs(in6->sin6_port);
		snprintf(buf, len, "[%s]:%u", host, port);
	} else {
		snprintf(buf, len, "(family %d)", addr->sa_family);
	}
	return buf;
}
