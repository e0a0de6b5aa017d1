#include "proxy/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/units.h"

#define WHY_MAX 256
#define ERROR_MAX 512 /* bytes in a message */
#define USER_MAX 255 /* bytes in a user name (LOGIN_NAME_MAX - 1 on Linux) */

/* ---- errors ---- */

/* Where a value came from: a line of a file (key names the key there), or
 * a command-line flag. */
struct config_origin {
	const char *file;
	int line;
	const char *key;
	const char *flag;
};

static void add_error(struct config *cfg, const char *text)
{
	if (cfg->nerrors == CONFIG_MAX_ERRORS) {
		cfg->errors_dropped++;
		return;
	}
	cfg->errors[cfg->nerrors] = strdup(text);
	if (cfg->errors[cfg->nerrors])
		cfg->nerrors++;
	else
		cfg->errors_dropped++;
}

static void vreport(struct config *cfg, const struct config_origin *o,
		    const char *fmt, va_list ap) LOG_PRINTF(3, 0);

/* Every config error goes through here: the message, prefixed by where
 * it came from:
 *   FILE:LINE: key 'KEY': message     a key of a file
 *   FILE:LINE: message                a line of a file
 *   FILE: message                     the file as a whole
 *   FLAG: message                     a command-line flag
 *   message                           nowhere in particular */
static void vreport(struct config *cfg, const struct config_origin *o,
		    const char *fmt, va_list ap)
{
	char msg[WHY_MAX], text[ERROR_MAX];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (o->flag)
		snprintf(text, sizeof(text), "%s: %s", o->flag, msg);
	else if (o->file && o->line > 0 && o->key)
		snprintf(text, sizeof(text), "%s:%d: key '%s': %s", o->file,
			 o->line, o->key, msg);
	else if (o->file && o->line > 0)
		snprintf(text, sizeof(text), "%s:%d: %s", o->file, o->line,
			 msg);
	else if (o->file)
		snprintf(text, sizeof(text), "%s: %s", o->file, msg);
	else
		snprintf(text, sizeof(text), "%s", msg);
	add_error(cfg, text);
}

static void report(struct config *cfg, const struct config_origin *o,
		   const char *fmt, ...) LOG_PRINTF(3, 4);

static void report(struct config *cfg, const struct config_origin *o,
		   const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(cfg, o, fmt, ap);
	va_end(ap);
}

static bool has_errors(const struct config *cfg)
{
	return cfg->nerrors > 0 || cfg->errors_dropped > 0;
}

size_t config_error_count(const struct config *cfg)
{
	return cfg->nerrors + cfg->errors_dropped;
}

const char *config_error(const struct config *cfg, size_t i)
{
	return i < cfg->nerrors ? cfg->errors[i] : NULL;
}

void config_print_errors(const struct config *cfg, FILE *out)
{
	for (size_t i = 0; i < cfg->nerrors; i++)
		fprintf(out, "%s\n", cfg->errors[i]);
	if (cfg->errors_dropped)
		fprintf(out, "... and %zu more errors\n", cfg->errors_dropped);
}

/* ---- model ---- */

static void listener_init(struct config_listener *l)
{
	memset(l, 0, sizeof(*l));
	l->max_frame = UINT64_C(16) << 20;
	l->buffer = UINT64_C(64) << 10;
	l->connect_timeout = 2 * UNITS_NS_PER_SEC;
	l->idle_timeout = 60 * UNITS_NS_PER_SEC;
	l->frame_timeout = 30 * UNITS_NS_PER_SEC;
	l->max_connections = 10000;
	l->max_per_client = 0;
	l->access_log = true;
	acl_init(&l->acl);
	l->balance = BALANCE_ROUNDROBIN;
	l->retries = 2;
	l->fail_threshold = 3;
	l->fail_timeout = 10 * UNITS_NS_PER_SEC;
	l->health_interval = 0;
	l->health_rise = 2;
	l->health_fall = 3;
}

static void free_servers(struct config_listener *l)
{
	for (size_t i = 0; i < l->nservers; i++)
		free(l->servers[i].addr_text);
	free(l->servers);
	l->servers = NULL;
	l->nservers = 0;
}

static void listener_free(struct config_listener *l)
{
	free(l->name);
	acl_free(&l->acl);
	free(l->check_frame);
	free_servers(l);
	memset(l, 0, sizeof(*l));
}

void config_init(struct config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->log_level = LOG_LEVEL_INFO;
	cfg->poller = CONFIG_POLLER_AUTO;
	cfg->shards = 0;
	cfg->pin = false;
	cfg->steer = CONFIG_STEER_HASH;
	cfg->user = NULL;
	cfg->drain_timeout = 10 * UNITS_NS_PER_SEC;
}

void config_free(struct config *cfg)
{
	for (size_t i = 0; i < cfg->nlisteners; i++)
		listener_free(&cfg->listeners[i]);
	free(cfg->listeners);
	for (size_t i = 0; i < cfg->nerrors; i++)
		free(cfg->errors[i]);
	free(cfg->path);
	free(cfg->user);
	free(cfg->steer_flag);
	memset(cfg, 0, sizeof(*cfg));
}

