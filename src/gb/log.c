/*
 * log.c - the scheduler's own rare messages (resource exhaustion,
 * deadlocks). The embedding program decides where they go.
 */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>

static gb_log_fn log_fn;

void gb_set_log(gb_log_fn fn)
{
	log_fn = fn;
}

void gb__log(int level, const char *fmt, ...)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (log_fn)
		log_fn(level, msg);
	else
		fprintf(stderr, "gb: %s: %s\n", names[level], msg);
}
