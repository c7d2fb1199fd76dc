/* test_dump_regressions.c — regression tests for bugs found (and fixed) in pprofout/json.c and pprofout/text.c,
 * one case each.  Each case once failed; the writers
 * are otherwise tested in test_dump_*.c.
 *
 * BUG 1 (json.c, pp_write_json_string): the UTF-8 check accepts encodings
 * that are not valid UTF-8 — surrogates (ED A0 80 = U+D800), overlong
 * 3- and 4-byte forms (E0 80 AF, F0 80 80 AF) and code points above
 * U+10FFFF (F4 90 80 80) — and copies them raw, so the JSON document is not
 * valid UTF-8 (RFC 8259 §8.1) and a strict reader (Python: a strict UTF-8
 * decode, then json.loads) rejects it.  dump.h
 * promises "invalid UTF-8 as \u00NN".  Only the lead byte's range and the
 * continuation bits are checked, not the second byte's range.
 *
 * BUG 2 (json.c, pp_write_json_string): reads past the terminating NUL.
 * For a lead byte announcing n bytes it tests s[1]..s[n-1] without stopping
 * at the first non-continuation byte, so a name ending in a truncated
 * sequence such as "\xf0" reads 2 bytes past the string's end (ASan:
 * heap-buffer-overflow; here: a fault on a guard page).  text.c's
 * utf8_len() stops at the first bad byte and is fine.
 *
 * BUG 3 (text.c, pp_write_cstring): same acceptance of surrogates,
 * overlong forms and > U+10FFFF as BUG 1 (utf8_len), so the debug=2 header
 * holds raw invalid UTF-8 although dump.h promises "invalid UTF-8 as \xNN".
 *
 * BUG 4 (text.c, pp_write_cstring): the output is not a valid C string
 * literal body when an escaped byte is followed by a hex digit: in C a
 * \x escape takes every hex digit that follows, so "\x01" followed by "F"
 * is written \x01F, which C reads as the one character 0x1F (and
 * "\xff" "ab" as \xffab: out of range, a compile error).  dump.h says
 * "Writes s as the inside of a C string literal" and docs/FORMATS.md §2 "escaped
 * like a C string".  (Go's %q has the same spelling but Go's \x takes
 * exactly two digits; C's does not.)  Octal escapes (\001F) or a
 * literal break (\x01""F) would be unambiguous.
 */
#include <signal.h>
#include <sys/wait.h>

#include "dump_fixtures.h"
#include "json_check.h"

static const char *const bad_utf8[] = {
	"\xed\xa0\x80",         /* U+D800, a UTF-16 surrogate */
	"\xe0\x80\xaf",         /* overlong '/' */
	"\xf0\x80\x80\xaf",     /* overlong '/' in 4 bytes */
	"\xf4\x90\x80\x80",     /* U+110000, beyond Unicode */
};

/* "\u00NN" (json) or "\xNN" (c) for each byte of s. */
static void bytewise(const char *s, int json, char *out, size_t len)
{
	size_t n = 0;
	if (json)
		n += (size_t)snprintf(out + n, len - n, "\"");
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		n += (size_t)snprintf(out + n, len - n, json ? "\\u%04x" : "\\x%02x", *p);
	if (json)
		snprintf(out + n, len - n, "\"");
}

static void regression_json_string_accepts_invalid_utf8(void)
{
	for (size_t i = 0; i < sizeof bad_utf8 / sizeof bad_utf8[0]; i++) {
		char want[64];
		bytewise(bad_utf8[i], 1, want, sizeof want);
		char *out = capture_str(pp_write_json_string, bad_utf8[i]);
		CHECK_MSG(strcmp(out, want) == 0, "regression (json.c pp_write_json_string): "
			  "input %zu written raw, expected %s", i, want);
		CHECK_MSG(json_validate(out, strlen(out)) == 0,
			  "regression (json.c pp_write_json_string): input %zu gives invalid JSON", i);
		free(out);
	}
}

static void regression_json_dump_with_surrogate_name_is_invalid(void)
{
	struct pp_thread t = {
		.tid = 7, .name = "w\xed\xa0\x80", .state = 'S', .reason = "sleep", .wait_seconds = -1,
		.complete = 1, .stack_taken = 1,
	};
	struct pp_dump d = { .pid = 7, .exe = "/srv/app", .time = 0, .threads = &t, .n = 1 };
	int rc;
	char *out = capture(pp_write_json, &d, &rc);
	CHECK_MSG(json_validate(out, strlen(out)) == 0,
		  "regression (json.c pp_write_json_string): a thread named \"w\\xed\\xa0\\x80\" makes "
		  "the whole --format=json document invalid");
	free(out);
}

/* In a child, writes s (copied with its NUL ending right before a
 * PROT_NONE page) as a JSON string.  Returns 1 if the child faulted. */
static int json_string_faults_on(const char *s)
{
	struct guarded g;
	const char *p = guard_copy(&g, s, strlen(s) + 1);
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		FILE *f = fopen("/dev/null", "w");
		pp_write_json_string(f, p);
		fclose(f);
		_exit(0);
	}
	int st = 0;
	waitpid(pid, &st, 0);
	guard_free(&g);
	return !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void regression_json_string_reads_past_nul(void)
{
	CHECK_MSG(!json_string_faults_on("\xf0"), "regression (json.c pp_write_json_string): "
		  "the name \"\\xf0\" is read 2 bytes past its NUL (faulted on a guard page)");
	CHECK_MSG(!json_string_faults_on("ab\xf0\x9f"), "regression (json.c pp_write_json_string): "
		  "the name \"ab\\xf0\\x9f\" is read 1 byte past its NUL (faulted on a guard page)");
	CHECK_MSG(!json_string_faults_on("\xe2"), "regression (json.c pp_write_json_string): "
		  "the name \"\\xe2\" is read 1 byte past its NUL (faulted on a guard page)");
}

static void regression_cstring_accepts_invalid_utf8(void)
{
	for (size_t i = 0; i < sizeof bad_utf8 / sizeof bad_utf8[0]; i++) {
		char want[64];
		bytewise(bad_utf8[i], 0, want, sizeof want);
		char *out = capture_str(pp_write_cstring, bad_utf8[i]);
		CHECK_MSG(strcmp(out, want) == 0, "regression (text.c pp_write_cstring/utf8_len): "
			  "input %zu written raw, expected %s", i, want);
		free(out);
	}
}

static void check_c_literal_roundtrip(const char *in, const char *shown)
{
	char *out = capture_str(pp_write_cstring, in);
	char *back = decode_c_literal(out);
	CHECK_MSG(back && strcmp(back, in) == 0,
		  "regression (text.c pp_write_cstring): input %s is written %s, which a C compiler "
		  "reads %s", shown, out, back ? "as different bytes" : "as an invalid literal");
	free(back);
	free(out);
}

static void regression_cstring_hex_escape_followed_by_hex_digit(void)
{
	check_c_literal_roundtrip("\x01" "F", "\"\\x01\" \"F\"");
	check_c_literal_roundtrip("\xff" "ab", "\"\\xff\" \"ab\"");
	check_c_literal_roundtrip("id\x1f" "2", "\"id\\x1f\" \"2\"");
}

int main(void)
{
	RUN(regression_json_string_accepts_invalid_utf8);
	RUN(regression_json_dump_with_surrogate_name_is_invalid);
	RUN(regression_json_string_reads_past_nul);
	RUN(regression_cstring_accepts_invalid_utf8);
	RUN(regression_cstring_hex_escape_followed_by_hex_digit);
	return check_summary("test_dump_bugs");
}
