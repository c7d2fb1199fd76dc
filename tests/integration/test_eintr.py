"""Blocked threads are not disturbed (issue 4): a ptrace stop makes
epoll_wait, semop, sigwaitinfo and io_getevents fail with EINTR, so pprofc
reads such threads without stopping them.

The eintr fixture (tests/targets/eintr.c) has one thread blocked in each of
those calls, counting the EINTR returns it sees.  After dumps (also with
--stop-all, where pprofc repairs the calls it interrupted) and 5 s wall,
block and CPU profiles at 100 Hz every count is still 0.  The same wall
profile with --force-stop, which stops every thread as plain ptrace samplers
do, makes every count grow: the check can fail.
"""
import os
import shutil
import subprocess
import tempfile

from fixture import (Fixture, check, check_untouched, done, pprofc, require_ptrace,
                     wait_for)

CALLS = ("epoll_wait", "semop", "sigwaitinfo", "io_getevents")


def progress(fx):
    """(ticks, {call: EINTR count}) from the fixture's progress file."""
    try:
        with open(fx.progress) as f:
            parts = [int(p) for p in f.read().split()]
        return parts[0], dict(zip(CALLS, parts[1:5]))
    except (OSError, ValueError, IndexError):
        return 0, {}


def settled_counts(fx):
    """The EINTR counts once the fixture has written its file again (a call
    failed by pprofc is counted before the next tick's write)."""
    before = progress(fx)[0]
    check(wait_for(lambda: progress(fx)[0] > before + 1, timeout=20),
          "the fixture made no progress after pprofc")
    return progress(fx)[1]


def gopprof_warnings(path):
    r = subprocess.run(["go", "tool", "pprof", "-top", path], capture_output=True, text=True,
                       timeout=120)
    return r.returncode, r.stderr.strip()


def test_not_disturbed(work):
    with Fixture("eintr", progress=True) as fx:
        for extra in ((), ("--format=json",), ("--debug=1",), ("--stop-all",)):
            r = pprofc("dump-threads", *extra, fx.pid)
            check(r.returncode == 0, "dump-threads %s: %s" % (" ".join(extra), r.stderr))
            if not extra:
                for name in ("epoller", "semwaiter", "sigwaiter", "aiowaiter"):
                    check('"%s"' % name in r.stdout, "thread %s missing from the dump" % name)
        for profile in ("wall", "block", "cpu"):
            out = os.path.join(work, profile + ".pb.gz")
            r = pprofc("attach", fx.pid, "--profile", profile, "--seconds", "5", "--hz", "100",
                       "-o", out)
            check(r.returncode == 0, "%s profile: %s" % (profile, r.stderr))
            rc, err = gopprof_warnings(out)
            check(rc == 0 and err == "", "%s profile: go tool pprof said %r" % (profile, err))
        counts = settled_counts(fx)
        check(len(counts) == len(CALLS), "progress file unreadable: %r" % counts)
        for call in CALLS:
            check(counts.get(call) == 0, "%s failed with EINTR %s times after dumps and profiles"
                  % (call, counts.get(call)))
        check_untouched(fx.pid, label="eintr")


def test_force_stop_disturbs(work):
    """--force-stop interrupts blocked threads too: the counts grow, which
    shows the check above can fail."""
    with Fixture("eintr", progress=True) as fx:
        out = os.path.join(work, "forced.pb.gz")
        r = pprofc("attach", fx.pid, "--profile", "wall", "--force-stop", "--seconds", "1",
                   "--hz", "100", "-o", out)
        check(r.returncode == 0, "wall --force-stop: %s" % r.stderr)
        rc, err = gopprof_warnings(out)
        check(rc == 0 and err == "", "wall --force-stop profile: go tool pprof said %r" % err)
        counts = settled_counts(fx)
        for call in CALLS:
            check(counts.get(call, 0) > 0,
                  "--force-stop did not make %s fail with EINTR (%r): the check cannot fail"
                  % (call, counts))
        check_untouched(fx.pid, label="eintr force-stop")


def main():
    require_ptrace()
    work = tempfile.mkdtemp(prefix="pprofc-eintr-")
    try:
        test_not_disturbed(work)
        test_force_stop_disturbs(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    done()


if __name__ == "__main__":
    main()
