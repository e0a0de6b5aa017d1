#include "proxy/upstream.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/frame.h"
#include "proxy/log.h"
#include "proxy/netaddr.h"

/* Ejections in a row double the time out, up to this factor. */
#define UPSTREAM_EJECT_MAX_SHIFT 5

static void check_timer_fired(sched_timer *timer, void *arg);

static void server_fill(upstream_server *server, const upstream_spec *spec)
{
	memcpy(&server->addr, &spec->addr.ss, spec->addr.len);
	server->addr_len = spec->addr.len;
	server->check_up = true;
	server->weight = spec->weight;
	netaddr_format((const struct sockaddr *)&server->addr, server->name,
		       sizeof(server->name));
}

int upstream_pool_init(upstream_pool *pool, const char *listener_name,
		       const upstream_params *params, balance_kind kind,
		       const upstream_spec *servers, uint32_t count,
		       const upstream_name *names, uint32_t name_count,
		       uint64_t seed)
{
	uint32_t cap = count + name_count * UPSTREAM_NAME_SLOTS;

	if (cap > UPSTREAM_MAX_SERVERS)
		cap = UPSTREAM_MAX_SERVERS;
	if (cap == 0 || name_count > UPSTREAM_NAMES_MAX ||
	    count + name_count * UPSTREAM_NAME_MAX_SERVERS > UPSTREAM_MAX_SERVERS)
		return -EINVAL;
	*pool = (upstream_pool){.listener_name = listener_name,
				.params = *params, .count = cap,
				.static_count = count, .names = names,
				.line_count = name_count,
				.connect_error_log = LOG_RATELIMIT_INIT(5),
				.local_error_log = LOG_RATELIMIT_INIT(5),
				.outlier_log = LOG_RATELIMIT_INIT(1)};
	pool->servers = calloc(cap, sizeof(*pool->servers));
	upstream_spec *specs = calloc(cap, sizeof(*specs));
	pool->lines = name_count ? calloc(name_count, sizeof(*pool->lines)) : NULL;
	int rc = -ENOMEM;
	if (!pool->servers || !specs || (name_count && !pool->lines))
		goto fail;
	for (uint32_t i = 0; i < cap; i++) {
		upstream_server *server = &pool->servers[i];
		server->line = -1;
		server->slot = i < count ? UPSTREAM_SLOT_STATIC : UPSTREAM_SLOT_EMPTY;
		sched_timer_init(&server->check_timer, check_timer_fired, server);
		specs[i].weight = 1;
		if (i < count) {
			specs[i] = servers[i];
			server_fill(server, &servers[i]);
		}
	}
	for (uint32_t i = 0; i < name_count; i++) {
		pool->lines[i] = (upstream_line){.pool = pool, .index = i,
						 .fail_log = LOG_RATELIMIT_INIT(1)};
		/* Not pending until upstream_pool_resolve: freeing may cancel. */
		sched_timer_init(&pool->lines[i].name.timer, NULL, NULL);
	}
	rc = balance_init(&pool->balancer, kind, specs, cap, seed);
	free(specs);
	specs = NULL;
	if (rc == 0)
		return 0;
fail:
	free(specs);
	free(pool->servers);
	free(pool->lines);
	pool->servers = NULL;
	pool->lines = NULL;
	return rc;
}

void upstream_pool_free(upstream_pool *pool)
{
	for (uint32_t i = 0; i < pool->line_count; i++)
		resolve_name_stop(&pool->lines[i].name);
	balance_free(&pool->balancer);
	free(pool->servers);
	free(pool->lines);
	pool->servers = NULL;
	pool->lines = NULL;
}

bool upstream_server_in_set(const upstream_pool *pool, uint32_t index)
{
	upstream_slot slot = pool->servers[index].slot;

	return slot == UPSTREAM_SLOT_STATIC || slot == UPSTREAM_SLOT_LIVE;
}

bool upstream_server_usable(const upstream_pool *pool, uint32_t index,
			    int64_t now)
{
	const upstream_server *server = &pool->servers[index];
	return upstream_server_in_set(pool, index) && server->check_up &&
	       now >= server->out_until;
}