static struct config_listener *find_listener(const struct config *cfg,
					     const char *name)
{
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		if (strcmp(cfg->listeners[i].name, name) == 0)
			return &cfg->listeners[i];
	}
	return NULL;
}

const struct config_listener *config_find_listener(const struct config *cfg,
						   const char *name)
{
	return find_listener(cfg, name);
}

static struct config_listener *add_listener(struct config *cfg,
					    const char *name, int line)
{
	size_t n = cfg->nlisteners + 1;
	struct config_listener *p = realloc(cfg->listeners, n * sizeof(*p));
	if (!p)
		return NULL;
	cfg->listeners = p;
	struct config_listener *l = &p[n - 1];
	listener_init(l);
	l->name = strdup(name);
	if (!l->name)
		return NULL;
	l->line = line;
	cfg->nlisteners = n;
	return l;
}

static bool valid_name(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > CONFIG_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];
		if (!isalnum(c) && c != '_' && c != '-')
			return false;
	}
	return true;
}

/* ---- value parsers: 0, or -1 with the reason in why ---- */

static int fail(char *why, const char *fmt, ...) LOG_PRINTF(2, 3);

static int fail(char *why, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, WHY_MAX, fmt, ap);
	va_end(ap);
	return -1;
}

static int parse_size(const char *v, uint64_t min, uint64_t max,
		      uint64_t *out, char *why)
{
	char lo[32], hi[32];
	int rc = units_parse_size(v, out);

	if (rc == -EINVAL)
		return fail(why, "invalid size '%s' (e.g. 64KiB, 16MiB, 1000B)",
			    v);
	if (rc < 0)
		return fail(why, "size '%s': %s", v, units_strerror(rc));
	if (*out < min || *out > max) {
		units_format_size(lo, sizeof(lo), min);
		units_format_size(hi, sizeof(hi), max);
		return fail(why, "size '%s' must be between %s and %s", v, lo,
			    hi);
	}
	return 0;
}

static int parse_duration(const char *v, int64_t min, int64_t *out,
			  char *why)
{
	char lo[32];
	int rc = units_parse_duration(v, out);

	if (rc == -EINVAL)
		return fail(why,
			    "invalid duration '%s' (e.g. 250ms, 30s, 2m; "
			    "a unit is required)", v);
	if (rc < 0)
		return fail(why, "duration '%s': %s", v, units_strerror(rc));
	if (*out < min) {
		units_format_duration(lo, sizeof(lo), min);
		return fail(why, "duration '%s' must be at least %s", v, lo);
	}
	return 0;
}

static int parse_uint(const char *v, unsigned long min, unsigned long max,
		      unsigned *out, char *why)
{
	char *end;
	unsigned long n;

	if (!isdigit((unsigned char)v[0]))
		return fail(why, "invalid number '%s'", v);
	errno = 0;
	n = strtoul(v, &end, 10);
	if (*end != '\0')
		return fail(why, "invalid number '%s'", v);
	if (errno == ERANGE || n < min || n > max)
		return fail(why, "'%s' must be between %lu and %lu", v, min,
			    max);
	*out = (unsigned)n;
	return 0;
}

