/* snapshot.c — the ptrace session behind dump-threads (see snapshot.h).
 *
 * Order of work, and why:
 *  1. Read every thread's /proc state (stat, status, syscall, sched) while
 *     it runs: stopping a thread changes what those files say (a stopped
 *     thread is no longer "in" its syscall, and waking it to stop it resets
 *     its last-ran time).  Threads blocked in a system call are read here,
 *     without stopping them.  No ptrace: snapread.c spreads this over
 *     worker threads.
 *  2. PTRACE_SEIZE every thread.  Seizing does not stop anything.
 *  3. PTRACE_INTERRUPT them all, wait (with a deadline) until each reports
 *     a stop, re-list /proc/PID/task and repeat for threads created
 *     meanwhile, until the set is stable.
 *  4. Per thread, as soon as it has stopped: registers and a copy of its
 *     stack.  Nothing else.
 *  5. PTRACE_DETACH every thread, giving back any signal that arrived.
 * Threads that never stopped (the deadline passed) stay in the snapshot's
 * straggler list (stragglers.c), detached as they stop: when the snapshot
 * is released after the output, or by the kernel when pprofc exits.
 */
#include "snapshot.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define MAX_ROUNDS 64

enum tstate { T_NEW, T_SKIPPED, T_SEIZED, T_STOPPED, T_GONE };

/* Bookkeeping that lives only during the session. */
struct track {
	enum tstate st;
	int sig;                    /* signal to give back at detach */
	int interrupted;            /* stopped by our PTRACE_INTERRUPT */
	struct user_regs_struct uregs;  /* as read, to undo an EINTR */
	int has_uregs;
};

/* ---- step 1: the process's own /proc state ---------------------------- */

static int read_process_info(pid_t pid, struct attach_snapshot *s, struct attach_error *err)
{
	char path[64], *buf;
	size_t len;
	pid_t mm = attach_mm_pid(pid);    /* its main thread may have exited */
	snprintf(path, sizeof path, "/proc/%d/exe", (int)mm);
	ssize_t n = readlink(path, s->exe, sizeof s->exe - 1);
	s->exe[n > 0 ? n : 0] = 0;
	snprintf(path, sizeof path, "/proc/%d/cmdline", (int)mm);
	if (attach_read_file(path, &s->cmdline, &s->cmdline_len))
		s->cmdline = NULL;
	snprintf(path, sizeof path, "/proc/%d/maps", (int)mm);
	int r = attach_read_file(path, &buf, &len);
	if (r == -EACCES || r == -EPERM)
		return attach_fail_perm(err, pid);
	if (r < 0) {
		err->code = ATTACH_ERR_NOPROC;
		snprintf(err->msg, sizeof err->msg, "cannot read %s: %s", path, strerror(-r));
		return -1;
	}
	r = attach_parse_maps(buf, len, &s->maps);
	free(buf);
	if (r) {
		err->code = ATTACH_ERR_OTHER;
		snprintf(err->msg, sizeof err->msg, "out of memory reading %s", path);
		return -1;
	}
	double now = attach_sched_clock_here(NULL);
	if (now >= 0) {
		s->now_ms = now;
		s->has_now = 1;
	}
	return 0;
}

/* Each CPU's scheduler clock, read by a thread of its own beside the
 * /proc reads: visiting the CPUs moves the visitor from one to the next,
 * and each move waits for the kernel's migration thread (2-5 ms on this
 * 2-CPU machine, more when the CPUs are busy).  A wait's duration needs
 * only its thread's last CPU's clock at about the snapshot's time. */
struct clocks {
	pthread_t thread;
	int started;
	double *now_cpu;
	size_t ncpu;
};

static void *read_clocks(void *arg)
{
	struct clocks *c = arg;
	c->now_cpu = attach_sched_clocks(&c->ncpu);
	return NULL;
}

