/*
 * check_fd.c - gb_fd: optimistic read/write, waiting, deadlines,
 * cancellation, close while waiting, the I/O budget, EOF and EPIPE.
 *
 * Tasks record what they saw in plain structs; the checks run after gb_run()
 * returns, on the test's own stack.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testutil.h"

/* ------------------------------------------------------------ helpers */

static void mk_pair(int sv[2])
{
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
}

static void set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	ck_assert_int_ge(fl, 0);
	ck_assert_int_eq(fcntl(fd, F_SETFL, fl | O_NONBLOCK), 0);
}

/* Fills the send side of a non-blocking socket until write() says EAGAIN,
 * with shrinking chunks so that not even one byte fits. Returns the bytes
 * written, or -1 if write failed with something other than EAGAIN. */
static long fill_socket(int fd)
{
	static char junk[65536];
	long total = 0;
	for (size_t sz = sizeof junk; sz >= 1; sz /= 2) {
		for (;;) {
			ssize_t n = write(fd, junk, sz);
			if (n > 0) {
				total += n;
				continue;
			}
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				break;
			return -1;
		}
	}
	return total;
}

/* Reads a non-blocking fd until EAGAIN. */
static long drain_socket(int fd)
{
	static char buf[65536];  /* not on a 64 KiB task stack */
	long total = 0;
	for (;;) {
		ssize_t n = read(fd, buf, sizeof buf);
		if (n > 0) {
			total += n;
			continue;
		}
		return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? total : -1;
	}
}

/* Hooks: count fd waits and wakes. */
static struct {
	int waits;
	int wakes;
	int last_fd;
	int last_events;
} hk;

static void hk_wait(gb_task *t, int fd, int events, void *ud)
{
	(void)t;
	(void)ud;
	hk.waits++;
	hk.last_fd = fd;
	hk.last_events = events;
}

static void hk_wake(gb_task *t, int fd, int result, void *ud)
{
	(void)t;
	(void)fd;
	(void)result;
	(void)ud;
	hk.wakes++;
}

static void hooks_on(void)
{
	gb_hooks h = {0};
	memset(&hk, 0, sizeof hk);
	hk.last_fd = -1;
	h.on_io_wait = hk_wait;
	h.on_io_wake = hk_wake;
	gb_set_hooks(&h);
}

/* Latency bounds are looser under valgrind, which slows everything down;
 * a starving or lost wake-up still shows as seconds. */
static int64_t slack(int64_t ns)
{
	return tu_under_valgrind() ? 10 * ns : ns;
}

static void hooks_off(void)
{
	gb_set_hooks(NULL);
}

/* A generic "do one fd operation and record it" task. */
enum op { OP_READ, OP_WRITE, OP_WAIT_READ };

struct io_task {
	gb_fd *f;
	enum op op;
	int64_t deadline;
	const char *data;   /* OP_WRITE */
	size_t len;         /* OP_WRITE: bytes to write; OP_READ: buffer size */
	char buf[128];      /* OP_READ result */
	/* results */
	int started;
	int done;
	ssize_t res;
	int64_t t_start;
	int64_t t_end;
	int waits_before;   /* hk.waits when the call returned */
};

static int io_task_fn(void *arg)
{
	struct io_task *io = arg;
	io->started = 1;
	io->t_start = gb_now();
	switch (io->op) {
	case OP_READ:
		io->res = gb_fd_read(io->f, io->buf,
		                     io->len ? io->len : sizeof io->buf, io->deadline);
		break;
	case OP_WRITE:
		io->res = gb_fd_write(io->f, io->data, io->len, io->deadline);
		break;
	case OP_WAIT_READ:
		io->res = gb_fd_wait(io->f, GB_READ, io->deadline);
		break;
	}
	io->t_end = gb_now();
	io->waits_before = hk.waits;
	io->done = 1;
	return 0;
}

/* ------------------------------------------- blocking read, later write */

