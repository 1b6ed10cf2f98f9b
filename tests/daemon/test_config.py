"""The command line and giambio.conf: -t, errors with line numbers, exit
codes, overrides."""

import os
import re
import time

import harness
from harness import Daemon, GIAMBIOD, check, eq, run

GOOD = """\
# a complete configuration
; with both comment styles
[server]
listen = 127.0.0.1:0
listen = [::1]:0
listen = *:0
mode = chat
welcome = Hello there, friend!

[limits]
max_clients = 100
max_clients_per_ip = 0
max_line = 64KiB
idle_timeout = 5m
send_buffer = 1MiB
rate = 0
rate_burst = 5
shutdown_timeout = 500ms

[log]
level = warning
"""


def write(name, text):
    path = os.path.join(harness.tempdir(), name)
    with open(path, "w") as f:
        f.write(text)
    return path


def test_t_good_file():
    path = write("good.conf", GOOD)
    for opt in ("-t", "--test"):
        r = run([GIAMBIOD, opt, "-c", path])
        out = (r.stdout + r.stderr).decode()
        eq(r.returncode, 0, "%s exit status (output %r)" % (opt, out))
        check(re.search(r"\bOK\b", out), "%s does not say OK: %r" % (opt, out))
    # Units of every kind and plain numbers.
    for key, value in (("idle_timeout", "0"), ("idle_timeout", "30"),
                       ("idle_timeout", "250ms"), ("idle_timeout", "2h"),
                       ("max_line", "2"), ("max_line", "1MiB"),
                       ("send_buffer", "0"), ("send_buffer", "64KiB"),
                       ("shutdown_timeout", "0"), ("rate", "1000000")):
        p = write("unit.conf", "[limits]\n%s = %s\n" % (key, value))
        r = run([GIAMBIOD, "-t", "-c", p])
        eq(r.returncode, 0, "-t with %s = %s (output %r)" % (
            key, value, r.stdout + r.stderr))


BAD = """\
[server]
mode = chat
colour = blue
mode = echo
welcome = hi
[limits]
max_clients = lots
idle_timeout = 5 s
send_buffer = 64kb
max_line = 1
idle_timeout = 10ms
shutdown_timeout = 2d
[log]
level = loud
[bogus]
key = value
"""
# (line, key) of every error in BAD.
BAD_ERRORS = [(3, "colour"), (4, "mode"), (7, "max_clients"),
              (8, "idle_timeout"), (9, "send_buffer"), (10, "max_line"),
              (11, "idle_timeout"), (12, "shutdown_timeout"), (14, "level"),
              (15, "bogus")]


def test_t_bad_file_every_error():
    path = write("bad.conf", BAD)
    r = run([GIAMBIOD, "-t", "-c", path])
    out = (r.stdout + r.stderr).decode()
    eq(r.returncode, 78, "exit status of -t on a bad file (output %r)" % out)
    lines = out.splitlines()
    for line, key in BAD_ERRORS:
        prefix = "%s:%d:" % (path, line)
        hits = [l for l in lines if prefix in l]
        check(hits, "no error for line %d (%s): %r" % (line, key, out))
        check(any(key in l for l in hits),
              "the error for line %d does not name %s: %r" % (line, key, hits))
    check(not re.search(r"\bOK\b", out), "a bad file said OK: %r" % out)
    # Without -t, the daemon refuses to start, with the same errors.
    r = run([GIAMBIOD, "-c", path, "--listen", "127.0.0.1:0"])
    out2 = (r.stdout + r.stderr).decode()
    eq(r.returncode, 78, "exit status of a start with a bad file")
    for line, key in BAD_ERRORS:
        check("%s:%d:" % (path, line) in out2, "start: no error for line %d"
              % line)
    check("serving" not in out2, "started with a bad file: %r" % out2)


