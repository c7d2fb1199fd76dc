"""pprofc's CPU profiles against perf (linux-perf), on the same window of the
same process.

For each target (tests/targets/spin_poll.c: 2 ms of CPU in spin_work, 2 ms
blocked in poll(); tests/targets/epoll_tick.c: a 1 kHz timerfd in epoll,
150 us of CPU per event in handle_event; a real redis-server under
redis-benchmark) two `perf record -e task-clock -F HZ -g -p PID` start, and
once both sample, `pprofc attach PID --engine=E --hz HZ --seconds N`.  perf
records 2 s longer, and only its samples within the profile's own window
(its time_nanos and duration_nanos; perf's timestamps in CLOCK_MONOTONIC)
count, so both tools see exactly the same stretch of the process.

perf's flat share of a function: each sample is charged to its first
user-space frame (kernel frames skipped: kernel time belongs to the user
code that made the system call, as a user-space sampler sees it), weighted
by its period.  pprofc's: the flat column of `go tool pprof -top -noinlines`
(physical functions, as perf's symbols are), in cpu/nanoseconds.

Names are compared after normalization, not by address: both tools name a
pc from the same ELF symbol tables, but perf may pick another alias of the
same address (glibc's local `__GI___libc_write` from libc6-dbg, where
pprofc says `__GI___write`), adds version tags (`clock_gettime@@GLIBC_2.17`)
and calls an unnamed pc `[unknown]` in dso D where pprofc says `[D]`.
Normalizing strips version tags and, repeatedly, the prefixes `__GI_`,
`__libc_`, `__vdso_` and leading underscores, so `__GI___libc_write`,
`__write` and `write` are one function, as are `__poll`/`poll` and
`__vdso_clock_gettime`/`clock_gettime`; such names are aliases of one glibc
function.  Going by address instead would need pprofc's locations mapped
back to file offsets and both resolved again by a third symbolizer, for the
same answer on these targets, and a failure would print addresses.

perf is not exact either.  This machine has no PMU (task-clock only), and
on redis with the two cores busy, concurrent task-clock samplers disagree
now and then by 5 to 10 points on epoll_wait (one of four runs comes out
high: its timer keeps expiring across the target's context switches), and
by up to 7.5 points while the ptrace engine stops the target.  So each
window has two perf runs, and the check is: for every function with >= 5%
in any of the three, pprofc's share is within 3 points of the range the two
perf runs span (when perf agrees with itself, as it does on the fixtures to
within 2 points, that is |pprofc - perf| <= 3).  Each window prints the
table and perf's disagreement with itself.

Checks, per engine (`--engine=perf` and `--engine=ptrace`):
- shares: perf engine on the three targets, against perf's shares; ptrace
  engine on the two fixtures, against perf's shares of user-mode time
  (perf's samples taken while the thread ran user code): a ptrace stop
  lands at the thread's next return to user mode, so it cannot tell where
  time inside the kernel went, and the engine drops every stop that lands
  in a system call (charging them gave clock_gettime 21% of spin_poll,
  where perf sees 1.5%, and epoll_wait 45% of epoll_tick, against 16%);
  on redis, with the ptrace engine, only that the share of epoll_wait,
  poll and the futex waits is at most perf's + 3 points (the honest engine
  drops samples, so its coverage may be lower).
- per-thread CPU (perf engine): pprofc's cpu/nanoseconds per `tid` label is
  within 5% of the thread's schedstat delta, for threads that used at least
  0.5 s.  The delta is taken over the profile's window, interpolated from
  schedstat read every 4 ms while pprofc runs: before and after the whole
  run would add pprofc's set-up and symbolization, 1 to 5% of a 5 s run.
  Printed besides: the delta over the whole run, and perf's own samples.
- every pprofc run exits 0 and leaves the target untouched.
- a thread in sleep(100) is not woken by a 2 s cpu, wall, block or mutex
  profile with either engine: its context switches are unchanged and it is
  still in clock_nanosleep (syscall 230).
- where perf_event_open fails with EPERM (tests/targets/no_perf_event.c, a
  seccomp filter like Docker's default profile): the default engine falls
  back to ptrace, exits 0 with a valid profile and one stderr line saying
  "engine: ptrace" and why (perf_event_open); `--engine=perf` exits 1 with
  one line naming perf_event_open.

Environment: PPROFC_TRUTH_SECONDS (window, default 5; longer for a slower,
steadier run), PPROFC_TRUTH_HZ (default 1000: at 100 Hz epoll_tick gets 80
samples per window, too few for 3 points), PPROFC_TRUTH_ENGINES (default
"perf,ptrace"; "default" runs pprofc without --engine, with every check,
to try a binary that predates the option).  Skips (77) without ptrace,
perf, perf_event permission or go; the redis part is skipped, with a
message, without redis-server.  About 75 s.
"""
import collections
import gzip
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from fixture import (PPROFC, SKIP, Fixture, check, check_untouched, done,  # noqa: E402
                     failure_count, fixture_path, forget_failures, kill_and_wait, pb_fields, profile_problem, require_ptrace, tids,
                     wait_for)

