"""Hostile input (issue 5, case 6): thread names made to break parsers and
writers (quotes, backslash, newline, ") R 1 2" after a parenthesis,
control bytes, invalid UTF-8); a maps file of 100 000 lines; threads whose
stack pointer is in no mapping; a corrupted and a truncated ELF file in
the target's maps.  pprofc must exit 0, keep every output well formed,
show what it can, and leave the target running."""
import gzip
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from fixture import (PPROFC, Fixture, by_name, check, check_untouched, done,  # noqa: E402
                     fixture_path, functions, pb_fields, require_ptrace, tids, wait_for)

GO = shutil.which("go")
# Kept in sync with tests/targets/hostile.c.
NAMES = [b'q"uote\\back', b"new\nline", b"x) R 1 2 3 4", b"( 12) ( 9",
         b"u\xff\xc3(\xc3\xa9\xe2\x82", b"t\tx\x1b[31m\x01", b"z\xffabc", b")" * 15]
MAIN_NAME = b"main) Z 1 (x"
MAPS = 100000


def run(*args, timeout=120):
    """pprofc with raw bytes out (a hostile name must not need decoding)."""
    return subprocess.run([PPROFC] + [str(a) for a in args], capture_output=True, timeout=timeout)


def comms(pid):
    """{tid: comm bytes} as the kernel has them."""
    out = {}
    for tid in tids(pid):
        with open("/proc/%d/task/%d/comm" % (pid, tid), "rb") as f:
            out[tid] = f.read()[:-1]
    return out


def c_unescape(s):
    """Bytes of a C string literal's body, as docs/FORMATS.md §2.2 escapes names."""
    out, i, raw = bytearray(), 0, s.encode("utf-8")
    simple = {ord("n"): 10, ord("t"): 9, ord('"'): 34, ord("\\"): 92}
    while i < len(raw):
        c = raw[i]
        if c != 0x5c:
            out.append(c)
            i += 1
        elif raw[i + 1] in simple:
            out.append(simple[raw[i + 1]])
            i += 2
        elif raw[i + 1] == ord("x"):
            out.append(int(raw[i + 2:i + 4], 16))
            i += 4
        else:
            out.append(int(raw[i + 1:i + 4], 8))
            i += 4
    return bytes(out)


def json_form(name):
    """The documented JSON string of raw bytes: valid UTF-8 kept, each
    stray byte as the character of the same value (U+0080..U+00FF)."""
    text = name.decode("utf-8", errors="surrogateescape")
    return "".join(chr(ord(c) - 0xdc00) if 0xdc80 <= ord(c) <= 0xdcff else c for c in text)


