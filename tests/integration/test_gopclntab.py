"""Go's own line table (symbolize/gopclntab.c) on a Go 1.19 fixture built
by Debian's Go, with DWARF and symbols (go_lines) and without
(go_lines_stripped, -ldflags=-s -w).  The oracles are Go's own:

- the compiler says what it inlined (go build -gcflags=-m);
- the program's SIGQUIT traceback (GOTRACEBACK=all) gives every
  goroutine's frames with file:line, inlined calls as frames of their own;
- `go tool addr2line` gives, for a pc, the physical function and the
  file:line of the innermost inlined call there.

dump-threads (text and JSON) and a CPU profile (read with go tool pprof)
must agree with them: names without ".abi0", file:line of every frame, and
the inlined readOne and square as frames of their own.
"""
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from fixture import (check, done, fixture_path, pprofc, dump_json, gopprof, check_untouched,
                     functions, require_ptrace, wait_for, SKIP)
from golib import (GO, sigquit_traceback, match_goroutine, our_frames, addr2line, section)

SOURCE = os.path.join(os.path.dirname(__file__), "..", "targets", "go_lines.go")


def start(path):
    err = tempfile.NamedTemporaryFile(prefix="pprofc-go-", suffix=".stderr", delete=False)
    proc = subprocess.Popen([path], stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL,
                            text=True, env=dict(os.environ, GOTRACEBACK="all"))
    line = proc.stdout.readline().strip()
    if line != "ready":
        proc.kill()
        raise RuntimeError("%s did not start: %r" % (path, line))
    return proc, err.name


def test_compiler_inlines():
    """The compiler's own word that readOne and square are inlined (so a
    frame of theirs can only come from the inline tree)."""
    cache = os.path.join(os.environ.get("XDG_CACHE_HOME", tempfile.gettempdir()), "gocache")
    r = subprocess.run([GO, "build", "-gcflags=-m", "-o", os.devnull, SOURCE], capture_output=True,
                       text=True, timeout=300,
                       env=dict(os.environ, GO111MODULE="off", GOFLAGS="-buildvcs=false", GOCACHE=cache))
    for call in ("inlining call to readOne", "inlining call to square"):
        check(call in r.stderr, "go build -gcflags=-m: no %r in %r" % (call, r.stderr[-500:]))


def check_addr2line(name, path, dump):
    """Every Go frame of every thread against go tool addr2line: the frames
    sharing one pc are an inline chain, the first at addr2line's file:line,
    the last named as addr2line names the physical function."""
    groups = []
    for t in dump["threads"]:
        frames = t["frames"]
        i = 0
        while i < len(frames):
            j = i
            while j + 1 < len(frames) and frames[j + 1]["pc"] == frames[i]["pc"]:
                j += 1
            if frames[i]["module"] == path:
                pc = int(frames[i]["pc"], 16) - (0 if i == 0 else 1)
                groups.append((pc, frames[i:j + 1]))
            i = j + 1
    want = addr2line(path, sorted({pc for pc, _ in groups}))
    checked = 0
    for pc, chain in groups:
        if pc not in want or want[pc][0] == "?":
            continue            # not Go code (none in this program)
        fn, file, line = want[pc]
        fn = re.sub(r"\.abi0$", "", fn)
        checked += 1
        if not file:
            # No line for this pc in Go's table (assembly such as
            # runtime.cgoSigtramp, where a signal caught a thread):
            # addr2line says ":-1", pprofc gives none.
            check(not chain[0]["file"] and not chain[0]["line"],
                  "%s 0x%x: %s:%s, go tool addr2line says no line" % (name, pc, chain[0]["file"],
                                                                     chain[0]["line"]))
        else:
            check((chain[0]["file"], chain[0]["line"]) == (file, line),
                  "%s 0x%x: %s:%s, go tool addr2line says %s:%d" % (name, pc, chain[0]["file"],
                                                                    chain[0]["line"], file, line))
        check(chain[-1]["function"] == fn and not chain[-1]["inlined"],
              "%s 0x%x: physical function %s, go tool addr2line says %s" % (name, pc, chain[-1]["function"], fn))
        check(all(f["inlined"] for f in chain[:-1]), "%s 0x%x: inline flags %s" % (name, pc, chain))
    check(checked >= 10, "%s: only %d pcs compared with go tool addr2line" % (name, checked))


