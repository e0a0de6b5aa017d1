#include "proxy/server.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "proxy/counters.h"
#include "proxy/handoff.h"
#include "proxy/log.h"
#include "proxy/netaddr.h"

/* While draining, how often to look whether everything has finished. */
#define SERVER_DRAIN_CHECK_NS (20 * 1000 * 1000)
/* How often a shard copies its counters into its slot: fresh enough for a
 * once-a-second scrape, rare enough to cost nothing. */
#define SERVER_PUBLISH_NS (100 * 1000 * 1000)
/* How long past drain_timeout a lingering close may last (below the
 * supervisor's 2 s before SIGKILL). */
#define SERVER_LINGER_GRACE_NS (1000 * 1000 * 1000)
/* Idle relay buffers each listener keeps for connections that wake up. */
#define SERVER_BUFFER_POOL_MAX 256
/* How often the pools give back the buffers that period did not need. */
#define SERVER_POOL_TRIM_NS (1000 * 1000 * 1000)

typedef struct server {
	const server_settings *settings;
	listener *listeners;
	uint32_t opened;
	relay_group *relays;   /* one per listener: each pools its own buffer size */
	resolver *resolver;    /* NULL when no listener has server names */
	uint64_t published_changes; /* the pools' changes when names were written */
	coro *boot;            /* waits for the names' first looks */
	int boot_rc;
	poll_desc *signals;
	sched_timer drain_check;
	sched_timer publish;
	int64_t drain_deadline;
	int64_t retire_deadline;
	listener_handoff handoff; /* retiring: the channel to the successor */
	poll_desc *adopt;  /* the channel from the shard this one replaces */
	uint64_t adopted;
	poll_desc *handoff_pd; /* handoff.fd's, for the ACKs' readiness */
	bool retiring;     /* reload: no accepting, connections go on */
	bool handoff_ended; /* the handoff failed: no more sweeps */
	bool draining;
	bool forced;
	/* The overload guard (proxy/overload.h): every relay group counts
	 * into it; past the budget `shed` closes the biggest holders. */
	overload overload;
	sched_timer shed;
	log_ratelimit shed_log;
	int64_t trimmed_at;   /* the pools' last trim */
} server;

static uint64_t server_connections(const server *srv)
{
	uint64_t active = 0;

	for (uint32_t i = 0; i < srv->opened; i++)
		active += srv->listeners[i].counters[COUNTER_ACTIVE];
	return active;
}

/* Client sockets still lingering after their close (proxy/linger.h). */
static uint64_t server_lingering(const server *srv)
{
	uint64_t lingering = 0;

	for (uint32_t i = 0; i < srv->opened; i++)
		lingering += srv->relays[i].linger.active;
	return lingering;
}

/* --- counters for the supervisor (proxy/counters.h) ------------------------ */

static void publish_values(uint64_t *out, const uint64_t *values, uint32_t count)
{
	for (uint32_t k = 0; k < count; k++)
		shard_slot_store(&out[k], values[k]);
}

/* The rows of servers from names move as answers change: names are
 * written again then (`names`), under the row's sequence. */
static void publish_upstreams(shard_slot *slot, uint32_t listener_index,
			      const listener *l, uint32_t *next, bool names)
{
	const upstream_pool *pool = &l->pool;
	int64_t now = sched_now();

	for (uint32_t i = 0; i < pool->count && *next < SHARD_MAX_UPSTREAMS; i++) {
		const upstream_server *us = &pool->servers[i];
		if (!upstream_server_in_set(pool, i))
			continue;
		shard_slot_upstream *out = &slot->upstreams[(*next)++];
		uint64_t *v = out->values;
		if (names || shard_slot_get_state(slot) == SHARD_STATE_STARTING)
			shard_slot_upstream_name(out, us->name, listener_index,
						 upstream_server_origin(pool, i));
		publish_values(v, us->counters, COUNTER_UPSTREAM_VALUES);
		/* A gauge of the moment, not kept between publishes. */
		shard_slot_store(&v[COUNTER_UP],
				 upstream_server_usable(pool, i, now) ? 1 : 0);
		shard_slot_store(&v[COUNTER_WEIGHT], upstream_server_weight(us));
		if (!l->rpc)
			shard_slot_store(&v[COUNTER_UPSTREAM_ACTIVE],
					 pool->balancer.servers[i].active);
		if (l->rpc)
			shard_slot_store(&v[COUNTER_RPC_INFLIGHT],
					 rpc_listener_inflight(l->rpc, i));
	}
}

