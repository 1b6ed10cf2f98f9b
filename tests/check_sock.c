/*
 * check_sock.c - gb_sock: wrapping, listening (backlog, SO_REUSEPORT,
 * IPV6_V6ONLY), accept/connect over loopback TCP, sending everything over
 * partial writes, deadlines, cancellation, peer close / reset / half-close,
 * close while another task waits, the line reader, and accepting while the
 * process is out of descriptors.
 *
 * Tasks record what they saw in plain structs; most checks run after
 * gb_run() returns, on the test's own stack. Task stacks are 64 KiB: large
 * buffers are static.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

/* ------------------------------------------------------------ helpers */

static struct sockaddr_in lo4(uint16_t port)
{
	struct sockaddr_in sin;

	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_port = htons(port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return sin;
}

static struct sockaddr_in6 sa6(const struct in6_addr *a, uint16_t port)
{
	struct sockaddr_in6 s;

	memset(&s, 0, sizeof s);
	s.sin6_family = AF_INET6;
	s.sin6_port = htons(port);
	s.sin6_addr = *a;
	return s;
}

/* The local port of a socket. */
static uint16_t local_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;

	if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
		return 0;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return 0;
}

static int get_int_opt(int fd, int level, int name)
{
	int v = -12345;
	socklen_t len = sizeof v;

	if (getsockopt(fd, level, name, &v, &len) != 0)
		return -12345;
	return v;
}

static int set_int_opt(int fd, int level, int name, int v)
{
	return setsockopt(fd, level, name, &v, sizeof v);
}

/* 1 if O_NONBLOCK and FD_CLOEXEC are both set on fd. */
static int nonblock_cloexec(int fd)
{
	int fl = fcntl(fd, F_GETFL), fdfl = fcntl(fd, F_GETFD);

	return fl >= 0 && fdfl >= 0 && (fl & O_NONBLOCK) && (fdfl & FD_CLOEXEC);
}

/* 1 if IPv6 loopback works here (socket and bind to [::1]). */
static int have_ipv6(void)
{
	int fd = socket(AF_INET6, SOCK_STREAM, 0);
	struct sockaddr_in6 s = sa6(&in6addr_loopback, 0);
	int ok;

	if (fd < 0)
		return 0;
	ok = bind(fd, (struct sockaddr *)&s, sizeof s) == 0;
	close(fd);
	return ok;
}

/* Reads a small integer from a /proc file; -1 if it cannot. */
static int read_proc_int(const char *path)
{
	FILE *f = fopen(path, "r");
	int v = -1;

	if (!f)
		return -1;
	if (fscanf(f, "%d", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

/* Listens on 127.0.0.1 with a kernel-chosen port. */
static int listen_lo4(gb_sock **ls, const gb_listen_opts *o, uint16_t *port)
{
	struct sockaddr_in sin = lo4(0);
	int rc = gb_sock_listen(ls, (struct sockaddr *)&sin, sizeof sin, o);

	if (rc == 0 && port)
		*port = local_port(gb_sock_fd(*ls));
	return rc;
}

/* A connected loopback TCP pair: *cli from gb_sock_connect, *srv from
 * gb_sock_accept. srv_rcvbuf > 0 sets SO_RCVBUF on the listener first, so
 * the accepted socket inherits it from the start. Call from a task. */
static int tcp_pair(gb_sock **cli, gb_sock **srv, int srv_rcvbuf)
{
	gb_sock *ls;
	uint16_t port;
	int rc = listen_lo4(&ls, NULL, &port);
	struct sockaddr_in sin = lo4(port);

	if (rc)
		return rc;
	if (srv_rcvbuf > 0)
		set_int_opt(gb_sock_fd(ls), SOL_SOCKET, SO_RCVBUF, srv_rcvbuf);
	rc = gb_sock_connect(cli, (struct sockaddr *)&sin, sizeof sin,
	                     gb_after(GB_SEC(5)));
	if (rc == 0) {
		rc = gb_sock_accept(ls, srv, NULL, gb_after(GB_SEC(5)));
		if (rc)
			gb_sock_close(*cli);
	}
	gb_sock_close(ls);
	return rc;
}

/* A wrapped AF_UNIX stream socketpair. */
static int unix_pair(gb_sock **a, gb_sock **b)
{
	int sv[2], rc;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
		return -errno;
	if ((rc = gb_sock_wrap(a, sv[0])) < 0) {
		close(sv[0]);
		close(sv[1]);
		return rc;
	}
	if ((rc = gb_sock_wrap(b, sv[1])) < 0) {
		gb_sock_close(*a);
		close(sv[1]);
	}
	return rc;
}

enum { PAIR_UNIX, PAIR_TCP };
static const char *const pair_name[] = { "unix", "tcp" };

/* *a is the sender side, *b the receiver side. */
static int make_pair(int kind, gb_sock **a, gb_sock **b, int b_rcvbuf)
{
	if (kind == PAIR_TCP)
		return tcp_pair(a, b, b_rcvbuf);
	int rc = unix_pair(a, b);
	if (rc == 0 && b_rcvbuf > 0)
		set_int_opt(gb_sock_fd(*b), SOL_SOCKET, SO_RCVBUF, b_rcvbuf);
	return rc;
}

/* A byte pattern with no short period, so that lost, repeated or
 * reordered chunks show up. */
static unsigned char pat(size_t i)
{
	return (unsigned char)((i * 2654435761u) >> 13 ^ (i >> 9));
}

#define BIG_LEN (8u << 20)
static unsigned char big[BIG_LEN];

static void fill_big(void)
{
	static int done;

	if (done)
		return;
	for (size_t i = 0; i < BIG_LEN; i++)
		big[i] = pat(i);
	done = 1;
}

/* A reader task: reads until it has want bytes or the stream ends, in
 * chunks of at most chunk bytes, sleeping 1 ms every sleep_every reads,
 * and checks every byte against pat(). */
struct reader {
	gb_sock *s;
	size_t want;          /* SIZE_MAX: until end of stream */
	size_t chunk;
	int sleep_every;
	int64_t deadline;
	/* results */
	size_t got;
	size_t bad_at;        /* first wrong byte, or SIZE_MAX */
	ssize_t last;         /* the call that ended it: 0, or an error */
	long reads;
};

static int reader_fn(void *arg)
{
	struct reader *r = arg;
	unsigned char buf[4096];

	r->bad_at = SIZE_MAX;
	while (r->got < r->want) {
		size_t n = r->chunk < sizeof buf ? r->chunk : sizeof buf;
		if (r->want != SIZE_MAX && r->want - r->got < n)
			n = r->want - r->got;
		ssize_t k = gb_sock_recv(r->s, buf, n, r->deadline);
		if (k <= 0) {
			r->last = k;
			break;
		}
		for (size_t i = 0; i < (size_t)k; i++)
			if (buf[i] != pat(r->got + i) && r->bad_at == SIZE_MAX)
				r->bad_at = r->got + i;
		r->got += (size_t)k;
		r->reads++;
		if (r->sleep_every && r->reads % r->sleep_every == 0)
			gb_sleep(gb_after(GB_MSEC(1)));
	}
	return 0;
}

/* Hooks: count waits for writing on one fd. */
static struct {
	int fd;
	int write_waits;
} hk;

static void hk_wait(gb_task *t, int fd, int events, void *ud)
{
	(void)t;
	(void)ud;
	if (fd == hk.fd && events == GB_WRITE)
		hk.write_waits++;
}

static void hooks_on(void)
{
	gb_hooks h = { 0 };

	memset(&hk, 0, sizeof hk);
	hk.fd = -1;
	h.on_io_wait = hk_wait;
	gb_set_hooks(&h);
}

/* Process CPU time in ns. */
static int64_t cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Reads fd (blocking through poll, at most ms per wait) until end of
 * stream; returns the byte count, -1 on error or time out. Checks pat(). */
static long drain_raw(int fd, int ms, size_t *bad_at)
{
	static unsigned char buf[65536];
	long total = 0;

	*bad_at = SIZE_MAX;
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, ms) != 1)
			return -1;
		ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
		if (n == 0)
			return total;
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			return -1;
		}
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] != pat((size_t)total + (size_t)i) && *bad_at == SIZE_MAX)
				*bad_at = (size_t)total + (size_t)i;
		total += n;
	}
}

/* =================================================== wrap and listen */

struct wrap_ctx {
	int fd, peer;
	int rc;
	int got_fd;
	int flags_ok;
	int close_rc;
	int bad_rc;
};

static int wrap_main(void *arg)
{
	struct wrap_ctx *c = arg;
	gb_sock *s = NULL, *bad = NULL;

	c->rc = gb_sock_wrap(&s, c->fd);
	if (c->rc)
		return 0;
	c->got_fd = gb_sock_fd(s);
	c->flags_ok = nonblock_cloexec(c->fd);
	c->close_rc = gb_sock_close(s);
	c->bad_rc = gb_sock_wrap(&bad, -1);
	return 0;
}

/* gb_sock_wrap makes the fd non-blocking and close-on-exec, gb_sock_fd
 * gives it back, gb_sock_close closes it; a bad fd is refused. */
START_TEST(test_wrap)
{
	int sv[2];
	struct wrap_ctx c;

	memset(&c, 0, sizeof c);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_int_eq(nonblock_cloexec(sv[0]), 0);
	c.fd = sv[0];
	TU_RUN(wrap_main, &c, 0);
	ck_assert_int_eq(c.rc, 0);
	ck_assert_int_eq(c.got_fd, sv[0]);
	ck_assert_int_eq(c.flags_ok, 1);
	ck_assert_int_eq(c.close_rc, 0);
	ck_assert_int_eq(fcntl(sv[0], F_GETFD), -1);
	ck_assert_int_eq(errno, EBADF);
	ck_assert_int_lt(c.bad_rc, 0);
	close(sv[1]);
}
END_TEST

struct lopt_ctx {
	int rc_def, rc_bl, rc_rp1, rc_rp2, rc_norp, rc_inuse, rc_notavail;
	int def_reuseaddr, def_reuseport, def_acceptconn, def_flags;
	int def_backlog, bl_backlog;
	int rp1_reuseport, rp2_reuseport;
	uint16_t rp_port1, rp_port2;
};

/* The listen backlog the kernel holds for a listening TCP socket
 * (Linux reports sk_max_ack_backlog in tcpi_sacked). */
static int listen_backlog(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof ti;

	memset(&ti, 0, sizeof ti);
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0)
		return -1;
	return (int)ti.tcpi_sacked;
}

static int lopt_main(void *arg)
{
	struct lopt_ctx *c = arg;
	gb_sock *d, *b, *r1, *r2, *x;
	gb_listen_opts o;
	uint16_t port;

	c->rc_def = listen_lo4(&d, NULL, &port);
	if (c->rc_def)
		return 0;
	int fd = gb_sock_fd(d);
	c->def_reuseaddr = get_int_opt(fd, SOL_SOCKET, SO_REUSEADDR);
	c->def_reuseport = get_int_opt(fd, SOL_SOCKET, SO_REUSEPORT);
	c->def_acceptconn = get_int_opt(fd, SOL_SOCKET, SO_ACCEPTCONN);
	c->def_flags = nonblock_cloexec(fd);
	c->def_backlog = listen_backlog(fd);

	/* the port is taken: another listener there fails */
	struct sockaddr_in sin = lo4(port);
	c->rc_inuse = gb_sock_listen(&x, (struct sockaddr *)&sin, sizeof sin, NULL);
	if (c->rc_inuse == 0)
		gb_sock_close(x);

	o = (gb_listen_opts){ .backlog = 7, .v6only = -1 };
	c->rc_bl = listen_lo4(&b, &o, NULL);
	if (c->rc_bl == 0) {
		c->bl_backlog = listen_backlog(gb_sock_fd(b));
		gb_sock_close(b);
	}

	/* two SO_REUSEPORT listeners share a port; a third without it cannot */
	o = (gb_listen_opts){ .reuseport = 1, .v6only = -1 };
	c->rc_rp1 = listen_lo4(&r1, &o, &c->rp_port1);
	if (c->rc_rp1 == 0) {
		c->rp1_reuseport = get_int_opt(gb_sock_fd(r1), SOL_SOCKET, SO_REUSEPORT);
		sin = lo4(c->rp_port1);
		c->rc_rp2 = gb_sock_listen(&r2, (struct sockaddr *)&sin, sizeof sin, &o);
		if (c->rc_rp2 == 0) {
			c->rp2_reuseport = get_int_opt(gb_sock_fd(r2), SOL_SOCKET,
			                               SO_REUSEPORT);
			c->rp_port2 = local_port(gb_sock_fd(r2));
			gb_sock_close(r2);
		}
		o.reuseport = 0;
		c->rc_norp = gb_sock_listen(&x, (struct sockaddr *)&sin, sizeof sin, &o);
		if (c->rc_norp == 0)
			gb_sock_close(x);
		gb_sock_close(r1);
	}

	/* an address that is not ours (TEST-NET-1) */
	struct sockaddr_in far = lo4(0);
	far.sin_addr.s_addr = htonl(0xc0000201); /* 192.0.2.1 */
	c->rc_notavail = gb_sock_listen(&x, (struct sockaddr *)&far, sizeof far,
	                                NULL);
	if (c->rc_notavail == 0)
		gb_sock_close(x);
	gb_sock_close(d);
	return 0;
}

/* gb_sock_listen: SO_REUSEADDR always, SO_REUSEPORT only when asked (and
 * then two listeners share a port), the backlog asked (default SOMAXCONN,
 * capped by the kernel), non-blocking close-on-exec; bind errors come back
 * as -EADDRINUSE / -EADDRNOTAVAIL. */
