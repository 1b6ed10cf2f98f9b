"""Limits and hostile clients: full server, per-IP limit, idle timeout,
rate, rejection logging, resets."""

import re
import time

import harness
from harness import Daemon, check, eq

WELCOME = b"Welcome to the server pal!\n"
REJECT_LOG = r"(?i)reject"


def test_max_clients():
    d = Daemon(limits={"max_clients": 2})
    a = d.connect()
    a.expect(WELCOME)
    b = d.connect()
    b.expect(WELCOME)
    mark = d.mark()
    c = d.connect()
    eq(c.read_until_eof(timeout=3), b"! server full\n", "third client gets")
    # The first two are unaffected.
    for x in (a, b):
        x.send(b"still served\n")
        x.expect(b"Got: still served\n")
        x.expect_open(0.1)
    d.wait_log(REJECT_LOG, since=mark)
    time.sleep(0.2)
    p = re.escape(c.addr)
    d.no_log(r"%s connected|Connection from %s closed" % (p, p), since=mark,
             what="for the rejected client")
    # A place frees up when a client leaves.
    a.close()
    d.wait_log(r"Connection from %s closed" % re.escape(a.addr))
    e = d.connect()
    e.expect(WELCOME, what="a client after one left")
    e.send(b"in\n")
    e.expect(b"Got: in\n")


def test_max_clients_chat():
    d = Daemon(server={"mode": "chat"}, limits={"max_clients": 1})
    a = d.connect()
    a.expect(WELCOME)
    a.read_line()
    c = d.connect()
    eq(c.read_until_eof(timeout=3), b"! server full\n", "second chat client")
    a.expect_silent(0.3, what="chat member when a client is rejected")


def test_max_clients_per_ip():
    d = Daemon(limits={"max_clients_per_ip": 1})
    a = d.connect()
    a.expect(WELCOME)
    mark = d.mark()
    b = d.connect()
    eq(b.read_until_eof(timeout=3),
       b"! too many connections from your address\n", "second from 127.0.0.1")
    # Another source address is admitted.
    c = d.connect(source="127.0.0.2")
    check(c.addr.startswith("127.0.0.2:"), "source address %s" % c.addr)
    c.expect(WELCOME, what="client from 127.0.0.2")
    c.send(b"from two\n")
    c.expect(b"Got: from two\n")
    d.wait_log(r"^\S+ \S+ \S+ 127\.0\.0\.2:%d connected" % c.local_port)
    a.send(b"from one\n")
    a.expect(b"Got: from one\n")
    d.wait_log(REJECT_LOG, since=mark)
    p = re.escape(b.addr)
    d.no_log(r"%s connected|Connection from %s closed" % (p, p), since=mark,
             what="for the rejected client")
    # When a leaves, 127.0.0.1 may connect again.
    a.close()
    d.wait_log(r"Connection from %s closed" % re.escape(a.addr))
    e = d.connect()
    e.expect(WELCOME)


def test_idle_timeout():
    d = Daemon(limits={"idle_timeout": "300ms"})
    idle = d.connect()
    idle.expect(WELCOME)
    busy = d.connect()
    busy.expect(WELCOME)
    # busy sends every 100 ms for 1.2 s and stays.
    for i in range(12):
        busy.send(b"ping %d\n" % i)
        busy.expect(b"Got: ping %d\n" % i)
        time.sleep(0.1)
    idle.expect(b"* idle timeout\n", timeout=0.1)
    eq(idle.read_until_eof(timeout=2), b"", "after the idle notice")
    d.wait_log(r"Connection from %s closed" % re.escape(idle.addr))
    busy.send(b"still\n")
    busy.expect(b"Got: still\n")
    busy.expect_open(0.1)
    # Not before the timeout: a fresh client keeps quiet for 150 ms.
    late = d.connect()
    late.expect(WELCOME)
    t1 = time.monotonic()
    late.expect_silent(0.15, what="client idle for less than idle_timeout")
    late.expect(b"* idle timeout\n", timeout=2)
    el = time.monotonic() - t1
    check(0.2 <= el <= 1.5, "idle timeout after %.2fs (configured 0.3s)" % el)
    late.read_until_eof(timeout=2)
    # A partial line counts as activity too.
    part = d.connect()
    part.expect(WELCOME)
    for i in range(6):
        part.send(b"x")
        time.sleep(0.1)
    part.send(b"\n")
    part.expect(b"Got: xxxxxx\n")


def test_idle_timeout_never_reads():
    # A client that sends without reading fills both directions and then
    # cannot send either; the server, stuck on a reply, must still close
    # it after idle_timeout instead of keeping its place for ever.
    d = Daemon(limits={"idle_timeout": "500ms"})
    c = d.connect(rcvbuf=4096)
    c.expect(WELCOME)
    _, stuck = harness.send_until_stuck(c.sock, (b"x" * 200 + b"\n") * 256)
    check(stuck, "the server kept taking lines for 10s")
    d.wait_log(r"Connection from %s closed" % re.escape(c.addr), timeout=3)
    # A client that reads is served as before.
    r = d.connect()
    r.expect(WELCOME)
    r.send(b"hi\n")
    r.expect(b"Got: hi\n")


