/*
 * giambiod.c - the daemon's entry point.
 *
 * PARTIAL: this is the placeholder the foundation ships. It parses -c, -h
 * and -V, starts the scheduler and keeps a heartbeat task running until
 * SIGINT or SIGTERM; it does not serve clients yet (the echo and chat
 * server come with the socket layer and the daemon itself).
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gb.h"

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
	stop_signal = sig;
}

static void log_info(const char *msg)
{
	char ts[32];
	time_t now = time(NULL);
	struct tm tm;

	strftime(ts, sizeof ts, "%d/%m/%Y %H:%M:%S", localtime_r(&now, &tm));
	fprintf(stderr, "[INFO] %s %s\n", ts, msg);
}

/* Until the signal task of the daemon exists, the main task polls the
 * flag the handler sets, four times a second. */
static int daemon_main(void *arg)
{
	(void)arg;
	log_info("giambiod " PACKAGE_VERSION " scheduler running; this build "
	         "does not serve clients yet (placeholder daemon)");
	while (!stop_signal) {
		int rc = gb_sleep(gb_after(GB_MSEC(250)));
		if (rc)
			return rc;
	}
	log_info("Exiting...");
	return 0;
}

static void usage(FILE *out)
{
	fprintf(out, "usage: giambiod [-c FILE] [-h] [-V]\n");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "c:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			break; /* the configuration is read by the daemon proper */
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("giambiod %s\n", PACKAGE_VERSION);
			return 0;
		default:
			usage(stderr);
			return 64;
		}
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	int rc = gb_run(daemon_main, NULL);
	if (rc < 0) {
		fprintf(stderr, "giambiod: %s\n", strerror(-rc));
		return 1;
	}
	return 0;
}