START_TEST(test_listen_opts)
{
	struct lopt_ctx c;
	int somax = read_proc_int("/proc/sys/net/core/somaxconn");

	memset(&c, 0, sizeof c);
	TU_RUN(lopt_main, &c, 0);
	ck_assert_int_eq(c.rc_def, 0);
	ck_assert_int_eq(c.def_reuseaddr, 1);
	ck_assert_int_eq(c.def_reuseport, 0);
	ck_assert_int_eq(c.def_acceptconn, 1);
	ck_assert_int_eq(c.def_flags, 1);
	if (somax > 0)
		ck_assert_int_eq(c.def_backlog, somax < SOMAXCONN ? somax : SOMAXCONN);
	ck_assert_int_eq(c.rc_inuse, -EADDRINUSE);
	ck_assert_int_eq(c.rc_bl, 0);
	ck_assert_int_eq(c.bl_backlog, 7);
	ck_assert_int_eq(c.rc_rp1, 0);
	ck_assert_int_eq(c.rp1_reuseport, 1);
	ck_assert_int_eq(c.rc_rp2, 0);
	ck_assert_int_eq(c.rp2_reuseport, 1);
	ck_assert_uint_eq(c.rp_port2, c.rp_port1);
	ck_assert_int_eq(c.rc_norp, -EADDRINUSE);
	ck_assert_int_eq(c.rc_notavail, -EADDRNOTAVAIL);
}
END_TEST

struct v6_ctx {
	int rc_lo1, rc_any0, rc_any1, rc_def, rc_v4;
	int lo1_v6only, any0_v6only, any1_v6only, def_v6only, v4_rc_opt;
	/* a v4 client of the dual-stack listener */
	int conn_rc, acc_rc;
	struct sockaddr_storage peer;
	uint16_t cli_port;
	char line[16];
	ssize_t line_n;
};

static int v6_main(void *arg)
{
	struct v6_ctx *c = arg;
	gb_sock *s, *cli, *srv;
	gb_listen_opts o = { .v6only = 1 };
	struct sockaddr_in6 lo = sa6(&in6addr_loopback, 0);
	struct sockaddr_in6 any = sa6(&in6addr_any, 0);

	c->rc_lo1 = gb_sock_listen(&s, (struct sockaddr *)&lo, sizeof lo, &o);
	if (c->rc_lo1 == 0) {
		c->lo1_v6only = get_int_opt(gb_sock_fd(s), IPPROTO_IPV6, IPV6_V6ONLY);
		gb_sock_close(s);
	}
	c->rc_any1 = gb_sock_listen(&s, (struct sockaddr *)&any, sizeof any, &o);
	if (c->rc_any1 == 0) {
		c->any1_v6only = get_int_opt(gb_sock_fd(s), IPPROTO_IPV6, IPV6_V6ONLY);
		gb_sock_close(s);
	}
	o.v6only = -1;
	c->rc_def = gb_sock_listen(&s, (struct sockaddr *)&any, sizeof any, &o);
	if (c->rc_def == 0) {
		c->def_v6only = get_int_opt(gb_sock_fd(s), IPPROTO_IPV6, IPV6_V6ONLY);
		gb_sock_close(s);
	}
	/* v6only on an IPv4 listener is ignored, not an error */
	o.v6only = 1;
	c->rc_v4 = listen_lo4(&s, &o, NULL);
	if (c->rc_v4 == 0)
		gb_sock_close(s);

	/* dual stack: an IPv4 client reaches a [::] listener */
	o.v6only = 0;
	c->rc_any0 = gb_sock_listen(&s, (struct sockaddr *)&any, sizeof any, &o);
	if (c->rc_any0 != 0)
		return 0;
	c->any0_v6only = get_int_opt(gb_sock_fd(s), IPPROTO_IPV6, IPV6_V6ONLY);
	struct sockaddr_in sin = lo4(local_port(gb_sock_fd(s)));
	c->conn_rc = gb_sock_connect(&cli, (struct sockaddr *)&sin, sizeof sin,
	                             gb_after(GB_SEC(5)));
	if (c->conn_rc == 0) {
		c->cli_port = local_port(gb_sock_fd(cli));
		c->acc_rc = gb_sock_accept(s, &srv, &c->peer, gb_after(GB_SEC(5)));
		if (c->acc_rc == 0) {
			const char *l;
			gb_sock_send_all(cli, "v4\n", 3, NULL, gb_after(GB_SEC(5)));
			c->line_n = gb_sock_recv_line(srv, sizeof c->line - 1, &l,
			                              gb_after(GB_SEC(5)));
			if (c->line_n > 0)
				memcpy(c->line, l, (size_t)c->line_n);
			gb_sock_close(srv);
		}
		gb_sock_close(cli);
	}
	gb_sock_close(s);
	return 0;
}

/* IPV6_V6ONLY is set as asked on [::1] and [::], left at the system
 * default with -1, and v6only=0 makes [::] accept IPv4 clients (seen as
 * v4-mapped addresses). Skipped without IPv6. */
START_TEST(test_listen_v6only)
{
	struct v6_ctx c;
	int sysdef = read_proc_int("/proc/sys/net/ipv6/bindv6only");

	if (!have_ipv6()) {
		fprintf(stderr, "test_listen_v6only: no IPv6 here, skipped\n");
		return;
	}
	memset(&c, 0, sizeof c);
	TU_RUN(v6_main, &c, 0);
	ck_assert_int_eq(c.rc_lo1, 0);
	ck_assert_int_eq(c.lo1_v6only, 1);
	ck_assert_int_eq(c.rc_any1, 0);
	ck_assert_int_eq(c.any1_v6only, 1);
	ck_assert_int_eq(c.rc_def, 0);
	if (sysdef >= 0)
		ck_assert_int_eq(c.def_v6only, sysdef);
	ck_assert_int_eq(c.rc_v4, 0);
	ck_assert_int_eq(c.rc_any0, 0);
	ck_assert_int_eq(c.any0_v6only, 0);
	ck_assert_int_eq(c.conn_rc, 0);
	ck_assert_int_eq(c.acc_rc, 0);
	const struct sockaddr_in6 *p = (const struct sockaddr_in6 *)&c.peer;
	struct in6_addr mapped;
	ck_assert_int_eq(inet_pton(AF_INET6, "::ffff:127.0.0.1", &mapped), 1);
	ck_assert_int_eq(p->sin6_family, AF_INET6);
	ck_assert_mem_eq(&p->sin6_addr, &mapped, sizeof mapped);
	ck_assert_uint_eq(ntohs(p->sin6_port), c.cli_port);
	ck_assert_int_eq(c.line_n, 3);
	ck_assert_mem_eq(c.line, "v4\n", 3);
}
END_TEST

/* ================================================== accept / connect */

struct echo_ctx {
	int family;
	uint16_t port;
	gb_sock *ls;
	/* server */
	int acc_rc;
	struct sockaddr_storage peer;
	int srv_flags;
	ssize_t srv_line;
	int srv_send;
	/* client */
	int conn_rc;
	uint16_t cli_port;
	int cli_flags;
	uint16_t cli_peer_port;
	int cli_send;
	ssize_t cli_n;
	char reply[64];
	int grc;
};

static int echo_server(void *arg)
{
	struct echo_ctx *c = arg;
	gb_sock *s;
	const char *line;

	c->acc_rc = gb_sock_accept(c->ls, &s, &c->peer, gb_after(GB_SEC(5)));
	if (c->acc_rc)
		return 0;
	c->srv_flags = nonblock_cloexec(gb_sock_fd(s));
	for (;;) {
		ssize_t n = gb_sock_recv_line(s, 64, &line, gb_after(GB_SEC(5)));
		c->srv_line = n;
		if (n <= 0)
			break;
		c->srv_send = gb_sock_send_all(s, line, (size_t)n, NULL,
		                               gb_after(GB_SEC(5)));
	}
	gb_sock_close(s);
	return 0;
}

static int echo_client(void *arg)
{
	struct echo_ctx *c = arg;
	gb_sock *s;
	struct sockaddr_storage ss;
	socklen_t len;
	static const char msg[] = "hello, echo\nsecond\n";

	memset(&ss, 0, sizeof ss);
	if (c->family == AF_INET) {
		struct sockaddr_in sin = lo4(c->port);
		memcpy(&ss, &sin, sizeof sin);
		len = sizeof sin;
	} else {
		struct sockaddr_in6 s6 = sa6(&in6addr_loopback, c->port);
		memcpy(&ss, &s6, sizeof s6);
		len = sizeof s6;
	}
	c->conn_rc = gb_sock_connect(&s, (struct sockaddr *)&ss, len,
	                             gb_after(GB_SEC(5)));
	if (c->conn_rc)
		return 0;
	c->cli_port = local_port(gb_sock_fd(s));
	c->cli_flags = nonblock_cloexec(gb_sock_fd(s));
	struct sockaddr_storage pe;
	socklen_t pl = sizeof pe;
	if (getpeername(gb_sock_fd(s), (struct sockaddr *)&pe, &pl) == 0)
		c->cli_peer_port = ntohs(pe.ss_family == AF_INET
		                         ? ((struct sockaddr_in *)&pe)->sin_port
		                         : ((struct sockaddr_in6 *)&pe)->sin6_port);
	c->cli_send = gb_sock_send_all(s, msg, sizeof msg - 1, NULL,
	                               gb_after(GB_SEC(5)));
	size_t got = 0;
	while (got < sizeof msg - 1) {
		ssize_t n = gb_sock_recv(s, c->reply + got, sizeof c->reply - got,
		                         gb_after(GB_SEC(5)));
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	c->cli_n = (ssize_t)got;
	gb_sock_close(s);
	return 0;
}

static int echo_main(void *arg)
{
	struct echo_ctx *c = arg;
	gb_group *g;
	int rc;

	if (c->family == AF_INET) {
		rc = listen_lo4(&c->ls, NULL, &c->port);
	} else {
		struct sockaddr_in6 s6 = sa6(&in6addr_loopback, 0);
		rc = gb_sock_listen(&c->ls, (struct sockaddr *)&s6, sizeof s6, NULL);
		if (rc == 0)
			c->port = local_port(gb_sock_fd(c->ls));
	}
	if (rc)
		return rc;
	g = tu_group();
	tu_go(g, echo_server, c);
	tu_go(g, echo_client, c);
	c->grc = tu_join(g);
	gb_sock_close(c->ls);
	return 0;
}

static void check_echo(const struct echo_ctx *c)
{
	static const char msg[] = "hello, echo\nsecond\n";

	ck_assert_int_eq(c->grc, 0);
	ck_assert_int_eq(c->conn_rc, 0);
	ck_assert_int_eq(c->acc_rc, 0);
	ck_assert_int_eq(c->srv_flags, 1);
	ck_assert_int_eq(c->cli_flags, 1);
	ck_assert_uint_eq(c->cli_peer_port, c->port);
	ck_assert_int_eq(c->cli_send, 0);
	ck_assert_int_eq(c->srv_send, 0);
	ck_assert_int_eq(c->srv_line, 0); /* the server saw the client close */
	ck_assert_int_eq(c->cli_n, (ssize_t)(sizeof msg - 1));
	ck_assert_mem_eq(c->reply, msg, sizeof msg - 1);
}

/* TCP accept + connect + echo over 127.0.0.1: the bytes come back exactly,
 * both ends are non-blocking close-on-exec, and accept's peer address is
 * 127.0.0.1 with the client's own port. */
START_TEST(test_tcp_echo)
{
	struct echo_ctx c;

	memset(&c, 0, sizeof c);
	c.family = AF_INET;
	TU_RUN(echo_main, &c, 0);
	check_echo(&c);
	const struct sockaddr_in *p = (const struct sockaddr_in *)&c.peer;
	ck_assert_int_eq(p->sin_family, AF_INET);
	ck_assert_uint_eq(ntohl(p->sin_addr.s_addr), INADDR_LOOPBACK);
	ck_assert_uint_eq(ntohs(p->sin_port), c.cli_port);
	ck_assert_uint_ne(c.cli_port, 0);
}
END_TEST

/* The same over [::1]: the peer is ::1 with the client's port. */
START_TEST(test_tcp_echo_v6)
{
	struct echo_ctx c;

	if (!have_ipv6()) {
		fprintf(stderr, "test_tcp_echo_v6: no IPv6 here, skipped\n");
		return;
	}
	memset(&c, 0, sizeof c);
	c.family = AF_INET6;
	TU_RUN(echo_main, &c, 0);
	check_echo(&c);
	const struct sockaddr_in6 *p = (const struct sockaddr_in6 *)&c.peer;
	ck_assert_int_eq(p->sin6_family, AF_INET6);
	ck_assert_mem_eq(&p->sin6_addr, &in6addr_loopback, sizeof in6addr_loopback);
	ck_assert_uint_eq(ntohs(p->sin6_port), c.cli_port);
}
END_TEST

struct refused_ctx {
	uint16_t port;
	int rc;
	gb_sock *out;
	int64_t ms;
};

static int refused_main(void *arg)
{
	struct refused_ctx *c = arg;
	struct sockaddr_in sin = lo4(c->port);
	int64_t t0 = gb_now();

	c->out = (gb_sock *)c;
	c->rc = gb_sock_connect(&c->out, (struct sockaddr *)&sin, sizeof sin,
	                        gb_after(GB_SEC(5)));
	c->ms = tu_ms_since(t0);
	if (c->rc == 0)
		gb_sock_close(c->out);
	return 0;
}

/* Connecting to a loopback port nobody listens on is -ECONNREFUSED, at
 * once (the port is held by a bound, non-listening socket). */
START_TEST(test_connect_refused)
{
	struct refused_ctx c;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = lo4(0);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
	memset(&c, 0, sizeof c);
	c.port = local_port(fd);
	TU_RUN(refused_main, &c, 0);
	ck_assert_int_eq(c.rc, -ECONNREFUSED);
	ck_assert_int_lt(c.ms, tu_slack_ms(1000));
	close(fd);
}
END_TEST

/* ---------------------------------------- a connect that cannot finish */

/* Fills the accept queue of a listener with backlog 1 until a connect
 * hangs (Linux drops SYNs to a listener whose accept queue is full).
 * The fds are kept in fill[]; returns 1 once a connect hangs, 0 if this
 * system never made one hang (then the caller skips). */
#define FILL_MAX 16
static int fill_backlog(uint16_t port, int *fill, int *nfill)
{
	struct sockaddr_in sin = lo4(port);

	*nfill = 0;
	while (*nfill < FILL_MAX) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return 0;
		fill[(*nfill)++] = fd;
		if (connect(fd, (struct sockaddr *)&sin, sizeof sin) == 0)
			continue;
		if (errno != EINPROGRESS)
			return 0;
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		if (poll(&p, 1, 100) == 0)
			return 1; /* this one hangs: the queue is full */
	}
	return 0;
}

