/*
 * check_conf.c - giambio.conf: the defaults, every key, the value syntax
 * (units, ranges), and every class of error, each with its exact message,
 * its line number, all errors of a file counted, and the conf left as it
 * was when a file has errors.
 *
 * conf_load_stream reads fmemopen() text named "t.conf"; conf_load reads
 * temporary files (and a missing one).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "../src/daemon/conf.h"
#include "../src/daemon/log.h"

#define NS 1LL
#define MS (1000000LL * NS)
#define S (1000LL * MS)
#define KIB ((size_t)1024)
#define MIB ((size_t)1024 * 1024)

/* ------------------------------------------------------------ helpers */

/* A parse of one text: its return value, the conf and the errors. */
struct res {
	int rc;
	struct conf c;
	struct conf_errors e;
};

/* Loads text[0..len) (as "t.conf") over the conf in r. */
static void load_bytes(struct res *r, const char *text, size_t len)
{
	size_t before = r->e.n;
	FILE *f;

	if (len)
		f = fmemopen((void *)text, len, "r");
	else
		f = tmpfile(); /* fmemopen may refuse a size of 0 */
	ck_assert_ptr_nonnull(f);
	r->rc = conf_load_stream(&r->c, f, "t.conf", &r->e);
	fclose(f);
	/* The count returned is the number of errors recorded. */
	ck_assert_uint_eq((size_t)r->rc, r->e.n - before);
}

/* Loads text (as "t.conf") over the conf in r. */
static void load_into(struct res *r, const char *text)
{
	load_bytes(r, text, strlen(text));
}

/* Loads text[0..len) over a fresh default conf. */
static void load_n(struct res *r, const char *text, size_t len)
{
	memset(r, 0, sizeof *r);
	conf_defaults(&r->c);
	load_bytes(r, text, len);
}

static void load(struct res *r, const char *text)
{
	load_n(r, text, strlen(text));
}

static void done(struct res *r)
{
	conf_free(&r->c);
	conf_errors_free(&r->e);
}

static void dump_errors(const struct res *r)
{
	for (size_t i = 0; i < r->e.n; i++)
		fprintf(stderr, "  error %zu: %s\n", i, r->e.msg[i]);
}

/* Loads text and asserts it has no error. */
static void load_ok(struct res *r, const char *text)
{
	load(r, text);
	if (r->rc != 0)
		dump_errors(r);
	ck_assert_msg(r->rc == 0, "unexpected errors (%d) for:\n%s", r->rc,
	              text);
}

/* Asserts that error i is exactly want. */
static void err_is(const struct res *r, size_t i, const char *want)
{
	ck_assert_msg(i < r->e.n, "only %zu errors, wanted #%zu: %s", r->e.n, i,
	              want);
	ck_assert_str_eq(r->e.msg[i], want);
}

/* Loads text and asserts exactly one error, exactly want. */
static void one_error(const char *text, const char *want)
{
	struct res r;

	load(&r, text);
	if (r.rc != 1)
		dump_errors(&r);
	ck_assert_msg(r.rc == 1, "%d errors for:\n%s", r.rc, text);
	err_is(&r, 0, want);
	done(&r);
}

/* A value of section.key that must be refused: exactly one error on line 2
 * naming the key, quoting the value and saying what was expected. */
static void bad_value(const char *section, const char *key, const char *value,
                      const char *expect)
{
	char text[512], want[512];

	snprintf(text, sizeof text, "[%s]\n%s = %s\n", section, key, value);
	snprintf(want, sizeof want,
	         "t.conf:2: %s.%s: bad value \"%s\"; expected %s", section, key,
	         value, expect);
	one_error(text, want);
}

static void check_defaults(const struct conf *c)
{
	ck_assert_uint_eq(c->nlisten, 1);
	ck_assert_str_eq(c->listen[0], "*:25000");
	ck_assert_int_eq(c->mode, MODE_ECHO);
	ck_assert_str_eq(c->welcome, "Welcome to the server pal!");
	ck_assert_uint_eq(c->max_clients, 10000);
	ck_assert_uint_eq(c->max_clients_per_ip, 64);
	ck_assert_uint_eq(c->max_line, 4096);
	ck_assert_int_eq(c->idle_timeout, 0);
	ck_assert_uint_eq(c->send_buffer, 256 * KIB);
	ck_assert_uint_eq(c->rate, 0);
	ck_assert_uint_eq(c->rate_burst, 0);
	ck_assert_int_eq(c->shutdown_timeout, 5 * S);
	ck_assert_int_eq(c->log_level, LOG_INFO);
}

/* The expectations the parser prints, one per key. */
#define EXP_LISTEN "host:port, [IPv6]:port or *:port with a numeric " \
	"address, at most 16 of them"
#define EXP_MODE "echo or chat"
#define EXP_WELCOME "a line of text of at most 160 bytes"
#define EXP_CLIENTS "a whole number from 0 (no limit) to 1000000"
#define EXP_MAX_LINE "a size from 2 to 1MiB (bytes, or with KiB or MiB)"
#define EXP_IDLE "a duration from 0 (none) to 720h (seconds, or with ms, " \
	"s, m or h)"
#define EXP_SEND "a size from 0 (no limit) to 1024MiB (bytes, or with KiB " \
	"or MiB)"
#define EXP_RATE "lines per second, from 0 (no limit) to 1000000"
#define EXP_BURST "a whole number of lines from 1 to 1000000"
#define EXP_SHUTDOWN "a duration from 0 (close at once) to 1h (seconds, " \
	"or with ms, s, m or h)"
#define EXP_LEVEL "error, warning, info or debug"
#define SECTIONS "[server], [limits] or [log]"

/* ---------------------------------------------------------- defaults */

START_TEST(test_defaults)
{
	struct conf c;

	conf_defaults(&c);
	check_defaults(&c);
	conf_free(&c);
}
END_TEST

/* An empty file, or one with only comments and empty sections, is the
 * defaults; rate_burst follows rate (0). */
START_TEST(test_empty_file_is_defaults)
{
	struct res r;

	load_ok(&r, "");
	check_defaults(&r.c);
	done(&r);

	load_ok(&r, "# nothing\n; nothing either\n\n[server]\n[limits]\n[log]\n");
	check_defaults(&r.c);
	done(&r);
}
END_TEST

/* ------------------------------------------------------------- keys */

START_TEST(test_every_key)
{
	struct res r;

	load_ok(&r,
	        "[server]\n"
	        "listen = 127.0.0.1:7000\n"
	        "mode = chat\n"
	        "welcome = Hello there, friend!\n"
	        "[limits]\n"
	        "max_clients = 123\n"
	        "max_clients_per_ip = 7\n"
	        "max_line = 512\n"
	        "idle_timeout = 30s\n"
	        "send_buffer = 64KiB\n"
	        "rate = 20\n"
	        "rate_burst = 50\n"
	        "shutdown_timeout = 500ms\n"
	        "[log]\n"
	        "level = debug\n");
	ck_assert_uint_eq(r.c.nlisten, 1);
	ck_assert_str_eq(r.c.listen[0], "127.0.0.1:7000");
	ck_assert_int_eq(r.c.mode, MODE_CHAT);
	ck_assert_str_eq(r.c.welcome, "Hello there, friend!");
	ck_assert_uint_eq(r.c.max_clients, 123);
	ck_assert_uint_eq(r.c.max_clients_per_ip, 7);
	ck_assert_uint_eq(r.c.max_line, 512);
	ck_assert_int_eq(r.c.idle_timeout, 30 * S);
	ck_assert_uint_eq(r.c.send_buffer, 64 * KIB);
	ck_assert_uint_eq(r.c.rate, 20);
	ck_assert_uint_eq(r.c.rate_burst, 50);
	ck_assert_int_eq(r.c.shutdown_timeout, 500 * MS);
	ck_assert_int_eq(r.c.log_level, LOG_DEBUG);
	done(&r);
}
END_TEST

