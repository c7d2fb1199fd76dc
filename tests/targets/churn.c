/* churn.c — threads created and exiting all the time, to dump and profile
 * mid-churn.
 *
 * Usage: churn [SPAWNERS [PROGRESS_FILE [RATE]]].  Each of SPAWNERS threads
 * (default 4) creates a short-lived thread, joins it, and starts over,
 * forever, paced so that all together create about RATE threads a second
 * (default 1000; 0: as fast as they can).  With PROGRESS_FILE, the main
 * thread writes "SPAWNED" there every 10 ms: how many threads were created
 * and joined so far, so a test can measure the real rate and see the
 * process make progress.  Prints "ready" once the spawners run.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static atomic_long spawned;
static long period_ns;          /* per spawner; 0: unpaced */

static void *short_lived(void *arg)
{
	(void)arg;
	volatile unsigned long x = 0;
	for (int i = 0; i < 20000; i++)
		x += (unsigned long)i;
	return NULL;
}

static void add_ns(struct timespec *t, long ns)
{
	t->tv_nsec += ns;
	while (t->tv_nsec >= 1000000000L) {
		t->tv_nsec -= 1000000000L;
		t->tv_sec++;
	}
}

/* Sleeps until *next, then moves it one period on; a spawner that fell
 * behind starts afresh from now instead of bursting to catch up. */
static void pace(struct timespec *next)
{
	struct timespec now;
	if (!period_ns)
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (now.tv_sec > next->tv_sec || (now.tv_sec == next->tv_sec && now.tv_nsec > next->tv_nsec))
		*next = now;
	else
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, next, NULL);
	add_ns(next, period_ns);
}

static void *spawner(void *arg)
{
	(void)arg;
	struct timespec next;
	pthread_setname_np(pthread_self(), "spawner");
	clock_gettime(CLOCK_MONOTONIC, &next);
	for (;;) {
		pthread_t t;
		pace(&next);
		if (pthread_create(&t, NULL, short_lived, NULL) == 0) {
			pthread_join(t, NULL);
			atomic_fetch_add(&spawned, 1);
		}
	}
	return NULL;
}

static void report(const char *path)
{
	FILE *f = path ? fopen(path, "w") : NULL;
	struct timespec ten_ms = { 0, 10000000L };
	for (;;) {
		if (f) {
			rewind(f);
			fprintf(f, "%ld\n", atomic_load(&spawned));
			fflush(f);
		}
		nanosleep(&ten_ms, NULL);
	}
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 4;
	long rate = argc > 3 ? atol(argv[3]) : 1000;
	if (n < 1)
		n = 1;
	period_ns = rate > 0 ? (long)n * 1000000000L / rate : 0;
	for (int i = 0; i < n; i++) {
		pthread_t t;
		pthread_create(&t, NULL, spawner, NULL);
	}
	while (atomic_load(&spawned) < 100)
		usleep(1000);
	printf("ready\n");
	fflush(stdout);
	report(argc > 2 ? argv[2] : NULL);
}
