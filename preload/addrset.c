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
 *
 * Tombstones are reused by additions, so the set never fills with them,
 * but they never become empty again (turning one back would race with an
 * addition probing past it): after a long run every slot is used or a
 * tombstone, and a lookup of an address that was never sampled would
 * probe all SET_PROBES slots (measured: 1.0 probe and ~5 ns fresh, 16
 * probes and ~30 ns once 20 M samples went through 2048 live ones).  So
 * a pre-filter answers most of those lookups with one load: per group of
 * 4 home slots, the count of live addresses homed there.  An addition
 * raises its count before it stores the address, a removal lowers it
 * after; the free of a sampled block comes after its addition (the
 * program passed the pointer on), so it never finds its count at 0.
 *
 * Few frees get here: free() asks only for an address that may be a
 * sampled block's (preload_may_be_sampled in preload.h: sampled blocks
 * are placed at addresses most blocks do not have).  An earlier version
 * asked for every free, with 64 region counts in front of the groups that
 * every free read: every sample and every sampled free then wrote a line
 * that all CPUs read, and perf annotate put 97% of preload_set_add on
 * that write and a quarter of free on the read.
 */
#include <sys/mman.h>

#include "preload.h"

#define SET_SLOTS (1u << PRELOAD_SET_BITS)
#define SET_PROBES 16           /* two cache lines */
#define SLOT_EMPTY 0
#define SLOT_TOMB 1             /* no block lives at address 1 */
#define GROUP_SHIFT 2           /* 4 home slots a group: 64 KiB of counts, which stay
				 * in cache; ~6% of the groups busy with 2048 live */
#define SET_GROUPS (SET_SLOTS >> GROUP_SHIFT)

/* Mapped before recording starts; only a recording process asks. */
static _Atomic uintptr_t *slots;
/* Live addresses whose home slot is in the group: at most the 19 slots
 * they can sit in, plus the additions under way; 16 bits are plenty. */
static _Atomic uint16_t *groups;

bool preload_set_init(void)
{
	size_t slot_bytes = SET_SLOTS * sizeof *slots;
	size_t group_bytes = SET_GROUPS * sizeof *groups;
	size_t bytes = slot_bytes + group_bytes;
	void *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (m == MAP_FAILED)
		return false;
	/* A forked child starts with an empty set: the blocks it inherits
	 * were sampled by its parent (a child that follows records only its
	 * own).  Without MADV_WIPEONFORK (before 4.14) children never record,
	 * so a failure is harmless. */
	madvise(m, bytes, MADV_WIPEONFORK);
	slots = m;
	groups = (_Atomic uint16_t *)((unsigned char *)m + slot_bytes);
	return true;
}

static uint32_t slot_of(uintptr_t addr)
{
	return preload_set_home(addr);
}

bool preload_set_add(uintptr_t addr)
{
	uint32_t h = slot_of(addr);
	_Atomic uint16_t *group = &groups[h >> GROUP_SHIFT];

	atomic_fetch_add_explicit(group, 1, memory_order_relaxed);
	for (uint32_t i = 0; i < SET_PROBES; i++) {
		_Atomic uintptr_t *slot = &slots[(h + i) & (SET_SLOTS - 1)];
		uintptr_t seen = atomic_load_explicit(slot, memory_order_relaxed);

		if ((seen == SLOT_EMPTY || seen == SLOT_TOMB) &&
		    atomic_compare_exchange_strong(slot, &seen, addr)) {
			return true;
		}
	}
	atomic_fetch_sub_explicit(group, 1, memory_order_relaxed);
	return false;
}

/* Whether addr was in the set (it is not any more). */
bool preload_set_remove(uintptr_t addr)
{
	uint32_t h = slot_of(addr);
	_Atomic uint16_t *group = &groups[h >> GROUP_SHIFT];

	/* The common case: no live sampled block homed near it. */
	if (!atomic_load_explicit(group, memory_order_relaxed))
		return false;
	for (uint32_t i = 0; i < SET_PROBES; i++) {
		_Atomic uintptr_t *slot = &slots[(h + i) & (SET_SLOTS - 1)];
		uintptr_t seen = atomic_load_explicit(slot, memory_order_acquire);

		if (seen == SLOT_EMPTY)
			return false;
		if (seen == addr && atomic_compare_exchange_strong(slot, &seen, SLOT_TOMB)) {
			atomic_fetch_sub_explicit(group, 1, memory_order_relaxed);
			return true;
		}
	}
	return false;
}
