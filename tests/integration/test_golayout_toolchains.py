"""Goroutines of programs built by the Go releases after Debian 12's 1.19:
Debian's own toolchains golang-1.21 ... golang-1.26, as the real oracles
of golayout.c's table rows and of goruntime.c's DWARF reading.

Each toolchain's two packages (-go and -src, pinned below by SHA-256) are
fetched from the Debian mirror this machine's apt sources name, into a
cache ($PPROFC_GO_TOOLCHAINS, else /tmp/pprofc-go-toolchains), and
unpacked there with dpkg-deb -x: nothing is installed system-wide.  With
each, the go_goroutines fixture is built twice, with DWARF and with
-ldflags=-s -w.  Then, per toolchain:
  - unit-golayout on the pair: every g and m offset of golayout.c's row
    (and labelMap's form) equals what the unstripped build's DWARF says,
    and allgs, waitReasonStrings and the wrappers are found in both;
  - test_goroutines.py's test_dump on each build: pprofc's goroutines
    against the fixture's own runtime.Stack(buf, true) (ids, wait
    reasons, frames with file:line, "created by") and its pprof labels
    against Go's goroutine?debug=1 text;
  - Go 1.26 only: tests/targets/go_leak.go, built with
    GOEXPERIMENT=goroutineleakprofile, whose two leaked goroutines Go
    shows as "[chan receive (leaked)]": pprofc's dump, with and without
    DWARF, equal to its runtime.Stack, and JSON "leaked" true on those.
GOMAXPROCS is the machine's (several Ps): a running goroutine moves
between threads, and its stack is the one of the thread found on it.

Cost: the first run downloads about 225 MB, unpacks 1.3 GB and builds
the fixtures twelve times (about 3.5 minutes here); later runs reuse the
cache (the builds too, while the fixture's source is unchanged).
Skipped (77) where ptrace is not permitted, without dpkg-deb, or when no
toolchain could be fetched (no mirror reachable, or pinned versions gone
from it); a toolchain that cannot be fetched while others can is named.
"""
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from fixture import SKIP, Fixture, check, check_untouched, done, pprofc, require_ptrace
import test_goroutines

# (Go minor, pool path of golang-1.N-go, its SHA-256, of golang-1.N-src, its SHA-256)
TOOLCHAINS = [
    ("1.21", "pool/main/g/golang-1.21/golang-1.21-go_1.21.13-1~bpo12+1_amd64.deb",
     "691c304d3cb9240537d5290a346a24dc8415424aa38840fd3eb72c15cbbed9aa",
     "pool/main/g/golang-1.21/golang-1.21-src_1.21.13-1~bpo12+1_all.deb",
     "6d24ad6efc90ae4097dd090324709ba7b6b05fa132b00d578818c91572b472a8"),
    ("1.22", "pool/main/g/golang-1.22/golang-1.22-go_1.22.12-3~bpo12+1_amd64.deb",
     "97eb8144e79e4a5f47bc12a4521e7b51d790a9e6ebf96113f63c7742892af9cc",
     "pool/main/g/golang-1.22/golang-1.22-src_1.22.12-3~bpo12+1_all.deb",
     "99f37c5e8252de17e52360d2d49796f61d545668545708b2cb6a0dc0705e1922"),
    ("1.23", "pool/main/g/golang-1.23/golang-1.23-go_1.23.5-1~bpo12+1_amd64.deb",
     "9469e6c2b37fed52b9dea80e5c614a5392790cfac99de4ca6242857a039097ee",
     "pool/main/g/golang-1.23/golang-1.23-src_1.23.5-1~bpo12+1_all.deb",
     "c425bc2e0bdd215e66c963072ceab22d93694a206a04e5a9a252bfc081dbac7b"),
    ("1.24", "pool/main/g/golang-1.24/golang-1.24-go_1.24.4-1_amd64.deb",
     "93c6c109bbc0f1d55523282a16739d10634499c04f6d066a6aa58b67b687a44f",
     "pool/main/g/golang-1.24/golang-1.24-src_1.24.4-1_all.deb",
     "c396bc2c2e94606e0a060cff52b9bbbf1d7cefacb040eb3c40a55604111e66e1"),
    ("1.26", "pool/main/g/golang-1.26/golang-1.26-go_1.26.10-1_amd64.deb",
     "497c936cb5050aaeb52021e757aafc8c959248a4c7015615f40390882b76683c",
     "pool/main/g/golang-1.26/golang-1.26-src_1.26.10-1_all.deb",
     "c535cfd05d879c7cb2b28577fc9011fe1639d36e957d5077bb5c862b07b87c02"),
]
IDLE = 300
TARGETS = os.path.join(os.path.dirname(__file__), "..", "targets")
SOURCE = os.path.join(TARGETS, "go_goroutines.go")
LEAK_SOURCE = os.path.join(TARGETS, "go_leak.go")


