#!/usr/bin/env python3
"""Several processes in one profile or dump (attach PID PID..., --children,
run --children), checked against oracles nobody here wrote:

  - nginx from Debian (master and 2 workers) under HTTP load: one
    `attach --children MASTER` CPU profile, with `perf record -p PIDS` over
    the same window: each pid's share of the CPU within 10 points of perf's;
    `go tool pprof -tagfocus=pid=N` keeps exactly that pid's samples, and
    -tags names every process "nginx";
  - `dump-threads --children MASTER` (JSON and text): every thread of every
    process, as the kernel lists them in /proc/PID/task, each process once
    with its argv; blocked threads' stacks equal eu-stack's (frame by frame);
  - `run --children -- env cpu_split`: followed through exec;
  - `run --children -- sh -c 'cpu_split A 2 | cpu_split B 2'`: both
    commands of the pipeline in the profile under their pids, each with the
    functions its own clock measured (share_c about half of its CPU), and
    their executable mapped once per process (the file holds one Mapping
    per start address: ASLR gives each its own);
  - `attach PID1 PID2` (perf engine) of two fixtures, cpu_split and waits:
    both pids in the profile, each under its own process name, with its
    own hot functions only (share_c; waits' spin), its executable mapped
    once, and its share of the CPU within 10 points of the kernel's
    (/proc/PID/task/*/schedstat over the run); `dump-threads PID1 PID2`:
    each process's threads as /proc lists them, and every thread blocked
    in a call with the same stack, frame by frame, as `dump-threads PID`
    of that process alone and as eu-stack;
  - errors: one bad PID among several is one line on stderr, exit 1, no
    file, and the good process untouched; --tid with several PIDs, and
    --profile trace or threadcreate with several PIDs or --children
    (attach and run), are usage errors;
  - safety: pprofc killed (SIGKILL) during a wall profile of two processes
    (ptrace ticks) leaves none of them stopped or traced.
"""
import gzip
import json
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
from fixture import (PPROFC, Fixture, check, check_untouched, done, dump_json,  # noqa: E402
                     eu_stacks, fixture_path, gopprof, pb_fields, pprofc, raw_samples,
                     require_ptrace, sampling, tids, wait_for)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load(port, stop):
    import urllib.error
    import urllib.request
    while not stop.is_set():
        try:
            urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=2).read()
        except (urllib.error.URLError, OSError):
            pass


def children_of(pid):
    r = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return sorted(int(x) for x in r.stdout.split())


def pid_totals(path):
    """{pid: nanoseconds} of a CPU profile, by go tool pprof -raw."""
    out = {}
    for _, ns, lb in raw_samples(path):
        pid = int(lb["pid"]) if "pid" in lb else -1
        out[pid] = out.get(pid, 0) + ns
    return out


def perf_shares(data, pids):
    """{pid: share %} of perf's samples (a fixed task-clock period: each
    sample is the same CPU time)."""
    r = subprocess.run(["perf", "script", "-i", data, "-F", "pid"], capture_output=True, text=True,
                       timeout=120)
    counts = {}
    for line in r.stdout.split():
        if line.strip().isdigit():
            counts[int(line)] = counts.get(int(line), 0) + 1
    total = sum(counts.get(p, 0) for p in pids)
    return {p: 100.0 * counts.get(p, 0) / total for p in pids} if total else {}, total