static void clocks_start(struct clocks *c)
{
	/* With every signal blocked, so that none is delivered to it: a
	 * SIGCHLD it took (and ignored) would be lost to wait_stops. */
	sigset_t all, old;
	sigfillset(&all);
	memset(c, 0, sizeof *c);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	c->started = pthread_create(&c->thread, NULL, read_clocks, c) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!c->started)
		read_clocks(c);
}

static void clocks_finish(struct clocks *c, struct attach_snapshot *s)
{
	if (c->started)
		pthread_join(c->thread, NULL);
	s->now_cpu = c->now_cpu;
	s->ncpu = c->ncpu;
}

/* ---- the session ------------------------------------------------------ */

struct session {
	pid_t pid;
	const struct attach_opts *o;
	struct attach_snapshot *s;
	struct track *tr;
	size_t cap;
	size_t pending;             /* seized, interrupted, not yet stopped */
};

static int grow(struct session *ss, size_t need)
{
	if (need <= ss->cap)
		return 0;
	size_t cap = ss->cap ? ss->cap : 64;
	while (cap < need)
		cap *= 2;
	struct attach_thread *t = realloc(ss->s->threads, cap * sizeof *t);
	if (!t)
		return -1;
	ss->s->threads = t;
	struct track *tr = realloc(ss->tr, cap * sizeof *tr);
	if (!tr)
		return -1;
	ss->tr = tr;
	ss->cap = cap;
	return 0;
}

static int cmp_tid(const void *a, const void *b)
{
	pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;
	return (x > y) - (x < y);
}

/* The tids already known, sorted, to look new ones up in O(log n). */
static pid_t *known_tids(const struct session *ss)
{
	pid_t *k = malloc((ss->s->n ? ss->s->n : 1) * sizeof *k);
	if (!k)
		return NULL;
	for (size_t i = 0; i < ss->s->n; i++)
		k[i] = ss->s->threads[i].tid;
	qsort(k, ss->s->n, sizeof *k, cmp_tid);
	return k;
}

/* Adds the threads of /proc/PID/task not seen yet; returns how many. */
static long add_new_threads(struct session *ss)
{
	pid_t *tids, *known;
	size_t n, nknown = ss->s->n;
	if (attach_list_tasks(ss->pid, &tids, &n))
		return -1;
	if (!(known = known_tids(ss)) || grow(ss, ss->s->n + n)) {
		free(known);
		free(tids);
		return -1;
	}
	long added = 0;
	for (size_t i = 0; i < n; i++) {
		if (bsearch(&tids[i], known, nknown, sizeof *known, cmp_tid))
			continue;
		struct attach_thread *t = &ss->s->threads[ss->s->n];
		memset(t, 0, sizeof *t);
		t->tid = tids[i];
		ss->tr[ss->s->n] = (struct track){ .st = T_NEW };
		ss->s->n++;
		added++;
	}
	free(known);
	free(tids);
	return added;
}

/* Step 1 for the threads added since index from: their /proc state, and
 * the stacks of those blocked in a system call, without stopping them
 * (snapread.c, over worker threads).  A thread to be seized that another
 * tool traces is refused before anything is seized; one read without
 * stopping needs no ptrace, and another tracer is no obstacle to it. */
static int read_new(struct session *ss, size_t from, struct attach_error *err, int first_round)
{
	size_t n = ss->s->n - from;
	unsigned char *done = calloc(n ? n : 1, 1);
	if (!done) {
		err->code = ATTACH_ERR_OTHER;
		snprintf(err->msg, sizeof err->msg, "out of memory");
		return -1;
	}
	struct attach_thread *t = ss->s->threads + from;
	ss->s->peeked += attach_read_threads(ss->pid, t, done, n, &ss->s->maps, ss->o);
	for (size_t i = 0; i < n; i++) {
		if (first_round && t[i].tracer && t[i].tracer != getpid()) {
			free(done);
			return attach_fail_traced_tid(err, ss->pid, t[i].tid, t[i].tracer);
		}
		if (done[i])
			ss->tr[from + i].st = T_SKIPPED;
	}
	free(done);
	return 0;
}

