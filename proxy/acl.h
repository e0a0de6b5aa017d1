/* acl — allow/deny lists of CIDR prefixes, IPv4 and IPv6.
 *
 * Decision: a client matching any deny rule is rejected; otherwise, when
 * there is at least one allow rule, the client must match one; with no
 * allow rules every client not denied is accepted.
 *
 * IPv4-mapped IPv6 clients (::ffff:a.b.c.d, seen on dual-stack listeners)
 * are checked as the IPv4 address they carry, and a rule written in mapped
 * form (::ffff:10.0.0.0/104) is stored as the IPv4 rule it means. A plain
 * IPv6 rule such as ::/0 therefore never matches an IPv4 client.
 */
#ifndef FRAMEPROXY_PROXY_ACL_H
#define FRAMEPROXY_PROXY_ACL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum acl_action { ACL_ALLOW, ACL_DENY } acl_action;

typedef struct acl_rule {
	uint8_t family; /* AF_INET or AF_INET6 */
	uint8_t prefix; /* 0..32 or 0..128 */
	uint8_t addr[16];
} acl_rule;

typedef struct acl_list {
	acl_rule *rules;
	size_t count, cap;
} acl_list;

/* A listener's allow and deny lists. */
typedef struct acl_set {
	acl_list allow, deny;
} acl_set;

void acl_init(acl_set *acl);
void acl_free(acl_set *acl);

/* "10.0.0.0/8", "2001:db8::/32", or a bare address (a /32 or /128).
 * -EINVAL for anything else, including host bits set beyond the prefix
 * ("10.0.0.1/8"): such a rule usually hides a typo. */
int acl_parse_cidr(const char *text, acl_rule *out);

int acl_add(acl_set *acl, acl_action action, const acl_rule *r);

/* Adds every entry of a comma-separated list (spaces allowed around
 * entries, empty entries skipped so a trailing comma is fine). On -EINVAL
 * the offending entry is copied to bad (NUL-ended, truncated to badlen)
 * and entries before it have been added; a list with no entry at all is
 * -EINVAL with bad = "". -ENOMEM on allocation failure. */
int acl_add_list(acl_set *acl, acl_action action, const char *list,
		 char *bad, size_t badlen);

bool acl_check(const acl_set *acl, const struct sockaddr *client);

#ifdef __cplusplus
}
#endif

#endif
