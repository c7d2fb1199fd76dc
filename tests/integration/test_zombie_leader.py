"""A process whose main thread called pthread_exit() while its other
threads run on (tests/targets/zombie_leader.c): the thread-group leader is
a zombie, /proc/PID/maps is empty, process_vm_readv(PID) and
PTRACE_SEIZE(PID) are refused, and yet the process is alive and must be
dumped and profiled like any other (attach_mm_pid, attach/proc.h).

Checked, against oracles pprofc did not write:
- the case is real: the kernel says State Z for the leader, and its maps
  are empty, while /proc/PID/task lists the four workers;
- dump-threads, without stopping and with --stop-all: exit 0; the leader
  listed (it is a thread of the process) with no stack and the reason
  "exited (the main thread called pthread_exit)...", never a permission
  error; the waiter's mutex owner is the spinner and the poller's fd the
  pipe, as the fixture says (both read from the process's memory by its
  id, which the zombie leader cannot serve); the blocked worker's stack, physical frames leaf to root, has the
  pcs of gdb's backtrace of that thread (`gdb -p` refuses the zombie
  leader with EPERM; `gdb -p TID` of a live thread attaches the process),
  and is complete; the text dump says the same;
- attach --seconds 1, perf and ptrace engines: `go tool pprof -top` opens
  the profile without a warning and puts zl_spin on top; no sample of the
  leader; with perf installed and permitted, `perf record -p PID` on the
  same window (its ips mapped to functions by the fixture's own symbol
  table, as perf cannot read the leader's maps) has zl_spin on top too;
- a wall profile with the perf engine: no sample of the leader, none lost;
- threadcreate, both engines: every thread of /proc/PID/task counted
  alive at the start, the leader under "[the program's main thread]";
- the thread standing for the process (the first live one) loads a
  library and exits during a profile (both engines): the library's
  function is named (the modules read again through another thread);
- the target untouched after each run (check_untouched), its blocked
  worker still in read() and its spinner still running.
Also registered with /usr/lib/debug hidden (-nodebug)."""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from fixture import (PPROFC, Fixture, check, check_untouched, done, dump_json,  # noqa: E402
                     fixture_path, gopprof, pprofc, raw_samples, require_ptrace, sampling,
                     schedstat_ns, thread_states, wait_for)

REASON = "exited (the main thread called pthread_exit); the process runs on in its other threads"


def leader_state(pid):
    return thread_states(pid).get(pid)


def syscall_nr(pid, tid):
    try:
        with open("/proc/%d/task/%d/syscall" % (pid, tid)) as f:
            return f.read().split()[0]
    except (OSError, IndexError):
        return None


def start(args=()):
    fx = Fixture("zombie_leader", args=args)
    fx.tids = {k: int(v) for k, v in (line.split() for line in fx.lines)}
    fx.pipe = fx.tids.pop("pipe")
    check(wait_for(lambda: leader_state(fx.pid) == "Z"), "the main thread is not a zombie: %r"
          % leader_state(fx.pid))
    # The waiter in futex (202), the poller in poll (7), on x86_64.
    check(wait_for(lambda: syscall_nr(fx.pid, fx.tids["waiter"]) == "202" and
                   syscall_nr(fx.pid, fx.tids["poller"]) == "7"), "the waiter or the poller never blocked")
    with open("/proc/%d/maps" % fx.pid) as f:
        check(f.read() == "", "the zombie leader's maps are not empty: not the case under test")
    return fx


