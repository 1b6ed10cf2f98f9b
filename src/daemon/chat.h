/*
 * chat.h - chat mode: rooms, nicks and commands. Each client's lines go
 * to the other clients of its room; every client has a bounded outbox
 * drained by its own writer task, so one slow reader never holds up the
 * others.
 */
#ifndef GIAMBIOD_CHAT_H
#define GIAMBIOD_CHAT_H

#include <stddef.h>

struct chat_room;
struct chat_member;

struct chat {
	struct chat_room *rooms;       /* in order of creation; #lobby first */
	struct chat_member *members;   /* everyone, for nick lookups */
	unsigned long next_guest;
};

struct client;

int chat_init(struct chat *c);
void chat_free(struct chat *c);

/* Serves one client in chat mode until it leaves; runs in its task. */
int chat_serve(struct client *cl);

#endif
