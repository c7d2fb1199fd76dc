/* thread_maker.c — creates threads through two known call paths, in
 * numbers it is told, for the threadcreate profile (test_threadcreate.py),
 * and short-lived threads that log their own tids and times, for the
 * trace's thread created and exited events (test_trace_events.py).
 *
 * At the start: IDLE threads (start routine idle_worker) blocked in
 * read(), and the main thread.  Then, per line on stdin:
 *   "go A B"  A threads created by create_alpha(), B by create_beta()
 *             (through create_beta_inner()), a child forked (it exits at
 *             once, and is reaped); each new thread blocks in read() and
 *             stays alive; prints "done N" with N threads in the process.
 *   "brief N MS" N threads (start routine brief_worker), each alive about MS
 *             ms (nanosleep) and gone again: each notes its tid and the
 *             CLOCK_MONOTONIC time it began and ended its own code; once all
 *             are joined and gone from /proc/self/task, prints
 *             "brief TID:BEGAN_NS:ENDED_NS ..." (test_trace.py: the trace's
 *             thread created and exited events against this log);
 *   "quit"    exits.
 * Prints "ready" once the idle threads run.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define IDLE 3
#define MAX_BRIEF 64

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

/* What a brief thread says of itself. */
struct brief {
	pthread_t t;
	pid_t tid;
	uint64_t began, ended;          /* CLOCK_MONOTONIC ns */
	long life_ns;
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *brief_worker(void *arg)
{
	struct brief *b = arg;
	b->began = now_ns();
	b->tid = (pid_t)syscall(SYS_gettid);
	struct timespec ts = { b->life_ns / 1000000000, b->life_ns % 1000000000 };
	while (nanosleep(&ts, &ts) != 0)
		;
	b->ended = now_ns();
	return NULL;
}

/* Whether the thread is still listed: the kernel takes it out of
 * /proc/self/task only once its exit is complete (after its perf_event
 * exit record), which pthread_join does not wait for. */
static int listed(pid_t tid)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/self/task/%d", (int)tid);
	return access(path, F_OK) == 0;
}

/* Inlined into main (GCC 12 -O2), which then ends with fork_one's _exit,
 * a call that never returns, just before crt1's _start: elfutils 0.188
 * gives _start main's last line there, which test_threadcreate's gdb
 * comparison catches (symbolize/resolve.c's line_covers). */
static void make_brief(int n, long ms)
{
	static struct brief v[MAX_BRIEF];
	n = n < MAX_BRIEF ? n : MAX_BRIEF;
	for (int i = 0; i < n; i++) {
		v[i] = (struct brief){ .life_ns = ms * 1000000 };
		if (pthread_create(&v[i].t, NULL, brief_worker, &v[i]) != 0) {
			perror("pthread_create");
			exit(1);
		}
	}
	for (int i = 0; i < n; i++) {
		pthread_join(v[i].t, NULL);
		for (int k = 0; k < 5000 && listed(v[i].tid); k++)
			usleep(1000);
	}
	printf("brief");
	for (int i = 0; i < n; i++)
		printf(" %d:%llu:%llu", (int)v[i].tid, (unsigned long long)v[i].began,
		       (unsigned long long)v[i].ended);
	printf("\n");
	fflush(stdout);
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
		long ms;
		if (sscanf(line, "go %d %d", &a, &b) == 2) {
			create_alpha(a);
			create_beta(b);
			fork_one();
			printf("done %d\n", nthreads);
			fflush(stdout);
		} else if (sscanf(line, "brief %d %ld", &a, &ms) == 2) {
			make_brief(a, ms);
		} else if (strncmp(line, "quit", 4) == 0) {
			break;
		}
	}
	return 0;
}
