"""The systemd units in packaging/: systemd-analyze verify is clean for each,
"systemd-analyze security" rates giambiod.service at most MAX_EXPOSURE and
the socket-activated giambiod-socket.service lower still, the two services
share their sandbox, and giambiod runs under the restrictions that can be
applied without systemd as PID 1 (another user, no capabilities,
no_new_privs, the units' LimitNOFILE=, and, for the socket-activated unit,
a network namespace of its own while serving sockets passed from outside).

Environment (set by make check): UNITS_SRCDIR (the source packaging/),
UNITS_BUILDDIR (the build packaging/, holding the generated .service
files), GIAMBIOD (the built binary). Standard library only. Without
systemd-analyze it prints a SKIP line and exits 0.

Output on stdout: "PASS name", "FAIL name: reason" or "SKIP name: reason"
per test, then "N passed, M failed". Details go to stderr.
"""

import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.join(HERE, "..", "..")
SRCDIR = os.environ.get("UNITS_SRCDIR") or os.path.join(TOP, "packaging")
BUILDDIR = os.environ.get("UNITS_BUILDDIR") or SRCDIR
GIAMBIOD = os.path.abspath(os.environ.get("GIAMBIOD") or
                           os.path.join(TOP, "src", "giambiod"))

# The target for giambiod.service; giambiod-socket.service must be
# strictly lower.
MAX_EXPOSURE = 1.1

SERVICE = "giambiod.service"
SOCKET = "giambiod.socket"
ACTIVATED = "giambiod-socket.service"
UNIT_NAMES = (SERVICE, SOCKET, ACTIVATED)

CALL_TIMEOUT = 30      # any one systemd-analyze call
TEST_TIMEOUT = 60      # any one test

ANALYZE = shutil.which("systemd-analyze")
ENV = dict(os.environ, SYSTEMD_PAGER="cat", SYSTEMD_COLORS="0", LC_ALL="C.UTF-8",
           SYSTEMD_LOG_COLOR="0")


class Skip(Exception):
    pass


# ------------------------------------------------------------ unit files

def substitute(text, sbindir, sysconfdir):
    return text.replace("@sbindir@", sbindir).replace("@sysconfdir@",
                                                      sysconfdir)


_noted = set()


def generated_text(name):
    """The unit as installed: the build directory's generated file, or, for
    a unit with a .in template that make has not generated (yet), the
    template with the default paths."""
    built = os.path.join(BUILDDIR, name)
    if os.path.exists(built):
        with open(built) as f:
            return f.read()
    src = os.path.join(SRCDIR, name)
    if os.path.exists(src):
        with open(src) as f:
            return f.read()
    tmpl = src + ".in"
    if os.path.exists(tmpl):
        sbindir, sysconfdir = generated_dirs()
        if name not in _noted:
            _noted.add(name)
            sys.stderr.write("# %s not generated in %s: using %s.in with "
                             "sbindir %s, sysconfdir %s\n" % (
                                 name, BUILDDIR, name, sbindir, sysconfdir))
        with open(tmpl) as f:
            return substitute(f.read(), sbindir, sysconfdir)
    raise AssertionError("no %s in %s or %s" % (name, BUILDDIR, SRCDIR))


def generated_dirs():
    """sbindir and sysconfdir as make substituted them into the generated
    giambiod.service; /usr/sbin and /etc without one."""
    built = os.path.join(BUILDDIR, SERVICE)
    if os.path.exists(built):
        with open(built) as f:
            start = values(parse_unit(f.read()), "Service", "ExecStart")
        m = start and re.match(r"[@\-:+!]*(\S+)/giambiod\s+-c\s+(\S+)/giambio/"
                               r"giambio\.conf\b", start[0])
        if m:
            return m.group(1), m.group(2)
    return "/usr/sbin", "/etc"


def parse_unit(text):
    """{section: [(key, value), ...]}, comments and blank lines dropped,
    continuation lines joined."""
    sections, cur, pending = {}, None, ""
    for raw in text.splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line[0] in "#;":
            continue
        m = re.match(r"^\[(.+)\]$", line)
        if m:
            cur = sections.setdefault(m.group(1), [])
            continue
        key, _, value = line.partition("=")
        if cur is None:
            raise AssertionError("line outside any section: %r" % line)
        cur.append((key.strip(), value.strip()))
    return sections


def values(sections, section, key):
    return [v for k, v in sections.get(section, []) if k == key]


def exec_binary(sections):
    """The executable of ExecStart= (without the prefix characters)."""
    starts = values(sections, "Service", "ExecStart")
    if len(starts) != 1:
        raise AssertionError("expected one ExecStart=, got %r" % starts)
    return starts[0].lstrip("@-:+!").split()[0]


