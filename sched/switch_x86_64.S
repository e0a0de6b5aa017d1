/*
 * x86-64 SysV context switch. Only what the ABI says a callee must preserve
 * is saved: rbx, rbp, r12-r15, the MXCSR control bits and the x87 control
 * word. Everything else is already dead at a call boundary, which is what
 * makes this cheaper than swapcontext (no signal mask syscall, no full FP
 * state).
 *
 * The resume address is popped into a register and reached with an indirect
 * jmp, not `ret`: a `ret` onto another stack never matches the CPU's return
 * stack buffer, so every switch would be a mispredicted return, while the
 * indirect branch predictor learns a ping-pong pattern.
 *
 * Frame left on a suspended stack (64 bytes, low to high address):
 *   0: MXCSR (4 bytes)  4: x87 control word (2 bytes)
 *   8: r12  16: r13  24: r14  32: r15  40: rbx  48: rbp  56: resume address
 */
#if defined(__x86_64__)

	.text
	.globl	sched_ctx_asm_swap
	.hidden	sched_ctx_asm_swap
	.type	sched_ctx_asm_swap, @function
	.p2align 4
/* void sched_ctx_asm_swap(sched_ctx_asm *from (rdi), const sched_ctx_asm *to (rsi)) */
sched_ctx_asm_swap:
	.cfi_startproc
#if defined(__CET__)
	endbr64
#endif
	leaq	-0x38(%rsp), %rsp
	stmxcsr	(%rsp)
	fnstcw	0x4(%rsp)
	movq	%r12, 0x8(%rsp)
	movq	%r13, 0x10(%rsp)
	movq	%r14, 0x18(%rsp)
	movq	%r15, 0x20(%rsp)
	movq	%rbx, 0x28(%rsp)
	movq	%rbp, 0x30(%rsp)
	movq	%rsp, (%rdi)
	movq	(%rsi), %rsp
	movq	0x38(%rsp), %r8
	ldmxcsr	(%rsp)
	fldcw	0x4(%rsp)
	movq	0x8(%rsp), %r12
	movq	0x10(%rsp), %r13
	movq	0x18(%rsp), %r14
	movq	0x20(%rsp), %r15
	movq	0x28(%rsp), %rbx
	movq	0x30(%rsp), %rbp
	leaq	0x40(%rsp), %rsp
	jmp	*%r8
	.cfi_endproc
	.size	sched_ctx_asm_swap, .-sched_ctx_asm_swap

/*
 * First code a new context runs: the switch jumped here with the entry
 * function in r13 and its argument in r12 (see sched_ctx_asm_make). rsp is
 * 16-byte aligned, as the call below requires.
 */
	.globl	sched_ctx_asm_start
	.hidden	sched_ctx_asm_start
	.type	sched_ctx_asm_start, @function
	.p2align 4
sched_ctx_asm_start:
	.cfi_startproc
	.cfi_undefined rip
#if defined(__CET__)
	endbr64
#endif
	movq	%r12, %rdi
	callq	*%r13
	ud2		/* the entry function must never return */
	.cfi_endproc
	.size	sched_ctx_asm_start, .-sched_ctx_asm_start

#endif

	.section .note.GNU-stack,"",%progbits
