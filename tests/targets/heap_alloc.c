/* heap_alloc.c — known allocations for the heap and allocs profiles
 * (tests/integration/test_preload.py, and `pprofc run --profile
 * heap|allocs` end to end): each call path allocates one size of its own,
 * so a profile can be checked against the truth this program prints.
 *
 * Usage: heap_alloc [--hold] [LIVE_MIB [CHURN_MIB]].  WORKERS threads
 * share the work: keep_live() allocates LIVE_MIB (default 64) in blocks
 * of 4096 bytes and never frees them; churn() allocates and frees
 * CHURN_MIB (default 1024) in blocks of 1000; realloc_chain() grows
 * blocks through realloc; aligned_family() calls every other allocation
 * function once per round; cxx_new() calls C++'s operator new and delete
 * (libstdc++'s, by their mangled names so that this stays a C program;
 * linked at build time, not dlopen'd, whose own allocations would blur
 * the truth; "0 0" where the build found no libstdc++).  The main thread
 * allocates a few huge blocks, allocates from a signal handler (raise(),
 * and a storm of signals at a thread that allocates without pause), and
 * forks a child that allocates and frees a block its parent sampled.
 * With --hold it waits for EOF on stdin before it exits, every live block
 * still live.
 *
 * Prints one line per path, "PATH SIZE ALLOCS FREES" (bytes asked for
 * per block, blocks allocated, blocks freed), then "done": the same
 * output whatever the rate, with or without a profiler.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define WORKERS 4
#define LIVE_SIZE 4096
#define CHURN_SIZE 1000
#define CHURN_BATCH 64
#define CHAIN_START 1501        /* realloc_chain doubles it CHAIN_STEPS times */
#define CHAIN_STEPS 4
#define CHAINS 64               /* per worker */
#define ALIGNED_ROUNDS 32       /* per worker */
#define CXX_SIZE 1234
#define CXX_BLOCKS 64           /* per worker */
#define HUGE_SIZE (8u << 20)
#define HUGE_BLOCKS 8
#define RAISES 16
#define RAISE_SIZE 777
#define STORM_SIGNALS 200
#define STORM_HANDLER_SIZE 666
#define STORM_LOOP 100
#define STORM_LOOP_SIZE 555
#define STORM_HANDLER_WARM_SIZE 670     /* glibc's chunk of 666 bytes, 688 */
#define STORM_LOOP_WARM_SIZE 560        /* glibc's chunk of 555 bytes, 576 */
#define FORK_PARENT_SIZE 3335
#define FORK_CHILD_SIZE 3331
#define FORK_CHILD_BLOCKS 8

/* The paths' sizes besides LIVE_SIZE and CHURN_SIZE: aligned_family().
 * calloc's 21,000 bytes: at test_preload's rate of 64 KiB its 128 blocks
 * go unsampled with probability 2e-18 (with 2,100 bytes, 1.6%: seen). */
enum {
	MEMALIGN_POSIX = 2112, ALIGNED_ALLOC = 2304, MEMALIGN = 2176, VALLOC = 5008,
	PVALLOC = 5200, CALLOC_COUNT = 10, CALLOC_EACH = 2100, ARRAY_COUNT = 9, ARRAY_EACH = 250,
};

static long live_per_worker, churn_per_worker;
static void **live_blocks;      /* mmap'd: the bookkeeping allocates nothing */
static atomic_int raised, storm_handled, storm_done;
static char out_buffer[8192];   /* stdout's, so that stdio allocates nothing */
#ifdef HEAP_ALLOC_CXX
/* operator new(size_t) and operator delete(void *), mangled. */
void *_Znwm(size_t n);
void _ZdlPv(void *p);
#define CXX_ROUNDS CXX_BLOCKS
#else
#define CXX_ROUNDS 0
#define _Znwm(n) NULL
#define _ZdlPv(p) ((void)(p))
#endif

/* An allocation the program touches, so it cannot be optimized away. */
static void *touch(void *p)
{
	if (!p)
		abort();
	*(volatile char *)p = 1;
	return p;
}

/* A profiler may move a block it samples (libpprofc_heap.so does, to
 * mark it): what the program sees must not change.  A failed check ends
 * the program with status 3 and one line on stderr. */
static void must(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "heap_alloc: %s\n", what);
		_exit(3);
	}
}

static void fill(unsigned char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)(seed + i * 7);
}

static int filled(const unsigned char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != (unsigned char)(seed + i * 7))
			return 0;
	return 1;
}

