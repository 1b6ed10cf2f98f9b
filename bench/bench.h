/*
 * bench.h - small helpers shared by the benchmark programs.
 */
#ifndef GIAMBIOD_BENCH_H
#define GIAMBIOD_BENCH_H

#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

/* Parses "-p PORT" (0-65535) and nothing else; -1 after printing usage. */
static inline int bench_port_arg(int argc, char **argv, const char *prog)
{
	int port = -1, opt;

	while ((opt = getopt(argc, argv, "p:")) != -1) {
		if (opt != 'p')
			break;
		char *end;
		long v = strtol(optarg, &end, 10);
		if (*end || v < 0 || v > 65535)
			break;
		port = (int)v;
	}
	if (port < 0 || optind != argc) {
		fprintf(stderr, "usage: %s -p port\n", prog);
		return -1;
	}
	return port;
}

/* As many descriptors as the hard limit allows. */
static inline void bench_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

#endif
