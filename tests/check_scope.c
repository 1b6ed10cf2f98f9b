/*
 * check_scope.c - cancel scopes: deadlines on every blocking call,
 * gb_scope_cancel, shields, nesting and moving deadlines.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "testutil.h"

/* Shared state, reset before every test (CK_FORK=no runs them in one
 * process). */
static int rcs[8];
static int counter;

static void reset(void)
{
	memset(rcs, 0, sizeof rcs);
	counter = 0;
}

/* Asserts rc is -ETIMEDOUT, returned no earlier than deadline and within
 * a generous bound after it. */
static void expect_timeout_at(int rc, int64_t deadline)
{
	int64_t now = gb_now();
	ck_assert_int_eq(rc, -ETIMEDOUT);
	ck_assert_int_ge(now, deadline);
	ck_assert_int_le(now - deadline, GB_MSEC(tu_slack_ms(30)));
}

/* Asserts rc == want, returned at once (within a few ms of t0). */
static void expect_at_once(int rc, int want, int64_t t0)
{
	ck_assert_int_eq(rc, want);
	ck_assert_int_le(tu_ms_since(t0), tu_slack_ms(5));
}

/* ----------------------------------------------------------- deadline */

static int timeout_main(void *arg)
{
	(void)arg;
	gb_scope s;
	int64_t d = gb_after(GB_MSEC(20));
	gb_scope_enter(&s, d, 0);
	expect_timeout_at(gb_sleep(gb_after(GB_SEC(5))), d);
	int64_t t0 = gb_now();
	expect_at_once(gb_sleep(gb_after(GB_MSEC(50))), -ETIMEDOUT, t0);
	expect_at_once(gb_sleep(GB_NEVER), -ETIMEDOUT, t0);
	ck_assert_int_eq(gb_scope_leave(&s), -ETIMEDOUT);
	ck_assert_int_eq(gb_sleep(gb_after(GB_MSEC(5))), 0);
	ck_assert_int_eq(gb_cancelled(gb_self()), 0);
	return 0;
}

/* A scope deadline cuts a longer sleep short with -ETIMEDOUT, later calls
 * fail at once, leave reports it, and blocking works after leaving. */
START_TEST(test_scope_timeout)
{
	TU_RUN(timeout_main, NULL, 0);
}
END_TEST

static int never_main(void *arg)
{
	(void)arg;
	gb_scope s;
	gb_scope_enter(&s, GB_NEVER, 0);
	ck_assert_int_eq(gb_sleep(gb_after(GB_MSEC(5))), 0);
	ck_assert_int_eq(gb_yield(), 0);
	ck_assert_int_eq(gb_scope_leave(&s), 0);
	gb_scope_enter(&s, gb_after(GB_SEC(5)), 0);
	int64_t t0 = gb_now();
	ck_assert_int_eq(gb_sleep(gb_after(GB_MSEC(5))), 0);
	ck_assert_int_le(tu_ms_since(t0), tu_slack_ms(25));
	ck_assert_int_eq(gb_scope_leave(&s), 0);
	return 0;
}

/* A scope whose deadline never passes leaves with 0 and lets shorter
 * sleeps complete on their own deadline. */
START_TEST(test_scope_not_expired)
{
	TU_RUN(never_main, NULL, 0);
}
END_TEST

static int yield_expired_main(void *arg)
{
	(void)arg;
	gb_scope s;
	gb_scope_enter(&s, gb_after(GB_MSEC(10)), 0);
	rcs[0] = gb_sleep(GB_NEVER);
	rcs[1] = gb_cancelled(gb_self());
	rcs[2] = gb_yield();
	rcs[3] = gb_sleep(GB_NEVER);
	rcs[4] = gb_scope_leave(&s);
	return 0;
}

/* gb_yield is a checkpoint: inside an expired scope it still yields, then
 * reports the scope's -ETIMEDOUT like every other checkpoint, although the
 * task itself is not cancelled. (Checked after gb_run so that a failure
 * cannot leave the scheduler running.) */
START_TEST(test_yield_in_expired_scope)
{
	TU_RUN(yield_expired_main, NULL, 0);
	ck_assert_int_eq(rcs[0], -ETIMEDOUT);
	ck_assert_int_eq(rcs[1], 0);
	ck_assert_int_eq(rcs[3], -ETIMEDOUT);
	ck_assert_int_eq(rcs[4], -ETIMEDOUT);
	ck_assert_int_eq(rcs[2], -ETIMEDOUT);
}
END_TEST

/* ------------------------------------------------------------- groups */

