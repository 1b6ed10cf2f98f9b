"""test_harness.py - the harness's valgrind mode (GIAMBIOD_VALGRIND=1):
giambiod, and giambiod alone, is run under valgrind memcheck with the
options that make a leak or an error fail the test, and time bounds are
scaled. Without GIAMBIOD_VALGRIND, the same tests check that nothing is
wrapped or scaled. Standard library only."""

import os

import harness
from harness import Daemon, GIAMBIOD, check, eq


def test_wrap():
    """Only giambiod is wrapped, wherever it is in the command line."""
    argv = ["/usr/bin/systemd-socket-activate", "-l", "127.0.0.1:0",
            GIAMBIOD, "-c", "x.conf"]
    got = harness.wrap(argv)
    if not harness.VALGRIND:
        eq(got, argv, "argv without GIAMBIOD_VALGRIND")
        return
    vg = harness.VALGRIND_ARGV
    eq(got, argv[:3] + vg + argv[3:], "argv under valgrind")
    check(os.path.basename(vg[0]) == "valgrind", "not valgrind: %r" % vg)
    for opt in ("--error-exitcode=%d" % harness.VALGRIND_STATUS,
                "--leak-check=full",
                "--errors-for-leak-kinds=definite,indirect"):
        check(opt in vg, "valgrind runs without %s" % opt)
    eq(harness.wrap(["nc", "-N", "127.0.0.1", "1"]),
       ["nc", "-N", "127.0.0.1", "1"], "another program")


def test_scaled():
    want = 8.0 if harness.VALGRIND else 1.0
    if os.environ.get("GIAMBIOD_TIME_SCALE"):
        want = float(os.environ["GIAMBIOD_TIME_SCALE"])
    eq(harness.TIME_SCALE, want, "time scale")
    eq(harness.scaled(2.5), 2.5 * want, "scaled(2.5)")
    eq(harness.TEST_TIMEOUT, int(25 * want), "per-test bound")


def test_daemon_runs_under_valgrind():
    """The process the tests talk to and signal is memcheck running
    giambiod (valgrind execs its tool in place: one pid), or giambiod
    itself."""
    d = Daemon()
    exe = os.path.basename(os.readlink("/proc/%d/exe" % d.pid))
    if harness.VALGRIND:
        check(exe.startswith("memcheck-"), "daemon's executable is %s" % exe)
    else:
        eq(exe, os.path.basename(GIAMBIOD), "daemon's executable")
    c = d.connect()
    c.expect(b"Welcome to the server pal!\n")
    c.send(b"hi\n")
    c.expect(b"Got: hi\n")
    eq(d.stop(), 0, "exit status")


if __name__ == "__main__":
    harness.main([test_wrap, test_scaled, test_daemon_runs_under_valgrind])
