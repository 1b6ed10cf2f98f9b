/*
 * check_chan.c - bounded channels: FIFO order, item sizes, rendezvous,
 * non-blocking forms, closing, deadlines, cancellation without lost or
 * phantom items, backpressure and throughput.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include "testutil.h"

#define NT 8
#define PENDING 12345   /* rcs[i] of a task whose call has not returned */

/* Shared state, reset before every test (CK_FORK=no runs them in one
 * process). Task i logs i when it starts its call, 10 + i when the call
 * succeeded, 30 + i when it failed. */
static struct tu_log lg;
static int rcs[NT];          /* what task i's call returned */
static int vals[NT];         /* item task i sends, or the one it got */
static int64_t dls[NT];      /* task i's deadline in ms; 0: GB_NEVER */
static int64_t took[NT];     /* ms task i's call took */
static gb_task *hs[NT];      /* handles of tasks 1.. */
static gb_chan *ch;

/* A check for hot loops: ck_assert records its location on every call,
 * which is slow (a write per assertion) over 100 000 items. */
#define HOT_CHECK(expr, ...) do { \
	if (!(expr)) \
		ck_abort_msg(__VA_ARGS__); \
} while (0)

static void reset(void)
{
	memset(&lg, 0, sizeof lg);
	for (int i = 0; i < NT; i++) {
		rcs[i] = PENDING;
		vals[i] = -1;
	}
	memset(dls, 0, sizeof dls);
	memset(took, 0, sizeof took);
	memset(hs, 0, sizeof hs);
	ch = NULL;
}

static void spawn_ids(gb_group *g, gb_fn fn, int from, int to)
{
	for (int id = from; id <= to; id++)
		hs[id] = tu_spawn(g, fn, (void *)(intptr_t)id);
}

static gb_chan *open_chan(size_t isz, size_t cap)
{
	gb_chan *c = NULL;
	ck_assert_int_eq(gb_chan_open(&c, isz, cap), 0);
	ck_assert_ptr_nonnull(c);
	ck_assert_uint_eq(gb_chan_len(c), 0);
	return c;
}

static int recv_int(gb_chan *c, int64_t deadline)
{
	int v = -1;
	ck_assert_int_eq(gb_chan_recv(c, &v, deadline), 0);
	return v;
}

/* Task i sends vals[i] on ch. */
static int sender(void *arg)
{
	int id = (int)(intptr_t)arg;
	int v = vals[id];
	int64_t t0 = gb_now();

	tu_log_add(&lg, id);
	rcs[id] = gb_chan_send(ch, &v, tu_deadline_ms(dls[id]));
	took[id] = tu_ms_since(t0);
	tu_log_add(&lg, (rcs[id] == 0 ? 10 : 30) + id);
	return 0;
}

/* Task i receives one int from ch into vals[i]. */
static int receiver(void *arg)
{
	int id = (int)(intptr_t)arg;
	int v = -7;
	int64_t t0 = gb_now();

	tu_log_add(&lg, id);
	rcs[id] = gb_chan_recv(ch, &v, tu_deadline_ms(dls[id]));
	took[id] = tu_ms_since(t0);
	vals[id] = v;
	if (rcs[id] != 0)
		ck_assert_int_eq(v, -7);   /* a failed recv writes nothing */
	tu_log_add(&lg, (rcs[id] == 0 ? 10 : 30) + id);
	return 0;
}

/* Queues 100, 101, ... into the first cap slots of ch. */
static void fill_ring(size_t cap)
{
	for (int v = 100; v < 100 + (int)cap; v++)
		ck_assert_int_eq(gb_chan_try_send(ch, &v), 0);
}

/* Takes back what fill_ring(cap) queued, checking the order. */
static void drain_ring(size_t cap)
{
	for (int v = 100; v < 100 + (int)cap; v++)
		ck_assert_int_eq(recv_int(ch, GB_NEVER), v);
}

/* Senders 1..3 will send their own id. */
static void number_senders(void)
{
	for (int i = 1; i <= 3; i++)
		vals[i] = i;
}

/* Spawns fn for ids 1..3, lets them block on ch, cancels task c and
 * checks that only it failed, with -ECANCELED. */
static void cancel_one_of_three(gb_group *g, gb_fn fn, int c)
{
	spawn_ids(g, fn, 1, 3);
	tu_settle();
	gb_cancel(hs[c]);
	tu_settle();
	TU_LOG_EQ(&lg, 1, 2, 3, 30 + c);
	ck_assert_int_eq(rcs[c], -ECANCELED);
}

/* ============================================================ basics */

static int fifo_main(void *arg)
{
	(void)arg;
	gb_group *g = tu_group();
	ch = open_chan(sizeof(int), 3);
	for (int v = 1; v <= 3; v++) {
		/* A deadline already past: 0 proves the send did not wait. */
		ck_assert_int_eq(gb_chan_send(ch, &v, gb_now()), 0);
		ck_assert_uint_eq(gb_chan_len(ch), (size_t)v);
	}
	int v = 4;
	ck_assert_int_eq(gb_chan_send(ch, &v, gb_now()), -ETIMEDOUT);
	ck_assert_uint_eq(gb_chan_len(ch), 3);

	vals[1] = 4;
	spawn_ids(g, sender, 1, 1);
	tu_settle();
	ck_assert_int_eq(gb_sleep(gb_after(GB_MSEC(20))), 0);
	TU_LOG_EQ(&lg, 1);   /* the 4th send blocks while full */
	ck_assert_int_eq(rcs[1], PENDING);
	ck_assert_uint_eq(gb_chan_len(ch), 3);

	ck_assert_int_eq(recv_int(ch, GB_NEVER), 1);
	tu_settle();
	TU_LOG_EQ(&lg, 1, 11);   /* a recv made room: it went through */
	ck_assert_int_eq(rcs[1], 0);
	ck_assert_uint_eq(gb_chan_len(ch), 3);
	for (int want = 2; want <= 4; want++) {
		ck_assert_int_eq(recv_int(ch, gb_now()), want);
		ck_assert_uint_eq(gb_chan_len(ch), (size_t)(4 - want));
	}
	ck_assert_int_eq(gb_chan_try_recv(ch, &v), -EAGAIN);
	int rc = tu_finish(g, hs, NT);
	gb_chan_free(ch);
	return rc;
}

