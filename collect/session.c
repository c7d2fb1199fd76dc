/* session.c — one collection: choosing the engine, driving it, the
 * summary (see collect.h).
 *
 * Reads top to bottom as the work happens:
 *   1. open the target's symbolizer and warm it up (so the first samples
 *      are not slow), and the profile with its mappings (stacks.c);
 *   2. open the engine: perf_event where the kernel allows it for a CPU
 *      profile, else ptrace (keeping why, for the summary);
 *   3. poll the engine until the time is up, the caller cancels, or the
 *      target exits: each raw sample goes to kinds.c, which unwinds it and
 *      adds it to the profile;
 *   4. close the engine (every thread let go) and keep its figures.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/* Go's heap profile layout (docs/FORMATS.md §6). */
static void heap_spec(const struct collect_opts *o, struct pp_profile_spec *spec)
{
	*spec = (struct pp_profile_spec){
		.sample_types = { { "alloc_objects", "count" }, { "alloc_space", "bytes" },
				  { "inuse_objects", "count" }, { "inuse_space", "bytes" } },
		.n_sample_types = 4,
		.period_type = { "space", "bytes" },
		.period = (int64_t)(o->heap_rate ? o->heap_rate : 1),
		.default_sample_type = o->kind == COLLECT_ALLOCS ? "alloc_space" : NULL,
	};
}

void collect_spec(const struct collect_opts *o, struct pp_profile_spec *spec)
{
	/* Go's names where Go has the profile (docs/FORMATS.md §1.4). */
	enum collect_kind kind = o->kind;
	int offcpu = kind == COLLECT_BLOCK || kind == COLLECT_MUTEX;
	const char *k = kind == COLLECT_WALL ? "wall" : "cpu";
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	if (kind == COLLECT_HEAP || kind == COLLECT_ALLOCS) {
		heap_spec(o, spec);
		spec->time_nanos = (int64_t)now.tv_sec * 1000000000LL + now.tv_nsec;
		return;
	}
	if (kind == COLLECT_THREADCREATE) {
		/* As runtime/pprof writes it: one type, period 1 (§7). */
		*spec = (struct pp_profile_spec){
			.sample_types = { { "threadcreate", "count" } },
			.n_sample_types = 1,
			.period_type = { "threadcreate", "count" },
			.period = 1,
			.time_nanos = (int64_t)now.tv_sec * 1000000000LL + now.tv_nsec,
		};
		return;
	}
	*spec = (struct pp_profile_spec){
		.sample_types = { { offcpu ? "contentions" : "samples", "count" },
				  { offcpu ? "delay" : k, "nanoseconds" } },
		.n_sample_types = 2,
		.period_type = { offcpu ? "contentions" : k, offcpu ? "count" : "nanoseconds" },
		.period = offcpu ? 1 : 1000000000LL / o->hz,
		.time_nanos = (int64_t)now.tv_sec * 1000000000LL + now.tv_nsec,
	};
}

const char *collect_file_kind(enum collect_kind kind)
{
	static const char *const names[] = { "samples.cpu", "samples.wall", "contentions.delay",
					     "contentions.delay",
					     "alloc_objects.alloc_space.inuse_objects.inuse_space",
					     "alloc_objects.alloc_space.inuse_objects.inuse_space",
					     "trace", "threadcreate" };
	return names[kind];
}

/* Bytes of stack copied per sample when not asked: perf_event's copy
 * travels through the ring buffer with every sample (and is at most
 * 65528 bytes); a ptrace copy is read once, straight from the target. */
#define PERF_STACK_DEFAULT (32u * 1024)
#define PTRACE_STACK_DEFAULT (64u * 1024)

/* Off-CPU kinds: a perf engine whose samples only give running threads
 * their stacks, so the tick loop never has to stop one.  NULL when
 * perf_event cannot run here (the reason in ae). */
static struct attach_engine *open_cpu_stacks(struct collect_session *s,
					     const struct attach_engine_opts *tick,
					     struct attach_error *ae)
{
	struct attach_engine_opts eo = *tick;
	eo.wall = 0;
	eo.stack_size = s->o.stack_size ? s->o.stack_size : PERF_STACK_DEFAULT;
	eo.on_sample = s->trace ? collect_trace_on_cpu : collect_on_cpu_stack;
	eo.switches = s->trace != NULL;
	eo.on_sched = s->trace ? collect_trace_on_sched : NULL;
	eo.on_tick_end = NULL;
	eo.on_thread_gone = NULL;       /* the tick loop says when threads go */
	eo.on_thread_new = NULL;        /* the kernel says when they come */
	return attach_engine_open(ATTACH_ENGINE_PERF, s->pid, &eo, ae);
}

