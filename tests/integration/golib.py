"""Helpers for the Go line-table tests (test_gopclntab.py,
test_gopclntab_esbuild.py): Go's own answers to compare pprofc with.

- sigquit_traceback: what a Go program prints on SIGQUIT with
  GOTRACEBACK=all, every goroutine with file:line per frame (Go's runtime);
- addr2line: `go tool addr2line`, Go's own reader of the line table;
- pclntab_magic: the layout of a binary's table, read from its header;
- signal_aside: a signal for a Go fixture's own oracle, sent to a thread
  that is not waiting in epoll_wait.
"""
import ctypes
import os
import re
import shutil
import signal
import struct
import subprocess
import sys

from fixture import check

GO = shutil.which("go")
SYS_TGKILL, SYS_EPOLL_WAIT, SYS_EPOLL_PWAIT = 234, 232, 281


def signal_aside(pid, sig):
    """Sends sig to one thread of pid that is not in epoll_wait (the main
    thread when it can).  A signal sent to the process may land on any
    thread that does not block it: on the one in the fixture's raw
    epoll_wait, it ends the wait (EINTR) and that goroutine turns runnable
    between pprofc's read and the oracle's.  Go's runtime handles the
    signal the same whichever thread it lands on."""
    def in_epoll(tid):
        try:
            with open("/proc/%d/task/%d/syscall" % (pid, tid)) as f:
                nr = f.read().split()[0]
        except (OSError, IndexError):
            return True
        return nr.lstrip("-").isdigit() and int(nr) in (SYS_EPOLL_WAIT, SYS_EPOLL_PWAIT)
    tids = sorted(int(t) for t in os.listdir("/proc/%d/task" % pid))
    tid = next((t for t in [pid] + tids if not in_epoll(t)), pid)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(SYS_TGKILL, pid, tid, int(sig)) != 0:
        os.kill(pid, sig)


def sigquit_traceback(proc, stderr_path, timeout=30):
    """Sends SIGQUIT and parses what Go printed: a list of goroutines,
    each {"header": "goroutine 18 [syscall, locked to thread]",
    "frames": [(function, file, line), ...]} innermost first, without the
    "created by" line."""
    proc.send_signal(signal.SIGQUIT)
    proc.wait(timeout=timeout)
    with open(stderr_path, errors="replace") as f:
        lines = f.read().splitlines()
    goroutines, cur, func = [], None, None
    for line in lines:
        if line.startswith("goroutine ") and line.endswith(":"):
            cur = {"header": line[:-1], "frames": []}
            goroutines.append(cur)
            func = None
        elif cur is None or not line:
            cur = None if not line else cur
        elif line.startswith("created by "):
            cur = None
        elif line.startswith("\t") and func:
            m = re.match(r"^\t(.*):(\d+)(?: \+0x[0-9a-f]+.*)?$", line)
            if m:
                cur["frames"].append((func, m.group(1), int(m.group(2))))
            func = None
        else:
            m = re.match(r"^(.*)\([^()]*\)$", line)
            func = m.group(1) if m else None
    return goroutines


def our_frames(thread):
    return [(f["function"], f["file"], f["line"]) for f in thread["frames"]]


def match_goroutine(thread, goroutines):
    """The goroutine whose stack the thread runs, by Go's traceback: every
    frame but Go's first (for a goroutine in a syscall, Go prints where it
    entered the syscall, the thread is deeper) equals the thread's outermost
    frames, function, file and line.  Returns (goroutine, frames compared)
    or (None, 0)."""
    ours = our_frames(thread)
    for g in goroutines:
        theirs = g["frames"][1:]
        # Go prints runtime.goexit only in its "crash" form (fp= sp= pc=),
        # which a SIGQUIT gets or not depending on the thread it lands on.
        mine = ours
        if theirs and theirs[-1][0] != "runtime.goexit" and ours and ours[-1][0] == "runtime.goexit":
            mine = ours[:-1]
        if len(theirs) >= 2 and len(mine) >= len(theirs) and mine[-len(theirs):] == theirs:
            return g, len(theirs)
    return None, 0


def same_root(thread, goroutines):
    """Goroutines whose two outermost frames are the thread's: the same
    goroutine, if it still runs there."""
    ours = [f for f in our_frames(thread) if f[0] != "runtime.goexit"]
    return [g for g in goroutines
            if len(g["frames"]) >= 3 and ours[-2:] == [f for f in g["frames"] if f[0] != "runtime.goexit"][-2:]]


def addr2line(binary, pcs):
    """{pc: (function, file, line)} by go tool addr2line."""
    if not pcs:
        return {}
    r = subprocess.run([GO, "tool", "addr2line", binary], input="".join("0x%x\n" % p for p in pcs),
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, "go tool addr2line failed: %s" % r.stderr)
    out = r.stdout.splitlines()
    res = {}
    for i, pc in enumerate(pcs):
        if 2 * i + 1 < len(out):
            name = out[2 * i]
            file, _, line = out[2 * i + 1].rpartition(":")
            res[pc] = (name, file, int(line) if line.isdigit() else 0)
    return res


def section(path, name):
    """(file offset, size) of an ELF64 section, or None."""
    with open(path, "rb") as f:
        data = f.read()
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3a)
    if shoff == 0:
        return None
    secs = [struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize) for i in range(shnum)]
    stroff = secs[shstrndx][4]
    for s in secs:
        end = data.index(b"\0", stroff + s[0])
        if data[stroff + s[0]:end].decode() == name:
            return s[4], s[5]
    return None


def pclntab_magic(path):
    s = section(path, ".gopclntab")
    if not s:
        return None
    with open(path, "rb") as f:
        f.seek(s[0])
        return struct.unpack("<I", f.read(4))[0]


LAYOUTS = {0xfffffffa: "1.16", 0xfffffff0: "1.18", 0xfffffff1: "1.20"}


def each_esbuild(packages, check_one, fetch):
    """Runs check_one(label, binary, extra) on each (npm package, version,
    extra) of packages that fetch(package, version) could get; exits 77
    (skipped) without npm, or when none could be fetched."""
    from fixture import done, require_ptrace, SKIP
    require_ptrace()
    if not shutil.which("npm"):
        print("SKIP: npm is not installed (it fetches the esbuild binaries)")
        sys.exit(SKIP)
    fetched = 0
    for pkg, version, extra in packages:
        binary = fetch(pkg, version)
        if not binary:
            continue
        fetched += 1
        check_one("%s@%s" % (pkg, version), binary, extra)
    if not fetched:
        print("SKIP: no esbuild binary could be fetched")
        sys.exit(SKIP)
    done()
