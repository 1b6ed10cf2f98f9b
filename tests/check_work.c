/*
 * check_work.c - gb_work and gb_getaddrinfo: work runs on worker threads,
 * in parallel; results reach the right task; a waiter that gives up
 * (deadline, cancellation) returns at once while the job's discard
 * callback runs exactly once on the scheduler's thread when the job ends;
 * gb_run waits for abandoned jobs; name lookups succeed and fail with the
 * documented codes.
 *
 * Job functions run on worker threads: everything they touch is atomic or
 * owned by the job. Checks run after gb_run() returns where possible.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

/* ------------------------------------------------------------ helpers */

static pthread_t main_thread;

/* Atomic reads for assertions (readable failure messages). */
static int ld(atomic_int *a)
{
	return atomic_load(a);
}

static void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* A heap-allocated job argument whose life the tests follow. */
struct job {
	long sleep_ms;
	int value;
	atomic_int ran;          /* fn started */
	atomic_int finished;     /* fn returned */
	pthread_t thread;        /* where fn ran */
};

/* Counters shared by every test's discard callback. */
static struct {
	atomic_int calls;
	atomic_int wrong_thread;
	atomic_int wrong_result;
	atomic_int before_finish;
	int64_t last_at;
} disc;

static void *job_fn(void *arg)
{
	struct job *j = arg;

	j->thread = pthread_self();
	atomic_store(&j->ran, 1);
	sleep_ms(j->sleep_ms);
	atomic_store(&j->finished, 1);
	return (char *)j + j->value; /* a result that identifies the job */
}

/* Checks what it is handed, then frees the job. */
static void job_discard(void *arg, void *res)
{
	struct job *j = arg;

	atomic_fetch_add(&disc.calls, 1);
	if (!pthread_equal(pthread_self(), main_thread))
		atomic_fetch_add(&disc.wrong_thread, 1);
	if (res != (char *)j + j->value)
		atomic_fetch_add(&disc.wrong_result, 1);
	if (!atomic_load(&j->finished))
		atomic_fetch_add(&disc.before_finish, 1);
	disc.last_at = gb_now();
	free(j);
}

static struct job *job_new(long ms, int value)
{
	struct job *j = calloc(1, sizeof *j);

	ck_assert_ptr_nonnull(j);
	j->sleep_ms = ms;
	j->value = value;
	return j;
}

static void setup(void)
{
	main_thread = pthread_self();
	memset(&disc, 0, sizeof disc);
}

/* -------------------------------------------------- runs on a thread */

struct basic_ctx {
	struct job *j;
	int rc, rc_null;
	void *res;
	int ran_null;
};

static int basic_main(void *arg)
{
	struct basic_ctx *c = arg;

	c->res = NULL;
	c->rc = gb_work(job_fn, c->j, job_discard, &c->res, gb_after(GB_SEC(5)));
	/* result may be NULL: the job still runs and is waited for */
	atomic_store(&c->j->ran, 0);
	c->rc_null = gb_work(job_fn, c->j, job_discard, NULL, gb_after(GB_SEC(5)));
	c->ran_null = atomic_load(&c->j->ran);
	return 0;
}

/* fn runs on a thread other than the scheduler's and its result comes back;
 * discard is not called for a job whose waiter got the result. */
START_TEST(test_work_runs_on_thread)
{
	struct basic_ctx c;

	memset(&c, 0, sizeof c);
	c.j = job_new(0, 3);
	TU_RUN(basic_main, &c, 0);
	ck_assert_int_eq(c.rc, 0);
	ck_assert_ptr_eq(c.res, (char *)c.j + 3);
	ck_assert_int_eq(ld(&c.j->finished), 1);
	ck_assert_msg(!pthread_equal(c.j->thread, main_thread),
	              "fn ran on the scheduler's thread");
	ck_assert_int_eq(c.rc_null, 0);
	ck_assert_int_eq(c.ran_null, 1);
	ck_assert_int_eq(ld(&disc.calls), 0);
	free(c.j);
}
END_TEST

/* ------------------------------------------------------- concurrency */

#define NPAR 4

static atomic_int running_now, running_max;

