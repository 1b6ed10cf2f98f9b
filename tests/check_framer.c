/*
 * check_framer.c - chat mode's input framing: lines across feeds, CRLF and
 * LF, control bytes dropped, bytes from 0x80 kept, telnet commands removed
 * (also split at every byte boundary), IAC IAC, max_line counted on the
 * bytes as received, too-long lines reported once and discarded, and the
 * fragment at end of input.
 *
 * Every input is run through the framer fed in one piece, one byte at a
 * time, in every chunk size, and split in two at every position; each way
 * must give the same events.
 */
#include <stdio.h>
#include <string.h>

#include "testutil.h"
#include "../src/daemon/framer.h"

#define IAC "\xff"
#define SB "\xfa"
#define SE "\xf0"
#define WILL "\xfb"
#define WONT "\xfc"
#define DO "\xfd"
#define DONT "\xfe"
#define NOP "\xf1"

/* ------------------------------------------------------------ helpers */

/* The events of one run, as text: "L<len>:<bytes>|" for a line, "T|" for
 * a too-long report, "F<len>:<bytes>|" for framer_finish's fragment. */
struct events {
	char s[16384];
	size_t n;
};

static void ev_add(struct events *e, char kind, const char *data, size_t len)
{
	int k;

	if (kind == 'T') {
		k = snprintf(e->s + e->n, sizeof e->s - e->n, "T|");
	} else {
		k = snprintf(e->s + e->n, sizeof e->s - e->n, "%c%zu:", kind, len);
		ck_assert_uint_lt(e->n + (size_t)k + len + 1, sizeof e->s);
		memcpy(e->s + e->n + k, data, len);
		k += (int)len;
		e->s[e->n + (size_t)k] = '|';
		k++;
	}
	e->n += (size_t)k;
	ck_assert_uint_lt(e->n, sizeof e->s);
	e->s[e->n] = '\0';
}

/* Feeds buf[0..n) as one read, recording the events. */
static void feed(struct framer *f, const char *buf, size_t n, struct events *e)
{
	while (n > 0) {
		int ev = -1;
		size_t used = framer_feed(f, buf, n, &ev);

		ck_assert_uint_le(used, n);
		if (ev == FRAMER_MORE) {
			ck_assert_uint_eq(used, n); /* MORE: all of it used */
		} else {
			ck_assert_uint_ge(used, 1);
			if (ev == FRAMER_LINE) {
				ck_assert_uint_lt(f->len, f->max);
				ev_add(e, 'L', f->line, f->len);
			} else {
				ck_assert_int_eq(ev, FRAMER_TOO_LONG);
				ev_add(e, 'T', NULL, 0);
			}
		}
		buf += used;
		n -= used;
	}
}

static void finish(struct framer *f, struct events *e)
{
	if (framer_finish(f))
		ev_add(e, 'F', f->line, f->len);
}

/* Runs in[0..len) through a framer of max_line max, fed in the given
 * pieces (sizes of the reads, in turn, the last repeated). */
static void run_split(size_t max, const char *in, size_t len, size_t first,
                      size_t chunk, struct events *e)
{
	struct framer f;

	memset(e, 0, sizeof *e);
	ck_assert_int_eq(framer_init(&f, max), 0);
	if (first > len)
		first = len;
	feed(&f, in, first, e);
	for (size_t off = first; off < len; off += chunk)
		feed(&f, in + off, len - off < chunk ? len - off : chunk, e);
	finish(&f, e);
	framer_free(&f);
}

/* Asserts that in[0..len) gives the events want however it is split. */
static void check_n(size_t max, const char *in, size_t len, const char *want)
{
	static struct events e;

	/* In one piece. */
	run_split(max, in, len, len, 1, &e);
	ck_assert_msg(strcmp(e.s, want) == 0, "whole: got \"%s\", want \"%s\"",
	              e.s, want);
	/* In chunks of every size (1: a byte at a time). */
	for (size_t chunk = 1; chunk < len; chunk++) {
		run_split(max, in, len, 0, chunk, &e);
		ck_assert_msg(strcmp(e.s, want) == 0,
		              "chunks of %zu: got \"%s\", want \"%s\"", chunk, e.s,
		              want);
	}
	/* In two pieces, split at every byte boundary. */
	for (size_t cut = 1; cut < len; cut++) {
		run_split(max, in, len, cut, len, &e);
		ck_assert_msg(strcmp(e.s, want) == 0,
		              "split at %zu: got \"%s\", want \"%s\"", cut, e.s, want);
	}
}

