#include "proxy/acl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/netaddr.h"

/* Longest sensible entry: a full IPv6 literal with "/128". */
#define CIDR_MAX 64

void acl_init(acl_set *acl)
{
	memset(acl, 0, sizeof(*acl));
}

void acl_free(acl_set *acl)
{
	free(acl->allow.rules);
	free(acl->deny.rules);
	acl_init(acl);
}

static int parse_prefix(const char *p, unsigned max, unsigned *prefix)
{
	unsigned v = 0;

	if (!*p)
		return -EINVAL;
	for (; *p; p++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		v = v * 10 + (unsigned)(*p - '0');
		if (v > max)
			return -EINVAL;
	}
	*prefix = v;
	return 0;
}

static bool host_bits_clear(const uint8_t *addr, unsigned prefix, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned bit = (unsigned)i * 8;
		uint8_t keep;
		if (bit >= prefix)
			keep = 0;
		else if (bit + 8 <= prefix)
			keep = 0xff;
		else
			keep = (uint8_t)(0xff << (8 - (prefix - bit)));
		if (addr[i] & (uint8_t)~keep)
			return false;
	}
	return true;
}

/* ::ffff:a.b.c.d/(96+n) means the IPv4 rule a.b.c.d/n. */
static void unmap_rule(acl_rule *r)
{
	struct in6_addr a;

	memcpy(&a, r->addr, 16);
	if (r->family != AF_INET6 || !IN6_IS_ADDR_V4MAPPED(&a) ||
	    r->prefix < 96)
		return;
	memmove(r->addr, r->addr + 12, 4);
	memset(r->addr + 4, 0, 12);
	r->family = AF_INET;
	r->prefix = (uint8_t)(r->prefix - 96);
}

int acl_parse_cidr(const char *text, acl_rule *out)
{
	char buf[CIDR_MAX];
	unsigned prefix;
	size_t n = strlen(text);

	if (n == 0 || n >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, text, n + 1);
	char *slash = strchr(buf, '/');
	if (slash)
		*slash = '\0';
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, buf, out->addr) == 1)
		out->family = AF_INET;
	else if (inet_pton(AF_INET6, buf, out->addr) == 1)
		out->family = AF_INET6;
	else
		return -EINVAL;
	unsigned max = out->family == AF_INET ? 32 : 128;
	prefix = max;
	if (slash && parse_prefix(slash + 1, max, &prefix) < 0)
		return -EINVAL;
	if (!host_bits_clear(out->addr, prefix, max / 8))
		return -EINVAL;
	out->prefix = (uint8_t)prefix;
	unmap_rule(out);
	return 0;
}

static int list_push(acl_list *l, const acl_rule *r)
{
	if (l->count == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 8;
		acl_rule *p = realloc(l->rules, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		l->rules = p;
		l->cap = cap;
	}
	l->rules[l->count++] = *r;
	return 0;
}

int acl_add(acl_set *acl, acl_action action, const acl_rule *r)
{
	return list_push(action == ACL_ALLOW ? &acl->allow : &acl->deny, r);
}

static void copy_token(char *dst, size_t dstlen, const char *src, size_t n)
{
	if (dstlen == 0)
		return;
	if (n >= dstlen)
		n = dstlen - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static int add_token(acl_set *acl, acl_action action,
		     const char *tok, size_t n, char *bad, size_t badlen)
{
	char buf[CIDR_MAX];
	acl_rule r;

	while (n > 0 && (*tok == ' ' || *tok == '\t')) {
		tok++;
		n--;
	}
	while (n > 0 && (tok[n - 1] == ' ' || tok[n - 1] == '\t'))
		n--;
	copy_token(buf, sizeof(buf), tok, n);
	if (n >= sizeof(buf) || acl_parse_cidr(buf, &r) < 0) {
		copy_token(bad, badlen, tok, n);
		return -EINVAL;
	}
	return acl_add(acl, action, &r);
}

static bool blank(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] != ' ' && p[i] != '\t')
			return false;
	}
	return true;
}

int acl_add_list(acl_set *acl, acl_action action, const char *list,
		 char *bad, size_t badlen)
{
	const char *p = list;
	size_t added = 0;

	for (;;) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		if (!blank(p, n)) {
			int rc = add_token(acl, action, p, n, bad, badlen);
			if (rc < 0)
				return rc;
			added++;
		}
		if (!comma)
			break;
		p = comma + 1;
	}
	/* An empty list must not quietly mean "no allow rules": allow all. */
	if (added == 0) {
		copy_token(bad, badlen, "", 0);
		return -EINVAL;
	}
	return 0;
}

static bool rule_matches(const acl_rule *r, int family,
			 const uint8_t *addr)
{
	unsigned full = r->prefix / 8, rest = r->prefix % 8;

	if (r->family != family)
		return false;
	if (memcmp(r->addr, addr, full) != 0)
		return false;
	if (rest == 0)
		return true;
	uint8_t mask = (uint8_t)(0xff << (8 - rest));
	return (r->addr[full] & mask) == (addr[full] & mask);
}

static bool list_matches(const acl_list *l, int family,
			 const uint8_t *addr)
{
	for (size_t i = 0; i < l->count; i++) {
		if (rule_matches(&l->rules[i], family, addr))
			return true;
	}
	return false;
}

bool acl_check(const acl_set *acl, const struct sockaddr *client)
{
	uint8_t addr[16];
	size_t n = netaddr_ip_bytes(client, addr);
	int family = n == 4 ? AF_INET : AF_INET6;

	/* Only IP clients can be judged; refuse the rest when rules exist. */
	if (n == 0)
		return acl->allow.count == 0 && acl->deny.count == 0;
	if (list_matches(&acl->deny, family, addr))
		return false;
	if (acl->allow.count == 0)
		return true;
	return list_matches(&acl->allow, family, addr);
}