START_TEST(test_mode_and_level_values)
{
	struct res r;
	static const struct { const char *name; int level; } levels[] = {
		{ "error", LOG_ERROR }, { "warning", LOG_WARNING },
		{ "info", LOG_INFO }, { "debug", LOG_DEBUG },
	};

	load_ok(&r, "[server]\nmode = echo\n");
	ck_assert_int_eq(r.c.mode, MODE_ECHO);
	done(&r);
	load_ok(&r, "[server]\nmode = chat\n");
	ck_assert_int_eq(r.c.mode, MODE_CHAT);
	done(&r);
	for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++) {
		char text[64];
		snprintf(text, sizeof text, "[log]\nlevel = %s\n", levels[i].name);
		load_ok(&r, text);
		ck_assert_int_eq(r.c.log_level, levels[i].level);
		done(&r);
	}
}
END_TEST

/* Spaces around '=' and around the value do not matter; a welcome keeps
 * its inner spaces. */
START_TEST(test_spacing)
{
	struct res r;

	load_ok(&r, "[server]\nwelcome=Hi  there   pal\nmode   =    chat   \n"
	        "[limits]\nmax_clients\t=\t9\n");
	ck_assert_str_eq(r.c.welcome, "Hi  there   pal");
	ck_assert_int_eq(r.c.mode, MODE_CHAT);
	ck_assert_uint_eq(r.c.max_clients, 9);
	done(&r);
}
END_TEST

/* The same section may appear more than once. */
START_TEST(test_section_reopened)
{
	struct res r;

	load_ok(&r, "[limits]\nmax_clients = 1\n[server]\nmode = chat\n"
	        "[limits]\nmax_line = 100\n");
	ck_assert_uint_eq(r.c.max_clients, 1);
	ck_assert_uint_eq(r.c.max_line, 100);
	ck_assert_int_eq(r.c.mode, MODE_CHAT);
	done(&r);
}
END_TEST

START_TEST(test_comments)
{
	struct res r;

	load_ok(&r,
	        "# a comment\n"
	        "; another comment\n"
	        "[server]\n"
	        "# mode = chat\n"
	        "  ; mode = chat\n"
	        "welcome = from the file\n"
	        "#[limits]\n"
	        "[limits]\n"
	        ";max_clients = 5\n"
	        "#max_clients=5\n"
	        "max_clients_per_ip = 3\n");
	ck_assert_int_eq(r.c.mode, MODE_ECHO);
	ck_assert_str_eq(r.c.welcome, "from the file");
	ck_assert_uint_eq(r.c.max_clients, 10000);
	ck_assert_uint_eq(r.c.max_clients_per_ip, 3);
	done(&r);
}
END_TEST

/* ------------------------------------------------------------ listen */

/* listen is repeatable; the file's list replaces the default *:25000. */
START_TEST(test_listen_list)
{
	struct res r;

	load_ok(&r, "[server]\nlisten = 127.0.0.1:0\n");
	ck_assert_uint_eq(r.c.nlisten, 1);
	ck_assert_str_eq(r.c.listen[0], "127.0.0.1:0");
	done(&r);

	load_ok(&r, "[server]\n"
	        "listen = 127.0.0.1:7000\n"
	        "listen = [::1]:7001\n"
	        "mode = chat\n"
	        "listen = *:7002\n");
	ck_assert_uint_eq(r.c.nlisten, 3);
	ck_assert_str_eq(r.c.listen[0], "127.0.0.1:7000");
	ck_assert_str_eq(r.c.listen[1], "[::1]:7001");
	ck_assert_str_eq(r.c.listen[2], "*:7002");
	done(&r);

	/* Given in two [server] sections: still one list. */
	load_ok(&r, "[server]\nlisten = 127.0.0.1:1\n[log]\nlevel = info\n"
	        "[server]\nlisten = 127.0.0.1:2\n");
	ck_assert_uint_eq(r.c.nlisten, 2);
	ck_assert_str_eq(r.c.listen[0], "127.0.0.1:1");
	ck_assert_str_eq(r.c.listen[1], "127.0.0.1:2");
	done(&r);
}
END_TEST

START_TEST(test_listen_max)
{
	char text[1024] = "[server]\n";
	struct res r;

	for (int i = 0; i < CONF_LISTEN_MAX; i++) {
		char line[64];
		snprintf(line, sizeof line, "listen = 127.0.0.1:%d\n", 7000 + i);
		strcat(text, line);
	}
	load_ok(&r, text);
	ck_assert_uint_eq(r.c.nlisten, CONF_LISTEN_MAX);
	ck_assert_str_eq(r.c.listen[15], "127.0.0.1:7015");
	done(&r);

	strcat(text, "listen = 127.0.0.1:8000\n");
	load(&r, text);
	ck_assert_int_eq(r.rc, 1);
	err_is(&r, 0, "t.conf:18: server.listen: bad value \"127.0.0.1:8000\"; "
	       "expected " EXP_LISTEN);
	done(&r);
}
END_TEST

START_TEST(test_listen_bad)
{
	bad_value("server", "listen", "localhost:80", EXP_LISTEN);
	bad_value("server", "listen", "127.0.0.1", EXP_LISTEN);
	bad_value("server", "listen", "127.0.0.1:65536", EXP_LISTEN);
	bad_value("server", "listen", "::1:80", EXP_LISTEN);
	bad_value("server", "listen", "*:", EXP_LISTEN);
	bad_value("server", "listen", "", EXP_LISTEN);
}
END_TEST

/* ---------------------------------------------------------------- units */

START_TEST(test_durations)
{
	static const struct { const char *text; int64_t ns; } ok[] = {
		{ "500ms", 500 * MS }, { "30s", 30 * S }, { "5m", 300 * S },
		{ "1h", 3600 * S }, { "45", 45 * S }, { "0", 0 }, { "0s", 0 },
		{ "1ms", 1 * MS }, { "90m", 5400 * S }, { "720h", 720 * 3600 * S },
	};
	struct res r;

	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		char text[128];
		snprintf(text, sizeof text, "[limits]\nidle_timeout = %s\n",
		         ok[i].text);
		load_ok(&r, text);
		ck_assert_msg(r.c.idle_timeout == ok[i].ns, "%s -> %lld, want %lld",
		              ok[i].text, (long long)r.c.idle_timeout,
		              (long long)ok[i].ns);
		done(&r);
	}
	load_ok(&r, "[limits]\nshutdown_timeout = 1500ms\n");
	ck_assert_int_eq(r.c.shutdown_timeout, 1500 * MS);
	done(&r);
	load_ok(&r, "[limits]\nshutdown_timeout = 0\n");
	ck_assert_int_eq(r.c.shutdown_timeout, 0);
	done(&r);
}
END_TEST

