/* The shared slot mapping, retired totals, and the two renderings
 * (see shard/metrics.h for the model and the output shapes). */
#include "shard/metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define NS_PER_S 1000000000u

/* --- the mapping ----------------------------------------------------------- */

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
	free(t->listeners);
	free(t->upstreams);
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

/* --- reading a slot ---------------------------------------------------------- */

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

static void snapshot_runtime(const shard_slot *s, shard_slot *d)
{
	d->index = load32(&s->index);
	d->generation = load32(&s->generation);
	d->pid = __atomic_load_n(&s->pid, __ATOMIC_RELAXED);
	copy_name(d->poller, s->poller, sizeof(d->poller));
	d->sched_rounds = shard_slot_load(&s->sched_rounds);
	d->sched_switches = shard_slot_load(&s->sched_switches);
	d->sched_runq_len = shard_slot_load(&s->sched_runq_len);
	d->sched_live = shard_slot_load(&s->sched_live);
	d->poll_waits = shard_slot_load(&s->poll_waits);
	d->poll_events = shard_slot_load(&s->poll_events);
	d->poll_syscalls = shard_slot_load(&s->poll_syscalls);
	d->poll_polls = shard_slot_load(&s->poll_polls);
	d->poll_submits = shard_slot_load(&s->poll_submits);
	d->cpu_user_ns = shard_slot_load(&s->cpu_user_ns);
	d->cpu_system_ns = shard_slot_load(&s->cpu_system_ns);
	d->rss_bytes = shard_slot_load(&s->rss_bytes);
	d->log_lines_dropped = shard_slot_load(&s->log_lines_dropped);
}

static void snapshot_listener(const shard_listener_counters *s,
			      shard_listener_counters *d)
{
	copy_name(d->name, s->name, sizeof(d->name));
	d->accepted = shard_slot_load(&s->accepted);
	d->active = shard_slot_load(&s->active);
	d->accept_errors = shard_slot_load(&s->accept_errors);
	for (int k = 0; k < 2; k++) {
		d->frames[k] = shard_slot_load(&s->frames[k]);
		d->bytes[k] = shard_slot_load(&s->bytes[k]);
	}
	for (int j = 0; j < SHARD_MAX_REASONS; j++)
		d->closed[j] = shard_slot_load(&s->closed[j]);
}

static void snapshot_upstream(const shard_upstream_counters *s,
			      shard_upstream_counters *d)
{
	copy_name(d->name, s->name, sizeof(d->name));
	d->listener = load32(&s->listener);
	d->up = load32(&s->up);
	d->connects = shard_slot_load(&s->connects);
	d->connect_failures = shard_slot_load(&s->connect_failures);
	d->ejections = shard_slot_load(&s->ejections);
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
	snapshot_runtime(s, d);
	d->listener_count = 0;
	d->upstream_count = 0;
	if (!with_app)
		return;
	d->listener_count = min32(load32(&s->listener_count),
				  SHARD_MAX_LISTENERS);
	d->upstream_count = min32(load32(&s->upstream_count),
				  SHARD_MAX_UPSTREAMS);
	for (uint32_t k = 0; k < d->listener_count; k++)
		snapshot_listener(&s->listeners[k], &d->listeners[k]);
	for (uint32_t k = 0; k < d->upstream_count; k++)
		snapshot_upstream(&s->upstreams[k], &d->upstreams[k]);
}

/* The name of the listener an upstream belongs to ("" if out of range). */
static const char *upstream_listener(const shard_slot *snap,
				     const shard_upstream_counters *u)
{
	return u->listener < snap->listener_count ?
	       snap->listeners[u->listener].name : "";
}

/* --- tables of series ---------------------------------------------------------- */

static size_t next_cap(size_t cap)
{
	return cap ? cap * 2 : 16;
}

/* The totals of `index`, growing the array; NULL on ENOMEM. */
static metrics_shard_totals *table_shard(metrics_table *t, uint32_t index)
{
	if (index < t->shard_count)
		return &t->shards[index];
	size_t n = (size_t)index + 1;
	metrics_shard_totals *p = realloc(t->shards, n * sizeof(*p));
	if (!p)
		return NULL;
	memset(p + t->shard_count, 0, (n - t->shard_count) * sizeof(*p));
	t->shards = p;
	t->shard_count = (uint32_t)n;
	return &p[index];
}

