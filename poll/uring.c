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
 *
 * Completion I/O (poll_set_uring_io, see 'io_uring completion I/O' in
 * poll/poll.h): a socket's first read arms one multishot RECV that takes
 * its buffers from the shard's provided-buffer ring; each CQE queues its
 * buffer(s) on the slot (ur_slot.q_*) and the recv op copies out of that
 * queue, giving each buffer back to the ring once it is empty. Sends are
 * write batching, always on.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

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
/* io_uring_register_ring_fd took: enters name the ring by its registered
 * index, which spares the kernel an fd lookup per enter (5.18+). */
static bool ring_fd_registered;
/* poll_set_uring_write_batching: sends go through the ring. */
static bool batch_writes;
/* Counts submissions: an SQE queued while it equals e goes in with submit
 * e+1. Lets pd_close tell whether a queued send still names the fd. */
static uint64_t submit_epoch;

/* With POLL_TOKEN_INTERNAL: the low bits are a uring_op*. */
#define POLL_TOKEN_OP (1ull << 62)
/* With POLL_TOKEN_INTERNAL: the multishot recv of slot (low 32 bits), and
 * the result of a cancel of it. A slot has at most one recv in flight and
 * stays a zombie until its last CQE, so the index alone names it. */
#define UR_TOKEN_RECV (1ull << 61)
#define UR_TOKEN_RECV_CANCEL (1ull << 60)
/* With POLL_TOKEN_INTERNAL: the one-shot POLLOUT of slot (low 32 bits)
 * that a ring reader's full socket arms (see 'io_uring completion I/O'). */
#define UR_TOKEN_WPOLL (1ull << 59)
/* With POLL_TOKEN_INTERNAL: the result of removing that POLLOUT (ignored:
 * a one-shot poll always ends with a CQE of its own). */
#define UR_TOKEN_WPOLL_REMOVE (1ull << 58)
/* With POLL_TOKEN_INTERNAL: the result of removing slot's multishot poll.
 * Flag bits and index only: a generation in the high half would reach
 * these flags once a busy slot had been reused 2^26 times. */
#define UR_TOKEN_POLL_REMOVE (1ull << 57)

/* Newer than liburing 2.3's headers; the kernel is probed at run time. */
#ifndef IORING_RECVSEND_BUNDLE
#define IORING_RECVSEND_BUNDLE (1U << 4)
#endif
#ifndef IORING_FEAT_RECVSEND_BUNDLE
#define IORING_FEAT_RECVSEND_BUNDLE (1U << 14)
#endif

#define UR_BGID 0
#define UR_DEFAULT_BUFFERS 2048
#define UR_DEFAULT_BUFFER_SIZE 4096
/* Bytes a slot may hold queued before its recv is cancelled: a reader
 * that is parked on a full destination then leaves the rest in its socket
 * (TCP backpressure) instead of emptying the shared ring. Re-armed once
 * the queue is empty. */
#define UR_QUEUE_CAP (64 * 1024)
#define UR_NONE 0u /* list links are index + 1 */
/* Buffers the ring starts with; the rest wait on a LIFO spare stack. The
 * kernel takes ring entries in order, so a ring holding every buffer would
 * cycle through (and make resident) all of them even under a light load;
 * a short ring reuses the same few hot ones. Doubled, from the spares,
 * each time a recv finds it empty. */
#define UR_RING_START 64

/* A send in flight: lives on the parked writer's stack. */
typedef struct uring_op {
	coro *coro;
	int res;
} uring_op;

/* The ring's own state of a pollDesc slot, at the slot's index: the slab
 * (pd.c) never shrinks and ur_add covers each index before its first arm,
 * so every token the ring hands back has its entry. */
typedef struct ur_slot {
	uint64_t send_epoch;     /* an SQE naming the fd was queued before submit #n */
	uint32_t armed_gen;
	uint32_t arm_errors;     /* consecutive failed arms */
	bool armed;              /* a multishot poll for `armed_gen` is in flight */
	/* Completion I/O only. */
	bool recv_on;            /* reads go through the ring (first read seen) */
	bool poll_off;           /* ... so the multishot poll was removed */
	bool wpoll_armed;        /* a one-shot POLLOUT is in flight */
	bool recv_armed;         /* a multishot recv is in flight */
	bool recv_cancel;        /* ... and a cancel of it was queued */
	bool recv_paused;        /* pd_recv_pause: only a read re-arms it */
	bool recv_eof;           /* its last CQE said EOF */
	bool nobuf_wait;         /* on the -ENOBUFS wait list */
	int recv_err;            /* its last CQE's error (positive errno) */
	uint32_t wait_prev, wait_next;
	uint32_t q_count;        /* buffers queued */
	uint32_t q_bytes;        /* bytes not yet copied out */
	uint32_t q_off;          /* copied out of the head buffer */
	uint16_t q_head, q_tail; /* bids */
} ur_slot;

