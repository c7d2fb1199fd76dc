/* drain.c — the sampler's last act at exit(): wait until pprofc has read
 * every record published so far.  pprofc can only unwind and symbolize a
 * record while the process lives (it reads /proc/PID/maps and the
 * modules), so a short command that exits with records still in the ring
 * would lose them from the profile.
 *
 * A destructor: it runs on exit() and on return from main, after the
 * program's atexit handlers (their allocations are in the ring by then);
 * not on _exit() nor on a fatal signal, which leave no room for it.  No
 * lock, no stdio, no allocation: other threads may still be allocating.
 */
#include <errno.h>

#include "preload.h"

/* Why 2 s: pprofc consumes a full 64 MiB ring (2000 records of 32 KiB)
 * in well under that, so a live reader that keeps up always drains in
 * time; and it is shorter than HEAPRING_ALIVE_NS (5 s), so a reader that
 * died just before the exit, or is stopped in a debugger, delays the exit
 * by at most 2 s, not by as long as it takes to notice it is gone. */
#define DRAIN_MAX_NS 2000000000ULL
#define DRAIN_NAP_NS 1000000            /* 1 ms: the reader polls in ms too */

/* Whether the reader has consumed everything up to position target.
 * Positions only grow; the reader advances tail with release order. */
static bool consumed(uint64_t target)
{
	return (int64_t)(__atomic_load_n(&preload_ring->tail, __ATOMIC_ACQUIRE) - target) >= 0;
}

/* Waits while recording is on (not stopped, heartbeat fresh, this is the
 * process pprofc started) until the reader has consumed every record
 * published before the exit began, or DRAIN_MAX_NS passed.  Records that
 * other threads publish meanwhile are not waited for: they could keep the
 * ring busy forever. */
__attribute__((destructor)) static void preload_drain(void)
{
	int saved_errno = errno;
	uint64_t start = preload_now_ns(), now = start, target;

	if (atomic_load_explicit(&preload_state, memory_order_acquire) != PRELOAD_RECORDING)
		return;
	target = __atomic_load_n(&preload_ring->head, __ATOMIC_ACQUIRE);
	while (!consumed(target) && now - start < DRAIN_MAX_NS && preload_still_recording(now)) {
		preload_nap(DRAIN_NAP_NS);
		now = preload_now_ns();
	}
	errno = saved_errno;
}
