/* lifecycle.c — a process that forks or crashes while it is profiled, for
 * tests/integration/test_lifecycle.py.
 *
 * Usage: lifecycle PROGRESS_FILE fork|crash.  A "spinner" thread burns CPU
 * (so a CPU profile has samples), the main thread writes its tick count to
 * PROGRESS_FILE every 10 ms, and a "trigger" thread waits for SIGUSR1
 * (blocked everywhere else), so the test decides when the event happens:
 *   fork:  each SIGUSR1 forks a child; child K writes "PID TICKS" to
 *          PROGRESS_FILE.child.K every 10 ms, and dies with its parent;
 *   crash: SIGUSR1 makes the trigger thread read through a null pointer.
 *          A SIGSEGV handler counts the deliveries into PROGRESS_FILE.segv,
 *          then restores the default action and returns: the faulting
 *          read runs again and the process dies by SIGSEGV.
 * Prints "ready" once the threads run.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static const char *progress;
static int crash_mode;
static int segv_fd = -1;
static volatile sig_atomic_t segv_count;
static volatile unsigned long sink;
static atomic_int running;

static void sleep_10ms(void)
{
	struct timespec ts = { 0, 10000000L };
	nanosleep(&ts, NULL);
}

/* Writes "TEXT" over the start of the file at path, every 10 ms, forever. */
static void tick_into(const char *path, pid_t pid)
{
	FILE *f = fopen(path, "w");
	for (unsigned long n = 1;; n++) {
		if (f) {
			rewind(f);
			if (pid)
				fprintf(f, "%d %lu\n", (int)pid, n);
			else
				fprintf(f, "%lu\n", n);
			fflush(f);
		}
		sleep_10ms();
	}
}

static void *spin(void *arg)
{
	(void)arg;
	pthread_setname_np(pthread_self(), "spinner");
	atomic_fetch_add(&running, 1);
	for (unsigned long i = 0;; i++)
		sink += i * i;
	return NULL;
}

static void on_segv(int sig)
{
	char buf[16];
	int len;
	segv_count++;
	len = snprintf(buf, sizeof buf, "%d\n", (int)segv_count);
	if (segv_fd >= 0 && pwrite(segv_fd, buf, (size_t)len, 0) < 0)
		_exit(99);
	signal(sig, SIG_DFL);   /* the fault repeats and kills the process */
}

static void fork_child(int k)
{
	char path[4200];
	pid_t parent = getpid();
	snprintf(path, sizeof path, "%s.child.%d", progress, k);
	if (fork() != 0)
		return;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(0);
	tick_into(path, getpid());
}

static void crash(void)
{
	volatile int *nowhere = NULL;
	sink += (unsigned long)*nowhere;
}

static void *trigger(void *arg)
{
	sigset_t usr1;
	int sig;
	(void)arg;
	pthread_setname_np(pthread_self(), "trigger");
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	atomic_fetch_add(&running, 1);
	for (int k = 1;; k++) {
		if (sigwait(&usr1, &sig) != 0)
			continue;
		if (crash_mode)
			crash();
		else
			fork_child(k);
	}
	return NULL;
}

static void setup_crash(void)
{
	char path[4200];
	struct rlimit no_core = { 0, 0 };
	struct sigaction sa;
	setrlimit(RLIMIT_CORE, &no_core);       /* no core file from the test */
	snprintf(path, sizeof path, "%s.segv", progress);
	segv_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_segv;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, NULL);
}

int main(int argc, char **argv)
{
	sigset_t usr1;
	pthread_t t;
	if (argc != 3 || (strcmp(argv[2], "fork") != 0 && strcmp(argv[2], "crash") != 0)) {
		fprintf(stderr, "usage: lifecycle PROGRESS_FILE fork|crash\n");
		return 2;
	}
	progress = argv[1];
	crash_mode = strcmp(argv[2], "crash") == 0;
	if (crash_mode)
		setup_crash();
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &usr1, NULL);        /* inherited by the threads */
	if (pthread_create(&t, NULL, spin, NULL) || pthread_create(&t, NULL, trigger, NULL)) {
		perror("pthread_create");
		return 1;
	}
	while (atomic_load(&running) < 2)
		sleep_10ms();
	printf("ready\n");
	fflush(stdout);
	tick_into(progress, 0);
}
