/*
 * conf.c - reading giambio.conf.
 *
 * libinih does the INI syntax; this file feeds it line by line through its
 * own reader, so that every error, a bad value included, carries its line
 * number, and so that every error in the file is reported, not just the
 * first. Keys are described by one table; each value kind has one parser.
 */
#include "config.h"

#include <errno.h>
#include <ini.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "gb.h"
#include "conf.h"
#include "log.h"

#define KIB 1024ULL
#define MIB (1024ULL * 1024)

/* ------------------------------------------------------------ values */

/* Digits only: no sign, no space, no empty string. */
static int parse_digits(const char *s, const char **end, uint64_t *v)
{
	uint64_t n = 0;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	for (; *s >= '0' && *s <= '9'; s++) {
		if (n > (UINT64_MAX - 9) / 10)
			return -EINVAL;
		n = n * 10 + (uint64_t)(*s - '0');
	}
	*end = s;
	*v = n;
	return 0;
}

/* A number with an optional unit from units[] (name, multiplier). */
struct unit {
	const char *name;
	uint64_t mult;
};

static int parse_with_unit(const char *s, const struct unit *units,
                           uint64_t plain, uint64_t *out)
{
	const char *end;
	uint64_t v, mult = plain;

	if (parse_digits(s, &end, &v) < 0)
		return -EINVAL;
	if (*end) {
		const struct unit *u = units;
		while (u->name && strcmp(end, u->name) != 0)
			u++;
		if (!u->name)
			return -EINVAL;
		mult = u->mult;
	}
	if (v && mult > UINT64_MAX / v)
		return -EINVAL;
	*out = v * mult;
	return 0;
}

int conf_parse_duration(const char *s, int64_t *ns)
{
	static const struct unit units[] = {
		{ "ms", 1000000ULL }, { "s", 1000000000ULL },
		{ "m", 60000000000ULL }, { "h", 3600000000000ULL }, { NULL, 0 },
	};
	uint64_t v;

	if (parse_with_unit(s, units, 1000000000ULL, &v) < 0 || v > INT64_MAX)
		return -EINVAL;
	*ns = (int64_t)v;
	return 0;
}

int conf_parse_size(const char *s, size_t *bytes)
{
	static const struct unit units[] = {
		{ "KiB", KIB }, { "MiB", MIB }, { NULL, 0 },
	};
	uint64_t v;

	if (parse_with_unit(s, units, 1, &v) < 0 || v > SIZE_MAX)
		return -EINVAL;
	*bytes = (size_t)v;
	return 0;
}

int conf_parse_mode(const char *s, enum mode *m)
{
	if (strcmp(s, "echo") == 0)
		*m = MODE_ECHO;
	else if (strcmp(s, "chat") == 0)
		*m = MODE_CHAT;
	else
		return -EINVAL;
	return 0;
}

const char *conf_mode_name(enum mode m)
{
	return m == MODE_CHAT ? "chat" : "echo";
}

/* ------------------------------------------------------------- keys */

struct key;
typedef int (*setter)(struct conf *c, const struct key *k, const char *v);

struct key {
	const char *section, *name;
	setter set;
	size_t off;                 /* offsetof the field in struct conf */
	uint64_t min, max;          /* range, in the field's unit */
	const char *expect;         /* what a good value looks like */
	int repeatable;
};

#define FIELD(T, c, k) ((T *)((char *)(c) + (k)->off))

static int set_uint(struct conf *c, const struct key *k, const char *v)
{
	const char *end;
	uint64_t n;

	if (parse_digits(v, &end, &n) < 0 || *end || n < k->min || n > k->max)
		return -EINVAL;
	*FIELD(unsigned, c, k) = (unsigned)n;
	return 0;
}

static int set_size(struct conf *c, const struct key *k, const char *v)
{
	size_t n;

	if (conf_parse_size(v, &n) < 0 || n < k->min || n > k->max)
		return -EINVAL;
	*FIELD(size_t, c, k) = n;
	return 0;
}

static int set_duration(struct conf *c, const struct key *k, const char *v)
{
	int64_t ns;

	if (conf_parse_duration(v, &ns) < 0 || (uint64_t)ns < k->min ||
	    (uint64_t)ns > k->max)
		return -EINVAL;
	*FIELD(int64_t, c, k) = ns;
	return 0;
}

static int set_mode(struct conf *c, const struct key *k, const char *v)
{
	return conf_parse_mode(v, FIELD(enum mode, c, k));
}

static int set_level(struct conf *c, const struct key *k, const char *v)
{
	int l = log_level_parse(v);

	if (l < 0)
		return -EINVAL;
	*FIELD(int, c, k) = l;
	return 0;
}

