"""The other views of a Go program's goroutines (issue 15): the grouped
text (`dump-threads --debug=1`), the goroutine profile (`attach --profile
threads`, `dump-threads --pprof`) and serve's /debug/pprof/goroutine at
debug=0, 1 and 2, against the program's own.

The go_goroutines fixture (tests/targets/go_goroutines.go) writes, on
SIGUSR1 and after pprofc has read it, Go's own
pprof.Lookup("goroutine").WriteTo(f, 1) and WriteTo(f, 0) and
runtime.Stack(buf, true): the oracles.  Its goroutines sit still (one in
each common wait, 2000 idle ones on one channel) but two: the spinner
runs, and the goroutine that writes the oracles is running in Go's and
parked in pprofc's; stacks holding either are left out of the
comparisons.  What is compared:
- debug=1: every other block of Go's text, byte for byte (count, the '@'
  pcs, the "# labels: {...}" line of goroutines with pprof labels, inlined
  frames' pcs from Go's inline tree, '#' lines and their tab alignment),
  in Go's order, and the same total;
- the profiles, read by go tool pprof -raw (no warning): sample and
  period type goroutine/count, period 1, and the multiset of stacks
  (function names, inlined ones included) and their labels with their
  counts;
- serve: the same for goroutine?debug=0 and 1, and goroutine?debug=2
  against runtime.Stack as test_goroutines.py compares dump-threads.
A C program keeps its threads/count profile.
"""
import collections
import os
import re
import shutil
import signal
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from fixture import (Fixture, check, check_untouched, done, fixture_path, gopprof,  # noqa: E402
                     pprofc, require_ptrace, wait_for)
from golib import signal_aside  # noqa: E402
from test_goroutines import by_function, compare, parse_dump  # noqa: E402
from test_serve import Server  # noqa: E402

IDLE = 2000
# Stacks that move between pprofc's reads and Go's.
MOVING = {"main.spinner", "main.spinStep", "main.main.func1", "main.writeOracle"}
UNREAD = "[goroutine: its stack was not read]"     # pprofc's marker location
# The fixture's goroutines with pprof labels: (how many, Go's debug=1 form).
LABELLED = [(3, '{"shard":"3", "worker":"a"}'), (1, '{"worker":"b"}'), (1, "{}"),
            (1, '{"k0":"v0", "k1":"v1", "k2":"v2", "k3":"v3", "k4":"v4", "k5":"v5", "k6":"v6", '
                '"k7":"v7", "k8":"v8", "k9":"with \\"quotes\\"\\tand a tab"}')]


def parse_debug1(text):
    """(total, [(count, names, block text)]) of a goroutine?debug=1 text,
    up to the end of its blocks (pprofc's thread part follows)."""
    lines = text.split("\n")
    m = re.match(r"^goroutine profile: total (\d+)$", lines[0])
    check(m is not None, "not a goroutine profile: %r" % lines[0])
    if not m:
        return 0, []
    blocks, cur = [], None
    for line in lines[1:]:
        c = re.match(r"^(\d+) @( 0x[0-9a-f]+)*$", line)
        if c:
            cur = (int(c.group(1)), [], [line])
            blocks.append(cur)
        elif cur is not None and line.startswith("# labels: "):
            cur[2].append(line)
        elif cur is not None and line.startswith("#"):
            cur[2].append(line)
            cells = re.split(r"\t+", line)
            cur[1].append(re.sub(r"\+0x[0-9a-f]+$", "", cells[2]) if len(cells) > 2 else cells[1])
        elif not line:
            cur = None
        else:
            break
    return int(m.group(1)), blocks


def still(blocks):
    return [b for b in blocks if not MOVING & set(b[1])]


def compare_debug1(ours, oracle, label):
    total, blocks = parse_debug1(ours)
    want_total, want = parse_debug1(oracle)
    check(total == want_total, "%s: total %d, Go's %d" % (label, total, want_total))
    a, b = still(blocks), still(want)
    check(len(b) >= 10 and any(c == IDLE for c, _, _ in b), "%s: Go's text has %d still blocks" % (label, len(b)))
    # The fixture's labelled goroutines, so that the comparison covers them.
    for count, labels in LABELLED:
        check(any(c == count and x[1] == "# labels: " + labels for c, _, x in b),
              "%s: Go's text has no block of %d with labels %s" % (label, count, labels))
    check(["\n".join(x[2]) for x in a] == ["\n".join(x[2]) for x in b],
          "%s: the blocks differ from Go's:\n%s\n--- Go's:\n%s" %
          (label, "\n\n".join("\n".join(x[2]) for x in a)[:3000],
           "\n\n".join("\n".join(x[2]) for x in b)[:3000]))
    return len(a)


