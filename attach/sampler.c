/* sampler.c — the CPU sampler (see sampler.h).
 *
 * One loop, driven by ppoll() on a timerfd and a signalfd for SIGCHLD:
 *   tick:    pread each thread's stat; PTRACE_INTERRUPT the running ones;
 *            as each reports its stop, copy registers and stack and
 *            PTRACE_CONT it at once; then hand the copies to on_sample().
 *   SIGCHLD: every other ptrace event: a signal for the target (given back
 *            with PTRACE_CONT), a new thread (PTRACE_EVENT_CLONE), a
 *            job-control stop (kept with PTRACE_LISTEN), a thread's exit
 *            (its CPU time read first), exec, the process's exit.
 * The end: every thread is interrupted and detached with any signal it
 * still holds; one that does not stop in time is left to the kernel, which
 * detaches it when pprofc exits.
 */
#include "sampler.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "proc.h"

#define STOP_DEADLINE_NS 100000000u     /* a running thread stops in ~0.1 ms */
#define SEIZE_OPTIONS (PTRACE_O_TRACECLONE | PTRACE_O_TRACEEXEC | PTRACE_O_TRACEEXIT)

enum tstate { S_RUNNING, S_LISTENING, S_GONE };

struct sthread {
	pid_t tid;
	pid_t pid;
	enum tstate st;
	int stat_fd;                    /* kept open: pread each tick */
	int sched_fd;                   /* schedstat, opened when first seen running */
	int want;                       /* interrupted: its stop is on its way */
	int keep;                       /* ...and that stop makes a sample */
	char fs_state;                  /* force_stop: state and call when */
	struct attach_syscall fs_sc;    /* interrupted, for the sample's label */
	uint64_t interrupted_at;
	uint64_t cpu_seen;              /* its CPU time then: a sample stands for
					 * the CPU used since the last sample */
	uint64_t cpu_now;               /* read this tick */
	uint64_t weight;                /* CPU ns this sample stands for */
	int has_sample;                 /* wall: a sample exists to repeat */
	uint64_t wall_at;               /* wall: when its last sample was taken */
	uint64_t cpu_start, cpu_last;   /* schedstat: ns on CPU */
	char comm[64];
	int cpu;                        /* the CPU it last ran on, -1: unknown */
};

/* One sample taken during a tick, handed out after every thread resumed. */
struct taken {
	pid_t tid;
	char comm[64];
	struct user_regs_struct regs;
	uint64_t stack_addr;
	unsigned char *stack;
	size_t stack_len, stack_cap;
	uint64_t stop_ns;
	uint64_t weight;
	char state;
	int partial, repeat;
	struct attach_syscall sc;
	double blocked_ms;
};

struct sampler {
	pid_t pid;
	const struct attach_sampler_opts *o;
	struct attach_sampler_stats *st;
	struct sthread **t;             /* live threads; each allocated on its own so
					 * pointers survive the array growing */
	size_t n, cap;
	pid_t *ix;                      /* hash tid -> position + 1 in t */
	size_t *ixpos, ixcap;
	uint64_t cpu_gone;              /* CPU time of threads already gone */
	struct attach_maps maps;
	uint64_t maps_read_at;
	int maps_stale;                 /* a stack was not in maps: re-read */
	struct taken *taken;
	size_t n_taken, cap_taken;
	int detaching;
	int ended;                      /* the target exited or exec'ed */
	uint64_t period_ns;
	uint64_t tick_ns;               /* when the current tick began */
	double now_ms;                  /* wall: our own sched clock this tick */
	double now_cpu[64];             /* first tick: each CPU's clock */
	size_t ncpu;
};

/* ---- threads ------------------------------------------------------------ */

static uint64_t read_schedstat(pid_t pid, pid_t tid)
{
	char path[64], buf[128];
	size_t len;
	snprintf(path, sizeof path, "/proc/%d/task/%d/schedstat", (int)pid, (int)tid);
	if (attach_read_small(path, buf, sizeof buf, &len))
		return 0;
	return strtoull(buf, NULL, 10);
}

/* ---- the thread table: pointers, a tid index, compaction ---------------- */

