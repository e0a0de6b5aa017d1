#include "proxy/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/config_keys.h"

#define ERROR_MAX 512 /* bytes in a message before escaping */

/* ---- errors ---- */

/* Length of the UTF-8 sequence at s, or 0 when it is not well formed or
 * is a C1 control (U+0080..U+009F, which terminals may obey). */
static size_t utf8_len(const unsigned char *s)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t n;

	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		n = 2;
		lo = s[0] == 0xc2 ? 0xa0 : lo;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		n = 3;
		lo = s[0] == 0xe0 ? 0xa0 : lo; /* overlong */
		hi = s[0] == 0xed ? 0x9f : hi; /* surrogates */
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		n = 4;
		lo = s[0] == 0xf0 ? 0x90 : lo; /* overlong */
		hi = s[0] == 0xf4 ? 0x8f : hi; /* past U+10FFFF */
	} else {
		return 0;
	}
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	}
	return n;
}

/* s with control bytes and bytes that are not UTF-8 written as \xNN: the
 * text of a config file or a flag is echoed in messages, and must not be
 * able to move the cursor, retitle the window or end the line. */
static char *escape_text(const char *s)
{
	char *out = malloc(strlen(s) * 4 + 1), *o = out;
	const unsigned char *p = (const unsigned char *)s;

	if (!out)
		return NULL;
	while (*p) {
		size_t n = *p < 0x20 || *p == 0x7f ? 0
			 : *p < 0x80		    ? 1
						    : utf8_len(p);
		if (n == 0) {
			o += sprintf(o, "\\x%02x", *p++);
			continue;
		}
		memcpy(o, p, n);
		o += n;
		p += n;
	}
	*o = '\0';
	return out;
}

static void add_error(config *cfg, const char *text)
{
	if (cfg->nerrors == CONFIG_MAX_ERRORS) {
		cfg->errors_dropped++;
		return;
	}
	cfg->errors[cfg->nerrors] = escape_text(text);
	if (cfg->errors[cfg->nerrors])
		cfg->nerrors++;
	else
		cfg->errors_dropped++;
}

static void vreport(config *cfg, const config_origin *o,
		    const char *fmt, va_list ap) LOG_PRINTF(3, 0);

/* Every config error goes through here: the message, prefixed by where
 * it came from:
 *   FILE:LINE: key 'KEY': message     a key of a file
 *   FILE:LINE: message                a line of a file
 *   FILE: message                     the file as a whole
 *   FLAG: message                     a command-line flag
 *   message                           nowhere in particular */
