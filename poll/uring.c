/*
 * io_uring poll backend (see 'One registration', 'Generations' and
 * 'io_uring batching' in poll/poll.h).
 *
 * Each fd gets one multishot POLL_ADD for IN|OUT|RDHUP at pd_open; it keeps
 * posting a CQE per wake-up until the kernel ends it (a CQE without
 * IORING_CQE_F_MORE: CQ overflow, error, cancel), and then we re-arm it.
 * SQEs are only queued here; they reach the kernel together with the wait
 * in one io_uring_submit_and_wait_timeout per scheduler round.
 *
 * close() does not end a poll request (it holds its own file reference), so
 * pd_close queues a POLL_REMOVE (again on -EALREADY) and leaves the slot a
 * zombie until the request's final CQE arrives; only then can the slot be
 * reused. Any CQE in between carries the old generation and is counted
 * stale. The socket itself is released when the remove lands (next round).
 *
 * A delay-0 poll with nothing queued makes no syscall unless the kernel
 * raised IORING_SQ_TASKRUN or CQ_OVERFLOW (we ask for TASKRUN_FLAG).
 * Optional write batching (poll_set_uring_write_batching) sends through
 * SENDMSG SQEs that ride on the same enter.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <liburing.h>

#include "poll/backend.h"

#define RING_ENTRIES 4096
#define CQ_ENTRIES (4 * RING_ENTRIES)
#define CQE_BATCH 256
#define MAX_ARM_ERRORS 8
#define POLL_MASK (POLLIN | POLLOUT | POLLRDHUP)

static struct io_uring ring;
static bool ring_open;
static unsigned ring_flags;
/* poll_set_uring_write_batching: sends go through the ring. */
static bool batch_writes;
/* Counts submissions: an SQE queued while it equals e goes in with submit
 * e+1. Lets pd_close tell whether a queued send still names the fd. */
static uint64_t submit_epoch;

/* With POLL_TOKEN_INTERNAL: the low bits are a uring_op*. */
#define POLL_TOKEN_OP (1ull << 62)

/* A send in flight: lives on the parked writer's stack. */
typedef struct uring_op {
	coro *coro;
	int res;
} uring_op;

/* The ring's own state of a pollDesc slot, at the slot's index: the slab
 * (pd.c) never shrinks and ur_add covers each index before its first arm,
 * so every token the ring hands back has its entry. */
typedef struct ur_slot {
	uint64_t send_epoch;     /* a send was queued before submit #n */
	uint32_t armed_gen;
	uint32_t arm_errors;     /* consecutive failed arms */
	bool armed;              /* a multishot poll for `armed_gen` is in flight */
} ur_slot;

static ur_slot *slots;
static size_t slot_cap;

/* --- setup -------------------------------------------------------------- */

static void explain(int err, char *why, size_t why_len)
{
	if (!why || !why_len)
		return;
	if (err == -ENOSYS) {
		snprintf(why, why_len, "io_uring unavailable: this kernel has no "
			 "io_uring (ENOSYS)");
		return;
	}
	if (err == -EPERM || err == -EACCES) {
		char mode = '0';
		FILE *f = fopen("/proc/sys/kernel/io_uring_disabled", "r");
		if (f) {
			int c = fgetc(f);
			mode = c == EOF ? '0' : (char)c;
			fclose(f);
		}
		if (mode == '2')
			snprintf(why, why_len, "io_uring unavailable: disabled "
				 "by sysctl kernel.io_uring_disabled=2 (EPERM)");
		else if (mode == '1')
			snprintf(why, why_len, "io_uring unavailable: "
				 "kernel.io_uring_disabled=1 and this process "
				 "is not in kernel.io_uring_group (EPERM)");
		else
			snprintf(why, why_len, "io_uring unavailable: "
				 "io_uring_setup refused (%s), most likely a "
				 "seccomp filter (container runtime)",
				 err == -EPERM ? "EPERM" : "EACCES");
		return;
	}
	if (err == -ENOMEM) {
		snprintf(why, why_len, "io_uring unavailable: cannot allocate "
			 "the ring (ENOMEM; RLIMIT_MEMLOCK on kernels < 5.12?)");
		return;
	}
	snprintf(why, why_len, "io_uring unavailable: io_uring_queue_init: %s",
		 strerror(-err));
}

