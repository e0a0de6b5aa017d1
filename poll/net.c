/*
 * Blocking-style fd operations. Every one follows Go's pattern: check the
 * deadline (no syscall when it already passed), try the syscall, and on
 * EAGAIN park on the pollDesc until the backend reports readiness (see
 * 'Parking', 'Deadlines' and 'Short reads' in poll/poll.h).
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "poll/backend.h"
#include "poll/poll.h"

/* Ops that complete this many times in a row without parking yield once, so
 * a relay fed faster than it drains cannot hog the scheduler (see
 * 'Fairness' in poll/poll.h). */
#define POLL_FAIR_STREAK 64

#define ACCEPT_BACKOFF_MIN_NS (1 * 1000000ll)
#define ACCEPT_BACKOFF_MAX_NS (256 * 1000000ll)

static void yield_on_long_streak(poll_desc *pd)
{
	if (++pd->streak < POLL_FAIR_STREAK)
		return;
	pd->streak = 0;
	if (coro_self())
		coro_yield();
}

static void set_nodelay(int fd)
{
	int one = 1;
	poll_g_stats.syscalls++;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static bool is_inet(int family)
{
	return family == AF_INET || family == AF_INET6;
}

/* --- listen / accept ---------------------------------------------------- */

static int sockopt_on(int fd, int level, int name)
{
	int one = 1;
	poll_g_stats.syscalls++;
	return setsockopt(fd, level, name, &one, sizeof(one)) < 0 ? -errno : 0;
}

static int listen_setup(int fd, const struct sockaddr *addr, socklen_t len,
			int backlog, unsigned flags)
{
	int rc = sockopt_on(fd, SOL_SOCKET, SO_REUSEADDR);
	if (rc == 0 && (flags & POLL_LISTEN_REUSEPORT))
		rc = sockopt_on(fd, SOL_SOCKET, SO_REUSEPORT);
	if (rc == 0 && addr->sa_family == AF_INET6)
		rc = (flags & POLL_LISTEN_V6ONLY)
			     ? sockopt_on(fd, IPPROTO_IPV6, IPV6_V6ONLY) : 0;
	if (rc < 0)
		return rc;
	poll_g_stats.syscalls += 2;
	if (bind(fd, addr, len) < 0 || listen(fd, backlog) < 0)
		return -errno;
	return 0;
}

int poll_listen_socket(const struct sockaddr *addr, socklen_t addr_len,
		       int backlog, unsigned flags)
{
	if (!addr)
		return -EINVAL;
	poll_g_stats.syscalls++;
	int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int rc = listen_setup(fd, addr, addr_len, backlog, flags);
	if (rc < 0) {
		close(fd);
		return rc;
	}
	return fd;
}

int poll_listen(const struct sockaddr *addr, socklen_t addr_len, int backlog,
		unsigned flags, poll_desc **out)
{
	if (!addr || !out)
		return -EINVAL;
	int fd = poll_listen_socket(addr, addr_len, backlog, flags);
	if (fd < 0)
		return fd;
	int rc = pd_open_nonblock(fd, out);
	if (rc < 0)
		close(fd);
	return rc;
}

/* See 'Accept backoff' in poll/poll.h: sleep, doubling up to a bound, never
 * past the read deadline. */
static int accept_backoff(poll_desc *listener, int64_t *backoff)
{
	uint32_t gen = listener->gen;
	poll_g_stats.accept_pauses++;
	int64_t nap = *backoff;
	int64_t deadline = listener->rd.deadline;
	if (deadline) {
		int64_t left = deadline - sched_now();
		if (left <= 0)
			return -ETIMEDOUT;
		if (left < nap)
			nap = left;
	}
	coro_sleep(nap);
	if (*backoff < ACCEPT_BACKOFF_MAX_NS)
		*backoff *= 2;
	/* Closed (and maybe reused) while we slept: not our listener anymore. */
	if (listener->gen != gen)
		return -EBADF;
	return pd_check(listener, PD_READ);
}

static int open_accepted(int fd, poll_desc **out, struct sockaddr_storage *peer)
{
	if (is_inet(peer->ss_family))
		set_nodelay(fd);
	int rc = pd_open_nonblock(fd, out);
	if (rc < 0)
		close(fd);
	return rc;
}

int pd_accept(poll_desc *listener, poll_desc **out, struct sockaddr_storage *peer,
	      socklen_t *peer_len)
{
	struct sockaddr_storage local;
	int64_t backoff = ACCEPT_BACKOFF_MIN_NS;

	if (!listener || !out)
		return -EINVAL;
	if (!peer)
		peer = &local;
	int rc = pd_check(listener, PD_READ);
	if (rc < 0)
		return rc;
	pd_clear_ready(listener, PD_READ);
	for (;;) {
		socklen_t len = sizeof(*peer);
		poll_g_stats.syscalls++;
		int fd = accept4(listener->fd, (struct sockaddr *)peer, &len,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			if (peer_len)
				*peer_len = len;
			return open_accepted(fd, out, peer);
		}
		int err = errno;
		if (err == EAGAIN)
			rc = pd_wait(listener, PD_READ);
		else if (err == EMFILE || err == ENFILE)
			rc = accept_backoff(listener, &backoff);
		else if (err == ECONNABORTED || err == EINTR)
			rc = pd_check(listener, PD_READ);
		else
			return -err;
		if (rc < 0)
			return rc;
	}
}

/* --- connect ------------------------------------------------------------ */

/* Readiness after a non-blocking connect may be an old edge (epoll reports
 * an unconnected socket as OUT|HUP at registration), so ask the socket. */
static int connect_result(int fd)
{
	int soerr = 0;
	socklen_t len = sizeof(soerr);
	poll_g_stats.syscalls++;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
		return -errno;
	if (soerr)
		return -soerr;
	struct sockaddr_storage peer;
	socklen_t plen = sizeof(peer);
	poll_g_stats.syscalls++;
	if (getpeername(fd, (struct sockaddr *)&peer, &plen) == 0)
		return 0;
	return errno == ENOTCONN ? -EINPROGRESS : -errno;
}

static int connect_wait(poll_desc *pd, int64_t timeout_ns)
{
	if (timeout_ns > 0)
		pd_set_deadline(pd, PD_WRITE, sched_now() + timeout_ns);
	int rc;
	do {
		rc = pd_wait(pd, PD_WRITE);
		if (rc == 0)
			rc = connect_result(pd->fd);
	} while (rc == -EINPROGRESS);
	if (rc == 0)
		pd_set_deadline(pd, PD_WRITE, 0);
	return rc;
}

int poll_connect(const struct sockaddr *addr, socklen_t addr_len,
		 int64_t timeout_ns, poll_desc **out)
{
	if (!addr || !out)
		return -EINVAL;
	poll_g_stats.syscalls++;
	int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (is_inet(addr->sa_family))
		set_nodelay(fd);
	poll_desc *pd;
	int rc = pd_open_nonblock(fd, &pd);
	if (rc < 0) {
		close(fd);
		return rc;
	}
	poll_g_stats.syscalls++;
	rc = connect(fd, addr, addr_len) == 0 ? 0 : -errno;
	if (rc == -EINPROGRESS || rc == -EINTR)
		rc = connect_wait(pd, timeout_ns);
	if (rc < 0) {
		pd_close(pd);
		return rc;
	}
	*out = pd;
	return 0;
}

/* --- backend I/O -------------------------------------------------------- */

/* read(2), not recv(2): pipes and other non-sockets read the same way. */
ssize_t pd_sys_recv(poll_desc *pd, void *buf, size_t len)
{
	poll_g_stats.syscalls++;
	ssize_t n = read(pd->fd, buf, len);
	return n >= 0 ? n : -errno;
}

/* sendmsg with MSG_NOSIGNAL so a vanished peer is -EPIPE, not a signal;
 * plain writev for pipes and other non-sockets. */
ssize_t pd_sys_sendmsg(poll_desc *pd, struct iovec *iov, int iov_count)
{
	poll_g_stats.syscalls++;
	if (!pd->not_socket) {
		struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)iov_count};
		ssize_t n = sendmsg(pd->fd, &msg, MSG_NOSIGNAL);
		if (n >= 0)
			return n;
		if (errno != ENOTSOCK)
			return -errno;
		pd->not_socket = true;
		poll_g_stats.syscalls++;
	}
	ssize_t n = writev(pd->fd, iov, iov_count);
	return n >= 0 ? n : -errno;
}

