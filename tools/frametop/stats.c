/*
 * stats — reading a /stats document into a stats_sample, and the rates
 * between two samples (see stats.h).
 */
#include "tools/frametop/stats.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/frametop/json.h"

/* Where a field is looked up, for the error message. */
typedef struct stats_reader {
	const json_doc *doc;
	const char *path;            /* "" or "shards[3]." */
	char *why;
	size_t why_len;
} stats_reader;

static int bad(stats_reader *r, const char *key, const char *what)
{
	/* "shards[2]." names an entry itself without its trailing dot. */
	int plen = (int)strlen(r->path);
	if (!*key && plen > 0 && r->path[plen - 1] == '.')
		plen--;
	snprintf(r->why, r->why_len, "field %.*s%s: %s", plen, r->path, key,
		 what);
	return -EBADMSG;
}

static int get_typed(stats_reader *r, const json_value *obj, const char *key,
		     json_type type, const json_value **out)
{
	*out = json_get(r->doc, obj, key);
	if (!*out)
		return bad(r, key, "missing");
	if ((*out)->type != type)
		return bad(r, key, "wrong type");
	return 0;
}

/* A non-negative integer: counters, gauges, pids. */
static int get_u64(stats_reader *r, const json_value *obj, const char *key,
		   uint64_t *out)
{
	const json_value *v;
	int err = get_typed(r, obj, key, JSON_NUMBER, &v);
	if (err < 0)
		return err;
	if (!v->is_u64)
		return bad(r, key, "not a non-negative integer");
	*out = v->u64;
	return 0;
}

static int get_pid(stats_reader *r, const json_value *obj, const char *key,
		   int64_t *out)
{
	uint64_t v;
	int err = get_u64(r, obj, key, &v);
	if (err == 0 && v > INT32_MAX)
		err = bad(r, key, "not a pid");
	*out = (int64_t)v;
	return err;
}

static int get_double(stats_reader *r, const json_value *obj, const char *key,
		      double *out)
{
	const json_value *v;
	int err = get_typed(r, obj, key, JSON_NUMBER, &v);
	if (err < 0)
		return err;
	if (v->num < 0)
		return bad(r, key, "negative");
	*out = v->num;
	return 0;
}

/*
 * A short name, truncated, with anything but printable ASCII replaced: it
 * goes straight to a terminal, and an endpoint must not be able to send
 * escape sequences there.
 */
static int get_text(stats_reader *r, const json_value *obj, const char *key,
		    char *out, size_t cap)
{
	const json_value *v;
	int err = get_typed(r, obj, key, JSON_STRING, &v);
	if (err < 0)
		return err;
	size_t n = v->str_len < cap - 1 ? v->str_len : cap - 1;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)v->str[i];
		out[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	out[n] = '\0';
	return 0;
}

/* A shard's unsigned fields, in the order they are checked. */
typedef struct u64_field {
	const char *key;
	size_t offset;          /* into stats_shard */
} u64_field;

static const u64_field shard_u64_fields[] = {
	{"connections_active", offsetof(stats_shard, active)},
	{"accepted", offsetof(stats_shard, accepted)},
	{"frames_in", offsetof(stats_shard, frames_in)},
	{"frames_out", offsetof(stats_shard, frames_out)},
	{"bytes_in", offsetof(stats_shard, bytes_in)},
	{"bytes_out", offsetof(stats_shard, bytes_out)},
	{"rss_bytes", offsetof(stats_shard, rss_bytes)},
	{"runq_length", offsetof(stats_shard, runq_length)},
};

static int read_counters(stats_reader *r, const json_value *o, stats_shard *s)
{
	size_t n = sizeof(shard_u64_fields) / sizeof(shard_u64_fields[0]);
	for (size_t i = 0; i < n; i++) {
		const u64_field *f = &shard_u64_fields[i];
		int err = get_u64(r, o, f->key,
				  (uint64_t *)((char *)s + f->offset));
		if (err)
			return err;
	}
	return 0;
}

/* --- upstreams: the rpc figures -------------------------------------------- */

