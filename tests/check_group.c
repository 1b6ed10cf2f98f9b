/*
 * check_group.c - task groups: joining, failure propagation, nesting,
 * closing, owner cancellation and scale.
 */
#include <errno.h>
#include <string.h>
#include "testutil.h"

/* Shared state, reset before every test (CK_FORK=no runs them in one
 * process). */
static int rcs[16];
static int counter;
static gb_task *watched;
static int watched_done_seen;

static void reset(void)
{
	memset(rcs, 0, sizeof rcs);
	counter = 0;
	watched = NULL;
	watched_done_seen = 0;
}

/* Lets the other tasks run until g is empty (the caller may be cancelled,
 * so it cannot simply block), for at most 1 s; returns what is left. */
static size_t settle(gb_group *g)
{
	int64_t end = gb_after(GB_SEC(1));
	while (gb_group_size(g) > 0 && gb_now() < end)
		(void)gb_yield();
	return gb_group_size(g);
}

/* settle(), asserting that every child of g has ended. */
static void drain(gb_group *g)
{
	ck_assert_uint_eq(settle(g), 0);
}

/* Asserts that g recorded exactly want[0..n) as its errors. */
static void errors_eq(const gb_group *g, const int *want, size_t n)
{
	int errs[8];
	for (size_t i = 0; i < 8; i++)
		errs[i] = 12345;
	ck_assert_uint_eq(gb_group_errors(g, errs, 8), n);
	for (size_t i = 0; i < n; i++)
		ck_assert_int_eq(errs[i], want[i]);
	ck_assert_int_eq(errs[n], 12345);
}

#define ERRORS_EQ(g, ...) do { \
	const int want_[] = { __VA_ARGS__ }; \
	errors_eq((g), want_, sizeof want_ / sizeof want_[0]); \
} while (0)

/* ------------------------------------------------------ child bodies */

/* Child i: sleeps 10 s, records what gb_sleep returned, counts its exit
 * and returns that value. */
static int sleeper(void *arg)
{
	int i = (int)(intptr_t)arg;
	rcs[i] = gb_sleep(gb_after(GB_SEC(10)));
	counter++;
	return rcs[i];
}

/* Sleeps 10 ms, then fails with the negative errno in arg. */
static int fail_later(void *arg)
{
	ck_assert_int_eq(gb_sleep(gb_after(GB_MSEC(10))), 0);
	counter++;
	return (int)(intptr_t)arg;
}

/* Fails at once with the negative errno in arg. */
static int fail_now(void *arg)
{
	counter++;
	return (int)(intptr_t)arg;
}

/* ------------------------------------------------------------- basics */

static int nap(void *arg)
{
	int ms = (int)(intptr_t)arg;
	ck_assert_int_eq(gb_sleep(gb_after(GB_MSEC(ms))), 0);
	counter++;
	return ms;   /* positive results are successes */
}

static int wait_all_main(void *arg)
{
	(void)arg;
	gb_group *g = tu_group();
	ck_assert_uint_eq(gb_group_size(g), 0);
	tu_go(g, nap, (void *)10);
	tu_go(g, nap, (void *)80);
	tu_go(g, nap, (void *)80);
	ck_assert_uint_eq(gb_group_size(g), 3);
	ck_assert_int_eq(gb_sleep(gb_after(GB_MSEC(40))), 0);
	ck_assert_uint_eq(gb_group_size(g), 2);
	ck_assert_int_eq(counter, 1);
	ck_assert_int_eq(gb_group_wait(g, GB_NEVER), 0);
	ck_assert_int_eq(counter, 3);
	ck_assert_uint_eq(gb_group_size(g), 0);
	ck_assert_uint_eq(gb_group_errors(g, NULL, 0), 0);
	return gb_group_close(g);
}

/* gb_group_wait returns 0 once every child has ended; gb_group_size
 * counts the children still alive. */
START_TEST(test_wait_for_all)
{
	TU_RUN(wait_all_main, NULL, 0);
}
END_TEST

/* ------------------------------------------------------------ failure */

