/*
 * bench/echo_libevent.c - reference echo server on libevent bufferevents
 * (issue 6): what a C programmer would write without giambiod's scheduler.
 *
 *   echo_libevent -p port
 *
 * Listens on 127.0.0.1:port (0: any free port), prints "listening PORT"
 * on stdout when ready, exits on SIGTERM or SIGINT. The protocol is
 * giambiod's: the welcome line on accept, then "Got: " + the exact bytes
 * of every complete line the client sends ("\n" included).
 *
 * Single-threaded: one event_base, an evconnlistener, one bufferevent per
 * connection. The read callback finds each complete line with
 * evbuffer_search_eol (evbuffer_readln would drop the terminator) and
 * moves it, "\n" included, from the input to the output buffer after
 * "Got: ". A line longer than 1 MiB closes the connection; reading pauses
 * while more than 1 MiB of output is pending (a write watermark). The one
 * setting changed from libevent's defaults is the largest single write
 * (see on_accept). Out of descriptors, the listener is disabled until a
 * connection closes.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "bench.h"

#define WELCOME "Welcome to the server pal!\n"
#define LINE_MAX_BYTES (1 << 20)
#define OUT_MAX (1 << 20)

static struct evconnlistener *listener;
static int listen_paused; /* out of descriptors: not accepting */

static void on_read(struct bufferevent *bev, void *arg);

static void conn_free(struct bufferevent *bev)
{
	bufferevent_free(bev);
	if (listen_paused) { /* a descriptor is free again */
		evconnlistener_enable(listener);
		listen_paused = 0;
	}
}

static void on_write(struct bufferevent *bev, void *arg)
{
	(void)arg;
	/* Output drained below the watermark: resume reading. */
	if (!(bufferevent_get_enabled(bev) & EV_READ)) {
		bufferevent_enable(bev, EV_READ);
		on_read(bev, NULL);
	}
}

static void on_read(struct bufferevent *bev, void *arg)
{
	(void)arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer *out = bufferevent_get_output(bev);
	for (;;) {
		if (evbuffer_get_length(out) > OUT_MAX) {
			bufferevent_disable(bev, EV_READ);
			return;
		}
		size_t eol_len = 0;
		struct evbuffer_ptr eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_LF);
		if (eol.pos < 0)
			break;
		evbuffer_add(out, "Got: ", 5);
		evbuffer_remove_buffer(in, out, (size_t)eol.pos + eol_len);
	}
	if (evbuffer_get_length(in) > LINE_MAX_BYTES)
		conn_free(bev);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	(void)arg;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		conn_free(bev);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
		      int salen, void *arg)
{
	(void)sa;
	(void)salen;
	(void)arg;
	struct event_base *base = evconnlistener_get_base(l);
	struct bufferevent *bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!bev) {
		close(fd);
		return;
	}
	bufferevent_setcb(bev, on_read, on_write, on_event, NULL);
	bufferevent_setwatermark(bev, EV_WRITE, OUT_MAX / 2, 0);
	/* libevent writes at most 16 KiB per call by default: a 16 KiB line's
	 * reply would go out as 16384 bytes and then 5, and Nagle would hold
	 * the 5 until the peer's delayed ACK (40 ms). One write per batch, as
	 * the other servers do (none of them sets TCP_NODELAY). */
	bufferevent_set_max_single_write(bev, OUT_MAX);
	bufferevent_write(bev, WELCOME, sizeof WELCOME - 1);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static void on_accept_error(struct evconnlistener *l, void *arg)
{
	(void)arg;
	int err = EVUTIL_SOCKET_ERROR();
	if (err == EMFILE || err == ENFILE) {
		/* Stop accepting until a connection closes, instead of
		 * spinning on the listener. */
		static int told;
		if (!told++)
			fprintf(stderr, "echo_libevent: accept: %s (paused)\n", strerror(err));
		evconnlistener_disable(l);
		listen_paused = 1;
		return;
	}
	fprintf(stderr, "echo_libevent: accept: %s\n", strerror(err));
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	event_base_loopbreak(arg);
}

int main(int argc, char **argv)
{
	int port = bench_port_arg(argc, argv, "echo_libevent");

	if (port < 0)
		return 2;
	bench_raise_nofile();
	signal(SIGPIPE, SIG_IGN);

	struct event_base *base = event_base_new();
	if (!base) {
		fprintf(stderr, "echo_libevent: event_base_new failed\n");
		return 1;
	}
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	struct evconnlistener *l = listener = evconnlistener_new_bind(
		base, on_accept, NULL, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, SOMAXCONN,
		(struct sockaddr *)&sa, sizeof sa);
	if (!l) {
		fprintf(stderr, "echo_libevent: listen on 127.0.0.1:%d: %s\n", port, strerror(errno));
		return 1;
	}
	evconnlistener_set_error_cb(l, on_accept_error);
	socklen_t len = sizeof sa;
	if (getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&sa, &len) < 0) {
		fprintf(stderr, "echo_libevent: getsockname: %s\n", strerror(errno));
		return 1;
	}
	struct event *sigterm = evsignal_new(base, SIGTERM, on_signal, base);
	struct event *sigint = evsignal_new(base, SIGINT, on_signal, base);
	if (!sigterm || !sigint || event_add(sigterm, NULL) < 0 || event_add(sigint, NULL) < 0) {
		fprintf(stderr, "echo_libevent: cannot watch signals\n");
		return 1;
	}

	printf("listening %u\n", ntohs(sa.sin_port));
	fflush(stdout);
	event_base_dispatch(base);

	event_free(sigterm);
	event_free(sigint);
	evconnlistener_free(l);
	event_base_free(base);
	return 0;
}