static struct attach_engine *open_engine(struct collect_session *s, struct collect_error *err)
{
	struct attach_engine_opts eo = {
		.hz = s->o.hz, .stack_size = s->o.stack_size ? s->o.stack_size : PERF_STACK_DEFAULT,
		.only = s->o.tids, .n_only = s->o.n_tids,
		.wall = s->o.kind != COLLECT_CPU, .force_stop = s->o.force_stop,
		.on_sample = s->trace ? collect_trace_on_tick : collect_on_sample,
		.on_tick_end = s->o.kind == COLLECT_MUTEX ? collect_on_tick_end : NULL,
		.on_thread_gone = s->trace ? collect_trace_on_gone : collect_on_thread_gone,
		.on_thread_new = s->trace ? collect_trace_on_new : NULL, .arg = s,
	};
	struct attach_error ae;
	struct attach_engine *e;
	int want_perf = !s->o.force_stop && s->o.engine != COLLECT_ENGINE_PTRACE;
	if (want_perf && s->o.kind == COLLECT_CPU) {
		if ((e = attach_engine_open(ATTACH_ENGINE_PERF, s->pid, &eo, &ae)))
			return e;
	} else if (want_perf) {
		/* The off-CPU kinds and the trace visit every thread at each tick (the ptrace
		 * engine's loop, which reads blocked threads without stopping
		 * them); running threads take their stacks from perf samples,
		 * so nothing is ever stopped. */
		if ((s->cpu_engine = open_cpu_stacks(s, &eo, &ae)))
			eo.no_stop = 1;
	}
	if (want_perf && (s->o.kind == COLLECT_CPU || !s->cpu_engine)) {
		if (s->o.engine == COLLECT_ENGINE_PERF || ae.code == ATTACH_ERR_NOPROC) {
			snprintf(err->msg, sizeof err->msg, "%s", ae.msg);
			return NULL;
		}
		snprintf(s->sum.fallback, sizeof s->sum.fallback, "%s", ae.msg);
	}
	if (!s->o.stack_size)
		eo.stack_size = PTRACE_STACK_DEFAULT;
	if (!(e = attach_engine_open(ATTACH_ENGINE_PTRACE, s->pid, &eo, &ae)))
		snprintf(err->msg, sizeof err->msg, "%s", ae.msg);
	return e;
}

static struct collect_session *prepare(pid_t pid, const struct collect_opts *o,
				       struct collect_error *err)
{
	struct collect_session *s = calloc(1, sizeof *s);
	char why[256];
	memset(err, 0, sizeof *err);
	if (!s) {
		snprintf(err->msg, sizeof err->msg, "out of memory");
		return NULL;
	}
	s->pid = pid;
	s->o = *o;
	s->sum.exit_status = -1;
	for (size_t i = 0; i < o->n_tids; i++) {
		char path[64];
		snprintf(path, sizeof path, "/proc/%d/task/%d", (int)pid, (int)o->tids[i]);
		if (access(path, F_OK) != 0) {
			snprintf(err->msg, sizeof err->msg, "--tid %d: no such thread in PID %d (see "
				 "/proc/%d/task)", (int)o->tids[i], (int)pid, (int)pid);
			free(s);
			return NULL;
		}
	}
	struct pp_profile_spec spec;
	collect_spec(o, &spec);
	if (o->kind == COLLECT_HEAP || o->kind == COLLECT_ALLOCS)
		spec.comment = collect_heap_attach_comment();   /* run's go by heap.c */
	if (!(s->sym = sym_open(attach_mm_pid(pid), why, sizeof why)) ||
	    collect_stacks_init(&s->stacks, pid, s->sym, &spec) ||
	    (o->kind == COLLECT_TRACE && collect_trace_open(s))) {
		snprintf(err->msg, sizeof err->msg, "cannot prepare PID %d for profiling: %s", (int)pid,
			 s->sym ? "out of memory" : why);
		collect_close(s);
		return NULL;
	}
	return s;
}

