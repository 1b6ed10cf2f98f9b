/*
 * sched.c - the run queue, the switch between tasks, blocking and waking,
 * and the loop that polls libevent when nothing is runnable.
 *
 * A task that gives up the CPU switches directly to the next runnable task
 * (no detour through the loop), so a yield round trip is two switches. The
 * loop's own context is entered only to poll I/O: when the run queue runs
 * dry, or every cfg.io_skip passes so a busy set of tasks cannot starve
 * I/O and timers.
 */
#include "internal.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#ifdef GB_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

struct gb_sched gb__s;
const gb_hooks *gb__hooks;

/* ------------------------------------------------------------ run queue */

void gb__runq_push(gb_task *t)
{
	t->state = GB_TASK_RUNNABLE;
	t->next_run = NULL;
	if (gb__s.runq_tail)
		gb__s.runq_tail->next_run = t;
	else
		gb__s.runq_head = t;
	gb__s.runq_tail = t;
	gb__s.runq_len++;
}

static inline gb_task *runq_pop(void)
{
	gb_task *t = gb__s.runq_head;

	gb__s.runq_head = t->next_run;
	if (!gb__s.runq_head)
		gb__s.runq_tail = NULL;
	gb__s.runq_len--;
	return t;
}

/* The next task to run, or NULL when it is time to poll I/O. */
static inline __attribute__((always_inline)) gb_task *pick_next(void)
{
	if (gb__s.pass_left == 0) {
		if (++gb__s.passes >= gb__s.cfg.io_skip || !gb__s.runq_len)
			return NULL;
		gb__s.pass_left = gb__s.runq_len;
	}
	gb__s.pass_left--;
	return runq_pop();
}

/* ------------------------------------------------------------ switching */

#ifdef GB_ASAN
/* Completes a switch for AddressSanitizer in the resumed context. The
 * loop runs on the thread's own stack, whose bounds ASan tells us the
 * first time we leave it. */
void gb__asan_finish_switch(void *fake)
{
	const void *bottom;
	size_t size;

	__sanitizer_finish_switch_fiber(fake, &bottom, &size);
	if (gb__s.asan_from_loop) {
		gb__s.loop_stack_bottom = bottom;
		gb__s.loop_stack_size = size;
	}
}
#endif

/*
 * Runs first in whatever context a switch resumes: reclaims the task that
 * ended just before (its stack could not be freed while it ran on it) and
 * gives the resumed task a fresh I/O budget.
 */
static inline void after_switch(void)
{
	gb_task *dead = gb__s.dead;

	if (GB_UNLIKELY(dead != NULL)) {
		gb__s.dead = NULL;
		if (dead->refs == 0)
			gb__task_free(dead);
	}
	if (GB_LIKELY(gb__s.current != NULL))
		gb__s.current->budget = gb__s.cfg.io_budget;
}

void gb__after_switch(void)
{
	after_switch();
}

/*
 * Switches from the running context to `to` (NULL: the loop). dying is set
 * when the running task has ended and will never be resumed, so that
 * AddressSanitizer can free its fake stack.
 */
static inline __attribute__((always_inline)) void switch_to(gb_task *to,
                                                            int dying)
{
	gb_task *from = gb__s.current;
	gb_ctx *from_ctx = from ? &from->ctx : &gb__s.loop_ctx;

	if (GB_UNLIKELY(gb__hooks && gb__hooks->on_switch && to))
		gb__hooks->on_switch(from, to, gb__hooks->ud);
	gb__s.current = to;
	if (to)
		to->state = GB_TASK_RUNNING;
#ifdef GB_ASAN
	void *fake = NULL;
	const void *bottom = to ? to->stack_lo : gb__s.loop_stack_bottom;
	size_t size = to ? gb__stack_usable(to) : gb__s.loop_stack_size;
	gb__s.asan_from_loop = from == NULL;
	__sanitizer_start_switch_fiber(dying ? NULL : &fake, bottom, size);
	gb__ctx_switch(from_ctx, to ? &to->ctx : &gb__s.loop_ctx);
	gb__asan_finish_switch(fake);
#else
	(void)dying;
	gb__ctx_switch(from_ctx, to ? &to->ctx : &gb__s.loop_ctx);
#endif
	after_switch();
}

/* Gives up the CPU: the running task is blocked or already queued. */
void gb__schedule(void)
{
	switch_to(pick_next(), 0);
}

void gb__exit_switch(void)
{
	gb__s.dead = gb__s.current;
	switch_to(pick_next(), 1);
	__builtin_unreachable();
}