def gdb_pcs(pid, tid):
    """The pcs of gdb's backtrace of thread tid, leaf first, one per
    physical frame (gdb repeats a pc for each inlined frame)."""
    script = tempfile.NamedTemporaryFile("w", suffix=".py", delete=False)
    script.write(
        "import gdb\n"
        "for th in gdb.selected_inferior().threads():\n"
        "    if th.ptid[1] != %d:\n"
        "        continue\n"
        "    th.switch()\n"
        "    f = gdb.newest_frame()\n"
        "    while f is not None:\n"
        "        print('FRAME 0x%%x %%s' %% (f.pc(), f.name()))\n"
        "        f = f.older()\n" % tid)
    script.close()
    try:
        r = subprocess.run(["gdb", "-q", "-nx", "-batch", "-ex", "source " + script.name,
                            "-p", str(tid)], capture_output=True, text=True, timeout=120)
    finally:
        os.unlink(script.name)
    pcs = [int(m.group(1), 16) for m in re.finditer(r"^FRAME 0x([0-9a-f]+)", r.stdout, re.M)]
    check(pcs, "gdb gave no backtrace of thread %d: %s" % (tid, (r.stdout + r.stderr)[-600:]))
    return physical(pcs)


def physical(pcs):
    out = []
    for pc in pcs:
        if not out or out[-1] != pc:
            out.append(pc)
    return out


def check_dump(fx, gdb, extra):
    label = "dump-threads %s" % " ".join(extra)
    try:
        d = dump_json(fx.pid, *extra)
    except RuntimeError as e:
        check(False, "%s: %s" % (label, e))
        return
    ts = {t["tid"]: t for t in d["threads"]}
    check(set(ts) == {fx.pid} | set(fx.tids.values()),
          "%s: threads %r, not the leader and the four workers" % (label, sorted(ts)))
    lead = ts.get(fx.pid, {})
    check(lead.get("state") == "Z" and not lead.get("stack_taken") and not lead.get("frames"),
          "%s: the leader is not listed as a zombie without a stack: %r" % (label, lead))
    check(lead.get("stack_error") == REASON, "%s: the leader's reason: %r" % (label, lead.get("stack_error")))
    b = ts.get(fx.tids["blocked"], {})
    frames = b.get("frames") or []
    names = [f["function"] for f in frames]
    check(b.get("complete") and "zl_block_in_read" in names and "zl_blocked_main" in names,
          "%s: the blocked worker's stack: %r (%s)" % (label, names, b.get("stack_error")))
    got = physical([int(f["pc"], 16) for f in frames])
    check(gdb is None or got == gdb, "%s: blocked worker's pcs %s, gdb's %s" % (label, [hex(p) for p in got],
                                                                [hex(p) for p in gdb]))
    # Read from the process's memory by its id (the zombie's has none).
    w = (ts.get(fx.tids["waiter"]) or {}).get("blocked_on") or {}
    check(w.get("kind") == "mutex" and w.get("owner_tid") == fx.tids["spinner"],
          "%s: the waiter's mutex owner: %r, the spinner is %d" % (label, w, fx.tids["spinner"]))
    p = (ts.get(fx.tids["poller"]) or {}).get("blocked_on") or {}
    check(p.get("kind") == "fd" and p.get("fd") == fx.pipe and p.get("description") == "pipe",
          "%s: the poller's fd: %r, the pipe is fd %d" % (label, p, fx.pipe))
    s = ts.get(fx.tids["spinner"], {})
    check("zl_spin" in [f["function"] for f in s.get("frames") or []],
          "%s: the spinner's stack has no zl_spin: %r" % (label, s.get("stack_error")))
    check_untouched(fx.pid, label=label)


def test_dump():
    with start() as fx:
        r = pprofc("dump-threads", fx.pid)
        check(r.returncode == 0 and REASON in r.stdout and "permission" not in r.stderr,
              "text dump: exit %d, stderr %r" % (r.returncode, r.stderr))
        gdb = gdb_pcs(fx.pid, fx.tids["blocked"]) if shutil.which("gdb") else None
        if gdb is None:
            print("gdb not installed: stacks checked by name only")
        for extra in ([], ["--stop-all"]):
            check_dump(fx, gdb, extra)
        check_alive(fx, "after the dumps")


