"""`pprofc attach --profile trace`: the parts of a timeline test_trace.py
does not look at, checked against oracles pprofc does not write:

- thread created / thread exited instants: thread_maker ("brief N MS")
  makes N threads inside the window that end in it again; each notes its
  own tid and the CLOCK_MONOTONIC times it began and ended its code, and
  the fixture answers only once the kernel has taken every one out of
  /proc/self/task.  With the perf engine the trace has exactly one
  created and one exited instant per thread, and no others; the created
  one lies between the window's start and the thread's first moment (the
  kernel writes the fork record before the thread can run), the exited
  one between the thread's last moment and the window's end.  With the
  ptrace engine (ticks only) the tick loop finds each thread new and
  gone: one created instant, inside the window and before the exited
  one, and one exited instant, after the thread's last moment.
- the detail of an IO wait, "fd N: what it is": N is the fd the kernel
  says the thread is blocked on (/proc/PID/task/TID/syscall, first
  argument), and what it is follows what /proc/PID/fd/N links to: a pipe,
  a listening TCP socket on the port the fixture printed (waits), a
  connected TCP socket with the addresses the program itself reads
  (python3's getsockname and getpeername), a named pipe by its path, an
  epoll set with the fds its fdinfo lists.
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from fixture import (PPROFC, Fixture, check, check_untouched, done, fixture_path,  # noqa: E402
                     require_ptrace)

BRIEF = 6               # threads per round
LIFE_MS = 30            # each alive this long: ticks at 100 Hz see it


def load(path):
    with open(path) as f:
        return json.load(f)


def instants(doc, pid):
    """{tid: [(name, ts in ns, timing)]} of the thread instants."""
    out = {}
    for e in doc["traceEvents"]:
        if e["ph"] == "i" and e.get("cat") == "thread":
            check(e["pid"] == pid and e.get("s") == "t", "instant of another process or scope: %r" % e)
            out.setdefault(e["tid"], []).append((e["name"], round(e["ts"] * 1000), e["args"].get("timing", "")))
    return out


def brief_round(engine):
    """thread_maker under attach --profile trace: (document, {tid: (began,
    ended)}, the time the fixture answered, pid); document None if pprofc
    failed.  The command goes once pprofc says the window started."""
    out = tempfile.mktemp(prefix="pprofc-events-", suffix=".json")
    fx = subprocess.Popen([fixture_path("thread_maker")], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          text=True)
    try:
        check(fx.stdout.readline().strip() == "ready", "thread_maker did not start")
        pp = subprocess.Popen([PPROFC, "attach", str(fx.pid), "--profile", "trace", "--seconds", "3",
                               "--engine", engine, "-o", out], stderr=subprocess.PIPE, text=True)
        line = pp.stderr.readline()
        check("the window starts" in line, "%s: no start line: %r" % (engine, line))
        fx.stdin.write("brief %d %d\n" % (BRIEF, LIFE_MS))
        fx.stdin.flush()
        reply = fx.stdout.readline().split()
        answered = time.monotonic_ns()
        err = line + pp.communicate(timeout=120)[1]
        if pp.returncode != 0 and engine == "perf" and "perf_event" in err:
            print("note: perf_event refused here, the perf engine's part is not checked: %s" % err.strip())
            return None, {}, answered, fx.pid
        check(pp.returncode == 0, "%s: attach --profile trace: exit %d: %s" % (engine, pp.returncode, err))
        check_untouched(fx.pid, label=engine)
        log = {}
        for item in reply[1:]:
            tid, began, ended = (int(x) for x in item.split(":"))
            log[tid] = (began, ended)
        check(reply[:1] == ["brief"] and len(log) == BRIEF, "%s: fixture said %r" % (engine, reply))
        doc = load(out) if pp.returncode == 0 else None
        return doc, log, answered, fx.pid
    finally:
        fx.kill()
        fx.wait()
        if os.path.exists(out):
            os.unlink(out)


def test_thread_events_perf():
    doc, log, answered, pid = brief_round("perf")
    if not doc:
        return
    od = doc["otherData"]
    if not od["switches"].startswith("exact"):
        print("note: perf_event refused here: the kernel's thread records are not checked")
        return
    start, end = od["start_ns"], od["end_ns"]
    # The window holds the whole round: begun after pprofc said so, and
    # answered (every thread gone from /proc) before it ended.
    check(start < min(b for b, _ in log.values()) and answered < end,
          "perf: the round is not inside the window: %d..%d, threads %r, answered %d"
          % (start, end, log, answered))
    got = instants(doc, pid)
    created = {t: [x for x in v if x[0] == "thread created"] for t, v in got.items()}
    exited = {t: [x for x in v if x[0] == "thread exited"] for t, v in got.items()}
    check({t for t, v in created.items() if v} == set(log),
          "perf: thread created for %s, the fixture made %s" % (sorted(t for t, v in created.items() if v),
                                                                sorted(log)))
    check({t for t, v in exited.items() if v} == set(log),
          "perf: thread exited for %s, the fixture's threads %s" % (sorted(t for t, v in exited.items() if v),
                                                                   sorted(log)))
    for tid, (began, ended) in sorted(log.items()):
        c, x = created.get(tid, []), exited.get(tid, [])
        check(len(c) == 1 and len(x) == 1, "perf: thread %d has %d created and %d exited instants: %r"
              % (tid, len(c), len(x), got.get(tid)))
        if not (c and x):
            continue
        check(all(e[2] == "the kernel's (perf_event)" for e in c + x), "perf: thread %d timing %r" % (tid, c + x))
        check(start <= c[0][1] <= began, "perf: thread %d created at %d, the window starts %d, the thread "
              "began at %d" % (tid, c[0][1], start, began))
        check(ended <= x[0][1] <= end, "perf: thread %d exited at %d, its code ended at %d, the window at %d"
              % (tid, x[0][1], ended, end))
    names = {e["tid"] for e in doc["traceEvents"] if e["ph"] == "M" and e["name"] == "thread_name"}
    check(set(log) <= names, "perf: threads not named: %s" % sorted(set(log) - names))
    print("perf: %d threads made and ended in the window: created and exited once each, inside the "
          "window and around the threads' own times" % len(log))


def test_thread_events_ptrace():
    """Ticks only: the tick loop finds each thread new (created, within a
    tick of its birth: after the window began, before it was found gone)
    and gone (after its code ended)."""
    doc, log, answered, pid = brief_round("ptrace")
    if not doc:
        return
    od = doc["otherData"]
    check(od["switches"].startswith("inferred"), "ptrace: %r" % od)
    got = instants(doc, pid)
    for tid, (began, ended) in sorted(log.items()):
        x = [e for e in got.get(tid, []) if e[0] == "thread exited"]
        c = [e for e in got.get(tid, []) if e[0] == "thread created"]
        check(len(x) == 1 and ended <= x[0][1] <= od["end_ns"] and x[0][2] == "when the tick loop found it gone",
              "ptrace: thread %d (ended %d) exited instants %r" % (tid, ended, x))
        check(len(c) == 1 and c[0][2] == "when the tick loop first found it" and od["start_ns"] <= c[0][1] and
              (not x or c[0][1] <= x[0][1]),
              "ptrace: thread %d (began %d) created instants %r" % (tid, began, c))
    check(set(got) <= set(log), "ptrace: instants of threads the fixture did not make: %s"
          % sorted(set(got) - set(log)))


# ---- the fd of an IO wait -----------------------------------------------------


def blocked_fd(pid, tid):
    """(syscall number, first argument) of a thread blocked in a call, by the
    kernel; None if it is running."""
    try:
        with open("/proc/%d/task/%d/syscall" % (pid, tid)) as f:
            p = f.read().split()
    except OSError:
        return None
    return (int(p[0]), int(p[1], 16)) if len(p) > 1 and p[0].isdigit() else None


def io_details(doc, tid):
    """The details of the thread's IO wait slices."""
    return {e["args"].get("detail") for e in doc["traceEvents"]
            if e["ph"] == "X" and e["tid"] == tid and e["name"] == "IO wait"}


