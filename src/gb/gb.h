/*
 * gb.h - the giambio scheduler: stackful green threads on libevent.
 *
 * This is the only public header of the scheduler library. Everything the
 * daemon and the tests need is declared here; nothing outside src/gb/ may
 * include libevent headers for scheduling.
 *
 * Conventions (libuv/libdill style):
 *  - Functions that can fail return 0 (or a non-negative count) on success
 *    and a negative errno value on failure (-ETIMEDOUT, -ECANCELED, ...).
 *  - Every blocking call takes an absolute deadline on the monotonic clock,
 *    in nanoseconds as returned by gb_now(), or GB_NEVER.
 *  - Blocking calls are checkpoints: a cancelled task gets -ECANCELED from
 *    every blocking call until it ends (level-triggered, as in trio).
 *  - The scheduler is single-threaded: every gb_ function except gb_now()
 *    must be called from a task running inside gb_run().
 */
#ifndef GB_H
#define GB_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- time */

/* No deadline. Chosen as the largest value so that min() picks any other. */
#define GB_NEVER INT64_MAX

#define GB_USEC(x) ((int64_t)(x) * 1000LL)
#define GB_MSEC(x) ((int64_t)(x) * 1000000LL)
#define GB_SEC(x)  ((int64_t)(x) * 1000000000LL)

/* Monotonic clock, nanoseconds. Safe from any thread. */
int64_t gb_now(void);

/* gb_now() + ns, saturating at GB_NEVER. */
int64_t gb_after(int64_t ns);

/* --------------------------------------------------------------- tasks */

typedef struct gb_task gb_task;
typedef struct gb_group gb_group;

/* A task's body. Its result is the task's result: 0 or positive for
 * success, a negative errno value for failure. A failure propagates to the
 * task's group (see gb_group_*). */
typedef int (*gb_fn)(void *arg);

/* Scheduler settings for gb_run_with(). Zero fields take the default. */
typedef struct gb_config {
	size_t stack_size;   /* default stack size per task; default 64 KiB */
	size_t stack_pool;   /* freed default-size stacks kept; default 1024 */
	unsigned io_budget;  /* I/O operations per turn before a forced yield;
	                      * default 32 */
	unsigned io_skip;    /* scheduling passes between two I/O polls while
	                      * tasks are runnable; default 64 */
} gb_config;

/* Runs main(arg) as the first task and the event loop until main and every
 * task it spawned have ended. Returns main's result, or a negative errno if
 * the scheduler itself could not start (-ENOMEM, -EBUSY if already
 * running). While it runs, SIGPIPE is ignored unless the program handles
 * it, so writing to a vanished peer is -EPIPE, never a killed process. */
int gb_run(gb_fn main, void *arg);
int gb_run_with(gb_fn main, void *arg, const gb_config *cfg);

/* Spawn options. NULL means defaults. */
typedef struct gb_spawn_opts {
	const char *name;    /* copied; truncated to GB_NAME_MAX - 1 bytes */
	size_t stack_size;   /* 0: the scheduler's default */
} gb_spawn_opts;

#define GB_NAME_MAX 48

/* Spawns fn(arg) into group g. The new task is appended to the run queue;
 * the caller keeps running. If handle is not NULL the caller gets a
 * reference to the task and must drop it with gb_task_release() (the
 * task's memory lives until both the task has ended and the reference is
 * dropped). Returns 0, -ENOMEM (no memory or no mapping left: see the log
 * line about vm.max_map_count), or -EINVAL (g already closed, or
 * stack_size too small). A task spawned into a cancelled group starts
 * cancelled. */
int gb_spawn(gb_group *g, gb_fn fn, void *arg, const gb_spawn_opts *opts,
             gb_task **handle);

/* Drops a reference taken by gb_spawn(). */
void gb_task_release(gb_task *t);

/* 1 if the task has ended, and then its result in *result (may be NULL). */
int gb_task_done(const gb_task *t, int *result);

/* The running task. */
gb_task *gb_self(void);

/* A task's name ("" if none was given). */
const char *gb_task_name(const gb_task *t);
void gb_task_set_name(gb_task *t, const char *name);

/* A task's unique id: 1 for main, then increasing. */
uint64_t gb_task_id(const gb_task *t);

/* Cancels a task (and every task in the groups it has open, recursively).
 * Level-triggered: its current blocking call returns -ECANCELED, and so
 * does every later one, except inside a shielded scope. Cancelling a
 * finished task does nothing. May be called on the running task. */
void gb_cancel(gb_task *t);

/* 1 if the task has been cancelled. */
int gb_cancelled(const gb_task *t);

