/* sampler.h — sampling the running threads of a live process (CPU profile).
 *
 * Every thread is seized for the whole collection (new ones join through
 * PTRACE_O_TRACECLONE).  A timerfd ticks at hz; at each tick the sampler
 * reads each thread's state from a kept-open /proc/PID/task/TID/stat and
 * samples only the running ones (state R, and on-CPU time grown since the
 * last tick: R also means merely runnable): interrupt, registers, a copy of
 * the stack, resume, at once.  A sample weighs the CPU time the thread used
 * since its previous sample: a thread running all along weighs about one
 * period (1e9/hz ns), and the weights add up to the kernel's count.  A thread asleep in a system call is never
 * stopped.  Each sample goes to on_sample() after the thread runs again;
 * that is where the caller unwinds and symbolizes.
 *
 * Signals the target receives while traced are given back exactly once; a
 * job-control stop is kept (PTRACE_LISTEN); at the end every thread is
 * detached, and if pprofc dies the kernel detaches them (PTRACE_SEIZE).
 */
#ifndef PPROFC_ATTACH_SAMPLER_H
#define PPROFC_ATTACH_SAMPLER_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

#include "proc.h"
#include "snapshot.h"

struct attach_sample {
	pid_t tid;
	const char *comm;               /* the thread's name at sampling time */
	const struct user_regs_struct *regs;
	uint64_t stack_addr;
	const unsigned char *stack;
	size_t stack_len;
	uint64_t stop_ns;               /* how long this thread was stopped */
	uint64_t weight_ns;             /* CPU time it used since its last
					 * sample (schedstat); wall mode: the
					 * time since its last sample */
	/* wall mode */
	char state;                     /* /proc state letter when sampled */
	int partial;                    /* read without stopping: only rsp, rip */
	int repeat;                     /* blocked and has not run since its last
					 * sample: same stack, nothing was read */
	struct attach_syscall sc;       /* the call it is blocked in */
	double blocked_ms;              /* how long it had not run when read
					 * (sched exec_start), -1 if unknown */
};

struct attach_sampler_stats {
	uint64_t ticks;                 /* timer ticks handled */
	uint64_t skipped_ticks;         /* ticks that passed while pprofc was busy */
	uint64_t samples;
	uint64_t lost_not_stopped;      /* running thread that did not stop in time */
	uint64_t lost_exited;           /* thread exited between state read and sample */
	uint64_t threads_seen;
	uint64_t cpu_ns;                /* kernel's account (schedstat) over the window */
	uint64_t duration_ns;
	int target_exited;              /* the whole process exited */
	int exit_status;                /* its wait status, when target_exited */
	int target_execed;
	uint64_t *stop_ns;              /* every sample's stop time, for percentiles */
	size_t n_stop_ns, cap_stop_ns;
};

struct attach_sampler_opts {
	int hz;
	uint64_t duration_ns;           /* 0: until cancelled or the target exits */
	size_t stack_limit;
	const pid_t *only;              /* sample only these tids (NULL: all) */
	size_t n_only;
	volatile sig_atomic_t *cancel;  /* set by SIGINT...: stop early */
	void (*on_sample)(void *arg, const struct attach_sample *s);
	void (*on_progress)(void *arg, const struct attach_sampler_stats *st);  /* ~1/s */
	void (*on_tick_end)(void *arg);  /* after a tick's samples; may be NULL */
	void *arg;
	int already_seized;             /* run mode: pid is our stopped child */
	int wall;                       /* every thread, running or not, each
					 * sample weighing the time since the
					 * thread's last one (about a period) */
	int force_stop;                 /* for comparison only: interrupt every
					 * thread at every tick, blocked or not,
					 * and do not repair calls that fail
					 * with EINTR, as plain ptrace samplers
					 * do */
};

int attach_sample_run(pid_t pid, const struct attach_sampler_opts *o,
		      struct attach_sampler_stats *st, struct attach_error *err);
void attach_sampler_stats_free(struct attach_sampler_stats *st);

#endif