/* Find (shard, name) among listeners[from..], or append it zeroed. The
 * render builds one index at a time, so `from` keeps searches short. */
static metrics_listener_totals *table_listener(metrics_table *t, size_t from,
					       uint32_t shard, const char *name)
{
	for (size_t i = from; i < t->listener_count; i++) {
		metrics_listener_totals *l = &t->listeners[i];
		if (l->shard == shard && strcmp(l->c.name, name) == 0)
			return l;
	}
	if (t->listener_count == t->listener_cap) {
		size_t cap = next_cap(t->listener_cap);
		metrics_listener_totals *p =
			realloc(t->listeners, cap * sizeof(*p));
		if (!p)
			return NULL;
		t->listeners = p;
		t->listener_cap = cap;
	}
	metrics_listener_totals *l = &t->listeners[t->listener_count++];
	memset(l, 0, sizeof(*l));
	l->shard = shard;
	shard_slot_name(l->c.name, name);
	return l;
}

static metrics_upstream_totals *table_upstream(metrics_table *t, size_t from,
					       uint32_t shard,
					       const char *listener,
					       const char *name)
{
	for (size_t i = from; i < t->upstream_count; i++) {
		metrics_upstream_totals *u = &t->upstreams[i];
		if (u->shard == shard && strcmp(u->listener, listener) == 0 &&
		    strcmp(u->c.name, name) == 0)
			return u;
	}
	if (t->upstream_count == t->upstream_cap) {
		size_t cap = next_cap(t->upstream_cap);
		metrics_upstream_totals *p =
			realloc(t->upstreams, cap * sizeof(*p));
		if (!p)
			return NULL;
		t->upstreams = p;
		t->upstream_cap = cap;
	}
	metrics_upstream_totals *u = &t->upstreams[t->upstream_count++];
	memset(u, 0, sizeof(*u));
	u->shard = shard;
	shard_slot_name(u->listener, listener);
	shard_slot_name(u->c.name, name);
	return u;
}

static void shard_add(metrics_shard_totals *d, const metrics_shard_totals *s)
{
	d->sched_rounds += s->sched_rounds;
	d->sched_switches += s->sched_switches;
	d->poll_waits += s->poll_waits;
	d->poll_events += s->poll_events;
	d->poll_syscalls += s->poll_syscalls;
	d->poll_polls += s->poll_polls;
	d->poll_submits += s->poll_submits;
	d->cpu_user_ns += s->cpu_user_ns;
	d->cpu_system_ns += s->cpu_system_ns;
	d->log_lines_dropped += s->log_lines_dropped;
}

static metrics_shard_totals slot_totals(const shard_slot *snap)
{
	metrics_shard_totals t = {
		.sched_rounds = snap->sched_rounds,
		.sched_switches = snap->sched_switches,
		.poll_waits = snap->poll_waits,
		.poll_events = snap->poll_events,
		.poll_syscalls = snap->poll_syscalls,
		.poll_polls = snap->poll_polls,
		.poll_submits = snap->poll_submits,
		.cpu_user_ns = snap->cpu_user_ns,
		.cpu_system_ns = snap->cpu_system_ns,
		.log_lines_dropped = snap->log_lines_dropped,
	};
	return t;
}

/* Counters always; the `active` gauge only from a live slot. */
static void listener_add(shard_listener_counters *d,
			 const shard_listener_counters *s, bool gauges)
{
	d->accepted += s->accepted;
	d->accept_errors += s->accept_errors;
	for (int k = 0; k < 2; k++) {
		d->frames[k] += s->frames[k];
		d->bytes[k] += s->bytes[k];
	}
	for (int j = 0; j < SHARD_MAX_REASONS; j++)
		d->closed[j] += s->closed[j];
	if (gauges)
		d->active += s->active;
}

