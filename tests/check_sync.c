/*
 * check_sync.c - events, locks, semaphores and condition variables: FIFO
 * order, hand-off without barging, error paths, deadlines, cancellation
 * of waiters and level-triggered cancellation.
 */
#include <errno.h>
#include <string.h>
#include "testutil.h"

#define NT 8
#define PENDING 12345   /* rcs[i] of a task whose call has not returned */

/* Shared state, reset before every test (CK_FORK=no runs them in one
 * process). Task i logs i when it starts its call, 10 + i when the call
 * succeeded, 20 + i when it gives back what it got, 30 + i when the call
 * failed. */
static struct tu_log lg;
static int rcs[NT];          /* what task i's call returned */
static int64_t dls[NT];      /* task i's deadline in ms; 0: GB_NEVER */
static int64_t took[NT];     /* ms task i's call took */
static uint64_t seen[NT];    /* id of the lock owner task i saw after its
                              * call (0: none) */
static uint64_t ids[NT];     /* task ids of tasks 1.. */
static gb_task *hs[NT];      /* handles of tasks 1.. */
static gb_event ev;
static gb_lock lk;
static gb_sem sm;
static gb_cond cv;

static void reset(void)
{
	memset(&lg, 0, sizeof lg);
	for (int i = 0; i < NT; i++)
		rcs[i] = PENDING;
	memset(dls, 0, sizeof dls);
	memset(took, 0, sizeof took);
	memset(seen, 0, sizeof seen);
	memset(hs, 0, sizeof hs);
	memset(ids, 0, sizeof ids);
	gb_event_init(&ev);
	gb_lock_init(&lk);
	gb_sem_init(&sm, 0, 0);
	gb_cond_init(&cv);
}

/* Spawns fn for ids from..to, keeping handles in hs[]. */
static void spawn_ids(gb_group *g, gb_fn fn, int from, int to)
{
	for (int id = from; id <= to; id++) {
		hs[id] = tu_spawn(g, fn, (void *)(intptr_t)id);
		ids[id] = gb_task_id(hs[id]);
	}
}

/* The id of lk's owner, 0 if free. */
static uint64_t owner_id(void)
{
	gb_task *o = gb_lock_owner(&lk);

	return o ? gb_task_id(o) : 0;
}

/* Holds lk (which the caller owns) over a few yields, logs 20 + id and
 * gives it back. */
static void hold_then_release(int id)
{
	for (int k = 0; k < 3; k++)
		(void)gb_yield();   /* -ECANCELED if cancelled since: fine */
	ck_assert_ptr_eq(gb_lock_owner(&lk), gb_self());
	tu_log_add(&lg, 20 + id);
	ck_assert_int_eq(gb_lock_release(&lk), 0);
}

/* ================================================================ event */

static int event_waiter(void *arg)
{
	int id = (int)(intptr_t)arg;
	int64_t t0 = gb_now();

	tu_log_add(&lg, id);
	rcs[id] = gb_event_wait(&ev, tu_deadline_ms(dls[id]));
	took[id] = tu_ms_since(t0);
	tu_log_add(&lg, (rcs[id] == 0 ? 10 : 30) + id);
	return 0;
}

static int ev_block_main(void *arg)
{
	(void)arg;
	gb_group *g = tu_group();
	spawn_ids(g, event_waiter, 1, 3);
	tu_settle();
	ck_assert_int_eq(gb_sleep(gb_after(GB_MSEC(20))), 0);
	TU_LOG_EQ(&lg, 1, 2, 3);
	for (int i = 1; i <= 3; i++)
		ck_assert_int_eq(rcs[i], PENDING);
	ck_assert_int_eq(gb_event_is_set(&ev), 0);
	gb_event_set(&ev);
	ck_assert_int_eq(gb_event_is_set(&ev), 1);
	tu_log_add(&lg, 0);   /* setting does not yield */
	int rc = tu_finish(g, hs, NT);
	TU_LOG_EQ(&lg, 1, 2, 3, 0, 11, 12, 13);
	for (int i = 1; i <= 3; i++)
		ck_assert_int_eq(rcs[i], 0);
	ck_assert_int_eq(gb_event_is_set(&ev), 1);
	return rc;
}

/* Waiters block until the event is set; one set wakes all of them, in
 * FIFO order, with 0. */
START_TEST(test_event_blocks_until_set_wakes_all)
{
	TU_RUN(ev_block_main, NULL, 0);
}
END_TEST

static int ev_setclear_main(void *arg)
{
	(void)arg;
	gb_group *g = tu_group();
	spawn_ids(g, event_waiter, 1, 3);
	tu_settle();
	gb_event_set(&ev);
	gb_event_clear(&ev);
	ck_assert_int_eq(gb_event_is_set(&ev), 0);
	tu_settle();
	TU_LOG_EQ(&lg, 1, 2, 3, 11, 12, 13);
	/* Once cleared, a new wait blocks again. */
	dls[4] = 30;
	spawn_ids(g, event_waiter, 4, 4);
	int rc = tu_finish(g, hs, NT);
	TU_LOG_EQ(&lg, 1, 2, 3, 11, 12, 13, 4, 34);
	for (int i = 1; i <= 3; i++)
		ck_assert_int_eq(rcs[i], 0);
	ck_assert_int_eq(rcs[4], -ETIMEDOUT);
	tu_took_about(took[4], 30);
	return rc;
}

/* A set immediately followed by a clear still wakes every waiter that
 * was there; a wait after the clear blocks. */
START_TEST(test_event_set_then_clear)
{
	TU_RUN(ev_setclear_main, NULL, 0);
}
END_TEST

static int log_five(void *arg)
{
	(void)arg;
	tu_log_add(&lg, 5);
	return 0;
}

