/* dump_fixtures.h — what the pprofout/ unit tests share: capturing a
 * writer's output in memory, decoding a C string literal the way a C
 * compiler does (to check pp_write_cstring's output really is one), and
 * the frames of the docs/FORMATS.md §2 example thread.
 */
#ifndef PPROFC_TESTS_UNIT_DUMP_FIXTURES_H
#define PPROFC_TESTS_UNIT_DUMP_FIXTURES_H

#include "check.h"
#include "pprofout/dump.h"

#define LIBC "/usr/lib/x86_64-linux-gnu/libc.so.6"

/* docs/FORMATS.md §2: __lll_lock_wait <- ___pthread_mutex_lock <- worker_loop
 * (inlined into worker_main) <- worker_main <- start_thread.  The inlined
 * frame carries an offset that must not be printed. */
static const struct pp_frame example_frames[] __attribute__((unused)) = {
	{ .pc = 0x7f636af4712b, .function = "__lll_lock_wait", .file = "./nptl/lowlevellock.c",
	  .line = 49, .has_offset = 1, .func_offset = 0x6b, .module = LIBC, .module_offset = 0x8912b },
	{ .pc = 0x7f636af4d482, .function = "___pthread_mutex_lock",
	  .file = "./nptl/pthread_mutex_lock.c", .line = 93, .has_offset = 1, .func_offset = 0x52,
	  .module = LIBC, .module_offset = 0x8f482 },
	{ .pc = 0x55d8794278c7, .function = "worker_loop", .file = "/src/worker.c", .line = 88,
	  .inlined = 1, .has_offset = 1, .func_offset = 0x17, .module = "/srv/app",
	  .module_offset = 0x18c7 },
	{ .pc = 0x55d8794278c7, .function = "worker_main", .file = "/src/worker.c", .line = 120,
	  .has_offset = 1, .func_offset = 0x17, .module = "/srv/app", .module_offset = 0x18c7 },
	{ .pc = 0x7f636af4a1f5, .function = "start_thread", .file = "./nptl/pthread_create.c",
	  .line = 442, .has_offset = 1, .func_offset = 0xd5, .module = LIBC,
	  .module_offset = 0x8c1f5 },
};
#define EXAMPLE_NFRAMES (sizeof example_frames / sizeof example_frames[0])

/* Runs a writer into memory; returns the malloc'ed text (never NULL). */
static inline char *capture(int (*writer)(FILE *, const struct pp_dump *),
			    const struct pp_dump *d, int *rc)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f) {
		perror("open_memstream");
		abort();
	}
	*rc = writer(f, d);
	fclose(f);
	return buf;
}

static inline char *capture_str(void (*writer)(FILE *, const char *), const char *s)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f) {
		perror("open_memstream");
		abort();
	}
	writer(f, s);
	fclose(f);
	return buf;
}

static inline int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes the inside of a C string literal as C11 6.4.4.4 reads it (a hex
 * escape takes every hex digit that follows, an octal one up to three
 * digits).  Returns a malloc'ed string, or NULL when s is not a valid
 * literal body: a raw '"', newline or control byte, a bad or unfinished
 * escape, a hex escape above 0xff, or an escape producing a NUL. */
static inline char *decode_c_literal(const char *s)
{
	size_t n = strlen(s), o = 0;
	char *out = malloc(n + 1);
	if (!out)
		abort();
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\n' || c < 0x20 || c == 0x7f)
			goto bad;
		if (c != '\\') {
			out[o++] = (char)c;
			continue;
		}
		if (++i >= n)
			goto bad;
		unsigned long v;
		switch (s[i]) {
		case '"': case '\\': case '\'': case '?': v = (unsigned char)s[i]; break;
		case 'a': v = '\a'; break;
		case 'b': v = '\b'; break;
		case 'f': v = '\f'; break;
		case 'n': v = '\n'; break;
		case 'r': v = '\r'; break;
		case 't': v = '\t'; break;
		case 'v': v = '\v'; break;
		case 'x':
			if (i + 1 >= n || hexval(s[i + 1]) < 0)
				goto bad;
			v = 0;
			while (i + 1 < n && hexval(s[i + 1]) >= 0) {
				v = v * 16 + (unsigned long)hexval(s[++i]);
				if (v > 0xff)
					goto bad;
			}
			break;
		default:
			if (s[i] < '0' || s[i] > '7')
				goto bad;
			v = (unsigned long)(s[i] - '0');
			for (int k = 0; k < 2 && i + 1 < n && s[i + 1] >= '0' && s[i + 1] <= '7'; k++)
				v = v * 8 + (unsigned long)(s[++i] - '0');
			if (v > 0xff)
				goto bad;
		}
		if (v == 0)
			goto bad;
		out[o++] = (char)v;
	}
	out[o] = 0;
	return out;
bad:
	free(out);
	return NULL;
}

#endif
