"""The safety invariants of dump-threads, tried on real processes:
 - a target stopped with SIGSTOP stays stopped (job-control stop kept);
 - real-time signals sent during dumps are all delivered, none twice;
 - SIGINT/SIGTERM/SIGHUP to pprofc at random moments of a dump or a CPU
   profile: it exits cleanly, target released, output valid or absent;
 - SIGKILL to pprofc at random moments (200 dumps, 200 profiles, and 30
   CPU profiles `pprofc serve` collects for an HTTP client): the kernel
   releases the target (PTRACE_SEIZE);
 - during a CPU profile: 300 real-time signals, SIGSTOP then SIGCONT; a
   target stopped before the profile stays stopped;
 - a 2000-thread process, and one creating 1000 threads a second.
The random moments come from a seed printed first (PPROFC_TEST_SEED=N
replays a run); each repeated test prints a "COUNT name key=value..." line."""
import http.client
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from fixture import (PPROFC, Fixture, engine_args, sampling, by_name, check, check_progress, check_untouched,  # noqa: E402
                     count_line, done, dump_json, pprofc, profile_problem, read_progress,
                     require_ptrace, thread_states, tids, tracer_of, wait_for)


def test_sigstop_kept():
    with Fixture("waits", progress=True) as fx:
        os.kill(fx.pid, signal.SIGSTOP)
        check(wait_for(lambda: all(s == "T" for s in thread_states(fx.pid).values())),
              "fixture did not stop on SIGSTOP")
        text = pprofc("dump-threads", fx.pid).stdout
        check("thread %d \"waits\" [stopped]:" % fx.pid in text, "text dump does not show the stop")
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


def settled(fx):
    """After pprofc went away: (left_stopped, traced, no_progress) of the
    fixture, each 0 or 1.  The deadlines are generous; nothing is timed."""
    stopped = not wait_for(lambda: not any(s in "tT" for s in thread_states(fx.pid).values()),
                           10, 0.002)
    traced = any(tracer_of(fx.pid, t) not in (0, -1) for t in tids(fx.pid))
    before = read_progress(fx)[0]
    stuck = not wait_for(lambda: read_progress(fx)[0] > before, 10, 0.002)
    return int(stopped), int(traced), int(stuck)


def calibrate(fx, args, until_attached):
    """Seconds one unkilled run of pprofc takes: to the end (dumps) or until
    it traces the target (profiles, then ended with SIGINT).  It sizes the
    random window, so that kills land in every phase on any machine."""
    t0 = time.monotonic()
    p = subprocess.Popen([PPROFC] + args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if until_attached:
        wait_for(lambda: sampling(p.pid), 60, 0.001)
        p.send_signal(signal.SIGINT)
    else:
        p.wait()
    took = time.monotonic() - t0
    p.wait()
    wait_for(lambda: not any(tracer_of(fx.pid, t) for t in tids(fx.pid)), 10)
    return took


def kill_args(kind, pid):
    if kind == "dump":
        return ["dump-threads", str(pid)]
    return ["attach", str(pid), "--hz", "1000", "--seconds", "30", "-o", "-"] + engine_args()


def test_sigkill_random(kind, rng, rounds=200):
    """SIGKILL to pprofc at a random moment of a dump or of a 1000 Hz CPU
    profile: the kernel detaches a dead tracer's tracees (PTRACE_SEIZE, no
    EXITKILL), so the target is never left stopped or traced and runs on."""
    with Fixture("waits", progress=True) as fx:
        args = kill_args(kind, fx.pid)
        took = calibrate(fx, args, kind == "cpu")
        # Dumps: over the whole dump and a bit past it.  Profiles: startup,
        # seizing, and the first 300 ms of sampling.
        window = 1.2 * took if kind == "dump" else took + 0.3
        print("sigkill-%s: one run takes %.3f s%s; kills at 0-%.3f s"
              % (kind, took, "" if kind == "dump" else " to attach", window), flush=True)
        mid = stopped = traced = stuck = 0
        for i in range(rounds):
            p = subprocess.Popen([PPROFC] + args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0, window))
            mid += p.poll() is None
            p.kill()
            p.wait()
            s, t, n = settled(fx)
            check(not s, "sigkill-%s round %d: threads left stopped" % (kind, i))
            check(not t, "sigkill-%s round %d: threads left traced" % (kind, i))
            check(not n, "sigkill-%s round %d: target made no progress" % (kind, i))
            stopped, traced, stuck = stopped + s, traced + t, stuck + n
        check(fx.proc.poll() is None, "sigkill-%s: the target died" % kind)
        count_line("sigkill-" + kind, tried=rounds, killed_mid_run=mid, target_left_stopped=stopped,
                   traced=traced, no_progress=stuck)


