/*
 * check_log.c - the daemon's log: log_escape's exact output and its
 * truncation, the level names, log_msg's line format and level filter on
 * stderr, and the journal format when JOURNAL_STREAM names stderr.
 *
 * The log_msg tests point stderr (fd 2) at a temporary file and put it
 * back afterwards, so they also work with CK_FORK=no.
 */
#define _GNU_SOURCE
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"
#include "../src/daemon/log.h"

/* ------------------------------------------------------------ helpers */

/* log_escape of data into a buffer of size bytes (guarded on both sides);
 * checks the NUL, the length returned and that nothing past size was
 * written. */
static size_t escape(char *out, size_t size, const void *data, size_t len)
{
	static char buf[4096 + 32];
	size_t n;

	ck_assert_uint_le(size, 4096);
	memset(buf, '#', sizeof buf);
	n = log_escape(buf + 16, size, data, len);
	for (size_t i = 0; i < 16; i++)
		ck_assert_msg(buf[i] == '#', "written before the buffer");
	for (size_t i = 16 + size; i < sizeof buf; i++)
		ck_assert_msg(buf[i] == '#', "written past size %zu (at %zu)", size,
		              i - 16);
	if (size == 0) {
		ck_assert_uint_eq(n, 0);
		out[0] = '\0';
		return 0;
	}
	ck_assert_uint_lt(n, size);
	ck_assert_msg(buf[16 + n] == '\0', "no NUL at the returned length");
	ck_assert_uint_eq(strlen(buf + 16), n);
	memcpy(out, buf + 16, n + 1);
	return n;
}

static void escape_is(const void *data, size_t len, const char *want)
{
	char out[4096];

	escape(out, sizeof out, data, len);
	ck_assert_str_eq(out, want);
}

#define ESC(lit, want) escape_is((lit), sizeof(lit) - 1, (want))

/* The escape of one byte, by the rules, independently of log.c. */
static void ref_escape(unsigned char c, char *e)
{
	switch (c) {
	case '\\': strcpy(e, "\\\\"); return;
	case '\'': strcpy(e, "\\'"); return;
	case '\n': strcpy(e, "\\n"); return;
	case '\r': strcpy(e, "\\r"); return;
	case '\t': strcpy(e, "\\t"); return;
	}
	if (c >= 0x20 && c <= 0x7e)
		snprintf(e, 5, "%c", c);
	else
		snprintf(e, 5, "\\x%02x", c);
}

/* Points fd 2 at a fresh temporary file; returns the saved fd 2. */
struct capture {
	int saved;
	FILE *tmp;
};

static void capture_start(struct capture *cap)
{
	fflush(stderr);
	cap->tmp = tmpfile();
	ck_assert_ptr_nonnull(cap->tmp);
	cap->saved = dup(2);
	ck_assert_int_ge(cap->saved, 0);
	ck_assert_int_eq(dup2(fileno(cap->tmp), 2), 2);
}

/* Puts fd 2 back and returns what was written (free it). */
static char *capture_end(struct capture *cap)
{
	static char empty[] = "";
	char *text;
	long n;

	fflush(stderr);
	ck_assert_int_eq(dup2(cap->saved, 2), 2);
	close(cap->saved);
	ck_assert_int_eq(fseek(cap->tmp, 0, SEEK_END), 0);
	n = ftell(cap->tmp);
	rewind(cap->tmp);
	text = malloc((size_t)n + 1);
	ck_assert_ptr_nonnull(text);
	ck_assert_uint_eq(fread(text, 1, (size_t)n, cap->tmp), (size_t)n);
	text[n] = '\0';
	fclose(cap->tmp);
	(void)empty;
	return text;
}

/* Sets JOURNAL_STREAM to the device and inode of f (or clears it). */
static void journal_env(FILE *f, int ino_delta)
{
	struct stat st;
	char v[64];

	if (!f) {
		unsetenv("JOURNAL_STREAM");
		return;
	}
	ck_assert_int_eq(fstat(fileno(f), &st), 0);
	snprintf(v, sizeof v, "%llu:%llu", (unsigned long long)st.st_dev,
	         (unsigned long long)st.st_ino + (unsigned long long)ino_delta);
	ck_assert_int_eq(setenv("JOURNAL_STREAM", v, 1), 0);
}

/* Asserts that line matches the extended regular expression re. */
static void matches(const char *line, const char *re)
{
	regex_t rx;

	ck_assert_int_eq(regcomp(&rx, re, REG_EXTENDED | REG_NOSUB), 0);
	int rc = regexec(&rx, line, 0, NULL, 0);
	regfree(&rx);
	ck_assert_msg(rc == 0, "\"%s\" does not match /%s/", line, re);
}

