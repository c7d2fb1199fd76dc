"""Binaries that are hard to read (issue 5, case 5): a stripped binary (names
from .dynsym only; the pprof mapping keeps its build ID and the locations
their addresses, so pprof could symbolize later), a binary without any CFI
(frame-pointer unwinding), a library dlopen'ed after pprofc attached, a
deleted binary under a CPU profile, and a process running as another user.
The deleted binary and another mount namespace under dump-threads are in
test_dump_threads.py."""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from fixture import (PPROFC, Fixture, by_name, check, check_untouched, done,  # noqa: E402
                     dump_json, fixture_path, functions, pprofc, require_ptrace, sampling,
                     thread_frames, wait_for)

GO = shutil.which("go")
SPIN = ["fx_leaf", "fx_middle", "fx_outer"]


def gopprof(*args):
    r = subprocess.run([GO, "tool", "pprof"] + list(args), capture_output=True, text=True, timeout=120)
    check(r.returncode == 0, "go tool pprof %s failed: %s" % (" ".join(args), r.stderr))
    check("warning" not in r.stderr.lower(), "go tool pprof %s warned: %s" % (args[0], r.stderr))
    return r.stdout


def profile(pid, seconds=2, label=""):
    """Takes a CPU profile; returns its path (None when pprofc failed)."""
    out = tempfile.mktemp(prefix="pprofc-bin-", suffix=".pb.gz")
    r = pprofc("attach", pid, "--profile", "cpu", "--seconds", seconds, "-o", out)
    check(r.returncode == 0 and os.path.exists(out), "%s: attach failed: %s" % (label, r.stderr))
    return out if r.returncode == 0 else None


def raw_profile(path):
    """(mappings, locations) from `go tool pprof -raw`: mappings as
    [(start, limit, offset, file, build_id)], locations as [(address, mapping id, text)]."""
    text = gopprof("-raw", path)
    maps, locs, section = [], [], None
    for line in text.splitlines():
        if line.startswith("Locations"):
            section = "loc"
        elif line.startswith("Mappings"):
            section = "map"
        elif section == "loc":
            m = re.match(r"^\s*\d+: 0x([0-9a-f]+) M=(\d+)\s*(.*)$", line)
            if m:
                locs.append((int(m.group(1), 16), int(m.group(2)), m.group(3)))
        elif section == "map":
            m = re.match(r"^\s*\d+: 0x([0-9a-f]+)/0x([0-9a-f]+)/0x([0-9a-f]+) (\S+) ?([0-9a-f]*)", line)
            if m:
                maps.append((int(m.group(1), 16), int(m.group(2), 16), int(m.group(3), 16),
                             m.group(4), m.group(5)))
    return maps, locs


def top_functions(path):
    names = set()
    for line in gopprof("-top", path).splitlines():
        parts = line.split()
        if len(parts) >= 6 and parts[1].endswith("%") and parts[4].endswith("%"):
            names.add(parts[5])
    return names


def traces(path):
    """The sampled stacks, leaf first, from `go tool pprof -traces`."""
    out, cur = [], None
    for line in gopprof("-traces", path).splitlines():
        if line.startswith("-----"):
            if cur:
                out.append(cur)
            cur = []
        elif cur is not None and not re.match(r"^\s*[\w.]+:\s", line) and line.strip():
            m = re.match(r"^\s*[\d.]+[a-z]*\s+(\S.*)$", line)
            cur.append((m.group(1) if m else line).strip())
    if cur:
        out.append(cur)
    return out


def build_id(path):
    r = subprocess.run(["readelf", "-n", path], capture_output=True, text=True)
    m = re.search(r"Build ID: ([0-9a-f]+)", r.stdout)
    return m.group(1) if m else None


def sections(path):
    r = subprocess.run(["readelf", "-SW", path], capture_output=True, text=True)
    return set(re.findall(r"\]\s+(\.\S+)", r.stdout))


