/* Passing one fd on a shard's control socket (shard/shard.h): the
 * supervisor gives a retiring shard its handoff channel this way. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "shard/shard.h"

int shard_send_channel(int control_fd, int fd)
{
	char tag = 'H';
	struct iovec iov = {.iov_base = &tag, .iov_len = 1};
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int))];
	} control;
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = control.buf,
			     .msg_controllen = sizeof(control.buf)};

	memset(&control, 0, sizeof(control));
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	return sendmsg(control_fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL) == 1 ? 0 : -errno;
}

int shard_take_channel(int control_fd)
{
	char tag;
	struct iovec iov = {.iov_base = &tag, .iov_len = 1};
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int))];
	} control;
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = control.buf,
			     .msg_controllen = sizeof(control.buf)};
	int fd = -ENOENT;

	if (control_fd < 0)
		return -ENOENT;
	/* The newest one counts: an older message is from a roll that
	 * never got to signal (none is expected). */
	while (recvmsg(control_fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC) == 1) {
		struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
		if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			if (fd >= 0)
				close(fd);
			memcpy(&fd, CMSG_DATA(c), sizeof(int));
		}
		msg.msg_controllen = sizeof(control.buf);
	}
	return fd;
}