GO = shutil.which("go")
PERF = shutil.which("perf")
SECONDS = float(os.environ.get("PPROFC_TRUTH_SECONDS", "5"))
HZ = int(os.environ.get("PPROFC_TRUTH_HZ", "1000"))
ENGINES = [e for e in os.environ.get("PPROFC_TRUTH_ENGINES", "perf,ptrace").split(",") if e]
TOP = 5.0          # a function counts from this share (%), in either tool
SHARE_TOL = 3.0    # points
THREAD_TOL = 0.05  # of the kernel's CPU time
THREAD_MIN = 0.5   # seconds of CPU for a thread to be checked
KERNEL_MIN = 0xffff800000000000
SLEEP_SYSCALL = 230  # clock_nanosleep on x86_64
TMP = tempfile.mkdtemp(prefix="pprofc-cpu-truth-")


def engine_args(engine):
    return [] if engine == "default" else ["--engine=" + engine]


def normalize(name):
    """One name per function for both tools (see the module docstring)."""
    name = re.sub(r"@.*$", "", name.replace(" (inline)", "").strip())
    changed = True
    while changed:
        changed = False
        for prefix in ("__GI_", "__libc_", "__vdso_", "_"):
            if name.startswith(prefix) and len(name) > len(prefix):
                name = name[len(prefix):]
                changed = True
    return name


def is_blocking(name):
    """epoll_wait, poll and the futex waits, by normalized name."""
    return (name in ("epoll_wait", "epoll_pwait", "epoll_pwait2", "poll", "ppoll")
            or "futex" in name or name.startswith("lll_lock_wait")
            or re.match(r"pthread_cond_(timed|clock)?wait", name) is not None)


# --- perf ------------------------------------------------------------------

def perf(*args):
    """perf's command line, its build-id cache in TMP rather than ~/.debug.
    A cache is needed: it keeps the process's vDSO image, without which
    (`perf record -N`) perf script calls the vDSO's functions [unknown]."""
    return [PERF, "--buildid-dir", os.path.join(TMP, "buildid")] + list(args)


