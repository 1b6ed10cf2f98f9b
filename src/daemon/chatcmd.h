/*
 * chatcmd.h - parsing one chat line into a command (pure: no I/O).
 */
#ifndef GIAMBIOD_CHATCMD_H
#define GIAMBIOD_CHATCMD_H

#include <stddef.h>

#define CHAT_NAME_MAX 32

enum chat_cmd_kind {
	CMD_SAY,        /* a plain message: text */
	CMD_NICK,       /* name */
	CMD_JOIN,       /* name, without a leading '#' */
	CMD_ROOMS,
	CMD_WHO,
	CMD_ME,         /* text */
	CMD_MSG,        /* name, text */
	CMD_QUIT,       /* text (may be empty) */
	CMD_HELP,
	CMD_UNKNOWN,
	CMD_USAGE,      /* a known command used wrongly: usage says how */
};

struct chat_cmd {
	enum chat_cmd_kind kind;
	const char *name;       /* points into the line */
	size_t name_len;
	const char *text;       /* points into the line */
	size_t text_len;
	const char *usage;      /* for CMD_USAGE: a "! usage: ..." line */
};

/* 1 if s[0..n) is 1-32 of [A-Za-z0-9_-]. */
int chat_name_valid(const char *s, size_t n);

/* Parses line[0..len) (no terminator). Empty lines are CMD_SAY with an
 * empty text. */
void chat_cmd_parse(const char *line, size_t len, struct chat_cmd *cmd);

#endif
