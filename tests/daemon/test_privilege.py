"""Dropping root: [server] user, checked on the running daemon's
/proc/PID/status, the warning when root is kept, the errors for a user
that does not exist or cannot be switched to, and reload after the drop.

Tests that need root print "SKIP name: not root" when run as another
user; the script then exits 77, which make check reports as SKIP.
"""

import os
import pwd
import re
import signal
import socket
import sys

import harness
from harness import Daemon, GIAMBIOD, check, conf_text, eq, run

# The user the daemon drops to: nobody, which Debian always has.
USER = "nobody"


def user_ids(name):
    pw = pwd.getpwnam(name)
    return pw.pw_uid, pw.pw_gid


def proc_status(pid):
    """The Uid, Gid and Groups lines of /proc/PID/status, as lists."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("Uid", "Gid", "Groups"):
                out[key] = value.split()
    return out


def make_readable(directory, path):
    """Lets another user read path (temporary directories are mode 0700)."""
    os.chmod(directory, 0o755)
    os.chmod(path, 0o644)


def readable(d):
    """Lets the dropped daemon reread its configuration on SIGHUP."""
    make_readable(d.dir, d.conf_path)


def free_privileged_port():
    """A port below 1024 free on 127.0.0.1 a moment ago (we are root)."""
    for port in range(900, 1000):
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    raise AssertionError("no free port in 900..999 on 127.0.0.1")


def echo_ok(d, port=None, text=b"still here\n"):
    c = d.connect(port)
    c.expect(b"Welcome to the server pal!\n")
    c.send(text)
    c.expect(b"Got: " + text)
    c.close()


# --------------------------------------------------------------- as root

def test_drop_to_user():
    uid, gid = user_ids(USER)
    d = Daemon(server={"user": USER})
    m = d.wait_log(r"Dropped root: running as %s \(uid (\d+), gid (\d+)\)"
                   % USER)
    eq((int(m.group(1)), int(m.group(2))), (uid, gid), "logged ids")
    st = proc_status(d.pid)
    # Real, effective, saved and filesystem ids: all the user's.
    eq(st["Uid"], [str(uid)] * 4, "Uid line")
    eq(st["Gid"], [str(gid)] * 4, "Gid line")
    eq(st.get("Groups", []), [], "supplementary groups")
    d.no_log(r"running as root")
    echo_ok(d)


def test_privileged_port_then_reload():
    """A port below 1024 is opened as root, before the drop; after it, a
    reload adding another one reports it and keeps the old listener."""
    with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
        check(int(f.read()) >= 1000, "this host lets anyone bind ports "
              "below 1000 (net.ipv4.ip_unprivileged_port_start)")
    low = free_privileged_port()
    d = Daemon(server={"user": USER, "listen": "127.0.0.1:%d" % low})
    eq(d.port, low, "bound port")
    d.wait_log(r"Dropped root")
    echo_ok(d)
    readable(d)
    other = low + 1
    while other < 1024 and not harness.connect_refused(other):
        other += 1
    mark = d.mark()
    d.write_conf(conf_text(server={
        "user": USER, "listen": ["127.0.0.1:%d" % low,
                                 "127.0.0.1:%d" % other]}))
    readable(d)
    d.signal(signal.SIGHUP)
    d.wait_log(r"cannot listen on 127\.0\.0\.1:%d: Permission denied "
               r"\(root was dropped at startup: ports below 1024 can only "
               r"be opened at a restart\)" % other, since=mark)
    d.wait_log(r"Configuration reloaded", since=mark)
    check(d.running(), "daemon exited on reload")
    check(harness.connect_refused(other), "port %d is open" % other)
    echo_ok(d, low)


def test_root_without_user_warns_once():
    d = Daemon()
    echo_ok(d)
    readable(d)
    d.signal(signal.SIGHUP)
    d.wait_log(r"Configuration reloaded")
    warned = d.find_log(r"\[WARNING\].*running as root: set user in "
                        r"\[server\] of giambio\.conf")
    eq(len(warned), 1, "warning lines")
    st = proc_status(d.pid)
    eq(st["Uid"], ["0"] * 4, "Uid line")


def test_reload_user_change():
    uid, _ = user_ids(USER)
    d = Daemon(server={"user": USER})
    d.wait_log(r"Dropped root")
    readable(d)
    d.write_conf(conf_text(server={"user": "daemon"}))
    readable(d)
    d.signal(signal.SIGHUP)
    d.wait_log(r"reload: user changed from %s to daemon: giambiod changes "
               r"users only at startup; restart it to apply that" % USER)
    eq(proc_status(d.pid)["Uid"], [str(uid)] * 4, "Uid line after reload")
    echo_ok(d)


def setpriv(name):
    uid, gid = user_ids(name)
    return ["setpriv", "--reuid=%d" % uid, "--regid=%d" % gid,
            "--clear-groups"]


def test_not_root_other_user():
    """Started as nobody with user = daemon: an error, exit 78, nothing
    opened."""
    path = write_conf(conf_text(server={"user": "daemon"}))
    r = run(setpriv(USER) + [GIAMBIOD, "-c", path])
    err = r.stderr.decode()
    eq(r.returncode, 78, "exit status (stderr %r)" % err)
    check(re.search(r"cannot switch to user daemon \(uid \d+\): giambiod "
                    r"was started as uid %d, not root" % user_ids(USER)[0],
                    err), "no error line: %r" % err)
    check("serving" not in err, "it listened: %r" % err)


def test_not_root_same_user():
    """Started as the user it names: nothing to drop, it serves."""
    path = write_conf(conf_text(server={"user": USER}))
    port = harness.free_port()
    p = harness.subprocess.Popen(
        setpriv(USER) + [GIAMBIOD, "-c", path, "--listen",
                         "127.0.0.1:%d" % port],
        stderr=harness.subprocess.PIPE, preexec_fn=harness._child_setup)
    try:
        harness.wait_until(lambda: not harness.connect_refused(port),
                           what="listening as %s" % USER)
        c = harness.Client("127.0.0.1", port)
        c.expect(b"Welcome to the server pal!\n")
        c.close()
    finally:
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=5)
    eq(p.returncode, 0, "exit status")
    err = err.decode()
    check("Dropped root" not in err and "running as root" not in err,
          "unexpected privilege line: %r" % err)


# ----------------------------------------------------------- any user

def write_conf(text):
    """A configuration file that a daemon started as nobody can read."""
    path = os.path.join(harness.tempdir(), "giambio.conf")
    with open(path, "w") as f:
        f.write(text)
    make_readable(os.path.dirname(path), path)
    return path


def test_unknown_user():
    path = write_conf("[server]\nlisten = 127.0.0.1:0\n"
                      "user = no-such-user-here\n")
    want = ("giambiod: %s:3: server.user: bad value \"no-such-user-here\"; "
            "expected the name of an existing user other than root\n"
            "giambiod: 1 error in %s\n" % (path, path))
    for args in (["-t"], []):
        r = run([GIAMBIOD, "-c", path] + args)
        eq(r.returncode, 78, "exit status with %s" % args)
        eq(r.stderr.decode(), want, "stderr with %s" % args)


def test_user_root_refused():
    path = write_conf("[server]\nuser = root\n")
    r = run([GIAMBIOD, "-t", "-c", path])
    eq(r.returncode, 78, "exit status")
    check("server.user: bad value \"root\"" in r.stderr.decode(),
          "stderr %r" % r.stderr)


def test_shipped_files_agree():
    """The shipped units run giambiod as a dynamic user with setuid calls
    denied, so the shipped giambio.conf must leave user unset."""
    here = os.path.dirname(os.path.abspath(__file__))
    units = os.environ.get("UNITS_SRCDIR") or os.path.join(
        here, "..", "..", "packaging")
    with open(os.path.join(units, "..", "conf", "giambio.conf")) as f:
        conf = f.read()
    check(re.search(r"^#user = ", conf, re.M), "user not documented")
    check(not re.search(r"^\s*user\s*[=:]", conf, re.M),
          "the shipped giambio.conf sets user")
    for unit in ("giambiod.service.in", "giambiod-socket.service.in"):
        with open(os.path.join(units, unit)) as f:
            text = f.read()
        check(re.search(r"^DynamicUser=yes$", text, re.M),
              "%s: no DynamicUser=yes" % unit)
        check(re.search(r"^SystemCallFilter=~.*@setuid", text,
                        re.M | re.S), "%s: @setuid not denied" % unit)


ROOT_TESTS = [test_drop_to_user, test_privileged_port_then_reload,
              test_root_without_user_warns_once, test_reload_user_change,
              test_not_root_other_user, test_not_root_same_user]
OTHER_TESTS = [test_unknown_user, test_user_root_refused,
               test_shipped_files_agree]

if __name__ == "__main__":
    tests = OTHER_TESTS
    skipped = 0
    if os.geteuid() == 0:
        tests = ROOT_TESTS + OTHER_TESTS
    else:
        for t in ROOT_TESTS:
            if not sys.argv[1:] or t.__name__ in sys.argv[1:]:
                print("SKIP %s: not root" % t.__name__, flush=True)
                skipped += 1
        if sys.argv[1:]:
            sys.argv[1:] = [a for a in sys.argv[1:]
                            if a not in {t.__name__ for t in ROOT_TESTS}]
    try:
        harness.main(tests)
    except SystemExit as e:
        # 77: make check's SKIP, when nothing failed but tests were skipped.
        sys.exit(77 if e.code == 0 and skipped else e.code)
