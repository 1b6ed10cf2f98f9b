/*
 * bench/chatgen.c - chat fan-out load: one sender, many receivers in one
 * room, for giambiod's chat mode and any server that relays each line to
 * the other clients as "<name> line" (ncat --chat does).
 *
 *   chatgen [-H host] -p port [-r receivers] [-S slow] [-s size]
 *           [-W window] [-t seconds] [-w warmup_seconds]
 *
 * Opens the receivers (default 100) and the slow receivers (default 0:
 * clients that never read, with a small receive buffer), waits until the
 * join notices have died down (no byte for 0.5 s, at most 60 s), then
 * connects the sender. The sender writes lines "m SEQ T_NS filler\n" of
 * size bytes (default 64) and keeps at most window of them (default 8)
 * not yet delivered to every live receiver. Receivers parse every line
 * relaying a sender's line and check that SEQ comes in order (a gap counts as
 * lost). Deliveries completing in [warmup, warmup + seconds) are counted
 * (defaults 1 and 5; a line "WARMUP" is printed when the warmup starts):
 * messages/s, deliveries/s, and delivery latency from
 * the sender's write to each receiver's read (p50/p99/p99.9). A receiver
 * the server closes is an error and stops counting as live. Last line:
 *   RESULT receivers=R slow=S size=B secs=... msgs=... msgs_per_s=...
 *          deliveries_per_s=... p50_us=... p99_us=... p999_us=...
 *          lost=... errors=...
 * Exit status: 0 when the run took place, 1 when set-up failed, 2 for a
 * usage error.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"

#define MAXEV 256
#define LINE_MAX_ 4096
#define RING 4096               /* > window: per-sequence delivery counts */

struct rcv {
	int fd;
	int live;
	uint64_t next_seq;      /* the sequence number expected next */
	size_t len;             /* bytes of an incomplete line in buf */
	char buf[LINE_MAX_];
};

static struct sockaddr_in dst;
static int epfd, sender;
static struct rcv *rcvs;
static size_t nrcv, live;
static uint32_t delivered[RING];
static uint64_t sent_seq, done_seq; /* sent: next to send; done: all below
                                     * are delivered to every live receiver */
static uint64_t win_start, win_end, msgs, deliveries, lost, errors;

static void die(const char *what)
{
	fprintf(stderr, "chatgen: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* A blocking connect from 127.0.0.(1 + n % 250), so ports do not run out. */
static int connect_one(unsigned n, int rcvbuf)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in src = { .sin_family = AF_INET };

	if (fd < 0)
		die("socket");
	src.sin_addr.s_addr = htonl(0x7f000001u + n % 250);
	if (rcvbuf)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
	if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0 ||
	    connect(fd, (struct sockaddr *)&dst, sizeof dst) < 0)
		die("connect");
	return fd;
}

static void watch(int fd, uint64_t id)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = id };

	if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		die("epoll_ctl");
}

/* Every live receiver has message seq: move the window on. */
static void advance(void)
{
	while (done_seq < sent_seq && delivered[done_seq % RING] >= live) {
		delivered[done_seq % RING] = 0;
		done_seq++;
	}
}

/* A relayed line is "<name> m SEQ T ..."; ncat --chat prefixes only the
 * first line of what it read at once, so a bare "m SEQ T ..." counts too.
 * line is NUL-terminated. */
static void on_line(struct rcv *r, const char *line, uint64_t now)
{
	const char *p = strncmp(line, "m ", 2) == 0 ? line : strstr(line, "> m ");
	char *end;
	uint64_t seq, t;

	if (!p)
		return;
	p += p == line ? 2 : 4;
	seq = strtoull(p, &end, 10);
	if (end == p || *end != ' ')
		return;
	t = strtoull(end + 1, &end, 10);
	if (seq >= sent_seq || seq < r->next_seq)
		return;
	lost += seq - r->next_seq;
	r->next_seq = seq + 1;
	delivered[seq % RING]++;
	if (now >= win_start && now < win_end) {
		deliveries++;
		hist_add((now - t) / 1000);
	}
}

/* Adds bytes to the receiver's incomplete line (cut at its size). */
static void rcv_keep(struct rcv *r, const char *p, size_t n)
{
	if (n > sizeof r->buf - 1 - r->len)
		n = sizeof r->buf - 1 - r->len;
	memcpy(r->buf + r->len, p, n);
	r->len += n;
}

static void rcv_gone(struct rcv *r)
{
	epoll_ctl(epfd, EPOLL_CTL_DEL, r->fd, NULL);
	close(r->fd);
	r->live = 0;
	live--;
	errors++;
}

/* Reads what is there; returns the bytes read (0 when none or closed). */
static size_t rcv_read(struct rcv *r, uint64_t now)
{
	char chunk[65536];
	ssize_t n = recv(r->fd, chunk, sizeof chunk - 1, MSG_DONTWAIT);

	if (n <= 0) {
		if (n == 0 || (errno != EAGAIN && errno != EINTR))
			rcv_gone(r);
		return 0;
	}
	chunk[n] = 0;
	for (char *p = chunk, *end = chunk + n; p < end;) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl) {
			rcv_keep(r, p, (size_t)(end - p));
			break;
		}
		*nl = 0;
		if (r->len) {
			rcv_keep(r, p, (size_t)(nl - p));
			r->buf[r->len] = 0;
			on_line(r, r->buf, now);
			r->len = 0;
		} else {
			on_line(r, p, now);
		}
		p = nl + 1;
	}
	return (size_t)n;
}