static int zeroed(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

static __attribute__((noinline)) void keep_live(void **slots, long n)
{
	for (long i = 0; i < n; i++)
		slots[i] = touch(malloc(LIVE_SIZE));
}

static __attribute__((noinline)) void churn(long n)
{
	void *batch[CHURN_BATCH];

	for (long done = 0; done < n; done += CHURN_BATCH) {
		int k = n - done < CHURN_BATCH ? (int)(n - done) : CHURN_BATCH;

		for (int i = 0; i < k; i++)
			batch[i] = touch(malloc(CHURN_SIZE));
		for (int i = 0; i < k; i++)
			free(batch[i]);
	}
}

static __attribute__((noinline)) void realloc_chain(void)
{
	for (int c = 0; c < CHAINS; c++) {
		size_t size = CHAIN_START;
		void *p = touch(realloc(NULL, size));

		for (int s = 0; s < CHAIN_STEPS; s++) {
			fill(p, size, (unsigned)(c + s));
			size *= 2;
			p = realloc(p, size);
			must(p && filled(p, size / 2, (unsigned)(c + s)), "realloc lost the block's bytes");
			touch(p);
		}
		free(p);
	}
}

static __attribute__((noinline)) void aligned_family(void)
{
	for (int r = 0; r < ALIGNED_ROUNDS; r++) {
		void *p;

		if (posix_memalign(&p, 64, MEMALIGN_POSIX))
			abort();
		free(touch(p));
		free(touch(aligned_alloc(256, ALIGNED_ALLOC)));
		free(touch(memalign(128, MEMALIGN)));
		free(touch(valloc(VALLOC)));
		free(touch(pvalloc(PVALLOC)));
		p = calloc(CALLOC_COUNT, CALLOC_EACH);
		must(p && zeroed(p, CALLOC_COUNT * CALLOC_EACH), "calloc gave a block not zeroed");
		free(touch(p));
		free(touch(reallocarray(NULL, ARRAY_COUNT, ARRAY_EACH)));
	}
}

static __attribute__((noinline)) void cxx_new(void)
{
	for (int i = 0; i < CXX_ROUNDS; i++)
		_ZdlPv(touch(_Znwm(CXX_SIZE)));
}

static void *worker(void *arg)
{
	long i = (long)arg;

	keep_live(live_blocks + i * live_per_worker, live_per_worker);
	churn(churn_per_worker);
	realloc_chain();
	aligned_family();
	cxx_new();
	return NULL;
}

static __attribute__((noinline)) void huge_blocks(void)
{
	for (int i = 0; i < HUGE_BLOCKS; i++)
		free(touch(malloc(HUGE_SIZE)));
}

static void on_raise(int sig)
{
	(void)sig;
	free(touch(malloc(RAISE_SIZE)));
	raised++;
}

static void on_storm(int sig)
{
	(void)sig;
	free(touch(malloc(STORM_HANDLER_SIZE)));
	storm_handled++;
}

/* Allocates while the storm's next signal is on its way, so that it
 * lands inside malloc and free (and inside the sampler, when it runs);
 * STORM_LOOP blocks a signal at most, so the count stays bounded however
 * the threads are scheduled. */
static void *storm_target(void *arg)
{
	sigset_t usr2;

	(void)arg;
	/* A handler that allocates may interrupt malloc holding its arena's
	 * lock only if its own malloc takes no lock: its size's tcache bin
	 * must hold a block.  So this thread's first allocations (its arena,
	 * its tcache) and one block of each storm size class go first, with
	 * the storm's signals held back meanwhile (seen: a plain run, no
	 * profiler, deadlocked when the first signal landed in this thread's
	 * first malloc).  670 and 560 bytes: the chunk sizes of 666 and 555,
	 * not the printed paths' own sizes. */
	sigemptyset(&usr2);
	sigaddset(&usr2, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &usr2, NULL);
	free(touch(malloc(STORM_HANDLER_WARM_SIZE)));
	free(touch(malloc(STORM_LOOP_WARM_SIZE)));
	pthread_sigmask(SIG_UNBLOCK, &usr2, NULL);
	while (!storm_done) {
		int seen = storm_handled;

		for (int i = 0; i < STORM_LOOP && storm_handled == seen; i++)
			free(touch(malloc(STORM_LOOP_SIZE)));
		while (storm_handled == seen && !storm_done)
			sched_yield();
	}
	return NULL;
}

static void start_thread(pthread_t *t, void *(*fn)(void *), void *arg)
{
	pthread_attr_t attr;

	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 256 << 10);
	if (pthread_create(t, &attr, fn, arg))
		abort();
	pthread_attr_destroy(&attr);
}

/* Each signal waits for the previous one to be handled: the count is
 * exact, with no timing. */