START_TEST(test_sizes)
{
	static const struct { const char *text; size_t bytes; } ok[] = {
		{ "64KiB", 64 * KIB }, { "1MiB", MIB }, { "1000", 1000 },
		{ "0", 0 }, { "1KiB", KIB }, { "1024MiB", 1024 * MIB },
	};
	struct res r;

	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		char text[128];
		snprintf(text, sizeof text, "[limits]\nsend_buffer = %s\n",
		         ok[i].text);
		load_ok(&r, text);
		ck_assert_msg(r.c.send_buffer == ok[i].bytes, "%s -> %zu, want %zu",
		              ok[i].text, r.c.send_buffer, ok[i].bytes);
		done(&r);
	}
	load_ok(&r, "[limits]\nmax_line = 2KiB\n");
	ck_assert_uint_eq(r.c.max_line, 2048);
	done(&r);
}
END_TEST

START_TEST(test_bad_units)
{
	static const char *const durations[] = {
		"5 s", "5sec", "-1", "1.5s", "5S", "5M", "5H", "5MS", "s", "ms",
		"5d", "5us", "+5", "0x10", "5ss", "5s5", "1h30m",
	};
	static const char *const sizes[] = {
		"1KB", "1kib", "1 KiB", "-1", "1.5KiB", "1K", "1M", "1MB", "KiB",
		"1GiB", "1B", "+1", "0x10",
	};
	char text[128], want[256];

	for (size_t i = 0; i < sizeof durations / sizeof durations[0]; i++) {
		bad_value("limits", "idle_timeout", durations[i], EXP_IDLE);
		bad_value("limits", "shutdown_timeout", durations[i], EXP_SHUTDOWN);
	}
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		bad_value("limits", "send_buffer", sizes[i], EXP_SEND);
		bad_value("limits", "max_line", sizes[i], EXP_MAX_LINE);
	}
	/* An empty value. */
	snprintf(text, sizeof text, "[limits]\nidle_timeout =\n");
	snprintf(want, sizeof want, "t.conf:2: limits.idle_timeout: bad value "
	         "\"\"; expected %s", EXP_IDLE);
	one_error(text, want);
	snprintf(text, sizeof text, "[limits]\nsend_buffer = \n");
	snprintf(want, sizeof want, "t.conf:2: limits.send_buffer: bad value "
	         "\"\"; expected %s", EXP_SEND);
	one_error(text, want);
	/* Whole numbers take no unit and no sign. */
	bad_value("limits", "max_clients", "10s", EXP_CLIENTS);
	bad_value("limits", "max_clients", "1KiB", EXP_CLIENTS);
	bad_value("limits", "max_clients", "-1", EXP_CLIENTS);
	bad_value("limits", "max_clients", "", EXP_CLIENTS);
	bad_value("limits", "max_clients", "1 0", EXP_CLIENTS);
	bad_value("limits", "rate", "5/s", EXP_RATE);
	bad_value("limits", "rate", "1.5", EXP_RATE);
}
END_TEST

/* The value parsers shared with the command line. */
START_TEST(test_value_parsers)
{
	int64_t ns = 42;
	size_t sz = 42;
	enum mode m = MODE_ECHO;

	ck_assert_int_eq(conf_parse_duration("500ms", &ns), 0);
	ck_assert_int_eq(ns, 500 * MS);
	ck_assert_int_eq(conf_parse_duration("7", &ns), 0);
	ck_assert_int_eq(ns, 7 * S);
	ck_assert_int_eq(conf_parse_duration("2h", &ns), 0);
	ck_assert_int_eq(ns, 7200 * S);
	ns = 42;
	ck_assert_int_eq(conf_parse_duration("5 s", &ns), -EINVAL);
	ck_assert_int_eq(conf_parse_duration("", &ns), -EINVAL);
	ck_assert_int_eq(conf_parse_duration("-1", &ns), -EINVAL);
	/* Overflows are refused, not wrapped. */
	ck_assert_int_eq(conf_parse_duration("99999999999999999999", &ns),
	                 -EINVAL);
	ck_assert_int_eq(conf_parse_duration("9223372036854775807s", &ns),
	                 -EINVAL);
	ck_assert_int_eq(conf_parse_duration("18446744073709551615ms", &ns),
	                 -EINVAL);
	ck_assert_int_eq(conf_parse_duration("9300000000", &ns), -EINVAL);
	/* 18446744074 s is 2^64 ns + 290448384: must not wrap to 0.29 s. */
	ck_assert_int_eq(conf_parse_duration("18446744074", &ns), -EINVAL);
	ck_assert_int_eq(conf_parse_duration("5124096h", &ns), -EINVAL);
	ck_assert_int_eq(ns, 42); /* untouched on error */

	ck_assert_int_eq(conf_parse_size("64KiB", &sz), 0);
	ck_assert_uint_eq(sz, 64 * KIB);
	ck_assert_int_eq(conf_parse_size("3MiB", &sz), 0);
	ck_assert_uint_eq(sz, 3 * MIB);
	ck_assert_int_eq(conf_parse_size("12345", &sz), 0);
	ck_assert_uint_eq(sz, 12345);
	sz = 42;
	ck_assert_int_eq(conf_parse_size("1KB", &sz), -EINVAL);
	ck_assert_int_eq(conf_parse_size("", &sz), -EINVAL);
	ck_assert_int_eq(conf_parse_size("18446744073709551615MiB", &sz),
	                 -EINVAL);
	/* 2^44 MiB is 2^64 bytes: must not wrap to 0. */
	ck_assert_int_eq(conf_parse_size("17592186044416MiB", &sz), -EINVAL);
	ck_assert_int_eq(conf_parse_size("18014398509481984KiB", &sz), -EINVAL);
	ck_assert_uint_eq(sz, 42);

	ck_assert_int_eq(conf_parse_mode("chat", &m), 0);
	ck_assert_int_eq(m, MODE_CHAT);
	ck_assert_int_eq(conf_parse_mode("echo", &m), 0);
	ck_assert_int_eq(m, MODE_ECHO);
	ck_assert_int_eq(conf_parse_mode("Chat", &m), -EINVAL);
	ck_assert_int_eq(conf_parse_mode("", &m), -EINVAL);
	ck_assert_int_eq(m, MODE_ECHO);
	ck_assert_str_eq(conf_mode_name(MODE_ECHO), "echo");
	ck_assert_str_eq(conf_mode_name(MODE_CHAT), "chat");
}
END_TEST

/* ------------------------------------------------------------- ranges */

/* Each key's bounds: the bound itself is accepted, one past is refused
 * with a message naming the key and its range. */
