/* test_proc_maps.c — tests attach_parse_maps(), attach_maps_find() and
 * attach_maps_free() (attach/proc.h): file-backed, anonymous, "[stack]",
 * " (deleted)" and space-holding paths; a 100000-line maps buffer; lookups
 * at the start (inclusive) and end (exclusive) of every mapping, in gaps,
 * before the first and after the last; and this process's own maps.
 */
#include "attach/proc.h"
#include "check.h"

static int parse_maps(const char *s, size_t len, struct attach_maps *m)
{
	struct guarded g;
	const char *p = guard_copy(&g, s, len);
	int rc = attach_parse_maps(p, len, m);
	guard_free(&g);
	return rc;
}

/* The layout of /proc/self/maps on this machine, with a deleted library,
 * a path holding spaces and anonymous mappings added. */
static const char maps_text[] =
	"5601c07e1000-5601c07e3000 r--p 00000000 fe:00 247134                     /usr/bin/cat\n"
	"5601c07e3000-5601c07e8000 r-xp 00002000 fe:00 247134                     /usr/bin/cat\n"
	"5601cdcee000-5601cdd0f000 rw-p 00000000 00:00 0                          [heap]\n"
	"7fa3776c7000-7fa3776e9000 rw-p 00000000 00:00 0 \n"
	"7fa3776e9000-7fa377740000 r-xp 00001000 fe:00 320475                     /opt/my app/lib x.so\n"
	"7fa377740000-7fa377741000 r-xp 0002a000 fe:00 99                         /tmp/libjit.so (deleted)\n"
	"7fa377741000-7fa377742000 ---p 00000000 00:00 0\n"
	"7ffd5a3c1000-7ffd5a3e2000 rw-p 00000000 00:00 0                          [stack]\n"
	"ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]\n";

static void test_maps_fields(void)
{
	struct attach_maps m;
	CHECK_INT_EQ(parse_maps(maps_text, strlen(maps_text), &m), 0);
	CHECK_INT_EQ(m.n, 9);
	if (m.n != 9) {
		attach_maps_free(&m);
		return;
	}
	CHECK_U64_EQ(m.v[0].start, 0x5601c07e1000);
	CHECK_U64_EQ(m.v[0].end, 0x5601c07e3000);
	CHECK_U64_EQ(m.v[0].offset, 0);
	CHECK_U64_EQ(m.v[0].inode, 247134);
	CHECK_STR_EQ(m.v[0].perms, "r--p");
	CHECK_STR_EQ(m.v[0].path, "/usr/bin/cat");

	CHECK_STR_EQ(m.v[1].perms, "r-xp");
	CHECK_U64_EQ(m.v[1].offset, 0x2000);

	CHECK_STR_EQ(m.v[2].path, "[heap]");
	CHECK_U64_EQ(m.v[2].inode, 0);

	/* Anonymous, with and without the kernel's trailing space. */
	CHECK_STR_EQ(m.v[3].path, "");
	CHECK_STR_EQ(m.v[3].perms, "rw-p");
	CHECK_STR_EQ(m.v[6].path, "");
	CHECK_STR_EQ(m.v[6].perms, "---p");

	CHECK_STR_EQ(m.v[4].path, "/opt/my app/lib x.so");
	CHECK_U64_EQ(m.v[4].offset, 0x1000);
	CHECK_U64_EQ(m.v[4].inode, 320475);

	/* The path is kept as the kernel wrote it; consumers strip the marker. */
	CHECK_STR_EQ(m.v[5].path, "/tmp/libjit.so (deleted)");
	CHECK_U64_EQ(m.v[5].offset, 0x2a000);
	CHECK_U64_EQ(m.v[5].inode, 99);

	CHECK_STR_EQ(m.v[7].path, "[stack]");
	CHECK_U64_EQ(m.v[7].start, 0x7ffd5a3c1000);
	CHECK_U64_EQ(m.v[7].end, 0x7ffd5a3e2000);

	CHECK_U64_EQ(m.v[8].start, UINT64_C(0xffffffffff600000));
	CHECK_STR_EQ(m.v[8].perms, "--xp");
	CHECK_STR_EQ(m.v[8].path, "[vsyscall]");
	attach_maps_free(&m);
	CHECK(m.v == NULL && m.n == 0);
}