bool upstream_server_open(const upstream_pool *pool, uint32_t index,
			  int64_t now)
{
	return upstream_server_usable(pool, index, now) &&
	       pool->servers[index].admin_state == SHARD_SERVER_READY;
}

unsigned upstream_server_weight(const upstream_server *server)
{
	return server->admin_weight ? server->admin_weight : server->weight;
}

static void server_wake_checker(upstream_server *server);

/* The board's rows for this pool's servers, when it changed since the last
 * look: one load otherwise, so every pick can afford it. */
static void admin_read(upstream_pool *pool)
{
	shard_server_board *board = pool->params.admin_board;
	uint64_t version = shard_server_board_version(board);

	if (version == pool->admin_version)
		return;
	pool->admin_version = version;
	for (uint32_t i = 0; i < pool->count; i++) {
		upstream_server *server = &pool->servers[i];
		shard_server_admin state = SHARD_SERVER_READY;
		uint32_t weight = 0;
		if (upstream_server_in_set(pool, i))
			shard_server_board_get(board, pool->listener_name,
					       server->name, &state, &weight);
		bool was_maint = server->admin_state == SHARD_SERVER_MAINT;
		server->admin_state = state;
		server->admin_weight = weight <= SHARD_SERVER_MAX_WEIGHT ? weight : 0;
		if (was_maint && state != SHARD_SERVER_MAINT)
			server_wake_checker(server); /* checks resume now */
	}
}

void upstream_pool_admin_sync(upstream_pool *pool)
{
	admin_read(pool);
}

void upstream_pool_refresh(upstream_pool *pool)
{
	int64_t now = sched_now();

	admin_read(pool);
	for (uint32_t i = 0; i < pool->count; i++) {
		balance_set_up(&pool->balancer, i,
			       upstream_server_open(pool, i, now));
		if (upstream_server_in_set(pool, i))
			balance_set_weight(&pool->balancer, i,
					   upstream_server_weight(&pool->servers[i]));
	}
}

/* --- passive health ------------------------------------------------------ */

/* One failure toward ejecting the server (passive health);
 * `eject_count_at_start`: its COUNTER_EJECTIONS when the attempt began. */
static void server_failure(upstream_pool *pool, uint32_t index,
			   uint64_t eject_count_at_start, const char *why)
{
	upstream_server *server = &pool->servers[index];
	uint32_t threshold = pool->params.fail_threshold;

	/* Connects that were in flight when it went out fail too: they are the
	 * same outage, not a reason to eject it again and double the time out.
	 * Whether the server went out since the connect began is what tells
	 * (not whether it is out now: a connect that hangs until a
	 * connect_timeout longer than the time out ends after it). */
	if (server->counters[COUNTER_EJECTIONS] != eject_count_at_start)
		return;
	server->consecutive_failures++;
	if (threshold == 0 || server->consecutive_failures < threshold)
		return;
	upstream_eject(pool, index, why);
}

void upstream_eject(upstream_pool *pool, uint32_t index, const char *why)
{
	upstream_server *server = &pool->servers[index];
	uint32_t shift = server->ejections < UPSTREAM_EJECT_MAX_SHIFT ?
				 server->ejections : UPSTREAM_EJECT_MAX_SHIFT;
	int64_t out_for = pool->params.fail_timeout_ns << shift;

	server->ejections++;
	server->counters[COUNTER_EJECTIONS]++;
	server->consecutive_failures = 0;
	server->out_until = sched_now() + out_for;
	log_line(LOG_LEVEL_WARN, "upstream out",
		 "listener=%s upstream=%s reason=%s for_ms=%lld ejections=%u",
		 pool->listener_name, server->name, why, (long long)(out_for / 1000000),
		 server->ejections);
}