/* Splits text into lines (in place); returns their number. */
static size_t split_lines(char *text, char **lines, size_t max)
{
	size_t n = 0;

	for (char *p = text; *p && n < max;) {
		char *nl = strchr(p, '\n');
		ck_assert_msg(nl != NULL, "a log line without its newline: %s", p);
		*nl = '\0';
		lines[n++] = p;
		p = nl + 1;
	}
	return n;
}

#define TS "[0-3][0-9]/[01][0-9]/[0-9]{4} [0-2][0-9]:[0-5][0-9]:[0-6][0-9]"

/* ------------------------------------------------------------ escape */

START_TEST(test_escape_printable)
{
	char in[128], want[256];
	size_t n = 0, w = 0;

	for (int c = 0x20; c < 0x7f; c++) {
		in[n++] = (char)c;
		if (c == '\\' || c == '\'')
			want[w++] = '\\';
		want[w++] = (char)c;
	}
	want[w] = '\0';
	escape_is(in, n, want);
	ESC("hello world", "hello world");
	ESC("say \"hi\"", "say \"hi\"");
	ESC("", "");
}
END_TEST

START_TEST(test_escape_specials)
{
	ESC("\\", "\\\\");
	ESC("'", "\\'");
	ESC("it's a\\b", "it\\'s a\\\\b");
	ESC("\n", "\\n");
	ESC("\r", "\\r");
	ESC("\t", "\\t");
	ESC("hello\r\n", "hello\\r\\n");
	ESC("hello\n", "hello\\n");
	ESC("a\tb", "a\\tb");
}
END_TEST

START_TEST(test_escape_hex)
{
	ESC("\x00", "\\x00");
	ESC("\x7f", "\\x7f");
	ESC("\x80", "\\x80");
	ESC("\xff", "\\xff");
	ESC("\x01", "\\x01");
	ESC("\x1b", "\\x1b");
	ESC("\x0b\x0c", "\\x0b\\x0c");
	ESC("\xab\xcd\xef", "\\xab\\xcd\\xef");
	ESC("a\x00" "b", "a\\x00b");
	ESC("h\xc3\xa9", "h\\xc3\\xa9");

	/* Every byte, against the rules written out here. */
	for (int c = 0; c < 256; c++) {
		unsigned char b = (unsigned char)c;
		char want[8];
		ref_escape(b, want);
		escape_is(&b, 1, want);
	}
}
END_TEST

/* All 256 bytes in one buffer: the concatenation of their escapes. */
START_TEST(test_escape_all_bytes)
{
	unsigned char in[256];
	char want[1100];
	size_t w = 0;

	for (int c = 0; c < 256; c++) {
		in[c] = (unsigned char)c;
		ref_escape(in[c], want + w);
		w += strlen(want + w);
	}
	escape_is(in, sizeof in, want);
	char out[1100];
	ck_assert_uint_eq(escape(out, sizeof out, in, sizeof in), w);
}
END_TEST

/* Truncation, for every buffer size: NUL-terminated within size, the
 * whole escape when it fits, otherwise a prefix made of whole escapes
 * followed by "..." (when size leaves room for it). */
START_TEST(test_escape_truncation)
{
	static const unsigned char data[] = "ab\\'\n\x00\xff" "cd\r\t\x7f" "e";
	size_t len = sizeof data - 1;
	char full[256], out[256];
	size_t bound[64], nb = 0, flen = 0;

	bound[nb++] = 0;
	for (size_t i = 0; i < len; i++) {
		ref_escape(data[i], full + flen);
		flen += strlen(full + flen);
		bound[nb++] = flen;
	}
	for (size_t size = 0; size <= flen + 8; size++) {
		size_t n = escape(out, size, data, len);
		if (size == 0)
			continue;
		if (flen < size) {
			ck_assert_msg(strcmp(out, full) == 0, "size %zu: \"%s\"", size,
			              out);
			continue;
		}
		if (size >= 4) {
			ck_assert_msg(n >= 3 && strcmp(out + n - 3, "...") == 0,
			              "size %zu: \"%s\" does not end in ...", size, out);
			n -= 3;
		}
		/* The rest is whole escapes from the start. */
		int whole = 0;
		for (size_t k = 0; k < nb; k++)
			whole |= bound[k] == n;
		ck_assert_msg(whole, "size %zu: \"%s\" cuts an escape", size, out);
		ck_assert_msg(memcmp(out, full, n) == 0, "size %zu: \"%s\"", size,
		              out);
		/* And as many as fit. */
		for (size_t k = 0; k < nb; k++)
			if (bound[k] > n && size >= 4)
				ck_assert_msg(bound[k] + 3 > size - 1,
				              "size %zu: \"%s\" stops early", size, out);
	}
}
END_TEST