static int failure_main(void *arg)
{
	(void)arg;
	gb_group *g = tu_group();
	tu_go(g, fail_later, (void *)-EIO);
	tu_go(g, sleeper, (void *)1);
	tu_go(g, sleeper, (void *)2);
	int64_t t0 = gb_now();
	ck_assert_int_eq(gb_sleep(gb_after(GB_SEC(5))), -ECANCELED);
	ck_assert_int_le(tu_ms_since(t0), tu_slack_ms(60));
	drain(g);
	ck_assert_int_eq(rcs[1], -ECANCELED);
	ck_assert_int_eq(rcs[2], -ECANCELED);
	ck_assert_int_eq(counter, 3);
	ERRORS_EQ(g, -EIO);   /* the cancelled siblings are not failures */
	ck_assert_int_eq(gb_group_close(g), -EIO);
	ck_assert_int_eq(gb_sleep(gb_after(GB_MSEC(1))), 0);
	return 0;
}

/* A failing child cancels its siblings and the owner's work in the group;
 * close returns its error, and only it is recorded. */
START_TEST(test_failure_cancels_siblings_and_owner)
{
	TU_RUN(failure_main, NULL, 0);
}
END_TEST

static int two_failures_main(void *arg)
{
	(void)arg;
	int errs[2] = { 1, 1 };
	gb_group *g = tu_group();
	tu_go(g, fail_now, (void *)-EIO);
	tu_go(g, fail_now, (void *)-EPERM);
	drain(g);
	ERRORS_EQ(g, -EIO, -EPERM);
	ck_assert_uint_eq(gb_group_errors(g, errs, 1), 2);   /* max honoured */
	ck_assert_int_eq(errs[0], -EIO);
	ck_assert_int_eq(errs[1], 1);
	ck_assert_int_eq(gb_group_close(g), -EIO);
	return 0;
}

/* Two failing children: close returns the first error and
 * gb_group_errors keeps both, first first. */
START_TEST(test_two_failures)
{
	TU_RUN(two_failures_main, NULL, 0);
}
END_TEST

static int fail_when_cancelled(void *arg)
{
	(void)arg;
	rcs[0] = gb_sleep(gb_after(GB_SEC(10)));
	return -EPERM;
}

static int cancelled_other_error_main(void *arg)
{
	(void)arg;
	gb_group *g = tu_group();
	tu_go(g, fail_when_cancelled, NULL);
	tu_go(g, fail_later, (void *)-EIO);
	drain(g);
	ck_assert_int_eq(rcs[0], -ECANCELED);
	ERRORS_EQ(g, -EIO, -EPERM);
	ck_assert_int_eq(gb_group_close(g), -EIO);
	return 0;
}

/* A cancelled child that ends with an error other than -ECANCELED is
 * counted as a failure, after the one that caused the cancel. */
START_TEST(test_cancelled_child_other_error_counts)
{
	TU_RUN(cancelled_other_error_main, NULL, 0);
}
END_TEST

static int uncancelled_ecanceled_main(void *arg)
{
	(void)arg;
	gb_group *g = tu_group();
	tu_go(g, fail_now, (void *)-ECANCELED);
	drain(g);
	ERRORS_EQ(g, -ECANCELED);
	ck_assert_int_eq(gb_group_close(g), -ECANCELED);
	return 0;
}

/* -ECANCELED from a child nobody cancelled is a failure like any other. */
START_TEST(test_uncancelled_ecanceled_is_failure)
{
	TU_RUN(uncancelled_ecanceled_main, NULL, 0);
}
END_TEST

static int failure_in_wait_main(void *arg)
{
	(void)arg;
	gb_group *g = tu_group();
	tu_go(g, fail_later, (void *)-EIO);
	tu_go(g, sleeper, (void *)1);
	int64_t t0 = gb_now();
	ck_assert_int_eq(gb_group_wait(g, GB_NEVER), -EIO);
	ck_assert_int_le(tu_ms_since(t0), tu_slack_ms(60));
	ck_assert_uint_eq(gb_group_size(g), 0);   /* all ended */
	ck_assert_int_eq(counter, 2);
	ck_assert_int_eq(rcs[1], -ECANCELED);
	ERRORS_EQ(g, -EIO);
	ck_assert_int_eq(gb_group_close(g), -EIO);
	return 0;
}

/* A child failing while the owner waits: the wait returns that error
 * (not -ECANCELED), after all children have ended. */
START_TEST(test_failure_during_wait)
{
	TU_RUN(failure_in_wait_main, NULL, 0);
}
END_TEST

/* ------------------------------------------------------- cancellation */

