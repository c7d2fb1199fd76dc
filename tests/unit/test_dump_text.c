/* test_dump_text.c — tests the debug=2 thread dump writer and its helpers
 * (pprofout/dump.h: pp_write_debug2, pp_format_duration, pp_write_cstring)
 * against docs/FORMATS.md §2: the header with reason, detail and duration,
 * frames with and without line information or a symbol, inlined frames,
 * "...unwinding stopped" and "...stack not taken" trailers, blank lines
 * between blocks, deadlock lines, and thread names escaped as C strings.
 */
#include "dump_fixtures.h"

/* ---- pp_format_duration ------------------------------------------------- */

static void check_duration(double s, const char *want)
{
	char buf[64];
	memset(buf, 'x', sizeof buf);
	pp_format_duration(s, buf, sizeof buf);
	CHECK_MSG(strcmp(buf, want) == 0, "%g s gave \"%s\", expected \"%s\"", s, buf, want);
}

static void test_duration(void)
{
	check_duration(-1, "");
	check_duration(0, "");
	check_duration(0.5, "");
	check_duration(0.999, "");
	check_duration(12, "12 seconds");
	check_duration(12.9, "12 seconds");
	check_duration(59.99, "59 seconds");
	check_duration(60, "1 minutes");          /* Go's wording, plural and all */
	check_duration(119.9, "1 minutes");
	check_duration(120, "2 minutes");
	check_duration(184.2, "3 minutes");
	check_duration(90000, "1500 minutes");

	/* One second is the first duration shown, in the singular (Go's
	 * minutes keep their plural). */
	check_duration(1.0, "1 second");
	check_duration(1.99, "1 second");
	check_duration(2, "2 seconds");
}

static void test_duration_small_buffer(void)
{
	char buf[8];
	memset(buf, 'x', sizeof buf);
	pp_format_duration(184.2, buf, 5);
	CHECK_STR_EQ(buf, "3 mi");
	CHECK_INT_EQ(buf[5], 'x');
}

/* ---- pp_write_cstring --------------------------------------------------- */

static void check_cstring(const char *in, const char *want)
{
	char *out = capture_str(pp_write_cstring, in);
	CHECK_STR_EQ(out, want);
	/* And it must be a C string literal body that decodes back to in. */
	char *back = decode_c_literal(out);
	CHECK_MSG(back != NULL, "output for input \"%s\" is not a valid C string literal", want);
	if (back)
		CHECK_MSG(strcmp(back, in) == 0, "output \"%s\" does not decode to the input", out);
	free(back);
	free(out);
}

static void test_cstring_plain(void)
{
	check_cstring("fx-waiter", "fx-waiter");
	check_cstring("", "");
	check_cstring("with space (and parens)", "with space (and parens)");
}

static void test_cstring_escapes(void)
{
	check_cstring("a\"b", "a\\\"b");
	check_cstring("back\\slash", "back\\\\slash");
	check_cstring("line\nbreak", "line\\nbreak");
	check_cstring("tab\there", "tab\\there");
	check_cstring("\x01z", "\\x01z");
	check_cstring("bell\x07 esc\x1b.", "bell\\x07 esc\\x1b.");
	check_cstring("del\x7f.", "del\\x7f.");
}

static void test_cstring_invalid_utf8(void)
{
	check_cstring("\xff\xfe", "\\xff\\xfe");
	check_cstring("x\xffy", "x\\xffy");
	/* A lone continuation byte, a truncated sequence, an overlong '/'. */
	check_cstring("\x80.", "\\x80.");
	check_cstring("caf\xc3", "caf\\xc3");
	check_cstring("\xc0\xaf.", "\\xc0\\xaf.");
}

static void test_cstring_valid_utf8_unchanged(void)
{
	check_cstring("caf\xc3\xa9", "caf\xc3\xa9");
	check_cstring("\xe2\x82\xac 5", "\xe2\x82\xac 5");                  /* euro sign */
	check_cstring("w\xf0\x9f\x98\x80.", "w\xf0\x9f\x98\x80.");        /* emoji */
	check_cstring("\xd0\xbf\xd1\x80\xd0\xbe", "\xd0\xbf\xd1\x80\xd0\xbe");
}