static void name_values(const upstream_line *line,
			uint64_t v[COUNTER_NAME_VALUES])
{
	v[COUNTER_NAME_RESOLUTIONS] = line->name.resolutions;
	v[COUNTER_NAME_FAILURES] = line->name.failures;
	v[COUNTER_NAME_SERVERS] = line->servers;
	v[COUNTER_NAME_RESOLVED] = line->name.answered ? 1 : 0;
}

/* The listener's server names: a row each (named while STARTING; lines
 * come from the config and stay), and their sum as the listener's dns_*
 * families. */
static void publish_names(shard_slot *slot, uint32_t listener_index,
			  listener *l, uint32_t *next)
{
	const upstream_pool *pool = &l->pool;
	uint64_t sum[COUNTER_NAME_VALUES] = {0};
	bool starting = shard_slot_get_state(slot) == SHARD_STATE_STARTING;

	for (uint32_t i = 0; i < pool->line_count; i++) {
		uint64_t v[COUNTER_NAME_VALUES];
		name_values(&pool->lines[i], v);
		for (uint32_t k = 0; k < COUNTER_NAME_VALUES; k++)
			sum[k] += v[k];
		if (*next >= SHARD_MAX_NAMES)
			continue;
		shard_slot_server_name *row = &slot->names[(*next)++];
		if (starting) {
			shard_slot_name(row->name, pool->names[i].host);
			row->listener = listener_index;
		}
		publish_values(row->values, v, COUNTER_NAME_VALUES);
	}
	l->counters[COUNTER_DNS_RESOLUTIONS] = sum[COUNTER_NAME_RESOLUTIONS];
	l->counters[COUNTER_DNS_FAILURES] = sum[COUNTER_NAME_FAILURES];
	l->counters[COUNTER_DNS_SERVERS] = sum[COUNTER_NAME_SERVERS];
}

static void server_publish(server *srv)
{
	shard_slot *slot = srv->settings->slot;
	uint32_t upstreams = 0, names_published = 0;
	uint64_t changes = 0;

	if (!slot)
		return;
	for (uint32_t i = 0; i < srv->opened; i++)
		changes += srv->listeners[i].pool.changes;
	bool names = changes != srv->published_changes;
	srv->published_changes = changes;
	for (uint32_t i = 0; i < srv->opened && i < SHARD_MAX_LISTENERS; i++) {
		if (shard_slot_get_state(slot) == SHARD_STATE_STARTING)
			shard_slot_name(slot->listeners[i].name,
					srv->listeners[i].params.name);
		listener *l = &srv->listeners[i];
		upstream_pool_admin_sync(&l->pool);
		if (l->rpc)
			l->counters[COUNTER_RPC_HELD_BYTES] =
				rpc_listener_held_bytes(l->rpc);
		l->counters[COUNTER_QUEUED] = l->pool.queued;
		publish_names(slot, i, l, &names_published);
		publish_values(slot->listeners[i].values, l->counters,
			       COUNTER_LISTENER_VALUES);
		publish_upstreams(slot, i, l, &upstreams, names);
	}
	slot->listener_count = srv->opened < SHARD_MAX_LISTENERS ? srv->opened
								  : SHARD_MAX_LISTENERS;
	slot->upstream_count = upstreams;
	slot->name_count = names_published;
	shard_slot_publish_runtime(slot);
	shard_slot_store(&slot->app[COUNTER_LOG_LINES_DROPPED], log_dropped_lines());
	shard_slot_store(&slot->app[COUNTER_BUFFER_BYTES], srv->overload.held);
	shard_slot_store(&slot->app[COUNTER_BUFFER_POOLED_BYTES],
			 srv->overload.pooled);
	shard_slot_store(&slot->app[COUNTER_ACCEPT_PAUSES],
			 srv->overload.accept_pauses);
}

