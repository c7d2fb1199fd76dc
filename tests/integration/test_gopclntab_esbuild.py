"""Go's line table in Go binaries built by Go releases other than
Debian's: esbuild as published on npm, stripped (no symbols, no DWARF), one
binary per layout of the table (read from each binary's header):

  esbuild-linux-64@0.13.15     Go 1.17.2   layout 0xfffffffa (Go 1.16-1.17)
  esbuild-linux-64@0.14.39     Go 1.18.1   layout 0xfffffff0 (Go 1.18-1.19)
  @esbuild/linux-x64@0.28.2    Go 1.26.5   layout 0xfffffff1 (Go 1.20+)

Fetched with npm in the test set-up into the build tree's cache (skipped,
exit 77, without npm or without the network).  Each runs as
`esbuild --serve=127.0.0.1:0` with its stdin a pipe we hold open (it reads
it in a goroutine blocked in read(2)); the oracle is its own SIGQUIT
traceback (GOTRACEBACK=all): every goroutine whose stack a thread runs is
in pprofc's dump-threads with the same functions and file:line per frame,
inlined frames included.
"""
import os
import subprocess
import sys
import tarfile
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from fixture import check, dump_json, check_untouched, functions, wait_for
from golib import (sigquit_traceback, match_goroutine, same_root, pclntab_magic, our_frames, LAYOUTS,
                   each_esbuild)

PACKAGES = [
    ("esbuild-linux-64", "0.13.15", 0xfffffffa),
    ("esbuild-linux-64", "0.14.39", 0xfffffff0),
    ("@esbuild/linux-x64", "0.28.2", 0xfffffff1),
]


def fetch(pkg, version):
    """The esbuild binary of pkg@version, fetched once into the cache."""
    cache = os.path.join(os.environ.get("XDG_CACHE_HOME", tempfile.gettempdir()), "npm-esbuild",
                         pkg.replace("/", "_") + "-" + version)
    binary = os.path.join(cache, "package", "bin", "esbuild")
    if os.path.exists(binary):
        return binary
    os.makedirs(cache, exist_ok=True)
    r = subprocess.run(["npm", "pack", "--silent", "%s@%s" % (pkg, version), "--pack-destination", cache],
                       capture_output=True, text=True, timeout=300, cwd=cache)
    tgz = [f for f in os.listdir(cache) if f.endswith(".tgz")]
    if r.returncode != 0 or not tgz:
        print("cannot fetch %s@%s with npm: %s" % (pkg, version, r.stderr.strip()[-300:]))
        return None
    with tarfile.open(os.path.join(cache, tgz[0])) as t:
        t.extract("package/bin/esbuild", cache)
    return binary


def check_esbuild(label, binary, magic):
    check(pclntab_magic(binary) == magic, "%s: pclntab magic 0x%x, want 0x%x (layout %s)"
          % (label, pclntab_magic(binary) or 0, magic, LAYOUTS[magic]))
    err = tempfile.NamedTemporaryFile(prefix="pprofc-esbuild-", suffix=".stderr", delete=False)
    proc = subprocess.Popen([binary, "--serve=127.0.0.1:0"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=err, env=dict(os.environ, GOTRACEBACK="all"))
    try:
        def serving():
            with open(err.name, errors="replace") as f:
                return "127.0.0.1:" in f.read()
        check(wait_for(serving, timeout=30), "%s: not serving" % label)
        # Stripped: no .debug_frame, so threads are stopped for their
        # frame pointers (a thread in read(2) restarts it transparently).
        # Dump until the goroutine reading stdin is in its read(2).
        def reading():
            d = dump_json(proc.pid, "--stop-all")
            return d if any((t["blocked_on"] or {}).get("fd") == 0 for t in d["threads"]) else None
        d = wait_for(reading, timeout=30, step=0.1)
        check(d is not None, "%s: no thread blocked reading stdin" % label)
        d = d or dump_json(proc.pid, "--stop-all")
        check_untouched(proc.pid, label=label)
    except Exception:
        proc.kill()
        raise
    goroutines = sigquit_traceback(proc, err.name)
    proc.stdin.close()
    os.unlink(err.name)
    check(len(goroutines) >= 2, "%s: %d goroutines in its traceback" % (label, len(goroutines)))
    frames = [f for t in d["threads"] for f in t["frames"]]
    unnamed = [f for f in frames if not (f["function"] and f["file"] and f["line"])]
    check(frames and not unnamed, "%s: %d of %d frames without function or file:line: %s"
          % (label, len(unnamed), len(frames), unnamed))
    matched = inlined = 0
    for t in d["threads"]:
        if not t["frames"] or t["frames"][-1]["function"] != "runtime.goexit":
            continue            # a thread's own (g0) stack: no goroutine's
        g, n = match_goroutine(t, goroutines)
        if g:
            matched += 1
            inlined += sum(f["inlined"] for f in t["frames"][-n:])
            print("%s: thread %d = %s, %d frames equal" % (label, t["tid"], g["header"], n))
        else:
            # Still that goroutine (same root frames) but other frames: fail.
            check(not same_root(t, goroutines) or not any("syscall" in x["header"] for x in same_root(t, goroutines)),
                  "%s thread %d: %s, Go's traceback: %s" % (label, t["tid"], our_frames(t),
                                                           [x["frames"] for x in same_root(t, goroutines)]))
    check(matched >= 1, "%s: no thread's stack matches a goroutine of Go's traceback: threads %s, "
          "goroutines in syscalls %s" % (label, [our_frames(t) for t in d["threads"]],
                                         [g["frames"] for g in goroutines if "syscall" in g["header"]]))
    check(any(f["inlined"] for t in d["threads"] for f in t["frames"]),
          "%s: no inlined frame anywhere: %s" % (label, [functions(t) for t in d["threads"]]))
    return matched, inlined


def main():
    each_esbuild(PACKAGES, check_esbuild, fetch)


if __name__ == "__main__":
    main()
