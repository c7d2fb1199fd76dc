"""`pprofc attach --profile cpu` against real processes, checked with the real
`go tool pprof`: shares against the fixture's own CPU clocks, complete stacks,
inline frames, thread labels, mappings with build IDs and has_* flags, no
reader warnings; output naming, stdout, --tid; SIGINT mid-collection; the
target exiting mid-collection; blocked threads never interrupted."""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from fixture import (PPROFC, Fixture, by_name, check, check_untouched, done,  # noqa: E402
                     dump_json, fixture_path, gopprof, pprofc, raw_samples, require_ptrace,
                     schedstat, schedstat_ns, thread_frames, tracer_pid, wait_for)

GO = shutil.which("go")


def seconds(text):
    """pprof's scaled values: "1.57s", "570ms", "0" -> seconds."""
    m = re.match(r"^([\d.]+)(ns|us|ms|s|mins|hrs)?$", text)
    if not m:
        return None
    scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1, "mins": 60, "hrs": 3600, None: 1}[m.group(2)]
    return float(m.group(1)) * scale


def top_table(text):
    """{function: (flat, cum)} from -top output (seconds)."""
    rows = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 6 and parts[1].endswith("%") and parts[4].endswith("%"):
            flat, cum = seconds(parts[0]), seconds(parts[3])
            if flat is not None and cum is not None:
                rows[" ".join(parts[5:])] = (flat, cum)
    return rows


def read_truth(path):
    def get():
        try:
            with open(path) as f:
                v = [int(x) for x in f.read().split()]
            return v if len(v) == 3 else None
        except (OSError, ValueError):
            return None
    return wait_for(get, timeout=10)


class CpuFixture(Fixture):
    def __init__(self, seconds_to_live=None):
        self.truth = tempfile.mktemp(prefix="pprofc-truth-")
        args = [self.truth] + ([str(seconds_to_live)] if seconds_to_live else [])
        super().__init__("cpu_split", args=args)


SUMMARY = {
    "perf": r"\d+ samples of \d+ threads in [\d.]+ s: [\d.]+ s of CPU by the samples, [\d.]+ s by "
            r"the kernel; \d+ lost; engine: perf, nothing stopped$",
    "ptrace": r"\d+ samples of \d+ threads in [\d.]+ s: [\d.]+ s of CPU by the samples, [\d.]+ s "
              r"by the kernel; \d+ lost.*; engine: ptrace, stopped per sample: median \d+ us, "
              r"p99 \d+ us$",
}


def steal_ticks():
    """The host's steal time so far (/proc/stat, USER_HZ ticks): time this
    VM's CPUs were runnable but the hypervisor ran something else."""
    with open("/proc/stat") as f:
        fields = f.readline().split()
    return int(fields[8]) if len(fields) > 8 else 0


def share_misses(engine, got, truth):
    """The share_* functions' shares of the profile against the fixture's
    clock: [(message)] for each off by more than 5 points."""
    names = ["share_a", "share_b", "share_c"]
    misses = []
    for n, g, t in zip(names, got, truth):
        gs, ts = 100 * g / sum(got), 100 * t / sum(truth)
        if abs(gs - ts) > 5:
            misses.append("%s engine: %s: %.1f%% of the profile, %.1f%% by the fixture's clock"
                          % (engine, n, gs, ts))
    return misses


def measure_shares(fx, engine, out):
    """One 5 s profile of the fixture: (pprofc's result, the share_*
    functions' cumulative seconds by go tool pprof, the fixture's own CPU
    ns per function over the same window, the -top text, steal ticks)."""
    t0, steal0 = read_truth(fx.truth), steal_ticks()
    args = [] if engine == "perf" else ["--engine", engine]
    # 500 Hz: about 2500 samples, so a share's sampling error (about 1
    # point) stays well inside the 5 points allowed; at the default
    # 100 Hz it was 2.2 points, and one check in ten runs failed.  The
    # ptrace engine at 1000 Hz: weighed by the tick's lagging schedstat
    # read, it gave share_c 51% there against 62% (each function's
    # time went to the next one's samples; 3-4 points at 500 Hz).
    hz = "500" if engine == "perf" else "1000"
    r = pprofc("attach", fx.pid, "--seconds", "5", "--hz", hz, "-o", out, *args)
    t1, steal = read_truth(fx.truth), steal_ticks() - steal0
    truth = [b - a for a, b in zip(t0, t1)]
    top, err = gopprof("-top", out) if r.returncode == 0 else ("", "")
    check(err == "", "go tool pprof -top warned: %r" % err)
    rows = top_table(top)
    got = [rows.get(n, (0, 0))[1] for n in ("share_a", "share_b", "share_c")]
    return r, got, truth, top, steal