/* --- overload guard (proxy/overload.h) ------------------------------------- */

/* rpc mode's held reply bytes, over the shard's rpc listeners. */
static uint64_t server_rpc_held(const server *srv)
{
	uint64_t held = 0;

	for (uint32_t i = 0; i < srv->opened; i++)
		if (srv->listeners[i].rpc)
			held += rpc_listener_held_bytes(srv->listeners[i].rpc);
	return held;
}

/* The biggest holder, relay or rpc client, closed; false when none holds
 * anything or what is closing already frees `excess`. */
static bool shed_one(server *srv, uint64_t excess, uint64_t *rpc_freed)
{
	uint64_t relay_bytes = 0, closing = 0, rpc_bytes = 0;
	relay_conn *r = relay_largest(srv->relays, srv->opened, &relay_bytes,
				      &closing);
	struct rpc_client *c = NULL;

	/* Relays already closing give their buffers back shortly; a closed
	 * rpc client's replies went at once. */
	if (closing + *rpc_freed >= excess)
		return false;
	for (uint32_t i = 0; i < srv->opened; i++) {
		uint64_t bytes = 0;
		struct rpc_client *x = srv->listeners[i].rpc
			? rpc_listener_largest(srv->listeners[i].rpc, &bytes) : NULL;
		if (x && bytes > rpc_bytes)
			c = x, rpc_bytes = bytes;
	}
	if (c && rpc_bytes > relay_bytes) {
		rpc_client_shed(c);
		*rpc_freed += rpc_bytes;
		return true;
	}
	if (!r)
		return false;
	relay_shed(r);
	return true;
}

/* Past the budget (or starving near it): close the connections holding
 * the most until what they hold brings the shard down to the low mark.
 * In its own timer, never inside the buffer_take that went over. */
static void shed_fired(sched_timer *timer, void *arg)
{
	server *srv = arg;
	uint64_t rpc_freed = 0;
	uint32_t closed = 0;

	(void)timer;
	srv->overload.rpc_held = server_rpc_held(srv);
	uint64_t excess = overload_shed_bytes(&srv->overload);
	overload_shed_done(&srv->overload);
	while (excess > 0 && shed_one(srv, excess, &rpc_freed))
		closed++;
	srv->overload.rpc_held = server_rpc_held(srv);
	if (closed)
		log_ratelimited(&srv->shed_log, LOG_LEVEL_WARN,
				"buffer memory over budget, connections closed",
				"held=%" PRIu64 " max_buffer_memory=%" PRIu64
				" closed=%" PRIu32, overload_total(&srv->overload),
				srv->overload.budget, closed);
}

static void shed_schedule(void *arg)
{
	server *srv = arg;

	if (!sched_timer_pending(&srv->shed))
		sched_timer_set(&srv->shed, sched_now());
}

/* mimalloc's, when the binary links it (meson option `mimalloc`): a
 * weak reference, so builds without it (sanitizers) need nothing. */
extern void mi_collect(bool force) __attribute__((weak));

static void pools_trim(server *srv)
{
	int64_t now = sched_now();
	uint64_t pooled = srv->overload.pooled;

	if (now - srv->trimmed_at < SERVER_POOL_TRIM_NS)
		return;
	srv->trimmed_at = now;
	for (uint32_t i = 0; i < srv->opened; i++)
		relay_group_trim(&srv->relays[i]);
	/* Buffers went back: have the allocator return their pages to the
	 * kernel now rather than keep them for the next burst. */
	if (srv->overload.pooled < pooled && mi_collect)
		mi_collect(true);
}

static void publish_fired(sched_timer *timer, void *arg)
{
	server *srv = arg;

	overload_set_rpc_held(&srv->overload, server_rpc_held(srv));
	pools_trim(arg);
	server_publish(arg);
	sched_timer_set(timer, sched_now() + SERVER_PUBLISH_NS);
}