static void close_fill(int *fill, int nfill)
{
	for (int i = 0; i < nfill; i++)
		close(fill[i]);
}

struct cdl_ctx {
	int skipped;
	int rc;
	int64_t ms;
	int fill[FILL_MAX], nfill;
};

static int cdl_main(void *arg)
{
	struct cdl_ctx *c = arg;
	gb_sock *ls, *s;
	uint16_t port;
	gb_listen_opts o = { .backlog = 1, .v6only = -1 };

	if (listen_lo4(&ls, &o, &port))
		return -1;
	if (!fill_backlog(port, c->fill, &c->nfill)) {
		c->skipped = 1;
	} else {
		struct sockaddr_in sin = lo4(port);
		int64_t t0 = gb_now();
		c->rc = gb_sock_connect(&s, (struct sockaddr *)&sin, sizeof sin,
		                        gb_after(GB_MSEC(150)));
		c->ms = tu_ms_since(t0);
		if (c->rc == 0)
			gb_sock_close(s);
	}
	close_fill(c->fill, c->nfill);
	gb_sock_close(ls);
	return 0;
}

/* A connect that cannot complete (the listener's accept queue is full)
 * ends with -ETIMEDOUT at its deadline. Skipped if this kernel completes
 * connects to a full queue anyway. */
START_TEST(test_connect_deadline)
{
	struct cdl_ctx c;

	memset(&c, 0, sizeof c);
	TU_RUN(cdl_main, &c, 0);
	if (c.skipped) {
		fprintf(stderr, "test_connect_deadline: could not make a connect "
		        "hang on loopback, skipped\n");
		return;
	}
	ck_assert_int_eq(c.rc, -ETIMEDOUT);
	ck_assert_int_ge(c.ms, 150);
	ck_assert_int_lt(c.ms, tu_slack_ms(300));
}
END_TEST

/* ========================================================= deadlines */

struct dl_ctx {
	int acc_rc, recv_rc, line_rc, sleep_rc;
	int64_t acc_ms, recv_ms, line_ms;
	ssize_t recv_after;
	char buf[8];
};

static int dl_main(void *arg)
{
	struct dl_ctx *c = arg;
	gb_sock *ls, *a, *b, *cl;
	const char *line;
	int64_t t0;

	if (listen_lo4(&ls, NULL, NULL) || unix_pair(&a, &b))
		return -1;
	t0 = gb_now();
	c->acc_rc = gb_sock_accept(ls, &cl, NULL, gb_after(GB_MSEC(100)));
	c->acc_ms = tu_ms_since(t0);
	t0 = gb_now();
	c->recv_rc = (int)gb_sock_recv(a, c->buf, sizeof c->buf,
	                               gb_after(GB_MSEC(100)));
	c->recv_ms = tu_ms_since(t0);
	t0 = gb_now();
	c->line_rc = (int)gb_sock_recv_line(a, 64, &line, gb_after(GB_MSEC(100)));
	c->line_ms = tu_ms_since(t0);
	/* the socket still works after a timed-out wait */
	write(gb_sock_fd(b), "ok", 2);
	c->recv_after = gb_sock_recv(a, c->buf, sizeof c->buf, gb_after(GB_SEC(5)));
	gb_sock_close(a);
	gb_sock_close(b);
	gb_sock_close(ls);
	return 0;
}

/* accept, recv and recv_line with nothing coming fail with -ETIMEDOUT at
 * their deadline (not before, not much after). */
START_TEST(test_deadlines)
{
	struct dl_ctx c;

	memset(&c, 0, sizeof c);
	TU_RUN(dl_main, &c, 0);
	ck_assert_int_eq(c.acc_rc, -ETIMEDOUT);
	ck_assert_int_eq(c.recv_rc, -ETIMEDOUT);
	ck_assert_int_eq(c.line_rc, -ETIMEDOUT);
	ck_assert_int_ge(c.acc_ms, 100);
	ck_assert_int_ge(c.recv_ms, 100);
	ck_assert_int_ge(c.line_ms, 100);
	ck_assert_int_lt(c.acc_ms, tu_slack_ms(180));
	ck_assert_int_lt(c.recv_ms, tu_slack_ms(180));
	ck_assert_int_lt(c.line_ms, tu_slack_ms(180));
	ck_assert_int_eq(c.recv_after, 2);
	ck_assert_mem_eq(c.buf, "ok", 2);
}
END_TEST

/* ============================================ partial writes, sendv */

struct pw_ctx {
	int kind;
	int vec;              /* use gb_sock_sendv_all with uneven pieces */
	size_t total;
	int pair_rc;
	int snd_fd;
	int send_rc;
	size_t sent;
	struct reader rd;
	int grc;
	int64_t ms;
};

struct pw_sender {
	struct pw_ctx *c;
	gb_sock *s;
};

static int pw_send_fn(void *arg)
{
	struct pw_sender *ps = arg;
	struct pw_ctx *c = ps->c;

	if (!c->vec) {
		c->send_rc = gb_sock_send_all(ps->s, big, c->total, &c->sent,
		                              gb_after(GB_SEC(10)));
	} else {
		/* uneven pieces, empty ones among them, summing to total */
		static const size_t cut[] = { 0, 300000, 0, 200001, 1, 0, 7, 0,
		                              123456, 0 };
		struct iovec iov[GB_IOV_MAX];
		size_t off = 0;
		int n = 0;
		for (size_t i = 0; i < sizeof cut / sizeof cut[0]; i++) {
			iov[n].iov_base = big + off;
			iov[n].iov_len = cut[i];
			off += cut[i];
			n++;
		}
		iov[n].iov_base = big + off;
		iov[n].iov_len = c->total - off;
		n++;
		iov[n].iov_base = big + c->total;
		iov[n].iov_len = 0;
		n++;
		c->send_rc = gb_sock_sendv_all(ps->s, iov, n, &c->sent,
		                               gb_after(GB_SEC(10)));
	}
	return 0;
}

static int pw_main(void *arg)
{
	struct pw_ctx *c = arg;
	gb_sock *a, *b;
	struct pw_sender ps;
	gb_group *g;
	int64_t t0 = gb_now();

	c->pair_rc = make_pair(c->kind, &a, &b, 4096);
	if (c->pair_rc)
		return 0;
	set_int_opt(gb_sock_fd(a), SOL_SOCKET, SO_SNDBUF, 4096);
	c->snd_fd = gb_sock_fd(a);
	hk.fd = c->snd_fd;
	ps = (struct pw_sender){ c, a };
	c->rd = (struct reader){ .s = b, .want = c->total, .chunk = 1000,
	                         .sleep_every = 16,
	                         .deadline = gb_after(GB_SEC(10)) };
	g = tu_group();
	tu_go(g, pw_send_fn, &ps);
	tu_go(g, reader_fn, &c->rd);
	c->grc = tu_join(g);
	c->ms = tu_ms_since(t0);
	gb_sock_close(a);
	gb_sock_close(b);
	return 0;
}

static void run_partial(int kind, int vec)
{
	struct pw_ctx c;

	fill_big();
	memset(&c, 0, sizeof c);
	c.kind = kind;
	c.vec = vec;
	c.total = 1u << 20;
	hooks_on();
	TU_RUN(pw_main, &c, 0);
	gb_set_hooks(NULL);
	ck_assert_int_eq(c.pair_rc, 0);
	ck_assert_int_eq(c.grc, 0);
	ck_assert_msg(c.send_rc == 0, "%s: send = %d", pair_name[kind], c.send_rc);
	ck_assert_uint_eq(c.sent, c.total);
	ck_assert_uint_eq(c.rd.got, c.total);
	ck_assert_msg(c.rd.bad_at == SIZE_MAX, "%s: byte %zu differs",
	              pair_name[kind], c.rd.bad_at);
	/* the sender really met a full buffer and waited (partial writes) */
	ck_assert_int_gt(hk.write_waits, 0);
	/* and the reader really read in many small pieces */
	ck_assert_int_ge(c.rd.reads, (long)(c.total / 1000));
}

/* 1 MiB through a 4 KiB send buffer and a slow reader reading 1000-byte
 * chunks: send_all loops over partial writes, every byte arrives in
 * order, *sent == 1 MiB (socketpair and TCP). */
START_TEST(test_partial_writes)
{
	run_partial(_i, 0);
}
END_TEST

/* The same with gb_sock_sendv_all and uneven pieces, empty ones included:
 * the pieces are advanced correctly across partial writes. */
START_TEST(test_partial_writes_vec)
{
	run_partial(_i, 1);
}
END_TEST

struct sv_ctx {
	int rc1, rc_empty, rc_none, rcmax;
	size_t sent1, sent_empty, sent_none, sentmax;
	char got1[16], gotmax[2 * GB_IOV_MAX], letters[2 * GB_IOV_MAX];
	ssize_t n1, nmax, n_after_empty;
};

static int sv_main(void *arg)
{
	struct sv_ctx *c = arg;
	gb_sock *a, *b;
	char junk = 0;

	if (unix_pair(&a, &b))
		return -1;
	struct iovec v1[] = {
		{ (void *)"", 0 }, { (void *)"ab", 2 }, { (void *)"", 0 },
		{ (void *)"cde", 3 }, { NULL, 0 }, { (void *)"", 0 },
		{ (void *)"f", 1 }, { NULL, 0 },
	};
	c->sent1 = 999;
	c->rc1 = gb_sock_sendv_all(a, v1, 8, &c->sent1, gb_after(GB_SEC(5)));
	c->n1 = gb_sock_recv(b, c->got1, sizeof c->got1, gb_after(GB_SEC(5)));

	/* only empty pieces, and no pieces: nothing sent, no wait */
	struct iovec v0[] = { { NULL, 0 }, { &junk, 0 }, { NULL, 0 } };
	c->sent_empty = 999;
	c->rc_empty = gb_sock_sendv_all(a, v0, 3, &c->sent_empty,
	                                gb_after(GB_SEC(5)));
	c->sent_none = 999;
	c->rc_none = gb_sock_sendv_all(a, v0, 0, &c->sent_none,
	                               gb_after(GB_SEC(5)));

	/* GB_IOV_MAX pieces of one to two bytes, in order from letters */
	struct iovec vmax[GB_IOV_MAX];
	size_t off = 0;
	for (size_t i = 0; i < sizeof c->letters; i++)
		c->letters[i] = (char)((i % 2 ? 'a' : 'A') + i / 2 % 26);
	for (int i = 0; i < GB_IOV_MAX; i++) {
		vmax[i].iov_base = c->letters + off;
		vmax[i].iov_len = (size_t)(1 + i % 2);
		off += vmax[i].iov_len;
	}
	c->sentmax = 999;
	c->rcmax = gb_sock_sendv_all(a, vmax, GB_IOV_MAX, &c->sentmax,
	                             gb_after(GB_SEC(5)));
	c->nmax = gb_sock_recv(b, c->gotmax, sizeof c->gotmax,
	                       gb_after(GB_SEC(5)));
	/* nothing else was sent: the empty sends put nothing on the wire */
	c->n_after_empty = recv(gb_sock_fd(b), &junk, 1, MSG_DONTWAIT);
	gb_sock_close(a);
	gb_sock_close(b);
	return 0;
}

/* sendv_all skips empty pieces anywhere (exact bytes "abcdef", *sent 6),
 * all-empty and zero-piece sends return 0 with *sent 0, and GB_IOV_MAX
 * pieces go out in order. */
START_TEST(test_sendv_pieces)
{
	struct sv_ctx c;

	memset(&c, 0, sizeof c);
	TU_RUN(sv_main, &c, 0);
	ck_assert_int_eq(c.rc1, 0);
	ck_assert_uint_eq(c.sent1, 6);
	ck_assert_int_eq(c.n1, 6);
	ck_assert_mem_eq(c.got1, "abcdef", 6);
	ck_assert_int_eq(c.rc_empty, 0);
	ck_assert_uint_eq(c.sent_empty, 0);
	ck_assert_int_eq(c.rc_none, 0);
	ck_assert_uint_eq(c.sent_none, 0);
	ck_assert_int_eq(c.rcmax, 0);
	ck_assert_uint_eq(c.sentmax, GB_IOV_MAX / 2 * 3);
	ck_assert_int_eq(c.nmax, GB_IOV_MAX / 2 * 3);
	ck_assert_mem_eq(c.gotmax, c.letters, GB_IOV_MAX / 2 * 3);
	ck_assert_int_eq(c.n_after_empty, -1);
}
END_TEST

/* Replies of up to 256 bytes are copied into one buffer and sent with
 * one send(); longer ones go as they are. Totals on both sides of that
 * size, made of three uneven pieces, arrive whole and in order. */
struct gather_ctx {
	int rc[3];
	size_t sent[3];
	ssize_t got[3];
	int same[3];
};

static int gather_main(void *arg)
{
	static const size_t totals[3] = { 255, 256, 257 };
	struct gather_ctx *c = arg;
	char out[300], in[600];
	gb_sock *a, *b;

	if (unix_pair(&a, &b))
		return -1;
	for (size_t i = 0; i < sizeof out; i++)
		out[i] = (char)('a' + i % 26);
	for (int k = 0; k < 3; k++) {
		size_t n = totals[k];
		struct iovec v[] = { { out, 5 }, { out + 5, n - 6 },
		                     { out + n - 1, 1 } };
		c->rc[k] = gb_sock_sendv_all(a, v, 3, &c->sent[k],
		                             gb_after(GB_SEC(5)));
		c->got[k] = gb_sock_recv(b, in, sizeof in, gb_after(GB_SEC(5)));
		c->same[k] = c->got[k] == (ssize_t)n && !memcmp(in, out, n);
	}
	gb_sock_close(a);
	gb_sock_close(b);
	return 0;
}