static void test_maps_find_small(void)
{
	struct attach_maps m;
	CHECK_INT_EQ(parse_maps(maps_text, strlen(maps_text), &m), 0);
	if (m.n != 9) {
		CHECK_INT_EQ(m.n, 9);
		attach_maps_free(&m);
		return;
	}
	/* Before the first, inside, at the boundary of two adjacent mappings. */
	CHECK(attach_maps_find(&m, 0) == NULL);
	CHECK(attach_maps_find(&m, 0x5601c07e0fff) == NULL);
	CHECK(attach_maps_find(&m, 0x5601c07e1000) == &m.v[0]);
	CHECK(attach_maps_find(&m, 0x5601c07e2fff) == &m.v[0]);
	CHECK(attach_maps_find(&m, 0x5601c07e3000) == &m.v[1]);
	CHECK(attach_maps_find(&m, 0x5601c07e7fff) == &m.v[1]);
	/* The gap between the text and the heap. */
	CHECK(attach_maps_find(&m, 0x5601c07e8000) == NULL);
	CHECK(attach_maps_find(&m, 0x5601cdcedfff) == NULL);
	CHECK(attach_maps_find(&m, 0x5601cdcee000) == &m.v[2]);
	/* Adjacent anonymous / file / deleted / anonymous run. */
	CHECK(attach_maps_find(&m, 0x7fa3776e8fff) == &m.v[3]);
	CHECK(attach_maps_find(&m, 0x7fa3776e9000) == &m.v[4]);
	CHECK(attach_maps_find(&m, 0x7fa377740000) == &m.v[5]);
	CHECK(attach_maps_find(&m, 0x7fa377741000) == &m.v[6]);
	CHECK(attach_maps_find(&m, 0x7fa377742000) == NULL);
	CHECK(attach_maps_find(&m, 0x7ffd5a3d0000) == &m.v[7]);
	CHECK(attach_maps_find(&m, 0x7ffd5a3e2000) == NULL);
	/* The last mapping and past it. */
	CHECK(attach_maps_find(&m, UINT64_C(0xffffffffff600000)) == &m.v[8]);
	CHECK(attach_maps_find(&m, UINT64_C(0xffffffffff600fff)) == &m.v[8]);
	CHECK(attach_maps_find(&m, UINT64_C(0xffffffffff601000)) == NULL);
	CHECK(attach_maps_find(&m, UINT64_MAX) == NULL);
	attach_maps_free(&m);
}

static void test_maps_empty(void)
{
	struct attach_maps m;
	CHECK_INT_EQ(parse_maps("", 0, &m), 0);
	CHECK_INT_EQ(m.n, 0);
	CHECK(attach_maps_find(&m, 0) == NULL);
	CHECK(attach_maps_find(&m, 0x400000) == NULL);
	attach_maps_free(&m);
	CHECK_INT_EQ(parse_maps("\n\n", 2, &m), 0);
	CHECK_INT_EQ(m.n, 0);
	attach_maps_free(&m);
}

static void test_maps_not_nul_terminated(void)
{
	/* The last line has no newline and the buffer ends inside its path:
	 * the path is what lies inside len, nothing more. */
	static const char s[] =
		"1000-2000 r-xp 00000000 08:01 12 /bin/a\n"
		"3000-4000 r--p 00001000 08:01 13 /lib/b.so.6XYZ";
	struct attach_maps m;
	CHECK_INT_EQ(parse_maps(s, strlen(s) - 3, &m), 0);
	CHECK_INT_EQ(m.n, 2);
	if (m.n == 2) {
		CHECK_STR_EQ(m.v[0].path, "/bin/a");
		CHECK_STR_EQ(m.v[1].path, "/lib/b.so.6");
		CHECK_U64_EQ(m.v[1].offset, 0x1000);
	}
	attach_maps_free(&m);
}

static void test_maps_malformed_lines_do_not_overread(void)
{
	/* Truncated lines, each alone at the end of a guarded buffer: whatever
	 * the parser decides, it must not read past len or invent a mapping
	 * from a line that lacks its address range. */
	static const char *const bad[] = {
		"1000", "1000-", "1000-2000", "1000-2000 ", "1000-2000 r-", "1000-2000 r-xp",
		"1000-2000 r-xp 0000", "1000-2000 r-xp 00000000 08:01", "garbage line",
		"-2000 r-xp 00000000 08:01 12 /x",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct attach_maps m;
		int rc = parse_maps(bad[i], strlen(bad[i]), &m);
		CHECK_MSG(rc == -1 || m.n == 0 || (m.n == 1 && m.v[0].start == 0x1000),
			  "input \"%s\": rc %d, n %zu", bad[i], rc, m.n);
		if (rc == 0)
			attach_maps_free(&m);
	}
}

#define HUGE_LINES 100000
#define HUGE_BASE UINT64_C(0x7f0000000000)

/* Line i maps [BASE + i*0x3000, + 0x2000): every mapping is followed by a
 * one-page gap. */
