/*
 * clock.c - the monotonic clock every deadline is measured on.
 */
#include "internal.h"

#include <time.h>

int64_t gb_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int64_t gb_after(int64_t ns)
{
	int64_t now = gb_now();

	if (ns >= GB_NEVER - now)
		return GB_NEVER;
	return now + ns;
}
