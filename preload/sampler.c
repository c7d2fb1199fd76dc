/* sampler.c — the allocation functions the target calls instead of its
 * allocator's (malloc, calloc, realloc, reallocarray, free, posix_memalign,
 * aligned_alloc, memalign, valloc, pvalloc; C++ new and delete reach
 * malloc and free), and the choice of which allocations to sample.
 *
 * Sampling is by bytes, as Go's and tcmalloc's: each thread counts down
 * the bytes until its next sample, drawn from an exponential distribution
 * of mean `rate` (the ring's header), so that a block of n bytes is
 * sampled with probability 1 - exp(-n/rate) whatever came before it (the
 * reader unscales with that formula).  The decision comes before the
 * allocation, so that everything but a sampled allocation costs one
 * subtraction and a jump to the allocator (no frame of ours in between).
 * A sampled block is placed at a marked address (preload.h), so that a
 * free costs a test of its address bits and the same jump, unless the
 * address is marked: then a bounded lookup in the set of sampled blocks
 * (addrset.c).
 *
 * Only these functions are exported (-fvisibility=hidden elsewhere), and
 * drain.c's _exit and _Exit.
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

bool preload_thread_busy(void)
{
	return self.busy;
}

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
 * on: whether this allocation of n bytes is sampled.  The slow paths,
 * which not_sampled sent here, ask this one directly. */
static bool sample_due_slow(struct sampler_thread *t, size_t n)
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

/* The common path of every allocation function: whether the n bytes
 * asked for leave this thread's countdown above zero (then they are
 * counted, and the allocation is not sampled).  Before the allocator's
 * functions are known, never: the slow path serves from the pool. */
static inline bool not_sampled(size_t n)
{
	struct sampler_thread *t = &self;

	if (__builtin_expect(n < t->left, 1) && __builtin_expect(preload_real_known(), 1)) {
		t->left -= n;
		return true;
	}
	return false;
}

/* Whether an allocation function's n bytes are sampled, for those with
 * one path, sampled or not. */
static bool sample_due(size_t n)
{
	return !not_sampled(n) && sample_due_slow(&self, n);
}

/* How a block that is moved to a marked address gets its contents. */
enum move { MOVE_NONE, MOVE_ZERO, MOVE_COPY };

/* Puts the sampled block *p (n bytes) where free() will look it up: it
 * stays where it is when its address is marked, when it is large, or when
 * nothing is moved at all; else *p becomes a block from the allocator's
 * memalign with the old one's first n bytes or zeros, and the old one is
 * given back.  false when no marked block could be had: *p then stays,
 * not to be sampled. */
static bool to_marked(void **p, size_t n, enum move how)
{
	void *q;

	if (preload_free_mask != PRELOAD_MARK_MASK || preload_marked(*p) || n >= PRELOAD_MARK_LARGE)
		return true;
	q = preload_real.memalign(PRELOAD_MARK_ALIGN, n ? n : 1);
	if (!q || !preload_marked(q)) {
		if (q)
			preload_real.free(q);
		return false;
	}
	if (how == MOVE_ZERO)
		memset(q, 0, n);
	else if (how == MOVE_COPY)
		memcpy(q, *p, n);
	preload_real.free(*p);
	*p = q;
	return true;
}

/* A forked child that follows gets its ring here, at its first sampled
 * allocation; its threads are copies of its parent's and seed again.
 * Under the reentrancy guard (account). */
static __attribute__((noinline)) void sample(struct sampler_thread *t, void *p, size_t n)
{
	if (preload_adopt()) {
		if (t->epoch != atomic_load_explicit(&preload_epoch, memory_order_relaxed)) {
			seed(t);
			t->left = draw(t);
		}
		preload_record_alloc(p, n, t->tid);
	}
}

/* The slow path's decision and its sampled allocation's tail: p (maybe
 * NULL) of n bytes, just allocated, moved to a marked address and
 * recorded if this allocation is sampled.  The move calls the allocator
 * (memalign, free), which takes glibc's arena lock: under the reentrancy
 * guard, so that a signal handler that allocates while we are in there is
 * not sampled, and never asks for that lock from under itself (seen: a
 * thread of heap_alloc's signal storm deadlocked in _mid_memalign).  A
 * sampled allocation comes with the guard down: a nested one is never
 * sampled. */