static ur_slot *slots;
static size_t slot_cap;
/* Any pd was ever added: the I/O mode can no longer change. */
static bool any_added;
static unsigned ring_features;

/* Completion I/O state: the provided-buffer ring and where each buffer is. */
typedef enum ur_buf_where {
	UR_BUF_RING = 0,   /* in the ring, the kernel may pick it */
	UR_BUF_OUT,        /* handed out by a CQE, queued on a slot */
	UR_BUF_SPARE,      /* on the spare stack, not in the ring */
} ur_buf_where;

typedef struct ur_bufs {
	bool on;                  /* completion I/O in use */
	bool bundles;             /* recv with IORING_RECVSEND_BUNDLE */
	struct io_uring_buf_ring *br;
	size_t br_bytes;
	char *mem;                /* count * size bytes */
	uint32_t count;           /* ring entries = buffers, a power of two */
	uint32_t size;
	uint32_t in_ring;
	uint32_t target;          /* buffers the ring is topped up to */
	uint32_t spare_n;
	uint16_t *spare;          /* LIFO of UR_BUF_SPARE bids */
	uint32_t violations;      /* a CQE named a buffer that was not in the ring */
	uint16_t *pos_bid;        /* ring position & mask -> bid placed there */
	uint16_t *bid_pos;        /* bid -> ring position it was placed at */
	uint16_t *bid_next;       /* queue link of an UR_BUF_OUT buffer */
	uint32_t *bid_len;        /* bytes in an UR_BUF_OUT buffer */
	uint8_t *bid_where;       /* ur_buf_where */
	/* Slots whose recv ended with -ENOBUFS, oldest first (index + 1). */
	uint32_t wait_head, wait_tail;
} ur_bufs;

static ur_bufs bufs;

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
		ring_features = p.features;
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
	poll_g_stats.syscalls++;
	ring_fd_registered = io_uring_register_ring_fd(&ring) == 1;
	return 0;
}

bool poll_uring_ring_registered(void)
{
	return ring_open && ring_fd_registered;
}

static void bufs_free(void)
{
	if (bufs.br)
		munmap(bufs.br, bufs.br_bytes);
	free(bufs.mem);
	free(bufs.pos_bid);
	free(bufs.bid_pos);
	free(bufs.bid_next);
	free(bufs.bid_len);
	free(bufs.bid_where);
	free(bufs.spare);
	memset(&bufs, 0, sizeof(bufs));
}

