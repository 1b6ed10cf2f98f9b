/*
 * check_task.c - tasks: gb_run, spawning, FIFO scheduling, sleeping,
 * identity, results, cancellation and hooks.
 */
#include <errno.h>
#include <string.h>
#include "testutil.h"

/* Shared state, reset before every test (CK_FORK=no runs them in one
 * process). */
static struct tu_log lg;
static int rcs[8];
static int64_t stamps[8];
static int ran;
static gb_task *selves[8];

static void reset(void)
{
	memset(&lg, 0, sizeof lg);
	memset(rcs, 0, sizeof rcs);
	memset(stamps, 0, sizeof stamps);
	memset(selves, 0, sizeof selves);
	ran = 0;
	gb_set_hooks(NULL);
}

static void teardown(void)
{
	gb_set_hooks(NULL);
}

/* ------------------------------------------------------------ gb_run */

static const int run_results[] = { 0, 42, -EIO };

static int return_arg(void *arg)
{
	return *(const int *)arg;
}

/* gb_run returns main's result: zero, positive and negative alike. */
START_TEST(test_run_returns_main_result)
{
	int want = run_results[_i];
	TU_RUN(return_arg, &want, want);
}
END_TEST

static int mark_ran(void *arg)
{
	(void)arg;
	ran = 1;
	return 0;
}

static int nested_run_main(void *arg)
{
	(void)arg;
	ck_assert_int_eq(gb_run(mark_ran, NULL), -EBUSY);
	ck_assert_int_eq(ran, 0);
	return 7;
}

/* gb_run from inside a task is refused with -EBUSY and runs nothing. */
START_TEST(test_run_while_running_busy)
{
	TU_RUN(nested_run_main, NULL, 7);
	ck_assert_int_eq(ran, 0);
	/* The scheduler is usable again once the first run has returned. */
	TU_RUN(mark_ran, NULL, 0);
	ck_assert_int_eq(ran, 1);
}
END_TEST

/* --------------------------------------------------------- scheduling */

static int yield_logger(void *arg)
{
	int id = (int)(intptr_t)arg;
	for (int k = 0; k < 3; k++) {
		tu_log_add(&lg, id);
		ck_assert_int_eq(gb_yield(), 0);
	}
	return 0;
}

static int fifo_main(void *arg)
{
	(void)arg;
	gb_group *g = tu_group();
	for (intptr_t id = 1; id <= 3; id++)
		tu_go(g, yield_logger, (void *)id);
	tu_log_add(&lg, 0);   /* the parent runs on after spawning */
	for (int k = 0; k < 2; k++) {
		ck_assert_int_eq(gb_yield(), 0);
		tu_log_add(&lg, 0);
	}
	ck_assert_int_eq(gb_group_wait(g, GB_NEVER), 0);
	return gb_group_close(g);
}

/* Tasks start in spawn order after the parent yields, and yielding tasks
 * interleave in strict FIFO order. */
START_TEST(test_fifo_interleaving)
{
	TU_RUN(fifo_main, NULL, 0);
	TU_LOG_EQ(&lg, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3);
}
END_TEST

static int sleep_logger(void *arg)
{
	int ms = (int)(intptr_t)arg;
	ck_assert_int_eq(gb_sleep(gb_after(GB_MSEC(ms))), 0);
	tu_log_add(&lg, ms);
	return 0;
}

static int sleep_order_main(void *arg)
{
	(void)arg;
	gb_group *g = tu_group();
	tu_go(g, sleep_logger, (void *)(intptr_t)30);
	tu_go(g, sleep_logger, (void *)(intptr_t)10);
	tu_go(g, sleep_logger, (void *)(intptr_t)20);
	ck_assert_int_eq(gb_group_wait(g, GB_NEVER), 0);
	return gb_group_close(g);
}

/* Sleepers wake in deadline order, not in spawn order. */
START_TEST(test_sleep_order)
{
	TU_RUN(sleep_order_main, NULL, 0);
	TU_LOG_EQ(&lg, 10, 20, 30);
}
END_TEST

static int sleep_precision_main(void *arg)
{
	(void)arg;
	for (int k = 0; k < 3; k++) {
		int64_t d = gb_after(GB_MSEC(20));
		ck_assert_int_eq(gb_sleep(d), 0);
		int64_t now = gb_now();
		ck_assert_int_ge(now, d);
		ck_assert_int_le(now - d, GB_MSEC(tu_slack_ms(15)));
	}
	/* A deadline already in the past is reached at once. */
	int64_t t0 = gb_now();
	ck_assert_int_eq(gb_sleep(t0 - GB_MSEC(1)), 0);
	ck_assert_int_le(tu_ms_since(t0), tu_slack_ms(5));
	return 0;
}

