/* addrset.c — the addresses of the sampled blocks still live, so that
 * free() can tell a sampled block (write a FREE record) from the others
 * (pass it on at once).  A lock-free open-addressing set in memory of our
 * own (mmap'd: never the target's malloc), safe from any thread and from
 * signal handlers.
 *
 * A block's address is in the set at most once: it is added after the
 * allocator returned it and removed before it is given back, and no other
 * live block has that address meanwhile.  So removal can leave a
 * tombstone that later additions reuse, and a lookup may stop at the
 * first empty slot: slots only ever go from empty to used, never back.
 * Probes are bounded: a set too crowded around an address refuses it (the
 * caller counts it in untracked_frees) rather than slowing every free.
 */
#include <sys/mman.h>

#include "preload.h"

#define SET_SLOTS (1u << 17)
#define SET_PROBES 16           /* two cache lines */
#define SLOT_EMPTY 0
#define SLOT_TOMB 1             /* no block lives at address 1 */

atomic_uint_fast64_t preload_set_count;
static _Atomic uintptr_t *slots;

bool preload_set_init(void)
{
	void *m = mmap(NULL, SET_SLOTS * sizeof *slots, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (m == MAP_FAILED)
		return false;
	slots = m;
	return true;
}

/* Fibonacci hashing of the address without its alignment bits. */
static uint32_t slot_of(uintptr_t addr)
{
	return (uint32_t)(((uint64_t)(addr >> 4) * 0x9e3779b97f4a7c15ull) >> 47);
}

bool preload_set_add(uintptr_t addr)
{
	uint32_t h = slot_of(addr);

	for (uint32_t i = 0; i < SET_PROBES; i++) {
		_Atomic uintptr_t *slot = &slots[(h + i) & (SET_SLOTS - 1)];
		uintptr_t seen = atomic_load_explicit(slot, memory_order_relaxed);

		if ((seen == SLOT_EMPTY || seen == SLOT_TOMB) &&
		    atomic_compare_exchange_strong(slot, &seen, addr)) {
			atomic_fetch_add_explicit(&preload_set_count, 1, memory_order_relaxed);
			return true;
		}
	}
	return false;
}

/* Whether addr was in the set (it is not any more). */
bool preload_set_remove(uintptr_t addr)
{
	uint32_t h = slot_of(addr);

	for (uint32_t i = 0; i < SET_PROBES; i++) {
		_Atomic uintptr_t *slot = &slots[(h + i) & (SET_SLOTS - 1)];
		uintptr_t seen = atomic_load_explicit(slot, memory_order_acquire);

		if (seen == SLOT_EMPTY)
			return false;
		if (seen == addr && atomic_compare_exchange_strong(slot, &seen, SLOT_TOMB)) {
			atomic_fetch_sub_explicit(&preload_set_count, 1, memory_order_relaxed);
			return true;
		}
	}
	return false;
}