static void vreport(config *cfg, const config_origin *o,
		    const char *fmt, va_list ap)
{
	char msg[CONFIG_WHY_MAX], text[ERROR_MAX];

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

static void record_error(config *cfg, const config_origin *o,
			 const char *fmt, ...) LOG_PRINTF(3, 4);

static void record_error(config *cfg, const config_origin *o,
			 const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(cfg, o, fmt, ap);
	va_end(ap);
}

static bool has_errors(const config *cfg)
{
	return cfg->nerrors > 0 || cfg->errors_dropped > 0;
}

size_t config_error_count(const config *cfg)
{
	return cfg->nerrors + cfg->errors_dropped;
}

const char *config_error(const config *cfg, size_t i)
{
	return i < cfg->nerrors ? cfg->errors[i] : NULL;
}

void config_print_errors(const config *cfg, FILE *out)
{
	for (size_t i = 0; i < cfg->nerrors; i++)
		fprintf(out, "%s\n", cfg->errors[i]);
	if (cfg->errors_dropped)
		fprintf(out, "... and %zu more errors\n", cfg->errors_dropped);
}

/* Parses v into target per k; on error records it, named by o. */
static int set_key(config *cfg, void *target, const config_key *k,
		   const char *v, const config_origin *o)
{
	char why[CONFIG_WHY_MAX];

	if (k->set(target, k, v, o, why) == 0)
		return 0;
	record_error(cfg, o, "%s", why);
	return -EINVAL;
}

/* ---- model ---- */

static void listener_init(config_listener *l)
{
	memset(l, 0, sizeof(*l));
	acl_init(&l->acl);
	acl_init(&l->accept_proxy_from);
	config_keys_defaults(l, CONFIG_SCOPE_LISTENER);
}

static void listener_free(config_listener *l)
{
	free(l->name);
	acl_free(&l->acl);
	acl_free(&l->accept_proxy_from);
	free(l->check_frame);
	free(l->rpc.set_flag);
	free(l->send_proxy_flag);
	for (size_t i = 0; i < l->ntls_certs; i++)
		free(l->tls_certs[i]);
	for (size_t i = 0; i < l->ntls_keys; i++)
		free(l->tls_keys[i]);
	free(l->tls_certs);
	free(l->tls_keys);
	free(l->tls_ciphers);
	free(l->tls_ciphersuites);
	free(l->tls_verify_flag);
	free(l->tls_client_ca);
	free(l->tls_client_ca_flag);
	free(l->tls_alpn);
	tls_ctx_free(l->tls);
	free(l->upstream_tls_ca);
	free(l->upstream_tls_name);
	tls_ctx_free(l->upstream_tls_ctx);
	config_servers_free(l);
	memset(l, 0, sizeof(*l));
}

void config_init(config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	config_keys_defaults(cfg, CONFIG_SCOPE_GLOBAL);
}

void config_free(config *cfg)
{
	for (size_t i = 0; i < cfg->nlisteners; i++)
		listener_free(&cfg->listeners[i]);
	free(cfg->listeners);
	for (size_t i = 0; i < cfg->nerrors; i++)
		free(cfg->errors[i]);
	free(cfg->path);
	free(cfg->user);
	free(cfg->admin_token);
	free(cfg->steer_flag);
	free(cfg->resolvers);
	memset(cfg, 0, sizeof(*cfg));
}

static config_listener *find_listener(const config *cfg,
				      const char *name)
{
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		if (strcmp(cfg->listeners[i].name, name) == 0)
			return &cfg->listeners[i];
	}
	return NULL;
}

const config_listener *config_find_listener(const config *cfg,
					    const char *name)
{
	return find_listener(cfg, name);
}

