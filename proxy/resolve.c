#include "proxy/resolve.h"

#include <ares.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "poll/poll.h"
#include "proxy/log.h"
#include "proxy/netaddr.h"

/* c-ares's own per-try timeout and tries: a dead DNS server is given up
 * on after about 3 s (two tries, the second with a doubled timeout). */
#define RESOLVE_TRY_MS 1000
#define RESOLVE_TRIES 2
/* The longest a query can take: a board answer older than its owner's
 * next look by more than this and two resolve_min is from a gone owner. */
#define RESOLVE_QUERY_NS (INT64_C(4) * 1000 * 1000 * 1000)
/* How often a shard that does not own a name looks at the board while it
 * waits for the owner's first answer (for at most RESOLVE_QUERY_NS). */
#define RESOLVE_BOARD_POLL_NS (INT64_C(20) * 1000 * 1000)
/* Sockets c-ares may have open at once (one UDP per DNS server, TCP for
 * truncated answers). */
#define RESOLVE_MAX_SOCKS 32
/* Reads of one socket in a row while it stays readable (TCP answers come
 * in pieces; UDP is read until empty by c-ares itself). */
#define RESOLVE_MAX_ROUNDS 16
#define DNS_CLASS_IN 1
_Static_assert(SHARD_NAME_BOARD_ENTRIES >= UPSTREAM_NAME_MAX_SERVERS,
	       "the name board must hold a whole answer");
#define DNS_TYPE_SRV 33

typedef struct resolver resolver;

typedef struct resolve_sock {
	resolver *res;
	int fd;              /* c-ares's own; the pd holds a duplicate */
	poll_desc *pd;
	bool in_use;
	bool want_read, want_write;
	bool armed_read, armed_write;
	bool ready_read, ready_write;
} resolve_sock;

struct resolver {
	ares_channel channel;
	resolve_params params;
	resolve_sock socks[RESOLVE_MAX_SOCKS];
	sched_timer kick;     /* process the sockets marked ready */
	sched_timer timeout;  /* c-ares's next retransmit or give-up */
	bool closing;
};

uint32_t resolve_owner(uint32_t shards, uint32_t row)
{
	return shards == 0 ? 0 : row % shards;
}

/* --- c-ares on the poller ------------------------------------------------ */

static void timeout_rearm(resolver *res)
{
	struct timeval tv, *next = ares_timeout(res->channel, NULL, &tv);

	if (!next || res->closing) {
		sched_timer_cancel(&res->timeout);
		return;
	}
	int64_t ns = (int64_t)next->tv_sec * 1000000000 + next->tv_usec * 1000;
	sched_timer_set(&res->timeout, sched_now() + ns);
}

static void kick_soon(resolver *res)
{
	if (!res->closing && !sched_timer_pending(&res->kick))
		sched_timer_set(&res->kick, sched_now());
}

static void on_ready(poll_desc *pd, resolve_sock *s, bool read)
{
	if (!s->in_use || s->pd != pd)
		return; /* pd_close fired it: c-ares is done with the socket */
	if (read) {
		s->armed_read = false;
		s->ready_read = true;
	} else {
		s->armed_write = false;
		s->ready_write = true;
	}
	kick_soon(s->res);
}

static void on_readable(poll_desc *pd, void *arg)
{
	on_ready(pd, arg, true);
}

static void on_writable(poll_desc *pd, void *arg)
{
	on_ready(pd, arg, false);
}

/* Arm the watches the socket wants; a direction already ready is marked
 * for the next kick instead. */
static void sock_arm(resolve_sock *s)
{
	if (s->want_read && !s->armed_read && !s->ready_read) {
		int rc = pd_watch(s->pd, PD_READ, on_readable, s);
		s->armed_read = rc == 0;
		s->ready_read = rc == 1;
	}
	if (s->want_write && !s->armed_write && !s->ready_write) {
		int rc = pd_watch(s->pd, PD_WRITE, on_writable, s);
		s->armed_write = rc == 0;
		s->ready_write = rc == 1;
	}
	if (s->ready_read || s->ready_write)
		kick_soon(s->res);
}

