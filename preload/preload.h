/* preload.h — what the files of the allocation sampler (libpprofc_heap.so,
 * loaded into a command by `pprofc run --profile heap|allocs`) share with
 * each other: the allocator found behind us, the process-wide state, the
 * ring writer and the set of sampled addresses.  Every name here is hidden
 * (-fvisibility=hidden); the library exports only the allocation
 * functions it interposes (sampler.c), and _exit and _Exit (drain.c).
 */
#ifndef PPROFC_PRELOAD_H
#define PPROFC_PRELOAD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "heapring.h"

/* real.c: the allocator that the target would use without us, found with
 * dlsym(RTLD_NEXT) (jemalloc or tcmalloc when the target links one). */
struct preload_real {
	void *(*malloc)(size_t);
	void *(*calloc)(size_t, size_t);
	void *(*realloc)(void *, size_t);
	void (*free)(void *);
	int (*posix_memalign)(void **, size_t, size_t);
	void *(*aligned_alloc)(size_t, size_t);
	void *(*memalign)(size_t, size_t);
	void *(*valloc)(size_t);
	void *(*pvalloc)(size_t);
	/* Whether that allocator is glibc's, whose memalign gives a small
	 * block the size malloc would (jemalloc's gives it a page: a program
	 * that asks malloc_usable_size, as redis does, would then act on a
	 * moved block differently; preload.h's marked addresses). */
	bool is_glibc;
};

extern struct preload_real preload_real;
extern atomic_int preload_resolved;     /* 2: preload_real is filled in */

#define PRELOAD_POOL_SIZE 65536

extern unsigned char preload_pool[PRELOAD_POOL_SIZE];

bool preload_real_resolve(void);
void *preload_pool_alloc(size_t size, size_t align);
size_t preload_pool_size(const void *p);

/* Inline: every free asks. */
static inline bool preload_pool_owns(const void *p)
{
	return (const unsigned char *)p >= preload_pool &&
	       (const unsigned char *)p < preload_pool + PRELOAD_POOL_SIZE;
}

/* Whether preload_real is filled in: the allocation functions' common
 * path asks this, and leaves the lookup to their slow path. */
static inline bool preload_real_known(void)
{
	return atomic_load_explicit(&preload_resolved, memory_order_acquire) == 2;
}

/* Whether preload_real can be called; false while dlsym runs (the caller
 * serves the allocation from the static pool instead). */
static inline bool preload_real_ready(void)
{
	if (__builtin_expect(atomic_load_explicit(&preload_resolved, memory_order_acquire) == 2, 1))
		return true;
	return preload_real_resolve();
}

/* setup.c: whether this process records, and the ring it records into. */
enum preload_state {
	PRELOAD_UNSET = 0,      /* the constructor has not run yet */
	PRELOAD_RECORDING = 1,
	PRELOAD_OFF = 2,        /* for good: no ring, stopped, or a forked child */
};

extern atomic_int preload_state;
extern struct heapring_header *preload_ring;
extern unsigned char *preload_ring_data;
extern uint64_t preload_rate;
extern uint32_t preload_stack_size;
extern size_t preload_page_size;

/* Bumped each time this process starts recording into a ring of its own
 * (a forked child that asked for one): threads then draw new random
 * numbers and read their tid again. */
extern atomic_uint preload_epoch;

bool preload_still_recording(uint64_t now_ns);
/* Whether this process records into a ring of its own; a forked child
 * that follows asks pprofc for one first (on the sampled path only). */
bool preload_adopt(void);
uint64_t preload_now_ns(void);
void preload_nap(uint64_t ns);

/* follow.c: `run --children`.  init keeps the socket's name (from the
 * environment, in the constructor); ask connects and returns the memfd
 * of a ring made for this process, or -1.  Raw system calls only: a
 * forked child asks inside malloc. */
bool preload_follow_init(const char *name);
bool preload_following(void);
int preload_follow_ask(void);

/* sampler.c: whether the calling thread is inside the sampler (a signal
 * handler interrupted it there). */
bool preload_thread_busy(void);