static int parse_addr(const char *v, unsigned flags, struct netaddr *out,
		      char *why)
{
	int rc = netaddr_parse(out, v, flags);

	if (rc == -ENOENT)
		return fail(why, "cannot resolve address '%s'", v);
	if (rc == -ERANGE)
		return fail(why, "port out of range in '%s'", v);
	if (rc < 0)
		return fail(why,
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
		return fail(why, "out of memory");
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
			return fail(why,
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

/* ---- keys ---- */

enum vkind { V_SIZE, V_DURATION, V_UINT, V_CUSTOM };

struct key_def;
typedef int (*custom_fn)(struct config *cfg, void *target,
			 const struct key_def *k, const char *v,
			 const struct config_origin *o, char *why);

struct key_def {
	const char *name;
	enum vkind kind;
	size_t off;
	uint64_t min, max; /* sizes/counts; durations use min only */
	custom_fn custom;
	bool repeat; /* may appear more than once in a section */
};

#define L_OFF(f) offsetof(struct config_listener, f)
#define G_OFF(f) offsetof(struct config, f)

static int set_log_level(struct config *cfg, void *t, const struct key_def *k,
			 const char *v, const struct config_origin *o, char *why)
{
	(void)cfg, (void)k, (void)o;
	if (log_level_parse(v, &((struct config *)t)->log_level) < 0)
		return fail(why, "invalid log level '%s' (expected debug, "
			    "info, warn or error)", v);
	return 0;
}

static int set_poller(struct config *cfg, void *t, const struct key_def *k,
		      const char *v, const struct config_origin *o, char *why)
{
	struct config *c = t;

	(void)cfg, (void)k, (void)o;
	if (strcmp(v, "epoll") == 0)
		c->poller = CONFIG_POLLER_EPOLL;
	else if (strcmp(v, "uring") == 0 || strcmp(v, "io_uring") == 0)
		c->poller = CONFIG_POLLER_URING;
	else if (strcmp(v, "auto") == 0)
		c->poller = CONFIG_POLLER_AUTO;
	else if (strcmp(v, "mixed") == 0)
		c->poller = CONFIG_POLLER_MIXED;
	else
		return fail(why, "invalid poller '%s' (expected epoll, uring, "
			    "auto or mixed)", v);
	return 0;
}

static int set_uring_write_batching(struct config *cfg, void *t,
				    const struct key_def *k, const char *v,
				    const struct config_origin *o, char *why)
{
	struct config *c = t;

	(void)cfg, (void)k, (void)o;
	if (strcmp(v, "on") == 0)
		c->uring_write_batching = true;
	else if (strcmp(v, "off") == 0)
		c->uring_write_batching = false;
	else
		return fail(why, "invalid uring_write_batching '%s' (expected "
			    "on or off)", v);
	return 0;
}

static int set_shards(struct config *cfg, void *t, const struct key_def *k,
		      const char *v, const struct config_origin *o, char *why)
{
	struct config *c = t;

	(void)cfg, (void)k, (void)o;
	if (strcmp(v, "auto") == 0) {
		c->shards = 0;
		return 0;
	}
	if (parse_uint(v, 1, 4096, &c->shards, why) < 0)
		return fail(why, "invalid shards '%s' (expected auto or 1..4096)",
			    v);
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

static int set_pin(struct config *cfg, void *t, const struct key_def *k,
		   const char *v, const struct config_origin *o, char *why)
{
	struct config *c = t;

	(void)cfg, (void)k, (void)o;
	if (parse_bool(v, &c->pin) < 0)
		return fail(why, "invalid pin '%s' (expected on, off, true, "
			    "false, yes, no, 1 or 0)", v);
	return 0;
}

static int set_access_log(struct config *cfg, void *t, const struct key_def *k,
			  const char *v, const struct config_origin *o, char *why)
{
	struct config_listener *l = t;

	(void)cfg, (void)k, (void)o;
	if (parse_bool(v, &l->access_log) < 0)
		return fail(why, "invalid access_log '%s' (expected on, off, true, "
			    "false, yes, no, 1 or 0)", v);
	return 0;
}

static int set_steer(struct config *cfg, void *t, const struct key_def *k,
		     const char *v, const struct config_origin *o, char *why)
{
	struct config *c = t;
	enum config_steer steer;

	(void)cfg, (void)k;
	if (strcmp(v, "hash") == 0)
		steer = CONFIG_STEER_HASH;
	else if (strcmp(v, "cpu") == 0)
		steer = CONFIG_STEER_CPU;
	else
		return fail(why, "invalid steer '%s' (expected hash or cpu)", v);
	/* Remembered for config_finish's "needs pin" check; the last one
	 * to set it is named. */
	if (o->flag) {
		char *flag = strdup(o->flag);
		if (!flag)
			return fail(why, "out of memory");
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
static int set_user(struct config *cfg, void *t, const struct key_def *k,
		    const char *v, const struct config_origin *o, char *why)
{
	struct config *c = t;
	size_t n = strlen(v);

	(void)cfg, (void)k, (void)o;
	if (n == 0)
		return fail(why, "empty user name");
	if (n > USER_MAX)
		return fail(why, "user name longer than %d bytes", USER_MAX);
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)v[i];
		if (isspace(ch) || iscntrl(ch))
			return fail(why, "invalid user '%s' (a user name, no "
				    "spaces or control characters)", v);
	}
	char *user = strdup(v);
	if (!user)
		return fail(why, "out of memory");
	free(c->user);
	c->user = user;
	return 0;
}

static int set_admin(struct config *cfg, void *t, const struct key_def *k,
		     const char *v, const struct config_origin *o, char *why)
{
	struct config *c = t;

	char local[64];

	(void)cfg, (void)k, (void)o;
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

static int set_listen(struct config *cfg, void *t, const struct key_def *k,
		      const char *v, const struct config_origin *o, char *why)
{
	struct config_listener *l = t;

	(void)cfg, (void)k, (void)o;
	if (parse_addr(v, NETADDR_ALLOW_PORT0, &l->listen, why) < 0)
		return -1;
	l->has_listen = true;
	return 0;
}

static int set_balance(struct config *cfg, void *t, const struct key_def *k,
		       const char *v, const struct config_origin *o, char *why)
{
	(void)cfg, (void)k, (void)o;
	if (balance_kind_parse(v, &((struct config_listener *)t)->balance) < 0)
		return fail(why, "invalid balance '%s' (expected roundrobin, "
			    "leastconn, random2 or hash)", v);
	return 0;
}

static void forget_rules(struct acl_list *list)
{
	list->count = 0;
}

static int set_acl(struct config *cfg, void *t, const struct key_def *k,
		   const char *v, const struct config_origin *o, char *why)
{
	struct config_listener *l = t;
	bool allow = strcmp(k->name, "allow") == 0;
	bool *flag_seen = allow ? &l->flag_allow : &l->flag_deny;
	char bad[64];

	(void)cfg;
	if (o->flag && !*flag_seen) {
		forget_rules(allow ? &l->acl.allow : &l->acl.deny);
		*flag_seen = true;
	}
	int rc = acl_add_list(&l->acl, allow ? ACL_ALLOW : ACL_DENY, v, bad,
			      sizeof(bad));
	if (rc == -ENOMEM)
		return fail(why, "out of memory");
	if (rc < 0 && bad[0] == '\0')
		return fail(why, "empty list (give one or more CIDRs)");
	if (rc < 0)
		return fail(why, "invalid CIDR '%s' (e.g. 10.0.0.0/8, "
			    "2001:db8::/32; no host bits past the prefix)",
			    bad);
	return 0;
}

static int set_check_frame(struct config *cfg, void *t,
			   const struct key_def *k, const char *v,
			   const struct config_origin *o, char *why)
{
	struct config_listener *l = t;
	uint8_t *buf = NULL;
	size_t len = 0;

	(void)cfg, (void)k, (void)o;
	if (parse_hex(v, &buf, &len, why) < 0)
		return -1;
	free(l->check_frame);
	l->check_frame = buf;
	l->check_frame_len = len;
	l->has_check_frame = true;
	return 0;
}

static int parse_server_option(const char *opt, unsigned *weight, char *why)
{
	if (strncmp(opt, "weight=", 7) != 0)
		return fail(why, "unknown server option '%s' (expected "
			    "weight=N)", opt);
	if (parse_uint(opt + 7, 1, BALANCE_MAX_WEIGHT, weight, why) < 0)
		return fail(why, "server weight '%s' must be between 1 and %d",
			    opt + 7, BALANCE_MAX_WEIGHT);
	return 0;
}

/* "ADDR [weight=N]" */
static int parse_server(const char *v, struct config_server *s, char *why)
{
	char buf[512];
	char *save = NULL;

	if (strlen(v) >= sizeof(buf))
		return fail(why, "server line too long");
	strcpy(buf, v);
	char *addr = strtok_r(buf, " \t", &save);
	if (!addr)
		return fail(why, "missing server address (expected ADDR "
			    "[weight=N])");
	s->weight = 1;
	for (char *opt; (opt = strtok_r(NULL, " \t", &save));) {
		if (parse_server_option(opt, &s->weight, why) < 0)
			return -1;
	}
	if (parse_addr(addr, 0, &s->addr, why) < 0)
		return -1;
	s->addr_text = strdup(addr);
	return s->addr_text ? 0 : fail(why, "out of memory");
}

static int set_server(struct config *cfg, void *t, const struct key_def *k,
		      const char *v, const struct config_origin *o, char *why)
{
	struct config_listener *l = t;
	struct config_server s;

	(void)cfg, (void)k;
	if (o->flag && !l->flag_servers) {
		free_servers(l);
		l->flag_servers = true;
	}
	if (l->nservers == BALANCE_MAX_SERVERS)
		return fail(why, "too many servers (at most %d)",
			    BALANCE_MAX_SERVERS);
	if (parse_server(v, &s, why) < 0)
		return -1;
	struct config_server *p =
		realloc(l->servers, (l->nservers + 1) * sizeof(*p));
	if (!p) {
		free(s.addr_text);
		return fail(why, "out of memory");
	}
	l->servers = p;
	l->servers[l->nservers++] = s;
	return 0;
}

static const struct key_def global_keys[] = {
	{ "log_level", V_CUSTOM, 0, 0, 0, set_log_level, false },
	{ "poller", V_CUSTOM, 0, 0, 0, set_poller, false },
	{ "uring_write_batching", V_CUSTOM, 0, 0, 0, set_uring_write_batching,
	  false },
	{ "shards", V_CUSTOM, 0, 0, 0, set_shards, false },
	{ "pin", V_CUSTOM, 0, 0, 0, set_pin, false },
	{ "steer", V_CUSTOM, 0, 0, 0, set_steer, false },
	{ "user", V_CUSTOM, 0, 0, 0, set_user, false },
	{ "admin", V_CUSTOM, 0, 0, 0, set_admin, false },
	{ "drain_timeout", V_DURATION, G_OFF(drain_timeout), 0, 0, NULL,
	  false },
};

static const struct key_def listener_keys[] = {
	{ "listen", V_CUSTOM, 0, 0, 0, set_listen, false },
	{ "max_frame", V_SIZE, L_OFF(max_frame), 1, UINT32_MAX, NULL, false },
	{ "buffer", V_SIZE, L_OFF(buffer), 1024, UINT64_C(1) << 30, NULL,
	  false },
	{ "connect_timeout", V_DURATION, L_OFF(connect_timeout),
	  UNITS_NS_PER_MS, 0, NULL, false },
	{ "idle_timeout", V_DURATION, L_OFF(idle_timeout), 0, 0, NULL, false },
	{ "frame_timeout", V_DURATION, L_OFF(frame_timeout), 0, 0, NULL,
	  false },
	{ "max_connections", V_UINT, L_OFF(max_connections), 1, 10000000,
	  NULL, false },
	{ "max_per_client", V_UINT, L_OFF(max_per_client), 0, 10000000, NULL,
	  false },
	{ "access_log", V_CUSTOM, 0, 0, 0, set_access_log, false },
	{ "allow", V_CUSTOM, 0, 0, 0, set_acl, true },
	{ "deny", V_CUSTOM, 0, 0, 0, set_acl, true },
	{ "balance", V_CUSTOM, 0, 0, 0, set_balance, false },
	{ "retries", V_UINT, L_OFF(retries), 0, 100, NULL, false },
	{ "fail_threshold", V_UINT, L_OFF(fail_threshold), 1, 1000, NULL,
	  false },
	{ "fail_timeout", V_DURATION, L_OFF(fail_timeout), UNITS_NS_PER_MS, 0,
	  NULL, false },
	{ "health_interval", V_DURATION, L_OFF(health_interval), 0, 0, NULL,
	  false },
	{ "health_rise", V_UINT, L_OFF(health_rise), 1, 100, NULL, false },
	{ "health_fall", V_UINT, L_OFF(health_fall), 1, 100, NULL, false },
	{ "check_frame", V_CUSTOM, 0, 0, 0, set_check_frame, false },
	{ "server", V_CUSTOM, 0, 0, 0, set_server, true },
};

#define NGLOBAL (sizeof(global_keys) / sizeof(global_keys[0]))
#define NLISTENER (sizeof(listener_keys) / sizeof(listener_keys[0]))

static const struct key_def *find_key(const struct key_def *keys, size_t n,
				      const char *name)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(keys[i].name, name) == 0)
			return &keys[i];
	}
	return NULL;
}

/* Parses v per k into target; 0, or -1 with why filled. */
static int apply_key(struct config *cfg, void *target, const struct key_def *k,
		     const char *v, const struct config_origin *o, char *why)
{
	char *field = (char *)target + k->off;

	switch (k->kind) {
	case V_SIZE:
		return parse_size(v, k->min, k->max, (uint64_t *)field, why);
	case V_DURATION:
		return parse_duration(v, (int64_t)k->min, (int64_t *)field, why);
	case V_UINT:
		return parse_uint(v, (unsigned long)k->min,
				  (unsigned long)k->max, (unsigned *)field, why);
	case V_CUSTOM:
	default:
		return k->custom(cfg, target, k, v, o, why);
	}
}

static int set_key(struct config *cfg, void *target, const struct key_def *k,
		   const char *v, const struct config_origin *o)
{
	char why[WHY_MAX];

	if (apply_key(cfg, target, k, v, o, why) == 0)
		return 0;
	report(cfg, o, "%s", why);
	return -EINVAL;
}

/* ---- INI file ----
 *
 * Line by line: [section] headers, key = value (or key: value), comments
 * from ';' or '#' at the start of a line or from " ;" after a value, a
 * UTF-8 BOM before the first line. Indentation is ignored and a value
 * never continues on the next line (repeated keys do that job). Every
 * line that is none of these is an error of its own. */

#define LINE_MAX_CHARS 197 /* besides the newline; the last line may have one more */

enum section_kind { SEC_NONE, SEC_GLOBAL, SEC_LISTENER, SEC_IGNORED };

struct ini {
	struct config *cfg;
	const char *file;
	int line;
	enum section_kind sec;
	char title[80];
	struct config_listener *listener;
	struct config_listener scratch; /* for a duplicate listener section */
	int seen_line[NGLOBAL > NLISTENER ? NGLOBAL : NLISTENER];
};

static void line_error(struct ini *p, const char *key, const char *fmt, ...)
	LOG_PRINTF(3, 4);

static void line_error(struct ini *p, const char *key, const char *fmt, ...)
{
	struct config_origin o = { p->file, p->line, key, NULL };
	va_list ap;

	va_start(ap, fmt);
	vreport(p->cfg, &o, fmt, ap);
	va_end(ap);
}

static void begin_listener(struct ini *p, const char *name)
{
	struct config_listener *prev = find_listener(p->cfg, name);

	p->sec = SEC_LISTENER;
	if (prev) {
		line_error(p, NULL,
			   "section [listener %s]: duplicate listener name "
			   "'%s' (first at line %d)", name, name, prev->line);
		/* Its keys are still checked, into a throwaway listener. */
		listener_free(&p->scratch);
		listener_init(&p->scratch);
		p->listener = &p->scratch;
		return;
	}
	p->listener = add_listener(p->cfg, name, p->line);
	if (!p->listener) {
		line_error(p, NULL, "out of memory");
		p->sec = SEC_IGNORED;
	}
}

static void begin_section(struct ini *p, const char *title)
{
	memset(p->seen_line, 0, sizeof(p->seen_line));
	snprintf(p->title, sizeof(p->title), "%s", title);
	p->sec = SEC_IGNORED;
	if (strcmp(title, "frameproxy") == 0) {
		p->sec = SEC_GLOBAL;
		return;
	}
	if (strncmp(title, "listener", 8) != 0 ||
	    (title[8] != '\0' && title[8] != ' ' && title[8] != '\t')) {
		line_error(p, NULL,
			   "unknown section [%s] (expected [frameproxy] or "
			   "[listener NAME])", title);
		return;
	}
	const char *name = title + 8;
	while (*name == ' ' || *name == '\t')
		name++;
	if (!valid_name(name)) {
		line_error(p, NULL,
			   "section [%s]: listener name must be 1-%d of "
			   "A-Z a-z 0-9 _ -", title, CONFIG_NAME_MAX);
		return;
	}
	begin_listener(p, name);
}

/* Trims white space at both ends, in place. */
static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	size_t n = strlen(s);
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	return s;
}

/* The first of chars in s, or the ';' of an inline comment (one after
 * white space), or the end of s. */
static char *find_or_comment(char *s, const char *chars)
{
	bool was_space = false;

	while (*s && !strchr(chars, *s) && !(was_space && *s == ';')) {
		was_space = isspace((unsigned char)*s);
		s++;
	}
	return s;
}

/* A key of the current section: look it up, refuse repeats of
 * single-valued keys, apply it. */
static void section_key(struct ini *p, const char *name, const char *value)
{
	bool global = p->sec == SEC_GLOBAL;
	const struct key_def *keys = global ? global_keys : listener_keys;
	const struct key_def *k = find_key(keys, global ? NGLOBAL : NLISTENER,
					   name);

	if (!k) {
		line_error(p, name, "unknown key in [%s]", p->title);
		return;
	}
	int *seen = &p->seen_line[k - keys];
	if (!k->repeat && *seen) {
		line_error(p, name, "set twice in [%s] (first at line %d)",
			   p->title, *seen);
		return;
	}
	*seen = p->line;
	struct config_origin o = { p->file, p->line, name, NULL };
	set_key(p->cfg, global ? (void *)p->cfg : (void *)p->listener, k,
		value, &o);
}

static void key_line(struct ini *p, char *s)
{
	char *end = find_or_comment(s, "=:");

	if (*end != '=' && *end != ':') {
		line_error(p, NULL, "expected 'key = value'");
		return;
	}
	*end = '\0';
	char *value = end + 1;
	*find_or_comment(value, "") = '\0';
	const char *name = trim(s);
	if (p->sec == SEC_NONE)
		line_error(p, name, "outside any section (put it under "
			   "[frameproxy] or [listener NAME])");
	else if (p->sec != SEC_IGNORED)
		section_key(p, name, trim(value));
}

static void header_line(struct ini *p, char *s)
{
	char *close = strchr(s, ']');

	if (!close) {
		line_error(p, NULL, "section header without ']'");
		p->sec = SEC_IGNORED;
		return;
	}
	*close = '\0';
	begin_section(p, trim(s + 1));
}

/* One line of n bytes, its newline included if it has one. */
static void ini_line(struct ini *p, const char *s, size_t n)
{
	char buf[LINE_MAX_CHARS + 2];

	if (p->line == 1 && n >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0) {
		s += 3;
		n -= 3;
	}
	while (n > 0 && (*s == ' ' || *s == '\t')) {
		s++;
		n--;
	}
	if (n > LINE_MAX_CHARS + 1) {
		line_error(p, NULL, "line longer than %d characters (split long "
			   "allow/deny lists over repeated keys)", LINE_MAX_CHARS);
		return;
	}
	memcpy(buf, s, n);
	buf[n] = '\0';
	char *t = trim(buf);
	if (*t == '\0' || *t == ';' || *t == '#')
		return;
	if (*t == '[')
		header_line(p, t);
	else
		key_line(p, t);
}

int config_load_string(struct config *cfg, const char *name,
		       const char *text)
{
	struct ini p;
	size_t before = config_error_count(cfg);
	size_t size = strlen(text);

	memset(&p, 0, sizeof(p));
	p.cfg = cfg;
	p.file = name;
	listener_init(&p.scratch);
	free(cfg->path);
	cfg->path = strdup(name);
	for (size_t pos = 0; pos < size;) {
		const char *start = text + pos;
		const char *nl = memchr(start, '\n', size - pos);
		size_t n = nl ? (size_t)(nl - start) + 1 : size - pos;
		pos += n;
		p.line++;
		ini_line(&p, start, n);
	}
	listener_free(&p.scratch);
	return config_error_count(cfg) > before ? -EINVAL : 0;
}

static int read_file(const char *path, char **out)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t len = 0, cap = 0;

	if (!f)
		return -errno;
	for (;;) {
		if (len + 4096 + 1 > cap) {
			cap = cap ? cap * 2 : 8192;
			char *p = realloc(buf, cap);
			if (!p) {
				free(buf);
				fclose(f);
				return -ENOMEM;
			}
			buf = p;
		}
		size_t n = fread(buf + len, 1, cap - len - 1, f);
		len += n;
		if (n == 0)
			break;
	}
	int err = ferror(f) ? -EIO : 0;
	fclose(f);
	buf[len] = '\0';
	if (err < 0 || memchr(buf, '\0', len)) {
		free(buf);
		return err < 0 ? err : -EILSEQ;
	}
	*out = buf;
	return 0;
}

