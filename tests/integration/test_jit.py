"""Stacks through JIT code (tests/targets/jit.c): machine code in an
anonymous executable page, with no file, symbol or CFI behind it.  A frame
there is real: dump-threads must show it, as an address, and go on below it
as far as eu-stack does (the oracle: elfutils, which stops the threads and
follows the frame pointer where there is no CFI).

- jit-fp (frame-pointer JIT code calling a C function that sleeps),
  jit-sys (JIT code making the system call itself: its innermost frame is
  JIT code) and jit-chain (JIT code called by JIT code, both with frame
  pointers): the same pcs as eu-stack's, with and without --stop-all.
  Without stopping, only sp and pc are known and the frame pointer is not:
  before the fix the stack ended at the JIT frame.
- jit-nofp (JIT code without a frame pointer): nothing tells where its
  caller's return address is.  eu-stack stops at it; so does --stop-all.
  Read without stopping, pprofc may go on only where the code bears it
  out, and then to the truth: the same callers as jit-fp's (run_jit at the
  same return address, start_thread, the root) but nofp_main.
- A CPU profile of jit-spin (JIT code spinning, calling a C function that
  spins): by construction spin_c is called only by the JIT code and the
  JIT code only by run_jit, so every sample must hold the JIT frame between
  them (by go tool pprof -raw, which names the other frames), at an
  address in the page, in no mapping (go tool pprof -top: "<unknown>").
  And JIT code that a thread makes anew all the time (jit-fresh, a page
  every ~20 ms; its samples in new_code have no JIT frame, rightly): the
  same, and one location per pc however often the maps changed meanwhile.

Meson runs it also with /usr/lib/debug hidden (-nodebug): libc6-dbg's CFI
must not be what makes it work.
"""
import os
import re
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from fixture import (Fixture, check, done, dump_json, eu_stacks, gopprof, pprofc,  # noqa: E402
                     profile_problem, require_ptrace, wait_for)

# nanosleep, clock_nanosleep, and restart_syscall after a stop (eu-stack's).
SLEEPS = {"35", "230", "219"}


def names(pid):
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                out[f.read().strip()] = int(tid)
        except OSError:
            pass
    return out


def asleep(pid, tid):
    try:
        with open("/proc/%d/task/%d/syscall" % (pid, tid)) as f:
            return f.read().split()[0] in SLEEPS
    except (OSError, IndexError):
        return False


def page_of(fx):
    for line in fx.lines:
        if line.startswith("jit "):
            lo, hi = line.split()[1:3]
            return int(lo, 16), int(hi, 16)
    raise RuntimeError("the fixture printed no page: %r" % fx.lines)


def pcs_of(t):
    return [int(f["pc"], 16) for f in t["frames"] if not f["inlined"]]


def describe(pcs, lo, hi):
    return " ".join(("[JIT]%x" if lo <= pc < hi else "%x") % pc for pc in pcs)


def check_mode(fx, mode, lo, hi):
    """One dump (mode: [] or ["--stop-all"]) against eu-stack, run right
    after it on the same threads, all blocked in their sleep."""
    tids = names(fx.pid)
    sleepers = ("jit-fp", "jit-nofp", "jit-sys", "jit-chain")
    check(wait_for(lambda: all(asleep(fx.pid, tids[n]) for n in sleepers)),
          "%s: the JIT threads never all slept" % mode)
    dump = {t["name"]: t for t in dump_json(fx.pid, *mode)["threads"]}
    eu = eu_stacks(fx.pid)
    label = " ".join(mode) or "not stopped"
    for name in sleepers:
        t, theirs = dump.get(name), eu.get(tids[name], [])
        if not check(t is not None, "%s: thread %s not in the dump" % (label, name)):
            continue
        ours = pcs_of(t)
        jit = [f for f in t["frames"] if lo <= int(f["pc"], 16) < hi]
        check(len(jit) == (2 if name == "jit-chain" else 1) and all(f["function"] is None for f in jit),
              "%s %s: JIT frames as addresses with no name: %r" % (label, name, jit))
        check(any(lo <= pc < hi for pc in theirs), "%s %s: eu-stack has no JIT frame (%s)"
              % (label, name, describe(theirs, lo, hi)))
        print("%s %s: pprofc %s%s\n%s %s: eu-stack %s" % (
            label, name, describe(ours, lo, hi), "" if t["complete"] else " (incomplete)",
            label, name, describe(theirs, lo, hi)))
        if name != "jit-nofp":
            check(ours == theirs, "%s %s: pcs differ from eu-stack's" % (label, name))
            check(t["complete"], "%s %s: incomplete: %s" % (label, name, t.get("stack_error")))
            continue
        check(ours[:len(theirs)] == theirs, "%s jit-nofp: eu-stack's pcs are no prefix of ours" % label)
        if mode or len(ours) == len(theirs):
            check(ours == theirs and not t["complete"],
                  "%s jit-nofp: not eu-stack's stack, ending incomplete at the JIT frame" % label)
            check(not mode or "JIT code" in (t.get("stack_error") or ""),
                  "%s jit-nofp: the reason does not say JIT code: %r" % (label, t.get("stack_error")))
            continue
        # Past the JIT frame: jit-fp's callers, eu-stack's, but nofp_main.
        fp = eu.get(tids["jit-fp"], [])
        k = next((i for i, pc in enumerate(fp) if lo <= pc < hi), len(fp))
        rest, truth = t["frames"][len(theirs):], fp[k + 1:]
        check(len(rest) == len(truth) and t["complete"] and
              [int(f["pc"], 16) for f in rest[:1] + rest[2:]] == truth[:1] + truth[2:] and
              rest[1]["function"] == "nofp_main",
              "%s jit-nofp: callers past the JIT frame are not jit-fp's with nofp_main: %s"
              % (label, [f["function"] for f in rest]))


