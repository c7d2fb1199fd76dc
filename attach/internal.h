/* internal.h — helpers shared by the files of attach/ only.  Not part of the
 * module's interface: other modules include snapshot.h, proc.h, wait.h. */
#ifndef PPROFC_ATTACH_INTERNAL_H
#define PPROFC_ATTACH_INTERNAL_H

#include <stdint.h>
#include <sys/user.h>
#include <time.h>

#include "../arch/regs.h"

#include "snapshot.h"

int attach_fail_perm(struct attach_error *err, pid_t pid);
/* Whether pprofc's effective capabilities hold cap (/proc/self/status). */
int attach_has_cap(int cap);
int attach_fail_traced(struct attach_error *err, pid_t pid, pid_t tracer);

/* Threads seized but not stopped when a session let go of the others
 * (stragglers.c; struct attach_stragglers is in snapshot.h).  Only the
 * thread that seized them may reap them.  attach_stragglers_reap detaches
 * those that stopped, waiting for the rest until deadline_ns (0: not at
 * all); returns how many are left.  _free reaps once, then frees. */
int attach_stragglers_add(struct attach_stragglers *s, pid_t tid);
size_t attach_stragglers_reap(struct attach_stragglers *s, uint64_t deadline_ns);
void attach_stragglers_free(struct attach_stragglers *s);

/* tracefs.c: the directory tracefs is mounted on (/sys/kernel/tracing,
 * or debugfs's tracing/), mounted on /sys/kernel/tracing first where it
 * is nowhere, as perf does; NULL with errno where it cannot be. */
const char *attach_tracefs(void);

/* CLOCK_MONOTONIC in nanoseconds: deadlines and stop times. */
/* Waits for a tracee's stop sleep in sigtimedwait(SIGCHLD) at most this
 * long before they look again: SIGCHLD goes to the process, and another
 * thread of pprofc waiting for its own tracees may take it. */
#define ATTACH_WAIT_SLICE_NS 2000000u

static inline uint64_t attach_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A stopped thread's registers (PTRACE_GETREGSET) in DWARF order. */
static inline void attach_regs_from_ptrace(const struct user_regs_struct *u, struct arch_regs *r)
{
	const unsigned long long v[ARCH_NREGS] = {
		[REGNAME(AX)] = u->rax, [REGNAME(DX)] = u->rdx, [REGNAME(CX)] = u->rcx,
		[REGNAME(BX)] = u->rbx, [REGNAME(SI)] = u->rsi, [REGNAME(DI)] = u->rdi,
		[REGNAME(BP)] = u->rbp, [REGNAME(SP)] = u->rsp, [REGNAME(R8)] = u->r8,
		[REGNAME(R9)] = u->r9, [REGNAME(R10)] = u->r10, [REGNAME(R11)] = u->r11,
		[REGNAME(R12)] = u->r12, [REGNAME(R13)] = u->r13, [REGNAME(R14)] = u->r14,
		[REGNAME(R15)] = u->r15, [REGNAME(PC)] = u->rip,
	};
	for (int i = 0; i < ARCH_NREGS; i++)
		r->v[i] = v[i];
	r->known = ARCH_REGS_ALL;
}

/* At an interrupt stop: if the thread's system call failed with EINTR only
 * because we stopped it, rewind it so it is made again (restart.c).
 * known: its registers if already read, else NULL.  1 when it did. */
int attach_undo_eintr(pid_t pid, pid_t tid, const struct user_regs_struct *known);

/* The stack range to copy for sp (peek.c); 0 when sp is in no mapping
 * known (then at most limit bytes from sp, the read stopping at a hole). */
int attach_stack_range(const struct attach_maps *maps, uint64_t sp, size_t limit, uint64_t *lo,
		       uint64_t *hi);
/* Reads what attach_peek_blocked() needs, the thread's sched file and then
 * its syscall line, into t->sched and t->sc (peek.c).  dir: an O_PATH
 * descriptor of /proc/PID/task/TID.  The sched file stays open in
 * *sched_fd (-1 if it could not be opened; the caller closes it), for the
 * check after the copy.  0 when the syscall line was read. */
int attach_read_wait_files(int dir, struct attach_thread *t, int *sched_fd);
/* Takes a blocked thread's pc, sp and stack without stopping it; 0 when the
 * copy is known valid (the thread did not run meanwhile).  sched_fd: as
 * attach_read_wait_files() left it. */
int attach_peek_blocked(int sched_fd, struct attach_thread *t,
			const struct attach_maps *maps, size_t limit);
/* The snapshot's first pass (snapread.c), over threads[0..n): each
 * thread's /proc state, and, unless o->stop_all, the stacks of those
 * blocked in a system call, read without stopping them; done[i] is set for
 * each thread that needs no stop (taken, or left alone on purpose, with
 * its not_taken).  Spread over worker threads; uses no ptrace, so the
 * caller's thread stays the only tracer.  Returns how many were peeked. */
size_t attach_read_threads(pid_t pid, struct attach_thread *threads, unsigned char *done,
			   size_t n, const struct attach_maps *maps, const struct attach_opts *o);
/* A thread of pid traced by another tool: the refusal, naming the tracer
 * (tid == pid: the process itself is traced). */
int attach_fail_traced_tid(struct attach_error *err, pid_t pid, pid_t tid, pid_t tracer);

#endif
