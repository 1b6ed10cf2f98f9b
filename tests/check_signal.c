/*
 * check_signal.c - signals reach a waiting task through the scheduler.
 */
#include <errno.h>
#include <signal.h>
#include <unistd.h>

#include "testutil.h"

static int raiser(void *arg)
{
	int *sigs = arg;

	for (int i = 0; sigs[i]; i++) {
		gb_sleep(gb_after(GB_MSEC(10)));
		raise(sigs[i]);
	}
	return 0;
}

/* Two signals raised apart while the task waits arrive in order of
 * arrival (SIGUSR1 before the lower-numbered SIGHUP). */
static int wait_two(void *arg)
{
	static int sigs[] = { SIGUSR1, SIGHUP, 0 };
	int want[] = { SIGUSR1, SIGHUP, SIGTERM };
	gb_signals *s;
	gb_group *g;

	(void)arg;
	ck_assert_int_eq(gb_signals_open(&s, want, 3), 0);
	ck_assert_int_eq(gb_group_open(&g), 0);
	ck_assert_int_eq(gb_spawn(g, raiser, sigs, NULL, NULL), 0);
	ck_assert_int_eq(gb_signals_wait(s, gb_after(GB_SEC(5))), SIGUSR1);
	ck_assert_int_eq(gb_signals_wait(s, gb_after(GB_SEC(5))), SIGHUP);
	ck_assert_int_eq(gb_group_close(g), 0);
	gb_signals_close(s);
	return 0;
}

START_TEST(signals_arrive_in_order)
{
	TU_RUN(wait_two, NULL, 0);
}
END_TEST

/* Nothing pending: the wait honours its deadline and cancellation. */
static int wait_timeout(void *arg)
{
	int sig = SIGUSR2;
	gb_signals *s;

	(void)arg;
	ck_assert_int_eq(gb_signals_open(&s, &sig, 1), 0);
	ck_assert_int_eq(gb_signals_wait(s, gb_after(GB_MSEC(20))), -ETIMEDOUT);
	gb_cancel(gb_self());
	ck_assert_int_eq(gb_signals_wait(s, GB_NEVER), -ECANCELED);
	gb_signals_close(s);
	return 0;
}

START_TEST(signal_wait_deadline_and_cancel)
{
	TU_RUN(wait_timeout, NULL, 0);
}
END_TEST

/* A signal raised before anyone waits is kept, not lost. */
static int pending_first(void *arg)
{
	int sig = SIGUSR1;
	gb_signals *s;

	(void)arg;
	ck_assert_int_eq(gb_signals_open(&s, &sig, 1), 0);
	raise(SIGUSR1);
	ck_assert_int_eq(gb_sleep(gb_after(GB_MSEC(10))), 0);
	ck_assert_int_eq(gb_signals_wait(s, gb_after(GB_MSEC(100))), SIGUSR1);
	gb_signals_close(s);
	return 0;
}

START_TEST(signal_before_wait_is_kept)
{
	TU_RUN(pending_first, NULL, 0);
}
END_TEST

/* After close the previous disposition is back (here: ignored). */
static int restore(void *arg)
{
	int sig = SIGUSR1;
	gb_signals *s;

	(void)arg;
	ck_assert_int_eq(gb_signals_open(&s, &sig, 1), 0);
	gb_signals_close(s);
	raise(SIGUSR1); /* ignored, so the test survives */
	return 0;
}

START_TEST(signal_close_restores_disposition)
{
	signal(SIGUSR1, SIG_IGN);
	TU_RUN(restore, NULL, 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("signal");
	TCase *tc = tcase_create("signal");

	tcase_add_test(tc, signals_arrive_in_order);
	tcase_add_test(tc, signal_wait_deadline_and_cancel);
	tcase_add_test(tc, signal_before_wait_is_kept);
	tcase_add_test(tc, signal_close_restores_disposition);
	suite_add_tcase(s, tc);
	return tu_run_suite(s);
}