static void server_set_state(server *srv, shard_state state)
{
	if (!srv->settings->slot)
		return;
	server_publish(srv);
	shard_slot_set_state(srv->settings->slot, state);
}

/* --- drain and retire ------------------------------------------------------ */

static void server_drain(server *srv, const char *why);
static void handoff_sweep(server *srv);

static void drain_check_fired(sched_timer *timer, void *arg)
{
	server *srv = arg;
	int64_t now = sched_now();

	/* A shard that is still adopting from the one before waits for
	 * that one to finish: the connections still on their way in the
	 * channel would die with this process. */
	if (server_connections(srv) == 0 && server_lingering(srv) == 0 &&
	    !srv->adopt) {
		server_publish(srv);
		sched_stop();
		return;
	}
	handoff_sweep(srv);
	if (!srv->draining && now >= srv->retire_deadline) {
		server_drain(srv, "retire_timeout");
		return;
	}
	if (srv->draining && !srv->forced && now >= srv->drain_deadline) {
		srv->forced = true;
		log_line(LOG_LEVEL_WARN, "drain timeout", "open=%llu",
			 (unsigned long long)server_connections(srv));
		for (uint32_t i = 0; i < srv->opened; i++)
			listener_close_all(&srv->listeners[i], REASON_shutdown);
	}
	sched_timer_set(timer, now + SERVER_DRAIN_CHECK_NS);
}

static void server_drain(server *srv, const char *why)
{
	srv->draining = true;
	for (uint32_t i = 0; i < srv->opened; i++)
		listener_handoff_end(&srv->listeners[i]);
	server_set_state(srv, SHARD_STATE_DRAINING);
	log_line(LOG_LEVEL_INFO, "draining", "signal=%s open=%llu", why,
		 (unsigned long long)server_connections(srv));
	for (uint32_t i = 0; i < srv->opened; i++) {
		listener_stop(&srv->listeners[i]);
		listener_drain(&srv->listeners[i]);
	}
	srv->drain_deadline = sched_now() + srv->settings->drain_timeout_ns;
	/* The supervisor kills a shard SUPERVISOR_KILL_GRACE_NS (2 s) past
	 * drain_timeout: a linger must end before. */
	for (uint32_t i = 0; i < srv->opened; i++)
		srv->relays[i].linger.not_after_ns =
			srv->drain_deadline + SERVER_LINGER_GRACE_NS;
	sched_timer_set(&srv->drain_check, sched_now());
}

/*
 * The channel to the shard that replaces this one, if the supervisor sent
 * one and the successor speaks our version (its HELLO came before it said
 * READY). With io_uring completion I/O a connection goes once its
 * receives are paused and have ended (relay_export, pd_recv_pause), so no
 * byte is left in this shard's ring.
 */
static int handoff_channel(const server *srv)
{
	int fd = shard_take_channel(srv->settings->control_fd);

	if (fd < 0)
		return -1;
	int version = handoff_recv_hello(fd);
	if (version != HANDOFF_VERSION) {
		log_line(LOG_LEVEL_WARN, "handoff protocol mismatch: retiring",
			 "ours=%d theirs=%d", HANDOFF_VERSION, version);
		close(fd);
		return -1;
	}
	return fd;
}

static void handoff_sweep(server *srv)
{
	if (srv->handoff.fd < 0 || srv->draining || srv->handoff_ended)
		return;
	if (!listener_handoff_acks(&srv->handoff)) {
		/* The new shard is gone: what is left stays here, and what
		 * was paused for it receives again. */
		srv->handoff_ended = true;
		for (uint32_t i = 0; i < srv->opened; i++)
			listener_handoff_end(&srv->listeners[i]);
		return;
	}
	for (uint32_t i = 0; i < srv->opened; i++)
		listener_handoff_sweep(&srv->listeners[i]);
}

/* ACKs free the window: offer the next connections as soon as they come
 * (drain_check also sweeps, every SERVER_DRAIN_CHECK_NS). */
