/*
 * server.c - listeners, admission of new clients, reload and shutdown.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"
#include "log.h"
#include "priv.h"
#include "sd.h"
#include "server.h"

/* ------------------------------------------------------------- config */

static void apply_overrides(struct conf *c, const struct overrides *ov)
{
	if (ov->nlisten)
		conf_set_listen(c, ov->listen, ov->nlisten); /* checked in main */
	if (ov->mode >= 0)
		c->mode = (enum mode)ov->mode;
	if (ov->log_level >= 0)
		c->log_level = ov->log_level;
}

int server_load_conf(struct server *srv, struct conf *out,
                     void (*report)(const char *msg))
{
	struct conf_errors errs = { 0 };
	int n = 0;

	if (!srv->conf_required && access(srv->conf_path, F_OK) != 0 &&
	    errno == ENOENT) {
		log_info("%s not found: using the built-in defaults",
		         srv->conf_path);
		conf_free(out);
		conf_defaults(out);
	} else if ((n = conf_load(out, srv->conf_path, &errs)) > 0) {
		for (size_t i = 0; i < errs.n; i++)
			report(errs.msg[i]);
	}
	conf_errors_free(&errs);
	if (n == 0)
		apply_overrides(out, &srv->ov);
	return n;
}

/* ---------------------------------------------------------- addresses */

void server_peer_name(const struct sockaddr_storage *ss, char *buf,
                      size_t size)
{
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;

	if (ss->ss_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
		struct sockaddr_in sin = { .sin_family = AF_INET,
		                           .sin_port = sin6->sin6_port };
		memcpy(&sin.sin_addr, &sin6->sin6_addr.s6_addr[12], 4);
		gb_addr_format((struct sockaddr *)&sin, buf, size);
		return;
	}
	if (gb_addr_format((const struct sockaddr *)ss, buf, size) < 0)
		snprintf(buf, size, "?");
}

/* "*:port" listens on every IPv6 and IPv4 address with one dual-stack
 * socket, or on IPv4 alone where the host has no IPv6. */
static int open_socket(const char *spec, gb_sock **out)
{
	struct sockaddr_storage ss;
	socklen_t len;
	gb_listen_opts o = { .v6only = -1 };

	if (gb_addr_parse(spec, &ss, &len) < 0)
		return -EINVAL;
	if (spec[0] == '*') {
		o.v6only = 0;
		int rc = gb_sock_listen(out, (struct sockaddr *)&ss, len, &o);
		if (rc != -EAFNOSUPPORT && rc != -EADDRNOTAVAIL)
			return rc;
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
		in_port_t port = ((struct sockaddr_in6 *)&ss)->sin6_port;
		memset(&ss, 0, sizeof ss);
		sin->sin_family = AF_INET;
		sin->sin_port = port;
		sin->sin_addr.s_addr = htonl(INADDR_ANY);
		len = sizeof *sin;
	} else if (ss.ss_family == AF_INET6) {
		o.v6only = 1;
	}
	return gb_sock_listen(out, (struct sockaddr *)&ss, len, &o);
}

/* ----------------------------------------------------------- admission */

static void log_rejection(struct server *srv, const char *peer,
                          const char *why)
{
	int64_t now = gb_now();

	srv->rejected++;
	if (srv->reject_logged_at && now - srv->reject_logged_at < GB_SEC(1))
		return;
	if (srv->rejected == 1)
		log_warning("Rejected %s: %s", peer, why);
	else
		log_warning("Rejected %lu connections in the last second, the "
		            "last from %s: %s", srv->rejected, peer, why);
	srv->reject_logged_at = now;
	srv->rejected = 0;
}

/* Tells the client why, if its socket takes it at once, and closes it. */
static void reject(struct server *srv, gb_sock *s, const char *peer,
                   const char *line, const char *why)
{
	gb_sock_send_all(s, line, strlen(line), NULL, gb_now());
	gb_sock_close(s);
	log_rejection(srv, peer, why);
}

