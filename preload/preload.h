/* preload.h — what the files of the allocation sampler (libpprofc_heap.so,
 * loaded into a command by `pprofc run --profile heap|allocs`) share with
 * each other: the allocator found behind us, the process-wide state, the
 * ring writer and the set of sampled addresses.  Every name here is hidden
 * (-fvisibility=hidden); the library exports only the allocation
 * functions it interposes (sampler.c).
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
 * readable by a past checked copy, so that the next copy is a memcpy. */
bool preload_stack_proven(uint64_t sp, uint64_t *len);
void preload_stack_prove(uint64_t sp, uint32_t got);

/* addrset.c: the sampled blocks still live, so that their free is seen.
 * A block's home slot in the set is a Fibonacci hash of its address
 * without the alignment bits; the set keeps, per region of 2^11 home
 * slots, how many live blocks are homed there.  Those 64 counters are
 * read by every free (so they stay in L1): inline, so that the free of an
 * unsampled block, nearly every free, costs a hash and one load. */
#define PRELOAD_SET_BITS 17
#define PRELOAD_SET_REGION_SHIFT 11

extern _Atomic uint16_t *preload_set_regions;

static inline uint32_t preload_set_home(uintptr_t addr)
{
	return (uint32_t)(((uint64_t)(addr >> 4) * 0x9e3779b97f4a7c15ull) >> (64 - PRELOAD_SET_BITS));
}

/* Whether addr may be in the set: false for certain when no live sampled
 * block is homed in its region. */
static inline bool preload_set_may_hold(uintptr_t addr)
{
	return atomic_load_explicit(&preload_set_regions[preload_set_home(addr) >> PRELOAD_SET_REGION_SHIFT],
				    memory_order_relaxed) != 0;
}

bool preload_set_init(void);
bool preload_set_add(uintptr_t addr);
bool preload_set_remove(uintptr_t addr);

#endif
