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
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "config.h"
#include "ctx.h"
#include "gb.h"

#define RUNS 5

#define N_REF    20000000L
#define N_UCTX     500000L
#define N_YIELD   2000000L
#define N_SPAWN    500000L
#define N_FD       100000L
#define N_IDLE      10000L
#define N_CHAN    1000000L
#define N_LOCK    1000000L
#define N_ECHO      20000L

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

/* --------------------------------------- gb's own switch, called raw */

/* The scheduler's switch (src/gb/ctx_*.S, or its ucontext fallback),
 * without the run queue around it: what the switch itself costs with the
 * FP control words saved. */
static gb_ctx gbc_main, gbc_co;

static void gbc_entry(void *arg)
{
	(void)arg;
	for (;;)
		gb__ctx_switch(&gbc_co, &gbc_main);
}

static double bench_gb_switch(long n)
{
	static _Alignas(16) char stack[64 * 1024];
	gb__ctx_init(&gbc_co, stack, sizeof stack, gbc_entry, NULL);
	int64_t t0 = now_ns();
	for (long i = 0; i < n; i++)
		gb__ctx_switch(&gbc_main, &gbc_co);
	int64_t t1 = now_ns();
	return (double)(t1 - t0) / (2.0 * n);
}

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

/* ------------------------------------------------- gb: channel hand-off */

/*
 * A producer task sends n pointer items (1, 2, ... n, so the consumer can
 * check their order) through one channel; a consumer task receives them.
 * Time from the producer's first send to the consumer's last receive, per
 * item. With capacity 0 every item is a rendezvous; with a ring the
 * producer fills it before it has to block, so switches are amortised.
 */
struct chan_ctx {
	long n;
	size_t cap;
	gb_chan *c;
	int64_t t0, t1;
	int err;
	double per[RUNS];
};

static int chan_producer(void *arg)
{
	struct chan_ctx *c = arg;
	c->t0 = now_ns();
	for (long i = 1; i <= c->n; i++) {
		void *item = (void *)(uintptr_t)i;
		int rc = gb_chan_send(c->c, &item, GB_NEVER);
		if (rc) {
			c->err = rc;
			return rc;
		}
	}
	return 0;
}

static int chan_consumer(void *arg)
{
	struct chan_ctx *c = arg;
	for (long i = 1; i <= c->n; i++) {
		void *item = NULL;
		int rc = gb_chan_recv(c->c, &item, GB_NEVER);
		if (rc == 0 && item != (void *)(uintptr_t)i)
			rc = -EILSEQ;   /* lost, duplicated or reordered item */
		if (rc) {
			c->err = rc;
			return rc;
		}
	}
	c->t1 = now_ns();
	return 0;
}

static int chan_main(void *arg)
{
	struct chan_ctx *c = arg;
	int rc = gb_chan_open(&c->c, sizeof(void *), c->cap);
	if (rc)
		return rc;
	/* run -1 is a warmup */
	for (int r = -1; r < RUNS && rc == 0; r++) {
		gb_group *g;
		if ((rc = gb_group_open(&g)))
			break;
		if ((rc = gb_spawn(g, chan_producer, c, NULL, NULL)) == 0)
			rc = gb_spawn(g, chan_consumer, c, NULL, NULL);
		int wrc = rc ? 0 : gb_group_wait(g, GB_NEVER);
		int crc = gb_group_close(g);
		if (rc == 0)
			rc = wrc ? wrc : crc;
		if (rc == 0 && r >= 0)
			c->per[r] = (double)(c->t1 - c->t0) / c->n;
	}
	gb_chan_free(c->c);
	return rc;
}

/* ---------------------------------------------------- gb: lock hand-off */

/*
 * Two tasks take turns on one lock: each releases it while the other is
 * queued on it (so the release hands it over, FIFO) and queues again at
 * once, which blocks it and switches to the new owner. A hand-off is one
 * release to a waiter plus one switch. Every release is counted, and those
 * that found nobody waiting are reported as an error.
 */
struct lock_ctx {
	long n;                 /* loop iterations per task */
	gb_lock l;
	int b_started;
	long handoffs, releases;
	int64_t t0, t1;
	int err;
	double per[RUNS];
};

static int lock_release_count(struct lock_ctx *c)
{
	int rc = gb_lock_release(&c->l);
	c->releases++;
	if (rc == 0 && gb_lock_owner(&c->l) != NULL)
		c->handoffs++;
	return rc;
}