static resolve_sock *sock_find(resolver *res, int fd)
{
	for (int i = 0; i < RESOLVE_MAX_SOCKS; i++)
		if (res->socks[i].in_use && res->socks[i].fd == fd)
			return &res->socks[i];
	return NULL;
}

static resolve_sock *sock_add(resolver *res, int fd)
{
	for (int i = 0; i < RESOLVE_MAX_SOCKS; i++) {
		resolve_sock *s = &res->socks[i];
		poll_desc *pd;
		if (s->in_use)
			continue;
		/* A duplicate for the poller: c-ares closes its own fd. */
		int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
		if (dup_fd < 0)
			return NULL;
		if (pd_open(dup_fd, &pd) < 0) {
			close(dup_fd);
			return NULL;
		}
		*s = (resolve_sock){.res = res, .fd = fd, .pd = pd, .in_use = true};
		return s;
	}
	return NULL;
}

static void sock_drop(resolve_sock *s)
{
	poll_desc *pd = s->pd;

	s->in_use = false;
	s->pd = NULL;
	pd_close(pd); /* its watches fire and see the slot gone */
}

/* c-ares: which sockets it wants watched, and for what. */
static void sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	resolver *res = data;
	resolve_sock *s = sock_find(res, fd);

	if (!readable && !writable) {
		if (s)
			sock_drop(s);
		return;
	}
	if (!s && !(s = sock_add(res, fd))) {
		/* Not watched: its query times out on the timer and fails. */
		log_line(LOG_LEVEL_WARN, "resolver cannot watch a socket", "fd=%d", fd);
		return;
	}
	s->want_read = readable;
	s->want_write = writable;
	if (!res->closing)
		sock_arm(s);
}

/* One socket marked ready: let c-ares read or write it, again while it
 * stays readable (see RESOLVE_MAX_ROUNDS). */
static void sock_process(resolver *res, resolve_sock *s)
{
	for (int round = 0; round < RESOLVE_MAX_ROUNDS; round++) {
		poll_desc *pd = s->pd;
		int fd = s->fd;
		ares_socket_t rfd = s->ready_read ? fd : ARES_SOCKET_BAD;
		ares_socket_t wfd = s->ready_write ? fd : ARES_SOCKET_BAD;
		s->ready_read = s->ready_write = false;
		ares_process_fd(res->channel, rfd, wfd);
		/* c-ares may have closed it (sock_state dropped the slot). */
		if (!s->in_use || s->pd != pd || rfd == ARES_SOCKET_BAD)
			return;
		int now = pd_ready_now(pd);
		if (now < 0 || !(now & PD_READ) || !s->want_read)
			return;
		s->ready_read = true;
	}
}

static void kick_fired(sched_timer *timer, void *arg)
{
	resolver *res = arg;

	(void)timer;
	for (int i = 0; i < RESOLVE_MAX_SOCKS && !res->closing; i++) {
		resolve_sock *s = &res->socks[i];
		if (s->in_use && (s->ready_read || s->ready_write))
			sock_process(res, s);
	}
	for (int i = 0; i < RESOLVE_MAX_SOCKS && !res->closing; i++)
		if (res->socks[i].in_use)
			sock_arm(&res->socks[i]);
	timeout_rearm(res);
}