struct rw_ctx {
	int sv[2];
	struct io_task rd;
	struct io_task wr;
	int open_rc[2];
	int close_rc[2];
	int rc;
};

static const char MSG[] = "hello, giambio";

static int delayed_writer(void *arg)
{
	struct io_task *io = arg;
	io->started = 1;
	if (gb_sleep(gb_after(GB_MSEC(10))) != 0) {
		io->res = -1000;
		return 0;
	}
	io->t_start = gb_now();
	io->res = gb_fd_write(io->f, io->data, io->len, io->deadline);
	io->t_end = gb_now();
	io->done = 1;
	return 0;
}

static int rw_main(void *arg)
{
	struct rw_ctx *c = arg;
	gb_fd *a = NULL, *b = NULL;
	gb_group *g;
	c->open_rc[0] = gb_fd_open(&a, c->sv[0]);
	c->open_rc[1] = gb_fd_open(&b, c->sv[1]);
	if (c->open_rc[0] || c->open_rc[1])
		return -1;
	c->rd = (struct io_task){ .f = a, .op = OP_READ, .deadline = gb_after(GB_SEC(5)) };
	c->wr = (struct io_task){ .f = b, .op = OP_WRITE, .deadline = gb_after(GB_SEC(5)),
	                          .data = MSG, .len = sizeof MSG - 1 };
	if ((c->rc = gb_group_open(&g)) != 0)
		return c->rc;
	gb_spawn(g, io_task_fn, &c->rd, NULL, NULL);
	gb_spawn(g, delayed_writer, &c->wr, NULL, NULL);
	c->rc = tu_join(g);
	c->close_rc[0] = gb_fd_close(a, 1);
	c->close_rc[1] = gb_fd_close(b, 1);
	return 0;
}

START_TEST(test_read_blocks_until_write)
{
	struct rw_ctx c;
	memset(&c, 0, sizeof c);
	mk_pair(c.sv);
	hooks_on();
	TU_RUN(rw_main, &c, 0);
	hooks_off();
	ck_assert_int_eq(c.rc, 0);
	ck_assert_int_eq(c.open_rc[0], 0);
	ck_assert_int_eq(c.open_rc[1], 0);
	ck_assert(c.rd.done && c.wr.done);
	ck_assert_int_eq(c.wr.res, (ssize_t)(sizeof MSG - 1));
	ck_assert_int_eq(c.rd.res, (ssize_t)(sizeof MSG - 1));
	ck_assert_mem_eq(c.rd.buf, MSG, sizeof MSG - 1);
	/* the reader really blocked: it returned only after the write ... */
	ck_assert_int_ge(c.rd.t_end, c.wr.t_start);
	ck_assert_int_ge(c.rd.t_end - c.rd.t_start, GB_MSEC(10));
	/* ... and it went through the poller for its fd, for reading */
	ck_assert_int_ge(hk.waits, 1);
	ck_assert_int_eq(hk.last_fd, c.sv[0]);
	ck_assert_int_eq(hk.last_events, GB_READ);
	ck_assert_int_ge(hk.wakes, 1);
	ck_assert_int_eq(c.close_rc[0], 0);
	ck_assert_int_eq(c.close_rc[1], 0);
}
END_TEST

/* ------------------------------------------------------ optimistic I/O */

struct opt_ctx {
	int sv[2];
	ssize_t rres, wres;
	char buf[64];
	int waits_after_read, waits_after_write;
};

static int opt_main(void *arg)
{
	struct opt_ctx *c = arg;
	gb_fd *f;
	if (gb_fd_open(&f, c->sv[0]) != 0)
		return -1;
	/* data is already queued: read must not wait */
	c->rres = gb_fd_read(f, c->buf, sizeof c->buf, GB_NEVER);
	c->waits_after_read = hk.waits;
	/* the socket is empty and writable: write must not wait */
	c->wres = gb_fd_write(f, "pong", 4, GB_NEVER);
	c->waits_after_write = hk.waits;
	gb_fd_close(f, 1);
	return 0;
}

