/*
 * json — see json.h. A recursive-descent parser; every
 * function returns 0 or a negative errno and leaves the reason for a
 * syntax error in the doc.
 */
#include "tools/frametop/json.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct json_parser {
	json_doc *doc;
	const unsigned char *s;
	size_t len, pos;
	unsigned depth;
} json_parser;

static int parse_value(json_parser *p, uint32_t *idx);

static int fail(json_parser *p, const char *why)
{
	p->doc->error = why;
	p->doc->error_at = p->pos;
	return -EINVAL;
}

static bool at_end(const json_parser *p)
{
	return p->pos >= p->len;
}

static int peek(const json_parser *p)
{
	return at_end(p) ? -1 : p->s[p->pos];
}

static void skip_ws(json_parser *p)
{
	while (!at_end(p)) {
		unsigned char c = p->s[p->pos];
		if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
			return;
		p->pos++;
	}
}

/* A new zeroed value; its index, because the array may move. */
static int new_value(json_parser *p, json_type type, uint32_t *idx)
{
	json_doc *d = p->doc;
	if (d->count >= JSON_MAX_VALUES)
		return -E2BIG;
	if (d->count == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 64;
		json_value *v = realloc(d->values, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		d->values = v;
		d->cap = cap;
	}
	memset(&d->values[d->count], 0, sizeof(d->values[0]));
	d->values[d->count].type = type;
	*idx = (uint32_t)d->count++;
	return 0;
}

/* --- literals and numbers ------------------------------------------------ */

static int parse_literal(json_parser *p, const char *word, json_type type,
			 bool boolean, uint32_t *idx)
{
	size_t n = strlen(word);
	if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0)
		return fail(p, "invalid literal");
	p->pos += n;
	int err = new_value(p, type, idx);
	if (err == 0)
		p->doc->values[*idx].boolean = boolean;
	return err;
}