static void test_cstring_truncated_sequence_at_end_no_overread(void)
{
	/* Each string, NUL included, ends right before an inaccessible page:
	 * reading past the NUL faults and fails the test. */
	static const char *const ins[] = { "\xf0", "ab\xf0\x9f", "\xe2", "\xe2\x82", "\xc3" };
	static const char *const want[] = { "\\xf0", "ab\\xf0\\x9f", "\\xe2", "\\xe2\\x82", "\\xc3" };
	for (size_t i = 0; i < sizeof ins / sizeof ins[0]; i++) {
		struct guarded g;
		const char *p = guard_copy(&g, ins[i], strlen(ins[i]) + 1);
		char *out = capture_str(pp_write_cstring, p);
		CHECK_STR_EQ(out, want[i]);
		free(out);
		guard_free(&g);
	}
}

/* ---- pp_write_debug2 ---------------------------------------------------- */

static const struct pp_frame io_frames[] = {
	/* No line information: module and offset in the module. */
	{ .pc = 0x7f636afc1234, .function = "__libc_recv", .has_offset = 1, .func_offset = 0x24,
	  .module = LIBC, .module_offset = 0xfa234 },
	/* No symbol either. */
	{ .pc = 0x7f0000abc123, .module = "/tmp/jit.so", .module_offset = 0x123 },
};

static const struct pp_frame main_frames[] = {
	{ .pc = 0x55d879427004, .function = "main", .file = "/src/main.c", .line = 10,
	  .has_offset = 1, .func_offset = 0x4, .module = "/srv/app", .module_offset = 0x1004 },
};

static struct pp_thread thread_mutex(void)
{
	struct pp_thread t = {
		.tid = 5915, .name = "fx-waiter", .state = 'S', .reason = "mutex wait",
		.detail = "0x55d87942a2c0 held by thread 5914", .wait_seconds = 184.2,
		.syscall = "futex", .wchan = "futex_wait_queue",
		.blocked = { .kind = PP_BLOCK_MUTEX, .address = 0x55d87942a2c0, .owner = 5914 },
		.frames = example_frames, .nframes = EXAMPLE_NFRAMES, .complete = 1,
		.stack_taken = 1,
	};
	return t;
}

static const char block_mutex[] =
	"thread 5915 \"fx-waiter\" [mutex wait (0x55d87942a2c0 held by thread 5914), 3 minutes]:\n"
	"__lll_lock_wait(...)\n"
	"\t./nptl/lowlevellock.c:49 +0x6b\n"
	"___pthread_mutex_lock(...)\n"
	"\t./nptl/pthread_mutex_lock.c:93 +0x52\n"
	"worker_loop(...) (inlined)\n"
	"\t/src/worker.c:88\n"
	"worker_main(...)\n"
	"\t/src/worker.c:120 +0x17\n"
	"start_thread(...)\n"
	"\t./nptl/pthread_create.c:442 +0xd5\n";

static struct pp_thread thread_io(void)
{
	struct pp_thread t = {
		.tid = 5916, .name = "fx-reader", .state = 'S', .reason = "IO wait",
		.detail = "fd 5: TCP 127.0.0.1:8080 listen", .wait_seconds = 12.9,
		.syscall = "recvfrom",
		.blocked = { .kind = PP_BLOCK_FD, .fd = 5, .target = "socket:[4242]",
			     .description = "TCP 127.0.0.1:8080 listen" },
		.frames = io_frames, .nframes = 2, .complete = 0,
		.stack_error = "no CFI for 0x7f0000abc123", .stack_taken = 1,
	};
	return t;
}

static const char block_io[] =
	"thread 5916 \"fx-reader\" [IO wait (fd 5: TCP 127.0.0.1:8080 listen), 12 seconds]:\n"
	"__libc_recv(...)\n"
	"\t" LIBC " +0xfa234\n"
	"\?\?(...)\n"  /* "??(" would be a trigraph */
	"\t/tmp/jit.so +0x123\n"
	"...unwinding stopped: no CFI for 0x7f0000abc123\n";

static struct pp_thread thread_not_taken(void)
{
	struct pp_thread t = {
		.tid = 5917, .name = "stuck", .state = 'D', .reason = "disk wait",
		.detail = "io_schedule", .wait_seconds = 0.4, .wchan = "io_schedule",
		.frames = NULL, .nframes = 0, .complete = 0,
		.stack_error = "did not stop within the deadline (state D)", .stack_taken = 0,
	};
	return t;
}

