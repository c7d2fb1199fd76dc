/* peek.c — the stack of a thread blocked in a system call, taken without
 * stopping it.
 *
 * Stopping a blocked thread wakes it: some calls then fail with EINTR
 * (restart.c takes that back), and the thread counts as having just run,
 * which resets how long it seems to have waited.  A blocked thread does not
 * need stopping to be read: /proc/PID/task/TID/syscall gives its user pc
 * and sp, and process_vm_readv copies its stack.  The copy is valid only
 * if the thread did not run meanwhile: its context-switch count
 * (/proc/.../sched nr_switches) and its syscall line must be the same
 * before and after.  Only pc and sp are known; symbolize/ recovers what
 * else unwinding needs (see sym_snapshot.partial).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int attach_stack_range(const struct attach_maps *maps, uint64_t sp, size_t limit, uint64_t *lo,
		       uint64_t *hi)
{
	/* From the red zone below sp to the end of the stack's mapping, at
	 * most limit bytes. */
	*lo = sp > 128 ? sp - 128 : 0;
	*hi = *lo + limit;
	const struct attach_map *m = attach_maps_find(maps, sp);
	if (m) {
		if (*lo < m->start)
			*lo = m->start;
		if (*hi > m->end)
			*hi = m->end;
	}
	return m != NULL;
}

/* The syscall line and switch count, read again. */
static int same_wait(int dir, const struct attach_thread *t)
{
	char buf[4096];
	size_t len;
	struct attach_syscall sc;
	struct attach_sched sched;
	if (attach_read_at(dir, "syscall", buf, sizeof buf, &len) ||
	    attach_parse_syscall(buf, len, &sc) || sc.kind != ATTACH_SC_IN || sc.nr != t->sc.nr ||
	    sc.sp != t->sc.sp || sc.pc != t->sc.pc || memcmp(sc.args, t->sc.args, sizeof sc.args) != 0)
		return 0;
	return attach_read_at(dir, "sched", buf, sizeof buf, &len) == 0 &&
	       attach_parse_sched(buf, len, &sched) == 0 && sched.nr_switches == t->sched.nr_switches;
}

int attach_peek_blocked(int dir, struct attach_thread *t,
			const struct attach_maps *maps, size_t limit)
{
	if (!t->has_stat || (t->stat.state != 'S' && t->stat.state != 'D') ||
	    t->sc.kind != ATTACH_SC_IN || !t->has_sched)
		return -1;
	uint64_t lo, hi;
	int mapped = attach_stack_range(maps, t->sc.sp, limit, &lo, &hi);
	unsigned char *stack = hi > lo ? malloc(hi - lo) : NULL;
	if (!stack)
		return -1;
	ssize_t n = attach_read_mem(t->tid, lo, stack, hi - lo);
	/* sp in no mapping and nothing readable there: the thread runs on a
	 * bogus stack pointer.  Its pc still tells where it waits. */
	if (n <= 0 && !mapped)
		n = 0;
	else if (n <= 0)
		n = -1;
	if (n < 0 || !same_wait(dir, t)) {
		free(stack);
		return -1;
	}
	memset(&t->regs, 0, sizeof t->regs);
	REG(&t->regs, SP) = t->sc.sp;
	REG(&t->regs, PC) = t->sc.pc;
	t->regs.known = REGBIT(SP) | REGBIT(PC);
	t->partial_regs = 1;
	t->stack = stack;
	t->stack_addr = lo;
	t->stack_len = (size_t)n;
	t->taken = 1;
	return 0;
}
