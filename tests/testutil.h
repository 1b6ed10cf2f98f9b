/*
 * testutil.h - small helpers shared by the scheduler's check tests.
 */
#ifndef GB_TESTUTIL_H
#define GB_TESTUTIL_H

#include <check.h>
#include <stdlib.h>
#include "gb.h"

/* Runs one suite and returns the process exit status for make check. */
static inline int tu_run_suite(Suite *s)
{
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* Runs body(arg) as the main task of a fresh scheduler and checks that
 * gb_run returned want. */
#define TU_RUN(body, arg, want) \
	ck_assert_int_eq(gb_run((body), (arg)), (want))

/* 1 when the tests run under valgrind (make check-valgrind). */
static inline int tu_under_valgrind(void)
{
	return getenv("GB_TEST_VALGRIND") != NULL;
}

/* ---- helpers shared by check_task, check_scope and check_group ---- */

/* Milliseconds elapsed since t0 (a gb_now() value). */
static inline int64_t tu_ms_since(int64_t t0)
{
	return (gb_now() - t0) / 1000000;
}

/* Extra timing slack in ms: generous under valgrind. */
static inline int64_t tu_slack_ms(int64_t normal)
{
	return tu_under_valgrind() ? normal + 500 : normal;
}

/* Opens a group, failing the test if that fails. */
static inline gb_group *tu_group(void)
{
	gb_group *g = NULL;
	ck_assert_int_eq(gb_group_open(&g), 0);
	ck_assert_ptr_nonnull(g);
	return g;
}

/* Spawns fn(arg) into g without a handle, failing the test on error. */
static inline void tu_go(gb_group *g, gb_fn fn, void *arg)
{
	ck_assert_int_eq(gb_spawn(g, fn, arg, NULL, NULL), 0);
}

/* Spawns fn(arg) into g and returns a handle (release it). */
static inline gb_task *tu_spawn(gb_group *g, gb_fn fn, void *arg)
{
	gb_task *h = NULL;
	ck_assert_int_eq(gb_spawn(g, fn, arg, NULL, &h), 0);
	ck_assert_ptr_nonnull(h);
	return h;
}

/* An ordered log of ints that tasks append to. */
#define TU_LOG_MAX 256
struct tu_log {
	int v[TU_LOG_MAX];
	size_t n;
};

static inline void tu_log_add(struct tu_log *l, int x)
{
	ck_assert_uint_lt(l->n, TU_LOG_MAX);
	l->v[l->n++] = x;
}

/* Asserts that the log holds exactly want[0..n). */
static inline void tu_log_eq(const struct tu_log *l, const int *want, size_t n)
{
	ck_assert_uint_eq(l->n, n);
	for (size_t i = 0; i < n; i++)
		ck_assert_msg(l->v[i] == want[i], "log[%zu] = %d, want %d",
		              i, l->v[i], want[i]);
}

#define TU_LOG_EQ(l, ...) do { \
	const int tu_want_[] = { __VA_ARGS__ }; \
	tu_log_eq((l), tu_want_, sizeof tu_want_ / sizeof tu_want_[0]); \
} while (0)

/* ---- helpers shared by the I/O, channel and sync tests ---- */

/* Waits for every task of g to end by itself (gb_group_close alone would
 * cancel them), then closes g. */
static inline int tu_join(gb_group *g)
{
	int rc = gb_group_wait(g, gb_after(GB_SEC(10)));
	int crc = gb_group_close(g);
	return rc ? rc : crc;
}

/* Lets every runnable task run until it blocks or ends. */
static inline void tu_settle(void)
{
	for (int k = 0; k < 10; k++)
		ck_assert_int_eq(gb_yield(), 0);
}

/* A deadline ms from now; 0 ms means GB_NEVER. */
static inline int64_t tu_deadline_ms(int64_t ms)
{
	return ms ? gb_after(GB_MSEC(ms)) : GB_NEVER;
}

/* A timed-out call that took took_ms took at least ms and not much more. */
static inline void tu_took_about(int64_t took_ms, int64_t ms)
{
	ck_assert_int_ge(took_ms, ms);
	ck_assert_int_le(took_ms, ms + tu_slack_ms(100));
}

/* Waits (bounded) for g's tasks, closes g and drops the n handles in hs
 * (NULL entries are skipped). */
static inline int tu_finish(gb_group *g, gb_task **hs, size_t n)
{
	ck_assert_int_eq(gb_group_wait(g, gb_after(GB_SEC(5))), 0);
	int rc = gb_group_close(g);
	for (size_t i = 0; i < n; i++)
		if (hs[i]) {
			gb_task_release(hs[i]);
			hs[i] = NULL;
		}
	return rc;
}

#endif