static void ur_close(void)
{
	if (ring_open)
		io_uring_queue_exit(&ring); /* drops the buffer ring too */
	ring_open = false;
	ring_fd_registered = false;
	batch_writes = false;
	any_added = false;
	bufs_free();
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

/* --- completion I/O: setup ---------------------------------------------- */

static int bufs_alloc(uint32_t count, uint32_t size)
{
	long page = sysconf(_SC_PAGESIZE);
	size_t bytes = (size_t)count * sizeof(struct io_uring_buf);
	bufs.br_bytes = (bytes + (size_t)page - 1) & ~((size_t)page - 1);
	void *br = mmap(NULL, bufs.br_bytes, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (br == MAP_FAILED) {
		bufs.br = NULL;
		return -ENOMEM;
	}
	bufs.br = br;
	bufs.count = count;
	bufs.size = size;
	bufs.mem = malloc((size_t)count * size);
	bufs.pos_bid = calloc(count, sizeof(*bufs.pos_bid));
	bufs.bid_pos = calloc(count, sizeof(*bufs.bid_pos));
	bufs.bid_next = calloc(count, sizeof(*bufs.bid_next));
	bufs.bid_len = calloc(count, sizeof(*bufs.bid_len));
	bufs.bid_where = calloc(count, sizeof(*bufs.bid_where));
	bufs.spare = calloc(count, sizeof(*bufs.spare));
	if (!bufs.mem || !bufs.pos_bid || !bufs.bid_pos || !bufs.bid_next ||
	    !bufs.bid_len || !bufs.bid_where || !bufs.spare)
		return -ENOMEM;
	return 0;
}

/* Put `bid` at the ring's tail, where the kernel may take it again. */
static void buf_to_ring(uint16_t bid)
{
	uint16_t pos = bufs.br->tail;
	io_uring_buf_ring_add(bufs.br, bufs.mem + (size_t)bid * bufs.size,
			      bufs.size, bid,
			      io_uring_buf_ring_mask(bufs.count), 0);
	bufs.pos_bid[pos & (bufs.count - 1)] = bid;
	bufs.bid_pos[bid] = pos;
	bufs.bid_where[bid] = UR_BUF_RING;
	bufs.in_ring++;
	io_uring_buf_ring_advance(bufs.br, 1);
}

static void buf_to_spare(uint16_t bid)
{
	bufs.bid_where[bid] = UR_BUF_SPARE;
	bufs.spare[bufs.spare_n++] = bid;
}

/* Top the ring up to its target from the spares, hottest first. */
static void ring_refill(void)
{
	while (bufs.in_ring < bufs.target && bufs.spare_n)
		buf_to_ring(bufs.spare[--bufs.spare_n]);
}

static int bufs_register(void)
{
	struct io_uring_buf_reg reg;
	memset(&reg, 0, sizeof(reg));
	reg.ring_addr = (uint64_t)(uintptr_t)bufs.br;
	reg.ring_entries = bufs.count;
	reg.bgid = UR_BGID;
	poll_g_stats.syscalls++;
	int rc = io_uring_register_buf_ring(&ring, &reg, 0);
	if (rc < 0)
		return rc;
	io_uring_buf_ring_init(bufs.br);
	bufs.target = bufs.count < UR_RING_START ? bufs.count : UR_RING_START;
	for (uint32_t i = bufs.count; i-- > 0;)
		buf_to_spare((uint16_t)i);
	ring_refill();
	return 0;
}

static void prep_recv(struct io_uring_sqe *sqe, int fd, bool bundle)
{
	io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = UR_BGID;
	if (bundle)
		sqe->ioprio |= IORING_RECVSEND_BUNDLE;
}

/* Wait for the CQE of `data`, consuming it. 0 and its res/flags, or -ETIME. */
static int probe_wait(uint64_t data, int *res, unsigned *flags)
{
	for (int tries = 0; tries < 100; tries++) {
		struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = 10000000};
		struct io_uring_cqe *cqe = NULL;
		poll_g_stats.syscalls++;
		io_uring_submit_and_wait_timeout(&ring, &cqe, 1, &ts, NULL);
		unsigned head;
		bool found = false;
		io_uring_for_each_cqe(&ring, head, cqe) {
			if (cqe->user_data == data) {
				*res = cqe->res;
				*flags = cqe->flags;
				found = true;
				break;
			}
		}
		if (found) {
			io_uring_cqe_seen(&ring, cqe);
			return 0;
		}
	}
	return -ETIME;
}

/*
 * Does a multishot recv from the buffer ring (with a bundle when asked)
 * work here? One byte over a socketpair, then EOF ends the request. 0, or
 * -EINVAL when the kernel refuses the request, or another -errno.
 */
static int probe_recv(bool bundle)
{
	int sv[2];
	poll_g_stats.syscalls++;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	const uint64_t data = POLL_TOKEN_INTERNAL | UR_TOKEN_RECV | 0xffffffffu;
	struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
	int rc = -EBUSY, res = 0;
	unsigned flags = 0;
	if (sqe) {
		prep_recv(sqe, sv[0], bundle);
		io_uring_sqe_set_data64(sqe, data);
		poll_g_stats.syscalls += 2;
		rc = write(sv[1], "p", 1) == 1 ? 0 : -errno;
		shutdown(sv[1], SHUT_WR);
	}
	if (rc == 0)
		rc = probe_wait(data, &res, &flags);
	if (rc == 0 && res == 1 && (flags & IORING_CQE_F_BUFFER)) {
		uint16_t bid = (uint16_t)(flags >> IORING_CQE_BUFFER_SHIFT);
		bufs.in_ring--;
		buf_to_ring(bid);
		/* The EOF that ends it: without it the request would outlive
		 * the probe's socket. */
		if (flags & IORING_CQE_F_MORE)
			rc = probe_wait(data, &res, &flags);
		if (rc == 0 && res != 0)
			rc = res < 0 ? res : -EPROTO;
	} else if (rc == 0) {
		rc = res < 0 ? res : -EPROTO;
	}
	close(sv[0]);
	close(sv[1]);
	poll_g_stats.syscalls += 2;
	return rc;
}

static int open_completion(const poll_uring_io_config *cfg, char *why,
			   size_t why_len)
{
	uint32_t count = cfg->buffers ? cfg->buffers : UR_DEFAULT_BUFFERS;
	uint32_t size = cfg->buffer_size ? cfg->buffer_size
					 : UR_DEFAULT_BUFFER_SIZE;
	if (count > 32768 || (count & (count - 1)) || size < 64 ||
	    size > (1u << 20)) {
		snprintf(why, why_len, "completion I/O: buffers must be a power "
			 "of two up to 32768 and their size 64 B..1 MiB");
		return -EINVAL;
	}
	int rc = bufs_alloc(count, size);
	if (rc == 0)
		rc = bufs_register();
	if (rc < 0) {
		snprintf(why, why_len, "completion I/O unavailable: no provided "
			 "buffer rings (io_uring_register_buf_ring: %s; needs "
			 "Linux 5.19)", strerror(-rc));
		bufs_free();
		return rc == -EINVAL ? -EOPNOTSUPP : rc;
	}
	bool bundle = !cfg->no_bundles &&
		      (ring_features & IORING_FEAT_RECVSEND_BUNDLE);
	rc = probe_recv(bundle);
	if (rc == -EINVAL && bundle) {
		bundle = false;
		rc = probe_recv(false);
	}
	if (rc < 0) {
		snprintf(why, why_len, "completion I/O unavailable: no multishot "
			 "recv with provided buffers (%s; needs Linux 6.0)",
			 strerror(-rc));
		io_uring_unregister_buf_ring(&ring, UR_BGID);
		bufs_free();
		return rc == -EINVAL ? -EOPNOTSUPP : rc;
	}
	bufs.on = true;
	bufs.bundles = bundle;
	return 0;
}

int poll_set_uring_io(const poll_uring_io_config *cfg, char *why,
		      size_t why_len)
{
	char note[200] = "";
	if (why && why_len)
		why[0] = '\0';
	if (!cfg)
		return -EINVAL;
	if (!ring_open || poll_backend() != POLL_URING)
		return -ENOTSUP;
	if (any_added || bufs.on)
		return -EBUSY;
	if (cfg->mode == POLL_URING_IO_POLL)
		return 0;
	if (cfg->mode != POLL_URING_IO_COMPLETION &&
	    cfg->mode != POLL_URING_IO_AUTO)
		return -EINVAL;
	int rc = open_completion(cfg, note, sizeof(note));
	if (cfg->mode == POLL_URING_IO_AUTO) {
		if (why && why_len)
			snprintf(why, why_len, "%s%susing %s", note,
				 note[0] ? "; " : "",
				 rc == 0 ? "completion" : "poll");
		return 0;
	}
	if (rc < 0 && why && why_len)
		snprintf(why, why_len, "%s", note);
	return rc;
}

poll_uring_io poll_uring_io_mode(void)
{
	return bufs.on ? POLL_URING_IO_COMPLETION : POLL_URING_IO_POLL;
}

bool poll_uring_bundles(void)
{
	return bufs.on && bufs.bundles;
}

/* --- submission --------------------------------------------------------- */

static void flush_submit(void)
{
	poll_g_stats.syscalls++;
	poll_g_stats.poll_syscalls++;
	poll_g_stats.submits++;
	poll_g_stats.enters++;
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
	any_added = true;
	*slot_of(pd) = (ur_slot){0};
	return arm(pd);
}

static bool slot_live(const poll_desc *pd);

/* The slot still has a request in the kernel: a zombie waits for it. */
static bool slot_busy(const ur_slot *s)
{
	return s->armed || s->recv_armed || s->wpoll_armed;
}

/* A ring reader has no multishot poll (poll_drop), so a writer that found
 * its socket full asks for one POLLOUT. */
static void wpoll_arm(poll_desc *pd)
{
	ur_slot *s = slot_of(pd);
	if (!s->poll_off || s->wpoll_armed || !slot_live(pd))
		return;
	struct io_uring_sqe *sqe = sqe_get();
	if (!sqe)
		return;
	io_uring_prep_poll_add(sqe, pd->fd, POLLOUT);
	io_uring_sqe_set_data64(sqe, POLL_TOKEN_INTERNAL | UR_TOKEN_WPOLL |
				     pd->index);
	s->send_epoch = submit_epoch + 1; /* names the fd: see ur_del */
	s->wpoll_armed = true;
}

static int wpoll_done(uint32_t index, int res)
{
	poll_desc *pd = pd_slot(index);
	if (!pd || index >= slot_cap)
		return 0;
	ur_slot *s = &slots[index];
	if (!s->wpoll_armed)
		return 0;
	s->wpoll_armed = false;
	if (pd->state == PD_ZOMBIE) {
		if (!slot_busy(s))
			pd_slot_release(pd);
		return 0;
	}
	if (!slot_live(pd) || res == -ECANCELED)
		return 0;
	/* Input is the recv's to report; an error or hang-up wakes the writer,
	 * whose send will say what it is. */
	unsigned ev = res < 0 ? EV_WRITE : pd_events_from_mask((uint32_t)res);
	return pd_deliver(pd_token(pd), EV_WRITE | (ev & EV_HUP));
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
	ssize_t n;
	if (!(batch_writes || bufs.on) || pd->not_socket || !coro_self()) {
		n = pd_sys_sendmsg(pd, iov, iov_count);
	} else {
		n = ring_sendmsg(pd, iov, iov_count);
		if (n == -ENOTSOCK)
			pd->not_socket = true;
		if (n == -ENOTSOCK || n == -ENOBUFS)
			n = pd_sys_sendmsg(pd, iov, iov_count);
	}
	if (n == -EAGAIN)
		wpoll_arm(pd); /* the caller parks for write next */
	return n;
}

/* --- completion I/O: receives ------------------------------------------- */

static bool slot_live(const poll_desc *pd)
{
	return pd && pd->state == PD_OPEN && !pd->closing;
}

static void wait_unlink(uint32_t index)
{
	ur_slot *s = &slots[index];
	if (!s->nobuf_wait)
		return;
	if (s->wait_prev)
		slots[s->wait_prev - 1].wait_next = s->wait_next;
	else
		bufs.wait_head = s->wait_next;
	if (s->wait_next)
		slots[s->wait_next - 1].wait_prev = s->wait_prev;
	else
		bufs.wait_tail = s->wait_prev;
	s->wait_prev = s->wait_next = UR_NONE;
	s->nobuf_wait = false;
}

static void wait_append(uint32_t index)
{
	ur_slot *s = &slots[index];
	if (s->nobuf_wait)
		return;
	s->nobuf_wait = true;
	s->wait_next = UR_NONE;
	s->wait_prev = bufs.wait_tail;
	if (bufs.wait_tail)
		slots[bufs.wait_tail - 1].wait_next = index + 1;
	else
		bufs.wait_head = index + 1;
	bufs.wait_tail = index + 1;
}

static void recv_arm(poll_desc *pd);
static void queue_remove(poll_desc *pd);

/* The slot's recv works (it brought data) and reports input, EOF and
 * errors from now on: the multishot poll
 * would only add a CQE to every arrival and every ACK that frees send
 * space. From here write readiness comes from wpoll_arm. A writer parked
 * on the poll right now gets its POLLOUT that way too. */
static void poll_drop(poll_desc *pd)
{
	ur_slot *s = slot_of(pd);
	if (s->poll_off)
		return;
	s->poll_off = true;
	if (s->armed)
		queue_remove(pd);
	if (pd->wr.slot == SLOT_WAIT || pd->wr.slot == SLOT_WATCH)
		wpoll_arm(pd);
}

/* A buffer is back: the oldest slot waiting for one may receive again.
 * One waiter per returned buffer, so a ring that stays short never
 * re-arms more recvs than it could feed (no -ENOBUFS loop). */
static void buf_give_back(uint16_t bid)
{
	if (bufs.in_ring < bufs.target)
		buf_to_ring(bid);
	else
		buf_to_spare(bid);
	poll_g_stats.bufs_in_use--;
	if (!bufs.wait_head)
		return;
	uint32_t index = bufs.wait_head - 1;
	wait_unlink(index);
	poll_desc *pd = pd_slot(index);
	if (slot_live(pd))
		recv_arm(pd);
}

/* Give every buffer queued on the slot back (close, error). */
static void queue_drop(ur_slot *s)
{
	while (s->q_count) {
		uint16_t bid = s->q_head;
		s->q_head = bufs.bid_next[bid];
		s->q_count--;
		buf_give_back(bid);
	}
	s->q_bytes = s->q_off = 0;
}

static void queue_push(ur_slot *s, uint16_t bid, uint32_t len)
{
	bufs.bid_len[bid] = len;
	if (s->q_count)
		bufs.bid_next[s->q_tail] = bid;
	else
		s->q_head = bid, s->q_off = 0;
	s->q_tail = bid;
	s->q_count++;
	s->q_bytes += len;
}

static void recv_cancel(poll_desc *pd)
{
	ur_slot *s = slot_of(pd);
	if (!s->recv_armed || s->recv_cancel)
		return;
	struct io_uring_sqe *sqe = sqe_get();
	if (!sqe)
		return;
	io_uring_prep_cancel64(sqe, POLL_TOKEN_INTERNAL | UR_TOKEN_RECV |
				    pd->index, 0);
	io_uring_sqe_set_data64(sqe, POLL_TOKEN_INTERNAL | UR_TOKEN_RECV_CANCEL |
				     pd->index);
	s->recv_cancel = true;
}

/* Arm the slot's multishot recv when its reader may want more: nothing in
 * flight, no end seen, room in its queue, and a buffer in the ring (else
 * it waits for one instead of failing with -ENOBUFS at once). */
static void recv_arm(poll_desc *pd)
{
	ur_slot *s = slot_of(pd);
	if (!s->recv_on || s->recv_armed || s->recv_eof || s->recv_err ||
	    s->recv_paused || s->nobuf_wait || s->q_count || pd->not_socket ||
	    !slot_live(pd))
		return;
	ring_refill();
	if (bufs.in_ring == 0) {
		wait_append(pd->index);
		return;
	}
	struct io_uring_sqe *sqe = sqe_get();
	if (!sqe)
		return;
	prep_recv(sqe, pd->fd, bufs.bundles);
	io_uring_sqe_set_data64(sqe, POLL_TOKEN_INTERNAL | UR_TOKEN_RECV |
				     pd->index);
	s->send_epoch = submit_epoch + 1; /* names the fd: see ur_del */
	s->recv_armed = true;
	s->recv_cancel = false;
}

/* What pd_ready_now reports beside the socket's own state. */
static void note_queued(poll_desc *pd, const ur_slot *s)
{
	pd->rd_queued = s->q_count || s->recv_eof || s->recv_err;
}

/* The recv op: copy out of the queue; -EAGAIN (and arm) when it is empty. */
static ssize_t ur_recv(poll_desc *pd, void *buf, size_t len)
{
	if (!bufs.on || pd->not_socket)
		return pd_sys_recv(pd, buf, len);
	ur_slot *s = slot_of(pd);
	size_t done = 0;
	s->recv_paused = false; /* a reader wants more: see pd_recv_pause */
	if (!s->recv_on) {
		/* The first read is read(2): readiness reported before it (by
		 * the poll) must find the data. The recv armed after it
		 * takes what follows, in order. */
		ssize_t n = pd_sys_recv(pd, buf, len);
		if (n == 0 || (n < 0 && n != -EAGAIN))
			return n;
		s->recv_on = true;
		recv_arm(pd);
		return n;
	}
	while (done < len && s->q_count) {
		uint16_t bid = s->q_head;
		size_t avail = bufs.bid_len[bid] - s->q_off;
		size_t n = len - done < avail ? len - done : avail;
		memcpy((char *)buf + done,
		       bufs.mem + (size_t)bid * bufs.size + s->q_off, n);
		done += n;
		s->q_off += (uint32_t)n;
		s->q_bytes -= (uint32_t)n;
		if (s->q_off == bufs.bid_len[bid]) {
			s->q_head = bufs.bid_next[bid];
			s->q_count--;
			s->q_off = 0;
			buf_give_back(bid);
		}
	}
	recv_arm(pd);
	note_queued(pd, s);
	if (done > 0 || len == 0)
		return (ssize_t)done;
	if (s->recv_err)
		return -s->recv_err;
	if (s->recv_eof)
		return 0;
	return -EAGAIN;
}

/* Take the buffers a recv CQE filled (several with a bundle: the ring
 * entries after the first, in ring order) onto the slot's queue, or back
 * to the ring when nobody will read them. */
static void recv_take(ur_slot *s, bool keep, unsigned cflags, int res)
{
	uint16_t bid = (uint16_t)(cflags >> IORING_CQE_BUFFER_SHIFT);
	uint16_t pos = bufs.bid_pos[bid];
	uint32_t left = (uint32_t)res;

	for (uint16_t i = 0; left > 0; i++) {
		uint16_t b = i == 0 ? bid
				    : bufs.pos_bid[(uint16_t)(pos + i) &
						   (bufs.count - 1)];
		uint32_t n = left < bufs.size ? left : bufs.size;
		left -= n;
		if (bufs.bid_where[b] != UR_BUF_RING) {
			/* Never expected: count it for poll_uring_audit_buffers
			 * and leave the buffer where it is. */
			bufs.violations++;
			continue;
		}
		bufs.bid_where[b] = UR_BUF_OUT;
		bufs.in_ring--;
		poll_g_stats.bufs_in_use++;
		if (keep)
			queue_push(s, b, n);
		else
			buf_give_back(b);
	}
}

static int recv_done(uint32_t index, int res, unsigned cflags)
{
	poll_desc *pd = pd_slot(index);
	if (!pd || index >= slot_cap)
		return 0;
	ur_slot *s = &slots[index];
	bool live = slot_live(pd);
	unsigned ev = 0;

	if (res > 0 && (cflags & IORING_CQE_F_BUFFER)) {
		recv_take(s, live, cflags, res);
		if (live)
			ev |= EV_READ;
		/* Only a socket's recv brings data: a non-socket's ends with
		 * -ENOTSOCK and keeps its poll. */
		if (live)
			poll_drop(pd);
		if (live && s->q_bytes >= UR_QUEUE_CAP)
			recv_cancel(pd);
	}
	if (live)
		note_queued(pd, s);
	if (cflags & IORING_CQE_F_MORE)
		return ev ? pd_deliver(pd_token(pd), ev) : 0;

	s->recv_armed = false;
	s->recv_cancel = false;
	if (pd->state == PD_ZOMBIE) {
		if (!slot_busy(s))
			pd_slot_release(pd);
		return 0;
	}
	if (!live)
		return 0;
	if (res == -ENOBUFS) {
		poll_g_stats.recv_nobufs++;
		/* The ring was too short for this round: grow it from the
		 * spares and go on; only with none left wait for a buffer. */
		if (bufs.spare_n) {
			if (bufs.target < bufs.count)
				bufs.target *= 2;
			ring_refill();
			recv_arm(pd);
		} else {
			wait_append(index);
		}
	} else if (res == 0) {
		s->recv_eof = true;
		ev |= EV_READ | EV_HUP;
	} else if (res == -ENOTSOCK) {
		pd->not_socket = true; /* read(2) from now on */
		ev |= EV_READ;
	} else if (res < 0 && res != -ECANCELED) {
		s->recv_err = -res;
		ev |= EV_READ | EV_HUP;
	} else {
		/* Ended by the kernel with data (or by our cancel): go on
		 * once the reader has room. */
		recv_arm(pd);
	}
	note_queued(pd, s);
	return ev ? pd_deliver(pd_token(pd), ev) : 0;
}

/* A cancel that found the recv busy (-EALREADY: a wake-up it owns is still
 * queued) is sent again while it is still needed: always for a zombie,
 * whose recv holds the socket open. */
static void recv_cancel_done(uint32_t index, int res)
{
	poll_desc *pd = pd_slot(index);
	if (!pd || index >= slot_cap || (res != -EALREADY && res != -EBUSY))
		return;
	ur_slot *s = &slots[index];
	if (!s->recv_armed)
		return;
	bool needed = pd->state == PD_ZOMBIE ||
		      (slot_live(pd) && (s->q_bytes >= UR_QUEUE_CAP || s->recv_paused));
	s->recv_cancel = false;
	if (needed)
		recv_cancel(pd);
}

/* pd_recv_pause / pd_recv_resume (poll.h). A recv waiting for a buffer
 * leaves the wait list: a buffer coming back must not re-arm it. */
static void ur_recv_pause(poll_desc *pd, bool pause)
{
	ur_slot *s = slot_of(pd);
	if (!bufs.on || pd->not_socket)
		return;
	s->recv_paused = pause;
	if (!pause) {
		recv_arm(pd);
		return;
	}
	wait_unlink(pd->index);
	recv_cancel(pd);
}

static bool ur_recv_quiet(const poll_desc *pd)
{
	const ur_slot *s = slot_of(pd);
	return !bufs.on || pd->not_socket ||
	       (!s->recv_armed && !s->nobuf_wait && s->q_count == 0);
}

int poll_uring_audit_buffers(uint32_t *in_ring, uint32_t *queued)
{
	uint32_t ring_n = 0, queue_n = 0;
	if (in_ring)
		*in_ring = 0;
	if (queued)
		*queued = 0;
	if (!bufs.on)
		return -ENOTSUP;
	uint8_t *seen = calloc(bufs.count, 1);
	if (!seen)
		return -ENOMEM;
	bool bad = bufs.violations > 0;
	/* The ring holds the entries from the kernel's head to our tail. */
	uint16_t tail = bufs.br->tail;
	for (uint32_t i = 0; i < bufs.in_ring; i++) {
		uint16_t b = bufs.pos_bid[(uint16_t)(tail - 1 - i) &
					  (bufs.count - 1)];
		bad |= seen[b]++ || bufs.bid_where[b] != UR_BUF_RING;
		ring_n++;
	}
	for (size_t i = 0; i < slot_cap; i++) {
		uint16_t b = slots[i].q_head;
		uint32_t bytes = 0;
		for (uint32_t k = 0; k < slots[i].q_count; k++) {
			bad |= seen[b]++ || bufs.bid_where[b] != UR_BUF_OUT;
			bytes += bufs.bid_len[b];
			queue_n++;
			b = bufs.bid_next[b];
		}
		bad |= slots[i].q_count &&
		       bytes - slots[i].q_off != slots[i].q_bytes;
	}
	for (uint32_t i = 0; i < bufs.spare_n; i++) {
		uint16_t b = bufs.spare[i];
		bad |= seen[b]++ || bufs.bid_where[b] != UR_BUF_SPARE;
		ring_n++;
	}
	free(seen);
	bad |= ring_n + queue_n != bufs.count ||
	       poll_g_stats.bufs_in_use != queue_n;
	if (in_ring)
		*in_ring = ring_n;
	if (queued)
		*queued = queue_n;
	return bad ? -EIO : 0;
}

static void queue_remove(poll_desc *pd)
{
	struct io_uring_sqe *sqe = sqe_get();
	if (!sqe)
		return; /* cannot happen after a flush; the slot stays a zombie */
	uint64_t token = ((uint64_t)slot_of(pd)->armed_gen << 32) | pd->index;
	io_uring_prep_poll_remove(sqe, token);
	io_uring_sqe_set_data64(sqe, POLL_TOKEN_INTERNAL | UR_TOKEN_POLL_REMOVE |
				     pd->index);
}

/*
 * POLL_REMOVE fails with -EALREADY when the poll owns a wake-up that is
 * still being processed (with DEFER_TASKRUN: queued until our next enter).
 * The multishot poll then simply goes on, holding the file open, so the
 * peer never sees our close: ask again with the next round's submit.
 */
static void remove_done(uint32_t index, int res)
{
	if (res != -EALREADY && res != -EBUSY)
		return;
	poll_desc *pd = pd_slot(index);
	if (!pd || index >= slot_cap)
		return;
	/* A zombie or a pd dropping its poll: the slot cannot have been
	 * reused meanwhile, so the poll still armed is the one to remove. A
	 * live pd that is not dropping it was recycled: nothing to do. */
	if (pd->state != PD_ZOMBIE && !slot_of(pd)->poll_off)
		return;
	if (slot_of(pd)->armed)
		queue_remove(pd);
}

static void wpoll_remove(poll_desc *pd)
{
	struct io_uring_sqe *sqe = sqe_get();
	if (!sqe)
		return; /* the poll still ends when the socket closes */
	io_uring_prep_poll_remove(sqe, POLL_TOKEN_INTERNAL | UR_TOKEN_WPOLL |
				       pd->index);
	io_uring_sqe_set_data64(sqe, POLL_TOKEN_INTERNAL |
				     UR_TOKEN_WPOLL_REMOVE | pd->index);
}

static bool ur_del(poll_desc *pd)
{
	/* A send still in the SQ names the fd by number: once close() frees the
	 * number, a new socket could get it and receive this connection's data.
	 * Submit first, so the kernel holds the right file. (Rare: the writer
	 * is parked and someone else closes in the same round.) */
	ur_slot *s = slot_of(pd);
	if (s->send_epoch == submit_epoch + 1)
		flush_submit();
	if (bufs.on) {
		/* The buffers nobody will read go back now; the recv holds
		 * the socket open, so it is cancelled like the poll. */
		wait_unlink(pd->index);
		queue_drop(s);
		s->recv_on = false;
		recv_cancel(pd);
	}
	if (s->armed)
		queue_remove(pd);
	if (s->wpoll_armed)
		wpoll_remove(pd);
	return slot_busy(s);
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
		if (!slot_busy(s))
			pd_slot_release(pd);
		return true;
	}
	if (pd->state != PD_OPEN || pd->closing ||
	    (pd->gen & POLL_GEN_MASK) != gen || s->poll_off)
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
	poll_g_stats.completions++;
	if (data & POLL_TOKEN_INTERNAL) {
		if (data & UR_TOKEN_RECV)
			return recv_done((uint32_t)data, res, cflags);
		if (data & UR_TOKEN_RECV_CANCEL) {
			recv_cancel_done((uint32_t)data, res);
			return 0;
		}
		if (data & UR_TOKEN_WPOLL_REMOVE)
			return 0;
		if (data & UR_TOKEN_WPOLL)
			return wpoll_done((uint32_t)data, res);
		if (data & UR_TOKEN_POLL_REMOVE) {
			remove_done((uint32_t)data, res);
			return 0;
		}
		if (!(data & POLL_TOKEN_OP))
			return 0;
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
	/* Data reaches a ring reader through its recv's CQEs: readiness alone
	 * would only wake it to find its queue empty. A hang-up still goes
	 * through (the recv's own end may come later). */
	if (pd && (uint32_t)data < slot_cap && slots[(uint32_t)data].recv_on &&
	    !pd->not_socket && !(ev & EV_HUP))
		ev &= ~(unsigned)EV_READ;
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
	poll_g_stats.enters++;
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
	poll_g_stats.enters++;
	if (pending)
		poll_g_stats.submits++;
	submit_epoch++;
	io_uring_submit_and_wait_timeout(&ring, &cqe, 1,
					 delay_ns < 0 ? NULL : &ts, NULL);
}

static int ur_poll(int64_t delay_ns)
{
	if (bufs.on)
		ring_refill();
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
	.recv = ur_recv, /* read(2), or the recv's queue with completion I/O */
	.sendmsg = ur_sendmsg,
	.recv_pause = ur_recv_pause,
	.recv_quiet = ur_recv_quiet,
};