static void upstream_add(shard_upstream_counters *d,
			 const shard_upstream_counters *s)
{
	d->connects += s->connects;
	d->connect_failures += s->connect_failures;
	d->ejections += s->ejections;
}

/* --- releasing a slot ------------------------------------------------------------ */

static void retire(metrics_table *t, const shard_slot *snap)
{
	metrics_shard_totals *st = table_shard(t, snap->index);
	if (st) {
		metrics_shard_totals add = slot_totals(snap);
		shard_add(st, &add);
	}
	for (uint32_t k = 0; k < snap->listener_count; k++) {
		const shard_listener_counters *src = &snap->listeners[k];
		metrics_listener_totals *l =
			table_listener(t, 0, snap->index, src->name);
		if (l)
			listener_add(&l->c, src, false);
	}
	for (uint32_t k = 0; k < snap->upstream_count; k++) {
		const shard_upstream_counters *src = &snap->upstreams[k];
		metrics_upstream_totals *u = table_upstream(t, 0, snap->index,
			upstream_listener(snap, src), src->name);
		if (u)
			upstream_add(&u->c, src);
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

/* --- collecting what a render shows ---------------------------------------------- */

typedef struct metrics_proc {
	uint32_t generation;
	int32_t pid;
	shard_state state;
} metrics_proc;

/* Per shard index: the gauges of its live slots and where its series are. */
typedef struct metrics_live {
	uint64_t runq_len;
	uint64_t coroutines;
	uint64_t rss_bytes;
	uint32_t ready;               /* READY slots */
	bool has_newest;
	metrics_proc newest;
	bool has_poller;
	uint32_t poller_generation;
	char poller[16];
	size_t l_from, l_to;          /* ranges in the render's table */
	size_t u_from, u_to;
	size_t p_from, p_to;          /* range in the render's procs */
} metrics_live;

typedef struct render_ctx {
	const metrics_view *v;
	metrics_table t;              /* retired + live, grouped by index */
	metrics_live *live;           /* [v->shards] */
	metrics_proc *procs;          /* live slots, grouped by index */
	size_t proc_count;
	uint32_t retiring;            /* live slots RETIRING or DRAINING */
} render_ctx;

static void ctx_free(render_ctx *c)
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

static void live_add_proc(render_ctx *c, metrics_live *lv,
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

static void live_add_runtime(render_ctx *c, metrics_live *lv,
			     const shard_slot *snap)
{
	metrics_shard_totals add = slot_totals(snap);
	shard_add(&c->t.shards[snap->index], &add);
	lv->runq_len += snap->sched_runq_len;
	lv->coroutines += snap->sched_live;
	lv->rss_bytes += snap->rss_bytes;
	/* Before its first publish a slot has no poller name yet: keep the
	 * older process's rather than show none. */
	if (snap->poller[0] &&
	    (!lv->has_poller || snap->generation > lv->poller_generation)) {
		memcpy(lv->poller, snap->poller, sizeof(lv->poller));
		lv->poller_generation = snap->generation;
		lv->has_poller = true;
	}
}

static int live_add_app(render_ctx *c, const metrics_live *lv,
			const shard_slot *snap)
{
	for (uint32_t k = 0; k < snap->listener_count; k++) {
		const shard_listener_counters *src = &snap->listeners[k];
		metrics_listener_totals *l = table_listener(&c->t, lv->l_from,
			snap->index, src->name);
		if (!l)
			return -ENOMEM;
		listener_add(&l->c, src, true);
	}
	for (uint32_t k = 0; k < snap->upstream_count; k++) {
		const shard_upstream_counters *src = &snap->upstreams[k];
		metrics_upstream_totals *u = table_upstream(&c->t, lv->u_from,
			snap->index, upstream_listener(snap, src), src->name);
		if (!u)
			return -ENOMEM;
		upstream_add(&u->c, src);
		if (!u->has_up || snap->generation > u->up_generation) {
			u->c.up = src->up;
			u->up_generation = snap->generation;
			u->has_up = true;
		}
	}
	return 0;
}

/* The retired series of index i start its ranges (no gauges). */
static int add_retired(render_ctx *c, const metrics_table *r, uint32_t i)
{
	if (i < r->shard_count)
		shard_add(&c->t.shards[i], &r->shards[i]);
	for (size_t k = 0; k < r->listener_count; k++) {
		const metrics_listener_totals *src = &r->listeners[k];
		if (src->shard != i)
			continue;
		metrics_listener_totals *l = table_listener(&c->t,
			c->live[i].l_from, i, src->c.name);
		if (!l)
			return -ENOMEM;
		listener_add(&l->c, &src->c, false);
	}
	for (size_t k = 0; k < r->upstream_count; k++) {
		const metrics_upstream_totals *src = &r->upstreams[k];
		if (src->shard != i)
			continue;
		metrics_upstream_totals *u = table_upstream(&c->t,
			c->live[i].u_from, i, src->listener, src->c.name);
		if (!u)
			return -ENOMEM;
		upstream_add(&u->c, &src->c);
	}
	return 0;
}

static int add_live_slots(render_ctx *c, shard_metrics *m, uint32_t i)
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
		live_add_runtime(c, lv, &snap);
		int err = live_add_app(c, lv, &snap);
		if (err)
			return err;
	}
	return 0;
}

static int cmp_listener(const void *a, const void *b)
{
	const metrics_listener_totals *x = a, *y = b;
	return strcmp(x->c.name, y->c.name);
}

static int cmp_upstream(const void *a, const void *b)
{
	const metrics_upstream_totals *x = a, *y = b;
	int d = strcmp(x->listener, y->listener);
	return d ? d : strcmp(x->c.name, y->c.name);
}

/* Sorted so that a scrape's series do not change order as slots move. */
static void sort_index(render_ctx *c, metrics_live *lv)
{
	lv->l_to = c->t.listener_count;
	lv->u_to = c->t.upstream_count;
	lv->p_to = c->proc_count;
	if (lv->l_to > lv->l_from)
		qsort(c->t.listeners + lv->l_from, lv->l_to - lv->l_from,
		      sizeof(*c->t.listeners), cmp_listener);
	if (lv->u_to > lv->u_from)
		qsort(c->t.upstreams + lv->u_from, lv->u_to - lv->u_from,
		      sizeof(*c->t.upstreams), cmp_upstream);
}

static int collect_index(render_ctx *c, shard_metrics *m, uint32_t i)
{
	metrics_live *lv = &c->live[i];

	lv->l_from = c->t.listener_count;
	lv->u_from = c->t.upstream_count;
	lv->p_from = c->proc_count;
	int err = add_retired(c, &m->retired, i);
	if (!err)
		err = add_live_slots(c, m, i);
	if (!err)
		sort_index(c, lv);
	return err;
}

static int collect(render_ctx *c, shard_metrics *m, const metrics_view *v)
{
	memset(c, 0, sizeof(*c));
	c->v = v;
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

/* --- output -------------------------------------------------------------------- */

/* Appends with a sticky error, so renderers check once at the end. */
typedef struct writer {
	strbuf *sb;
	int err;
	unsigned labels;              /* labels written in the open sample */
} writer;

static void w_put(writer *w, const void *data, size_t len)
{
	if (!w->err)
		w->err = strbuf_append(w->sb, data, len);
}

static void w_str(writer *w, const char *s)
{
	w_put(w, s, strlen(s));
}

__attribute__((format(printf, 2, 3)))
static void w_fmt(writer *w, const char *fmt, ...)
{
	va_list ap;

	if (w->err)
		return;
	va_start(ap, fmt);
	w->err = strbuf_vprintf(w->sb, fmt, ap);
	va_end(ap);
}

/* Seconds from nanoseconds, exact: no rounding through a double. */
static void w_seconds(writer *w, int64_t ns)
{
	uint64_t u = ns > 0 ? (uint64_t)ns : 0;
	w_fmt(w, "%" PRIu64 ".%09" PRIu64, u / NS_PER_S, u % NS_PER_S);
}

/* Length of the valid UTF-8 sequence at s, 0 if there is none. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xBF;
	size_t len;

	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF) {
		len = 2;
	} else if (c >= 0xE0 && c <= 0xEF) {
		len = 3;
		lo = c == 0xE0 ? 0xA0 : lo; /* overlong */
		hi = c == 0xED ? 0x9F : hi; /* surrogates */
	} else if (c >= 0xF0 && c <= 0xF4) {
		len = 4;
		lo = c == 0xF0 ? 0x90 : lo; /* overlong */
		hi = c == 0xF4 ? 0x8F : hi; /* above U+10FFFF */
	} else {
		return 0;
	}
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t k = 2; k < len; k++)
		if ((s[k] & 0xC0) != 0x80)
			return 0;
	return len;
}