static const char block_not_taken[] =
	"thread 5917 \"stuck\" [disk wait (io_schedule)]:\n"
	"...stack not taken: did not stop within the deadline (state D)\n";

static struct pp_thread thread_running(void)
{
	struct pp_thread t = {
		.tid = 5912, .name = "app", .state = 'R', .reason = "running", .detail = NULL,
		.wait_seconds = -1, .frames = main_frames, .nframes = 1, .complete = 1,
		.stack_taken = 1,
	};
	return t;
}

static const char block_running[] =
	"thread 5912 \"app\" [running]:\n"
	"main(...)\n"
	"\t/src/main.c:10 +0x4\n";

static char *debug2(const struct pp_thread *threads, size_t n, const pid_t *cycles,
		    const size_t *lens, size_t ncycles)
{
	static const char *const argv[] = { "app", "-c", "x" };
	struct pp_dump d = {
		.pid = 5912, .exe = "/srv/app", .argv = argv, .argc = 3, .time = 1795663443,
		.threads = threads, .n = n, .cycles = cycles, .cycle_lens = lens, .ncycles = ncycles,
	};
	int rc;
	char *out = capture(pp_write_debug2, &d, &rc);
	CHECK_INT_EQ(rc, 0);
	return out;
}

static void test_debug2_single_blocks(void)
{
	struct pp_thread t = thread_mutex();
	char *out = debug2(&t, 1, NULL, NULL, 0);
	CHECK_STR_EQ(out, block_mutex);
	free(out);

	t = thread_io();
	out = debug2(&t, 1, NULL, NULL, 0);
	CHECK_STR_EQ(out, block_io);
	free(out);

	t = thread_not_taken();
	out = debug2(&t, 1, NULL, NULL, 0);
	CHECK_STR_EQ(out, block_not_taken);
	free(out);

	t = thread_running();
	out = debug2(&t, 1, NULL, NULL, 0);
	CHECK_STR_EQ(out, block_running);
	free(out);
}

static void test_debug2_blocks_separated_by_one_blank_line(void)
{
	struct pp_thread ts[] = { thread_running(), thread_mutex(), thread_io(), thread_not_taken() };
	char *out = debug2(ts, 4, NULL, NULL, 0);
	char want[4096];
	snprintf(want, sizeof want, "%s\n%s\n%s\n%s", block_running, block_mutex, block_io,
		 block_not_taken);
	CHECK_STR_EQ(out, want);
	free(out);
}

static void test_debug2_empty_dump(void)
{
	char *out = debug2(NULL, 0, NULL, NULL, 0);
	CHECK_STR_EQ(out, "");
	free(out);
}

static void test_debug2_header_variants(void)
{
	/* An empty detail prints no parentheses; a duration alone follows
	 * the reason after a comma. */
	struct pp_thread t = thread_running();
	t.reason = "sleep";
	t.detail = "";
	t.wait_seconds = 59.5;
	char *out = debug2(&t, 1, NULL, NULL, 0);
	CHECK_STR_EQ(out, "thread 5912 \"app\" [sleep, 59 seconds]:\n"
			  "main(...)\n\t/src/main.c:10 +0x4\n");
	free(out);

	t.reason = "syscall ioctl";
	t.detail = NULL;
	t.wait_seconds = 0.99;
	out = debug2(&t, 1, NULL, NULL, 0);
	CHECK_STR_EQ(out, "thread 5912 \"app\" [syscall ioctl]:\n"
			  "main(...)\n\t/src/main.c:10 +0x4\n");
	free(out);
}

static void test_debug2_frame_without_line_keeps_offsets_apart(void)
{
	/* A frame with a file but no function offset prints no "+0x". */
	static const struct pp_frame f[] = {
		{ .pc = 0x1000, .function = "f", .file = "/src/f.c", .line = 7 },
	};
	struct pp_thread t = thread_running();
	t.frames = f;
	t.nframes = 1;
	char *out = debug2(&t, 1, NULL, NULL, 0);
	CHECK_STR_EQ(out, "thread 5912 \"app\" [running]:\nf(...)\n\t/src/f.c:7\n");
	free(out);
}