static int slow_child(void *arg)
{
	(void)arg;
	ck_assert_int_eq(gb_sleep(gb_after(GB_MSEC(60))), 0);
	counter++;
	return 0;
}

static int group_wait_deadline_main(void *arg)
{
	(void)arg;
	gb_group *g = tu_group();
	tu_go(g, slow_child, NULL);
	tu_go(g, slow_child, NULL);
	int64_t d = gb_after(GB_MSEC(20));
	expect_timeout_at(gb_group_wait(g, d), d);
	ck_assert_uint_eq(gb_group_size(g), 2);
	ck_assert_int_eq(counter, 0);
	ck_assert_int_eq(gb_group_wait(g, GB_NEVER), 0);   /* they kept on */
	ck_assert_int_eq(counter, 2);
	ck_assert_uint_eq(gb_group_size(g), 0);
	return gb_group_close(g);
}

/* gb_group_wait's own deadline gives -ETIMEDOUT and leaves the children
 * running to completion. */
START_TEST(test_group_wait_deadline)
{
	TU_RUN(group_wait_deadline_main, NULL, 0);
}
END_TEST

static int group_wait_scope_main(void *arg)
{
	(void)arg;
	gb_group *g = tu_group();
	tu_go(g, slow_child, NULL);
	tu_go(g, slow_child, NULL);
	gb_scope s;
	int64_t d = gb_after(GB_MSEC(20));
	gb_scope_enter(&s, d, 0);
	expect_timeout_at(gb_group_wait(g, GB_NEVER), d);
	ck_assert_int_eq(gb_scope_leave(&s), -ETIMEDOUT);
	ck_assert_uint_eq(gb_group_size(g), 2);
	ck_assert_int_eq(counter, 0);
	ck_assert_int_eq(gb_group_wait(g, GB_NEVER), 0);
	ck_assert_int_eq(counter, 2);
	return gb_group_close(g);
}

/* An enclosing scope's deadline interrupts gb_group_wait(GB_NEVER) with
 * -ETIMEDOUT without touching the children. */
START_TEST(test_group_wait_scope_deadline)
{
	TU_RUN(group_wait_scope_main, NULL, 0);
}
END_TEST

/* ---------------------------------------------------------------- fds */

static int sv[2];

static gb_fd *open_pair(void)
{
	gb_fd *f = NULL;
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_int_eq(gb_fd_open(&f, sv[0]), 0);
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(gb_fd_get(f), sv[0]);
	return f;
}

static void close_pair(gb_fd *f)
{
	ck_assert_int_eq(gb_fd_close(f, 1), 0);
	ck_assert_int_eq(close(sv[1]), 0);
}

static int fd_wait_main(void *arg)
{
	(void)arg;
	gb_fd *f = open_pair();
	int64_t d = gb_after(GB_MSEC(20));
	expect_timeout_at(gb_fd_wait(f, GB_READ, d), d);
	close_pair(f);
	return 0;
}

/* gb_fd_wait on a socket that never becomes readable times out. */
START_TEST(test_fd_wait_deadline)
{
	TU_RUN(fd_wait_main, NULL, 0);
}
END_TEST

static int fd_read_main(void *arg)
{
	(void)arg;
	char buf[16];
	gb_fd *f = open_pair();
	int64_t d = gb_after(GB_MSEC(20));
	expect_timeout_at((int)gb_fd_read(f, buf, sizeof buf, d), d);
	close_pair(f);
	return 0;
}

/* gb_fd_read with nothing to read times out at its deadline. */
START_TEST(test_fd_read_deadline)
{
	TU_RUN(fd_read_main, NULL, 0);
}
END_TEST

/* Fills fd's send buffer until write(2) says EAGAIN. */
static void fill_socket(int fd)
{
	static char junk[4096];
	int fl = fcntl(fd, F_GETFL);
	ck_assert_int_ge(fl, 0);
	ck_assert_int_eq(fcntl(fd, F_SETFL, fl | O_NONBLOCK), 0);
	for (;;) {
		ssize_t n = write(fd, junk, sizeof junk);
		if (n < 0) {
			ck_assert(errno == EAGAIN || errno == EWOULDBLOCK);
			return;
		}
	}
}

static int fd_write_main(void *arg)
{
	(void)arg;
	char buf[4096] = { 0 };
	gb_fd *f = NULL;
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	fill_socket(sv[0]);
	ck_assert_int_eq(gb_fd_open(&f, sv[0]), 0);
	int64_t d = gb_after(GB_MSEC(20));
	expect_timeout_at((int)gb_fd_write(f, buf, sizeof buf, d), d);
	gb_fd_unready(f, GB_WRITE);
	d = gb_after(GB_MSEC(20));
	expect_timeout_at(gb_fd_wait(f, GB_WRITE, d), d);
	close_pair(f);
	return 0;
}

