/*
 * fault.c - fault injection, built only with --enable-fault-injection.
 *
 * Once gb_fault_arm() has run (the daemon calls it when it is up: its
 * listeners open and root dropped, so that what is tested is serving,
 * not starting), the environment decides what fails:
 *   GB_FAULT_ALLOC=N   1 in N calls of gb_malloc, gb_calloc, gb_realloc
 *                      or gb_strdup returns NULL with errno ENOMEM: those
 *                      whose number since the arming hashes to a multiple
 *                      of N. Not simply every Nth: a client served costs
 *                      a fixed number of allocations and one cut short
 *                      fewer, so every Nth falls into step with them and
 *                      keeps failing the same one. The same calls fail on
 *                      every run.
 *   GB_FAULT_STACK=N   exactly every Nth task stack mapping (one per
 *                      spawn that the pool cannot serve) fails as if mmap
 *                      had refused it.
 * Unset or 0: nothing of that kind fails. Counting starts at the arming.
 * Allocations made by libevent and the C library themselves are not
 * counted: they do not go through these wrappers.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct fault {
	const char *env;
	unsigned long every;    /* 0: never */
	unsigned long calls;    /* since the arming */
	int spread;             /* 1 in every by hash, not every every-th */
};

/* The worker pool's threads allocate too: the counters are atomic. */
static struct fault alloc_fault = { .env = "GB_FAULT_ALLOC", .spread = 1 };
static struct fault stack_fault = { .env = "GB_FAULT_STACK" };

static unsigned long env_count(const char *name)
{
	const char *v = getenv(name);
	char *end;
	unsigned long n;

	if (!v || !*v)
		return 0;
	n = strtoul(v, &end, 10);
	return *end ? 0 : n;
}

static void arm(struct fault *f)
{
	unsigned long every = env_count(f->env);

	__atomic_store_n(&f->calls, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&f->every, every, __ATOMIC_RELEASE);
	if (every)
		gb__log(GB_LOG_INFO, "fault injection: 1 in %lu %s fails", every,
		        f == &alloc_fault ? "allocations" : "task stack mappings");
}

void gb_fault_arm(void)
{
	arm(&alloc_fault);
	arm(&stack_fault);
}

/* splitmix64's finaliser: consecutive call numbers, scattered. */
static uint64_t scatter(uint64_t z)
{
	z *= 0x9e3779b97f4a7c15ULL;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static int hit(struct fault *f)
{
	unsigned long every = __atomic_load_n(&f->every, __ATOMIC_ACQUIRE);
	uint64_t n;

	if (!every)
		return 0;
	n = __atomic_add_fetch(&f->calls, 1, __ATOMIC_RELAXED);
	if ((f->spread ? scatter(n) : n) % every != 0)
		return 0;
	errno = ENOMEM;
	return 1;
}

int gb__fault_stack(void)
{
	return hit(&stack_fault);
}

void *gb_malloc(size_t n)
{
	return hit(&alloc_fault) ? NULL : malloc(n);
}

void *gb_calloc(size_t n, size_t size)
{
	return hit(&alloc_fault) ? NULL : calloc(n, size);
}

void *gb_realloc(void *p, size_t n)
{
	return hit(&alloc_fault) ? NULL : realloc(p, n);
}

char *gb_strdup(const char *s)
{
	return hit(&alloc_fault) ? NULL : strdup(s);
}