static char *huge_maps(size_t *len)
{
	size_t cap = (size_t)HUGE_LINES * 128, n = 0;
	char *s = malloc(cap);
	if (!s)
		abort();
	for (size_t i = 0; i < HUGE_LINES; i++) {
		uint64_t a = HUGE_BASE + i * 0x3000, b = a + 0x2000;
		n += (size_t)snprintf(s + n, cap - n, "%" PRIx64 "-%" PRIx64 " %s %08zx fd:01 %zu%s\n",
				      a, b, i % 3 == 0 ? "r-xp" : "rw-p", i * 0x1000, i + 1,
				      i % 2 ? "                          /usr/lib/lib with space.so" :
					      "");
	}
	*len = n;
	return s;
}

static void test_maps_huge(void)
{
	size_t len;
	char *text = huge_maps(&len);
	struct attach_maps m;
	CHECK_INT_EQ(parse_maps(text, len, &m), 0);
	free(text);
	CHECK_INT_EQ(m.n, HUGE_LINES);
	if (m.n != HUGE_LINES) {
		attach_maps_free(&m);
		return;
	}
	size_t bad_fields = 0, bad_find = 0;
	for (size_t i = 0; i < HUGE_LINES; i++) {
		const struct attach_map *e = &m.v[i];
		uint64_t a = HUGE_BASE + i * 0x3000, b = a + 0x2000;
		if (e->start != a || e->end != b || e->offset != i * 0x1000 || e->inode != i + 1 ||
		    strcmp(e->perms, i % 3 == 0 ? "r-xp" : "rw-p") != 0 ||
		    strcmp(e->path, i % 2 ? "/usr/lib/lib with space.so" : "") != 0) {
			if (bad_fields++ < 5)
				fprintf(stderr, "    line %zu parsed wrong\n", i);
		}
		/* start inclusive, end exclusive, the gap page belongs to nobody */
		if (attach_maps_find(&m, a) != e || attach_maps_find(&m, b - 1) != e ||
		    attach_maps_find(&m, a + 0x1234) != e || attach_maps_find(&m, b) != NULL ||
		    attach_maps_find(&m, b + 0xfff) != NULL) {
			if (bad_find++ < 5)
				fprintf(stderr, "    lookups around line %zu wrong\n", i);
		}
	}
	CHECK_INT_EQ(bad_fields, 0);
	CHECK_INT_EQ(bad_find, 0);
	CHECK(attach_maps_find(&m, 0) == NULL);
	CHECK(attach_maps_find(&m, HUGE_BASE - 1) == NULL);
	uint64_t last_end = HUGE_BASE + (HUGE_LINES - 1) * UINT64_C(0x3000) + 0x2000;
	CHECK(attach_maps_find(&m, last_end - 1) == &m.v[HUGE_LINES - 1]);
	CHECK(attach_maps_find(&m, last_end) == NULL);
	CHECK(attach_maps_find(&m, UINT64_MAX) == NULL);
	attach_maps_free(&m);
}

static int a_stack_variable_lives_here(const struct attach_maps *m)
{
	volatile int local = 1;
	const struct attach_map *e = attach_maps_find(m, (uint64_t)(uintptr_t)&local);
	return e && strcmp(e->path, "[stack]") == 0 && local;
}

static void test_maps_of_this_process(void)
{
	char *buf = NULL;
	size_t len = 0;
	CHECK_INT_EQ(attach_read_file("/proc/self/maps", &buf, &len), 0);
	if (!buf)
		return;
	struct attach_maps m;
	CHECK_INT_EQ(parse_maps(buf, len, &m), 0);
	free(buf);
	CHECK(m.n > 3);
	/* Sorted and non-overlapping, as the binary search assumes. */
	for (size_t i = 1; i < m.n; i++)
		CHECK_MSG(m.v[i - 1].end <= m.v[i].start, "maps line %zu out of order", i);
	/* Our own code is in an executable mapping of our own file. */
	char exe[4096];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	CHECK(n > 0);
	exe[n > 0 ? n : 0] = 0;
	const struct attach_map *e = attach_maps_find(&m, (uint64_t)(uintptr_t)&test_maps_of_this_process);
	CHECK(e != NULL);
	if (e) {
		CHECK_INT_EQ(e->perms[2], 'x');
		CHECK_STR_EQ(e->path, exe);
	}
	CHECK(a_stack_variable_lives_here(&m));
	attach_maps_free(&m);
}

int main(void)
{
	RUN(test_maps_fields);
	RUN(test_maps_find_small);
	RUN(test_maps_empty);
	RUN(test_maps_not_nul_terminated);
	RUN(test_maps_malformed_lines_do_not_overread);
	RUN(test_maps_huge);
	RUN(test_maps_of_this_process);
	return check_summary("test_proc_maps");
}