START_TEST(test_optimistic_io)
{
	struct opt_ctx c;
	memset(&c, 0, sizeof c);
	mk_pair(c.sv);
	ck_assert_int_eq(write(c.sv[1], "ping", 4), 4);
	hooks_on();
	TU_RUN(opt_main, &c, 0);
	hooks_off();
	ck_assert_int_eq(c.rres, 4);
	ck_assert_mem_eq(c.buf, "ping", 4);
	ck_assert_int_eq(c.waits_after_read, 0);
	ck_assert_int_eq(c.wres, 4);
	ck_assert_int_eq(c.waits_after_write, 0);
	char buf[8];
	ck_assert_int_eq(read(c.sv[1], buf, sizeof buf), 4);
	ck_assert_mem_eq(buf, "pong", 4);
	close(c.sv[1]);
}
END_TEST

/* ----------------------------- one reader + one writer; second reader */

struct two_ctx {
	int sv[2];
	long filled;
	struct io_task rd, wr, rd2;
	int rd_done_early, wr_done_early;
	int waits_mid;
	long drained;
	int rc;
};

static char big[4096];

/* A read of f, or a write of all of big to f, with a 5 s deadline. */
static struct io_task read_task(gb_fd *f)
{
	return (struct io_task){ .f = f, .op = OP_READ, .deadline = gb_after(GB_SEC(5)) };
}

static struct io_task write_big_task(gb_fd *f)
{
	return (struct io_task){ .f = f, .op = OP_WRITE, .deadline = gb_after(GB_SEC(5)),
	                         .data = big, .len = sizeof big };
}

static int two_main(void *arg)
{
	struct two_ctx *c = arg;
	gb_fd *f;
	gb_group *g;
	if (gb_fd_open(&f, c->sv[0]) != 0)
		return -1;
	c->filled = fill_socket(c->sv[0]);
	c->rd = read_task(f);
	c->wr = write_big_task(f);
	c->rd2 = (struct io_task){ .f = f, .op = OP_WAIT_READ, .deadline = gb_after(GB_SEC(1)) };
	if ((c->rc = gb_group_open(&g)) != 0)
		return c->rc;
	gb_spawn(g, io_task_fn, &c->rd, NULL, NULL);
	gb_spawn(g, io_task_fn, &c->wr, NULL, NULL);
	gb_sleep(gb_after(GB_MSEC(10)));
	c->waits_mid = hk.waits;
	/* both wait now; a second reader must be refused at once */
	gb_spawn(g, io_task_fn, &c->rd2, NULL, NULL);
	gb_sleep(gb_after(GB_MSEC(10)));
	c->rd_done_early = c->rd.done;
	c->wr_done_early = c->wr.done;
	/* wake both: data for the reader, room for the writer */
	if (write(c->sv[1], "ping", 4) != 4)
		c->rc = -2;
	c->drained = drain_socket(c->sv[1]);
	int rc = tu_join(g);
	if (c->rc == 0)
		c->rc = rc;
	gb_fd_close(f, 1);
	close(c->sv[1]);
	return 0;
}

START_TEST(test_reader_and_writer_share_fd)
{
	struct two_ctx c;
	memset(&c, 0, sizeof c);
	mk_pair(c.sv);
	set_nonblock(c.sv[1]);
	hooks_on();
	TU_RUN(two_main, &c, 0);
	hooks_off();
	ck_assert_int_eq(c.rc, 0);
	ck_assert_int_gt(c.filled, 0);
	ck_assert_int_ge(c.waits_mid, 2);
	ck_assert_msg(!c.rd_done_early && !c.wr_done_early,
	              "reader/writer returned before the peer acted (rd %zd, wr %zd)",
	              c.rd.res, c.wr.res);
	/* the second reader: refused, and at once */
	ck_assert(c.rd2.done);
	ck_assert_int_eq(c.rd2.res, -EBUSY);
	ck_assert_int_lt(c.rd2.t_end - c.rd2.t_start, slack(GB_MSEC(100)));
	/* the first reader and the writer both completed */
	ck_assert(c.rd.done && c.wr.done);
	ck_assert_int_eq(c.rd.res, 4);
	ck_assert_mem_eq(c.rd.buf, "ping", 4);
	ck_assert_int_gt(c.wr.res, 0);
	ck_assert_int_ge(c.drained, c.filled);
}
END_TEST

