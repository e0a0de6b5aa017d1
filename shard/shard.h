/*
 * shard/ — the process model: a supervisor that owns the listening sockets
 * and the metrics mapping, and forks one shard process per core.
 *
 *   supervisor: binds, for every listener, one SO_REUSEPORT socket per shard
 *   and keeps them all; creates the shared metrics mapping; forks shards;
 *   replaces a shard that dies on the same sockets (so its accept queue is
 *   served, not reset); SIGTERM/SIGINT drain, SIGHUP reload (new shards one
 *   at a time, old ones retire), SIGUSR2 binary upgrade (the binary at
 *   its path takes over the sockets and the shards' connections),
 *   admin endpoint (GET /metrics, GET /stats).
 *
 *   shard: a child that runs the caller's `run` on its own sockets and
 *   publishes counters into its slot of the mapping. It makes its scheduler,
 *   poller and io_uring ring after the fork (inside `run`).
 *
 * The layer knows nothing of frames or relays: the application above hands
 * it callbacks, names its listeners, describes its counters in tables and
 * fills the counter slots by them. The supervisor reads slots without
 * involving the shards.
 *
 * Signals a shard receives from its supervisor:
 *   SIGTERM  drain: stop accepting, finish frames in flight, close at frame
 *            boundaries, exit within drain_timeout.
 *   SIGUSR1  retire (reload): stop accepting, keep serving the connections it
 *            has until they end; at drain_timeout drain as for SIGTERM.
 *            With handoff on, the supervisor first sends it (on its control
 *            socket) a channel to its successor, made when that one was
 *            forked, over which it may hand its connections on.
 */
#ifndef FRAMEPROXY_SHARD_SHARD_H
#define FRAMEPROXY_SHARD_SHARD_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "poll/poll.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SHARD_MAX_LISTENERS 16
#define SHARD_MAX_UPSTREAMS 64       /* per shard, all listeners together */
#define SHARD_MAX_NAMES 32           /* server names, all listeners together */
#define SHARD_NAME_MAX 64
#define SHARD_RETIRE_SIGNAL SIGUSR1
/* To the supervisor: run the binary at its path in its place. */
#define SHARD_UPGRADE_SIGNAL SIGUSR2

#ifdef __cplusplus
#define SHARD_ALIGNAS(n) alignas(n)
#else
#define SHARD_ALIGNAS(n) _Alignas(n)
#endif

/* --- metric tables -------------------------------------------------------- */

/*
 * Every metric family is one entry of a table, and everything about it
 * follows from that entry: where its values sit in a slot, how the
 * supervisor adds them up, its Prometheus family, its /stats key(s) and its
 * row in docs/METRICS.md (shard_metrics_markdown; a test fails while that
 * file is not what the tables give). There is a table per scope: per shard,
 * per listener, per upstream. shard/ has its own table of runtime figures
 * (scheduler, poller, process); the application's tables come in
 * shard_settings.metrics, so this layer moves and renders counters it does
 * not know by name.
 *
 * A family owns `width` consecutive values of its scope, the first family's
 * from 0, each next family's right after the one before: one value, or one
 * per value of its label, or a histogram's (below). Adding a counter is one
 * entry in a table and the code that publishes it.
 *
 * Across the processes that share a shard index (a reload, a restart) and
 * over time: a counter adds up and survives its processes (retired totals,
 * shard/metrics.h); a gauge comes only from live processes and is their sum
 * (SHARD_MERGE_SUM) or the value of the newest generation that has it
 * (SHARD_MERGE_NEWEST; Prometheus then leaves the series out while no live
 * process has it, /stats shows 0).
 *
 * A histogram has fixed upper bounds (`bounds`, strictly increasing, in the
 * family's unit) and SHARD_HISTOGRAM_WIDTH(bound_count) values: for bound
 * k the observations in (bounds[k-1], bounds[k]] (not cumulative: one store
 * per observation), then those above the last bound, then the sum of all
 * of them; its count is the sum of its buckets, so count and the +Inf
 * bucket always agree.
 * It adds up like a counter (retired totals included), and is rendered as a
 * Prometheus histogram (_bucket{le} cumulative with +Inf, _sum, _count) and
 * in /stats as {"count":N,"sum":S,"buckets":[[le,cumulative count],...]}
 * over the finite bounds. shard_histogram_observe records one observation.
 */
