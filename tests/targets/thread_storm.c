/* thread_storm.c — threads created without pause, each alive a short
 * while, so that any moment a profiler starts watching falls amid
 * creations (test_threadcreate.py: a thread created while the
 * threadcreate watch begins is also read alive; it must be counted once,
 * and its stack freed once).
 *
 * Usage: thread_storm [LIVE [LIFE_MS]].  One storm thread (start routine
 * storm) creates detached threads (sleeper) through create_sleeper(), as
 * fast as it can while fewer than LIVE (default 100) are alive; each
 * sleeps LIFE_MS (default 20) in nanosleep and exits.  Prints "ready" once
 * the storm runs; at end of input (or a "quit" line) the storm stops, the
 * sleepers are waited for, and it prints "created N" and exits 0.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static int live, stop;
static long created;
static int max_live = 100;
static long life_ns = 20000000;

static void *sleeper(void *arg)
{
	(void)arg;
	struct timespec ts = { life_ns / 1000000000, life_ns % 1000000000 };
	while (nanosleep(&ts, &ts) != 0)
		;
	pthread_mutex_lock(&mu);
	live--;
	pthread_cond_broadcast(&changed);
	pthread_mutex_unlock(&mu);
	return NULL;
}

/* One sleeper; mu is held. */
__attribute__((noinline)) static void create_sleeper(void)
{
	pthread_t t;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 64 << 10);
	if (pthread_create(&t, &attr, sleeper, NULL) != 0) {
		perror("pthread_create");
		exit(1);
	}
	pthread_attr_destroy(&attr);
	live++;
	created++;
	__asm__ volatile("" ::: "memory");
}

static void *storm(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&mu);
	while (!stop) {
		if (live < max_live)
			create_sleeper();
		else
			pthread_cond_wait(&changed, &mu);
	}
	pthread_mutex_unlock(&mu);
	return NULL;
}

int main(int argc, char **argv)
{
	char line[64];
	pthread_t t;
	if (argc > 1)
		max_live = atoi(argv[1]);
	if (argc > 2)
		life_ns = atol(argv[2]) * 1000000;
	if (pthread_create(&t, NULL, storm, NULL) != 0) {
		perror("pthread_create");
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	while (fgets(line, sizeof line, stdin) && strncmp(line, "quit", 4) != 0)
		;
	pthread_mutex_lock(&mu);
	stop = 1;
	pthread_mutex_unlock(&mu);
	pthread_join(t, NULL);
	pthread_mutex_lock(&mu);
	while (live)
		pthread_cond_wait(&changed, &mu);
	pthread_mutex_unlock(&mu);
	printf("created %ld\n", created);
	return 0;
}