START_TEST(test_ranges_accepted)
{
	struct res r;

	load_ok(&r, "[limits]\nmax_clients = 1000000\nmax_clients_per_ip = "
	        "1000000\nmax_line = 1MiB\nidle_timeout = 720h\n"
	        "send_buffer = 1024MiB\nrate = 1000000\nrate_burst = 1000000\n"
	        "shutdown_timeout = 1h\n");
	ck_assert_uint_eq(r.c.max_clients, 1000000);
	ck_assert_uint_eq(r.c.max_clients_per_ip, 1000000);
	ck_assert_uint_eq(r.c.max_line, MIB);
	ck_assert_int_eq(r.c.idle_timeout, 720 * 3600 * S);
	ck_assert_uint_eq(r.c.send_buffer, 1024 * MIB);
	ck_assert_uint_eq(r.c.rate, 1000000);
	ck_assert_uint_eq(r.c.rate_burst, 1000000);
	ck_assert_int_eq(r.c.shutdown_timeout, 3600 * S);
	done(&r);

	load_ok(&r, "[limits]\nmax_clients = 0\nmax_clients_per_ip = 0\n"
	        "max_line = 2\nidle_timeout = 0\nsend_buffer = 0\nrate = 0\n"
	        "rate_burst = 1\nshutdown_timeout = 0\n");
	ck_assert_uint_eq(r.c.max_clients, 0);
	ck_assert_uint_eq(r.c.max_clients_per_ip, 0);
	ck_assert_uint_eq(r.c.max_line, 2);
	ck_assert_int_eq(r.c.idle_timeout, 0);
	ck_assert_uint_eq(r.c.send_buffer, 0);
	ck_assert_uint_eq(r.c.rate, 0);
	ck_assert_uint_eq(r.c.rate_burst, 1);
	ck_assert_int_eq(r.c.shutdown_timeout, 0);
	done(&r);
}
END_TEST

START_TEST(test_ranges_refused)
{
	char welcome[200];

	bad_value("limits", "max_clients", "1000001", EXP_CLIENTS);
	bad_value("limits", "max_clients", "99999999999999999999999", EXP_CLIENTS);
	bad_value("limits", "max_clients", "4294967296", EXP_CLIENTS);
	bad_value("limits", "max_clients_per_ip", "1000001", EXP_CLIENTS);
	bad_value("limits", "max_line", "1", EXP_MAX_LINE);
	bad_value("limits", "max_line", "0", EXP_MAX_LINE);
	bad_value("limits", "max_line", "1048577", EXP_MAX_LINE);
	bad_value("limits", "max_line", "2MiB", EXP_MAX_LINE);
	bad_value("limits", "idle_timeout", "721h", EXP_IDLE);
	bad_value("limits", "idle_timeout", "2592001", EXP_IDLE);
	bad_value("limits", "idle_timeout", "2592000001ms", EXP_IDLE);
	bad_value("limits", "send_buffer", "1025MiB", EXP_SEND);
	bad_value("limits", "send_buffer", "1073741825", EXP_SEND);
	bad_value("limits", "rate", "1000001", EXP_RATE);
	bad_value("limits", "rate_burst", "0", EXP_BURST);
	bad_value("limits", "rate_burst", "1000001", EXP_BURST);
	bad_value("limits", "shutdown_timeout", "3601", EXP_SHUTDOWN);
	bad_value("limits", "shutdown_timeout", "3600001ms", EXP_SHUTDOWN);
	bad_value("limits", "shutdown_timeout", "2h", EXP_SHUTDOWN);
	bad_value("limits", "shutdown_timeout", "61m", EXP_SHUTDOWN);
	bad_value("server", "mode", "ECHO", EXP_MODE);
	bad_value("server", "mode", "chatty", EXP_MODE);
	bad_value("server", "mode", "", EXP_MODE);
	bad_value("log", "level", "verbose", EXP_LEVEL);
	bad_value("log", "level", "warn", EXP_LEVEL);
	bad_value("log", "level", "", EXP_LEVEL);

	/* welcome: 160 bytes are fine, 161 are not. */
	struct res r;
	char text[256];
	memset(welcome, 'w', 160);
	welcome[160] = '\0';
	snprintf(text, sizeof text, "[server]\nwelcome = %s\n", welcome);
	load_ok(&r, text);
	ck_assert_str_eq(r.c.welcome, welcome);
	done(&r);
	welcome[160] = 'w';
	welcome[161] = '\0';
	bad_value("server", "welcome", welcome, EXP_WELCOME);
}
END_TEST

/* rate_burst is rate unless given, in any order. */
START_TEST(test_rate_burst_default)
{
	struct res r;

	load_ok(&r, "[limits]\nrate = 20\n");
	ck_assert_uint_eq(r.c.rate, 20);
	ck_assert_uint_eq(r.c.rate_burst, 20);
	done(&r);
	load_ok(&r, "[limits]\nrate = 20\nrate_burst = 50\n");
	ck_assert_uint_eq(r.c.rate_burst, 50);
	done(&r);
	load_ok(&r, "[limits]\nrate_burst = 3\nrate = 20\n");
	ck_assert_uint_eq(r.c.rate, 20);
	ck_assert_uint_eq(r.c.rate_burst, 3);
	done(&r);
	load_ok(&r, "[limits]\nrate_burst = 50\n");
	ck_assert_uint_eq(r.c.rate, 0);
	ck_assert_uint_eq(r.c.rate_burst, 50);
	done(&r);
	/* The burst of an earlier conf does not leak into a new load. */
	memset(&r, 0, sizeof r);
	conf_defaults(&r.c);
	load_into(&r, "[limits]\nrate = 4\nrate_burst = 9\n");
	ck_assert_int_eq(r.rc, 0);
	load_into(&r, "[limits]\nrate = 6\n");
	ck_assert_int_eq(r.rc, 0);
	ck_assert_uint_eq(r.c.rate, 6);
	ck_assert_uint_eq(r.c.rate_burst, 6);
	done(&r);
}
END_TEST

/* ------------------------------------------------------------- errors */

START_TEST(test_key_twice)
{
	one_error("[server]\nmode = chat\n\nmode = echo\n",
	          "t.conf:4: server.mode: given twice (first on line 2); "
	          "expected it once");
	one_error("[limits]\nmax_line = 100\n[log]\nlevel = info\n[limits]\n"
	          "max_line = 200\n",
	          "t.conf:6: limits.max_line: given twice (first on line 2); "
	          "expected it once");
	/* Three times: two errors, both naming the first line. */
	struct res r;
	load(&r, "[log]\nlevel = info\nlevel = debug\n# x\nlevel = error\n");
	ck_assert_int_eq(r.rc, 2);
	err_is(&r, 0, "t.conf:3: log.level: given twice (first on line 2); "
	       "expected it once");
	err_is(&r, 1, "t.conf:5: log.level: given twice (first on line 2); "
	       "expected it once");
	done(&r);
	/* A first occurrence with a bad value still counts as given. */
	load(&r, "[limits]\nrate = x\nrate = 5\n");
	ck_assert_int_eq(r.rc, 2);
	err_is(&r, 0, "t.conf:2: limits.rate: bad value \"x\"; expected "
	       EXP_RATE);
	err_is(&r, 1, "t.conf:3: limits.rate: given twice (first on line 2); "
	       "expected it once");
	done(&r);
}
END_TEST

START_TEST(test_unknown_section)
{
	one_error("[server]\nmode = chat\n[foo]\nbar = 1\nbaz = 2\n",
	          "t.conf:3: unknown section [foo]; expected " SECTIONS);
	/* An empty section name, and one without keys. */
	one_error("[]\n", "t.conf:1: unknown section []; expected " SECTIONS);
	one_error("# c\n[nokeys]\n",
	          "t.conf:2: unknown section [nokeys]; expected " SECTIONS);
	/* Names are lower-case. */
	one_error("[Server]\nmode = chat\n",
	          "t.conf:1: unknown section [Server]; expected " SECTIONS);
	one_error("[LIMITS]\n", "t.conf:1: unknown section [LIMITS]; expected "
	          SECTIONS);
	one_error("[server]\n[server ]\n", "t.conf:2: unknown section "
	          "[server ]; expected " SECTIONS);
	one_error("[limits]\nmax_line = 100\n[server\nmode = chat\n",
	          "t.conf:3: section header without ']'; expected " SECTIONS);
}
END_TEST

