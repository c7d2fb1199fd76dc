"""The trace files load in a real trace reader: the trace engine of Chrome
DevTools' Performance panel (@paulirish/trace_engine, from npm: the code
DevTools runs when a trace-event JSON is opened), run by node.  It reads
each thread's events into its own tree of slices; the check is that every
thread pprofc wrote is there, named, with every slice, nested as written.
dev.sh installs it under tests/reader/ (npm ci); skipped where absent."""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from fixture import SKIP, Fixture, check, done, pprofc, require_ptrace  # noqa: E402

READER_DIR = os.environ.get("PPROFC_TRACE_READER_DIR") or os.path.join(
    os.path.dirname(__file__), "..", "reader")
SCRIPT = os.path.join(READER_DIR, "load_trace.mjs")


def require_reader():
    node = subprocess.run(["node", "--version"], capture_output=True, text=True) if \
        os.path.exists("/usr/bin/node") or os.path.exists("/usr/local/bin/node") else None
    mod = os.path.join(READER_DIR, "node_modules", "@paulirish", "trace_engine")
    if not node or node.returncode != 0 or not os.path.isdir(mod):
        print("skipped: the trace reader is not installed (node and %s: ./dev.sh installs them, "
              "npm ci in tests/reader)" % mod)
        sys.exit(SKIP)


def read(path):
    r = subprocess.run(["node", SCRIPT, path], capture_output=True, text=True, timeout=120)
    check(r.returncode == 0, "reader failed on %s: %s" % (path, r.stderr[-2000:]))
    return json.loads(r.stdout) if r.returncode == 0 else None


def main():
    require_ptrace()
    require_reader()
    for engine in ("perf", "ptrace"):
        with Fixture("schedule") as fx:
            out = tempfile.mktemp(suffix=".json")
            r = pprofc("attach", fx.pid, "--profile", "trace", "--seconds", "2", "--engine",
                       engine if engine == "ptrace" else "auto", "-o", out)
            check(r.returncode == 0, "%s: %s" % (engine, r.stderr))
            if r.returncode:
                continue
            with open(out) as f:
                doc = json.load(f)
            want = {}
            names = {}
            for e in doc["traceEvents"]:
                if e["ph"] == "X":
                    want[e["tid"]] = want.get(e["tid"], 0) + 1
                elif e["ph"] == "M" and e["tid"]:
                    names[e["tid"]] = e["args"]["name"]
            got = read(out)
            if got is None:
                continue
            threads = {int(t["tid"]): t for t in got["threads"] if int(t["pid"]) == fx.pid}
            for tid, n in want.items():
                t = threads.get(tid)
                check(t is not None and t["name"] == names[tid] and t["slices"] == n,
                      "%s: thread %d (%s): the reader has %r, pprofc wrote %d slices"
                      % (engine, tid, names.get(tid), t and {k: t[k] for k in ("name", "slices")}, n))
                check(t is None or t["misnested"] == 0, "%s: thread %d: %d slices misnested"
                      % (engine, tid, t and t["misnested"]))
            a_tid = int(fx.lines[0].split()[0])
            check("mutex wait" in threads.get(a_tid, {}).get("names", []),
                  "%s: the reader sees no mutex wait on A: %r" % (engine, threads.get(a_tid)))
            print("%s: %d threads, %d slices read back" % (engine, len(threads), sum(want.values())))
            os.unlink(out)
    done()


if __name__ == "__main__":
    main()
