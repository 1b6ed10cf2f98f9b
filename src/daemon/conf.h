/*
 * conf.h - giambio.conf: the daemon's settings, their defaults, and the
 * parser that reads them (libinih underneath).
 */
#ifndef GIAMBIOD_CONF_H
#define GIAMBIOD_CONF_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

enum mode { MODE_ECHO, MODE_CHAT };

#define CONF_LISTEN_MAX 16

struct conf {
	/* [server] */
	char *listen[CONF_LISTEN_MAX];  /* owned; as written in the file */
	size_t nlisten;
	enum mode mode;
	char *welcome;                  /* owned; without the newline */
	char *user;                     /* owned; NULL: stay who started */
	uid_t uid;                      /* user's, looked up when read */
	gid_t gid;                      /* user's primary group */
	/* [limits]; 0 means no limit except where noted */
	unsigned max_clients;
	unsigned max_clients_per_ip;
	size_t max_line;                /* >= 2, terminator included */
	int64_t idle_timeout;           /* ns */
	size_t send_buffer;             /* bytes */
	unsigned rate;                  /* lines per second */
	unsigned rate_burst;
	int64_t shutdown_timeout;       /* ns; 0: close at once */
	/* [log] */
	int log_level;
};

/* Errors found while reading a file: every one of them, in file order,
 * each already formatted as "FILE:LINE: KEY: problem; expected ...". */
struct conf_errors {
	char **msg;
	size_t n;
};

void conf_defaults(struct conf *c);
/* Reads path over the defaults in c. Returns 0, or the number of errors
 * (then c is left as it was and errs holds them). A file that cannot be
 * opened is one error. */
int conf_load(struct conf *c, const char *path, struct conf_errors *errs);
/* The same from an open stream named name (for tests and fuzzing). */
int conf_load_stream(struct conf *c, FILE *f, const char *name,
                     struct conf_errors *errs);
void conf_free(struct conf *c);
void conf_errors_free(struct conf_errors *e);

/* Deep copy; returns 0 or -ENOMEM. */
int conf_copy(struct conf *dst, const struct conf *src);

/* Value parsers of the key table (the mode one also serves --mode).
 * Return 0 or -EINVAL. */
int conf_parse_duration(const char *s, int64_t *ns);
int conf_parse_size(const char *s, size_t *bytes);
int conf_parse_mode(const char *s, enum mode *m);
const char *conf_mode_name(enum mode m);
/* Replaces the listen list with one address (the first --listen). */
int conf_set_listen(struct conf *c, char **addrs, size_t n);

#endif