static __attribute__((noinline)) void signal_storm(void)
{
	pthread_t t;

	start_thread(&t, storm_target, NULL);
	for (int i = 0; i < STORM_SIGNALS; i++) {
		pthread_kill(t, SIGUSR2);
		while (storm_handled <= i)
			sched_yield();
	}
	storm_done = 1;
	pthread_join(t, NULL);
}

static __attribute__((noinline)) void raise_path(void)
{
	for (int i = 0; i < RAISES; i++)
		raise(SIGUSR1);
}

/* The child frees a block its parent allocated (and may have sampled),
 * allocates blocks of its own, and exits; the parent frees the block
 * afterwards: one free of it in the parent's profile, nothing of the
 * child's. */
static __attribute__((noinline)) void fork_path(void)
{
	void *shared = touch(malloc(FORK_PARENT_SIZE));
	int status;
	pid_t pid = fork();

	if (pid < 0)
		abort();
	if (pid == 0) {
		free(shared);
		for (int i = 0; i < FORK_CHILD_BLOCKS; i++)
			free(touch(malloc(FORK_CHILD_SIZE)));
		_exit(0);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status))
		abort();
	free(shared);
}

static void install(int sig, void (*fn)(int))
{
	struct sigaction sa;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = fn;
	sa.sa_flags = SA_RESTART;
	sigaction(sig, &sa, NULL);
}

static void print_truth(void)
{
	long w = WORKERS, chains = CHAINS * w, rounds = ALIGNED_ROUNDS * w;
	size_t size = CHAIN_START;

	printf("keep_live %d %ld 0\n", LIVE_SIZE, live_per_worker * w);
	printf("churn %d %ld %ld\n", CHURN_SIZE, churn_per_worker * w, churn_per_worker * w);
	for (int s = 0; s <= CHAIN_STEPS; s++, size *= 2)
		printf("realloc_chain %zu %ld %ld\n", size, chains, chains);
	printf("posix_memalign %d %ld %ld\n", MEMALIGN_POSIX, rounds, rounds);
	printf("aligned_alloc %d %ld %ld\n", ALIGNED_ALLOC, rounds, rounds);
	printf("memalign %d %ld %ld\n", MEMALIGN, rounds, rounds);
	printf("valloc %d %ld %ld\n", VALLOC, rounds, rounds);
	printf("pvalloc %d %ld %ld\n", PVALLOC, rounds, rounds);
	printf("calloc %d %ld %ld\n", CALLOC_COUNT * CALLOC_EACH, rounds, rounds);
	printf("reallocarray %d %ld %ld\n", ARRAY_COUNT * ARRAY_EACH, rounds, rounds);
	printf("cxx_new %d %ld %ld\n", CXX_SIZE, CXX_ROUNDS * w, CXX_ROUNDS * w);
	printf("huge_blocks %u %d %d\n", HUGE_SIZE, HUGE_BLOCKS, HUGE_BLOCKS);
	printf("raise_handler %d %d %d\n", RAISE_SIZE, (int)raised, (int)raised);
	printf("storm_handler %d %d %d\n", STORM_HANDLER_SIZE, (int)storm_handled, (int)storm_handled);
	printf("fork_parent %d 1 1\n", FORK_PARENT_SIZE);
	printf("fork_child %d %d %d\n", FORK_CHILD_SIZE, FORK_CHILD_BLOCKS, FORK_CHILD_BLOCKS);
}

static void hold(void)
{
	char buf[64];

	while (read(0, buf, sizeof buf) > 0)
		;
}

int main(int argc, char **argv)
{
	int held = argc > 1 && strcmp(argv[1], "--hold") == 0;
	long live_mib = argc > 1 + held ? atol(argv[1 + held]) : 64;
	long churn_mib = argc > 2 + held ? atol(argv[2 + held]) : 1024;
	pthread_t workers[WORKERS];

	setvbuf(stdout, out_buffer, _IOFBF, sizeof out_buffer);
	live_per_worker = (live_mib << 20) / LIVE_SIZE / WORKERS;
	churn_per_worker = (churn_mib << 20) / CHURN_SIZE / WORKERS;
	live_blocks = mmap(NULL, sizeof(void *) * (size_t)(live_per_worker * WORKERS + 1),
			   PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (live_blocks == MAP_FAILED)
		abort();
	install(SIGUSR1, on_raise);
	install(SIGUSR2, on_storm);
	for (long i = 0; i < WORKERS; i++)
		start_thread(&workers[i], worker, (void *)i);
	for (int i = 0; i < WORKERS; i++)
		pthread_join(workers[i], NULL);
	huge_blocks();
	raise_path();
	signal_storm();
	fork_path();
	print_truth();
	printf("done\n");
	fflush(stdout);
	if (held)
		hold();
	return 0;
}