START_TEST(test_unknown_key)
{
	one_error("[server]\nport = 25000\n",
	          "t.conf:2: port: unknown key in [server]; expected one of: "
	          "listen, mode, welcome, user");
	one_error("[limits]\n\nmaxclients = 5\n",
	          "t.conf:3: maxclients: unknown key in [limits]; expected one "
	          "of: max_clients, max_clients_per_ip, max_line, idle_timeout, "
	          "send_buffer, rate, rate_burst, shutdown_timeout");
	one_error("[log]\nfile = /tmp/x\n",
	          "t.conf:2: file: unknown key in [log]; expected one of: level");
	/* A key of another section. */
	one_error("[log]\nmode = chat\n",
	          "t.conf:2: mode: unknown key in [log]; expected one of: level");
	/* Keys are lower-case. */
	one_error("[server]\nMode = chat\n",
	          "t.conf:2: Mode: unknown key in [server]; expected one of: "
	          "listen, mode, welcome, user");
	one_error("[log]\nLEVEL = info\n",
	          "t.conf:2: LEVEL: unknown key in [log]; expected one of: level");
}
END_TEST

START_TEST(test_key_outside_section)
{
	one_error("mode = chat\n",
	          "t.conf:1: mode: key outside any section; expected it under "
	          SECTIONS);
	one_error("# c\n\nmax_clients = 5\n[limits]\nmax_clients = 6\n",
	          "t.conf:3: max_clients: key outside any section; expected it "
	          "under " SECTIONS);
}
END_TEST

START_TEST(test_not_key_value)
{
	one_error("[server]\nmode chat\n",
	          "t.conf:2: expected 'key = value', a [section] or a comment");
	one_error("[server]\nmode = chat\njust words\n",
	          "t.conf:3: expected 'key = value', a [section] or a comment");
	one_error("garbage\n",
	          "t.conf:1: expected 'key = value', a [section] or a comment");
}
END_TEST

/* libinih's buffer holds 198 bytes and the newline: a longer line is an
 * error, and the lines after it keep their numbers. */
START_TEST(test_long_line)
{
	char text[4096], value[200];
	struct res r;

	/* "welcome" + 29 spaces + "= " + 160 bytes = 198 bytes: fine. */
	memset(value, 'v', 160);
	value[160] = '\0';
	snprintf(text, sizeof text, "[server]\nwelcome%29s= %s\n", "", value);
	ck_assert_uint_eq(strlen(text), 9 + 198 + 1);
	load_ok(&r, text);
	ck_assert_str_eq(r.c.welcome, value);
	done(&r);

	/* One more space: 199 bytes, an error; the next line is line 3. */
	snprintf(text, sizeof text, "[server]\nwelcome%30s= %s\nmode = x\n", "",
	         value);
	load(&r, text);
	ck_assert_int_eq(r.rc, 2);
	err_is(&r, 0, "t.conf:2: line longer than 198 bytes");
	err_is(&r, 1, "t.conf:3: server.mode: bad value \"x\"; expected "
	       EXP_MODE);
	ck_assert_str_eq(r.c.welcome, "Welcome to the server pal!");
	done(&r);

	/* A comment line of 1000 bytes, then a bad value on line 4. */
	strcpy(text, "[limits]\nmax_line = 100\n#");
	memset(text + strlen(text), 'c', 999);
	text[25 + 999] = '\0';
	strcat(text, "\nrate = x\n");
	load(&r, text);
	ck_assert_int_eq(r.rc, 2);
	err_is(&r, 0, "t.conf:3: line longer than 198 bytes");
	err_is(&r, 1, "t.conf:4: limits.rate: bad value \"x\"; expected "
	       EXP_RATE);
	done(&r);

	/* An over-long last line without its newline. */
	strcpy(text, "[limits]\n#");
	memset(text + 10, 'c', 300);
	text[310] = '\0';
	load(&r, text);
	ck_assert_int_eq(r.rc, 1);
	err_is(&r, 0, "t.conf:2: line longer than 198 bytes");
	done(&r);

	/* What did not fit is not parsed: no second error for the value in
	 * the first 198 bytes of an over-long line. */
	strcpy(text, "[server]\nmode = bogus");
	memset(text + 21, ' ', 250);
	strcpy(text + 21 + 250, "x\n");
	load(&r, text);
	ck_assert_int_eq(r.rc, 1);
	err_is(&r, 0, "t.conf:2: line longer than 198 bytes");
	done(&r);

	/* A 198-byte last line without a newline is fine. */
	snprintf(text, sizeof text, "[server]\nwelcome%29s= %s", "", value);
	load_ok(&r, text);
	ck_assert_str_eq(r.c.welcome, value);
	done(&r);
}
END_TEST

/* A NUL byte makes its line an error, with the right line number:
 * libinih would take the text before it alone (so "debug<NUL>junk" would
 * pass as "debug"), and a NUL in an over-long line used to hide its
 * length, so that its rest was read as a line of its own and every later
 * line number was one too high. */
START_TEST(test_nul_byte)
{
	static const char nul_value[] = "[log]\nlevel = debug\0junk\n";
	char text[512];
	size_t n;
	struct res r;

	load_n(&r, nul_value, sizeof nul_value - 1);
	ck_assert_int_eq(r.rc, 1);
	err_is(&r, 0, "t.conf:2: NUL byte in the line; expected text");
	ck_assert_int_eq(r.c.log_level, LOG_INFO);
	done(&r);

	/* Line 2: a comment of 211 bytes with a NUL at byte 198. */
	n = (size_t)sprintf(text, "[log]\n# ");
	memset(text + n, 'c', 195);
	n += 195;
	text[n++] = '\0';
	n += (size_t)sprintf(text + n, "level = loud\nlevel = bad\n");
	load_n(&r, text, n);
	ck_assert_int_eq(r.rc, 2);
	err_is(&r, 0, "t.conf:2: line longer than 198 bytes");
	err_is(&r, 1, "t.conf:3: log.level: bad value \"bad\"; expected "
	       EXP_LEVEL);
	done(&r);
}
END_TEST

/* A bad value carries its own line number, wherever it is. */
START_TEST(test_line_numbers)
{
	struct res r;

	load(&r, "# 1\n"
	     "\n"
	     "[server]\n"
	     "mode = chat\n"
	     "   \n"
	     "; 6\n"
	     "[limits]\n"
	     "max_line = 3\n"
	     "\n"
	     "\n"
	     "idle_timeout = 5 s\n");
	ck_assert_int_eq(r.rc, 1);
	err_is(&r, 0, "t.conf:11: limits.idle_timeout: bad value \"5 s\"; "
	       "expected " EXP_IDLE);
	done(&r);

	/* CRLF line ends count as one line each. */
	load(&r, "[server]\r\nmode = chat\r\n\r\nwelcome = hi\r\n[log]\r\n"
	     "level = loud\r\n");
	ck_assert_int_eq(r.rc, 1);
	err_is(&r, 0, "t.conf:6: log.level: bad value \"loud\"; expected "
	       EXP_LEVEL);
	done(&r);
}
END_TEST

