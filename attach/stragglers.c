/* stragglers.c — threads seized but not yet stopped when their session let
 * go of the others.
 *
 * A thread asked to stop (PTRACE_INTERRUPT) may take its time: one in
 * uninterruptible sleep stops only when its I/O ends.  It cannot be
 * detached before it stops (PTRACE_DETACH needs a stopped tracee), and
 * only the thread that seized it may wait for it or detach it.  So the
 * session that seized it keeps it in a list it owns, and detaches it when
 * it stops, with the signal it stopped for, if any.  Nothing here is
 * process-wide: no signal handler, no global list, so several sessions
 * may run in one process, each on its own thread.
 *
 * A straggler still seized when its thread exits (pprofc's end) is
 * detached and restarted by the kernel; if it sits in a signal-delivery
 * stop at that moment, the kernel drops that signal (docs/NOTES.md), which
 * is why every exit path reaps once more, just before it returns.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <time.h>

#include "internal.h"

int attach_stragglers_add(struct attach_stragglers *s, pid_t tid)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 8;
		pid_t *v = realloc(s->tids, cap * sizeof *v);
		if (!v)
			return -1;
		s->tids = v;
		s->cap = cap;
	}
	s->tids[s->n++] = tid;
	return 0;
}

/* Detaches tid if it has stopped; 1 when it needs no more care (detached,
 * or gone). */
static int settle(pid_t tid)
{
	int status;
	pid_t r = waitpid(tid, &status, __WALL | WNOHANG);
	if (r == tid && WIFSTOPPED(status)) {
		/* A signal-delivery stop has no event in the high bits: the
		 * signal goes back with the detach, so it is delivered once. */
		int give = (status >> 16) == 0 ? WSTOPSIG(status) : 0;
		ptrace(PTRACE_DETACH, tid, 0, (void *)(long)give);
		return 1;
	}
	return r == tid || (r < 0 && errno == ECHILD);
}

size_t attach_stragglers_reap(struct attach_stragglers *s, uint64_t deadline_ns)
{
	for (;;) {
		size_t kept = 0;
		for (size_t i = 0; i < s->n; i++)
			if (!settle(s->tids[i]))
				s->tids[kept++] = s->tids[i];
		s->n = kept;
		if (!s->n || attach_now_ns() >= deadline_ns)
			return s->n;
		/* Stops of stragglers are rare and slow (their I/O must end):
		 * a millisecond's poll costs nothing next to them. */
		struct timespec ms = { 0, 1000000 };
		nanosleep(&ms, NULL);
	}
}

void attach_stragglers_free(struct attach_stragglers *s)
{
	attach_stragglers_reap(s, 0);
	free(s->tids);
	s->tids = NULL;
	s->n = s->cap = 0;
}
