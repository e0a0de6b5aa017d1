#include "proxy/config_keys.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "proxy/rpc_order.h"
#include "proxy/units.h"

#define USER_MAX 255 /* bytes in a user name (LOGIN_NAME_MAX - 1 on Linux) */

/* ---- value parsers: 0, or -1 with the reason in why ---- */

static int setter_fail(char *why, const char *fmt, ...) LOG_PRINTF(2, 3);

static int setter_fail(char *why, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, CONFIG_WHY_MAX, fmt, ap);
	va_end(ap);
	return -1;
}

static int parse_uint(const char *v, unsigned long min, unsigned long max,
		      unsigned *out, char *why)
{
	char *end;
	unsigned long n;

	if (!isdigit((unsigned char)v[0]))
		return setter_fail(why, "invalid number '%s'", v);
	errno = 0;
	n = strtoul(v, &end, 10);
	if (*end != '\0')
		return setter_fail(why, "invalid number '%s'", v);
	if (errno == ERANGE || n < min || n > max)
		return setter_fail(why, "'%s' must be between %lu and %lu", v, min,
				   max);
	*out = (unsigned)n;
	return 0;
}

/* on|off|true|false|yes|no|1|0; 0, or -1 (why is left to the caller). */
static int parse_bool(const char *v, bool *out)
{
	static const char *const yes[] = { "on", "true", "yes", "1" };
	static const char *const no[] = { "off", "false", "no", "0" };

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcmp(v, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcmp(v, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -1;
}

static int parse_addr(const char *v, unsigned flags, netaddr *out,
		      char *why)
{
	int rc = netaddr_parse(out, v, flags);

	if (rc == -ENOENT)
		return setter_fail(why, "cannot resolve address '%s'", v);
	if (rc == -ERANGE)
		return setter_fail(why, "port out of range in '%s'", v);
	if (rc < 0)
		return setter_fail(why,
				   "invalid address '%s' (expected host:port, "
				   "IPv6 as [addr]:port)", v);
	return 0;
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)tolower((unsigned char)c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Hex digits, spaces between bytes allowed, optional 0x prefix. */
static int parse_hex(const char *v, uint8_t **out, size_t *len, char *why)
{
	const char *p = v;
	uint8_t *buf = malloc(strlen(v) / 2 + 1);
	size_t n = 0;

	if (!buf)
		return setter_fail(why, "out of memory");
	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
		p += 2;
	while (*p) {
		if (*p == ' ' || *p == '\t') {
			p++;
			continue;
		}
		int hi = hex_value(p[0]), lo = p[1] ? hex_value(p[1]) : -1;
		if (hi < 0 || lo < 0) {
			free(buf);
			return setter_fail(why,
					   "invalid hex '%s' (expected pairs of hex "
					   "digits)", v);
		}
		buf[n++] = (uint8_t)(hi << 4 | lo);
		p += 2;
	}
	*out = buf;
	*len = n;
	return 0;
}

/* ---- setters of the plain kinds: the field at k->off, within bounds ---- */

static int set_size(void *t, const config_key *k, const char *v,
		    const config_origin *o, char *why)
{
	char lo[32], hi[32];
	uint64_t n;
	int rc = units_parse_size(v, &n);

	(void)o;
	if (rc == -EINVAL)
		return setter_fail(why, "invalid size '%s' (e.g. 64KiB, 16MiB, 1000B)",
				   v);
	if (rc < 0)
		return setter_fail(why, "size '%s': %s", v, units_strerror(rc));
	if (n < k->min || n > k->max) {
		units_format_size(lo, sizeof(lo), k->min);
		units_format_size(hi, sizeof(hi), k->max);
		return setter_fail(why, "size '%s' must be between %s and %s", v, lo,
				   hi);
	}
	*(uint64_t *)((char *)t + k->off) = n;
	return 0;
}

static int set_duration(void *t, const config_key *k, const char *v,
			const config_origin *o, char *why)
{
	char lo[32];
	int64_t ns;
	int rc = units_parse_duration(v, &ns);

	(void)o;
	if (rc == -EINVAL)
		return setter_fail(why,
				   "invalid duration '%s' (e.g. 250ms, 30s, 2m; "
				   "a unit is required)", v);
	if (rc < 0)
		return setter_fail(why, "duration '%s': %s", v, units_strerror(rc));
	if (ns < (int64_t)k->min) {
		units_format_duration(lo, sizeof(lo), (int64_t)k->min);
		return setter_fail(why, "duration '%s' must be at least %s", v, lo);
	}
	*(int64_t *)((char *)t + k->off) = ns;
	return 0;
}

static int set_uint(void *t, const config_key *k, const char *v,
		    const config_origin *o, char *why)
{
	(void)o;
	return parse_uint(v, (unsigned long)k->min, (unsigned long)k->max,
			  (unsigned *)((char *)t + k->off), why);
}

/* ---- [frameproxy] setters: t is the config ---- */

static int set_log_level(void *t, const config_key *k, const char *v,
			 const config_origin *o, char *why)
{
	(void)k, (void)o;
	if (log_level_parse(v, &((config *)t)->log_level) < 0)
		return setter_fail(why, "invalid log level '%s' (expected debug, "
				   "info, warn or error)", v);
	return 0;
}

static int set_poller(void *t, const config_key *k, const char *v,
		      const config_origin *o, char *why)
{
	config *c = t;

	(void)k, (void)o;
	if (strcmp(v, "epoll") == 0)
		c->poller = CONFIG_POLLER_EPOLL;
	else if (strcmp(v, "uring") == 0 || strcmp(v, "io_uring") == 0)
		c->poller = CONFIG_POLLER_URING;
	else if (strcmp(v, "auto") == 0)
		c->poller = CONFIG_POLLER_AUTO;
	else if (strcmp(v, "mixed") == 0)
		c->poller = CONFIG_POLLER_MIXED;
	else
		return setter_fail(why, "invalid poller '%s' (expected epoll, uring, "
				   "auto or mixed)", v);
	return 0;
}

static int set_uring_write_batching(void *t, const config_key *k,
				    const char *v,
				    const config_origin *o, char *why)
{
	config *c = t;

	(void)k, (void)o;
	if (strcmp(v, "on") == 0)
		c->uring_write_batching = true;
	else if (strcmp(v, "off") == 0)
		c->uring_write_batching = false;
	else
		return setter_fail(why, "invalid uring_write_batching '%s' (expected "
				   "on or off)", v);
	return 0;
}

static int set_uring_io(void *t, const config_key *k, const char *v,
			const config_origin *o, char *why)
{
	config *c = t;

	(void)k, (void)o;
	if (strcmp(v, "poll") == 0)
		c->uring_io = CONFIG_URING_IO_POLL;
	else if (strcmp(v, "completion") == 0)
		c->uring_io = CONFIG_URING_IO_COMPLETION;
	else if (strcmp(v, "auto") == 0)
		c->uring_io = CONFIG_URING_IO_AUTO;
	else
		return setter_fail(why, "invalid uring_io '%s' (expected poll, "
				   "completion or auto)", v);
	return 0;
}

static int set_shards(void *t, const config_key *k, const char *v,
		      const config_origin *o, char *why)
{
	config *c = t;

	(void)k, (void)o;
	if (strcmp(v, "auto") == 0) {
		c->shards = 0;
		return 0;
	}
	if (parse_uint(v, 1, 4096, &c->shards, why) < 0)
		return setter_fail(why, "invalid shards '%s' (expected auto or 1..4096)",
				   v);
	return 0;
}

/* auto (CONFIG_BUFFER_MEMORY_AUTO: a share of physical memory per shard,
 * worked out in each shard) or a size; 0 = off. */
static int set_buffer_memory(void *t, const config_key *k, const char *v,
			     const config_origin *o, char *why)
{
	config *c = t;

	if (strcmp(v, "auto") == 0) {
		c->max_buffer_memory = CONFIG_BUFFER_MEMORY_AUTO;
		return 0;
	}
	uint64_t n;
	if (units_parse_size(v, &n) == -EINVAL)
		return setter_fail(why, "invalid max_buffer_memory '%s' (expected auto "
				   "or a size, e.g. 256MiB; 0 = off)", v);
	return set_size(t, k, v, o, why);
}

static int set_pin(void *t, const config_key *k, const char *v,
		   const config_origin *o, char *why)
{
	(void)k, (void)o;
	if (parse_bool(v, &((config *)t)->pin) < 0)
		return setter_fail(why, "invalid pin '%s' (expected on, off, true, "
				   "false, yes, no, 1 or 0)", v);
	return 0;
}

static int set_reload_handoff(void *t, const config_key *k, const char *v,
			      const config_origin *o, char *why)
{
	(void)k, (void)o;
	if (parse_bool(v, &((config *)t)->reload_handoff) < 0)
		return setter_fail(why, "invalid reload_handoff '%s' (expected on, "
				   "off, true, false, yes, no, 1 or 0)", v);
	return 0;
}

static int set_steer(void *t, const config_key *k, const char *v,
		     const config_origin *o, char *why)
{
	config *c = t;
	config_steer steer;

	(void)k;
	if (strcmp(v, "hash") == 0)
		steer = CONFIG_STEER_HASH;
	else if (strcmp(v, "cpu") == 0)
		steer = CONFIG_STEER_CPU;
	else
		return setter_fail(why, "invalid steer '%s' (expected hash or cpu)", v);
	/* Remembered for config_finish's "needs pin" check; the last one
	 * to set it is named. */
	if (o->flag) {
		char *flag = strdup(o->flag);
		if (!flag)
			return setter_fail(why, "out of memory");
		free(c->steer_flag);
		c->steer_flag = flag;
	} else if (o->line > 0) {
		free(c->steer_flag);
		c->steer_flag = NULL;
		c->steer_line = o->line;
	}
	c->steer = steer;
	return 0;
}

/* Syntax only: whether the user exists is for the machine that runs the
 * proxy to say (a configuration may be checked elsewhere). */
static int set_user(void *t, const config_key *k, const char *v,
		    const config_origin *o, char *why)
{
	config *c = t;
	size_t n = strlen(v);

	(void)k, (void)o;
	if (n == 0)
		return setter_fail(why, "empty user name");
	if (n > USER_MAX)
		return setter_fail(why, "user name longer than %d bytes", USER_MAX);
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)v[i];
		if (isspace(ch) || iscntrl(ch))
			return setter_fail(why, "invalid user '%s' (a user name, no "
					   "spaces or control characters)", v);
	}
	char *user = strdup(v);
	if (!user)
		return setter_fail(why, "out of memory");
	free(c->user);
	c->user = user;
	return 0;
}

/* "unix:PATH": the write endpoints are open to whoever may connect, so the
 * socket file's mode (admin_mode) is the access control. */
static int set_admin_unix(config *c, const char *path, char *why)
{
	struct sockaddr_un *un = (struct sockaddr_un *)&c->admin.ss;
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(un->sun_path))
		return setter_fail(why, "invalid admin socket path '%s' (1 to %zu "
				   "bytes)", path, sizeof(un->sun_path) - 1);
	memset(&c->admin, 0, sizeof(c->admin));
	un->sun_family = AF_UNIX;
	memcpy(un->sun_path, path, n);
	c->admin.len = (socklen_t)sizeof(*un);
	c->has_admin = true;
	return 0;
}