static config_listener *add_listener(config *cfg,
				     const char *name, int line)
{
	size_t n = cfg->nlisteners + 1;
	config_listener *p = realloc(cfg->listeners, n * sizeof(*p));
	if (!p)
		return NULL;
	cfg->listeners = p;
	config_listener *l = &p[n - 1];
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

/* ---- INI file ----
 *
 * Line by line: [section] headers, key = value (or key: value), comments
 * from ';' or '#' at the start of a line or from " ;" after a value, a
 * UTF-8 BOM before the first line. Indentation is ignored and a value
 * never continues on the next line (repeated keys do that job). Every
 * line that is none of these is an error of its own. */

#define LINE_MAX_CHARS 197 /* besides the newline; the last line may have one more */

typedef enum section_kind { SEC_NONE, SEC_GLOBAL, SEC_LISTENER, SEC_IGNORED } section_kind;

typedef struct ini_parser {
	config *cfg;
	const char *file;
	int line;
	section_kind sec;
	char title[80];
	config_listener *listener;
	config_listener scratch; /* for a duplicate listener section */
	int seen_line[CONFIG_KEYS_MAX]; /* per key, in this section */
} ini_parser;

static void line_error(ini_parser *p, const char *key, const char *fmt, ...)
	LOG_PRINTF(3, 4);

static void line_error(ini_parser *p, const char *key, const char *fmt, ...)
{
	config_origin o = { p->file, p->line, key, NULL };
	va_list ap;

	va_start(ap, fmt);
	vreport(p->cfg, &o, fmt, ap);
	va_end(ap);
}

static void begin_listener(ini_parser *p, const char *name)
{
	config_listener *prev = find_listener(p->cfg, name);

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

static void begin_section(ini_parser *p, const char *title)
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
static void section_key(ini_parser *p, const char *name, const char *value)
{
	const config_key *k = config_key_find(name);
	bool global = p->sec == SEC_GLOBAL;

	if (!k || k->scope != (global ? CONFIG_SCOPE_GLOBAL
				      : CONFIG_SCOPE_LISTENER)) {
		line_error(p, name, "unknown key in [%s]", p->title);
		return;
	}
	int *seen = &p->seen_line[k - config_keys];
	if (!k->repeat && *seen) {
		line_error(p, name, "set twice in [%s] (first at line %d)",
			   p->title, *seen);
		return;
	}
	*seen = p->line;
	config_origin o = { p->file, p->line, name, NULL };
	set_key(p->cfg, global ? (void *)p->cfg : (void *)p->listener, k,
		value, &o);
}

static void key_line(ini_parser *p, char *s)
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

static void header_line(ini_parser *p, char *s)
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
static void ini_line(ini_parser *p, const char *s, size_t n)
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

int config_load_string(config *cfg, const char *name,
		       const char *text)
{
	ini_parser p;
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

int config_load_file(config *cfg, const char *path)
{
	config_origin o = { path, 0, NULL, NULL };
	char *text = NULL;
	int rc = read_file(path, &text);

	if (rc < 0) {
		record_error(cfg, &o, "cannot read: %s",
			     rc == -EILSEQ ? "binary file (NUL byte)" : strerror(-rc));
		return rc;
	}
	rc = config_load_string(cfg, path, text);
	free(text);
	return rc;
}

/* ---- overrides ---- */

static config_listener *override_listener(config *cfg,
					  const char *name)
{
	config_listener *l;

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

int config_apply_override(config *cfg, const char *full,
			  const char *value, const char *origin)
{
	char label[128], name[CONFIG_NAME_MAX + 2];
	const char *key;

	if (!origin) {
		snprintf(label, sizeof(label), "override '%s'", full);
		origin = label;
	}
	config_origin o = { NULL, 0, NULL, origin };
	if (split_override(full, name, sizeof(name), &key) < 0) {
		record_error(cfg, &o, "invalid key '%s' (expected KEY or "
			     "listener.NAME.KEY)", full);
		return -EINVAL;
	}
	const config_key *k = config_key_find(key);
	if (k && k->scope == CONFIG_SCOPE_GLOBAL && !name[0])
		return set_key(cfg, cfg, k, value, &o);
	if (!k || k->scope != CONFIG_SCOPE_LISTENER) {
		record_error(cfg, &o, "unknown key '%s'", key);
		return -EINVAL;
	}
	config_listener *l = override_listener(cfg, name[0] ? name
								   : NULL);
	if (!l) {
		record_error(cfg, &o, "out of memory");
		return -ENOMEM;
	}
	return set_key(cfg, l, k, value, &o);
}

/* ---- cross-key checks ---- */

static void listener_error(config *cfg, const config_listener *l,
			   const char *why)
{
	config_origin o = { cfg->path, l->line, NULL, NULL };
	static const config_origin nowhere;

	if (l->line > 0 && cfg->path)
		record_error(cfg, &o, "section [listener %s]: %s", l->name, why);
	else
		record_error(cfg, &nowhere, "listener '%s' (command line): %s",
			     l->name, why);
}

/* An rpc field must lie within the largest frame, and its header and the
 * field within one buffer (a reply is matched by it from the buffer). */
static void check_rpc_field(config *cfg, const config_listener *l,
			    const char *key, const rpc_field *f)
{
	char why[CONFIG_WHY_MAX];
	uint64_t end = (uint64_t)f->offset + f->len;

	if (f->len == 0)
		return;
	if (end > l->max_frame) {
		snprintf(why, sizeof(why), "%s ends at byte %llu, past max_frame",
			 key, (unsigned long long)end);
		listener_error(cfg, l, why);
	}
	if (4 + end > l->buffer) {
		snprintf(why, sizeof(why), "%s ends at byte %llu, past buffer",
			 key, (unsigned long long)end);
		listener_error(cfg, l, why);
	}
}

static void check_rpc(config *cfg, const config_listener *l)
{
	const config_rpc *rpc = &l->rpc;

	if (l->mode != CONFIG_MODE_RPC) {
		if (!rpc->set_key)
			return;
		config_origin o = { cfg->path, rpc->set_line, rpc->set_key,
				    rpc->set_flag };
		if (!rpc->set_flag && (!cfg->path || rpc->set_line == 0))
			o = (config_origin){ NULL, 0, NULL, rpc->set_key };
		record_error(cfg, &o, "only for mode = rpc ([listener %s] is "
			     "mode = stream)", l->name);
		return;
	}
	check_rpc_field(cfg, l, "rpc_tag", &rpc->tag);
	check_rpc_field(cfg, l, "hash_key", &rpc->hash_key);
	if (rpc->hash_key.len && l->balance != BALANCE_HASH)
		listener_error(cfg, l, "hash_key needs balance = hash");
}

/* rpc mode shares upstream connections among clients: no one client can
 * be named at their start. */
static void check_send_proxy(config *cfg, const config_listener *l)
{
	if (l->mode != CONFIG_MODE_RPC || l->send_proxy == PROXY_HEADER_OFF)
		return;
	config_origin o = { cfg->path, l->send_proxy_line, "send_proxy",
			    l->send_proxy_flag };
	if (!l->send_proxy_flag && (!cfg->path || l->send_proxy_line == 0))
		o = (config_origin){ NULL, 0, NULL, "send_proxy" };
	record_error(cfg, &o, "not available in mode = rpc ([listener %s]): "
		     "its upstream connections are shared by many clients",
		     l->name);
}

/* An error about a key, named by the line (or flag) that set it. */
static void tls_key_error(config *cfg, const config_listener *l, int line,
			  const char *flag, const char *key, const char *why)
{
	config_origin o = { cfg->path, line, key, flag };

	if (!flag && (!cfg->path || line == 0))
		o = (config_origin){ NULL, 0, NULL, key };
	if (flag) /* "--set: key: ...": the flag alone does not say which */
		record_error(cfg, &o, "%s: %s ([listener %s])", key, why, l->name);
	else
		record_error(cfg, &o, "%s ([listener %s])", why, l->name);
}

/* mTLS: a verify mode and its CA go together; with TLS only. */
static bool check_tls_client(config *cfg, const config_listener *l)
{
	bool ok = true;

	if (l->tls_verify_client != TLS_VERIFY_OFF && !l->tls_client_ca) {
		tls_key_error(cfg, l, l->tls_verify_line, l->tls_verify_flag,
			      "tls_verify_client", "optional and required need "
			      "tls_client_ca");
		ok = false;
	}
	if (l->tls_client_ca && l->tls_verify_client == TLS_VERIFY_OFF) {
		tls_key_error(cfg, l, l->tls_client_ca_line, l->tls_client_ca_flag,
			      "tls_client_ca", "needs tls_verify_client = "
			      "optional or required");
		ok = false;
	}
	if (ok && l->ntls_certs == 0 && l->ntls_keys == 0 &&
	    (l->tls_client_ca || l->tls_alpn)) {
		listener_error(cfg, l, "tls_client_ca, tls_verify_client and "
			       "tls_alpn need tls_cert");
		ok = false;
	}
	return ok;
}

/* TLS termination: whole pairs, stream mode, and a context that builds
 * (a key that is not its certificate's is found only here). */
static void check_tls(config *cfg, config_listener *l)
{
	char why[CONFIG_WHY_MAX];

	/* A file refused has its own error: pairing what is left would only
	 * add a second, misleading one. */
	if (l->tls_unreadable || !check_tls_client(cfg, l) ||
	    (l->ntls_certs == 0 && l->ntls_keys == 0))
		return;
	if (l->ntls_certs != l->ntls_keys) {
		snprintf(why, sizeof(why), "%zu tls_cert lines but %zu tls_key "
			 "lines (they go in pairs)", l->ntls_certs, l->ntls_keys);
		listener_error(cfg, l, why);
		return;
	}
	if (l->mode == CONFIG_MODE_RPC) {
		listener_error(cfg, l, "tls_cert is not available in mode = rpc "
			       "yet (docs/TLS.md)");
		return;
	}
	tls_settings ts = {
		.certs = l->tls_certs, .keys = l->tls_keys,
		.pairs = l->ntls_certs, .min_version = l->tls_min_version,
		.ciphers = l->tls_ciphers, .ciphersuites = l->tls_ciphersuites,
		.verify_client = l->tls_verify_client,
		.client_ca = l->tls_client_ca, .alpn = l->tls_alpn,
	};
	char reason[CONFIG_WHY_MAX - 32];
	if (tls_ctx_build(&ts, &l->tls, reason, sizeof(reason)) < 0) {
		snprintf(why, sizeof(why), "TLS: %s", reason);
		listener_error(cfg, l, why);
	}
}

/* TLS origination: stream mode, its keys only with it on, a context
 * that builds (the CA file was read when its line was). */
static void check_upstream_tls(config *cfg, config_listener *l)
{
	char why[CONFIG_WHY_MAX];

	if (!l->upstream_tls) {
		if (l->upstream_tls_ca || l->upstream_tls_name)
			listener_error(cfg, l, "upstream_tls_ca and "
				       "upstream_tls_name need upstream_tls = on");
		return;
	}
	if (l->mode == CONFIG_MODE_RPC) {
		listener_error(cfg, l, "upstream_tls is not available in mode = "
			       "rpc yet (docs/TLS.md)");
		return;
	}
	char reason[CONFIG_WHY_MAX - 32];
	if (tls_client_ctx_build(l->upstream_tls_ca, reason, sizeof(reason),
				 &l->upstream_tls_ctx) < 0) {
		snprintf(why, sizeof(why), "upstream TLS: %s", reason);
		listener_error(cfg, l, why);
	}
}

static void check_listener(config *cfg, size_t i)
{
	check_tls(cfg, &cfg->listeners[i]);
	check_upstream_tls(cfg, &cfg->listeners[i]);
	const config_listener *l = &cfg->listeners[i];
	char why[CONFIG_WHY_MAX], addr[NETADDR_STRLEN];

	if (!l->has_listen)
		listener_error(cfg, l, "missing key 'listen'");
	if (l->nservers == 0 && l->nnames == 0)
		listener_error(cfg, l, "no 'server' lines");
	if (l->nservers + l->nnames * UPSTREAM_NAME_MAX_SERVERS > BALANCE_MAX_SERVERS) {
		snprintf(why, sizeof(why), "too many servers: %zu addresses and "
			 "%zu names of up to %d servers each, more than %d",
			 l->nservers, l->nnames, UPSTREAM_NAME_MAX_SERVERS,
			 BALANCE_MAX_SERVERS);
		listener_error(cfg, l, why);
	}
	if (l->has_check_frame && l->check_frame_len > l->max_frame)
		listener_error(cfg, l, "check_frame is larger than max_frame");
	if (l->has_check_frame && l->health_interval == 0)
		listener_error(cfg, l, "check_frame is set but health_interval "
			       "is 0 (checks off)");
	check_rpc(cfg, l);
	check_send_proxy(cfg, l);
	if (l->accept_proxy_from.allow.count && l->accept_proxy == PROXY_HEADER_OFF)
		listener_error(cfg, l, "accept_proxy_from is set but accept_proxy "
			       "is off (no header is read)");
	if (!l->has_listen ||
	    netaddr_port((const struct sockaddr *)&l->listen.ss) == 0)
		return;
	for (size_t j = 0; j < i; j++) {
		const config_listener *o = &cfg->listeners[j];
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
static config_origin steer_origin(const config *cfg)
{
	if (cfg->steer_flag || !cfg->path || cfg->steer_line == 0)
		return (config_origin){
			NULL, 0, NULL, cfg->steer_flag ? cfg->steer_flag : "steer"
		};
	return (config_origin){ cfg->path, cfg->steer_line, "steer",
				       NULL };
}

int config_finish(config *cfg)
{
	config_origin file = { cfg->path, 0, NULL, NULL };

	if (cfg->nlisteners == 0)
		record_error(cfg, &file, "%s",
			     cfg->path ? "no [listener NAME] section"
				 : "no listener: give a config file or "
				   "--listen and --server");
	for (size_t i = 0; i < cfg->nlisteners; i++)
		check_listener(cfg, i);
	if (cfg->resolve_min > cfg->resolve_max) {
		static const config_origin nowhere;
		record_error(cfg, &nowhere, "resolve_min is longer than resolve_max");
	}
	if (cfg->steer == CONFIG_STEER_CPU && !cfg->pin) {
		config_origin o = steer_origin(cfg);
		record_error(cfg, &o, "steer = cpu needs pin = on");
	}
	return has_errors(cfg) ? -EINVAL : 0;
}

const char *config_poller_name(config_poller poller)
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

const char *config_steer_name(config_steer steer)
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

static bool reload_mismatch(char *why, size_t why_len, const char *fmt, ...)
	LOG_PRINTF(3, 4);

/* Puts the reason in why (when there is room) and returns false. */
static bool reload_mismatch(char *why, size_t why_len, const char *fmt, ...)
{
	va_list ap;

	if (why && why_len > 0) {
		va_start(ap, fmt);
		vsnprintf(why, why_len, fmt, ap);
		va_end(ap);
	}
	return false;
}

static bool same_addr(bool has_a, const netaddr *a, bool has_b,
		      const netaddr *b)
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

bool config_same_sockets(const config *a, const config *b,
			 char *why, size_t why_len)
{
	char sa[16], sb[16];

	for (size_t i = 0; i < a->nlisteners; i++) {
		if (!find_listener(b, a->listeners[i].name))
			return reload_mismatch(why, why_len, "listener %s: removed "
					       "(restart needed)", a->listeners[i].name);
	}
	for (size_t i = 0; i < b->nlisteners; i++) {
		if (!find_listener(a, b->listeners[i].name))
			return reload_mismatch(why, why_len, "listener %s: added "
					       "(restart needed)", b->listeners[i].name);
	}
	if (a->nlisteners != b->nlisteners) /* only with duplicate names */
		return reload_mismatch(why, why_len, "listeners changed (restart "
				       "needed)");
	for (size_t i = 0; i < a->nlisteners; i++) {
		const config_listener *la = &a->listeners[i];
		const config_listener *lb = &b->listeners[i];
		if (strcmp(la->name, lb->name) != 0)
			return reload_mismatch(why, why_len, "listener %s: moved "
					       "(listener order changed; restart "
					       "needed)", la->name);
		if (!same_addr(la->has_listen, &la->listen, lb->has_listen,
			       &lb->listen))
			return reload_mismatch(why, why_len, "listener %s: listen "
					       "address changed (restart needed)",
					       la->name);
	}
	if (a->shards != b->shards)
		return reload_mismatch(why, why_len, "shards changed from %s to %s "
				       "(restart needed)",
				       shards_text(a->shards, sa, sizeof(sa)),
				       shards_text(b->shards, sb, sizeof(sb)));
	if (a->has_admin != b->has_admin)
		return reload_mismatch(why, why_len, "admin %s (restart needed)",
				       a->has_admin ? "removed" : "added");
	if (!same_addr(a->has_admin, &a->admin, b->has_admin, &b->admin))
		return reload_mismatch(why, why_len, "admin address changed (restart "
				       "needed)");
	if ((a->user == NULL) != (b->user == NULL) ||
	    (a->user && strcmp(a->user, b->user) != 0))
		return reload_mismatch(why, why_len, "user changed from %s to %s "
				       "(restart needed)", a->user ? a->user : "(none)",
				       b->user ? b->user : "(none)");
	if (why && why_len > 0)
		why[0] = '\0';
	return true;
}