/* Every error of a file is reported, in file order, each with its line. */
START_TEST(test_all_errors_reported)
{
	struct res r;

	load(&r,
	     "stray = 1\n"                      /* 1: outside a section */
	     "[server]\n"                       /* 2 */
	     "mode = loud\n"                    /* 3: bad value */
	     "listen = nowhere\n"               /* 4: bad value */
	     "welcome = ok\n"                   /* 5 */
	     "welcome = again\n"                /* 6: twice */
	     "[limits]\n"                       /* 7 */
	     "max_clients = 2000000\n"          /* 8: out of range */
	     "what = 1\n"                       /* 9: unknown key */
	     "no equals sign here\n"            /* 10: not key = value */
	     "idle_timeout = 5sec\n"            /* 11: bad unit */
	     "[bogus]\n"                        /* 12: unknown section */
	     "ignored = 1\n"                    /* 13: skipped */
	     "[log]\n"                          /* 14 */
	     "level = INFO\n"                   /* 15: bad value */
	     "[Log]\n");                        /* 16: unknown section */
	ck_assert_int_eq(r.rc, 11);
	err_is(&r, 0, "t.conf:1: stray: key outside any section; expected it "
	       "under " SECTIONS);
	err_is(&r, 1, "t.conf:3: server.mode: bad value \"loud\"; expected "
	       EXP_MODE);
	err_is(&r, 2, "t.conf:4: server.listen: bad value \"nowhere\"; expected "
	       EXP_LISTEN);
	err_is(&r, 3, "t.conf:6: server.welcome: given twice (first on line 5); "
	       "expected it once");
	err_is(&r, 4, "t.conf:8: limits.max_clients: bad value \"2000000\"; "
	       "expected " EXP_CLIENTS);
	err_is(&r, 5, "t.conf:9: what: unknown key in [limits]; expected one "
	       "of: max_clients, max_clients_per_ip, max_line, idle_timeout, "
	       "send_buffer, rate, rate_burst, shutdown_timeout");
	err_is(&r, 6, "t.conf:10: expected 'key = value', a [section] or a "
	       "comment");
	err_is(&r, 7, "t.conf:11: limits.idle_timeout: bad value \"5sec\"; "
	       "expected " EXP_IDLE);
	err_is(&r, 8, "t.conf:12: unknown section [bogus]; expected " SECTIONS);
	err_is(&r, 9, "t.conf:15: log.level: bad value \"INFO\"; expected "
	       EXP_LEVEL);
	err_is(&r, 10, "t.conf:16: unknown section [Log]; expected " SECTIONS);
	ck_assert_uint_eq(r.e.n, 11);
	check_defaults(&r.c);
	done(&r);
}
END_TEST

/* A line libinih itself rejects (here: '=' after an inline comment) is
 * counted with the other errors of the file, not only when it is alone. */
START_TEST(test_inih_error_with_others)
{
	struct res r;

	load(&r, "[server]\nmode ;= chat\n");
	ck_assert_int_eq(r.rc, 1);
	ck_assert_msg(!strncmp(r.e.msg[0], "t.conf:2: ", 10) &&
	              strstr(r.e.msg[0], "expected 'key = value', a [section] "
	                     "or a comment"), "%s", r.e.msg[0]);
	done(&r);

	load(&r, "[server]\nmode ;= chat\n[log]\nlevel = loud\n");
	if (r.rc != 2)
		dump_errors(&r);
	int rc = r.rc;
	int first_ok = r.e.n > 0 && !strncmp(r.e.msg[0], "t.conf:2: ", 10);
	int second_ok = r.e.n > 1 && !strcmp(r.e.msg[1], "t.conf:4: log.level: "
	                "bad value \"loud\"; expected " EXP_LEVEL);
	done(&r); /* before asserting: no leak when it fails */
	ck_assert_msg(rc == 2, "%d errors, want 2 (line 2 and line 4)", rc);
	ck_assert(first_ok);
	ck_assert(second_ok);
}
END_TEST

/* Indented lines are read as what they are (the reader already accepts an
 * indented [section] and comment): not as a continuation of the previous
 * key, which would blame that key for a line that does not name it. */
START_TEST(test_indented_lines)
{
	struct res r;

	load(&r, "[server]\nwelcome = hi\n  mode = chat\n");
	if (r.rc)
		dump_errors(&r);
	int rc = r.rc, mode = r.c.mode;
	int welcome_ok = !strcmp(r.c.welcome, "hi");
	done(&r); /* before asserting: no leak when it fails */
	ck_assert_int_eq(rc, 0);
	ck_assert(welcome_ok);
	ck_assert_int_eq(mode, MODE_CHAT);

	load(&r, "[server]\nmode = chat\n  [limits]\n  max_clients = 5\n");
	if (r.rc)
		dump_errors(&r);
	rc = r.rc;
	mode = r.c.mode;
	unsigned max_clients = r.c.max_clients;
	done(&r);
	ck_assert_int_eq(rc, 0);
	ck_assert_int_eq(mode, MODE_CHAT);
	ck_assert_uint_eq(max_clients, 5);
}
END_TEST

/* Every message starts with "NAME:LINE: ", whatever the name. */
START_TEST(test_error_prefix_name)
{
	const char *text = "[server]\nmode = x\n";
	struct conf c;
	struct conf_errors e = { 0 };
	FILE *f = fmemopen((void *)text, strlen(text), "r");

	ck_assert_ptr_nonnull(f);
	conf_defaults(&c);
	ck_assert_int_eq(conf_load_stream(&c, f, "/etc/giambio/giambio.conf",
	                                  &e), 1);
	fclose(f);
	ck_assert_uint_eq(e.n, 1);
	ck_assert_str_eq(e.msg[0], "/etc/giambio/giambio.conf:2: server.mode: "
	                 "bad value \"x\"; expected " EXP_MODE);
	conf_errors_free(&e);
	ck_assert_uint_eq(e.n, 0);
	ck_assert_ptr_null(e.msg);
	conf_free(&c);
}
END_TEST

/* Errors are appended to those already in errs; the count returned is
 * this file's. */
START_TEST(test_errors_accumulate)
{
	struct res r;

	load(&r, "[server]\nmode = x\n");
	ck_assert_int_eq(r.rc, 1);
	const char *text = "[log]\nlevel = y\nlevel = z\n";
	FILE *f = fmemopen((void *)text, strlen(text), "r");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(conf_load_stream(&r.c, f, "u.conf", &r.e), 2);
	fclose(f);
	ck_assert_uint_eq(r.e.n, 3);
	err_is(&r, 0, "t.conf:2: server.mode: bad value \"x\"; expected "
	       EXP_MODE);
	err_is(&r, 1, "u.conf:2: log.level: bad value \"y\"; expected "
	       EXP_LEVEL);
	err_is(&r, 2, "u.conf:3: log.level: given twice (first on line 2); "
	       "expected it once");
	done(&r);
}
END_TEST

/* With errors, the conf passed in is left exactly as it was, even the
 * keys the file set correctly. */
