/*
 * resolve — server names (upstream_name in proxy/balance.h) looked up in
 * a shard's own loop with c-ares, never blocking it and with no thread.
 *
 * One resolver (one c-ares channel) per shard. c-ares tells us through
 * its socket-state callback which sockets it wants read or written; each
 * such socket is duplicated into a pollDesc whose watches (pd_watch) mark
 * it ready, and a zero-delay timer then runs ares_process_fd on it in
 * scheduler context. c-ares's own retransmit and give-up times run on a
 * scheduler timer set from ares_timeout after every call into c-ares.
 *
 * A name is `HOST:PORT` (A and AAAA, through ares_getaddrinfo, which also
 * reads /etc/hosts) or `NAME srv` (ares_query for SRV, then the A and
 * AAAA of each target of the lowest priority; ports and weights from the
 * records). Its answer is the set of servers, sorted by address so every
 * shard sees the same order, at most UPSTREAM_NAME_MAX_SERVERS, and the
 * smallest TTL of the records it came from. The owner of the name asks
 * again after that TTL bounded to [resolve_min, resolve_max]; after a
 * failure (timeout, SERVFAIL, NXDOMAIN, no records) after resolve_min,
 * and the last good answer stays in use meanwhile, however long that is.
 *
 * With several shards one shard owns each name (resolve_owner) and
 * publishes every answer on the shared name board (shard/shard.h); the
 * others read the board every resolve_min and take a new answer from it,
 * and resolve the name themselves only while the board has nothing fresh
 * (the owner is gone or restarting): the DNS server sees one query per
 * name per interval, not one per shard.
 */
#ifndef FRAMEPROXY_PROXY_RESOLVE_H
#define FRAMEPROXY_PROXY_RESOLVE_H

#include <stdbool.h>
#include <stdint.h>

#include "proxy/balance.h"
#include "sched/sched.h"
#include "shard/shard.h"

typedef struct resolver resolver;

/* Addresses an answer may bring before it is sorted and cut to
 * UPSTREAM_NAME_MAX_SERVERS: a DNS server that rotates a long answer must
 * not change which servers are used. */
#define RESOLVE_FOUND_MAX (4 * UPSTREAM_NAME_MAX_SERVERS)

typedef struct resolve_params {
	const char *servers;     /* "IP:PORT,..." or NULL: /etc/resolv.conf */
	int64_t min_ns, max_ns;  /* bounds on the time between queries */
	/* Sharing answers between shards; board NULL: every shard asks. */
	shard_name_board *board;
	uint32_t shard_index;
	uint32_t shard_count;
	uint32_t generation;     /* answers of other generations are ignored */
} resolve_params;

/* What became of a name: a new answer (servers, count <= MAX), or a
 * failure (count 0, servers NULL, `error` a c-ares message). */
typedef struct resolve_result {
	const upstream_spec *servers;
	uint32_t count;
	uint32_t ttl_s;
	const char *error;       /* NULL on success */
	bool from_board;         /* taken from the owner shard's answer */
} resolve_result;

typedef void (*resolve_fn)(void *arg, const resolve_result *result);

/* One name being kept up to date. Owned by its user (the upstream pool),
 * registered with resolve_name_start. */
typedef struct resolve_name {
	resolver *res;
	const upstream_name *spec;
	uint32_t board_row;      /* its row on the name board */
	resolve_fn fn;
	void *arg;
	sched_timer timer;       /* the next look */
	bool busy;               /* a query is in flight */
	bool answered;           /* has had a good answer (or a board one) */
	bool settled;            /* the first look is over: answered, failed,
				  * or the owner's board row says so */
	int64_t started_ns;
	uint64_t board_seq;      /* the board answer last taken */
	/* an answer being put together (SRV: one lookup per target) */
	uint32_t waiting;
	uint32_t found_count;
	bool truncated;          /* more addresses than UPSTREAM_NAME_MAX_SERVERS */
	bool said_truncated;     /* logged for the last answer */
	uint32_t ttl_s;
	upstream_spec found[RESOLVE_FOUND_MAX];
	/* the last good answer, kept through failures (and published) */
	uint32_t good_count;
	upstream_spec good[UPSTREAM_NAME_MAX_SERVERS];
	/* for /metrics: queries answered and failed by this shard */
	uint64_t resolutions;
	uint64_t failures;
} resolve_name;

/* Open the shard's resolver (after poll_open). -errno, or -EINVAL for a
 * servers list c-ares refuses; why says which in one line. */
int resolver_open(resolver **out, const resolve_params *params, char *why,
		  size_t why_len);
/* Cancel everything (callbacks are not called) and close the sockets,
 * before the poller closes. NULL is fine. */
void resolver_close(resolver *res);

/* Start keeping `name` up to date: the first look is now. fn is called
 * from scheduler context (it must not park) with every new answer and
 * every failure. */
void resolve_name_start(resolver *res, resolve_name *name,
			const upstream_name *spec, uint32_t board_row,
			resolve_fn fn, void *arg);
void resolve_name_stop(resolve_name *name);

/* The shard that asks the DNS server for board row `row`. */
uint32_t resolve_owner(uint32_t shards, uint32_t row);

#endif
