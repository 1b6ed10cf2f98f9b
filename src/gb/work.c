/*
 * work.c - blocking work off the loop: a small pool of worker threads runs
 * functions that would block the scheduler (name resolution, for one) and
 * the waiting task is woken when its result is in.
 *
 * Threads talk to the loop only through the pool's mutex-protected lists
 * and an eventfd that the loop watches; tasks, jobs' task pointers and the
 * scheduler itself are touched on the loop's thread only.
 */
#include "internal.h"

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define WORKERS 4

struct job {
	gb_work_fn fn;
	void *arg;
	void *result;
	void (*discard)(void *arg, void *result);
	gb_task *task;          /* the waiter; NULL once it gave up */
	struct job *next;
};

static struct {
	int started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct job *todo, **todo_tail;  /* guarded by mu */
	struct job *done;               /* guarded by mu */
	int stop;                       /* guarded by mu */
	int efd;
	struct event ev;
	pthread_t threads[WORKERS];
	int nthreads;
} pool;

static void *worker(void *unused)
{
	(void)unused;
	pthread_mutex_lock(&pool.mu);
	for (;;) {
		while (!pool.todo && !pool.stop)
			pthread_cond_wait(&pool.cv, &pool.mu);
		if (!pool.todo)
			break;
		struct job *j = pool.todo;
		pool.todo = j->next;
		if (!pool.todo)
			pool.todo_tail = &pool.todo;
		pthread_mutex_unlock(&pool.mu);
		j->result = j->fn(j->arg);
		pthread_mutex_lock(&pool.mu);
		j->next = pool.done;
		pool.done = j;
		uint64_t one = 1;
		if (write(pool.efd, &one, sizeof one) < 0) {
			/* The counter cannot overflow in practice; the loop reads
			 * the whole done list on any wake-up anyway. */
		}
	}
	pthread_mutex_unlock(&pool.mu);
	return NULL;
}

/* The job is over for its task: hand the result over, or discard it when
 * the task gave up waiting. */
static void job_finish(struct job *j)
{
	if (j->task) {
		gb__wake(j->task, 0);
		return;
	}
	if (j->discard)
		j->discard(j->arg, j->result);
	free(j);
}

/* Runs on the loop when the eventfd says jobs are done. */
static void done_cb(evutil_socket_t fd, short what, void *unused)
{
	uint64_t n;
	struct job *list;

	(void)what;
	(void)unused;
	if (read(fd, &n, sizeof n) < 0 && errno != EAGAIN)
		return;
	pthread_mutex_lock(&pool.mu);
	list = pool.done;
	pool.done = NULL;
	pthread_mutex_unlock(&pool.mu);
	while (list) {
		struct job *j = list;
		list = j->next;
		job_finish(j);
	}
}

static int pool_start(void)
{
	pool.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (pool.efd < 0)
		return -errno;
	pthread_mutex_init(&pool.mu, NULL);
	pthread_cond_init(&pool.cv, NULL);
	pool.todo = pool.done = NULL;
	pool.todo_tail = &pool.todo;
	pool.stop = 0;
	event_assign(&pool.ev, gb__s.base, pool.efd, EV_READ | EV_PERSIST,
	             done_cb, NULL);
	event_add(&pool.ev, NULL);
	for (pool.nthreads = 0; pool.nthreads < WORKERS; pool.nthreads++)
		if (pthread_create(&pool.threads[pool.nthreads], NULL, worker,
		                   NULL) != 0)
			break;
	pool.started = 1;
	if (pool.nthreads == 0) {
		gb__work_teardown();
		return -EAGAIN;
	}
	return 0;
}

/* Stops the threads once the jobs in flight have finished; results of
 * jobs whose tasks gave up are discarded. */
void gb__work_teardown(void)
{
	if (!pool.started)
		return;
	pthread_mutex_lock(&pool.mu);
	pool.stop = 1;
	pthread_cond_broadcast(&pool.cv);
	pthread_mutex_unlock(&pool.mu);
	for (int i = 0; i < pool.nthreads; i++)
		pthread_join(pool.threads[i], NULL);
	done_cb(pool.efd, EV_READ, NULL);
	event_del(&pool.ev);
	close(pool.efd);
	pthread_cond_destroy(&pool.cv);
	pthread_mutex_destroy(&pool.mu);
	pool.started = 0;
}

static void detach_job(gb_task *t)
{
	struct job *j = t->wait_obj;

	j->task = NULL; /* the pool now owns it: see job_finish */
}

int gb_work(gb_work_fn fn, void *arg, void (*discard)(void *arg, void *res),
            void **result, int64_t deadline)
{
	gb_task *t = gb__s.current;
	struct job *j = NULL;
	int rc = gb__checkpoint_status(t);

	if (rc == 0 && !pool.started)
		rc = pool_start();
	if (rc == 0 && !(j = gb_calloc(1, sizeof *j)))
		rc = -ENOMEM;
	if (rc) {
		/* fn never ran: arg is still handed over, as on any error. */
		if (discard)
			discard(arg, NULL);
		return rc;
	}
	*j = (struct job){ .fn = fn, .arg = arg, .discard = discard, .task = t };
	pthread_mutex_lock(&pool.mu);
	*pool.todo_tail = j;
	pool.todo_tail = &j->next;
	pthread_cond_signal(&pool.cv);
	pthread_mutex_unlock(&pool.mu);
	t->wait_obj = j;
	rc = gb__block(deadline, detach_job);
	if (rc)
		return rc;
	if (result)
		*result = j->result;
	free(j);
	return 0;
}

/* ------------------------------------------------------- name resolution */

struct gai_req {
	char *node, *service;
	struct addrinfo hints;
	int has_hints;
	struct addrinfo *res;
	int err;
};

static void gai_free(void *arg, void *unused)
{
	struct gai_req *r = arg;

	(void)unused;
	if (r->res)
		freeaddrinfo(r->res);
	free(r->node);
	free(r->service);
	free(r);
}

static void *gai_run(void *arg)
{
	struct gai_req *r = arg;

	r->err = getaddrinfo(r->node, r->service,
	                     r->has_hints ? &r->hints : NULL, &r->res);
	return r;
}

static char *dup_or_null(const char *s, int *fail)
{
	char *d = s ? gb_strdup(s) : NULL;

	if (s && !d)
		*fail = 1;
	return d;
}

int gb_getaddrinfo(const char *node, const char *service,
                   const struct addrinfo *hints, struct addrinfo **res,
                   int *gai_error, int64_t deadline)
{
	struct gai_req *r = gb_calloc(1, sizeof *r);
	int fail = 0, rc;

	if (!r)
		return -ENOMEM;
	r->node = dup_or_null(node, &fail);
	r->service = dup_or_null(service, &fail);
	if (hints) {
		r->hints = *hints;
		r->hints.ai_addr = NULL;
		r->hints.ai_canonname = NULL;
		r->hints.ai_next = NULL;
		r->has_hints = 1;
	}
	if (fail) {
		gai_free(r, NULL);
		return -ENOMEM;
	}
	/* The request lives on the heap: if we stop waiting, the worker
	 * still uses it, and gai_free runs when it is done. */
	rc = gb_work(gai_run, r, gai_free, NULL, deadline);
	if (rc)
		return rc;
	if (gai_error)
		*gai_error = r->err;
	rc = r->err ? -ENOENT : 0;
	*res = r->res;
	r->res = NULL;
	gai_free(r, NULL);
	return rc;
}
