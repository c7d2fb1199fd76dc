"""The man page pprofc(1) (docs/pprofc.1.scd, built with scdoc) against
the program: every command the program lists has a section, and each
section names exactly the long options its command's --help names; the
built page renders with man(1) without warnings.  The help text is the
program's own, so a new option without a line in the man page, or a line
for one the program no longer has, fails here."""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from fixture import PPROFC, check, done  # noqa: E402

MANPAGE = os.environ.get("PPROFC_MANPAGE", "build/pprofc.1")
SOURCE = os.environ.get("PPROFC_MANPAGE_SOURCE", "docs/pprofc.1.scd")
LONG = re.compile(r"--([a-z][a-z0-9_-]*)")


def commands():
    """The commands `pprofc --help` lists (help excepted)."""
    out = subprocess.run([PPROFC, "--help"], capture_output=True, text=True).stdout
    part = out.split("commands:", 1)[1].split("options:", 1)[0]
    return [m.group(1) for m in re.finditer(r"^  ([a-z][a-z-]+) ", part, re.M) if m.group(1) != "help"]


def help_options(cmd):
    out = subprocess.run([PPROFC, cmd, "--help"], capture_output=True, text=True).stdout
    return set(LONG.findall(out)) - {"help"}


def man_sections():
    """{command: its section's text} from the scdoc source ("## NAME")."""
    text = open(SOURCE).read()
    body = text.split("# COMMANDS", 1)[1].split("\n# ", 1)[0]
    parts = re.split(r"^## (\S+)\s*$", body, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def test_options():
    sections = man_sections()
    cmds = commands()
    check(len(cmds) >= 4, "pprofc --help lists commands %r" % cmds)
    for cmd in cmds:
        if not check(cmd in sections, "man page: no section for %s" % cmd):
            continue
        ours, theirs = set(LONG.findall(sections[cmd])) - {"help"}, help_options(cmd)
        # An option's other spelling (--sample_index) counts for it.
        check(ours == theirs, "%s: only in --help: %s; only in the man page: %s"
              % (cmd, sorted(theirs - ours), sorted(ours - theirs)))
    check(set(sections) <= set(cmds), "man page sections for no command: %s" % sorted(set(sections) - set(cmds)))
    print("man page: %d commands, options as --help lists them" % len(cmds))


def test_renders():
    r = subprocess.run(["man", "--warnings", "-l", "-Tutf8", MANPAGE], capture_output=True, text=True,
                       env=dict(os.environ, MANWIDTH="80"))
    text = re.sub(".\x08", "", r.stdout)          # grotty's overstrike bold
    check(r.returncode == 0 and "pprofc attach" in text and "EXIT STATUS" in text,
          "man -l %s: exit %d, %d bytes" % (MANPAGE, r.returncode, len(r.stdout)))
    check(r.stderr.strip() == "", "man -l %s warns: %s" % (MANPAGE, r.stderr.strip()[:500]))
    print("man page renders: %d lines" % text.count("\n"))


if __name__ == "__main__":
    test_options()
    test_renders()
    done()
