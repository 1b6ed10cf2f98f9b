"""Echo mode, byte for byte (giambio's README example)."""

import re
import sys
import threading
import time

import harness
from harness import Daemon, check, eq, run

WELCOME = b"Welcome to the server pal!\n"


def test_welcome_and_exact_echo():
    d = Daemon()
    c = d.connect()
    c.expect(WELCOME, what="welcome line")
    for line in [b"hello\n",
                 b"crlf line\r\n",
                 b"\n",
                 b"\r\n",
                 b"nul\x00in the middle\x00\n",
                 b"\xff\xfe\x80 high bytes \xc3\x28 not utf-8 \xed\xa0\x80\n",
                 b"\x00\n",
                 b"tab\tand\x7fdel and \x1b[31m escape\r\n",
                 b"lone\rcr inside\n",
                 "UTF-8 \u20ac \u00fc\n".encode()]:
        c.send(line)
        c.expect(b"Got: " + line, what="echo of %r" % line)
    c.expect_open()


def test_several_lines_one_send():
    d = Daemon()
    c = d.connect()
    c.expect(WELCOME)
    c.send(b"one\ntwo\r\nthree\n\x00four\xff\n")
    c.expect(b"Got: one\nGot: two\r\nGot: three\nGot: \x00four\xff\n")
    # A line split over several sends is one line.
    c.send(b"spl")
    time.sleep(0.1)
    c.send(b"it\r")
    time.sleep(0.1)
    c.send(b"\nnext\n")
    c.expect(b"Got: split\r\nGot: next\n")


def test_many_lines_one_send():
    # Lines that come together are answered together, up to a batch at a
    # time: 300 lines (more than a batch), empty ones and ones longer than
    # max_line among them, come back exactly, in order.
    d = Daemon(limits={"max_line": "64"})
    c = d.connect()
    c.expect(WELCOME)
    lines = [b"line %03d %s\n" % (i, b"=" * (i % 97)) if i % 7 else b"\n"
             for i in range(300)]
    want = b""
    for line in lines:
        while len(line) > 64:
            want += b"Got: " + line[:64]
            line = line[64:]
        want += b"Got: " + line
    c.send(b"".join(lines))
    eq(c.read_exact(len(want), timeout=5), want, "300 lines echoed in order")
    c.expect_silent(0.1)


def _read_pieces(c, line, maxlen, timeout=3.0):
    """Reads the echo of a line longer than maxlen: pieces each prefixed
    "Got: ". Returns the pieces (line must not contain b"Got: ")."""
    want = len(line)
    data = b""
    deadline = time.monotonic() + timeout
    while not (data.endswith(b"\n") and
               len(data.replace(b"Got: ", b"")) >= want):
        left = deadline - time.monotonic()
        check(left > 0, "echo of a %d-byte line incomplete after %.1fs: %r"
              % (want, timeout, data[:400]))
        data += c.read_exact(1, timeout=left)
    check(data.startswith(b"Got: "), "reply does not start with 'Got: ': %r"
          % data[:40])
    pieces = data.split(b"Got: ")[1:]
    for p in pieces:
        check(0 < len(p) <= maxlen, "a piece of %d bytes (max_line %d): %r"
              % (len(p), maxlen, data[:400]))
    eq(b"".join(pieces), line, "pieces joined")
    return pieces


def test_long_line_in_pieces():
    d = Daemon(limits={"max_line": 16})
    c = d.connect()
    c.expect(WELCOME)
    # Exactly max_line bytes, terminator included: one piece.
    line = b"abcdefghijklmno\n"
    c.send(line)
    c.expect(b"Got: " + line)
    # 50 bytes + "\n": at least 4 pieces of at most 16 bytes.
    line = bytes(b"0123456789abcdefghijklmnopqrstuvwxyz"[i % 36]
                 for i in range(50)) + b"\n"
    c.send(line)
    pieces = _read_pieces(c, line, 16)
    check(len(pieces) >= 4, "expected at least 4 pieces, got %d" % len(pieces))
    # With \r\n and binary bytes.
    line = b"\x00\xff" * 20 + b"tail\r\n"
    c.send(line)
    _read_pieces(c, line, 16)
    # A line of 16 bytes and then its newline.
    line = b"x" * 16 + b"\n"
    c.send(line)
    _read_pieces(c, line, 16)
    # Then an ordinary line is echoed whole again.
    c.send(b"short\n")
    c.expect(b"Got: short\n")
    c.expect_open()


