/*
 * poll — the netpoller: blocking-style fd operations for coroutines.
 *
 * This is Go's runtime/netpoll.go rebuilt for one scheduler per process.
 * The design, in named parts that comments elsewhere point to ("see
 * 'Fairness' in poll/poll.h"):
 *
 * Poll descriptors. pd_open takes an fd, makes it non-blocking and gives it
 *   a pollDesc (poll_desc): a slot in a slab of fixed chunks, so the pointer
 *   stays valid memory while the poller lives; closed slots are reused LIFO.
 *   Each has a read and a write direction, and each direction a slot that is
 *   empty, READY, a parked coroutine or a watch callback.
 *
 * One registration. The fd is registered with the backend once, for its
 *   whole life, edge-triggered: epoll with IN|OUT|RDHUP|ET, io_uring with
 *   one multishot POLL_ADD (re-armed only when the kernel ends it). Waiting
 *   never costs an epoll_ctl or a new SQE (completion I/O's sockets trade
 *   it for their recv: see below).
 *
 * Parking. An fd operation tries its syscall first; on EAGAIN the coroutine
 *   parks on the direction's slot until the backend reports readiness, then
 *   tries again. Readiness that arrives while nobody waits leaves READY and
 *   the next wait returns at once (no lost wake-up); an operation drops a
 *   leftover READY just before its own syscall, since after that only a new
 *   edge means anything. A second waiter on one direction is a bug and
 *   aborts with a message.
 *
 * Watches. Instead of parking a coroutine, pd_watch arms a callback that
 *   readiness calls once in scheduler context, so an idle connection holds
 *   no coroutine stack.
 *
 * Generations. Every event carries a token: the slot's generation in the
 *   high half, its index in the low half. Close bumps the generation, so an
 *   event for an fd that was closed, or closed and reused, is dropped and
 *   counted (no stale wake-up). When the backend still owns a request for a
 *   closed fd (io_uring), the slot stays a zombie until that request's last
 *   completion, and only then is reused.
 *
 * Close wakes waiters. pd_close wakes a parked coroutine in each direction
 *   with -EBADF and fires armed watches before it closes the fd, so nothing
 *   stays parked on a closed fd.
 *
 * Deadlines. Each direction has an absolute deadline driven by a scheduler
 *   timer; expiry wakes the waiter (or fires the watch) with -ETIMEDOUT, and
 *   a deadline already past fails the next operation without a syscall.
 *
 * Short reads. A read that returned less than asked emptied the socket, so
 *   until the next edge another read would only say EAGAIN: pd_read parks
 *   at once instead. Not after a hang-up, whose FIN may have come with the
 *   data just read (no edge would follow).
 *
 * Fairness. pd_read, pd_write_full and pd_writev_full that complete 64
 *   (POLL_FAIR_STREAK) times in a row on one pd without parking call
 *   coro_yield() once, so a relay whose peer is always ready cannot starve
 *   the run queue. pd_try_read never yields: it may run in scheduler
 *   context (a watch callback).
 *
 * Where polling happens. The scheduler calls the poller (sched_set_netpoll)
 *   when its run queue is empty, blocking until the next timer, and without
 *   blocking every SCHED_POLL_INTERVAL rounds of a busy queue.
 *
 * Accept backoff. On EMFILE/ENFILE the connection stays queued and the
 *   listener stays readable, so waiting for readiness would spin: pd_accept
 *   sleeps instead, 1 ms doubling to 256 ms, never past the read deadline.
 *
 * io_uring batching. The io_uring backend only queues SQEs (arms, removes,
 *   sends); they reach the kernel together with the wait in one
 *   io_uring_enter per scheduler round, and a non-blocking poll with
 *   nothing queued makes no syscall unless the kernel flags completions.
 *   With write batching on (poll_set_uring_write_batching), writes go out
 *   as SENDMSG SQEs of that same enter.
 *
 * io_uring completion I/O. Chosen once, before the first pd_open
 *   (poll_set_uring_io). Reads no longer make a read(2): a socket's first
 *   read arms one multishot RECV that takes buffers from the shard's
 *   provided-buffer ring (receive bundles where the kernel has them); each
 *   completion queues its buffers on the pollDesc and raises read
 *   readiness, and reads copy out of that queue, giving a buffer back to
 *   the ring as soon as it is empty. An idle socket's recv holds no buffer.
 *   The ring holds only part of the buffers (64 at first, the rest spares
 *   reused LIFO), doubled whenever a recv finds it empty, so a light load
 *   keeps reusing a few hot buffers instead of touching all of them.
 *   A queue of 64 KiB cancels the recv (the rest stays in the socket: TCP
 *   backpressure), re-armed once the reader has emptied it. A recv that
 *   ends with -ENOBUFS (ring empty) waits, oldest first, for a buffer to
 *   come back, one waiter per buffer (no retry loop). EOF and errors are
 *   kept and returned once the queue is empty. Writes go through the ring
 *   as with write batching. The multishot poll of 'One registration' stays
 *   until the socket's recv has brought data (so accept, connect, and
 *   non-sockets, whose recv fails, keep it); then it is removed, since it
 *   would only add a completion to every arrival and every ACK, and a send
 *   that finds the socket full arms a one-shot POLLOUT instead (armed too
 *   for a writer already parked when the poll goes). Close cancels the
 *   recv and that POLLOUT, and the slot stays a zombie until every request
 *   has ended. The ring's own fd is registered where the kernel allows
 *   (io_uring_register_ring_fd), so an enter needs no fd lookup.
 *
 * Errors. All functions return a count or 0 on success and a negative
 * errno on error.
 */