/* gb_sleep never wakes early and wakes within 15 ms of its deadline. */
START_TEST(test_sleep_precision)
{
	TU_RUN(sleep_precision_main, NULL, 0);
}
END_TEST

/* ----------------------------------------------------------- identity */

static int record_self(void *arg)
{
	selves[(intptr_t)arg] = gb_self();
	return 0;
}

static int ids_main(void *arg)
{
	(void)arg;
	gb_task *me = gb_self();
	ck_assert_ptr_nonnull(me);
	ck_assert_uint_eq(gb_task_id(me), 1);
	gb_group *g = tu_group();
	gb_task *a = tu_spawn(g, record_self, (void *)1);
	gb_task *b = tu_spawn(g, record_self, (void *)2);
	ck_assert_ptr_ne(a, b);
	ck_assert_uint_gt(gb_task_id(a), 1);
	ck_assert_uint_gt(gb_task_id(b), gb_task_id(a));
	ck_assert_ptr_eq(gb_self(), me);
	ck_assert_int_eq(gb_group_close(g), 0);
	ck_assert_ptr_eq(selves[1], a);
	ck_assert_ptr_eq(selves[2], b);
	gb_task_release(a);
	gb_task_release(b);
	return 0;
}

/* gb_self is the running task, main has id 1 and ids then increase. */
START_TEST(test_self_and_ids)
{
	TU_RUN(ids_main, NULL, 0);
}
END_TEST

static int check_own_name(void *arg)
{
	ck_assert_str_eq(gb_task_name(gb_self()), (const char *)arg);
	ran++;
	return 0;
}

static void fill_name(char *buf, size_t len, char c)
{
	memset(buf, c, len - 1);
	buf[len - 1] = '\0';
}

static int names_main(void *arg)
{
	(void)arg;
	char name[100], want[GB_NAME_MAX];
	ck_assert_str_eq(gb_task_name(gb_self()), "");
	gb_group *g = tu_group();

	strcpy(name, "worker");
	gb_spawn_opts o = { .name = name };
	gb_task *w = NULL;
	ck_assert_int_eq(gb_spawn(g, check_own_name, "worker", &o, &w), 0);
	strcpy(name, "clobbered");   /* the name was copied */
	ck_assert_str_eq(gb_task_name(w), "worker");

	fill_name(name, sizeof name, 'x');
	fill_name(want, sizeof want, 'x');   /* GB_NAME_MAX - 1 x's */
	gb_task *l = NULL;
	ck_assert_int_eq(gb_spawn(g, check_own_name, want, &o, &l), 0);
	ck_assert_uint_eq(strlen(gb_task_name(l)), GB_NAME_MAX - 1);
	ck_assert_str_eq(gb_task_name(l), want);

	gb_task *n = tu_spawn(g, check_own_name, "renamed");
	ck_assert_str_eq(gb_task_name(n), "");   /* no name given */
	gb_task_set_name(n, "renamed");   /* before it runs */
	ck_assert_int_eq(gb_group_close(g), 0);
	ck_assert_int_eq(ran, 3);
	gb_task_release(w);
	gb_task_release(l);
	gb_task_release(n);
	return 0;
}

/* Spawn names are copied and truncated to GB_NAME_MAX - 1 bytes; a task
 * renamed by another task sees its new name. */
START_TEST(test_spawn_names)
{
	TU_RUN(names_main, NULL, 0);
}
END_TEST

static int set_name_main(void *arg)
{
	(void)arg;
	char name[100], want[GB_NAME_MAX];
	gb_task_set_name(gb_self(), "main-task");
	ck_assert_str_eq(gb_task_name(gb_self()), "main-task");
	fill_name(name, sizeof name, 'y');
	fill_name(want, sizeof want, 'y');
	gb_task_set_name(gb_self(), name);
	ck_assert_str_eq(gb_task_name(gb_self()), want);
	gb_task_set_name(gb_self(), "");
	ck_assert_str_eq(gb_task_name(gb_self()), "");
	return 0;
}

/* gb_task_set_name renames, truncating to GB_NAME_MAX - 1 bytes. */
START_TEST(test_set_name)
{
	TU_RUN(set_name_main, NULL, 0);
}
END_TEST

/* ------------------------------------------------------------ results */