/* One line of every byte from lo to hi - 1, in order, comes out whole. */
static void check_byte_range(int lo, int hi)
{
	char in[256], want[512];
	size_t n = 0;
	int k;

	for (int b = lo; b < hi; b++)
		in[n++] = (char)b;
	in[n++] = '\n';
	k = snprintf(want, sizeof want, "L%zu:", n - 1);
	memcpy(want + k, in, n - 1);
	strcpy(want + k + n - 1, "|");
	check_n(200, in, n, want);
}

#define CHECK(max, lit, want) check_n((max), (lit), sizeof(lit) - 1, (want))

/* ------------------------------------------------------------- lines */

START_TEST(test_lines)
{
	CHECK(100, "hello\n", "L5:hello|");
	CHECK(100, "hello\nworld\n", "L5:hello|L5:world|");
	CHECK(100, "a\nbb\nccc\n", "L1:a|L2:bb|L3:ccc|");
	CHECK(100, "\n", "L0:|");
	CHECK(100, "\n\n", "L0:|L0:|");
	CHECK(100, "", "");
}
END_TEST

/* A line's pieces arrive in separate reads. */
START_TEST(test_split_across_feeds)
{
	struct framer f;
	struct events e = { 0 };

	ck_assert_int_eq(framer_init(&f, 100), 0);
	feed(&f, "hel", 3, &e);
	ck_assert_str_eq(e.s, "");
	feed(&f, "lo\nwor", 6, &e);
	ck_assert_str_eq(e.s, "L5:hello|");
	feed(&f, "ld", 2, &e);
	ck_assert_str_eq(e.s, "L5:hello|");
	feed(&f, "\n", 1, &e);
	ck_assert_str_eq(e.s, "L5:hello|L5:world|");
	feed(&f, "", 0, &e);
	finish(&f, &e);
	ck_assert_str_eq(e.s, "L5:hello|L5:world|");
	framer_free(&f);
}
END_TEST

/* One call stops at the first line and returns how much it used; the line
 * stays valid until the next call. */
START_TEST(test_feed_returns_consumed)
{
	struct framer f;
	int ev = -1;
	const char *in = "ab\ncd\nef";

	ck_assert_int_eq(framer_init(&f, 100), 0);
	ck_assert_uint_eq(framer_feed(&f, in, 8, &ev), 3);
	ck_assert_int_eq(ev, FRAMER_LINE);
	ck_assert_uint_eq(f.len, 2);
	ck_assert_int_eq(memcmp(f.line, "ab", 2), 0);
	ck_assert_uint_eq(framer_feed(&f, in + 3, 5, &ev), 3);
	ck_assert_int_eq(ev, FRAMER_LINE);
	ck_assert_uint_eq(f.len, 2);
	ck_assert_int_eq(memcmp(f.line, "cd", 2), 0);
	ck_assert_uint_eq(framer_feed(&f, in + 6, 2, &ev), 2);
	ck_assert_int_eq(ev, FRAMER_MORE);
	ck_assert_uint_eq(framer_feed(&f, in, 0, &ev), 0);
	ck_assert_int_eq(ev, FRAMER_MORE);
	ck_assert_int_eq(framer_finish(&f), 1);
	ck_assert_uint_eq(f.len, 2);
	ck_assert_int_eq(memcmp(f.line, "ef", 2), 0);
	framer_free(&f);
}
END_TEST

START_TEST(test_crlf)
{
	CHECK(100, "a\r\nb\n", "L1:a|L1:b|");
	CHECK(100, "hello\r\nworld\r\n", "L5:hello|L5:world|");
	CHECK(100, "\r\n", "L0:|");
	/* A CR anywhere else is a control byte, dropped. */
	CHECK(100, "a\rb\r\r\n", "L2:ab|");
	CHECK(100, "\rx\n", "L1:x|");
}
END_TEST

/* ------------------------------------------------------- byte filter */

START_TEST(test_control_bytes_dropped)
{
	char in[128], want[128];
	size_t n = 0;

	/* Every byte 0x00-0x1f but the newline, each after an 'x', then 0x7f. */
	for (int b = 0; b < 0x20; b++) {
		if (b == '\n')
			continue;
		in[n++] = 'x';
		in[n++] = (char)b;
	}
	in[n++] = 'y';
	in[n++] = 0x7f;
	in[n++] = 'z';
	in[n++] = '\n';
	/* Kept: ten x's, the tab, 21 x's, y and z. */
	strcpy(want, "L34:xxxxxxxxxx\txxxxxxxxxxxxxxxxxxxxxyz|");
	check_n(200, in, n, want);

	CHECK(100, "a\x00" "b\n", "L2:ab|");
	CHECK(100, "\x1b[31mred\x1b[0m\n", "L10:[31mred[0m|");
	CHECK(100, "tab\there\n", "L8:tab\there|");
	CHECK(100, "\x7f\x7f\n", "L0:|");
}
END_TEST