static int ev_at_once_main(void *arg)
{
	(void)arg;
	gb_group *g = tu_group();
	gb_event_set(&ev);
	tu_go(g, log_five, NULL);   /* runnable, but must not get to run */
	ck_assert_int_eq(gb_event_wait(&ev, GB_NEVER), 0);
	ck_assert_int_eq(gb_event_wait(&ev, gb_now()), 0);
	ck_assert_int_eq(gb_event_wait(&ev, gb_after(GB_SEC(1))), 0);
	ck_assert_uint_eq(lg.n, 0);  /* no wait above gave up the CPU */
	ck_assert_int_eq(gb_event_is_set(&ev), 1);  /* waiting does not consume */

	gb_event_clear(&ev);
	ck_assert_int_eq(gb_event_is_set(&ev), 0);
	ck_assert_int_eq(gb_event_wait(&ev, gb_now()), -ETIMEDOUT);
	int64_t t0 = gb_now();
	ck_assert_int_eq(gb_event_wait(&ev, gb_after(GB_MSEC(20))), -ETIMEDOUT);
	ck_assert_int_ge(tu_ms_since(t0), 20);
	TU_LOG_EQ(&lg, 5);
	gb_event_clear(&ev);   /* clearing a clear event is harmless */
	gb_event_set(&ev);
	gb_event_set(&ev);
	ck_assert_int_eq(gb_event_wait(&ev, gb_now()), 0);
	return tu_finish(g, hs, NT);
}

/* Waiting on a set event returns 0 at once, without yielding, even with
 * a deadline already past; clear makes later waits block again. */
START_TEST(test_event_wait_on_set_and_clear)
{
	TU_RUN(ev_at_once_main, NULL, 0);
}
END_TEST

static int ev_deadline_main(void *arg)
{
	(void)arg;
	gb_group *g = tu_group();
	dls[2] = 30;
	spawn_ids(g, event_waiter, 1, 3);
	ck_assert_int_eq(gb_sleep(gb_after(GB_MSEC(80))), 0);
	TU_LOG_EQ(&lg, 1, 2, 3, 32);
	ck_assert_int_eq(rcs[2], -ETIMEDOUT);
	tu_took_about(took[2], 30);
	ck_assert_int_eq(rcs[1], PENDING);
	ck_assert_int_eq(rcs[3], PENDING);
	gb_event_set(&ev);
	int rc = tu_finish(g, hs, NT);
	TU_LOG_EQ(&lg, 1, 2, 3, 32, 11, 13);
	ck_assert_int_eq(rcs[1], 0);
	ck_assert_int_eq(rcs[3], 0);
	return rc;
}

/* A wait's deadline gives -ETIMEDOUT on time; the other waiters stay and
 * are woken by the next set. */
START_TEST(test_event_deadline)
{
	TU_RUN(ev_deadline_main, NULL, 0);
}
END_TEST

static int ev_cancel_main(void *arg)
{
	(void)arg;
	gb_group *g = tu_group();
	spawn_ids(g, event_waiter, 1, 3);
	tu_settle();
	int64_t t0 = gb_now();
	gb_cancel(hs[2]);
	tu_settle();
	ck_assert_int_le(tu_ms_since(t0), tu_slack_ms(50));
	TU_LOG_EQ(&lg, 1, 2, 3, 32);
	ck_assert_int_eq(rcs[2], -ECANCELED);
	ck_assert_int_eq(gb_task_done(hs[2], NULL), 1);
	/* A new waiter, likely on the dead one's recycled stack. */
	spawn_ids(g, event_waiter, 4, 4);
	tu_settle();
	gb_event_set(&ev);
	int rc = tu_finish(g, hs, NT);
	TU_LOG_EQ(&lg, 1, 2, 3, 32, 4, 11, 13, 14);
	ck_assert_int_eq(rcs[1], 0);
	ck_assert_int_eq(rcs[3], 0);
	ck_assert_int_eq(rcs[4], 0);
	return rc;
}

/* Cancelling a waiter gives it -ECANCELED at once; a later set wakes the
 * others exactly once and never touches the dead waiter. */
START_TEST(test_event_cancel_waiter)
{
	TU_RUN(ev_cancel_main, NULL, 0);
}
END_TEST

/* ================================================================= lock */

/* Acquires lk; on success holds it over a few yields (checking nobody
 * takes it meanwhile) and releases it. */
static int locker(void *arg)
{
	int id = (int)(intptr_t)arg;
	int64_t t0 = gb_now();

	tu_log_add(&lg, id);
	rcs[id] = gb_lock_acquire(&lk, tu_deadline_ms(dls[id]));
	took[id] = tu_ms_since(t0);
	seen[id] = owner_id();
	if (rcs[id] != 0) {
		tu_log_add(&lg, 30 + id);
		ck_assert_ptr_ne(gb_lock_owner(&lk), gb_self());
		return 0;
	}
	tu_log_add(&lg, 10 + id);
	ck_assert_ptr_eq(gb_lock_owner(&lk), gb_self());
	hold_then_release(id);
	return 0;
}

static int barger(void *arg)
{
	int id = (int)(intptr_t)arg;

	rcs[id] = gb_lock_try(&lk);
	seen[id] = owner_id();
	tu_log_add(&lg, 99);
	if (rcs[id] == 0)
		ck_assert_int_eq(gb_lock_release(&lk), 0);
	return 0;
}

