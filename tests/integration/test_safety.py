"""The safety invariants of dump-threads, tried on real processes:
 - a target stopped with SIGSTOP stays stopped (job-control stop kept);
 - real-time signals sent during dumps are all delivered, none twice;
 - SIGINT/SIGTERM/SIGHUP to pprofc mid-dump: it exits cleanly, target released;
 - SIGKILL to pprofc mid-dump: the kernel releases the target (PTRACE_SEIZE);
 - a 2000-thread process: every thread dumped, none left stopped."""
import os
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from fixture import (PPROFC, Fixture, by_name, check, check_progress, check_untouched,  # noqa: E402
                     done, dump_json, pprofc, read_progress, require_ptrace, thread_states,
                     tracer_pid, wait_for)


def test_sigstop_kept():
    with Fixture("waits", progress=True) as fx:
        os.kill(fx.pid, signal.SIGSTOP)
        check(wait_for(lambda: all(s == "T" for s in thread_states(fx.pid).values())),
              "fixture did not stop on SIGSTOP")
        d = dump_json(fx.pid)
        th = by_name(d)
        check(th["waits"]["reason"] == "stopped", "stopped main thread reason: %r" % th["waits"]["reason"])
        check(all(t["stack_taken"] and t["complete"] for t in d["threads"]),
              "stopped threads' stacks not taken")
        states = thread_states(fx.pid)
        check(all(s == "T" for s in states.values()), "job-control stop lost after dump: %r" % states)
        check_untouched(fx.pid, allowed_stopped=True, label="sigstop")
        before = read_progress(fx)[0]
        os.kill(fx.pid, signal.SIGCONT)
        check(wait_for(lambda: read_progress(fx)[0] > before), "no progress after SIGCONT")
        check_untouched(fx.pid, label="sigcont")


def test_signals_reinjected(total=300):
    """SIGRTMIN queues: each one sent must be counted exactly once by the
    fixture, however many dumps it arrived during."""
    with Fixture("waits", progress=True) as fx:
        stop = threading.Event()

        def dumps():
            while not stop.is_set():
                pprofc("dump-threads", fx.pid)

        t = threading.Thread(target=dumps)
        t.start()
        try:
            for i in range(total):
                os.kill(fx.pid, signal.SIGRTMIN)
                if i % 10 == 0:
                    time.sleep(0.005)
        finally:
            stop.set()
            t.join()
        got = wait_for(lambda: read_progress(fx)[1] >= total and read_progress(fx)[1], timeout=20)
        time.sleep(0.05)  # a doubled signal would show up right behind the last one
        got = read_progress(fx)[1]
        check(got == total, "sent %d SIGRTMIN during dumps, fixture counted %d" % (total, got))
        check_untouched(fx.pid, label="signals")
        check_progress(fx, "signals")


