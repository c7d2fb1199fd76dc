"""Helpers the benchmark scripts share: errors, loud messages, the build
fingerprint check, and the facts each report records (git revision, CPU
model, a tool's version line).  stdlib only.
"""
import hashlib
import os
import platform
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class BenchError(Exception):
    pass


def loud(msg):
    bar = "!" * 72
    print(f"\n{bar}\n!!! {msg}\n{bar}\n", file=sys.stderr, flush=True)


def fingerprint(path):
    """(mtime_ns, size, sha256) of a file."""
    st = os.stat(path)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return st.st_mtime_ns, st.st_size, h.hexdigest()


def check_unchanged(prints, where):
    """The binaries under test must not be rebuilt during the run."""
    changed = [p for p, fp in prints.items() if fingerprint(p) != fp]
    if changed:
        raise BenchError(f"{', '.join(changed)} changed {where} (rebuilt during "
                         f"the run?); results would mix two builds: run again")


def command_output(argv):
    """First line of a command's output, or a short reason it failed."""
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unavailable ({e})"
    out = (r.stdout or r.stderr).strip().splitlines()
    return out[0].strip() if out else f"exit status {r.returncode}, no output"


def git_revision():
    try:
        rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=30)
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain"],
                               capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    if rev.returncode:
        return "unknown"
    note = " (working tree has uncommitted changes)" if dirty.stdout.strip() else ""
    return rev.stdout.strip() + note


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def write_section(results, name, section):
    """Puts section between the markers <!-- NAME:start --> and
    <!-- NAME:end --> of results (bench/RESULTS.md), replacing what they
    held, or appends them; each script owns one such section.  Written to
    a temporary file and renamed: never half a file."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    try:
        with open(results) as f:
            text = f.read()
    except FileNotFoundError:
        text = ""
    block = f"{start}\n{section}\n{end}"
    a, b = text.find(start), text.find(end)
    if a >= 0 and b > a:
        text = text[:a] + block + text[b + len(end):]
    elif a < 0 and b < 0:
        text = text.rstrip("\n") + ("\n\n" if text else "") + block + "\n"
    else:
        raise BenchError(f"{results}: the {start} / {end} markers are missing or out of "
                         f"order; fix the file by hand")
    tmp = results + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, results)
