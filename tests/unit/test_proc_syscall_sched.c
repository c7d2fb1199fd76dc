/* test_proc_syscall_sched.c — tests attach_parse_syscall() and
 * attach_parse_sched() (attach/proc.h) on the formats of
 * /proc/PID/task/TID/syscall ("running", "-1 sp pc", "nr a0..a5 sp pc")
 * and /proc/PID/task/TID/sched (se.exec_start, nr_switches), including
 * garbage, empty and truncated input in guarded (not NUL-terminated)
 * buffers, and this process's own files.
 */
#include <math.h>

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

static int parse_sc_str(const char *s, struct attach_syscall *sc)
{
	return parse_sc(s, strlen(s), sc);
}

static void test_syscall_running(void)
{
	struct attach_syscall sc;
	CHECK_INT_EQ(parse_sc_str("running\n", &sc), 0);
	CHECK_INT_EQ(sc.kind, ATTACH_SC_RUNNING);
	CHECK_INT_EQ(parse_sc_str("running", &sc), 0);
	CHECK_INT_EQ(sc.kind, ATTACH_SC_RUNNING);
}

static void test_syscall_blocked_not_in_syscall(void)
{
	struct attach_syscall sc;
	CHECK_INT_EQ(parse_sc_str("-1 0x7ffd9455d888 0x7facc5e3e2ad\n", &sc), 0);
	CHECK_INT_EQ(sc.kind, ATTACH_SC_NONE);
	CHECK_INT_EQ(sc.nr, -1);
	CHECK_U64_EQ(sc.sp, 0x7ffd9455d888);
	CHECK_U64_EQ(sc.pc, 0x7facc5e3e2ad);
}

static void test_syscall_futex_line(void)
{
	struct attach_syscall sc;
	CHECK_INT_EQ(parse_sc_str("202 0x55d87942a2c0 0x80 0x2 0x0 0x0 0x0 0x7f636a7fdd48 "
				  "0x7f636af4712b\n", &sc), 0);
	CHECK_INT_EQ(sc.kind, ATTACH_SC_IN);
	CHECK_INT_EQ(sc.nr, 202);
	CHECK_U64_EQ(sc.args[0], 0x55d87942a2c0);
	CHECK_U64_EQ(sc.args[1], 0x80);
	CHECK_U64_EQ(sc.args[2], 0x2);
	CHECK_U64_EQ(sc.args[3], 0);
	CHECK_U64_EQ(sc.args[4], 0);
	CHECK_U64_EQ(sc.args[5], 0);
	CHECK_U64_EQ(sc.sp, 0x7f636a7fdd48);
	CHECK_U64_EQ(sc.pc, 0x7f636af4712b);
}

static void test_syscall_real_lines(void)
{
	/* Verbatim from this machine: cat in read(), sleep in clock_nanosleep. */
	struct attach_syscall sc;
	CHECK_INT_EQ(parse_sc_str("0 0x3 0x7facc5cc4000 0x20000 0x7facc5d55b60 0xffffffff 0x0 "
				  "0x7ffe9455d888 0x7facc5e3e2ad\n", &sc), 0);
	CHECK_INT_EQ(sc.kind, ATTACH_SC_IN);
	CHECK_INT_EQ(sc.nr, 0);
	CHECK_U64_EQ(sc.args[0], 3);
	CHECK_U64_EQ(sc.args[1], 0x7facc5cc4000);
	CHECK_U64_EQ(sc.args[2], 0x20000);
	CHECK_U64_EQ(sc.args[3], 0x7facc5d55b60);
	CHECK_U64_EQ(sc.args[4], 0xffffffff);
	CHECK_U64_EQ(sc.args[5], 0);
	CHECK_U64_EQ(sc.sp, 0x7ffe9455d888);
	CHECK_U64_EQ(sc.pc, 0x7facc5e3e2ad);

	CHECK_INT_EQ(parse_sc_str("230 0x0 0x0 0x7fffb33eee00 0x7fffb33eee40 0x0 0x0 "
				  "0x7fffb33eede8 0x7fc0f2fe0503\n", &sc), 0);
	CHECK_INT_EQ(sc.nr, 230);
	CHECK_U64_EQ(sc.args[2], 0x7fffb33eee00);
	CHECK_U64_EQ(sc.pc, 0x7fc0f2fe0503);
}

