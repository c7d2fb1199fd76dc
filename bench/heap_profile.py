#!/usr/bin/env python3
"""Benchmark `pprofc run --profile heap` and `pprofc attach --profile
allocs` against heaptrack on alloc_churn.

The target is build/tests/targets/alloc_churn THREADS SECONDS (source
tests/targets/alloc_churn.c): THREADS threads replace blocks of assorted
sizes in rings of 256 live ones, filling each new block, as fast as they
can, for SECONDS, then
print "ops_per_s X" (malloc/free pairs per second, all threads) and
"cpu_ns_per_op Y" (the fixture's own CPU time per pair).  The first is
the throughput; the second is what the sampler costs inside the target,
whatever else runs on the machine (on these 2 CPUs the fixture's threads
take both, so pprofc's reader also slows it down: its own CPU time is
reported apart).  Each round runs, in an order rotated every
round so that no mode always goes first:

  none       the fixture alone
  pprofc     pprofc run --profile heap --heap-rate RATE -o FILE -- fixture
  attach     pprofc attach PID --profile allocs --heap-rate RATE, uprobes
             on the allocator (issue 12), at its default --max-hit-rate:
             the fixture (ALLOC_CHURN_WAIT=1) starts once every probe is
             in place, and pprofc is stopped (SIGINT) once it is done
  attach-nocap  the same with --max-hit-rate 0: what every hit costs
  heaptrack  heaptrack -o FILE fixture   (records every allocation)

and reports each mode's median throughput, its slowdown against the
fixture alone (1 - the median over rounds of mode / none in the same
round) with a distribution-free interval for that median (order
statistics of the per-round ratios), its overhead (the time it adds to each pair: the median of
none / mode - 1), and how many times heaptrack's overhead is pprofc's.
The ratio is of overheads, not of slowdowns: a slowdown cannot pass
100%, so with heaptrack near it the ratio of slowdowns is capped at
1 / pprofc's slowdown whatever heaptrack costs.  Goals (issue 11): pprofc at most 3%
slower at the default rate; at least 10x less overhead than heaptrack.

With --write-results, the report replaces the heap section of
bench/RESULTS.md (between its markers).  stdlib only.
"""
import argparse
import datetime
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile

from benchlib import (BenchError, check_unchanged, command_output, cpu_model, fingerprint, git_revision,
                      write_section)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "bench", "RESULTS.md")
MODES = ("none", "pprofc", "attach", "attach-nocap", "heaptrack")
SLOWDOWN_GOAL = 0.03            # at most 3% slower at the default rate
RATIO_GOAL = 10                 # heaptrack's overhead / pprofc's
OPS = re.compile(r"^ops_per_s (\d+)", re.M)
CPU = re.compile(r"^cpu_ns_per_op ([\d.]+)", re.M)
PAIRS = re.compile(r"^ops (\d+)", re.M)
SUMMARY = re.compile(r"^pprofc: .*$", re.M)


def argv_for(mode, args, out):
    fx = [args.fixture, str(args.threads), str(args.seconds), str(args.cur_passes)]
    if mode == "pprofc":
        return [args.pprofc, "run", "--profile", "heap", "--heap-rate", str(args.rate),
                "-o", out, "--"] + fx
    if mode == "heaptrack":
        return ["heaptrack", "-o", out] + fx
    return fx


def run_attached(mode, args, out):
    """The fixture under `pprofc attach`, from its first allocation to its
    last: (returncode, fixture's stdout, pprofc's stderr)."""
    fx = [args.fixture, str(args.threads), str(args.seconds), str(args.cur_passes)]
    target = subprocess.Popen(fx, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, ALLOC_CHURN_WAIT="1"))
    prof = None
    try:
        if target.stdout.readline().strip() != "ready":
            raise BenchError(f"{mode}: the fixture did not say ready")
        cap = [] if mode == "attach" else ["--max-hit-rate", "0"]
        prof = subprocess.Popen([args.pprofc, "attach", str(target.pid), "--profile", "allocs",
                                 "--heap-rate", str(args.rate), "--seconds", "3600", "-o", out] + cap,
                                stderr=subprocess.PIPE, text=True)
        first = prof.stderr.readline()
        if "the window starts" not in first:
            raise BenchError(f"{mode}: pprofc attach did not start: {first.strip()}")
        target.stdin.write("go\n")
        target.stdin.flush()
        stdout = target.stdout.read()
        target.wait(timeout=args.seconds * 50 + 60)
        prof.send_signal(signal.SIGINT)
        _, err = prof.communicate(timeout=600)
        return (target.returncode or prof.returncode), stdout, first + err
    finally:
        for p in (target, prof):
            if p and p.poll() is None:
                p.kill()
                p.wait()


