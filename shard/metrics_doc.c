/* docs/METRICS.md's tables, made from the same tables the renderers use
 * (shard_metrics_markdown in shard/shard.h). */
#include "shard/metrics.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Markdown cell text: a '|' would end the cell. */
static void md_text(strbuf *sb, const char *text)
{
	for (const char *p = text; *p; p++) {
		if (*p == '|')
			strbuf_puts(sb, "\\|");
		else
			strbuf_append(sb, p, 1);
	}
}

static void md_code(strbuf *sb, const char *text)
{
	strbuf_puts(sb, "`");
	md_text(sb, text);
	strbuf_puts(sb, "`");
}

static void md_type(strbuf *sb, const shard_metric *f)
{
	if (f->type == SHARD_COUNTER)
		strbuf_puts(sb, "counter");
	else if (f->type == SHARD_HISTOGRAM)
		strbuf_puts(sb, "histogram");
	else if (f->merge == SHARD_MERGE_NEWEST)
		strbuf_puts(sb, "gauge, newest");
	else
		strbuf_puts(sb, "gauge");
}

/* A histogram's le: its bounds, then +Inf. */
static void md_bounds(strbuf *sb, const shard_metric *f)
{
	strbuf_puts(sb, "`le`:");
	for (uint32_t k = 0; k < f->bound_count; k++) {
		strbuf_puts(sb, k ? ", `" : " `");
		metrics_histogram_bound(sb, f, k);
		strbuf_puts(sb, "`");
	}
	strbuf_puts(sb, ", `+Inf`");
}

/* The label and, when it has them, its values. */
static void md_label(strbuf *sb, const shard_metric *f)
{
	char buf[32];

	if (f->type == SHARD_HISTOGRAM) {
		md_bounds(sb, f);
		return;
	}
	if (!f->label)
		return;
	md_code(sb, f->label);
	if (!f->label_value)
		return;
	strbuf_puts(sb, ":");
	for (uint32_t k = 0; k < f->width; k++) {
		strbuf_puts(sb, k ? ", " : " ");
		md_code(sb, metrics_label_value(f, k, buf));
	}
}

/* Its /stats key(s) under `key` (as json_family in metrics_json.c). */
static void md_json(strbuf *sb, const shard_metric *f, const char *key)
{
	if (f->json_each) {
		for (uint32_t k = 0; k < f->width; k++) {
			strbuf_puts(sb, k ? ", " : "");
			md_code(sb, f->json_each[k]);
		}
	} else if (key && f->label) {
		strbuf_puts(sb, "`");
		md_text(sb, key);
		strbuf_puts(sb, ".<");
		md_text(sb, f->label);
		strbuf_puts(sb, ">`");
	} else if (key) {
		md_code(sb, key);
	}
}

static void md_head(strbuf *sb, const char *title, const char *labels,
		    bool totals)
{
	strbuf_printf(sb, "\n### %s\n\nLabels of every series: %s.\n\n", title,
		      labels);
	strbuf_puts(sb, "| Family | Type | Label | /stats | ");
	strbuf_puts(sb, totals ? "Shard's /stats | Help |\n" : "Help |\n");
	strbuf_puts(sb, totals ? "|---|---|---|---|---|---|\n" :
				 "|---|---|---|---|---|\n");
}

static void md_row(strbuf *sb, const shard_metric *f, bool totals)
{
	strbuf_puts(sb, "| `frameproxy_");
	md_text(sb, f->name);
	strbuf_puts(sb, "` | ");
	md_type(sb, f);
	strbuf_puts(sb, " | ");
	md_label(sb, f);
	strbuf_puts(sb, " | ");
	md_json(sb, f, f->json);
	strbuf_puts(sb, " | ");
	/* The shard's sums over its listeners: the flat families. */
	if (totals && f->type != SHARD_HISTOGRAM &&
	    (!f->label || f->json_each)) {
		md_json(sb, f, f->json_total ? f->json_total : f->json);
		strbuf_puts(sb, " | ");
	} else if (totals) {
		strbuf_puts(sb, " | ");
	}
	md_text(sb, f->help);
	strbuf_puts(sb, " |\n");
}

static void md_scope(strbuf *sb, const shard_app_metrics *app,
		     metrics_scope scope, bool totals)
{
	metrics_family fam[METRICS_MAX_FAMILIES];
	size_t n = metrics_families(app, scope, METRICS_TABLE_ORDER, fam);

	for (size_t k = 0; k < n; k++)
		md_row(sb, fam[k].metric, totals);
}

static void md_all(strbuf *sb, const shard_app_metrics *app)
{
	md_head(sb, "Supervisor", "none", false);
	for (uint32_t i = 0; i < METRICS_SUP_COUNT; i++)
		md_row(sb, &metrics_supervisor[i], false);
	md_row(sb, &metrics_build_info, false);
	md_head(sb, "Per shard", "`shard`", false);
	md_scope(sb, app, METRICS_SHARD, false);
	for (uint32_t i = 0; i < METRICS_INDEX_COUNT; i++)
		md_row(sb, &metrics_index[i], false);
	md_head(sb, "Per listener", "`shard`, `listener`", true);
	md_scope(sb, app, METRICS_LISTENER, true);
	md_head(sb, "Per upstream", "`shard`, `listener`, `upstream`", false);
	md_scope(sb, app, METRICS_UPSTREAM, false);
	md_head(sb, "Per server name", "`shard`, `listener`, `server_name`",
		false);
	md_scope(sb, app, METRICS_NAME, false);
}

int shard_metrics_markdown(const shard_app_metrics *app, FILE *out)
{
	char why[8];
	strbuf sb;

	if (shard_metrics_check(app, why, sizeof(why)) < 0)
		return -EINVAL;
	strbuf_init(&sb);
	md_all(&sb, app);
	int err = sb.err;
	if (!err && fwrite(sb.data, 1, sb.len, out) != sb.len)
		err = -EIO;
	strbuf_free(&sb);
	return err;
}
