"""pprofc serve PID and run --serve: Go's /debug/pprof/ endpoint, checked
with the real go tool pprof and with plain HTTP against real processes.

The index and every error status and body (net/http/pprof's words,
X-Go-Pprof on text errors, nosniff everywhere); goroutine?debug=1 and
debug=2 against dump-threads on a settled fixture; cmdline's bytes;
symbol; go tool pprof -top on profile, goroutine, block, mutex, heap and
allocs (loads, no warning, the right sample type) and -seconds 2; a mutex
delta against the difference of two cumulative fetches; the cumulative
block and mutex growth against the kernel's blocked time (schedstat), with
the target and the server on two CPUs in both orders; parallel requests
while a CPU profile runs (a second one gets Go's 500); 3 x 100 requests
with no fd growth and no memory growth in every window; a malformed and a huge request; a client leaving
mid-profile; SIGTERM and SIGINT mid-request (exit 0, target untouched);
the limits (--max-connections, the POST body's 413, 414 and 431) and the
501s and 500s where perf_event is refused; the target never seen stopped
or traced while block and mutex accumulate; the target
exiting (410, then serve ends); credentials; a unix socket; run --serve
with python3 (cumulative heap and allocs); redis-server served.  Each
part prints a "COUNT name key=value..." line."""
import http.client
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from fixture import (PPROFC, Fixture, check, check_untouched, count_line, done,  # noqa: E402
                     fixture_path, gopprof, pprofc, require_ptrace, tids, tracer_pid, wait_for)


class Server:
    """pprofc serve (or run --serve) on a free port; its stderr lines are
    kept in .lines as they come."""

    def __init__(self, args, run=False, stdin=None, stdout=subprocess.DEVNULL, wrap=()):
        cmd = [PPROFC, "run", "--serve", "127.0.0.1:0"] + args if run else \
              [PPROFC, "serve", "--listen", "127.0.0.1:0", "-v"] + args
        if not run and any(a.startswith("--listen") for a in args):
            cmd = [PPROFC, "serve", "-v"] + args
        cmd = list(wrap) + cmd      # e.g. no_perf_event, which execs the rest
        self.proc = subprocess.Popen(cmd, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, text=True)
        self.lines = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        line = wait_for(lambda: next((l for l in self.lines if "serving process" in l), None), 30)
        if not line:
            self.proc.kill()
            raise RuntimeError("serve did not start: %r" % self.lines)
        m = re.search(r"on (http://[^/]+)(/debug/pprof/)|on unix:(\S+?);?$", line)
        self.base = m.group(1) if m and m.group(1) else None
        self.url = (self.base + "/debug/pprof/") if self.base else None
        self.host, self.port = (re.match(r"http://([^:]+):(\d+)", self.base).groups() if self.base else (None, 0))
        self.target = int(re.search(r"serving process (\d+)", line).group(1))

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def get(self, path, method="GET", body=None, headers=None, timeout=60):
        """(status, {header: value}, body bytes)."""
        c = http.client.HTTPConnection(self.host, int(self.port), timeout=timeout)
        c.request(method, "/debug/pprof/" + path if not path.startswith("/") else path, body=body,
                  headers=headers or {})
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data

    def status(self, path):
        """The status of GET path; 0 when the server no longer answers."""
        try:
            return self.get(path, timeout=10)[0]
        except OSError:
            return 0

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def gopprof_top(url, *extra):
    """(stdout, warnings): go tool pprof -top; its usual progress lines are
    not warnings."""
    r = subprocess.run(["go", "tool", "pprof", "-top"] + list(extra) + [url], capture_output=True, text=True,
                       timeout=120, env=dict(os.environ, PPROF_TMPDIR=tempfile.gettempdir()))
    check(r.returncode == 0, "go tool pprof %s: %d %s" % (url, r.returncode, r.stderr))
    noise = ("Fetching profile", "Saved profile", "Please wait")
    warnings = [l for l in r.stderr.splitlines() if l.strip() and not l.startswith(noise)]
    return r.stdout, warnings


def error_case(srv, path, status, body, method="GET", counts=None, data=None):
    s, h, b = srv.get(path, method=method, body=data)
    ok = check(s == status, "%s %s: status %d, want %d (%r)" % (method, path, s, status, b[:100]))
    ok = check(b.decode() == body + "\n", "%s: body %r, want %r" % (path, b[:200], body)) and ok
    ok = check(h.get("x-go-pprof") == "1" and h.get("content-type", "").startswith("text/plain"),
               "%s: headers %r" % (path, h)) and ok
    ok = check(h.get("x-content-type-options") == "nosniff", "%s: no nosniff" % path) and ok
    if counts is not None:
        counts["errors"] += 1
        counts["right"] += ok


def test_index_and_errors():
    counts = {"errors": 0, "right": 0}
    with Fixture("waits") as fx, Server([str(fx.pid)]) as srv:
        s, h, b = srv.get("")
        page = b.decode()
        check(s == 200 and h["content-type"] == "text/html; charset=utf-8", "index: %d %r" % (s, h))
        names = re.findall(r"<tr><td>(\d+)</td><td><a href='(\w+)\?debug=1'>(\w+)</a>", page)
        listed = [n for _, _, n in names]
        check(listed == sorted(["allocs", "block", "cmdline", "goroutine", "heap", "mutex", "profile",
                                "threadcreate", "trace"]),
              "index lists %r" % listed)
        count = {n: int(c) for c, _, n in names}
        check(count.get("goroutine") == len(os.listdir("/proc/%d/task" % fx.pid)),
              "index goroutine count %r" % count.get("goroutine"))
        descriptions_match(page, listed, count, srv)
        check("<a href=\"goroutine?debug=2\">full goroutine stack dump</a>" in page, "no full dump link")
        check(h.get("x-content-type-options") == "nosniff", "index: no nosniff")
        for path, status, body in [
            ("nosuch", 404, "Unknown profile"),
            ("block?seconds=x", 400, 'invalid value for "seconds" - must be a positive integer'),
            ("mutex?seconds=-3", 400, 'invalid value for "seconds" - must be a positive integer'),
            ("block?seconds=1&debug=1", 400, "seconds and debug params are incompatible"),
            ("goroutine?seconds=1", 400, '"seconds" parameter is not supported for this profile type'),
            ("profile?seconds=100000", 400, "profile duration exceeds server's WriteTimeout"),
            ("mutex?seconds=100000", 400, "profile duration exceeds server's WriteTimeout"),
            ("heap", 400, "heap profile of a running process needs ?seconds=N: pprofc serve PID sees "
             "the allocations made from when its probes are in place (uprobes), not before; pprofc "
             "run --serve gives cumulative heap and allocs"),
            ("allocs?debug=1", 400, "allocs profile of a running process needs ?seconds=N: pprofc serve "
             "PID sees the allocations made from when its probes are in place (uprobes), not before; "
             "pprofc run --serve gives cumulative heap and allocs"),
            ("trace?seconds=100000", 400, "profile duration exceeds server's WriteTimeout"),
            ("threadcreate?seconds=0", 400, 'invalid value for "seconds" - must be a positive integer'),
            ("/elsewhere", 404, "404 page not found"),
        ]:
            error_case(srv, path, status, body, counts=counts)
        error_case(srv, "cmdline", 405, "method PUT not allowed: use GET or POST", method="PUT", counts=counts)
        s, h, _ = srv.get("/debug/pprof")
        check(s == 301 and h.get("location") == "/debug/pprof/", "/debug/pprof: %d %r" % (s, h))
        # cmdline: argv joined by NUL, as Go's os.Args.
        s, h, b = srv.get("cmdline")
        with open("/proc/%d/cmdline" % fx.pid, "rb") as f:
            want = f.read().rstrip(b"\0")
        check(s == 200 and b == want and h["content-type"] == "text/plain; charset=utf-8",
              "cmdline: %r, want %r" % (b, want))
        # symbol: GET, then POST and GET with an address goroutine?debug=1 names.
        s, _, b = srv.get("symbol")
        check(s == 200 and b == b"num_symbols: 1\n", "symbol GET: %r" % b)
        _, _, text = srv.get("goroutine?debug=1")
        m = re.search(r"^#\t(0x[0-9a-f]+)\t(\w+)\+0x", text.decode(), re.M)
        if check(m, "no '#' line in goroutine?debug=1"):
            pc, fn = m.groups()
            for method, path, body in (("POST", "symbol", pc + "+0x0"), ("GET", "symbol?" + pc, None)):
                s, _, b = srv.get(path, method=method, body=body)
                lines = b.decode().splitlines()
                check(s == 200 and lines[0] == "num_symbols: 1" and len(lines) == 2 and
                      lines[1] == "%s %s" % (pc, fn), "symbol %s %s: %r, want %s" % (method, pc, b, fn))
        check_untouched(fx.pid, label="index and errors")
    count_line("serve-errors", cases=counts["errors"], right=counts["right"])


