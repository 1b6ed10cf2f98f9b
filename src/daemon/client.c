/*
 * client.c - a client's life in its task, and echo mode (giambio's
 * README example): the welcome line, then "Got: " + each line back.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "log.h"
#include "server.h"

/* How long a notice to a leaving client (idle timeout) may take. */
#define NOTICE_TIMEOUT GB_SEC(1)

static const char got[] = "Got: ";

int64_t client_recv_deadline(const struct client *cl)
{
	int64_t idle = cl->srv->conf.idle_timeout;

	return idle ? gb_after(idle) : GB_NEVER;
}

int client_idle(struct client *cl, size_t pending_before)
{
	return gb_sock_pending(cl->sock) == pending_before;
}

/*
 * Generic cell rate algorithm: tat is the theoretical arrival time of the
 * next line. A line may come up to (burst - 1) intervals early; anything
 * earlier waits, and while it waits nothing is read from the client.
 * rate_allowed gives the time the next line may be taken (only with a
 * rate set); taking one moves tat on by an interval.
 */
static int64_t rate_interval(const struct client *cl)
{
	return GB_SEC(1) / cl->srv->conf.rate;
}

static int64_t rate_allowed(struct client *cl, int64_t now)
{
	const struct conf *c = &cl->srv->conf;

	if (cl->rate_tat < now)
		cl->rate_tat = now;
	return cl->rate_tat -
	       (int64_t)(c->rate_burst ? c->rate_burst - 1 : 0) * rate_interval(cl);
}

int client_rate_wait(struct client *cl)
{
	int64_t now, allowed;

	if (!cl->srv->conf.rate)
		return 0;
	now = gb_now();
	allowed = rate_allowed(cl, now);
	if (allowed > now) {
		int rc = gb_sleep(allowed);
		if (rc)
			return rc;
	}
	cl->rate_tat += rate_interval(cl);
	return 0;
}

/* Whether a line may be taken now, without waiting (it is not taken). */
static int rate_ready(struct client *cl)
{
	int64_t now;

	if (!cl->srv->conf.rate)
		return 1;
	now = gb_now();
	return rate_allowed(cl, now) <= now;
}

static void rate_take(struct client *cl)
{
	if (cl->srv->conf.rate)
		cl->rate_tat += rate_interval(cl);
}

void client_notice(struct client *cl, const char *text)
{
	gb_sock_send_all(cl->sock, text, strlen(text), NULL,
	                 gb_after(NOTICE_TIMEOUT));
}

void client_farewell(struct client *cl, const struct iovec *rest, int n)
{
	static const char bye[] = "* server shutting down\n";
	gb_scope s;

	gb_scope_enter(&s, cl->srv->drain_deadline, GB_SHIELD);
	if (n == 0 || gb_sock_sendv_all(cl->sock, rest, n, NULL, GB_NEVER) == 0)
		gb_sock_send_all(cl->sock, bye, sizeof bye - 1, NULL, GB_NEVER);
	gb_scope_leave(&s);
}

static void log_data(const char *fmt, const char *line, size_t n,
                     const char *addr)
{
	char esc[1024];

	log_escape(esc, sizeof esc, line, n);
	log_msg(LOG_DEBUG, fmt, esc, addr);
}

/* Lines answered with one send, each "Got: " + the line. */
#define ECHO_BATCH (GB_IOV_MAX / 2)

/* Sends "Got: " + line for each of the n lines, in one send when it can.
 * An interrupted reply is finished in the farewell when the interruption
 * is the shutdown. A reply the client does not take within idle_timeout
 * ends it: a client that stopped reading (and so, with its buffers full,
 * sending) would otherwise hold its place for ever, since the idle
 * timeout only runs while the server waits for input. */