/* Optional setup flags, dropped one at a time (newest first) while the
 * kernel answers -EINVAL. */
static const unsigned optional_flags[] = {
	IORING_SETUP_DEFER_TASKRUN, /* 6.1: completions only when we ask */
	IORING_SETUP_SINGLE_ISSUER, /* 6.0 */
	IORING_SETUP_TASKRUN_FLAG,  /* 5.19: tells us when to enter */
	IORING_SETUP_COOP_TASKRUN,  /* 5.19: no IPI per completion */
	IORING_SETUP_SUBMIT_ALL,    /* 5.18: one bad SQE doesn't stop the batch */
};
#define N_OPTIONAL (sizeof(optional_flags) / sizeof(optional_flags[0]))

static int ur_open(char *why, size_t why_len)
{
	unsigned flags = IORING_SETUP_CQSIZE;
	for (size_t i = 0; i < N_OPTIONAL; i++)
		flags |= optional_flags[i];

	int rc = -EINVAL;
	for (size_t drop = 0; drop <= N_OPTIONAL; drop++) {
		struct io_uring_params p;
		memset(&p, 0, sizeof(p));
		p.flags = flags;
		p.cq_entries = CQ_ENTRIES;
		poll_g_stats.syscalls++;
		rc = io_uring_queue_init_params(RING_ENTRIES, &ring, &p);
		if (rc != -EINVAL || drop == N_OPTIONAL)
			break;
		flags &= ~optional_flags[drop];
	}
	if (rc < 0) {
		explain(rc, why, why_len);
		return rc;
	}
	ring_open = true;
	ring_flags = flags;
	return 0;
}

static void ur_close(void)
{
	if (ring_open)
		io_uring_queue_exit(&ring);
	ring_open = false;
	batch_writes = false;
	free(slots);
	slots = NULL;
	slot_cap = 0;
}

int poll_set_uring_write_batching(bool on)
{
	if (!ring_open || poll_backend() != POLL_URING)
		return -ENOTSUP;
	batch_writes = on;
	return 0;
}

/* --- submission --------------------------------------------------------- */

static void flush_submit(void)
{
	poll_g_stats.syscalls++;
	poll_g_stats.poll_syscalls++;
	poll_g_stats.submits++;
	submit_epoch++;
	io_uring_submit(&ring);
}

/* The SQ only fills when one round opens/closes thousands of fds: then we
 * pay one extra submit instead of failing. */
static struct io_uring_sqe *sqe_get(void)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
	if (sqe)
		return sqe;
	flush_submit();
	return io_uring_get_sqe(&ring);
}

/* --- per-slot state ----------------------------------------------------- */

/* Grows by doubling, so the pd slab's chunks of 256 cost a realloc now and
 * then, never one per fd. Entries are found by index, never by pointer
 * kept across a call, so moving them is safe. */
static int slots_cover(uint32_t index)
{
	if (index < slot_cap)
		return 0;
	size_t cap = slot_cap ? slot_cap : 256;
	while (cap <= index)
		cap *= 2;
	ur_slot *grown = realloc(slots, cap * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	memset(grown + slot_cap, 0, (cap - slot_cap) * sizeof(*grown));
	slots = grown;
	slot_cap = cap;
	return 0;
}

static ur_slot *slot_of(const poll_desc *pd)
{
	return &slots[pd->index];
}

/* --- requests ----------------------------------------------------------- */

static int arm(poll_desc *pd)
{
	struct io_uring_sqe *sqe = sqe_get();
	if (!sqe)
		return -EBUSY;
	io_uring_prep_poll_multishot(sqe, pd->fd, POLL_MASK);
	io_uring_sqe_set_data64(sqe, pd_token(pd));
	ur_slot *s = slot_of(pd);
	s->armed = true;
	s->armed_gen = pd->gen & POLL_GEN_MASK;
	return 0;
}

static int ur_add(poll_desc *pd)
{
	int rc = slots_cover(pd->index);
	if (rc < 0)
		return rc;
	*slot_of(pd) = (ur_slot){0};
	return arm(pd);
}

/* Send through the ring and park until done: n, or -errno (-EAGAIN when
 * the socket is full, -ENOTSOCK for non-sockets, -ENOBUFS without an SQE). */
static ssize_t ring_sendmsg(poll_desc *pd, struct iovec *iov, int iov_count)
{
	struct io_uring_sqe *sqe = sqe_get();
	if (!sqe)
		return -ENOBUFS;
	struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)iov_count};
	uring_op op = {.coro = coro_self(), .res = 0};
	/* MSG_DONTWAIT: a full socket must come back as -EAGAIN so the writer
	 * parks on readiness, where deadlines and close can reach it. */
	io_uring_prep_sendmsg(sqe, pd->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
	slot_of(pd)->send_epoch = submit_epoch + 1;
	io_uring_sqe_set_data64(sqe, POLL_TOKEN_INTERNAL | POLL_TOKEN_OP |
				     (uint64_t)(uintptr_t)&op);
	coro_park("uring send");
	return op.res;
}

