"""Chat mode: three clients and every command, the input filter, limits."""

import re
import select
import threading
import time

import harness
from harness import Daemon, check, eq

WELCOME = b"Welcome to the server pal!\n"
YOU_ARE = re.compile(rb"^\* you are (guest\d+) in #lobby, "
                     rb"type /help for commands\n$")


def chat_daemon(**limits):
    return Daemon(server={"mode": "chat"}, limits=limits)


def join(d, others=(), **kw):
    """Connects a chat client; checks its greeting and that the others in
    the lobby are told. Returns (client, nick)."""
    c = d.connect(**kw)
    c.expect(WELCOME, what="welcome line")
    line = c.read_line()
    m = YOU_ARE.match(line)
    check(m, "second line: %r" % line)
    nick = m.group(1).decode()
    for o in others:
        o.expect(b"* %s joined #lobby\n" % nick.encode(),
                 what="join notice for %s" % nick)
    return c, nick


def three(d):
    a, na = join(d)
    b, nb = join(d, [a])
    c, nc = join(d, [a, b])
    eq(len({na, nb, nc}), 3, "distinct guest nicks")
    return (a, na), (b, nb), (c, nc)


def test_three_clients_say():
    d = chat_daemon()
    (a, na), (b, nb), (c, nc) = three(d)
    a.send(b"hello everyone\n")
    b.expect(b"<%s> hello everyone\n" % na.encode())
    c.expect(b"<%s> hello everyone\n" % na.encode())
    b.send(b"hi \xe2\x82\xac\r\n")
    a.expect(b"<%s> hi \xe2\x82\xac\n" % nb.encode())
    c.expect(b"<%s> hi \xe2\x82\xac\n" % nb.encode())
    # Several lines in one send, in order.
    c.send(b"one\ntwo\r\nthree\n")
    for o in (a, b):
        o.expect(b"<%s> one\n<%s> two\n<%s> three\n" % ((nc.encode(),) * 3))
    # The sender gets nothing back for a plain message.
    for o in (a, b, c):
        o.expect_silent(0.3)


def test_nick():
    d = chat_daemon()
    (a, na), (b, nb), (c, nc) = three(d)
    a.send(b"/nick Alice\n")
    for o in (a, b, c):  # the renamer included
        o.expect(b"* %s is now known as Alice\n" % na.encode())
    # Taken, case-insensitively.
    b.send(b"/nick aLiCe\n")
    b.expect(b"! nick aLiCe is taken\n")
    b.send(b"/nick %s\n" % nc.upper().encode())
    b.expect(b"! nick %s is taken\n" % nc.upper().encode())
    # Bad names.
    for bad in (b"/nick bad!name\n", b"/nick\n", b"/nick two words\n",
                b"/nick " + b"x" * 33 + b"\n", b"/nick caf\xc3\xa9\n"):
        b.send(bad)
        line = b.read_line()
        check(line.startswith(b"! usage: "), "%r gave %r" % (bad, line))
    for o in (a, c):
        o.expect_silent(0.2, what="others after failed /nick")
    # 32 characters of [A-Za-z0-9_-] is fine.
    long_ok = b"Ab_-9" * 6 + b"zz"
    b.send(b"/nick " + long_ok + b"\n")
    for o in (a, b, c):
        o.expect(b"* %s is now known as %s\n" % (nb.encode(), long_ok))
    a.send(b"from alice\n")
    b.expect(b"<Alice> from alice\n")
    c.expect(b"<Alice> from alice\n")
    # The old nick is free again.
    c.send(b"/nick %s\n" % na.encode())
    for o in (a, b, c):
        o.expect(b"* %s is now known as %s\n" % (nc.encode(), na.encode()))


def _who(c, room):
    c.send(b"/who\n")
    line = c.read_line()
    prefix = b"* in #%s:" % room
    check(line.startswith(prefix) and line.endswith(b"\n"),
          "/who gave %r" % line)
    return set(line[len(prefix):].split())


