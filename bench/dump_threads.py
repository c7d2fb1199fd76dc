#!/usr/bin/env python3
"""Benchmark `pprofc dump-threads` against eu-stack and gdb on many_threads.

Starts the many_threads fixture with N threads, waits for "ready", then for
each round runs (order rotated every round):

  pprofc    pprofc dump-threads PID
  eu-stack  eu-stack -p PID -i -s          (inline frames + source lines)
  gdb       gdb -nx -batch -ex 'thread apply all bt' -p PID

timing each with time.monotonic() around subprocess.run(), and counting the
frames each one listed.  Each round also runs `pprofc dump-threads -v PID`
(untimed) to read how long pprofc kept the process stopped.  Between all
runs the fixture must be alive, untraced (TracerPid 0) and have no thread in
state t/T; otherwise the script stops and exits non-zero.

stdlib only.  See bench/README.md.
"""
import argparse
import datetime
import glob
import json
import os
import platform
import re
import select
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = ("pprofc", "eu-stack", "gdb")

# A pprofc text frame line: "func(...)" or "func(...) (inlined)", not indented.
PPROFC_FRAME = re.compile(r"\(\.\.\.\)( \(inlined\))?$")
STOPPED_MS = re.compile(r"process stopped for ([0-9.]+) ms")


class BenchError(Exception):
    pass