def raw_goroutine_stacks(path, label):
    """Counter {(function, ...) leaf first, inlined included, then the
    sample's labels as -raw prints them ("" for none): count} of a
    goroutine profile, by go tool pprof -raw, which must not warn."""
    text, err = gopprof("-raw", path)
    check(err == "", "%s: go tool pprof -raw warned: %r" % (label, err))
    check("PeriodType: goroutine count\nPeriod: 1\n" in text and "\ngoroutine/count\n" in text,
          "%s: not a goroutine/count profile: %r" % (label, text[:200]))
    body, _, tail = text.partition("\nLocations\n")
    tail = tail.split("\nMappings\n")[0]
    locs, last = {}, None
    for line in tail.splitlines():
        # A marker (a goroutine whose stack was not read) has no mapping.
        m = re.match(r"^\s+(\d+): 0x[0-9a-f]+(?: M=\d+)? (.*)$", line)
        rest = m.group(2) if m else line.strip()
        rest = re.sub(r" s=\d+$", "", rest)
        name = re.sub(r" \S*:\d+$", "", rest)
        if m:
            last = locs.setdefault(m.group(1), [])
        if last is not None and name:
            last.append(name)
    samples = []
    for line in body.split("Samples:", 1)[-1].splitlines():
        m = re.match(r"^\s*(\d+):((?:\s+\d+)*)\s*$", line)
        if m:
            samples.append([int(m.group(1)), tuple(n for i in m.group(2).split() for n in locs.get(i, ["?"])), ""])
        elif samples and re.match(r"^\s+\S+:\[", line):
            samples[-1][2] = line.strip()
    stacks = collections.Counter()
    for count, names, labels in samples:
        stacks[names + (labels,)] += count
    return stacks


def compare_profile(path, oracle_stacks, label):
    got = raw_goroutine_stacks(path, label)
    a = {k: v for k, v in got.items() if not MOVING & set(k) and k[0] != UNREAD}
    b = {k: v for k, v in oracle_stacks.items() if not MOVING & set(k)}
    # A goroutine that ran while it was read may have no stack (seen once,
    # under the sanitizer build): only a moving one, as Go's profile has them.
    unread = sum(v for k, v in got.items() if k[0] == UNREAD)
    moving = sum(v for k, v in oracle_stacks.items() if MOVING & set(k))
    check(unread <= moving, "%s: %d goroutines without a stack, %d moving in Go's profile"
          % (label, unread, moving))
    for count, labels in (3, "shard:[3] worker:[a]"), (1, "worker:[b]"):
        check(any(k[-1] == labels and v == count for k, v in b.items()),
              "%s: Go's profile has no %d goroutines labelled %s" % (label, count, labels))
    check(sum(got.values()) == sum(oracle_stacks.values()), "%s: %d goroutines, Go's profile %d" %
          (label, sum(got.values()), sum(oracle_stacks.values())))
    check(a == b, "%s: stacks only in pprofc's %s, only in Go's %s" %
          (label, [(k, v) for k, v in a.items() if b.get(k) != v][:3],
           [(k, v) for k, v in b.items() if a.get(k) != v][:3]))
    return len(a)


def read_oracles(fx, path):
    """Asks the fixture for its own views: (debug=1 text, profile path,
    runtime.Stack text)."""
    for p in (path, path + ".debug1", path + ".pb"):
        if os.path.exists(p):
            os.unlink(p)
    signal_aside(fx.pid, signal.SIGUSR1)
    check(wait_for(lambda: os.path.exists(path), timeout=30), "the fixture wrote no oracle")
    with open(path + ".debug1") as f:
        debug1 = f.read()
    with open(path) as f:
        stack = f.read().split("\n", 1)[1]
    return debug1, path + ".pb", stack