def test_join_rooms_who():
    d = chat_daemon()
    (a, na), (b, nb), (c, nc) = three(d)
    eq(_who(a, b"lobby"), {na.encode(), nb.encode(), nc.encode()}, "/who")
    c.send(b"/join #games\n")
    a.expect(b"* %s left #lobby\n" % nc.encode())
    b.expect(b"* %s left #lobby\n" % nc.encode())
    c.expect(b"* %s joined #games\n" % nc.encode())
    a.send(b"/rooms\n")
    a.expect(b"* rooms: #lobby (2), #games (1)\n")
    eq(_who(a, b"lobby"), {na.encode(), nb.encode()}, "/who in #lobby")
    eq(_who(c, b"games"), {nc.encode()}, "/who in #games")
    # Rooms are separate.
    a.send(b"lobby only\n")
    b.expect(b"<%s> lobby only\n" % na.encode())
    c.send(b"games only\n")
    eq(_who(c, b"games"), {nc.encode()}, "/who in #games")  # processed
    # "#" is optional; room names are names.
    b.send(b"/join games\n")
    a.expect(b"* %s left #lobby\n" % nb.encode())
    for o in (b, c):
        o.expect(b"* %s joined #games\n" % nb.encode())
    c.expect_silent(0.2, what="#games member after a #lobby message")
    a.expect_silent(0.1, what="#lobby member after a #games message")
    b.send(b"/rooms\n")
    b.expect(b"* rooms: #lobby (1), #games (2)\n")
    b.send(b"/join bad!room\n")
    line = b.read_line()
    check(line.startswith(b"! usage: "), "/join bad!room gave %r" % line)
    b.send(b"in games\n")
    c.expect(b"<%s> in games\n" % nb.encode())
    a.expect_silent(0.2)


def test_me_and_msg():
    d = chat_daemon()
    (a, na), (b, nb), (c, nc) = three(d)
    a.send(b"/me waves \xe2\x82\xac\n")
    b.expect(b"* %s waves \xe2\x82\xac\n" % na.encode())
    c.expect(b"* %s waves \xe2\x82\xac\n" % na.encode())
    a.send(b"/msg %s psst, only you\n" % nb.encode())
    b.expect(b"*%s* psst, only you\n" % na.encode())
    c.expect_silent(0.3, what="third party after /msg")
    a.expect_silent(0.1, what="sender of /msg")
    # The target's nick is case-insensitive too.
    c.send(b"/msg %s hi\r\n" % na.upper().encode())
    a.expect(b"*%s* hi\n" % nc.encode())
    b.expect_silent(0.2, what="third party after /msg")
    for bad in (b"/me\n", b"/msg %s\n" % nb.encode()):
        a.send(bad)
        line = a.read_line()
        check(line.startswith(b"! usage: "), "%r gave %r" % (bad, line))


def test_quit_with_reason():
    d = chat_daemon()
    (a, na), (b, nb), (c, nc) = three(d)
    c.send(b"/quit see you \xe2\x82\xac\n")
    for o in (a, b):
        o.expect(b"* %s quit (see you \xe2\x82\xac)\n" % nc.encode())
    c.read_until_eof(timeout=3)
    d.wait_log(r"Connection from %s closed" % re.escape(c.addr))
    a.send(b"/who\n")
    line = a.read_line()
    check(nc.encode() not in line, "quitter still in /who: %r" % line)