#ifndef FRAMEPROXY_POLL_H
#define FRAMEPROXY_POLL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "sched/sched.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum poll_kind {
	POLL_AUTO = 0,   /* io_uring when usable, else epoll (and say so) */
	POLL_EPOLL = 1,
	POLL_URING = 2,
} poll_kind;

typedef enum pd_dir {
	PD_READ = 1,
	PD_WRITE = 2,
	PD_BOTH = 3,
} pd_dir;

typedef struct poll_desc poll_desc; /* pollDesc */

typedef struct poll_stats {
	uint64_t waits;          /* coroutines parked on a pollDesc */
	uint64_t events;         /* readiness events taken from the backend */
	uint64_t stale_events;   /* events dropped for closed or reused fds */
	uint64_t submits;        /* io_uring submissions (0 for epoll) */
	uint64_t syscalls;       /* syscalls made by the poller and fd ops */
	uint64_t netpoll_calls;  /* times the scheduler called the netpoll hook */
	uint64_t accept_pauses;  /* EMFILE/ENFILE backoffs */
	uint64_t timeouts;       /* deadline expiries that woke a waiter */
	/* The part of `syscalls` the backend spent polling/submitting
	 * (epoll_wait, io_uring_enter), as opposed to the fd operations. */
	uint64_t poll_syscalls;
	uint64_t enters;         /* io_uring_enter calls (0 for epoll) */
	uint64_t completions;    /* io_uring CQEs handled (0 for epoll) */
	uint64_t recv_nobufs;    /* completion I/O: recvs ended by an empty ring */
	uint64_t bufs_in_use;    /* completion I/O: ring buffers queued on pds (gauge) */
} poll_stats;

/* Parse "epoll" / "uring" / "auto". -EINVAL otherwise. */
int poll_kind_parse(const char *name, poll_kind *out);
const char *poll_kind_name(poll_kind kind);

/*
 * Open the process's poller and plug it into the scheduler (sched_init first).
 * POLL_URING where io_uring cannot be used fails with -ENOSYS/-EPERM/...
 * and one line in `why` naming the reason; POLL_AUTO then falls back to epoll
 * and leaves that line in `why` as a note (empty when nothing to say).
 */
int poll_open(poll_kind kind, char *why, size_t why_len);
void poll_close(void);
poll_kind poll_backend(void);     /* the backend actually in use */
void poll_get_stats(poll_stats *out);
/*
 * io_uring only, off by default ('io_uring batching' above):
 * pd_write_full/pd_writev_full hand their data to the ring as a
 * SENDMSG(MSG_DONTWAIT) SQE that goes in with the round's single
 * io_uring_enter, instead of one sendmsg(2) each; the writer parks until
 * its CQE (one round). A full socket still parks on write readiness with
 * deadlines as usual. Semantics are unchanged (the call returns when the
 * data is in the socket); only fewer syscalls and a write that completes
 * at the next poll instead of at once.
 * 0, or -ENOTSUP when the backend is not io_uring.
 */
int poll_set_uring_write_batching(bool on);

/* io_uring's I/O mode ('io_uring completion I/O' above). */
typedef enum poll_uring_io {
	POLL_URING_IO_POLL = 0,        /* readiness, then read(2)/sendmsg(2) */
	POLL_URING_IO_COMPLETION = 1,  /* multishot recv, sends in the ring */
	POLL_URING_IO_AUTO = 2,        /* completion where it works, else poll */
} poll_uring_io;

typedef struct poll_uring_io_config {
	poll_uring_io mode;
	uint32_t buffers;       /* ring entries, a power of two <= 32768; 0: 2048 */
	uint32_t buffer_size;   /* bytes each, 64..1 MiB; 0: 4096 */
	bool no_bundles;        /* one buffer per recv even where bundles work */
} poll_uring_io_config;

