/*
 * micro.c - micro-benchmarks of the gb scheduler, with references.
 *
 * Every figure is measured RUNS times; the best and the median are printed,
 * with the iteration count and, for the scheduler's own figures, the target.
 *
 *  - ref switch:    ctx_ref.S, callee-saved registers only (reference).
 *  - ucontext:      swapcontext(3), which also saves the signal mask with a
 *                   system call (reference).
 *  - gb switch:     the scheduler's switch is internal, so it is not timed
 *                   alone: this is the yield round trip / 2, run queue
 *                   included ("per switch through the scheduler").
 *  - yield RT:      two tasks yielding; a round trip is A yields to B and B
 *                   yields back to A.
 *  - spawn:         gb_spawn of an empty task into a group + gb_group_wait,
 *                   after a warmup, so stacks come from the pool.
 *  - fd wake:       two tasks ping-pong one byte over a socketpair with
 *                   gb_fd_read/gb_fd_write; time / number of fd wakes
 *                   (counted with the on_io_wake hook).
 *  - idle task RSS: VmRSS growth for 10 000 tasks blocked in gb_sleep with
 *                   a one hour deadline, per task (each run in a fresh
 *                   forked process).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "gb.h"

#define RUNS 5

#define N_REF    20000000L
#define N_UCTX     500000L
#define N_YIELD   2000000L
#define N_SPAWN    500000L
#define N_FD       100000L
#define N_IDLE      10000L

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Prints one line: best and median of v[RUNS], and the target if any
 * (target == 0: a reference figure; < 0: no target). */
static void report(const char *what, double *v, const char *unit, long iters,
                   const char *iter_unit, double target)
{
	qsort(v, RUNS, sizeof *v, cmp_double);
	printf("%-36s best %8.1f  median %8.1f %-9s (%ld %s x %d runs)",
	       what, v[0], v[RUNS / 2], unit, iters, iter_unit, RUNS);
	if (target > 0)
		printf("  target <= %g %s: %s", target, unit,
		       v[RUNS / 2] <= target ? "met" : "MISSED");
	else if (target == 0)
		printf("  (reference)");
	printf("\n");
	fflush(stdout);
}

static void failed(const char *what, int rc)
{
	printf("%-36s FAILED: %s\n", what, strerror(rc < 0 ? -rc : rc));
	fflush(stdout);
}

/* ------------------------------------------------- reference ctx switch */

#if defined(__x86_64__) || defined(__aarch64__)
#define HAVE_REF_CTX 1
void ref_ctx_switch(void **save_sp, void *load_sp);

static void *ref_main_sp, *ref_co_sp;

static void ref_co_entry(void)
{
	for (;;)
		ref_ctx_switch(&ref_co_sp, ref_main_sp);
}

/* Lays out a fresh stack so that ref_ctx_switch() to it "returns" into fn
 * with the ABI's stack alignment. */
static void *ref_ctx_init(void *stack, size_t size, void (*fn)(void))
{
	uintptr_t top = ((uintptr_t)stack + size) & ~(uintptr_t)15;
	uintptr_t *sp = (uintptr_t *)top;
#if defined(__x86_64__)
	*--sp = 0;                 /* fn's return address slot: rsp % 16 == 8 at entry */
	*--sp = (uintptr_t)fn;     /* popped by ret */
	for (int i = 0; i < 6; i++)
		*--sp = 0;         /* rbp rbx r12 r13 r14 r15 */
#else
	sp -= 160 / sizeof *sp;
	memset(sp, 0, 160);
	sp[11] = (uintptr_t)fn;    /* x30 at +88 */
#endif
	return sp;
}

static double bench_ref(long n)
{
	static _Alignas(16) char stack[64 * 1024];
	ref_co_sp = ref_ctx_init(stack, sizeof stack, ref_co_entry);
	int64_t t0 = now_ns();
	for (long i = 0; i < n; i++)
		ref_ctx_switch(&ref_main_sp, ref_co_sp);
	int64_t t1 = now_ns();
	return (double)(t1 - t0) / (2.0 * n);
}
#endif

/* ------------------------------------------------------------ ucontext */

static ucontext_t uc_main, uc_co;

static void uc_entry(void)
{
	for (;;)
		swapcontext(&uc_co, &uc_main);
}

static double bench_ucontext(long n)
{
	static char stack[64 * 1024];
	getcontext(&uc_co);
	uc_co.uc_stack.ss_sp = stack;
	uc_co.uc_stack.ss_size = sizeof stack;
	uc_co.uc_link = NULL;
	makecontext(&uc_co, uc_entry, 0);
	int64_t t0 = now_ns();
	for (long i = 0; i < n; i++)
		swapcontext(&uc_main, &uc_co);
	int64_t t1 = now_ns();
	return (double)(t1 - t0) / (2.0 * n);
}

