/*
 * shard/ — the process model: a supervisor that owns the listening sockets
 * and the metrics mapping, and forks one shard process per core.
 *
 *   supervisor: binds, for every listener, one SO_REUSEPORT socket per shard
 *   and keeps them all; creates the shared metrics mapping; forks shards;
 *   replaces a shard that dies on the same sockets (so its accept queue is
 *   served, not reset); SIGTERM/SIGINT drain, SIGHUP reload (new shards one
 *   at a time, old ones retire), admin endpoint (GET /metrics, GET /stats).
 *
 *   shard: a child that runs the caller's `run` on its own sockets and
 *   publishes counters into its slot of the mapping. It makes its scheduler,
 *   poller and io_uring ring after the fork (inside `run`).
 *
 * The layer knows nothing of frames or relays: the application above hands
 * it callbacks, names its listeners and close reasons, and fills the counter
 * slots. The supervisor reads slots without involving the shards.
 *
 * Signals a shard receives from its supervisor:
 *   SIGTERM  drain: stop accepting, finish frames in flight, close at frame
 *            boundaries, exit within drain_timeout.
 *   SIGUSR1  retire (reload): stop accepting, keep serving the connections it
 *            has until they end; at drain_timeout drain as for SIGTERM.
 */
#ifndef FRAMEPROXY_SHARD_SHARD_H
#define FRAMEPROXY_SHARD_SHARD_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "poll/poll.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SHARD_MAX_LISTENERS 16
#define SHARD_MAX_UPSTREAMS 64       /* per shard, all listeners together */
#define SHARD_MAX_REASONS 24         /* close reasons counted per listener */
#define SHARD_NAME_MAX 64
#define SHARD_RETIRE_SIGNAL SIGUSR1

#ifdef __cplusplus
#define SHARD_ALIGNAS(n) alignas(n)
#else
#define SHARD_ALIGNAS(n) _Alignas(n)
#endif

/* --- counters in shared memory -------------------------------------------- */

typedef enum shard_state {
	SHARD_STATE_FREE = 0,     /* slot unused */
	SHARD_STATE_STARTING,
	SHARD_STATE_READY,        /* accepting */
	SHARD_STATE_RETIRING,     /* reload: serving what it has */
	SHARD_STATE_DRAINING,     /* closing at frame boundaries */
} shard_state;

typedef struct shard_listener_counters {
	char name[SHARD_NAME_MAX];
	uint64_t accepted;
	uint64_t active;
	uint64_t accept_errors;
	uint64_t frames[2];           /* [0] client -> upstream, [1] back */
	uint64_t bytes[2];
	uint64_t closed[SHARD_MAX_REASONS];
} shard_listener_counters;

typedef struct shard_upstream_counters {
	char name[SHARD_NAME_MAX];    /* ip:port */
	uint32_t listener;            /* index into the slot's listeners */
	uint32_t up;                  /* 1 usable, 0 ejected or checks down */
	uint64_t connects;
	uint64_t connect_failures;
	uint64_t ejections;
} shard_upstream_counters;

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
	int64_t started_unix_ns;
	int64_t published_ns;         /* CLOCK_MONOTONIC of the last publish */
	/* runtime: scheduler, poller, process */
	uint64_t sched_rounds;
	uint64_t sched_switches;
	uint64_t sched_runq_len;
	uint64_t sched_live;
	uint64_t poll_waits;
	uint64_t poll_events;
	uint64_t poll_syscalls;
	uint64_t poll_polls;
	uint64_t poll_submits;
	uint64_t cpu_user_ns;
	uint64_t cpu_system_ns;
	uint64_t rss_bytes;
	/* application */
	uint64_t log_lines_dropped;   /* stderr had no room (counter) */
	uint32_t listener_count;
	uint32_t upstream_count;
	shard_listener_counters listeners[SHARD_MAX_LISTENERS];
	shard_upstream_counters upstreams[SHARD_MAX_UPSTREAMS];
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

/* --- what a shard is given ------------------------------------------------ */

typedef struct shard_context {
	uint32_t index;
	uint32_t shards;
	uint32_t generation;
	int cpu;                      /* pinned CPU, or -1 */
	poll_kind poller;             /* resolved for `mixed` */
	const int *listen_fds;        /* one per listener, this shard's own */
	uint32_t listener_count;
	shard_slot *slot;
	shard_health_board *health;   /* shared active-health results */
} shard_context;

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
	poll_kind poller;
	bool poller_mixed;            /* even shards epoll, odd shards uring */
	int64_t drain_timeout_ns;
	bool has_admin;
	struct sockaddr_storage admin;
	socklen_t admin_len;
	const char *user;             /* drop to this user after binding; NULL */
	const shard_listen_spec *listeners;
	uint32_t listener_count;
	const char *const *reason_names; /* close reasons, for labels */
	uint32_t reason_count;
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
