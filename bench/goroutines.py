"""pprofc's goroutine dump of a Go program against Delve's and against the
program's own goroutine?debug=2 (issue 15): wall time, how long the
program was held still, output size and goroutines listed.

    python3 bench/goroutines.py [--goroutines 10000] [--rounds 9] [--write-results]
    python3 bench/goroutines.py --smoke   # 1 round, 1,000 goroutines, no Delve

The target is build/tests/targets/go_pprof_http COUNT (source
tests/targets/go_pprof_http.go): COUNT goroutines parked on a channel,
net/http/pprof served on 127.0.0.1, and a ticker goroutine that wakes
every 1 ms and keeps the longest gap between two wake-ups; GET /gap
returns that gap and starts a new window.  The program's own clock is the
oracle of how long it was held still, whoever holds it: a ptrace stop, a
stop-the-world, or CPUs taken from it.

Each round runs every mode once, in an order rotated each round:

- pprofc: `pprofc dump-threads PID > FILE` (goroutines, then threads);
- dlv: `dlv attach PID --init FILE --allow-non-terminal-interactive`,
  the init file holding `goroutines -t` and `quit`, stdin "n" (the answer
  to quit's "Would you like to kill the process? [Y/n]": Delve detaches
  and the program runs on);
- debug=2: `curl -sS -f -o FILE http://127.0.0.1:PORT/debug/pprof/goroutine?debug=2`;
- none: nothing for --baseline-seconds (the gap the program sees anyway).

Around each run: GET /gap (resets the window), the run (wall time from
just before Popen to the return of a blocking wait), 50 ms for the ticker
to wake again, GET /gap (the longest gap, and runtime.NumGoroutine()).
Then the program must be alive, untraced (TracerPid 0) and have no thread
stopped (t/T), else the script stops with exit 1.  Each output must list
every one of the COUNT parked goroutines (stacks through main.idler) once.
One more, untimed, `pprofc dump-threads -v PID` per round gives pprofc's
own account (process stopped, goroutines read).

--write-results writes its section of bench/RESULTS.md between the
goroutines markers.  stdlib only; needs go (the fixture is built by
meson), curl, and delve (Debian's delve) unless --no-dlv.
"""
import argparse
import datetime
import glob
import http.client
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
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import (ROOT, BenchError, check_unchanged, command_output, cpu_model,  # noqa: E402
                      fingerprint, git_revision, loud, write_section)

RESULTS = os.path.join(ROOT, "bench", "RESULTS.md")
MODES = ("pprofc", "dlv", "debug=2", "none")
LABEL = {"pprofc": "`pprofc dump-threads PID`",
         "dlv": "`dlv attach PID`, `goroutines -t`",
         "debug=2": "`curl .../debug/pprof/goroutine?debug=2`",
         "none": "no tool (baseline)"}
SETTLE = 0.05     # s after a run for the ticker to wake and record the gap


# ---------------------------------------------------------------- fixture

