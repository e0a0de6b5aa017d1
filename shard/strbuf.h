/*
 * strbuf — a growable byte buffer for the supervisor's rendering and the
 * admin endpoint's requests and responses, and the escaping both renderers
 * share. Private to shard/.
 *
 * data is NUL-terminated whenever it is not NULL (data[len] == 0), so a
 * rendered text can be handed to string functions; len never counts that
 * terminator. Functions return 0 or -ENOMEM (strbuf_printf also -EINVAL for
 * a format vsnprintf refuses); on failure the contents are left as they
 * were. The first failure sticks in `err`: every later call does nothing
 * and returns it until strbuf_reset, so a renderer appends freely and looks
 * once at the end.
 */
#ifndef FRAMEPROXY_SHARD_STRBUF_H
#define FRAMEPROXY_SHARD_STRBUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct strbuf {
	char *data;   /* NULL until the first append */
	size_t len;
	size_t cap;   /* bytes allocated, terminator included */
	int err;      /* the first failure since init or reset, or 0 */
} strbuf;

typedef enum strbuf_escaping {
	STRBUF_PROM_LABEL,   /* only \\, \" and \n are escapes */
	STRBUF_JSON,         /* also \u00XX for the other control bytes */
} strbuf_escaping;

void strbuf_init(strbuf *sb);
/* Releases the storage and leaves sb as strbuf_init does. */
void strbuf_free(strbuf *sb);
/* Empties sb and clears err, but keeps its storage for the next use. */
void strbuf_reset(strbuf *sb);
/* Make room for `extra` more bytes. 0 or -ENOMEM. */
int strbuf_reserve(strbuf *sb, size_t extra);
int strbuf_append(strbuf *sb, const void *data, size_t len);
int strbuf_puts(strbuf *sb, const char *s);
int strbuf_printf(strbuf *sb, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int strbuf_vprintf(strbuf *sb, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
/* A Prometheus label value or a JSON string body, without quotes. Bytes
 * that are not UTF-8 become U+FFFD: both formats require valid UTF-8. */
int strbuf_escaped(strbuf *sb, const char *text, strbuf_escaping how);
/* text as a quoted JSON string. */
int strbuf_json_string(strbuf *sb, const char *text);
/* Nanoseconds as exact decimal seconds, nine fraction digits ("1.500000000");
 * below 0 counts as 0. */
int strbuf_seconds(strbuf *sb, int64_t ns);

#ifdef __cplusplus
}
#endif

#endif