def descriptions_match(page, listed, count, srv):
    """The index describes each profile, and says of block and mutex what
    --help (and README, the man page) says and what the code does: they
    accumulate from the first request for each, not from the server's
    start.  The counts are the oracle of the words: block and mutex are 0
    on a fresh server's index (which does not start them), and grow once
    asked for."""
    desc = dict(re.findall(r"<li><div class=profile-name>(\w+): </div> ([^<]*)</li>", page))
    check(sorted(desc) == listed, "descriptions of %r, profiles %r" % (sorted(desc), listed))
    helptext = " ".join(pprofc("serve", "--help").stdout.split())
    check("cumulative from the first request for each" in helptext, "--help: %r" % helptext[:600])
    for name in ("block", "mutex"):
        check("cumulative from the first request for it" in desc.get(name, "") and
              "started serving" not in desc.get(name, ""), "index, %s: %r" % (name, desc.get(name)))
    check("at the first request for it" in desc.get("threadcreate", ""),
          "index, threadcreate: %r" % desc.get("threadcreate"))
    check(count.get("block") == 0 and count.get("mutex") == 0,
          "block and mutex counted before any request for them: %r" % count)
    for name in ("block", "mutex"):
        check(srv.get(name)[0] == 200, "%s: not served" % name)

    def counted():
        rows = re.findall(r"<tr><td>(\d+)</td><td><a href='(\w+)\?debug=1'>", srv.get("")[2].decode())
        now = {n: int(c) for c, n in rows}
        return now if now.get("block", 0) > 0 and now.get("mutex", 0) > 0 else None
    grown = wait_for(counted, 20, 0.2)
    check(grown, "block and mutex not counted after their first request")
    count_line("serve-index-descriptions", described=len(desc), block_after=(grown or {}).get("block", 0),
               mutex_after=(grown or {}).get("mutex", 0))


def strip_durations(text):
    """dump texts of one settled process differ only in how long threads
    have waited."""
    return re.sub(r", \d+ (seconds|minutes)\]", "]", text)


def test_goroutine_texts():
    same = 0
    with Fixture("many_threads", ["20", "6"]) as fx, Server([str(fx.pid)]) as srv:
        for debug in (1, 2):
            s, h, b = srv.get("goroutine?debug=%d" % debug)
            r = pprofc("dump-threads", "--debug=%d" % debug, fx.pid)
            ok = check(s == 200 and h["content-type"] == "text/plain; charset=utf-8", "debug=%d: %d" % (debug, s))
            ok = check(strip_durations(b.decode()) == strip_durations(r.stdout),
                       "goroutine?debug=%d differs from dump-threads --debug=%d" % (debug, debug)) and ok
            same += ok
        s, h, b = srv.get("goroutine")
        check(s == 200 and h["content-type"] == "application/octet-stream" and
              h.get("content-disposition") == 'attachment; filename="goroutine"', "goroutine: %d %r" % (s, h))
        check(b[:2] == b"\x1f\x8b", "goroutine: not gzip")
        out, warn = gopprof_top(srv.url + "goroutine")
        check("Type: goroutine" in out and not warn, "go tool pprof goroutine: %r %r" % (out[:300], warn))
        check("21, 100% of 21 total" in out, "goroutine: 21 threads? %r" % out[:400])
    count_line("serve-goroutine-texts", same=same, of=2)


def folded_total(data):
    """The sum of a profile's last sample type, by pprofc report."""
    with tempfile.NamedTemporaryFile(suffix=".pb.gz") as f:
        f.write(data)
        f.flush()
        r = pprofc("report", "--format=folded", f.name)
    check(r.returncode == 0, "report: %s" % r.stderr)
    return sum(int(l.rsplit(" ", 1)[1]) for l in r.stdout.splitlines() if l.strip())


