/*
 * bench.h - small helpers shared by the benchmark programs.
 */
#ifndef GIAMBIOD_BENCH_H
#define GIAMBIOD_BENCH_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>
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

static inline uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Latency histogram, one per program. Values in us: below 1024 one bucket
 * each; above, every power of two is split into 512 buckets. */
#define HSUB 512
#define HBUCKETS (1024 + 54 * HSUB)
static uint64_t hist[HBUCKETS];
static uint64_t hcount;

static inline void hist_add(uint64_t us)
{
	size_t i;
	if (us < 1024) {
		i = us;
	} else {
		int k = 63 - __builtin_clzll(us); /* >= 10 */
		int shift = k - 9;
		i = 1024 + (size_t)(k - 10) * HSUB + ((us >> shift) - HSUB);
		if (i >= HBUCKETS)
			i = HBUCKETS - 1;
	}
	hist[i]++;
	hcount++;
}

static inline uint64_t hist_value(size_t i)
{
	if (i < 1024)
		return i;
	size_t k = (i - 1024) / HSUB + 10, sub = (i - 1024) % HSUB;
	int shift = (int)k - 9;
	uint64_t lo = (uint64_t)(HSUB + sub) << shift;
	return lo + ((1ull << shift) >> 1); /* middle of the bucket */
}

static inline uint64_t hist_pct(double q)
{
	if (hcount == 0)
		return 0;
	uint64_t want = (uint64_t)(q * (double)hcount + 0.999999), acc = 0;
	if (want < 1)
		want = 1;
	for (size_t i = 0; i < HBUCKETS; i++) {
		acc += hist[i];
		if (acc >= want)
			return hist_value(i);
	}
	return hist_value(HBUCKETS - 1);
}

#endif