static int done_main(void *arg)
{
	(void)arg;
	int r = -1, v42 = 42, v0 = 0;
	gb_group *g = tu_group();
	gb_task *a = tu_spawn(g, return_arg, &v42);
	gb_task *b = tu_spawn(g, return_arg, &v0);
	ck_assert_int_eq(gb_task_done(a, &r), 0);   /* not run yet */
	ck_assert_int_eq(gb_task_done(b, NULL), 0);
	ck_assert_int_eq(gb_group_wait(g, GB_NEVER), 0);
	ck_assert_int_eq(gb_task_done(a, &r), 1);
	ck_assert_int_eq(r, 42);
	ck_assert_int_eq(gb_task_done(b, &r), 1);
	ck_assert_int_eq(r, 0);
	ck_assert_int_eq(gb_task_done(a, NULL), 1);
	ck_assert_int_eq(gb_group_close(g), 0);
	r = -1;   /* the handle keeps the ended task alive */
	ck_assert_int_eq(gb_task_done(a, &r), 1);
	ck_assert_int_eq(r, 42);
	gb_task_release(a);
	gb_task_release(b);
	return 0;
}

/* gb_task_done reports 0 before the end, then 1 and the result, and the
 * handle stays valid after the group is closed. */
START_TEST(test_done_and_result)
{
	TU_RUN(done_main, NULL, 0);
}
END_TEST

static int tiny_stack_main(void *arg)
{
	(void)arg;
	gb_group *g = tu_group();
	gb_spawn_opts o = { .stack_size = 1 };
	ck_assert_int_eq(gb_spawn(g, mark_ran, NULL, &o, NULL), -EINVAL);
	ck_assert_int_eq(gb_group_close(g), 0);
	ck_assert_int_eq(ran, 0);
	return 0;
}

/* gb_spawn refuses a stack that is too small with -EINVAL. */
START_TEST(test_spawn_tiny_stack)
{
	TU_RUN(tiny_stack_main, NULL, 0);
}
END_TEST

/* ------------------------------------------------------- cancellation */

static int sleep_long(void *arg)
{
	int i = (int)(intptr_t)arg;
	ran++;
	rcs[i] = gb_sleep(gb_after(GB_SEC(5)));
	stamps[i] = gb_now();
	return 0;
}

static int cancel_sleep_main(void *arg)
{
	(void)arg;
	gb_group *g = tu_group();
	gb_task *h = tu_spawn(g, sleep_long, (void *)0);
	ck_assert_int_eq(gb_sleep(gb_after(GB_MSEC(10))), 0);
	ck_assert_int_eq(ran, 1);   /* the child is asleep */
	ck_assert_int_eq(gb_task_done(h, NULL), 0);
	int64_t t0 = gb_now();
	gb_cancel(h);
	ck_assert_int_eq(gb_group_close(g), 0);
	ck_assert_int_eq(rcs[0], -ECANCELED);
	ck_assert_int_le(stamps[0] - t0, GB_MSEC(tu_slack_ms(50)));
	gb_task_release(h);
	return 0;
}

/* gb_cancel wakes a sleeping task promptly with -ECANCELED. */
START_TEST(test_cancel_during_sleep)
{
	TU_RUN(cancel_sleep_main, NULL, 0);
}
END_TEST

static int cancel_early_main(void *arg)
{
	(void)arg;
	gb_group *g = tu_group();
	gb_task *h = tu_spawn(g, sleep_long, (void *)0);
	gb_cancel(h);
	ck_assert_int_eq(gb_cancelled(h), 1);
	int64_t t0 = gb_now();
	ck_assert_int_eq(gb_group_close(g), 0);
	ck_assert_int_eq(ran, 1);   /* the body still runs */
	ck_assert_int_eq(rcs[0], -ECANCELED);
	ck_assert_int_le(stamps[0] - t0, GB_MSEC(tu_slack_ms(50)));
	gb_task_release(h);
	return 0;
}

/* A task cancelled before it first runs gets -ECANCELED from its first
 * blocking call, at once. */
START_TEST(test_cancel_before_first_switch)
{
	TU_RUN(cancel_early_main, NULL, 0);
}
END_TEST

static int level_child(void *arg)
{
	(void)arg;
	ck_assert_int_eq(gb_cancelled(gb_self()), 0);
	rcs[0] = gb_sleep(gb_after(GB_SEC(5)));
	ck_assert_int_eq(gb_cancelled(gb_self()), 1);
	int64_t t0 = gb_now();
	rcs[1] = gb_yield();
	rcs[2] = gb_sleep(gb_after(GB_MSEC(1)));
	rcs[3] = gb_sleep(GB_NEVER);
	rcs[4] = gb_yield();
	rcs[5] = gb_sleep(gb_after(GB_SEC(5)));
	stamps[0] = gb_now() - t0;
	return 0;
}

