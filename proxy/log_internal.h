/*
 * log_internal — what the log's files share and nobody else uses: the
 * bounded line builder and value writer (log_format.c), the clocks and the
 * sink hook (log.c). Included only by proxy/log*.c.
 */
#ifndef FRAMEPROXY_PROXY_LOG_INTERNAL_H
#define FRAMEPROXY_PROXY_LOG_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxy/log.h"

/* A bounded string builder: never overflows, always NUL-terminated, and
 * once something did not fit (cut), nothing more is appended. */
typedef struct log_buf {
	char *p;
	size_t len, cap; /* cap includes the NUL */
	bool cut;
} log_buf;

void log_buf_putc(log_buf *b, char c);
void log_buf_puts(log_buf *b, const char *s);
/* s as one logfmt value: bare when it can be, otherwise (or when force)
 * quoted, with '"', '\\', control bytes and invalid UTF-8 escaped. */
void log_buf_value(log_buf *b, const char *s, bool force);
/* The pairs of a "k=%s k2=%d" format (see log.h), each value formatted
 * on its own and written with log_buf_value; a space before each pair. */
void log_buf_fields(log_buf *b, const char *kvfmt, va_list *ap);

/* The clocks log_set_clocks chose, in nanoseconds. */
int64_t log_realtime_ns(void);
int64_t log_monotonic_ns(void);

/*
 * Where a finished line goes when no FILE was given to log_set_output:
 * NULL is stdio's stderr. The non-blocking stderr sink (log_sink.c, in
 * proxy_relay because it uses sockets) installs itself here, so the line
 * assembly in proxy_core never depends on it.
 */
typedef void log_sink_fn(const char *line, size_t len);
void log_set_sink(log_sink_fn *sink);

#endif
