#include "tools/framebench/sizedist.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "tools/lib/payload.h"
#include "tools/lib/cli.h"

/* Distinct from payload_pick_size's salt: a --size-dist run and a --size run with
 * the same seed need not draw related sizes. */
#define DIST_SALT 0x6a09e667f3bcc908ull

/* SIZE or MIN-MAX (written in place: the dash becomes a NUL). */
static int parse_sizes(char *text, sizedist_entry *e, const char **what)
{
	char *dash = strchr(text, '-');
	uint64_t lo, hi;
	if (dash)
		*dash = '\0';
	if (cli_parse_size(text, &lo) < 0 ||
	    (dash && cli_parse_size(dash + 1, &hi) < 0)) {
		*what = "size must be a whole number of bytes, optionally with "
			"a K, KiB, M or MiB suffix";
		return -EINVAL;
	}
	if (!dash)
		hi = lo;
	if (hi < lo) {
		*what = "a range must be MIN-MAX with MIN <= MAX";
		return -EINVAL;
	}
	if (hi > PAYLOAD_MAX_FRAME) {
		*what = "size above the 16 MiB frame limit";
		return -ERANGE;
	}
	e->min = (uint32_t)lo;
	e->max = (uint32_t)hi;
	return 0;
}

static int parse_weight(const char *text, sizedist_entry *e, const char **what)
{
	uint64_t w;
	if (cli_parse_u64(text, UINT64_MAX, &w) < 0 || w == 0) {
		*what = "weight must be a positive integer";
		return -EINVAL;
	}
	if (w > SIZEDIST_WEIGHT_MAX) {
		*what = "weight above 1000000000";
		return -ERANGE;
	}
	e->weight = (uint32_t)w;
	return 0;
}

/* One entry of `len` bytes at `text` (not NUL-terminated). */
static int parse_entry(const char *text, size_t len, sizedist_entry *e,
		       const char **what)
{
	char buf[80];
	if (len == 0) {
		*what = "empty entry";
		return -EINVAL;
	}
	if (len >= sizeof(buf)) {
		*what = "entry too long";
		return -EINVAL;
	}
	memcpy(buf, text, len);
	buf[len] = '\0';
	char *colon = strchr(buf, ':');
	if (!colon || strchr(colon + 1, ':')) {
		*what = "expected SIZE:WEIGHT or MIN-MAX:WEIGHT";
		return -EINVAL;
	}
	*colon = '\0';
	int rc = parse_sizes(buf, e, what);
	return rc < 0 ? rc : parse_weight(colon + 1, e, what);
}

int sizedist_parse(const char *spec, sizedist *out, char *why,
		   size_t why_len)
{
	sizedist d = {.count = 0};
	const char *at = spec ? spec : "";
	uint64_t total = 0;
	for (uint32_t n = 1;; n++) {
		size_t len = strcspn(at, ",");
		const char *what = NULL;
		int rc = n > SIZEDIST_MAX_ENTRIES ? -ERANGE : 0;
		if (rc < 0)
			what = "more than 64 entries";
		else
			rc = parse_entry(at, len, &d.entry[n - 1], &what);
		if (rc < 0) {
			snprintf(why, why_len, "entry %" PRIu32 " '%.*s': %s", n, (int)len,
				 at, what);
			return rc;
		}
		total += d.entry[n - 1].weight;
		d.upto[n - 1] = total;
		d.count = n;
		if (at[len] == '\0')
			break;
		at += len + 1;
	}
	*out = d;
	return 0;
}

/* The entry whose cumulative-weight interval holds `r` (< total). */
static uint32_t entry_at(const sizedist *d, uint64_t r)
{
	uint32_t lo = 0, hi = d->count - 1;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (d->upto[mid] > r)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

uint32_t sizedist_pick(const sizedist *d, uint64_t seed, uint32_t conn,
		       uint64_t seq)
{
	if (d->count == 0)
		return 0;
	/* The total is at most 64 * 10^9, so the modulo bias of a 64-bit
	 * draw is below 4e-9: not measurable in any run. */
	uint64_t r = payload_mix64(payload_stream_key(seed, conn, seq) ^ DIST_SALT);
	const sizedist_entry *e = &d->entry[entry_at(d, r % d->upto[d->count - 1])];
	if (e->max == e->min)
		return e->min;
	/* A second, independent draw for the place within the range. */
	uint64_t span = (uint64_t)e->max - e->min + 1;
	return e->min + (uint32_t)(payload_mix64(r) % span);
}

uint32_t sizedist_min(const sizedist *d)
{
	uint32_t v = UINT32_MAX;
	for (uint32_t i = 0; i < d->count; i++)
		v = d->entry[i].min < v ? d->entry[i].min : v;
	return d->count ? v : 0;
}

uint32_t sizedist_max(const sizedist *d)
{
	uint32_t v = 0;
	for (uint32_t i = 0; i < d->count; i++)
		v = d->entry[i].max > v ? d->entry[i].max : v;
	return v;
}

double sizedist_mean(const sizedist *d)
{
	if (d->count == 0)
		return 0;
	double sum = 0;
	for (uint32_t i = 0; i < d->count; i++) {
		const sizedist_entry *e = &d->entry[i];
		sum += (double)e->weight * ((double)e->min + (double)e->max) / 2;
	}
	return sum / (double)d->upto[d->count - 1];
}

/* One entry as SIZE:WEIGHT or MIN-MAX:WEIGHT; snprintf's return. */
static int format_entry(const sizedist_entry *e, char *buf, size_t len)
{
	if (e->min == e->max)
		return snprintf(buf, len, "%" PRIu32 ":%" PRIu32, e->min,
				e->weight);
	return snprintf(buf, len, "%" PRIu32 "-%" PRIu32 ":%" PRIu32, e->min,
			e->max, e->weight);
}

const char *sizedist_format(const sizedist *d, char *buf, size_t len)
{
	size_t used = 0;
	if (len)
		buf[0] = '\0';
	for (uint32_t i = 0; i < d->count && used + 1 < len; i++) {
		if (i)
			buf[used++] = ',';
		int n = format_entry(&d->entry[i], buf + used, len - used);
		if (n < 0)
			break;
		used += (size_t)n;
	}
	return buf;
}
