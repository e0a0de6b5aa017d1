/* GET /stats: what a scrape shows as one JSON object (the layout is in
 * shard/metrics.h). */
#include "shard/metrics.h"

#include <inttypes.h>
#include <string.h>
#include <time.h>

static int64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void json_procs(strbuf *sb, const metrics_scrape *c, const metrics_live *lv)
{
	strbuf_puts(sb, ",\"processes\":[");
	for (size_t k = lv->p_from; k < lv->p_to; k++) {
		const metrics_proc *p = &c->procs[k];
		strbuf_printf(sb, "%s{\"pid\":%" PRId32 ",\"state\":\"%s\","
		      "\"generation\":%" PRIu32 "}", k > lv->p_from ? "," : "",
		      p->pid, metrics_state_name(p->state), p->generation);
	}
	strbuf_puts(sb, "]");
}

static void json_closed(strbuf *sb, const metrics_scrape *c,
			const shard_listener_counters *l)
{
	char buf[16];

	strbuf_puts(sb, ",\"closed\":{");
	for (uint32_t j = 0; j < metrics_reason_count(c->v); j++) {
		strbuf_puts(sb, j ? "," : "");
		strbuf_json_string(sb, metrics_reason_name(c->v, j, buf));
		strbuf_printf(sb, ":%" PRIu64, l->closed[j]);
	}
	strbuf_puts(sb, "}");
}

static void json_listeners(strbuf *sb, const metrics_scrape *c,
			   const metrics_live *lv)
{
	strbuf_puts(sb, ",\"listeners\":[");
	for (size_t k = lv->l_from; k < lv->l_to; k++) {
		const shard_listener_counters *l = &c->t.listeners[k].c;
		strbuf_puts(sb, k > lv->l_from ? ",{\"name\":" : "{\"name\":");
		strbuf_json_string(sb, l->name);
		strbuf_printf(sb, ",\"active\":%" PRIu64 ",\"accepted\":%" PRIu64
		      ",\"accept_errors\":%" PRIu64 ",\"frames_in\":%" PRIu64
		      ",\"frames_out\":%" PRIu64 ",\"bytes_in\":%" PRIu64
		      ",\"bytes_out\":%" PRIu64, l->active, l->accepted,
		      l->accept_errors, l->frames[0], l->frames[1],
		      l->bytes[0], l->bytes[1]);
		json_closed(sb, c, l);
		strbuf_puts(sb, "}");
	}
	strbuf_puts(sb, "]");
}

static void json_upstreams(strbuf *sb, const metrics_scrape *c,
			   const metrics_live *lv)
{
	strbuf_puts(sb, ",\"upstreams\":[");
	for (size_t k = lv->u_from; k < lv->u_to; k++) {
		const metrics_upstream_totals *u = &c->t.upstreams[k];
		strbuf_puts(sb, k > lv->u_from ? ",{\"listener\":" : "{\"listener\":");
		strbuf_json_string(sb, u->listener);
		strbuf_puts(sb, ",\"name\":");
		strbuf_json_string(sb, u->c.name);
		strbuf_printf(sb, ",\"up\":%d,\"connects\":%" PRIu64
		      ",\"connect_failures\":%" PRIu64 ",\"ejections\":%" PRIu64
		      "}", u->has_up && u->c.up, u->c.connects,
		      u->c.connect_failures, u->c.ejections);
	}
	strbuf_puts(sb, "]");
}

/* The shard's totals: the sums over its listeners. */
static shard_listener_counters listener_sum(const metrics_scrape *c,
					    const metrics_live *lv)
{
	shard_listener_counters sum;

	memset(&sum, 0, sizeof(sum));
	for (size_t k = lv->l_from; k < lv->l_to; k++)
		metrics_listener_add(&sum, &c->t.listeners[k].c, true);
	return sum;
}

static void json_shard_identity(strbuf *sb, const metrics_live *lv,
				uint32_t i)
{
	metrics_proc none = { 0, 0, SHARD_STATE_FREE };
	const metrics_proc *p = lv->has_newest ? &lv->newest : &none;

	strbuf_printf(sb, "{\"shard\":%" PRIu32 ",\"pid\":%" PRId32 ",\"state\":\"%s\""
	      ",\"generation\":%" PRIu32 ",\"poller\":", i, p->pid,
	      lv->has_newest ? metrics_state_name(p->state) : "down",
	      p->generation);
	strbuf_json_string(sb, lv->has_poller ? lv->poller : "");
}

static void json_shard_counters(strbuf *sb, const metrics_scrape *c,
				const metrics_live *lv, uint32_t i)
{
	const metrics_shard_totals *t = &c->t.shards[i];
	shard_listener_counters sum = listener_sum(c, lv);

	strbuf_printf(sb, ",\"connections_active\":%" PRIu64 ",\"accepted\":%" PRIu64
	      ",\"accept_errors\":%" PRIu64 ",\"frames_in\":%" PRIu64
	      ",\"frames_out\":%" PRIu64 ",\"bytes_in\":%" PRIu64
	      ",\"bytes_out\":%" PRIu64, sum.active, sum.accepted,
	      sum.accept_errors, sum.frames[0], sum.frames[1], sum.bytes[0],
	      sum.bytes[1]);
	strbuf_puts(sb, ",\"cpu_user_s\":");
	strbuf_seconds(sb, (int64_t)t->cpu_user_ns);
	strbuf_puts(sb, ",\"cpu_system_s\":");
	strbuf_seconds(sb, (int64_t)t->cpu_system_ns);
	strbuf_printf(sb, ",\"rss_bytes\":%" PRIu64 ",\"runq_length\":%" PRIu64
	      ",\"coroutines\":%" PRIu64 ",\"sched_rounds\":%" PRIu64
	      ",\"sched_switches\":%" PRIu64 ",\"poller_waits\":%" PRIu64
	      ",\"poller_events\":%" PRIu64 ",\"poller_syscalls\":%" PRIu64
	      ",\"poller_polls\":%" PRIu64 ",\"poller_submits\":%" PRIu64
	      ",\"log_lines_dropped\":%" PRIu64,
	      lv->rss_bytes, lv->runq_len, lv->coroutines, t->sched_rounds,
	      t->sched_switches, t->poll_waits, t->poll_events,
	      t->poll_syscalls, t->poll_polls, t->poll_submits,
	      t->log_lines_dropped);
}

static void json_shard(strbuf *sb, const metrics_scrape *c, uint32_t i)
{
	const metrics_live *lv = &c->live[i];

	json_shard_identity(sb, lv, i);
	json_procs(sb, c, lv);
	json_shard_counters(sb, c, lv, i);
	json_listeners(sb, c, lv);
	json_upstreams(sb, c, lv);
	strbuf_puts(sb, "}");
}

static void json_top(strbuf *sb, const metrics_scrape *c)
{
	const metrics_view *v = c->v;
	int64_t now = v->now_unix_ns ? v->now_unix_ns : realtime_ns();

	strbuf_printf(sb, "{\"pid\":%" PRId32 ",\"started_unix_s\":", v->pid);
	strbuf_seconds(sb, v->started_unix_ns);
	strbuf_puts(sb, ",\"uptime_s\":");
	strbuf_seconds(sb, now - v->started_unix_ns);
	strbuf_printf(sb, ",\"shards_configured\":%" PRIu32 ",\"reloads\":%" PRIu64
	      ",\"restarts\":%" PRIu64 ",\"retiring\":%" PRIu32,
	      v->shards, v->reloads, v->restarts, c->retiring);
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