/* Capacity 3: three sends go through without waiting, the 4th waits for
 * a recv; items come out in order; gb_chan_len follows. */
START_TEST(test_chan_bounded_fifo)
{
	TU_RUN(fifo_main, NULL, 0);
}
END_TEST

static int wrap_main(void *arg)
{
	(void)arg;
	ch = open_chan(sizeof(int), 3);
	int next_in = 0, next_out = 0;
	/* Interleave so head and tail wrap around the ring many times. */
	for (int round = 0; round < 50; round++) {
		int n_in = 1 + round % 3, n_out = 1 + (round * 7) % 3;
		for (int k = 0; k < n_in && gb_chan_len(ch) < 3; k++) {
			ck_assert_int_eq(gb_chan_try_send(ch, &next_in), 0);
			next_in++;
		}
		for (int k = 0; k < n_out && gb_chan_len(ch) > 0; k++) {
			int v = -1;
			ck_assert_int_eq(gb_chan_try_recv(ch, &v), 0);
			ck_assert_int_eq(v, next_out);
			next_out++;
		}
		ck_assert_uint_eq(gb_chan_len(ch), (size_t)(next_in - next_out));
	}
	ck_assert_int_gt(next_out, 50);
	gb_chan_free(ch);
	return 0;
}

/* FIFO order and length survive the ring's indices wrapping around. */
START_TEST(test_chan_ring_wraps)
{
	TU_RUN(wrap_main, NULL, 0);
}
END_TEST

/* A 24-byte item. */
struct rec {
	uint64_t seq;
	uint32_t check;
	char tag[12];
};
_Static_assert(sizeof(struct rec) == 24, "struct rec must be 24 bytes");

#define CANARY 0xA5

static struct rec make_rec(uint64_t seq)
{
	struct rec r;
	memset(&r, 0, sizeof r);
	r.seq = seq;
	r.check = (uint32_t)(seq * 2654435761u);
	for (int k = 0; k < 11; k++)
		r.tag[k] = (char)('a' + (seq + (uint64_t)k) % 26);
	return r;
}

/* Receives a rec into the middle of a canary-filled buffer and checks
 * that exactly sizeof(struct rec) bytes were written. */
static void recv_rec_checked(uint64_t want_seq, int64_t deadline)
{
	unsigned char buf[8 + sizeof(struct rec) + 8];
	memset(buf, CANARY, sizeof buf);
	ck_assert_int_eq(gb_chan_recv(ch, buf + 8, deadline), 0);
	for (size_t k = 0; k < 8; k++) {
		ck_assert_uint_eq(buf[k], CANARY);
		ck_assert_uint_eq(buf[8 + sizeof(struct rec) + k], CANARY);
	}
	struct rec got, want = make_rec(want_seq);
	memcpy(&got, buf + 8, sizeof got);
	ck_assert_mem_eq(&got, &want, sizeof got);
}

static int rec_producer(void *arg)
{
	int n = (int)(intptr_t)arg;
	struct rec r;   /* reused: the channel must copy it */

	for (int i = 0; i < n; i++) {
		/* From item 6 on, be slow so that the receiver waits first. */
		if (i >= 6)
			ck_assert_int_eq(gb_sleep(gb_after(GB_MSEC(2))), 0);
		r = make_rec((uint64_t)i);
		ck_assert_int_eq(gb_chan_send(ch, &r, GB_NEVER), 0);
		memset(&r, 0xEE, sizeof r);
	}
	return 0;
}

static int struct_main(void *arg)
{
	size_t cap = *(const size_t *)arg;
	gb_group *g = tu_group();
	ch = open_chan(sizeof(struct rec), cap);
	/* The producer fills the ring and then waits with its item. */
	tu_go(g, rec_producer, (void *)(intptr_t)12);
	tu_settle();
	ck_assert_uint_eq(gb_chan_len(ch), cap);
	for (uint64_t i = 0; i < 6; i++)
		recv_rec_checked(i, GB_NEVER);
	/* Now the consumer waits first: items go straight into its buffer. */
	for (uint64_t i = 6; i < 12; i++)
		recv_rec_checked(i, GB_NEVER);
	int rc = gb_group_wait(g, gb_after(GB_SEC(5)));
	ck_assert_int_eq(rc, 0);
	ck_assert_uint_eq(gb_chan_len(ch), 0);
	gb_chan_free(ch);
	return gb_group_close(g);
}

static const size_t struct_caps[] = { 0, 1, 4 };

/* 24-byte items are copied whole and exactly (no more, no less), through
 * the ring, from a waiting sender and into a waiting receiver. */
START_TEST(test_chan_struct_items)
{
	TU_RUN(struct_main, (void *)&struct_caps[_i], 0);
}
END_TEST

static int objs[5];

static int ptr_main(void *arg)
{
	(void)arg;
	ch = open_chan(sizeof(void *), 4);
	void *p = NULL;
	for (int i = 0; i < 4; i++) {
		p = i == 2 ? NULL : (void *)&objs[i];
		ck_assert_int_eq(gb_chan_try_send(ch, &p), 0);
	}
	ck_assert_int_eq(gb_chan_try_send(ch, &p), -EAGAIN);
	for (int i = 0; i < 4; i++) {
		void *q = (void *)&lg;
		ck_assert_int_eq(gb_chan_recv(ch, &q, GB_NEVER), 0);
		ck_assert_ptr_eq(q, i == 2 ? NULL : (void *)&objs[i]);
	}
	ck_assert_uint_eq(gb_chan_len(ch), 0);
	gb_chan_free(ch);
	return 0;
}

/* Pointer items (sizeof(void *)) carry the pointer values, NULL too. */
START_TEST(test_chan_pointer_items)
{
	TU_RUN(ptr_main, NULL, 0);
}
END_TEST

/* Naps 20 ms, then receives like receiver(). */
static int late_receiver(void *arg)
{
	ck_assert_int_eq(gb_sleep(gb_after(GB_MSEC(20))), 0);
	return receiver(arg);
}

static int rendezvous_main(void *arg)
{
	(void)arg;
	gb_group *g = tu_group();
	int v = 5;
	ch = open_chan(sizeof(int), 0);
	ck_assert_int_eq(gb_chan_try_send(ch, &v), -EAGAIN);
	ck_assert_int_eq(gb_chan_try_recv(ch, &v), -EAGAIN);
	ck_assert_int_eq(v, 5);
	ck_assert_int_eq(gb_chan_send(ch, &v, gb_now()), -ETIMEDOUT);

	/* A sender waits until a receiver takes its item. */
	vals[1] = 7;
	spawn_ids(g, sender, 1, 1);
	ck_assert_int_eq(gb_sleep(gb_after(GB_MSEC(20))), 0);
	TU_LOG_EQ(&lg, 1);
	ck_assert_uint_eq(gb_chan_len(ch), 0);
	ck_assert_int_eq(recv_int(ch, gb_now()), 7);   /* no wait needed */
	tu_settle();
	TU_LOG_EQ(&lg, 1, 11);
	ck_assert_int_eq(rcs[1], 0);

	/* A receiver waits until a sender comes. */
	spawn_ids(g, receiver, 2, 2);
	ck_assert_int_eq(gb_sleep(gb_after(GB_MSEC(20))), 0);
	TU_LOG_EQ(&lg, 1, 11, 2);
	v = 9;
	ck_assert_int_eq(gb_chan_try_send(ch, &v), 0);
	ck_assert_uint_eq(gb_chan_len(ch), 0);
	tu_settle();
	TU_LOG_EQ(&lg, 1, 11, 2, 12);
	ck_assert_int_eq(vals[2], 9);

	/* A blocking send returns only when the receiver shows up. */
	int64_t t0 = gb_now();
	spawn_ids(g, late_receiver, 3, 3);
	v = 11;
	ck_assert_int_eq(gb_chan_send(ch, &v, gb_after(GB_SEC(2))), 0);
	ck_assert_int_ge(tu_ms_since(t0), 20);
	tu_settle();
	TU_LOG_EQ(&lg, 1, 11, 2, 12, 3, 13);
	ck_assert_int_eq(vals[3], 11);
	ck_assert_uint_eq(gb_chan_len(ch), 0);
	int rc = tu_finish(g, hs, NT);
	gb_chan_free(ch);
	return rc;
}

/* Capacity 0: send blocks until a receiver takes the item and recv blocks
 * until a sender comes; nothing is ever queued. */
START_TEST(test_chan_rendezvous)
{
	TU_RUN(rendezvous_main, NULL, 0);
}
END_TEST

static int try_main(void *arg)
{
	(void)arg;
	int v = 77;
	ch = open_chan(sizeof(int), 2);
	ck_assert_int_eq(gb_chan_try_recv(ch, &v), -EAGAIN);
	ck_assert_int_eq(v, 77);   /* untouched */
	for (int k = 1; k <= 2; k++)
		ck_assert_int_eq(gb_chan_try_send(ch, &k), 0);
	v = 3;
	ck_assert_int_eq(gb_chan_try_send(ch, &v), -EAGAIN);
	ck_assert_int_eq(gb_chan_try_send(ch, &v), -EAGAIN);
	ck_assert_uint_eq(gb_chan_len(ch), 2);
	ck_assert_int_eq(gb_chan_try_recv(ch, &v), 0);
	ck_assert_int_eq(v, 1);
	v = 3;
	ck_assert_int_eq(gb_chan_try_send(ch, &v), 0);
	for (int want = 2; want <= 3; want++) {
		ck_assert_int_eq(gb_chan_try_recv(ch, &v), 0);
		ck_assert_int_eq(v, want);
	}
	v = 99;
	ck_assert_int_eq(gb_chan_try_recv(ch, &v), -EAGAIN);
	ck_assert_int_eq(v, 99);
	ck_assert_uint_eq(gb_chan_len(ch), 0);
	gb_chan_free(ch);
	return 0;
}

/* try_send on a full channel and try_recv on an empty one give -EAGAIN
 * and change nothing (the rejected item is not queued). */
START_TEST(test_chan_try_full_empty)
{
	TU_RUN(try_main, NULL, 0);
}
END_TEST

/* ============================================================= closing */

static int close_drain_main(void *arg)
{
	(void)arg;
	ch = open_chan(sizeof(int), 4);
	for (int v = 1; v <= 3; v++)
		ck_assert_int_eq(gb_chan_send(ch, &v, GB_NEVER), 0);
	gb_chan_close(ch);
	int v = 4;
	int64_t t0 = gb_now();
	ck_assert_int_eq(gb_chan_send(ch, &v, GB_NEVER), -EPIPE);
	ck_assert_int_eq(gb_chan_try_send(ch, &v), -EPIPE);
	ck_assert_uint_eq(gb_chan_len(ch), 3);
	for (int want = 1; want <= 3; want++)
		ck_assert_int_eq(recv_int(ch, GB_NEVER), want);
	for (int k = 0; k < 2; k++) {
		v = 55;
		ck_assert_int_eq(gb_chan_recv(ch, &v, GB_NEVER), -EPIPE);
		ck_assert_int_eq(gb_chan_try_recv(ch, &v), -EPIPE);
		ck_assert_int_eq(v, 55);
	}
	ck_assert_int_eq(gb_chan_send(ch, &v, GB_NEVER), -EPIPE);
	ck_assert_int_le(tu_ms_since(t0), tu_slack_ms(20));
	ck_assert_uint_eq(gb_chan_len(ch), 0);
	gb_chan_free(ch);
	return 0;
}

/* After close, receivers still get the queued items in order, then
 * -EPIPE every time; senders get -EPIPE at once. */
