/* peek.c — the stack of a thread blocked in a system call, taken without
 * stopping it.
 *
 * Stopping a blocked thread wakes it: some calls then fail with EINTR
 * (restart.c takes that back), and the thread counts as having just run,
 * which resets how long it seems to have waited.  A blocked thread does not
 * need stopping to be read: /proc/PID/task/TID/syscall gives its user pc
 * and sp, and process_vm_readv copies its stack.  The copy is valid only
 * if the thread did not run meanwhile.  The witness is its sched file,
 * read before the syscall line and again after the copy: nr_switches and
 * se.exec_start must be the same.  Every scheduling class sets exec_start
 * when it puts a thread on a CPU, and a thread leaving one counts a
 * switch; so a thread that was off-CPU at the first read and ran at any
 * time up to the second shows a new exec_start, and one that was on a CPU
 * at the first read was off it at the syscall line (which the kernel
 * collects only from a thread that is not running) and shows one more
 * switch.  The syscall line need not be read again.  Only pc and sp are
 * known; symbolize/ recovers what else unwinding needs (see
 * sym_snapshot.partial).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* The sched file, read again through the descriptor the first read
 * left open (pread at 0 makes the kernel write it anew). */
static int same_sched(int sched_fd, const struct attach_thread *t)
{
	char buf[4096];
	struct attach_sched now;
	ssize_t r = pread(sched_fd, buf, sizeof buf - 1, 0);
	if (r <= 0)
		return 0;
	buf[r] = 0;
	return attach_parse_sched(buf, (size_t)r, &now) == 0 &&
	       now.nr_switches == t->sched.nr_switches && now.exec_start_ms == t->sched.exec_start_ms;
}

int attach_read_wait_files(int dir, struct attach_thread *t, int *sched_fd)
{
	char buf[4096];
	size_t len = 0;
	ssize_t r = -1;
	/* sched first: see the comment at the top. */
	*sched_fd = openat(dir, "sched", O_RDONLY | O_CLOEXEC);
	if (*sched_fd >= 0 && (r = read(*sched_fd, buf, sizeof buf - 1)) > 0)
		buf[r] = 0;
	t->has_sched = r > 0 && attach_parse_sched(buf, (size_t)r, &t->sched) == 0;
	if (attach_read_at(dir, "syscall", buf, sizeof buf, &len))
		return -1;
	return attach_parse_syscall(buf, len, &t->sc);
}

int attach_peek_blocked(int sched_fd, struct attach_thread *t,
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
	if (n < 0 || !same_sched(sched_fd, t)) {
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