def thread_labels(path):
    """The values of the `thread` label of every sample, as raw bytes."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    msg = list(pb_fields(data))
    strings = [v for k, v in msg if k == 6]
    out = []
    for k, sample in msg:
        if k != 2:
            continue
        for sk, label in pb_fields(sample):
            if sk == 3:
                lab = dict(pb_fields(label))
                if strings[lab.get(1, 0)] == b"thread":
                    out.append(strings[lab.get(2, 0)])
    return out


def gopprof_clean(path, *args):
    """go tool pprof loads the file without any warning."""
    if not GO:
        return ""
    r = subprocess.run([GO, "tool", "pprof"] + list(args) + [path], capture_output=True, timeout=120)
    check(r.returncode == 0 and not r.stderr.strip(),
          "go tool pprof %s %s: exit %d, stderr %r" % (" ".join(args), path, r.returncode, r.stderr[:300]))
    return r.stdout.decode("utf-8", errors="replace")


def profile(pid, *extra, seconds=2):
    out = tempfile.mktemp(prefix="pprofc-hostile-", suffix=".pb.gz")
    r = run("attach", pid, "--seconds", seconds, "-o", out, *extra)
    check(r.returncode == 0 and os.path.exists(out),
          "attach %s failed (%d): %s" % (" ".join(extra), r.returncode, r.stderr.decode(errors="replace")))
    return out if r.returncode == 0 else None


def test_names():
    with Fixture("hostile", args=["names"]) as fx:
        real = comms(fx.pid)
        check(sorted(real.values()) == sorted(NAMES + [MAIN_NAME]),
              "the kernel did not keep the names: %r" % sorted(real.values()))
        r = run("dump-threads", fx.pid)
        check(r.returncode == 0, "text dump exit %d" % r.returncode)
        try:
            text = r.stdout.decode("utf-8")
        except UnicodeDecodeError as e:
            check(False, "text dump is not valid UTF-8: %s" % e)
            text = r.stdout.decode("utf-8", errors="replace")
        lines = [ln for ln in text.split("\n") if ln.startswith("thread ")]
        headers = re.findall(r'^thread (\d+) "((?:[^"\\\n]|\\.)*)" \[[^\n]*\]:$', text, re.M)
        check(len(lines) == len(real) and len(headers) == len(real),
              "%d header lines, %d well-formed, %d threads" % (len(lines), len(headers), len(real)))
        for tid, name in headers:
            check(c_unescape(name) == real.get(int(tid)),
                  "text name of %s: %r does not give back %r" % (tid, name, real.get(int(tid))))

        r = run("dump-threads", "--format=json", fx.pid)
        try:
            d = json.loads(r.stdout)
        except ValueError as e:
            check(False, "JSON dump does not parse: %s" % e)
            d = {"threads": []}
        check(len(d["threads"]) == len(real), "JSON has %d threads" % len(d["threads"]))
        for t in d["threads"]:
            check(t["name"] == json_form(real.get(t["tid"], b"")),
                  "JSON name of %d: %r, want %r" % (t["tid"], t["name"], json_form(real.get(t["tid"], b""))))

        snap = tempfile.mktemp(prefix="pprofc-names-", suffix=".pb.gz")
        r = run("dump-threads", "--pprof", snap, fx.pid)
        check(r.returncode == 0, "dump-threads --pprof exit %d" % r.returncode)
        labels = thread_labels(snap)
        check(sorted(labels) == sorted(real.values()),
              "thread labels of the snapshot: %r" % sorted(labels))
        gopprof_clean(snap, "-tags")
        os.unlink(snap)

        cpu = profile(fx.pid)
        if cpu:
            labels = set(thread_labels(cpu))
            check(labels and labels <= set(real.values()), "CPU profile thread labels: %r" % labels)
            gopprof_clean(cpu, "-tags")
            gopprof_clean(cpu, "-top")
            os.unlink(cpu)
        check_untouched(fx.pid, label="names")


def raise_map_count(want):
    """Raises vm.max_map_count to want if it is lower and we may; returns
    the value to restore (None: unchanged)."""
    path = "/proc/sys/vm/max_map_count"
    try:
        with open(path) as f:
            old = int(f.read())
        if old >= want:
            return None
        with open(path, "w") as f:
            f.write(str(want))
        return old
    except (OSError, ValueError):
        return None


def test_many_maps():
    old = raise_map_count(MAPS + 10000)
    try:
        with Fixture("hostile", args=["maps", str(MAPS)]) as fx:
            made = int(fx.lines[0].split()[1]) if fx.lines else 0
            with open("/proc/%d/maps" % fx.pid) as f:
                nlines = sum(1 for _ in f)
            print("maps: %d regions made, /proc/PID/maps has %d lines" % (made, nlines))
            check(nlines >= 60000, "only %d maps lines (vm.max_map_count?)" % nlines)
            t0 = time.monotonic()
            r = run("dump-threads", fx.pid)
            took = time.monotonic() - t0
            print("maps: %d lines: dump-threads took %.2f s" % (nlines, took))
            check(r.returncode == 0 and b'"maps-spin"' in r.stdout, "dump with %d maps lines: exit %d %r"
                  % (nlines, r.returncode, r.stderr[-300:]))
            t0 = time.monotonic()
            cpu = profile(fx.pid)
            print("maps: %d lines: 2 s CPU profile took %.2f s" % (nlines, time.monotonic() - t0))
            if cpu:
                check("busy_ns" in gopprof_clean(cpu, "-top") or not GO, "maps: busy_ns not in the profile")
                os.unlink(cpu)
            check_untouched(fx.pid, label="maps")
    finally:
        if old is not None:
            with open("/proc/sys/vm/max_map_count", "w") as f:
                f.write(str(old))


def test_bad_sp():
    with Fixture("hostile", args=["badsp"]) as fx:
        def settled():
            r = run("dump-threads", "--format=json", fx.pid)
            if r.returncode != 0:
                return None
            th = by_name(json.loads(r.stdout))
            return th if th.get("bad-sp-block", {}).get("reason") == "signal wait" else None
        th = wait_for(settled, timeout=20, step=0.1)
        check(th is not None, "bad-sp-block never seen in its pause()")
        for name, fn in (("bad-sp-spin", "bad_sp_spin"), ("bad-sp-block", "bad_sp_block")):
            t = (th or {}).get(name)
            check(t is not None and functions(t)[:1] == [fn] and not t["complete"] and
                  "stack pointer" in (t["stack_error"] or ""),
                  "%s: want [%s], incomplete, saying why: %r" % (name, fn, t and (functions(t), t["stack_error"])))
        for extra in ([], ["--stop-all"]):
            r = run("dump-threads", *extra, fx.pid)
            check(r.returncode == 0 and b"...unwinding stopped: stack pointer" in r.stdout,
                  "text dump %s: exit %d, no marker line" % (extra, r.returncode))
        for mode, fn in (("cpu", "bad_sp_spin"), ("wall", "bad_sp_block")):
            out = profile(fx.pid, "--profile", mode)
            if out:
                check(fn in gopprof_clean(out, "-top") or not GO, "%s profile lacks %s" % (mode, fn))
                os.unlink(out)
        check(fx.proc.poll() is None, "the target died")
        check_untouched(fx.pid, label="badsp")


def corrupt(path, magic):
    """Overwrites, in place (no truncation: the target maps this file), the
    section header table with garbage, and with magic the ELF header too."""
    with open(path, "rb") as f:
        head = f.read(64)
    shoff, = struct.unpack_from("<Q", head, 0x28)
    shnum, = struct.unpack_from("<H", head, 0x3c)
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, bytes((i * 37 + 11) & 0xff for i in range(shnum * 64)), shoff)
        if magic:
            os.pwrite(fd, b"\x7fXLF" + bytes(60), 0)
    finally:
        os.close(fd)


def test_corrupt_elf():
    tmp = tempfile.mkdtemp(prefix="pprofc-elf-")
    trunc = os.path.join(tmp, "libtruncated.so")
    with open(fixture_path("plugin"), "rb") as f, open(trunc, "wb") as g:
        g.write(f.read(200))
    for magic in (False, True):
        lib = os.path.join(tmp, "libcorrupt-%s.so" % ("header" if magic else "sections"))
        shutil.copy(fixture_path("plugin"), lib)
        with Fixture("dlopener", args=["now", lib, trunc]) as fx:
            corrupt(lib, magic)
            r = run("dump-threads", "--format=json", fx.pid)
            check(r.returncode == 0, "%s: dump exit %d: %r" % (lib, r.returncode, r.stderr[-300:]))
            t = by_name(json.loads(r.stdout)).get("plugin") if r.returncode == 0 else None
            leaf = t["frames"][0] if t and t["frames"] else {}
            check((leaf.get("module") or "").endswith(os.path.basename(lib)),
                  "%s: leaf frame not in the library: %r" % (lib, leaf))
            print("%s: leaf %s, complete %s, %s" % (os.path.basename(lib), leaf.get("function"),
                                                    t and t["complete"], t and t["stack_error"]))
            if magic:
                check(leaf.get("function") is None, "%s: a name from a broken ELF: %r" % (lib, leaf))
            r = run("dump-threads", fx.pid)
            check(r.returncode == 0 and os.path.basename(lib).encode() in r.stdout,
                  "%s: text dump exit %d" % (lib, r.returncode))
            cpu = profile(fx.pid)
            if cpu and GO:
                # pprof itself warns that it cannot read the broken file.
                g = subprocess.run([GO, "tool", "pprof", "-top", cpu], capture_output=True, text=True,
                                   timeout=120)
                check(g.returncode == 0 and ("plugin_work" in g.stdout or "[%s]" % os.path.basename(lib)
                                             in g.stdout), "%s: profile top: %s" % (lib, g.stdout[-400:]))
            if cpu:
                os.unlink(cpu)
            check(fx.proc.poll() is None, "%s: the target died" % lib)
            check_untouched(fx.pid, label=os.path.basename(lib))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    require_ptrace()
    t0 = time.monotonic()
    test_names()
    test_many_maps()
    test_bad_sp()
    test_corrupt_elf()
    print("took %.1f s" % (time.monotonic() - t0))
    done()
