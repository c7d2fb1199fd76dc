"""`pprofc run --profile heap|allocs` end to end, against truths nobody
here wrote: the numbers the fixtures print about their own allocations
(heap_alloc, heap_new), and `go tool pprof` reading the files.

- The default rate (512 KiB): inuse_space of keep_live and alloc_space of
  churn within 10% of the fixture's truth, churn absent from inuse, the
  heaviest frames the fixture's own functions, nothing dropped.  Why 10%
  cannot flake: a block of n bytes is sampled with probability
  p = 1 - exp(-n/rate), so a path of N blocks gets K ~ Binomial(N, p)
  samples and its estimate K*n/p has a relative standard deviation of
  sqrt((1-p)/(N p)), about 1/sqrt(samples).  The fixture's default 64 MiB
  of 4096-byte blocks gets ~128 samples: 8.9%, and 10% would fail one run
  in four.  So the run is `heap_alloc 2048 2048`: keep_live 524288 blocks,
  p = 0.0078, ~4080 samples, 1.56%; churn 2147480 blocks of 1000 bytes,
  p = 0.0019, ~4090 samples, 1.56%.  10% is then 6.4 standard deviations,
  a two-sided chance below 2e-10 per run.  The test computes these figures
  from the printed truth and fails if 10% is not at least 6 of them.
- `--heap-rate 1`: nothing dropped (the sampler waits for room at rate
  1), every path's four values exact by the `bytes` label (the signal
  storm's: none above the truth), also with a small --stack-size.  The
  forked child's blocks absent.  A C++ command that lives a few
  milliseconds still gets named stacks (the sampler holds its exit until
  pprofc has read them).
- The unwinding memo: at rate 1, the same profile with it and without it
  (PPROFC_UNWIND_MEMO=0), every stack's four values per `bytes` label
  (the storm thread's apart: its count depends on timing); and it hits.
- `go tool pprof` reads a heap and an allocs file without a word on
  stderr for each -sample_index; -raw shows Go's sample types in Go's
  order, PeriodType space/bytes and Period the rate; the default view is
  inuse_space for heap, alloc_space for allocs.
- python3 from Debian: the same output, a valid profile, python's
  allocator (PyObject_Malloc...) at the top of the kept list's stacks in
  a SIGUSR1 snapshot.  redis-server from Debian (jemalloc) under
  redis-benchmark: inuse_space within 0.80-1.10 of redis's own
  used_memory, the values under createStringObject.  C++: operator new
  trimmed, the caller on top.
- --seconds 1: the profile is written while the command runs on; the
  command then completes with its full output, pprofc exits with its
  status.  SIGUSR1 and --interval: numbered snapshots, each valid.
- pprofc SIGKILLed mid-run: the command completes, its output unchanged.
- Refusals (static command, no sampler library, bad --heap-rate, attach's
  --interval and bad --max-hit-rate: test_heap_attach.py has the rest):
  one line, the documented exit code, nothing started, no file left.
- Children (fork, a shell running python3): not profiled, output
  unchanged.

Nothing depends on timing: every wait is for a condition, with a deadline.
Skipped (77) without go, python3, the sampler library or off x86_64."""
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from fixture import (PPROFC, SKIP, check, done, fixture_path, gopprof,  # noqa: E402
                     profile_problem, require_heap_sampler, wait_for)

LIB = os.environ.get("PPROFC_HEAP_LIB")
HEAP_ALLOC = fixture_path("heap_alloc")
HEAP_NEW = fixture_path("heap_new")
PYTHON = "/usr/bin/python3"
DEFAULT_RATE = 524288
GO_TYPES = ["alloc_objects/count", "alloc_space/bytes", "inuse_objects/count", "inuse_space/bytes"]
INDEXES = [t.split("/")[0] for t in GO_TYPES]
SIGMAS = 6.0

# The heap_alloc function each printed path allocates in: the leaf of
# its stacks once the allocator's frames are trimmed.
LEAF = {"keep_live": "keep_live", "churn": "churn", "realloc_chain": "realloc_chain",
        "posix_memalign": "aligned_family", "aligned_alloc": "aligned_family",
        "memalign": "aligned_family", "valloc": "aligned_family", "pvalloc": "aligned_family",
        "calloc": "aligned_family", "reallocarray": "aligned_family",
        "huge_blocks": "huge_blocks", "raise_handler": "on_raise",
        "storm_handler": "on_storm", "fork_parent": "fork_path", "cxx_new": "cxx_new"}
FIXTURE_FUNCTIONS = set(LEAF.values()) | {"storm_target"}
ALLOCATORS = {"malloc", "calloc", "realloc", "reallocarray", "free", "posix_memalign",
              "aligned_alloc", "memalign", "valloc", "pvalloc", "operator new", "operator new[]"}