/* Every byte from 0x80 up (0xff is IAC) passes: UTF-8 is untouched. */
START_TEST(test_high_bytes_pass)
{
	CHECK(100, "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80\n",
	      "L15:h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80|");
	check_byte_range(0x80, 0xff);
	/* Printable ASCII too. */
	check_byte_range(0x20, 0x7f);
}
END_TEST

/* ------------------------------------------------------------ telnet */

START_TEST(test_telnet_options)
{
	static const char *const verbs[] = { WILL, WONT, DO, DONT };
	/* Options, including ones that look like data: 1 (echo), LF, CR,
	 * 'a', IAC. */
	static const unsigned char opts[] = { 1, 3, 24, 31, '\n', '\r', 'a',
	                                      0x7f, 0xff };

	for (size_t v = 0; v < 4; v++)
		for (size_t o = 0; o < sizeof opts; o++) {
			char in[32];
			int n = snprintf(in, sizeof in, "ab%s%s", IAC, verbs[v]);
			in[n++] = (char)opts[o];
			memcpy(in + n, "cd\n", 3);
			n += 3;
			check_n(100, in, (size_t)n, "L4:abcd|");
		}
	/* Negotiation at the start of the connection, as telnet sends it. */
	CHECK(100, IAC DO "\x03" IAC WILL "\x18" IAC WILL "\x1f" "hi\r\n",
	      "L2:hi|");
	/* Back to back, and between lines. */
	CHECK(100, "a\n" IAC WONT "\x01" IAC DONT "\x01" "b\n", "L1:a|L1:b|");
}
END_TEST

START_TEST(test_telnet_commands)
{
	/* Two-byte commands: SE, NOP, DM, BRK, IP, AO, AYT, EC, EL, GA. */
	for (int cmd = 240; cmd <= 249; cmd++) {
		char in[16];
		int n = snprintf(in, sizeof in, "a%s", IAC);
		in[n++] = (char)cmd;
		memcpy(in + n, "b\n", 2);
		n += 2;
		check_n(100, in, (size_t)n, "L2:ab|");
	}
	CHECK(100, "a" IAC NOP "b\n", "L2:ab|");
	CHECK(100, IAC NOP IAC NOP "\n", "L0:|");
	/* The byte after IAC is a command, not a terminator. */
	CHECK(100, "a" IAC "\n" "b\n", "L2:ab|");
}
END_TEST

START_TEST(test_telnet_subnegotiation)
{
	/* Terminal type: IAC SB 24 0 "xterm" IAC SE. */
	CHECK(100, "a" IAC SB "\x18\x00" "xterm" IAC SE "b\n", "L2:ab|");
	/* A newline, a CR and an escaped IAC inside the subnegotiation are
	 * part of it. */
	CHECK(100, "a" IAC SB "\x1f\x00\n\r\x00" IAC IAC "x" IAC SE "b\n",
	      "L2:ab|");
	/* IAC followed by something else inside SB does not end it. */
	CHECK(100, "a" IAC SB "\x18" IAC NOP "zz" IAC SE "b\n", "L2:ab|");
	/* An empty subnegotiation, and two in a row. */
	CHECK(100, "x" IAC SB IAC SE IAC SB "\x01" IAC SE "y\n", "L2:xy|");
	/* Subnegotiation across lines: the line after it is intact. */
	CHECK(100, "one\n" IAC SB "\x18" "\n\n" IAC SE "two\n",
	      "L3:one|L3:two|");
}
END_TEST

START_TEST(test_telnet_iac_iac)
{
	CHECK(100, "a" IAC IAC "b\n", "L3:a\xff" "b|");
	CHECK(100, IAC IAC IAC IAC "\n", "L2:\xff\xff|");
	/* IAC IAC then a command. */
	CHECK(100, IAC IAC IAC NOP "\n", "L1:\xff|");
	/* The data byte 0xff right before a real command. */
	CHECK(100, "x" IAC IAC IAC WILL "\x01" "y\n", "L3:x\xffy|");
}
END_TEST

/* ---------------------------------------------------------- max_line */