static int set_string(struct conf *c, const struct key *k, const char *v)
{
	char **field = FIELD(char *, c, k);
	char *d;

	if (strlen(v) > k->max || !(d = gb_strdup(v)))
		return -EINVAL;
	free(*field);
	*field = d;
	return 0;
}

static int set_listen(struct conf *c, const struct key *k, const char *v)
{
	struct sockaddr_storage ss;
	socklen_t len;
	char *d;

	(void)k;
	if (gb_addr_parse(v, &ss, &len) < 0 || c->nlisten == CONF_LISTEN_MAX ||
	    !(d = gb_strdup(v)))
		return -EINVAL;
	c->listen[c->nlisten++] = d;
	return 0;
}

/* The user is looked up when the file is read, so that a name the system
 * does not know is a configuration error like any other, reported before
 * anything is opened. root is refused: dropping to it is no drop. */
static int set_user(struct conf *c, const struct key *k, const char *v)
{
	struct passwd pwd, *pw = NULL;
	char buf[4096]; /* room for the entry's strings */
	char *d;

	(void)k;
	if (getpwnam_r(v, &pwd, buf, sizeof buf, &pw) != 0 || !pw ||
	    pw->pw_uid == 0 || !(d = gb_strdup(v)))
		return -EINVAL;
	free(c->user);
	c->user = d;
	c->uid = pw->pw_uid;
	c->gid = pw->pw_gid;
	return 0;
}

#define SEC 1000000000ULL
static const struct key keys[] = {
	{ "server", "listen", set_listen, 0, 0, 0,
	  "host:port, [IPv6]:port or *:port with a numeric address, "
	  "at most 16 of them", 1 },
	{ "server", "mode", set_mode, offsetof(struct conf, mode), 0, 0,
	  "echo or chat", 0 },
	{ "server", "welcome", set_string, offsetof(struct conf, welcome), 0,
	  160, "a line of text of at most 160 bytes", 0 },
	{ "server", "user", set_user, 0, 0, 0,
	  "the name of an existing user other than root", 0 },
	{ "limits", "max_clients", set_uint, offsetof(struct conf, max_clients),
	  0, 1000000, "a whole number from 0 (no limit) to 1000000", 0 },
	{ "limits", "max_clients_per_ip", set_uint,
	  offsetof(struct conf, max_clients_per_ip), 0, 1000000,
	  "a whole number from 0 (no limit) to 1000000", 0 },
	{ "limits", "max_line", set_size, offsetof(struct conf, max_line), 2,
	  MIB, "a size from 2 to 1MiB (bytes, or with KiB or MiB)", 0 },
	{ "limits", "idle_timeout", set_duration,
	  offsetof(struct conf, idle_timeout), 0, 30ULL * 24 * 3600 * SEC,
	  "a duration from 0 (none) to 720h (seconds, or with ms, s, m or h)", 0 },
	{ "limits", "send_buffer", set_size, offsetof(struct conf, send_buffer),
	  0, 1024 * MIB,
	  "a size from 0 (no limit) to 1024MiB (bytes, or with KiB or MiB)", 0 },
	{ "limits", "rate", set_uint, offsetof(struct conf, rate), 0, 1000000,
	  "lines per second, from 0 (no limit) to 1000000", 0 },
	{ "limits", "rate_burst", set_uint, offsetof(struct conf, rate_burst),
	  1, 1000000, "a whole number of lines from 1 to 1000000", 0 },
	{ "limits", "shutdown_timeout", set_duration,
	  offsetof(struct conf, shutdown_timeout), 0, 3600 * SEC,
	  "a duration from 0 (close at once) to 1h "
	  "(seconds, or with ms, s, m or h)", 0 },
	{ "log", "level", set_level, offsetof(struct conf, log_level), 0, 0,
	  "error, warning, info or debug", 0 },
};
#define NKEYS (sizeof keys / sizeof keys[0])

static const char *const sections[] = { "server", "limits", "log" };

/* --------------------------------------------------------- defaults */

void conf_defaults(struct conf *c)
{
	memset(c, 0, sizeof *c);
	c->listen[0] = gb_strdup("*:25000");
	c->nlisten = c->listen[0] ? 1 : 0;
	c->mode = MODE_ECHO;
	c->welcome = gb_strdup("Welcome to the server pal!");
	c->max_clients = 10000;
	c->max_clients_per_ip = 64;
	c->max_line = 4096;
	c->idle_timeout = 0;
	c->send_buffer = 256 * KIB;
	c->rate = 0;
	c->rate_burst = 0;
	c->shutdown_timeout = 5 * (int64_t)SEC;
	c->log_level = LOG_INFO;
}

