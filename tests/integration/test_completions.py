"""Shell completions (completions/): the bash completion is run for real
command lines and its answers are checked; the zsh and fish files are at
least parsed by their shells where those are installed, and the fish one is
also asked for completions.

The bash completion runs in `bash --norc --noprofile -c` under a driver
that sets COMP_WORDS, COMP_CWORD, COMP_LINE and COMP_POINT the way bash
itself does for a line typed at the prompt (words split at blanks and at
"=" and ":", see comp_words() below), calls _pprofc and prints COMPREPLY.

Exit status: 0 all checks passed, 1 some failed, 77 (skipped) without bash.
Nothing here waits for time to pass: the processes started here are ready
when they have said so on a pipe, and are ended before the script exits.
"""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from fixture import check, done  # noqa: E402

SKIP = 77
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ.get("PPROFC_SOURCE_ROOT") or os.path.dirname(os.path.dirname(HERE))
COMPLETIONS = os.path.join(ROOT, "completions")
BASH_FILE = os.path.join(COMPLETIONS, "pprofc.bash")
ZSH_FILE = os.path.join(COMPLETIONS, "_pprofc")
FISH_FILE = os.path.join(COMPLETIONS, "pprofc.fish")

COMMANDS = ["dump-threads", "attach", "run", "report", "serve", "help"]
PROFILES = ["cpu", "wall", "block", "mutex", "heap", "allocs", "trace", "threadcreate", "threads"]

# Characters of bash's default COMP_WORDBREAKS that split a word for
# COMP_WORDS (the blanks separate words; quotes quote).
BREAKS = "@><=;|&(:"


def comp_words(line, point):
    """COMP_WORDS and COMP_CWORD as bash sets them for LINE with the cursor
    at POINT: each run of word-break characters is a word of its own, the
    cursor's word is the last one whose span holds the cursor, else the
    next word after it, else a new empty word at the end."""
    pieces = []  # [text, start, end]
    quote = None
    kind = None  # "w": ordinary characters, "b": word-break characters
    i = 0
    while i < len(line):
        c = line[i]
        if quote:
            pieces[-1][0] += c
            if c == quote:
                quote = None
            elif c == "\\" and quote == '"' and i + 1 < len(line):
                i += 1
                pieces[-1][0] += line[i]
            i += 1
            pieces[-1][2] = i
            continue
        if c in " \t\n":
            kind = None
            i += 1
            continue
        this = "b" if c in BREAKS else "w"
        if kind != this:
            pieces.append(["", i, i])
            kind = this
        pieces[-1][0] += c
        if c in "'\"":
            quote = c
        elif c == "\\" and i + 1 < len(line):
            i += 1
            pieces[-1][0] += line[i]
        i += 1
        pieces[-1][2] = i
    words = [p[0] for p in pieces]
    cword = None
    for n, (_, start, end) in enumerate(pieces):
        if start <= point <= end:
            cword = n
    if cword is None:
        later = [n for n, p in enumerate(pieces) if p[1] > point]
        if later:
            cword = later[0]
        else:
            words.append("")
            cword = len(words) - 1
    return words, cword


DRIVER = r'''
set -u
source "$1" || exit 3
[[ -n $2 ]] && shopt -s $2
COMP_LINE=$3 COMP_POINT=$4 COMP_CWORD=$5
shift 5
COMP_WORDS=("$@")
COMPREPLY=()
_pprofc pprofc "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]:-}"
(( ${#COMPREPLY[@]} )) && printf '%s\n' "${COMPREPLY[@]}"
exit 0
'''


# The shell options a user may have set, for one more pass over some lines.
SHOPTS = ""
# Variables that would change what bash does here.
ENV = {k: v for k, v in os.environ.items()
       if k not in ("BASH_ENV", "ENV", "FIGNORE", "GLOBIGNORE", "CDPATH", "SHELLOPTS", "BASHOPTS")}


def complete(line, cwd=None):
    """COMPREPLY for LINE; the cursor is at "^" if LINE has one, else at the end."""
    point = line.find("^")
    if point >= 0:
        line = line[:point] + line[point + 1:]
    else:
        point = len(line)
    words, cword = comp_words(line, point)
    r = subprocess.run(["bash", "--norc", "--noprofile", "-c", DRIVER, "driver", BASH_FILE,
                        SHOPTS, line, str(point), str(cword)] + words,
                       stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       cwd=cwd, env=ENV, timeout=60)
    check(r.returncode == 0 and r.stderr == "",
          "%r: driver exit %d, stderr %r" % (line, r.returncode, r.stderr))
    return r.stdout.splitlines()


def expect(line, want, cwd=None):
    """The completions of LINE are exactly WANT (in any order)."""
    got = complete(line, cwd)
    check(sorted(got) == sorted(want), "%r: got %r, want %r" % (line, sorted(got), sorted(want)))
    return got


