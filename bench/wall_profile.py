#!/usr/bin/env python3
"""What a wall profile of a mostly idle process costs: pprofc's default
(blocked threads read without stopping them, running ones charged to their
latest perf_event CPU sample: nothing stopped), --engine ptrace (running
threads stopped for their stacks) and --force-stop (every thread stopped at
every tick, as plain ptrace samplers do).

The target is tests/targets/throughput with one busy thread (counting its
work units; a reporter writes "UNITS NS" every 100 ms) and --idle idle
threads (default 500) blocked forever in pthread_cond_wait, read, epoll_wait
and nanosleep.  Each round measures, over a --window (default 10 s), in
three modes whose order rotates every round:

  unprofiled  nothing attached
  pprofc      pprofc attach PID --profile wall --hz H --seconds P -o FILE
  ptrace      the same with --engine ptrace
  force-stop  the same with --force-stop

and records the target's throughput (work units per second) and CPU use,
pprofc's own CPU time (user+sys, from os.wait4), and from pprofc's summary
the samples handled per second, the ticks skipped and the stop times.  The
window starts once pprofc's engine runs (its perf_event or timerfd
descriptors are open: cpu_profile.EngineWatch) and ends before pprofc
stops.  Between runs the target must be alive, untraced and
not stopped, or the script stops.

Shares its fixture, CPU meter and machine checks with cpu_profile.py, and
benchlib.py with every script.
stdlib only.  See bench/README.md ("wall_profile.py").
"""
import argparse
import datetime
import math
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time

import cpu_profile as cp
from benchlib import BenchError, cpu_model, git_revision, loud, write_section

MODES = ("unprofiled", "pprofc", "ptrace", "force-stop")

#   pprofc: 974 samples of 5 threads in 2.00 s: 9.74 s of thread time by the
#   samples, of which CPU 0.09 s by the kernel; 0 lost; engine: ptrace,
#   stopped per sample: median 102 us, p99 1778 us
# or, with the perf engine, "...; engine: perf, nothing stopped".
SUMMARY = re.compile(
    r"pprofc: (\d+) samples of (\d+) threads in ([0-9.]+) s: .*?; (\d+) lost.*?"
    r"engine: (?:perf, nothing stopped|ptrace, stopped per sample: median (\d+) us, p99 (\d+) us)")


def profiler_argv(mode, args, pid, seconds, out):
    argv = [args.pprofc, "attach", str(pid), "--profile", "wall", "--seconds", str(seconds),
            "--hz", str(args.hz), "-o", out]
    return argv + {"force-stop": ["--force-stop"], "ptrace": ["--engine", "ptrace"]}.get(mode, [])


def parse_summary(err):
    m = SUMMARY.search(err.replace("\n", " "))
    if not m:
        raise BenchError(f"no summary line in pprofc's stderr: {err.strip()[-500:]}")
    b = cp.BEHIND.search(err)
    return {"samples": int(m.group(1)), "threads_seen": int(m.group(2)),
            "duration_s": float(m.group(3)), "lost": int(m.group(4)),
            "stop_median_us": int(m.group(5)) if m.group(5) else None,
            "stop_p99_us": int(m.group(6)) if m.group(6) else None,
            "skipped": int(b.group(1)) if b else 0}


def start_profiler(mode, fx, args, tmpdir, live, out):
    """Launches pprofc and waits until its engine runs."""
    seconds = math.ceil(args.window + args.margin)
    argv = profiler_argv(mode, args, fx.pid, seconds, out)
    errf = open(os.path.join(tmpdir, f"{mode}.stderr"), "w+")
    t0 = time.monotonic()
    prof = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=errf,
                            stdin=subprocess.DEVNULL)
    live.append(prof)
    timer = threading.Timer(seconds + args.timeout, prof.send_signal, (signal.SIGINT,))
    timer.start()
    watch = cp.EngineWatch(prof.pid, "perf" if mode == "pprofc" else "ptrace")
    while not watch.active():
        if prof.poll() is not None:
            errf.seek(0)
            raise BenchError(f"{mode} exited ({prof.returncode}) before it was active: "
                                f"{errf.read().strip()[-500:]}")
        if time.monotonic() - t0 > 30:
            raise BenchError(f"{mode} not active 30 s after launch")
        time.sleep(0.005)
    return prof, errf, timer, argv