def test_shares_and_reader(engine):
    """The default engine (perf) and the ptrace engine, each against the
    fixture's own clocks and go tool pprof."""
    out = tempfile.mktemp(suffix=".pb.gz")
    with CpuFixture() as fx:
        r, got, truth, top, steal = measure_shares(fx, engine, out)
        check(r.returncode == 0, "attach failed: %s" % r.stderr)
        check(re.search(SUMMARY[engine], r.stderr, re.M) is not None,
              "%s summary line: %r" % (engine, r.stderr))
        ok = check(sum(got) > 0 and sum(truth) > 0, "no samples in share_*: %s" % top)
        misses = share_misses(engine, got, truth) if ok else []
        if misses:
            # A share is an estimate from a few thousand samples, and on a
            # shared host the window's CPU time comes in bursts between
            # the hypervisor's steals: the CI runs of stops 20 and 21 (an
            # Intel host, both CPUs loaded by other tests) each missed once
            # by 5-6 points (the perf engine, then the ptrace engine), and
            # 0 of 30 runs here, idle or beside two spinners.  So a miss is
            # measured once more, over a new window; a bias would miss
            # both.
            print("note: %s (steal %d ticks in the window); measuring once more"
                  % ("; ".join(misses), steal))
            out2 = out + ".again.pb.gz"
            r2, got, truth, _, steal = measure_shares(fx, engine, out2)
            check(r2.returncode == 0, "attach failed: %s" % r2.stderr)
            misses = share_misses(engine, got, truth) if sum(got) > 0 and sum(truth) > 0 else \
                ["%s engine: no samples in share_* the second time" % engine]
            if os.path.exists(out2):
                os.unlink(out2)
        for m in misses:
            check(False, m + " (second window; steal %d ticks)" % steal)
        print("%s engine: shares %s of the profile, %s by the fixture's clock (steal %d ticks)"
              % (engine, " ".join("%.1f" % (100 * g / sum(got)) for g in got),
                 " ".join("%.1f" % (100 * t / sum(truth)) for t in truth), steal) if ok else "")
        check_untouched(fx.pid, label="cpu " + engine)
    check("sleeper" not in top, "a sleeping thread's function shows in the CPU profile")

    tags, err = gopprof("-tags", out)
    check(err == "" and "busy" in tags and "sleeper" not in tags, "tags: %r %r" % (tags, err))
    check(re.search(r"tid: Total", tags) is not None, "no tid label: %r" % tags)

    traces, err = gopprof("-traces", out)
    check(err == "", "-traces warned: %r" % err)
    check(re.search(r"^\s+\S+\s+mix_step \(inline\)$", traces, re.M) is not None,
          "no inline frame in -traces")
    for block in traces.split("-----------+")[1:]:
        frames = [l.split()[-1] for l in block.splitlines() if l.strip() and ":" not in l.split()[0]
                  and not l.strip().startswith("----")]
        if frames:
            check(frames[-1] in thread_frames()["roots"], "trace does not end at a root: %r" % frames[-4:])

    check_reports_agree(out)

    raw, err = gopprof("-raw", out)
    check(err == "", "-raw warned: %r" % err)
    maps = re.findall(r"^\d+: 0x[0-9a-f]+/0x[0-9a-f]+/0x[0-9a-f]+ (\S+) ([0-9a-f]*) ?(\S*)$",
                      raw.split("Mappings", 1)[-1], re.M)
    check(maps and maps[0][0].endswith("/cpu_split"), "first mapping is not the executable: %r" % maps[:1])
    for path, build_id, flags in maps:
        if path.endswith("/cpu_split") or "libc.so" in path:
            check(re.match(r"^[0-9a-f]{40}$", build_id) is not None, "%s: build id %r" % (path, build_id))
            check(flags == "[FN][FL][LN][IN]", "%s: flags %r" % (path, flags))
    os.unlink(out)


