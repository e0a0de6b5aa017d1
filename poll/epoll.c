/*
 * Edge-triggered epoll backend: each fd is added once with IN|OUT|RDHUP|ET
 * and never modified, so a wait costs no epoll_ctl (see 'One registration'
 * in poll/poll.h).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "poll/backend.h"

#define EPOLL_BATCH 256

static int epfd = -1;
static struct epoll_event events[EPOLL_BATCH];

static int ep_open(char *why, size_t why_len)
{
	epfd = epoll_create1(EPOLL_CLOEXEC);
	poll_g_stats.syscalls++;
	if (epfd >= 0)
		return 0;
	int err = errno;
	if (why && why_len)
		snprintf(why, why_len, "epoll_create1: %s", strerror(err));
	return -err;
}

static void ep_close(void)
{
	if (epfd >= 0)
		close(epfd);
	epfd = -1;
}

static int ep_add(poll_desc *pd)
{
	struct epoll_event ev = {
		.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
		.data.u64 = pd_token(pd),
	};
	poll_g_stats.syscalls++;
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, pd->fd, &ev) < 0)
		return -errno;
	return 0;
}

/* Explicit DEL: close() only drops the registration when no dup of the fd
 * survives, and a surviving dup would keep sending events for a dead pd. */
static bool ep_del(poll_desc *pd)
{
	poll_g_stats.syscalls++;
	epoll_ctl(epfd, EPOLL_CTL_DEL, pd->fd, NULL);
	return false;
}

static int delay_to_ms(int64_t delay_ns)
{
	if (delay_ns < 0)
		return -1;
	/* Round up: waking early would spin until the timer is really due. */
	int64_t ms = (delay_ns + 999999) / 1000000;
	return ms > INT_MAX ? INT_MAX : (int)ms;
}

static int ep_poll(int64_t delay_ns)
{
	poll_g_stats.syscalls++;
	poll_g_stats.poll_syscalls++;
	int n = epoll_wait(epfd, events, EPOLL_BATCH, delay_to_ms(delay_ns));
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	int woke = 0;
	for (int i = 0; i < n; i++)
		woke += pd_deliver(events[i].data.u64,
				   pd_events_from_mask(events[i].events));
	return woke;
}

const poll_backend_ops poll_backend_epoll = {
	.name = "epoll",
	.open = ep_open,
	.close = ep_close,
	.add = ep_add,
	.del = ep_del,
	.poll = ep_poll,
	.recv = NULL,    /* the plain syscalls */
	.sendmsg = NULL,
	.recv_pause = NULL,
	.recv_quiet = NULL,
};