static size_t skip_digits(json_parser *p)
{
	size_t start = p->pos;
	while (!at_end(p) && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
		p->pos++;
	return p->pos - start;
}

/* Checks the grammar; *integer when there is no sign, fraction, exponent. */
static int scan_number(json_parser *p, bool *integer)
{
	*integer = peek(p) != '-';
	if (peek(p) == '-')
		p->pos++;
	if (peek(p) == '0')
		p->pos++;    /* a leading 0 stands alone: "01" ends at the 0 */
	else if (skip_digits(p) == 0)
		return fail(p, "invalid number");
	if (peek(p) == '.') {
		p->pos++;
		*integer = false;
		if (skip_digits(p) == 0)
			return fail(p, "digit expected after '.'");
	}
	if (peek(p) == 'e' || peek(p) == 'E') {
		p->pos++;
		*integer = false;
		if (peek(p) == '+' || peek(p) == '-')
			p->pos++;
		if (skip_digits(p) == 0)
			return fail(p, "digit expected in exponent");
	}
	return 0;
}

/* Exact value of an unsigned decimal, false when it passes UINT64_MAX. */
static bool digits_u64(const char *s, size_t n, uint64_t *out)
{
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		uint64_t d = (uint64_t)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

static int parse_number(json_parser *p, uint32_t *idx)
{
	size_t start = p->pos;
	bool integer;
	int err = scan_number(p, &integer);
	if (err < 0)
		return err;
	size_t n = p->pos - start;
	char buf[JSON_MAX_NUMBER + 1];
	if (n > JSON_MAX_NUMBER)
		return fail(p, "number too long");
	memcpy(buf, p->s + start, n);
	buf[n] = '\0';
	double num = strtod(buf, NULL);  /* the grammar is already checked */
	if (!isfinite(num))
		return fail(p, "number out of range");
	err = new_value(p, JSON_NUMBER, idx);
	if (err < 0)
		return err;
	json_value *v = &p->doc->values[*idx];
	v->num = num;
	v->is_u64 = integer && digits_u64(buf, n, &v->u64);
	return 0;
}

/* --- strings -------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (1..4), 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t avail)
{
	unsigned char c = s[0];
	size_t n;
	uint32_t cp, min;
	if (c < 0x80)
		return 1;
	if ((c & 0xe0) == 0xc0) {
		n = 2, cp = c & 0x1f, min = 0x80;
	} else if ((c & 0xf0) == 0xe0) {
		n = 3, cp = c & 0x0f, min = 0x800;
	} else if ((c & 0xf8) == 0xf0) {
		n = 4, cp = c & 0x07, min = 0x10000;
	} else {
		return 0;
	}
	if (avail < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	/* Overlong forms, UTF-16 surrogates and past U+10FFFF are invalid. */
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

static size_t put_utf8(char *out, uint32_t cp)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | (cp >> 18));
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* Four hex digits after "\u". */
static int read_hex4(json_parser *p, uint32_t *out)
{
	if (p->len - p->pos < 4)
		return fail(p, "truncated \\u escape");
	uint32_t v = 0;
	for (int i = 0; i < 4; i++) {
		unsigned char c = p->s[p->pos + (size_t)i];
		uint32_t d;
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10u;
		else if (c >= 'A' && c <= 'F')
			d = c - 'A' + 10u;
		else
			return fail(p, "invalid \\u escape");
		v = (v << 4) | d;
	}
	p->pos += 4;
	*out = v;
	return 0;
}

/* After "\u": one code point, joining a surrogate pair. */
static int read_unicode(json_parser *p, uint32_t *cp)
{
	int err = read_hex4(p, cp);
	if (err < 0)
		return err;
	if (*cp >= 0xdc00 && *cp <= 0xdfff)
		return fail(p, "lone low surrogate");
	if (*cp < 0xd800 || *cp > 0xdbff)
		return 0;
	if (p->len - p->pos < 2 || p->s[p->pos] != '\\' ||
	    p->s[p->pos + 1] != 'u')
		return fail(p, "high surrogate without its low half");
	p->pos += 2;
	uint32_t lo;
	err = read_hex4(p, &lo);
	if (err < 0)
		return err;
	if (lo < 0xdc00 || lo > 0xdfff)
		return fail(p, "high surrogate without its low half");
	*cp = 0x10000 + ((*cp - 0xd800) << 10) + (lo - 0xdc00);
	return 0;
}

/* After the backslash: append the decoded escape to out, *n bytes. */
static int read_escape(json_parser *p, char *out, size_t *n)
{
	static const char from[] = "\"\\/bfnrt";
	static const char to[] = "\"\\/\b\f\n\r\t";
	if (at_end(p))
		return fail(p, "unterminated string");
	unsigned char c = p->s[p->pos++];
	if (c == 'u') {
		uint32_t cp;
		int err = read_unicode(p, &cp);
		if (err < 0)
			return err;
		*n = put_utf8(out, cp);
		return 0;
	}
	const char *at = c ? strchr(from, c) : NULL;
	if (!at)
		return fail(p, "invalid escape");
	out[0] = to[at - from];
	*n = 1;
	return 0;
}

/* At the opening quote: decode into the doc's string buffer. */
static int parse_string_raw(json_parser *p, const char **str, size_t *len)
{
	char *out = p->doc->strings + p->doc->strings_used;
	size_t n = 0;
	p->pos++;
	for (;;) {
		if (at_end(p))
			return fail(p, "unterminated string");
		unsigned char c = p->s[p->pos];
		if (c == '"')
			break;
		if (c < 0x20)
			return fail(p, "control character in string");
		size_t k;
		if (c == '\\') {
			p->pos++;
			int err = read_escape(p, out + n, &k);
			if (err < 0)
				return err;
		} else {
			k = utf8_len(p->s + p->pos, p->len - p->pos);
			if (k == 0)
				return fail(p, "invalid UTF-8 in string");
			memcpy(out + n, p->s + p->pos, k);
			p->pos += k;
		}
		n += k;
	}
	p->pos++;
	out[n] = '\0';
	p->doc->strings_used += n + 1;
	*str = out;
	*len = n;
	return 0;
}

static int parse_string(json_parser *p, uint32_t *idx)
{
	const char *str;
	size_t len;
	int err = parse_string_raw(p, &str, &len);
	if (err == 0)
		err = new_value(p, JSON_STRING, idx);
	if (err == 0) {
		p->doc->values[*idx].str = str;
		p->doc->values[*idx].str_len = len;
	}
	return err;
}

/* --- containers ----------------------------------------------------------- */

/* Link child after *last (or as the first child of parent). */
static void append_child(json_parser *p, uint32_t parent, uint32_t *last,
			 uint32_t child)
{
	json_value *v = p->doc->values;
	if (v[parent].count++ == 0)
		v[parent].first = child;
	else
		v[*last].next = child;
	*last = child;
}

/* After a member or element: ',' (more follow) or the closing bracket. */
static int after_item(json_parser *p, char close, bool *more)
{
	skip_ws(p);
	if (peek(p) == ',') {
		p->pos++;
		*more = true;
		return 0;
	}
	if (peek(p) == close) {
		p->pos++;
		*more = false;
		return 0;
	}
	return fail(p, close == ']' ? "',' or ']' expected"
				    : "',' or '}' expected");
}

/* At '[' or '{': the container's value, with an empty one already closed. */
static int open_container(json_parser *p, json_type type, uint32_t *idx,
			  bool *empty)
{
	if (++p->depth > JSON_MAX_DEPTH)
		return -E2BIG;
	p->pos++;
	int err = new_value(p, type, idx);
	if (err < 0)
		return err;
	skip_ws(p);
	*empty = peek(p) == (type == JSON_ARRAY ? ']' : '}');
	if (*empty) {
		p->pos++;
		p->depth--;
	}
	return 0;
}

static int parse_array(json_parser *p, uint32_t *idx)
{
	bool empty, more;
	int err = open_container(p, JSON_ARRAY, idx, &empty);
	if (err < 0 || empty)
		return err;
	uint32_t last = 0;
	do {
		uint32_t child;
		skip_ws(p);
		err = parse_value(p, &child);
		if (err == 0) {
			append_child(p, *idx, &last, child);
			err = after_item(p, ']', &more);
		}
	} while (err == 0 && more);
	p->depth--;
	return err;
}

/* "key": value, linked into the object. */
static int parse_member(json_parser *p, uint32_t obj, uint32_t *last)
{
	skip_ws(p);
	if (peek(p) != '"')
		return fail(p, "string key expected");
	const char *key;
	size_t key_len;
	int err = parse_string_raw(p, &key, &key_len);
	if (err < 0)
		return err;
	skip_ws(p);
	if (peek(p) != ':')
		return fail(p, "':' expected");
	p->pos++;
	skip_ws(p);
	uint32_t child;
	err = parse_value(p, &child);
	if (err < 0)
		return err;
	p->doc->values[child].key = key;
	p->doc->values[child].key_len = key_len;
	append_child(p, obj, last, child);
	return 0;
}

static int parse_object(json_parser *p, uint32_t *idx)
{
	bool empty, more;
	int err = open_container(p, JSON_OBJECT, idx, &empty);
	if (err < 0 || empty)
		return err;
	uint32_t last = 0;
	do {
		err = parse_member(p, *idx, &last);
		if (err == 0)
			err = after_item(p, '}', &more);
	} while (err == 0 && more);
	p->depth--;
	return err;
}

static int parse_value(json_parser *p, uint32_t *idx)
{
	switch (peek(p)) {
	case '{':
		return parse_object(p, idx);
	case '[':
		return parse_array(p, idx);
	case '"':
		return parse_string(p, idx);
	case 't':
		return parse_literal(p, "true", JSON_BOOL, true, idx);
	case 'f':
		return parse_literal(p, "false", JSON_BOOL, false, idx);
	case 'n':
		return parse_literal(p, "null", JSON_NULL, false, idx);
	case -1:
		return fail(p, "unexpected end of input");
	default:
		if (peek(p) == '-' || (peek(p) >= '0' && peek(p) <= '9'))
			return parse_number(p, idx);
		return fail(p, "unexpected character");
	}
}

/* --- public --------------------------------------------------------------- */

void json_free(json_doc *doc)
{
	free(doc->values);
	free(doc->strings);
	memset(doc, 0, sizeof(*doc));
}

int json_parse(json_doc *doc, const char *text, size_t len)
{
	memset(doc, 0, sizeof(*doc));
	/* Decoded strings plus their NULs never exceed the input's length. */
	doc->strings = malloc(len + 1);
	if (!doc->strings)
		return -ENOMEM;
	json_parser p = {doc, (const unsigned char *)text, len, 0, 0};
	uint32_t root;
	skip_ws(&p);
	int err = parse_value(&p, &root);
	skip_ws(&p);
	if (err == 0 && !at_end(&p))
		err = fail(&p, "data after the value");
	if (err < 0) {
		const char *why = doc->error;
		size_t at = doc->error_at;
		json_free(doc);
		doc->error = err == -E2BIG ? "too deep or too large" : why;
		doc->error_at = err == -E2BIG ? p.pos : at;
	}
	return err;
}

const json_value *json_root(const json_doc *doc)
{
	return doc->count ? &doc->values[0] : NULL;
}

const json_value *json_first(const json_doc *doc, const json_value *v)
{
	if (!v || (v->type != JSON_ARRAY && v->type != JSON_OBJECT) || !v->count)
		return NULL;
	return &doc->values[v->first];
}

const json_value *json_next(const json_doc *doc, const json_value *v)
{
	return v && v->next ? &doc->values[v->next] : NULL;
}

const json_value *json_get(const json_doc *doc, const json_value *v, const char *key)
{
	if (!v || v->type != JSON_OBJECT)
		return NULL;
	size_t n = strlen(key);
	for (const json_value *m = json_first(doc, v); m; m = json_next(doc, m))
		if (m->key_len == n && memcmp(m->key, key, n) == 0)
			return m;
	return NULL;
}
