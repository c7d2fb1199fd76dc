/* alloc_churn.c — the heap benchmark's target (bench/heap_profile.py): an
 * allocation-heavy program whose throughput is the figure.
 *
 * Usage: alloc_churn THREADS SECONDS [PASSES]
 *
 * Each thread replaces blocks in a ring of 256 live ones: free the oldest,
 * malloc a new one of an assorted size (mostly 16 B - 1 KiB, one in 64 of
 * 4-16 KiB, one in 4096 of 256 KiB, as a server's mix), and fill it, as
 * a program fills what it allocates (a loop that only allocates would
 * make any interposed allocator look many times its real cost), then
 * reads it PASSES more times (default 0), as a program that works on
 * what it allocates: 0 makes the most allocations a second (tens of
 * millions here, on 2 threads), 1 about two million.  When
 * SECONDS have passed it prints "ops N" (malloc/free pairs, all threads)
 * and "ops_per_s X", then frees everything and exits.  Sizes come from a
 * per-thread xorshift, so every run makes the same requests.
 *
 * With ALLOC_CHURN_WAIT=1 in its environment it prints "ready" and starts
 * only once a line arrives on stdin: a profiler that attaches to it (the
 * benchmark's `pprofc attach`) is then in place for the whole run.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RING 256
#define MAX_THREADS 64

struct worker {
	pthread_t thread;
	uint64_t seed;
	uint64_t ops;
	uint64_t sum;                   /* of the work passes, printed */
};

static double deadline;
static int passes;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t next(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

static size_t assorted_size(uint64_t *x)
{
	uint64_t r = next(x);
	if ((r & 4095) == 0)
		return 256 * 1024;
	if ((r & 63) == 0)
		return 4096 + (r >> 20) % (12 * 1024);
	return 16 + (r >> 12) % 1009;
}

/* PASSES reads over a block (a sum the compiler cannot drop: it is
 * kept in the worker). */
static uint64_t work(const unsigned char *p, size_t size)
{
	uint64_t sum = 0;
	for (int k = 0; k < passes; k++)
		for (size_t j = 0; j < size; j++)
			sum += p[j] ^ (unsigned)k;
	return sum;
}

static void *churn(void *arg)
{
	struct worker *w = arg;
	unsigned char *ring[RING] = { 0 };
	uint64_t ops = 0;
	for (size_t i = 0;; i = (i + 1) % RING) {
		/* The clock is read once per ring turn: cheap next to 256 pairs. */
		if (i == 0 && now() >= deadline)
			break;
		free(ring[i]);
		size_t size = assorted_size(&w->seed);
		ring[i] = malloc(size);
		if (!ring[i]) {
			perror("malloc");
			exit(1);
		}
		memset(ring[i], (int)ops, size);
		w->sum += work(ring[i], size);
		ops++;
	}
	for (size_t i = 0; i < RING; i++)
		free(ring[i]);
	w->ops = ops;
	return NULL;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 2;
	double seconds = argc > 2 ? atof(argv[2]) : 2.0;
	passes = argc > 3 ? atoi(argv[3]) : 0;
	if (n < 1 || n > MAX_THREADS || seconds <= 0 || passes < 0) {
		fprintf(stderr, "usage: alloc_churn THREADS(1-%d) SECONDS [PASSES]\n", MAX_THREADS);
		return 2;
	}
	static struct worker w[MAX_THREADS];
	const char *wait = getenv("ALLOC_CHURN_WAIT");
	if (wait && strcmp(wait, "1") == 0) {
		char line[16];
		printf("ready\n");
		fflush(stdout);
		if (!fgets(line, sizeof line, stdin))
			return 1;
	}
	struct timespec cpu0, cpu1;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu0);
	double start = now();
	deadline = start + seconds;
	for (int i = 0; i < n; i++) {
		w[i].seed = 0x9e3779b97f4a7c15ULL * (uint64_t)(i + 1);
		if (pthread_create(&w[i].thread, NULL, churn, &w[i]) != 0) {
			perror("pthread_create");
			return 1;
		}
	}
	uint64_t ops = 0, sum = 0;
	for (int i = 0; i < n; i++) {
		pthread_join(w[i].thread, NULL);
		ops += w[i].ops;
		sum += w[i].sum;
	}
	double took = now() - start;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu1);
	double cpu = (double)(cpu1.tv_sec - cpu0.tv_sec) + (cpu1.tv_nsec - cpu0.tv_nsec) * 1e-9;
	/* CPU time per pair: what the benchmark compares when other work
	 * shares the CPUs (throughput then measures the neighbours too). */
	printf("ops %llu\nops_per_s %.0f\ncpu_ns_per_op %.2f\nsum %llu\n",
	       (unsigned long long)ops, ops / took, ops ? cpu * 1e9 / (double)ops : 0.0,
	       (unsigned long long)sum);
	return 0;
}