def catches(pid, sig):
    """Whether process pid has a handler installed for sig."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) & (1 << (sig - 1)))
    except FileNotFoundError:
        pass
    return False


def test_stop_signals_to_pprofc():
    """pprofc interrupted at various moments of a dump of a big process."""
    with Fixture("many_threads", args=["2000"]) as fx:
        for i, sig in enumerate([signal.SIGINT, signal.SIGTERM, signal.SIGHUP] * 4):
            p = subprocess.Popen([PPROFC, "dump-threads", str(fx.pid)], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, text=True)
            # Once pprofc catches the signal (SigCgt), spread the signal over
            # the phases of the dump: prepare, stop, symbolize, write.
            check(wait_for(lambda: catches(p.pid, sig), timeout=30, step=0.001),
                  "pprofc never installed a %s handler" % sig.name)
            time.sleep(0.002 * i)
            p.send_signal(sig)
            try:
                _, err = p.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                check(False, "pprofc did not exit after %s" % sig.name)
                continue
            # Exit 0 (done) or 1 (interrupted, with a message), never death.
            check(p.returncode in (0, 1), "pprofc after %s exited %d (killed by the signal?)"
                  % (sig.name, p.returncode))
            if p.returncode == 1:
                check("interrupted" in err, "message after %s: %r" % (sig.name, err))
            check_untouched(fx.pid, label="after %s" % sig.name)


def test_sigkill_pprofc(rounds=20):
    with Fixture("waits", progress=True) as fx:
        for i in range(rounds):
            p = subprocess.Popen([PPROFC, "dump-threads", str(fx.pid)], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
            time.sleep(0.001 * (i % 10))
            p.kill()
            p.wait()
            # The kernel detaches a dead tracer's tracees as it exits.
            check(wait_for(lambda: not any(s in "tT" for s in thread_states(fx.pid).values()), 10),
                  "round %d: threads left stopped after SIGKILL of pprofc" % i)
            check_untouched(fx.pid, label="sigkill round %d" % i)
        check_progress(fx, "sigkill")


def test_many_threads():
    with Fixture("many_threads", args=["2000"]) as fx:
        r = pprofc("dump-threads", "--format=json", "-v", fx.pid)
        check(r.returncode == 0, "dump of 2000 threads failed: %s" % r.stderr)
        import json
        d = json.loads(r.stdout)
        check(len(d["threads"]) == 2001, "2000-thread dump lists %d threads" % len(d["threads"]))
        incomplete = [t["name"] for t in d["threads"] if not t["complete"]]
        check(not incomplete, "incomplete stacks: %s" % incomplete[:5])
        check("process stopped for" in r.stderr, "-v does not report the stop time: %r" % r.stderr)
        check_untouched(fx.pid, label="many")


def test_thread_churn(rounds=30):
    """Threads come and go (about a thousand a second) during each dump:
    every dump succeeds and no thread is left traced or stopped."""
    with Fixture("churn") as fx:
        for i in range(rounds):
            r = pprofc("dump-threads", "--format=json", fx.pid)
            check(r.returncode == 0, "dump %d of a churning process failed: %s" % (i, r.stderr))
            check_untouched(fx.pid, label="churn %d" % i)
        check(fx.proc.poll() is None, "the churning process died")
        # A CPU profile while threads come and go: new threads join (TRACECLONE),
        # exiting ones leave, nothing is left traced.
        out = fx.progress + ".pb.gz"
        r = pprofc("attach", fx.pid, "--seconds", "2", "-o", out)
        check(r.returncode == 0 and os.path.getsize(out) > 0, "CPU profile of a churning process: %s" % r.stderr)
        check_untouched(fx.pid, label="churn cpu")
        check(fx.proc.poll() is None, "the churning process died during a CPU profile")


def test_cpu_profile_signals_and_stop(total=300):
    """During a 1000 Hz CPU profile: every real-time signal is delivered
    exactly once; a SIGSTOP stops the target and it is still stopped after
    pprofc lets go; SIGCONT then resumes it."""
    with Fixture("waits", progress=True) as fx:
        out = fx.progress + ".pb.gz"
        p = subprocess.Popen([PPROFC, "attach", str(fx.pid), "--seconds", "4", "--hz", "1000", "-o", out],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        check(wait_for(lambda: any(tracer_pid_of(fx.pid, t) == p.pid for t in thread_states(fx.pid)), 20, 0.01),
              "pprofc never attached")
        for i in range(total):
            os.kill(fx.pid, signal.SIGRTMIN)
            if i % 10 == 0:
                time.sleep(0.005)
        check(wait_for(lambda: read_progress(fx)[1] >= total, timeout=20),
              "signals sent during the profile were not all delivered: %d of %d"
              % (read_progress(fx)[1], total))
        os.kill(fx.pid, signal.SIGSTOP)
        _, err = p.communicate(timeout=60)
        check(p.returncode == 0, "profile with signals and SIGSTOP: %d %s" % (p.returncode, err))
        time.sleep(0.05)  # a doubled signal would show up right behind the last one
        check(read_progress(fx)[1] == total, "fixture counted %d SIGRTMIN, sent %d" % (read_progress(fx)[1], total))
        states = thread_states(fx.pid)
        check(states and all(s == "T" for s in states.values()), "SIGSTOP during the profile lost: %r" % states)
        check_untouched(fx.pid, allowed_stopped=True, label="cpu sigstop")
        before = read_progress(fx)[0]
        os.kill(fx.pid, signal.SIGCONT)
        check(wait_for(lambda: read_progress(fx)[0] > before), "no progress after SIGCONT")
        check_untouched(fx.pid, label="cpu sigcont")


def tracer_pid_of(pid, tid):
    try:
        return tracer_pid(pid, tid)
    except OSError:
        return -1


if __name__ == "__main__":
    require_ptrace()
    test_sigstop_kept()
    test_signals_reinjected()
    test_stop_signals_to_pprofc()
    test_sigkill_pprofc()
    test_many_threads()
    test_thread_churn()
    test_cpu_profile_signals_and_stop()
    done()
