/* exported.c — a target whose own functions are exported (-rdynamic), for
 * binaries that are hard to symbolize or unwind (tests/integration/
 * test_binaries.py).  Built twice: stripped (.dynsym is all that names
 * them) and without any CFI (-fno-asynchronous-unwind-tables -g0 with
 * frame pointers: only a frame-pointer walk gets through their frames).
 *
 * Thread "fx-spin" spins in fx_leaf <- fx_middle <- fx_outer; thread
 * "fx-park" blocks in read() under fx_park <- fx_outer_park; the main
 * thread waits in pause().  Prints "ready" once both threads run.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <unistd.h>

#define EXPORTED __attribute__((noinline, visibility("default")))

static atomic_int started;
static int park_pipe[2];
volatile uint64_t fx_sink;

EXPORTED uint64_t fx_leaf(uint64_t x)
{
	for (int i = 0; i < 1000000; i++) {
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		__asm__ volatile("" : "+r"(x));
	}
	return x;
}

EXPORTED uint64_t fx_middle(uint64_t x)
{
	x = fx_leaf(x) ^ 7;
	__asm__ volatile("" : "+r"(x));
	return x + 1;
}

EXPORTED void fx_outer(void)
{
	uint64_t x = 1;
	for (;;) {
		x = fx_middle(x) + 3;
		fx_sink = x;
	}
}

EXPORTED ssize_t fx_park(int fd)
{
	char c;
	ssize_t n = read(fd, &c, 1);
	__asm__ volatile("" ::: "memory");
	return n + 1;
}

EXPORTED void fx_outer_park(void)
{
	for (;;)
		fx_sink += (uint64_t)fx_park(park_pipe[0]);
}

static void *spin_main(void *arg)
{
	(void)arg;
	prctl(PR_SET_NAME, "fx-spin");
	atomic_fetch_add(&started, 1);
	fx_outer();
	return NULL;
}

static void *park_main(void *arg)
{
	(void)arg;
	prctl(PR_SET_NAME, "fx-park");
	atomic_fetch_add(&started, 1);
	fx_outer_park();
	return NULL;
}

int main(void)
{
	pthread_t t;
	if (pipe(park_pipe) != 0 || pthread_create(&t, NULL, spin_main, NULL) != 0 ||
	    pthread_create(&t, NULL, park_main, NULL) != 0) {
		perror("exported");
		return 1;
	}
	while (atomic_load(&started) < 2)
		usleep(1000);
	printf("ready\n");
	fflush(stdout);
	for (;;)
		pause();
}