/* `eject_count_at_start`: the server's COUNTER_EJECTIONS when this connect began. */
static void server_connect_failed(upstream_pool *pool, uint32_t index, int err,
				  uint64_t eject_count_at_start)
{
	upstream_server *server = &pool->servers[index];

	server->counters[COUNTER_CONNECT_FAILURES]++;
	log_ratelimited(&pool->connect_error_log, LOG_LEVEL_WARN, "upstream connect failed",
			"listener=%s upstream=%s error=%s", pool->listener_name,
			server->name, strerror(-err));
	server_failure(pool, index, eject_count_at_start, "connect_failures");
}

/* Errors that say this process is out of something (descriptors, memory,
 * local ports), not that the server is unwell: they must not eject a
 * healthy server, and the next server would fail the same way. */
static bool connect_error_is_local(int err)
{
	return err == -EMFILE || err == -ENFILE || err == -ENOBUFS ||
	       err == -ENOMEM || err == -EADDRNOTAVAIL;
}

int upstream_connect_to(upstream_pool *pool, uint32_t index,
			poll_desc **out)
{
	upstream_server *server = &pool->servers[index];
	uint64_t eject_count = server->counters[COUNTER_EJECTIONS];
	/* A connect in flight holds the index: a server from a name that
	 * leaves meanwhile must not have its index taken by another. */
	server->attached++;
	int rc = poll_connect((const struct sockaddr *)&server->addr,
			      server->addr_len, pool->params.connect_timeout_ns,
			      out);
	server->attached--;

	if (rc == 0) {
		server->counters[COUNTER_CONNECTS]++;
		/* A server that accepts and then answers garbage is not
		 * healthy: only an answer ends that streak. */
		if (!server->protocol_streak) {
			server->consecutive_failures = 0;
			server->ejections = 0;
		}
		return 0;
	}
	if (connect_error_is_local(rc)) {
		log_ratelimited(&pool->local_error_log, LOG_LEVEL_WARN,
				"upstream connect failed: out of local resources",
				"listener=%s upstream=%s error=%s", pool->listener_name,
				server->name, strerror(-rc));
		return rc;
	}
	server_connect_failed(pool, index, rc, eject_count);
	return rc;
}

/* --- the queue (maxconn) ------------------------------------------------- */

static void queue_unlink(upstream_pool *pool, upstream_waiter *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else
		pool->queue_head = w->next;
	if (w->next)
		w->next->prev = w->prev;
	else
		pool->queue_tail = w->prev;
	w->prev = w->next = NULL;
	pool->queued--;
}

static void queue_link(upstream_pool *pool, upstream_waiter *w, bool first)
{
	w->prev = first ? NULL : pool->queue_tail;
	w->next = first ? pool->queue_head : NULL;
	if (w->prev)
		w->prev->next = w;
	else
		pool->queue_head = w;
	if (w->next)
		w->next->prev = w;
	else
		pool->queue_tail = w;
	pool->queued++;
}

typedef struct queue_timer_arg {
	upstream_pool *pool;
	upstream_waiter *w;
} queue_timer_arg;

static void queue_timer_fired(sched_timer *timer, void *arg)
{
	queue_timer_arg *a = arg;

	(void)timer;
	queue_unlink(a->pool, a->w);
	coro_ready(a->w->coro);
}

/* The oldest waiter tries again (one per slot that came free). */
static void queue_wake(upstream_pool *pool)
{
	upstream_waiter *w = pool->queue_head;

	if (!w)
		return;
	queue_unlink(pool, w);
	sched_timer_cancel(&w->timer);
	w->woken = true;
	coro_ready(w->coro);
}

/* Park in the queue until a slot frees (0) or `deadline` (-EBUSY). One
 * woken before and still without a server goes back first in line. */
static int queue_wait(upstream_pool *pool, int64_t deadline, bool first)
{
	upstream_waiter w = {.coro = coro_self()};
	queue_timer_arg arg = {.pool = pool, .w = &w};

	if (pool->stopping || sched_now() >= deadline)
		return -EBUSY;
	sched_timer_init(&w.timer, queue_timer_fired, &arg);
	sched_timer_set(&w.timer, deadline);
	queue_link(pool, &w, first);
	coro_park("upstream queue");
	sched_timer_cancel(&w.timer);
	return w.woken && !pool->stopping ? 0 : -EBUSY;
}

