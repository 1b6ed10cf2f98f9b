/*
 * check_chatcmd.c - the chat command parser: plain text, every command
 * with its arguments (name and text pointing into the line), command
 * words in any case, unknown commands, usage errors with their "! usage:"
 * line, and the name rules at their boundaries.
 */
#include <stdio.h>
#include <string.h>

#include "testutil.h"
#include "../src/daemon/chatcmd.h"

/* ------------------------------------------------------------ helpers */

static struct chat_cmd parse(const char *line)
{
	struct chat_cmd c;

	memset(&c, 0xa5, sizeof c); /* the parser must set every field */
	chat_cmd_parse(line, strlen(line), &c);
	return c;
}

/* Asserts that the span [p, p + n) is want and lies inside line. */
static void span_is(const char *line, const char *p, size_t n,
                    const char *want, const char *what)
{
	size_t len = strlen(line);

	ck_assert_msg(n == strlen(want) && (n == 0 || memcmp(p, want, n) == 0),
	              "%s of \"%s\": got \"%.*s\", want \"%s\"", what, line,
	              (int)n, n ? p : "", want);
	if (n)
		ck_assert_msg(p >= line && p + n <= line + len,
		              "%s of \"%s\" does not point into the line", what, line);
}

static void expect(const char *line, enum chat_cmd_kind kind,
                   const char *name, const char *text)
{
	struct chat_cmd c = parse(line);

	ck_assert_msg(c.kind == kind, "\"%s\": kind %d, want %d", line,
	              (int)c.kind, (int)kind);
	if (name)
		span_is(line, c.name, c.name_len, name, "name");
	if (text)
		span_is(line, c.text, c.text_len, text, "text");
}

/* A known command used wrongly: CMD_USAGE with a "! usage: /WORD" line. */
static void usage_of(const char *line, const char *word)
{
	struct chat_cmd c = parse(line);
	char prefix[64];

	ck_assert_msg(c.kind == CMD_USAGE, "\"%s\": kind %d, want CMD_USAGE",
	              line, (int)c.kind);
	ck_assert_ptr_nonnull(c.usage);
	snprintf(prefix, sizeof prefix, "! usage: /%s ", word);
	ck_assert_msg(strncmp(c.usage, prefix, strlen(prefix)) == 0,
	              "\"%s\": usage \"%s\", want it to start \"%s\"", line,
	              c.usage, prefix);
	/* One line, ready to send. */
	size_t n = strlen(c.usage);
	ck_assert_msg(n > 0 && c.usage[n - 1] == '\n' &&
	              !memchr(c.usage, '\n', n - 1),
	              "\"%s\": usage is not one line: \"%s\"", line, c.usage);
}

/* --------------------------------------------------------------- say */

START_TEST(test_say)
{
	expect("hello world", CMD_SAY, NULL, "hello world");
	expect("  leading spaces kept", CMD_SAY, NULL, "  leading spaces kept");
	expect("", CMD_SAY, NULL, "");
	expect("not /a command", CMD_SAY, NULL, "not /a command");
	expect(" /nick bob", CMD_SAY, NULL, " /nick bob");
	expect("h\xc3\xa9llo", CMD_SAY, NULL, "h\xc3\xa9llo");

	/* The text is the line itself, and only len bytes of it. */
	const char *line = "hi there\nXX";
	struct chat_cmd c;
	chat_cmd_parse(line, 8, &c);
	ck_assert_int_eq(c.kind, CMD_SAY);
	ck_assert_ptr_eq(c.text, line);
	ck_assert_uint_eq(c.text_len, 8);
}
END_TEST

/* ---------------------------------------------------------- commands */

START_TEST(test_nick)
{
	expect("/nick bob", CMD_NICK, "bob", NULL);
	expect("/nick   bob", CMD_NICK, "bob", NULL);
	expect("/nick bob  ", CMD_NICK, "bob", NULL);
	expect("/nick\tbob", CMD_NICK, "bob", NULL);
	expect("/nick Bob_the-2nd", CMD_NICK, "Bob_the-2nd", NULL);

	struct chat_cmd c = parse("/nick bob");
	ck_assert_uint_eq(c.text_len, 0);
}
END_TEST