START_TEST(test_chan_close_drains_then_epipe)
{
	TU_RUN(close_drain_main, NULL, 0);
}
END_TEST

/* Spawns fn for ids 1..3, lets them block on ch, closes ch and checks
 * that all three fail with -EPIPE at once, in FIFO order. */
static void close_wakes_three(gb_group *g, gb_fn fn)
{
	spawn_ids(g, fn, 1, 3);
	tu_settle();
	TU_LOG_EQ(&lg, 1, 2, 3);
	int64_t t0 = gb_now();
	gb_chan_close(ch);
	tu_settle();
	ck_assert_int_le(tu_ms_since(t0), tu_slack_ms(20));
	TU_LOG_EQ(&lg, 1, 2, 3, 31, 32, 33);
	for (int i = 1; i <= 3; i++)
		ck_assert_int_eq(rcs[i], -EPIPE);
}

static int close_senders_main(void *arg)
{
	size_t cap = *(const size_t *)arg;
	gb_group *g = tu_group();
	ch = open_chan(sizeof(int), cap);
	fill_ring(cap);
	number_senders();
	close_wakes_three(g, sender);
	/* Only what was queued before the close comes out. */
	ck_assert_uint_eq(gb_chan_len(ch), cap);
	drain_ring(cap);
	int v = -3;
	ck_assert_int_eq(gb_chan_recv(ch, &v, GB_NEVER), -EPIPE);
	int rc = tu_finish(g, hs, NT);
	gb_chan_free(ch);
	return rc;
}

static const size_t close_caps[] = { 0, 1, 2 };

/* Senders blocked on a full (or capacity-0) channel when it is closed
 * get -EPIPE at once, and their items are never delivered. */
START_TEST(test_chan_close_wakes_senders)
{
	TU_RUN(close_senders_main, (void *)&close_caps[_i], 0);
}
END_TEST

static int close_receivers_main(void *arg)
{
	size_t cap = *(const size_t *)arg;
	gb_group *g = tu_group();
	ch = open_chan(sizeof(int), cap);
	close_wakes_three(g, receiver);
	/* And receivers that come later too. */
	spawn_ids(g, receiver, 4, 4);
	int rc = tu_finish(g, hs, NT);
	ck_assert_int_eq(rcs[4], -EPIPE);
	gb_chan_free(ch);
	return rc;
}

/* Receivers blocked on an empty channel when it is closed get -EPIPE at
 * once, in FIFO order. */
START_TEST(test_chan_close_wakes_receivers)
{
	TU_RUN(close_receivers_main, (void *)&close_caps[_i], 0);
}
END_TEST

/* ============================================================ deadlines */

static int deadline_main(void *arg)
{
	size_t cap = *(const size_t *)arg;
	gb_group *g = tu_group();
	ch = open_chan(sizeof(int), cap);
	fill_ring(cap);

	/* Senders on a full channel: the middle one times out. */
	number_senders();
	dls[2] = 30;
	spawn_ids(g, sender, 1, 3);
	ck_assert_int_eq(gb_sleep(gb_after(GB_MSEC(80))), 0);
	TU_LOG_EQ(&lg, 1, 2, 3, 32);
	ck_assert_int_eq(rcs[2], -ETIMEDOUT);
	tu_took_about(took[2], 30);
	ck_assert_uint_eq(gb_chan_len(ch), cap);
	/* Its item never shows up. */
	drain_ring(cap);
	ck_assert_int_eq(recv_int(ch, GB_NEVER), 1);
	ck_assert_int_eq(recv_int(ch, GB_NEVER), 3);
	int v = -5;
	ck_assert_int_eq(gb_chan_try_recv(ch, &v), -EAGAIN);
	tu_settle();
	ck_assert_int_eq(rcs[1], 0);
	ck_assert_int_eq(rcs[3], 0);

	/* Receivers on an empty channel: the middle one times out, then
	 * the two others get the next two items. */
	memset(&lg, 0, sizeof lg);
	dls[6] = 30;
	spawn_ids(g, receiver, 5, 7);
	ck_assert_int_eq(gb_sleep(gb_after(GB_MSEC(80))), 0);
	TU_LOG_EQ(&lg, 5, 6, 7, 36);
	ck_assert_int_eq(rcs[6], -ETIMEDOUT);
	tu_took_about(took[6], 30);
	/* Two go to the live receivers; with a ring a third is queued. */
	for (v = 50; v <= (cap ? 52 : 51); v++)
		ck_assert_int_eq(gb_chan_send(ch, &v, gb_after(GB_SEC(1))), 0);
	tu_settle();
	ck_assert_int_eq(vals[5], 50);
	ck_assert_int_eq(vals[7], 51);
	ck_assert_int_eq(vals[6], -7);
	if (cap > 0)
		ck_assert_int_eq(recv_int(ch, GB_NEVER), 52);
	ck_assert_uint_eq(gb_chan_len(ch), 0);

	/* The caller's own timed-out calls. */
	int64_t t0 = gb_now();
	v = -9;
	ck_assert_int_eq(gb_chan_recv(ch, &v, gb_after(GB_MSEC(20))), -ETIMEDOUT);
	ck_assert_int_eq(v, -9);
	ck_assert_int_ge(tu_ms_since(t0), 20);
	int rc = tu_finish(g, hs, NT);
	gb_chan_free(ch);
	return rc;
}

static const size_t deadline_caps[] = { 0, 2 };

/* Send on a full channel and recv on an empty one give -ETIMEDOUT on
 * time; the timed-out item is never delivered, the timed-out receiver
 * takes nothing, and the other waiters keep their places. */
START_TEST(test_chan_deadlines)
{
	TU_RUN(deadline_main, (void *)&deadline_caps[_i], 0);
}
END_TEST

