/*
 * waitq.c - FIFO queues of waiting tasks, the building block of every
 * synchronisation primitive.
 *
 * A waiter lives on the waiting task's own stack for the length of its
 * wait. Whoever pops it from the queue (the primitive's waker) may hand it
 * something through w->data and must then wake the task; a timeout or a
 * cancellation instead unlinks it (detach_waiter), so a waiter that gave
 * up is never handed anything.
 */
#include "internal.h"

void gb__waitq_push(gb_waitq *q, gb_waiter *w)
{
	w->q = q;
	w->next = NULL;
	w->prev = q->tail;
	if (q->tail)
		q->tail->next = w;
	else
		q->head = w;
	q->tail = w;
}

void gb__waitq_remove(gb_waiter *w)
{
	gb_waitq *q = w->q;

	if (w->prev)
		w->prev->next = w->next;
	else
		q->head = w->next;
	if (w->next)
		w->next->prev = w->prev;
	else
		q->tail = w->prev;
}

gb_waiter *gb__waitq_pop(gb_waitq *q)
{
	gb_waiter *w = q->head;

	if (w)
		gb__waitq_remove(w);
	return w;
}

void gb__waitq_wake_all(gb_waitq *q, int rc)
{
	gb_waiter *w;

	while ((w = gb__waitq_pop(q)))
		gb__wake(w->task, rc);
}

static void detach_waiter(gb_task *t)
{
	gb__waitq_remove(t->wait_obj);
}

int gb__waitq_wait(gb_waitq *q, void *data, int64_t deadline, int cancellable)
{
	gb_task *t = gb__s.current;
	gb_waiter w = { .task = t, .data = data };

	gb__waitq_push(q, &w);
	t->wait_obj = &w;
	if (!cancellable)
		return gb__block(GB_NEVER, NULL);
	return gb__block(deadline, detach_waiter);
}