static int lock_fifo_main(void *arg)
{
	(void)arg;
	gb_task *self = gb_self();
	gb_group *g = tu_group();
	ck_assert_int_eq(gb_lock_acquire(&lk, GB_NEVER), 0);
	ck_assert_ptr_eq(gb_lock_owner(&lk), self);
	spawn_ids(g, locker, 1, 3);
	tu_settle();
	TU_LOG_EQ(&lg, 1, 2, 3);
	spawn_ids(g, barger, 4, 4);   /* queued to run before A wakes */
	ck_assert_int_eq(gb_lock_release(&lk), 0);
	/* Ownership went straight to the oldest waiter. */
	ck_assert_ptr_eq(gb_lock_owner(&lk), hs[1]);
	ck_assert_int_eq(gb_lock_try(&lk), -EBUSY);
	ck_assert_int_eq(gb_lock_acquire(&lk, gb_now()), -ETIMEDOUT);
	ck_assert_ptr_eq(gb_lock_owner(&lk), hs[1]);
	int rc = tu_finish(g, hs, NT);
	TU_LOG_EQ(&lg, 1, 2, 3, 99, 11, 21, 12, 22, 13, 23);
	ck_assert_int_eq(rcs[4], -EBUSY);
	ck_assert_uint_eq(seen[4], ids[1]);
	for (int i = 1; i <= 3; i++)
		ck_assert_int_eq(rcs[i], 0);
	ck_assert_ptr_null(gb_lock_owner(&lk));
	return rc;
}

/* Release hands the lock straight to the oldest waiter: a task that tries
 * before it runs gets -EBUSY, and waiters acquire in FIFO order. */
START_TEST(test_lock_fifo_no_barging)
{
	TU_RUN(lock_fifo_main, NULL, 0);
}
END_TEST

static int unlocker(void *arg)
{
	int id = (int)(intptr_t)arg;

	rcs[id] = gb_lock_release(&lk);
	seen[id] = owner_id();
	tu_log_add(&lg, 50);
	return 0;
}

static int lock_errors_main(void *arg)
{
	(void)arg;
	gb_task *self = gb_self();
	gb_group *g = tu_group();

	ck_assert_int_eq(gb_lock_release(&lk), -EPERM);   /* not held at all */
	ck_assert_ptr_null(gb_lock_owner(&lk));
	ck_assert_int_eq(gb_lock_try(&lk), 0);
	ck_assert_ptr_eq(gb_lock_owner(&lk), self);
	/* Not recursive. */
	ck_assert_int_eq(gb_lock_try(&lk), -EBUSY);
	ck_assert_int_eq(gb_lock_acquire(&lk, GB_NEVER), -EDEADLK);
	ck_assert_int_eq(gb_lock_acquire(&lk, gb_after(GB_MSEC(10))), -EDEADLK);
	ck_assert_ptr_eq(gb_lock_owner(&lk), self);

	/* A non-owner cannot release it, even with a waiter queued. */
	spawn_ids(g, locker, 1, 1);
	spawn_ids(g, unlocker, 2, 2);
	tu_settle();
	TU_LOG_EQ(&lg, 1, 50);
	ck_assert_int_eq(rcs[2], -EPERM);
	ck_assert_uint_eq(seen[2], gb_task_id(self));
	ck_assert_ptr_eq(gb_lock_owner(&lk), self);
	ck_assert_int_eq(rcs[1], PENDING);

	/* One release undoes one acquire. */
	ck_assert_int_eq(gb_lock_release(&lk), 0);
	ck_assert_ptr_eq(gb_lock_owner(&lk), hs[1]);
	ck_assert_int_eq(gb_lock_release(&lk), -EPERM);
	ck_assert_ptr_eq(gb_lock_owner(&lk), hs[1]);
	int rc = tu_finish(g, hs, NT);
	TU_LOG_EQ(&lg, 1, 50, 11, 21);
	ck_assert_int_eq(rcs[1], 0);
	ck_assert_ptr_null(gb_lock_owner(&lk));
	ck_assert_int_eq(gb_lock_release(&lk), -EPERM);
	return rc;
}

/* Release by a non-owner gives -EPERM and changes nothing; relocking by
 * the owner gives -EDEADLK (acquire) and -EBUSY (try) without blocking. */
START_TEST(test_lock_errors)
{
	TU_RUN(lock_errors_main, NULL, 0);
}
END_TEST

static int lock_deadline_main(void *arg)
{
	(void)arg;
	gb_task *self = gb_self();
	gb_group *g = tu_group();
	ck_assert_int_eq(gb_lock_acquire(&lk, GB_NEVER), 0);
	dls[2] = 30;
	spawn_ids(g, locker, 1, 3);
	ck_assert_int_eq(gb_sleep(gb_after(GB_MSEC(80))), 0);
	TU_LOG_EQ(&lg, 1, 2, 3, 32);
	ck_assert_int_eq(rcs[2], -ETIMEDOUT);
	tu_took_about(took[2], 30);
	ck_assert_uint_eq(seen[2], gb_task_id(self));
	ck_assert_ptr_eq(gb_lock_owner(&lk), self);
	ck_assert_int_eq(gb_lock_release(&lk), 0);
	ck_assert_ptr_eq(gb_lock_owner(&lk), hs[1]);
	int rc = tu_finish(g, hs, NT);
	TU_LOG_EQ(&lg, 1, 2, 3, 32, 11, 21, 13, 23);
	ck_assert_uint_eq(seen[3], ids[3]);
	ck_assert_ptr_null(gb_lock_owner(&lk));
	return rc;
}

/* A timed-out acquire returns -ETIMEDOUT on time, never gets the lock,
 * and the remaining waiters still get it in order. */
START_TEST(test_lock_deadline)
{
	TU_RUN(lock_deadline_main, NULL, 0);
}
END_TEST