/* The sendmsg op: the ring when batching, else (and for what the ring
 * cannot take, and outside a coroutine, which cannot park) the syscall. */
static ssize_t ur_sendmsg(poll_desc *pd, struct iovec *iov, int iov_count)
{
	if (!batch_writes || pd->not_socket || !coro_self())
		return pd_sys_sendmsg(pd, iov, iov_count);
	ssize_t n = ring_sendmsg(pd, iov, iov_count);
	if (n != -ENOTSOCK && n != -ENOBUFS)
		return n;
	if (n == -ENOTSOCK)
		pd->not_socket = true;
	return pd_sys_sendmsg(pd, iov, iov_count);
}

static void queue_remove(poll_desc *pd)
{
	struct io_uring_sqe *sqe = sqe_get();
	if (!sqe)
		return; /* cannot happen after a flush; the slot stays a zombie */
	uint64_t token = ((uint64_t)slot_of(pd)->armed_gen << 32) | pd->index;
	io_uring_prep_poll_remove(sqe, token);
	io_uring_sqe_set_data64(sqe, POLL_TOKEN_INTERNAL | token);
}

/*
 * POLL_REMOVE fails with -EALREADY when the poll owns a wake-up that is
 * still being processed (with DEFER_TASKRUN: queued until our next enter).
 * The multishot poll then simply goes on, holding the file open, so the
 * peer never sees our close: ask again with the next round's submit.
 */
static void remove_done(uint64_t token, int res)
{
	if (res != -EALREADY && res != -EBUSY)
		return;
	uint32_t gen = (uint32_t)(token >> 32) & POLL_GEN_MASK;
	poll_desc *pd = pd_slot((uint32_t)token);
	if (!pd || pd->state != PD_ZOMBIE)
		return;
	const ur_slot *s = slot_of(pd);
	if (s->armed && s->armed_gen == gen)
		queue_remove(pd);
}

static bool ur_del(poll_desc *pd)
{
	/* A send still in the SQ names the fd by number: once close() frees the
	 * number, a new socket could get it and receive this connection's data.
	 * Submit first, so the kernel holds the right file. (Rare: the writer
	 * is parked and someone else closes in the same round.) */
	const ur_slot *s = slot_of(pd);
	if (s->send_epoch == submit_epoch + 1)
		flush_submit();
	if (!s->armed)
		return false;
	queue_remove(pd);
	return true;
}

/* --- completion --------------------------------------------------------- */

/* The request for this slot ended (no F_MORE): free a zombie, re-arm a
 * live pd. Returns true when the slot was a zombie (nothing to deliver). */
static bool request_ended(poll_desc *pd, uint32_t gen, int res)
{
	ur_slot *s = slot_of(pd);
	if (!s->armed || s->armed_gen != gen)
		return false;
	s->armed = false;
	if (pd->state == PD_ZOMBIE) {
		pd_slot_release(pd);
		return true;
	}
	if (pd->state != PD_OPEN || pd->closing ||
	    (pd->gen & POLL_GEN_MASK) != gen)
		return false;
	s->arm_errors = res < 0 ? s->arm_errors + 1 : 0;
	/* A poll that keeps failing at once would spin; after a few tries
	 * leave it to the fd ops, which see the real error in their syscall. */
	if (s->arm_errors <= MAX_ARM_ERRORS)
		arm(pd);
	return false;
}