static size_t ix_slot(const struct sampler *s, pid_t tid)
{
	size_t j = ((size_t)tid * 2654435761u) & (s->ixcap - 1);
	while (s->ix[j] && s->ix[j] != tid)
		j = (j + 1) & (s->ixcap - 1);
	return j;
}

static void ix_rebuild(struct sampler *s)
{
	memset(s->ix, 0, s->ixcap * sizeof *s->ix);
	for (size_t i = 0; i < s->n; i++) {
		size_t j = ix_slot(s, s->t[i]->tid);
		s->ix[j] = s->t[i]->tid;
		s->ixpos[j] = i;
	}
}

static struct sthread *find(struct sampler *s, pid_t tid)
{
	if (!s->ixcap)
		return NULL;
	size_t j = ix_slot(s, tid);
	return s->ix[j] ? s->t[s->ixpos[j]] : NULL;
}

static int grow_table(struct sampler *s)
{
	size_t cap = s->cap ? s->cap * 2 : 64;
	struct sthread **t = realloc(s->t, cap * sizeof *t);
	if (!t)
		return -1;
	s->t = t;
	s->cap = cap;
	pid_t *ix = calloc(cap * 2, sizeof *ix);
	size_t *pos = calloc(cap * 2, sizeof *pos);
	if (!ix || !pos) {
		free(ix);
		free(pos);
		return -1;
	}
	free(s->ix);
	free(s->ixpos);
	s->ix = ix;
	s->ixpos = pos;
	s->ixcap = cap * 2;
	ix_rebuild(s);
	return 0;
}

static struct sthread *add_thread(struct sampler *s, pid_t tid, int at_start)
{
	if (s->n == s->cap && grow_table(s))
		return NULL;
	struct sthread *t = calloc(1, sizeof *t);
	if (!t)
		return NULL;
	t->tid = tid;
	t->pid = s->pid;
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/task/%d/stat", (int)s->pid, (int)tid);
	t->stat_fd = open(path, O_RDONLY | O_CLOEXEC);
	t->sched_fd = -1;
	t->cpu = -1;
	/* A thread born during the collection has all its CPU time in it. */
	t->cpu_start = at_start ? read_schedstat(s->pid, tid) : 0;
	t->cpu_last = t->cpu_seen = t->cpu_start;
	s->t[s->n] = t;
	size_t j = ix_slot(s, tid);
	s->ix[j] = tid;
	s->ixpos[j] = s->n++;
	s->st->threads_seen++;
	return t;
}

static int wanted(const struct sampler *s, pid_t tid);

static void thread_gone(struct sampler *s, struct sthread *t)
{
	if (t->st == S_GONE)
		return;
	t->st = S_GONE;
	if (t->want) {
		t->want = 0;
		s->st->lost_exited += t->keep;
	}
	if (t->stat_fd >= 0)
		close(t->stat_fd);
	if (t->sched_fd >= 0)
		close(t->sched_fd);
	t->stat_fd = t->sched_fd = -1;
	if (wanted(s, t->tid) && t->cpu_last > t->cpu_start)
		s->cpu_gone += t->cpu_last - t->cpu_start;
}

/* Drops gone threads, so a process that churns through threads does not
 * make every tick slower.  Only between ticks: no pointer is held then. */
static void compact(struct sampler *s)
{
	size_t w = 0;
	for (size_t i = 0; i < s->n; i++) {
		if (s->t[i]->st == S_GONE)
			free(s->t[i]);
		else
			s->t[w++] = s->t[i];
	}
	if (w != s->n) {
		s->n = w;
		ix_rebuild(s);
	}
}

/* State letter from the kept-open stat file, and the thread's name. */
static char thread_state(struct sthread *t)
{
	char buf[1024];
	struct attach_stat st;
	ssize_t r;
	if (t->stat_fd < 0) {
		/* Out of descriptors (a huge process): open it each time. */
		char path[64];
		snprintf(path, sizeof path, "/proc/%d/task/%d/stat", (int)t->pid, (int)t->tid);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return '?';
		r = pread(fd, buf, sizeof buf - 1, 0);
		close(fd);
	} else {
		r = pread(t->stat_fd, buf, sizeof buf - 1, 0);
	}
	if (r <= 0 || attach_parse_stat(buf, (size_t)r, &st))
		return '?';
	memcpy(t->comm, st.comm, sizeof t->comm);
	t->cpu = st.processor;
	return st.state;
}