_workdir = None


def workdir():
    """A temp directory with a copy of every unit whose ExecStart= runs the
    built giambiod (verify checks that the binary exists), and built man
    pages when there are any."""
    global _workdir
    if _workdir:
        return _workdir
    d = tempfile.mkdtemp(prefix="giambiod-units-")
    for name in UNIT_NAMES:
        text = generated_text(name)
        if name.endswith(".service"):
            binary = exec_binary(parse_unit(text))
            text = re.sub(r"^(ExecStart=[@\-:+!]*)%s" % re.escape(binary),
                          lambda m: m.group(1) + GIAMBIOD, text, flags=re.M)
        with open(os.path.join(d, name), "w") as f:
            f.write(text)
    _workdir = d
    return d


def man_tree(d):
    """A MANPATH directory with giambiod(8) and giambio.conf(5), if make
    built them (in the build tree, or in the source tree of a tarball)."""
    pages = {"giambiod.8": "man8", "giambio.conf.5": "man5"}
    found = {}
    for top in (os.path.join(BUILDDIR, ".."), os.path.join(SRCDIR, "..")):
        for page in pages:
            p = os.path.join(top, page)
            if page not in found and os.path.isfile(p):
                found[page] = p
    if len(found) != len(pages) or not shutil.which("man"):
        return None
    root = os.path.join(d, "man")
    for page, sub in pages.items():
        os.makedirs(os.path.join(root, sub), exist_ok=True)
        shutil.copy(found[page], os.path.join(root, sub, page))
    return root


def run(argv, env=None, timeout=CALL_TIMEOUT):
    try:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env=env or ENV, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError("%s: no answer within %ds" % (
            " ".join(argv), timeout))
    out = (p.stdout + p.stderr).decode("utf-8", "replace")
    return p.returncode, out


# ---------------------------------------------------------------- verify

# A line about some other unit file or unit, which verify may print when
# it loads the host's units that ours depend on (multi-user.target,
# sockets.target...): not ours to fix. Everything else counts.
OTHER_UNIT_RE = re.compile(
    r"^(?:(/\S+?)(?::\d+)?|([\w@\\.:-]+\.(?:service|socket|target|mount|"
    r"automount|swap|path|timer|slice|scope|device))):\s")


def unrelated(line, d):
    if d in line or any(n in line for n in UNIT_NAMES) or GIAMBIOD in line:
        return False
    return bool(OTHER_UNIT_RE.match(line))


def verify(name):
    d = workdir()
    env = dict(ENV)
    man = man_tree(d)
    argv = [ANALYZE, "verify"]
    if man:
        env["MANPATH"] = man
        argv.append("--man=yes")
    else:
        sys.stderr.write("# %s: man pages not built or no man(1): "
                         "--man=no\n" % name)
        argv.append("--man=no")
    rc, out = run(argv + [os.path.join(d, name)], env=env)
    ours = []
    for line in out.splitlines():
        if not line.strip():
            continue
        if unrelated(line, d):
            sys.stderr.write("# ignored, about another unit: %s\n" % line)
        else:
            ours.append(line)
    if rc != 0 or ours:
        raise AssertionError("systemd-analyze verify %s: status %d: %s" % (
            name, rc, " | ".join(ours) or out.strip()))


def test_verify_service():
    verify(SERVICE)


def test_verify_socket():
    verify(SOCKET)


def test_verify_activated_service():
    verify(ACTIVATED)


# -------------------------------------------------------------- security

EXPOSURE_RE = re.compile(r"Overall exposure level for (\S+):\s*(\d+(?:\.\d+)?)")
_exposures = {}


def exposure(name):
    """systemd-analyze security's overall exposure level for the unit."""
    if name in _exposures:
        return _exposures[name]
    path = os.path.join(workdir(), name)
    rc, out = run([ANALYZE, "security", "--offline=true", "--no-pager", path])
    m = EXPOSURE_RE.search(out)
    if not m:
        raise AssertionError("systemd-analyze security %s (status %d) printed "
                             "no exposure level: %s" % (
                                 name, rc, out.strip()[-300:]))
    value = float(m.group(2))
    # What still counts against the unit, for the log.
    bad = [l.strip() for l in out.splitlines() if l.startswith("\u2717")]
    sys.stderr.write("# %s: exposure %.1f; left:\n%s\n" % (
        name, value, "\n".join("#   " + re.sub(r"\s{2,}", "  ", l)
                               for l in bad)))
    _exposures[name] = value
    return value


