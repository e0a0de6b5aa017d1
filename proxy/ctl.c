/* `frameproxy ctl`: the admin endpoint from the command line (proxy/ctl.h). */
#include "proxy/ctl.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "poll/poll.h"
#include "proxy/config.h"
#include "shard/shard.h"

enum { CTL_OK = 0, CTL_FAILED = 1, CTL_USAGE = 2 };

#define CTL_MAX_RESPONSE (64u << 20)   /* /metrics of many shards fits */
#define CTL_TIMEOUT_S 10
#define CTL_CELL 128
#define CTL_MAX_COLS 8
#define CTL_JSON_DEPTH 32
#define CTL_STR_(x) #x
#define CTL_STR(x) CTL_STR_(x)

static void usage(FILE *out)
{
	fprintf(out,
"usage: frameproxy ctl [options] COMMAND\n"
"\n"
"Talks to a running frameproxy's admin endpoint (docs/ADMIN.md).\n"
"\n"
"  servers              every listener's servers: state, weight, health\n"
"  drain L S            no new connections to server S of listener L\n"
"  maint L S            drain, and stop its health checks\n"
"  ready L S            back in service\n"
"  weight L S N         weight 1.." CTL_STR(SHARD_SERVER_MAX_WEIGHT)
"; 0: back to the configured one\n"
"  stats                the shards' state and main figures\n"
"  reload               as SIGHUP: re-read the configuration\n"
"  upgrade              as SIGUSR2: run the binary now at the running one's\n"
"                       path and hand sockets and connections over to it\n"
"\n"
"  -c, --config FILE    take admin and admin_token from FILE\n"
"      --admin ADDR     HOST:PORT, PORT (loopback) or unix:PATH\n"
"                       (default: the config's, else " CTL_DEFAULT_ADMIN ")\n"
"      --token-file F   send its token as Authorization: Bearer\n"
"      --json           print the endpoint's answer as it came\n"
"  -h, --help           this text\n"
"\n"
"Exit status: 0 done, 1 the endpoint refused or was not reached, 2 usage.\n");
}

/* --- arguments ------------------------------------------------------------ */

typedef enum ctl_show {
	SHOW_SERVERS,   /* the table of GET /servers */
	SHOW_SERVER,    /* the one row a POST /servers/L/S answers */
	SHOW_STATS,
	SHOW_TEXT,      /* the body as it is */
} ctl_show;

typedef struct ctl_command {
	const char *name;
	int words;              /* arguments after the name */
	const char *method;
	const char *state;      /* state= for drain, maint, ready */
	ctl_show show;
	const char *path;       /* SHOW_TEXT: the endpoint's path */
} ctl_command;

static const ctl_command ctl_commands[] = {
	{ "servers", 0, "GET", NULL, SHOW_SERVERS, NULL },
	{ "drain", 2, "POST", "drain", SHOW_SERVER, NULL },
	{ "maint", 2, "POST", "maint", SHOW_SERVER, NULL },
	{ "ready", 2, "POST", "ready", SHOW_SERVER, NULL },
	{ "weight", 3, "POST", NULL, SHOW_SERVER, NULL },
	{ "stats", 0, "GET", NULL, SHOW_STATS, NULL },
	{ "reload", 0, "POST", NULL, SHOW_TEXT, "/reload" },
	{ "upgrade", 0, "POST", NULL, SHOW_TEXT, "/upgrade" },
};

typedef struct ctl_args {
	const char *config_path;
	const char *admin;
	const char *token_file;
	bool json;
	const ctl_command *command;
	char **words;           /* the command's own arguments */
} ctl_args;

static int usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "frameproxy ctl: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nTry 'frameproxy ctl --help'.\n");
	return CTL_USAGE;
}

static const ctl_command *command_find(const char *name)
{
	for (size_t k = 0; k < sizeof(ctl_commands) / sizeof(ctl_commands[0]); k++)
		if (strcmp(ctl_commands[k].name, name) == 0)
			return &ctl_commands[k];
	return NULL;
}

static bool all_digits(const char *s)
{
	return s[0] && strspn(s, "0123456789") == strlen(s);
}

