/* hostile.c — targets built to confuse a profiler
 * (tests/integration/test_hostile.py).
 *
 * Usage: hostile names | maps COUNT | badsp
 *   names: the main thread and eight others get names (15 bytes at most)
 *          with quotes, backslashes, newlines, parentheses followed by
 *          fake /proc/PID/stat fields, control bytes and invalid UTF-8;
 *          each thread runs about 1 ms in 10, so CPU profiles see them.
 *   maps:  maps COUNT one-page regions with alternating protections, so
 *          /proc/PID/maps has a line for each (fewer if the kernel's
 *          vm.max_map_count refuses: "regions N" says how many); thread
 *          "maps-spin" spins.
 *   badsp: thread "bad-sp-spin" spins with rsp pointing at no mapping,
 *          thread "bad-sp-block" waits in a raw pause() syscall with a
 *          bogus rsp, thread "good-spin" spins normally.
 * Prints "ready" once every thread runs; then waits until killed.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))

static atomic_int started;
static volatile uint64_t sink;

/* Kept in sync with NAMES in test_hostile.py. */
static const char *const thread_names[] = {
	"q\"uote\\back",
	"new\nline",
	"x) R 1 2 3 4",
	"( 12) ( 9",
	"u\xff\xc3(\xc3\xa9\xe2\x82",
	"t\tx\x1b[31m\x01",
	"z\xff" "abc",
	")))))))))))))))",
};
static const char main_name[] = "main) Z 1 (x";

static NOINLINE void busy_ns(uint64_t ns)
{
	struct timespec a, b;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
	do {
		for (int i = 0; i < 1000; i++)
			sink = sink * 31 + 7;
		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
	} while ((uint64_t)(b.tv_sec - a.tv_sec) * 1000000000u + (uint64_t)b.tv_nsec -
		 (uint64_t)a.tv_nsec < ns);
}

static NOINLINE void *named_main(void *name)
{
	prctl(PR_SET_NAME, name);
	atomic_fetch_add(&started, 1);
	for (;;) {
		busy_ns(1000000);
		usleep(9000);
	}
	return NULL;
}

static NOINLINE void *spin_main(void *name)
{
	prctl(PR_SET_NAME, name);
	atomic_fetch_add(&started, 1);
	for (;;)
		busy_ns(100000000);
	return NULL;
}

/* rsp is set to an address no mapping holds, and never restored: the
 * thread spins (or waits) there until the process is killed. */
static NOINLINE void *bad_sp_spin(void *arg)
{
	(void)arg;
	prctl(PR_SET_NAME, "bad-sp-spin");
	atomic_fetch_add(&started, 1);
	__asm__ volatile("mov $0x10000, %%rsp\n"
			 "1: pause\n"
			 "jmp 1b\n" ::: "memory");
	__builtin_unreachable();
}

static NOINLINE void *bad_sp_block(void *arg)
{
	(void)arg;
	prctl(PR_SET_NAME, "bad-sp-block");
	atomic_fetch_add(&started, 1);
	__asm__ volatile("mov $0x20000, %%rsp\n"
			 "1: mov $34, %%eax\n"      /* SYS_pause */
			 "syscall\n"
			 "jmp 1b\n" ::: "rax", "rcx", "r11", "memory");
	__builtin_unreachable();
}

static int start(void *(*fn)(void *), const void *arg)
{
	pthread_t t;
	return pthread_create(&t, NULL, fn, (void *)arg);
}

static int make_names(void)
{
	size_t n = sizeof thread_names / sizeof thread_names[0];
	for (size_t i = 0; i < n; i++)
		if (start(named_main, thread_names[i]))
			return -1;
	prctl(PR_SET_NAME, main_name);
	return (int)n;
}

static int make_maps(long count)
{
	long page = sysconf(_SC_PAGESIZE), made = 0;
	char *base = mmap(NULL, (size_t)(count * page), PROT_NONE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (base == MAP_FAILED)
		return -1;
	for (long i = 0; i < count; i++, made++)
		if (mprotect(base + i * page, (size_t)page, i % 2 ? PROT_READ : PROT_READ | PROT_WRITE))
			break;
	printf("regions %ld\n", made);
	return start(spin_main, "maps-spin") ? -1 : 1;
}

static int make_badsp(void)
{
	if (start(bad_sp_spin, NULL) || start(bad_sp_block, NULL) || start(spin_main, "good-spin"))
		return -1;
	return 3;
}

int main(int argc, char **argv)
{
	int n = -1;
	if (argc >= 2 && strcmp(argv[1], "names") == 0)
		n = make_names();
	else if (argc >= 3 && strcmp(argv[1], "maps") == 0)
		n = make_maps(atol(argv[2]));
	else if (argc >= 2 && strcmp(argv[1], "badsp") == 0)
		n = make_badsp();
	else {
		fprintf(stderr, "usage: hostile names | maps COUNT | badsp\n");
		return 2;
	}
	if (n < 0) {
		perror("hostile");
		return 1;
	}
	while (atomic_load(&started) < n)
		usleep(1000);
	printf("ready\n");
	fflush(stdout);
	for (;;)
		pause();
}
