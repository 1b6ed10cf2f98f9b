/*
 * log.c - the daemon's log lines and the escaping of client data in them.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "log.h"

int log_level_current = LOG_INFO;
static int to_journal;

static const char *const level_names[] = { "error", "warning", "info", "debug" };
static const char *const level_tags[] = { "ERROR", "WARNING", "INFO", "DEBUG" };
/* syslog priorities: err, warning, info, debug */
static const int level_prio[] = { 3, 4, 6, 7 };

/* A decimal number, digits only, up to *end; -1 if there is none or it
 * does not fit. (sscanf's %llu would also take spaces and a sign, and
 * wrap a negative number round to a positive one.) */
static int parse_ull(const char *s, unsigned long long *v, char **end)
{
	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	*v = strtoull(s, end, 10);
	return errno ? -1 : 0;
}

/* "device:inode", exactly; -1 for anything else. */
static int parse_journal_stream(const char *js, unsigned long long *dev,
                                unsigned long long *ino)
{
	char *end;

	if (parse_ull(js, dev, &end) < 0 || *end != ':')
		return -1;
	if (parse_ull(end + 1, ino, &end) < 0 || *end)
		return -1;
	return 0;
}

/* systemd sets JOURNAL_STREAM to "device:inode" of the stream it connected
 * to stderr; it only counts if stderr is still that stream. */
static int stderr_is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (!js || parse_journal_stream(js, &dev, &ino) < 0)
		return 0;
	if (fstat(2, &st) != 0)
		return 0;
	return (unsigned long long)st.st_dev == dev &&
	       (unsigned long long)st.st_ino == ino;
}

void log_init(int level)
{
	to_journal = stderr_is_journal();
	log_set_level(level);
}

void log_set_level(int level)
{
	log_level_current = level;
}

int log_get_level(void)
{
	return log_level_current;
}

int log_level_parse(const char *s)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(s, level_names[i]) == 0)
			return i;
	return -1;
}

const char *log_level_name(int level)
{
	return level >= 0 && level <= LOG_DEBUG ? level_names[level] : "?";
}

void log_msg(int level, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;

	if (!log_enabled(level))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (to_journal) {
		fprintf(stderr, "<%d>%s\n", level_prio[level], msg);
		return;
	}
	char ts[32];
	time_t now = time(NULL);
	struct tm tm;
	strftime(ts, sizeof ts, "%d/%m/%Y %H:%M:%S", localtime_r(&now, &tm));
	fprintf(stderr, "[%s] %s %s\n", level_tags[level], ts, msg);
}

/* The escape for byte c, into e (at least 5 bytes); returns its length. */
static size_t escape_byte(unsigned char c, char *e)
{
	static const char hex[] = "0123456789abcdef";

	/* e is a byte buffer, not a string: no terminator wanted. */
	/* NOLINTBEGIN(bugprone-not-null-terminated-result) */
	switch (c) {
	case '\\': memcpy(e, "\\\\", 2); return 2;
	case '\'': memcpy(e, "\\'", 2); return 2;
	case '\n': memcpy(e, "\\n", 2); return 2;
	case '\r': memcpy(e, "\\r", 2); return 2;
	case '\t': memcpy(e, "\\t", 2); return 2;
	}
	/* NOLINTEND(bugprone-not-null-terminated-result) */
	if (c >= 0x20 && c < 0x7f) {
		e[0] = (char)c;
		return 1;
	}
	e[0] = '\\';
	e[1] = 'x';
	e[2] = hex[c >> 4];
	e[3] = hex[c & 15];
	return 4;
}

/* The length of the escaped form of data[0..len). */
static size_t escaped_len(const unsigned char *p, size_t len)
{
	size_t n = 0;
	char e[4];

	for (size_t i = 0; i < len; i++)
		n += escape_byte(p[i], e);
	return n;
}

size_t log_escape(char *out, size_t size, const void *data, size_t len)
{
	const unsigned char *p = data;
	size_t o = 0;

	if (size == 0)
		return 0;
	for (size_t i = 0; i < len; i++) {
		char e[4];
		size_t n = escape_byte(p[i], e);

		/* Keep room for "..." unless everything left fits. */
		if (o + n + 3 > size - 1 &&
		    o + escaped_len(p + i, len - i) > size - 1) {
			if (o + 3 <= size - 1) {
				memcpy(out + o, "...", 3);
				o += 3;
			}
			break;
		}
		memcpy(out + o, e, n);
		o += n;
	}
	out[o] = '\0';
	return o;
}
