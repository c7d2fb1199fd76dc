"""Refusals and usage errors: each is one clear line on stderr and exit 1
(bad target) or 2 (bad usage), and the target is left untouched.  Also the
output file: written atomically, never through a planted symlink."""
import ctypes
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from fixture import (PPROFC, Fixture, check, check_untouched, done, pprofc,  # noqa: E402
                     require_ptrace, tracer_pid, wait_for)


def one_line_error(r, code, *words, label=""):
    lines = r.stderr.strip().splitlines()
    check(r.returncode == code, "%s: exit %d, want %d (stderr %r)" % (label, r.returncode, code, r.stderr))
    check(len(lines) == 1 and lines[0].startswith("pprofc: "), "%s: not one 'pprofc:' line: %r" % (label, r.stderr))
    for w in words:
        check(w in r.stderr, "%s: %r not in %r" % (label, w, r.stderr))
    check(r.stdout == "", "%s: wrote to stdout: %r" % (label, r.stdout[:80]))


def test_usage():
    one_line_error(pprofc("dump-threads"), 2, "missing PID", label="no pid")
    one_line_error(pprofc("dump-threads", "12x"), 2, "not a process ID", label="bad pid")
    one_line_error(pprofc("dump-threads", "--debug=3", "1"), 2, "--debug", label="bad debug")
    one_line_error(pprofc("dump-threads", "--format=xml", "1"), 2, "--format", label="bad format")
    one_line_error(pprofc("dump-threads", "--bogus", "1"), 2, "--bogus", label="bad option")
    one_line_error(pprofc("frobnicate"), 2, "unknown command", label="bad command")
    r = pprofc()
    check(r.returncode == 2 and "usage:" in r.stderr, "no arguments: %d %r" % (r.returncode, r.stderr[:60]))
    for args in (["--help"], ["dump-threads", "--help"], ["help", "dump-threads"]):
        r = pprofc(*args)
        check(r.returncode == 0 and "usage: pprofc" in r.stdout, "%s: %d" % (args, r.returncode))
    r = pprofc("--version")
    check(r.returncode == 0 and r.stdout.startswith("pprofc "), "--version: %r" % r.stdout)


def test_no_such_process():
    p = subprocess.Popen(["true"])
    p.wait()  # reaped: its PID names nothing now (reuse within this test is implausible)
    one_line_error(pprofc("dump-threads", p.pid), 1, "no such process", label="no such process")


def test_zombie():
    p = subprocess.Popen(["true"])
    check(wait_for(lambda: open("/proc/%d/stat" % p.pid).read().rsplit(")", 1)[1].split()[0] == "Z"),
          "child never became a zombie")
    one_line_error(pprofc("dump-threads", p.pid), 1, "zombie", label="zombie")
    p.wait()


def kernel_thread():
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[6]) & 0x00200000:
                return int(name)
        except (OSError, ValueError, IndexError):
            pass
    return None


def test_kernel_thread():
    pid = kernel_thread()
    if pid is None:
        print("no kernel thread visible in this PID namespace: case skipped")
        return
    one_line_error(pprofc("dump-threads", pid), 1, "kernel thread", label="kernel thread")


def test_self():
    r = subprocess.run(["sh", "-c", 'exec "$0" dump-threads $$', PPROFC], capture_output=True, text=True)
    one_line_error(r, 1, "itself", label="self")


def test_already_traced():
    with Fixture("waits") as fx:
        # A second tracer: a process that seizes the target and waits.
        code = ("import ctypes,sys,time\n"
                "libc=ctypes.CDLL(None)\n"
                "sys.exit(3) if libc.ptrace(0x4206,%d,None,None)!=0 else None\n"
                "print('seized',flush=True)\ntime.sleep(120)\n" % fx.pid)
        tracer = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        try:
            check(tracer.stdout.readline().strip() == "seized", "helper tracer could not seize")
            r = pprofc("dump-threads", fx.pid)
            one_line_error(r, 1, "already traced by PID %d" % tracer.pid, label="traced")
            check(tracer_pid(fx.pid) == tracer.pid, "pprofc disturbed the other tracer")
        finally:
            tracer.kill()
            tracer.wait()
        check(wait_for(lambda: tracer_pid(fx.pid) == 0), "target still traced after helper exit")
        check_untouched(fx.pid, label="traced")


def test_permission():
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        print("permission case needs root and setpriv: skipped")
        return
    with Fixture("waits") as fx:
        r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", PPROFC,
                            "dump-threads", str(fx.pid)], capture_output=True, text=True)
        one_line_error(r, 1, "permission denied", "ptrace_scope", "CAP_SYS_PTRACE", label="permission")
        check_untouched(fx.pid, label="permission")


def test_output_file():
    with Fixture("waits") as fx:
        d = tempfile.mkdtemp(prefix="pprofc-out-")
        os.chmod(d, 0o1777)
        out = os.path.join(d, "dump.txt")
        r = pprofc("dump-threads", "-o", out, fx.pid)
        check(r.returncode == 0 and open(out).read().startswith("thread %d " % fx.pid),
              "-o FILE: %d %r" % (r.returncode, r.stderr))
        check(os.listdir(d) == ["dump.txt"], "temporary files left: %r" % os.listdir(d))

        # A symlink planted at the output name: pprofc replaces the link,
        # the file it points to is not written.
        victim = os.path.join(d, "victim")
        with open(victim, "w") as f:
            f.write("precious\n")
        link = os.path.join(d, "planted.txt")
        os.symlink(victim, link)
        r = pprofc("dump-threads", "-o", link, fx.pid)
        check(r.returncode == 0, "-o through symlink: %r" % r.stderr)
        check(open(victim).read() == "precious\n", "pprofc wrote through a planted symlink")
        check(not os.path.islink(link), "the planted symlink is still there")

        r = pprofc("dump-threads", "-o", os.path.join(d, "no", "such", "dir", "x"), fx.pid)
        one_line_error(r, 1, "cannot create", label="bad output dir")
        check(sorted(os.listdir(d)) == ["dump.txt", "planted.txt", "victim"],
              "partial files after a failed write: %r" % os.listdir(d))
        check_untouched(fx.pid, label="output")
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    require_ptrace()
    ctypes.CDLL(None)
    test_usage()
    test_no_such_process()
    test_zombie()
    test_kernel_thread()
    test_self()
    test_already_traced()
    test_permission()
    test_output_file()
    done()
