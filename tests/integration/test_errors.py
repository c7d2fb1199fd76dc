"""Refusals and usage errors: each is one clear line on stderr and exit 1
(bad target) or 2 (bad usage), and the target is left untouched.  Every
refusal is tried with dump-threads and with attach --profile cpu: no such
process, zombie, kernel thread, pprofc itself, already traced (a helper,
real strace on the process or on one thread, real gdb), not permitted
(pprofc as nobody against a root process).  Also the output file: written
atomically (a device or FIFO in place), never through a symlink another
user planted in a sticky directory; a full or read-only file system is a clear error, exit 1, and
no partial file.  Each case prints a "COUNT name key=value..." line."""
import ctypes
import json
import os
import pty
import shutil
import stat
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(__file__))
from fixture import (PPROFC, Fixture, check, check_progress, check_untouched, count_line, done,  # noqa: E402
                     fixture_path, pprofc, require_ptrace, tids, traced_by, tracer_of, tracer_pid, wait_for)


def one_line_error(r, code, *words, label=""):
    """Returns whether every check held."""
    lines = r.stderr.strip().splitlines()
    ok = check(r.returncode == code, "%s: exit %d, want %d (stderr %r)" % (label, r.returncode, code, r.stderr))
    ok = check(len(lines) == 1 and lines[0].startswith("pprofc: "),
               "%s: not one 'pprofc:' line: %r" % (label, r.stderr)) and ok
    for w in words:
        ok = check(w in r.stderr, "%s: %r not in %r" % (label, w, r.stderr)) and ok
    return check(r.stdout == "", "%s: wrote to stdout: %r" % (label, r.stdout[:80])) and ok


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
    one_line_error(pprofc("dump-threads", "--stack-size=1", "1"), 2, "--stack-size", label="tiny stack")
    one_line_error(pprofc("attach", "--engine=bpf", "1"), 2, "--engine", label="bad engine")
    one_line_error(pprofc("attach", "--engine=perf", "--force-stop", "1"), 2, "--force-stop",
                   label="perf with --force-stop")
    one_line_error(pprofc("attach", "--engine=perf", "--stack-size=128K", "1"), 2, "65528",
                   label="perf stack too big")
    r = pprofc("report", "/etc/passwd")
    one_line_error(r, 1, "/etc/passwd", label="report of a non-profile")
    check(r.stderr.count("pprof profile") == 1, "report of a non-profile says it twice: %r" % r.stderr)
    # A binary profile is not written to a terminal.
    master, slave = pty.openpty()
    r = subprocess.run([PPROFC, "attach", "-o", "-", str(os.getpid())], stdout=slave,
                       stderr=subprocess.PIPE, text=True, timeout=60)
    os.close(slave)
    os.close(master)
    check(r.returncode == 2 and "terminal" in r.stderr, "-o - to a terminal: %d %r" % (r.returncode, r.stderr))
    # --tid naming no thread of the process.
    p = subprocess.Popen(["sleep", "60"])
    try:
        one_line_error(pprofc("attach", "--seconds", "0.2", "--tid", "999999999", p.pid), 1,
                       "no such thread", label="--tid of another process")
    finally:
        p.kill()
        p.wait()


def test_no_such_process():
    p = subprocess.Popen(["true"])
    p.wait()  # reaped: its PID names nothing now (reuse within this test is implausible)
    refused("no-such-process", p.pid, ["no such process", "pgrep"])


def test_zombie():
    p = subprocess.Popen(["true"])
    check(wait_for(lambda: open("/proc/%d/stat" % p.pid).read().rsplit(")", 1)[1].split()[0] == "Z"),
          "child never became a zombie")
    refused("zombie", p.pid, ["zombie", "reap"],
            untouched=lambda: open("/proc/%d/stat" % p.pid).read().rsplit(")", 1)[1].split()[0] == "Z")
    check(p.wait() == 0, "the zombie's exit status changed")


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
    refused("kernel-thread", pid, ["kernel thread", "user-space process"])


def both_commands(pid, out):
    """dump-threads and attach --profile cpu against pid (argument lists)."""
    return [("dump", ["dump-threads", str(pid)]),
            ("attach", ["attach", str(pid), "--profile", "cpu", "--seconds", "1", "-o", out])]