static int owner(void *arg)
{
	(void)arg;
	gb_group *g = tu_group();
	tu_go(g, sleeper, (void *)1);
	tu_go(g, sleeper, (void *)2);
	rcs[0] = gb_group_wait(g, GB_NEVER);
	rcs[4] = (int)settle(g);   /* ended without the help of close */
	rcs[3] = gb_group_close(g);
	return 0;
}

/* Spawns fn(arg) into a new group, cancels that task 10 ms later and
 * checks that the group then closes cleanly within 50 ms. */
static void spawn_then_cancel(gb_fn fn, void *arg)
{
	gb_group *g = tu_group();
	gb_task *h = tu_spawn(g, fn, arg);
	ck_assert_int_eq(gb_sleep(gb_after(GB_MSEC(10))), 0);
	int64_t t0 = gb_now();
	gb_cancel(h);
	ck_assert_int_eq(gb_group_close(g), 0);
	ck_assert_int_le(tu_ms_since(t0), tu_slack_ms(50));
	gb_task_release(h);
}

static int owner_cancel_main(void *arg)
{
	(void)arg;
	spawn_then_cancel(owner, NULL);
	return 0;
}

/* gb_cancel on a group's owner cancels the group's children directly
 * (they end before the owner closes); the owner's wait returns -ECANCELED
 * and its close 0. */
START_TEST(test_cancel_owner_cancels_children)
{
	TU_RUN(owner_cancel_main, NULL, 0);
	ck_assert_int_eq(rcs[0], -ECANCELED);
	ck_assert_int_eq(rcs[1], -ECANCELED);
	ck_assert_int_eq(rcs[2], -ECANCELED);
	ck_assert_int_eq(rcs[3], 0);
	ck_assert_int_eq(rcs[4], 0);
	ck_assert_int_eq(counter, 2);
}
END_TEST

/* Level arg (3, 2, 1 or 0): opens a group holding level arg - 1 when
 * above 0, then sleeps 10 s; records the sleep's result in rcs[level], how
 * many children were left before closing in rcs[4 + level] and the close
 * result in rcs[8 + level]. */
static int level(void *arg)
{
	int lv = (int)(intptr_t)arg;
	gb_group *g = NULL;
	if (lv > 0) {
		g = tu_group();
		tu_go(g, level, (void *)(intptr_t)(lv - 1));
	}
	rcs[lv] = gb_sleep(gb_after(GB_SEC(10)));
	counter++;
	if (g != NULL) {
		rcs[4 + lv] = (int)settle(g);
		rcs[8 + lv] = gb_group_close(g);
	}
	return 0;
}

static int nested_cancel_main(void *arg)
{
	(void)arg;
	spawn_then_cancel(level, (void *)3);
	return 0;
}

/* Cancelling the top child reaches its grandchildren and their children
 * through every nested group, before any of them closes its group. */
START_TEST(test_nested_cancel)
{
	TU_RUN(nested_cancel_main, NULL, 0);
	ck_assert_int_eq(counter, 4);
	for (int lv = 0; lv <= 3; lv++)
		ck_assert_msg(rcs[lv] == -ECANCELED, "level %d slept: %d",
		              lv, rcs[lv]);
	for (int lv = 1; lv <= 3; lv++) {
		ck_assert_int_eq(rcs[4 + lv], 0);
		ck_assert_int_eq(rcs[8 + lv], 0);
	}
}
END_TEST

static int middle(void *arg)
{
	(void)arg;
	gb_group *g = tu_group();
	tu_go(g, fail_later, (void *)-EPERM);
	tu_go(g, sleeper, (void *)2);
	rcs[0] = gb_sleep(gb_after(GB_SEC(5)));
	rcs[1] = gb_group_close(g);
	return rcs[1];
}

static int nested_error_main(void *arg)
{
	(void)arg;
	gb_group *g = tu_group();
	tu_go(g, middle, NULL);
	tu_go(g, sleeper, (void *)3);
	int64_t t0 = gb_now();
	ck_assert_int_eq(gb_sleep(gb_after(GB_SEC(5))), -ECANCELED);
	ck_assert_int_le(tu_ms_since(t0), tu_slack_ms(60));
	drain(g);
	ERRORS_EQ(g, -EPERM);
	ck_assert_int_eq(gb_group_close(g), -EPERM);
	return 0;
}

/* A grandchild's -EPERM becomes its parent's result and then the top
 * group's error, cancelling everything on the way. */