# A kept list of bytes objects (each > 512 bytes: PyObject_Malloc passes
# them to malloc) and its checksum; then it waits for EOF on stdin, the
# list still live.
PY_KEEP = r"""
import hashlib, sys
def build(n):
    return [bytes([i % 251]) * (1000 + i % 3000) for i in range(n)]
keep = build(50000)
h = hashlib.sha256()
for b in keep:
    h.update(b)
print(len(keep), h.hexdigest(), flush=True)
sys.stdin.read()
print("bye", len(keep))
"""


def workdir():
    return tempfile.mkdtemp(prefix="pprofc-heap-")


def run(args, cmd, **kw):
    return subprocess.run([PPROFC, "run"] + list(args) + ["--"] + list(cmd), capture_output=True,
                          text=True, timeout=300, stdin=kw.pop("stdin", subprocess.DEVNULL), **kw)


def plain(cmd, stdin=subprocess.DEVNULL):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, stdin=stdin)
    return r.returncode, r.stdout


def truth(stdout):
    """[(path, size, allocs, frees)] as the fixture prints them."""
    out = []
    for line in stdout.splitlines():
        f = line.split()
        if len(f) == 4 and f[1].isdigit():
            out.append((f[0], int(f[1]), int(f[2]), int(f[3])))
    return out


SUMMARY = re.compile(r"pprofc: (\d+) allocations sampled \((\d+) freed since\) on (\d+) stacks .*"
                     r"dropped: (\d+) \(ring full\), (\d+) without a stack, (\d+) frees not tracked")


def summary(stderr):
    """The summary line's counts, or {} if there is none."""
    m = SUMMARY.search(stderr)
    keys = ("samples", "frees", "stacks", "dropped_full", "no_stack", "untracked")
    return dict(zip(keys, map(int, m.groups()))) if m else {}


def raw(path):
    """go tool pprof -raw: ({PeriodType, Period, types, default}, samples,
    locations) with samples [(values, location ids, bytes label)] and
    locations {id: [function names, innermost first]}."""
    text, err = gopprof("-raw", path)
    check(err == "", "-raw %s warned: %r" % (path, err))
    head = {}
    for key in ("PeriodType", "Period"):
        m = re.search(r"^%s: (.*)$" % key, text, re.M)
        head[key] = m.group(1).strip() if m else None
    body = text.split("Samples:\n", 1)[-1]
    lines = body.split("\nLocations\n", 1)
    types_line = lines[0].splitlines()[0] if lines[0] else ""
    head["types"] = [t.replace("[dflt]", "") for t in types_line.split()]
    dflt = [t.replace("[dflt]", "") for t in types_line.split() if t.endswith("[dflt]")]
    head["default"] = dflt[0] if dflt else None
    samples = []
    for line in lines[0].splitlines()[1:]:
        m = re.match(r"^\s+(-?\d+)\s+(-?\d+)\s+(-?\d+)\s+(-?\d+):((?: \d+)*)", line)
        if m:
            samples.append(([int(m.group(i)) for i in range(1, 5)],
                            [int(x) for x in m.group(5).split()], None))
        elif "bytes:[" in line and samples:
            v, ids, _ = samples[-1]
            samples[-1] = (v, ids, int(re.search(r"bytes:\[(\d+)\]", line).group(1)))
    locs, cur = {}, None
    for line in (lines[1] if len(lines) > 1 else "").split("\nMappings", 1)[0].splitlines():
        m = re.match(r"^\s+(\d+): 0x[0-9a-f]+ M=\d+ (\S+)", line)
        if m:
            cur = int(m.group(1))
            locs[cur] = [m.group(2)]
        elif cur is not None and line.strip() and not re.match(r"^\s+\d+:", line):
            locs[cur].append(line.split()[0])
    return head, samples, locs


def leaf(sample, locs):
    ids = sample[1]
    return locs.get(ids[0], ["?"])[0] if ids else "?"


def top(path, index):
    """[(flat bytes or count, function)] of `go tool pprof -top`, heaviest
    first, and the Type line it printed."""
    text, err = gopprof("-sample_index=" + index, "-unit=B", "-nodecount=1000", "-top", path)
    check(err == "", "-sample_index=%s -top %s warned: %r" % (index, path, err))
    m = re.search(r"^Type: (\S+)", text, re.M)
    rows = []
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 6 and f[1].endswith("%") and f[4].endswith("%"):
            rows.append((int(f[0].rstrip("B")) if f[0] != "0" else 0, " ".join(f[5:])))
    return rows, m.group(1) if m else None


def flat(rows, name):
    return sum(v for v, n in rows if n == name)


def relative_sd(size, blocks, rate):
    """The estimate's relative standard deviation for a path of blocks
    of size bytes: sqrt((1-p)/(N p)), p the chance a block is sampled."""
    p = -math.expm1(-size / rate)
    return ((1 - p) / (blocks * p)) ** 0.5, blocks * p


