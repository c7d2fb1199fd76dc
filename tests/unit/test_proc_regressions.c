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

int main(void)
{
	RUN(regression_syscall_field_cut_after_0x);
	return check_summary("test_proc_bugs");
}