def check_reports_agree(path):
    """pprofc's own top and folded views of a file agree with go tool pprof."""
    go_top, _ = gopprof("-top", "-nodefraction=0", "-nodecount=100000", path)
    # The " (inline)" marker follows go tool pprof's own rule, which pprofc
    # approximates (inlined everywhere): compare names without it.
    bare = lambda rows: {n.replace(" (inline)", ""): v for n, v in rows.items()}
    want = bare(top_table(go_top))
    r = pprofc("report", "--format=top", path)
    check(r.returncode == 0, "pprofc report: %s" % r.stderr)
    got = bare(top_table(r.stdout))
    check(set(got) == set(want), "top functions differ: only pprofc %s, only go %s"
          % (sorted(set(got) - set(want)), sorted(set(want) - set(got))))
    for name in set(got) & set(want):
        check(abs(got[name][0] - want[name][0]) < 0.006 and abs(got[name][1] - want[name][1]) < 0.006,
              "%s: pprofc flat/cum %r, go %r" % (name, got[name], want[name]))
    order_got = [n.replace(" (inline)", "") for n in top_lines(r.stdout)]
    order_want = [n.replace(" (inline)", "") for n in top_lines(go_top)]
    check(order_got == order_want, "top order differs:\n%s\n%s" % (order_got[:8], order_want[:8]))
    r = pprofc("report", "--format=folded", path)
    check(r.returncode == 0, "pprofc report folded: %s" % r.stderr)
    leaf = {}
    for line in r.stdout.splitlines():
        stack, value = line.rsplit(" ", 1)
        name = stack.split(";")[-1]
        leaf[name] = leaf.get(name, 0) + int(value) / 1e9
    for name, (flat, _) in want.items():
        check(abs(leaf.get(name, 0) - flat) < 0.006, "folded leaf %s: %.3f s, go flat %.3f s"
              % (name, leaf.get(name, 0), flat))


def top_lines(text):
    return [" ".join(l.split()[5:]) for l in text.splitlines()
            if len(l.split()) >= 6 and l.split()[1].endswith("%") and seconds(l.split()[0]) is not None]


def test_naming_stdout_tid():
    d = tempfile.mkdtemp(prefix="pprofc-dir-")
    env = dict(os.environ, PPROF_TMPDIR=d)
    with CpuFixture() as fx:
        for n in (1, 2):
            r = pprofc("attach", fx.pid, "--seconds", "0.5", env=env)
            want = os.path.join(d, "pprof.cpu_split.samples.cpu.%03d.pb.gz" % n)
            check(r.returncode == 0 and "Saved profile in %s" % want in r.stderr,
                  "default name %d: %r" % (n, r.stderr))
            check(os.path.exists(want), "%s missing" % want)
        check(sorted(os.listdir(d)) == ["pprof.cpu_split.samples.cpu.001.pb.gz",
                                        "pprof.cpu_split.samples.cpu.002.pb.gz"], "files: %r" % os.listdir(d))
        r = subprocess.run([PPROFC, "attach", str(fx.pid), "--seconds", "0.5", "-o", "-"],
                           capture_output=True, timeout=60)
        check(r.returncode == 0 and r.stdout[:2] == b"\x1f\x8b", "-o - did not write gzip to stdout")
        busy = by_name(dump_json(fx.pid))["busy"]["tid"]
        out = os.path.join(d, "tid.pb.gz")
        r = pprofc("attach", fx.pid, "--seconds", "1", "--tid", busy, "-o", out)
        tags, _ = gopprof("-tags", out)
        tids = re.findall(r"^\s+[\d.]+\w*\s+\(\s*[\d.]+%\): (\d+)$", tags.split("tid:", 1)[-1], re.M)
        check(r.returncode == 0 and tids == [str(busy)], "--tid %d: tids %r" % (busy, tids))
        check_untouched(fx.pid, label="naming")
    # Started through a symlink (as /usr/bin/redis-server is one to
    # redis-check-rdb): the file is named as the process calls itself.
    link = os.path.join(d, "renamed-split")
    os.symlink(fixture_path("cpu_split"), link)
    truth = tempfile.mktemp(prefix="pprofc-truth-")
    with Fixture("cpu_split", args=[truth], path=link) as fx:
        r = pprofc("attach", fx.pid, "--seconds", "0.5", env=env)
        want = os.path.join(d, "pprof.renamed-split.samples.cpu.001.pb.gz")
        check(r.returncode == 0 and "Saved profile in %s" % want in r.stderr,
              "name of a process started through a symlink: %r" % r.stderr)
    shutil.rmtree(d, ignore_errors=True)
    if os.path.exists(truth):
        os.unlink(truth)


