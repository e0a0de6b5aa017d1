/*
 * Upstream pool: the servers behind one listener, how one is picked, and
 * whether each is fit to be picked (passive and active health).
 *
 * Passive health counts consecutive connect failures; at fail_threshold the
 * server is out for fail_timeout, doubled on each ejection in a row (capped
 * at 32x) and reset by a success; failures of connects that were in flight
 * when it went out do not count. Protocol errors on a connection that was
 * up (rpc mode) count too, and a streak that has one is ended only by an
 * answer (upstream_server_answered), not by a connect that succeeds: a
 * server that accepts connections and answers garbage is still ejected. Active health, when health_interval is
 * set, runs one checker coroutine per server: a TCP connect, or check_frame
 * sent and any frame expected back, with rise/fall counts. With several
 * shards, only a server's owner shard checks it and publishes the result on
 * the shared health board; the others take the result from there each
 * interval and check the server themselves only while the board has no
 * fresh result for it (owner gone or restarting).
 *
 * Servers from names (docs/DNS.md) come after the literal ones, at indexes
 * the pool reserves for them (upstream_slot below); each answer of a name
 * adds and removes them (upstream_pool_answer). Their checks are not
 * shared between shards.
 */
#ifndef FRAMEPROXY_PROXY_UPSTREAM_H
#define FRAMEPROXY_PROXY_UPSTREAM_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "poll/poll.h"
#include "proxy/balance.h"
#include "proxy/counters.h"
#include "proxy/log.h"
#include "proxy/netaddr.h"
#include "proxy/resolve.h"
#include "proxy/tls.h"
#include "shard/shard.h"

#define UPSTREAM_MAX_SERVERS BALANCE_MAX_SERVERS
/* Indexes a pool keeps per server name: the answer's bound twice over, so
 * a whole new answer fits while the old servers still finish their
 * connections. */
#define UPSTREAM_NAME_SLOTS (2 * UPSTREAM_NAME_MAX_SERVERS)

/*
 * What an index of the pool holds. Servers from a name come and go with
 * its answers (proxy/resolve.h): a new one takes an EMPTY index; one the
 * answer no longer has is REMOVED, never picked again, and keeps its index
 * until nothing uses it (no connection or request, no rpc pool connection,
 * no checker), when the index is EMPTY again and may be reused. A REMOVED
 * server that comes back in an answer is LIVE again with its state.
 */
typedef enum upstream_slot {
	UPSTREAM_SLOT_STATIC,  /* a literal `server =` address */
	UPSTREAM_SLOT_LIVE,    /* from a name's current answer */
	UPSTREAM_SLOT_REMOVED, /* from a name, gone from its answer */
	UPSTREAM_SLOT_EMPTY,
} upstream_slot;

typedef struct upstream_params {
	int64_t connect_timeout_ns;
	/* How long a client waits for a server below its maxconn (the
	 * pool's queue, upstream_connect); 0: it does not wait. */
	int64_t queue_timeout_ns;
	uint32_t retries;          /* further servers tried after a failure */
	/* proxy/outlier.h: errors in a row after the connect that eject a
	 * server (0 = off), the latency factor over the others' median
	 * (rpc; 0 = off), and the most servers out that way, in percent. */
	uint32_t outlier_errors;
	uint32_t outlier_latency;
	uint32_t max_ejected;
	uint32_t fail_threshold;   /* 0 = passive health off */
	int64_t fail_timeout_ns;
	int64_t health_interval_ns;/* 0 = active health off */
	uint32_t health_rise;
	uint32_t health_fall;
	const uint8_t *check_frame;/* payload; NULL = plain TCP connect check */
	uint32_t check_frame_len;
	/* Written before check_frame (send_proxy: a PROXY header naming no
	 * client, proxy_header_local); NULL = nothing. */
	const uint8_t *check_prefix;
	uint32_t check_prefix_len;
	uint32_t max_frame;        /* bound for the check's reply */
	/* upstream_tls (docs/TLS.md): connections, the relay's and the
	 * checks', speak TLS with this client context (NULL: plain TCP),
	 * verified for tls_name (NULL: upstream_tls_name's default). A check
	 * then passes only with a verified handshake (after check_prefix). */
	tls_ctx *tls;
	const char *tls_name;
	/* Shared checks; health_board NULL: this process checks every server. */
	shard_health_board *health_board;
	uint32_t health_listener;  /* this pool's row on the board */
	uint32_t shard_index;
	uint32_t shard_count;
	uint32_t generation;       /* results of other generations are ignored */
	/* The servers' admin state (drain, maint, weight) the admin endpoint
	 * sets; NULL: every server ready at its configured weight. */
	shard_server_board *admin_board;
} upstream_params;

