/* balance — picking an upstream server for a new client connection.
 *
 * The balancer owns, per server, what the policies need (balance_entry):
 * weight, an "up" flag and the count of active connections. The upstream
 * pool keeps its own richer state (upstream_server: failure counts, health,
 * counters) in a parallel array with the same indices and tells the
 * balancer about changes with balance_set_up / balance_conn_begin /
 * balance_conn_end.
 *
 * Policies:
 *   ROUNDROBIN  smooth weighted round-robin (nginx): weights 5,1,1 give
 *               a a b a c a a, spread out rather than in bursts.
 *   LEASTCONN   fewest active connections per unit of weight; ties go
 *               round-robin so idle pools still rotate.
 *   RANDOM2     power of two choices: two distinct servers drawn at random
 *               (in proportion to weight), the less loaded one wins.
 *   HASH        weighted rendezvous (highest random weight) hashing of the
 *               client IP (not the port): a client stays on its server,
 *               and removing one of N servers moves only that server's
 *               clients (about 1/N); no ring to build or store. With no
 *               client address it falls back to ROUNDROBIN.
 *
 * Servers that are down or already tried (see balance_tried) are skipped
 * by every policy; a retry after a failed connect passes the tried set so
 * it lands on a different server. Single-threaded, like a shard.
 */
#ifndef FRAMEPROXY_PROXY_BALANCE_H
#define FRAMEPROXY_PROXY_BALANCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "proxy/netaddr.h"
#include "shard/shard.h"

#ifdef __cplusplus
extern "C" {
#endif

#define BALANCE_MAX_SERVERS 256

typedef enum balance_kind {
	BALANCE_ROUNDROBIN,
	BALANCE_LEASTCONN,
	BALANCE_RANDOM2,
	BALANCE_HASH,
} balance_kind;

/* One upstream server as configured: where it is and its weight. A server
 * has three types, one per thing it is:
 *   upstream_spec    what the configuration says; config_listener holds the
 *                    array, listener_params points at it, and both
 *                    upstream_pool_init and balance_init read it
 *   upstream_server  the pool's runtime state of it (proxy/upstream.h)
 *   balance_entry    the balancer's runtime state of it (below), at the
 *                    same index
 * HASH names a server by its address text ("10.0.0.1:80"), so a client
 * keeps its server when the list is reordered or grows. */
typedef struct upstream_spec {
	netaddr addr;
	unsigned weight;  /* 1..SHARD_SERVER_MAX_WEIGHT, default 1 */
	unsigned maxconn; /* maxconn=N: the most it is given at once; 0 = no limit */
} upstream_spec;

/* A `server` line that names a host instead of an address: resolved in
 * every shard's loop (proxy/resolve.h) and re-resolved as its TTL says;
 * each answer becomes up to UPSTREAM_NAME_MAX_SERVERS servers with the
 * line's weight (srv: the records' ports and weights). */
#define UPSTREAM_NAME_MAX 254
/* Server names per listener; each takes up to UPSTREAM_NAME_MAX_SERVERS
 * of the pool's BALANCE_MAX_SERVERS. */
#define UPSTREAM_NAMES_MAX 8
#define UPSTREAM_NAME_MAX_SERVERS 16
typedef struct upstream_name {
	char host[UPSTREAM_NAME_MAX + 1];
	unsigned port;   /* 0 with srv: the records say */
	unsigned weight; /* the line's weight=N (srv: unless the records say) */
	unsigned maxconn;/* the line's maxconn=N, for each of its servers */
	bool srv;        /* `server = _svc._tcp.name srv`: SRV records */
} upstream_name;

/* The balancer's runtime state of one server. */
typedef struct balance_entry {
	unsigned weight;
	bool up;
	unsigned active;
	unsigned maxconn; /* 0 = no limit; `active` never goes past it */
	int64_t current; /* smooth round-robin state */
	uint64_t id_hash;
} balance_entry;

/* One balancer (one per upstream pool); the type is not called balancer
 * because the pool's field is. */
typedef struct balance_state {
	balance_kind kind;
	size_t count;
	balance_entry *servers;
	uint64_t rng;  /* splitmix64 state for RANDOM2 */
	size_t cursor; /* LEASTCONN tie-break rotation */
} balance_state;

/* Servers already tried for this client: a retry must go elsewhere. */
typedef struct balance_tried {
	uint64_t bits[BALANCE_MAX_SERVERS / 64];
} balance_tried;

/* All servers start up with no connections. -EINVAL for a count of 0 or
 * above BALANCE_MAX_SERVERS or a weight outside 1..SHARD_SERVER_MAX_WEIGHT;
 * -ENOMEM. The seed drives RANDOM2 (same seed, same choices). */
int balance_init(balance_state *b, balance_kind kind,
		 const upstream_spec *servers, size_t count,
		 uint64_t seed);
void balance_free(balance_state *b);
/* Server idx becomes `spec` (a server from DNS taking a free index, or a
 * weight that changed): its weight and HASH identity; the up flag and the
 * count are left as they are. The weight must be in
 * 1..SHARD_SERVER_MAX_WEIGHT. */
void balance_set_server(balance_state *b, size_t idx, const upstream_spec *spec);

/* What balance_pick returns when it picks nothing because the servers it
 * could pick are at their maxconn (HASH: the client's own server is). */
#define BALANCE_NONE (-1)
#define BALANCE_FULL (-2)
/* Index of the chosen server, BALANCE_NONE when every server is down or
 * tried, BALANCE_FULL when the rest are full. A server at its maxconn is
 * passed over (HASH does not move a client: its server full is FULL).
 * client may be NULL; tried may be NULL. Does not count a connection:
 * call balance_conn_begin before the connect yields. */
int balance_pick(balance_state *b, const struct sockaddr *client,
		 const balance_tried *tried);

/* HASH on any bytes (a payload field, say) instead of the client address:
 * the same key always picks the same server while the set is unchanged.
 * Other policies ignore the key. -1 when every server is down or tried. */
int balance_pick_key(balance_state *b, const void *key, size_t len,
		     const balance_tried *tried);

/* The count of server idx that leastconn and random2 compare. A caller
 * that counts something other than connections (rpc mode: requests in
 * flight) keeps it through this pointer instead of conn_begin/conn_end. */
unsigned *balance_active(balance_state *b, size_t idx);

void balance_set_up(balance_state *b, size_t idx, bool up);
/* Server idx's weight only (1..SHARD_SERVER_MAX_WEIGHT): the admin
 * endpoint's weight= in place of the configured one. */
void balance_set_weight(balance_state *b, size_t idx, unsigned weight);
void balance_conn_begin(balance_state *b, size_t idx);
void balance_conn_end(balance_state *b, size_t idx);
size_t balance_up_count(const balance_state *b);

void balance_tried_clear(balance_tried *t);
void balance_tried_add(balance_tried *t, size_t idx);
bool balance_tried_has(const balance_tried *t, size_t idx);

/* The natural log HASH uses (libm-free); exposed for its test. */
double balance_ln(double x);

/* "roundrobin" | "leastconn" | "random2" | "hash"; -EINVAL otherwise. */
int balance_kind_parse(const char *text, balance_kind *kind);
const char *balance_kind_name(balance_kind kind);

#ifdef __cplusplus
}
#endif

#endif