START_TEST(test_max_line_exact)
{
	/* max 8: seven bytes and the newline are fine. */
	CHECK(8, "1234567\n", "L7:1234567|");
	/* One more byte: too long, reported once; the next line is intact. */
	CHECK(8, "12345678\n", "T|");
	CHECK(8, "12345678\nok\n", "T|L2:ok|");
	CHECK(8, "1234567\n12345678\n1234567\n",
	      "L7:1234567|T|L7:1234567|");
	/* CRLF: the CR counts. */
	CHECK(8, "123456\r\n", "L6:123456|");
	CHECK(8, "1234567\r\nok\r\n", "T|L2:ok|");
	/* The smallest max_line: one byte and the newline. */
	CHECK(2, "a\n", "L1:a|");
	CHECK(2, "\n", "L0:|");
	CHECK(2, "ab\nc\n", "T|L1:c|");
}
END_TEST

START_TEST(test_max_line_counts_raw_bytes)
{
	/* Telnet bytes count: 2 + 3 + 2 + 1 = 8 fits, one more does not. */
	CHECK(8, "ab" IAC WILL "\x01" "cd\n", "L4:abcd|");
	CHECK(8, "ab" IAC WILL "\x01" "cde\n", "T|");
	/* IAC IAC is two bytes received for one kept. */
	CHECK(8, "abc" IAC IAC "de\n", "L6:abc\xff" "de|");
	CHECK(8, "abcd" IAC IAC "de\n", "T|");
	/* Dropped control bytes count. */
	CHECK(8, "\x01\x01\x01\x01\x01\x01\x01\n", "L0:|");
	CHECK(8, "\x01\x01\x01\x01\x01\x01\x01\x01\n", "T|");
	CHECK(8, "a\x7f\x7f\x7f\x7f\x7f\x7f\n", "L1:a|");
	CHECK(8, "a\x7f\x7f\x7f\x7f\x7f\x7f\x7f\n", "T|");
	/* A subnegotiation counts. */
	CHECK(8, "a" IAC SB "\x18" IAC SE "b\n", "L2:ab|");
	CHECK(8, "a" IAC SB "\x18\x00" IAC SE "b\n", "T|");
	/* Multi-byte UTF-8 counts in bytes. */
	CHECK(8, "\xe2\x82\xac\xe2\x82\xac" "a\n",
	      "L7:\xe2\x82\xac\xe2\x82\xac" "a|");
	CHECK(8, "\xe2\x82\xac\xe2\x82\xac" "ab\n", "T|");
}
END_TEST

/* A long line is reported once, never handed out in part, and everything
 * up to its newline is discarded, telnet included; the parser state goes
 * on across the discarded part. */
START_TEST(test_too_long_discarded)
{
	char in[2048];
	size_t n = 0;

	memset(in, 'x', 1000);
	n = 1000;
	memcpy(in + n, "\nnext\n", 6);
	n += 6;
	check_n(16, in, n, "T|L4:next|");

	/* A newline inside a subnegotiation in the discarded part does not
	 * end the long line. */
	CHECK(4, "abcdef" IAC SB "\n" IAC SE "tail\nok\n", "T|L2:ok|");
	/* IAC IAC in the discarded part is data, not the start of a command
	 * that would swallow the newline. */
	CHECK(4, "abcdef" IAC IAC "\nok\n", "T|L2:ok|");
	/* A telnet command after the newline of a discarded line is removed
	 * from the next line as usual. */
	CHECK(5, "abcdefg\n" IAC NOP "ok\n", "T|L2:ok|");
	CHECK(4, "abcdefg\n" IAC NOP "ok\n", "T|T|"); /* 5 bytes received */
	/* Two long lines in a row: reported once each. */
	CHECK(4, "abcdef\nghijkl\nab\n", "T|T|L2:ab|");
	/* A long CRLF line. */
	CHECK(4, "abcd\r\nab\r\n", "T|L2:ab|");
}
END_TEST

/* ------------------------------------------------------------ finish */

START_TEST(test_finish)
{
	/* A pending fragment at EOF. */
	CHECK(100, "abc", "F3:abc|");
	CHECK(100, "one\ntwo", "L3:one|F3:two|");
	CHECK(100, "ab" IAC, "F2:ab|");
	CHECK(100, "ab" IAC SB "x", "F2:ab|");
	CHECK(100, "a\r", "F1:a|");
	/* Nothing after a complete line, on empty input, while discarding. */
	CHECK(100, "abc\n", "L3:abc|");
	CHECK(4, "abcdef", "T|");
	CHECK(4, "ok\nabcdef", "L2:ok|T|");
	/* A fragment exactly one byte short of too long. */
	CHECK(4, "abc", "F3:abc|");
}
END_TEST