static void test_syscall_full_width_values(void)
{
	struct attach_syscall sc;
	CHECK_INT_EQ(parse_sc_str("7 0xffffffffffffffff 0x1 0xabcdef 0x0 0x0 0x0 0x10 0x20\n", &sc), 0);
	CHECK_U64_EQ(sc.args[0], UINT64_C(0xffffffffffffffff));
	CHECK_U64_EQ(sc.args[2], 0xabcdef);
}

static void test_syscall_garbage(void)
{
	struct attach_syscall sc;
	CHECK_INT_EQ(parse_sc_str("garbage\n", &sc), -1);
	CHECK_INT_EQ(sc.kind, ATTACH_SC_UNKNOWN);
	CHECK_INT_EQ(parse_sc_str("run", &sc), -1);
	CHECK_INT_EQ(parse_sc_str("-", &sc), -1);
	CHECK_INT_EQ(parse_sc_str("-1", &sc), -1);
	CHECK_INT_EQ(parse_sc_str("-1 0x7ffd", &sc), -1);
	CHECK_INT_EQ(parse_sc_str("-1 zz yy", &sc), -1);
	CHECK_INT_EQ(sc.kind, ATTACH_SC_UNKNOWN);
}

static void test_syscall_empty(void)
{
	struct attach_syscall sc;
	CHECK_INT_EQ(parse_sc("", 0, &sc), -1);
	CHECK_INT_EQ(sc.kind, ATTACH_SC_UNKNOWN);
	CHECK_INT_EQ(parse_sc("\n", 1, &sc), -1);
}

static void test_syscall_truncated(void)
{
	static const char full[] = "202 0x55d87942a2c0 0x80 0x2 0x0 0x0 0x0 0x7f636a7fdd48 0x7f636af4712b";
	struct attach_syscall sc;
	/* Any cut that ends before the pc field leaves a field missing.  (A
	 * cut inside "0x" is checked in test_proc_bugs.c; a cut after the
	 * pc's first digit cannot be told from a shorter value.) */
	size_t pc_at = (size_t)(strstr(full, " 0x7f636af4712b") - full) + 1;
	for (size_t len = 0; len < pc_at; len++) {
		int rc = parse_sc(full, len, &sc);
		CHECK_MSG(rc == -1, "prefix of %zu bytes gave %d", len, rc);
		CHECK_MSG(sc.kind == ATTACH_SC_UNKNOWN, "prefix of %zu bytes gave kind %d", len, (int)sc.kind);
	}
	/* Not NUL-terminated: the value ends the buffer, the rest is unseen. */
	CHECK_INT_EQ(parse_sc(full, sizeof full - 1 - 4, &sc), 0);
	CHECK_U64_EQ(sc.pc, 0x7f636af4);
	CHECK_INT_EQ(parse_sc("-1 0x10 0x2099", strlen("-1 0x10 0x20"), &sc), 0);
	CHECK_U64_EQ(sc.pc, 0x20);
}

/* ---- sched -------------------------------------------------------------- */

/* From /proc/self/sched on this machine, values changed. */
static const char sched_text[] =
	"worker (8882, #threads: 3)\n"
	"-------------------------------------------------------------------\n"
	"se.exec_start                                :        12345.678901\n"
	"se.vruntime                                  :           204.410108\n"
	"se.sum_exec_runtime                          :             0.000000\n"
	"se.nr_migrations                             :                    0\n"
	"nr_switches                                  :                   42\n"
	"nr_voluntary_switches                        :                   40\n"
	"nr_involuntary_switches                      :                    2\n"
	"se.load.weight                               :              1048576\n"
	"se.avg.last_update_time                      :         535133241344\n"
	"policy                                       :                    0\n"
	"prio                                         :                  120\n"
	"clock-delta                                  :                  170\n"
	"mm->numa_scan_seq                            :                    0\n"
	"current_node=0, numa_group_id=0\n"
	"numa_faults node=0 task_private=0 task_shared=0 group_private=0 group_shared=0\n";