/* How long the thread ran on a CPU since we last looked (ns): state R also
 * means "runnable, waiting for a CPU", and a thread that only waited has
 * used nothing.  Reads its on-CPU time from a kept-open schedstat.  Returns
 * UINT64_MAX when it cannot tell. */
static uint64_t ran_since_last_look(struct sampler *s, struct sthread *t)
{
	char buf[128];
	if (t->sched_fd < 0) {
		char path[64];
		snprintf(path, sizeof path, "/proc/%d/task/%d/schedstat", (int)s->pid, (int)t->tid);
		t->sched_fd = open(path, O_RDONLY | O_CLOEXEC);
		if (t->sched_fd < 0)
			return UINT64_MAX;      /* cannot tell: trust the state */
	}
	ssize_t r = pread(t->sched_fd, buf, sizeof buf - 1, 0);
	if (r <= 0)
		return UINT64_MAX;
	buf[r] = 0;
	uint64_t cpu = strtoull(buf, NULL, 10);
	uint64_t ran = cpu > t->cpu_seen ? cpu - t->cpu_seen : 0;
	t->cpu_now = cpu;
	t->cpu_last = cpu;              /* for the kernel's total (truth check) */
	return ran;
}

static int wanted(const struct sampler *s, pid_t tid)
{
	if (!s->o->only)
		return 1;
	for (size_t i = 0; i < s->o->n_only; i++)
		if (s->o->only[i] == tid)
			return 1;
	return 0;
}

/* ---- taking a sample ---------------------------------------------------- */

static struct taken *next_taken(struct sampler *s)
{
	if (s->n_taken == s->cap_taken) {
		size_t cap = s->cap_taken ? s->cap_taken * 2 : 8;
		struct taken *t = realloc(s->taken, cap * sizeof *t);
		if (!t)
			return NULL;
		memset(t + s->cap_taken, 0, (cap - s->cap_taken) * sizeof *t);
		s->taken = t;
		s->cap_taken = cap;
	}
	return &s->taken[s->n_taken];
}

static void refresh_maps(struct sampler *s)
{
	char path[64], *buf;
	size_t len;
	if (!s->maps_stale || attach_now_ns() - s->maps_read_at < 1000000000u)
		return;
	snprintf(path, sizeof path, "/proc/%d/maps", (int)s->pid);
	if (attach_read_file(path, &buf, &len) == 0) {
		attach_maps_free(&s->maps);
		attach_parse_maps(buf, len, &s->maps);
		free(buf);
	}
	s->maps_read_at = attach_now_ns();
	s->maps_stale = 0;
}

/* The thread is in its interrupt stop: copy what unwinding needs. */
static struct taken *take(struct sampler *s, struct sthread *t)
{
	struct taken *k = next_taken(s);
	if (!k)
		return NULL;
	struct iovec iov = { &k->regs, sizeof k->regs };
	if (ptrace(PTRACE_GETREGSET, t->tid, (void *)NT_PRSTATUS, &iov) != 0)
		return NULL;
	size_t limit = s->o->stack_limit;
	if (k->stack_cap < limit) {
		unsigned char *b = realloc(k->stack, limit);
		if (!b)
			return NULL;
		k->stack = b;
		k->stack_cap = limit;
	}
	/* A new thread's stack may not be in our copy of the maps yet: then
	 * copy up to the limit (the read stops at an unmapped page) and
	 * re-read the maps after the tick, when no thread is stopped. */
	uint64_t lo, hi;
	if (!attach_stack_range(&s->maps, k->regs.rsp, limit, &lo, &hi))
		s->maps_stale = 1;
	ssize_t n = attach_read_mem(t->tid, lo, k->stack, hi - lo);
	k->tid = t->tid;
	k->weight = t->weight;
	k->state = s->o->force_stop ? t->fs_state : 'R';
	k->sc = t->fs_sc;
	k->partial = k->repeat = 0;
	k->blocked_ms = -1;
	memcpy(k->comm, t->comm, sizeof k->comm);
	k->stack_addr = lo;
	k->stack_len = n > 0 ? (size_t)n : 0;
	s->n_taken++;
	return k;
}