def test_final_fragment_on_half_close():
    d = Daemon()
    c = d.connect()
    c.expect(WELCOME)
    c.send(b"first\r\npartial \x00\xff no newline")
    time.sleep(0.1)
    c.shutdown_write()
    rest = c.read_until_eof(timeout=3)
    eq(rest, b"Got: first\r\nGot: partial \x00\xff no newline",
       "replies up to the end of stream")
    d.wait_log(r"Connection from %s closed" % re.escape(c.addr))
    # Data and the half-close arriving together (as from nc -N), many times.
    for i in range(20):
        c = d.connect()
        c.send(b"line %d\nfragment %d" % (i, i))
        c.shutdown_write()
        eq(c.read_until_eof(timeout=2),
           WELCOME + b"Got: line %d\nGot: fragment %d" % (i, i),
           "client %d: replies up to the end of stream" % i)
        c.close()
    # A half-close right after the welcome, with nothing sent.
    c = d.connect()
    c.expect(WELCOME)
    c.shutdown_write()
    eq(c.read_until_eof(timeout=2), b"", "after an empty half-close")


def test_reset_after_partial_line():
    # A partial line and a reset arrive together; with no idle timeout
    # the connection must still be noticed gone and closed, many times.
    d = Daemon()
    for i in range(5):
        c = d.connect()
        c.expect(WELCOME)
        time.sleep(0.05)
        c.send(b"partial %d" % i)
        c.abort()
        d.wait_log(r"Connection from %s closed" % re.escape(c.addr))
    c = d.connect()
    c.expect(WELCOME)
    c.send(b"still here\n")
    c.expect(b"Got: still here\n")


def _lines_payload(total, width=64):
    lines = []
    n = 0
    size = 0
    while size < total:
        body = b"%08d " % n
        line = body + b"." * (width - len(body) - 1) + b"\n"
        lines.append(line)
        size += len(line)
        n += 1
    return lines


def test_one_mib_in_one_go():
    d = Daemon()
    c = d.connect()
    c.expect(WELCOME)
    lines = _lines_payload(1 << 20)
    payload = b"".join(lines)
    eq(len(payload), 1 << 20, "payload size")
    want = b"".join(b"Got: " + l for l in lines)
    err = []

    out = c.sock.dup()  # its own timeout, apart from the reads'
    out.settimeout(15)

    def sender():
        try:
            out.sendall(payload)
        except OSError as e:
            err.append(e)

    t = threading.Thread(target=sender, daemon=True)
    t.start()
    got = c.read_exact(len(want), timeout=15)
    t.join(5)
    out.close()
    check(not err, "send failed: %r" % err)
    if got != want:
        i = next(i for i in range(len(want)) if got[i] != want[i])
        raise AssertionError("1 MiB echo differs at byte %d: %r vs %r" % (
            i, got[i:i + 40], want[i:i + 40]))
    c.expect_silent(0.2)


