/* dstate.c — a thread in uninterruptible sleep (state D), deterministically.
 *
 * Thread "vforker" calls vfork(): until the child execs or exits, the parent
 * thread sleeps in state D (the kernel's TASK_KILLABLE wait for the vfork
 * to finish).  The child only asks to die with its parent, then pauses.
 * pprofc must list "vforker" without stopping it ("stack not taken").
 * Prints "ready" once the vforker is in state D; runs until killed.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static pid_t vforker_tid;

static void *vforker(void *arg)
{
	(void)arg;
	pthread_setname_np(pthread_self(), "vforker");
	vforker_tid = (pid_t)syscall(SYS_gettid);
	if (vfork() == 0) {
		/* The child borrows the parent's memory: only raw system calls. */
		syscall(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
		for (;;)
			syscall(SYS_pause);
	}
	return NULL;
}

static char state_of(pid_t tid)
{
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)tid);
	FILE *f = fopen(path, "r");
	if (!f)
		return '?';
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	char *close = strrchr(buf, ')');
	return close && close[1] && close[2] ? close[2] : '?';
}

int main(void)
{
	pthread_t t;
	pthread_create(&t, NULL, vforker, NULL);
	struct timespec ms = { 0, 1000000 };
	while (!vforker_tid || state_of(vforker_tid) != 'D')
		nanosleep(&ms, NULL);
	printf("ready\n");
	fflush(stdout);
	for (;;)
		pause();
}
