/*
 * chan.c - bounded channels of fixed-size items.
 *
 * Items go straight from a sender to a waiting receiver when there is one
 * (the queue is then empty), else through a ring buffer of `cap` items.
 * A sender that finds the ring full waits with a pointer to its item; the
 * receiver that frees a slot moves that item in and wakes the sender. A
 * waiter that times out or is cancelled is unlinked first, so its item is
 * never taken (sender) or lost (receiver).
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct gb_chan {
	size_t isz;             /* bytes per item */
	size_t cap;             /* ring capacity in items */
	size_t head, len;       /* oldest item, items queued */
	int closed;
	gb_waitq senders;       /* waiting with data = the item to send */
	gb_waitq receivers;     /* waiting with data = where to put one */
	char *ring;
};

int gb_chan_open(gb_chan **out, size_t item_size, size_t capacity)
{
	gb_chan *c;

	if (item_size == 0 || (capacity && item_size > SIZE_MAX / capacity))
		return -EINVAL;
	if (!(c = gb_calloc(1, sizeof *c)))
		return -ENOMEM;
	if (capacity && !(c->ring = gb_malloc(item_size * capacity))) {
		free(c);
		return -ENOMEM;
	}
	c->isz = item_size;
	c->cap = capacity;
	*out = c;
	return 0;
}

/* Pointer-sized items (the common case) skip the memcpy call. */
static inline void item_copy(const gb_chan *c, void *dst, const void *src)
{
	if (c->isz == sizeof(void *))
		memcpy(dst, src, sizeof(void *));
	else
		memcpy(dst, src, c->isz);
}

static void ring_push(gb_chan *c, const void *item)
{
	size_t tail = c->head + c->len;

	if (tail >= c->cap)
		tail -= c->cap;
	item_copy(c, c->ring + tail * c->isz, item);
	c->len++;
}

static void ring_pop(gb_chan *c, void *item)
{
	item_copy(c, item, c->ring + c->head * c->isz);
	if (++c->head == c->cap)
		c->head = 0;
	c->len--;
}

int gb_chan_try_send(gb_chan *c, const void *item)
{
	gb_waiter *w;

	if (c->closed)
		return -EPIPE;
	if ((w = gb__waitq_pop(&c->receivers))) {
		item_copy(c, w->data, item);
		gb__wake(w->task, 0);
		return 0;
	}
	if (c->len == c->cap)
		return -EAGAIN;
	ring_push(c, item);
	return 0;
}

int gb_chan_try_recv(gb_chan *c, void *item)
{
	gb_waiter *w = gb__waitq_pop(&c->senders);

	if (c->len) {
		ring_pop(c, item);
		if (w)
			ring_push(c, w->data);
	} else if (w) {
		item_copy(c, item, w->data); /* capacity 0: rendezvous */
	} else {
		return c->closed ? -EPIPE : -EAGAIN;
	}
	if (w)
		gb__wake(w->task, 0);
	return 0;
}

int gb_chan_send(gb_chan *c, const void *item, int64_t deadline)
{
	int rc = gb__checkpoint_status(gb__s.current);

	if (rc)
		return rc;
	rc = gb_chan_try_send(c, item);
	if (rc != -EAGAIN)
		return rc;
	return gb__waitq_wait(&c->senders, (void *)item, deadline, 1);
}

int gb_chan_recv(gb_chan *c, void *item, int64_t deadline)
{
	int rc = gb__checkpoint_status(gb__s.current);

	if (rc)
		return rc;
	rc = gb_chan_try_recv(c, item);
	if (rc != -EAGAIN)
		return rc;
	return gb__waitq_wait(&c->receivers, item, deadline, 1);
}

void gb_chan_close(gb_chan *c)
{
	c->closed = 1;
	gb__waitq_wake_all(&c->senders, -EPIPE);
	gb__waitq_wake_all(&c->receivers, -EPIPE);
}

size_t gb_chan_len(const gb_chan *c)
{
	return c->len;
}

void gb_chan_free(gb_chan *c)
{
	free(c->ring);
	free(c);
}