def test_sigint_mid_collection():
    out = tempfile.mktemp(suffix=".pb.gz")
    with CpuFixture() as fx:
        p = subprocess.Popen([PPROFC, "attach", str(fx.pid), "--seconds", "30", "-o", out],
                             stderr=subprocess.PIPE, text=True)
        time.sleep(1)
        t = time.monotonic()
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=30)
        elapsed = time.monotonic() - t
        check(p.returncode == 0, "exit %d after SIGINT: %s" % (p.returncode, err))
        check(elapsed < 5, "pprofc took %.1f s to stop after SIGINT" % elapsed)
        check(os.path.exists(out), "no profile after SIGINT")
        if os.path.exists(out):
            raw, e = gopprof("-raw", out)
            check(e == "" and "share_" in raw, "profile after SIGINT is not valid")
            os.unlink(out)
        check_untouched(fx.pid, label="sigint")


def test_target_exits():
    out = tempfile.mktemp(suffix=".pb.gz")
    with CpuFixture(seconds_to_live=1.5) as fx:
        r = pprofc("attach", fx.pid, "--seconds", "30", "-o", out)
        check(r.returncode == 0, "exit %d when the target exited: %s" % (r.returncode, r.stderr))
        check("exited with status 3" in r.stderr, "no exit message: %r" % r.stderr)
        check(fx.proc.wait(timeout=10) == 3, "the target's own exit status was changed")
    raw, e = gopprof("-raw", out)
    check(e == "" and "share_" in raw, "profile of an exited target is not valid")
    os.unlink(out)


def perf_events_open(pid):
    """Whether process pid holds perf_event descriptors (the engine runs)."""
    try:
        fds = os.listdir("/proc/%d/fd" % pid)
        return any(os.readlink("/proc/%d/fd/%s" % (pid, fd)) == "anon_inode:[perf_event]" for fd in fds)
    except OSError:
        return False


def test_target_execs():
    """The target runs a new program: the profile ends, with a message."""
    out = tempfile.mktemp(suffix=".pb.gz")
    proc = subprocess.Popen(["sh", "-c", "read line; exec sleep 30"], stdin=subprocess.PIPE, text=True)
    try:
        p = subprocess.Popen([PPROFC, "attach", str(proc.pid), "--seconds", "30", "-o", out],
                             stderr=subprocess.PIPE, text=True)
        check(wait_for(lambda: perf_events_open(p.pid), 20, 0.01), "pprofc never attached to sh")
        proc.stdin.write("go\n")
        proc.stdin.flush()
        _, err = p.communicate(timeout=30)
        check(p.returncode == 0 and "new program (exec)" in err, "exec during a profile: %d %r"
              % (p.returncode, err))
        check(os.path.exists(out), "no profile after the target's exec")
        check(wait_for(lambda: tracer_pid(proc.pid) == 0), "the exec'ed target is still traced")
        check(proc.poll() is None, "the exec'ed target died")
    finally:
        proc.kill()
        proc.wait()
    if os.path.exists(out):
        os.unlink(out)


def test_blocked_threads_untouched():
    """A CPU profile never stops a thread asleep in a system call: the
    waits fixture's epoll_wait sees no EINTR."""
    out = tempfile.mktemp(suffix=".pb.gz")
    with Fixture("waits", progress=True) as fx:
        r = pprofc("attach", fx.pid, "--seconds", "3", "--hz", "200", "-o", out)
        check(r.returncode == 0, "attach waits: %s" % r.stderr)
        with open(fx.progress + ".eintr") as f:
            eintr = int(f.read().split()[0])
        check(eintr == 0, "epoll_wait returned EINTR %d times during a CPU profile" % eintr)
        top, _ = gopprof("-top", out)
        check("spin" in top or "mix" in top, "the spinning thread is not in the profile")
        check_untouched(fx.pid, label="waits cpu")
    os.unlink(out)


