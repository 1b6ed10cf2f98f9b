/*
 * check_stack.c - task stacks: guard page, sizes, the stack pool, running
 * out of mappings (vm.max_map_count), deep legal recursion.
 */
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "testutil.h"

/*
 * The overflow test expects the kernel's SIGSEGV from the guard page to kill
 * the (forked) test process. Under AddressSanitizer, ASan would catch that
 * SEGV itself and report it as an error instead, and its fake stacks would
 * move the recursing frames off the task's stack. This is the only test
 * binary that needs it, so the options live here.
 */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "handle_segv=0:detect_stack_use_after_return=0";
}

/*
 * Counts mmap(2) calls made through the libc symbol by this program and by
 * libgb.a (linked into it), to see whether a spawn takes a fresh mapping
 * or a pooled stack. /proc/self/maps alone cannot tell: a library without
 * a pool that munmaps every stack keeps the line count flat too.
 */
static unsigned long mmap_calls;

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	static void *(*real_mmap)(void *, size_t, int, int, int, off_t);
	if (real_mmap == NULL)
		real_mmap = (void *(*)(void *, size_t, int, int, int, off_t))
		            dlsym(RTLD_NEXT, "mmap");
	mmap_calls++;
	return real_mmap(addr, len, prot, flags, fd, off);
}

/* ------------------------------------------------------------ recursion */

#define FRAME 1024

/* Uses about depth * FRAME bytes of stack, touching every byte. */
__attribute__((noinline)) static long recurse(int depth)
{
	volatile char buf[FRAME];
	for (size_t i = 0; i < sizeof buf; i++)
		buf[i] = (char)(depth + i);
	if (depth <= 1)
		return buf[FRAME - 1];
	/* the use of buf after the call keeps this from being a tail call */
	return recurse(depth - 1) + buf[depth % FRAME];
}

static long expected(int depth)
{
	long sum = 0;
	for (int d = depth; d >= 1; d--)
		sum += d <= 1 ? (char)(d + FRAME - 1) : (char)(d + d % FRAME);
	return sum;
}

/* ------------------------------------------------------------- overflow */

static int overflow_task(void *arg)
{
	(void)arg;
	recurse(1 << 30);   /* never returns: runs into the guard page */
	return 0;
}

static int overflow_main(void *arg)
{
	(void)arg;
	gb_group *g;
	if (gb_group_open(&g) != 0)
		return -1;
	gb_spawn(g, overflow_task, NULL, NULL, NULL);
	tu_join(g);
	return 0;
}

START_TEST(test_overflow_segv)
{
	gb_run(overflow_main, NULL);
	/* not reached: the process must have died of SIGSEGV */
	ck_abort_msg("stack overflow did not raise SIGSEGV");
}
END_TEST

/* The mapping just below a task's stack is an inaccessible guard. */
struct guard_ctx {
	int found_stack;
	int found_guard;
	char stack_line[256];
	char below_line[256];
};

static int guard_task(void *arg)
{
	struct guard_ctx *c = arg;
	volatile char here = 0;
	unsigned long p = (unsigned long)&here;
	unsigned long lo = 0, prev_lo = 0, prev_hi = 0;
	char prev_perm[8] = "", line[4096], prev_line[256] = "";
	FILE *f = fopen("/proc/self/maps", "r");
	if (f == NULL)
		return 0;
	while (fgets(line, sizeof line, f)) {
		unsigned long a, b;
		char perm[8];
		if (sscanf(line, "%lx-%lx %7s", &a, &b, perm) != 3)
			continue;
		if (p >= a && p < b) {
			c->found_stack = 1;
			lo = a;
			snprintf(c->stack_line, sizeof c->stack_line, "%.200s", line);
			if (prev_hi == lo && strncmp(prev_perm, "---", 3) == 0)
				c->found_guard = 1;
			snprintf(c->below_line, sizeof c->below_line, "%s", prev_line);
			break;
		}
		prev_lo = a;
		prev_hi = b;
		snprintf(prev_perm, sizeof prev_perm, "%s", perm);
		snprintf(prev_line, sizeof prev_line, "%.200s", line);
	}
	(void)prev_lo;
	fclose(f);
	return 0;
}

static int guard_main(void *arg)
{
	gb_group *g;
	if (gb_group_open(&g) != 0)
		return -1;
	gb_spawn(g, guard_task, arg, NULL, NULL);
	return tu_join(g);
}