def test_default_rate(work):
    """Within 10% at 512 KiB (see the docstring for why it cannot flake)."""
    argv = [HEAP_ALLOC, "2048", "2048"]
    status0, expected = plain(argv)
    path = os.path.join(work, "default.pb.gz")
    r = run(["--profile", "heap", "-o", path], argv)
    check(r.returncode == status0 == 0 and r.stdout == expected,
          "default rate: the output changed (exit %d/%d)" % (status0, r.returncode))
    s = summary(r.stderr)
    check(s and s["dropped_full"] == s["no_stack"] == s["untracked"] == 0,
          "default rate: drops in the summary: %r" % r.stderr)
    paths = {p: (size, allocs, frees) for p, size, allocs, frees in truth(expected)}
    inuse, t = top(path, "inuse_space")
    alloc, _ = top(path, "alloc_space")
    for name, rows, want in (("keep_live", inuse, paths["keep_live"][0] * paths["keep_live"][1]),
                             ("churn", alloc, paths["churn"][0] * paths["churn"][1])):
        sd, expected_samples = relative_sd(paths[name][0], paths[name][1], DEFAULT_RATE)
        check(SIGMAS * sd <= 0.10, "default rate: %s: 10%% is only %.1f standard deviations "
              "(%.0f samples expected): the test would flake" % (name, 0.10 / sd, expected_samples))
        got = flat(rows, name)
        check(abs(got - want) <= 0.10 * want, "default rate: %s: %d bytes, truth %d (%.1f%%)"
              % (name, got, want, 100.0 * (got - want) / want))
        print("default rate: %-9s %11d bytes, truth %11d: %+.2f%% (sd %.2f%%, ~%.0f samples)"
              % (name, got, want, 100.0 * (got - want) / want, 100 * sd, expected_samples))
    churn_live = flat(inuse, "churn")
    check(churn_live == 0, "default rate: churn has %d bytes in use at exit" % churn_live)
    for what, rows in (("inuse_space", inuse), ("alloc_space", alloc)):
        total = sum(v for v, _ in rows)
        heavy = [(v, n) for v, n in rows if v >= 0.01 * total]
        check(heavy and all(n in FIXTURE_FUNCTIONS for _, n in heavy),
              "default rate: %s's heaviest frames are not the fixture's: %r" % (what, heavy))
    check(t == "inuse_space", "default rate: Type %r" % t)
    return path


def by_size(samples):
    """{bytes label: [alloc_objects, alloc_space, inuse_objects, inuse_space]}."""
    out = {}
    for v, _, size in samples:
        acc = out.setdefault(size, [0, 0, 0, 0])
        for i in range(4):
            acc[i] += v[i]
    return out


def test_rate_one(work, stack_size=None):
    """Every allocation: nothing dropped (the sampler waits for room at
    rate 1), every path exact but the signal storm's, whose signals that
    land inside the sampler are not sampled."""
    argv = [HEAP_ALLOC, "1", "1"]
    status0, expected = plain(argv)
    label = "rate 1" + (" --stack-size %s" % stack_size if stack_size else "")
    path = os.path.join(work, "rate1%s.pb.gz" % (stack_size or ""))
    extra = ["--stack-size", stack_size] if stack_size else []
    r = run(["--profile", "allocs", "--heap-rate", "1", "-o", path] + extra, argv)
    check(r.returncode == status0 == 0 and r.stdout == expected, "%s: the output changed" % label)
    s = summary(r.stderr)
    if not check(bool(s), "%s: no summary line: %r" % (label, r.stderr)):
        return path, s
    dropped = s["dropped_full"] + s["no_stack"]
    # At rate 1 the sampler waits for room rather than drop (heapring.h).
    check(dropped == 0, "%s: %d records dropped at rate 1: %r" % (label, dropped, r.stderr))
    head, samples, locs = raw(path)
    got = by_size(samples)
    missing, exact = 0, []
    for name, size, allocs, frees in truth(expected):
        want = [allocs, allocs * size, allocs - frees, (allocs - frees) * size]
        have = got.get(size, [0, 0, 0, 0])
        if name == "fork_child":
            check(have == [0, 0, 0, 0], "%s: the forked child's blocks are in the profile: %r"
                  % (label, have))
            continue
        leaves = {leaf(x, locs) for x in samples if x[2] == size}
        check(leaves <= {LEAF[name]}, "%s: %s's stacks start at %r, not %s"
              % (label, name, leaves, LEAF[name]))
        if name == "storm_handler" or dropped:
            # A signal that lands inside the sampler is not sampled; a
            # dropped record is not counted.
            check(all(h <= w for h, w in zip(have, want)),
                  "%s: %s: %r, above the truth %r" % (label, name, have, want))
            missing += allocs - have[0] if name != "storm_handler" else 0
        else:
            check(have == want, "%s: %s (%d bytes): %r, truth %r" % (label, name, size, have, want))
        if have == want:
            exact.append(name)
    # Whatever allocated (the fixture, glibc's thread creation, stdio),
    # the allocator itself is trimmed, also where it was inlined.
    allocator = sorted({leaf(x, locs) for x in samples} & ALLOCATORS)
    check(not allocator, "%s: stacks start at the allocator: %r" % (label, allocator))
    check(missing <= dropped, "%s: %d blocks missing, %d drops reported" % (label, missing, dropped))
    print("%s: %d sampled, %d dropped; exact: %s" % (label, s["samples"], dropped, " ".join(exact)))
    return path, s


