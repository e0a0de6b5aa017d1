#include "proxy/listener.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proxy/log.h"
#include "proxy/netaddr.h"

typedef struct session {
	listener *owner;
	poll_desc *client;
	struct sockaddr_storage peer;
	char peer_name[NETADDR_STRLEN];
	peer_key key;
	bool peer_counted;
	int server;                  /* upstream index, -1 before connect */
	int64_t accepted_ns;
} session;

/* --- the end of a connection --------------------------------------------- */

static void access_log(session *s, reason_code reason,
		       const relay_summary *summary)
{
	listener *l = s->owner;
	const char *upstream = s->server >= 0 ? l->pool.servers[s->server].name : "-";
	int64_t ended = summary ? summary->ended_ns : sched_now();
	uint64_t frames[2] = {0, 0}, bytes[2] = {0, 0};

	if (summary) {
		memcpy(frames, summary->frames, sizeof(frames));
		memcpy(bytes, summary->bytes, sizeof(bytes));
	}
	log_line(LOG_LEVEL_INFO, "access",
		 "listener=%s client=%s upstream=%s duration_ms=%.3f "
		 "client_frames=%" PRIu64 " client_bytes=%" PRIu64 " "
		 "upstream_frames=%" PRIu64 " upstream_bytes=%" PRIu64 " reason=%s",
		 l->params.name, s->peer_name, upstream,
		 (double)(ended - s->accepted_ns) / 1e6, frames[RELAY_CLIENT],
		 bytes[RELAY_CLIENT], frames[RELAY_UPSTREAM],
		 bytes[RELAY_UPSTREAM], reason_name(reason));
}

/* An rpc client's line: its requests (client_frames) and how each ended:
 * replied (upstream_frames), lost (failed: upstream_lost, no_upstream) or
 * dropped (unanswered when the client closed). */
static void access_log_rpc(session *s, const rpc_summary *summary)
{
	listener *l = s->owner;
	uint64_t dropped = summary->requests - summary->replied - summary->lost;

	log_line(LOG_LEVEL_INFO, "access",
		 "listener=%s client=%s upstream=- duration_ms=%.3f "
		 "client_frames=%" PRIu64 " client_bytes=%" PRIu64 " "
		 "upstream_frames=%" PRIu64 " upstream_bytes=%" PRIu64 " "
		 "replied=%" PRIu64 " lost=%" PRIu64 " dropped=%" PRIu64 " reason=%s",
		 l->params.name, s->peer_name,
		 (double)(summary->ended_ns - s->accepted_ns) / 1e6,
		 summary->requests, summary->request_bytes, summary->replied,
		 summary->reply_bytes, summary->replied, summary->lost, dropped,
		 reason_name(summary->reason));
}

/* Readied once: whoever wakes it clears the slot first. */
static void listener_wake_acceptor(listener *l)
{
	coro *acceptor = l->waiting_for_slot;

	if (!acceptor)
		return;
	l->waiting_for_slot = NULL;
	coro_ready(acceptor);
}

/* Give back everything the session holds and count how it ended. */
static void session_end(session *s, reason_code reason,
			const relay_summary *summary,
			const rpc_summary *rpc)
{
	listener *l = s->owner;

	if (l->params.access_log && rpc)
		access_log_rpc(s, rpc);
	else if (l->params.access_log)
		access_log(s, reason, summary);
	l->counters[COUNTER_CLOSED + reason]++;
	l->counters[COUNTER_ACTIVE]--;
	if (s->peer_counted)
		peer_table_release(&l->peers, &s->key);
	if (s->server >= 0)
		upstream_release(&l->pool, s->server);
	if (s->client)
		pd_close(s->client);
	free(s);
	listener_wake_acceptor(l);
}

