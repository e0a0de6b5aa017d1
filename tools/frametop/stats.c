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
		err = read_shard(r, v, &s->shards[s->shard_count++]);
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