def test_security_service():
    e = exposure(SERVICE)
    if e > MAX_EXPOSURE + 1e-9:
        raise AssertionError("%s: exposure %.1f, above %.1f" % (
            SERVICE, e, MAX_EXPOSURE))


def test_security_activated_lower():
    e, base = exposure(ACTIVATED), exposure(SERVICE)
    if not e < base - 1e-9:
        raise AssertionError("%s: exposure %.1f, not below %s's %.1f" % (
            ACTIVATED, e, SERVICE, base))


# ------------------------------------------------------------ consistency

# Where giambiod-socket.service may differ from giambiod.service: it has no
# network, and it is tied to its socket.
ACTIVATED_ONLY = {"PrivateNetwork", "IPAddressDeny", "IPAddressAllow"}
DIFFERENT = {"RestrictAddressFamilies"}


def test_units_consistent():
    svc = parse_unit(generated_text(SERVICE))
    act = parse_unit(generated_text(ACTIVATED))
    sock = parse_unit(generated_text(SOCKET))
    problems = []
    # The socket starts the activated service, and conflicts with the plain
    # one (both would use port 25000).
    if values(sock, "Socket", "Service") != [ACTIVATED]:
        problems.append("%s: Service= is %r, not %s" % (
            SOCKET, values(sock, "Socket", "Service"), ACTIVATED))
    if SERVICE not in " ".join(values(sock, "Unit", "Conflicts")).split():
        problems.append("%s does not conflict with %s" % (SOCKET, SERVICE))
    if not values(sock, "Socket", "ListenStream"):
        problems.append("%s has no ListenStream=" % SOCKET)
    # The same daemon, command line and sandbox.
    s_items, a_items = svc.get("Service", []), act.get("Service", [])
    for key, value in s_items:
        if key in DIFFERENT:
            continue
        if (key, value) not in a_items:
            problems.append("%s has %s=%s, %s has not" % (
                SERVICE, key, value, ACTIVATED))
    for key, value in a_items:
        if key in DIFFERENT or key in ACTIVATED_ONLY:
            continue
        if (key, value) not in s_items:
            problems.append("%s has %s=%s, %s has not" % (
                ACTIVATED, key, value, SERVICE))
    # No more address families than the plain service, and no IP sockets.
    fam = lambda u: set(" ".join(values(u, "Service",
                                        "RestrictAddressFamilies")).split())
    if not fam(act) or not fam(act) <= fam(svc) or fam(act) & {"AF_INET",
                                                               "AF_INET6"}:
        problems.append("%s: RestrictAddressFamilies %s (service: %s)" % (
            ACTIVATED, sorted(fam(act)), sorted(fam(svc))))
    for name, u in ((SERVICE, svc), (ACTIVATED, act)):
        if values(u, "Service", "Type") != ["notify"]:
            problems.append("%s: not Type=notify" % name)
        if "@" in " ".join(values(u, "Service", "ExecStart")):
            problems.append("%s: ExecStart= not substituted: %r" % (
                name, values(u, "Service", "ExecStart")))
        if not exec_binary(u).startswith("/") or \
                not exec_binary(u).endswith("/giambiod"):
            problems.append("%s: ExecStart= runs %r" % (name, exec_binary(u)))
    if problems:
        raise AssertionError("; ".join(problems))


# ---------------------------------------------------- running sandboxed

def limit_nofile():
    v = values(parse_unit(generated_text(SERVICE)), "Service", "LimitNOFILE")
    return v[-1] if v else None


