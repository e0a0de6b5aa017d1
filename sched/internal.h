/*
 * Private to sched/: the one scheduler struct, the coroutine record and the
 * helpers the files share. The core is compiled once per context switch
 * (SCHED_SWITCH_ASM or SCHED_SWITCH_UCONTEXT), so a binary links exactly one.
 */
#ifndef FRAMEPROXY_SCHED_INTERNAL_H
#define FRAMEPROXY_SCHED_INTERNAL_H

#include "sched/sched.h"
#include "sched/switch.h"

#include <signal.h>

#if defined(__SANITIZE_ADDRESS__)
#define SCHED_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SCHED_ASAN 1
#endif
#endif

#if defined(SCHED_SWITCH_UCONTEXT)
typedef sched_ctx_uc sched_ctx;
#define ctx_make sched_ctx_uc_make
#define ctx_swap sched_ctx_uc_swap
#define SCHED_SWITCH_NAME "ucontext"
#elif defined(SCHED_SWITCH_ASM)
typedef sched_ctx_asm sched_ctx;
#define ctx_make sched_ctx_asm_make
#define ctx_swap sched_ctx_asm_swap
#define SCHED_SWITCH_NAME "asm"
#else
#error "define SCHED_SWITCH_ASM or SCHED_SWITCH_UCONTEXT"
#endif

#define SCHED_NAME_MAX 32
/* ready_next picks in a row before the queue head gets a turn. */
#define SCHED_RUNNEXT_STREAK 16
/*
 * Freed stacks kept with their pages (hot, reused first) before the excess is
 * given back with MADV_DONTNEED; at most this many times the stack size of
 * resident memory sits in the pool while the loop is busy.
 */
#define SCHED_POOL_DIRTY_MAX 64
/*
 * Dirty stacks that no spawn needed for a whole period are cleaned when the
 * loop next idles. Cleaning on every idle instead would cost a request/reply
 * relay an madvise and page faults per message: it idles between messages.
 */
#define SCHED_POOL_SCAVENGE_NS (100 * 1000 * 1000)

typedef enum coro_state {
	CORO_RUNNABLE,
	CORO_RUNNING,
	CORO_PARKED,
	CORO_DEAD,
} coro_state;

/* A stack mapping: [base, base + guard) is PROT_NONE, the rest read-write. */
typedef struct coro_stack {
	char *base;
	size_t map_size;
} coro_stack;

/*
 * Lives at the top of its own stack mapping, so a parked coroutine costs the
 * one page that holds this record and its few innermost frames.
 */
struct coro {
	sched_ctx ctx;
	coro_stack stack;
	coro_entry_fn entry;
	void *arg;
	coro *prev, *next;   /* all live coroutines; the pool's free list */
	const char *park_reason;
	sched_timer sleep_timer;
	uint8_t state;
	char name[SCHED_NAME_MAX];
};

typedef struct run_queue {
	coro **ring;
	uint32_t cap;                /* power of two */
	uint32_t head, len;
	coro *runnext;
	uint32_t streak;             /* runnext picks since the head last ran */
} run_queue;

typedef struct timer_heap {
	sched_timer **v;
	uint32_t len, cap;
	uint64_t next_order;
} timer_heap;

typedef struct scheduler {
	bool initialized;
	bool stop;
	bool running;
	sched_ctx ctx;               /* the loop's own context */
	coro *current;
	coro *live;           /* list of coroutines not yet exited */
	run_queue runq;
	timer_heap timers;
	sched_netpoll_fn netpoll;
	void *netpoll_context;
	uint32_t holds;
	uint32_t since_poll;         /* rounds since the hook was last called */
	size_t stack_size;           /* default usable stack, page multiple */
	size_t pool_max;
	size_t pool_len;             /* dirty + clean */
	size_t pool_dirty_len;
	size_t pool_dirty_low;       /* fewest dirty stacks since the last scavenge */
	int64_t scavenge_at;         /* next scavenge, or 0 with no dirty stacks */
	coro *pool_dirty;     /* freed default-size stacks, pages kept */
	coro *pool_clean;     /* freed, pages below the record dropped */
	size_t page;
	struct sigaction old_segv;
	stack_t old_altstack;
	void *altstack;
	size_t altstack_size;
	bool segv_installed;
	const void *loop_stack_lo;   /* ASan only: the loop's stack bounds */
	size_t loop_stack_size;
	sched_stats stats;
} scheduler;

extern scheduler sched_g;

_Noreturn void sched_fatal(const char *what, const coro *c);

/* coro.c: run `c` until it parks, yields or exits (loop context only). */
void coro_run(coro *c);

/* runq.c */
int runq_reserve(run_queue *q, uint32_t n);
void runq_push(run_queue *q, coro *c);
void runq_push_next(run_queue *q, coro *c);
coro *runq_pop(run_queue *q);
uint32_t runq_len(const run_queue *q);
void runq_free(run_queue *q);

/* timer.c */
void timers_run(timer_heap *h, int64_t now);
/* Absolute time of the earliest timer; INT64_MAX when none. */
int64_t timers_next(const timer_heap *h);
void timers_free(timer_heap *h);

/* stack.c: returns the coroutine record at the top of a fresh or pooled stack. */
coro *stack_get(size_t size);
void stack_put(coro *c);
void stack_pool_drain(void);
/* At idle: clean the dirty stacks nobody needed for a period. Returns when
 * it wants to run again (the loop must wake by then), or INT64_MAX. */
int64_t stack_pool_scavenge(int64_t now);
int stack_guard_install(void);
void stack_guard_remove(void);

#endif
