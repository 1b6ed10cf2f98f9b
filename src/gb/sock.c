/*
 * sock.c - sockets owned by the scheduler: accept, connect, receive (raw
 * and line by line), send everything, half-close and close.
 *
 * The receive buffer belongs to the socket. gb_sock_recv_line hands out
 * pointers into it that stay valid until the next receive call, which is
 * the only place the buffer is compacted or grown.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The receive buffer starts small: most lines are short, and with
 * thousands of connections, buffers of a page each would be thousands of
 * pages touched on every pass over them (at 1000 connections that cost a
 * few per cent of the echo server's time). It doubles when a line
 * does not fit, up to the max asked of gb_sock_recv_line, and when a read
 * fills it, up to RBUF_BURST, so that a client sending lines in bursts
 * needs no more reads than with a large buffer. */
#define RBUF_START 512
#define RBUF_BURST 4096

/* How long accepting pauses while the process is out of descriptors. */
#define EMFILE_PAUSE GB_MSEC(100)

struct gb_sock {
	gb_fd *f;
	char *rbuf;             /* NULL until the first line is read */
	size_t rcap;
	size_t rstart, rend;    /* unread bytes are rbuf[rstart, rend) */
	size_t scanned;         /* of those, bytes known to hold no '\n' */
	unsigned char filled;   /* the last read filled the buffer */
	unsigned char eof;      /* the peer closed its side */
	unsigned char shedding; /* an out-of-descriptors episode is on */
	unsigned long shed;     /* connections refused in this episode */
};

/* A descriptor kept free so that, when the process runs out, accept can
 * still take pending connections to close them (instead of leaving them
 * to spin the loop). Opened when the first listening socket is wrapped;
 * closed by gb_run's end (see gb__sock_teardown). */
static void spare_reserve(void)
{
	if (gb__s.spare_fd < 0)
		gb__s.spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

void gb__sock_teardown(void)
{
	if (gb__s.spare_fd >= 0)
		close(gb__s.spare_fd);
	gb__s.spare_fd = -1;
}

static int is_listening(int fd)
{
	int v = 0;
	socklen_t len = sizeof v;

	return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) == 0 && v;
}

int gb_sock_wrap(gb_sock **out, int fd)
{
	gb_sock *s = gb_calloc(1, sizeof *s);
	int rc;

	if (!s)
		return -ENOMEM;
	if ((rc = gb_fd_open(&s->f, fd)) < 0) {
		free(s);
		return rc;
	}
	if (is_listening(fd))
		spare_reserve();
	*out = s;
	return 0;
}

int gb_sock_fd(const gb_sock *s)
{
	return gb_fd_get(s->f);
}

int gb_sock_close(gb_sock *s)
{
	int rc = gb_fd_close(s->f, 1);

	free(s->rbuf);
	free(s);
	return rc;
}

int gb_sock_shutdown(gb_sock *s, int how)
{
	return shutdown(gb_fd_get(s->f), how) == 0 ? 0 : -errno;
}

/* ---------------------------------------------------------------- listen */

static int set_int_opt(int fd, int level, int name, int v)
{
	return setsockopt(fd, level, name, &v, sizeof v) == 0 ? 0 : -errno;
}

int gb_sock_listen(gb_sock **out, const struct sockaddr *sa, socklen_t len,
                   const gb_listen_opts *opts)
{
	gb_listen_opts o = { .backlog = 0, .reuseport = 0, .v6only = -1 };
	int fd, rc;

	if (opts)
		o = *opts;
	fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	rc = set_int_opt(fd, SOL_SOCKET, SO_REUSEADDR, 1);
	if (rc == 0 && o.reuseport)
		rc = set_int_opt(fd, SOL_SOCKET, SO_REUSEPORT, 1);
	if (rc == 0 && sa->sa_family == AF_INET6 && o.v6only >= 0)
		rc = set_int_opt(fd, IPPROTO_IPV6, IPV6_V6ONLY, o.v6only);
	if (rc == 0 && bind(fd, sa, len) != 0)
		rc = -errno;
	if (rc == 0 && listen(fd, o.backlog > 0 ? o.backlog : SOMAXCONN) != 0)
		rc = -errno;
	if (rc == 0)
		rc = gb_sock_wrap(out, fd);
	if (rc < 0)
		close(fd);
	return rc;
}