START_TEST(test_nested_error_propagates)
{
	TU_RUN(nested_error_main, NULL, 0);
	ck_assert_int_eq(rcs[0], -ECANCELED);   /* middle's own sleep */
	ck_assert_int_eq(rcs[1], -EPERM);       /* middle's close */
	ck_assert_int_eq(rcs[2], -ECANCELED);   /* grandchild sibling */
	ck_assert_int_eq(rcs[3], -ECANCELED);   /* top-level sibling */
	ck_assert_int_eq(counter, 3);
}
END_TEST

/* --------------------------------------------------------------- close */

static int close_cancels_main(void *arg)
{
	(void)arg;
	gb_group *g = tu_group();
	for (intptr_t i = 1; i <= 3; i++)
		tu_go(g, sleeper, (void *)i);
	ck_assert_int_eq(gb_sleep(gb_after(GB_MSEC(10))), 0);
	int64_t t0 = gb_now();
	ck_assert_int_eq(gb_group_close(g), 0);
	ck_assert_int_le(tu_ms_since(t0), tu_slack_ms(50));
	ck_assert_int_eq(counter, 3);   /* joined */
	return 0;
}

/* gb_group_close cancels children still sleeping and joins them. */
START_TEST(test_close_cancels_and_joins)
{
	TU_RUN(close_cancels_main, NULL, 0);
	for (int i = 1; i <= 3; i++)
		ck_assert_int_eq(rcs[i], -ECANCELED);
}
END_TEST

static int close_unstarted_main(void *arg)
{
	(void)arg;
	gb_group *g = tu_group();
	for (intptr_t i = 1; i <= 3; i++)
		tu_go(g, sleeper, (void *)i);
	int64_t t0 = gb_now();
	ck_assert_int_eq(gb_group_close(g), 0);
	ck_assert_int_le(tu_ms_since(t0), tu_slack_ms(50));
	ck_assert_int_eq(counter, 3);
	return 0;
}

/* Closing a group whose children never ran: they run cancelled and their
 * first blocking call fails at once. */
START_TEST(test_close_before_children_start)
{
	TU_RUN(close_unstarted_main, NULL, 0);
	for (int i = 1; i <= 3; i++)
		ck_assert_int_eq(rcs[i], -ECANCELED);
}
END_TEST

/* Sleeper that also notes whether the watched task had already ended. */
static int watching_sleeper(void *arg)
{
	int rc = sleeper(arg);
	if (gb_task_done(watched, NULL))
		watched_done_seen++;
	return rc;
}

static int leaves_group_open(void *arg)
{
	(void)arg;
	gb_group *g = tu_group();
	for (intptr_t i = 1; i <= 3; i++)
		tu_go(g, watching_sleeper, (void *)i);
	ck_assert_int_eq(gb_yield(), 0);   /* they are asleep now */
	return 0;                          /* g is still open */
}

static int open_at_exit_main(void *arg)
{
	(void)arg;
	gb_group *g = tu_group();
	watched = tu_spawn(g, leaves_group_open, NULL);
	int64_t t0 = gb_now();
	ck_assert_int_eq(gb_group_wait(g, GB_NEVER), 0);
	ck_assert_int_le(tu_ms_since(t0), tu_slack_ms(50));
	ck_assert_int_eq(counter, 3);
	ck_assert_int_eq(gb_task_done(watched, NULL), 1);
	ck_assert_int_eq(gb_group_close(g), 0);
	gb_task_release(watched);
	return 0;
}

/* A task returning with a group open closes it first: its children are
 * cancelled and joined before the task counts as ended. */
START_TEST(test_task_ends_with_open_group)
{
	TU_RUN(open_at_exit_main, NULL, 0);
	ck_assert_int_eq(watched_done_seen, 0);
	for (int i = 1; i <= 3; i++)
		ck_assert_int_eq(rcs[i], -ECANCELED);
}
END_TEST

static int main_leaves_group_open(void *arg)
{
	(void)arg;
	gb_group *g = tu_group();
	for (intptr_t i = 1; i <= 3; i++)
		tu_go(g, sleeper, (void *)i);
	return 5;
}

/* gb_run returns only once every task has ended, even when main returns
 * with its group open. */
