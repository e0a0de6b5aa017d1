/*
 * io — what frameecho's and framebench's connection coroutines share: the
 * read loop, taking a frame's length prefix in pieces, closing a pd once
 * and readying a parked coroutine. Prefix io_.
 *
 * pd_read() skips the read(2) after a short read and parks until a new
 * readiness edge. When the peer's FIN was already queued behind that short
 * read, no new edge ever comes and the EOF is never seen. So read with
 * pd_try_read + pd_wait, which always asks the kernel before parking.
 */
#ifndef FRAMEPROXY_TOOLS_LIB_IO_H
#define FRAMEPROXY_TOOLS_LIB_IO_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

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

/*
 * Take what the 4-byte length prefix still lacks from p[0..n): returns the
 * bytes taken; the prefix is whole when *have reaches 4.
 */
static inline size_t io_take_prefix(uint8_t prefix[4], uint32_t *have,
				    const uint8_t *p, size_t n)
{
	size_t k = 4 - *have;
	if (k > n)
		k = n;
	memcpy(prefix + *have, p, k);
	*have += (uint32_t)k;
	return k;
}

/*
 * pd_close(pd) unless *closed says it was done; false when it was. After
 * it nobody may touch pd.
 */
static inline bool io_close_once(poll_desc *pd, bool *closed)
{
	if (*closed)
		return false;
	*closed = true;
	pd_close(pd);
	return true;
}

/* Ready the coroutine parked in *slot, if any, and empty the slot. */
static inline void io_wake(coro **slot)
{
	coro *co = *slot;
	if (!co)
		return;
	*slot = NULL;
	coro_ready(co);
}

#endif