static int set_admin_mode(void *t, const config_key *k, const char *v,
			  const config_origin *o, char *why)
{
	config *c = t;
	char *end = NULL;

	(void)k, (void)o;
	errno = 0;
	unsigned long m = strtoul(v, &end, 8);
	if (!v[0] || *end || errno || m > 0777)
		return setter_fail(why, "invalid admin_mode '%s' (octal, e.g. 0660)", v);
	c->admin_mode = (unsigned)m;
	return 0;
}

/* The token is read here, once: a file the supervisor could no longer read
 * after dropping privileges would otherwise fail only at start. */
static int set_admin_token(void *t, const config_key *k, const char *v,
			   const config_origin *o, char *why)
{
	config *c = t;
	char buf[ADMIN_TOKEN_MAX + 2];

	(void)k, (void)o;
	FILE *f = fopen(v, "re");
	if (!f)
		return setter_fail(why, "cannot read admin_token '%s': %s", v,
				   strerror(errno));
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' ||
			 buf[n - 1] == ' ' || buf[n - 1] == '\t'))
		buf[--n] = '\0';
	if (n == 0 || n > ADMIN_TOKEN_MAX)
		return setter_fail(why, "admin_token '%s': the file must hold one "
				   "token of 1 to %d bytes", v, ADMIN_TOKEN_MAX);
	for (size_t i = 0; i < n; i++)
		if (buf[i] <= ' ' || buf[i] == 0x7f)
			return setter_fail(why, "admin_token '%s': spaces or control "
					   "characters in the token", v);
	char *token = strdup(buf);
	if (!token)
		return setter_fail(why, "out of memory");
	free(c->admin_token);
	c->admin_token = token;
	return 0;
}

