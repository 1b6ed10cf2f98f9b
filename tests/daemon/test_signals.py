"""Signals: SIGHUP reload (good and broken file) with clients connected,
SIGTERM/SIGINT shutdown with clients connected, a second SIGINT."""

import os
import re
import signal
import subprocess
import time

import harness
from harness import Daemon, check, conf_text, connect_refused, eq

OLD_WELCOME = b"Old welcome\n"
NEW_WELCOME = b"New welcome \xe2\x82\xac\n"
YOU_ARE = rb"\* you are (guest\d+) in #lobby, type /help for commands\n"


WELCOME = b"Welcome to the server pal!\n"
BYE = b"* server shutting down\n"
# Chat mode with room for the queue of _stuck_member.
STUCK_LIMITS = {"send_buffer": "64MiB"}


def _stuck_member(d, mib=8):
    """Chat mode: a member that never reads, with mib MiB of chat lines
    queued for it in the daemon, and the member who sent them. That is far
    more than the kernel's socket buffers take, so a drain waits for the
    stuck member until shutdown_timeout. (A client stuck on a short reply
    is no good: the kernel reports a socket writable only once a good part
    of its buffer is free, and may still take those few bytes when the
    daemon, shutting down, tries again.) Returns (talker, stuck)."""
    stuck = d.connect(rcvbuf=65536)
    stuck.expect(WELCOME)
    talker = d.connect()
    talker.expect(WELCOME)
    line = b"x" * 4000 + b"\n"
    talker.send(line * (mib * 1024 * 1024 // len(line)), timeout=30)
    # The daemon handles a member's lines in order: once /help is
    # answered, every line before it has been queued for the stuck one.
    talker.send(b"/help\n")
    while not talker.read_line(timeout=10).startswith(b"*   /help"):
        pass
    return talker, stuck


def _expect_bye(c, timeout=3.0):
    """Reads c's lines (chat notices) until the shutdown notice."""
    while c.read_line(timeout=timeout) != BYE:
        pass


def test_reload_good_file():
    d = Daemon(server={"welcome": "Old welcome"})
    p1 = d.port
    a = d.connect()
    a.expect(OLD_WELCOME)
    a.send(b"before\n")
    a.expect(b"Got: before\n")
    d.no_log(r"Got: 'before", what="at info level")
    mark = d.mark()
    d.write_conf(conf_text(
        server={"listen": ["127.0.0.1:0", "127.0.0.2:0"], "mode": "chat",
                "welcome": NEW_WELCOME.decode().rstrip("\n")},
        log={"level": "debug"}))
    d.signal(signal.SIGHUP)
    m = d.wait_log(r"Chat server serving asynchronously at 127\.0\.0\.2:(\d+)",
                   since=mark)
    p2 = int(m.group(1))
    # The unchanged listener was not reopened.
    eq([l for l in d.listening(mark) if l[1] == "127.0.0.1"], [],
       "listeners reopened on 127.0.0.1")
    # The connected client stays, in its mode, and debug is on now.
    a.send(b"after\n")
    a.expect(b"Got: after\n")
    d.wait_log(r"Got: 'after\\n' from %s$" % re.escape(a.addr), since=mark)
    # New clients, on the old port and on the new address: new welcome,
    # chat mode.
    b = d.connect(port=p1)
    b.expect(NEW_WELCOME, what="new client on the old port")
    mb = re.match(YOU_ARE, b.read_line())
    check(mb, "new client on the old port is not in chat mode")
    c = d.connect(port=p2, host="127.0.0.2")
    c.expect(NEW_WELCOME, what="new client on the new address")
    mc = re.match(YOU_ARE, c.read_line())
    check(mc, "new client on the new address is not in chat mode")
    b.expect(b"* %s joined #lobby\n" % mc.group(1))
    b.send(b"hi\n")
    c.expect(b"<%s> hi\n" % mb.group(1))
    a.expect_silent(0.1, what="the echo client after chat traffic")
    # Remove 127.0.0.1:0, keep 127.0.0.2:0 (same port).
    mark = d.mark()
    d.write_conf(conf_text(
        server={"listen": "127.0.0.2:0", "mode": "chat",
                "welcome": "Third"}))
    d.signal(signal.SIGHUP)
    harness.wait_until(lambda: connect_refused(p1), timeout=3,
                       what="removed listener 127.0.0.1:%d refusing" % p1)
    e = d.connect(port=p2, host="127.0.0.2")
    e.expect(b"Third\n", what="kept listener after the second reload")
    eq(d.listening(mark), [], "listeners opened by the second reload")
    # Everyone connected before is still served.
    a.send(b"still\r\n")
    a.expect(b"Got: still\r\n")
    # (b and c may also see probes of the closed port join and leave.)
    b.send(b"/who\n")
    while True:
        line = b.read_line()
        if not re.match(rb"\* guest\d+ (joined|left) #lobby\n", line):
            break
    check(line.startswith(b"* in #lobby:"), "chat client after reload got %r"
          % line)
    # Log level went back to info: no debug line for a's echo.
    m2 = d.mark()
    a.send(b"quiet\n")
    a.expect(b"Got: quiet\n")
    time.sleep(0.2)
    d.no_log(r"Got: 'quiet", since=m2, what="after going back to info")


def test_reload_second_port0_listener():
    # The first listen address is unchanged (127.0.0.1:0); a second one,
    # also 127.0.0.1:0, is added and must get its own port.
    d = Daemon()
    p1 = d.port
    a = d.connect()
    a.expect(b"Welcome to the server pal!\n")
    mark = d.mark()
    d.write_conf(conf_text(server={"listen": ["127.0.0.1:0",
                                              "127.0.0.1:0"]}))
    d.signal(signal.SIGHUP)
    d.wait_log(r"(?i)reload", since=mark)
    try:
        m = d.wait_log(r"server serving asynchronously at "
                       r"127\.0\.0\.1:(\d+)", since=mark, timeout=2)
    except AssertionError:
        raise AssertionError(
            "the added second listen = 127.0.0.1:0 was not opened on reload "
            "(no startup line; log since SIGHUP: %r)" % d.log(mark))
    p2 = int(m.group(1))
    check(p2 != p1, "the new listener has the old port")
    for p in (p1, p2):
        c = d.connect(port=p)
        c.expect(b"Welcome to the server pal!\n")
    a.send(b"x\n")
    a.expect(b"Got: x\n")


def test_reload_broken_file():
    d = Daemon(server={"welcome": "Old welcome"}, limits={"max_line": 100})
    a = d.connect()
    a.expect(OLD_WELCOME)
    mark = d.mark()
    d.write_conf("[server]\nwelcome = Broken\nmode = chat\nmood = happy\n"
                 "[limits]\nmax_line = 0\nlisten = 127.0.0.1:1\n")
    d.signal(signal.SIGHUP)
    for line, key in ((4, "mood"), (6, "max_line"), (7, "listen")):
        m = d.wait_log(r"%s:%d:.*%s" % (re.escape(d.conf_path), line, key),
                       since=mark)
        check(m.string.startswith("[ERROR]"), "error line: %r" % m.string)
    time.sleep(0.2)
    # The old configuration stays in force.
    b = d.connect()
    b.expect(OLD_WELCOME, what="new client after a broken reload")
    b.send(b"echo mode\n")
    b.expect(b"Got: echo mode\n")
    a.send(b"x" * 150 + b"\n")  # max_line is still 100
    a.expect(b"Got: " + b"x" * 100 + b"Got: " + b"x" * 50 + b"\n")
    d.no_log(r"serving asynchronously", since=mark, what="after a broken reload")
    # A fixed file is taken on the next SIGHUP.
    mark = d.mark()
    d.write_conf(conf_text(server={"welcome": "Fixed"}))
    d.signal(signal.SIGHUP)
    harness.wait_until(lambda: _welcome(d) == b"Fixed\n", timeout=3,
                       what="the fixed welcome")
    a.send(b"y\n")
    a.expect(b"Got: y\n")


def _welcome(d):
    c = d.connect()
    try:
        return c.read_line()
    finally:
        c.close()


def test_sigterm_with_clients():
    d = Daemon(limits={"shutdown_timeout": "1s"})
    a = d.connect()
    a.expect(b"Welcome to the server pal!\n")
    b = d.connect()
    b.expect(b"Welcome to the server pal!\n")
    b.send(b"partial line without newline")
    # s never reads and has a full socket.
    s = d.connect(rcvbuf=65536, sndbuf=65536)
    s.expect(WELCOME)
    harness.send_until_stuck(s.sock, (b"x" * 200 + b"\n") * 256)
    t0 = time.monotonic()
    d.signal(signal.SIGTERM)
    a.expect(b"* server shutting down\n", timeout=2)
    eq(a.read_until_eof(timeout=3), b"", "after the goodbye")
    # b's unfinished line may or may not be echoed first.
    bye = b"* server shutting down\n"
    got = b.read_until_eof(timeout=3)
    check(got in (bye, b"Got: partial line without newline" + bye),
          "b got %r" % got)
    rc = d.wait_exit(timeout=4)
    took = time.monotonic() - t0
    eq(rc, 0, "exit status after SIGTERM")
    check(took < 3.0, "exit took %.2fs with shutdown_timeout 1s" % took)


def test_sigterm_chat_flushes():
    d = Daemon(server={"mode": "chat"}, limits={"shutdown_timeout": "2s"})
    a = d.connect()
    a.expect(b"Welcome to the server pal!\n")
    na = re.match(YOU_ARE, a.read_line()).group(1)
    b = d.connect()
    b.expect(b"Welcome to the server pal!\n")
    b.read_line()
    a.read_line()
    a.send(b"last words\n")
    time.sleep(0.1)
    d.signal(signal.SIGTERM)
    # Notices that others left as they are closed may come first.
    left = re.compile(rb"\* guest\d+ left #lobby\n")
    got = left.sub(b"", b.read_until_eof(timeout=4))
    eq(got, b"<%s> last words\n* server shutting down\n" % na,
       "what b gets up to the end")
    got = left.sub(b"", a.read_until_eof(timeout=4))
    eq(got, b"* server shutting down\n", "what a gets up to the end")
    eq(d.wait_exit(timeout=4), 0, "exit status")


def test_sigint_drains_then_exits_zero():
    d = Daemon()
    a = d.connect()
    a.expect(b"Welcome to the server pal!\n")
    a.send(b"pending\n")
    a.expect(b"Got: pending\n")
    d.signal(signal.SIGINT)
    a.expect(b"* server shutting down\n", timeout=2)
    a.read_until_eof(timeout=2)
    eq(d.wait_exit(timeout=4), 0, "exit status after one SIGINT")


def test_second_sigint_exits_130():
    d = Daemon(server={"mode": "chat"},
               limits=dict(STUCK_LIMITS, shutdown_timeout="30s"))
    a, _ = _stuck_member(d)
    d.signal(signal.SIGINT)
    _expect_bye(a, timeout=2)
    # The drain goes on: the stuck member never reads. The listener is
    # closed.
    time.sleep(0.5)
    check(d.running(), "daemon exited while a client still had data queued "
          "(shutdown_timeout 30s)")
    check(connect_refused(d.port), "still accepting during the drain")
    t0 = time.monotonic()
    d.signal(signal.SIGINT)
    rc = d.wait_exit(timeout=2)
    eq(rc, 130, "exit status after a second SIGINT")
    check(time.monotonic() - t0 < 1.0, "second SIGINT took %.2fs" %
          (time.monotonic() - t0))


def test_sighup_during_drain_ignored():
    d = Daemon(server={"mode": "chat"},
               limits=dict(STUCK_LIMITS, shutdown_timeout="1s"))
    a, _ = _stuck_member(d)
    mark = d.mark()
    d.signal(signal.SIGTERM)
    _expect_bye(a, timeout=2)
    d.signal(signal.SIGHUP)
    check(d.running(), "the drain ended before the SIGHUP came")
    eq(d.wait_exit(timeout=4), 0, "exit status")
    d.no_log(r"reload", since=mark)


def test_reload_moves_port_to_overlapping_address():
    # 127.0.0.1:P becomes *:P: the old socket must be closed before the new
    # one binds the same port, or the reload would leave nothing listening.
    # Regression: listeners used to be opened before the removed ones
    # were closed.
    port = harness.free_port()
    d = Daemon(server={"listen": "127.0.0.1:%d" % port})
    eq(d.port, port, "first port")
    mark = d.mark()
    d.write_conf(conf_text(server={"listen": "*:%d" % port}))
    d.signal(signal.SIGHUP)
    d.wait_log(r"server serving asynchronously at .*:%d$" % port, since=mark)
    d.no_log(r"cannot listen", since=mark)
    c = d.connect(port=port)
    c.expect(b"Welcome to the server pal!\n")


def _caught_signals(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("SigCgt:"):
                return int(line.split()[1], 16)
    return 0


def _blocked_in_write_to_stderr(pid):
    try:
        with open("/proc/%d/syscall" % pid) as f:
            fields = f.read().split()
    except OSError:
        return False
    return len(fields) > 1 and fields[0] == "1" and int(fields[1], 16) == 2


def test_signals_caught_before_startup_line():
    # A signal sent on seeing the startup line must find it caught.
    # Regression: the listeners (and their log lines) came first, and a
    # SIGHUP sent at once could kill the daemon. The daemon's stderr is a
    # pipe the test has filled, so its first log line blocks in write(2):
    # at that moment SIGHUP, SIGTERM and SIGINT must already be caught.
    import fcntl
    import tempfile
    tmp = tempfile.TemporaryDirectory(prefix="giambiod-test-")
    conf = os.path.join(tmp.name, "giambio.conf")
    with open(conf, "w") as f:
        f.write(conf_text())
    rfd, wfd = os.pipe()
    fcntl.fcntl(wfd, 1031, 4096)  # F_SETPIPE_SZ: one page
    os.set_blocking(wfd, False)
    filler = 0
    try:
        while True:
            filler += os.write(wfd, b"x" * 512)
    except BlockingIOError:
        pass
    os.set_blocking(wfd, True)  # the daemon shares the open file
    proc = subprocess.Popen([harness.GIAMBIOD, "-c", conf],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=wfd, preexec_fn=harness._child_setup)
    os.close(wfd)
    try:
        deadline = time.monotonic() + 5
        while not _blocked_in_write_to_stderr(proc.pid):
            check(time.monotonic() < deadline and proc.poll() is None,
                  "the daemon never blocked writing its first log line")
            time.sleep(0.01)
        caught = _caught_signals(proc.pid)
        for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
            check(caught & (1 << (sig - 1)),
                  "%s not caught at the first log line" % sig.name)
        proc.send_signal(signal.SIGHUP)
        out = b""
        while b"reloading" not in out and time.monotonic() < deadline:
            out += os.read(rfd, 65536)
        first = out[filler:].split(b"\n")[0]
        check(re.search(STARTUP_BYTES, first),
              "the first log line is not the startup line: %r" % first)
        check(b"SIGHUP received: reloading" in out, "SIGHUP was not handled")
        proc.send_signal(signal.SIGTERM)
        eq(proc.wait(5), 0, "exit status")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(rfd)
        tmp.cleanup()


STARTUP_BYTES = harness.STARTUP_RE.encode()


if __name__ == "__main__":
    harness.main([
        test_reload_good_file,
        test_reload_second_port0_listener,
        test_reload_broken_file,
        test_sigterm_with_clients,
        test_sigterm_chat_flushes,
        test_sigint_drains_then_exits_zero,
        test_second_sigint_exits_130,
        test_sighup_during_drain_ignored,
        test_reload_moves_port_to_overlapping_address,
        test_signals_caught_before_startup_line,
    ])