def perf_record(pid, out, seconds):
    """perf's own window: `sleep SECONDS`; timestamps in CLOCK_MONOTONIC."""
    return subprocess.Popen(perf("record", "-q", "-k", "CLOCK_MONOTONIC", "-e", "task-clock", "-F", str(HZ),
                                 "-g", "-p", str(pid), "-o", out, "--", "sleep", str(seconds)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def perf_sampling(proc):
    """Whether perf record (a Popen) has enabled its events: it execs its
    workload (`sleep`) only then."""
    try:
        with open("/proc/%d/task/%d/children" % (proc.pid, proc.pid)) as f:
            children = f.read().split()
        for child in children:
            with open("/proc/%s/comm" % child) as f:
                if f.read().strip() == "sleep":
                    return True
    except OSError:
        pass
    return proc.poll() is not None  # it failed: said after the window


def perf_samples(path):
    """[(tid, monotonic seconds, period ns, first user frame)] from perf script.

    Each sample is a header line "TID TIME: PERIOD" and its callchain, one
    tab-indented "IP SYM (DSO)" line per frame, innermost first.  Kernel
    frames are [kernel.kallsyms] (or, unresolved, above KERNEL_MIN); the
    first other frame is where user space was: the pc of the system call
    for a sample taken in the kernel, or in the vDSO ([vdso]).  Frames past
    that one can be garbage (perf walks frame pointers, which these
    binaries do not keep): unused.  A sample with no user frame at all (a
    thread in the kernel as it exits, say) is CPU still: "[kernel]".
    """
    r = subprocess.run(perf("script", "-i", path, "-F", "tid,time,period,ip,sym,dso"),
                       capture_output=True, text=True, timeout=300)
    check(r.returncode == 0, "perf script %s: %s" % (path, r.stderr[-300:]))
    samples, cur = [], None
    for line in r.stdout.splitlines():
        if not line.strip():
            continue
        if not line.startswith("\t"):
            tid, when, period = line.split()[:3]
            # [tid, time, period, first user frame, taken in the kernel]
            cur = [int(tid), float(when.rstrip(":")), int(period), None, None]
            samples.append(cur)
            continue
        if cur is None or cur[3] is not None:
            continue
        m = re.match(r"^\s*([0-9a-f]+) (.*) \((.*)\)$", line)
        in_kernel = not m or m.group(3) == "[kernel.kallsyms]" or int(m.group(1), 16) >= KERNEL_MIN
        if cur[4] is None:
            cur[4] = in_kernel      # the leaf: where the thread was
        if in_kernel:
            continue
        sym, dso = m.group(2), m.group(3)
        cur[3] = "[%s]" % os.path.basename(dso) if sym == "[unknown]" else normalize(sym)
    return [(tid, when, period, fn or "[kernel]", bool(k)) for tid, when, period, fn, k in samples]


def shares(weights):
    total = sum(weights.values())
    return {k: 100.0 * v / total for k, v in weights.items()} if total else {}


class PerfRun:
    """One perf record's samples between start and end (CLOCK_MONOTONIC
    seconds: the profile's window; None: all): flat shares, CPU per
    thread, and whether perf sampled over the whole window."""

    def __init__(self, path, start=None, end=None):
        every = perf_samples(path)
        self.samples = [s for s in every if (start is None or s[1] >= start) and (end is None or s[1] <= end)]
        w, user = collections.Counter(), collections.Counter()
        self.threads = collections.Counter()
        for tid, _, period, fn, in_kernel in self.samples:
            w[fn] += period
            if not in_kernel:
                user[fn] += period
            self.threads[tid] += period / 1e9
        self.shares = shares(w)
        self.user_shares = shares(user)     # of user-mode time only
        # perf's first and last samples lie outside the window, or it did
        # not cover it all (10 ms of slack: a thread may be idle then).
        self.covers = start is None or (bool(every) and every[0][1] <= start + 0.01 and every[-1][1] >= end - 0.01)


# --- pprofc's profile through go tool pprof ----------------------------------

def seconds(text):
    """pprof's scaled values: "1.57s", "570ms", "0" -> seconds."""
    m = re.match(r"^([\d.]+)(ns|us|ms|s|mins|hrs)?$", text)
    if not m:
        return None
    return float(m.group(1)) * {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1, "mins": 60, "hrs": 3600,
                                None: 1}[m.group(2)]


def gopprof(*args):
    r = subprocess.run([GO, "tool", "pprof"] + list(args), capture_output=True, text=True, timeout=120)
    check(r.returncode == 0, "go tool pprof %s: %s" % (" ".join(args), r.stderr[-300:]))
    return r.stdout


def pprofc_shares(path):
    """{normalized function: flat %} from go tool pprof -top -noinlines."""
    top = gopprof("-top", "-noinlines", "-nodefraction=0", "-nodecount=1000000",
                  "-sample_index=cpu", path)
    w = collections.Counter()
    for line in top.splitlines():
        parts = line.split()
        if len(parts) >= 6 and parts[1].endswith("%") and parts[4].endswith("%"):
            flat = seconds(parts[0])
            if flat is not None:
                w[normalize(" ".join(parts[5:]))] += flat
    return shares(w)


def pprofc_thread_cpu(path):
    """{tid: seconds of cpu/nanoseconds} from go tool pprof -raw: each
    sample line "COUNT VALUE: LOCATIONS" is followed by its labels."""
    raw = gopprof("-raw", path)
    out = collections.Counter()
    value = None
    for line in raw.split("Samples:", 1)[-1].split("Locations", 1)[0].splitlines():
        m = re.match(r"^\s*(\d+)\s+(\d+):", line)
        if m:
            value = int(m.group(2))
            continue
        m = re.match(r"^\s*tid:\[(\d+)", line)
        if m and value is not None:
            out[int(m.group(1))] += value / 1e9
            value = None
    return out


def profile_window(path):
    """(time_nanos, duration_nanos) of a gzipped pprof profile: fields 9
    and 10 of the top-level message (go tool pprof prints the duration to
    3 digits only)."""
    with gzip.open(path, "rb") as f:
        fields = dict(pb_fields(f.read()))
    return fields.get(9, 0), fields.get(10, 0)


# --- the kernel's view ---------------------------------------------------------

def schedstat(pid):
    """{tid: seconds on CPU} from /proc/PID/task/TID/schedstat."""
    out = {}
    for tid in tids(pid):
        try:
            with open("/proc/%d/task/%d/schedstat" % (pid, tid)) as f:
                out[tid] = int(f.read().split()[0]) / 1e9
        except (OSError, ValueError, IndexError):
            pass
    return out


def thread_names(pid):
    out = {}
    for tid in tids(pid):
        try:
            with open("/proc/%d/task/%d/comm" % (pid, tid), errors="replace") as f:
                out[tid] = f.read().strip()
        except OSError:
            pass
    return out


class SchedstatRecorder(threading.Thread):
    """Reads every thread's schedstat every few milliseconds while pprofc
    runs, so the kernel's CPU time can be taken over the profile's own
    window (its time_nanos and duration_nanos) rather than over the whole
    pprofc run, which adds set-up and symbolization."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.records, self.stop = pid, [], threading.Event()
        # CLOCK_REALTIME (the profile's time_nanos) minus CLOCK_MONOTONIC
        # (perf's timestamps).
        self.mono_offset_ns = time.time_ns() - time.monotonic_ns()

    def run(self):
        while True:
            self.records.append((time.time_ns(), schedstat(self.pid)))
            if self.stop.wait(0.004):
                self.records.append((time.time_ns(), schedstat(self.pid)))
                return

    def finish(self):
        self.stop.set()
        self.join(timeout=10)

    def at(self, t_ns, tid):
        """The thread's CPU seconds at wall time t_ns, interpolated."""
        pts = [(t, s[tid]) for t, s in self.records if tid in s]
        if not pts:
            return None
        if t_ns <= pts[0][0]:
            return pts[0][1]
        for (ta, va), (tb, vb) in zip(pts, pts[1:]):
            if ta <= t_ns <= tb:
                return va + (vb - va) * (t_ns - ta) / max(tb - ta, 1)
        return pts[-1][1]

    def delta(self, start_ns=None, end_ns=None):
        """{tid: CPU seconds} between start_ns and end_ns (default: the
        first and last reads, just before and just after pprofc)."""
        if not self.records:
            return {}
        start_ns = self.records[0][0] if start_ns is None else start_ns
        end_ns = self.records[-1][0] if end_ns is None else end_ns
        out = {}
        for tid in self.records[-1][1]:
            a, b = self.at(start_ns, tid), self.at(end_ns, tid)
            if a is not None and b is not None:
                out[tid] = b - a
        return out


# --- one window: two perf runs and pprofc at the same moment ----------------

class Window:
    """pprofc attach --engine=ENGINE and two perf records on the same
    process over the same SECONDS.  ok: pprofc exited 0, the target was left
    untouched and both tools' outputs were read; then got (pprofc's
    shares), perf ([PerfRun, PerfRun], each restricted to the profile's
    window), threads (pprofc's CPU per tid), kernel (schedstat over the
    profile's window), kernel_run (over the whole pprofc run), perf_threads
    (the first perf run's CPU per tid)."""

    def __init__(self, pid, engine, label):
        self.label = "%s engine=%s" % (label, engine)
        out = os.path.join(TMP, "%s-%s.pb.gz" % (label, engine))
        perf_out = [os.path.join(TMP, "%s-%s.%d.perf" % (label, engine, k)) for k in (0, 1)]
        # perf samples a little longer than pprofc, from before pprofc
        # starts: only its samples within the profile's window count.
        perfs = [perf_record(pid, p, SECONDS + 2) for p in perf_out]
        check(wait_for(lambda: all(perf_sampling(p) for p in perfs), 30, 0.01),
              "%s: perf record did not start sampling" % self.label)
        recorder = SchedstatRecorder(pid)
        recorder.start()
        r = subprocess.run([PPROFC, "attach", str(pid)] + engine_args(engine) +
                           ["--seconds", str(SECONDS), "--hz", str(HZ), "-o", out],
                           capture_output=True, text=True, timeout=SECONDS + 120)
        recorder.finish()
        perf_ok = True
        for p in perfs:
            try:
                _, err = p.communicate(timeout=SECONDS + 60)
            except subprocess.TimeoutExpired:
                kill_and_wait(p)
                err = "timed out"
            perf_ok = check(p.returncode == 0, "%s: perf record failed: %s" % (self.label, err[-300:])) and perf_ok
        print("%s: pprofc: %s" % (self.label, r.stderr.strip().replace("\n", " | ")))
        self.ok = check(r.returncode == 0, "%s: pprofc attach exited %d: %s"
                        % (self.label, r.returncode, r.stderr.strip()[-400:]))
        check_untouched(pid, label=self.label)
        if not self.ok or not perf_ok:
            self.ok = False
            return
        problem = profile_problem(out)
        self.ok = check(problem == "", "%s: invalid profile: %s" % (self.label, problem))
        if not self.ok:
            return
        self.got, self.threads = pprofc_shares(out), pprofc_thread_cpu(out)
        start, length = profile_window(out)
        self.kernel_run = recorder.delta()
        if check(start and length, "%s: the profile has no time_nanos/duration_nanos (%r, %r)"
                 % (self.label, start, length)):
            self.kernel = recorder.delta(start, start + length)
            mono = (start - recorder.mono_offset_ns) / 1e9
            self.perf = [PerfRun(p, mono, mono + length / 1e9) for p in perf_out]
            print("%s: the profile's window %.3f s, of a pprofc run of %.3f s; perf covered it: %s"
                  % (self.label, length / 1e9, (recorder.records[-1][0] - recorder.records[0][0]) / 1e9,
                     " ".join("yes" if p.covers else "no (all its samples used)" for p in self.perf)))
            # A perf run that did not cover the window: its whole run.
            self.perf = [p if p.covers else PerfRun(f) for p, f in zip(self.perf, perf_out)]
        else:
            self.kernel, self.perf = self.kernel_run, [PerfRun(p) for p in perf_out]
        self.perf_threads = self.perf[0].threads

    def print_table(self, user_only=False):
        a, b = (p.user_shares if user_only else p.shares for p in self.perf)
        names = sorted(set(self.got) | set(a) | set(b),
                       key=lambda n: -max(self.got.get(n, 0), a.get(n, 0), b.get(n, 0)))
        spread = max([abs(a.get(n, 0) - b.get(n, 0)) for n in names] or [0])
        print("%s: %d and %d perf samples%s; perf against itself: up to %.1f points"
              % (self.label, len(self.perf[0].samples), len(self.perf[1].samples),
                 " (shares of user-mode time)" if user_only else "", spread))
        print("    %7s %7s %7s  function" % ("pprofc", "perf 1", "perf 2"))
        for n in names[:12]:
            print("    %6.1f%% %6.1f%% %6.1f%%  %s" % (self.got.get(n, 0), a.get(n, 0), b.get(n, 0), n))

    def check_shares(self, user_only=False):
        """Every function with >= TOP% in any of the three: pprofc within
        SHARE_TOL points of the range the two perf runs span (user_only:
        of perf's user-mode time)."""
        a, b = (p.user_shares if user_only else p.shares for p in self.perf)
        if not check(self.got and a and b, "%s: an empty profile" % self.label):
            return
        for n in sorted(set(self.got) | set(a) | set(b)):
            g, lo, hi = self.got.get(n, 0), min(a.get(n, 0), b.get(n, 0)), max(a.get(n, 0), b.get(n, 0))
            if max(g, hi) < TOP:
                continue
            off = lo - g if g < lo else g - hi if g > hi else 0
            check(off <= SHARE_TOL, "%s: %s has %.1f%% in pprofc's profile, %.1f%% and %.1f%% by perf%s"
                  % (self.label, n, g, a.get(n, 0), b.get(n, 0),
                     " (of user-mode time)" if user_only else ""))

    def check_blocking(self):
        """No more epoll_wait/poll/futex waits than perf, + SHARE_TOL."""
        g = sum(v for n, v in self.got.items() if is_blocking(n))
        p = max(sum(v for n, v in run.shares.items() if is_blocking(n)) for run in self.perf)
        print("%s: epoll_wait, poll and futex waits: pprofc %.1f%%, perf %.1f%%" % (self.label, g, p))
        check(g <= p + SHARE_TOL, "%s: %.1f%% in epoll_wait/poll/futex waits, perf %.1f%%"
              % (self.label, g, p))

    def check_threads(self, pid):
        """pprofc's CPU per thread against schedstat over the profile's
        window.  Printed besides, not checked: schedstat over the whole
        pprofc run, and perf's own samples over the profile's window."""
        names = thread_names(pid)
        for tid, kernel in sorted(self.kernel.items()):
            if kernel < THREAD_MIN:
                continue
            g, name = self.threads.get(tid, 0.0), names.get(tid, "?")
            print("%s: thread %d %r: CPU in the profile's window: pprofc %.3f s, kernel %.3f s "
                  "(perf's samples %.3f s; kernel over the whole pprofc run %.3f s)"
                  % (self.label, tid, name, g, kernel, self.perf_threads.get(tid, 0),
                     self.kernel_run.get(tid, 0)))
            check(abs(g - kernel) <= THREAD_TOL * kernel,
                  "%s: thread %d %r: %.3f s of CPU in the profile, %.3f s by schedstat"
                  % (self.label, tid, name, g, kernel))


def profile_target(label, pid, engines_all, engines_shares, blocking_only=()):
    """A window for each engine, and its checks.  engines_all: every check
    (shares, per-thread CPU, and on redis the blocking calls);
    engines_shares: the share checks only; blocking_only: only no more
    blocking calls than perf."""
    for engine in ENGINES:
        if engine not in engines_all + engines_shares + blocking_only:
            continue
        # The ptrace engine's samples are where its stops land, a few
        # hundred per window: on this noisy 2-core machine a share is off
        # by more than 3 points now and then (seen: 5.7% in epoll_tick's
        # loop, perf 0.2%).  Its share checks get a second window, and the
        # first one's failures are dropped only if the second passes.
        for attempt in (1, 2):
            mark = failure_count()
            check_window(label, pid, engine, engines_all, engines_shares, blocking_only)
            if engine in engines_all or failure_count() == mark or attempt == 2:
                break
            print("%s engine=%s: a share check failed; measuring a second window" % (label, engine))
            forget_failures(mark)


def check_window(label, pid, engine, engines_all, engines_shares, blocking_only):
    w = Window(pid, engine, label)
    if not w.ok:
        return
    user_only = engine in engines_shares and engine not in engines_all
    w.print_table(user_only)
    if user_only:
        w.print_table()
    if engine in engines_all or engine in engines_shares:
        w.check_shares(user_only)
    if engine in blocking_only or (engine in engines_all and label == "redis"):
        w.check_blocking()
    if engine in engines_all:
        w.check_threads(pid)


ALL = ("perf", "default")  # every check: the perf engine, or no --engine at all


def test_fixtures():
    for name in ("spin_poll", "epoll_tick"):
        with Fixture(name) as fx:
            profile_target(name, fx.pid, ALL, ("ptrace",))


# --- redis --------------------------------------------------------------------

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def can_connect(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def test_redis():
    server, bench = shutil.which("redis-server"), shutil.which("redis-benchmark")
    if not server or not bench:
        print("redis part skipped: redis-server or redis-benchmark is not installed "
              "(Debian packages redis-server, redis-tools; ./dev.sh installs them)")
        return
    port = free_port()
    d = tempfile.mkdtemp(prefix="redis-", dir=TMP)
    srv = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                            "--appendonly", "no", "--daemonize", "no", "--dir", d],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    load = None
    try:
        if not check(wait_for(lambda: can_connect(port) or srv.poll() is not None, 20) and srv.poll() is None,
                     "redis-server did not listen on port %d" % port):
            return
        load = subprocess.Popen([bench, "-p", str(port), "-q", "-n", "10000000", "-c", "20", "-P", "1",
                                 "-t", "set,get"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                stdin=subprocess.DEVNULL)
        start = sum(schedstat(srv.pid).values())
        if not check(wait_for(lambda: sum(schedstat(srv.pid).values()) > start + 0.2, 20),
                     "redis-server did not get busy under redis-benchmark"):
            return
        profile_target("redis", srv.pid, ALL, (), blocking_only=("ptrace",))
        check(load.poll() is None, "redis-benchmark ended before the profiles did (exit %r)" % load.poll())
        check(srv.poll() is None, "redis-server died during the profiles (exit %r)" % srv.poll())
    finally:
        if load is not None:
            kill_and_wait(load)
        if srv.poll() is None:
            srv.send_signal(signal.SIGTERM)
        try:
            srv.wait(timeout=10)
        except subprocess.TimeoutExpired:
            kill_and_wait(srv)


# --- the sleeper ---------------------------------------------------------------

def sleeper_state(pid, tid):
    """(context switches, syscall number) of one thread."""
    sw = 0
    with open("/proc/%d/task/%d/status" % (pid, tid), errors="replace") as f:
        for line in f:
            if line.startswith(("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")):
                sw += int(line.split()[1])
    with open("/proc/%d/task/%d/syscall" % (pid, tid)) as f:
        nr = f.read().split()[0]
    return sw, int(nr) if nr.lstrip("-").isdigit() else nr


def test_sleeper_untouched():
    """A thread in sleep(100) is neither stopped nor woken by any profile.
    A fresh fixture for each run, so that one run's disturbance (a woken
    sleep is resumed as restart_syscall, 219) does not spill into the
    next."""
    for profile in ("cpu", "wall", "block", "mutex"):
        for engine in ENGINES:
            label = "sleeper %s engine=%s" % (profile, engine)
            with Fixture("spin_poll") as fx:
                tid = {n: t for t, n in thread_names(fx.pid).items()}.get("sleeper100")
                if not check(tid is not None, "spin_poll has no thread named sleeper100"):
                    return
                before = sleeper_state(fx.pid, tid)
                check(before[1] == SLEEP_SYSCALL, "%s: the sleeper is in syscall %r before the profile"
                      % (label, before[1]))
                out = os.path.join(TMP, "sleeper.pb.gz")
                r = subprocess.run([PPROFC, "attach", str(fx.pid), "--profile", profile] + engine_args(engine) +
                                   ["--seconds", "2", "-o", out], capture_output=True, text=True, timeout=120)
                after = sleeper_state(fx.pid, tid)
                print("%s: exit %d; (switches, syscall) %r before, %r after" % (label, r.returncode, before, after))
                check(r.returncode == 0, "%s: pprofc exited %d: %s" % (label, r.returncode, r.stderr.strip()[-300:]))
                check(after == before, "%s: the sleeping thread was disturbed: (switches, syscall) %r before, "
                      "%r after" % (label, before, after))
                check_untouched(fx.pid, label=label)


# --- no perf_event: the fall-back --------------------------------------------

def test_fallback():
    wrapper = fixture_path("no_perf_event")
    # The wrapper itself: perf_event_open(NULL, ...) fails with EPERM under
    # it (EFAULT without the filter).
    r = subprocess.run([wrapper, sys.executable, "-c",
                        "import ctypes; libc = ctypes.CDLL(None, use_errno=True); "
                        "libc.syscall(298, None, 0, -1, -1, 0); print(ctypes.get_errno())"],
                       capture_output=True, text=True, timeout=60)
    if r.returncode == 126:
        print("fall-back part skipped: %s" % r.stderr.strip())
        return
    if not check(r.returncode == 0 and r.stdout.strip() == "1",
                 "under no_perf_event, perf_event_open's errno is %r, want EPERM (1): %s"
                 % (r.stdout.strip(), r.stderr.strip())):
        return
    out = os.path.join(TMP, "fallback.pb.gz")
    with Fixture("spin_poll") as fx:
        r = subprocess.run([wrapper, PPROFC, "attach", str(fx.pid), "--seconds", "2", "-o", out],
                           capture_output=True, text=True, timeout=120)
        print("fall-back, default engine: exit %d: %s" % (r.returncode, r.stderr.strip().replace("\n", " | ")))
        check(r.returncode == 0, "without perf_event, pprofc attach exited %d: %s"
              % (r.returncode, r.stderr.strip()[-300:]))
        problem = profile_problem(out)
        check(problem == "", "without perf_event: invalid profile: %s" % problem)
        # The summary line may say "engine: ptrace" too; the one line that
        # gives the reason says both.
        said = [l for l in r.stderr.splitlines() if "perf_event_open" in l]
        check(len(said) == 1 and "engine: ptrace" in said[0],
              "without perf_event: want one stderr line with 'engine: ptrace' and the reason "
              "(perf_event_open), got %r" % r.stderr)
        check_untouched(fx.pid, label="fall-back")
        if os.path.exists(out):
            os.unlink(out)
        r = subprocess.run([wrapper, PPROFC, "attach", str(fx.pid), "--engine=perf", "--seconds", "2", "-o", out],
                           capture_output=True, text=True, timeout=120)
        print("fall-back, --engine=perf: exit %d: %s" % (r.returncode, r.stderr.strip().replace("\n", " | ")))
        lines = [l for l in r.stderr.splitlines() if l.strip()]
        check(r.returncode == 1 and len(lines) == 1 and "perf_event_open" in lines[0],
              "--engine=perf without perf_event: want exit 1 and one line naming perf_event_open, got %d %r"
              % (r.returncode, r.stderr))
        check(not os.path.exists(out), "--engine=perf without perf_event wrote a profile")
        check_untouched(fx.pid, label="fall-back --engine=perf")


# --- set-up -----------------------------------------------------------------------

def require_perf():
    """Exits 77 unless perf can sample a child of ours with task-clock."""
    if not PERF:
        print("skipped: perf is not installed (Debian package linux-perf)")
        sys.exit(SKIP)
    child = subprocess.Popen(["sleep", "60"])
    try:
        out = os.path.join(TMP, "probe.perf")
        r = subprocess.run(perf("record", "-q", "-e", "task-clock", "-F", str(HZ), "-g",
                                "-p", str(child.pid), "-o", out, "--", "sleep", "0.2"),
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            print("skipped: perf record cannot sample here (perf_event_open not permitted?): %s"
                  % (r.stderr.strip().splitlines() or ["exit %d" % r.returncode])[0])
            sys.exit(SKIP)
    finally:
        child.kill()
        child.wait()


if __name__ == "__main__":
    try:
        require_ptrace()
        if not GO:
            print("skipped: go (go tool pprof) is not installed")
            sys.exit(SKIP)
        require_perf()
        t0 = time.monotonic()
        test_fixtures()
        test_redis()
        test_sleeper_untouched()
        test_fallback()
        print("took %.0f s" % (time.monotonic() - t0))
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    done()