def mirrors():
    """The Debian archive URIs of this machine's apt sources (deb822 and
    one-line forms), the main archive's first."""
    found = []
    paths = ["/etc/apt/sources.list"]
    d = "/etc/apt/sources.list.d"
    if os.path.isdir(d):
        paths += [os.path.join(d, f) for f in sorted(os.listdir(d))]
    for p in paths:
        try:
            with open(p) as f:
                text = f.read()
        except OSError:
            continue
        for m in re.finditer(r"^(?:URIs:\s*(\S+)|deb\s+(?:\[[^\]]*\]\s+)?(\S+))", text, re.M):
            uri = (m.group(1) or m.group(2)).rstrip("/")
            if uri.startswith("http") and uri.endswith("/debian") and uri not in found:
                found.append(uri)
    return found


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch_deb(cache, pool_path, digest):
    """The .deb in the cache, downloaded if missing; None if no mirror has
    it with that digest."""
    path = os.path.join(cache, "debs", os.path.basename(pool_path))
    if os.path.exists(path) and sha256(path) == digest:
        return path
    os.makedirs(os.path.dirname(path), exist_ok=True)
    for mirror in mirrors():
        url = mirror + "/" + pool_path.replace("~", "%7e").replace("+", "%2b")
        try:
            with urllib.request.urlopen(url, timeout=60) as r, open(path + ".part", "wb") as f:
                shutil.copyfileobj(r, f)
        except OSError as e:
            print("note: %s: %s" % (url, e))
            continue
        if sha256(path + ".part") == digest:
            os.replace(path + ".part", path)
            return path
        print("note: %s: not the pinned SHA-256" % url)
    return None


def toolchain(cache, minor, go_deb, go_sum, src_deb, src_sum):
    """GOROOT of Go 1.minor unpacked in the cache, or None."""
    root = os.path.join(cache, "go" + minor)
    goroot = os.path.join(root, "usr", "lib", "go-" + minor)
    if os.path.exists(os.path.join(root, ".unpacked")):
        return goroot
    debs = [fetch_deb(cache, go_deb, go_sum), fetch_deb(cache, src_deb, src_sum)]
    if None in debs:
        return None
    shutil.rmtree(root, ignore_errors=True)
    for deb in debs:
        subprocess.run(["dpkg-deb", "-x", deb, root], check=True, timeout=300)
    open(os.path.join(root, ".unpacked"), "w").close()
    return goroot


def build(cache, minor, goroot, source=SOURCE, experiment=""):
    """(with DWARF, stripped) builds of source by this toolchain, kept in
    the cache per version of the source."""
    with open(source, "rb") as f:
        tag = hashlib.sha256(f.read()).hexdigest()[:12]
    out = os.path.join(cache, "builds", "go%s-%s" % (minor, tag))
    os.makedirs(out, exist_ok=True)
    env = dict(os.environ, GOROOT=goroot, GO111MODULE="off", GOFLAGS="-buildvcs=false",
               GOTOOLCHAIN="local", GOCACHE=os.path.join(cache, "gocache" + minor),
               GOPATH=os.path.join(cache, "gopath"), GOEXPERIMENT=experiment)
    paths = []
    stem = os.path.splitext(os.path.basename(source))[0]
    for name, flags in (("full", []), ("stripped", ["-ldflags=-s -w"])):
        path = os.path.join(out, "%s_%s" % (stem, name))
        if not os.path.exists(path):
            r = subprocess.run([os.path.join(goroot, "bin", "go"), "build"] + flags +
                               ["-o", path + ".part", source], env=env, capture_output=True,
                               text=True, timeout=600)
            check(r.returncode == 0, "go%s build %s: %s" % (minor, name, r.stderr[-500:]))
            if r.returncode:
                return None
            os.replace(path + ".part", path)
        paths.append(path)
    return paths