/* Why an exiting thread has no stack: the main thread of a process that
 * runs on is one that called pthread_exit (or the process is ending). */
static void not_taken_exited(pid_t pid, struct attach_thread *t)
{
	if (t->tid == pid && attach_mm_pid(pid) != pid)
		snprintf(t->not_taken, sizeof t->not_taken,
			 "exited (the main thread called pthread_exit); the process runs on in "
			 "its other threads");
	else
		snprintf(t->not_taken, sizeof t->not_taken, "exited before it could be stopped");
}

/* Seizes and interrupts every T_NEW thread.  A thread in uninterruptible
 * sleep is left alone: it could not stop until its I/O ends, and a stop
 * requested now would land later, while pprofc is busy elsewhere. */
static int seize_new(struct session *ss, struct attach_error *err, int first_round)
{
	for (size_t i = 0; i < ss->s->n; i++) {
		struct attach_thread *t = &ss->s->threads[i];
		struct track *tr = &ss->tr[i];
		if (tr->st != T_NEW)
			continue;
		if (t->has_stat && t->stat.state == 'D') {
			tr->st = T_SKIPPED;
			snprintf(t->not_taken, sizeof t->not_taken,
				 "in uninterruptible sleep (state D), not stopped");
			continue;
		}
		if (t->has_stat && (t->stat.state == 'Z' || t->stat.state == 'X')) {
			tr->st = T_SKIPPED;     /* nothing to stop: no stack left */
			not_taken_exited(ss->pid, t);
			continue;
		}
		if (ptrace(PTRACE_SEIZE, t->tid, 0, 0) != 0) {
			int e = errno;
			tr->st = T_SKIPPED;
			/* A zombie refuses with EPERM, not ESRCH, until reaped. */
			if (e == ESRCH || (e == EPERM && attach_task_exiting(ss->pid, t->tid))) {
				not_taken_exited(ss->pid, t);
				continue;
			}
			if (e == EPERM && first_round && i == 0) {
				char path[64], buf[4096];
				size_t len;
				struct attach_status st;
				snprintf(path, sizeof path, "/proc/%d/task/%d/status", (int)ss->pid, (int)t->tid);
				if (attach_read_small(path, buf, sizeof buf, &len) == 0 &&
				    attach_parse_status(buf, len, &st) == 0 && st.tracer_pid)
					return attach_fail_traced(err, ss->pid, st.tracer_pid);
				return attach_fail_perm(err, ss->pid);
			}
			snprintf(t->not_taken, sizeof t->not_taken, "could not be seized: %s", strerror(e));
			continue;
		}
		tr->st = T_SEIZED;
	}
	return 0;
}

static void interrupt_seized(struct session *ss)
{
	for (size_t i = 0; i < ss->s->n; i++) {
		if (ss->tr[i].st != T_SEIZED)
			continue;
		if (ptrace(PTRACE_INTERRUPT, ss->s->threads[i].tid, 0, 0) == 0)
			ss->pending++;
		else
			ss->tr[i].st = T_GONE;
	}
}

static void take_thread(struct session *ss, size_t i, size_t limit)
{
	struct attach_thread *t = &ss->s->threads[i];
	struct track *tr = &ss->tr[i];
	struct iovec iov = { &tr->uregs, sizeof tr->uregs };
	if (ptrace(PTRACE_GETREGSET, t->tid, (void *)NT_PRSTATUS, &iov) != 0) {
		snprintf(t->not_taken, sizeof t->not_taken, "registers unreadable: %s", strerror(errno));
		return;
	}
	tr->has_uregs = 1;
	attach_regs_from_ptrace(&tr->uregs, &t->regs);
	uint64_t lo, hi;
	attach_stack_range(&ss->s->maps, REG(&t->regs, SP), limit, &lo, &hi);
	t->taken = 1;
	if (hi <= lo || !(t->stack = malloc(hi - lo)))
		return;
	ssize_t n = attach_read_mem(t->tid, lo, t->stack, hi - lo);
	t->stack_addr = lo;
	t->stack_len = n > 0 ? (size_t)n : 0;
}

