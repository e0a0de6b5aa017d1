#include "proxy/proxy_header.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

static const uint8_t v2_signature[12] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
};
static const char v1_prefix[] = "PROXY ";
#define V1_PREFIX_LEN 6
#define V1_MIN 15 /* "PROXY UNKNOWN\r\n" */

enum {
	V2_CMD_LOCAL = 0x0,
	V2_CMD_PROXY = 0x1,
	V2_FAM_UNSPEC = 0x00,
	V2_FAM_TCP4 = 0x11,
	V2_FAM_TCP6 = 0x21,
	V2_ADDR_TCP4 = 12, /* two addresses, two ports */
	V2_ADDR_TCP6 = 36,
};

int proxy_header_mode_parse(const char *text, proxy_header_mode *out)
{
	static const char *const names[] = { "off", "v1", "v2", "any" };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(text, names[i]) == 0) {
			*out = (proxy_header_mode)i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *proxy_header_mode_name(proxy_header_mode mode)
{
	static const char *const names[] = { "off", "v1", "v2", "any" };

	return (unsigned)mode < 4 ? names[mode] : "unknown";
}

const char *proxy_header_status_name(proxy_header_status status)
{
	static const char *const names[] = {
		"more", "done", "signature", "version", "command", "family",
		"address", "syntax", "too_long", "length", "tlv", "truncated",
	};

	return (unsigned)status < sizeof(names) / sizeof(names[0])
		       ? names[status] : "unknown";
}

void proxy_header_init(proxy_header_parser *p, proxy_header_mode mode)
{
	*p = (proxy_header_parser){ .mode = mode };
	if (mode == PROXY_HEADER_V1)
		p->version = 1;
	else if (mode == PROXY_HEADER_V2)
		p->version = 2;
	else if (mode != PROXY_HEADER_ANY)
		p->status = PROXY_HEADER_ERR_SIGNATURE;
}

const proxy_header_info *proxy_header_result(const proxy_header_parser *p)
{
	return p->status == PROXY_HEADER_DONE ? &p->info : NULL;
}

/* --- version 1 ---------------------------------------------------------- */

/* "0".."65535", digits only. */
static int v1_port(const char *s, uint16_t *out)
{
	unsigned long n = 0;
	size_t len = strlen(s);

	if (len == 0 || len > 5)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		n = n * 10 + (unsigned long)(s[i] - '0');
	}
	if (n > 65535)
		return -1;
	*out = (uint16_t)n;
	return 0;
}

static int v1_addr(int family, const char *ip, const char *port,
		   struct sockaddr_storage *out)
{
	uint16_t n;

	if (v1_port(port, &n) < 0)
		return -1;
	memset(out, 0, sizeof(*out));
	if (family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)out;
		in->sin_family = AF_INET;
		in->sin_port = htons(n);
		return inet_pton(AF_INET, ip, &in->sin_addr) == 1 ? 0 : -1;
	}
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)out;
	in6->sin6_family = AF_INET6;
	in6->sin6_port = htons(n);
	return inet_pton(AF_INET6, ip, &in6->sin6_addr) == 1 ? 0 : -1;
}

/* The whole line is in buf (CRLF included): read its fields. */
static proxy_header_status v1_parse(proxy_header_parser *p)
{
	char line[PROXY_HEADER_V1_MAX + 1];
	char *field[6];
	size_t count = 0, len = p->have - 2 - V1_PREFIX_LEN;

	memcpy(line, p->buf + V1_PREFIX_LEN, len);
	line[len] = '\0';
	p->info = (proxy_header_info){ .version = 1 };
	if (strcmp(line, "UNKNOWN") == 0 || strncmp(line, "UNKNOWN ", 8) == 0)
		return PROXY_HEADER_DONE; /* whatever follows is ignored */
	/* Exactly single spaces between exactly five fields. */
	char *s = line;
	for (;;) {
		if (count == 6)
			return PROXY_HEADER_ERR_SYNTAX;
		field[count++] = s;
		char *space = strchr(s, ' ');
		if (!space)
			break;
		*space = '\0';
		s = space + 1;
	}
	int family;
	if (strcmp(field[0], "TCP4") == 0)
		family = AF_INET;
	else if (strcmp(field[0], "TCP6") == 0)
		family = AF_INET6;
	else
		return PROXY_HEADER_ERR_FAMILY;
	if (count != 5)
		return PROXY_HEADER_ERR_SYNTAX;
	if (v1_addr(family, field[1], field[3], &p->info.src) < 0 ||
	    v1_addr(family, field[2], field[4], &p->info.dst) < 0)
		return PROXY_HEADER_ERR_ADDRESS;
	p->info.has_addr = true;
	p->info.addr_len = family == AF_INET ? sizeof(struct sockaddr_in)
					     : sizeof(struct sockaddr_in6);
	return PROXY_HEADER_DONE;
}