static int set_admin(void *t, const config_key *k, const char *v,
		     const config_origin *o, char *why)
{
	config *c = t;
	char local[64];

	(void)k, (void)o;
	if (strncmp(v, "unix:", 5) == 0)
		return set_admin_unix(c, v + 5, why);
	/* A bare port (":9100" or "9100") means loopback: metrics are for the
	 * operator, so the wider address has to be written out. */
	if (v[0] == ':' || (v[0] && strspn(v, "0123456789") == strlen(v))) {
		snprintf(local, sizeof(local), "127.0.0.1:%s", v + (v[0] == ':'));
		v = local;
	}
	if (parse_addr(v, NETADDR_ALLOW_PORT0, &c->admin, why) < 0)
		return -1;
	c->has_admin = true;
	return 0;
}

/* "IP[:PORT],..." (port 53 when left out), kept as c-ares's list. */
static int set_resolvers(void *t, const config_key *k, const char *v,
			 const config_origin *o, char *why)
{
	config *c = t;
	char list[CONFIG_RESOLVERS_MAX] = "", item[NETADDR_STRLEN + 8];
	const char *p = v;

	(void)k, (void)o;
	while (*p) {
		while (*p == ' ' || *p == '\t')
			p++;
		size_t n = strcspn(p, ", \t");
		netaddr a;
		char text[NETADDR_STRLEN];
		if (n == 0 || n >= NETADDR_STRLEN)
			return setter_fail(why, "invalid resolver list '%s'", v);
		snprintf(item, sizeof(item), "%.*s", (int)n, p);
		if (netaddr_parse(&a, item, NETADDR_NUMERIC) < 0) {
			snprintf(item, sizeof(item), strchr(item, ':') ? "[%.*s]:53"
								 : "%.*s:53",
				 (int)n, p);
			if (netaddr_parse(&a, item, NETADDR_NUMERIC) < 0)
				return setter_fail(why, "invalid resolver '%.*s' "
						   "(expected IP or IP:PORT)",
						   (int)n, p);
		}
		netaddr_format((const struct sockaddr *)&a.ss, text, sizeof(text));
		if (strlen(list) + strlen(text) + 2 > sizeof(list))
			return setter_fail(why, "resolver list too long");
		if (list[0])
			strcat(list, ",");
		strcat(list, text);
		p += n;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == ',')
			p++;
	}
	if (!list[0])
		return setter_fail(why, "empty resolver list");
	free(c->resolvers);
	c->resolvers = strdup(list);
	return c->resolvers ? 0 : setter_fail(why, "out of memory");
}

static int set_resolve_required(void *t, const config_key *k, const char *v,
				const config_origin *o, char *why)
{
	(void)k, (void)o;
	if (parse_bool(v, &((config *)t)->resolve_required) < 0)
		return setter_fail(why, "expected on or off, got '%s'", v);
	return 0;
}

/* ---- [listener NAME] setters: t is the config_listener ---- */

static int set_listen(void *t, const config_key *k, const char *v,
		      const config_origin *o, char *why)
{
	config_listener *l = t;

	(void)k, (void)o;
	if (parse_addr(v, NETADDR_ALLOW_PORT0, &l->listen, why) < 0)
		return -1;
	l->has_listen = true;
	return 0;
}

static int set_access_log(void *t, const config_key *k, const char *v,
			  const config_origin *o, char *why)
{
	(void)k, (void)o;
	if (parse_bool(v, &((config_listener *)t)->access_log) < 0)
		return setter_fail(why, "invalid access_log '%s' (expected on, off, true, "
				   "false, yes, no, 1 or 0)", v);
	return 0;
}

static int set_balance(void *t, const config_key *k, const char *v,
		       const config_origin *o, char *why)
{
	(void)k, (void)o;
	if (balance_kind_parse(v, &((config_listener *)t)->balance) < 0)
		return setter_fail(why, "invalid balance '%s' (expected roundrobin, "
				   "leastconn, random2 or hash)", v);
	return 0;
}

/* allow and deny: a flag's first list replaces the file's, later ones add. */
static int set_acl(void *t, const config_key *k, const char *v,
		   const config_origin *o, char *why)
{
	config_listener *l = t;
	bool allow = strcmp(k->name, "allow") == 0;
	bool *flag_seen = allow ? &l->flag_allow : &l->flag_deny;
	char bad[64];

	if (o->flag && !*flag_seen) {
		(allow ? &l->acl.allow : &l->acl.deny)->count = 0;
		*flag_seen = true;
	}
	int rc = acl_add_list(&l->acl, allow ? ACL_ALLOW : ACL_DENY, v, bad,
			      sizeof(bad));
	if (rc == -ENOMEM)
		return setter_fail(why, "out of memory");
	if (rc < 0 && bad[0] == '\0')
		return setter_fail(why, "empty list (give one or more CIDRs)");
	if (rc < 0)
		return setter_fail(why, "invalid CIDR '%s' (e.g. 10.0.0.0/8, "
				   "2001:db8::/32; no host bits past the prefix)",
				   bad);
	return 0;
}

static int set_accept_proxy(void *t, const config_key *k, const char *v,
			    const config_origin *o, char *why)
{
	(void)k, (void)o;
	if (proxy_header_mode_parse(v, &((config_listener *)t)->accept_proxy) < 0)
		return setter_fail(why, "invalid accept_proxy '%s' (expected off, "
				   "v1, v2 or any)", v);
	return 0;
}

/* Replaces the list: the last accept_proxy_from given is the one. */
static int set_accept_proxy_from(void *t, const config_key *k, const char *v,
				 const config_origin *o, char *why)
{
	config_listener *l = t;
	acl_set fresh;
	char bad[64];

	(void)k, (void)o;
	acl_init(&fresh);
	int rc = acl_add_list(&fresh, ACL_ALLOW, v, bad, sizeof(bad));
	if (rc < 0) {
		acl_free(&fresh);
		if (rc == -ENOMEM)
			return setter_fail(why, "out of memory");
		if (bad[0] == '\0')
			return setter_fail(why, "empty list (give one or more CIDRs)");
		return setter_fail(why, "invalid CIDR '%s' (e.g. 10.0.0.0/8, "
				   "2001:db8::/32; no host bits past the prefix)",
				   bad);
	}
	acl_free(&l->accept_proxy_from);
	l->accept_proxy_from = fresh;
	return 0;
}

static int set_send_proxy(void *t, const config_key *k, const char *v,
			  const config_origin *o, char *why)
{
	config_listener *l = t;
	proxy_header_mode mode;
	char *flag = NULL;

	(void)k;
	if (proxy_header_mode_parse(v, &mode) < 0 || mode == PROXY_HEADER_ANY)
		return setter_fail(why, "invalid send_proxy '%s' (expected off, "
				   "v1 or v2)", v);
	if (o->flag && !(flag = strdup(o->flag)))
		return setter_fail(why, "out of memory");
	free(l->send_proxy_flag);
	l->send_proxy_flag = flag;
	l->send_proxy_line = o->line;
	l->send_proxy = mode;
	return 0;
}