START_TEST(test_finish_calls)
{
	struct framer f;
	int ev;

	ck_assert_int_eq(framer_init(&f, 100), 0);
	ck_assert_int_eq(framer_finish(&f), 0); /* nothing fed */
	framer_free(&f);

	ck_assert_int_eq(framer_init(&f, 100), 0);
	ck_assert_uint_eq(framer_feed(&f, "tail", 4, &ev), 4);
	ck_assert_int_eq(ev, FRAMER_MORE);
	ck_assert_int_eq(framer_finish(&f), 1);
	ck_assert_uint_eq(f.len, 4);
	ck_assert_int_eq(memcmp(f.line, "tail", 4), 0);
	/* Handed out once. */
	ck_assert_int_eq(framer_finish(&f), 0);
	framer_free(&f);

	/* Only dropped bytes pending: no line. */
	ck_assert_int_eq(framer_init(&f, 100), 0);
	ck_assert_uint_eq(framer_feed(&f, "\r\x01", 2, &ev), 2);
	ck_assert_int_eq(framer_finish(&f), 0);
	framer_free(&f);
}
END_TEST

/* framer_free twice is harmless; init allocates max bytes. */
START_TEST(test_init_free)
{
	struct framer f;

	ck_assert_int_eq(framer_init(&f, 4096), 0);
	ck_assert_ptr_nonnull(f.line);
	ck_assert_uint_eq(f.max, 4096);
	ck_assert_uint_eq(f.len, 0);
	framer_free(&f);
	ck_assert_ptr_null(f.line);
	framer_free(&f);
}
END_TEST

/* A full line of max - 1 bytes, all kept, fits the buffer (the sanitizer
 * build checks the bound), also with 1 MiB lines. */
START_TEST(test_full_buffer)
{
	size_t max = 1024 * 1024;
	char *in = malloc(max + 1);
	struct framer f;
	int ev;

	ck_assert_ptr_nonnull(in);
	memset(in, 'q', max - 1);
	in[max - 1] = '\n';
	ck_assert_int_eq(framer_init(&f, max), 0);
	ck_assert_uint_eq(framer_feed(&f, in, max, &ev), max);
	ck_assert_int_eq(ev, FRAMER_LINE);
	ck_assert_uint_eq(f.len, max - 1);
	ck_assert_int_eq(memcmp(f.line, in, max - 1), 0);
	/* max bytes without a newline: too long at the last one. */
	ck_assert_uint_eq(framer_feed(&f, in, max - 1, &ev), max - 1);
	ck_assert_int_eq(ev, FRAMER_MORE);
	ck_assert_uint_eq(framer_feed(&f, "q\n", 2, &ev), 1);
	ck_assert_int_eq(ev, FRAMER_TOO_LONG);
	ck_assert_uint_eq(framer_feed(&f, "\n", 1, &ev), 1);
	ck_assert_int_eq(ev, FRAMER_MORE);
	ck_assert_uint_eq(framer_feed(&f, "x\n", 2, &ev), 2);
	ck_assert_int_eq(ev, FRAMER_LINE);
	ck_assert_uint_eq(f.len, 1);
	framer_free(&f);
	free(in);
}
END_TEST

/* ------------------------------------------------------------------ main */

static Suite *framer_suite(void)
{
	Suite *s = suite_create("framer");
	TCase *tc;

	tc = tcase_create("lines");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_lines);
	tcase_add_test(tc, test_split_across_feeds);
	tcase_add_test(tc, test_feed_returns_consumed);
	tcase_add_test(tc, test_crlf);
	tcase_add_test(tc, test_control_bytes_dropped);
	tcase_add_test(tc, test_high_bytes_pass);
	suite_add_tcase(s, tc);

	tc = tcase_create("telnet");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_telnet_options);
	tcase_add_test(tc, test_telnet_commands);
	tcase_add_test(tc, test_telnet_subnegotiation);
	tcase_add_test(tc, test_telnet_iac_iac);
	suite_add_tcase(s, tc);

	tc = tcase_create("max_line");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_max_line_exact);
	tcase_add_test(tc, test_max_line_counts_raw_bytes);
	tcase_add_test(tc, test_too_long_discarded);
	tcase_add_test(tc, test_full_buffer);
	suite_add_tcase(s, tc);

	tc = tcase_create("finish");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_finish);
	tcase_add_test(tc, test_finish_calls);
	tcase_add_test(tc, test_init_free);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run_suite(framer_suite());
}