/* Bytes at s that go out as they are. */
static size_t plain_run(const unsigned char *s, size_t n, bool json)
{
	size_t i = 0;

	while (i < n) {
		unsigned char c = s[i];
		if (c == '"' || c == '\\' || c == '\n' || (json && c < 0x20))
			break;
		size_t len = utf8_len(s + i, n - i);
		if (len == 0)
			break;
		i += len;
	}
	return i;
}

/*
 * A label value (Prometheus: only \\, \" and \n are escapes) or a JSON
 * string body. Names come from configuration and shared memory, so bytes
 * that are not UTF-8 become U+FFFD: both formats require valid UTF-8.
 */
static void w_escaped(writer *w, const char *text, bool json)
{
	const unsigned char *s = (const unsigned char *)text;
	size_t n = strlen(text), i = 0;

	while (i < n) {
		size_t run = plain_run(s + i, n - i, json);
		w_put(w, s + i, run);
		i += run;
		if (i == n)
			break;
		unsigned char c = s[i++];
		if (c == '"' || c == '\\')
			w_fmt(w, "\\%c", c);
		else if (c == '\n')
			w_str(w, "\\n");
		else if (c < 0x20)
			w_fmt(w, "\\u%04x", c);
		else
			w_str(w, "\xEF\xBF\xBD");
	}
}