/* ---------------------------------------------------- gb: yield, spawn */

struct yield_ctx {
	long n;
	int64_t t0, t1;
	double rt[RUNS];
};

static int yield_a(void *arg)
{
	struct yield_ctx *y = arg;
	y->t0 = now_ns();
	for (long i = 0; i < y->n; i++)
		gb_yield();
	y->t1 = now_ns();
	return 0;
}

static int yield_b(void *arg)
{
	struct yield_ctx *y = arg;
	for (long i = 0; i < y->n; i++)
		gb_yield();
	return 0;
}

static int yield_main(void *arg)
{
	struct yield_ctx *y = arg;
	for (int r = 0; r < RUNS; r++) {
		gb_group *g;
		int rc = gb_group_open(&g);
		if (rc)
			return rc;
		if ((rc = gb_spawn(g, yield_a, y, NULL, NULL)) ||
		    (rc = gb_spawn(g, yield_b, y, NULL, NULL))) {
			gb_group_close(g);
			return rc;
		}
		rc = gb_group_wait(g, GB_NEVER);   /* close alone would cancel them */
		int crc = gb_group_close(g);
		if (rc || crc)
			return rc ? rc : crc;
		y->rt[r] = (double)(y->t1 - y->t0) / y->n;
	}
	return 0;
}

static int nop_task(void *arg)
{
	(void)arg;
	return 0;
}

struct spawn_ctx {
	long n;
	double per[RUNS];
};

static int spawn_main(void *arg)
{
	struct spawn_ctx *s = arg;
	gb_group *g;
	int rc = gb_group_open(&g);
	if (rc)
		return rc;
	for (int i = 0; i < 1000 && rc == 0; i++)       /* warmup: fill the pool */
		if ((rc = gb_spawn(g, nop_task, NULL, NULL, NULL)) == 0)
			rc = gb_group_wait(g, GB_NEVER);
	for (int r = 0; r < RUNS && rc == 0; r++) {
		int64_t t0 = now_ns();
		for (long i = 0; i < s->n && rc == 0; i++)
			if ((rc = gb_spawn(g, nop_task, NULL, NULL, NULL)) == 0)
				rc = gb_group_wait(g, GB_NEVER);
		s->per[r] = (double)(now_ns() - t0) / s->n;
	}
	int crc = gb_group_close(g);
	return rc ? rc : crc;
}

/* ------------------------------------------------------ gb: fd ping-pong */

static long fd_wakes;

static void count_wake(gb_task *t, int fd, int result, void *ud)
{
	(void)t;
	(void)fd;
	(void)result;
	(void)ud;
	fd_wakes++;
}

struct fd_ctx {
	long n;
	gb_fd *a, *b;
	int err;
	double per[RUNS];
	long wakes[RUNS];
};

static int ping_task(void *arg)
{
	struct fd_ctx *c = arg;
	char x = 'p';
	for (long i = 0; i < c->n; i++) {
		ssize_t k = gb_fd_write(c->a, &x, 1, GB_NEVER);
		if (k == 1)
			k = gb_fd_read(c->a, &x, 1, GB_NEVER);
		if (k != 1) {
			c->err = k < 0 ? (int)k : -EIO;
			return c->err;
		}
	}
	return 0;
}

static int pong_task(void *arg)
{
	struct fd_ctx *c = arg;
	char x;
	for (long i = 0; i < c->n; i++) {
		ssize_t k = gb_fd_read(c->b, &x, 1, GB_NEVER);
		if (k == 1)
			k = gb_fd_write(c->b, &x, 1, GB_NEVER);
		if (k != 1) {
			c->err = k < 0 ? (int)k : -EIO;
			return c->err;
		}
	}
	return 0;
}

static int fd_main(void *arg)
{
	struct fd_ctx *c = arg;
	int sv[2], rc;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
		return -errno;
	if ((rc = gb_fd_open(&c->a, sv[0])) || (rc = gb_fd_open(&c->b, sv[1])))
		return rc;
	gb_hooks h = { .on_io_wake = count_wake };
	for (int r = 0; r < RUNS && rc == 0; r++) {
		gb_group *g;
		if ((rc = gb_group_open(&g)))
			break;
		fd_wakes = 0;
		gb_set_hooks(&h);
		int64_t t0 = now_ns();
		if ((rc = gb_spawn(g, ping_task, c, NULL, NULL)) == 0)
			rc = gb_spawn(g, pong_task, c, NULL, NULL);
		int wrc = rc ? 0 : gb_group_wait(g, GB_NEVER);
		int64_t t1 = now_ns();
		int crc = gb_group_close(g);
		if (rc == 0)
			rc = wrc;
		gb_set_hooks(NULL);
		if (rc == 0)
			rc = crc;
		c->wakes[r] = fd_wakes;
		c->per[r] = fd_wakes ? (double)(t1 - t0) / fd_wakes : 0;
	}
	gb_fd_close(c->a, 1);
	gb_fd_close(c->b, 1);
	return rc;
}

