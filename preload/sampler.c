/* sampler.c — the allocation functions the target calls instead of its
 * allocator's (malloc, calloc, realloc, reallocarray, free, posix_memalign,
 * aligned_alloc, memalign, valloc, pvalloc; C++ new and delete reach
 * malloc and free), and the choice of which allocations to sample.
 *
 * Sampling is by bytes, as Go's and tcmalloc's: each thread counts down
 * the bytes until its next sample, drawn from an exponential distribution
 * of mean `rate` (the ring's header), so that a block of n bytes is
 * sampled with probability 1 - exp(-n/rate) whatever came before it (the
 * reader unscales with that formula).  Everything but a sampled
 * allocation costs one subtraction; a free costs a hash and one load
 * unless a live sampled block is homed in its region of the address set
 * (addrset.c), then a bounded probe.
 *
 * Only these functions are exported (-fvisibility=hidden elsewhere).
 */
#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "preload.h"

#define PRELOAD_EXPORT __attribute__((visibility("default")))
#define POOL_ALIGN 16

/* Per thread, in static TLS (initial-exec: no __tls_get_addr, which may
 * allocate).  Zero at thread start: the first allocation takes the slow
 * path, which seeds the thread. */
struct sampler_thread {
	uint64_t left;          /* bytes until the next sample */
	uint64_t rng;           /* xorshift64* state; 0: not seeded yet */
	int32_t tid;
	unsigned epoch;         /* preload_epoch when seeded */
	bool busy;              /* inside the sampler: nested allocations are not sampled */
};

static __thread struct sampler_thread self;

static uint64_t next_random(struct sampler_thread *t)
{
	t->rng ^= t->rng >> 12;
	t->rng ^= t->rng << 25;
	t->rng ^= t->rng >> 27;
	return t->rng * 0x2545f4914f6cdd1dull;
}

/* Bytes until the next sample: -log(u) * rate with u uniform in (0, 1];
 * 0 at rate 1, where every allocation is sampled. */
static uint64_t draw(struct sampler_thread *t)
{
	double u, bytes;

	if (preload_rate <= 1)
		return 0;
	u = (double)((next_random(t) >> 11) + 1) * 0x1p-53;
	bytes = -log(u) * (double)preload_rate;
	return bytes >= 0x1p63 ? (uint64_t)1 << 63 : (uint64_t)bytes;
}

/* Threads differ by tid, runs by time; and a forked child's thread from
 * its parent's, which it is a copy of (its tid too), by the epoch. */
static void seed(struct sampler_thread *t)
{
	t->epoch = atomic_load_explicit(&preload_epoch, memory_order_relaxed);
	t->tid = (int32_t)syscall(SYS_gettid);
	t->rng = ((uint64_t)t->tid * 0x9e3779b97f4a7c15ull) ^ preload_now_ns();
	if (!t->rng)
		t->rng = 1;
}

/* The countdown crossed zero, or the thread is new, or recording is not
 * on: whether this allocation of n bytes is sampled.  Out of line, so
 * that the allocation functions' common path saves few registers. */
static __attribute__((noinline)) bool sample_due_slow(struct sampler_thread *t, size_t n)
{
	int state = atomic_load_explicit(&preload_state, memory_order_relaxed);

	if (state != PRELOAD_RECORDING) {
		if (state == PRELOAD_OFF)
			t->left = UINT64_MAX;   /* never the slow path again */
		return false;
	}
	if (t->busy)
		return false;
	if (!t->rng) {
		seed(t);
		t->left = draw(t);
		if (n < t->left) {
			t->left -= n;
			return false;
		}
	}
	t->left = draw(t);
	return true;
}

static inline bool sample_due(size_t n)
{
	struct sampler_thread *t = &self;

	if (__builtin_expect(n < t->left, 1)) {
		t->left -= n;
		return false;
	}
	return sample_due_slow(t, n);
}

/* A forked child that follows gets its ring here, at its first sampled
 * allocation, under the reentrancy guard; its threads are copies of its
 * parent's and seed again. */
static __attribute__((noinline)) void sample(void *p, size_t n)
{
	struct sampler_thread *t = &self;

	t->busy = true;
	if (preload_adopt()) {
		if (t->epoch != atomic_load_explicit(&preload_epoch, memory_order_relaxed)) {
			seed(t);
			t->left = draw(t);
		}
		preload_record_alloc(p, n, t->tid);
	}
	t->busy = false;
}

/* Every allocation function's tail: p (maybe NULL) of n bytes asked. */
static inline void *account(void *p, size_t n)
{
	if (p && sample_due(n))
		sample(p, n);
	return p;
}