/* The command and its arguments. -1: go on; otherwise the exit status. */
static int args_command(ctl_args *a, int argc, char **argv)
{
	if (optind >= argc)
		return usage_error("%s", "no command given");
	a->command = command_find(argv[optind]);
	if (!a->command)
		return usage_error("unknown command '%s'", argv[optind]);
	int have = argc - optind - 1;
	if (have != a->command->words) {
		fprintf(stderr, "frameproxy ctl: %s takes %d argument%s, not %d\n",
			a->command->name, a->command->words,
			a->command->words == 1 ? "" : "s", have);
		return CTL_USAGE;
	}
	a->words = argv + optind + 1;
	/* Longer names are no listener's or server's: say so rather than
	 * send a cut one. */
	for (int k = 0; k < have && k < 2; k++)
		if (strlen(a->words[k]) >= SHARD_NAME_MAX)
			return usage_error("'%s' is too long for a name",
					   a->words[k]);
	if (a->command->words == 3 && !all_digits(a->words[2]))
		return usage_error("weight: '%s' is not a number", a->words[2]);
	return -1;
}

enum { OPT_ADMIN = 256, OPT_TOKEN_FILE, OPT_JSON };

static int args_parse(ctl_args *a, int argc, char **argv)
{
	static const struct option options[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "admin", required_argument, NULL, OPT_ADMIN },
		{ "token-file", required_argument, NULL, OPT_TOKEN_FILE },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;

	*a = (ctl_args){ 0 };
	optind = 1;
	while ((opt = getopt_long(argc, argv, "c:h", options, NULL)) != -1) {
		if (opt == 'c')
			a->config_path = optarg;
		else if (opt == OPT_ADMIN)
			a->admin = optarg;
		else if (opt == OPT_TOKEN_FILE)
			a->token_file = optarg;
		else if (opt == OPT_JSON)
			a->json = true;
		else if (opt == 'h') {
			usage(stdout);
			return CTL_OK;
		} else {
			fprintf(stderr, "Try 'frameproxy ctl --help'.\n");
			return CTL_USAGE;
		}
	}
	return args_command(a, argc, argv);
}

/* --- where to: the config's keys, read by the proxy's own parsers ---------- */

typedef struct ctl_target {
	struct sockaddr_storage addr;
	socklen_t len;
	char where[sizeof(struct sockaddr_un) + 8]; /* for messages */
	char *token;                                  /* owned; NULL: none */
} ctl_target;

static void target_describe(ctl_target *t)
{
	if (t->addr.ss_family == AF_UNIX)
		snprintf(t->where, sizeof(t->where), "unix:%s",
			 ((const struct sockaddr_un *)&t->addr)->sun_path);
	else
		poll_addr_format((const struct sockaddr *)&t->addr, t->where,
				 sizeof(t->where));
}

static int target_resolve(const ctl_args *a, ctl_target *t)
{
	config cfg;

	config_init(&cfg);
	if (a->config_path)
		config_load_file(&cfg, a->config_path);
	if (a->admin || !cfg.has_admin)
		config_apply_override(&cfg, "admin",
				      a->admin ? a->admin : CTL_DEFAULT_ADMIN,
				      "--admin");
	if (a->token_file)
		config_apply_override(&cfg, "admin_token", a->token_file,
				      "--token-file");
	if (config_error_count(&cfg) > 0) {
		config_print_errors(&cfg, stderr);
		config_free(&cfg);
		return CTL_USAGE;
	}
	memcpy(&t->addr, &cfg.admin.ss, cfg.admin.len);
	t->len = cfg.admin.len;
	t->token = cfg.admin_token ? strdup(cfg.admin_token) : NULL;
	bool lost = cfg.admin_token && !t->token;
	config_free(&cfg);
	if (lost) {
		fprintf(stderr, "frameproxy ctl: out of memory\n");
		return CTL_FAILED;
	}
	target_describe(t);
	return -1;
}

/* --- HTTP: one request, Connection: close, the whole answer read ------------ */

typedef struct ctl_response {
	char *data;
	size_t len;
	int status;
	char status_line[128];        /* "HTTP/1.1 404 Not Found" */
	const char *body;
	size_t body_len;
} ctl_response;