START_TEST(test_unchanged_on_error)
{
	struct res r;

	load_ok(&r, "[server]\nlisten = 127.0.0.1:1\nlisten = 127.0.0.1:2\n"
	        "mode = chat\nwelcome = before\n[limits]\nmax_clients = 7\n"
	        "rate = 3\n[log]\nlevel = error\n");
	char *l0 = r.c.listen[0], *l1 = r.c.listen[1], *w = r.c.welcome;

	load_into(&r, "[server]\nlisten = 127.0.0.1:9\nmode = echo\n"
	          "welcome = after\n[limits]\nmax_clients = 8\nmax_line = 1\n"
	          "rate = 10\n[log]\nlevel = debug\n");
	ck_assert_int_eq(r.rc, 1);
	err_is(&r, 0, "t.conf:7: limits.max_line: bad value \"1\"; expected "
	       EXP_MAX_LINE);
	ck_assert_uint_eq(r.c.nlisten, 2);
	ck_assert_ptr_eq(r.c.listen[0], l0);
	ck_assert_ptr_eq(r.c.listen[1], l1);
	ck_assert_str_eq(r.c.listen[0], "127.0.0.1:1");
	ck_assert_str_eq(r.c.listen[1], "127.0.0.1:2");
	ck_assert_int_eq(r.c.mode, MODE_CHAT);
	ck_assert_ptr_eq(r.c.welcome, w);
	ck_assert_str_eq(r.c.welcome, "before");
	ck_assert_uint_eq(r.c.max_clients, 7);
	ck_assert_uint_eq(r.c.max_line, 4096);
	ck_assert_uint_eq(r.c.rate, 3);
	ck_assert_uint_eq(r.c.rate_burst, 3);
	ck_assert_int_eq(r.c.log_level, LOG_ERROR);
	done(&r);

	/* A syntax error alone also leaves it unchanged. */
	load_ok(&r, "[server]\nmode = chat\n");
	load_into(&r, "[server]\nmode = echo\nwelcome = x\n[limits\n");
	ck_assert_int_eq(r.rc, 1);
	ck_assert_int_eq(r.c.mode, MODE_CHAT);
	ck_assert_str_eq(r.c.welcome, "Welcome to the server pal!");
	done(&r);
}
END_TEST

/* A good file replaces the conf: keys it does not give are the defaults,
 * not what the conf held before. */
START_TEST(test_reload_starts_from_defaults)
{
	struct res r;

	load_ok(&r, "[server]\nmode = chat\nlisten = 127.0.0.1:5\n"
	        "[limits]\nmax_clients = 7\n");
	load_into(&r, "[limits]\nmax_line = 100\n");
	ck_assert_int_eq(r.rc, 0);
	ck_assert_uint_eq(r.c.max_line, 100);
	ck_assert_uint_eq(r.c.max_clients, 10000);
	ck_assert_int_eq(r.c.mode, MODE_ECHO);
	ck_assert_uint_eq(r.c.nlisten, 1);
	ck_assert_str_eq(r.c.listen[0], "*:25000");
	done(&r);
}
END_TEST

/* ----------------------------------------------------------- files */