/* An optional unsigned field: 0 and *present false when missing. */
static int get_u64_opt(stats_reader *r, const json_value *obj, const char *key,
		       uint64_t *out, bool *present)
{
	*out = 0;
	*present = json_get(r->doc, obj, key) != NULL;
	return *present ? get_u64(r, obj, key, out) : 0;
}

/* One [le, cumulative] pair of a histogram's buckets, k-th. */
static int read_bucket(stats_reader *r, const json_value *pair,
		       stats_histogram *h, uint32_t k)
{
	const json_value *le = json_first(r->doc, pair);
	const json_value *n = le ? json_next(r->doc, le) : NULL;

	if (pair->type != JSON_ARRAY || pair->count != 2 ||
	    le->type != JSON_NUMBER || n->type != JSON_NUMBER || !n->is_u64)
		return bad(r, "rpc_latency", "a bucket is not [le, count]");
	if (!(le->num >= 0) || (k > 0 && !(le->num > h->le[k - 1])))
		return bad(r, "rpc_latency", "bounds do not increase");
	if ((k > 0 && n->u64 < h->cumulative[k - 1]) || n->u64 > h->count)
		return bad(r, "rpc_latency", "counts are not cumulative");
	h->le[k] = le->num;
	h->cumulative[k] = n->u64;
	return 0;
}

static int read_histogram(stats_reader *r, const json_value *o,
			  stats_histogram *h)
{
	const json_value *obj = json_get(r->doc, o, "rpc_latency");
	const json_value *arr;

	if (!obj)
		return 0;
	if (obj->type != JSON_OBJECT)
		return bad(r, "rpc_latency", "wrong type");
	int err = get_u64(r, obj, "count", &h->count);
	if (!err)
		err = get_double(r, obj, "sum", &h->sum);
	if (!err)
		err = get_typed(r, obj, "buckets", JSON_ARRAY, &arr);
	if (err)
		return err;
	if (arr->count > STATS_MAX_BUCKETS)
		return bad(r, "rpc_latency", "too many buckets");
	const json_value *b = json_first(r->doc, arr);
	for (uint32_t k = 0; b && !err; b = json_next(r->doc, b), k++)
		err = read_bucket(r, b, h, k);
	h->bucket_count = arr->count;
	h->present = err == 0;
	return err;
}

static int read_upstream(stats_reader *r, const json_value *o,
			 stats_upstream *u)
{
	bool present;

	if (o->type != JSON_OBJECT)
		return bad(r, "", "not an object");
	int err = get_text(r, o, "listener", u->listener, sizeof(u->listener));
	if (!err)
		err = get_text(r, o, "name", u->name, sizeof(u->name));
	if (!err)
		err = get_u64_opt(r, o, "rpc_sent", &u->rpc_sent, &u->has_sent);
	if (!err)
		err = get_u64_opt(r, o, "rpc_inflight", &u->rpc_inflight,
				  &present);
	if (!err)
		err = get_u64_opt(r, o, "rpc_pool_open", &u->rpc_pool_open,
				  &present);
	if (!err)
		err = read_histogram(r, o, &u->latency);
	return err;
}

