/*
 * Private: the raw context-switch primitives. Both implementations carry
 * distinct symbol names so one binary (tools/schedbench) can link and compare
 * them; the scheduler core picks one at compile time (internal.h).
 */
#ifndef FRAMEPROXY_SCHED_SWITCH_H
#define FRAMEPROXY_SCHED_SWITCH_H

#include <stddef.h>
#include <ucontext.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef void (*sched_ctx_fn)(void *arg);

/* asm: a suspended context is just its stack pointer; the frame holds the rest. */
typedef struct sched_ctx_asm {
	void *sp;
} sched_ctx_asm;

/*
 * Prepare `ctx` so the first switch to it calls fn(arg) on the stack
 * [lo, lo + size). fn must never return (it switches away for good).
 */
void sched_ctx_asm_make(sched_ctx_asm *ctx, void *lo, size_t size,
	sched_ctx_fn fn, void *arg);
/* Save the callee-saved state into `from`, resume `to`. */
void sched_ctx_asm_swap(sched_ctx_asm *from, const sched_ctx_asm *to);

typedef struct sched_ctx_uc {
	ucontext_t uc;
} sched_ctx_uc;

void sched_ctx_uc_make(sched_ctx_uc *ctx, void *lo, size_t size,
	sched_ctx_fn fn, void *arg);
void sched_ctx_uc_swap(sched_ctx_uc *from, const sched_ctx_uc *to);

#ifdef __cplusplus
}
#endif

#endif
