/*
 * outbox.c - shared messages and per-client queues of them.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "outbox.h"

struct outmsg *outmsg_printf(const char *fmt, ...)
{
	va_list ap;
	struct outmsg *m;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !(m = gb_malloc(sizeof *m + (size_t)n + 1)))
		return NULL;
	va_start(ap, fmt);
	vsnprintf(m->data, (size_t)n + 1, fmt, ap);
	va_end(ap);
	m->refs = 1;
	m->len = (size_t)n;
	return m;
}

void outmsg_unref(struct outmsg *m)
{
	if (m && --m->refs == 0)
		free(m);
}

void outbox_init(struct outbox *o)
{
	memset(o, 0, sizeof *o);
	gb_sem_init(&o->ready, 0, 1);
}

void outbox_free(struct outbox *o)
{
	for (size_t i = 0; i < o->n; i++)
		outmsg_unref(o->q[(o->head + i) % o->cap]);
	free(o->q);
	o->q = NULL;
	o->n = o->bytes = 0;
}

/* Doubles the ring, unwrapping it so the oldest message is first. */
static int grow(struct outbox *o)
{
	size_t cap = o->cap ? 2 * o->cap : 8;
	/* An array of pointers: sizeof a pointer is the element size. */
	/* NOLINTNEXTLINE(bugprone-sizeof-expression) */
	struct outmsg **q = gb_malloc(cap * sizeof *q);

	if (!q)
		return -ENOMEM;
	for (size_t i = 0; i < o->n; i++)
		q[i] = o->q[(o->head + i) % o->cap];
	free(o->q);
	o->q = q;
	o->cap = cap;
	o->head = 0;
	return 0;
}

int outbox_push(struct outbox *o, struct outmsg *m)
{
	if (o->n == o->cap && grow(o) < 0)
		return -ENOMEM;
	o->q[(o->head + o->n) % o->cap] = m;
	o->n++;
	o->bytes += m->len;
	m->refs++;
	gb_sem_release(&o->ready); /* -EOVERFLOW: already signalled */
	return 0;
}

/* Forgets sent bytes from the front. */
static void consume(struct outbox *o, size_t sent)
{
	while (sent) {
		struct outmsg *m = o->q[o->head];
		size_t left = m->len - o->off;

		if (sent < left) {
			o->off += sent;
			o->bytes -= sent;
			return;
		}
		sent -= left;
		o->bytes -= left;
		o->off = 0;
		o->head = (o->head + 1) % o->cap;
		o->n--;
		outmsg_unref(m);
	}
}

int outbox_flush(struct outbox *o, gb_sock *s, int64_t deadline)
{
	int rc = 0;

	o->flushing = 1;
	while (o->n && rc == 0) {
		struct iovec iov[GB_IOV_MAX];
		int cnt = 0;

		/* The pieces point into messages, which pushes never move. */
		for (size_t i = 0; i < o->n && cnt < GB_IOV_MAX; i++, cnt++) {
			struct outmsg *m = o->q[(o->head + i) % o->cap];
			size_t skip = i == 0 ? o->off : 0;
			iov[cnt].iov_base = m->data + skip;
			iov[cnt].iov_len = m->len - skip;
		}
		size_t sent = 0;
		rc = gb_sock_sendv_all(s, iov, cnt, &sent, deadline);
		consume(o, sent);
	}
	o->flushing = 0;
	return rc;
}

int outbox_writer(void *arg)
{
	struct outbox_writer *w = arg;

	for (;;) {
		while (w->o->n == 0)
			if (gb_sem_acquire(&w->o->ready, GB_NEVER) < 0)
				return 0;
		if (outbox_flush(w->o, w->sock, GB_NEVER) < 0)
			return 0;
	}
}