def trace_of(pid):
    out = tempfile.mktemp(prefix="pprofc-events-", suffix=".json")
    r = subprocess.run([PPROFC, "attach", str(pid), "--profile", "trace", "--seconds", "1", "-o", out],
                       capture_output=True, text=True, timeout=120)
    check(r.returncode == 0, "attach --profile trace %d: %s" % (pid, r.stderr))
    doc = load(out) if r.returncode == 0 else None
    if os.path.exists(out):
        os.unlink(out)
    return doc


def thread_ids(pid):
    """{comm: tid} of the process's threads."""
    out = {}
    for t in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/comm" % (pid, t)) as f:
            out[f.read().strip()] = int(t)
    return out


def expect_detail(doc, pid, tid, label, what):
    """The thread's IO waits name the fd the kernel has it blocked on, and
    what(fd, link) says what that fd is."""
    sc = blocked_fd(pid, tid)
    if not check(sc is not None, "%s: thread %d is not blocked in a call" % (label, tid)):
        return
    fd = sc[1]
    link = os.readlink("/proc/%d/fd/%d" % (pid, fd))
    want = "fd %d: %s" % (fd, what(fd, link))
    got = io_details(doc, tid)
    check(got == {want}, "%s: IO wait details %r; blocked in call %d on fd %d -> %s, want %r"
          % (label, got, sc[0], fd, link, want))
    return want