def check_alive(fx, label):
    """The blocked worker still in read(), the spinner still running."""
    b = fx.tids["blocked"]

    def in_read():
        with open("/proc/%d/task/%d/syscall" % (fx.pid, b)) as f:
            return f.read().split()[0] == "0"
    # --stop-all stops the blocked worker too, and its read() is restarted
    # once it runs again: on a busy CPU (the spinner's) that can come a
    # moment after the dump returns, when /proc says "running" (CI, once).
    check(wait_for(in_read, timeout=10), "%s: the blocked worker left read()" % label)
    s = fx.tids["spinner"]
    before = schedstat_ns(fx.pid, s)
    check(wait_for(lambda: schedstat_ns(fx.pid, s) > before + 10000000, timeout=20),
          "%s: the spinner does not run" % label)
    check_untouched(fx.pid, label=label)


def fixture_symbol(fx, name):
    """[lo, hi) of function name in the running fixture: nm's address and
    size, plus the load base from a live thread's maps."""
    out = subprocess.run(["nm", "-S", fx.path], capture_output=True, text=True).stdout
    m = re.search(r"^([0-9a-f]+) ([0-9a-f]+) [tT] %s$" % name, out, re.M)
    base = None
    with open("/proc/%d/task/%d/maps" % (fx.pid, fx.tids["blocked"])) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 6 and parts[5] == fx.path and parts[2] == "00000000":
                base = int(parts[0].split("-")[0], 16)
                break
    if not m or base is None:
        return None
    lo = base + int(m.group(1), 16)
    return lo, lo + int(m.group(2), 16)