static int send_full_deadline_main(void *arg)
{
	(void)arg;
	ch = open_chan(sizeof(int), 1);
	int v = 1;
	ck_assert_int_eq(gb_chan_send(ch, &v, GB_NEVER), 0);
	v = 2;
	int64_t t0 = gb_now();
	ck_assert_int_eq(gb_chan_send(ch, &v, gb_after(GB_MSEC(30))), -ETIMEDOUT);
	ck_assert_int_ge(tu_ms_since(t0), 30);
	ck_assert_int_le(tu_ms_since(t0), 30 + tu_slack_ms(100));
	ck_assert_uint_eq(gb_chan_len(ch), 1);
	ck_assert_int_eq(recv_int(ch, GB_NEVER), 1);
	ck_assert_int_eq(gb_chan_try_recv(ch, &v), -EAGAIN);
	gb_chan_free(ch);
	return 0;
}

/* The caller's send on a full channel times out on time and leaves no
 * item behind. */
START_TEST(test_chan_send_deadline)
{
	TU_RUN(send_full_deadline_main, NULL, 0);
}
END_TEST

/* ======================================================== cancellation */

static int cancel_sender_main(void *arg)
{
	int which = *(const int *)arg;
	size_t cap = (size_t)(which / 3);   /* 0 or 1 */
	int c = 1 + which % 3;              /* which sender to cancel */
	gb_group *g = tu_group();
	ch = open_chan(sizeof(int), cap);
	int v = 100;
	if (cap)
		ck_assert_int_eq(gb_chan_try_send(ch, &v), 0);
	number_senders();
	cancel_one_of_three(g, sender, c);
	ck_assert_uint_eq(gb_chan_len(ch), cap);
	if (cap)
		ck_assert_int_eq(recv_int(ch, GB_NEVER), 100);
	for (int i = 1; i <= 3; i++)
		if (i != c)
			ck_assert_int_eq(recv_int(ch, GB_NEVER), i);
	v = -1;
	ck_assert_int_eq(gb_chan_try_recv(ch, &v), -EAGAIN);
	ck_assert_int_eq(v, -1);
	int rc = tu_finish(g, hs, NT);
	for (int i = 1; i <= 3; i++)
		if (i != c)
			ck_assert_int_eq(rcs[i], 0);
	gb_chan_free(ch);
	return rc;
}

static const int cancel_cases[] = { 0, 1, 2, 3, 4, 5 };

/* A sender cancelled while waiting (first, middle or last; capacity 0 or
 * full ring) gets -ECANCELED and its item is never delivered; the others
 * keep their order. */
START_TEST(test_chan_cancel_sender)
{
	TU_RUN(cancel_sender_main, (void *)&cancel_cases[_i], 0);
}
END_TEST

static int cancel_receiver_main(void *arg)
{
	int which = *(const int *)arg;
	size_t cap = (size_t)(which / 3) * 2;   /* 0 or 2 */
	int c = 1 + which % 3;
	gb_group *g = tu_group();
	ch = open_chan(sizeof(int), cap);
	cancel_one_of_three(g, receiver, c);
	ck_assert_int_eq(vals[c], -7);
	/* Two items for the two live receivers, in their order. */
	int v = 10;
	ck_assert_int_eq(gb_chan_send(ch, &v, gb_after(GB_SEC(1))), 0);
	v = 20;
	ck_assert_int_eq(gb_chan_send(ch, &v, gb_after(GB_SEC(1))), 0);
	/* A third is not swallowed by the cancelled one. */
	v = 30;
	if (cap) {
		ck_assert_int_eq(gb_chan_try_send(ch, &v), 0);
		ck_assert_uint_eq(gb_chan_len(ch), 1);
	} else {
		ck_assert_int_eq(gb_chan_try_send(ch, &v), -EAGAIN);
	}
	int rc = tu_finish(g, hs, NT);
	int want = 10;
	for (int i = 1; i <= 3; i++)
		if (i != c) {
			ck_assert_int_eq(rcs[i], 0);
			ck_assert_int_eq(vals[i], want);
			want += 10;
		}
	ck_assert_int_eq(vals[c], -7);
	if (cap)
		ck_assert_int_eq(recv_int(ch, GB_NEVER), 30);
	gb_chan_free(ch);
	return rc;
}

/* A receiver cancelled while waiting gets -ECANCELED and never swallows
 * an item: the next receivers get them, in order. */
START_TEST(test_chan_cancel_receiver)
{
	TU_RUN(cancel_receiver_main, (void *)&cancel_cases[_i], 0);
}
END_TEST

static int handoff_cancel_main(void *arg)
{
	(void)arg;
	gb_group *g = tu_group();
	ch = open_chan(sizeof(int), 0);

	/* Receiver 1 is handed an item, then cancelled before it runs. */
	spawn_ids(g, receiver, 1, 2);
	tu_settle();
	int v = 41;
	ck_assert_int_eq(gb_chan_try_send(ch, &v), 0);
	gb_cancel(hs[1]);
	v = 42;
	int rc42 = gb_chan_send(ch, &v, gb_after(GB_MSEC(100)));
	tu_settle();
	/* What the receivers got is exactly what was sent with 0: 41
	 * (whoever has it) and 42 if its send succeeded. */
	int got41 = 0, got42 = 0;
	for (int i = 1; i <= 2; i++)
		if (rcs[i] == 0) {
			got41 += vals[i] == 41;
			got42 += vals[i] == 42;
			ck_assert(vals[i] == 41 || vals[i] == 42);
		} else {
			ck_assert_int_eq(rcs[i], -ECANCELED);
		}
	ck_assert_int_eq(got41, 1);
	ck_assert_int_eq(got42, rc42 == 0);
	ck_assert_int_eq(rcs[2], 0);

	/* Sender 3's item is taken, then it is cancelled before it runs:
	 * its result must say the item went out. */
	vals[3] = 43;
	spawn_ids(g, sender, 3, 3);
	tu_settle();
	v = -1;
	ck_assert_int_eq(gb_chan_try_recv(ch, &v), 0);
	ck_assert_int_eq(v, 43);
	gb_cancel(hs[3]);
	int rc = tu_finish(g, hs, NT);
	ck_assert_int_eq(rcs[3], 0);
	gb_chan_free(ch);
	return rc;
}