static void *par_fn(void *arg)
{
	struct job *j = arg;
	int now = atomic_fetch_add(&running_now, 1) + 1;
	int max = atomic_load(&running_max);

	while (now > max && !atomic_compare_exchange_weak(&running_max, &max, now))
		;
	j->thread = pthread_self();
	sleep_ms(j->sleep_ms);
	atomic_fetch_sub(&running_now, 1);
	atomic_store(&j->finished, 1);
	return (void *)(intptr_t)(j->value * 10);
}

struct par_ctx {
	struct job jobs[NPAR];
	int rc[NPAR];
	void *res[NPAR];
	int64_t elapsed_ms;
	int grc;
};

struct par_arg {
	struct par_ctx *c;
	int i;
};

static int par_task(void *arg)
{
	struct par_arg *a = arg;
	struct par_ctx *c = a->c;

	c->rc[a->i] = gb_work(par_fn, &c->jobs[a->i], NULL, &c->res[a->i],
	                      gb_after(GB_SEC(5)));
	return 0;
}

static int par_main(void *arg)
{
	struct par_ctx *c = arg;
	struct par_arg a[NPAR];
	gb_group *g = tu_group();
	int64_t t0 = gb_now();

	for (int i = 0; i < NPAR; i++) {
		a[i] = (struct par_arg){ c, i };
		tu_go(g, par_task, &a[i]);
	}
	c->grc = tu_join(g);
	c->elapsed_ms = tu_ms_since(t0);
	return 0;
}

/* 4 tasks offloading 200 ms jobs at once run in parallel (well under
 * 4 x 200 ms) on 4 distinct threads, and each gets its own job's result. */
START_TEST(test_work_concurrent)
{
	struct par_ctx c;

	memset(&c, 0, sizeof c);
	atomic_store(&running_now, 0);
	atomic_store(&running_max, 0);
	for (int i = 0; i < NPAR; i++) {
		c.jobs[i].sleep_ms = 200;
		c.jobs[i].value = i + 1;
	}
	TU_RUN(par_main, &c, 0);
	ck_assert_int_eq(c.grc, 0);
	for (int i = 0; i < NPAR; i++) {
		ck_assert_int_eq(c.rc[i], 0);
		ck_assert_ptr_eq(c.res[i], (void *)(intptr_t)((i + 1) * 10));
		ck_assert(ld(&c.jobs[i].finished));
		ck_assert(!pthread_equal(c.jobs[i].thread, main_thread));
		for (int k = 0; k < i; k++)
			ck_assert_msg(!pthread_equal(c.jobs[i].thread, c.jobs[k].thread),
			              "jobs %d and %d shared a thread", k, i);
	}
	ck_assert_int_eq(ld(&running_max), NPAR);
	ck_assert_msg(c.elapsed_ms >= 200, "took %lld ms", (long long)c.elapsed_ms);
	ck_assert_msg(c.elapsed_ms < tu_slack_ms(450),
	              "4 x 200 ms jobs took %lld ms: not concurrent",
	              (long long)c.elapsed_ms);
}
END_TEST

struct many_ctx {
	struct job jobs[12];
	int rc[12];
	void *res[12];
	int grc;
};

struct many_arg {
	struct many_ctx *c;
	int i;
};

static int many_task(void *arg)
{
	struct many_arg *a = arg;

	a->c->rc[a->i] = gb_work(job_fn, &a->c->jobs[a->i], NULL,
	                         &a->c->res[a->i], gb_after(GB_SEC(5)));
	return 0;
}

static int many_main(void *arg)
{
	struct many_ctx *c = arg;
	struct many_arg a[12];
	gb_group *g = tu_group();

	for (int i = 0; i < 12; i++) {
		a[i] = (struct many_arg){ c, i };
		tu_go(g, many_task, &a[i]);
	}
	c->grc = tu_join(g);
	return 0;
}

/* More jobs than workers: they queue, all complete, and every task gets
 * exactly its own job's result. */