static int connect_target(const ctl_target *t)
{
	int fd = socket(t->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* A blocking connect honours the send timeout. */
	struct timeval tv = { CTL_TIMEOUT_S, 0 };
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (const struct sockaddr *)&t->addr, t->len) < 0) {
		int err = errno == EINPROGRESS ? ETIMEDOUT : errno;
		close(fd);
		return -err;
	}
	return fd;
}

static int send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 && errno == EAGAIN ? -ETIMEDOUT : -errno;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int read_all(int fd, ctl_response *r)
{
	size_t cap = 0;

	for (;;) {
		if (r->len + 4096 > cap) {
			if (cap >= CTL_MAX_RESPONSE)
				return -EMSGSIZE;
			size_t grown = cap ? 2 * cap : 16384;
			char *p = realloc(r->data, grown + 1);
			if (!p)
				return -ENOMEM;
			r->data = p;
			cap = grown;
		}
		ssize_t got = recv(fd, r->data + r->len, cap - r->len, 0);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		if (got == 0)
			break;
		r->len += (size_t)got;
	}
	r->data[r->len] = '\0';
	return 0;
}

/* Status line and body; -EPROTO when it is not HTTP. */
static int response_parse(ctl_response *r)
{
	const char *eol = r->data ? strstr(r->data, "\r\n") : NULL;
	const char *hdr_end = r->data ? strstr(r->data, "\r\n\r\n") : NULL;

	if (!eol || !hdr_end || strncmp(r->data, "HTTP/1.", 7) != 0 ||
	    (size_t)(eol - r->data) < 12)
		return -EPROTO;
	snprintf(r->status_line, sizeof(r->status_line), "%.*s",
		 (int)(eol - r->data), r->data);
	r->status = atoi(r->data + 9);
	r->body = hdr_end + 4;
	r->body_len = r->len - (size_t)(r->body - r->data);
	return r->status >= 100 && r->status <= 599 ? 0 : -EPROTO;
}

/* Every byte but unreserved ones and ':' as %XX: names go in the path. */
static void path_escape(char *out, size_t cap, const char *s)
{
	size_t o = 0;

	for (; *s && o + 4 < cap; s++) {
		unsigned char c = (unsigned char)*s;
		if (isalnum(c) || strchr("-._~:", c))
			out[o++] = (char)c;
		else
			o += (size_t)snprintf(out + o, cap - o, "%%%02X", c);
	}
	out[o] = '\0';
}

static int request_build(const ctl_args *a, const ctl_target *t, char *req,
			 size_t cap)
{
	const ctl_command *c = a->command;
	char path[3 * 2 * SHARD_NAME_MAX + 16] = "/servers", body[64] = "";

	if (c->show == SHOW_STATS)
		snprintf(path, sizeof(path), "/stats");
	else if (c->show == SHOW_TEXT)
		snprintf(path, sizeof(path), "%s", c->path);
	if (c->show == SHOW_SERVER) {
		char l[3 * SHARD_NAME_MAX + 1], s[3 * SHARD_NAME_MAX + 1];
		path_escape(l, sizeof(l), a->words[0]);
		path_escape(s, sizeof(s), a->words[1]);
		snprintf(path, sizeof(path), "/servers/%s/%s", l, s);
		if (c->state)
			snprintf(body, sizeof(body), "state=%s", c->state);
		else
			snprintf(body, sizeof(body), "weight=%.20s", a->words[2]);
	}
	char length[96] = "";
	if (strcmp(c->method, "POST") == 0)
		snprintf(length, sizeof(length),
			 "Content-Type: application/x-www-form-urlencoded\r\n"
			 "Content-Length: %zu\r\n", strlen(body));
	int n = snprintf(req, cap, "%s %s HTTP/1.1\r\nHost: frameproxy\r\n"
			 "Connection: close\r\n%s%s%s%s\r\n%s", c->method, path,
			 t->token ? "Authorization: Bearer " : "",
			 t->token ? t->token : "", t->token ? "\r\n" : "",
			 length, body);
	return n >= 0 && (size_t)n < cap ? n : -ENAMETOOLONG;
}

