/* test_proc_stat.c — tests attach_parse_stat() and attach_parse_status()
 * (attach/proc.h): the comm field between the first '(' and the LAST ')'
 * holding spaces, parentheses and newlines, truncated lines, empty buffers,
 * buffers that are not NUL-terminated (every input is handed over in a
 * guarded buffer, so a read past the given length faults), missing status
 * keys, and this process's own /proc files.
 */
#include <sys/prctl.h>

#include "attach/proc.h"
#include "check.h"

/* Fields 4..15 of a realistic stat line (from /proc/self/stat on Debian 12,
 * ppid/flags/utime/stime changed to recognisable values): ppid 4321,
 * flags 0x400040, utime 17, stime 29. */
#define STAT_TAIL " S 4321 4321 6842 0 -1 4194368 100 0 3 0 17 29 0 0 20 0 1 0 " \
	"53501 3133440 410 18446744073709551615 94027723096064 94027723115945 " \
	"140727232803264 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 94027723131952 " \
	"94027723133568 94028772536320 140727232805514 140727232805534 " \
	"140727232805534 140727232806891 0\n"

/* Parses the first len bytes of s from a guarded copy. */
static int parse_stat(const char *s, size_t len, struct attach_stat *st)
{
	struct guarded g;
	const char *p = guard_copy(&g, s, len);
	int rc = attach_parse_stat(p, len, st);
	guard_free(&g);
	return rc;
}

static int parse_stat_str(const char *s, struct attach_stat *st)
{
	return parse_stat(s, strlen(s), st);
}

static void check_tail_fields(const struct attach_stat *st)
{
	CHECK_INT_EQ(st->state, 'S');
	CHECK_INT_EQ(st->ppid, 4321);
	CHECK_U64_EQ(st->flags, 0x400040);
	CHECK_U64_EQ(st->utime, 17);
	CHECK_U64_EQ(st->stime, 29);
}

static void test_stat_plain(void)
{
	struct attach_stat st;
	CHECK_INT_EQ(parse_stat_str("8874 (cat)" STAT_TAIL, &st), 0);
	CHECK_STR_EQ(st.comm, "cat");
	check_tail_fields(&st);
	CHECK((st.flags & ATTACH_PF_KTHREAD) == 0);
}

static void test_stat_real_running_line(void)
{
	/* Verbatim from this machine (cat reading its own stat). */
	static const char line[] =
		"8874 (cat) R 8872 8872 6842 0 -1 4194304 100 0 0 0 0 0 0 0 20 0 1 0 53501 "
		"3133440 410 18446744073709551615 94027723096064 94027723115945 140727232803264 "
		"0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 94027723131952 94027723133568 94028772536320 "
		"140727232805514 140727232805534 140727232805534 140727232806891 0\n";
	struct attach_stat st;
	CHECK_INT_EQ(parse_stat_str(line, &st), 0);
	CHECK_STR_EQ(st.comm, "cat");
	CHECK_INT_EQ(st.state, 'R');
	CHECK_INT_EQ(st.ppid, 8872);
	CHECK_U64_EQ(st.flags, 4194304);
	CHECK_U64_EQ(st.utime, 0);
	CHECK_U64_EQ(st.stime, 0);
}

static void test_stat_kernel_thread_flags(void)
{
	/* kworker: flags 0x04208060 include PF_KTHREAD. */
	struct attach_stat st;
	CHECK_INT_EQ(parse_stat_str("42 (kworker/0:1-events) I 2 0 0 0 -1 69238880 0 0 0 0 0 "
				    "12 0 0 20 0 1 0 40 0 0\n", &st), 0);
	CHECK_STR_EQ(st.comm, "kworker/0:1-events");
	CHECK_INT_EQ(st.state, 'I');
	CHECK_INT_EQ(st.ppid, 2);
	CHECK((st.flags & ATTACH_PF_KTHREAD) != 0);
	CHECK_U64_EQ(st.stime, 12);
}

static void test_stat_comm_with_spaces(void)
{
	struct attach_stat st;
	CHECK_INT_EQ(parse_stat_str("100 (my worker  2)" STAT_TAIL, &st), 0);
	CHECK_STR_EQ(st.comm, "my worker  2");
	check_tail_fields(&st);
}

static void test_stat_comm_with_close_paren(void)
{
	struct attach_stat st;
	CHECK_INT_EQ(parse_stat_str("100 (a) b)" STAT_TAIL, &st), 0);
	CHECK_STR_EQ(st.comm, "a) b");
	check_tail_fields(&st);

	/* A comm that itself looks like the start of the fields. */
	CHECK_INT_EQ(parse_stat_str("100 (x) R 1 1 1 0 -1 9 9 9 9 9 9 9)" STAT_TAIL, &st), 0);
	CHECK_STR_EQ(st.comm, "x) R 1 1 1 0 -1 9 9 9 9 9 9 9");
	check_tail_fields(&st);

	CHECK_INT_EQ(parse_stat_str("100 ())" STAT_TAIL, &st), 0);
	CHECK_STR_EQ(st.comm, ")");
	check_tail_fields(&st);
}