def test_cxx_rust_names():
    """C++ and Rust names come out demangled in go tool pprof -top; a Go
    program's functions are named."""
    for name, want in (("cxx_names", "fixture::Spinner<unsigned long>::spin"),
                       ("rust_names", "rust_names::fixture::Spinner::spin"),
                       ("go_threads", "main.spin")):
        if not fixture_path(name):
            print("%s not built: skipped" % name)
            continue
        out = tempfile.mktemp(suffix=".pb.gz")
        with Fixture(name) as fx:
            r = pprofc("attach", fx.pid, "--seconds", "1", "-o", out)
            check(r.returncode == 0, "attach %s: %s" % (name, r.stderr))
            top, e = gopprof("-top", out)
            check(e == "" and want in top_table(top), "%s: %r not in -top: %s" % (name, want, top[-400:]))
            check_untouched(fx.pid, label=name)
        os.unlink(out)


def test_stack_cut_short():
    """A stack deeper than its copy ends with a marker frame and the summary
    counts it, at every copy size (the kernel shrinks a copy near 64 KiB to
    fit its record: that one must be seen as cut too)."""
    with Fixture("deep") as fx:
        for size in ("8K", "32K", "65528"):
            out = tempfile.mktemp(suffix=".pb.gz")
            r = pprofc("attach", fx.pid, "--seconds", "1", "--stack-size", size, "-o", out)
            check(r.returncode == 0 and "deeper than the stack copied" in r.stderr,
                  "stack-size %s: no cut-short count: %r" % (size, r.stderr))
            traces, e = gopprof("-traces", out)
            blocks = [b for b in traces.split("-----------+")[1:] if "spin_at_bottom" in b]
            check(blocks and all("[stack cut short" in b for b in blocks),
                  "stack-size %s: a deep stack without the marker: %r" % (size, blocks[:1]))
            os.unlink(out)
        check_untouched(fx.pid, label="deep")


def test_threads_profile():
    """--profile threads (and dump-threads --pprof): thread counts by stack
    equal the fixture's layout: 30 threads, a third in each park function."""
    d = tempfile.mkdtemp(prefix="pprofc-threads-")
    with Fixture("many_threads", args=["30", "3"]) as fx:
        r = pprofc("attach", fx.pid, "--profile", "threads", env=dict(os.environ, PPROF_TMPDIR=d))
        path = os.path.join(d, "pprof.many_threads.threads.001.pb.gz")
        check(r.returncode == 0 and "Saved profile in %s" % path in r.stderr, "threads profile: %r" % r.stderr)
        dumped = os.path.join(d, "dump.pb.gz")
        r = pprofc("dump-threads", "--pprof", dumped, fx.pid)
        check(r.returncode == 0 and r.stdout.startswith("thread %d " % fx.pid), "dump-threads --pprof: %r" % r.stderr)
        for f in (path, dumped):
            top, e = gopprof("-top", "-nodefraction=0", f)
            check(e == "" and "Type: threads" in top, "threads profile %s: %r" % (f, e))
            rows = top_table_counts(top)
            r = pprofc("report", f)
            check(r.returncode == 0 and top_table_counts(r.stdout) == rows,
                  "pprofc report of a threads profile differs from go tool pprof -top:\n%s\n%s"
                  % (r.stdout[-600:], top[-600:]))
            for fn in ("park_condvar", "park_pipe", "park_sleep"):
                check(rows.get(fn) == 10, "%s: %s threads, want 10" % (fn, rows.get(fn)))
            check(rows.get("main") == 1, "main: %s threads, want 1" % rows.get("main"))
            tags, _ = gopprof("-tags", f)
            for state in ("IO wait", "cond wait", "sleep"):
                check(re.search(r"\b10(\.0)? \(\s*[\d.]+%\): " + re.escape(state) + "$", tags, re.M) is not None,
                      "state %s not on 10 threads: %s" % (state, tags))
        check_untouched(fx.pid, label="threads profile")
    shutil.rmtree(d, ignore_errors=True)


def top_table_counts(text):
    """{function: cum} from -top output of a count profile."""
    rows = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 6 and parts[1].endswith("%") and parts[3].isdigit():
            rows[" ".join(parts[5:])] = int(parts[3])
    return rows


