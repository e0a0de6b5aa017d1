/* GET /servers, POST /servers/L/S (see shard/servers.h). */
#include "shard/servers.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One server as the shards of the generation report it. */
typedef struct server_sum {
	char listener[SHARD_NAME_MAX];
	char server[SHARD_NAME_MAX];
	char origin[SHARD_NAME_MAX];
	uint32_t shards, shards_up;
	uint64_t weight, active, inflight;
} server_sum;

typedef struct server_list {
	server_sum *at;
	size_t count, cap;
} server_list;

/* Where the figures are in an upstream row's values, -1 when absent. */
typedef struct figure_at {
	int up, weight, active, inflight;
} figure_at;

static int family_at(const servers_view *v, const char *json)
{
	metrics_family fam[METRICS_MAX_FAMILIES];
	size_t n = metrics_families(v->app, METRICS_UPSTREAM, METRICS_TABLE_ORDER,
				    fam);

	for (size_t f = 0; f < n; f++)
		if (fam[f].metric->json && strcmp(fam[f].metric->json, json) == 0)
			return (int)fam[f].at;
	return -1;
}

static uint64_t figure(const shard_slot_upstream *u, int at)
{
	return at < 0 ? 0 : shard_slot_load(&u->values[at]);
}

static server_sum *list_find(server_list *l, const char *listener,
			     const char *server, bool add)
{
	for (size_t k = 0; k < l->count; k++)
		if (strcmp(l->at[k].listener, listener) == 0 &&
		    strcmp(l->at[k].server, server) == 0)
			return &l->at[k];
	if (!add)
		return NULL;
	if (l->count == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 16;
		server_sum *grown = realloc(l->at, cap * sizeof(*grown));
		if (!grown)
			return NULL;
		l->at = grown;
		l->cap = cap;
	}
	server_sum *s = &l->at[l->count++];
	memset(s, 0, sizeof(*s));
	shard_slot_name(s->listener, listener);
	shard_slot_name(s->server, server);
	return s;
}

static bool slot_counts(const servers_view *v, const shard_slot *slot)
{
	shard_state st = shard_slot_get_state(slot);
	return slot->generation == v->generation &&
	       (st == SHARD_STATE_READY || st == SHARD_STATE_STARTING);
}

static int add_slot(const servers_view *v, const shard_slot *slot,
		    const figure_at *at, server_list *l)
{
	uint32_t n = slot->upstream_count < SHARD_MAX_UPSTREAMS ?
		     slot->upstream_count : SHARD_MAX_UPSTREAMS;
	for (uint32_t k = 0; k < n; k++) {
		const shard_slot_upstream *u = &slot->upstreams[k];
		uint32_t seq = __atomic_load_n(&u->name_seq, __ATOMIC_ACQUIRE);
		if ((seq & 1) || u->listener >= slot->listener_count || !u->name[0])
			continue; /* being renamed: the next look has it */
		server_sum *s = list_find(l, slot->listeners[u->listener].name,
					  u->name, true);
		if (!s)
			return -ENOMEM;
		shard_slot_name(s->origin, u->origin);
		s->shards++;
		s->shards_up += figure(u, at->up) != 0;
		s->weight = figure(u, at->weight);
		s->active += figure(u, at->active);
		s->inflight += figure(u, at->inflight);
	}
	(void)v;
	return 0;
}

static int collect(const servers_view *v, server_list *l)
{
	figure_at at = { family_at(v, "up"), family_at(v, "weight"),
			 family_at(v, "active"), family_at(v, "rpc_inflight") };

	*l = (server_list){ 0 };
	for (uint32_t k = 0; k < v->metrics->slot_count; k++) {
		const shard_slot *slot = &v->metrics->slots[k];
		if (slot_counts(v, slot) && add_slot(v, slot, &at, l) < 0)
			return -ENOMEM;
	}
	return 0;
}

static const char *health_name(const server_sum *s, shard_server_admin st)
{
	if (st == SHARD_SERVER_MAINT)
		return "unchecked"; /* maint stops the checks */
	if (s->shards_up == s->shards)
		return "up";
	return s->shards_up == 0 ? "down" : "partial";
}