typedef struct upstream_pool upstream_pool;

/* A client waiting in the pool's queue (upstream_connect): lives on its
 * coroutine's stack. */
typedef struct upstream_waiter {
	struct upstream_waiter *prev, *next;
	coro *coro;
	sched_timer timer;         /* its queue_timeout */
	bool woken;                /* a server has room: try again */
} upstream_waiter;

/* The pool's runtime state of one server (upstream_spec in proxy/balance.h
 * says which types a server has). */
typedef struct upstream_server {
	upstream_slot slot;
	int32_t line;              /* its name's index, -1 for STATIC */
	uint32_t attached;         /* rpc pool coroutines, connects in flight */
	bool checker_alive;
	struct sockaddr_storage addr;
	socklen_t addr_len;
	char name[NETADDR_STRLEN]; /* ip:port, for logs */
	unsigned weight;           /* configured (or from its name's answer) */
	/* From the admin board (upstream_pool_refresh): drain and maint take
	 * it out of new picks, maint also stops its checks; admin_weight 0
	 * keeps `weight`. */
	shard_server_admin admin_state;
	uint32_t admin_weight;
	/* passive health */
	uint32_t consecutive_failures;
	uint32_t ejections;
	bool protocol_streak;      /* protocol errors since the last answer */
	int64_t out_until;
	/* outlier ejection (proxy/outlier.h) */
	uint32_t outlier_errors;   /* its fault, in a row */
	uint32_t latency_samples;
	int64_t latency_ewma_ns;
	/* active health */
	upstream_pool *pool;       /* the checker's way back, set at start */
	uint32_t index;
	bool check_up;
	uint32_t check_successes;
	uint32_t check_failures;
	coro *checker;           /* parked between checks */
	sched_timer check_timer;
	/* COUNTERS_UPSTREAM of proxy/counters.h, by index (COUNTER_UP is
	 * computed when published). COUNTER_EJECTIONS, ejections ever and
	 * never reset, also tells a connect whether the server went out
	 * while it was in flight. */
	uint64_t counters[COUNTER_UPSTREAM_VALUES];
} upstream_server;

/* Told when a server from a name joins or leaves (rpc mode keeps pool
 * connections per server). Called from scheduler context. */
typedef struct upstream_hooks {
	void (*added)(void *arg, uint32_t index);
	void (*removed)(void *arg, uint32_t index);
	void *arg;
} upstream_hooks;

/* One `server =` line naming a host, and what its answers made. */
typedef struct upstream_line {
	upstream_pool *pool;
	uint32_t index;
	resolve_name name;
	uint32_t servers;          /* LIVE servers from it now */
	log_ratelimit fail_log;
} upstream_line;

typedef struct upstream_pool {
	const char *listener_name; /* for logs */
	upstream_params params;
	upstream_server *servers;
	uint32_t count;            /* indexes, of every upstream_slot kind */
	uint32_t static_count;     /* the first ones: literal addresses */
	upstream_line *lines;      /* one per name */
	uint32_t line_count;
	const upstream_name *names;
	uint64_t changes;          /* bumped when the set of servers changes */
	uint64_t admin_version;    /* the admin board's, when last read */
	upstream_hooks hooks;
	balance_state balancer;
	uint32_t checkers_running;
	/* Rate limits of connect warnings, per pool so one failing pool does
	 * not silence another's. */
	log_ratelimit connect_error_log;
	log_ratelimit local_error_log;
	log_ratelimit outlier_log;
	/* Clients waiting for a server below its maxconn, oldest first. */
	upstream_waiter *queue_head, *queue_tail;
	uint32_t queued;
	bool stopping;
} upstream_pool;

int upstream_pool_init(upstream_pool *pool, const char *listener_name,
		       const upstream_params *params, balance_kind kind,
		       const upstream_spec *servers, uint32_t count,
		       const upstream_name *names, uint32_t name_count,
		       uint64_t seed);
/* Keep the pool's names resolved with `res` (no-op without names); the
 * names' rows on the name board start at `board_row`. */
void upstream_pool_resolve(upstream_pool *pool, resolver *res,
			   uint32_t board_row);
