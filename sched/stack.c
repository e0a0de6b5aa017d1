/*
 * Coroutine stacks: one mmap per stack, a PROT_NONE guard page at the bottom,
 * the coroutine record at the top. Pages are committed by the kernel only
 * when touched, so a 64 KiB reservation costs what the coroutine really uses.
 * Freed default-size stacks are pooled. A just-freed stack keeps its pages
 * ("dirty") and is the first to be reused: on this kind of machine a page
 * fault or an madvise costs a microsecond or more, the whole spawn otherwise
 * costs ~100 ns. Beyond SCHED_POOL_DIRTY_MAX dirty stacks, and for stacks
 * no spawn needed during a scavenge period (stack_pool_scavenge, run when
 * the loop idles), everything below a pooled stack's top page is given back
 * (MADV_DONTNEED), so a pool left idle ends up holding one page per stack.
 *
 * Overflow: a SIGSEGV handler on an alternate signal stack recognizes a fault
 * inside the current coroutine's guard page and ends the process with the
 * coroutine's name; any other fault goes to the previous handler / default.
 */
#include "sched/internal.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(SCHED_ASAN)
#include <sanitizer/asan_interface.h>
#endif

static size_t guard_size(void)
{
	return sched_g.page;
}

/* The record sits at the top, 64-byte aligned; the stack grows below it. */
static coro *record_of(char *base, size_t map_size)
{
	uintptr_t top = (uintptr_t)base + map_size - sizeof(coro);
	return (coro *)(top & ~(uintptr_t)63);
}