static int start(struct collect_session *s, struct collect_error *err)
{
	sym_prepare(s->sym);
	if (s->o.kind == COLLECT_THREADCREATE) {
		if (collect_tc_start(s, err))
			return -1;
	} else if (!(s->engine = open_engine(s, err))) {
		return -1;
	}
	s->sum.engine = s->cpu_engine ? attach_engine_name(s->cpu_engine)
		      : s->engine ? attach_engine_name(s->engine) : "ptrace";
	s->sum.trace_switches = s->trace && s->cpu_engine;
	s->start_ns = collect_now_ns();
	return 0;
}

struct collect_session *collect_open(pid_t pid, const struct collect_opts *o,
				     struct collect_error *err)
{
	int heap = o->kind == COLLECT_HEAP || o->kind == COLLECT_ALLOCS;
	struct collect_session *s = prepare(pid, o, err);
	if (s && (heap ? collect_heap_attach_start(s, err) : start(s, err))) {
		collect_close(s);
		return NULL;
	}
	return s;
}

struct collect_session *collect_spawn(char **argv, const struct collect_opts *o,
				      struct collect_error *err, int *status)
{
	memset(err, 0, sizeof *err);
	if (o->kind == COLLECT_HEAP || o->kind == COLLECT_ALLOCS)
		return collect_heap_spawn(argv, o, err, status);
	if (o->children)
		return collect_spawn_following(argv, o, err, status);
	pid_t pid = collect_start_child(argv, err, status);
	if (pid < 0)
		return NULL;
	/* The command is stopped at its exec: open everything, then let it
	 * run.  If that fails, it has run nothing of its own yet: it is
	 * killed there, and run fails at once rather than after it ends. */
	struct collect_session *s = prepare(pid, o, err);
	if (s) {
		s->child = pid;
		if (start(s, err) == 0) {
			collect_release_child(pid);
			if (collect_tc_released(s, err) == 0)
				return s;
			/* It runs already: it cannot be stopped at its exec. */
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			collect_close(s);
			return NULL;
		}
		collect_close(s);
	}
	collect_kill_child(pid);
	return NULL;
}

/* run: the command exited (reaped here: it is our child).  It is also a
 * tracee of the ptrace engine for a moment at each sample: the stops that
 * engine waits for must not be taken here, so look first (WNOWAIT), and
 * reap only an exit. */