/* A waiter cancelled after the hand-off but before it runs reports the
 * truth: a receiver that got an item returns it, a sender whose item was
 * taken returns 0 (no lost item, no duplicate on retry). */
START_TEST(test_chan_cancel_after_handoff)
{
	TU_RUN(handoff_cancel_main, NULL, 0);
}
END_TEST

/* Checkpoints on a cancelled task: each call fails although it could
 * proceed, and moves nothing. */
static int cancelled_chan_calls(void *arg)
{
	gb_chan **cs = arg;   /* [0]: ring with room and items, [1]: cap 0 */
	int v = 99;

	gb_cancel(gb_self());
	for (int k = 0; k < 2; k++) {
		ck_assert_int_eq(gb_chan_send(cs[0], &v, GB_NEVER), -ECANCELED);
		ck_assert_uint_eq(gb_chan_len(cs[0]), 1);
		v = 99;
		ck_assert_int_eq(gb_chan_recv(cs[0], &v, GB_NEVER), -ECANCELED);
		ck_assert_int_eq(v, 99);
		ck_assert_uint_eq(gb_chan_len(cs[0]), 1);
		/* A receiver (task 1) waits on cs[1]: still no send. */
		ck_assert_int_eq(gb_chan_send(cs[1], &v, GB_NEVER), -ECANCELED);
		ck_assert_int_eq(rcs[1], PENDING);
	}
	rcs[0] = 0;
	return 0;
}

static int cancelled_main(void *arg)
{
	(void)arg;
	gb_chan *cs[2];
	int v = 5;
	cs[0] = open_chan(sizeof(int), 4);
	cs[1] = open_chan(sizeof(int), 0);
	ck_assert_int_eq(gb_chan_try_send(cs[0], &v), 0);
	ch = cs[1];
	gb_group *g = tu_group();
	dls[1] = 100;
	spawn_ids(g, receiver, 1, 1);
	tu_settle();
	tu_go(g, cancelled_chan_calls, cs);
	tu_settle();
	ck_assert_int_eq(rcs[0], 0);
	int rc = tu_finish(g, hs, NT);
	ck_assert_int_eq(rcs[1], -ETIMEDOUT);   /* it never got anything */
	ck_assert_int_eq(recv_int(cs[0], GB_NEVER), 5);
	ck_assert_int_eq(gb_chan_try_recv(cs[0], &v), -EAGAIN);
	gb_chan_free(cs[0]);
	gb_chan_free(cs[1]);
	return rc;
}

/* On a cancelled task, send and recv return -ECANCELED every time even
 * when they could proceed (room, items, a waiting receiver), and move no
 * item. */
START_TEST(test_chan_cancelled_level_triggered)
{
	TU_RUN(cancelled_main, NULL, 0);
}
END_TEST

/* ------------------------------------------------------------ stress */

#define NPROD 6
#define NCONS 4
#define PER 300

static struct {
	uint32_t rng;
	unsigned char sent[NPROD][PER];
	unsigned char got[NPROD][PER];
	int last[NCONS][NPROD];       /* last index consumer c got from p */
	int prod_done[NPROD];         /* how each producer stopped */
	int cons_done[NCONS];
	unsigned char in_send[NPROD], in_recv[NCONS];  /* inside the call */
	int timeouts, cancelled_sends, cancelled_recvs, nsent, nrecv;
	size_t maxlen;
	gb_task *prod[NPROD], *cons[NCONS];
} st;

static uint32_t rnd(uint32_t n)
{
	st.rng = st.rng * 1103515245u + 12345u;
	return (st.rng >> 16) % n;
}

/* Yields 0-2 times or naps briefly, at random. */
static int jitter(void)
{
	uint32_t r = rnd(8);
	int rc = 0;

	if (r == 0)
		rc = gb_sleep(gb_after(GB_USEC(200)));
	else
		for (uint32_t k = 0; k < r % 3 && rc == 0; k++)
			rc = gb_yield();
	return rc;
}

/* Mostly no deadline; sometimes a short one, or one already past (which
 * fails only if the call would have to wait). */
static int64_t stress_deadline(void)
{
	uint32_t r = rnd(16);

	if (r == 0)
		return gb_now();
	if (r <= 2)
		return gb_after(GB_USEC(300));
	return GB_NEVER;
}

static void note_len(void)
{
	size_t n = gb_chan_len(ch);
	HOT_CHECK(n <= 3, "channel holds %zu items", n);
	if (n > st.maxlen)
		st.maxlen = n;
}

static int stress_producer(void *arg)
{
	int p = (int)(intptr_t)arg;

	for (int i = 0; i < PER; i++) {
		if (jitter() == -ECANCELED) {
			st.prod_done[p] = -ECANCELED;
			return 0;
		}
		uint32_t item = (uint32_t)p << 16 | (uint32_t)i;
		st.in_send[p] = 1;
		int rc = gb_chan_send(ch, &item, stress_deadline());
		st.in_send[p] = 0;
		note_len();
		if (rc == 0) {
			st.sent[p][i] = 1;
			st.nsent++;
		} else if (rc == -ETIMEDOUT) {
			st.timeouts++;
		} else {
			ck_assert_msg(rc == -ECANCELED, "send returned %d", rc);
			st.cancelled_sends++;
			st.prod_done[p] = rc;
			return 0;
		}
	}
	st.prod_done[p] = 1;
	return 0;
}

