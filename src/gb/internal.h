/*
 * internal.h - the scheduler's private structures, shared by the src/gb sources.
 *
 * One scheduler per process, driven from the thread that called gb_run().
 * All state below is touched only by that thread.
 */
#ifndef GB_INTERNAL_H
#define GB_INTERNAL_H

#include "config.h"

#include <event2/event.h>
#include <event2/event_struct.h>
#include <stdint.h>

#include "ctx.h"
#include "gb.h"

#define GB_LIKELY(x)   __builtin_expect(!!(x), 1)
#define GB_UNLIKELY(x) __builtin_expect(!!(x), 0)

#if defined(__SANITIZE_ADDRESS__)
#define GB_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GB_ASAN 1
#endif
#endif

enum gb_task_state {
	GB_TASK_RUNNABLE, /* in the run queue */
	GB_TASK_RUNNING,
	GB_TASK_WAITING,  /* blocked in gb__block() */
	GB_TASK_DONE,     /* ended; memory kept while a handle is held */
};

/*
 * A task. It lives at the top of its own stack mapping (stack.c), so that
 * spawning costs no allocation besides the pooled stack.
 */
struct gb_task {
	gb_ctx ctx;
	gb_task *next_run;      /* run queue link, or stack pool link */

	/* Stack: [stack_lo, stack_lo + stack_size) is usable; the guard page
	 * and the mapping start at map_lo. */
	char *map_lo;
	char *stack_lo;
	size_t map_size;
	size_t stack_size;
	unsigned vg_stack_id;   /* valgrind's id for this stack */

	/* Not zeroed on reuse: the timer is assigned whenever it is armed
	 * (see timer_armed), the name is set at every spawn. */
	struct event timer;     /* the deadline timer */
	char name[GB_NAME_MAX];

	/* Everything from here on is zeroed when the stack is reused. */
	gb_fn fn;
	void *arg;
	int result;
	uint64_t id;
	unsigned budget;        /* I/O operations left in this turn */
	unsigned char state;    /* enum gb_task_state */
	unsigned char cancelled;
	unsigned char refs;     /* handles held by gb_spawn() callers */

	/* The group the task belongs to (NULL for main) and its siblings. */
	gb_group *group;
	gb_task *gprev, *gnext;

	/* Innermost cancel scope (gb_scope, group scopes included), and how
	 * many scopes on the chain have a deadline or are cancelled: while
	 * both are 0 and the task is not cancelled, a checkpoint need not
	 * walk the chain. */
	gb_scope *scope;
	unsigned scopes_timed;
	unsigned scopes_cancelled;

	/* Blocking state, valid while state == GB_TASK_WAITING. detach is NULL
	 * for uncancellable waits; otherwise it unlinks the task from whatever
	 * it waits on (an fd, a group) when a timeout or a cancellation wakes
	 * it instead of the usual waker. */
	void (*detach)(gb_task *t);
	void *wait_obj;
	gb_scope *skip_scope;   /* scope whose cancellation this wait ignores */
	int64_t wait_deadline;  /* the blocking call's own deadline */
	int wait_rc;            /* set by gb__wake() */
	unsigned char timer_armed;
};

/* The scheduler. */
struct gb_sched {
	int running;
	gb_config cfg;
	struct event_base *base;
	int ev_et;              /* EV_ET */
	gb_ctx loop_ctx;        /* context of the thread inside gb_run() */
	gb_task *current;       /* NULL while the loop runs */
	gb_task *root;
	int root_result;
	uint64_t next_id;
	size_t live;            /* tasks that have not ended */

	/* FIFO run queue. A pass runs the tasks that were runnable when it
	 * started; I/O is polled between passes at least every cfg.io_skip
	 * passes, and always when the queue runs dry. */
	gb_task *runq_head, *runq_tail;
	size_t runq_len;
	size_t pass_left;
	unsigned passes;

	/* A task that just ended: its stack is still in use until the next
	 * context runs, which reclaims it (see gb__after_switch). */
	gb_task *dead;