def check_table(minor, full, stripped):
    """golayout.c's row against the DWARF of the same build (unit-golayout)."""
    unit = os.environ.get("PPROFC_UNIT_GOLAYOUT")
    check(unit and os.path.exists(unit), "unit-golayout is not built: %r" % unit)
    if not unit:
        return
    r = subprocess.run([unit, full, stripped], capture_output=True, text=True, timeout=120)
    check(r.returncode == 0 and ": go1.%s." % minor[2:] in r.stdout,
          "go%s: the table row differs from DWARF: %s%s" % (minor, r.stdout, r.stderr))


def check_leaked(work, minor, paths):
    """Go 1.26's leaked goroutines, shown as the program's own
    runtime.Stack shows them."""
    for path in paths:
        label = os.path.basename(path)
        oracle_path = os.path.join(work, "leak-oracle")
        with Fixture(label, args=[oracle_path], path=path) as fx:
            r = pprofc("dump-threads", fx.pid)
            j = pprofc("dump-threads", "--format=json", fx.pid)
            check(r.returncode == 0 and j.returncode == 0, "%s: %s%s" % (label, r.stderr, j.stderr))
            with open(oracle_path) as f:
                oracle, _ = test_goroutines.parse_dump(f.read(), oracle=True)
            ours, _ = test_goroutines.parse_dump(r.stdout, oracle=False)
            leaked = sorted(g for g, b in oracle.items() if b["header"].endswith(" (leaked)"))
            check(len(leaked) == 2, "go%s %s: Go shows %d leaked goroutines" % (minor, label, len(leaked)))
            n = test_goroutines.compare(ours, oracle, 1, None, "go%s %s" % (minor, label))
            check(n == 2, "go%s %s: %d goroutines compared" % (minor, label, n))
            d = json.loads(j.stdout) if j.returncode == 0 else {"goroutines": []}
            got = sorted(g["goid"] for g in d["goroutines"] or [] if g["leaked"])
            check(got == leaked, "go%s %s: JSON leaked %s, Go's %s" % (minor, label, got, leaked))
            check_untouched(fx.pid, label=label)
            print("go%s %s: leaked goroutines %s as Go shows them" % (minor, label, leaked))


def main():
    require_ptrace()
    if not shutil.which("dpkg-deb"):
        print("SKIP: dpkg-deb is missing (it unpacks Debian's Go toolchains)")
        sys.exit(SKIP)
    cache = os.environ.get("PPROFC_GO_TOOLCHAINS") or "/tmp/pprofc-go-toolchains"
    os.makedirs(cache, exist_ok=True)
    os.environ.pop("GOMAXPROCS", None)
    work = tempfile.mkdtemp(prefix="pprofc-golayout-")
    tested, missing = [], []
    try:
        for minor, *debs in TOOLCHAINS:
            goroot = toolchain(cache, minor, *debs)
            if not goroot:
                missing.append(minor)
                continue
            paths = build(cache, minor, goroot)
            if not paths:
                continue
            check_table(minor, *paths)
            for path, label in zip(paths, ("", "-stripped")):
                test_goroutines.test_dump(work, "go%s%s" % (minor, label), IDLE, path)
            if minor == "1.26":
                leak = build(cache, minor, goroot, LEAK_SOURCE, "goroutineleakprofile")
                if leak:
                    check_leaked(work, minor, leak)
            tested.append(minor)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if missing:
        print("note: Go %s could not be fetched (mirrors: %s)" % (", ".join(missing), mirrors()))
    if not tested and missing:
        print("SKIP: no Go toolchain could be fetched")
        sys.exit(SKIP)
    print("Go %s: table rows equal DWARF; goroutines equal runtime.Stack's, with and without DWARF"
          % ", ".join(tested))
    done()


if __name__ == "__main__":
    main()
