/* spin_poll.c — half on the CPU, half blocked in poll(), for checking CPU
 * profiles against perf (tests/integration/test_cpu_truth.py).
 *
 * Thread "spin-poll" alternates about 2 ms of CPU in spin_work() (measured
 * with its own CLOCK_THREAD_CPUTIME_ID, read every ~0.5 ms of work so the
 * clock reads stay well under 1% of it) with about 2 ms blocked in poll()
 * on a pipe nobody writes (timeout 2 ms).  A sampler that charges CPU to
 * where a thread is found blocked, rather than to where it ran, gives poll
 * far more than the percent or two perf gives it.
 *
 * Thread "sleeper100" sits in sleep(100) (clock_nanosleep, syscall 230 on
 * x86_64), again and again: a profile must never wake it.
 *
 * Usage: spin_poll.  Prints "ready" once both threads run; runs until
 * killed.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

/* noclone: no spin_work.constprop.0, the name stays the function's own. */
#define NOINLINE __attribute__((noinline, noclone))
#define CHUNK 400000 /* LCG steps between two clock reads: about 0.5 ms */

static atomic_int started;
static volatile uint64_t sink;
static int pipe_fds[2];

static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Burns ns nanoseconds of this thread's CPU time. */
static NOINLINE void spin_work(uint64_t ns)
{
	uint64_t end = thread_cpu_ns() + ns, x = sink;
	do {
		for (int i = 0; i < CHUNK; i++) {
			x = x * 6364136223846793005ULL + 1442695040888963407ULL;
			__asm__ volatile("" : "+r"(x));
		}
	} while (thread_cpu_ns() < end);
	sink = x;
}

static NOINLINE void block_in_poll(int ms)
{
	struct pollfd p = { .fd = pipe_fds[0], .events = POLLIN };
	poll(&p, 1, ms);
}

static void *spin_poll(void *arg)
{
	(void)arg;
	pthread_setname_np(pthread_self(), "spin-poll");
	atomic_fetch_add(&started, 1);
	for (;;) {
		spin_work(2000000);
		block_in_poll(2);
	}
	return NULL;
}

static void *sleeper(void *arg)
{
	(void)arg;
	pthread_setname_np(pthread_self(), "sleeper100");
	atomic_fetch_add(&started, 1);
	for (;;)
		sleep(100);
	return NULL;
}

int main(void)
{
	if (pipe(pipe_fds) != 0) {
		perror("pipe");
		return 1;
	}
	pthread_t t;
	pthread_create(&t, NULL, spin_poll, NULL);
	pthread_create(&t, NULL, sleeper, NULL);
	while (atomic_load(&started) < 2)
		usleep(1000);
	usleep(10000); /* the sleeper is in clock_nanosleep by now */
	printf("ready\n");
	fflush(stdout);
	for (;;)
		pause();
}
