/* test_proc_regressions.c — regression tests for bugs found (and fixed) in attach/proc.c, one case each.
 * Each case failed before its fix; everything else about the parsers is
 * tested in test_proc_*.c.
 *
 * BUG 1: attach_parse_syscall() accepts a line cut right after the "0x" of
 * a field.  proc.c only skips a "0x" prefix when MORE than two bytes remain
 * (`c.end - c.p > 2`), so a field that is exactly "0x" at the end of the
 * buffer is read as the hex number "0" (the 'x' stops it) and the parser
 * returns 0 with pc = 0, although proc.c promises "a missing or malformed
 * field makes the parser return -1".
 *
 * BUG 2: every signed field (read_ll in proc.c) negated the magnitude as a
 * signed number, `-(long long)u`, which overflows (undefined behaviour) for
 * "-9223372036854775808": found by bench/fuzz.sh (UBSan, with that number
 * from tests/fuzz/proc.dict), input tests/fuzz/corpus/proc/crash-read-ll-min
 * (a /proc/PID/syscall line).  Reached by the syscall nr, the
 * stat ppid and processor, the status Tgid and TracerPid.  This case
 * aborts under UBSan (./dev.sh test-sanitize) before the fix; the value
 * is now negated as unsigned and reads as LLONG_MIN.
 *
 * BUG 3: attach_net_find_unix() with an output size of 0 computed the
 * copy length as path_len - 1, a huge size_t, and copied that much (found
 * reading proc.c after fuzzing, which always passed a size of at least 1).
 * It now fails with -1 and writes nothing.
 *
 * BUG 4: attach_possible_cpus() read /sys/devices/system/cpu/possible's
 * "0-1" as the numbers 0 and -1 (strtoul takes the '-' as a sign), so it
 * said 1 CPU on a 2-CPU machine: dump-threads then had no scheduler clock
 * for CPU 1 and showed threads that last ran there waiting 26 s too long
 * (the CPUs' clocks differ).  Found by test_dump_threads.py under load.
 */
#include "attach/proc.h"
#include "check.h"

static int parse_sc(const char *s, size_t len, struct attach_syscall *sc)
{
	struct guarded g;
	const char *p = guard_copy(&g, s, len);
	int rc = attach_parse_syscall(p, len, sc);
	guard_free(&g);
	return rc;
}

static void regression_syscall_field_cut_after_0x(void)
{
	struct attach_syscall sc;
	static const char in_sc[] = "202 0x55d87942a2c0 0x80 0x2 0x0 0x0 0x0 0x7f636a7fdd48 0x";
	int rc = parse_sc(in_sc, strlen(in_sc), &sc);
	CHECK_MSG(rc == -1, "regression (proc.c attach_parse_syscall): \"...0x7f636a7fdd48 0x\" "
		  "returned %d, kind %d, pc 0x%llx; expected -1 (the pc has no digits)",
		  rc, (int)sc.kind, (unsigned long long)sc.pc);

	static const char none[] = "-1 0x7ffd9455d888 0x";
	rc = parse_sc(none, strlen(none), &sc);
	CHECK_MSG(rc == -1, "regression (proc.c attach_parse_syscall): \"-1 0x7ffd9455d888 0x\" "
		  "returned %d, kind %d, pc 0x%llx; expected -1", rc, (int)sc.kind,
		  (unsigned long long)sc.pc);
}

static void regression_signed_field_most_negative(void)
{
	struct attach_syscall sc;
	static const char in_sc[] = "-9223372036854775808 0x7ffd9455d888 0x7f636a80f12b";
	int rc = parse_sc(in_sc, strlen(in_sc), &sc);
	CHECK_MSG(rc == 0 && sc.kind == ATTACH_SC_NONE,
		  "regression (proc.c read_ll): \"-9223372036854775808 sp pc\" returned %d, kind %d; "
		  "expected 0, ATTACH_SC_NONE", rc, (int)sc.kind);
	CHECK_U64_EQ(sc.sp, 0x7ffd9455d888);
	CHECK_U64_EQ(sc.pc, 0x7f636a80f12b);

	static const char in_stat[] = "7 (a) S -9223372036854775808 7 7 0 -1 4194560 0 0 0 0 1 2";
	struct guarded g;
	struct attach_stat st;
	const char *p = guard_copy(&g, in_stat, strlen(in_stat));
	rc = attach_parse_stat(p, strlen(in_stat), &st);
	guard_free(&g);
	CHECK_MSG(rc == 0, "regression (proc.c read_ll): a stat line with ppid "
		  "-9223372036854775808 returned %d, expected 0", rc);
	CHECK_INT_EQ(st.utime, 1);
	CHECK_INT_EQ(st.stime, 2);
}

static void regression_unix_path_size_zero(void)
{
	static const char table[] =
		"Num       RefCount Protocol Flags    Type St Inode Path\n"
		"0000000000000000: 00000002 00000000 00010000 0001 01 4242 /run/some.sock\n";
	char out[4] = { 'x', 'x', 'x', 'x' };
	int rc = attach_net_find_unix(table, strlen(table), 4242, out, 0);
	CHECK_MSG(rc == -1, "regression (proc.c attach_net_find_unix): size 0 returned %d", rc);
	CHECK_MSG(out[0] == 'x', "regression (proc.c attach_net_find_unix): size 0 wrote the buffer");
}

static void regression_cpu_list_ranges(void)
{
	CHECK_MSG(attach_parse_cpu_list("0-1\n") == 2, "\"0-1\" gave %zu CPUs, want 2",
		  attach_parse_cpu_list("0-1\n"));
	CHECK_MSG(attach_parse_cpu_list("0-3,8-11\n") == 12, "\"0-3,8-11\" gave %zu, want 12",
		  attach_parse_cpu_list("0-3,8-11\n"));
	CHECK_MSG(attach_parse_cpu_list("0\n") == 1, "\"0\" gave %zu, want 1", attach_parse_cpu_list("0\n"));
	CHECK_MSG(attach_parse_cpu_list("") == 0, "\"\" gave %zu, want 0", attach_parse_cpu_list(""));
}

int main(void)
{
	RUN(regression_syscall_field_cut_after_0x);
	RUN(regression_signed_field_most_negative);
	RUN(regression_unix_path_size_zero);
	RUN(regression_cpu_list_ranges);
	return check_summary("test_proc_bugs");
}
