/*
 * bench/loadgen.c - load generator for the giambiod echo protocol (issue 6).
 *
 * The protocol: on connect the server sends one welcome line; then for
 * every complete line the client sends it replies "Got: " + that line
 * (its exact bytes, "\n" included). Single-threaded, epoll, no library.
 *
 * Echo mode:
 *   loadgen [-H host] -p port [-c conns] [-s size] [-d depth]
 *           [-t seconds] [-w warmup_seconds]
 * opens conns connections (default 1) to host:port (default 127.0.0.1),
 * discards each welcome line, then keeps depth requests (default 1:
 * ping-pong) in flight per connection. A request is a line of size bytes
 * (default 64) including its "\n", printable filler that changes from one
 * request to the next; every reply is byte-compared with "Got: " + that
 * line (a mismatch or an early close is an error and ends the
 * connection). The clock starts at the first connect(); replies that
 * complete in [warmup, warmup + seconds) are counted (defaults 1 and 5):
 * messages/s, MiB/s of payload (size bytes per message), latency from
 * writing a request to its full reply (p50/p99/p99.9, log-bucket
 * histogram with 1 us resolution below 1 ms, 0.2 % above) and errors.
 * The last line is machine-readable:
 *   RESULT conns=100 size=64 depth=1 secs=5.00 msgs=... msgs_per_s=...
 *          mib_per_s=... p50_us=... p99_us=... p999_us=... errors=0
 *
 * Connect-storm mode:
 *   loadgen [-H host] -p port --storm N [--hold seconds]
 * opens N connections as fast as it can (non-blocking connect, each
 * socket bound to 127.0.0.X:0, X = 1..250 round robin, when host is a
 * loopback address, so the ephemeral ports do not run out) and holds them
 * for hold seconds (default 10) counted from the first connect(). A
 * connection is served when its welcome line has arrived. secs is the
 * set-up phase: from the first connect() until every connection is
 * served or has failed (or the hold time ends); conns_per_s is served /
 * secs. errors = N - served.
 *   RESULT storm=N served=M secs=... conns_per_s=... errors=...
 *
 * RLIMIT_NOFILE is raised to its hard limit at start. Every run ends by
 * itself. Exit status: 0 when the run took place (see errors=), 1 when
 * set-up failed (echo: a socket not made, a connection refused or never
 * welcomed; storm: a socket not made, or no connection served), 2 for a
 * usage error.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define NVAR 62 /* request variants: line k is variant k % NVAR */
#define PREFIX "Got: "
#define PLEN 5
#define RBUF (256 * 1024)
#define MAXEV 512
#define MAXIOV 64

static const char alphabet[] =
	"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