def test_non_reader_does_not_block_others():
    d = Daemon()
    # Small kernel buffers on A's side, so that what A manages to send
    # shows whether the daemon holds A back (TCP) or buffers for it.
    a = d.connect(rcvbuf=65536, sndbuf=65536)
    a.expect(WELCOME)
    lines = _lines_payload(8 << 20, width=1024)
    payload = b"".join(lines)
    state = {"sent": 0, "stuck": False, "err": None}
    stop = threading.Event()

    def flood():
        # Sends as much of 8 MiB as TCP takes, never reading, until told
        # to stop (at most 8 s).
        s = a.sock
        s.setblocking(False)
        deadline = time.monotonic() + 8
        last_progress = time.monotonic()
        try:
            while (state["sent"] < len(payload) and not stop.is_set()
                   and time.monotonic() < deadline):
                try:
                    n = s.send(payload[state["sent"]:state["sent"] + 65536])
                    state["sent"] += n
                    last_progress = time.monotonic()
                except BlockingIOError:
                    if time.monotonic() - last_progress > 0.3:
                        state["stuck"] = True
                    time.sleep(0.01)
        except OSError as e:
            state["err"] = e

    t = threading.Thread(target=flood, daemon=True)
    t.start()
    harness.wait_until(lambda: state["stuck"] or not t.is_alive(), timeout=6,
                       what="client A blocked or done sending")
    b = d.connect()
    b.expect(WELCOME, what="client B's welcome while A does not read")
    for i in range(20):
        line = b"B line %d\r\n" % i
        t0 = time.monotonic()
        b.send(line)
        b.expect(b"Got: " + line, timeout=2, what="B's echo")
        check(time.monotonic() - t0 < 1.5, "B's echo took %.2fs" %
              (time.monotonic() - t0))
    stop.set()
    t.join(3)
    check(state["err"] is None, "A's send failed: %r" % state["err"])
    sent = state["sent"]
    sys.stderr.write("# A sent %d of %d bytes (stuck: %s)\n" % (
        sent, len(payload), state["stuck"]))
    # A is held back by TCP: the daemon stopped taking its data.
    check(state["stuck"] and sent < len(payload),
          "A, not reading, could send all %d bytes: not held back" % sent)
    # Now A reads: everything it sent comes back, in order, nothing lost.
    a.sock.setblocking(True)
    a.shutdown_write()
    data = payload[:sent]
    full, part = data[:data.rfind(b"\n") + 1], data[data.rfind(b"\n") + 1:]
    want = b"".join(b"Got: " + l for l in full.splitlines(keepends=True))
    if part:
        want += b"Got: " + part
    got = a.read_exact(len(want), timeout=10)
    if got != want:
        i = next(i for i in range(len(want)) if got[i] != want[i])
        raise AssertionError("A's echo differs at byte %d of %d" % (i, len(want)))
    rest = a.read_until_eof(timeout=3)
    eq(rest, b"", "after A's last echo")


def test_log_lines():
    d = Daemon(log={"level": "debug"})
    c = d.connect()
    p = re.escape(c.addr)
    eq(c.addr.startswith("127.0.0.1:"), True, "client address")
    m = d.wait_log(r"%s connected$" % p)
    check(re.match(r"^\[INFO\] \d\d/\d\d/\d{4} \d\d:\d\d:\d\d %s connected$"
                   % p, m.string), "connected line format: %r" % m.string)
    c.expect(WELCOME)
    c.send(b"hello\n")
    c.expect(b"Got: hello\n")
    m = d.wait_log(r"Got: 'hello\\n' from %s$" % p)
    check(re.match(r"^\[DEBUG\] \d\d/\d\d/\d{4} \d\d:\d\d:\d\d Got: ", m.string),
          "debug line format: %r" % m.string)
    d.wait_log(r"Echoed back 'hello\\n' to %s$" % p)
    # The README's escaping: \\ \' \n \r \t and \xNN (lower case) for the rest.
    c.send(b"it's a \\ and\ta \x00\x7f\xff\xc3\xa9\x1b~\r\n")
    c.expect(b"Got: it's a \\ and\ta \x00\x7f\xff\xc3\xa9\x1b~\r\n")
    esc = r"it\\'s a \\\\ and\\ta \\x00\\x7f\\xff\\xc3\\xa9\\x1b~\\r\\n"
    d.wait_log(r"Got: '%s' from %s$" % (esc, p))
    d.wait_log(r"Echoed back '%s' to %s$" % (esc, p))
    c.close()
    m = d.wait_log(r"Connection from %s closed$" % p)
    check(m.string.startswith("[INFO] "), "closed line: %r" % m.string)


def test_no_debug_lines_at_info():
    d = Daemon()
    c = d.connect()
    c.expect(WELCOME)
    c.send(b"quiet\n")
    c.expect(b"Got: quiet\n")
    c.close()
    d.wait_log(r"Connection from %s closed" % re.escape(c.addr))
    d.no_log(r"Got: |Echoed back|\[DEBUG\]", what="at info level")


