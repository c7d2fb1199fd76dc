/* heap_window.c — allocations before and during a window, for
 * `pprofc attach PID --profile heap|allocs` (test_heap_attach.py).
 *
 * Usage: heap_window [KEEP_BLOCKS [CHURN_BLOCKS]].  It allocates
 * BEFORE_BLOCKS blocks that stay live, prints "ready" and waits for a
 * line on stdin: the profiler is attached by then.  Then, the window:
 * keep_in_window() allocates KEEP_BLOCKS (default 16384) blocks of 4096
 * bytes and keeps them, churn_in_window() allocates and frees
 * CHURN_BLOCKS (default 16384) blocks of 1000, calloc_in_window() keeps
 * KEEP_BLOCKS/8 blocks of 64 x 40 bytes, realloc_in_window() grows
 * KEEP_BLOCKS/8 blocks from 1501 to 3002 bytes and keeps them,
 * aligned_in_window() keeps KEEP_BLOCKS/8 blocks from each of
 * posix_memalign, aligned_alloc, memalign, valloc, pvalloc and
 * reallocarray (each its own size), a second thread (started before
 * "ready", waiting for the window) keeps KEEP_BLOCKS/8 blocks of 1234
 * bytes in thread_in_window, a thread is created and joined in the window
 * (pprofc must not make its clone fail), and half the blocks allocated
 * before the window are freed (their frees must change nothing).  It
 * prints one line per path, "PATH SIZE ALLOCS FREES", then "done", and
 * waits for EOF on stdin before it exits, everything still live.
 *
 * Usage: heap_window [KEEP [CHURN [spawn]]].  With "spawn", the thread
 * created in the window keeps SPAWN_BLOCKS blocks of SPAWN_SIZE bytes in
 * spawned_in_window, but only once told: it prints "spawned TID" and
 * waits for a line on stdin (the test first waits until pprofc has put
 * probes on that thread), so that what it allocates is known to be seen.
 */
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define BEFORE_BLOCKS 4096
#define BEFORE_SIZE 3001
#define KEEP_SIZE 4096
#define CHURN_SIZE 1000
#define CALLOC_N 64
#define CALLOC_SIZE 40
#define REALLOC_FROM 1501
#define REALLOC_TO 3002
#define THREAD_SIZE 1234

static void *volatile sink;

/* Writes to each block, as a program would: no allocation is optimized
 * out and each is really paged in. */
static void *touch(void *p, size_t n)
{
	if (!p)
		abort();
	memset(p, 1, n < 64 ? n : 64);
	sink = p;
	return p;
}

static __attribute__((noinline)) void **before_window(void)
{
	void **v = malloc(BEFORE_BLOCKS * sizeof *v);
	for (int i = 0; i < BEFORE_BLOCKS; i++)
		v[i] = touch(malloc(BEFORE_SIZE), BEFORE_SIZE);
	return v;
}

static __attribute__((noinline)) void **keep_in_window(long n)
{
	void **v = calloc((size_t)n, sizeof *v);
	for (long i = 0; i < n; i++)
		v[i] = touch(malloc(KEEP_SIZE), KEEP_SIZE);
	return v;
}

static __attribute__((noinline)) void churn_in_window(long n)
{
	for (long i = 0; i < n; i++)
		free(touch(malloc(CHURN_SIZE), CHURN_SIZE));
}

static __attribute__((noinline)) void **calloc_in_window(long n)
{
	void **v = malloc((size_t)n * sizeof *v);
	for (long i = 0; i < n; i++)
		v[i] = touch(calloc(CALLOC_N, CALLOC_SIZE), CALLOC_SIZE);
	return v;
}

static __attribute__((noinline)) void **realloc_in_window(long n)
{
	void **v = malloc((size_t)n * sizeof *v);
	for (long i = 0; i < n; i++)
		v[i] = touch(malloc(REALLOC_FROM), REALLOC_FROM);
	for (long i = 0; i < n; i++)
		v[i] = touch(realloc(v[i], REALLOC_TO), REALLOC_TO);
	return v;
}

/* The other allocation functions: one size each, so that the profile's
 * `bytes` label says which. */
struct aligned_path {
	const char *name;
	size_t size;
};
static const struct aligned_path aligned_paths[] = {
	{ "posix_memalign", 2001 }, { "aligned_alloc", 2112 }, { "memalign", 2003 },
	{ "valloc", 2005 }, { "pvalloc", 2007 }, { "reallocarray", 7 * 301 },
};

static void *aligned_one(int which)
{
	size_t n = aligned_paths[which].size;
	void *p = NULL;
	switch (which) {
	case 0: return posix_memalign(&p, 64, n) == 0 ? p : NULL;
	case 1: return aligned_alloc(64, n);
	case 2: return memalign(128, n);
	case 3: return valloc(n);
	case 4: return pvalloc(n);
	default: return reallocarray(NULL, 7, 301);
	}
}