def spin_dump(pid):
    """A dump once thread fx-spin is caught in fx_leaf <- fx_middle <-
    fx_outer with a stack complete to its root (it spins: some dumps catch
    it elsewhere, e.g. in fx_middle)."""
    def attempt():
        th = by_name(dump_json(pid))
        t = th.get("fx-spin")
        if not t or not t["complete"] or functions(t)[-1] not in thread_frames()["roots"]:
            return None
        found = [f for f in functions(t) if f in SPIN]
        return th if found == SPIN else None
    return wait_for(attempt, timeout=20, step=0.05)


def test_stripped():
    exe = fixture_path("stripped")
    secs = sections(exe)
    check(".symtab" not in secs and ".debug_info" not in secs, "stripped fixture has symbols: %s" % secs)
    dyn = subprocess.run(["readelf", "--dyn-syms", "-W", exe], capture_output=True, text=True).stdout
    check(all(" %s\n" % f in dyn + "\n" for f in SPIN + ["fx_park"]), "fixture does not export fx_*")
    bid = build_id(exe)
    check(bid is not None, "stripped fixture has no build ID")
    with Fixture("stripped") as fx:
        th = spin_dump(fx.pid)
        check(th is not None, "stripped: fx-spin never shown in fx_leaf <- fx_middle <- fx_outer, complete")
        park = wait_for(lambda: "fx_outer_park" in functions(by_name(dump_json(fx.pid))["fx-park"]), 20)
        check(park, "stripped: fx-park's stack has no fx_outer_park")
        if th:
            f = [x for x in th["fx-spin"]["frames"] if x["function"] == "fx_middle"][0]
            check(f["file"] is None and f["line"] is None and f["offset"] is not None,
                  "stripped: a .dynsym frame has file/line or no offset: %r" % f)
        path = profile(fx.pid, label="stripped")
        check_untouched(fx.pid, label="stripped")
    if not path:
        return
    check("fx_leaf" in top_functions(path), "stripped: fx_leaf not in the profile's top")
    maps, locs = raw_profile(path)
    mine = [i + 1 for i, m in enumerate(maps) if m[3].endswith("/stripped")]
    check(len(mine) == 1 and maps[mine[0] - 1][4] == bid,
          "stripped: mapping of the binary with build ID %s: %r" % (bid, maps))
    if mine:
        start, limit = maps[mine[0] - 1][:2]
        in_exe = [a for a, m, _ in locs if m == mine[0]]
        check(in_exe and all(start <= a < limit for a in in_exe),
              "stripped: locations in the binary lack addresses inside its mapping")
    os.unlink(path)


def fde_ranges(path):
    """[(start, end)] of every FDE in .eh_frame and .debug_frame."""
    r = subprocess.run(["readelf", "--debug-dump=frames", "-W", path], capture_output=True, text=True)
    return [(int(a, 16), int(b, 16)) for a, b in re.findall(r"FDE cie=\S+ pc=([0-9a-f]+)\.\.([0-9a-f]+)", r.stdout)]


def symbol_address(path, name):
    r = subprocess.run(["nm", path], capture_output=True, text=True)
    m = re.search(r"^([0-9a-f]+) [Tt] %s$" % name, r.stdout, re.M)
    return int(m.group(1), 16) if m else None


def test_no_cfi():
    exe = fixture_path("nocfi")
    check(".debug_frame" not in sections(exe), "nocfi fixture has .debug_frame")
    fdes = fde_ranges(exe)
    for f in SPIN + ["fx_park", "fx_outer_park"]:
        a = symbol_address(exe, f)
        check(a is not None and not any(lo <= a < hi for lo, hi in fdes),
              "nocfi: %s at %r is covered by CFI" % (f, a))
    with Fixture("nocfi") as fx:
        th = spin_dump(fx.pid)
        check(th is not None, "nocfi: fx-spin never unwound from fx_leaf through fx_middle <- fx_outer to its root")
        if th:
            fs = functions(th["fx-spin"])
            check("spin_main" in fs and set(fs) & thread_frames()["start_thread"],
                  "nocfi: fx-spin stack %s" % fs)

        # fx-park is read without stopping it (only sp and pc known): the
        # frame-pointer frames above read() need rbp guessed from the stack.
        def parked():
            t = by_name(dump_json(fx.pid))["fx-park"]
            return t if "fx_outer_park" in functions(t) and t["complete"] else None
        t = wait_for(parked, timeout=20, step=0.1)
        check(t is not None, "nocfi: fx-park never unwound to its root through fx_park <- fx_outer_park")
        path = profile(fx.pid, label="nocfi")
        check_untouched(fx.pid, label="nocfi")
    if not path:
        return
    stacks = [s for s in traces(path) if "fx_leaf" in s]
    starts = thread_frames()["start_thread"]
    chain = ["fx_leaf", "fx_middle", "fx_outer", "spin_main", "start_thread"]
    full = [s for s in stacks
            if [("start_thread" if f in starts else f) for f in s if f in chain or f in starts] == chain]
    check(stacks and full, "nocfi: no CPU sample unwound from fx_leaf to start_thread: %r" % stacks[:3])
    print("nocfi: %d of %d distinct CPU stacks in fx_leaf unwound to start_thread" % (len(full), len(stacks)))
    os.unlink(path)


