#include "proxy/balance.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/netaddr.h"

#define GOLDEN UINT64_C(0x9e3779b97f4a7c15)

/* splitmix64's finalizer: every input bit flips about half the output bits,
 * which rendezvous hashing needs to give each (client, server) pair an
 * independent-looking score. */
static uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

static uint64_t hash_bytes(const void *data, size_t n)
{
	const unsigned char *p = data;
	uint64_t h = UINT64_C(0xcbf29ce484222325); /* FNV-1a */

	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= UINT64_C(0x100000001b3);
	}
	return mix64(h);
}

static uint64_t rng_next(uint64_t *state)
{
	*state += GOLDEN;
	return mix64(*state);
}

int balance_init(balance_state *b, balance_kind kind,
		 const upstream_spec *servers, size_t count,
		 uint64_t seed)
{
	memset(b, 0, sizeof(*b));
	if (count == 0 || count > BALANCE_MAX_SERVERS)
		return -EINVAL;
	for (size_t i = 0; i < count; i++) {
		if (servers[i].weight < 1 ||
		    servers[i].weight > SHARD_SERVER_MAX_WEIGHT)
			return -EINVAL;
	}
	b->servers = calloc(count, sizeof(*b->servers));
	if (!b->servers)
		return -ENOMEM;
	b->kind = kind;
	b->count = count;
	b->rng = seed;
	for (size_t i = 0; i < count; i++) {
		b->servers[i].up = true;
		balance_set_server(b, i, &servers[i]);
	}
	return 0;
}

void balance_set_server(balance_state *b, size_t idx, const upstream_spec *spec)
{
	balance_entry *s = &b->servers[idx];
	char id[NETADDR_STRLEN];

	s->weight = spec->weight;
	s->maxconn = spec->maxconn;
	s->current = 0;
	netaddr_format((const struct sockaddr *)&spec->addr.ss, id, sizeof(id));
	s->id_hash = hash_bytes(id, strlen(id));
}

void balance_set_weight(balance_state *b, size_t idx, unsigned weight)
{
	if (b->servers[idx].weight == weight)
		return;
	b->servers[idx].weight = weight;
	b->servers[idx].current = 0;
}

void balance_free(balance_state *b)
{
	free(b->servers);
	memset(b, 0, sizeof(*b));
}

void balance_tried_clear(balance_tried *t)
{
	memset(t, 0, sizeof(*t));
}

void balance_tried_add(balance_tried *t, size_t idx)
{
	if (idx < BALANCE_MAX_SERVERS)
		t->bits[idx / 64] |= UINT64_C(1) << (idx % 64);
}

bool balance_tried_has(const balance_tried *t, size_t idx)
{
	if (!t || idx >= BALANCE_MAX_SERVERS)
		return false;
	return (t->bits[idx / 64] >> (idx % 64)) & 1;
}

static bool entry_full(const balance_entry *s)
{
	return s->maxconn && s->active >= s->maxconn;
}

/* Up and not tried: a server the client may go to, full or not. */
static bool candidate(const balance_state *b, size_t i,
		      const balance_tried *tried)
{
	return b->servers[i].up && !balance_tried_has(tried, i);
}

static bool eligible(const balance_state *b, size_t i,
		     const balance_tried *tried)
{
	return candidate(b, i, tried) && !entry_full(&b->servers[i]);
}

/* Nothing was eligible: FULL when a candidate was only full. */
static int none_or_full(const balance_state *b, const balance_tried *tried)
{
	for (size_t i = 0; i < b->count; i++)
		if (candidate(b, i, tried))
			return BALANCE_FULL;
	return BALANCE_NONE;
}

/* nginx's smooth weighted round-robin: every eligible server gains its
 * weight, the richest is chosen and pays the total back. */
static int pick_roundrobin(balance_state *b,
			   const balance_tried *tried)
{
	int64_t total = 0;
	int best = -1;

	for (size_t i = 0; i < b->count; i++) {
		balance_entry *s = &b->servers[i];
		if (!eligible(b, i, tried))
			continue;
		s->current += s->weight;
		total += s->weight;
		if (best < 0 || s->current > b->servers[best].current)
			best = (int)i;
	}
	if (best >= 0)
		b->servers[best].current -= total;
	return best;
}

/* a carries less load per unit of weight than c (cross-multiplied, so no
 * division and no rounding). */
static bool less_loaded(const balance_entry *a,
			const balance_entry *c)
{
	return (uint64_t)a->active * c->weight <
	       (uint64_t)c->active * a->weight;
}

static int pick_leastconn(balance_state *b,
			  const balance_tried *tried)
{
	int best = -1;

	for (size_t k = 0; k < b->count; k++) {
		size_t i = (b->cursor + k) % b->count;
		if (!eligible(b, i, tried))
			continue;
		if (best < 0 || less_loaded(&b->servers[i], &b->servers[best]))
			best = (int)i;
	}
	if (best >= 0)
		b->cursor = (size_t)best + 1;
	return best;
}

/* One weighted draw among eligible servers other than skip. */
static int draw_weighted(balance_state *b, const balance_tried *tried,
			 int skip)
{
	uint64_t total = 0;

	for (size_t i = 0; i < b->count; i++) {
		if (eligible(b, i, tried) && (int)i != skip)
			total += b->servers[i].weight;
	}
	if (total == 0)
		return -1;
	uint64_t r = rng_next(&b->rng) % total;
	for (size_t i = 0; i < b->count; i++) {
		if (!eligible(b, i, tried) || (int)i == skip)
			continue;
		if (r < b->servers[i].weight)
			return (int)i;
		r -= b->servers[i].weight;
	}
	return -1;
}