static int lock_cancel_main(void *arg)
{
	int c = *(const int *)arg;   /* which waiter (1..3) to cancel */
	gb_task *self = gb_self();
	gb_group *g = tu_group();
	ck_assert_int_eq(gb_lock_acquire(&lk, GB_NEVER), 0);
	spawn_ids(g, locker, 1, 3);
	tu_settle();
	gb_cancel(hs[c]);
	tu_settle();
	TU_LOG_EQ(&lg, 1, 2, 3, 30 + c);
	ck_assert_int_eq(rcs[c], -ECANCELED);
	ck_assert_ptr_eq(gb_lock_owner(&lk), self);
	ck_assert_int_eq(gb_lock_release(&lk), 0);
	int first = c == 1 ? 2 : 1;
	ck_assert_ptr_eq(gb_lock_owner(&lk), hs[first]);

	/* Each holder hands over to the next live waiter, never to c. */
	int want[8], n = 0;
	want[n++] = 1;
	want[n++] = 2;
	want[n++] = 3;
	want[n++] = 30 + c;
	for (int i = 1; i <= 3; i++)
		if (i != c) {
			want[n++] = 10 + i;
			want[n++] = 20 + i;
		}
	int rc = tu_finish(g, hs, NT);
	tu_log_eq(&lg, want, (size_t)n);
	for (int i = 1; i <= 3; i++)
		if (i != c) {
			ck_assert_int_eq(rcs[i], 0);
			ck_assert_uint_eq(seen[i], ids[i]);
		}
	ck_assert_ptr_null(gb_lock_owner(&lk));
	ck_assert_int_eq(gb_lock_try(&lk), 0);
	ck_assert_int_eq(gb_lock_release(&lk), 0);
	return rc;
}

static const int cancel_which[] = { 1, 2, 3 };

/* Cancelling the first, middle or last waiter: the lock is handed to the
 * next live waiter, never to the cancelled one, and nothing is lost. */
START_TEST(test_lock_cancel_waiter)
{
	TU_RUN(lock_cancel_main, (void *)&cancel_which[_i], 0);
}
END_TEST

static int lock_cancel_only_main(void *arg)
{
	(void)arg;
	gb_group *g = tu_group();
	ck_assert_int_eq(gb_lock_acquire(&lk, GB_NEVER), 0);
	spawn_ids(g, locker, 1, 1);
	tu_settle();
	gb_cancel(hs[1]);
	tu_settle();
	ck_assert_int_eq(rcs[1], -ECANCELED);
	ck_assert_int_eq(gb_lock_release(&lk), 0);
	ck_assert_ptr_null(gb_lock_owner(&lk));
	/* Another task gets it at once. */
	dls[2] = 1;   /* must not need to wait */
	spawn_ids(g, locker, 2, 2);
	int rc = tu_finish(g, hs, NT);
	TU_LOG_EQ(&lg, 1, 31, 2, 12, 22);
	ck_assert_int_eq(rcs[2], 0);
	ck_assert_ptr_null(gb_lock_owner(&lk));
	return rc;
}

/* With its only waiter cancelled, a release leaves the lock free. */
START_TEST(test_lock_cancel_only_waiter)
{
	TU_RUN(lock_cancel_only_main, NULL, 0);
}
END_TEST

static int lock_woken_cancel_main(void *arg)
{
	(void)arg;
	gb_group *g = tu_group();
	ck_assert_int_eq(gb_lock_acquire(&lk, GB_NEVER), 0);
	spawn_ids(g, locker, 1, 2);
	tu_settle();
	ck_assert_int_eq(gb_lock_release(&lk), 0);
	gb_cancel(hs[1]);   /* woken with the lock, not yet running */
	int rc = tu_finish(g, hs, NT);
	/* Its result tells the truth about ownership either way. */
	if (rcs[1] == 0)
		ck_assert_uint_eq(seen[1], ids[1]);
	else {
		ck_assert_int_eq(rcs[1], -ECANCELED);
		ck_assert_uint_ne(seen[1], ids[1]);
	}
	ck_assert_int_eq(rcs[2], 0);
	ck_assert_uint_eq(seen[2], ids[2]);
	ck_assert_ptr_null(gb_lock_owner(&lk));
	return rc;
}

/* A waiter cancelled after the lock was handed to it but before it runs
 * either keeps it and returns 0 or passes it on: never both, never lost. */
START_TEST(test_lock_cancel_after_handoff)
{
	TU_RUN(lock_woken_cancel_main, NULL, 0);
}
END_TEST

/* ============================================================ semaphore */

/* Acquires one unit of sm and keeps it (main releases explicitly). */
static int sem_taker(void *arg)
{
	int id = (int)(intptr_t)arg;
	int64_t t0 = gb_now();

	tu_log_add(&lg, id);
	rcs[id] = gb_sem_acquire(&sm, tu_deadline_ms(dls[id]));
	took[id] = tu_ms_since(t0);
	tu_log_add(&lg, (rcs[id] == 0 ? 10 : 30) + id);
	return 0;
}

static int sem_count_main(void *arg)
{
	(void)arg;
	gb_group *g = tu_group();
	gb_sem_init(&sm, 2, 0);
	ck_assert_uint_eq(gb_sem_value(&sm), 2);
	spawn_ids(g, sem_taker, 1, 3);
	tu_settle();
	TU_LOG_EQ(&lg, 1, 11, 2, 12, 3);
	ck_assert_uint_eq(gb_sem_value(&sm), 0);
	ck_assert_int_eq(rcs[3], PENDING);
	ck_assert_int_eq(gb_sem_release(&sm), 0);
	/* The unit went straight to the waiter: none left to barge in on. */
	ck_assert_uint_eq(gb_sem_value(&sm), 0);
	ck_assert_int_eq(gb_sem_try(&sm), -EAGAIN);
	int rc = tu_finish(g, hs, NT);
	TU_LOG_EQ(&lg, 1, 11, 2, 12, 3, 13);
	ck_assert_int_eq(rcs[3], 0);
	ck_assert_int_eq(gb_sem_release(&sm), 0);
	ck_assert_uint_eq(gb_sem_value(&sm), 1);
	return rc;
}

/* A semaphore of value 2 lets two tasks through at once and makes the
 * third wait; a release hands its unit to that waiter. */
START_TEST(test_sem_counting)
{
	TU_RUN(sem_count_main, NULL, 0);
}
END_TEST

