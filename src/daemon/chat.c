/*
 * chat.c - chat mode: rooms, nicks, commands and fan-out.
 *
 * A client's own task reads its lines and does what they say, including
 * queueing messages into other clients' outboxes; each client's writer
 * task drains its outbox. A client whose outbox grows past send_buffer is
 * marked slow and cancelled, so the room never waits for it.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "chat.h"
#include "chatcmd.h"
#include "client.h"
#include "framer.h"
#include "log.h"
#include "outbox.h"
#include "server.h"

#define LOBBY "lobby"

struct chat_room {
	char name[CHAT_NAME_MAX + 1];
	struct chat_member *members;
	size_t n;
	struct chat_room *next;
};

struct chat_member {
	struct client *cl;
	struct chat *chat;
	char nick[CHAT_NAME_MAX + 1];
	struct chat_room *room;
	struct chat_member *rprev, *rnext;   /* in the room */
	struct chat_member *aprev, *anext;   /* in chat->members */
	struct outbox out;
	int slow;                            /* over send_buffer: leaving */
};

/* ---------------------------------------------------------------- rooms */

static struct chat_room *room_new(struct chat *c, const char *name, size_t n)
{
	struct chat_room *r = gb_calloc(1, sizeof *r), **pp = &c->rooms;

	if (!r)
		return NULL;
	memcpy(r->name, name, n);
	while (*pp)
		pp = &(*pp)->next; /* keep the order of creation */
	*pp = r;
	return r;
}

static struct chat_room *room_find(struct chat *c, const char *name, size_t n)
{
	for (struct chat_room *r = c->rooms; r; r = r->next)
		if (strlen(r->name) == n && strncasecmp(r->name, name, n) == 0)
			return r;
	return NULL;
}

static void room_add(struct chat_room *r, struct chat_member *m)
{
	m->room = r;
	m->rprev = NULL;
	m->rnext = r->members;
	if (r->members)
		r->members->rprev = m;
	r->members = m;
	r->n++;
}

/* Removes m from its room; a room other than the lobby goes when empty. */
static void room_remove(struct chat *c, struct chat_member *m)
{
	struct chat_room *r = m->room;

	if (m->rprev)
		m->rprev->rnext = m->rnext;
	else
		r->members = m->rnext;
	if (m->rnext)
		m->rnext->rprev = m->rprev;
	m->room = NULL;
	if (--r->n || r == c->rooms)
		return;
	struct chat_room **pp = &c->rooms;
	/* r is in the list, after the lobby, so the loop ends; cppcheck takes
	 * the first test (*pp is the lobby, which r is not) for every one. */
	/* cppcheck-suppress knownConditionTrueFalse */
	while (*pp != r)
		pp = &(*pp)->next;
	*pp = r->next;
	free(r);
}

int chat_init(struct chat *c)
{
	memset(c, 0, sizeof *c);
	return room_new(c, LOBBY, strlen(LOBBY)) ? 0 : -ENOMEM;
}

void chat_free(struct chat *c)
{
	while (c->rooms) {
		struct chat_room *r = c->rooms;
		c->rooms = r->next;
		free(r);
	}
}

/* ------------------------------------------------------------- members */

static struct chat_member *member_find(struct chat *c, const char *nick,
                                       size_t n)
{
	for (struct chat_member *m = c->members; m; m = m->anext)
		if (strlen(m->nick) == n && strncasecmp(m->nick, nick, n) == 0)
			return m;
	return NULL;
}

static void member_link(struct chat *c, struct chat_member *m)
{
	m->aprev = NULL;
	m->anext = c->members;
	if (c->members)
		c->members->aprev = m;
	c->members = m;
}

static void member_unlink(struct chat *c, struct chat_member *m)
{
	if (m->aprev)
		m->aprev->anext = m->anext;
	else
		c->members = m->anext;
	if (m->anext)
		m->anext->aprev = m->aprev;
}

static void guest_nick(struct chat *c, struct chat_member *m)
{
	do
		snprintf(m->nick, sizeof m->nick, "guest%lu", ++c->next_guest);
	while (member_find(c, m->nick, strlen(m->nick)));
}

/* ------------------------------------------------------------- delivery */

/* Whether m's socket takes nothing more now. A writer in the middle of a
 * flush is either waiting for that socket or only waiting for its turn:
 * with a long queue it yields when its I/O budget for the turn is spent.
 * Asked only past send_buffer, so the system call is rare. */