def perf_record(fx, seconds=1.5):
    """perf record -p on the process, as a second oracle: started now,
    ended after seconds; returns the Popen and its data file, or None."""
    if not shutil.which("perf"):
        return None
    data = tempfile.mktemp(prefix="pprofc-perf-", suffix=".data")
    p = subprocess.Popen(["perf", "record", "-q", "-e", "task-clock", "-F", "199", "-o", data,
                          "-p", str(fx.pid), "--", "sleep", str(seconds)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return p, data


def perf_share(fx, rec, name):
    p, data = rec
    _, err = p.communicate(timeout=60)
    if p.returncode != 0:
        print("perf record not usable here (%s): second oracle skipped" % err.strip()[-200:])
        return None
    r = subprocess.run(["perf", "script", "-i", data, "-F", "ip"], capture_output=True, text=True,
                       timeout=120)
    os.unlink(data)
    ips = [int(x, 16) for x in r.stdout.split() if re.match(r"^[0-9a-f]+$", x)]
    rng = fixture_symbol(fx, name)
    if not ips or not rng:
        check(False, "perf record: no samples (%d) or no symbol %s" % (len(ips), name))
        return None
    return sum(rng[0] <= ip < rng[1] for ip in ips) / len(ips)


def top_function(path):
    text, err = gopprof("-top", path)
    check(err == "", "go tool pprof -top warned: %r" % err)
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 6 and parts[1].endswith("%") and parts[4].endswith("%"):
            return parts[5], float(parts[1].rstrip("%"))
    return None, 0.0


def test_cpu(engine):
    with start() as fx:
        out = tempfile.mktemp(prefix="pprofc-zl-", suffix=".pb.gz")
        rec = perf_record(fx) if engine == "perf" else None
        r = pprofc("attach", fx.pid, "--seconds", "1", "--engine", engine, "-o", out)
        if not check(r.returncode == 0, "attach --engine %s: exit %d: %s" % (engine, r.returncode, r.stderr)):
            if rec:
                rec[0].kill()
                rec[0].wait()
            return
        fn, share = top_function(out)
        check(fn == "zl_spin", "%s: the top function is %r, not zl_spin" % (engine, fn))
        tids = {int(labels.get("tid", "0") or 0) for _, _, labels in raw_samples(out)}
        check(fx.pid not in tids, "%s: a sample of the zombie leader" % engine)
        if rec:
            theirs = perf_share(fx, rec, "zl_spin")
            if theirs is not None:
                check(theirs > 0.5, "perf record: zl_spin is %.0f%% of its samples" % (100 * theirs))
                print("zl_spin: pprofc %.1f%%, perf record %.1f%%" % (share, 100 * theirs))
        os.unlink(out)
        check_alive(fx, "after attach --engine %s" % engine)


def test_wall():
    with start() as fx:
        out = tempfile.mktemp(prefix="pprofc-zl-", suffix=".pb.gz")
        r = pprofc("attach", fx.pid, "--profile", "wall", "--seconds", "1", "--engine", "perf", "-o", out)
        check(r.returncode == 0, "wall: exit %d: %s" % (r.returncode, r.stderr))
        check(" 0 lost" in r.stderr, "wall: samples lost: %s" % r.stderr.strip())
        if os.path.exists(out):
            tids = {int(labels.get("tid", "0") or 0) for _, _, labels in raw_samples(out)}
            check(fx.pid not in tids and fx.tids["blocked"] in tids,
                  "wall: sampled threads %r (leader %d)" % (sorted(tids), fx.pid))
            os.unlink(out)
        check_alive(fx, "after the wall profile")


def test_threadcreate(engine):
    with start() as fx:
        out = tempfile.mktemp(prefix="pprofc-zl-", suffix=".pb.gz")
        r = pprofc("attach", fx.pid, "--profile", "threadcreate", "--seconds", "1", "--engine", engine,
                   "-o", out)
        if not check(r.returncode == 0, "threadcreate %s: exit %d: %s" % (engine, r.returncode, r.stderr)):
            return
        n = len(os.listdir("/proc/%d/task" % fx.pid))
        check(re.search(r"\b%d threads: %d alive at the start, 0 created" % (n, n), r.stderr),
              "threadcreate %s: not the kernel's %d threads: %s" % (engine, n, r.stderr.strip()))
        traces, err = gopprof("-traces", out)
        check("[the program's main thread]" in traces and "zl_blocked_main" not in traces
              and "blocked" in traces and "spinner" in traces,
              "threadcreate %s: stacks %s" % (engine, traces[-800:]))
        os.unlink(out)
        check_alive(fx, "after threadcreate --engine %s" % engine)


def test_standing_thread_exits(engine):
    """The thread that stands for the process (the first live one: the
    fixture's "first") loads a library and exits during the profile; the
    library's code then runs in a pc no module read so far holds, and the
    modules must be read again through another thread."""
    lib = fixture_path("plugin")
    if not lib or not os.path.exists(lib):
        print("plugin fixture not built: case skipped")
        return
    with start([lib]) as fx:
        out = tempfile.mktemp(prefix="pprofc-zl-", suffix=".pb.gz")
        p = subprocess.Popen([PPROFC, "attach", str(fx.pid), "--seconds", "5", "--engine", engine,
                              "-o", out], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        check(wait_for(lambda: sampling(p.pid)), "%s: pprofc never started sampling" % engine)
        os.kill(fx.pid, signal.SIGUSR1)
        check(fx.proc.stdout.readline().strip() == "loaded", "the fixture did not load the plugin")
        check(wait_for(lambda: not os.path.exists("/proc/%d/task/%d" % (fx.pid, fx.tids["first"]))),
              "thread first did not exit")
        _, err = p.communicate(timeout=120)
        if check(p.returncode == 0, "%s: exit %d: %s" % (engine, p.returncode, err)):
            # pprofc's names only: go tool pprof would read the library itself.
            top, _ = gopprof("-top", "-symbolize=none", out)
            check("plugin_work" in top, "%s: the plugin's code is not named after the standing thread "
                  "exited: %s" % (engine, top[-600:]))
            os.unlink(out)
        check_alive(fx, "after the standing thread exited (%s)" % engine)


def main():
    require_ptrace()
    test_dump()
    for engine in ("perf", "ptrace"):
        test_cpu(engine)
    test_wall()
    for engine in ("perf", "ptrace"):
        test_threadcreate(engine)
    for engine in ("perf", "ptrace"):
        test_standing_thread_exits(engine)
    done()


if __name__ == "__main__":
    main()