static void w_json_str(writer *w, const char *s)
{
	w_str(w, "\"");
	w_escaped(w, s, true);
	w_str(w, "\"");
}

static const char *reason_name(const metrics_view *v, uint32_t j,
			       char buf[16])
{
	if (v->reason_names && v->reason_names[j])
		return v->reason_names[j];
	snprintf(buf, 16, "reason%u", j);
	return buf;
}

static uint32_t reason_count(const metrics_view *v)
{
	return min32(v->reason_count, SHARD_MAX_REASONS);
}

/* --- Prometheus ------------------------------------------------------------------- */

static void prom_family(writer *w, const char *name, const char *type,
			const char *help)
{
	w_fmt(w, "# HELP frameproxy_%s %s\n# TYPE frameproxy_%s %s\n",
	      name, help, name, type);
}

static void prom_begin(writer *w, const char *name)
{
	w_fmt(w, "frameproxy_%s", name);
	w->labels = 0;
}

static void prom_label(writer *w, const char *key, const char *value)
{
	w_fmt(w, "%s%s=\"", w->labels++ ? "," : "{", key);
	w_escaped(w, value, false);
	w_str(w, "\"");
}

static void prom_label_shard(writer *w, uint32_t shard)
{
	w_fmt(w, "%sshard=\"%u\"", w->labels++ ? "," : "{", shard);
}

static void prom_end_u64(writer *w, uint64_t value)
{
	w_fmt(w, "%s %" PRIu64 "\n", w->labels ? "}" : "", value);
}

static void prom_end_seconds(writer *w, int64_t ns)
{
	w_str(w, w->labels ? "} " : " ");
	w_seconds(w, ns);
	w_str(w, "\n");
}

static void prom_scalar(writer *w, const char *name, const char *type,
			const char *help, uint64_t value)
{
	prom_family(w, name, type, help);
	prom_begin(w, name);
	prom_end_u64(w, value);
}

static void prom_supervisor(writer *w, const render_ctx *c)
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

static void prom_shard_counters(writer *w, const render_ctx *c)
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

