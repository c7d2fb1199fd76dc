"""The allocation sampler (preload/, libpprofc_heap.so) in a real program,
read through its ring (preload/heapring.h) by a reader written here from
the header alone, against the truth the heap_alloc fixture prints.

- rate 1: every allocation of every path recorded with its size, a FREE
  for every freed block and none for a live one, nothing from the forked
  child, registers that point into the sampler and onto the thread's
  stack, a stack copy holding the return addresses into the sampler and
  into the program;
- the default rate (512 KiB): per path, the number of samples lies within
  the binomial draw's bounds at a 1e-9 tail (each block of n bytes is
  sampled with probability 1 - exp(-n/rate)), so the test does not flake
  but fails a sampler that records too much, too little or by count;
- at exit, the program waits for the reader: one that reads only once the
  program has called exit() still gets every record at rate 1 while the
  program lives (none left for after it), and one whose heartbeat went
  stale does not hold the exit (the program stops recording and ends);
- rate 1 waits for room instead of dropping: a 1 MiB ring read slowly
  still gets every record, dropped_full 0;
- the program's output identical with and without the library; a stale
  heartbeat, `stopped`, a reader that never reads (at rate 2: dropped and
  counted), a ring not meant for the process: the program runs on to
  completion, unchanged;
- our entry removed from LD_PRELOAD (others kept) and the descriptor's
  variable unset, for the processes the program starts.

Nothing depends on timing: the reader polls, and the checks are on counts.
Skipped (77) without the library or the fixture, or off x86_64."""
import math
import mmap
import os
import re
import shutil
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from fixture import check, done, fixture_path, require_heap_sampler  # noqa: E402

LIB = os.environ.get("PPROFC_HEAP_LIB")
FIXTURE = fixture_path("heap_alloc")
ENV_FD = "PPROFC_HEAP_FD"

# heapring.h, by hand: the reader does not include the writer's code.
MAGIC = 0x676e697270616568
VERSION = 1
HEADER_SIZE = 4096
OFF_OWNER, OFF_HEAD, OFF_TAIL, OFF_ALIVE = 32, 64, 128, 192
OFF_DROPPED_FULL, OFF_DROPPED_STACK, OFF_UNTRACKED, OFF_STOPPED = 256, 264, 272, 280
PAD, ALLOC, FREE = 1, 2, 3
ALLOC_REC = struct.Struct("<IIQQQiI17Q")
FREE_REC = struct.Struct("<IIQQ")
SP, PC = 7, 16
DEFAULT_RATE = 524288
TAIL_P = 1e-9


def now_ns():
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


