/* The key=value part of a log line: a printf interpreter that formats each
 * conversion of a "k=%s k2=%d" format on its own, so each value can be
 * quoted on its own, and the quoting. */
#include "proxy/log_internal.h"

#include <stdio.h>
#include <string.h>
#include <sys/types.h>

/* ---- the bounded builder ---- */

static void buf_putn(log_buf *b, const char *s, size_t n)
{
	if (b->cut || b->len + n >= b->cap) {
		b->cut = true;
		return;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void log_buf_putc(log_buf *b, char c)
{
	buf_putn(b, &c, 1);
}

void log_buf_puts(log_buf *b, const char *s)
{
	while (*s)
		log_buf_putc(b, *s++);
}

/* ---- quoting ---- */

/*
 * Length of the valid UTF-8 character at s (1 to 4), or 0 when s starts
 * no valid one: a stray continuation byte, an overlong form, a surrogate,
 * past U+10FFFF, or cut short (the NUL is no continuation byte, so this
 * never reads past it).
 */
static size_t utf8_char_len(const unsigned char *s)
{
	unsigned char lo = 0x80, hi = 0xbf; /* the second byte's range */
	size_t n;

	if (s[0] < 0x80)
		return 1;
	if (s[0] < 0xc2 || s[0] > 0xf4)
		return 0;
	n = s[0] < 0xe0 ? 2 : s[0] < 0xf0 ? 3 : 4;
	if (s[0] == 0xe0)
		lo = 0xa0;
	else if (s[0] == 0xed)
		hi = 0x9f;
	else if (s[0] == 0xf0)
		lo = 0x90;
	else if (s[0] == 0xf4)
		hi = 0x8f;
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

/*
 * How many bytes at s may be written as they are: printable ASCII, or a
 * whole valid UTF-8 character other than a C1 control (U+0080..U+009F,
 * which terminals may obey like ESC). 0: the byte at s must be escaped.
 */
static size_t plain_len(const char *s)
{
	const unsigned char *u = (const unsigned char *)s;

	if (u[0] < 0x80)
		return u[0] >= ' ' && u[0] != 0x7f;
	if (u[0] == 0xc2 && u[1] < 0xa0)
		return 0;
	return utf8_char_len(u);
}

static bool needs_quotes(const char *s)
{
	if (*s == '\0')
		return true;
	while (*s) {
		size_t n = plain_len(s);
		if (n == 0 || *s == ' ' || *s == '"' || *s == '=' || *s == '\\')
			return true;
		s += n;
	}
	return false;
}

/* A byte that may not go out as it is: \n, \r, \t as logfmt readers
 * expect, anything else (ESC, DEL, a C1 control's bytes, invalid UTF-8)
 * as \xNN, so a value can neither end the line nor drive a terminal. */
static void put_escaped(log_buf *b, unsigned char c)
{
	static const char hex[] = "0123456789abcdef";
	char esc[4] = { '\\', 'x', hex[c >> 4], hex[c & 15] };

	switch (c) {
	case '\n': buf_putn(b, "\\n", 2); return;
	case '\r': buf_putn(b, "\\r", 2); return;
	case '\t': buf_putn(b, "\\t", 2); return;
	default: buf_putn(b, esc, sizeof(esc)); return;
	}
}

void log_buf_value(log_buf *b, const char *s, bool force)
{
	bool quoted = force || needs_quotes(s);

	if (quoted)
		log_buf_putc(b, '"');
	while (*s) {
		size_t n = plain_len(s);
		if (n == 0) {
			put_escaped(b, (unsigned char)*s++);
			continue;
		}
		if (*s == '"' || *s == '\\') {
			char esc[2] = { '\\', *s++ };
			buf_putn(b, esc, sizeof(esc));
			continue;
		}
		buf_putn(b, s, n); /* a character goes out whole or not at all */
		s += n;
	}
	if (quoted)
		log_buf_putc(b, '"');
}

size_t log_quote(char *buf, size_t len, size_t at, const char *s, bool force)
{
	log_buf b = { buf, at, len, false };

	if (len == 0 || at >= len)
		return at;
	log_buf_value(&b, s, force);
	return b.len;
}

/* ---- one printf conversion at a time ---- */

/* Bound for a '*' width or precision: wider than any value can be, so the
 * output is the same, and never an int that overflows the spec. */
#define STAR_MAX (LOG_VALUE_MAX + 1)

typedef struct printf_conv {
	char spec[48];  /* "%-08.3lld", any '*' replaced by its number */
	char length[3]; /* "", "hh", "h", "l", "ll", "z", "j", "t", "L" */
	char type;
} printf_conv;

static int star_value(va_list *ap)
{
	int v = va_arg(*ap, int);

	return v > STAR_MAX ? STAR_MAX : v < -STAR_MAX ? -STAR_MAX : v;
}

static bool spec_add(printf_conv *c, size_t *at, const char *s, size_t n)
{
	if (*at + n >= sizeof(c->spec))
		return false;
	memcpy(c->spec + *at, s, n);
	*at += n;
	return true;
}

/* Copies a width, or a precision with its '.', from fmt + *i into the
 * spec: digits as they are, a '*' as the int it fetches from ap. A
 * negative precision counts as none (C11 7.21.6.1): nothing is written. */
static bool copy_number(printf_conv *c, size_t *at, const char *fmt,
			size_t *i, bool precision, va_list *ap)
{
	char num[16];
	size_t n;

	if (precision && fmt[*i] != '.')
		return true;
	*i += precision;
	if (fmt[*i] == '*') {
		int v = star_value(ap);
		(*i)++;
		if (precision && v < 0)
			return true;
		n = (size_t)snprintf(num, sizeof(num), precision ? ".%d" : "%d", v);
		return spec_add(c, at, num, n);
	}
	n = strspn(fmt + *i, "0123456789");
	bool ok = (!precision || spec_add(c, at, ".", 1)) &&
		  spec_add(c, at, fmt + *i, n);
	*i += n;
	return ok;
}

/*
 * Parses the conversion at fmt ('%' included) into c, fetching the int of
 * any '*' from ap; returns the chars consumed, or 0 for an unsupported
 * conversion (ap may then be out of step: the caller stops).
 */
static size_t parse_conv(const char *fmt, printf_conv *c, va_list *ap)
{
	size_t i = 1 + strspn(fmt + 1, "-+ #0"), at = 0, n;

	memset(c, 0, sizeof(*c));
	if (!spec_add(c, &at, fmt, i) || !copy_number(c, &at, fmt, &i, false, ap) ||
	    !copy_number(c, &at, fmt, &i, true, ap))
		return 0;
	n = strspn(fmt + i, "hlzjtL");
	if (n > 2)
		return 0;
	memcpy(c->length, fmt + i, n);
	i += n;
	if (!fmt[i] || !strchr("diouxXeEfFgGaAcsp", fmt[i]))
		return 0;
	c->type = fmt[i];
	if (!spec_add(c, &at, fmt + i - n, n + 1))
		return 0;
	return i + 1;
}

/*
 * The one place a format made at run time is used: spec is a single
 * conversion parse_conv checked, and every caller passes exactly the one
 * argument of the type it names. Taking a va_list is what lets vsnprintf
 * accept a non-literal format without -Wformat-nonliteral complaining.
 */
static void conv_print(char *out, size_t len, const printf_conv *c, ...)
{
	va_list ap;

	va_start(ap, c);
	vsnprintf(out, len, c->spec, ap);
	va_end(ap);
}

static bool length_is(const printf_conv *c, const char *l)
{
	return strcmp(c->length, l) == 0;
}

/* Each branch fetches exactly the argument the conversion names, which is
 * what keeps the shared va_list in step. */
static void print_signed(char *out, size_t len, const printf_conv *c,
			 va_list *ap)
{
	if (length_is(c, "l"))
		conv_print(out, len, c, va_arg(*ap, long));
	else if (length_is(c, "ll") || length_is(c, "L"))
		conv_print(out, len, c, va_arg(*ap, long long));
	else if (length_is(c, "z"))
		conv_print(out, len, c, va_arg(*ap, ssize_t));
	else if (length_is(c, "j"))
		conv_print(out, len, c, va_arg(*ap, intmax_t));
	else if (length_is(c, "t"))
		conv_print(out, len, c, va_arg(*ap, ptrdiff_t));
	else
		conv_print(out, len, c, va_arg(*ap, int)); /* hh, h: promoted */
}

static void print_unsigned(char *out, size_t len, const printf_conv *c,
			   va_list *ap)
{
	if (length_is(c, "l"))
		conv_print(out, len, c, va_arg(*ap, unsigned long));
	else if (length_is(c, "ll") || length_is(c, "L"))
		conv_print(out, len, c, va_arg(*ap, unsigned long long));
	else if (length_is(c, "z"))
		conv_print(out, len, c, va_arg(*ap, size_t));
	else if (length_is(c, "j"))
		conv_print(out, len, c, va_arg(*ap, uintmax_t));
	else if (length_is(c, "t"))
		conv_print(out, len, c, va_arg(*ap, ptrdiff_t));
	else
		conv_print(out, len, c, va_arg(*ap, unsigned));
}

static void print_conv(char *out, size_t len, const printf_conv *c,
		       va_list *ap)
{
	out[0] = '\0';
	if (strchr("di", c->type)) {
		print_signed(out, len, c, ap);
	} else if (strchr("ouxX", c->type)) {
		print_unsigned(out, len, c, ap);
	} else if (c->type == 'c') {
		conv_print(out, len, c, va_arg(*ap, int));
	} else if (c->type == 'p') {
		conv_print(out, len, c, va_arg(*ap, void *));
	} else if (c->type == 's') {
		const char *s = va_arg(*ap, const char *);
		conv_print(out, len, c, s ? s : "(null)");
	} else if (length_is(c, "L")) {
		conv_print(out, len, c, va_arg(*ap, long double));
	} else {
		conv_print(out, len, c, va_arg(*ap, double));
	}
}

/* ---- the pairs ---- */

typedef struct log_pair {
	char key[128];
	char value[LOG_VALUE_MAX];
	log_buf k, v;
	bool in_value;
} log_pair;

static void field_reset(log_pair *f)
{
	f->k = (log_buf){ f->key, 0, sizeof(f->key), false };
	f->v = (log_buf){ f->value, 0, sizeof(f->value), false };
	f->key[0] = f->value[0] = '\0';
	f->in_value = false;
}

/* Keys are meant as names in the format's text, but a conversion may write
 * into one too: a byte that would break the pair or the line is '_'. */
static void put_key(log_buf *line, const char *k)
{
	for (; *k; k++) {
		unsigned char c = (unsigned char)*k;
		bool plain = c > ' ' && c < 0x7f && c != '"' && c != '=' && c != '\\';
		log_buf_putc(line, plain ? (char)c : '_');
	}
}

/* A pair whose key is empty is left out whole, so a caller can make a
 * field optional with a key from a conversion: " %s=%s", "" for both. */
static void field_emit(log_buf *line, log_pair *f)
{
	if (f->k.len == 0) {
		field_reset(f);
		return;
	}
	if (f->v.cut) {
		f->v.len = f->v.len > 3 ? f->v.len - 3 : 0;
		/* Not in the middle of a character: back up over up to 3
		 * continuation bytes, so "..." does not follow half of one. */
		for (int i = 0; i < 3 && f->v.len > 0 &&
				((unsigned char)f->value[f->v.len] & 0xc0) == 0x80; i++)
			f->v.len--;
		f->value[f->v.len] = '\0';
		f->v.cut = false;
		log_buf_puts(&f->v, "...");
	}
	log_buf_putc(line, ' ');
	put_key(line, f->key);
	if (f->in_value) {
		log_buf_putc(line, '=');
		log_buf_value(line, f->value, false);
	}
	field_reset(f);
}

static void field_append(log_pair *f, const char *s)
{
	log_buf_puts(f->in_value ? &f->v : &f->k, s);
}

void log_buf_fields(log_buf *line, const char *fmt, va_list *ap)
{
	/* 2 KiB+: kept off the small coroutine stacks callers run on. */
	static log_pair f;
	/* One byte more than a value holds, so an over-long conversion
	 * overflows the value and is marked as cut. */
	static char piece[LOG_VALUE_MAX + 1];
	printf_conv c;

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
			size_t n = parse_conv(fmt, &c, ap);
			if (n == 0) {
				/* Unknown conversion: stop before the va_list
				 * goes out of step. */
				field_append(&f, "%?");
				break;
			}
			print_conv(piece, sizeof(piece), &c, ap);
			field_append(&f, piece);
			fmt += n;
		} else {
			char one[2] = { *fmt++, '\0' };
			field_append(&f, one);
		}
	}
	field_emit(line, &f);
}