static int sem_fifo_main(void *arg)
{
	(void)arg;
	gb_group *g = tu_group();
	spawn_ids(g, sem_taker, 1, 4);
	tu_settle();
	TU_LOG_EQ(&lg, 1, 2, 3, 4);
	for (int k = 1; k <= 4; k++) {
		ck_assert_int_eq(gb_sem_release(&sm), 0);
		ck_assert_uint_eq(gb_sem_value(&sm), 0);
		ck_assert_int_eq(gb_sem_try(&sm), -EAGAIN);
		tu_settle();
		ck_assert_uint_eq(lg.n, (size_t)(4 + k));
		ck_assert_int_eq(lg.v[3 + k], 10 + k);
	}
	ck_assert_int_eq(gb_sem_release(&sm), 0);
	ck_assert_int_eq(gb_sem_release(&sm), 0);
	ck_assert_uint_eq(gb_sem_value(&sm), 2);
	return tu_finish(g, hs, NT);
}

/* Semaphore waiters are served one per release in FIFO order; releases
 * with nobody waiting raise the count. */
START_TEST(test_sem_fifo)
{
	TU_RUN(sem_fifo_main, NULL, 0);
}
END_TEST

static int sem_bounds_main(void *arg)
{
	(void)arg;
	gb_group *g = tu_group();

	gb_sem_init(&sm, 1, 2);
	ck_assert_int_eq(gb_sem_try(&sm), 0);
	ck_assert_uint_eq(gb_sem_value(&sm), 0);
	ck_assert_int_eq(gb_sem_try(&sm), -EAGAIN);
	ck_assert_uint_eq(gb_sem_value(&sm), 0);
	ck_assert_int_eq(gb_sem_acquire(&sm, gb_now()), -ETIMEDOUT);
	ck_assert_uint_eq(gb_sem_value(&sm), 0);
	ck_assert_int_eq(gb_sem_release(&sm), 0);
	ck_assert_int_eq(gb_sem_release(&sm), 0);
	ck_assert_uint_eq(gb_sem_value(&sm), 2);
	ck_assert_int_eq(gb_sem_release(&sm), -EOVERFLOW);
	ck_assert_int_eq(gb_sem_release(&sm), -EOVERFLOW);
	ck_assert_uint_eq(gb_sem_value(&sm), 2);
	ck_assert_int_eq(gb_sem_acquire(&sm, GB_NEVER), 0);
	ck_assert_uint_eq(gb_sem_value(&sm), 1);
	ck_assert_int_eq(gb_sem_release(&sm), 0);
	ck_assert_uint_eq(gb_sem_value(&sm), 2);

	/* max 1 with a waiter: the first release goes to it, the second to
	 * the count, the third overflows. */
	gb_sem_init(&sm, 0, 1);
	spawn_ids(g, sem_taker, 1, 1);
	tu_settle();
	ck_assert_int_eq(gb_sem_release(&sm), 0);
	ck_assert_uint_eq(gb_sem_value(&sm), 0);
	tu_settle();
	ck_assert_int_eq(rcs[1], 0);
	ck_assert_int_eq(gb_sem_release(&sm), 0);
	ck_assert_uint_eq(gb_sem_value(&sm), 1);
	ck_assert_int_eq(gb_sem_release(&sm), -EOVERFLOW);
	ck_assert_uint_eq(gb_sem_value(&sm), 1);

	/* max 0: no upper bound. */
	gb_sem_init(&sm, 0, 0);
	for (int k = 0; k < 1000; k++)
		ck_assert_int_eq(gb_sem_release(&sm), 0);
	ck_assert_uint_eq(gb_sem_value(&sm), 1000);
	return tu_finish(g, hs, NT);
}

/* try gives -EAGAIN at 0 and changes nothing; release past max gives
 * -EOVERFLOW and leaves the count at max; max 0 is unbounded. */
START_TEST(test_sem_bounds)
{
	TU_RUN(sem_bounds_main, NULL, 0);
}
END_TEST

static int sem_deadline_main(void *arg)
{
	(void)arg;
	gb_group *g = tu_group();
	dls[2] = 30;
	spawn_ids(g, sem_taker, 1, 3);
	ck_assert_int_eq(gb_sleep(gb_after(GB_MSEC(80))), 0);
	TU_LOG_EQ(&lg, 1, 2, 3, 32);
	ck_assert_int_eq(rcs[2], -ETIMEDOUT);
	tu_took_about(took[2], 30);
	ck_assert_uint_eq(gb_sem_value(&sm), 0);
	ck_assert_int_eq(gb_sem_release(&sm), 0);
	tu_settle();
	ck_assert_int_eq(gb_sem_release(&sm), 0);
	tu_settle();
	ck_assert_uint_eq(gb_sem_value(&sm), 0);
	ck_assert_int_eq(gb_sem_release(&sm), 0);
	ck_assert_uint_eq(gb_sem_value(&sm), 1);
	int rc = tu_finish(g, hs, NT);
	TU_LOG_EQ(&lg, 1, 2, 3, 32, 11, 13);
	return rc;
}

/* A timed-out semaphore waiter leaves the count intact: later releases go
 * to the remaining waiters in order, then to the count. */
START_TEST(test_sem_deadline)
{
	TU_RUN(sem_deadline_main, NULL, 0);
}
END_TEST

