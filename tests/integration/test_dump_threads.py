"""dump-threads against real processes: the waits fixture (every wait
reason, owners, fds, deadlock, inline frames, deep stacks), C++ and Rust
names, a deleted binary, a process in another mount namespace.  After each
dump the target must be untraced, unstopped and still making progress."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from fixture import (Fixture, by_name, check, check_progress, check_untouched, debug_hidden,  # noqa: E402
                     done, dump_json, eu_stacks, fixture_path, functions, pprofc, require_ptrace,
                     thread_states, wait_for)

ROOTS = ("__clone3", "clone3", "__clone", "clone", "_start")
EXPECTED = {
    "mutex-waiter": "mutex wait", "cond-waiter": "cond wait", "pipe-reader": "IO wait",
    "acceptor": "IO wait", "epoller": "IO wait", "sleeper": "sleep", "holder": "sleep",
    "deadlock-a": "mutex wait", "deadlock-b": "mutex wait", "spinner": "running",
    "inline-parker": "IO wait", "deep": "IO wait",
}


def settled(pid):
    """A dump once every fixture thread shows its final wait (the fixture
    says "ready" a few instructions before each thread blocks)."""
    def attempt():
        d = dump_json(pid)
        names = by_name(d)
        ok = all(n in names and names[n]["reason"] == r for n, r in EXPECTED.items())
        return d if ok else None
    d = wait_for(attempt, timeout=30, step=0.2)
    check(d is not None, "fixture threads never reached their expected wait reasons")
    return d or dump_json(pid)


def check_complete(t, eu):
    """The stack is complete, and ends where eu-stack's does (its outermost
    frame does not move while the thread runs).  With glibc's debug info
    the last frame is also named as a root; without it, it has no name
    (libc.so.6+0x... from its FDE), and completeness comes from the CFI."""
    fs = functions(t)
    check(t["complete"], "thread %s: stack incomplete: %s" % (t["name"], t.get("stack_error")))
    theirs = eu.get(t["tid"]) or [None]
    check(t["frames"] and int(t["frames"][-1]["pc"], 16) == theirs[-1],
          "thread %s: stack ends at %s, eu-stack's at %s" % (t["name"], fs[-3:], theirs[-1:]))
    if not debug_hidden() or t["frames"][-1]["module"].find("/libc.so") < 0:
        check(fs and fs[-1] in ROOTS, "thread %s: stack does not end at a root: %s" % (t["name"], fs[-3:]))


def frame(t, name):
    for f in t["frames"]:
        if f["function"] == name:
            return f
    return None


def test_waits():
    with Fixture("waits", progress=True) as fx:
        port = int(fx.lines[0].split()[1])
        d = settled(fx.pid)
        th = by_name(d)
        check(d["pid"] == fx.pid and d["exe"].endswith("/waits"), "pid/exe: %r %r" % (d["pid"], d["exe"]))
        check(d["threads"][0]["tid"] == fx.pid, "main thread is not listed first")
        tids = [t["tid"] for t in d["threads"][1:]]
        check(tids == sorted(tids), "threads after the main one are not sorted by tid")

        holder, waiter = th["holder"], th["mutex-waiter"]
        check(waiter["blocked_on"]["kind"] == "mutex", "mutex-waiter blocked_on: %r" % waiter["blocked_on"])
        check(waiter["blocked_on"]["owner_tid"] == holder["tid"],
              "mutex owner %r, holder is %d" % (waiter["blocked_on"]["owner_tid"], holder["tid"]))
        f = frame(waiter, "wait_for_lock")
        check(f is not None and f["file"].endswith("tests/targets/waits.c") and f["line"] > 0,
              "wait_for_lock frame with file:line: %r" % f)
        check(waiter["syscall"] == "futex", "mutex-waiter syscall %r" % waiter["syscall"])

        check(th["cond-waiter"]["blocked_on"]["kind"] == "futex", "cond-waiter blocked_on")
        # The condition variable itself, as gdb's `print &cond` names it,
        # not the futex word inside it.
        cond = int(next(l for l in fx.lines if l.startswith("cond ")).split()[1], 16)
        got = int(th["cond-waiter"]["blocked_on"]["address"], 16)
        check(got == cond, "cond-waiter waits on 0x%x, the pthread_cond_t is at 0x%x" % (got, cond))
        check(frame(th["cond-waiter"], "wait_for_signal") is not None, "wait_for_signal frame")

        pr = th["pipe-reader"]["blocked_on"]
        check(pr["kind"] == "fd" and pr["description"] == "pipe" and pr["target"].startswith("pipe:["),
              "pipe-reader blocked_on: %r" % pr)
        acc = th["acceptor"]["blocked_on"]
        check(acc["description"] == "TCP 127.0.0.1:%d listen" % port, "acceptor blocked_on: %r" % acc)
        check(th["acceptor"]["syscall"] in ("accept", "accept4"), "acceptor syscall")
        ep = th["epoller"]["blocked_on"]
        # Each watched fd described as the fd itself would be.
        check(re.match(r"^epoll on fd \d+ \(pipe\)$", ep["description"]) is not None,
              "epoller blocked_on: %r" % ep)

        a, b = th["deadlock-a"], th["deadlock-b"]
        check(a["blocked_on"]["owner_tid"] == b["tid"] and b["blocked_on"]["owner_tid"] == a["tid"],
              "deadlock owners: %r %r" % (a["blocked_on"], b["blocked_on"]))
        check(d["deadlocks"] == [{"threads": sorted([a["tid"], b["tid"]])}],
              "deadlocks: %r" % d["deadlocks"])

        ip = th["inline-parker"]
        fs = functions(ip)
        i = fs.index("park_inline") if "park_inline" in fs else -1
        check(i >= 0 and ip["frames"][i]["inlined"] and ip["frames"][i]["offset"] is None,
              "park_inline is not an inlined frame: %s" % fs)
        check(i >= 0 and fs[i + 1] == "parked_inline_caller" and not ip["frames"][i + 1]["inlined"],
              "park_inline is not followed by its caller: %s" % fs)

        deep = th["deep"]
        n = sum(1 for f in functions(deep) if f.startswith("recurse"))
        check(n >= 150, "deep thread shows %d recurse frames, want >= 150" % n)
        check(frame(deep, "deep_park") is not None, "deep_park frame")

        # The spinner runs: it is usually caught inside the inlined mix().
        def spinner_inlined():
            t = by_name(dump_json(fx.pid))["spinner"]
            return t["frames"] and t["frames"][0]["function"] == "mix" and t["frames"][0]["inlined"]
        check(wait_for(spinner_inlined, timeout=30, step=0.05), "spinner never caught in inlined mix()")
        check(frame(th["spinner"], "spin") is not None, "spin frame")

        # Stopping a thread in epoll_wait wakes it with EINTR; pprofc makes
        # the call again instead (attach/restart.c): the program never sees it.
        for _ in range(10):
            dump_json(fx.pid)
        with open(fx.progress + ".eintr") as f:
            eintr = int(f.read().split()[0])
        check(eintr == 0, "epoll_wait saw EINTR %d times after 10+ dumps" % eintr)
        check_schema(d)
        check_durations(fx)
        check_text(fx.pid, port)
        check_untouched(fx.pid, label="waits")
        check_progress(fx, "waits")
        # Last: eu-stack stops every thread (EINTR, wait clocks reset).
        eu = eu_stacks(fx.pid)
        for t in d["threads"]:
            check_complete(t, eu)


THREAD_KEYS = {"tid": int, "name": str, "state": str, "reason": str, "detail": (str, type(None)),
               "wait_seconds": (float, int, type(None)), "syscall": (str, type(None)),
               "wchan": (str, type(None)), "blocked_on": (dict, type(None)), "frames": list,
               "complete": bool, "stack_taken": bool, "stack_error": (str, type(None)),
               "goroutine": (int, type(None))}
FRAME_KEYS = {"pc": str, "function": (str, type(None)), "file": (str, type(None)),
              "line": (int, type(None)), "inlined": bool, "module": (str, type(None)),
              "offset": (str, type(None))}


def check_schema(d):
    check(set(d) == {"pid", "exe", "cmdline", "time", "go", "goroutines", "threads", "deadlocks"},
          "top-level keys %s" % set(d))
    # A C program: nothing of Go (test_goroutines.py checks a Go one).
    check(d["go"] is None and d["goroutines"] is None, "go %r" % d["go"])
    check(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", d["time"]) is not None, "time %r" % d["time"])
    check(isinstance(d["cmdline"], list) and d["cmdline"][0].endswith("waits"), "cmdline %r" % d["cmdline"])
    for t in d["threads"]:
        check(set(t) == set(THREAD_KEYS), "thread keys %s" % set(t))
        for k, ty in THREAD_KEYS.items():
            check(isinstance(t.get(k), ty), "thread %s: %s is %r" % (t.get("name"), k, t.get(k)))
        for f in t["frames"]:
            check(set(f) == set(FRAME_KEYS), "frame keys %s" % set(f))
            for k, ty in FRAME_KEYS.items():
                check(isinstance(f.get(k), ty), "frame %s: %s is %r" % (f.get("function"), k, f.get(k)))
            check(re.match(r"^0x[0-9a-f]+$", f["pc"]) is not None, "frame pc %r" % f["pc"])


def check_durations(fx):
    """A thread that has not run for a while shows how long (sched's
    exec_start against pprofc's own); a running one shows none."""
    time.sleep(1.5)  # the sleeper sleeps for an hour: it cannot run meanwhile
    r = pprofc("dump-threads", fx.pid)
    check(re.search(r'"sleeper" \[sleep, (1 second|\d+ seconds)\]:', r.stdout) is not None, "duration in the text header")
    d = dump_json(fx.pid)
    upper = time.monotonic() - fx.started + 1.0
    th = by_name(d)
    w = th["sleeper"]["wait_seconds"]
    check(w is not None and 1.4 <= w <= upper, "sleeper wait_seconds %r, want 1.4..%.1f" % (w, upper))
    check(th["spinner"]["wait_seconds"] is None, "running thread has wait_seconds %r" % th["spinner"]["wait_seconds"])


def check_text(pid, port):
    r = pprofc("dump-threads", pid)
    check(r.returncode == 0, "text dump exit %d: %s" % (r.returncode, r.stderr))
    out = r.stdout
    headers = re.findall(r'^thread (\d+) "([^"]*)" \[([^\]]*)\]:$', out, re.M)
    check(len(headers) == 14, "debug=2 has %d thread headers, want 14" % len(headers))
    check(re.search(r'"mutex-waiter" \[mutex wait \(0x[0-9a-f]+ held by thread \d+\)', out) is not None,
          "mutex wait header")
    check('[IO wait (fd ' in out and 'TCP 127.0.0.1:%d listen)' % port in out, "acceptor header")
    check(re.search(r'^park_inline\(\.\.\.\) \(inlined\)\n\t\S+waits\.c:\d+\n', out, re.M) is not None,
          "inlined frame in debug=2")
    check(re.search(r'^wait_for_lock\(\.\.\.\)\n\t\S+waits\.c:\d+ \+0x[0-9a-f]+\n', out, re.M) is not None,
          "physical frame with +offset in debug=2")
    check(re.search(r'^deadlock: thread \d+ "deadlock-[ab]" waits for thread \d+ "deadlock-[ab]" '
                    r'waits for thread \d+ "deadlock-[ab]"$', out, re.M) is not None, "deadlock line")
    r = pprofc("dump-threads", "--debug=1", pid)
    check(r.returncode == 0 and r.stdout.startswith("thread profile: total 14\n"),
          "debug=1 header: %r" % r.stdout[:40])
    check(re.search(r"^2 @( 0x[0-9a-f]+)+$", r.stdout, re.M) is not None,
          "debug=1 groups the two deadlocked threads")
    check(re.search(r"^#\t0x[0-9a-f]+\tlock_both\+0x[0-9a-f]+\t\S+waits\.c:\d+$", r.stdout, re.M)
          is not None, "debug=1 frame line")


def test_cxx():
    if not fixture_path("cxx_names"):
        print("cxx fixture not built: C++ compiler missing")
        return
    with Fixture("cxx_names") as fx:
        def names():
            th = by_name(dump_json(fx.pid))
            return th if "cxx-worker" in th and "fixture::Worker<int>::park" in functions(th["cxx-worker"]) else None
        th = wait_for(names, timeout=20, step=0.1)
        check(th is not None, "C++ names not demangled")
        if th:
            fs = functions(th["cxx-worker"])
            check("fixture::Worker<int>::run" in fs, "C++ run frame: %s" % fs)
            check("fixture::detail::sleep_forever" in functions(th["cxx-sleeper"]),
                  "C++ sleep_forever: %s" % functions(th["cxx-sleeper"]))
            check_complete(th["cxx-worker"], eu_stacks(fx.pid))
        check_untouched(fx.pid, label="cxx")


def test_rust():
    if not fixture_path("rust_names"):
        print("rust fixture not built: rustc missing")
        return
    with Fixture("rust_names") as fx:
        def names():
            th = by_name(dump_json(fx.pid))
            w = th.get("rust-worker")
            return th if w and "rust_names::fixture::Parker::park" in functions(w) else None
        th = wait_for(names, timeout=20, step=0.1)
        check(th is not None, "Rust names not demangled")
        if th:
            fs = functions(th["rust-worker"])
            check("rust_names::fixture::Parker::run" in fs, "Rust run frame: %s" % fs)
            check(not any(re.search(r"::h[0-9a-f]{16}$", f) for f in fs), "Rust hash left in names: %s" % fs)
        check_untouched(fx.pid, label="rust")


def test_go():
    """Go programs, without and with cgo: every thread's stack read without
    stopping it equals the stack taken by stopping it (--stop-all), or is a
    prefix of it marked incomplete.  Without cgo, every stack reaches one of
    Go's roots."""
    for name in ("go_threads", "go_cgo"):
        if not fixture_path(name):
            print("%s fixture not built: go missing" % name)
            continue
        check_go(name)


def check_go(name):
    with Fixture(name) as fx:
        # Go preempts the spinner every 10 ms (runtime.gopreempt_m): a dump
        # may catch it in the scheduler instead.  Dump until one catches it.
        def caught():
            d = dump_json(fx.pid)
            return d if sum("main.spin" in functions(t) for t in d["threads"]) == 1 else None
        d = wait_for(caught, timeout=20, step=0.1) or dump_json(fx.pid)
        spinning = [t for t in d["threads"] if "main.spin" in functions(t)]
        check(len(spinning) == 1, "%s: %d threads in main.spin, want 1" % (name, len(spinning)))
        if spinning:
            check(functions(spinning[0])[-1] == "runtime.goexit",
                  "%s: the spinner's stack ends at %s" % (name, functions(spinning[0])[-1]))
        for t in d["threads"]:
            if name == "go_threads":
                check(t["complete"], "Go thread %d: stack incomplete: %s" % (t["tid"], functions(t)))
        # Go's idle threads wake now and then: compare only the threads
        # that had not run since before the first dump, by the second
        # dump's own account (its wait_seconds are read before it stops
        # anything, to 0.1 s).
        wait_for(lambda: time.monotonic() - fx.started > 2, timeout=10)
        t0 = time.monotonic()
        d = dump_json(fx.pid)
        stopped = {t["tid"]: t for t in dump_json(fx.pid, "--stop-all")["threads"]}
        elapsed = time.monotonic() - t0 + 0.1
        compared = 0
        for t in d["threads"]:
            s2 = stopped.get(t["tid"])
            if t["state"] == "S" and s2 and (s2["wait_seconds"] or 0) > elapsed:
                compared += 1
                a, b = functions(t), functions(s2)
                check((a == b and t["complete"] == s2["complete"]) or
                      (not t["complete"] and b[:len(a)] == a),
                      "%s thread %d: %s (complete %s) read without stopping, %s (complete %s) stopped"
                      % (name, t["tid"], a, t["complete"], b, s2["complete"]))
        check(compared > 0, "%s: no idle thread to compare with --stop-all" % name)
        check_untouched(fx.pid, label=name)


def test_deleted_binary():
    tmp = tempfile.mkdtemp(prefix="pprofc-deleted-")
    copy = os.path.join(tmp, "waits-copy")
    shutil.copy(fixture_path("waits"), copy)
    with Fixture("waits", path=copy) as fx:
        os.unlink(copy)
        d = dump_json(fx.pid)
        check(d["exe"].endswith("(deleted)"), "exe of a deleted binary: %r" % d["exe"])
        th = by_name(d)
        check("wait_for_lock" in functions(th["mutex-waiter"]),
              "deleted binary not symbolized: %s" % functions(th["mutex-waiter"]))
        check_untouched(fx.pid, label="deleted")
    shutil.rmtree(tmp, ignore_errors=True)


def compressed_sections(path):
    """Names of the SHF_COMPRESSED sections of an ELF file (eu-readelf)."""
    r = subprocess.run(["eu-readelf", "-S", path], capture_output=True, text=True)
    names = []
    for line in r.stdout.splitlines():
        m = re.match(r"\s*\[\s*\d+\]\s+(\S+)\s+\S+\s+\S+\s+\S+\s+\S+\s+\S+\s+(\S*)", line)
        if m and "C" in m.group(2):
            names.append(m.group(1))
    return names if r.returncode == 0 else None


def libc_debug_file(pid):
    """(build ID, path) of the separate debug file of the target's libc."""
    with open("/proc/%d/maps" % pid) as f:
        libc = next((l.split()[-1] for l in f if "/libc.so" in l), None)
    if not libc:
        return None, None
    r = subprocess.run(["eu-readelf", "-n", libc], capture_output=True, text=True)
    m = re.search(r"Build ID: ([0-9a-f]+)", r.stdout)
    if not m:
        return None, None
    bid = m.group(1)
    path = "/usr/lib/debug/.build-id/%s/%s.debug" % (bid[:2], bid[2:])
    return bid, path if os.path.exists(path) else None


def frames_of(pid, env):
    r = pprofc("dump-threads", "--format=json", pid, env=env)
    check(r.returncode == 0, "dump-threads: %s" % r.stderr)
    d = json.loads(r.stdout) if r.returncode == 0 else {"threads": []}
    # The spinner and the ticker move between dumps; the others stay put.
    return [[(f["function"], f["file"], f["line"], f["inlined"]) for f in t["frames"]]
            for t in sorted(d["threads"], key=lambda t: t["tid"])
            if t["name"] not in ("spinner", "ticker")]


def test_debug_cache():
    """A compressed separate debug file (libc6-dbg's) is inflated once into
    $XDG_CACHE_HOME/pprofc/debug/<build-id>.debug and used from then on:
    the frames, files and lines are the same as with PPROFC_CACHE=off.  A
    damaged copy is made again; a cache directory others may write to is
    not used."""
    if shutil.which("eu-readelf") is None:
        print("eu-readelf missing: debug cache test skipped")
        return
    cache = tempfile.mkdtemp(prefix="pprofc-cache-")
    env = dict(os.environ, XDG_CACHE_HOME=cache)
    with Fixture("waits") as fx:
        bid, debug = libc_debug_file(fx.pid)
        if not debug or not compressed_sections(debug):
            print("no compressed debug file for libc (libc6-dbg): debug cache test skipped")
            check_untouched(fx.pid, label="debug cache")
            shutil.rmtree(cache, ignore_errors=True)
            return
        first = frames_of(fx.pid, env)
        copy = os.path.join(cache, "pprofc", "debug", bid + ".debug")
        check(os.path.exists(copy), "no inflated copy of %s at %s" % (debug, copy))
        if os.path.exists(copy):
            check(compressed_sections(copy) == [], "the copy still has compressed sections: %r"
                  % compressed_sections(copy))
            check(os.stat(copy).st_mode & 0o777 == 0o600, "the copy is readable by others")
        again = frames_of(fx.pid, env)
        plain = frames_of(fx.pid, dict(os.environ, PPROFC_CACHE="off"))
        check(first == plain and again == plain, "frames differ with the debug cache")
        if os.path.exists(copy):
            size = os.path.getsize(copy)
            os.truncate(copy, 4096)     # as a crash before the data reached the disk
            check(frames_of(fx.pid, env) == plain, "frames differ after the copy was damaged")
            check(os.path.getsize(copy) == size, "a damaged copy was not made again")
        check(any("../sysdeps/" in str(fs) or "nptl/" in str(fs) for fs in again),
              "no glibc source lines with the debug cache")
        shared = tempfile.mkdtemp(prefix="pprofc-cache-open-")
        os.makedirs(os.path.join(shared, "pprofc"))
        os.chmod(os.path.join(shared, "pprofc"), 0o777)
        frames_of(fx.pid, dict(os.environ, XDG_CACHE_HOME=shared))
        check(not os.path.exists(os.path.join(shared, "pprofc", "debug")),
              "a world-writable cache directory was used")
        shutil.rmtree(shared, ignore_errors=True)
        check_untouched(fx.pid, label="debug cache")
    shutil.rmtree(cache, ignore_errors=True)


def test_other_mount_namespace():
    """The target sees its binary at a path that does not exist on the host:
    pprofc must read it through /proc/PID/root."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        print("mount namespace test needs root and unshare")
        return
    inner = tempfile.mkdtemp(prefix="pprofc-ns-")
    script = ('mount -t tmpfs none "%s" && cp "%s" "%s/waits" && exec "%s/waits"'
              % (inner, fixture_path("waits"), inner, inner))
    proc = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                            stdout=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:
            if line.strip() == "ready":
                break
        check(not os.path.exists(os.path.join(inner, "waits")), "the namespace leaked onto the host")
        d = dump_json(proc.pid)
        th = by_name(d)
        check("mutex-waiter" in th and "wait_for_lock" in functions(th["mutex-waiter"]),
              "binary in another mount namespace not symbolized")
        check_untouched(proc.pid, label="mntns")
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(inner, ignore_errors=True)


def test_blocked_threads_not_stopped():
    """Threads blocked in system calls are read without stopping them: their
    stacks equal those taken by stopping every thread (--stop-all), with
    and without frame pointers; their wait clocks are not reset; and
    epoll_wait never sees EINTR (while a plain ptrace interrupt does cause
    one, so this check can fail)."""
    for name in ("waits", "waits_fp"):
        with Fixture(name, progress=True) as fx:
            settled(fx.pid)
            r = pprofc("dump-threads", "-v", "--format=json", fx.pid)
            quiet = by_name(json.loads(r.stdout))
            # Every thread blocked in a system call in this very dump was read
            # without stopping it (the ticker wakes every 10 ms, so how many
            # are blocked at a given moment varies: 12 or 13 of the 14).
            blocked = sum(1 for t in quiet.values() if t["reason"] != "running" and t["syscall"])
            m = re.search(r"\((\d+) of blocked threads, without stopping them\)", r.stderr)
            check(blocked >= 12 and m is not None and int(m.group(1)) == blocked,
                  "%s: %d blocked threads, not all read without stopping: %r" % (name, blocked, r.stderr))
            # A dump that woke the sleeper would restart its clock: after
            # 1.2 s it would say about 1.2 s, whatever it said before.  So
            # the first reading must be long enough to tell (dumps are
            # fast: it may be 0.1 s right after start-up); dumps while
            # waiting for that are dumps too.
            def slept_a_second():
                w = by_name(dump_json(fx.pid))["sleeper"]["wait_seconds"]
                return w if w is not None and w >= 1.0 else None
            w1 = wait_for(slept_a_second, timeout=10, step=0.2)
            time.sleep(1.2)
            w2 = by_name(dump_json(fx.pid))["sleeper"]["wait_seconds"]
            check(w1 is not None and w2 is not None and w2 >= w1 + 1.0,
                  "%s: the sleeper's wait clock was reset by a dump: %r then %r" % (name, w1, w2))
            stopped = by_name(dump_json(fx.pid, "--stop-all"))
            for tname, t in quiet.items():
                # the ticker wakes every 10 ms: two dumps may catch it apart
                if t["reason"] == "running" or tname == "ticker":
                    continue
                check(t["complete"], "%s/%s: incomplete without stopping: %s" % (name, tname, t["stack_error"]))
                check(functions(t) == functions(stopped[tname]),
                      "%s/%s: stacks differ:\n  quiet   %s\n  stopped %s"
                      % (name, tname, functions(t)[:8], functions(stopped[tname])[:8]))
            with open(fx.progress + ".eintr") as f:
                check(int(f.read().split()[0]) == 0, "%s: epoll_wait saw EINTR" % name)
            interrupt_once(fx.pid, stopped["epoller"]["tid"])
            check(wait_for(lambda: int(open(fx.progress + ".eintr").read().split()[0]) == 1, 10),
                  "%s: a raw PTRACE_INTERRUPT did not cause EINTR: the EINTR check cannot fail" % name)
            check_untouched(fx.pid, label=name)


def interrupt_once(pid, tid):
    """Stops and resumes one thread with raw ptrace, as a naive tool would,
    from a helper process (the kernel detaches it when it exits)."""
    code = ("import ctypes,os,sys\n"
            "libc=ctypes.CDLL(None,use_errno=True)\n"
            "t=%d\n"
            "assert libc.ptrace(0x4206,t,None,None)==0\n"
            "assert libc.ptrace(0x4207,t,None,None)==0\n"
            "os.waitpid(t,0x40000000)\n"
            "libc.ptrace(17,t,None,None)\n" % tid)
    subprocess.run([sys.executable, "-c", code], check=False, timeout=30)


def test_stale_frames():
    """A frame-pointer frame blocked in poll() over a buffer full of stale
    return addresses (tests/targets/stale_frames.c): read without stopping
    the thread, its stack is the one --stop-all gives, with none of the
    functions that left those addresses (a guessed rbp used to add
    "outer" between blocker and stale_main, and call the stack complete)."""
    with Fixture("stale_frames") as fx:
        quiet = by_name(dump_json(fx.pid))["stale"]
        stopped = by_name(dump_json(fx.pid, "--stop-all"))["stale"]
        fs = functions(quiet)
        check("blocker" in fs and "outer" not in fs and "middle" not in fs,
              "stale frames invented: %s" % fs)
        check(fs == functions(stopped) and quiet["complete"] and stopped["complete"],
              "stale_frames: read without stopping %s (complete %s), stopped %s"
              % (fs, quiet["complete"], functions(stopped)))
        check_untouched(fx.pid, label="stale_frames")


# Stops a thread of PID at its birth: traces PID's main thread with
# PTRACE_O_TRACECLONE, so the thread its next clone makes starts in a ptrace
# stop before its first instruction; then stops the process (SIGSTOP
# injected on the main thread's detach) and lets both threads go into that
# group stop.  Prints the new thread's tid and the kernel's pc, rax and sp.
STOP_AT_BIRTH = """
import ctypes, os, signal, sys, time
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
pid = int(sys.argv[1])
assert libc.ptrace(0x4206, pid, None, 8) == 0          # SEIZE, O_TRACECLONE
print("seized", flush=True)
_, st = os.waitpid(pid, 0x40000000)                    # the clone event
assert st >> 8 == signal.SIGTRAP | 3 << 8, hex(st)
msg = ctypes.c_ulong()
libc.ptrace(0x4201, pid, None, ctypes.byref(msg))      # GETEVENTMSG: new tid
tid = msg.value
os.waitpid(tid, 0x40000000)                            # its first stop
regs = (ctypes.c_ulonglong * 27)()
assert libc.ptrace(12, tid, None, ctypes.byref(regs)) == 0
os.kill(pid, signal.SIGSTOP)
libc.ptrace(7, pid, None, None)                        # CONT: takes the SIGSTOP
_, st = os.waitpid(pid, 0x40000000)
assert os.WIFSTOPPED(st) and os.WSTOPSIG(st) == signal.SIGSTOP, hex(st)
libc.ptrace(17, pid, None, signal.SIGSTOP)             # DETACH, into the stop
# Only once the main thread has entered the group stop (which marks the
# new thread's stop pending) may the new thread go: it then stops again
# before its first instruction.  Detached sooner, it would run on.
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    with open("/proc/%d/task/%d/stat" % (pid, pid)) as f:
        if f.read().rsplit(")", 1)[1].split()[0] == "T":
            break
    time.sleep(0.001)
libc.ptrace(17, tid, None, None)
print(tid, regs[16], regs[10], regs[19], flush=True)
"""

NEWBORN_TARGET = """
import sys, threading
print("ready", flush=True)
sys.stdin.readline()
threading.Thread(target=lambda: print("born", flush=True)).start()
sys.stdin.readline()
"""


def test_newborn_thread():
    """A thread caught before its first instruction (a group stop landing
    as it is born; seen on the waits fixture under the sanitizers) has one
    frame, the instruction after clone3's syscall, and that frame is its
    root: the dump used to walk on with the parent's rbp, add a frame
    nobody called and call the stack incomplete.  The thread is python3's
    (Debian's binary, glibc's pthread_create), stopped at birth with raw
    ptrace; its pc is the kernel's, read by that ptrace."""
    target = subprocess.Popen([sys.executable, "-c", NEWBORN_TARGET], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    helper = None
    try:
        check(target.stdout.readline().strip() == "ready", "newborn: python3 did not start")
        helper = subprocess.Popen([sys.executable, "-c", STOP_AT_BIRTH, str(target.pid)],
                                  stdout=subprocess.PIPE, text=True)
        check(helper.stdout.readline().strip() == "seized", "newborn: could not trace python3")
        target.stdin.write("\n")
        target.stdin.flush()
        out, _ = helper.communicate(timeout=30)
        if not check(helper.returncode == 0 and out.strip(), "newborn: could not stop a thread at birth"):
            return
        tid, pc, rax, sp = (int(v) for v in out.split())
        check(rax == 0 and wait_for(lambda: set(thread_states(target.pid).values()) == {"T"}),
              "newborn: the thread was not stopped at birth (rax %d, states %s)"
              % (rax, thread_states(target.pid)))
        for how in ((), ("--stop-all",)):
            t = [t for t in dump_json(target.pid, *how)["threads"] if t["tid"] == tid]
            if not check(t, "newborn %s: thread %d not in the dump" % (how, tid)):
                continue
            t = t[0]
            check(t["stack_taken"] and t["complete"] and [int(f["pc"], 16) for f in t["frames"]] == [pc],
                  "newborn %s: stack %s (pcs %s, kernel's pc 0x%x, complete %s, %s)"
                  % (how, functions(t), [f["pc"] for f in t["frames"]], pc, t["complete"], t["stack_error"]))
        os.kill(target.pid, signal.SIGCONT)
        check(target.stdout.readline().strip() == "born", "newborn: the thread did not run on")
        check_untouched(target.pid, label="newborn")
    finally:
        if helper and helper.poll() is None:
            helper.kill()
        target.kill()
        target.wait()


def memo_view(pid, memo):
    """A dump's stacks, by tid: (pc, function, file, line, inlined) per frame
    and completeness; and how many stacks -v says came from the memo."""
    env = dict(os.environ, PPROFC_UNWIND_MEMO="1" if memo else "0")
    r = pprofc("dump-threads", "--format=json", "-v", pid, env=env)
    check(r.returncode == 0, "dump-threads (memo %s): %s" % (memo, r.stderr))
    if r.returncode != 0:
        return {}, 0
    m = re.search(r"(\d+) more proven the same as one of them", r.stderr)
    stacks = {t["tid"]: ([(f["pc"], f["function"], f["file"], f["line"], f["inlined"]) for f in t["frames"]],
                         t["complete"]) for t in json.loads(r.stdout)["threads"]}
    return stacks, int(m.group(1)) if m else -1


def check_memo(label, pid, moving=()):
    """The memo gives what libdwfl's walk gives (memo off, the oracle here
    for every frame and its line), and eu-stack agrees on each stack's pcs;
    threads in moving run meanwhile and are left out."""
    on, hits = memo_view(pid, True)
    off, none = memo_view(pid, False)
    eu = eu_stacks(pid)
    check(hits > 0 and none == 0, "%s: stacks from the memo: %d (on), %d (off)" % (label, hits, none))
    same = sum(1 for t in on if t not in moving and on[t] == off.get(t))
    kept = [t for t in on if t not in moving]
    check(same == len(kept) and kept, "%s: memo on and off differ in %d of %d threads"
          % (label, len(kept) - same, len(kept)))
    agree = sum(1 for t in kept if [int(f[0], 16) for f in on[t][0] if not f[4]] == eu.get(t))
    check(agree == len(kept), "%s: %d of %d stacks differ from eu-stack's" % (label, len(kept) - agree, len(kept)))
    print("memo %s: %d threads, %d stacks from the memo, all equal to libdwfl's walk and eu-stack's"
          % (label, len(kept), hits))


# Twenty threads waiting in the same Event.wait(): a pool, as servers have.
POOL_TARGET = """
import threading, sys
ev = threading.Event()
ts = [threading.Thread(target=ev.wait) for _ in range(20)]
for t in ts:
    t.start()
print("ready", flush=True)
sys.stdin.readline()
"""


def all_blocked(pid):
    """Every thread of pid sleeps in a system call (so two dumps agree)."""
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/syscall" % (pid, tid)) as f:
                if f.read().split()[0] in ("running", "-1"):
                    return False
        except OSError:
            return False
    return all(s == "S" for s in thread_states(pid).values())


def test_unwind_memo():
    """Threads read without stopping them, in the same call with the same
    callers, are unwound once (symbolize/memo.c): exactly, against the walk
    without the memo and against eu-stack; on the many_threads fixture and
    a pool of Debian's python3."""
    with Fixture("many_threads", args=["60", "5"]) as fx:
        check_memo("many_threads", fx.pid)
        check_untouched(fx.pid, label="memo many_threads")
    py = shutil.which("python3")
    p = subprocess.Popen([py, "-c", POOL_TARGET], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        check(p.stdout.readline().strip() == "ready", "python3 pool never ready")
        check(wait_for(lambda: all_blocked(p.pid), 30), "python3 pool never settled")
        check_memo("python3 pool", p.pid)
        check_untouched(p.pid, label="memo python3")
    finally:
        p.kill()
        p.wait()


def test_uninterruptible_thread():
    """A thread in state D (here: the parent of a vfork) is listed with its
    state; it is not stopped (a stop would only land when it wakes), but
    blocked in a system call its stack is read without stopping it."""
    with Fixture("dstate") as fx:
        r = pprofc("dump-threads", "-v", "--format=json", fx.pid)
        d = json.loads(r.stdout)
        t = by_name(d).get("vforker")
        check(t is not None and t["state"] == "D" and t["reason"] == "disk wait",
              "vforker thread: %r" % ((t and (t["state"], t["reason"])),))
        if t:
            # vfork keeps its return address in a register while it waits:
            # without stopping the thread the stack ends there, and says so.
            check(t["stack_taken"] and functions(t)[:1] == ["__vfork"] and
                  (t["complete"] or "unknown" in (t["stack_error"] or "")),
                  "D-state thread's stack: %s %r" % (functions(t), t["stack_error"]))
        r = pprofc("dump-threads", fx.pid)
        check('"vforker" [disk wait' in r.stdout, "D-state thread in text: %r" % r.stdout[-200:])
        check(by_name(d)["dstate"]["complete"], "the main thread of dstate was not dumped")
        check_untouched(fx.pid, label="dstate")


if __name__ == "__main__":
    require_ptrace()
    test_waits()
    test_cxx()
    test_rust()
    test_go()
    test_debug_cache()
    test_deleted_binary()
    test_other_mount_namespace()
    test_uninterruptible_thread()
    test_newborn_thread()
    test_blocked_threads_not_stopped()
    test_stale_frames()
    test_unwind_memo()
    done()
