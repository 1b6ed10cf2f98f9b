/*
 * log.h - giambiod's log: one line per event on stderr, in giambio's
 * format ("[INFO] 25/11/2026 16:05:22 message"), or with sd-daemon's
 * "<N>" priority prefix when stderr is the journal.
 */
#ifndef GIAMBIOD_LOG_H
#define GIAMBIOD_LOG_H

#include <stddef.h>

enum log_level { LOG_ERROR, LOG_WARNING, LOG_INFO, LOG_DEBUG };

/* Decides the format once (journal or not) and sets the level. */
void log_init(int level);
void log_set_level(int level);
int log_get_level(void);

/* Callers test this before building an expensive line, so that a level
 * that is off costs one comparison on the per-message path. */
extern int log_level_current;
static inline int log_enabled(int level)
{
	return level <= log_level_current;
}

void log_msg(int level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) \
	do { if (log_enabled(LOG_DEBUG)) log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)

/* Escapes data the way giambio's README shows it: printable ASCII as is
 * except \\ and \', then \n \r \t, and \xNN for every other byte. Writes
 * at most size - 1 characters and a NUL; an escape is never cut in half
 * (the output ends with "..." when the data did not fit). Returns the
 * length written. */
size_t log_escape(char *out, size_t size, const void *data, size_t len);

/* Parses "error", "warning", "info" or "debug"; -1 if none. */
int log_level_parse(const char *s);
const char *log_level_name(int level);

#endif