def finish_profiler(prof, errf, argv):
    if prof.poll() is not None:
        raise BenchError("pprofc ended before the end of the window: raise --margin")
    _, status, ru = os.wait4(prof.pid, 0)
    prof.returncode = os.waitstatus_to_exitcode(status)
    errf.seek(0)
    err = errf.read()
    if prof.returncode != 0:
        raise BenchError(f"{shlex.join(argv)} exited {prof.returncode}: {err.strip()[-500:]}")
    rec = parse_summary(err)
    rec["cpu_s"] = ru.ru_utime + ru.ru_stime
    rec["stderr"] = err
    return rec


def measure(mode, fx, args, tmpdir, live):
    """Throughput and CPU over one window with `mode` attached."""
    out = os.path.join(tmpdir, "wall.pb.gz")
    prof = errf = timer = None
    try:
        if mode != "unprofiled":
            prof, errf, timer, argv = start_profiler(mode, fx, args, tmpdir, live, out)
        u0, n0 = fx.counter_after(time.monotonic_ns())
        meter = cp.CpuMeter(fx.pid, prof.pid if prof else None)
        u1, n1 = fx.counter_after(n0 + int(args.window * 1e9))
        rec = meter.stop()
        rec["units_per_s"] = (u1 - u0) / ((n1 - n0) / 1e9)
        if prof:
            rec.update(finish_profiler(prof, errf, argv))
            rec["samples_per_s"] = rec["samples"] / rec["duration_s"]
            rec["cpu_per_s"] = rec["cpu_s"] / rec["duration_s"]
        return rec
    finally:
        cp.end_profiler(prof, timer, errf)
        if os.path.exists(out):
            os.unlink(out)


def run_rounds(args, binary, tmpdir, live):
    cp.wait_idle(args)
    fx = cp.Fixture(binary, 1, tmpdir, live, idle=args.idle)
    rounds = []
    try:
        time.sleep(args.warmup)
        fx.check("after the warm-up")
        for r in range(args.rounds):
            k = r % len(MODES)
            order = MODES[k:] + MODES[:k]
            recs = {}
            for mode in order:
                recs[mode] = measure(mode, fx, args, tmpdir, live)
                fx.check(f"after the {mode} run of round {r + 1}")
                time.sleep(args.pause)
            rounds.append(recs)
            print(f"  round {r + 1}: " + "; ".join(
                f"{m} {recs[m]['units_per_s']:,.0f}/s"
                + (f", pprofc cpu {recs[m]['cpu_s']:.2f} s, {recs[m]['samples_per_s']:,.0f} "
                   f"samples/s, skipped {recs[m]['skipped']}" if m != "unprofiled" else "")
                for m in MODES) + f"; others {max(x['others_cores'] for x in recs.values()):.2f} cores",
                flush=True)
    finally:
        fx.kill()
    return rounds


def summarize(rounds):
    s = {}
    for m in MODES:
        recs = [r[m] for r in rounds]
        s[m] = {key: cp.med([x.get(key) for x in recs])
                for key in ("units_per_s", "fixture_cores", "others_cores", "cpu_s", "cpu_per_s",
                            "samples_per_s", "skipped", "lost", "stop_median_us", "stop_p99_us")}
        s[m]["ratio"] = cp.med([r[m]["units_per_s"] / r["unprofiled"]["units_per_s"]
                                for r in rounds])
    return s


def fmt(x, spec):
    return "-" if x is None else format(x, spec)