/* "poll" / "completion" / "auto". -EINVAL otherwise. */
int poll_uring_io_parse(const char *name, poll_uring_io *out);
const char *poll_uring_io_name(poll_uring_io mode);
/*
 * Choose the io_uring I/O mode, after poll_open and before any pd_open.
 * COMPLETION probes the kernel (buffer ring, multishot recv, bundles) and
 * fails with -EOPNOTSUPP and one line in `why` naming what is missing;
 * AUTO takes completion where it works, else poll, returns 0 and says in
 * `why` which it took. -ENOTSUP when the backend is not io_uring, -EBUSY
 * after a pd_open, -EINVAL for a bad configuration.
 */
int poll_set_uring_io(const poll_uring_io_config *cfg, char *why,
		      size_t why_len);
/* POLL_URING_IO_POLL or _COMPLETION: the mode in use. */
poll_uring_io poll_uring_io_mode(void);
/* Completion I/O receives bundles (the kernel has them, not turned off). */
bool poll_uring_bundles(void);
/* The io_uring ring's own fd is registered (enters skip an fd lookup). */
bool poll_uring_ring_registered(void);
/*
 * Completion I/O bookkeeping, for tests: walks the buffer ring and every
 * pd's queue. 0 when each buffer is in exactly one place and the counts
 * agree (`in_ring` + `queued` = all of them, `queued` = bufs_in_use), -EIO
 * when a buffer was handed out twice or lost, -ENOTSUP without completion
 * I/O. `in_ring` counts the free buffers: in the ring or its spares.
 */
int poll_uring_audit_buffers(uint32_t *in_ring, uint32_t *queued);

/* --- pollDescs ---------------------------------------------------------- */

/* Take ownership of `fd`: make it non-blocking and register it once.
 * On failure the fd is left open and still belongs to the caller. */
int pd_open(int fd, poll_desc **out);
int pd_fd(const poll_desc *pd);
/*
 * Wake every waiter with -EBADF (their wait fails; watches fire), deregister
 * (io_uring: cancel the multishot poll), close the fd, recycle the pollDesc.
 * Watches fire synchronously inside pd_close (ops on the pd then return
 * -EBADF); once pd_close returns, the poll_desc* must not be used again: its
 * memory stays valid while the poller lives, but the slot may be reused.
 */
int pd_close(poll_desc *pd);
/*
 * Park until `dir` (PD_READ or PD_WRITE) is ready. 0 when ready, -ETIMEDOUT
 * when that direction's deadline passed, -EBADF when the pollDesc is closing.
 */
int pd_wait(poll_desc *pd, pd_dir dir);
/* Absolute deadline (sched_now clock) for the directions in `dirs`; 0 = none.
 * A deadline already past makes waits and I/O fail at once with -ETIMEDOUT. */
void pd_set_deadline(poll_desc *pd, pd_dir dirs, int64_t deadline_ns);

/*
 * Instead of parking a coroutine, have readiness of `dir` call `fn` once from
 * scheduler context (it typically spawns a coroutine). Returns 1 without
 * arming when the direction is already READY (the READY is consumed: retry
 * the I/O now), 0 when armed, -EBUSY when a waiter or watch is already there.
 * Closing the pollDesc fires the watch. An armed watch holds the scheduler
 * alive (sched_hold). `dir` is PD_READ or PD_WRITE (-EINVAL otherwise);
 * -EBADF when closing; the direction's deadline expiring also fires the
 * watch, and an already expired deadline returns 1 (the retried I/O then
 * says -ETIMEDOUT). See 'Watches' above.
 */
typedef void (*pd_watch_fn)(poll_desc *pd, void *arg);
int pd_watch(poll_desc *pd, pd_dir dir, pd_watch_fn fn, void *arg);
/* Disarm a watch that has not fired. 0, or -ENOENT when none is armed. */
int pd_unwatch(poll_desc *pd, pd_dir dir);

/* --- blocking-style operations ----------------------------------------- */
/* Each checks the deadline, tries its syscall and parks on EAGAIN (see
 * 'Parking' and 'Fairness' above). */

enum {
	POLL_LISTEN_REUSEPORT = 1u << 0,
	POLL_LISTEN_V6ONLY = 1u << 1,
};

/* socket + SO_REUSEADDR (+ SO_REUSEPORT) + bind + listen. */
int poll_listen(const struct sockaddr *addr, socklen_t addr_len, int backlog,
		unsigned flags, poll_desc **out);
/* The same without a pollDesc (no poller needed): a non-blocking,
 * close-on-exec listening fd, or -errno. For a supervisor that binds
 * before its shards open their pollers. */
