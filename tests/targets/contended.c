/* contended.c — a mutex held for long stretches while others wait, for
 * mutex profiles.
 *
 * Thread "holder" loops: lock `m`, slow_critical_section() (50 ms asleep
 * with the lock held), unlock, 1 ms pause.  Threads "waiter-1..3" loop:
 * lock `m`, unlock, 1 ms pause: they spend nearly all their time waiting
 * for the holder.  Prints "ready" once all run.  Runs until killed.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static atomic_int started;

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static __attribute__((noinline)) void slow_critical_section(void)
{
	sleep_ms(50);
	__asm__ volatile("" ::: "memory");
}

static void *holder(void *arg)
{
	(void)arg;
	pthread_setname_np(pthread_self(), "holder");
	atomic_fetch_add(&started, 1);
	for (;;) {
		pthread_mutex_lock(&m);
		slow_critical_section();
		pthread_mutex_unlock(&m);
		sleep_ms(1);
	}
	return NULL;
}

static __attribute__((noinline)) void take_and_release(void)
{
	pthread_mutex_lock(&m);
	pthread_mutex_unlock(&m);
	__asm__ volatile("" ::: "memory");
}

static void *waiter(void *arg)
{
	char name[16];
	snprintf(name, sizeof name, "waiter-%d", (int)(long)arg);
	pthread_setname_np(pthread_self(), name);
	atomic_fetch_add(&started, 1);
	for (;;) {
		take_and_release();
		sleep_ms(1);
	}
	return NULL;
}

int main(void)
{
	pthread_t t;
	pthread_create(&t, NULL, holder, NULL);
	for (long i = 1; i <= 3; i++)
		pthread_create(&t, NULL, waiter, (void *)i);
	while (atomic_load(&started) < 4)
		usleep(1000);
	printf("ready\n");
	fflush(stdout);
	for (;;)
		pause();
}