def nginx_profile(tmp, pids, port):
    out, data = os.path.join(tmp, "nginx.pb.gz"), os.path.join(tmp, "perf.data")
    stop = threading.Event()
    loaders = [threading.Thread(target=load, args=(port, stop)) for _ in range(3)]
    for t in loaders:
        t.start()
    try:
        perf = subprocess.Popen(["perf", "record", "-q", "-e", "task-clock", "-c", "1000000", "-o", data,
                                 "-p", ",".join(map(str, pids)), "--", "sleep", "4"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        r = pprofc("attach", "--children", pids[0], "--seconds", "4", "--hz", "1000", "-o", out)
        perf_err = perf.communicate(timeout=60)[1]
    finally:
        stop.set()
        for t in loaders:
            t.join()
    if not check(r.returncode == 0, "attach --children nginx: %s" % r.stderr.strip()):
        return
    check("3 processes in the profile" in r.stderr, "summary: %s" % r.stderr.strip())
    mine = pid_totals(out)
    check(set(mine) <= set(pids), "pids in the profile %s, nginx's %s" % (sorted(mine), pids))
    total = sum(mine.values())
    if not check(perf.returncode == 0 and os.path.exists(data), "perf record: %s" % perf_err.strip()):
        return
    theirs, n = perf_shares(data, pids)
    shares = {p: 100.0 * mine.get(p, 0) / total for p in pids} if total else {}
    print("nginx CPU by pid, pprofc (%.2f s) vs perf (%d samples of 1 ms): %s" % (
        total / 1e9, n, ", ".join("%d %.1f%%/%.1f%%" % (p, shares.get(p, 0), theirs.get(p, 0)) for p in pids)))
    check(n >= 200, "perf saw only %d ms of nginx CPU: too little load to compare" % n)
    for p in pids:
        check(abs(shares.get(p, 0) - theirs.get(p, 0)) <= 10,
              "pid %d: %.1f%% of pprofc's profile, %.1f%% of perf's" % (p, shares.get(p, 0), theirs.get(p, 0)))
    # -tagfocus keeps one process's samples, and -tags names them.
    for p in pids:
        if not mine.get(p):
            continue
        text, _ = gopprof("-top", "-unit=ms", "-nodefraction=0", "-tagfocus=pid=%d" % p, out)
        m = re.search(r"Showing nodes accounting for ([\d.]+)ms", text)
        got = float(m.group(1)) if m else -1
        check(abs(got - mine[p] / 1e6) <= 1 + 0.01 * mine[p] / 1e6,
              "-tagfocus=pid=%d shows %.1f ms, the pid's samples hold %.1f ms" % (p, got, mine[p] / 1e6))
    tags, _ = gopprof("-tags", out)
    check(re.search(r"process: Total.*\n\s+\S+ \(\s*100%\): nginx", tags) is not None,
          "every sample's process is nginx: %s" % tags)


def pcs(t):
    out = []
    for f in t["frames"]:
        pc = int(f["pc"], 16)
        if not out or out[-1] != pc:
            out.append(pc)
    return out


def nginx_dump(pids):
    """dump-threads --children against /proc/PID/task and eu-stack."""
    r = pprofc("dump-threads", "--format=json", "--children", pids[0])
    if not check(r.returncode == 0, "dump-threads --children: %s" % r.stderr.strip()):
        return
    d = json.loads(r.stdout)
    procs = {p["pid"]: p for p in d["processes"]}
    check(sorted(procs) == sorted(pids), "processes dumped %s, nginx's %s" % (sorted(procs), pids))
    compared = equal = 0
    for pid in pids:
        p = procs.get(pid, {"threads": [], "cmdline": []})
        check([t["tid"] for t in p["threads"]] == tids(pid) or
              sorted(t["tid"] for t in p["threads"]) == tids(pid),
              "PID %d: threads %s, /proc/%d/task %s" % (pid, [t["tid"] for t in p["threads"]], pid, tids(pid)))
        check(p["cmdline"][:1] == ["nginx"] or (p["cmdline"] and "nginx" in p["cmdline"][0]),
              "PID %d cmdline %s" % (pid, p["cmdline"]))
        eu = eu_stacks(pid)
        for t in p["threads"]:
            if t["state"] != "S" or not t["syscall"] or not t["complete"] or t["tid"] not in eu:
                continue
            compared += 1
            same = pcs(t) == eu[t["tid"]]
            equal += same
            check(same, "PID %d thread %d: pprofc %s, eu-stack %s" % (
                pid, t["tid"], [hex(x) for x in pcs(t)], [hex(x) for x in eu[t["tid"]]]))
        check_untouched(pid, label="nginx after dump-threads")
    print("nginx dump-threads --children: %d processes, %d blocked stacks, %d equal to eu-stack's"
          % (len(procs), compared, equal))
    check(compared >= len(pids), "only %d blocked threads compared" % compared)
    text = pprofc("dump-threads", "--children", pids[0])
    heads = re.findall(r"^process (\d+) \"nginx\": ", text.stdout, re.M)
    check(sorted(map(int, heads)) == sorted(pids), "text headers %s" % heads)


def nginx(tmp):
    if not shutil.which("nginx") or not shutil.which("perf"):
        print("nginx or perf not installed: nginx part skipped")
        return
    conf, port = os.path.join(tmp, "nginx.conf"), free_port()
    with open(conf, "w") as f:
        f.write("daemon off; master_process on; worker_processes 2; pid %s/nginx.pid;\n"
                "error_log stderr; events {}\n"
                "http { access_log off; server { listen 127.0.0.1:%d; } }\n" % (tmp, port))
    proc = subprocess.Popen(["nginx", "-c", conf, "-p", tmp], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        kids = wait_for(lambda: children_of(proc.pid) if len(children_of(proc.pid)) >= 2 else None, 10)
        if not check(kids, "nginx workers did not start"):
            return
        pids = [proc.pid] + kids
        time.sleep(0.5)         # workers settle in epoll_wait
        nginx_dump(pids)
        nginx_profile(tmp, pids, port)
        for p in pids:
            check_untouched(p, label="nginx after the profile")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def mapping_files(path):
    """The filename of every Mapping in a profile, read from the protobuf."""
    msg = gzip.open(path).read()
    fields = list(pb_fields(msg))
    strings = [v.decode() for k, v in fields if k == 6]
    out = []
    for k, v in fields:
        if k == 3:
            m = dict(pb_fields(v))
            out.append(strings[m.get(5, 0)])
    return out


def pipeline(tmp):
    """run --children on a shell pipeline of two CPU fixtures."""
    fx = fixture_path("cpu_split")
    out = os.path.join(tmp, "pipe.pb.gz")
    a, b = os.path.join(tmp, "truth_a"), os.path.join(tmp, "truth_b")
    r = pprofc("run", "--children", "--hz", "1000", "-o", out, "--", "sh", "-c", "'%s' '%s' 2 | '%s' '%s' 2" % (fx, a, fx, b))
    check(r.returncode == 3, "run --children: exit %d (the pipeline's, 3, expected): %s"
          % (r.returncode, r.stderr.strip()))
    if not check(os.path.exists(out), "run --children wrote no profile"):
        return
    by_pid = {}
    for _, ns, lb in raw_samples(out):
        if lb.get("process") == "cpu_split":
            by_pid[lb["pid"]] = by_pid.get(lb["pid"], 0) + ns
    check(len(by_pid) == 2, "cpu_split pids in the profile: %s" % sorted(by_pid))
    truths = []
    for f in (a, b):
        with open(f) as fh:
            truths.append(sum(int(x) for x in fh.read().split()))
    print("pipeline: CPU by pid %s; each program's own clock %s" % (
        {p: "%.2f s" % (ns / 1e9) for p, ns in by_pid.items()}, ["%.2f s" % (t / 1e9) for t in truths]))
    # Started, each process runs a while before pprofc has found it and
    # loaded its symbols (README: limits): never more than its own clock.
    check(max(by_pid.values() or [0]) <= max(truths) * 1.1 + 20e6,
          "more CPU in the profile than the programs measured")
    for pid in by_pid:
        text, _ = gopprof("-top", "-unit=ms", "-nodefraction=0", "-tagfocus=pid=%s" % pid, out)
        cum = {}
        for line in text.splitlines():
            f = line.split()
            if len(f) >= 6 and f[3].endswith("ms") and f[1].endswith("%"):
                cum[f[5]] = float(f[3][:-2])
        tot = sum(cum.get(k, 0) for k in ("share_a", "share_b", "share_c"))
        c = cum.get("share_c", 0)
        check(tot > 0 and 0.3 <= c / tot <= 0.7, "pid %s: share_c %.0f of %.0f ms (half expected)" % (pid, c, tot))
    # Each process's executable is its own Mapping (ASLR: another start).
    n = sum(1 for f in mapping_files(out) if f == fx)
    check(n == 2, "%d mappings of %s in the profile, 2 expected (one per process)" % (n, fx))


def through_exec(tmp):
    """run --children --profile wall -- env cpu_split: the command execs
    (env runs the program), and the program is what is profiled."""
    fx = fixture_path("cpu_split")
    out = os.path.join(tmp, "exec.pb.gz")
    r = pprofc("run", "--children", "--profile", "wall", "-o", out, "--", "env", fx,
               os.path.join(tmp, "truth_e"), "1")
    check(r.returncode == 3, "run --children -- env: exit %d: %s" % (r.returncode, r.stderr.strip()))
    pids = {lb.get("pid") for _, _, lb in raw_samples(out)} if os.path.exists(out) else set()
    check(len(pids) == 1, "run --children through exec: pids %s, one expected" % sorted(pids))
    # The process label is the name when pprofc opened the program: the
    # moments after an exec before pprofc sees it keep the old one (README).
    text, _ = gopprof("-top", "-nodefraction=0", out)
    check("share_c" in text, "the program after exec has no share_c: %s" % text[-500:])


def cpu_ns(pid):
    """The kernel's CPU time of the process's threads (schedstat), ns."""
    total = 0
    for t in tids(pid):
        try:
            with open("/proc/%d/task/%d/schedstat" % (pid, t)) as f:
                total += int(f.read().split()[0])
        except OSError:
            pass                # the thread ended meanwhile
    return total


def frames_of(t):
    return [(f["function"], f["pc"]) for f in t["frames"]]


def physical_pcs(t):
    """One pc per frame on the stack, as eu-stack prints them: inlined
    frames share their caller's (a recursion repeats its own, kept)."""
    return [int(f["pc"], 16) for f in t["frames"] if not f.get("inlined")]


def two_dumps(pids):
    """dump-threads PID1 PID2 against each PID alone, /proc and eu-stack."""
    r = pprofc("dump-threads", "--format=json", *pids)
    if not check(r.returncode == 0, "dump-threads %s: %s" % (pids, r.stderr.strip())):
        return
    procs = {p["pid"]: p for p in json.loads(r.stdout)["processes"]}
    check(sorted(procs) == sorted(pids), "dump-threads %s: processes %s" % (pids, sorted(procs)))
    compared = 0
    for pid in pids:
        both = {t["tid"]: t for t in procs.get(pid, {"threads": []})["threads"]}
        check(sorted(both) == tids(pid), "PID %d: threads %s, /proc %s" % (pid, sorted(both), tids(pid)))
        alone = {t["tid"]: t for t in dump_json(pid)["threads"]}
        eu = eu_stacks(pid)
        for tid, t in sorted(both.items()):
            a = alone.get(tid)
            if t["state"] != "S" or not t["syscall"] or not a or a["state"] != "S" or a["syscall"] != t["syscall"]:
                continue        # running, or not in the same wait both times
            compared += 1
            check(frames_of(t) == frames_of(a) and t["reason"] == a["reason"] and t["detail"] == a["detail"],
                  "PID %d thread %d (%s): with the other PID %s %r, alone %s %r" % (
                      pid, tid, t["name"], t["reason"], frames_of(t), a["reason"], frames_of(a)))
            if t["complete"] and tid in eu:
                check(physical_pcs(t) == eu[tid], "PID %d thread %d: pprofc %s, eu-stack %s" % (
                    pid, tid, [hex(x) for x in physical_pcs(t)], [hex(x) for x in eu[tid]]))
        check_untouched(pid, label="after dump-threads of two PIDs")
    # waits alone has 12 threads blocked for good, cpu_split 2.
    check(compared >= 12, "only %d blocked threads compared" % compared)
    text = pprofc("dump-threads", *pids).stdout
    heads = re.findall(r'^process (\d+) "(\S+)": ', text, re.M)
    check(sorted((int(p), n) for p, n in heads) == sorted(zip(pids, ("cpu_split", "waits"))),
          "text headers %s" % heads)
    print("dump-threads of two PIDs: %d threads blocked in calls, each equal to its own process's dump"
          % compared)


def two_profile(tmp, pids):
    """attach PID1 PID2 --seconds 1 (perf engine)."""
    out = os.path.join(tmp, "two.pb.gz")
    before = {p: cpu_ns(p) for p in pids}
    r = pprofc("attach", *pids, "--seconds", "1", "--engine", "perf", "-o", out)
    used = {p: cpu_ns(p) - before[p] for p in pids}
    if r.returncode != 0 and "perf_event" in r.stderr:
        print("note: perf_event refused here, attach of two PIDs not checked: %s" % r.stderr.strip())
        return
    if not check(r.returncode == 0, "attach %s: %s" % (pids, r.stderr.strip())):
        return
    check("2 processes in the profile" in r.stderr, "summary: %s" % r.stderr.strip())
    mine, names = {}, {}
    for _, ns, lb in raw_samples(out):
        mine[int(lb.get("pid", -1))] = mine.get(int(lb.get("pid", -1)), 0) + ns
        names.setdefault(int(lb.get("pid", -1)), set()).add(lb.get("process"))
    check(sorted(mine) == sorted(pids), "pids in the profile %s, attached %s" % (sorted(mine), pids))
    check(names == {pids[0]: {"cpu_split"}, pids[1]: {"waits"}}, "process labels by pid %r" % names)
    tags, _ = gopprof("-tags", out)
    check(re.search(r"process: Total.*\n(\s+\S+ \(\s*[\d.]+%\): (cpu_split|waits)\n){2}", tags) is not None,
          "-tags: %s" % tags)
    # Each process's own hot function, and not the other's.
    for pid, own, other in ((pids[0], "share_c", "spin"), (pids[1], "spin", "share_c")):
        text, _ = gopprof("-top", "-nodefraction=0", "-tagfocus=pid=%d" % pid, out)
        fns = {line.split()[-1] for line in text.splitlines() if "%" in line}
        check(own in fns and other not in fns, "-tagfocus=pid=%d: %s expected, %s not: %s"
              % (pid, own, other, sorted(fns)))
    files = mapping_files(out)
    for exe in (fixture_path("cpu_split"), fixture_path("waits")):
        check(files.count(exe) == 1, "%s mapped %d times: %s" % (exe, files.count(exe), files))
    total, ktotal = sum(mine.values()), sum(used.values())
    if check(total > 0 and ktotal > 0, "no CPU: profile %r, kernel %r" % (mine, used)):
        for p in pids:
            check(abs(mine[p] / total - used[p] / ktotal) <= 0.10, "pid %d: %.1f%% of the profile's CPU, %.1f%% "
                  "of the kernel's" % (p, 100 * mine[p] / total, 100 * used[p] / ktotal))
        print("attach of two PIDs, CPU by pid, pprofc/kernel: %s" % ", ".join(
            "%d %.1f%%/%.1f%%" % (p, 100 * mine[p] / total, 100 * used[p] / ktotal) for p in pids))


def explicit_pids(tmp):
    """attach and dump-threads given two PIDs: cpu_split and waits."""
    with Fixture("cpu_split", args=[os.path.join(tmp, "truth_two")]) as a, Fixture("waits") as w:
        two_dumps([a.pid, w.pid])
        two_profile(tmp, [a.pid, w.pid])
        for p in (a.pid, w.pid):
            check_untouched(p, label="after attach of two PIDs")


def errors(tmp):
    fx = fixture_path("cpu_split")
    proc = subprocess.Popen([fx, os.path.join(tmp, "truth_err")], stdout=subprocess.PIPE, text=True)
    try:
        proc.stdout.readline()
        out = os.path.join(tmp, "bad.pb.gz")
        bad = 4194304 + 17      # above pid_max's largest value: never a process
        for cmd in (["attach", proc.pid, bad, "--seconds", "1", "-o", out],
                    ["dump-threads", proc.pid, bad]):
            r = pprofc(*cmd)
            lines = r.stderr.strip().splitlines()
            check(r.returncode == 1 and len(lines) == 1 and str(bad) in lines[0],
                  "%s with a bad PID: exit %d, stderr %r" % (cmd[0], r.returncode, r.stderr))
            check(r.stdout == "", "%s with a bad PID printed %r" % (cmd[0], r.stdout[:200]))
        check(not os.path.exists(out), "a file was written despite the bad PID")
        check_untouched(proc.pid, label="the good PID")
        r = pprofc("attach", proc.pid, proc.pid + 1, "--tid", proc.pid, "-o", out)
        check(r.returncode == 2, "--tid with several PIDs: exit %d" % r.returncode)
        # trace and threadcreate take one process (README, pprofc(1)).
        for kind in ("trace", "threadcreate"):
            for cmd in (["attach", proc.pid, proc.pid, "--profile", kind, "-o", out],
                        ["attach", "--children", proc.pid, "--profile", kind, "-o", out],
                        ["run", "--children", "--profile", kind, "-o", out, "--", "true"]):
                r = pprofc(*cmd)
                check(r.returncode == 2 and r.stderr.count("\n") == 1 and "takes one process" in r.stderr
                      and not os.path.exists(out), "%s: exit %d %r" % (" ".join(map(str, cmd)), r.returncode,
                                                                      r.stderr))
        check_untouched(proc.pid, label="after the refusals")
    finally:
        proc.kill()
        proc.wait()


def killed(tmp):
    """SIGKILL to pprofc in the middle of a wall profile of two processes."""
    fx = fixture_path("cpu_split")
    procs = [subprocess.Popen([fx, os.path.join(tmp, "truth_k%d" % i)], stdout=subprocess.PIPE, text=True)
             for i in range(2)]
    try:
        for p in procs:
            p.stdout.readline()
        for i in range(5):
            pp = subprocess.Popen([PPROFC, "attach", "--profile", "wall", "--engine", "ptrace", "--hz", "1000",
                                   "--seconds", "30", "-o", os.path.join(tmp, "killed.pb.gz")] +
                                  [str(p.pid) for p in procs], stderr=subprocess.DEVNULL)
            wait_for(lambda: sampling(pp.pid), timeout=30)
            time.sleep(0.05 * (i + 1))
            pp.kill()
            pp.wait()
            for p in procs:
                wait_for(lambda: all(st not in "tT" for st in _states(p.pid)), timeout=5)
                check_untouched(p.pid, label="after SIGKILL %d" % i)
        check(not os.path.exists(os.path.join(tmp, "killed.pb.gz")), "a killed pprofc left a file")
    finally:
        for p in procs:
            p.kill()
            p.wait()


def _states(pid):
    from fixture import thread_states
    return list(thread_states(pid).values())


def main():
    require_ptrace()
    tmp = tempfile.mkdtemp(prefix="pprofc-multi-")
    try:
        errors(tmp)
        explicit_pids(tmp)
        pipeline(tmp)
        through_exec(tmp)
        killed(tmp)
        nginx(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    done()


if __name__ == "__main__":
    main()