def test_wall_profile():
    """--profile wall: every thread, each tick, labelled with its wait state.
    A thread computing 30% and sleeping 70% (by its own clock) splits so by
    the state label: running and runnable within 10 points of the kernel's
    own shares (schedstat: time on a CPU, time waiting for one), sleep the
    rest; and the wall time it spent computing by its own clock, running
    or waiting for a CPU, is running + runnable.  (On a loaded machine the
    fixture's clock counts a preempted computation as computing, and the
    wait for a CPU after a sleep as sleeping: only the kernel can tell.)
    Blocked threads are not stopped, so epoll_wait sees no EINTR over a 5 s
    profile."""
    truth = tempfile.mktemp(prefix="pprofc-duty-")
    out = tempfile.mktemp(suffix=".pb.gz")
    with Fixture("duty", args=[truth]) as fx:
        t0 = read_pair(truth)
        duty_tid = by_name(dump_json(fx.pid))["duty"]["tid"]
        k0, w0 = schedstat(fx.pid, duty_tid), time.monotonic_ns()
        r = pprofc("attach", fx.pid, "--profile", "wall", "--seconds", "5", "--tid", duty_tid, "-o", out)
        k1, w1 = schedstat(fx.pid, duty_tid), time.monotonic_ns()
        t1 = read_pair(truth)
        check(r.returncode == 0 and "thread time by the samples" in r.stderr, "wall profile: %r" % r.stderr)
        busy, slept = t1[0] - t0[0], t1[1] - t0[1]
        tags, e = gopprof("-tags", out)
        check(e == "" and "Type" not in e, "wall -tags warned: %r" % e)
        share = state_shares(tags)
        want = 100.0 * busy / (busy + slept)
        on_cpu = 100.0 * (k1[0] - k0[0]) / (w1 - w0)
        queued = 100.0 * (k1[1] - k0[1]) / (w1 - w0)
        running, runnable = share.get("running", 0), share.get("runnable", 0)
        check(abs(running - on_cpu) <= 10, "running %.1f%% of the wall profile, %.1f%% by schedstat (%r)"
              % (running, on_cpu, share))
        check(abs(runnable - queued) <= 10, "runnable %.1f%% of the wall profile, %.1f%% by schedstat (%r)"
              % (runnable, queued, share))
        check(abs(share.get("sleep", 0) - (100 - on_cpu - queued)) <= 10,
              "sleep %.1f%% of the wall profile, %.1f%% neither on nor waiting for a CPU by schedstat (%r)"
              % (share.get("sleep", 0), 100 - on_cpu - queued, share))
        check(running + runnable >= want - 10, "running and runnable %.1f%% of the wall profile, computing "
              "%.1f%% by the fixture's clock (%r)" % (running + runnable, want, share))
        check_untouched(fx.pid, label="duty")
    with Fixture("waits", progress=True) as fx:
        r = pprofc("attach", fx.pid, "--profile", "wall", "--seconds", "5", "--hz", "100", "-o", out)
        check(r.returncode == 0, "wall profile of waits: %r" % r.stderr)
        with open(fx.progress + ".eintr") as f:
            check(int(f.read().split()[0]) == 0, "epoll_wait saw EINTR during a wall profile")
        tags, _ = gopprof("-tags", out)
        share = state_shares(tags)
        for state in ("IO wait", "mutex wait", "cond wait", "sleep", "running", "signal wait"):
            check(share.get(state, 0) > 0, "state %s missing from the wall profile: %r" % (state, share))
        top, _ = gopprof("-top", "-tagfocus=state=mutex wait", out)
        check("lock_both" in top and "wait_for_lock" in top, "-tagfocus=state=mutex: %s" % top[-300:])
        check_untouched(fx.pid, label="waits wall")
    for f in (truth, out):
        if os.path.exists(f):
            os.unlink(f)