int poll_listen_socket(const struct sockaddr *addr, socklen_t addr_len,
		       int backlog, unsigned flags);
/*
 * Accept one connection (non-blocking, TCP_NODELAY on TCP). ECONNABORTED is
 * retried; EMFILE/ENFILE backs off (bounded, counted) and retries until fds
 * free up or the read deadline passes.
 */
int pd_accept(poll_desc *listener, poll_desc **out, struct sockaddr_storage *peer,
	      socklen_t *peer_len);
/* Non-blocking connect, parked until done. timeout_ns <= 0: no timeout. */
int poll_connect(const struct sockaddr *addr, socklen_t addr_len,
		 int64_t timeout_ns, poll_desc **out);

/* One read: parks until at least 1 byte or EOF. Returns n > 0, 0 on EOF. */
ssize_t pd_read(poll_desc *pd, void *buf, size_t len);
/* Read exactly len bytes; returns len, a short count at EOF, or -errno. */
ssize_t pd_read_full(poll_desc *pd, void *buf, size_t len);
/* read(2) once without parking: n, 0 on EOF, -EAGAIN, -errno. */
ssize_t pd_try_read(poll_desc *pd, void *buf, size_t len);
/*
 * True when the last read came back short and no readiness or hang-up was
 * reported since: another read would only say EAGAIN. A caller may wait
 * (pd_wait, pd_watch) without making that read; the next edge clears it.
 */
bool pd_read_drained(const poll_desc *pd);
ssize_t pd_write_full(poll_desc *pd, const void *buf, size_t len);
/* Write all of iov (modified in place as it goes); returns the total. */
ssize_t pd_writev_full(poll_desc *pd, struct iovec *iov, int iov_count);
int pd_shutdown(poll_desc *pd, int how);
/*
 * What the kernel says of the fd right now (poll(2), no wait), outside the
 * backend and its slots: PD_READ and/or PD_WRITE, or a negative errno. One
 * syscall, for rare checks (an expired idle timer asking whether input
 * is only waiting for its turn), never for the data path.
 */
int pd_ready_now(poll_desc *pd);

/*
 * Handing a socket to another process (a reload's handoff). With
 * completion I/O a socket's multishot recv may take bytes into this
 * process's buffer ring at any moment, so before its fd goes elsewhere
 * the recv must end. pd_recv_pause cancels it and keeps it from being
 * re-armed by anything but a read: a read (which means the reader wants
 * more) resumes it, as does pd_recv_resume. pd_recv_quiet is true once no
 * recv is in flight or waiting for a buffer and nothing is queued: every
 * byte not yet read is then in the kernel's socket buffer. The cancel's
 * end raises no readiness; a caller waiting for quiet looks again later.
 * Without completion I/O (epoll, io_uring poll mode) reads are plain
 * read(2)s: pause and resume do nothing and a pd is always quiet.
 */
void pd_recv_pause(poll_desc *pd);
void pd_recv_resume(poll_desc *pd);
bool pd_recv_quiet(const poll_desc *pd);

/* --- addresses ------------------------------------------------------------ */
/*
 * "HOST:PORT" text to a socket address and back; no pollDesc or poller
 * needed. Accepted: 127.0.0.1:9000  [::1]:9000  localhost:9000. Numeric
 * addresses never touch the resolver. A name is resolved once, with
 * getaddrinfo, when it is parsed; when it has both kinds of address the
 * first IPv4 one is taken, because local services are most often bound to
 * 127.0.0.1 only, while glibc tends to list ::1 first for "localhost". An
 * IPv6 address must be in brackets so its colons are not read as the port
 * separator.
 */

/* Long enough for "[ffff:...:255.255.255.255]:65535" and a NUL. */
#define POLL_ADDR_STRLEN 64

enum {
	POLL_ADDR_NUMERIC = 1u << 0,  /* refuse names: no resolver call */
	POLL_ADDR_PORT0 = 1u << 1,    /* ":0" = pick a port (listen sockets) */
	POLL_ADDR_ANY_HOST = 1u << 2, /* ":PORT" = 0.0.0.0:PORT */
};

/*
 * 0, or:
 *   -EINVAL  malformed (no port, bad port, unbalanced brackets, empty host)
 *   -ERANGE  port outside 1..65535 (0 allowed with POLL_ADDR_PORT0)
 *   -ENOENT  the name did not resolve (or was refused: POLL_ADDR_NUMERIC)
 */
int poll_addr_parse(const char *text, unsigned flags,
		    struct sockaddr_storage *out, socklen_t *len);
/* "1.2.3.4:80" or "[::1]:80"; "?" for families other than IPv4/IPv6.
 * Returns buf, so it can be used inline in a log call. */
char *poll_addr_format(const struct sockaddr *addr, char *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif
