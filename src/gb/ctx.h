/*
 * ctx.h - the machine context of a task and the switch between two.
 *
 * The assembly versions (ctx_x86_64.S, ctx_aarch64.S) save only what the
 * ABI says a callee must preserve, plus the floating-point control words
 * (MXCSR and the x87 control word; FPCR on aarch64), and make no system
 * call. ctx_ucontext.c is the portable fallback.
 */
#ifndef GB_CTX_H
#define GB_CTX_H

#include <stddef.h>
#include "config.h"

#ifdef GB_CTX_UCONTEXT
#include <ucontext.h>
typedef struct gb_ctx {
	ucontext_t uc;
} gb_ctx;
#else
typedef struct gb_ctx {
	void *sp; /* saved stack pointer; the registers live on that stack */
} gb_ctx;
#endif

/* Prepares ctx so that switching to it calls entry(arg) on the stack
 * [stack, stack + size). entry must never return. */
void gb__ctx_init(gb_ctx *ctx, void *stack, size_t size,
                  void (*entry)(void *), void *arg);

/* Saves the running context in from and resumes to. Returns when something
 * switches back to from. */
void gb__ctx_switch(gb_ctx *from, gb_ctx *to);

#endif