static int parse_sched(const char *s, size_t len, struct attach_sched *out)
{
	struct guarded g;
	const char *p = guard_copy(&g, s, len);
	int rc = attach_parse_sched(p, len, out);
	guard_free(&g);
	return rc;
}

static void test_sched_realistic(void)
{
	struct attach_sched s;
	CHECK_INT_EQ(parse_sched(sched_text, strlen(sched_text), &s), 0);
	CHECK_MSG(fabs(s.exec_start_ms - 12345.678901) < 1e-6, "exec_start_ms = %.9f", s.exec_start_ms);
	CHECK_U64_EQ(s.nr_switches, 42);       /* not nr_voluntary_switches */
}

static void test_sched_order_and_spacing(void)
{
	static const char t[] =
		"nr_voluntary_switches : 7\n"
		"nr_involuntary_switches:8\n"
		"nr_switches\t:\t15\n"
		"se.exec_start: 535133.241974\n"
		"se.exec_start_extra : 1.0\n"          /* not exec_start */
		"nr_switches_total : 99\n";             /* not nr_switches */
	struct attach_sched s;
	CHECK_INT_EQ(parse_sched(t, strlen(t), &s), 0);
	CHECK_MSG(fabs(s.exec_start_ms - 535133.241974) < 1e-6, "exec_start_ms = %.9f", s.exec_start_ms);
	CHECK_U64_EQ(s.nr_switches, 15);

	static const char integral[] = "se.exec_start : 77\n";
	CHECK_INT_EQ(parse_sched(integral, strlen(integral), &s), 0);
	CHECK_MSG(s.exec_start_ms == 77.0, "exec_start_ms = %.9f", s.exec_start_ms);
}

static void test_sched_missing_exec_start(void)
{
	static const char t[] =
		"worker (8882, #threads: 3)\n"
		"---------\n"
		"se.vruntime                                  :           204.410108\n"
		"nr_switches                                  :                   42\n";
	struct attach_sched s;
	CHECK_INT_EQ(parse_sched(t, strlen(t), &s), -1);
	static const char no_value[] = "se.exec_start                                :\n";
	CHECK_INT_EQ(parse_sched(no_value, strlen(no_value), &s), -1);
	CHECK_INT_EQ(parse_sched("", 0, &s), -1);
}

static void test_sched_not_nul_terminated(void)
{
	/* exec_start is the last line, cut inside its fraction. */
	static const char t[] = "nr_switches : 9\nse.exec_start : 100.2599";
	struct attach_sched s;
	CHECK_INT_EQ(parse_sched(t, strlen(t) - 2, &s), 0);
	CHECK_MSG(fabs(s.exec_start_ms - 100.25) < 1e-9, "exec_start_ms = %.9f", s.exec_start_ms);
	CHECK_U64_EQ(s.nr_switches, 9);
	/* Cut before the value. */
	CHECK_INT_EQ(parse_sched(t, strlen(t) - 8, &s), -1);
}

static void test_sched_of_this_process(void)
{
	char *buf = NULL;
	size_t len = 0;
	if (attach_read_file("/proc/self/sched", &buf, &len) != 0) {
		/* Kernels without CONFIG_SCHED_DEBUG have no sched file. */
		CHECK(access("/proc/self/sched", F_OK) != 0);
		printf("     (no /proc/self/sched on this kernel)\n");
		return;
	}
	struct attach_sched s;
	CHECK_INT_EQ(parse_sched(buf, len, &s), 0);
	CHECK(s.exec_start_ms > 0);
	free(buf);
}

int main(void)
{
	RUN(test_syscall_running);
	RUN(test_syscall_blocked_not_in_syscall);
	RUN(test_syscall_futex_line);
	RUN(test_syscall_real_lines);
	RUN(test_syscall_full_width_values);
	RUN(test_syscall_garbage);
	RUN(test_syscall_empty);
	RUN(test_syscall_truncated);
	RUN(test_sched_realistic);
	RUN(test_sched_order_and_spacing);
	RUN(test_sched_missing_exec_start);
	RUN(test_sched_not_nul_terminated);
	RUN(test_sched_of_this_process);
	return check_summary("test_proc_syscall_sched");
}
