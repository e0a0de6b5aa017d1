#include "proxy/listener.h"
#include "proxy/outlier.h"

#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proxy/log.h"
#include "proxy/netaddr.h"

typedef struct session {
	listener *owner;
	poll_desc *client;
	/* The client: the TCP peer, or the one its PROXY header named. */
	struct sockaddr_storage peer;
	char peer_name[NETADDR_STRLEN];
	/* With accept_proxy: the TCP peer (the balancer), and the address the
	 * client reached when the header named it (else unset). */
	char via_name[NETADDR_STRLEN];
	struct sockaddr_storage local;
	bool has_local;
	peer_key key;
	bool peer_counted;
	int server;                  /* upstream index, -1 before connect */
	int64_t accepted_ns;
	uint32_t handoffs;           /* times it came from another shard */
	tls_conn *tls;               /* a TLS listener's client, else NULL */
	tls_conn *upstream_tls;      /* upstream_tls: its upstream, else NULL */
} session;

/* --- the end of a connection --------------------------------------------- */

/* What a TLS client's handshake settled, for its access line: each key
 * "" when there is nothing to say (the pair is then left out, proxy/log.h). */
typedef struct access_tls {
	const char *cert_key, *cert, *alpn_key, *alpn;
} access_tls;

static access_tls access_tls_of(const session *s)
{
	/* Static: coroutine stacks are small, and one line is made at a
	 * time in a shard. */
	static char subject[LOG_VALUE_MAX], alpn[256];
	access_tls a = { "", "", "", "" };

	if (!s->tls)
		return a;
	if (tls_conn_peer_subject(s->tls, subject, sizeof(subject)))
		a.cert_key = "client_cert", a.cert = subject;
	if (tls_conn_alpn(s->tls, alpn, sizeof(alpn)))
		a.alpn_key = "alpn", a.alpn = alpn;
	return a;
}

static void access_log(session *s, reason_code reason,
		       const relay_summary *summary)
{
	listener *l = s->owner;
	access_tls tls = access_tls_of(s);
	const char *upstream = s->server >= 0 ? l->pool.servers[s->server].name : "-";
	int64_t ended = summary ? summary->ended_ns : sched_now();
	uint64_t frames[2] = {0, 0}, bytes[2] = {0, 0};

	if (summary) {
		memcpy(frames, summary->frames, sizeof(frames));
		memcpy(bytes, summary->bytes, sizeof(bytes));
	}
/* peer= (the TCP peer) only with accept_proxy, where client= may differ. */
#define ACCESS_FMT(peer) \
	"listener=%s client=%s" peer " upstream=%s duration_ms=%.3f " \
	"client_frames=%" PRIu64 " client_bytes=%" PRIu64 " " \
	"upstream_frames=%" PRIu64 " upstream_bytes=%" PRIu64 " reason=%s " \
	"%s=%s %s=%s"
	log_line(LOG_LEVEL_INFO, "access",
		 s->via_name[0] ? ACCESS_FMT(" peer=%s") : ACCESS_FMT("%s"),
		 l->params.name, s->peer_name, s->via_name, upstream,
		 (double)(ended - s->accepted_ns) / 1e6, frames[RELAY_CLIENT],
		 bytes[RELAY_CLIENT], frames[RELAY_UPSTREAM],
		 bytes[RELAY_UPSTREAM], reason_name(reason), tls.cert_key,
		 tls.cert, tls.alpn_key, tls.alpn);
}

/* An rpc client's line: its requests (client_frames) and how each ended:
 * replied (upstream_frames), lost (failed: upstream_lost, no_upstream) or
 * dropped (unanswered when the client closed). */