static void render_one(const servers_view *v, const server_sum *s, strbuf *sb)
{
	shard_server_admin st = SHARD_SERVER_READY;
	uint32_t weight = 0;
	shard_server_board_get(v->board, s->listener, s->server, &st, &weight);

	strbuf_puts(sb, "{\"listener\":");
	strbuf_json_string(sb, s->listener);
	strbuf_puts(sb, ",\"address\":");
	strbuf_json_string(sb, s->server);
	if (s->origin[0]) {
		strbuf_puts(sb, ",\"server_name\":");
		strbuf_json_string(sb, s->origin);
	}
	strbuf_printf(sb, ",\"admin_state\":\"%s\",\"weight\":%" PRIu64
		      ",\"weight_set\":%" PRIu32 ",\"health\":\"%s\""
		      ",\"shards\":%" PRIu32 ",\"shards_up\":%" PRIu32
		      ",\"connections\":%" PRIu64 ",\"requests\":%" PRIu64 "}",
		      shard_server_admin_name(st), weight ? weight : s->weight,
		      weight, health_name(s, st), s->shards, s->shards_up,
		      s->active, s->inflight);
}

int servers_render(const servers_view *v, strbuf *body)
{
	server_list l;
	int rc = collect(v, &l);

	if (rc == 0) {
		strbuf_puts(body, "{\"servers\":[");
		for (size_t k = 0; k < l.count; k++) {
			if (k)
				strbuf_puts(body, ",");
			render_one(v, &l.at[k], body);
		}
		rc = strbuf_puts(body, "]}\n");
	}
	free(l.at);
	return rc;
}

/* --- POST --------------------------------------------------------------- */

static int hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)tolower((unsigned char)c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* %XX decoded into out; false when it does not fit or is malformed. */
static bool url_decode(const char *s, size_t n, char *out, size_t cap)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '%') {
			if (i + 2 >= n)
				return false;
			int h = hex(s[i + 1]), l = hex(s[i + 2]);
			if (h < 0 || l < 0)
				return false;
			c = (char)(h * 16 + l);
			i += 2;
		}
		if (c == '\0' || o + 1 >= cap)
			return false;
		out[o++] = c;
	}
	out[o] = '\0';
	return o > 0;
}

static bool set_field(servers_change *ch, const char *k, size_t kn,
		      const char *val, size_t vn)
{
	char v[32];

	if (vn == 0 || vn >= sizeof(v))
		return false;
	memcpy(v, val, vn);
	v[vn] = '\0';
	if (kn == 5 && memcmp(k, "state", 5) == 0) {
		ch->has_state = true;
		if (strcmp(v, "ready") == 0)
			ch->state = SHARD_SERVER_READY;
		else if (strcmp(v, "drain") == 0)
			ch->state = SHARD_SERVER_DRAIN;
		else if (strcmp(v, "maint") == 0)
			ch->state = SHARD_SERVER_MAINT;
		else
			return false;
		return true;
	}
	if (kn == 6 && memcmp(k, "weight", 6) == 0) {
		char *end = NULL;
		long weight = strtol(v, &end, 10);
		ch->has_weight = true;
		ch->weight = (uint32_t)weight;
		return isdigit((unsigned char)v[0]) && *end == '\0' &&
		       weight >= 0 && weight <= SHARD_SERVER_MAX_WEIGHT;
	}
	return false; /* an unknown key is a mistake worth saying */
}

/* state=drain&weight=3 */
static bool parse_form(const char *p, const char *end, servers_change *ch)
{
	while (p < end) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *e = amp ? amp : end;
		const char *eq = memchr(p, '=', (size_t)(e - p));
		if (!eq || !set_field(ch, p, (size_t)(eq - p), eq + 1,
				      (size_t)(e - eq - 1)))
			return false;
		p = amp ? amp + 1 : end;
	}
	return true;
}

static const char *skip_ws(const char *p, const char *end)
{
	while (p < end && isspace((unsigned char)*p))
		p++;
	return p;
}

/* A JSON string without escapes, or a bare token (number): [*s, *e). */
static const char *json_token(const char *p, const char *end, const char **s,
			      const char **e)
{
	if (p < end && *p == '"') {
		const char *q = memchr(p + 1, '"', (size_t)(end - p - 1));
		if (!q || memchr(p + 1, '\\', (size_t)(q - p - 1)))
			return NULL;
		*s = p + 1, *e = q;
		return q + 1;
	}
	const char *q = p;
	while (q < end && (isalnum((unsigned char)*q) || *q == '-'))
		q++;
	if (q == p)
		return NULL;
	*s = p, *e = q;
	return q;
}

