/*
 * fuzz_chatcmd.c - chat_cmd_parse over any line.
 *
 * The line is given to the parser in a buffer of exactly its length, so a
 * read past it is caught by AddressSanitizer. Beyond not crashing: the
 * kind is a known one; name and text point inside the line; a name is
 * always a valid name; a plain message is the whole line; a usage answer
 * is a "! usage: " line; and the command word is matched regardless of
 * case (the same line with the word in upper case parses the same way).
 */
#include <ctype.h>
#include <string.h>

#include "fuzz.h"
#include "../../src/daemon/chatcmd.h"

/* Whether [p, p + n) lies inside [line, line + len). */
static int inside(const char *p, size_t n, const char *line, size_t len)
{
	return p >= line && n <= len && (size_t)(p - line) <= len - n;
}

static void check_cmd(const char *line, size_t len, const struct chat_cmd *c)
{
	FUZZ_CHECK(c->kind >= CMD_SAY && c->kind <= CMD_USAGE);
	if (c->kind == CMD_SAY) {
		FUZZ_CHECK(c->text == line && c->text_len == len);
		FUZZ_CHECK(len == 0 || line[0] != '/');
		return;
	}
	/* Every other kind is a command: the line starts with '/'. */
	FUZZ_CHECK(len > 0 && line[0] == '/');
	if (c->kind == CMD_USAGE) {
		FUZZ_CHECK(c->usage && !strncmp(c->usage, "! usage: ", 9));
		FUZZ_CHECK(c->usage[strlen(c->usage) - 1] == '\n');
		return;
	}
	FUZZ_CHECK(c->usage == NULL);
	if (c->name) {
		FUZZ_CHECK(inside(c->name, c->name_len, line, len));
		FUZZ_CHECK(chat_name_valid(c->name, c->name_len));
	}
	if (c->text)
		FUZZ_CHECK(inside(c->text, c->text_len, line, len));
	switch (c->kind) {
	case CMD_NICK: case CMD_JOIN:
		FUZZ_CHECK(c->name && c->text_len == 0);
		break;
	case CMD_MSG:
		FUZZ_CHECK(c->name && c->text_len > 0);
		break;
	case CMD_ME:
		FUZZ_CHECK(!c->name && c->text_len > 0);
		break;
	default:
		FUZZ_CHECK(!c->name);
	}
}

/* The line with its command word in upper case parses the same way. */
static void check_case(char *line, size_t len, const struct chat_cmd *c)
{
	struct chat_cmd u;

	for (size_t i = 1; i < len && line[i] != ' ' && line[i] != '\t'; i++)
		line[i] = (char)toupper((unsigned char)line[i]);
	chat_cmd_parse(line, len, &u);
	FUZZ_CHECK(u.kind == c->kind);
	FUZZ_CHECK(u.name_len == c->name_len && u.text_len == c->text_len);
	FUZZ_CHECK(u.usage == c->usage);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *line = malloc(size ? size : 1);
	struct chat_cmd c;

	FUZZ_CHECK(line);
	memcpy(line, data, size);
	chat_cmd_parse(line, size, &c);
	check_cmd(line, size, &c);
	if (c.kind != CMD_SAY)
		check_case(line, size, &c);
	free(line);
	return 0;
}