def test_dump():
    with Fixture("jit") as fx:
        lo, hi = page_of(fx)
        for mode in ([], ["--stop-all"]):
            check_mode(fx, mode, lo, hi)


def raw_stacks(path, jit):
    """[(count, [(address, function or None), ...] innermost first, thread)]
    by go tool pprof -raw; checks that every location in JIT code
    (jit(address)) has no mapping and no function, and that no two
    locations have the same address."""
    text, err = gopprof("-raw", path)
    check(err == "", "-raw warned: %r" % err)
    samples_part, _, rest = text.partition("\nLocations")
    locs_part = rest.partition("\nMappings")[0]
    locs = {int(m.group(1)): (int(m.group(2), 16), m.group(3).split())
            for m in re.finditer(r"^\s+(\d+): 0x([0-9a-f]+)(.*)$", locs_part, re.M)}
    in_jit = [(hex(a), words) for a, words in locs.values() if jit(a)]
    check(in_jit and all(not w for _, w in in_jit),
          "JIT locations with a mapping or a function: %r" % [x for x in in_jit if x[1]])
    addrs = [a for a, _ in locs.values()]
    check(len(set(addrs)) == len(addrs), "locations with the same address: %r"
          % sorted(hex(a) for a in addrs if addrs.count(a) > 1))
    frames = {i: (a, w[1] if len(w) > 1 and w[0].startswith("M=") else None)
              for i, (a, w) in locs.items()}
    out = []
    for line in samples_part.split("Samples:", 1)[-1].splitlines()[2:]:
        m = re.match(r"^\s+(\d+)\s+\d+: ([\d ]+)$", line)
        if m:
            out.append([int(m.group(1)), [frames[int(i)] for i in m.group(2).split()], ""])
        elif out and "thread:[" in line:
            out[-1][2] = line.split("thread:[", 1)[1].rstrip("]")
    return out


def anon_code(pid):
    """The ranges of pid's executable mappings with no file: its JIT code."""
    out = []
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            parts = line.split()
            if parts[1][2] == "x" and len(parts) == 5:
                lo, hi = parts[0].split("-")
                out.append((int(lo, 16), int(hi, 16)))
    return out


def broken_link(stack, jit):
    """Where a stack of jit-spin or jit-fresh breaks the program's structure
    (spin_c called only by JIT code, JIT code only by run_jit, run_jit
    calling only JIT code), or None."""
    for i, (a, fn) in enumerate(stack):
        below = stack[i + 1] if i + 1 < len(stack) else (0, None)
        above = stack[i - 1] if i else (0, None)
        if fn == "spin_c" and not jit(below[0]):
            return "spin_c called by %s" % (below[1] or hex(below[0]))
        if jit(a) and below[1] != "run_jit":
            return "JIT code called by %s" % (below[1] or hex(below[0]))
        if fn == "run_jit" and i and not jit(above[0]):
            return "run_jit calling %s" % (above[1] or hex(above[0]))
    return None


def profile_once(fx):
    """One 2 s CPU profile: (samples of jit-spin with the JIT code innermost,
    with spin_c innermost, samples of jit-fresh in spin_c); checks that
    every sample of both keeps the program's structure around the JIT
    frame."""
    out = os.path.join(tempfile.mkdtemp(prefix="pprofc-jit-"), "cpu.pb.gz")
    r = pprofc("attach", "--seconds=2", "-o", out, fx.pid)
    if not check(r.returncode == 0, "attach failed: %s" % r.stderr):
        return 0, 0, 0
    check(profile_problem(out) == "", "profile unreadable: %s" % profile_problem(out))
    code = anon_code(fx.pid)       # pages are never unmapped: all of them

    def jit(a):
        return any(lo <= a < hi for lo, hi in code)
    stacks = raw_stacks(out, jit)
    counts = []
    for name in ("jit-spin", "jit-fresh"):
        mine = [s for s in stacks if s[2] == name]
        bad = [(s, broken_link(s[1], jit)) for s in mine if broken_link(s[1], jit)]
        check(not bad, "%s: samples that lost or invented a frame: %r" % (name, bad[:3]))
        n = sum(s[0] for s in mine)
        in_jit = sum(s[0] for s in mine if jit(s[1][0][0]))
        in_c = sum(s[0] for s in mine if s[1][0][1] == "spin_c")
        print("cpu: %d samples of %s, %d with the JIT code innermost, %d in spin_c under it, "
              "%d breaking the structure" % (n, name, in_jit, in_c, sum(s[0] for s, _ in bad)))
        counts.append((in_jit, in_c))
    top, _ = gopprof("-top", out)
    check(re.search(r"^\s*\S+\s+\S+%\s+\S+%\s+\S+\s+\S+%\s+<unknown>$", top, re.M) is not None,
          "go tool pprof -top shows no line <unknown> for the JIT code:\n%s" % top)
    return counts[0][0], counts[0][1], counts[1][1]


def test_cpu_profile():
    with Fixture("jit", args=["spin", "fresh"]) as fx:
        # Each kind of sample is wanted; a loaded machine may give the
        # threads few: profile again (at most 5 times) until all came.
        total = [0, 0, 0]
        for _ in range(5):
            total = [a + b for a, b in zip(total, profile_once(fx))]
            if all(total):
                break
    check(total[0] > 0, "no sample of jit-spin in the JIT code itself")
    check(total[1] > 0, "no sample of jit-spin in spin_c under the JIT code")
    check(total[2] > 0, "no sample of jit-fresh in spin_c under the JIT code")


def main():
    require_ptrace()
    test_dump()
    test_cpu_profile()
    done()


if __name__ == "__main__":
    main()