def check_dump(name, path, *how):
    proc, errpath = start(path)
    try:
        d = dump_json(proc.pid, *how)
        text = pprofc("dump-threads", *how, proc.pid).stdout
        # The spinner, caught in the loop (and, through a preemption, in
        # the scheduler now and then): dump until caught in main.spin.
        spin = wait_for(lambda: next((t for t in dump_json(proc.pid)["threads"]
                                      if "main.spin" in functions(t)), None), timeout=20, step=0.05)
        check_untouched(proc.pid, label=name)
    except Exception:
        proc.kill()
        raise
    goroutines = sigquit_traceback(proc, errpath)
    with open(errpath) as f:
        traceback_text = f.read()
    os.unlink(errpath)
    check(len(goroutines) >= 3, "%s: %d goroutines in the SIGQUIT traceback" % (name, len(goroutines)))
    for t in d["threads"]:
        for f in t["frames"]:
            check(not (f["function"] or "").endswith(".abi0"), "%s: name %s" % (name, f["function"]))
    reader = [t for t in d["threads"] if "main.reader" in functions(t)]
    check(len(reader) == 1, "%s: %d threads in main.reader" % (name, len(reader)))
    if reader:
        t = reader[0]
        fr = our_frames(t)
        check(t["complete"], "%s reader: incomplete: %s" % (name, t["stack_error"]))
        i = functions(t).index("main.reader")
        check(i > 0 and t["frames"][i - 1]["function"] == "main.readOne" and t["frames"][i - 1]["inlined"]
              and not t["frames"][i]["inlined"] and t["frames"][i - 1]["pc"] == t["frames"][i]["pc"],
              "%s reader: main.readOne is not an inlined frame over main.reader: %s" % (name, fr))
        g, n = match_goroutine(t, goroutines)
        check(g is not None and n >= 4 and "syscall" in g["header"],
              "%s reader: frames %s match no goroutine of Go's traceback %s" %
              (name, fr, [x["frames"] for x in goroutines]))
        # The same in the text output, as Go prints it.
        check(re.search(r"main\.readOne\(\.\.\.\) \(inlined\)\n\t\S+/go_lines\.go:%d\nmain\.reader\(\.\.\.\)\n\t\S+/go_lines\.go:%d \+0x"
                        % (fr[i - 1][2], fr[i][2]), text) is not None,
              "%s: text dump lacks the inlined readOne:\n%s" % (name, text))
    if spin:
        # The spinner ran on since: its callers' frames (return addresses)
        # are the same in Go's traceback.
        # Go prints a goroutine running on another thread than the one
        # SIGQUIT landed on as "stack unavailable": then there is nothing
        # to compare.
        g = [x for x in goroutines if any(f[0] == "main.spinner" for f in x["frames"])]
        ours = our_frames(spin)
        k = functions(spin).index("main.spinner")
        if g or "stack unavailable" not in traceback_text:
            check(len(g) == 1 and ours[k:] == [f for f in g[0]["frames"]
                                               if f[0] in ("main.spinner", "runtime.goexit")],
                  "%s spinner: %s, Go's traceback %s" % (name, ours, g and g[0]["frames"]))
        else:
            print("%s spinner: running on another thread than SIGQUIT's, its stack unavailable in "
                  "Go's traceback: not compared" % name)
    check_addr2line(name, path, d)


def check_profile(name, path):
    """A CPU profile of the spinner: main.square is its own (inline) frame
    over main.spin, and each leaf location's lines are Go's own (addr2line
    on the location's address, the exact pc of a leaf)."""
    proc, errpath = start(path)
    out = os.path.join(tempfile.mkdtemp(prefix="pprofc-gocpu-"), "cpu.pb.gz")
    try:
        r = pprofc("attach", proc.pid, "--profile", "cpu", "--seconds", "2", "-o", out)
        check(r.returncode == 0, "%s: attach failed: %s" % (name, r.stderr))
        check_untouched(proc.pid, label=name)
    finally:
        proc.kill()
        proc.wait()
        os.unlink(errpath)
    traces, _ = gopprof("-traces", out)
    check(re.search(r"main\.square \(inline\)\n\s+main\.spin\n\s+main\.spinner\n\s+runtime\.goexit\n", traces)
          is not None, "%s: no stack square (inline) < spin < spinner < goexit in:\n%s" % (name, traces[:3000]))
    raw, _ = gopprof("-raw", out)
    samples = raw.split("Samples:", 1)[-1].split("\nLocations", 1)[0]
    leaves = {int(m.group(1)) for m in re.finditer(r"^\s+\d+\s+\d+: (\d+)", samples, re.M)}
    locs = {}
    cur = None
    for line in raw.split("\nLocations", 1)[-1].split("\nMappings", 1)[0].splitlines():
        m = re.match(r"^\s+(\d+): 0x([0-9a-f]+) M=\d+ (\S+) (\S+):(\d+) s=\d+", line)
        if m:
            cur = locs[int(m.group(1))] = (int(m.group(2), 16), [(m.group(3), m.group(4), int(m.group(5)))])
        elif cur and re.match(r"^\s+(\S+) (\S+):(\d+) s=\d+", line):
            fn, file, ln = re.match(r"^\s+(\S+) (\S+):(\d+)", line).groups()
            cur[1].append((fn, file, int(ln)))
    mine = {i: v for i, v in locs.items() if i in leaves and v[1][-1][0].startswith("main.")}
    want = addr2line(path, sorted(v[0] for v in mine.values()))
    for i, (addr, lines) in mine.items():
        fn, file, line = want.get(addr, ("?", "", 0))
        check(lines[0][1:] == (file, line) and lines[-1][0] == fn,
              "%s location 0x%x: %s, go tool addr2line: %s %s:%d" % (name, addr, lines, fn, file, line))
    check(len(mine) >= 2, "%s: %d leaf locations in main" % (name, len(mine)))


def main():
    require_ptrace()
    if not GO or not fixture_path("go_lines"):
        print("SKIP: go is not installed, the Go fixtures are not built")
        sys.exit(SKIP)
    stripped = fixture_path("go_lines_stripped")
    check(section(stripped, ".symtab") is None and section(stripped, ".debug_info") is None
          and section(stripped, ".debug_line") is None,
          "go_lines_stripped still has symbols or DWARF")
    test_compiler_inlines()
    check_dump("go_lines", fixture_path("go_lines"))
    # Without .debug_frame, a thread blocked in a syscall, read without
    # stopping it (sp and pc only), unwinds no further than Go's assembly
    # leaf: stopping the threads gives the frame pointers (README, limits).
    check_dump("go_lines_stripped", stripped, "--stop-all")
    for name in ("go_lines", "go_lines_stripped"):
        check_profile(name, fixture_path(name))
    done()


if __name__ == "__main__":
    main()