int config_load_file(struct config *cfg, const char *path)
{
	struct config_origin o = { path, 0, NULL, NULL };
	char *text = NULL;
	int rc = read_file(path, &text);

	if (rc < 0) {
		report(cfg, &o, "cannot read: %s",
		       rc == -EILSEQ ? "binary file (NUL byte)" : strerror(-rc));
		return rc;
	}
	rc = config_load_string(cfg, path, text);
	free(text);
	return rc;
}

/* ---- overrides ---- */

static struct config_listener *override_listener(struct config *cfg,
						 const char *name)
{
	struct config_listener *l;

	if (name) {
		l = find_listener(cfg, name);
		return l ? l : add_listener(cfg, name, 0);
	}
	if (cfg->nlisteners > 0)
		return &cfg->listeners[0];
	return add_listener(cfg, "default", 0);
}

/* "listener.NAME.key" -> name, key; "key" -> NULL, key. */
static int split_override(const char *full, char *name, size_t namelen,
			  const char **key)
{
	if (strncmp(full, "listener.", 9) != 0) {
		*key = full;
		name[0] = '\0';
		return 0;
	}
	const char *n = full + 9;
	const char *dot = strchr(n, '.');
	if (!dot || (size_t)(dot - n) >= namelen)
		return -EINVAL;
	memcpy(name, n, (size_t)(dot - n));
	name[dot - n] = '\0';
	*key = dot + 1;
	return valid_name(name) ? 0 : -EINVAL;
}