static void listen_clear(struct conf *c)
{
	for (size_t i = 0; i < c->nlisten; i++)
		free(c->listen[i]);
	c->nlisten = 0;
}

void conf_free(struct conf *c)
{
	listen_clear(c);
	free(c->welcome);
	c->welcome = NULL;
	free(c->user);
	c->user = NULL;
}

int conf_set_listen(struct conf *c, char **addrs, size_t n)
{
	struct conf tmp = { 0 };

	if (n > CONF_LISTEN_MAX)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (set_listen(&tmp, NULL, addrs[i]) < 0) {
			listen_clear(&tmp);
			return -EINVAL;
		}
	listen_clear(c);
	memcpy(c->listen, tmp.listen, sizeof tmp.listen);
	c->nlisten = tmp.nlisten;
	return 0;
}

int conf_copy(struct conf *dst, const struct conf *src)
{
	*dst = *src;
	dst->welcome = gb_strdup(src->welcome);
	dst->user = src->user ? gb_strdup(src->user) : NULL;
	for (size_t i = 0; i < src->nlisten; i++)
		dst->listen[i] = gb_strdup(src->listen[i]);
	int fail = !dst->welcome || (src->user && !dst->user);
	for (size_t i = 0; i < src->nlisten; i++)
		fail |= !dst->listen[i];
	if (fail) {
		conf_free(dst);
		return -ENOMEM;
	}
	return 0;
}

/* ----------------------------------------------------------- parsing */

struct parse {
	struct conf c;              /* what the file builds, over defaults */
	FILE *f;
	const char *name;
	int line;                   /* the line libinih is looking at */
	int bad_section;            /* inside an unknown section: skip keys */
	int first_line[NKEYS];      /* where each key was first given */
	int file_listen;            /* the file has given listen already */
	struct conf_errors *errs;
};

static void error_at(struct parse *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* The message is allocated to its length: the file name comes from the
 * command line and may be as long as a path can be. What follows it is
 * bounded (a line is at most 198 bytes, the list of keys shorter). */
static void error_at(struct parse *p, const char *fmt, ...)
{
	char where[32] = "", what[1024], *line, **msg;
	size_t len;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	if (p->line)
		snprintf(where, sizeof where, ":%d", p->line);
	len = strlen(p->name) + strlen(where) + 2 + strlen(what) + 1;
	if (!(line = gb_malloc(len)))
		return;
	snprintf(line, len, "%s%s: %s", p->name, where, what);
	msg = gb_realloc(p->errs->msg, (p->errs->n + 1) * sizeof *msg);
	if (!msg) {
		free(line);
		return;
	}
	p->errs->msg = msg;
	msg[p->errs->n++] = line;
}

static const char *skip_space(const char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	return s;
}

/* A section header line, checked here because libinih does not report
 * sections without keys and accepts any name. */
static void check_section(struct parse *p, const char *s)
{
	const char *end = strchr(s, ']');
	size_t n;

	p->bad_section = 1;
	if (!end) {
		error_at(p, "section header without ']'; expected [server], "
		         "[limits] or [log]");
		return;
	}
	n = (size_t)(end - s - 1);
	for (size_t i = 0; i < sizeof sections / sizeof sections[0]; i++)
		if (strlen(sections[i]) == n && !memcmp(sections[i], s + 1, n))
			p->bad_section = 0;
	if (p->bad_section)
		error_at(p, "unknown section [%.*s]; expected [server], [limits] "
		         "or [log]", (int)n, s + 1);
}

/* Whether s holds '=' or ':' before an inline comment (" ;"), which is
 * what libinih needs to see a key. */
static int has_delimiter(const char *s)
{
	for (const char *p = s; *p; p++) {
		if (*p == '=' || *p == ':')
			return 1;
		if (*p == ';' && p > s && (p[-1] == ' ' || p[-1] == '\t'))
			return 0;
	}
	return 0;
}

/* Reads a line like fgets (the newline kept, at most num - 1 bytes, then a
 * NUL) but returns how many bytes it read, 0 at end of file: a line with a
 * NUL byte in it would otherwise look shorter than it is, and the rest of
 * it would be read as a line of its own. */
static size_t read_line(FILE *f, char *str, int num)
{
	size_t n = 0;
	int ch;

	while (n < (size_t)num - 1 && (ch = getc(f)) != EOF) {
		str[n++] = (char)ch;
		if (ch == '\n')
			break;
	}
	str[n] = '\0';
	return n;
}

/* libinih's reader: one line per call, so p->line is always the line the
 * handler is about to see. Indentation is removed (libinih would take an
 * indented line for the continuation of the previous value), and lines
 * libinih would misread are reported here and replaced by a blank line. */
static char *reader(char *str, int num, void *stream)
{
	struct parse *p = stream;
	size_t len;

	if (!(len = read_line(p->f, str, num))) {
		if (ferror(p->f))
			error_at(p, "cannot read: %s", strerror(errno));
		return NULL;
	}
	p->line++;
	if (len == (size_t)num - 1 && str[len - 1] != '\n' && !feof(p->f)) {
		int ch;
		while ((ch = fgetc(p->f)) != EOF && ch != '\n')
			;
		error_at(p, "line longer than %d bytes", num - 2);
		memcpy(str, "\n", 2); /* str held a longer line */
		return str;
	}
	/* libinih would stop reading the line at the NUL and take what comes
	 * before it, so "level = debug<NUL>junk" would pass as "debug". */
	if (strlen(str) != len) {
		error_at(p, "NUL byte in the line; expected text");
		memcpy(str, "\n", 2); /* str held a longer line */
		return str;
	}
	const char *s = skip_space(str);
	memmove(str, s, strlen(s) + 1);
	if (*str == '[')
		check_section(p, str);
	else if (*str && *str != '\n' && *str != '\r' && *str != '#' &&
	         *str != ';' && !has_delimiter(str)) {
		error_at(p, "expected 'key = value', a [section] or a comment");
		memcpy(str, "\n", 2); /* str held a longer line */
	}
	return str;
}

static const struct key *find_key(const char *section, const char *name)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (!strcmp(keys[i].section, section) && !strcmp(keys[i].name, name))
			return &keys[i];
	return NULL;
}