/* gb_fd_write (and gb_fd_wait for writing) on a full socket time out. */
START_TEST(test_fd_write_deadline)
{
	TU_RUN(fd_write_main, NULL, 0);
}
END_TEST

static int fd_scope_main(void *arg)
{
	(void)arg;
	char buf[16];
	gb_fd *f = open_pair();
	gb_scope s;
	int64_t d = gb_after(GB_MSEC(20));
	gb_scope_enter(&s, d, 0);
	expect_timeout_at((int)gb_fd_read(f, buf, sizeof buf, GB_NEVER), d);
	int64_t t0 = gb_now();
	expect_at_once(gb_fd_wait(f, GB_READ, GB_NEVER), -ETIMEDOUT, t0);
	ck_assert_int_eq(gb_scope_leave(&s), -ETIMEDOUT);
	ck_assert_int_eq(write(sv[1], "hi", 2), 2);
	ck_assert_int_eq(gb_fd_read(f, buf, sizeof buf, gb_after(GB_SEC(5))), 2);
	ck_assert_int_eq(memcmp(buf, "hi", 2), 0);
	close_pair(f);
	return 0;
}

/* A scope deadline also ends fd waits that have none of their own; after
 * leaving the scope, reading works. */
START_TEST(test_fd_scope_deadline)
{
	TU_RUN(fd_scope_main, NULL, 0);
}
END_TEST

/* ------------------------------------------------------- scope cancel */

static int scope_canceller(void *arg)
{
	ck_assert_int_eq(gb_sleep(gb_after(GB_MSEC(10))), 0);
	gb_scope_cancel(arg);
	counter++;
	return 0;
}

static int scope_cancel_main(void *arg)
{
	(void)arg;
	gb_group *g = tu_group();
	gb_scope s;
	gb_scope_enter(&s, GB_NEVER, 0);
	tu_go(g, scope_canceller, &s);
	int64_t t0 = gb_now();
	ck_assert_int_eq(gb_sleep(gb_after(GB_SEC(5))), -ECANCELED);
	ck_assert_int_le(tu_ms_since(t0), tu_slack_ms(50));
	ck_assert_int_eq(counter, 1);
	ck_assert_int_eq(gb_sleep(gb_after(GB_MSEC(1))), -ECANCELED);
	ck_assert_int_eq(gb_scope_leave(&s), -ECANCELED);
	ck_assert_int_eq(gb_cancelled(gb_self()), 0);   /* only the scope */
	ck_assert_int_eq(gb_sleep(gb_after(GB_MSEC(1))), 0);
	return gb_group_close(g);
}

/* gb_scope_cancel from another task wakes the sleeper with -ECANCELED,
 * leave reports -ECANCELED, and the task is not cancelled afterwards. */
START_TEST(test_scope_cancel_from_other_task)
{
	TU_RUN(scope_cancel_main, NULL, 0);
}
END_TEST

static int scope_cancel_self_main(void *arg)
{
	(void)arg;
	gb_scope s;
	gb_scope_enter(&s, gb_after(GB_MSEC(1)), 0);
	gb_scope_cancel(&s);
	int64_t t0 = gb_now();
	expect_at_once(gb_sleep(gb_after(GB_SEC(5))), -ECANCELED, t0);
	ck_assert_int_eq(gb_scope_leave(&s), -ECANCELED);
	ck_assert_int_eq(gb_sleep(gb_after(GB_MSEC(1))), 0);
	return 0;
}

/* A scope cancelled by its own task fails its blocking calls at once and
 * leave reports -ECANCELED. */
START_TEST(test_scope_cancel_self)
{
	TU_RUN(scope_cancel_self_main, NULL, 0);
}
END_TEST

/* ------------------------------------------------------------ shields */

static int shielded_cleanup(void *arg)
{
	(void)arg;
	gb_scope s;
	rcs[0] = gb_sleep(gb_after(GB_SEC(5)));
	gb_scope_enter(&s, GB_NEVER, GB_SHIELD);
	int64_t t0 = gb_now();
	rcs[1] = gb_sleep(gb_after(GB_MSEC(10)));
	ck_assert_int_ge(tu_ms_since(t0), 10);
	rcs[2] = gb_yield();
	rcs[3] = gb_scope_leave(&s);
	rcs[4] = gb_sleep(gb_after(GB_MSEC(1)));
	rcs[5] = gb_yield();
	ck_assert_int_eq(gb_cancelled(gb_self()), 1);
	return 0;
}

