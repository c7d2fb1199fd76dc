"""Goroutines of a real Go program from Debian: Delve (/usr/bin/dlv, the
delve package), which Debian ships stripped (no DWARF, no symbol table),
built by Debian's Go 1.19.

`dlv dap --listen=127.0.0.1:0` waits for a debugger client: its goroutines
sit still (a select in main, the accept of its listener, os/signal's
loop...).  pprofc's goroutine dump is taken first, then the program is
sent SIGQUIT and prints every goroutine itself (GOTRACEBACK=all): the
oracle.  Every goroutine Go shows at its default level (no runtime
goroutine) is in pprofc's dump with the same id, the same wait reason and
the same functions and file:line, frame by frame (from Go's line table:
there is no DWARF), and pprofc lists no other; the
program is untouched until the SIGQUIT.

Skipped (77) without dlv; dev.sh installs the delve package.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from fixture import check, done, check_untouched, pprofc, require_ptrace, wait_for, SKIP
from golib import sigquit_traceback

DLV = "/usr/bin/dlv"


def shown(name):
    """Go's default traceback level: exported runtime functions and every
    other package's; not the runtime's own (the crash level Go uses on
    SIGQUIT shows them all)."""
    if "." not in name:
        return False
    if name.startswith("runtime."):
        return name[8:9].isupper()
    return True


def go_system(frames):
    """isSystemGoroutine, as far as a traceback tells: the goroutine
    started in package runtime (its outermost frame before goexit), but
    runtime.main."""
    outer = [f for f in frames if f[0] != "runtime.goexit"]
    return bool(outer) and outer[-1][0].startswith("runtime.") and outer[-1][0] != "runtime.main"


def reason(header):
    """"goroutine 7 [IO wait, 2 minutes]" -> (7, "IO wait")."""
    m = re.match(r"^goroutine (\d+) \[([^,\]]*)", header)
    return int(m.group(1)), m.group(2)


def main():
    require_ptrace()
    if not os.path.exists(DLV):
        print("SKIP: %s is missing (Debian's delve package: ./dev.sh install puts it)" % DLV)
        sys.exit(SKIP)
    err = tempfile.NamedTemporaryFile(prefix="pprofc-dlv-", suffix=".stderr", delete=False)
    out = tempfile.NamedTemporaryFile(prefix="pprofc-dlv-", suffix=".stdout", delete=False)
    proc = subprocess.Popen([DLV, "dap", "--listen=127.0.0.1:0"], stdin=subprocess.DEVNULL,
                            stdout=out, stderr=err, env=dict(os.environ, GOTRACEBACK="all"))
    try:
        def listening():
            with open(out.name, errors="replace") as f:
                return "listening at" in f.read()
        check(wait_for(listening, timeout=30), "dlv dap: not listening")
        r = pprofc("dump-threads", "--format=json", "-v", str(proc.pid))
        check(r.returncode == 0, "dump-threads of dlv: %s" % r.stderr.strip())
        d = json.loads(r.stdout) if r.returncode == 0 else {}
        check_untouched(proc.pid, label="dlv")
    except Exception:
        proc.kill()
        raise
    goroutines = sigquit_traceback(proc, err.name)
    for f in (err.name, out.name):
        os.unlink(f)
    theirs = {}
    for g in goroutines:
        goid, why = reason(g["header"])
        if goid and not go_system(g["frames"]):
            theirs[goid] = (why, [f for f in g["frames"] if shown(f[0])])
    check(len(theirs) >= 3, "dlv's own traceback lists %d goroutines: %s" % (len(theirs), goroutines))
    ours = {g["goid"]: g for g in d.get("goroutines") or []}
    check(ours, "pprofc listed no goroutine of dlv: %s" % ((d.get("go") or {}).get("note")
                                                          or r.stderr.strip()[-300:]))
    check(set(ours) == set(theirs), "goroutines only in pprofc's dump %s, only in Go's %s"
          % (sorted(set(ours) - set(theirs)), sorted(set(theirs) - set(ours))))
    for goid, (why, names) in sorted(theirs.items()):
        g = ours.get(goid)
        if not g:
            continue
        check(g["status"] == why, "goroutine %d is [%s] by pprofc, [%s] by Go" % (goid, g["status"], why))
        got = [(f["function"], f["file"], f["line"]) for f in g["frames"]]
        check(got == names, "goroutine %d: frames %s by pprofc, %s by Go" % (goid, got, names))
    print("dlv (%s): %d goroutines, each as Go's own traceback has it"
          % ((d.get("go") or {}).get("version"), len(theirs)))
    done()


if __name__ == "__main__":
    main()
