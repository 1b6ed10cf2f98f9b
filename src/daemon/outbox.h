/*
 * outbox.h - what is waiting to be sent to one chat client.
 *
 * A message is built once and shared by every outbox it goes to
 * (reference counted), so a broadcast to a room costs one allocation.
 * Only the outbox's writer (its writer task, or the client's own task
 * after the writer has stopped) sends from it; any task may push.
 */
#ifndef GIAMBIOD_OUTBOX_H
#define GIAMBIOD_OUTBOX_H

#include <stddef.h>

#include "gb.h"

struct outmsg {
	unsigned refs;
	size_t len;
	char data[];
};

/* A message from printf-style arguments, with one reference. */
struct outmsg *outmsg_printf(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
void outmsg_unref(struct outmsg *m);

struct outbox {
	struct outmsg **q;      /* ring of messages, each holding a ref */
	size_t cap, head, n;
	size_t off;             /* bytes of q[head] already sent */
	size_t bytes;           /* bytes queued and not sent yet */
	int flushing;           /* a flush is under way: if it is not
	                         * running, it waits for the socket or
	                         * for its turn */
	gb_sem ready;           /* released when something was pushed */
};

void outbox_init(struct outbox *o);
void outbox_free(struct outbox *o);
/* Queues m (taking a new reference). -ENOMEM if it cannot. */
int outbox_push(struct outbox *o, struct outmsg *m);
/* Sends everything queued; returns 0 or the error that stopped it (what
 * was sent is gone from the outbox either way). */
int outbox_flush(struct outbox *o, gb_sock *s, int64_t deadline);

/* The writer task's loop: waits for messages and sends them, until its
 * socket fails or it is cancelled. */
struct outbox_writer {
	struct outbox *o;
	gb_sock *sock;
};
int outbox_writer(void *arg);

#endif