/* ----------------------------------------------------- idle task memory */

static long vm_rss_kib(void)
{
	char line[256];
	long v = -1;
	FILE *f = fopen("/proc/self/status", "r");
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "VmRSS: %ld kB", &v) == 1)
			break;
	fclose(f);
	return v;
}

static int idle_task(void *arg)
{
	(void)arg;
	gb_sleep(gb_after(GB_SEC(3600)));
	return 0;
}

struct idle_ctx {
	long n;
	long rss0, rss1;
};

static int idle_main(void *arg)
{
	struct idle_ctx *c = arg;
	gb_group *g;
	int rc = gb_group_open(&g);
	if (rc)
		return rc;
	c->rss0 = vm_rss_kib();
	for (long i = 0; i < c->n && rc == 0; i++)
		rc = gb_spawn(g, idle_task, NULL, NULL, NULL);
	/* let every task run into its sleep */
	gb_sleep(gb_after(GB_MSEC(20)));
	if (rc == 0 && gb_group_size(g) != (size_t)c->n)
		rc = -EAGAIN;
	c->rss1 = vm_rss_kib();
	gb_group_cancel(g);
	int crc = gb_group_close(g);
	return rc ? rc : crc;
}

/* One measurement in a fresh process, so that earlier runs' heap and
 * pooled stacks do not hide the cost. Returns bytes per task, or < 0. */
static double idle_once(long n)
{
	int p[2];
	double per = -1;
	if (pipe(p) != 0)
		return -1;
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		struct idle_ctx c = { .n = n };
		int rc = gb_run(idle_main, &c);
		double v = rc == 0 && c.rss0 >= 0 && c.rss1 >= 0 ?
		           (double)(c.rss1 - c.rss0) * 1024.0 / n : -1;
		ssize_t w = write(p[1], &v, sizeof v);
		_exit(w == sizeof v ? 0 : 1);
	}
	close(p[1]);
	if (read(p[0], &per, sizeof per) != sizeof per)
		per = -1;
	close(p[0]);
	waitpid(pid, NULL, 0);
	return per;
}

/* ------------------------------------------------------------------ main */

int main(void)
{
	double v[RUNS];
	int rc;

#ifdef HAVE_REF_CTX
	for (int r = 0; r < RUNS; r++)
		v[r] = bench_ref(N_REF);
	report("switch, ref ctx_ref.S", v, "ns/switch", N_REF, "round trips", 0);
#else
	printf("switch, ref ctx_ref.S               n/a on this CPU\n");
#endif

	struct yield_ctx y = { .n = N_YIELD };
	rc = gb_run(yield_main, &y);
	if (rc == 0) {
		for (int r = 0; r < RUNS; r++)
			v[r] = y.rt[r] / 2;
		report("switch, gb (yield round trip / 2)", v, "ns/switch", N_YIELD,
		       "round trips", 15);
	} else {
		failed("switch, gb (yield round trip / 2)", rc);
	}

	for (int r = 0; r < RUNS; r++)
		v[r] = bench_ucontext(N_UCTX);
	report("switch, ref swapcontext", v, "ns/switch", N_UCTX, "round trips", 0);

	if (rc == 0)
		report("gb_yield round trip (A->B->A)", y.rt, "ns/rt", N_YIELD,
		       "round trips", 30);
	else
		failed("gb_yield round trip (A->B->A)", rc);

	struct spawn_ctx s = { .n = N_SPAWN };
	rc = gb_run(spawn_main, &s);
	if (rc == 0)
		report("spawn+exit+join (pooled stack)", s.per, "ns/task", N_SPAWN,
		       "tasks", 100);
	else
		failed("spawn+exit+join (pooled stack)", rc);

	struct fd_ctx f = { .n = N_FD };
	rc = gb_run(fd_main, &f);
	if (rc == 0 && f.err == 0) {
		report("fd wait/wake (socketpair ping-pong)", f.per, "ns/wake", N_FD,
		       "round trips", -1);
		printf("%-36s %ld wakes per run for %ld round trips (run 1)\n", "",
		       f.wakes[0], N_FD);
	} else {
		failed("fd wait/wake (socketpair ping-pong)", rc ? rc : f.err);
	}

	int ok = 1;
	for (int r = 0; r < RUNS; r++) {
		v[r] = idle_once(N_IDLE) / 1024.0;
		ok &= v[r] >= 0;
	}
	if (ok)
		report("resident memory per idle task", v, "KiB/task", N_IDLE, "tasks", 8);
	else
		failed("resident memory per idle task", -EIO);
	return 0;
}
