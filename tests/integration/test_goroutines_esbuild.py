"""Goroutines of Go binaries without DWARF built by other Go releases
(issue 15 item 3): esbuild as published on npm, stripped, one per Go
version golayout.c has a table for and esbuild has a release of:

  esbuild-linux-64@0.13.15     Go 1.17.2
  esbuild-linux-64@0.14.39     Go 1.18.1
  @esbuild/linux-x64@0.17.19   Go 1.20.4
  @esbuild/linux-x64@0.23.1    Go 1.22.5   ("created by F in goroutine N" from 1.21)
  @esbuild/linux-x64@0.25.0    Go 1.23.5
  @esbuild/linux-x64@0.27.0    Go 1.25.4
  @esbuild/linux-x64@0.28.2    Go 1.26.5

Fetched with npm as test_gopclntab_esbuild.py does (skipped, 77, without
npm or the network).  Each runs as `esbuild --serve=127.0.0.1:0` with its
stdin a pipe we hold open: its goroutines sit still (main waiting, one
reading stdin in a system call, one accepting).  pprofc dumps it, then
SIGQUIT makes Go print every goroutine (GOTRACEBACK unset: Go 1.17 and 1.18
print them all on SIGQUIT, and so does 1.26, with the runtime's own
goroutines and frames, as a crash shows them).  The oracle, goroutine by
goroutine: the same ids (Go's runtime goroutines, started in package
runtime, left out as pprofc and goroutine?debug=2 leave them out), the
same wait reasons, the same functions frame by frame with the same
file:line (Go's unexported runtime frames and runtime.goexit left out,
as at Go's default traceback level), the same "created by", with "in
goroutine N" for 1.26.  A crash traceback also shows the compiler's
wrapper functions, which debug=2 and pprofc leave out: the one such frame
in these binaries, net/http.(*onceCloseListener).Accept (a method
promoted from its embedded net.Listener), is the only frame allowed to
be missing.
"""
import os
import re
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from fixture import check, pprofc, check_untouched, wait_for, failure_count, forget_failures
from test_gopclntab_esbuild import fetch
from golib import each_esbuild
from test_goroutines import parse_dump

PACKAGES = [
    ("esbuild-linux-64", "0.13.15", "go1.17.2"),
    ("esbuild-linux-64", "0.14.39", "go1.18.1"),
    ("@esbuild/linux-x64", "0.17.19", "go1.20.4"),
    ("@esbuild/linux-x64", "0.23.1", "go1.22.5"),
    ("@esbuild/linux-x64", "0.25.0", "go1.23.5"),
    ("@esbuild/linux-x64", "0.27.0", "go1.25.4"),
    ("@esbuild/linux-x64", "0.28.2", "go1.26.5"),
]
WRAPPERS = {"net/http.(*onceCloseListener).Accept"}
# Go 1.21+ headers: "goroutine 7 gp=0x... m=2 mp=0x... [syscall]:"
GO_HEADER_EXTRA = re.compile(r"^(goroutine \d+) gp=\S+ m=\S+(?: mp=\S+)? \[", re.M)


def shown_by_default(name):
    """Go's showfuncinfo at its default level: no unexported runtime frame."""
    return not (name.startswith("runtime.") and not name[8:9].isupper())


def go_goroutines(text):
    """Go's SIGQUIT dump as parse_dump reads it, less goroutine 0 (an M's
    own stack) and the runtime's goroutines, with its frames as Go's
    default level shows them."""
    blocks, _ = parse_dump(GO_HEADER_EXTRA.sub(r"\1 [", text), oracle=True)
    out = {}
    for goid, b in blocks.items():
        names = [f[0] for f in b["frames"]]
        outer = [n for n in names if n != "runtime.goexit"][-1:]
        if goid == 0 or (outer and outer[0].startswith("runtime.") and outer[0] != "runtime.main"):
            continue
        b["frames"] = [f for f in b["frames"] if shown_by_default(f[0])]
        out[goid] = b
    return out


