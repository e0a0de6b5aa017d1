/* GET /stats: what a scrape shows as one JSON object (the layout is in
 * shard/metrics.h). */
#include "shard/metrics.h"

#include <inttypes.h>
#include <string.h>
#include <time.h>

#include "sched/sched.h"

static void json_key(strbuf *sb, const char *key)
{
	strbuf_puts(sb, ",");
	strbuf_json_string(sb, key);
	strbuf_puts(sb, ":");
}

static void json_value(strbuf *sb, const shard_metric *f, uint64_t value)
{
	if (f->unit == SHARD_UNIT_NS)
		strbuf_seconds(sb, (int64_t)value);
	else
		strbuf_printf(sb, "%" PRIu64, value);
}

static bool json_flat(const shard_metric *f)
{
	return f->type != SHARD_HISTOGRAM && (!f->label || f->json_each);
}

/* {"count":N,"sum":S,"buckets":[[le,cumulative],...]}: the finite bounds;
 * what is above the last is count minus its bucket. */
static void json_histogram(strbuf *sb, const shard_metric *f,
			   const uint64_t *v)
{
	uint64_t cumulative = 0;

	strbuf_printf(sb, "{\"count\":%" PRIu64 ",\"sum\":",
		      metrics_histogram_count(f, v));
	json_value(sb, f, v[f->bound_count + 1]);
	strbuf_puts(sb, ",\"buckets\":[");
	for (uint32_t k = 0; k < f->bound_count; k++) {
		cumulative += v[k];
		strbuf_puts(sb, k ? ",[" : "[");
		metrics_histogram_bound(sb, f, k);
		strbuf_printf(sb, ",%" PRIu64 "]", cumulative);
	}
	strbuf_puts(sb, "]}");
}

/* f's values (v is the first) under `key`: one or one key per value, an
 * object keyed by label value, or a histogram's object. */
static void json_family(strbuf *sb, const shard_metric *f, const uint64_t *v,
			const char *key)
{
	char buf[32];

	if (f->json_each) {
		for (uint32_t k = 0; k < f->width; k++) {
			json_key(sb, f->json_each[k]);
			json_value(sb, f, v[k]);
		}
		return;
	}
	if (!key)
		return;
	json_key(sb, key);
	if (f->type == SHARD_HISTOGRAM) {
		json_histogram(sb, f, v);
		return;
	}
	if (json_flat(f)) {
		json_value(sb, f, v[0]);
		return;
	}
	strbuf_puts(sb, "{");
	for (uint32_t k = 0; k < f->width; k++) {
		strbuf_puts(sb, k ? "," : "");
		strbuf_json_string(sb, metrics_label_value(f, k, buf));
		strbuf_puts(sb, ":");
		json_value(sb, f, v[k]);
	}
	strbuf_puts(sb, "}");
}

/* Every family of a scope, in table order, from one series' values. */
static void json_families(strbuf *sb, const metrics_scrape *c,
			  metrics_scope scope, const uint64_t *values)
{
	metrics_family fam[METRICS_MAX_FAMILIES];
	size_t n = metrics_families(c->v->app, scope, METRICS_TABLE_ORDER, fam);

	for (size_t f = 0; f < n; f++)
		json_family(sb, fam[f].metric, values + fam[f].at,
			    fam[f].metric->json);
}

static void json_procs(strbuf *sb, const metrics_scrape *c,
		       const metrics_live *lv)
{
	strbuf_puts(sb, ",\"processes\":[");
	for (size_t k = lv->p_from; k < lv->p_to; k++) {
		const metrics_proc *p = &c->procs[k];
		strbuf_printf(sb, "%s{\"pid\":%" PRId32 ",\"state\":\"%s\","
			      "\"generation\":%" PRIu32 "}",
			      k > lv->p_from ? "," : "", p->pid,
			      metrics_state_name(p->state), p->generation);
	}
	strbuf_puts(sb, "]");
}

static const char *json_scope_key(metrics_scope scope)
{
	switch (scope) {
	case METRICS_UPSTREAM: return "upstreams";
	case METRICS_NAME: return "server_names";
	default: return "listeners";
	}
}

/* "listeners", "upstreams" or "server_names": one object per series of
 * [from, to). */