static void unknown_key(struct parse *p, const char *section, const char *name)
{
	char names[256] = "";

	for (size_t i = 0; i < NKEYS; i++) {
		if (strcmp(keys[i].section, section) != 0)
			continue;
		if (names[0])
			strncat(names, ", ", sizeof names - strlen(names) - 1);
		strncat(names, keys[i].name, sizeof names - strlen(names) - 1);
	}
	error_at(p, "%s: unknown key in [%s]; expected one of: %s", name,
	         section, names);
}

static int handler(void *user, const char *section, const char *name,
                   const char *value)
{
	struct parse *p = user;
	const struct key *k;

	if (p->bad_section)
		return 1;
	if (!section[0]) {
		error_at(p, "%s: key outside any section; expected it under "
		         "[server], [limits] or [log]", name);
		return 1;
	}
	if (!(k = find_key(section, name))) {
		unknown_key(p, section, name);
		return 1;
	}
	int *first = &p->first_line[k - keys];
	if (*first && !k->repeatable) {
		error_at(p, "%s.%s: given twice (first on line %d); expected it "
		         "once", section, name, *first);
		return 1;
	}
	if (!*first)
		*first = p->line;
	if (k->set == set_listen && !p->file_listen) {
		listen_clear(&p->c); /* the file's list replaces the default */
		p->file_listen = 1;
	}
	if (k->set(&p->c, k, value) < 0)
		error_at(p, "%s.%s: bad value \"%s\"; expected %s", section, name,
		         value, k->expect);
	return 1;
}

int conf_load_stream(struct conf *c, FILE *f, const char *name,
                     struct conf_errors *errs)
{
	struct parse p = { .f = f, .name = name, .errs = errs };
	size_t before = errs->n;
	int rc;

	conf_defaults(&p.c);
	rc = ini_parse_stream(reader, &p, handler, &p);
	if (rc < 0)
		error_at(&p, "out of memory");
	else if (rc > 0 && errs->n == before) {
		p.line = rc; /* a syntax error only libinih noticed */
		error_at(&p, "syntax error; expected 'key = value', a [section] "
		         "or a comment");
	}
	/* rate_burst defaults to rate */
	if (!p.first_line[find_key("limits", "rate_burst") - keys])
		p.c.rate_burst = p.c.rate;
	/* error_at() adds to errs through p.errs, which cppcheck misses. */
	/* cppcheck-suppress knownConditionTrueFalse */
	if (errs->n > before) {
		conf_free(&p.c);
		return (int)(errs->n - before);
	}
	conf_free(c);
	*c = p.c;
	return 0;
}

int conf_load(struct conf *c, const char *path, struct conf_errors *errs)
{
	FILE *f = fopen(path, "r");
	int rc;

	if (!f) {
		struct parse p = { .name = path, .errs = errs };
		error_at(&p, "cannot open: %s", strerror(errno));
		return 1;
	}
	rc = conf_load_stream(c, f, path, errs);
	fclose(f);
	return rc;
}

void conf_errors_free(struct conf_errors *e)
{
	for (size_t i = 0; i < e->n; i++)
		free(e->msg[i]);
	free(e->msg);
	e->msg = NULL;
	e->n = 0;
}