class Ring:
    """pprofc's side of the ring: a memfd with the header written, the
    heartbeat kept fresh while the program runs, records consumed (their
    bytes zeroed, then tail moved) into allocs and frees."""

    def __init__(self, rate, data_size=1 << 26, stack_size=4096, alive=True,
                 stopped=0, version=VERSION):
        self.data_size = data_size
        self.alive = alive
        self.fd = os.memfd_create("heapring", 0)
        os.ftruncate(self.fd, HEADER_SIZE + data_size)
        self.mm = mmap.mmap(self.fd, HEADER_SIZE + data_size)
        # Shared words are read and written whole, as the writers do:
        # struct.pack_into zeroes its target before it writes, and both
        # struct calls go byte by byte; a memoryview item is one access.
        self.u64 = memoryview(self.mm).cast("Q")
        self.u32 = memoryview(self.mm).cast("I")
        struct.pack_into("<QIIQQiI", self.mm, 0, MAGIC, version, stack_size, data_size, rate, 0, 0)
        self.put(OFF_ALIVE, now_ns() if alive else 1)
        self.put(OFF_STOPPED, stopped)
        self.events = []        # (ALLOC or FREE, addr, size), in ring order
        self.allocs = []        # (addr, size, tid, regs, stack)
        self.pads = 0
        self.after_exit = 0     # records read only after the program ended

    def get(self, off):
        return self.u64[off // 8]

    def put(self, off, value):
        self.u64[off // 8] = value

    def set_owner(self):
        """In the child, before exec: the process that records is the one
        the program runs in (preexec_fn; this script has no threads)."""
        os.pwrite(self.fd, struct.pack("<i", os.getpid()), OFF_OWNER)

    def consume(self, most=None):
        """Reads the published records (at most `most`); returns how
        many."""
        n = 0
        while most is None or n < most:
            tail = self.get(OFF_TAIL)
            at = HEADER_SIZE + tail % self.data_size
            size = self.u32[at // 4]
            if size == 0:
                return n
            n += 1
            kind = self.u32[at // 4 + 1]
            if kind == ALLOC:
                f = ALLOC_REC.unpack_from(self.mm, at)
                stack = bytes(self.mm[at + ALLOC_REC.size:at + ALLOC_REC.size + f[6]])
                self.allocs.append((f[2], f[3], f[5], f[7:], stack))
                self.events.append((ALLOC, f[2], f[3]))
            elif kind == FREE:
                self.events.append((FREE, FREE_REC.unpack_from(self.mm, at)[2], 0))
            elif kind == PAD:
                self.pads += 1
            else:
                check(False, "record of unknown type %d, size %d" % (kind, size))
            # A later record may start anywhere in these bytes: all zero.
            self.mm[at:at + size] = bytes(size)
            self.put(OFF_TAIL, tail + size)
        return n

    def run(self, argv, env, read=True, stdin=subprocess.DEVNULL, while_running=None,
            lag=False, most=None):
        """Runs argv with the ring; returns (exit status, stdout).  read
        may be a predicate of the ring: read at this poll or not.  With
        lag, nothing is read until while_running has returned True; most:
        records read per poll.  after_exit: the records only read once the
        program had ended."""
        env = dict(env, **{ENV_FD: str(self.fd)})
        with open(os.devnull, "wb") as err, _Output() as out:
            proc = subprocess.Popen(argv, env=env, stdin=stdin, stdout=out.f, stderr=err,
                                    pass_fds=(self.fd,), preexec_fn=self.set_owner)
            while proc.poll() is None:
                if self.alive:
                    self.put(OFF_ALIVE, now_ns())
                n = 0
                if read and not (lag and while_running) and (read is True or read(self)):
                    n = self.consume(most)
                if while_running and while_running(proc, out.text()):
                    while_running = None
                if not n:
                    time.sleep(0.002)
            self.after_exit = self.consume() if read else 0
            return proc.returncode, out.text()


class _Output:
    """The program's stdout in a file (a pipe nobody reads could fill)."""

    def __enter__(self):
        self.f = open(os.path.join(WORK, "stdout.%d" % os.getpid()), "w+b")
        return self

    def text(self):
        self.f.flush()
        with open(self.f.name, "rb") as f:
            return f.read().decode()

    def __exit__(self, *exc):
        self.f.close()
        os.unlink(self.f.name)


def plain_run(argv):
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True)
    return r.returncode, r.stdout.decode()


def truth(stdout):
    """[(path, size, allocs, frees)] from the fixture's own lines (a path
    may have several sizes: realloc_chain)."""
    out = []
    for line in stdout.splitlines():
        f = line.split()
        if len(f) == 4:
            out.append((f[0], int(f[1]), int(f[2]), int(f[3])))
    return out


def per_size(ring):
    """{size: [allocs, frees]}, a free matched to the recorded allocation
    by address; and how many FREE records name no live sampled block."""
    counts, live, unknown = {}, {}, 0
    for kind, addr, size in ring.events:
        if kind == ALLOC:
            live[addr] = size
            counts.setdefault(size, [0, 0])[0] += 1
        elif addr in live:
            counts.setdefault(live.pop(addr), [0, 0])[1] += 1
        else:
            unknown += 1
    return counts, unknown


def preload_env(extra=None):
    env = {k: v for k, v in os.environ.items() if k not in (ENV_FD, "LD_PRELOAD")}
    env["LD_PRELOAD"] = LIB if extra is None else extra
    return env


def maps_of(pid):
    """[(start, end, perms, path, file offset)] of a live process."""
    out = []
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            parts = line.split(None, 5)
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            out.append((lo, hi, parts[1], parts[5].strip() if len(parts) > 5 else "",
                        int(parts[2], 16)))
    return out


def within(maps, addr, test):
    return any(lo <= addr < hi and test(perms, path) for lo, hi, perms, path, _ in maps)


def cfi_table(lib):
    """The library's CFI as binutils' readelf interprets it (an oracle
    nobody here wrote): [(lo, hi, [(pc, {column: rule})])], or None
    without readelf."""
    readelf = shutil.which("readelf")
    if not readelf:
        return None
    text = subprocess.run([readelf, "--debug-dump=frames-interp", lib],
                          capture_output=True, text=True).stdout
    fdes = []
    for block in text.split("\n\n"):
        m = re.search(r"FDE cie=\w+ pc=([0-9a-f]+)\.\.([0-9a-f]+)", block)
        lines = block.splitlines()
        head = [i for i, line in enumerate(lines) if line.split()[:1] == ["LOC"]]
        if not m or not head:
            continue
        cols = lines[head[0]].split()[1:]
        rows = [(int(f[0], 16), dict(zip(cols, f[1:])))
                for f in (line.split() for line in lines[head[0] + 1:]) if f]
        fdes.append((int(m.group(1), 16), int(m.group(2), 16), rows))
    return fdes


def cfi_step(fdes, pc, regs, load):
    """One frame up from file address pc with {rsp, rbp}: the return
    address and the caller's {rsp, rbp}, or None where the CFI or the
    stack copy does not say."""
    rows = next((r for lo, hi, r in fdes if lo <= pc < hi), None)
    row = [rule for at, rule in rows or [] if at <= pc][-1:]
    m = re.fullmatch(r"(rsp|rbp)\+(\d+)", row[0].get("CFA", "")) if row else None
    if not m:
        return None
    cfa = regs[m.group(1)] + int(m.group(2))
    ra = load(cfa - 8)
    rbp = re.fullmatch(r"c-(\d+)", row[0].get("rbp", ""))
    caller = {"rsp": cfa, "rbp": load(cfa - int(rbp.group(1))) if rbp else regs["rbp"]}
    return None if ra is None or caller["rbp"] is None else (ra, caller)


def unwind_into_program(fdes, maps, regs, stack, is_exe):
    """Whether the library's CFI, from the recorded pc, sp and bp, walks
    the stack copy through the sampler's frames to a return address in
    the program: the registers are consistent with the CFI at the pc."""
    sp = regs[SP]

    def load(a):
        return struct.unpack_from("<Q", stack, a - sp)[0] if sp <= a <= sp + len(stack) - 8 else None
    pc, frame = regs[PC], {"rsp": sp, "rbp": regs[6]}
    for _ in range(8):
        lib = [(lo, off) for lo, hi, perms, path, off in maps
               if lo <= pc < hi and path.endswith("libpprofc_heap.so")]
        if not lib:
            return within(maps, pc, is_exe)
        step = cfi_step(fdes, pc - (lib[0][0] - lib[0][1]) - (pc != regs[PC]), frame, load)
        if not step:
            return False
        pc, frame = step
    return False


def check_registers(ring, maps, pid, sizes, cxx_sizes=()):
    """Each record of the fixture's paths: pc in the sampler's code, sp on
    the thread's stack (the main thread's [stack]; a writable anonymous
    mapping for the others), and in the stack copy a return address into
    the sampler (the interposed function's frame) and one into the
    program (its caller's); with readelf, the library's CFI unwinds the
    record to the program (to libstdc++ for cxx_sizes: operator new calls
    malloc)."""
    fdes = cfi_table(LIB)
    lib_text = lambda perms, path: "x" in perms and path.endswith("libpprofc_heap.so")  # noqa: E731
    exe_text = lambda perms, path: "x" in perms and path == os.path.realpath(FIXTURE)  # noqa: E731
    cxx_text = lambda perms, path: "x" in perms and "libstdc++" in path  # noqa: E731
    bad = []
    for addr, size, tid, regs, stack in ring.allocs:
        if size not in sizes:
            continue
        sp, pc = regs[SP], regs[PC]
        on_stack = (lambda p, path: path == "[stack]") if tid == pid else \
            (lambda p, path: "rw" in p and path == "")
        words = [struct.unpack_from("<Q", stack, i)[0] for i in range(0, len(stack) - 7, 8)]
        why = []
        if not within(maps, pc, lib_text):
            why.append("pc %#x not in the sampler's code" % pc)
        if not within(maps, sp, on_stack) or sp % 8:
            why.append("sp %#x not on thread %d's stack" % (sp, tid))
        if not stack:
            why.append("no stack copy")
        elif not any(within(maps, w, lib_text) for w in words[:64]):
            why.append("no return address into the sampler in the stack copy")
        elif not any(within(maps, w, exe_text) for w in words):
            why.append("no return address into the program in the stack copy")
        elif fdes is not None and not unwind_into_program(
                fdes, maps, regs, stack, cxx_text if size in cxx_sizes else exe_text):
            why.append("the CFI at pc %#x does not unwind it to the program" % pc)
        if why:
            bad.append("size %d tid %d: %s" % (size, tid, ", ".join(why)))
    check(not bad, "registers and stack of %d records: %s" % (len(bad), "; ".join(bad[:5])))
    if fdes is None:
        print("readelf not found: the records were not unwound with the library's CFI")


def counters(ring):
    return {name: ring.get(off) for name, off in (
        ("dropped_full", OFF_DROPPED_FULL), ("dropped_stack", OFF_DROPPED_STACK),
        ("untracked_frees", OFF_UNTRACKED), ("stopped", OFF_STOPPED))}


def test_every_allocation():
    """Rate 1: the exact truth, path by path."""
    argv = [FIXTURE, "--hold", "2", "2"]
    status0, expected = plain_run(argv)
    # 4096 bytes: enough to reach the top of the fixture's thread stacks,
    # so that the memcpy copies (preload/stack_proof.c) are checked too.
    ring = Ring(rate=1, stack_size=4096)
    seen = {}

    def read_maps(proc, text):
        if not text.endswith("done\n"):
            return False
        seen["maps"] = maps_of(proc.pid)
        seen["pid"] = proc.pid
        proc.stdin.close()
        return True

    status, out = ring.run(argv, preload_env(), stdin=subprocess.PIPE, while_running=read_maps)
    paths = check_exact(ring, "rate 1", status0, expected, status, out)
    check("maps" in seen, "rate 1: the fixture never printed done")
    if "maps" in seen:
        sizes = {size for path, size, _, _ in paths if path != "fork_child"}
        check_registers(ring, seen["maps"], seen["pid"], sizes,
                        {size for path, size, _, _ in paths if path == "cxx_new"})
    print("rate 1: %d allocation and %d free records, %d pads, all paths exact"
          % (len(ring.allocs), len(ring.events) - len(ring.allocs), ring.pads))


def check_exact(ring, what, status0, expected, status, out):
    """At rate 1: the output unchanged, every path recorded exactly as the
    fixture's truth says, no counter moved.  Returns the truth."""
    check(status == status0 == 0 and out == expected,
          "%s: the output changed (exit %s/%s):\n%s---\n%s" % (what, status0, status, expected, out))
    paths = truth(expected)
    counts, unknown = per_size(ring)
    for path, size, allocs, frees in paths:
        got = counts.get(size, [0, 0])
        if path == "fork_child":
            check(got == [0, 0], "%s: the forked child recorded %s blocks of %d" % (what, got, size))
        elif path == "storm_handler":
            # Not sampled when the signal lands inside the sampler, which
            # may be every time: at rate 1 a writer waits inside it for
            # room in the ring, and a signal arrives as that wait ends
            # (CI saw 0 of 200 recorded).  Never more, and paired.
            check(got[0] <= allocs and got[1] == got[0],
                  "%s: %s: %s recorded, at most %d allocs and as many frees" % (what, path, got, allocs))
            print("%s: storm handler: %d of its %d allocations recorded (the others landed inside "
                  "the sampler)" % (what, got[0], allocs))
        else:
            check(got == [allocs, frees], "%s: %s (%d bytes): recorded %d allocs, %d frees; "
                  "truth %d, %d" % (what, path, size, got[0], got[1], allocs, frees))
    loop = counts.get(555, [0, 0])
    check(loop[0] > 0 and loop[0] == loop[1],
          "%s: the storm target's blocks: %d recorded, %d freed" % ((what,) + tuple(loop)))
    check(unknown == 0, "%s: %d FREE records of blocks never recorded" % (what, unknown))
    c = counters(ring)
    check(c == {"dropped_full": 0, "dropped_stack": 0, "untracked_frees": 0, "stopped": 0},
          "%s: counters %s" % (what, c))
    return paths


def release_at_done(proc, text, stale=None):
    """while_running: once the fixture (--hold) printed done, let it exit
    (EOF on stdin); with stale, the reader's heartbeat goes stale first."""
    if not text.endswith("done\n"):
        return False
    if stale:
        stale.alive = False
        stale.put(OFF_ALIVE, 1)
    proc.stdin.close()
    return True


def test_drain_at_exit():
    """The reader reads only once the fixture has called exit(): the
    sampler's destructor holds the exit until every record is read, so
    none is left for after the process ended (pprofc could no longer
    unwind it) and all of them match the truth.  With the heartbeat stale
    at exit, the fixture does not wait for the reader: it stops
    recording (stopped set by the writer) and ends, its records unread."""
    argv = [FIXTURE, "--hold", "1", "1"]
    status0, expected = plain_run(argv)
    ring = Ring(rate=1, stack_size=1024)
    status, out = ring.run(argv, preload_env(), stdin=subprocess.PIPE, while_running=release_at_done,
                           lag=True, most=256)
    check_exact(ring, "drain at exit", status0, expected, status, out)
    check(ring.after_exit == 0, "drain at exit: %d records left for after the exit" % ring.after_exit)
    drained = len(ring.events)
    ring = Ring(rate=1, stack_size=1024)
    status, out = ring.run(argv, preload_env(), stdin=subprocess.PIPE, read=False,
                           while_running=lambda proc, text: release_at_done(proc, text, ring))
    check(status == status0 == 0 and out == expected, "stale at exit: the output changed")
    check(ring.get(OFF_STOPPED) == 1 and ring.get(OFF_HEAD) > ring.get(OFF_TAIL) == 0,
          "stale at exit: stopped %d, head %d, tail %d"
          % (ring.get(OFF_STOPPED), ring.get(OFF_HEAD), ring.get(OFF_TAIL)))
    print("drain at exit: %d records read after exit() while the fixture lived, none after; "
          "a stale reader does not hold the exit" % drained)


def test_rate1_waits():
    """Rate 1 in a 1 MiB ring with a reader that reads 16 records at a
    time and only once the ring is nearly full (or the fixture is done):
    the writers wait for room, nothing is dropped, every path is exact."""
    argv = [FIXTURE, "1", "1"]
    status0, expected = plain_run(argv)
    ring = Ring(rate=1, data_size=1 << 20, stack_size=4096)
    state = {"done": False, "full": 0}

    def nearly_full(r):
        full = r.get(OFF_HEAD) - r.get(OFF_TAIL) > r.data_size - 8192
        state["full"] += full
        return full or state["done"]

    def at_done(proc, text):
        state["done"] = text.endswith("done\n")
        return state["done"]

    status, out = ring.run(argv, preload_env(), read=nearly_full, most=16, while_running=at_done)
    check_exact(ring, "rate 1, small ring, slow reader", status0, expected, status, out)
    check(state["full"] > 0, "rate 1, small ring: the ring never filled")
    print("rate 1 waits: %d records through a 1 MiB ring read when nearly full (%d times), "
          "none dropped" % (len(ring.events), state["full"]))


def log_binom_pmf(n, p, k):
    return (math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
            + k * math.log(p) + (n - k) * math.log1p(-p))


def binomial_bounds(n, p, tail=TAIL_P):
    """The smallest lo and largest hi with P(X < lo) <= tail and
    P(X > hi) <= tail, X ~ Binomial(n, p)."""
    if p >= 1:
        return n, n
    pmf = [math.exp(log_binom_pmf(n, p, k)) for k in range(n + 1)]
    lo, acc = 0, 0.0
    while acc + pmf[lo] <= tail:
        acc += pmf[lo]
        lo += 1
    hi, acc = n, 0.0
    while acc + pmf[hi] <= tail:
        acc += pmf[hi]
        hi -= 1
    return lo, hi


def test_default_rate():
    """Samples per path consistent with Go's sampling at 512 KiB."""
    argv = [FIXTURE]
    status0, expected = plain_run(argv)
    ring = Ring(rate=DEFAULT_RATE)
    status, out = ring.run(argv, preload_env())
    check(status == status0 == 0 and out == expected, "default rate: the output changed")
    counts, unknown = per_size(ring)
    for path, size, allocs, frees in paths_for_rate(expected):
        p = -math.expm1(-size / DEFAULT_RATE)
        lo, hi = binomial_bounds(allocs, p)
        got = counts.get(size, [0, 0])
        estimate = got[0] * size / p
        check(lo <= got[0] <= hi, "default rate: %s (%d x %d bytes): %d samples, expected %d..%d"
              % (path, allocs, size, got[0], lo, hi))
        check(got[1] == (got[0] if frees else 0),
              "default rate: %s: %d samples, %d freed" % (path, got[0], got[1]))
        print("default rate: %-14s %8d x %8d bytes: %5d samples (%d..%d), %.1f%% of the bytes estimated"
              % (path, allocs, size, got[0], lo, hi, 100.0 * estimate / (allocs * size)))
    check(counts.get(3331) is None, "default rate: the forked child recorded blocks")
    check(unknown == 0, "default rate: %d FREE records of blocks never recorded" % unknown)
    c = counters(ring)
    check(c["dropped_full"] == c["dropped_stack"] == c["untracked_frees"] == c["stopped"] == 0,
          "default rate: counters %s" % c)


MARK_RATE = 65536               # preload.h: PRELOAD_MARK_MIN_RATE, the lowest rate that moves
MARK_LARGE = 65536              # blocks this size or larger are not moved
MARK_MASK = 4095 & ~16          # a marked address: offset 0 or 16 in its 4 KiB page


def test_marked_blocks():
    """At a rate where sampled blocks are moved to marked addresses (the
    cheap free() of preload.h): every sampled block below 64 KiB sits at
    offset 0 or 16 of a page, the program sees the same bytes (the
    fixture checks that calloc'd blocks are zero and that realloc keeps
    the bytes, and exits 3 otherwise), the free of every sampled block of
    a freeing path is recorded, and no FREE record names a block never
    recorded.  At rate 1 nothing is moved (test_every_allocation: exact)."""
    argv = [FIXTURE]
    status0, expected = plain_run(argv)
    ring = Ring(rate=MARK_RATE)
    status, out = ring.run(argv, preload_env())
    check(status == status0 == 0 and out == expected,
          "marked blocks: status %s (alone %s) or the output changed" % (status, status0))
    small = [(addr, size) for addr, size, _, _, _ in ring.allocs if size < MARK_LARGE]
    unmarked = [(hex(a), n) for a, n in small if a & MARK_MASK]
    check(len(small) >= 100, "marked blocks: only %d small samples" % len(small))
    check(not unmarked, "marked blocks: %d of %d sampled blocks not at a marked address: %s"
          % (len(unmarked), len(small), unmarked[:5]))
    counts, unknown = per_size(ring)
    moved_paths = set()
    for path, size, allocs, frees in paths_for_rate(expected):
        got = counts.get(size, [0, 0])
        if got[0] and size < MARK_LARGE:
            moved_paths.add(path)
        check(got[1] == (got[0] if frees else 0),
              "marked blocks: %s: %d samples, %d freed" % (path, got[0], got[1]))
    check(unknown == 0, "marked blocks: %d FREE records of blocks never recorded" % unknown)
    check({"calloc", "realloc_chain", "churn"} <= moved_paths,
          "marked blocks: calloc, realloc_chain and churn were not all sampled: %s" % sorted(moved_paths))
    c = counters(ring)
    check(c["dropped_full"] == c["dropped_stack"] == c["untracked_frees"] == c["stopped"] == 0,
          "marked blocks: counters %s" % c)
    print("marked blocks: %d sampled below 64 KiB, all at marked addresses; paths %s"
          % (len(small), ", ".join(sorted(moved_paths))))


def paths_for_rate(stdout):
    """The paths whose draws are independent: not the forked child (it
    records nothing) nor the storm (a signal inside the sampler is not
    sampled)."""
    return [t for t in truth(stdout) if t[0] not in ("fork_child", "storm_handler")]


def test_untouched():
    """The program runs on to completion and says the same, whatever the
    reader does; with no reader it records nothing and stops."""
    argv = [FIXTURE, "2", "2"]
    status0, expected = plain_run(argv)
    cases = [
        ("stale heartbeat", Ring(rate=1, alive=False), True),
        ("stopped by the reader", Ring(rate=1, stopped=1), True),
        ("a ring of another version", Ring(rate=1, version=VERSION + 1), False),
    ]
    for what, ring, stops in cases:
        status, out = ring.run(argv, preload_env())
        check(status == 0 and out == expected, "%s: the output changed" % what)
        check(not ring.events and ring.get(OFF_HEAD) == 0, "%s: %d records" % (what, len(ring.events)))
        check(ring.get(OFF_STOPPED) == (1 if stops else 0),
              "%s: stopped is %d" % (what, ring.get(OFF_STOPPED)))
    # Rate 2, not 1: at rate 1 the program would wait for the reader.
    ring = Ring(rate=2, data_size=1 << 20)
    status, out = ring.run(argv, preload_env(), read=False)
    c = counters(ring)
    check(status == 0 and out == expected, "a reader that never reads: the output changed")
    check(c["dropped_full"] > 0 or c["stopped"] == 1, "a reader that never reads: counters %s" % c)
    for what, env in (("no ring", preload_env()),
                      ("a descriptor that is no ring", dict(preload_env(), **{ENV_FD: "0"}))):
        r = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True)
        check(r.returncode == 0 and r.stdout.decode() == expected, "%s: the output changed" % what)
    print("untouched: stale heartbeat, stopped, wrong version, full ring, no ring")


def test_children_not_profiled():
    """The processes the program starts see neither our LD_PRELOAD entry
    nor the descriptor's variable; other entries stay."""
    other = "/lib/x86_64-linux-gnu/libm.so.6"
    script = 'echo "[$LD_PRELOAD] [${%s-unset}]"' % ENV_FD
    cases = [(LIB, "[] [unset]")]
    if os.path.exists(other):
        cases.append(("%s:%s" % (other, LIB), "[%s] [unset]" % other))
    for preload, want in cases:
        ring = Ring(rate=1)
        status, out = ring.run(["sh", "-c", script], preload_env(preload))
        check(status == 0 and out.strip() == want,
              "LD_PRELOAD=%s: the shell saw %r, expected %r" % (preload, out.strip(), want))
        check(ring.get(OFF_HEAD) > 0, "LD_PRELOAD=%s: the shell recorded nothing" % preload)
    print("children: LD_PRELOAD and %s cleaned" % ENV_FD)


def main():
    global WORK
    require_heap_sampler()
    WORK = os.environ.get("TMPDIR", "/tmp")
    test_every_allocation()
    test_drain_at_exit()
    test_rate1_waits()
    test_default_rate()
    test_marked_blocks()
    test_untouched()
    test_children_not_profiled()
    done()


WORK = None

if __name__ == "__main__":
    main()