def test_go_reads(heap_file, allocs_file, allocs_rate):
    """Go's own reader: every view, the header, the defaults."""
    for what, path, rate, dflt in (("heap", heap_file, DEFAULT_RATE, "inuse_space"),
                                   ("allocs", allocs_file, allocs_rate, "alloc_space")):
        for index in INDEXES:
            _, t = top(path, index)
            check(t == index, "%s: -sample_index=%s shows Type %r" % (what, index, t))
        text, err = gopprof("-top", path)
        m = re.search(r"^Type: (\S+)", text, re.M)
        check(err == "" and m and m.group(1) == dflt, "%s: -top shows %r, want %s (stderr %r)"
              % (what, m and m.group(1), dflt, err))
        head, samples, _ = raw(path)
        check(head["types"] == GO_TYPES, "%s: sample types %r" % (what, head["types"]))
        check(head["PeriodType"] == "space bytes" and head["Period"] == str(rate),
              "%s: PeriodType %r Period %r, want space bytes %d"
              % (what, head["PeriodType"], head["Period"], rate))
        check(samples and all(size is not None for _, _, size in samples),
              "%s: samples without a bytes label" % what)
        # pprofc's own top view shows the same value as go tool pprof's.
        want = sum(v[GO_TYPES.index(dflt + "/" + ("bytes"))] for v, _, _ in samples)
        r = subprocess.run([PPROFC, "report", path], capture_output=True, text=True, timeout=120)
        m = re.search(r"accounting for (\d+),", r.stdout)
        check(r.returncode == 0 and m and int(m.group(1)) == want,
              "%s: pprofc report's total %r, the %s total %d" % (what, m and m.group(1), dflt, want))
    print("go tool pprof: heap and allocs files read in all four views, Go's types and period")


def numbered(d):
    return sorted(f for f in os.listdir(d) if re.search(r"\.\d{3}\.pb\.gz$", f))


def test_python(work):
    """A real program: same output, valid profile, python's allocator on
    top of the kept list's stacks in a SIGUSR1 snapshot."""
    argv = [PYTHON, "-c", PY_KEEP]
    status0, expected = plain(argv)
    d = os.path.join(work, "python")
    os.mkdir(d)
    p = subprocess.Popen([PPROFC, "run", "--profile", "heap", "--", PYTHON, "-c", PY_KEEP],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=dict(os.environ, PPROF_TMPDIR=d))
    first = p.stdout.readline()
    p.send_signal(signal.SIGUSR1)
    snap = wait_for(lambda: numbered(d), timeout=60)
    rest, err = p.communicate(input="", timeout=120)
    check(p.returncode == status0 == 0 and first + rest == expected,
          "python3: output or status changed (%d/%d): %r" % (status0, p.returncode, first + rest))
    files = numbered(d)
    check(len(files) == 2 and files[0].startswith("pprof.python3.alloc_objects.alloc_space."
                                                  "inuse_objects.inuse_space."),
          "python3: files %r, want a snapshot and the final profile" % files)
    if not check(bool(snap), "python3: no snapshot after SIGUSR1"):
        return
    for f in files:
        why = profile_problem(os.path.join(d, f))
        check(why == "", "python3: %s: %s" % (f, why))
    _, samples, locs = raw(os.path.join(d, snap[0]))
    heavy = sorted(samples, key=lambda x: -x[0][3])[:5]
    stacks = [[n for i in ids for n in locs.get(i, ["?"])] for _, ids, _ in heavy]
    heaviest = stacks[0] if stacks else []
    check(heaviest[:1] and re.match(r"_?Py(Object|Mem|Bytes)", heaviest[0]),
          "python3: the heaviest inuse stack starts at %r, not python's allocator" % heaviest[:3])
    check(not any(fs[0] in ("malloc", "calloc", "realloc") for fs in stacks),
          "python3: malloc on top of a heavy stack: %r" % [fs[:2] for fs in stacks])
    print("python3: output unchanged; snapshot's heaviest inuse stack (%.1f MB) starts %s"
          % (heavy[0][0][3] / 1e6 if heavy else 0, " < ".join(heaviest[:4])))


def free_port():
    with socket.socket() as so:
        so.bind(("127.0.0.1", 0))
        return so.getsockname()[1]


def redis_cli(port, *args):
    r = subprocess.run(["redis-cli", "-p", str(port)] + list(args), capture_output=True,
                       text=True, timeout=60)
    return r.stdout


