#!/usr/bin/env python3
"""Stacks of real programs from Debian, checked against oracles nobody here
wrote: redis-server (with its I/O threads), nginx (master and workers),
python3 (threads blocked on a queue and in sleep) and a Go program built
with cgo (our fixture, compiled by Debian's Go).

For every thread blocked in a system call:
  - the stack read without stopping it equals the stack read by stopping
    every thread (--stop-all), or is a prefix of it marked incomplete: no
    frame is ever invented;
  - read again with glibc's separate debug info hidden (a mount namespace
    with an empty /usr/lib/debug), it has the same frames (pcs) and the
    same completeness: completeness comes from the unwind, not from names;
  - a complete stack ends at the frame where eu-stack's ends (but for Go's
    roots, where Go's own tracebacks end and eu-stack does not).

And a wall profile of an nginx worker under load (the issue saw 1.48 s of
its epoll_wait labelled running where the kernel counted 0.26 s): the
worker's running share in the profile is its CPU time by its schedstat over
the same run, within 2 points.

Prints one line per program, the figures of the README's truth table.
Skips a program whose package is not installed (dev.sh installs them).
"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from fixture import (PPROFC, check, check_untouched, done, dump_json, eu_stacks,  # noqa: E402
                     fixture_path, functions, pprofc, raw_samples, require_ptrace, schedstat_ns,
                     wait_for)

HIDE = ('mount --make-rprivate / && mount -t tmpfs -o ro none /usr/lib/debug && '
        'XDG_CACHE_HOME=$(mktemp -d) exec "$@"')


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dump_without_debug(pid):
    """pprofc's dump from a mount namespace without /usr/lib/debug."""
    import json
    r = subprocess.run(["unshare", "-m", "sh", "-c", HIDE, "sh", PPROFC, "dump-threads",
                        "--format=json", str(pid)], capture_output=True, text=True, timeout=120)
    check(r.returncode == 0, "dump without debug info failed: %s" % r.stderr.strip())
    return json.loads(r.stdout) if r.returncode == 0 else {"threads": []}


def pcs(t):
    """The physical frames' pcs (debug info adds inline frames that share
    their physical frame's pc)."""
    out = []
    for f in t["frames"]:
        if not out or out[-1] != f["pc"]:
            out.append(f["pc"])
    return out


def judge(t, s, b, eu):
    """What is wrong with one thread's three reads (quiet, stopped, without
    debug info), or None."""
    a, z = functions(t), functions(s)
    if not ((a == z and t["complete"] == s["complete"]) or (not t["complete"] and z[:len(a)] == a)):
        return "read without stopping %s (complete %s), stopped %s (complete %s)" % (
            a, t["complete"], z, s["complete"])
    if pcs(b) != pcs(t) or b["complete"] != t["complete"]:
        return "without debug info %d frames (complete %s), with %d (complete %s): %s" % (
            len(pcs(b)), b["complete"], len(pcs(t)), t["complete"], b.get("stack_error"))
    # Go's stacks end at Go's roots (runtime.mcall...), where eu-stack goes
    # on into the other stack's leftovers.
    if t["complete"] and eu and not a[-1].startswith("runtime.") and int(t["frames"][-1]["pc"], 16) != eu[-1]:
        return "stack ends at %s, eu-stack's at 0x%x" % (t["frames"][-1]["pc"], eu[-1])
    return None


def reads(pid):
    """The four reads, and how long they took (a thread whose last run is
    older than that, by the stopped read, did not run between them)."""
    t0 = time.monotonic()
    quiet = {t["tid"]: t for t in dump_json(pid)["threads"]}
    bare = {t["tid"]: t for t in dump_without_debug(pid)["threads"]}
    stopped = {t["tid"]: t for t in dump_json(pid, "--stop-all")["threads"]}
    return quiet, bare, stopped, eu_stacks(pid), time.monotonic() - t0 + 0.1


def still(s, elapsed):
    return (s.get("wait_seconds") or 0) > elapsed


def compare(label, pid):
    """Checks one process; prints (blocked threads, equal to stopped,
    prefixes marked incomplete, complete with debug, complete without).
    A thread that ran between the reads (by the stopped read's own wait
    time) cannot be compared: it is read again, up to three times, and
    skipped if it never sits still that long (Go's sysmon wakes every few
    milliseconds); a thread that sat still must agree."""
    quiet, bare, stopped, eu, elapsed = reads(pid)
    n = equal = prefix = full = full_bare = skipped = 0
    for tid, t in quiet.items():
        s, b = stopped.get(tid), bare.get(tid)
        if t["state"] not in ("S", "D") or not s or not b or not t["syscall"]:
            continue
        for _ in range(3):
            if still(s, elapsed):
                break
            q2, b2, s2, eu2, elapsed2 = reads(pid)
            if tid in q2 and tid in b2 and tid in s2:
                t, b, s, eu, elapsed = q2[tid], b2[tid], s2[tid], eu2, elapsed2
        if not still(s, elapsed):
            skipped += 1
            continue
        why = judge(t, s, b, eu.get(tid))
        check(why is None, "%s thread %d (%s): %s" % (label, tid, t["name"], why))
        n += 1
        same = functions(t) == functions(s) and t["complete"] == s["complete"]
        equal += same
        prefix += not same and not t["complete"]
        full += t["complete"]
        full_bare += b["complete"]
    print("%-22s blocked %2d  equal to --stop-all %2d  incomplete prefix %2d  complete: %2d with debug info, %2d without%s"
          % (label, n, equal, prefix, full, full_bare,
             "  (%d never still long enough to compare)" % skipped if skipped else ""))
    check(n > 0, "%s: no blocked thread to compare" % label)
    return n


