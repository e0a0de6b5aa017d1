/*
 * table — the table frametop prints for one sample, and the human units
 * in it (see table.h). Columns have fixed widths so that the
 * screen does not jump between samples and tests can split on blanks.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tools/frametop/table.h"

#define ROW_FMT "%c %5s %7s %-8s %-7s %4s %6s %7s %9s %9s %9s %6s %8s %5s%s"
#define NUM_MAX 24

/*
 * v (at least base) in the largest of unit[0..units) that keeps it at
 * least 1 (unit[0] is base, each next one base times more), with two or
 * three significant digits.
 */
static const char *scaled(double v, double base, const char *const *unit,
			  size_t units, char *buf, size_t len)
{
	size_t i = 0;
	v /= base;
	while (v >= base && i + 1 < units) {
		v /= base;
		i++;
	}
	snprintf(buf, len, v < 10 ? "%.2f%s" : v < 100 ? "%.1f%s" : "%.0f%s",
		 v, unit[i]);
	return buf;
}

const char *table_human_count(double v, char *buf, size_t len)
{
	static const char *const suffix[] = {"k", "M", "G", "T", "P", "E"};
	if (!(v > 0)) {
		snprintf(buf, len, "0");
		return buf;
	}
	if (v < 1000) {
		snprintf(buf, len, v < 10 ? "%.1f" : "%.0f", v);
		return buf;
	}
	return scaled(v, 1000, suffix, sizeof(suffix) / sizeof(suffix[0]), buf,
		      len);
}

