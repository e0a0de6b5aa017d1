/* Builds the first frame of a new asm context (see switch_<arch>.S). */
#include "sched/switch.h"

#include <stdint.h>
#include <string.h>

void sched_ctx_asm_start(void);

#if defined(__x86_64__)

enum { X87_CW_DEFAULT = 0x037f, MXCSR_DEFAULT = 0x1f80 };

void sched_ctx_asm_make(sched_ctx_asm *ctx, void *lo, size_t size,
	sched_ctx_fn fn, void *arg)
{
	uintptr_t top = ((uintptr_t)lo + size) & ~(uintptr_t)15;
	/* 64-byte frame + 16 spare: sched_ctx_asm_start runs with rsp % 16 == 0. */
	uint64_t *frame = (uint64_t *)(top - 80);

	memset(frame, 0, 80);
	/* The ABI's initial FP control state: MXCSR low, x87 CW at byte 4. */
	frame[0] = MXCSR_DEFAULT | (uint64_t)X87_CW_DEFAULT << 32;
	frame[1] = (uint64_t)(uintptr_t)arg;     /* r12 */
	frame[2] = (uint64_t)(uintptr_t)fn;      /* r13 */
	frame[7] = (uint64_t)(uintptr_t)sched_ctx_asm_start;
	ctx->sp = frame;
}

#elif defined(__aarch64__)

void sched_ctx_asm_make(sched_ctx_asm *ctx, void *lo, size_t size,
	sched_ctx_fn fn, void *arg)
{
	uintptr_t top = ((uintptr_t)lo + size) & ~(uintptr_t)15;
	uint64_t *frame = (uint64_t *)(top - 176);

	memset(frame, 0, 176);       /* x29 = 0 ends backtraces; FPCR = 0 default */
	frame[0] = (uint64_t)(uintptr_t)fn;      /* x19 */
	frame[1] = (uint64_t)(uintptr_t)arg;     /* x20 */
	frame[11] = (uint64_t)(uintptr_t)sched_ctx_asm_start; /* x30 */
	ctx->sp = frame;
}

#else
#error "asm context switch: only x86-64 and aarch64; use -Dcontext=ucontext"
#endif