def load(port, stop):
    """HTTP requests to 127.0.0.1:port, one after another, until stop is set."""
    import urllib.error
    import urllib.request
    while not stop.is_set():
        try:
            urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=2).read()
        except (urllib.error.URLError, OSError):
            pass


def wall_share(label, pid, port):
    """A 3 s wall profile of pid under HTTP load: its running share against
    its schedstat over the same run."""
    import threading
    out = tempfile.mktemp(prefix="pprofc-real-", suffix=".pb.gz")
    stop = threading.Event()
    loaders = [threading.Thread(target=load, args=(port, stop)) for _ in range(2)]
    for t in loaders:
        t.start()
    try:
        cpu0, t0 = schedstat_ns(pid, pid), time.monotonic_ns()
        r = pprofc("attach", pid, "--profile", "wall", "--seconds", "3", "-o", out)
        cpu1, t1 = schedstat_ns(pid, pid), time.monotonic_ns()
    finally:
        stop.set()
        for t in loaders:
            t.join()
    if not check(r.returncode == 0, "%s wall profile: %s" % (label, r.stderr.strip())):
        return
    mine = [(ns, lb.get("state")) for _, ns, lb in raw_samples(out)]
    os.unlink(out)
    total = sum(ns for ns, _ in mine)
    share = 100.0 * sum(ns for ns, st in mine if st == "running") / total if total else -1
    kernel = 100.0 * (cpu1 - cpu0) / (t1 - t0)
    print("%-22s wall profile under load: running %.1f%%, schedstat %.1f%%" % (label, share, kernel))
    check(abs(share - kernel) <= 2, "%s: running %.1f%% of the wall profile, %.1f%% by schedstat"
          % (label, share, kernel))


def quiet_after(proc, secs=1.5):
    """Lets a program finish starting up (threads created, blocked)."""
    wait_for(lambda: proc.poll() is not None, timeout=secs, step=0.1)
    check(proc.poll() is None, "program exited during start-up")


def run(label, argv, pids=lambda p: [p.pid], then=None, **kw):
    if not shutil.which(argv[0]):
        print("%s not installed: skipped" % argv[0])
        return
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, **kw)
    try:
        quiet_after(proc)
        for i, pid in enumerate(pids(proc)):
            compare(label if i == 0 else "%s %d" % (label, i), pid)
            check_untouched(pid, label=label)
        if then:
            then(pids(proc))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def children(proc):
    def found():
        r = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True)
        kids = [int(x) for x in r.stdout.split()]
        return kids if len(kids) >= 2 else None
    return [proc.pid] + (wait_for(found, timeout=10) or [])


def main():
    require_ptrace()
    if subprocess.run(["unshare", "-m", "sh", "-c", HIDE, "sh", "true"]).returncode != 0:
        print("skipped: cannot hide /usr/lib/debug in a mount namespace")
        sys.exit(77)
    tmp = tempfile.mkdtemp(prefix="pprofc-real-")
    try:
        run("redis-server", ["redis-server", "--port", str(free_port()), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--io-threads", "2", "--dir", tmp])
        conf, port = os.path.join(tmp, "nginx.conf"), free_port()
        with open(conf, "w") as f:
            f.write("daemon off; master_process on; worker_processes 2; pid %s/nginx.pid;\n"
                    "error_log stderr; events {}\n"
                    "http { access_log off; server { listen 127.0.0.1:%d; } }\n" % (tmp, port))
        run("nginx", ["nginx", "-c", conf, "-p", tmp], pids=children, stderr=subprocess.DEVNULL,
            then=lambda pids: [wall_share("nginx worker %d" % i, pid, port)
                               for i, pid in enumerate(pids[1:], 1)])
        code = ("import queue, threading, time\n"
                "q = queue.Queue()\n"
                "for i in range(3): threading.Thread(target=q.get, daemon=True).start()\n"
                "threading.Thread(target=time.sleep, args=(1000,), daemon=True).start()\n"
                "time.sleep(1000)\n")
        run("python3", ["/usr/bin/python3", "-c", code])
        go = fixture_path("go_cgo")
        if go:
            run("Go (cgo)", [go])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    done()


if __name__ == "__main__":
    main()