int config_apply_override(struct config *cfg, const char *full,
			  const char *value, const char *origin)
{
	char label[128], name[CONFIG_NAME_MAX + 2];
	const char *key;

	if (!origin) {
		snprintf(label, sizeof(label), "override '%s'", full);
		origin = label;
	}
	struct config_origin o = { NULL, 0, NULL, origin };
	if (split_override(full, name, sizeof(name), &key) < 0) {
		report(cfg, &o, "invalid key '%s' (expected KEY or "
		       "listener.NAME.KEY)", full);
		return -EINVAL;
	}
	const struct key_def *k = name[0] ? NULL
			: find_key(global_keys, NGLOBAL, key);
	if (k)
		return set_key(cfg, cfg, k, value, &o);
	k = find_key(listener_keys, NLISTENER, key);
	if (!k) {
		report(cfg, &o, "unknown key '%s'", key);
		return -EINVAL;
	}
	struct config_listener *l = override_listener(cfg, name[0] ? name
								   : NULL);
	if (!l) {
		report(cfg, &o, "out of memory");
		return -ENOMEM;
	}
	return set_key(cfg, l, k, value, &o);
}

/* ---- cross-key checks ---- */

static void listener_error(struct config *cfg, const struct config_listener *l,
			   const char *why)
{
	struct config_origin o = { cfg->path, l->line, NULL, NULL };
	static const struct config_origin nowhere;

	if (l->line > 0 && cfg->path)
		report(cfg, &o, "section [listener %s]: %s", l->name, why);
	else
		report(cfg, &nowhere, "listener '%s' (command line): %s",
		       l->name, why);
}

