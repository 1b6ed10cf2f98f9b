"""giambiod's systemd side, without systemd as PID 1: socket activation
(sockets passed the way systemd passes them, by a fork/exec fixture and by
systemd-socket-activate), refusal of passed sockets that are not listening
TCP sockets, and sd_notify messages (READY=1, STATUS=, the reload
sequence, STOPPING=1, WATCHDOG=1) received on an AF_UNIX datagram socket
the test owns.

A giambiod built --without-systemd must ignore LISTEN_FDS and send no
notification; the other tests are then reported as SKIP.
"""

import fcntl
import functools
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import harness
from harness import GIAMBIOD, check, conf_text, connect_refused, eq

WELCOME = b"Welcome to the server pal!\n"
YOU_ARE = re.compile(rb"^\* you are (guest\d+) in #lobby, "
                     rb"type /help for commands\n$")
SOCKET_ACTIVATE = "/usr/bin/systemd-socket-activate"
STARTUP_RE = harness.STARTUP_RE

# Variables that would change what the daemon under test does; each test
# sets the ones it needs.
_SD_VARS = ("NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES",
            "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM")


# ------------------------------------------------------------ fixtures

class ForkedProc:
    """A child started with os.fork() and os.execve(): sockets are dup2()ed
    to fds 3, 4, ... and pid_vars (LISTEN_PID, WATCHDOG_PID) are set to the
    child's own pid in the child, before the exec, as systemd does. It has
    the part of subprocess.Popen that harness.Daemon uses."""

    def __init__(self, argv, env, fds=(), pid_vars=()):
        self.args = argv
        self.returncode = None
        devnull = os.open(os.devnull, os.O_RDWR)
        rfd, wfd = os.pipe()
        env = dict(env)
        nfds = len(fds)
        pid = os.fork()
        if pid == 0:  # the child: nothing but system calls, then exec
            try:
                harness._prctl(harness.PR_SET_PDEATHSIG, signal.SIGKILL,
                               0, 0, 0)
                signal.signal(signal.SIGPIPE, signal.SIG_DFL)
                # Out of the way first: a source may be fd 3 or 4 itself.
                high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 200 + i)
                        for i, fd in enumerate(fds)]
                os.dup2(devnull, 0)
                os.dup2(devnull, 1)
                os.dup2(wfd, 2)
                for i, fd in enumerate(high):
                    os.dup2(fd, 3 + i)  # inheritable: no FD_CLOEXEC
                os.closerange(3 + nfds, 65536)
                me = str(os.getpid())
                for v in pid_vars:
                    env[v] = me
                os.execve(argv[0], argv, env)
            except BaseException:
                pass
            os._exit(127)
        self.pid = pid
        os.close(wfd)
        os.close(devnull)
        self.stderr = os.fdopen(rfd, "rb")

    def poll(self):
        if self.returncode is None:
            p, status = os.waitpid(self.pid, os.WNOHANG)
            if p == self.pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(self.args, timeout)
            time.sleep(0.01)
        return self.returncode

    def send_signal(self, sig):
        if self.poll() is None:
            os.kill(self.pid, sig)

    def kill(self):
        self.send_signal(signal.SIGKILL)


class SdDaemon(harness.Daemon):
    """harness.Daemon (log reader, stop and cleanup, exit status 0 checked,
    sanitizer reports) started by ForkedProc with a chosen environment and
    passed sockets. argv may replace "giambiod -c CONF" (for
    systemd-socket-activate); CONF is substituted by the config path."""

    def __init__(self, conf=None, server=None, limits=None, log=None,
                 env=None, fds=(), pid_vars=(), argv=None, wait_start=False,
                 start_timeout=5.0):
        self.dir = tempfile.mkdtemp(prefix="giambiod-test-")
        self.conf_path = os.path.join(self.dir, "giambio.conf")
        self.write_conf(conf if conf is not None
                        else conf_text(server, limits, log))
        self.lines = []
        self.cond = threading.Condition()
        self.clients = []
        self.exit_checked = False
        self.dumped = False
        self.returncode = None
        e = dict(os.environ)
        for v in _SD_VARS:
            e.pop(v, None)
        e.update(env or {})
        if argv is None:
            argv = [GIAMBIOD, "-c", "CONF"]
        self.argv = harness.wrap([self.conf_path if a == "CONF" else a
                                  for a in argv])
        self.proc = ForkedProc(self.argv, e, fds, pid_vars)
        harness._daemons.append(self)
        self.reader = threading.Thread(target=self._read_stderr, daemon=True)
        self.reader.start()
        self.port = None
        if wait_start:
            m = self.wait_log(STARTUP_RE, timeout=start_timeout)
            self.port = int(m.group(3))

    def startup_ports(self, n, timeout=5.0):
        """Waits for n startup lines; returns {port: mode}."""
        harness.wait_until(lambda: len(self.listening()) >= n or
                           not self.reader.is_alive(), timeout=timeout,
                           what="%d startup lines" % n)
        got = {p: mode for mode, _, p in self.listening()}
        check(len(got) >= n, "wanted %d startup lines, log:\n%s" % (
            n, harness._tail(self.log())))
        return got


def tcp_listener(host="127.0.0.1"):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, 0))
    s.listen(64)
    return s


def activated(socks, names=None, env=None, pid_vars=("LISTEN_PID",),
              **kw):
    """giambiod with socks passed as fds 3, 4, ... and LISTEN_FDS,
    LISTEN_PID (the child's pid) and LISTEN_FDNAMES set. The test's own
    copies of the sockets are closed once the child has them."""
    e = {"LISTEN_FDS": str(len(socks))}
    if names is not None:
        e["LISTEN_FDNAMES"] = names
    e.update(env or {})
    d = SdDaemon(env=e, fds=[s.fileno() for s in socks], pid_vars=pid_vars,
                 **kw)
    for s in socks:
        s.close()
    return d


class Notify:
    """An AF_UNIX datagram socket standing in for systemd's notify socket.
    A thread receives every datagram at once (the kernel queues only a few
    per socket, and sd_notify blocks when the queue is full) and records
    it with its arrival time on CLOCK_MONOTONIC, in seconds."""

    def __init__(self):
        self.path = os.path.join(harness.tempdir(), "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.05)
        self.msgs = []           # (arrival time, text)
        # on_ready(): called by the receiving thread itself, at once, for
        # the first READY=1 (to act as soon as systemd would).
        self.on_ready = None
        self.cond = threading.Condition()
        self.stopped = False
        _notifies.append(self)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopped:
            try:
                data = self.sock.recv(1 << 16)
            except socket.timeout:
                continue
            except OSError:
                break
            t = time.clock_gettime(time.CLOCK_MONOTONIC)
            if self.on_ready and fields(data.decode("utf-8", "replace")).get(
                    "READY") == "1":
                f, self.on_ready = self.on_ready, None
                f()
            with self.cond:
                self.msgs.append((t, data.decode("utf-8", "replace")))
                self.cond.notify_all()

    def close(self):
        self.stopped = True
        self.thread.join(2)
        self.sock.close()

    @property
    def env(self):
        return {"NOTIFY_SOCKET": self.path}

    def mark(self):
        with self.cond:
            return len(self.msgs)

    def all(self, since=0):
        with self.cond:
            return list(self.msgs[since:])

    def wait(self, pred, timeout=3.0, since=0, what="datagram"):
        """The first datagram from since on for which pred(fields, text)
        is true: returns (index, time, fields, text)."""
        deadline = time.monotonic() + timeout
        i = since
        with self.cond:
            while True:
                while i < len(self.msgs):
                    t, text = self.msgs[i]
                    f = fields(text)
                    if pred(f, text):
                        return i, t, f, text
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        "no %s within %.1fs; datagrams: %r" % (
                            what, timeout,
                            [m for _, m in self.msgs[since:]][-12:]))
                self.cond.wait(min(left, 0.1))

    def wait_key(self, key, value=None, **kw):
        kw.setdefault("what", "%s=%s" % (key, value if value else "..."))
        return self.wait(lambda f, _: key in f and
                         (value is None or f[key] == value), **kw)

    def statuses(self, since=0):
        """(time, STATUS value) of every datagram with STATUS=."""
        out = []
        for t, text in self.all(since):
            f = fields(text)
            if "STATUS" in f:
                out.append((t, f["STATUS"]))
        return out


_notifies = []


def fields(text):
    """The KEY=VALUE lines of a notify datagram, as a dict."""
    out = {}
    for line in text.split("\n"):
        if "=" in line:
            k, v = line.split("=", 1)
            out[k] = v
    return out


def sdtest(fn):
    """A test function whose Notify sockets are closed when it ends."""
    @functools.wraps(fn)
    def wrapper():
        try:
            fn()
        finally:
            for n in _notifies:
                n.close()
            del _notifies[:]
    return wrapper


def echo_client(d, port, host="127.0.0.1", line=b"hello"):
    c = d.connect(port=port, host=host)
    c.expect(WELCOME, what="echo welcome on port %d" % port)
    c.send(line + b"\n")
    c.expect(b"Got: " + line + b"\n", what="echo on port %d" % port)
    return c


def chat_client(d, port, host="127.0.0.1"):
    c = d.connect(port=port, host=host)
    c.expect(WELCOME, what="chat welcome on port %d" % port)
    line = c.read_line()
    m = YOU_ARE.match(line)
    check(m, "second line on the chat port %d: %r (not chat mode)" % (
        port, line))
    return c, m.group(1)


def status_re(mode, n, addrs):
    """STATUS= for mode with n clients on exactly the addresses addrs (in
    any order)."""
    word = "client" if n == 1 else "clients"

    def pred(f, _):
        s = f.get("STATUS")
        if s is None:
            return False
        m = re.match(r"^%s: %d %s on (.*)$" % (re.escape(mode), n, word), s)
        if not m:
            return False
        got = {a.strip() for a in m.group(1).split(",")}
        return got == set(addrs)
    return pred


def expect_refusal(d, fd, what_re, timeout=5.0):
    """The daemon exits non-zero within timeout, naming descriptor fd and
    what it is on stderr, without serving anything."""
    rc = d.wait_exit(timeout)
    check(rc != 0, "giambiod exited 0 with a bad passed socket")
    text = "\n".join(d.log())
    m = [l for l in d.log() if re.search(r"\bdescriptor %d\b" % fd, l)]
    check(m, "no message naming 'descriptor %d' on stderr:\n%s" % (
        fd, harness._tail(d.log())))
    check(any(re.search(what_re, l) for l in m),
          "the message about descriptor %d does not say what it is "
          "(wanted %r): %r" % (fd, what_re, m))
    check(not re.search(STARTUP_RE, text, re.M),
          "giambiod served a socket before refusing:\n%s" %
          harness._tail(d.log()))
    return rc


# ------------------------------------------------ built without systemd

@sdtest
def test_nosd_version():
    r = harness.run([GIAMBIOD, "-V"])
    eq(r.returncode, 0, "-V exit status")
    out = r.stdout.decode()
    check(re.match(r"^giambiod \S+ \(built without systemd: no "
                   r"notifications, LISTEN_FDS ignored\)\n$", out),
          "-V says %r" % out)


@sdtest
def test_nosd_listen_fds_ignored():
    port = harness.free_port()
    passed = tcp_listener()
    pport = passed.getsockname()[1]
    n = Notify()
    d = activated([passed], names="chat",
                  server={"listen": "127.0.0.1:%d" % port}, env=n.env)
    got = d.startup_ports(1)
    eq(sorted(got), [port], "ports served (configured %d, passed %d)" % (
        port, pport))
    echo_client(d, port)
    # The passed socket is open in the daemon but nobody accepts on it.
    c = d.connect(port=pport)
    c.expect_silent(0.5, what="client of the passed (ignored) socket")
    d.no_log(r"(?i)socket activation|descriptor 3|from systemd")
    eq(d.stop(), 0, "exit status")
    time.sleep(0.2)
    eq(n.all(), [], "datagrams on NOTIFY_SOCKET")


@sdtest
def test_nosd_no_notifications():
    n = Notify()
    env = dict(n.env, WATCHDOG_USEC="200000")
    d = SdDaemon(env=env, pid_vars=("WATCHDOG_PID",), wait_start=True)
    c = echo_client(d, d.port)
    c.close()
    mark = d.mark()
    d.write_conf(conf_text(server={"welcome": "Reloaded"}))
    d.signal(signal.SIGHUP)
    d.wait_log(r"Configuration reloaded", since=mark)
    time.sleep(0.5)
    eq(d.stop(), 0, "exit status after SIGTERM")
    time.sleep(0.2)
    eq(n.all(), [], "datagrams on NOTIFY_SOCKET (NOTIFY_SOCKET and "
       "WATCHDOG_USEC set, client, SIGHUP, SIGTERM)")


NOSD_TESTS = [test_nosd_version, test_nosd_listen_fds_ignored,
              test_nosd_no_notifications]


# ------------------------------------------------------ version string

@sdtest
def test_version():
    r = harness.run([GIAMBIOD, "-V"])
    eq(r.returncode, 0, "-V exit status")
    out = r.stdout.decode()
    check(re.match(r"^giambiod \S+ \(systemd: notify, socket activation, "
                   r"watchdog\)\n$", out), "-V says %r" % out)


# ---------------------------------------------------- socket activation

@sdtest
def test_activation_echo_and_chat():
    other = harness.free_port()
    e, c = tcp_listener(), tcp_listener()
    pe, pc = e.getsockname()[1], c.getsockname()[1]
    d = activated([e, c], names="echo:chat",
                  server={"listen": "127.0.0.1:%d" % other})
    got = d.startup_ports(2)
    eq(got, {pe: "Echo", pc: "Chat"}, "startup lines (port: mode)")
    # Which sockets it got is logged.
    d.wait_log(r"\bdescriptor 3\b.*\becho\b.*127\.0\.0\.1:%d" % pe)
    d.wait_log(r"\bdescriptor 4\b.*\bchat\b.*127\.0\.0\.1:%d" % pc)
    check(connect_refused(other), "the configured listen address %d is "
          "served" % other)
    a = echo_client(d, pe, line=b"over the echo socket")
    (x, nx), (y, ny) = chat_client(d, pc), chat_client(d, pc)
    x.expect(b"* %s joined #lobby\n" % ny)
    x.send(b"hello chat\n")
    y.expect(b"<%s> hello chat\n" % nx)
    a.send(b"again\n")
    a.expect(b"Got: again\n")
    x.expect_silent(0.1, what="chat client after echo traffic")


@sdtest
def test_activation_names_override_config_mode():
    # The configuration says chat; the names decide per socket.
    other = harness.free_port()
    c, e = tcp_listener(), tcp_listener()
    pc, pe = c.getsockname()[1], e.getsockname()[1]
    d = activated([c, e], names="chat:echo",
                  server={"listen": "127.0.0.1:%d" % other, "mode": "chat"})
    eq(d.startup_ports(2), {pc: "Chat", pe: "Echo"}, "startup lines")
    echo_client(d, pe)
    chat_client(d, pc)
    check(connect_refused(other), "the configured listen address is served")


@sdtest
def test_activation_unnamed_follows_config_and_reload():
    # fd 3 is named echo; fd 4 has a name that is not a mode (systemd's
    # default is the unit's name), so it follows the configuration, also
    # after a reload. A reload does not open the file's listen addresses.
    other = harness.free_port()
    e, u = tcp_listener(), tcp_listener()
    pe, pu = e.getsockname()[1], u.getsockname()[1]
    d = activated([e, u], names="echo:giambiod.socket",
                  server={"listen": "127.0.0.1:%d" % other})
    eq(d.startup_ports(2), {pe: "Echo", pu: "Echo"}, "startup lines")
    a = echo_client(d, pu)
    mark = d.mark()
    d.write_conf(conf_text(server={"listen": "127.0.0.1:%d" % other,
                                   "mode": "chat"}))
    d.signal(signal.SIGHUP)
    d.wait_log(r"Configuration reloaded", since=mark)
    chat_client(d, pu)
    echo_client(d, pe, line=b"named echo stays echo")
    a.send(b"old client\n")
    a.expect(b"Got: old client\n")
    check(connect_refused(other), "the reload opened the configured listen "
          "address %d" % other)
    eq(d.listening(mark), [], "listeners opened by the reload")


@sdtest
def test_activation_ipv6():
    s = tcp_listener("::1")
    p = s.getsockname()[1]
    d = activated([s], names="echo")
    eq(d.startup_ports(1), {p: "Echo"}, "startup lines")
    echo_client(d, p, host="::1")


@sdtest
def test_activation_listen_pid_of_another_process():
    # LISTEN_FDS is for the process whose pid is LISTEN_PID only.
    port = harness.free_port()
    s = tcp_listener()
    ps = s.getsockname()[1]
    d = activated([s], names="chat", pid_vars=(),
                  env={"LISTEN_PID": "1"},
                  server={"listen": "127.0.0.1:%d" % port})
    eq(d.startup_ports(1), {port: "Echo"}, "startup lines")
    echo_client(d, port)
    c = d.connect(port=ps)
    c.expect_silent(0.5, what="client of the socket meant for another pid")


@sdtest
def test_activation_bad_environment_not_ignored():
    # LISTEN_FDS set for this process but unusable (fewer names than
    # sockets; not a number): giambiod must not quietly drop the passed
    # sockets and open the configured addresses instead (under systemd
    # those are usually the socket unit's own). It may refuse to start
    # with an error about it, or serve the passed sockets.
    for what, names, env, nsocks in (
            ("LISTEN_FDS=2 with LISTEN_FDNAMES=echo", "echo", {}, 2),
            ("LISTEN_FDS=one", None, {"LISTEN_FDS": "one"}, 1)):
        other = harness.free_port()
        socks = [tcp_listener() for _ in range(nsocks)]
        ports = [s.getsockname()[1] for s in socks]
        d = activated(socks, names=names, env=env,
                      server={"listen": "127.0.0.1:%d" % other})
        harness.wait_until(lambda: not d.running() or d.listening(),
                           timeout=5, what="exit or a startup line")
        time.sleep(0.2)
        if d.running():
            check(connect_refused(other), "%s: giambiod ignored the passed "
                  "sockets and serves the configured address 127.0.0.1:%d "
                  "instead (log below)\n%s" % (what, other,
                                          harness._tail(d.log())))
            eq(sorted(p for _, _, p in d.listening()), sorted(ports),
               "%s: ports served" % what)
            eq(d.stop(), 0, "%s: exit status after SIGTERM" % what)
        else:
            rc = d.wait_exit(1)
            check(rc != 0, "%s: exit status 0" % what)
            check(d.find_log(r"LISTEN_FD"), "%s: giambiod refused to start "
                  "without naming LISTEN_FDS/LISTEN_FDNAMES (log below)\n%s" % (
                      what, harness._tail(d.log())))


@sdtest
def test_systemd_socket_activate_echo():
    check(os.access(SOCKET_ACTIVATE, os.X_OK), "%s is not installed" %
          SOCKET_ACTIVATE)
    port, other = harness.free_port(), harness.free_port()
    n = Notify()
    d = SdDaemon(argv=[SOCKET_ACTIVATE, "-l", "127.0.0.1:%d" % port,
                       "--fdname=echo", "-E", "NOTIFY_SOCKET=" + n.path,
                       GIAMBIOD, "-c", "CONF"],
                 server={"listen": "127.0.0.1:%d" % other, "mode": "chat"})
    d.wait_log(r"Listening on 127\.0\.0\.1:%d" % port)
    # systemd-socket-activate execs giambiod on the first connection.
    c = echo_client(d, port, line=b"activated by systemd-socket-activate")
    eq(d.startup_ports(1), {port: "Echo"}, "startup lines")
    d.wait_log(r"\bdescriptor 3\b.*\becho\b")
    n.wait_key("READY", "1")
    n.wait(status_re("echo", 1, ["127.0.0.1:%d" % port]),
           what="STATUS=echo: 1 client on 127.0.0.1:%d" % port)
    c2 = echo_client(d, port, line=b"second")
    c.close()
    c2.close()
    check(connect_refused(other), "the configured listen address is served")
    eq(d.stop(), 0, "exit status after SIGTERM")


@sdtest
def test_systemd_socket_activate_two_sockets():
    check(os.access(SOCKET_ACTIVATE, os.X_OK), "%s is not installed" %
          SOCKET_ACTIVATE)
    pe, pc = harness.free_port(), harness.free_port()
    while pc == pe:
        pc = harness.free_port()
    d = SdDaemon(argv=[SOCKET_ACTIVATE, "-l", "127.0.0.1:%d" % pe,
                       "-l", "127.0.0.1:%d" % pc, "--fdname=echo:chat",
                       GIAMBIOD, "-c", "CONF"])
    d.wait_log(r"Listening on 127\.0\.0\.1:%d" % pc)
    chat_client(d, pc)
    echo_client(d, pe)
    eq(d.startup_ports(2), {pe: "Echo", pc: "Chat"}, "startup lines")


# ---------------------------------------- passed sockets that are wrong

def _refused(socks, fd, what_re, names=None):
    n = Notify()
    other = harness.free_port()
    d = activated(socks, names=names, env=n.env,
                  server={"listen": "127.0.0.1:%d" % other})
    expect_refusal(d, fd, what_re)
    check(connect_refused(other), "the configured address is served")
    time.sleep(0.1)
    ready = [m for _, m in n.all() if "READY" in fields(m)]
    eq(ready, [], "READY=1 from a daemon that refused to start")


@sdtest
def test_refuse_udp_socket():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    _refused([s], 3, r"(?i)\budp\b|datagram|dgram|\btype 2\b")


@sdtest
def test_refuse_tcp_not_listening():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    _refused([s], 3, r"(?i)not listening|not a listening")


@sdtest
def test_refuse_unix_listener():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(os.path.join(harness.tempdir(), "unix.sock"))
    s.listen(5)
    _refused([s], 3, r"(?i)af_unix|af_local|\bunix\b|\blocal\b|"
             r"family 1\b")


@sdtest
def test_refuse_not_a_socket():
    r, w = os.pipe()
    try:
        n = Notify()
        d = SdDaemon(env=dict(n.env, LISTEN_FDS="1"), fds=[r],
                     pid_vars=("LISTEN_PID",))
    finally:
        os.close(r)
        os.close(w)
    expect_refusal(d, 3, r"(?i)not a socket")


@sdtest
def test_refuse_second_socket_bad():
    # fd 3 is fine, fd 4 is UDP: nothing is served, descriptor 4 named.
    good = tcp_listener()
    bad = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    bad.bind(("127.0.0.1", 0))
    _refused([good, bad], 4, r"(?i)\budp\b|datagram|dgram|\btype 2\b",
             names="echo:chat")


@sdtest
def test_refuse_udp_from_systemd_socket_activate():
    check(os.access(SOCKET_ACTIVATE, os.X_OK), "%s is not installed" %
          SOCKET_ACTIVATE)
    port = harness.free_port()
    d = SdDaemon(argv=[SOCKET_ACTIVATE, "--datagram", "-l",
                       "127.0.0.1:%d" % port, GIAMBIOD, "-c", "CONF"])
    d.wait_log(r"Listening on 127\.0\.0\.1:%d" % port)
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.sendto(b"wake up\n", ("127.0.0.1", port))
    finally:
        u.close()
    expect_refusal(d, 3, r"(?i)\budp\b|datagram|dgram|\btype 2\b")


# -------------------------------------------------------------- notify

def notify_daemon(n, ports=None, env=None, **kw):
    """giambiod listening on fixed free ports (so that the test can
    connect as soon as READY=1 arrives, without reading the log)."""
    ports = ports or [harness.free_port()]
    server = dict(kw.pop("server", {}),
                  listen=["127.0.0.1:%d" % p for p in ports])
    d = SdDaemon(env=dict(n.env, **(env or {})), server=server, **kw)
    return d, ports


@sdtest
def test_notify_ready_after_listeners():
    n = Notify()
    p1 = harness.free_port()
    p2 = harness.free_port()
    while p2 == p1:
        p2 = harness.free_port()
    d, _ = notify_daemon(n, [p1, p2])
    i, _, f, _ = n.wait_key("READY", "1", timeout=5)
    # Connecting right after READY=1 works, on every listener.
    for p in (p1, p2):
        s = socket.socket()
        s.settimeout(2)
        try:
            s.connect(("127.0.0.1", p))
        except OSError as e:
            raise AssertionError("connect to 127.0.0.1:%d right after "
                                 "READY=1: %s" % (p, e))
        finally:
            s.close()
    addrs = ["127.0.0.1:%d" % p1, "127.0.0.1:%d" % p2]
    if "STATUS" not in f:
        n.wait(status_re("echo", 0, addrs), since=i + 1, timeout=1,
               what="STATUS=echo: 0 clients on %s after READY=1" % addrs)
    else:
        check(status_re("echo", 0, addrs)(f, ""),
              "STATUS with READY=1: %r (wanted echo: 0 clients on %s)" % (
                  f["STATUS"], ", ".join(addrs)))
    before = [m for _, m in n.all()[:i] if "READY" in fields(m)]
    eq(before, [], "earlier READY datagrams")


@sdtest
def test_notify_status_one_listener():
    n = Notify()
    d, (p,) = notify_daemon(n)
    i, _, f, text = n.wait_key("READY", "1", timeout=5)
    want = "echo: 0 clients on 127.0.0.1:%d" % p
    if f.get("STATUS") != want:
        n.wait_key("STATUS", want, since=i + 1, timeout=1)


@sdtest
def test_notify_status_client_count():
    n = Notify()
    d, (p,) = notify_daemon(n)
    n.wait_key("READY", "1", timeout=5)
    addr = ["127.0.0.1:%d" % p]
    a = echo_client(d, p)
    n.wait(status_re("echo", 1, addr), what="STATUS=echo: 1 client on ...")
    b = echo_client(d, p)
    n.wait(status_re("echo", 2, addr), what="STATUS=echo: 2 clients on ...")
    mark = n.mark()
    a.close()
    n.wait(status_re("echo", 1, addr), since=mark,
           what="STATUS=echo: 1 client on ... after a disconnect")
    mark = n.mark()
    b.close()
    n.wait(status_re("echo", 0, addr), since=mark,
           what="STATUS=echo: 0 clients on ... after both left")


@sdtest
def test_notify_status_chat_mode():
    n = Notify()
    d, (p,) = notify_daemon(n, server={"mode": "chat"})
    n.wait_key("READY", "1", timeout=5)
    chat_client(d, p)
    n.wait(status_re("chat", 1, ["127.0.0.1:%d" % p]),
           what="STATUS=chat: 1 client on ...")


@sdtest
def test_notify_status_rate_limited():
    n = Notify()
    d, (p,) = notify_daemon(n)
    n.wait_key("READY", "1", timeout=5)
    time.sleep(0.5)  # let the startup STATUS go out
    mark, lmark = n.mark(), d.mark()
    start = time.monotonic()
    # One after the other, each admitted (welcome read) before it
    # closes: 100 changes of the client count, each seen by the daemon.
    for _ in range(50):
        c = d.connect(port=p)
        c.expect(WELCOME)
        c.close()
    burst = time.monotonic() - start
    harness.wait_until(
        lambda: len(d.find_log(r"Connection from \S+ closed", lmark)) >= 50,
        timeout=10, what="50 'closed' log lines")
    time.sleep(1.0)  # well past any rate limit: the last update is out
    st = n.statuses(mark)
    check(st, "no STATUS= at all for 50 clients coming and going")
    check(len(st) < 25, "%d STATUS= messages for 50 clients opened and "
          "closed in %.2fs (100 changes): not rate-limited; first ones: %r"
          % (len(st), burst, [s for _, s in st[:8]]))
    eq(st[-1][1], "echo: 0 clients on 127.0.0.1:%d" % p, "last STATUS=")
    # Nothing more comes.
    time.sleep(0.5)
    eq(len(n.statuses(mark)), len(st), "STATUS= count a while later")


@sdtest
def test_notify_reload_good_file():
    n = Notify()
    d, (p,) = notify_daemon(n, server={"welcome": "Old welcome"})
    n.wait_key("READY", "1", timeout=5)
    c = d.connect(port=p)
    c.expect(b"Old welcome\n")
    d.write_conf(conf_text(server={"listen": "127.0.0.1:%d" % p,
                                   "welcome": "New welcome"}))
    mark = n.mark()
    d.signal(signal.SIGHUP)
    _check_reload_sequence(n, mark)
    c2 = d.connect(port=p)
    c2.expect(b"New welcome\n", what="welcome after the reload")
    c.send(b"still here\n")
    c.expect(b"Got: still here\n")


@sdtest
def test_notify_reload_broken_file():
    n = Notify()
    d, (p,) = notify_daemon(n, server={"welcome": "Old welcome"})
    n.wait_key("READY", "1", timeout=5)
    d.write_conf("[server]\nlisten = 127.0.0.1:%d\nwelcome = New\n"
                 "no_such_key = 1\n" % p)
    mark, lmark = n.mark(), d.mark()
    d.signal(signal.SIGHUP)
    _check_reload_sequence(n, mark)
    d.wait_log(r"(?i)keeping the old configuration", since=lmark)
    c = d.connect(port=p)
    c.expect(b"Old welcome\n", what="welcome after a rejected reload")
    c.send(b"x\n")
    c.expect(b"Got: x\n")


def _check_reload_sequence(n, mark):
    """RELOADING=1 with MONOTONIC_USEC= (now on CLOCK_MONOTONIC, in µs) in
    the same datagram, then READY=1 in a later one."""
    i, t, f, text = n.wait_key("RELOADING", "1", since=mark, timeout=3)
    check("MONOTONIC_USEC" in f, "RELOADING=1 without MONOTONIC_USEC= in "
          "the same datagram: %r" % text)
    check(re.match(r"^[0-9]+$", f["MONOTONIC_USEC"]),
          "MONOTONIC_USEC=%r is not a number" % f["MONOTONIC_USEC"])
    usec = int(f["MONOTONIC_USEC"])
    now = int(t * 1e6)  # arrival time of the datagram
    check(-10000 <= now - usec < 1000000,
          "MONOTONIC_USEC=%d is not close to CLOCK_MONOTONIC at arrival "
          "(%d µs, difference %d µs)" % (usec, now, now - usec))
    early = [m for _, m in n.all(mark)[:i - mark] if "READY" in fields(m)]
    eq(early, [], "READY=1 before RELOADING=1")
    n.wait_key("READY", "1", since=i + 1, timeout=3,
               what="READY=1 after RELOADING=1")
    now2 = int(time.clock_gettime(time.CLOCK_MONOTONIC) * 1e6)
    check(usec <= now2, "MONOTONIC_USEC=%d is in the future" % usec)


@sdtest
def test_notify_stopping():
    n = Notify()
    d, (p,) = notify_daemon(n)
    n.wait_key("READY", "1", timeout=5)
    c = echo_client(d, p)
    mark = n.mark()
    d.signal(signal.SIGTERM)
    i, _, _, _ = n.wait_key("STOPPING", "1", since=mark, timeout=3)
    eq(d.wait_exit(6), 0, "exit status after SIGTERM")
    c.read_until_eof(3)
    time.sleep(0.1)
    later = [m for _, m in n.all(i + 1) if "READY" in fields(m)]
    eq(later, [], "READY=1 after STOPPING=1")


def _signal_on_ready(sig, runs):
    """Sends sig the moment READY=1 arrives, as "systemctl start giambiod;
    systemctl reload giambiod" does (systemctl start returns on READY=1).
    Yields (run, daemon, Notify) for several runs, once READY=1 is in."""
    for k in range(runs):
        n = Notify()
        target = {}
        have_pid = threading.Event()

        def fire():
            if have_pid.wait(2):
                os.kill(target["pid"], sig)
        n.on_ready = fire
        d, _ = notify_daemon(n)
        target["pid"] = d.pid
        have_pid.set()
        n.wait_key("READY", "1", timeout=5)
        yield k + 1, d, n


def _check_alive(k, d, sig, timeout=3.0):
    """Fails if d ends (or is killed) within timeout; for a daemon that
    must handle sig and go on."""
    try:
        rc = d.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        return
    d.wait_exit(1)
    raise AssertionError(
        "run %d: %s sent right after READY=1: giambiod %s; it said READY=1 "
        "before catching the signal" % (
            k, signal.Signals(sig).name,
            "was killed by %s" % signal.Signals(-rc).name
            if rc < 0 else "exited with status %d" % rc))


@sdtest
def test_notify_sighup_right_after_ready():
    for k, d, n in _signal_on_ready(signal.SIGHUP, runs=10):
        try:
            i, _, _, _ = n.wait_key("RELOADING", "1")
            n.wait_key("READY", "1", since=i + 1)
        except AssertionError:
            _check_alive(k, d, signal.SIGHUP, 0.1)
            raise
        _check_alive(k, d, signal.SIGHUP, 0.1)
        eq(d.stop(), 0, "run %d: exit status after SIGTERM" % k)


@sdtest
def test_notify_sigterm_right_after_ready():
    for k, d, n in _signal_on_ready(signal.SIGTERM, runs=6):
        rc = d.wait_exit(5)
        check(rc == 0, "run %d: SIGTERM sent right after READY=1: giambiod "
              "%s (expected a clean exit 0); it said READY=1 before "
              "catching the signal" % (
                  k, "was killed by %s" % signal.Signals(-rc).name
                  if rc < 0 else "exited with status %d" % rc))
        n.wait_key("STOPPING", "1", timeout=1,
                   what="run %d: STOPPING=1" % k)


@sdtest
def test_notify_watchdog():
    n = Notify()
    d, _ = notify_daemon(n, env={"WATCHDOG_USEC": "200000"},
                         pid_vars=("WATCHDOG_PID",))
    n.wait_key("READY", "1", timeout=5)
    n.wait_key("WATCHDOG", "1", timeout=1)
    t0 = time.clock_gettime(time.CLOCK_MONOTONIC)
    time.sleep(1.3)
    pings = [t for t, m in n.all() if fields(m).get("WATCHDOG") == "1"
             and t0 <= t < t0 + 1.0]
    check(5 <= len(pings) <= 15, "%d WATCHDOG=1 in 1s with WATCHDOG_USEC="
          "200000 (expected about 10)" % len(pings))
    # A gap of a whole watchdog interval means a missed ping, not jitter
    # (some slack for a loaded machine).
    gaps = [b - a for a, b in zip(pings, pings[1:])]
    check(max(gaps) < 0.25, "a gap of %.0f ms between WATCHDOG=1 pings "
          "(WATCHDOG_USEC=200000)" % (max(gaps) * 1000))


@sdtest
def test_notify_no_watchdog_without_watchdog_usec():
    n = Notify()
    d, _ = notify_daemon(n)
    n.wait_key("READY", "1", timeout=5)
    time.sleep(1.0)
    pings = [m for _, m in n.all() if "WATCHDOG" in fields(m)]
    eq(pings, [], "WATCHDOG datagrams without WATCHDOG_USEC")


@sdtest
def test_notify_no_watchdog_for_another_pid():
    n = Notify()
    d, _ = notify_daemon(n, env={"WATCHDOG_USEC": "200000",
                                 "WATCHDOG_PID": "1"})
    n.wait_key("READY", "1", timeout=5)
    time.sleep(1.0)
    pings = [m for _, m in n.all() if "WATCHDOG" in fields(m)]
    eq(pings, [], "WATCHDOG datagrams with WATCHDOG_PID of another process")


@sdtest
def test_notify_echo_and_chat_status():
    n = Notify()
    e, c = tcp_listener(), tcp_listener()
    pe, pc = e.getsockname()[1], c.getsockname()[1]
    d = activated([e, c], names="echo:chat", env=n.env)
    i, _, f, _ = n.wait_key("READY", "1", timeout=5)

    def both(count):
        word = "client" if count == 1 else "clients"

        def pred(f, _):
            s = f.get("STATUS", "")
            return (s.startswith("echo+chat: %d %s on " % (count, word))
                    and "127.0.0.1:%d" % pe in s
                    and "127.0.0.1:%d" % pc in s)
        return pred
    n.wait(both(0), since=i, timeout=1,
           what="STATUS=echo+chat: 0 clients on both addresses")
    chat_client(d, pc)
    n.wait(both(1), what="STATUS=echo+chat: 1 client on ...")
    echo_client(d, pe)
    n.wait(both(2), what="STATUS=echo+chat: 2 clients on ...")


SD_TESTS = [
    test_version,
    test_activation_echo_and_chat,
    test_activation_names_override_config_mode,
    test_activation_unnamed_follows_config_and_reload,
    test_activation_ipv6,
    test_activation_listen_pid_of_another_process,
    test_activation_bad_environment_not_ignored,
    test_systemd_socket_activate_echo,
    test_systemd_socket_activate_two_sockets,
    test_refuse_udp_socket,
    test_refuse_tcp_not_listening,
    test_refuse_unix_listener,
    test_refuse_not_a_socket,
    test_refuse_second_socket_bad,
    test_refuse_udp_from_systemd_socket_activate,
    test_notify_ready_after_listeners,
    test_notify_status_one_listener,
    test_notify_status_client_count,
    test_notify_status_chat_mode,
    test_notify_status_rate_limited,
    test_notify_reload_good_file,
    test_notify_reload_broken_file,
    test_notify_stopping,
    test_notify_sighup_right_after_ready,
    test_notify_sigterm_right_after_ready,
    test_notify_watchdog,
    test_notify_no_watchdog_without_watchdog_usec,
    test_notify_no_watchdog_for_another_pid,
    test_notify_echo_and_chat_status,
]


def _without_systemd():
    try:
        r = subprocess.run([GIAMBIOD, "-V"], capture_output=True, timeout=5,
                           stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return False  # main() reports the missing binary
    return b"built without systemd" in r.stdout


def _ipv6_loopback():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        try:
            s.bind(("::1", 0))
        finally:
            s.close()
        return True
    except OSError:
        return False


def _skip(tests, reason):
    """Prints SKIP for tests (those named on the command line, if any) and
    takes their names off the command line."""
    only = set(sys.argv[1:])
    for t in tests:
        if not only or t.__name__ in only:
            print("SKIP %s: %s" % (t.__name__, reason), flush=True)
    sys.argv[1:] = [a for a in sys.argv[1:]
                    if a not in {t.__name__ for t in tests}]
    return bool(only) and not sys.argv[1:]


if __name__ == "__main__":
    if _without_systemd():
        run, skip = NOSD_TESTS, SD_TESTS
        why = "giambiod is built without systemd"
    else:
        run, skip = SD_TESTS, NOSD_TESTS
        why = "giambiod is built with systemd"
    if not _ipv6_loopback() and test_activation_ipv6 in run:
        run = [t for t in run if t is not test_activation_ipv6]
        if _skip([test_activation_ipv6], "no IPv6 loopback"):
            print("0 passed, 0 failed")
            sys.exit(0)
    if _skip(skip, why):
        print("0 passed, 0 failed")
        sys.exit(0)
    harness.main(run)