/* Applies what waitpid said about thread i. */
static void on_wait_status(struct session *ss, size_t i, int status, const struct attach_opts *o)
{
	struct attach_thread *t = &ss->s->threads[i];
	struct track *tr = &ss->tr[i];
	if (WIFEXITED(status) || WIFSIGNALED(status)) {
		tr->st = T_GONE;
		snprintf(t->not_taken, sizeof t->not_taken, "exited during the snapshot");
	} else if (WIFSTOPPED(status)) {
		int event = status >> 16, sig = WSTOPSIG(status);
		if (event == PTRACE_EVENT_STOP) {
			/* Our interrupt (SIGTRAP) or a job-control stop. */
			if (sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU)
				t->group_stopped = 1;
			else
				tr->interrupted = 1;
		} else if (event == 0) {
			/* A signal on its way to the thread: hand it back at detach. */
			tr->sig = sig;
			t->reinjected_signal = sig;
		}
		tr->st = T_STOPPED;
		/* Copy it now, while the others are still on their way to a stop:
		 * the process is stopped for less time than if we waited for all. */
		if (!(o->cancel && *o->cancel))
			take_thread(ss, i, o->stack_limit);
	} else {
		return;
	}
	ss->pending--;
}

/* Waits until no interrupted thread is still running, or the deadline.
 * waitpid on one tid is O(1) in the kernel; waitpid(-1) would scan every
 * tracee on each call, O(n^2) for the whole snapshot. */
static void wait_stops(struct session *ss, uint64_t deadline, const struct attach_opts *o)
{
	sigset_t chld;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	while (ss->pending) {
		for (size_t i = 0; i < ss->s->n && ss->pending; i++) {
			int status;
			if (ss->tr[i].st != T_SEIZED)
				continue;
			pid_t r = waitpid(ss->s->threads[i].tid, &status, __WALL | WNOHANG);
			if (r == ss->s->threads[i].tid)
				on_wait_status(ss, i, status, o);
			else if (r < 0 && errno == ECHILD) {
				ss->tr[i].st = T_GONE;
				ss->pending--;
			}
		}
		if (!ss->pending)
			break;
		uint64_t now = attach_now_ns();
		if (now >= deadline)
			break;
		uint64_t left = deadline - now;
		/* SIGCHLD is blocked: it stays pending until we look, so a stop
		 * between the pass above and this call is not missed.  But it
		 * is the process's: another thread of pprofc waiting for its
		 * own tracees (serve runs several collections) may take it, so
		 * look again after a short slice rather than sleep to the
		 * deadline with a thread stopped. */
		if (left > ATTACH_WAIT_SLICE_NS)
			left = ATTACH_WAIT_SLICE_NS;
		struct timespec ts = { (time_t)(left / 1000000000u), (long)(left % 1000000000u) };
		sigtimedwait(&chld, NULL, &ts);
	}
}

static void detach_all(struct session *ss)
{
	for (size_t i = 0; i < ss->s->n; i++) {
		struct track *tr = &ss->tr[i];
		pid_t tid = ss->s->threads[i].tid;
		if (tr->st == T_STOPPED) {
			/* An epoll_wait we woke must not fail with EINTR. */
			if (tr->interrupted && !tr->sig &&
			    attach_undo_eintr(ss->pid, tid, tr->has_uregs ? &tr->uregs : NULL))
				ss->s->restarted++;
			ptrace(PTRACE_DETACH, tid, 0, (void *)(long)tr->sig);
			tr->st = T_SKIPPED;
		} else if (tr->st == T_SEIZED) {
			/* Never stopped: detached when it does (release). */
			attach_stragglers_add(&ss->s->held, tid);
			ss->s->stragglers++;
			snprintf(ss->s->threads[i].not_taken, sizeof ss->s->threads[i].not_taken,
				 "did not stop within the deadline (state %c)",
				 ss->s->threads[i].has_stat ? ss->s->threads[i].stat.state : '?');
		}
	}
}