static int sem_cancel_main(void *arg)
{
	int c = *(const int *)arg;
	gb_group *g = tu_group();
	spawn_ids(g, sem_taker, 1, 3);
	tu_settle();
	gb_cancel(hs[c]);
	tu_settle();
	TU_LOG_EQ(&lg, 1, 2, 3, 30 + c);
	ck_assert_int_eq(rcs[c], -ECANCELED);
	ck_assert_uint_eq(gb_sem_value(&sm), 0);
	int want[8], n = 0;
	want[n++] = 1;
	want[n++] = 2;
	want[n++] = 3;
	want[n++] = 30 + c;
	for (int i = 1; i <= 3; i++) {
		if (i == c)
			continue;
		ck_assert_int_eq(gb_sem_release(&sm), 0);
		ck_assert_uint_eq(gb_sem_value(&sm), 0);
		tu_settle();
		want[n++] = 10 + i;
		tu_log_eq(&lg, want, (size_t)n);
	}
	ck_assert_int_eq(gb_sem_release(&sm), 0);
	ck_assert_uint_eq(gb_sem_value(&sm), 1);   /* nobody left: counted */
	return tu_finish(g, hs, NT);
}

/* A cancelled semaphore waiter (first, middle or last) takes no unit:
 * releases go to the others in order, the last one to the count. */
START_TEST(test_sem_cancel_waiter)
{
	TU_RUN(sem_cancel_main, (void *)&cancel_which[_i], 0);
}
END_TEST

/* ============================================================ condition */

/* Takes lk, waits on cv, records the result and the owner seen on
 * return, then releases lk (holding it over a few yields first). */
static int cond_waiter(void *arg)
{
	int id = (int)(intptr_t)arg;

	ck_assert_int_eq(gb_lock_acquire(&lk, GB_NEVER), 0);
	tu_log_add(&lg, id);
	int64_t t0 = gb_now();
	rcs[id] = gb_cond_wait(&cv, &lk, tu_deadline_ms(dls[id]));
	took[id] = tu_ms_since(t0);
	seen[id] = owner_id();
	tu_log_add(&lg, (rcs[id] == 0 ? 10 : 30) + id);
	hold_then_release(id);
	return 0;
}

static int cond_basic_main(void *arg)
{
	(void)arg;
	gb_task *self = gb_self();
	gb_group *g = tu_group();
	spawn_ids(g, cond_waiter, 1, 1);
	tu_settle();
	TU_LOG_EQ(&lg, 1);
	ck_assert_ptr_null(gb_lock_owner(&lk));   /* the wait released it */
	ck_assert_int_eq(gb_lock_try(&lk), 0);
	gb_cond_signal(&cv);
	tu_settle();
	/* Signalled, but it cannot return before getting the lock back. */
	TU_LOG_EQ(&lg, 1);
	ck_assert_int_eq(rcs[1], PENDING);
	ck_assert_ptr_eq(gb_lock_owner(&lk), self);
	tu_log_add(&lg, 0);
	ck_assert_int_eq(gb_lock_release(&lk), 0);
	ck_assert_ptr_eq(gb_lock_owner(&lk), hs[1]);
	int rc = tu_finish(g, hs, NT);
	TU_LOG_EQ(&lg, 1, 0, 11, 21);
	ck_assert_int_eq(rcs[1], 0);
	ck_assert_uint_eq(seen[1], ids[1]);
	ck_assert_ptr_null(gb_lock_owner(&lk));
	return rc;
}

/* gb_cond_wait releases the lock while waiting and returns only once it
 * holds the lock again. */
START_TEST(test_cond_wait_releases_and_reacquires)
{
	TU_RUN(cond_basic_main, NULL, 0);
}
END_TEST

static int cond_signal_main(void *arg)
{
	(void)arg;
	gb_group *g = tu_group();
	spawn_ids(g, cond_waiter, 1, 4);
	tu_settle();
	TU_LOG_EQ(&lg, 1, 2, 3, 4);
	gb_cond_signal(&cv);
	tu_settle();
	TU_LOG_EQ(&lg, 1, 2, 3, 4, 11, 21);
	gb_cond_signal(&cv);
	tu_settle();
	TU_LOG_EQ(&lg, 1, 2, 3, 4, 11, 21, 12, 22);
	for (int i = 3; i <= 4; i++)
		ck_assert_int_eq(rcs[i], PENDING);
	gb_cond_broadcast(&cv);
	int rc = tu_finish(g, hs, NT);
	TU_LOG_EQ(&lg, 1, 2, 3, 4, 11, 21, 12, 22, 13, 23, 14, 24);
	for (int i = 1; i <= 4; i++) {
		ck_assert_int_eq(rcs[i], 0);
		ck_assert_uint_eq(seen[i], ids[i]);
	}
	return rc;
}

/* gb_cond_signal wakes exactly one waiter, the oldest; broadcast wakes the
 * rest, which reacquire the lock one at a time in FIFO order. */
START_TEST(test_cond_signal_fifo_broadcast)
{
	TU_RUN(cond_signal_main, NULL, 0);
}
END_TEST

static int cond_bcast_main(void *arg)
{
	(void)arg;
	gb_group *g = tu_group();
	spawn_ids(g, cond_waiter, 1, 3);
	tu_settle();
	ck_assert_int_eq(gb_lock_acquire(&lk, GB_NEVER), 0);
	gb_cond_broadcast(&cv);
	gb_cond_broadcast(&cv);   /* nobody left: harmless */
	tu_settle();
	TU_LOG_EQ(&lg, 1, 2, 3);   /* all wait for the lock main holds */
	ck_assert_int_eq(gb_lock_release(&lk), 0);
	int rc = tu_finish(g, hs, NT);
	/* Each returns holding the lock alone: no interleaving. */
	TU_LOG_EQ(&lg, 1, 2, 3, 11, 21, 12, 22, 13, 23);
	for (int i = 1; i <= 3; i++) {
		ck_assert_int_eq(rcs[i], 0);
		ck_assert_uint_eq(seen[i], ids[i]);
	}
	return rc;
}

/* gb_cond_broadcast wakes every waiter; each returns owning the lock. */
START_TEST(test_cond_broadcast_all)
{
	TU_RUN(cond_bcast_main, NULL, 0);
}
END_TEST

