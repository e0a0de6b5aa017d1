/*
 * pollDesc slots, the per-direction wait slot, deadlines, watches, and the
 * poller's lifetime (poll_open/poll_close and the scheduler hook).
 *
 * Everything runs on the scheduler's thread, so the slot is a plain enum:
 * Go needs atomics because its netpoller runs on other threads; we don't.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "poll/backend.h"
#include "poll/poll.h"
#include "sched/sched.h"

/* Slots live in fixed chunks so a poll_desc* stays valid while the poller lives. */
#define CHUNK_SHIFT 8
#define CHUNK_SIZE (1u << CHUNK_SHIFT)

poll_stats poll_g_stats;

const poll_backend_ops *poll_g_backend;
static poll_kind backend_kind;
static poll_desc **chunks;
static uint32_t chunk_count;
static uint32_t chunk_cap;
static uint32_t slot_count;
static poll_desc *free_list;

/* --- names -------------------------------------------------------------- */

int poll_kind_parse(const char *name, poll_kind *out)
{
	static const char *const names[] = {"auto", "epoll", "uring"};

	if (!name || !out)
		return -EINVAL;
	for (int i = 0; i < 3; i++) {
		if (strcmp(name, names[i]) == 0) {
			*out = (poll_kind)i;
			return 0;
		}
	}
	if (strcmp(name, "io_uring") == 0) {
		*out = POLL_URING;
		return 0;
	}
	return -EINVAL;
}