static int run_session(struct session *ss, const struct attach_opts *o, struct attach_error *err)
{
	uint64_t start = attach_now_ns(), t0 = 0, deadline = 0;
	size_t from = 0;
	long added = add_new_threads(ss);
	if (added < 0) {
		err->code = ATTACH_ERR_NOPROC;
		snprintf(err->msg, sizeof err->msg, "cannot list the threads of PID %d", (int)ss->pid);
		return -1;
	}
	for (int round = 0; added > 0 && round < MAX_ROUNDS; round++) {
		if (read_new(ss, from, err, round == 0) || seize_new(ss, err, round == 0))
			return -1;
		from = ss->s->n;
		if (!t0) {
			t0 = attach_now_ns();
			ss->s->prepare_ns = t0 - start;
			deadline = t0 + (uint64_t)o->stop_timeout_ms * 1000000u;
		}
		interrupt_seized(ss);
		wait_stops(ss, deadline, o);
		if (attach_now_ns() >= deadline || (o->cancel && *o->cancel))
			break;
		added = add_new_threads(ss);
	}
	detach_all(ss);
	ss->s->stopped_ns = t0 ? attach_now_ns() - t0 : 0;
	ss->s->cancelled = o->cancel && *o->cancel;
	return 0;
}

int attach_snapshot_take(pid_t pid, const struct attach_opts *o, struct attach_snapshot *s,
			 struct attach_error *err)
{
	memset(s, 0, sizeof *s);
	s->pid = pid;
	err->code = ATTACH_OK;
	err->msg[0] = 0;
	struct clocks clocks;
	clocks_start(&clocks);
	if (read_process_info(pid, s, err)) {
		clocks_finish(&clocks, s);
		return -1;
	}

	sigset_t chld, old;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	pthread_sigmask(SIG_BLOCK, &chld, &old);

	struct session ss = { .pid = pid, .o = o, .s = s };
	int r = run_session(&ss, o, err);
	if (r)
		detach_all(&ss);        /* an error after some seizes: let go */
	free(ss.tr);

	attach_stragglers_reap(&s->held, 0);     /* any that stopped meanwhile */
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	clocks_finish(&clocks, s);
	return r;
}

size_t attach_snapshot_release(struct attach_snapshot *s, uint64_t wait_ns)
{
	return attach_stragglers_reap(&s->held, s->held.n ? attach_now_ns() + wait_ns : 0);
}

void attach_snapshot_free(struct attach_snapshot *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->threads[i].stack);
	free(s->threads);
	free(s->cmdline);
	free(s->now_cpu);
	attach_stragglers_free(&s->held);
	attach_maps_free(&s->maps);
	memset(s, 0, sizeof *s);
}

ssize_t attach_read_mem(pid_t pid, uint64_t addr, void *buf, size_t len)
{
	struct iovec local = { buf, len };
	struct iovec remote = { (void *)(uintptr_t)addr, len };
	ssize_t n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
	if (n >= 0 || errno != ESRCH)
		return n;
	/* A process whose main thread exited (a zombie leader has no memory
	 * left): read through one of its live threads, found again at each
	 * such failure, so one that exited since is replaced.  A thread's own
	 * tid is kept (attach_mm_pid gives it back). */
	pid_t mm = attach_mm_pid(pid);
	if (mm == pid) {
		errno = ESRCH;
		return -1;
	}
	return process_vm_readv(mm, &local, 1, &remote, 1, 0);
}
