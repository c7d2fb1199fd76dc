"""`pprofc report --format svg`: the flame graph of real profiles, pprofc's
(a CPU profile of cpu_split, whose hot functions are known) and Go's own
(`go test -cpuprofile` of a tiny package built here): the page parses as
XML; every hot function's boxes are as wide as go tool pprof -top's cum
and flat say (pprofc's own top where Go is missing), and every box's
tooltip ("value (pct%), self value (pct%)") agrees with its width and,
summed per function, with top's flat and cum; --sample-index,
--tagfocus and --tagignore choose what is drawn; C++ template names and
hostile names are escaped; an empty profile, one without locations and a
20,000-frame stack each give a valid page; headless Chromium draws the
page (the screenshot is decoded and must not be blank) and runs its
script (#search=...&zoom=... in the URL, the DOM then checked).
PPROFC_KEEP_FLAME=1 keeps the files (the screenshot to look at)."""
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
import zlib

sys.path.insert(0, os.path.dirname(__file__))
from fixture import Fixture, check, done, fixture_path, pprofc, require_ptrace  # noqa: E402

GO = shutil.which("go")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NS = "{http://www.w3.org/2000/svg}"
DRAW = 1180.0           # the root's width in px (flame.c: WIDTH - 2 * PAD)
ROW = 16
TMP = tempfile.mkdtemp(prefix="pprofc-flame-")

# ---- reading a page ------------------------------------------------------


def frames_of(svg_text):
    """[(name, x, y, width, classes)] of every frame box, from the parsed page."""
    root = ET.fromstring(svg_text)
    out = []
    for g in root.iter(NS + "g"):
        if "f" not in g.get("class", "").split():
            continue
        name = g.find(NS + "title").text.split("\n")[0]
        r = g.find(NS + "rect")
        out.append((name, float(r.get("x")), int(r.get("y")), float(r.get("width")),
                    g.get("class").split()))
    return out


def tooltips(svg_text):
    """[(name, x, y, width, (value, pct, self value, self pct))] of every
    frame box, from the first lines of its <title>: "value (pct%), self
    value (pct%)", as the page shows them on hover."""
    root = ET.fromstring(svg_text)
    out = []
    for g in root.iter(NS + "g"):
        if "f" not in g.get("class", "").split():
            continue
        lines = g.find(NS + "title").text.split("\n")
        m = re.match(r"^(\S+) \(([\d.]+)%\), self (\S+) \(([\d.]+)%\)$", lines[1] if len(lines) > 1 else "")
        check(m is not None, "tooltip of %s: %r" % (lines[0], lines[1:]))
        r = g.find(NS + "rect")
        out.append((lines[0], float(r.get("x")), int(r.get("y")), float(r.get("width")),
                    m.groups() if m else ("0", "0", "0", "0")))
    return out


def title_of(svg_text):
    root = ET.fromstring(svg_text)
    for t in root.iter(NS + "text"):
        if t.get("id") == "title":
            return t.text
    return ""


def shares(frames):
    """{name: (flat, cum)} as fractions of the root's width, read off the
    boxes: cum is the width of a function's outermost boxes, flat what its
    boxes leave uncovered by the row below them."""
    eps = 0.01
    by_row = {}
    for f in frames:
        by_row.setdefault(f[2], []).append(f)
    out = {}
    for name, x, y, w, _ in frames:
        kids = sum(k[3] for k in by_row.get(y + ROW, []) if k[1] >= x - eps and k[1] + k[3] <= x + w + eps)
        nested = any(o[0] == name and o[2] < y and o[1] <= x + eps and o[1] + o[3] >= x + w - eps
                     for o in frames)
        flat, cum = out.get(name, (0.0, 0.0))
        out[name] = (flat + (w - kids) / DRAW, cum + (0 if nested else w / DRAW))
    return out


SCALE = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1, "mins": 60, "hrs": 3600, None: 1}


def seconds(text):
    m = re.match(r"^(-?[\d.]+)(ns|us|ms|s|mins|hrs)?$", text)
    if not m:
        return None
    return float(m.group(1)) * SCALE[m.group(2)]


def rounding(text):
    """How far a value as printed may be from the value: pprof prints
    times with two decimals in their unit, counts whole."""
    m = re.match(r"^(-?[\d.]+)(ns|us|ms|s|mins|hrs)?$", text)
    return 0.005 * SCALE[m.group(2)] if m and m.group(2) else 0.5


