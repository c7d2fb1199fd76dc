#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
/* eintr.c — fixture for the "blocked threads are not disturbed" tests: one
 * thread blocked forever in each system call that fails with EINTR when a
 * tracer stops the thread (instead of restarting transparently), each
 * counting the EINTR returns it sees.
 *
 *   epoller     epoll_wait(-1) on a pipe nobody writes
 *   semwaiter   semop() decrementing a SysV semaphore that stays 0
 *   sigwaiter   sigwaitinfo() for SIGUSR2, which nobody sends
 *   aiowaiter   io_getevents() on an AIO context with nothing submitted
 *   ticker      bumps a counter every 10 ms: proof the process runs on
 *
 * Usage: eintr PROGRESS_FILE.  Prints "ready" once every thread is blocked
 * in its call, then runs until killed.  PROGRESS_FILE holds
 * "TICKS EPOLL SEMOP SIGWAIT AIO": the tick count and each call's EINTR
 * count, rewritten every tick.
 *
 * SysV semaphores outlive their process.  So that a SIGKILLed fixture
 * leaves none behind, a small watchdog child removes the semaphore when the
 * fixture's end closes the pipe it waits on.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/aio_abi.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/sem.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))

enum { EPOLL, SEMOP, SIGWAIT, AIO, NCALLS };

static atomic_int eintr[NCALLS];
static atomic_int started;
static pid_t tids[NCALLS];
static int semid = -1;
static const char *progress_path;

/* Blocks until the parent is gone (its end of the pipe closes), then
 * removes the semaphore.  Runs in a child forked before any thread. */
static void start_watchdog(void)
{
	int p[2];
	if (pipe(p) != 0) {
		perror("pipe");
		exit(1);
	}
	pid_t child = fork();
	if (child < 0) {
		perror("fork");
		exit(1);
	}
	if (child == 0) {
		char c;
		close(p[1]);
		int null = open("/dev/null", O_RDWR);
		dup2(null, 1);  /* let the test see the fixture's stdout end */
		setsid();       /* and keep terminal signals to the fixture */
		while (read(p[0], &c, 1) < 0 && errno == EINTR)
			;
		semctl(semid, 0, IPC_RMID);
		_exit(0);
	}
	close(p[0]);            /* the write end stays open until we die */
	fcntl(p[1], F_SETFD, FD_CLOEXEC);
}

static void count(int call)
{
	atomic_fetch_add(&eintr[call], 1);
}

static NOINLINE void wait_for_events(void)
{
	int fds[2], ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN };
	if (pipe(fds) != 0 || ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fds[0], &ev) != 0) {
		perror("epoll");
		exit(1);
	}
	for (;;) {
		struct epoll_event got;
		if (epoll_wait(ep, &got, 1, -1) < 0 && errno == EINTR)
			count(EPOLL);
	}
}

static NOINLINE void wait_for_semaphore(void)
{
	struct sembuf down = { .sem_num = 0, .sem_op = -1, .sem_flg = 0 };
	for (;;)
		if (semop(semid, &down, 1) < 0 && errno == EINTR)
			count(SEMOP);
}

static NOINLINE void wait_for_signal(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	for (;;)
		if (sigwaitinfo(&set, NULL) < 0 && errno == EINTR)
			count(SIGWAIT);
}

static NOINLINE void wait_for_io(void)
{
	aio_context_t ctx = 0;
	struct io_event ev;
	if (syscall(SYS_io_setup, 1, &ctx) != 0) {
		perror("io_setup");
		exit(1);
	}
	for (;;)
		if (syscall(SYS_io_getevents, ctx, 1, 1, &ev, NULL) < 0 && errno == EINTR)
			count(AIO);
}

static void write_progress(long ticks)
{
	char tmp[4096];
	snprintf(tmp, sizeof tmp, "%s.tmp", progress_path);
	FILE *f = fopen(tmp, "w");
	if (!f)
		return;
	fprintf(f, "%ld %d %d %d %d\n", ticks, atomic_load(&eintr[EPOLL]), atomic_load(&eintr[SEMOP]),
		atomic_load(&eintr[SIGWAIT]), atomic_load(&eintr[AIO]));
	fclose(f);
	rename(tmp, progress_path);     /* readers never see half a line */
}

struct waiter {
	int call;
	void (*fn)(void);
};

static void *run(void *arg)
{
	const struct waiter *w = arg;
	tids[w->call] = gettid();
	atomic_fetch_add(&started, 1);
	w->fn();
	return NULL;
}

/* Whether the thread sleeps ('S'): nothing before each call sleeps, so it
 * is then in its call. */
static int asleep(pid_t tid)
{
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)tid);
	int fd = open(path, O_RDONLY);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	return p && p[1] == ' ' && p[2] == 'S';
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: eintr PROGRESS_FILE\n");
		return 2;
	}
	progress_path = argv[1];
	semid = semget(IPC_PRIVATE, 1, IPC_CREAT | 0600);
	if (semid < 0) {
		perror("semget");
		return 1;
	}
	start_watchdog();
	sigset_t usr2;                  /* blocked everywhere: only sigwaitinfo takes it */
	sigemptyset(&usr2);
	sigaddset(&usr2, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &usr2, NULL);
	static const struct waiter waits[NCALLS] = {
		{ EPOLL, wait_for_events }, { SEMOP, wait_for_semaphore },
		{ SIGWAIT, wait_for_signal }, { AIO, wait_for_io } };
	const char *const names[NCALLS] = { "epoller", "semwaiter", "sigwaiter", "aiowaiter" };
	for (int i = 0; i < NCALLS; i++) {
		pthread_t t;
		if (pthread_create(&t, NULL, run, (void *)&waits[i]) != 0) {
			perror("pthread_create");
			return 1;
		}
		pthread_setname_np(t, names[i]);
	}
	pthread_setname_np(pthread_self(), "ticker");
	write_progress(0);
	while (atomic_load(&started) < NCALLS)
		usleep(1000);
	for (int i = 0; i < NCALLS; i++)
		while (!asleep(tids[i]))
			usleep(1000);
	printf("ready\n");
	fflush(stdout);
	for (long ticks = 1;; ticks++) {
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
		write_progress(ticks);
	}
}
