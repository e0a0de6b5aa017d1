/*
 * Portable context switch over <ucontext.h>. Slow (swapcontext saves the
 * signal mask with a syscall and the whole FP environment), but it runs
 * wherever libc has it and is the reference the asm switch is tested against.
 */
#include "sched/switch.h"

#include <stdint.h>
#include <stdlib.h>

/* makecontext passes int arguments only: split the pointers in halves. */
static void uc_trampoline(unsigned fn_hi, unsigned fn_lo, unsigned arg_hi,
	unsigned arg_lo)
{
	uintptr_t fn = ((uintptr_t)fn_hi << 16 << 16) | fn_lo;
	uintptr_t arg = ((uintptr_t)arg_hi << 16 << 16) | arg_lo;

	((sched_ctx_fn)fn)((void *)arg);
	abort();  /* the entry function must never return */
}

void sched_ctx_uc_make(sched_ctx_uc *ctx, void *lo, size_t size,
	sched_ctx_fn fn, void *arg)
{
	uintptr_t f = (uintptr_t)fn, a = (uintptr_t)arg;

	if (getcontext(&ctx->uc) != 0)
		abort();
	ctx->uc.uc_stack.ss_sp = lo;
	ctx->uc.uc_stack.ss_size = size;
	ctx->uc.uc_link = NULL;
	makecontext(&ctx->uc, (void (*)(void))uc_trampoline, 4,
		(unsigned)(f >> 16 >> 16), (unsigned)f,
		(unsigned)(a >> 16 >> 16), (unsigned)a);
}

void sched_ctx_uc_swap(sched_ctx_uc *from, const sched_ctx_uc *to)
{
	if (swapcontext(&from->uc, &to->uc) != 0)
		abort();
}