/* ----------------------------------------------------------- deadlines */

struct dl_ctx {
	int sv[2];
	long filled;
	ssize_t rres, wres;
	int64_t rtime, wtime;
};

static int dl_main(void *arg)
{
	struct dl_ctx *c = arg;
	gb_fd *f;
	char buf[16];
	if (gb_fd_open(&f, c->sv[0]) != 0)
		return -1;
	int64_t t0 = gb_now();
	c->rres = gb_fd_read(f, buf, sizeof buf, gb_after(GB_MSEC(20)));
	c->rtime = gb_now() - t0;
	c->filled = fill_socket(c->sv[0]);
	t0 = gb_now();
	c->wres = gb_fd_write(f, big, sizeof big, gb_after(GB_MSEC(20)));
	c->wtime = gb_now() - t0;
	gb_fd_close(f, 1);
	close(c->sv[1]);
	return 0;
}

START_TEST(test_deadlines)
{
	struct dl_ctx c;
	memset(&c, 0, sizeof c);
	mk_pair(c.sv);
	TU_RUN(dl_main, &c, 0);
	ck_assert_int_eq(c.rres, -ETIMEDOUT);
	ck_assert_int_ge(c.rtime, GB_MSEC(20));
	ck_assert_int_lt(c.rtime, GB_SEC(2));
	ck_assert_int_gt(c.filled, 0);
	ck_assert_int_eq(c.wres, -ETIMEDOUT);
	ck_assert_int_ge(c.wtime, GB_MSEC(20));
	ck_assert_int_lt(c.wtime, GB_SEC(2));
}
END_TEST

/* -------------------------------------------------- cancel while waiting */

struct cancel_ctx {
	int sv[2];
	struct io_task rd;
	gb_task *reader;
	int64_t t_cancel;
	int rc;
};

static int canceller(void *arg)
{
	struct cancel_ctx *c = arg;
	gb_sleep(gb_after(GB_MSEC(10)));
	c->t_cancel = gb_now();
	gb_cancel(c->reader);
	return 0;
}

static int cancel_main(void *arg)
{
	struct cancel_ctx *c = arg;
	gb_fd *f;
	gb_group *g;
	if (gb_fd_open(&f, c->sv[0]) != 0)
		return -1;
	c->rd = read_task(f);
	if ((c->rc = gb_group_open(&g)) != 0)
		return c->rc;
	gb_spawn(g, io_task_fn, &c->rd, NULL, &c->reader);
	gb_spawn(g, canceller, c, NULL, NULL);
	c->rc = tu_join(g);
	gb_task_release(c->reader);
	gb_fd_close(f, 1);
	close(c->sv[1]);
	return 0;
}

START_TEST(test_cancel_during_wait)
{
	struct cancel_ctx c;
	memset(&c, 0, sizeof c);
	mk_pair(c.sv);
	TU_RUN(cancel_main, &c, 0);
	ck_assert_int_eq(c.rc, 0);
	ck_assert(c.rd.done);
	ck_assert_int_eq(c.rd.res, -ECANCELED);
	ck_assert_int_ne(c.t_cancel, 0);
	ck_assert_int_ge(c.rd.t_end, c.t_cancel);
	ck_assert_int_lt(c.rd.t_end - c.t_cancel, slack(GB_MSEC(50)));
}
END_TEST

/* ---------------------------------------------- gb_fd_close while waiting */

struct close_ctx {
	int sv[2];
	long filled;
	struct io_task rd, wr;
	int close_rc;
	int fd_still_open;
	int rc;
};