static __attribute__((noinline)) void aligned_in_window(long n)
{
	for (int k = 0; k < 6; k++)
		for (long i = 0; i < n; i++)
			sink = touch(aligned_one(k), aligned_paths[k].size);
}

static pthread_mutex_t window_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t window_open = PTHREAD_COND_INITIALIZER;
static int in_window;

static __attribute__((noinline)) void *thread_in_window(void *arg)
{
	long n = *(long *)arg;
	pthread_mutex_lock(&window_lock);
	while (!in_window)
		pthread_cond_wait(&window_open, &window_lock);
	pthread_mutex_unlock(&window_lock);
	void **v = malloc((size_t)n * sizeof *v);
	for (long i = 0; i < n; i++)
		v[i] = touch(malloc(THREAD_SIZE), THREAD_SIZE);
	return v;
}

#define SPAWN_SIZE 777
#define SPAWN_BLOCKS 1000

static pthread_cond_t spawn_go = PTHREAD_COND_INITIALIZER;
static pid_t spawned_tid;
static int spawn_told;

static __attribute__((noinline)) void *spawned_in_window(void *arg)
{
	if (!arg) {
		free(touch(malloc(999), 999));
		return NULL;
	}
	pthread_mutex_lock(&window_lock);
	spawned_tid = (pid_t)syscall(SYS_gettid);
	pthread_cond_broadcast(&spawn_go);
	while (!spawn_told)
		pthread_cond_wait(&spawn_go, &window_lock);
	pthread_mutex_unlock(&window_lock);
	void **v = malloc(SPAWN_BLOCKS * sizeof *v);
	for (int i = 0; i < SPAWN_BLOCKS; i++)
		v[i] = touch(malloc(SPAWN_SIZE), SPAWN_SIZE);
	return v;
}

/* The spawn handshake (see the top): "spawned TID", then a line. */
static int tell_spawned(void)
{
	char line[64];
	pthread_mutex_lock(&window_lock);
	while (!spawned_tid)
		pthread_cond_wait(&spawn_go, &window_lock);
	pthread_mutex_unlock(&window_lock);
	printf("spawned %d\n", (int)spawned_tid);
	fflush(stdout);
	if (!fgets(line, sizeof line, stdin))
		return -1;
	pthread_mutex_lock(&window_lock);
	spawn_told = 1;
	pthread_cond_broadcast(&spawn_go);
	pthread_mutex_unlock(&window_lock);
	return 0;
}

int main(int argc, char **argv)
{
	long keep = argc > 1 ? atol(argv[1]) : 16384, churn = argc > 2 ? atol(argv[2]) : 16384;
	int spawn = argc > 3 && strcmp(argv[3], "spawn") == 0;
	void *spawned = NULL;
	char line[64];
	void **before = before_window();
	long per_thread = keep / 8;
	pthread_t th;
	void *kept;
	if (pthread_create(&th, NULL, thread_in_window, &per_thread))
		return 1;
	printf("ready\n");
	fflush(stdout);
	if (!fgets(line, sizeof line, stdin))
		return 1;
	sink = keep_in_window(keep);
	churn_in_window(churn);
	sink = calloc_in_window(keep / 8);
	sink = realloc_in_window(keep / 8);
	aligned_in_window(keep / 8);
	pthread_mutex_lock(&window_lock);
	in_window = 1;
	pthread_cond_signal(&window_open);
	pthread_mutex_unlock(&window_lock);
	if (pthread_join(th, &kept) ||
	    pthread_create(&th, NULL, spawned_in_window, spawn ? &spawn : NULL) ||
	    (spawn && tell_spawned()) || pthread_join(th, &spawned))
		return 1;
	if (spawned)
		sink = spawned;
	sink = kept;
	for (int i = 0; i < BEFORE_BLOCKS / 2; i++)
		free(before[i]);
	printf("keep_in_window %d %ld 0\n", KEEP_SIZE, keep);
	printf("churn_in_window %d %ld %ld\n", CHURN_SIZE, churn, churn);
	printf("calloc_in_window %d %ld 0\n", CALLOC_N * CALLOC_SIZE, keep / 8);
	printf("realloc_in_window %d %ld 0\n", REALLOC_TO, keep / 8);
	for (int k = 0; k < 6; k++)
		printf("%s %zu %ld 0\n", aligned_paths[k].name, aligned_paths[k].size, keep / 8);
	printf("thread_in_window %d %ld 0\n", THREAD_SIZE, keep / 8);
	if (spawn)
		printf("spawned_in_window %d %d 0\n", SPAWN_SIZE, SPAWN_BLOCKS);
	printf("before_window %d 0 %d\n", BEFORE_SIZE, BEFORE_BLOCKS / 2);
	printf("done\n");
	fflush(stdout);
	while (fgets(line, sizeof line, stdin))
		;
	return 0;
}