/* ring.c: the writer's half of heapring.h. */
void *preload_ring_reserve(uint32_t size, bool may_wait);
void preload_ring_publish(void *rec, uint32_t size, uint32_t type);
void preload_ring_count(uint64_t *counter);

/* record.c: what a sampled allocation, and the free of a sampled block,
 * write into the ring.  tid is the caller's thread id; may_wait: whether
 * the caller may wait for room in a full ring at rate 1 (not when it
 * interrupted the sampler on its own thread). */
void preload_record_alloc(void *addr, size_t size, int32_t tid);
void preload_record_free(void *addr, bool may_wait);

/* stack_proof.c: the part of the calling thread's own stack proven
 * readable by a past checked copy, so that the next copy is a memcpy;
 * before that, how far the first checked copy needs to read. */
bool preload_stack_proven(uint64_t sp, uint64_t *len);
void preload_stack_prove(uint64_t sp, uint32_t got);
uint32_t preload_stack_reach(uint64_t sp, uint32_t limit);

/* Where sampled blocks live.  free() must see the free of every sampled
 * block, and costs close to nothing for the others only if it can tell
 * most of them apart without a lookup, and without reading memory that
 * samples write (such a line moves between the CPUs at every sample).
 * So behind glibc's allocator a small sampled block is placed at an
 * address whose offset in its 4 KiB page is 0 or 16 (a marked address):
 * the sampler moves a sampled block that the allocator placed elsewhere
 * into one it asks aligned (memalign).  A block of PRELOAD_MARK_LARGE
 * bytes or more is not moved (a moved one would cost glibc a mapping of
 * its own: measured, an mmap and munmap per sampled 256 KiB block); free()
 * tells those by glibc's size word, just before the block, which glibc's
 * own free reads next anyway.  free() then looks up only marked and large
 * blocks: about one in 256 of glibc's small blocks, and the sampled ones.
 *
 * preload_free_mask (setup.c, set before the program runs): an address
 * with a mask bit set was not sampled, unless the mask is
 * PRELOAD_MARK_MASK and the block has PRELOAD_MARK_LARGE bytes or more.
 * At rates below
 * PRELOAD_MARK_MIN_RATE nothing is moved (a moved block may cost up to
 * 4 KiB of the allocator's memory: at rate 1 that would be every block)
 * and the mask is 0: every free looks up; so too behind an allocator other
 * than glibc's (preload_real.is_glibc), whose size word we do not know. */
#define PRELOAD_MARK_ALIGN 4096
#define PRELOAD_MARK_MASK ((uintptr_t)(PRELOAD_MARK_ALIGN - 1) & ~(uintptr_t)16)
#define PRELOAD_MARK_MIN_RATE 65536
#define PRELOAD_MARK_LARGE 65536

extern uintptr_t preload_free_mask;

static inline bool preload_marked(const void *p)
{
	return ((uintptr_t)p & PRELOAD_MARK_MASK) == 0;
}

/* glibc's size word: the chunk's size, 3 flag bits below it. */
static inline size_t preload_glibc_size(const void *p)
{
	return ((const size_t *)p)[-1] & ~(size_t)7;
}

/* Whether p may be a sampled block, so that free() must look it up. */
static inline bool preload_may_be_sampled(const void *p)
{
	uintptr_t mask = preload_free_mask;

	return ((uintptr_t)p & mask) == 0 ||
	       (mask == PRELOAD_MARK_MASK && preload_glibc_size(p) >= PRELOAD_MARK_LARGE);
}

/* addrset.c: the sampled blocks still live, so that their free is seen.
 * A block's home slot in the set is a Fibonacci hash of its address
 * without the alignment bits. */
#define PRELOAD_SET_BITS 17

static inline uint32_t preload_set_home(uintptr_t addr)
{
	return (uint32_t)(((uint64_t)(addr >> 4) * 0x9e3779b97f4a7c15ull) >> (64 - PRELOAD_SET_BITS));
}

bool preload_set_init(void);
bool preload_set_add(uintptr_t addr);
bool preload_set_remove(uintptr_t addr);

#endif