static void session_relay_done(const relay_summary *summary, void *arg)
{
	session *s = arg;
	listener *l = s->owner;
	bool oversize = summary->reason == REASON_oversize ||
			summary->reason == REASON_upstream_oversize;

	s->client = NULL; /* the relay closed it */
	if (oversize && summary->oversize_len) {
		log_line(LOG_LEVEL_WARN, "frame too large",
			 "listener=%s client=%s side=%s length=%" PRIu32
			 " max_frame=%" PRIu32,
			 l->params.name, s->peer_name,
			 summary->oversize_side == RELAY_CLIENT ? "client" : "upstream",
			 summary->oversize_len, l->params.relay.max_frame);
	}
	session_end(s, summary->reason, summary, NULL);
}

static void session_rpc_done(const rpc_summary *summary, void *arg)
{
	session *s = arg;
	listener *l = s->owner;

	s->client = NULL; /* the rpc client closed it */
	if (summary->reason == REASON_oversize && summary->oversize_len)
		log_line(LOG_LEVEL_WARN, "frame too large",
			 "listener=%s client=%s side=client length=%" PRIu32
			 " max_frame=%" PRIu32,
			 l->params.name, s->peer_name, summary->oversize_len,
			 l->params.relay.max_frame);
	session_end(s, summary->reason, NULL, summary);
}

/* --- a new connection ---------------------------------------------------- */

static void session_main(void *arg)
{
	session *s = arg;
	listener *l = s->owner;
	poll_desc *upstream = NULL;

	int index = upstream_connect(&l->pool, (const struct sockaddr *)&s->peer,
				     &upstream);
	if (index < 0) {
		session_end(s, index == -EHOSTUNREACH ? REASON_no_upstream
						      : REASON_connect_failed, NULL, NULL);
		return;
	}
	s->server = index;
	int rc = relay_start(l->relays, s->client, upstream, &l->params.relay,
			     session_relay_done, s);
	if (rc < 0) {
		pd_close(upstream);
		session_end(s, REASON_no_memory, NULL, NULL);
	}
}

/* The checks that need no I/O; false when the connection was refused. */
static bool session_admit(session *s)
{
	listener *l = s->owner;
	const struct sockaddr *peer = (const struct sockaddr *)&s->peer;

	if (l->params.acl && !acl_check(l->params.acl, peer)) {
		session_end(s, REASON_denied, NULL, NULL);
		return false;
	}
	if (l->params.max_per_client == 0)
		return true;
	if (peer_key_from_sockaddr(peer, &s->key) < 0)
		return true;
	if (peer_table_acquire(&l->peers, &s->key, l->params.max_per_client) < 0) {
		session_end(s, REASON_client_limit, NULL, NULL);
		return false;
	}
	s->peer_counted = true;
	return true;
}

static void session_begin(listener *l, poll_desc *client,
			  const struct sockaddr_storage *peer)
{
	session *s = calloc(1, sizeof(*s));
	coro_opts opts = {.name = "session"};

	l->counters[COUNTER_ACCEPTED]++;
	l->counters[COUNTER_ACTIVE]++;
	if (!s) {
		l->counters[COUNTER_ACTIVE]--;
		l->counters[COUNTER_CLOSED + REASON_no_memory]++;
		pd_close(client);
		return;
	}
	*s = (session){.owner = l, .client = client, .peer = *peer,
		       .server = -1, .accepted_ns = sched_now()};
	netaddr_format((const struct sockaddr *)peer, s->peer_name,
		       sizeof(s->peer_name));
	if (!session_admit(s))
		return;
	if (l->rpc) {
		/* No coroutine and no upstream connection of its own. */
		if (rpc_client_start(l->rpc, client, (const struct sockaddr *)peer,
				     session_rpc_done, s) < 0)
			session_end(s, REASON_no_memory, NULL, NULL);
		return;
	}
	if (!coro_spawn(session_main, s, &opts))
		session_end(s, REASON_no_memory, NULL, NULL);
}

/* --- accepting ----------------------------------------------------------- */

static bool listener_full(const listener *l)
{
	return l->params.max_connections &&
	       l->counters[COUNTER_ACTIVE] >= l->params.max_connections;
}