static void record_stop(struct sampler *s, uint64_t ns)
{
	struct attach_sampler_stats *st = s->st;
	if (st->n_stop_ns == st->cap_stop_ns) {
		size_t cap = st->cap_stop_ns ? st->cap_stop_ns * 2 : 1024;
		uint64_t *v = realloc(st->stop_ns, cap * sizeof *v);
		if (!v)
			return;
		st->stop_ns = v;
		st->cap_stop_ns = cap;
	}
	st->stop_ns[st->n_stop_ns++] = ns;
}

/* ---- ptrace events ------------------------------------------------------ */

static void resume(struct sampler *s, struct sthread *t, int sig)
{
	if (s->detaching) {
		ptrace(PTRACE_DETACH, t->tid, 0, (void *)(long)sig);
		thread_gone(s, t);      /* for us it is: counts its CPU time */
	} else if (ptrace(PTRACE_CONT, t->tid, 0, (void *)(long)sig) != 0 && errno == ESRCH) {
		thread_gone(s, t);
	}
}

static void on_event_stop(struct sampler *s, struct sthread *t, int sig)
{
	if (sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU) {
		/* A job-control stop: keep it.  LISTEN leaves the thread stopped
		 * but lets SIGCONT wake it; detaching keeps the stop too. */
		t->want = 0;
		if (s->detaching)
			resume(s, t, 0);
		else {
			ptrace(PTRACE_LISTEN, t->tid, 0, 0);
			t->st = S_LISTENING;
		}
		return;
	}
	if (t->st == S_LISTENING)
		t->st = S_RUNNING;      /* SIGCONT ended the group stop */
	if (t->want && !s->detaching) {
		struct taken *k = t->keep ? take(s, t) : NULL;
		t->want = 0;
		/* It was running when we looked; if it blocked since, our stop
		 * may have failed its call with EINTR: make the call again. */
		if (!s->o->force_stop)
			attach_undo_eintr(s->pid, t->tid, k ? &k->regs : NULL);
		resume(s, t, 0);
		uint64_t ns = attach_now_ns() - t->interrupted_at;
		record_stop(s, ns);
		if (k)
			k->stop_ns = ns;
		else if (t->keep)
			s->st->lost_not_stopped++;
		return;
	}
	if (!s->o->force_stop)
		attach_undo_eintr(s->pid, t->tid, NULL);
	resume(s, t, 0);
}

static void on_status(struct sampler *s, pid_t tid, int status)
{
	struct sthread *t = find(s, tid);
	if (!t) {
		/* A new thread whose first stop arrived before its parent's
		 * PTRACE_EVENT_CLONE. */
		if (!WIFSTOPPED(status) || !(t = add_thread(s, tid, 0)))
			return;
	}
	if (WIFEXITED(status) || WIFSIGNALED(status)) {
		thread_gone(s, t);
		if (tid == s->pid) {
			s->ended = 1;
			s->st->target_exited = 1;
			s->st->exit_status = status;
		}
		return;
	}
	if (!WIFSTOPPED(status))
		return;
	int event = status >> 16, sig = WSTOPSIG(status);
	unsigned long msg = 0;
	switch (event) {
	case 0:
		/* signal-delivery-stop: give the signal back, exactly once */
		resume(s, t, sig);
		break;
	case PTRACE_EVENT_CLONE:
		if (ptrace(PTRACE_GETEVENTMSG, tid, 0, &msg) == 0 && !find(s, (pid_t)msg))
			add_thread(s, (pid_t)msg, 0);
		resume(s, t, 0);
		break;
	case PTRACE_EVENT_EXIT:
		/* Last chance to read its CPU time. */
		t->cpu_last = read_schedstat(s->pid, tid);
		if (t->want) {
			t->want = 0;
			s->st->lost_exited += t->keep;
		}
		resume(s, t, 0);
		break;
	case PTRACE_EVENT_EXEC:
		/* The program was replaced: what we know of its code is stale. */
		s->ended = 1;
		s->st->target_execed = 1;
		resume(s, t, 0);
		break;
	case PTRACE_EVENT_STOP:
		on_event_stop(s, t, sig);
		break;
	default:
		resume(s, t, 0);
	}
}