typedef enum shard_metric_type {
	SHARD_COUNTER = 0,            /* monotonic; the name ends in _total */
	SHARD_GAUGE,
	SHARD_HISTOGRAM,              /* no label; merged as a counter */
} shard_metric_type;

#define SHARD_HISTOGRAM_MAX_BOUNDS 30
#define SHARD_HISTOGRAM_WIDTH(bound_count) ((bound_count) + 2)

typedef enum shard_metric_merge {
	SHARD_MERGE_SUM = 0,          /* the only one for counters */
	SHARD_MERGE_NEWEST,
} shard_metric_merge;

typedef enum shard_metric_unit {
	SHARD_UNIT_NONE = 0,
	SHARD_UNIT_NS,                /* published in ns, rendered as seconds */
} shard_metric_unit;

typedef struct shard_metric {
	const char *name;             /* family name after "frameproxy_" */
	const char *help;
	shard_metric_type type;
	shard_metric_merge merge;
	shard_metric_unit unit;
	uint32_t width;               /* values: 1, or one per label value */
	const char *label;            /* the label's name; needed for width > 1 */
	/* Its k-th value; NULL (or no function) gives "<label><k>". */
	const char *(*label_value)(uint32_t k);
	/* /stats: the key in its scope's object (NULL: not in /stats). A
	 * labelled family is an object there keyed by label value, unless
	 * json_each names one flat key per value instead. */
	const char *json;
	const char *const *json_each;
	/* Per listener, flat families only: they are also summed over the
	 * shard's listeners into the shard's object, under this key (NULL: the
	 * same key(s) as in the listener's). */
	const char *json_total;
	/* SHARD_HISTOGRAM only: its upper bounds, in its unit; width is
	 * SHARD_HISTOGRAM_WIDTH(bound_count). */
	const uint64_t *bounds;
	uint32_t bound_count;
} shard_metric;

typedef struct shard_metric_list {
	const shard_metric *metrics;
	uint32_t count;
} shard_metric_list;

/* The application's tables. Their values must fit a slot: per shard
 * SHARD_MAX_APP_VALUES, per listener SHARD_MAX_LISTENER_VALUES, per upstream
 * SHARD_MAX_UPSTREAM_VALUES (shard_metrics_check). */
typedef struct shard_app_metrics {
	shard_metric_list shard;
	shard_metric_list listener;
	shard_metric_list upstream;
	shard_metric_list name;       /* per server name (DNS-named line) */
} shard_app_metrics;

/*
 * A table is easiest written as an X-macro, X(id, width, initialisers...),
 * one entry per family: SHARD_METRIC_ENUM makes from it an enum of the index
 * of each family's first value (and id##_LAST, its last), SHARD_METRIC_ENTRY
 * its array of shard_metric, so the two cannot disagree.
 */
#define SHARD_METRIC_ENUM(id, n, ...) id, id##_LAST = id + (n) - 1,
#define SHARD_METRIC_ENTRY(id, n, ...) { .width = (n), __VA_ARGS__ },

/* 0, or -EINVAL with one line in `why`: a table that does not fit a slot or
 * an entry that breaks the rules above. NULL app: only shard/'s own table. */
int shard_metrics_check(const shard_app_metrics *app, char *why, size_t why_len);

/*
 * One observation of `value` (in the family's unit) into a histogram's
 * values (its first at `values`), by its bounds: a count of the bounds
 * below the value, without branches, picks the bucket.
 */
