/* restart.c — taking back the EINTR that a ptrace stop causes.
 *
 * PTRACE_INTERRUPT wakes a thread blocked in a system call.  Most calls
 * (read, poll, futex, nanosleep...) are restarted by the kernel as if
 * nothing happened, but a few fail with EINTR on any wakeup: epoll_wait,
 * semop, sigtimedwait, io_getevents...  The program would see a spurious
 * error.  At the interrupt stop such a thread's registers show it: orig_rax
 * holds the call, rax -EINTR.  If no signal is pending for the thread the
 * EINTR can only be ours, so we do what the kernel does for restartable
 * calls: put the call number back in rax and step rip back over the
 * 2-byte `syscall` instruction, so the call is made again on resume.
 * (A relative timeout then starts over, as with any restarted call.)
 */
#include <elf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/uio.h>

#include "internal.h"

/* Signals pending for the thread and not blocked by it. */
static int signal_pending(pid_t pid, pid_t tid)
{
	char path[64], buf[4096];
	size_t len;
	snprintf(path, sizeof path, "/proc/%d/task/%d/status", (int)pid, (int)tid);
	if (attach_read_small(path, buf, sizeof buf, &len))
		return 1;               /* unknown: assume a real signal */
	unsigned long long pnd = 0, shd = 0, blk = 0;
	const char *p;
	if ((p = strstr(buf, "\nSigPnd:")))
		pnd = strtoull(p + 8, NULL, 16);
	if ((p = strstr(buf, "\nShdPnd:")))
		shd = strtoull(p + 8, NULL, 16);
	if ((p = strstr(buf, "\nSigBlk:")))
		blk = strtoull(p + 8, NULL, 16);
	return ((pnd | shd) & ~blk) != 0;
}

int attach_undo_eintr(pid_t pid, pid_t tid, const struct user_regs_struct *known)
{
	struct user_regs_struct regs;
	struct iovec iov = { &regs, sizeof regs };
	if (known)
		regs = *known;
	else if (ptrace(PTRACE_GETREGSET, tid, (void *)NT_PRSTATUS, &iov) != 0)
		return 0;
	if ((long long)regs.orig_rax < 0 || (long long)regs.rax != -EINTR)
		return 0;
	unsigned char insn[2];
	if (attach_read_mem(tid, regs.rip - 2, insn, 2) != 2 || insn[0] != 0x0f || insn[1] != 0x05)
		return 0;               /* not right after a `syscall` instruction */
	if (signal_pending(pid, tid))
		return 0;               /* a real signal: the program should see it */
	regs.rax = regs.orig_rax;
	regs.rip -= 2;
	return ptrace(PTRACE_SETREGSET, tid, (void *)NT_PRSTATUS, &iov) == 0;
}
