/*
 * bench/echo_epoll.c - reference echo server on raw epoll (issue 6): the
 * practical limit for one core, with no library and no abstraction.
 *
 *   echo_epoll -p port
 *
 * Listens on 127.0.0.1:port (0: any free port), prints "listening PORT"
 * on stdout when ready, exits on SIGTERM or SIGINT. The protocol is
 * giambiod's: the welcome line on accept, then "Got: " + the exact bytes
 * of every complete line the client sends ("\n" included).
 *
 * Single-threaded, non-blocking sockets, edge-triggered epoll. Per
 * connection: an input buffer (grown for long lines, up to 1 MiB) and an
 * output buffer for what the socket did not take. A readable socket is
 * read until it is drained: until EAGAIN, or until a read returns less
 * than it asked for (the socket's receive queue was empty then, and any
 * later data raises a new edge), which saves the extra read that would
 * only return EAGAIN. Every complete line queues "Got: " + line; the
 * output is sent once per batch, and EPOLLOUT is armed only while output
 * is pending. Reading stops while more than 1 MiB of output is pending and
 * resumes when it has gone out. Out of descriptors, the listener is
 * ignored until a connection closes.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"

#define WELCOME "Welcome to the server pal!\n"
#define PREFIX "Got: "
#define PLEN 5
#define IN_START 4096
#define IN_MAX (1 << 20)
#define OUT_MAX (1 << 20)
#define MAXEV 256

struct conn {
	int fd;
	int out_armed;  /* EPOLLOUT in the interest set */
	int blocked;    /* reading paused: too much output pending */
	char *in;
	size_t inlen, incap, scan; /* scan: no "\n" in in[0..scan) */
	char *out;
	size_t outoff, outlen, outcap;
};

static int epfd, lfd;
static int listen_paused; /* out of descriptors: not accepting */
static char listen_tag, signal_tag;

static void fail(const char *what)
{
	fprintf(stderr, "echo_epoll: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void listen_watch(int on)
{
	struct epoll_event ev = {.events = on ? EPOLLIN : 0, .data.ptr = &listen_tag};
	epoll_ctl(epfd, EPOLL_CTL_MOD, lfd, &ev);
	listen_paused = !on;
}

static void conn_close(struct conn *c)
{
	close(c->fd);
	free(c->in);
	free(c->out);
	free(c);
	if (listen_paused)
		listen_watch(1); /* a descriptor is free again */
}

static int out_reserve(struct conn *c, size_t n)
{
	if (c->outoff > 0 && c->outoff == c->outlen)
		c->outoff = c->outlen = 0;
	if (c->outlen + n <= c->outcap)
		return 0;
	if (c->outoff > 0) { /* compact first */
		memmove(c->out, c->out + c->outoff, c->outlen - c->outoff);
		c->outlen -= c->outoff;
		c->outoff = 0;
		if (c->outlen + n <= c->outcap)
			return 0;
	}
	size_t cap = c->outcap ? c->outcap : 4096;
	while (cap < c->outlen + n)
		cap *= 2;
	char *p = realloc(c->out, cap);
	if (!p)
		return -1;
	c->out = p;
	c->outcap = cap;
	return 0;
}

static int out_add(struct conn *c, const char *p, size_t n)
{
	if (out_reserve(c, n) < 0)
		return -1;
	memcpy(c->out + c->outlen, p, n);
	c->outlen += n;
	return 0;
}

/* Sends pending output; arms or disarms EPOLLOUT. -1: close it. */
static int conn_flush(struct conn *c)
{
	while (c->outoff < c->outlen) {
		ssize_t w = send(c->fd, c->out + c->outoff, c->outlen - c->outoff, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			return -1;
		}
		c->outoff += (size_t)w;
	}
	if (c->outoff == c->outlen)
		c->outoff = c->outlen = 0;
	int want = c->outlen > 0;
	if (want != c->out_armed) {
		struct epoll_event ev = {.events = EPOLLIN | EPOLLET | (want ? EPOLLOUT : 0),
					 .data.ptr = c};
		if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0)
			return -1;
		c->out_armed = want;
	}
	return 0;
}

/* Queues a reply for every complete line in the input buffer. */
static int conn_lines(struct conn *c)
{
	size_t start = 0;
	char *nl;
	while ((nl = memchr(c->in + c->scan, '\n', c->inlen - c->scan)) != NULL) {
		size_t end = (size_t)(nl - c->in) + 1;
		if (out_reserve(c, PLEN + end - start) < 0)
			return -1;
		memcpy(c->out + c->outlen, PREFIX, PLEN);
		memcpy(c->out + c->outlen + PLEN, c->in + start, end - start);
		c->outlen += PLEN + end - start;
		start = c->scan = end;
	}
	if (start > 0) {
		memmove(c->in, c->in + start, c->inlen - start);
		c->inlen -= start;
	}
	c->scan = c->inlen;
	return 0;
}

/* Reads until drained (or paused), answers, sends. -1: close it. */
static int conn_read(struct conn *c)
{
	int eof = 0;
	c->blocked = 0;
	for (;;) {
		if (c->outlen - c->outoff > OUT_MAX) {
			c->blocked = 1;
			break;
		}
		if (c->inlen == c->incap) {
			if (c->incap >= IN_MAX)
				return -1; /* a line too long */
			char *p = realloc(c->in, c->incap * 2);
			if (!p)
				return -1;
			c->in = p;
			c->incap *= 2;
		}
		size_t room = c->incap - c->inlen;
		ssize_t r = read(c->fd, c->in + c->inlen, room);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			return -1;
		}
		if (r == 0) {
			eof = 1;
			break;
		}
		c->inlen += (size_t)r;
		if (conn_lines(c) < 0)
			return -1;
		if ((size_t)r < room)
			break; /* drained */
	}
	if (conn_flush(c) < 0 || eof)
		return -1;
	return 0;
}