def test_views(work):
    oracle_path = os.path.join(work, "oracle")
    with Fixture("go_goroutines", args=[oracle_path, str(IDLE)]) as fx:
        d1 = pprofc("dump-threads", "--debug=1", fx.pid)
        check(d1.returncode == 0, "dump-threads --debug=1: %s" % d1.stderr)
        check(re.search(r"\n\nthread profile: total \d+\n", d1.stdout) is not None,
              "--debug=1: no thread part after the goroutines'")
        attach_pb = os.path.join(work, "attach.pb.gz")
        a = pprofc("attach", "--profile", "threads", "-o", attach_pb, fx.pid)
        check(a.returncode == 0, "attach --profile threads: %s" % a.stderr)
        m = re.search(r"the profile counts its (\d+) goroutines", a.stderr)
        check(m is not None and len(a.stderr.strip().splitlines()) == 1,
              "attach --profile threads: stderr %r" % a.stderr)
        # Saved as go tool pprof names a goroutine profile.
        saved_dir = os.path.join(work, "saved")
        os.mkdir(saved_dir)
        sv = pprofc("attach", "--profile", "threads", fx.pid, env=dict(os.environ, PPROF_TMPDIR=saved_dir))
        check(sv.returncode == 0 and os.listdir(saved_dir) == ["pprof.go_goroutines.goroutine.001.pb.gz"],
              "attach --profile threads saved %s: %s" % (os.listdir(saved_dir), sv.stderr))
        dump_pb = os.path.join(work, "dump.pb.gz")
        dp = pprofc("dump-threads", "--pprof", dump_pb, fx.pid)
        check(dp.returncode == 0 and dp.stdout.startswith("goroutine 1 ["),
              "dump-threads --pprof: %s" % dp.stderr)
        with Server([str(fx.pid)]) as srv:
            s0, h0, b0 = srv.get("goroutine")
            s1, h1, b1 = srv.get("goroutine?debug=1")
            s2, h2, b2 = srv.get("goroutine?debug=2")
        check(s0 == 200 and h0.get("content-disposition") == 'attachment; filename="goroutine"',
              "goroutine: %d %r" % (s0, h0))
        check(s1 == 200 and s2 == 200 and h1["content-type"] == "text/plain; charset=utf-8",
              "goroutine?debug=1, 2: %d %d" % (s1, s2))
        serve_pb = os.path.join(work, "serve.pb.gz")
        with open(serve_pb, "wb") as f:
            f.write(b0)

        debug1, oracle_pb, stack = read_oracles(fx, oracle_path)

        n = compare_debug1(d1.stdout, debug1, "dump-threads --debug=1")
        compare_debug1(b1.decode(), debug1, "serve goroutine?debug=1")
        oracle_stacks = raw_goroutine_stacks(oracle_pb, "Go's own profile")
        k = compare_profile(attach_pb, oracle_stacks, "attach --profile threads")
        compare_profile(dump_pb, oracle_stacks, "dump-threads --pprof")
        compare_profile(serve_pb, oracle_stacks, "serve goroutine")
        if m:
            check(int(m.group(1)) == sum(oracle_stacks.values()), "attach said %s goroutines, Go's profile %d" %
                  (m.group(1), sum(oracle_stacks.values())))
        ours, _ = parse_dump(b2.decode(), oracle=False)
        oracle, order = parse_dump(stack, oracle=True)
        spinner = (by_function(oracle, "main.spinner") or [None])[0]
        g = compare(ours, oracle, order[0], spinner, "serve goroutine?debug=2")
        check(g >= IDLE + 9, "serve goroutine?debug=2: only %d goroutines compared" % g)
        print("debug=1: %d still blocks equal to Go's; profiles: %d still stacks equal (attach, "
              "dump-threads --pprof, serve); serve debug=2: %d goroutines" % (n, k, g))
        check_untouched(fx.pid, label="go_goroutines")


def test_not_go(work):
    """A C program: the threads profile counts threads, says nothing of Go."""
    with Fixture("waits") as fx:
        path = os.path.join(work, "c.pb.gz")
        r = pprofc("attach", "--profile", "threads", "-o", path, fx.pid)
        check(r.returncode == 0 and "goroutine" not in r.stderr, "waits: %r" % r.stderr)
        text, err = gopprof("-raw", path)
        check("PeriodType: threads count" in text and err == "", "waits: %r" % text[:200])


def main():
    require_ptrace()
    if not fixture_path("go_goroutines") or not os.path.exists(fixture_path("go_goroutines")):
        print("skipped: the go_goroutines fixture is not built (no go tool)")
        sys.exit(77)
    work = tempfile.mkdtemp(prefix="pprofc-goviews-")
    try:
        test_views(work)
        test_not_go(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    done()


if __name__ == "__main__":
    main()