/* A shard's "upstreams", when it has them, appended to s->upstreams. */
static int read_upstreams(stats_reader *r, const json_value *o, int64_t shard,
			  stats_sample *s)
{
	const json_value *arr = json_get(r->doc, o, "upstreams");
	if (!arr)
		return 0;
	if (arr->type != JSON_ARRAY)
		return bad(r, "upstreams", "wrong type");
	if (arr->count == 0)
		return 0;
	stats_upstream *grown = realloc(s->upstreams,
		(s->upstream_count + arr->count) * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	s->upstreams = grown;

	const char *outer = r->path;
	char path[64];
	int err = 0;
	size_t k = 0;
	for (const json_value *v = json_first(r->doc, arr); v && !err;
	     v = json_next(r->doc, v), k++) {
		snprintf(path, sizeof(path), "%supstreams[%zu].", outer, k);
		r->path = path;
		stats_upstream *u = &s->upstreams[s->upstream_count++];
		memset(u, 0, sizeof(*u));
		u->shard = shard;
		err = read_upstream(r, v, u);
	}
	r->path = outer;
	return err;
}

static int read_shard(stats_reader *r, const json_value *o, stats_shard *s)
{
	if (o->type != JSON_OBJECT)
		return bad(r, "", "not an object");
	uint64_t index;
	double user = 0, sys = 0;
	int err = get_u64(r, o, "shard", &index);
	if (!err)
		err = get_pid(r, o, "pid", &s->pid);
	if (!err)
		err = get_text(r, o, "state", s->state, sizeof(s->state));
	if (!err)
		err = get_text(r, o, "poller", s->poller, sizeof(s->poller));
	if (!err)
		err = get_u64(r, o, "generation", &s->generation);
	if (!err)
		err = read_counters(r, o, s);
	if (!err)
		err = get_double(r, o, "cpu_user_s", &user);
	if (!err)
		err = get_double(r, o, "cpu_system_s", &sys);
	s->index = (int64_t)(index > INT32_MAX ? INT32_MAX : index);
	s->cpu_s = user + sys;
	return err;
}

static int read_shards(stats_reader *r, const json_value *root, stats_sample *s)
{
	const json_value *arr;
	int err = get_typed(r, root, "shards", JSON_ARRAY, &arr);
	if (err < 0)
		return err;
	s->shards = calloc(arr->count ? arr->count : 1, sizeof(*s->shards));
	if (!s->shards)
		return -ENOMEM;
	char path[32];
	const json_value *v = json_first(r->doc, arr);
	for (; v && err == 0; v = json_next(r->doc, v)) {
		snprintf(path, sizeof(path), "shards[%zu].", s->shard_count);
		r->path = path;
		stats_shard *sh = &s->shards[s->shard_count++];
		err = read_shard(r, v, sh);
		if (!err)
			err = read_upstreams(r, v, sh->index, s);
	}
	r->path = "";
	return err;
}

static int read_sample(stats_reader *r, const json_value *root, stats_sample *s)
{
	if (!root || root->type != JSON_OBJECT)
		return bad(r, "(root)", "not an object");
	int err = get_pid(r, root, "pid", &s->pid);
	if (!err)
		err = get_double(r, root, "uptime_s", &s->uptime_s);
	if (!err)
		err = get_u64(r, root, "shards_configured",
			      &s->shards_configured);
	if (!err)
		err = get_u64(r, root, "reloads", &s->reloads);
	if (!err)
		err = get_u64(r, root, "restarts", &s->restarts);
	if (!err)
		err = get_u64(r, root, "retiring", &s->retiring);
	if (!err)
		err = read_shards(r, root, s);
	return err;
}

int stats_sample_parse(const char *text, size_t len, stats_sample *out, char *why,
		       size_t why_len)
{
	memset(out, 0, sizeof(*out));
	json_doc doc;
	int err = json_parse(&doc, text, len);
	if (err == -ENOMEM)
		return err;
	if (err < 0) {
		snprintf(why, why_len, "invalid JSON at byte %zu: %s",
			 doc.error_at, doc.error ? doc.error : "?");
		return -EBADMSG;
	}
	stats_reader r = {&doc, "", why, why_len};
	err = read_sample(&r, json_root(&doc), out);
	json_free(&doc);
	if (err < 0)
		stats_sample_free(out);
	return err;
}

void stats_sample_free(stats_sample *s)
{
	free(s->shards);
	free(s->upstreams);
	memset(s, 0, sizeof(*s));
}

/* --- rates ---------------------------------------------------------------- */

double stats_rate(uint64_t prev, uint64_t cur, double seconds)
{
	if (cur < prev || !(seconds > 0))
		return 0;
	return (double)(cur - prev) / seconds;
}

double stats_cpu_pct(double prev_s, double cur_s, double seconds)
{
	if (!(cur_s >= prev_s) || !(seconds > 0))
		return 0;
	return (cur_s - prev_s) / seconds * 100.0;
}

const stats_shard *stats_find_shard(const stats_sample *s, int64_t index)
{
	for (size_t i = 0; s && i < s->shard_count; i++)
		if (s->shards[i].index == index)
			return &s->shards[i];
	return NULL;
}

stats_rates stats_shard_rates(const stats_sample *prev, const stats_sample *cur,
			      const stats_shard *shard)
{
	stats_rates r = {0};
	const stats_shard *p = stats_find_shard(prev, shard->index);
	if (!p || !cur)
		return r;
	double secs = (double)(cur->mono_ns - prev->mono_ns) / 1e9;
	r.valid = secs > 0;
	r.accepted = stats_rate(p->accepted, shard->accepted, secs);
	r.frames_in = stats_rate(p->frames_in, shard->frames_in, secs);
	r.frames_out = stats_rate(p->frames_out, shard->frames_out, secs);
	/* Each direction on its own, so one going backwards zeroes only it. */
	r.bytes = stats_rate(p->bytes_in, shard->bytes_in, secs) +
		  stats_rate(p->bytes_out, shard->bytes_out, secs);
	r.cpu_pct = stats_cpu_pct(p->cpu_s, shard->cpu_s, secs);
	return r;
}

void stats_imbalance(const stats_rates *rates, size_t n, long *busiest,
		     long *idlest)
{
	long hi = -1, lo = -1;
	size_t valid = 0;
	for (size_t i = 0; i < n; i++) {
		if (!rates[i].valid)
			continue;
		valid++;
		double f = rates[i].frames_in + rates[i].frames_out;
		if (hi < 0 || f > rates[hi].frames_in + rates[hi].frames_out)
			hi = (long)i;
		if (lo < 0 || f < rates[lo].frames_in + rates[lo].frames_out)
			lo = (long)i;
	}
	*busiest = *idlest = -1;
	if (valid < 2)
		return;
	double max = rates[hi].frames_in + rates[hi].frames_out;
	double min = rates[lo].frames_in + rates[lo].frames_out;
	if (max >= STATS_IMBALANCE_MIN && max > STATS_IMBALANCE_RATIO * min) {
		*busiest = hi;
		*idlest = lo;
	}
}

/* --- the rpc view ---------------------------------------------------------- */

stats_quantile_kind stats_quantile(const double *le, const uint64_t *cumulative,
				   size_t n, uint64_t count, double q,
				   double *out)
{
	*out = 0;
	if (count == 0 || !(q > 0))
		return STATS_QUANTILE_NONE;
	double rank = q * (double)count;
	for (size_t k = 0; k < n; k++) {
		if ((double)cumulative[k] < rank)
			continue;
		double lower = k ? le[k - 1] : 0;
		uint64_t below = k ? cumulative[k - 1] : 0;
		uint64_t in = cumulative[k] - below;
		/* in > 0: rank > below, or an earlier bucket had it. */
		*out = lower + (le[k] - lower) * (rank - (double)below) /
			       (double)(in ? in : 1);
		return STATS_QUANTILE_VALUE;
	}
	if (n == 0)
		return STATS_QUANTILE_NONE;
	*out = le[n - 1];
	return STATS_QUANTILE_ABOVE;
}

static bool upstream_does_rpc(const stats_upstream *u)
{
	return u->rpc_sent || u->rpc_inflight || u->rpc_pool_open ||
	       (u->latency.present && u->latency.count);
}

static const stats_upstream *find_upstream(const stats_sample *s,
					   const stats_upstream *like)
{
	for (size_t i = 0; s && i < s->upstream_count; i++) {
		const stats_upstream *u = &s->upstreams[i];
		if (u->shard == like->shard &&
		    strcmp(u->listener, like->listener) == 0 &&
		    strcmp(u->name, like->name) == 0)
			return u;
	}
	return NULL;
}

/* A row's latencies over the interval: per-bucket deltas summed over its
 * shards' entries; `broken` once one went backwards or has other bounds. */
typedef struct rpc_delta {
	bool started, broken;
	uint64_t count;
	uint32_t n;
	double le[STATS_MAX_BUCKETS];
	uint64_t cumulative[STATS_MAX_BUCKETS];
} rpc_delta;

static bool same_bounds(const stats_histogram *a, uint32_t n, const double *le)
{
	return a->bucket_count == n &&
	       memcmp(a->le, le, n * sizeof(le[0])) == 0;
}

/* An entry new since prev adds nothing: what it counted before the
 * interval is unknown. */
static void delta_add(rpc_delta *d, const stats_histogram *prev,
		      const stats_histogram *cur)
{
	if (d->broken || !cur->present || !prev || !prev->present)
		return;
	if (!same_bounds(prev, cur->bucket_count, cur->le) ||
	    (d->started && !same_bounds(cur, d->n, d->le)) ||
	    cur->count < prev->count) {
		d->broken = true;
		return;
	}
	for (uint32_t k = 0; k < cur->bucket_count; k++) {
		if (cur->cumulative[k] < prev->cumulative[k]) {
			d->broken = true;
			return;
		}
	}
	if (!d->started) {
		d->started = true;
		d->n = cur->bucket_count;
		memcpy(d->le, cur->le, sizeof(d->le));
	}
	for (uint32_t k = 0; k < d->n; k++)
		d->cumulative[k] += cur->cumulative[k] - prev->cumulative[k];
	d->count += cur->count - prev->count;
}

static stats_rpc_row *find_row(stats_rpc_row *rows, size_t n,
			       const stats_upstream *u)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(rows[i].listener, u->listener) == 0 &&
		    strcmp(rows[i].name, u->name) == 0)
			return &rows[i];
	return NULL;
}