static int level_main(void *arg)
{
	(void)arg;
	gb_group *g = tu_group();
	gb_task *h = tu_spawn(g, level_child, NULL);
	ck_assert_int_eq(gb_yield(), 0);
	ck_assert_int_eq(gb_cancelled(h), 0);
	gb_cancel(h);
	ck_assert_int_eq(gb_cancelled(h), 1);
	ck_assert_int_eq(gb_group_close(g), 0);
	gb_task_release(h);
	return 0;
}

/* Cancellation is level-triggered: every later yield and sleep returns
 * -ECANCELED at once. */
START_TEST(test_cancel_level_triggered)
{
	TU_RUN(level_main, NULL, 0);
	for (int i = 0; i <= 5; i++)
		ck_assert_msg(rcs[i] == -ECANCELED, "call %d returned %d",
		              i, rcs[i]);
	ck_assert_int_le(stamps[0], GB_MSEC(tu_slack_ms(50)));
}
END_TEST

static int cancel_done_main(void *arg)
{
	(void)arg;
	int v = 3, r = -1;
	gb_group *g = tu_group();
	gb_task *h = tu_spawn(g, return_arg, &v);
	ck_assert_int_eq(gb_group_wait(g, GB_NEVER), 0);
	gb_cancel(h);
	ck_assert_int_eq(gb_cancelled(h), 0);
	ck_assert_int_eq(gb_task_done(h, &r), 1);
	ck_assert_int_eq(r, 3);
	ck_assert_int_eq(gb_yield(), 0);
	ck_assert_int_eq(gb_sleep(gb_after(GB_MSEC(1))), 0);
	ck_assert_int_eq(gb_group_close(g), 0);
	gb_cancel(h);   /* after its group is gone too */
	ck_assert_int_eq(gb_task_done(h, &r), 1);
	ck_assert_int_eq(r, 3);
	ck_assert_int_eq(gb_sleep(gb_after(GB_MSEC(1))), 0);
	gb_task_release(h);
	return 0;
}

/* Cancelling a finished task does nothing: no flag, same result, nobody
 * else is disturbed. */
START_TEST(test_cancel_finished_task)
{
	TU_RUN(cancel_done_main, NULL, 0);
}
END_TEST

static int self_cancel_yielder(void *arg)
{
	(void)arg;
	gb_cancel(gb_self());
	ck_assert_int_eq(gb_cancelled(gb_self()), 1);
	tu_log_add(&lg, 1);
	rcs[0] = gb_yield();
	tu_log_add(&lg, 3);
	return 0;
}

static int log_two(void *arg)
{
	(void)arg;
	tu_log_add(&lg, 2);
	return 0;
}

static int yield_cancel_main(void *arg)
{
	(void)arg;
	gb_group *g = tu_group();
	tu_go(g, self_cancel_yielder, NULL);
	tu_go(g, log_two, NULL);
	return gb_group_close(g);
}

/* A cancelled gb_yield still yields (others run), then returns
 * -ECANCELED; gb_cancel works on the running task. */
START_TEST(test_yield_when_cancelled)
{
	TU_RUN(yield_cancel_main, NULL, 0);
	TU_LOG_EQ(&lg, 1, 2, 3);
	ck_assert_int_eq(rcs[0], -ECANCELED);
}
END_TEST

/* -------------------------------------------------------------- hooks */

static struct {
	int spawns, switches, exits;
	gb_task *spawned[8];
	int nspawned;
	uint64_t switched_to[64];
	int nswitched;
} hk;

static void on_spawn(gb_task *t, void *ud)
{
	ck_assert_ptr_eq(ud, &hk);
	if (hk.nspawned < 8)
		hk.spawned[hk.nspawned++] = t;
	hk.spawns++;
}

static void on_switch(gb_task *from, gb_task *to, void *ud)
{
	(void)from;
	ck_assert_ptr_eq(ud, &hk);
	if (to != NULL && hk.nswitched < 64)
		hk.switched_to[hk.nswitched++] = gb_task_id(to);
	hk.switches++;
}

static void on_exit_hook(gb_task *t, int result, void *ud)
{
	(void)t;
	ck_assert_ptr_eq(ud, &hk);
	hk.exits++;
	tu_log_add(&lg, result);
}

static int switched_to(uint64_t id)
{
	for (int i = 0; i < hk.nswitched; i++)
		if (hk.switched_to[i] == id)
			return 1;
	return 0;
}

static void spawn_three(gb_group *g, gb_task **h, int *vals)
{
	for (int i = 0; i < 3; i++)
		h[i] = tu_spawn(g, return_arg, &vals[i]);
}

