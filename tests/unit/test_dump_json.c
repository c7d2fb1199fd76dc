/* test_dump_json.c — tests pp_write_json() and pp_write_json_string()
 * (pprofout/dump.h) against docs/FORMATS.md §4: the output is parsed back with
 * Python's strict JSON reader and its values compared (pid, exe, cmdline,
 * time, threads with reason, wait_seconds, syscall, wchan, blocked_on of
 * every kind, frames, complete; deadlocks), a few exact substrings are
 * checked, and thread names holding quotes, backslashes, newlines, tabs,
 * control bytes, invalid and valid UTF-8 give valid JSON that decodes to
 * the right characters.
 */
#include "dump_fixtures.h"
#include "json_check.h"

struct expect {
	const char *path;       /* "threads/0/name" */
	const char *json;       /* canonical: sorted keys, ASCII only */
};

/* Parses out with Python and compares each value. */
static void check_values(const char *out, const struct expect *e, size_t n)
{
	const char *paths[64];
	for (size_t i = 0; i < n; i++)
		paths[i] = e[i].path;
	char got[16384];
	int rc = json_query(out, strlen(out), paths, n, got, sizeof got);
	CHECK_MSG(rc == 0, "python refused the JSON (status %d):\n%s", rc, out);
	if (rc != 0)
		return;
	char *line = got;
	for (size_t i = 0; i < n; i++) {
		char *nl = strchr(line, '\n');
		if (!nl) {
			CHECK_MSG(0, "no value printed for %s", e[i].path);
			return;
		}
		*nl = 0;
		CHECK_MSG(strcmp(line, e[i].json) == 0, "%s is %s, expected %s", e[i].path, line, e[i].json);
		line = nl + 1;
	}
}

static const char *const argv_[] = { "app", "-c", "x" };

static const struct pp_frame fd_frames[] = {
	{ .pc = 0x7f636afc1234, .function = "__libc_recv", .has_offset = 1, .func_offset = 0x24,
	  .module = LIBC, .module_offset = 0xfa234 },
};

static struct pp_thread threads_[4];

static struct pp_dump example_dump(void)
{
	struct pp_thread mutex = {
		.tid = 5915, .name = "fx-waiter", .state = 'S', .reason = "mutex wait",
		.detail = "0x55d87942a2c0 held by thread 5914", .wait_seconds = 184.2,
		.syscall = "futex", .wchan = "futex_do_wait",
		.blocked = { .kind = PP_BLOCK_MUTEX, .address = 0x55d87942a2c0, .owner = 5914 },
		.frames = example_frames, .nframes = EXAMPLE_NFRAMES, .complete = 1, .stack_taken = 1,
	};
	struct pp_thread fd = {
		.tid = 5916, .name = "fx-reader", .state = 'S', .reason = "IO wait",
		.detail = "fd 5: TCP 127.0.0.1:8080 listen", .wait_seconds = 12.9,
		.syscall = "recvfrom", .wchan = "wait_woken",
		.blocked = { .kind = PP_BLOCK_FD, .fd = 5, .target = "socket:[4242]",
			     .description = "TCP 127.0.0.1:8080 listen" },
		.frames = fd_frames, .nframes = 1, .complete = 0,
		.stack_error = "no CFI for 0x7f636afc1234", .stack_taken = 1,
	};
	struct pp_thread futex = {
		.tid = 5917, .name = "sem", .state = 'S', .reason = "futex wait", .wait_seconds = 0.4,
		.syscall = "futex",
		.blocked = { .kind = PP_BLOCK_FUTEX, .address = 0x7f636a7fe910 },
		.frames = NULL, .nframes = 0, .complete = 0, .stack_error = "not stopped",
		.stack_taken = 0,
	};
	struct pp_thread running = {
		.tid = 5912, .name = "app", .state = 'R', .reason = "running", .wait_seconds = -1,
		.frames = NULL, .nframes = 0, .complete = 0, .stack_taken = 0,
		.stack_error = "running",
	};
	threads_[0] = running;
	threads_[1] = mutex;
	threads_[2] = fd;
	threads_[3] = futex;
	static const pid_t cycles[] = { 5915, 5916, 5917 };
	static const size_t lens[] = { 2, 1 };
	struct pp_dump d = {
		.pid = 5912, .exe = "/srv/app", .argv = argv_, .argc = 3, .time = 1795663443,
		.threads = threads_, .n = 4, .cycles = cycles, .cycle_lens = lens, .ncycles = 2,
	};
	return d;
}

static char *json_of(const struct pp_dump *d)
{
	int rc;
	char *out = capture(pp_write_json, d, &rc);
	CHECK_INT_EQ(rc, 0);
	return out;
}