def test_help_and_unknown():
    d = chat_daemon()
    (a, na), (b, nb), (c, nc) = three(d)
    a.send(b"/help\n")
    text = a.read_line()
    text += a.read_for(0.3)
    lines = text.split(b"\n")
    check(lines[-1] == b"", "help does not end with a newline: %r" % text)
    for l in lines[:-1]:
        check(l.startswith(b"* "), "help line without '* ': %r" % l)
    for cmd in (b"/nick", b"/join", b"/rooms", b"/who", b"/me", b"/msg",
                b"/quit", b"/help"):
        check(cmd in text, "/help does not mention %r: %r" % (cmd, text))
    for o in (b, c):
        o.expect_silent(0.1, what="others after /help")
    for unknown in (b"/frobnicate\n", b"/ nick x\n", b"/\n", b"/nickname x\n"):
        a.send(unknown)
        a.expect(b"! unknown command\n", what="answer to %r" % unknown)
    for o in (b, c):
        o.expect_silent(0.2, what="others after unknown commands")


def test_disconnect_announced():
    d = chat_daemon()
    (a, na), (b, nb), (c, nc) = three(d)
    b.close()
    a.expect(b"* %s left #lobby\n" % nb.encode())
    c.expect(b"* %s left #lobby\n" % nb.encode())
    c.send(b"/join side\n")
    a.expect(b"* %s left #lobby\n" % nc.encode())
    c.expect(b"* %s joined #side\n" % nc.encode())
    e, ne = join(d, [a])
    e.send(b"/join #side\n")
    a.expect(b"* %s left #lobby\n" % ne.encode())
    c.expect(b"* %s joined #side\n" % ne.encode())
    e.expect(b"* %s joined #side\n" % ne.encode())
    c.abort()  # a reset, not a clean close
    e.expect(b"* %s left #side\n" % nc.encode())
    a.expect_silent(0.2, what="#lobby after a #side member left")


def test_input_filter():
    d = chat_daemon()
    (a, na), (b, nb), (c, nc) = three(d)
    pre = b"<%s> " % na.encode()
    cases = [
        # telnet: IAC WILL/DO/WONT/DONT option, IAC NOP, IAC SB ... IAC SE
        (b"hel\xff\xfb\x01lo\r\n", b"hello"),
        (b"\xff\xfd\x03\xff\xfc\x22x\xff\xfe\x01y\xff\xf1z\n", b"xyz"),
        (b"a\xff\xfa\x18\x01\x41\x42\xff\xf0b\n", b"ab"),
        # IAC IAC is one 0xff byte
        (b"z\xff\xffz\n", b"z\xffz"),
        # UTF-8 passes untouched
        ("\u20ac \u00fc \U0001f600\n".encode(), "\u20ac \u00fc \U0001f600"
         .encode()),
        # control bytes dropped, tab kept, CR before LF ends the line
        (b"a\x01b\x00c\x7fd\x1be\tf\x07\r\n", b"abcde\tf"),
        (b"lone\rcr\n", b"lonecr"),
        (b"\x80\xfe\xc3\x28 raw high bytes\n", b"\x80\xfe\xc3\x28 raw high bytes"),
    ]
    for sent, want in cases:
        a.send(sent)
        b.expect(pre + want + b"\n", what="filtered %r" % sent)
        c.expect(pre + want + b"\n", what="filtered %r" % sent)
    # Telnet sequences split across reads.
    for parts, want in [
            ([b"sp\xff", b"\xfb", b"\x01lit\n"], b"split"),
            ([b"s\xff\xfa\x18", b"\x01junk\xff", b"\xf0b\r", b"\n"], b"sb"),
            ([b"x\xff", b"\xffy\n"], b"x\xffy")]:
        for p in parts:
            a.send(p)
            time.sleep(0.05)
        b.expect(pre + want + b"\n", what="split %r" % parts)
        c.expect(pre + want + b"\n", what="split %r" % parts)
    # A command with telnet noise inside still works.
    a.send(b"/ni\xff\xfb\x01ck Tel\xff\xffnet\n")
    line = a.read_line()
    check(line.startswith(b"! usage: "), "/nick with 0xff: %r" % line)
    a.send(b"/ni\xff\xfb\x01ck Telnet\r\n")
    for o in (a, b, c):
        o.expect(b"* %s is now known as Telnet\n" % na.encode())