static void die(const char *what)
{
	fprintf(stderr, "loadgen: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* ---------------------------------------------------------- common */
static struct sockaddr_in dst;
static int loopback_dst;
static int epfd;
static char rbuf[RBUF];

static void resolve(const char *host, int port)
{
	struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
	struct addrinfo *ai;
	int rc = getaddrinfo(host, NULL, &hints, &ai);
	if (rc != 0) {
		fprintf(stderr, "loadgen: %s: %s\n", host, gai_strerror(rc));
		exit(1);
	}
	memcpy(&dst, ai->ai_addr, sizeof dst);
	dst.sin_port = htons((uint16_t)port);
	freeaddrinfo(ai);
	loopback_dst = (ntohl(dst.sin_addr.s_addr) >> 24) == 127;
}

/* A non-blocking socket with a connect() under way to dst; the source
 * address is 127.0.0.(1 + n % 250) when dst is loopback and spread is
 * set. Returns -1 (errno set) when the socket cannot be made; a connect
 * refused at once is left for SO_ERROR to report. */
static int open_conn(unsigned n, int spread)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (spread && loopback_dst) {
		int one = 1;
		struct sockaddr_in src = {.sin_family = AF_INET};
		src.sin_addr.s_addr = htonl(0x7f000001u + n % 250);
		setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
		if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0) {
			int e = errno;
			close(fd);
			errno = e;
			return -1;
		}
	}
	if (connect(fd, (struct sockaddr *)&dst, sizeof dst) < 0 &&
	    errno != EINPROGRESS && errno != ECONNREFUSED) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static int sock_error(int fd)
{
	int err = 0;
	socklen_t len = sizeof err;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	return err;
}

static int arm(int fd, uint32_t events, uint32_t id, int op)
{
	struct epoll_event ev = {.events = events, .data.u64 = id};
	return epoll_ctl(epfd, op, fd, &ev);
}

static int wait_ms(uint64_t now, uint64_t deadline)
{
	if (now >= deadline)
		return 0;
	uint64_t ms = (deadline - now + 999999) / 1000000;
	return ms > 1000 ? 1000 : (int)ms;
}

/* ------------------------------------------------------------ storm */
static int storm(unsigned n, double hold)
{
	enum { S_CONNECTING, S_WELCOME, S_SERVED, S_DEAD };
	int *fds = malloc(n * sizeof *fds);
	unsigned char *st = malloc(n);
	if (!fds || !st)
		die("malloc");
	unsigned opened = 0, connected = 0, served = 0, failed = 0, dropped = 0;
	int setup_fail = 0;
	struct epoll_event evs[MAXEV];

	uint64_t t0 = now_ns(), tend = t0 + (uint64_t)(hold * 1e9);
	uint64_t tconn = t0, tdone = 0;
	for (unsigned i = 0; i < n; i++) {
		fds[i] = open_conn(i, 1);
		if (fds[i] < 0) {
			fprintf(stderr, "loadgen: connection %u: %s\n", i, strerror(errno));
			setup_fail = 1;
			for (unsigned j = i; j < n; j++) {
				fds[j] = -1;
				st[j] = S_DEAD;
			}
			failed += n - i;
			break;
		}
		st[i] = S_CONNECTING;
		opened++;
		if (arm(fds[i], EPOLLOUT | EPOLLIN, i, EPOLL_CTL_ADD) < 0)
			die("epoll_ctl");
	}
	uint64_t topen = now_ns();

	for (;;) {
		uint64_t now = now_ns();
		if (now >= tend)
			break;
		if (!tdone && served + failed == n)
			tdone = now;
		int ne = epoll_wait(epfd, evs, MAXEV, wait_ms(now, tend));
		if (ne < 0 && errno != EINTR)
			die("epoll_wait");
		now = now_ns();
		for (int e = 0; e < ne; e++) {
			unsigned i = (unsigned)evs[e].data.u64;
			int fd = fds[i];
			if (st[i] == S_CONNECTING) {
				int err = sock_error(fd);
				if (err) {
					if (failed == 0)
						fprintf(stderr, "loadgen: connect: %s\n", strerror(err));
					failed++;
					st[i] = S_DEAD;
					close(fd);
					continue;
				}
				if (!(evs[e].events & EPOLLOUT) && !(evs[e].events & EPOLLIN))
					continue;
				connected++;
				tconn = now;
				st[i] = S_WELCOME;
				arm(fd, EPOLLIN, i, EPOLL_CTL_MOD);
			}
			if (!(evs[e].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
				continue;
			ssize_t r = read(fd, rbuf, sizeof rbuf);
			if (r < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (r <= 0) {
				if (st[i] == S_SERVED) {
					dropped++;
				} else {
					failed++;
				}
				st[i] = S_DEAD;
				close(fd);
				continue;
			}
			if (st[i] == S_WELCOME && memchr(rbuf, '\n', (size_t)r)) {
				st[i] = S_SERVED;
				served++;
			}
		}
	}
	uint64_t tfin = now_ns();
	if (!tdone)
		tdone = tfin;
	for (unsigned i = 0; i < n; i++)
		if (st[i] != S_DEAD)
			close(fds[i]);

	double secs = (double)(tdone - t0) / 1e9;
	printf("storm: %u connections to %s:%u, held %.2f s\n", n,
	       inet_ntoa(dst.sin_addr), ntohs(dst.sin_port), (double)(tfin - t0) / 1e9);
	printf("  sockets opened %u in %.3f s; connected %u (last at %.3f s: %.0f connects/s)\n",
	       opened, (double)(topen - t0) / 1e9, connected, (double)(tconn - t0) / 1e9,
	       tconn > t0 ? connected / ((double)(tconn - t0) / 1e9) : 0.0);
	printf("  served (welcome line) %u; failed %u; closed by the server after the welcome %u\n",
	       served, failed, dropped);
	printf("RESULT storm=%u served=%u secs=%.2f conns_per_s=%.1f errors=%u\n", n,
	       served, secs, secs > 0 ? served / secs : 0.0, n - served);
	free(fds);
	free(st);
	return setup_fail || served == 0 ? 1 : 0;
}

/* ------------------------------------------------------------- echo */
enum { C_CONNECTING, C_WELCOME, C_RUN, C_DEAD };

struct conn {
	int fd;
	int state;
	int out_armed;     /* EPOLLOUT in the interest set */
	uint64_t queued;   /* requests queued (0 .. queued-1) */
	uint64_t written;  /* requests written out completely */
	size_t wpos;       /* bytes of request `written` already written */
	uint64_t done;     /* replies received completely */
	size_t rpos;       /* bytes of reply `done` received so far */
	uint64_t *tsend;   /* ring of depth: when request k was queued */
};

static struct conn *conns;
static size_t size, depth;
static char *lines; /* NVAR lines of size bytes */
static uint64_t win_start, win_end, msgs;
static unsigned long err_mismatch, err_closed, err_connect, err_nowelcome;

static const char *line_of(uint64_t k)
{
	return lines + (size_t)(k % NVAR) * size;
}

static void conn_kill(struct conn *c)
{
	if (c->state != C_DEAD) {
		close(c->fd);
		c->state = C_DEAD;
	}
}

static void conn_fail(struct conn *c, unsigned long *counter)
{
	(*counter)++;
	conn_kill(c);
}

/* Writes out queued requests; arms EPOLLOUT when the socket is full. */
static void conn_flush(struct conn *c, uint32_t id)
{
	while (c->written < c->queued) {
		struct iovec iov[MAXIOV];
		int n = 0;
		for (uint64_t k = c->written; k < c->queued && n < MAXIOV; k++, n++) {
			size_t off = k == c->written ? c->wpos : 0;
			iov[n].iov_base = (char *)line_of(k) + off;
			iov[n].iov_len = size - off;
		}
		ssize_t w = writev(c->fd, iov, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			conn_fail(c, &err_closed);
			return;
		}
		size_t left = (size_t)w;
		while (left > 0) {
			size_t rest = size - c->wpos;
			if (left >= rest) {
				left -= rest;
				c->wpos = 0;
				c->written++;
			} else {
				c->wpos += left;
				left = 0;
			}
		}
	}
	int want = c->written < c->queued;
	if (want != c->out_armed) {
		arm(c->fd, EPOLLIN | (want ? EPOLLOUT : 0), id, EPOLL_CTL_MOD);
		c->out_armed = want;
	}
}

static void conn_queue(struct conn *c, uint64_t now)
{
	c->tsend[c->queued % depth] = now;
	c->queued++;
}

/* Checks n received bytes against the replies expected; returns -1 on a
 * mismatch. Completed replies are counted and replaced by new requests. */
static int conn_input(struct conn *c, const char *p, size_t n, uint64_t now)
{
	size_t rlen = PLEN + size;
	while (n > 0) {
		if (c->done >= c->queued)
			return -1; /* a reply to nothing */
		size_t take = rlen - c->rpos;
		if (take > n)
			take = n;
		size_t pos = c->rpos, i = 0;
		if (pos < PLEN) {
			size_t m = PLEN - pos < take ? PLEN - pos : take;
			if (memcmp(p, PREFIX + pos, m) != 0)
				return -1;
			i = m;
		}
		if (i < take && memcmp(p + i, line_of(c->done) + (pos + i - PLEN), take - i) != 0)
			return -1;
		c->rpos += take;
		p += take;
		n -= take;
		if (c->rpos == rlen) {
			if (now >= win_start && now < win_end) {
				uint64_t t = c->tsend[c->done % depth];
				hist_add((now - t + 500) / 1000);
				msgs++;
			}
			c->done++;
			c->rpos = 0;
			if (now < win_end)
				conn_queue(c, now);
		}
	}
	return 0;
}

static void conn_readable(struct conn *c, uint32_t id)
{
	ssize_t r = read(c->fd, rbuf, sizeof rbuf);
	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (r <= 0) {
		conn_fail(c, c->state == C_WELCOME ? &err_nowelcome : &err_closed);
		return;
	}
	uint64_t now = now_ns();
	const char *p = rbuf;
	size_t n = (size_t)r;
	if (c->state == C_WELCOME) {
		const char *nl = memchr(p, '\n', n);
		if (!nl)
			return; /* the rest of the welcome line comes later */
		n -= (size_t)(nl + 1 - p);
		p = nl + 1;
		c->state = C_RUN;
		for (size_t k = 0; k < depth; k++)
			conn_queue(c, now);
	}
	if (conn_input(c, p, n, now) < 0) {
		conn_fail(c, &err_mismatch);
		return;
	}
	conn_flush(c, id);
}

static int echo(size_t nconns, double secs, double warmup)
{
	struct epoll_event evs[MAXEV];
	int one = 1, setup_fail = 0;

	lines = malloc(NVAR * size);
	conns = calloc(nconns, sizeof *conns);
	if (!lines || !conns)
		die("malloc");
	for (size_t v = 0; v < NVAR; v++) {
		for (size_t i = 0; i + 1 < size; i++)
			lines[v * size + i] = alphabet[(v + i) % (sizeof alphabet - 1)];
		lines[v * size + size - 1] = '\n';
	}

	uint64_t t0 = now_ns();
	win_start = t0 + (uint64_t)(warmup * 1e9);
	win_end = win_start + (uint64_t)(secs * 1e9);
	for (size_t i = 0; i < nconns; i++) {
		struct conn *c = &conns[i];
		c->tsend = calloc(depth, sizeof *c->tsend);
		if (!c->tsend)
			die("malloc");
		c->fd = open_conn((unsigned)i, 0);
		if (c->fd < 0) {
			fprintf(stderr, "loadgen: connection %zu: %s\n", i, strerror(errno));
			return 1;
		}
		setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		c->state = C_CONNECTING;
		if (arm(c->fd, EPOLLOUT | EPOLLIN, (uint32_t)i, EPOLL_CTL_ADD) < 0)
			die("epoll_ctl");
	}

	for (;;) {
		uint64_t now = now_ns();
		if (now >= win_end)
			break;
		int ne = epoll_wait(epfd, evs, MAXEV, wait_ms(now, win_end));
		if (ne < 0 && errno != EINTR)
			die("epoll_wait");
		for (int e = 0; e < ne; e++) {
			uint32_t id = (uint32_t)evs[e].data.u64;
			struct conn *c = &conns[id];
			if (c->state == C_DEAD)
				continue;
			if (c->state == C_CONNECTING) {
				int err = sock_error(c->fd);
				if (err) {
					if (err_connect == 0)
						fprintf(stderr, "loadgen: connect: %s\n", strerror(err));
					conn_fail(c, &err_connect);
					continue;
				}
				c->state = C_WELCOME;
				arm(c->fd, EPOLLIN, id, EPOLL_CTL_MOD);
			}
			if (evs[e].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
				conn_readable(c, id);
			if (c->state == C_RUN && (evs[e].events & EPOLLOUT) && c->out_armed)
				conn_flush(c, id);
		}
	}
	for (size_t i = 0; i < nconns; i++) {
		if (conns[i].state == C_CONNECTING || conns[i].state == C_WELCOME) {
			err_nowelcome++;
			setup_fail = 1;
		}
		conn_kill(&conns[i]);
		free(conns[i].tsend);
	}
	if (err_connect)
		setup_fail = 1;

	unsigned long errors = err_mismatch + err_closed + err_connect + err_nowelcome;
	double mps = (double)msgs / secs;
	double mib = mps * (double)size / (1024.0 * 1024.0);
	printf("echo: %zu connections to %s:%u, %zu-byte lines, depth %zu; %.2f s measured after %.2f s\n",
	       nconns, inet_ntoa(dst.sin_addr), ntohs(dst.sin_port), size, depth, secs, warmup);
	printf("  %lu messages: %.1f msgs/s, %.2f MiB/s of payload\n", (unsigned long)msgs, mps, mib);
	printf("  latency us: p50 %llu  p99 %llu  p99.9 %llu\n",
	       (unsigned long long)hist_pct(0.50), (unsigned long long)hist_pct(0.99),
	       (unsigned long long)hist_pct(0.999));
	printf("  errors %lu (mismatch %lu, closed %lu, connect %lu, no welcome %lu)\n", errors,
	       err_mismatch, err_closed, err_connect, err_nowelcome);
	printf("RESULT conns=%zu size=%zu depth=%zu secs=%.2f msgs=%lu msgs_per_s=%.1f "
	       "mib_per_s=%.2f p50_us=%llu p99_us=%llu p999_us=%llu errors=%lu\n",
	       nconns, size, depth, secs, (unsigned long)msgs, mps, mib,
	       (unsigned long long)hist_pct(0.50), (unsigned long long)hist_pct(0.99),
	       (unsigned long long)hist_pct(0.999), errors);
	free(conns);
	free(lines);
	return setup_fail ? 1 : 0;
}

/* ------------------------------------------------------------- main */
static void usage(void)
{
	fprintf(stderr,
		"usage: loadgen [-H host] -p port [-c conns] [-s size] [-d depth] [-t seconds] [-w warmup]\n"
		"       loadgen [-H host] -p port --storm N [--hold seconds]\n");
	exit(2);
}

static double num(const char *s, double lo, double hi)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || v < lo || v > hi) {
		fprintf(stderr, "loadgen: bad number '%s'\n", s);
		usage();
	}
	return v;
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{"storm", required_argument, NULL, 'S'},
		{"hold", required_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *host = "127.0.0.1";
	int port = -1, opt;
	size_t nconns = 1, nstorm = 0;
	double secs = 5, warmup = 1, hold = 10;
	size = 64;
	depth = 1;
	while ((opt = getopt_long(argc, argv, "H:p:c:s:d:t:w:", lopts, NULL)) != -1) {
		switch (opt) {
		case 'H': host = optarg; break;
		case 'p': port = (int)num(optarg, 1, 65535); break;
		case 'c': nconns = (size_t)num(optarg, 1, 1e6); break;
		case 's': size = (size_t)num(optarg, 1, 16 << 20); break;
		case 'd': depth = (size_t)num(optarg, 1, 1 << 16); break;
		case 't': secs = num(optarg, 0.01, 86400); break;
		case 'w': warmup = num(optarg, 0, 86400); break;
		case 'S': nstorm = (size_t)num(optarg, 1, 1e7); break;
		case 'h': hold = num(optarg, 0.01, 86400); break;
		default: usage();
		}
	}
	if (port < 0 || optind != argc)
		usage();
	bench_raise_nofile();
	resolve(host, port);
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0)
		die("epoll_create1");
	int rc = nstorm ? storm((unsigned)nstorm, hold) : echo(nconns, secs, warmup);
	fflush(stdout);
	return rc;
}
