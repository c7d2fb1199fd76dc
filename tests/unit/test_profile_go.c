/* test_profile_go.c — checks profiles against the real reader, `go tool
 * pprof` (docs/FORMATS.md §1: its complaints are the ones that matter): what
 * pp_profile_write writes, and what it writes after a read back, is
 * accepted by `go tool pprof -raw` with status 0 and nothing on stderr, and
 * shows the functions, the inline chain and the labels; a profile that Go
 * has re-encoded (`-proto`) is read by pp_profile_read and gives the same
 * folded and top reports as the original.  Skipped (status 77) when go is
 * not installed.
 */
#include <sys/wait.h>

#include "test_profile_common.c"

static char dir[64];

static int go_installed(void)
{
	FILE *f = popen("go version 2>/dev/null", "r");
	if (!f)
		return 0;
	char line[256] = "";
	int got = fgets(line, sizeof line, f) != NULL;
	int st = pclose(f);
	return got && strncmp(line, "go version", 10) == 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static char *path_in_dir(const char *name)
{
	static char paths[8][128];
	static int next;
	char *p = paths[next++ % 8];
	snprintf(p, sizeof paths[0], "%s/%s", dir, name);
	return p;
}

static char *read_text(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	size_t len;
	char *s = (char *)slurp(f, &len);
	fclose(f);
	s = realloc(s, len + 1);
	if (s)
		s[len] = 0;
	return s;
}

/* Runs `go tool pprof ARGS FILE`: its exit status; *out and *err receive
 * stdout and stderr (malloc'ed). */
static int go_pprof(const char *args, const char *file, char **out, char **err)
{
	char cmd[1024];
	const char *o = path_in_dir("stdout"), *e = path_in_dir("stderr");
	snprintf(cmd, sizeof cmd, "go tool pprof %s '%s' >'%s' 2>'%s'", args, file, o, e);
	int st = system(cmd);
	*out = read_text(o);
	*err = read_text(e);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void write_file(struct pp_profile *p, const char *path)
{
	FILE *f = fopen(path, "wb");
	CHECK(f != NULL);
	if (!f)
		return;
	CHECK_INT_EQ(pp_profile_write(p, EX_DURATION, f), 0);
	CHECK_INT_EQ(fclose(f), 0);
}

/* go tool pprof -raw accepts the file silently; the output shows s. */
static void check_raw(const char *file, const char *const *want, size_t n)
{
	char *out = NULL, *err = NULL;
	int st = go_pprof("-raw", file, &out, &err);
	CHECK_MSG(st == 0, "go tool pprof -raw exited with %d: %s", st, err ? err : "");
	CHECK_MSG(err && err[0] == 0, "go tool pprof -raw wrote on stderr: %s", err ? err : "(none)");
	for (size_t i = 0; out && i < n; i++)
		CHECK_MSG(strstr(out, want[i]) != NULL, "-raw output lacks \"%s\":\n%s", want[i], out);
	CHECK(out != NULL);
	free(out);
	free(err);
}

static const char *const raw_want[] = {
	"samples/count cpu/nanoseconds",
	"          4   40000000: 1 2 3 ",
	"thread:[worker-1]",
	"tid:[101]",
	"futex_wait ../sysdeps/nptl/futex-internal.h:146 s=140",
	"             __lll_lock_wait ./nptl/lowlevellock.c:49 s=40",
	"ns::work(int) /src/app.cc:12 s=10(_ZN2ns4workEi)",
	"/srv/app a1b2c3d4e5 [FN][FL][LN][IN]",
	"Period: 10000000",
	"Duration: 2.5s",
};

static void test_go_accepts_written_profile(void)
{
	struct example_ids ids;
	struct pp_profile *p = example_profile(&ids);
	const char *file = path_in_dir("written.pb.gz");
	write_file(p, file);
	check_raw(file, raw_want, sizeof raw_want / sizeof raw_want[0]);
	pp_profile_free(p);
}

static void test_go_accepts_profile_after_read_back(void)
{
	struct example_ids ids;
	struct pp_profile *p = example_profile(&ids);
	size_t len;
	uint8_t *gz = write_bytes(p, EX_DURATION, &len);
	char err[256] = "";
	struct pp_profile *q = read_from(gz, len, err, sizeof err);
	CHECK_MSG(q != NULL, "%s", err);
	if (q) {
		const char *file = path_in_dir("reread.pb.gz");
		write_file(q, file);
		check_raw(file, raw_want, sizeof raw_want / sizeof raw_want[0]);
	}
	free(gz);
	pp_profile_free(q);
	pp_profile_free(p);
}

/* Go's own encoding of the profile (its string table, its order, its
 * gzip) reads back to the same reports. */
static void test_read_profile_written_by_go(void)
{
	struct example_ids ids;
	struct pp_profile *p = example_profile(&ids);
	const char *file = path_in_dir("ours.pb.gz"), *go_file = path_in_dir("go.pb.gz");
	write_file(p, file);
	char cmd[512];
	snprintf(cmd, sizeof cmd, "go tool pprof -proto '%s' >'%s' 2>/dev/null", file, go_file);
	int st = system(cmd);
	CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "go tool pprof -proto failed");
	FILE *f = fopen(go_file, "rb");
	char err[256] = "";
	struct pp_profile *q = f ? pp_profile_read(f, err, sizeof err) : NULL;
	if (f)
		fclose(f);
	CHECK_MSG(q != NULL, "reading Go's profile: %s", err);
	if (q) {
		char *a = report_of(p, 'f'), *b = report_of(q, 'f');
		CHECK_STR_EQ(b, a);
		free(a);
		free(b);
		a = report_of(p, 't'), b = report_of(q, 't');
		CHECK_STR_EQ(b, a);
		free(a);
		free(b);
		CHECK_INT_EQ(pp_profile_count(q, 's'), pp_profile_count(p, 's'));
	}
	pp_profile_free(q);
	pp_profile_free(p);
}

static void remove_dir(void)
{
	const char *names[] = { "stdout", "stderr", "written.pb.gz", "reread.pb.gz", "ours.pb.gz",
				"go.pb.gz" };
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		unlink(path_in_dir(names[i]));
	rmdir(dir);
}

int main(void)
{
	if (!go_installed()) {
		printf("go is not installed: skipped\n");
		return 77;
	}
	const char *tmp = getenv("TMPDIR");
	snprintf(dir, sizeof dir, "%s/pprofc-go-XXXXXX", tmp && strlen(tmp) < 32 && !strchr(tmp, '\'') ? tmp : "/tmp");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	RUN(test_go_accepts_written_profile);
	RUN(test_go_accepts_profile_after_read_back);
	RUN(test_read_profile_written_by_go);
	remove_dir();
	return check_summary("test_profile_go");
}
