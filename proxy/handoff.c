#include "proxy/handoff.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

typedef union handoff_cmsg {
	struct cmsghdr align;
	char buf[CMSG_SPACE(2 * sizeof(int))];
} handoff_cmsg;

static handoff_header header_of(handoff_type type, uint32_t size)
{
	return (handoff_header){.magic = HANDOFF_MAGIC, .version = HANDOFF_VERSION,
				.type = (uint16_t)type, .size = size};
}

int handoff_send_hello(int fd)
{
	handoff_header h = header_of(HANDOFF_HELLO, sizeof(h));

	return send(fd, &h, sizeof(h), MSG_DONTWAIT | MSG_NOSIGNAL) ==
			       (ssize_t)sizeof(h) ? 0 : -errno;
}

int handoff_recv_hello(int fd)
{
	handoff_header h;
	ssize_t n = recv(fd, &h, sizeof(h), MSG_DONTWAIT);

	if (n < 0)
		return -errno;
	if (n < (ssize_t)sizeof(h) || h.magic != HANDOFF_MAGIC ||
	    h.type != HANDOFF_HELLO)
		return -EPROTO;
	return h.version;
}

int handoff_send_ack(int fd)
{
	handoff_header h = header_of(HANDOFF_ACK, sizeof(h));

	return send(fd, &h, sizeof(h), MSG_DONTWAIT | MSG_NOSIGNAL) ==
			       (ssize_t)sizeof(h) ? 0 : -errno;
}

int handoff_recv_acks(int fd)
{
	handoff_header h;
	int acks = 0;

	for (;;) {
		ssize_t n = recv(fd, &h, sizeof(h), MSG_DONTWAIT);
		if (n == 0)
			return -EPIPE;
		if (n < 0)
			return errno == EWOULDBLOCK || errno == EINTR ? acks : -EPIPE;
		if (n == (ssize_t)sizeof(h) && h.magic == HANDOFF_MAGIC &&
		    h.type == HANDOFF_ACK)
			acks++;
	}
}

int handoff_send_conn(int fd, const handoff_conn *rec, int client_fd,
		      int upstream_fd)
{
	handoff_conn out = *rec;
	int fds[2] = {client_fd, upstream_fd};
	handoff_cmsg control;
	struct iovec iov = {.iov_base = &out, .iov_len = sizeof(out)};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = control.buf,
			     .msg_controllen = sizeof(control.buf)};

	out.header = header_of(HANDOFF_CONN, sizeof(out));
	memset(&control, 0, sizeof(control));
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(fds));
	memcpy(CMSG_DATA(c), fds, sizeof(fds));
	ssize_t n = sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	return n == (ssize_t)sizeof(out) ? 0 : -EPROTO;
}

/* Every fd the message carried, in order; how many. */
static int take_fds(struct msghdr *msg, int *fds, int max)
{
	int count = 0;

	for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (count < max)
				fds[count++] = fd;
			else
				close(fd);
		}
	}
	return count;
}

int handoff_recv_conn(int fd, handoff_conn *rec, int fds[2])
{
	handoff_cmsg control;
	struct iovec iov = {.iov_base = rec, .iov_len = sizeof(*rec)};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = control.buf,
			     .msg_controllen = sizeof(control.buf)};
	int got[2];

	memset(rec, 0, sizeof(*rec));
	ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (n == 0)
		return 0;
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	int count = take_fds(&msg, got, 2);
	/* A record longer than ours (a later version) arrives cut
	 * (MSG_TRUNC): what we know of it is the same. */
	bool ok = (size_t)n >= sizeof(*rec) && count == 2 &&
		  rec->header.magic == HANDOFF_MAGIC &&
		  rec->header.type == HANDOFF_CONN &&
		  rec->header.version == HANDOFF_VERSION &&
		  !(msg.msg_flags & MSG_CTRUNC);
	if (!ok) {
		for (int i = 0; i < count; i++)
			close(got[i]);
		return -EPROTO;
	}
	fds[0] = got[0];
	fds[1] = got[1];
	rec->listener[HANDOFF_NAME_MAX - 1] = '\0';
	rec->upstream[HANDOFF_NAME_MAX - 1] = '\0';
	return 1;
}
