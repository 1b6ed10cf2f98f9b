/*
 * stack.c - task stacks: mmap()ed with a PROT_NONE guard page below, so an
 * overflow faults instead of corrupting a neighbour, and pooled, so that
 * spawning in steady state makes no system call.
 *
 * The task structure sits at the top of its own mapping; the stack grows
 * down from just below it. Only touched pages cost memory.
 *
 * Each stack is two kernel mappings (guard + stack), so Linux's
 * vm.max_map_count bounds the number of live tasks; running out is
 * reported once in the log and to the caller as ENOMEM.
 */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifdef HAVE_VALGRIND_VALGRIND_H
#include <valgrind/valgrind.h>
#else
#define VALGRIND_STACK_REGISTER(lo, hi) 0
#define VALGRIND_STACK_DEREGISTER(id) ((void)(id))
#endif
#ifdef GB_ASAN
#include <sanitizer/asan_interface.h>
#endif

/* The smallest stack we accept: the task structure plus room for frames. */
#define GB_STACK_MIN 8192

static size_t page_size(void)
{
	static size_t ps;

	if (!ps)
		ps = (size_t)sysconf(_SC_PAGESIZE);
	return ps;
}

static long map_count_limit(void)
{
	long v = -1;
	FILE *f = fopen("/proc/sys/vm/max_map_count", "r");

	if (f) {
		/* A kernel-written int: fits a long, so %ld cannot overflow. */
		/* NOLINTNEXTLINE(cert-err34-c) */
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

static void log_map_failure(int err)
{
	if (gb__s.map_failure_logged)
		return;
	gb__s.map_failure_logged = 1;
	gb__log(GB_LOG_ERROR,
	        "cannot map a task stack (%s): out of memory, or the kernel's "
	        "limit of memory mappings per process is reached "
	        "(sysctl vm.max_map_count = %ld; each task needs two); "
	        "spawns fail with ENOMEM until tasks end",
	        strerror(err), map_count_limit());
}

/* Where the task structure goes: the top of the usable stack, aligned. */
static gb_task *task_at_top(const char *stack_lo, size_t stack_size)
{
	uintptr_t top = (uintptr_t)(stack_lo + stack_size);

	/* An address rounded down, not an integer made up: the int-to-pointer
	 * cast cannot be avoided. */
	/* NOLINTNEXTLINE(performance-no-int-to-ptr) */
	return (gb_task *)((top - sizeof(gb_task)) & ~(uintptr_t)63);
}

static gb_task *stack_map(size_t stack_size)
{
	size_t guard = page_size();
	size_t map_size = guard + stack_size;
	int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
	char *lo = MAP_FAILED;

	errno = ENOMEM; /* what an injected failure looks like */
	/* An anonymous mapping takes fd -1, which cppcheck's posix.cfg (file
	 * mappings only) rejects. */
	if (!gb__fault_stack())
		/* cppcheck-suppress invalidFunctionArg */
		lo = mmap(NULL, map_size, PROT_NONE, flags, -1, 0);
	if (lo == MAP_FAILED) {
		log_map_failure(errno);
		errno = ENOMEM;
		return NULL;
	}
	if (mprotect(lo + guard, stack_size, PROT_READ | PROT_WRITE) != 0) {
		int err = errno;

		munmap(lo, map_size);
		log_map_failure(err);
		errno = ENOMEM;
		return NULL;
	}
	gb_task *t = task_at_top(lo + guard, stack_size);
	t->map_lo = lo;
	t->map_size = map_size;
	t->stack_lo = lo + guard;
	t->stack_size = stack_size;
	t->vg_stack_id = VALGRIND_STACK_REGISTER(lo + guard, lo + map_size);
	return t;
}

static void stack_unmap(gb_task *t)
{
	VALGRIND_STACK_DEREGISTER(t->vg_stack_id);
	munmap(t->map_lo, t->map_size);
}

/* Zeroes the task's fields from fn on; the stack bookkeeping stays. */
static void task_reset(gb_task *t)
{
	memset(&t->fn, 0, sizeof *t - offsetof(gb_task, fn));
}

gb_task *gb__stack_get(size_t stack_size)
{
	gb_task *t;
	size_t ps = page_size();

	if (stack_size < GB_STACK_MIN) {
		errno = EINVAL;
		return NULL;
	}
	stack_size = (stack_size + ps - 1) & ~(ps - 1);
	if (stack_size == gb__s.cfg.stack_size && gb__s.pool) {
		t = gb__s.pool;
		gb__s.pool = t->next_run;
		gb__s.pool_len--;
	} else if (!(t = stack_map(stack_size))) {
		return NULL;
	}
	task_reset(t);
	return t;
}

void gb__stack_put(gb_task *t)
{
#ifdef GB_ASAN
	/* Frames that never returned left their redzones poisoned. */
	ASAN_UNPOISON_MEMORY_REGION(t->stack_lo, t->stack_size);
#endif
	if (t->stack_size == gb__s.cfg.stack_size &&
	    gb__s.pool_len < gb__s.cfg.stack_pool) {
		t->next_run = gb__s.pool;
		gb__s.pool = t;
		gb__s.pool_len++;
		return;
	}
	stack_unmap(t);
}

void gb__stack_drain(void)
{
	while (gb__s.pool) {
		gb_task *t = gb__s.pool;

		gb__s.pool = t->next_run;
		stack_unmap(t);
	}
	gb__s.pool_len = 0;
}

/* The usable stack below the task structure, for gb__ctx_init. */
size_t gb__stack_usable(const gb_task *t)
{
	return (size_t)((const char *)t - t->stack_lo);
}