static void test_stat_comm_with_open_paren(void)
{
	struct attach_stat st;
	CHECK_INT_EQ(parse_stat_str("100 ((x)" STAT_TAIL, &st), 0);
	CHECK_STR_EQ(st.comm, "(x");
	check_tail_fields(&st);

	CHECK_INT_EQ(parse_stat_str("100 (a) (b) (c)" STAT_TAIL, &st), 0);
	CHECK_STR_EQ(st.comm, "a) (b) (c");
	check_tail_fields(&st);
}

static void test_stat_comm_with_newline(void)
{
	struct attach_stat st;
	CHECK_INT_EQ(parse_stat_str("100 (a\nb) S\n)" STAT_TAIL, &st), 0);
	CHECK_STR_EQ(st.comm, "a\nb) S\n");
	check_tail_fields(&st);
}

static void test_stat_comm_empty_and_odd_bytes(void)
{
	struct attach_stat st;
	CHECK_INT_EQ(parse_stat_str("100 ()" STAT_TAIL, &st), 0);
	CHECK_STR_EQ(st.comm, "");
	check_tail_fields(&st);

	CHECK_INT_EQ(parse_stat_str("100 (\xff\xfe\t\"\\)" STAT_TAIL, &st), 0);
	CHECK_STR_EQ(st.comm, "\xff\xfe\t\"\\");
	check_tail_fields(&st);
}

static void test_stat_comm_too_long_is_truncated(void)
{
	char line[512], comm[200];
	memset(comm, 'c', sizeof comm - 1);
	comm[sizeof comm - 1] = 0;
	snprintf(line, sizeof line, "100 (%s)" STAT_TAIL, comm);
	struct attach_stat st;
	memset(&st, 0x55, sizeof st);
	CHECK_INT_EQ(parse_stat_str(line, &st), 0);
	CHECK_INT_EQ(strnlen(st.comm, sizeof st.comm), sizeof st.comm - 1);
	CHECK(st.comm[0] == 'c' && st.comm[sizeof st.comm - 2] == 'c');
	check_tail_fields(&st);
}

static void test_stat_truncated(void)
{
	struct attach_stat st;
	CHECK_INT_EQ(parse_stat_str("1234 (ca", &st), -1);
	CHECK_INT_EQ(parse_stat_str("1234 (cat", &st), -1);
	CHECK_INT_EQ(parse_stat_str("1234 (cat)", &st), -1);
	CHECK_INT_EQ(parse_stat_str("1234 (cat) ", &st), -1);
	CHECK_INT_EQ(parse_stat_str("1234 (cat) S", &st), -1);
	CHECK_INT_EQ(parse_stat_str("1234 (cat) S 4321 4321", &st), -1);
	CHECK_INT_EQ(parse_stat_str("1234 (cat) S 4321 4321 6842 0 -1 4194368 100 0 3 0 17", &st), -1);
	CHECK_INT_EQ(parse_stat_str("1234 cat) S 1", &st), -1);
	CHECK_INT_EQ(parse_stat_str(")( S 1 1 1 0 -1 1 1 1 1 1 1 1", &st), -1);
	/* Every prefix of a valid line shorter than its last field fails,
	 * and none reads past its length (guarded). */
	const char *full = "1234 (cat)" STAT_TAIL;
	const char *stime = strstr(full, " 17 29 ") + 4;   /* the stime field */
	for (size_t len = 0; len <= (size_t)(stime - full); len++)
		CHECK_MSG(parse_stat(full, len, &st) == -1, "prefix of %zu bytes parsed", len);
}

static void test_stat_empty(void)
{
	struct attach_stat st;
	CHECK_INT_EQ(parse_stat("", 0, &st), -1);
	CHECK_INT_EQ(parse_stat("\n", 1, &st), -1);
	CHECK_INT_EQ(parse_stat("()", 2, &st), -1);
}