def test_redis(work):
    """A real server from Debian, linked with jemalloc (the sampler hands
    each call to the allocator the program chose), driven by
    redis-benchmark: 100,000 SETs of 1000-byte values on random keys.
    The oracle is redis's own accounting, INFO's used_memory (zmalloc
    adds each block's usable size).  pprofc's inuse_space in a SIGUSR1
    snapshot taken then must lie within 0.80-1.10 of it: usable sizes are
    a few percent above the sizes asked for (jemalloc's size classes),
    and at --heap-rate 65536 the ~1,500 sampled values make the estimate's
    relative standard deviation 2.5%, so both ends are over 5 of them
    away.  The values' stack must show where redis made them
    (createStringObject, _sdsnewlen)."""
    tools = [shutil.which(t) for t in ("redis-server", "redis-benchmark", "redis-cli")]
    if not all(tools):
        print("redis: redis-server, redis-benchmark or redis-cli not installed: case skipped")
        return
    port = free_port()
    path = os.path.join(work, "redis.pb.gz")
    p = subprocess.Popen([PPROFC, "run", "--profile", "heap", "--heap-rate", "65536", "-o", path,
                          "--", "redis-server", "--port", str(port), "--bind", "127.0.0.1",
                          "--save", "", "--appendonly", "no"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        if not check(wait_for(lambda: redis_cli(port, "ping").strip() == "PONG", timeout=60),
                     "redis: the server never answered"):
            return
        subprocess.run(["redis-benchmark", "-p", str(port), "-n", "100000", "-r", "100000000",
                        "-t", "set", "-d", "1000", "-q"], capture_output=True, timeout=300)
        used = int(re.search(r"^used_memory:(\d+)", redis_cli(port, "info", "memory"), re.M).group(1))
        p.send_signal(signal.SIGUSR1)
        if not check(wait_for(lambda: os.path.exists(path), timeout=60), "redis: no snapshot"):
            return
        _, samples, locs = raw(path)
        inuse = sum(v[3] for v, _, _ in samples)
        check(0.80 <= inuse / used <= 1.10, "redis: inuse_space %d against used_memory %d (%.3f)"
              % (inuse, used, inuse / used))
        values = sum(v[3] for v, ids, _ in samples
                     if {"createStringObject", "_sdsnewlen"} <= {n for i in ids for n in locs.get(i, [])})
        check(values >= 0.8 * inuse, "redis: only %d of %d bytes in use were made by "
              "createStringObject/_sdsnewlen" % (values, inuse))
        redis_cli(port, "shutdown", "nosave")
        _, err = p.communicate(timeout=120)
        check(p.returncode == 0 and profile_problem(path) == "",
              "redis: pprofc exit %d, final profile %r: %s" % (p.returncode, profile_problem(path), err))
        print("redis: inuse_space %.1f MB against used_memory %.1f MB (%.3f); %.0f%% from "
              "createStringObject" % (inuse / 1e6, used / 1e6, inuse / used, 100 * values / inuse))
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_cxx(work):
    """C++: operator new trimmed, the program's function on top, exact."""
    if not HEAP_NEW:
        print("C++: heap_new not built (no C++ compiler): skipped")
        return
    status0, expected = plain([HEAP_NEW])
    path = os.path.join(work, "cxx.pb.gz")
    r = run(["--profile", "heap", "--heap-rate", "1", "-o", path], [HEAP_NEW])
    check(r.returncode == status0 == 0 and r.stdout == expected, "C++: the output changed")
    _, samples, locs = raw(path)
    got = by_size(samples)
    leaves = {leaf(x, locs) for x in samples}
    check(not any(n.startswith("operator new") for n in leaves), "C++: operator new on top: %r" % leaves)
    for name, size, allocs, frees in truth(expected):
        want = [allocs, allocs * size, allocs - frees, (allocs - frees) * size]
        check(got.get(size) == want, "C++: %s (%d bytes): %r, truth %r" % (name, size, got.get(size), want))
        top_of = {leaf(x, locs) for x in samples if x[2] == size}
        check(len(top_of) == 1 and name.split("::")[-1] in next(iter(top_of)),
              "C++: %s's stacks start at %r" % (name, top_of))
    print("C++: leaves %s" % ", ".join(sorted(leaves)))
    # heap_new lives a few milliseconds, less than pprofc's 15 ms between
    # reads: its records are read while the sampler holds its exit (they
    # were all unnamed, on the no-stack marker, before it did).
    path = os.path.join(work, "cxx-short.pb.gz")
    for attempt in range(3):
        r = run(["--profile", "heap", "-o", path], [HEAP_NEW])
        _, samples, locs = raw(path)
        if samples:
            break
    leaves = {leaf(x, locs) for x in samples}
    # The fixture's own allocations, and maybe the stdout buffer stdio
    # allocates (_IO_file_doallocate, sampled about 1 run in 100); never a
    # marker or the allocator.
    check(r.returncode == 0 and samples and not any(n.startswith("[") for n in leaves) and
          all("Pool" in n or "make_arrays" in n or n.startswith("_IO_") for n in leaves) and
          any("Pool" in n or "make_arrays" in n for n in leaves),
          "short-lived C++ command at the default rate: leaves %r (%d samples)" % (leaves, len(samples)))


def start_held(args, live="8", churn="8", stdout=subprocess.PIPE, env=None):
    """pprofc run ARGS -- heap_alloc --hold: the fixture waits for EOF on
    the stdin we hold."""
    return subprocess.Popen([PPROFC, "run"] + args + ["--", HEAP_ALLOC, "--hold", live, churn],
                            stdin=subprocess.PIPE, stdout=stdout, stderr=subprocess.PIPE,
                            text=True, env=env)


def read_until_done(p):
    out = ""
    for line in p.stdout:
        out += line
        if line == "done\n":
            break
    return out


def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def test_seconds(work):
    """--seconds 1: written while the command runs on; then its full
    output, and pprofc exits with its status."""
    _, expected = plain([HEAP_ALLOC, "--hold", "8", "8"], stdin=subprocess.DEVNULL)
    path = os.path.join(work, "seconds.pb.gz")
    p = start_held(["--profile", "heap", "--seconds", "1", "-o", path])
    out = read_until_done(p)
    written = wait_for(lambda: os.path.exists(path), timeout=60)
    check(written and p.poll() is None, "--seconds 1: no profile while the command runs (exit %r)"
          % p.poll())
    check(profile_problem(path) == "", "--seconds 1: %s" % profile_problem(path))
    rest, err = p.communicate(input="", timeout=120)
    check(p.returncode == 0 and out + rest == expected,
          "--seconds 1: exit %d, output %r" % (p.returncode, out + rest))
    check("still running" in err, "--seconds 1: the summary does not say it runs on: %r" % err)
    r = run(["--profile", "heap", "-o", os.path.join(work, "status.pb.gz")], ["sh", "-c", "exit 3"])
    check(r.returncode == 3, "exit 3: pprofc exited %d" % r.returncode)
    print("--seconds 1: written while the command ran; exit status passed on")


def test_snapshots(work):
    """SIGUSR1 with -o FILE replaces FILE now; --interval 1 numbers them."""
    path = os.path.join(work, "usr1.pb.gz")
    p = start_held(["--profile", "heap", "-o", path])
    read_until_done(p)      # pprofc caught SIGUSR1 before it started the command
    p.send_signal(signal.SIGUSR1)
    snap = wait_for(lambda: os.path.exists(path), timeout=60)
    check(snap and p.poll() is None, "SIGUSR1: no snapshot at %s while the command runs" % path)
    check(profile_problem(path) == "", "SIGUSR1 snapshot: %s" % profile_problem(path))
    p.communicate(input="", timeout=120)
    check(p.returncode == 0, "SIGUSR1: exit %d" % p.returncode)

    d = os.path.join(work, "interval")
    os.mkdir(d)
    p = start_held(["--profile", "heap", "--interval", "1"], env=dict(os.environ, PPROF_TMPDIR=d))
    read_until_done(p)
    two = wait_for(lambda: len(numbered(d)) >= 2, timeout=60)
    p.communicate(input="", timeout=120)
    files = numbered(d)
    check(two and p.returncode == 0, "--interval 1: files %r, exit %d" % (files, p.returncode))
    want = ["pprof.heap_alloc.alloc_objects.alloc_space.inuse_objects.inuse_space.%03d.pb.gz" % i
            for i in range(1, len(files) + 1)]
    check(files == want and len(files) >= 3, "--interval 1: files %r" % files)
    for f in files:
        why = profile_problem(os.path.join(d, f))
        check(why == "", "--interval 1: %s: %s" % (f, why))
    print("snapshots: SIGUSR1 with -o, --interval 1 gave %d numbered files" % len(files))


def test_killed(work):
    """pprofc SIGKILLed while the command allocates: it completes, its
    output unchanged."""
    argv_args = ["--hold", "512", "1024"]
    _, expected = plain([HEAP_ALLOC] + argv_args)
    out_path = os.path.join(work, "killed.out")
    with open(out_path, "w") as out:
        p = subprocess.Popen([PPROFC, "run", "--profile", "heap", "-o", os.path.join(work, "k.pb.gz"),
                              "--", HEAP_ALLOC] + argv_args,
                             stdin=subprocess.PIPE, stdout=out, stderr=subprocess.DEVNULL)
    child = wait_for(lambda: children(p.pid), timeout=60)
    pid = child[0] if child else 0

    def rss_kib():
        try:
            with open("/proc/%d/status" % pid) as f:
                return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            return 0
    # Mid-run: 64 MiB of the 512 kept live are in use, and more to come.
    mid = wait_for(lambda: rss_kib() > 64 * 1024, timeout=60)
    p.kill()
    p.wait()
    check(mid and pid, "killed: the command never reached 64 MiB (pid %d)" % pid)
    with open(out_path) as f:
        finished = wait_for(lambda: f.seek(0) == 0 and f.read().endswith("done\n"), timeout=120)
    p.stdin.close()

    def gone():
        try:
            with open("/proc/%d/stat" % pid) as f:
                return f.read().split(")")[-1].split()[0] == "Z"
        except OSError:
            return True
    check(wait_for(gone, timeout=60), "killed: the command did not exit after EOF")
    with open(out_path) as f:
        got = f.read()
    check(finished and got == expected, "killed: the output changed: %r" % got[-200:])
    check(not os.path.exists(os.path.join(work, "k.pb.gz")), "killed: a profile was written")
    print("killed: the command completed unchanged after pprofc's SIGKILL")


def static_program(work):
    """A statically linked program that creates the file it is given (so
    that a run shows), built here; None without a static libc."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        return None
    src = os.path.join(work, "static.c")
    with open(src, "w") as f:
        f.write('#include <stdio.h>\nint main(int c, char **v) { return c > 1 && fopen(v[1], "w") ? 0 : 1; }\n')
    exe = os.path.join(work, "static")
    r = subprocess.run([cc, "-static", "-o", exe, src], capture_output=True, text=True)
    return exe if r.returncode == 0 else None


def one_line(r, code, label, *words):
    lines = r.stderr.strip().splitlines()
    check(r.returncode == code, "%s: exit %d, want %d: %r" % (label, r.returncode, code, r.stderr))
    check(len(lines) == 1 and lines[0].startswith("pprofc: ") and all(w in lines[0] for w in words),
          "%s: not one line naming %r: %r" % (label, words, r.stderr))


def test_errors(work):
    """Refusals: one line, the exit code, nothing started, no file."""
    d = os.path.join(work, "errors")
    os.mkdir(d)
    out, marker = os.path.join(d, "p.pb.gz"), os.path.join(work, "started")
    static = static_program(work)
    cases = []
    if static:
        cases.append(("static", 1, {}, ["--profile", "heap"], [static, marker], ["statically linked"]))
    else:
        print("errors: no static libc to build a static program: that case skipped")
    env = dict(os.environ, PPROFC_HEAP_LIB="/nonexistent")
    cases += [
        ("no sampler library", 1, env, ["--profile", "heap"], ["touch", marker], ["/nonexistent"]),
        ("--heap-rate 0", 2, {}, ["--profile", "heap", "--heap-rate", "0"], ["touch", marker], ["--heap-rate"]),
        ("--heap-rate xyz", 2, {}, ["--profile", "allocs", "--heap-rate", "xyz"], ["touch", marker],
         ["--heap-rate"]),
    ]
    for label, code, env, args, cmd, words in cases:
        r = run(args + ["-o", out], cmd, env=env or None)
        one_line(r, code, label, *words)
        check(not os.path.exists(marker), "%s: the command ran" % label)
        check(os.listdir(d) == [], "%s: files left: %r" % (label, os.listdir(d)))
    for args, word in ((["attach", str(os.getpid()), "--profile", "heap", "--interval", "1", "-o", out],
                        "--interval"),
                       (["attach", "--profile", "allocs", "--max-hit-rate", "x", "-o", out,
                         str(os.getpid())], "--max-hit-rate")):
        r = subprocess.run([PPROFC] + args, capture_output=True, text=True, timeout=60)
        one_line(r, 2, " ".join(args[:6]), word)
        check(os.listdir(d) == [], "attach: files left: %r" % os.listdir(d))
    print("errors: %d refusals, one line each, nothing started, no file" % (len(cases) + 2))


def test_children(work):
    """A shell that runs python3: the shell is profiled, python3 is not
    (LD_PRELOAD cleaned), the output unchanged.  dash ends with _exit(),
    no destructor: the sampler's _exit still waits for pprofc to read the
    shell's records, so every one has its stack (before, a slow pprofc read
    them after the shell had gone: a profile of no mapping, no stack)."""
    script = ('import os; print(os.environ.get("LD_PRELOAD", "-"), os.environ.get("PPROFC_HEAP_FD", "-")); '
              'k = [bytes(2000) for _ in range(2000)]; print(len(k))')
    argv = ["sh", "-c", 'echo sh; %s -c \'%s\'' % (PYTHON, script)]
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "PPROFC_HEAP_FD")}
    status0, expected = plain(argv)
    path = os.path.join(work, "children.pb.gz")
    r = run(["--profile", "allocs", "--heap-rate", "1", "-o", path], argv, env=env)
    check(r.returncode == status0 == 0 and r.stdout == expected == "sh\n- -\n2000\n",
          "children: output %r, without pprofc %r" % (r.stdout, expected))
    _, samples, locs = raw(path)
    names = {n for ids in locs.values() for n in ids}
    py = sorted(n for n in names if n.startswith(("Py", "_Py")))
    check(samples and not py, "children: python3's frames in the profile: %r" % py[:5])
    lost = [ids for _, ids, _ in samples if any(n.startswith("[allocation:") for i in ids
                                                  for n in locs.get(i, []))]
    check(not lost and "had gone" not in r.stderr,
          "children: %d of %d samples without a stack: %r" % (len(lost), len(samples), r.stderr))
    print("children: %d samples of the shell, none of python3" % len(samples))


MEMO = re.compile(r"pprofc: unwinding memo: (\d+) hits, (\d+) misses")
STORM = {"storm_target", "on_storm"}


def stacks_by_text(path):
    """{(bytes label, stack): values} by go tool pprof -raw, each location
    as its lines' "function file:line" (addresses move with ASLR); the
    storm's samples apart, as {stack} (how many allocations the storm
    thread makes depends on timing)."""
    text, err = gopprof("-raw", path)
    check(err == "", "-raw %s warned: %r" % (path, err))
    body, _, rest = text.split("Samples:\n", 1)[-1].partition("\nLocations\n")
    locs, cur = {}, None
    for line in rest.split("\nMappings", 1)[0].splitlines():
        m = re.match(r"^\s+(\d+): 0x[0-9a-f]+ M=\d+ (.*)$", line)
        if m:
            cur = int(m.group(1))
            locs[cur] = [m.group(2).strip()]
        elif cur is not None and line.strip():
            locs[cur].append(line.strip())
    out, storm, last = {}, set(), None
    for line in body.splitlines()[1:]:
        m = re.match(r"^\s+(-?\d+)\s+(-?\d+)\s+(-?\d+)\s+(-?\d+):((?: \d+)*)", line)
        if m:
            stack = tuple(tuple(locs.get(int(i), ["?"])) for i in m.group(5).split())
            last = [stack, tuple(int(m.group(i)) for i in range(1, 5)), None]
            out[len(out)] = last
        elif "bytes:[" in line and last:
            last[2] = int(re.search(r"bytes:\[(\d+)\]", line).group(1))
    keyed = {}
    for stack, values, size in out.values():
        if {l.split()[0] for loc in stack for l in loc} & STORM:
            storm.add(stack)
            continue
        check((size, stack) not in keyed, "%s: (%s, stack) twice" % (path, size))
        keyed[(size, stack)] = values
    return keyed, storm


def test_unwind_memo(work):
    """The unwinding memo (symbolize/memo.c) is exact: at rate 1 the same
    profile with it (the default) as without it (PPROFC_UNWIND_MEMO=0),
    every stack with the same four values per `bytes` label (the storm
    thread's values apart: they depend on timing), and it is used."""
    argv = [HEAP_ALLOC, "1", "1"]
    status0, expected = plain(argv)
    got = {}
    for memo in ("1", "0"):
        path = os.path.join(work, "memo%s.pb.gz" % memo)
        env = dict(os.environ, PPROFC_UNWIND_MEMO=memo)
        r = run(["-v", "--profile", "allocs", "--heap-rate", "1", "-o", path], argv, env=env)
        check(r.returncode == status0 == 0 and r.stdout == expected,
              "memo %s: the output changed (exit %d/%d)" % (memo, status0, r.returncode))
        m = MEMO.search(r.stderr)
        if memo == "1":
            check(m and int(m.group(1)) > 0, "memo on: no hits: %r" % r.stderr)
            hits, misses = map(int, m.groups()) if m else (0, 0)
        else:
            check(not m, "memo off: it was used: %r" % r.stderr)
        got[memo] = stacks_by_text(path)
    (on, storm_on), (off, storm_off) = got["1"], got["0"]
    for key in sorted(set(on) | set(off), key=repr):
        check(on.get(key) == off.get(key), "memo: %d bytes at %s: %r with the memo, %r without"
              % (key[0] or 0, " <- ".join(loc[0] for loc in key[1]), on.get(key), off.get(key)))
    check(on and storm_on and storm_off, "memo: no samples, or none of the storm")
    print("unwinding memo: %d stacks the same with and without it; %d hits, %d misses"
          % (len(on), hits, misses))


def main():
    require_heap_sampler()
    if not shutil.which("go"):
        print("skipped: go tool pprof (golang) is the oracle and is not installed")
        sys.exit(SKIP)
    if not os.access(PYTHON, os.X_OK):
        print("skipped: %s is not installed" % PYTHON)
        sys.exit(SKIP)
    work = workdir()
    try:
        heap_file = test_default_rate(work)
        allocs_file, _ = test_rate_one(work)
        test_rate_one(work, stack_size="4K")
        test_unwind_memo(work)
        test_go_reads(heap_file, allocs_file, 1)
        test_cxx(work)
        test_python(work)
        test_redis(work)
        test_seconds(work)
        test_snapshots(work)
        test_killed(work)
        test_errors(work)
        test_children(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    done()


if __name__ == "__main__":
    main()