def run_once(mode, args, tmpdir, n):
    out = os.path.join(tmpdir, f"{mode}-{n}")
    before = os.times()
    if mode.startswith("attach"):
        rc, stdout, stderr = run_attached(mode, args, out)
    else:
        r = subprocess.run(argv_for(mode, args, out), capture_output=True, text=True,
                           timeout=args.seconds * 20 + 60)
        rc, stdout, stderr = r.returncode, r.stdout, r.stderr
    after = os.times()
    m, cpu, pairs = OPS.search(stdout), CPU.search(stdout), PAIRS.search(stdout)
    if rc != 0 or not m or not cpu or not pairs:
        raise BenchError(f"{mode}: exit {rc}, no throughput line; stderr: "
                         f"{stderr.strip()[-400:]}")
    summary = SUMMARY.findall(stderr) if mode != "heaptrack" else []
    for f in os.listdir(tmpdir):
        os.unlink(os.path.join(tmpdir, f))
    # The children's CPU time is the fixture's plus the profiler's: the
    # profiler's own is what is left when the fixture's is taken away.
    children = (after.children_user + after.children_system -
                before.children_user - before.children_system)
    fixture = float(cpu.group(1)) * int(pairs.group(1)) / 1e9
    return {"ops_per_s": int(m.group(1)), "cpu_ns": float(cpu.group(1)),
            "tool_cpu_s": max(children - fixture, 0.0) if mode != "none" else 0.0,
            "summary": summary[-1] if summary else ""}


def rotated(modes, r):
    k = r % len(modes)
    return list(modes[k:] + modes[:k])


def measure(args, modes):
    rounds = []
    prints = {p: fingerprint(p) for p in (args.pprofc, args.fixture)}
    with tempfile.TemporaryDirectory(prefix="pprofc-heap-bench-") as tmpdir:
        for r in range(args.rounds):
            order = rotated(modes, r)
            recs = {m: run_once(m, args, tmpdir, r) for m in order}
            check_unchanged(prints, f"during round {r + 1}")
            rounds.append({"order": order, "recs": recs})
            print(f"  round {r + 1} ({' > '.join(order)}): " +
                  ", ".join(f"{m} {recs[m]['ops_per_s'] / 1e6:.2f} M/s" for m in modes), flush=True)
    return rounds


def median_ci(xs, level=0.95):
    """A distribution-free interval for the median of xs: the order
    statistics x(k) and x(n+1-k) with the largest k for which the binomial
    tails outside them hold at most 1 - level (for 7 rounds that is the
    minimum and maximum, 98% coverage; for 15, the 4th and 12th, 96%).
    (low, high, coverage)."""
    xs, n = sorted(xs), len(xs)
    k, cover = 1, 1 - 2 * 0.5 ** n
    while k < n // 2:
        tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
        if 1 - 2 * tail < level:
            break
        k, cover = k + 1, 1 - 2 * tail
    return xs[k - 1], xs[n - k], cover


