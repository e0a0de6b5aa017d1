/*
 * table — what frametop prints of two samples: one table a sample, in
 * fixed-width columns, and the human units in it. Prefix table_.
 */
#ifndef FRAMEPROXY_TOOLS_FRAMETOP_TABLE_H
#define FRAMEPROXY_TOOLS_FRAMETOP_TABLE_H

#include <stddef.h>
#include <stdio.h>

#include "tools/frametop/stats.h"

#ifdef __cplusplus
extern "C" {
#endif

/* "950", "9.5", "12.3k", "4.56M": counts per second, about 6 characters. */
const char *table_human_count(double v, char *buf, size_t len);
/* "512B", "1.5KiB", "23.4MiB". */
const char *table_human_bytes(double v, char *buf, size_t len);
/* "3.2s", "4m05s", "2h03m", "3d04h". */
const char *table_human_duration(double seconds, char *buf, size_t len);
/* A latency, three significant digits: "75.0us", "1.25ms", "480ms", "2.50s". */
const char *table_human_latency(double seconds, char *buf, size_t len);

/*
 * Print one table: the header line, the column names, one row per shard of
 * cur, and a totals line; then, when some server does rpc
 * (stats_rpc_rows), a line naming the rpc view, its column names and one
 * row per server. Rates need prev (NULL: they show as "-"). Every
 * line ends with eol ("\n", or "\033[K\n" to clear what a longer earlier
 * screen left). 0, -ENOMEM or -EIO.
 */
int table_render(FILE *out, const stats_sample *prev, const stats_sample *cur,
		 const char *admin, const char *eol);

#ifdef __cplusplus
}
#endif

#endif
