/*
 * activation.c - giambiod under systemd: sockets passed by socket
 * activation, STATUS= kept current, and the watchdog pinged from a task
 * (so a wedged loop stops the pings and systemd restarts the daemon).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "sd.h"
#include "server.h"

#define SD_LISTEN_FDS_START 3

/* FileDescriptorName=echo or =chat picks the socket's mode. */
static int mode_of_name(const char *name)
{
	enum mode m;

	return name && conf_parse_mode(name, &m) == 0 ? (int)m : -1;
}

/* Checks every passed socket before serving any, so that a bad one stops
 * the daemon before it has told anyone it is ready. */
static int check_sockets(int n, char **names)
{
	int bad = 0;

	for (int i = 0; i < n; i++) {
		char what[128];
		int fd = SD_LISTEN_FDS_START + i;
		if (!sd_socket_ok(fd, what, sizeof what)) {
			log_error("socket activation: descriptor %d (%s) is %s; "
			          "expected a listening TCP socket", fd,
			          names && names[i] ? names[i] : "unnamed", what);
			bad++;
		}
	}
	return bad;
}

int activation_adopt(struct server *srv)
{
	char **names = NULL;
	int n = sd_sockets(&names), rc = 0;

	if (n < 0) {
		log_error("socket activation: LISTEN_FDS or LISTEN_FDNAMES is "
		          "malformed: %s", strerror(-n));
		return -1;
	}
	if (n == 0)
		return 0;
	if (check_sockets(n, names)) {
		sd_names_free(names);
		return -1;
	}
	for (int i = 0; i < n && rc == 0; i++) {
		int fd = SD_LISTEN_FDS_START + i;
		const char *name = names && names[i] ? names[i] : "";
		char spec[32];
		gb_sock *sock;

		snprintf(spec, sizeof spec, "fd:%d", fd);
		if ((rc = gb_sock_wrap(&sock, fd)) == 0 &&
		    (rc = listener_start(srv, spec, sock, mode_of_name(name))) < 0)
			gb_sock_close(sock);
		if (rc == 0)
			log_info("Socket activation: descriptor %d (%s) serves %s", fd,
			         *name ? name : "unnamed",
			         srv->listeners->addr);
		else
			log_error("socket activation: descriptor %d: %s", fd,
			          strerror(-rc));
	}
	sd_names_free(names);
	return rc == 0 ? n : -1;
}

/* "echo: 12 clients on 127.0.0.1:25000, [::1]:25000"; a daemon serving
 * both modes says "echo+chat" and names each listener's mode. */
void status_line(struct server *srv, char *buf, size_t size)
{
	int modes = 0, o, first = 1;
	struct listener *l;

	for (l = srv->listeners; l; l = l->next)
		if (!l->closing)
			modes |= 1 << listener_mode(l);
	if (srv->draining) {
		snprintf(buf, size, "stopping: %u client%s left", srv->nclients,
		         srv->nclients == 1 ? "" : "s");
		return;
	}
	o = snprintf(buf, size, "%s: %u client%s on",
	             modes == 3 ? "echo+chat" : modes == 2 ? "chat" : "echo",
	             srv->nclients, srv->nclients == 1 ? "" : "s");
	for (l = srv->listeners; l && o > 0 && (size_t)o < size; l = l->next) {
		if (l->closing)
			continue;
		o += snprintf(buf + o, size - (size_t)o, "%s %s%s%s",
		              first ? "" : ",", l->addr, modes == 3 ? " " : "",
		              modes == 3 ? conf_mode_name(listener_mode(l)) : "");
		first = 0;
	}
}

void server_status_changed(struct server *srv)
{
	gb_event_set(&srv->status_changed);
}

int status_task(void *arg)
{
	struct server *srv = arg;
	char status[STATUS_MAX];

	while (gb_event_wait(&srv->status_changed, GB_NEVER) == 0) {
		gb_event_clear(&srv->status_changed);
		status_line(srv, status, sizeof status);
		sd_say("STATUS=%s", status);
		/* Rate limit: changes in the meantime make one update. */
		if (gb_sleep(gb_after(GB_MSEC(200))) < 0)
			break;
	}
	return 0;
}

int watchdog_task(void *arg)
{
	int64_t half = sd_watchdog_ns() / 2;

	(void)arg;
	do
		sd_say("WATCHDOG=1");
	while (gb_sleep(gb_after(half)) == 0);
	return 0;
}