START_TEST(test_work_more_jobs_than_workers)
{
	struct many_ctx c;

	memset(&c, 0, sizeof c);
	for (int i = 0; i < 12; i++) {
		c.jobs[i].sleep_ms = 10 + (i % 3) * 10;
		c.jobs[i].value = i;
	}
	TU_RUN(many_main, &c, 0);
	ck_assert_int_eq(c.grc, 0);
	for (int i = 0; i < 12; i++) {
		ck_assert_int_eq(c.rc[i], 0);
		ck_assert_ptr_eq(c.res[i], (char *)&c.jobs[i] + i);
	}
	ck_assert_int_eq(ld(&disc.calls), 0);
}
END_TEST

/* ---------------------------------------------------------- deadline */

/* An abandoned job was not yet discarded when gb_work returned, and was
 * discarded exactly once later, properly (right thread, result, after fn). */
static void assert_discarded_later(int disc_at_return, int disc_after_sleep)
{
	ck_assert_int_eq(disc_at_return, 0);
	ck_assert_int_eq(disc_after_sleep, 1);
	ck_assert_int_eq(ld(&disc.calls), 1);
	ck_assert_int_eq(ld(&disc.wrong_thread), 0);
	ck_assert_int_eq(ld(&disc.wrong_result), 0);
	ck_assert_int_eq(ld(&disc.before_finish), 0);
}


struct dl_ctx {
	struct job *j;
	int rc;
	void *res;
	int64_t waited_ms;
	int disc_at_return;
	int disc_after_sleep;
	int finished_at_return;
};

static int dl_main(void *arg)
{
	struct dl_ctx *c = arg;
	int64_t t0 = gb_now();

	c->res = (void *)0x1;
	c->rc = gb_work(job_fn, c->j, job_discard, &c->res, gb_after(GB_MSEC(50)));
	c->waited_ms = tu_ms_since(t0);
	c->disc_at_return = atomic_load(&disc.calls);
	c->finished_at_return = atomic_load(&c->j->finished);
	c->j = NULL; /* owned by the pool now */
	gb_sleep(gb_after(GB_MSEC(700)));
	c->disc_after_sleep = atomic_load(&disc.calls);
	return 0;
}

/* A 500 ms job with a 50 ms deadline: -ETIMEDOUT after ~50 ms, result
 * untouched; discard(arg, result) runs exactly once, after fn finished, on
 * the scheduler's thread, while gb_run is still running. */
START_TEST(test_work_deadline)
{
	struct dl_ctx c;
	int64_t t0 = gb_now();

	memset(&c, 0, sizeof c);
	c.j = job_new(500, 7);
	TU_RUN(dl_main, &c, 0);
	ck_assert_int_eq(c.rc, -ETIMEDOUT);
	ck_assert_ptr_eq(c.res, (void *)0x1);
	ck_assert_int_ge(c.waited_ms, 50);
	ck_assert_msg(c.waited_ms < tu_slack_ms(150), "gave up after %lld ms",
	              (long long)c.waited_ms);
	ck_assert_int_eq(c.finished_at_return, 0);
	assert_discarded_later(c.disc_at_return, c.disc_after_sleep);
	/* it ran when the job ended (~500 ms), not at gb_run's end (~750 ms) */
	ck_assert_int_ge(disc.last_at - t0, GB_MSEC(500));
	ck_assert_int_lt(disc.last_at - t0, GB_MSEC(tu_slack_ms(700)));
}
END_TEST

struct scope_ctx {
	struct job *j;
	int rc, leave_rc;
	int64_t waited_ms;
};

static int scope_main(void *arg)
{
	struct scope_ctx *c = arg;
	gb_scope s;
	int64_t t0 = gb_now();

	gb_scope_enter(&s, gb_after(GB_MSEC(40)), 0);
	c->rc = gb_work(job_fn, c->j, job_discard, NULL, GB_NEVER);
	c->leave_rc = gb_scope_leave(&s);
	c->waited_ms = tu_ms_since(t0);
	return 0;
}

/* An enclosing scope's deadline ends the wait with -ETIMEDOUT too; the
 * abandoned job is discarded once (before gb_run returns). */