def refused(name, pid, words, prefix=(), untouched=None):
    """Both commands refuse pid with one line holding words, exit 1, and
    write no file; untouched() (if given) says the target is as it was.
    Prints the COUNT line; returns whether every check held."""
    d = tempfile.mkdtemp(prefix="pprofc-refuse-")
    os.chmod(d, 0o1777)
    bad = touched = 0
    for cmd, args in both_commands(pid, os.path.join(d, "out.pb.gz")):
        r = subprocess.run(list(prefix) + [PPROFC] + args, capture_output=True, text=True, timeout=120)
        bad += not one_line_error(r, 1, *words, label="%s %s" % (name, cmd))
        bad += not check(os.listdir(d) == [], "%s %s: files written: %r" % (name, cmd, os.listdir(d)))
        if untouched is not None:
            touched += not check(untouched(), "%s %s: the target was touched" % (name, cmd))
    shutil.rmtree(d, ignore_errors=True)
    count_line("refusal-" + name, tried=2, bad_message_or_exit=bad, target_touched=touched)
    return not bad and not touched


def traced_only(pid, tid, tracer):
    """Thread tid of pid is traced by tracer, and no other thread at all."""
    return all(tracer_of(pid, t) == (tracer if t == tid else 0) for t in tids(pid))


def test_real_strace():
    if not shutil.which("strace"):
        print("strace not installed: case skipped")
        return
    with Fixture("waits", progress=True) as fx:
        st = subprocess.Popen(["strace", "-p", str(fx.pid), "-o", "/dev/null"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            check(wait_for(lambda: tracer_of(fx.pid, fx.pid) == st.pid, 60), "strace never attached")
            # strace without -f traces the main thread only.
            refused("strace", fx.pid, ["already traced by PID %d (strace)" % st.pid, "detach that tracer"],
                    untouched=lambda: traced_only(fx.pid, fx.pid, st.pid))
        finally:
            st.terminate()
            st.wait(timeout=60)
        check(wait_for(lambda: tracer_of(fx.pid, fx.pid) == 0), "still traced after strace left")
        check_untouched(fx.pid, label="after strace")
        check_progress(fx, "after strace")


def thread_named(pid, name):
    """The tid of pid's thread called name (its comm)."""
    for t in tids(pid):
        with open("/proc/%d/task/%d/comm" % (pid, t)) as f:
            if f.read().strip() == name:
                return t
    raise AssertionError("no thread %r in PID %d" % (name, pid))


def thread_state(pid, tid):
    try:
        with open("/proc/%d/task/%d/stat" % (pid, tid)) as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "?"


def strace_thread(pid, tid):
    """strace attached to thread tid alone (waited for)."""
    st = subprocess.Popen(["strace", "-p", str(tid), "-o", "/dev/null"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    check(wait_for(lambda: tracer_of(pid, tid) == st.pid, 60), "strace never attached")
    return st


def stop_strace(pid, tid, st):
    st.terminate()
    st.wait(timeout=60)
    check(wait_for(lambda: tracer_of(pid, tid) == 0), "still traced after strace left")


def test_strace_one_thread():
    """A tracer on one thread only (not the main one), a thread that must
    be stopped to be read (it is running): refused, or a profile would
    miss that thread without a word."""
    if not shutil.which("strace"):
        print("strace not installed: case skipped")
        return
    with Fixture("waits", progress=True) as fx:
        tid = thread_named(fx.pid, "spinner")
        st = strace_thread(fx.pid, tid)
        try:
            refused("strace-thread", fx.pid, ["its thread %d" % tid, "already traced by PID %d (strace)"
                                               % st.pid, "detach that tracer"],
                    untouched=lambda: traced_only(fx.pid, tid, st.pid))
        finally:
            stop_strace(fx.pid, tid, st)
        check_untouched(fx.pid, label="after strace on a thread")


def test_strace_blocked_thread():
    """A tracer on one thread blocked in a system call: a dump reads that
    thread without ptrace (its stack and wait, as without strace) and
    leaves the tracer as it was; a profile, which would stop it, refuses."""
    if not shutil.which("strace"):
        print("strace not installed: case skipped")
        return
    with Fixture("waits", progress=True) as fx:
        tid = thread_named(fx.pid, "pipe-reader")
        st = strace_thread(fx.pid, tid)
        try:
            # strace's attach interrupted its read(): wait until it is back in it.
            check(wait_for(lambda: thread_state(fx.pid, tid) == "S", 60), "the thread never blocked again")
            r = subprocess.run([PPROFC, "dump-threads", "--format=json", str(fx.pid)],
                               capture_output=True, text=True, timeout=120)
            ok = check(r.returncode == 0, "dump with strace on a blocked thread: exit %d: %s"
                       % (r.returncode, r.stderr.strip()))
            if ok:
                doc = json.loads(r.stdout)
                th = [t for t in doc["threads"] if t["tid"] == tid]
                funcs = [f.get("function") for f in th[0]["frames"]] if th else []
                check(th and th[0].get("complete") and "read_request" in funcs and th[0].get("reason") == "IO wait",
                      "the traced thread's stack and wait: %r" % (th[0] if th else None))
            check(traced_only(fx.pid, tid, st.pid), "the dump changed who traces what")
            d = tempfile.mkdtemp(prefix="pprofc-refuse-")
            r = subprocess.run([PPROFC, "attach", str(fx.pid), "--profile", "cpu", "--seconds", "1",
                                "-o", os.path.join(d, "out.pb.gz")], capture_output=True, text=True, timeout=120)
            one_line_error(r, 1, "its thread %d" % tid, "already traced by PID %d (strace)" % st.pid,
                           label="attach with strace on a blocked thread")
            check(os.listdir(d) == [], "attach wrote files: %r" % os.listdir(d))
            shutil.rmtree(d, ignore_errors=True)
            check(traced_only(fx.pid, tid, st.pid), "the profile changed who traces what")
            count_line("strace-blocked-thread", dump_exit=r.returncode if not ok else 0)
        finally:
            stop_strace(fx.pid, tid, st)
        check_untouched(fx.pid, label="after strace on a blocked thread")
        check_progress(fx, "after strace on a blocked thread")


def test_real_gdb():
    """gdb attached (every thread traced and stopped); it stays inside a
    shell command that reads a FIFO until the test closes it, then detaches."""
    if not shutil.which("gdb"):
        print("gdb not installed: case skipped")
        return
    with Fixture("waits", progress=True) as fx:
        fifo = os.path.join(fx.dir, "fifo")
        os.mkfifo(fifo)
        env = dict(os.environ, DEBUGINFOD_URLS="")
        gdb = subprocess.Popen(["gdb", "-nx", "-q", "-batch", "-p", str(fx.pid), "-ex",
                                "shell cat %s >/dev/null" % fifo], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        w = None
        try:
            w = wait_for(lambda: open_writer(fifo), 120)
            check(w is not None, "gdb never ran its command")
            check(traced_by(fx.pid, gdb.pid), "gdb does not trace every thread")
            refused("gdb", fx.pid, ["already traced by PID %d (gdb)" % gdb.pid, "detach that tracer"],
                    untouched=lambda: traced_by(fx.pid, gdb.pid))
        finally:
            if w is not None:
                os.close(w)
            try:
                gdb.wait(timeout=120)
            except subprocess.TimeoutExpired:
                gdb.kill()
                gdb.wait()
        check(wait_for(lambda: tracer_of(fx.pid, fx.pid) == 0), "still traced after gdb left")
        check_untouched(fx.pid, label="after gdb")
        check_progress(fx, "after gdb")


def open_writer(fifo):
    """The FIFO's write end once a reader has it open, else None."""
    try:
        return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return None


def test_self():
    d = tempfile.mkdtemp(prefix="pprofc-self-")
    bad = 0
    for cmd in ('exec "$0" dump-threads $$', 'exec "$0" attach $$ --seconds 1 -o %s/out' % d):
        r = subprocess.run(["sh", "-c", cmd, PPROFC], capture_output=True, text=True, timeout=60)
        bad += not one_line_error(r, 1, "itself", "another process", label="self: " + cmd)
        bad += not check(os.listdir(d) == [], "self: files written: %r" % os.listdir(d))
    shutil.rmtree(d, ignore_errors=True)
    count_line("refusal-self", tried=2, bad_message_or_exit=bad, target_touched=0)


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
            refused("seized", fx.pid, ["already traced by PID %d" % tracer.pid],
                    untouched=lambda: traced_only(fx.pid, fx.pid, tracer.pid))
        finally:
            tracer.kill()
            tracer.wait()
        check(wait_for(lambda: tracer_pid(fx.pid) == 0), "target still traced after helper exit")
        check_untouched(fx.pid, label="traced")


def test_permission():
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        print("permission case needs root and setpriv: skipped")
        return
    with Fixture("waits", progress=True) as fx:
        refused("permission", fx.pid, ["permission denied", "ptrace_scope", "CAP_SYS_PTRACE"],
                prefix=["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"],
                untouched=lambda: check_untouched(fx.pid, label="permission"))
        check_progress(fx, "permission")


def test_root_without_ptrace_cap():
    """Root without CAP_SYS_PTRACE (a container's default), a target of
    another user: the one line names the capability and does not tell root
    to run as root."""
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or not setpriv:
        print("root-without-cap case needs root and setpriv: skipped")
        return
    with Fixture("waits", path=setpriv, args=["--reuid=65534", "--regid=65534", "--clear-groups",
                                              fixture_path("waits")]) as fx:
        drop = ["setpriv", "--inh-caps=-sys_ptrace", "--bounding-set=-sys_ptrace"]
        for args in (["dump-threads", str(fx.pid)], ["attach", "--seconds", "1", str(fx.pid)]):
            r = subprocess.run(drop + [PPROFC] + args, capture_output=True, text=True, timeout=120)
            one_line_error(r, 1, "CAP_SYS_PTRACE", "runs as root", label="root without the cap, " + args[0])
            check("run as root" not in r.stderr, "tells root to run as root: %r" % r.stderr)
        check_untouched(fx.pid, label="root without the cap")


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

        # A FIFO (as /dev/null or /dev/stdout: not a regular file) is
        # written in place: renaming over it would replace the node
        # itself with a regular file, which for /dev/null, as root, broke
        # the machine (a benchmark's -o /dev/null did).
        fifo = os.path.join(d, "fifo")
        os.mkfifo(fifo)
        got = []
        reader = threading.Thread(target=lambda: got.append(open(fifo).read()), daemon=True)
        reader.start()
        r = pprofc("dump-threads", "-o", fifo, fx.pid)
        reader.join(60)
        check(r.returncode == 0 and stat.S_ISFIFO(os.lstat(fifo).st_mode) and got and
              got[0].startswith("thread %d " % fx.pid),
              "-o FIFO: exit %d, still a FIFO %s, read %r"
              % (r.returncode, stat.S_ISFIFO(os.lstat(fifo).st_mode), got[0][:40] if got else None))
        os.unlink(fifo)
        # A null device of our own (not the machine's /dev/null, which a
        # failing run would destroy), where the file system allows one.
        null = os.path.join(d, "null")
        try:
            os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
            open(null, "w").close()
        except OSError as e:
            print("-o to a device: cannot make one in %s (%s): case skipped" % (d, e))
        else:
            r = pprofc("dump-threads", "-o", null, fx.pid)
            check(r.returncode == 0 and stat.S_ISCHR(os.lstat(null).st_mode),
                  "-o DEVICE: exit %d, still a character device: %s"
                  % (r.returncode, stat.S_ISCHR(os.lstat(null).st_mode)))
            os.unlink(null)

        r = pprofc("dump-threads", "-o", os.path.join(d, "no", "such", "dir", "x"), fx.pid)
        one_line_error(r, 1, "cannot create", label="bad output dir")
        check(sorted(os.listdir(d)) == ["dump.txt", "planted.txt", "victim"],
              "partial files after a failed write: %r" % os.listdir(d))
        check_untouched(fx.pid, label="output")
        shutil.rmtree(d, ignore_errors=True)


def as_nobody(*cmd):
    return subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] + list(cmd),
                          capture_output=True, text=True)


def output_runs(pid, d):
    """(label, argv, env, output file) of every way pprofc writes a file into d."""
    env = dict(os.environ, PPROF_TMPDIR=d)
    return [("dump -o", ["dump-threads", "-o", os.path.join(d, "dump.txt"), str(pid)], None, "dump.txt"),
            ("dump --pprof", ["dump-threads", "--pprof", os.path.join(d, "threads.pb.gz"), str(pid)], None,
             "threads.pb.gz"),
            ("attach -o", ["attach", str(pid), "--seconds", "1", "-o", os.path.join(d, "cpu.pb.gz")], None,
             "cpu.pb.gz"),
            ("attach numbered", ["attach", str(pid), "--seconds", "1"], env,
             "pprof.waits.samples.cpu.001.pb.gz")]


def test_planted_symlinks():
    """In a fresh world-writable sticky directory, another user (nobody)
    plants a symlink at each output name, pointing at a root-owned file:
    pprofc never writes through it."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        print("planted-symlink case needs root and setpriv: skipped")
        return
    with Fixture("waits", progress=True) as fx:
        d, safe = tempfile.mkdtemp(prefix="pprofc-sticky-"), tempfile.mkdtemp(prefix="pprofc-victim-")
        os.chmod(d, 0o1777)
        victim = os.path.join(safe, "victim")
        with open(victim, "w") as f:
            f.write("precious\n")
        through = failed = 0
        runs = output_runs(fx.pid, d)
        for label, args, env, name in runs:
            link = os.path.join(d, name)
            planted = as_nobody("ln", "-s", victim, link).returncode == 0 and os.lstat(link).st_uid == 65534
            check(planted, "%s: nobody could not plant %s" % (label, link))
            r = pprofc(*args, env=env) if env else pprofc(*args)
            intact = open(victim).read() == "precious\n"
            through += not intact
            check(intact, "%s: pprofc wrote through a planted symlink" % label)
            failed += not check(r.returncode == 0, "%s: exit %d %r" % (label, r.returncode, r.stderr))
            check(not [n for n in os.listdir(d) if ".tmp." in n], "%s: temporary files left" % label)
        numbered = os.path.join(d, "pprof.waits.samples.cpu.002.pb.gz")
        check(os.path.islink(os.path.join(d, runs[-1][3])) and os.path.isfile(numbered),
              "numbered output did not step over the planted name: %r" % sorted(os.listdir(d)))
        check_untouched(fx.pid, label="symlinks")
        check_progress(fx, "symlinks")
        shutil.rmtree(d, ignore_errors=True)
        shutil.rmtree(safe, ignore_errors=True)
        count_line("output-symlink", tried=len(runs), wrote_through=through, failed=failed)


def fill(d):
    """Fills the file system of d: one file takes every free block."""
    fd = os.open(os.path.join(d, "filler"), os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        while os.write(fd, b"\0" * 512) > 0:
            pass
    except OSError:
        pass
    finally:
        os.close(fd)


def unwritable(fx, d, name, reason):
    """Every output into d fails: exit 1, a last line naming the file and
    the reason, no file left behind, the target untouched."""
    bad = partial = touched = 0
    before = sorted(os.listdir(d))
    runs = output_runs(fx.pid, d)
    for label, args, env, out in runs:
        r = pprofc(*args, env=env) if env else pprofc(*args)
        last = (r.stderr.strip().splitlines() or [""])[-1]
        where = d if env else os.path.join(d, out)
        ok = r.returncode == 1 and last.startswith("pprofc: cannot ") and where in last and reason in last
        bad += not check(ok, "%s, %s: exit %d, last line %r" % (name, label, r.returncode, last))
        partial += not check(sorted(os.listdir(d)) == before, "%s, %s: files left: %r"
                             % (name, label, sorted(os.listdir(d))))
        touched += not check_untouched(fx.pid, label="%s %s" % (name, label))
        check_progress(fx, "%s %s" % (name, label))
    count_line("output-" + name, tried=len(runs), bad_error=bad, partial_file=partial,
               target_touched=touched)


def test_full_and_readonly():
    """The output directory is a full tmpfs, then the same read-only."""
    d = tempfile.mkdtemp(prefix="pprofc-tiny-")
    m = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", d], capture_output=True, text=True)
    if m.returncode != 0:
        print("full/read-only output cases skipped: cannot mount a tmpfs (%s)" % m.stderr.strip())
        os.rmdir(d)
        return
    try:
        with Fixture("waits", progress=True) as fx:
            fill(d)
            unwritable(fx, d, "full", "No space left on device")
            os.unlink(os.path.join(d, "filler"))
            r = subprocess.run(["mount", "-o", "remount,ro", d], capture_output=True, text=True)
            if check(r.returncode == 0, "cannot remount read-only: %s" % r.stderr):
                unwritable(fx, d, "readonly", "Read-only file system")
    finally:
        subprocess.run(["umount", d])
        os.rmdir(d)


if __name__ == "__main__":
    require_ptrace()
    ctypes.CDLL(None)
    test_usage()
    test_no_such_process()
    test_zombie()
    test_kernel_thread()
    test_self()
    test_already_traced()
    test_real_strace()
    test_strace_one_thread()
    test_strace_blocked_thread()
    test_real_gdb()
    test_permission()
    test_root_without_ptrace_cap()
    test_output_file()
    test_planted_symlinks()
    test_full_and_readonly()
    done()