START_TEST(test_join)
{
	expect("/join #games", CMD_JOIN, "games", NULL);
	expect("/join games", CMD_JOIN, "games", NULL);
	expect("/join   #lobby  ", CMD_JOIN, "lobby", NULL);

	/* The name points after the '#'. */
	const char *line = "/join #games";
	struct chat_cmd c;
	chat_cmd_parse(line, strlen(line), &c);
	ck_assert_ptr_eq(c.name, line + 7);
	ck_assert_uint_eq(c.name_len, 5);
}
END_TEST

START_TEST(test_simple_commands)
{
	expect("/rooms", CMD_ROOMS, NULL, NULL);
	expect("/who", CMD_WHO, NULL, NULL);
	expect("/help", CMD_HELP, NULL, NULL);
	expect("/quit", CMD_QUIT, NULL, "");
	expect("/quit bye now", CMD_QUIT, NULL, "bye now");
	expect("/quit    gone  fishing", CMD_QUIT, NULL, "gone  fishing");
}
END_TEST

START_TEST(test_me)
{
	expect("/me waves", CMD_ME, NULL, "waves");
	expect("/me waves at   everyone", CMD_ME, NULL, "waves at   everyone");
	expect("/me  \tsmiles", CMD_ME, NULL, "smiles");
}
END_TEST

START_TEST(test_msg)
{
	expect("/msg bob hi there", CMD_MSG, "bob", "hi there");
	expect("/msg   bob    hi  there", CMD_MSG, "bob", "hi  there");
	expect("/msg bob x", CMD_MSG, "bob", "x");

	const char *line = "/msg bob hi there";
	struct chat_cmd c;
	chat_cmd_parse(line, strlen(line), &c);
	ck_assert_ptr_eq(c.name, line + 5);
	ck_assert_ptr_eq(c.text, line + 9);
	ck_assert_uint_eq(c.text_len, 8);
}
END_TEST

/* Command words are case-insensitive; arguments keep their case. */
START_TEST(test_case_insensitive)
{
	expect("/NICK Bob", CMD_NICK, "Bob", NULL);
	expect("/Nick bob", CMD_NICK, "bob", NULL);
	expect("/JOIN #Games", CMD_JOIN, "Games", NULL);
	expect("/Rooms", CMD_ROOMS, NULL, NULL);
	expect("/WHO", CMD_WHO, NULL, NULL);
	expect("/ME Waves", CMD_ME, NULL, "Waves");
	expect("/mSg bob Hi", CMD_MSG, "bob", "Hi");
	expect("/QUIT Bye", CMD_QUIT, NULL, "Bye");
	expect("/HeLp", CMD_HELP, NULL, NULL);
}
END_TEST

START_TEST(test_unknown)
{
	expect("/bogus", CMD_UNKNOWN, NULL, NULL);
	expect("/bogus with args", CMD_UNKNOWN, NULL, NULL);
	expect("/", CMD_UNKNOWN, NULL, NULL);
	expect("/ nick bob", CMD_UNKNOWN, NULL, NULL);
	/* Neither prefixes nor extensions of a command word. */
	expect("/ni bob", CMD_UNKNOWN, NULL, NULL);
	expect("/nickname bob", CMD_UNKNOWN, NULL, NULL);
	expect("/whois", CMD_UNKNOWN, NULL, NULL);
	expect("/q", CMD_UNKNOWN, NULL, NULL);
	expect("//nick bob", CMD_UNKNOWN, NULL, NULL);
	expect("/h\xc3\xa9lp", CMD_UNKNOWN, NULL, NULL);
}
END_TEST

/* ------------------------------------------------------------- usage */