static int socket_full(const struct chat_member *m)
{
	struct pollfd p = { .fd = gb_sock_fd(m->cl->sock), .events = POLLOUT };

	return poll(&p, 1, 0) == 0;
}

/* Queues msg for m, unless that would pass send_buffer while m's writer
 * is stuck on a full socket: then m is too slow, and is cancelled instead
 * (its task tells the room it left). A writer that simply has not run yet
 * (the sender is still busy with the lines of one read), or that yielded
 * with the socket still taking data, is not slow. */
static void deliver(struct chat_member *m, struct outmsg *msg)
{
	size_t limit = m->cl->srv->conf.send_buffer;

	if (!msg || m->slow)
		return;
	if (limit && m->out.bytes + msg->len > limit && m->out.flushing &&
	    socket_full(m))
		log_warning("%s (%s) is too slow: %zu bytes waiting; "
		            "disconnecting it", m->cl->addr, m->nick, m->out.bytes);
	else if (outbox_push(&m->out, msg) < 0)
		log_warning("%s (%s): out of memory for its outbox; "
		            "disconnecting it", m->cl->addr, m->nick);
	else
		return;
	/* Either way, what it was sent is no longer complete: it goes. */
	m->slow = 1;
	gb_cancel(m->cl->task);
}

/* Sends msg to everyone in room r except skip (may be NULL); consumes the
 * caller's reference. */
static void broadcast(struct chat_room *r, const struct chat_member *skip,
                      struct outmsg *msg)
{
	for (struct chat_member *m = r->members; m; m = m->rnext)
		if (m != skip)
			deliver(m, msg);
	outmsg_unref(msg);
}