def loud(msg):
    bar = "!" * 72
    print(f"\n{bar}\n!!! {msg}\n{bar}\n", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- fixture

def find_fixture(path, tmpdir):
    if path:
        return path, None
    built = os.path.join(ROOT, "build/tests/targets/many_threads")
    if os.access(built, os.X_OK):
        return built, None
    src = os.path.join(ROOT, "tests/targets/many_threads.c")
    out = os.path.join(tmpdir, "many_threads")
    cmd = ["gcc", "-std=c11", "-O2", "-g", "-pthread", src, "-o", out]
    print(f"note: {built} missing; compiling: {shlex.join(cmd)}", file=sys.stderr)
    subprocess.run(cmd, check=True)
    return out, shlex.join(cmd)


def start_fixture(path, nthreads, timeout):
    proc = subprocess.Popen([path, str(nthreads)], stdout=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    buf = b""
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0 or proc.poll() is not None:
            raise BenchError(f"fixture did not print 'ready' (rc={proc.poll()}, "
                             f"got {buf!r})")
        r, _, _ = select.select([proc.stdout], [], [], left)
        if r:
            chunk = os.read(proc.stdout.fileno(), 64)
            if not chunk:
                continue
            buf += chunk
    if buf.split(b"\n")[0].strip() != b"ready":
        raise BenchError(f"fixture printed {buf!r}, expected 'ready'")
    return proc


def check_fixture(proc, nthreads, where):
    """Alive, TracerPid 0, no thread stopped (t/T), all threads present."""
    pid = proc.pid
    problems = []
    if proc.poll() is not None:
        problems.append(f"fixture exited (rc={proc.returncode})")
    else:
        try:
            with open(f"/proc/{pid}/status") as f:
                status = f.read()
            tracer = re.search(r"^TracerPid:\s*(\d+)", status, re.M).group(1)
            if tracer != "0":
                problems.append(f"TracerPid is {tracer}")
        except OSError as e:
            problems.append(f"cannot read /proc/{pid}/status: {e}")
        stopped = []
        tasks = glob.glob(f"/proc/{pid}/task/*/stat")
        for stat in tasks:
            try:
                with open(stat) as f:
                    s = f.read()
            except OSError:
                continue
            state = s[s.rfind(")") + 2]
            if state in "tT":
                stopped.append((stat.split("/")[4], state))
        if stopped:
            problems.append(f"{len(stopped)} thread(s) stopped, e.g. "
                            f"{stopped[:5]} (tid, state)")
        if len(tasks) != nthreads + 1:
            problems.append(f"{len(tasks)} threads, expected {nthreads + 1}")
    if problems:
        raise BenchError(f"fixture pid {pid} not healthy {where}: "
                         + "; ".join(problems))


# ---------------------------------------------------------------- tools

def tool_cmd(tool, pprofc, pid):
    if tool == "pprofc":
        return [pprofc, "dump-threads", str(pid)]
    if tool == "eu-stack":
        return ["eu-stack", "-p", str(pid), "-i", "-s"]
    if tool == "gdb":
        return ["gdb", "-nx", "-batch", "-ex", "thread apply all bt",
                "-p", str(pid)]
    raise ValueError(tool)


def run_timed(tool, cmd, outpath, timeout):
    errpath = outpath + ".stderr"
    with open(outpath, "wb") as out, open(errpath, "wb") as err:
        t0 = time.monotonic()
        r = subprocess.run(cmd, stdout=out, timeout=timeout,
                           stdin=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL if tool == "gdb" else err)
        dt = time.monotonic() - t0
    if r.returncode != 0:
        with open(errpath, errors="replace") as f:
            tail = f.read()[-2000:]
        raise BenchError(f"{tool} exited {r.returncode}: {shlex.join(cmd)}\n"
                         f"{tail}")
    return dt


def count_frames(tool, path):
    n = 0
    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if tool == "pprofc":
                if line and not line.startswith("\t") and PPROFC_FRAME.search(line):
                    n += 1
            elif line.startswith("#"):
                n += 1
    return n


def pprofc_stopped_ms(pprofc, pid, timeout):
    r = subprocess.run([pprofc, "dump-threads", "-v", str(pid)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       stdin=subprocess.DEVNULL, timeout=timeout, text=True)
    m = STOPPED_MS.search(r.stderr)
    if r.returncode != 0 or not m:
        raise BenchError(f"pprofc -v exited {r.returncode}, stderr: "
                         f"{r.stderr.strip()!r}")
    return float(m.group(1)), r.stderr.strip()


def pprofc_json(pprofc, pid, timeout):
    r = subprocess.run([pprofc, "dump-threads", "--format=json", str(pid)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       stdin=subprocess.DEVNULL, timeout=timeout, text=True)
    if r.returncode != 0:
        raise BenchError(f"pprofc --format=json exited {r.returncode}: "
                         f"{r.stderr.strip()}")
    return json.loads(r.stdout)


# ---------------------------------------------------------------- per-thread compare

def eustack_threads(path):
    threads, cur = {}, None
    with open(path, errors="replace") as f:
        for line in f:
            m = re.match(r"TID (\d+):", line)
            if m:
                cur = threads.setdefault(int(m.group(1)), [])
            elif line.startswith("#") and cur is not None:
                parts = line.split()
                cur.append(parts[2] if len(parts) > 2 else "??")
    return threads


def compare_threads(doc, eu_path, limit=3):
    """Per-thread frame counts, pprofc (json) vs eu-stack. Returns text lines."""
    pp = {t["tid"]: [fr.get("function") or "??" for fr in t["frames"]]
          for t in doc["threads"]}
    eu = eustack_threads(eu_path)
    lines = []
    only_pp = sorted(set(pp) - set(eu))
    only_eu = sorted(set(eu) - set(pp))
    if only_pp or only_eu:
        lines.append(f"threads only in pprofc: {len(only_pp)}, only in "
                     f"eu-stack: {len(only_eu)}")
    fewer = [t for t in pp if t in eu and len(pp[t]) < len(eu[t])]
    more = [t for t in pp if t in eu and len(pp[t]) > len(eu[t])]
    lines.append(f"per thread: pprofc lists fewer frames than eu-stack in "
                 f"{len(fewer)} threads, more in {len(more)}, same in "
                 f"{len(set(pp) & set(eu)) - len(fewer) - len(more)}")
    for t in (fewer[:limit] + more[:limit]):
        lines.append(f"  tid {t}: pprofc {len(pp[t])} frames, eu-stack "
                     f"{len(eu[t])}")
        lines.append(f"    pprofc:   {' < '.join(pp[t])}")
        lines.append(f"    eu-stack: {' < '.join(eu[t])}")
    return lines


# ---------------------------------------------------------------- report

def machine_facts():
    def first_line(cmd):
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
            return (r.stdout or r.stderr).splitlines()[0].strip()
        except (OSError, IndexError, subprocess.SubprocessError) as e:
            return f"unavailable ({e})"
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"^model name\s*:\s*(.*)$", f.read(), re.M)
            cpu = m.group(1) if m else cpu
    except OSError:
        pass
    return [
        ("nproc", first_line(["nproc"])),
        ("uname -r", first_line(["uname", "-r"])),
        ("CPU", cpu),
        ("eu-stack --version", first_line(["eu-stack", "--version"])),
        ("gdb --version", first_line(["gdb", "--version"])),
        ("python", platform.python_version()),
    ]


def git_rev():
    try:
        rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain"],
                               capture_output=True, text=True).stdout.strip()
        return rev + (" (working tree has uncommitted changes)" if dirty else "")
    except OSError:
        return "unknown"


def build_report(args, res, argv, fixture_note):
    times, frames = res["times"], res["frames"]
    med = {t: statistics.median(times[t]) for t in TOOLS}
    stopped = res["stopped_ms"]
    eu_ratio = med["eu-stack"] / med["pprofc"]
    L = []
    L.append("# pprofc dump-threads benchmark results\n")
    L.append(f"Command: `{argv}` (run from `{ROOT}`)  ")
    L.append(f"Date: {res['date']}  ")
    L.append(f"pprofc: `{args.pprofc}`, git {git_rev()}  ")
    L.append(f"Fixture: `{res['fixture']}` with {args.threads} threads "
             f"({args.threads + 1} incl. main), {args.rounds} rounds, tool "
             f"order rotated each round"
             + (f"; fixture compiled by the script: `{fixture_note}`"
                if fixture_note else "") + "\n")
    L.append("## Machine\n")
    for k, v in machine_facts():
        L.append(f"- `{k}`: {v}")
    L.append("")
    L.append("## Wall time per dump (seconds) and frames listed\n")
    L.append("| tool | median s | min s | max s | frames listed | "
             "median time / pprofc |")
    L.append("|---|---:|---:|---:|---:|---:|")
    for t in TOOLS:
        fr = sorted(set(frames[t]))
        fr_s = str(fr[0]) if len(fr) == 1 else f"{min(fr)}-{max(fr)} (varied)"
        L.append(f"| {t} | {med[t]:.3f} | {min(times[t]):.3f} | "
                 f"{max(times[t]):.3f} | {fr_s} | {med[t] / med['pprofc']:.1f}x |")
    L.append("")
    L.append(f"pprofc process-stopped time (`dump-threads -v`, one untimed run "
             f"per round, {len(stopped)} runs): median "
             f"{statistics.median(stopped):.3f} ms, max {max(stopped):.3f} ms "
             f"(all: {', '.join(f'{x:.3f}' for x in stopped)})\n")
    L.append("Per-round wall times (s):\n")
    L.append("| round | order | " + " | ".join(TOOLS) + " |")
    L.append("|---|---|" + "---:|" * len(TOOLS))
    for i, order in enumerate(res["orders"]):
        L.append(f"| {i + 1} | {' > '.join(order)} | "
                 + " | ".join(f"{times[t][i]:.3f}" for t in TOOLS) + " |")
    L.append("")
    pp_fr, eu_fr = min(frames["pprofc"]), max(frames["eu-stack"])
    L.append("## Against the goal (pprofc >= 10x faster than eu-stack, as many "
             "frames, stopped < 20 ms)\n")
    L.append(f"- speed: eu-stack median / pprofc median = {eu_ratio:.1f}x -> "
             f"{'MET' if eu_ratio >= 10 else 'NOT MET'}")
    L.append(f"- frames: pprofc {pp_fr} vs eu-stack {eu_fr} -> "
             f"{'MET' if pp_fr >= eu_fr else 'NOT MET'} "
             f"(pprofc count from text output; JSON count: "
             f"{res['json_frames']}, of which {res['json_inlined']} inlined)")
    L.append(f"- stopped: max {max(stopped):.3f} ms, median "
             f"{statistics.median(stopped):.3f} ms -> "
             f"{'MET' if max(stopped) < 20 else 'NOT MET'} (by max)")
    L.append("")
    L.append("## Per-thread frame comparison, pprofc (JSON) vs eu-stack "
             "(last round)\n")
    L.append("```")
    L.extend(res["compare"])
    L.append("```")
    L.append("")
    L.append("Health checks (fixture alive, TracerPid 0, no thread in t/T, "
             "thread count unchanged) passed before and after every run.")
    return "\n".join(L) + "\n"


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--pprofc", default=os.path.join(ROOT, "build/cli/pprofc"))
    ap.add_argument("--fixture", help="many_threads binary (default: "
                    "build/tests/targets/many_threads, else compiled to a "
                    "temp dir)")
    ap.add_argument("--timeout", type=float, default=600,
                    help="seconds allowed per tool run")
    ap.add_argument("--write-results", action="store_true",
                    help="write bench/RESULTS.md")
    ap.add_argument("--keep-outputs", metavar="DIR",
                    help="keep every tool output in DIR")
    args = ap.parse_args()
    argv = shlex.join(["python3", os.path.relpath(sys.argv[0], ROOT)
                       if os.path.isabs(sys.argv[0]) else sys.argv[0]]
                      + sys.argv[1:])
    if not os.access(args.pprofc, os.X_OK):
        sys.exit(f"pprofc not found at {args.pprofc} (run `ninja -C build`)")
    for t in ("eu-stack", "gdb"):
        if not shutil.which(t):
            sys.exit(f"{t} not found in PATH")

    tmpdir = tempfile.mkdtemp(prefix="pprofc-bench-")
    outdir = args.keep_outputs or tmpdir
    os.makedirs(outdir, exist_ok=True)
    proc = None
    try:
        fixture, fixture_note = find_fixture(args.fixture, tmpdir)
        proc = start_fixture(fixture, args.threads, timeout=120)
        pid = proc.pid
        print(f"fixture {fixture} pid {pid}: {args.threads} threads ready",
              flush=True)
        check_fixture(proc, args.threads, "after start")
        res = {"times": {t: [] for t in TOOLS}, "frames": {t: [] for t in TOOLS},
               "stopped_ms": [], "orders": [],
               "date": datetime.datetime.now().astimezone().isoformat(
                   timespec="seconds"),
               "fixture": fixture}
        for rnd in range(args.rounds):
            order = TOOLS[rnd % 3:] + TOOLS[:rnd % 3]
            res["orders"].append(order)
            line = [f"round {rnd + 1}/{args.rounds}:"]
            for tool in order:
                out = os.path.join(outdir, f"r{rnd + 1}-{tool}.txt")
                dt = run_timed(tool, tool_cmd(tool, args.pprofc, pid), out,
                               args.timeout)
                check_fixture(proc, args.threads, f"after {tool}, round {rnd + 1}")
                n = count_frames(tool, out)
                res["times"][tool].append(dt)
                res["frames"][tool].append(n)
                line.append(f"{tool} {dt:.3f}s ({n} frames)")
            ms, _ = pprofc_stopped_ms(args.pprofc, pid, args.timeout)
            check_fixture(proc, args.threads, f"after pprofc -v, round {rnd + 1}")
            res["stopped_ms"].append(ms)
            line.append(f"pprofc stopped {ms:.3f} ms")
            print("  ".join(line), flush=True)
        # Untimed JSON run: frame count incl. inlined, and a per-thread
        # comparison against the last eu-stack output.
        doc = pprofc_json(args.pprofc, pid, args.timeout)
        check_fixture(proc, args.threads, "after pprofc --format=json")
        res["json_frames"] = sum(len(t["frames"]) for t in doc["threads"])
        res["json_inlined"] = sum(1 for t in doc["threads"]
                                  for fr in t["frames"] if fr.get("inlined"))
        res["compare"] = compare_threads(
            doc, os.path.join(outdir, f"r{args.rounds}-eu-stack.txt"))
        report = build_report(args, res, argv, fixture_note)
        print()
        print(report)
        if args.write_results:
            path = os.path.join(ROOT, "bench", "RESULTS.md")
            with open(path, "w") as f:
                f.write(report)
            print(f"wrote {path}")
        return 0
    except (BenchError, subprocess.TimeoutExpired,
            subprocess.CalledProcessError) as e:
        loud(f"BENCHMARK FAILED: {e}")
        return 1
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        if not args.keep_outputs:
            shutil.rmtree(tmpdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