START_TEST(test_run_joins_all_tasks)
{
	TU_RUN(main_leaves_group_open, NULL, 5);
	ck_assert_int_eq(counter, 3);
	for (int i = 1; i <= 3; i++)
		ck_assert_int_eq(rcs[i], -ECANCELED);
}
END_TEST

/* --------------------------------------------------------------- misc */

static int count_up(void *arg)
{
	(void)arg;
	counter++;
	return 0;
}

static int many_main(void *arg)
{
	int n = *(const int *)arg;
	gb_group *g = tu_group();
	for (int i = 0; i < n; i++)
		tu_go(g, count_up, NULL);
	ck_assert_uint_eq(gb_group_size(g), (size_t)n);
	ck_assert_int_eq(counter, 0);
	ck_assert_int_eq(gb_group_wait(g, GB_NEVER), 0);
	ck_assert_int_eq(counter, n);
	return gb_group_close(g);
}

/* 10 000 tasks spawned into one group all run and are joined, fast. */
START_TEST(test_ten_thousand_tasks)
{
	int n = tu_under_valgrind() ? 1000 : 10000;
	int64_t t0 = gb_now();
	TU_RUN(many_main, &n, 0);
	ck_assert_int_eq(counter, n);
	ck_assert_int_lt(tu_ms_since(t0), 5000);
}
END_TEST

static int note_cancelled(void *arg)
{
	(void)arg;
	rcs[0] = gb_cancelled(gb_self());
	rcs[1] = gb_yield();
	counter++;
	return 0;
}

static int spawn_cancelled_main(void *arg)
{
	(void)arg;
	gb_group *g = tu_group();
	gb_group_cancel(g);
	gb_task *h = tu_spawn(g, note_cancelled, NULL);
	ck_assert_int_eq(gb_cancelled(h), 1);
	ck_assert_int_eq(gb_group_close(g), 0);
	gb_task_release(h);
	return 0;
}

/* A task spawned into a cancelled group starts cancelled. */
START_TEST(test_spawn_into_cancelled_group)
{
	TU_RUN(spawn_cancelled_main, NULL, 0);
	ck_assert_int_eq(counter, 1);
	ck_assert_int_eq(rcs[0], 1);
	ck_assert_int_eq(rcs[1], -ECANCELED);
}
END_TEST

static int group_cancel_main(void *arg)
{
	(void)arg;
	gb_group *g = tu_group();
	tu_go(g, sleeper, (void *)1);
	tu_go(g, sleeper, (void *)2);
	ck_assert_int_eq(gb_yield(), 0);
	int64_t t0 = gb_now();
	gb_group_cancel(g);
	ck_assert_int_eq(gb_group_close(g), 0);
	ck_assert_int_le(tu_ms_since(t0), tu_slack_ms(50));
	return 0;
}

/* gb_group_cancel cancels the running children; -ECANCELED results after
 * a cancel are not errors. */
START_TEST(test_group_cancel)
{
	TU_RUN(group_cancel_main, NULL, 0);
	ck_assert_int_eq(rcs[1], -ECANCELED);
	ck_assert_int_eq(rcs[2], -ECANCELED);
	ck_assert_int_eq(counter, 2);
}
END_TEST

static Suite *group_suite(void)
{
	Suite *s = suite_create("group");
	TCase *tc = tcase_create("core");
	tcase_add_checked_fixture(tc, reset, NULL);
	tcase_add_test(tc, test_wait_for_all);
	tcase_add_test(tc, test_failure_cancels_siblings_and_owner);
	tcase_add_test(tc, test_two_failures);
	tcase_add_test(tc, test_cancelled_child_other_error_counts);
	tcase_add_test(tc, test_uncancelled_ecanceled_is_failure);
	tcase_add_test(tc, test_failure_during_wait);
	tcase_add_test(tc, test_cancel_owner_cancels_children);
	tcase_add_test(tc, test_nested_cancel);
	tcase_add_test(tc, test_nested_error_propagates);
	tcase_add_test(tc, test_close_cancels_and_joins);
	tcase_add_test(tc, test_close_before_children_start);
	tcase_add_test(tc, test_task_ends_with_open_group);
	tcase_add_test(tc, test_run_joins_all_tasks);
	tcase_add_test(tc, test_ten_thousand_tasks);
	tcase_add_test(tc, test_spawn_into_cancelled_group);
	tcase_add_test(tc, test_group_cancel);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run_suite(group_suite());
}
