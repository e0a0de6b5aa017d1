/* units — sizes and durations as people write them ("16MiB", "250ms").
 *
 * Sizes: a whole number followed by an optional unit, case-insensitive,
 * optionally separated by spaces:
 *   (none) or B      bytes
 *   KB MB GB TB      powers of 1000 (SI, as disk vendors and `ls --si`)
 *   KiB MiB GiB TiB  powers of 1024 (IEC)
 * A bare "K"/"M"/"G" is rejected: it is ambiguous between the two families.
 *
 * Durations: one or more whole-number + unit pairs, Go style ("1m30s"):
 *   ns us (or µs) ms s m h      case-insensitive
 * A bare number is an error because "30" could mean 30s or 30ms; the only
 * exception is "0", which needs no unit.
 *
 * Fractions ("1.5s") are not accepted; write "1500ms". A leading '+' or '-'
 * is not accepted either.
 *
 * Errors (negative errno):
 *   -EINVAL  not a size/duration (garbage, empty, unknown or missing unit)
 *   -EDOM    negative
 *   -ERANGE  does not fit (uint64 bytes / int64 nanoseconds)
 */
#ifndef FRAMEPROXY_PROXY_UNITS_H
#define FRAMEPROXY_PROXY_UNITS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define UNITS_NS_PER_US INT64_C(1000)
#define UNITS_NS_PER_MS INT64_C(1000000)
#define UNITS_NS_PER_SEC INT64_C(1000000000)

int units_parse_size(const char *text, uint64_t *bytes);
int units_parse_duration(const char *text, int64_t *ns);

/* Shortest exact rendering: 16777216 -> "16MiB", 1500 -> "1500B",
 * 2000000000 -> "2s", 1500000000 -> "1500ms". Output re-parses to the same
 * value. Returns the snprintf result (length wanted). */
int units_format_size(char *buf, size_t len, uint64_t bytes);
int units_format_duration(char *buf, size_t len, int64_t ns);

/* A short human phrase for a units_parse_* error ("out of range"). */
const char *units_strerror(int err);

#ifdef __cplusplus
}
#endif

#endif