/* Whether p may be a sampled block: one load, of a counter that stays in
 * L1, answers no for nearly every free.  (No process-wide count of live
 * sampled blocks is asked first: every sample would write its cache
 * line, and every free on the other CPUs would then miss on it.) */
static inline bool maybe_sampled(const void *p)
{
	return p && preload_set_may_hold((uintptr_t)p) &&
	       atomic_load_explicit(&preload_state, memory_order_relaxed) == PRELOAD_RECORDING;
}

/* A sampled block goes back: its FREE record, under the reentrancy
 * guard too (a signal handler that lands between the record's reserve
 * and publish must not sample, or wait on a full ring behind it).  If
 * the guard was up already, this free interrupted the sampler on this
 * thread, which may hold an unpublished record: it must not wait. */
static __attribute__((noinline)) void record_free(void *p)
{
	struct sampler_thread *t = &self;
	bool nested = t->busy;

	t->busy = true;
	preload_record_free(p, !nested);
	t->busy = nested;
}

/* A block goes back to the allocator (free, or moved by realloc). */
static inline void release(void *p)
{
	if (maybe_sampled(p) && preload_set_remove((uintptr_t)p))
		record_free(p);
}

PRELOAD_EXPORT void *malloc(size_t n)
{
	if (!preload_real_ready())
		return preload_pool_alloc(n, POOL_ALIGN);
	return account(preload_real.malloc(n), n);
}

PRELOAD_EXPORT void *calloc(size_t count, size_t n)
{
	size_t bytes;

	if (__builtin_mul_overflow(count, n, &bytes)) {
		errno = ENOMEM;
		return NULL;
	}
	if (!preload_real_ready())
		return preload_pool_alloc(bytes, POOL_ALIGN);   /* static: zeroed, never reused */
	return account(preload_real.calloc(count, n), bytes);
}

PRELOAD_EXPORT void free(void *p)
{
	if (__builtin_expect(preload_pool_owns(p), 0))
		return;
	release(p);
	if (preload_real_ready())
		preload_real.free(p);
}

/* A pool block moves to the real allocator (the pool never frees). */
static void *realloc_pool_block(void *old, size_t n)
{
	size_t had = preload_pool_size(old);
	void *p = malloc(n);

	if (p)
		memcpy(p, old, had < n ? had : n);
	return p;
}

/* The old block is released before the allocator may reuse its address
 * (if realloc then fails, the block stays live but is no longer sampled:
 * its earlier FREE record stands). */
static void *resize(void *old, size_t n)
{
	if (preload_pool_owns(old))
		return realloc_pool_block(old, n);
	if (!preload_real_ready())
		return old ? NULL : preload_pool_alloc(n, POOL_ALIGN);
	release(old);
	return account(preload_real.realloc(old, n), n);
}

PRELOAD_EXPORT void *realloc(void *old, size_t n)
{
	return resize(old, n);
}

/* Through realloc, not the allocator's reallocarray: glibc's would bypass
 * an interposed allocator's realloc, and some allocators have none. */
PRELOAD_EXPORT void *reallocarray(void *old, size_t count, size_t n)
{
	size_t bytes;

	if (__builtin_mul_overflow(count, n, &bytes)) {
		errno = ENOMEM;
		return NULL;
	}
	return resize(old, bytes);
}

PRELOAD_EXPORT int posix_memalign(void **out, size_t align, size_t n)
{
	int err;

	if (!preload_real_ready()) {
		*out = preload_pool_alloc(n, align);
		return *out ? 0 : ENOMEM;
	}
	err = preload_real.posix_memalign(out, align, n);
	if (!err)
		account(*out, n);
	return err;
}

PRELOAD_EXPORT void *aligned_alloc(size_t align, size_t n)
{
	if (!preload_real_ready())
		return preload_pool_alloc(n, align);
	return account(preload_real.aligned_alloc(align, n), n);
}

PRELOAD_EXPORT void *memalign(size_t align, size_t n)
{
	if (!preload_real_ready())
		return preload_pool_alloc(n, align);
	return account(preload_real.memalign(align, n), n);
}

PRELOAD_EXPORT void *valloc(size_t n)
{
	if (!preload_real_ready())
		return preload_pool_alloc(n, 4096);
	return account(preload_real.valloc(n), n);
}

PRELOAD_EXPORT void *pvalloc(size_t n)
{
	if (!preload_real_ready())
		return preload_pool_alloc(n, 4096);
	return account(preload_real.pvalloc(n), n);
}