static void test_stat_not_nul_terminated(void)
{
	/* The bytes after len hold a later ')' and different values: a parser
	 * that looks past len (strrchr, sscanf...) takes them. */
	static const char s[] = "100 (a b)" STAT_TAIL " (x) Z 7 7 7 0 -1 1 1 1 1 1 99 99)";
	size_t len = strlen("100 (a b)" STAT_TAIL);
	struct attach_stat st;
	CHECK_INT_EQ(parse_stat(s, len, &st), 0);
	CHECK_STR_EQ(st.comm, "a b");
	check_tail_fields(&st);

	/* Without the final newline, the last field ends the buffer. */
	static const char t[] = "7 (w) S 4321 1 1 0 -1 4194368 0 0 0 0 17 29999";
	CHECK_INT_EQ(parse_stat(t, strlen(t) - 3, &st), 0);
	CHECK_STR_EQ(st.comm, "w");
	CHECK_U64_EQ(st.utime, 17);
	CHECK_U64_EQ(st.stime, 29);
}

static void test_stat_of_this_thread(void)
{
	/* Name this thread with parentheses and a space, read our own stat
	 * through the library's reader and parse it. */
	char old[17] = { 0 };
	prctl(PR_GET_NAME, old, 0, 0, 0);
	CHECK_INT_EQ(prctl(PR_SET_NAME, "w) (x y", 0, 0, 0), 0);
	char *buf = NULL;
	size_t len = 0;
	CHECK_INT_EQ(attach_read_file("/proc/thread-self/stat", &buf, &len), 0);
	prctl(PR_SET_NAME, old, 0, 0, 0);
	if (!buf)
		return;
	CHECK(len > 0 && buf[len] == '\0');
	struct attach_stat st;
	CHECK_INT_EQ(parse_stat(buf, len, &st), 0);
	CHECK_STR_EQ(st.comm, "w) (x y");
	CHECK_INT_EQ(st.state, 'R');            /* it is reading its own stat */
	CHECK_INT_EQ(st.ppid, getppid());
	CHECK((st.flags & ATTACH_PF_KTHREAD) == 0);
	free(buf);
}

/* ---- status ------------------------------------------------------------- */

#define STATUS_HEAD "Name:\tcat\nUmask:\t0022\nState:\tS (sleeping)\n"
#define STATUS_TGID "Tgid:\t8875\nNgid:\t0\nPid:\t8876\nPPid:\t8872\n"
#define STATUS_TRACER "TracerPid:\t0\n"
#define STATUS_UID "Uid:\t1000\t1001\t1002\t1003\n"
#define STATUS_TAIL "Gid:\t100\t100\t100\t100\nFDSize:\t256\nGroups:\t \n" \
	"NStgid:\t8875\nNSpid:\t8876\nNSpgid:\t8872\nNSsid:\t6842\n" \
	"VmPeak:\t    5488 kB\nThreads:\t1\nSigQ:\t0/31415\n"

static int parse_status(const char *s, size_t len, struct attach_status *out)
{
	struct guarded g;
	const char *p = guard_copy(&g, s, len);
	int rc = attach_parse_status(p, len, out);
	guard_free(&g);
	return rc;
}

static void test_status_realistic(void)
{
	static const char s[] = STATUS_HEAD STATUS_TGID STATUS_TRACER STATUS_UID STATUS_TAIL;
	struct attach_status st;
	CHECK_INT_EQ(parse_status(s, strlen(s), &st), 0);
	CHECK_INT_EQ(st.tgid, 8875);
	CHECK_INT_EQ(st.tracer_pid, 0);
	CHECK_INT_EQ(st.uid, 1000);             /* the real uid, first of four */
}

static void test_status_traced(void)
{
	static const char s[] = STATUS_HEAD STATUS_TGID "TracerPid:\t4242\n" STATUS_UID STATUS_TAIL;
	struct attach_status st;
	CHECK_INT_EQ(parse_status(s, strlen(s), &st), 0);
	CHECK_INT_EQ(st.tracer_pid, 4242);
	CHECK_INT_EQ(st.tgid, 8875);
}

static void test_status_missing_keys(void)
{
	struct attach_status st;
	/* No Tgid line (NStgid must not be taken for it). */
	static const char no_tgid[] = STATUS_HEAD "Pid:\t8876\n" STATUS_TRACER STATUS_UID STATUS_TAIL;
	CHECK_INT_EQ(parse_status(no_tgid, strlen(no_tgid), &st), -1);
	static const char no_tracer[] = STATUS_HEAD STATUS_TGID STATUS_UID STATUS_TAIL;
	CHECK_INT_EQ(parse_status(no_tracer, strlen(no_tracer), &st), -1);
	static const char no_uid[] = STATUS_HEAD STATUS_TGID STATUS_TRACER STATUS_TAIL;
	CHECK_INT_EQ(parse_status(no_uid, strlen(no_uid), &st), -1);
	/* A key without a value. */
	static const char empty_val[] = STATUS_HEAD "Tgid:\t\n" STATUS_TRACER STATUS_UID;
	CHECK_INT_EQ(parse_status(empty_val, strlen(empty_val), &st), -1);
	/* A longer key that starts with the wanted one is another key. */
	static const char longer[] = "Tgid_x:\t1\n" STATUS_TGID "TracerPidX:\t7\n" STATUS_TRACER
				     "Uidx:\t5\n" STATUS_UID;
	CHECK_INT_EQ(parse_status(longer, strlen(longer), &st), 0);
	CHECK_INT_EQ(st.tgid, 8875);
	CHECK_INT_EQ(st.tracer_pid, 0);
	CHECK_INT_EQ(st.uid, 1000);
	/* A key only in the middle of a line does not count. */
	static const char mid[] = "Name:\tTgid:\t5\n" STATUS_TRACER STATUS_UID;
	CHECK_INT_EQ(parse_status(mid, strlen(mid), &st), -1);
}