START_TEST(test_work_scope_deadline)
{
	struct scope_ctx c;

	memset(&c, 0, sizeof c);
	c.j = job_new(300, 1);
	TU_RUN(scope_main, &c, 0);
	ck_assert_int_eq(c.rc, -ETIMEDOUT);
	ck_assert_int_eq(c.leave_rc, -ETIMEDOUT);
	ck_assert_int_ge(c.waited_ms, 40);
	ck_assert_int_lt(c.waited_ms, tu_slack_ms(150));
	ck_assert_int_eq(ld(&disc.calls), 1);
	ck_assert_int_eq(ld(&disc.wrong_result), 0);
	ck_assert_int_eq(ld(&disc.before_finish), 0);
}
END_TEST

/* ------------------------------------------------------ cancellation */

struct cancel_ctx {
	struct job *j;
	int rc, rc_again;
	void *res;
	int64_t t_cancel, t_return;
	int disc_at_return;
	int disc_after_sleep;
};

static int cancel_waiter(void *arg)
{
	struct cancel_ctx *c = arg;

	c->res = (void *)0x2;
	c->rc = gb_work(job_fn, c->j, job_discard, &c->res, gb_after(GB_SEC(5)));
	c->t_return = gb_now();
	c->disc_at_return = atomic_load(&disc.calls);
	/* level-triggered: the next call fails at once too */
	c->rc_again = gb_yield();
	return 0;
}

static int cancel_main(void *arg)
{
	struct cancel_ctx *c = arg;
	gb_group *g = tu_group();
	gb_task *h = tu_spawn(g, cancel_waiter, c);

	gb_sleep(gb_after(GB_MSEC(50)));
	c->t_cancel = gb_now();
	gb_cancel(h);
	tu_join(g);
	gb_task_release(h);
	gb_sleep(gb_after(GB_MSEC(600)));
	c->disc_after_sleep = atomic_load(&disc.calls);
	return 0;
}

/* Cancelling a task waiting in gb_work returns -ECANCELED promptly, and
 * the job is discarded exactly once when it ends, with its result. */
START_TEST(test_work_cancel)
{
	struct cancel_ctx c;

	memset(&c, 0, sizeof c);
	c.j = job_new(400, 5);
	TU_RUN(cancel_main, &c, 0);
	ck_assert_int_eq(c.rc, -ECANCELED);
	ck_assert_int_eq(c.rc_again, -ECANCELED);
	ck_assert_ptr_eq(c.res, (void *)0x2);
	ck_assert_msg(c.t_return - c.t_cancel < GB_MSEC(tu_slack_ms(50)),
	              "returned %lld ms after gb_cancel",
	              (long long)((c.t_return - c.t_cancel) / 1000000));
	assert_discarded_later(c.disc_at_return, c.disc_after_sleep);
}
END_TEST

/* A job on static storage (for a NULL discard). */
static struct job static_job;

/* Discard for jobs whose gb_work failed early: classifies the call. */
static atomic_int early_null, early_done, early_bad;

static void early_discard(void *arg, void *res)
{
	struct job *j = arg;

	if (!pthread_equal(pthread_self(), main_thread))
		atomic_fetch_add(&early_bad, 1);
	else if (res == NULL && !atomic_load(&j->ran))
		atomic_fetch_add(&early_null, 1);     /* fn never ran */
	else if (res == (char *)j + j->value && atomic_load(&j->finished))
		atomic_fetch_add(&early_done, 1);     /* fn ran to its end */
	else
		atomic_fetch_add(&early_bad, 1);
	free(j);
}

struct early_ctx {
	struct job *past, *cancelled, *scoped;
	int rc_past, rc_cancelled, rc_scoped;
	int64_t past_ms;
	void *res_cancelled, *res_scoped;
	int null_after_scoped, null_after_cancelled;
	int scoped_ran, cancelled_ran;
};