static int stress_consumer(void *arg)
{
	int c = (int)(intptr_t)arg;

	for (;;) {
		if (jitter() == -ECANCELED) {
			st.cons_done[c] = -ECANCELED;
			return 0;
		}
		uint32_t item = 0xFFFFFFFFu;
		st.in_recv[c] = 1;
		int rc = gb_chan_recv(ch, &item, stress_deadline());
		st.in_recv[c] = 0;
		note_len();
		if (rc == -ETIMEDOUT) {
			HOT_CHECK(item == 0xFFFFFFFFu, "timed-out recv wrote %#x", item);
			st.timeouts++;
			continue;
		}
		if (rc != 0) {
			ck_assert_msg(rc == -ECANCELED || rc == -EPIPE,
			              "recv returned %d", rc);
			ck_assert_uint_eq(item, 0xFFFFFFFFu);
			if (rc == -ECANCELED)
				st.cancelled_recvs++;
			st.cons_done[c] = rc;
			return 0;
		}
		int p = (int)(item >> 16), i = (int)(item & 0xFFFF);
		HOT_CHECK(p < NPROD && i < PER, "bogus item %#x", item);
		HOT_CHECK(st.got[p][i] == 0, "item %d/%d received twice", p, i);
		HOT_CHECK(i > st.last[c][p], "item %d/%d out of order", p, i);
		st.last[c][p] = i;
		st.got[p][i] = 1;
		st.nrecv++;
	}
}

static int stress_main(void *arg)
{
	int seed = *(const int *)arg;
	static const size_t caps[] = { 0, 1, 3 };
	size_t cap = caps[seed % 3];

	st.rng = 0x9e3779b9u * (uint32_t)(seed + 1);
	for (int c = 0; c < NCONS; c++)
		for (int p = 0; p < NPROD; p++)
			st.last[c][p] = -1;
	ch = open_chan(sizeof(uint32_t), cap);
	gb_group *gp = tu_group();
	gb_group *gc = tu_group();
	for (int p = 0; p < NPROD; p++)
		st.prod[p] = tu_spawn(gp, stress_producer, (void *)(intptr_t)p);
	for (int c = 0; c < NCONS; c++)
		st.cons[c] = tu_spawn(gc, stress_consumer, (void *)(intptr_t)c);

	/* Cancel producers 1, 3, 5 and consumers 0, 2 as the traffic goes
	 * on, each at a moment when it is inside its send or recv (so,
	 * since main runs, waiting in the channel or just woken from it).
	 * Consumers 1 and 3 and producers 0, 2 and 4 are never cancelled, so
	 * everything keeps moving. */
	static const int kill_p[] = { 1, 3, 5 }, kill_c[] = { 0, 2 };
	int64_t end = gb_after(GB_SEC(5));
	for (int k = 0; k < 5; k++) {
		int victim = k < 3 ? kill_p[k] : kill_c[k - 3];
		const unsigned char *inside = k < 3 ? &st.in_send[victim]
		                                    : &st.in_recv[victim];
		for (uint32_t y = rnd(5); y > 0; y--)
			ck_assert_int_eq(gb_yield(), 0);
		while ((st.nsent < 60 * (k + 1) || !*inside) && gb_now() < end)
			ck_assert_int_eq(gb_yield(), 0);
		ck_assert_msg(*inside, "victim %d never caught in a call", k);
		gb_cancel(k < 3 ? st.prod[victim] : st.cons[victim]);
	}
	ck_assert_int_eq(gb_group_wait(gp, gb_after(GB_SEC(8))), 0);
	gb_chan_close(ch);
	ck_assert_int_eq(gb_group_wait(gc, gb_after(GB_SEC(8))), 0);
	/* Whatever is left after the consumers ended (cap > 0). */
	uint32_t item;
	while (gb_chan_try_recv(ch, &item) == 0) {
		int p = (int)(item >> 16), i = (int)(item & 0xFFFF);
		ck_assert_int_eq(st.got[p][i], 0);
		st.got[p][i] = 1;
		st.nrecv++;
	}
	ck_assert_int_eq(gb_chan_try_recv(ch, &item), -EPIPE);
	ck_assert_int_eq(gb_group_close(gc), 0);
	ck_assert_int_eq(gb_group_close(gp), 0);

	/* Every item whose send returned 0 arrived exactly once; no other
	 * item arrived at all. */
	for (int p = 0; p < NPROD; p++)
		for (int i = 0; i < PER; i++)
			ck_assert_msg(st.sent[p][i] == st.got[p][i],
			              "item %d/%d: sent %d, received %d", p, i,
			              st.sent[p][i], st.got[p][i]);
	ck_assert_int_eq(st.nsent, st.nrecv);
	for (int k = 0; k < 3; k++)
		ck_assert_int_eq(st.prod_done[kill_p[k]], -ECANCELED);
	for (int k = 0; k < 2; k++)
		ck_assert_int_eq(st.cons_done[kill_c[k]], -ECANCELED);
	for (int p = 0; p < NPROD; p += 2)
		ck_assert_int_eq(st.prod_done[p], 1);
	ck_assert_int_eq(st.cons_done[1], -EPIPE);
	ck_assert_int_eq(st.cons_done[3], -EPIPE);
	/* Some cancellations hit a waiting send or recv (the others hit a
	 * task just woken with success, at its next checkpoint). */
	ck_assert_int_ge(st.cancelled_sends + st.cancelled_recvs, 1);
	ck_assert_int_gt(st.timeouts, 0);
	ck_assert_int_gt(st.nsent, PER);
	ck_assert_uint_eq(st.maxlen, cap);
	for (int p = 0; p < NPROD; p++)
		gb_task_release(st.prod[p]);
	for (int c = 0; c < NCONS; c++)
		gb_task_release(st.cons[c]);
	gb_chan_free(ch);
	return 0;
}

static const int seeds[] = { 0, 1, 2, 3, 4, 5 };

/* Several producers and consumers, some cancelled mid-wait and some
 * timing out: every item sent with 0 is received exactly once, in order
 * per producer, and nothing else is received. */
START_TEST(test_chan_stress_cancel)
{
	memset(&st, 0, sizeof st);
	TU_RUN(stress_main, (void *)&seeds[_i], 0);
}
END_TEST

/* -------------------------------------------------------- backpressure */

#define BP_CAP 8
#define BP_N 120

static struct {
	int sent, taken;
	size_t maxlen;
	int64_t prod_ms;
} bp;