START_TEST(test_guard_page_mapped)
{
	struct guard_ctx c;
	memset(&c, 0, sizeof c);
	TU_RUN(guard_main, &c, 0);
	ck_assert_msg(c.found_stack, "task stack not found in /proc/self/maps");
	ck_assert_msg(c.found_guard,
	              "no PROT_NONE mapping right below the task stack:\n"
	              "stack: %sbelow: %s", c.stack_line, c.below_line);
}
END_TEST

/* ---------------------------------------------------------- stack sizes */

struct size_ctx {
	size_t stack_size;
	int depth;
	int spawn_rc;
	long got;
	int ran;
	size_t group_size_after;
	int rc;
};

static int size_task(void *arg)
{
	struct size_ctx *c = arg;
	c->got = recurse(c->depth);
	c->ran = 1;
	return 0;
}

static int size_main(void *arg)
{
	struct size_ctx *c = arg;
	gb_group *g;
	gb_spawn_opts o = { .name = "sized", .stack_size = c->stack_size };
	if (gb_group_open(&g) != 0)
		return -1;
	c->spawn_rc = gb_spawn(g, size_task, c, &o, NULL);
	c->group_size_after = gb_group_size(g);
	c->rc = tu_join(g);
	return 0;
}

static void run_sized(size_t stack_size, int depth)
{
	struct size_ctx c = { .stack_size = stack_size, .depth = depth };
	TU_RUN(size_main, &c, 0);
	ck_assert_int_eq(c.spawn_rc, 0);
	ck_assert_int_eq(c.rc, 0);
	ck_assert(c.ran);
	ck_assert_int_eq(c.got, expected(depth));
}

START_TEST(test_stack_16k)
{
	run_sized(16 * 1024, 8);          /* 8 KiB of frames in 16 KiB */
}
END_TEST

START_TEST(test_stack_1m)
{
	run_sized(1024 * 1024, 768);      /* 768 KiB of frames in 1 MiB */
}
END_TEST

START_TEST(test_deep_recursion_default)
{
	run_sized(0, 32);                 /* 32 KiB of frames in the default 64 KiB */
}
END_TEST

START_TEST(test_stack_too_small)
{
	struct size_ctx c = { .stack_size = 100, .depth = 1 };
	TU_RUN(size_main, &c, 0);
	ck_assert_int_eq(c.spawn_rc, -EINVAL);
	ck_assert_int_eq(c.group_size_after, 0);
	ck_assert(!c.ran);
	ck_assert_int_eq(c.rc, 0);
}
END_TEST

/* ---------------------------------------------------------- stack pool */

static int count_maps(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	int n = 0, ch;
	if (f == NULL)
		return -1;
	while ((ch = getc(f)) != EOF)
		n += ch == '\n';
	fclose(f);
	return n;
}

static int nop_task(void *arg)
{
	(void)arg;
	return 0;
}

struct pool_ctx {
	unsigned long first_mmaps;
	unsigned long loop_mmaps;
	int maps_before, maps_after;
	int rc;
};

#define POOL_CYCLES 1000

static int pool_main(void *arg)
{
	struct pool_ctx *c = arg;
	gb_group *g;
	if (gb_group_open(&g) != 0)
		return -1;
	unsigned long m0 = mmap_calls;
	if ((c->rc = gb_spawn(g, nop_task, NULL, NULL, NULL)) != 0)
		return 0;
	if ((c->rc = gb_group_wait(g, GB_NEVER)) != 0)
		return 0;
	c->first_mmaps = mmap_calls - m0;
	c->maps_before = count_maps();
	m0 = mmap_calls;
	for (int i = 0; i < POOL_CYCLES; i++) {
		if ((c->rc = gb_spawn(g, nop_task, NULL, NULL, NULL)) != 0)
			return 0;
		if ((c->rc = gb_group_wait(g, GB_NEVER)) != 0)
			return 0;
	}
	c->loop_mmaps = mmap_calls - m0;
	c->maps_after = count_maps();
	c->rc = tu_join(g);
	return 0;
}