/* One round of picks and connects; -EBUSY when the servers left to try
 * were all full. */
static int connect_round(upstream_pool *pool, const struct sockaddr *client,
			 poll_desc **out)
{
	balance_tried tried;
	int last_error = -EHOSTUNREACH;
	bool full = false;

	balance_tried_clear(&tried);
	upstream_pool_refresh(pool);
	for (uint32_t attempt = 0; attempt <= pool->params.retries; attempt++) {
		int index = balance_pick(&pool->balancer, client, &tried);
		if (index < 0) {
			full = index == BALANCE_FULL;
			break;
		}
		balance_tried_add(&tried, (uint32_t)index);
		/* Counted while the connect runs: others see it taken. */
		balance_conn_begin(&pool->balancer, (uint32_t)index);
		int rc = upstream_connect_to(pool, (uint32_t)index, out);
		if (rc == 0)
			return index;
		balance_conn_end(&pool->balancer, (uint32_t)index);
		queue_wake(pool);
		last_error = rc;
		if (connect_error_is_local(rc))
			return rc;
		upstream_pool_refresh(pool);
	}
	return full ? -EBUSY : last_error;
}

int upstream_connect(upstream_pool *pool, const struct sockaddr *client,
		     poll_desc **out)
{
	int64_t deadline = sched_now() + pool->params.queue_timeout_ns;
	bool woken = false;

	/* Behind those already waiting: they came first. */
	if (pool->queue_head && queue_wait(pool, deadline, false) < 0)
		return -EBUSY;
	for (;;) {
		int rc = connect_round(pool, client, out);
		if (rc != -EBUSY)
			return rc;
		if (pool->params.queue_timeout_ns <= 0)
			return -EBUSY;
		if (queue_wait(pool, deadline, woken) < 0)
			return -EBUSY;
		woken = true;
	}
}

void upstream_server_failed(upstream_pool *pool, uint32_t index)
{
	upstream_server *server = &pool->servers[index];

	server->protocol_streak = true;
	server_failure(pool, index, server->counters[COUNTER_EJECTIONS],
		       "protocol_errors");
}

void upstream_server_answered(upstream_pool *pool, uint32_t index)
{
	upstream_server *server = &pool->servers[index];

	if (!server->protocol_streak)
		return;
	server->protocol_streak = false;
	server->consecutive_failures = 0;
	server->ejections = 0;
}

void upstream_adopt(upstream_pool *pool, int index)
{
	if (index >= 0 && (uint32_t)index < pool->count)
		balance_conn_begin(&pool->balancer, (uint32_t)index);
}

void upstream_release(upstream_pool *pool, int index)
{
	if (index < 0 || (uint32_t)index >= pool->count)
		return;
	balance_conn_end(&pool->balancer, (uint32_t)index);
	queue_wake(pool);
}

const char *upstream_tls_name(const upstream_pool *pool, uint32_t index,
			      char *buf, size_t len)
{
	const upstream_server *u = &pool->servers[index];
	const char *host = upstream_server_origin(pool, index);
	const void *ip = u->addr.ss_family == AF_INET6
		? (const void *)&((const struct sockaddr_in6 *)&u->addr)->sin6_addr
		: (const void *)&((const struct sockaddr_in *)&u->addr)->sin_addr;

	if (pool->params.tls_name)
		return pool->params.tls_name;
	if (host[0])
		return host;
	if (!inet_ntop(u->addr.ss_family, ip, buf, (socklen_t)len))
		snprintf(buf, len, "-");
	return buf;
}

/* --- active health ------------------------------------------------------- */

/* A check's I/O: plain on the pollDesc, or through its TLS. */
static ssize_t check_write(poll_desc *pd, tls_conn *t, const void *buf,
			   size_t len)
{
	return t ? tls_write_full(t, buf, len) : pd_write_full(pd, buf, len);
}