static char *temp_file(const char *text)
{
	char *path = strdup("/tmp/check_conf.XXXXXX");
	int fd;

	ck_assert_ptr_nonnull(path);
	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

START_TEST(test_load_file)
{
	char *path = temp_file("[server]\nmode = chat\n[limits]\nmax_line = x\n");
	char *good = temp_file("[server]\nmode = chat\n");
	struct conf c;
	struct conf_errors e = { 0 };
	char want[256];

	conf_defaults(&c);
	ck_assert_int_eq(conf_load(&c, path, &e), 1);
	ck_assert_uint_eq(e.n, 1);
	snprintf(want, sizeof want, "%s:4: limits.max_line: bad value \"x\"; "
	         "expected " EXP_MAX_LINE, path);
	ck_assert_str_eq(e.msg[0], want);
	ck_assert_int_eq(c.mode, MODE_ECHO);
	conf_errors_free(&e);

	ck_assert_int_eq(conf_load(&c, good, &e), 0);
	ck_assert_uint_eq(e.n, 0);
	ck_assert_int_eq(c.mode, MODE_CHAT);
	conf_free(&c);
	unlink(path);
	unlink(good);
	free(path);
	free(good);
}
END_TEST

START_TEST(test_missing_file)
{
	struct conf c;
	struct conf_errors e = { 0 };

	conf_defaults(&c);
	c.max_clients = 5;
	ck_assert_int_eq(conf_load(&c, "/nonexistent/giambio.conf", &e), 1);
	ck_assert_uint_eq(e.n, 1);
	ck_assert_str_eq(e.msg[0], "/nonexistent/giambio.conf: cannot open: "
	                 "No such file or directory");
	ck_assert_uint_eq(c.max_clients, 5);
	conf_errors_free(&e);
	conf_free(&c);
}
END_TEST

/* A file name longer than any fixed buffer (it comes from the command
 * line) is quoted whole, with or without a line number; such a name used
 * to overflow the message buffer. */
START_TEST(test_long_file_name)
{
	char path[1200], want[1300];
	struct conf c;
	struct conf_errors e = { 0 };
	FILE *f;

	memset(path, 'n', sizeof path - 1);
	memcpy(path, "/nonexistent/", 13);
	path[sizeof path - 1] = '\0';
	conf_defaults(&c);
	ck_assert_int_eq(conf_load(&c, path, &e), 1);
	snprintf(want, sizeof want, "%s: cannot open: No such file or directory",
	         path);
	ck_assert_str_eq(e.msg[0], want);

	f = fmemopen((char *)"[server]\nmode = x\n", 18, "r");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(conf_load_stream(&c, f, path, &e), 1);
	fclose(f);
	snprintf(want, sizeof want, "%s:2: server.mode: bad value \"x\"; "
	         "expected " EXP_MODE, path);
	ck_assert_str_eq(e.msg[1], want);
	conf_errors_free(&e);
	conf_free(&c);
}
END_TEST

/* A file that opens but cannot be read (a directory) is an error too, not
 * an empty configuration. */
START_TEST(test_unreadable_file)
{
	char dir[] = "/tmp/check_conf_dir.XXXXXX";
	struct conf c;
	struct conf_errors e = { 0 };

	ck_assert_ptr_nonnull(mkdtemp(dir));
	conf_defaults(&c);
	c.max_clients = 5;
	int rc = conf_load(&c, dir, &e);
	size_t n = e.n;
	unsigned max_clients = c.max_clients;
	int named = n > 0 && strncmp(e.msg[0], dir, strlen(dir)) == 0 &&
	            e.msg[0][strlen(dir)] == ':';
	rmdir(dir);
	conf_errors_free(&e); /* before asserting: no leak when it fails */
	conf_free(&c);
	ck_assert_msg(rc == 1 && n == 1,
	              "conf_load on a directory: rc %d, %zu errors", rc, n);
	ck_assert(named);
	ck_assert_uint_eq(max_clients, 5);
}
END_TEST

/* ------------------------------------------------- copy, set_listen */

START_TEST(test_conf_copy)
{
	struct res r;
	struct conf d;

	load_ok(&r, "[server]\nlisten = 127.0.0.1:1\nlisten = [::1]:2\n"
	        "mode = chat\nwelcome = copied\n[limits]\nmax_clients = 3\n"
	        "max_clients_per_ip = 4\nmax_line = 50\nidle_timeout = 6s\n"
	        "send_buffer = 7KiB\nrate = 8\nrate_burst = 9\n"
	        "shutdown_timeout = 10ms\n[log]\nlevel = warning\n");
	ck_assert_int_eq(conf_copy(&d, &r.c), 0);
	/* Deep: other pointers, same strings. */
	ck_assert_ptr_ne(d.welcome, r.c.welcome);
	ck_assert_ptr_ne(d.listen[0], r.c.listen[0]);
	ck_assert_ptr_ne(d.listen[1], r.c.listen[1]);
	done(&r); /* the copy outlives the original */
	ck_assert_uint_eq(d.nlisten, 2);
	ck_assert_str_eq(d.listen[0], "127.0.0.1:1");
	ck_assert_str_eq(d.listen[1], "[::1]:2");
	ck_assert_int_eq(d.mode, MODE_CHAT);
	ck_assert_str_eq(d.welcome, "copied");
	ck_assert_uint_eq(d.max_clients, 3);
	ck_assert_uint_eq(d.max_clients_per_ip, 4);
	ck_assert_uint_eq(d.max_line, 50);
	ck_assert_int_eq(d.idle_timeout, 6 * S);
	ck_assert_uint_eq(d.send_buffer, 7 * KIB);
	ck_assert_uint_eq(d.rate, 8);
	ck_assert_uint_eq(d.rate_burst, 9);
	ck_assert_int_eq(d.shutdown_timeout, 10 * MS);
	ck_assert_int_eq(d.log_level, LOG_WARNING);
	conf_free(&d);
}
END_TEST

/* ---------------------------------------------------------------- user */

START_TEST(test_user)
{
	struct res r;
	struct conf d;

	load_ok(&r, "");
	ck_assert_ptr_null(r.c.user); /* default: no drop */
	done(&r);
	/* Looked up when read: nobody's ids, whatever they are here. */
	struct passwd *pw = getpwnam("nobody");
	ck_assert_ptr_nonnull(pw);
	load_ok(&r, "[server]\nuser = nobody\n");
	ck_assert_str_eq(r.c.user, "nobody");
	ck_assert_uint_eq(r.c.uid, pw->pw_uid);
	ck_assert_uint_eq(r.c.gid, pw->pw_gid);
	ck_assert_int_eq(conf_copy(&d, &r.c), 0);
	ck_assert_ptr_ne(d.user, r.c.user);
	done(&r);
	ck_assert_str_eq(d.user, "nobody");
	ck_assert_uint_eq(d.uid, pw->pw_uid);
	conf_free(&d);
	ck_assert_ptr_null(d.user);
	one_error("[server]\nuser = no-such-user-here\n",
	          "t.conf:2: server.user: bad value \"no-such-user-here\"; "
	          "expected the name of an existing user other than root");
	one_error("[server]\nuser = root\n",
	          "t.conf:2: server.user: bad value \"root\"; expected the "
	          "name of an existing user other than root");
	one_error("[server]\nuser =\n",
	          "t.conf:2: server.user: bad value \"\"; expected the "
	          "name of an existing user other than root");
	one_error("[server]\nuser = nobody\nuser = nobody\n",
	          "t.conf:3: server.user: given twice (first on line 2); "
	          "expected it once");
}
END_TEST

START_TEST(test_conf_set_listen)
{
	struct conf c;
	char *two[] = { "127.0.0.1:80", "[::1]:81" };
	char *bad[] = { "127.0.0.1:80", "nowhere" };
	char *many[CONF_LISTEN_MAX + 1];

	conf_defaults(&c);
	ck_assert_int_eq(conf_set_listen(&c, two, 2), 0);
	ck_assert_uint_eq(c.nlisten, 2);
	ck_assert_str_eq(c.listen[0], "127.0.0.1:80");
	ck_assert_str_eq(c.listen[1], "[::1]:81");
	ck_assert_ptr_ne(c.listen[0], two[0]); /* copies */

	/* A bad address: -EINVAL and the list unchanged. */
	char *before = c.listen[0];
	ck_assert_int_eq(conf_set_listen(&c, bad, 2), -EINVAL);
	ck_assert_uint_eq(c.nlisten, 2);
	ck_assert_ptr_eq(c.listen[0], before);
	ck_assert_str_eq(c.listen[1], "[::1]:81");

	/* One replaces two. */
	ck_assert_int_eq(conf_set_listen(&c, &two[1], 1), 0);
	ck_assert_uint_eq(c.nlisten, 1);
	ck_assert_str_eq(c.listen[0], "[::1]:81");

	/* At most CONF_LISTEN_MAX. */
	for (int i = 0; i <= CONF_LISTEN_MAX; i++)
		many[i] = "*:1";
	ck_assert_int_eq(conf_set_listen(&c, many, CONF_LISTEN_MAX + 1), -EINVAL);
	ck_assert_uint_eq(c.nlisten, 1);
	ck_assert_int_eq(conf_set_listen(&c, many, CONF_LISTEN_MAX), 0);
	ck_assert_uint_eq(c.nlisten, CONF_LISTEN_MAX);
	ck_assert_str_eq(c.listen[CONF_LISTEN_MAX - 1], "*:1");
	conf_free(&c);
}
END_TEST

/* ------------------------------------------------------------------ main */

static Suite *conf_suite(void)
{
	Suite *s = suite_create("conf");
	TCase *tc;

	tc = tcase_create("keys");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_empty_file_is_defaults);
	tcase_add_test(tc, test_every_key);
	tcase_add_test(tc, test_mode_and_level_values);
	tcase_add_test(tc, test_spacing);
	tcase_add_test(tc, test_section_reopened);
	tcase_add_test(tc, test_comments);
	tcase_add_test(tc, test_listen_list);
	tcase_add_test(tc, test_listen_max);
	tcase_add_test(tc, test_listen_bad);
	tcase_add_test(tc, test_rate_burst_default);
	suite_add_tcase(s, tc);

	tc = tcase_create("values");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_durations);
	tcase_add_test(tc, test_sizes);
	tcase_add_test(tc, test_bad_units);
	tcase_add_test(tc, test_value_parsers);
	tcase_add_test(tc, test_ranges_accepted);
	tcase_add_test(tc, test_ranges_refused);
	suite_add_tcase(s, tc);

	tc = tcase_create("errors");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_key_twice);
	tcase_add_test(tc, test_unknown_section);
	tcase_add_test(tc, test_unknown_key);
	tcase_add_test(tc, test_key_outside_section);
	tcase_add_test(tc, test_not_key_value);
	tcase_add_test(tc, test_long_line);
	tcase_add_test(tc, test_nul_byte);
	tcase_add_test(tc, test_line_numbers);
	tcase_add_test(tc, test_all_errors_reported);
	tcase_add_test(tc, test_inih_error_with_others);
	tcase_add_test(tc, test_indented_lines);
	tcase_add_test(tc, test_error_prefix_name);
	tcase_add_test(tc, test_errors_accumulate);
	tcase_add_test(tc, test_unchanged_on_error);
	tcase_add_test(tc, test_reload_starts_from_defaults);
	suite_add_tcase(s, tc);

	tc = tcase_create("files");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_load_file);
	tcase_add_test(tc, test_missing_file);
	tcase_add_test(tc, test_long_file_name);
	tcase_add_test(tc, test_unreadable_file);
	tcase_add_test(tc, test_conf_copy);
	tcase_add_test(tc, test_user);
	tcase_add_test(tc, test_conf_set_listen);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run_suite(conf_suite());
}