START_TEST(test_sendv_gather_sizes)
{
	struct gather_ctx c;

	memset(&c, 0, sizeof c);
	TU_RUN(gather_main, &c, 0);
	for (int k = 0; k < 3; k++) {
		ck_assert_int_eq(c.rc[k], 0);
		ck_assert_uint_eq(c.sent[k], 255 + (size_t)k);
		ck_assert_int_eq(c.got[k], 255 + k);
		ck_assert(c.same[k]);
	}
}
END_TEST

struct adv_ctx {
	int cnt_a, cnt_b, cnt_c, cnt_d, cnt_e;
	struct iovec v[5];
	struct iovec *pa, *pb, *pc, *pd, *pe;
};

static int adv_main(void *arg)
{
	struct adv_ctx *c = arg;
	static char d[16] = "0123456789abcdef";
	struct iovec *p;
	int cnt;

	/* pieces: "" "012" "" "3456" "789ab" */
	c->v[0] = (struct iovec){ d, 0 };
	c->v[1] = (struct iovec){ d, 3 };
	c->v[2] = (struct iovec){ d + 3, 0 };
	c->v[3] = (struct iovec){ d + 3, 4 };
	c->v[4] = (struct iovec){ d + 7, 5 };

	/* 0 bytes: empty leading pieces are whole pieces, dropped */
	p = c->v; cnt = 5;
	gb_iov_advance(&p, &cnt, 0);
	c->pa = p; c->cnt_a = cnt;
	/* into the middle of "012": shortened in place */
	gb_iov_advance(&p, &cnt, 2);
	c->pb = p; c->cnt_b = cnt;
	/* the rest of "2" exactly: that piece and the empty one after go */
	gb_iov_advance(&p, &cnt, 1);
	c->pc = p; c->cnt_c = cnt;
	/* across a piece boundary: all of "3456" and "78" of the next */
	gb_iov_advance(&p, &cnt, 6);
	c->pd = p; c->cnt_d = cnt;
	/* the remainder: nothing is left */
	gb_iov_advance(&p, &cnt, 3);
	c->pe = p; c->cnt_e = cnt;
	return 0;
}

/* gb_iov_advance drops n bytes as after a partial write: whole pieces are
 * skipped (empty ones included), the first remaining one is shortened in
 * place (its base moves forward), and exactly the total leaves 0 pieces. */
START_TEST(test_iov_advance)
{
	struct adv_ctx c;

	memset(&c, 0, sizeof c);
	TU_RUN(adv_main, &c, 0);
	ck_assert_int_eq(c.cnt_a, 4);
	ck_assert_ptr_eq(c.pa, &c.v[1]);
	ck_assert_int_eq(c.cnt_b, 4);
	ck_assert_ptr_eq(c.pb, &c.v[1]);
	ck_assert_uint_eq(c.v[1].iov_len, 1);
	ck_assert_int_eq(*(char *)c.v[1].iov_base, '2');
	ck_assert_int_eq(c.cnt_c, 2);
	ck_assert_ptr_eq(c.pc, &c.v[3]);
	ck_assert_uint_eq(c.v[3].iov_len, 4);
	ck_assert_int_eq(c.cnt_d, 1);
	ck_assert_ptr_eq(c.pd, &c.v[4]);
	ck_assert_uint_eq(c.v[4].iov_len, 3);
	ck_assert_int_eq(*(char *)c.v[4].iov_base, '9');
	ck_assert_int_eq(c.cnt_e, 0);
}
END_TEST

/* ===================================================== send deadline */

struct sdl_ctx {
	int kind;
	int pair_rc;
	int rc;
	size_t sent;
	int64_t ms;
	struct reader rd;
	int grc;
};

static int sdl_main(void *arg)
{
	struct sdl_ctx *c = arg;
	gb_sock *a, *b;
	gb_group *g;
	int64_t t0;

	c->pair_rc = make_pair(c->kind, &a, &b, 65536);
	if (c->pair_rc)
		return 0;
	set_int_opt(gb_sock_fd(a), SOL_SOCKET, SO_SNDBUF, 65536);
	c->sent = 12345678;
	t0 = gb_now();
	/* nobody reads b yet */
	c->rc = gb_sock_send_all(a, big, BIG_LEN, &c->sent,
	                         gb_after(GB_MSEC(200)));
	c->ms = tu_ms_since(t0);
	/* the writer goes away; b must hold exactly what was accepted */
	gb_sock_close(a);
	c->rd = (struct reader){ .s = b, .want = SIZE_MAX, .chunk = 4096,
	                         .deadline = gb_after(GB_SEC(10)) };
	g = tu_group();
	tu_go(g, reader_fn, &c->rd);
	c->grc = tu_join(g);
	gb_sock_close(b);
	return 0;
}

/* send_all to a peer that does not read fails with -ETIMEDOUT at the
 * deadline, and *sent is exactly the byte count the peer then receives
 * (0 < sent < total). */
START_TEST(test_send_deadline)
{
	struct sdl_ctx c;

	fill_big();
	memset(&c, 0, sizeof c);
	c.kind = _i;
	TU_RUN(sdl_main, &c, 0);
	ck_assert_int_eq(c.pair_rc, 0);
	ck_assert_int_eq(c.rc, -ETIMEDOUT);
	ck_assert_int_ge(c.ms, 200);
	ck_assert_int_lt(c.ms, tu_slack_ms(300));
	ck_assert_uint_gt(c.sent, 0);
	ck_assert_uint_lt(c.sent, BIG_LEN);
	ck_assert_int_eq(c.grc, 0);
	ck_assert_int_eq(c.rd.last, 0); /* ended at end of stream */
	ck_assert_msg(c.rd.got == c.sent, "%s: *sent = %zu, the peer got %zu",
	              pair_name[_i], c.sent, c.rd.got);
	ck_assert_uint_eq(c.rd.bad_at, SIZE_MAX);
}
END_TEST

/* ====================================================== cancellation */

enum cop { OP_RECV, OP_RECV_LINE, OP_SEND_ALL, OP_ACCEPT, OP_CONNECT, OP_N };
static const char *const op_name[] = {
	"recv", "recv_line", "send_all", "accept", "connect"
};

struct cancel_ctx {
	int op;
	gb_sock *s;              /* the socket to work on (listener for accept) */
	struct sockaddr_in to;   /* connect's target */
	int skipped;
	int started;
	int rc, rc_again;
	size_t sent;
	int64_t t_cancel, t_ret;
	/* send_all: what the peer received afterwards */
	long peer_got;
	size_t peer_bad;
	int fill[FILL_MAX], nfill;
};

static int do_op(struct cancel_ctx *c, int64_t deadline)
{
	char buf[16];
	const char *line;
	gb_sock *out;
	int rc;

	switch (c->op) {
	case OP_RECV:
		return (int)gb_sock_recv(c->s, buf, sizeof buf, deadline);
	case OP_RECV_LINE:
		return (int)gb_sock_recv_line(c->s, 64, &line, deadline);
	case OP_SEND_ALL:
		return gb_sock_send_all(c->s, big, BIG_LEN, &c->sent, deadline);
	case OP_ACCEPT:
		rc = gb_sock_accept(c->s, &out, NULL, deadline);
		if (rc == 0)
			gb_sock_close(out);
		return rc;
	case OP_CONNECT:
		rc = gb_sock_connect(&out, (struct sockaddr *)&c->to, sizeof c->to,
		                     deadline);
		if (rc == 0)
			gb_sock_close(out);
		return rc;
	}
	return -EINVAL;
}

static int cancel_waiter(void *arg)
{
	struct cancel_ctx *c = arg;

	c->started = 1;
	c->rc = do_op(c, gb_after(GB_SEC(5)));
	c->t_ret = gb_now();
	/* level-triggered: it fails again even though the operation could
	 * now succeed at once (the main task made it possible) */
	gb_yield();
	size_t first_sent = c->sent;
	c->rc_again = do_op(c, gb_after(GB_SEC(5)));
	if (c->op == OP_SEND_ALL)
		c->sent = first_sent + c->sent;
	return 0;
}

static int cancel_main(void *arg)
{
	struct cancel_ctx *c = arg;
	gb_sock *a = NULL, *b = NULL, *ls = NULL;
	gb_group *g;
	gb_task *h;
	uint16_t port;

	switch (c->op) {
	case OP_RECV:
	case OP_RECV_LINE:
	case OP_SEND_ALL:
		if (unix_pair(&a, &b))
			return -1;
		set_int_opt(gb_sock_fd(a), SOL_SOCKET, SO_SNDBUF, 65536);
		c->s = a;
		break;
	case OP_ACCEPT:
		if (listen_lo4(&ls, NULL, &port))
			return -1;
		c->s = ls;
		break;
	case OP_CONNECT: {
		gb_listen_opts o = { .backlog = 1, .v6only = -1 };
		if (listen_lo4(&ls, &o, &port))
			return -1;
		if (!fill_backlog(port, c->fill, &c->nfill)) {
			c->skipped = 1;
			goto out;
		}
		c->to = lo4(port);
		break;
	}
	}
	g = tu_group();
	h = tu_spawn(g, cancel_waiter, c);
	gb_sleep(gb_after(GB_MSEC(50)));
	c->t_cancel = gb_now();
	gb_cancel(h);
	/* make the operation possible at once for the second try */
	if (c->op == OP_RECV || c->op == OP_RECV_LINE)
		write(gb_sock_fd(b), "data\n", 5);
	else if (c->op == OP_ACCEPT) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		struct sockaddr_in sin = lo4(port);
		connect(fd, (struct sockaddr *)&sin, sizeof sin);
		c->fill[c->nfill++] = fd;
	} else if (c->op == OP_CONNECT) {
		close_fill(c->fill, c->nfill); /* frees room in the queue */
		c->nfill = 0;
	}
	tu_join(g);
	gb_task_release(h);
	if (c->op == OP_SEND_ALL) {
		gb_sock_close(a);
		a = NULL;
		c->peer_got = drain_raw(gb_sock_fd(b), 2000, &c->peer_bad);
	}
out:
	close_fill(c->fill, c->nfill);
	if (a)
		gb_sock_close(a);
	if (b)
		gb_sock_close(b);
	if (ls)
		gb_sock_close(ls);
	return 0;
}

/* Cancelling a task blocked in recv / recv_line / send_all / accept /
 * connect returns -ECANCELED promptly, and the next call fails the same
 * way even when it could succeed at once; a cancelled send_all still
 * reports exactly the bytes that went out. */
START_TEST(test_cancel_blocked)
{
	struct cancel_ctx c;

	fill_big();
	memset(&c, 0, sizeof c);
	c.op = _i;
	TU_RUN(cancel_main, &c, 0);
	if (c.skipped) {
		fprintf(stderr, "test_cancel_blocked(%s): could not make a connect "
		        "hang on loopback, skipped\n", op_name[_i]);
		return;
	}
	ck_assert(c.started);
	ck_assert_msg(c.rc == -ECANCELED, "%s: rc = %d", op_name[_i], c.rc);
	ck_assert_msg(c.rc_again == -ECANCELED, "%s again: rc = %d",
	              op_name[_i], c.rc_again);
	ck_assert_int_ge(c.t_ret, c.t_cancel);
	ck_assert_msg(c.t_ret - c.t_cancel < GB_MSEC(tu_slack_ms(30)),
	              "%s: returned %lld ms after gb_cancel", op_name[_i],
	              (long long)((c.t_ret - c.t_cancel) / 1000000));
	if (c.op == OP_SEND_ALL) {
		ck_assert_uint_gt(c.sent, 0);
		ck_assert_uint_lt(c.sent, BIG_LEN);
		ck_assert_int_eq(c.peer_got, (long)c.sent);
		ck_assert_uint_eq(c.peer_bad, SIZE_MAX);
	}
}
END_TEST

struct precancel_ctx {
	int rc_recv, rc_line, rc_send, rc_acc, rc_conn;
	size_t sent;
};

static int precancel_main(void *arg)
{
	struct precancel_ctx *c = arg;
	gb_sock *a, *b, *ls, *out;
	char buf[8];
	const char *line;
	uint16_t port;

	if (unix_pair(&a, &b) || listen_lo4(&ls, NULL, &port))
		return -1;
	struct sockaddr_in sin = lo4(port);
	/* everything is possible at once: data, room, a pending client */
	write(gb_sock_fd(b), "x\n", 2);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	connect(fd, (struct sockaddr *)&sin, sizeof sin);
	gb_cancel(gb_self());
	c->rc_recv = (int)gb_sock_recv(a, buf, sizeof buf, GB_NEVER);
	c->rc_line = (int)gb_sock_recv_line(a, 8, &line, GB_NEVER);
	c->sent = 999;
	c->rc_send = gb_sock_send_all(a, "y", 1, &c->sent, GB_NEVER);
	c->rc_acc = gb_sock_accept(ls, &out, NULL, GB_NEVER);
	if (c->rc_acc == 0)
		gb_sock_close(out);
	c->rc_conn = gb_sock_connect(&out, (struct sockaddr *)&sin, sizeof sin,
	                             GB_NEVER);
	if (c->rc_conn == 0)
		gb_sock_close(out);
	close(fd);
	gb_sock_close(a);
	gb_sock_close(b);
	gb_sock_close(ls);
	return 0;
}

/* A task that is already cancelled gets -ECANCELED from every socket call
 * even though each could complete at once, and send_all reports 0 sent. */
START_TEST(test_cancelled_ready)
{
	struct precancel_ctx c;

	memset(&c, 0, sizeof c);
	TU_RUN(precancel_main, &c, 0);
	ck_assert_int_eq(c.rc_recv, -ECANCELED);
	ck_assert_int_eq(c.rc_line, -ECANCELED);
	ck_assert_int_eq(c.rc_send, -ECANCELED);
	ck_assert_uint_eq(c.sent, 0);
	ck_assert_int_eq(c.rc_acc, -ECANCELED);
	ck_assert_int_eq(c.rc_conn, -ECANCELED);
}
END_TEST

struct cbuf_ctx {
	ssize_t first;
	ssize_t rc_recv, rc_line;
};