/* ---- TLS (docs/TLS.md): each file is read once here, so a bad one is
 * reported with its line and key; config_finish pairs them up. ---- */

static int append_path(char ***list, size_t *n, const char *v, char *why)
{
	char *copy = strdup(v);
	char **grown = copy ? realloc(*list, (*n + 1) * sizeof(**list)) : NULL;

	if (!grown) {
		free(copy);
		return setter_fail(why, "out of memory");
	}
	grown[(*n)++] = copy;
	*list = grown;
	return 0;
}

static int set_tls_cert(void *t, const config_key *k, const char *v,
			const config_origin *o, char *why)
{
	config_listener *l = t;

	(void)k;
	if (tls_check_cert_file(v, why, CONFIG_WHY_MAX) < 0) {
		l->tls_unreadable++;
		return -1;
	}
	if (l->ntls_certs == 0)
		l->tls_line = o->line;
	return append_path(&l->tls_certs, &l->ntls_certs, v, why);
}

/* A private key others can read is worth a warning, not a refusal. */
static void warn_key_mode(const char *path, const config_origin *o)
{
	struct stat st;

	if (stat(path, &st) < 0 || !(st.st_mode & (S_IRGRP | S_IROTH)))
		return;
	log_line(LOG_LEVEL_WARN, "tls key file readable by others",
		 "file=%s line=%d key=tls_key path=%s mode=%03o",
		 o->file ? o->file : (o->flag ? o->flag : "-"), o->line, path,
		 (unsigned)(st.st_mode & 0777));
}

static int set_tls_key(void *t, const config_key *k, const char *v,
		       const config_origin *o, char *why)
{
	config_listener *l = t;

	(void)k;
	if (tls_check_key_file(v, why, CONFIG_WHY_MAX) < 0) {
		l->tls_unreadable++;
		return -1;
	}
	warn_key_mode(v, o);
	return append_path(&l->tls_keys, &l->ntls_keys, v, why);
}

static int set_tls_min_version(void *t, const config_key *k, const char *v,
			       const config_origin *o, char *why)
{
	(void)k, (void)o;
	if (tls_version_parse(v, &((config_listener *)t)->tls_min_version) < 0)
		return setter_fail(why, "invalid tls_min_version '%s' (expected "
				   "1.2 or 1.3)", v);
	return 0;
}

static int set_string(char **field, const char *v, char *why)
{
	char *copy = strdup(v);

	if (!copy)
		return setter_fail(why, "out of memory");
	free(*field);
	*field = copy;
	return 0;
}

static int set_tls_cipher_list(char **field, const char *v, bool tls13,
			       char *why)
{
	if (tls_check_ciphers(v, tls13, why, CONFIG_WHY_MAX) < 0)
		return -1;
	return set_string(field, v, why);
}

static int set_tls_ciphers(void *t, const config_key *k, const char *v,
			   const config_origin *o, char *why)
{
	(void)k, (void)o;
	return set_tls_cipher_list(&((config_listener *)t)->tls_ciphers, v,
				   false, why);
}

static int set_tls_ciphersuites(void *t, const config_key *k, const char *v,
				const config_origin *o, char *why)
{
	(void)k, (void)o;
	return set_tls_cipher_list(&((config_listener *)t)->tls_ciphersuites,
				   v, true, why);
}

/* The line (or flag) that set a key, for the errors config_finish makes
 * about it (proxy/config.c, check_tls_client). */
static int keep_origin(int *line, char **flag, const config_origin *o,
		       char *why)
{
	char *copy = NULL;

	if (o->flag && !(copy = strdup(o->flag)))
		return setter_fail(why, "out of memory");
	free(*flag);
	*flag = copy;
	*line = o->line;
	return 0;
}

static int set_tls_verify_client(void *t, const config_key *k, const char *v,
				 const config_origin *o, char *why)
{
	config_listener *l = t;

	(void)k;
	if (tls_verify_parse(v, &l->tls_verify_client) < 0)
		return setter_fail(why, "invalid tls_verify_client '%s' (expected "
				   "off, optional or required)", v);
	return keep_origin(&l->tls_verify_line, &l->tls_verify_flag, o, why);
}

static int set_tls_client_ca(void *t, const config_key *k, const char *v,
			     const config_origin *o, char *why)
{
	config_listener *l = t;

	(void)k;
	if (tls_check_cert_file(v, why, CONFIG_WHY_MAX) < 0) {
		l->tls_unreadable++;
		return -1;
	}
	if (keep_origin(&l->tls_client_ca_line, &l->tls_client_ca_flag, o,
			why) < 0)
		return -1;
	return set_string(&l->tls_client_ca, v, why);
}

static int set_tls_alpn(void *t, const config_key *k, const char *v,
			const config_origin *o, char *why)
{
	(void)k, (void)o;
	if (tls_check_alpn(v, why, CONFIG_WHY_MAX) < 0)
		return -1;
	return set_string(&((config_listener *)t)->tls_alpn, v, why);
}

static int set_upstream_tls(void *t, const config_key *k, const char *v,
			    const config_origin *o, char *why)
{
	(void)k, (void)o;
	if (parse_bool(v, &((config_listener *)t)->upstream_tls) < 0)
		return setter_fail(why, "invalid upstream_tls '%s' (expected on, "
				   "off, true, false, yes, no, 1 or 0)", v);
	return 0;
}

static int set_upstream_tls_ca(void *t, const config_key *k, const char *v,
			       const config_origin *o, char *why)
{
	(void)k, (void)o;
	if (tls_check_cert_file(v, why, CONFIG_WHY_MAX) < 0)
		return -1;
	return set_string(&((config_listener *)t)->upstream_tls_ca, v, why);
}

static int set_upstream_tls_name(void *t, const config_key *k, const char *v,
				 const config_origin *o, char *why)
{
	(void)k, (void)o;
	if (!v[0] || strlen(v) > 253 || strpbrk(v, " \t/"))
		return setter_fail(why, "invalid upstream_tls_name '%s' (expected "
				   "a host name or an address)", v);
	return set_string(&((config_listener *)t)->upstream_tls_name, v, why);
}

static int set_check_frame(void *t, const config_key *k, const char *v,
			   const config_origin *o, char *why)
{
	config_listener *l = t;
	uint8_t *buf = NULL;
	size_t len = 0;

	(void)k, (void)o;
	if (parse_hex(v, &buf, &len, why) < 0)
		return -1;
	free(l->check_frame);
	l->check_frame = buf;
	l->check_frame_len = len;
	l->has_check_frame = true;
	return 0;
}

