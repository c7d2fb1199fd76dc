/* epoll_tick.c — an event loop: a 1 kHz timerfd in epoll, about 150 us of
 * CPU per event, for checking CPU profiles against perf
 * (tests/integration/test_cpu_truth.py).
 *
 * Thread "epoll-loop" waits in epoll_wait(); each expiry of the timerfd is
 * read and handled by handle_event(), which runs a fixed number of steps
 * worth about 150 us of the thread's CPU time, measured once at start-up
 * with CLOCK_THREAD_CPUTIME_ID (the fastest of five trials), so no clock
 * read adds system calls to the loop.  The thread is on the CPU about 15%
 * of the time: nearly all of it in handle_event, the rest in the kernel
 * for epoll_wait (its wake-ups) and read; blocked in epoll_wait otherwise.
 *
 * Usage: epoll_tick.  Prints "ready" once the loop runs; runs until killed.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

/* noclone: no spin_work.constprop.0, the name stays the function's own. */
#define NOINLINE __attribute__((noinline, noclone))
#define EVENT_NS 150000 /* CPU per event */

static atomic_int started;
static volatile uint64_t sink;
static uint64_t event_steps = 1;

static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static NOINLINE uint64_t steps(uint64_t x, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		x = x * 2862933555777941757ULL + 3037000493ULL;
		__asm__ volatile("" : "+r"(x));
	}
	return x;
}

static NOINLINE void handle_event(uint64_t expirations)
{
	uint64_t x = sink + expirations;
	for (uint64_t i = 0; i < event_steps; i++) {
		x = x * 2862933555777941757ULL + 3037000493ULL;
		__asm__ volatile("" : "+r"(x));
	}
	sink = x;
}

/* How many steps take EVENT_NS of CPU: the fastest of five trials of a
 * million steps (the least disturbed). */
static void calibrate(void)
{
	uint64_t best = UINT64_MAX;
	for (int i = 0; i < 5; i++) {
		uint64_t t0 = thread_cpu_ns();
		sink = steps(sink, 1000000);
		uint64_t t = thread_cpu_ns() - t0;
		if (t < best)
			best = t;
	}
	event_steps = best ? (uint64_t)EVENT_NS * 1000000u / best : 150000;
}

static void *loop(void *arg)
{
	(void)arg;
	pthread_setname_np(pthread_self(), "epoll-loop");
	calibrate();
	int ep = epoll_create1(EPOLL_CLOEXEC);
	int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (ep < 0 || tfd < 0) {
		perror("epoll_tick");
		return NULL;
	}
	struct itimerspec its = { .it_interval = { 0, 1000000 }, .it_value = { 0, 1000000 } };
	timerfd_settime(tfd, 0, &its, NULL);
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = tfd };
	epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev);
	atomic_store(&started, 1);
	for (;;) {
		struct epoll_event got[4];
		int n = epoll_wait(ep, got, 4, -1);
		for (int i = 0; i < n; i++) {
			uint64_t count;
			if (read(got[i].data.fd, &count, sizeof count) == sizeof count)
				handle_event(count);
		}
	}
	return NULL;
}

int main(void)
{
	pthread_t t;
	pthread_create(&t, NULL, loop, NULL);
	while (!atomic_load(&started))
		usleep(1000);
	printf("ready\n");
	fflush(stdout);
	for (;;)
		pause();
}