static void check_hooked_children(gb_task **h, int sp0)
{
	ck_assert_int_eq(hk.spawns - sp0, 3);
	for (int i = 0; i < 3; i++) {
		ck_assert_ptr_eq(hk.spawned[hk.nspawned - 3 + i], h[i]);
		ck_assert(switched_to(gb_task_id(h[i])));
	}
}

static int hooks_main(void *arg)
{
	(void)arg;
	int vals[3] = { 10, 11, 12 }, more[3] = { 20, 21, 22 };
	gb_task *h[3], *h2[3];
	int sp0 = hk.spawns;
	gb_group *g = tu_group();
	spawn_three(g, h, vals);
	ck_assert_int_eq(gb_group_wait(g, GB_NEVER), 0);
	check_hooked_children(h, sp0);
	TU_LOG_EQ(&lg, 10, 11, 12);
	ck_assert_int_eq(hk.exits, 3);

	gb_set_hooks(NULL);
	int sp = hk.spawns, sw = hk.switches;
	spawn_three(g, h2, more);
	ck_assert_int_eq(gb_group_close(g), 0);
	ck_assert_int_eq(hk.spawns, sp);
	ck_assert_int_eq(hk.switches, sw);
	ck_assert_int_eq(hk.exits, 3);
	for (int i = 0; i < 3; i++) {
		gb_task_release(h[i]);
		gb_task_release(h2[i]);
	}
	return 0;
}

/* Hooks installed before gb_run see each spawn, switch and exit (with its
 * result); gb_set_hooks(NULL) stops them. */
START_TEST(test_hooks)
{
	memset(&hk, 0, sizeof hk);
	gb_hooks hooks = { .on_spawn = on_spawn, .on_switch = on_switch,
	                   .on_exit = on_exit_hook, .ud = &hk };
	gb_set_hooks(&hooks);
	memset(&hooks, 0, sizeof hooks);   /* the hooks were copied */
	TU_RUN(hooks_main, NULL, 0);
	TU_LOG_EQ(&lg, 10, 11, 12);
}
END_TEST

/* ------------------------------------------------------------- config */

static int stack_user(void *arg)
{
	volatile char buf[4096];
	int id = (int)(intptr_t)arg;
	for (size_t i = 0; i < sizeof buf; i++)
		buf[i] = (char)id;
	ck_assert_int_eq(gb_yield(), 0);
	int sum = 0;
	for (size_t i = 0; i < sizeof buf; i += 512)
		sum += buf[i];
	tu_log_add(&lg, sum / 8);
	return 0;
}

static int small_cfg_main(void *arg)
{
	(void)arg;
	gb_group *g = tu_group();
	for (intptr_t id = 1; id <= 5; id++)
		tu_go(g, stack_user, (void *)id);
	ck_assert_int_eq(gb_group_wait(g, GB_NEVER), 0);
	ck_assert_int_eq(gb_group_close(g), 0);
	return 5;
}

/* gb_run_with a 16 KiB stack and tiny pool/budget settings runs tasks
 * and returns main's result. */
START_TEST(test_run_with_small_config)
{
	gb_config cfg = { .stack_size = 16 * 1024, .stack_pool = 2,
	                  .io_budget = 4, .io_skip = 1 };
	ck_assert_int_eq(gb_run_with(small_cfg_main, NULL, &cfg), 5);
	TU_LOG_EQ(&lg, 1, 2, 3, 4, 5);
}
END_TEST

static Suite *task_suite(void)
{
	Suite *s = suite_create("task");
	TCase *tc = tcase_create("core");
	tcase_add_checked_fixture(tc, reset, teardown);
	tcase_add_loop_test(tc, test_run_returns_main_result, 0,
	                    (int)(sizeof run_results / sizeof run_results[0]));
	tcase_add_test(tc, test_run_while_running_busy);
	tcase_add_test(tc, test_fifo_interleaving);
	tcase_add_test(tc, test_sleep_order);
	tcase_add_test(tc, test_sleep_precision);
	tcase_add_test(tc, test_self_and_ids);
	tcase_add_test(tc, test_spawn_names);
	tcase_add_test(tc, test_set_name);
	tcase_add_test(tc, test_done_and_result);
	tcase_add_test(tc, test_spawn_tiny_stack);
	tcase_add_test(tc, test_cancel_during_sleep);
	tcase_add_test(tc, test_cancel_before_first_switch);
	tcase_add_test(tc, test_cancel_level_triggered);
	tcase_add_test(tc, test_cancel_finished_task);
	tcase_add_test(tc, test_yield_when_cancelled);
	tcase_add_test(tc, test_hooks);
	tcase_add_test(tc, test_run_with_small_config);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run_suite(task_suite());
}