/* ---------------------------------------------------------------- accept */

/* Out of descriptors: close the connections we cannot serve rather than
 * leave them pending (they would keep the listener readable and the loop
 * spinning), using the spare descriptor to make room for one at a time. */
static void shed_connections(gb_sock *ls, int err)
{
	int lfd = gb_fd_get(ls->f);

	if (!ls->shedding) {
		ls->shedding = 1;
		ls->shed = 0;
		gb__log(GB_LOG_ERROR, "accept: %s; closing new connections "
		        "until descriptors free up", strerror(err));
	}
	if (gb__s.spare_fd < 0)
		return;
	close(gb__s.spare_fd);
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			break;
		close(fd);
		ls->shed++;
	}
	gb__s.spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static void shed_over(gb_sock *ls)
{
	ls->shedding = 0;
	gb__log(GB_LOG_INFO, "accept: descriptors available again; %lu "
	        "connections were closed unserved", ls->shed);
	spare_reserve();
}

/* Errors after which accept should simply try again: the connection died
 * in the queue, or (Linux) an error pending on it surfaced here. */
static int accept_retry(int err)
{
	switch (err) {
	case EINTR: case ECONNABORTED: case EPROTO: case ENETDOWN:
	case ENOPROTOOPT: case EHOSTDOWN: case ENONET: case EHOSTUNREACH:
	case EOPNOTSUPP: case ENETUNREACH:
		return 1;
	}
	return 0;
}

/* Waits until the listener may have something. After running out of
 * resources it also waits at most a pause: new connections in the
 * meantime wake it (to be shed), and so does closing the listener. Returns
 * 0 to try again, or the error to give up with. */
static int accept_wait(gb_sock *ls, int err, int64_t deadline)
{
	int64_t until = deadline;
	int rc;

	if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
		int64_t pause = gb_after(EMFILE_PAUSE);

		shed_connections(ls, err);
		if (pause < until)
			until = pause;
	} else if (err != EAGAIN && err != EWOULDBLOCK) {
		return -err;
	}
	gb_fd_unready(ls->f, GB_READ);
	rc = gb_fd_wait(ls->f, GB_READ, until);
	if (rc == -ETIMEDOUT && until < deadline) {
		int64_t now = gb_now();
		if (now >= until && now < deadline)
			rc = 0; /* the pause is over, the caller's deadline is not */
	}
	return rc;
}

int gb_sock_accept(gb_sock *ls, gb_sock **client,
                   struct sockaddr_storage *peer, int64_t deadline)
{
	int lfd = gb_fd_get(ls->f);
	int rc = gb_io_checkpoint();

	while (rc == 0) {
		socklen_t len = sizeof *peer;
		int fd = accept4(lfd, (struct sockaddr *)peer,
		                 peer ? &len : NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			if (GB_UNLIKELY(ls->shedding))
				shed_over(ls);
			if ((rc = gb_sock_wrap(client, fd)) < 0)
				close(fd);
			return rc;
		}
		if (!accept_retry(errno))
			rc = accept_wait(ls, errno, deadline);
	}
	return rc;
}

/* --------------------------------------------------------------- connect */