START_TEST(test_usage_nick)
{
	char line[64];

	usage_of("/nick", "nick");
	usage_of("/nick   ", "nick");
	/* 33 characters. */
	strcpy(line, "/nick ");
	memset(line + 6, 'a', 33);
	line[39] = '\0';
	usage_of(line, "nick");
	/* 32 are fine. */
	line[38] = '\0';
	expect(line, CMD_NICK, line + 6, NULL);
	/* Bad characters, two words. */
	usage_of("/nick bo b!", "nick");
	usage_of("/nick bob!", "nick");
	usage_of("/nick \xc3\xa9", "nick");
	usage_of("/nick b.o", "nick");
	usage_of("/nick #bob", "nick");
	usage_of("/nick two words", "nick");
}
END_TEST

START_TEST(test_usage_join)
{
	char line[64];

	usage_of("/join", "join");
	usage_of("/join  ", "join");
	usage_of("/join #", "join");
	usage_of("/join ##games", "join");
	usage_of("/join games room", "join");
	usage_of("/join g@mes", "join");
	strcpy(line, "/join #");
	memset(line + 7, 'r', 33);
	line[40] = '\0';
	usage_of(line, "join");
	line[39] = '\0';
	expect(line, CMD_JOIN, line + 7, NULL);
}
END_TEST

START_TEST(test_usage_me_msg)
{
	usage_of("/me", "me");
	usage_of("/me   ", "me");
	usage_of("/msg", "msg");
	usage_of("/msg bob", "msg");
	usage_of("/msg bob   ", "msg");
	usage_of("/msg bo!b hi", "msg");
	usage_of("/msg \xc3\xa9 hi", "msg");
	usage_of("/MSG bob", "msg");
}
END_TEST

/* ---------------------------------------------------------- names */

START_TEST(test_name_valid)
{
	char name[40];

	ck_assert_int_eq(chat_name_valid("a", 1), 1);
	ck_assert_int_eq(chat_name_valid("", 0), 0);
	memset(name, 'n', sizeof name);
	ck_assert_int_eq(chat_name_valid(name, 32), 1);
	ck_assert_int_eq(chat_name_valid(name, 33), 0);
	ck_assert_int_eq(chat_name_valid(name, 31), 1);
	ck_assert_int_eq(CHAT_NAME_MAX, 32);
	ck_assert_int_eq(chat_name_valid("azAZ09_-", 8), 1);
	ck_assert_int_eq(chat_name_valid("-", 1), 1);
	ck_assert_int_eq(chat_name_valid("_", 1), 1);
	/* Only n bytes are looked at. */
	ck_assert_int_eq(chat_name_valid("bob!", 3), 1);
	ck_assert_int_eq(chat_name_valid("bob!", 4), 0);

	/* Every byte outside [A-Za-z0-9_-] is refused, alone and inside. */
	for (int b = 0; b < 256; b++) {
		char one = (char)b, mid[3] = { 'a', (char)b, 'z' };
		int want = (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') ||
		           (b >= '0' && b <= '9') || b == '_' || b == '-';
		ck_assert_msg(chat_name_valid(&one, 1) == want, "byte 0x%02x", b);
		ck_assert_msg(chat_name_valid(mid, 3) == want, "byte 0x%02x", b);
	}
}
END_TEST

/* ------------------------------------------------------------------ main */

static Suite *chatcmd_suite(void)
{
	Suite *s = suite_create("chatcmd");
	TCase *tc;

	tc = tcase_create("commands");
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_say);
	tcase_add_test(tc, test_nick);
	tcase_add_test(tc, test_join);
	tcase_add_test(tc, test_simple_commands);
	tcase_add_test(tc, test_me);
	tcase_add_test(tc, test_msg);
	tcase_add_test(tc, test_case_insensitive);
	tcase_add_test(tc, test_unknown);
	suite_add_tcase(s, tc);

	tc = tcase_create("usage");
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_usage_nick);
	tcase_add_test(tc, test_usage_join);
	tcase_add_test(tc, test_usage_me_msg);
	tcase_add_test(tc, test_name_valid);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run_suite(chatcmd_suite());
}