	/* Pool of free default-size stacks, linked through next_run. */
	gb_task *pool;
	size_t pool_len;
	int map_failure_logged;

	int spare_fd;           /* see sock.c; -1 when not open */

	/* fds drained by a short read and not heard from since (fd.c). */
	gb_fd *suspects;
	struct event sweep;     /* armed while the list is not empty */
	unsigned sweep_gen;

#ifdef GB_ASAN
	const void *loop_stack_bottom;
	size_t loop_stack_size;
	int asan_from_loop;     /* the switch in progress leaves the loop */
#endif
};

extern struct gb_sched gb__s;
extern const gb_hooks *gb__hooks;   /* NULL when none are installed */

/* log.c */
void gb__log(int level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* stack.c: task memory. Returns NULL with errno set (ENOMEM, EINVAL). */
gb_task *gb__stack_get(size_t stack_size);
void gb__stack_put(gb_task *t);
void gb__stack_drain(void);
size_t gb__stack_usable(const gb_task *t);

/* sched.c: run queue, switching, blocking. */
void gb__runq_push(gb_task *t);
void gb__schedule(void);
void gb__exit_switch(void) __attribute__((noreturn));
void gb__after_switch(void);
#ifdef GB_ASAN
void gb__asan_finish_switch(void *fake);
#endif
int gb__block(int64_t deadline, void (*detach)(gb_task *));
void gb__wake(gb_task *t, int rc);
void gb__recheck(gb_task *t);
void gb__rearm(gb_task *t);

/* task.c */
gb_task *gb__task_new(gb_group *g, gb_fn fn, void *arg,
                      const gb_spawn_opts *opts, int *err);
void gb__task_free(gb_task *t);

/* scope.c: cancellation state as seen by t's next blocking call: 0,
 * -ECANCELED or -ETIMEDOUT. Lowers *deadline (if not NULL) to the earliest
 * scope deadline that applies. from: the scope to start at (t->scope for
 * the task's current state). */
int gb__scope_check(gb_task *t, gb_scope *from, int64_t *deadline);
void gb__cancel_groups_in(gb_task *t, gb_scope *outer);
void gb__scope_pop(gb_scope *s);
void gb__scope_mark_cancelled(gb_scope *s);

/* waitq.c: a task waiting in a gb_waitq; lives on that task's stack. */
struct gb_waiter {
	gb_task *task;
	gb_waitq *q;
	gb_waiter *prev, *next;
	void *data;             /* what the waker hands over or takes */
};

void gb__waitq_push(gb_waitq *q, gb_waiter *w);
void gb__waitq_remove(gb_waiter *w);
gb_waiter *gb__waitq_pop(gb_waitq *q);
void gb__waitq_wake_all(gb_waitq *q, int rc);
/* Waits in q until a waker pops this task and wakes it (its code is
 * returned), the deadline passes or the task is cancelled. An
 * uncancellable wait ignores deadline and cancellation. */
int gb__waitq_wait(gb_waitq *q, void *data, int64_t deadline, int cancellable);

/* fd.c */
void gb__fd_init(void);
void gb__fd_teardown(void);

/* sock.c */
void gb__sock_teardown(void);

/* work.c */
void gb__work_teardown(void);

/* group.c */
void gb__group_child_done(gb_task *t);
int gb__group_close_all(gb_task *t);

/* The fast test every checkpoint makes: nothing to check unless the task
 * is cancelled or inside a scope. */
static inline int gb__checkpoint_status(gb_task *t)
{
	if (GB_LIKELY(!(t->cancelled | t->scopes_timed | t->scopes_cancelled)))
		return 0;
	return gb__scope_check(t, t->scope, NULL);
}

/* fault.c: whether this task stack mapping is to fail (see gb.h). */
#ifdef GB_FAULT_INJECTION
int gb__fault_stack(void);
#else
#define gb__fault_stack() 0
#endif

#endif