static int early_main(void *arg)
{
	struct early_ctx *c = arg;
	int64_t t0 = gb_now();
	gb_scope s;

	/* a deadline already passed: the wait ends at once; fn may or may
	 * not have started, and discard comes either way */
	c->rc_past = gb_work(job_fn, c->past, early_discard, NULL, gb_now() - 1);
	c->past_ms = tu_ms_since(t0);
	c->past = NULL;

	/* inside a scope whose deadline has passed: fn never runs, and
	 * discard(arg, NULL) is called at once */
	c->res_scoped = (void *)0x4;
	gb_scope_enter(&s, gb_now() - 1, 0);
	c->rc_scoped = gb_work(job_fn, c->scoped, early_discard, &c->res_scoped,
	                       gb_after(GB_SEC(5)));
	gb_scope_leave(&s);
	c->null_after_scoped = atomic_load(&early_null);
	c->scoped = NULL;

	/* a cancelled task: the same with -ECANCELED */
	gb_cancel(gb_self());
	c->res_cancelled = (void *)0x3;
	c->rc_cancelled = gb_work(job_fn, c->cancelled, early_discard,
	                          &c->res_cancelled, gb_after(GB_SEC(5)));
	c->null_after_cancelled = atomic_load(&early_null);
	c->cancelled = NULL;
	return 0;
}

/* gb_work failing early: a past deadline gives -ETIMEDOUT without
 * waiting; an expired scope gives -ETIMEDOUT and a cancelled task
 * -ECANCELED, fn never runs and discard(arg, NULL) is called before
 * gb_work returns; each arg is discarded exactly once. */
START_TEST(test_work_gives_up_early)
{
	struct early_ctx c;

	memset(&c, 0, sizeof c);
	atomic_store(&early_null, 0);
	atomic_store(&early_done, 0);
	atomic_store(&early_bad, 0);
	c.past = job_new(100, 1);
	c.scoped = job_new(100, 2);
	c.cancelled = job_new(100, 3);
	TU_RUN(early_main, &c, 0);
	ck_assert_int_eq(c.rc_past, -ETIMEDOUT);
	ck_assert_int_lt(c.past_ms, tu_slack_ms(50));
	ck_assert_int_eq(c.rc_scoped, -ETIMEDOUT);
	ck_assert_ptr_eq(c.res_scoped, (void *)0x4);
	ck_assert_int_eq(c.rc_cancelled, -ECANCELED);
	ck_assert_ptr_eq(c.res_cancelled, (void *)0x3);
	/* at once: counted before the next statement ran */
	ck_assert_int_ge(c.null_after_scoped, 1);
	ck_assert_int_eq(c.null_after_cancelled, c.null_after_scoped + 1);
	/* gb_run is over: three args, three discards, none wrong */
	ck_assert_int_eq(ld(&early_bad), 0);
	ck_assert_int_eq(ld(&early_null) + ld(&early_done), 3);
	ck_assert_int_ge(ld(&early_null), 2);
}
END_TEST

/* ------------------------------------------------ gb_run waits for jobs */

struct abandon_ctx {
	struct job *j[3];
	int rc[3];
	int disc_at_main_end;
};

static int abandon_main(void *arg)
{
	struct abandon_ctx *c = arg;

	for (int i = 0; i < 3; i++) {
		c->rc[i] = gb_work(job_fn, c->j[i], job_discard, NULL,
		                   gb_after(GB_MSEC(20)));
		c->j[i] = NULL;
	}
	c->disc_at_main_end = atomic_load(&disc.calls);
	return 0;
}

/* Abandoned jobs outlive the main task, but gb_run returns only after
 * they finished and each was discarded exactly once. */
START_TEST(test_work_run_waits_for_abandoned)
{
	struct abandon_ctx c;
	int64_t t0 = gb_now();

	memset(&c, 0, sizeof c);
	for (int i = 0; i < 3; i++)
		c.j[i] = job_new(300, i);
	TU_RUN(abandon_main, &c, 0);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(c.rc[i], -ETIMEDOUT);
	ck_assert_int_eq(c.disc_at_main_end, 0);
	ck_assert_int_eq(ld(&disc.calls), 3);
	ck_assert_int_eq(ld(&disc.wrong_thread), 0);
	ck_assert_int_eq(ld(&disc.wrong_result), 0);
	ck_assert_int_eq(ld(&disc.before_finish), 0);
	ck_assert_int_ge(gb_now() - t0, GB_MSEC(300));
}
END_TEST

struct nodisc_ctx {
	int rc;
};

static int nodisc_main(void *arg)
{
	struct nodisc_ctx *c = arg;

	c->rc = gb_work(job_fn, &static_job, NULL, NULL, gb_after(GB_MSEC(10)));
	return 0;
}

