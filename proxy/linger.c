#include "proxy/linger.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>

typedef struct linger_conn {
	linger_set *set;
	poll_desc *pd;
} linger_conn;

static void linger_end(linger_conn *lc)
{
	lc->set->active--;
	pd_close(lc->pd);
	free(lc);
}

/* Read and drop what is there. True when the socket is done with: EOF,
 * an error, or the deadline (-ETIMEDOUT). */
static bool linger_discard(poll_desc *pd)
{
	static char scratch[16384]; /* one shard, one thread */

	for (;;) {
		ssize_t n = pd_try_read(pd, scratch, sizeof(scratch));
		if (n == -EAGAIN)
			return false;
		if (n <= 0)
			return true;
	}
}

static void linger_readable(poll_desc *pd, void *arg);

/* Drop what came and watch for more; closes when done. */
static void linger_step(linger_conn *lc)
{
	for (;;) {
		if (linger_discard(lc->pd)) {
			linger_end(lc);
			return;
		}
		int rc = pd_watch(lc->pd, PD_READ, linger_readable, lc);
		if (rc == 0)
			return;
		if (rc < 0) {
			linger_end(lc);
			return;
		}
		/* rc 1: readiness slipped in, read again */
	}
}

static void linger_readable(poll_desc *pd, void *arg)
{
	(void)pd;
	linger_step(arg);
}

/* No linger: what came is dropped (bounded) so that at least input that
 * is already there does not turn the close into an RST. */
static void close_now(poll_desc *pd)
{
	static char scratch[16384];

	for (int i = 0; i < 64; i++)
		if (pd_try_read(pd, scratch, sizeof(scratch)) <= 0)
			break;
	pd_close(pd);
}

void linger_close(linger_set *set, poll_desc *pd)
{
	linger_conn *lc = set->timeout_ns > 0 ? malloc(sizeof(*lc)) : NULL;

	if (!lc || pd_shutdown(pd, SHUT_WR) < 0) {
		free(lc);
		close_now(pd);
		return;
	}
	*lc = (linger_conn){.set = set, .pd = pd};
	set->active++;
	int64_t deadline = sched_now() + set->timeout_ns;
	if (set->not_after_ns && set->not_after_ns < deadline)
		deadline = set->not_after_ns;
	pd_set_deadline(pd, PD_READ, deadline);
	linger_step(lc);
}