static inline void shard_histogram_observe(uint64_t *values,
					   const uint64_t *bounds,
					   uint32_t bound_count, uint64_t value)
{
	uint32_t k = 0;

	for (uint32_t i = 0; i < bound_count; i++)
		k += value > bounds[i];
	values[k]++;
	values[bound_count + 1] += value;
}

/* docs/METRICS.md's generated part: every family of /metrics, shard/'s
 * and the application's, with its type, label, /stats key(s) and help, as
 * Markdown tables. 0, -EINVAL (shard_metrics_check) or -EIO. */
int shard_metrics_markdown(const shard_app_metrics *app, FILE *out);

/* --- counters in shared memory -------------------------------------------- */

#define SHARD_MAX_RUNTIME_VALUES 16  /* shard/'s own table */
#define SHARD_MAX_APP_VALUES 16      /* the application's, per shard */
/* The listener table: its counters and a close count per reason. */
#define SHARD_MAX_LISTENER_VALUES 64
/* A latency histogram (SHARD_HISTOGRAM_WIDTH(17)) and a dozen counters. */
#define SHARD_MAX_UPSTREAM_VALUES 40
/* A few figures of a server name's lookups. */
#define SHARD_MAX_NAME_VALUES 8

typedef enum shard_state {
	SHARD_STATE_FREE = 0,     /* slot unused */
	SHARD_STATE_STARTING,
	SHARD_STATE_READY,        /* accepting */
	SHARD_STATE_RETIRING,     /* reload: serving what it has */
	SHARD_STATE_DRAINING,     /* closing at frame boundaries */
} shard_state;

typedef struct shard_slot_listener {
	char name[SHARD_NAME_MAX];
	uint64_t values[SHARD_MAX_LISTENER_VALUES]; /* by the listener table */
} shard_slot_listener;

typedef struct shard_slot_upstream {
	char name[SHARD_NAME_MAX];    /* ip:port */
	char origin[SHARD_NAME_MAX];  /* the server name it came from, or "" */
	uint32_t listener;            /* index into the slot's listeners */
	uint32_t name_seq;            /* odd while name and listener change */
	uint64_t values[SHARD_MAX_UPSTREAM_VALUES]; /* by the upstream table */
} shard_slot_upstream;

/* A server line naming a host (or an SRV name): one per line, named before
 * the state becomes READY like the listeners (lines come from the config
 * and do not change while the shard runs). */
typedef struct shard_slot_server_name {
	char name[SHARD_NAME_MAX];    /* the host or SRV name */
	uint32_t listener;            /* index into the slot's listeners */
	uint32_t pad;
	uint64_t values[SHARD_MAX_NAME_VALUES]; /* by the name table */
} shard_slot_server_name;

/*
 * One shard's counters. Only that shard writes it (plain 64-bit stores,
 * through shard_slot_store), the supervisor only reads; names are written
 * before the state becomes READY. Slots are cache-line aligned so shards
 * never share a line.
 */
typedef struct shard_slot {
	SHARD_ALIGNAS(64) uint32_t state;  /* shard_state */
	uint32_t index;               /* shard number, 0..shards-1 */
	uint32_t generation;          /* bumped by every reload */
	int32_t pid;
	char poller[16];              /* "epoll" / "uring" */
	int64_t published_ns;         /* CLOCK_MONOTONIC of the last publish */
	uint64_t runtime[SHARD_MAX_RUNTIME_VALUES]; /* shard_slot_publish_runtime */
	uint64_t app[SHARD_MAX_APP_VALUES];         /* by the per-shard table */
	uint32_t listener_count;
	uint32_t upstream_count;
	uint32_t name_count;
	shard_slot_listener listeners[SHARD_MAX_LISTENERS];
	shard_slot_upstream upstreams[SHARD_MAX_UPSTREAMS];
	shard_slot_server_name names[SHARD_MAX_NAMES];
} shard_slot;

/* A relaxed 64-bit store the reader can never see torn. */
static inline void shard_slot_store(uint64_t *field, uint64_t value)
{
	__atomic_store_n(field, value, __ATOMIC_RELAXED);
}