def summarize(rounds, modes):
    """Medians, and each mode's slowdown as the median over rounds of its
    throughput against the fixture alone in the same round: the rounds
    are paired by design, and the machine's drift between rounds (here
    often ±20%) then cancels."""
    med = {m: statistics.median(r["recs"][m]["ops_per_s"] for r in rounds) for m in modes}
    slow = {m: 1 - statistics.median(r["recs"][m]["ops_per_s"] / r["recs"]["none"]["ops_per_s"]
                                     for r in rounds)
            for m in modes if m != "none"}
    # The time added to each pair, paired by round the same way.
    over = {m: statistics.median(r["recs"]["none"]["ops_per_s"] / r["recs"][m]["ops_per_s"]
                                 for r in rounds) - 1
            for m in modes if m != "none"}
    # The target's own extra CPU per pair, paired by round the same way.
    cpu = {m: statistics.median(r["recs"][m]["cpu_ns"] / r["recs"]["none"]["cpu_ns"] for r in rounds) - 1
           for m in modes if m != "none"}
    # How far the slowdown's median may be off: the per-round ratios'
    # interval, as slowdowns (1 - ratio, so the bounds swap).
    ci = {}
    for m in modes:
        if m != "none":
            lo, hi, cover = median_ci([r["recs"][m]["ops_per_s"] / r["recs"]["none"]["ops_per_s"]
                                       for r in rounds])
            ci[m] = (1 - hi, 1 - lo, cover)
    return med, slow, over, cpu, ci


def header(args):
    cmd = "python3 bench/heap_profile.py " + " ".join(sys.argv[1:])
    return [
        "# Heap profile benchmark (bench/heap_profile.py)",
        "",
        f"Command: `{cmd}`, {datetime.date.today()}, git {git_revision()}.",
        f"Machine: {cpu_model()}, {os.cpu_count()} CPUs; "
        f"{command_output(['heaptrack', '--version'])}.",
    ]