static int bp_producer(void *arg)
{
	(void)arg;
	int64_t t0 = gb_now();
	for (int i = 0; i < BP_N; i++) {
		ck_assert_int_eq(gb_chan_send(ch, &i, GB_NEVER), 0);
		bp.sent++;
		size_t n = gb_chan_len(ch);
		ck_assert_uint_le(n, BP_CAP);
		if (n > bp.maxlen)
			bp.maxlen = n;
		/* At most one item more may sit in a woken consumer's hands. */
		ck_assert_int_le(bp.sent - bp.taken, BP_CAP + 1);
	}
	bp.prod_ms = tu_ms_since(t0);
	return 0;
}

static int bp_consumer(void *arg)
{
	(void)arg;
	for (int i = 0; i < BP_N; i++) {
		ck_assert_int_eq(recv_int(ch, GB_NEVER), i);
		bp.taken++;
		ck_assert_uint_le(gb_chan_len(ch), BP_CAP);
		ck_assert_int_eq(gb_sleep(gb_after(GB_USEC(500))), 0);
	}
	return 0;
}

static int bp_main(void *arg)
{
	(void)arg;
	memset(&bp, 0, sizeof bp);
	ch = open_chan(sizeof(int), BP_CAP);
	gb_group *g = tu_group();
	tu_go(g, bp_producer, NULL);
	tu_go(g, bp_consumer, NULL);
	ck_assert_int_eq(gb_group_wait(g, gb_after(GB_SEC(10))), 0);
	ck_assert_int_eq(bp.sent, BP_N);
	ck_assert_int_eq(bp.taken, BP_N);
	ck_assert_uint_eq(bp.maxlen, BP_CAP);   /* it did fill up... */
	/* ...and was held back to the consumer's pace. */
	ck_assert_int_ge(bp.prod_ms, (BP_N - BP_CAP - 1) / 2);
	ck_assert_uint_eq(gb_chan_len(ch), 0);
	gb_chan_free(ch);
	return gb_group_close(g);
}

/* A fast producer feeding a slow consumer is held to at most capacity
 * items ahead: the channel never holds more than its capacity. */
START_TEST(test_chan_backpressure)
{
	TU_RUN(bp_main, NULL, 0);
}
END_TEST

/* ---------------------------------------------------------- throughput */

#define BULK_N 100000
#define BULK_CAP 64

static int bulk_producer(void *arg)
{
	(void)arg;
	for (uint32_t i = 0; i < BULK_N; i++)
		HOT_CHECK(gb_chan_send(ch, &i, GB_NEVER) == 0, "send %u failed", i);
	gb_chan_close(ch);
	return 0;
}

static int bulk_consumer(void *arg)
{
	uint32_t *count = arg, v;
	int rc;

	while ((rc = gb_chan_recv(ch, &v, GB_NEVER)) == 0) {
		/* In order, none lost, none twice. */
		HOT_CHECK(v == *count, "got %u, want %u", v, *count);
		HOT_CHECK(gb_chan_len(ch) <= BULK_CAP, "len %zu", gb_chan_len(ch));
		(*count)++;
	}
	ck_assert_int_eq(rc, -EPIPE);
	return 0;
}

static int bulk_main(void *arg)
{
	(void)arg;
	uint32_t count = 0;
	ch = open_chan(sizeof(uint32_t), BULK_CAP);
	gb_group *g = tu_group();
	int64_t t0 = gb_now();
	tu_go(g, bulk_consumer, &count);
	tu_go(g, bulk_producer, NULL);
	ck_assert_int_eq(gb_group_wait(g, gb_after(GB_SEC(15))), 0);
	ck_assert_uint_eq(count, BULK_N);
	if (!tu_under_valgrind())
		ck_assert_int_le(tu_ms_since(t0), 3000);
	gb_chan_free(ch);
	return gb_group_close(g);
}

/* 100 000 items through a capacity-64 channel between two tasks arrive
 * in order, quickly. */
START_TEST(test_chan_bulk_in_order)
{
	TU_RUN(bulk_main, NULL, 0);
}
END_TEST

/* ================================================================ suite */

static Suite *chan_suite(void)
{
	Suite *s = suite_create("chan");
	TCase *tc;

	tc = tcase_create("basic");
	tcase_add_checked_fixture(tc, reset, NULL);
	tcase_add_test(tc, test_chan_bounded_fifo);
	tcase_add_test(tc, test_chan_ring_wraps);
	tcase_add_loop_test(tc, test_chan_struct_items, 0, 3);
	tcase_add_test(tc, test_chan_pointer_items);
	tcase_add_test(tc, test_chan_rendezvous);
	tcase_add_test(tc, test_chan_try_full_empty);
	suite_add_tcase(s, tc);

	tc = tcase_create("close");
	tcase_add_checked_fixture(tc, reset, NULL);
	tcase_add_test(tc, test_chan_close_drains_then_epipe);
	tcase_add_loop_test(tc, test_chan_close_wakes_senders, 0, 3);
	tcase_add_loop_test(tc, test_chan_close_wakes_receivers, 0, 3);
	suite_add_tcase(s, tc);

	tc = tcase_create("deadline");
	tcase_add_checked_fixture(tc, reset, NULL);
	tcase_add_loop_test(tc, test_chan_deadlines, 0, 2);
	tcase_add_test(tc, test_chan_send_deadline);
	suite_add_tcase(s, tc);

	tc = tcase_create("cancel");
	tcase_add_checked_fixture(tc, reset, NULL);
	tcase_add_loop_test(tc, test_chan_cancel_sender, 0, 6);
	tcase_add_loop_test(tc, test_chan_cancel_receiver, 0, 6);
	tcase_add_test(tc, test_chan_cancel_after_handoff);
	tcase_add_test(tc, test_chan_cancelled_level_triggered);
	tcase_add_loop_test(tc, test_chan_stress_cancel, 0, 6);
	suite_add_tcase(s, tc);

	tc = tcase_create("flow");
	tcase_add_checked_fixture(tc, reset, NULL);
	tcase_add_test(tc, test_chan_backpressure);
	tcase_add_test(tc, test_chan_bulk_in_order);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run_suite(chan_suite());
}