static inline uint64_t shard_slot_load(const uint64_t *field)
{
	return __atomic_load_n(field, __ATOMIC_RELAXED);
}

void shard_slot_set_state(shard_slot *slot, shard_state state);
shard_state shard_slot_get_state(const shard_slot *slot);
/* Copies a name (truncated, always terminated). */
void shard_slot_name(char dst[SHARD_NAME_MAX], const char *src);
/* Names an upstream row while the shard runs (servers from DNS come and
 * go): under the row's name_seq, so a reader never takes half a name.
 * `origin` is the server name it came from (NULL or "" for a literal
 * address), shown as the series' server_name. */
void shard_slot_upstream_name(shard_slot_upstream *row, const char *name,
			      uint32_t listener, const char *origin);
/* Scheduler, poller, CPU time and RSS of the calling process into the slot. */
void shard_slot_publish_runtime(shard_slot *slot);

/* --- active health results shared between shards --------------------------- */

/*
 * Each server of each listener is health-checked by one shard, its owner
 * (shard_health_owner); the owner publishes every result on the board, a
 * shared mapping the supervisor made before forking, and the other shards
 * read it instead of checking the server themselves. A result is trusted only
 * from the readers' own configuration generation and while it is younger
 * than the reader's max_age: when the owner is gone, restarting or from an
 * older generation, readers see SHARD_HEALTH_UNKNOWN and check on their own.
 * Each entry is one 64-bit word (generation, state, time), so a reader never
 * sees a torn result.
 */
#define SHARD_HEALTH_MAX_SERVERS 256 /* per listener; more are checked locally */

typedef struct shard_health_board shard_health_board;

typedef enum shard_health {
	SHARD_HEALTH_UNKNOWN = 0,
	SHARD_HEALTH_UP,
	SHARD_HEALTH_DOWN,
} shard_health;

/* Owners spread over the shards; the same answer in every shard. */
uint32_t shard_health_owner(uint32_t shards, uint32_t listener, uint32_t server);
/* now_ns: CLOCK_MONOTONIC (one clock for every process). No-op out of range. */
void shard_health_publish(shard_health_board *board, uint32_t generation,
			  uint32_t listener, uint32_t server, shard_health state,
			  int64_t now_ns);
shard_health shard_health_read(const shard_health_board *board,
			       uint32_t generation, uint32_t listener,
			       uint32_t server, int64_t now_ns, int64_t max_age_ns);
/* For tests and the supervisor: a zeroed board (MAP_SHARED), or NULL. */
shard_health_board *shard_health_board_map(void);
void shard_health_board_unmap(shard_health_board *board);

/* --- servers' admin state shared between shards --------------------------- */

/*
 * What an operator set through the admin endpoint (POST /servers/L/S):
 * drain (no new connections or requests, the ones there finish) or maint
 * (drain, and no health checks), and a weight in place of the configured
 * one. Rows are keyed by listener name and server address (ip:port), so
 * they hold across reloads and shard restarts; the supervisor alone writes
 * (one row under a sequence lock, then the board's version), shards read
 * when the version moved. No row: ready at the configured weight.
 */
#define SHARD_SERVER_BOARD_ROWS 512
/* The largest weight a server takes, in the config or from the admin
 * endpoint: one bound for both, and the balancer's (proxy/balance.h). */
#define SHARD_SERVER_MAX_WEIGHT 256

typedef enum shard_server_admin {
	SHARD_SERVER_READY = 0,
	SHARD_SERVER_DRAIN,
	SHARD_SERVER_MAINT,
} shard_server_admin;

typedef struct shard_server_board shard_server_board;

typedef struct shard_server_row {
	char listener[SHARD_NAME_MAX];
	char server[SHARD_NAME_MAX];
	shard_server_admin state;
	uint32_t weight;              /* 0: the configured one */
} shard_server_row;

