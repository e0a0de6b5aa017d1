#include "tools/lib/cli.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "poll/poll.h"

int cli_parse_u64(const char *text, uint64_t max, uint64_t *out)
{
	if (!text || *text < '0' || *text > '9')
		return -EINVAL;
	errno = 0;
	char *end;
	unsigned long long v = strtoull(text, &end, 10);
	if (errno || *end || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

typedef struct unit_scale {
	const char *name;
	double factor;
} unit_scale;

static int scaled(const char *text, const unit_scale *units, double *out)
{
	if (!text || !((*text >= '0' && *text <= '9') || *text == '.'))
		return -EINVAL;
	char *end;
	errno = 0;
	double v = strtod(text, &end);
	if (errno || !isfinite(v) || v < 0)
		return -EINVAL;
	for (const unit_scale *u = units; u->name; u++) {
		if (strcasecmp(end, u->name) == 0) {
			*out = v * u->factor;
			return 0;
		}
	}
	return -EINVAL;
}

int cli_parse_duration(const char *text, int64_t *ns_out)
{
	static const unit_scale units[] = {
		{"", 1e9}, {"s", 1e9}, {"ms", 1e6}, {"us", 1e3},
		{"ns", 1}, {"m", 60e9}, {"min", 60e9}, {"h", 3600e9},
		{NULL, 0},
	};
	double ns;
	int rc = scaled(text, units, &ns);
	if (rc < 0)
		return rc;
	/* A year is plenty and keeps every deadline sum inside int64. */
	if (ns > 365.0 * 86400e9)
		return -ERANGE;
	*ns_out = (int64_t)ns;
	return 0;
}

int cli_parse_size(const char *text, uint64_t *out)
{
	static const unit_scale units[] = {
		{"", 1}, {"b", 1}, {"k", 1024.0}, {"kib", 1024.0},
		{"m", 1048576.0}, {"mib", 1048576.0},
		{"g", 1073741824.0}, {"gib", 1073741824.0},
		{NULL, 0},
	};
	double v;
	int rc = scaled(text, units, &v);
	if (rc < 0)
		return rc;
	if (v > 1e18 || v != floor(v))
		return -ERANGE;
	*out = (uint64_t)v;
	return 0;
}

int cli_parse_addr(const char *text, struct sockaddr_storage *out,
		   socklen_t *len_out)
{
	int rc = poll_addr_parse(text, POLL_ADDR_PORT0 | POLL_ADDR_ANY_HOST,
				 out, len_out);

	return rc == -ERANGE ? -EINVAL : rc; /* a bad port is malformed too */
}