static int lock_turns(struct lock_ctx *c)
{
	int rc = 0;
	for (long i = 0; i < c->n && rc == 0; i++)
		if ((rc = lock_release_count(c)) == 0)
			rc = gb_lock_acquire(&c->l, GB_NEVER);
	c->t1 = now_ns();
	if (rc == 0)
		rc = lock_release_count(c);
	if (rc)
		c->err = rc;
	return rc;
}

static int lock_a(void *arg)
{
	struct lock_ctx *c = arg;
	int rc = gb_lock_acquire(&c->l, GB_NEVER);
	while (rc == 0 && !c->b_started)
		rc = gb_yield();        /* until B is queued on the lock */
	if (rc) {
		c->err = rc;
		return rc;
	}
	c->t0 = now_ns();
	return lock_turns(c);
}

static int lock_b(void *arg)
{
	struct lock_ctx *c = arg;
	c->b_started = 1;
	int rc = gb_lock_acquire(&c->l, GB_NEVER);   /* A holds it: queue */
	if (rc) {
		c->err = rc;
		return rc;
	}
	return lock_turns(c);
}

static int lock_main(void *arg)
{
	struct lock_ctx *c = arg;
	int rc = 0;
	for (int r = -1; r < RUNS && rc == 0; r++) {   /* run -1: warmup */
		gb_group *g;
		gb_lock_init(&c->l);
		c->b_started = 0;
		c->handoffs = c->releases = 0;
		if ((rc = gb_group_open(&g)))
			break;
		if ((rc = gb_spawn(g, lock_a, c, NULL, NULL)) == 0)
			rc = gb_spawn(g, lock_b, c, NULL, NULL);
		int wrc = rc ? 0 : gb_group_wait(g, GB_NEVER);
		int crc = gb_group_close(g);
		if (rc == 0)
			rc = wrc ? wrc : crc;
		/* Every release but the very last (nobody left to wait) must
		 * have been a hand-off. */
		if (rc == 0 && c->handoffs != c->releases - 1)
			rc = -EPROTO;
		if (rc == 0 && r >= 0)
			c->per[r] = (double)(c->t1 - c->t0) / (double)(2 * c->n);
	}
	return rc;
}

/* ------------------------------------------------- TCP echo round trip */

/*
 * One loopback TCP connection; the client sends a 64-byte line ('\n'
 * included) and waits for it to come back, n times.
 *  - gb:      server and client are tasks of one scheduler, through
 *             gb_sock_* (recv_line + send_all on the server).
 *  - threads: plain blocking sockets; an echo thread (read, write back
 *             what was read) and the main thread as client (reference).
 * Both use the kernel's defaults (Nagle on: it never delays a strict
 * ping-pong, where every segment is acknowledged by the reply).
 */
#define ECHO_LINE   64
#define ECHO_WARMUP 1000L

static void echo_fill(char *line)
{
	for (int i = 0; i < ECHO_LINE - 1; i++)
		line[i] = (char)('a' + i % 26);
	line[ECHO_LINE - 1] = '\n';
}

struct echo_ctx {
	long n;
	gb_sock *ls;
	struct sockaddr_in addr;
	int err;
	long waits;
	double per[RUNS];
	long waits_per[RUNS];
};

static long io_waits;

static void count_wait(gb_task *t, int fd, int events, void *ud)
{
	(void)t;
	(void)fd;
	(void)events;
	(void)ud;
	io_waits++;
}

static int echo_server_task(void *arg)
{
	struct echo_ctx *c = arg;
	gb_sock *s;
	int rc = gb_sock_accept(c->ls, &s, NULL, GB_NEVER);
	if (rc)
		goto out;
	for (;;) {
		const char *line;
		ssize_t k = gb_sock_recv_line(s, 4096, &line, GB_NEVER);
		if (k <= 0) {
			rc = (int)k;    /* 0: the client closed */
			break;
		}
		if ((rc = gb_sock_send_all(s, line, (size_t)k, NULL, GB_NEVER)))
			break;
	}
	gb_sock_close(s);
out:
	if (rc)
		c->err = rc;
	return rc;
}