/* The most connections (stream) or requests in flight (rpc) one server
 * is given at once. */
#define SERVER_MAXCONN_MAX 1000000

static int parse_server_option(const char *opt, upstream_spec *s, char *why)
{
	if (strncmp(opt, "maxconn=", 8) == 0) {
		if (parse_uint(opt + 8, 1, SERVER_MAXCONN_MAX, &s->maxconn, why) < 0)
			return setter_fail(why, "server maxconn '%s' must be between 1 "
					   "and %d", opt + 8, SERVER_MAXCONN_MAX);
		return 0;
	}
	if (strncmp(opt, "weight=", 7) != 0)
		return setter_fail(why, "unknown server option '%s' (expected "
				   "weight=N or maxconn=N)", opt);
	if (parse_uint(opt + 7, 1, SHARD_SERVER_MAX_WEIGHT, &s->weight, why) < 0)
		return setter_fail(why, "server weight '%s' must be between 1 and %d",
				   opt + 7, SHARD_SERVER_MAX_WEIGHT);
	return 0;
}

/* A DNS name: labels of letters, digits, '-' and '_' (SRV's _svc._tcp),
 * dot-separated, at most UPSTREAM_NAME_MAX bytes. */
static bool host_name_valid(const char *h)
{
	size_t n = strlen(h), label = 0;

	if (n == 0 || n > UPSTREAM_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)h[i];
		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		if (!isalnum(c) && c != '-' && c != '_')
			return false;
		if (++label > 63)
			return false;
	}
	return true;
}

/* "NAME:PORT" (A and AAAA) or "NAME" with srv (SRV records). */
static int parse_server_name(const char *addr, bool srv, upstream_name *n,
			     char *why)
{
	const char *colon = strrchr(addr, ':');
	size_t len = srv || !colon ? strlen(addr) : (size_t)(colon - addr);

	if (srv && colon)
		return setter_fail(why, "'%s': an srv name takes no port (the "
				   "records give it)", addr);
	if (!srv && !colon)
		return setter_fail(why, "invalid address '%s' (expected host:port, "
				   "IPv6 as [addr]:port, or NAME srv)", addr);
	if (len > UPSTREAM_NAME_MAX)
		return setter_fail(why, "host name longer than %d bytes",
				   UPSTREAM_NAME_MAX);
	memcpy(n->host, addr, len);
	n->host[len] = '\0';
	if (!host_name_valid(n->host))
		return setter_fail(why, "invalid host name '%s'", n->host);
	n->port = 0;
	if (!srv && parse_uint(colon + 1, 1, 65535, &n->port, why) < 0)
		return setter_fail(why, "port out of range in '%s'", addr);
	n->srv = srv;
	return 0;
}

/* "ADDR [weight=N] [maxconn=N]", "HOST:PORT [...]" or "NAME srv [...]":
 * a literal address fills *s (1 returned), a name fills *n (0 returned). */
static int parse_server(const char *v, upstream_spec *s, upstream_name *n,
			char *why)
{
	char buf[512];
	char *save = NULL;
	bool srv = false;

	if (strlen(v) >= sizeof(buf))
		return setter_fail(why, "server line too long");
	strcpy(buf, v);
	char *addr = strtok_r(buf, " \t", &save);
	if (!addr)
		return setter_fail(why, "missing server address (expected ADDR "
				   "[weight=N])");
	s->weight = 1;
	s->maxconn = 0;
	for (char *opt; (opt = strtok_r(NULL, " \t", &save));) {
		if (strcmp(opt, "srv") == 0)
			srv = true;
		else if (parse_server_option(opt, s, why) < 0)
			return -1;
	}
	n->weight = s->weight;
	n->maxconn = s->maxconn;
	int rc = srv ? -ENOENT : netaddr_parse(&s->addr, addr, NETADDR_NUMERIC);
	if (rc == 0)
		return 1;
	if (rc != -ENOENT)
		return parse_addr(addr, NETADDR_NUMERIC, &s->addr, why);
	return parse_server_name(addr, srv, n, why);
}

void config_servers_free(config_listener *l)
{
	free(l->servers);
	l->servers = NULL;
	l->nservers = 0;
	free(l->names);
	l->names = NULL;
	l->nnames = 0;
}

static int add_server_name(config_listener *l, const upstream_name *n,
			   char *why)
{
	if (l->nnames == UPSTREAM_NAMES_MAX)
		return setter_fail(why, "too many server names (at most %d)",
				   UPSTREAM_NAMES_MAX);
	upstream_name *p = realloc(l->names, (l->nnames + 1) * sizeof(*p));
	if (!p)
		return setter_fail(why, "out of memory");
	l->names = p;
	l->names[l->nnames++] = *n;
	return 0;
}

/* A flag's first server replaces the file's list, later ones add. */
static int set_server(void *t, const config_key *k, const char *v,
		      const config_origin *o, char *why)
{
	config_listener *l = t;
	upstream_spec s;
	upstream_name name;

	(void)k;
	if (o->flag && !l->flag_servers) {
		config_servers_free(l);
		l->flag_servers = true;
	}
	if (l->nservers == BALANCE_MAX_SERVERS)
		return setter_fail(why, "too many servers (at most %d)",
				   BALANCE_MAX_SERVERS);
	int kind = parse_server(v, &s, &name, why);
	if (kind < 0)
		return -1;
	if (kind == 0)
		return add_server_name(l, &name, why);
	upstream_spec *p =
		realloc(l->servers, (l->nservers + 1) * sizeof(*p));
	if (!p)
		return setter_fail(why, "out of memory");
	l->servers = p;
	l->servers[l->nservers++] = s;
	return 0;
}

/* ---- rpc mode ---- */

static int set_mode(void *t, const config_key *k, const char *v,
		    const config_origin *o, char *why)
{
	config_listener *l = t;

	(void)k, (void)o;
	if (strcmp(v, "stream") == 0)
		l->mode = CONFIG_MODE_STREAM;
	else if (strcmp(v, "rpc") == 0)
		l->mode = CONFIG_MODE_RPC;
	else
		return setter_fail(why, "invalid mode '%s' (expected stream or rpc)",
				   v);
	return 0;
}

/* The first rpc-only key given in a file or by a flag, remembered for
 * config_finish: in stream mode it is an error that names it. */
