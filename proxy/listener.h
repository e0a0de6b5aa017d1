/*
 * A listener: one listening socket, its limits and ACL, its upstream pool.
 *
 * The acceptor coroutine takes connections; the checks that need no I/O
 * (ACL, per-client count) run right there, so a denied client costs no
 * coroutine. With accept_proxy, the session coroutine first reads the
 * PROXY header (exactly its bytes: the first frame stays in the socket),
 * and the checks then run on the client address it names. A session
 * coroutine then connects upstream (with retries), writes the PROXY header
 * there with send_proxy, and
 * hands both sockets to the relay, whose completion writes the access-log
 * line and gives back the connection's slots.
 */
#ifndef FRAMEPROXY_PROXY_LISTENER_H
#define FRAMEPROXY_PROXY_LISTENER_H

#include <stdint.h>
#include <sys/socket.h>

#include "poll/poll.h"
#include "proxy/acl.h"
#include "proxy/balance.h"
#include "proxy/counters.h"
#include "proxy/handoff.h"
#include "proxy/peer_table.h"
#include "proxy/log.h"
#include "proxy/proxy_header.h"
#include "proxy/relay.h"
#include "proxy/rpc_listener.h"
#include "proxy/tls.h"
#include "proxy/upstream.h"

typedef struct listener_params {
	const char *name;
	/* What the supervisor binds for this listener (shard_listen_spec);
	 * the listener adopts the socket it made. */
	struct sockaddr_storage addr;
	socklen_t addr_len;
	int backlog;
	uint32_t max_connections;     /* 0 = unlimited */
	uint32_t max_per_client;      /* 0 = unlimited */
	const acl_set *acl;        /* NULL = everyone */
	bool access_log;              /* an info line per closed connection */
	relay_params relay;
	upstream_params upstream;
	balance_kind balance;
	const upstream_spec *servers; /* the config's array */
	uint32_t server_count;
	const upstream_name *names;   /* the config's, resolved (resolve.h) */
	uint32_t name_count;
	uint64_t seed;                /* random2's choices */
	bool rpc_mode;                /* mode = rpc: rpc_listener.h */
	rpc_params rpc;
	/* PROXY protocol: a header read from each client before anything
	 * else (within upstream.connect_timeout_ns), only from these peers
	 * (NULL = any), and one written to each upstream connection. */
	proxy_header_mode accept_proxy;
	const acl_set *accept_proxy_from;
	proxy_header_mode send_proxy;
	/* TLS termination (proxy/tls.h): the config's context (NULL: plain
	 * TCP), and how long a client's handshake may take. */
	tls_ctx *tls;
	int64_t tls_handshake_timeout_ns;
	/* TLS origination is upstream.tls (its handshake bounded by
	 * upstream.connect_timeout_ns). */
} listener_params;


typedef struct listener {
	listener_params params;
	poll_desc *pd;
	upstream_pool pool;
	relay_group *relays;
	rpc_listener *rpc;            /* mode = rpc, else NULL */
	peer_table peers;
	/* COUNTERS_LISTENER of proxy/counters.h, by index; the relay group
	 * adds its frames and bytes here */
	uint64_t counters[COUNTER_LISTENER_VALUES];
	coro *acceptor;
	coro *waiting_for_slot;     /* acceptor parked at max_connections */
	struct sockaddr_storage bound;/* the address actually bound */
	socklen_t bound_len;
	/* Rate limits of the acceptor's warnings, per listener so one busy
	 * listener does not silence another's. */
	log_ratelimit accept_error_log;
	log_ratelimit full_log;
	log_ratelimit proxy_header_log;
	log_ratelimit tls_log;
	log_ratelimit upstream_tls_log;
	bool stopping;
	struct listener_handoff *handoff; /* retiring with handoff, else NULL */
} listener;

/*
 * Adopt `listen_fd`, the listening socket the shard's supervisor made for
 * this listener, and set up the pool. Nothing runs until listener_start.
 */
int listener_open(listener *l, const listener_params *params,
		  relay_group *relays, int listen_fd);
int listener_start(listener *l);
/* Stop accepting and stop health checks; relays go on (see relay_drain). */
void listener_stop(listener *l);
/* Its connections finish what they started and close (relay_drain,
 * rpc_listener_drain). */
void listener_drain(listener *l);
/* Close its connections now (drain timeout). */
void listener_close_all(listener *l, reason_code reason);
void listener_free(listener *l);

/*
 * Handoff on reload (proxy/handoff.h). The retiring side: from now on each
 * stream connection that comes to rest (relay_at_rest) goes over `h`, its
 * session ending without an access line (the next shard writes it when the
 * connection really ends) and counted in COUNTER_HANDOFFS. rpc
 * clients with nothing in flight go the same way (the old shard's pool
 * connections close when it exits, with nothing left on them).
 * listener_handoff_sweep offers the ones at rest now.
 */
typedef struct listener_handoff {
	int fd;                       /* the channel, or -1 */
	bool failed;                  /* the new shard is gone: stop */
	uint32_t unacked;             /* sent, not adopted yet (HANDOFF_WINDOW) */
} listener_handoff;

void listener_handoff_begin(listener *l, listener_handoff *h);
/* Take the ACKs that came; false when the new shard is gone (then
 * nothing more is handed over, and it is logged). */
bool listener_handoff_acks(listener_handoff *h);
void listener_handoff_sweep(listener *l);
void listener_handoff_end(listener *l);
/* The adopting side: serve a connection handed over (fds[0] client,
 * fds[1] upstream; taken, closed on failure). */
void listener_adopt(listener *l, const handoff_conn *rec, const int fds[2]);

#endif