/* A row for u's server, appended the first time (rows has room for one
 * per upstream). */
static void add_row(stats_rpc_row *rows, size_t *n, const stats_upstream *u)
{
	if (find_row(rows, *n, u))
		return;
	stats_rpc_row *r = &rows[(*n)++];
	memset(r, 0, sizeof(*r));
	memcpy(r->listener, u->listener, sizeof(r->listener));
	memcpy(r->name, u->name, sizeof(r->name));
}

static int cmp_rows(const void *a, const void *b)
{
	const stats_rpc_row *x = a, *y = b;
	int d = strcmp(x->listener, y->listener);
	return d ? d : strcmp(x->name, y->name);
}

int stats_rpc_rows(const stats_sample *prev, const stats_sample *cur,
		   stats_rpc_row **rows, size_t *count)
{
	size_t n = 0, total = cur->upstream_count;

	*rows = NULL;
	*count = 0;
	stats_rpc_row *out = calloc(total ? total : 1, sizeof(*out));
	rpc_delta *deltas = calloc(total ? total : 1, sizeof(*deltas));
	if (!out || !deltas) {
		free(out);
		free(deltas);
		return -ENOMEM;
	}
	double secs = prev ? (double)(cur->mono_ns - prev->mono_ns) / 1e9 : 0;
	/* Rows of the servers that do rpc on some shard, then every shard's
	 * entry of those servers added in. */
	for (size_t i = 0; i < total; i++)
		if (upstream_does_rpc(&cur->upstreams[i]))
			add_row(out, &n, &cur->upstreams[i]);
	for (size_t i = 0; i < total; i++) {
		const stats_upstream *u = &cur->upstreams[i];
		stats_rpc_row *r = find_row(out, n, u);
		if (!r)
			continue;
		const stats_upstream *p = find_upstream(prev, u);
		rpc_delta *d = &deltas[r - out];
		r->inflight += u->rpc_inflight;
		r->pool_open += u->rpc_pool_open;
		r->has_sent = r->has_sent || u->has_sent;
		r->rates = secs > 0;
		if (p)
			r->requests += stats_rate(p->rpc_sent, u->rpc_sent, secs);
		delta_add(d, p ? &p->latency : NULL, &u->latency);
	}
	for (size_t i = 0; i < n; i++) {
		const rpc_delta *d = &deltas[i];
		out[i].p99 = STATS_QUANTILE_NONE;
		if (out[i].rates && d->started && !d->broken)
			out[i].p99 = stats_quantile(d->le, d->cumulative, d->n,
						    d->count, STATS_RPC_QUANTILE,
						    &out[i].p99_s);
	}
	free(deltas);
	qsort(out, n, sizeof(*out), cmp_rows);
	if (n == 0) {
		free(out);
		out = NULL;
	}
	*rows = out;
	*count = n;
	return 0;
}