def oracle_top(path, *args):
    """(total, {function: (flat, cum)}) by go tool pprof -top (fractions of
    the total), or by pprofc's own top where Go is not installed."""
    if GO:
        r = subprocess.run([GO, "tool", "pprof", "-top", "-nodefraction=0", "-nodecount=100000"] +
                           list(args) + [path], capture_output=True, text=True, timeout=120)
    else:
        r = pprofc("report", "--format=top", *args, path)
    check(r.returncode == 0, "top of %s: %s" % (path, r.stderr))
    m = re.search(r"of (\S+) total", r.stdout)
    total = seconds(m.group(1)) if m else None
    rows = {}
    for line in r.stdout.splitlines():
        p = line.split()
        if len(p) >= 6 and p[1].endswith("%") and p[4].endswith("%"):
            flat, cum = seconds(p[0]), seconds(p[3])
            if flat is not None and total:
                rows[" ".join(p[5:]).replace(" (inline)", "")] = (flat / total, cum / total)
    return (m.group(1) if m else None), rows


def top_table(path, *args):
    """{function: (flat, flat%, cum, cum%)} as go tool pprof -top prints
    them (strings), where Go is installed; {} otherwise."""
    if not GO:
        return {}
    r = subprocess.run([GO, "tool", "pprof", "-top", "-nodefraction=0", "-nodecount=100000"] +
                       list(args) + [path], capture_output=True, text=True, timeout=120)
    check(r.returncode == 0, "top of %s: %s" % (path, r.stderr))
    rows = {}
    for line in r.stdout.splitlines():
        p = line.split()
        if len(p) >= 6 and p[1].endswith("%") and p[4].endswith("%"):
            rows[" ".join(p[5:]).replace(" (inline)", "")] = (p[0], p[1][:-1], p[3], p[4][:-1])
    return rows


def check_tooltips(text, path, hot, label, *args):
    """Each box's tooltip: its percentages are its values over the page's
    total and its width; each hot function's self values (all its boxes)
    and values (its outermost boxes) add up to top's flat and cum, in
    value and in percent, within what printing rounds off."""
    tips = tooltips(text)
    m = re.search(r": (\S+) total$", title_of(text))
    total = seconds(m.group(1)) if m else None
    if not check(tips and total, "%s: no tooltips or no total (%r)" % (label, title_of(text))):
        return
    for name, x, y, w, (v, p, sv, sp) in tips:
        check(abs(float(p) / 100 * DRAW - w) < 0.02 * DRAW / 100 + 0.01 and float(sp) <= float(p) + 0.005,
              "%s: %s's tooltip says %s%% (self %s%%), its box is %.3f of %.0f px" % (label, name, p, sp, w, DRAW))
        check(abs(seconds(v) - float(p) / 100 * total) <= rounding(v) + 0.00005 * total + rounding(m.group(1)),
              "%s: %s's tooltip %s is not %s%% of %s" % (label, name, v, p, m.group(1)))
    top = top_table(path, *args)
    if not top:
        print("%s: go is not installed: tooltips not compared with go tool pprof -top" % label)
        return
    for name in hot:
        boxes = [t for t in tips if t[0] == name]
        outer = [b for b in boxes if not any(o[0] == name and o[2] < b[2] and o[1] <= b[1] + 0.01 and
                                                 o[1] + o[3] >= b[1] + b[3] - 0.01 for o in tips)]
        row = top.get(name)
        if not check(boxes and row, "%s: %s has no box or no row of top" % (label, name)):
            continue
        flat, flat_pct = sum(seconds(b[4][2]) for b in boxes), sum(float(b[4][3]) for b in boxes)
        cum, cum_pct = sum(seconds(b[4][0]) for b in outer), sum(float(b[4][1]) for b in outer)
        slack = sum(rounding(b[4][2]) for b in boxes)
        check(abs(flat - seconds(row[0])) <= slack + rounding(row[0]) and
              abs(flat_pct - float(row[1])) <= 0.005 * (len(boxes) + 1) + 1e-9,
              "%s: %s self in tooltips %g (%.2f%%) over %d boxes, top's flat %s (%s%%)"
              % (label, name, flat, flat_pct, len(boxes), row[0], row[1]))
        slack = sum(rounding(b[4][0]) for b in outer)
        check(abs(cum - seconds(row[2])) <= slack + rounding(row[2]) and
              abs(cum_pct - float(row[3])) <= 0.005 * (len(outer) + 1) + 1e-9,
              "%s: %s in tooltips %g (%.2f%%) over %d boxes, top's cum %s (%s%%)"
              % (label, name, cum, cum_pct, len(outer), row[2], row[3]))
        print("%s: %s tooltips self %s (%s%%) of %s (%s%%); top: flat %s (%s%%), cum %s (%s%%)"
              % (label, name, " + ".join(b[4][2] for b in boxes), " + ".join(b[4][3] for b in boxes),
                 " + ".join(b[4][0] for b in outer), " + ".join(b[4][1] for b in outer), *row))