/* Exact outputs of small buffers around a 4-byte escape. */
START_TEST(test_escape_truncation_exact)
{
	char out[64];
	const char *d5 = "ab\x01" "cd";       /* escapes to 8 characters */
	const char *d = "ab\x01" "cdefgh";    /* escapes to 12 characters */

	/* Room for all of it: never truncated, even exactly. */
	escape(out, 20, d5, 5);
	ck_assert_str_eq(out, "ab\\x01cd");
	escape(out, 9, d5, 5);
	ck_assert_str_eq(out, "ab\\x01cd");
	escape(out, 13, d, 9);
	ck_assert_str_eq(out, "ab\\x01cdefgh");
	/* One byte short: whole escapes and "...", as many as fit. */
	escape(out, 8, d5, 5);
	ck_assert_str_eq(out, "ab...");
	escape(out, 12, d, 9);
	ck_assert_str_eq(out, "ab\\x01cd...");
	escape(out, 10, d, 9);
	ck_assert_str_eq(out, "ab\\x01...");
	escape(out, 9, d, 9);
	ck_assert_str_eq(out, "ab...");
	escape(out, 6, d, 9);
	ck_assert_str_eq(out, "ab...");
	escape(out, 5, d, 9);
	ck_assert_str_eq(out, "a...");
	escape(out, 4, d, 9);
	ck_assert_str_eq(out, "...");
	escape(out, 1, d, 9);
	ck_assert_str_eq(out, "");
	/* size 0 writes nothing (checked by escape()). */
	escape(out, 0, d, 9);
	/* A long input into a log-sized buffer. */
	static char big[10000];
	static char res[4096];
	memset(big, '\n', sizeof big);
	size_t n = escape(res, 4096, big, sizeof big);
	ck_assert_uint_lt(n, 4096);
	ck_assert_uint_eq(n % 2, 1); /* "\n" pairs, then "..." */
	ck_assert_str_eq(res + n - 3, "...");
	ck_assert_uint_ge(n, 4096 - 1 - 2);
}
END_TEST

/* ------------------------------------------------------------ levels */

START_TEST(test_level_names)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };
	static const int levels[] = { LOG_ERROR, LOG_WARNING, LOG_INFO,
	                              LOG_DEBUG };

	for (int i = 0; i < 4; i++) {
		ck_assert_int_eq(log_level_parse(names[i]), levels[i]);
		ck_assert_str_eq(log_level_name(levels[i]), names[i]);
		ck_assert_int_eq(log_level_parse(log_level_name(levels[i])),
		                 levels[i]);
	}
	ck_assert_int_lt(LOG_ERROR, LOG_WARNING);
	ck_assert_int_lt(LOG_WARNING, LOG_INFO);
	ck_assert_int_lt(LOG_INFO, LOG_DEBUG);
	ck_assert_int_eq(log_level_parse("verbose"), -1);
	ck_assert_int_eq(log_level_parse(""), -1);
	ck_assert_int_eq(log_level_parse("warn"), -1);
	ck_assert_int_eq(log_level_parse("info "), -1);
	ck_assert_int_eq(log_level_parse("debug2"), -1);
}
END_TEST

START_TEST(test_set_get_level)
{
	log_set_level(LOG_DEBUG);
	ck_assert_int_eq(log_get_level(), LOG_DEBUG);
	ck_assert_int_eq(log_enabled(LOG_DEBUG), 1);
	log_set_level(LOG_WARNING);
	ck_assert_int_eq(log_get_level(), LOG_WARNING);
	ck_assert_int_eq(log_enabled(LOG_ERROR), 1);
	ck_assert_int_eq(log_enabled(LOG_WARNING), 1);
	ck_assert_int_eq(log_enabled(LOG_INFO), 0);
	ck_assert_int_eq(log_enabled(LOG_DEBUG), 0);
	unsetenv("JOURNAL_STREAM");
	log_init(LOG_INFO);
	ck_assert_int_eq(log_get_level(), LOG_INFO);
}
END_TEST

/* Starts capturing the log's output, on stderr (not the journal), at
 * level lv. */
