/*
 * framebench_sizedist — payload sizes drawn from a weighted list, for
 * framebench --size-dist.
 *
 * A SPEC is comma-separated entries SIZE:WEIGHT or MIN-MAX:WEIGHT. SIZE, MIN
 * and MAX take fbu_parse_size's suffixes (K, KiB, M, MiB, ...) and are at
 * most FB_MAX_FRAME; WEIGHT is a positive integer. An entry is chosen with
 * probability WEIGHT / (sum of weights); a range entry then gives a size
 * uniform in [MIN, MAX]. "64:90,1KiB:9,64KiB:1" sends 90% 64-byte frames,
 * 9% 1 KiB, 1% 64 KiB.
 *
 * Draws are counter-based like fb_pick_size: the size of frame (seed, conn,
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

#define FB_SIZE_DIST_MAX 64u             /* entries in one SPEC */
#define FB_SIZE_WEIGHT_MAX 1000000000u   /* keeps the total far below 2^64 */
/* Longest fb_size_dist_format output, with its NUL ("MIN-MAX:WEIGHT," each). */
#define FB_SIZE_DIST_TEXT (FB_SIZE_DIST_MAX * 32u)

typedef struct fb_size_entry {
	uint32_t min, max;      /* min == max for a plain SIZE */
	uint32_t weight;
} fb_size_entry;

typedef struct fb_size_dist {
	uint32_t count;
	fb_size_entry entry[FB_SIZE_DIST_MAX];
	uint64_t upto[FB_SIZE_DIST_MAX];  /* sum of weights of entries 0..i */
} fb_size_dist;

/*
 * Parse SPEC into *out. 0, or -EINVAL (malformed) / -ERANGE (a size above
 * FB_MAX_FRAME, a weight above FB_SIZE_WEIGHT_MAX, too many entries) with a
 * message naming the bad entry in why (e.g. "entry 2 '1K:x': weight must be
 * a positive integer").
 */
int fb_size_dist_parse(const char *spec, fb_size_dist *out, char *why,
		       size_t why_len);

/* The size of frame (seed, conn, seq). */
uint32_t fb_size_dist_pick(const fb_size_dist *d, uint64_t seed, uint32_t conn,
			   uint64_t seq);

/* Smallest and largest size the distribution can draw. */
uint32_t fb_size_dist_min(const fb_size_dist *d);
uint32_t fb_size_dist_max(const fb_size_dist *d);
/* The expected size: what the mean of many draws tends to. */
double fb_size_dist_mean(const fb_size_dist *d);

/* Canonical SPEC in bytes ("64:90,1024-4096:5"); returns buf. */
const char *fb_size_dist_format(const fb_size_dist *d, char *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif
