/* The shared slot mapping, retired totals, what a scrape shows, and the
 * tables behind it (see shard/metrics.h); metrics_prom.c and metrics_json.c
 * render a scrape. */
#include "shard/metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "shard/runtime.h"

_Static_assert(METRICS_APP_BASE + SHARD_MAX_APP_VALUES <= METRICS_SERIES_VALUES &&
	       SHARD_MAX_LISTENER_VALUES <= METRICS_SERIES_VALUES &&
	       SHARD_MAX_UPSTREAM_VALUES <= METRICS_SERIES_VALUES &&
	       SHARD_MAX_NAME_VALUES <= METRICS_SERIES_VALUES,
	       "a series holds every value of its scope");

const shard_metric metrics_supervisor[] = {
	METRICS_SUPERVISOR(SHARD_METRIC_ENTRY)
};
const shard_metric metrics_index[] = {
	METRICS_INDEX(SHARD_METRIC_ENTRY)
};
const shard_metric metrics_build_info = {
	.name = "build_info", .type = SHARD_GAUGE, .width = 1, .label = "version",
	.json = "version",
	.help = "Always 1; the version of the supervisor answering (a binary "
		"upgrade changes it).",
};

/* --- the mapping ---------------------------------------------------------- */

int metrics_map(shard_metrics *m, uint32_t slot_count)
{
	memset(m, 0, sizeof(*m));
	if (slot_count == 0)
		return -EINVAL;
	size_t len;
	if (__builtin_mul_overflow((size_t)slot_count, sizeof(shard_slot), &len))
		return -EINVAL;

	/* Anonymous shared memory is zero-filled: every slot starts FREE. */
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	m->slots = p;
	m->slot_count = slot_count;
	m->map_len = len;
	return 0;
}

static void table_free(metrics_table *t)
{
	free(t->shards);
	free(t->listeners.at);
	free(t->upstreams.at);
	free(t->names.at);
	memset(t, 0, sizeof(*t));
}

void metrics_unmap(shard_metrics *m)
{
	if (m->slots)
		munmap(m->slots, m->map_len);
	table_free(&m->retired);
	memset(m, 0, sizeof(*m));
}

static bool state_live(shard_state state)
{
	return state == SHARD_STATE_STARTING || state == SHARD_STATE_READY ||
	       state == SHARD_STATE_RETIRING || state == SHARD_STATE_DRAINING;
}

const char *metrics_state_name(shard_state state)
{
	switch (state) {
	case SHARD_STATE_FREE: return "free";
	case SHARD_STATE_STARTING: return "starting";
	case SHARD_STATE_READY: return "ready";
	case SHARD_STATE_RETIRING: return "retiring";
	case SHARD_STATE_DRAINING: return "draining";
	}
	return "unknown";
}

shard_slot *metrics_claim(shard_metrics *m, uint32_t index,
			  uint32_t generation)
{
	for (uint32_t i = 0; i < m->slot_count; i++) {
		shard_slot *s = &m->slots[i];
		if (shard_slot_get_state(s) != SHARD_STATE_FREE)
			continue;
		/* FREE means no process writes it: plain stores are safe,
		 * and the release store of STARTING publishes them. */
		memset(s, 0, sizeof(*s));
		s->index = index;
		s->generation = generation;
		shard_slot_set_state(s, SHARD_STATE_STARTING);
		return s;
	}
	return NULL;
}

/* --- the tables ----------------------------------------------------------- */

/* One table of a scope, where its values start in the scope's series and
 * how many a slot has room for. */
typedef struct scope_part {
	const shard_metric_list *list;
	uint32_t base;
	uint32_t room;
	const char *what;             /* for check messages */
} scope_part;

static const shard_metric_list no_metrics = { NULL, 0 };

/* A shard index has shard/'s runtime table and the application's; the
 * other scopes only the application's. */
static size_t scope_parts(const shard_app_metrics *app, metrics_scope scope,
			  scope_part out[2])
{
	switch (scope) {
	case METRICS_SHARD:
		out[0] = (scope_part){ &runtime_metrics, 0,
			SHARD_MAX_RUNTIME_VALUES, "runtime" };
		out[1] = (scope_part){ app ? &app->shard : &no_metrics,
			METRICS_APP_BASE, SHARD_MAX_APP_VALUES, "per-shard" };
		return 2;
	case METRICS_LISTENER:
		out[0] = (scope_part){ app ? &app->listener : &no_metrics, 0,
			SHARD_MAX_LISTENER_VALUES, "per-listener" };
		return 1;
	case METRICS_UPSTREAM:
		out[0] = (scope_part){ app ? &app->upstream : &no_metrics, 0,
			SHARD_MAX_UPSTREAM_VALUES, "per-upstream" };
		return 1;
	case METRICS_NAME:
		out[0] = (scope_part){ app ? &app->name : &no_metrics, 0,
			SHARD_MAX_NAME_VALUES, "per-server-name" };
		return 1;
	}
	return 0;
}

static bool ends_with(const char *s, const char *tail)
{
	size_t n = strlen(s), t = strlen(tail);
	return n > t && strcmp(s + n - t, tail) == 0;
}

/* What is wrong with a histogram f, or NULL. */
static const char *histogram_fault(const shard_metric *f)
{
	if (!f->bounds || f->bound_count == 0)
		return "is a histogram without bounds";
	if (f->bound_count > SHARD_HISTOGRAM_MAX_BOUNDS)
		return "is a histogram with too many bounds";
	if (f->width != SHARD_HISTOGRAM_WIDTH(f->bound_count))
		return "is a histogram whose width is not its bounds + 2";
	for (uint32_t k = 1; k < f->bound_count; k++)
		if (f->bounds[k] <= f->bounds[k - 1])
			return "is a histogram whose bounds do not increase";
	if (f->label || f->json_each || f->json_total)
		return "is a histogram with a label or flat /stats keys";
	if (f->merge != SHARD_MERGE_SUM)
		return "is a histogram that does not add up";
	if (ends_with(f->name, "_total") || ends_with(f->name, "_bucket") ||
	    ends_with(f->name, "_sum") || ends_with(f->name, "_count"))
		return "is a histogram whose name ends in a sample's suffix";
	return NULL;
}

/* What is wrong with f, or NULL. */
static const char *metric_fault(const shard_metric *f)
{
	if (f->type == SHARD_HISTOGRAM)
		return histogram_fault(f);
	if (f->bounds || f->bound_count)
		return "has bounds but is not a histogram";
	if (f->width == 0)
		return "has no values";
	if (f->width > 1 && !f->label)
		return "has several values but no label";
	if (f->json_each && !f->label)
		return "has json_each but no label";
	if (f->type == SHARD_COUNTER && !ends_with(f->name, "_total"))
		return "is a counter whose name does not end in _total";
	if (f->type == SHARD_COUNTER && f->merge != SHARD_MERGE_SUM)
		return "is a counter that does not add up";
	if (f->type == SHARD_GAUGE && ends_with(f->name, "_total"))
		return "is a gauge whose name ends in _total";
	return NULL;
}

static int check_part(const scope_part *p, char *why, size_t why_len)
{
	uint64_t values = 0;

	for (uint32_t i = 0; i < p->list->count; i++) {
		const shard_metric *f = &p->list->metrics[i];
		const char *fault = f->name && f->help ? metric_fault(f) :
			"has no name or help";
		if (fault) {
			snprintf(why, why_len, "%s metric %s %s", p->what,
				 f->name ? f->name : "#", fault);
			return -EINVAL;
		}
		values += f->width;
	}
	if (values <= p->room)
		return 0;
	snprintf(why, why_len, "%s metrics need %llu values, a slot has room "
		 "for %u", p->what, (unsigned long long)values, p->room);
	return -EINVAL;
}

int shard_metrics_check(const shard_app_metrics *app, char *why, size_t why_len)
{
	static const metrics_scope scopes[] = {
		METRICS_SHARD, METRICS_LISTENER, METRICS_UPSTREAM, METRICS_NAME,
	};
	scope_part parts[2];

	for (size_t s = 0; s < sizeof(scopes) / sizeof(scopes[0]); s++) {
		size_t n = scope_parts(app, scopes[s], parts);
		for (size_t p = 0; p < n; p++) {
			int err = check_part(&parts[p], why, why_len);
			if (err)
				return err;
		}
	}
	return 0;
}

/* One value, no label. */
static bool plain_counter(const shard_metric *f)
{
	return f->type == SHARD_COUNTER && !f->label;
}

size_t metrics_families(const shard_app_metrics *app, metrics_scope scope,
			metrics_order order, metrics_family *out)
{
	scope_part parts[2];
	size_t np = scope_parts(app, scope, parts), n = 0;
	int passes = order == METRICS_PROM_ORDER ? 2 : 1;

	for (int pass = 0; pass < passes; pass++) {
		for (size_t p = 0; p < np; p++) {
			uint32_t at = parts[p].base;
			for (uint32_t i = 0; i < parts[p].list->count; i++) {
				const shard_metric *f = &parts[p].list->metrics[i];
				bool take = passes == 1 ||
					    plain_counter(f) == (pass == 0);
				if (take && n < METRICS_MAX_FAMILIES)
					out[n++] = (metrics_family){ f, at };
				at += f->width;
			}
		}
	}
	return n;
}

const char *metrics_label_value(const shard_metric *f, uint32_t k,
				char buf[32])
{
	const char *name = f->label_value ? f->label_value(k) : NULL;

	if (name)
		return name;
	snprintf(buf, 32, "%s%u", f->label ? f->label : "", k);
	return buf;
}

uint64_t metrics_histogram_count(const shard_metric *f, const uint64_t *v)
{
	uint64_t n = 0;

	for (uint32_t k = 0; k <= f->bound_count; k++)
		n += v[k];
	return n;
}

void metrics_histogram_bound(strbuf *sb, const shard_metric *f, uint32_t k)
{
	uint64_t b = f->bounds[k];

	if (f->unit != SHARD_UNIT_NS) {
		strbuf_printf(sb, "%" PRIu64, b);
		return;
	}
	/* Nine fraction digits, then the trailing zeros dropped. */
	char frac[16];
	int len = snprintf(frac, sizeof(frac), "%09" PRIu64, b % 1000000000u);
	while (len > 0 && frac[len - 1] == '0')
		len--;
	strbuf_printf(sb, "%" PRIu64 "%s%.*s", b / 1000000000u, len ? "." : "",
		      len, frac);
}

/* --- reading a slot ------------------------------------------------------- */

static uint32_t load32(const uint32_t *field)
{
	return __atomic_load_n(field, __ATOMIC_RELAXED);
}

static uint32_t min32(uint32_t a, uint32_t b)
{
	return a < b ? a : b;
}

/* A name the writer may not have terminated (it died, or it is a torn
 * read): always terminated in dst. */
static void copy_name(char *dst, const char *src, size_t size)
{
	memcpy(dst, src, size);
	dst[size - 1] = '\0';
}

static void load_values(uint64_t *dst, const uint64_t *src, size_t n)
{
	for (size_t k = 0; k < n; k++)
		dst[k] = shard_slot_load(&src[k]);
}

/* A row's name and listener under its name_seq (shard_slot_upstream_name);
 * a writer that keeps it busy leaves the row nameless for this scrape. */
static void upstream_name_copy(shard_slot_upstream *d, const shard_slot_upstream *u)
{
	for (int attempt = 0; attempt < 16; attempt++) {
		uint32_t before = __atomic_load_n(&u->name_seq, __ATOMIC_ACQUIRE);
		if (before & 1)
			continue;
		copy_name(d->name, u->name, SHARD_NAME_MAX);
		copy_name(d->origin, u->origin, SHARD_NAME_MAX);
		d->listener = load32(&u->listener);
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (__atomic_load_n(&u->name_seq, __ATOMIC_RELAXED) == before)
			return;
	}
	d->name[0] = '\0';
	d->listener = UINT32_MAX;
}

static void snapshot_series(const shard_slot *s, shard_slot *d)
{
	d->listener_count = min32(load32(&s->listener_count),
				  SHARD_MAX_LISTENERS);
	d->upstream_count = min32(load32(&s->upstream_count),
				  SHARD_MAX_UPSTREAMS);
	d->name_count = min32(load32(&s->name_count), SHARD_MAX_NAMES);
	for (uint32_t k = 0; k < d->listener_count; k++) {
		const shard_slot_listener *l = &s->listeners[k];
		copy_name(d->listeners[k].name, l->name, SHARD_NAME_MAX);
		load_values(d->listeners[k].values, l->values,
			    SHARD_MAX_LISTENER_VALUES);
	}
	for (uint32_t k = 0; k < d->upstream_count; k++) {
		const shard_slot_upstream *u = &s->upstreams[k];
		upstream_name_copy(&d->upstreams[k], u);
		load_values(d->upstreams[k].values, u->values,
			    SHARD_MAX_UPSTREAM_VALUES);
	}
	for (uint32_t k = 0; k < d->name_count; k++) {
		const shard_slot_server_name *n = &s->names[k];
		copy_name(d->names[k].name, n->name, SHARD_NAME_MAX);
		d->names[k].listener = load32(&n->listener);
		load_values(d->names[k].values, n->values,
			    SHARD_MAX_NAME_VALUES);
	}
}

/*
 * Copy what is needed of a slot another process writes, every field read
 * once, so the rest of the code works on plain memory. Listeners and
 * upstreams only `with_app`: a live STARTING shard may be writing names.
 */
static void snapshot(const shard_slot *s, shard_state state, bool with_app,
		     shard_slot *d)
{
	d->state = state;
	d->index = load32(&s->index);
	d->generation = load32(&s->generation);
	d->pid = __atomic_load_n(&s->pid, __ATOMIC_RELAXED);
	copy_name(d->poller, s->poller, sizeof(d->poller));
	load_values(d->runtime, s->runtime, SHARD_MAX_RUNTIME_VALUES);
	load_values(d->app, s->app, SHARD_MAX_APP_VALUES);
	d->listener_count = 0;
	d->upstream_count = 0;
	d->name_count = 0;
	if (with_app)
		snapshot_series(s, d);
}

/* The name of the listener an upstream or server name belongs to ("" if
 * out of range). */
static const char *listener_of(const shard_slot *snap, uint32_t listener)
{
	return listener < snap->listener_count ?
	       snap->listeners[listener].name : "";
}

/* --- tables of series ----------------------------------------------------- */

static size_t next_cap(size_t cap)
{
	return cap ? cap * 2 : 16;
}

/* The series of `index`, growing the array; NULL on ENOMEM. */
static metrics_series *table_shard(metrics_table *t, uint32_t index)
{
	if (index < t->shard_count)
		return &t->shards[index];
	size_t n = (size_t)index + 1;
	metrics_series *p = realloc(t->shards, n * sizeof(*p));
	if (!p)
		return NULL;
	memset(p + t->shard_count, 0, (n - t->shard_count) * sizeof(*p));
	for (size_t k = t->shard_count; k < n; k++)
		p[k].shard = (uint32_t)k;
	t->shards = p;
	t->shard_count = (uint32_t)n;
	return &p[index];
}

/* Find (shard, listener, name) among l->at[from..], or append it zeroed
 * (listener "" for a listener's own series). The scrape builds one index at
 * a time, so `from` keeps searches short. */
/* An upstream series keeps the server name it came from (the first one
 * seen: an address is the same server whichever name gave it). */
static void series_origin(metrics_series *s, const char *origin)
{
	if (!s->origin[0] && origin[0])
		shard_slot_name(s->origin, origin);
}

static metrics_series *series_find(metrics_series_list *l, size_t from,
				   uint32_t shard, const char *listener,
				   const char *name)
{
	for (size_t i = from; i < l->count; i++) {
		metrics_series *s = &l->at[i];
		if (s->shard == shard && strcmp(s->listener, listener) == 0 &&
		    strcmp(s->name, name) == 0)
			return s;
	}
	if (l->count == l->cap) {
		size_t cap = next_cap(l->cap);
		metrics_series *p = realloc(l->at, cap * sizeof(*p));
		if (!p)
			return NULL;
		l->at = p;
		l->cap = cap;
	}
	metrics_series *s = &l->at[l->count++];
	memset(s, 0, sizeof(*s));
	s->shard = shard;
	shard_slot_name(s->listener, listener);
	shard_slot_name(s->name, name);
	return s;
}

typedef enum merge_how {
	MERGE_COUNTERS,               /* from the retired totals */
	MERGE_LIVE,                   /* from a live slot */
} merge_how;

/* Adds one table's values (src) to a series' (dst, at the table's base),
 * as each family's entry says. */
static void merge_part(const shard_metric_list *list, uint64_t *dst,
		       const uint64_t *src, merge_how how, bool newer)
{
	uint32_t at = 0;

	for (uint32_t i = 0; i < list->count; i++) {
		const shard_metric *f = &list->metrics[i];
		for (uint32_t end = at + f->width; at < end; at++) {
			if (f->type != SHARD_GAUGE ||
			    (how == MERGE_LIVE && f->merge == SHARD_MERGE_SUM))
				dst[at] += src[at];
			else if (how == MERGE_LIVE && newer)
				dst[at] = src[at];
		}
	}
}

/* src[p]: the values of the scope's p-th table. */
static void series_merge(metrics_series *d, const shard_app_metrics *app,
			 metrics_scope scope, const uint64_t *const src[2],
			 merge_how how, uint32_t generation)
{
	scope_part parts[2];
	size_t np = scope_parts(app, scope, parts);
	bool newer = how == MERGE_LIVE && (!d->live || generation > d->newest);

	for (size_t p = 0; p < np; p++)
		merge_part(parts[p].list, d->values + parts[p].base, src[p],
			   how, newer);
	if (newer) {
		d->live = true;
		d->newest = generation;
	}
}

/* Retired totals keep every value; only their counters and histograms are
 * read back. */
static void fold(uint64_t *dst, const uint64_t *src, size_t n)
{
	for (size_t k = 0; k < n; k++)
		dst[k] += src[k];
}

/* --- releasing a slot ----------------------------------------------------- */

static void retire(metrics_table *t, const shard_slot *snap)
{
	metrics_series *st = table_shard(t, snap->index);
	if (st) {
		fold(st->values, snap->runtime, SHARD_MAX_RUNTIME_VALUES);
		fold(st->values + METRICS_APP_BASE, snap->app,
		     SHARD_MAX_APP_VALUES);
	}
	for (uint32_t k = 0; k < snap->listener_count; k++) {
		const shard_slot_listener *src = &snap->listeners[k];
		metrics_series *l = series_find(&t->listeners, 0, snap->index,
						"", src->name);
		if (l)
			fold(l->values, src->values, SHARD_MAX_LISTENER_VALUES);
	}
	for (uint32_t k = 0; k < snap->upstream_count; k++) {
		const shard_slot_upstream *src = &snap->upstreams[k];
		if (src->listener == UINT32_MAX)
			continue; /* being renamed (upstream_name_copy) */
		metrics_series *u = series_find(&t->upstreams, 0, snap->index,
			listener_of(snap, src->listener), src->name);
		if (!u)
			continue;
		fold(u->values, src->values, SHARD_MAX_UPSTREAM_VALUES);
		series_origin(u, src->origin);
	}
	for (uint32_t k = 0; k < snap->name_count; k++) {
		const shard_slot_server_name *src = &snap->names[k];
		metrics_series *n = series_find(&t->names, 0, snap->index,
			listener_of(snap, src->listener), src->name);
		if (n)
			fold(n->values, src->values, SHARD_MAX_NAME_VALUES);
	}
}

static bool slot_in_map(const shard_metrics *m, const shard_slot *slot)
{
	return m->slots && slot >= m->slots && slot < m->slots + m->slot_count;
}

void metrics_release(shard_metrics *m, shard_slot *slot)
{
	if (!slot_in_map(m, slot))
		return;
	shard_state state = shard_slot_get_state(slot);
	if (state == SHARD_STATE_FREE)
		return;

	/* The process is gone: nobody writes the slot, all of it counts. */
	shard_slot snap;
	snapshot(slot, state, true, &snap);
	/* An index is below the shard count, itself below the slot count:
	 * anything else is a corrupt slot, not worth a huge allocation. */
	if (snap.index < m->slot_count)
		retire(&m->retired, &snap);
	shard_slot_set_state(slot, SHARD_STATE_FREE);
}

/* --- collecting what a scrape shows --------------------------------------- */

void metrics_scrape_free(metrics_scrape *c)
{
	table_free(&c->t);
	free(c->live);
	free(c->procs);
}

/* Newer generation first; on a tie a READY process wins. */
static bool proc_newer(const metrics_proc *a, const metrics_proc *b)
{
	if (a->generation != b->generation)
		return a->generation > b->generation;
	return a->state == SHARD_STATE_READY && b->state != SHARD_STATE_READY;
}

static void live_add_proc(metrics_scrape *c, metrics_live *lv,
			  const shard_slot *snap)
{
	metrics_proc p = {
		.generation = snap->generation,
		.pid = snap->pid,
		.state = (shard_state)snap->state,
	};
	c->procs[c->proc_count++] = p;
	if (!lv->has_newest || proc_newer(&p, &lv->newest))
		lv->newest = p;
	lv->has_newest = true;
	if (p.state == SHARD_STATE_READY)
		lv->ready++;
	if (p.state == SHARD_STATE_RETIRING || p.state == SHARD_STATE_DRAINING)
		c->retiring++;
}

static void live_add_shard(metrics_scrape *c, metrics_live *lv,
			   const shard_slot *snap)
{
	const uint64_t *const src[2] = { snap->runtime, snap->app };

	series_merge(&c->t.shards[snap->index], c->v->app, METRICS_SHARD, src,
		     MERGE_LIVE, snap->generation);
	/* Before its first publish a slot has no poller name yet: keep the
	 * older process's rather than show none. */
	if (snap->poller[0] &&
	    (!lv->has_poller || snap->generation > lv->poller_generation)) {
		memcpy(lv->poller, snap->poller, sizeof(lv->poller));
		lv->poller_generation = snap->generation;
		lv->has_poller = true;
	}
}

static int live_add_app(metrics_scrape *c, const metrics_live *lv,
			const shard_slot *snap)
{
	const shard_app_metrics *app = c->v->app;

	for (uint32_t k = 0; k < snap->listener_count; k++) {
		const shard_slot_listener *src = &snap->listeners[k];
		metrics_series *l = series_find(&c->t.listeners, lv->l_from,
						snap->index, "", src->name);
		if (!l)
			return -ENOMEM;
		const uint64_t *const values[2] = { src->values, NULL };
		series_merge(l, app, METRICS_LISTENER, values, MERGE_LIVE,
			     snap->generation);
	}
	for (uint32_t k = 0; k < snap->upstream_count; k++) {
		const shard_slot_upstream *src = &snap->upstreams[k];
		if (src->listener == UINT32_MAX)
			continue; /* being renamed (upstream_name_copy) */
		metrics_series *u = series_find(&c->t.upstreams, lv->u_from,
			snap->index, listener_of(snap, src->listener), src->name);
		if (!u)
			return -ENOMEM;
		series_origin(u, src->origin);
		const uint64_t *const values[2] = { src->values, NULL };
		series_merge(u, app, METRICS_UPSTREAM, values, MERGE_LIVE,
			     snap->generation);
	}
	for (uint32_t k = 0; k < snap->name_count; k++) {
		const shard_slot_server_name *src = &snap->names[k];
		metrics_series *n = series_find(&c->t.names, lv->n_from,
			snap->index, listener_of(snap, src->listener), src->name);
		if (!n)
			return -ENOMEM;
		const uint64_t *const values[2] = { src->values, NULL };
		series_merge(n, app, METRICS_NAME, values, MERGE_LIVE,
			     snap->generation);
	}
	return 0;
}

/* The retired series of one scope of index i start its range. */
static int add_retired_list(metrics_scrape *c, metrics_series_list *to,
			    size_t from, const metrics_series_list *r,
			    metrics_scope scope, uint32_t i)
{
	for (size_t k = 0; k < r->count; k++) {
		const metrics_series *src = &r->at[k];
		if (src->shard != i)
			continue;
		metrics_series *d = series_find(to, from, i, src->listener,
						src->name);
		if (!d)
			return -ENOMEM;
		series_origin(d, src->origin);
		const uint64_t *const values[2] = { src->values, NULL };
		series_merge(d, c->v->app, scope, values, MERGE_COUNTERS, 0);
	}
	return 0;
}

static int add_retired(metrics_scrape *c, const metrics_table *r, uint32_t i)
{
	metrics_live *lv = &c->live[i];

	if (i < r->shard_count) {
		const uint64_t *v = r->shards[i].values;
		const uint64_t *const values[2] = { v, v + METRICS_APP_BASE };
		series_merge(&c->t.shards[i], c->v->app, METRICS_SHARD, values,
			     MERGE_COUNTERS, 0);
	}
	int err = add_retired_list(c, &c->t.listeners, lv->l_from,
				   &r->listeners, METRICS_LISTENER, i);
	if (!err)
		err = add_retired_list(c, &c->t.upstreams, lv->u_from,
				       &r->upstreams, METRICS_UPSTREAM, i);
	if (!err)
		err = add_retired_list(c, &c->t.names, lv->n_from,
				       &r->names, METRICS_NAME, i);
	return err;
}

static int add_live_slots(metrics_scrape *c, shard_metrics *m, uint32_t i)
{
	shard_slot snap;
	metrics_live *lv = &c->live[i];

	for (uint32_t k = 0; k < m->slot_count; k++) {
		const shard_slot *s = &m->slots[k];
		shard_state state = shard_slot_get_state(s);
		if (!state_live(state) || load32(&s->index) != i)
			continue;
		snapshot(s, state, state != SHARD_STATE_STARTING, &snap);
		if (snap.index != i)
			continue; /* reclaimed between the two loads */
		live_add_proc(c, lv, &snap);
		live_add_shard(c, lv, &snap);
		int err = live_add_app(c, lv, &snap);
		if (err)
			return err;
	}
	return 0;
}

static int cmp_series(const void *a, const void *b)
{
	const metrics_series *x = a, *y = b;
	int d = strcmp(x->listener, y->listener);
	return d ? d : strcmp(x->name, y->name);
}

static void sort_range(metrics_series_list *l, size_t from, size_t to)
{
	if (to > from)
		qsort(l->at + from, to - from, sizeof(metrics_series),
		      cmp_series);
}

/* Sorted so that a scrape's series do not change order as slots move. */
static void sort_index(metrics_scrape *c, metrics_live *lv)
{
	lv->l_to = c->t.listeners.count;
	lv->u_to = c->t.upstreams.count;
	lv->n_to = c->t.names.count;
	lv->p_to = c->proc_count;
	sort_range(&c->t.listeners, lv->l_from, lv->l_to);
	sort_range(&c->t.upstreams, lv->u_from, lv->u_to);
	sort_range(&c->t.names, lv->n_from, lv->n_to);
}

static int collect_index(metrics_scrape *c, shard_metrics *m, uint32_t i)
{
	metrics_live *lv = &c->live[i];

	lv->l_from = c->t.listeners.count;
	lv->u_from = c->t.upstreams.count;
	lv->n_from = c->t.names.count;
	lv->p_from = c->proc_count;
	int err = add_retired(c, &m->retired, i);
	if (!err)
		err = add_live_slots(c, m, i);
	if (!err)
		sort_index(c, lv);
	return err;
}

int metrics_collect(metrics_scrape *c, shard_metrics *m, const metrics_view *v)
{
	char why[8];

	memset(c, 0, sizeof(*c));
	c->v = v;
	if (shard_metrics_check(v->app, why, sizeof(why)) < 0)
		return -EINVAL;
	if (v->shards == 0)
		return 0;
	c->live = calloc(v->shards, sizeof(*c->live));
	c->procs = calloc(m->slot_count ? m->slot_count : 1, sizeof(*c->procs));
	if (!c->live || !c->procs || !table_shard(&c->t, v->shards - 1))
		return -ENOMEM;
	for (uint32_t i = 0; i < v->shards; i++) {
		int err = collect_index(c, m, i);
		if (err)
			return err;
	}
	return 0;
}

void metrics_supervisor_values(const metrics_scrape *c,
			       uint64_t out[METRICS_SUP_COUNT])
{
	const metrics_view *v = c->v;

	out[METRICS_SUP_SHARDS] = v->shards;
	out[METRICS_SUP_RETIRING] = c->retiring;
	out[METRICS_SUP_RESTARTS] = v->restarts;
	out[METRICS_SUP_RELOADS] = v->reloads;
	out[METRICS_SUP_STARTED] = v->started_unix_ns > 0 ?
				   (uint64_t)v->started_unix_ns : 0;
}