static int echo_reply(struct client *cl, const char *const *line,
                      const size_t *len, int n)
{
	struct iovec iov[GB_IOV_MAX], *v = iov;
	size_t sent = 0;

	for (int i = 0; i < n; i++) {
		*v++ = (struct iovec){ .iov_base = (void *)got,
		                       .iov_len = sizeof got - 1 };
		*v++ = (struct iovec){ .iov_base = (void *)line[i],
		                       .iov_len = len[i] };
	}
	int rc = gb_sock_sendv_all(cl->sock, iov, 2 * n, &sent,
	                           client_recv_deadline(cl));

	if (rc == -ECANCELED && cl->srv->draining) {
		struct iovec *p = iov;
		int cnt = 2 * n;
		gb_iov_advance(&p, &cnt, sent);
		client_farewell(cl, p, cnt);
	}
	return rc;
}

static int send_welcome(struct client *cl)
{
	const char *w = cl->srv->conf.welcome;
	struct iovec iov[2] = {
		{ .iov_base = (void *)w, .iov_len = strlen(w) },
		{ .iov_base = (void *)"\n", .iov_len = 1 },
	};

	if (!*w)
		return 0;
	return gb_sock_sendv_all(cl->sock, iov, 2, NULL, GB_NEVER);
}

/* Receives the next line; 0 at the end, < 0 when the client must go (it
 * has then been told why, if there is anything to tell). */
static ssize_t echo_recv(struct client *cl, const char **line)
{
	for (;;) {
		size_t before = gb_sock_pending(cl->sock);
		ssize_t n = gb_sock_recv_line(cl->sock, cl->srv->conf.max_line,
		                              line, client_recv_deadline(cl));

		if (n != -ETIMEDOUT)
			return n;
		if (client_idle(cl, before)) {
			client_notice(cl, "* idle timeout\n");
			return n;
		}
	}
}

/* Takes more lines the client sent together with line[0] (already in the
 * buffer, and within the rate), up to ECHO_BATCH in all. Returns how many
 * lines line[] holds. */
static int echo_more(struct client *cl, const char **line, size_t *len)
{
	int n = 1;

	if (!gb_sock_pending(cl->sock)) /* the usual case: one line per read */
		return 1;
	while (n < ECHO_BATCH && rate_ready(cl)) {
		ssize_t m = gb_sock_next_line(cl->sock, cl->srv->conf.max_line,
		                              &line[n]);
		if (m <= 0)
			break;
		rate_take(cl);
		len[n++] = (size_t)m;
	}
	return n;
}

static void echo_log(const char *fmt, struct client *cl,
                     const char *const *line, const size_t *len, int n)
{
	if (log_enabled(LOG_DEBUG))
		for (int i = 0; i < n; i++)
			log_data(fmt, line[i], len[i], cl->addr);
}

static void echo_serve(struct client *cl)
{
	const char *line[ECHO_BATCH];
	size_t len[ECHO_BATCH];
	ssize_t n = 0;

	if (send_welcome(cl) < 0)
		goto out;
	while (client_rate_wait(cl) == 0 && (n = echo_recv(cl, &line[0])) > 0) {
		len[0] = (size_t)n;
		int k = echo_more(cl, line, len);

		echo_log("Got: '%s' from %s", cl, line, len, k);
		if (echo_reply(cl, line, len, k) < 0)
			return;
		echo_log("Echoed back '%s' to %s", cl, line, len, k);
	}
	if (n == -ENOMEM)
		log_warning("%s: out of memory: closing the connection", cl->addr);
out:
	if (cl->srv->draining)
		client_farewell(cl, NULL, 0);
}

static void client_free(struct client *cl)
{
	struct server *srv = cl->srv;

	gb_sock_close(cl->sock);
	iptable_dec(&srv->per_ip, (struct sockaddr *)&cl->peer);
	srv->nclients--;
	server_status_changed(srv);
	free(cl);
}

int client_main(void *arg)
{
	struct client *cl = arg;

	cl->task = gb_self();
	log_info("%s connected", cl->addr);
	if (cl->mode == MODE_CHAT)
		chat_serve(cl);
	else
		echo_serve(cl);
	log_info("Connection from %s closed", cl->addr);
	client_free(cl);
	return 0;
}