static void check_listener(struct config *cfg, size_t i)
{
	const struct config_listener *l = &cfg->listeners[i];
	char why[WHY_MAX], addr[NETADDR_STRLEN];

	if (!l->has_listen)
		listener_error(cfg, l, "missing key 'listen'");
	if (l->nservers == 0)
		listener_error(cfg, l, "no 'server' lines");
	if (l->has_check_frame && l->check_frame_len > l->max_frame)
		listener_error(cfg, l, "check_frame is larger than max_frame");
	if (l->has_check_frame && l->health_interval == 0)
		listener_error(cfg, l, "check_frame is set but health_interval "
			       "is 0 (checks off)");
	if (!l->has_listen ||
	    netaddr_port((const struct sockaddr *)&l->listen.ss) == 0)
		return;
	for (size_t j = 0; j < i; j++) {
		const struct config_listener *o = &cfg->listeners[j];
		if (!o->has_listen ||
		    !netaddr_equal((const struct sockaddr *)&l->listen.ss,
				   (const struct sockaddr *)&o->listen.ss))
			continue;
		netaddr_format((const struct sockaddr *)&l->listen.ss, addr,
			       sizeof(addr));
		snprintf(why, sizeof(why),
			 "listen address %s is already used by [listener %s]",
			 addr, o->name);
		listener_error(cfg, l, why);
	}
}

