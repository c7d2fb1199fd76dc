#!/usr/bin/env python3
"""What a CPU profile costs the profiled process: pprofc's two engines vs perf record.

For each configuration (busy threads x sampling rate, default {1,4,16} x
{100,1000} Hz) the script starts a fresh tests/targets/throughput fixture
(THREADS busy threads, each calling work_unit() in a loop and counting the
calls; a reporter thread writes "UNITS NS" to a counter file every 100 ms),
warms it up, then for each round measures its throughput (work units per
second over a fixed window) in four modes, in a different order every round
(a balanced Latin square: over len(modes) rounds each mode runs once in
each position and follows every other mode once):

  unprofiled     nothing attached
  pprofc-perf    pprofc attach PID --engine perf --seconds P --hz H -o DIR/x.pb.gz
  pprofc-ptrace  pprofc attach PID --engine ptrace --seconds P --hz H -o DIR/x.pb.gz
  perf-record    perf record -F H -g --call-graph dwarf -p PID -o DIR/x.data -- sleep P

P is the window plus a margin: the window starts once the profiler is
active (pprofc: its engine's descriptors are open, links
`anon_inode:[perf_event]` (perf engine: one per fixture thread and CPU) or
`anon_inode:[timerfd]` (the ptrace engine's tick timer) in
/proc/PPROFC/fd; if that count is never reached, once their number has not
changed for 0.5 s; perf record: its `sleep` child exec'd, which perf
starts once its events are enabled) and must end before the profiler stops, so
the whole window is profiled.

Per pprofc run it parses the stderr summary (samples, engine, lost and why,
samples landed off-CPU, stopped per sample median/p99 for ptrace, CPU by
the samples vs by the kernel, skipped ticks) and takes pprofc's own CPU
time (user+sys) from os.wait4; per perf record run the same CPU, its
"(N samples)" and its lost records (`perf report --stats`, after the run).
Between runs the fixture must be alive, untraced and not stopped, or the
script stops.

stdlib only.  See bench/README.md ("cpu_profile.py").
"""
import argparse
import datetime
import math
import os
import platform
import re
import select
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from benchlib import (BenchError, check_unchanged, command_output, cpu_model, fingerprint,
                      git_revision, loud, write_section)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "bench", "RESULTS.md")

MODES = ("unprofiled", "pprofc-perf", "pprofc-ptrace", "perf-record")
LABEL = {"unprofiled": "unprofiled", "pprofc-perf": "pprofc perf",
         "pprofc-ptrace": "pprofc ptrace", "perf-record": "perf record"}
ENGINE = {"pprofc-perf": "perf", "pprofc-ptrace": "ptrace"}
# What shows in /proc/PPROFC/fd once the engine runs.
ENGINE_FD = {"perf": "anon_inode:[perf_event]", "ptrace": "anon_inode:[timerfd]"}

# Goals of the perf engine, per configuration:
#  - at least as much throughput as perf record (medians);
#  - at least this share of the unprofiled throughput, by rate;
#  - no more CPU per sample than perf record.
GOAL_PERF_RATIO = {100: 0.99, 1000: 0.97}
# The ptrace engine's earlier goals, kept for reference.
GOAL_PTRACE_RATIO = 0.98   # at 100 Hz, one busy thread
GOAL_HANDSHAKE_US = 120    # ptrace stop handshake, docs/ARCHITECTURE.md, "Measured costs"
GOAL_STOP_US = GOAL_HANDSHAKE_US * 1.2   # median within 20% of it: 144 us

# pprofc attach's summary on stderr, one line, e.g.
#   pprofc: 499 samples of 3 threads in 5.00 s: 4.99 s of CPU by the samples,
#   4.94 s by the kernel; 0 lost; engine: perf, nothing stopped
#   pprofc: 299 samples of 3 threads in 3.00 s: 2.72 s of CPU by the samples,
#   2.72 s by the kernel; 0 lost, 19 landed off-CPU (the stop found the thread
#   in a system call: dropped); engine: ptrace, stopped per sample: median 81 us,
#   p99 3533 us
# "N lost" may be followed by " (N dropped by the kernel: its buffer was
# full)" and/or " (N did not stop in time or ran while read, N exited)".
# The head is matched strictly, each optional part on its own.
SUMMARY = re.compile(
    r"^pprofc: (\d+) samples of (\d+) threads in ([0-9.]+) s: ([0-9.]+) s of CPU "
    r"by the samples, ([0-9.]+) s by the kernel; (\d+) lost(.*)$", re.M)
KERNEL_DROPPED = re.compile(r"\((\d+) dropped by the kernel")
NOT_STOPPED = re.compile(r"\((\d+) did not stop in time[^,)]*, (\d+) exited\)")
OFF_CPU = re.compile(r"(\d+) landed off-CPU")
ENGINE_USED = re.compile(r"; engine: (\w+)")
STOPPED = re.compile(r"stopped per sample: median (\d+) us, p99 (\d+) us")
#   pprofc: fell behind: 12 of 5000 ticks skipped while ...
BEHIND = re.compile(r"pprofc: fell behind: (\d+) of (\d+) ticks skipped")
CUT_SHORT = re.compile(r"pprofc: (\d+) stacks were deeper than the stack copied")
FALLBACK = re.compile(r"pprofc: engine: ptrace instead of perf: (.*)")
KERNEL_EXCLUDED = "time in the kernel was not sampled"
#   [ perf record: Captured and wrote 8.093 MB /tmp/x.data (1005 samples) ]
PERF_WROTE = re.compile(r"Captured and wrote ([0-9.]+) MB .*\((\d+) samples\)")
PERF_LOST = re.compile(r"lost (\d+) chunks")
#   perf report --stats:  "LOST events: 3" / "LOST_SAMPLES events: 2"
PERF_STATS_LOST = re.compile(r"^\s*LOST events:\s*(\d+)", re.M)
PERF_STATS_LOST_SAMPLES = re.compile(r"^\s*LOST_SAMPLES events:\s*(\d+)", re.M)

QUIET_PATTERN = "meson test|test_cpu_truth|test_safety|dev.sh"


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


# ---------------------------------------------------------------- who used the CPUs

CLK_TCK = os.sysconf("SC_CLK_TCK")


def machine_busy_ticks():
    """Busy clock ticks of all CPUs together, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal (guest counted in user)
    return sum(v[:8]) - v[3] - v[4]


def process_ticks(pid):
    """utime + stime of a process (all its threads), 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return int(rest[11]) + int(rest[12])
    except (OSError, IndexError, ValueError):
        return 0


class CpuMeter:
    """Over a window: CPU used by the fixture, by the profiler, and by
    everything else on the machine (this script excluded), in cores."""

    def __init__(self, fixture_pid, profiler_pid):
        self.pids = (fixture_pid, profiler_pid)
        self.start = self.read()

    def read(self):
        t = os.times()
        return (time.monotonic(), machine_busy_ticks(), process_ticks(self.pids[0]),
                process_ticks(self.pids[1]) if self.pids[1] else 0,
                (t.user + t.system) * CLK_TCK)

    def stop(self):
        end = self.read()
        secs = end[0] - self.start[0]
        d = [b - a for a, b in zip(self.start[1:], end[1:])]
        busy, fixture, profiler, me = d
        cores = lambda ticks: ticks / CLK_TCK / secs
        return {"fixture_cores": cores(fixture), "profiler_cores": cores(profiler),
                "others_cores": cores(busy - fixture - profiler - me)}


# ---------------------------------------------------------------- fixture

def find_fixture(path, tmpdir):
    if path:
        return path, None
    built = os.path.join(ROOT, "build/tests/targets/throughput")
    if os.access(built, os.X_OK):
        return built, None
    src = os.path.join(ROOT, "tests/targets/throughput.c")
    out = os.path.join(tmpdir, "throughput")
    subprocess.run(["gcc", "-std=c11", "-O2", "-g", "-pthread", src, "-o", out],
                   check=True, timeout=120)
    return out, f"compiled from {os.path.relpath(src, ROOT)} with gcc -O2 -g"


