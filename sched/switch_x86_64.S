/*
 * x86-64 SysV context switch. Only what the ABI says a callee must preserve
 * is saved: rbx, rbp, r12-r15, the MXCSR control bits and the x87 control
 * word. Everything else is already dead at a call boundary, which is what
 * makes this cheaper than swapcontext (no signal mask syscall, no full FP
 * state).
 *
 * Frame left on a suspended stack (low to high address):
 *   0: x87 control word (2 bytes, padded)   8: MXCSR (4 bytes, padded)
 *  16: r15  24: r14  32: r13  40: r12  48: rbx  56: rbp  64: return address
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
	pushq	%rbp
	pushq	%rbx
	pushq	%r12
	pushq	%r13
	pushq	%r14
	pushq	%r15
	subq	$16, %rsp
	stmxcsr	8(%rsp)
	fnstcw	(%rsp)
	movq	%rsp, (%rdi)
	movq	(%rsi), %rsp
	fldcw	(%rsp)
	ldmxcsr	8(%rsp)
	addq	$16, %rsp
	popq	%r15
	popq	%r14
	popq	%r13
	popq	%r12
	popq	%rbx
	popq	%rbp
	ret
	.cfi_endproc
	.size	sched_ctx_asm_swap, .-sched_ctx_asm_swap

/*
 * First code a new context runs: the switch "returned" here with the entry
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