/* Spawns *(gb_fn *)arg, lets it block for 10 ms, cancels it, joins it. */
static int cancel_child_main(void *arg)
{
	gb_group *g = tu_group();
	gb_task *h = tu_spawn(g, *(gb_fn *)arg, NULL);
	ck_assert_int_eq(gb_sleep(gb_after(GB_MSEC(10))), 0);
	gb_cancel(h);
	ck_assert_int_eq(gb_group_close(g), 0);
	gb_task_release(h);
	return 0;
}

/* A cancelled task can block normally inside a shield; after leaving it,
 * its blocking calls return -ECANCELED again. */
START_TEST(test_shield_cleanup)
{
	gb_fn fn = shielded_cleanup;
	TU_RUN(cancel_child_main, &fn, 0);
	ck_assert_int_eq(rcs[0], -ECANCELED);
	ck_assert_int_eq(rcs[1], 0);
	ck_assert_int_eq(rcs[2], 0);
	ck_assert_int_eq(rcs[3], 0);
	ck_assert_int_eq(rcs[4], -ECANCELED);
	ck_assert_int_eq(rcs[5], -ECANCELED);
}
END_TEST

static int shield_first(void *arg)
{
	(void)arg;
	gb_scope s;
	gb_scope_enter(&s, GB_NEVER, GB_SHIELD);
	int64_t t0 = gb_now();
	rcs[0] = gb_sleep(gb_after(GB_MSEC(40)));
	ck_assert_int_ge(tu_ms_since(t0), 40);
	rcs[1] = gb_scope_leave(&s);
	t0 = gb_now();
	rcs[2] = gb_sleep(gb_after(GB_SEC(5)));
	ck_assert_int_le(tu_ms_since(t0), tu_slack_ms(5));
	return 0;
}

/* A cancel that arrives while the task sleeps inside a shield does not
 * interrupt it; it takes effect once the shield is left. */
START_TEST(test_shield_cancel_arrives_inside)
{
	gb_fn fn = shield_first;
	TU_RUN(cancel_child_main, &fn, 0);
	ck_assert_int_eq(rcs[0], 0);
	ck_assert_int_eq(rcs[1], 0);
	ck_assert_int_eq(rcs[2], -ECANCELED);
}
END_TEST

static int shield_deadline_main(void *arg)
{
	(void)arg;
	gb_scope s;
	gb_cancel(gb_self());
	ck_assert_int_eq(gb_sleep(gb_after(GB_SEC(5))), -ECANCELED);
	int64_t d = gb_after(GB_MSEC(20));
	gb_scope_enter(&s, d, GB_SHIELD);
	expect_timeout_at(gb_sleep(gb_after(GB_SEC(5))), d);
	ck_assert_int_eq(gb_scope_leave(&s), -ETIMEDOUT);
	ck_assert_int_eq(gb_sleep(gb_after(GB_MSEC(1))), -ECANCELED);
	return 0;
}

/* A shield with its own deadline still times out (and reports it). */
START_TEST(test_shield_own_deadline)
{
	TU_RUN(shield_deadline_main, NULL, 0);
}
END_TEST

static int shield_outer_main(void *arg)
{
	(void)arg;
	gb_scope outer, inner;
	gb_scope_enter(&outer, gb_after(GB_MSEC(10)), 0);
	gb_scope_enter(&inner, GB_NEVER, GB_SHIELD);
	ck_assert_int_eq(gb_sleep(gb_after(GB_MSEC(30))), 0);
	ck_assert_int_eq(gb_scope_leave(&inner), 0);
	int64_t t0 = gb_now();
	expect_at_once(gb_sleep(gb_after(GB_SEC(5))), -ETIMEDOUT, t0);
	ck_assert_int_eq(gb_scope_leave(&outer), -ETIMEDOUT);
	return 0;
}

/* A shield also hides an outer scope's deadline. */
START_TEST(test_shield_hides_outer_deadline)
{
	TU_RUN(shield_outer_main, NULL, 0);
}
END_TEST

/* ------------------------------------------------------------ nesting */

