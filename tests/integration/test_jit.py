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
  them (by go tool pprof -raw), at an address in the page, in no mapping
  (go tool pprof -top: "<unknown>").  And JIT code that a thread makes
  anew all the time (jit-fresh, a page every ~20 ms): the same, and one
  location per pc however often the maps changed meanwhile.

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
    """[(count, [address, ...] innermost first, thread)] by go tool pprof -raw;
    checks that every location in JIT code (jit(address)) has no mapping and
    no function, and that no two locations have the same address."""
    text, err = gopprof("-raw", path)
    check(err == "", "-raw warned: %r" % err)
    samples_part, _, rest = text.partition("\nLocations")
    locs_part, _, maps_part = rest.partition("\nMappings")
    locs = {int(m.group(1)): (int(m.group(2), 16), m.group(3).strip())
            for m in re.finditer(r"^\s+(\d+): 0x([0-9a-f]+)(.*)$", locs_part, re.M)}
    addrs = {i: a for i, (a, _) in locs.items()}
    in_jit = [(hex(a), rest) for a, rest in locs.values() if jit(a)]
    check(in_jit and all(r == "" for _, r in in_jit),
          "JIT locations with a mapping or a function: %r" % [x for x in in_jit if x[1]])
    check(len(set(addrs.values())) == len(addrs), "locations with the same address: %r"
          % sorted(hex(a) for a in addrs.values() if list(addrs.values()).count(a) > 1))
    out = []
    for line in samples_part.split("Samples:", 1)[-1].splitlines()[2:]:
        m = re.match(r"^\s+(\d+)\s+\d+: ([\d ]+)$", line)
        if m:
            out.append([int(m.group(1)), [addrs[int(i)] for i in m.group(2).split()], ""])
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


def profile_once(fx, run_jit):
    """One 2 s CPU profile: (samples of jit-spin with the JIT code innermost,
    with spin_c innermost, samples of jit-fresh); checks that every sample
    of both keeps the JIT frame before run_jit."""
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
        bad = [s for s in mine if not any(jit(a) and i + 1 < len(s[1]) and s[1][i + 1] in run_jit
                                          for i, a in enumerate(s[1]))]
        check(not bad, "%s: samples without the JIT frame before run_jit: %r" % (name, bad[:3]))
        n = sum(s[0] for s in mine)
        in_jit = sum(s[0] for s in mine if jit(s[1][0]))
        in_c = sum(s[0] for s in mine if len(s[1]) > 1 and jit(s[1][1]))
        print("cpu: %d samples of %s, %d with the JIT code innermost, %d in spin_c under it, "
              "%d without the JIT frame before run_jit" % (n, name, in_jit, in_c, sum(s[0] for s in bad)))
        counts.append((in_jit, in_c, n))
    top, _ = gopprof("-top", out)
    check(re.search(r"^\s*\S+\s+\S+%\s+\S+%\s+\S+\s+\S+%\s+<unknown>$", top, re.M) is not None,
          "go tool pprof -top shows no line <unknown> for the JIT code:\n%s" % top)
    return counts[0][0], counts[0][1], counts[1][2]


def test_cpu_profile():
    with Fixture("jit", args=["spin", "fresh"]) as fx:
        dump = {t["name"]: t for t in dump_json(fx.pid, "--stop-all")["threads"]}
        # Return addresses are written as pc - 1 (inside the call).
        run_jit = {int(f["pc"], 16) - 1 for t in dump.values() for f in t["frames"]
                   if f["function"] == "run_jit"}
        # Each kind of sample is wanted; a loaded machine may give the
        # threads few: profile again (at most 5 times) until all came.
        total = [0, 0, 0]
        for _ in range(5):
            total = [a + b for a, b in zip(total, profile_once(fx, run_jit))]
            if all(total):
                break
    check(total[0] > 0, "no sample of jit-spin in the JIT code itself")
    check(total[1] > 0, "no sample of jit-spin in spin_c under the JIT code")
    check(total[2] > 0, "no sample of jit-fresh")


def main():
    require_ptrace()
    test_dump()
    test_cpu_profile()
    done()


if __name__ == "__main__":
    main()
