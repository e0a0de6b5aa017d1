/*
 * strbuf — a growable byte buffer for the supervisor's rendering and the
 * admin endpoint's requests and responses. Private to shard/.
 *
 * data is NUL-terminated whenever it is not NULL (data[len] == 0), so a
 * rendered text can be handed to string functions; len never counts that
 * terminator. Functions return 0 or -ENOMEM (strbuf_printf also -EINVAL for
 * a format vsnprintf refuses); on failure the contents are left as they
 * were.
 */
#ifndef FRAMEPROXY_SHARD_STRBUF_H
#define FRAMEPROXY_SHARD_STRBUF_H

#include <stdarg.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct strbuf {
	char *data;   /* NULL until the first append */
	size_t len;
	size_t cap;   /* bytes allocated, terminator included */
} strbuf;

void strbuf_init(strbuf *sb);
/* Releases the storage and leaves sb as strbuf_init does. */
void strbuf_free(strbuf *sb);
/* Empties sb but keeps its storage for the next use. */
void strbuf_reset(strbuf *sb);
/* Make room for `extra` more bytes. 0 or -ENOMEM. */
int strbuf_reserve(strbuf *sb, size_t extra);
int strbuf_append(strbuf *sb, const void *data, size_t len);
int strbuf_puts(strbuf *sb, const char *s);
int strbuf_printf(strbuf *sb, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int strbuf_vprintf(strbuf *sb, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

#ifdef __cplusplus
}
#endif

#endif
