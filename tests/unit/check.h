/* check.h — the unit tests' shared helpers: assertion macros that print
 * file:line and both values and count failures, a case runner, and a
 * "guarded" buffer whose last byte sits just before an inaccessible page, so
 * a parser that reads past the length it was given crashes (and the test
 * fails) instead of passing by luck.
 *
 * Header-only: every helper is static inline, each test is one .c file.
 */
#ifndef PPROFC_TESTS_UNIT_CHECK_H
#define PPROFC_TESTS_UNIT_CHECK_H

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int check_failures;      /* failed checks, whole program */
static int check_count;         /* checks evaluated, whole program */
static int check_cases;         /* cases run */
static int check_failed_cases;  /* cases with at least one failed check */

/* Prints n bytes of s between quotes, with C escapes for anything that is
 * not printable ASCII, so a failure shows exactly which bytes differ. */
static inline void check_print_escaped(FILE *f, const char *s, size_t n)
{
	fputc('"', f);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\n')
			fputs("\\n", f);
		else if (c == '\t')
			fputs("\\t", f);
		else if (c == '\\' || c == '"')
			fprintf(f, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			fprintf(f, "\\x%02x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

#define CHECK(cond)                                                              \
	do {                                                                     \
		check_count++;                                                   \
		if (!(cond)) {                                                   \
			check_failures++;                                        \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
		}                                                                \
	} while (0)

/* CHECK with an explanation (printf format) printed on failure. */
#define CHECK_MSG(cond, ...)                                                     \
	do {                                                                     \
		check_count++;                                                   \
		if (!(cond)) {                                                   \
			check_failures++;                                        \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n    ", __FILE__, __LINE__, #cond); \
			fprintf(stderr, __VA_ARGS__);                            \
			fputc('\n', stderr);                                     \
		}                                                                \
	} while (0)

static inline void check_str_eq(const char *file, int line, const char *expr,
				const char *actual, const char *expected)
{
	check_count++;
	if (actual == expected)
		return;
	if (actual && expected && strcmp(actual, expected) == 0)
		return;
	check_failures++;
	fprintf(stderr, "%s:%d: CHECK_STR_EQ failed: %s\n", file, line, expr);
	if (!actual || !expected) {
		fprintf(stderr, "    actual:   %s\n    expected: %s\n",
			actual ? "(a string)" : "NULL", expected ? "(a string)" : "NULL");
		if (actual) {
			fputs("    actual:   ", stderr);
			check_print_escaped(stderr, actual, strlen(actual));
			fputc('\n', stderr);
		}
		if (expected) {
			fputs("    expected: ", stderr);
			check_print_escaped(stderr, expected, strlen(expected));
			fputc('\n', stderr);
		}
		return;
	}
	size_t i = 0, lineno = 1;
	while (actual[i] && actual[i] == expected[i]) {
		if (actual[i] == '\n')
			lineno++;
		i++;
	}
	fprintf(stderr, "    first difference at byte %zu (line %zu)\n", i, lineno);
	fputs("    actual:   ", stderr);
	check_print_escaped(stderr, actual, strlen(actual));
	fputs("\n    expected: ", stderr);
	check_print_escaped(stderr, expected, strlen(expected));
	fputc('\n', stderr);
}
#define CHECK_STR_EQ(actual, expected) \
	check_str_eq(__FILE__, __LINE__, #actual " == " #expected, (actual), (expected))

static inline void check_int_eq(const char *file, int line, const char *expr,
				long long actual, long long expected)
{
	check_count++;
	if (actual == expected)
		return;
	check_failures++;
	fprintf(stderr, "%s:%d: CHECK_INT_EQ failed: %s\n    actual: %lld, expected: %lld\n",
		file, line, expr, actual, expected);
}
#define CHECK_INT_EQ(actual, expected) \
	check_int_eq(__FILE__, __LINE__, #actual " == " #expected, (long long)(actual), (long long)(expected))

static inline void check_u64_eq(const char *file, int line, const char *expr,
				uint64_t actual, uint64_t expected)
{
	check_count++;
	if (actual == expected)
		return;
	check_failures++;
	fprintf(stderr, "%s:%d: CHECK_U64_EQ failed: %s\n    actual: 0x%" PRIx64
		", expected: 0x%" PRIx64 "\n", file, line, expr, actual, expected);
}
#define CHECK_U64_EQ(actual, expected) \
	check_u64_eq(__FILE__, __LINE__, #actual " == " #expected, (uint64_t)(actual), (uint64_t)(expected))

/* Runs one case.  A case that evaluated no check at all counts as failed:
 * a test that cannot fail is a test that tests nothing. */
static inline void check_run(const char *name, void (*fn)(void))
{
	int f0 = check_failures, c0 = check_count;
	fn();
	check_cases++;
	if (check_count == c0) {
		check_failures++;
		fprintf(stderr, "%s: ran no checks\n", name);
	}
	if (check_failures != f0) {
		check_failed_cases++;
		fprintf(stderr, "FAIL %s\n", name);
	} else {
		printf("ok   %s\n", name);
	}
}
#define RUN(fn) check_run(#fn, fn)

/* The program's exit status: 0 only if every check passed. */
static inline int check_summary(const char *prog)
{
	fflush(stdout);
	fprintf(check_failures ? stderr : stdout,
		"%s: %d cases (%d failed), %d checks, %d failed\n",
		prog, check_cases, check_failed_cases, check_count, check_failures);
	return check_failures ? 1 : 0;
}

/* ---- guarded buffers ---------------------------------------------------- */

struct guarded {
	void *base;
	size_t maplen;
};

/* Copies len bytes of s so that the copy ends exactly where a PROT_NONE page
 * begins; no NUL follows.  Returns the copy (never NULL: aborts on failure). */
static inline const char *guard_copy(struct guarded *g, const void *s, size_t len)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t data = (len + page - 1) / page * page;
	g->maplen = data + page;
	g->base = mmap(NULL, g->maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (g->base == MAP_FAILED || mprotect((char *)g->base + data, page, PROT_NONE)) {
		perror("guard_copy: mmap/mprotect");
		abort();
	}
	char *p = (char *)g->base + data - len;
	if (len)
		memcpy(p, s, len);
	return p;
}

static inline void guard_free(struct guarded *g)
{
	if (g->base)
		munmap(g->base, g->maplen);
	g->base = NULL;
}

#endif
