/*
 * frametop_json — a small strict JSON reader (RFC 8259) for frametop.
 *
 * frametop reads one document per sample from an endpoint it does not
 * trust to be well-formed, so the reader rejects rather than guesses: no
 * trailing commas, no leading zeros, no comments, no control characters or
 * invalid UTF-8 in strings, no lone surrogates, nothing after the value.
 * Duplicate keys are accepted; fj_get returns the first.
 *
 * The whole document is parsed into a tree of fj_values held in one array
 * (children are linked by index, so growing the array is safe while
 * parsing). Decoded strings live in one buffer of the input's size: an
 * escape never decodes to more bytes than it is written with, so that
 * buffer never moves and the string pointers stay valid until fj_free.
 */
#ifndef FRAMEPROXY_TOOLS_FRAMETOP_JSON_H
#define FRAMEPROXY_TOOLS_FRAMETOP_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FJ_MAX_DEPTH 64          /* nesting (the parser recurses) */
#define FJ_MAX_VALUES (1u << 20) /* values per document (bounds memory) */
#define FJ_MAX_NUMBER 64         /* characters in one number literal */

typedef enum fj_type {
	FJ_NULL,
	FJ_BOOL,
	FJ_NUMBER,
	FJ_STRING,
	FJ_ARRAY,
	FJ_OBJECT,
} fj_type;

typedef struct fj_value {
	fj_type type;
	uint32_t next;          /* index of the next sibling; 0: none */
	uint32_t first;         /* array/object: first child's index; 0: none */
	uint32_t count;         /* array/object: number of children */
	const char *key;        /* member of an object: its key (decoded) */
	size_t key_len;
	const char *str;        /* FJ_STRING: decoded UTF-8, NUL-terminated */
	size_t str_len;         /* may contain NULs (\u0000) */
	double num;             /* FJ_NUMBER */
	uint64_t u64;           /* FJ_NUMBER: the exact value when is_u64 */
	bool is_u64;            /* a non-negative integer literal that fits */
	bool boolean;           /* FJ_BOOL */
} fj_value;

typedef struct fj_doc {
	fj_value *values;       /* values[0] is the root */
	size_t count, cap;
	char *strings;          /* decoded strings */
	size_t strings_used;
	const char *error;      /* after -EINVAL: why (static text) */
	size_t error_at;        /* and the byte offset */
} fj_doc;

/*
 * Parse text[0..len) into doc (zeroed or freed before). 0; -EINVAL on a
 * syntax error (doc->error, doc->error_at say where); -E2BIG when deeper
 * than FJ_MAX_DEPTH or larger than FJ_MAX_VALUES; -ENOMEM. On error the
 * doc holds nothing (fj_free is still harmless).
 */
int fj_parse(fj_doc *doc, const char *text, size_t len);
void fj_free(fj_doc *doc);

/* NULL for an empty doc. */
const fj_value *fj_root(const fj_doc *doc);
/* The member `key` of an object; NULL when v is not an object or lacks it. */
const fj_value *fj_get(const fj_doc *doc, const fj_value *v, const char *key);
/* First child of an array/object and the next sibling; NULL at the end. */
const fj_value *fj_first(const fj_doc *doc, const fj_value *v);
const fj_value *fj_next(const fj_doc *doc, const fj_value *v);

#ifdef __cplusplus
}
#endif

#endif
