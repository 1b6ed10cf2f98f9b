/*
 * ctx_aarch64.S - task context switch for aarch64 (AAPCS64).
 *
 * Saved on the switching task's own stack: x19-x28, the frame pointer x29,
 * the link register x30, d8-d15 (the low halves of v8-v15 are callee-saved)
 * and FPCR. The frame, from the saved sp upwards (176 bytes, 16-aligned):
 *
 *   sp+0    x19 x20 ... x27 x28   (5 pairs)
 *   sp+80   x29 x30
 *   sp+96   d8 ... d15            (4 pairs)
 *   sp+160  FPCR, padding
 */
	.text

/* void gb__ctx_switch(gb_ctx *from, gb_ctx *to)  (x0 = from, x1 = to) */
	.globl	gb__ctx_switch
	.type	gb__ctx_switch, %function
	.p2align 4
gb__ctx_switch:
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
	mov	x9, sp
	str	x9, [x0]
	ldr	x9, [x1]
	mov	sp, x9
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
	ldr	x9, [sp, #160]
	msr	fpcr, x9
	add	sp, sp, #176
	ret
	.size	gb__ctx_switch, .-gb__ctx_switch

/*
 * void gb__ctx_init(gb_ctx *ctx, void *stack, size_t size,
 *                   void (*entry)(void *), void *arg)
 * (x0 = ctx, x1 = stack, x2 = size, x3 = entry, x4 = arg)
 *
 * Builds the frame above so that the first switch to ctx returns into
 * gb__ctx_start with x19 = entry and x20 = arg. The new task starts with
 * the creator's FPCR.
 */
	.globl	gb__ctx_init
	.type	gb__ctx_init, %function
	.p2align 4
gb__ctx_init:
	add	x9, x1, x2
	and	x9, x9, #0xfffffffffffffff0
	sub	x9, x9, #176
	mov	x10, #0
1:	str	xzr, [x9, x10]
	add	x10, x10, #8
	cmp	x10, #176
	b.lt	1b
	stp	x3, x4, [x9, #0]
	adr	x10, gb__ctx_start
	str	x10, [x9, #88]
	mrs	x10, fpcr
	str	x10, [x9, #160]
	str	x9, [x0]
	ret
	.size	gb__ctx_init, .-gb__ctx_init

/* First code a new task runs; entry never returns. */
	.type	gb__ctx_start, %function
	.p2align 4
gb__ctx_start:
	mov	x29, #0
	mov	x30, #0
	mov	x0, x20
	blr	x19
	brk	#0
	.size	gb__ctx_start, .-gb__ctx_start

	.section .note.GNU-stack,"",%progbits