static int cond_lost_main(void *arg)
{
	(void)arg;
	gb_task *self = gb_self();
	ck_assert_int_eq(gb_lock_acquire(&lk, GB_NEVER), 0);
	gb_cond_signal(&cv);
	gb_cond_broadcast(&cv);
	int64_t t0 = gb_now();
	ck_assert_int_eq(gb_cond_wait(&cv, &lk, gb_after(GB_MSEC(20))),
	                 -ETIMEDOUT);
	ck_assert_int_ge(tu_ms_since(t0), 20);
	ck_assert_ptr_eq(gb_lock_owner(&lk), self);
	ck_assert_int_eq(gb_lock_release(&lk), 0);
	return 0;
}

/* A signal with nobody waiting is not remembered. */
START_TEST(test_cond_signal_without_waiter)
{
	TU_RUN(cond_lost_main, NULL, 0);
}
END_TEST

static int cond_timeout_main(void *arg)
{
	(void)arg;
	gb_group *g = tu_group();

	/* Uncontended: back on time, holding the lock. */
	dls[1] = 30;
	spawn_ids(g, cond_waiter, 1, 1);
	ck_assert_int_eq(gb_sleep(gb_after(GB_MSEC(80))), 0);
	TU_LOG_EQ(&lg, 1, 31, 21);
	ck_assert_int_eq(rcs[1], -ETIMEDOUT);
	tu_took_about(took[1], 30);
	ck_assert_uint_eq(seen[1], ids[1]);

	/* Contended: the deadline passes while main holds the lock; the
	 * waiter returns only once main lets go, and then owns it. */
	dls[2] = 30;
	spawn_ids(g, cond_waiter, 2, 2);
	tu_settle();
	ck_assert_int_eq(gb_lock_try(&lk), 0);
	ck_assert_int_eq(gb_sleep(gb_after(GB_MSEC(80))), 0);
	ck_assert_int_eq(rcs[2], PENDING);
	TU_LOG_EQ(&lg, 1, 31, 21, 2);
	ck_assert_int_eq(gb_lock_release(&lk), 0);
	ck_assert_ptr_eq(gb_lock_owner(&lk), hs[2]);
	int rc = tu_finish(g, hs, NT);
	TU_LOG_EQ(&lg, 1, 31, 21, 2, 32, 22);
	ck_assert_int_eq(rcs[2], -ETIMEDOUT);
	ck_assert_int_ge(took[2], 80);
	ck_assert_uint_eq(seen[2], ids[2]);
	ck_assert_ptr_null(gb_lock_owner(&lk));
	return rc;
}

/* A timed-out gb_cond_wait returns -ETIMEDOUT holding the lock, waiting
 * for it if another task has it. */
START_TEST(test_cond_timeout_reacquires)
{
	TU_RUN(cond_timeout_main, NULL, 0);
}
END_TEST

static int cond_cancel_main(void *arg)
{
	(void)arg;
	gb_group *g = tu_group();
	spawn_ids(g, cond_waiter, 1, 2);
	tu_settle();
	TU_LOG_EQ(&lg, 1, 2);

	/* Cancelled while main holds the lock. */
	ck_assert_int_eq(gb_lock_try(&lk), 0);
	gb_cancel(hs[1]);
	tu_settle();
	ck_assert_int_eq(rcs[1], PENDING);
	ck_assert_int_eq(gb_lock_release(&lk), 0);
	ck_assert_ptr_eq(gb_lock_owner(&lk), hs[1]);
	tu_settle();
	TU_LOG_EQ(&lg, 1, 2, 31, 21);
	ck_assert_int_eq(rcs[1], -ECANCELED);
	ck_assert_uint_eq(seen[1], ids[1]);

	/* Cancelled with the lock free. */
	gb_cancel(hs[2]);
	int rc = tu_finish(g, hs, NT);
	TU_LOG_EQ(&lg, 1, 2, 31, 21, 32, 22);
	ck_assert_int_eq(rcs[2], -ECANCELED);
	ck_assert_uint_eq(seen[2], ids[2]);

	/* The cancelled waiters left the queue: a signal now is a no-op and
	 * a new waiter is woken by the next one. */
	gb_cond_signal(&cv);
	g = tu_group();
	spawn_ids(g, cond_waiter, 3, 3);
	tu_settle();
	gb_cond_signal(&cv);
	ck_assert_int_eq(tu_finish(g, hs, NT), 0);
	ck_assert_int_eq(rcs[3], 0);
	ck_assert_ptr_null(gb_lock_owner(&lk));
	return rc;
}

/* A cancelled gb_cond_wait returns -ECANCELED holding the lock (waiting
 * for it if needed) and leaves the condition's queue. */
START_TEST(test_cond_cancel_reacquires)
{
	TU_RUN(cond_cancel_main, NULL, 0);
}
END_TEST

static int holder(void *arg)
{
	int id = (int)(intptr_t)arg;

	ck_assert_int_eq(gb_lock_acquire(&lk, GB_NEVER), 0);
	tu_log_add(&lg, 10 + id);
	ck_assert_int_eq(gb_event_wait(&ev, GB_NEVER), 0);
	tu_log_add(&lg, 20 + id);
	ck_assert_int_eq(gb_lock_release(&lk), 0);
	return 0;
}

static int cond_eperm_main(void *arg)
{
	(void)arg;
	gb_group *g = tu_group();

	ck_assert_int_eq(gb_cond_wait(&cv, &lk, GB_NEVER), -EPERM);
	ck_assert_ptr_null(gb_lock_owner(&lk));
	spawn_ids(g, holder, 1, 1);
	tu_settle();
	ck_assert_int_eq(gb_cond_wait(&cv, &lk, GB_NEVER), -EPERM);
	ck_assert_ptr_eq(gb_lock_owner(&lk), hs[1]);
	gb_event_set(&ev);
	tu_settle();
	/* Neither failed call joined the queue: one signal wakes a real
	 * waiter. */
	spawn_ids(g, cond_waiter, 2, 2);
	tu_settle();
	gb_cond_signal(&cv);
	int rc = tu_finish(g, hs, NT);
	TU_LOG_EQ(&lg, 11, 21, 2, 12, 22);
	ck_assert_int_eq(rcs[2], 0);
	return rc;
}