def test_each_error_class_alone():
    cases = [
        ("[server]\nport = 1\n", 2, "port"),              # unknown key
        ("[limits]\nrate = -1\n", 2, "rate"),             # bad value
        ("[limits]\nrate = 1000001\n", 2, "rate"),        # out of range
        ("[limits]\nmax_line = 2MiB\n", 2, "max_line"),   # out of range
        ("[limits]\nidle_timeout = 5sec\n", 2, "idle_timeout"),  # bad unit
        ("[limits]\nsend_buffer = 4 KiB\n", 2, "send_buffer"),   # space
        ("[limits]\nsend_buffer = 4kib\n", 2, "send_buffer"),    # case
        ("[log]\nlevel = info\nlevel = debug\n", 3, "level"),  # duplicate
        ("\n\n[Server]\nmode = chat\n", 3, "Server"),     # section case
        ("[server]\nMode = chat\n", 2, "Mode"),           # key case
        ("[server]\nlisten = localhost:25000\n", 2, "listen"),
        ("[server]\nlisten = 127.0.0.1:70000\n", 2, "listen"),
        ("[server]\nwelcome = %s\n" % ("w" * 161), 2, "welcome"),
    ]
    for text, line, key in cases:
        path = write("one.conf", text)
        r = run([GIAMBIOD, "-t", "-c", path])
        out = (r.stdout + r.stderr).decode()
        eq(r.returncode, 78, "exit status for %r (output %r)" % (text, out))
        hits = [l for l in out.splitlines() if "%s:%d:" % (path, line) in l]
        check(hits and key in hits[0], "error for %r should name %s:%d: and "
              "%s; got %r" % (text, path, line, key, out))


def test_repeated_listen_is_fine():
    path = write("listen.conf", "[server]\nlisten = 127.0.0.1:0\n"
                 "listen = 127.0.0.2:0\nlisten = [::1]:0\n")
    r = run([GIAMBIOD, "-t", "-c", path])
    eq(r.returncode, 0, "-t with three listen lines (%r)" % (r.stdout +
                                                             r.stderr))


def test_missing_config_file():
    path = os.path.join(harness.tempdir(), "does-not-exist.conf")
    for argv in ([GIAMBIOD, "-c", path], [GIAMBIOD, "-t", "-c", path],
                 [GIAMBIOD, "--config", path, "--listen", "127.0.0.1:0"]):
        r = run(argv)
        err = (r.stdout + r.stderr).decode()
        eq(r.returncode, 78, "%s exit status (output %r)" % (argv[1:], err))
        check(path in err, "the message does not name the file: %r" % err)
        check("serving" not in err, "started without its file: %r" % err)


def test_unreadable_config_file():
    if os.geteuid() == 0:
        # root reads any file; a directory is unreadable as a file.
        path = harness.tempdir()
    else:
        path = write("secret.conf", "[server]\n")
        os.chmod(path, 0)
    r = run([GIAMBIOD, "-t", "-c", path])
    err = (r.stdout + r.stderr).decode()
    eq(r.returncode, 78, "exit status for an unreadable file (%r)" % err)
    check(path in err, "the message does not name the file: %r" % err)


def test_help_and_version():
    for opt in ("-h", "--help"):
        r = run([GIAMBIOD, opt])
        eq(r.returncode, 0, "%s exit status" % opt)
        out = r.stdout.decode()
        check("usage" in out.lower(), "%s prints no usage: %r" % (opt, out))
        for word in ("--config", "--test", "--log-level", "--listen",
                     "--mode", "--version", "--help"):
            check(word in out, "%s does not mention %s" % (opt, word))
    for opt in ("-V", "--version"):
        r = run([GIAMBIOD, opt])
        eq(r.returncode, 0, "%s exit status" % opt)
        out = r.stdout.decode()
        check(re.search(r"giambiod.*\d+\.\d+", out), "%s prints %r" % (opt, out))


def test_wrong_options():
    for argv in (["--bogus"], ["-x"], ["-c"], ["--listen"],
                 ["--mode", "banana"], ["-l", "loud"],
                 ["--listen", "nowhere"], ["stray-argument"]):
        r = run([GIAMBIOD] + argv)
        err = (r.stdout + r.stderr).decode()
        eq(r.returncode, 64, "exit status for %r (output %r)" % (argv, err))
        check("usage" in err.lower(), "no usage for %r: %r" % (argv, err))
        check("serving" not in err, "started with %r" % argv)


def test_listen_override():
    # The file's addresses are all replaced by --listen.
    d = Daemon(server={"listen": ["127.0.0.2:0", "127.0.0.3:0"]},
               args=["--listen", "127.0.0.1:0"])
    c = d.connect()
    c.expect(b"Welcome to the server pal!\n")
    c.close()
    d.wait_log(r"Connection from %s closed" % re.escape(c.addr))
    hosts = [h for (_, h, _) in d.listening()]
    eq(hosts, ["127.0.0.1"], "listening addresses")
    # --listen is repeatable.
    d2 = Daemon(server={"listen": "127.0.0.2:0"},
                args=["--listen", "127.0.0.1:0", "--listen", "127.0.0.3:0"])
    harness.wait_until(lambda: len(d2.listening()) >= 2, timeout=3,
                       what="two startup lines")
    got = sorted(h for (_, h, _) in d2.listening())
    eq(got, ["127.0.0.1", "127.0.0.3"], "listening addresses")
    for (_, h, p) in d2.listening():
        c = d2.connect(port=p, host=h)
        c.expect(b"Welcome to the server pal!\n")