static void acceptor_main(void *arg)
{
	listener *l = arg;

	while (!l->stopping) {
		if (listener_full(l)) {
			/* Leave the rest in the kernel's queue until a slot frees. */
			log_ratelimited(&l->full_log, LOG_LEVEL_WARN,
					"connection limit reached, accepting paused",
					"listener=%s max_connections=%u",
					l->params.name, l->params.max_connections);
			l->waiting_for_slot = coro_self();
			coro_park("connection limit");
			continue;
		}
		struct sockaddr_storage peer;
		socklen_t peer_len = sizeof(peer);
		poll_desc *client = NULL;
		int rc = pd_accept(l->pd, &client, &peer, &peer_len);
		if (l->stopping)
			break;
		if (rc == -EBADF || rc == -EINVAL)
			break; /* the socket is gone: nothing more to accept */
		if (rc < 0) {
			l->counters[COUNTER_ACCEPT_ERRORS]++;
			log_ratelimited(&l->accept_error_log, LOG_LEVEL_WARN, "accept failed",
					"listener=%s error=%s", l->params.name,
					strerror(-rc));
			/* Unknown trouble: do not spin on it. */
			coro_sleep(10 * 1000 * 1000);
			continue;
		}
		session_begin(l, client, &peer);
	}
	l->acceptor = NULL;
}

/* --- lifecycle ----------------------------------------------------------- */

int listener_open(listener *l, const listener_params *params,
		  relay_group *relays, int listen_fd)
{
	int rc;

	*l = (listener){.params = *params, .relays = relays,
			.accept_error_log = LOG_RATELIMIT_INIT(5),
			.full_log = LOG_RATELIMIT_INIT(1)};
	rc = upstream_pool_init(&l->pool, params->name, &params->upstream,
				params->balance, params->servers,
				params->server_count, params->names,
				params->name_count, params->seed);
	if (rc < 0)
		return rc;
	if (params->rpc_mode && (rc = rpc_listener_open(l, &l->rpc)) < 0)
		goto fail_pool;
	if (l->rpc)
		l->pool.hooks = (upstream_hooks){rpc_listener_server_added,
						 rpc_listener_server_removed, l->rpc};
	if (params->max_per_client &&
	    (rc = peer_table_init(&l->peers, 64)) < 0)
		goto fail_rpc;
	if ((rc = pd_open(listen_fd, &l->pd)) < 0)
		goto fail_peers;
	l->bound_len = sizeof(l->bound);
	if (getsockname(pd_fd(l->pd), (struct sockaddr *)&l->bound,
			&l->bound_len) < 0) {
		rc = -errno;
		pd_close(l->pd);
		goto fail_peers;
	}
	return 0;
fail_peers:
	peer_table_free(&l->peers);
fail_rpc:
	rpc_listener_free(l->rpc);
	l->rpc = NULL;
fail_pool:
	upstream_pool_free(&l->pool);
	return rc;
}

int listener_start(listener *l)
{
	coro_opts opts = {.name = "acceptor"};
	int rc = upstream_pool_start(&l->pool);

	if (rc < 0)
		return rc;
	if (l->rpc && (rc = rpc_listener_start(l->rpc)) < 0)
		return rc;
	l->acceptor = coro_spawn(acceptor_main, l, &opts);
	return l->acceptor ? 0 : -ENOMEM;
}

void listener_stop(listener *l)
{
	if (l->stopping)
		return;
	l->stopping = true;
	upstream_pool_stop(&l->pool);
	listener_wake_acceptor(l);
	if (l->pd) {
		pd_close(l->pd); /* wakes the acceptor with -EBADF */
		l->pd = NULL;
	}
}

void listener_drain(listener *l)
{
	relay_drain(l->relays);
	if (l->rpc)
		rpc_listener_drain(l->rpc);
}

void listener_close_all(listener *l, reason_code reason)
{
	relay_close_all(l->relays, reason);
	if (l->rpc)
		rpc_listener_close_all(l->rpc, reason);
}

void listener_free(listener *l)
{
	rpc_listener_free(l->rpc);
	l->rpc = NULL;
	peer_table_free(&l->peers);
	upstream_pool_free(&l->pool);
}