def svg(path, *args):
    r = pprofc("report", "--format", "svg", *args, path, timeout=120)
    check(r.returncode == 0 and r.stderr == "", "report --format svg %s %s: rc %d %r"
          % (" ".join(args), path, r.returncode, r.stderr))
    return r.stdout


def parses(text, what):
    try:
        ET.fromstring(text)
        return True
    except ET.ParseError as e:
        check(False, "%s: not well-formed XML: %s" % (what, e))
        return False


def check_against_top(path, hot, label, *args):
    """The page of path is well-formed and each hot function's boxes have
    the widths the top view gives it; returns the page."""
    text = svg(path, *args)
    if not parses(text, label):
        return text
    total, rows = oracle_top(path, *args)
    m = re.search(r": (\S+) total$", title_of(text))
    have = seconds(m.group(1)) if m else None
    want = seconds(total) if total else None
    check(have is not None and want and abs(have - want) <= 0.005 * want,
          "%s: title %r, top's total %r" % (label, title_of(text), total))
    got = shares(frames_of(text))
    for name in hot:
        want = rows.get(name)
        have = got.get(name)
        if check(want is not None and have is not None, "%s: %s missing (page %s, top %s)"
                 % (label, name, have, want)):
            # top prints 3 significant digits: 0.5% of the total covers it.
            check(abs(have[0] - want[0]) < 0.005 and abs(have[1] - want[1]) < 0.005,
                  "%s: %s flat/cum %.4f/%.4f on the page, %.4f/%.4f by top"
                  % (label, name, have[0], have[1], want[0], want[1]))
    check_tooltips(text, path, hot, label, *args)
    return text


# ---- profiles --------------------------------------------------------------


def cpu_profile():
    """A 2 s CPU profile of cpu_split: share_a, share_b, share_c about 17,
    33 and 50% of it, mix_step inlined into share_c."""
    out = os.path.join(TMP, "cpu.pb.gz")
    truth = os.path.join(TMP, "truth")
    with Fixture("cpu_split", args=[truth]) as fx:
        r = pprofc("attach", fx.pid, "--profile", "cpu", "--seconds", "2", "--hz", "500", "-o", out)
    check(r.returncode == 0, "attach cpu_split: %s" % r.stderr)
    return out


GO_TEST = """package hot

import "testing"

//go:noinline
func hotA(n int) int {
	s := 0
	for i := 0; i < n; i++ {
		s += i * i % 7
	}
	return s
}

//go:noinline
func hotB(n int) int {
	s := 0
	for i := 0; i < n; i++ {
		s ^= i * 31 % 13
	}
	return s
}

var sink int

func TestHot(t *testing.T) {
	for i := 0; i < 20; i++ {
		sink += hotA(5000000)
		sink += hotB(15000000)
	}
}
"""


def go_profile():
    """A CPU profile written by Go itself: go test -cpuprofile."""
    d = os.path.join(TMP, "gohot")
    os.mkdir(d)
    with open(os.path.join(d, "go.mod"), "w") as f:
        f.write("module hot\n\ngo 1.19\n")
    with open(os.path.join(d, "hot_test.go"), "w") as f:
        f.write(GO_TEST)
    r = subprocess.run([GO, "test", "-count=1", "-cpuprofile", "cpu.pb.gz", "."], cwd=d,
                       capture_output=True, text=True, timeout=300)
    check(r.returncode == 0, "go test -cpuprofile: %s %s" % (r.stdout, r.stderr))
    return os.path.join(d, "cpu.pb.gz")


def varint(n):
    n &= (1 << 64) - 1
    out = b""
    while True:
        out += bytes([(n & 0x7f) | (0x80 if n > 0x7f else 0)])
        n >>= 7
        if not n:
            return out


def fv(num, v):
    return varint(num << 3) + varint(v)