def report(args, modes, rounds, med, slow, over, cpu, ci):
    lines = [
        "",
        f"## alloc_churn {args.threads} {args.seconds} {args.cur_passes}",
        "",
        f"Fixture: `alloc_churn {args.threads} {args.seconds} {args.cur_passes}` ({args.threads} threads replacing "
        "blocks of 16 B - 1 KiB, one in 64 of 4-16 KiB, one in 4096 of 256 KiB, in rings of "
        f"256 live blocks, filling each new one and reading it {args.cur_passes} more times); pprofc at "
        f"`--heap-rate {args.rate}`. {args.rounds} rounds, order "
        "rotated each round. Throughput: malloc/free pairs per second, all threads, as the "
        "fixture prints it. Target CPU: the fixture's own CPU time per pair (its "
        "CLOCK_PROCESS_CPUTIME_ID over the pairs), against the fixture alone in the same round. "
        "Tool CPU: the profiler's own CPU time per second of the run (its children's CPU time "
        "less the fixture's), in % of one CPU. Overhead: the time added to each pair "
        "(none / mode - 1, median over rounds).",
        "",
        "| mode | median M ops/s | min | max | slowdown (median of per-round ratios) "
        "| its interval | overhead | target CPU per pair | extra target CPU | tool CPU |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m in modes:
        xs = [r["recs"][m]["ops_per_s"] / 1e6 for r in rounds]
        s = f"{slow[m] * 100:.1f}%" if m in slow else "-"
        o = f"{over[m] * 100:.1f}%" if m in over else "-"
        c = f"{cpu[m] * 100:.1f}%" if m in cpu else "-"
        ns = statistics.median(r["recs"][m]["cpu_ns"] for r in rounds)
        tool = statistics.median(r["recs"][m]["tool_cpu_s"] for r in rounds) / args.seconds
        t = f"{tool * 100:.0f}%" if m != "none" else "-"
        iv = (f"{ci[m][0] * 100:.1f}% to {ci[m][1] * 100:.1f}% ({ci[m][2] * 100:.0f}%)"
              if m in ci else "-")
        lines.append(f"| {m} | {med[m] / 1e6:.2f} | {min(xs):.2f} | {max(xs):.2f} | {s} | {iv} | {o} "
                     f"| {ns:.1f} ns | {c} | {t} |")
    lines += ["", "Against the goals:", ""]
    if "pprofc" in slow:
        ok = slow["pprofc"] <= SLOWDOWN_GOAL
        lo, hi, cover = ci["pprofc"]
        sure = ("the whole interval is within it" if hi <= SLOWDOWN_GOAL else
                "the whole interval is past it" if lo > SLOWDOWN_GOAL else
                "the interval straddles it")
        lines.append(f"- pprofc at most {SLOWDOWN_GOAL * 100:.0f}% slower: "
                     f"{slow['pprofc'] * 100:.1f}% -> {'MET' if ok else 'NOT MET'} "
                     f"({sure}: {lo * 100:.1f}% to {hi * 100:.1f}%, {cover * 100:.0f}% coverage); "
                     f"the target's own CPU per pair {cpu['pprofc'] * 100:+.1f}% -> "
                     f"{'MET' if cpu['pprofc'] <= SLOWDOWN_GOAL else 'NOT MET'}")
    if "pprofc" in over and "heaptrack" in over:
        if over["pprofc"] > 0:
            ratio = over["heaptrack"] / over["pprofc"]
            got = (f"{ratio:.1f}x (overhead {over['heaptrack'] * 100:.0f}% against "
                   f"{over['pprofc'] * 100:.1f}%)")
        else:
            ratio = float("inf")
            got = (f"heaptrack {over['heaptrack'] * 100:.0f}%, pprofc no slower than the fixture "
                   f"alone (within the rounds' noise)")
        ok = ratio >= RATIO_GOAL
        lines.append(f"- at least {RATIO_GOAL}x less overhead than heaptrack: "
                     f"{got} -> {'MET' if ok else 'NOT MET'}")
    lines += ["", "Per round (M ops/s):", "", "| round | order | " + " | ".join(modes) + " |",
              "|---|---|" + "---:|" * len(modes)]
    for i, r in enumerate(rounds):
        lines.append(f"| {i + 1} | {' > '.join(r['order'])} | " +
                     " | ".join(f"{r['recs'][m]['ops_per_s'] / 1e6:.2f}" for m in modes) + " |")
    for m in modes:
        summaries = [r["recs"][m]["summary"] for r in rounds if r["recs"][m]["summary"]]
        if summaries:
            lines += ["", f"{m}: pprofc's last summary line, last round:", "", "```",
                      summaries[-1], "```"]
    return "\n".join(lines)


def write_results(section):
    write_section(RESULTS, "heap", section)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pprofc", default=os.path.join(ROOT, "build", "cli", "pprofc"))
    ap.add_argument("--fixture", default=os.path.join(ROOT, "build", "tests", "targets", "alloc_churn"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--rate", type=int, default=524288, help="pprofc's --heap-rate")
    ap.add_argument("--passes", default="0,1",
                    help="one configuration per value: reads of each block after filling it")
    ap.add_argument("--tools", default="pprofc,heaptrack",
                    help="profilers to run besides the fixture alone (default pprofc,heaptrack; "
                         "also attach, attach-nocap)")
    ap.add_argument("--write-results", action="store_true", help="write the heap section of bench/RESULTS.md")
    args = ap.parse_args()
    tools = [t for t in args.tools.split(",") if t]
    if any(t not in MODES[1:] for t in tools):
        ap.error("--tools takes pprofc, attach, attach-nocap and/or heaptrack")
    modes = ("none",) + tuple(tools)
    for p in (args.pprofc, args.fixture):
        if not os.access(p, os.X_OK):
            sys.exit(f"heap_profile.py: {p} is not built: run ./dev.sh build first")
    if "heaptrack" in tools and not shutil.which("heaptrack"):
        sys.exit("heap_profile.py: heaptrack is not installed (apt-get install heaptrack)")
    lines = header(args)
    for passes in [int(p) for p in args.passes.split(",") if p]:
        args.cur_passes = passes
        print(f"alloc_churn {args.threads} {args.seconds} {passes}:", flush=True)
        try:
            rounds = measure(args, modes)
        except BenchError as e:
            sys.exit(f"heap_profile.py: {e}")
        med, slow, over, cpu, ci = summarize(rounds, modes)
        lines += report(args, modes, rounds, med, slow, over, cpu, ci).splitlines()
    section = "\n".join(lines)
    print("\n" + section)
    if args.write_results:
        write_results(section)
        print(f"\nwrote the heap section of {RESULTS}")


if __name__ == "__main__":
    main()