/* Handles every ptrace event waiting to be collected. */
static void drain(struct sampler *s)
{
	int status;
	pid_t tid;
	while ((tid = waitpid(-1, &status, __WALL | WNOHANG)) > 0)
		on_status(s, tid, status);
}

static int is_wanted(const struct sthread *t)
{
	return t->want;
}

static int is_attached(const struct sthread *t)
{
	return t->st != S_GONE;
}

/* Collects the stops of the threads for which waiting() holds, handling
 * each as it comes, until there are none left or the deadline passes.
 * waitpid on one tid is O(1) in the kernel; waitpid(-1) scans every tracee. */
static void wait_for(struct sampler *s, sigset_t *chld, uint64_t deadline,
		     int (*waiting)(const struct sthread *))
{
	for (;;) {
		size_t left = 0;
		for (size_t i = 0; i < s->n; i++) {
			struct sthread *t = s->t[i];
			int status;
			if (!waiting(t))
				continue;
			pid_t r = waitpid(t->tid, &status, __WALL | WNOHANG);
			if (r == t->tid)
				on_status(s, t->tid, status);
			else if (r < 0 && errno == ECHILD)
				thread_gone(s, t);
			left += waiting(t) != 0;
		}
		uint64_t now = attach_now_ns();
		if (!left || now >= deadline)
			break;
		uint64_t wait = deadline - now;
		struct timespec ts = { (time_t)(wait / 1000000000u), (long)(wait % 1000000000u) };
		sigtimedwait(chld, NULL, &ts);
	}
}

/* Waits for the wanted threads to stop (each is sampled as it does). */
static void wait_wanted(struct sampler *s, sigset_t *chld, uint64_t deadline)
{
	wait_for(s, chld, deadline, is_wanted);
	uint64_t now = attach_now_ns();
	for (size_t i = 0; i < s->n; i++)
		if (s->t[i]->want && now - s->t[i]->interrupted_at > STOP_DEADLINE_NS) {
			/* Still not stopped long after: give up on this sample; the
			 * interrupt, when it lands, is just resumed. */
			s->t[i]->want = 0;
			s->st->lost_not_stopped += s->t[i]->keep;
		}
}

/* Wall mode: a sample stands for the time since the thread's previous
 * one, a period when all goes well, more when ticks were skipped (pprofc
 * busy or descheduled) or its last sample was lost: so the weights add up
 * to the time observed, and block delays to how long threads blocked. */
static uint64_t wall_weight(struct sampler *s, struct sthread *t)
{
	uint64_t w = t->wall_at && s->tick_ns > t->wall_at ? s->tick_ns - t->wall_at : s->period_ns;
	t->wall_at = s->tick_ns;
	return w;
}

/* Wall mode, a thread that is not running: sampled without stopping it.
 * If it has not run since its last sample (its CPU time did not grow), the
 * stack cannot have changed: repeat that sample, reading nothing more.
 * Otherwise read pc, sp and stack as dump-threads does (peek.c).  Returns
 * 1 when handled here, 0 when the thread runs and must be stopped. */