static void do_accept(void)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE) {
				/* Stop watching the listener until a connection
				 * closes, instead of spinning on it. */
				static int told;
				if (!told++)
					fprintf(stderr, "echo_epoll: accept: %s (paused)\n", strerror(errno));
				listen_watch(0);
			} else if (errno != EAGAIN) {
				fprintf(stderr, "echo_epoll: accept: %s\n", strerror(errno));
			}
			return;
		}
		struct conn *c = calloc(1, sizeof *c);
		if (c)
			c->in = malloc(IN_START);
		if (!c || !c->in) {
			if (c)
				free(c);
			close(fd);
			continue;
		}
		c->fd = fd;
		c->incap = IN_START;
		struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.ptr = c};
		if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ||
		    out_add(c, WELCOME, sizeof WELCOME - 1) < 0 || conn_flush(c) < 0)
			conn_close(c);
	}
}

int main(int argc, char **argv)
{
	int port = bench_port_arg(argc, argv, "echo_epoll");

	if (port < 0)
		return 2;
	bench_raise_nofile();
	sigset_t ss;
	sigemptyset(&ss);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGINT);
	sigprocmask(SIG_BLOCK, &ss, NULL);
	signal(SIGPIPE, SIG_IGN);
	int sfd = signalfd(-1, &ss, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sfd < 0)
		fail("signalfd");

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		fail("socket");
	int one = 1;
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof sa;
	if (bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0)
		fail("bind");
	if (listen(lfd, SOMAXCONN) < 0)
		fail("listen");
	if (getsockname(lfd, (struct sockaddr *)&sa, &len) < 0)
		fail("getsockname");

	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0)
		fail("epoll_create1");
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &listen_tag};
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev) < 0)
		fail("epoll_ctl");
	ev.data.ptr = &signal_tag;
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, sfd, &ev) < 0)
		fail("epoll_ctl");

	printf("listening %u\n", ntohs(sa.sin_port));
	fflush(stdout);

	struct epoll_event evs[MAXEV];
	for (;;) {
		int n = epoll_wait(epfd, evs, MAXEV, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			fail("epoll_wait");
		}
		for (int i = 0; i < n; i++) {
			void *p = evs[i].data.ptr;
			if (p == &signal_tag)
				return 0; /* the kernel closes the connections */
			if (p == &listen_tag) {
				do_accept();
				continue;
			}
			struct conn *c = p;
			uint32_t e = evs[i].events;
			int rc = 0;
			if (e & EPOLLOUT) {
				rc = conn_flush(c);
				if (rc == 0 && c->blocked && c->outlen - c->outoff <= OUT_MAX)
					rc = conn_read(c);
			}
			if (rc == 0 && (e & (EPOLLIN | EPOLLHUP | EPOLLERR)))
				rc = conn_read(c);
			if (rc < 0)
				conn_close(c);
		}
	}
}