static void acks_main(void *arg)
{
	server *srv = arg;

	while (!srv->handoff.failed && !srv->draining) {
		if (pd_wait(srv->handoff_pd, PD_READ) < 0)
			break;
		handoff_sweep(srv);
	}
}

static void handoff_begin(server *srv)
{
	srv->handoff.fd = handoff_channel(srv);
	if (srv->handoff.fd < 0)
		return;
	coro_opts opts = {.name = "handoff-acks"};
	if (pd_open(srv->handoff.fd, &srv->handoff_pd) == 0)
		coro_spawn(acks_main, srv, &opts);
	log_line(LOG_LEVEL_INFO, "handing off", "open=%llu",
		 (unsigned long long)server_connections(srv));
	for (uint32_t i = 0; i < srv->opened; i++)
		listener_handoff_begin(&srv->listeners[i], &srv->handoff);
}

/* Replaced by a reload: with handoff, each connection goes to the new
 * shard as it comes to rest; the others (and all without handoff) may run
 * to their end, which for long-lived clients means drain_timeout, then a
 * drain. */
static void server_retire(server *srv)
{
	if (srv->retiring || srv->draining)
		return;
	srv->retiring = true;
	server_set_state(srv, SHARD_STATE_RETIRING);
	log_line(LOG_LEVEL_INFO, "retiring", "open=%llu",
		 (unsigned long long)server_connections(srv));
	for (uint32_t i = 0; i < srv->opened; i++)
		listener_stop(&srv->listeners[i]);
	handoff_begin(srv);
	srv->retire_deadline = sched_now() + srv->settings->drain_timeout_ns;
	sched_timer_set(&srv->drain_check, sched_now());
}

static void signals_main(void *arg)
{
	server *srv = arg;
	struct signalfd_siginfo info;

	for (;;) {
		ssize_t n = pd_read_full(srv->signals, &info, sizeof(info));
		if (n != (ssize_t)sizeof(info))
			return;
		const char *name = sigabbrev_np((int)info.ssi_signo);
		if (info.ssi_signo == SHARD_RETIRE_SIGNAL) {
			server_retire(srv);
			continue;
		}
		if (srv->draining) {
			log_line(LOG_LEVEL_WARN, "second signal: exiting now",
				 "signal=%s", name);
			_exit(1);
		}
		server_drain(srv, name);
	}
}

static int signals_open(server *srv)
{
	sigset_t set;

	sigemptyset(&set);
	/* No SIGINT: a shard ignores it (the terminal's ^C is the supervisor's
	 * to act on), and the supervisor stops shards with SIGTERM. */
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SHARD_RETIRE_SIGNAL);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -errno;
	signal(SIGPIPE, SIG_IGN); /* write errors come back as EPIPE */
	int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = pd_open(fd, &srv->signals);
	if (rc < 0) {
		close(fd);
		return rc;
	}
	coro_opts opts = {.name = "signals"};
	return coro_spawn(signals_main, srv, &opts) ? 0 : -ENOMEM;
}

/* --- adopting what the shard before hands over ------------------------------ */

static listener *listener_named(server *srv, const char *name)
{
	for (uint32_t i = 0; i < srv->opened; i++)
		if (strcmp(srv->listeners[i].params.name, name) == 0)
			return &srv->listeners[i];
	return NULL;
}

static void adopt_one(server *srv, const handoff_conn *rec, const int fds[2])
{
	listener *l = listener_named(srv, rec->listener);

	bool rpc = rec->mode == HANDOFF_MODE_RPC;

	if (!l || (l->rpc != NULL) != rpc || srv->draining) {
		log_line(LOG_LEVEL_WARN, "handed-over connection closed",
			 "listener=%s reason=%s", rec->listener,
			 !l ? "no such listener" : srv->draining ? "draining"
							       : "listener mode changed");
		close(fds[0]);
		close(fds[1]);
		return;
	}
	listener_adopt(l, rec, fds);
}

/*
 * Fault injection for the tests (tests/proxy/integration_handoff.cpp): with
 * FRAMEPROXY_FAULT_ADOPT_EXIT=N in its environment a shard dies by SIGKILL
 * after adopting N connections, as a new shard that crashes mid-handoff.
 */