static void admit(struct listener *l, gb_sock *s,
                  const struct sockaddr_storage *peer)
{
	struct server *srv = l->srv;
	const struct conf *c = &srv->conf;
	const struct sockaddr *sa = (const struct sockaddr *)peer;
	char name[GB_ADDR_STRLEN];
	struct client *cl;

	server_peer_name(peer, name, sizeof name);
	if (c->max_clients && srv->nclients >= c->max_clients) {
		reject(srv, s, name, "! server full\n", "server full");
		return;
	}
	if (c->max_clients_per_ip &&
	    iptable_get(&srv->per_ip, sa) >= c->max_clients_per_ip) {
		reject(srv, s, name, "! too many connections from your address\n",
		       "too many connections from its address");
		return;
	}
	if (!(cl = gb_calloc(1, sizeof *cl)) || iptable_inc(&srv->per_ip, sa) < 0) {
		free(cl);
		reject(srv, s, name, "! server busy\n", "out of memory");
		return;
	}
	*cl = (struct client){ .srv = srv, .sock = s, .peer = *peer,
	                       .mode = listener_mode(l) };
	memcpy(cl->addr, name, sizeof name);
	srv->nclients++;
	server_status_changed(srv);
	gb_spawn_opts o = { .name = name };
	int rc = gb_spawn(srv->clients, client_main, cl, &o, NULL);
	if (rc < 0) {
		srv->nclients--;
		server_status_changed(srv);
		iptable_dec(&srv->per_ip, sa);
		free(cl);
		reject(srv, s, name, "! server busy\n", strerror(-rc));
	}
}

/* ----------------------------------------------------------- listeners */

static void listener_unlink(struct listener *l)
{
	struct listener **pp = &l->srv->listeners;

	while (*pp != l)
		pp = &(*pp)->next;
	*pp = l->next;
}

/* One accept loop per listener. It owns the listener: when cancelled
 * (shutdown, or the address left the configuration) it closes the socket
 * and frees it. */
static int accept_loop(void *arg)
{
	struct listener *l = arg;
	gb_scope scope;

	gb_scope_enter(&scope, GB_NEVER, 0);
	l->scope = &scope;
	while (!l->closing) {
		struct sockaddr_storage peer;
		gb_sock *s;
		int rc = gb_sock_accept(l->sock, &s, &peer, GB_NEVER);

		if (rc == 0) {
			admit(l, s, &peer);
		} else if (rc == -ECANCELED || l->closing) {
			break;
		} else {
			log_error("accept on %s: %s", l->addr, strerror(-rc));
			if (gb_sleep(gb_after(GB_MSEC(100))) < 0)
				break;
		}
	}
	gb_scope_leave(&scope);
	log_info("Stopped listening on %s", l->addr);
	listener_unlink(l);
	server_status_changed(l->srv);
	if (l->sock)
		gb_sock_close(l->sock);
	free(l->spec);
	free(l);
	return 0;
}

/* Closes the socket at once, so that its address is free for a listener
 * opened next (a reload moving a port); the accept loop, woken with
 * -EBADF, then goes. */
static void listener_close(struct listener *l)
{
	l->closing = 1;
	gb_sock_close(l->sock);
	l->sock = NULL;
	if (l->scope)
		gb_scope_cancel(l->scope);
}

enum mode listener_mode(const struct listener *l)
{
	return l->mode >= 0 ? (enum mode)l->mode : l->srv->conf.mode;
}

int listener_start(struct server *srv, const char *spec, gb_sock *sock,
                   int mode)
{
	struct listener *l = gb_calloc(1, sizeof *l);
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	gb_spawn_opts o = { .name = "accept" };
	int rc;

	if (!l || !(l->spec = gb_strdup(spec))) {
		free(l);
		return -ENOMEM;
	}
	*l = (struct listener){ .srv = srv, .spec = l->spec, .sock = sock,
	                        .mode = mode, .claimed = 1 };
	getsockname(gb_sock_fd(sock), (struct sockaddr *)&ss, &len);
	server_peer_name(&ss, l->addr, sizeof l->addr);
	if ((rc = gb_spawn(srv->accepters, accept_loop, l, &o, NULL)) < 0) {
		free(l->spec);
		free(l);
		return rc;
	}
	l->next = srv->listeners;
	srv->listeners = l;
	log_info("%s server serving asynchronously at %s",
	         listener_mode(l) == MODE_CHAT ? "Chat" : "Echo", l->addr);
	server_status_changed(srv);
	return 0;
}

