/*
 * Private to poll/: the pollDesc layout, the process's poller state and the
 * small interface every backend implements (like Redis's ae_epoll.c beside
 * ae_kqueue.c). Nothing outside poll/ includes this.
 */
#ifndef FRAMEPROXY_POLL_BACKEND_H
#define FRAMEPROXY_POLL_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "poll/poll.h"
#include "sched/sched.h"

/* Slot states of one direction (Go's pdReady / pdWait / g pointer). */
typedef enum pd_dir_slot {
	SLOT_EMPTY = 0,
	SLOT_READY,
	SLOT_WAIT,   /* a coroutine is parked: dir.waiter */
	SLOT_WATCH,  /* a callback is armed: dir.watch_fn */
} pd_dir_slot;

/* Lives on the parked coroutine's stack, so a result delivered after the
 * pollDesc was recycled never lands in the next owner's state. */
typedef struct pd_waiter {
	coro *coro;
	int result;
} pd_waiter;

typedef struct pd_dir_state {
	pd_dir_slot slot;
	bool expired;            /* the deadline timer fired (or was set in the past) */
	int64_t deadline;        /* absolute, 0 = none */
	pd_waiter *waiter;
	pd_watch_fn watch_fn;
	void *watch_arg;
	sched_timer timer;       /* fires at `deadline` */
	poll_desc *pd;           /* back pointer for the timer callback */
	uint8_t dir;             /* PD_READ or PD_WRITE */
} pd_dir_state;

typedef enum pd_state {
	PD_FREE = 0,     /* on the free list */
	PD_OPEN,
	PD_ZOMBIE,       /* closed, backend still owns an in-flight request */
} pd_state;

struct poll_desc {
	int fd;
	uint32_t index;          /* slot number in the slab */
	uint32_t gen;            /* bumped at close: events carrying the old one are stale */
	pd_state state;
	bool closing;
	bool not_socket;         /* sendmsg(2) said ENOTSOCK: use writev(2) */
	bool rd_drained;         /* last read was short: the socket was empty */
	bool rd_hup;             /* EV_HUP seen: reads never skip to a park */
	bool rd_queued;          /* the backend holds input for it (completion I/O) */
	uint32_t streak;         /* ops completed without parking (fairness) */
	pd_dir_state rd, wr;
	poll_desc *next_free;
};

/* Event tokens: generation in the high half, slot index in the low half.
 * Bit 63 marks the poller's own requests (cancels, wake-ups), never a pd. */
#define POLL_TOKEN_INTERNAL (1ull << 63)
#define POLL_GEN_MASK 0x7fffffffu

static inline uint64_t pd_token(const poll_desc *pd)
{
	return ((uint64_t)(pd->gen & POLL_GEN_MASK) << 32) | pd->index;
}

/* Readiness bits a backend hands to pd_deliver. */
/* EV_HUP: the peer shut down or the socket failed. It sticks, because no
 * further edge will come to wake a reader parked after a short read. */
enum { EV_READ = 1, EV_WRITE = 2, EV_HUP = 4 };

typedef struct poll_backend_ops {
	const char *name;
	/* Create the kernel object in this process. 0 or -errno with `why`. */
	int (*open)(char *why, size_t why_len);
	void (*close)(void);
	/* Register a freshly opened pd (once, for its whole life). */
	int (*add)(poll_desc *pd);
	/* Deregister before the fd is closed. Returns true when the backend
	 * still owns a request for the pd and will call pd_slot_release later. */
	bool (*del)(poll_desc *pd);
	/* The netpoll hook body: wait up to delay_ns (<0 forever, 0 not at all). */
	int (*poll)(int64_t delay_ns);
	/*
	 * The fd I/O of net.c, one attempt each: n >= 0 (0 from recv is EOF),
	 * or -errno, -EAGAIN when the fd is not ready (the caller then parks
	 * on readiness and tries again). NULL means the plain syscall,
	 * pd_sys_recv / pd_sys_sendmsg, which net.c then calls directly.
	 * recv never parks: pd_try_read also runs in scheduler context.
	 * sendmsg may park the calling coroutine until the backend has done
	 * the send, and takes the plain path outside a coroutine. Neither
	 * changes `iov`; the caller advances it.
	 */
	ssize_t (*recv)(poll_desc *pd, void *buf, size_t len);
	ssize_t (*sendmsg)(poll_desc *pd, struct iovec *iov, int iov_count);
	/* pd_recv_pause/resume/quiet (poll.h); NULL: reads are read(2)s,
	 * nothing to pause, always quiet. */
	void (*recv_pause)(poll_desc *pd, bool pause);
	bool (*recv_quiet)(const poll_desc *pd);
} poll_backend_ops;

extern const poll_backend_ops poll_backend_epoll;
extern const poll_backend_ops poll_backend_uring;

/* Shared state of the process's poller. */
extern poll_stats poll_g_stats;
/* The backend in use; NULL while no poller is open. */
extern const poll_backend_ops *poll_g_backend;

/* pd.c, for backends: deliver readiness for a token; returns how many
 * coroutines/watches it woke. Stale tokens are counted and dropped. */
int pd_deliver(uint64_t token, unsigned ev);
/* Look up a token's slot regardless of generation (NULL if out of range). */
poll_desc *pd_slot(uint32_t index);
/* A zombie's last backend request is done: the slot may be reused. */
void pd_slot_release(poll_desc *pd);
/* Map poll(2)/epoll bits to EV_READ|EV_WRITE|EV_HUP. */
unsigned pd_events_from_mask(uint32_t mask);

/* For net.c: -EBADF/-ETIMEDOUT/0 for a direction, without a syscall. */
int pd_check(poll_desc *pd, pd_dir dir);
/* Drop a READY left by an old edge before an op looks at the fd itself. */
void pd_clear_ready(poll_desc *pd, pd_dir dir);

/* net.c: the plain syscalls behind the recv and sendmsg ops, for backends
 * whose own op falls back to them. Same contract as the ops. */
ssize_t pd_sys_recv(poll_desc *pd, void *buf, size_t len);
ssize_t pd_sys_sendmsg(poll_desc *pd, struct iovec *iov, int iov_count);

/* Internal pd_open for fds known to be non-blocking already. */
int pd_open_nonblock(int fd, poll_desc **out);

#endif
