/* duty.c — a thread that computes about 30% of the time and sleeps 70%,
 * measuring the truth itself, for wall profiles.
 *
 * Usage: duty TRUTH_FILE.  Thread "duty" loops: compute (busy) for 3 ms of
 * wall time, sleep 7 ms; every 100 ms it writes "BUSY_NS SLEEP_NS" (wall
 * nanoseconds spent in each so far) to TRUTH_FILE.  Prints "ready" once it
 * runs.  Runs until killed.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static const char *truth_path;
static atomic_int started;
static volatile uint64_t sink;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static __attribute__((noinline)) void compute_for(uint64_t ns)
{
	uint64_t end = now_ns() + ns, x = 1;
	while (now_ns() < end)
		for (int i = 0; i < 1000; i++)
			x = x * 6364136223846793005ULL + 1;
	sink = x;
}

static __attribute__((noinline)) void rest_for(uint64_t ns)
{
	struct timespec ts = { 0, (long)ns };
	nanosleep(&ts, NULL);
}

static void write_truth(uint64_t busy, uint64_t slept)
{
	char tmp[4096];
	snprintf(tmp, sizeof tmp, "%s.tmp", truth_path);
	FILE *f = fopen(tmp, "w");
	if (!f)
		return;
	fprintf(f, "%llu %llu\n", (unsigned long long)busy, (unsigned long long)slept);
	fclose(f);
	rename(tmp, truth_path);
}

static void *duty(void *arg)
{
	(void)arg;
	pthread_setname_np(pthread_self(), "duty");
	uint64_t busy = 0, slept = 0, last = now_ns();
	atomic_store(&started, 1);
	for (;;) {
		uint64_t t0 = now_ns();
		compute_for(3000000);
		uint64_t t1 = now_ns();
		rest_for(7000000);
		uint64_t t2 = now_ns();
		busy += t1 - t0;
		slept += t2 - t1;
		if (t2 - last > 100000000u) {
			write_truth(busy, slept);
			last = t2;
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: duty TRUTH_FILE\n");
		return 2;
	}
	truth_path = argv[1];
	pthread_t t;
	pthread_create(&t, NULL, duty, NULL);
	while (!atomic_load(&started))
		usleep(1000);
	printf("ready\n");
	fflush(stdout);
	for (;;)
		pause();
}