static void *account(void *p, size_t n, bool due, enum move how)
{
	struct sampler_thread *t = &self;

	if (!p || !due)
		return p;
	t->busy = true;
	if (to_marked(&p, n, how))
		sample(t, p, n);
	t->busy = false;
	return p;
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
static void release(void *p)
{
	if (p && preload_may_be_sampled(p) &&
	    atomic_load_explicit(&preload_state, memory_order_relaxed) == PRELOAD_RECORDING &&
	    preload_set_remove((uintptr_t)p))
		record_free(p);
}

static __attribute__((noinline)) void *malloc_slow(size_t n)
{
	bool due;

	if (!preload_real_ready())
		return preload_pool_alloc(n, POOL_ALIGN);
	due = sample_due_slow(&self, n);
	return account(preload_real.malloc(n), n, due, MOVE_NONE);
}

PRELOAD_EXPORT void *malloc(size_t n)
{
	if (not_sampled(n))
		return preload_real.malloc(n);
	return malloc_slow(n);
}

static __attribute__((noinline)) void *calloc_slow(size_t count, size_t n, size_t bytes)
{
	bool due;

	if (!preload_real_ready())
		return preload_pool_alloc(bytes, POOL_ALIGN);   /* static: zeroed, never reused */
	due = sample_due_slow(&self, bytes);
	return account(preload_real.calloc(count, n), bytes, due, MOVE_ZERO);
}

PRELOAD_EXPORT void *calloc(size_t count, size_t n)
{
	size_t bytes;

	if (__builtin_mul_overflow(count, n, &bytes)) {
		errno = ENOMEM;
		return NULL;
	}
	if (not_sampled(bytes))
		return preload_real.calloc(count, n);
	return calloc_slow(count, n, bytes);
}

static __attribute__((noinline)) void free_slow(void *p)
{
	if (!p || preload_pool_owns(p))
		return;
	release(p);
	if (preload_real_ready())
		preload_real.free(p);
}

/* Nearly every free: a small block at an address with a mask bit set was
 * never sampled. */
PRELOAD_EXPORT void free(void *p)
{
	if (__builtin_expect(!preload_may_be_sampled(p), 1) &&
	    __builtin_expect(!preload_pool_owns(p), 1) &&
	    __builtin_expect(preload_real_known(), 1))
		return preload_real.free(p);
	free_slow(p);
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
	bool due;

	if (preload_pool_owns(old))
		return realloc_pool_block(old, n);
	if (!preload_real_ready())
		return old ? NULL : preload_pool_alloc(n, POOL_ALIGN);
	release(old);
	due = sample_due(n);
	return account(preload_real.realloc(old, n), n, due, MOVE_COPY);
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

/* The aligned allocations: rarer, so one path, sampled or not.  A block
 * aligned to 4 KiB or more is marked already. */
PRELOAD_EXPORT int posix_memalign(void **out, size_t align, size_t n)
{
	bool due;
	int err;

	if (!preload_real_ready()) {
		*out = preload_pool_alloc(n, align);
		return *out ? 0 : ENOMEM;
	}
	due = sample_due(n);
	err = preload_real.posix_memalign(out, align, n);
	if (!err)
		*out = account(*out, n, due, MOVE_NONE);
	return err;
}

PRELOAD_EXPORT void *aligned_alloc(size_t align, size_t n)
{
	bool due;

	if (!preload_real_ready())
		return preload_pool_alloc(n, align);
	due = sample_due(n);
	return account(preload_real.aligned_alloc(align, n), n, due, MOVE_NONE);
}

PRELOAD_EXPORT void *memalign(size_t align, size_t n)
{
	bool due;

	if (!preload_real_ready())
		return preload_pool_alloc(n, align);
	due = sample_due(n);
	return account(preload_real.memalign(align, n), n, due, MOVE_NONE);
}

PRELOAD_EXPORT void *valloc(size_t n)
{
	bool due;

	if (!preload_real_ready())
		return preload_pool_alloc(n, 4096);
	due = sample_due(n);
	return account(preload_real.valloc(n), n, due, MOVE_NONE);
}

PRELOAD_EXPORT void *pvalloc(size_t n)
{
	bool due;

	if (!preload_real_ready())
		return preload_pool_alloc(n, 4096);
	due = sample_due(n);
	return account(preload_real.pvalloc(n), n, due, MOVE_NONE);
}
