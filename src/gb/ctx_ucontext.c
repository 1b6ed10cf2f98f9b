/*
 * ctx_ucontext.c - portable task context switch on ucontext, for targets
 * without a hand-written one. swapcontext() saves the signal mask with a
 * system call, so this is an order of magnitude slower than the assembly.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>

#include "ctx.h"

/* makecontext passes int arguments only: split the pointers in halves. */
static void ctx_trampoline(unsigned eh, unsigned el, unsigned ah, unsigned al)
{
	uintptr_t e = ((uintptr_t)eh << 16 << 16) | el;
	uintptr_t a = ((uintptr_t)ah << 16 << 16) | al;

	/* The pointers are put back together from the int halves makecontext
	 * carried: the int-to-pointer casts are the point. */
	/* NOLINTNEXTLINE(performance-no-int-to-ptr) */
	((void (*)(void *))e)((void *)a);
	abort(); /* entry never returns */
}

void gb__ctx_init(gb_ctx *ctx, void *stack, size_t size,
                  void (*entry)(void *), void *arg)
{
	uintptr_t e = (uintptr_t)entry, a = (uintptr_t)arg;

	if (getcontext(&ctx->uc) != 0)
		abort();
	ctx->uc.uc_stack.ss_sp = stack;
	ctx->uc.uc_stack.ss_size = size;
	ctx->uc.uc_link = NULL;
	makecontext(&ctx->uc, (void (*)(void))ctx_trampoline, 4,
	            (unsigned)(e >> 16 >> 16), (unsigned)e,
	            (unsigned)(a >> 16 >> 16), (unsigned)a);
}

void gb__ctx_switch(gb_ctx *from, gb_ctx *to)
{
	if (swapcontext(&from->uc, &to->uc) != 0)
		abort();
}
