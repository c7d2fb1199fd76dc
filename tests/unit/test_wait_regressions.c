/* test_wait_regressions.c — regression tests for bugs found (and fixed) in attach/wait.c, one case each.
 * Each case failed before its fix; the rest of wait.h is tested in
 * test_wait_*.c.
 *
 * BUG 1: attach_refine() calls a glibc-INTERNAL lock wait a "mutex wait".
 * It matches the substring "lll_lock_wait", which is also the prefix of
 * __lll_lock_wait_private: the slow path of glibc's internal locks
 * (malloc arenas, stdio FILE locks, ...), which are a bare int, not a
 * pthread_mutex_t.  Real pthread mutexes go through __lll_lock_wait (not
 * _private) and ___pthread_mutex_lock.  docs/FORMATS.md §2 reserves "mutex wait"
 * for "futex wait on a pthread mutex (owner in the detail)", and cli then
 * calls attach_mutex_owner() on that address (cli/dump_threads.c, the
 * ATTACH_R_MUTEX branch after attach_refine), which reads the int at
 * offset 8 of whatever follows the lock: in glibc 2.36's struct
 * malloc_state that is have_fastchunks (0 or 1), so a thread waiting for a
 * malloc arena can be reported "held by thread 1", and in _IO_lock_t it is
 * the low half of a pointer.  The false owner also feeds the deadlock graph
 * (the waits[] array passed to attach_find_deadlocks).  Verified with
 * eu-stack on Debian 12: a thread blocked in fwrite() on a stdout locked
 * by flockfile() sits in __lll_lock_wait_private <- _IO_fwrite, one
 * blocked in pthread_mutex_lock in __GI___lll_lock_wait <-
 * __pthread_mutex_lock.
 * Input: futex(addr, FUTEX_WAIT_PRIVATE) with innermost frames
 * "__lll_lock_wait_private", "_int_free", "free".  Expected: futex wait;
 * actual: mutex wait.
 */
#include "attach/wait.h"
#include "check.h"

static void regression_internal_lll_lock_is_not_a_pthread_mutex(void)
{
	struct attach_syscall sc;
	memset(&sc, 0, sizeof sc);
	sc.kind = ATTACH_SC_IN;
	sc.nr = 202;                    /* futex */
	sc.args[0] = 0x7f636b01ac80;    /* &main_arena.mutex */
	sc.args[1] = 128;               /* FUTEX_WAIT_PRIVATE */
	sc.args[2] = 2;
	struct attach_wait w;
	attach_classify('S', &sc, &w);
	CHECK_INT_EQ(w.reason, ATTACH_R_FUTEX);

	static const char *const malloc_lock[] = { "__lll_lock_wait_private", "_int_free", "free",
						   "worker", "start_thread" };
	attach_refine(&w, malloc_lock, 5);
	CHECK_MSG(w.reason == ATTACH_R_FUTEX,
		  "regression (wait.c attach_refine): a wait in __lll_lock_wait_private (glibc "
		  "internal lock, not a pthread_mutex_t) became reason %d, expected ATTACH_R_FUTEX (%d)",
		  (int)w.reason, (int)ATTACH_R_FUTEX);

	attach_classify('S', &sc, &w);
	static const char *const stdio_lock[] = { "__lll_lock_wait_private", "_IO_fwrite", "log_line" };
	attach_refine(&w, stdio_lock, 3);
	CHECK_MSG(w.reason == ATTACH_R_FUTEX,
		  "regression (wait.c attach_refine): a wait for a stdio FILE lock became reason %d, "
		  "expected ATTACH_R_FUTEX (%d)", (int)w.reason, (int)ATTACH_R_FUTEX);
}

int main(void)
{
	RUN(regression_internal_lll_lock_is_not_a_pthread_mutex);
	return check_summary("test_wait_bugs");
}