def test_line_too_long():
    d = chat_daemon(max_line=32)
    (a, na), (b, nb), (c, nc) = three(d)
    pre = b"<%s> " % na.encode()
    # 31 bytes + "\n" = 32: fits.
    a.send(b"y" * 31 + b"\n")
    b.expect(pre + b"y" * 31 + b"\n")
    c.expect(pre + b"y" * 31 + b"\n")
    for long in (b"L" * 32 + b"\n",                 # 33 bytes
                 b"M" * 31 + b"\r\n",               # 33 with \r\n
                 b"N" * 29 + b"\xff\xfb\x01\n",     # 33 as received
                 b"O" * 200 + b"\n",
                 b"P" * 20 + b"\x01" * 20 + b"\n"):  # dropped bytes count
        a.send(long)
        a.expect(b"! line too long\n", what="answer to %r" % long)
        a.send(b"ok\n")
        # Nothing of the long line was broadcast: the next line is first.
        b.expect(pre + b"ok\n", what="after %r" % long)
        c.expect(pre + b"ok\n", what="after %r" % long)
    # A long line sent in pieces.
    for i in range(5):
        a.send(b"Q" * 10)
        time.sleep(0.03)
    a.send(b"\n")
    a.expect(b"! line too long\n")
    a.send(b"/who\n")
    check(a.read_line().startswith(b"* in #lobby:"), "/who after a long line")
    for o in (b, c):
        o.expect_silent(0.2)


def _reader(c, out, stop):
    """Reads everything c gets until the end of stream or stop. Polls with
    select: the main thread may change the socket's timeout when sending."""
    while not stop.is_set():
        r, _, _ = select.select([c.sock], [], [], 0.1)
        if not r:
            continue
        try:
            data = c.sock.recv(1 << 16)
        except OSError as e:
            out.append(b"<error %r>" % str(e).encode())
            return
        if not data:
            return
        out.append(data)


def test_burst_reader_with_room_not_slow():
    # Regression: a reader whose socket had room was taken for too slow when
    # its writer, sending a long queue, yielded to let other tasks run (its
    # I/O budget for the turn spent) and the sender's next lines came then.
    # The sender's burst of 1500 lines is read in a few turns, more lines
    # than the writer sends in one; the reader's socket takes them all.
    d = chat_daemon(send_buffer="4KiB")
    r, nr = join(d, rcvbuf=1 << 20)
    f, nf = join(d, [r])
    mark = d.mark()
    lines = [b"burst %04d %s\n" % (i, b"=" * 80) for i in range(1500)]
    f.send(b"".join(lines))
    r.expect(b"".join(b"<%s> %s" % (nf.encode(), l) for l in lines),
             timeout=10, what="the burst")
    d.no_log(r"too slow", since=mark)
    r.send(b"/quit\n")
    f.expect(b"* %s quit\n" % nr.encode())