static ssize_t check_read_full(poll_desc *pd, tls_conn *t, void *buf,
			       size_t len)
{
	if (!t)
		return pd_read_full(pd, buf, len);
	size_t got = 0;
	while (got < len) {
		ssize_t n = tls_read(t, (uint8_t *)buf + got, len - got);
		if (n <= 0)
			return n < 0 ? n : (ssize_t)got;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

/* Send check_frame and read one whole frame back (the deadline is set). */
static int check_exchange(upstream_pool *pool, poll_desc *pd, tls_conn *t)
{
	const upstream_params *params = &pool->params;
	uint8_t header[FRAME_HEADER_SIZE];
	uint8_t sink[512];

	frame_write_length(header, params->check_frame_len);
	ssize_t n = check_write(pd, t, header, sizeof(header));
	if (n >= 0)
		n = check_write(pd, t, params->check_frame,
				params->check_frame_len);
	if (n < 0)
		return (int)n;
	n = check_read_full(pd, t, header, sizeof(header));
	if (n != (ssize_t)sizeof(header))
		return n < 0 ? (int)n : -ECONNRESET;
	uint32_t left = frame_read_length(header);
	if (left > params->max_frame)
		return -EMSGSIZE;
	while (left > 0) {
		size_t want = left < sizeof(sink) ? left : sizeof(sink);
		n = check_read_full(pd, t, sink, want);
		if (n != (ssize_t)want)
			return n < 0 ? (int)n : -ECONNRESET;
		left -= (uint32_t)want;
	}
	return 0;
}

/* upstream_tls: the verified handshake, as the relay's connections make
 * it. 0 or -errno (-EPROTO: the certificate or the protocol failed). */
static int check_tls(upstream_pool *pool, upstream_server *server,
		     poll_desc *pd, int64_t deadline, tls_conn **out)
{
	char addr[INET6_ADDRSTRLEN], why[TLS_WHY_MAX];
	const char *name = upstream_tls_name(pool, server->index, addr,
					     sizeof(addr));

	if (!(*out = tls_conn_new_client(pool->params.tls, pd, name)))
		return -ENOMEM;
	return tls_handshake(*out, deadline, why, sizeof(why));
}

static int check_once(upstream_pool *pool, upstream_server *server)
{
	const upstream_params *params = &pool->params;
	int64_t timeout = params->connect_timeout_ns;
	poll_desc *pd = NULL;
	tls_conn *t = NULL;
	int rc = poll_connect((const struct sockaddr *)&server->addr,
			      server->addr_len, timeout, &pd);

	if (rc < 0)
		return rc;
	int64_t deadline = sched_now() + timeout;
	pd_set_deadline(pd, PD_BOTH, deadline);
	/* The PROXY header goes first, in plaintext, as on the relay's
	 * connections; a connect-only check sends nothing without TLS. */
	if (params->check_prefix && (params->check_frame || params->tls) &&
	    pd_write_full(pd, params->check_prefix, params->check_prefix_len) < 0)
		rc = -ECONNRESET;
	if (rc == 0 && params->tls)
		rc = check_tls(pool, server, pd, deadline, &t);
	if (rc == 0 && params->check_frame)
		rc = check_exchange(pool, pd, t);
	tls_conn_free(t);
	pd_close(pd);
	return rc;
}

static void check_record(upstream_pool *pool, upstream_server *server, int rc)
{
	const upstream_params *params = &pool->params;

	if (rc == 0) {
		server->check_failures = 0;
		server->check_successes++;
		/* A passing check proves reachability: end a passive ejection,
		 * and the next outage starts again from fail_timeout. */
		server->out_until = 0;
		server->ejections = 0;
		if (!server->check_up && server->check_successes >= params->health_rise) {
			server->check_up = true;
			log_line(LOG_LEVEL_INFO, "upstream up", "listener=%s upstream=%s checks=%u",
				 pool->listener_name, server->name, server->check_successes);
		}
		return;
	}
	server->check_successes = 0;
	server->check_failures++;
	if (server->check_up && server->check_failures >= params->health_fall) {
		server->check_up = false;
		log_line(LOG_LEVEL_WARN, "upstream down", "listener=%s upstream=%s error=%s checks=%u",
			 pool->listener_name, server->name, strerror(-rc),
			 server->check_failures);
	}
}

/* Readied once: whoever wakes it clears the slot first. */
static void server_wake_checker(upstream_server *server)
{
	coro *checker = server->checker;

	if (!checker)
		return;
	server->checker = NULL;
	coro_ready(checker);
}

static void check_timer_fired(sched_timer *timer, void *arg)
{
	(void)timer;
	server_wake_checker(arg);
}

/* Park until the next check is due, or until the pool stops. */
static void check_sleep(upstream_pool *pool, upstream_server *server)
{
	sched_timer_set(&server->check_timer,
			sched_now() + pool->params.health_interval_ns);
	server->checker = coro_self();
	coro_park("health check interval");
}

/* --- shared checks (several shards) ---------------------------------------- */

static bool checks_shared(const upstream_pool *pool)
{
	return pool->params.health_board && pool->params.shard_count > 1;
}

/* A server from a name may sit at another index in another shard, so
 * only literal addresses share their checks. */
static bool check_is_mine(const upstream_pool *pool, uint32_t index)
{
	const upstream_params *p = &pool->params;

	return !checks_shared(pool) || index >= pool->static_count ||
	       shard_health_owner(p->shard_count, p->health_listener, index) ==
		       p->shard_index;
}

/* The owner's result is fresh for two intervals and two check timeouts. */
static shard_health check_read_owner(const upstream_pool *pool, uint32_t index)
{
	const upstream_params *p = &pool->params;
	int64_t max_age = 2 * p->health_interval_ns + 2 * p->connect_timeout_ns;

	return shard_health_read(p->health_board, p->generation, p->health_listener,
				 index, sched_now(), max_age);
}

static void check_publish(upstream_pool *pool, uint32_t index)
{
	const upstream_params *p = &pool->params;

	if (!checks_shared(pool) || index >= pool->static_count)
		return;
	shard_health_publish(p->health_board, p->generation, p->health_listener,
			     index, pool->servers[index].check_up ? SHARD_HEALTH_UP
								 : SHARD_HEALTH_DOWN,
			     sched_now());
}

/* Take the owner shard's verdict (its rise/fall counts already applied). */
static void check_adopt(upstream_pool *pool, upstream_server *server,
			uint32_t index, shard_health state)
{
	bool up = state == SHARD_HEALTH_UP;
	uint32_t owner = shard_health_owner(pool->params.shard_count,
					    pool->params.health_listener, index);

	server->check_successes = 0;
	server->check_failures = 0;
	if (up) {
		server->out_until = 0; /* as a passing check of our own */
		server->ejections = 0;
	}
	if (up == server->check_up)
		return;
	server->check_up = up;
	log_line(up ? LOG_LEVEL_INFO : LOG_LEVEL_WARN,
		 up ? "upstream up" : "upstream down",
		 "listener=%s upstream=%s checked_by=shard%u", pool->listener_name,
		 server->name, owner);
}

/* The argument is the server itself: a checker that never ran (the shard
 * stopped at once) leaves nothing to free. */
static void checker_main(void *arg)
{
	upstream_server *server = arg;
	upstream_pool *pool = server->pool;
	uint32_t index = server->index;
	bool mine = check_is_mine(pool, index);

	while (!pool->stopping && upstream_server_in_set(pool, index)) {
		admin_read(pool);
		shard_health owner = mine ? SHARD_HEALTH_UNKNOWN
					  : check_read_owner(pool, index);
		if (server->admin_state == SHARD_SERVER_MAINT) {
			/* maint: the operator's word, not checks, until ready */
		} else if (owner != SHARD_HEALTH_UNKNOWN) {
			check_adopt(pool, server, index, owner);
		} else {
			check_record(pool, server, check_once(pool, server));
			if (mine)
				check_publish(pool, index);
		}
		if (pool->stopping)
			break;
		if (!upstream_server_in_set(pool, index))
			break;
		check_sleep(pool, server);
	}
	server->checker_alive = false;
	pool->checkers_running--;
}

static int checker_start(upstream_pool *pool, uint32_t index)
{
	upstream_server *server = &pool->servers[index];
	coro_opts opts = {.name = "health-check"};

	if (pool->params.health_interval_ns <= 0 || server->checker_alive ||
	    pool->stopping)
		return 0;
	server->pool = pool;
	server->index = index;
	sched_timer_init(&server->check_timer, check_timer_fired, server);
	if (!coro_spawn(checker_main, server, &opts))
		return -ENOMEM;
	server->checker_alive = true;
	pool->checkers_running++;
	return 0;
}

int upstream_pool_start(upstream_pool *pool)
{
	for (uint32_t i = 0; i < pool->static_count; i++) {
		int rc = checker_start(pool, i);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* --- servers from names ------------------------------------------------------ */

bool upstream_server_unused(const upstream_pool *pool, uint32_t index)
{
	const upstream_server *server = &pool->servers[index];

	return server->slot == UPSTREAM_SLOT_EMPTY ||
	       (server->slot == UPSTREAM_SLOT_REMOVED &&
		*balance_active((balance_state *)&pool->balancer, index) == 0 &&
		server->attached == 0 && !server->checker_alive);
}

static int find_server(const upstream_pool *pool, int32_t line,
		       const upstream_spec *spec)
{
	for (uint32_t i = pool->static_count; i < pool->count; i++) {
		const upstream_server *server = &pool->servers[i];
		if (server->line == line &&
		    (server->slot == UPSTREAM_SLOT_LIVE ||
		     server->slot == UPSTREAM_SLOT_REMOVED) &&
		    netaddr_equal((const struct sockaddr *)&server->addr,
				  (const struct sockaddr *)&spec->addr.ss))
			return (int)i;
	}
	return -1;
}

static bool answer_has(const resolve_result *r, const upstream_server *server)
{
	for (uint32_t i = 0; i < r->count; i++)
		if (netaddr_equal((const struct sockaddr *)&server->addr,
				  (const struct sockaddr *)&r->servers[i].addr.ss))
			return true;
	return false;
}

static void list_add(char *list, size_t size, const char *name)
{
	size_t at = strlen(list);

	if (at + strlen(name) + 2 < size)
		snprintf(list + at, size - at, "%s%s", at ? "," : "", name);
}

/* A server of the line that the answer does not have any more. */
static void server_remove(upstream_pool *pool, uint32_t index)
{
	upstream_server *server = &pool->servers[index];

	server->slot = UPSTREAM_SLOT_REMOVED;
	pool->lines[server->line].servers--;
	balance_set_up(&pool->balancer, index, false);
	sched_timer_cancel(&server->check_timer);
	server_wake_checker(server);
	if (pool->hooks.removed)
		pool->hooks.removed(pool->hooks.arg, index);
}

/* A free index for a new server of `line`, or -1 (all in use): an EMPTY
 * one first, so that a removed server keeps its state (health, counters)
 * for as long as there is room, in case it comes back. */
static int server_take(upstream_pool *pool, uint32_t line,
		       const upstream_spec *spec)
{
	for (int pass = 0; pass < 2; pass++) {
		for (uint32_t i = pool->static_count; i < pool->count; i++) {
			upstream_server *server = &pool->servers[i];
			if (pass == 0 ? server->slot != UPSTREAM_SLOT_EMPTY
				      : !upstream_server_unused(pool, i))
				continue;
			*server = (upstream_server){.line = (int32_t)line};
			sched_timer_init(&server->check_timer, check_timer_fired, server);
			server_fill(server, spec);
			return (int)i;
		}
	}
	return -1;
}

static void server_add(upstream_pool *pool, uint32_t line, uint32_t index,
		       const upstream_spec *spec)
{
	upstream_server *server = &pool->servers[index];

	server->slot = UPSTREAM_SLOT_LIVE;
	pool->lines[line].servers++;
	balance_set_server(&pool->balancer, index, spec);
	if (checker_start(pool, index) < 0)
		log_line(LOG_LEVEL_WARN, "no memory for a health checker",
			 "listener=%s upstream=%s", pool->listener_name, server->name);
	if (pool->hooks.added)
		pool->hooks.added(pool->hooks.arg, index);
}

static void answer_failed(upstream_pool *pool, upstream_line *ln,
			  const resolve_result *r)
{
	log_ratelimited(&ln->fail_log, LOG_LEVEL_WARN, "server name lookup failed",
			"listener=%s name=%s error=%s kept=%u", pool->listener_name,
			pool->names[ln->index].host, r->error, ln->servers);
}

void upstream_pool_answer(upstream_pool *pool, uint32_t line,
			  const resolve_result *r)
{
	upstream_line *ln = &pool->lines[line];
	char added[512] = "", removed[512] = "";

	if (r->error) {
		answer_failed(pool, ln, r);
		return;
	}
	for (uint32_t i = pool->static_count; i < pool->count; i++) {
		upstream_server *server = &pool->servers[i];
		if (server->line != (int32_t)line || server->slot != UPSTREAM_SLOT_LIVE ||
		    answer_has(r, server))
			continue;
		server_remove(pool, i);
		list_add(removed, sizeof(removed), server->name);
	}
	for (uint32_t k = 0; k < r->count; k++) {
		/* The line's maxconn applies to each server its name gives. */
		upstream_spec named = r->servers[k];
		named.maxconn = pool->names[line].maxconn;
		const upstream_spec *spec = &named;
		int index = find_server(pool, (int32_t)line, spec);
		if (index >= 0 && pool->servers[index].slot == UPSTREAM_SLOT_LIVE) {
			if (pool->servers[index].weight != spec->weight) {
				pool->servers[index].weight = spec->weight;
				balance_set_server(&pool->balancer, (uint32_t)index, spec);
			}
			continue;
		}
		if (index < 0 && (index = server_take(pool, line, spec)) < 0) {
			log_line(LOG_LEVEL_WARN, "no room for a server from a name",
				 "listener=%s name=%s servers=%u", pool->listener_name,
				 pool->names[line].host, ln->servers);
			break;
		}
		server_add(pool, line, (uint32_t)index, spec);
		list_add(added, sizeof(added), pool->servers[index].name);
	}
	if (!added[0] && !removed[0])
		return;
	pool->changes++;
	log_line(LOG_LEVEL_INFO, "servers changed",
		 "listener=%s name=%s added=%s removed=%s servers=%u",
		 pool->listener_name, pool->names[line].host, added[0] ? added : "-",
		 removed[0] ? removed : "-", ln->servers);
}

static void line_answered(void *arg, const resolve_result *r)
{
	upstream_line *ln = arg;

	upstream_pool_answer(ln->pool, ln->index, r);
}

void upstream_pool_resolve(upstream_pool *pool, resolver *res,
			   uint32_t board_row)
{
	for (uint32_t i = 0; i < pool->line_count; i++)
		resolve_name_start(res, &pool->lines[i].name, &pool->names[i],
				   board_row + i, line_answered, &pool->lines[i]);
}

void upstream_pool_stop(upstream_pool *pool)
{
	pool->stopping = true;
	while (pool->queue_head)
		queue_wake(pool); /* each then sees `stopping` */
	for (uint32_t i = 0; i < pool->line_count; i++)
		resolve_name_stop(&pool->lines[i].name);
	if (pool->params.health_interval_ns <= 0)
		return;
	for (uint32_t i = 0; i < pool->count; i++) {
		upstream_server *server = &pool->servers[i];
		sched_timer_cancel(&server->check_timer);
		server_wake_checker(server);
	}
}

const char *upstream_server_origin(const upstream_pool *pool, uint32_t index)
{
	if (index >= pool->count)
		return "";
	int32_t line = pool->servers[index].line;
	return line >= 0 && pool->names ? pool->names[line].host : "";
}