int gb_yield(void)
{
	gb_task *t = gb__s.current;

	gb__runq_push(t);
	gb__schedule();
	return gb__checkpoint_status(t);
}

/* ------------------------------------------------------ blocking, waking */

static void timer_cb(evutil_socket_t fd, short what, void *arg);

static void arm_timer(gb_task *t, int64_t deadline)
{
	if (deadline == GB_NEVER) {
		if (t->timer_armed) {
			evtimer_del(&t->timer);
			t->timer_armed = 0;
		}
		return;
	}
	/* Round up to libevent's microseconds, so it never fires early by
	 * rounding; timer_cb re-arms if the clocks disagree anyway. */
	int64_t left = deadline - gb_now();
	if (left < 0)
		left = 0;
	int64_t us = (left + 999) / 1000;
	struct timeval tv = { .tv_sec = us / 1000000, .tv_usec = us % 1000000 };
	if (!t->timer_armed)
		evtimer_assign(&t->timer, gb__s.base, timer_cb, t);
	evtimer_add(&t->timer, &tv);
	t->timer_armed = 1;
}

/* The effective deadline of t's current wait, or an error if the wait
 * must end now. */
static int wait_deadline(gb_task *t, int64_t *deadline)
{
	int rc = 0;

	if (t->cancelled | t->scopes_timed | t->scopes_cancelled)
		rc = gb__scope_check(t, t->scope, deadline);

	if (rc == 0 && *deadline != GB_NEVER && gb_now() >= *deadline)
		rc = -ETIMEDOUT;
	return rc;
}

/*
 * Blocks the running task until gb__wake(). The caller has already made
 * itself findable by its waker and passes detach to undo that if the wait
 * ends otherwise (deadline, cancellation). detach == NULL makes the wait
 * uncancellable and untimed. Returns the waker's code, -ETIMEDOUT or
 * -ECANCELED.
 */
int gb__block(int64_t deadline, void (*detach)(gb_task *))
{
	gb_task *t = gb__s.current;

	if (detach) {
		int64_t dl = deadline;
		int rc = wait_deadline(t, &dl);
		if (rc) {
			detach(t);
			return rc;
		}
		if (dl != GB_NEVER || t->timer_armed)
			arm_timer(t, dl);
	}
	t->wait_deadline = deadline;
	t->detach = detach;
	t->state = GB_TASK_WAITING;
	gb__schedule();
	return t->wait_rc;
}

void gb__wake(gb_task *t, int rc)
{
	t->wait_rc = rc;
	t->detach = NULL;
	if (t->timer_armed) {
		evtimer_del(&t->timer);
		t->timer_armed = 0;
	}
	gb__runq_push(t);
}

/* Ends t's cancellable wait with rc, unlinking it from what it waited on. */
static void interrupt(gb_task *t, int rc)
{
	t->detach(t);
	gb__wake(t, rc);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	gb_task *t = arg;
	int64_t dl = t->wait_deadline;
	int rc;

	(void)fd;
	(void)what;
	t->timer_armed = 0;
	if (t->state != GB_TASK_WAITING || !t->detach)
		return;
	rc = wait_deadline(t, &dl);
	if (rc)
		interrupt(t, rc);
	else
		arm_timer(t, dl); /* woke early: libevent's clock lags ours */
}

/* Called when t's cancellation state may have changed (gb_cancel, a scope
 * cancelled, a child failed): ends its wait if it must end now. */
void gb__recheck(gb_task *t)
{
	if (t->state != GB_TASK_WAITING || !t->detach)
		return;
	int rc = gb__scope_check(t, t->scope, NULL);
	if (rc)
		interrupt(t, rc);
}

/* Called when a deadline that applies to t's wait moved. */
void gb__rearm(gb_task *t)
{
	if (t->state != GB_TASK_WAITING || !t->detach)
		return;
	int64_t dl = t->wait_deadline;
	int rc = wait_deadline(t, &dl);
	if (rc)
		interrupt(t, rc);
	else
		arm_timer(t, dl);
}

/* A sleeping task waits on nothing but its timer. */
static void detach_nothing(gb_task *t)
{
	(void)t;
}

int gb_sleep(int64_t deadline)
{
	gb_task *t = gb__s.current;
	int rc = gb__block(deadline, detach_nothing);

	/* Reaching the sleep's own deadline is success; a scope's is not. */
	if (rc == -ETIMEDOUT)
		rc = gb__checkpoint_status(t);
	return rc;
}

