/* zombie_leader.c — a process whose main thread has exited (pthread_exit)
 * while its other threads run on, as some daemons do: the thread-group
 * leader is a zombie (/proc/PID/status State: Z, /proc/PID/maps empty,
 * process_vm_readv(PID) and PTRACE_SEIZE(PID) refused) while the process
 * is alive (test_zombie_leader.py).
 *
 * Thread "blocked" sits in read() on a pipe nobody writes, called from
 * zl_block_in_read(), called from zl_blocked_main().
 * Thread "spinner" holds a mutex and burns CPU in zl_spin() without ever
 * blocking; thread "waiter" waits for that mutex; thread "poller" sits in
 * poll() on the pipe.  The waiter's mutex and the poller's descriptors
 * are in the process's memory, read by the process id (the owner and the
 * fd in a dump).
 *
 * With a LIBRARY (the plugin fixture), thread "first" is started before
 * all others, so a reader looking for a live thread to stand for the
 * process picks it; on SIGUSR1 it dlopens LIBRARY, starts thread "plugin"
 * and exits; "plugin" waits until "first" has exited, prints "loaded" and
 * spins in the library's plugin_spin(): code in no module read before.
 *
 * Usage: zombie_leader [LIBRARY].  Prints "first TID" (with LIBRARY),
 * "blocked TID", "spinner TID", "waiter TID", "poller TID", "pipe FD",
 * then "ready" once the main thread is about to exit; the test waits for
 * its zombie state itself.  Runs until killed.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <poll.h>
#include <signal.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

/* noclone: the names stay the functions' own (no .constprop suffix). */
#define NOINLINE __attribute__((noinline, noclone))

static int pipe_fds[2];
static atomic_int started;
static pid_t first_tid, blocked_tid, spinner_tid, waiter_tid, poller_tid;
static const char *library;
static pthread_t first_thread;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static volatile uint64_t sink;

static NOINLINE void zl_block_in_read(void)
{
	char c;
	/* Nobody writes: read() blocks for good. */
	while (read(pipe_fds[0], &c, 1) != 0)
		;
}

static NOINLINE void zl_blocked_main(void)
{
	zl_block_in_read();
	__asm__ volatile("");   /* no tail call: zl_blocked_main stays a frame */
}

/* A worker names itself and says it runs. */
static void announce(const char *name, pid_t *tid)
{
	pthread_setname_np(pthread_self(), name);
	*tid = (pid_t)syscall(SYS_gettid);
	atomic_fetch_add(&started, 1);
}

static void *blocked(void *arg)
{
	(void)arg;
	announce("blocked", &blocked_tid);
	zl_blocked_main();
	return NULL;
}

static NOINLINE void zl_spin(void)
{
	uint64_t x = sink;
	for (;;) {
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		__asm__ volatile("" : "+r"(x));
	}
}

static void *spinner(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&lock);      /* held for good */
	announce("spinner", &spinner_tid);
	zl_spin();
	return NULL;
}

static void *waiter(void *arg)
{
	(void)arg;
	announce("waiter", &waiter_tid);
	pthread_mutex_lock(&lock);
	return NULL;
}

static void *poller(void *arg)
{
	(void)arg;
	struct pollfd p = { .fd = pipe_fds[0], .events = POLLIN };
	announce("poller", &poller_tid);
	while (poll(&p, 1, -1) >= 0 && !(p.revents & POLLHUP))
		;
	return NULL;
}

/* Waits until "first" has exited, then runs the plugin's code. */
static void *plugin(void *fn)
{
	pthread_setname_np(pthread_self(), "plugin");
	pthread_join(first_thread, NULL);
	printf("loaded\n");
	fflush(stdout);
	((void (*)(void))fn)();
	return NULL;
}

static void *first(void *arg)
{
	(void)arg;
	sigset_t set;
	int sig;
	pthread_t t;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	announce("first", &first_tid);
	sigwait(&set, &sig);
	void *h = dlopen(library, RTLD_NOW | RTLD_LOCAL);
	void *fn = h ? dlsym(h, "plugin_spin") : NULL;
	if (!fn || pthread_create(&t, NULL, plugin, fn) != 0) {
		fprintf(stderr, "zombie_leader: cannot load %s: %s\n", library, dlerror());
		_exit(1);
	}
	return NULL;
}

/* Starts a worker and waits until it runs (the spinner holds the lock
 * before the waiter asks for it). */
static int start(void *(*fn)(void *), int n, pthread_t *t)
{
	if (pthread_create(t, NULL, fn, NULL) != 0)
		return -1;
	while (atomic_load(&started) < n)
		usleep(1000);
	return 0;
}

int main(int argc, char **argv)
{
	pthread_t t;
	sigset_t set;
	int n = argc > 1;
	library = argc > 1 ? argv[1] : NULL;
	/* SIGUSR1 blocked in every thread: sigwait in "first" takes it. */
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (pipe(pipe_fds) != 0 || (library && start(first, 1, &first_thread)) ||
	    start(blocked, n + 1, &t) || start(spinner, n + 2, &t) || start(waiter, n + 3, &t) ||
	    start(poller, n + 4, &t))
		return 1;
	if (library)
		printf("first %d\n", (int)first_tid);
	printf("blocked %d\nspinner %d\nwaiter %d\npoller %d\npipe %d\nready\n", (int)blocked_tid,
	       (int)spinner_tid, (int)waiter_tid, (int)poller_tid, pipe_fds[0]);
	fflush(stdout);
	pthread_exit(NULL);
}