const char *table_human_bytes(double v, char *buf, size_t len)
{
	static const char *const unit[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
	if (!(v >= 1024)) {
		snprintf(buf, len, "%.0fB", v > 0 ? v : 0);
		return buf;
	}
	return scaled(v, 1024, unit, sizeof(unit) / sizeof(unit[0]), buf, len);
}

const char *table_human_duration(double seconds, char *buf, size_t len)
{
	if (!(seconds >= 0))
		seconds = 0;
	if (seconds < 60) {
		snprintf(buf, len, "%.1fs", seconds);
		return buf;
	}
	unsigned long long s = (unsigned long long)seconds;
	if (s < 3600)
		snprintf(buf, len, "%llum%02llus", s / 60, s % 60);
	else if (s < 86400)
		snprintf(buf, len, "%lluh%02llum", s / 3600, s / 60 % 60);
	else
		snprintf(buf, len, "%llud%02lluh", s / 86400, s / 3600 % 24);
	return buf;
}

const char *table_human_latency(double seconds, char *buf, size_t len)
{
	const char *unit = "s";
	double v = seconds > 0 ? seconds : 0;
	if (v < 1e-3) {
		v *= 1e6;
		unit = "us";
	} else if (v < 1) {
		v *= 1e3;
		unit = "ms";
	}
	snprintf(buf, len, v < 10 ? "%.2f%s" : v < 100 ? "%.1f%s" : "%.0f%s",
		 v, unit);
	return buf;
}

/* --- rows ----------------------------------------------------------------- */

/* The rate columns of a row: "-" each when there is nothing to compare. */
typedef struct rate_cells {
	char acc[NUM_MAX], in[NUM_MAX], out[NUM_MAX], bytes[NUM_MAX];
	char cpu[NUM_MAX];
} rate_cells;

static void rate_text(const stats_rates *r, rate_cells *t)
{
	if (!r->valid) {
		strcpy(t->acc, "-");
		strcpy(t->in, "-");
		strcpy(t->out, "-");
		strcpy(t->bytes, "-");
		strcpy(t->cpu, "-");
		return;
	}
	table_human_count(r->accepted, t->acc, NUM_MAX);
	table_human_count(r->frames_in, t->in, NUM_MAX);
	table_human_count(r->frames_out, t->out, NUM_MAX);
	table_human_bytes(r->bytes, t->bytes, NUM_MAX);
	snprintf(t->cpu, NUM_MAX, "%.1f", r->cpu_pct);
}

static void print_columns(FILE *out, const char *eol)
{
	fprintf(out, ROW_FMT, ' ', "SHARD", "PID", "STATE", "POLLER", "GEN",
		"CONNS", "ACC/s", "FRM_IN/s", "FRM_OUT/s", "BYTES/s", "CPU%",
		"RSS", "RUNQ", eol);
}

static void print_shard(FILE *out, const stats_shard *s, const stats_rates *r,
			char mark, const char *eol)
{
	char idx[NUM_MAX], pid[NUM_MAX], gen[NUM_MAX], conns[NUM_MAX];
	char rss[NUM_MAX], runq[NUM_MAX];
	rate_cells t;
	rate_text(r, &t);
	snprintf(idx, sizeof(idx), "%lld", (long long)s->index);
	snprintf(pid, sizeof(pid), "%lld", (long long)s->pid);
	snprintf(gen, sizeof(gen), "%llu", (unsigned long long)s->generation);
	snprintf(conns, sizeof(conns), "%llu", (unsigned long long)s->active);
	snprintf(runq, sizeof(runq), "%llu",
		 (unsigned long long)s->runq_length);
	table_human_bytes((double)s->rss_bytes, rss, sizeof(rss));
	fprintf(out, ROW_FMT, mark, idx, pid, s->state,
		s->poller[0] ? s->poller : "-", gen, conns, t.acc, t.in, t.out,
		t.bytes, t.cpu, rss, runq, eol);
}

/* Sums over the shards; rates only over those that have them. */
static void print_totals(FILE *out, const stats_sample *cur,
			 const stats_rates *rates, const char *eol)
{
	stats_rates sum = {0};
	uint64_t conns = 0, rss = 0, runq = 0;
	for (size_t i = 0; i < cur->shard_count; i++) {
		conns += cur->shards[i].active;
		rss += cur->shards[i].rss_bytes;
		runq += cur->shards[i].runq_length;
		if (!rates[i].valid)
			continue;
		sum.valid = true;
		sum.accepted += rates[i].accepted;
		sum.frames_in += rates[i].frames_in;
		sum.frames_out += rates[i].frames_out;
		sum.bytes += rates[i].bytes;
		sum.cpu_pct += rates[i].cpu_pct;
	}
	char c[NUM_MAX], r[NUM_MAX], q[NUM_MAX];
	rate_cells t;
	rate_text(&sum, &t);
	snprintf(c, sizeof(c), "%llu", (unsigned long long)conns);
	snprintf(q, sizeof(q), "%llu", (unsigned long long)runq);
	table_human_bytes((double)rss, r, sizeof(r));
	fprintf(out, ROW_FMT, ' ', "total", "", "", "", "", c, t.acc, t.in,
		t.out, t.bytes, t.cpu, r, q, eol);
}

static void print_header(FILE *out, const stats_sample *cur, const char *admin,
			 bool marked, const char *eol)
{
	char up[NUM_MAX];
	size_t ready = 0;
	for (size_t i = 0; i < cur->shard_count; i++)
		ready += strcmp(cur->shards[i].state, "ready") == 0;
	fprintf(out,
		"frameproxy %s  pid %lld  up %s  shards %zu/%llu ready  "
		"reloads %llu  restarts %llu  retiring %llu%s%s",
		admin, (long long)cur->pid,
		table_human_duration(cur->uptime_s, up, sizeof(up)), ready,
		(unsigned long long)cur->shards_configured,
		(unsigned long long)cur->reloads,
		(unsigned long long)cur->restarts,
		(unsigned long long)cur->retiring,
		marked ? "  [^ busiest, v idlest by frames/s]" : "", eol);
}

/* --- the rpc view --------------------------------------------------------- */

#define RPC_FMT "  %-12.12s %-24.24s %9s %8s %5s %9s%s"

static void print_rpc_row(FILE *out, const stats_rpc_row *r, const char *eol)
{
	char req[NUM_MAX] = "-", inflight[NUM_MAX], pool[NUM_MAX];
	char p99[NUM_MAX + 1] = "-", lat[NUM_MAX];
	if (r->rates && r->has_sent)
		table_human_count(r->requests, req, sizeof(req));
	if (r->p99 == STATS_QUANTILE_VALUE)
		table_human_latency(r->p99_s, p99, sizeof(p99));
	else if (r->p99 == STATS_QUANTILE_ABOVE)
		snprintf(p99, sizeof(p99), ">%s",
			 table_human_latency(r->p99_s, lat, sizeof(lat)));
	snprintf(inflight, sizeof(inflight), "%llu",
		 (unsigned long long)r->inflight);
	snprintf(pool, sizeof(pool), "%llu", (unsigned long long)r->pool_open);
	fprintf(out, RPC_FMT, r->listener, r->name, req, inflight, pool, p99,
		eol);
}

/* Nothing at all when no server does rpc: a stream-only table is as it
 * always was. */
static int print_rpc(FILE *out, const stats_sample *prev,
		     const stats_sample *cur, const char *eol)
{
	stats_rpc_row *rows;
	size_t n;
	int err = stats_rpc_rows(prev, cur, &rows, &n);
	if (err < 0 || n == 0)
		return err;
	fprintf(out, "rpc per server, over all shards (p99 of the interval)%s",
		eol);
	fprintf(out, RPC_FMT, "LISTENER", "SERVER", "REQ/s", "INFLIGHT",
		"POOL", "P99", eol);
	for (size_t i = 0; i < n; i++)
		print_rpc_row(out, &rows[i], eol);
	free(rows);
	return 0;
}

int table_render(FILE *out, const stats_sample *prev, const stats_sample *cur,
		 const char *admin, const char *eol)
{
	size_t n = cur->shard_count;
	stats_rates *rates = calloc(n ? n : 1, sizeof(*rates));
	if (!rates)
		return -ENOMEM;
	for (size_t i = 0; i < n && prev; i++)
		rates[i] = stats_shard_rates(prev, cur, &cur->shards[i]);
	long busiest, idlest;
	stats_imbalance(rates, n, &busiest, &idlest);
	print_header(out, cur, admin, busiest >= 0, eol);
	print_columns(out, eol);
	for (size_t i = 0; i < n; i++) {
		char mark = (long)i == busiest ? '^' : (long)i == idlest ? 'v'
									 : ' ';
		print_shard(out, &cur->shards[i], &rates[i], mark, eol);
	}
	print_totals(out, cur, rates, eol);
	free(rates);
	int err = print_rpc(out, prev, cur, eol);
	if (err < 0)
		return err;
	return ferror(out) ? -EIO : 0;
}