static int pick_random2(balance_state *b, const balance_tried *tried)
{
	int first = draw_weighted(b, tried, -1);
	if (first < 0)
		return -1;
	int second = draw_weighted(b, tried, first);
	if (second < 0)
		return first;
	if (less_loaded(&b->servers[second], &b->servers[first]))
		return second;
	return first;
}

/* Natural log of x > 0 (a normal double). Written out so proxy_core needs
 * no libm: frexp-style split into m * 2^e with m near 1, then the atanh
 * series ln(m) = 2(s + s^3/3 + s^5/5 + ...), s = (m-1)/(m+1), |s| < 0.18,
 * which is within 1e-15 after ten terms. */
double balance_ln(double x)
{
	uint64_t bits;
	double m;

	memcpy(&bits, &x, sizeof(bits));
	int e = (int)((bits >> 52) & 0x7ff) - 1023;
	bits = (bits & ((UINT64_C(1) << 52) - 1)) | (UINT64_C(1023) << 52);
	memcpy(&m, &bits, sizeof(m));
	if (m > 1.4142135623730951) {
		m /= 2;
		e++;
	}
	double s = (m - 1) / (m + 1), s2 = s * s, term = s, sum = 0;
	for (int k = 1; k <= 19; k += 2) {
		sum += term / k;
		term *= s2;
	}
	return 2 * sum + e * 0.6931471805599453;
}

/* Weighted rendezvous score: -w / ln(u) with u uniform in (0,1) from the
 * pair's hash. The server with the highest score wins; a server's weight
 * share of wins equals its share of the total weight. */
static double hrw_score(uint64_t client_hash, const balance_entry *s)
{
	uint64_t h = mix64(client_hash ^ (s->id_hash * GOLDEN));
	double u = ((double)(h >> 11) + 0.5) * (1.0 / 9007199254740992.0);
	return -(double)s->weight / balance_ln(u);
}

/* The candidate with the highest rendezvous score for key_hash; FULL
 * when that one is full: the key stays with its server and waits. */
static int pick_hash_of(balance_state *b, uint64_t key_hash,
			const balance_tried *tried)
{
	int best = -1;
	double best_score = 0;

	for (size_t i = 0; i < b->count; i++) {
		if (!candidate(b, i, tried))
			continue;
		double score = hrw_score(key_hash, &b->servers[i]);
		if (best < 0 || score > best_score) {
			best = (int)i;
			best_score = score;
		}
	}
	if (best >= 0 && entry_full(&b->servers[best]))
		return BALANCE_FULL;
	return best;
}

static int pick_hash(balance_state *b, const struct sockaddr *client,
		     const balance_tried *tried)
{
	unsigned char ip[16];
	size_t n = client ? netaddr_ip_bytes(client, ip) : 0;

	if (n == 0)
		return pick_roundrobin(b, tried);
	return pick_hash_of(b, hash_bytes(ip, n), tried);
}

static int pick_policy(balance_state *b, const struct sockaddr *client,
		       const balance_tried *tried)
{
	switch (b->kind) {
	case BALANCE_LEASTCONN:
		return pick_leastconn(b, tried);
	case BALANCE_RANDOM2:
		return pick_random2(b, tried);
	case BALANCE_HASH:
		return pick_hash(b, client, tried);
	case BALANCE_ROUNDROBIN:
	default:
		return pick_roundrobin(b, tried);
	}
}

int balance_pick(balance_state *b, const struct sockaddr *client,
		 const balance_tried *tried)
{
	int idx = pick_policy(b, client, tried);

	return idx == BALANCE_NONE ? none_or_full(b, tried) : idx;
}

int balance_pick_key(balance_state *b, const void *key, size_t len,
		     const balance_tried *tried)
{
	if (b->kind != BALANCE_HASH)
		return balance_pick(b, NULL, tried);
	int idx = pick_hash_of(b, hash_bytes(key, len), tried);
	return idx == BALANCE_NONE ? none_or_full(b, tried) : idx;
}

unsigned *balance_active(balance_state *b, size_t idx)
{
	return idx < b->count ? &b->servers[idx].active : NULL;
}

void balance_set_up(balance_state *b, size_t idx, bool up)
{
	if (idx >= b->count)
		return;
	/* A server coming back starts from zero instead of the credit or
	 * debt it had when it left, so it does not get a burst. */
	if (up && !b->servers[idx].up)
		b->servers[idx].current = 0;
	b->servers[idx].up = up;
}

void balance_conn_begin(balance_state *b, size_t idx)
{
	if (idx < b->count)
		b->servers[idx].active++;
}

void balance_conn_end(balance_state *b, size_t idx)
{
	if (idx < b->count && b->servers[idx].active > 0)
		b->servers[idx].active--;
}

size_t balance_up_count(const balance_state *b)
{
	size_t n = 0;

	for (size_t i = 0; i < b->count; i++)
		n += b->servers[i].up;
	return n;
}

static const char *const kind_names[] = {
	[BALANCE_ROUNDROBIN] = "roundrobin",
	[BALANCE_LEASTCONN] = "leastconn",
	[BALANCE_RANDOM2] = "random2",
	[BALANCE_HASH] = "hash",
};

int balance_kind_parse(const char *text, balance_kind *kind)
{
	for (size_t i = 0; i < sizeof(kind_names) / sizeof(kind_names[0]); i++) {
		if (strcmp(text, kind_names[i]) == 0) {
			*kind = (balance_kind)i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *balance_kind_name(balance_kind kind)
{
	if ((size_t)kind >= sizeof(kind_names) / sizeof(kind_names[0]))
		return "?";
	return kind_names[kind];
}