static int close_main(void *arg)
{
	struct close_ctx *c = arg;
	gb_fd *f;
	gb_group *g;
	if (gb_fd_open(&f, c->sv[0]) != 0)
		return -1;
	c->filled = fill_socket(c->sv[0]);
	c->rd = read_task(f);
	c->wr = write_big_task(f);
	if ((c->rc = gb_group_open(&g)) != 0)
		return c->rc;
	gb_spawn(g, io_task_fn, &c->rd, NULL, NULL);
	gb_spawn(g, io_task_fn, &c->wr, NULL, NULL);
	gb_sleep(gb_after(GB_MSEC(10)));
	c->close_rc = gb_fd_close(f, 1);
	c->fd_still_open = fcntl(c->sv[0], F_GETFD) != -1;
	c->rc = tu_join(g);
	close(c->sv[1]);
	return 0;
}

START_TEST(test_close_wakes_waiters)
{
	struct close_ctx c;
	memset(&c, 0, sizeof c);
	mk_pair(c.sv);
	/* with hooks on: the wake hook must not touch the freed gb_fd */
	hooks_on();
	TU_RUN(close_main, &c, 0);
	hooks_off();
	ck_assert_int_eq(c.rc, 0);
	ck_assert_int_gt(c.filled, 0);
	ck_assert_int_eq(c.close_rc, 0);
	ck_assert_msg(!c.fd_still_open, "gb_fd_close(f, 1) did not close the fd");
	ck_assert(c.rd.done && c.wr.done);
	ck_assert_int_eq(c.rd.res, -EBADF);
	ck_assert_int_eq(c.wr.res, -EBADF);
	ck_assert_int_lt(c.rd.t_end - c.rd.t_start, GB_SEC(1));
	ck_assert_int_lt(c.wr.t_end - c.wr.t_start, GB_SEC(1));
}
END_TEST

/* -------------------------------------------------- fairness / I/O budget */

struct fair_ctx {
	int sv[2];
	gb_fd *fa, *fb;
	gb_task *busy;
	/* busy task */
	long busy_iters;
	ssize_t busy_res;
	int busy_hard_stop;     /* it ran past the safety limit */
	int busy_was_cancelled; /* ... although it had been cancelled */
	int64_t hard_limit;
	/* sleeper */
	int sleeper_rc;
	int64_t sleep_late;     /* wake time - requested deadline */
	int sleeper_done;
	/* yielder */
	long yields;
	long yields_when_checked;
	int64_t main_late;
	int rc;
};

/* Always ready: writes one byte to its own socket pair and reads it back. */
static int busy_task(void *arg)
{
	struct fair_ctx *c = arg;
	char b = 'x';
	for (;;) {
		ssize_t n = gb_fd_write(c->fb, &b, 1, GB_NEVER);
		if (n != 1) {
			c->busy_res = n;
			break;
		}
		n = gb_fd_read(c->fa, &b, 1, GB_NEVER);
		if (n != 1) {
			c->busy_res = n;
			break;
		}
		c->busy_iters++;
		/* safety net so that a starving scheduler ends the test */
		if ((c->busy_iters & 1023) == 0 && gb_now() > c->hard_limit) {
			c->busy_hard_stop = 1;
			c->busy_was_cancelled = gb_cancelled(gb_self());
			break;
		}
	}
	return 0;
}

static int sleeper_task(void *arg)
{
	struct fair_ctx *c = arg;
	int64_t dl = gb_after(GB_MSEC(10));
	c->sleeper_rc = gb_sleep(dl);
	c->sleep_late = gb_now() - dl;
	c->sleeper_done = 1;
	return 0;
}

static int yielder_task(void *arg)
{
	struct fair_ctx *c = arg;
	while (gb_yield() == 0) {
		c->yields++;
		if (gb_now() > c->hard_limit)
			break;
	}
	return 0;
}

