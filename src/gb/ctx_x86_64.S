/*
 * ctx_x86_64.S - task context switch for x86-64, System V ABI.
 *
 * Saved on the switching task's own stack: rbp, rbx, r12-r15 (callee-saved),
 * the MXCSR register and the x87 control word (the ABI makes their control
 * bits callee-saved too). Everything else is caller-saved, so the C compiler
 * has already spilled what it needs. The frame, from the saved sp upwards:
 *
 *   sp+0   MXCSR (4 bytes), x87 control word (2 bytes), padding
 *   sp+8   r15
 *   sp+16  r14
 *   sp+24  r13
 *   sp+32  r12
 *   sp+40  rbx
 *   sp+48  rbp
 *   sp+56  return address
 */
	.text

/* void gb__ctx_switch(gb_ctx *from, gb_ctx *to)  (rdi = from, rsi = to) */
	.globl	gb__ctx_switch
	.type	gb__ctx_switch, @function
	.p2align 4
gb__ctx_switch:
	.cfi_startproc
	pushq	%rbp
	pushq	%rbx
	pushq	%r12
	pushq	%r13
	pushq	%r14
	pushq	%r15
	subq	$8, %rsp
	stmxcsr	(%rsp)
	fnstcw	4(%rsp)
	movq	%rsp, %rcx
	movq	%rsp, (%rdi)
	movq	(%rsi), %rsp
	/* Loading MXCSR and the x87 control word is slow (they serialise
	 * part of the pipeline), and they almost never differ between
	 * tasks: load them only when the saved values differ from ours. */
	movl	(%rsp), %eax
	cmpl	(%rcx), %eax
	jne	.Lload_mxcsr
.Lmxcsr_done:
	movzwl	4(%rsp), %eax
	cmpw	4(%rcx), %ax
	jne	.Lload_fpucw
.Lfpucw_done:
	addq	$8, %rsp
	popq	%r15
	popq	%r14
	popq	%r13
	popq	%r12
	popq	%rbx
	popq	%rbp
	ret
.Lload_mxcsr:
	ldmxcsr	(%rsp)
	jmp	.Lmxcsr_done
.Lload_fpucw:
	fldcw	4(%rsp)
	jmp	.Lfpucw_done
	.cfi_endproc
	.size	gb__ctx_switch, .-gb__ctx_switch

/*
 * void gb__ctx_init(gb_ctx *ctx, void *stack, size_t size,
 *                   void (*entry)(void *), void *arg)
 * (rdi = ctx, rsi = stack, rdx = size, rcx = entry, r8 = arg)
 *
 * Builds the frame above at the 16-byte aligned top of the stack so that
 * the first switch to ctx "returns" into gb__ctx_start with r12 = entry
 * and r13 = arg. The new task starts with the creator's FP control words.
 */
	.globl	gb__ctx_init
	.type	gb__ctx_init, @function
	.p2align 4
gb__ctx_init:
	.cfi_startproc
	leaq	(%rsi,%rdx), %rax
	andq	$-16, %rax
	leaq	gb__ctx_start(%rip), %rdx
	movq	%rdx, -8(%rax)		/* return address */
	movq	$0, -16(%rax)		/* rbp */
	movq	$0, -24(%rax)		/* rbx */
	movq	%rcx, -32(%rax)		/* r12 = entry */
	movq	%r8, -40(%rax)		/* r13 = arg */
	movq	$0, -48(%rax)		/* r14 */
	movq	$0, -56(%rax)		/* r15 */
	subq	$64, %rax
	movq	$0, (%rax)
	stmxcsr	(%rax)
	fnstcw	4(%rax)
	movq	%rax, (%rdi)
	ret
	.cfi_endproc
	.size	gb__ctx_init, .-gb__ctx_init

/*
 * First code a new task runs: gb__ctx_init left entry in r12 and its
 * argument in r13. The stack pointer is 16-byte aligned here, as the ABI
 * wants at a call instruction; entry never returns, so a trap follows.
 */
	.globl	gb__ctx_start
	.type	gb__ctx_start, @function
	.p2align 4
gb__ctx_start:
	.cfi_startproc
	.cfi_undefined rip
	xorl	%ebp, %ebp
	movq	%r13, %rdi
	callq	*%r12
	ud2
	.cfi_endproc
	.size	gb__ctx_start, .-gb__ctx_start

	.section .note.GNU-stack,"",@progbits
