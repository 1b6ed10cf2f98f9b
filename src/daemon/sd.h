/*
 * sd.h - what giambiod tells systemd and takes from it: readiness and
 * status notifications, the watchdog, and sockets passed by socket
 * activation. Built --without-systemd, notifications do nothing and no
 * sockets are taken.
 */
#ifndef GIAMBIOD_SD_H
#define GIAMBIOD_SD_H

#include <stdint.h>

/* A description of this build's systemd support, for --version. */
const char *sd_support(void);

/* sd_notify(3) with a formatted message; nothing when not under systemd. */
void sd_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The watchdog interval in ns for this process, or 0 when none. */
int64_t sd_watchdog_ns(void);

/* Sockets passed by systemd: how many (0 if none, a negative errno if the
 * environment describing them is malformed), each starting at fd 3;
 * names[i] is the socket's FileDescriptorName (owned by the caller: free
 * with sd_names_free). */
int sd_sockets(char ***names);
void sd_names_free(char **names);

/* 1 if fd is a listening TCP stream socket (IPv4 or IPv6); else 0, with a
 * description of what it is in what. */
int sd_socket_ok(int fd, char *what, size_t size);

#endif