def test_mode_override():
    d = Daemon(server={"mode": "echo", "welcome": "Hi"},
               args=["--mode", "chat"])
    eq(d.listening()[0][0], "Chat", "startup line")
    c = d.connect()
    c.expect(b"Hi\n")
    check(re.match(rb"\* you are guest\d+ in #lobby", c.read_line()),
          "chat greeting")
    d2 = Daemon(server={"mode": "chat"}, args=["--mode", "echo"])
    eq(d2.listening()[0][0], "Echo", "startup line")
    c = d2.connect()
    c.expect(b"Welcome to the server pal!\n")
    c.send(b"x\n")
    c.expect(b"Got: x\n")


def test_log_level_option():
    for args in (["-l", "debug"], ["--log-level", "debug"]):
        d = Daemon(log={"level": "info"}, args=args)
        c = d.connect()
        c.expect(b"Welcome to the server pal!\n")
        c.send(b"dbg\n")
        c.expect(b"Got: dbg\n")
        d.wait_log(r"^\[DEBUG\] .*Got: 'dbg\\n' from %s$" % re.escape(c.addr))
    # And the other way: -l error hides the info lines.
    port = harness.free_port()
    d = Daemon(log={"level": "debug"}, wait_start=False,
               args=["-l", "error", "--listen", "127.0.0.1:%d" % port])
    c = harness.wait_until(lambda: _try_connect(d, port), timeout=3,
                           what="daemon with -l error accepting")
    c.expect(b"Welcome to the server pal!\n")
    c.send(b"quiet\n")
    c.expect(b"Got: quiet\n")
    c.close()
    time.sleep(0.3)
    check(d.running(), "daemon with -l error exited")
    d.no_log(r"\[(INFO|DEBUG|WARNING)\]|connected|Got: ", what="with -l error")


def _try_connect(d, port):
    try:
        return d.connect(port=port)
    except ConnectionRefusedError:
        return None


def test_port_zero_names_real_port():
    d = Daemon()
    check(d.port and d.port != 0, "port %r" % d.port)
    c = d.connect(port=d.port)
    c.expect(b"Welcome to the server pal!\n")
    m = d.wait_log(r"127\.0\.0\.1:%d connected" % c.local_port)
    check(m, "connected line")
    # Two port-0 listeners get two different ports.
    d2 = Daemon(server={"listen": ["127.0.0.1:0", "127.0.0.2:0"]})
    harness.wait_until(lambda: len(d2.listening()) >= 2, timeout=3,
                       what="two startup lines")
    ports = [(h, p) for (_, h, p) in d2.listening()]
    for h, p in ports:
        check(p != 0, "startup line names port 0")
        c = d2.connect(port=p, host=h)
        c.expect(b"Welcome to the server pal!\n")


def test_default_file_missing_uses_defaults():
    # Without -c, a missing default file means the built-in defaults and
    # one log line naming it. The default file may exist on this machine:
    # then there is nothing to check.
    r = run([GIAMBIOD, "-h"])
    m = re.search(rb"default (\S+?)\)", r.stdout)
    check(m, "-h does not name the default file: %r" % r.stdout)
    default = m.group(1).decode()
    if os.path.exists(default):
        return
    r = run([GIAMBIOD, "-t", "--listen", "127.0.0.1:0"])
    out = (r.stdout + r.stderr).decode()
    eq(r.returncode, 0, "-t without -c and no default file (%r)" % out)
    eq(len([l for l in out.splitlines() if default in l]), 2,
       "lines naming the missing default file (one log line, one OK): %r"
       % out)


if __name__ == "__main__":
    harness.main([
        test_t_good_file,
        test_t_bad_file_every_error,
        test_each_error_class_alone,
        test_repeated_listen_is_fine,
        test_missing_config_file,
        test_unreadable_config_file,
        test_help_and_version,
        test_wrong_options,
        test_listen_override,
        test_mode_override,
        test_log_level_option,
        test_port_zero_names_real_port,
        test_default_file_missing_uses_defaults,
    ])