def fb(num, b):
    return varint(num << 3 | 2) + varint(len(b)) + b


def write_profile(path, stacks, types=(("samples", "count"), ("cpu", "nanoseconds"))):
    """A pprof file made here, byte by byte: stacks are (frames root
    first, values, {label: str or int}); one function and one location
    per distinct name."""
    strings, names = [""], {}

    def s(x):
        if x not in strings:
            strings.append(x)
        return strings.index(x)
    msg = b"".join(fb(1, fv(1, s(t)) + fv(2, s(u))) for t, u in types)
    for frames, values, labels in stacks:
        for n in frames:
            names.setdefault(n, len(names) + 1)
        body = b"".join(fv(1, names[n]) for n in reversed(frames))
        body += b"".join(fv(2, v) for v in values)
        for k, v in labels.items():
            body += fb(3, fv(1, s(k)) + (fv(2, s(v)) if isinstance(v, str) else fv(3, v)))
        msg += fb(2, body)
    for n, i in names.items():
        msg += fb(4, fv(1, i) + fv(3, 0x1000 + i) + fb(4, fv(1, i)))
        msg += fb(5, fv(1, i) + fv(2, s(n)) + fv(3, s(n)))
    msg += b"".join(fb(6, x.encode("utf-8", "surrogateescape")) for x in strings)
    with open(path, "wb") as f:
        f.write(msg)
    return path


# ---- the checks --------------------------------------------------------------


def test_pprofc_profile(path):
    text = check_against_top(path, ["share_a", "share_b", "share_c", "mix_step"], "pprofc cpu")
    frames = frames_of(text)
    check(any(f[0] == "mix_step" and "i" in f[4] for f in frames), "mix_step not marked inlined")
    check(frames and frames[0][0] == "root" and frames[0][1] == 10 and frames[0][3] == DRAW,
          "the first frame is not the full-width root: %r" % frames[:1])
    # The sample count, not the CPU time, with its own title.
    check_against_top(path, ["share_a", "share_b", "share_c"], "pprofc samples", "--sample_index=samples")
    check(title_of(svg(path, "--sample_index=0")).startswith("Flame graph of samples (count)"),
          "--sample_index=0 is not samples")
    # cpu_split's CPU is all in the thread "busy".
    busy = frames_of(svg(path, "--tagfocus=thread=busy"))
    check(len(busy) == len(frames), "--tagfocus=thread=busy drew %d frames, %d without" % (len(busy), len(frames)))
    none = svg(path, "--tagfocus=thread=^sleeper$")
    check(parses(none, "tagfocus sleeper") and not frames_of(none) and "No samples match the filters" in none,
          "--tagfocus=thread=^sleeper$ drew frames")
    check(not frames_of(svg(path, "--tagignore=thread=busy")), "--tagignore=thread=busy drew frames")
    r = pprofc("report", "--format=svg", "--sample-index=nosuch", path)
    check(r.returncode == 2 and r.stderr.count("\n") == 1 and "[samples cpu]" in r.stderr,
          "bad --sample-index: rc %d %r" % (r.returncode, r.stderr))
    return text


def test_go_profile():
    if not GO:
        print("go is not installed: the profile written by Go is not checked")
        return
    path = go_profile()
    check_against_top(path, ["hot.hotA", "hot.hotB", "hot.TestHot"], "go cpu")
    # go tool pprof and pprofc both read Go's spelling of the flag.
    check_against_top(path, ["hot.hotA", "hot.hotB"], "go samples", "--sample_index=samples")