/* An answer for name `line`: servers it no longer has are REMOVED, new
 * ones take free indexes (at most UPSTREAM_NAME_MAX_SERVERS; weights from
 * the answer), and a "servers changed" line says which. Failures keep the
 * servers there are. Public for tests. */
void upstream_pool_answer(upstream_pool *pool, uint32_t line,
			  const resolve_result *result);
/* Nothing uses REMOVED server `index` any more: its index may be reused.
 * Checked by the pool itself when it looks for a free index. */
bool upstream_server_unused(const upstream_pool *pool, uint32_t index);
/* The server is one the pool picks from (STATIC or LIVE). */
bool upstream_server_in_set(const upstream_pool *pool, uint32_t index);
/* The server name (host, or SRV name) server `index` came from, or ""
 * for a literal address. */
const char *upstream_server_origin(const upstream_pool *pool, uint32_t index);
/* The name server `index`'s certificate must carry with upstream_tls:
 * params.tls_name, else upstream_server_origin, else its address (text in
 * buf, at least INET6_ADDRSTRLEN bytes). */
const char *upstream_tls_name(const upstream_pool *pool, uint32_t index,
			      char *buf, size_t len);

/* Start active health checks (no-op when health_interval is 0). */
int upstream_pool_start(upstream_pool *pool);
/* Stop the checkers; the pool can be freed once sched_run has returned. */
void upstream_pool_stop(upstream_pool *pool);
void upstream_pool_free(upstream_pool *pool);

/*
 * Connect to a server fit to serve `client`, trying up to 1 + retries
 * distinct servers. Returns the server index (>= 0) with *out connected, or
 * -EHOSTUNREACH when no server was fit to try (close reason no_upstream),
 * or the last connect error (connect_failed). A server is counted from the
 * moment it is picked, so a maxconn holds with connects in flight. When
 * the servers it could use are all at their maxconn the client waits, in
 * arrival order, up to queue_timeout for one to have room: -EBUSY when
 * none had (close reason queue_timeout).
 */
int upstream_connect(upstream_pool *pool, const struct sockaddr *client,
		     poll_desc **out);
/*
 * Connect to server `index` itself (rpc mode keeps connections to every
 * server), with connect_timeout and passive health applied as in
 * upstream_connect: a failure counts toward ejecting it. Does not count a
 * connection for the balancer. 0 with *out connected, or -errno.
 */
int upstream_connect_to(upstream_pool *pool, uint32_t index,
			poll_desc **out);
/* Server `index` broke the protocol on a connection that was up (rpc mode:
 * a reply that matches no request; upstream_tls: a failed handshake): one failure toward fail_threshold, as
 * a failed connect is (the caller logs and counts it as what it was), and
 * until the server answers, reconnecting to it resets neither the failures
 * in a row nor the ejections in a row. The ejection says protocol_errors. */
void upstream_server_failed(upstream_pool *pool, uint32_t index);
/* Take server `index` out for fail_timeout, doubled for each ejection in
 * a row (capped at 32x); `why` names the cause in the "upstream out" line. */
void upstream_eject(upstream_pool *pool, uint32_t index, const char *why);
/* Server `index` answered a request properly (rpc mode: a matched reply;
 * upstream_tls: a handshake): the end of a streak of protocol errors. */
void upstream_server_answered(upstream_pool *pool, uint32_t index);
/* Tell the balancer which servers are usable and ready, as of now, and
 * their weights (the admin board read again when it changed). */
void upstream_pool_refresh(upstream_pool *pool);
/* The admin board read again when it changed, without a pick: what the
 * shard publishes (weight, maint) follows the endpoint within a publish
 * period even when no client comes. One load when nothing changed. */
void upstream_pool_admin_sync(upstream_pool *pool);
/* A connection made by upstream_connect to server `index` has closed. */
void upstream_release(upstream_pool *pool, int index);
/* A connection to server `index` made elsewhere (handed over on reload)
 * is now this pool's: counted as upstream_connect counts one. */
void upstream_adopt(upstream_pool *pool, int index);
/* Fit to be picked now: active checks say up and not ejected. */
bool upstream_server_usable(const upstream_pool *pool, uint32_t index,
			    int64_t now);
/* Usable, and its admin state ready (not drain or maint): new connections
 * and requests may go to it. */
bool upstream_server_open(const upstream_pool *pool, uint32_t index,
			  int64_t now);
/* The weight the balancer uses for it now. */
unsigned upstream_server_weight(const upstream_server *server);

#endif