/* An abandoned job with a NULL discard is still waited for by gb_run. */
START_TEST(test_work_abandoned_null_discard)
{
	struct nodisc_ctx c = { 0 };

	memset(&static_job, 0, sizeof static_job);
	static_job.sleep_ms = 200;
	TU_RUN(nodisc_main, &c, 0);
	ck_assert_int_eq(c.rc, -ETIMEDOUT);
	ck_assert_int_eq(ld(&static_job.finished), 1);
}
END_TEST

/* ------------------------------------------------------ getaddrinfo */

struct gai_ctx {
	const char *node, *service;
	int family;
	int rc;
	int gai_err;
	int v6_ok;
	/* copied out of the result */
	int res_family, res_count;
	struct sockaddr_storage first;
	socklen_t first_len;
};

static int gai_main(void *arg)
{
	struct gai_ctx *c = arg;
	struct addrinfo hints, *res = NULL;

	memset(&hints, 0, sizeof hints);
	hints.ai_family = c->family;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST;
	c->gai_err = -12345;
	c->rc = gb_getaddrinfo(c->node, c->service, &hints, &res, &c->gai_err,
	                       gb_after(GB_SEC(5)));
	if (c->rc == 0) {
		c->res_family = res->ai_family;
		c->first_len = res->ai_addrlen;
		memcpy(&c->first, res->ai_addr, res->ai_addrlen);
		for (struct addrinfo *p = res; p; p = p->ai_next)
			c->res_count++;
		freeaddrinfo(res);
	}
	return 0;
}

/* A numeric IPv4 lookup returns an AF_INET result for 127.0.0.1:80. */
START_TEST(test_gai_numeric_v4)
{
	struct gai_ctx c;
	const struct sockaddr_in *sin = (const struct sockaddr_in *)&c.first;

	memset(&c, 0, sizeof c);
	c.node = "127.0.0.1";
	c.service = "80";
	c.family = AF_UNSPEC;
	TU_RUN(gai_main, &c, 0);
	ck_assert_int_eq(c.rc, 0);
	ck_assert_int_eq(c.gai_err, 0);
	ck_assert_int_ge(c.res_count, 1);
	ck_assert_int_eq(c.res_family, AF_INET);
	ck_assert_int_eq(c.first_len, sizeof(struct sockaddr_in));
	ck_assert_int_eq(sin->sin_family, AF_INET);
	ck_assert_uint_eq(ntohs(sin->sin_port), 80);
	ck_assert_uint_eq(ntohl(sin->sin_addr.s_addr), INADDR_LOOPBACK);
}
END_TEST

/* A numeric IPv6 lookup returns an AF_INET6 result for [::1]:443. */
START_TEST(test_gai_numeric_v6)
{
	struct gai_ctx c;
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&c.first;

	memset(&c, 0, sizeof c);
	c.node = "::1";
	c.service = "443";
	c.family = AF_INET6;
	TU_RUN(gai_main, &c, 0);
	ck_assert_int_eq(c.rc, 0);
	ck_assert_int_eq(c.res_family, AF_INET6);
	ck_assert_int_eq(c.first_len, sizeof(struct sockaddr_in6));
	ck_assert_uint_eq(ntohs(sin6->sin6_port), 443);
	ck_assert_mem_eq(&sin6->sin6_addr, &in6addr_loopback,
	                 sizeof in6addr_loopback);
}
END_TEST

/* A failed lookup is -ENOENT with getaddrinfo's non-zero EAI_ code. */
START_TEST(test_gai_failure)
{
	struct gai_ctx c;

	memset(&c, 0, sizeof c);
	c.node = "no such host.invalid";
	c.service = "80";
	c.family = AF_UNSPEC;
	TU_RUN(gai_main, &c, 0);
	ck_assert_int_eq(c.rc, -ENOENT);
	ck_assert_int_ne(c.gai_err, 0);
	ck_assert_int_ne(c.gai_err, -12345);
	ck_assert_ptr_nonnull(gai_strerror(c.gai_err));
	/* the same code getaddrinfo itself gives */
	struct addrinfo hints, *res = NULL;
	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST;
	ck_assert_int_eq(getaddrinfo("no such host.invalid", "80", &hints, &res),
	                 c.gai_err);
}
END_TEST