def expect_has(line, want, cwd=None, exclude=()):
    got = complete(line, cwd)
    for w in want:
        check(w in got, "%r: %r missing from %r" % (line, w, got[:40]))
    for w in exclude:
        check(w not in got, "%r: %r should not be offered (%r)" % (line, w, got[:40]))
    return got


class Threaded:
    """A python child with two extra threads, all blocked until its stdin
    closes; ready once it has printed its line."""

    def __init__(self):
        code = ("import sys, threading\n"
                "e = threading.Event()\n"
                "for _ in range(2):\n"
                "    threading.Thread(target=e.wait, daemon=True).start()\n"
                "print('ready', flush=True)\n"
                "sys.stdin.read()\n")
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        self.pid = self.proc.pid
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError("threaded child did not start: %r" % line)

    def tids(self):
        return sorted(os.listdir("/proc/%d/task" % self.pid))

    def close(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def test_commands():
    expect("pprofc ", COMMANDS)
    expect("pprofc dump-", ["dump-threads"])
    expect("pprofc r", ["run", "report"])
    expect("pprofc --v", ["--version"])
    expect("pprofc -", ["-h", "--help", "--version"])
    expect("pprofc help ", ["dump-threads", "attach", "run", "report", "serve"])
    expect("pprofc help attach ", [])
    expect("pprofc --version ", [])
    expect("pprofc frobnicate ", [])


def test_options():
    expect("pprofc attach --pro", ["--profile="])
    expect("pprofc attach --s", ["--seconds=", "--stack-size="])
    expect("pprofc dump-threads --st", ["--stack-size=", "--stop-all", "--stop-timeout="])
    expect("pprofc report -", ["-o", "-h", "--format=", "--sample-index=", "--tagfocus=", "--tagignore=",
                              "--output=", "--help"])
    got = complete("pprofc attach --")
    for o in ["--profile=", "--seconds=", "--hz=", "--tid=", "--output=", "--format=",
              "--stack-size=", "--engine=", "--verbose", "--help"]:
        check(o in got, "'pprofc attach --': %r missing from %r" % (o, got))
    check(all(g.startswith("--") for g in got), "'pprofc attach --': %r" % got)
    expect("pprofc run --h", ["--hz=", "--heap-rate=", "--help"])
    expect("pprofc run --ch", ["--children"])
    expect("pprofc run --se", ["--seconds=", "--serve="])
    expect("pprofc serve --l", ["--listen=", "--linger"])
    expect("pprofc run --li", ["--linger"])
    expect("pprofc serve --max-", ["--max-connections=", "--max-profiles=", "--max-seconds=",
                                   "--max-hit-rate="])
    expect("pprofc serve -", ["-v", "-h", "--listen=", "--basic-auth-file=", "--token-file=",
                              "--max-connections=", "--max-profiles=", "--max-seconds=", "--hz=",
                              "--offcpu-hz=", "--offcpu-keep=", "--linger", "--engine=", "--heap-rate=",
                              "--max-hit-rate=", "--verbose", "--help"])
    expect("pprofc serve --engine ", ["auto", "perf", "ptrace"])
    expect("pprofc attach -v", ["-v"])
    expect("pprofc attach -", ["-o", "-v", "-h", "--profile=", "--seconds=", "--hz=", "--tid=",
                               "--output=", "--format=", "--stack-size=", "--engine=", "--heap-rate=",
                               "--max-hit-rate=", "--children", "--force-stop", "--verbose", "--help"])


def test_values():
    for line in ("pprofc attach --profile ", "pprofc attach --profile=", "pprofc attach -v --profile "):
        expect(line, PROFILES)
    expect("pprofc attach --profile=w", ["wall"])
    expect("pprofc attach --prof=m", ["mutex"])  # a unique abbreviation, as getopt_long takes it
    expect("pprofc attach --format ", ["proto", "top", "folded"])
    expect("pprofc attach --format=t", ["top"])
    expect("pprofc dump-threads --format=", ["text", "json"])
    expect("pprofc dump-threads --format ", ["text", "json"])
    expect("pprofc dump-threads --debug=", ["1", "2"])
    expect("pprofc run --profile ", ["cpu", "wall", "block", "mutex", "heap", "allocs", "trace", "threadcreate"])
    expect("pprofc attach --engine ", ["auto", "perf", "ptrace"])
    expect("pprofc run --engine=p", ["perf", "ptrace"])
    expect("pprofc run --format=", ["proto", "top", "folded"])
    expect("pprofc report --format ", ["top", "folded", "svg"])
    expect("pprofc attach --seconds ", [])
    expect_has("pprofc attach --profile=cpu ^ --seconds 5", [str(os.getpid())])  # the PID


def test_pids():
    child = subprocess.Popen(["sleep", "60"])
    try:
        pid = str(child.pid)
        got = expect_has("pprofc dump-threads ", [pid, str(os.getpid())])
        check(all(g.isdigit() for g in got), "dump-threads PIDs not all numbers: %r" % got[:20])
        got = expect_has("pprofc dump-threads " + pid[:-1], [pid])
        check(all(g.startswith(pid[:-1]) for g in got), "PIDs not filtered by prefix: %r" % got[:20])
        expect_has("pprofc attach --profile cpu -o out.pb.gz ", [pid])
        expect_has("pprofc attach --prof cpu ", [pid])
        expect_has("pprofc dump-threads -- ", [pid])
        expect_has("pprofc serve --listen 127.0.0.1:7070 ", [pid])
        expect("pprofc dump-threads %s " % pid, [])  # the PID is given already
        expect("pprofc dump-threads --format json %s " % pid, [])
    finally:
        child.kill()
        child.wait()


def test_tids():
    t = Threaded()
    try:
        pid = str(t.pid)
        tids = t.tids()
        check(len(tids) == 3, "threaded child has %d threads, want 3" % len(tids))
        expect("pprofc attach %s --tid " % pid, tids)
        expect("pprofc attach %s --tid=" % pid, tids)
        expect("pprofc attach --tid ^ %s" % pid, tids)         # PID after the cursor
        expect("pprofc attach --tid=^ %s" % pid, tids)
        expect("pprofc attach --hz 10 --tid ^ -v %s" % pid, tids)
        expect("pprofc attach %s --tid=%s," % (pid, tids[0]),
               ["%s,%s" % (tids[0], x) for x in tids[1:]])
        expect("pprofc attach %s --tid %s," % (pid, tids[1]),
               ["%s,%s" % (tids[1], x) for x in tids if x != tids[1]])
        expect("pprofc attach --tid ", [])               # no PID on the line
        expect("pprofc attach --tid=", [])
        expect("pprofc attach --seconds 5 --tid ", [])   # 5 is the value of --seconds
    finally:
        t.close()


def test_files():
    d = tempfile.mkdtemp(prefix="pprofc-completion-")
    try:
        for name in ("cpu.pb.gz", "notes.txt", "my profile.pb.gz"):
            open(os.path.join(d, name), "w").close()
        os.mkdir(os.path.join(d, "sub"))
        open(os.path.join(d, "sub", "wall.pb.gz"), "w").close()
        os.mkdir(os.path.join(d, "other"))
        open(os.path.join(d, "other", "x.prof"), "w").close()

        all_files = ["cpu.pb.gz", "notes.txt", "my profile.pb.gz", "sub", "other"]
        profiles = ["cpu.pb.gz", "my profile.pb.gz", "sub", "other"]
        expect("pprofc report ", profiles, cwd=d)
        expect("pprofc report --format top ", profiles, cwd=d)
        expect("pprofc report c", ["cpu.pb.gz"], cwd=d)
        expect("pprofc report sub/", ["sub/wall.pb.gz"], cwd=d)
        expect("pprofc report other/", ["other/x.prof"], cwd=d)  # no profile: every file
        expect("pprofc report \"my", ["my profile.pb.gz"], cwd=d)
        expect("pprofc report my\\ p", ["my profile.pb.gz"], cwd=d)
        expect("pprofc report cpu.pb.gz ", [], cwd=d)
        for line in ("pprofc attach -o ", "pprofc attach --output ", "pprofc attach --output=",
                     "pprofc dump-threads -o ", "pprofc report -o ", "pprofc attach -vo ",
                     "pprofc run --out "):
            expect(line, all_files, cwd=d)
        expect("pprofc dump-threads --output=n", ["notes.txt"], cwd=d)
        expect("pprofc dump-threads -on", ["-onotes.txt"], cwd=d)
        # After "run --", the command to run, then its arguments (files,
        # where bash-completion is not loaded to complete them better).
        expect_has("pprofc run -- sle", ["sleep"], cwd=d)
        expect_has("pprofc run --seconds 5 -- ", ["sleep", "bash"], cwd=d)
        expect("pprofc run -- sleep n", ["notes.txt"], cwd=d)
        expect("pprofc run -- sleep --fo", [], cwd=d)  # not pprofc's options
        expect("pprofc run --profile cpu -- ./s", ["./sub"], cwd=d)
    finally:
        shutil.rmtree(d)


def test_shell_options():
    """Again with the glob and match options a user may have set."""
    global SHOPTS
    SHOPTS = "nullglob extglob nocaseglob dotglob globstar"
    try:
        test_commands()
        test_values()
        test_tids()
        test_files()
    finally:
        SHOPTS = ""


def test_zsh():
    with open(ZSH_FILE) as f:
        check(f.readline().strip() == "#compdef pprofc", "_pprofc does not start with '#compdef pprofc'")
    zsh = shutil.which("zsh")
    if not zsh:
        print("note: zsh is not installed: _pprofc not checked by zsh")
        return
    r = subprocess.run([zsh, "-f", "-n", ZSH_FILE], capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    check(r.returncode == 0 and r.stderr == "", "zsh -n _pprofc: %d %r" % (r.returncode, r.stderr))


def fish_complete(fish, line, cwd=None):
    r = subprocess.run([fish, "--no-config", "-c", "source $argv[1]; complete -C $argv[2]",
                        FISH_FILE, line], capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL, cwd=cwd)
    check(r.returncode == 0 and r.stderr == "", "fish %r: %d %r" % (line, r.returncode, r.stderr))
    return [l.split("\t")[0] for l in r.stdout.splitlines()]


def test_fish():
    fish = shutil.which("fish")
    if not fish:
        print("note: fish is not installed: pprofc.fish not checked")
        return
    r = subprocess.run([fish, "--no-execute", FISH_FILE], capture_output=True, text=True, timeout=60)
    check(r.returncode == 0 and r.stderr == "", "fish --no-execute pprofc.fish: %d %r" % (r.returncode, r.stderr))
    if r.returncode != 0:
        return

    def fexpect(line, want):
        got = fish_complete(fish, line)
        check(sorted(got) == sorted(want), "fish %r: got %r, want %r" % (line, sorted(got), sorted(want)))

    fexpect("pprofc ", COMMANDS)
    fexpect("pprofc dump-", ["dump-threads"])
    fexpect("pprofc attach --profile=", ["--profile=" + p for p in PROFILES])
    fexpect("pprofc attach --format=", ["--format=proto", "--format=top", "--format=folded"])
    fexpect("pprofc dump-threads --format=", ["--format=text", "--format=json"])
    fexpect("pprofc report --format=", ["--format=top", "--format=folded", "--format=svg"])
    child = subprocess.Popen(["sleep", "60"])
    try:
        got = fish_complete(fish, "pprofc dump-threads ")
        check(str(child.pid) in got, "fish: PID %d not offered: %r" % (child.pid, got[:20]))
    finally:
        child.kill()
        child.wait()
    t = Threaded()
    try:
        fexpect("pprofc attach %d --tid " % t.pid, t.tids())
        fexpect("pprofc attach %d --tid=" % t.pid, ["--tid=" + x for x in t.tids()])
        fexpect("pprofc attach --tid %s," % t.pid, [])  # no PID on the line
        fexpect("pprofc attach %d " % t.pid, [])  # the PID is given already
    finally:
        t.close()
    fexpect("pprofc help ", ["dump-threads", "attach", "run", "report", "serve"])
    fexpect("pprofc run --profile ", ["cpu", "wall", "block", "mutex", "heap", "allocs", "trace", "threadcreate"])
    fexpect("pprofc serve --engine=", ["--engine=auto", "--engine=perf", "--engine=ptrace"])
    child = subprocess.Popen(["sleep", "60"])
    try:
        got = fish_complete(fish, "pprofc serve --listen 127.0.0.1:7070 ")
        check(str(child.pid) in got, "fish serve: PID %d not offered: %r" % (child.pid, got[:20]))
    finally:
        child.kill()
        child.wait()
    d = tempfile.mkdtemp(prefix="pprofc-completion-")
    try:
        for name in ("cpu.pb.gz", "notes.txt"):
            open(os.path.join(d, name), "w").close()
        os.mkdir(os.path.join(d, "sub"))
        got = fish_complete(fish, "pprofc report ", cwd=d)
        check("cpu.pb.gz" in got and "sub/" in got, "fish 'pprofc report ': %r" % got)
        got = fish_complete(fish, "pprofc attach -o ", cwd=d)
        check(sorted(got) == ["cpu.pb.gz", "notes.txt", "sub/"], "fish 'pprofc attach -o ': %r" % got)
        got = fish_complete(fish, "pprofc run -- sle", cwd=d)
        check("sleep" in got, "fish 'pprofc run -- sle': %r" % got)
    finally:
        shutil.rmtree(d)


def main():
    if not shutil.which("bash"):
        print("skipped: bash is not installed")
        sys.exit(SKIP)
    if not os.path.exists(BASH_FILE):
        print("FAIL: %s not found (set PPROFC_SOURCE_ROOT)" % BASH_FILE, file=sys.stderr)
        sys.exit(1)
    for t in (test_commands, test_options, test_values, test_pids, test_tids, test_files,
              test_shell_options, test_zsh, test_fish):
        try:
            t()
        except Exception as e:  # reported as a failure; the other tests still run
            check(False, "%s: %s: %s" % (t.__name__, type(e).__name__, e))
    done()


if __name__ == "__main__":
    main()