/* Goes to the back of the run queue. A checkpoint: after yielding, returns
 * -ECANCELED if the task is cancelled, -ETIMEDOUT inside a scope whose
 * deadline has passed, else 0. */
int gb_yield(void);

/* Sleeps until the deadline. Returns 0 when it is reached, -ECANCELED if
 * cancelled, -ETIMEDOUT if an enclosing scope's deadline comes first. */
int gb_sleep(int64_t deadline);

/* -------------------------------------------------------------- scopes */

/* A cancel scope: a stretch of work with its own deadline and its own
 * cancellation (giambio's with_timeout / skip_after, trio's CancelScope).
 * Scopes live on the caller's stack and nest strictly: leave them in the
 * reverse order of entering. The fields are private. */
typedef struct gb_scope {
	struct gb_scope *parent;
	gb_task *task;
	gb_group *group;     /* set for the scope a group opens */
	int64_t deadline;
	unsigned char shield;
	unsigned char cancelled;
	unsigned char expired;
} gb_scope;

#define GB_SHIELD 1

/* Enters a scope. Blocking calls inside it fail with -ETIMEDOUT once the
 * deadline has passed (and keep failing until the scope is left). With
 * GB_SHIELD in flags, cancellation from outside the scope (gb_cancel of the
 * task, outer scopes and their deadlines) does not reach inside: use it for
 * short cleanup such as flushing and closing. */
void gb_scope_enter(gb_scope *s, int64_t deadline, int flags);

/* Leaves the scope. Returns -ETIMEDOUT if its deadline expired while
 * inside, -ECANCELED if gb_scope_cancel() was called on it, else 0. */
int gb_scope_leave(gb_scope *s);

/* Cancels everything inside the scope (may be called from another task
 * while the scope is entered). */
void gb_scope_cancel(gb_scope *s);

/* Moves the scope's deadline (earlier or later). */
void gb_scope_set_deadline(gb_scope *s, int64_t deadline);

/* -------------------------------------------------------------- groups */

/* A task group (giambio's task pool, trio's nursery). It owns the tasks
 * spawned into it. The task that opens a group is its owner; the group is
 * also a scope on the owner, so groups nest with scopes.
 *
 * When a child fails (returns a negative value other than -ECANCELED after
 * being cancelled), the group records the error, cancels the remaining
 * children, and cancels the owner's work inside the group: the owner's
 * blocking calls return -ECANCELED until it closes the group, where it sees
 * the child's error. No task outlives its group: a task that ends with a
 * group still open closes it first. */
int gb_group_open(gb_group **out);

/* Waits until every task in the group has ended. Returns the group's first
 * error, or 0; -ETIMEDOUT / -ECANCELED if the deadline passed or the owner
 * was cancelled first (the children keep running). Only the owner may wait.
 */
int gb_group_wait(gb_group *g, int64_t deadline);

/* Cancels every task still in the group. */
void gb_group_cancel(gb_group *g);

/* Cancels what is left, waits for it (not interruptible: children are
 * cancelled and must end), leaves the group's scope and frees the group.
 * Returns the first error of any child, or 0. Only the owner may close,
 * and groups and scopes close in reverse order of opening. */
int gb_group_close(gb_group *g);

/* Number of failed children so far, and up to max of their errors, first
 * first. */
size_t gb_group_errors(const gb_group *g, int *errs, size_t max);

/* Number of tasks in the group that have not ended. */
size_t gb_group_size(const gb_group *g);

/* ------------------------------------------------- file descriptors */

typedef struct gb_fd gb_fd;

#define GB_READ  1
#define GB_WRITE 2

/* Registers fd with the poller once (persistent, edge-triggered). The fd
 * is made non-blocking and close-on-exec. The gb_fd does not own fd unless
 * gb_fd_close() is asked to close it. Returns 0, -ENOMEM or -EINVAL. */
int gb_fd_open(gb_fd **out, int fd);

/* The underlying descriptor. */
int gb_fd_get(const gb_fd *f);

/* Waits until fd is ready for events (GB_READ or GB_WRITE, one at a time).
 * Returns at once if readiness is already known; call gb_fd_unready()
 * first when an operation just returned EAGAIN. One reader and one writer
 * may wait at the same time; a second waiter for the same direction gets
 * -EBUSY. Other errors: -ETIMEDOUT, -ECANCELED, -EBADF (the gb_fd was
 * closed while waiting). */
int gb_fd_wait(gb_fd *f, int events, int64_t deadline);

/* Forgets known readiness (after EAGAIN), so that the next gb_fd_wait()
 * blocks until the poller reports new readiness. */
void gb_fd_unready(gb_fd *f, int events);

/* read(2)/write(2) with optimistic I/O: try the system call first and wait
 * on EAGAIN. A short read of a stream socket marks it drained, so the next
 * read waits for the poller first (see fd.c for why that loses no end of
 * stream or reset). Counts against the task's I/O budget: when the budget of
 * a turn is spent, the call yields first, so a task whose fd is always
 * ready cannot starve others. Return the byte count (0 is end of file for
 * read) or a negative errno. */
ssize_t gb_fd_read(gb_fd *f, void *buf, size_t len, int64_t deadline);
ssize_t gb_fd_write(gb_fd *f, const void *buf, size_t len, int64_t deadline);
/* Gathering form of gb_fd_write (sendmsg/writev). */
ssize_t gb_fd_writev(gb_fd *f, const struct iovec *iov, int iovcnt,
                     int64_t deadline);

/* Spends one unit of the running task's I/O budget; yields first if it is
 * spent. For I/O layers built on gb_fd. A checkpoint: returns 0, or
 * -ECANCELED / -ETIMEDOUT as gb_yield() does. */
int gb_io_checkpoint(void);

/* Unregisters and frees f, waking its waiters with -EBADF. Closes the
 * descriptor too if close_fd is non-zero. Returns close(2)'s result. */
int gb_fd_close(gb_fd *f, int close_fd);

/* ------------------------------------------------ synchronisation */

/*
 * Events, locks, semaphores, condition variables and channels. All are
 * FIFO: waiters are served in the order they arrived. Every wait takes a
 * deadline and is a cancellation point; a waiter that times out or is
 * cancelled leaves the primitive as if it had never waited (no lost
 * wake-up, no lost item, no lock held by a task that gave up). The structs
 * may be embedded; their fields are private.
 */
typedef struct gb_waiter gb_waiter;
typedef struct gb_waitq {
	gb_waiter *head, *tail;
} gb_waitq;

typedef struct gb_event {
	gb_waitq q;
	int set;
} gb_event;

void gb_event_init(gb_event *e);
/* Sets the event and wakes every waiter. */
void gb_event_set(gb_event *e);
void gb_event_clear(gb_event *e);
int gb_event_is_set(const gb_event *e);
/* Returns 0 at once if set, else waits for gb_event_set(). */
int gb_event_wait(gb_event *e, int64_t deadline);

/* A lock with FIFO hand-off: unlocking gives the lock straight to the
 * longest waiter, so no task can barge in ahead of it. */
typedef struct gb_lock {
	gb_waitq q;
	gb_task *owner;
} gb_lock;

void gb_lock_init(gb_lock *l);
int gb_lock_acquire(gb_lock *l, int64_t deadline);
/* -EBUSY if held (or already held by the caller: the lock is not
 * recursive). */
int gb_lock_try(gb_lock *l);
/* -EPERM if the caller does not hold the lock. */
int gb_lock_release(gb_lock *l);
gb_task *gb_lock_owner(const gb_lock *l);

/* A counting semaphore. max == 0 means no upper bound; releasing past max
 * fails with -EOVERFLOW. */
typedef struct gb_sem {
	gb_waitq q;
	unsigned value, max;
} gb_sem;

void gb_sem_init(gb_sem *s, unsigned value, unsigned max);
int gb_sem_acquire(gb_sem *s, int64_t deadline);
int gb_sem_try(gb_sem *s);  /* -EAGAIN when the count is 0 */
int gb_sem_release(gb_sem *s);
unsigned gb_sem_value(const gb_sem *s);

/* A condition variable used with a gb_lock. */
typedef struct gb_cond {
	gb_waitq q;
} gb_cond;

void gb_cond_init(gb_cond *c);
/* Releases l (which the caller must hold: else -EPERM), waits for a
 * signal, and takes l back before returning, whatever the result:
 * 0, -ETIMEDOUT or -ECANCELED. */
int gb_cond_wait(gb_cond *c, gb_lock *l, int64_t deadline);
void gb_cond_signal(gb_cond *c);
void gb_cond_broadcast(gb_cond *c);

/* A bounded channel of fixed-size items (pointers are items of
 * sizeof(void *)). capacity 0 makes every send a rendezvous with a
 * receiver. */
typedef struct gb_chan gb_chan;

int gb_chan_open(gb_chan **out, size_t item_size, size_t capacity);
/* Copies item in; waits while the channel is full. -EPIPE once closed. */
int gb_chan_send(gb_chan *c, const void *item, int64_t deadline);
/* Copies the oldest item out; waits while empty. After gb_chan_close(),
 * what is queued is still received, then -EPIPE. */
int gb_chan_recv(gb_chan *c, void *item, int64_t deadline);
/* Non-blocking forms: -EAGAIN instead of waiting. */
int gb_chan_try_send(gb_chan *c, const void *item);
int gb_chan_try_recv(gb_chan *c, void *item);
/* Senders get -EPIPE at once, receivers after the queue drains. */
void gb_chan_close(gb_chan *c);
size_t gb_chan_len(const gb_chan *c);
/* Frees the channel; nobody may be waiting on it. */
void gb_chan_free(gb_chan *c);

/* ------------------------------------------------------------- sockets */

/*
 * A socket owned by the scheduler (giambio's AsyncSocket). Calls try the
 * system call first and wait when it would block (see gb_fd_read). A peer that resets or
 * vanishes gives -ECONNRESET or -EPIPE, never a SIGPIPE. Closing a socket
 * wakes any task waiting on it with -EBADF; nobody may use it afterwards.
 */
typedef struct gb_sock gb_sock;

/* Takes ownership of fd (made non-blocking and close-on-exec). */
int gb_sock_wrap(gb_sock **out, int fd);
int gb_sock_fd(const gb_sock *s);

typedef struct gb_listen_opts {
	int backlog;         /* 0: SOMAXCONN */
	int reuseport;       /* set SO_REUSEPORT */
	int v6only;          /* IPv6 only: -1 system default, 0 dual-stack, 1 */
} gb_listen_opts;

/* A listening TCP socket with SO_REUSEADDR. */
int gb_sock_listen(gb_sock **out, const struct sockaddr *sa, socklen_t len,
                   const gb_listen_opts *opts);

/* Accepts a client; peer (may be NULL) gets its address. When the process
 * is out of descriptors, pending connections are accepted and closed at
 * once with a spare descriptor, accepting pauses for 100 ms at a time, and
 * the episode is logged once; it ends by itself when descriptors free up.
 */
int gb_sock_accept(gb_sock *ls, gb_sock **client,
                   struct sockaddr_storage *peer, int64_t deadline);

/* A non-blocking TCP connect to sa, waiting at most until deadline. */
int gb_sock_connect(gb_sock **out, const struct sockaddr *sa, socklen_t len,
                    int64_t deadline);

/* Up to len bytes (buffered data first). 0 at end of stream. */
ssize_t gb_sock_recv(gb_sock *s, void *buf, size_t len, int64_t deadline);

/* One line, terminator included, of at most max bytes. A longer line is
 * returned in pieces of max bytes (no '\n' at their end); a final
 * fragment without '\n' is returned at end of stream; then 0. *line points
 * into the socket's buffer and stays valid until the next receive call. */
ssize_t gb_sock_recv_line(gb_sock *s, size_t max, const char **line,
                          int64_t deadline);
/* The next line gb_sock_recv_line would return from what is already
 * received, without reading, waiting or yielding: its length, or 0 when
 * the buffer holds no such line. The lines it returns, and the one the
 * last gb_sock_recv_line returned, all stay valid until the next
 * gb_sock_recv_line or gb_sock_recv: a server can answer every line a
 * client sent together with one send. */
ssize_t gb_sock_next_line(gb_sock *s, size_t max, const char **line);

/* Bytes received and buffered but not yet returned. */
size_t gb_sock_pending(const gb_sock *s);

/* Sends everything, looping over partial writes. Returns 0, or the error
 * that stopped it (-ETIMEDOUT, -ECANCELED, -EPIPE, ...); *sent (may be
 * NULL) says how many bytes went out either way. */
int gb_sock_send_all(gb_sock *s, const void *buf, size_t len, size_t *sent,
                     int64_t deadline);
/* The same for up to GB_IOV_MAX pieces, in one system call when it can. */
#define GB_IOV_MAX 64
int gb_sock_sendv_all(gb_sock *s, const struct iovec *iov, int iovcnt,
                      size_t *sent, int64_t deadline);

/* Drops n bytes from the front of the pieces (*iov)[0..*cnt), as after a
 * partial write: whole pieces are skipped, the first remaining one is
 * shortened in place. */
void gb_iov_advance(struct iovec **iov, int *cnt, size_t n);

/* shutdown(2): SHUT_RD, SHUT_WR or SHUT_RDWR (half-close). */
int gb_sock_shutdown(gb_sock *s, int how);
int gb_sock_close(gb_sock *s);

/* ------------------------------------------------------------ addresses */

/* Parses "host:port", "[v6addr]:port" or "*:port" (every address: IPv6
 * any, which is dual-stack unless v6only is asked for) with a numeric
 * host. Returns 0 or -EINVAL. */
int gb_addr_parse(const char *text, struct sockaddr_storage *ss,
                  socklen_t *len);
/* Formats as "1.2.3.4:port" or "[::1]:port"; returns 0 or -EINVAL. */
#define GB_ADDR_STRLEN 64
int gb_addr_format(const struct sockaddr *sa, char *buf, size_t size);

/* -------------------------------------------------- blocking work */

/*
 * Runs fn(arg) on a small pool of worker threads and waits for its result.
 * If the wait ends first (deadline, cancellation) the task returns at once
 * and fn keeps running: it then owns arg, so arg must not live on the
 * task's stack, and discard(arg, result) (may be NULL) is called on the
 * scheduler's thread when fn finishes, to free them. Whenever gb_work
 * fails, discard gets arg: at once with a NULL result if fn never ran
 * (cancelled before, no memory, no thread), else when fn finishes.
 */
typedef void *(*gb_work_fn)(void *arg);
int gb_work(gb_work_fn fn, void *arg, void (*discard)(void *arg, void *res),
            void **result, int64_t deadline);

/* getaddrinfo(3) on the worker pool. Returns 0; -ETIMEDOUT, -ECANCELED
 * or -ENOMEM; or -ENOENT when the lookup failed, with getaddrinfo's EAI_
 * code in *gai_error (may be NULL; see gai_strerror). */
struct addrinfo;
int gb_getaddrinfo(const char *node, const char *service,
                   const struct addrinfo *hints, struct addrinfo **res,
                   int *gai_error, int64_t deadline);

/* ------------------------------------------------------------- signals */

/*
 * Signals delivered to a task instead of a handler: the handler libevent
 * installs only records the signal, and the waiting task does the work.
 */
typedef struct gb_signals gb_signals;

/* Starts catching the n signals in signos. */
int gb_signals_open(gb_signals **out, const int *signos, int n);
/* The next caught signal's number (> 0); waits if none is pending.
 * Signals come in order of arrival, except that several arriving within
 * one loop iteration come by signal number (libevent counts them per
 * signal). One waiter at a time (else -EBUSY). */
int gb_signals_wait(gb_signals *s, int64_t deadline);
/* Stops catching them (their previous handling is restored). */
void gb_signals_close(gb_signals *s);

/* ------------------------------------------------------ instrumentation */

/* Hooks, like giambio's debugger class. Any member may be NULL. They run on
 * the scheduler's hot paths: keep them short, and do not block in them. */
typedef struct gb_hooks {
	void (*on_spawn)(gb_task *t, void *ud);
	void (*on_switch)(gb_task *from, gb_task *to, void *ud);
	void (*on_exit)(gb_task *t, int result, void *ud);
	void (*on_io_wait)(gb_task *t, int fd, int events, void *ud);
	void (*on_io_wake)(gb_task *t, int fd, int result, void *ud);
	void *ud;
} gb_hooks;

/* Installs hooks (copied), or removes them with NULL. Callable before
 * gb_run() too. */
void gb_set_hooks(const gb_hooks *h);

/* ------------------------------------------------------------- logging */

enum { GB_LOG_ERROR, GB_LOG_WARNING, GB_LOG_INFO, GB_LOG_DEBUG };

/* Where the scheduler's own rare messages go (default: stderr). */
typedef void (*gb_log_fn)(int level, const char *msg);
void gb_set_log(gb_log_fn fn);

/* -------------------------------------------------------------- memory */

/* Every allocation of the scheduler and of the daemon goes through these.
 * Built with --enable-fault-injection (GB_FAULT_INJECTION, test builds
 * only), they fail on purpose once gb_fault_arm() has run, as the
 * environment asks (see fault.c): GB_FAULT_ALLOC=N fails 1 in N
 * allocations, GB_FAULT_STACK=N every Nth task stack mapping. Otherwise
 * they are the C library's functions, inlined, and gb_fault_arm() does
 * nothing, so that production builds pay nothing. */
#ifdef GB_FAULT_INJECTION
void *gb_malloc(size_t n);
void *gb_calloc(size_t n, size_t size);
void *gb_realloc(void *p, size_t n);
char *gb_strdup(const char *s);
void gb_fault_arm(void);
#else
#include <stdlib.h>
#include <string.h>
static inline void *gb_malloc(size_t n) { return malloc(n); }
static inline void *gb_calloc(size_t n, size_t size)
{
	return calloc(n, size);
}
static inline void *gb_realloc(void *p, size_t n) { return realloc(p, n); }
static inline char *gb_strdup(const char *s) { return strdup(s); }
static inline void gb_fault_arm(void) {}
#endif

#ifdef __cplusplus
}
#endif
#endif /* GB_H */