/* Where steer was last set: its flag, or its line of the file. */
static struct config_origin steer_origin(const struct config *cfg)
{
	if (cfg->steer_flag || !cfg->path || cfg->steer_line == 0)
		return (struct config_origin){
			NULL, 0, NULL, cfg->steer_flag ? cfg->steer_flag : "steer"
		};
	return (struct config_origin){ cfg->path, cfg->steer_line, "steer",
				       NULL };
}

int config_finish(struct config *cfg)
{
	struct config_origin file = { cfg->path, 0, NULL, NULL };

	if (cfg->nlisteners == 0)
		report(cfg, &file, "%s",
		       cfg->path ? "no [listener NAME] section"
				 : "no listener: give a config file or "
				   "--listen and --server");
	for (size_t i = 0; i < cfg->nlisteners; i++)
		check_listener(cfg, i);
	if (cfg->steer == CONFIG_STEER_CPU && !cfg->pin) {
		struct config_origin o = steer_origin(cfg);
		report(cfg, &o, "steer = cpu needs pin = on");
	}
	return has_errors(cfg) ? -EINVAL : 0;
}

const char *config_poller_name(enum config_poller poller)
{
	switch (poller) {
	case CONFIG_POLLER_EPOLL:
		return "epoll";
	case CONFIG_POLLER_URING:
		return "uring";
	case CONFIG_POLLER_MIXED:
		return "mixed";
	case CONFIG_POLLER_AUTO:
	default:
		return "auto";
	}
}