class Sandbox:
    """The command prefix that runs giambiod the way the units do, as far
    as that works without systemd: as root, another user (DynamicUser=),
    no capabilities at all (CapabilityBoundingSet=), no_new_privs
    (NoNewPrivileges=), the unit's LimitNOFILE=, and with netns, a network
    namespace of its own (PrivateNetwork=). Not root, it stays our user,
    and the network namespace comes with a user namespace (unshare -r),
    inside which it drops every capability."""

    def __init__(self, netns=False):
        if not shutil.which("setpriv"):
            raise Skip("no setpriv (util-linux)")
        root = os.geteuid() == 0
        self.uid = 65534 if root else os.geteuid()
        self.netns = netns
        self.prefix = []
        if netns:
            ns = ["unshare", "-n"] if root else ["unshare", "-r", "-n"]
            if not shutil.which("unshare") or subprocess.run(
                    ns + ["true"], stderr=subprocess.DEVNULL,
                    timeout=CALL_TIMEOUT).returncode != 0:
                raise Skip("cannot create a network namespace here (%s)" %
                           " ".join(ns))
            self.prefix += ns + ["--"]
        n = limit_nofile()
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        self.nofile = None
        if n and n.isdigit() and shutil.which("prlimit") and (
                root or hard == resource.RLIM_INFINITY or hard >= int(n)):
            self.nofile = n
            self.prefix += ["prlimit", "--nofile=%s:%s" % (n, n), "--"]
        self.prefix.append("setpriv")
        if root:
            self.prefix += ["--reuid=65534", "--regid=65534", "--clear-groups"]
        # Dropping the bounding set needs CAP_SETPCAP: root, or root of the
        # user namespace.
        self.all_caps_dropped = root or netns
        if self.all_caps_dropped:
            self.prefix += ["--inh-caps=-all", "--bounding-set=-all"]
        self.prefix += ["--no-new-privs", "--pdeathsig=KILL", "--"]

    def check(self, pid):
        """The running daemon really is sandboxed."""
        with open("/proc/%d/status" % pid) as f:
            st = dict(l.rstrip("\n").split(":\t", 1) for l in f
                      if ":\t" in l)
        problems = []
        for key in ("Uid", "Gid") if self.uid == 65534 else ("Uid",):
            if set(st.get(key, "").split()) != {str(self.uid)}:
                problems.append("%s %r" % (key, st.get(key)))
        caps = ["CapInh", "CapPrm", "CapEff", "CapAmb"]
        if self.all_caps_dropped:
            caps.append("CapBnd")
        for key in caps:
            if key in st and int(st[key], 16) != 0:
                problems.append("%s %s" % (key, st[key]))
        if st.get("NoNewPrivs", "1").strip() != "1":
            problems.append("NoNewPrivs %s" % st.get("NoNewPrivs"))
        if self.nofile:
            with open("/proc/%d/limits" % pid) as f:
                line = [l for l in f if l.startswith("Max open files")]
            if not line or line[0].split()[3:5] != [self.nofile] * 2:
                problems.append("open files limit %r, not %s" % (
                    line, self.nofile))
        ours = os.readlink("/proc/self/ns/net")
        theirs = os.readlink("/proc/%d/ns/net" % pid)
        if self.netns != (ours != theirs):
            problems.append("network namespace %s (ours: %s)" % (theirs, ours))
        if problems:
            raise AssertionError("giambiod not sandboxed as expected: " +
                                 ", ".join(problems))


_tmpdirs = []


def readable_conf(text):
    """A config file that the unprivileged user can read."""
    d = tempfile.mkdtemp(prefix="giambiod-units-conf-")
    _tmpdirs.append(d)
    os.chmod(d, 0o755)
    path = os.path.join(d, "giambio.conf")
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o644)
    return path


def expect(sock, want, timeout=5.0):
    sock.settimeout(timeout)
    got = b""
    deadline = time.monotonic() + timeout
    while want not in got and time.monotonic() < deadline:
        try:
            chunk = sock.recv(4096)
        except socket.timeout:
            break
        if not chunk:
            break
        got += chunk
    if want not in got:
        raise AssertionError("expected %r, got %r" % (want, got))


def echo_session(port, host="127.0.0.1"):
    deadline = time.monotonic() + 5
    while True:
        try:
            c = socket.create_connection((host, port), timeout=5)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    with c:
        c.sendall(b"sandboxed\n")
        expect(c, b"Got: sandboxed\n")