static int wall_sample(struct sampler *s, struct sthread *t, uint64_t ran)
{
	struct taken *k;
	if (ran == 0 && t->has_sample) {
		if (!(k = next_taken(s)))
			return 1;
		k->tid = t->tid;
		k->repeat = 1;
		k->partial = 0;
		k->blocked_ms = -1;
		k->weight = wall_weight(s, t);
		memcpy(k->comm, t->comm, sizeof k->comm);
		s->n_taken++;
		return 1;
	}
	char state = thread_state(t);
	if (state == 'R' || state == '?')
		return state == '?';
	struct attach_thread at;
	char path[64];
	memset(&at, 0, sizeof at);
	at.tid = t->tid;
	at.has_stat = 1;
	at.stat.state = state;
	snprintf(path, sizeof path, "/proc/%d/task/%d", (int)s->pid, (int)t->tid);
	int dir = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	int r = dir < 0 ? -1 : attach_read_wait_files(dir, &at);
	if (dir >= 0)
		close(dir);
	if (r)
		return 1;
	if (attach_peek_blocked(s->pid, &at, &s->maps, s->o->stack_limit)) {
		s->st->lost_not_stopped++;      /* it ran meanwhile: next tick */
		return 1;
	}
	if (!(k = next_taken(s)) || (k->stack_cap < at.stack_len &&
				     !(k->stack = realloc(k->stack, k->stack_cap = at.stack_len)))) {
		free(at.stack);
		return 1;
	}
	if (at.stack_len)       /* 0 with a bogus sp (peek.c) */
		memcpy(k->stack, at.stack, at.stack_len);
	k->stack_len = at.stack_len;
	k->stack_addr = at.stack_addr;
	k->regs = at.regs;
	k->tid = t->tid;
	k->weight = wall_weight(s, t);
	k->stop_ns = 0;
	k->state = state;
	k->partial = 1;
	k->repeat = 0;
	k->sc = at.sc;
	k->blocked_ms = -1;
	/* Each CPU has its own scheduler clock; on the first tick (when the
	 * whole wait so far counts) compare with the thread's own CPU's. */
	double now = s->st->ticks == 0 && t->cpu >= 0 && (size_t)t->cpu < s->ncpu &&
		     s->now_cpu[t->cpu] >= 0 ? s->now_cpu[t->cpu] : s->now_ms;
	if (at.has_sched && now > 0) {
		double d = now - at.sched.exec_start_ms;
		k->blocked_ms = d > 0 ? d : 0;
	}
	memcpy(k->comm, t->comm, sizeof k->comm);
	free(at.stack);
	s->n_taken++;
	t->has_sample = 1;
	return 1;
}

/* --force-stop, for comparison: every thread is interrupted, blocked or
 * not, as plain ptrace samplers do.  Reads the state (and the call of a
 * blocked thread, for the wall profile's label) before the interrupt
 * changes it.  Returns whether the stop makes a sample: in a CPU profile
 * only a thread that ran does; the others are stopped for nothing. */
static int force_stop_look(struct sampler *s, struct sthread *t, uint64_t ran)
{
	char path[96], buf[512];
	size_t len;
	t->fs_state = thread_state(t);
	memset(&t->fs_sc, 0, sizeof t->fs_sc);
	if (!s->o->wall)
		return ran > 0 && t->fs_state == 'R';
	if (t->fs_state != 'R') {
		snprintf(path, sizeof path, "/proc/%d/task/%d/syscall", (int)s->pid, (int)t->tid);
		if (attach_read_small(path, buf, sizeof buf, &len) == 0)
			attach_parse_syscall(buf, len, &t->fs_sc);
	}
	return 1;
}

static void tick(struct sampler *s, sigset_t *chld)
{
	uint64_t t0 = attach_now_ns();
	s->tick_ns = t0;
	compact(s);
	if (s->o->wall) {
		/* "now" on the scheduler clock, to date the waits (DESIGN.md) */
		char buf[8192];
		size_t len;
		struct attach_sched me;
		if (attach_read_small("/proc/self/sched", buf, sizeof buf, &len) == 0 &&
		    attach_parse_sched(buf, len, &me) == 0)
			s->now_ms = me.exec_start_ms;
		if (s->st->ticks == 0)
			s->ncpu = attach_sched_clocks(s->now_cpu, sizeof s->now_cpu / sizeof s->now_cpu[0]);
	}
	for (size_t i = 0; i < s->n; i++) {
		struct sthread *t = s->t[i];
		if (t->st != S_RUNNING || !wanted(s, t->tid) || t->want)
			continue;       /* (want: its last interrupt is still on its way) */
		/* schedstat first: it is cheap, and a thread whose CPU time did
		 * not grow has nothing to sample, whatever its state.  A sample
		 * stands for the CPU time used since the thread's last sample: a
		 * thread running all along weighs about a period, one that
		 * shares its CPU or was born a moment ago what it really ran. */
		uint64_t ran = ran_since_last_look(s, t);
		if (s->o->force_stop) {
			t->keep = force_stop_look(s, t, ran);
		} else if (s->o->wall) {
			if (wall_sample(s, t, ran))
				continue;       /* taken without stopping it */
			t->keep = 1;
		} else if (ran == 0 || thread_state(t) != 'R') {
			continue;
		} else {
			t->keep = 1;
		}
		/* schedstat lags a running thread by up to a scheduler tick, so
		 * one interval may read long and the next short: clipping either
		 * would lose CPU time.  Unclipped, the weights add up to the
		 * kernel's own count. */
		t->weight = s->o->wall ? wall_weight(s, t) : ran;
		if (t->keep)
			t->cpu_seen = t->cpu_now;  /* this CPU time is now accounted for */
		if (ptrace(PTRACE_INTERRUPT, t->tid, 0, 0) != 0)
			continue;
		t->want = 1;
		t->interrupted_at = attach_now_ns();
	}
	/* Wait at most half a period: a thread waiting for a CPU (more busy
	 * threads than CPUs) stops only when it is scheduled, and the ticks
	 * must go on meanwhile; its sample is taken whenever it stops. */
	uint64_t half = s->period_ns / 2;
	wait_wanted(s, chld, t0 + (half < STOP_DEADLINE_NS ? half : STOP_DEADLINE_NS));
	/* Everyone sampled runs again: now the slow part. */
	refresh_maps(s);
	for (size_t i = 0; i < s->n_taken; i++) {
		struct taken *k = &s->taken[i];
		struct attach_sample smp = { k->tid, k->comm, &k->regs, k->stack_addr, k->stack,
					     k->stack_len, k->stop_ns, k->weight, k->state, k->partial,
					     k->repeat, k->sc, k->blocked_ms };
		s->st->samples++;
		s->o->on_sample(s->o->arg, &smp);
	}
	s->n_taken = 0;
	if (s->o->on_tick_end)
		s->o->on_tick_end(s->o->arg);
	s->st->ticks++;
}

/* ---- start and end ------------------------------------------------------ */

static int seize_all(struct sampler *s, struct attach_error *err)
{
	if (s->o->already_seized) {
		/* run mode: our child, seized and stopped at its exec. */
		add_thread(s, s->pid, 1);
		ptrace(PTRACE_CONT, s->pid, 0, 0);
	}
	/* Loop until no new thread shows up: threads may be created while we
	 * seize; once seized with TRACECLONE, their children are ours. */
	for (int round = 0; round < 64; round++) {
		pid_t *tids;
		size_t n, added = 0;
		if (attach_list_tasks(s->pid, &tids, &n)) {
			err->code = ATTACH_ERR_NOPROC;
			snprintf(err->msg, sizeof err->msg, "no such process: PID %d", (int)s->pid);
			return -1;
		}
		for (size_t i = 0; i < n; i++) {
			if (find(s, tids[i]))
				continue;
			if (ptrace(PTRACE_SEIZE, tids[i], 0, (void *)(long)SEIZE_OPTIONS) != 0) {
				if (errno == EPERM && s->n == 0) {
					free(tids);
					return attach_fail_perm(err, s->pid);
				}
				continue;       /* exited meanwhile */
			}
			add_thread(s, tids[i], 1);
			added++;
		}
		free(tids);
		if (!added)
			return 0;
	}
	return 0;
}

static void detach_all(struct sampler *s, sigset_t *chld)
{
	s->detaching = 1;
	for (size_t i = 0; i < s->n; i++) {
		struct sthread *t = s->t[i];
		if (t->st == S_GONE)
			continue;
		t->cpu_last = read_schedstat(s->pid, t->tid);
		if (t->st == S_LISTENING) {
			/* Stopped by job control: detach keeps it stopped. */
			resume(s, t, 0);
			continue;
		}
		ptrace(PTRACE_INTERRUPT, t->tid, 0, 0);
	}
	wait_for(s, chld, attach_now_ns() + STOP_DEADLINE_NS * 5, is_attached);
	for (size_t i = 0; i < s->n; i++)
		if (s->t[i]->st != S_GONE)
			attach_add_straggler(s->t[i]->tid);
}

