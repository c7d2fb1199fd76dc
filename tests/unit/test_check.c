/* test_check.c — tests the test helpers of check.h themselves: a false
 * CHECK, a differing CHECK_STR_EQ / CHECK_INT_EQ / CHECK_U64_EQ and a NULL
 * string must each count as a failure, equal values must not, and a guarded
 * buffer must really fault one byte past its end.  If these helpers could
 * not fail, no other unit test could either.
 */
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>

#include "check.h"

/* Runs fn with stderr sent to /dev/null; returns how many failures it added
 * to the counters (which are then restored). */
static int failures_of(void (*fn)(void))
{
	int f0 = check_failures, c0 = check_count;
	fflush(stderr);
	int saved = dup(2), null = open("/dev/null", O_WRONLY);
	if (saved < 0 || null < 0) {
		perror("dup/open");
		exit(2);
	}
	dup2(null, 2);
	fn();
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	close(null);
	int added = check_failures - f0;
	check_failures = f0;
	check_count = c0;
	return added;
}

static void all_false(void)
{
	int zero = 0;
	CHECK(zero == 1);
	CHECK_MSG(zero == 1, "explained %d", zero);
	CHECK_STR_EQ("abc", "abd");
	CHECK_STR_EQ("abc", "ab");
	CHECK_STR_EQ((const char *)NULL, "x");
	CHECK_STR_EQ("x", (const char *)NULL);
	CHECK_INT_EQ(-1, 1);
	CHECK_U64_EQ(UINT64_C(0xffffffffffffffff), UINT64_C(0x7fffffffffffffff));
}

static void all_true(void)
{
	int one = 1;
	CHECK(one == 1);
	CHECK_MSG(one == 1, "never printed");
	CHECK_STR_EQ("caf\xc3\xa9", "caf\xc3\xa9");
	CHECK_STR_EQ((const char *)NULL, (const char *)NULL);
	CHECK_INT_EQ(-5, -5);
	CHECK_U64_EQ(UINT64_C(0xffffffffffffffff), UINT64_C(0xffffffffffffffff));
}

static void test_failing_checks_are_counted(void)
{
	CHECK_INT_EQ(failures_of(all_false), 8);
}

static void test_passing_checks_are_not_counted(void)
{
	CHECK_INT_EQ(failures_of(all_true), 0);
}

static void test_guard_copy_keeps_bytes(void)
{
	struct guarded g;
	const char *p = guard_copy(&g, "hello world", 5);
	CHECK(memcmp(p, "hello", 5) == 0);
	guard_free(&g);
}

/* Reads one byte past a guarded copy in a child; returns 1 if the read
 * faulted (the child died of SIGSEGV, or, under AddressSanitizer, which
 * catches SIGSEGV itself, exited non-zero), 0 if the byte was readable. */
static int child_reads_past(size_t len)
{
	struct guarded g;
	const char *p = guard_copy(&g, "0123456789", len);
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		volatile char c = p[len];
		(void)c;
		_exit(0);
	}
	int st = 0;
	waitpid(pid, &st, 0);
	guard_free(&g);
	if (WIFSIGNALED(st))
		return WTERMSIG(st) == SIGSEGV;
	return WIFEXITED(st) && WEXITSTATUS(st) != 0;
}

static void test_guard_copy_faults_past_end(void)
{
	CHECK(child_reads_past(10));
	CHECK(child_reads_past(0));
}

int main(void)
{
	RUN(test_failing_checks_are_counted);
	RUN(test_passing_checks_are_not_counted);
	RUN(test_guard_copy_keeps_bytes);
	RUN(test_guard_copy_faults_past_end);
	return check_summary("test_check");
}