int collect_child_exited(struct collect_session *s)
{
	siginfo_t si;
	int status;
	if (!s->child || s->child_reaped)
		return s->child_reaped;
	memset(&si, 0, sizeof si);
	if (waitid(P_PID, (id_t)s->child, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == s->child &&
	    (si.si_code == CLD_EXITED || si.si_code == CLD_KILLED || si.si_code == CLD_DUMPED) &&
	    waitpid(s->child, &status, 0) == s->child) {
		s->child_reaped = 1;
		s->child_status = status;
	}
	return s->child_reaped;
}

/* How long a snapshot asked for (o.snapshot) may wait, at most: the
 * engine is polled at least this often while someone may ask. */
#define SNAPSHOT_POLL_NS 20000000u

/* Block, mutex, wall: the profile as it is now, for on_snapshot (waits
 * still going on are counted up to their latest tick). */
static void snapshot_if_asked(struct collect_session *s)
{
	if (!*s->o.snapshot)
		return;
	*s->o.snapshot = 0;
	collect_kinds_sync(s);
	collect_tc_finish(s);   /* threadcreate: settled now, if not yet */
	if (s->o.on_snapshot)
		s->o.on_snapshot(s->o.arg, s);
}

void collect_run(struct collect_session *s)
{
	if (s->group) {
		collect_group_run(s);
		return;
	}
	if (s->heap) {
		collect_heap_run(s);
		return;
	}
	if (s->uheap) {
		collect_heap_attach_run(s);
		return;
	}
	uint64_t end = s->o.seconds > 0 ? s->start_ns + (uint64_t)(s->o.seconds * 1e9) : 0;
	uint64_t next_progress = s->start_ns + 1000000000u;
	while (!(s->o.cancel && *s->o.cancel)) {
		uint64_t now = collect_now_ns();
		if (end && now >= end)
			break;
		uint64_t deadline = end && end < next_progress ? end : next_progress;
		if (s->o.snapshot) {
			/* Someone may ask for a snapshot at any moment: look often. */
			if (deadline > now + SNAPSHOT_POLL_NS)
				deadline = now + SNAPSHOT_POLL_NS;
			snapshot_if_asked(s);
		}
		/* Running threads' latest stacks first, then the next tick. */
		if (s->cpu_engine && attach_engine_poll(s->cpu_engine, 0))
			break;
		if (attach_engine_poll(s->engine, deadline) || collect_child_exited(s))
			break;
		collect_tc_tick(s);
		/* Advanced with or without a callback: it bounds the next
		 * poll's deadline, which must stay ahead of now. */
		if (collect_now_ns() >= next_progress) {
			if (s->o.on_progress)
				s->o.on_progress(s->o.arg, (double)(collect_now_ns() - s->start_ns) / 1e9,
						 s->sum.st.samples);
			next_progress += 1000000000u;
		}
	}
	collect_stop(s);
}

void collect_stop(struct collect_session *s)
{
	if (s->group) {
		collect_group_stop(s);
		return;
	}
	if (s->heap) {
		collect_heap_stop(s);
		return;
	}
	if (s->uheap) {
		collect_heap_attach_stop(s);
		return;
	}
	if (s->stopped || !s->engine)
		return;
	s->stopped = 1;
	s->end_ns = collect_now_ns();
	attach_engine_close(s->engine, &s->sum.st);
	s->engine = NULL;
	if (s->cpu_engine) {
		attach_engine_close(s->cpu_engine, &s->sum.cpu_st);
		s->cpu_engine = NULL;
	}
	collect_kinds_flush(s);
	collect_tc_finish(s);
	collect_child_exited(s);
	s->sum.target_execed = s->sum.st.target_execed;
	s->sum.target_exited = s->sum.st.target_exited || s->child_reaped;
	s->sum.exit_status = s->child_reaped ? s->child_status : s->sum.st.exit_status;
}

struct pp_profile *collect_profile(struct collect_session *s)
{
	if (s->group)
		return collect_group_profile(s);
	if (s->heap)
		return collect_heap_profile(s);
	if (s->uheap)
		return collect_heap_attach_profile(s);
	return s->stacks.prof;
}

const struct collect_summary *collect_summary(const struct collect_session *s)
{
	return &s->sum;
}

pid_t collect_pid(const struct collect_session *s)
{
	return s->pid;
}

void collect_signal_child(struct collect_session *s, int sig)
{
	if (s->group && !(s = collect_group_child(s)))
		return;
	if (s->child && !s->child_reaped)
		kill(s->child, sig);
}

int collect_wait_child(struct collect_session *s, volatile sig_atomic_t *pass)
{
	int status;
	if (s->group && !(s = collect_group_child(s)))
		return -1;
	if (!s->child)
		return -1;
	while (!s->child_reaped) {
		pid_t r = waitpid(s->child, &status, __WALL);
		if (r == s->child && (WIFEXITED(status) || WIFSIGNALED(status))) {
			s->child_reaped = 1;
			s->child_status = status;
		} else if (r == s->child && WIFSTOPPED(status)) {
			/* A sample's stop that came after the engine let go:
			 * detach, handing back a signal it held. */
			int sig = (status >> 16) == 0 ? WSTOPSIG(status) : 0;
			ptrace(PTRACE_DETACH, s->child, 0, (void *)(long)sig);
		} else if (r < 0 && errno == ECHILD) {
			/* Reaped by the ptrace engine while it held the thread. */
			s->child_reaped = 1;
			s->child_status = s->sum.st.exit_status;
		} else if (r < 0 && errno == EINTR && pass && *pass) {
			kill(s->child, *pass);  /* SIGTERM... for pprofc: pass it on */
			*pass = 0;
		}
	}
	return s->child_status;
}

void collect_close(struct collect_session *s)
{
	if (!s)
		return;
	if (s->group)
		collect_group_free(s);
	if (s->engine) {
		attach_engine_close(s->engine, &s->sum.st);
		s->engine = NULL;
	}
	if (s->cpu_engine) {
		attach_engine_close(s->cpu_engine, &s->sum.cpu_st);
		s->cpu_engine = NULL;
	}
	attach_engine_stats_free(&s->sum.st);
	attach_engine_stats_free(&s->sum.cpu_st);
	collect_kinds_free(s);
	collect_trace_free(s);
	collect_heap_free(s);
	collect_heap_attach_free(s);
	collect_tc_free(s);
	collect_stacks_free(&s->stacks);
	sym_close(s->sym);
	free(s);
}
