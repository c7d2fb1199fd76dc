#!/usr/bin/env python3
"""What one uprobe hit costs the target: tests/targets/heap_window's window
(KEEP blocks kept, CHURN malloc+free pairs) timed from its "go" line to
its "done" line, alone and under `pprofc attach --profile allocs`; the
difference over the probe hits pprofc counted.  Median of ROUNDS rounds.

usage: bench/uprobe_hit.py BUILD_DIR [CHURN] [ROUNDS] [STACK_SIZE]
(STACK_SIZE: pprofc's --stack-size, the bytes copied at each entry hit)"""
import os
import re
import statistics
import subprocess
import sys
import time


def window(fixture, churn, pprofc=None, stack=None):
    """Seconds of the window and the hits pprofc counted (0 without)."""
    p = subprocess.Popen([fixture, "1024", str(churn)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    p.stdout.readline()                 # ready
    prof = None
    if pprofc:
        prof = subprocess.Popen([pprofc, "attach", str(p.pid), "--profile", "allocs",
                                 "--seconds", "30", "--max-hit-rate", "0", "-o", os.devnull]
                                + (["--stack-size", stack] if stack else []),
                                stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 30     # attached: its first progress is not printed
        while time.time() < deadline and not any(
                "perf_event" in os.readlink("/proc/%d/fd/%s" % (prof.pid, f))
                for f in os.listdir("/proc/%d/fd" % prof.pid)
                if os.path.islink("/proc/%d/fd/%s" % (prof.pid, f))):
            time.sleep(0.01)
        time.sleep(0.2)                 # every probe opened
    t0 = time.perf_counter()
    p.stdin.write("go\n")
    p.stdin.flush()
    for line in p.stdout:
        if line.strip() == "done":
            break
    secs = time.perf_counter() - t0
    hits = 0
    if prof:
        prof.send_signal(2)
        err = prof.communicate()[1]
        m = re.search(r"from (\d+) probe hits", err)
        hits = int(m.group(1)) if m else 0
        if not m:
            print("pprofc said: %s" % err.strip())
    p.stdin.close()
    p.wait()
    return secs, hits


def main():
    build = sys.argv[1]
    churn = int(sys.argv[2]) if len(sys.argv) > 2 else 262144
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    stack = sys.argv[4] if len(sys.argv) > 4 else None
    fixture = os.path.join(build, "tests/targets/heap_window")
    pprofc = os.path.join(build, "cli/pprofc")
    costs = []
    for _ in range(rounds):
        plain, _ = window(fixture, churn)
        probed, hits = window(fixture, churn, pprofc, stack)
        if hits:
            costs.append((probed - plain) / hits * 1e9)
            print("window %.3f s alone, %.3f s probed, %d hits: %.0f ns per hit"
                  % (plain, probed, hits, costs[-1]))
    print("median: %.0f ns per probe hit" % statistics.median(costs))


if __name__ == "__main__":
    main()
