/*
 * client.h - one connected client, served by its own task.
 */
#ifndef GIAMBIOD_CLIENT_H
#define GIAMBIOD_CLIENT_H

#include <stdint.h>
#include <sys/socket.h>

#include "gb.h"
#include "conf.h"

struct server;

struct client {
	struct server *srv;
	gb_sock *sock;                 /* owned; closed by client_main */
	struct sockaddr_storage peer;
	char addr[GB_ADDR_STRLEN];     /* the peer, for logs */
	enum mode mode;                /* fixed at accept time */
	gb_task *task;                 /* the client's task, once it runs */
	int64_t rate_tat;              /* rate limit: see client_rate_wait */
	int64_t idle_deadline;         /* see client_recv_deadline */
};

/* The client's task. arg is a struct client it takes ownership of. */
int client_main(void *arg);

/* Holds the client back while it is over its line rate (the server does
 * not read meanwhile, so TCP pushes back). Returns 0 or -ECANCELED. */
int client_rate_wait(struct client *cl);

/* The deadline for the next receive: now + idle_timeout, or GB_NEVER. */
int64_t client_recv_deadline(const struct client *cl);

/* Decides whether a receive that timed out means the client was idle for
 * idle_timeout (1), or that it sent something meanwhile (0: try again). */
int client_idle(struct client *cl, size_t pending_before);

/* Sends a short notice within a bounded time; failures are ignored (the
 * client is leaving). */
void client_notice(struct client *cl, const char *text);

/* The farewell at shutdown, in a shielded scope bounded by the drain
 * deadline: the rest of an interrupted reply (may be NULL), then
 * "* server shutting down". */
void client_farewell(struct client *cl, const struct iovec *rest, int n);

#endif