static proxy_header_status v1_step(proxy_header_parser *p, uint8_t b)
{
	if (p->have < V1_PREFIX_LEN && b != (uint8_t)v1_prefix[p->have])
		return PROXY_HEADER_ERR_SIGNATURE;
	if (p->have >= PROXY_HEADER_V1_MAX)
		return PROXY_HEADER_ERR_TOO_LONG;
	bool after_cr = p->have > 0 && p->buf[p->have - 1] == '\r';
	p->buf[p->have++] = b;
	if (after_cr)
		return b == '\n' ? v1_parse(p) : PROXY_HEADER_ERR_SYNTAX;
	if (b == '\r')
		return PROXY_HEADER_MORE;
	/* The line is printable text; a stray LF or NUL is not a header. */
	if (b < 0x20 || b > 0x7e)
		return PROXY_HEADER_ERR_SYNTAX;
	return PROXY_HEADER_MORE;
}

/*
 * The least the rest of a well-formed line can be, from the fields seen:
 * the current field's minimum, the later fields' minimums, one space
 * between fields and the CRLF.
 */
static uint32_t v1_need(const proxy_header_parser *p)
{
	unsigned field = 0;
	uint32_t len = 0;

	if (p->have < V1_PREFIX_LEN)
		return V1_MIN - p->have;
	if (p->buf[p->have - 1] == '\r')
		return 1;
	for (uint32_t i = V1_PREFIX_LEN; i < p->have; i++) {
		if (p->buf[i] == ' ') {
			field++;
			len = 0;
		} else {
			len++;
		}
	}
	if (field == 0) /* the protocol: UNKNOWN + CRLF is the shortest */
		return (len < 4 ? 4 - len : 0) + 2;
	if (memcmp(p->buf + V1_PREFIX_LEN, "UNKNOWN", 7) == 0 || field > 4)
		return 2;
	bool tcp4 = memcmp(p->buf + V1_PREFIX_LEN, "TCP4", 4) == 0;
	uint32_t addr_min = tcp4 ? 7 : 2; /* "0.0.0.0", "::" */
	uint32_t min[5] = { 4, addr_min, addr_min, 1, 1 };
	uint32_t need = min[field] > len ? min[field] - len : 0;
	for (unsigned j = field + 1; j < 5; j++)
		need += min[j];
	return need + (4 - field) + 2;
}

/* --- version 2 ---------------------------------------------------------- */

static void v2_addresses(proxy_header_parser *p)
{
	const uint8_t *a = p->buf + PROXY_HEADER_V2_FIXED;

	if (p->buf[13] == V2_FAM_TCP4) {
		struct sockaddr_in *src = (struct sockaddr_in *)&p->info.src;
		struct sockaddr_in *dst = (struct sockaddr_in *)&p->info.dst;
		src->sin_family = dst->sin_family = AF_INET;
		memcpy(&src->sin_addr, a, 4);
		memcpy(&dst->sin_addr, a + 4, 4);
		memcpy(&src->sin_port, a + 8, 2);
		memcpy(&dst->sin_port, a + 10, 2);
		p->info.addr_len = sizeof(struct sockaddr_in);
	} else {
		struct sockaddr_in6 *src = (struct sockaddr_in6 *)&p->info.src;
		struct sockaddr_in6 *dst = (struct sockaddr_in6 *)&p->info.dst;
		src->sin6_family = dst->sin6_family = AF_INET6;
		memcpy(&src->sin6_addr, a, 16);
		memcpy(&dst->sin6_addr, a + 16, 16);
		memcpy(&src->sin6_port, a + 32, 2);
		memcpy(&dst->sin6_port, a + 34, 2);
		p->info.addr_len = sizeof(struct sockaddr_in6);
	}
	p->info.has_addr = true;
}

/* The fixed part is in: check it and learn the length. */
static proxy_header_status v2_fixed(proxy_header_parser *p)
{
	uint8_t version = p->buf[12] >> 4, command = p->buf[12] & 0x0f;
	uint8_t family = p->buf[13];
	uint32_t len = (uint32_t)p->buf[14] << 8 | p->buf[15];

	if (version != 2)
		return PROXY_HEADER_ERR_VERSION;
	if (command != V2_CMD_LOCAL && command != V2_CMD_PROXY)
		return PROXY_HEADER_ERR_COMMAND;
	if (PROXY_HEADER_V2_FIXED + len > PROXY_HEADER_V2_MAX)
		return PROXY_HEADER_ERR_TOO_LONG;
	p->total = PROXY_HEADER_V2_FIXED + len;
	p->info = (proxy_header_info){ .version = 2,
				       .local = command == V2_CMD_LOCAL };
	/* LOCAL: whatever the block holds is to be ignored. */
	if (command == V2_CMD_LOCAL || family == V2_FAM_UNSPEC)
		return p->total == p->have ? PROXY_HEADER_DONE : PROXY_HEADER_MORE;
	if (family == V2_FAM_TCP4)
		p->addr_len = V2_ADDR_TCP4;
	else if (family == V2_FAM_TCP6)
		p->addr_len = V2_ADDR_TCP6;
	else
		return PROXY_HEADER_ERR_FAMILY;
	if (len < p->addr_len)
		return PROXY_HEADER_ERR_LENGTH;
	return PROXY_HEADER_MORE;
}