static int fair_main(void *arg)
{
	struct fair_ctx *c = arg;
	gb_group *g;
	gb_scope s;
	if (gb_fd_open(&c->fa, c->sv[0]) != 0 || gb_fd_open(&c->fb, c->sv[1]) != 0)
		return -1;
	c->hard_limit = gb_after(GB_SEC(5));
	gb_scope_enter(&s, gb_after(GB_SEC(8)), 0);
	if ((c->rc = gb_group_open(&g)) != 0) {
		gb_scope_leave(&s);
		return c->rc;
	}
	gb_spawn(g, busy_task, c, NULL, &c->busy);
	gb_spawn(g, sleeper_task, c, NULL, NULL);
	gb_spawn(g, yielder_task, c, NULL, NULL);
	/* main itself sleeps too: its timer must fire as well */
	int64_t dl = gb_after(GB_MSEC(100));
	gb_sleep(dl);
	c->main_late = gb_now() - dl;
	c->yields_when_checked = c->yields;
	gb_cancel(c->busy);
	gb_group_cancel(g);
	c->rc = gb_group_close(g);
	gb_scope_leave(&s);
	gb_task_release(c->busy);
	gb_fd_close(c->fa, 1);
	gb_fd_close(c->fb, 1);
	return 0;
}

START_TEST(test_io_budget_fairness)
{
	struct fair_ctx c;
	memset(&c, 0, sizeof c);
	mk_pair(c.sv);
	TU_RUN(fair_main, &c, 0);
	ck_assert_msg(!c.busy_was_cancelled,
	              "the always-ready task was cancelled but its gb_fd_read/"
	              "gb_fd_write kept succeeding for 5 s (%ld iterations): the "
	              "budget yield is not a checkpoint", c.busy_iters);
	ck_assert_msg(!c.busy_hard_stop,
	              "the always-ready task ran 5 s without being cancelled: "
	              "the others starved (%ld iterations)", c.busy_iters);
	ck_assert_int_gt(c.busy_iters, 0);
	ck_assert_int_eq(c.busy_res, -ECANCELED);
	ck_assert(c.sleeper_done);
	ck_assert_int_eq(c.sleeper_rc, 0);
	ck_assert_msg(c.sleep_late < slack(GB_MSEC(40)),
	              "10 ms sleeper woke %lld ns late", (long long)c.sleep_late);
	ck_assert_msg(c.main_late < slack(GB_MSEC(50)),
	              "100 ms sleeper (main) woke %lld ns late", (long long)c.main_late);
	ck_assert_msg(c.yields_when_checked >= 10,
	              "yielding task made only %ld yields in 100 ms", c.yields_when_checked);
	ck_assert_int_eq(c.rc, 0);
}
END_TEST

/* ------------------------------------------------------------ EOF, EPIPE */

/* One read (OP_READ) or write (OP_WRITE) on sv[0] while the peer sv[1]
 * goes away: closed before the call (close_first), or 10 ms into a wait
 * (for a write, after filling the socket so that it blocks). */
struct peer_ctx {
	int sv[2];
	int op;
	int close_first;
	long filled;
	struct io_task io;
	int rc;
};

static int close_peer_later(void *arg)
{
	struct peer_ctx *c = arg;
	gb_sleep(gb_after(GB_MSEC(10)));
	close(c->sv[1]);
	return 0;
}

static int peer_main(void *arg)
{
	struct peer_ctx *c = arg;
	gb_fd *f;
	gb_group *g;
	if (gb_fd_open(&f, c->sv[0]) != 0)
		return -1;
	if (c->close_first)
		close(c->sv[1]);
	else if (c->op == OP_WRITE)
		c->filled = fill_socket(c->sv[0]);
	c->io = c->op == OP_WRITE ? write_big_task(f) : read_task(f);
	if ((c->rc = gb_group_open(&g)) != 0)
		return c->rc;
	gb_spawn(g, io_task_fn, &c->io, NULL, NULL);
	if (!c->close_first)
		gb_spawn(g, close_peer_later, c, NULL, NULL);
	c->rc = tu_join(g);
	gb_fd_close(f, 1);
	return 0;
}