const char *config_steer_name(enum config_steer steer)
{
	switch (steer) {
	case CONFIG_STEER_CPU:
		return "cpu";
	case CONFIG_STEER_HASH:
	default:
		return "hash";
	}
}

/* ---- reload ---- */

static bool differ(char *why, size_t why_len, const char *fmt, ...)
	LOG_PRINTF(3, 4);

/* Puts the reason in why (when there is room) and returns false. */
static bool differ(char *why, size_t why_len, const char *fmt, ...)
{
	va_list ap;

	if (why && why_len > 0) {
		va_start(ap, fmt);
		vsnprintf(why, why_len, fmt, ap);
		va_end(ap);
	}
	return false;
}

static bool same_addr(bool has_a, const struct netaddr *a, bool has_b,
		      const struct netaddr *b)
{
	if (has_a != has_b)
		return false;
	return !has_a || netaddr_equal((const struct sockaddr *)&a->ss,
				       (const struct sockaddr *)&b->ss);
}

static const char *shards_text(unsigned shards, char *buf, size_t len)
{
	if (shards == 0)
		return "auto";
	snprintf(buf, len, "%u", shards);
	return buf;
}

bool config_same_sockets(const struct config *a, const struct config *b,
			 char *why, size_t why_len)
{
	char sa[16], sb[16];

	for (size_t i = 0; i < a->nlisteners; i++) {
		if (!find_listener(b, a->listeners[i].name))
			return differ(why, why_len, "listener %s: removed "
				      "(restart needed)", a->listeners[i].name);
	}
	for (size_t i = 0; i < b->nlisteners; i++) {
		if (!find_listener(a, b->listeners[i].name))
			return differ(why, why_len, "listener %s: added "
				      "(restart needed)", b->listeners[i].name);
	}
	if (a->nlisteners != b->nlisteners) /* only with duplicate names */
		return differ(why, why_len, "listeners changed (restart "
			      "needed)");
	for (size_t i = 0; i < a->nlisteners; i++) {
		const struct config_listener *la = &a->listeners[i];
		const struct config_listener *lb = &b->listeners[i];
		if (strcmp(la->name, lb->name) != 0)
			return differ(why, why_len, "listener %s: moved "
				      "(listener order changed; restart "
				      "needed)", la->name);
		if (!same_addr(la->has_listen, &la->listen, lb->has_listen,
			       &lb->listen))
			return differ(why, why_len, "listener %s: listen "
				      "address changed (restart needed)",
				      la->name);
	}
	if (a->shards != b->shards)
		return differ(why, why_len, "shards changed from %s to %s "
			      "(restart needed)",
			      shards_text(a->shards, sa, sizeof(sa)),
			      shards_text(b->shards, sb, sizeof(sb)));
	if (a->has_admin != b->has_admin)
		return differ(why, why_len, "admin %s (restart needed)",
			      a->has_admin ? "removed" : "added");
	if (!same_addr(a->has_admin, &a->admin, b->has_admin, &b->admin))
		return differ(why, why_len, "admin address changed (restart "
			      "needed)");
	if ((a->user == NULL) != (b->user == NULL) ||
	    (a->user && strcmp(a->user, b->user) != 0))
		return differ(why, why_len, "user changed from %s to %s "
			      "(restart needed)", a->user ? a->user : "(none)",
			      b->user ? b->user : "(none)");
	if (why && why_len > 0)
		why[0] = '\0';
	return true;
}