static int cbuf_main(void *arg)
{
	struct cbuf_ctx *c = arg;
	gb_sock *a, *b;
	const char *line;
	char buf[16];

	if (unix_pair(&a, &b))
		return -1;
	write(gb_sock_fd(b), "one\ntwo\nrest", 12);
	/* leaves "two\nrest" in a's buffer */
	c->first = gb_sock_recv_line(a, 64, &line, gb_after(GB_SEC(5)));
	gb_cancel(gb_self());
	c->rc_line = gb_sock_recv_line(a, 64, &line, GB_NEVER);
	c->rc_recv = gb_sock_recv(a, buf, sizeof buf, GB_NEVER);
	gb_sock_close(a);
	gb_sock_close(b);
	return 0;
}

/* Receiving is a checkpoint even when the answer is already in the
 * socket's own buffer: a cancelled task gets -ECANCELED from recv_line
 * and recv (gb.h: "every blocking call" fails once cancelled). */
START_TEST(test_cancelled_buffered)
{
	struct cbuf_ctx c;

	memset(&c, 0, sizeof c);
	TU_RUN(cbuf_main, &c, 0);
	ck_assert_int_eq(c.first, 4);
	ck_assert_msg(c.rc_line == -ECANCELED,
	              "recv_line of a buffered line in a cancelled task = %zd",
	              c.rc_line);
	ck_assert_msg(c.rc_recv == -ECANCELED,
	              "recv of buffered bytes in a cancelled task = %zd",
	              c.rc_recv);
}
END_TEST

/* ================================================ close while waiting */

enum { CW_RECV_LINE, CW_ACCEPT, CW_RECV, CW_SEND_ALL, CW_BOTH, CW_N };
static const char *const cw_name[] = {
	"recv_line", "accept", "recv", "send_all", "reader+writer"
};

struct cw_waiter {
	int op;
	gb_sock *s;
	int rc;
	size_t sent;
	int64_t t_ret;
	int done;
};

static int cw_waiter_fn(void *arg)
{
	struct cw_waiter *w = arg;
	char buf[16];
	const char *line;
	gb_sock *out;

	switch (w->op) {
	case CW_RECV_LINE:
		w->rc = (int)gb_sock_recv_line(w->s, 64, &line, gb_after(GB_SEC(5)));
		break;
	case CW_ACCEPT:
		w->rc = gb_sock_accept(w->s, &out, NULL, gb_after(GB_SEC(5)));
		if (w->rc == 0)
			gb_sock_close(out);
		break;
	case CW_RECV:
		w->rc = (int)gb_sock_recv(w->s, buf, sizeof buf, gb_after(GB_SEC(5)));
		break;
	case CW_SEND_ALL:
		w->rc = gb_sock_send_all(w->s, big, BIG_LEN, &w->sent,
		                         gb_after(GB_SEC(5)));
		break;
	}
	w->t_ret = gb_now();
	w->done = 1;
	return 0;
}

struct cw_ctx {
	int op;
	struct cw_waiter w[2];
	int nw;
	int64_t t_close;
	int done_before_close;
};

static int cw_main(void *arg)
{
	struct cw_ctx *c = arg;
	gb_sock *s, *peer = NULL;
	gb_group *g;

	if (c->op == CW_ACCEPT) {
		if (listen_lo4(&s, NULL, NULL))
			return -1;
	} else {
		if (unix_pair(&s, &peer))
			return -1;
		set_int_opt(gb_sock_fd(s), SOL_SOCKET, SO_SNDBUF, 4096);
	}
	switch (c->op) {
	case CW_BOTH:
		c->nw = 2;
		c->w[0] = (struct cw_waiter){ .op = CW_RECV_LINE, .s = s };
		c->w[1] = (struct cw_waiter){ .op = CW_SEND_ALL, .s = s };
		break;
	default:
		c->nw = 1;
		c->w[0] = (struct cw_waiter){ .op = c->op, .s = s };
	}
	g = tu_group();
	for (int i = 0; i < c->nw; i++)
		tu_go(g, cw_waiter_fn, &c->w[i]);
	gb_sleep(gb_after(GB_MSEC(50)));
	for (int i = 0; i < c->nw; i++)
		c->done_before_close |= c->w[i].done;
	c->t_close = gb_now();
	gb_sock_close(s);
	tu_join(g);
	if (peer)
		gb_sock_close(peer);
	return 0;
}

/* Closing a socket wakes the tasks blocked on it (in recv_line, accept,
 * recv, send_all, or a reader and a writer at once) with -EBADF, at once. */
START_TEST(test_close_wakes_waiter)
{
	struct cw_ctx c;

	fill_big();
	memset(&c, 0, sizeof c);
	c.op = _i;
	TU_RUN(cw_main, &c, 0);
	ck_assert_int_eq(c.done_before_close, 0);
	for (int i = 0; i < c.nw; i++) {
		ck_assert_msg(c.w[i].rc == -EBADF, "%s: waiter %d rc = %d",
		              cw_name[_i], i, c.w[i].rc);
		ck_assert_msg(c.w[i].t_ret - c.t_close < GB_MSEC(tu_slack_ms(20)),
		              "%s: woke %lld ms after close", cw_name[_i],
		              (long long)((c.w[i].t_ret - c.t_close) / 1000000));
	}
}
END_TEST

/* ================================================= end of stream */

struct eof_ctx {
	ssize_t rc_wait, rc_again, rc_line, rc_pre;
	char buf[8];
	ssize_t n_data;
};

/* Closes the socket in arg after 30 ms. */
static int close_later(void *arg)
{
	gb_sock *b = arg;

	gb_sleep(gb_after(GB_MSEC(30)));
	gb_sock_close(b);
	return 0;
}

static int eof_main(void *arg)
{
	struct eof_ctx *c = arg;
	gb_sock *a, *b;
	gb_group *g;

	if (unix_pair(&a, &b))
		return -1;
	/* data written before the close is still read first */
	write(gb_sock_fd(b), "tail", 4);
	c->n_data = gb_sock_recv(a, c->buf, sizeof c->buf, gb_after(GB_SEC(5)));
	g = tu_group();
	tu_go(g, close_later, b);
	/* blocked when the peer closes */
	c->rc_wait = gb_sock_recv(a, c->buf, sizeof c->buf, gb_after(GB_SEC(5)));
	tu_join(g);
	c->rc_again = gb_sock_recv(a, c->buf, sizeof c->buf, gb_after(GB_SEC(5)));
	c->rc_line = gb_sock_recv_line(a, 16, &(const char *){ NULL },
	                               gb_after(GB_SEC(5)));
	gb_sock_close(a);

	/* already closed before the first recv */
	if (unix_pair(&a, &b))
		return -1;
	gb_sock_close(b);
	c->rc_pre = gb_sock_recv(a, c->buf, sizeof c->buf, gb_after(GB_SEC(5)));
	gb_sock_close(a);
	return 0;
}

/* When the peer closes, recv returns 0 (whether it was waiting or the
 * close came first), and keeps returning 0; recv_line too. */
START_TEST(test_peer_close)
{
	struct eof_ctx c;

	memset(&c, 0, sizeof c);
	TU_RUN(eof_main, &c, 0);
	ck_assert_int_eq(c.n_data, 4);
	ck_assert_mem_eq(c.buf, "tail", 4);
	ck_assert_int_eq(c.rc_wait, 0);
	ck_assert_int_eq(c.rc_again, 0);
	ck_assert_int_eq(c.rc_line, 0);
	ck_assert_int_eq(c.rc_pre, 0);
}
END_TEST

struct half_ctx {
	int shut_rc;
	/* server side */
	char srv_buf[32];
	size_t srv_got;
	ssize_t srv_last;
	int srv_send;
	/* client side */
	char cli_buf[32];
	size_t cli_got;
	ssize_t cli_last;
};

struct half_ends {
	struct half_ctx *c;
	gb_sock *cli, *srv;
};

static int half_server(void *arg)
{
	struct half_ends *e = arg;
	struct half_ctx *c = e->c;

	for (;;) {
		ssize_t n = gb_sock_recv(e->srv, c->srv_buf + c->srv_got,
		                         sizeof c->srv_buf - c->srv_got,
		                         gb_after(GB_SEC(5)));
		if (n <= 0) {
			c->srv_last = n;
			break;
		}
		c->srv_got += (size_t)n;
	}
	/* the client will not send any more, but still listens */
	gb_sleep(gb_after(GB_MSEC(20)));
	c->srv_send = gb_sock_send_all(e->srv, "reply after EOF", 15, NULL,
	                               gb_after(GB_SEC(5)));
	gb_sock_close(e->srv);
	return 0;
}

static int half_main(void *arg)
{
	struct half_ctx *c = arg;
	struct half_ends e = { c, NULL, NULL };
	gb_group *g;

	if (tcp_pair(&e.cli, &e.srv, 0))
		return -1;
	g = tu_group();
	tu_go(g, half_server, &e);
	gb_sock_send_all(e.cli, "request", 7, NULL, gb_after(GB_SEC(5)));
	c->shut_rc = gb_sock_shutdown(e.cli, SHUT_WR);
	for (;;) {
		ssize_t n = gb_sock_recv(e.cli, c->cli_buf + c->cli_got,
		                         sizeof c->cli_buf - c->cli_got,
		                         gb_after(GB_SEC(5)));
		if (n <= 0) {
			c->cli_last = n;
			break;
		}
		c->cli_got += (size_t)n;
	}
	tu_join(g);
	gb_sock_close(e.cli);
	return 0;
}

/* Half-close over TCP: after gb_sock_shutdown(SHUT_WR) the peer reads the
 * data then 0, and can still send back, which we receive in full. */
START_TEST(test_half_close)
{
	struct half_ctx c;

	memset(&c, 0, sizeof c);
	TU_RUN(half_main, &c, 0);
	ck_assert_int_eq(c.shut_rc, 0);
	ck_assert_uint_eq(c.srv_got, 7);
	ck_assert_mem_eq(c.srv_buf, "request", 7);
	ck_assert_int_eq(c.srv_last, 0);
	ck_assert_int_eq(c.srv_send, 0);
	ck_assert_uint_eq(c.cli_got, 15);
	ck_assert_mem_eq(c.cli_buf, "reply after EOF", 15);
	ck_assert_int_eq(c.cli_last, 0);
}
END_TEST

struct rst_ctx {
	int sigpipe_default;
	int rc, rc_again;
	size_t sent;
	size_t peer_read;
	int linger_rc;
};

struct rst_ends {
	struct rst_ctx *c;
	gb_sock *w, *r;
};

static int rst_peer(void *arg)
{
	struct rst_ends *e = arg;
	char buf[4096];
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	while (e->c->peer_read < 65536) {
		ssize_t n = gb_sock_recv(e->r, buf, sizeof buf, gb_after(GB_SEC(5)));
		if (n <= 0)
			break;
		e->c->peer_read += (size_t)n;
	}
	/* abortive close: the writer's next segments meet a RST */
	e->c->linger_rc = setsockopt(gb_sock_fd(e->r), SOL_SOCKET, SO_LINGER,
	                             &lg, sizeof lg);
	gb_sock_close(e->r);
	return 0;
}

static int rst_writer(void *arg)
{
	struct rst_ends *e = arg;

	e->c->rc = gb_sock_send_all(e->w, big, BIG_LEN, &e->c->sent,
	                            gb_after(GB_SEC(5)));
	e->c->rc_again = gb_sock_send_all(e->w, "x", 1, NULL, gb_after(GB_SEC(5)));
	return 0;
}

static int rst_main(void *arg)
{
	struct rst_ctx *c = arg;
	struct rst_ends e = { c, NULL, NULL };
	gb_group *g;

	if (tcp_pair(&e.w, &e.r, 0))
		return -1;
	g = tu_group();
	tu_go(g, rst_peer, &e);
	tu_go(g, rst_writer, &e);
	tu_join(g);
	gb_sock_close(e.w);
	return 0;
}

/* ---- drained streams: a short read is trusted, a hang-up is not lost ---- */

/* Read system calls this process has made (/proc/self/io), or -1. */
static long read_calls(void)
{
	FILE *f = fopen("/proc/self/io", "r");
	char line[64];
	long v = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "syscr: %ld", &v) == 1)
			break;
	fclose(f);
	return v;
}

#define PINGS 200

struct ping_ctx {
	gb_sock *cli, *srv;
	int pongs;      /* replies the client got right */
	long reads;     /* read system calls made during the exchange */
};

static int pong_server(void *arg)
{
	struct ping_ctx *c = arg;
	const char *line;

	while (gb_sock_recv_line(c->srv, 64, &line, gb_after(GB_SEC(5))) == 5 &&
	       gb_sock_send_all(c->srv, "pong\n", 5, NULL, GB_NEVER) == 0)
		;
	return 0;
}

static int ping_main(void *arg)
{
	struct ping_ctx *c = arg;
	const char *line;
	gb_group *g;
	long r0;

	if (tcp_pair(&c->cli, &c->srv, 0))
		return -1;
	g = tu_group();
	tu_go(g, pong_server, c);
	r0 = read_calls();
	for (int i = 0; i < PINGS; i++) {
		if (gb_sock_send_all(c->cli, "ping\n", 5, NULL, GB_NEVER) ||
		    gb_sock_recv_line(c->cli, 64, &line, gb_after(GB_SEC(5))) != 5 ||
		    memcmp(line, "pong\n", 5) != 0)
			break;
		c->pongs++;
	}
	c->reads = read_calls() - r0;
	gb_sock_close(c->cli);
	tu_join(g);
	gb_sock_close(c->srv);
	return 0;
}

/* In a ping-pong each side's read is short, and the next read waits for
 * the poller instead of first making a read that finds nothing (EAGAIN):
 * one read per message, not two. */
START_TEST(test_short_read_drains)
{
	struct ping_ctx c;

	/* The count is the whole process's: valgrind's own reads would be
	 * counted too; and some kernels keep no per-process I/O accounting. */
	if (read_calls() < 0 || tu_under_valgrind())
		return;
	memset(&c, 0, sizeof c);
	TU_RUN(ping_main, &c, 0);
	ck_assert_int_eq(c.pongs, PINGS);
	ck_assert_int_le(c.reads, 2 * PINGS + 20);
}
END_TEST

