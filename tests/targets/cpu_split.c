/* cpu_split.c — a CPU profile's ground truth.
 *
 * Thread "busy" loops over three non-inlined functions, share_a, share_b
 * and share_c, doing 1, 2 and 3 units of work per round (about 17%, 33%
 * and 50% of its CPU).  It also measures the truth itself: the thread CPU
 * clock around each call, summed per function.  share_c spends its time in
 * an always_inline helper, mix_step, so profiles have an inline frame.
 * Thread "sleeper" sleeps and must never show up in a CPU profile.
 *
 * Usage: cpu_split TRUTH_FILE [SECONDS].  Every 50 ms "busy" writes
 * "A B C" (nanoseconds of CPU in share_a, share_b, share_c so far) to
 * TRUTH_FILE.  Prints "ready" once both threads run.  With SECONDS, the
 * process exits with status 3 after that long (for `pprofc run` and for
 * "the target exits during the profile"); else it runs until killed.
 * Build with -fno-ipa-icf so the three functions stay three functions.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))
#define UNIT 200000

static const char *truth_path;
static atomic_int started;
static volatile uint64_t sink;

static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline __attribute__((always_inline)) uint64_t mix_step(uint64_t x, int i)
{
	x ^= x << 13;
	x ^= x >> 7;
	x += (uint64_t)i;
	__asm__ volatile("" : "+r"(x));
	return x;
}

/* Three bodies that differ in their constants, so no compiler merges them. */
static NOINLINE uint64_t share_a(uint64_t x)
{
	for (int i = 0; i < 1 * UNIT; i++) {
		x = x * 6364136223846793005ULL + 1;
		__asm__ volatile("" : "+r"(x));
	}
	return x;
}

static NOINLINE uint64_t share_b(uint64_t x)
{
	for (int i = 0; i < 2 * UNIT; i++) {
		x = x * 2862933555777941757ULL + 3;
		__asm__ volatile("" : "+r"(x));
	}
	return x;
}

static NOINLINE uint64_t share_c(uint64_t x)
{
	for (int i = 0; i < 3 * UNIT; i++)
		x = mix_step(x, i);
	return x;
}

static void write_truth(const uint64_t t[3])
{
	char tmp[4096];
	snprintf(tmp, sizeof tmp, "%s.tmp", truth_path);
	FILE *f = fopen(tmp, "w");
	if (!f)
		return;
	fprintf(f, "%llu %llu %llu\n", (unsigned long long)t[0], (unsigned long long)t[1],
		(unsigned long long)t[2]);
	fclose(f);
	rename(tmp, truth_path);        /* readers never see half a line */
}

static void *busy(void *arg)
{
	(void)arg;
	pthread_setname_np(pthread_self(), "busy");
	uint64_t (*const fns[3])(uint64_t) = { share_a, share_b, share_c };
	uint64_t truth[3] = { 0 }, x = 1, last_write = 0;
	atomic_fetch_add(&started, 1);
	for (;;) {
		for (int k = 0; k < 3; k++) {
			uint64_t t0 = thread_cpu_ns();
			x = fns[k](x);
			truth[k] += thread_cpu_ns() - t0;
		}
		sink = x;
		uint64_t now = thread_cpu_ns();
		if (now - last_write > 50000000u) {
			write_truth(truth);
			last_write = now;
		}
	}
	return NULL;
}

static void *sleeper(void *arg)
{
	(void)arg;
	pthread_setname_np(pthread_self(), "sleeper");
	atomic_fetch_add(&started, 1);
	for (;;)
		sleep(3600);
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: cpu_split TRUTH_FILE [SECONDS]\n");
		return 2;
	}
	truth_path = argv[1];
	pthread_t t;
	pthread_create(&t, NULL, busy, NULL);
	pthread_create(&t, NULL, sleeper, NULL);
	while (atomic_load(&started) < 2)
		usleep(1000);
	printf("ready\n");
	fflush(stdout);
	if (argc > 2) {
		usleep((useconds_t)(atof(argv[2]) * 1e6));
		exit(3);
	}
	for (;;)
		pause();
}
