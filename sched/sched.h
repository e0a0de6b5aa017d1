/*
 * sched — P-local coroutine scheduler (one per process, single-threaded).
 *
 * Go's G/P model with exactly one P: coroutines run until they park, yield
 * or exit; a FIFO run queue plus a `runnext` slot decides who runs next; a
 * timer heap drives sleeps and deadlines. The layer knows nothing about fds:
 * a netpoller plugs in through one hook (sched_set_netpoll) that the loop
 * calls when it has nothing to run, or every SCHED_POLL_INTERVAL rounds
 * without blocking so ready I/O is never starved by a busy run queue.
 *
 * Nothing here is thread-safe: every call is made from the scheduler's own
 * thread (from a coroutine, a timer callback or the netpoll hook).
 */
#ifndef FRAMEPROXY_SCHED_H
#define FRAMEPROXY_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The loop polls without blocking every this many rounds (Go uses 61). */
#define SCHED_POLL_INTERVAL 61
#define SCHED_DEFAULT_STACK_SIZE (64u * 1024u)

typedef struct coro coro;
typedef void (*coro_entry_fn)(void *arg);

typedef struct sched_config {
	size_t stack_size;       /* default reserved stack per coroutine; 0 = 64 KiB */
	size_t stack_pool_max;   /* freed stacks kept for reuse; 0 = 1024 */
} sched_config;

typedef struct coro_opts {
	size_t stack_size;       /* 0 = the scheduler's default */
	const char *name;        /* for diagnostics; copied (truncated to 31 bytes) */
} coro_opts;

/* Counters for benchmarks and metrics. */
typedef struct sched_stats {
	uint64_t rounds;         /* coroutines picked and run */
	uint64_t switches;       /* context switches */
	uint64_t spawned;
	uint64_t exited;
	uint64_t polls_blocking; /* netpoll hook calls that could block */
	uint64_t polls_nonblocking;
	uint64_t timers_fired;
	uint64_t stacks_mapped;  /* stacks created with mmap */
	uint64_t stacks_reused;  /* stacks taken from the pool */
	uint32_t runq_len;       /* current run-queue length (incl. runnext) */
	uint32_t live;           /* coroutines spawned and not yet exited */
} sched_stats;

/* --- the scheduler ------------------------------------------------------ */

/* Set up the process's scheduler. NULL config = defaults. 0 or -errno. */
int sched_init(const sched_config *config);
/* Release stacks and the timer heap; only after sched_run() has returned. */
void sched_shutdown(void);
/*
 * Run until every coroutine has exited, no timer is pending and nothing holds
 * the loop alive (sched_hold), or until sched_stop() is called.
 */
void sched_run(void);
/* Make sched_run() return after the current coroutine parks/yields/exits. */
void sched_stop(void);
void sched_get_stats(sched_stats *out);
/* Which context switch this build uses: "asm" or "ucontext". */
const char *sched_switch_name(void);

/*
 * Netpoll hook. `delay_ns` < 0: block until something is ready; 0: do not
 * block; > 0: block at most that long. The hook readies the coroutines it
 * wakes (coro_ready) and may spawn new ones. It returns how many it readied
 * or spawned (or a negative errno, which the loop ignores).
 */
typedef int (*sched_netpoll_fn)(void *context, int64_t delay_ns);
void sched_set_netpoll(sched_netpoll_fn hook, void *context);

/*
 * External things that may create work later (an fd watched by a callback,
 * an armed readiness watch) keep sched_run() alive even when no coroutine
 * exists. Each hold must be released once.
 */
void sched_hold(void);
void sched_release(void);

/* --- coroutines --------------------------------------------------------- */

/* Create a runnable coroutine (appended to the run queue). NULL on ENOMEM. */
coro *coro_spawn(coro_entry_fn entry, void *arg, const coro_opts *opts);
/* End the calling coroutine (returning from entry does the same). */
#ifdef __cplusplus
[[noreturn]] void coro_exit(void);  /* C++ spells C11's _Noreturn this way */
#else
_Noreturn void coro_exit(void);
#endif
/* Go to the back of the run queue. */
void coro_yield(void);
/* Stop running until someone calls coro_ready(); `reason` is for diagnostics. */
void coro_park(const char *reason);
/* Make a parked coroutine runnable at the tail of the run queue. */
void coro_ready(coro *coroutine);
/*
 * Make it runnable in the runnext slot (runs before the queue; for ping-pong
 * locality). A pair that keeps readying each other this way cannot starve
 * the queue: runnext is skipped after a bounded streak.
 */
void coro_ready_next(coro *coroutine);
/* Park for at least `ns` nanoseconds. */
void coro_sleep(int64_t ns);
/* The running coroutine, NULL in scheduler context (timer callback, hook). */
coro *coro_self(void);
const char *coro_name(const coro *coroutine);
/* The reason it was parked with, NULL when not parked. */
const char *coro_park_reason(const coro *coroutine);

/* --- time and timers ---------------------------------------------------- */

/* CLOCK_MONOTONIC in nanoseconds. */
int64_t sched_now(void);

/*
 * The project's one reading of a clock as nanoseconds, inline so that code
 * which does not run (or link) the scheduler can use it too: a supervisor,
 * a log sink's timestamps, a tool's poll(2) loop.
 */
static inline int64_t sched_timespec_ns(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

/* `clock` (CLOCK_MONOTONIC, CLOCK_REALTIME, ...) in nanoseconds. */
static inline int64_t sched_clock_ns(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return sched_timespec_ns(&ts);
}

typedef struct sched_timer sched_timer;
/* Runs in scheduler context, not in a coroutine: it must not park. */
typedef void (*sched_timer_fn)(sched_timer *timer, void *arg);

/* Embeddable timer; fields are private to sched/. */
struct sched_timer {
	int64_t when;
	uint64_t order;          /* insertion order: ties fire first-in first */
	sched_timer_fn fn;
	void *arg;
	uint32_t heap_index;     /* UINT32_MAX when not pending */
};

void sched_timer_init(sched_timer *timer, sched_timer_fn fn, void *arg);
/* Arm, or move if armed, to fire at absolute time `when` (sched_now clock). */
int sched_timer_set(sched_timer *timer, int64_t when);
/* Disarm. Returns true if it was pending. A cancelled timer never fires. */
bool sched_timer_cancel(sched_timer *timer);
bool sched_timer_pending(const sched_timer *timer);

#ifdef __cplusplus
}
#endif

#endif