static void sum_cpu(struct sampler *s)
{
	s->st->cpu_ns = s->cpu_gone;
	for (size_t i = 0; i < s->n; i++)
		if (s->t[i]->st != S_GONE && wanted(s, s->t[i]->tid) &&
		    s->t[i]->cpu_last > s->t[i]->cpu_start)
			s->st->cpu_ns += s->t[i]->cpu_last - s->t[i]->cpu_start;
}

static void loop(struct sampler *s, int tfd, int sfd, sigset_t *chld, uint64_t start, uint64_t end)
{
	uint64_t next_progress = attach_now_ns() + 1000000000u;
	while (!s->ended && !(s->o->cancel && *s->o->cancel)) {
		uint64_t now = attach_now_ns();
		if (end && now >= end)
			break;
		struct pollfd pf[2] = { { tfd, POLLIN, 0 }, { sfd, POLLIN, 0 } };
		uint64_t left = end ? end - now : 1000000000u;
		struct timespec ts = { (time_t)(left / 1000000000u), (long)(left % 1000000000u) };
		if (ppoll(pf, 2, &ts, NULL) < 0 && errno != EINTR)
			break;
		if (pf[1].revents & POLLIN) {
			struct signalfd_siginfo si;
			while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si)
				;
		}
		drain(s);
		uint64_t expirations;
		if ((pf[0].revents & POLLIN) && read(tfd, &expirations, sizeof expirations) > 0) {
			if (expirations > 1)
				s->st->skipped_ticks += expirations - 1;
			tick(s, chld);
		}
		if (s->o->on_progress && attach_now_ns() >= next_progress) {
			s->st->duration_ns = attach_now_ns() - start;
			s->o->on_progress(s->o->arg, s->st);
			next_progress += 1000000000u;
		}
	}
}

int attach_sample_run(pid_t pid, const struct attach_sampler_opts *o,
		      struct attach_sampler_stats *st, struct attach_error *err)
{
	struct sampler s = { .pid = pid, .o = o, .st = st, .period_ns = 1000000000u / (unsigned)o->hz };
	memset(st, 0, sizeof *st);
	err->code = ATTACH_OK;
	char path[64], *buf;
	size_t len;
	snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
	if (attach_read_file(path, &buf, &len) == 0) {
		attach_parse_maps(buf, len, &s.maps);
		free(buf);
	}
	s.maps_read_at = attach_now_ns();

	sigset_t chld, old;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, &old);
	int sfd = signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC);
	int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	int r = -1;
	if (sfd < 0 || tfd < 0) {
		err->code = ATTACH_ERR_OTHER;
		snprintf(err->msg, sizeof err->msg, "cannot create timer: %s", strerror(errno));
	} else if (seize_all(&s, err) == 0) {
		long period = 1000000000L / o->hz;
		struct itimerspec its = { { period / 1000000000L, period % 1000000000L },
					  { period / 1000000000L, period % 1000000000L } };
		timerfd_settime(tfd, 0, &its, NULL);
		uint64_t start = attach_now_ns();
		loop(&s, tfd, sfd, &chld, start, o->duration_ns ? start + o->duration_ns : 0);
		st->duration_ns = attach_now_ns() - start;
		detach_all(&s, &chld);
		sum_cpu(&s);
		r = 0;
	} else {
		detach_all(&s, &chld);
	}
	if (sfd >= 0)
		close(sfd);
	if (tfd >= 0)
		close(tfd);
	attach_install_reaper();
	sigprocmask(SIG_SETMASK, &old, NULL);
	for (size_t i = 0; i < s.n; i++) {
		if (s.t[i]->stat_fd >= 0)
			close(s.t[i]->stat_fd);
		if (s.t[i]->sched_fd >= 0)
			close(s.t[i]->sched_fd);
		free(s.t[i]);
	}
	free(s.ix);
	free(s.ixpos);
	for (size_t i = 0; i < s.cap_taken; i++)
		free(s.taken[i].stack);
	free(s.taken);
	free(s.t);
	attach_maps_free(&s.maps);
	return r;
}

void attach_sampler_stats_free(struct attach_sampler_stats *st)
{
	free(st->stop_ns);
	st->stop_ns = NULL;
	st->n_stop_ns = st->cap_stop_ns = 0;
}