/* ---- the receive buffer: small for short lines, grown when needed ---- */

#define BURST_LINES 100

struct burst_ctx {
	int lines;          /* burst lines received intact */
	long reads;         /* read system calls they took */
	ssize_t long_n;     /* a 3000-byte line with max 4096 */
	int long_ok;
	ssize_t cut_n;      /* a 5000-byte line with max 4096: cut */
};

static int burst_main(void *arg)
{
	struct burst_ctx *c = arg;
	static char big[5001];
	char out[BURST_LINES * 64];
	const char *line;
	gb_sock *a, *b;
	long r0;

	if (unix_pair(&a, &b))
		return -1;
	/* 100 lines of 64 bytes: 63 letters (a different one per line) and
	 * a newline */
	for (int i = 0; i < BURST_LINES; i++) {
		memset(out + 64 * i, 'A' + i % 26, 63);
		out[64 * i + 63] = '\n';
	}
	r0 = read_calls();
	if (gb_sock_send_all(a, out, sizeof out, NULL, gb_after(GB_SEC(5))))
		return -1;
	for (int i = 0; i < BURST_LINES; i++) {
		ssize_t n = gb_sock_recv_line(b, 4096, &line, gb_after(GB_SEC(5)));
		if (n != 64 || memcmp(line, out + 64 * i, 64))
			break;
		c->lines++;
	}
	c->reads = read_calls() - r0;

	memset(big, 'x', sizeof big - 1);
	big[2999] = '\n';
	big[5000 - 1] = '\n';
	gb_sock_send_all(a, big, 3000, NULL, gb_after(GB_SEC(5)));
	c->long_n = gb_sock_recv_line(b, 4096, &line, gb_after(GB_SEC(5)));
	c->long_ok = c->long_n == 3000 && !memcmp(line, big, 3000);
	big[2999] = 'x';
	gb_sock_send_all(a, big, 5000, NULL, gb_after(GB_SEC(5)));
	c->cut_n = gb_sock_recv_line(b, 4096, &line, gb_after(GB_SEC(5)));
	gb_sock_close(a);
	gb_sock_close(b);
	return 0;
}

/* Lines arriving in a burst are read with a few reads, as the buffer
 * grows while reads fill it (512, 1024, 2048, 4096 bytes: 6400 bytes in
 * at most 6 reads, where a buffer stuck at its first 512 bytes would take
 * 13); a line longer than the buffer grows it up to max; past max the
 * line is cut at max. */
START_TEST(test_rbuf_burst_grows)
{
	struct burst_ctx c;

	memset(&c, 0, sizeof c);
	TU_RUN(burst_main, &c, 0);
	ck_assert_int_eq(c.lines, BURST_LINES);
	if (read_calls() >= 0 && !tu_under_valgrind())
		ck_assert_int_le(c.reads, 6);
	ck_assert_int_eq(c.long_n, 3000);
	ck_assert(c.long_ok);
	ck_assert_int_eq(c.cut_n, 4096);
}
END_TEST

/* gb_sock_next_line hands out the lines already received, and only
 * those: no read, no wait, and every line it and the recv_line before it
 * returned stays in place until the next receive call. */
struct next_ctx {
	ssize_t first, n[6], n_empty, n_zero_max;
	int same[6];
	long reads;
	ssize_t after;        /* recv_line once more: reads the rest */
	int after_ok;
};

static int next_main(void *arg)
{
	struct next_ctx *c = arg;
	static const char *const want[] = { "one\n", "\n", "three\n",
	                                    "12345678", "9\n" };
	const char *line[6] = { "" };
	gb_sock *a, *b;
	long r0;

	if (unix_pair(&a, &b))
		return -1;
	/* lines, one longer than the max (8) given to next_line, then a
	 * partial one */
	gb_sock_send_all(a, "zero\none\n\nthree\n123456789\npart",
	                 30, NULL, gb_after(GB_SEC(5)));
	/* max 64: the buffer (at most max bytes at first) takes it all */
	c->first = gb_sock_recv_line(b, 64, &line[0], gb_after(GB_SEC(5)));
	/* more data reaches the socket, but not the buffer */
	gb_sock_send_all(a, "ial\n", 4, NULL, gb_after(GB_SEC(5)));
	r0 = read_calls();
	for (int i = 0; i < 6; i++) {
		c->n[i] = gb_sock_next_line(b, 8, &line[i]);
		c->same[i] = i < 5 && c->n[i] == (ssize_t)strlen(want[i]) &&
		             !memcmp(line[i], want[i], (size_t)c->n[i]);
	}
	c->reads = read_calls() - r0;
	c->n_empty = gb_sock_next_line(b, 8, &line[5]);
	c->n_zero_max = gb_sock_next_line(b, 0, &line[5]);
	/* the lines handed out are all still there */
	for (int i = 0; i < 5; i++)
		c->same[i] = c->same[i] &&
		             !memcmp(line[i], want[i], strlen(want[i]));
	c->after = gb_sock_recv_line(b, 64, &line[0], gb_after(GB_SEC(5)));
	c->after_ok = c->after == 8 && !memcmp(line[0], "partial\n", 8);
	gb_sock_close(a);
	gb_sock_close(b);
	return 0;
}

START_TEST(test_next_line)
{
	struct next_ctx c;

	memset(&c, 0, sizeof c);
	TU_RUN(next_main, &c, 0);
	ck_assert_int_eq(c.first, 5);
	for (int i = 0; i < 5; i++)
		ck_assert_msg(c.same[i], "line %d: %zd bytes", i, c.n[i]);
	ck_assert_int_eq(c.n[5], 0);     /* "part": no whole line yet */
	if (read_calls() >= 0 && !tu_under_valgrind())
		ck_assert_int_le(c.reads, 2); /* read_calls' own */
	ck_assert_int_eq(c.n_empty, 0);
	ck_assert_int_eq(c.n_zero_max, -EINVAL);
	ck_assert(c.after_ok);
}
END_TEST

#define SMALL_PAIRS 200

struct small_ctx {
	long per_conn;     /* heap bytes per connection that got a line */
	int got;
};

static int small_main(void *arg)
{
	struct small_ctx *c = arg;
	gb_sock *a[SMALL_PAIRS], *b[SMALL_PAIRS];
	const char *line;
	size_t before;
	int n = 0;

	for (; n < SMALL_PAIRS; n++)
		if (unix_pair(&a[n], &b[n]))
			break;
	before = mallinfo2().uordblks;
	for (int i = 0; i < n; i++) {
		gb_sock_send_all(a[i], "hello\n", 6, NULL, gb_after(GB_SEC(5)));
		c->got += gb_sock_recv_line(b[i], 4096, &line,
		                            gb_after(GB_SEC(5))) == 6;
	}
	c->per_conn = n ? (long)(mallinfo2().uordblks - before) / n : -1;
	for (int i = 0; i < n; i++) {
		gb_sock_close(a[i]);
		gb_sock_close(b[i]);
	}
	return 0;
}

/* A connection that only ever received short lines holds a small receive
 * buffer (512 bytes), not one of max bytes: with thousands of connections
 * that is memory, and pages the CPU must map. Measured from the C
 * library's heap, so not under valgrind or AddressSanitizer, which bring
 * their own allocators. */
START_TEST(test_rbuf_small)
{
	struct small_ctx c;

#if defined(__SANITIZE_ADDRESS__)
	return;
#endif
	if (tu_under_valgrind())
		return;
	memset(&c, 0, sizeof c);
	TU_RUN(small_main, &c, 0);
	ck_assert_int_eq(c.got, SMALL_PAIRS);
	ck_assert_int_gt(c.per_conn, 0);
	ck_assert_int_le(c.per_conn, 1024);
}
END_TEST

struct hup_ctx {
	int reset;           /* 1: abortive close (RST), 0: shutdown (FIN) */
	gb_sock *cli, *srv;
	ssize_t n1, n2;      /* the two recv_line results */
	char first[16];
	int64_t t_sent, t_first, t_second;
};

/* Once the reader waits, sends a partial line and hangs up at once, so
 * that the data and the hang-up reach the reader as one poller edge. */
static int hup_sender(void *arg)
{
	struct hup_ctx *c = arg;
	int fd = gb_sock_fd(c->cli);
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	gb_sleep(gb_after(GB_MSEC(20)));
	c->t_sent = gb_now();
	if (send(fd, "partial", 7, MSG_NOSIGNAL) != 7)
		return -1;
	if (c->reset) {
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
		gb_sock_close(c->cli);
		c->cli = NULL;
	} else {
		shutdown(fd, SHUT_WR);
	}
	return 0;
}

static int hup_main(void *arg)
{
	struct hup_ctx *c = arg;
	const char *line;
	gb_group *g;

	if (tcp_pair(&c->cli, &c->srv, 0))
		return -1;
	g = tu_group();
	tu_go(g, hup_sender, c);
	c->n1 = gb_sock_recv_line(c->srv, 64, &line, gb_after(GB_SEC(3)));
	c->t_first = gb_now();
	if (c->n1 > 0)
		memcpy(c->first, line, (size_t)c->n1 < sizeof c->first ?
		                       (size_t)c->n1 : sizeof c->first);
	c->n2 = gb_sock_recv_line(c->srv, 64, &line, gb_after(GB_SEC(3)));
	c->t_second = gb_now();
	tu_join(g);
	if (c->cli)
		gb_sock_close(c->cli);
	gb_sock_close(c->srv);
	return 0;
}

/* A partial line and the peer's FIN in one edge: the end of stream is
 * remembered from the poller, so the fragment and then 0 come at once,
 * without waiting for a sweep. */
START_TEST(test_data_and_fin_one_edge)
{
	struct hup_ctx c = { .reset = 0 };

	TU_RUN(hup_main, &c, 0);
	ck_assert_int_eq(c.n1, 7);
	ck_assert_mem_eq(c.first, "partial", 7);
	ck_assert_int_eq(c.n2, 0);
	ck_assert_int_lt(c.t_second - c.t_sent, GB_MSEC(200));
}
END_TEST

/* A partial line and a reset in one edge: the poller reports the reset
 * only once, the same way as plain data, and the short read marked the
 * socket drained. The reader must still learn of the reset (from the
 * drained-socket sweep) instead of waiting until its deadline. */
START_TEST(test_data_and_reset_one_edge)
{
	struct hup_ctx c = { .reset = 1 };

	TU_RUN(hup_main, &c, 0);
	ck_assert_int_eq(c.n1, -ECONNRESET);
	ck_assert_int_lt(c.t_first - c.t_sent, GB_SEC(2));
}
END_TEST

/* SIGPIPE as the test runs with it: _i == 0 leaves it at SIG_DFL (a
 * SIGPIPE would kill the test process), _i == 1 installs a counting
 * handler (then gb_run leaves it alone, and no SIGPIPE may be raised at
 * all: sockets must not depend on it being ignored). */
static volatile sig_atomic_t sigpipes;

static void on_sigpipe(int sig)
{
	(void)sig;
	sigpipes++;
}

static void sigpipe_setup(int counting)
{
	struct sigaction sa;

	sigpipes = 0;
	ck_assert_int_eq(sigaction(SIGPIPE, NULL, &sa), 0);
	ck_assert_msg(sa.sa_handler == SIG_DFL, "SIGPIPE is not at SIG_DFL");
	if (counting) {
		memset(&sa, 0, sizeof sa);
		sa.sa_handler = on_sigpipe;
		ck_assert_int_eq(sigaction(SIGPIPE, &sa, NULL), 0);
	}
}

static void sigpipe_check(int counting)
{
	struct sigaction sa;

	if (counting) {
		memset(&sa, 0, sizeof sa);
		sa.sa_handler = SIG_DFL;
		sigaction(SIGPIPE, &sa, NULL);
	}
	ck_assert_int_eq(sigpipes, 0);
	ck_assert_int_eq(sigaction(SIGPIPE, NULL, &sa), 0);
	ck_assert(sa.sa_handler == SIG_DFL);
}

/* The peer resets the connection (SO_LINGER {1,0} + close) while we send:
 * send_all fails with -ECONNRESET or -EPIPE, and so does the next send,
 * and no SIGPIPE is raised (with SIG_DFL, and with a handler installed). */
START_TEST(test_peer_reset)
{
	struct rst_ctx c;

	fill_big();
	memset(&c, 0, sizeof c);
	sigpipe_setup(_i);
	TU_RUN(rst_main, &c, 0);
	sigpipe_check(_i);
	ck_assert_int_eq(c.linger_rc, 0);
	ck_assert_uint_ge(c.peer_read, 65536);
	ck_assert_msg(c.rc == -ECONNRESET || c.rc == -EPIPE, "send_all = %d",
	              c.rc);
	ck_assert_uint_lt(c.sent, BIG_LEN);
	ck_assert_uint_ge(c.sent, c.peer_read);
	ck_assert_msg(c.rc_again == -ECONNRESET || c.rc_again == -EPIPE,
	              "next send = %d", c.rc_again);
}
END_TEST

struct epipe_ctx {
	int rc_gone, rc_waiting;
	size_t sent_gone, sent_waiting;
};

static int epipe_main(void *arg)
{
	struct epipe_ctx *c = arg;
	gb_sock *a, *b;
	gb_group *g;

	/* the peer is already gone */
	if (unix_pair(&a, &b))
		return -1;
	gb_sock_close(b);
	c->sent_gone = 999;
	c->rc_gone = gb_sock_send_all(a, "hello", 5, &c->sent_gone,
	                              gb_after(GB_SEC(5)));
	gb_sock_close(a);

	/* the peer goes away while we wait for room */
	if (unix_pair(&a, &b))
		return -1;
	set_int_opt(gb_sock_fd(a), SOL_SOCKET, SO_SNDBUF, 4096);
	g = tu_group();
	tu_go(g, close_later, b);
	c->rc_waiting = gb_sock_send_all(a, big, BIG_LEN, &c->sent_waiting,
	                                 gb_after(GB_SEC(5)));
	tu_join(g);
	gb_sock_close(a);
	return 0;
}

/* Writing to a socketpair whose peer has closed (before, or while we wait)
 * is -EPIPE, and no SIGPIPE is raised (SIG_DFL, or a handler installed). */