static int echo_rt(gb_sock *s, const char *out)
{
	const char *line;
	int rc = gb_sock_send_all(s, out, ECHO_LINE, NULL, GB_NEVER);
	if (rc)
		return rc;
	ssize_t k = gb_sock_recv_line(s, 4096, &line, GB_NEVER);
	if (k < 0)
		return (int)k;
	if (k != ECHO_LINE || memcmp(line, out, ECHO_LINE) != 0)
		return -EPROTO;
	return 0;
}

static int echo_client_task(void *arg)
{
	struct echo_ctx *c = arg;
	char out[ECHO_LINE];
	gb_sock *s;
	gb_hooks h = { .on_io_wait = count_wait };
	int rc = gb_sock_connect(&s, (struct sockaddr *)&c->addr,
	                         sizeof c->addr, GB_NEVER);
	if (rc)
		goto out;
	echo_fill(out);
	for (long i = 0; i < ECHO_WARMUP && rc == 0; i++)
		rc = echo_rt(s, out);
	for (int r = 0; r < RUNS && rc == 0; r++) {
		io_waits = 0;
		gb_set_hooks(&h);
		int64_t t0 = now_ns();
		for (long i = 0; i < c->n && rc == 0; i++)
			rc = echo_rt(s, out);
		int64_t t1 = now_ns();
		gb_set_hooks(NULL);
		c->per[r] = (double)(t1 - t0) / c->n;
		c->waits_per[r] = io_waits;
	}
	gb_sock_close(s);   /* the server sees end of stream */
out:
	if (rc)
		c->err = rc;
	return rc;
}

static int echo_main(void *arg)
{
	struct echo_ctx *c = arg;
	socklen_t len = sizeof c->addr;
	int rc;

	memset(&c->addr, 0, sizeof c->addr);
	c->addr.sin_family = AF_INET;
	c->addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	c->addr.sin_port = 0;
	if ((rc = gb_sock_listen(&c->ls, (struct sockaddr *)&c->addr,
	                         sizeof c->addr, NULL)))
		return rc;
	if (getsockname(gb_sock_fd(c->ls), (struct sockaddr *)&c->addr, &len)) {
		rc = -errno;
		gb_sock_close(c->ls);
		return rc;
	}
	gb_group *g;
	if ((rc = gb_group_open(&g)) == 0) {
		if ((rc = gb_spawn(g, echo_server_task, c, NULL, NULL)) == 0)
			rc = gb_spawn(g, echo_client_task, c, NULL, NULL);
		int wrc = rc ? 0 : gb_group_wait(g, GB_NEVER);
		int crc = gb_group_close(g);
		if (rc == 0)
			rc = wrc ? wrc : crc;
	}
	gb_sock_close(c->ls);
	return rc;
}

/* The reference: blocking sockets, one thread per side. */
static void *echo_thread(void *arg)
{
	int lfd = *(int *)arg;
	char buf[4096];
	int fd = accept(lfd, NULL, NULL);
	if (fd < 0)
		return NULL;
	for (;;) {
		ssize_t k = read(fd, buf, sizeof buf);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		for (ssize_t off = 0; off < k;) {
			ssize_t w = write(fd, buf + off, (size_t)(k - off));
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				goto done;
			off += w;
		}
	}
done:
	close(fd);
	return NULL;
}

