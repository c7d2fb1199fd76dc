"""Shared helpers for the integration tests: start real fixture processes,
run the real pprofc against them, and check the target was left untouched.

Every test script imports this module, calls require_ptrace() first (exit
77, meson's "skipped", where ptrace is not permitted) and ends with done().
Waits are bounded and wait for a condition, never for a fixed time.
"""
import atexit
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

PPROFC = os.environ.get("PPROFC", "build/cli/pprofc")
SKIP = 77
_failures = []
_checks = [0]


def _on_sigterm(signum, frame):
    """meson's timeout sends SIGTERM to the test's process group, and
    SIGKILL only if this script outlives it: a fixture that ignores
    SIGTERM (or runs stopped) would outlive the test.  Unwinding instead
    runs every `with Fixture` block's kill, and _kill_leftovers the rest."""
    raise SystemExit(128 + signum)


signal.signal(signal.SIGTERM, _on_sigterm)
_running = []


def _kill_leftovers():
    for proc in _running:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


atexit.register(_kill_leftovers)


def fixture_path(name):
    return os.environ.get("FIXTURE_" + name.upper())


def check(cond, what):
    """Records one assertion; the script fails at done() if any failed."""
    _checks[0] += 1
    if not cond:
        _failures.append(what)
        print("FAIL: " + what, file=sys.stderr)
    return cond


def failure_count():
    return len(_failures)


def forget_failures(mark):
    """Drops the failures recorded since failure_count() returned mark,
    for a measurement that is repeated once (and then checked for good)."""
    del _failures[mark:]


def done():
    print("%d checks, %d failed" % (_checks[0], len(_failures)))
    sys.exit(1 if _failures else 0)


def hide_debug_info():
    """With PPROFC_HIDE_DEBUG=1, runs this very script again in a mount
    namespace where /usr/lib/debug is an empty tmpfs, with pprofc's debug
    cache empty and no debuginfod: a machine without glibc's debug package
    (libc6-dbg), as most production machines are.  Exits 77 where mount
    namespaces are not permitted."""
    if os.environ.get("PPROFC_HIDE_DEBUG") != "1" or os.environ.get("PPROFC_DEBUG_HIDDEN"):
        return
    env = dict(os.environ, PPROFC_DEBUG_HIDDEN="1", XDG_CACHE_HOME=tempfile.mkdtemp(prefix="pprofc-nodebug-"))
    env.pop("DEBUGINFOD_URLS", None)
    script = ('mount --make-rprivate / && mount -t tmpfs -o ro none /usr/lib/debug && '
              'exec "$@"')
    probe = subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", "true"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        print("skipped: cannot hide /usr/lib/debug in a mount namespace: %s" % probe.stderr.strip())
        sys.exit(SKIP)
    print("separate debug info hidden: /usr/lib/debug is empty in this mount namespace")
    sys.stdout.flush()
    os.execvpe("unshare", ["unshare", "-m", "sh", "-c", script, "sh", sys.executable] + sys.argv, env)


def debug_hidden():
    return bool(os.environ.get("PPROFC_DEBUG_HIDDEN"))


_thread_frames = {}


def thread_frames():
    """{"roots": names, "start_thread": names}: what a thread's outermost
    frame (clone3, _start) and glibc's start_thread are called.  With
    glibc's debug info, their names; without it, glibc's internal
    functions have no name, and pprofc names them by module and FDE start
    (libc.so.6+0x...): those names are learned from a dump of the waits
    fixture, whose threads the dump test checks are complete and end
    where eu-stack's stacks end."""
    if _thread_frames:
        return _thread_frames
    roots = {"__clone3", "clone3", "__clone", "clone", "_start"}
    starts = {"start_thread"}
    if debug_hidden():
        with Fixture("waits") as fx:
            for t in dump_json(fx.pid)["threads"]:
                fs = functions(t)
                if t["complete"] and len(fs) >= 2:
                    roots.add(fs[-1])
                    if t["tid"] != fx.pid:
                        starts.add(fs[-2])
    _thread_frames.update(roots=roots, start_thread=starts)
    return _thread_frames


def require_heap_sampler():
    """Exits 77 unless the allocation sampler (PPROFC_HEAP_LIB) and the
    heap_alloc fixture are built, on x86_64 (the only registers it takes).
    Hides separate debug info first when asked (hide_debug_info)."""
    import platform
    hide_debug_info()
    if platform.machine() != "x86_64":
        print("skipped: the sampler captures x86_64 registers only")
        sys.exit(SKIP)
    lib = os.environ.get("PPROFC_HEAP_LIB")
    if not lib or not os.path.exists(lib) or not fixture_path("heap_alloc"):
        print("skipped: PPROFC_HEAP_LIB or FIXTURE_HEAP_ALLOC is not set or not built")
        sys.exit(SKIP)