/* A zeroed board (MAP_SHARED), or NULL. */
shard_server_board *shard_server_board_map(void);
void shard_server_board_unmap(shard_server_board *board);
/* Bumped by every change (0 for a NULL board). */
uint64_t shard_server_board_version(const shard_server_board *board);
/* Supervisor: set a server's admin state (ready with weight 0 clears its
 * row). 0, -EINVAL (no board) or -ENOSPC (every row in use). */
int shard_server_board_set(shard_server_board *board, const char *listener,
			   const char *server, shard_server_admin state,
			   uint32_t weight);
/* True, with its state and weight, when the server has a row. */
bool shard_server_board_get(const shard_server_board *board,
			    const char *listener, const char *server,
			    shard_server_admin *state, uint32_t *weight);
/* Supervisor: clear the rows `keep` says no to. */
void shard_server_board_prune(shard_server_board *board,
			      bool (*keep)(void *arg, const char *listener,
					   const char *server),
			      void *arg);
/* Supervisor: row k (0..SHARD_SERVER_BOARD_ROWS-1) if in use, else -ENOENT. */
int shard_server_board_row(const shard_server_board *board, uint32_t k,
			   shard_server_row *out);
/* "ready", "drain", "maint". */
const char *shard_server_admin_name(shard_server_admin state);

/* --- server names shared between shards ------------------------------------ */

/*
 * One shard resolves each server name and publishes the answer in its row
 * of the name board, a shared mapping the supervisor made before forking;
 * the other shards read the row instead of asking the DNS server too. The
 * row says when its owner will look again (next_ms), so a reader can tell a
 * live owner from a gone one. A row is written whole under a sequence lock:
 * a reader never sees half of an answer.
 */
#define SHARD_NAME_BOARD_ROWS 128
#define SHARD_NAME_BOARD_ENTRIES 16

typedef struct shard_name_entry {
	uint8_t addr[16];   /* IPv4 in the first 4 bytes */
	uint16_t port;
	uint16_t weight;
	uint8_t family;     /* AF_INET or AF_INET6 */
	uint8_t pad[3];
} shard_name_entry;

typedef struct shard_name_answer {
	uint32_t generation;
	uint32_t count;     /* entries in use */
	uint64_t version;   /* bumped by every publish */
	int64_t next_ms;    /* CLOCK_MONOTONIC: the owner's next look */
	uint32_t ttl_s;
	uint32_t answered;  /* 0: the name never resolved (count is 0) */
	shard_name_entry entries[SHARD_NAME_BOARD_ENTRIES];
} shard_name_answer;

typedef struct shard_name_board shard_name_board;

/* No-op for a NULL board or a row out of range. */
void shard_name_publish(shard_name_board *board, uint32_t row,
			const shard_name_answer *answer);
/* 0, or -ENOENT (never published, or out of range), -EAGAIN (the writer
 * kept it busy). */
int shard_name_read(const shard_name_board *board, uint32_t row,
		    shard_name_answer *out);
/* For tests and the supervisor: a zeroed board (MAP_SHARED), or NULL. */
shard_name_board *shard_name_board_map(void);
void shard_name_board_unmap(shard_name_board *board);

/* --- what a shard is given ------------------------------------------------ */

typedef struct shard_context {
	uint32_t index;
	uint32_t shards;
	uint32_t generation;
	poll_kind poller;             /* what ops->poller chose for it */
	const int *listen_fds;        /* one per listener, this shard's own */
	uint32_t listener_count;
	shard_slot *slot;
	shard_health_board *health;   /* shared active-health results */
	/* The supervisor's messages to this shard (shard_take_channel). */
	int control_fd;
	/* Reload with handoff: this shard's end of the channel from the shard
	 * it replaces (same index), or -1. What goes over it is the
	 * application's business; shard/ only makes and passes it. */
	int handoff_fd;
	shard_name_board *names;      /* shared server-name answers */
	shard_server_board *servers;  /* servers' admin state */
} shard_context;

/*
 * In a shard told to retire (SHARD_RETIRE_SIGNAL): its end of the handoff
 * channel to the shard that replaces it, which the supervisor sent on
 * `control_fd` before the signal. The fd (the caller owns it), or -ENOENT
 * when there is none (handoff off, no successor).
 */
