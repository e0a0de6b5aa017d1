/* GET /metrics: what a scrape shows in the Prometheus text format 0.0.4
 * (the order of the families is in shard/metrics.h). */
#include "shard/metrics.h"

#include <inttypes.h>
#include <string.h>

/* Where the output goes, and the labels written in the open sample. */
typedef struct prom_out {
	strbuf *sb;
	unsigned labels;
} prom_out;

static void prom_family(prom_out *w, const shard_metric *f)
{
	const char *type = f->type == SHARD_COUNTER ? "counter" :
			   f->type == SHARD_HISTOGRAM ? "histogram" : "gauge";

	strbuf_printf(w->sb, "# HELP frameproxy_%s %s\n# TYPE frameproxy_%s %s\n",
		      f->name, f->help, f->name, type);
}

/* A sample's name: the family's, and a histogram's suffix ("" for none). */
static void prom_begin_suffixed(prom_out *w, const char *name,
				const char *suffix)
{
	strbuf_printf(w->sb, "frameproxy_%s%s", name, suffix);
	w->labels = 0;
}

static void prom_begin(prom_out *w, const char *name)
{
	prom_begin_suffixed(w, name, "");
}

static void prom_label(prom_out *w, const char *key, const char *value)
{
	strbuf_printf(w->sb, "%s%s=\"", w->labels++ ? "," : "{", key);
	strbuf_escaped(w->sb, value, STRBUF_PROM_LABEL);
	strbuf_puts(w->sb, "\"");
}

static void prom_label_shard(prom_out *w, uint32_t shard)
{
	strbuf_printf(w->sb, "%sshard=\"%u\"", w->labels++ ? "," : "{", shard);
}

/* A count: never in seconds, whatever the family's unit. */
static void prom_end_count(prom_out *w, uint64_t value)
{
	strbuf_printf(w->sb, "%s %" PRIu64 "\n", w->labels ? "}" : "", value);
}

static void prom_end(prom_out *w, const shard_metric *f, uint64_t value)
{
	if (f->unit != SHARD_UNIT_NS) {
		strbuf_printf(w->sb, "%s %" PRIu64 "\n", w->labels ? "}" : "",
			      value);
		return;
	}
	strbuf_puts(w->sb, w->labels ? "} " : " ");
	strbuf_seconds(w->sb, (int64_t)value);
	strbuf_puts(w->sb, "\n");
}

/* The labels that say which series a sample is of (none for NULL). */
static void prom_series_labels(prom_out *w, metrics_scope scope,
			       const metrics_series *s)
{
	if (!s)
		return;
	prom_label_shard(w, s->shard);
	if (scope == METRICS_LISTENER) {
		prom_label(w, "listener", s->name);
	} else if (scope == METRICS_UPSTREAM) {
		prom_label(w, "listener", s->listener);
		prom_label(w, "upstream", s->name);
		if (s->origin[0])
			prom_label(w, "server_name", s->origin);
	} else if (scope == METRICS_NAME) {
		prom_label(w, "listener", s->listener);
		prom_label(w, "server_name", s->name);
	}
}

/* A histogram's samples of one series: cumulative buckets, +Inf, _sum and
 * _count; v is its first value. */
static void prom_histogram(prom_out *w, const shard_metric *f,
			   const uint64_t *v, metrics_scope scope,
			   const metrics_series *s)
{
	uint64_t cumulative = 0;

	for (uint32_t k = 0; k <= f->bound_count; k++) {
		cumulative += v[k];
		prom_begin_suffixed(w, f->name, "_bucket");
		prom_series_labels(w, scope, s);
		strbuf_printf(w->sb, "%sle=\"", w->labels++ ? "," : "{");
		if (k < f->bound_count)
			metrics_histogram_bound(w->sb, f, k);
		else
			strbuf_puts(w->sb, "+Inf");
		strbuf_puts(w->sb, "\"");
		prom_end_count(w, cumulative);
	}
	prom_begin_suffixed(w, f->name, "_sum");
	prom_series_labels(w, scope, s);
	prom_end(w, f, v[f->bound_count + 1]);
	prom_begin_suffixed(w, f->name, "_count");
	prom_series_labels(w, scope, s);
	prom_end_count(w, cumulative);
}