/* ------------------------------------------------------------ the loop */

/* Every task is blocked and nothing in libevent can wake one: cancel
 * everything so the tasks unwind; if even that cannot help, give up. */
static void deadlock(void)
{
	static const char msg[] =
		"deadlock: every task is blocked and nothing can wake one";

	if (gb__s.root->cancelled) {
		gb__log(GB_LOG_ERROR, "%s, even after cancelling all tasks", msg);
		abort();
	}
	gb__log(GB_LOG_ERROR, "%s; cancelling all tasks", msg);
	gb_cancel(gb__s.root);
}

static void loop(void)
{
	while (gb__s.live > 0) {
		int flags = gb__s.runq_len ? EVLOOP_NONBLOCK : EVLOOP_ONCE;

		if (event_base_loop(gb__s.base, flags) == 1 && !gb__s.runq_len)
			deadlock();
		if (!gb__s.runq_len)
			continue;
		gb__s.passes = 0;
		gb__s.pass_left = gb__s.runq_len - 1;
		switch_to(runq_pop(), 0);
	}
}

static void config_defaults(gb_config *c, const gb_config *in)
{
	memset(c, 0, sizeof *c);
	if (in)
		*c = *in;
	if (!c->stack_size)
		c->stack_size = (size_t)64 * 1024;
	if (!c->stack_pool)
		c->stack_pool = 1024;
	if (!c->io_budget)
		c->io_budget = 32;
	if (!c->io_skip)
		c->io_skip = 64;
}

static struct event_base *base_new(void)
{
	struct event_config *ec = event_config_new();
	struct event_base *base;

	if (!ec)
		return NULL;
	/* Edge-triggered readiness (epoll, kqueue) lets each fd be registered
	 * once; precise timers use CLOCK_MONOTONIC, not the coarse clock. */
	event_config_require_features(ec, EV_FEATURE_ET | EV_FEATURE_O1);
	event_config_set_flag(ec, EVENT_BASE_FLAG_PRECISE_TIMER |
	                          EVENT_BASE_FLAG_NOLOCK);
	base = event_base_new_with_config(ec);
	event_config_free(ec);
	if (!base)
		gb__log(GB_LOG_ERROR, "libevent has no edge-triggered backend here");
	return base;
}

/* A write to a pipe whose reader is gone raises SIGPIPE, which would kill
 * the process; while the scheduler runs it is ignored (if nobody set a
 * handler), so such a write is just -EPIPE. Sockets use MSG_NOSIGNAL. */
static void sigpipe_ignore(struct sigaction *saved)
{
	struct sigaction ign = { .sa_handler = SIG_IGN };

	sigaction(SIGPIPE, NULL, saved);
	if (saved->sa_handler == SIG_DFL)
		sigaction(SIGPIPE, &ign, NULL);
}

static void sigpipe_restore(const struct sigaction *saved)
{
	if (saved->sa_handler == SIG_DFL)
		sigaction(SIGPIPE, saved, NULL);
}

int gb_run_with(gb_fn main, void *arg, const gb_config *cfg)
{
	struct sigaction sigpipe;
	int err = 0;

	if (gb__s.running)
		return -EBUSY;
	memset(&gb__s, 0, sizeof gb__s);
	gb__s.running = 1;
	gb__s.spare_fd = -1;
	config_defaults(&gb__s.cfg, cfg);
	gb__s.base = base_new();
	if (!gb__s.base) {
		gb__s.running = 0;
		return -ENOMEM;
	}
	gb__s.next_id = 1;
	gb__fd_init();
	sigpipe_ignore(&sigpipe);
	gb__s.root = gb__task_new(NULL, main, arg, NULL, &err);
	if (gb__s.root) {
		gb__s.root->refs = 1; /* gb_run reads its result at the end */
		loop();
		err = gb__s.root->result;
		gb__task_free(gb__s.root);
	}
	sigpipe_restore(&sigpipe);
	gb__work_teardown();
	gb__sock_teardown();
	gb__fd_teardown();
	gb__stack_drain();
	event_base_free(gb__s.base);
	gb__s.running = 0;
	return err;
}

int gb_run(gb_fn main, void *arg)
{
	return gb_run_with(main, arg, NULL);
}

gb_task *gb_self(void)
{
	return gb__s.current;
}

void gb_set_hooks(const gb_hooks *h)
{
	static gb_hooks store;

	if (!h) {
		gb__hooks = NULL;
		return;
	}
	store = *h;
	gb__hooks = &store;
}