static void test_debug2_name_escaped(void)
{
	struct pp_thread t = thread_running();
	t.name = "a\"b\\c\nd\te\x01z\xff\xfe caf\xc3\xa9";
	char *out = debug2(&t, 1, NULL, NULL, 0);
	const char *want_header =
		"thread 5912 \"a\\\"b\\\\c\\nd\\te\\x01z\\xff\\xfe caf\xc3\xa9\" [running]:\n";
	CHECK_MSG(strncmp(out, want_header, strlen(want_header)) == 0, "got: %s", out);
	/* The dump's first line is the whole header: no raw newline from the name. */
	CHECK(strchr(out, '\n') == out + strlen(want_header) - 1);
	free(out);
}

/* Returns the part of out after the thread blocks (which must be exactly
 * blocks), or NULL. */
static const char *after_blocks(const char *out, const char *blocks)
{
	size_t n = strlen(blocks);
	CHECK_MSG(strncmp(out, blocks, n) == 0, "thread blocks differ:\n%s", out);
	return strncmp(out, blocks, n) == 0 ? out + n : NULL;
}

/* After the blocks: blank lines, then exactly the deadlock lines. */
static void check_deadlock_tail(const char *tail, const char *lines)
{
	if (!tail)
		return;
	while (*tail == '\n')
		tail++;
	CHECK_STR_EQ(tail, lines);
}

static void test_debug2_deadlock_lines(void)
{
	struct pp_thread a = thread_running(), b = thread_running(), c = thread_running();
	a.tid = 5921;
	a.name = "a";
	b.tid = 5922;
	b.name = "b";
	c.tid = 5923;
	c.name = "q\"uote";
	struct pp_thread ts[] = { a, b, c };
	static const pid_t cycles[] = { 5921, 5922, 5923 };
	static const size_t lens[] = { 2, 1 };
	char *out = debug2(ts, 3, cycles, lens, 2);

	char blocks[1024];
	snprintf(blocks, sizeof blocks,
		 "thread 5921 \"a\" [running]:\nmain(...)\n\t/src/main.c:10 +0x4\n\n"
		 "thread 5922 \"b\" [running]:\nmain(...)\n\t/src/main.c:10 +0x4\n\n"
		 "thread 5923 \"q\\\"uote\" [running]:\nmain(...)\n\t/src/main.c:10 +0x4\n");
	check_deadlock_tail(after_blocks(out, blocks),
			    "deadlock: thread 5921 \"a\" waits for thread 5922 \"b\" waits for thread 5921 \"a\"\n"
			    "deadlock: thread 5923 \"q\\\"uote\" waits for thread 5923 \"q\\\"uote\"\n");
	free(out);
}

static void test_debug2_deadlock_three(void)
{
	struct pp_thread ts[3];
	static const char *const names[] = { "x", "y", "z" };
	for (int i = 0; i < 3; i++) {
		ts[i] = thread_not_taken();
		ts[i].tid = 10 + i;
		ts[i].name = names[i];
	}
	static const pid_t cycles[] = { 10, 12, 11 };
	static const size_t lens[] = { 3 };
	char *out = debug2(ts, 3, cycles, lens, 1);
	const char *tail = strstr(out, "deadlock:");
	CHECK(tail != NULL);
	if (tail) {
		CHECK(tail > out && tail[-1] == '\n');
		CHECK_STR_EQ(tail, "deadlock: thread 10 \"x\" waits for thread 12 \"z\" waits for "
				   "thread 11 \"y\" waits for thread 10 \"x\"\n");
	}
	free(out);
}

int main(void)
{
	RUN(test_duration);
	RUN(test_duration_small_buffer);
	RUN(test_cstring_plain);
	RUN(test_cstring_escapes);
	RUN(test_cstring_invalid_utf8);
	RUN(test_cstring_valid_utf8_unchanged);
	RUN(test_cstring_truncated_sequence_at_end_no_overread);
	RUN(test_debug2_single_blocks);
	RUN(test_debug2_blocks_separated_by_one_blank_line);
	RUN(test_debug2_empty_dump);
	RUN(test_debug2_header_variants);
	RUN(test_debug2_frame_without_line_keeps_offsets_apart);
	RUN(test_debug2_name_escaped);
	RUN(test_debug2_deadlock_lines);
	RUN(test_debug2_deadlock_three);
	return check_summary("test_dump_text");
}