/* A backend without its own op costs no indirect call. */
static ssize_t io_recv(poll_desc *pd, void *buf, size_t len)
{
	const poll_backend_ops *b = poll_g_backend;
	return b->recv ? b->recv(pd, buf, len) : pd_sys_recv(pd, buf, len);
}

static ssize_t io_sendmsg(poll_desc *pd, struct iovec *iov, int iov_count)
{
	const poll_backend_ops *b = poll_g_backend;
	return b->sendmsg ? b->sendmsg(pd, iov, iov_count)
			  : pd_sys_sendmsg(pd, iov, iov_count);
}

/* --- read --------------------------------------------------------------- */

ssize_t pd_try_read(poll_desc *pd, void *buf, size_t len)
{
	int rc = pd_check(pd, PD_READ);
	if (rc < 0)
		return rc;
	pd_clear_ready(pd, PD_READ);
	ssize_t n = io_recv(pd, buf, len);
	pd->rd_drained = n > 0 && (size_t)n < len;
	return n;
}

/*
 * A read that returned less than asked drained the socket; data arriving
 * after it raises a new edge, which leaves READY. So while no READY came
 * since, the next read would only say EAGAIN: skip that syscall and park
 * (Netty's edge-triggered transport relies on the same short-read rule).
 * Not once the peer has hung up: its FIN may have come with the data that
 * read consumed, and no edge would ever follow.
 */