def test_filters_exact():
    """Labels made here: the filters pick exactly the stacks they should,
    and top and folded filter the same way."""
    path = write_profile(os.path.join(TMP, "labels.pb"), [
        (["main", "worker", "crunch"], [3, 3000], {"thread": "worker-1", "tid": 11}),
        (["main", "worker", "crunch"], [1, 1000], {"thread": "worker-2", "tid": 12}),
        (["main", "logger", "write"], [2, 2000], {"thread": "log", "tid": 13}),
    ])
    names = lambda *a: sorted({f[0] for f in frames_of(svg(path, *a))})
    check(names("--tagfocus=thread=worker") == ["crunch", "main", "root", "worker"], "tagfocus worker: %r"
          % names("--tagfocus=thread=worker"))
    check(names("--tagfocus=tid=13") == ["logger", "main", "root", "write"], "tagfocus tid=13")
    check(names("--tagfocus=tid=12:", "--tagignore=thread=log") == ["crunch", "main", "root", "worker"],
          "tagfocus tid=12: with tagignore log")
    check(names("--tagfocus=thread:worker-2") == ["crunch", "main", "root", "worker"], "key:value form")
    text = svg(path, "--tagfocus=thread=worker-1,log")
    got = shares(frames_of(text))
    check(abs(got["crunch"][1] - 0.6) < 1e-4 and abs(got["write"][1] - 0.4) < 1e-4,
          "two expressions: shares %r" % got)
    r = pprofc("report", "--format=folded", "--tagfocus=thread=log", path)
    check(r.stdout == "main;logger;write 2000\n", "folded with tagfocus: %r" % r.stdout)
    r = pprofc("report", "--tagfocus=thread=log", "--sample-index=samples", path)
    check("Active filters:\n   tagfocus=thread=log\n" in r.stdout and re.search(r"\b2\s+100%", r.stdout),
          "top with tagfocus and sample index: %r" % r.stdout)
    for bad in ("--tagfocus=thread=(", "--tagfocus==x", "--tagfocus="):
        r = pprofc("report", "--format=svg", bad, path)
        check(r.returncode == 2 and r.stderr.count("\n") == 1, "%s: rc %d %r" % (bad, r.returncode, r.stderr))


def test_escaping():
    """A C++ template name from a real process, and names made to break a
    page: markup characters, bytes that are not UTF-8, control characters."""
    if fixture_path("cxx_names"):
        out = os.path.join(TMP, "cxx.pb.gz")
        with Fixture("cxx_names") as fx:
            r = pprofc("attach", fx.pid, "--seconds", "1", "-o", out)
        check(r.returncode == 0, "attach cxx_names: %s" % r.stderr)
        text = svg(out)
        want = "fixture::Spinner<unsigned long>::spin"
        check(parses(text, "cxx") and want in {f[0] for f in frames_of(text)}, "%s not a frame" % want)
        check("Spinner&lt;unsigned long&gt;::spin" in text, "the template name is not escaped")
    else:
        print("cxx_names not built: the C++ profile is not checked")
    evil = ["ns::f<a&b>(\"x\")", "operator<<", "]]></script><script>alert(1)</script>",
            "bad\udcff\udcfebytes", "tab\tand\x01control\x7f", "\uffff\ufffe"]
    path = write_profile(os.path.join(TMP, "evil.pb"), [(["main"] + evil, [1, 5], {})])
    text = svg(path)
    if parses(text, "hostile names"):
        names = [f[0] for f in frames_of(text)]
        for n in evil[:3]:
            check(n in names, "%r did not survive: %r" % (n, names))
        check("bad\ufffd\ufffdbytes" in names, "bytes not UTF-8 not replaced: %r" % names)
        check(text.count("<script") == 1, "a name opened a script element")


def test_odd_profiles():
    empty = write_profile(os.path.join(TMP, "empty.pb"), [])
    text = svg(empty)
    check(parses(text, "empty") and "No samples" in text and not frames_of(text), "empty profile page")
    noloc = write_profile(os.path.join(TMP, "noloc.pb"), [([], [4, 400], {})])
    text = svg(noloc)
    check(parses(text, "no locations") and [f[0] for f in frames_of(text)] == ["root"],
          "a profile without locations: %r" % frames_of(text)[:3])
    deep = write_profile(os.path.join(TMP, "deep.pb"), [(["f%d" % (i % 7) for i in range(20000)], [1, 7], {}),
                                                       (["main", "short"], [1, 3], {})])
    text = svg(deep)
    if parses(text, "deep"):
        frames = frames_of(text)
        rows = max(f[2] for f in frames) // ROW
        check(any(f[0] == "[deeper frames not drawn]" for f in frames) and len(frames) < 2100 and rows < 2100,
              "20000 frames deep: %d frames, %d rows" % (len(frames), rows))
        check(len(text) < 1 << 20, "20000 frames deep: %d bytes" % len(text))
    r = pprofc("report", "--format=svg", "/etc/passwd")
    check(r.returncode == 1 and r.stderr.count("\n") == 1 and r.stdout == "",
          "report --format svg of a non-profile: rc %d %r" % (r.returncode, r.stderr))
    r = pprofc("report", "--format=png", empty)
    check(r.returncode == 2 and "top, folded or svg" in r.stderr, "--format=png: %r" % r.stderr)


