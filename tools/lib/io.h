/*
 * io — the one read loop frameecho and framebench share. Prefix io_.
 *
 * pd_read() skips the read(2) after a short read and parks until a new
 * readiness edge. When the peer's FIN was already queued behind that short
 * read, no new edge ever comes and the EOF is never seen. So read with
 * pd_try_read + pd_wait, which always asks the kernel before parking.
 */
#ifndef FRAMEPROXY_TOOLS_LIB_IO_H
#define FRAMEPROXY_TOOLS_LIB_IO_H

#include <errno.h>

#include "poll/poll.h"
#include "sched/sched.h"

/* Reads in a row without parking before we let others run (as pd_read). */
#define IO_FAIR_STREAK 64

/* One read: n > 0, 0 on EOF, or -errno (-ETIMEDOUT, -EBADF, ...). */
static inline ssize_t io_read(poll_desc *pd, void *buf, size_t len,
			      unsigned *streak)
{
	for (;;) {
		ssize_t n = pd_try_read(pd, buf, len);
		if (n == -EINTR)
			continue;
		if (n != -EAGAIN) {
			if (n >= 0 && ++*streak >= IO_FAIR_STREAK) {
				*streak = 0;
				coro_yield();
			}
			return n;
		}
		*streak = 0;
		int rc = pd_wait(pd, PD_READ);
		if (rc < 0)
			return rc;
	}
}

#endif