/* Runs peer_main on a fresh socket pair and checks that it went through. */
static void run_peer(struct peer_ctx *c, int op, int close_first)
{
	memset(c, 0, sizeof *c);
	mk_pair(c->sv);
	c->op = op;
	c->close_first = close_first;
	TU_RUN(peer_main, c, 0);
	ck_assert_int_eq(c->rc, 0);
}

START_TEST(test_eof_while_waiting)
{
	struct peer_ctx c;
	run_peer(&c, OP_READ, 0);
	ck_assert(c.io.done);
	ck_assert_int_eq(c.io.res, 0);
	ck_assert_int_ge(c.io.t_end - c.io.t_start, GB_MSEC(10));
}
END_TEST

START_TEST(test_eof_already)
{
	struct peer_ctx c;
	run_peer(&c, OP_READ, 1);
	ck_assert(c.io.done);
	ck_assert_int_eq(c.io.res, 0);
}
END_TEST

/* Data and the end of stream that arrive together are reported by the
 * poller once: after a short read of the data, the next read must still
 * see the end (0), not wait for a readiness report that never comes.
 * Regression: a short read used to mark a stream drained. */
static int data_then_eof_main(void *arg)
{
	int *sv = arg;
	gb_fd *f;
	char buf[64];
	ssize_t n1, n2;

	if (gb_fd_open(&f, sv[0]) != 0)
		return -1;
	ck_assert_int_eq(write(sv[1], "abc", 3), 3);
	close(sv[1]);
	ck_assert_int_eq(gb_yield(), 0); /* let the loop poll both at once */
	n1 = gb_fd_read(f, buf, sizeof buf, gb_after(GB_SEC(2)));
	n2 = gb_fd_read(f, buf, sizeof buf, gb_after(GB_SEC(2)));
	gb_fd_close(f, 1);
	ck_assert_int_eq(n1, 3);
	ck_assert_int_eq(n2, 0);
	return 0;
}

START_TEST(test_data_and_eof_together)
{
	int sv[2];

	mk_pair(sv);
	TU_RUN(data_then_eof_main, sv, 0);
}
END_TEST

/* SIGPIPE is deliberately left at its default action: if gb_fd_write lets
 * write(2) raise it, check reports this test as killed by signal 13. */
START_TEST(test_epipe_peer_closed)
{
	struct peer_ctx c;
	run_peer(&c, OP_WRITE, 1);
	ck_assert(c.io.done);
	ck_assert_int_eq(c.io.res, -EPIPE);
}
END_TEST

START_TEST(test_epipe_while_waiting)
{
	struct peer_ctx c;
	run_peer(&c, OP_WRITE, 0);
	ck_assert_int_gt(c.filled, 0);
	ck_assert(c.io.done);
	ck_assert_int_eq(c.io.res, -EPIPE);
	ck_assert_int_ge(c.io.t_end - c.io.t_start, GB_MSEC(10));
	ck_assert_int_lt(c.io.t_end - c.io.t_start, GB_SEC(1));
}
END_TEST

/* The same over a pipe, whose writes cannot use send(MSG_NOSIGNAL): with
 * SIGPIPE at its default action, a plain write(2) kills the process. */
struct fifo_ctx {
	int p[2];
	ssize_t wres;
};

static int fifo_main(void *arg)
{
	struct fifo_ctx *c = arg;
	gb_fd *f;
	if (gb_fd_open(&f, c->p[1]) != 0)
		return -1;
	close(c->p[0]);
	c->wres = gb_fd_write(f, "x", 1, gb_after(GB_SEC(5)));
	gb_fd_close(f, 1);
	return 0;
}

START_TEST(test_epipe_pipe)
{
	struct fifo_ctx c;
	memset(&c, 0, sizeof c);
	ck_assert_int_eq(pipe(c.p), 0);
	TU_RUN(fifo_main, &c, 0);
	ck_assert_int_eq(c.wres, -EPIPE);
}
END_TEST