static int exchange(const ctl_target *t, const char *req, size_t len,
		    ctl_response *r)
{
	int fd = connect_target(t);
	if (fd < 0) {
		fprintf(stderr, "frameproxy ctl: cannot reach the admin endpoint "
			"at %s: %s\n", t->where, strerror(-fd));
		return CTL_FAILED;
	}
	int rc = send_all(fd, req, len);
	if (rc == 0)
		rc = read_all(fd, r);
	close(fd);
	if (rc == 0)
		rc = response_parse(r);
	if (rc < 0) {
		fprintf(stderr, "frameproxy ctl: no answer from the admin endpoint "
			"at %s: %s\n", t->where,
			rc == -EPROTO ? "not an HTTP response" : strerror(-rc));
		return CTL_FAILED;
	}
	return -1;
}

/* --- a little JSON: enough to walk the endpoint's answers --------------------- */

/* One value: [p, end) */
typedef struct ctl_json {
	const char *p, *end;
} ctl_json;

static const char *json_ws(const char *p, const char *end)
{
	while (p < end && isspace((unsigned char)*p))
		p++;
	return p;
}

static const char *json_skip(const char *p, const char *end, int depth);

static const char *json_skip_string(const char *p, const char *end)
{
	for (p++; p < end; p++) {
		if (*p == '\\')
			p++;
		else if (*p == '"')
			return p + 1;
	}
	return NULL;
}

/* An object's or an array's members, past its closing bracket. */
static const char *json_skip_members(const char *p, const char *end,
				     int depth)
{
	char close = *p == '{' ? '}' : ']';
	bool object = close == '}';

	p = json_ws(p + 1, end);
	if (p < end && *p == close)
		return p + 1;
	while (p && p < end) {
		if (object) {
			if (*p != '"' || !(p = json_skip_string(p, end)))
				return NULL;
			p = json_ws(p, end);
			if (p >= end || *p != ':')
				return NULL;
			p = json_ws(p + 1, end);
		}
		if (!(p = json_skip(p, end, depth + 1)))
			return NULL;
		p = json_ws(p, end);
		if (p < end && *p == close)
			return p + 1;
		if (p >= end || *p != ',')
			return NULL;
		p = json_ws(p + 1, end);
	}
	return NULL;
}

/* Past the value at p, NULL when malformed. */
static const char *json_skip(const char *p, const char *end, int depth)
{
	if (p >= end || depth > CTL_JSON_DEPTH)
		return NULL;
	if (*p == '"')
		return json_skip_string(p, end);
	if (*p == '{' || *p == '[')
		return json_skip_members(p, end, depth);
	const char *q = p;
	while (q < end && (isalnum((unsigned char)*q) || (*q && strchr("+-.", *q))))
		q++;
	return q > p ? q : NULL;
}

static bool json_value(const char *p, const char *end, ctl_json *out)
{
	p = json_ws(p, end);
	const char *past = json_skip(p, end, 0);
	if (!past)
		return false;
	*out = (ctl_json){ p, past };
	return true;
}

/* The member `key` of the object v (keys are compared as written). */
static bool json_get(ctl_json v, const char *key, ctl_json *out)
{
	size_t klen = strlen(key);
	const char *p = v.p, *end = v.end;

	if (p >= end || *p != '{')
		return false;
	for (p = json_ws(p + 1, end); p < end && *p == '"';) {
		const char *kend = json_skip_string(p, end);
		if (!kend)
			return false;
		bool match = (size_t)(kend - p) == klen + 2 &&
			     memcmp(p + 1, key, klen) == 0;
		p = json_ws(kend, end);
		if (p >= end || *p != ':' || !json_value(p + 1, end, out))
			return false;
		if (match)
			return true;
		p = json_ws(out->end, end);
		if (p < end && *p == ',')
			p = json_ws(p + 1, end);
	}
	return false;
}

/* Array elements: *cursor starts at the '['; false after the last. */
static bool json_next(ctl_json arr, const char **cursor, ctl_json *out)
{
	const char *p = json_ws(*cursor ? *cursor : arr.p, arr.end);

	if (p >= arr.end || (!*cursor && *p != '['))
		return false;
	if (*p == '[' || *p == ',')
		p = json_ws(p + 1, arr.end);
	if (p >= arr.end || *p == ']' || !json_value(p, arr.end, out))
		return false;
	*cursor = out->end;
	return true;
}