static int listener_open(struct server *srv, const char *spec)
{
	gb_sock *sock;
	int rc = open_socket(spec, &sock);

	if (rc == 0 && (rc = listener_start(srv, spec, sock, -1)) < 0)
		gb_sock_close(sock);
	if (rc == -EACCES && priv_dropped())
		log_error("cannot listen on %s: %s (root was dropped at startup: "
		          "ports below 1024 can only be opened at a restart)",
		          spec, strerror(-rc));
	else if (rc < 0)
		log_error("cannot listen on %s: %s", spec, strerror(-rc));
	return rc;
}

/* An open listener for spec not yet matched with a configured address. */
static struct listener *find_unclaimed(struct server *srv, const char *spec)
{
	for (struct listener *l = srv->listeners; l; l = l->next)
		if (!l->closing && !l->claimed && strcmp(l->spec, spec) == 0)
			return l;
	return NULL;
}

/* Closes what the configuration no longer lists, then opens what it lists
 * and is not open yet (in that order, so that an address can move from
 * one listen entry to an overlapping one). Each listener serves one listed
 * address, so an address listed twice (port 0, say) gets two. Returns how
 * many addresses failed to open. */
static int listeners_sync(struct server *srv)
{
	int failed = 0;
	struct listener *l;
	unsigned char open_it[CONF_LISTEN_MAX] = { 0 };

	for (l = srv->listeners; l; l = l->next)
		l->claimed = 0;
	for (size_t i = 0; i < srv->conf.nlisten; i++) {
		if ((l = find_unclaimed(srv, srv->conf.listen[i])))
			l->claimed = 1;
		else
			open_it[i] = 1;
	}
	for (l = srv->listeners; l; l = l->next)
		if (!l->closing && !l->claimed)
			listener_close(l);
	for (size_t i = 0; i < srv->conf.nlisten; i++)
		if (open_it[i] && listener_open(srv, srv->conf.listen[i]) < 0)
			failed++;
	return failed;
}

/* ------------------------------------------------------ reload, signals */

static void report_error(const char *msg)
{
	log_error("%s", msg);
}