def test_idle_timeout_chat():
    d = Daemon(server={"mode": "chat"}, limits={"idle_timeout": "300ms"})
    a = d.connect()
    a.expect(WELCOME)
    m = re.match(rb"\* you are (guest\d+) in #lobby", a.read_line())
    check(m, "chat greeting")
    b = d.connect()
    b.expect(WELCOME)
    nb = re.match(rb"\* you are (guest\d+) in", b.read_line()).group(1)
    a.expect(b"* %s joined #lobby\n" % nb)
    # a talks every 100 ms and stays; b only listens, so it is idle.
    got = b""
    for i in range(8):
        a.send(b"talk %d\n" % i)
        time.sleep(0.1)
        got += b.read_for(0)
    got += b.read_until_eof(timeout=2)
    lines = got.splitlines(keepends=True)
    check(b"* idle timeout\n" in lines, "listener got no idle notice: %r"
          % got)
    for l in lines[:lines.index(b"* idle timeout\n")]:
        check(re.match(rb"<%s> talk \d\n" % m.group(1), l), "b got %r" % l)
    a.expect(b"* %s left #lobby\n" % nb, timeout=2)
    a.send(b"/who\n")
    a.expect(b"* in #lobby: %s\n" % m.group(1))


def test_rate():
    d = Daemon(limits={"rate": 10, "rate_burst": 2})
    a = d.connect()
    a.expect(WELCOME)
    other = d.connect()
    other.expect(WELCOME)
    lines = [b"rate line %02d %s\r\n" % (i, b"-" * i) for i in range(20)]
    t0 = time.monotonic()
    a.send(b"".join(lines))
    # Another client is not slowed by a's rate.
    time.sleep(0.3)
    t1 = time.monotonic()
    other.send(b"quick\n")
    other.expect(b"Got: quick\n", timeout=1)
    check(time.monotonic() - t1 < 0.5, "the other client waited %.2fs" %
          (time.monotonic() - t1))
    want = b"".join(b"Got: " + l for l in lines)
    got = a.read_exact(len(want), timeout=6)
    elapsed = time.monotonic() - t0
    eq(got, want, "all 20 lines, in order")
    check(elapsed >= 1.5, "20 lines at rate 10, burst 2 took only %.2fs"
          % elapsed)
    check(elapsed <= 4.0, "20 lines at rate 10 took %.2fs" % elapsed)
    # Slowed, never disconnected.
    a.send(b"after\n")
    a.expect(b"Got: after\n", timeout=2)
    a.expect_open(0.1)


def test_rate_chat():
    d = Daemon(server={"mode": "chat"}, limits={"rate": 10, "rate_burst": 2})
    a = d.connect()
    a.expect(WELCOME)
    na = re.match(rb"\* you are (guest\d+) in", a.read_line()).group(1)
    b = d.connect()
    b.expect(WELCOME)
    b.read_line()
    a.read_line()
    t0 = time.monotonic()
    a.send(b"".join(b"msg %d\n" % i for i in range(20)))
    want = b"".join(b"<%s> msg %d\n" % (na, i) for i in range(20))
    got = b.read_exact(len(want), timeout=6)
    elapsed = time.monotonic() - t0
    eq(got, want, "all 20 messages, in order")
    check(elapsed >= 1.5, "20 chat lines at rate 10, burst 2 took only %.2fs"
          % elapsed)


def test_rejections_logged_once_per_second():
    d = Daemon(limits={"max_clients": 1})
    a = d.connect()
    a.expect(WELCOME)
    mark = d.mark()
    t0 = time.monotonic()
    rejected = []
    for i in range(10):
        c = d.connect()
        rejected.append(c)
    for c in rejected:
        eq(c.read_until_eof(timeout=3), b"! server full\n", "over the limit")
    burst = time.monotonic() - t0
    time.sleep(0.3)
    n = len(d.find_log(REJECT_LOG, mark))
    allowed = int(burst) + 1
    check(1 <= n <= allowed, "%d rejection log lines for 10 rejections in "
          "%.2fs (at most %d allowed, at least 1)" % (n, burst, allowed))
    # After a second, a new rejection is logged again.
    time.sleep(1.1)
    mark2 = d.mark()
    c = d.connect()
    eq(c.read_until_eof(timeout=3), b"! server full\n", "over the limit")
    d.wait_log(REJECT_LOG, since=mark2, timeout=2)
    a.send(b"ok\n")
    a.expect(b"Got: ok\n")


def test_resets_and_half_open():
    d = Daemon()
    # Clients that reset at once, before and after the welcome, and one
    # that half-closes and never reads.
    for i in range(20):
        c = d.connect()
        if i % 2:
            c.expect(WELCOME)
            c.send(b"bye\n")
        c.abort()
    h = d.connect()
    h.send(b"half\n")
    h.shutdown_write()
    s = d.connect()
    s.send(b"x" * 3000)  # an unfinished line, then silence
    good = d.connect()
    good.expect(WELCOME)
    for i in range(5):
        good.send(b"line %d\n" % i)
        good.expect(b"Got: line %d\n" % i)
    h.expect(WELCOME + b"Got: half\n")
    eq(h.read_until_eof(timeout=2), b"", "after half-close")
    harness.wait_until(lambda: len(d.find_log(r"Connection from .* closed"))
                       >= 21, timeout=3, what="resets logged as closed")
    e = d.connect()
    e.expect(WELCOME)


if __name__ == "__main__":
    harness.main([
        test_max_clients,
        test_max_clients_chat,
        test_max_clients_per_ip,
        test_idle_timeout,
        test_idle_timeout_chat,
        test_rate,
        test_rate_chat,
        test_rejections_logged_once_per_second,
        test_resets_and_half_open,
        test_idle_timeout_never_reads,
    ])
