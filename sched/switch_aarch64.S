/*
 * AArch64 (AAPCS64) context switch. Saved: x19-x28, the frame pointer x29,
 * the link register x30 (the resume address), the low halves d8-d15 of
 * v8-v15 and FPCR. Nothing else survives a call per the ABI.
 *
 * Frame left on a suspended stack (176 bytes, keeps sp 16-byte aligned):
 *   0: x19 x20  16: x21 x22  32: x23 x24  48: x25 x26  64: x27 x28
 *  80: x29 x30  96: d8 d9  112: d10 d11  128: d12 d13  144: d14 d15
 * 160: FPCR    168: padding
 */
#if defined(__aarch64__)

	.text
	.globl	sched_ctx_asm_swap
	.hidden	sched_ctx_asm_swap
	.type	sched_ctx_asm_swap, %function
	.p2align 4
/* void sched_ctx_asm_swap(sched_ctx_asm *from (x0), const sched_ctx_asm *to (x1)) */
sched_ctx_asm_swap:
	.cfi_startproc
	sub	sp, sp, #176
	stp	x19, x20, [sp, #0]
	stp	x21, x22, [sp, #16]
	stp	x23, x24, [sp, #32]
	stp	x25, x26, [sp, #48]
	stp	x27, x28, [sp, #64]
	stp	x29, x30, [sp, #80]
	stp	d8, d9, [sp, #96]
	stp	d10, d11, [sp, #112]
	stp	d12, d13, [sp, #128]
	stp	d14, d15, [sp, #144]
	mrs	x9, fpcr
	str	x9, [sp, #160]
	mov	x10, sp
	str	x10, [x0]
	ldr	x10, [x1]
	mov	sp, x10
	ldr	x9, [sp, #160]
	msr	fpcr, x9
	ldp	x19, x20, [sp, #0]
	ldp	x21, x22, [sp, #16]
	ldp	x23, x24, [sp, #32]
	ldp	x25, x26, [sp, #48]
	ldp	x27, x28, [sp, #64]
	ldp	x29, x30, [sp, #80]
	ldp	d8, d9, [sp, #96]
	ldp	d10, d11, [sp, #112]
	ldp	d12, d13, [sp, #128]
	ldp	d14, d15, [sp, #144]
	add	sp, sp, #176
	ret
	.cfi_endproc
	.size	sched_ctx_asm_swap, .-sched_ctx_asm_swap

/*
 * First code a new context runs: the switch "returned" here (x30) with the
 * entry function in x19 and its argument in x20 (see sched_ctx_asm_make).
 */
	.globl	sched_ctx_asm_start
	.hidden	sched_ctx_asm_start
	.type	sched_ctx_asm_start, %function
	.p2align 4
sched_ctx_asm_start:
	.cfi_startproc
	.cfi_undefined x30
	mov	x0, x20
	blr	x19
	brk	#0x1	/* the entry function must never return */
	.cfi_endproc
	.size	sched_ctx_asm_start, .-sched_ctx_asm_start

#endif

	.section .note.GNU-stack,"",%progbits