static int rpc_key_seen(config_listener *l, const config_key *k,
			const config_origin *o, char *why)
{
	config_rpc *rpc = &l->rpc;

	if (rpc->set_key || (!o->flag && o->line == 0))
		return 0;
	if (o->flag && !(rpc->set_flag = strdup(o->flag)))
		return setter_fail(why, "out of memory");
	rpc->set_key = k->name;
	rpc->set_line = o->line;
	return 0;
}

static int set_rpc_uint(void *t, const config_key *k, const char *v,
			const config_origin *o, char *why)
{
	if (set_uint(t, k, v, o, why) < 0)
		return -1;
	return rpc_key_seen(t, k, o, why);
}

static int set_rpc_size(void *t, const config_key *k, const char *v,
			const config_origin *o, char *why)
{
	if (set_size(t, k, v, o, why) < 0)
		return -1;
	return rpc_key_seen(t, k, o, why);
}

static int set_rpc_duration(void *t, const config_key *k, const char *v,
			    const config_origin *o, char *why)
{
	if (set_duration(t, k, v, o, why) < 0)
		return -1;
	return rpc_key_seen(t, k, o, why);
}

static int set_retry(void *t, const config_key *k, const char *v,
		     const config_origin *o, char *why)
{
	if (parse_bool(v, &((config_listener *)t)->rpc.retry) < 0)
		return setter_fail(why, "invalid retry '%s' (expected on, off, true, "
				   "false, yes, no, 1 or 0)", v);
	return rpc_key_seen(t, k, o, why);
}

/* rpc_tag and hash_key: OFFSET:LEN, or "" for none. */
static int set_rpc_field(void *t, const config_key *k, const char *v,
			 const config_origin *o, char *why, uint32_t max_len)
{
	rpc_field *field = (rpc_field *)((char *)t + k->off);
	rpc_field parsed = {0, 0};

	if (v[0] &&
	    rpc_field_parse(v, max_len, &parsed, why, CONFIG_WHY_MAX) < 0)
		return -1;
	*field = parsed;
	return rpc_key_seen(t, k, o, why);
}

static int set_rpc_tag(void *t, const config_key *k, const char *v,
		       const config_origin *o, char *why)
{
	return set_rpc_field(t, k, v, o, why, RPC_TAG_MAX_LEN);
}

static int set_hash_key(void *t, const config_key *k, const char *v,
			const config_origin *o, char *why)
{
	return set_rpc_field(t, k, v, o, why, RPC_HASH_KEY_MAX_LEN);
}

/* ---- the table ---- */

#define G CONFIG_SCOPE_GLOBAL
#define L CONFIG_SCOPE_LISTENER
#define G_OFF(f) offsetof(config, f)
#define L_OFF(f) offsetof(config_listener, f)

