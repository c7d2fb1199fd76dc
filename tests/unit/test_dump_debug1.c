/* test_dump_debug1.c — tests pp_write_debug1() (pprofout/dump.h) against
 * docs/FORMATS.md §3: "thread profile: total N", identical stacks grouped and
 * counted, the largest group first, the "@" line holding the raw pcs, and
 * one "#" line per frame with the leaf at its exact pc and offset and the
 * callers at return address - 1 and offset - 1.
 */
#include "dump_fixtures.h"

/* The §3 example stack: five physical frames, no inlining. */
static const struct pp_frame lock_frames[] = {
	{ .pc = 0x7f636af4712b, .function = "__lll_lock_wait", .file = "./nptl/lowlevellock.c",
	  .line = 49, .has_offset = 1, .func_offset = 0x6b, .module = LIBC, .module_offset = 0x8912b },
	{ .pc = 0x7f636af4d482, .function = "___pthread_mutex_lock",
	  .file = "./nptl/pthread_mutex_lock.c", .line = 93, .has_offset = 1, .func_offset = 0x52,
	  .module = LIBC, .module_offset = 0x8f482 },
	{ .pc = 0x55d8794278c7, .function = "worker_main", .file = "/src/worker.c", .line = 120,
	  .has_offset = 1, .func_offset = 0x17, .module = "/srv/app", .module_offset = 0x18c7 },
	{ .pc = 0x7f636af4a1f5, .function = "start_thread", .file = "./nptl/pthread_create.c",
	  .line = 442, .has_offset = 1, .func_offset = 0xd5, .module = LIBC, .module_offset = 0x8c1f5 },
	{ .pc = 0x7f636afca8ec, .function = "clone3",
	  .file = "../sysdeps/unix/sysv/linux/x86_64/clone3.S", .line = 81, .has_offset = 1,
	  .func_offset = 0x2c, .module = LIBC, .module_offset = 0x10c8ec },
};

static const char lock_group_body[] =
	" @ 0x7f636af4712b 0x7f636af4d482 0x55d8794278c7 0x7f636af4a1f5 0x7f636afca8ec\n"
	"#\t0x7f636af4712b\t__lll_lock_wait+0x6b\t./nptl/lowlevellock.c:49\n"
	"#\t0x7f636af4d481\t___pthread_mutex_lock+0x51\t./nptl/pthread_mutex_lock.c:93\n"
	"#\t0x55d8794278c6\tworker_main+0x16\t/src/worker.c:120\n"
	"#\t0x7f636af4a1f4\tstart_thread+0xd4\t./nptl/pthread_create.c:442\n"
	"#\t0x7f636afca8eb\tclone3+0x2b\t../sysdeps/unix/sysv/linux/x86_64/clone3.S:81\n"
	"\n";

static const struct pp_frame main_frames[] = {
	{ .pc = 0x55d879427004, .function = "main", .file = "/src/main.c", .line = 10,
	  .has_offset = 1, .func_offset = 0x4, .module = "/srv/app", .module_offset = 0x1004 },
	{ .pc = 0x7f636aee0d90, .function = "__libc_start_call_main",
	  .file = "../sysdeps/nptl/libc_start_call_main.h", .line = 58, .has_offset = 1,
	  .func_offset = 0x80, .module = LIBC, .module_offset = 0x29d90 },
};

static const char main_group_body[] =
	" @ 0x55d879427004 0x7f636aee0d90\n"
	"#\t0x55d879427004\tmain+0x4\t/src/main.c:10\n"
	"#\t0x7f636aee0d8f\t__libc_start_call_main+0x7f\t../sysdeps/nptl/libc_start_call_main.h:58\n"
	"\n";

static struct pp_thread make_thread(pid_t tid, const char *name, const char *reason,
				    const struct pp_frame *frames, size_t n)
{
	struct pp_thread t = {
		.tid = tid, .name = name, .state = 'S', .reason = reason, .wait_seconds = -1,
		.frames = frames, .nframes = n, .complete = 1, .stack_taken = 1,
	};
	return t;
}

static char *debug1(const struct pp_thread *ts, size_t n)
{
	struct pp_dump d = { .pid = 5, .exe = "/srv/app", .time = 1795663443, .threads = ts, .n = n };
	int rc;
	char *out = capture(pp_write_debug1, &d, &rc);
	CHECK_INT_EQ(rc, 0);
	return out;
}

static void test_single_thread(void)
{
	struct pp_thread t = make_thread(5, "app", "running", main_frames, 2);
	char *out = debug1(&t, 1);
	char want[1024];
	snprintf(want, sizeof want, "thread profile: total 1\n1%s", main_group_body);
	CHECK_STR_EQ(out, want);
	free(out);
}

static void test_identical_stacks_grouped_largest_first(void)
{
	/* The main thread (smallest tid, listed first) is alone; two workers
	 * with different names and reasons share one stack. */
	struct pp_thread ts[] = {
		make_thread(5, "app", "running", main_frames, 2),
		make_thread(7, "worker-1", "mutex wait", lock_frames, 5),
		make_thread(9, "worker-2", "futex wait", lock_frames, 5),
	};
	char *out = debug1(ts, 3);
	char want[2048];
	snprintf(want, sizeof want, "thread profile: total 3\n2%s1%s", lock_group_body,
		 main_group_body);
	CHECK_STR_EQ(out, want);
	free(out);
}

static void test_stacks_differing_in_one_pc_are_not_grouped(void)
{
	struct pp_frame other[5];
	memcpy(other, lock_frames, sizeof other);
	other[2].pc += 0x10;
	other[2].func_offset += 0x10;
	struct pp_thread ts[] = {
		make_thread(7, "w1", "mutex wait", lock_frames, 5),
		make_thread(8, "w2", "mutex wait", other, 5),
		make_thread(9, "w3", "mutex wait", lock_frames, 5),
		make_thread(10, "w4", "mutex wait", lock_frames, 5),
		/* a prefix of the same stack is a different stack */
		make_thread(11, "w5", "mutex wait", lock_frames, 4),
	};
	char *out = debug1(ts, 5);
	CHECK(strncmp(out, "thread profile: total 5\n3 @ 0x7f636af4712b 0x7f636af4d482 0x55d8794278c7 ",
		      strlen("thread profile: total 5\n3 @ 0x7f636af4712b 0x7f636af4d482 0x55d8794278c7 ")) == 0);
	CHECK(strstr(out, "\n1 @ 0x7f636af4712b 0x7f636af4d482 0x55d8794278d7 0x7f636af4a1f5 0x7f636afca8ec\n") != NULL);
	CHECK(strstr(out, "#\t0x55d8794278d6\tworker_main+0x26\t/src/worker.c:120\n") != NULL);
	CHECK(strstr(out, "\n1 @ 0x7f636af4712b 0x7f636af4d482 0x55d8794278c7 0x7f636af4a1f5\n") != NULL);
	/* three groups: three "@" lines */
	size_t groups = 0;
	for (const char *p = out; (p = strstr(p, " @ ")); p++)
		groups++;
	CHECK_INT_EQ(groups, 3);
	free(out);
}

static void test_empty(void)
{
	char *out = debug1(NULL, 0);
	CHECK_STR_EQ(out, "thread profile: total 0\n");
	free(out);
}

int main(void)
{
	RUN(test_single_thread);
	RUN(test_identical_stacks_grouped_largest_first);
	RUN(test_stacks_differing_in_one_pc_are_not_grouped);
	RUN(test_empty);
	return check_summary("test_dump_debug1");
}