static int thr_rt(int fd, const char *out)
{
	char in[ECHO_LINE];
	size_t got = 0;
	for (size_t off = 0; off < ECHO_LINE;) {
		ssize_t w = write(fd, out + off, ECHO_LINE - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		off += (size_t)w;
	}
	while (got < ECHO_LINE) {
		ssize_t k = read(fd, in + got, ECHO_LINE - got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return k < 0 ? -errno : -EIO;
		got += (size_t)k;
	}
	return memcmp(in, out, ECHO_LINE) ? -EPROTO : 0;
}

/* Fills per[RUNS]; returns 0 or a negative errno. */
static int echo_threads(long n, double *per)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof a;
	char out[ECHO_LINE];
	pthread_t th;
	int lfd, fd = -1, rc = 0;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -errno;
	if (bind(lfd, (struct sockaddr *)&a, sizeof a) != 0 ||
	    listen(lfd, 1) != 0 ||
	    getsockname(lfd, (struct sockaddr *)&a, &len) != 0) {
		rc = -errno;
		close(lfd);
		return rc;
	}
	if ((rc = pthread_create(&th, NULL, echo_thread, &lfd)) != 0) {
		close(lfd);
		return -rc;
	}
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
		rc = -errno;
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	echo_fill(out);
	for (long i = 0; i < ECHO_WARMUP && rc == 0; i++)
		rc = thr_rt(fd, out);
	for (int r = 0; r < RUNS && rc == 0; r++) {
		int64_t t0 = now_ns();
		for (long i = 0; i < n && rc == 0; i++)
			rc = thr_rt(fd, out);
		per[r] = (double)(now_ns() - t0) / n;
	}
	if (fd >= 0)
		close(fd);      /* the echo thread reads end of stream */
	else
		shutdown(lfd, SHUT_RDWR);   /* not connected: unblocks accept */
	pthread_join(th, NULL);
	close(lfd);
	return rc;
}

/* ------------------------------------------------------------------ main */

int main(void)
{
	double v[RUNS];
	int rc;

	printf("gb micro-benchmarks: best and median of %d runs, CLOCK_MONOTONIC\n", RUNS);

#ifdef HAVE_REF_CTX
	for (int r = 0; r < RUNS; r++)
		v[r] = bench_ref(N_REF);
	report("switch, ref ctx_ref.S", v, "ns/switch", N_REF, "round trips of 2 switches", 0);
#else
	printf("switch, ref ctx_ref.S               n/a on this CPU\n");
#endif

	for (int r = 0; r < RUNS; r++)
		v[r] = bench_gb_switch(N_REF);
	report("switch, gb (raw, FP control words)", v, "ns/switch", N_REF,
	       "round trips of 2 switches", 15);

	struct yield_ctx y = { .n = N_YIELD };
	rc = gb_run(yield_main, &y);
	if (rc == 0) {
		for (int r = 0; r < RUNS; r++)
			v[r] = y.rt[r] / 2;
		report("switch, gb (yield round trip / 2)", v, "ns/switch", N_YIELD,
		       "round trips of 2 switches", 0);
	} else {
		failed("switch, gb (yield round trip / 2)", rc);
	}

	for (int r = 0; r < RUNS; r++)
		v[r] = bench_ucontext(N_UCTX);
	report("switch, ref swapcontext", v, "ns/switch", N_UCTX, "round trips of 2 switches", 0);

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

	static const size_t caps[] = { 0, 1, 64 };
	for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++) {
		struct chan_ctx c = { .n = N_CHAN, .cap = caps[i] };
		char what[64];
		snprintf(what, sizeof what, "chan hand-off, capacity %zu", caps[i]);
		rc = gb_run(chan_main, &c);
		if (rc == 0 && c.err == 0)
			report(what, c.per, "ns/item", N_CHAN, "items", 50);
		else
			failed(what, rc ? rc : c.err);
	}

	struct lock_ctx l = { .n = N_LOCK };
	rc = gb_run(lock_main, &l);
	if (rc == 0 && l.err == 0)
		report("lock hand-off (FIFO, 2 tasks)", l.per, "ns/handoff",
		       l.handoffs, "hand-offs", -1);
	else
		failed("lock hand-off (FIFO, 2 tasks)", rc ? rc : l.err);

	struct echo_ctx e = { .n = N_ECHO };
	double thr[RUNS];
	rc = gb_run(echo_main, &e);
	if (rc == 0 && e.err == 0) {
		double waits = (double)e.waits_per[0] / N_ECHO;
		report("TCP echo RT, gb tasks (gb_sock)", e.per, "ns/rt", N_ECHO,
		       "round trips, 64 B", -1);
		printf("%-36s %.2f fd waits per round trip (run 1)\n", "", waits);
	} else {
		failed("TCP echo RT, gb tasks (gb_sock)", rc ? rc : e.err);
	}
	int trc = echo_threads(N_ECHO, thr);
	if (trc == 0)
		report("TCP echo RT, ref blocking threads", thr, "ns/rt", N_ECHO,
		       "round trips, 64 B", 0);
	else
		failed("TCP echo RT, ref blocking threads", trc);
	if (rc == 0 && e.err == 0 && trc == 0)   /* both sorted by report() */
		printf("%-36s best %8.2f  median %8.2f x the blocking threads' time\n",
		       "TCP echo RT, ratio gb / threads", e.per[0] / thr[0],
		       e.per[RUNS / 2] / thr[RUNS / 2]);

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