int poll_uring_io_parse(const char *name, poll_uring_io *out)
{
	static const char *const names[] = {"poll", "completion", "auto"};

	if (!name || !out)
		return -EINVAL;
	for (int i = 0; i < 3; i++) {
		if (strcmp(name, names[i]) == 0) {
			*out = (poll_uring_io)i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *poll_uring_io_name(poll_uring_io mode)
{
	switch (mode) {
	case POLL_URING_IO_POLL: return "poll";
	case POLL_URING_IO_COMPLETION: return "completion";
	case POLL_URING_IO_AUTO: return "auto";
	}
	return "?";
}

const char *poll_kind_name(poll_kind kind)
{
	switch (kind) {
	case POLL_AUTO: return "auto";
	case POLL_EPOLL: return "epoll";
	case POLL_URING: return "uring";
	}
	return "?";
}

/* --- slots -------------------------------------------------------------- */

poll_desc *pd_slot(uint32_t index)
{
	if (index >= slot_count)
		return NULL;
	return &chunks[index >> CHUNK_SHIFT][index & (CHUNK_SIZE - 1)];
}

static void dir_init(poll_desc *pd, pd_dir_state *d, uint8_t dir);

static int grow_slots(void)
{
	if (chunk_count == chunk_cap) {
		uint32_t cap = chunk_cap ? chunk_cap * 2 : 16;
		poll_desc **grown = realloc(chunks, cap * sizeof(*grown));
		if (!grown)
			return -ENOMEM;
		chunks = grown;
		chunk_cap = cap;
	}
	poll_desc *chunk = calloc(CHUNK_SIZE, sizeof(*chunk));
	if (!chunk)
		return -ENOMEM;
	chunks[chunk_count++] = chunk;
	/* Push in reverse so the lowest index is handed out first. */
	for (uint32_t i = CHUNK_SIZE; i-- > 0;) {
		poll_desc *pd = &chunk[i];
		pd->index = slot_count + i;
		pd->gen = 1;
		pd->fd = -1;
		dir_init(pd, &pd->rd, PD_READ);
		dir_init(pd, &pd->wr, PD_WRITE);
		pd->next_free = free_list;
		free_list = pd;
	}
	slot_count += CHUNK_SIZE;
	return 0;
}

static poll_desc *slot_take(void)
{
	if (!free_list && grow_slots() < 0)
		return NULL;
	poll_desc *pd = free_list;
	free_list = pd->next_free;
	pd->next_free = NULL;
	return pd;
}

/* LIFO on purpose: a just-closed slot is reused first, which is exactly the
 * case the generation number exists for (and what the tests exercise). */
static void slot_put(poll_desc *pd)
{
	pd->state = PD_FREE;
	pd->fd = -1;
	pd->next_free = free_list;
	free_list = pd;
}

void pd_slot_release(poll_desc *pd)
{
	if (pd->state == PD_ZOMBIE)
		slot_put(pd);
}

/* --- directions --------------------------------------------------------- */

static void pd_timer_fired(sched_timer *timer, void *arg);

static void dir_init(poll_desc *pd, pd_dir_state *d, uint8_t dir)
{
	memset(d, 0, sizeof(*d));
	d->pd = pd;
	d->dir = dir;
	sched_timer_init(&d->timer, pd_timer_fired, d);
}

static void dir_reset(pd_dir_state *d)
{
	sched_timer_cancel(&d->timer);
	d->slot = SLOT_EMPTY;
	d->expired = false;
	d->deadline = 0;
	d->waiter = NULL;
	d->watch_fn = NULL;
	d->watch_arg = NULL;
}

static pd_dir_state *dir_of(poll_desc *pd, pd_dir dir)
{
	if (dir == PD_READ)
		return &pd->rd;
	if (dir == PD_WRITE)
		return &pd->wr;
	return NULL;
}

static const char *dir_name(const pd_dir_state *d)
{
	return d->dir == PD_READ ? "read" : "write";
}

static _Noreturn void die_busy(const poll_desc *pd, const pd_dir_state *d,
			       const char *what)
{
	fprintf(stderr,
		"poll: %s on fd %d (%s) while a %s is already there: "
		"only one coroutine may wait per direction\n",
		what, pd->fd, dir_name(d),
		d->slot == SLOT_WATCH ? "watch" : "waiter");
	abort();
}

/* Fire an armed watch: clear the slot first so the callback may re-arm. */
static int fire_watch(pd_dir_state *d)
{
	pd_watch_fn fn = d->watch_fn;
	void *arg = d->watch_arg;

	d->slot = SLOT_EMPTY;
	d->watch_fn = NULL;
	d->watch_arg = NULL;
	sched_release();
	fn(d->pd, arg);
	return 1;
}

/* Hand `result` to whoever occupies the slot. Returns 1 if someone woke. */
static int dir_wake(pd_dir_state *d, int result)
{
	if (d->slot == SLOT_WAIT) {
		pd_waiter *w = d->waiter;
		d->slot = SLOT_EMPTY;
		d->waiter = NULL;
		w->result = result;
		coro_ready(w->coro);
		return 1;
	}
	if (d->slot == SLOT_WATCH)
		return fire_watch(d);
	return 0;
}

static int dir_ready(pd_dir_state *d)
{
	if (d->slot == SLOT_EMPTY || d->slot == SLOT_READY) {
		d->slot = SLOT_READY;
		return 0;
	}
	return dir_wake(d, 0);
}

/* -EBADF when closing, -ETIMEDOUT when the deadline passed, else 0. */
static int dir_check(const poll_desc *pd, pd_dir_state *d)
{
	if (pd->closing || pd->state != PD_OPEN)
		return -EBADF;
	if (!d->deadline)
		return 0;
	if (d->expired)
		return -ETIMEDOUT;
	if (d->deadline <= sched_now()) {
		d->expired = true;
		return -ETIMEDOUT;
	}
	return 0;
}

int pd_check(poll_desc *pd, pd_dir dir)
{
	pd_dir_state *d = dir_of(pd, dir);
	return d ? dir_check(pd, d) : -EINVAL;
}

/* Ops call this before their first syscall: a READY left over from an
 * earlier edge is stale once we are about to look at the fd ourselves. */
void pd_clear_ready(poll_desc *pd, pd_dir dir)
{
	pd_dir_state *d = dir_of(pd, dir);
	if (d && d->slot == SLOT_READY)
		d->slot = SLOT_EMPTY;
}

static void pd_timer_fired(sched_timer *timer, void *arg)
{
	pd_dir_state *d = arg;

	(void)timer;
	if (!d->deadline || d->pd->state != PD_OPEN)
		return;
	d->expired = true;
	if (dir_wake(d, -ETIMEDOUT))
		poll_g_stats.timeouts++;
}

/* --- delivery from backends --------------------------------------------- */

unsigned pd_events_from_mask(uint32_t mask)
{
	/* EPOLL* and POLL* share values on Linux. */
	unsigned ev = 0;
	if (mask & (0x001 | 0x002 | 0x2000 | 0x008 | 0x010)) /* IN PRI RDHUP ERR HUP */
		ev |= EV_READ;
	if (mask & (0x004 | 0x008 | 0x010)) /* OUT ERR HUP */
		ev |= EV_WRITE;
	if (mask & (0x2000 | 0x008 | 0x010)) /* RDHUP ERR HUP */
		ev |= EV_HUP;
	return ev;
}

static bool token_live(uint64_t token, poll_desc **out)
{
	uint32_t gen = (uint32_t)(token >> 32) & POLL_GEN_MASK;
	poll_desc *pd = pd_slot((uint32_t)token);

	if (!pd || pd->state != PD_OPEN || pd->closing ||
	    (pd->gen & POLL_GEN_MASK) != gen)
		return false;
	*out = pd;
	return true;
}

int pd_deliver(uint64_t token, unsigned ev)
{
	poll_desc *pd;

	poll_g_stats.events++;
	if (!token_live(token, &pd)) {
		poll_g_stats.stale_events++;
		return 0;
	}
	int woke = 0;
	if (ev & EV_HUP)
		pd->rd_hup = true;
	if (ev & EV_READ) {
		/* New data may have come: a watch consumes this edge without
		 * leaving READY, so the short-read mark goes here, not when
		 * READY is taken. */
		pd->rd_drained = false;
		woke += dir_ready(&pd->rd);
	}
	/* A read watch may have closed (and even reopened) the slot. */
	if ((ev & EV_WRITE) && token_live(token, &pd))
		woke += dir_ready(&pd->wr);
	return woke;
}

/* --- public pollDesc API ------------------------------------------------ */

int pd_open_nonblock(int fd, poll_desc **out)
{
	if (!poll_g_backend)
		return -ENXIO;
	if (fd < 0 || !out)
		return -EBADF;
	poll_desc *pd = slot_take();
	if (!pd)
		return -ENOMEM;
	pd->fd = fd;
	pd->state = PD_OPEN;
	pd->closing = false;
	pd->not_socket = false;
	pd->rd_drained = false;
	pd->rd_hup = false;
	pd->rd_queued = false;
	pd->streak = 0;
	int rc = poll_g_backend->add(pd);
	if (rc < 0) {
		pd->gen++;
		slot_put(pd);
		return rc;
	}
	*out = pd;
	return 0;
}

int pd_open(int fd, poll_desc **out)
{
	int flags = fcntl(fd, F_GETFL);
	poll_g_stats.syscalls++;
	if (flags < 0)
		return -errno;
	if (!(flags & O_NONBLOCK)) {
		poll_g_stats.syscalls++;
		if (fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
			return -errno;
	}
	return pd_open_nonblock(fd, out);
}

int pd_fd(const poll_desc *pd)
{
	return pd ? pd->fd : -1;
}

int pd_close(poll_desc *pd)
{
	if (!pd || pd->state != PD_OPEN || pd->closing)
		return -EBADF;
	pd->closing = true;
	sched_timer_cancel(&pd->rd.timer);
	sched_timer_cancel(&pd->wr.timer);
	/* Waiters fail with -EBADF; watches fire and see -EBADF on retry. */
	dir_wake(&pd->rd, -EBADF);
	dir_wake(&pd->wr, -EBADF);

	bool deferred = poll_g_backend->del(pd);
	int rc = close(pd->fd);
	int err = rc < 0 && errno != EINTR ? -errno : 0;
	poll_g_stats.syscalls++;

	pd->gen = (pd->gen + 1) & POLL_GEN_MASK;
	dir_reset(&pd->rd);
	dir_reset(&pd->wr);
	if (deferred)
		pd->state = PD_ZOMBIE;
	else
		slot_put(pd);
	return err;
}

int pd_wait(poll_desc *pd, pd_dir dir)
{
	pd_dir_state *d = dir_of(pd, dir);
	if (!d)
		return -EINVAL;
	int rc = dir_check(pd, d);
	if (rc < 0)
		return rc;
	if (d->slot == SLOT_READY) {
		d->slot = SLOT_EMPTY;
		return 0;
	}
	if (d->slot != SLOT_EMPTY)
		die_busy(pd, d, "pd_wait");
	coro *self = coro_self();
	if (!self) {
		fprintf(stderr, "poll: pd_wait on fd %d outside a coroutine\n",
			pd->fd);
		abort();
	}
	pd_waiter w = {.coro = self, .result = 0};
	d->slot = SLOT_WAIT;
	d->waiter = &w;
	pd->streak = 0;
	poll_g_stats.waits++;
	coro_park(d->dir == PD_READ ? "poll read" : "poll write");
	return w.result;
}

static void dir_set_deadline(pd_dir_state *d, int64_t when)
{
	d->deadline = when;
	d->expired = false;
	if (when == 0) {
		sched_timer_cancel(&d->timer);
		return;
	}
	if (when <= sched_now()) {
		sched_timer_cancel(&d->timer);
		d->expired = true;
		if (dir_wake(d, -ETIMEDOUT))
			poll_g_stats.timeouts++;
		return;
	}
	sched_timer_set(&d->timer, when);
}

void pd_set_deadline(poll_desc *pd, pd_dir dirs, int64_t deadline_ns)
{
	if (!pd || pd->state != PD_OPEN || pd->closing)
		return;
	if (deadline_ns < 0)
		deadline_ns = 1; /* long past, but not "none" */
	if (dirs & PD_READ)
		dir_set_deadline(&pd->rd, deadline_ns);
	if ((dirs & PD_WRITE) && pd->state == PD_OPEN && !pd->closing)
		dir_set_deadline(&pd->wr, deadline_ns);
}

int pd_watch(poll_desc *pd, pd_dir dir, pd_watch_fn fn, void *arg)
{
	pd_dir_state *d = pd ? dir_of(pd, dir) : NULL;
	if (!d || !fn)
		return -EINVAL;
	int rc = dir_check(pd, d);
	if (rc == -EBADF)
		return rc;
	if (rc == -ETIMEDOUT)
		return 1; /* the caller's retry reports the timeout */
	if (d->slot == SLOT_READY) {
		d->slot = SLOT_EMPTY;
		return 1;
	}
	if (d->slot != SLOT_EMPTY)
		return -EBUSY;
	d->slot = SLOT_WATCH;
	d->watch_fn = fn;
	d->watch_arg = arg;
	sched_hold();
	return 0;
}

int pd_unwatch(poll_desc *pd, pd_dir dir)
{
	pd_dir_state *d = pd ? dir_of(pd, dir) : NULL;
	if (!d)
		return -EINVAL;
	if (d->slot != SLOT_WATCH)
		return -ENOENT;
	d->slot = SLOT_EMPTY;
	d->watch_fn = NULL;
	d->watch_arg = NULL;
	sched_release();
	return 0;
}

/* --- handing a socket on (poll.h) ---------------------------------------- */

void pd_recv_pause(poll_desc *pd)
{
	if (pd && pd->state == PD_OPEN && poll_g_backend->recv_pause)
		poll_g_backend->recv_pause(pd, true);
}

void pd_recv_resume(poll_desc *pd)
{
	if (pd && pd->state == PD_OPEN && poll_g_backend->recv_pause)
		poll_g_backend->recv_pause(pd, false);
}

bool pd_recv_quiet(const poll_desc *pd)
{
	return !pd || pd->state != PD_OPEN || !poll_g_backend->recv_quiet ||
	       poll_g_backend->recv_quiet(pd);
}

/* --- the poller --------------------------------------------------------- */

static int netpoll_hook(void *context, int64_t delay_ns)
{
	(void)context;
	poll_g_stats.netpoll_calls++;
	return poll_g_backend->poll(delay_ns);
}

static int open_auto(char *why, size_t why_len)
{
	char note[200] = "";
	int rc = poll_backend_uring.open(note, sizeof(note));
	if (rc == 0) {
		poll_g_backend = &poll_backend_uring;
		backend_kind = POLL_URING;
		return 0;
	}
	rc = poll_backend_epoll.open(why, why_len);
	if (rc < 0)
		return rc;
	if (why && why_len)
		snprintf(why, why_len, "%s; using epoll", note);
	poll_g_backend = &poll_backend_epoll;
	backend_kind = POLL_EPOLL;
	return 0;
}

int poll_open(poll_kind kind, char *why, size_t why_len)
{
	if (why && why_len)
		why[0] = '\0';
	if (poll_g_backend)
		return -EALREADY;
	memset(&poll_g_stats, 0, sizeof(poll_g_stats));
	int rc;
	switch (kind) {
	case POLL_AUTO:
		rc = open_auto(why, why_len);
		break;
	case POLL_EPOLL:
		rc = poll_backend_epoll.open(why, why_len);
		poll_g_backend = rc == 0 ? &poll_backend_epoll : NULL;
		break;
	case POLL_URING:
		rc = poll_backend_uring.open(why, why_len);
		poll_g_backend = rc == 0 ? &poll_backend_uring : NULL;
		break;
	default:
		return -EINVAL;
	}
	if (rc < 0)
		return rc;
	if (kind != POLL_AUTO)
		backend_kind = kind;
	sched_set_netpoll(netpoll_hook, NULL);
	return 0;
}

static void slot_drop(poll_desc *pd)
{
	sched_timer_cancel(&pd->rd.timer);
	sched_timer_cancel(&pd->wr.timer);
	if (pd->rd.slot == SLOT_WATCH)
		sched_release();
	if (pd->wr.slot == SLOT_WATCH)
		sched_release();
}

void poll_close(void)
{
	if (!poll_g_backend)
		return;
	sched_set_netpoll(NULL, NULL);
	/* Timers live inside the slots: unhook them before the memory goes. */
	for (uint32_t i = 0; i < slot_count; i++)
		slot_drop(pd_slot(i));
	poll_g_backend->close();
	poll_g_backend = NULL;
	for (uint32_t i = 0; i < chunk_count; i++)
		free(chunks[i]);
	free(chunks);
	chunks = NULL;
	chunk_count = chunk_cap = slot_count = 0;
	free_list = NULL;
}

poll_kind poll_backend(void)
{
	return poll_g_backend ? backend_kind : POLL_AUTO;
}

void poll_get_stats(poll_stats *out)
{
	if (out)
		*out = poll_g_stats;
}
