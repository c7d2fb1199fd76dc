/* snapshot.h — one consistent snapshot of every thread of a live process.
 *
 * attach_snapshot_take() reads each thread's /proc state first (while it
 * runs).  A thread blocked in a system call is then read without being
 * stopped (peek.c); the others are seized with PTRACE_SEIZE, interrupted,
 * their registers read and stacks copied, and detached.  Only raw bytes
 * come out: unwinding and symbolization happen later, elsewhere, while the
 * target runs.  See docs/ARCHITECTURE.md, "Invariants".
 */
#ifndef PPROFC_ATTACH_SNAPSHOT_H
#define PPROFC_ATTACH_SNAPSHOT_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

#include "../arch/regs.h"
#include "proc.h"

struct attach_opts {
	size_t stack_limit;         /* bytes of stack to copy per thread */
	int stop_timeout_ms;        /* how long to wait for all threads to stop */
	int stop_all;               /* also stop threads blocked in system calls */
	int all_wchan;              /* read every thread's wchan (JSON prints it);
				     * else only in state D, where text shows it */
	/* Set asynchronously (SIGINT...): the snapshot finishes its detach and
	 * returns early.  May be NULL. */
	volatile sig_atomic_t *cancel;
};

struct attach_thread {
	pid_t tid;
	/* Read before the thread was stopped. */
	struct attach_stat stat;
	int has_stat;
	pid_t tracer;               /* TracerPid of a thread to seize, if
				     * another tool traces it (else 0) */
	struct attach_syscall sc;
	char wchan[64];
	struct attach_sched sched;
	int has_sched;
	/* Taken while stopped. */
	int taken;                  /* regs and stack are valid */
	int partial_regs;           /* taken without stopping: only SP, PC */
	char not_taken[128];        /* why not, when !taken */
	int group_stopped;          /* it was in a job-control stop */
	int reinjected_signal;      /* a signal caught while traced, given back */
	struct arch_regs regs;      /* DWARF-numbered (arch/regs.h) */
	uint64_t stack_addr;        /* target address of stack[0] */
	unsigned char *stack;
	size_t stack_len;
};

/* Threads the snapshot seized that had not stopped when it let go of the
 * others: they are detached as they stop (attach_snapshot_release). */
struct attach_stragglers {
	pid_t *tids;
	size_t n, cap;
};

struct attach_snapshot {
	pid_t pid;
	char exe[4096];             /* /proc/PID/exe target, " (deleted)" kept */
	char *cmdline;              /* NUL-separated, cmdline_len bytes */
	size_t cmdline_len;
	struct attach_maps maps;    /* read before the stop */
	struct attach_thread *threads;
	size_t n;
	double now_ms;              /* scheduler clock when the snapshot began */
	int has_now;
	double *now_cpu;            /* ...per CPU, as each keeps its own (-1: unknown) */
	size_t ncpu;                /* entries of now_cpu */
	uint64_t prepare_ns;        /* reading /proc and seizing, before the stop */
	uint64_t stopped_ns;        /* from the first interrupt to the last detach */
	size_t stragglers;          /* seized threads that never stopped */
	struct attach_stragglers held;  /* ...those still seized */
	size_t restarted;           /* system calls made again instead of EINTR */
	size_t peeked;              /* blocked threads read without stopping */
	int cancelled;
};

/* What went wrong, for the one line cli prints. */
enum attach_err {
	ATTACH_OK = 0,
	ATTACH_ERR_NOPROC,
	ATTACH_ERR_PERM,
	ATTACH_ERR_TRACED,
	ATTACH_ERR_ZOMBIE,
	ATTACH_ERR_KTHREAD,
	ATTACH_ERR_SELF,
	ATTACH_ERR_OTHER,
};
struct attach_error {
	enum attach_err code;
	char msg[512];
};

/* Checks that pid names a process pprofc may and can attach to.  On success
 * returns 0 and stores the thread-group id in *tgid (a TID is accepted). */
int attach_check_target(pid_t pid, pid_t *tgid, struct attach_error *err);
/* The same without looking for a tracer on each thread: for
 * attach_snapshot_take(), which refuses a traced thread it would have to
 * seize before it seizes any, and reads the others without ptrace. */
int attach_check_process(pid_t pid, pid_t *tgid, struct attach_error *err);

int attach_snapshot_take(pid_t pid, const struct attach_opts *opts,
			 struct attach_snapshot *out, struct attach_error *err);
/* Detaches the snapshot's stragglers that have stopped since, waiting up to
 * wait_ns for the others; returns how many are left (the kernel detaches
 * those when this thread exits).  Call it on the thread that took the
 * snapshot, once the output is written; attach_snapshot_free() calls it
 * without waiting. */
size_t attach_snapshot_release(struct attach_snapshot *s, uint64_t wait_ns);
void attach_snapshot_free(struct attach_snapshot *s);

/* Reads target memory (no stop needed).  Returns bytes read or -1.  For
 * a process whose main thread exited, read through a live thread of it
 * (attach_mm_pid), looked up again whenever the read fails with ESRCH. */
ssize_t attach_read_mem(pid_t pid, uint64_t addr, void *buf, size_t len);

#endif