def serve_started(p, lines):
    """The base URL `pprofc serve -v` says it serves on, once it does."""
    for line in iter(p.stderr.readline, ""):
        lines.append(line)
        m = re.search(r"on (http://[^/\s]+)/debug/pprof/", line)
        if m:
            return m.group(1)
    return None


def ask_profile(base, seconds):
    """GET profile?seconds=N, the answer ignored (the server is killed)."""
    try:
        urllib.request.urlopen(base + "/debug/pprof/profile?seconds=%d" % seconds, timeout=120).read()
    except (OSError, http.client.HTTPException):
        pass


def test_sigkill_serve(rng, rounds=30):
    """SIGKILL to `pprofc serve` at a random moment of a CPU profile it is
    collecting for a client (and, with the ptrace engine, stopping threads
    for): the target is never left stopped or traced, and runs on."""
    with Fixture("waits", progress=True) as fx:
        mid = stopped = traced = stuck = 0
        for i in range(rounds):
            p = subprocess.Popen([PPROFC, "serve", "-v", "--listen", "127.0.0.1:0", str(fx.pid)] + engine_args(),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            lines = []
            base = serve_started(p, lines)
            if not check(base, "sigkill-serve round %d: serve did not start: %r" % (i, lines)):
                p.kill()
                p.wait()
                break
            client = threading.Thread(target=ask_profile, args=(base, 30), daemon=True)
            client.start()
            check(wait_for(lambda: sampling(p.pid), 60, 0.001), "sigkill-serve round %d: never sampled" % i)
            time.sleep(rng.uniform(0, 0.3))
            mid += p.poll() is None
            p.kill()
            p.wait()
            client.join(timeout=60)
            s, t, n = settled(fx)
            check(not s, "sigkill-serve round %d: threads left stopped" % i)
            check(not t, "sigkill-serve round %d: threads left traced" % i)
            check(not n, "sigkill-serve round %d: target made no progress" % i)
            stopped, traced, stuck = stopped + s, traced + t, stuck + n
        check(fx.proc.poll() is None, "sigkill-serve: the target died")
        count_line("sigkill-serve", tried=rounds, killed_mid_run=mid, target_left_stopped=stopped,
                   traced=traced, no_progress=stuck)


def stop_signal_round(fx, kind, sig, delay, d):
    """One run of pprofc interrupted by sig after delay (once its handler is
    in place).  Returns (exit_code, output_problem)."""
    out, pb = os.path.join(d, "out"), os.path.join(d, "out.pb.gz")
    if kind == "dump":
        args = ["dump-threads", "--format=json", "-o", out, "--pprof", pb, str(fx.pid)]
    else:
        args = ["attach", str(fx.pid), "--hz", "1000", "--seconds", "30", "-o", pb] + engine_args()
    p = subprocess.Popen([PPROFC] + args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: catches(p.pid, sig) or p.poll() is not None, timeout=30, step=0.001)
    time.sleep(delay)
    p.send_signal(sig)
    try:
        _, err = p.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        return -1, "pprofc did not exit after %s" % sig.name
    return p.returncode, output_problem(kind, p.returncode, err, d, out, pb)


def output_problem(kind, rc, err, d, out, pb):
    """Profiles: a valid -o file.  Dumps: exit 1 with no file at all, or
    exit 0 with both complete files.  Never a temporary file left."""
    files = sorted(os.listdir(d))
    want = ["out.pb.gz"] if kind == "cpu" else ["out", "out.pb.gz"]
    if rc == 1 and kind == "dump":
        return "" if not files and "interrupted" in err else "exit 1 with %r: %r" % (files, err)
    if rc != 0:
        return "exit %d: %r" % (rc, err)
    if files != want:
        return "files %r, want %r" % (files, want)
    if kind == "dump":
        try:
            with open(os.path.join(d, "out")) as f:
                if not json.load(f)["threads"]:
                    return "empty dump"
        except ValueError as e:
            return "dump is not JSON: %s" % e
    return profile_problem(pb)


def test_stop_signals_random(kind, rng, rounds=30):
    """SIGINT, SIGTERM and SIGHUP at random moments (once pprofc catches
    them): it lets go of the target and writes a valid output (profiles),
    or a complete output or none at all (dumps)."""
    with Fixture("waits", progress=True) as fx:
        d = tempfile.mkdtemp(prefix="pprofc-sig-")
        window = 1.2 * calibrate(fx, kill_args(kind, fx.pid), kind == "cpu") + 0.1
        tried = interrupted = bad_exit = bad_output = stopped = traced = stuck = 0
        for i in range(rounds):
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                rc, problem = stop_signal_round(fx, kind, sig, rng.uniform(0, window), d)
                tried += 1
                interrupted += rc == 1
                bad_exit += rc not in ((0, 1) if kind == "dump" else (0,))
                bad_output += problem != ""
                check(problem == "", "%s %s round %d: %s" % (kind, sig.name, i, problem))
                s, t, n = settled(fx)
                check(not (s or t or n), "%s %s round %d: stopped %d traced %d stuck %d"
                      % (kind, sig.name, i, s, t, n))
                stopped, traced, stuck = stopped + s, traced + t, stuck + n
                for name in os.listdir(d):
                    os.unlink(os.path.join(d, name))
        shutil.rmtree(d, ignore_errors=True)
        count_line("stopsig-" + kind, tried=tried, interrupted=interrupted, bad_exit=bad_exit,
                   bad_output=bad_output, target_left_stopped=stopped, traced=traced, no_progress=stuck)


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


def spawned(path):
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return 0


def churn_rate(path, seconds=1.0):
    """Threads created and joined per second, measured over about seconds."""
    a, t0 = spawned(path), time.monotonic()
    time.sleep(seconds)
    return (spawned(path) - a) / (time.monotonic() - t0)


EXPECTED_STDERR = (re.compile(r"^pprofc: \d+ samples of \d+ threads in "),
                   re.compile(r"^pprofc: fell behind: "))


def unexpected_lines(err):
    return [ln for ln in err.splitlines() if not any(p.match(ln) for p in EXPECTED_STDERR)]


def churn_profile(fx, progress, mode, out):
    """A 1000 Hz profile of the churning process: (failed, unexpected stderr,
    churn rate meanwhile)."""
    a, t0 = spawned(progress), time.monotonic()
    r = pprofc("attach", fx.pid, "--profile", mode, "--seconds", "2", "--hz", "1000", "-o", out,
               *engine_args())
    rate = (spawned(progress) - a) / (time.monotonic() - t0)
    extra = unexpected_lines(r.stderr)
    problem = profile_problem(out) if r.returncode == 0 else "exit %d" % r.returncode
    check(not problem and not extra, "%s profile of a churning process: %s %r" % (mode, problem, extra))
    return int(problem != ""), int(extra != []), rate


def test_thread_churn(rounds=30):
    """Threads come and go (about a thousand a second) during each dump and
    each CPU and wall profile: every one succeeds, prints nothing unexpected,
    and leaves no thread traced or stopped; the process keeps churning."""
    d = tempfile.mkdtemp(prefix="pprofc-churn-")
    progress = os.path.join(d, "spawned")
    with Fixture("churn", args=["4", progress, "1000"]) as fx:
        print("churn: %.0f threads created and joined per second (not traced)" % churn_rate(progress),
              flush=True)
        failed = noisy = left = 0
        for i in range(rounds):
            r = pprofc("dump-threads", "--format=json", fx.pid)
            ok = r.returncode == 0 and json.loads(r.stdout)["threads"]
            failed += not ok
            noisy += r.stderr != ""
            check(ok, "dump %d of a churning process failed: %s" % (i, r.stderr))
            check(r.stderr == "", "dump %d of a churning process: stderr %r" % (i, r.stderr))
            left += not check_untouched(fx.pid, label="churn %d" % i)
        tried = rounds
        for mode in ("cpu", "wall"):
            out = os.path.join(d, mode + ".pb.gz")
            bad, extra, rate = churn_profile(fx, progress, mode, out)
            print("churn: %.0f threads per second during the %s profile" % (rate, mode), flush=True)
            tried, failed, noisy = tried + 1, failed + bad, noisy + extra
            left += not check_untouched(fx.pid, label="churn " + mode)
        alive = fx.proc.poll() is None
        check(alive, "the churning process died")
        before = spawned(progress)
        moving = wait_for(lambda: spawned(progress) > before, 20)
        check(moving, "the churning process stopped churning")
        count_line("churn", tried=tried, failed=failed, unexpected_stderr=noisy, left_traced_or_stopped=left,
                   died=int(not alive), no_progress=int(not moving))
    shutil.rmtree(d, ignore_errors=True)


def traced_by(pid, tracer):
    """Every thread of pid is traced by tracer."""
    ts = tids(pid)
    return bool(ts) and all(tracer_of(pid, t) == tracer for t in ts)


def stop_kept_then_resumed(fx, what, label):
    """After pprofc: every thread still stopped (T), untouched otherwise;
    then SIGCONT makes the target progress again.  (kept, resumed)."""
    states = thread_states(fx.pid)
    kept = bool(states) and all(s == "T" for s in states.values())
    check(kept, "%s lost: %r" % (what, states))
    check_untouched(fx.pid, allowed_stopped=True, label=label)
    before = read_progress(fx)[0]
    os.kill(fx.pid, signal.SIGCONT)
    resumed = wait_for(lambda: read_progress(fx)[0] > before)
    check(resumed, "no progress after SIGCONT (%s)" % label)
    check_untouched(fx.pid, label=label + ", after SIGCONT")
    return kept, resumed


def test_cpu_profile_signals_and_stop(total=300):
    """During a 1000 Hz CPU profile: every real-time signal is delivered
    exactly once; a SIGSTOP stops the target and it is still stopped after
    pprofc lets go; SIGCONT then resumes it.  pprofc ends on SIGINT once
    the stop is seen, so nothing depends on how long anything takes."""
    with Fixture("waits", progress=True) as fx:
        out = fx.progress + ".pb.gz"
        p = subprocess.Popen([PPROFC, "attach", str(fx.pid), "--seconds", "600", "--hz", "1000", "-o", out]
                             + engine_args(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        check(wait_for(lambda: sampling(p.pid), 60, 0.01), "pprofc never attached")
        for i in range(total):
            os.kill(fx.pid, signal.SIGRTMIN)
            if i % 10 == 0:
                time.sleep(0.005)
        check(wait_for(lambda: read_progress(fx)[1] >= total, timeout=30),
              "signals sent during the profile were not all delivered: %d of %d"
              % (read_progress(fx)[1], total))
        time.sleep(0.05)  # a doubled signal would show up right behind the last one
        got = read_progress(fx)[1]
        check(got == total, "fixture counted %d SIGRTMIN, sent %d" % (got, total))
        os.kill(fx.pid, signal.SIGSTOP)
        seen = wait_for(lambda: all(s in "tT" for s in thread_states(fx.pid).values()), 30)
        check(seen, "SIGSTOP never stopped the profiled target: %r" % thread_states(fx.pid))
        during = p.poll() is None
        check(during, "the profile ended before SIGSTOP was seen")
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=120)
        check(p.returncode == 0, "profile with signals and SIGSTOP: %d %s" % (p.returncode, err))
        problem = profile_problem(out)
        check(problem == "", "profile with signals and SIGSTOP: %s" % problem)
        kept, resumed = stop_kept_then_resumed(fx, "SIGSTOP during the profile", "cpu sigstop")
        count_line("rtsig-cpu", sent=total, received=min(got, total), doubled=max(got - total, 0),
                   lost=max(total - got, 0))
        count_line("sigstop-cpu", tried=1, stop_lost=int(not kept), no_resume=int(not resumed),
                   bad_profile=int(problem != ""))


def test_stopped_before_profile():
    """A target stopped before pprofc comes stays stopped through a CPU
    profile, and pprofc says so; SIGCONT then resumes it."""
    with Fixture("waits", progress=True) as fx:
        os.kill(fx.pid, signal.SIGSTOP)
        check(wait_for(lambda: all(s == "T" for s in thread_states(fx.pid).values())),
              "fixture did not stop on SIGSTOP")
        out = fx.progress + ".pb.gz"
        r = pprofc("attach", fx.pid, "--seconds", "1", "--hz", "1000", "-o", out, *engine_args())
        check(r.returncode == 0, "profile of a stopped target: %d %r" % (r.returncode, r.stderr))
        said = "PID %d is stopped" % fx.pid in r.stderr
        check(said, "pprofc does not say the target is stopped: %r" % r.stderr)
        problem = profile_problem(out)
        check(problem == "", "profile of a stopped target: %s" % problem)
        kept, resumed = stop_kept_then_resumed(fx, "the stop before the profile", "stopped before")
        count_line("prestopped-cpu", tried=1, stop_lost=int(not kept), not_reported=int(not said),
                   no_resume=int(not resumed), bad_profile=int(problem != ""))


STRAGGLER = r"""
import ctypes, mmap, sys, threading, time
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
MAP_POPULATE = 0x8000
count = [0]
def populate():
    # Faulting in 1 GiB inside one mmap call: only a fatal signal ends it
    # early, so a stop request waits for the call's end (~0.2 s).
    while True:
        p = libc.mmap(None, 1 << 30, mmap.PROT_READ | mmap.PROT_WRITE,
                      mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | MAP_POPULATE, -1, 0)
        libc.munmap(p, 1 << 30)
        count[0] += 1
threading.Thread(target=populate, daemon=True).start()
print("ready", flush=True)
while True:
    time.sleep(0.05)
    print(count[0], flush=True)
"""


def test_straggler_let_go():
    """A thread that cannot stop within --stop-timeout (inside a 1 GiB
    mmap with MAP_POPULATE) is a straggler: the session that seized it
    detaches it when it stops, or the kernel when pprofc exits.  After
    each dump no thread is traced or stopped, and the thread goes on."""
    proc = subprocess.Popen([sys.executable, "-c", STRAGGLER], stdout=subprocess.PIPE, text=True)
    try:
        check(proc.stdout.readline().strip() == "ready", "straggler fixture did not start")
        stragglers = 0
        for _ in range(5):
            r = pprofc("dump-threads", "--stop-all", "--stop-timeout=20", "-v", proc.pid)
            check(r.returncode == 0, "straggler dump failed: %s" % r.stderr)
            stragglers += "did not stop within the deadline" in r.stdout
            check_untouched(proc.pid, label="after a dump with a straggler")
        check(stragglers > 0, "no dump had a thread that did not stop within 20 ms: the case is not tested")
        before = int(proc.stdout.readline())
        check(wait_for(lambda: int(proc.stdout.readline()) > before, 30),
              "the straggler thread made no progress after the dumps")
    finally:
        proc.kill()
        proc.wait()


if __name__ == "__main__":
    require_ptrace()
    test_straggler_let_go()
    test_sigstop_kept()
    test_signals_reinjected()
    seed = int(os.environ.get("PPROFC_TEST_SEED") or time.time_ns() % 1000000007)
    print("seed %d (PPROFC_TEST_SEED=%d replays these random moments)" % (seed, seed), flush=True)
    rng = random.Random(seed)
    test_stop_signals_to_pprofc()
    test_sigkill_random("dump", rng)
    test_sigkill_random("cpu", rng)
    test_sigkill_serve(rng)
    test_stop_signals_random("dump", rng)
    test_stop_signals_random("cpu", rng)
    test_many_threads()
    test_thread_churn()
    test_cpu_profile_signals_and_stop()
    test_stopped_before_profile()
    done()
