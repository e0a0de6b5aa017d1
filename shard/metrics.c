/* The shared slot mapping, retired totals, and what a scrape shows (see
 * shard/metrics.h for the model); metrics_prom.c and metrics_json.c render
 * it. */
#include "shard/metrics.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

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

void metrics_listener_add(shard_listener_counters *d,
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
			metrics_listener_add(&l->c, src, false);
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

static void live_add_runtime(metrics_scrape *c, metrics_live *lv,
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

static int live_add_app(metrics_scrape *c, const metrics_live *lv,
			const shard_slot *snap)
{
	for (uint32_t k = 0; k < snap->listener_count; k++) {
		const shard_listener_counters *src = &snap->listeners[k];
		metrics_listener_totals *l = table_listener(&c->t, lv->l_from,
			snap->index, src->name);
		if (!l)
			return -ENOMEM;
		metrics_listener_add(&l->c, src, true);
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
static int add_retired(metrics_scrape *c, const metrics_table *r, uint32_t i)
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
		metrics_listener_add(&l->c, &src->c, false);
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
static void sort_index(metrics_scrape *c, metrics_live *lv)
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

static int collect_index(metrics_scrape *c, shard_metrics *m, uint32_t i)
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

int metrics_collect(metrics_scrape *c, shard_metrics *m, const metrics_view *v)
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

const char *metrics_reason_name(const metrics_view *v, uint32_t j,
				char buf[16])
{
	if (v->reason_names && v->reason_names[j])
		return v->reason_names[j];
	snprintf(buf, 16, "reason%u", j);
	return buf;
}

uint32_t metrics_reason_count(const metrics_view *v)
{
	return min32(v->reason_count, SHARD_MAX_REASONS);
}
