#include "proxy/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

static FILE *log_out;
static enum log_level log_min = LOG_LEVEL_INFO;
static char *log_context;

static int64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t default_realtime(void)
{
	return clock_ns(CLOCK_REALTIME);
}

static int64_t default_monotonic(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

static int64_t (*now_realtime)(void) = default_realtime;
static int64_t (*now_monotonic)(void) = default_monotonic;

static void log_emit(const char *buf, size_t n);

void log_set_output(FILE *out)
{
	log_out = out;
}

void log_set_level(enum log_level level)
{
	log_min = level;
}

enum log_level log_get_level(void)
{
	return log_min;
}

bool log_enabled(enum log_level level)
{
	return level >= log_min;
}

void log_set_context(const char *kv)
{
	free(log_context);
	log_context = kv && *kv ? strdup(kv) : NULL;
}

void log_set_clocks(int64_t (*realtime_ns)(void),
		    int64_t (*monotonic_ns)(void))
{
	now_realtime = realtime_ns ? realtime_ns : default_realtime;
	now_monotonic = monotonic_ns ? monotonic_ns : default_monotonic;
}

static const char *const level_names[] = {
	[LOG_LEVEL_DEBUG] = "debug",
	[LOG_LEVEL_INFO] = "info",
	[LOG_LEVEL_WARN] = "warn",
	[LOG_LEVEL_ERROR] = "error",
};

int log_level_parse(const char *text, enum log_level *level)
{
	if (strcmp(text, "warning") == 0) {
		*level = LOG_LEVEL_WARN;
		return 0;
	}
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(text, level_names[i]) == 0) {
			*level = (enum log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *log_level_name(enum log_level level)
{
	if ((size_t)level >= sizeof(level_names) / sizeof(level_names[0]))
		return "?";
	return level_names[level];
}

/* ---- a bounded string builder: never overflows, remembers if it cut ---- */

struct sbuf {
	char *p;
	size_t len, cap; /* cap includes the NUL */
	bool cut;
};

static void sb_putc(struct sbuf *b, char c)
{
	if (b->len + 1 >= b->cap) {
		b->cut = true;
		return;
	}
	b->p[b->len++] = c;
	b->p[b->len] = '\0';
}

static void sb_puts(struct sbuf *b, const char *s)
{
	while (*s)
		sb_putc(b, *s++);
}

static bool needs_quotes(const char *s)
{
	if (*s == '\0')
		return true;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c == 0x7f)
			return true;
	}
	return false;
}

static void sb_escaped(struct sbuf *b, unsigned char c)
{
	static const char hex[] = "0123456789abcdef";

	switch (c) {
	case '"': sb_puts(b, "\\\""); return;
	case '\\': sb_puts(b, "\\\\"); return;
	case '\n': sb_puts(b, "\\n"); return;
	case '\r': sb_puts(b, "\\r"); return;
	case '\t': sb_puts(b, "\\t"); return;
	default:
		break;
	}
	if (c >= ' ' && c != 0x7f) {
		sb_putc(b, (char)c);
		return;
	}
	sb_puts(b, "\\u00");
	sb_putc(b, hex[c >> 4]);
	sb_putc(b, hex[c & 15]);
}

static void sb_quoted(struct sbuf *b, const char *s, bool force)
{
	if (!force && !needs_quotes(s)) {
		sb_puts(b, s);
		return;
	}
	sb_putc(b, '"');
	for (; *s; s++)
		sb_escaped(b, (unsigned char)*s);
	sb_putc(b, '"');
}

size_t log_quote(char *buf, size_t len, size_t at, const char *s, bool force)
{
	struct sbuf b = { buf, at, len, false };

	if (len == 0 || at >= len)
		return at;
	sb_quoted(&b, s, force);
	return b.len;
}

/* ---- one printf conversion at a time, so each value is its own field ---- */

struct conv {
	char spec[32]; /* "%-08.3lld" */
	char length[3];
	char type;
	int stars;     /* '*' width/precision: int arguments to fetch first */
};

/* Parses the conversion at fmt ('%' included); returns chars consumed or 0
 * for an unsupported one. */
static size_t parse_conv(const char *fmt, struct conv *c)
{
	size_t i = 1, n;

	memset(c, 0, sizeof(*c));
	i += strspn(fmt + i, "-+ #0");
	for (; fmt[i] == '*' || (fmt[i] >= '0' && fmt[i] <= '9'); i++)
		c->stars += fmt[i] == '*';
	if (fmt[i] == '.') {
		for (i++; fmt[i] == '*' || (fmt[i] >= '0' && fmt[i] <= '9'); i++)
			c->stars += fmt[i] == '*';
	}
	n = strspn(fmt + i, "hlzjtL");
	if (n > 2)
		return 0;
	memcpy(c->length, fmt + i, n);
	i += n;
	if (!fmt[i] || !strchr("diouxXeEfFgGaAcsp", fmt[i]))
		return 0;
	c->type = fmt[i++];
	if (i >= sizeof(c->spec))
		return 0;
	memcpy(c->spec, fmt, i);
	return i;
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"

/* Each helper fetches exactly the argument the conversion names, which is
 * what keeps the shared va_list in step. */
#define EMIT(T) snprintf(out, len, c->spec, s1, s2, va_arg(*ap, T))
#define EMIT_STARS(T)                                                      \
	(c->stars == 0	 ? snprintf(out, len, c->spec, va_arg(*ap, T))     \
	 : c->stars == 1 ? snprintf(out, len, c->spec, s1, va_arg(*ap, T)) \
			 : EMIT(T))

static void format_signed(char *out, size_t len, const struct conv *c,
			  int s1, int s2, va_list *ap)
{
	const char *l = c->length;

	if (!strcmp(l, "l"))
		EMIT_STARS(long);
	else if (!strcmp(l, "ll"))
		EMIT_STARS(long long);
	else if (!strcmp(l, "z"))
		EMIT_STARS(ssize_t);
	else if (!strcmp(l, "j"))
		EMIT_STARS(intmax_t);
	else if (!strcmp(l, "t"))
		EMIT_STARS(ptrdiff_t);
	else
		EMIT_STARS(int); /* hh, h and none are promoted to int */
}

static void format_unsigned(char *out, size_t len, const struct conv *c,
			    int s1, int s2, va_list *ap)
{
	const char *l = c->length;

	if (!strcmp(l, "l"))
		EMIT_STARS(unsigned long);
	else if (!strcmp(l, "ll"))
		EMIT_STARS(unsigned long long);
	else if (!strcmp(l, "z"))
		EMIT_STARS(size_t);
	else if (!strcmp(l, "j"))
		EMIT_STARS(uintmax_t);
	else if (!strcmp(l, "t"))
		EMIT_STARS(ptrdiff_t);
	else
		EMIT_STARS(unsigned);
}

static void format_other(char *out, size_t len, const struct conv *c,
			 int s1, int s2, va_list *ap)
{
	if (c->type == 'c') {
		EMIT_STARS(int);
	} else if (c->type == 'p') {
		EMIT_STARS(void *);
	} else if (c->type == 's') {
		const char *s = va_arg(*ap, const char *);
		const char *v = s ? s : "(null)";
		if (c->stars == 0)
			snprintf(out, len, c->spec, v);
		else if (c->stars == 1)
			snprintf(out, len, c->spec, s1, v);
		else
			snprintf(out, len, c->spec, s1, s2, v);
	} else if (!strcmp(c->length, "L")) {
		EMIT_STARS(long double);
	} else {
		EMIT_STARS(double);
	}
}

#pragma GCC diagnostic pop

static void format_conv(char *out, size_t len, const struct conv *c,
			va_list *ap)
{
	int s1 = c->stars >= 1 ? va_arg(*ap, int) : 0;
	int s2 = c->stars >= 2 ? va_arg(*ap, int) : 0;

	out[0] = '\0';
	if (strchr("di", c->type))
		format_signed(out, len, c, s1, s2, ap);
	else if (strchr("ouxX", c->type))
		format_unsigned(out, len, c, s1, s2, ap);
	else
		format_other(out, len, c, s1, s2, ap);
}

/* ---- the line ---- */

struct field {
	char key[128];
	char value[LOG_VALUE_MAX];
	struct sbuf k, v;
	bool in_value;
};

static void field_reset(struct field *f)
{
	f->k = (struct sbuf){ f->key, 0, sizeof(f->key), false };
	f->v = (struct sbuf){ f->value, 0, sizeof(f->value), false };
	f->key[0] = f->value[0] = '\0';
	f->in_value = false;
}

static void field_emit(struct sbuf *line, struct field *f)
{
	if (f->k.len == 0 && !f->in_value)
		return;
	if (f->v.cut) {
		f->v.len = f->v.len > 3 ? f->v.len - 3 : 0;
		f->value[f->v.len] = '\0';
		f->v.cut = false;
		sb_puts(&f->v, "...");
	}
	sb_putc(line, ' ');
	sb_puts(line, f->key);
	if (f->in_value) {
		sb_putc(line, '=');
		sb_quoted(line, f->value, false);
	}
	field_reset(f);
}

static void field_append(struct field *f, const char *s)
{
	sb_puts(f->in_value ? &f->v : &f->k, s);
}

static void format_fields(struct sbuf *line, const char *fmt, va_list *ap)
{
	/* 2 KiB+: kept off the small coroutine stacks callers run on. */
	static struct field f;
	/* One byte more than a value holds, so an over-long conversion
	 * overflows the value and is marked as cut. */
	static char piece[LOG_VALUE_MAX + 1];
	struct conv c;

	field_reset(&f);
	while (*fmt) {
		if (*fmt == ' ') {
			field_emit(line, &f);
			fmt++;
		} else if (*fmt == '=' && !f.in_value) {
			f.in_value = true;
			fmt++;
		} else if (fmt[0] == '%' && fmt[1] == '%') {
			field_append(&f, "%");
			fmt += 2;
		} else if (*fmt == '%') {
			size_t n = parse_conv(fmt, &c);
			if (n == 0) {
				/* Unknown conversion: stop before the va_list
				 * goes out of step. */
				field_append(&f, "%?");
				break;
			}
			format_conv(piece, sizeof(piece), &c, ap);
			field_append(&f, piece);
			fmt += n;
		} else {
			char one[2] = { *fmt++, '\0' };
			field_append(&f, one);
		}
	}
	field_emit(line, &f);
}

/* ---- the sink ---- */

/*
 * With log_use_nonblocking_stderr(), a line that cannot be written at once
 * is dropped and counted rather than waited for: a log reader that stalls
 * (a full pipe, a slow journal) must never stall the relay. The count goes
 * out as one "log lines dropped" line once the sink takes lines again.
 */
static int sink_fd = -1;      /* a non-blocking way to stderr, or -1 */
static bool sink_is_socket;   /* send(MSG_DONTWAIT) instead of write */
static char sink_rest[LOG_LINE_MAX]; /* a socket's cut line, still owed */
static size_t sink_rest_len;
static uint64_t sink_dropped; /* since the last "dropped" line */
static uint64_t sink_dropped_total;

int log_use_nonblocking_stderr(void)
{
	struct stat st;

	if (fstat(STDERR_FILENO, &st) < 0)
		return -errno;
	if (S_ISSOCK(st.st_mode)) {
		sink_fd = STDERR_FILENO;
		sink_is_socket = true;
		return 0;
	}
	if (!S_ISFIFO(st.st_mode))
		return 0; /* files and terminals: writes do not wait on a reader */
	/* A description of our own: O_NONBLOCK on fd 2 itself would also
	 * change it for whoever shares the pipe (the shell that started us). */
	int fd = open("/proc/self/fd/2", O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	sink_fd = fd;
	sink_is_socket = false;
	return 0;
}

void log_use_blocking_stderr(void)
{
	if (sink_fd > STDERR_FILENO)
		close(sink_fd);
	sink_fd = -1;
	sink_is_socket = false;
	sink_rest_len = 0;
	sink_dropped = 0;
}

uint64_t log_dropped_lines(void)
{
	return sink_dropped_total;
}

static ssize_t sink_write(const char *buf, size_t n)
{
	ssize_t w;

	do {
		w = sink_is_socket ? send(sink_fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL)
				   : write(sink_fd, buf, n);
	} while (w < 0 && errno == EINTR);
	return w;
}

/* Finishes a line a socket took only part of; true when none is owed. */
static bool sink_finish_rest(void)
{
	size_t at = 0;

	while (at < sink_rest_len) {
		ssize_t w = sink_write(sink_rest + at, sink_rest_len - at);
		if (w <= 0)
			break;
		at += (size_t)w;
	}
	memmove(sink_rest, sink_rest + at, sink_rest_len - at);
	sink_rest_len -= at;
	return sink_rest_len == 0;
}

/* Writes a whole line or nothing (a pipe takes up to PIPE_BUF bytes at
 * once); a socket may take part, and the rest is owed. */
static bool sink_put(const char *buf, size_t n)
{
	ssize_t w = sink_write(buf, n);

	if (w < 0)
		return false;
	if ((size_t)w < n) {
		memcpy(sink_rest, buf + w, n - (size_t)w);
		sink_rest_len = n - (size_t)w;
	}
	return true;
}

static void sink_drop(void)
{
	sink_dropped++;
	sink_dropped_total++;
}

static void log_emit(const char *buf, size_t n)
{
	static char note[256];

	if (log_out || sink_fd < 0) {
		FILE *out = log_out ? log_out : stderr;
		/* One write per line keeps lines whole when shards share stderr. */
		fwrite(buf, 1, n, out);
		fflush(out);
		return;
	}
	if (!sink_finish_rest()) {
		sink_drop();
		return;
	}
	if (sink_dropped > 0) {
		size_t len = log_format(note, sizeof(note), now_realtime(),
					LOG_LEVEL_WARN, "log lines dropped",
					"dropped=%llu reason=%s",
					(unsigned long long)sink_dropped,
					"stderr not taking lines");
		if (!sink_put(note, len)) {
			sink_drop();
			return;
		}
		sink_dropped = 0;
		if (sink_rest_len > 0) { /* the note went out in part */
			sink_drop();
			return;
		}
	}
	if (!sink_put(buf, n))
		sink_drop();
}

static void format_ts(struct sbuf *line, int64_t ns)
{
	time_t secs = (time_t)(ns / 1000000000);
	int ms = (int)((ns % 1000000000) / 1000000);
	struct tm tm;
	char ts[64];

	gmtime_r(&secs, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	sb_puts(line, "ts=");
	sb_puts(line, ts);
	snprintf(ts, sizeof(ts), ".%03dZ", ms);
	sb_puts(line, ts);
}

static size_t vformat(char *buf, size_t len, int64_t realtime_ns,
		      enum log_level level, const char *msg, const char *kvfmt,
		      va_list *ap)
{
	/* One byte held back so the newline always fits. */
	struct sbuf line = { buf, 0, len - 1, false };

	if (len < 2)
		return 0;
	buf[0] = '\0';
	format_ts(&line, realtime_ns);
	sb_puts(&line, " level=");
	sb_puts(&line, log_level_name(level));
	sb_puts(&line, " msg=");
	sb_quoted(&line, msg ? msg : "", true);
	if (log_context) {
		sb_putc(&line, ' ');
		sb_puts(&line, log_context);
	}
	if (kvfmt)
		format_fields(&line, kvfmt, ap);
	buf[line.len++] = '\n';
	buf[line.len] = '\0';
	return line.len;
}

size_t log_format(char *buf, size_t len, int64_t realtime_ns,
		  enum log_level level, const char *msg, const char *kvfmt, ...)
{
	va_list ap;

	va_start(ap, kvfmt);
	size_t n = vformat(buf, len, realtime_ns, level, msg, kvfmt, &ap);
	va_end(ap);
	return n;
}

void log_vline(enum log_level level, const char *msg, const char *kvfmt,
	       va_list ap)
{
	static char buf[LOG_LINE_MAX];
	va_list copy;

	if (!log_enabled(level))
		return;
	va_copy(copy, ap);
	size_t n = vformat(buf, sizeof(buf), now_realtime(), level, msg, kvfmt,
			   &copy);
	va_end(copy);
	log_emit(buf, n);
}

void log_line_pairs(enum log_level level, const char *msg, const char *pairs)
{
	static char buf[LOG_LINE_MAX];

	if (!log_enabled(level))
		return;
	size_t n = log_format(buf, sizeof(buf), now_realtime(), level, msg, NULL);
	if (pairs && *pairs && n > 0) {
		/* Replace the newline: the pairs go on the same line. */
		int more = snprintf(buf + n - 1, sizeof(buf) - (n - 1), " %s\n", pairs);
		n = more < 0 ? n : n - 1 + (size_t)more;
		if (n >= sizeof(buf)) {
			n = sizeof(buf) - 1;
			buf[n - 1] = '\n';
		}
	}
	log_emit(buf, n);
}

void log_line(enum log_level level, const char *msg, const char *kvfmt, ...)
{
	va_list ap;

	va_start(ap, kvfmt);
	log_vline(level, msg, kvfmt, ap);
	va_end(ap);
}

/* ---- rate limiting ---- */

#define WINDOW_NS INT64_C(1000000000)

void log_ratelimit_flush(struct log_ratelimit *rl)
{
	if (rl->suppressed == 0)
		return;
	log_line(rl->level, "log lines suppressed", "suppressed=%llu of=%s",
		 (unsigned long long)rl->suppressed, rl->msg);
	rl->suppressed = 0;
}

static void remember(struct log_ratelimit *rl, enum log_level level,
		     const char *msg)
{
	rl->level = level;
	snprintf(rl->msg, sizeof(rl->msg), "%s", msg ? msg : "");
}

bool log_ratelimited(struct log_ratelimit *rl, enum log_level level,
		     const char *msg, const char *kvfmt, ...)
{
	int64_t now = now_monotonic();
	va_list ap;

	if (!log_enabled(level))
		return false;
	if (!rl->started || now - rl->window_start >= WINDOW_NS) {
		log_ratelimit_flush(rl);
		rl->started = true;
		rl->window_start = now;
		rl->emitted = 0;
	}
	remember(rl, level, msg);
	if (rl->emitted >= rl->burst) {
		rl->suppressed++;
		return false;
	}
	rl->emitted++;
	va_start(ap, kvfmt);
	log_vline(level, msg, kvfmt, ap);
	va_end(ap);
	return true;
}
