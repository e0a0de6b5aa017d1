/* GET /metrics: what a scrape shows in the Prometheus text format 0.0.4
 * (the families are listed in shard/metrics.h). */
#include "shard/metrics.h"

#include <inttypes.h>
#include <stddef.h>
#include <string.h>

/* Where the output goes, and the labels written in the open sample. */
typedef struct prom_out {
	strbuf *sb;
	unsigned labels;
} prom_out;

static void prom_family(prom_out *w, const char *name, const char *type,
			const char *help)
{
	strbuf_printf(w->sb, "# HELP frameproxy_%s %s\n# TYPE frameproxy_%s %s\n",
	      name, help, name, type);
}

static void prom_begin(prom_out *w, const char *name)
{
	strbuf_printf(w->sb, "frameproxy_%s", name);
	w->labels = 0;
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

static void prom_end_u64(prom_out *w, uint64_t value)
{
	strbuf_printf(w->sb, "%s %" PRIu64 "\n", w->labels ? "}" : "", value);
}

static void prom_end_seconds(prom_out *w, int64_t ns)
{
	strbuf_puts(w->sb, w->labels ? "} " : " ");
	strbuf_seconds(w->sb, ns);
	strbuf_puts(w->sb, "\n");
}

static void prom_scalar(prom_out *w, const char *name, const char *type,
			const char *help, uint64_t value)
{
	prom_family(w, name, type, help);
	prom_begin(w, name);
	prom_end_u64(w, value);
}

static void prom_supervisor(prom_out *w, const metrics_scrape *c)
{
	const metrics_view *v = c->v;

	prom_scalar(w, "shards", "gauge", "Shards configured.", v->shards);
	prom_scalar(w, "shards_retiring", "gauge",
		    "Shard processes retiring or draining after a reload.",
		    c->retiring);
	prom_scalar(w, "shard_restarts_total", "counter",
		    "Shard processes that died and were replaced.",
		    v->restarts);
	prom_scalar(w, "reloads_total", "counter",
		    "Configuration reloads applied.", v->reloads);
	prom_family(w, "start_time_seconds", "gauge",
		    "Start of the supervisor, seconds since the Unix epoch.");
	prom_begin(w, "start_time_seconds");
	prom_end_seconds(w, v->started_unix_ns);
}

typedef struct field_family {
	const char *name;
	const char *help;
	size_t offset;                /* of a uint64_t */
} field_family;

static uint64_t field(const void *base, size_t offset)
{
	uint64_t value;

	memcpy(&value, (const char *)base + offset, sizeof(value));
	return value;
}

static const field_family shard_counters[] = {
	{ "sched_rounds_total", "Coroutines picked and run by the scheduler.",
	  offsetof(metrics_shard_totals, sched_rounds) },
	{ "sched_switches_total", "Coroutine context switches.",
	  offsetof(metrics_shard_totals, sched_switches) },
	{ "poller_waits_total", "Times a coroutine parked on a socket.",
	  offsetof(metrics_shard_totals, poll_waits) },
	{ "poller_events_total", "Readiness events taken from the poller.",
	  offsetof(metrics_shard_totals, poll_events) },
	{ "poller_syscalls_total",
	  "System calls made by the poller and its socket operations.",
	  offsetof(metrics_shard_totals, poll_syscalls) },
	{ "poller_polls_total", "Times the scheduler entered the poller.",
	  offsetof(metrics_shard_totals, poll_polls) },
	{ "poller_submits_total", "io_uring submissions (0 with epoll).",
	  offsetof(metrics_shard_totals, poll_submits) },
	{ "log_lines_dropped_total",
	  "Log lines dropped because stderr had no room for them.",
	  offsetof(metrics_shard_totals, log_lines_dropped) },
};

static const field_family shard_gauges[] = {
	{ "sched_runq_length", "Coroutines ready to run.",
	  offsetof(metrics_live, runq_len) },
	{ "sched_coroutines", "Coroutines alive.",
	  offsetof(metrics_live, coroutines) },
	{ "shard_resident_bytes", "Resident memory of the shard's processes.",
	  offsetof(metrics_live, rss_bytes) },
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static void prom_shard_counters(prom_out *w, const metrics_scrape *c)
{
	for (size_t f = 0; f < COUNT(shard_counters); f++) {
		const field_family *ff = &shard_counters[f];
		prom_family(w, ff->name, "counter", ff->help);
		for (uint32_t i = 0; i < c->v->shards; i++) {
			prom_begin(w, ff->name);
			prom_label_shard(w, i);
			prom_end_u64(w, field(&c->t.shards[i], ff->offset));
		}
	}
}

static void prom_shard_gauges(prom_out *w, const metrics_scrape *c)
{
	for (size_t f = 0; f < COUNT(shard_gauges); f++) {
		const field_family *ff = &shard_gauges[f];
		prom_family(w, ff->name, "gauge", ff->help);
		for (uint32_t i = 0; i < c->v->shards; i++) {
			prom_begin(w, ff->name);
			prom_label_shard(w, i);
			prom_end_u64(w, field(&c->live[i], ff->offset));
		}
	}
}

static void prom_shard_cpu(prom_out *w, const metrics_scrape *c)
{
	prom_family(w, "shard_cpu_seconds_total", "counter",
		    "CPU time of the shard's processes.");
	for (uint32_t i = 0; i < c->v->shards; i++) {
		for (int mode = 0; mode < 2; mode++) {
			const metrics_shard_totals *t = &c->t.shards[i];
			prom_begin(w, "shard_cpu_seconds_total");
			prom_label_shard(w, i);
			prom_label(w, "mode", mode ? "system" : "user");
			prom_end_seconds(w, (int64_t)(mode ? t->cpu_system_ns :
						      t->cpu_user_ns));
		}
	}
}

static void prom_shard_state(prom_out *w, const metrics_scrape *c)
{
	prom_family(w, "shard_up", "gauge",
		    "1 when a shard process of this index is accepting.");
	for (uint32_t i = 0; i < c->v->shards; i++) {
		prom_begin(w, "shard_up");
		prom_label_shard(w, i);
		prom_end_u64(w, c->live[i].ready > 0);
	}
	prom_family(w, "shard_info", "gauge",
		    "Always 1; the poller of the newest process of the shard.");
	for (uint32_t i = 0; i < c->v->shards; i++) {
		if (!c->live[i].has_poller)
			continue;
		prom_begin(w, "shard_info");
		prom_label_shard(w, i);
		prom_label(w, "poller", c->live[i].poller);
		prom_end_u64(w, 1);
	}
}

static void prom_listener_begin(prom_out *w, const char *name,
				const metrics_listener_totals *l)
{
	prom_begin(w, name);
	prom_label_shard(w, l->shard);
	prom_label(w, "listener", l->c.name);
}

static const field_family listener_fields[] = {
	{ "connections_accepted_total", "Client connections accepted.",
	  offsetof(shard_listener_counters, accepted) },
	{ "accept_errors_total", "accept() calls that failed.",
	  offsetof(shard_listener_counters, accept_errors) },
	{ "connections_active", "Client connections open.",
	  offsetof(shard_listener_counters, active) },
};

static void prom_listener_fields(prom_out *w, const metrics_scrape *c)
{
	for (size_t f = 0; f < COUNT(listener_fields); f++) {
		const field_family *ff = &listener_fields[f];
		bool gauge = ff->offset == offsetof(shard_listener_counters,
						    active);
		prom_family(w, ff->name, gauge ? "gauge" : "counter", ff->help);
		for (size_t k = 0; k < c->t.listener_count; k++) {
			const metrics_listener_totals *l = &c->t.listeners[k];
			prom_listener_begin(w, ff->name, l);
			prom_end_u64(w, field(&l->c, ff->offset));
		}
	}
}

static void prom_directions(prom_out *w, const metrics_scrape *c, bool bytes)
{
	const char *name = bytes ? "bytes_total" : "frames_total";

	prom_family(w, name, "counter", bytes ?
		    "Frame bytes relayed, length prefixes included." :
		    "Frames relayed.");
	for (size_t k = 0; k < c->t.listener_count; k++) {
		const metrics_listener_totals *l = &c->t.listeners[k];
		const uint64_t *v = bytes ? l->c.bytes : l->c.frames;
		for (int d = 0; d < 2; d++) {
			prom_listener_begin(w, name, l);
			prom_label(w, "direction", d ? "upstream_to_client" :
						   "client_to_upstream");
			prom_end_u64(w, v[d]);
		}
	}
}

static void prom_closed(prom_out *w, const metrics_scrape *c)
{
	char buf[16];

	prom_family(w, "connections_closed_total", "counter",
		    "Client connections closed, by reason.");
	for (size_t k = 0; k < c->t.listener_count; k++) {
		const metrics_listener_totals *l = &c->t.listeners[k];
		for (uint32_t j = 0; j < metrics_reason_count(c->v); j++) {
			prom_listener_begin(w, "connections_closed_total", l);
			prom_label(w, "reason", metrics_reason_name(c->v, j, buf));
			prom_end_u64(w, l->c.closed[j]);
		}
	}
}

static const field_family upstream_fields[] = {
	{ "upstream_connects_total", "Connections opened to the upstream.",
	  offsetof(shard_upstream_counters, connects) },
	{ "upstream_connect_failures_total",
	  "Connection attempts to the upstream that failed.",
	  offsetof(shard_upstream_counters, connect_failures) },
	{ "upstream_ejections_total",
	  "Times the upstream was taken out of the balancing.",
	  offsetof(shard_upstream_counters, ejections) },
};

static void prom_upstream_begin(prom_out *w, const char *name,
				const metrics_upstream_totals *u)
{
	prom_begin(w, name);
	prom_label_shard(w, u->shard);
	prom_label(w, "listener", u->listener);
	prom_label(w, "upstream", u->c.name);
}

static void prom_upstreams(prom_out *w, const metrics_scrape *c)
{
	for (size_t f = 0; f < COUNT(upstream_fields); f++) {
		const field_family *ff = &upstream_fields[f];
		prom_family(w, ff->name, "counter", ff->help);
		for (size_t k = 0; k < c->t.upstream_count; k++) {
			const metrics_upstream_totals *u = &c->t.upstreams[k];
			prom_upstream_begin(w, ff->name, u);
			prom_end_u64(w, field(&u->c, ff->offset));
		}
	}
	prom_family(w, "upstream_up", "gauge",
		    "1 when the upstream is usable (not ejected, checks up).");
	for (size_t k = 0; k < c->t.upstream_count; k++) {
		const metrics_upstream_totals *u = &c->t.upstreams[k];
		if (!u->has_up)
			continue; /* no live process uses it any more */
		prom_upstream_begin(w, "upstream_up", u);
		prom_end_u64(w, u->c.up != 0);
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
		prom_shard_counters(&w, &c);
		prom_shard_cpu(&w, &c);
		prom_shard_gauges(&w, &c);
		prom_shard_state(&w, &c);
		prom_listener_fields(&w, &c);
		prom_directions(&w, &c, false);
		prom_directions(&w, &c, true);
		prom_closed(&w, &c);
		prom_upstreams(&w, &c);
		err = out->err;
	}
	metrics_scrape_free(&c);
	return err;
}

