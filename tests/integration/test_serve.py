"""pprofc serve PID and run --serve: Go's /debug/pprof/ endpoint, checked
with the real go tool pprof and with plain HTTP against real processes.

The index and every error status and body (net/http/pprof's words,
X-Go-Pprof on text errors, nosniff everywhere); goroutine?debug=1 and
debug=2 against dump-threads on a settled fixture; cmdline's bytes;
symbol; go tool pprof -top on profile, goroutine, block, mutex, heap and
allocs (loads, no warning, the right sample type) and -seconds 2; a mutex
delta against the difference of two cumulative fetches; parallel requests
while a CPU profile runs (a second one gets Go's 500); 100 requests with
no fd or memory growth; a malformed and a huge request; a client leaving
mid-profile; SIGTERM mid-request (exit 0, target untouched); the target
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
                     pprofc, require_ptrace, tracer_pid, wait_for)


class Server:
    """pprofc serve (or run --serve) on a free port; its stderr lines are
    kept in .lines as they come."""

    def __init__(self, args, run=False):
        cmd = [PPROFC, "run", "--serve", "127.0.0.1:0"] + args if run else \
              [PPROFC, "serve", "--listen", "127.0.0.1:0", "-v"] + args
        if not run and any(a.startswith("--listen") for a in args):
            cmd = [PPROFC, "serve", "-v"] + args
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
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


def error_case(srv, path, status, body, method="GET", counts=None):
    s, h, b = srv.get(path, method=method)
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
                                "threadcreate"]),
              "index lists %r" % listed)
        count = {n: int(c) for c, _, n in names}
        check(count.get("goroutine") == len(os.listdir("/proc/%d/task" % fx.pid)),
              "index goroutine count %r" % count.get("goroutine"))
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
            ("trace", 404, "trace: pprofc has no execution trace (a timeline of the threads) yet; "
             "profile, block and mutex show where time goes"),
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


def test_parallel_and_loop():
    with Fixture("waits") as fx, Server(["--max-profiles", "8", str(fx.pid)]) as srv:
        results = {}

        def fetch(key, path):
            try:
                results[key] = srv.get(path)[0]
            except OSError as e:
                results[key] = str(e)
        cpu = threading.Thread(target=fetch, args=("cpu", "profile?seconds=3"))
        cpu.start()
        time.sleep(0.5)
        threads = [threading.Thread(target=fetch, args=(p, p)) for p in
                   ("goroutine?debug=2", "goroutine?debug=1", "goroutine", "block", "mutex", "cmdline", "",
                    "mutex?seconds=1", "symbol")]
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
        # 100 requests in a loop: no descriptor or memory growth.
        paths = ["", "cmdline", "goroutine?debug=1", "mutex", "block", "symbol"]
        for i in range(20):
            srv.get(paths[i % len(paths)])

        def fds_rss():
            with open("/proc/%d/status" % srv.proc.pid) as f:
                rss = int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
            return len(os.listdir("/proc/%d/fd" % srv.proc.pid)), rss
        fd0, rss0 = fds_rss()
        bad = sum(1 for i in range(100) if srv.get(paths[i % len(paths)])[0] != 200)
        fd1, rss1 = fds_rss()
        # Under ASan freed memory waits in its quarantine (256 MB), so RSS
        # grows there whatever the code does; its leak check at exit is the
        # test of memory in that build.
        sanitized = os.environ.get("PPROFC_SANITIZE", "none") not in ("", "none")
        check(bad == 0 and fd1 <= fd0 + 1 and (rss1 - rss0 < 4096 or sanitized),
              "100 requests: %d failed, fds %d -> %d, VmRSS %d -> %d kB" % (bad, fd0, fd1, rss0, rss1))
        count_line("serve-loop", requests=100, failed=bad, fds_before=fd0, fds_after=fd1, rss_kb_before=rss0,
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


def test_sigterm_mid_request():
    with Fixture("waits") as fx:
        srv = Server([str(fx.pid)])
        res = {}
        t = threading.Thread(target=lambda: res.update(r=srv.get("profile?seconds=20")))
        t.start()
        time.sleep(1.5)
        t0 = time.monotonic()
        code = srv.stop(signal.SIGTERM)
        took = time.monotonic() - t0
        t.join(10)
        s, h, b = res.get("r", (0, {}, b""))
        check(code == 0 and took < 5, "SIGTERM: exit %d after %.1f s" % (code, took))
        check(s == 200 and b[:2] == b"\x1f\x8b", "the profile in flight: %d %r" % (s, b[:40]))
        states = [open("/proc/%d/task/%s/stat" % (fx.pid, tid)).read().rsplit(")", 1)[1].split()[0]
                  for tid in os.listdir("/proc/%d/task" % fx.pid)]
        ok = check_untouched(fx.pid, label="SIGTERM")
        ok = check(tracer_pid(fx.pid) == 0 and not set(states) & {"t", "T"}, "states %r" % states) and ok
        count_line("serve-sigterm", exit=code, untouched=int(ok), answered=int(s == 200))


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
    test_parallel_and_loop()
    test_sigterm_mid_request()
    test_target_exits()
    test_auth_unix_public()
    test_heap()
    test_redis()
    print("took %.0f s" % (time.monotonic() - t0))
    done()
