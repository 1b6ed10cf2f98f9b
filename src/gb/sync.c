/*
 * sync.c - events, locks, semaphores and condition variables.
 *
 * Locks and semaphores hand ownership straight to the oldest waiter when
 * released, so a waiter wakes up already owning what it waited for and
 * nobody can barge in between.
 */
#include "internal.h"

#include <errno.h>
#include <string.h>

/* Every blocking call is a checkpoint, even when it need not block. */
static int checkpoint(void)
{
	return gb__checkpoint_status(gb__s.current);
}

/* ---------------------------------------------------------------- event */

void gb_event_init(gb_event *e)
{
	memset(e, 0, sizeof *e);
}

void gb_event_set(gb_event *e)
{
	e->set = 1;
	gb__waitq_wake_all(&e->q, 0);
}

void gb_event_clear(gb_event *e)
{
	e->set = 0;
}

int gb_event_is_set(const gb_event *e)
{
	return e->set;
}

int gb_event_wait(gb_event *e, int64_t deadline)
{
	int rc = checkpoint();

	if (rc || e->set)
		return rc;
	return gb__waitq_wait(&e->q, NULL, deadline, 1);
}

/* ----------------------------------------------------------------- lock */

void gb_lock_init(gb_lock *l)
{
	memset(l, 0, sizeof *l);
}

int gb_lock_try(gb_lock *l)
{
	if (l->owner)
		return -EBUSY;
	l->owner = gb__s.current;
	return 0;
}

static int lock_acquire(gb_lock *l, int64_t deadline, int cancellable)
{
	gb_task *t = gb__s.current;

	if (!l->owner) {
		l->owner = t;
		return 0;
	}
	if (l->owner == t)
		return -EDEADLK;
	/* On success the releaser has already made us the owner. */
	return gb__waitq_wait(&l->q, NULL, deadline, cancellable);
}

int gb_lock_acquire(gb_lock *l, int64_t deadline)
{
	int rc = checkpoint();

	return rc ? rc : lock_acquire(l, deadline, 1);
}

int gb_lock_release(gb_lock *l)
{
	gb_waiter *w;

	if (l->owner != gb__s.current)
		return -EPERM;
	w = gb__waitq_pop(&l->q);
	l->owner = w ? w->task : NULL;
	if (w)
		gb__wake(w->task, 0);
	return 0;
}

gb_task *gb_lock_owner(const gb_lock *l)
{
	return l->owner;
}

/* ------------------------------------------------------------ semaphore */

void gb_sem_init(gb_sem *s, unsigned value, unsigned max)
{
	memset(s, 0, sizeof *s);
	s->value = value;
	s->max = max;
}

int gb_sem_try(gb_sem *s)
{
	if (s->value == 0)
		return -EAGAIN;
	s->value--;
	return 0;
}

int gb_sem_acquire(gb_sem *s, int64_t deadline)
{
	int rc = checkpoint();

	if (rc)
		return rc;
	if (gb_sem_try(s) == 0)
		return 0;
	/* On success the releaser handed its unit to us directly. */
	return gb__waitq_wait(&s->q, NULL, deadline, 1);
}

int gb_sem_release(gb_sem *s)
{
	gb_waiter *w = gb__waitq_pop(&s->q);

	if (w) {
		gb__wake(w->task, 0);
		return 0;
	}
	if (s->max && s->value >= s->max)
		return -EOVERFLOW;
	s->value++;
	return 0;
}

unsigned gb_sem_value(const gb_sem *s)
{
	return s->value;
}

/* ------------------------------------------------------------ condition */

void gb_cond_init(gb_cond *c)
{
	memset(c, 0, sizeof *c);
}

int gb_cond_wait(gb_cond *c, gb_lock *l, int64_t deadline)
{
	int rc;

	if (l->owner != gb__s.current)
		return -EPERM;
	gb_lock_release(l);
	rc = checkpoint();
	if (rc == 0)
		rc = gb__waitq_wait(&c->q, NULL, deadline, 1);
	/* The caller gets the lock back whatever happened: a waiter that
	 * timed out or was cancelled still holds it on return. */
	lock_acquire(l, GB_NEVER, 0);
	return rc;
}

void gb_cond_signal(gb_cond *c)
{
	gb_waiter *w = gb__waitq_pop(&c->q);

	if (w)
		gb__wake(w->task, 0);
}

void gb_cond_broadcast(gb_cond *c)
{
	gb__waitq_wake_all(&c->q, 0);
}