const config_key config_keys[] = {
	{ .name = "log_level", .scope = G, .set = set_log_level,
	  .def = "info", .flag = "--log-level",
	  .arg = "debug|info|warn|error", .help = "least severe level logged" },
	{ .name = "poller", .scope = G, .set = set_poller, .def = "auto",
	  .flag = "--poller", .arg = "epoll|uring|auto|mixed",
	  .help = "mixed: both, on alternate shards" },
	{ .name = "uring_write_batching", .scope = G,
	  .set = set_uring_write_batching, .def = "off",
	  .flag = "--uring-write-batching", .arg = "on|off",
	  .help = "io_uring: sends go in one enter" },
	{ .name = "uring_io", .scope = G, .set = set_uring_io, .def = "poll",
	  .flag = "--uring-io", .arg = "poll|completion|auto",
	  .help = "io_uring: completion-based I/O" },
	{ .name = "shards", .scope = G, .set = set_shards, .def = "auto",
	  .flag = "--shards", .arg = "N|auto",
	  .help = "processes; auto: one per CPU" },
	{ .name = "pin", .scope = G, .set = set_pin, .def = "off",
	  .flag = "--pin", .help = "shard i on CPU i, wrapping" },
	{ .name = "steer", .scope = G, .set = set_steer, .def = "hash",
	  .flag = "--steer", .arg = "hash|cpu",
	  .help = "cpu: by receiving CPU, needs --pin" },
	{ .name = "user", .scope = G, .set = set_user, .flag = "--user",
	  .arg = "NAME", .help = "drop privileges after binding" },
	{ .name = "admin", .scope = G, .set = set_admin, .flag = "--admin",
	  .arg = "ADDR|PORT|unix:P",
	  .help = "GET /metrics, /stats (PORT: on loopback)" },
	{ .name = "admin_mode", .scope = G, .set = set_admin_mode, .def = "0600",
	  .flag = "--admin-mode", .arg = "OCTAL",
	  .help = "file mode of a unix: admin socket" },
	{ .name = "admin_token", .scope = G, .set = set_admin_token,
	  .flag = "--admin-token", .arg = "FILE",
	  .help = "token file: admin writes over TCP" },
	{ .name = "drain_timeout", .scope = G, .set = set_duration,
	  .off = G_OFF(drain_timeout), .def = "10s",
	  .flag = "--drain-timeout", .arg = "DUR",
	  .help = "time to finish frames in flight" },
	{ .name = "max_buffer_memory", .scope = G, .set = set_buffer_memory,
	  .off = G_OFF(max_buffer_memory), .max = UINT64_C(1) << 48,
	  .def = "auto", .flag = "--max-buffer-memory", .arg = "SIZE|auto",
	  .help = "per shard; auto: RAM/4/shards" },
	{ .name = "linger_timeout", .scope = G, .set = set_duration,
	  .off = G_OFF(linger_timeout), .def = "2s",
	  .flag = "--linger-timeout", .arg = "DUR",
	  .help = "drain: await client EOF; 0 = off" },
	{ .name = "reload_handoff", .scope = G, .set = set_reload_handoff,
	  .def = "on", .flag = "--reload-handoff", .arg = "on|off",
	  .help = "reload: pass connections on live" },
	{ .name = "upgrade_timeout", .scope = G, .set = set_duration,
	  .off = G_OFF(upgrade_timeout), .min = 100 * UNITS_NS_PER_MS, .def = "30s",
	  .flag = "--upgrade-timeout", .arg = "DUR",
	  .help = "SIGUSR2: new shards ready within" },

	{ .name = "resolvers", .scope = G, .set = set_resolvers,
	  .flag = "--resolvers", .arg = "IP[:PORT],...",
	  .help = "DNS servers for names (else resolv.conf)" },
	{ .name = "resolve_min", .scope = G, .set = set_duration,
	  .off = G_OFF(resolve_min), .min = 100 * UNITS_NS_PER_MS, .def = "1s",
	  .flag = "--resolve-min", .arg = "DUR",
	  .help = "least time between a name's queries" },
	{ .name = "resolve_max", .scope = G, .set = set_duration,
	  .off = G_OFF(resolve_max), .min = 100 * UNITS_NS_PER_MS, .def = "5m",
	  .flag = "--resolve-max", .arg = "DUR",
	  .help = "most time between a name's queries" },
	{ .name = "resolve_required", .scope = G, .set = set_resolve_required,
	  .def = "off", .flag = "--resolve-required", .arg = "on|off",
	  .help = "a name that fails at start is fatal" },

	{ .name = "listen", .scope = L, .set = set_listen, .flag = "--listen",
	  .arg = "ADDR", .help = "where clients connect; port 0 picks one" },
	{ .name = "max_frame", .scope = L, .set = set_size,
	  .off = L_OFF(max_frame), .min = 1, .max = UINT32_MAX,
	  .def = "16MiB", .flag = "--max-frame", .arg = "SIZE",
	  .help = "largest frame payload" },
	{ .name = "buffer", .scope = L, .set = set_size,
	  .off = L_OFF(buffer), .min = 1024, .max = UINT64_C(1) << 30,
	  .def = "64KiB", .flag = "--buffer", .arg = "SIZE",
	  .help = "buffer per direction" },
	{ .name = "connect_timeout", .scope = L, .set = set_duration,
	  .off = L_OFF(connect_timeout), .min = UNITS_NS_PER_MS, .def = "2s",
	  .flag = "--connect-timeout", .arg = "DUR",
	  .help = "upstream connect" },
	{ .name = "queue_timeout", .scope = L, .set = set_duration,
	  .off = L_OFF(queue_timeout), .def = "1s",
	  .flag = "--queue-timeout", .arg = "DUR",
	  .help = "wait for a server under maxconn" },
	{ .name = "idle_timeout", .scope = L, .set = set_duration,
	  .off = L_OFF(idle_timeout), .def = "60s", .flag = "--idle-timeout",
	  .arg = "DUR", .help = "no byte either way; 0 = never" },
	{ .name = "frame_timeout", .scope = L, .set = set_duration,
	  .off = L_OFF(frame_timeout), .def = "30s",
	  .flag = "--frame-timeout", .arg = "DUR",
	  .help = "to finish a started frame; 0 = off" },
	{ .name = "max_connections", .scope = L, .set = set_uint,
	  .off = L_OFF(max_connections), .min = 1, .max = 10000000,
	  .def = "10000", .flag = "--max-connections", .arg = "N",
	  .help = "open client connections" },
	{ .name = "max_per_client", .scope = L, .set = set_uint,
	  .off = L_OFF(max_per_client), .min = 0, .max = 10000000, .def = "0",
	  .flag = "--max-per-client", .arg = "N",
	  .help = "per client IP; 0 = unlimited" },
	{ .name = "access_log", .scope = L, .set = set_access_log,
	  .def = "on", .flag = "--access-log", .arg = "on|off",
	  .help = "a line per closed connection" },
	{ .name = "allow", .scope = L, .set = set_acl, .repeat = true,
	  .flag = "--allow", .arg = "CIDR,...",
	  .help = "only these clients (repeat to add)" },
	{ .name = "deny", .scope = L, .set = set_acl, .repeat = true,
	  .flag = "--deny", .arg = "CIDR,...",
	  .help = "never these clients (repeat to add)" },
	{ .name = "balance", .scope = L, .set = set_balance,
	  .def = "roundrobin", .flag = "--balance",
	  .arg = "roundrobin|leastconn|random2|hash",
	  .help = "how a server is picked" },
	{ .name = "retries", .scope = L, .set = set_uint,
	  .off = L_OFF(retries), .min = 0, .max = 100, .def = "2",
	  .flag = "--retries", .arg = "N",
	  .help = "servers tried after a failed connect" },
	{ .name = "fail_threshold", .scope = L, .set = set_uint,
	  .off = L_OFF(fail_threshold), .min = 1, .max = 1000, .def = "3",
	  .flag = "--fail-threshold", .arg = "N",
	  .help = "failed connects that take it out" },
	{ .name = "fail_timeout", .scope = L, .set = set_duration,
	  .off = L_OFF(fail_timeout), .min = UNITS_NS_PER_MS, .def = "10s",
	  .flag = "--fail-timeout", .arg = "DUR",
	  .help = "how long it stays out" },
	{ .name = "outlier_errors", .scope = L, .set = set_uint,
	  .off = L_OFF(outlier_errors), .min = 0, .max = 1000, .def = "5",
	  .help = "errors in a row after the connect that take it out; 0 = off" },
	{ .name = "outlier_latency", .scope = L, .set = set_uint,
	  .off = L_OFF(outlier_latency), .min = 0, .max = 1000, .def = "0",
	  .help = "rpc: out when N times slower than the others' median" },
	{ .name = "max_ejected", .scope = L, .set = set_uint,
	  .off = L_OFF(max_ejected), .min = 0, .max = 100, .def = "50",
	  .help = "percent of servers outlier ejection may take out at once" },
	{ .name = "health_interval", .scope = L, .set = set_duration,
	  .off = L_OFF(health_interval), .def = "0",
	  .flag = "--health-interval", .arg = "DUR",
	  .help = "active checks; 0 = off" },
	{ .name = "health_rise", .scope = L, .set = set_uint,
	  .off = L_OFF(health_rise), .min = 1, .max = 100, .def = "2",
	  .flag = "--health-rise", .arg = "N",
	  .help = "passed checks that bring it back" },
	{ .name = "health_fall", .scope = L, .set = set_uint,
	  .off = L_OFF(health_fall), .min = 1, .max = 100, .def = "3",
	  .flag = "--health-fall", .arg = "N",
	  .help = "failed checks that take it out" },
	{ .name = "check_frame", .scope = L, .set = set_check_frame,
	  .flag = "--check-frame", .arg = "HEX",
	  .help = "payload a check sends (else: a connect)" },
	{ .name = "mode", .scope = L, .set = set_mode, .def = "stream",
	  .flag = "--mode", .arg = "stream|rpc",
	  .help = "rpc: a request per frame" },
	{ .name = "pool_size", .scope = L, .set = set_rpc_uint,
	  .off = L_OFF(rpc.pool_size), .min = 1, .max = 64, .def = "2",
	  .flag = "--pool-size", .arg = "N",
	  .help = "rpc: conns per server per shard" },
	{ .name = "max_inflight", .scope = L, .set = set_rpc_uint,
	  .off = L_OFF(rpc.max_inflight), .min = 1,
	  .max = RPC_ORDER_MAX_INFLIGHT, .def = "128",
	  .flag = "--max-inflight", .arg = "N",
	  .help = "rpc: requests per client" },
	{ .name = "max_held", .scope = L, .set = set_rpc_size,
	  .off = L_OFF(rpc.max_held), .min = 1, .max = UINT64_C(1) << 40,
	  .def = "1MiB", .flag = "--max-held", .arg = "SIZE",
	  .help = "rpc: reply bytes held per client" },
	{ .name = "upstream_max_inflight", .scope = L, .set = set_rpc_uint,
	  .off = L_OFF(rpc.upstream_max_inflight), .min = 1, .max = 1u << 20,
	  .def = "1024", .flag = "--upstream-max-inflight", .arg = "N",
	  .help = "rpc: requests per upstream conn" },
	{ .name = "request_timeout", .scope = L, .set = set_rpc_duration,
	  .off = L_OFF(rpc.request_timeout), .def = "30s",
	  .flag = "--request-timeout", .arg = "DUR",
	  .help = "rpc: wait for a reply; 0 = none" },
	{ .name = "retry", .scope = L, .set = set_retry, .def = "off",
	  .flag = "--retry", .arg = "on|off",
	  .help = "rpc: resend what a lost conn had" },
	{ .name = "rpc_tag", .scope = L, .set = set_rpc_tag,
	  .off = L_OFF(rpc.tag), .flag = "--rpc-tag", .arg = "OFFSET:LEN",
	  .help = "rpc: request id; any reply order" },
	{ .name = "hash_key", .scope = L, .set = set_hash_key,
	  .off = L_OFF(rpc.hash_key), .flag = "--hash-key",
	  .arg = "OFFSET:LEN", .help = "rpc: hash this field (balance=hash)" },
	{ .name = "accept_proxy", .scope = L, .set = set_accept_proxy,
	  .def = "off", .flag = "--accept-proxy", .arg = "off|v1|v2|any",
	  .help = "PROXY header before a client's data" },
	{ .name = "accept_proxy_from", .scope = L,
	  .set = set_accept_proxy_from, .flag = "--accept-proxy-from",
	  .arg = "CIDR,...", .help = "only these peers may send it" },
	{ .name = "send_proxy", .scope = L, .set = set_send_proxy,
	  .def = "off", .flag = "--send-proxy", .arg = "off|v1|v2",
	  .help = "PROXY header to each upstream conn" },
	{ .name = "tls_cert", .scope = L, .set = set_tls_cert, .repeat = true,
	  .help = "TLS: certificate chain PEM (repeat with tls_key)" },
	{ .name = "tls_key", .scope = L, .set = set_tls_key, .repeat = true,
	  .help = "TLS: private key PEM of the tls_cert before it" },
	{ .name = "tls_min_version", .scope = L, .set = set_tls_min_version,
	  .def = "1.2", .help = "TLS: lowest version accepted (1.2|1.3)" },
	{ .name = "tls_ciphers", .scope = L, .set = set_tls_ciphers,
	  .help = "TLS 1.2 cipher list (OpenSSL syntax)" },
	{ .name = "tls_ciphersuites", .scope = L, .set = set_tls_ciphersuites,
	  .help = "TLS 1.3 ciphersuites (OpenSSL syntax)" },
	{ .name = "tls_handshake_timeout", .scope = L, .set = set_duration,
	  .off = L_OFF(tls_handshake_timeout), .min = UNITS_NS_PER_MS,
	  .def = "5s", .help = "TLS: a client's whole handshake" },
	{ .name = "tls_verify_client", .scope = L, .set = set_tls_verify_client,
	  .def = "off", .help = "mTLS: off|optional|required (tls_client_ca)" },
	{ .name = "tls_client_ca", .scope = L, .set = set_tls_client_ca,
	  .help = "mTLS: CA PEM the client certificates must chain to" },
	{ .name = "tls_alpn", .scope = L, .set = set_tls_alpn,
	  .help = "TLS: ALPN protocols, ours by preference (p1,p2)" },
	{ .name = "upstream_tls", .scope = L, .set = set_upstream_tls,
	  .def = "off", .help = "TLS to the upstreams (verified)" },
	{ .name = "upstream_tls_ca", .scope = L, .set = set_upstream_tls_ca,
	  .help = "upstream TLS: CA PEM (default: OpenSSL's store)" },
	{ .name = "upstream_tls_name", .scope = L, .set = set_upstream_tls_name,
	  .help = "upstream TLS: SNI + name verified (default: host)" },
	{ .name = "server", .scope = L, .set = set_server, .repeat = true,
	  .flag = "--server", .arg = "'ADDR|HOST:PORT|NAME srv [weight=N] [maxconn=N]'",
	  .help = "an upstream (repeat for more)" },
};