def require_ptrace():
    """Exits 77 unless this process may PTRACE_SEIZE a child of its own.
    Hides separate debug info first when asked (hide_debug_info)."""
    hide_debug_info()
    libc = ctypes.CDLL(None, use_errno=True)
    child = subprocess.Popen(["sleep", "60"])
    try:
        r = libc.ptrace(0x4206, child.pid, None, None)  # PTRACE_SEIZE
        if r != 0:
            print("skipped: ptrace not permitted here (errno %d)" % ctypes.get_errno())
            sys.exit(SKIP)
    finally:
        child.kill()
        child.wait()


class Fixture:
    """A running fixture program; use as a context manager."""

    def __init__(self, name, args=(), path=None, progress=False):
        self.path = path or fixture_path(name)
        if not self.path or not os.path.exists(self.path):
            raise FileNotFoundError("fixture %s is not built" % name)
        self.dir = tempfile.mkdtemp(prefix="pprofc-test-")
        self.progress = os.path.join(self.dir, "progress")
        args = ([self.progress] if progress else []) + list(args)
        self.proc = subprocess.Popen([self.path] + args, stdout=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, text=True)
        self.pid = self.proc.pid
        _running.append(self.proc)
        self.started = time.monotonic()
        self.lines = []
        for line in self.proc.stdout:
            line = line.strip()
            if line == "ready":
                break
            self.lines.append(line)
        else:
            raise RuntimeError("fixture %s exited before it was ready" % name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        if self.proc in _running:
            _running.remove(self.proc)


def tids(pid):
    try:
        return sorted(int(t) for t in os.listdir("/proc/%d/task" % pid))
    except FileNotFoundError:
        return []


def thread_states(pid):
    """{tid: state letter}, read from /proc/PID/task/TID/stat."""
    out = {}
    for tid in tids(pid):
        try:
            with open("/proc/%d/task/%d/stat" % (pid, tid), "rb") as f:
                data = f.read()
            out[tid] = chr(data[data.rindex(b")") + 2])
        except (OSError, ValueError):
            pass
    return out


# The engine the profile tests ask for: meson runs the safety and lifecycle
# suites once with the default (perf) and once with PPROFC_ENGINE=ptrace.
ENGINE = os.environ.get("PPROFC_ENGINE", "")


def engine_args():
    return ["--engine", ENGINE] if ENGINE else []


def sampling(pprofc_pid):
    """Whether pprofc's engine is running: it holds perf_event descriptors
    (perf engine) or its tick timer (ptrace engine, which traces threads
    only for the moment of each sample)."""
    try:
        fds = os.listdir("/proc/%d/fd" % pprofc_pid)
    except OSError:
        return False
    for fd in fds:
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pprofc_pid, fd))
        except OSError:
            continue
        if link in ("anon_inode:[perf_event]", "anon_inode:[timerfd]"):
            return True
    return False


def tracer_pid(pid, tid=None):
    path = "/proc/%d/status" % pid if tid is None else "/proc/%d/task/%d/status" % (pid, tid)
    with open(path, errors="replace") as f:     # Name: holds raw bytes
        for line in f:
            if line.startswith("TracerPid:"):
                return int(line.split()[1])
    return -1


def tracer_of(pid, tid):
    """TracerPid of one thread, -1 once it is gone."""
    try:
        return tracer_pid(pid, tid)
    except OSError:
        return -1


def traced_by(pid, tracer):
    """Whether every thread of pid is traced by tracer."""
    ts = tids(pid)
    return bool(ts) and all(tracer_of(pid, t) == tracer for t in ts)


def read_progress(fx):
    """(ticks, rt signals received) from a waits fixture's progress file."""
    try:
        with open(fx.progress) as f:
            parts = f.read().split()
        return int(parts[0]), int(parts[1])
    except (FileNotFoundError, ValueError, IndexError):
        return 0, 0


def wait_for(cond, timeout=20.0, step=0.05):
    """Polls cond() until it is true or timeout passes; returns its value."""
    end = time.monotonic() + timeout
    while True:
        v = cond()
        if v or time.monotonic() > end:
            return v
        time.sleep(step)


def check_untouched(pid, allowed_stopped=False, label=""):
    """The invariant after every pprofc run: nothing traced, nothing stopped
    that was not stopped before.  Returns whether it holds."""
    ok = True
    for tid in tids(pid):
        try:
            tp = tracer_pid(pid, tid)
        except OSError:  # the thread exited meanwhile
            continue
        ok = check(tp == 0, "%s thread %d still traced by %d" % (label, tid, tp)) and ok
    states = thread_states(pid)
    bad = {t: s for t, s in states.items() if s == "t" or (s == "T" and not allowed_stopped)}
    return check(not bad, "%s threads left stopped: %r" % (label, bad)) and ok