static void test_json_is_valid(void)
{
	struct pp_dump d = example_dump();
	char *out = json_of(&d);
	CHECK_MSG(json_validate(out, strlen(out)) == 0, "invalid JSON:\n%s", out);
	free(out);
}

static void test_json_document_fields(void)
{
	struct pp_dump d = example_dump();
	char *out = json_of(&d);
	static const struct expect e[] = {
		{ "pid", "5912" },
		{ "exe", "\"/srv/app\"" },
		{ "cmdline", "[\"app\", \"-c\", \"x\"]" },
		{ "time", "\"2026-11-26T03:24:03Z\"" },
		{ "deadlocks", "[{\"threads\": [5915, 5916]}, {\"threads\": [5917]}]" },
	};
	check_values(out, e, sizeof e / sizeof e[0]);
	free(out);
}

static void test_json_threads(void)
{
	struct pp_dump d = example_dump();
	char *out = json_of(&d);
	static const struct expect e[] = {
		{ "threads/0/tid", "5912" },
		{ "threads/0/reason", "\"running\"" },
		{ "threads/0/wait_seconds", "null" },
		{ "threads/0/blocked_on", "null" },
		{ "threads/0/frames", "[]" },
		{ "threads/0/state", "\"R\"" },
		{ "threads/1/tid", "5915" },
		{ "threads/1/name", "\"fx-waiter\"" },
		{ "threads/1/state", "\"S\"" },
		{ "threads/1/reason", "\"mutex wait\"" },
		{ "threads/1/wait_seconds", "184.2" },
		{ "threads/1/syscall", "\"futex\"" },
		{ "threads/1/wchan", "\"futex_do_wait\"" },
		{ "threads/1/blocked_on",
		  "{\"address\": \"0x55d87942a2c0\", \"kind\": \"mutex\", \"owner_tid\": 5914}" },
		{ "threads/1/complete", "true" },
		{ "threads/2/reason", "\"IO wait\"" },
		{ "threads/2/wait_seconds", "12.9" },
		{ "threads/2/blocked_on",
		  "{\"description\": \"TCP 127.0.0.1:8080 listen\", \"fd\": 5, \"kind\": \"fd\", "
		  "\"target\": \"socket:[4242]\"}" },
		{ "threads/2/complete", "false" },
		{ "threads/3/blocked_on", "{\"address\": \"0x7f636a7fe910\", \"kind\": \"futex\"}" },
		{ "threads/3/wait_seconds", "0.4" },
		{ "threads/3/complete", "false" },
	};
	check_values(out, e, sizeof e / sizeof e[0]);
	free(out);
}

static void test_json_frames(void)
{
	struct pp_dump d = example_dump();
	char *out = json_of(&d);
	static const struct expect e[] = {
		{ "threads/1/frames/0",
		  "{\"file\": \"./nptl/lowlevellock.c\", \"function\": \"__lll_lock_wait\", "
		  "\"inlined\": false, \"line\": 49, \"module\": \"" LIBC "\", \"offset\": \"0x6b\", "
		  "\"pc\": \"0x7f636af4712b\"}" },
		{ "threads/1/frames/2/function", "\"worker_loop\"" },
		{ "threads/1/frames/2/inlined", "true" },
		{ "threads/1/frames/2/line", "88" },
		{ "threads/1/frames/3/inlined", "false" },
		{ "threads/1/frames/3/offset", "\"0x17\"" },
		{ "threads/1/frames/4/function", "\"start_thread\"" },
		{ "threads/2/frames/0/function", "\"__libc_recv\"" },
		{ "threads/2/frames/0/module", "\"" LIBC "\"" },
		{ "threads/2/frames/0/pc", "\"0x7f636afc1234\"" },
	};
	check_values(out, e, sizeof e / sizeof e[0]);
	free(out);
}

static void test_json_substrings(void)
{
	struct pp_dump d = example_dump();
	char *out = json_of(&d);
	CHECK(strstr(out, "\"pid\": 5912") != NULL);
	CHECK(strstr(out, "\"tid\": 5915") != NULL);
	CHECK(strstr(out, "\"time\": \"2026-11-26T03:24:03Z\"") != NULL);
	CHECK(strstr(out, "\"address\": \"0x55d87942a2c0\"") != NULL);
	CHECK(strstr(out, "\"owner_tid\": 5914") != NULL);
	CHECK(strstr(out, "\"pc\": \"0x7f636af4712b\"") != NULL);
	CHECK(strstr(out, "\"wait_seconds\": 184.2") != NULL);
	CHECK(strstr(out, "\"wait_seconds\": null") != NULL);
	free(out);
}

