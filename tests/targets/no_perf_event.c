/* no_perf_event.c — runs a command where perf_event_open(2) fails with
 * EPERM, as under Docker's default seccomp profile
 * (tests/integration/test_cpu_truth.py: pprofc's fall-back to ptrace).
 *
 * Usage: no_perf_event COMMAND [ARG...].  Installs a seccomp filter
 * (after PR_SET_NO_NEW_PRIVS, so no privilege is needed) that makes
 * perf_event_open return EPERM and allows every other system call, then
 * execs COMMAND; the filter is inherited across exec and fork.  Exits 126
 * if the filter cannot be installed, 127 if COMMAND cannot be run.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#if !defined(__x86_64__)
#error "no_perf_event: x86_64 only (the syscall number and the audit arch)"
#endif

#define X32_BIT 0x40000000u

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: no_perf_event COMMAND [ARG...]\n");
		return 2;
	}
	struct sock_filter code[] = {
		/* Another ABI (i386 through int 0x80) numbers its calls otherwise:
		 * allow it, as the target and pprofc are x86_64. */
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		/* perf_event_open, 298, also through the x32 ABI. */
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_perf_event_open, 2, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_perf_event_open | X32_BIT, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
	};
	struct sock_fprog prog = { .len = sizeof code / sizeof code[0], .filter = code };
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
		fprintf(stderr, "no_perf_event: cannot install the seccomp filter: %s\n", strerror(errno));
		return 126;
	}
	execvp(argv[1], argv + 1);
	fprintf(stderr, "no_perf_event: cannot run %s: %s\n", argv[1], strerror(errno));
	return 127;
}