static void json_series(strbuf *sb, const metrics_scrape *c,
			metrics_scope scope, const metrics_series *at,
			size_t from, size_t to)
{
	bool upstream = scope == METRICS_UPSTREAM;

	strbuf_printf(sb, ",\"%s\":[", json_scope_key(scope));
	for (size_t k = from; k < to; k++) {
		strbuf_puts(sb, k > from ? ",{" : "{");
		if (scope != METRICS_LISTENER) {
			strbuf_puts(sb, "\"listener\":");
			strbuf_json_string(sb, at[k].listener);
			strbuf_puts(sb, ",");
		}
		strbuf_puts(sb, "\"name\":");
		strbuf_json_string(sb, at[k].name);
		if (upstream && at[k].origin[0]) {
			strbuf_puts(sb, ",\"server_name\":");
			strbuf_json_string(sb, at[k].origin);
		}
		json_families(sb, c, scope, at[k].values);
		strbuf_puts(sb, "}");
	}
	strbuf_puts(sb, "]");
}

/* The shard's totals: its listeners' flat families, summed. */
static void json_listener_totals(strbuf *sb, const metrics_scrape *c,
				 const metrics_live *lv)
{
	metrics_family fam[METRICS_MAX_FAMILIES];
	size_t n = metrics_families(c->v->app, METRICS_LISTENER,
				    METRICS_TABLE_ORDER, fam);
	uint64_t sum[METRICS_SERIES_VALUES] = {0};

	for (size_t k = lv->l_from; k < lv->l_to; k++)
		for (size_t j = 0; j < METRICS_SERIES_VALUES; j++)
			sum[j] += c->t.listeners.at[k].values[j];
	for (size_t f = 0; f < n; f++) {
		const shard_metric *m = fam[f].metric;
		if (json_flat(m))
			json_family(sb, m, sum + fam[f].at,
				    m->json_total ? m->json_total : m->json);
	}
}

static void json_shard_identity(strbuf *sb, const metrics_live *lv,
				uint32_t i)
{
	metrics_proc none = { 0, 0, SHARD_STATE_FREE };
	const metrics_proc *p = lv->has_newest ? &lv->newest : &none;

	strbuf_printf(sb, "{\"shard\":%" PRIu32 ",\"pid\":%" PRId32
		      ",\"state\":\"%s\",\"generation\":%" PRIu32
		      ",\"poller\":", i, p->pid,
		      lv->has_newest ? metrics_state_name(p->state) : "down",
		      p->generation);
	strbuf_json_string(sb, lv->has_poller ? lv->poller : "");
}

static void json_shard(strbuf *sb, const metrics_scrape *c, uint32_t i)
{
	const metrics_live *lv = &c->live[i];

	json_shard_identity(sb, lv, i);
	json_procs(sb, c, lv);
	json_listener_totals(sb, c, lv);
	json_families(sb, c, METRICS_SHARD, c->t.shards[i].values);
	json_series(sb, c, METRICS_LISTENER, c->t.listeners.at, lv->l_from,
		    lv->l_to);
	json_series(sb, c, METRICS_UPSTREAM, c->t.upstreams.at, lv->u_from,
		    lv->u_to);
	json_series(sb, c, METRICS_NAME, c->t.names.at, lv->n_from, lv->n_to);
	strbuf_puts(sb, "}");
}

static void json_supervisor(strbuf *sb, const uint64_t *values, uint32_t which)
{
	const shard_metric *f = &metrics_supervisor[which];

	json_family(sb, f, &values[which], f->json);
}

static void json_top(strbuf *sb, const metrics_scrape *c)
{
	const metrics_view *v = c->v;
	int64_t now = v->now_unix_ns ? v->now_unix_ns : sched_clock_ns(CLOCK_REALTIME);
	uint64_t values[METRICS_SUP_COUNT];

	metrics_supervisor_values(c, values);
	strbuf_printf(sb, "{\"pid\":%" PRId32 ",\"%s\":", v->pid,
		      metrics_build_info.json);
	strbuf_json_string(sb, v->version ? v->version : "unknown");
	json_supervisor(sb, values, METRICS_SUP_STARTED);
	strbuf_puts(sb, ",\"uptime_s\":");
	strbuf_seconds(sb, now - v->started_unix_ns);
	json_supervisor(sb, values, METRICS_SUP_SHARDS);
	json_supervisor(sb, values, METRICS_SUP_RELOADS);
	json_supervisor(sb, values, METRICS_SUP_RESTARTS);
	json_supervisor(sb, values, METRICS_SUP_RETIRING);
}

int metrics_render_json(shard_metrics *m, const metrics_view *v, strbuf *out)
{
	metrics_scrape c;
	int err = metrics_collect(&c, m, v);

	if (!err) {
		json_top(out, &c);
		strbuf_puts(out, ",\"shards\":[");
		for (uint32_t i = 0; i < v->shards; i++) {
			strbuf_puts(out, i ? "," : "");
			json_shard(out, &c, i);
		}
		err = strbuf_puts(out, "]}");
	}
	metrics_scrape_free(&c);
	return err;
}
