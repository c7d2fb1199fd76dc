/* drain.c — the sampler's last act at exit: wait until pprofc has read
 * every record published so far.  pprofc can only unwind and symbolize a
 * record while the process lives (it reads /proc/PID/maps and the
 * modules), so a short command that exits with records still in the ring
 * would lose them from the profile: their samples would have no stack.
 *
 * Two ways in.  A destructor runs on exit() and on return from main,
 * after the program's atexit handlers (their allocations are in the ring
 * by then).  And the program's own calls of _exit() and _Exit(), which
 * run no destructor, come here first: dash ends every `sh -c` so (seen:
 * the children case of test_heap lost every stack of the shell in 13 of
 * 20 runs of the sanitizer build, whose pprofc reads later).  glibc's
 * exit() reaches its _exit internally, not through these.  Nothing waits
 * on a fatal signal or a raw exit_group, which leave no room for it.  No
 * lock, no stdio, no allocation: other threads may still be allocating.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

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
static void drain(void)
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

__attribute__((destructor)) static void drain_at_exit(void)
{
	drain();
}

/* _exit and _Exit, exported: wait as exit() would, then end the process
 * as glibc's _exit does (exit_group).  Not when this thread is inside the
 * sampler (a signal handler that calls _exit interrupted it): it may hold
 * a reserved record that the reader would wait for, and so would we. */
static _Noreturn void exit_now(int status)
{
	if (!preload_thread_busy())
		drain();
	for (;;)
		syscall(SYS_exit_group, status);
}

__attribute__((visibility("default"))) _Noreturn void _exit(int status)
{
	exit_now(status);
}

__attribute__((visibility("default"))) _Noreturn void _Exit(int status)
{
	exit_now(status);
}
