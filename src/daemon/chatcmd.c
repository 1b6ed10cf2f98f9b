/*
 * chatcmd.c - the chat command language: "/word arguments", or a plain
 * message.
 */
#include "config.h"

#include <string.h>
#include <strings.h>

#include "chatcmd.h"

int chat_name_valid(const char *s, size_t n)
{
	if (n == 0 || n > CHAT_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

/* Splits off the next space-separated word of [*p, end). */
static size_t next_word(const char **p, const char *end, const char **word)
{
	const char *s = *p;

	while (s < end && (*s == ' ' || *s == '\t'))
		s++;
	*word = s;
	while (s < end && *s != ' ' && *s != '\t')
		s++;
	*p = s;
	return (size_t)(s - *word);
}

/* The rest of the line after the spaces that follow a word. */
static void rest_of_line(const char *p, const char *end, struct chat_cmd *cmd)
{
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	cmd->text = p;
	cmd->text_len = (size_t)(end - p);
}

static void usage(struct chat_cmd *cmd, const char *text)
{
	cmd->kind = CMD_USAGE;
	cmd->usage = text;
}

struct command {
	const char *word;
	enum chat_cmd_kind kind;
	int takes_name;         /* a name argument, checked */
	int needs_text;         /* a non-empty rest of line */
	const char *usage;
};

static const struct command commands[] = {
	{ "nick", CMD_NICK, 1, 0,
	  "! usage: /nick NAME (1-32 letters, digits, _ or -)\n" },
	{ "join", CMD_JOIN, 1, 0,
	  "! usage: /join ROOM (1-32 letters, digits, _ or -; '#' optional)\n" },
	{ "rooms", CMD_ROOMS, 0, 0, NULL },
	{ "who", CMD_WHO, 0, 0, NULL },
	{ "me", CMD_ME, 0, 1, "! usage: /me ACTION\n" },
	{ "msg", CMD_MSG, 1, 1, "! usage: /msg NICK TEXT\n" },
	{ "quit", CMD_QUIT, 0, 0, NULL },
	{ "help", CMD_HELP, 0, 0, NULL },
};

void chat_cmd_parse(const char *line, size_t len, struct chat_cmd *cmd)
{
	const char *end = line + len, *p = line + 1, *word;
	size_t n;

	memset(cmd, 0, sizeof *cmd);
	if (len == 0 || line[0] != '/') {
		cmd->kind = CMD_SAY;
		cmd->text = line;
		cmd->text_len = len;
		return;
	}
	n = (size_t)(end - p);
	for (size_t i = 0; i < n; i++)
		if (p[i] == ' ' || p[i] == '\t')
			n = i;
	const struct command *c = NULL;
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (strlen(commands[i].word) == n &&
		    strncasecmp(commands[i].word, p, n) == 0)
			c = &commands[i];
	if (!c) {
		cmd->kind = CMD_UNKNOWN;
		return;
	}
	cmd->kind = c->kind;
	p += n;
	if (c->takes_name) {
		n = next_word(&p, end, &word);
		if (c->kind == CMD_JOIN && n && word[0] == '#') {
			word++;
			n--;
		}
		if (!chat_name_valid(word, n)) {
			usage(cmd, c->usage);
			return;
		}
		cmd->name = word;
		cmd->name_len = n;
	}
	rest_of_line(p, end, cmd);
	if ((c->needs_text && cmd->text_len == 0) ||
	    (c->takes_name && !c->needs_text && cmd->text_len))
		usage(cmd, c->usage); /* no text, or a name of two words */
}