/* {"state": "drain", "weight": 3}: a flat object of those two keys. */
static bool parse_json(const char *p, const char *end, servers_change *ch)
{
	p = skip_ws(p + 1, end);
	while (p < end && *p != '}') {
		const char *ks, *ke, *vs, *ve;
		if (!(p = json_token(p, end, &ks, &ke)))
			return false;
		p = skip_ws(p, end);
		if (p == end || *p != ':')
			return false;
		if (!(p = json_token(skip_ws(p + 1, end), end, &vs, &ve)))
			return false;
		if (!set_field(ch, ks, (size_t)(ke - ks), vs, (size_t)(ve - vs)))
			return false;
		p = skip_ws(p, end);
		if (p < end && *p == ',')
			p = skip_ws(p + 1, end);
	}
	return p < end && skip_ws(p + 1, end) == end;
}

bool servers_parse_change(const char *body, size_t len, servers_change *ch)
{
	const char *p = body, *end = body + len;

	*ch = (servers_change){ 0 };
	if (!p)
		return false;
	while (end > p && isspace((unsigned char)end[-1]))
		end--;
	p = skip_ws(p, end);
	bool ok = p < end && *p == '{' ? parse_json(p, end, ch)
				       : parse_form(p, end, ch);
	return ok && (ch->has_state || ch->has_weight);
}

#define SERVERS_STR_(x) #x
#define SERVERS_STR(x) SERVERS_STR_(x)

static int fail(strbuf *body, int status, const char *why)
{
	strbuf_reset(body);
	strbuf_puts(body, why);
	return status;
}

bool servers_parse_path(const char *path, size_t len,
			char listener[SHARD_NAME_MAX], char server[SHARD_NAME_MAX])
{
	if (!path || len < 9 || memcmp(path, "/servers/", 9) != 0)
		return false;
	const char *p = path + 9, *end = path + len;
	const char *slash = memchr(p, '/', (size_t)(end - p));
	return slash &&
	       url_decode(p, (size_t)(slash - p), listener, SHARD_NAME_MAX) &&
	       url_decode(slash + 1, (size_t)(end - slash - 1), server,
			  SHARD_NAME_MAX);
}

int servers_post(const servers_view *v, const admin_request *req,
		 strbuf *body)
{
	char listener[SHARD_NAME_MAX], server[SHARD_NAME_MAX];
	servers_change ch;

	if (!servers_parse_path(req->path, req->path_len, listener, server))
		return fail(body, 400, "bad listener or server in the path\n");
	if (!servers_parse_change(req->body, req->body_len, &ch))
		return fail(body, 400, "the body must set state=ready|drain|maint "
			    "and/or weight=0.." SERVERS_STR(SHARD_SERVER_MAX_WEIGHT)
			    " (form or a JSON object)\n");

	server_list l;
	int rc = collect(v, &l);
	server_sum *s = rc == 0 ? list_find(&l, listener, server, false) : NULL;
	if (rc == 0 && !s)
		rc = fail(body, 404, "no such server in that listener\n");
	if (s) {
		shard_server_admin st = SHARD_SERVER_READY;
		uint32_t weight = 0;
		shard_server_board_get(v->board, listener, server, &st, &weight);
		if (ch.has_state)
			st = ch.state;
		if (ch.has_weight)
			weight = ch.weight;
		rc = shard_server_board_set(v->board, listener, server, st, weight);
		if (rc < 0)
			rc = fail(body, 507, "no room for more admin states\n");
		else
			render_one(v, s, body), strbuf_puts(body, "\n");
	}
	free(l.at);
	return rc;
}

static bool keep_row(void *arg, const char *listener, const char *server)
{
	server_list *l = arg;
	return list_find(l, listener, server, false) != NULL;
}

void servers_prune(const servers_view *v)
{
	server_list l;

	/* Without the whole list nothing is pruned: a row kept too long is
	 * harmless, one dropped wrongly is not. */
	if (collect(v, &l) == 0)
		shard_server_board_prune(v->board, keep_row, &l);
	free(l.at);
}
