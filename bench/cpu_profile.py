#!/usr/bin/env python3
"""What a CPU profile costs the profiled process: pprofc attach vs perf record.

For each configuration (busy threads x sampling rate, default {1,4,16} x
{100,1000} Hz) the script starts a fresh tests/targets/throughput fixture
(THREADS busy threads, each calling work_unit() in a loop and counting the
calls; a reporter thread writes "UNITS NS" to a counter file every 100 ms),
warms it up, then for each round measures its throughput (work units per
second over a fixed window) in three modes, the order rotated every round:

  unprofiled  nothing attached
  pprofc      pprofc attach PID --seconds P --hz H -o DIR/x.pb.gz
  perf        perf record -F H -g --call-graph dwarf -p PID -o DIR/x.data -- sleep P

P is the window plus a margin: the window starts once the profiler is
active (pprofc: every thread of the fixture traced by it; perf: its
`sleep` child exec'd, which perf starts once its events are enabled) and
must end before the profiler stops, so the whole window is profiled.

Per pprofc run it parses the stderr summary (samples, lost, stopped per
sample median/p99, CPU by the samples vs by the kernel, skipped ticks) and
takes pprofc's own CPU time (user+sys) from os.wait4.  Between runs the
fixture must be alive, untraced and not stopped, or the script stops.

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
                      git_revision, loud)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "bench", "RESULTS.md")
START_MARK = "<!-- cpu:start -->"
END_MARK = "<!-- cpu:end -->"

# Goals, as stated for the CPU profiler.
GOAL_RATIO = 0.98          # at 100 Hz, one busy thread
GOAL_HANDSHAKE_US = 120    # ptrace stop handshake, docs/ARCHITECTURE.md, "Measured costs"
GOAL_STOP_US = GOAL_HANDSHAKE_US * 1.2   # median within 20% of it: 144 us

# pprofc attach's summary on stderr, e.g.
#   pprofc: 499 samples of 3 threads in 5.00 s: 4.99 s of CPU by the samples,
#   4.94 s by the kernel; 0 lost; stopped per sample: median 54 us, p99 143 us
SUMMARY = re.compile(
    r"pprofc: (\d+) samples of (\d+) threads in ([0-9.]+) s: ([0-9.]+) s of CPU "
    r"by the samples, ([0-9.]+) s by the kernel; (\d+) lost"
    r"(?: \((\d+) did not stop in time(?: or ran while read)?, (\d+) exited\))?"
    r"; stopped per sample: median (\d+) us, p99 (\d+) us")
#   pprofc: fell behind: 12 of 5000 ticks skipped while ...
BEHIND = re.compile(r"pprofc: fell behind: (\d+) of (\d+) ticks skipped")
#   [ perf record: Captured and wrote 8.093 MB /tmp/x.data (1005 samples) ]
PERF_WROTE = re.compile(r"Captured and wrote ([0-9.]+) MB .*\((\d+) samples\)")
PERF_LOST = re.compile(r"lost (\d+) chunks")

MODES = ("unprofiled", "pprofc", "perf")


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

    def counter_after(self, ns):
        """The first counter snapshot taken at or after monotonic time ns."""
        deadline = time.monotonic() + 5 + max(0, (ns - time.monotonic_ns()) / 1e9)
        while True:
            units, at = self.read_counter()
            if at >= ns:
                return units, at
            if time.monotonic() > deadline:
                raise BenchError("the fixture's reporter stopped updating the counter")
            time.sleep(min(0.02, max(0.001, (ns - at) / 1e9)))

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


# ---------------------------------------------------------------- perf

def perf_usable(binary, tmpdir, live):
    """(True, event name) or (False, reason), after a real 0.1 s recording."""
    perf = shutil.which("perf")
    if not perf:
        return False, "`perf` not found in PATH", None
    version = command_output([perf, "--version"])
    fx = Fixture(binary, 1, tmpdir, live)
    data = os.path.join(tmpdir, "perf-check.data")
    try:
        try:
            r = subprocess.run([perf, "record", "-F", "99", "-p", str(fx.pid), "-o", data,
                                "--", "sleep", "0.1"], capture_output=True, text=True,
                               timeout=60)
        except subprocess.TimeoutExpired:
            return False, "`perf record -F 99 -p PID -- sleep 0.1` timed out", version
        if r.returncode != 0 or not os.path.exists(data):
            why = (r.stderr.strip().splitlines() or [f"exit status {r.returncode}"])[0]
            return False, f"`perf record -F 99 -p PID -- sleep 0.1` failed: {why}", version
        ev = subprocess.run([perf, "evlist", "-i", data], capture_output=True, text=True,
                            timeout=60)
        event = (ev.stdout.strip().splitlines() or ["unknown event"])[0]
        fx.check("after the perf check")
        return True, event, version
    finally:
        fx.kill()
        for p in (data, data + ".old"):
            if os.path.exists(p):
                os.unlink(p)


# ---------------------------------------------------------------- one run

def profiler_argv(mode, args, pid, seconds, out):
    if mode == "pprofc":
        return [args.pprofc, "attach", str(pid), "--seconds", str(seconds),
                "--hz", str(args.cur_hz), "-o", out]
    return ["perf", "record", "-F", str(args.cur_hz), "-g", "--call-graph", "dwarf",
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


def measure(mode, fx, args, tmpdir, live):
    """Throughput of the fixture over one window, with `mode` attached."""
    rec = {"mode": mode}
    window_ns = int(args.window * 1e9)
    prof = None
    timer = None
    errf = None
    out = os.path.join(tmpdir, "x.pb.gz" if mode == "pprofc" else "x.data")
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
            while True:
                active = fx.traced_by(prof.pid) if mode == "pprofc" else perf_started(prof.pid)
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
        if mode == "pprofc":
            m = SUMMARY.search(err)
            if not m:
                raise BenchError(f"no summary line in pprofc's stderr: {err.strip()[-500:]}")
            rec.update(samples=int(m.group(1)), threads_seen=int(m.group(2)),
                       duration_s=float(m.group(3)), cpu_by_samples_s=float(m.group(4)),
                       cpu_by_kernel_s=float(m.group(5)), lost=int(m.group(6)),
                       stop_median_us=int(m.group(9)), stop_p99_us=int(m.group(10)))
            b = BEHIND.search(err)
            rec["skipped"] = int(b.group(1)) if b else 0
            rec["ticks"] = int(b.group(2)) if b else None
        else:
            m = PERF_WROTE.search(err)
            rec["samples"] = int(m.group(2)) if m else None
            rec["data_mb"] = float(m.group(1)) if m else None
            lost = PERF_LOST.search(err)
            rec["lost_chunks"] = int(lost.group(1)) if lost else 0
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


def run_config(args, fixture, threads, hz, modes, tmpdir, live):
    args.cur_hz = hz
    idle = wait_idle(args)
    fx = Fixture(fixture, threads, tmpdir, live)
    rounds, discarded = [], []
    try:
        time.sleep(args.warmup)
        fx.check("after the warm-up")
        r = 0
        tries = 0
        while r < args.rounds:
            k = r % len(modes)
            order = modes[k:] + modes[:k]
            recs = {}
            for mode in order:
                recs[mode] = measure(mode, fx, args, tmpdir, live)
                fx.check(f"after the {mode} run of round {r + 1}")
                time.sleep(args.pause)
            busy = max(recs[m]["others_cores"] for m in modes)
            line = ", ".join(f"{m} {recs[m]['units_per_s']:,.0f}/s" for m in modes)
            extra = ""
            if "pprofc" in recs:
                p = recs["pprofc"]
                extra = (f"; pprofc {p['samples']} samples, stop {p['stop_median_us']}/"
                         f"{p['stop_p99_us']} us, skipped {p['skipped']}, "
                         f"cpu {p['cpu_s']:.2f} s")
            extra += f"; others {busy:.2f} cores"
            if busy > args.max_others and tries < args.retries:
                # Something else ran during this round: its numbers are
                # about that, not about the profilers.  Kept for the
                # report, then the round is run again.
                tries += 1
                discarded.append({"round": r + 1, "order": order, "recs": recs})
                print(f"  round {r + 1}: DISCARDED, other processes used {busy:.2f} cores "
                      f"(> {args.max_others}): {line}{extra}", flush=True)
                time.sleep(2)
                continue
            rounds.append({"order": order, "recs": recs, "noisy": busy > args.max_others})
            print(f"  round {r + 1}: {line}{extra}", flush=True)
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
    for m in modes[1:]:
        s[m]["ratio"] = s[m]["median"] / base
        recs = [r["recs"][m] for r in rounds]
        s[m]["startup_s"] = med([x["startup_s"] for x in recs])
        s[m]["cpu_s"] = med([x["cpu_s"] for x in recs])
        s[m]["cpu_per_s"] = med([x["cpu_s"] / x["duration_s"] for x in recs])
        s[m]["samples"] = med([x["samples"] for x in recs])
        s[m]["cpu_per_sample_us"] = med([x["cpu_s"] / x["samples"] * 1e6
                                         for x in recs if x["samples"]])
        s[m]["wall_s"] = med([x["wall_s"] for x in recs])
    if "pprofc" in modes:
        recs = [r["recs"]["pprofc"] for r in rounds]
        p = s["pprofc"]
        for key in ("stop_median_us", "stop_p99_us", "lost", "skipped",
                    "cpu_by_samples_s", "cpu_by_kernel_s", "duration_s", "threads_seen"):
            p[key] = med([x[key] for x in recs])
        p["lost_max"] = max(x["lost"] for x in recs)
        p["skipped_max"] = max(x["skipped"] for x in recs)
        p["ticks"] = med([x["ticks"] for x in recs if x["ticks"]])
        p["stop_median_all"] = [x["stop_median_us"] for x in recs]
    if "perf" in modes:
        recs = [r["recs"]["perf"] for r in rounds]
        s["perf"]["data_mb"] = med([x["data_mb"] for x in recs])
        s["perf"]["lost_chunks"] = max(x["lost_chunks"] for x in recs)
    return s


def fmt(x, spec, none="-"):
    return none if x is None else format(x, spec)


def verdict(ok):
    return "MET" if ok else "NOT MET"


def build_section(args, results, info):
    modes = info["modes"]
    L = []
    add = L.append
    add("# pprofc CPU profile benchmark results")
    add("")
    add(f"Written by `bench/cpu_profile.py` (between the `cpu:start` / `cpu:end` markers; "
        f"the rest of this file is left alone).  ")
    add(f"Command: `{info['argv']}` (run from `{ROOT}`)  ")
    add(f"Date: {info['date']} (took {info['elapsed'] / 60:.1f} min)  ")
    add(f"pprofc: `{args.pprofc}`, sha256 `{info['sha']}` (same at the start and the end of "
        f"the run, checked before every configuration), git {info['git']}  ")
    add(f"Fixture: `{info['fixture']}`"
        + (f" ({info['fixture_note']})" if info["fixture_note"] else "")
        + f"; a fresh one per configuration, warmed up {args.warmup:g} s  ")
    add(f"Configurations: threads {{{','.join(map(str, args.threads))}}} x "
        f"Hz {{{','.join(map(str, args.hz))}}}; {args.rounds} rounds each, modes "
        f"alternating, order rotated every round; window {args.window:g} s per run, "
        f"profilers run {math.ceil(args.window + args.margin)} s  ")
    n_disc = sum(len(s["discarded"]) for s in results)
    n_noisy = sum(1 for s in results for r in s["rounds"] if r["noisy"])
    where = [f"{s['threads']} threads {s['hz']} Hz: {len(s['discarded'])}"
             for s in results if s["discarded"]]
    add(f"Interference: a round in which other processes used more than "
        f"{args.max_others:g} cores during any of its windows is discarded and run again "
        f"(at most {args.retries} times in a row): {n_disc} rounds discarded"
        + (f" ({'; '.join(where)})" if where else "")
        + f"; {n_noisy} kept although over the limit (retries used up). Before each "
        f"configuration the script waits up to {args.idle_wait:g} s for such an idle machine.")
    add("")
    add("## Machine")
    add("")
    add(f"- `nproc`: {info['nproc']}")
    add(f"- `uname -r`: {info['uname']}")
    add(f"- CPU: {info['cpu']}")
    add(f"- `perf --version`: {info['perf_version'] or 'not found'}")
    if info["perf_ok"]:
        add(f"- perf: usable; event used without `-e`: `{info['perf_event']}`")
    else:
        add(f"- perf: not available ({info['perf_event']})")
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
    hdr = "| threads | Hz | unprofiled units/s (min-max) | pprofc units/s | pprofc / unprofiled |"
    sep = "|---:|---:|---:|---:|---:|"
    if "perf" in modes:
        hdr += " perf units/s | perf / unprofiled |"
        sep += "---:|---:|"
    else:
        hdr += " perf |"
        sep += "---|"
    add(hdr)
    add(sep)
    for s in results:
        u = s["unprofiled"]
        row = (f"| {s['threads']} | {s['hz']} | {u['median']:,.0f} ({u['min']:,.0f}-"
               f"{u['max']:,.0f}) | {s['pprofc']['median']:,.0f} | "
               f"{s['pprofc']['ratio'] * 100:.1f}% |")
        if "perf" in modes:
            row += f" {s['perf']['median']:,.0f} | {s['perf']['ratio'] * 100:.1f}% |"
        else:
            row += f" not available ({info['perf_event']}) |"
        add(row)
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
            add(f"| {s['threads']} | {s['hz']} | {m} | {q['fixture_cores']:.2f} | {prof} | "
                f"{fmt(q['units_per_cpu_s'], ',.0f')} | {q['others_max']:.2f} |")
    add("")
    add("## pprofc")
    add("")
    add("Medians over the rounds. Stopped per sample: pprofc's own median and p99 for each "
        "run, then the median of those. CPU of pprofc: user+sys from `os.wait4`, for the "
        "whole run (attach, sampling, unwinding, symbolizing, writing), divided by the "
        "profile duration pprofc printed and by its samples. CPU by the samples and by "
        "the kernel are pprofc's own summary: the CPU time its samples stand for (each "
        "weighs the CPU the thread used since it was last looked at, at most one period) "
        "and the CPU time the kernel counted for the sampled threads (the truth).")
    add("")
    add("| threads | Hz | samples | lost (max) | skipped ticks (max) | stopped median us "
        "| stopped p99 us | pprofc CPU ms per s | pprofc CPU us per sample | CPU by the "
        "samples s | CPU by the kernel s | samples / kernel |")
    add("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for s in results:
        p = s["pprofc"]
        skipped = f"{p['skipped']:g} ({p['skipped_max']})"
        if p["ticks"]:
            skipped += f" of {p['ticks']:g}"
        add(f"| {s['threads']} | {s['hz']} | {p['samples']:g} | {p['lost']:g} "
            f"({p['lost_max']}) | {skipped} | {p['stop_median_us']:g} | "
            f"{p['stop_p99_us']:g} | {p['cpu_per_s'] * 1000:.1f} | "
            f"{fmt(p['cpu_per_sample_us'], '.0f')} | {p['cpu_by_samples_s']:.2f} | "
            f"{p['cpu_by_kernel_s']:.2f} | "
            f"{(p['cpu_by_samples_s'] / p['cpu_by_kernel_s'] * 100 if p['cpu_by_kernel_s'] else 0):.1f}% |")
    add("")
    big = next((s for s in results if s["threads"] == max(args.threads)
                and s["hz"] == max(args.hz)), None)
    if big:
        p = big["pprofc"]
        rate = p["samples"] / p["cpu_s"] if p["cpu_s"] else None
        add(f"**Samples handled per second of pprofc CPU** ({big['threads']} threads, "
            f"{big['hz']} Hz, warm cache: one fixture, same stacks every sample): "
            f"{fmt(rate, ',.0f')} (median {p['samples']:g} samples for {p['cpu_s']:.2f} s of "
            f"pprofc CPU; this CPU covers the whole run: seizing, the stop/resume "
            f"syscalls, unwinding, symbolizing and writing the profile).")
    # Marginal cost per sample: the CPU pprofc spends on the extra samples
    # of the highest rate over the lowest, per thread count (fixed costs,
    # such as loading debug info, cancel out).
    lo_hz, hi_hz = min(args.hz), max(args.hz)
    if lo_hz != hi_hz:
        add("")
        add(f"Marginal cost per sample, {lo_hz} -> {hi_hz} Hz at the same thread count "
            "(pprofc CPU difference / samples difference, medians; fixed costs cancel):")
        add("")
        for n in args.threads:
            lo = next((s for s in results if s["threads"] == n and s["hz"] == lo_hz), None)
            hi = next((s for s in results if s["threads"] == n and s["hz"] == hi_hz), None)
            if not lo or not hi:
                continue
            p, q = hi["pprofc"], lo["pprofc"]
            ds = p["samples"] - q["samples"]
            dc = p["cpu_s"] - q["cpu_s"]
            if ds > 0 and dc > 0:
                add(f"- {n} threads: ({p['cpu_s']:.3f} - {q['cpu_s']:.3f}) s / ({p['samples']:g} "
                    f"- {q['samples']:g}) samples = {dc / ds * 1e6:.0f} us per sample, "
                    f"{ds / dc:,.0f} samples per CPU-second")
            else:
                add(f"- {n} threads: not computable: {p['samples']:g} samples at {hi_hz} Hz "
                    f"for {p['cpu_s']:.3f} s against {q['samples']:g} at {lo_hz} Hz for "
                    f"{q['cpu_s']:.3f} s (pprofc did not take more samples at the higher rate)")
        add("")
    if "perf" in modes:
        add("## perf record")
        add("")
        add("`perf record -F H -g --call-graph dwarf`: perf copies 8 KiB of user stack per "
            "sample in the kernel and unwinds later, in `perf report` (not measured here); "
            "its CPU below is `perf record`'s only.")
        add("")
        add("| threads | Hz | samples | data MB | lost chunks (max) | perf record CPU ms per s "
            "| CPU us per sample | startup s |")
        add("|---:|---:|---:|---:|---:|---:|---:|---:|")
        for s in results:
            q = s["perf"]
            add(f"| {s['threads']} | {s['hz']} | {fmt(q['samples'], 'g')} | "
                f"{fmt(q['data_mb'], '.1f')} | {q['lost_chunks']} | "
                f"{q['cpu_per_s'] * 1000:.1f} | {fmt(q['cpu_per_sample_us'], '.0f')} | "
                f"{q['startup_s']:.2f} |")
        add("")
    add("## Against the goals")
    add("")
    one = next((s for s in results if s["threads"] == 1 and s["hz"] == 100), None)
    if one:
        r = one["pprofc"]["ratio"]
        add(f"- Throughput at 100 Hz with one busy thread >= {GOAL_RATIO * 100:.0f}% of "
            f"unprofiled: {r * 100:.1f}% -> **{verdict(r >= GOAL_RATIO)}**")
    else:
        add("- Throughput at 100 Hz with one busy thread: configuration not run")
    met = [s for s in results if s["pprofc"]["stop_median_us"] <= GOAL_STOP_US]
    add(f"- Stopped per sample, median <= {GOAL_STOP_US:.0f} us (within 20% of the "
        f"~{GOAL_HANDSHAKE_US} us ptrace stop handshake, docs/ARCHITECTURE.md, 'Measured costs'): "
        f"**{verdict(len(met) == len(results))}** ({len(met)} of {len(results)} "
        f"configurations):")
    for s in results:
        p = s["pprofc"]
        add(f"  - {s['threads']} threads, {s['hz']} Hz: median {p['stop_median_us']:g} us "
            f"(per run: {', '.join(map(str, p['stop_median_all']))}) -> "
            f"{verdict(p['stop_median_us'] <= GOAL_STOP_US)}")
    add("")
    add("## Per round")
    add("")
    add("Units per second per run; pprofc: stopped median/p99 us, samples, skipped ticks, "
        "CPU s; the most CPU other processes used in one of the round's windows.")
    add("")
    for s in results:
        add(f"{s['threads']} threads, {s['hz']} Hz:")
        add("")
        cols = " | ".join(modes)
        add(f"| round | order | {cols} | pprofc stop us | pprofc samples | skipped | "
            f"pprofc CPU s | others max cores |")
        add("|---:|---|" + "---:|" * len(modes) + "---:|---:|---:|---:|---:|")
        for i, r in enumerate(s["rounds"]):
            recs = r["recs"]
            p = recs["pprofc"]
            vals = " | ".join(f"{recs[m]['units_per_s']:,.0f}" for m in modes)
            busy = max(recs[m]["others_cores"] for m in modes)
            add(f"| {i + 1} | {' > '.join(r['order'])} | {vals} | {p['stop_median_us']}/"
                f"{p['stop_p99_us']} | {p['samples']} | {p['skipped']} | {p['cpu_s']:.2f} | "
                f"{busy:.2f}{' (over the limit)' if r['noisy'] else ''} |")
        for d in s["discarded"]:
            recs = d["recs"]
            vals = ", ".join(f"{m} {recs[m]['units_per_s']:,.0f}" for m in modes)
            busy = max(recs[m]["others_cores"] for m in modes)
            add(f"\nDiscarded try of round {d['round']} ({' > '.join(d['order'])}): {vals}; "
                f"others {busy:.2f} cores.")
        add("")
    add("Health checks (fixture alive, TracerPid 0, no thread in t/T, thread count "
        "unchanged) passed after every run.")
    return "\n".join(L)


def write_results(section):
    """Replace what lies between the cpu markers of RESULTS.md, or append them."""
    try:
        with open(RESULTS) as f:
            text = f.read()
    except FileNotFoundError:
        text = ""
    block = f"{START_MARK}\n{section}\n{END_MARK}"
    a, b = text.find(START_MARK), text.find(END_MARK)
    if a >= 0 and b > a:
        text = text[:a] + block + text[b + len(END_MARK):]
    elif a < 0 and b < 0:
        text = text.rstrip("\n") + ("\n\n" if text else "") + block + "\n"
    else:
        raise BenchError(f"{RESULTS}: the {START_MARK} / {END_MARK} markers are "
                         f"missing or out of order; fix the file by hand")
    tmp = RESULTS + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, RESULTS)


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
    ap.add_argument("--rounds", type=int, default=5)
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
    ap.add_argument("--no-perf", action="store_true", help="skip perf")
    ap.add_argument("--max-others", type=float, default=0.1,
                    help="a round in which other processes used more CPU cores than "
                    "this is run again (default 0.1)")
    ap.add_argument("--retries", type=int, default=5,
                    help="times a round may be run again (default 5)")
    ap.add_argument("--idle-wait", type=float, default=120,
                    help="seconds to wait for an idle machine before each "
                    "configuration (default 120)")
    ap.add_argument("--timeout", type=float, default=120,
                    help="seconds a profiler may overrun before it is stopped")
    ap.add_argument("--write-results", action="store_true",
                    help="write the cpu section of bench/RESULTS.md")
    args = ap.parse_args()
    if args.rounds < 1 or args.window <= 0 or args.margin < 0.5:
        ap.error("need --rounds >= 1, --window > 0, --margin >= 0.5")
    argv = shlex.join(["python3", os.path.relpath(sys.argv[0], ROOT)
                       if os.path.isabs(sys.argv[0]) else sys.argv[0]] + sys.argv[1:])
    if not os.access(args.pprofc, os.X_OK):
        sys.exit(f"pprofc not found at {args.pprofc} (run `ninja -C build`)")

    t0 = time.monotonic()
    live = []
    tmpdir = tempfile.mkdtemp(prefix="pprofc-cpu-bench-")
    try:
        with open("/proc/loadavg") as f:
            loadavg = " ".join(f.read().split()[:3])
        info = {"argv": argv,
                "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                "nproc": command_output(["nproc"]), "uname": platform.release(),
                "cpu": cpu_model(), "git": git_revision(), "loadavg": loadavg}
        fixture, info["fixture_note"] = find_fixture(args.fixture, tmpdir)
        info["fixture"] = fixture
        prints = {p: fingerprint(p) for p in (args.pprofc, fixture)}
        info["sha"] = prints[args.pprofc][2]
        print(f"pprofc sha256 {info['sha']}; load average {loadavg}", flush=True)
        if args.no_perf:
            ok, event, version = False, "skipped with --no-perf", command_output(["perf", "--version"])
        else:
            ok, event, version = perf_usable(fixture, tmpdir, live)
        info.update(perf_ok=ok, perf_event=event, perf_version=version)
        modes = MODES if ok else MODES[:2]
        info["modes"] = modes
        print(f"perf: {'usable, event ' + event if ok else 'not available (' + event + ')'}",
              flush=True)
        per_run = args.window + 0.3 + args.pause
        prof_run = math.ceil(args.window + args.margin) + 0.5 + args.pause
        est = len(args.threads) * len(args.hz) * (
            args.warmup + 1 + args.rounds * (per_run + (len(modes) - 1) * prof_run))
        print(f"estimated time: {est / 60:.1f} min", flush=True)
        results = []
        for threads in args.threads:
            for hz in args.hz:
                check_unchanged(prints, f"before {threads} threads, {hz} Hz")
                print(f"{threads} threads, {hz} Hz", flush=True)
                results.append(run_config(args, fixture, threads, hz, modes, tmpdir, live))
        check_unchanged(prints, "during the run")
        info["elapsed"] = time.monotonic() - t0
        section = build_section(args, results, info)
        print()
        print(section)
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
