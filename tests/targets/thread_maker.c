/* thread_maker.c — creates threads through two known call paths, in
 * numbers it is told, for the threadcreate profile (test_threadcreate.py).
 *
 * At the start: IDLE threads (start routine idle_worker) blocked in
 * read(), and the main thread.  Then, per line on stdin:
 *   "go A B"  A threads created by create_alpha(), B by create_beta()
 *             (through create_beta_inner()), a child forked (it exits at
 *             once, and is reaped); each new thread blocks in read() and
 *             stays alive; prints "done N" with N threads in the process.
 *   "quit"    exits.
 * Prints "ready" once the idle threads run.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define IDLE 3

static int parked[2];           /* never written: threads block reading it */
static int nthreads = 1;

static void *idle_worker(void *arg)
{
	char c;
	(void)arg;
	while (read(parked[0], &c, 1) < 0)
		;
	return NULL;
}

static void *made_worker(void *arg)
{
	char c;
	(void)arg;
	while (read(parked[0], &c, 1) < 0)
		;
	return NULL;
}

static void start(void *(*fn)(void *))
{
	pthread_t t;
	if (pthread_create(&t, NULL, fn, NULL) != 0) {
		perror("pthread_create");
		exit(1);
	}
	nthreads++;
}

__attribute__((noinline)) static void create_alpha(int n)
{
	for (int i = 0; i < n; i++)
		start(made_worker);
	__asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) static void create_beta_inner(int n)
{
	for (int i = 0; i < n; i++)
		start(made_worker);
	__asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) static void create_beta(int n)
{
	create_beta_inner(n);
	__asm__ volatile("" ::: "memory");
}

static void fork_one(void)
{
	pid_t p = fork();
	if (p == 0)
		_exit(0);
	if (p > 0)
		waitpid(p, NULL, 0);
}

int main(void)
{
	char line[128];
	if (pipe(parked)) {
		perror("pipe");
		return 1;
	}
	for (int i = 0; i < IDLE; i++)
		start(idle_worker);
	printf("ready\n");
	fflush(stdout);
	while (fgets(line, sizeof line, stdin)) {
		int a, b;
		if (sscanf(line, "go %d %d", &a, &b) == 2) {
			create_alpha(a);
			create_beta(b);
			fork_one();
			printf("done %d\n", nthreads);
			fflush(stdout);
		} else if (strncmp(line, "quit", 4) == 0) {
			break;
		}
	}
	return 0;
}