int gb_sock_connect(gb_sock **out, const struct sockaddr *sa, socklen_t len,
                    int64_t deadline)
{
	gb_sock *s;
	int fd, rc, err = 0;
	socklen_t elen = sizeof err;

	if ((rc = gb__checkpoint_status(gb__s.current)) != 0)
		return rc;
	fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, sa, len) != 0 && errno != EINPROGRESS) {
		rc = -errno;
		close(fd);
		return rc;
	}
	if ((rc = gb_sock_wrap(&s, fd)) < 0) {
		close(fd);
		return rc;
	}
	/* Writable (or in error) once the handshake is over. */
	rc = gb_fd_wait(s->f, GB_WRITE, deadline);
	if (rc == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0)
		err = errno;
	if (rc == 0 && err)
		rc = -err;
	if (rc < 0) {
		gb_sock_close(s);
		return rc;
	}
	*out = s;
	return 0;
}

/* --------------------------------------------------------------- receive */

static size_t buffered(const gb_sock *s)
{
	return s->rend - s->rstart;
}

size_t gb_sock_pending(const gb_sock *s)
{
	return buffered(s);
}

ssize_t gb_sock_recv(gb_sock *s, void *buf, size_t len, int64_t deadline)
{
	size_t n = buffered(s);
	int rc = gb__checkpoint_status(gb__s.current);

	if (rc)
		return rc;
	if (n == 0)
		return s->eof ? 0 : gb_fd_read(s->f, buf, len, deadline);
	if (n > len)
		n = len;
	memcpy(buf, s->rbuf + s->rstart, n);
	s->rstart += n;
	s->scanned = s->scanned > n ? s->scanned - n : 0;
	return (ssize_t)n;
}

/* Makes room to read more of a line of at most max bytes (the buffer holds
 * fewer than max, none of them a newline): moves unread bytes to the
 * front, and grows the buffer if it is full or the last read filled it
 * (see RBUF_START). Invalidates lines handed out before. */
static int rbuf_prepare(gb_sock *s, size_t max)
{
	size_t n = buffered(s);
	size_t cap = s->rcap;

	if (s->rstart) {
		memmove(s->rbuf, s->rbuf + s->rstart, n);
		s->rstart = 0;
		s->rend = n;
	}
	if (cap == 0)
		cap = RBUF_START < max ? RBUF_START : max;
	else if (s->rend == cap)
		cap = 2 * cap < max ? 2 * cap : max;
	else if (s->filled && cap < RBUF_BURST)
		cap *= 2;
	if (cap != s->rcap) {
		char *b = gb_realloc(s->rbuf, cap);
		if (!b)
			return -ENOMEM;
		s->rbuf = b;
		s->rcap = cap;
	}
	return 0;
}

/* Takes len bytes off the front of the buffer as the next line. */
static ssize_t take_line(gb_sock *s, size_t len, const char **line)
{
	*line = s->rbuf + s->rstart;
	s->rstart += len;
	s->scanned = 0;
	if (s->rstart == s->rend)
		s->rstart = s->rend = 0; /* empty: the next read starts at 0 */
	return (ssize_t)len;
}

/* The next line in the buffer (see gb_sock_recv_line): a whole one, max
 * bytes of a longer one, or the rest at the end of stream. 0 if none;
 * remembers how far it looked for a newline. */
static inline __attribute__((always_inline)) ssize_t
buffered_line(gb_sock *s, size_t max, const char **line)
{
	size_t avail = buffered(s);
	size_t span = avail < max ? avail : max;
	const char *nl = NULL;

	/* The buffer is only looked at when it holds bytes: before the first
	 * read it is NULL, and even NULL + 0 is undefined. */
	if (span > s->scanned)
		nl = memchr(s->rbuf + s->rstart + s->scanned, '\n',
		            span - s->scanned);
	if (nl)
		return take_line(s, (size_t)(nl - (s->rbuf + s->rstart)) + 1, line);
	if (avail >= max || (s->eof && avail))
		return take_line(s, span, line);
	s->scanned = span;
	return 0;
}

ssize_t gb_sock_recv_line(gb_sock *s, size_t max, const char **line,
                          int64_t deadline)
{
	int rc = gb__checkpoint_status(gb__s.current);

	if (rc)
		return rc;
	if (max == 0)
		return -EINVAL;
	for (;;) {
		ssize_t n = buffered_line(s, max, line);

		if (n > 0 || s->eof)
			return n;
		rc = rbuf_prepare(s, max);
		if (rc < 0)
			return rc;
		size_t room = s->rcap - s->rend;
		n = gb_fd_read(s->f, s->rbuf + s->rend, room, deadline);
		if (n < 0)
			return n; /* s may be closed and gone: touch nothing */
		s->filled = (size_t)n == room;
		if (n == 0)
			s->eof = 1;
		s->rend += (size_t)n;
	}
}

ssize_t gb_sock_next_line(gb_sock *s, size_t max, const char **line)
{
	if (max == 0)
		return -EINVAL;
	return buffered_line(s, max, line);
}

/* ------------------------------------------------------------------ send */

void gb_iov_advance(struct iovec **iov, int *cnt, size_t n)
{
	while (*cnt && n >= (*iov)->iov_len) {
		n -= (*iov)->iov_len;
		(*iov)++;
		(*cnt)--;
	}
	if (*cnt) {
		(*iov)->iov_base = (char *)(*iov)->iov_base + n;
		(*iov)->iov_len -= n;
	}
}

/* Pieces totalling at most this many bytes are copied into one buffer
 * and sent as one: copying a short reply costs less than the kernel's
 * walk over an iovec (measured with bench/run.sh at 1000 connections). */
#define GATHER_MAX 256

/* Sends buf[0..len) whole, looping over partial writes. */
static int send_buf(gb_sock *s, const char *buf, size_t len, size_t *sent,
                    int64_t deadline)
{
	size_t done = 0;
	int rc = 0;

	while (done < len) {
		ssize_t n = gb_fd_write(s->f, buf + done, len - done, deadline);
		if (n < 0) {
			rc = (int)n;
			break;
		}
		done += (size_t)n;
	}
	if (sent)
		*sent = done;
	return rc;
}

/* The same for pieces that do not fit in GATHER_MAX bytes. */
static int send_pieces(gb_sock *s, const struct iovec *iov, int iovcnt,
                       size_t *sent, int64_t deadline)
{
	struct iovec v[GB_IOV_MAX], *p = v;
	size_t done = 0;
	int rc = 0;

	memcpy(v, iov, (size_t)iovcnt * sizeof *iov);
	gb_iov_advance(&p, &iovcnt, 0); /* skip empty leading pieces */
	while (iovcnt) {
		ssize_t n = gb_fd_writev(s->f, p, iovcnt, deadline);
		if (n < 0) {
			rc = (int)n;
			break;
		}
		done += (size_t)n;
		gb_iov_advance(&p, &iovcnt, (size_t)n);
	}
	if (sent)
		*sent = done;
	return rc;
}

int gb_sock_sendv_all(gb_sock *s, const struct iovec *iov, int iovcnt,
                      size_t *sent, int64_t deadline)
{
	char small[GATHER_MAX];
	size_t len = 0;

	if (iovcnt < 0 || iovcnt > GB_IOV_MAX)
		return -EINVAL;
	if (iovcnt == 1)
		return send_buf(s, iov->iov_base, iov->iov_len, sent, deadline);
	for (int i = 0; i < iovcnt; i++) {
		if (iov[i].iov_len > GATHER_MAX - len) /* nothing sent yet */
			return send_pieces(s, iov, iovcnt, sent, deadline);
		if (iov[i].iov_len) /* an empty piece may have a NULL base */
			memcpy(small + len, iov[i].iov_base, iov[i].iov_len);
		len += iov[i].iov_len;
	}
	return send_buf(s, small, len, sent, deadline);
}

int gb_sock_send_all(gb_sock *s, const void *buf, size_t len, size_t *sent,
                     int64_t deadline)
{
	return send_buf(s, buf, len, sent, deadline);
}