START_TEST(test_epipe_unix)
{
	struct epipe_ctx c;

	fill_big();
	memset(&c, 0, sizeof c);
	sigpipe_setup(_i);
	TU_RUN(epipe_main, &c, 0);
	sigpipe_check(_i);
	ck_assert_int_eq(c.rc_gone, -EPIPE);
	ck_assert_uint_eq(c.sent_gone, 0);
	ck_assert_int_eq(c.rc_waiting, -EPIPE);
	ck_assert_uint_gt(c.sent_waiting, 0);
	ck_assert_uint_lt(c.sent_waiting, BIG_LEN);
}
END_TEST

/* ======================================================= line reader */

/* A script for the writing side: chunks written with pauses between. */
struct script {
	gb_sock *b;
	const char *const *chunks;
	const size_t *lens;      /* NULL: strlen */
	int n;
	int close_after;
};

static int script_fn(void *arg)
{
	struct script *sc = arg;

	for (int i = 0; i < sc->n; i++) {
		size_t len = sc->lens ? sc->lens[i] : strlen(sc->chunks[i]);
		if (i)
			gb_sleep(gb_after(GB_MSEC(20)));
		gb_sock_send_all(sc->b, sc->chunks[i], len, NULL, gb_after(GB_SEC(5)));
	}
	if (sc->close_after)
		gb_sock_shutdown(sc->b, SHUT_WR);
	return 0;
}

#define MAXLINES 8
struct lines_ctx {
	const char *const *chunks;
	const size_t *lens;
	int n;
	int close_after;
	size_t max;
	int nlines;          /* read this many lines (stops early at <= 0) */
	ssize_t rc[MAXLINES];
	char line[MAXLINES][64];
};

static int lines_main(void *arg)
{
	struct lines_ctx *c = arg;
	gb_sock *a, *b;
	gb_group *g;
	struct script sc;

	if (unix_pair(&a, &b))
		return -1;
	sc = (struct script){ b, c->chunks, c->lens, c->n, c->close_after };
	g = tu_group();
	tu_go(g, script_fn, &sc);
	for (int i = 0; i < c->nlines; i++) {
		const char *l = NULL;
		c->rc[i] = gb_sock_recv_line(a, c->max, &l, gb_after(GB_SEC(5)));
		if (c->rc[i] > 0)
			memcpy(c->line[i], l, (size_t)c->rc[i]);
		if (c->rc[i] < 0)
			break;
	}
	tu_join(g);
	gb_sock_close(a);
	gb_sock_close(b);
	return 0;
}

static void want_line(const struct lines_ctx *c, int i, const void *s,
                      size_t len)
{
	ck_assert_msg(c->rc[i] == (ssize_t)len, "line %d: length %zd, want %zu",
	              i, c->rc[i], len);
	ck_assert_mem_eq(c->line[i], s, len);
}

/* A line split across reads ("hel" | "lo\nwor" | "ld\n", with pauses)
 * comes back whole: "hello\n" then "world\n". */
START_TEST(test_line_split)
{
	static const char *const ch[] = { "hel", "lo\nwor", "ld\n" };
	struct lines_ctx c;

	memset(&c, 0, sizeof c);
	c.chunks = ch;
	c.n = 3;
	c.max = 64;
	c.nlines = 2;
	TU_RUN(lines_main, &c, 0);
	want_line(&c, 0, "hello\n", 6);
	want_line(&c, 1, "world\n", 6);
}
END_TEST

/* Several lines arriving in one read are returned one at a time; "\r\n"
 * is kept as is; an empty line is just "\n". */
START_TEST(test_line_many_in_one_read)
{
	static const char *const ch[] = { "a\r\nbb\n\nccc\r\n" };
	struct lines_ctx c;

	memset(&c, 0, sizeof c);
	c.chunks = ch;
	c.n = 1;
	c.max = 64;
	c.nlines = 4;
	TU_RUN(lines_main, &c, 0);
	want_line(&c, 0, "a\r\n", 3);
	want_line(&c, 1, "bb\n", 3);
	want_line(&c, 2, "\n", 1);
	want_line(&c, 3, "ccc\r\n", 5);
}
END_TEST

/* NUL bytes inside a line are data: the line comes back with its full
 * length and exact bytes. */
START_TEST(test_line_nul)
{
	static const char *const ch[] = { "a\0b\0\0c\n\0\n" };
	static const size_t lens[] = { 9 };
	struct lines_ctx c;

	memset(&c, 0, sizeof c);
	c.chunks = ch;
	c.lens = lens;
	c.n = 1;
	c.max = 64;
	c.nlines = 2;
	TU_RUN(lines_main, &c, 0);
	want_line(&c, 0, "a\0b\0\0c\n", 7);
	want_line(&c, 1, "\0\n", 2);
}
END_TEST

/* With max 8, a 20-byte line + "\n" comes back as 8, 8 and 5 bytes (the
 * last ending in "\n"), no byte lost, and the next line is intact; a line
 * of exactly max bytes including "\n" is one piece. */
START_TEST(test_line_overlong)
{
	static const char *const ch[] = {
		"ABCDEFGHIJKLMNOPQRST\nshort\n", "1234567\n"
	};
	struct lines_ctx c;

	memset(&c, 0, sizeof c);
	c.chunks = ch;
	c.n = 2;
	c.max = 8;
	c.nlines = 5;
	TU_RUN(lines_main, &c, 0);
	want_line(&c, 0, "ABCDEFGH", 8);
	want_line(&c, 1, "IJKLMNOP", 8);
	want_line(&c, 2, "QRST\n", 5);
	want_line(&c, 3, "short\n", 6);
	want_line(&c, 4, "1234567\n", 8);
}
END_TEST

/* An over-long line that arrives slowly, a few bytes at a time, is still
 * cut at exactly max bytes. */
START_TEST(test_line_overlong_split)
{
	static const char *const ch[] = { "ABC", "DEFGHIJ", "KLMNOPQRS", "T\n" };
	struct lines_ctx c;

	memset(&c, 0, sizeof c);
	c.chunks = ch;
	c.n = 4;
	c.max = 8;
	c.nlines = 3;
	TU_RUN(lines_main, &c, 0);
	want_line(&c, 0, "ABCDEFGH", 8);
	want_line(&c, 1, "IJKLMNOP", 8);
	want_line(&c, 2, "QRST\n", 5);
}
END_TEST

struct exact_ctx {
	ssize_t rc, rc2;
	int64_t ms;
	char line[16], line2[16];
};

static int exact_writer(void *arg)
{
	gb_sock *b = arg;

	gb_sock_send_all(b, "12345678", 8, NULL, gb_after(GB_SEC(5)));
	gb_sleep(gb_after(GB_MSEC(300)));
	gb_sock_send_all(b, "9\n", 2, NULL, gb_after(GB_SEC(5)));
	return 0;
}

static int exact_main(void *arg)
{
	struct exact_ctx *c = arg;
	gb_sock *a, *b;
	gb_group *g;
	const char *l;
	int64_t t0;

	if (unix_pair(&a, &b))
		return -1;
	g = tu_group();
	tu_go(g, exact_writer, b);
	gb_sleep(gb_after(GB_MSEC(20)));
	t0 = gb_now();
	c->rc = gb_sock_recv_line(a, 8, &l, gb_after(GB_MSEC(150)));
	c->ms = tu_ms_since(t0);
	if (c->rc > 0)
		memcpy(c->line, l, (size_t)c->rc);
	c->rc2 = gb_sock_recv_line(a, 8, &l, gb_after(GB_SEC(5)));
	if (c->rc2 > 0)
		memcpy(c->line2, l, (size_t)c->rc2);
	tu_join(g);
	gb_sock_close(a);
	gb_sock_close(b);
	return 0;
}

/* Exactly max bytes with no "\n" yet form a full piece: recv_line returns
 * them at once instead of waiting for more data. */
START_TEST(test_line_exactly_max)
{
	struct exact_ctx c;

	memset(&c, 0, sizeof c);
	TU_RUN(exact_main, &c, 0);
	ck_assert_int_eq(c.rc, 8);
	ck_assert_mem_eq(c.line, "12345678", 8);
	ck_assert_int_lt(c.ms, tu_slack_ms(50));
	ck_assert_int_eq(c.rc2, 2);
	ck_assert_mem_eq(c.line2, "9\n", 2);
}
END_TEST

/* A final fragment without "\n" is returned at end of stream, then 0,
 * and 0 again. */
START_TEST(test_line_eof_fragment)
{
	static const char *const ch[] = { "full\nlast" };
	struct lines_ctx c;

	memset(&c, 0, sizeof c);
	c.chunks = ch;
	c.n = 1;
	c.close_after = 1;
	c.max = 64;
	c.nlines = 4;
	TU_RUN(lines_main, &c, 0);
	want_line(&c, 0, "full\n", 5);
	want_line(&c, 1, "last", 4);
	ck_assert_int_eq(c.rc[2], 0);
	ck_assert_int_eq(c.rc[3], 0);
}
END_TEST

struct longline_ctx {
	ssize_t rc;
	size_t bad_at;
	ssize_t rc2;
	char second[8];
};

static int longline_writer(void *arg)
{
	gb_sock *b = arg;
	static char buf[10001];

	for (size_t i = 0; i < 10000; i++)
		buf[i] = (char)('a' + i % 26);
	buf[10000] = '\n';
	gb_sock_send_all(b, buf, 5000, NULL, gb_after(GB_SEC(5)));
	gb_sleep(gb_after(GB_MSEC(10)));
	gb_sock_send_all(b, buf + 5000, 5001, NULL, gb_after(GB_SEC(5)));
	gb_sock_send_all(b, "next\n", 5, NULL, gb_after(GB_SEC(5)));
	return 0;
}

static int longline_main(void *arg)
{
	struct longline_ctx *c = arg;
	gb_sock *a, *b;
	gb_group *g;
	const char *l;

	if (unix_pair(&a, &b))
		return -1;
	g = tu_group();
	tu_go(g, longline_writer, b);
	c->rc = gb_sock_recv_line(a, 20000, &l, gb_after(GB_SEC(5)));
	c->bad_at = SIZE_MAX;
	for (ssize_t i = 0; i < c->rc && i < 10000; i++)
		if (l[i] != (char)('a' + i % 26)) {
			c->bad_at = (size_t)i;
			break;
		}
	if (c->rc == 10001 && l[10000] != '\n')
		c->bad_at = 10000;
	c->rc2 = gb_sock_recv_line(a, 20000, &l, gb_after(GB_SEC(5)));
	if (c->rc2 > 0 && c->rc2 <= 8)
		memcpy(c->second, l, (size_t)c->rc2);
	tu_join(g);
	gb_sock_close(a);
	gb_sock_close(b);
	return 0;
}

/* A line longer than the default 4 KiB buffer, asked with a larger max,
 * comes back in one piece, byte for byte, split across two writes. */
START_TEST(test_line_long_max)
{
	struct longline_ctx c;

	memset(&c, 0, sizeof c);
	TU_RUN(longline_main, &c, 0);
	ck_assert_int_eq(c.rc, 10001);
	ck_assert_uint_eq(c.bad_at, SIZE_MAX);
	ck_assert_int_eq(c.rc2, 5);
	ck_assert_mem_eq(c.second, "next\n", 5);
}
END_TEST

struct mix_ctx {
	size_t p0, p1, p2, p3, p4, p5, p6;
	ssize_t l1, r1, r2, r3, l2, r4, r5;
	char line1[16], line2[16];
	char b1[8], b2[32], b3[16], b4[16];
};

static int mix_main(void *arg)
{
	struct mix_ctx *c = arg;
	gb_sock *a, *b;
	const char *l;

	if (unix_pair(&a, &b))
		return -1;
	c->p0 = gb_sock_pending(a);
	write(gb_sock_fd(b), "line1\nrest-of-data", 18);
	c->l1 = gb_sock_recv_line(a, 64, &l, gb_after(GB_SEC(5)));
	if (c->l1 > 0)
		memcpy(c->line1, l, (size_t)c->l1);
	c->p1 = gb_sock_pending(a);
	/* buffered bytes first, and only as many as asked */
	c->r1 = gb_sock_recv(a, c->b1, 4, gb_after(GB_SEC(5)));
	c->p2 = gb_sock_pending(a);
	c->r2 = gb_sock_recv(a, c->b2, sizeof c->b2, gb_after(GB_SEC(5)));
	c->p3 = gb_sock_pending(a);
	/* then fresh data from the socket (not counted as pending: it is
	 * in the kernel, not in the socket's buffer) */
	write(gb_sock_fd(b), "more", 4);
	c->p4 = gb_sock_pending(a);
	c->r3 = gb_sock_recv(a, c->b3, sizeof c->b3, gb_after(GB_SEC(5)));
	/* lines again after raw reads; then raw bytes after it at EOF */
	write(gb_sock_fd(b), "L2\nxyz", 6);
	gb_sock_shutdown(b, SHUT_WR);
	c->l2 = gb_sock_recv_line(a, 64, &l, gb_after(GB_SEC(5)));
	if (c->l2 > 0)
		memcpy(c->line2, l, (size_t)c->l2);
	c->p5 = gb_sock_pending(a);
	c->r4 = gb_sock_recv(a, c->b4, sizeof c->b4, gb_after(GB_SEC(5)));
	c->p6 = gb_sock_pending(a);
	c->r5 = gb_sock_recv(a, c->b4 + 8, 8, gb_after(GB_SEC(5)));
	gb_sock_close(a);
	gb_sock_close(b);
	return 0;
}

/* gb_sock_recv after recv_line returns the bytes recv_line buffered first
 * (no more than asked), then reads the socket again; lines and raw reads
 * interleave without losing or repeating a byte, through end of stream;
 * gb_sock_pending counts exactly the buffered, unreturned bytes. */