START_TEST(test_stack_pool_reuse)
{
	struct pool_ctx c;
	memset(&c, 0, sizeof c);
	TU_RUN(pool_main, &c, 0);
	ck_assert_int_eq(c.rc, 0);
	ck_assert_int_gt(c.maps_before, 0);
	ck_assert_msg(c.maps_after - c.maps_before <= 4,
	              "/proc/self/maps grew from %d to %d lines over %d spawn/join cycles",
	              c.maps_before, c.maps_after, POOL_CYCLES);
	/* sanity: the interposer sees the library's stack mappings at all */
	ck_assert_msg(c.first_mmaps >= 1,
	              "the first spawn made no mmap() call through libc: cannot "
	              "observe the stack pool");
	ck_assert_msg(c.loop_mmaps <= 4,
	              "%lu mmap() calls in %d sequential spawn/join cycles: stacks "
	              "are not pooled", c.loop_mmaps, POOL_CYCLES);
}
END_TEST

/* --------------------------------------------- vm.max_map_count exhaustion */

#define MAXMAP_LIMIT 100000

static char logged[512];
static int logged_maxmap;

static void capture_log(int level, const char *msg)
{
	(void)level;
	if (strstr(msg, "max_map_count"))
		logged_maxmap = 1;
	snprintf(logged, sizeof logged, "%s", msg);
}

struct maxmap_ctx {
	long spawned;
	int last_rc;
	int close_rc;
	size_t size_before_close;
};

static int forever_task(void *arg)
{
	(void)arg;
	gb_sleep(GB_NEVER);
	return 0;
}

static int maxmap_main(void *arg)
{
	struct maxmap_ctx *c = arg;
	gb_group *g;
	gb_spawn_opts o = { .stack_size = 16 * 1024 };
	if (gb_group_open(&g) != 0)
		return -1;
	c->last_rc = 0;
	while (c->spawned < MAXMAP_LIMIT) {
		c->last_rc = gb_spawn(g, forever_task, NULL, &o, NULL);
		if (c->last_rc != 0)
			break;
		c->spawned++;
		if ((c->spawned & 255) == 0)
			gb_yield();   /* let them reach their sleep */
	}
	gb_yield();
	c->size_before_close = gb_group_size(g);
	gb_group_cancel(g);
	c->close_rc = gb_group_close(g);
	return 0;
}

static long read_max_map_count(void)
{
	long v = -1;
	FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

START_TEST(test_max_map_count_exhaustion)
{
	long mmc = read_max_map_count();
	if (mmc > 200000) {
		fprintf(stderr, "check_stack: vm.max_map_count is %ld (> 200000): "
		        "exhaustion test skipped\n", mmc);
		return;
	}
	struct maxmap_ctx c;
	memset(&c, 0, sizeof c);
	gb_set_log(capture_log);
	TU_RUN(maxmap_main, &c, 0);
	gb_set_log(NULL);
	ck_assert_msg(c.last_rc == -ENOMEM,
	              "gb_spawn stopped with %d after %ld tasks (max_map_count %ld)",
	              c.last_rc, c.spawned, mmc);
	ck_assert_msg(c.spawned >= 10000, "only %ld tasks before -ENOMEM", c.spawned);
	ck_assert_int_eq(c.size_before_close, (size_t)c.spawned);
	ck_assert_int_eq(c.close_rc, 0);
	ck_assert_msg(logged_maxmap,
	              "no log line about vm.max_map_count (last log: \"%s\")", logged);
}
END_TEST

/* ------------------------------------------------------------------ main */

static Suite *stack_suite(void)
{
	Suite *s = suite_create("gb_stack");
	TCase *tc = tcase_create("stack");
	tcase_set_timeout(tc, 20);
	/* valgrind runs with CK_FORK=no: a deliberate SIGSEGV would kill the
	 * whole run, and valgrind's own stack handling gets in the way. The
	 * same holds for any CK_FORK=no run. */
	const char *fork_env = getenv("CK_FORK");
	int nofork = fork_env != NULL && strcmp(fork_env, "no") == 0;
	if (!tu_under_valgrind() && !nofork)
		tcase_add_test_raise_signal(tc, test_overflow_segv, SIGSEGV);
	tcase_add_test(tc, test_guard_page_mapped);
	tcase_add_test(tc, test_stack_16k);
	tcase_add_test(tc, test_stack_1m);
	tcase_add_test(tc, test_deep_recursion_default);
	tcase_add_test(tc, test_stack_too_small);
	tcase_add_test(tc, test_stack_pool_reuse);
	suite_add_tcase(s, tc);

	if (!tu_under_valgrind()) {
		TCase *tm = tcase_create("max_map_count");
		tcase_set_timeout(tm, 20);
		tcase_add_test(tm, test_max_map_count_exhaustion);
		suite_add_tcase(s, tm);
	}
	return s;
}

int main(void)
{
	return tu_run_suite(stack_suite());
}