class Fixture:
    """One running throughput process and its counter file."""

    def __init__(self, binary, threads, tmpdir, live, idle=0):
        self.threads = threads
        self.counter = os.path.join(tmpdir, f"counter-{threads}-{idle}")
        self.proc = subprocess.Popen([binary, str(threads), self.counter, str(idle)],
                                     stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        live.append(self.proc)
        self.pid = self.proc.pid
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        line = self.proc.stdout.readline().decode(errors="replace").strip() if ready else ""
        if line != "ready":
            raise BenchError(f"fixture did not print 'ready' (got {line!r})")
        # busy threads + main + reporter + idle threads
        self.tasks = threads + 2 + idle
        deadline = time.monotonic() + 5
        while len(self.task_ids()) != self.tasks and time.monotonic() < deadline:
            time.sleep(0.01)

    def task_ids(self):
        try:
            return sorted(int(t) for t in os.listdir(f"/proc/{self.pid}/task"))
        except OSError:
            return []

    def read_counter(self):
        """(units, monotonic ns) as last written by the reporter."""
        for _ in range(50):
            try:
                with open(self.counter) as f:
                    units, ns = f.read().split()
                return int(units), int(ns)
            except (OSError, ValueError):
                time.sleep(0.01)
        raise BenchError(f"cannot read the counter file {self.counter}")

    STALL_S = 30    # the reporter writes every 100 ms: this long without a write is an error

    def counter_after(self, ns):
        """The first counter snapshot taken at or after monotonic time ns.
        An error if the reporter writes nothing new for STALL_S seconds while
        this script is polling (a gap in the polling itself, this script not
        running, does not count)."""
        last_at, last_change = None, time.monotonic()
        prev_poll = last_change
        while True:
            units, at = self.read_counter()
            if at >= ns:
                return units, at
            now = time.monotonic()
            if now - prev_poll > 1.0 or at != last_at:
                last_at, last_change = at, now
            elif now - last_change > self.STALL_S:
                raise BenchError(
                    f"the fixture's reporter wrote nothing new for {self.STALL_S} s (last "
                    f"snapshot {(time.monotonic_ns() - at) / 1e9:.1f} s old); fixture "
                    f"threads: {self.thread_states()}")
            prev_poll = now
            time.sleep(min(0.02, max(0.001, (ns - at) / 1e9)))

    def thread_states(self):
        """'TID:STATE(comm)' for each thread, for error messages."""
        out = []
        for tid in self.task_ids():
            try:
                with open(f"/proc/{self.pid}/task/{tid}/stat") as f:
                    head, rest = f.read().rsplit(")", 1)
                out.append(f"{tid}:{rest.split()[0]}({head.split('(', 1)[1]})")
            except (OSError, IndexError):
                out.append(f"{tid}:?")
        return " ".join(out) or "none (exited?)"

    def check(self, where):
        """Alive, not traced, no thread stopped, all threads present."""
        if self.proc.poll() is not None:
            raise BenchError(f"fixture exited ({self.proc.returncode}) {where}")
        tids = self.task_ids()
        if len(tids) != self.tasks:
            raise BenchError(f"fixture has {len(tids)} threads, expected "
                             f"{self.tasks}, {where}")
        for tid in tids:
            try:
                with open(f"/proc/{self.pid}/task/{tid}/status") as f:
                    status = f.read()
                with open(f"/proc/{self.pid}/task/{tid}/stat") as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                raise BenchError(f"cannot read thread {tid} of the fixture {where}")
            tracer = re.search(r"^TracerPid:\s*(\d+)", status, re.M)
            if tracer and tracer.group(1) != "0":
                raise BenchError(f"fixture thread {tid} still traced by "
                                 f"{tracer.group(1)} {where}")
            if state in ("t", "T"):
                raise BenchError(f"fixture thread {tid} left stopped ({state}) {where}")

    def traced_by(self, pid):
        """True when every thread of the fixture has TracerPid == pid."""
        tids = self.task_ids()
        if not tids:
            return False
        for tid in tids:
            try:
                with open(f"/proc/{self.pid}/task/{tid}/status") as f:
                    m = re.search(r"^TracerPid:\s*(\d+)", f.read(), re.M)
            except OSError:
                return False
            if not m or int(m.group(1)) != pid:
                return False
        return True

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()


# ---------------------------------------------------------------- can the profilers run

def check_profilers(args, binary, tmpdir, live):
    """Short real runs of each profiler on a 1-thread fixture.  Returns
    {mode: (True, detail) or (False, reason)} and perf's version line;
    detail is the event perf record used without -e."""
    perf = shutil.which("perf")
    version = command_output([perf, "--version"]) if perf else None
    got = {}
    fx = Fixture(binary, 1, tmpdir, live)
    try:
        time.sleep(0.2)
        for mode, engine in ENGINE.items():
            out = os.path.join(tmpdir, f"check-{engine}.pb.gz")
            argv = [args.pprofc, "attach", str(fx.pid), "--engine", engine, "--seconds", "1",
                    "--hz", "99", "-o", out]
            try:
                r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
            except subprocess.TimeoutExpired:
                got[mode] = (False, f"`pprofc attach --engine {engine} --seconds 1` timed out")
                continue
            if os.path.exists(out):
                os.unlink(out)
            m = SUMMARY.search(r.stderr)
            if r.returncode != 0 or not m:
                why = (r.stderr.strip().splitlines() or [f"exit status {r.returncode}"])[-1]
                got[mode] = (False, f"`pprofc attach --engine {engine}` failed: {why}")
                continue
            used = ENGINE_USED.search(m.group(7))
            if not used or used.group(1) != engine:
                got[mode] = (False, f"`pprofc attach --engine {engine}` ran engine "
                             f"{used.group(1) if used else '?'}")
                continue
            got[mode] = (True, engine)
            fx.check(f"after the pprofc {engine} check")
        if args.no_perf:
            got["perf-record"] = (False, "skipped with --no-perf")
        elif not perf:
            got["perf-record"] = (False, "`perf` not found in PATH")
        else:
            data = os.path.join(tmpdir, "perf-check.data")
            try:
                r = subprocess.run([perf, "record", "-F", "99", "-p", str(fx.pid), "-o", data,
                                    "--", "sleep", "0.1"], capture_output=True, text=True,
                                   timeout=60)
                if r.returncode != 0 or not os.path.exists(data):
                    why = (r.stderr.strip().splitlines() or [f"exit status {r.returncode}"])[0]
                    got["perf-record"] = (False, "`perf record -F 99 -p PID -- sleep 0.1` "
                                          f"failed: {why}")
                else:
                    ev = subprocess.run([perf, "evlist", "-i", data], capture_output=True,
                                        text=True, timeout=60)
                    got["perf-record"] = (True, (ev.stdout.strip().splitlines()
                                                 or ["unknown event"])[0])
                    fx.check("after the perf check")
            except subprocess.TimeoutExpired:
                got["perf-record"] = (False, "`perf record -F 99 -p PID -- sleep 0.1` timed out")
            finally:
                for p in (data, data + ".old"):
                    if os.path.exists(p):
                        os.unlink(p)
    finally:
        fx.kill()
    return got, version


# ---------------------------------------------------------------- one run

def profiler_argv(mode, args, pid, seconds, out):
    if mode in ENGINE:
        return [args.pprofc, "attach", str(pid), "--engine", ENGINE[mode], "--seconds",
                str(seconds), "--hz", str(args.cur_hz), "-o", out] + args.pprofc_arg
    dwarf = "dwarf" + (",%d" % args.perf_stack if args.perf_stack else "")
    return ["perf", "record", "-F", str(args.cur_hz), "-g", "--call-graph", dwarf,
            "-p", str(pid), "-o", out, "--", "sleep", str(seconds)]


def perf_started(perf_pid):
    """perf record execs its workload (`sleep`) once its events are enabled."""
    try:
        with open(f"/proc/{perf_pid}/task/{perf_pid}/children") as f:
            kids = f.read().split()
    except OSError:
        return False
    for kid in kids:
        try:
            with open(f"/proc/{kid}/comm") as f:
                if f.read().strip() == "sleep":
                    return True
        except OSError:
            pass
    return False


def engine_fds(pid, engine):
    """How many of pprofc's descriptors are its engine's (perf_event or
    timerfd), 0 if none or pprofc is gone."""
    want = ENGINE_FD[engine]
    n = 0
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return 0
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == want:
                n += 1
        except OSError:
            pass
    return n


class EngineWatch:
    """pprofc's engine counts as running once its descriptors are open:
    `expected` of them if given (the perf engine opens one event per thread
    and CPU, one thread after the other, and mapping a CPU's ring buffer can
    take tens of ms between two threads), else (or if that count is never
    reached) once their number has not changed for `settle` seconds."""

    def __init__(self, pid, engine, settle=0.1, expected=None):
        self.pid, self.engine, self.settle, self.expected = pid, engine, settle, expected
        self.last, self.since = 0, time.monotonic()
        self.by = None          # "count" or "settle": what made it active

    def active(self):
        n = engine_fds(self.pid, self.engine)
        now = time.monotonic()
        if n != self.last:
            self.last, self.since = n, now
        if self.expected and n >= self.expected:
            self.by = "count"
            return True
        if n > 0 and now - self.since >= self.settle:
            self.by = "settle"
            return True
        return False


def expected_engine_fds(engine, fx):
    """What pprofc's engine opens for the fixture: the perf engine one event
    per thread and online CPU (offline CPUs are skipped), the ptrace engine
    one timerfd."""
    if engine == "perf":
        return fx.tasks * (os.sysconf("SC_NPROCESSORS_ONLN") or 1)
    return 1


def end_profiler(prof, timer, errf):
    """Cleanup after a run, whatever happened: the overstay timer off, a
    profiler still running told to stop (SIGINT, then SIGKILL), its stderr
    file closed."""
    if timer:
        timer.cancel()
    if prof is not None and prof.returncode is None:
        prof.send_signal(signal.SIGINT)
        try:
            prof.wait(10)
        except subprocess.TimeoutExpired:
            prof.kill()
            prof.wait()
    if errf:
        errf.close()


def parse_pprofc(err, engine):
    """pprofc's summary (stderr) as a dict; BenchError if it is not there or
    names another engine."""
    m = SUMMARY.search(err)
    if not m:
        raise BenchError(f"no summary line in pprofc's stderr: {err.strip()[-500:]}")
    rest = m.group(7)
    used = ENGINE_USED.search(rest)
    if not used:
        raise BenchError(f"pprofc's summary names no engine: {m.group(0)}")
    if used.group(1) != engine:
        raise BenchError(f"pprofc ran engine {used.group(1)}, not {engine}: {m.group(0)}")
    rec = {"samples": int(m.group(1)), "threads_seen": int(m.group(2)),
           "duration_s": float(m.group(3)), "cpu_by_samples_s": float(m.group(4)),
           "cpu_by_kernel_s": float(m.group(5)), "lost": int(m.group(6)),
           "engine": used.group(1), "summary": m.group(0)}
    k = KERNEL_DROPPED.search(rest)
    rec["lost_kernel"] = int(k.group(1)) if k else 0
    ns = NOT_STOPPED.search(rest)
    rec["lost_not_stopped"] = int(ns.group(1)) if ns else 0
    rec["lost_exited"] = int(ns.group(2)) if ns else 0
    off = OFF_CPU.search(rest)
    rec["off_cpu"] = int(off.group(1)) if off else 0
    st = STOPPED.search(rest)
    if engine == "ptrace" and not st:
        raise BenchError(f"no 'stopped per sample' in pprofc's ptrace summary: {m.group(0)}")
    rec["stop_median_us"] = int(st.group(1)) if st else None
    rec["stop_p99_us"] = int(st.group(2)) if st else None
    b = BEHIND.search(err)
    rec["skipped"] = int(b.group(1)) if b else 0
    rec["ticks"] = int(b.group(2)) if b else None
    c = CUT_SHORT.search(err)
    rec["cut_short"] = int(c.group(1)) if c else 0
    rec["kernel_excluded"] = KERNEL_EXCLUDED in err
    fb = FALLBACK.search(err)
    rec["fallback"] = fb.group(1).strip() if fb else None
    rec["samples_vs_kernel"] = (rec["cpu_by_samples_s"] / rec["cpu_by_kernel_s"]
                                if rec["cpu_by_kernel_s"] else None)
    return rec


def perf_lost(data):
    """Records perf lost in a recording, from `perf report --stats` (run after
    the window, outside it): (LOST events, LOST_SAMPLES events), or Nones."""
    try:
        r = subprocess.run(["perf", "report", "--stats", "-i", data], capture_output=True,
                           text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None, None
    text = r.stdout + r.stderr
    a = PERF_STATS_LOST.search(text)
    b = PERF_STATS_LOST_SAMPLES.search(text)
    if r.returncode != 0:
        return None, None
    return int(a.group(1)) if a else 0, int(b.group(1)) if b else 0


def measure(mode, fx, args, tmpdir, live):
    """Throughput of the fixture over one window, with `mode` attached."""
    rec = {"mode": mode}
    window_ns = int(args.window * 1e9)
    prof = None
    timer = None
    errf = None
    out = os.path.join(tmpdir, "x.pb.gz" if mode in ENGINE else "x.data")
    try:
        if mode != "unprofiled":
            seconds = math.ceil(args.window + args.margin)
            argv = profiler_argv(mode, args, fx.pid, seconds, out)
            rec["argv"] = argv
            errf = open(os.path.join(tmpdir, f"{mode}.stderr"), "w+")
            t_launch = time.monotonic()
            prof = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=errf,
                                    stdin=subprocess.DEVNULL)
            live.append(prof)
            # Stops it if it overstays: SIGINT (pprofc ends early, like
            # Ctrl-C), the caller sees the bad exit status.
            timer = threading.Timer(seconds + args.timeout, prof.send_signal,
                                    (signal.SIGINT,))
            timer.start()
            # The count should come first; the settle time is a fallback.
            watch = (EngineWatch(prof.pid, ENGINE[mode], settle=0.5,
                                 expected=expected_engine_fds(ENGINE[mode], fx))
                     if mode in ENGINE else None)
            while True:
                active = watch.active() if watch else perf_started(prof.pid)
                if active:
                    break
                if prof.poll() is not None:
                    errf.seek(0)
                    raise BenchError(f"{mode} exited ({prof.returncode}) before it was "
                                     f"active: {errf.read().strip()[-500:]}")
                if time.monotonic() - t_launch > 15:
                    raise BenchError(f"{mode} not active 15 s after launch")
                time.sleep(0.002)
            rec["startup_s"] = time.monotonic() - t_launch
            if watch:
                rec["engine_fds"] = watch.last
                rec["engine_fds_expected"] = watch.expected
                rec["active_by"] = watch.by
        u0, n0 = fx.counter_after(time.monotonic_ns())
        meter = CpuMeter(fx.pid, prof.pid if prof else None)
        u1, n1 = fx.counter_after(n0 + window_ns)
        rec.update(meter.stop())
        rec["units_per_s"] = (u1 - u0) / ((n1 - n0) / 1e9)
        rec["window_s"] = (n1 - n0) / 1e9
        rec["units_per_cpu_s"] = (rec["units_per_s"] / rec["fixture_cores"]
                                  if rec["fixture_cores"] > 0 else None)
        if prof is None:
            return rec
        if prof.poll() is not None:
            raise BenchError(f"{mode} ended before the end of the window: raise --margin")
        _, status, ru = os.wait4(prof.pid, 0)
        prof.returncode = os.waitstatus_to_exitcode(status)
        rec["wall_s"] = time.monotonic() - t_launch
        rec["cpu_s"] = ru.ru_utime + ru.ru_stime
        rec["cpu_user_s"] = ru.ru_utime
        rec["cpu_sys_s"] = ru.ru_stime
        errf.seek(0)
        err = errf.read()
        rec["stderr"] = err
        if prof.returncode != 0:
            raise BenchError(f"{shlex.join(argv)} exited {prof.returncode}: "
                             f"{err.strip()[-500:]}")
        if mode in ENGINE:
            rec.update(parse_pprofc(err, ENGINE[mode]))
        else:
            m = PERF_WROTE.search(err)
            rec["samples"] = int(m.group(2)) if m else None
            rec["data_mb"] = float(m.group(1)) if m else None
            lost = PERF_LOST.search(err)
            rec["lost_chunks"] = int(lost.group(1)) if lost else 0
            rec["lost_events"], rec["lost_samples_events"] = perf_lost(out)
            rec["duration_s"] = seconds
        rec["out_bytes"] = os.path.getsize(out) if os.path.exists(out) else None
        return rec
    finally:
        end_profiler(prof, timer, errf)
        for p in (out, out + ".old"):
            if os.path.exists(p):
                os.unlink(p)


def wait_idle(args):
    """Wait (up to --idle-wait s) until the rest of the machine uses less
    than --max-others cores over one second; returns what it measured."""
    deadline = time.monotonic() + args.idle_wait
    while True:
        meter = CpuMeter(os.getpid(), None)
        time.sleep(1)
        others = meter.stop()["others_cores"]
        if others < args.max_others or time.monotonic() > deadline:
            return others
        print(f"  machine busy ({others:.2f} cores used by other processes), waiting",
              flush=True)


def load1():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def quiet_matches(pattern):
    """Command lines of processes matching `pgrep -f pattern` (pgrep and this
    script excluded)."""
    try:
        r = subprocess.run(["pgrep", "-af", pattern], capture_output=True, text=True,
                           timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return [f"(pgrep failed: {e})"]
    me = str(os.getpid())
    return [ln for ln in r.stdout.splitlines() if ln.split(" ", 1)[0] != me]


def wait_quiet(args):
    """Before the run: wait, polling every --quiet-poll s for up to
    --quiet-wait s, until no process matches --quiet-pattern and the
    1-minute load average is below --quiet-load.  Returns what happened."""
    t0 = time.monotonic()
    while True:
        busy = quiet_matches(args.quiet_pattern)
        load = load1()
        waited = time.monotonic() - t0
        if not busy and load < args.quiet_load:
            return {"quiet": True, "waited_s": waited, "load": load, "busy": []}
        if waited + args.quiet_poll > args.quiet_wait:
            return {"quiet": False, "waited_s": waited, "load": load, "busy": busy}
        print(f"waiting for a quiet machine ({waited / 60:.1f} min so far): load {load:.2f}"
              + (f", running: {'; '.join(b[:80] for b in busy)}" if busy else ""),
              flush=True)
        time.sleep(args.quiet_poll)


def balanced_orders(n):
    """Orders of n modes for successive rounds: a balanced Latin square
    (Williams design).  Over the rows, each mode is once in each position
    and follows each other mode once (n even; odd n needs 2n rows, each
    row also reversed)."""
    seq, lo, hi = [0], 1, n - 1
    while len(seq) < n:
        seq.append(lo)
        lo += 1
        if len(seq) < n:
            seq.append(hi)
            hi -= 1
    rows = [[(x + i) % n for x in seq] for i in range(n)]
    if n % 2:
        rows += [list(reversed(r)) for r in rows]
    return rows


def round_line(recs, modes):
    base = recs["unprofiled"]["units_per_s"]
    parts = []
    for m in modes:
        u = recs[m]["units_per_s"]
        parts.append(f"{LABEL[m]} {u:,.0f}/s" + ("" if m == "unprofiled"
                                                  else f" ({u / base * 100:.1f}%)"))
    line = ", ".join(parts)
    for m in modes:
        if m == "unprofiled":
            continue
        q = recs[m]
        per = (f"{q['cpu_s'] / q['samples'] * 1e6:.0f} us/sample" if q.get("samples")
               else "no samples")
        line += f"\n      {LABEL[m]}: {q.get('samples')} samples, cpu {q['cpu_s']:.2f} s, {per}"
        if m in ENGINE:
            line += f", lost {q['lost']}"
            if q["samples_vs_kernel"] is not None:
                line += f", samples/kernel {q['samples_vs_kernel'] * 100:.1f}%"
            if q["stop_median_us"] is not None:
                line += f", stop {q['stop_median_us']}/{q['stop_p99_us']} us"
            if q["off_cpu"]:
                line += f", {q['off_cpu']} off-CPU"
            if q["skipped"]:
                line += f", skipped {q['skipped']} ticks"
            line += (f", active at {q['engine_fds']}/{q['engine_fds_expected']} fds "
                     f"({q['active_by']}) after {q['startup_s']:.2f} s")
        else:
            line += f", lost events {q['lost_events']}"
    return line


def run_config(args, fixture, threads, hz, modes, tmpdir, live):
    args.cur_hz = hz
    idle = wait_idle(args)
    fx = Fixture(fixture, threads, tmpdir, live)
    rounds, discarded = [], []
    orders = balanced_orders(len(modes))
    try:
        time.sleep(args.warmup)
        fx.check("after the warm-up")
        r = 0
        tries = 0
        while r < args.rounds:
            # A round run again keeps its order, so the design stays balanced.
            order = [modes[i] for i in orders[r % len(orders)]]
            recs = {}
            for mode in order:
                try:
                    recs[mode] = measure(mode, fx, args, tmpdir, live)
                except BenchError as e:
                    raise BenchError(f"{threads} threads, {hz} Hz, round {r + 1}, "
                                     f"{mode}: {e}") from None
                fx.check(f"after the {mode} run of round {r + 1}")
                time.sleep(args.pause)
            busy = max(recs[m]["others_cores"] for m in modes)
            line = round_line(recs, modes) + f"\n      others {busy:.2f} cores"
            if busy > args.max_others and tries < args.retries:
                # Something else ran during this round: its numbers are
                # about that, not about the profilers.  Kept for the
                # report, then the round is run again.
                tries += 1
                discarded.append({"round": r + 1, "order": order, "recs": recs})
                print(f"  round {r + 1} ({' > '.join(order)}): DISCARDED, other processes "
                      f"used {busy:.2f} cores (> {args.max_others}): {line}", flush=True)
                time.sleep(2)
                continue
            rounds.append({"order": order, "recs": recs, "noisy": busy > args.max_others})
            print(f"  round {r + 1} ({' > '.join(order)}): {line}", flush=True)
            r += 1
            tries = 0
    finally:
        fx.kill()
    s = summarize(threads, hz, modes, rounds)
    s["discarded"] = discarded
    s["idle_before"] = idle
    return s


# ---------------------------------------------------------------- summary

def summarize(threads, hz, modes, rounds):
    s = {"threads": threads, "hz": hz, "rounds": rounds}
    for m in modes:
        rates = [r["recs"][m]["units_per_s"] for r in rounds]
        recs = [r["recs"][m] for r in rounds]
        s[m] = {"median": med(rates), "min": min(rates), "max": max(rates),
                "fixture_cores": med([x["fixture_cores"] for x in recs]),
                "profiler_cores": med([x["profiler_cores"] for x in recs]),
                "units_per_cpu_s": med([x["units_per_cpu_s"] for x in recs]),
                "others_max": max(x["others_cores"] for x in recs)}
    base = s["unprofiled"]["median"]
    for m in modes:
        if m == "unprofiled":
            continue
        q = s[m]
        recs = [r["recs"][m] for r in rounds]
        q["ratio"] = q["median"] / base
        q["startup_s"] = med([x["startup_s"] for x in recs])
        q["cpu_s"] = med([x["cpu_s"] for x in recs])
        q["cpu_per_s"] = med([x["cpu_s"] / x["duration_s"] for x in recs])
        q["samples"] = med([x["samples"] for x in recs])
        q["cpu_per_sample_us"] = med([x["cpu_s"] / x["samples"] * 1e6
                                      for x in recs if x["samples"]])
        q["cpu_per_sample_all"] = [x["cpu_s"] / x["samples"] * 1e6 if x["samples"] else None
                                   for x in recs]
        q["wall_s"] = med([x["wall_s"] for x in recs])
        if m in ENGINE:
            for key in ("lost", "lost_kernel", "lost_not_stopped", "lost_exited", "off_cpu",
                        "skipped", "cpu_by_samples_s", "cpu_by_kernel_s", "duration_s",
                        "threads_seen", "samples_vs_kernel", "cut_short"):
                q[key] = med([x[key] for x in recs])
            for key in ("lost", "lost_kernel", "lost_not_stopped", "lost_exited", "off_cpu",
                        "skipped", "cut_short"):
                q[key + "_max"] = max(x[key] for x in recs)
            q["samples_vs_kernel_min"] = min((x["samples_vs_kernel"] for x in recs
                                              if x["samples_vs_kernel"] is not None),
                                             default=None)
            q["ticks"] = med([x["ticks"] for x in recs if x["ticks"]])
            q["kernel_excluded"] = any(x["kernel_excluded"] for x in recs)
            q["engine_fds"] = med([x["engine_fds"] for x in recs])
            q["engine_fds_expected"] = med([x["engine_fds_expected"] for x in recs])
            q["settled_runs"] = sum(1 for x in recs if x["active_by"] == "settle")
            if ENGINE[m] == "ptrace":
                q["stop_median_us"] = med([x["stop_median_us"] for x in recs])
                q["stop_p99_us"] = med([x["stop_p99_us"] for x in recs])
                q["stop_median_all"] = [x["stop_median_us"] for x in recs]
        else:
            q["data_mb"] = med([x["data_mb"] for x in recs])
            q["lost_chunks"] = max(x["lost_chunks"] for x in recs)
            ev = [x["lost_events"] for x in recs if x["lost_events"] is not None]
            q["lost_events"] = med(ev)
            q["lost_events_max"] = max(ev) if ev else None
    return s


def fmt(x, spec, none="-"):
    return none if x is None else format(x, spec)


def verdict(ok):
    return "MET" if ok else "NOT MET"


def pct(x, spec=".1f"):
    return "-" if x is None else f"{x * 100:{spec}}%"


def goal_lines(args, results, modes, info):
    """The verdicts, as markdown lines, and a short list for the console.
    Ratios here have two decimals: 96.97% against a 97% goal must not read
    as 97.0%."""
    L = []
    add = L.append
    short = []
    pe, rec = "pprofc-perf", "perf-record"
    add("### pprofc's perf engine")
    add("")
    if pe not in modes:
        add(f"Not evaluated: the perf engine could not run ({info['avail'][pe][1]}).")
        short.append("perf engine goals: NOT EVALUATED (engine not available)")
        add("")
    else:
        # 1. At least as much throughput as perf record.
        if rec in modes:
            ok = [s for s in results if s[pe]["median"] >= s[rec]["median"]]
            v = verdict(len(ok) == len(results))
            add(f"- Throughput at least perf record's, in every configuration (medians): "
                f"**{v}** ({len(ok)} of {len(results)} configurations):")
            for s in results:
                a, b = s[pe], s[rec]
                add(f"  - {s['threads']} threads, {s['hz']} Hz: pprofc perf {a['median']:,.0f} "
                    f"units/s ({pct(a['ratio'], '.2f')}) vs perf record {b['median']:,.0f} "
                    f"({pct(b['ratio'], '.2f')}): {(a['median'] / b['median'] - 1) * 100:+.2f}% -> "
                    f"{verdict(a['median'] >= b['median'])}")
            short.append(f"perf engine throughput >= perf record's: {v} ({len(ok)}/{len(results)})")
        else:
            add(f"- Throughput at least perf record's: not evaluated (perf record not "
                f"available: {info['avail'][rec][1]})")
            short.append("perf engine throughput >= perf record's: NOT EVALUATED")
        # 2. Share of the unprofiled throughput, by rate.
        judged = [s for s in results if s["hz"] in GOAL_PERF_RATIO]
        ok = [s for s in judged if s[pe]["ratio"] >= GOAL_PERF_RATIO[s["hz"]]]
        goals = ", ".join(f"{r * 100:.0f}% at {h} Hz" for h, r in sorted(GOAL_PERF_RATIO.items()))
        v = verdict(len(ok) == len(judged)) if judged else "NOT EVALUATED"
        add(f"- Throughput against unprofiled, at least {goals}: **{v}** ({len(ok)} of "
            f"{len(judged)} configurations):")
        for s in results:
            r = s[pe]["ratio"]
            if s["hz"] in GOAL_PERF_RATIO:
                g = GOAL_PERF_RATIO[s["hz"]]
                add(f"  - {s['threads']} threads, {s['hz']} Hz: {pct(r, '.2f')} (goal {g * 100:.0f}%; "
                    f"unprofiled noise {s['unprofiled']['min'] / s['unprofiled']['median'] * 100:.1f}"
                    f"-{s['unprofiled']['max'] / s['unprofiled']['median'] * 100:.1f}%) -> "
                    f"{verdict(r >= g)}")
            else:
                add(f"  - {s['threads']} threads, {s['hz']} Hz: {pct(r, '.2f')} (no goal at this rate)")
        short.append(f"perf engine throughput vs unprofiled ({goals}): {v} "
                     f"({len(ok)}/{len(judged)})")
        # 3. CPU per sample, against perf record's.
        if rec in modes:
            def cheaper(s):
                a, b = s[pe]["cpu_per_sample_us"], s[rec]["cpu_per_sample_us"]
                return a is not None and b is not None and a <= b
            ok = [s for s in results if cheaper(s)]
            v = verdict(len(ok) == len(results))
            add(f"- CPU per sample no more than perf record's, in every configuration "
                f"(whole-run user+sys / samples, medians): **{v}** ({len(ok)} of "
                f"{len(results)} configurations):")
            for s in results:
                a, b = s[pe], s[rec]
                add(f"  - {s['threads']} threads, {s['hz']} Hz: pprofc perf "
                    f"{fmt(a['cpu_per_sample_us'], '.0f')} us ({fmt(a['samples'], 'g')} samples, "
                    f"{a['cpu_s']:.3f} s) vs perf record {fmt(b['cpu_per_sample_us'], '.0f')} us "
                    f"({fmt(b['samples'], 'g')} samples, {b['cpu_s']:.3f} s) -> "
                    f"{verdict(cheaper(s))}")
            short.append(f"perf engine CPU per sample <= perf record's: {v} "
                         f"({len(ok)}/{len(results)})")
        else:
            add("- CPU per sample no more than perf record's: not evaluated (perf record "
                "not available)")
            short.append("perf engine CPU per sample <= perf record's: NOT EVALUATED")
        add("")
    pt = "pprofc-ptrace"
    add("### pprofc's ptrace engine (the earlier goals, for reference)")
    add("")
    if pt not in modes:
        add(f"Not evaluated: the ptrace engine could not run ({info['avail'][pt][1]}).")
    else:
        one = next((s for s in results if s["threads"] == 1 and s["hz"] == 100), None)
        if one:
            r = one[pt]["ratio"]
            add(f"- Throughput at 100 Hz with one busy thread >= {GOAL_PTRACE_RATIO * 100:.0f}% "
                f"of unprofiled: {pct(r, '.2f')} -> **{verdict(r >= GOAL_PTRACE_RATIO)}**")
        else:
            add("- Throughput at 100 Hz with one busy thread: configuration not run")
        met = [s for s in results if s[pt]["stop_median_us"] <= GOAL_STOP_US]
        add(f"- Stopped per sample, median <= {GOAL_STOP_US:.0f} us (within 20% of the "
            f"~{GOAL_HANDSHAKE_US} us ptrace stop handshake, docs/ARCHITECTURE.md, 'Measured "
            f"costs'): **{verdict(len(met) == len(results))}** ({len(met)} of {len(results)} "
            f"configurations):")
        for s in results:
            p = s[pt]
            add(f"  - {s['threads']} threads, {s['hz']} Hz: median {p['stop_median_us']:g} us "
                f"(per run: {', '.join(map(str, p['stop_median_all']))}) -> "
                f"{verdict(p['stop_median_us'] <= GOAL_STOP_US)}")
    add("")
    return L, short


def build_section(args, results, info):
    modes = info["modes"]
    prof_modes = [m for m in modes if m != "unprofiled"]
    L = []
    add = L.append
    add("# pprofc CPU profile benchmark results")
    add("")
    add(f"Written by `bench/cpu_profile.py` (between the `cpu:start` / `cpu:end` markers; "
        f"the rest of this file is left alone).  ")
    add(f"Command: `{info['argv']}` (run from `{ROOT}`)  ")
    add(f"Date: {info['date']} (took {info['elapsed'] / 60:.1f} min, after "
        f"{info['quiet']['waited_s'] / 60:.1f} min waiting for a quiet machine)  "
        if info["quiet"] else
        f"Date: {info['date']} (took {info['elapsed'] / 60:.1f} min)  ")
    add(f"pprofc: `{args.pprofc}`, sha256 `{info['sha']}` (same at the start and the end of "
        f"the run, checked before every configuration), git {info['git']}  ")
    add(f"Fixture: `{info['fixture']}`"
        + (f" ({info['fixture_note']})" if info["fixture_note"] else "")
        + f"; a fresh one per configuration, warmed up {args.warmup:g} s  ")
    add(f"Configurations: threads {{{','.join(map(str, args.threads))}}} x "
        f"Hz {{{','.join(map(str, args.hz))}}}; {args.rounds} rounds each; in each round "
        f"every mode ({', '.join(LABEL[m] for m in modes)}), in an order that changes every "
        f"round (a balanced Latin square: over {len(balanced_orders(len(modes)))} rounds each "
        f"mode runs once in each position and follows every other mode once); window "
        f"{args.window:g} s per run, profilers run {math.ceil(args.window + args.margin)} s  ")
    add("Window start: once the profiler is active, at the fixture's next counter snapshot. "
        "pprofc: its engine's descriptors are open (`anon_inode:[perf_event]` links in "
        "`/proc/PPROFC/fd` for the perf engine, the tick timer's `anon_inode:[timerfd]` for "
        "the ptrace engine): as many as the engine opens (perf: one event per fixture thread "
        "and online CPU, opened one thread after the other; ptrace: one), or, if that count "
        "is never reached, once their number has not changed for 0.5 s "
        f"({info['settled_runs']} runs of {info['pprofc_runs']} started that way); perf "
        "record: it has exec'd its `sleep`, which it does once its events are on.  ")
    n_disc = sum(len(s["discarded"]) for s in results)
    n_noisy = sum(1 for s in results for r in s["rounds"] if r["noisy"])
    where = [f"{s['threads']} threads {s['hz']} Hz: {len(s['discarded'])}"
             for s in results if s["discarded"]]
    add(f"Interference: a round in which other processes used more than "
        f"{args.max_others:g} cores during any of its windows is discarded and run again "
        f"(at most {args.retries} times in a row): {n_disc} rounds discarded"
        + (f" ({'; '.join(where)})" if where else "")
        + f"; {n_noisy} kept although over the limit (retries used up). Before each "
        f"configuration the script waits up to {args.idle_wait:g} s for such an idle machine."
        + ("  " if info["quiet"] else ""))
    q = info["quiet"]
    if q:
        if q["quiet"]:
            add(f"Quiet machine: before the run, no process matched `pgrep -f "
                f"'{args.quiet_pattern}'` and the 1-minute load average was {q['load']:.2f} "
                f"(< {args.quiet_load:g}), after waiting {q['waited_s'] / 60:.1f} min.")
        else:
            add(f"**Quiet machine: NOT reached** within {args.quiet_wait / 60:g} min "
                f"(1-minute load average {q['load']:.2f}, limit {args.quiet_load:g}"
                + (f"; still running: {'; '.join('`' + b[:100] + '`' for b in q['busy'])}"
                   if q["busy"] else "")
                + "); the run went ahead anyway, so other work may have shared the CPUs.")
    add("")
    add("## Machine")
    add("")
    add(f"- `nproc`: {info['nproc']}")
    add(f"- `uname -r`: {info['uname']}")
    add(f"- CPU: {info['cpu']}")
    add(f"- `perf --version`: {info['perf_version'] or 'not found'}")
    for m in ("pprofc-perf", "pprofc-ptrace", "perf-record"):
        ok, detail = info["avail"][m]
        if m == "perf-record":
            add(f"- perf record: usable; event used without `-e`: `{detail}`" if ok
                else f"- perf record: not available ({detail})")
        else:
            add(f"- {LABEL[m]} engine: " + ("usable" if ok else f"not available ({detail})"))
    add(f"- load average at the start: {info['loadavg']}")
    add(f"- python: {platform.python_version()}")
    add("")
    add("## Throughput")
    add("")
    add("Work units per second of the whole fixture (median over the rounds; each run's "
        "rate is taken from two counter snapshots about "
        f"{args.window:g} s apart, all inside the profiled time). Ratio = profiled median / "
        "unprofiled median. Unprofiled min-max shows the run-to-run noise.")
    add("")
    hdr = "| threads | Hz | unprofiled units/s (min-max) |"
    sep = "|---:|---:|---:|"
    for m in prof_modes:
        hdr += f" {LABEL[m]} units/s | {LABEL[m]} / unprofiled |"
        sep += "---:|---:|"
    add(hdr)
    add(sep)
    for s in results:
        u = s["unprofiled"]
        row = (f"| {s['threads']} | {s['hz']} | {u['median']:,.0f} ({u['min']:,.0f}-"
               f"{u['max']:,.0f}) |")
        for m in prof_modes:
            row += f" {s[m]['median']:,.0f} | {pct(s[m]['ratio'])} |"
        add(row)
    missing = [m for m in MODES if m not in modes]
    for m in missing:
        add("")
        add(f"{LABEL[m]}: not measured ({info['avail'][m][1]}).")
    add("")
    add("Where the CPU went during the windows (medians; cores = CPU seconds per second, "
        f"{info['nproc']} on this machine): the fixture, the profiler, and the fixture's "
        "work units per second of its own CPU (what a stop or a cache disturbance costs "
        "beyond the CPU taken away). Others: the most any run of the configuration saw "
        "used by other processes (this script excluded; kernel threads included).")
    add("")
    add("| threads | Hz | mode | fixture cores | profiler cores | units per fixture CPU-s "
        "| others max cores |")
    add("|---:|---:|---|---:|---:|---:|---:|")
    for s in results:
        for m in modes:
            q = s[m]
            prof = "-" if m == "unprofiled" else f"{q['profiler_cores']:.3f}"
            add(f"| {s['threads']} | {s['hz']} | {LABEL[m]} | {q['fixture_cores']:.2f} | {prof} | "
                f"{fmt(q['units_per_cpu_s'], ',.0f')} | {q['others_max']:.2f} |")
    add("")
    add("## CPU per sample")
    add("")
    add("Each profiler's own CPU, user+sys from `os.wait4` for the whole run, divided by its "
        "samples (median over the rounds of each run's ratio; samples and CPU s are medians "
        "too). pprofc: attaching, sampling, unwinding, symbolizing and writing the profile; "
        "its samples are the count in its summary. perf record: recording and what it does "
        "at the end (build ids), its samples the \"(N samples)\" it prints; its unwinding "
        "happens later, in `perf report`, which is not measured. A perf-engine sample and a "
        "perf record sample each stand for one period of a thread's CPU; a ptrace-engine "
        "sample stands for the CPU its thread used since its last sample, at most one period.")
    add("")
    hdr = "| threads | Hz |"
    sep = "|---:|---:|"
    for m in prof_modes:
        hdr += f" {LABEL[m]} samples | CPU s | us per sample |"
        sep += "---:|---:|---:|"
    add(hdr)
    add(sep)
    for s in results:
        row = f"| {s['threads']} | {s['hz']} |"
        for m in prof_modes:
            q = s[m]
            row += (f" {fmt(q['samples'], 'g')} | {q['cpu_s']:.3f} | "
                    f"{fmt(q['cpu_per_sample_us'], '.0f')} |")
        add(row)
    lo_hz, hi_hz = min(args.hz), max(args.hz)
    if lo_hz != hi_hz:
        add("")
        add(f"Marginal cost per sample, {lo_hz} -> {hi_hz} Hz at the same thread count "
            "(CPU difference / samples difference, medians; fixed costs such as loading "
            "debug info or perf's build-id pass cancel):")
        add("")
        for n in args.threads:
            lo = next((s for s in results if s["threads"] == n and s["hz"] == lo_hz), None)
            hi = next((s for s in results if s["threads"] == n and s["hz"] == hi_hz), None)
            if not lo or not hi:
                continue
            parts = []
            for m in prof_modes:
                p, q = hi[m], lo[m]
                if p["samples"] is None or q["samples"] is None:
                    parts.append(f"{LABEL[m]} not computable (no sample count)")
                    continue
                ds = p["samples"] - q["samples"]
                dc = p["cpu_s"] - q["cpu_s"]
                if ds > 0 and dc > 0:
                    parts.append(f"{LABEL[m]} ({p['cpu_s']:.3f} - {q['cpu_s']:.3f}) s / "
                                 f"({p['samples']:g} - {q['samples']:g}) = "
                                 f"{dc / ds * 1e6:.1f} us")
                else:
                    parts.append(f"{LABEL[m]} not computable ({p['samples']:g} samples for "
                                 f"{p['cpu_s']:.3f} s at {hi_hz} Hz, {q['samples']:g} for "
                                 f"{q['cpu_s']:.3f} s at {lo_hz} Hz)")
            add(f"- {n} threads: " + "; ".join(parts))
    add("")
    if "pprofc-perf" in modes:
        add("## pprofc, perf engine")
        add("")
        add("Medians over the rounds, the largest value of any round in parentheses. Lost: "
            "the summary's \"N lost\"; dropped by the kernel: records lost because a ring "
            "buffer was full (part of lost). CPU by the samples and by the kernel are pprofc's "
            "own summary: the CPU time its samples stand for and the CPU time the kernel "
            "counted for the sampled threads (the truth); samples / kernel is the median of "
            "each run's ratio (lowest in parentheses). Startup: launch until the engine's "
            "descriptors were all open; perf_event fds: how many (median) of the expected "
            "(fixture threads x online CPUs).")
        add("")
        add("| threads | Hz | samples | lost (max) | dropped by the kernel (max) | CPU by the "
            "samples s | CPU by the kernel s | samples / kernel (min) | pprofc CPU ms per s | "
            "startup s | perf_event fds (expected) |")
        add("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for s in results:
            p = s["pprofc-perf"]
            add(f"| {s['threads']} | {s['hz']} | {p['samples']:g} | {p['lost']:g} "
                f"({p['lost_max']}) | {p['lost_kernel']:g} ({p['lost_kernel_max']}) | "
                f"{p['cpu_by_samples_s']:.2f} | {p['cpu_by_kernel_s']:.2f} | "
                f"{pct(p['samples_vs_kernel'])} ({pct(p['samples_vs_kernel_min'])}) | "
                f"{p['cpu_per_s'] * 1000:.1f} | {p['startup_s']:.2f} | {p['engine_fds']:g} "
                f"({fmt(p['engine_fds_expected'], 'g')}) |")
        notes = []
        for s in results:
            p = s["pprofc-perf"]
            if p["kernel_excluded"]:
                notes.append(f"{s['threads']} threads, {s['hz']} Hz: kernel time not sampled "
                             "(perf_event_paranoid)")
            if p["cut_short_max"]:
                notes.append(f"{s['threads']} threads, {s['hz']} Hz: up to "
                             f"{p['cut_short_max']} stacks cut short")
            if p["skipped_max"]:
                notes.append(f"{s['threads']} threads, {s['hz']} Hz: up to "
                             f"{p['skipped_max']} ticks skipped")
        if notes:
            add("")
            add("Also: " + "; ".join(notes) + ".")
        add("")
    if "pprofc-ptrace" in modes:
        add("## pprofc, ptrace engine")
        add("")
        add("Medians over the rounds, the largest value of any round in parentheses. Lost: "
            "the summary's \"N lost\" (did not stop in time or ran while read, exited); "
            "landed off-CPU: stops that found the thread in a system call, dropped (not "
            "counted as lost); skipped ticks: ticks pprofc could not keep up with (\"fell "
            "behind\"). Stopped per sample: pprofc's own median and p99 for each run, then "
            "the median of those. CPU by the samples / by the kernel as for the perf engine.")
        add("")
        add("| threads | Hz | samples | lost (max) | landed off-CPU (max) | skipped ticks (max) "
            "| stopped median us | stopped p99 us | CPU by the samples s | CPU by the kernel s "
            "| samples / kernel (min) | pprofc CPU ms per s | startup s |")
        add("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for s in results:
            p = s["pprofc-ptrace"]
            skipped = f"{p['skipped']:g} ({p['skipped_max']})"
            if p["ticks"]:
                skipped += f" of {p['ticks']:g}"
            add(f"| {s['threads']} | {s['hz']} | {p['samples']:g} | {p['lost']:g} "
                f"({p['lost_max']}) | {p['off_cpu']:g} ({p['off_cpu_max']}) | {skipped} | "
                f"{p['stop_median_us']:g} | {p['stop_p99_us']:g} | "
                f"{p['cpu_by_samples_s']:.2f} | {p['cpu_by_kernel_s']:.2f} | "
                f"{pct(p['samples_vs_kernel'])} ({pct(p['samples_vs_kernel_min'])}) | "
                f"{p['cpu_per_s'] * 1000:.1f} | {p['startup_s']:.2f} |")
        add("")
    if "perf-record" in modes:
        add("## perf record")
        add("")
        add("`perf record -F H -g --call-graph dwarf`: perf copies 8 KiB of user stack per "
            "sample in the kernel and unwinds later, in `perf report` (not measured here); "
            "its CPU below is `perf record`'s only. Lost records: LOST events in `perf report "
            "--stats` of each recording (read after the run), the largest of any round.")
        add("")
        add("| threads | Hz | samples | data MB | lost records (max) | perf record CPU ms per s "
            "| CPU us per sample | startup s |")
        add("|---:|---:|---:|---:|---:|---:|---:|---:|")
        for s in results:
            q = s["perf-record"]
            lost = fmt(q["lost_events_max"], "g", "?")
            if q["lost_chunks"]:
                lost += f" ({q['lost_chunks']} chunks)"
            add(f"| {s['threads']} | {s['hz']} | {fmt(q['samples'], 'g')} | "
                f"{fmt(q['data_mb'], '.1f')} | {lost} | "
                f"{q['cpu_per_s'] * 1000:.1f} | {fmt(q['cpu_per_sample_us'], '.0f')} | "
                f"{q['startup_s']:.2f} |")
        add("")
    add("## Against the goals")
    add("")
    goals, _ = goal_lines(args, results, modes, info)
    L.extend(goals)
    add("## Per round")
    add("")
    add("Units per second per run, then per profiler: samples / CPU s of the whole run; "
        "ptrace engine: stopped median/p99 us and ticks skipped; the most CPU other "
        "processes used in one of the round's windows.")
    add("")
    for s in results:
        add(f"{s['threads']} threads, {s['hz']} Hz:")
        add("")
        cols = " | ".join(LABEL[m] for m in modes)
        extra = ""
        for m in prof_modes:
            extra += f" {LABEL[m]} samples / CPU s |"
        if "pprofc-ptrace" in modes:
            extra += " ptrace stop us | ptrace skipped |"
        add(f"| round | order | {cols} |{extra} others max cores |")
        add("|---:|---|" + "---:|" * len(modes) + "---:|" * (extra.count("|") + 1))
        for i, r in enumerate(s["rounds"]):
            recs = r["recs"]
            vals = " | ".join(f"{recs[m]['units_per_s']:,.0f}" for m in modes)
            row = f"| {i + 1} | {' > '.join(LABEL[m] for m in r['order'])} | {vals} |"
            for m in prof_modes:
                row += f" {fmt(recs[m]['samples'], 'g')} / {recs[m]['cpu_s']:.2f} |"
            if "pprofc-ptrace" in modes:
                p = recs["pprofc-ptrace"]
                row += f" {p['stop_median_us']}/{p['stop_p99_us']} | {p['skipped']} |"
            busy = max(recs[m]["others_cores"] for m in modes)
            row += f" {busy:.2f}{' (over the limit)' if r['noisy'] else ''} |"
            add(row)
        for d in s["discarded"]:
            recs = d["recs"]
            vals = ", ".join(f"{LABEL[m]} {recs[m]['units_per_s']:,.0f}" for m in modes)
            busy = max(recs[m]["others_cores"] for m in modes)
            add(f"\nDiscarded try of round {d['round']} "
                f"({' > '.join(LABEL[m] for m in d['order'])}): {vals}; "
                f"others {busy:.2f} cores.")
        add("")
    add("Health checks (fixture alive, TracerPid 0, no thread in t/T, thread count "
        "unchanged) passed after every run.")
    return "\n".join(L)


def write_results(section):
    write_section(RESULTS, "cpu", section)


# ---------------------------------------------------------------- main

def int_list(s):
    try:
        xs = [int(x) for x in s.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of integers: {s!r}")
    if not xs or min(xs) < 1:
        raise argparse.ArgumentTypeError(f"need positive integers: {s!r}")
    return xs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int_list, default=[1, 4, 16],
                    help="busy thread counts (default 1,4,16)")
    ap.add_argument("--hz", type=int_list, default=[100, 1000],
                    help="sampling rates (default 100,1000)")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--window", type=float, default=5.0,
                    help="seconds of throughput measured per run (default 5)")
    ap.add_argument("--margin", type=float, default=1.0,
                    help="profilers run window + margin seconds, rounded up (default 1)")
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--pause", type=float, default=0.5,
                    help="seconds between runs (default 0.5)")
    ap.add_argument("--pprofc", default=os.path.join(ROOT, "build/cli/pprofc"))
    ap.add_argument("--fixture", help="throughput binary (default: "
                    "build/tests/targets/throughput, else compiled to a temp dir)")
    ap.add_argument("--no-perf", action="store_true", help="skip perf record")
    ap.add_argument("--max-others", type=float, default=0.1,
                    help="a round in which other processes used more CPU cores than "
                    "this is run again (default 0.1)")
    ap.add_argument("--retries", type=int, default=5,
                    help="times a round may be run again (default 5)")
    ap.add_argument("--idle-wait", type=float, default=120,
                    help="seconds to wait for an idle machine before each "
                    "configuration (default 120)")
    ap.add_argument("--quiet-wait", type=float, default=0,
                    help="before the run, wait up to this many seconds until no process "
                    "matches --quiet-pattern and the 1-minute load average is below "
                    "--quiet-load (default 0: do not wait); the run goes ahead either "
                    "way, and the results say which")
    ap.add_argument("--quiet-pattern", default=QUIET_PATTERN,
                    help=f"pgrep -f pattern of work to wait for (default {QUIET_PATTERN!r})")
    ap.add_argument("--quiet-load", type=float, default=0.5,
                    help="1-minute load average to wait for (default 0.5)")
    ap.add_argument("--quiet-poll", type=float, default=30,
                    help="seconds between checks while waiting (default 30)")
    ap.add_argument("--timeout", type=float, default=120,
                    help="seconds a profiler may overrun before it is stopped")
    ap.add_argument("--write-results", action="store_true",
                    help="write the cpu section of bench/RESULTS.md")
    ap.add_argument("--pprofc-arg", action="append", default=[], metavar="ARG",
                    help="one more argument for pprofc attach (repeat: --pprofc-arg=--stack-size "
                         "--pprofc-arg=8192); to compare settings")
    ap.add_argument("--perf-stack", type=int, default=0, metavar="BYTES",
                    help="perf record's dwarf stack size (default: perf's own, 8192)")
    args = ap.parse_args()
    if args.rounds < 1 or args.window <= 0 or args.margin < 0.5:
        ap.error("need --rounds >= 1, --window > 0, --margin >= 0.5")
    argv = shlex.join(["python3", os.path.relpath(sys.argv[0], ROOT)
                       if os.path.isabs(sys.argv[0]) else sys.argv[0]] + sys.argv[1:])
    if not os.access(args.pprofc, os.X_OK):
        sys.exit(f"pprofc not found at {args.pprofc} (run `ninja -C build`)")

    live = []
    tmpdir = tempfile.mkdtemp(prefix="pprofc-cpu-bench-")
    try:
        quiet = wait_quiet(args) if args.quiet_wait > 0 else None
        if quiet:
            print(("quiet machine" if quiet["quiet"] else "machine NOT quiet, running anyway")
                  + f" after {quiet['waited_s'] / 60:.1f} min (load {quiet['load']:.2f})",
                  flush=True)
        t0 = time.monotonic()
        with open("/proc/loadavg") as f:
            loadavg = " ".join(f.read().split()[:3])
        info = {"argv": argv, "quiet": quiet,
                "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                "nproc": command_output(["nproc"]), "uname": platform.release(),
                "cpu": cpu_model(), "git": git_revision(), "loadavg": loadavg}
        fixture, info["fixture_note"] = find_fixture(args.fixture, tmpdir)
        info["fixture"] = fixture
        prints = {p: fingerprint(p) for p in (args.pprofc, fixture)}
        info["sha"] = prints[args.pprofc][2]
        print(f"pprofc sha256 {info['sha']}; load average {loadavg}", flush=True)
        avail, version = check_profilers(args, fixture, tmpdir, live)
        avail["unprofiled"] = (True, "")
        info.update(avail=avail, perf_version=version)
        modes = tuple(m for m in MODES if avail[m][0])
        info["modes"] = modes
        for m in MODES[1:]:
            ok, detail = avail[m]
            print(f"{LABEL[m]}: " + (f"usable ({detail})" if ok else f"NOT AVAILABLE ({detail})"),
                  flush=True)
        if len(modes) < 2:
            raise BenchError("no profiler can run: nothing to measure")
        # Per run: the window (or the profiler's seconds), start-up and
        # writing, the pause; perf record also its build-id pass and the
        # `perf report --stats` after it.
        per_run = args.window + 0.3 + args.pause
        prof_run = math.ceil(args.window + args.margin) + 1.0 + args.pause
        extra = 1.5 if "perf-record" in modes else 0
        est = len(args.threads) * len(args.hz) * (
            args.warmup + 2 + args.rounds * (per_run + (len(modes) - 1) * prof_run + extra))
        print(f"estimated time: {est / 60:.1f} min", flush=True)
        results = []
        for threads in args.threads:
            for hz in args.hz:
                check_unchanged(prints, f"before {threads} threads, {hz} Hz")
                print(f"{threads} threads, {hz} Hz", flush=True)
                results.append(run_config(args, fixture, threads, hz, modes, tmpdir, live))
        check_unchanged(prints, "during the run")
        info["elapsed"] = time.monotonic() - t0
        info["pprofc_runs"] = sum(len(s["rounds"]) for s in results
                                  for m in modes if m in ENGINE)
        info["settled_runs"] = sum(s[m]["settled_runs"] for s in results
                                   for m in modes if m in ENGINE)
        section = build_section(args, results, info)
        print()
        print(section)
        _, short = goal_lines(args, results, modes, info)
        print("\nGoals:\n  " + "\n  ".join(short), flush=True)
        if args.write_results:
            write_results(section)
            print(f"\nwrote the cpu section of {RESULTS}")
        return 0
    except (BenchError, subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        loud(f"BENCHMARK FAILED: {e}")
        return 1
    finally:
        for p in live:
            if p.returncode is None and p.poll() is None:
                p.kill()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    pass
        shutil.rmtree(tmpdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