static void access_log_rpc(session *s, const rpc_summary *summary)
{
	listener *l = s->owner;
	uint64_t dropped = summary->requests - summary->replied - summary->lost;

#define ACCESS_RPC_FMT(peer) \
	"listener=%s client=%s" peer " upstream=- duration_ms=%.3f " \
	"client_frames=%" PRIu64 " client_bytes=%" PRIu64 " " \
	"upstream_frames=%" PRIu64 " upstream_bytes=%" PRIu64 " " \
	"replied=%" PRIu64 " lost=%" PRIu64 " dropped=%" PRIu64 " reason=%s"
	log_line(LOG_LEVEL_INFO, "access",
		 s->via_name[0] ? ACCESS_RPC_FMT(" peer=%s") : ACCESS_RPC_FMT("%s"),
		 l->params.name, s->peer_name, s->via_name,
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

	if ((summary && summary->handed_off) || (rpc && rpc->handed_off)) {
		/* It lives on in the next shard, which logs and counts it
		 * when it ends. */
		l->counters[COUNTER_HANDOFFS]++;
	} else {
		if (l->params.access_log && rpc)
			access_log_rpc(s, rpc);
		else if (l->params.access_log)
			access_log(s, reason, summary);
		l->counters[COUNTER_CLOSED + reason]++;
	}
	l->counters[COUNTER_ACTIVE]--;
	if (s->peer_counted)
		peer_table_release(&l->peers, &s->key);
	if (s->server >= 0)
		upstream_release(&l->pool, s->server);
	if (s->client)
		pd_close(s->client);
	tls_conn_free(s->tls); /* after its relay: nothing uses it now */
	tls_conn_free(s->upstream_tls);
	free(s);
	listener_wake_acceptor(l);
}

/* What the connection says of its server (proxy/outlier.h): a reset or
 * a frame it cut short is its fault; one that carried a frame back and
 * ended cleanly is a good outcome; the rest (the client's doing, our
 * timeouts, a handoff) say nothing. */
static void session_outcome(const session *s, const relay_summary *summary)
{
	upstream_pool *pool = &s->owner->pool;

	if (s->server < 0 || summary->handed_off)
		return;
	switch (summary->reason) {
	case REASON_upstream_reset:
		outlier_error(pool, (uint32_t)s->server, "resets");
		return;
	case REASON_upstream_truncated:
		outlier_error(pool, (uint32_t)s->server, "truncated_frames");
		return;
	case REASON_client_eof:
	case REASON_upstream_eof:
	case REASON_drain:
		if (summary->frames[RELAY_UPSTREAM] > 0)
			outlier_success(pool, (uint32_t)s->server);
		return;
	default:
		return;
	}
}

static void session_relay_done(const relay_summary *summary, void *arg)
{
	session *s = arg;
	listener *l = s->owner;
	bool oversize = summary->reason == REASON_oversize ||
			summary->reason == REASON_upstream_oversize;

	s->client = NULL; /* the relay closed it */
	session_outcome(s, summary);
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

/* --- the PROXY protocol (proxy/proxy_header.h) --------------------------- */

static void proxy_header_rejected(session *s, const char *error)
{
	listener *l = s->owner;

	l->counters[COUNTER_PROXY_HEADERS_REJECTED]++;
	log_ratelimited(&l->proxy_header_log, LOG_LEVEL_WARN,
			"bad proxy header", "listener=%s peer=%s error=%s",
			l->params.name, s->via_name, error);
	session_end(s, REASON_bad_proxy_header, NULL, NULL);
}

/*
 * Feed p from the client within connect_timeout, asking for no more bytes
 * than proxy_header_need says are the header's: the first frame stays in
 * the socket (or, with io_uring completion I/O, in the pd's queue) for the
 * relay. The last read's result: > 0 once p has finished, 0 at EOF, -errno.
 */
static ssize_t read_header(session *s, proxy_header_parser *p)
{
	listener *l = s->owner;
	uint8_t buf[256];
	ssize_t n = 1;
	size_t used;

	pd_set_deadline(s->client, PD_READ,
			sched_now() + l->params.upstream.connect_timeout_ns);
	while (p->status == PROXY_HEADER_MORE) {
		uint32_t need = proxy_header_need(p);
		n = pd_read(s->client, buf, need < sizeof(buf) ? need : sizeof(buf));
		if (n <= 0)
			break;
		proxy_header_feed(p, buf, (size_t)n, &used);
	}
	pd_set_deadline(s->client, PD_READ, 0);
	return n;
}

/* The header, and the client it names; false when the session was ended. */
static bool session_read_header(session *s)
{
	listener *l = s->owner;
	proxy_header_parser p;

	proxy_header_init(&p, l->params.accept_proxy);
	ssize_t n = read_header(s, &p);
	if (n < 0) {
		proxy_header_rejected(s, n == -ETIMEDOUT ? "timeout"
							 : strerror((int)-n));
		return false;
	}
	if (n == 0 || p.status != PROXY_HEADER_DONE) {
		proxy_header_rejected(s, proxy_header_status_name(
			n == 0 ? PROXY_HEADER_ERR_TRUNCATED : p.status));
		return false;
	}
	l->counters[COUNTER_PROXY_HEADERS_ACCEPTED]++;
	const proxy_header_info *info = proxy_header_result(&p);
	if (info->has_addr) {
		s->peer = info->src;
		s->local = info->dst;
		s->has_local = true;
		netaddr_format((const struct sockaddr *)&s->peer, s->peer_name,
			       sizeof(s->peer_name));
	}
	return true;
}

/* The header naming the client, first on a new upstream connection. */
static int session_send_header(session *s, poll_desc *upstream)
{
	listener *l = s->owner;
	uint8_t buf[PROXY_HEADER_WRITE_MAX];
	socklen_t len = sizeof(s->local);

	if (!s->has_local &&
	    getsockname(pd_fd(s->client), (struct sockaddr *)&s->local, &len) < 0)
		return -errno;
	int n = proxy_header_write(l->params.send_proxy,
				   (const struct sockaddr *)&s->peer,
				   (const struct sockaddr *)&s->local, buf,
				   sizeof(buf));
	if (n < 0)
		return n;
	pd_set_deadline(upstream, PD_WRITE,
			sched_now() + l->params.upstream.connect_timeout_ns);
	ssize_t rc = pd_write_full(upstream, buf, (size_t)n);
	pd_set_deadline(upstream, PD_WRITE, 0);
	return rc < 0 ? (int)rc : 0;
}

/* --- TLS termination (proxy/tls.h) --------------------------------------- */

/* The handshake, before any upstream is touched; false when it failed
 * (the session has ended, reason tls_handshake). */
static bool session_tls(session *s)
{
	listener *l = s->owner;
	char why[TLS_WHY_MAX] = "";

	if (!(s->tls = tls_conn_new(l->params.tls, s->client))) {
		session_end(s, REASON_no_memory, NULL, NULL);
		return false;
	}
	int64_t timeout = l->params.tls_handshake_timeout_ns;
	int rc = tls_handshake(s->tls, timeout > 0 ? sched_now() + timeout : 0,
			       why, sizeof(why));
	if (rc < 0) {
		l->counters[COUNTER_TLS_HANDSHAKE_FAILURES]++;
		log_ratelimited(&l->tls_log, LOG_LEVEL_WARN,
				"tls handshake failed",
				"listener=%s client=%s error=%s", l->params.name,
				s->peer_name, why);
		session_end(s, REASON_tls_handshake, NULL, NULL);
		return false;
	}
	l->counters[COUNTER_TLS_HANDSHAKES]++;
	l->counters[COUNTER_TLS_VERSIONS + tls_conn_version(s->tls)]++;
	return true;
}

/* TLS to the upstream, verified, within connect_timeout; false when it
 * failed (the session has ended, reason upstream_tls_handshake). */
static bool session_upstream_tls(session *s, poll_desc *upstream)
{
	listener *l = s->owner;
	char why[TLS_WHY_MAX] = "", addr[INET6_ADDRSTRLEN];
	const char *name = upstream_tls_name(&l->pool, (uint32_t)s->server,
					     addr, sizeof(addr));

	if (!(s->upstream_tls = tls_conn_new_client(l->params.upstream.tls,
						    upstream, name))) {
		pd_close(upstream);
		session_end(s, REASON_no_memory, NULL, NULL);
		return false;
	}
	int64_t timeout = l->params.upstream.connect_timeout_ns;
	int rc = tls_handshake(s->upstream_tls,
			       timeout > 0 ? sched_now() + timeout : 0, why,
			       sizeof(why));
	if (rc == 0) {
		upstream_server_answered(&l->pool, (uint32_t)s->server);
		return true;
	}
	/* The server accepted and then failed TLS (its certificate, its
	 * protocol): a failure toward fail_threshold, as a garbled rpc
	 * reply is. Out of memory here is ours, not the server's. */
	if (rc != -ENOMEM)
		upstream_server_failed(&l->pool, (uint32_t)s->server);
	log_ratelimited(&l->upstream_tls_log, LOG_LEVEL_WARN,
			"upstream tls handshake failed",
			"listener=%s client=%s upstream=%s name=%s error=%s",
			l->params.name, s->peer_name,
			l->pool.servers[s->server].name, name, why);
	pd_close(upstream);
	session_end(s, REASON_upstream_tls_handshake, NULL, NULL);
	return false;
}

/* --- a new connection ---------------------------------------------------- */

static void session_main(void *arg)
{
	session *s = arg;
	listener *l = s->owner;
	poll_desc *upstream = NULL;

	if (l->params.tls && !session_tls(s))
		return;
	int index = upstream_connect(&l->pool, (const struct sockaddr *)&s->peer,
				     &upstream);
	if (index < 0) {
		session_end(s, index == -EHOSTUNREACH ? REASON_no_upstream :
			       index == -EBUSY        ? REASON_queue_timeout
						      : REASON_connect_failed, NULL, NULL);
		return;
	}
	s->server = index;
	if (l->params.send_proxy && session_send_header(s, upstream) < 0) {
		pd_close(upstream);
		session_end(s, REASON_connect_failed, NULL, NULL);
		return;
	}
	if (l->params.upstream.tls && !session_upstream_tls(s, upstream))
		return;
	relay_params rp = l->params.relay;
	rp.client_tls = s->tls;
	rp.upstream_tls = s->upstream_tls;
	int rc = relay_start(l->relays, s->client, upstream, &rp,
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

/* Admitted: an rpc client, or connect (in this coroutine, or a new one). */
static void session_proceed(session *s, bool in_coroutine)
{
	listener *l = s->owner;
	coro_opts opts = {.name = "session"};

	if (!session_admit(s))
		return;
	if (l->rpc) {
		/* No coroutine and no upstream connection of its own. */
		if (rpc_client_start(l->rpc, s->client,
				     (const struct sockaddr *)&s->peer,
				     session_rpc_done, s) < 0)
			session_end(s, REASON_no_memory, NULL, NULL);
		return;
	}
	if (in_coroutine)
		session_main(s);
	else if (!coro_spawn(session_main, s, &opts))
		session_end(s, REASON_no_memory, NULL, NULL);
}

static void session_header_main(void *arg)
{
	session *s = arg;

	if (session_read_header(s))
		session_proceed(s, true);
}

/* accept_proxy: only a trusted peer may name a client; the header is read
 * in a coroutine of the session's own. */
static void session_expect_header(session *s)
{
	listener *l = s->owner;
	coro_opts opts = {.name = "session"};

	memcpy(s->via_name, s->peer_name, sizeof(s->via_name));
	if (l->params.accept_proxy_from &&
	    !acl_check(l->params.accept_proxy_from,
		       (const struct sockaddr *)&s->peer)) {
		session_end(s, REASON_denied, NULL, NULL);
		return;
	}
	if (!coro_spawn(session_header_main, s, &opts))
		session_end(s, REASON_no_memory, NULL, NULL);
}

static void session_begin(listener *l, poll_desc *client,
			  const struct sockaddr_storage *peer)
{
	session *s = calloc(1, sizeof(*s));

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
	if (l->params.accept_proxy != PROXY_HEADER_OFF) {
		session_expect_header(s);
		return;
	}
	session_proceed(s, false);
}

/* --- accepting ----------------------------------------------------------- */

/* How often an acceptor paused by the overload guard looks again. */
#define LISTENER_MEMORY_WAIT_NS (10 * 1000 * 1000)

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
		if (l->relays->overload &&
		    !overload_may_accept(l->relays->overload)) {
			/* Near the shard's memory budget: new connections wait
			 * in the kernel's queue until memory comes back. */
			coro_sleep(LISTENER_MEMORY_WAIT_NS);
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
			.full_log = LOG_RATELIMIT_INIT(1),
			.proxy_header_log = LOG_RATELIMIT_INIT(5),
			.tls_log = LOG_RATELIMIT_INIT(5),
			.upstream_tls_log = LOG_RATELIMIT_INIT(5)};
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

/* --- handoff (proxy/handoff.h) ------------------------------------------- */

static socklen_t peer_length(const struct sockaddr_storage *peer)
{
	return peer->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
					   : sizeof(struct sockaddr_in);
}

static void handoff_record(const session *s, const relay_state *st,
			   handoff_conn *rec)
{
	const listener *l = s->owner;

	memset(rec, 0, sizeof(*rec));
	snprintf(rec->listener, sizeof(rec->listener), "%s", l->params.name);
	if (s->server >= 0)
		snprintf(rec->upstream, sizeof(rec->upstream), "%s",
			 l->pool.servers[s->server].name);
	rec->peer = s->peer;
	rec->peer_len = peer_length(&s->peer);
	snprintf(rec->via, sizeof(rec->via), "%s", s->via_name);
	for (int side = 0; side < 2; side++) {
		rec->done[side] = st->done[side];
		rec->frames[side] = st->frames[side];
		rec->bytes[side] = st->bytes[side];
	}
	rec->first_eof = (uint16_t)st->first_eof;
	rec->accepted_ns = s->accepted_ns;
	rec->started_ns = st->started_ns;
	rec->last_active_ns = st->last_active_ns;
	rec->handoffs = s->handoffs + 1;
}

/* Send one connection's record and fds: 0 when it went (the caller lets
 * it go), -EAGAIN when the channel is full (it stays; the next sweep tries
 * again), another -errno when the new shard is gone (no more handoffs). */
static int offer_send(listener_handoff *h, const session *s,
		      const handoff_conn *rec, int fd0, int fd1)
{
	int rc = handoff_send_conn(h->fd, rec, fd0, fd1);

	if (rc == -EAGAIN)
		return rc;
	if (rc < 0) {
		h->failed = true;
		log_line(LOG_LEVEL_WARN, "handoff stopped: the new shard is gone, keeping the rest",
			 "listener=%s error=%s lost=%u", s->owner->params.name,
			 strerror(-rc), h->unacked);
		return rc;
	}
	h->unacked++;
	log_line(LOG_LEVEL_DEBUG, "handed off", "listener=%s client=%s",
		 s->owner->params.name, s->peer_name);
	return 0;
}

/* on_rest: send the connection on; on -EAGAIN (the channel is full) it
 * stays and the next sweep tries again. */
static void session_offer(relay_conn *r, void *done_arg, void *arg)
{
	session *s = done_arg;
	listener_handoff *h = arg;
	relay_state st;
	handoff_conn rec;
	int fds[2];

	if (h->failed || h->unacked >= HANDOFF_WINDOW ||
	    relay_export(r, &st, &fds[0], &fds[1]) < 0)
		return;
	handoff_record(s, &st, &rec);
	int rc = offer_send(h, s, &rec, fds[0], fds[1]);
	close(fds[0]);
	close(fds[1]);
	if (rc == 0)
		relay_handed_off(r);
}

bool listener_handoff_acks(listener_handoff *h)
{
	if (h->failed)
		return false;
	int acks = handoff_recv_acks(h->fd);
	if (acks >= 0) {
		h->unacked -= (uint32_t)acks < h->unacked ? (uint32_t)acks : h->unacked;
		return true;
	}
	h->failed = true;
	log_line(LOG_LEVEL_WARN, "handoff stopped: the new shard is gone, keeping the rest",
		 "lost=%u", h->unacked);
	return false;
}

/* The same for an rpc client with nothing in flight. The record carries
 * its socket twice (the format has two fds). */
static void session_offer_rpc(rpc_client *c, void *done_arg, void *arg)
{
	session *s = done_arg;
	listener_handoff *h = arg;
	rpc_summary so_far;
	handoff_conn rec;
	int fd;

	if (h->failed || h->unacked >= HANDOFF_WINDOW ||
	    rpc_client_export(c, &so_far, &fd) < 0)
		return;
	relay_state st = {.frames = {so_far.requests, so_far.replied},
			  .bytes = {so_far.request_bytes, so_far.reply_bytes},
			  .started_ns = s->accepted_ns,
			  .last_active_ns = sched_now()};
	handoff_record(s, &st, &rec);
	rec.mode = HANDOFF_MODE_RPC;
	rec.lost = so_far.lost;
	int rc = offer_send(h, s, &rec, fd, fd);
	close(fd);
	if (rc == 0)
		rpc_client_handed_off(c);
}

void listener_handoff_begin(listener *l, listener_handoff *h)
{
	l->handoff = h;
	if (l->rpc) {
		rpc_listener_set_rest_hook(l->rpc, session_offer_rpc, h);
	} else {
		l->relays->on_rest = session_offer;
		l->relays->on_rest_arg = h;
	}
	listener_handoff_sweep(l);
}

void listener_handoff_sweep(listener *l)
{
	if (!l->handoff)
		return;
	if (l->rpc)
		rpc_listener_offer_all(l->rpc, session_offer_rpc, l->handoff);
	else
		relay_offer_all(l->relays);
}

void listener_handoff_end(listener *l)
{
	l->handoff = NULL;
	if (l->rpc)
		rpc_listener_set_rest_hook(l->rpc, NULL, NULL);
	l->relays->on_rest = NULL;
	l->relays->on_rest_arg = NULL;
	relay_resume_all(l->relays);
}

static int server_by_name(const listener *l, const char *name)
{
	for (uint32_t i = 0; name[0] && i < l->pool.count; i++)
		if (strcmp(l->pool.servers[i].name, name) == 0)
			return (int)i;
	return -1;
}

static relay_state state_of(const handoff_conn *rec)
{
	relay_state st = {.first_eof = rec->first_eof < REASON_COUNT
					       ? (reason_code)rec->first_eof
					       : REASON_NONE,
			  .started_ns = rec->started_ns,
			  .last_active_ns = rec->last_active_ns};

	for (int side = 0; side < 2; side++) {
		st.done[side] = rec->done[side] != 0;
		st.frames[side] = rec->frames[side];
		st.bytes[side] = rec->bytes[side];
	}
	return st;
}

/* An rpc client handed over: fds[0] and fds[1] are the same socket. */
static void listener_adopt_rpc(listener *l, const handoff_conn *rec,
			       const int fds[2])
{
	session *s = calloc(1, sizeof(*s));
	poll_desc *client = NULL;

	close(fds[1]);
	if (!s || pd_open(fds[0], &client) < 0) {
		log_line(LOG_LEVEL_WARN, "handed-over connection closed",
			 "listener=%s reason=%s", l->params.name, "no memory");
		free(s);
		close(fds[0]);
		return;
	}
	l->counters[COUNTER_ACTIVE]++;
	*s = (session){.owner = l, .client = client, .peer = rec->peer,
		       .server = -1, .accepted_ns = rec->accepted_ns,
		       .handoffs = rec->handoffs};
	netaddr_format((const struct sockaddr *)&s->peer, s->peer_name,
		       sizeof(s->peer_name));
	snprintf(s->via_name, sizeof(s->via_name), "%s", rec->via);
	log_line(LOG_LEVEL_DEBUG, "adopted", "listener=%s client=%s",
		 l->params.name, s->peer_name);
	if (l->params.max_per_client &&
	    peer_key_from_sockaddr((const struct sockaddr *)&s->peer, &s->key) == 0 &&
	    peer_table_acquire(&l->peers, &s->key, UINT32_MAX) == 0)
		s->peer_counted = true;
	rpc_summary so_far = {.requests = rec->frames[0], .replied = rec->frames[1],
			      .lost = rec->lost, .request_bytes = rec->bytes[0],
			      .reply_bytes = rec->bytes[1]};
	if (rpc_client_adopt(l->rpc, client, (const struct sockaddr *)&s->peer,
			     &so_far, session_rpc_done, s) < 0)
		session_end(s, REASON_no_memory, NULL, NULL);
}

void listener_adopt(listener *l, const handoff_conn *rec, const int fds[2])
{
	if (rec->mode == HANDOFF_MODE_RPC) {
		listener_adopt_rpc(l, rec, fds);
		return;
	}
	session *s = calloc(1, sizeof(*s));
	poll_desc *client = NULL, *upstream = NULL;

	if (!s || pd_open(fds[0], &client) < 0) {
		log_line(LOG_LEVEL_WARN, "handed-over connection closed",
			 "listener=%s reason=%s", l->params.name, "no memory");
		free(s);
		close(fds[0]);
		close(fds[1]);
		return;
	}
	if (pd_open(fds[1], &upstream) < 0) {
		log_line(LOG_LEVEL_WARN, "handed-over connection closed",
			 "listener=%s reason=%s", l->params.name, "no memory");
		free(s);
		pd_close(client);
		close(fds[1]);
		return;
	}
	/* Accepted (and counted so) by the shard before: only active here. */
	l->counters[COUNTER_ACTIVE]++;
	*s = (session){.owner = l, .client = client, .peer = rec->peer,
		       .server = server_by_name(l, rec->upstream),
		       .accepted_ns = rec->accepted_ns, .handoffs = rec->handoffs};
	netaddr_format((const struct sockaddr *)&s->peer, s->peer_name,
		       sizeof(s->peer_name));
	snprintf(s->via_name, sizeof(s->via_name), "%s", rec->via);
	/* Counted against max_per_client as before, never refused now. */
	if (l->params.max_per_client &&
	    peer_key_from_sockaddr((const struct sockaddr *)&s->peer, &s->key) == 0 &&
	    peer_table_acquire(&l->peers, &s->key, UINT32_MAX) == 0)
		s->peer_counted = true;
	if (s->server >= 0)
		upstream_adopt(&l->pool, s->server);
	relay_state st = state_of(rec);
	if (relay_adopt(l->relays, client, upstream, &l->params.relay, &st,
			session_relay_done, s) < 0) {
		pd_close(upstream);
		session_end(s, REASON_no_memory, NULL, NULL);
	}
}
