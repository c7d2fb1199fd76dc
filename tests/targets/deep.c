/* deep.c — a thread that spins at the bottom of a deep stack, for stacks
 * cut short by the stack copy (tests/integration/test_attach_cpu.py).
 *
 * Thread "deep" recurses 3000 levels through descend(), each frame
 * holding 64 bytes it touches (about 300 KiB of stack, more than any
 * copy), then spins in spin_at_bottom() for ever.  Prints "ready" once it
 * spins.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline, noclone))

static atomic_int spinning;
static volatile uint64_t sink;
static volatile int stop;       /* never set: the spin may end, as far as
				 * the compiler knows */

static NOINLINE void spin_at_bottom(void)
{
	atomic_store(&spinning, 1);
	while (!stop)
		sink = sink * 6364136223846793005ULL + 1;
}

static NOINLINE int descend(int depth)
{
	volatile char pad[64];
	pad[depth % 64] = (char)depth;
	if (depth == 0) {
		spin_at_bottom();
		return 0;
	}
	return descend(depth - 1) + pad[depth % 64];
}

static void *deep(void *arg)
{
	(void)arg;
	pthread_setname_np(pthread_self(), "deep");
	descend(3000);
	return NULL;
}

int main(void)
{
	pthread_attr_t a;
	pthread_t t;
	pthread_attr_init(&a);
	pthread_attr_setstacksize(&a, 8u << 20);
	if (pthread_create(&t, &a, deep, NULL))
		return 1;
	while (!atomic_load(&spinning))
		usleep(1000);
	printf("ready\n");
	fflush(stdout);
	for (;;)
		pause();
}
