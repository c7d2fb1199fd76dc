"""pprofc under valgrind memcheck: a thread dump (text, JSON, --pprof), a
CPU, a wall and a mutex profile, and report, each against a real fixture.
Every run must exit 0 with no memcheck error (invalid access, uninitialised
value, definite/indirect/possible leak) and nothing left at exit but what
tests/valgrind/pprofc.supp lists (memory libraries keep for the process's
lifetime, each with its reason).  The outputs must still be valid and the
target untouched.  Nothing here depends on timing: no sample counts.

Skipped (77) where ptrace is not permitted, without valgrind, and in a
sanitizer build (PPROFC_SANITIZE, set by tests/meson.build: ASan and
valgrind cannot run the same binary)."""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from fixture import (PPROFC, SKIP, Fixture, check, check_progress, check_untouched,  # noqa: E402
                     done, pprofc, require_ptrace)

HERE = os.path.dirname(os.path.abspath(__file__))
SUPP = os.path.join(HERE, "..", "valgrind", "pprofc.supp")
VALGRIND = shutil.which("valgrind")
GO = shutil.which("go")
WORK = None  # the run's temporary directory, made once the test is not skipped
# No debuginfod server: libdw must not go to the network under the test
# (it still loads libdebuginfod, see pprofc.supp).  Profiles saved without
# -o go to WORK (PPROF_TMPDIR).
ENV = {k: v for k, v in os.environ.items() if k != "DEBUGINFOD_URLS"}
# The options of the issue, plus --num-callers (the suppressions are
# anchored below libdw's dlopen, deeper than the default 12 frames) and
# --log-file (keeps memcheck's report apart from pprofc's own stderr).
MEMCHECK = ["--tool=memcheck", "--leak-check=full", "--show-leak-kinds=all",
            "--errors-for-leak-kinds=definite,indirect,possible", "--error-exitcode=99",
            "--suppressions=" + SUPP, "--track-fds=no", "--num-callers=40"]
LEAK_KINDS = ("definitely lost", "indirectly lost", "possibly lost", "still reachable", "suppressed")
_runs = [0]


def skip_unless_usable():
    san = os.environ.get("PPROFC_SANITIZE", "none")
    if san not in ("", "none"):
        print("skipped: sanitizer build (b_sanitize=%s): valgrind cannot run it" % san)
        sys.exit(SKIP)
    if not VALGRIND:
        print("skipped: valgrind is not installed")
        sys.exit(SKIP)
    require_ptrace()


def leak_summary(log):
    """{kind: bytes} from memcheck's LEAK SUMMARY (all 0 when every heap
    block was freed, which memcheck says instead of a summary)."""
    out = {k: 0 for k in LEAK_KINDS}
    for kind in LEAK_KINDS:
        m = re.search(r"==\d+==\s+%s: ([\d,]+) bytes in [\d,]+ blocks" % kind, log)
        if m:
            out[kind] = int(m.group(1).replace(",", ""))
    return out


def memcheck(label, *args):
    """Runs pprofc ARGS under memcheck; checks exit 0, no error, nothing
    left at exit but suppressed library memory.  Returns the result."""
    _runs[0] += 1
    log_path = os.path.join(WORK, "memcheck.%d.log" % _runs[0])
    cmd = [VALGRIND] + MEMCHECK + ["--log-file=" + log_path, PPROFC] + [str(a) for a in args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=ENV)
    with open(log_path) as f:
        log = f.read()
    errors = re.search(r"ERROR SUMMARY: .*", log)
    leaks = leak_summary(log)
    in_use = re.search(r"in use at exit: .*", log)
    print("%s: pprofc %s" % (label, " ".join(str(a) for a in args)))
    print("  exit %d; %s" % (r.returncode, errors.group(0) if errors else "no ERROR SUMMARY"))
    print("  %s; leaks: %s" % (in_use.group(0) if in_use else "no heap summary",
                               ", ".join("%s %d bytes" % (k, leaks[k]) for k in LEAK_KINDS)))
    ok = check(r.returncode == 0, "%s: exit %d (99: a memcheck error), pprofc said: %s"
               % (label, r.returncode, r.stderr.strip()[-500:]))
    ok &= check(errors is not None and errors.group(0).startswith("ERROR SUMMARY: 0 errors"),
                "%s: %s" % (label, errors.group(0) if errors else "memcheck printed no ERROR SUMMARY"))
    ok &= check(leaks["still reachable"] == 0,
                "%s: %d bytes still reachable at exit that pprofc.supp does not explain"
                % (label, leaks["still reachable"]))
    if not ok:
        print(log[-6000:], file=sys.stderr)
    return r