static bool read_would_block(const poll_desc *pd)
{
	return pd->rd_drained && !pd->rd_hup && pd->rd.slot == SLOT_EMPTY;
}

bool pd_read_drained(const poll_desc *pd)
{
	return read_would_block(pd);
}

ssize_t pd_read(poll_desc *pd, void *buf, size_t len)
{
	int rc = pd_check(pd, PD_READ);
	if (rc < 0)
		return rc;
	if (read_would_block(pd) && len > 0) {
		rc = pd_wait(pd, PD_READ);
		if (rc < 0)
			return rc;
	}
	pd_clear_ready(pd, PD_READ);
	for (;;) {
		ssize_t n = io_recv(pd, buf, len);
		if (n >= 0) {
			pd->rd_drained = n > 0 && (size_t)n < len;
			yield_on_long_streak(pd);
			return n;
		}
		pd->rd_drained = false;
		if (n == -EINTR)
			continue;
		if (n != -EAGAIN)
			return n;
		rc = pd_wait(pd, PD_READ);
		if (rc < 0)
			return rc;
	}
}

ssize_t pd_read_full(poll_desc *pd, void *buf, size_t len)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = pd_read(pd, (char *)buf + done, len - done);
		if (n < 0)
			return n;
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

/* --- write -------------------------------------------------------------- */

static void iov_advance(struct iovec **iov, int *count, size_t n)
{
	while (*count > 0 && n >= (*iov)->iov_len) {
		n -= (*iov)->iov_len;
		(*iov)++;
		(*count)--;
	}
	if (*count > 0 && n > 0) {
		(*iov)->iov_base = (char *)(*iov)->iov_base + n;
		(*iov)->iov_len -= n;
	}
}

ssize_t pd_writev_full(poll_desc *pd, struct iovec *iov, int iov_count)
{
	int rc = pd_check(pd, PD_WRITE);
	if (rc < 0)
		return rc;
	if (iov_count < 0 || (iov_count > 0 && !iov))
		return -EINVAL;
	pd_clear_ready(pd, PD_WRITE);
	size_t total = 0;
	/* Skip leading empty entries so we never issue a zero-length write. */
	iov_advance(&iov, &iov_count, 0);
	while (iov_count > 0) {
		ssize_t n = io_sendmsg(pd, iov, iov_count);
		if (n >= 0) {
			total += (size_t)n;
			iov_advance(&iov, &iov_count, (size_t)n);
			continue;
		}
		if (n == -EINTR)
			continue;
		if (n != -EAGAIN)
			return n;
		rc = pd_wait(pd, PD_WRITE);
		if (rc < 0)
			return rc;
	}
	yield_on_long_streak(pd);
	return (ssize_t)total;
}

ssize_t pd_write_full(poll_desc *pd, const void *buf, size_t len)
{
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
	return pd_writev_full(pd, &iov, 1);
}

int pd_shutdown(poll_desc *pd, int how)
{
	if (!pd || pd->closing)
		return -EBADF;
	poll_g_stats.syscalls++;
	return shutdown(pd->fd, how) < 0 ? -errno : 0;
}

int pd_ready_now(poll_desc *pd)
{
	struct pollfd p;
	int mask = 0;

	if (!pd || pd->closing)
		return -EBADF;
	p = (struct pollfd){.fd = pd->fd, .events = POLLIN | POLLOUT};
	poll_g_stats.syscalls++;
	if (poll(&p, 1, 0) < 0)
		return -errno;
	/* With completion I/O the socket may be empty because its data
	 * already waits in the backend's queue. */
	if ((p.revents & (POLLIN | POLLHUP | POLLERR)) || pd->rd_queued)
		mask |= PD_READ;
	if (p.revents & (POLLOUT | POLLHUP | POLLERR))
		mask |= PD_WRITE;
	return mask;
}
