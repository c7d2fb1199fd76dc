/* engine.h — the sampling engines, behind one small interface.
 *
 * An engine watches the threads of one live process and hands out raw
 * samples: registers (DWARF-numbered, arch/regs.h) and a copy of the top
 * of the stack, with the CPU time each stands for.  What to do with them
 * (unwinding, accounting, the profile) is the caller's: collect/.  As in
 * Redis's ae.c over ae_epoll.c and ae_select.c, the caller sees only this
 * header; each engine is one file:
 *
 *   engine_perf.c    perf_event_open task-clock sampling: the kernel takes
 *                    each sample in its timer interrupt, on the CPU, with
 *                    nothing stopped.  The default wherever it is allowed.
 *   engine_ptrace.c  ptrace: at each tick, the threads found running are
 *                    seized, interrupted, copied and detached.  For where
 *                    perf_event_open is refused; also the tick loop of the
 *                    off-CPU profiles (wall, block, mutex), which reads
 *                    blocked threads without stopping them (peek.c) and,
 *                    with no_stop, leaves running threads to the perf
 *                    engine's samples.
 *   engine_clones.c  ptrace for thread creations (opts.clones): every thread
 *                    seized (not stopped) with PTRACE_O_TRACECLONE on a
 *                    thread of its own, the creator sampled at each clone
 *                    event stop and resumed at once.
 *
 * All of an engine's state lives in its struct attach_engine: several can
 * run in one process, each on its own thread.  One thing is not the
 * engine's own: the SIGCHLD mask of the calling thread (the ptrace engine
 * blocks it while open, to wait on it).  A thread seized for a sample whose
 * stop has not come by the end is detached if it stops while the engine
 * closes, else by the kernel when the engine's thread exits.
 * See docs/ARCHITECTURE.md, "Engines".
 */
#ifndef PPROFC_ATTACH_ENGINE_H
#define PPROFC_ATTACH_ENGINE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../arch/regs.h"
#include "proc.h"
#include "snapshot.h"

enum attach_engine_kind { ATTACH_ENGINE_PERF, ATTACH_ENGINE_PTRACE };

/* One sample, plain data.  Pointers are valid during on_sample() only. */
struct attach_raw_sample {
	pid_t tid;
	const char *comm;               /* the thread's name when sampled */
	uint64_t weight_ns;             /* CPU time it stands for (wall mode:
					 * the time since the thread's last
					 * sample) */
	struct arch_regs regs;
	uint64_t stack_addr;            /* target address of stack[0] */
	const unsigned char *stack;
	size_t stack_len;
	int stack_cut;                  /* the copy ended at its size limit */
	int probe;                      /* perf with uprobes: the index of the
					 * probe in opts.uprobes; else -1 */
	uint64_t time_ns;               /* when taken (CLOCK_MONOTONIC); ptrace:
					 * when the tick began, or for a thread
					 * stopped for it, when the tick read
					 * its schedstat (cpu_ns is up to there) */
	uint64_t stop_ns;               /* ptrace: how long the thread was
					 * stopped for it; perf: 0 */
	/* Wall mode (ptrace engine) only. */
	char state;                     /* /proc state letter when sampled */
	int repeat;                     /* blocked and has not run since its last
					 * sample: same stack, nothing was read */
	int use_cpu_stack;              /* running, not stopped (no_stop): no
					 * stack here; it is the thread's latest
					 * CPU sample from the perf engine */
	struct attach_syscall sc;       /* the call it is blocked in */
	double blocked_ms;              /* how long it had not run when read
					 * (sched exec_start), -1 if unknown */
	uint64_t cpu_ns;                /* of weight_ns, the kernel's count of
					 * the thread's time on a CPU (schedstat
					 * sum_exec_runtime) and waiting for one */
	uint64_t runq_ns;               /* (run_delay); the rest it was blocked.
					 * cpu_ns + runq_ns <= weight_ns */
	int64_t off_cpu_ns;             /* ptrace, a thread found in state R and
					 * stopped for the sample: how long
					 * before time_ns it had been off CPU,
					 * waiting for one (preempted); it gets
					 * a CPU only after time_ns, and that
					 * wait is in the next sample's runq_ns
					 * (schedstat counts a wait when it
					 * ends).  -1 unknown (not stopped, or
					 * schedstat unreadable); perf: 0 */
	/* opts.clones: the thread this sample's thread created (its stack is
	 * the creator's at the clone); else 0. */
	pid_t created;
	/* ptrace, opts.clones: `created` joined the watch without its creation
	 * being seen (a clone under way when its creator was seized): no
	 * creator, no registers, no stack. */
	int created_unseen;
};

/* perf with opts.switches: a thread of the target left a CPU or came
 * onto one (PERF_RECORD_SWITCH), or was born or exited (PERF_RECORD_FORK,
 * _EXIT), at time_ns (CLOCK_MONOTONIC, the kernel's own stamp). */
enum attach_sched_kind { ATTACH_SCHED_IN, ATTACH_SCHED_OUT, ATTACH_SCHED_PREEMPTED,
			 ATTACH_SCHED_BORN, ATTACH_SCHED_EXITED };
struct attach_sched_event {
	pid_t tid;
	enum attach_sched_kind kind;    /* PREEMPTED: out, still runnable */
	uint64_t time_ns;
};

/* A probe on a function of a file mapped by the target (uprobes.h finds
 * them): the perf engine then samples its hits instead of the CPU clock. */