def test_wall_running_share():
    """Issue 10, item 4: in a wall profile, each thread's `running` share is
    its time on a CPU by the kernel's own count (schedstat), within 2
    points, at any rate and with either engine.  The duty thread computes
    3 ms of every 10 (about 30%); 97, 100 and 331 Hz beat with that period
    differently (the state seen at each tick said 5-38% running).  The
    kernel's count is read just before and after each run: that window is
    longer than the profile's by pprofc's start and exit, and the thread's
    duty is the same all along."""
    truth = tempfile.mktemp(prefix="pprofc-duty-")
    out = tempfile.mktemp(suffix=".pb.gz")
    with Fixture("duty", args=[truth]) as fx:
        duty_tid = by_name(dump_json(fx.pid))["duty"]["tid"]
        tids = (fx.pid, duty_tid)
        for engine in ("perf", "ptrace"):
            for hz in ("97", "100", "331"):
                cpu0, t0 = {t: schedstat_ns(fx.pid, t) for t in tids}, time.monotonic_ns()
                r = pprofc("attach", fx.pid, "--profile", "wall", "--seconds", "6", "--hz", hz,
                           "--engine", engine, "-o", out)
                cpu1, t1 = {t: schedstat_ns(fx.pid, t) for t in tids}, time.monotonic_ns()
                if not check(r.returncode == 0, "wall %s %s Hz: %r" % (engine, hz, r.stderr)):
                    continue
                samples = raw_samples(out)
                for tid in tids:
                    mine = [(ns, lb.get("state")) for _, ns, lb in samples if lb.get("tid") == str(tid)]
                    total = sum(ns for ns, _ in mine)
                    running = sum(ns for ns, state in mine if state == "running")
                    share = 100.0 * running / total if total else -1
                    kernel = 100.0 * (cpu1[tid] - cpu0[tid]) / (t1 - t0)
                    print("wall %s %s Hz, thread %d: running %.1f%%, kernel %.1f%%"
                          % (engine, hz, tid, share, kernel))
                    check(abs(share - kernel) <= 2,
                          "wall %s %s Hz, thread %d: running %.1f%% of its time in the profile, "
                          "%.1f%% by its schedstat" % (engine, hz, tid, share, kernel))
        check_untouched(fx.pid, label="duty")
    for f in (truth, out):
        if os.path.exists(f):
            os.unlink(f)


def read_pair(path):
    def get():
        try:
            with open(path) as f:
                v = [int(x) for x in f.read().split()]
            return v if len(v) == 2 else None
        except (OSError, ValueError):
            return None
    return wait_for(get, timeout=10)


def state_shares(tags):
    """{state: percent} from go tool pprof -tags output."""
    part = tags.split("state:", 1)[-1].split("\n\n", 1)[0]
    return {m.group(2): float(m.group(1)) for m in re.finditer(r"\(\s*([\d.]+)%\): (.+)$", part, re.M)}


def total_seconds(top):
    m = re.search(r"Total samples = ([\d.]+\w+)", top)
    return seconds(m.group(1)) if m else None


def test_block_and_mutex_profiles():
    """block: threads blocked on a pipe and a condition variable appear with
    their blocking stacks and a delay close to how long they blocked within
    the profile's window: they blocked seconds before it began, and only
    the window's part counts (a profile's delay never exceeds threads x
    duration).
    mutex: the delay of three waiters is charged to the holder's stack,
    through slow_critical_section()."""
    out = tempfile.mktemp(suffix=".pb.gz")
    with Fixture("waits", progress=True) as fx:
        # Blocked for a while before the profile (a condition, not a
        # measurement: the fixture's threads block as it starts).
        wait_for(lambda: time.monotonic() - fx.started > 3, timeout=10)
        r = pprofc("attach", fx.pid, "--profile", "block", "--seconds", "3", "-o", out)
        check(r.returncode == 0 and "of delay recorded" in r.stderr, "block profile: %r" % r.stderr)
        for thread, fn in (("pipe-reader", "read_request"), ("cond-waiter", "wait_for_signal")):
            top, e = gopprof("-top", "-tagfocus=thread=" + thread, out)
            m = re.search(r"Showing nodes accounting for ([\d.]+\w+)", top)
            got = seconds(m.group(1)) if m else None
            check(e == "" and fn in top, "block: %s not in %s's stacks: %s" % (fn, thread, top[-300:]))
            check(got is not None and 2.9 <= got <= 3.2, "block: %s delayed %r s in a 3 s profile"
                  % (thread, got))
        check_untouched(fx.pid, label="block")
    with Fixture("contended") as fx:
        r = pprofc("attach", fx.pid, "--profile", "mutex", "--seconds", "3", "-o", out)
        check(r.returncode == 0, "mutex profile: %r" % r.stderr)
        top, e = gopprof("-top", out)
        rows, total = top_table(top), total_seconds(top)
        cum = rows.get("slow_critical_section", (0, 0))[1]
        check(e == "" and "Type: delay" in top, "mutex profile type: %s" % top[:200])
        check(total and cum >= 0.9 * total,
              "mutex delay not charged to slow_critical_section: %r of %r s" % (cum, total))
        check("take_and_release" not in top, "waiters' own stacks in the mutex profile")
        check_untouched(fx.pid, label="mutex")
    os.unlink(out)


