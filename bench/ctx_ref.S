/*
 * ctx_ref.S - the reference minimal context switch, for bench/micro only.
 *
 *   void ref_ctx_switch(void **save_sp, void *load_sp);
 *
 * Saves the callee-saved registers of the running context on its stack,
 * stores the stack pointer in *save_sp, loads load_sp and restores the
 * registers saved there. Nothing else: no MXCSR or x87 control word, no
 * signal mask. A fresh stack is prepared in C (bench/micro.c, ref_ctx_init)
 * so that its first switch "returns" into the entry function.
 *
 * x86-64 SysV frame (low to high): r15 r14 r13 r12 rbx rbp, return address.
 * aarch64 frame (160 bytes): x19..x28, x29, x30, d8..d15; x30 at +88.
 */
#if defined(__x86_64__)

	.text
	.globl	ref_ctx_switch
	.type	ref_ctx_switch, @function
	.p2align 4
ref_ctx_switch:
	pushq	%rbp
	pushq	%rbx
	pushq	%r12
	pushq	%r13
	pushq	%r14
	pushq	%r15
	movq	%rsp, (%rdi)
	movq	%rsi, %rsp
	popq	%r15
	popq	%r14
	popq	%r13
	popq	%r12
	popq	%rbx
	popq	%rbp
	ret
	.size	ref_ctx_switch, .-ref_ctx_switch

	.section .note.GNU-stack,"",@progbits

#elif defined(__aarch64__)

	.text
	.globl	ref_ctx_switch
	.type	ref_ctx_switch, %function
	.p2align 4
ref_ctx_switch:
	sub	sp, sp, #160
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
	mov	x9, sp
	str	x9, [x0]
	mov	sp, x1
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
	add	sp, sp, #160
	ret
	.size	ref_ctx_switch, .-ref_ctx_switch

	.section .note.GNU-stack,"",%progbits

#else
/* No reference switch for this CPU: bench/micro.c skips the measurement. */
	.section .note.GNU-stack,"",%progbits
#endif