def test_ipv6_and_dual_stack():
    d = Daemon(server={"listen": ["[::1]:0"]}, log={"level": "debug"})
    eq(d.listening()[0][1], "[::1]", "startup line host")
    c = d.connect(host="::1")
    c.expect(WELCOME)
    c.send(b"six\n")
    c.expect(b"Got: six\n")
    port = c.sock.getsockname()[1]
    d.wait_log(r" \[::1\]:%d connected$" % port)
    d.wait_log(r"Got: 'six\\n' from \[::1\]:%d$" % port)
    # "*:port" serves IPv4 and IPv6 on one port; IPv4 peers look like IPv4.
    d2 = Daemon(server={"listen": "*:0"})
    p = d2.listening()[0][2]
    c4 = d2.connect(port=p, host="127.0.0.1")
    c4.expect(WELCOME)
    c6 = d2.connect(port=p, host="::1")
    c6.expect(WELCOME)
    for c in (c4, c6):
        c.send(b"both\r\n")
        c.expect(b"Got: both\r\n")
    d2.wait_log(r" 127\.0\.0\.1:%d connected$" % c4.local_port)
    d2.wait_log(r" \[::1\]:%d connected$" % c6.sock.getsockname()[1])


def test_journal_format():
    d = Daemon(journal=True, wait_start=False, log={"level": "debug"})
    m = d.wait_log(r"^<6>Echo server serving asynchronously at "
                   r"127\.0\.0\.1:(\d+)$")
    c = d.connect(port=int(m.group(1)))
    c.expect(WELCOME)
    c.send(b"j\n")
    c.expect(b"Got: j\n")
    d.wait_log(r"^<6>%s connected$" % re.escape(c.addr))
    d.wait_log(r"^<7>Got: 'j\\n' from %s$" % re.escape(c.addr))
    c.close()
    d.wait_log(r"^<6>Connection from %s closed$" % re.escape(c.addr))
    for line in d.log():
        check(re.match(r"<[0-7]>", line) and "[INFO]" not in line,
              "not in the journal format: %r" % line)


def test_empty_welcome():
    d = Daemon(server={"welcome": ""})
    c = d.connect()
    c.send(b"first\n")
    c.expect(b"Got: first\n", what="no welcome line, just the echo")


def test_netcat():
    d = Daemon()
    r = run(["nc", "-N", "127.0.0.1", str(d.port)],
            input=b"hello from nc\nsecond\r\nlast", timeout=5)
    eq(r.returncode, 0, "nc exit status (stderr %r)" % r.stderr)
    eq(r.stdout, WELCOME + b"Got: hello from nc\nGot: second\r\nGot: last",
       "nc output")


def test_socat():
    d = Daemon()
    t0 = time.monotonic()
    r = run(["socat", "-t", "3", "-", "TCP:127.0.0.1:%d" % d.port],
            input=b"via socat \x00\xff\n\xe2\x82\xac\r\n", timeout=6)
    took = time.monotonic() - t0
    eq(r.returncode, 0, "socat exit status (stderr %r)" % r.stderr)
    eq(r.stdout, WELCOME + b"Got: via socat \x00\xff\nGot: \xe2\x82\xac\r\n",
       "socat output")
    # socat half-closes at the end of its input and waits up to 3 s for
    # the daemon to close its side: the daemon must close at once.
    check(took < 2.0, "the daemon did not close after socat's half-close "
          "(socat took %.2fs)" % took)


if __name__ == "__main__":
    harness.main([
        test_welcome_and_exact_echo,
        test_several_lines_one_send,
        test_many_lines_one_send,
        test_long_line_in_pieces,
        test_final_fragment_on_half_close,
        test_reset_after_partial_line,
        test_one_mib_in_one_go,
        test_non_reader_does_not_block_others,
        test_log_lines,
        test_no_debug_lines_at_info,
        test_ipv6_and_dual_stack,
        test_journal_format,
        test_empty_welcome,
        test_netcat,
        test_socat,
    ])
