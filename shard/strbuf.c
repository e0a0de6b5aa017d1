#include "shard/strbuf.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Small enough for a request, large enough that a scrape grows a few times. */
#define STRBUF_MIN_CAP 256
#define NS_PER_S 1000000000u

void strbuf_init(strbuf *sb)
{
	sb->data = NULL;
	sb->len = 0;
	sb->cap = 0;
	sb->err = 0;
}

void strbuf_free(strbuf *sb)
{
	free(sb->data);
	strbuf_init(sb);
}

void strbuf_reset(strbuf *sb)
{
	sb->len = 0;
	sb->err = 0;
	if (sb->data)
		sb->data[0] = '\0';
}

static int strbuf_fail(strbuf *sb, int err)
{
	sb->err = err;
	return err;
}

int strbuf_reserve(strbuf *sb, size_t extra)
{
	if (sb->err)
		return sb->err;
	if (extra > SIZE_MAX - 1 - sb->len)
		return strbuf_fail(sb, -ENOMEM);
	size_t need = sb->len + extra + 1;
	if (need <= sb->cap)
		return 0;

	size_t cap = sb->cap ? sb->cap : STRBUF_MIN_CAP;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	char *data = realloc(sb->data, cap);
	if (!data)
		return strbuf_fail(sb, -ENOMEM);
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

	if (sb->err)
		return sb->err;
	va_copy(again, ap);
	int n = vsnprintf(room ? sb->data + sb->len : NULL, room, fmt, ap);
	if (n < 0) {
		va_end(again);
		if (sb->data)
			sb->data[sb->len] = '\0';
		return strbuf_fail(sb, -EINVAL);
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

int strbuf_seconds(strbuf *sb, int64_t ns)
{
	uint64_t u = ns > 0 ? (uint64_t)ns : 0;

	/* Exact: no rounding through a double. */
	return strbuf_printf(sb, "%" PRIu64 ".%09" PRIu64, u / NS_PER_S,
			     u % NS_PER_S);
}

/* Length of the valid UTF-8 sequence at s, 0 if there is none. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xBF;
	size_t len;

	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF) {
		len = 2;
	} else if (c >= 0xE0 && c <= 0xEF) {
		len = 3;
		lo = c == 0xE0 ? 0xA0 : lo; /* overlong */
		hi = c == 0xED ? 0x9F : hi; /* surrogates */
	} else if (c >= 0xF0 && c <= 0xF4) {
		len = 4;
		lo = c == 0xF0 ? 0x90 : lo; /* overlong */
		hi = c == 0xF4 ? 0x8F : hi; /* above U+10FFFF */
	} else {
		return 0;
	}
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t k = 2; k < len; k++)
		if ((s[k] & 0xC0) != 0x80)
			return 0;
	return len;
}

/* Bytes at s that go out as they are. */
static size_t plain_run(const unsigned char *s, size_t n, bool json)
{
	size_t i = 0;

	while (i < n) {
		unsigned char c = s[i];
		if (c == '"' || c == '\\' || c == '\n' || (json && c < 0x20))
			break;
		size_t len = utf8_len(s + i, n - i);
		if (len == 0)
			break;
		i += len;
	}
	return i;
}

int strbuf_escaped(strbuf *sb, const char *text, strbuf_escaping how)
{
	const unsigned char *s = (const unsigned char *)text;
	size_t n = strlen(text), i = 0;
	bool json = how == STRBUF_JSON;

	while (i < n) {
		size_t run = plain_run(s + i, n - i, json);
		strbuf_append(sb, s + i, run);
		i += run;
		if (i == n)
			break;
		unsigned char c = s[i++];
		if (c == '"' || c == '\\')
			strbuf_printf(sb, "\\%c", c);
		else if (c == '\n')
			strbuf_puts(sb, "\\n");
		else if (c < 0x20)
			strbuf_printf(sb, "\\u%04x", c);
		else
			strbuf_puts(sb, "\xEF\xBF\xBD");
	}
	return sb->err;
}

int strbuf_json_string(strbuf *sb, const char *text)
{
	strbuf_puts(sb, "\"");
	strbuf_escaped(sb, text, STRBUF_JSON);
	return strbuf_puts(sb, "\"");
}
