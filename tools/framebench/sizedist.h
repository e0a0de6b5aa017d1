/*
 * sizedist — payload sizes drawn from a weighted list, for framebench
 * --size-dist. Prefix sizedist_.
 *
 * A SPEC is comma-separated entries SIZE:WEIGHT or MIN-MAX:WEIGHT. SIZE, MIN
 * and MAX take cli_parse_size's suffixes (K, KiB, M, MiB, ...) and are at
 * most PAYLOAD_MAX_FRAME; WEIGHT is a positive integer. An entry is chosen with
 * probability WEIGHT / (sum of weights); a range entry then gives a size
 * uniform in [MIN, MAX]. "64:90,1KiB:9,64KiB:1" sends 90% 64-byte frames,
 * 9% 1 KiB, 1% 64 KiB.
 *
 * Draws are counter-based like payload_pick_size: the size of frame (seed, conn,
 * seq) is a pure function of those three and the distribution, so a run is
 * repeatable with --seed and the reader never needs more than the ring's
 * recorded length.
 */
#ifndef FRAMEPROXY_TOOLS_FRAMEBENCH_SIZEDIST_H
#define FRAMEPROXY_TOOLS_FRAMEBENCH_SIZEDIST_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SIZEDIST_MAX_ENTRIES 64u         /* entries in one SPEC */
#define SIZEDIST_WEIGHT_MAX 1000000000u  /* keeps the total far below 2^64 */
/* Longest sizedist_format output, with its NUL ("MIN-MAX:WEIGHT," each). */
#define SIZEDIST_TEXT_MAX (SIZEDIST_MAX_ENTRIES * 32u)

typedef struct sizedist_entry {
	uint32_t min, max;      /* min == max for a plain SIZE */
	uint32_t weight;
} sizedist_entry;

typedef struct sizedist {
	uint32_t count;
	sizedist_entry entry[SIZEDIST_MAX_ENTRIES];
	uint64_t upto[SIZEDIST_MAX_ENTRIES];  /* sum of weights of entries 0..i */
} sizedist;

/*
 * Parse SPEC into *out. 0, or -EINVAL (malformed) / -ERANGE (a size above
 * PAYLOAD_MAX_FRAME, a weight above SIZEDIST_WEIGHT_MAX, too many entries) with a
 * message naming the bad entry in why (e.g. "entry 2 '1K:x': weight must be
 * a positive integer").
 */
int sizedist_parse(const char *spec, sizedist *out, char *why,
		   size_t why_len);

/* The size of frame (seed, conn, seq). */
uint32_t sizedist_pick(const sizedist *d, uint64_t seed, uint32_t conn,
		       uint64_t seq);

/* Smallest and largest size the distribution can draw. */
uint32_t sizedist_min(const sizedist *d);
uint32_t sizedist_max(const sizedist *d);
/* The expected size: what the mean of many draws tends to. */
double sizedist_mean(const sizedist *d);

/* Canonical SPEC in bytes ("64:90,1024-4096:5"); returns buf. */
const char *sizedist_format(const sizedist *d, char *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif
