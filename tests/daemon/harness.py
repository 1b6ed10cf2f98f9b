"""harness.py - drive the real giambiod on loopback from Python tests.

Standard library only. A test script lists its test functions and calls
main(tests). Each test starts daemons with Daemon(...), connects clients
with daemon.connect(), and asserts on exact bytes and on log lines. After
each test every daemon it started is stopped (SIGTERM, then SIGKILL after a
bounded wait) and must have exited 0, so that a sanitizer build's leak
report fails the test. Nothing is left running: every wait has a timeout
and the daemon dies with the test process (PR_SET_PDEATHSIG).

Output on stdout: "PASS name" or "FAIL name: reason" per test, then exactly
one line "N passed, M failed". Details (log tails) go to stderr.
"""

import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

GIAMBIOD = os.environ.get("GIAMBIOD") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "src", "giambiod")

# GIAMBIOD_VALGRIND=1 runs every giambiod the tests start under valgrind
# memcheck (see wrap()): an invalid access, a use of an uninitialised
# value or a definite or indirect leak makes it exit with VALGRIND_STATUS
# and print "==PID==" lines, either of which fails the test. The daemon is
# many times slower under valgrind, so every time bound of the harness is
# multiplied by TIME_SCALE (GIAMBIOD_TIME_SCALE, default 8 under
# valgrind, else 1); tests scale their own bounds with scaled().
VALGRIND = os.environ.get("GIAMBIOD_VALGRIND", "0") not in ("", "0")
VALGRIND_STATUS = 99
VALGRIND_ARGV = [shutil.which("valgrind") or "valgrind", "--quiet",
                 "--error-exitcode=%d" % VALGRIND_STATUS, "--leak-check=full",
                 "--errors-for-leak-kinds=definite,indirect",
                 # no gdbserver pipes in /tmp: after dropping root the
                 # daemon could not remove them, and valgrind says so
                 "--vgdb=no"]
TIME_SCALE = float(os.environ.get("GIAMBIOD_TIME_SCALE") or
                   (8 if VALGRIND else 1))


def scaled(seconds):
    """A time bound for the daemon, scaled for valgrind."""
    return seconds * TIME_SCALE


def wrap(argv):
    """argv with giambiod (wherever it appears: systemd-socket-activate
    runs it) under valgrind when GIAMBIOD_VALGRIND is set."""
    out = []
    for a in argv:
        if VALGRIND and a == GIAMBIOD:
            out += VALGRIND_ARGV
        out.append(a)
    return out


# Per-test bound: a test that takes longer fails (and is cleaned up).
TEST_TIMEOUT = int(scaled(25))

STARTUP_RE = (r"\b(Echo|Chat) server serving asynchronously at "
              r"(\[[0-9a-fA-F:.]+\]|[0-9.]+):(\d+)\s*$")

_libc = ctypes.CDLL(None, use_errno=True)
_prctl = _libc.prctl
PR_SET_PDEATHSIG = 1


def _child_setup():
    # The daemon dies with the test script, whatever happens to it.
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class TestTimeout(Exception):
    pass


# Every daemon and client started by the current test, for the cleanup.
_daemons = []
_clients = []


# ------------------------------------------------------------------ config

def conf_text(server=None, limits=None, log=None, extra=""):
    """giambio.conf text. Values may be lists (repeated keys) or None
    (left out). Defaults for tests: listen on 127.0.0.1:0 and a short
    shutdown_timeout."""
    sections = [
        ("server", dict({"listen": "127.0.0.1:0"}, **(server or {}))),
        ("limits", dict({"shutdown_timeout": "1s"}, **(limits or {}))),
        ("log", dict(log or {})),
    ]
    out = ["# written by tests/daemon/harness.py"]
    for name, keys in sections:
        out.append("[%s]" % name)
        for k, v in keys.items():
            if v is None:
                continue
            for one in (v if isinstance(v, (list, tuple)) else [v]):
                out.append("%s = %s" % (k, one))
    return "\n".join(out) + "\n" + extra


def _tail(lines, n=25):
    return "\n".join("    | " + l for l in lines[-n:])


# ------------------------------------------------------------------ daemon

class Daemon:
    """A running giambiod with its own config file in a temp directory."""

    def __init__(self, server=None, limits=None, log=None, conf=None,
                 args=(), wait_start=True, start_timeout=5.0, journal=False):
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
        env = dict(os.environ)
        env.pop("JOURNAL_STREAM", None)
        self.argv = wrap([GIAMBIOD, "-c", self.conf_path] + list(args))
        if journal:
            # stderr "is the journal": JOURNAL_STREAM names its device and
            # inode, as systemd sets it.
            rfd, wfd = os.pipe()
            st = os.fstat(wfd)
            env["JOURNAL_STREAM"] = "%d:%d" % (st.st_dev, st.st_ino)
            stderr = wfd
        else:
            stderr = subprocess.PIPE
        self.proc = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=stderr, env=env, preexec_fn=_child_setup)
        if journal:
            os.close(wfd)
            self.proc.stderr = os.fdopen(rfd, "rb")
        _daemons.append(self)
        self.reader = threading.Thread(target=self._read_stderr, daemon=True)
        self.reader.start()
        self.port = None
        if wait_start:
            m = self.wait_log(STARTUP_RE, timeout=start_timeout)
            self.port = int(m.group(3))

    # -- config
    def write_conf(self, text):
        tmp = self.conf_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.conf_path)

    # -- log
    def _read_stderr(self):
        f = self.proc.stderr
        for raw in iter(f.readline, b""):
            line = raw.decode("utf-8", "backslashreplace").rstrip("\n")
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def mark(self):
        """Index of the next log line: pass it as since= to look only at
        lines logged from now on."""
        with self.cond:
            return len(self.lines)

    def log(self, since=0):
        with self.cond:
            return list(self.lines[since:])

    def find_log(self, pattern, since=0):
        """All matches of pattern in the log lines from since on."""
        rx = re.compile(pattern)
        return [m for m in (rx.search(l) for l in self.log(since)) if m]

    def wait_log(self, pattern, timeout=3.0, since=0):
        """Waits for a log line matching pattern (re.search); returns the
        match. Fails after timeout, or at once if the daemon has exited
        and logged everything without a match."""
        rx = re.compile(pattern)
        timeout = scaled(timeout)
        deadline = time.monotonic() + timeout
        i = since
        with self.cond:
            while True:
                while i < len(self.lines):
                    m = rx.search(self.lines[i])
                    i += 1
                    if m:
                        return m
                left = deadline - time.monotonic()
                done = not self.reader.is_alive()
                if left <= 0 or done:
                    raise AssertionError(
                        "no log line matching %r within %.1fs%s; log:\n%s" % (
                            pattern, timeout,
                            " (daemon exited)" if done else "",
                            _tail(self.lines[since:])))
                self.cond.wait(min(left, 0.2))

    def no_log(self, pattern, since=0, what=None):
        found = self.find_log(pattern, since)
        if found:
            raise AssertionError("unexpected log line %s: %r" % (
                what or "matching %r" % pattern, found[0].string))

    def listening(self, since=0):
        """(mode, host, port) of every startup line since since."""
        return [(m.group(1), m.group(2), int(m.group(3)))
                for m in self.find_log(STARTUP_RE, since)]

    # -- clients
    def connect(self, port=None, host="127.0.0.1", **kw):
        c = Client(host, self.port if port is None else port, **kw)
        self.clients.append(c)
        return c

    def close_clients(self):
        for c in self.clients:
            c.close()

    # -- process
    def running(self):
        return self.proc.poll() is None

    @property
    def pid(self):
        return self.proc.pid

    def signal(self, sig):
        if self.running():
            self.proc.send_signal(sig)

    def wait_exit(self, timeout):
        """Waits for the daemon to exit; returns its status. On timeout it
        is killed and the test fails."""
        self.exit_checked = True
        timeout = scaled(timeout)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("daemon still running %.1fs later; killed; "
                                 "log:\n%s" % (timeout, _tail(self.log())))
        self.reader.join(2)
        self.returncode = rc
        return rc

    def kill(self):
        if self.running():
            self.proc.kill()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self.reader.join(2)

    def stop(self, timeout=6.0):
        """Closes the clients, sends SIGTERM and waits; returns the exit
        status (the daemon is killed if it does not exit in time)."""
        self.close_clients()
        self.signal(signal.SIGTERM)
        return self.wait_exit(timeout)

    def cleanup(self):
        """Stops the daemon if needed; returns a list of problems."""
        problems = []
        if self.running():
            try:
                rc = self.stop()
                if rc != 0:
                    problems.append("daemon exited with status %d after "
                                    "SIGTERM (expected 0)" % rc)
            except AssertionError as e:
                problems.append(str(e).split("\n")[0])
        elif not self.exit_checked:
            self.reader.join(2)
            problems.append("daemon exited unexpectedly with status %s" %
                            self.proc.returncode)
        self.close_clients()
        self.kill()
        if self.proc.stderr:
            self.proc.stderr.close()
        for l in self.log():
            if ("ERROR: AddressSanitizer" in l or "ERROR: LeakSanitizer" in l
                    or "runtime error:" in l or "ThreadSanitizer" in l):
                problems.append("sanitizer report: " + l.strip())
                break
            if VALGRIND and re.match(r"==\d+== ", l):
                problems.append("valgrind report: " + l.strip())
                break
        shutil.rmtree(self.dir, ignore_errors=True)
        if problems and not self.dumped:
            sys.stderr.write("# daemon %s log:\n%s\n" % (
                " ".join(self.argv[1:]), _tail(self.log(), 40)))
        return problems


# ------------------------------------------------------------------ client

class Client:
    """A TCP client with a receive buffer and timed reads."""

    def __init__(self, host, port, source=None, rcvbuf=None, sndbuf=None,
                 timeout=3.0):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        _clients.append(self)
        self.buf = b""
        self.eof = False
        self.reset = False
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if sndbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        if source:
            self.sock.bind((source, 0))
        self.sock.settimeout(scaled(timeout))
        self.sock.connect((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.local_port = self.sock.getsockname()[1]
        self.addr = "%s:%d" % self.sock.getsockname()[:2]

    def fileno(self):
        return self.sock.fileno()

    # -- sending
    def send(self, data, timeout=5.0):
        self.sock.settimeout(scaled(timeout))
        self.sock.sendall(data)

    def shutdown_write(self):
        self.sock.shutdown(socket.SHUT_WR)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def abort(self):
        """Closes with a reset (SO_LINGER 0)."""
        import struct
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                 struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close()

    # -- receiving
    def _fill(self, deadline):
        """Receives once; False on timeout. Sets eof at the end of stream
        (a reset counts as the end, with reset set)."""
        if self.eof:
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(1 << 16)
        except socket.timeout:
            return False
        except ConnectionResetError:
            self.eof = self.reset = True
            return True
        if not data:
            self.eof = True
        self.buf += data
        return True

    def _take(self, n):
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_exact(self, n, timeout=3.0):
        deadline = time.monotonic() + scaled(timeout)
        while len(self.buf) < n:
            if not self._fill(deadline):
                raise AssertionError(
                    "wanted %d bytes within %.1fs, got %d%s: %r" % (
                        n, timeout, len(self.buf),
                        " and the end of stream" if self.eof else "",
                        self.buf[:300]))
        return self._take(n)

    def read_line(self, timeout=3.0):
        """The next line, terminator included."""
        deadline = time.monotonic() + scaled(timeout)
        while b"\n" not in self.buf:
            if not self._fill(deadline):
                raise AssertionError(
                    "no complete line within %.1fs%s; have %r" % (
                        timeout, " (end of stream)" if self.eof else "",
                        self.buf[:300]))
        i = self.buf.index(b"\n") + 1
        return self._take(i)

    def expect(self, data, timeout=3.0, what=None):
        """The next bytes must be exactly data."""
        deadline = time.monotonic() + scaled(timeout)
        while len(self.buf) < len(data):
            if self.buf != data[:len(self.buf)]:
                break
            if not self._fill(deadline):
                break
        got = self.buf[:len(data)]
        if got != data:
            raise AssertionError("%sexpected %r, got %r%s" % (
                (what + ": ") if what else "", data[:300], self.buf[:300],
                " (end of stream)" if self.eof else ""))
        self._take(len(data))

    def read_until_eof(self, timeout=3.0):
        """Everything up to the end of stream (which must come)."""
        deadline = time.monotonic() + scaled(timeout)
        while not self.eof:
            if not self._fill(deadline):
                raise AssertionError(
                    "connection not closed within %.1fs; got %r" % (
                        timeout, self.buf[-300:]))
        return self._take(len(self.buf))

    def read_for(self, duration):
        """Everything that arrives within duration seconds."""
        deadline = time.monotonic() + duration
        while self._fill(deadline):
            pass
        return self._take(len(self.buf))

    def expect_silent(self, duration=0.3, what=None):
        """Nothing arrives for duration seconds (and nothing is buffered)."""
        got = self.read_for(duration)
        if got:
            raise AssertionError("%sexpected nothing, got %r" % (
                (what + ": ") if what else "", got[:300]))

    def expect_open(self, duration=0.2):
        """Nothing arrives and the connection stays open."""
        self.expect_silent(duration)
        if self.eof:
            raise AssertionError("connection closed unexpectedly")


def connect_refused(port, host="127.0.0.1", timeout=1.0):
    """True if a connection to host:port is refused."""
    s = socket.socket()
    s.settimeout(timeout)
    try:
        s.connect((host, port))
    except ConnectionRefusedError:
        return True
    except ConnectionResetError:
        # The probe reached the backlog of a listener closing just then:
        # not refused yet; the caller polls again.
        return False
    finally:
        s.close()
    return False


def send_until_stuck(sock, block, timeout=10.0, limit=None):
    """Sends block over and over on sock, left non-blocking, until the
    socket has taken nothing for 0.3 s (both directions full, for a peer
    that does not read), the peer is gone, limit bytes went, or timeout
    passes. Returns (bytes sent, whether it got stuck)."""
    sock.setblocking(False)
    sent, since = 0, None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (limit is None or sent < limit):
        try:
            sent += sock.send(block)
            since = None
        except BlockingIOError:
            since = since or time.monotonic()
            if time.monotonic() - since > 0.3:
                return sent, True
            time.sleep(0.01)
        except OSError:
            break
    return sent, False


def free_port(host="127.0.0.1"):
    """A port that was free a moment ago."""
    s = socket.socket()
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_until(pred, timeout=3.0, interval=0.05, what="condition"):
    deadline = time.monotonic() + scaled(timeout)
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError("%s not reached within %.1fs" % (what, timeout))
        time.sleep(interval)


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def eq(got, want, what="value"):
    if got != want:
        raise AssertionError("%s: expected %r, got %r" % (what, want, got))


def run(argv, timeout=5.0, input=None):
    """Runs a short command; returns CompletedProcess (stdout, stderr as
    text). Killed if it takes longer than timeout."""
    env = dict(os.environ)
    env.pop("JOURNAL_STREAM", None)
    try:
        return subprocess.run(wrap(argv), input=input, capture_output=True,
                              timeout=scaled(timeout), env=env,
                              preexec_fn=_child_setup)
    except subprocess.TimeoutExpired:
        raise AssertionError("%s did not finish within %.1fs" % (
            " ".join(argv), timeout))


def tempdir():
    d = tempfile.mkdtemp(prefix="giambiod-test-")
    _tempdirs.append(d)
    return d


_tempdirs = []


# ------------------------------------------------------------------ runner

def _on_alarm(signum, frame):
    raise TestTimeout("test took longer than %ds" % TEST_TIMEOUT)


def _cleanup():
    problems = []
    for c in _clients:
        c.close()
    del _clients[:]
    for d in _daemons:
        problems += d.cleanup()
    del _daemons[:]
    for t in _tempdirs:
        shutil.rmtree(t, ignore_errors=True)
    del _tempdirs[:]
    return problems


def main(tests):
    """Runs tests (functions); argv may name a subset."""
    only = set(sys.argv[1:])
    unknown = only - {t.__name__ for t in tests}
    if unknown:
        sys.stderr.write("unknown test(s): %s\n" % " ".join(sorted(unknown)))
        sys.exit(2)
    if not os.access(GIAMBIOD, os.X_OK):
        print("FAIL setup: no giambiod at %s (set GIAMBIOD)" % GIAMBIOD)
        print("0 passed, 1 failed")
        sys.exit(1)
    signal.signal(signal.SIGALRM, _on_alarm)
    passed = failed = 0
    for t in tests:
        if only and t.__name__ not in only:
            continue
        err = None
        start = time.monotonic()
        signal.alarm(TEST_TIMEOUT)
        try:
            t()
        except BaseException as e:  # noqa: B036 - report, then go on
            if isinstance(e, KeyboardInterrupt):
                signal.alarm(0)
                _cleanup()
                raise
            err = "%s" % e if isinstance(e, AssertionError) else \
                "%s: %s" % (type(e).__name__, e)
            sys.stderr.write("# %s:\n%s" % (t.__name__, traceback.format_exc()))
        finally:
            signal.alarm(0)
        if err is not None:
            for d in _daemons:
                sys.stderr.write("# daemon %s log:\n%s\n" % (
                    " ".join(d.argv[1:]), _tail(d.log(), 40)))
                d.dumped = True
        try:
            signal.alarm(TEST_TIMEOUT)
            problems = _cleanup()
        except BaseException as e:
            problems = ["cleanup failed: %s" % e]
        finally:
            signal.alarm(0)
        if err is None and problems:
            err = "; ".join(problems)
        elif problems:
            err += " [also: %s]" % "; ".join(problems)
        took = time.monotonic() - start
        if err is None:
            passed += 1
            print("PASS %s" % t.__name__, flush=True)
        else:
            failed += 1
            first = err.split("\n")[0]
            if "\n" in err:
                sys.stderr.write("# %s details:\n%s\n" % (t.__name__, err))
            print("FAIL %s: %s" % (t.__name__, first), flush=True)
        sys.stderr.write("# %s took %.2fs\n" % (t.__name__, took))
    print("%d passed, %d failed" % (passed, failed), flush=True)
    sys.exit(0 if failed == 0 else 1)