/* A value as text: a string unescaped (anything not printable ASCII as
 * '?', so a name cannot drive the terminal), else as written. */
static void json_text(ctl_json v, char *out, size_t cap)
{
	size_t o = 0;
	const char *p = v.p, *end = v.end;
	bool str = p < end && *p == '"';

	if (str)
		p++, end--;
	for (; p < end && o + 1 < cap; p++) {
		char c = *p;
		if (str && c == '\\' && p + 1 < end) {
			c = *++p;
			if (c == 'u')
				c = '?', p += p + 4 < end ? 4 : 0;
			else if (c != '"' && c != '\\' && c != '/')
				c = '?';
		}
		out[o++] = c >= 0x20 && c < 0x7f ? c : '?';
	}
	out[o] = '\0';
}

static void json_field(ctl_json obj, const char *key, char *out, size_t cap)
{
	ctl_json v;

	if (json_get(obj, key, &v))
		json_text(v, out, cap);
	else
		snprintf(out, cap, "-");
}

/* --- tables ----------------------------------------------------------------- */

typedef struct ctl_table {
	size_t cols, rows;
	char (*cells)[CTL_CELL];
	size_t width[CTL_MAX_COLS];
} ctl_table;

static int table_row(ctl_table *t, char row[][CTL_CELL])
{
	void *grown = realloc(t->cells, (t->rows + 1) * t->cols * CTL_CELL);

	if (!grown)
		return -ENOMEM;
	t->cells = grown;
	for (size_t c = 0; c < t->cols; c++) {
		memcpy(t->cells[t->rows * t->cols + c], row[c], CTL_CELL);
		size_t w = strlen(row[c]);
		if (w > t->width[c])
			t->width[c] = w;
	}
	t->rows++;
	return 0;
}

static void table_print(const ctl_table *t)
{
	for (size_t r = 0; r < t->rows; r++) {
		for (size_t c = 0; c < t->cols; c++) {
			const char *cell = t->cells[r * t->cols + c];
			if (c + 1 == t->cols)
				printf("%s\n", cell);
			else
				printf("%-*s  ", (int)t->width[c], cell);
		}
	}
}

static int table_header(ctl_table *t, const char *const *names, size_t n)
{
	char row[CTL_MAX_COLS][CTL_CELL];

	*t = (ctl_table){ .cols = n };
	for (size_t c = 0; c < n; c++)
		snprintf(row[c], CTL_CELL, "%s", names[c]);
	return table_row(t, row);
}

/* --- showing answers ---------------------------------------------------------- */

static const char *const server_columns[] = {
	"LISTENER", "SERVER", "STATE", "WEIGHT", "HEALTH", "CONNECTIONS",
	"REQUESTS",
};
#define SERVER_COLS (sizeof(server_columns) / sizeof(server_columns[0]))

/* One server object as a row; *set: its weight was set by the endpoint. */
static int server_row(ctl_table *t, ctl_json obj, bool *set)
{
	static const char *const keys[] = {
		"listener", "address", "admin_state", "weight", "health",
		"connections", "requests",
	};
	char row[CTL_MAX_COLS][CTL_CELL], weight_set[32];

	for (size_t c = 0; c < SERVER_COLS; c++)
		json_field(obj, keys[c], row[c], CTL_CELL);
	json_field(obj, "weight_set", weight_set, sizeof(weight_set));
	if (strcmp(weight_set, "0") != 0 && strcmp(weight_set, "-") != 0) {
		*set = true;
		strncat(row[3], "*", CTL_CELL - strlen(row[3]) - 1);
	}
	return table_row(t, row);
}