struct attach_uprobe {
	const char *path;               /* as pprofc can open it: /proc/PID/root/... */
	uint64_t offset;                /* of the probed instruction in the file */
	int ret;                        /* a return probe */
	int stack;                      /* copy the stack (entries; the return
					 * of a call whose result is in its
					 * caller's frame) */
};

struct attach_engine_opts {
	int hz;
	/* perf: a sample at every hit of each of these (hz unused). */
	const struct attach_uprobe *uprobes;
	size_t n_uprobes;
	size_t stack_size;              /* bytes of stack copied per sample */
	const pid_t *only;              /* sample only these tids (NULL: all) */
	size_t n_only;
	int wall;                       /* ptrace: every thread at every tick */
	int no_stop;                    /* ptrace, wall: never stop a running
					 * thread (use_cpu_stack samples) */
	int force_stop;                 /* ptrace, for comparison only: stop
					 * every thread at every tick, blocked or
					 * not, and leave the EINTRs it causes */
	/* Thread creations instead of time (hz unused): a sample for each
	 * thread the target creates (clone or clone3 with CLONE_THREAD that
	 * succeeded; a fork is not one), with the creator's registers and
	 * stack at the call and the new thread in `created`.  perf: the
	 * syscall tracepoints, inherited, nothing stopped; ptrace: the clone
	 * event stop of the creator, resumed as soon as it is copied. */
	int clones;
	void (*on_sample)(void *arg, const struct attach_raw_sample *s);
	void (*on_tick_end)(void *arg); /* ptrace: after a tick's samples */
	/* perf: also every context switch of the target's threads, and their
	 * births and exits, to on_sched (the trace timeline). */
	int switches;
	void (*on_sched)(void *arg, const struct attach_sched_event *ev);
	/* ptrace: a thread exited (or left /proc/PID/task); it gets no more
	 * samples from this engine, so what the caller keeps for it can go. */
	void (*on_thread_gone)(void *arg, pid_t tid);
	/* ptrace: a thread that joined /proc/PID/task after the start, found
	 * by a tick (within a tick of its birth; the trace timeline). */
	void (*on_thread_new)(void *arg, pid_t tid);
	void *arg;
};

/* perf engine: one thread's CPU time over the window by the kernel's
 * accounting (schedstat), which the thread's samples are scaled to
 * (collect/kinds.c): task-clock leaves out the scheduler's own time around
 * each switch, a few percent for threads that switch often.  (The ptrace
 * engine weighs each sample by schedstat already.) */
struct attach_thread_cpu {
	pid_t tid;
	uint64_t cpu_ns;
};

struct attach_engine_stats {
	uint64_t ticks;                 /* ptrace: timer ticks handled */
	uint64_t skipped_ticks;         /* ptrace: ticks missed while busy */
	uint64_t samples;               /* handed to on_sample() */
	uint64_t lost_not_stopped;      /* ptrace: did not stop in time */
	uint64_t lost_exited;           /* exited between look and sample */
	uint64_t landed_off_cpu;        /* ptrace: the stop found the thread
					 * in a system call (blocked, or at its
					 * end, where stops pile up): dropped */
	uint64_t lost_records;          /* perf: samples the kernel dropped
					 * (ring full) */
	uint64_t no_user_regs;          /* perf: samples without user state */
	uint64_t threads_seen;
	uint64_t cpu_ns;                /* the kernel's count over the window */
	uint64_t duration_ns;
	uint64_t sampled_ns;            /* the samples' weights, summed */
	int kernel_excluded;            /* perf: time in the kernel not sampled
					 * (perf_event_paranoid) */
	int target_exited;              /* the whole process exited */
	int exit_status;                /* its wait status, or -1 if unknown */
	int target_execed;
	int uprobes_inherited;          /* perf: the uprobes are tracefs events,
					 * inherited by new threads from birth
					 * (else each thread gets its own) */
	uint64_t clones_not_threads;    /* clones: clone calls that made a
					 * process (fork, vfork), not counted */
	uint64_t clones_failed;         /* clones: thread clones that failed */
	uint64_t threads_released;      /* clones, ptrace: threads let go of
					 * early (a job-control stop, another
					 * tracer): their creations unseen after */
	uint64_t *stop_ns;              /* ptrace: each sample's stop time */
	size_t n_stop_ns, cap_stop_ns;
	struct attach_thread_cpu *thread_cpu;   /* perf, at close: live threads */
	size_t n_thread_cpu;
};

struct attach_engine;

/* Starts sampling pid (a process already checked by attach_check_target).
 * The perf engine fails with a message naming the cause and the fix
 * (perf_event_paranoid, a capability, seccomp) that the caller may print
 * or keep as its reason to fall back to ptrace. */
struct attach_engine *attach_engine_open(enum attach_engine_kind kind, pid_t pid,
					 const struct attach_engine_opts *o,
					 struct attach_error *err);
/* Collects what comes until deadline (CLOCK_MONOTONIC ns), handing samples
 * to on_sample.  Returns 1 once the target exited or exec'ed, else 0. */
int attach_engine_poll(struct attach_engine *e, uint64_t deadline_ns);
const char *attach_engine_name(const struct attach_engine *e);
/* The stats so far (for what is known at open: uprobes_inherited). */
const struct attach_engine_stats *attach_engine_stats(const struct attach_engine *e);
/* Stops sampling and lets go of every thread (ptrace: only threads it
 * holds for a sample are stopped, never a blocked one); the stats then
 * cover the whole window.  Frees the engine. */
void attach_engine_close(struct attach_engine *e, struct attach_engine_stats *st);
void attach_engine_stats_free(struct attach_engine_stats *st);

#endif