const size_t config_key_count = sizeof(config_keys) / sizeof(config_keys[0]);

_Static_assert(sizeof(config_keys) / sizeof(config_keys[0]) <= CONFIG_KEYS_MAX,
	       "raise CONFIG_KEYS_MAX");

const config_key *config_key_find(const char *name)
{
	for (size_t i = 0; i < config_key_count; i++) {
		if (strcmp(config_keys[i].name, name) == 0)
			return &config_keys[i];
	}
	return NULL;
}

void config_keys_defaults(void *target, config_scope scope)
{
	static const config_origin none;
	char why[CONFIG_WHY_MAX];

	for (size_t i = 0; i < config_key_count; i++) {
		const config_key *k = &config_keys[i];
		/* A default that does not parse is a bug in the table. */
		if (k->scope == scope && k->def &&
		    k->set(target, k, k->def, &none, why) < 0)
			abort();
	}
}

/* ---- flags ---- */

bool config_flag_get(size_t i, config_flag *out)
{
	for (size_t j = 0; j < config_key_count; j++) {
		const config_key *k = &config_keys[j];
		if (!k->flag || i-- > 0)
			continue;
		*out = (config_flag){ k->flag, k->name, k->arg != NULL };
		return true;
	}
	return false;
}

void config_print_flags(FILE *out)
{
	char left[64];

	for (size_t i = 0; i < config_key_count; i++) {
		const config_key *k = &config_keys[i];
		if (!k->flag)
			continue;
		if (i > 0 && k->scope != config_keys[i - 1].scope)
			fputc('\n', out);
		snprintf(left, sizeof(left), "%s%s%s", k->flag,
			 k->arg ? " " : "", k->arg ? k->arg : "");
		if (strlen(left) > 27)
			fprintf(out, "  %s\n%30s", left, "");
		else
			fprintf(out, "  %-27s ", left);
		if (k->def)
			fprintf(out, "%s (default %s)\n", k->help, k->def);
		else
			fprintf(out, "%s\n", k->help);
	}
}
