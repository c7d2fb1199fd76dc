"""What `pprofc serve` costs: its own CPU while idle, and the latency of
goroutine?debug=2 against `pprofc dump-threads` on the same target.

    python3 bench/serve.py [--idle-seconds 60] [--rounds 9] [--write-results]

1. Idle: pprofc serve on the many_threads fixture (500 threads, depth
   40; build/tests/targets/many_threads 500 40), no request for
   --idle-seconds: serve's utime+stime from /proc/PID/stat over that
   window, extrapolated to an hour (block and mutex, which tick every
   thread at --offcpu-hz, run only from a request for them until
   --offcpu-keep passes without one: none is made here), and the
   fixture's own CPU over the same window (its threads are parked: any
   CPU it uses is pprofc's doing).
2. Latency: --rounds rounds, each one GET goroutine?debug=2 (a fresh
   connection, body read to the end) and one `pprofc dump-threads PID >
   /dev/null`, alternating which goes first; medians.

Writes its section of bench/RESULTS.md between the serve markers with
--write-results.  stdlib only.
"""
import argparse
import http.client
import os
import re
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import ROOT, BenchError, cpu_model, git_revision, write_section  # noqa: E402

RESULTS = os.path.join(ROOT, "bench", "RESULTS.md")
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def start_fixture(path):
    p = subprocess.Popen([path, "500", "40"], stdout=subprocess.PIPE, text=True)
    for line in p.stdout:
        if line.strip() == "ready":
            return p
    raise BenchError("many_threads exited before it was ready")


def start_serve(pprofc, pid, extra):
    p = subprocess.Popen([pprofc, "serve", "--listen", "127.0.0.1:0"] + extra + [str(pid)],
                         stderr=subprocess.PIPE, text=True)
    for line in p.stderr:
        m = re.search(r"on http://127\.0\.0\.1:(\d+)/", line)
        if m:
            return p, int(m.group(1))
    raise BenchError("pprofc serve did not start")


def get_ms(port, path):
    t0 = time.monotonic()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    c.request("GET", "/debug/pprof/" + path)
    r = c.getresponse()
    body = r.read()
    c.close()
    if r.status != 200 or not body:
        raise BenchError("GET %s: %d" % (path, r.status))
    return (time.monotonic() - t0) * 1e3


def dump_ms(pprofc, pid):
    t0 = time.monotonic()
    with open(os.devnull, "w") as null:
        r = subprocess.run([pprofc, "dump-threads", str(pid)], stdout=null, stderr=subprocess.PIPE, timeout=120)
    if r.returncode:
        raise BenchError("dump-threads: %s" % r.stderr.decode().strip())
    return (time.monotonic() - t0) * 1e3


def measure(args):
    fx = start_fixture(args.fixture)
    srv = None
    try:
        srv, port = start_serve(args.pprofc, fx.pid, args.serve_args)
        time.sleep(2)   # the collections' start-up is not idle cost
        s0, f0, t0 = cpu_seconds(srv.pid), cpu_seconds(fx.pid), time.monotonic()
        time.sleep(args.idle_seconds)
        s1, f1, t1 = cpu_seconds(srv.pid), cpu_seconds(fx.pid), time.monotonic()
        idle = {"window": t1 - t0, "serve": s1 - s0, "fixture": f1 - f0}
        serve, dump = [], []
        get_ms(port, "goroutine?debug=2")       # warm both caches once
        dump_ms(args.pprofc, fx.pid)
        for i in range(args.rounds):
            order = (("serve", "dump") if i % 2 == 0 else ("dump", "serve"))
            for what in order:
                (serve if what == "serve" else dump).append(
                    get_ms(port, "goroutine?debug=2") if what == "serve" else dump_ms(args.pprofc, fx.pid))
        return idle, serve, dump
    finally:
        if srv:
            srv.terminate()
            srv.wait()
        fx.kill()
        fx.wait()


def report(args, idle, serve, dump):
    per_hour = idle["serve"] / idle["window"] * 3600
    lines = [
        "## pprofc serve (issue 13)",
        "",
        "`python3 bench/serve.py --idle-seconds %d --rounds %d%s` on %s, revision %s; target "
        "build/tests/targets/many_threads 500 40 (500 parked threads)." % (
            args.idle_seconds, args.rounds, " --serve-args '%s'" % " ".join(args.serve_args) if args.serve_args else "",
            cpu_model(), git_revision()),
        "",
        "| | |",
        "|---|---:|",
        "| serve's CPU while idle, over %.0f s | %.2f s (%.2f%% of one core) |" % (
            idle["window"], idle["serve"], 100 * idle["serve"] / idle["window"]),
        "| ...extrapolated per hour | %.0f s |" % per_hour,
        "| the target's CPU over the same window | %.2f s |" % idle["fixture"],
        "| goroutine?debug=2, median of %d | %.1f ms |" % (len(serve), statistics.median(serve)),
        "| pprofc dump-threads, median of %d (a new process each) | %.1f ms |" % (
            len(dump), statistics.median(dump)),
        "",
        "Each round, alternating which runs first: goroutine?debug=2 (ms) %s; dump-threads (ms) %s." % (
            ", ".join("%.0f" % v for v in serve), ", ".join("%.0f" % v for v in dump)),
    ]
    return "\n".join(lines)


def write_results(section):
    write_section(RESULTS, "serve", section)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pprofc", default=os.path.join(ROOT, "build", "cli", "pprofc"))
    ap.add_argument("--fixture", default=os.path.join(ROOT, "build", "tests", "targets", "many_threads"))
    ap.add_argument("--idle-seconds", type=float, default=60)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--serve-args", default="", help="more options for pprofc serve, e.g. '--offcpu-hz 0'")
    ap.add_argument("--write-results", action="store_true", help="write the serve section of bench/RESULTS.md")
    args = ap.parse_args()
    args.serve_args = args.serve_args.split()
    for p in (args.pprofc, args.fixture):
        if not os.access(p, os.X_OK):
            sys.exit(f"serve.py: {p} is not built: run ./dev.sh build first")
    try:
        idle, serve, dump = measure(args)
    except BenchError as e:
        sys.exit(f"serve.py: {e}")
    section = report(args, idle, serve, dump)
    print(section)
    if args.write_results:
        write_results(section)
        print(f"\nwrote the serve section of {RESULTS}")


if __name__ == "__main__":
    main()