static int outer_wins_main(void *arg)
{
	(void)arg;
	gb_scope outer, inner;
	int64_t d = gb_after(GB_MSEC(20));
	gb_scope_enter(&outer, d, 0);
	gb_scope_enter(&inner, gb_after(GB_SEC(5)), 0);
	expect_timeout_at(gb_sleep(GB_NEVER), d);
	int64_t t0 = gb_now();
	expect_at_once(gb_sleep(gb_after(GB_MSEC(50))), -ETIMEDOUT, t0);
	ck_assert_int_eq(gb_scope_leave(&inner), 0);   /* its deadline held */
	expect_at_once(gb_sleep(gb_after(GB_MSEC(50))), -ETIMEDOUT, t0);
	ck_assert_int_eq(gb_scope_leave(&outer), -ETIMEDOUT);
	ck_assert_int_eq(gb_sleep(gb_after(GB_MSEC(1))), 0);
	return 0;
}

/* With nested scopes the earlier (outer) deadline wins; only the scope
 * whose deadline passed reports -ETIMEDOUT on leave. */
START_TEST(test_nested_outer_deadline_wins)
{
	TU_RUN(outer_wins_main, NULL, 0);
}
END_TEST

static int inner_wins_main(void *arg)
{
	(void)arg;
	gb_scope outer, inner;
	gb_scope_enter(&outer, gb_after(GB_SEC(5)), 0);
	int64_t d = gb_after(GB_MSEC(10));
	gb_scope_enter(&inner, d, 0);
	expect_timeout_at(gb_sleep(GB_NEVER), d);
	ck_assert_int_eq(gb_scope_leave(&inner), -ETIMEDOUT);
	ck_assert_int_eq(gb_sleep(gb_after(GB_MSEC(5))), 0);
	ck_assert_int_eq(gb_scope_leave(&outer), 0);
	return 0;
}

/* An inner scope's earlier deadline only ends the inner scope. */
START_TEST(test_nested_inner_deadline_wins)
{
	TU_RUN(inner_wins_main, NULL, 0);
}
END_TEST

/* -------------------------------------------------------- set_deadline */

static int set_earlier_main(void *arg)
{
	(void)arg;
	gb_scope s;
	gb_scope_enter(&s, gb_after(GB_SEC(5)), 0);
	int64_t d = gb_after(GB_MSEC(20));
	gb_scope_set_deadline(&s, d);
	expect_timeout_at(gb_sleep(GB_NEVER), d);
	ck_assert_int_eq(gb_scope_leave(&s), -ETIMEDOUT);
	return 0;
}

/* gb_scope_set_deadline moves a deadline earlier (set before blocking). */
START_TEST(test_set_deadline_earlier)
{
	TU_RUN(set_earlier_main, NULL, 0);
}
END_TEST

static int set_later_main(void *arg)
{
	(void)arg;
	gb_scope s;
	gb_scope_enter(&s, gb_after(GB_MSEC(10)), 0);
	gb_scope_set_deadline(&s, gb_after(GB_SEC(5)));
	int64_t t0 = gb_now();
	ck_assert_int_eq(gb_sleep(gb_after(GB_MSEC(30))), 0);
	ck_assert_int_ge(tu_ms_since(t0), 30);
	ck_assert_int_eq(gb_scope_leave(&s), 0);
	return 0;
}

/* gb_scope_set_deadline moves a deadline later (set before blocking). */
START_TEST(test_set_deadline_later)
{
	TU_RUN(set_later_main, NULL, 0);
}
END_TEST

static Suite *scope_suite(void)
{
	Suite *s = suite_create("scope");
	TCase *tc = tcase_create("core");
	tcase_add_checked_fixture(tc, reset, NULL);
	tcase_add_test(tc, test_scope_timeout);
	tcase_add_test(tc, test_scope_not_expired);
	tcase_add_test(tc, test_yield_in_expired_scope);
	tcase_add_test(tc, test_group_wait_deadline);
	tcase_add_test(tc, test_group_wait_scope_deadline);
	tcase_add_test(tc, test_fd_wait_deadline);
	tcase_add_test(tc, test_fd_read_deadline);
	tcase_add_test(tc, test_fd_write_deadline);
	tcase_add_test(tc, test_fd_scope_deadline);
	tcase_add_test(tc, test_scope_cancel_from_other_task);
	tcase_add_test(tc, test_scope_cancel_self);
	tcase_add_test(tc, test_shield_cleanup);
	tcase_add_test(tc, test_shield_cancel_arrives_inside);
	tcase_add_test(tc, test_shield_own_deadline);
	tcase_add_test(tc, test_shield_hides_outer_deadline);
	tcase_add_test(tc, test_nested_outer_deadline_wins);
	tcase_add_test(tc, test_nested_inner_deadline_wins);
	tcase_add_test(tc, test_set_deadline_earlier);
	tcase_add_test(tc, test_set_deadline_later);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run_suite(scope_suite());
}