def start_fixture(path, count, timeout):
    """Starts the program; returns (Popen, port) once it printed "ready"."""
    p = subprocess.Popen([path, str(count)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    deadline, buf = time.monotonic() + timeout, b""
    while b"ready\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0 or p.poll() is not None:
            p.kill()
            p.wait()
            raise BenchError(f"{path} did not print 'ready' (rc={p.poll()}, got {buf!r})")
        if select.select([p.stdout], [], [], left)[0]:
            buf += os.read(p.stdout.fileno(), 256)
    m = re.search(rb"^port (\d+)$", buf, re.M)
    if not m:
        p.kill()
        p.wait()
        raise BenchError(f"{path} printed no port: {buf!r}")
    return p, int(m.group(1))


def check_fixture(p, where):
    """Alive, not traced, no thread stopped."""
    if p.poll() is not None:
        raise BenchError(f"the fixture exited (rc={p.returncode}) {where}")
    with open(f"/proc/{p.pid}/status") as f:
        tracer = re.search(r"^TracerPid:\s*(\d+)", f.read(), re.M).group(1)
    if tracer != "0":
        raise BenchError(f"the fixture is still traced (TracerPid {tracer}) {where}")
    for stat in glob.glob(f"/proc/{p.pid}/task/*/stat"):
        try:
            with open(stat) as f:
                s = f.read()
        except OSError:
            continue            # the thread exited meanwhile
        if s[s.rfind(")") + 2] in "tT":
            raise BenchError(f"fixture thread {stat.split('/')[4]} left stopped {where}")


def get_gap(port):
    """(longest gap in ms, ticks, runtime.NumGoroutine()) since the last call."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        c.request("GET", "/gap")
        r = c.getresponse()
        body = r.read().decode()
    finally:
        c.close()
    m = re.match(r"max_gap_us (\d+) ticks (\d+) goroutines (\d+)", body)
    if r.status != 200 or not m:
        raise BenchError(f"GET /gap: {r.status} {body!r}")
    return int(m.group(1)) / 1e3, int(m.group(2)), int(m.group(3))


# ---------------------------------------------------------------- runs

def run_wall(cmd, stdin, stdout, stderr, timeout):
    """(wall seconds, returncode).  A blocking wait, the timeout enforced by
    a timer thread: Popen.wait(timeout) polls with sleeps of up to 50 ms,
    which would round the short runs up (see dump_threads.py)."""
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdin=stdin, stdout=stdout, stderr=stderr)
    timer = threading.Timer(timeout, p.kill)
    timer.start()
    try:
        rc = p.wait()
    finally:
        timer.cancel()
    dt = time.monotonic() - t0
    if dt >= timeout:
        raise BenchError(f"{shlex.join(cmd)} took over {timeout} s: killed")
    return dt, rc


def tool_cmd(mode, args, pid, port, init):
    if mode == "pprofc":
        return [args.pprofc, "dump-threads", str(pid)]
    if mode == "dlv":
        return ["dlv", "attach", str(pid), "--init", init, "--allow-non-terminal-interactive"]
    return ["curl", "-sS", "-f", "-o", "-",
            f"http://127.0.0.1:{port}/debug/pprof/goroutine?debug=2"]


def run_mode(mode, args, fx, port, outdir, tag):
    """One run of mode; returns a dict of what was measured."""
    get_gap(port)                                   # a new window
    out = os.path.join(outdir, f"{tag}-{mode}.txt")
    if mode == "none":
        t0 = time.monotonic()
        time.sleep(args.baseline_seconds)
        wall = time.monotonic() - t0
    else:
        cmd = tool_cmd(mode, args, fx.pid, port, os.path.join(outdir, "dlv-init"))
        answer = os.path.join(outdir, "dlv-answer")
        with open(out, "wb") as o, open(out + ".stderr", "wb") as e, \
                open(answer if mode == "dlv" else os.devnull, "rb") as i:
            wall, rc = run_wall(cmd, i, o, e, args.timeout)
        if rc != 0:
            with open(out + ".stderr", errors="replace") as f:
                raise BenchError(f"{mode} exited {rc}: {shlex.join(cmd)}\n{f.read()[-2000:]}")
    time.sleep(SETTLE)
    gap, ticks, live = get_gap(port)
    check_fixture(fx, f"after {mode} ({tag})")
    r = {"wall": wall, "gap": gap, "ticks": ticks, "live": live}
    if mode != "none":
        r.update(count_output(mode, out, args.goroutines))
    return r


def count_output(mode, path, count):
    """Goroutines listed, those of them parked in main.idler (must be all
    COUNT, each once), and the output's size."""
    with open(path, errors="replace") as f:
        text = f.read()
    if mode == "dlv":
        if "Would you like to kill the process? [Y/n]" not in text:
            raise BenchError(f"dlv did not reach quit's question: see {path}")
        m = re.search(r"^\[(\d+) goroutines\]$", text, re.M)
        head = re.compile(r"^\s*\*?\s*Goroutine (\d+) - ", re.M)
    else:
        m = None
        head = re.compile(r"^goroutine (\d+) \[", re.M)
        threads = re.search(r"^thread \d+ ", text, re.M)    # pprofc: the threads follow
        if threads:
            text = text[:threads.start()]
    starts = [(h.start(), h.group(1)) for h in head.finditer(text)] + [(len(text), None)]
    ids = [gid for _, gid in starts[:-1]]
    idle = sum("main.idler" in text[a:b] for (a, _), (b, _) in zip(starts, starts[1:]))
    if len(set(ids)) != len(ids):
        raise BenchError(f"{mode} lists a goroutine twice: see {path}")
    if idle != count:
        raise BenchError(f"{mode} shows {idle} goroutines in main.idler, not {count}: see {path}")
    listed = int(m.group(1)) if m else len(ids)
    return {"listed": listed, "idle": idle, "bytes": os.path.getsize(path),
            "unwind_stopped": text.count("...unwinding stopped") if mode == "pprofc" else 0}


def pprofc_verbose(args, pid):
    """pprofc's own account: (process stopped ms, goroutines read ms)."""
    r = subprocess.run([args.pprofc, "dump-threads", "-v", str(pid)], stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True, timeout=args.timeout)
    if r.returncode:
        raise BenchError(f"pprofc dump-threads -v exited {r.returncode}: {r.stderr[-2000:]}")
    stopped = re.search(r"process stopped for ([\d.]+) ms", r.stderr)
    read = re.search(r"(\d+) goroutines read in ([\d.]+) ms", r.stderr)
    if not stopped or not read:
        raise BenchError(f"pprofc -v printed no stop time or goroutine count:\n{r.stderr}")
    return float(stopped.group(1)), float(read.group(2))


def measure(args, modes, outdir):
    with open(os.path.join(outdir, "dlv-init"), "w") as f:
        f.write("goroutines -t\nquit\n")
    with open(os.path.join(outdir, "dlv-answer"), "w") as f:
        f.write("n\n")                      # quit: do not kill the process
    fx, port = start_fixture(args.fixture, args.goroutines, args.timeout)
    try:
        check_fixture(fx, "at the start")
        time.sleep(1)                       # past its start-up
        rounds = []
        for i in range(args.rounds):
            order = modes[i % len(modes):] + modes[:i % len(modes)]
            res = {"order": order}
            for mode in order:
                res[mode] = run_mode(mode, args, fx, port, outdir, f"r{i + 1}")
            res["verbose"] = pprofc_verbose(args, fx.pid)
            check_fixture(fx, f"after pprofc -v (round {i + 1})")
            rounds.append(res)
            print(f"round {i + 1}: " + ", ".join(
                f"{m} {res[m]['wall']:.3f} s gap {res[m]['gap']:.1f} ms" for m in order), flush=True)
        return rounds
    finally:
        fx.kill()
        fx.wait()


# ---------------------------------------------------------------- report

def med(xs):
    return statistics.median(xs)


def col(rounds, mode, key):
    return [r[mode][key] for r in rounds]


def summary_table(rounds, modes):
    base_gap = med(col(rounds, "none", "gap"))
    pp_wall = med(col(rounds, "pprofc", "wall"))
    lines = ["| what | wall s, median (min-max) | wall / pprofc | longest tick gap ms, median (max) "
             "| gap / baseline | output bytes | goroutines listed |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for m in modes:
        w, g = col(rounds, m, "wall"), col(rounds, m, "gap")
        ratio = f"{med(w) / pp_wall:.1f}x" if m != "none" else ""
        size = f"{med(col(rounds, m, 'bytes')):,.0f}" if m != "none" else ""
        listed = f"{med(col(rounds, m, 'listed')):,.0f}" if m != "none" else ""
        lines.append(f"| {LABEL[m]} | {med(w):.3f} ({min(w):.3f}-{max(w):.3f}) | {ratio} | "
                     f"{med(g):.1f} ({max(g):.1f}) | {med(g) / base_gap:.1f}x | {size} | {listed} |")
    return lines


def round_table(rounds, modes):
    lines = ["| round | order | " + " | ".join(f"{m} s / gap ms" for m in modes)
             + " | pprofc -v stopped ms / read ms |",
             "|---:|---|" + "---:|" * (len(modes) + 1)]
    for i, r in enumerate(rounds):
        cells = [f"{r[m]['wall']:.3f} / {r[m]['gap']:.1f}" for m in modes]
        lines.append(f"| {i + 1} | {' > '.join(r['order'])} | " + " | ".join(cells)
                     + f" | {r['verbose'][0]:.3f} / {r['verbose'][1]:.0f} |")
    return lines


def report(args, rounds, modes, argv, date, took, prints):
    stopped = [r["verbose"][0] for r in rounds]
    read = [r["verbose"][1] for r in rounds]
    live = sorted({r[m]["live"] for r in rounds for m in modes})
    base = col(rounds, "none", "gap")
    ticks = med(col(rounds, "none", "ticks")) / args.baseline_seconds
    lines = [
        "# pprofc goroutine dump against Delve and goroutine?debug=2 (issue 15)",
        "",
        f"Written by `bench/goroutines.py` (between the `goroutines:start` / `goroutines:end` markers).  ",
        f"Command: `{argv}` (run from `{ROOT}`)  ",
        f"Date: {date} (took {took:.0f} s)  ",
        f"pprofc: `{args.pprofc}`, sha256 `{prints[args.pprofc][2][:12]}` (unchanged during the run), "
        f"git {git_revision()}  ",
        f"Fixture: `{args.fixture} {args.goroutines}` (tests/targets/go_pprof_http.go): "
        f"{args.goroutines} goroutines parked on a channel receive 1-4 calls deep, net/http/pprof "
        f"on 127.0.0.1, a 1 ms ticker; `runtime.NumGoroutine()` after the runs: "
        f"{', '.join(map(str, live))}  ",
        f"{args.rounds} rounds, every mode once per round, the order rotated each round; "
        f"medians.",
        "",
        "## Machine",
        "",
        f"- `nproc`: {command_output(['nproc'])}",
        f"- `uname -r`: {command_output(['uname', '-r'])}",
        f"- CPU: {cpu_model()}",
        f"- `go version`: {command_output(['go', 'version'])}",
    ]
    if "dlv" in modes:
        dv = subprocess.run(["dlv", "version"], capture_output=True, text=True, timeout=30).stdout
        ver = re.search(r"Version: (\S+)", dv)
        lines.append(f"- `dlv version`: {ver.group(1) if ver else dv.strip()}")
    lines += [
        f"- `curl --version`: {command_output(['curl', '--version'])}",
        f"- python: {platform.python_version()}",
        "",
        "## Results",
        "",
        "Longest tick gap: the longest time between two wake-ups of the fixture's 1 ms ticker "
        f"during the run (+{SETTLE * 1000:.0f} ms after it), by the program's own clock: how long "
        "it was held still, an upper bound, since CPUs taken by the tool and the machine's "
        f"other jobs count too.  Baseline: the same over {args.baseline_seconds:g} s with no "
        f"tool (median {med(base):.1f} ms, max {max(base):.1f} ms; {ticks:.0f} ticks a second).",
        "",
    ] + summary_table(rounds, modes) + [
        "",
        f"pprofc's own account (`dump-threads -v`, one untimed run per round): process stopped "
        f"median {med(stopped):.3f} ms (max {max(stopped):.3f}; only threads not blocked in a system call "
        f"are stopped, for the thread view), goroutines read without stopping it in median "
        f"{med(read):.0f} ms.",
        "",
        "Each output lists every one of the fixture's parked goroutines (stacks through "
        "`main.idler`) exactly once.  Goroutines listed: pprofc and debug=2 leave out the "
        "runtime's own goroutines, as Go's default traceback does"
        + ("; Delve lists them (`[N goroutines]`), and its `goroutines -t` prints 10 frames "
           "per goroutine at most." if "dlv" in modes else "."),
    ]
    unw = col(rounds, "pprofc", "unwind_stopped")
    if any(unw):
        lines += ["", f"pprofc's output had {med(unw):.0f} `...unwinding stopped` lines (median): "
                  "goroutines whose unwind did not end at `runtime.goexit` (a pprofc defect)."]
    lines += ["", "Per round (wall seconds / longest tick gap ms):", ""] + round_table(rounds, modes) + [
        "",
        "After every run the fixture was alive, untraced (TracerPid 0), with no thread stopped; "
        "Delve detached (quit, answered \"n\" to killing the process) every time."
        if "dlv" in modes else
        "After every run the fixture was alive, untraced (TracerPid 0), with no thread stopped.",
    ]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--goroutines", type=int, default=10000)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--baseline-seconds", type=float, default=1.0,
                    help="length of the no-tool window (default 1)")
    ap.add_argument("--no-dlv", action="store_true", help="leave Delve out")
    ap.add_argument("--smoke", action="store_true",
                    help="a quick check: 1 round, 1,000 goroutines, no Delve, no results written")
    ap.add_argument("--pprofc", default=os.path.join(ROOT, "build", "cli", "pprofc"))
    ap.add_argument("--fixture", default=os.path.join(ROOT, "build", "tests", "targets", "go_pprof_http"))
    ap.add_argument("--timeout", type=float, default=120, help="seconds allowed per run")
    ap.add_argument("--write-results", action="store_true",
                    help="write the goroutines section of bench/RESULTS.md")
    ap.add_argument("--keep-outputs", metavar="DIR", help="keep every output in DIR")
    args = ap.parse_args()
    if args.smoke:
        if args.write_results:
            ap.error("--smoke results are not written")
        args.rounds, args.goroutines, args.no_dlv = 1, 1000, True
    if args.rounds < 1 or args.goroutines < 1:
        ap.error("--rounds and --goroutines must be at least 1")
    modes = tuple(m for m in MODES if not (args.no_dlv and m == "dlv"))
    for p in (args.pprofc, args.fixture):
        if not os.access(p, os.X_OK):
            sys.exit(f"goroutines.py: {p} is not built: run `ninja -C build` (needs go)")
    for t in ["curl"] + (["dlv"] if "dlv" in modes else []):
        if not shutil.which(t):
            sys.exit(f"goroutines.py: {t} not found: apt-get install "
                     f"{'delve' if t == 'dlv' else t}, or pass --no-dlv")
    argv = shlex.join(["python3", os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:])
    outdir = args.keep_outputs or tempfile.mkdtemp(prefix="pprofc-gobench-")
    os.makedirs(outdir, exist_ok=True)
    try:
        date = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        prints = {p: fingerprint(p) for p in (args.pprofc, args.fixture)}
        t0 = time.monotonic()
        rounds = measure(args, modes, outdir)
        check_unchanged(prints, "during the run")
        section = report(args, rounds, modes, argv, date, time.monotonic() - t0, prints)
    except (BenchError, OSError, subprocess.SubprocessError) as e:
        loud(f"BENCHMARK FAILED: {e}")
        return 1
    finally:
        if not args.keep_outputs:
            shutil.rmtree(outdir, ignore_errors=True)
    print()
    print(section)
    if args.write_results:
        write_section(RESULTS, "goroutines", section)
        print(f"\nwrote the goroutines section of {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