def test_fd_waits():
    """waits: read() on a pipe, accept() on a listening TCP socket,
    epoll_wait on a set watching a pipe."""
    with Fixture("waits") as fx:
        port = int(next(x for x in fx.lines if x.startswith("port ")).split()[1])
        ids = thread_ids(fx.pid)
        doc = trace_of(fx.pid)
        check_untouched(fx.pid, label="waits")
        if not doc:
            return

        def pipe(fd, link):
            check(link.startswith("pipe:["), "waits: fd %d links to %s, not a pipe" % (fd, link))
            return "pipe"

        def listening(fd, link):
            check(link.startswith("socket:["), "waits: fd %d links to %s, not a socket" % (fd, link))
            return "TCP 127.0.0.1:%d listen" % port

        def epoll(fd, link):
            check(link == "anon_inode:[eventpoll]", "waits: fd %d links to %s" % (fd, link))
            with open("/proc/%d/fdinfo/%d" % (fx.pid, fd)) as f:
                watched = [int(m) for m in re.findall(r"^tfd:\s*(\d+)", f.read(), re.M)]
            kinds = []
            for w in watched:
                wl = os.readlink("/proc/%d/fd/%d" % (fx.pid, w))
                kinds.append("fd %d (%s)" % (w, "pipe" if wl.startswith("pipe:[") else wl))
            return "epoll on " + ", ".join(kinds)

        for name, what in (("pipe-reader", pipe), ("acceptor", listening), ("epoller", epoll)):
            got = expect_detail(doc, fx.pid, ids[name], "waits " + name, what)
            print("waits %s: %s" % (name, got))


PY = r"""
import os, socket, sys, threading, time
r, w = os.pipe()
fifo = sys.argv[1]
os.mkfifo(fifo)
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)
cli = socket.create_connection(srv.getsockname()); conn, _ = srv.accept()
ff = os.open(fifo, os.O_RDWR)
def named(n, f):
    def run():
        import ctypes
        ctypes.CDLL(None).prctl(15, n.encode(), 0, 0, 0)
        f()
    return threading.Thread(target=run, daemon=True)
for n, f in (("on-pipe", lambda: os.read(r, 1)), ("on-tcp", lambda: conn.recv(1)),
             ("on-fifo", lambda: os.read(ff, 1))):
    named(n, f).start()
print("fds %d %d %d" % (r, conn.fileno(), ff))
print("tcp %s:%d %s:%d" % (conn.getsockname() + conn.getpeername()))
print("ready", flush=True)
time.sleep(600)
"""


def test_fd_python():
    """python3 blocked in read() on a pipe and on a named pipe, and in
    recv() on a connected TCP socket."""
    tmp = tempfile.mkdtemp(prefix="pprofc-events-")
    fifo = os.path.join(tmp, "fifo")
    p = subprocess.Popen([sys.executable, "-c", PY, fifo], stdout=subprocess.PIPE, text=True)
    try:
        lines = [p.stdout.readline().split() for _ in range(3)]
        check(lines[2] == ["ready"], "python3: %r" % lines)
        tcp = lines[1][1:]
        ids = {}
        # Each thread has named itself and is in its call.
        for _ in range(200):
            ids = thread_ids(p.pid)
            if all(n in ids and blocked_fd(p.pid, ids[n]) for n in ("on-pipe", "on-tcp", "on-fifo")):
                break
            time.sleep(0.02)
        doc = trace_of(p.pid)
        check_untouched(p.pid, label="python3")
        if not doc:
            return
        whats = {"on-pipe": lambda fd, link: "pipe",
                 "on-tcp": lambda fd, link: "TCP %s -> %s established" % (tcp[0], tcp[1]),
                 "on-fifo": lambda fd, link: link}
        for name, what in whats.items():
            got = expect_detail(doc, p.pid, ids.get(name, -1), "python3 " + name, what)
            print("python3 %s: %s" % (name, got))
    finally:
        p.kill()
        p.wait()
        if os.path.exists(fifo):
            os.unlink(fifo)
        os.rmdir(tmp)


def main():
    require_ptrace()
    test_thread_events_perf()
    test_thread_events_ptrace()
    test_fd_waits()
    test_fd_python()
    done()


if __name__ == "__main__":
    main()
