/*
 * signal.c - signals as events a task waits for.
 *
 * libevent's signal handler only writes to its internal socket; the
 * callback below runs in the loop, queues the signal and wakes the waiter.
 * Nothing the program does on a signal runs inside a signal handler.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>

/* Signals arriving faster than the task takes them: past this many
 * pending, repeats of a signal already queued are dropped (signals
 * coalesce anyway). */
#define PENDING_MAX 32

struct gb_signals {
	int n;
	struct event *evs;
	int pending[PENDING_MAX];
	int head, len;
	gb_task *waiter;
};

static int queued(const gb_signals *s, int signo)
{
	for (int i = 0; i < s->len; i++)
		if (s->pending[(s->head + i) % PENDING_MAX] == signo)
			return 1;
	return 0;
}

static void signal_cb(evutil_socket_t signo, short what, void *arg)
{
	gb_signals *s = arg;

	(void)what;
	if (s->len == PENDING_MAX && queued(s, (int)signo))
		return;
	if (s->len == PENDING_MAX) {
		s->head = (s->head + 1) % PENDING_MAX; /* drop the oldest */
		s->len--;
	}
	s->pending[(s->head + s->len) % PENDING_MAX] = (int)signo;
	s->len++;
	if (s->waiter) {
		gb_task *t = s->waiter;
		s->waiter = NULL;
		gb__wake(t, 0);
	}
}

int gb_signals_open(gb_signals **out, const int *signos, int n)
{
	gb_signals *s = gb_calloc(1, sizeof *s);

	if (!s || n <= 0 || !(s->evs = gb_calloc((size_t)n, sizeof *s->evs))) {
		free(s);
		return n <= 0 ? -EINVAL : -ENOMEM;
	}
	for (s->n = 0; s->n < n; s->n++) {
		struct event *ev = &s->evs[s->n];
		if (evsignal_assign(ev, gb__s.base, signos[s->n], signal_cb, s) ||
		    evsignal_add(ev, NULL)) {
			gb_signals_close(s);
			return -EINVAL;
		}
	}
	*out = s;
	return 0;
}

static void detach_waiter(gb_task *t)
{
	gb_signals *s = t->wait_obj;

	s->waiter = NULL;
}

int gb_signals_wait(gb_signals *s, int64_t deadline)
{
	gb_task *t = gb__s.current;
	int rc = gb__checkpoint_status(t);

	while (rc == 0 && s->len == 0) {
		if (s->waiter)
			return -EBUSY;
		s->waiter = t;
		t->wait_obj = s;
		rc = gb__block(deadline, detach_waiter);
	}
	if (rc)
		return rc;
	int signo = s->pending[s->head];
	s->head = (s->head + 1) % PENDING_MAX;
	s->len--;
	return signo;
}

void gb_signals_close(gb_signals *s)
{
	for (int i = 0; i < s->n; i++)
		evsignal_del(&s->evs[i]);
	if (s->waiter)
		gb__wake(s->waiter, -EBADF);
	free(s->evs);
	free(s);
}