static void test_status_empty(void)
{
	struct attach_status st;
	CHECK_INT_EQ(parse_status("", 0, &st), -1);
	CHECK_INT_EQ(parse_status("\n\n", 2, &st), -1);
}

static void test_status_not_nul_terminated(void)
{
	/* Uid is the last line, with no newline, and the byte after len would
	 * change the value if it were read. */
	static const char s[] = STATUS_TGID STATUS_TRACER "Uid:\t10009";
	struct attach_status st;
	CHECK_INT_EQ(parse_status(s, strlen(s) - 1, &st), 0);
	CHECK_INT_EQ(st.uid, 1000);
	CHECK_INT_EQ(st.tgid, 8875);
	/* Cut inside "Uid": the key is gone. */
	CHECK_INT_EQ(parse_status(s, strlen(s) - 8, &st), -1);
}

static void test_status_of_this_process(void)
{
	char *buf = NULL;
	size_t len = 0;
	CHECK_INT_EQ(attach_read_file("/proc/self/status", &buf, &len), 0);
	if (!buf)
		return;
	struct attach_status st;
	CHECK_INT_EQ(parse_status(buf, len, &st), 0);
	CHECK_INT_EQ(st.tgid, getpid());
	CHECK_INT_EQ(st.uid, getuid());
	CHECK(st.tracer_pid >= 0);
	free(buf);
}

/* Field 52, the wait status a zombie leaves for its parent: how pprofc
 * learns how a process it does not trace ended.  Absent in short lines. */
static void test_stat_exit_code(void)
{
	struct attach_stat st;
	char line[1024];
	CHECK_INT_EQ(parse_stat_str("8874 (cat)" STAT_TAIL, &st), 0);
	CHECK_INT_EQ(st.exit_code, 0);
	snprintf(line, sizeof line, "8874 (cat)%s", STAT_TAIL);
	char *last = strrchr(line, ' ');
	snprintf(last, sizeof line - (size_t)(last - line), " 768\n");    /* exit(3) */
	line[11] = 'Z';
	CHECK_INT_EQ(parse_stat_str(line, &st), 0);
	CHECK_INT_EQ(st.state, 'Z');
	CHECK_INT_EQ(st.exit_code, 768);
	snprintf(last, sizeof line - (size_t)(last - line), " 139\n");    /* SIGSEGV, core */
	CHECK_INT_EQ(parse_stat_str(line, &st), 0);
	CHECK_INT_EQ(st.exit_code, 139);
	/* Cut before field 52: unknown, not 0. */
	CHECK_INT_EQ(parse_stat_str("8874 (cat) Z 4321 4321 6842 0 -1 4194368 100 0 3 0 17 29 0 0 20 0 1 0 "
				    "53501 3133440 410 18446744073709551615 1 2 3 0 0 0 0 0 0 0 0 0 17 1\n", &st), 0);
	CHECK_INT_EQ(st.exit_code, -1);
	CHECK_INT_EQ(st.processor, 1);
}

int main(void)
{
	RUN(test_stat_plain);
	RUN(test_stat_real_running_line);
	RUN(test_stat_kernel_thread_flags);
	RUN(test_stat_comm_with_spaces);
	RUN(test_stat_comm_with_close_paren);
	RUN(test_stat_comm_with_open_paren);
	RUN(test_stat_comm_with_newline);
	RUN(test_stat_comm_empty_and_odd_bytes);
	RUN(test_stat_comm_too_long_is_truncated);
	RUN(test_stat_truncated);
	RUN(test_stat_exit_code);
	RUN(test_stat_empty);
	RUN(test_stat_not_nul_terminated);
	RUN(test_stat_of_this_thread);
	RUN(test_status_realistic);
	RUN(test_status_traced);
	RUN(test_status_missing_keys);
	RUN(test_status_empty);
	RUN(test_status_not_nul_terminated);
	RUN(test_status_of_this_process);
	return check_summary("test_proc_stat");
}
