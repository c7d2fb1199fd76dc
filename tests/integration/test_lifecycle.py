"""The target's own life goes on during a CPU profile (exit and exec are in
test_attach_cpu.py):
 - it forks: the children are never traced, while pprofc runs or after,
   and keep running;
 - it crashes (SIGSEGV in a thread): the signal is delivered exactly once,
   the process dies by it as it would untraced, and pprofc writes a valid
   profile and says what happened.
The fixture (tests/targets/lifecycle.c) forks or crashes on SIGUSR1, sent
once pprofc traces every thread, so no step depends on timing.  Each test
prints a "COUNT name key=value..." line."""
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from fixture import (PPROFC, Fixture, engine_args, sampling, check, check_untouched, count_line, done,  # noqa: E402
                     profile_problem, require_ptrace, tids, traced_by, tracer_of, wait_for)


def ticks(path):
    """The tick count in a progress file ("TICKS" or "PID TICKS")."""
    try:
        with open(path) as f:
            return int(f.read().split()[-1])
    except (FileNotFoundError, ValueError, IndexError):
        return 0


def child_pid(path):
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return 0


def advances(path):
    before = ticks(path)
    return wait_for(lambda: ticks(path) > before, 20, 0.005)


def start_profile(fx, out):
    """A 1000 Hz CPU profile of fx that runs until SIGINT; returns once
    pprofc's engine runs."""
    p = subprocess.Popen([PPROFC, "attach", str(fx.pid), "--hz", "1000", "--seconds", "600",
                          "-o", out] + engine_args(), stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    check(wait_for(lambda: sampling(p.pid), 60, 0.01), "pprofc never attached")
    return p


def fork_round(fx, k, pprofc_pid):
    """Makes the target fork child k while profiled: (child, traced, stuck)."""
    path = "%s.child.%d" % (fx.progress, k)
    os.kill(fx.pid, signal.SIGUSR1)
    child = wait_for(lambda: child_pid(path), 30, 0.005)
    check(child, "fork %d: no child appeared" % k)
    if not child:
        return 0, 0, 1
    traced = any(tracer_of(child, t) != 0 for t in tids(child))
    check(not traced, "fork %d: child %d traced while pprofc runs" % (k, child))
    stuck = not advances(path)
    check(not stuck, "fork %d: child %d does not run" % (k, child))
    check(sampling(pprofc_pid), "fork %d: the parent is no longer profiled" % k)
    return child, int(traced), int(stuck)


def test_fork(forks=5):
    with Fixture("lifecycle", args=["fork"], progress=True) as fx:
        out = fx.progress + ".pb.gz"
        p = start_profile(fx, out)
        children, traced, stuck = [], 0, 0
        try:
            for k in range(1, forks + 1):
                child, t, s = fork_round(fx, k, p.pid)
                children += [child] if child else []
                traced, stuck = traced + t, stuck + s
            still = p.poll() is None
            check(still, "pprofc ended before the forks were checked")
            p.send_signal(signal.SIGINT)
            _, err = p.communicate(timeout=120)
            check(p.returncode == 0, "profile of a forking target: %d %r" % (p.returncode, err))
            problem = profile_problem(out)
            check(problem == "", "profile of a forking target: %s" % problem)
            after_traced = after_stuck = 0
            for k, child in enumerate(children, 1):
                t = any(tracer_of(child, x) != 0 for x in tids(child))
                s = not advances("%s.child.%d" % (fx.progress, k))
                check(not t and not s, "child %d after pprofc: traced %d, stuck %d" % (child, t, s))
                after_traced, after_stuck = after_traced + t, after_stuck + s
            check_untouched(fx.pid, label="fork parent")
            parent_moves = advances(fx.progress)
            check(parent_moves, "the forking target made no progress after pprofc")
        finally:
            for child in children:
                try:
                    os.kill(child, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        count_line("lifecycle-fork", tried=forks, children_seen=len(children),
                   child_traced_during=traced, child_stuck_during=stuck,
                   child_traced_after=after_traced, child_stuck_after=after_stuck,
                   parent_no_progress=int(not parent_moves), bad_profile=int(problem != ""))


def segv_count(fx):
    try:
        with open(fx.progress + ".segv") as f:
            return int(f.read().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return 0


def crash_round(i):
    """One crash during a profile: a dict of what went wrong (0 or 1 each)."""
    with Fixture("lifecycle", args=["crash"], progress=True) as fx:
        out = fx.progress + ".pb.gz"
        p = start_profile(fx, out)
        # Let it sample a while first (ten of the main thread's ticks).
        start = ticks(fx.progress)
        check(wait_for(lambda: ticks(fx.progress) >= start + 10, 60, 0.005), "crash %d: no progress" % i)
        os.kill(fx.pid, signal.SIGUSR1)
        # pprofc first: the dead target stays a zombie, with its exit
        # status in /proc, until we reap it (pprofc does not trace it, so
        # /proc is where it learns how the target ended).
        try:
            _, err = p.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            p.kill()
            _, err = p.communicate()
        try:
            status = fx.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            status = None
        problem = profile_problem(out) if p.returncode == 0 else "exit %d" % p.returncode
        said = "PID %d was killed by signal 11 (Segmentation fault)" % fx.pid in err
        bad = {"not_sigsegv": int(status != -signal.SIGSEGV),
               "handler_runs_not_1": int(segv_count(fx) != 1),
               "bad_profile": int(problem != ""), "no_message": int(not said)}
        check(status == -signal.SIGSEGV, "crash %d: target status %r, want killed by SIGSEGV" % (i, status))
        check(segv_count(fx) == 1, "crash %d: SIGSEGV handler ran %d times" % (i, segv_count(fx)))
        check(problem == "", "crash %d: %s (%r)" % (i, problem, err))
        check(said, "crash %d: no clear message: %r" % (i, err))
        return bad


def test_crash(rounds=10):
    totals = {}
    for i in range(rounds):
        for key, v in crash_round(i).items():
            totals[key] = totals.get(key, 0) + v
    count_line("lifecycle-crash", tried=rounds, **totals)


if __name__ == "__main__":
    require_ptrace()
    t0 = time.monotonic()
    test_fork()
    test_crash()
    print("lifecycle tests took %.1f s" % (time.monotonic() - t0))
    done()
