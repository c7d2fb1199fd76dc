#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
/* waits.c — the demo process and main test fixture: one thread in each
 * interesting wait state, so a thread dump has something to explain.
 *
 *   holder        holds mutex `lock_a`, asleep in hold_and_sleep()
 *   mutex-waiter  blocked on `lock_a` in wait_for_lock()       -> mutex wait
 *   cond-waiter   pthread_cond_wait in wait_for_signal()        -> cond wait
 *   pipe-reader   read() on an empty pipe in read_request()     -> IO wait
 *   acceptor      accept() on 127.0.0.1 in accept_client()      -> IO wait
 *   epoller       epoll_wait(-1) in wait_for_events()           -> IO wait
 *   sleeper       nanosleep in nap()                            -> sleep
 *   deadlock-a/b  each holds one mutex and wants the other's    -> deadlock
 *   spinner       busy in spin(), mostly inside inlined mix()   -> running
 *   inline-parker read() called from always_inline park_inline()
 *   deep          150 frames of recurse() (>64 KiB of stack), then read()
 *   ticker        bumps a counter every 10 ms: proof the process runs on
 *
 * Usage: waits [PROGRESS_FILE].  Prints "port N" (the acceptor's port),
 * then "ready" once every thread has reached its wait, then runs until
 * killed.  If PROGRESS_FILE is given, the ticker writes "TICKS SIGNALS"
 * there (SIGNALS: how many SIGRTMIN it has received, to check none is lost
 * or doubled), and the epoller writes how many times epoll_wait failed with
 * EINTR to PROGRESS_FILE.eintr.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))
/* Keeps the compiler from turning a call into a jump (tail call), which
 * would drop the caller's frame from the stack. */
#define KEEP_FRAME() __asm__ volatile("" ::: "memory")

static pthread_mutex_t lock_a = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t dl_1 = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t dl_2 = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t cond_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static pthread_barrier_t dl_barrier;
static int idle_pipe[2], epoll_pipe[2], inline_pipe[2], deep_pipe[2];
static int listen_fd;
static atomic_int parked;
static atomic_int holder_has_lock;
static const char *progress_path;
static volatile unsigned long spin_sink;
static atomic_int rt_signals;

static void on_rt_signal(int sig)
{
	(void)sig;
	atomic_fetch_add(&rt_signals, 1);
}

static void park(void)
{
	atomic_fetch_add(&parked, 1);
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static NOINLINE void hold_and_sleep(void)
{
	pthread_mutex_lock(&lock_a);
	atomic_store(&holder_has_lock, 1);
	park();
	for (;;)
		sleep_ms(3600 * 1000);
}

static NOINLINE void wait_for_lock(void)
{
	park();
	pthread_mutex_lock(&lock_a);
	KEEP_FRAME();
}

static NOINLINE void wait_for_signal(void)
{
	pthread_mutex_lock(&cond_mu);
	park();
	for (;;)
		pthread_cond_wait(&cond, &cond_mu);
}

static NOINLINE void read_request(void)
{
	char c;
	park();
	while (read(idle_pipe[0], &c, 1) < 0 && errno == EINTR)
		;
	KEEP_FRAME();
}

static NOINLINE void accept_client(void)
{
	park();
	for (;;) {
		int fd = accept(listen_fd, NULL, NULL);
		if (fd >= 0)
			close(fd);
	}
}

static void record_eintr(int count)
{
	if (!progress_path)
		return;
	char path[4096], text[32];
	snprintf(path, sizeof path, "%s.eintr", progress_path);
	FILE *f = fopen(path, "w");
	if (!f)
		return;
	snprintf(text, sizeof text, "%d\n", count);
	fputs(text, f);
	fclose(f);
}

static NOINLINE void wait_for_events(void)
{
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = epoll_pipe[0] };
	epoll_ctl(ep, EPOLL_CTL_ADD, epoll_pipe[0], &ev);
	int eintr = 0;
	record_eintr(0);
	park();
	for (;;) {
		struct epoll_event got;
		if (epoll_wait(ep, &got, 1, -1) < 0 && errno == EINTR)
			record_eintr(++eintr);
	}
}

static NOINLINE void nap(void)
{
	park();
	for (;;)
		sleep_ms(3600 * 1000);
}

static NOINLINE void lock_both(pthread_mutex_t *first, pthread_mutex_t *second)
{
	pthread_mutex_lock(first);
	pthread_barrier_wait(&dl_barrier);
	park();
	pthread_mutex_lock(second);
	KEEP_FRAME();
}

/* The always_inline helper the spinner spends its time in. */
static inline __attribute__((always_inline)) unsigned long mix(unsigned long x)
{
	for (int i = 0; i < 1000; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		__asm__ volatile("" : "+r"(x));
	}
	return x;
}

static NOINLINE void spin(void)
{
	unsigned long x = 88172645463325252UL;
	park();
	for (;;)
		spin_sink = x = mix(x);
}

static inline __attribute__((always_inline)) void park_inline(int fd)
{
	char c;
	while (read(fd, &c, 1) < 0 && errno == EINTR)
		;
	KEEP_FRAME();
}

static NOINLINE void parked_inline_caller(void)
{
	park();
	park_inline(inline_pipe[0]);
	KEEP_FRAME();
}

static NOINLINE void deep_park(void)
{
	char c;
	park();
	while (read(deep_pipe[0], &c, 1) < 0 && errno == EINTR)
		;
	KEEP_FRAME();
}

/* 150 frames of ~600 bytes each: more than 64 KiB of stack. */
static NOINLINE int recurse(int depth)
{
	volatile char pad[560];
	pad[0] = (char)depth;
	if (depth > 1)
		recurse(depth - 1);
	else
		deep_park();
	KEEP_FRAME();
	return pad[0];
}

static NOINLINE void tick(void)
{
	FILE *f = progress_path ? fopen(progress_path, "w") : NULL;
	for (unsigned long n = 1;; n++) {
		if (f) {
			rewind(f);
			fprintf(f, "%lu %d\n", n, atomic_load(&rt_signals));
			fflush(f);
		}
		sleep_ms(10);
	}
}

struct role {
	const char *name;
	void (*run)(void);
};

static void run_deadlock_a(void) { lock_both(&dl_1, &dl_2); }
static void run_deadlock_b(void) { lock_both(&dl_2, &dl_1); }
static void run_deep(void) { recurse(150); }

static void *thread_main(void *arg)
{
	const struct role *r = arg;
	pthread_setname_np(pthread_self(), r->name);
	r->run();
	return NULL;
}

static void start(const struct role *r)
{
	pthread_t t;
	if (pthread_create(&t, NULL, thread_main, (void *)r) != 0) {
		perror("pthread_create");
		exit(1);
	}
}

static void open_listener(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof a;
	listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&a, sizeof a) ||
	    listen(listen_fd, 16) || getsockname(listen_fd, (struct sockaddr *)&a, &len)) {
		perror("listen");
		exit(1);
	}
	printf("port %d\n", ntohs(a.sin_port));
	printf("cond %p\n", (void *)&cond);   /* what gdb's `print &cond` shows */
}

int main(int argc, char **argv)
{
	static const struct role holder = { "holder", hold_and_sleep };
	static const struct role others[] = {
		{ "mutex-waiter", wait_for_lock },   { "cond-waiter", wait_for_signal },
		{ "pipe-reader", read_request },     { "acceptor", accept_client },
		{ "epoller", wait_for_events },      { "sleeper", nap },
		{ "deadlock-a", run_deadlock_a },    { "deadlock-b", run_deadlock_b },
		{ "spinner", spin },                 { "inline-parker", parked_inline_caller },
		{ "deep", run_deep },                { "ticker", tick },
	};
	progress_path = argc > 1 ? argv[1] : NULL;
	struct sigaction sa = { .sa_handler = on_rt_signal, .sa_flags = SA_RESTART };
	sigaction(SIGRTMIN, &sa, NULL);
	if (pipe(idle_pipe) || pipe(epoll_pipe) || pipe(inline_pipe) || pipe(deep_pipe)) {
		perror("pipe");
		return 1;
	}
	open_listener();
	pthread_barrier_init(&dl_barrier, NULL, 2);
	start(&holder);
	while (!atomic_load(&holder_has_lock))
		sleep_ms(1);
	int expected = 1;
	for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
		start(&others[i]);
		if (others[i].run != tick)
			expected++;
	}
	while (atomic_load(&parked) < expected)
		sleep_ms(1);
	printf("ready\n");
	fflush(stdout);
	for (;;)
		pause();
}