static int show_servers(ctl_json doc, bool one)
{
	ctl_table t;
	ctl_json list, obj;
	const char *cursor = NULL;
	bool set = false, ok = true;

	if (table_header(&t, server_columns, SERVER_COLS) < 0)
		return -ENOMEM;
	if (one)
		ok = server_row(&t, doc, &set) == 0;
	else if (json_get(doc, "servers", &list))
		while (ok && json_next(list, &cursor, &obj))
			ok = server_row(&t, obj, &set) == 0;
	else
		ok = false;
	if (ok) {
		table_print(&t);
		if (set)
			printf("(* weight set on the admin endpoint)\n");
	}
	free(t.cells);
	return ok ? 0 : -EPROTO;
}

static const char *const shard_columns[] = {
	"SHARD", "PID", "STATE", "GENERATION", "POLLER", "CONNECTIONS",
	"ACCEPTED", "RSS_BYTES",
};
#define SHARD_COLS (sizeof(shard_columns) / sizeof(shard_columns[0]))

static int show_stats(ctl_json doc)
{
	static const char *const keys[] = {
		"shard", "pid", "state", "generation", "poller",
		"connections_active", "accepted", "rss_bytes",
	};
	char pid[32], version[64], uptime[64], reloads[32], restarts[32];
	char row[CTL_MAX_COLS][CTL_CELL];
	ctl_table t;
	ctl_json shards, obj;
	const char *cursor = NULL;
	bool ok = json_get(doc, "shards", &shards);

	json_field(doc, "pid", pid, sizeof(pid));
	json_field(doc, "version", version, sizeof(version));
	json_field(doc, "uptime_s", uptime, sizeof(uptime));
	json_field(doc, "reloads", reloads, sizeof(reloads));
	json_field(doc, "restarts", restarts, sizeof(restarts));
	if (!ok || table_header(&t, shard_columns, SHARD_COLS) < 0)
		return -EPROTO;
	while (ok && json_next(shards, &cursor, &obj)) {
		for (size_t c = 0; c < SHARD_COLS; c++)
			json_field(obj, keys[c], row[c], CTL_CELL);
		ok = table_row(&t, row) == 0;
	}
	if (ok) {
		printf("supervisor pid %s, version %s, up %.1fs, reloads %s, "
		       "restarts %s\n\n", pid, version, strtod(uptime, NULL),
		       reloads, restarts);
		table_print(&t);
	}
	free(t.cells);
	return ok ? 0 : -EPROTO;
}

static int show(const ctl_args *a, const ctl_response *r)
{
	ctl_json doc;
	const char *end = r->body + r->body_len;
	int rc = -EPROTO;

	if (a->json || a->command->show == SHOW_TEXT) {
		fwrite(r->body, 1, r->body_len, stdout);
		return CTL_OK;
	}
	if (json_value(r->body, end, &doc)) {
		if (a->command->show == SHOW_STATS)
			rc = show_stats(doc);
		else
			rc = show_servers(doc, a->command->show == SHOW_SERVER);
	}
	if (rc < 0) {
		fprintf(stderr, "frameproxy ctl: cannot read the endpoint's answer "
			"(try --json)\n");
		return CTL_FAILED;
	}
	return CTL_OK;
}

/* The status line and the endpoint's reason, one line. */
static int refused(const ctl_response *r)
{
	size_t n = r->body_len;

	while (n > 0 && isspace((unsigned char)r->body[n - 1]))
		n--;
	char reason[512];
	json_text((ctl_json){ r->body, r->body + n }, reason, sizeof(reason));
	fprintf(stderr, "frameproxy ctl: %s%s%s\n", r->status_line,
		n ? ": " : "", reason);
	return CTL_FAILED;
}

int ctl_main(int argc, char **argv)
{
	ctl_args a;
	ctl_target t = { 0 };
	ctl_response r = { 0 };
	char req[4096];

	int rc = args_parse(&a, argc, argv);
	if (rc >= 0)
		return rc;
	if ((rc = target_resolve(&a, &t)) >= 0)
		return rc;
	int len = request_build(&a, &t, req, sizeof(req));
	if (len < 0)
		rc = usage_error("%s", "the request does not fit (names too long)");
	else
		rc = exchange(&t, req, (size_t)len, &r);
	if (rc < 0)
		rc = r.status / 100 == 2 ? show(&a, &r) : refused(&r);
	free(r.data);
	free(t.token);
	return rc;
}