static int handle_cqe(uint64_t data, int res, unsigned cflags)
{
	if (data & POLL_TOKEN_INTERNAL) {
		if (!(data & POLL_TOKEN_OP)) {
			remove_done(data & ~POLL_TOKEN_INTERNAL, res);
			return 0;
		}
		uring_op *op = (uring_op *)(uintptr_t)
			(data & ~(POLL_TOKEN_INTERNAL | POLL_TOKEN_OP));
		op->res = res;
		coro_ready(op->coro);
		return 1;
	}
	uint32_t gen = (uint32_t)(data >> 32) & POLL_GEN_MASK;
	poll_desc *pd = pd_slot((uint32_t)data);
	if (pd && !(cflags & IORING_CQE_F_MORE) &&
	    request_ended(pd, gen, res) && res < 0)
		return 0; /* the cancel's final CQE, not an event */
	/* An error wakes both sides: their syscalls will report it. */
	unsigned ev = res < 0 ? EV_READ | EV_WRITE
			      : pd_events_from_mask((uint32_t)res);
	if (res == -ECANCELED)
		ev = 0;
	return pd_deliver(data, ev);
}

typedef struct cqe_copy {
	uint64_t data;
	int res;
	unsigned flags;
} cqe_copy;

/* Copy a batch out and advance before handling, so a watch callback that
 * opens or closes fds (and may submit) never races our CQ head. */
static int drain_cq(void)
{
	cqe_copy batch[CQE_BATCH];
	int woke = 0;

	for (int round = 0; round < 64; round++) {
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;
		io_uring_for_each_cqe(&ring, head, cqe) {
			batch[n].data = cqe->user_data;
			batch[n].res = cqe->res;
			batch[n].flags = cqe->flags;
			if (++n == CQE_BATCH)
				break;
		}
		io_uring_cq_advance(&ring, n);
		for (unsigned i = 0; i < n; i++)
			woke += handle_cqe(batch[i].data, batch[i].res,
					   batch[i].flags);
		if (n < CQE_BATCH)
			break;
	}
	return woke;
}

/* Would entering the kernel find anything? With TASKRUN_FLAG the kernel
 * raises IORING_SQ_TASKRUN when completions are waiting to be posted. */
static bool kernel_has_work(void)
{
	unsigned sq_flags = IO_URING_READ_ONCE(*ring.sq.kflags);
	if (sq_flags & (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW))
		return true;
	return !(ring_flags & IORING_SETUP_TASKRUN_FLAG);
}

static void poll_nowait(bool pending)
{
	if (!pending && !kernel_has_work())
		return; /* nothing to submit, nothing to reap: no syscall */
	poll_g_stats.syscalls++;
	poll_g_stats.poll_syscalls++;
	if (pending)
		poll_g_stats.submits++;
	submit_epoch++;
	io_uring_submit_and_get_events(&ring);
}

static void poll_wait(bool pending, int64_t delay_ns)
{
	struct __kernel_timespec ts = {
		.tv_sec = delay_ns / 1000000000,
		.tv_nsec = delay_ns % 1000000000,
	};
	struct io_uring_cqe *cqe = NULL;

	poll_g_stats.syscalls++;
	poll_g_stats.poll_syscalls++;
	if (pending)
		poll_g_stats.submits++;
	submit_epoch++;
	io_uring_submit_and_wait_timeout(&ring, &cqe, 1,
					 delay_ns < 0 ? NULL : &ts, NULL);
}

static int ur_poll(int64_t delay_ns)
{
	bool pending = io_uring_sq_ready(&ring) > 0;

	if (delay_ns == 0 || io_uring_cq_ready(&ring) > 0)
		poll_nowait(pending);
	else
		poll_wait(pending, delay_ns);
	return drain_cq();
}

const poll_backend_ops poll_backend_uring = {
	.name = "uring",
	.open = ur_open,
	.close = ur_close,
	.add = ur_add,
	.del = ur_del,
	.poll = ur_poll,
	.recv = NULL,    /* read(2): the ring only polls for readiness */
	.sendmsg = ur_sendmsg,
};