def build_section(args, s, info):
    p, t, f, u = s["pprofc"], s["ptrace"], s["force-stop"], s["unprofiled"]
    lines = [
        "## Wall profile of a mostly idle process (issue 4)",
        "",
        f"`{info['command']}`",
        "",
        f"- {info['date']}, git {info['git']}, {info['cpu']}, {os.cpu_count()} CPUs.",
        f"- Target: `throughput 1 COUNTER {args.idle}`: one busy thread and {args.idle} idle "
        f"threads (cond var, pipe read, epoll_wait, nanosleep); wall profile at {args.hz} Hz, "
        f"a {args.window:g} s window, {args.rounds} rounds, the order rotated each round; "
        "medians.",
        "",
        "| | unprofiled | pprofc (default: perf) | pprofc --engine ptrace | pprofc --force-stop |",
        "|---|---|---|---|---|",
        f"| target throughput, units/s | {fmt(u['units_per_s'], ',.0f')} | "
        f"{fmt(p['units_per_s'], ',.0f')} | {fmt(t['units_per_s'], ',.0f')} | "
        f"{fmt(f['units_per_s'], ',.0f')} |",
        f"| target throughput / unprofiled | 100% | {fmt(100 * p['ratio'], '.1f')}% | "
        f"{fmt(100 * t['ratio'], '.1f')}% | {fmt(100 * f['ratio'], '.1f')}% |",
        f"| target CPU use, cores | {fmt(u['fixture_cores'], '.3f')} | "
        f"{fmt(p['fixture_cores'], '.3f')} | {fmt(t['fixture_cores'], '.3f')} | "
        f"{fmt(f['fixture_cores'], '.3f')} |",
        f"| pprofc CPU, s per profiled s | - | {fmt(p['cpu_per_s'], '.3f')} | "
        f"{fmt(t['cpu_per_s'], '.3f')} | {fmt(f['cpu_per_s'], '.3f')} |",
        f"| samples handled per s | - | {fmt(p['samples_per_s'], ',.0f')} | "
        f"{fmt(t['samples_per_s'], ',.0f')} | {fmt(f['samples_per_s'], ',.0f')} |",
        f"| ticks skipped (of {int(args.hz * math.ceil(args.window + args.margin))}) | - | "
        f"{fmt(p['skipped'], '.0f')} | {fmt(t['skipped'], '.0f')} | {fmt(f['skipped'], '.0f')} |",
        f"| samples lost | - | {fmt(p['lost'], '.0f')} | {fmt(t['lost'], '.0f')} | "
        f"{fmt(f['lost'], '.0f')} |",
        f"| stop per stopped sample, median (p99) µs | - | none stopped | "
        f"{fmt(t['stop_median_us'], '.0f')} ({fmt(t['stop_p99_us'], '.0f')}) | "
        f"{fmt(f['stop_median_us'], '.0f')} ({fmt(f['stop_p99_us'], '.0f')}) |",
        f"| other processes, cores | {fmt(u['others_cores'], '.2f')} | "
        f"{fmt(p['others_cores'], '.2f')} | {fmt(t['others_cores'], '.2f')} | "
        f"{fmt(f['others_cores'], '.2f')} |",
        "",
        "Samples handled counts every thread at every tick, repeated samples of threads "
        "that did not run included; with --force-stop each of them is a ptrace stop.",
    ]
    return "\n".join(lines)


def write_results(section):
    write_section(RESULTS, "wall", section)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--idle", type=int, default=500, help="idle threads (default 500)")
    ap.add_argument("--hz", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--window", type=float, default=10.0)
    ap.add_argument("--margin", type=float, default=2.0,
                    help="seconds pprofc runs past the window (default 2)")
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--pause", type=float, default=0.5)
    ap.add_argument("--pprofc", default=os.path.join(cp.ROOT, "build/cli/pprofc"))
    ap.add_argument("--fixture", help="throughput binary (default: build/tests/targets/throughput)")
    ap.add_argument("--max-others", type=float, default=0.1)
    ap.add_argument("--idle-wait", type=float, default=120)
    ap.add_argument("--timeout", type=float, default=120)
    ap.add_argument("--write-results", action="store_true",
                    help="replace the wall section of bench/RESULTS.md")
    args = ap.parse_args()
    live = []
    tmpdir = tempfile.mkdtemp(prefix="pprofc-wallbench-")
    try:
        binary, _ = cp.find_fixture(args.fixture, tmpdir)
        rounds = run_rounds(args, binary, tmpdir, live)
    except BenchError as e:
        loud(str(e))
        return 1
    finally:
        for p in live:
            if p.poll() is None:
                p.kill()
                p.wait()
    s = summarize(rounds)
    info = {"command": "python3 bench/wall_profile.py " + shlex.join(sys.argv[1:]),
            "date": datetime.date.today().isoformat(), "git": git_revision(),
            "cpu": cpu_model()}
    section = build_section(args, s, info)
    print("\n" + section)
    if args.write_results:
        write_results(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
