/* schedule.c — two threads with a known schedule, for the trace timeline
 * (test_trace.py).
 *
 * Thread "sched-a" loops: compute for 2 ms, then lock a mutex that thread
 * "sched-b" holds, so it waits about 8 ms, then unlock it and tell B.
 * Thread "sched-b" loops: wait for A's word, lock the mutex, sleep 10 ms
 * holding it, unlock.  So each 10 ms cycle A runs ~2 ms and waits ~8 ms
 * on the mutex, held by B (asleep in nanosleep).  Prints "A_TID B_TID"
 * and "ready" once both run, then runs until killed, or for SECONDS if
 * given (schedule [SECONDS]).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static sem_t b_go, b_holds;
static volatile uint64_t sink;
static volatile pid_t tid_a, tid_b;

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

static __attribute__((noinline)) void hold_and_sleep(void)
{
	struct timespec ts = { 0, 10 * 1000000L };
	pthread_mutex_lock(&lock);
	sem_post(&b_holds);
	nanosleep(&ts, NULL);
	pthread_mutex_unlock(&lock);
}

static void *thread_b(void *arg)
{
	(void)arg;
	pthread_setname_np(pthread_self(), "sched-b");
	tid_b = (pid_t)syscall(SYS_gettid);
	for (;;) {
		sem_wait(&b_go);
		hold_and_sleep();
	}
	return NULL;
}

static __attribute__((noinline)) void wait_for_b(void)
{
	pthread_mutex_lock(&lock);
	pthread_mutex_unlock(&lock);
}

static void *thread_a(void *arg)
{
	(void)arg;
	pthread_setname_np(pthread_self(), "sched-a");
	tid_a = (pid_t)syscall(SYS_gettid);
	for (;;) {
		sem_post(&b_go);
		sem_wait(&b_holds);     /* B holds the mutex from here */
		compute_for(2 * 1000000u);
		wait_for_b();
	}
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t a, b;
	sem_init(&b_go, 0, 0);
	sem_init(&b_holds, 0, 0);
	pthread_create(&b, NULL, thread_b, NULL);
	pthread_create(&a, NULL, thread_a, NULL);
	while (!tid_a || !tid_b)
		usleep(1000);
	printf("%d %d\nready\n", (int)tid_a, (int)tid_b);
	fflush(stdout);
	if (argc > 1) {         /* for run: exit after argv[1] seconds */
		usleep((useconds_t)(atof(argv[1]) * 1e6));
		return 0;
	}
	pthread_join(a, NULL);
	return 0;
}