START_TEST(test_recv_after_line)
{
	struct mix_ctx c;

	memset(&c, 0, sizeof c);
	TU_RUN(mix_main, &c, 0);
	ck_assert_int_eq(c.l1, 6);
	ck_assert_mem_eq(c.line1, "line1\n", 6);
	ck_assert_int_eq(c.r1, 4);
	ck_assert_mem_eq(c.b1, "rest", 4);
	ck_assert_int_eq(c.r2, 8);
	ck_assert_mem_eq(c.b2, "-of-data", 8);
	ck_assert_int_eq(c.r3, 4);
	ck_assert_mem_eq(c.b3, "more", 4);
	ck_assert_int_eq(c.l2, 3);
	ck_assert_mem_eq(c.line2, "L2\n", 3);
	ck_assert_int_eq(c.r4, 3);
	ck_assert_mem_eq(c.b4, "xyz", 3);
	ck_assert_int_eq(c.r5, 0);
	ck_assert_uint_eq(c.p0, 0);
	ck_assert_uint_eq(c.p1, 12);
	ck_assert_uint_eq(c.p2, 8);
	ck_assert_uint_eq(c.p3, 0);
	ck_assert_uint_eq(c.p4, 0);
	ck_assert_uint_eq(c.p5, 3);
	ck_assert_uint_eq(c.p6, 0);
}
END_TEST

/* ============================================ out of descriptors */

static struct {
	int errors, infos, others;
} logc;

static void count_log(int level, const char *msg)
{
	(void)msg;
	if (level == GB_LOG_ERROR)
		logc.errors++;
	else if (level == GB_LOG_INFO)
		logc.infos++;
	else
		logc.others++;
}

/* Under valgrind (make check-valgrind sets GB_TEST_VALGRIND; a bare
 * valgrind run shows in LD_PRELOAD): valgrind keeps descriptors of its own
 * near the limit and refuses setrlimit below them. */
static int on_valgrind(void)
{
	const char *p = getenv("LD_PRELOAD");

	return tu_under_valgrind() || (p && strstr(p, "vgpreload"));
}

/* Highest open descriptor, from /proc/self/fd. */
static int max_open_fd(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int max = -1, self;

	if (!d)
		return -1;
	self = dirfd(d);
	while ((e = readdir(d)) != NULL) {
		int fd = atoi(e->d_name);
		if (e->d_name[0] != '.' && fd != self && fd > max)
			max = fd;
	}
	closedir(d);
	return max;
}

/* Enough for the holes below the highest open descriptor too. */
#define NULLS_MAX 8192
static int nulls_store[NULLS_MAX];
#define VICTIMS 3

struct emfile_ctx {
	int close_listener;       /* the second test's variant */
	struct rlimit old;
	int limit_rc;
	int *nulls, nnull;
	int exhausted;
	int victims[VICTIMS];
	int victim_state[VICTIMS]; /* 0 closed by the server, else errno */
	gb_sock *ls;
	uint16_t port;
	/* the acceptor */
	int acc_rc;
	int acc_done_while_stuck;
	struct sockaddr_storage peer;
	ssize_t srv_line;
	int64_t acc_ret;
	/* measurements */
	int64_t cpu_stuck_ns;
	int errors_stuck;
	/* the client served after descriptors free up */
	int conn_rc;
	uint16_t cli_port;
	ssize_t cli_n;
	char reply[16];
	int64_t t_close;
};

static int emfile_acceptor(void *arg)
{
	struct emfile_ctx *c = arg;
	gb_sock *s;
	const char *line;

	c->acc_rc = gb_sock_accept(c->ls, &s, &c->peer, gb_after(GB_SEC(8)));
	c->acc_ret = gb_now();
	if (c->acc_rc)
		return 0;
	c->srv_line = gb_sock_recv_line(s, 16, &line, gb_after(GB_SEC(5)));
	if (c->srv_line > 0)
		gb_sock_send_all(s, line, (size_t)c->srv_line, NULL,
		                 gb_after(GB_SEC(5)));
	gb_sock_close(s);
	return 0;
}

/* Opens /dev/null until EMFILE under a limit a few above what is open. */
static void exhaust(struct emfile_ctx *c)
{
	struct rlimit rl = c->old;
	int max = max_open_fd();

	rl.rlim_cur = (rlim_t)max + 1 + 6;
	c->limit_rc = setrlimit(RLIMIT_NOFILE, &rl);
	if (c->limit_rc)
		return;
	while (c->nnull < NULLS_MAX) {
		int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			c->exhausted = errno == EMFILE;
			return;
		}
		c->nulls[c->nnull++] = fd;
	}
}

static void release_nulls(struct emfile_ctx *c, int n)
{
	while (n-- > 0 && c->nnull > 0)
		close(c->nulls[--c->nnull]);
}

static int emfile_main(void *arg)
{
	struct emfile_ctx *c = arg;
	gb_group *g;
	struct sockaddr_in sin;

	if (listen_lo4(&c->ls, NULL, &c->port))
		return -1;
	sin = lo4(c->port);
	for (int i = 0; i < VICTIMS; i++) {
		c->victims[i] = -1;
		if (!c->close_listener)
			c->victims[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK |
			                       SOCK_CLOEXEC, 0);
	}
	exhaust(c);
	if (c->limit_rc || !c->exhausted)
		goto out;
	g = tu_group();
	tu_go(g, emfile_acceptor, c);
	gb_sleep(gb_after(GB_MSEC(20)));
	/* clients arrive while nothing can be accepted */
	for (int i = 0; i < VICTIMS; i++)
		if (c->victims[i] >= 0)
			connect(c->victims[i], (struct sockaddr *)&sin, sizeof sin);

	/* stuck for ~500 ms: the acceptor must not spin */
	int64_t cpu0 = cpu_ns();
	gb_sleep(gb_after(GB_MSEC(500)));
	c->cpu_stuck_ns = cpu_ns() - cpu0;
	c->acc_done_while_stuck = c->acc_ret != 0;
	c->errors_stuck = logc.errors;

	for (int i = 0; i < VICTIMS; i++) {
		char ch;
		if (c->victims[i] < 0)
			continue;
		ssize_t n = recv(c->victims[i], &ch, 1, MSG_DONTWAIT);
		c->victim_state[i] = n == 0 ? 0 : n < 0 ? errno : -1;
		if (c->victim_state[i] == ECONNRESET)
			c->victim_state[i] = 0;
	}

	if (c->close_listener) {
		/* close the listener in the middle of the episode; the process
		 * is still out of descriptors, so the number it frees is taken
		 * again at once, as any busy server's would be */
		c->t_close = gb_now();
		gb_sock_close(c->ls);
		c->ls = NULL;
		int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (fd >= 0 && c->nnull < NULLS_MAX)
			c->nulls[c->nnull++] = fd;
		else if (fd >= 0)
			close(fd);
		tu_join(g);
		goto out;
	}

	/* descriptors free up: the next client is accepted and served */
	release_nulls(c, 4);
	gb_sock *cl;
	c->conn_rc = gb_sock_connect(&cl, (struct sockaddr *)&sin, sizeof sin,
	                             gb_after(GB_SEC(2)));
	if (c->conn_rc == 0) {
		const char *line;
		c->cli_port = local_port(gb_sock_fd(cl));
		gb_sock_send_all(cl, "ping\n", 5, NULL, gb_after(GB_SEC(2)));
		c->cli_n = gb_sock_recv_line(cl, 16, &line, gb_after(GB_SEC(2)));
		if (c->cli_n > 0 && c->cli_n <= 16)
			memcpy(c->reply, line, (size_t)c->cli_n);
		gb_sock_close(cl);
	}
	tu_join(g);
out:
	release_nulls(c, NULLS_MAX);
	setrlimit(RLIMIT_NOFILE, &c->old);
	for (int i = 0; i < VICTIMS; i++)
		if (c->victims[i] >= 0)
			close(c->victims[i]);
	if (c->ls)
		gb_sock_close(c->ls);
	return 0;
}

static void emfile_setup(struct emfile_ctx *c)
{
	memset(c, 0, sizeof *c);
	c->nulls = nulls_store;
	memset(&logc, 0, sizeof logc);
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &c->old), 0);
	gb_set_log(count_log);
}

/* Out of descriptors, accept does not spin (CPU well under 100 ms over
 * 500 ms stuck), closes the clients it cannot serve, logs the episode
 * once, and serves the next client as soon as descriptors free up. */
START_TEST(test_accept_emfile)
{
	struct emfile_ctx c;

	if (on_valgrind()) {
		fprintf(stderr, "test_accept_emfile: skipped under valgrind\n");
		return;
	}
	emfile_setup(&c);
	TU_RUN(emfile_main, &c, 0);
	gb_set_log(NULL);
	ck_assert_int_eq(c.limit_rc, 0);
	ck_assert_msg(c.exhausted, "could not run out of descriptors");
	ck_assert_int_eq(c.acc_done_while_stuck, 0);
	ck_assert_msg(c.cpu_stuck_ns < GB_MSEC(100),
	              "stuck accept used %lld ms of CPU in 500 ms",
	              (long long)(c.cpu_stuck_ns / 1000000));
	for (int i = 0; i < VICTIMS; i++)
		ck_assert_msg(c.victim_state[i] == 0,
		              "client %d not closed by the server: %s", i,
		              c.victim_state[i] > 0 ? strerror(c.victim_state[i])
		                                    : "data?");
	ck_assert_int_eq(c.errors_stuck, 1);
	ck_assert_int_eq(c.conn_rc, 0);
	ck_assert_int_eq(c.acc_rc, 0);
	const struct sockaddr_in *p = (const struct sockaddr_in *)&c.peer;
	ck_assert_int_eq(p->sin_family, AF_INET);
	ck_assert_uint_eq(ntohs(p->sin_port), c.cli_port);
	ck_assert_int_eq(c.srv_line, 5);
	ck_assert_int_eq(c.cli_n, 5);
	ck_assert_mem_eq(c.reply, "ping\n", 5);
	/* logged once for the whole episode (and no new error after it) */
	ck_assert_int_eq(logc.errors, 1);
}
END_TEST

/* Closing the listener while accept is paused for lack of descriptors
 * wakes the acceptor with -EBADF at once, like any other wait (and it
 * must not touch the freed socket, nor the descriptor number that the
 * process reused). */
START_TEST(test_accept_emfile_close)
{
	struct emfile_ctx c;

	if (on_valgrind()) {
		fprintf(stderr, "test_accept_emfile_close: skipped under valgrind\n");
		return;
	}
	emfile_setup(&c);
	c.close_listener = 1;
	TU_RUN(emfile_main, &c, 0);
	gb_set_log(NULL);
	ck_assert_int_eq(c.limit_rc, 0);
	ck_assert_msg(c.exhausted, "could not run out of descriptors");
	ck_assert_int_eq(c.acc_done_while_stuck, 0);
	ck_assert_msg(c.acc_rc == -EBADF, "accept = %d after close", c.acc_rc);
	ck_assert_msg(c.acc_ret - c.t_close < GB_MSEC(20),
	              "accept returned %lld ms after its listener was closed",
	              (long long)((c.acc_ret - c.t_close) / 1000000));
}
END_TEST

/* ------------------------------------------------------------------ main */

static Suite *sock_suite(void)
{
	Suite *s = suite_create("gb_sock");

	TCase *tl = tcase_create("listen");
	tcase_set_timeout(tl, 20);
	tcase_add_test(tl, test_wrap);
	tcase_add_test(tl, test_listen_opts);
	tcase_add_test(tl, test_listen_v6only);
	tcase_add_test(tl, test_tcp_echo);
	tcase_add_test(tl, test_tcp_echo_v6);
	tcase_add_test(tl, test_connect_refused);
	tcase_add_test(tl, test_connect_deadline);
	tcase_add_test(tl, test_deadlines);
	suite_add_tcase(s, tl);

	TCase *td = tcase_create("data");
	tcase_set_timeout(td, 20);
	tcase_add_loop_test(td, test_partial_writes, PAIR_UNIX, PAIR_TCP + 1);
	tcase_add_loop_test(td, test_partial_writes_vec, PAIR_UNIX, PAIR_TCP + 1);
	tcase_add_test(td, test_sendv_pieces);
	tcase_add_test(td, test_sendv_gather_sizes);
	tcase_add_test(td, test_iov_advance);
	tcase_add_loop_test(td, test_send_deadline, PAIR_UNIX, PAIR_TCP + 1);
	tcase_add_test(td, test_peer_close);
	tcase_add_test(td, test_half_close);
	tcase_add_test(td, test_short_read_drains);
	tcase_add_test(td, test_rbuf_burst_grows);
	tcase_add_test(td, test_rbuf_small);
	tcase_add_test(td, test_next_line);
	tcase_add_test(td, test_data_and_fin_one_edge);
	tcase_add_test(td, test_data_and_reset_one_edge);
	tcase_add_loop_test(td, test_peer_reset, 0, 2);
	tcase_add_loop_test(td, test_epipe_unix, 0, 2);
	suite_add_tcase(s, td);

	TCase *tc = tcase_create("cancel");
	tcase_set_timeout(tc, 20);
	tcase_add_loop_test(tc, test_cancel_blocked, 0, OP_N);
	tcase_add_test(tc, test_cancelled_ready);
	tcase_add_test(tc, test_cancelled_buffered);
	tcase_add_loop_test(tc, test_close_wakes_waiter, 0, CW_N);
	suite_add_tcase(s, tc);

	TCase *tr = tcase_create("lines");
	tcase_set_timeout(tr, 20);
	tcase_add_test(tr, test_line_split);
	tcase_add_test(tr, test_line_many_in_one_read);
	tcase_add_test(tr, test_line_nul);
	tcase_add_test(tr, test_line_overlong);
	tcase_add_test(tr, test_line_overlong_split);
	tcase_add_test(tr, test_line_exactly_max);
	tcase_add_test(tr, test_line_eof_fragment);
	tcase_add_test(tr, test_line_long_max);
	tcase_add_test(tr, test_recv_after_line);
	suite_add_tcase(s, tr);

	TCase *te = tcase_create("emfile");
	tcase_set_timeout(te, 20);
	tcase_add_test(te, test_accept_emfile);
	tcase_add_test(te, test_accept_emfile_close);
	suite_add_tcase(s, te);
	return s;
}

int main(void)
{
	return tu_run_suite(sock_suite());
}