static void capture_at(struct capture *cap, int lv)
{
	unsetenv("JOURNAL_STREAM");
	capture_start(cap);
	log_init(lv);
}

/* ----------------------------------------------------------- log_msg */

START_TEST(test_msg_format)
{
	struct capture cap;
	char *lines[16];

	capture_at(&cap, LOG_INFO);
	time_t t0 = time(NULL);
	log_info("Echo server serving asynchronously at %s:%d", "0.0.0.0",
	         25000);
	log_warning("warn %s", "me");
	log_error("broken");
	time_t t1 = time(NULL);
	char *text = capture_end(&cap);
	size_t n = split_lines(text, lines, 16);

	ck_assert_uint_eq(n, 3);
	matches(lines[0], "^\\[INFO\\] " TS " Echo server serving "
	        "asynchronously at 0\\.0\\.0\\.0:25000$");
	matches(lines[1], "^\\[WARNING\\] " TS " warn me$");
	matches(lines[2], "^\\[ERROR\\] " TS " broken$");

	/* The timestamp is local time, now, as DD/MM/YYYY HH:MM:SS. */
	struct tm tm = { 0 };
	char rest[64];
	ck_assert_int_eq(sscanf(lines[0], "[INFO] %d/%d/%d %d:%d:%d %63s",
	                        &tm.tm_mday, &tm.tm_mon, &tm.tm_year,
	                        &tm.tm_hour, &tm.tm_min, &tm.tm_sec, rest), 7);
	ck_assert_str_eq(rest, "Echo");
	tm.tm_mon -= 1;
	tm.tm_year -= 1900;
	tm.tm_isdst = -1;
	time_t t = mktime(&tm);
	ck_assert_msg(t >= t0 - 1 && t <= t1 + 1, "timestamp %lld not in "
	              "[%lld, %lld]", (long long)t, (long long)t0,
	              (long long)t1);
	free(text);
}
END_TEST

/* Lines whose level is off are not printed. */
START_TEST(test_msg_filter)
{
	struct capture cap;
	char *lines[16];

	capture_at(&cap, LOG_INFO);
	log_debug("hidden %d", 1);
	log_msg(LOG_DEBUG, "hidden %d", 2);
	log_info("shown %d", 3);
	log_set_level(LOG_ERROR);
	log_info("hidden %d", 4);
	log_warning("hidden %d", 5);
	log_error("shown %d", 6);
	log_set_level(LOG_DEBUG);
	log_debug("shown %d", 7);
	log_set_level(LOG_INFO);
	char *text = capture_end(&cap);
	size_t n = split_lines(text, lines, 16);

	ck_assert_msg(!strstr(text, "hidden"), "%s", text);
	ck_assert_uint_eq(n, 3);
	matches(lines[0], "^\\[INFO\\] " TS " shown 3$");
	matches(lines[1], "^\\[ERROR\\] " TS " shown 6$");
	matches(lines[2], "^\\[DEBUG\\] " TS " shown 7$");
	free(text);
}
END_TEST

static int evaluated;

static int side_effect(void)
{
	evaluated++;
	return 1;
}

/* A debug line costs nothing when debug is off: its arguments are not
 * even evaluated. */
START_TEST(test_debug_args_not_evaluated)
{
	struct capture cap;

	capture_at(&cap, LOG_INFO);
	evaluated = 0;
	log_debug("x %d", side_effect());
	ck_assert_int_eq(evaluated, 0);
	log_set_level(LOG_DEBUG);
	log_debug("x %d", side_effect());
	ck_assert_int_eq(evaluated, 1);
	log_set_level(LOG_INFO);
	free(capture_end(&cap));
}
END_TEST

/* With JOURNAL_STREAM naming stderr's device:inode, lines are "<N>msg". */
START_TEST(test_journal_format)
{
	struct capture cap;

	capture_start(&cap);
	journal_env(cap.tmp, 0);
	log_init(LOG_DEBUG);
	log_info("hello %s", "journal");
	log_error("e");
	log_warning("w");
	log_debug("d");
	journal_env(NULL, 0);
	log_init(LOG_INFO); /* back to the plain format */
	char *text = capture_end(&cap);

	ck_assert_str_eq(text, "<6>hello journal\n<3>e\n<4>w\n<7>d\n");
	free(text);
}
END_TEST

/* JOURNAL_STREAM that names another file, or is garbage, is ignored; and
 * the format is decided at log_init. */
