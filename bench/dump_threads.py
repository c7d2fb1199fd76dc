#!/usr/bin/env python3
"""Benchmark `pprofc dump-threads` against eu-stack and gdb on many_threads.

For each configuration (--depths, e.g. 40,200, times --loads, e.g. 0,2)
starts the many_threads fixture with N threads and that DEPTH (thread i
recurses (i % DEPTH) + 1 levels), waits for "ready", starts LOAD spinning
processes (`sh -c 'while :; do :; done'`, killed at the end of the
configuration) so that the tools share the CPUs, then for each round runs
(order rotated every round):

  pprofc    pprofc dump-threads PID
  eu-stack  eu-stack -p PID -i -s          (inline frames + source lines)
  gdb       gdb -nx -batch -ex 'thread apply all bt' -p PID

timing each with time.monotonic() around subprocess.run(), and counting the
frames each one listed.  Each round also runs `pprofc dump-threads -v PID`
(untimed) to read how long pprofc kept the process stopped.  Between all
runs the fixture must be alive, untraced (TracerPid 0) and have no thread in
state t/T; otherwise the script stops and exits non-zero.

Before the configurations, it measures the fixed cost: each tool on a
single-threaded `sleep 100` (5 runs each, median), plus eu-addr2line looking
up one libc address (libdw loading glibc's debug info, no process involved).

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
import struct
import subprocess
import sys
import tempfile
import threading
import time

from benchlib import (BenchError, check_unchanged, command_output, cpu_model, fingerprint,
                      git_revision, loud)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ALL_TOOLS = ("pprofc", "eu-stack", "gdb")
TOOLS = ALL_TOOLS               # --tools narrows it (main())
SPEED_GOAL = 15                 # issue 10 item 7: >= 15x eu-stack (aim: 30x)
SPINNER = ["sh", "-c", "while :; do :; done"]

# A pprofc text frame line: "func(...)" or "func(...) (inlined)", not indented.
PPROFC_FRAME = re.compile(r"\(\.\.\.\)( \(inlined\))?$")
# `pprofc dump-threads -v` stderr, e.g.
#   pprofc: 501 threads, 501 stacks taken; process stopped for 11.305 ms (20.2 ms of /proc reads and seizing before)
#   pprofc: unwound, symbolized and written in 59.9 ms
STOPPED_MS = re.compile(r"process stopped for ([0-9.]+) ms")
BEFORE_MS = re.compile(r"\(([0-9.]+) ms of /proc reads and seizing before\)")
AFTER_MS = re.compile(r"unwound, symbolized and written in ([0-9.]+) ms")


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


def start_fixture(path, nthreads, depth, timeout):
    proc = subprocess.Popen([path, str(nthreads), str(depth)],
                            stdout=subprocess.PIPE,
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


def run_wall(cmd, stdout, stderr, timeout, env=None):
    """Run cmd; return (wall seconds, returncode).

    Waits with a blocking waitpid() and enforces the timeout with a timer
    thread.  (Popen.wait(timeout=...), which subprocess.run(timeout=...)
    uses, polls with sleeps of up to 50 ms, so every wall time would be
    rounded up to the next step of about 31.5, 63.5, 113.5, 163.5 ms, ...)
    """
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=stdout,
                         stderr=stderr, env=env)
    timer = threading.Timer(timeout, p.kill)
    timer.start()
    try:
        rc = p.wait()
    finally:
        timer.cancel()
    dt = time.monotonic() - t0
    if dt >= timeout:
        raise subprocess.TimeoutExpired(cmd, timeout)
    return dt, rc


def run_timed(tool, cmd, outpath, timeout, env=None):
    errpath = outpath + ".stderr"
    with open(outpath, "wb") as out, open(errpath, "wb") as err:
        dt, rc = run_wall(cmd, out,
                          subprocess.DEVNULL if tool == "gdb" else err,
                          timeout, env)
    if rc != 0:
        with open(errpath, errors="replace") as f:
            tail = f.read()[-2000:]
        raise BenchError(f"{tool} exited {rc}: {shlex.join(cmd)}\n"
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


def pprofc_verbose(pprofc, pid, timeout):
    """One `pprofc dump-threads -v PID`: {"stopped", "before", "after"} in ms
    ("before"/"after" are None if the line is missing)."""
    r = subprocess.run([pprofc, "dump-threads", "-v", str(pid)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       stdin=subprocess.DEVNULL, timeout=timeout, text=True)
    m = STOPPED_MS.search(r.stderr)
    if r.returncode != 0 or not m:
        raise BenchError(f"pprofc -v exited {r.returncode}, stderr: "
                         f"{r.stderr.strip()!r}")
    b, a = BEFORE_MS.search(r.stderr), AFTER_MS.search(r.stderr)
    return {"stopped": float(m.group(1)),
            "before": float(b.group(1)) if b else None,
            "after": float(a.group(1)) if a else None}


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


# ---------------------------------------------------------------- fixed cost

def nm_addr(path, name, dynamic):
    """Address of symbol `name` in `path` (nm), or None."""
    cmd = ["nm"] + (["-D"] if dynamic else []) + ["--defined-only", path]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True,
                             timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2].split("@")[0] == name:
            return int(parts[0], 16)
    return None


def debug_file_facts(lib):
    """Where lib's separate debug file is (by build id) and how much of its
    .debug_* data is compressed.  Returns a dict, or None if not found."""
    try:
        notes = subprocess.run(["readelf", "-n", lib], capture_output=True,
                               text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"Build ID:\s*([0-9a-f]+)", notes)
    if not m:
        return None
    bid = m.group(1)
    path = f"/usr/lib/debug/.build-id/{bid[:2]}/{bid[2:]}.debug"
    if not os.path.exists(path):
        return {"path": path, "exists": False}
    secs = subprocess.run(["readelf", "-S", "-W", path], capture_output=True,
                          text=True, timeout=60).stdout
    facts = {"path": path, "exists": True, "n_debug": 0, "n_compressed": 0,
             "compressed": 0, "uncompressed": 0, "types": set()}
    with open(path, "rb") as f:
        for line in secs.splitlines():
            line = re.sub(r"^\s*\[\s*\d+\]\s*", "", line) if "]" in line else ""
            parts = line.split()
            if len(parts) < 9 or not parts[0].startswith(".debug_"):
                continue
            off, size = int(parts[3], 16), int(parts[4], 16)
            flags = parts[6] if len(parts) >= 10 else ""
            facts["n_debug"] += 1
            if "C" in flags:
                # Elf64_Chdr: ch_type, ch_reserved (u32 each), ch_size, ...
                f.seek(off)
                ch_type, _, ch_size = struct.unpack("<IIQ", f.read(16))
                facts["n_compressed"] += 1
                facts["compressed"] += size
                facts["uncompressed"] += ch_size
                facts["types"].add({1: "zlib", 2: "zstd"}.get(ch_type,
                                                             str(ch_type)))
    return facts


def libc_of(pid):
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            path = line.split()[-1]
            if re.search(r"/libc\.so\.6$|/libc-[0-9.]+\.so$", path):
                return path
    return None


def time_cmd(cmd, timeout):
    """Wall time of cmd (see run_wall) and its stdout."""
    with tempfile.TemporaryFile() as out:
        dt, _ = run_wall(cmd, out, subprocess.DEVNULL, timeout)
        out.seek(0)
        return dt, out.read().decode(errors="replace")


def measure_fixed_cost(args, fixture, outdir):
    """Each tool on a single-threaded `sleep 100`, plus eu-addr2line on one
    libc address and one fixture address.  Medians over args.fixed_runs."""
    runs = args.fixed_runs
    proc = subprocess.Popen(["sleep", "100"], stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        libc = None
        while time.monotonic() < deadline and libc is None:
            time.sleep(0.05)
            libc = libc_of(proc.pid)
        if libc is None:
            raise BenchError("sleep 100 never mapped libc")
        time.sleep(0.2)  # let it reach nanosleep
        check_fixture(proc, 0, "(sleep 100) before the fixed-cost runs")
        fc = {"pid_cmd": "sleep 100", "libc": libc,
              "times": {t: [] for t in TOOLS},
              "frames": {t: [] for t in TOOLS}, "verbose": [], "cold": []}
        for rnd in range(runs):
            k = rnd % len(TOOLS)
            order = TOOLS[k:] + TOOLS[:k]
            for tool in order:
                out = os.path.join(outdir, f"sleep-r{rnd + 1}-{tool}.txt")
                dt = run_timed(tool, tool_cmd(tool, args.pprofc, proc.pid),
                               out, args.timeout)
                check_fixture(proc, 0, f"(sleep 100) after {tool}")
                fc["times"][tool].append(dt)
                fc["frames"][tool].append(count_frames(tool, out))
            fc["verbose"].append(pprofc_verbose(args.pprofc, proc.pid,
                                                args.timeout))
            # pprofc's first run on a machine: an empty debug cache, so it
            # inflates glibc's compressed debug file (symbolize/debugcache.c).
            cold = tempfile.mkdtemp(prefix="pprofc-cold-", dir=outdir)
            out = os.path.join(outdir, f"sleep-r{rnd + 1}-pprofc-cold.txt")
            fc["cold"].append(run_timed("pprofc", tool_cmd("pprofc", args.pprofc, proc.pid),
                                        out, args.timeout,
                                        dict(os.environ, XDG_CACHE_HOME=cold)))
            shutil.rmtree(cold, ignore_errors=True)
            check_fixture(proc, 0, "(sleep 100) after pprofc -v")
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()

    # libdw alone: eu-addr2line on one address, no process involved.
    a2l = []
    targets = []
    a = nm_addr(libc, "nanosleep", dynamic=True)
    if a is not None:
        targets.append(("libc", libc, a + 0x13))
    a = nm_addr(fixture, "descend", dynamic=False)
    if a is not None:
        targets.append(("fixture", fixture, a + 0x10))
    if shutil.which("eu-addr2line"):
        for label, path, addr in targets:
            cmd = ["eu-addr2line", "-f", "-i", "-e", path, hex(addr)]
            ts, out = [], ""
            for _ in range(runs):
                dt, stdout = time_cmd(cmd, args.timeout)
                ts.append(dt)
                out = " ".join(stdout.split())
            a2l.append({"label": label, "cmd": cmd, "times": ts, "out": out})
    fc["addr2line"] = a2l
    fc["libc_debug"] = debug_file_facts(libc)
    return fc


# ---------------------------------------------------------------- one configuration

def start_load(n):
    """n spinning processes: with n >= nproc every CPU is busy, and each tool
    gets the share of the CPUs the scheduler gives it next to them."""
    return [subprocess.Popen(SPINNER, stdin=subprocess.DEVNULL)
            for _ in range(n)]


def stop_load(spinners):
    for p in spinners:
        if p.poll() is None:
            p.kill()
        p.wait()


def run_config(args, fixture, depth, load, outdir):
    proc, spinners = None, []
    try:
        proc = start_fixture(fixture, args.threads, depth, timeout=120)
        pid = proc.pid
        print(f"fixture {fixture} pid {pid}: {args.threads} threads, depth "
              f"{depth}, load {load}, ready", flush=True)
        check_fixture(proc, args.threads, "after start")
        spinners = start_load(load)
        res = {"depth": depth, "threads": args.threads, "load": load,
               "descend_frames": sum(i % depth + 1
                                     for i in range(args.threads)),
               "times": {t: [] for t in TOOLS},
               "frames": {t: [] for t in TOOLS},
               "verbose": [], "orders": []}
        for rnd in range(args.rounds):
            k = rnd % len(TOOLS)
            order = TOOLS[k:] + TOOLS[:k]
            res["orders"].append(order)
            line = [f"depth {depth} round {rnd + 1}/{args.rounds}:"]
            for tool in order:
                out = os.path.join(outdir, f"r{rnd + 1}-{tool}.txt")
                dt = run_timed(tool, tool_cmd(tool, args.pprofc, pid), out,
                               args.timeout)
                check_fixture(proc, args.threads,
                              f"after {tool}, depth {depth}, round {rnd + 1}")
                n = count_frames(tool, out)
                res["times"][tool].append(dt)
                res["frames"][tool].append(n)
                line.append(f"{tool} {dt:.3f}s ({n} frames)")
            v = pprofc_verbose(args.pprofc, pid, args.timeout)
            check_fixture(proc, args.threads,
                          f"after pprofc -v, depth {depth}, round {rnd + 1}")
            res["verbose"].append(v)
            line.append(f"pprofc stopped {v['stopped']:.3f} ms")
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
        return res
    finally:
        stop_load(spinners)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------- report

def machine_facts():
    try:
        r = subprocess.run(["dpkg-query", "-W", "libc6-dbg"],
                           capture_output=True, text=True, timeout=30)
        dbg = (f"installed: `{' '.join(r.stdout.split())}`" if r.returncode == 0
               and r.stdout.strip() else
               f"not installed (`{' '.join((r.stderr or r.stdout).split())}`)")
    except OSError as e:
        dbg = f"unknown ({e})"
    return [
        ("nproc", command_output(["nproc"])),
        ("uname -r", command_output(["uname", "-r"])),
        ("CPU", cpu_model()),
        ("eu-stack --version", command_output(["eu-stack", "--version"])),
        ("gdb --version", command_output(["gdb", "--version"])),
        ("dpkg-query -W libc6-dbg", dbg),
        ("python", platform.python_version()),
    ]


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else float("nan")


def verdicts(res):
    m = {t: med(res["times"][t]) for t in TOOLS}
    stopped = [v["stopped"] for v in res["verbose"]]
    ratio = m["eu-stack"] / m["pprofc"]
    pp_fr, eu_fr = min(res["frames"]["pprofc"]), max(res["frames"]["eu-stack"])
    return {"ratio": ratio, "speed": ratio >= SPEED_GOAL,
            "pp_fr": pp_fr, "eu_fr": eu_fr, "frames": pp_fr >= eu_fr,
            "stop_med": med(stopped), "stop_max": max(stopped),
            "stopped": med(stopped) < 20}


def met(ok):
    return "MET" if ok else "NOT MET"


def frames_str(fr):
    fr = sorted(set(fr))
    return str(fr[0]) if len(fr) == 1 else f"{min(fr)}-{max(fr)} (varied)"


def notes_paragraph(fc, results):
    """Facts only, every number measured in this run."""
    ms = lambda s: s * 1000
    pp, eu = ms(med(fc["times"]["pprofc"])), ms(med(fc["times"]["eu-stack"]))
    after = med([v["after"] for v in fc["verbose"]])
    stop = med([v["stopped"] for v in fc["verbose"]])
    cold = ms(med(fc["cold"])) if fc.get("cold") else None
    S = [f"On a single-threaded `sleep 100` "
         f"(table below, median of {len(fc['times']['pprofc'])} runs) pprofc "
         f"takes {pp:.0f} ms and eu-stack {eu:.0f} ms. Of pprofc's time there, "
         f"{after:.0f} ms comes after the stop ({stop:.2f} ms): unwinding, "
         f"symbolizing and writing one stack."]
    if cold is not None:
        S.append(f"The first run on a machine takes {cold:.0f} ms: it inflates "
                 f"glibc's compressed debug file once into pprofc's cache "
                 f"(`~/.cache/pprofc/debug`), which later runs read as is; "
                 f"eu-stack inflates it on every run.")
    d = fc["libc_debug"]
    if d and d.get("exists") and d["n_compressed"]:
        S.append(f"That file (`{d['path']}`) has {d['n_compressed']} of its "
                 f"{d['n_debug']} `.debug_*` sections "
                 f"{'/'.join(sorted(d['types']))}-compressed "
                 f"({d['compressed'] / 2**20:.1f} MiB on disk, "
                 f"{d['uncompressed'] / 2**20:.1f} MiB once decompressed).")
    elif d and not d.get("exists"):
        S.append(f"(glibc's debug file `{d['path']}` was not found.)")
    a2l = {a["label"]: ms(med(a["times"])) for a in fc["addr2line"]}
    if "libc" in a2l:
        S.append(f"`eu-addr2line` (libdw, no process involved) resolving a "
                 f"single libc address takes {a2l['libc']:.0f} ms"
                 + (f", against {a2l['fixture']:.0f} ms for one address in the "
                    f"fixture, whose debug info is small and uncompressed"
                    if "fixture" in a2l else "") + ".")
    S.append("eu-stack uses the same libdw and pays the same cost.")
    before = med([v["before"] for r in results for v in r["verbose"]])
    thr = sorted({r["threads"] for r in results})
    S.append(f"With {'/'.join(map(str, thr))} threads, pprofc also spends a "
             f"median {before:.1f} ms on /proc reads and seizing before the "
             f"stop (from `-v`, all configurations).")
    if len(results) >= 2:
        rs = sorted(results, key=lambda r: max(r["frames"]["eu-stack"]))
        a, b = rs[0], rs[-1]
        fa, fb = max(a["frames"]["eu-stack"]), max(b["frames"]["eu-stack"])
        if fb > fa:
            parts = []
            for t in [t for t in ("eu-stack", "gdb", "pprofc") if t in TOOLS]:
                dt = ms(med(b["times"][t]) - med(a["times"][t]))
                parts.append(f"{t} {ms(med(a['times'][t])):.0f} -> "
                             f"{ms(med(b['times'][t])):.0f} ms "
                             f"({dt / (fb - fa) * 1000:+.1f} ms per 1000 "
                             f"frames)")
            S.append(f"eu-stack's and gdb's cost grows with the number of "
                     f"frames: from depth {a['depth']} ({fa} frames listed by "
                     f"eu-stack) to depth {b['depth']} ({fb}), the median "
                     f"wall time went " + "; ".join(parts) + ".")
    return " ".join(S)


def fixed_cost_table(fc):
    L = []
    n = len(fc["times"]["pprofc"])
    L.append(f"Single-threaded `sleep 100` (libc `{fc['libc']}`), {n} runs "
             f"of each tool, order rotated; milliseconds:\n")
    L.append("| what | median ms | min ms | max ms | frames |")
    L.append("|---|---:|---:|---:|---:|")
    cmds = {"pprofc": "`pprofc dump-threads PID`",
            "eu-stack": "`eu-stack -p PID -i -s`",
            "gdb": "`gdb -nx -batch -ex 'thread apply all bt' -p PID`"}
    for t in TOOLS:
        ts = [x * 1000 for x in fc["times"][t]]
        L.append(f"| {cmds[t]} | {med(ts):.1f} | {min(ts):.1f} | "
                 f"{max(ts):.1f} | {frames_str(fc['frames'][t])} |")
    if fc.get("cold"):
        ts = [x * 1000 for x in fc["cold"]]
        L.append(f"| `pprofc dump-threads PID`, debug cache cold (first run on a machine) | "
                 f"{med(ts):.1f} | {min(ts):.1f} | {max(ts):.1f} | |")
    for key, label in (("before", "pprofc `-v`: /proc reads and seizing "
                        "before the stop"),
                       ("stopped", "pprofc `-v`: process stopped"),
                       ("after", "pprofc `-v`: unwound, symbolized and "
                        "written")):
        xs = [v[key] for v in fc["verbose"] if v[key] is not None]
        if xs:
            L.append(f"| {label} | {med(xs):.1f} | {min(xs):.1f} | "
                     f"{max(xs):.1f} | |")
    for a in fc["addr2line"]:
        ts = [x * 1000 for x in a["times"]]
        what = ("one libc address: libdw loads glibc's debug info"
                if a["label"] == "libc" else
                "one fixture address: small uncompressed debug info")
        L.append(f"| `{shlex.join(a['cmd'])}` ({what}; prints "
                 f"`{a['out']}`) | {med(ts):.1f} | {min(ts):.1f} | "
                 f"{max(ts):.1f} | |")
    return L


def load_str(load):
    return ("idle (no load added)" if not load else
            f"loaded: {load} spinning process{'es' if load > 1 else ''} "
            f"(`{shlex.join(SPINNER)}`)")


def config_name(res):
    return (f"{res['threads']} threads, depth {res['depth']}, "
            + load_str(res.get("load", 0)))


def config_section(args, res):
    times, frames = res["times"], res["frames"]
    m = {t: med(times[t]) for t in TOOLS}
    v = verdicts(res)
    stopped = [x["stopped"] for x in res["verbose"]]
    nstacks = res["threads"] + 1
    L = []
    L.append(f"## {config_name(res)}\n")
    L.append(f"Configuration: `many_threads {res['threads']} {res['depth']}`: "
             f"{res['threads']} threads + main ({nstacks} stacks); thread i "
             f"recurses (i % {res['depth']}) + 1 levels, "
             f"{res['descend_frames']} `descend()` frames in all. Total frames "
             f"listed by eu-stack: {v['eu_fr']} "
             f"({v['eu_fr'] / nstacks:.1f} per stack). {len(stopped)} rounds, "
             f"tool order rotated each round.\n")
    L.append("Wall time per dump (seconds) and frames listed:\n")
    L.append("| tool | median s | min s | max s | frames listed | "
             "median time / pprofc |")
    L.append("|---|---:|---:|---:|---:|---:|")
    for t in TOOLS:
        L.append(f"| {t} | {m[t]:.3f} | {min(times[t]):.3f} | "
                 f"{max(times[t]):.3f} | {frames_str(frames[t])} | "
                 f"{m[t] / m['pprofc']:.1f}x |")
    L.append("")
    before = [x["before"] for x in res["verbose"] if x["before"] is not None]
    after = [x["after"] for x in res["verbose"] if x["after"] is not None]
    L.append(f"pprofc `dump-threads -v` (one untimed run per round, "
             f"{len(stopped)} runs): **process stopped median "
             f"{v['stop_med']:.3f} ms, max {v['stop_max']:.3f} ms** "
             f"(all: {', '.join(f'{x:.3f}' for x in stopped)})"
             + (f"; /proc reads and seizing before the stop median "
                f"{med(before):.1f} ms" if before else "")
             + (f"; unwound, symbolized and written median {med(after):.1f} ms"
                if after else "") + ".\n")
    L.append("Per-round wall times (s):\n")
    L.append("| round | order | " + " | ".join(TOOLS) + " |")
    L.append("|---|---|" + "---:|" * len(TOOLS))
    for i, order in enumerate(res["orders"]):
        L.append(f"| {i + 1} | {' > '.join(order)} | "
                 + " | ".join(f"{times[t][i]:.3f}" for t in TOOLS) + " |")
    L.append("")
    L.append("Against the goals:\n")
    L.append(f"- speed (pprofc >= {SPEED_GOAL}x faster than eu-stack): eu-stack median "
             f"/ pprofc median = {v['ratio']:.1f}x -> {met(v['speed'])}")
    L.append(f"- frames (as many as eu-stack): pprofc {v['pp_fr']} vs eu-stack "
             f"{v['eu_fr']} -> {met(v['frames'])} (pprofc count from text "
             f"output; JSON count: {res['json_frames']}, of which "
             f"{res['json_inlined']} inlined)")
    L.append(f"- stopped (< 20 ms, judged by the median): median "
             f"{v['stop_med']:.3f} ms -> {met(v['stopped'])}; max "
             f"{v['stop_max']:.3f} ms"
             + (" (over 20 ms)" if v["stop_max"] >= 20 else " (also under 20 ms)"))
    L.append("")
    L.append("Per-thread frame comparison, pprofc (JSON) vs eu-stack (last "
             "round):\n")
    L.append("```")
    L.extend(res["compare"])
    L.append("```")
    L.append("")
    return L


def build_report(args, results, fc, argv, fixture, fixture_note, date,
                 prints):
    L = []
    L.append("# pprofc dump-threads benchmark results\n")
    L.append(f"Command: `{argv}` (run from `{ROOT}`)  ")
    L.append(f"Date: {date}  ")
    L.append(f"pprofc: `{args.pprofc}` (sha256 "
             f"{prints[args.pprofc][2][:12]}, unchanged during the run), git "
             f"{git_revision()}  ")
    L.append(f"Fixture: `{fixture}`"
             + (f" (compiled by the script: `{fixture_note}`)"
                if fixture_note else "")
             + f"; configurations: "
             + ", ".join(f"{r['threads']} threads depth {r['depth']} load "
                         f"{r['load']}" for r in results)
             + f"; {args.rounds} rounds each, tool order rotated each round; "
             f"tools: {', '.join(TOOLS)}\n")
    L.append("## Machine\n")
    for k, val in machine_facts():
        L.append(f"- `{k}`: {val}")
    L.append("")
    L.append("## Summary\n")
    L.append("Load: spinning processes added for the measurement (0: idle; "
             "with as many as CPUs, every CPU is busy).\n")
    L.append("| threads | depth | load | frames (eu-stack) | pprofc s | eu-stack s | "
             "gdb s | eu-stack / pprofc | stopped median (max) ms | "
             f"speed >= {SPEED_GOAL}x | frames | stopped < 20 ms |")
    L.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|")
    for r in results:
        v = verdicts(r)
        m = {t: med(r["times"][t]) for t in TOOLS}
        gdb = f"{m['gdb']:.3f}" if "gdb" in m else "not run"
        L.append(f"| {r['threads']} | {r['depth']} | {r['load']} | {v['eu_fr']} | "
                 f"{m['pprofc']:.3f} | {m['eu-stack']:.3f} | {gdb} | "
                 f"{v['ratio']:.1f}x | {v['stop_med']:.1f} "
                 f"({v['stop_max']:.1f}) | {met(v['speed'])} | "
                 f"{met(v['frames'])} | {met(v['stopped'])} |")
    L.append("")
    L.append("## Notes\n")
    L.append(notes_paragraph(fc, results) + "\n")
    L.append("### Fixed cost\n")
    L.extend(fixed_cost_table(fc))
    L.append("")
    for r in results:
        L.extend(config_section(args, r))
    L.append("Health checks (fixture alive, TracerPid 0, no thread in t/T, "
             "thread count unchanged) passed before and after every run, "
             "including the `sleep 100` runs.")
    return "\n".join(L) + "\n"


# ---------------------------------------------------------------- binaries

# ---------------------------------------------------------------- main

def parse_tools(s):
    ts = tuple(t for t in ALL_TOOLS if t in s.split(","))
    if "pprofc" not in ts or "eu-stack" not in ts or set(s.split(",")) - set(ts):
        raise argparse.ArgumentTypeError(
            f"tools among {','.join(ALL_TOOLS)}, with pprofc and eu-stack: {s!r}")
    return ts


def parse_loads(s):
    try:
        ls = [int(x) for x in s.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of integers: {s!r}")
    if not ls or min(ls) < 0:
        raise argparse.ArgumentTypeError(f"loads must be >= 0: {s!r}")
    return ls


def parse_depths(s):
    try:
        ds = [int(x) for x in s.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of integers: {s!r}")
    if not ds or min(ds) < 1:
        raise argparse.ArgumentTypeError(f"depths must be >= 1: {s!r}")
    return ds


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=500)
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--depth", type=int, default=40,
                   help="fixture DEPTH: thread i recurses (i %% DEPTH) + 1 "
                   "levels (default 40)")
    g.add_argument("--depths", type=parse_depths, metavar="D1,D2,...",
                   help="run one configuration per depth, e.g. 40,200 "
                   "(overrides --depth)")
    ap.add_argument("--loads", type=parse_loads, default=[0], metavar="L1,L2,...",
                    help="one configuration per load: L spinning processes "
                    "run during its rounds (default 0: idle); e.g. 0,2")
    ap.add_argument("--tools", type=parse_tools, default=ALL_TOOLS,
                    metavar="T1,T2,...", help="tools to time (default "
                    "pprofc,eu-stack,gdb; gdb may be left out)")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--fixed-runs", type=int, default=5,
                    help="runs of each tool on `sleep 100` (default 5)")
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
    global TOOLS
    TOOLS = args.tools
    depths = args.depths or [args.depth]
    if args.depth < 1:
        ap.error("--depth must be >= 1")
    argv = shlex.join(["python3", os.path.relpath(sys.argv[0], ROOT)
                       if os.path.isabs(sys.argv[0]) else sys.argv[0]]
                      + sys.argv[1:])
    if not os.access(args.pprofc, os.X_OK):
        sys.exit(f"pprofc not found at {args.pprofc} (run `ninja -C build`)")
    for t in TOOLS[1:]:
        if not shutil.which(t):
            sys.exit(f"{t} not found in PATH")

    tmpdir = tempfile.mkdtemp(prefix="pprofc-bench-")
    outdir = args.keep_outputs or tmpdir
    os.makedirs(outdir, exist_ok=True)
    try:
        date = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        fixture, fixture_note = find_fixture(args.fixture, tmpdir)
        prints = {p: fingerprint(p) for p in (args.pprofc, fixture)}
        print(f"fixed cost: {args.fixed_runs} runs of each tool on `sleep 100`",
              flush=True)
        fc = measure_fixed_cost(args, fixture, outdir)
        check_unchanged(prints, "during the fixed-cost runs")
        print("  " + ", ".join(f"{t} {med(fc['times'][t]) * 1000:.1f} ms"
                               for t in TOOLS), flush=True)
        results = []
        for depth in depths:
            for load in args.loads:
                d = os.path.join(outdir, f"depth{depth}-load{load}")
                os.makedirs(d, exist_ok=True)
                results.append(run_config(args, fixture, depth, load, d))
                check_unchanged(prints, f"during the depth {depth} load {load} runs")
        report = build_report(args, results, fc, argv, fixture, fixture_note,
                              date, prints)
        print()
        print(report)
        if args.write_results:
            path = os.path.join(ROOT, "bench", "RESULTS.md")
            # Keeps the sections other scripts own (<!-- NAME:start --> ...
            # <!-- NAME:end -->, e.g. cpu_profile.py's and wall_profile.py's).
            kept = ""
            if os.path.exists(path):
                with open(path) as f:
                    kept = "\n\n".join(m.group(0) for m in re.finditer(
                        r"<!-- (\w+):start -->.*?<!-- \1:end -->", f.read(), re.S))
            with open(path, "w") as f:
                f.write(report.rstrip("\n") + ("\n\n" + kept + "\n" if kept else "\n"))
            print(f"wrote {path}")
        return 0
    except (BenchError, subprocess.TimeoutExpired,
            subprocess.CalledProcessError) as e:
        loud(f"BENCHMARK FAILED: {e}")
        return 1
    finally:
        if not args.keep_outputs:
            shutil.rmtree(tmpdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