/* --------------------------------------------- gb_fd_open: flags, owner */

struct open_ctx {
	int fd;
	int rc, bad_rc;
	int get;
	int fl_before, fd_before;
	int fl, fdfl;
	int close0_rc, alive_after_close0;
	int close1_rc, alive_after_close1;
};

static int open_main(void *arg)
{
	struct open_ctx *c = arg;
	gb_fd *f = NULL;
	c->fl_before = fcntl(c->fd, F_GETFL);
	c->fd_before = fcntl(c->fd, F_GETFD);
	c->rc = gb_fd_open(&f, c->fd);
	if (c->rc != 0)
		return 0;
	c->get = gb_fd_get(f);
	c->fl = fcntl(c->fd, F_GETFL);
	c->fdfl = fcntl(c->fd, F_GETFD);
	/* close without close_fd leaves the descriptor alone */
	c->close0_rc = gb_fd_close(f, 0);
	c->alive_after_close0 = fcntl(c->fd, F_GETFD) != -1;
	/* re-register, then let gb_fd_close close it */
	if (gb_fd_open(&f, c->fd) != 0)
		return -1;
	c->close1_rc = gb_fd_close(f, 1);
	c->alive_after_close1 = fcntl(c->fd, F_GETFD) != -1;
	gb_fd *bad = NULL;
	c->bad_rc = gb_fd_open(&bad, -1);
	return 0;
}

START_TEST(test_open_flags)
{
	int sv[2];
	struct open_ctx c;
	memset(&c, 0, sizeof c);
	mk_pair(sv);
	c.fd = sv[0];
	TU_RUN(open_main, &c, 0);
	ck_assert_int_eq(c.rc, 0);
	ck_assert_int_eq(c.fl_before & O_NONBLOCK, 0);
	ck_assert_int_eq(c.fd_before & FD_CLOEXEC, 0);
	ck_assert_int_eq(c.get, sv[0]);
	ck_assert_msg(c.fl & O_NONBLOCK, "gb_fd_open did not set O_NONBLOCK");
	ck_assert_msg(c.fdfl & FD_CLOEXEC, "gb_fd_open did not set FD_CLOEXEC");
	ck_assert_int_eq(c.close0_rc, 0);
	ck_assert_msg(c.alive_after_close0, "gb_fd_close(f, 0) closed the fd");
	ck_assert_int_eq(c.close1_rc, 0);
	ck_assert_msg(!c.alive_after_close1, "gb_fd_close(f, 1) left the fd open");
	ck_assert_int_eq(c.bad_rc, -EINVAL);
	close(sv[1]);
}
END_TEST

/* ------------------------------------------------------------------ main */

static Suite *fd_suite(void)
{
	Suite *s = suite_create("gb_fd");
	TCase *tc = tcase_create("io");
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_read_blocks_until_write);
	tcase_add_test(tc, test_optimistic_io);
	tcase_add_test(tc, test_reader_and_writer_share_fd);
	tcase_add_test(tc, test_deadlines);
	tcase_add_test(tc, test_cancel_during_wait);
	tcase_add_test(tc, test_close_wakes_waiters);
	tcase_add_test(tc, test_io_budget_fairness);
	tcase_add_test(tc, test_eof_while_waiting);
	tcase_add_test(tc, test_eof_already);
	tcase_add_test(tc, test_data_and_eof_together);
	tcase_add_test(tc, test_epipe_peer_closed);
	tcase_add_test(tc, test_epipe_while_waiting);
	tcase_add_test(tc, test_open_flags);
	suite_add_tcase(s, tc);

	/* Its own case: with CK_FORK=no a SIGPIPE ends the whole run. */
	TCase *tp = tcase_create("sigpipe");
	tcase_set_timeout(tp, 20);
	tcase_add_test(tp, test_epipe_pipe);
	suite_add_tcase(s, tp);
	return s;
}

int main(void)
{
	return tu_run_suite(fd_suite());
}