START_TEST(test_journal_not_stderr)
{
	struct capture cap;
	char *lines[8];

	capture_start(&cap);
	journal_env(cap.tmp, 1); /* another inode */
	log_init(LOG_INFO);
	log_info("one");
	setenv("JOURNAL_STREAM", "garbage", 1);
	log_init(LOG_INFO);
	log_info("two");
	setenv("JOURNAL_STREAM", "", 1);
	log_init(LOG_INFO);
	log_info("three");
	/* Set after log_init: not looked at until the next log_init. */
	journal_env(cap.tmp, 0);
	log_info("four");
	log_init(LOG_INFO);
	log_info("five");
	journal_env(NULL, 0);
	log_init(LOG_INFO);
	log_info("six");
	char *text = capture_end(&cap);
	size_t n = split_lines(text, lines, 8);

	ck_assert_uint_eq(n, 6);
	matches(lines[0], "^\\[INFO\\] " TS " one$");
	matches(lines[1], "^\\[INFO\\] " TS " two$");
	matches(lines[2], "^\\[INFO\\] " TS " three$");
	matches(lines[3], "^\\[INFO\\] " TS " four$");
	ck_assert_str_eq(lines[4], "<6>five");
	matches(lines[5], "^\\[INFO\\] " TS " six$");
	free(text);
}
END_TEST

/* JOURNAL_STREAM must be "device:inode" exactly: with stderr's numbers but
 * spaces, a sign or trailing text it is ignored. "-N" is the case where a
 * lax parse (sscanf's %llu wraps it round) would name stderr. */
START_TEST(test_journal_stream_strict)
{
	static const char *const bad[] = {
		"%llu:%llux", " %llu:%llu", "%llu: %llu", "+%llu:%llu",
		"%llu:-%llu",
	};
	struct capture cap;
	struct stat st;
	char v[96], *lines[8];

	capture_start(&cap);
	ck_assert_int_eq(fstat(fileno(cap.tmp), &st), 0);
	unsigned long long dev = st.st_dev, ino = st.st_ino;
	for (size_t i = 0; i < 5; i++) {
		unsigned long long n = strchr(bad[i], '-') ? 0 - ino : ino;
		snprintf(v, sizeof v, bad[i], dev, n);
		ck_assert_int_eq(setenv("JOURNAL_STREAM", v, 1), 0);
		log_init(LOG_INFO);
		log_info("bad %zu", i);
	}
	journal_env(cap.tmp, 0);
	log_init(LOG_INFO);
	log_info("good");
	journal_env(NULL, 0);
	char *text = capture_end(&cap);
	size_t n = split_lines(text, lines, 8);

	ck_assert_uint_eq(n, 6);
	for (size_t i = 0; i < 5; i++)
		matches(lines[i], "^\\[INFO\\] " TS " bad [0-4]$");
	ck_assert_str_eq(lines[5], "<6>good");
	free(text);
}
END_TEST

/* A log line with escaped client data, as the daemon writes it. */
START_TEST(test_msg_with_escape)
{
	struct capture cap;
	char esc[64];

	capture_at(&cap, LOG_DEBUG);
	log_escape(esc, sizeof esc, "hello\n", 6);
	log_debug("Got: '%s' from %s", esc, "127.0.0.1:54321");
	log_init(LOG_INFO);
	char *text = capture_end(&cap);

	matches(text, "^\\[DEBUG\\] " TS " Got: 'hello\\\\n' from "
	        "127\\.0\\.0\\.1:54321\n$");
	free(text);
}
END_TEST

/* ------------------------------------------------------------------ main */

static Suite *log_suite(void)
{
	Suite *s = suite_create("log");
	TCase *tc;

	tc = tcase_create("escape");
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_escape_printable);
	tcase_add_test(tc, test_escape_specials);
	tcase_add_test(tc, test_escape_hex);
	tcase_add_test(tc, test_escape_all_bytes);
	tcase_add_test(tc, test_escape_truncation);
	tcase_add_test(tc, test_escape_truncation_exact);
	suite_add_tcase(s, tc);

	tc = tcase_create("levels");
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_level_names);
	tcase_add_test(tc, test_set_get_level);
	suite_add_tcase(s, tc);

	tc = tcase_create("msg");
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_msg_format);
	tcase_add_test(tc, test_msg_filter);
	tcase_add_test(tc, test_debug_args_not_evaluated);
	tcase_add_test(tc, test_journal_format);
	tcase_add_test(tc, test_journal_not_stderr);
	tcase_add_test(tc, test_journal_stream_strict);
	tcase_add_test(tc, test_msg_with_escape);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run_suite(log_suite());
}