def test_gopprof_and_delta():
    with Fixture("contended") as fx, Server([str(fx.pid)]) as srv:
        # block and mutex accumulate from their first request: from here.
        for name in ("block", "mutex"):
            check(srv.get(name)[0] == 200, "%s: not served" % name)
        out, warn = gopprof_top(srv.url + "profile?seconds=2")
        check("Type: cpu" in out and not warn, "profile: %r %r" % (out[:300], warn))
        out, warn = gopprof_top(srv.url + "profile", "-seconds", "2")
        check("Type: cpu" in out and "Duration: 2" in out and not warn, "-seconds 2: %r %r" % (out[:300], warn))
        time.sleep(1)
        for name in ("block", "mutex"):
            out, warn = gopprof_top(srv.url + name)
            check("Type: delay" in out and not warn, "%s: %r %r" % (name, out[:300], warn))
            s, h, _ = srv.get(name)
            check(h.get("content-disposition") == 'attachment; filename="%s"' % name, "%s: %r" % (name, h))
        out, warn = gopprof_top(srv.url + "mutex?seconds=1")
        check("Type: delay" in out and not warn, "mutex?seconds=1: %r %r" % (out[:300], warn))
        # A delta over 2 s against the difference of two cumulative
        # fetches bracketing the same 2 s.
        res = {}

        def delta():
            res["delta"] = srv.get("mutex?seconds=2")
        _, _, a = srv.get("mutex")
        t = threading.Thread(target=delta)
        t.start()
        time.sleep(2.0)
        _, _, b = srv.get("mutex")
        t.join()
        s, h, d = res["delta"]
        check(s == 200 and h.get("content-disposition") == 'attachment; filename="mutex-delta"',
              "mutex-delta: %d %r" % (s, h))
        diff, dt = folded_total(b) - folded_total(a), folded_total(d)
        check(diff > 0 and abs(dt - diff) <= 0.25 * diff + 50e6,
              "mutex delta %d ns against the cumulative difference %d ns" % (dt, diff))
        count_line("serve-mutex-delta", delta_ms=dt // 1000000, difference_ms=diff // 1000000)
        check_untouched(fx.pid, label="gopprof")


def pin(pid, cpu):
    """Every thread of pid on one CPU (threads it creates later inherit it)."""
    for tid in tids(pid):
        try:
            os.sched_setaffinity(tid, {cpu})
        except OSError:
            pass    # exited meanwhile


def off_cpu_clock(pid):
    """({tid: (comm, ns on a CPU or waiting for one)}, now ns): the kernel's
    account, from which a window's blocked time per thread is its length
    less the growth of the second value (schedstat: run time + run delay)."""
    out = {}
    for tid in tids(pid):
        try:
            with open("/proc/%d/task/%d/comm" % (pid, tid)) as f:
                comm = f.read().strip()
            with open("/proc/%d/task/%d/schedstat" % (pid, tid)) as f:
                run, delay = f.read().split()[:2]
            out[tid] = (comm, int(run) + int(delay))
        except (OSError, ValueError):
            pass
    return out, time.monotonic_ns()


def blocked_between(a, b, who):
    (ta, na), (tb, nb) = a, b
    return sum((nb - na) - (tb[t][1] - ta[t][1]) for t in ta if t in tb and who(ta[t][0]))


def test_offcpu_against_kernel():
    """The cumulative block and mutex profiles grow by what the kernel says
    the threads were blocked over the same window (schedstat: the window
    less their time on a CPU and waiting for one): all of contended's
    threads for block, its three waiters for mutex (charged to the holder).
    With the fixture and the server on two different CPUs, in both orders:
    each CPU's scheduler clock leaves out its own steal time, so they
    differ (by 70 s on the development VM), and a wait dated on the wrong
    one counted nothing (or a whole interval) before the fix; so did one
    dated on serve's main thread's clock, which sleeps up to a second."""
    cpus = sorted(os.sched_getaffinity(0))
    orders = [(cpus[0], cpus[1]), (cpus[1], cpus[0])] if len(cpus) > 1 else [(cpus[0], cpus[0])]
    for fx_cpu, srv_cpu in orders:
        with Fixture("contended") as fx, Server([str(fx.pid)]) as srv:
            pin(fx.pid, fx_cpu)
            pin(srv.proc.pid, srv_cpu)
            for name in ("block", "mutex"):     # they start now
                check(srv.get(name)[0] == 200, "%s: not served" % name)
            time.sleep(0.5)     # past the first tick, whose waits count from before
            k0 = off_cpu_clock(fx.pid)
            before = {name: folded_total(srv.get(name)[2]) for name in ("block", "mutex")}
            time.sleep(3)
            after = {name: folded_total(srv.get(name)[2]) for name in ("block", "mutex")}
            k1 = off_cpu_clock(fx.pid)
            truth = {"block": blocked_between(k0, k1, lambda c: True),
                     "mutex": blocked_between(k0, k1, lambda c: c.startswith("waiter"))}
            threads = {"block": len(k0[0]), "mutex": 3}
            for name in ("block", "mutex"):
                got = after[name] - before[name]
                # The profile's window is the ticks' (10 Hz, jittered up to
                # 150 ms): a little off the kernel's at each end; a tick that
                # finds a thread running or in another wait charges nothing.
                slack = threads[name] * 300e6
                check(0.6 * truth[name] <= got <= truth[name] + slack,
                      "%s, fixture on CPU %d, serve on CPU %d: %.2f s over 3 s, the kernel says %.2f s blocked"
                      % (name, fx_cpu, srv_cpu, got / 1e9, truth[name] / 1e9))
                count_line("serve-%s-vs-kernel" % name, fixture_cpu=fx_cpu, serve_cpu=srv_cpu,
                           profile_ms=got // 1000000, kernel_ms=truth[name] // 1000000)
            check_untouched(fx.pid, label="offcpu-vs-kernel")


def test_parallel_and_loop():
    with Fixture("waits") as fx, Server(["--max-profiles", "8", str(fx.pid)]) as srv:
        results = {}
        for name in ("block", "mutex"):     # running from the start, as they grow
            check(srv.get(name)[0] == 200, "%s: not served" % name)

        def fetch(key, path):
            try:
                s, _, b = srv.get(path)
                results[key] = s if s == 200 else (s, b[:300])
            except OSError as e:
                results[key] = str(e)
        def windows():
            # One heap window at a time (a second is Go's 500, test_heap):
            # allocs after heap, both while the CPU profile runs.
            for p in ("heap?seconds=1", "allocs?seconds=1"):
                fetch(p, p)
        cpu = threading.Thread(target=fetch, args=("cpu", "profile?seconds=4"))
        cpu.start()
        time.sleep(0.5)
        threads = [threading.Thread(target=fetch, args=(p, p)) for p in
                   ("goroutine?debug=2", "goroutine?debug=1", "goroutine", "block", "mutex", "cmdline", "",
                    "mutex?seconds=1", "symbol", "threadcreate", "threadcreate?debug=1", "trace?seconds=1")]
        threads.append(threading.Thread(target=windows))
        for t in threads:
            t.start()
        s, _, b = srv.get("profile?seconds=1")
        check(s == 500 and b == b"Could not enable CPU profiling: cpu profiling already in use\n",
              "second CPU profile: %d %r" % (s, b))
        for t in threads + [cpu]:
            t.join()
        ok = sum(1 for v in results.values() if v == 200)
        check(ok == len(results), "parallel requests: %r" % results)
        count_line("serve-parallel", requests=len(results), ok=ok)
        # Past --max-profiles collections at once: 503 with a reason.
        busy = [threading.Thread(target=fetch, args=("d%d" % i, "block?seconds=2")) for i in range(8)]
        for t in busy:
            t.start()
        time.sleep(0.5)
        s, _, b = srv.get("mutex?seconds=1")
        check(s == 503 and b"--max-profiles" in b, "a ninth collection: %d %r" % (s, b))
        for t in busy:
            t.join()
        # Requests in a loop: no descriptor or memory growth.
        paths = ["", "cmdline", "goroutine?debug=1", "mutex", "block", "symbol"]
        for i in range(60):     # the connection threads' malloc arenas warm up
            srv.get(paths[i % len(paths)])

        def fds_rss():
            with open("/proc/%d/status" % srv.proc.pid) as f:
                rss = int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
            return len(os.listdir("/proc/%d/fd" % srv.proc.pid)), rss
        # Three windows of 100: a leak grows RSS in every one of them; a
        # table of the cumulative collections doubling, or an arena taking
        # a new heap, is a one-off step (0, 3148 and 4 kB in three runs of
        # one window, 5176 once in CI).
        fd0, rss0 = fds_rss()
        bad, steps, rss1 = 0, [], rss0
        for _ in range(3):
            before = rss1
            bad += sum(1 for i in range(100) if srv.get(paths[i % len(paths)])[0] != 200)
            fd1, rss1 = fds_rss()
            steps.append(rss1 - before)
        # Under ASan freed memory waits in its quarantine (256 MB), so RSS
        # grows there whatever the code does; its leak check at exit is the
        # test of memory in that build.
        sanitized = os.environ.get("PPROFC_SANITIZE", "none") not in ("", "none")
        # A leak of one descriptor a request would be 300; a few come and
        # go with the cumulative collections (perf events of a thread the
        # target starts, a connection closing): 250 -> 252 was seen once.
        grows = min(steps) > 1024 or max(steps) > 16384
        check(bad == 0 and fd1 <= fd0 + 5 and (not grows or sanitized),
              "300 requests: %d failed, fds %d -> %d, VmRSS %d -> %d kB (by 100: %s)"
              % (bad, fd0, fd1, rss0, rss1, steps))
        count_line("serve-loop", requests=300, failed=bad, fds_before=fd0, fds_after=fd1, rss_kb_before=rss0,
                   rss_kb_after=rss1)
        # A malformed and a huge request: refused, the server runs on.
        for name, raw in (("malformed", b"GARBAGE \x01\x02\r\n\r\n"),
                          ("huge", b"GET /debug/pprof/cmdline HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200000 +
                           b"\r\n\r\n")):
            sock = socket.create_connection((srv.host, int(srv.port)), timeout=10)
            try:
                sock.sendall(raw)
                reply = sock.recv(200)
            except OSError as e:
                reply = str(e).encode()
            sock.close()
            check(not reply.startswith(b"HTTP/1.1 200"), "%s request answered %r" % (name, reply[:60]))
            check(srv.get("cmdline")[0] == 200, "server dead after the %s request" % name)
            count_line("serve-bad-request", kind=len(name), answered_200=int(reply.startswith(b"HTTP/1.1 200")))
        # A client leaving mid-profile ends the collection.
        sock = socket.create_connection((srv.host, int(srv.port)), timeout=10)
        sock.sendall(b"GET /debug/pprof/profile?seconds=20 HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(1)
        t0 = time.monotonic()
        sock.close()
        line = wait_for(lambda: next((l for l in srv.lines if "GET /debug/pprof/profile:" in l and
                                      float(l.split(" in ")[1].split()[0]) < 19), None), 10)
        check(line, "a client leaving did not end its profile: %r" % srv.lines[-3:])
        count_line("serve-client-left", ended_within_s=int(time.monotonic() - t0) if line else -1)
        check_untouched(fx.pid, label="parallel")


def test_signal_mid_request(sig):
    """SIGTERM or SIGINT (Ctrl-C) mid CPU profile: exit 0, the profile in
    flight answered with what was collected, the target untouched."""
    name = sig.name
    with Fixture("waits") as fx:
        srv = Server([str(fx.pid)])
        res = {}
        t = threading.Thread(target=lambda: res.update(r=srv.get("profile?seconds=20")))
        t.start()
        time.sleep(1.5)
        t0 = time.monotonic()
        code = srv.stop(sig)
        took = time.monotonic() - t0
        t.join(10)
        s, h, b = res.get("r", (0, {}, b""))
        check(code == 0 and took < 5, "%s: exit %d after %.1f s" % (name, code, took))
        check(s == 200 and b[:2] == b"\x1f\x8b", "%s, the profile in flight: %d %r" % (name, s, b[:40]))
        check(any("stopped (signal %d)" % sig in l for l in srv.lines), "%s: serve said %r" % (name, srv.lines[-2:]))
        states = [open("/proc/%d/task/%s/stat" % (fx.pid, tid)).read().rsplit(")", 1)[1].split()[0]
                  for tid in os.listdir("/proc/%d/task" % fx.pid)]
        ok = check_untouched(fx.pid, label=name)
        ok = check(tracer_pid(fx.pid) == 0 and not set(states) & {"t", "T"}, "states %r" % states) and ok
        count_line("serve-%s" % name.lower(), exit=code, untouched=int(ok), answered=int(s == 200))


def raw_exchange(srv, data, timeout=10):
    """What the server sends back on a connection of its own for the bytes
    data (b"" when it closes without a word); an error ends it early."""
    sock = socket.create_connection((srv.host, int(srv.port)), timeout=timeout)
    reply = b""
    try:
        sock.sendall(data)
        while True:
            part = sock.recv(65536)
            if not part:
                break
            reply += part
    except ConnectionResetError:
        pass        # closed with our bytes unread: a reset after what it sent
    finally:
        sock.close()
    return reply


def test_limits():
    """--max-connections, the POST body limit, libmicrohttpd's request-line
    and header limits, and the error statuses no other test provokes."""
    with Fixture("waits") as fx:
        # --max-connections N: N connections are taken (each answers when
        # it asks, below); the next is closed at once without an answer
        # (README: "more are not accepted"); once one of the N closes, a
        # new one is served.
        n = 3
        with Server(["--max-connections", str(n), str(fx.pid)]) as srv:
            held = [socket.create_connection((srv.host, int(srv.port)), timeout=10) for _ in range(n)]
            extra = raw_exchange(srv, b"GET /debug/pprof/cmdline HTTP/1.1\r\nHost: x\r\n\r\n")
            check(extra == b"", "connection %d of --max-connections %d: answered %r" % (n + 1, n, extra[:60]))
            answered = 0
            for sock in held:
                sock.sendall(b"GET /debug/pprof/cmdline HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                with sock.makefile("rb") as f:
                    answered += f.readline().startswith(b"HTTP/1.1 200 ")
                sock.close()
            check(answered == n, "of the %d connections held, %d answered" % (n, answered))
            after = wait_for(lambda: srv.status("cmdline") == 200, 10)
            check(after, "no connection served once the held ones closed")
            count_line("serve-max-connections", limit=n, held_answered=answered, extra_answered=int(extra != b""),
                       served_after=int(bool(after)))
        # --offcpu-hz 0: block and mutex are not collected; 501 saying so
        # (net/http/pprof has no such case: its profiles are always there).
        with Server(["--offcpu-hz", "0", str(fx.pid)]) as srv:
            for path in ("block", "mutex?debug=1", "block?seconds=1"):
                error_case(srv, path, 501, "%s profile not collected: --offcpu-hz 0" % path.split("?")[0])
            # A POST body of 64 KiB is read; one byte more is 413.
            s, _, b = srv.get("symbol", method="POST", body=b"0x1+" * 16384)
            check(s == 200 and b.startswith(b"num_symbols: 1\n"), "POST of 64 KiB: %d %r" % (s, b[:60]))
            for size in (65537, 1 << 20):
                error_case(srv, "symbol", 413, "request body larger than 65536 bytes", method="POST",
                           data=b"0" * size)
            # 32 KiB of memory per connection holds the request line and
            # headers: past it libmicrohttpd answers 414 or 431 itself
            # (HTML, not Go's text), and the server runs on.
            for what, want, req in (
                    ("request line", b"HTTP/1.1 414 ", b"GET /debug/pprof/cmdline?" + b"a" * 40000 + b" HTTP/1.1\r\n"
                     b"Host: x\r\n\r\n"),
                    ("header", b"HTTP/1.1 431 ", b"GET /debug/pprof/cmdline HTTP/1.1\r\nHost: x\r\nX-Big: " +
                     b"a" * 40000 + b"\r\n\r\n")):
                reply = raw_exchange(srv, req)
                check(reply.startswith(want), "a 40 KB %s: %r, want %r" % (what, reply[:60], want))
            check(srv.status("cmdline") == 200, "server dead after the big requests")
        # perf_event refused (a seccomp filter, as Docker's default
        # profile): the cumulative profiles answer 501 with the reason,
        # the same each time (not the reasons piled up); a CPU profile
        # with --engine perf, a trace and a heap window answer Go's 500.
        wrapper = fixture_path("no_perf_event")
        if not wrapper:
            print("no_perf_event not built: the 501 and 500 without perf_event not checked")
        else:
            with Server(["--engine", "perf", str(fx.pid)], wrap=[wrapper]) as srv:
                why = "perf_event_open refused (EPERM) by a seccomp filter"
                for path in ("block", "mutex", "block", "threadcreate?debug=1", "mutex?seconds=1"):
                    s, h, b = srv.get(path)
                    name = path.split("?")[0]
                    check(s == 501 and h.get("x-go-pprof") == "1" and b.count(b"refused (EPERM)") == 1 and
                          b.startswith(("%s profile not collected: %s" % (name, why)).encode()),
                          "%s without perf_event: %d %r" % (path, s, b[:300]))
                for path, head in (("profile?seconds=1", "Could not enable CPU profiling: " + why),
                                   ("trace?seconds=1", "Could not enable tracing: " + why),
                                   ("heap?seconds=1", "Could not enable heap profiling: uprobes are not permitted")):
                    s, h, b = srv.get(path)
                    check(s == 500 and h.get("x-go-pprof") == "1" and b.startswith(head.encode()),
                          "%s without perf_event: %d %r" % (path, s, b[:200]))
                page = srv.get("")[2].decode()
                check(page.count("block: " + why) == 1 and page.count("mutex: " + why) == 1,
                      "index without perf_event: %r" % page[-700:])
                check(srv.get("goroutine?debug=1")[0] == 200, "goroutine without perf_event: not served")
        foreign_tracer(fx)
        check_untouched(fx.pid, label="limits")


def foreign_tracer(fx):
    """Another tracer (strace -f) on the target: a dump cannot seize its
    threads, so goroutine is Go's 500 and threadcreate 501, each naming
    the tracer, as the index does; once it detaches both are served (the
    501 is not kept, nor the index's note)."""
    if not shutil.which("strace"):
        print("strace not installed: the 500 and 501 under another tracer not checked")
        return
    with Server([str(fx.pid)]) as srv:
        st = subprocess.Popen(["strace", "-f", "-o", os.devnull, "-p", str(fx.pid)], stderr=subprocess.DEVNULL)
        try:
            traced = wait_for(lambda: all(tracer_pid(fx.pid, t) == st.pid for t in tids(fx.pid)), 20)
            check(traced, "strace did not attach to every thread")
            who = "is already traced by PID %d (strace)" % st.pid
            for path, status, head in (("goroutine?debug=1", 500, "thread dump failed: "),
                                       ("threadcreate", 501, "threadcreate profile not collected: ")):
                s, h, b = srv.get(path)
                check(s == status and h.get("x-go-pprof") == "1" and b.startswith(head.encode()) and
                      who.encode() in b, "%s under strace: %d %r" % (path, s, b[:200]))
        finally:
            st.terminate()
            st.wait()
        check(who in srv.get("")[2].decode(), "the index does not say why threadcreate is not collected "
              "under strace")
        wait_for(lambda: all(tracer_pid(fx.pid, t) == 0 for t in tids(fx.pid)), 20)
        for path in ("goroutine?debug=1", "threadcreate"):
            check(srv.get(path)[0] == 200, "%s once strace detached: not served" % path)
        # Collected now: the index no longer says it is not.
        check(who not in srv.get("")[2].decode(), "the index still says threadcreate is not collected "
              "once it is")


def stopped_or_traced(pid):
    """{tid: what} of pid's threads seen stopped ('t', 'T') or with a
    tracer, by /proc, now."""
    seen = {}
    for tid in tids(pid):
        try:
            with open("/proc/%d/task/%d/stat" % (pid, tid)) as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            tracer = tracer_pid(pid, tid)
        except (OSError, IndexError):
            continue        # exited meanwhile
        if state in ("t", "T") or tracer != 0:
            seen[tid] = "state %s, TracerPid %d" % (state, tracer)
    return seen


def test_never_stopped_while_accumulating():
    """While block and mutex accumulate (and are read, cumulative and as
    deltas), no thread of the target is ever seen stopped or traced:
    /proc polled about every 2 ms for 3 s.  Their ticks run at 10 Hz; a
    tick that stopped the threads (ptrace) would stop each of them 30
    times in the window."""
    with Fixture("contended") as fx, Server([str(fx.pid)]) as srv:
        first = {name: folded_total(srv.get(name)[2]) for name in ("block", "mutex")}
        reads = {"n": 0, "bad": 0}

        def read_them():
            for path in ("block", "mutex", "block?seconds=1", "mutex", "block", "mutex?seconds=1"):
                reads["n"] += 1
                reads["bad"] += srv.get(path)[0] != 200
        reader = threading.Thread(target=read_them)
        reader.start()
        polls, seen = 0, {}
        end = time.monotonic() + 3
        while time.monotonic() < end or reader.is_alive():
            seen.update(stopped_or_traced(fx.pid))
            polls += 1
            time.sleep(0.002)
        reader.join()
        last = {name: folded_total(srv.get(name)[2]) for name in ("block", "mutex")}
        check(not seen, "threads seen stopped or traced while block and mutex accumulate: %r" % seen)
        check(reads["bad"] == 0, "%d of %d reads meanwhile failed" % (reads["bad"], reads["n"]))
        # They did accumulate meanwhile: the window observed is theirs.
        check(all(last[n] > first[n] for n in last), "block and mutex did not grow: %r then %r" % (first, last))
        check_untouched(fx.pid, label="accumulating")
        count_line("serve-never-stopped", polls=polls, threads=len(tids(fx.pid)), seen_stopped=len(seen),
                   reads=reads["n"], block_grew_ms=(last["block"] - first["block"]) // 1000000,
                   mutex_grew_ms=(last["mutex"] - first["mutex"]) // 1000000)


def test_target_exits():
    target = subprocess.Popen(["sleep", "600"])
    srv = Server([str(target.pid)])
    res = {}
    t = threading.Thread(target=lambda: res.update(r=srv.get("mutex?seconds=4")))
    t.start()
    time.sleep(1)
    target.kill()
    target.wait()
    gone = wait_for(lambda: srv.status("cmdline") == 410, 5)
    t.join(10)
    code = srv.proc.wait(timeout=20)
    check(gone, "no 410 after the target exited")
    check(res.get("r", (0,))[0] == 200, "the request in flight: %r" % (res.get("r", (0,))[0],))
    check(code == 0 and any("exited; stopped serving" in l for l in srv.lines), "serve: %d %r" % (code, srv.lines))
    count_line("serve-target-exit", status_410=int(bool(gone)), in_flight_200=int(res.get("r", (0,))[0] == 200),
               exit=code)


def test_auth_unix_public():
    d = tempfile.mkdtemp(prefix="pprofc-serve-")
    token, basic = os.path.join(d, "token"), os.path.join(d, "basic")
    with open(token, "w") as f:
        f.write("s3cret\n")
    with open(basic, "w") as f:
        f.write("alice:pw\n")
    os.chmod(token, 0o644)
    with Fixture("waits") as fx:
        r = pprofc("serve", "--token-file", token, fx.pid)
        check(r.returncode == 1 and "chmod 600" in r.stderr, "token readable by others: %r" % r.stderr)
        os.chmod(token, 0o600)
        os.chmod(basic, 0o600)
        with Server(["--token-file", token, "--basic-auth-file", basic, str(fx.pid)]) as srv:
            s, h, b = srv.get("cmdline")
            check(s == 401 and h.get("x-go-pprof") == "1", "no credentials: %d" % s)
            check(srv.get("cmdline", headers={"Authorization": "Bearer s3cret"})[0] == 200, "token refused")
            check(srv.get("cmdline", headers={"Authorization": "Bearer s3cre"})[0] == 401, "short token accepted")
            import base64
            for cred, want in (("alice:pw", 200), ("alice:px", 401)):
                hdr = {"Authorization": "Basic " + base64.b64encode(cred.encode()).decode()}
                check(srv.get("cmdline", headers=hdr)[0] == want, "basic %s: want %d" % (cred, want))
        path = os.path.join(d, "pprof.sock")
        srv = Server(["--listen", "unix:" + path, str(fx.pid)])
        mode = stat.S_IMODE(os.stat(path).st_mode)
        r = subprocess.run(["curl", "-s", "--unix-socket", path, "http://x/debug/pprof/cmdline"],
                           capture_output=True, timeout=30)
        check(mode == 0o600 and r.stdout.startswith(fx.path.encode()), "unix socket: mode %o, %r" % (mode, r.stdout))
        check(srv.stop() == 0 and not os.path.exists(path), "unix socket left behind")
        srv = Server(["--listen", "0.0.0.0:0", str(fx.pid)])
        check(any("warning" in l and "not a loopback address" in l for l in srv.lines), "no warning: %r" % srv.lines)
        srv.stop()
        r = pprofc("serve", "--listen", "nonsense", fx.pid)
        check(r.returncode == 2 and "--listen" in r.stderr, "bad --listen: %d %r" % (r.returncode, r.stderr))
        check_untouched(fx.pid, label="auth")
    shutil.rmtree(d, ignore_errors=True)


PY_ALLOC = """
import sys, time
keep = []
print("ready", flush=True)
while True:
    keep.append(bytearray(100000))
    keep = keep[-200:]
    time.sleep(0.001)
"""


def test_heap():
    """serve PID: a uprobe window; run --serve: cumulative heap and allocs."""
    py = shutil.which("python3", path="/usr/bin") or "/usr/bin/python3"
    target = subprocess.Popen([py, "-c", PY_ALLOC], stdout=subprocess.PIPE, text=True)
    target.stdout.readline()
    try:
        with Server([str(target.pid)]) as srv:
            for name, typ in (("heap", "inuse_space"), ("allocs", "alloc_space")):
                out, warn = gopprof_top(srv.url + name + "?seconds=2")
                check("Type: %s" % typ in out and not warn, "%s?seconds=2: %r %r" % (name, out[:300], warn))
            # One heap window at a time: a second while the first's probes
            # are in place (the kernel's [uprobes] area, mapped in the
            # target at a probe's first hit, and already there from the
            # windows above: so a fresh target) is Go's 500.
            second_window_refused(py)
    finally:
        target.kill()
        target.wait()
    srv = Server(["--", py, "-c", PY_ALLOC], run=True)
    time.sleep(1)
    types = []
    for path, typ in (("heap", "inuse_space"), ("allocs", "alloc_space"), ("allocs?seconds=1", "alloc_space")):
        out, warn = gopprof_top(srv.url + path)
        ok = check("Type: %s" % typ in out and not warn and bool(re.search(r"Total samples = [1-9]", out)),
                   "run --serve %s: %r %r" % (path, out[:300], warn))
        types.append(bool(ok))
    s, _, b = srv.get("cmdline")
    check(s == 200 and b.split(b"\0")[0] == py.encode(), "run --serve cmdline %r" % b[:40])
    code = srv.stop(signal.SIGTERM)
    check(code == 128 + signal.SIGTERM, "run --serve: exit %d, want the command's 143" % code)
    count_line("serve-heap", views_ok=sum(types), exit=code)


def second_window_refused(py):
    target = subprocess.Popen([py, "-c", PY_ALLOC], stdout=subprocess.PIPE, text=True)
    target.stdout.readline()
    try:
        with Server([str(target.pid)]) as srv:
            res = {}
            t = threading.Thread(target=lambda: res.update(r=srv.get("heap?seconds=4")))
            t.start()

            def probed():
                with open("/proc/%d/maps" % target.pid) as f:
                    return "[uprobes]" in f.read()
            if check(wait_for(probed, 20), "heap window: no [uprobes] area in the target"):
                error_case(srv, "allocs?seconds=1", 500, "Could not enable heap profiling: a heap or allocs "
                           "window of this process is already in progress")
            t.join(60)
            check(res.get("r", (0,))[0] == 200, "the first window: %r" % (res.get("r", (0,))[0],))
    finally:
        target.kill()
        target.wait()


def test_redis():
    exe = shutil.which("redis-server")
    if not exe:
        print("redis-server not installed: skipped that part")
        return
    d = tempfile.mkdtemp(prefix="pprofc-redis-")
    redis = subprocess.Popen([exe, "--port", "0", "--unixsocket", os.path.join(d, "r.sock"), "--save", "",
                              "--dir", d], stdout=subprocess.DEVNULL)
    try:
        wait_for(lambda: os.path.exists(os.path.join(d, "r.sock")), 10)
        with Server([str(redis.pid)]) as srv:
            out, warn = gopprof_top(srv.url + "profile?seconds=1")
            # Debian's redis-server is a link to redis-check-rdb: the file named.
            check("File: redis" in out and "Type: cpu" in out and not warn, "redis profile: %r %r" % (out[:300], warn))
            s, _, b = srv.get("goroutine?debug=2")
            check(s == 200 and b"aeMain" in b, "redis goroutine?debug=2: %d %r" % (s, b[:200]))
            out, warn = gopprof_top(srv.url + "block")
            check("Type: delay" in out and not warn, "redis block: %r" % warn)
            count_line("serve-redis", served=1)
        check_untouched(redis.pid, label="redis")
    finally:
        redis.kill()
        redis.wait()
        shutil.rmtree(d, ignore_errors=True)


# ---- debug=1: Go's legacy texts; --linger; the idle server ---------------

def raw_stacks(path):
    """{(address, ...): [values]} of a profile by go tool pprof -raw,
    samples with the same addresses summed (the legacy texts have no
    labels), and how many samples went into each."""
    text, err = gopprof("-raw", path)
    locs, stacks, parts = {}, {}, {}
    body, _, tail = text.partition("\nLocations\n")
    for line in tail.splitlines():
        m = re.match(r"^\s+(\d+): 0x([0-9a-f]+) ", line)
        if m:
            locs[m.group(1)] = int(m.group(2), 16)
    for line in body.split("Samples:", 1)[-1].splitlines()[2:]:
        m = re.match(r"^\s*(-?\d+(?:\s+-?\d+)*):((?:\s+\d+)*)\s*$", line)
        if not m:
            continue
        key = tuple(locs.get(i, -1) for i in m.group(2).split())
        vals = [int(v) for v in m.group(1).split()]
        old = stacks.get(key, [0] * len(vals))
        stacks[key] = [a + b for a, b in zip(old, vals)]
        parts[key] = parts.get(key, 0) + 1
    return stacks, parts


def same_stacks(legacy, proto, slack):
    """Whether two raw_stacks agree stack by stack; slack(value, parts):
    the difference allowed (heap values are unsampled twice, by pprofc's
    exp() and by Go's math.Exp)."""
    (a, _), (b, parts) = legacy, proto
    bad = [(k, a.get(k), v) for k, v in b.items()
           if k not in a or any(abs(x - y) > slack(y, parts[k]) for x, y in zip(a[k], v))]
    return not bad and set(a) == set(b), bad[:3]


def tabwriter_ok(text):
    """Whether Go's text/tabwriter, set up as runtime/pprof sets it up,
    aligns the '#' columns of text as it is (tests/targets/tabwriter_check.go)."""
    tool = fixture_path("tabwriter_check")
    if not tool:
        print("tabwriter_check not built (no go): alignment not checked")
        return True
    r = subprocess.run([tool], input=text, capture_output=True, text=True, timeout=60)
    return r.returncode == 0 and r.stdout == text


def save(data, suffix):
    f = tempfile.NamedTemporaryFile(suffix=suffix, delete=False)
    f.write(data)
    f.close()
    return f.name


def gone_cases(srv, paths):
    """Each path answers 410 with Go's kind of text error."""
    ok = 0
    for path in paths:
        s, h, b = srv.get(path)
        ok += check(s == 410 and b == b"process %d exited: nothing more to profile\n" % srv.target and
                    h.get("x-go-pprof") == "1", "after the exit, %s: %d %r" % (path, s, b[:80]))
    return ok


def test_legacy_contention_and_linger():
    """block and mutex debug=1 as Go's legacy texts; serve --linger keeps
    them after the target exited, and then they are frozen: the text read
    by go tool pprof's legacy parser gives the same stacks and values as
    the protobuf, exactly."""
    with Fixture("contended") as fx:
        srv = Server(["--linger", str(fx.pid)])
        for name in ("block", "mutex"):
            check(srv.get(name)[0] == 200, "%s: not served" % name)
        # Until the holder's stack is in the mutex text (a state), and the
        # block text has a record: each kind starts accumulating at its
        # first request, and either may be the later to have one.
        wait_for(lambda: b"slow_critical_section" in srv.get("mutex?debug=1")[2], 30)
        wait_for(lambda: re.search(rb"^\d+ \d+ @( 0x[0-9a-f]+)+$", srv.get("block?debug=1")[2], re.M), 30)
        heads = {"block": "--- contention:\ncycles/second=1000000000\n",
                 "mutex": "--- mutex:\ncycles/second=1000000000\nsampling period=1\n"}
        live = {}
        for name, head in heads.items():
            s, h, b = srv.get(name + "?debug=1")
            live[name] = b.decode()
            check(s == 200 and h["content-type"] == "text/plain; charset=utf-8" and live[name].startswith(head),
                  "%s?debug=1: %d %r" % (name, s, b[:120]))
            check(re.search(r"^\d+ \d+ @( 0x[0-9a-f]+)+$", live[name], re.M), "%s?debug=1: no record" % name)
            check(re.search(r"^#\t0x[0-9a-f]+\t\S.*\+0x[0-9a-f]+\t+\S+:\d+$", live[name], re.M),
                  "%s?debug=1: no '#' frame line" % name)
            check(tabwriter_ok(live[name]), "%s?debug=1: columns not as Go's tabwriter aligns them:\n%s" %
                  (name, live[name][:600]))
        fx.kill()
        exited = wait_for(lambda: any("exited; serving its last profiles" in l for l in srv.lines), 20)
        check(exited, "--linger: no line after the exit: %r" % srv.lines[-3:])
        gone = gone_cases(srv, ["profile?seconds=1", "goroutine", "goroutine?debug=2", "cmdline",
                                "mutex?seconds=1", "heap?seconds=1"])
        same = 0
        for name in heads:
            _, _, text = srv.get(name + "?debug=1")
            s, _, proto = srv.get(name)
            tpath, ppath = save(text, ".txt"), save(proto, ".pb.gz")
            legacy, pb = raw_stacks(tpath), raw_stacks(ppath)
            ok, bad = same_stacks(legacy, pb, lambda v, n: 0)
            ok = check(ok and pb[0] and s == 200, "%s: legacy text and protobuf differ: %r" % (name, bad)) and ok
            # Through the URL, as a user would: go tool pprof symbolizes
            # the text's addresses with /debug/pprof/symbol, after the exit.
            out, warn = gopprof_top(srv.url + name + "?debug=1")
            total = re.search(r"of (\S+) total", out)
            out_pb, _ = gopprof_top(ppath)
            ok = check("Type: delay" in out and not warn and total and
                       "of %s total" % total.group(1) in out_pb and
                       ("holder" in out or name == "block"),
                       "go tool pprof %s?debug=1 after the exit: %r %r" % (name, out[:400], warn)) and ok
            same += bool(ok)
            os.unlink(tpath)
            os.unlink(ppath)
        code = srv.stop()
        check(code == 0, "serve --linger: exit %d after SIGTERM" % code)
    count_line("serve-legacy-contention", same=same, of=2, gone_410=gone, exit=code)


def test_run_linger_heap():
    """run --serve --linger: heap?debug=1 while the command runs (Go's
    header, /proc/PID/status in place of runtime.MemStats), then after it
    exited: the final heap served, its text equal to its protobuf."""
    srv = Server(["--linger", "--", fixture_path("heap_alloc"), "--hold", "8", "64"], run=True,
                 stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    for line in srv.proc.stdout:
        if line.strip() == "done":
            break
    s, _, b = srv.get("heap?debug=1")
    text = b.decode()
    head = re.match(r"heap profile: (\d+): (\d+) \[(\d+): (\d+)\] @ heap/1048576\n", text)
    check(s == 200 and head and int(head.group(2)) > 0 and int(head.group(4)) >= int(head.group(2)),
          "heap?debug=1: %d %r" % (s, text[:200]))
    with open("/proc/%d/status" % srv.target) as f:
        rss = int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1)) * 1024
    m = re.search(r"^# VmRSS = (\d+)$", text, re.M)
    check(m and abs(int(m.group(1)) - rss) <= rss // 10, "# VmRSS %r, /proc says %d" % (m and m.group(1), rss))
    check(tabwriter_ok(text), "heap?debug=1: columns not as Go's tabwriter aligns them:\n%s" % text[:600])
    srv.proc.stdin.close()
    exited = wait_for(lambda: any("exited; serving its last profiles" in l for l in srv.lines), 30)
    check(exited, "run --serve --linger: no line after the exit: %r" % srv.lines[-3:])
    gone = gone_cases(srv, ["profile?seconds=1", "goroutine?debug=1", "cmdline"])
    same = 0
    for name, typ in (("heap", "inuse_space"), ("allocs", "alloc_space")):
        _, _, text = srv.get(name + "?debug=1")
        _, _, proto = srv.get(name)
        check(b"# not readable: the process exited" in text, "%s?debug=1 after the exit: %r" % (name, text[-200:]))
        tpath, ppath = save(text, ".txt"), save(proto, ".pb.gz")
        legacy, pb = raw_stacks(tpath), raw_stacks(ppath)
        ok, bad = same_stacks(legacy, pb, lambda v, n: 2 * n + abs(v) // 10 ** 9)
        ok = check(ok and len(pb[0]) > 3, "%s: legacy text and protobuf differ: %r" % (name, bad)) and ok
        out, warn = gopprof_top(srv.url + name + "?debug=1")
        ok = check("Type: inuse_space" in out and not warn, "go tool pprof %s?debug=1: %r %r" % (name, out[:300], warn)) and ok
        out, warn = gopprof_top(srv.url + name)
        ok = check("Type: %s" % typ in out and not warn, "go tool pprof %s after the exit: %r" % (name, out[:300])) and ok
        same += bool(ok)
        os.unlink(tpath)
        os.unlink(ppath)
    code = srv.stop()
    check(code == 0, "run --serve --linger: exit %d, want the command's 0" % code)
    count_line("serve-legacy-heap", same=same, of=2, gone_410=gone, exit=code)


def syscalls(pid, seconds):
    """System calls of every thread of pid over seconds, by strace -c -f."""
    out = tempfile.NamedTemporaryFile(suffix=".strace", delete=False)
    out.close()
    subprocess.run(["timeout", "-s", "INT", str(seconds), "strace", "-f", "-c", "-o", out.name, "-p", str(pid)],
                   capture_output=True, timeout=seconds + 30)
    with open(out.name) as f:
        total = [l.split() for l in f if l.split()[-1:] == ["total"]]
    os.unlink(out.name)
    return int(total[0][3]) if total else -1


def test_idle():
    """An idle server makes a handful of system calls per second (strace
    counts them: an oracle that does not depend on the machine's speed);
    block, asked for, ticks the threads until --offcpu-keep passes without
    a request, then the server is idle again."""
    if not shutil.which("strace"):
        print("strace not installed: idle check skipped")
        return
    with Fixture("many_threads", ["50", "10"]) as fx:
        srv = Server(["--offcpu-keep", "2", str(fx.pid)])
        threads = lambda: len(os.listdir("/proc/%d/task" % srv.proc.pid))
        base = threads()
        idle = syscalls(srv.proc.pid, 4)
        srv.get("block")
        busy = syscalls(srv.proc.pid, 2)
        ended = wait_for(lambda: threads() == base, 30)
        again = syscalls(srv.proc.pid, 4)
        check(0 <= idle <= 20 and 0 <= again <= 20, "idle server: %d and %d system calls in 4 s" % (idle, again))
        check(busy > 200, "block collecting: only %d system calls in 2 s (the count sees nothing?)" % busy)
        check(ended, "block still collecting after --offcpu-keep 2: %d threads, %d idle" % (threads(), base))
        check(srv.get("block")[0] == 200, "block after it ended: not started again")
        srv.stop()
        check_untouched(fx.pid, label="idle")
    count_line("serve-idle", syscalls_idle_4s=idle, syscalls_block_2s=busy, syscalls_after_keep_4s=again)


def require_perf():
    """The cumulative block and mutex profiles need perf_event (they never
    stop the target): exit 77 where it is refused."""
    p = subprocess.Popen(["sleep", "60"])
    try:
        r = pprofc("attach", "--engine", "perf", "--seconds", "0.2", "-o", "/dev/null", p.pid)
    finally:
        p.kill()
        p.wait()
    if r.returncode != 0:
        print("skipped: perf_event refused here: %s" % r.stderr.strip())
        sys.exit(77)


if __name__ == "__main__":
    require_ptrace()
    require_perf()
    if not shutil.which("go") or not shutil.which("curl"):
        print("skipped: go tool pprof and curl are the oracles here")
        sys.exit(77)
    t0 = time.monotonic()
    test_index_and_errors()
    test_goroutine_texts()
    test_gopprof_and_delta()
    test_offcpu_against_kernel()
    test_parallel_and_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        test_signal_mid_request(sig)
    test_target_exits()
    test_limits()
    test_never_stopped_while_accumulating()
    test_auth_unix_public()
    test_heap()
    test_legacy_contention_and_linger()
    test_run_linger_heap()
    test_idle()
    test_redis()
    print("took %.0f s" % (time.monotonic() - t0))
    done()
