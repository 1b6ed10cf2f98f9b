/*
 * fd.c - waiting on file descriptors.
 *
 * Each fd is registered with libevent once, persistent and edge-triggered,
 * and the scheduler keeps what the poller last reported as "known ready"
 * bits. A task tries its system call first and waits only when the fd is
 * known to be drained, so in steady state a message costs its read, its
 * write and a share of one epoll_wait, with no epoll_ctl.
 *
 * When is a stream socket drained? EAGAIN proves it. A short read (fewer
 * bytes than asked) nearly proves it: more data or an end of stream
 * arriving later raises a new edge. The exception is a hang-up that
 * arrived together with the data, which the poller reports only once:
 * a peer's FIN comes as EV_CLOSED and is remembered (rdhup), so short
 * reads are not trusted after it; a reset comes as EV_READ|EV_WRITE, the
 * same as any data edge. So an fd that a short read marked drained is put
 * on the suspect list, and if no edge comes for a whole sweep interval it
 * is marked ready again and its reader woken to read once more: a reset
 * after a partial line is noticed within two intervals, and a quiet
 * connection costs one extra read per quiet spell instead of one per
 * message.
 *
 * Who may wake a waiter: the fd's event callback (readiness), gb_fd_close
 * (-EBADF), or the scheduler's deadline and cancellation paths (through
 * detach_waiter).
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

struct gb_fd {
	struct event ev;
	int fd;
	unsigned char ready;   /* GB_READ | GB_WRITE known from the poller */
	unsigned char sock;    /* write with send(MSG_NOSIGNAL) */
	unsigned char stream;  /* SOCK_STREAM: short reads mean drained */
	unsigned char rdhup;   /* the peer's end of stream has been reported */
	gb_task *reader, *writer;
	/* Suspect list (see above): linked while sprev != NULL, which is
	 * exactly while a short read has drained the fd and no edge has come
	 * since, so a read then waits for the poller first. */
	gb_fd *snext, **sprev;
	unsigned sgen;         /* sweep generation of the last short read */
};

/* How long a drained-by-short-read fd may stay silent before it is read
 * once more; it is read again after one to two intervals. */
#define SWEEP_INTERVAL GB_MSEC(250)

static void suspect_unlink(gb_fd *f)
{
	if (!f->sprev)
		return;
	if (f->snext)
		f->snext->sprev = f->sprev;
	*f->sprev = f->snext;
	f->sprev = NULL;
}

static void sweep_arm(void)
{
	struct timeval tv = { 0, (suseconds_t)(SWEEP_INTERVAL / 1000) };

	evtimer_add(&gb__s.sweep, &tv);
}

/* Every fd still suspect from before the previous sweep is made ready and
 * its reader woken; the later ones wait for the next sweep. */
static void sweep(evutil_socket_t fd, short what, void *arg)
{
	gb_fd *f, *next;

	(void)fd;
	(void)what;
	(void)arg;
	gb__s.sweep_gen++;
	for (f = gb__s.suspects; f; f = next) {
		next = f->snext;
		if (f->sgen == gb__s.sweep_gen - 1)
			continue;
		suspect_unlink(f);
		f->ready |= GB_READ;
		if (f->reader) {
			gb_task *t = f->reader;
			f->reader = NULL;
			gb__wake(t, 0);
		}
	}
	if (gb__s.suspects)
		sweep_arm();
}

static void suspect_add(gb_fd *f)
{
	f->sgen = gb__s.sweep_gen;
	if (f->sprev)
		return;
	if (!gb__s.suspects && !evtimer_pending(&gb__s.sweep, NULL))
		sweep_arm();
	f->snext = gb__s.suspects;
	if (f->snext)
		f->snext->sprev = &f->snext;
	gb__s.suspects = f;
	f->sprev = &gb__s.suspects;
}

void gb__fd_init(void)
{
	evtimer_assign(&gb__s.sweep, gb__s.base, sweep, NULL);
}

void gb__fd_teardown(void)
{
	evtimer_del(&gb__s.sweep);
}

static void fd_event(evutil_socket_t fd, short what, void *arg)
{
	gb_fd *f = arg;

	(void)fd;
	if (what & EV_CLOSED)
		f->rdhup = 1;
	if (what & (EV_READ | EV_CLOSED)) {
		f->ready |= GB_READ;
		suspect_unlink(f);
		if (f->reader) {
			gb_task *t = f->reader;
			f->reader = NULL;
			gb__wake(t, 0);
		}
	}
	if (what & EV_WRITE) {
		f->ready |= GB_WRITE;
		if (f->writer) {
			gb_task *t = f->writer;
			f->writer = NULL;
			gb__wake(t, 0);
		}
	}
}

static void classify(gb_fd *f)
{
	struct stat st;
	int type = 0;
	socklen_t len = sizeof type;

	f->sock = fstat(f->fd, &st) == 0 && S_ISSOCK(st.st_mode);
	f->stream = f->sock &&
	            getsockopt(f->fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 &&
	            type == SOCK_STREAM;
}

static int set_flags(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	int fdfl = fcntl(fd, F_GETFD);

	if (fl < 0 || fdfl < 0)
		return -errno;
	if (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	if (!(fdfl & FD_CLOEXEC) && fcntl(fd, F_SETFD, fdfl | FD_CLOEXEC) < 0)
		return -errno;
	return 0;
}

int gb_fd_open(gb_fd **out, int fd)
{
	gb_fd *f;
	int rc;

	if (fd < 0)
		return -EINVAL;
	if ((rc = set_flags(fd)) < 0)
		return rc == -EBADF ? -EINVAL : rc;
	if (!(f = gb_calloc(1, sizeof *f)))
		return -ENOMEM;
	f->fd = fd;
	classify(f);
	event_assign(&f->ev, gb__s.base, fd,
	             EV_READ | EV_WRITE | EV_PERSIST | EV_ET |
	             (f->stream ? EV_CLOSED : 0), fd_event, f);
	if (event_add(&f->ev, NULL) != 0) {
		free(f);
		return -EINVAL;
	}
	*out = f;
	return 0;
}

int gb_fd_get(const gb_fd *f)
{
	return f->fd;
}

static void detach_waiter(gb_task *t)
{
	gb_fd *f = t->wait_obj;

	if (f->reader == t)
		f->reader = NULL;
	if (f->writer == t)
		f->writer = NULL;
}

int gb_fd_wait(gb_fd *f, int events, int64_t deadline)
{
	gb_task *t = gb__s.current;
	gb_task **slot;
	int rc;

	if (events != GB_READ && events != GB_WRITE)
		return -EINVAL;
	if ((rc = gb__checkpoint_status(t)) != 0)
		return rc;
	if (f->ready & events)
		return 0;
	slot = events == GB_READ ? &f->reader : &f->writer;
	if (*slot)
		return -EBUSY;
	*slot = t;
	t->wait_obj = f;
	int fd = f->fd; /* f may be closed and freed by the time we wake */
	if (GB_UNLIKELY(gb__hooks && gb__hooks->on_io_wait))
		gb__hooks->on_io_wait(t, fd, events, gb__hooks->ud);
	rc = gb__block(deadline, detach_waiter);
	if (GB_UNLIKELY(gb__hooks && gb__hooks->on_io_wake))
		gb__hooks->on_io_wake(t, fd, rc, gb__hooks->ud);
	return rc;
}

void gb_fd_unready(gb_fd *f, int events)
{
	f->ready &= (unsigned char)~events;
}

int gb_io_checkpoint(void)
{
	gb_task *t = gb__s.current;

	if (GB_UNLIKELY(t->budget == 0))
		gb_yield(); /* resets the budget; the status is checked below */
	t->budget--;
	return gb__checkpoint_status(t);
}

/* A system call failed with errno: whether to try again (1: EINTR, or
 * EAGAIN and the fd became ready), or give up with *rc. */
static int io_again(gb_fd *f, int events, int64_t deadline, ssize_t *rc)
{
	if (errno == EINTR)
		return 1;
	if (errno != EAGAIN && errno != EWOULDBLOCK) {
		*rc = -errno;
		return 0;
	}
	gb_fd_unready(f, events);
	*rc = gb_fd_wait(f, events, deadline);
	return *rc == 0;
}

ssize_t gb_fd_read(gb_fd *f, void *buf, size_t len, int64_t deadline)
{
	ssize_t n = gb_io_checkpoint();

	if (n == 0 && f->sprev) /* drained by a short read: see above */
		n = gb_fd_wait(f, GB_READ, deadline);
	while (n == 0 && (n = read(f->fd, buf, len)) < 0 &&
	       io_again(f, GB_READ, deadline, &n))
		n = 0;
	if (n > 0 && (size_t)n < len && f->stream && !f->rdhup) {
		gb_fd_unready(f, GB_READ);
		suspect_add(f);
	}
	return n;
}

/* A socket is written with send or sendmsg(MSG_NOSIGNAL), so a vanished
 * peer is -EPIPE and never a SIGPIPE. One piece goes by send(), which
 * spares the kernel copying in a msghdr and an iovec array. */
static ssize_t writev_some(gb_fd *f, const struct iovec *iov, int iovcnt)
{
	if (f->sock && iovcnt == 1)
		return send(f->fd, iov->iov_base, iov->iov_len, MSG_NOSIGNAL);
	if (f->sock) {
		struct msghdr m = { .msg_iov = (struct iovec *)iov,
		                    .msg_iovlen = (size_t)iovcnt };
		return sendmsg(f->fd, &m, MSG_NOSIGNAL);
	}
	return writev(f->fd, iov, iovcnt);
}

static size_t iov_total(const struct iovec *iov, int iovcnt)
{
	size_t n = 0;

	for (int i = 0; i < iovcnt; i++)
		n += iov[i].iov_len;
	return n;
}

ssize_t gb_fd_writev(gb_fd *f, const struct iovec *iov, int iovcnt,
                     int64_t deadline)
{
	ssize_t n = gb_io_checkpoint();

	while (n == 0 && (n = writev_some(f, iov, iovcnt)) < 0 &&
	       io_again(f, GB_WRITE, deadline, &n))
		n = 0;
	/* A partial write filled the socket: the next one would fail. */
	if (n >= 0 && (size_t)n < iov_total(iov, iovcnt))
		gb_fd_unready(f, GB_WRITE);
	return n;
}

ssize_t gb_fd_write(gb_fd *f, const void *buf, size_t len, int64_t deadline)
{
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };

	return gb_fd_writev(f, &iov, 1, deadline);
}

int gb_fd_close(gb_fd *f, int close_fd)
{
	int rc = 0;

	event_del(&f->ev);
	suspect_unlink(f);
	if (f->reader)
		gb__wake(f->reader, -EBADF);
	if (f->writer)
		gb__wake(f->writer, -EBADF);
	if (close_fd && close(f->fd) != 0)
		rc = -errno;
	free(f);
	return rc;
}
