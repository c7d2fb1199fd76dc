/* engine_ptrace.c — the ptrace engine (see engine.h).
 *
 * For where perf_event_open is refused, and for the off-CPU profiles.  One
 * loop, driven by a timerfd:
 *   tick:  list /proc/PID/task (threads come and go); read each thread's
 *          schedstat and stat from kept-open files; a thread that ran
 *          since its last sample and is running now is seized
 *          (PTRACE_SEIZE), interrupted, and as soon as it stops its
 *          registers and stack are copied and it is detached at once.
 *          Then the copies go to on_sample(), while everything runs.
 * A thread is traced only between its interrupt and its detach: a thread
 * blocked in a system call is never stopped, the end of the profile
 * included, and if pprofc dies the kernel lets go of the few it holds.
 *
 * Honest samples: the state is read first and the stop lands 30-150 us
 * later.  A thread that blocked meanwhile is stopped inside its blocking
 * call, and charging it the CPU time it used elsewhere would be false (it
 * made epoll_wait 64% of a redis profile where perf saw 9%).  Such a stop
 * shows in the registers: a system call interrupted by our stop (rax holds
 * -EINTR or one of the kernel's -ERESTART codes).  It is dropped and
 * counted as "landed off-CPU"; the EINTR it may cause is undone
 * (restart.c).  See docs/ARCHITECTURE.md, "Engines".
 *
 * Waits are by tid (waitpid(tid)), never waitpid(-1): other engines and
 * children of pprofc are none of this engine's business.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <pthread.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "engine_impl.h"
#include "internal.h"
#include "proc.h"

#define STOP_DEADLINE_NS 100000000u     /* a running thread stops in ~0.1 ms */
#define DETACH_DEADLINE_NS 500000000u  /* at the end, for stops in flight */
#define LIST_INTERVAL_NS 10000000u     /* how often to look for new threads */

/* The kernel's codes for "interrupted, restart me" (include/linux/errno.h;
 * never seen by programs). */
#define ERESTARTSYS 512
#define ERESTARTNOINTR 513
#define ERESTARTNOHAND 514
#define ERESTART_RESTARTBLOCK 516

enum tstate { S_RUNNING, S_GONE };

struct sthread {
	pid_t tid;
	pid_t pid;
	enum tstate st;
	int stat_fd;                    /* kept open: pread each tick */
	int sched_fd;                   /* schedstat, opened when first seen running */
	int seized;                     /* ours until detached */
	int want;                       /* interrupted: its stop is on its way */
	int listed;                     /* seen in this tick's /proc listing */
	int keep;                       /* ...and that stop makes a sample */
	char fs_state;                  /* force_stop: state and call when */
	struct attach_syscall fs_sc;    /* interrupted, for the sample's label */
	uint64_t interrupted_at;
	uint64_t cpu_seen;              /* its CPU time then: a sample stands for
					 * the CPU used since the last sample */
	uint64_t cpu_now;               /* read this tick */
	uint64_t runq_now;              /* schedstat's run_delay, read this tick
					 * (and again after its stop) */
	int sched_ok;                   /* schedstat was read this tick */
	uint64_t read_at;               /* when (CLOCK_MONOTONIC) */
	int acct_ok;                    /* wall: cpu_acct and runq_acct are known */
	uint64_t cpu_acct, runq_acct;   /* wall: schedstat time charged so far */
	uint64_t w_cpu, w_runq;         /* wall: of the current interval, on a
					 * CPU and waiting for one */
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
	struct arch_regs regs;
	uint64_t stack_addr;
	unsigned char *stack;
	size_t stack_len, stack_cap;
	int stack_cut;
	uint64_t stop_ns;
	uint64_t weight;
	uint64_t cpu_ns, runq_ns;       /* wall: the split of weight */
	char state;
	int repeat;
	int use_cpu_stack;
	struct attach_syscall sc;
	double blocked_ms;
	uint64_t time_ns;               /* stopped: when its schedstat was read; 0:
					 * when the tick began */
	int64_t off_cpu_ns;             /* stopped: its wait for a CPU, -1 unknown */
};

struct sampler {
	pid_t pid;
	struct attach_stragglers stragglers;    /* seized, stop still to come */
	const struct attach_engine_opts *o;  /* points at opts */
	struct attach_engine_opts opts;
	struct attach_engine_stats *st;
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
	uint64_t period_ns;             /* nominal: 1e9 / hz */
	uint64_t next_tick_ns;          /* when the timer fires next */
	uint64_t rng;                   /* xorshift state: the ticks' jitter */
	uint64_t tick_ns;               /* when the current tick began */
	double now_ms;                  /* wall: this thread's sched clock this
					 * tick, that of CPU now_cpu_here */
	int now_cpu_here;               /* (-1: unknown) */
	double *now_cpu;                /* first tick: each CPU's clock, for
					 * every CPU the kernel can have */
	size_t ncpu;                    /* entries of now_cpu */
	int tfd, sfd;                   /* the tick timer; SIGCHLD */
	sigset_t chld, old_mask;
	uint64_t start_ns;
	uint64_t listed_at;             /* when /proc/PID/task was last listed */
	dev_t exe_dev;                  /* the program, to notice an exec */
	ino_t exe_ino;
};

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