def saved_path(stderr):
    m = re.search(r"^Saved profile in (.+)$", stderr, re.M)
    return m.group(1) if m else None


def check_profile(label, path):
    """The file is a pprof profile readers accept: go tool pprof with no
    warning when Go is installed, pprofc report (native) in any case."""
    if not check(path is not None and os.path.exists(path), "%s: no profile written (%r)" % (label, path)):
        return
    if GO:
        r = subprocess.run([GO, "tool", "pprof", "-top", path], capture_output=True, text=True,
                           timeout=120)
        check(r.returncode == 0 and r.stderr == "", "%s: go tool pprof -top: exit %d: %s"
              % (label, r.returncode, r.stderr))
    r = pprofc("report", path)
    check(r.returncode == 0 and "flat%" in r.stdout, "%s: pprofc report: %s" % (label, r.stderr))


def test_dump_threads():
    """(a) dump-threads, as text, JSON and a pprof threads profile."""
    pb = os.path.join(WORK, "threads.pb.gz")
    with Fixture("waits", progress=True) as fx:
        r = memcheck("dump text", "dump-threads", fx.pid)
        check(('thread %d "waits"' % fx.pid) in r.stdout, "dump text: no main thread: %r" % r.stdout[:300])
        check_untouched(fx.pid, label="dump text")

        r = memcheck("dump json", "dump-threads", "--format", "json", fx.pid)
        try:
            d = json.loads(r.stdout)
            check(d["pid"] == fx.pid and len(d["threads"]) > 1, "dump json: pid %r, %d threads"
                  % (d["pid"], len(d["threads"])))
        except (ValueError, KeyError) as e:
            check(False, "dump json: not a dump (%s): %r" % (e, r.stdout[:300]))
        check_untouched(fx.pid, label="dump json")

        memcheck("dump pprof", "dump-threads", "--pprof", pb, fx.pid)
        check_untouched(fx.pid, label="dump pprof")
        check_progress(fx, label="dump")
    check_profile("dump pprof", pb)
    return pb


def test_cpu_profile():
    """(b) attach --profile cpu -o FILE."""
    out = os.path.join(WORK, "cpu.pb.gz")
    truth = os.path.join(WORK, "truth")
    with Fixture("cpu_split", args=[truth]) as fx:
        memcheck("cpu", "attach", fx.pid, "--profile", "cpu", "--seconds", "2", "-o", out)
        check_untouched(fx.pid, label="cpu")
    check_profile("cpu", out)
    return out


def test_off_cpu_profiles():
    """(c) attach --profile wall and --profile mutex, saved where go tool
    pprof saves (PPROF_TMPDIR)."""
    paths = []
    with Fixture("contended") as fx:
        for profile in ("wall", "mutex"):
            r = memcheck(profile, "attach", fx.pid, "--profile", profile, "--seconds", "2")
            check_untouched(fx.pid, label=profile)
            path = saved_path(r.stderr)
            check_profile(profile, path)
            paths.append(path)
    return paths


def test_report(paths):
    """(d) report of every file the runs above wrote, top, folded and svg."""
    for path in paths:
        if not path or not os.path.exists(path):
            continue
        name = os.path.basename(path)
        r = memcheck("report " + name, "report", path)
        check("flat%" in r.stdout, "report %s: no top table: %r" % (name, r.stdout[:300]))
    cpu = paths[1] if len(paths) > 1 else None
    if cpu and os.path.exists(cpu):
        r = memcheck("report folded", "report", "--format", "folded", cpu)
        check(r.stdout == "" or re.search(r" \d+$", r.stdout.splitlines()[0]) is not None,
              "report folded: %r" % r.stdout[:300])
        r = memcheck("report svg", "report", "--format", "svg", "--tagfocus=thread=.", cpu)
        check(r.stdout.rstrip().endswith("</svg>"), "report svg: %r" % r.stdout[-300:])


if __name__ == "__main__":
    skip_unless_usable()
    WORK = ENV["PPROF_TMPDIR"] = tempfile.mkdtemp(prefix="pprofc-valgrind-")
    print("valgrind %s" % " ".join(MEMCHECK))
    threads = test_dump_threads()
    cpu = test_cpu_profile()
    off = test_off_cpu_profiles()
    test_report([threads, cpu] + off)
    shutil.rmtree(WORK, ignore_errors=True)
    done()