/* f's samples of one series; v is f's first value. */
static void prom_samples(prom_out *w, const shard_metric *f, const uint64_t *v,
			 metrics_scope scope, const metrics_series *s)
{
	char buf[32];

	if (f->type == SHARD_HISTOGRAM) {
		prom_histogram(w, f, v, scope, s);
		return;
	}
	for (uint32_t k = 0; k < f->width; k++) {
		prom_begin(w, f->name);
		prom_series_labels(w, scope, s);
		if (f->label)
			prom_label(w, f->label, metrics_label_value(f, k, buf));
		prom_end(w, f, v[k]);
	}
}

static void prom_supervisor(prom_out *w, const metrics_scrape *c)
{
	uint64_t values[METRICS_SUP_COUNT];

	metrics_supervisor_values(c, values);
	for (uint32_t i = 0; i < METRICS_SUP_COUNT; i++) {
		prom_family(w, &metrics_supervisor[i]);
		prom_samples(w, &metrics_supervisor[i], &values[i],
			     METRICS_SHARD, NULL);
	}
}

static void prom_build_info(prom_out *w, const metrics_view *v)
{
	const shard_metric *f = &metrics_build_info;

	prom_family(w, f);
	prom_begin(w, f->name);
	prom_label(w, f->label, v->version ? v->version : "unknown");
	prom_end(w, f, 1);
}

/* Every family of a scope, over its series. A newest-generation value is
 * left out while no live process has its series. */
static void prom_scope(prom_out *w, const metrics_scrape *c,
		       metrics_scope scope, const metrics_series *series,
		       size_t count)
{
	metrics_family fam[METRICS_MAX_FAMILIES];
	size_t n = metrics_families(c->v->app, scope, METRICS_PROM_ORDER, fam);

	for (size_t f = 0; f < n; f++) {
		const shard_metric *m = fam[f].metric;
		prom_family(w, m);
		for (size_t k = 0; k < count; k++) {
			const metrics_series *s = &series[k];
			if (m->merge == SHARD_MERGE_NEWEST && !s->live)
				continue;
			prom_samples(w, m, s->values + fam[f].at, scope, s);
		}
	}
}

static void prom_index_state(prom_out *w, const metrics_scrape *c)
{
	const shard_metric *up = &metrics_index[METRICS_INDEX_UP];
	const shard_metric *info = &metrics_index[METRICS_INDEX_INFO];

	prom_family(w, up);
	for (uint32_t i = 0; i < c->v->shards; i++) {
		prom_begin(w, up->name);
		prom_label_shard(w, i);
		prom_end(w, up, c->live[i].ready > 0);
	}
	prom_family(w, info);
	for (uint32_t i = 0; i < c->v->shards; i++) {
		if (!c->live[i].has_poller)
			continue;
		prom_begin(w, info->name);
		prom_label_shard(w, i);
		prom_label(w, info->label, c->live[i].poller);
		prom_end(w, info, 1);
	}
}

int metrics_render_prometheus(shard_metrics *m, const metrics_view *v,
			      strbuf *out)
{
	metrics_scrape c;
	int err = metrics_collect(&c, m, v);

	if (!err) {
		prom_out w = { .sb = out };
		prom_supervisor(&w, &c);
		prom_build_info(&w, v);
		prom_scope(&w, &c, METRICS_SHARD, c.t.shards, v->shards);
		prom_index_state(&w, &c);
		prom_scope(&w, &c, METRICS_LISTENER, c.t.listeners.at,
			   c.t.listeners.count);
		prom_scope(&w, &c, METRICS_UPSTREAM, c.t.upstreams.at,
			   c.t.upstreams.count);
		prom_scope(&w, &c, METRICS_NAME, c.t.names.at,
			   c.t.names.count);
		err = out->err;
	}
	metrics_scrape_free(&c);
	return err;
}