def test_run_mode():
    out = tempfile.mktemp(suffix=".pb.gz")
    truth = tempfile.mktemp(prefix="pprofc-truth-")
    r = subprocess.run([PPROFC, "run", "-o", out, "--", fixture_path("cpu_split"), truth, "1.5"],
                       capture_output=True, text=True, timeout=120)
    check(r.returncode == 3, "pprofc run did not exit with the command's status 3: %d %s"
          % (r.returncode, r.stderr))
    top, e = gopprof("-top", out)
    check(e == "" and "share_c" in top and "mix_step" in top, "run profile: %r %r" % (top[-300:], e))
    r = subprocess.run([PPROFC, "run", "--seconds", "0.3", "-o", out, "--", "sh", "-c", "sleep 1; exit 5"],
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == 5, "run --seconds: exit %d, want 5 (%s)" % (r.returncode, r.stderr))
    r = subprocess.run([PPROFC, "run", "-o", out, "--", "/nonexistent/command"], capture_output=True,
                       text=True, timeout=60)
    check(r.returncode == 127 and "cannot run" in r.stderr, "run of a missing command: %d %r"
          % (r.returncode, r.stderr))
    r = subprocess.run([PPROFC, "run", "-o", out], capture_output=True, text=True, timeout=60)
    check(r.returncode == 2 and "missing COMMAND" in r.stderr, "run without a command: %d" % r.returncode)
    # The command is pprofc's child and, for a moment at each ptrace
    # sample, its tracee: waiting for its exit must not take the stops the
    # engine waits for (it hung 2 runs in 8, with the command stopped).
    loop = "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; exit 4"
    for engine in ("ptrace", "perf"):
        for k in range(4):
            try:
                r = subprocess.run([PPROFC, "run", "--engine", engine, "--hz", "1000", "-o", out, "--",
                                    "sh", "-c", loop], capture_output=True, text=True, timeout=60)
                check(r.returncode == 4, "run %s %d: exit %d: %r" % (engine, k, r.returncode, r.stderr))
            except subprocess.TimeoutExpired:
                check(False, "run %s %d hung" % (engine, k))
    # An output that cannot be created: refused before the command starts.
    mark = tempfile.mktemp(prefix="pprofc-started-")
    r = subprocess.run([PPROFC, "run", "-o", "/nonexistent/dir/x.pb.gz", "--", "touch", mark],
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == 1 and len(r.stderr.splitlines()) == 1 and "/nonexistent/dir" in r.stderr,
          "run with a bad output: %d %r" % (r.returncode, r.stderr))
    check(not os.path.exists(mark), "run started the command although its output could not be created")
    # SIGTERM to pprofc run: the profile is written, the command gets the
    # signal, and pprofc exits with the command's status (as perf record).
    for engine in ("perf", "ptrace"):
        if os.path.exists(truth):
            os.unlink(truth)        # written again once the command runs
        p = subprocess.Popen([PPROFC, "run", "--engine", engine, "-o", out, "--",
                              fixture_path("cpu_split"), truth], stderr=subprocess.PIPE, text=True)
        check(wait_for(lambda: read_truth(truth) is not None, 20), "%s: run never started" % engine)
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=60)
        check(p.returncode == 128 + signal.SIGTERM, "%s: run after SIGTERM exited %d (want 143): %r"
              % (engine, p.returncode, err))
        top, e = gopprof("-top", out)
        check(e == "" and "share_" in top, "%s: profile after SIGTERM: %r" % (engine, e))
    for f in (out, truth):
        if os.path.exists(f):
            os.unlink(f)


if __name__ == "__main__":
    require_ptrace()
    if not GO:
        print("skipped: go (go tool pprof) is not installed")
        sys.exit(77)
    test_shares_and_reader("perf")
    test_shares_and_reader("ptrace")
    test_naming_stdout_tid()
    test_sigint_mid_collection()
    test_target_exits()
    test_target_execs()
    test_blocked_threads_untouched()
    test_cxx_rust_names()
    test_run_mode()
    test_threads_profile()
    test_stack_cut_short()
    test_wall_profile()
    test_wall_running_share()
    test_block_and_mutex_profiles()
    done()
