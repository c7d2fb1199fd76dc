/* throughput.c — how much work a process gets done while it is profiled.
 *
 * Usage: throughput [THREADS [COUNTER_FILE [IDLE]]].  Starts THREADS busy
 * threads (default 1), and IDLE idle ones (default 0) that block forever,
 * in turn in pthread_cond_wait, read() on a pipe, epoll_wait and nanosleep
 * (the wall-profile benchmark, bench/wall_profile.py).  Each one calls work_unit() in a loop: a fixed, few
 * microseconds of pure CPU work (hash_block() over a 2 KiB per-thread
 * buffer, then one byte of the buffer changed so no call can be skipped or
 * hoisted), and after each call adds 1 to a shared atomic counter.
 *
 * With COUNTER_FILE, a reporter thread writes "UNITS NS\n" there every
 * 100 ms: the counter and the CLOCK_MONOTONIC time (nanoseconds) at which
 * it was read, so a reader gets an exact rate from two snapshots however
 * late it reads them.  It writes COUNTER_FILE.tmp and renames it over
 * COUNTER_FILE, so a reader never sees a partial line.  The reporter
 * sleeps between writes; a CPU profiler should not stop it.
 *
 * Prints "ready" once every busy thread runs (and the first counter line
 * is written).  Runs until killed.  Used by bench/cpu_profile.py.  Built
 * -O2 -g like the other fixtures.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

/* noclone too: else gcc -O2 calls a specialized copy,
 * hash_block.constprop.0, that profilers show under another name. */
#if defined(__clang__)
#define NOINLINE __attribute__((noinline))
#else
#define NOINLINE __attribute__((noinline, noclone))
#endif
#define BLOCK 2048              /* bytes hashed per work unit */
#define REPORT_NS 100000000L    /* counter file written every 100 ms */

static atomic_uint_fast64_t units_done;
static atomic_int started;
static const char *counter_path;

static uint64_t monotonic_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* FNV-1a over the block: a serial chain of multiplies, so its cost is
 * fixed and cannot be vectorized away. */
static NOINLINE uint64_t hash_block(const unsigned char *p, size_t n, uint64_t seed)
{
	uint64_t h = 0xcbf29ce484222325u ^ seed;
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 0x100000001b3u;
	}
	return h;
}

/* One unit of work.  Writing a byte the next call reads keeps the
 * compiler from reusing an earlier result. */
static NOINLINE uint64_t work_unit(unsigned char *buf, uint64_t seed)
{
	uint64_t h = hash_block(buf, BLOCK, seed);
	buf[h % BLOCK] ^= (unsigned char)(h >> 56);
	return h;
}

static NOINLINE void *busy_thread(void *arg)
{
	unsigned char buf[BLOCK];
	uint64_t h = (uint64_t)(uintptr_t)arg;
	for (size_t i = 0; i < BLOCK; i++)
		buf[i] = (unsigned char)(i * 131 + h);
	atomic_fetch_add(&started, 1);
	for (;;) {
		h = work_unit(buf, h);
		atomic_fetch_add_explicit(&units_done, 1, memory_order_relaxed);
	}
	return NULL;
}

/* Idle threads: each blocks forever in one of four ways. */
static pthread_mutex_t idle_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t idle_never = PTHREAD_COND_INITIALIZER;
static int idle_pipe[2] = { -1, -1 };
static atomic_int idle_started;

static NOINLINE void *idle_thread(void *arg)
{
	int way = (int)(uintptr_t)arg % 4;
	atomic_fetch_add(&idle_started, 1);
	if (way == 0) {
		pthread_mutex_lock(&idle_mu);
		for (;;)
			pthread_cond_wait(&idle_never, &idle_mu);
	} else if (way == 1) {
		char c;
		for (;;)
			if (read(idle_pipe[0], &c, 1) == 0)
				pause();
	} else if (way == 2) {
		int ep = epoll_create1(EPOLL_CLOEXEC);
		struct epoll_event ev = { .events = EPOLLIN };
		epoll_ctl(ep, EPOLL_CTL_ADD, idle_pipe[0], &ev);
		for (;;)
			epoll_wait(ep, &ev, 1, -1);
	}
	for (;;) {
		struct timespec hour = { 3600, 0 };
		nanosleep(&hour, NULL);
	}
	return NULL;
}

static int start_idle(int n)
{
	pthread_t t;
	pthread_attr_t attr;
	if (n > 0 && pipe(idle_pipe) != 0)
		return -1;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	for (int i = 0; i < n; i++)
		if (pthread_create(&t, &attr, idle_thread, (void *)(uintptr_t)i) != 0)
			return -1;
	pthread_attr_destroy(&attr);
	while (atomic_load(&idle_started) < n)
		usleep(1000);
	return 0;
}

static int write_counter(void)
{
	char tmp[4096], line[64];
	if (snprintf(tmp, sizeof tmp, "%s.tmp", counter_path) >= (int)sizeof tmp)
		return -1;
	uint64_t units = atomic_load_explicit(&units_done, memory_order_relaxed);
	uint64_t now = monotonic_ns();
	int len = snprintf(line, sizeof line, "%llu %llu\n", (unsigned long long)units,
			   (unsigned long long)now);
	FILE *f = fopen(tmp, "w");
	if (!f)
		return -1;
	int ok = fwrite(line, 1, (size_t)len, f) == (size_t)len;
	if (fclose(f) != 0)
		ok = 0;
	if (!ok || rename(tmp, counter_path) != 0) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

static NOINLINE void *reporter_thread(void *arg)
{
	(void)arg;
	struct timespec next;
	clock_gettime(CLOCK_MONOTONIC, &next);
	for (;;) {
		next.tv_nsec += REPORT_NS;
		if (next.tv_nsec >= 1000000000L) {
			next.tv_nsec -= 1000000000L;
			next.tv_sec++;
		}
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR)
			;
		if (write_counter() != 0) {
			fprintf(stderr, "throughput: cannot write %s: %s\n", counter_path,
				strerror(errno));
			exit(1);
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	int nthreads = argc > 1 ? atoi(argv[1]) : 1;
	int nidle = argc > 3 ? atoi(argv[3]) : 0;
	if (nthreads < 1 || nthreads > 4096 || nidle < 0 || nidle > 100000) {
		fprintf(stderr, "usage: throughput [THREADS [COUNTER_FILE [IDLE]]]\n");
		return 2;
	}
	counter_path = argc > 2 ? argv[2] : NULL;
	pthread_t t;
	if (start_idle(nidle) != 0) {
		perror("idle threads");
		return 1;
	}
	for (int i = 0; i < nthreads; i++) {
		if (pthread_create(&t, NULL, busy_thread, (void *)(uintptr_t)(i + 1)) != 0) {
			perror("pthread_create");
			return 1;
		}
	}
	while (atomic_load(&started) < nthreads)
		usleep(1000);
	if (counter_path) {
		if (write_counter() != 0) {
			fprintf(stderr, "throughput: cannot write %s: %s\n", counter_path,
				strerror(errno));
			return 1;
		}
		if (pthread_create(&t, NULL, reporter_thread, NULL) != 0) {
			perror("pthread_create");
			return 1;
		}
	}
	printf("ready\n");
	fflush(stdout);
	for (;;)
		pause();
}
