/*
 * sd.c - the sd-daemon API from libsystemd, or its absence.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#ifdef HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "sd.h"

#ifdef HAVE_SYSTEMD

const char *sd_support(void)
{
	return "systemd: notify, socket activation, watchdog";
}

void sd_say(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	sd_notify(0, msg);
}

int64_t sd_watchdog_ns(void)
{
	uint64_t usec = 0;

	if (sd_watchdog_enabled(0, &usec) <= 0)
		return 0;
	return (int64_t)usec * 1000;
}

int sd_sockets(char ***names)
{
	return sd_listen_fds_with_names(0, names);
}

void sd_names_free(char **names)
{
	for (char **p = names; p && *p; p++)
		free(*p);
	free(names);
}

#else /* !HAVE_SYSTEMD */

const char *sd_support(void)
{
	return "built without systemd: no notifications, LISTEN_FDS ignored";
}

void sd_say(const char *fmt, ...)
{
	(void)fmt;
}

int64_t sd_watchdog_ns(void)
{
	return 0;
}

int sd_sockets(char ***names)
{
	*names = NULL;
	return 0;
}

void sd_names_free(char **names)
{
	(void)names;
}

#endif

/* sd_is_socket_inet decides; this only says what the socket is instead. */
int sd_socket_ok(int fd, char *what, size_t size)
{
	int type = 0, listening = 0;
	/* Zeroed: getsockname() fills the family of any socket, which the
	 * analyser does not know; a short answer then reads AF_UNSPEC. */
	struct sockaddr_storage ss = { 0 };
	socklen_t len = sizeof ss, ilen = sizeof type;

#ifdef HAVE_SYSTEMD
	if (sd_is_socket_inet(fd, AF_UNSPEC, SOCK_STREAM, 1, 0) > 0)
		return 1;
#endif
	if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) {
		snprintf(what, size, "not a socket");
		return 0;
	}
	getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &ilen);
	ilen = sizeof listening;
	getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &ilen);
	if (ss.ss_family != AF_INET && ss.ss_family != AF_INET6) {
		snprintf(what, size, "%s, not an IPv4 or IPv6 socket",
		         ss.ss_family == AF_UNIX ? "an AF_UNIX socket"
		                                 : "a socket of another family");
		return 0;
	}
	if (type != SOCK_STREAM) {
		snprintf(what, size, "%s, not a TCP stream",
		         type == SOCK_DGRAM ? "a UDP (datagram) socket"
		                            : "an IP socket of another type");
		return 0;
	}
	if (!listening) {
		snprintf(what, size, "a TCP socket that is not listening");
		return 0;
	}
	return 1;
}