static void adopt_fault(server *srv)
{
	const char *n = getenv("FRAMEPROXY_FAULT_ADOPT_EXIT");

	if (n && ++srv->adopted >= strtoull(n, NULL, 10))
		raise(SIGKILL);
}

/* Until the shard before closes its end (it exits): each connection it
 * sends becomes an idle relay here. Reads with recvmsg, never through the
 * pollDesc's read path, so io_uring completion I/O never arms a receive
 * that would take the records without their fds. */
static void adopter_main(void *arg)
{
	server *srv = arg;
	handoff_conn rec;
	int fds[2], rc;

	for (;;) {
		rc = handoff_recv_conn(pd_fd(srv->adopt), &rec, fds);
		if (rc == -EAGAIN) {
			if ((rc = pd_wait(srv->adopt, PD_READ)) < 0)
				break;
			continue;
		}
		/* The shard before exited with ACKs unread: the kernel
		 * reports that once, ahead of the records still queued. */
		if (rc == -ECONNRESET)
			continue;
		if (rc == -EPROTO) {
			log_line(LOG_LEVEL_WARN, "handoff record not understood: dropped", NULL);
			continue;
		}
		if (rc <= 0)
			break;
		adopt_one(srv, &rec, fds);
		adopt_fault(srv);
		/* Adopted (or closed): the shard before may send the next.
		 * It may have sent its last and exited: what it sent is still
		 * queued here, read on to the end. */
		handoff_send_ack(pd_fd(srv->adopt));
	}
	if (rc < 0)
		log_line(LOG_LEVEL_WARN, "handoff channel failed", "error=%s",
			 strerror(-rc));
	pd_close(srv->adopt);
	srv->adopt = NULL;
}

/* Say our version first (the shard before reads it when it retires, after
 * we are READY), then adopt. */
static int adopter_open(server *srv)
{
	int fd = srv->settings->handoff_fd;

	if (fd < 0)
		return 0;
	int rc = handoff_send_hello(fd);
	if (rc == 0)
		rc = pd_open(fd, &srv->adopt);
	if (rc < 0) {
		log_line(LOG_LEVEL_WARN, "no handoff from the shard before",
			 "error=%s", strerror(-rc));
		close(fd);
		return 0;
	}
	coro_opts opts = {.name = "adopter"};
	return coro_spawn(adopter_main, srv, &opts) ? 0 : -ENOMEM;
}

static int listeners_open(server *srv)
{
	const server_settings *settings = srv->settings;

	for (uint32_t i = 0; i < settings->listener_count; i++) {
		const listener_params *params = &settings->listeners[i];
		int fd = settings->listen_fds[i];
		char where[NETADDR_STRLEN];

		netaddr_format((const struct sockaddr *)&params->addr, where,
			       sizeof(where));
		int rc = listener_open(&srv->listeners[i], params, &srv->relays[i], fd);
		if (rc < 0) {
			log_line(LOG_LEVEL_ERROR, "cannot listen",
				 "listener=%s address=%s error=%s", params->name,
				 where, strerror(-rc));
			return rc;
		}
		srv->opened++;
		listener *l = &srv->listeners[i];
		netaddr_format((const struct sockaddr *)&l->bound, where, sizeof(where));
		/* The supervisor announced the socket ("listening"). */
		log_line(LOG_LEVEL_DEBUG, "accepting", "listener=%s address=%s",
			 params->name, where);
	}
	return 0;
}