/* One byte of the TLV area: type, 2-byte length, value. */
static proxy_header_status v2_tlv_byte(proxy_header_parser *p, uint8_t b)
{
	if (p->tlv_skip > 0) {
		p->tlv_skip--;
		return PROXY_HEADER_MORE;
	}
	p->tlv_head[p->tlv_head_have++] = b;
	if (p->tlv_head_have < 3)
		return PROXY_HEADER_MORE;
	p->tlv_head_have = 0;
	p->tlv_skip = (uint32_t)p->tlv_head[1] << 8 | p->tlv_head[2];
	if (p->have + p->tlv_skip > p->total)
		return PROXY_HEADER_ERR_TLV;
	return PROXY_HEADER_MORE;
}

static proxy_header_status v2_step(proxy_header_parser *p, uint8_t b)
{
	uint32_t at = p->have++;

	if (at < sizeof(v2_signature)) {
		if (b != v2_signature[at])
			return PROXY_HEADER_ERR_SIGNATURE;
		p->buf[at] = b;
		return PROXY_HEADER_MORE;
	}
	if (at < PROXY_HEADER_V2_FIXED) {
		p->buf[at] = b;
		return at + 1 == PROXY_HEADER_V2_FIXED ? v2_fixed(p)
						       : PROXY_HEADER_MORE;
	}
	proxy_header_status st = PROXY_HEADER_MORE;
	if (at < PROXY_HEADER_V2_FIXED + p->addr_len) {
		p->buf[at] = b;
		if (at + 1 == PROXY_HEADER_V2_FIXED + p->addr_len)
			v2_addresses(p);
	} else if (p->addr_len) {
		st = v2_tlv_byte(p, b);
	}
	if (st != PROXY_HEADER_MORE || p->have < p->total)
		return st;
	return p->tlv_head_have ? PROXY_HEADER_ERR_TLV : PROXY_HEADER_DONE;
}

/* --- both --------------------------------------------------------------- */

static proxy_header_status header_step(proxy_header_parser *p, uint8_t b)
{
	if (p->version == 0) /* ANY: the first byte tells */
		p->version = b == v2_signature[0] ? 2 : 1;
	return p->version == 1 ? v1_step(p, b) : v2_step(p, b);
}

proxy_header_status proxy_header_feed(proxy_header_parser *p,
				      const void *data, size_t len,
				      size_t *consumed)
{
	const uint8_t *bytes = data;
	size_t used = 0;

	while (p->status == PROXY_HEADER_MORE && used < len)
		p->status = header_step(p, bytes[used++]);
	*consumed = used;
	return p->status;
}

uint32_t proxy_header_need(const proxy_header_parser *p)
{
	if (p->status != PROXY_HEADER_MORE)
		return 0;
	if (p->version == 0) /* v1's shortest line is shorter than v2's */
		return V1_MIN;
	if (p->version == 1)
		return v1_need(p);
	if (p->have < PROXY_HEADER_V2_FIXED)
		return PROXY_HEADER_V2_FIXED - p->have;
	return p->total - p->have;
}

/* --- writing ------------------------------------------------------------ */

/* An IPv4-mapped IPv6 address as the IPv4 one it is; anything else as is.
 * Built in locals and copied, so no store goes through a cast pointer. */
static void unmap(const struct sockaddr *sa, struct sockaddr_storage *out)
{
	struct sockaddr_in6 in6;
	struct sockaddr_in in = { .sin_family = AF_INET };

	memset(out, 0, sizeof(*out));
	if (sa->sa_family == AF_INET) {
		memcpy(out, sa, sizeof(struct sockaddr_in));
		return;
	}
	if (sa->sa_family != AF_INET6) {
		out->ss_family = sa->sa_family;
		return;
	}
	memcpy(&in6, sa, sizeof(in6));
	if (!IN6_IS_ADDR_V4MAPPED(&in6.sin6_addr)) {
		memcpy(out, &in6, sizeof(in6));
		return;
	}
	in.sin_port = in6.sin6_port;
	memcpy(&in.sin_addr, in6.sin6_addr.s6_addr + 12, 4);
	memcpy(out, &in, sizeof(in));
}

