#include "shard/strbuf.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Small enough for a request, large enough that a scrape grows a few times. */
#define STRBUF_MIN_CAP 256

void strbuf_init(strbuf *sb)
{
	sb->data = NULL;
	sb->len = 0;
	sb->cap = 0;
}

void strbuf_free(strbuf *sb)
{
	free(sb->data);
	strbuf_init(sb);
}

void strbuf_reset(strbuf *sb)
{
	sb->len = 0;
	if (sb->data)
		sb->data[0] = '\0';
}

int strbuf_reserve(strbuf *sb, size_t extra)
{
	if (extra > SIZE_MAX - 1 - sb->len)
		return -ENOMEM;
	size_t need = sb->len + extra + 1;
	if (need <= sb->cap)
		return 0;

	size_t cap = sb->cap ? sb->cap : STRBUF_MIN_CAP;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	char *data = realloc(sb->data, cap);
	if (!data)
		return -ENOMEM;
	if (!sb->data)
		data[0] = '\0';
	sb->data = data;
	sb->cap = cap;
	return 0;
}

int strbuf_append(strbuf *sb, const void *data, size_t len)
{
	int err = strbuf_reserve(sb, len);
	if (err)
		return err;
	if (len)
		memcpy(sb->data + sb->len, data, len);
	sb->len += len;
	sb->data[sb->len] = '\0';
	return 0;
}

int strbuf_puts(strbuf *sb, const char *s)
{
	return strbuf_append(sb, s, strlen(s));
}

int strbuf_vprintf(strbuf *sb, const char *fmt, va_list ap)
{
	va_list again;
	size_t room = sb->cap ? sb->cap - sb->len : 0;

	va_copy(again, ap);
	int n = vsnprintf(room ? sb->data + sb->len : NULL, room, fmt, ap);
	if (n < 0) {
		va_end(again);
		return -EINVAL;
	}
	if ((size_t)n < room) {
		sb->len += (size_t)n;
		va_end(again);
		return 0;
	}

	/* The first try may have written a cut-off copy past len: restore the
	 * terminator so a failure leaves the contents untouched. */
	if (sb->data)
		sb->data[sb->len] = '\0';
	int err = strbuf_reserve(sb, (size_t)n);
	if (!err) {
		vsnprintf(sb->data + sb->len, (size_t)n + 1, fmt, again);
		sb->len += (size_t)n;
	}
	va_end(again);
	return err;
}

int strbuf_printf(strbuf *sb, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	int err = strbuf_vprintf(sb, fmt, ap);
	va_end(ap);
	return err;
}