static int listeners_start(server *srv)
{
	for (uint32_t i = 0; i < srv->opened; i++) {
		int rc = listener_start(&srv->listeners[i]);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static void server_ready(server *srv)
{
	const server_settings *settings = srv->settings;

	if (!settings->slot)
		return;
	snprintf(settings->slot->poller, sizeof(settings->slot->poller), "%s",
		 poll_kind_name(poll_backend()));
	server_set_state(srv, SHARD_STATE_READY);
	sched_timer_set(&srv->publish, sched_now() + SERVER_PUBLISH_NS);
}

/* --- server names ---------------------------------------------------------- */

static int names_start(server *srv)
{
	char why[256] = "";
	bool any = false;

	for (uint32_t i = 0; i < srv->opened; i++)
		any |= srv->listeners[i].pool.line_count > 0;
	if (!any)
		return 0;
	int rc = resolver_open(&srv->resolver, &srv->settings->resolve, why,
			       sizeof(why));
	if (rc < 0) {
		log_line(LOG_LEVEL_ERROR, "cannot start the resolver", "reason=%s",
			 why[0] ? why : strerror(-rc));
		return rc;
	}
	for (uint32_t i = 0; i < srv->opened; i++)
		upstream_pool_resolve(&srv->listeners[i].pool, srv->resolver,
				      i * UPSTREAM_NAMES_MAX);
	return 0;
}

/* -EAGAIN while a name's first look is not over; then -ENOENT when
 * `required` and a name has no answer, else 0. */
static int names_state(const server *srv, bool required, const char **failed)
{
	for (uint32_t i = 0; i < srv->opened; i++) {
		const upstream_pool *pool = &srv->listeners[i].pool;
		for (uint32_t k = 0; k < pool->line_count; k++)
			if (!pool->lines[k].name.settled)
				return -EAGAIN;
	}
	for (uint32_t i = 0; i < srv->opened && required; i++) {
		const upstream_pool *pool = &srv->listeners[i].pool;
		for (uint32_t k = 0; k < pool->line_count; k++) {
			if (!pool->lines[k].name.answered) {
				*failed = pool->names[k].host;
				return -ENOENT;
			}
		}
	}
	return 0;
}

#define SERVER_BOOT_POLL_NS (5 * 1000 * 1000)

static void boot_main(void *arg)
{
	server *srv = arg;
	const char *failed = NULL;
	int rc;

	while ((rc = names_state(srv, srv->settings->resolve_required, &failed)) ==
		       -EAGAIN && !srv->draining)
		coro_sleep(SERVER_BOOT_POLL_NS);
	srv->boot = NULL;
	if (srv->draining)
		return; /* stopped before it started: the drain ends the loop */
	if (rc == 0)
		rc = listeners_start(srv);
	if (rc == 0) {
		server_ready(srv);
		return;
	}
	if (failed)
		log_line(LOG_LEVEL_ERROR, "server name did not resolve",
			 "name=%s resolve_required=on", failed);
	srv->boot_rc = rc;
	sched_stop();
}

/* uring_io: completion that cannot work fails the start in one line; auto
 * says which mode it took. An epoll shard (mixed, auto fallback) has none. */
static int server_uring_io(const server_settings *settings)
{
	char why[256] = "";
	poll_uring_io_config cfg = {.mode = settings->uring_io};

	if (settings->uring_io == POLL_URING_IO_POLL || poll_backend() != POLL_URING)
		return 0;
	int rc = poll_set_uring_io(&cfg, why, sizeof(why));
	if (rc < 0) {
		log_line(LOG_LEVEL_ERROR, "cannot use io_uring completion I/O",
			 "reason=%s", why[0] ? why : strerror(-rc));
		return rc;
	}
	if (settings->uring_io == POLL_URING_IO_AUTO)
		log_line(LOG_LEVEL_INFO, "uring_io auto", "choice=%s note=%s",
			 poll_uring_io_name(poll_uring_io_mode()), why);
	return 0;
}

static int server_start(server *srv)
{
	char why[256] = "";
	const server_settings *settings = srv->settings;
	int rc = sched_init(NULL);

	if (rc < 0)
		return rc;
	rc = poll_open(settings->poller, why, sizeof(why));
	if (rc < 0) {
		log_line(LOG_LEVEL_ERROR, "cannot open poller", "poller=%s reason=%s",
			 poll_kind_name(settings->poller), why);
		return rc;
	}
	if (why[0])
		log_line(LOG_LEVEL_WARN, "poller fallback", "reason=%s", why);
	if ((rc = server_uring_io(settings)) < 0)
		return rc;
	bool batching = settings->uring_write_batching &&
			poll_set_uring_write_batching(true) == 0;
	if (settings->uring_write_batching && !batching)
		log_line(LOG_LEVEL_WARN, "uring_write_batching needs the io_uring backend: off",
			 "backend=%s", poll_kind_name(poll_backend()));
	log_line(LOG_LEVEL_INFO, "poller", "backend=%s io=%s bundles=%s "
		 "ring_fd=%s write_batching=%s switch=%s",
		 poll_kind_name(poll_backend()),
		 poll_backend() == POLL_URING
			 ? poll_uring_io_name(poll_uring_io_mode()) : "readiness",
		 poll_uring_bundles() ? "on" : "off",
		 poll_uring_ring_registered() ? "registered" : "plain",
		 batching ? "on" : "off", sched_switch_name());
	srv->listeners = calloc(settings->listener_count, sizeof(*srv->listeners));
	srv->relays = calloc(settings->listener_count, sizeof(*srv->relays));
	if (!srv->listeners || !srv->relays)
		return -ENOMEM;
	overload_init(&srv->overload, settings->max_buffer_memory);
	srv->overload.on_over = shed_schedule;
	srv->overload.on_over_arg = srv;
	srv->shed_log = (log_ratelimit)LOG_RATELIMIT_INIT(1);
	sched_timer_init(&srv->shed, shed_fired, srv);
	for (uint32_t i = 0; i < settings->listener_count; i++) {
		relay_group_init(&srv->relays[i],
				 settings->listeners[i].relay.buffer_size,
				 SERVER_BUFFER_POOL_MAX,
				 srv->listeners[i].counters);
		srv->relays[i].overload = &srv->overload;
	}
	for (uint32_t i = 0; i < settings->listener_count; i++)
		srv->relays[i].linger.timeout_ns = settings->linger_timeout_ns;
	if ((rc = signals_open(srv)) < 0)
		return rc;
	sched_timer_init(&srv->drain_check, drain_check_fired, srv);
	sched_timer_init(&srv->publish, publish_fired, srv);
	srv->retire_deadline = INT64_MAX;
	if ((rc = listeners_open(srv)) < 0 || (rc = names_start(srv)) < 0)
		return rc;
	if ((rc = adopter_open(srv)) < 0)
		return rc;
	/* A shard with server names accepts (and says it is ready, which a
	 * reload waits for) once each name's first look is over, so that it
	 * does not start with an empty pool while DNS is answering. */
	if (srv->resolver) {
		coro_opts opts = {.name = "boot"};
		srv->boot = coro_spawn(boot_main, srv, &opts);
		return srv->boot ? 0 : -ENOMEM;
	}
	if ((rc = listeners_start(srv)) < 0)
		return rc;
	server_ready(srv);
	return 0;
}

static void server_cleanup(server *srv)
{
	resolver_close(srv->resolver);
	for (uint32_t i = 0; i < srv->opened; i++) {
		listener_stop(&srv->listeners[i]);
		listener_free(&srv->listeners[i]);
	}
	free(srv->listeners);
	if (srv->signals)
		pd_close(srv->signals);
	if (srv->adopt)
		pd_close(srv->adopt);
	if (srv->handoff_pd)
		pd_close(srv->handoff_pd); /* closes handoff.fd */
	else if (srv->handoff.fd >= 0)
		close(srv->handoff.fd);
	for (uint32_t i = 0; srv->relays && i < srv->settings->listener_count; i++)
		relay_group_free(&srv->relays[i]);
	free(srv->relays);
	poll_close();
	sched_shutdown();
}

int server_run(const server_settings *settings)
{
	server srv = {.settings = settings, .handoff = {.fd = -1}};
	int rc = server_start(&srv);

	if (rc == 0) {
		sched_run();
		rc = srv.boot_rc;
		sched_timer_cancel(&srv.publish);
		sched_timer_cancel(&srv.drain_check);
		sched_timer_cancel(&srv.shed);
		log_line(LOG_LEVEL_INFO, "stopped", "forced=%s",
			 srv.forced ? "true" : "false");
	}
	server_cleanup(&srv);
	return rc;
}