def check_progress(fx, label=""):
    """The waits fixture's ticker advances after pprofc ran."""
    before = read_progress(fx)[0]
    moved = wait_for(lambda: read_progress(fx)[0] > before, timeout=20)
    check(moved, "%s target made no progress after pprofc (ticks stuck at %d)" % (label, before))


def pprofc(*args, timeout=120, **kw):
    return subprocess.run([PPROFC] + [str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout, **kw)


def dump_json(pid, *extra):
    r = pprofc("dump-threads", "--format=json", *extra, pid)
    if r.returncode != 0:
        raise RuntimeError("pprofc failed (%d): %s" % (r.returncode, r.stderr))
    return json.loads(r.stdout)


def eu_stacks(pid):
    """{tid: [pc, ...]} by eu-stack (elfutils, which stops the threads):
    the oracle for where each thread's stack ends.  Return addresses are
    printed as they are on the stack, as pprofc's JSON gives them."""
    r = subprocess.run(["eu-stack", "-p", str(pid)], capture_output=True, text=True, timeout=60)
    stacks, tid = {}, None
    for line in r.stdout.splitlines():
        if line.startswith("TID "):
            tid = int(line[4:].rstrip(":"))
            stacks[tid] = []
        elif line.startswith("#") and tid is not None:
            stacks[tid].append(int(line.split()[1], 16))
    return stacks


def gopprof(*args):
    """Runs go tool pprof (the oracle for reading profiles); returns
    (stdout, stderr)."""
    r = subprocess.run([shutil.which("go") or "go", "tool", "pprof"] + list(args),
                       capture_output=True, text=True, timeout=120)
    check(r.returncode == 0, "go tool pprof %s failed: %s" % (" ".join(args), r.stderr))
    return r.stdout, r.stderr


def raw_samples(path):
    """[(count, nanoseconds, {label: value})] of a profile, by go tool pprof -raw."""
    import re
    text, e = gopprof("-raw", path)
    check(e == "", "-raw warned: %r" % e)
    samples = []
    body = text.split("Samples:", 1)[-1].split("\nLocations", 1)[0]
    for line in body.splitlines()[2:]:
        m = re.match(r"^\s+(-?\d+)\s+(-?\d+):", line)
        if m:
            samples.append((int(m.group(1)), int(m.group(2)), {}))
        elif samples:
            for k, v in re.findall(r"(\w+):\[([^\]]*)\]", line):
                samples[-1][2][k] = v
    return samples


def schedstat(pid, tid):
    """The kernel's count of the thread's time on a CPU and of its time
    waiting for one on a run queue (run_delay), ns."""
    with open("/proc/%d/task/%d/schedstat" % (pid, tid)) as f:
        on, waiting = f.read().split()[:2]
    return int(on), int(waiting)


def schedstat_ns(pid, tid):
    """The kernel's count of the thread's time on a CPU (ns)."""
    return schedstat(pid, tid)[0]


def by_name(dump):
    return {t["name"]: t for t in dump["threads"]}


def functions(thread):
    return [f["function"] or "??" for f in thread["frames"]]


def kill_and_wait(proc, sig=signal.SIGKILL):
    try:
        proc.send_signal(sig)
    except ProcessLookupError:
        pass
    return proc.wait()


def profile_problem(path):
    """Why the pprof file at path is not a valid profile ("" if it is):
    `pprofc report` must read it, and `go tool pprof -top` too where Go is
    installed."""
    if not os.path.exists(path):
        return "no file"
    r = pprofc("report", path, timeout=60)
    if r.returncode != 0:
        return "pprofc report: %s" % r.stderr.strip()[:200]
    if shutil.which("go"):
        g = subprocess.run(["go", "tool", "pprof", "-top", path], capture_output=True, text=True,
                           timeout=120)
        if g.returncode != 0:
            return "go tool pprof: %s" % g.stderr.strip()[:200]
    return ""


def count_line(name, **counts):
    """The parseable summary line of a repeated test (README Safety table)."""
    print("COUNT %s %s" % (name, " ".join("%s=%d" % kv for kv in counts.items())), flush=True)


def pb_fields(b):
    """(field, value) of one protobuf message; value is int or bytes."""
    i = 0

    def varint():
        nonlocal i
        v = shift = 0
        while True:
            c = b[i]
            i += 1
            v |= (c & 0x7f) << shift
            shift += 7
            if c < 0x80:
                return v
    while i < len(b):
        key = varint()
        kind = key & 7
        if kind == 0:
            yield key >> 3, varint()
        elif kind == 2:
            n = varint()
            yield key >> 3, b[i:i + n]
            i += n
        elif kind in (1, 5):
            i += 8 if kind == 1 else 4
        else:
            raise ValueError("bad wire type %d" % kind)