def test_dlopen_after_attach():
    lib = fixture_path("plugin")
    with Fixture("dlopener", args=["wait", lib]) as fx:
        out = tempfile.mktemp(prefix="pprofc-dlopen-", suffix=".pb.gz")
        p = subprocess.Popen([PPROFC, "attach", str(fx.pid), "--profile", "cpu", "--seconds", "3",
                              "-o", out], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        check(wait_for(lambda: sampling(p.pid) or p.poll() is not None, 30),
              "dlopen: pprofc never started sampling")
        maps_before = open("/proc/%d/maps" % fx.pid).read()
        check("libplugin" not in maps_before, "dlopen: the library was loaded before the signal")
        os.kill(fx.pid, signal.SIGUSR1)
        check(fx.proc.stdout.readline().strip() == "loaded", "dlopen: fixture did not load the library")
        _, err = p.communicate(timeout=120)
        check(p.returncode == 0, "dlopen: attach failed: %s" % err)
        check_untouched(fx.pid, label="dlopen")
    if p.returncode != 0:
        return
    top = top_functions(out)
    check("plugin_work" in top, "dlopen: plugin_work not in the profile: %s" % sorted(top))
    stacks = [s for s in traces(out) if "plugin_work" in s]
    check(any("plugin_spin" in s and set(s) & thread_frames()["start_thread"] for s in stacks),
          "dlopen: no sample unwound from plugin_work to start_thread: %r" % stacks[:3])
    maps, locs = raw_profile(out)
    lm = [i + 1 for i, m in enumerate(maps) if m[3].endswith("/libplugin.so")]
    check(len(lm) == 1 and maps[lm[0] - 1][4] == build_id(lib),
          "dlopen: no mapping with build ID for libplugin.so: %r" % [m[3] for m in maps])
    check(lm and any(m == lm[0] for _, m, _ in locs), "dlopen: no location in libplugin.so's mapping")
    os.unlink(out)


def test_deleted_binary_cpu():
    tmp = tempfile.mkdtemp(prefix="pprofc-deleted-")
    copy = os.path.join(tmp, "exported-copy")
    shutil.copy(fixture_path("stripped"), copy)
    with Fixture("stripped", path=copy) as fx:
        os.unlink(copy)
        path = profile(fx.pid, label="deleted")
        check_untouched(fx.pid, label="deleted")
    shutil.rmtree(tmp, ignore_errors=True)
    if not path:
        return
    check("fx_leaf" in top_functions(path), "deleted: fx_leaf not in the profile")
    maps, _ = raw_profile(path)
    check(maps and maps[0][3].endswith("/exported-copy"),
          "deleted: first mapping is not the binary, without ' (deleted)': %r" % (maps[:1],))
    os.unlink(path)


def test_other_user():
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        print("other-user test needs root and setpriv")
        return
    args = ["--reuid=nobody", "--regid=nogroup", "--clear-groups", fixture_path("stripped")]
    with Fixture("stripped", path=shutil.which("setpriv"), args=args) as fx:
        uid = [ln for ln in open("/proc/%d/status" % fx.pid) if ln.startswith("Uid:")][0].split()[1]
        check(uid != "0", "other-user: fixture runs as uid %s" % uid)
        th = spin_dump(fx.pid)
        check(th is not None, "other-user: dump-threads did not show fx-spin's stack")
        path = profile(fx.pid, label="other-user")
        check_untouched(fx.pid, label="other-user")
    if path:
        check("fx_leaf" in top_functions(path), "other-user: fx_leaf not in the profile")
        os.unlink(path)


def loaded_libraries(args, env):
    """The libraries the dynamic loader opened while pprofc ran args, from
    its own LD_DEBUG=files trace."""
    r = subprocess.run([PPROFC] + args, env=dict(env, LD_DEBUG="files"), capture_output=True,
                       text=True, timeout=120)
    return r.returncode, set(re.findall(r"file=(\S+) \[0\];", r.stderr))


def test_no_debuginfod_unasked():
    """libdw loads libdebuginfod (and libcurl, with some twenty libraries)
    the first time a debug file is not found here, even when no server is
    configured: a fifth of a small dump's time.  Without DEBUGINFOD_URLS
    pprofc never takes that path; with it, it does (so the check can
    fail).  The target is Debian's /usr/bin/sleep, whose debug file
    (coreutils-dbgsym) is not installed."""
    target = subprocess.Popen(["sleep", "600"])
    try:
        env = {k: v for k, v in os.environ.items() if k != "DEBUGINFOD_URLS"}
        rc, libs = loaded_libraries(["dump-threads", str(target.pid)], env)
        check(rc == 0 and not any("debuginfod" in l for l in libs),
              "no DEBUGINFOD_URLS: exit %d, libdebuginfod loaded anyway (%s)"
              % (rc, sorted(l for l in libs if "debuginfod" in l or "curl" in l)))
        cache = tempfile.mkdtemp(prefix="pprofc-debuginfod-")
        env.update(DEBUGINFOD_URLS="http://127.0.0.1:9/", DEBUGINFOD_CACHE_PATH=cache,
                   DEBUGINFOD_TIMEOUT="2")
        rc, libs = loaded_libraries(["dump-threads", str(target.pid)], env)
        check(rc == 0 and any("libdebuginfod" in l for l in libs),
              "DEBUGINFOD_URLS set: exit %d, libdebuginfod not consulted" % rc)
        shutil.rmtree(cache, ignore_errors=True)
        check_untouched(target.pid, label="debuginfod")
    finally:
        target.kill()
        target.wait()


def test_debuglink():
    """A binary whose DWARF is in a separate file named by its
    .gnu_debuglink, next to it (objcopy --only-keep-debug, then
    --strip-debug --add-gnu-debuglink): its frames get source lines, as
    with the DWARF inside.  The lookup that skips debuginfod must still
    find such files."""
    if not shutil.which("objcopy"):
        print("objcopy not installed: case skipped")
        return
    d = tempfile.mkdtemp(prefix="pprofc-debuglink-")
    exe = os.path.join(d, "waits")
    shutil.copy(fixture_path("waits"), exe)
    subprocess.run(["objcopy", "--only-keep-debug", exe, exe + ".debug"], check=True)
    subprocess.run(["objcopy", "--strip-debug", "--add-gnu-debuglink=" + exe + ".debug", exe],
                   check=True)
    check(".debug_line" not in sections(exe), "debuglink: the copy still has its DWARF")
    try:
        with Fixture("waits", path=exe) as fx:
            t = by_name(dump_json(fx.pid)).get("sleeper")
            lines = [f for f in (t or {}).get("frames", []) if f["module"] == exe and f["file"]]
            check(t and lines and all(f["file"].endswith("waits.c") for f in lines),
                  "debuglink: no source lines for the binary's frames: %r"
                  % [(f["function"], f["file"]) for f in (t or {}).get("frames", [])])
            check_untouched(fx.pid, label="debuglink")
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    require_ptrace()
    if not GO:
        print("skipped: go tool pprof not installed")
        sys.exit(77)
    t0 = time.monotonic()
    test_stripped()
    test_no_cfi()
    test_dlopen_after_attach()
    test_deleted_binary_cpu()
    test_other_user()
    test_no_debuginfod_unasked()
    test_debuglink()
    print("took %.1f s" % (time.monotonic() - t0))
    done()