static void prom_shard_gauges(writer *w, const render_ctx *c)
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

static void prom_shard_cpu(writer *w, const render_ctx *c)
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

static void prom_shard_state(writer *w, const render_ctx *c)
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

static void prom_listener_begin(writer *w, const char *name,
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

static void prom_listener_fields(writer *w, const render_ctx *c)
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

static void prom_directions(writer *w, const render_ctx *c, bool bytes)
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

static void prom_closed(writer *w, const render_ctx *c)
{
	char buf[16];

	prom_family(w, "connections_closed_total", "counter",
		    "Client connections closed, by reason.");
	for (size_t k = 0; k < c->t.listener_count; k++) {
		const metrics_listener_totals *l = &c->t.listeners[k];
		for (uint32_t j = 0; j < reason_count(c->v); j++) {
			prom_listener_begin(w, "connections_closed_total", l);
			prom_label(w, "reason", reason_name(c->v, j, buf));
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

static void prom_upstream_begin(writer *w, const char *name,
				const metrics_upstream_totals *u)
{
	prom_begin(w, name);
	prom_label_shard(w, u->shard);
	prom_label(w, "listener", u->listener);
	prom_label(w, "upstream", u->c.name);
}

static void prom_upstreams(writer *w, const render_ctx *c)
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
	render_ctx c;
	int err = collect(&c, m, v);

	if (!err) {
		writer w = { .sb = out };
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
		err = w.err;
	}
	ctx_free(&c);
	return err;
}

/* --- JSON ------------------------------------------------------------------------ */

static int64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void json_procs(writer *w, const render_ctx *c, const metrics_live *lv)
{
	w_str(w, ",\"processes\":[");
	for (size_t k = lv->p_from; k < lv->p_to; k++) {
		const metrics_proc *p = &c->procs[k];
		w_fmt(w, "%s{\"pid\":%" PRId32 ",\"state\":\"%s\","
		      "\"generation\":%" PRIu32 "}", k > lv->p_from ? "," : "",
		      p->pid, metrics_state_name(p->state), p->generation);
	}
	w_str(w, "]");
}

static void json_closed(writer *w, const render_ctx *c,
			const shard_listener_counters *l)
{
	char buf[16];

	w_str(w, ",\"closed\":{");
	for (uint32_t j = 0; j < reason_count(c->v); j++) {
		w_str(w, j ? "," : "");
		w_json_str(w, reason_name(c->v, j, buf));
		w_fmt(w, ":%" PRIu64, l->closed[j]);
	}
	w_str(w, "}");
}

static void json_listeners(writer *w, const render_ctx *c,
			   const metrics_live *lv)
{
	w_str(w, ",\"listeners\":[");
	for (size_t k = lv->l_from; k < lv->l_to; k++) {
		const shard_listener_counters *l = &c->t.listeners[k].c;
		w_str(w, k > lv->l_from ? ",{\"name\":" : "{\"name\":");
		w_json_str(w, l->name);
		w_fmt(w, ",\"active\":%" PRIu64 ",\"accepted\":%" PRIu64
		      ",\"accept_errors\":%" PRIu64 ",\"frames_in\":%" PRIu64
		      ",\"frames_out\":%" PRIu64 ",\"bytes_in\":%" PRIu64
		      ",\"bytes_out\":%" PRIu64, l->active, l->accepted,
		      l->accept_errors, l->frames[0], l->frames[1],
		      l->bytes[0], l->bytes[1]);
		json_closed(w, c, l);
		w_str(w, "}");
	}
	w_str(w, "]");
}

static void json_upstreams(writer *w, const render_ctx *c,
			   const metrics_live *lv)
{
	w_str(w, ",\"upstreams\":[");
	for (size_t k = lv->u_from; k < lv->u_to; k++) {
		const metrics_upstream_totals *u = &c->t.upstreams[k];
		w_str(w, k > lv->u_from ? ",{\"listener\":" : "{\"listener\":");
		w_json_str(w, u->listener);
		w_str(w, ",\"name\":");
		w_json_str(w, u->c.name);
		w_fmt(w, ",\"up\":%d,\"connects\":%" PRIu64
		      ",\"connect_failures\":%" PRIu64 ",\"ejections\":%" PRIu64
		      "}", u->has_up && u->c.up, u->c.connects,
		      u->c.connect_failures, u->c.ejections);
	}
	w_str(w, "]");
}

/* The shard's totals: the sums over its listeners. */
static shard_listener_counters listener_sum(const render_ctx *c,
					    const metrics_live *lv)
{
	shard_listener_counters sum;

	memset(&sum, 0, sizeof(sum));
	for (size_t k = lv->l_from; k < lv->l_to; k++)
		listener_add(&sum, &c->t.listeners[k].c, true);
	return sum;
}

static void json_shard_identity(writer *w, const metrics_live *lv,
				uint32_t i)
{
	metrics_proc none = { 0, 0, SHARD_STATE_FREE };
	const metrics_proc *p = lv->has_newest ? &lv->newest : &none;

	w_fmt(w, "{\"shard\":%" PRIu32 ",\"pid\":%" PRId32 ",\"state\":\"%s\""
	      ",\"generation\":%" PRIu32 ",\"poller\":", i, p->pid,
	      lv->has_newest ? metrics_state_name(p->state) : "down",
	      p->generation);
	w_json_str(w, lv->has_poller ? lv->poller : "");
}

static void json_shard_counters(writer *w, const render_ctx *c,
				const metrics_live *lv, uint32_t i)
{
	const metrics_shard_totals *t = &c->t.shards[i];
	shard_listener_counters sum = listener_sum(c, lv);

	w_fmt(w, ",\"connections_active\":%" PRIu64 ",\"accepted\":%" PRIu64
	      ",\"accept_errors\":%" PRIu64 ",\"frames_in\":%" PRIu64
	      ",\"frames_out\":%" PRIu64 ",\"bytes_in\":%" PRIu64
	      ",\"bytes_out\":%" PRIu64, sum.active, sum.accepted,
	      sum.accept_errors, sum.frames[0], sum.frames[1], sum.bytes[0],
	      sum.bytes[1]);
	w_str(w, ",\"cpu_user_s\":");
	w_seconds(w, (int64_t)t->cpu_user_ns);
	w_str(w, ",\"cpu_system_s\":");
	w_seconds(w, (int64_t)t->cpu_system_ns);
	w_fmt(w, ",\"rss_bytes\":%" PRIu64 ",\"runq_length\":%" PRIu64
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

static void json_shard(writer *w, const render_ctx *c, uint32_t i)
{
	const metrics_live *lv = &c->live[i];

	json_shard_identity(w, lv, i);
	json_procs(w, c, lv);
	json_shard_counters(w, c, lv, i);
	json_listeners(w, c, lv);
	json_upstreams(w, c, lv);
	w_str(w, "}");
}

static void json_top(writer *w, const render_ctx *c)
{
	const metrics_view *v = c->v;
	int64_t now = v->now_unix_ns ? v->now_unix_ns : realtime_ns();

	w_fmt(w, "{\"pid\":%" PRId32 ",\"started_unix_s\":", v->pid);
	w_seconds(w, v->started_unix_ns);
	w_str(w, ",\"uptime_s\":");
	w_seconds(w, now - v->started_unix_ns);
	w_fmt(w, ",\"shards_configured\":%" PRIu32 ",\"reloads\":%" PRIu64
	      ",\"restarts\":%" PRIu64 ",\"retiring\":%" PRIu32,
	      v->shards, v->reloads, v->restarts, c->retiring);
}

int metrics_render_json(shard_metrics *m, const metrics_view *v, strbuf *out)
{
	render_ctx c;
	int err = collect(&c, m, v);

	if (!err) {
		writer w = { .sb = out };
		json_top(&w, &c);
		w_str(&w, ",\"shards\":[");
		for (uint32_t i = 0; i < v->shards; i++) {
			w_str(&w, i ? "," : "");
			json_shard(&w, &c, i);
		}
		w_str(&w, "]}");
		err = w.err;
	}
	ctx_free(&c);
	return err;
}
