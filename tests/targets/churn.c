/* churn.c — threads created and exiting all the time, to dump mid-churn.
 *
 * Usage: churn [SPAWNERS].  Each of SPAWNERS threads (default 4) creates
 * a short-lived thread, joins it, and starts over, forever: about a
 * thousand threads a second come and go.  Prints "ready" once the
 * spawners run.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static atomic_long spawned;

static void *short_lived(void *arg)
{
	(void)arg;
	volatile unsigned long x = 0;
	for (int i = 0; i < 20000; i++)
		x += (unsigned long)i;
	return NULL;
}

static void *spawner(void *arg)
{
	(void)arg;
	pthread_setname_np(pthread_self(), "spawner");
	for (;;) {
		pthread_t t;
		if (pthread_create(&t, NULL, short_lived, NULL) == 0) {
			pthread_join(t, NULL);
			atomic_fetch_add(&spawned, 1);
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 4;
	for (int i = 0; i < n; i++) {
		pthread_t t;
		pthread_create(&t, NULL, spawner, NULL);
	}
	while (atomic_load(&spawned) < 100)
		usleep(1000);
	printf("ready\n");
	fflush(stdout);
	for (;;)
		pause();
}