static coro *stack_map(size_t size)
{
	size_t map_size = size + guard_size();
	char *base = mmap(NULL, map_size, PROT_READ | PROT_WRITE,
		MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (base == MAP_FAILED)
		return NULL;
	if (mprotect(base, guard_size(), PROT_NONE) != 0) {
		munmap(base, map_size);
		return NULL;
	}
	coro *c = record_of(base, map_size);
	c->stack.base = base;
	c->stack.map_size = map_size;
	sched_g.stats.stacks_mapped++;
	return c;
}

static coro *pop(coro **list)
{
	coro *c = *list;

	*list = c->next;
	return c;
}

coro *stack_get(size_t size)
{
	if (size != sched_g.stack_size || sched_g.pool_len == 0)
		return stack_map(size);
	sched_g.pool_len--;
	sched_g.stats.stacks_reused++;
	if (sched_g.pool_dirty) {
		sched_g.pool_dirty_len--;
		if (sched_g.pool_dirty_len < sched_g.pool_dirty_low)
			sched_g.pool_dirty_low = sched_g.pool_dirty_len;
		return pop(&sched_g.pool_dirty);
	}
	return pop(&sched_g.pool_clean);
}

static void stack_unmap(coro *c)
{
	coro_stack s = c->stack;

#if defined(SCHED_ASAN)
	__asan_unpoison_memory_region(s.base + guard_size(),
		s.map_size - guard_size());
#endif
	munmap(s.base, s.map_size);
}

/* Usable bytes below the page that holds the record. */
static size_t reclaimable(const coro *c)
{
	uintptr_t keep = (uintptr_t)c & ~(uintptr_t)(sched_g.page - 1);
	return keep - (uintptr_t)c->stack.base - guard_size();
}

static void push(coro **list, coro *c)
{
	c->next = *list;
	*list = c;
}

static void clean(coro *c)
{
	char *lo = c->stack.base + guard_size();

#if defined(SCHED_ASAN)
	/* Frames of the dead coroutine leave poisoned redzones behind. */
	__asan_unpoison_memory_region(lo, c->stack.map_size - guard_size());
#endif
	madvise(lo, reclaimable(c), MADV_DONTNEED);
}

void stack_put(coro *c)
{
	bool pooled_size = c->stack.map_size == sched_g.stack_size + guard_size();

	if (!pooled_size || sched_g.pool_len >= sched_g.pool_max) {
		stack_unmap(c);
		return;
	}
	sched_g.pool_len++;
	if (sched_g.pool_dirty_len >= SCHED_POOL_DIRTY_MAX) {
		clean(c);
		push(&sched_g.pool_clean, c);
		return;
	}
#if defined(SCHED_ASAN)
	__asan_unpoison_memory_region(c->stack.base + guard_size(),
		c->stack.map_size - guard_size());
#endif
	push(&sched_g.pool_dirty, c);
	sched_g.pool_dirty_len++;
}

static void clean_dirty(size_t count)
{
	for (; count > 0 && sched_g.pool_dirty; count--) {
		coro *c = pop(&sched_g.pool_dirty);
		sched_g.pool_dirty_len--;
		clean(c);
		push(&sched_g.pool_clean, c);
	}
}

/*
 * Like Go's scavenger: what the pool never dipped below during a whole
 * period was not needed, so that many stacks give their pages back. Hot
 * stacks of a busy relay stay dirty; a pool left alone is clean after one
 * to two periods.
 */
int64_t stack_pool_scavenge(int64_t now)
{
	if (sched_g.pool_dirty_len == 0) {
		sched_g.scavenge_at = 0;
		return INT64_MAX;
	}
	if (sched_g.scavenge_at == 0) {
		sched_g.pool_dirty_low = sched_g.pool_dirty_len;
		sched_g.scavenge_at = now + SCHED_POOL_SCAVENGE_NS;
		return sched_g.scavenge_at;
	}
	if (now < sched_g.scavenge_at)
		return sched_g.scavenge_at;
	clean_dirty(sched_g.pool_dirty_low);
	sched_g.scavenge_at = 0;
	return stack_pool_scavenge(now);
}

static void unmap_list(coro **list)
{
	while (*list)
		stack_unmap(pop(list));
}

void stack_pool_drain(void)
{
	unmap_list(&sched_g.pool_dirty);
	unmap_list(&sched_g.pool_clean);
	sched_g.pool_len = 0;
	sched_g.pool_dirty_len = 0;
	sched_g.scavenge_at = 0;
}

/* --- guard page fault handling ------------------------------------------ */

static void write_str(const char *s)
{
	size_t n = strlen(s);

	while (n > 0) {
		ssize_t w = write(STDERR_FILENO, s, n);
		if (w <= 0)
			return;
		s += w;
		n -= (size_t)w;
	}
}

static bool in_guard(const coro *c, const char *addr)
{
	return c && addr >= c->stack.base && addr < c->stack.base + guard_size();
}

static void on_segv(int sig, siginfo_t *info, void *uctx)
{
	coro *c = sched_g.current;

	if (in_guard(c, info->si_addr)) {
		write_str("coroutine stack overflow: \"");
		write_str(c->name[0] ? c->name : "(unnamed)");
		write_str("\" overran its stack into the guard page\n");
		signal(SIGSEGV, SIG_DFL);
		return;  /* the faulting access repeats and the default action ends us */
	}
	/* Not ours: hand it to whoever was there before (ASan, a crash reporter). */
	struct sigaction *old = &sched_g.old_segv;
	if ((old->sa_flags & SA_SIGINFO) && old->sa_sigaction) {
		old->sa_sigaction(sig, info, uctx);
		return;
	}
	if (old->sa_handler != SIG_DFL && old->sa_handler != SIG_IGN) {
		old->sa_handler(sig);
		return;
	}
	signal(SIGSEGV, SIG_DFL);
	/* A real fault repeats on return; a sent one (kill, raise) must be resent. */
	if (info->si_code <= 0)
		raise(sig);
}

int stack_guard_install(void)
{
	size_t size = 64 * 1024;
	void *alt = mmap(NULL, size, PROT_READ | PROT_WRITE,
		MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (alt == MAP_FAILED)
		return -errno;
	stack_t ss = { .ss_sp = alt, .ss_size = size, .ss_flags = 0 };
	if (sigaltstack(&ss, &sched_g.old_altstack) != 0) {
		int err = -errno;
		munmap(alt, size);
		return err;
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_segv;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSEGV, &sa, &sched_g.old_segv) != 0) {
		int err = -errno;
		sigaltstack(&sched_g.old_altstack, NULL);
		munmap(alt, size);
		return err;
	}
	sched_g.altstack = alt;
	sched_g.altstack_size = size;
	sched_g.segv_installed = true;
	return 0;
}

void stack_guard_remove(void)
{
	if (!sched_g.segv_installed)
		return;
	sigaction(SIGSEGV, &sched_g.old_segv, NULL);
	/* Only restore the old alternate stack if ours is still the one in use. */
	stack_t cur;
	if (sigaltstack(NULL, &cur) == 0 && cur.ss_sp == sched_g.altstack) {
		sigaltstack(&sched_g.old_altstack, NULL);
		munmap(sched_g.altstack, sched_g.altstack_size);
	}
	sched_g.altstack = NULL;
	sched_g.segv_installed = false;
}