static int wanted(const struct sampler *s, pid_t tid);
static int read_schedstat(struct sampler *s, struct sthread *t);

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
	/* A thread born during the collection has all its CPU time (and its
	 * time waiting for a CPU) in it. */
	t->acct_ok = 1;
	if (at_start && wanted(s, tid) && read_schedstat(s, t) == 0) {
		t->cpu_start = t->cpu_now;
		t->runq_acct = t->runq_now;
	} else if (at_start) {
		t->cpu_start = attach_read_schedstat(s->pid, tid);
		t->acct_ok = 0;         /* run_delay unknown: no split */
	}
	t->cpu_last = t->cpu_seen = t->cpu_acct = t->cpu_start;
	s->t[s->n] = t;
	size_t j = ix_slot(s, tid);
	s->ix[j] = tid;
	s->ixpos[j] = s->n++;
	s->st->threads_seen++;
	if (!at_start && s->o->on_thread_new)
		s->o->on_thread_new(s->o->arg, tid);
	return t;
}

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
 * make every tick slower, and tells the caller, whose tables then need not
 * grow either.  Only between ticks: no pointer is held then, and every
 * sample of the thread was handed out. */
static void compact(struct sampler *s)
{
	size_t w = 0;
	for (size_t i = 0; i < s->n; i++) {
		if (s->t[i]->st == S_GONE) {
			if (s->o->on_thread_gone)
				s->o->on_thread_gone(s->o->arg, s->t[i]->tid);
			free(s->t[i]);
		} else {
			s->t[w++] = s->t[i];
		}
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

/* The thread's schedstat from a kept-open file: its time on a CPU
 * (sum_exec_runtime) into cpu_now, and its time waiting for one on a run
 * queue (run_delay) into runq_now, both ns.  -1 when unreadable. */
static int read_schedstat(struct sampler *s, struct sthread *t)
{
	char buf[128], *end;
	t->sched_ok = 0;
	if (t->sched_fd < 0) {
		char path[64];
		snprintf(path, sizeof path, "/proc/%d/task/%d/schedstat", (int)s->pid, (int)t->tid);
		t->sched_fd = open(path, O_RDONLY | O_CLOEXEC);
		if (t->sched_fd < 0)
			return -1;
	}
	ssize_t r = pread(t->sched_fd, buf, sizeof buf - 1, 0);
	if (r <= 0)
		return -1;
	buf[r] = 0;
	t->read_at = attach_now_ns();
	t->cpu_now = strtoull(buf, &end, 10);
	t->runq_now = strtoull(end, NULL, 10);
	t->sched_ok = 1;
	return 0;
}

/* How long the thread ran on a CPU since we last looked (ns): state R also
 * means "runnable, waiting for a CPU", and a thread that only waited has
 * used nothing.  Returns UINT64_MAX when it cannot tell (then the state
 * is trusted). */
static uint64_t ran_since_last_look(struct sampler *s, struct sthread *t)
{
	if (read_schedstat(s, t))
		return UINT64_MAX;
	t->cpu_last = t->cpu_now;       /* for the kernel's total (truth check) */
	return t->cpu_now > t->cpu_seen ? t->cpu_now - t->cpu_seen : 0;
}

static int wanted(const struct sampler *s, pid_t tid)
{
	return attach_engine_wants(s->o, tid);
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
	struct taken *k = &s->taken[s->n_taken];
	k->time_ns = 0;
	k->off_cpu_ns = -1;
	return k;
}

static void refresh_maps(struct sampler *s)
{
	char path[64], *buf;
	size_t len;
	if (!s->maps_stale || attach_now_ns() - s->maps_read_at < 1000000000u)
		return;
	snprintf(path, sizeof path, "/proc/%d/maps", (int)attach_mm_pid(s->pid));
	if (attach_read_file(path, &buf, &len) == 0) {
		attach_maps_free(&s->maps);
		attach_parse_maps(buf, len, &s->maps);
		free(buf);
	}
	s->maps_read_at = attach_now_ns();
	s->maps_stale = 0;
}

/* Wall mode: a sample stands for the time since the thread's previous
 * one, a period when all goes well, more when ticks were skipped (pprofc
 * busy or descheduled) or its last sample was lost: so the weights add up
 * to the time observed, and block delays to how long threads blocked.
 *
 * What the thread did in that interval is the kernel's account, not the
 * state seen at the tick: a thread computing 3 ms of every 10 is found
 * running at 0% to 100% of the ticks depending on how the two periods
 * beat.  So the interval is split by the schedstat read this tick: its
 * CPU time (w_cpu), its time waiting for a CPU (w_runq), and the rest,
 * blocked.  schedstat lags a running thread by up to a scheduler tick, so
 * one interval may read more than its length: what is clipped is carried
 * to the next (cpu_acct counts what was charged), and the parts add up to
 * the kernel's count. */
/* Charges an interval of w ns with c ns on a CPU and q waiting for one,
 * each clipped to what the interval leaves (the CPU time first); what is
 * clipped stays for the next interval. */
static void wall_charge(struct sthread *t, uint64_t w, uint64_t c, uint64_t q)
{
	t->w_cpu = c < w ? c : w;
	t->w_runq = q < w - t->w_cpu ? q : w - t->w_cpu;
	t->cpu_acct += t->w_cpu;
	t->runq_acct += t->w_runq;
}

static uint64_t wall_weight(struct sampler *s, struct sthread *t)
{
	uint64_t w = t->wall_at && s->tick_ns > t->wall_at ? s->tick_ns - t->wall_at : s->period_ns;
	t->wall_at = s->tick_ns;
	t->w_cpu = t->w_runq = UINT64_MAX;      /* unknown */
	if (!t->sched_ok || !t->acct_ok)
		return w;
	wall_charge(t, w, t->cpu_now > t->cpu_acct ? t->cpu_now - t->cpu_acct : 0,
		    t->runq_now > t->runq_acct ? t->runq_now - t->runq_acct : 0);
	return w;
}

/* The split of a wall sample of weight w into k; where schedstat could not
 * be read, the state seen decides (all on a CPU, or all blocked). */
static void wall_split(const struct sthread *t, int running, struct taken *k)
{
	if (t->w_cpu == UINT64_MAX) {
		k->cpu_ns = running ? k->weight : 0;
		k->runq_ns = 0;
		return;
	}
	k->cpu_ns = t->w_cpu;
	k->runq_ns = t->w_runq;
}

/* Where the stop found the thread: 0 in user code (a fair sample), 1 at
 * the end of a system call that ran or returned, 2 in a call our stop
 * interrupted (the thread was blocked, or entering one).  The stop lands
 * at the thread's next return to user mode, and a thread making system
 * calls returns from one of them much sooner than the interrupt's IPI
 * arrives: stops pile up at system call exits (measured: 47% of a spin
 * loop's samples on the clock_gettime it calls every few microseconds,
 * where perf sees 7%).  So neither is a fair CPU sample.  At the stop
 * the kernel has not yet turned its restart codes into a restart (that
 * happens after the stop): rax still holds -EINTR or an -ERESTART code
 * when the call was interrupted. */
static int landed_in_syscall(pid_t tid, const struct user_regs_struct *u)
{
	long long rax = (long long)u->rax;
	unsigned char insn[2];
	if ((long long)u->orig_rax < 0 || attach_read_mem(tid, u->rip - 2, insn, 2) != 2 ||
	    insn[0] != 0x0f || insn[1] != 0x05)
		return 0;
	return rax == -EINTR || rax == -ERESTARTSYS || rax == -ERESTARTNOINTR ||
	       rax == -ERESTARTNOHAND || rax == -ERESTART_RESTARTBLOCK ? 2 : 1;
}

/* The thread is in its interrupt stop: copy what unwinding needs.  Its
 * registers as ptrace gives them go to *u (for undoing an EINTR).  NULL
 * when nothing is to be sampled (*u is still valid if *has_u). */
static struct taken *take(struct sampler *s, struct sthread *t, struct user_regs_struct *u,
			  int *has_u)
{
	struct iovec iov = { u, sizeof *u };
	*has_u = ptrace(PTRACE_GETREGSET, t->tid, (void *)NT_PRSTATUS, &iov) == 0;
	if (!*has_u)
		return NULL;
	int landed = s->o->force_stop ? 0 : landed_in_syscall(t->tid, u);
	if (landed && !s->o->wall) {
		/* Not a fair CPU sample: dropped, and counted. */
		s->st->landed_off_cpu++;
		return NULL;
	}
	int off_cpu = landed == 2;     /* wall: it is blocked now */
	struct taken *k = next_taken(s);
	if (!k)
		return NULL;
	attach_regs_from_ptrace(u, &k->regs);
	size_t limit = s->o->stack_size;
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
	if (!attach_stack_range(&s->maps, u->rsp, limit, &lo, &hi))
		s->maps_stale = 1;
	ssize_t n = attach_read_mem(t->tid, lo, k->stack, hi - lo);
	k->tid = t->tid;
	k->weight = t->weight;
	k->state = s->o->force_stop ? t->fs_state : 'R';
	k->sc = t->fs_sc;
	wall_split(t, k->state == 'R' && !off_cpu, k);
	if (off_cpu) {
		/* Wall mode: it is blocked now, where the stack shows; label it
		 * with the call it is in, as if read without stopping it. */
		k->state = 'S';
		k->sc = (struct attach_syscall){ .kind = ATTACH_SC_IN, .nr = (long)u->orig_rax,
						 .args = { u->rdi, u->rsi, u->rdx, u->r10, u->r8, u->r9 },
						 .sp = u->rsp, .pc = u->rip };
	}
	k->repeat = 0;
	k->use_cpu_stack = 0;
	k->blocked_ms = -1;
	memcpy(k->comm, t->comm, sizeof k->comm);
	k->stack_addr = lo;
	k->stack_len = n > 0 ? (size_t)n : 0;
	k->stack_cut = hi - lo >= limit && k->stack_len == hi - lo;
	s->n_taken++;
	return k;
}

static void record_stop(struct sampler *s, uint64_t ns)
{
	struct attach_engine_stats *st = s->st;
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

/* Lets go of a thread we seized, handing back the signal its stop held
 * (exactly once); a job-control stop stays in force after the detach. */
static void release(struct sthread *t, int sig)
{
	t->want = 0;
	if (ptrace(PTRACE_DETACH, t->tid, 0, (void *)(long)sig) == 0 || errno != ESRCH) {
		t->seized = 0;
		return;
	}
	/* Not in a stop: it died (SIGKILL, the process exiting).  A dead
	 * tracee waits for its tracer to collect it, or its process cannot be
	 * reaped: it stays seized, and the waits by tid collect it. */
	t->keep = 0;
}

/* A thread in its stop for a sample: how long it had been off CPU,
 * waiting for one, when the tick read its schedstat and found it in state
 * R (preempted).  run_delay counts a wait for a CPU only once it ends,
 * when the thread gets a CPU (sched_info_arrive): the tick's read leaves
 * out the wait the thread was in, and the stop, which can only happen on
 * a CPU, ended it.  So run_delay is read again after the stop, and before
 * the detach: once let go, the thread waits for a CPU again (tens of us,
 * on most samples when read after the detach), a wait that must not
 * count.  One pread of a
 * kept-open file, a few us of the stop.  Its growth since the tick's read
 * is the wait (a thread that ran from the tick to its stop has none),
 * which ended before the stop was seen: at least `waited - since` of it
 * lay before the read (short by the moment from the thread getting a CPU
 * to our seeing it stop, tens of us).  A thread that left the CPU only
 * after the read gets 0.  The sample is dated at that read: its CPU time
 * (cpu_ns) is up to there. */
static int off_cpu_at_stop(struct sampler *s, struct sthread *t, struct taken *k, uint64_t seen)
{
	uint64_t runq_then = t->runq_now, read_then = t->read_at;
	if (!t->sched_ok || read_schedstat(s, t))
		return 0;
	uint64_t waited = t->runq_now > runq_then ? t->runq_now - runq_then : 0;
	uint64_t since = seen > read_then ? seen - read_then : 0;
	k->time_ns = read_then;
	k->off_cpu_ns = waited > since ? (int64_t)(waited - since) : 0;
	return 1;
}

/* Wall mode: the same lag.  The tick's read of a running thread misses
 * up to a scheduler tick of its CPU time, which went to the next
 * interval: where the thread went to sleep just after the tick, that
 * interval, all asleep, was drawn running for the time missed (the trace
 * of tests/targets/schedule: about one 8 ms mutex wait in ten split by a
 * "running" slice of ~250 us that perf's sched_switch did not see).  The
 * read at the stop is exact: the interval's CPU time is taken from it,
 * up to the interval's length (what runs from the tick to the stop, tens
 * of us, goes to the next interval, where it belongs). */
static void wall_weigh_to_stop(struct sthread *t, struct taken *k)
{
	if (t->w_cpu == UINT64_MAX)
		return;                 /* the tick's read failed: the state decided */
	uint64_t q = t->w_runq;
	t->cpu_acct -= t->w_cpu;        /* the tick's charge taken back */
	t->runq_acct -= t->w_runq;
	wall_charge(t, k->weight, t->cpu_now > t->cpu_acct ? t->cpu_now - t->cpu_acct : 0, q);
	k->cpu_ns = t->w_cpu;
	k->runq_ns = t->w_runq;
}

/* A CPU sample stands for the thread's CPU time from its last stop to
 * this one, exactly.  The tick weighed it up to the tick's schedstat
 * read, but a running thread's sum_exec_runtime moves only at a
 * scheduler tick, a switch or a system call that asks for it: the read
 * lags, and what it misses went to the next sample, wherever that one
 * lands.  A program that calls clock_gettime(CLOCK_THREAD_CPUTIME_ID)
 * between its functions credited each function's time to the one after
 * it (cpu_split at 1000 Hz: share_c 51% of the profile against 62% by
 * its own clock and by perf).  The stop is a switch: the read at the stop
 * (off_cpu_at_stop) is exact, and the rest of the interval is weighed
 * here. */
static void weigh_to_stop(struct sthread *t, struct taken *k)
{
	if (!t->sched_ok || t->cpu_now <= t->cpu_seen)
		return;
	k->weight += t->cpu_now - t->cpu_seen;
	t->cpu_seen = t->cpu_now;
}

/* Our interrupt (or a job-control stop, or a signal) stopped the thread. */
static void on_stop(struct sampler *s, struct sthread *t, int event, int sig)
{
	if (event == 0) {
		/* A signal on its way to the thread: give it back, exactly
		 * once.  The detach cancels our interrupt: no sample. */
		s->st->lost_not_stopped += t->keep;
		release(t, sig);
		return;
	}
	if (event == PTRACE_EVENT_STOP &&
	    (sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU)) {
		/* A job-control stop: detaching keeps it stopped. */
		release(t, 0);
		return;
	}
	struct user_regs_struct u;
	int has_u = 0;
	uint64_t seen = attach_now_ns();
	struct taken *k = t->keep && !s->detaching ? take(s, t, &u, &has_u) : NULL;
	int exact = k && off_cpu_at_stop(s, t, k, seen);
	if (k && !s->o->wall)
		weigh_to_stop(t, k);
	else if (exact)
		wall_weigh_to_stop(t, k);
	/* It was running when we looked; if it blocked since, our stop may
	 * have failed its call with EINTR: make the call again. */
	if (!s->o->force_stop)
		attach_undo_eintr(s->pid, t->tid, has_u ? &u : NULL);
	uint64_t ns = attach_now_ns() - t->interrupted_at;
	int keep = t->keep;
	release(t, 0);
	record_stop(s, ns);
	if (k)
		k->stop_ns = ns;
	else if (keep && !has_u)
		s->st->lost_not_stopped++;
}

static void on_status(struct sampler *s, struct sthread *t, int status)
{
	if (WIFEXITED(status) || WIFSIGNALED(status)) {
		if (t->want)
			s->st->lost_exited += t->keep;
		t->seized = t->want = 0;
		thread_gone(s, t);
		if (t->tid == s->pid) {
			/* Our own child (run) or a leader reaped through us. */
			s->ended = 1;
			s->st->target_exited = 1;
			s->st->exit_status = status;
		}
		return;
	}
	if (WIFSTOPPED(status))
		on_stop(s, t, status >> 16, WSTOPSIG(status));
}

static int is_seized(const struct sthread *t)
{
	return t->seized;
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
			if (r == t->tid) {
				on_status(s, t, status);
			} else if (r < 0 && errno == ECHILD) {
				t->seized = t->want = 0;
				thread_gone(s, t);
			}
			left += waiting(t) != 0;
		}
		uint64_t now = attach_now_ns();
		if (!left || now >= deadline)
			break;
		uint64_t wait = deadline - now;
		/* SIGCHLD is the process's: another thread may take it (see
		 * attach/snapshot.c, wait_stops). */
		if (wait > ATTACH_WAIT_SLICE_NS)
			wait = ATTACH_WAIT_SLICE_NS;
		struct timespec ts = { (time_t)(wait / 1000000000u), (long)(wait % 1000000000u) };
		sigtimedwait(chld, NULL, &ts);
	}
}

/* Waits for the wanted threads to stop (each is sampled as it does). */
static void wait_wanted(struct sampler *s, sigset_t *chld, uint64_t deadline)
{
	wait_for(s, chld, deadline, is_seized);
	uint64_t now = attach_now_ns();
	for (size_t i = 0; i < s->n; i++)
		if (s->t[i]->seized && s->t[i]->keep && now - s->t[i]->interrupted_at > STOP_DEADLINE_NS) {
			/* Still not stopped long after: give up on this sample; the
			 * stop, when it comes, is just detached. */
			s->t[i]->keep = 0;
			s->st->lost_not_stopped++;
		}
}

/* "Now" on the scheduler clock of cpu, -1 if unknown.  A thread's
 * exec_start counts on the clock of the CPU it last ran on, and each CPU
 * keeps its own: they differ by as much as a minute (each leaves out its
 * own steal time; 70 s between the two CPUs of the development VM), so a
 * wait is dated only against that CPU's clock: every CPU's on the first
 * tick (when the whole wait so far counts), ours on later ones. */
static double clock_of_cpu(const struct sampler *s, int cpu)
{
	if (cpu < 0)
		return -1;
	if (s->st->ticks == 0 && (size_t)cpu < s->ncpu && s->now_cpu[cpu] >= 0)
		return s->now_cpu[cpu];
	return cpu == s->now_cpu_here ? s->now_ms : -1;
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
		k->use_cpu_stack = 0;
		k->blocked_ms = -1;
		k->weight = wall_weight(s, t);
		wall_split(t, 0, k);
		memcpy(k->comm, t->comm, sizeof k->comm);
		s->n_taken++;
		return 1;
	}
	char state = thread_state(t);
	if (state == 'R' || state == '?')
		return state == '?';
	/* Exited: a main thread that called pthread_exit stays a zombie
	 * while the others run on.  No stack, no time: no sample, none lost. */
	if (state == 'Z' || state == 'X')
		return 1;
	struct attach_thread at;
	char path[64];
	memset(&at, 0, sizeof at);
	at.tid = t->tid;
	at.has_stat = 1;
	at.stat.state = state;
	snprintf(path, sizeof path, "/proc/%d/task/%d", (int)s->pid, (int)t->tid);
	int dir = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	int sched_fd = -1;
	int unread = dir < 0 || attach_read_wait_files(dir, &at, &sched_fd) != 0;
	int moved = !unread && attach_peek_blocked(sched_fd, &at, &s->maps, s->o->stack_size);
	if (sched_fd >= 0)
		close(sched_fd);
	if (dir >= 0)
		close(dir);
	if (unread)
		return 1;
	if (moved) {
		s->st->lost_not_stopped++;      /* it ran meanwhile: next tick */
		return 1;
	}
	if (!(k = next_taken(s))) {
		free(at.stack);
		return 1;
	}
	if (k->stack_cap < at.stack_len) {
		unsigned char *b = realloc(k->stack, at.stack_len);
		if (!b) {
			free(at.stack);
			return 1;
		}
		k->stack = b;
		k->stack_cap = at.stack_len;
	}
	if (at.stack_len)       /* 0 with a bogus sp (peek.c) */
		memcpy(k->stack, at.stack, at.stack_len);
	k->stack_len = at.stack_len;
	k->stack_addr = at.stack_addr;
	k->regs = at.regs;
	k->tid = t->tid;
	k->weight = wall_weight(s, t);
	wall_split(t, 0, k);
	k->stop_ns = 0;
	k->state = state;
	k->stack_cut = 0;
	k->repeat = 0;
	k->use_cpu_stack = 0;
	k->sc = at.sc;
	k->blocked_ms = -1;
	double now = clock_of_cpu(s, t->cpu);
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

/* no_stop: a running thread is not stopped for its stack; the caller has
 * it from another engine's CPU samples (perf_event). */
static void running_sample(struct sampler *s, struct sthread *t)
{
	struct taken *k = next_taken(s);
	if (!k)
		return;
	memset(&k->regs, 0, sizeof k->regs);
	k->tid = t->tid;
	k->weight = wall_weight(s, t);
	wall_split(t, 1, k);
	k->state = 'R';
	k->repeat = 0;
	k->use_cpu_stack = 1;
	k->stack_len = 0;
	k->stack_cut = 0;
	k->stop_ns = 0;
	k->blocked_ms = -1;
	memset(&k->sc, 0, sizeof k->sc);
	memcpy(k->comm, t->comm, sizeof k->comm);
	s->n_taken++;
	t->has_sample = 0;      /* its next blocked sample is read afresh */
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
	if (t->fs_state == 'Z' || t->fs_state == 'X')
		return 0;       /* exited (a zombie main thread): nothing to take */
	if (!s->o->wall)
		return ran > 0 && t->fs_state == 'R';
	if (t->fs_state != 'R') {
		snprintf(path, sizeof path, "/proc/%d/task/%d/syscall", (int)s->pid, (int)t->tid);
		if (attach_read_small(path, buf, sizeof buf, &len) == 0)
			attach_parse_syscall(buf, len, &t->fs_sc);
	}
	return 1;
}

/* Follows /proc/PID/task: new threads join the table, the ones gone
 * leave it (their CPU time as last read counts).  Returns the number
 * listed, 0 when the process is gone. */
static size_t list_threads(struct sampler *s, int at_start)
{
	pid_t *tids;
	size_t n;
	if (attach_list_tasks(s->pid, &tids, &n))
		return 0;
	for (size_t i = 0; i < s->n; i++)
		s->t[i]->listed = 0;
	for (size_t i = 0; i < n; i++) {
		struct sthread *t = find(s, tids[i]);
		if (!t && !(t = add_thread(s, tids[i], at_start)))
			continue;
		t->listed = 1;
	}
	free(tids);
	for (size_t i = 0; i < s->n; i++)
		if (!s->t[i]->listed && !s->t[i]->seized)
			thread_gone(s, s->t[i]);
	return n;
}

/* The process exited (or only its zombie leader is left), or ran a new
 * program: the profile ends. */
static void check_end(struct sampler *s, size_t listed)
{
	char path[64];
	struct stat exe;
	int status = -1;
	if (!listed || attach_process_ended(s->pid, &status, NULL)) {
		if (!s->st->target_exited)
			s->st->exit_status = status;
		s->ended = 1;
		s->st->target_exited = 1;
		return;
	}
	snprintf(path, sizeof path, "/proc/%d/exe", (int)attach_mm_pid(s->pid));
	if (stat(path, &exe) == 0 && (exe.st_dev != s->exe_dev || exe.st_ino != s->exe_ino)) {
		s->ended = 1;
		s->st->target_execed = 1;
	}
}

static void tick(struct sampler *s)
{
	uint64_t t0 = attach_now_ns();
	s->tick_ns = t0;
	compact(s);
	/* New threads are looked for every 10 ms at most: listing a big
	 * process's tasks costs more than a 1000 Hz tick should. */
	if (t0 - s->listed_at >= LIST_INTERVAL_NS) {
		s->listed_at = t0;
		check_end(s, list_threads(s, 0));
		if (s->ended)
			return;
	}
	if (s->o->wall) {
		/* "now" on the scheduler clock, to date the waits
		 * (docs/ARCHITECTURE.md, "Wait durations") */
		s->now_ms = attach_sched_clock_here(&s->now_cpu_here);
		if (s->st->ticks == 0 && !s->now_cpu)
			s->now_cpu = attach_sched_clocks(&s->ncpu);
	}
	for (size_t i = 0; i < s->n; i++) {
		struct sthread *t = s->t[i];
		if (t->st != S_RUNNING || !wanted(s, t->tid) || t->seized)
			continue;       /* (seized: its last interrupt is still on its way) */
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
			if (s->o->no_stop) {
				running_sample(s, t);
				continue;       /* its stack: its latest CPU sample */
			}
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
		/* Seized only now, for this one stop; detached right after it. */
		if (ptrace(PTRACE_SEIZE, t->tid, 0, 0) != 0) {
			int e = errno;
			if (e == ESRCH)
				thread_gone(s, t);
			else if (!(e == EPERM && attach_task_exiting(s->pid, t->tid)))
				s->st->lost_not_stopped += t->keep;  /* traced by another */
			continue;       /* (a zombie refuses with EPERM: exited) */
		}
		t->seized = 1;
		if (ptrace(PTRACE_INTERRUPT, t->tid, 0, 0) != 0) {
			release(t, 0);
			continue;
		}
		t->want = 1;
		t->interrupted_at = attach_now_ns();
	}
	/* Wait at most half a period: a thread waiting for a CPU (more busy
	 * threads than CPUs) stops only when it is scheduled, and the ticks
	 * must go on meanwhile; its sample is taken whenever it stops.  (A
	 * jittered period may be shorter: the next tick is then a little late,
	 * and its samples weigh the time that really passed.) */
	uint64_t half = s->period_ns / 2;
	wait_wanted(s, &s->chld, t0 + (half < STOP_DEADLINE_NS ? half : STOP_DEADLINE_NS));
	/* Everyone sampled runs again: now the slow part. */
	refresh_maps(s);
	for (size_t i = 0; i < s->n_taken; i++) {
		struct taken *k = &s->taken[i];
		struct attach_raw_sample smp = {
			.tid = k->tid, .comm = k->comm, .weight_ns = k->weight, .regs = k->regs,
			.stack_addr = k->stack_addr, .stack = k->stack, .stack_len = k->stack_len,
			.stack_cut = k->stack_cut, .stop_ns = k->stop_ns, .state = k->state,
			.repeat = k->repeat, .use_cpu_stack = k->use_cpu_stack, .sc = k->sc,
			.blocked_ms = k->blocked_ms, .cpu_ns = k->cpu_ns, .runq_ns = k->runq_ns,
			.time_ns = k->time_ns ? k->time_ns : s->tick_ns, .off_cpu_ns = k->off_cpu_ns,
		};
		s->st->samples++;
		if (!k->repeat)
			s->st->sampled_ns += k->weight;
		s->o->on_sample(s->o->arg, &smp);
	}
	s->n_taken = 0;
	if (s->o->on_tick_end)
		s->o->on_tick_end(s->o->arg);
	s->st->ticks++;
}

/* ---- the interface ------------------------------------------------------ */

/* The end: only threads stopped (or about to stop) for a sample are held,
 * and each is detached as its stop comes; nothing else is touched.  One
 * whose stop has not come by the deadline (its I/O has not ended) is
 * detached if it stops while the sampler closes; else the kernel detaches
 * it when this thread exits (stragglers.c). */
static void detach_all(struct sampler *s)
{
	s->detaching = 1;
	wait_for(s, &s->chld, attach_now_ns() + DETACH_DEADLINE_NS, is_seized);
	for (size_t i = 0; i < s->n; i++)
		if (s->t[i]->seized)
			attach_stragglers_add(&s->stragglers, s->t[i]->tid);
}

static void sum_cpu(struct sampler *s)
{
	s->st->cpu_ns = s->cpu_gone;
	for (size_t i = 0; i < s->n; i++) {
		struct sthread *t = s->t[i];
		if (t->st == S_GONE || !wanted(s, t->tid))
			continue;
		uint64_t now = attach_read_schedstat(s->pid, t->tid);
		if (now > t->cpu_last)
			t->cpu_last = now;
		if (t->cpu_last > t->cpu_start)
			s->st->cpu_ns += t->cpu_last - t->cpu_start;
	}
}

/* A period drawn uniformly from [0.5, 1.5] x the nominal one, so that the
 * ticks cannot lock to a program's own period (xorshift64; the state is
 * the session's, seeded from the clock). */
static uint64_t jittered_period(struct sampler *s)
{
	s->rng ^= s->rng << 13;
	s->rng ^= s->rng >> 7;
	s->rng ^= s->rng << 17;
	return s->period_ns / 2 + s->rng % (s->period_ns + 1);
}

/* Sets the timer for the tick after the one now due.  A tick later than
 * a whole period counts the periods missed as skipped ticks, and the next
 * one is due at once. */
static void arm_next_tick(struct sampler *s, uint64_t now)
{
	s->next_tick_ns += jittered_period(s);
	if (now > s->next_tick_ns + s->period_ns) {
		s->st->skipped_ticks += (now - s->next_tick_ns) / s->period_ns;
		s->next_tick_ns = now;
	}
	struct itimerspec its = { { 0, 0 }, { (time_t)(s->next_tick_ns / 1000000000u),
					      (long)(s->next_tick_ns % 1000000000u) } };
	timerfd_settime(s->tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

static void ptrace_close(void *state);

static void *ptrace_open(pid_t pid, const struct attach_engine_opts *o,
			 struct attach_engine_stats *st, struct attach_error *err)
{
	struct sampler *s = calloc(1, sizeof *s);
	if (!s) {
		err->code = ATTACH_ERR_OTHER;
		snprintf(err->msg, sizeof err->msg, "out of memory");
		return NULL;
	}
	s->pid = pid;
	s->opts = *o;
	s->o = &s->opts;
	s->st = st;
	s->st->exit_status = -1;
	s->period_ns = 1000000000u / (unsigned)o->hz;
	s->tfd = s->sfd = -1;
	s->now_cpu_here = -1;
	char path[64], *buf;
	size_t len;
	struct stat exe;
	pid_t mm = attach_mm_pid(pid);    /* its main thread may have exited */
	snprintf(path, sizeof path, "/proc/%d/maps", (int)mm);
	if (attach_read_file(path, &buf, &len) == 0) {
		attach_parse_maps(buf, len, &s->maps);
		free(buf);
	}
	s->maps_read_at = attach_now_ns();
	snprintf(path, sizeof path, "/proc/%d/exe", (int)mm);
	if (stat(path, &exe) == 0) {
		s->exe_dev = exe.st_dev;
		s->exe_ino = exe.st_ino;
	}
	/* SIGCHLD, blocked in this thread, wakes the waits for a stop: with
	 * it blocked a stop between a check and the wait is not missed. */
	sigemptyset(&s->chld);
	sigaddset(&s->chld, SIGCHLD);
	pthread_sigmask(SIG_BLOCK, &s->chld, &s->old_mask);
	s->sfd = signalfd(-1, &s->chld, SFD_NONBLOCK | SFD_CLOEXEC);
	s->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (s->sfd < 0 || s->tfd < 0) {
		err->code = ATTACH_ERR_OTHER;
		snprintf(err->msg, sizeof err->msg, "cannot create timer: %s", strerror(errno));
		ptrace_close(s);
		return NULL;
	}
	if (!list_threads(s, 1)) {
		err->code = ATTACH_ERR_NOPROC;
		snprintf(err->msg, sizeof err->msg, "no such process: PID %d", (int)pid);
		ptrace_close(s);
		return NULL;
	}
	s->start_ns = s->listed_at = s->next_tick_ns = attach_now_ns();
	s->rng = (s->start_ns ^ ((uint64_t)pid << 32) ^ (uint64_t)(uintptr_t)s) | 1;
	arm_next_tick(s, s->start_ns);
	return s;
}

static int ptrace_poll(void *state, uint64_t deadline)
{
	struct sampler *s = state;
	uint64_t now = attach_now_ns();
	if (s->ended || now >= deadline)
		return s->ended;
	struct pollfd pf[2] = { { s->tfd, POLLIN, 0 }, { s->sfd, POLLIN, 0 } };
	uint64_t left = deadline - now;
	struct timespec ts = { (time_t)(left / 1000000000u), (long)(left % 1000000000u) };
	if (ppoll(pf, 2, &ts, NULL) < 0)
		return s->ended;
	if (pf[1].revents & POLLIN) {
		struct signalfd_siginfo si;
		while (read(s->sfd, &si, sizeof si) == (ssize_t)sizeof si)
			;
		/* A stop that came after its tick gave up on it. */
		wait_for(s, &s->chld, 0, is_seized);
	}
	uint64_t expirations;
	if ((pf[0].revents & POLLIN) && read(s->tfd, &expirations, sizeof expirations) > 0) {
		arm_next_tick(s, attach_now_ns());
		tick(s);
	}
	return s->ended;
}

static void ptrace_close(void *state)
{
	struct sampler *s = state;
	s->st->duration_ns = s->start_ns ? attach_now_ns() - s->start_ns : 0;
	detach_all(s);
	if (s->start_ns)
		sum_cpu(s);
	if (s->sfd >= 0)
		close(s->sfd);
	if (s->tfd >= 0)
		close(s->tfd);
	attach_stragglers_free(&s->stragglers);
	pthread_sigmask(SIG_SETMASK, &s->old_mask, NULL);
	for (size_t i = 0; i < s->n; i++) {
		if (s->t[i]->stat_fd >= 0)
			close(s->t[i]->stat_fd);
		if (s->t[i]->sched_fd >= 0)
			close(s->t[i]->sched_fd);
		free(s->t[i]);
	}
	free(s->ix);
	free(s->ixpos);
	for (size_t i = 0; i < s->cap_taken; i++)
		free(s->taken[i].stack);
	free(s->taken);
	free(s->t);
	free(s->now_cpu);
	attach_maps_free(&s->maps);
	free(s);
}

const struct attach_engine_ops attach_engine_ptrace_ops = {
	.name = "ptrace",
	.open = ptrace_open,
	.poll = ptrace_poll,
	.close = ptrace_close,
};