/* Equal strings, NULL being equal only to NULL. */
static int str_eq(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

/* Rereads the file and applies it; returns 0, or -1 when the file was
 * rejected and the old configuration stays. */
static int reload_conf(struct server *srv)
{
	struct conf nc;

	if (conf_copy(&nc, &srv->conf) < 0) {
		log_error("reload: out of memory; keeping the old configuration");
		return -1;
	}
	if (server_load_conf(srv, &nc, report_error) > 0) {
		log_error("reload: %s has errors; keeping the old configuration",
		          srv->conf_path);
		conf_free(&nc);
		return -1;
	}
	if (!str_eq(nc.user, srv->conf.user))
		log_warning("reload: user changed from %s to %s: giambiod "
		            "changes users only at startup; restart it to apply "
		            "that", srv->conf.user ? srv->conf.user : "(none)",
		            nc.user ? nc.user : "(none)");
	conf_free(&srv->conf);
	srv->conf = nc;
	log_set_level(srv->conf.log_level);
	if (!srv->activated)
		listeners_sync(srv);
	log_info("Configuration reloaded (%s mode for new clients)",
	         conf_mode_name(srv->conf.mode));
	return 0;
}

/* systemd hears RELOADING=1 first and READY=1 when done, whether the new
 * file was taken or not. */
static void server_reload(struct server *srv)
{
	log_info("SIGHUP received: reloading %s", srv->conf_path);
	sd_say("RELOADING=1\nMONOTONIC_USEC=%lld",
	       (long long)(gb_now() / 1000));
	reload_conf(srv);
	server_status_changed(srv);
	sd_say("READY=1");
}

/* SIGHUP reloads; SIGTERM or SIGINT starts the shutdown; a second SIGINT
 * during it exits at once. The signals are caught (srv->signals) before
 * the listeners open (and so before READY=1), so that a signal sent on
 * seeing either is never fatal. */
static int signal_task(void *arg)
{
	struct server *srv = arg;
	int sig;

	while ((sig = gb_signals_wait(srv->signals, GB_NEVER)) > 0) {
		if (sig == SIGHUP && !srv->draining) {
			server_reload(srv);
		} else if (sig != SIGHUP && !srv->draining) {
			log_info("%s received: shutting down",
			         sig == SIGINT ? "SIGINT" : "SIGTERM");
			sd_say("STOPPING=1");
			srv->draining = 1;
			gb_event_set(&srv->stop);
		} else if (sig == SIGINT) {
			log_info("second SIGINT: exiting now");
			fflush(stderr);
			_exit(130);
		}
	}
	gb_signals_close(srv->signals);
	return 0;
}

/* --------------------------------------------------------------- main */

static void drain(struct server *srv)
{
	int rc;

	gb_group_close(srv->accepters);
	srv->drain_deadline = gb_after(srv->conf.shutdown_timeout);
	gb_group_cancel(srv->clients);
	rc = gb_group_wait(srv->clients, srv->drain_deadline + GB_MSEC(100));
	if (rc == -ETIMEDOUT)
		log_warning("%u clients still closing after the shutdown timeout",
		            srv->nclients);
	gb_group_close(srv->clients);
}

static void gb_log_to_daemon(int level, const char *msg)
{
	log_msg(level, "scheduler: %s", msg);
}

/* The listeners: the sockets systemd passed, or the configured ones.
 * Returns 0 when every one is open. */
static int open_listeners(struct server *srv)
{
	int n = activation_adopt(srv);

	if (n < 0)
		return -1;
	if (n > 0) {
		srv->activated = 1;
		if (srv->conf.nlisten)
			log_info("Sockets come from systemd: the listen addresses "
			         "of the configuration are not used");
		return 0;
	}
	if (listeners_sync(srv) || !srv->listeners) {
		log_error("cannot open every listen address: exiting");
		return -1;
	}
	return 0;
}

/* The signal task. Started before the listeners are opened: whoever
 * sees the startup line or the port answer may signal the daemon at once,
 * and SIGHUP or SIGTERM must not kill it then. */
static int start_signals(struct server *srv)
{
	static const int sigs[] = { SIGHUP, SIGTERM, SIGINT };
	int rc = gb_signals_open(&srv->signals, sigs, 3);

	if (rc < 0) {
		log_error("cannot catch signals");
		return rc;
	}
	if ((rc = gb_spawn(srv->service, signal_task, srv, NULL, NULL)) < 0)
		gb_signals_close(srv->signals);
	return rc;
}

/* The service tasks besides the signal task: systemd's status and
 * watchdog, where systemd asks for them. */
static int start_service(struct server *srv)
{
	int rc = 0;

	if (getenv("NOTIFY_SOCKET"))
		rc = gb_spawn(srv->service, status_task, srv, NULL, NULL);
	if (rc == 0 && sd_watchdog_ns() > 0)
		rc = gb_spawn(srv->service, watchdog_task, srv, NULL, NULL);
	return rc;
}

int server_main(void *arg)
{
	struct server *srv = arg;

	gb_set_log(gb_log_to_daemon);
	gb_event_init(&srv->stop);
	gb_event_init(&srv->status_changed);
	if (gb_group_open(&srv->service) < 0 || gb_group_open(&srv->clients) < 0 ||
	    gb_group_open(&srv->accepters) < 0) {
		log_error("out of memory");
		return -ENOMEM;
	}
	/* Signals are caught first, so that one sent as soon as the startup
	 * line is logged is handled, not fatal. Root is dropped once the
	 * sockets are open, before the first client is accepted (that takes
	 * this task yielding, in gb_event_wait). */
	if (start_signals(srv) < 0 || open_listeners(srv) < 0 ||
	    priv_drop(&srv->conf) < 0 || start_service(srv) < 0) {
		srv->exit_code = 1;
		srv->draining = 1;
	} else {
		gb_fault_arm(); /* test builds only: see gb.h */
		char status[STATUS_MAX];
		status_line(srv, status, sizeof status);
		sd_say("READY=1\nSTATUS=%s", status);
		gb_event_wait(&srv->stop, GB_NEVER);
	}
	drain(srv);
	gb_group_close(srv->service);
	return 0;
}
