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

static void put_escaped(log_buf *b, unsigned char c)
{
	static const char hex[] = "0123456789abcdef";
	char esc[7] = "\\u00";

	switch (c) {
	case '"': buf_putn(b, "\\\"", 2); return;
	case '\\': buf_putn(b, "\\\\", 2); return;
	case '\n': buf_putn(b, "\\n", 2); return;
	case '\r': buf_putn(b, "\\r", 2); return;
	case '\t': buf_putn(b, "\\t", 2); return;
	default:
		break;
	}
	if (c >= ' ' && c != 0x7f) {
		log_buf_putc(b, (char)c);
		return;
	}
	esc[4] = hex[c >> 4];
	esc[5] = hex[c & 15];
	buf_putn(b, esc, 6);
}

void log_buf_value(log_buf *b, const char *s, bool force)
{
	if (!force && !needs_quotes(s)) {
		log_buf_puts(b, s);
		return;
	}
	log_buf_putc(b, '"');
	for (; *s; s++)
		put_escaped(b, (unsigned char)*s);
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

struct conv {
	char spec[48];  /* "%-08.3lld", any '*' replaced by its number */
	char length[3]; /* "", "hh", "h", "l", "ll", "z", "j", "t", "L" */
	char type;
};

static int star_value(va_list *ap)
{
	int v = va_arg(*ap, int);

	return v > STAR_MAX ? STAR_MAX : v < -STAR_MAX ? -STAR_MAX : v;
}

static bool spec_add(struct conv *c, size_t *at, const char *s, size_t n)
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
static bool copy_number(struct conv *c, size_t *at, const char *fmt,
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
static size_t parse_conv(const char *fmt, struct conv *c, va_list *ap)
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
static void conv_print(char *out, size_t len, const struct conv *c, ...)
{
	va_list ap;

	va_start(ap, c);
	vsnprintf(out, len, c->spec, ap);
	va_end(ap);
}

static bool length_is(const struct conv *c, const char *l)
{
	return strcmp(c->length, l) == 0;
}

/* Each branch fetches exactly the argument the conversion names, which is
 * what keeps the shared va_list in step. */
static void print_signed(char *out, size_t len, const struct conv *c,
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

static void print_unsigned(char *out, size_t len, const struct conv *c,
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

static void print_conv(char *out, size_t len, const struct conv *c,
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

struct field {
	char key[128];
	char value[LOG_VALUE_MAX];
	log_buf k, v;
	bool in_value;
};

static void field_reset(struct field *f)
{
	f->k = (log_buf){ f->key, 0, sizeof(f->key), false };
	f->v = (log_buf){ f->value, 0, sizeof(f->value), false };
	f->key[0] = f->value[0] = '\0';
	f->in_value = false;
}

static void field_emit(log_buf *line, struct field *f)
{
	if (f->k.len == 0 && !f->in_value)
		return;
	if (f->v.cut) {
		f->v.len = f->v.len > 3 ? f->v.len - 3 : 0;
		f->value[f->v.len] = '\0';
		f->v.cut = false;
		log_buf_puts(&f->v, "...");
	}
	log_buf_putc(line, ' ');
	log_buf_puts(line, f->key);
	if (f->in_value) {
		log_buf_putc(line, '=');
		log_buf_value(line, f->value, false);
	}
	field_reset(f);
}

static void field_append(struct field *f, const char *s)
{
	log_buf_puts(f->in_value ? &f->v : &f->k, s);
}

void log_buf_fields(log_buf *line, const char *fmt, va_list *ap)
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