int shard_take_channel(int control_fd);
/* The supervisor's side: pass `fd` on a control socket. 0 or -errno. */
int shard_send_channel(int control_fd, int fd);

/* --- the supervisor ------------------------------------------------------- */

typedef struct shard_listen_spec {
	const char *name;
	struct sockaddr_storage addr;
	socklen_t addr_len;
	int backlog;
} shard_listen_spec;

typedef struct shard_settings {
	uint32_t shards;              /* 0 = one per online CPU */
	bool pin;                     /* shard i on CPU i (mod CPUs) */
	bool steer_by_cpu;            /* SO_ATTACH_REUSEPORT_CBPF: socket of the
				       * receiving CPU's shard (needs pin) */
	int64_t drain_timeout_ns;
	bool has_admin;
	struct sockaddr_storage admin;
	socklen_t admin_len;
	unsigned admin_mode;          /* an AF_UNIX admin socket's file mode */
	const char *admin_token;      /* allows POST over TCP; NULL: none */
	const char *user;             /* drop to this user after binding; NULL */
	const shard_listen_spec *listeners;
	uint32_t listener_count;
	const shard_app_metrics *metrics; /* the application's tables, or NULL */
	/* Reload: the new shard i and the one it replaces get a channel
	 * (shard_context.handoff_fd, shard_take_channel). */
	bool handoff;
	/* Binary upgrade (SHARD_UPGRADE_SIGNAL, shard/upgrade.h): the command
	 * line the new binary runs with (the binary is the one this process
	 * started from, at its path then); NULL: upgrades refused. */
	char *const *argv;
	int64_t upgrade_timeout_ns;   /* the new shards' time to be ready */
	const char *version;          /* /stats "version", build_info */
} shard_settings;

typedef enum shard_log_level {
	SHARD_LOG_DEBUG,
	SHARD_LOG_INFO,
	SHARD_LOG_WARN,
	SHARD_LOG_ERROR,
} shard_log_level;

typedef struct shard_ops {
	/* In the child: serve until drained; the return value is the exit
	 * status. Called with signals SIGTERM, SIGINT, SIGHUP and SIGUSR1
	 * blocked, for a signalfd. */
	int (*run)(void *ctx, const shard_context *shard);
	/*
	 * In the supervisor, on SIGHUP: read the configuration again and
	 * check it. On success swap it in (what `run` uses from now on), fill
	 * `next` with the new settings and return 0. On failure keep the old
	 * one, put one line in `why` and return a negative value. Settings
	 * that need new sockets (listeners, shard count, admin, user) must be
	 * refused here.
	 */
	int (*reload)(void *ctx, shard_settings *next, char *why, size_t why_len);
	/* In the supervisor, each time it starts shard `index`: the poller that
	 * shard runs (what a reload swapped in counts from then on). NULL:
	 * POLL_AUTO everywhere. */
	poll_kind (*poller)(void *ctx, uint32_t index);
	/*
	 * The supervisor's log lines: a message, and its pairs as a printf
	 * format "key=%s key2=%u" (NULL: none) with their arguments, pairs
	 * split by the format's spaces. Values are passed as they are, never
	 * quoted: the callee formats each value on its own and quotes it
	 * (frameproxy hands all three to proxy/log.h's log_vline).
	 */
	void (*log)(void *ctx, shard_log_level level, const char *msg,
		    const char *fmt, va_list ap)
		__attribute__((format(printf, 4, 0)));
} shard_ops;

/*
 * Run the supervisor until everything has drained: 0 after a clean stop,
 * 1 when start-up failed (one line logged through ops->log).
 */
int shard_supervise(const shard_settings *settings, const shard_ops *ops,
		    void *ctx);

/* Online CPUs, at least 1. */
uint32_t shard_cpu_count(void);

#ifdef __cplusplus
}
#endif

#endif