def test_slow_client_disconnected():
    d = chat_daemon(send_buffer="4KiB")
    r1, n1 = join(d)
    r2, n2 = join(d, [r1])
    f, nf = join(d, [r1, r2])
    # s never reads; a small receive buffer so that its outbox fills.
    s, ns = join(d, [r1, r2, f], rcvbuf=4096)
    got = {}
    stop = threading.Event()
    threads = []
    for name, c in (("r1", r1), ("r2", r2), ("f", f)):
        got[name] = []
        t = threading.Thread(target=_reader, args=(c, got[name], stop),
                             daemon=True)
        t.start()
        threads.append(t)
    mark = d.mark()
    sent = 0
    deadline = time.monotonic() + 8
    slow_seen_at = None
    while time.monotonic() < deadline:
        batch = b"".join(b"flood %06d %s\n" % (sent + i, b"=" * 80)
                         for i in range(50))
        f.send(batch)
        sent += 50
        if slow_seen_at is None and d.find_log(r"too slow", mark):
            slow_seen_at = sent
        if slow_seen_at is not None and sent >= slow_seen_at + 500:
            break
        time.sleep(0.002)
    check(slow_seen_at is not None,
          "no 'too slow' log line after %d lines to a client that never "
          "reads" % sent)
    # Only the client that never reads is too slow.
    for c, n in ((r1, n1), (r2, n2), (f, nf)):
        bad = d.find_log(r"%s\b.*too slow" % re.escape(c.addr), mark)
        check(not bad, "%s, which reads everything, was disconnected: %r" % (
            n, bad[0].string if bad else None))
    m = d.wait_log(r"%s\b.*too slow" % re.escape(s.addr), since=mark)
    check(ns in m.string, "the log line names the nick: %r" % m.string)
    d.wait_log(r"Connection from %s closed" % re.escape(s.addr), since=mark)
    # Every reader gets every line, in order, and the notice.
    want_lines = [b"<%s> flood %06d %s\n" % (nf.encode(), i, b"=" * 80)
                  for i in range(sent)]
    notice = b"* %s was disconnected (too slow)\n" % ns.encode()

    def complete(name):
        return b"".join(got[name]).count(b"\n") >= sent + 1

    harness.wait_until(lambda: complete("r1") and complete("r2"), timeout=10,
                       what="readers got %d lines" % sent)
    stop.set()
    for t in threads:
        t.join(2)
        check(not t.is_alive(), "a reader thread did not stop")
    for name in ("r1", "r2"):
        lines = b"".join(got[name]).splitlines(keepends=True)
        check(notice in lines, "%s did not get %r" % (name, notice))
        lines.remove(notice)
        eq(len(lines), sent, "%s: lines received" % name)
        for i, (g, w) in enumerate(zip(lines, want_lines)):
            if g != w:
                raise AssertionError("%s: line %d is %r, expected %r" % (
                    name, i, g, w))
    fl = b"".join(got["f"])
    eq(fl, notice, "what the flooder got")
    # The slow client's connection was closed.
    s.read_until_eof(timeout=3)
    # The others are still in the room.
    r1.send(b"still here\n")
    r2.expect(b"<%s> still here\n" % n1.encode(), what="r2 after the flood")
    f.expect(b"<%s> still here\n" % n1.encode(), what="f after the flood")


def test_send_buffer_holds_own_commands():
    # A client that never reads and asks for /help over and over fills its
    # own outbox 70 times faster than it sends. It must be dropped once
    # send_buffer is passed, not after a whole turn of reads has queued
    # hundreds of KiB.
    d = chat_daemon(send_buffer="8KiB")
    c, nick = join(d, rcvbuf=4096, sndbuf=4096)
    mark = d.mark()
    c.sock.setblocking(False)
    data = b"/help\n" * 50000
    sent = 0
    deadline = time.monotonic() + 8
    while sent < len(data) and time.monotonic() < deadline and \
            not d.find_log(r"too slow", mark):
        try:
            sent += c.sock.send(data[sent:sent + 65536])
        except BlockingIOError:
            time.sleep(0.005)
        except OSError:
            break  # dropped
    m = d.wait_log(r"\(%s\) is too slow: (\d+) bytes waiting" % nick,
                   since=mark)
    # At most the limit and the one answer (under 1 KiB) that passed it.
    check(int(m.group(1)) <= 8192 + 1024,
          "%s bytes waited for a client with send_buffer 8KiB, after %d "
          "bytes of /help" % (m.group(1), sent))


if __name__ == "__main__":
    harness.main([
        test_three_clients_say,
        test_nick,
        test_join_rooms_who,
        test_me_and_msg,
        test_quit_with_reason,
        test_help_and_unknown,
        test_disconnect_announced,
        test_input_filter,
        test_line_too_long,
        test_burst_reader_with_room_not_slow,
        test_slow_client_disconnected,
        test_send_buffer_holds_own_commands,
    ])