/* gb_cond_wait without holding the lock (free, or held by another task)
 * fails at once with -EPERM and changes nothing. */
START_TEST(test_cond_wait_without_lock)
{
	TU_RUN(cond_eperm_main, NULL, 0);
}
END_TEST

/* ====================================================== level-triggered */

/* Every blocking call fails with -ECANCELED although it could proceed,
 * and leaves the primitive as it was. */
static void cancelled_calls(void)
{
	for (int k = 0; k < 2; k++) {
		ck_assert_int_eq(gb_event_wait(&ev, GB_NEVER), -ECANCELED);
		ck_assert_int_eq(gb_event_is_set(&ev), 1);
		ck_assert_int_eq(gb_lock_acquire(&lk, GB_NEVER), -ECANCELED);
		ck_assert_ptr_null(gb_lock_owner(&lk));
		ck_assert_int_eq(gb_sem_acquire(&sm, GB_NEVER), -ECANCELED);
		ck_assert_uint_eq(gb_sem_value(&sm), 1);
	}
}

static int self_cancelled(void *arg)
{
	int id = (int)(intptr_t)arg;

	ck_assert_int_eq(gb_lock_acquire(&lk, GB_NEVER), 0);
	gb_cancel(gb_self());
	ck_assert_int_eq(gb_cancelled(gb_self()), 1);
	ck_assert_int_eq(gb_cond_wait(&cv, &lk, GB_NEVER), -ECANCELED);
	ck_assert_ptr_eq(gb_lock_owner(&lk), gb_self());
	ck_assert_int_eq(gb_cond_wait(&cv, &lk, gb_after(GB_SEC(5))),
	                 -ECANCELED);
	ck_assert_ptr_eq(gb_lock_owner(&lk), gb_self());
	ck_assert_int_eq(gb_lock_release(&lk), 0);
	cancelled_calls();
	rcs[id] = 0;
	return 0;
}

static int cancelled_early(void *arg)
{
	int id = (int)(intptr_t)arg;

	cancelled_calls();
	rcs[id] = 0;
	return 0;
}

static int level_main(void *arg)
{
	(void)arg;
	gb_group *g = tu_group();
	gb_event_set(&ev);
	gb_sem_init(&sm, 1, 0);
	int64_t t0 = gb_now();
	spawn_ids(g, self_cancelled, 1, 1);
	spawn_ids(g, cancelled_early, 2, 2);
	gb_cancel(hs[2]);   /* before it ever runs */
	int rc = tu_finish(g, hs, NT);
	ck_assert_int_le(tu_ms_since(t0), tu_slack_ms(50));
	ck_assert_int_eq(rcs[1], 0);
	ck_assert_int_eq(rcs[2], 0);
	ck_assert_uint_eq(gb_sem_value(&sm), 1);
	ck_assert_ptr_null(gb_lock_owner(&lk));
	return rc;
}

/* On a cancelled task every blocking call returns -ECANCELED, again and
 * again, even when it could proceed (event set, lock free, sem > 0), and
 * takes nothing; gb_cond_wait still returns holding the lock. */
START_TEST(test_cancel_level_triggered)
{
	TU_RUN(level_main, NULL, 0);
}
END_TEST

/* ================================================================ suite */

static Suite *sync_suite(void)
{
	Suite *s = suite_create("sync");
	TCase *tc;

	tc = tcase_create("event");
	tcase_add_checked_fixture(tc, reset, NULL);
	tcase_add_test(tc, test_event_blocks_until_set_wakes_all);
	tcase_add_test(tc, test_event_set_then_clear);
	tcase_add_test(tc, test_event_wait_on_set_and_clear);
	tcase_add_test(tc, test_event_deadline);
	tcase_add_test(tc, test_event_cancel_waiter);
	suite_add_tcase(s, tc);

	tc = tcase_create("lock");
	tcase_add_checked_fixture(tc, reset, NULL);
	tcase_add_test(tc, test_lock_fifo_no_barging);
	tcase_add_test(tc, test_lock_errors);
	tcase_add_test(tc, test_lock_deadline);
	tcase_add_loop_test(tc, test_lock_cancel_waiter, 0, 3);
	tcase_add_test(tc, test_lock_cancel_only_waiter);
	tcase_add_test(tc, test_lock_cancel_after_handoff);
	suite_add_tcase(s, tc);

	tc = tcase_create("sem");
	tcase_add_checked_fixture(tc, reset, NULL);
	tcase_add_test(tc, test_sem_counting);
	tcase_add_test(tc, test_sem_fifo);
	tcase_add_test(tc, test_sem_bounds);
	tcase_add_test(tc, test_sem_deadline);
	tcase_add_loop_test(tc, test_sem_cancel_waiter, 0, 3);
	suite_add_tcase(s, tc);

	tc = tcase_create("cond");
	tcase_add_checked_fixture(tc, reset, NULL);
	tcase_add_test(tc, test_cond_wait_releases_and_reacquires);
	tcase_add_test(tc, test_cond_signal_fifo_broadcast);
	tcase_add_test(tc, test_cond_broadcast_all);
	tcase_add_test(tc, test_cond_signal_without_waiter);
	tcase_add_test(tc, test_cond_timeout_reacquires);
	tcase_add_test(tc, test_cond_cancel_reacquires);
	tcase_add_test(tc, test_cond_wait_without_lock);
	suite_add_tcase(s, tc);

	tc = tcase_create("cancel");
	tcase_add_checked_fixture(tc, reset, NULL);
	tcase_add_test(tc, test_cancel_level_triggered);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run_suite(sync_suite());
}