static void timeout_fired(sched_timer *timer, void *arg)
{
	resolver *res = arg;

	(void)timer;
	ares_process_fd(res->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	for (int i = 0; i < RESOLVE_MAX_SOCKS && !res->closing; i++)
		if (res->socks[i].in_use)
			sock_arm(&res->socks[i]);
	timeout_rearm(res);
}

/* --- open and close -------------------------------------------------------- */

int resolver_open(resolver **out, const resolve_params *params, char *why,
		  size_t why_len)
{
	struct ares_options opts = {0};
	int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES;
	int rc = ares_library_init(ARES_LIB_INIT_ALL);

	if (rc != ARES_SUCCESS) {
		snprintf(why, why_len, "c-ares: %s", ares_strerror(rc));
		return -ENOMEM;
	}
	resolver *res = calloc(1, sizeof(*res));
	if (!res)
		return -ENOMEM;
	res->params = *params;
	sched_timer_init(&res->kick, kick_fired, res);
	sched_timer_init(&res->timeout, timeout_fired, res);
	opts.sock_state_cb = sock_state;
	opts.sock_state_cb_data = res;
	opts.timeout = RESOLVE_TRY_MS;
	opts.tries = RESOLVE_TRIES;
	rc = ares_init_options(&res->channel, &opts, mask);
	if (rc != ARES_SUCCESS) {
		snprintf(why, why_len, "c-ares: %s", ares_strerror(rc));
		free(res);
		return -EINVAL;
	}
	if (params->servers &&
	    (rc = ares_set_servers_ports_csv(res->channel, params->servers)) !=
		    ARES_SUCCESS) {
		snprintf(why, why_len, "resolvers '%s': %s", params->servers,
			 ares_strerror(rc));
		ares_destroy(res->channel);
		free(res);
		return -EINVAL;
	}
	*out = res;
	return 0;
}

void resolver_close(resolver *res)
{
	if (!res)
		return;
	res->closing = true;
	sched_timer_cancel(&res->kick);
	sched_timer_cancel(&res->timeout);
	/* Pending queries end with ARES_EDESTRUCTION, which callbacks skip;
	 * c-ares closes its sockets, and sock_state their pollDescs. */
	ares_destroy(res->channel);
	for (int i = 0; i < RESOLVE_MAX_SOCKS; i++)
		if (res->socks[i].in_use)
			sock_drop(&res->socks[i]);
	free(res);
}

/* --- one answer ------------------------------------------------------------ */

static int spec_cmp(const void *a, const void *b)
{
	const upstream_spec *x = a, *y = b;
	char sx[NETADDR_STRLEN], sy[NETADDR_STRLEN];

	netaddr_format((const struct sockaddr *)&x->addr.ss, sx, sizeof(sx));
	netaddr_format((const struct sockaddr *)&y->addr.ss, sy, sizeof(sy));
	return strcmp(sx, sy);
}

/* Add one address (no duplicates, at most the bound) to the answer. */
static void found_add(resolve_name *name, const struct sockaddr *sa,
		      unsigned port, unsigned weight)
{
	upstream_spec spec = {.weight = weight};

	if (name->found_count >= RESOLVE_FOUND_MAX) {
		name->truncated = true;
		return;
	}
	if (sa->sa_family == AF_INET) {
		struct sockaddr_in in = *(const struct sockaddr_in *)sa;
		in.sin_port = htons((uint16_t)port);
		memcpy(&spec.addr.ss, &in, sizeof(in));
		spec.addr.len = sizeof(in);
	} else if (sa->sa_family == AF_INET6) {
		struct sockaddr_in6 in6 = *(const struct sockaddr_in6 *)sa;
		in6.sin6_port = htons((uint16_t)port);
		memcpy(&spec.addr.ss, &in6, sizeof(in6));
		spec.addr.len = sizeof(in6);
	} else {
		return;
	}
	for (uint32_t i = 0; i < name->found_count; i++)
		if (netaddr_equal((const struct sockaddr *)&name->found[i].addr.ss,
				  (const struct sockaddr *)&spec.addr.ss))
			return;
	name->found[name->found_count++] = spec;
}

static void ttl_take(resolve_name *name, uint32_t ttl)
{
	if (ttl < name->ttl_s)
		name->ttl_s = ttl;
}

static int64_t clamp_ns(const resolver *res, int64_t ns)
{
	if (ns < res->params.min_ns)
		return res->params.min_ns;
	return ns > res->params.max_ns ? res->params.max_ns : ns;
}

static bool name_shared(const resolve_name *name)
{
	return name->res->params.board && name->res->params.shard_count > 1;
}

static bool name_is_mine(const resolve_name *name)
{
	const resolve_params *p = &name->res->params;

	return !name_shared(name) ||
	       resolve_owner(p->shard_count, name->board_row) == p->shard_index;
}

static void board_publish(resolve_name *name, int64_t next_ns)
{
	const resolve_params *p = &name->res->params;
	shard_name_answer a = {.generation = p->generation,
			       .count = name->good_count,
			       /* a restarted owner must not repeat a version */
			       .version = (uint64_t)getpid() << 32 | name->resolutions,
			       .next_ms = next_ns / 1000000,
			       .ttl_s = name->ttl_s,
			       .answered = name->answered};

	if (!name_shared(name) || !name_is_mine(name))
		return;
	for (uint32_t i = 0; i < name->good_count && i < SHARD_NAME_BOARD_ENTRIES; i++) {
		const struct sockaddr *sa = (const struct sockaddr *)&name->good[i].addr.ss;
		shard_name_entry *e = &a.entries[i];
		e->family = (uint8_t)sa->sa_family;
		e->weight = (uint16_t)name->good[i].weight;
		e->port = (uint16_t)netaddr_port(sa);
		if (sa->sa_family == AF_INET)
			memcpy(e->addr, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		else
			memcpy(e->addr, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
	}
	shard_name_publish(p->board, name->board_row, &a);
}

/* The lookup is over: hand the answer (or the failure) on, publish it,
 * and set the next look. The last good answer stays with the user. */
static void name_done(resolve_name *name, const char *error)
{
	resolver *res = name->res;
	int64_t next = res->params.min_ns;
	resolve_result r = {.error = error};

	name->busy = false;
	name->settled = true;
	if (!error && name->found_count == 0)
		r.error = error = "no addresses";
	if (error) {
		name->failures++;
	} else {
		name->resolutions++;
		name->answered = true;
		qsort(name->found, name->found_count, sizeof(name->found[0]), spec_cmp);
		if (name->found_count > UPSTREAM_NAME_MAX_SERVERS) {
			name->truncated = true;
			name->found_count = UPSTREAM_NAME_MAX_SERVERS;
		}
		if (name->truncated && !name->said_truncated)
			log_line(LOG_LEVEL_WARN, "server name has more addresses than used",
				 "name=%s used=%u", name->spec->host, name->found_count);
		name->said_truncated = name->truncated;
		memcpy(name->good, name->found, name->found_count * sizeof(name->found[0]));
		name->good_count = name->found_count;
		r.servers = name->good;
		r.count = name->good_count;
		r.ttl_s = name->ttl_s;
		next = clamp_ns(res, (int64_t)name->ttl_s * 1000000000);
	}
	board_publish(name, sched_now() + next);
	sched_timer_set(&name->timer, sched_now() + next);
	name->fn(name->arg, &r);
}

/* --- A and AAAA -------------------------------------------------------------- */

static void addrinfo_take(resolve_name *name, const struct ares_addrinfo *ai,
			  unsigned port, unsigned weight)
{
	for (const struct ares_addrinfo_node *n = ai->nodes; n; n = n->ai_next) {
		found_add(name, n->ai_addr, port, weight);
		ttl_take(name, n->ai_ttl > 0 ? (uint32_t)n->ai_ttl : 0);
	}
}

static void host_answered(void *arg, int status, int timeouts,
			  struct ares_addrinfo *ai)
{
	resolve_name *name = arg;

	(void)timeouts;
	if (status == ARES_EDESTRUCTION || name->res->closing) {
		ares_freeaddrinfo(ai);
		return;
	}
	if (status == ARES_SUCCESS && ai)
		addrinfo_take(name, ai, name->spec->port, name->spec->weight);
	ares_freeaddrinfo(ai);
	name_done(name, status == ARES_SUCCESS ? NULL : ares_strerror(status));
}

static void lookup_host(resolve_name *name, const char *host, void *arg,
			ares_addrinfo_callback cb)
{
	struct ares_addrinfo_hints hints = {.ai_family = AF_UNSPEC,
					    .ai_socktype = SOCK_STREAM,
					    .ai_flags = ARES_AI_NOSORT};

	ares_getaddrinfo(name->res->channel, host, NULL, &hints, cb, arg);
}

/* --- SRV ------------------------------------------------------------------------ */

typedef struct srv_target {
	resolve_name *name;
	unsigned port;
	unsigned weight;
} srv_target;

static void target_answered(void *arg, int status, int timeouts,
			    struct ares_addrinfo *ai)
{
	srv_target *t = arg;
	resolve_name *name = t->name;

	(void)timeouts;
	if (status != ARES_EDESTRUCTION && !name->res->closing) {
		if (status == ARES_SUCCESS && ai)
			addrinfo_take(name, ai, t->port, t->weight);
		if (--name->waiting == 0)
			name_done(name, NULL); /* "no addresses" when none came */
	}
	ares_freeaddrinfo(ai);
	free(t);
}

static size_t dns_skip_name(const unsigned char *p, size_t len, size_t at)
{
	while (at < len) {
		unsigned char c = p[at];
		if ((c & 0xc0) == 0xc0)
			return at + 2;
		if (c == 0)
			return at + 1;
		at += (size_t)c + 1;
	}
	return len + 1;
}

/* The smallest TTL of the answer section (ares_parse_srv_reply keeps
 * none). */
static uint32_t dns_min_ttl(const unsigned char *p, size_t len)
{
	uint32_t best = UINT32_MAX;

	if (len < 12)
		return 0;
	unsigned qd = (unsigned)(p[4] << 8 | p[5]), an = (unsigned)(p[6] << 8 | p[7]);
	size_t at = 12;
	for (unsigned i = 0; i < qd; i++)
		at = dns_skip_name(p, len, at) + 4;
	for (unsigned i = 0; i < an && at < len; i++) {
		at = dns_skip_name(p, len, at);
		if (at + 10 > len)
			break;
		uint32_t ttl = (uint32_t)p[at + 4] << 24 | (uint32_t)p[at + 5] << 16 |
			       (uint32_t)p[at + 6] << 8 | p[at + 7];
		if (ttl < best)
			best = ttl;
		at += 10 + (size_t)(p[at + 8] << 8 | p[at + 9]);
	}
	return best == UINT32_MAX ? 0 : best;
}

static unsigned srv_weight(unsigned w)
{
	if (w < 1)
		return 1;
	return w > SHARD_SERVER_MAX_WEIGHT ? SHARD_SERVER_MAX_WEIGHT : w;
}

static void srv_answered(void *arg, int status, int timeouts,
			 unsigned char *abuf, int alen)
{
	resolve_name *name = arg;
	struct ares_srv_reply *list = NULL;

	(void)timeouts;
	if (status == ARES_EDESTRUCTION || name->res->closing)
		return;
	if (status == ARES_SUCCESS)
		status = ares_parse_srv_reply(abuf, alen, &list);
	if (status != ARES_SUCCESS) {
		name_done(name, ares_strerror(status));
		return;
	}
	ttl_take(name, dns_min_ttl(abuf, (size_t)alen));
	unsigned short best = USHRT_MAX;
	for (struct ares_srv_reply *r = list; r; r = r->next)
		if (r->priority < best)
			best = r->priority;
	/* One more than the targets, so none can finish the answer before
	 * every lookup has been started. */
	name->waiting = 1;
	uint32_t started = 0;
	for (struct ares_srv_reply *r = list; r; r = r->next) {
		if (r->priority != best || started == RESOLVE_FOUND_MAX)
			continue;
		srv_target *t = malloc(sizeof(*t));
		if (!t)
			break;
		*t = (srv_target){name, r->port, srv_weight(r->weight)};
		name->waiting++;
		started++;
		lookup_host(name, r->host, t, target_answered);
	}
	ares_free_data(list);
	if (--name->waiting == 0)
		name_done(name, started ? NULL : "no SRV records");
}

/* --- looking again ------------------------------------------------------------- */

static void name_query(resolve_name *name)
{
	name->busy = true;
	name->truncated = false;
	name->found_count = 0;
	name->waiting = 0;
	name->ttl_s = UINT32_MAX;
	if (name->spec->srv)
		ares_query(name->res->channel, name->spec->host, DNS_CLASS_IN,
			   DNS_TYPE_SRV, srv_answered, name);
	else
		lookup_host(name, name->spec->host, name, host_answered);
	timeout_rearm(name->res);
}

/* The owner's answer from the board: true when it is fresh (taken or
 * already had), false when this shard must ask itself. */
static bool board_take(resolve_name *name)
{
	const resolve_params *p = &name->res->params;
	shard_name_answer a;
	int64_t now = sched_now();
	int64_t grace = 2 * p->min_ns + RESOLVE_QUERY_NS;

	if (shard_name_read(p->board, name->board_row, &a) < 0 ||
	    a.generation != p->generation || now > a.next_ms * 1000000 + grace)
		return false;
	name->settled = true;
	if (a.version == name->board_seq || !a.answered || a.count == 0)
		return true;
	name->board_seq = a.version;
	name->found_count = 0;
	for (uint32_t i = 0; i < a.count && i < SHARD_NAME_BOARD_ENTRIES; i++) {
		const shard_name_entry *e = &a.entries[i];
		struct sockaddr_storage ss = {0};
		if (e->family == AF_INET) {
			struct sockaddr_in *in = (struct sockaddr_in *)&ss;
			in->sin_family = AF_INET;
			memcpy(&in->sin_addr, e->addr, 4);
		} else {
			struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
			in6->sin6_family = AF_INET6;
			memcpy(&in6->sin6_addr, e->addr, 16);
		}
		found_add(name, (const struct sockaddr *)&ss, e->port, e->weight);
	}
	name->answered = true;
	memcpy(name->good, name->found, name->found_count * sizeof(name->found[0]));
	name->good_count = name->found_count;
	resolve_result r = {.servers = name->good, .count = name->good_count,
			    .ttl_s = a.ttl_s, .from_board = true};
	name->fn(name->arg, &r);
	return true;
}

static void name_timer_fired(sched_timer *timer, void *arg)
{
	resolve_name *name = arg;

	(void)timer;
	if (name->res->closing || name->busy)
		return;
	if (!name_is_mine(name)) {
		int64_t now = sched_now();
		if (board_take(name)) {
			sched_timer_set(&name->timer, now + name->res->params.min_ns);
			return;
		}
		/* At start the owner is still asking: look again soon. */
		if (!name->settled && now - name->started_ns < RESOLVE_QUERY_NS) {
			sched_timer_set(&name->timer, now + RESOLVE_BOARD_POLL_NS);
			return;
		}
	}
	name_query(name);
}

void resolve_name_start(resolver *res, resolve_name *name,
			const upstream_name *spec, uint32_t board_row,
			resolve_fn fn, void *arg)
{
	*name = (resolve_name){.res = res, .spec = spec, .board_row = board_row,
			       .fn = fn, .arg = arg};
	sched_timer_init(&name->timer, name_timer_fired, name);
	name->started_ns = sched_now();
	sched_timer_set(&name->timer, name->started_ns);
}

void resolve_name_stop(resolve_name *name)
{
	sched_timer_cancel(&name->timer);
}
