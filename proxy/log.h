/* log — logfmt lines, one per event, on stderr by default:
 *
 *   ts=2026-11-22T21:55:01.123Z level=info msg="upstream down" listener=api upstream=10.0.0.2:9000 error="Connection refused" checks=3
 *
 * log_line takes the message and a printf-style list of key=value pairs:
 *
 *   log_line(LOG_LEVEL_WARN, "frame too large",
 *            "client=%s listener=%s len=%" PRIu32, who, name, len);
 *
 * The pairs are separated by spaces in the format; each value is formatted
 * on its own and quoted when it needs to be (empty, or has a space, '=',
 * '"', '\\', a control byte or invalid UTF-8), so a value with spaces
 * stays one field. Spaces produced by a conversion never split a field;
 * spaces written literally in the format always do. msg is always quoted.
 * Inside quotes '"' and '\\' are escaped with '\\', newline, CR and TAB
 * as \n \r \t, and every other byte that could drive a terminal or is not
 * UTF-8 (C0 and C1 controls, DEL, invalid sequences) as \xNN, so a value
 * cannot end the line or send escape sequences; valid UTF-8 passes
 * through. Keys are written as they are, except that a byte a conversion
 * put in a key that is not printable ASCII, or is '"', '=' or '\\',
 * becomes '_'.
 * A pair whose key comes out empty is left out, value and all: a field
 * may be optional, its key a conversion (" %s=%s" with "" and "").
 * Supported conversions: d i o u x X e E f F g G a A c s p and %%, with
 * flags, width, precision (also '*') and the hh h l ll z j t L lengths.
 * A line is at most LOG_LINE_MAX bytes; longer values are cut with "...".
 *
 * Processes are single-threaded (one per shard), so the sink, level and
 * rate-limit slots are plain globals/statics without locks; the line is
 * built in a static buffer (coroutine stacks are small), which also makes
 * these calls unsafe inside signal handlers.
 *
 * The files: log.c (the line, levels, context, clocks), log_format.c (the
 * pairs and the quoting), log_ratelimit.c, all in proxy_core; log_sink.c
 * (the non-blocking stderr below) is in proxy_relay, since it uses
 * sockets and proxy_core opens none.
 */
#ifndef FRAMEPROXY_PROXY_LOG_H
#define FRAMEPROXY_PROXY_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LOG_LINE_MAX 4096
#define LOG_VALUE_MAX 1024

/* A line's level. The type is not called log_level because the config's
 * field (and key) is. Not LOG_DEBUG/LOG_INFO: <syslog.h> defines those as
 * macros. */
typedef enum log_severity {
	LOG_LEVEL_DEBUG,
	LOG_LEVEL_INFO,
	LOG_LEVEL_WARN,
	LOG_LEVEL_ERROR,
} log_severity;

#if defined(__GNUC__)
#define LOG_PRINTF(fmt_idx, first) \
	__attribute__((format(printf, fmt_idx, first)))
#else
#define LOG_PRINTF(fmt_idx, first)
#endif

/* NULL means stderr. Lines below the level are dropped (default info). */
void log_set_output(FILE *out);

/*
 * In proxy_relay (log_sink.c). Makes writes to stderr never wait: when
 * stderr is a pipe (a private O_NONBLOCK description of it) or a socket
 * (MSG_DONTWAIT), a line the reader has no room for is dropped and
 * counted, and one line
 *   level=warn msg="log lines dropped" dropped=N reason="..."
 * goes out before the next line that fits. Files and terminals are
 * written as before. Call once, before forking shards. 0 or -errno.
 */
int log_use_nonblocking_stderr(void);
/* Back to plain (blocking) writes to stderr; a line still owed is lost. */
void log_use_blocking_stderr(void);
/* Lines dropped so far by this process (for metrics). */
uint64_t log_dropped_lines(void);
void log_set_level(log_severity level);
bool log_enabled(log_severity level);

/* Pairs added after msg on every line, e.g. "shard=3" (copied; NULL
 * clears). Written verbatim: the caller quotes if needed. */
void log_set_context(const char *kv);

/* "debug" | "info" | "warn" | "error" (also "warning"); -EINVAL. */
int log_level_parse(const char *text, log_severity *level);
const char *log_level_name(log_severity level);

/* Replaces the clocks (nanoseconds) for tests; NULL restores
 * clock_gettime(CLOCK_REALTIME) / clock_gettime(CLOCK_MONOTONIC). */
void log_set_clocks(int64_t (*realtime_ns)(void),
		    int64_t (*monotonic_ns)(void));

void log_line(log_severity level, const char *msg, const char *kvfmt, ...)
	LOG_PRINTF(3, 4);
void log_vline(log_severity level, const char *msg, const char *kvfmt,
	       va_list ap) LOG_PRINTF(3, 0);

/* Formats one line (with its '\n') into buf without writing it; returns
 * its length. For callers that want the text, and for tests. */
size_t log_format(char *buf, size_t len, int64_t realtime_ns,
		  log_severity level, const char *msg, const char *kvfmt,
		  ...) LOG_PRINTF(6, 7);

/* Appends s to buf as a logfmt value (quoted only when needed); returns the
 * new length (never past len - 1). */
size_t log_quote(char *buf, size_t len, size_t at, const char *s, bool force);

/* Rate limiting. One slot per call site and per object it reports on (a
 * listener, a pool), kept in that object:
 *
 *   l->accept_error_log = (log_ratelimit)LOG_RATELIMIT_INIT(5);
 *   log_ratelimited(&l->accept_error_log, LOG_LEVEL_WARN, "accept failed",
 *                   "err=%s", e);
 *
 * At most `burst` lines per one-second window pass; the rest are counted.
 * The first call after a window with suppressed lines first writes
 *   level=<same> msg="log lines suppressed" suppressed=N of="<msg>"
 * and log_ratelimit_flush writes that line at once (for periodic or
 * shutdown use), since a burst that simply stops has no next call. */
typedef struct log_ratelimit {
	unsigned burst;
	bool started;
	unsigned emitted;
	uint64_t suppressed;
	int64_t window_start;
	log_severity level;
	char msg[64];
} log_ratelimit;

#define LOG_RATELIMIT_INIT(burst) { (burst), false, 0, 0, 0, LOG_LEVEL_INFO, "" }

/* Returns true when the line was written. */
bool log_ratelimited(log_ratelimit *rl, log_severity level,
		     const char *msg, const char *kvfmt, ...) LOG_PRINTF(4, 5);
void log_ratelimit_flush(log_ratelimit *rl);

#ifdef __cplusplus
}
#endif

#endif