struct gai_null_ctx {
	int rc;
};

static int gai_null_main(void *arg)
{
	struct gai_null_ctx *c = arg;
	struct addrinfo hints, *res = NULL;

	memset(&hints, 0, sizeof hints);
	hints.ai_flags = AI_NUMERICHOST;
	c->rc = gb_getaddrinfo("300.1.1.1", "1", &hints, &res, NULL,
	                       gb_after(GB_SEC(5)));
	return 0;
}

/* gai_error may be NULL: a failure is still -ENOENT. */
START_TEST(test_gai_failure_null_code)
{
	struct gai_null_ctx c = { 0 };

	TU_RUN(gai_null_main, &c, 0);
	ck_assert_int_eq(c.rc, -ENOENT);
}
END_TEST

struct gai_early_ctx {
	int rc_past, rc_scope, rc_cancelled;
	struct addrinfo *res_past, *res_scope, *res_cancelled;
};

static int gai_early_main(void *arg)
{
	struct gai_early_ctx *c = arg;
	struct addrinfo hints;
	gb_scope s;

	memset(&hints, 0, sizeof hints);
	hints.ai_flags = AI_NUMERICHOST;
	c->rc_past = gb_getaddrinfo("127.0.0.1", "80", &hints, &c->res_past,
	                            NULL, gb_now() - 1);
	gb_scope_enter(&s, gb_now() - 1, 0);
	c->rc_scope = gb_getaddrinfo("127.0.0.1", "80", &hints, &c->res_scope,
	                             NULL, GB_NEVER);
	gb_scope_leave(&s);
	gb_cancel(gb_self());
	c->rc_cancelled = gb_getaddrinfo("127.0.0.1", "80", &hints,
	                                 &c->res_cancelled, NULL, GB_NEVER);
	return 0;
}

/* A lookup that gives up (past deadline, expired scope, cancelled task)
 * returns -ETIMEDOUT / -ECANCELED, leaves *res alone and leaks nothing
 * (valgrind / LeakSanitizer check the last part). */
START_TEST(test_gai_gives_up)
{
	struct gai_early_ctx c;
	struct addrinfo *sentinel = (struct addrinfo *)&c;

	memset(&c, 0, sizeof c);
	c.res_past = c.res_scope = c.res_cancelled = sentinel;
	TU_RUN(gai_early_main, &c, 0);
	ck_assert_int_eq(c.rc_past, -ETIMEDOUT);
	ck_assert_int_eq(c.rc_scope, -ETIMEDOUT);
	ck_assert_int_eq(c.rc_cancelled, -ECANCELED);
	ck_assert_ptr_eq(c.res_past, sentinel);
	ck_assert_ptr_eq(c.res_scope, sentinel);
	ck_assert_ptr_eq(c.res_cancelled, sentinel);
}
END_TEST

/* ------------------------------------------------------------------ main */

static Suite *work_suite(void)
{
	Suite *s = suite_create("gb_work");
	TCase *tc = tcase_create("work");
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_work_runs_on_thread);
	tcase_add_test(tc, test_work_concurrent);
	tcase_add_test(tc, test_work_more_jobs_than_workers);
	tcase_add_test(tc, test_work_deadline);
	tcase_add_test(tc, test_work_scope_deadline);
	tcase_add_test(tc, test_work_cancel);
	tcase_add_test(tc, test_work_gives_up_early);
	tcase_add_test(tc, test_work_run_waits_for_abandoned);
	tcase_add_test(tc, test_work_abandoned_null_discard);
	suite_add_tcase(s, tc);

	TCase *tg = tcase_create("getaddrinfo");
	tcase_add_checked_fixture(tg, setup, NULL);
	tcase_set_timeout(tg, 20);
	tcase_add_test(tg, test_gai_numeric_v4);
	tcase_add_test(tg, test_gai_numeric_v6);
	tcase_add_test(tg, test_gai_failure);
	tcase_add_test(tg, test_gai_failure_null_code);
	tcase_add_test(tg, test_gai_gives_up);
	suite_add_tcase(s, tg);
	return s;
}

int main(void)
{
	return tu_run_suite(work_suite());
}