# ---- Chromium ------------------------------------------------------------------


def png_pixels(path):
    """(width, height, rows of RGB tuples) of an 8-bit RGB(A) PNG, decoded
    here (zlib and the five PNG filters)."""
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    i, idat, head = 8, b"", None
    while i < len(data):
        n, kind = struct.unpack(">I4s", data[i:i + 8])
        if kind == b"IHDR":
            head = struct.unpack(">IIBBBBB", data[i + 8:i + 21])
        elif kind == b"IDAT":
            idat += data[i + 8:i + 8 + n]
        i += 12 + n
    w, h, depth, ctype, _, _, interlace = head
    if depth != 8 or ctype not in (2, 6) or interlace:
        return None
    bpp = 3 if ctype == 2 else 4
    raw, stride, prev, rows = zlib.decompress(idat), w * bpp, bytearray(w * bpp), []
    for y in range(h):
        ft, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b, c = prev[x], prev[x - bpp] if x >= bpp else 0
            if ft == 1:
                line[x] = (line[x] + a) & 255
            elif ft == 2:
                line[x] = (line[x] + b) & 255
            elif ft == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif ft == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append([tuple(line[x:x + 3]) for x in range(0, stride, bpp)])
        prev = line
    return w, h, rows


def chromium(*args):
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--user-data-dir=" + os.path.join(TMP, "chromium")] + list(args),
                          capture_output=True, text=True, timeout=120)


def test_chromium(page, profile):
    if not CHROMIUM:
        print("skipped the Chromium checks: chromium is not installed (apt-get install chromium)")
        return
    shot = os.path.join(TMP, "flame.png")
    r = chromium("--screenshot=" + shot, "--window-size=1200,800", "file://" + page)
    check(r.returncode == 0 and os.path.exists(shot), "chromium --screenshot: %s" % r.stderr[-300:])
    img = png_pixels(shot) if os.path.exists(shot) else None
    if check(img is not None, "the screenshot is not an 8-bit RGB PNG"):
        w, h, rows = img
        bg = rows[h - 1][w - 1]
        colors = {p for row in rows for p in row}
        # The frames: saturated warm boxes in the rows under the title.
        warm = sum(1 for row in rows[56:200] for (r_, g, b) in row if r_ > 190 and b < 80)
        print("screenshot %s: %dx%d, %d colors, %d warm pixels in the frames' rows"
              % (shot, w, h, len(colors), warm))
        check((w, h) == (1200, 800) and len(colors) > 20 and warm > 50000,
              "blank-looking screenshot: %dx%d, %d colors, %d warm pixels (background %r)"
              % (w, h, len(colors), warm, bg))
    r = chromium("--dump-dom", "file://" + page + "#search=share_&zoom=share_c")
    dom = r.stdout
    m = re.search(r'<text id="matched"[^>]*>Matched: ([\d.]+)%', dom)
    top = oracle_top(profile)[1]
    want = 100 * sum(top.get(n, (0, 0))[1] for n in ("share_a", "share_b", "share_c"))
    check(m is not None and abs(float(m.group(1)) - want) < 0.5,
          "search share_: matched %s, want %.2f%%" % (m.group(1) if m else None, want))
    if parses(dom, "the DOM after the script"):
        zoomed = {f[0]: f for f in frames_of(dom) if "h" not in f[4]}
        hits = [f[0] for f in frames_of(dom) if "m" in f[4]]
        check(sorted(hits) == ["share_a", "share_b", "share_c"], "highlighted: %r" % hits)
        check("share_c" in zoomed and abs(zoomed["share_c"][3] - DRAW) < 0.01 and "share_a" not in zoomed
              and "a" in zoomed.get("busy", ("", 0, 0, 0, []))[4],
              "zoom to share_c: visible %r" % sorted(zoomed))


if __name__ == "__main__":
    require_ptrace()
    cpu = cpu_profile()
    page = os.path.join(TMP, "cpu.svg")
    with open(page, "w") as f:
        f.write(test_pprofc_profile(cpu))
    test_go_profile()
    test_filters_exact()
    test_escaping()
    test_odd_profiles()
    test_chromium(page, cpu)
    if os.environ.get("PPROFC_KEEP_FLAME"):
        print("pages, profiles and the screenshot kept in %s" % TMP)
    else:
        shutil.rmtree(TMP, ignore_errors=True)
    done()
