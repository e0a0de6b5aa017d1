/* The line: timestamp, level, msg, context and pairs, and where it goes. */
#include "proxy/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proxy/log_internal.h"
#include "sched/sched.h"

static FILE *log_out;
static log_sink_fn *log_sink;
static log_severity log_min = LOG_LEVEL_INFO;
static char *log_context;

static int64_t default_realtime(void)
{
	return sched_clock_ns(CLOCK_REALTIME);
}

static int64_t default_monotonic(void)
{
	return sched_clock_ns(CLOCK_MONOTONIC);
}

static int64_t (*now_realtime)(void) = default_realtime;
static int64_t (*now_monotonic)(void) = default_monotonic;

int64_t log_realtime_ns(void)
{
	return now_realtime();
}

int64_t log_monotonic_ns(void)
{
	return now_monotonic();
}

void log_set_clocks(int64_t (*realtime_ns)(void),
		    int64_t (*monotonic_ns)(void))
{
	now_realtime = realtime_ns ? realtime_ns : default_realtime;
	now_monotonic = monotonic_ns ? monotonic_ns : default_monotonic;
}

void log_set_output(FILE *out)
{
	log_out = out;
}

void log_set_sink(log_sink_fn *sink)
{
	log_sink = sink;
}

void log_set_level(log_severity level)
{
	log_min = level;
}

bool log_enabled(log_severity level)
{
	return level >= log_min;
}

void log_set_context(const char *kv)
{
	free(log_context);
	log_context = kv && *kv ? strdup(kv) : NULL;
}

static const char *const level_names[] = {
	[LOG_LEVEL_DEBUG] = "debug",
	[LOG_LEVEL_INFO] = "info",
	[LOG_LEVEL_WARN] = "warn",
	[LOG_LEVEL_ERROR] = "error",
};

int log_level_parse(const char *text, log_severity *level)
{
	if (strcmp(text, "warning") == 0) {
		*level = LOG_LEVEL_WARN;
		return 0;
	}
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(text, level_names[i]) == 0) {
			*level = (log_severity)i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *log_level_name(log_severity level)
{
	if ((size_t)level >= sizeof(level_names) / sizeof(level_names[0]))
		return "?";
	return level_names[level];
}

static void format_ts(log_buf *line, int64_t ns)
{
	time_t secs = (time_t)(ns / 1000000000);
	int ms = (int)((ns % 1000000000) / 1000000);
	struct tm tm;
	char ts[64];

	gmtime_r(&secs, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	log_buf_puts(line, "ts=");
	log_buf_puts(line, ts);
	snprintf(ts, sizeof(ts), ".%03dZ", ms);
	log_buf_puts(line, ts);
}

static size_t vformat(char *buf, size_t len, int64_t realtime_ns,
		      log_severity level, const char *msg, const char *kvfmt,
		      va_list *ap)
{
	/* One byte held back so the newline always fits. */
	log_buf line = { buf, 0, len - 1, false };

	if (len < 2)
		return 0;
	buf[0] = '\0';
	format_ts(&line, realtime_ns);
	log_buf_puts(&line, " level=");
	log_buf_puts(&line, log_level_name(level));
	log_buf_puts(&line, " msg=");
	log_buf_value(&line, msg ? msg : "", true);
	if (log_context) {
		log_buf_putc(&line, ' ');
		log_buf_puts(&line, log_context);
	}
	if (kvfmt)
		log_buf_fields(&line, kvfmt, ap);
	buf[line.len++] = '\n';
	buf[line.len] = '\0';
	return line.len;
}

size_t log_format(char *buf, size_t len, int64_t realtime_ns,
		  log_severity level, const char *msg, const char *kvfmt, ...)
{
	va_list ap;

	va_start(ap, kvfmt);
	size_t n = vformat(buf, len, realtime_ns, level, msg, kvfmt, &ap);
	va_end(ap);
	return n;
}

static void log_emit(const char *buf, size_t n)
{
	if (!log_out && log_sink) {
		log_sink(buf, n);
		return;
	}
	FILE *out = log_out ? log_out : stderr;
	/* One write per line keeps lines whole when shards share stderr. */
	fwrite(buf, 1, n, out);
	fflush(out);
}

void log_vline(log_severity level, const char *msg, const char *kvfmt,
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

void log_line(log_severity level, const char *msg, const char *kvfmt, ...)
{
	va_list ap;

	va_start(ap, kvfmt);
	log_vline(level, msg, kvfmt, ap);
	va_end(ap);
}
