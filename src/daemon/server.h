/*
 * server.h - the running daemon: its listeners, its clients, and the
 * configuration they follow.
 *
 * Task layout (every task is in a group owned by the main task):
 *   service group:   the signal task (reload, shutdown)
 *   clients group:   one task per client
 *   accepters group: one accept loop per listener
 * Shutdown closes the accepters, cancels the clients (each says goodbye
 * in a shielded scope bounded by shutdown_timeout), then the service.
 */
#ifndef GIAMBIOD_SERVER_H
#define GIAMBIOD_SERVER_H

#include <stdint.h>

#include "gb.h"
#include "chat.h"
#include "conf.h"
#include "iptable.h"

/* What the command line says over the file; unset fields are -1/NULL. */
struct overrides {
	char **listen;
	size_t nlisten;
	int mode;
	int log_level;
};

struct listener {
	struct listener *next;
	struct server *srv;
	char *spec;                    /* the listen value it came from */
	gb_sock *sock;                 /* owned by its accept loop */
	char addr[GB_ADDR_STRLEN];     /* the address actually bound */
	int mode;                      /* -1: the configuration's mode */
	int closing;                   /* set by listener_close */
	int claimed;                   /* matched by listeners_sync */
	gb_scope *scope;               /* the accept loop's, while it runs */
};

struct server {
	struct conf conf;              /* in force; replaced on reload */
	const char *conf_path;
	int conf_required;             /* -c given: the file must exist */
	struct overrides ov;
	struct listener *listeners;
	gb_group *service, *clients, *accepters;
	gb_signals *signals;           /* SIGHUP, SIGTERM, SIGINT */
	gb_event stop;                 /* set to begin the shutdown */
	gb_event status_changed;       /* set when systemd's STATUS= is stale */
	int activated;                 /* listeners came from systemd */
	int draining;
	int64_t drain_deadline;
	unsigned nclients;
	struct iptable per_ip;
	struct chat chat;
	int64_t reject_logged_at;      /* rejections are logged once a second */
	unsigned long rejected;        /* since the last such line */
	int exit_code;
};

/* Loads the configuration the way startup and reload both do: the file
 * (or the defaults when the default file is missing), then the command
 * line. Each error goes to report; returns 0 or the number of errors, and
 * leaves out as it was on errors. */
int server_load_conf(struct server *srv, struct conf *out,
                     void (*report)(const char *msg));

/* The main task (arg: the struct server): runs the daemon until it is
 * told to stop. */
int server_main(void *arg);

/* Starts serving on an open listening socket (taking it over): spec is
 * what it came from, mode -1 follows the configuration. */
int listener_start(struct server *srv, const char *spec, gb_sock *sock,
                   int mode);
enum mode listener_mode(const struct listener *l);

/* activation.c: systemd's side of the daemon. */
/* Serves the sockets systemd passed (LISTEN_FDS); returns how many, or -1
 * when one is not a listening TCP socket (the daemon must not start). */
int activation_adopt(struct server *srv);
/* STATUS= lines like "echo: 12 clients on 127.0.0.1:25000". */
#define STATUS_MAX 512
void status_line(struct server *srv, char *buf, size_t size);
/* The client count or the listeners changed. */
void server_status_changed(struct server *srv);
/* Service tasks: keep STATUS= current (at most 5 times a second), and
 * ping the watchdog at half its interval. arg: the struct server. */
int status_task(void *arg);
int watchdog_task(void *arg);

/* Formats a peer address for logs; IPv4 mapped into IPv6 is shown as
 * IPv4. */
void server_peer_name(const struct sockaddr_storage *ss, char *buf,
                      size_t size);

#endif