static void map_to_v6(struct sockaddr_storage *ss)
{
	struct sockaddr_in in;
	struct sockaddr_in6 in6 = { .sin6_family = AF_INET6 };

	memcpy(&in, ss, sizeof(in));
	in6.sin6_port = in.sin_port;
	in6.sin6_addr.s6_addr[10] = 0xff;
	in6.sin6_addr.s6_addr[11] = 0xff;
	memcpy(in6.sin6_addr.s6_addr + 12, &in.sin_addr, 4);
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, &in6, sizeof(in6));
}

/* Both INET, or both INET6, or AF_UNSPEC when they cannot be named. */
static int normalize(const struct sockaddr *src, const struct sockaddr *dst,
		     struct sockaddr_storage *s, struct sockaddr_storage *d)
{
	unmap(src, s);
	unmap(dst, d);
	bool s_ip = s->ss_family == AF_INET || s->ss_family == AF_INET6;
	bool d_ip = d->ss_family == AF_INET || d->ss_family == AF_INET6;
	if (!s_ip || !d_ip)
		return AF_UNSPEC;
	if (s->ss_family == d->ss_family)
		return s->ss_family;
	map_to_v6(s->ss_family == AF_INET ? s : d);
	return AF_INET6;
}

static const void *ip_of(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return &((const struct sockaddr_in *)ss)->sin_addr;
	return &((const struct sockaddr_in6 *)ss)->sin6_addr;
}

static uint16_t port_of(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)ss)->sin_port);
	return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
}

static int write_v1(int family, const struct sockaddr_storage *s,
		    const struct sockaddr_storage *d, char *buf, size_t len)
{
	char sip[INET6_ADDRSTRLEN], dip[INET6_ADDRSTRLEN];
	int n;

	if (family == AF_UNSPEC) {
		n = snprintf(buf, len, "PROXY UNKNOWN\r\n");
	} else {
		inet_ntop(family, ip_of(s), sip, sizeof(sip));
		inet_ntop(family, ip_of(d), dip, sizeof(dip));
		n = snprintf(buf, len, "PROXY %s %s %s %u %u\r\n",
			     family == AF_INET ? "TCP4" : "TCP6", sip, dip,
			     port_of(s), port_of(d));
	}
	return n < 0 || (size_t)n >= len ? -ENOSPC : n;
}

static int write_v2(int family, const struct sockaddr_storage *s,
		    const struct sockaddr_storage *d, uint8_t *buf, size_t len)
{
	size_t ip_len = family == AF_INET ? 4 : family == AF_INET6 ? 16 : 0;
	size_t block = ip_len ? 2 * ip_len + 4 : 0;
	uint16_t sport, dport;

	if (len < PROXY_HEADER_V2_FIXED + block)
		return -ENOSPC;
	memcpy(buf, v2_signature, sizeof(v2_signature));
	buf[12] = 0x20 | V2_CMD_PROXY;
	buf[13] = family == AF_INET ? V2_FAM_TCP4
		: family == AF_INET6 ? V2_FAM_TCP6 : V2_FAM_UNSPEC;
	buf[14] = (uint8_t)(block >> 8);
	buf[15] = (uint8_t)block;
	if (!block)
		return PROXY_HEADER_V2_FIXED;
	uint8_t *a = buf + PROXY_HEADER_V2_FIXED;
	memcpy(a, ip_of(s), ip_len);
	memcpy(a + ip_len, ip_of(d), ip_len);
	sport = htons(port_of(s));
	dport = htons(port_of(d));
	memcpy(a + 2 * ip_len, &sport, 2);
	memcpy(a + 2 * ip_len + 2, &dport, 2);
	return (int)(PROXY_HEADER_V2_FIXED + block);
}

int proxy_header_write(proxy_header_mode version, const struct sockaddr *src,
		       const struct sockaddr *dst, void *buf, size_t len)
{
	struct sockaddr_storage s, d;
	int family = normalize(src, dst, &s, &d);

	if (version == PROXY_HEADER_V1)
		return write_v1(family, &s, &d, buf, len);
	if (version == PROXY_HEADER_V2)
		return write_v2(family, &s, &d, buf, len);
	return -EINVAL;
}

const uint8_t *proxy_header_local(proxy_header_mode version, uint32_t *len)
{
	static const uint8_t v1_unknown[] = "PROXY UNKNOWN\r\n";
	static const uint8_t v2_local[PROXY_HEADER_V2_FIXED] = {
		0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54,
		0x0a, 0x20 | V2_CMD_LOCAL, V2_FAM_UNSPEC, 0x00, 0x00,
	};

	if (version == PROXY_HEADER_V1) {
		*len = sizeof(v1_unknown) - 1;
		return v1_unknown;
	}
	if (version == PROXY_HEADER_V2) {
		*len = sizeof(v2_local);
		return v2_local;
	}
	*len = 0;
	return NULL;
}