static void test_json_empty_dump(void)
{
	struct pp_dump d = { .pid = 1, .exe = "/sbin/init", .time = 0 };
	char *out = json_of(&d);
	static const struct expect e[] = {
		{ "pid", "1" },
		{ "cmdline", "[]" },
		{ "threads", "[]" },
		{ "deadlocks", "[]" },
		{ "time", "\"1970-01-01T00:00:00Z\"" },
	};
	check_values(out, e, sizeof e / sizeof e[0]);
	free(out);
}

/* ---- strings ------------------------------------------------------------ */

static void check_json_string(const char *in, const char *want)
{
	char *out = capture_str(pp_write_json_string, in);
	CHECK_STR_EQ(out, want);
	CHECK_MSG(json_validate(out, strlen(out)) == 0, "not a JSON string: %s", out);
	free(out);
}

static void test_json_string_escapes(void)
{
	check_json_string("fx-waiter", "\"fx-waiter\"");
	check_json_string("", "\"\"");
	check_json_string("a\"b", "\"a\\\"b\"");
	check_json_string("back\\slash", "\"back\\\\slash\"");
	check_json_string("line\nbreak", "\"line\\nbreak\"");
	check_json_string("tab\there", "\"tab\\there\"");
	check_json_string("\x01z", "\"\\u0001z\"");
	check_json_string("esc\x1b", "\"esc\\u001b\"");
}

static void test_json_string_invalid_utf8(void)
{
	check_json_string("\xff\xfe", "\"\\u00ff\\u00fe\"");
	check_json_string("x\x80y", "\"x\\u0080y\"");
	check_json_string("caf\xc3", "\"caf\\u00c3\"");
	check_json_string("\xc0\xaf", "\"\\u00c0\\u00af\"");
}

static void test_json_string_valid_utf8_unchanged(void)
{
	check_json_string("caf\xc3\xa9", "\"caf\xc3\xa9\"");
	check_json_string("\xe2\x82\xac", "\"\xe2\x82\xac\"");
	check_json_string("\xf0\x9f\x98\x80", "\"\xf0\x9f\x98\x80\"");
}

static void test_json_string_truncated_sequence_no_overread(void)
{
	/* Truncated sequences whose NUL ends right before an inaccessible page.
	 * (Lead bytes announcing more bytes than remain, like "\xf0", are in
	 * test_dump_bugs.c.) */
	static const char *const ins[] = { "\xc3", "ab\xe2\x82" };
	static const char *const want[] = { "\"\\u00c3\"", "\"ab\\u00e2\\u0082\"" };
	for (size_t i = 0; i < sizeof ins / sizeof ins[0]; i++) {
		struct guarded g;
		const char *p = guard_copy(&g, ins[i], strlen(ins[i]) + 1);
		char *out = capture_str(pp_write_json_string, p);
		CHECK_STR_EQ(out, want[i]);
		free(out);
		guard_free(&g);
	}
}

static void test_json_hostile_names_in_dump(void)
{
	struct pp_dump d = example_dump();
	threads_[1].name = "a\"b\\c\nd\te\x01z\xff\xfe caf\xc3\xa9";
	threads_[2].name = "\x7f\x1f}\"]";
	threads_[3].name = "\xc3";
	threads_[0].name = "caf\xc3\xa9";
	const char *evil_exe = "/srv/my \"app\"\n";
	d.exe = evil_exe;
	static const char *const argv2[] = { "app", "--name=\xff", "\\" };
	d.argv = argv2;
	char *out = json_of(&d);
	static const struct expect e[] = {
		{ "threads/1/name", "\"a\\\"b\\\\c\\nd\\te\\u0001z\\u00ff\\u00fe caf\\u00e9\"" },
		{ "threads/2/name", "\"\\u007f\\u001f}\\\"]\"" },
		{ "threads/3/name", "\"\\u00c3\"" },
		{ "threads/0/name", "\"caf\\u00e9\"" },
		{ "exe", "\"/srv/my \\\"app\\\"\\n\"" },
		{ "cmdline", "[\"app\", \"--name=\\u00ff\", \"\\\\\"]" },
		{ "threads/1/tid", "5915" },
	};
	check_values(out, e, sizeof e / sizeof e[0]);
	/* Valid UTF-8 passes through as bytes, not as \u escapes. */
	CHECK(strstr(out, "\"caf\xc3\xa9\"") != NULL);
	free(out);
}

int main(void)
{
	RUN(test_json_is_valid);
	RUN(test_json_document_fields);
	RUN(test_json_threads);
	RUN(test_json_frames);
	RUN(test_json_substrings);
	RUN(test_json_empty_dump);
	RUN(test_json_string_escapes);
	RUN(test_json_string_invalid_utf8);
	RUN(test_json_string_valid_utf8_unchanged);
	RUN(test_json_string_truncated_sequence_no_overread);
	RUN(test_json_hostile_names_in_dump);
	return check_summary("test_dump_json");
}