/* Reads what the sender was sent (notices) and drops it. */
static void sender_drain(void)
{
	char chunk[4096];

	while (recv(sender, chunk, sizeof chunk, MSG_DONTWAIT) > 0)
		;
}

static void readable(uint64_t id, uint64_t now)
{
	if (id < nrcv && rcvs[id].live)
		rcv_read(&rcvs[id], now);
	else if (id == nrcv)
		sender_drain();
}

/* Reads and discards until nothing came for quiet_ms (or limit_ms). */
static void settle(int quiet_ms, int limit_ms)
{
	struct epoll_event ev[MAXEV];
	uint64_t end = now_ns() + (uint64_t)limit_ms * 1000000u;

	while (now_ns() < end) {
		int n = epoll_wait(epfd, ev, MAXEV, quiet_ms);
		if (n <= 0)
			return;
		for (int i = 0; i < n; i++)
			readable(ev[i].data.u64, 0);
	}
}

static void send_next(size_t size)
{
	char line[LINE_MAX_];
	int k = snprintf(line, sizeof line, "m %" PRIu64 " %" PRIu64 " ",
	                 sent_seq, now_ns());

	memset(line + k, 'x', size - 1 - (size_t)k);
	line[size - 1] = '\n';
	sent_seq++;
	for (size_t off = 0; off < size;) {
		ssize_t n = send(sender, line + off, size - off, MSG_NOSIGNAL);
		if (n < 0)
			die("send");
		off += (size_t)n;
	}
	if (now_ns() >= win_start && now_ns() < win_end)
		msgs++;
}

static void run(size_t size, unsigned window)
{
	struct epoll_event ev[MAXEV];

	while (now_ns() < win_end && live > 0) {
		while (sent_seq - done_seq < window)
			send_next(size);
		int n = epoll_wait(epfd, ev, MAXEV, 1000);
		uint64_t now = now_ns();
		for (int i = 0; i < n; i++)
			readable(ev[i].data.u64, now);
		advance();
	}
}

static long num(const char *s, long lo, long hi)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (*end || v < lo || v > hi) {
		fprintf(stderr, "chatgen: bad number '%s' (%ld..%ld)\n", s, lo, hi);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	const char *host = "127.0.0.1";
	long port = -1, nslow = 0, size = 64, window = 8, secs = 5, warm = 1;
	int opt;

	nrcv = 100;
	while ((opt = getopt(argc, argv, "H:p:r:S:s:W:t:w:")) != -1) {
		switch (opt) {
		case 'H': host = optarg; break;
		case 'p': port = num(optarg, 1, 65535); break;
		case 'r': nrcv = (size_t)num(optarg, 1, 100000); break;
		case 'S': nslow = num(optarg, 0, 100000); break;
		case 's': size = num(optarg, 48, LINE_MAX_ - 256); break;
		case 'W': window = num(optarg, 1, RING / 2); break;
		case 't': secs = num(optarg, 1, 3600); break;
		case 'w': warm = num(optarg, 0, 3600); break;
		default: port = -1; optind = argc; break;
		}
	}
	if (port < 0 || optind != argc) {
		fprintf(stderr, "usage: chatgen [-H host] -p port [-r receivers] "
		        "[-S slow] [-s size] [-W window] [-t secs] [-w warmup]\n");
		return 2;
	}
	bench_raise_nofile();
	dst.sin_family = AF_INET;
	dst.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &dst.sin_addr) != 1) {
		fprintf(stderr, "chatgen: %s: not an IPv4 address\n", host);
		return 2;
	}
	if ((epfd = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
	    !(rcvs = calloc(nrcv, sizeof *rcvs)))
		die("set-up");
	for (size_t i = 0; i < nrcv; i++) {
		rcvs[i].fd = connect_one((unsigned)i, 0);
		rcvs[i].live = 1;
		watch(rcvs[i].fd, i);
	}
	live = nrcv;
	for (long i = 0; i < nslow; i++)
		connect_one((unsigned)(nrcv + (size_t)i), 4096); /* never read */
	settle(500, 60000);
	sender = connect_one((unsigned)(nrcv + (size_t)nslow), 0);
	watch(sender, nrcv);
	settle(300, 10000);
	printf("WARMUP\n"); /* bench/run.sh times its CPU samples from here */
	fflush(stdout);
	win_start = now_ns() + (uint64_t)warm * 1000000000u;
	win_end = win_start + (uint64_t)secs * 1000000000u;
	run((size_t)size, (unsigned)window);
	printf("RESULT receivers=%zu slow=%ld size=%ld secs=%ld msgs=%" PRIu64
	       " msgs_per_s=%.1f deliveries_per_s=%.1f p50_us=%" PRIu64
	       " p99_us=%" PRIu64 " p999_us=%" PRIu64 " lost=%" PRIu64
	       " errors=%" PRIu64 "\n", nrcv, nslow, size, secs, msgs,
	       (double)msgs / (double)secs, (double)deliveries / (double)secs,
	       hist_pct(0.5), hist_pct(0.99), hist_pct(0.999), lost, errors);
	return 0;
}
