/* heap_fork.c — forked children that keep running the same program and
 * allocate known amounts, from a parent whose other threads allocate
 * without pause meanwhile (a child may be forked while one of them is
 * inside malloc or the sampler): `pprofc run --profile heap|allocs
 * --children` must record each child into its own ring, exactly, and no
 * child may hang (tests/integration/test_heap_children.py).
 *
 * Usage: heap_fork [--hold] CHILDREN.  The parent keeps PARENT_BLOCKS
 * blocks live in parent_keep(), then forks CHILDREN children one at a
 * time.  Each child keeps CHILD_BLOCKS blocks live in child_keep() and
 * allocates and frees CHURN_BLOCKS in child_churn(); even children end
 * with _exit (nothing runs at exit), odd ones with exit (destructors
 * run).  With --hold every process waits for EOF on stdin (the parent
 * after printing "forked N", each child between child_keep and
 * child_churn), so the whole tree is alive at once.
 *
 * Prints, once every child was reaped: "PID PATH SIZE ALLOCS FREES" per
 * path (the parent's line with the parent's pid), "children ok", "done".
 * Without --hold the output is the same whatever the rate, with or
 * without a profiler, but for the pids.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_CHILDREN 64
#define PARENT_SIZE 6001
#define PARENT_BLOCKS 100
#define CHILD_SIZE 7001
#define CHILD_BLOCKS 50
#define CHURN_SIZE 8001
#define CHURN_BLOCKS 100
#define NOISE_THREADS 2
#define NOISE_SIZE 701

static atomic_int stop_noise;

static void *touch(void *p)
{
	if (!p)
		abort();
	*(volatile char *)p = 1;
	return p;
}

/* Allocates without pause until told to stop: forks land inside malloc. */
static void *noise(void *arg)
{
	(void)arg;
	while (!stop_noise)
		free(touch(malloc(NOISE_SIZE)));
	return NULL;
}

static __attribute__((noinline)) void parent_keep(void **keep)
{
	for (int i = 0; i < PARENT_BLOCKS; i++)
		keep[i] = touch(malloc(PARENT_SIZE));
}

static __attribute__((noinline)) void child_keep(void **keep)
{
	for (int i = 0; i < CHILD_BLOCKS; i++)
		keep[i] = touch(malloc(CHILD_SIZE));
}

static __attribute__((noinline)) void child_churn(void)
{
	for (int i = 0; i < CHURN_BLOCKS; i++)
		free(touch(malloc(CHURN_SIZE)));
}

static void hold(void)
{
	char buf[64];

	while (read(0, buf, sizeof buf) > 0)
		;
}

static __attribute__((noreturn)) void child(int index, int held)
{
	static void *keep[CHILD_BLOCKS];

	child_keep(keep);
	if (held)
		hold();
	child_churn();
	if (index % 2)
		exit(0);
	_exit(0);
}

int main(int argc, char **argv)
{
	int held = argc > 1 && strcmp(argv[1], "--hold") == 0;
	int n = argc > 1 + held ? atoi(argv[1 + held]) : 4;
	static void *keep[PARENT_BLOCKS];
	pthread_t threads[NOISE_THREADS];
	pid_t pids[MAX_CHILDREN];
	int ok = 1;

	if (n < 0 || n > MAX_CHILDREN)
		return 2;
	parent_keep(keep);
	for (int i = 0; i < NOISE_THREADS; i++)
		if (pthread_create(&threads[i], NULL, noise, NULL))
			abort();
	fflush(stdout);         /* a child that exit()s must not print it again */
	for (int i = 0; i < n; i++) {
		pids[i] = fork();
		if (pids[i] < 0)
			abort();
		if (pids[i] == 0)
			child(i, held);
		if (!held) {
			int status;

			ok &= waitpid(pids[i], &status, 0) == pids[i] && WIFEXITED(status) &&
			      WEXITSTATUS(status) == 0;
		}
	}
	stop_noise = 1;
	for (int i = 0; i < NOISE_THREADS; i++)
		pthread_join(threads[i], NULL);
	if (held) {
		printf("forked %d\n", n);
		fflush(stdout);
		hold();
		for (int i = 0; i < n; i++) {
			int status;

			ok &= waitpid(pids[i], &status, 0) == pids[i] && WIFEXITED(status) &&
			      WEXITSTATUS(status) == 0;
		}
	}
	printf("%d parent_keep %d %d 0\n", (int)getpid(), PARENT_SIZE, PARENT_BLOCKS);
	for (int i = 0; i < n; i++) {
		printf("%d child_keep %d %d 0\n", (int)pids[i], CHILD_SIZE, CHILD_BLOCKS);
		printf("%d child_churn %d %d %d\n", (int)pids[i], CHURN_SIZE, CHURN_BLOCKS, CHURN_BLOCKS);
	}
	printf("children %s\ndone\n", ok ? "ok" : "failed");
	return ok ? 0 : 1;
}