def created_lines(text):
    """{goid: its "created by ..." line} of each block of a dump."""
    out = {}
    for block in re.split(r"\n\s*\n", text):
        m = re.match(r"goroutine (\d+) ", block)
        c = re.search(r"^created by .*$", block, re.M)
        if m and c:
            out[int(m.group(1))] = c.group(0)
    return out


def check_esbuild(label, binary, version):
    err = tempfile.NamedTemporaryFile(prefix="pprofc-esbuild-", suffix=".stderr", delete=False)
    env = {k: v for k, v in os.environ.items() if k != "GOTRACEBACK"}
    proc = subprocess.Popen([binary, "--serve=127.0.0.1:0"], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=err, env=env)
    try:
        def serving():
            with open(err.name, errors="replace") as f:
                return "127.0.0.1:" in f.read()
        check(wait_for(serving, timeout=30), "%s: not serving" % label)

        def reading():      # the stdin reader in its read(2)
            r = pprofc("dump-threads", "-v", proc.pid)
            return r if r.returncode == 0 and "main.main.func1.1" in r.stdout else None
        r = wait_for(reading, timeout=30, step=0.2)
        check(r is not None, "%s: no goroutine reading stdin in pprofc's dump" % label)
        check_untouched(proc.pid, label=label)
    except Exception:
        proc.kill()
        raise
    proc.send_signal(signal.SIGQUIT)
    proc.wait(timeout=30)
    proc.stdin.close()
    with open(err.name, errors="replace") as f:
        text = f.read()
    os.unlink(err.name)
    if not r:
        return
    check(("pprofc: %s: " % version) in r.stderr, "%s: -v says %r" % (label, r.stderr))
    ours_text = r.stdout.split("\nthread ")[0]
    ours, _ = parse_dump(ours_text, oracle=False)
    oracle = go_goroutines(text)
    check(len(oracle) >= 3, "%s: Go's dump has %d goroutines" % (label, len(oracle)))
    check(set(ours) == set(oracle), "%s: goroutines %s by pprofc, %s by Go" %
          (label, sorted(ours), sorted(oracle)))
    go_created = created_lines(GO_HEADER_EXTRA.sub(r"\1 [", text))
    our_created = created_lines(ours_text)
    for goid, want in oracle.items():
        got = ours.get(goid)
        if not got:
            continue
        check(got["header"] == want["header"], "%s: goroutine %d [%s] by pprofc, [%s] by Go" %
              (label, goid, got["header"], want["header"]))
        names = [f[0] for f in got["frames"]]
        expect = [f for f in want["frames"] if f[0] not in WRAPPERS or f[0] in names]
        check(names == [f[0] for f in expect], "%s: goroutine %d: %s by pprofc, %s by Go" %
              (label, goid, names, [f[0] for f in want["frames"]]))
        for g, w in zip(got["frames"], expect):
            check((g[2], g[3]) == (w[2], w[3]), "%s: goroutine %d: %s at %s:%s, Go says %s:%s" %
                  (label, goid, g[0], g[2], g[3], w[2], w[3]))
        check(our_created.get(goid) == go_created.get(goid), "%s: goroutine %d %r by pprofc, %r by Go" %
              (label, goid, our_created.get(goid), go_created.get(goid)))
    if version >= "go1.21":
        check(any(" in goroutine " in c for c in our_created.values()),
              "%s: no 'created by F in goroutine N': %s" % (label, our_created))
    print("%s: %d goroutines equal to Go's (%s)" % (label, len(oracle), ", ".join(
        "%d [%s]" % (g, oracle[g]["header"]) for g in sorted(oracle))))


def check_settled(label, binary, version):
    """esbuild is not ours to keep still: a goroutine of its may start,
    end or change state between pprofc's dump and the SIGQUIT that makes
    Go's.  So a mismatch is tried again on a new process, at most 3 times
    in all; one that comes back every time fails."""
    for attempt in range(3):
        mark = failure_count()
        check_esbuild(label, binary, version)
        if failure_count() == mark or attempt == 2:
            return
        print("%s: esbuild's goroutines moved between the two dumps (above): again, on a new process"
              % label)
        forget_failures(mark)


def main():
    each_esbuild(PACKAGES, check_settled, fetch)


if __name__ == "__main__":
    main()