class Proc:
    def __init__(self, argv, pass_fds=()):
        self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, pass_fds=pass_fds,
                                  cwd="/", env=self.env())
        _procs.append(self)

    @staticmethod
    def env():
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("LISTEN_", "NOTIFY_", "WATCHDOG_"))}
        env.pop("JOURNAL_STREAM", None)
        return env

    def wait_log(self, pattern, timeout=5.0):
        """Reads stderr lines until one matches; returns the match."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        self.lines = getattr(self, "lines", [])
        fd = self.p.stderr.fileno()
        os.set_blocking(fd, False)
        buf = b""
        while time.monotonic() < deadline:
            try:
                chunk = os.read(fd, 4096)
            except BlockingIOError:
                time.sleep(0.02)
                continue
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                line = line.decode("utf-8", "replace")
                self.lines.append(line)
                m = rx.search(line)
                if m:
                    return m
        raise AssertionError("no log line matching %r; log: %s" % (
            pattern, " | ".join(self.lines[-10:])))

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        try:
            rc = self.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait(timeout=5)
            raise AssertionError("giambiod did not exit on SIGTERM")
        os.set_blocking(self.p.stderr.fileno(), True)
        rest = self.p.stderr.read().decode("utf-8", "replace")
        if rc != 0:
            raise AssertionError("giambiod exited %d: %s" % (
                rc, " | ".join(getattr(self, "lines", [])[-5:] +
                               rest.splitlines()[-5:])))


_procs = []


def test_sandbox_service():
    """As giambiod.service runs it: another user, no capabilities, no new
    privileges, the unit's LimitNOFILE=, cwd /; it listens (no capability
    needed for its port), serves, reloads and drains."""
    sb = Sandbox()
    conf = readable_conf("[server]\nlisten = 127.0.0.1:0\n"
                         "[limits]\nshutdown_timeout = 1s\n")
    d = Proc(sb.prefix + [GIAMBIOD, "-c", conf])
    m = d.wait_log(r"serving asynchronously at 127\.0\.0\.1:(\d+)")
    sb.check(d.p.pid)
    echo_session(int(m.group(1)))
    d.p.send_signal(signal.SIGHUP)
    d.wait_log(r"Configuration reloaded")
    echo_session(int(m.group(1)))
    d.stop()


def test_sandbox_activated():
    """As giambiod-socket.service runs it: the sandbox above, in a network
    namespace of its own (PrivateNetwork=), serving a socket bound outside
    it and passed the way systemd passes it."""
    version = subprocess.run([GIAMBIOD, "-V"], capture_output=True, text=True,
                             timeout=5).stdout
    if "built without systemd" in version:
        raise Skip("this giambiod is built without systemd: it ignores "
                   "LISTEN_FDS (test_systemd.py checks that)")
    sb = Sandbox(netns=True)
    # Port 1 needs a capability it does not have, and its network has no
    # 127.0.0.1: had it opened the configured address instead of the
    # passed socket, it would fail.
    conf = readable_conf("[server]\nlisten = 127.0.0.1:1\n"
                         "[limits]\nshutdown_timeout = 1s\n")
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(16)
    port = lsock.getsockname()[1]
    saved = os.dup(3) if _fd_open(3) else None
    try:
        os.dup2(lsock.fileno(), 3)     # inheritable
        # LISTEN_PID is the shell's pid, which unshare, prlimit and setpriv
        # keep as they exec each other and then giambiod.
        cmd = " ".join("'%s'" % a for a in sb.prefix + [GIAMBIOD, "-c", conf])
        d = Proc(["sh", "-c", "LISTEN_PID=$$ LISTEN_FDS=1 "
                  "LISTEN_FDNAMES=echo; export LISTEN_PID LISTEN_FDS "
                  "LISTEN_FDNAMES; exec " + cmd], pass_fds=(3,))
    finally:
        if saved is not None:
            os.dup2(saved, 3)
            os.close(saved)
        else:
            os.close(3)
        lsock.close()
    d.wait_log(r"Socket activation: descriptor 3 \(echo\)")
    sb.check(d.p.pid)
    echo_session(port)
    echo_session(port)
    d.stop()


def _fd_open(fd):
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


# ------------------------------------------------------------------ main

TESTS = [
    test_verify_service,
    test_verify_socket,
    test_verify_activated_service,
    test_security_service,
    test_security_activated_lower,
    test_units_consistent,
    test_sandbox_service,
    test_sandbox_activated,
]


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout("test took longer than %ds" % TEST_TIMEOUT)


def _kill_procs():
    for pr in _procs:
        if pr.p.poll() is None:
            pr.p.kill()
            try:
                pr.p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
    del _procs[:]


def main():
    if not ANALYZE:
        print("SKIP test_units: systemd-analyze is not installed "
              "(Debian: apt-get install systemd)")
        print("0 passed, 0 failed")
        return 0
    only = set(sys.argv[1:])
    signal.signal(signal.SIGALRM, _alarm)
    passed = failed = 0
    try:
        for t in TESTS:
            if only and t.__name__ not in only:
                continue
            signal.alarm(TEST_TIMEOUT)
            try:
                t()
                print("PASS %s" % t.__name__, flush=True)
                passed += 1
            except Skip as e:
                print("SKIP %s: %s" % (t.__name__, e), flush=True)
            except Exception as e:  # report, then go on
                sys.stderr.write("# %s:\n%s" % (t.__name__,
                                                traceback.format_exc()))
                print("FAIL %s: %s" % (t.__name__,
                                       str(e).split("\n")[0]), flush=True)
                failed += 1
            finally:
                signal.alarm(0)
                _kill_procs()
    finally:
        for d in _tmpdirs + ([_workdir] if _workdir else []):
            shutil.rmtree(d, ignore_errors=True)
    print("%d passed, %d failed" % (passed, failed), flush=True)
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
