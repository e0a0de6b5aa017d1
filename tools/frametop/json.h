/*
 * json — a small strict JSON reader (RFC 8259) for frametop. Prefix json_.
 *
 * frametop reads one document per sample from an endpoint it does not
 * trust to be well-formed, so the reader rejects rather than guesses: no
 * trailing commas, no leading zeros, no comments, no control characters or
 * invalid UTF-8 in strings, no lone surrogates, nothing after the value.
 * Duplicate keys are accepted; json_get returns the first.
 *
 * The whole document is parsed into a tree of json_values held in one array
 * (children are linked by index, so growing the array is safe while
 * parsing). Decoded strings live in one buffer of the input's size: an
 * escape never decodes to more bytes than it is written with, so that
 * buffer never moves and the string pointers stay valid until json_free.
 */
#ifndef FRAMEPROXY_TOOLS_FRAMETOP_JSON_H
#define FRAMEPROXY_TOOLS_FRAMETOP_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define JSON_MAX_DEPTH 64        /* nesting (the parser recurses) */
#define JSON_MAX_VALUES (1u << 20) /* values per document (bounds memory) */
#define JSON_MAX_NUMBER 64       /* characters in one number literal */

typedef enum json_type {
	JSON_NULL,
	JSON_BOOL,
	JSON_NUMBER,
	JSON_STRING,
	JSON_ARRAY,
	JSON_OBJECT,
} json_type;

typedef struct json_value {
	json_type type;
	uint32_t next;          /* index of the next sibling; 0: none */
	uint32_t first;         /* array/object: first child's index; 0: none */
	uint32_t count;         /* array/object: number of children */
	const char *key;        /* member of an object: its key (decoded) */
	size_t key_len;
	const char *str;        /* JSON_STRING: decoded UTF-8, NUL-terminated */
	size_t str_len;         /* may contain NULs (\u0000) */
	double num;             /* JSON_NUMBER */
	uint64_t u64;           /* JSON_NUMBER: the exact value when is_u64 */
	bool is_u64;            /* a non-negative integer literal that fits */
	bool boolean;           /* JSON_BOOL */
} json_value;

typedef struct json_doc {
	json_value *values;     /* values[0] is the root */
	size_t count, cap;
	char *strings;          /* decoded strings */
	size_t strings_used;
	const char *error;      /* after -EINVAL: why (static text) */
	size_t error_at;        /* and the byte offset */
} json_doc;

/*
 * Parse text[0..len) into doc (zeroed or freed before). 0; -EINVAL on a
 * syntax error (doc->error, doc->error_at say where); -E2BIG when deeper
 * than JSON_MAX_DEPTH or larger than JSON_MAX_VALUES; -ENOMEM. On error the
 * doc holds nothing (json_free is still harmless).
 */
int json_parse(json_doc *doc, const char *text, size_t len);
void json_free(json_doc *doc);

/* NULL for an empty doc. */
const json_value *json_root(const json_doc *doc);
/* The member `key` of an object; NULL when v is not an object or lacks it. */
const json_value *json_get(const json_doc *doc, const json_value *v, const char *key);
/* First child of an array/object and the next sibling; NULL at the end. */
const json_value *json_first(const json_doc *doc, const json_value *v);
const json_value *json_next(const json_doc *doc, const json_value *v);

#ifdef __cplusplus
}
#endif

#endif
