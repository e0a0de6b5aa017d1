#include "proxy/units.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

typedef struct unit {
	const char *name;
	uint64_t mult;
} unit;

/* A unit is matched against the whole word after the number, so "ms" can
 * never be taken for "m" whatever the table order. */
static const unit size_units[] = {
	{ "", 1 },
	{ "b", 1 },
	{ "kb", UINT64_C(1000) },
	{ "mb", UINT64_C(1000000) },
	{ "gb", UINT64_C(1000000000) },
	{ "tb", UINT64_C(1000000000000) },
	{ "kib", UINT64_C(1) << 10 },
	{ "mib", UINT64_C(1) << 20 },
	{ "gib", UINT64_C(1) << 30 },
	{ "tib", UINT64_C(1) << 40 },
};

static const unit duration_units[] = {
	{ "ns", 1 },
	{ "us", UINT64_C(1000) },
	{ "\xc2\xb5s", UINT64_C(1000) }, /* µs, UTF-8 */
	{ "ms", UINT64_C(1000000) },
	{ "s", UINT64_C(1000000000) },
	{ "m", UINT64_C(60000000000) },
	{ "h", UINT64_C(3600000000000) },
};

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t';
}

static const char *skip_spaces(const char *p)
{
	while (is_space(*p))
		p++;
	return p;
}

/* Reads the digits at *pp into *value; -EINVAL when there are none. */
static int read_number(const char **pp, uint64_t *value)
{
	const char *p = *pp;
	uint64_t v = 0;
	bool overflow = false;

	if (!is_digit(*p))
		return -EINVAL;
	for (; is_digit(*p); p++) {
		unsigned d = (unsigned)(*p - '0');
		if (v > (UINT64_MAX - d) / 10)
			overflow = true;
		else
			v = v * 10 + d;
	}
	*pp = p;
	*value = v;
	/* Keep scanning to the end first, so "99999999999999999999x" is
	 * reported as garbage rather than as out of range. */
	return overflow ? -ERANGE : 0;
}

/* Matches the unit spelled by [p, end) case-insensitively. */
static const unit *find_unit(const unit *units, size_t n,
			     const char *p, size_t len)
{
	for (size_t i = 0; i < n; i++) {
		if (strlen(units[i].name) == len &&
		    strncasecmp(units[i].name, p, len) == 0)
			return &units[i];
	}
	return NULL;
}

static int check_sign(const char *p)
{
	p = skip_spaces(p);
	if (*p == '-')
		return -EDOM;
	return 0;
}

int units_parse_size(const char *text, uint64_t *bytes)
{
	const char *p = skip_spaces(text);
	uint64_t value;
	int rc;

	if (check_sign(p) < 0)
		return -EDOM;
	rc = read_number(&p, &value);
	p = skip_spaces(p);
	const char *unit_start = p;
	size_t unit_len = strlen(p);
	while (unit_len > 0 && is_space(unit_start[unit_len - 1]))
		unit_len--;
	const unit *u = find_unit(size_units, ARRAY_LEN(size_units),
				  unit_start, unit_len);
	if (rc == -EINVAL || !u)
		return -EINVAL;
	if (rc < 0)
		return rc;
	if (value > UINT64_MAX / u->mult)
		return -ERANGE;
	*bytes = value * u->mult;
	return 0;
}

/* Length of the unit word at p: everything up to the next digit/space. */
static size_t unit_word_len(const char *p)
{
	size_t n = 0;
	while (p[n] && !is_digit(p[n]) && !is_space(p[n]))
		n++;
	return n;
}

static void add_term(uint64_t *total, uint64_t value, uint64_t mult,
		     bool *overflow)
{
	if (value > (uint64_t)INT64_MAX / mult) {
		*overflow = true;
		return;
	}
	uint64_t term = value * mult;
	if (*total > (uint64_t)INT64_MAX - term)
		*overflow = true;
	else
		*total += term;
}

static bool is_bare_zero(const char *p)
{
	p = skip_spaces(p);
	if (*p != '0')
		return false;
	while (*p == '0')
		p++;
	return *skip_spaces(p) == '\0';
}

int units_parse_duration(const char *text, int64_t *ns)
{
	const char *p = skip_spaces(text);
	uint64_t total = 0;
	bool overflow = false;

	if (check_sign(p) < 0)
		return -EDOM;
	if (is_bare_zero(p)) {
		*ns = 0;
		return 0;
	}
	if (*p == '\0')
		return -EINVAL;
	while (*p) {
		uint64_t value;
		int rc = read_number(&p, &value);
		if (rc == -EINVAL)
			return -EINVAL;
		if (rc == -ERANGE)
			overflow = true;
		p = skip_spaces(p);
		size_t len = unit_word_len(p);
		const unit *u = find_unit(duration_units,
					  ARRAY_LEN(duration_units),
					  p, len);
		if (!u)
			return -EINVAL;
		add_term(&total, value, u->mult, &overflow);
		p = skip_spaces(p + len);
	}
	if (overflow)
		return -ERANGE;
	*ns = (int64_t)total;
	return 0;
}

int units_format_size(char *buf, size_t len, uint64_t bytes)
{
	static const char *const names[] = { "TiB", "GiB", "MiB", "KiB" };
	static const unsigned shifts[] = { 40, 30, 20, 10 };

	for (size_t i = 0; i < ARRAY_LEN(names); i++) {
		uint64_t mult = UINT64_C(1) << shifts[i];
		if (bytes != 0 && bytes % mult == 0)
			return snprintf(buf, len, "%" PRIu64 "%s",
					bytes / mult, names[i]);
	}
	return snprintf(buf, len, "%" PRIu64 "B", bytes);
}

int units_format_duration(char *buf, size_t len, int64_t ns)
{
	static const char *const names[] = { "h", "m", "s", "ms", "us" };
	static const int64_t mults[] = {
		INT64_C(3600000000000), INT64_C(60000000000),
		UNITS_NS_PER_SEC, UNITS_NS_PER_MS, UNITS_NS_PER_US,
	};

	if (ns == 0)
		return snprintf(buf, len, "0");
	if (ns < 0)
		return snprintf(buf, len, "%" PRId64 "ns", ns);
	for (size_t i = 0; i < ARRAY_LEN(names); i++) {
		if (ns % mults[i] == 0)
			return snprintf(buf, len, "%" PRId64 "%s",
					ns / mults[i], names[i]);
	}
	return snprintf(buf, len, "%" PRId64 "ns", ns);
}

const char *units_strerror(int err)
{
	switch (err) {
	case 0:
		return "ok";
	case -EDOM:
		return "negative values are not allowed";
	case -ERANGE:
		return "out of range";
	default:
		return "not understood";
	}
}