static void tell(struct chat_member *m, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void tell(struct chat_member *m, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	struct outmsg *msg = outmsg_printf("%s", buf);
	deliver(m, msg);
	outmsg_unref(msg);
}

/* ------------------------------------------------------------ commands */

static void cmd_nick(struct chat_member *m, const struct chat_cmd *cmd)
{
	struct chat_member *other = member_find(m->chat, cmd->name, cmd->name_len);
	char old[sizeof m->nick];

	if (other && other != m) {
		tell(m, "! nick %.*s is taken\n", (int)cmd->name_len, cmd->name);
		return;
	}
	memcpy(old, m->nick, sizeof old);
	memcpy(m->nick, cmd->name, cmd->name_len);
	m->nick[cmd->name_len] = '\0';
	broadcast(m->room, NULL, outmsg_printf("* %s is now known as %s\n", old,
	                                       m->nick));
	log_debug("%s: %s is now known as %s", m->cl->addr, old, m->nick);
}

static void cmd_join(struct chat_member *m, const struct chat_cmd *cmd)
{
	struct chat *c = m->chat;
	struct chat_room *r = room_find(c, cmd->name, cmd->name_len);

	if (r == m->room) {
		tell(m, "! you are already in #%s\n", r->name);
		return;
	}
	if (!r && !(r = room_new(c, cmd->name, cmd->name_len))) {
		tell(m, "! out of memory\n");
		return;
	}
	struct chat_room *old = m->room;
	broadcast(old, m, outmsg_printf("* %s left #%s\n", m->nick, old->name));
	room_remove(c, m);
	room_add(r, m);
	broadcast(r, NULL, outmsg_printf("* %s joined #%s\n", m->nick, r->name));
}

/* Appends to a growing line; returns 0 or -ENOMEM. */
static int append(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int append(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(*buf + *len, *cap - *len, fmt, ap);
		va_end(ap);
		if (n < 0)
			return -ENOMEM;
		if ((size_t)n < *cap - *len)
			break;
		size_t ncap = 2 * (*cap + (size_t)n);
		char *b = gb_realloc(*buf, ncap);
		if (!b)
			return -ENOMEM;
		*buf = b;
		*cap = ncap;
	}
	*len += (size_t)n;
	return 0;
}

static void cmd_rooms(struct chat_member *m)
{
	size_t len = 0, cap = 256;
	char *buf = gb_malloc(cap);
	int rc = buf ? append(&buf, &len, &cap, "* rooms:") : -ENOMEM;

	for (struct chat_room *r = m->chat->rooms; r && rc == 0; r = r->next)
		rc = append(&buf, &len, &cap, "%s #%s (%zu)",
		            r == m->chat->rooms ? "" : ",", r->name, r->n);
	if (rc == 0 && append(&buf, &len, &cap, "\n") == 0)
		tell(m, "%s", buf);
	free(buf);
}

static void cmd_who(struct chat_member *m)
{
	size_t len = 0, cap = 256;
	char *buf = gb_malloc(cap);
	int rc = buf ? append(&buf, &len, &cap, "* in #%s:", m->room->name)
	             : -ENOMEM;

	for (struct chat_member *o = m->room->members; o && rc == 0; o = o->rnext)
		rc = append(&buf, &len, &cap, " %s", o->nick);
	if (rc == 0 && append(&buf, &len, &cap, "\n") == 0) {
		struct outmsg *msg = outmsg_printf("%s", buf);
		deliver(m, msg);
		outmsg_unref(msg);
	}
	free(buf);
}

static void cmd_msg(struct chat_member *m, const struct chat_cmd *cmd)
{
	struct chat_member *to = member_find(m->chat, cmd->name, cmd->name_len);

	if (!to) {
		tell(m, "! no such nick: %.*s\n", (int)cmd->name_len, cmd->name);
		return;
	}
	struct outmsg *msg = outmsg_printf("*%s* %.*s\n", m->nick,
	                                   (int)cmd->text_len, cmd->text);
	deliver(to, msg);
	outmsg_unref(msg);
}

static const char help[] =
	"* commands:\n"
	"*   /nick NAME       change your nick\n"
	"*   /join ROOM       go to another room (created if new)\n"
	"*   /rooms           list the rooms\n"
	"*   /who             list who is in your room\n"
	"*   /me ACTION       tell the room what you do\n"
	"*   /msg NICK TEXT   a private message\n"
	"*   /quit [REASON]   leave\n"
	"*   /help            this list\n";

/* Does what one line says. Returns 1 when the client quits. */
static int handle_line(struct chat_member *m, const char *line, size_t len,
                       char *reason, size_t reason_size)
{
	struct chat_cmd cmd;

	chat_cmd_parse(line, len, &cmd);
	switch (cmd.kind) {
	case CMD_SAY:
		if (cmd.text_len)
			broadcast(m->room, m, outmsg_printf("<%s> %.*s\n", m->nick,
			          (int)cmd.text_len, cmd.text));
		break;
	case CMD_NICK: cmd_nick(m, &cmd); break;
	case CMD_JOIN: cmd_join(m, &cmd); break;
	case CMD_ROOMS: cmd_rooms(m); break;
	case CMD_WHO: cmd_who(m); break;
	case CMD_ME:
		broadcast(m->room, m, outmsg_printf("* %s %.*s\n", m->nick,
		          (int)cmd.text_len, cmd.text));
		break;
	case CMD_MSG: cmd_msg(m, &cmd); break;
	case CMD_QUIT:
		snprintf(reason, reason_size, "%.*s", (int)cmd.text_len, cmd.text);
		return 1;
	case CMD_HELP: tell(m, "%s", help); break;
	case CMD_UNKNOWN: tell(m, "! unknown command\n"); break;
	case CMD_USAGE: tell(m, "%s", cmd.usage); break;
	}
	return 0;
}

/* ---------------------------------------------------------------- serve */

enum leave { LEAVE_GONE, LEAVE_QUIT, LEAVE_SLOW };

/* Lets m's writer run before m's next line once m's outbox is past
 * send_buffer. Without it, deliver() cannot tell a full socket from a
 * writer that has not had its turn, and a client's own commands (/help
 * answers 70 times its size) would grow its outbox far past the limit:
 * the reader keeps the processor for a whole turn of its I/O budget
 * (dozens of reads). After the writer's turn it is either done or stuck on
 * the socket (flushing), and the next delivery past the limit drops the
 * client as too slow. (Messages from other clients' lines are held to
 * send_buffer only from their writer's turn on, as before.) */
static int let_writer_run(struct chat_member *m)
{
	size_t limit = m->cl->srv->conf.send_buffer;

	if (!limit || m->out.bytes <= limit || m->out.flushing)
		return 0;
	return gb_yield();
}

/* Reads and handles lines until the client leaves. */
static enum leave read_loop(struct chat_member *m, struct framer *f,
                            char *reason, size_t reason_size)
{
	struct client *cl = m->cl;
	char buf[4096];

	for (;;) {
		size_t before = gb_sock_pending(cl->sock);
		ssize_t n = gb_sock_recv(cl->sock, buf, sizeof buf,
		                         client_recv_deadline(cl));
		if (n == -ETIMEDOUT && !client_idle(cl, before))
			continue;
		if (n == -ETIMEDOUT)
			tell(m, "* idle timeout\n");
		if (n == 0 && framer_finish(f) &&
		    handle_line(m, f->line, f->len, reason, reason_size))
			return LEAVE_QUIT;
		if (n <= 0)
			return m->slow ? LEAVE_SLOW : LEAVE_GONE;
		for (const char *p = buf; n > 0;) {
			int ev;
			size_t used = framer_feed(f, p, (size_t)n, &ev);
			p += used;
			n -= (ssize_t)used;
			if (ev == FRAMER_TOO_LONG)
				tell(m, "! line too long\n");
			if (ev != FRAMER_LINE)
				continue;
			if (client_rate_wait(cl) < 0 || let_writer_run(m) < 0)
				return m->slow ? LEAVE_SLOW : LEAVE_GONE;
			if (handle_line(m, f->line, f->len, reason, reason_size))
				return LEAVE_QUIT;
		}
	}
}

static void announce_leave(struct chat_member *m, enum leave how,
                           const char *reason)
{
	struct outmsg *msg;

	if (how == LEAVE_QUIT && reason[0])
		msg = outmsg_printf("* %s quit (%s)\n", m->nick, reason);
	else if (how == LEAVE_QUIT)
		msg = outmsg_printf("* %s quit\n", m->nick);
	else if (how == LEAVE_SLOW)
		msg = outmsg_printf("* %s was disconnected (too slow)\n", m->nick);
	else
		msg = outmsg_printf("* %s left #%s\n", m->nick, m->room->name);
	broadcast(m->room, m, msg);
}

/* Sends what is still queued for m once its writer has stopped: within
 * the drain deadline at shutdown (with the goodbye), briefly otherwise,
 * not at all for a client too slow to take it. Shielded, since the
 * client's task may be cancelled. */
static void final_flush(struct chat_member *m)
{
	struct server *srv = m->cl->srv;
	int64_t deadline = srv->draining ? srv->drain_deadline : gb_after(GB_SEC(1));
	gb_scope s;

	if (m->slow)
		return;
	if (srv->draining) {
		struct outmsg *bye = outmsg_printf("* server shutting down\n");
		if (bye)
			outbox_push(&m->out, bye);
		outmsg_unref(bye);
	}
	gb_scope_enter(&s, deadline, GB_SHIELD);
	outbox_flush(&m->out, m->cl->sock, GB_NEVER);
	gb_scope_leave(&s);
}

static int welcome(struct chat_member *m)
{
	const char *w = m->cl->srv->conf.welcome;

	if (*w)
		tell(m, "%s\n", w);
	tell(m, "* you are %s in #%s, type /help for commands\n", m->nick,
	     m->room->name);
	broadcast(m->room, m, outmsg_printf("* %s joined #%s\n", m->nick,
	                                    m->room->name));
	return 0;
}

int chat_serve(struct client *cl)
{
	struct chat *c = &cl->srv->chat;
	struct chat_member m = { .cl = cl, .chat = c };
	struct outbox_writer w = { .o = &m.out, .sock = cl->sock };
	struct framer f;
	char reason[256] = "";
	gb_group *g;
	enum leave how = LEAVE_GONE;
	int started = 0;

	if (framer_init(&f, cl->srv->conf.max_line) < 0) {
		log_warning("%s: out of memory: closing the connection", cl->addr);
		return -ENOMEM;
	}
	outbox_init(&m.out);
	guest_nick(c, &m);
	member_link(c, &m);
	room_add(c->rooms, &m);
	if (gb_group_open(&g) == 0) {
		if (gb_spawn(g, outbox_writer, &w, NULL, NULL) == 0) {
			started = 1;
			welcome(&m);
			how = read_loop(&m, &f, reason, sizeof reason);
		}
		gb_group_close(g);
	}
	if (!started)
		log_warning("%s: out of memory for its writer task: closing the "
		            "connection", cl->addr);
	announce_leave(&m, how, reason);
	room_remove(c, &m);
	member_unlink(c, &m);
	final_flush(&m);
	outbox_free(&m.out);
	framer_free(&f);
	return 0;
}
