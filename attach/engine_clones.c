/* engine_clones.c — thread creations with ptrace (opts.clones; see
 * engine.h), for where perf_event's syscall tracepoints are refused.
 *
 * A watcher thread of pprofc seizes every thread of the target
 * (PTRACE_SEIZE with PTRACE_O_TRACECLONE: nothing is stopped by it) and
 * waits.  A thread that creates a thread stops in its clone event
 * (PTRACE_EVENT_CLONE, after the new thread exists): the watcher reads its
 * registers and copies its stack, and resumes it at once; everything else
 * (unwinding, the profile) happens later, on the caller's thread, from a
 * queue.  The new thread is traced from its birth (the kernel attaches it)
 * and is resumed from its first stop.  A fork or vfork makes no clone
 * event (their events are not asked for); a clone that makes a process
 * anyway (no CLONE_THREAD, exit signal not SIGCHLD) is counted apart and
 * the process let go of.
 *
 * Other stops while traced: a signal on its way to a thread is handed
 * back at once, exactly once (PTRACE_CONT with it); a job-control stop
 * (SIGSTOP...) lets the thread go, still stopped (it is counted: its
 * creations are not seen after).
 *
 * The end: the watcher collects and answers the stops already there, and
 * exits.  Its tracees are then detached by the kernel (tracer exit) without
 * being stopped: PTRACE_DETACH would need every thread stopped first, and
 * the stop would make a thread blocked in epoll_wait return EINTR.  A stop
 * the watcher has not collected keeps its signal through that detach; one
 * it collected it has already answered.  If pprofc dies, the same happens.
 *
 * Waits are by tid, never waitpid(-1): a command `run` started is
 * pprofc's child, and its exit is not this engine's to take but when it
 * comes through the trace (the leader, traced here: then its status is
 * kept, as engine_ptrace.c does).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <elf.h>

#include "engine_impl.h"
#include "internal.h"
#include "proc.h"

#define CHECK_NS 100000000u             /* how often to look for the target's end */

/* One creation, copied while its creator was stopped. */
struct creation {
	pid_t tid, created;
	int unseen;                     /* a late joiner: no creator, no stack */
	struct arch_regs regs;
	uint64_t stack_addr;
	unsigned char *stack;
	size_t stack_len;
	int stack_cut;
	uint64_t stop_ns;
	char comm[64];
};

struct watcher {
	pid_t pid;
	struct attach_engine_opts o;
	struct attach_engine_stats *st;     /* written by the watcher thread
					     * under mu; read after the join */
	pthread_t thread;
	int running;                    /* the thread was started */
	volatile int quit;
	int efd;                        /* eventfd: creations queued, or the end */
	pthread_mutex_t mu;             /* the queue, ended, the stats */
	struct creation *q;
	size_t nq, capq;
	int ended;
	/* The watcher thread's own: */
	pid_t *tids;                    /* threads seized */
	size_t n, cap;
	pid_t *let_go;                  /* released stopped: not seized again */
	size_t nlet, caplet;
	struct attach_maps maps;
	int maps_stale;
	uint64_t maps_read_at;
	dev_t exe_dev;
	ino_t exe_ino;
	/* open's result, from the watcher thread (the tracer must be it) */
	int setup_done, setup_err;
	pthread_cond_t setup_cv;
	struct attach_error err;
};

/* ---- the watcher thread's table of seized threads ------------------------ */

static int add_tid(struct watcher *w, pid_t tid)
{
	if (w->n == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 64;
		pid_t *v = realloc(w->tids, cap * sizeof *v);
		if (!v)
			return -1;
		w->tids = v;
		w->cap = cap;
	}
	w->tids[w->n++] = tid;
	return 0;
}

static int has_tid(const struct watcher *w, pid_t tid)
{
	for (size_t i = 0; i < w->n; i++)
		if (w->tids[i] == tid)
			return 1;
	return 0;
}

static void drop_tid(struct watcher *w, size_t i)
{
	w->tids[i] = w->tids[--w->n];
}

static void remember_let_go(struct watcher *w, pid_t tid)
{
	if (w->nlet == w->caplet) {
		size_t cap = w->caplet ? w->caplet * 2 : 16;
		pid_t *v = realloc(w->let_go, cap * sizeof *v);
		if (!v)
			return;
		w->let_go = v;
		w->caplet = cap;
	}
	w->let_go[w->nlet++] = tid;
}

static int was_let_go(const struct watcher *w, pid_t tid)
{
	for (size_t i = 0; i < w->nlet; i++)
		if (w->let_go[i] == tid)
			return 1;
	return 0;
}

/* tid is traced by this thread already: the kernel attached it at its
 * birth, in a clone event of a seized creator not collected yet (which
 * adds it).  /proc's TracerPid is the tracer thread's tid. */
static int traced_here(pid_t pid, pid_t tid)
{
	char buf[2048];
	size_t len;
	struct attach_status st;
	return attach_read_task_status(pid, tid, buf, sizeof buf, &len) == 0 &&
	       attach_parse_status(buf, len, &st) == 0 && st.tracer_pid == (pid_t)syscall(SYS_gettid);
}

/* Seizes every thread of the target not seized yet, again until a pass
 * finds none.  0, or -1 with w->err set (another tracer, no permission). */
static int seize_all(struct watcher *w)
{
	for (int round = 0; round < 64; round++) {
		pid_t *tids;
		size_t n, added = 0;
		if (attach_list_tasks(w->pid, &tids, &n) || n == 0) {
			w->err.code = ATTACH_ERR_NOPROC;
			snprintf(w->err.msg, sizeof w->err.msg, "no such process: PID %d", (int)w->pid);
			return -1;
		}
		for (size_t i = 0; i < n; i++) {
			if (has_tid(w, tids[i]))
				continue;
			if (ptrace(PTRACE_SEIZE, tids[i], 0, (void *)(long)PTRACE_O_TRACECLONE) != 0) {
				if (errno == ESRCH || (errno == EPERM && attach_task_exiting(w->pid, tids[i])))
					continue;       /* exited meanwhile */
				if (errno == EPERM && (round > 0 || traced_here(w->pid, tids[i])))
					continue;       /* born since the first look:
							 * traced at birth, its clone
							 * event on its way; or
							 * seize_late's to try again */
				int e = errno;
				w->err.code = e == EPERM ? ATTACH_ERR_TRACED : ATTACH_ERR_OTHER;
				snprintf(w->err.msg, sizeof w->err.msg, "cannot watch thread %d of PID %d for "
					 "thread creations: PTRACE_SEIZE: %s (another tracer, or no permission)",
					 (int)tids[i], (int)w->pid, strerror(e));
				free(tids);
				return -1;
			}
			if (add_tid(w, tids[i])) {
				free(tids);
				snprintf(w->err.msg, sizeof w->err.msg, "out of memory");
				return -1;
			}
			added++;
		}
		free(tids);
		if (!added)
			return 0;
	}
	return 0;
}

static void read_maps(struct watcher *w)
{
	char path[64], *buf;
	size_t len;
	snprintf(path, sizeof path, "/proc/%d/maps", (int)attach_mm_pid(w->pid));
	if (attach_read_file(path, &buf, &len) == 0) {
		attach_maps_free(&w->maps);
		attach_parse_maps(buf, len, &w->maps);
		free(buf);
	}
	w->maps_read_at = attach_now_ns();
	w->maps_stale = 0;
}

static void read_comm(pid_t pid, pid_t tid, char *comm, size_t len)
{
	char path[64], buf[64];
	size_t n;
	snprintf(path, sizeof path, "/proc/%d/task/%d/comm", (int)pid, (int)tid);
	if (attach_read_small(path, buf, sizeof buf, &n) == 0 && n > 0) {
		buf[buf[n - 1] == '\n' ? n - 1 : n] = 0;
		snprintf(comm, len, "%.15s", buf);
	} else {
		snprintf(comm, len, "?");
	}
}

/* ---- a clone event: copy, resume, queue ---------------------------------- */

/* Hands c to the caller's thread (taken over); -1 if out of memory. */
static int queue(struct watcher *w, const struct creation *c)
{
	pthread_mutex_lock(&w->mu);
	if (w->nq == w->capq) {
		size_t cap = w->capq ? w->capq * 2 : 16;
		struct creation *v = realloc(w->q, cap * sizeof *v);
		if (!v) {
			pthread_mutex_unlock(&w->mu);
			return -1;
		}
		w->q = v;
		w->capq = cap;
	}
	w->q[w->nq++] = *c;
	pthread_mutex_unlock(&w->mu);
	uint64_t one = 1;
	if (write(w->efd, &one, sizeof one) < 0) {
		/* the eventfd cannot overflow at these counts */
	}
	return 0;
}

/* The creator tid is stopped in its clone event: registers and stack,
 * nothing else, then it runs again. */
static void on_clone(struct watcher *w, pid_t tid, uint64_t stopped_at)
{
	unsigned long msg = 0;
	struct user_regs_struct u;
	struct iovec iov = { &u, sizeof u };
	struct creation c = { .tid = tid };
	int has_regs = ptrace(PTRACE_GETEVENTMSG, tid, 0, &msg) == 0 &&
		       ptrace(PTRACE_GETREGSET, tid, (void *)NT_PRSTATUS, &iov) == 0;
	size_t limit = w->o.stack_size;
	uint64_t lo = 0, hi = 0;
	ssize_t got = -1;
	if (has_regs && (c.stack = malloc(limit))) {
		if (!attach_stack_range(&w->maps, u.rsp, limit, &lo, &hi))
			w->maps_stale = 1;
		got = attach_read_mem(tid, lo, c.stack, hi - lo);
	}
	ptrace(PTRACE_CONT, tid, 0, 0);
	c.stop_ns = attach_now_ns() - stopped_at;
	pid_t child = (pid_t)msg;
	if (!has_regs || child <= 0)
		goto out;
	if (!attach_task_exists(w->pid, child)) {
		/* A process, not a thread (no CLONE_THREAD): traced from its
		 * birth all the same; let go of at its first stop. */
		pthread_mutex_lock(&w->mu);
		w->st->clones_not_threads++;
		pthread_mutex_unlock(&w->mu);
		add_tid(w, -child);
		goto out;
	}
	add_tid(w, child);      /* its first stop is on its way */
	attach_regs_from_ptrace(&u, &c.regs);
	c.created = child;
	c.stack_addr = lo;
	c.stack_len = got > 0 ? (size_t)got : 0;
	c.stack_cut = hi - lo >= limit && c.stack_len == hi - lo;
	read_comm(w->pid, tid, c.comm, sizeof c.comm);
	if (queue(w, &c) == 0)
		return;
out:
	free(c.stack);
}

/* What waitpid said about seized thread i (a negative tid: a process a
 * clone made, to let go of). */
static void on_status(struct watcher *w, size_t i, int status)
{
	pid_t tid = w->tids[i] < 0 ? -w->tids[i] : w->tids[i];
	int foreign = w->tids[i] < 0;
	uint64_t now = attach_now_ns();
	if (WIFEXITED(status) || WIFSIGNALED(status)) {
		drop_tid(w, i);
		if (tid == w->pid && !foreign) {
			pthread_mutex_lock(&w->mu);
			w->st->target_exited = 1;
			w->st->exit_status = status;
			w->ended = 1;
			pthread_mutex_unlock(&w->mu);
		}
		return;
	}
	if (!WIFSTOPPED(status))
		return;
	int event = status >> 16, sig = WSTOPSIG(status);
	if (foreign) {
		ptrace(PTRACE_DETACH, tid, 0, (void *)(long)(event == 0 ? sig : 0));
		drop_tid(w, i);
		return;
	}
	if (event == PTRACE_EVENT_CLONE) {
		on_clone(w, tid, now);
	} else if (event == PTRACE_EVENT_STOP &&
		   (sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU)) {
		/* A job-control stop: detached, it stays stopped. */
		ptrace(PTRACE_DETACH, tid, 0, 0);
		drop_tid(w, i);
		remember_let_go(w, tid);
		pthread_mutex_lock(&w->mu);
		w->st->threads_released++;
		pthread_mutex_unlock(&w->mu);
	} else {
		/* A signal on its way (handed back, once), or a new thread's
		 * first stop. */
		ptrace(PTRACE_CONT, tid, 0, (void *)(long)(event == 0 ? sig : 0));
	}
}

/* Collects every stop waiting now, by tid; how many were handled. */
static size_t collect_stops(struct watcher *w)
{
	size_t handled = 0;
	for (size_t i = 0; i < w->n;) {
		pid_t entry = w->tids[i], tid = entry < 0 ? -entry : entry;
		int status;
		pid_t r = waitpid(tid, &status, __WALL | WNOHANG);
		if (r == tid) {
			on_status(w, i, status);
			handled++;
		} else if (r < 0 && errno == ECHILD) {
			drop_tid(w, i);         /* not ours any more */
		}
		/* A dropped entry i was replaced by the last one: look at i
		 * again. */
		if (i < w->n && w->tids[i] == entry)
			i++;
	}
	return handled;
}

/* Threads that joined the watch without a clone event: the kernel decides
 * at a clone's start whether the new thread is traced and its creator
 * stops (PTRACE_O_TRACECLONE), so a clone already under way when its
 * creator was seized makes a thread nobody traces, and it may show in
 * /proc/PID/task only after seize_all's last look.  Such a thread is
 * seized here when it shows (its own creations are then seen) and handed
 * out as created unseen.  Looked for at each check and at the end.  A
 * thread that fails to seize with EPERM is one of ours whose creator's
 * clone event is not collected yet (the kernel attached it), or another
 * tracer's: looked at again next time. */
static void seize_late(struct watcher *w)
{
	pid_t *tids;
	size_t n;
	if (attach_list_tasks(w->pid, &tids, &n))
		return;
	for (size_t i = 0; i < n; i++) {
		if (has_tid(w, tids[i]) || was_let_go(w, tids[i]))
			continue;
		if (ptrace(PTRACE_SEIZE, tids[i], 0, (void *)(long)PTRACE_O_TRACECLONE) != 0 ||
		    add_tid(w, tids[i]))
			continue;
		struct creation c = { .created = tids[i], .unseen = 1 };
		snprintf(c.comm, sizeof c.comm, "?");
		queue(w, &c);
	}
	free(tids);
}

/* The process exited, or ran a new program. */
static int check_end(struct watcher *w)
{
	char path[64];
	struct stat exe;
	int status = -1;
	if (attach_process_ended(w->pid, &status, NULL)) {
		pthread_mutex_lock(&w->mu);
		if (!w->st->target_exited)
			w->st->exit_status = status;
		w->st->target_exited = 1;
		w->ended = 1;
		pthread_mutex_unlock(&w->mu);
		return 1;
	}
	snprintf(path, sizeof path, "/proc/%d/exe", (int)attach_mm_pid(w->pid));
	if (stat(path, &exe) == 0 && (exe.st_dev != w->exe_dev || exe.st_ino != w->exe_ino)) {
		pthread_mutex_lock(&w->mu);
		w->st->target_execed = 1;
		w->ended = 1;
		pthread_mutex_unlock(&w->mu);
		return 1;
	}
	return 0;
}

static void *watch(void *arg)
{
	struct watcher *w = arg;
	sigset_t chld;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	pthread_sigmask(SIG_BLOCK, &chld, NULL);
	read_maps(w);
	int r = seize_all(w);
	pthread_mutex_lock(&w->mu);
	w->setup_done = 1;
	w->setup_err = r;
	pthread_cond_broadcast(&w->setup_cv);
	pthread_mutex_unlock(&w->mu);
	uint64_t next_check = attach_now_ns() + CHECK_NS;
	while (r == 0 && !w->quit) {
		collect_stops(w);
		if (w->maps_stale && attach_now_ns() - w->maps_read_at > CHECK_NS)
			read_maps(w);
		if (attach_now_ns() >= next_check) {
			next_check = attach_now_ns() + CHECK_NS;
			if (w->ended || check_end(w))
				break;
			collect_stops(w);       /* clone events first: their
						 * threads are no late joiners */
			seize_late(w);
		}
		/* SIGCHLD is the process's: another thread may take it, so
		 * look again after a slice whatever happens. */
		struct timespec ts = { 0, ATTACH_WAIT_SLICE_NS };
		sigtimedwait(&chld, NULL, &ts);
	}
	/* Answer the stops already there; the rest is the kernel's detach,
	 * at this thread's exit, which stops nothing.  The last late joiners
	 * are counted (seizing stops nothing either). */
	collect_stops(w);
	if (!w->ended) {
		seize_late(w);
		collect_stops(w);
	}
	uint64_t one = 1;
	if (write(w->efd, &one, sizeof one) < 0) {
		/* nothing to do: the caller polls with a timeout too */
	}
	return NULL;
}

/* ---- the interface: on the caller's thread -------------------------------- */

static void clones_close(void *state);

static void *clones_open(pid_t pid, const struct attach_engine_opts *o, struct attach_engine_stats *st,
			 struct attach_error *err)
{
	struct watcher *w = calloc(1, sizeof *w);
	struct stat exe;
	char path[64];
	if (!w) {
		err->code = ATTACH_ERR_OTHER;
		snprintf(err->msg, sizeof err->msg, "out of memory");
		return NULL;
	}
	w->pid = pid;
	w->o = *o;
	w->st = st;
	st->exit_status = -1;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->setup_cv, NULL);
	snprintf(path, sizeof path, "/proc/%d/exe", (int)attach_mm_pid(pid));
	if (stat(path, &exe) == 0) {
		w->exe_dev = exe.st_dev;
		w->exe_ino = exe.st_ino;
	}
	st->duration_ns = attach_now_ns();      /* the start, until close */
	w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->efd < 0 || pthread_create(&w->thread, NULL, watch, w)) {
		err->code = ATTACH_ERR_OTHER;
		snprintf(err->msg, sizeof err->msg, "cannot start the thread watching thread creations");
		clones_close(w);
		return NULL;
	}
	w->running = 1;
	pthread_mutex_lock(&w->mu);
	while (!w->setup_done)
		pthread_cond_wait(&w->setup_cv, &w->mu);
	int failed = w->setup_err;
	pthread_mutex_unlock(&w->mu);
	if (failed) {
		*err = w->err;
		clones_close(w);
		return NULL;
	}
	return w;
}

/* Hands out what the watcher queued, on the caller's thread. */
static void hand_out(struct watcher *w)
{
	pthread_mutex_lock(&w->mu);
	struct creation *q = w->q;
	size_t n = w->nq;
	w->q = NULL;
	w->nq = w->capq = 0;
	pthread_mutex_unlock(&w->mu);
	for (size_t i = 0; i < n; i++) {
		struct creation *c = &q[i];
		struct attach_raw_sample s = {
			.tid = c->tid, .comm = c->comm, .weight_ns = 1, .regs = c->regs,
			.stack_addr = c->stack_addr, .stack = c->stack, .stack_len = c->stack_len,
			.stack_cut = c->stack_cut, .probe = -1, .stop_ns = c->stop_ns, .state = 'R',
			.blocked_ms = -1, .created = c->created, .created_unseen = c->unseen,
		};
		w->st->samples++;
		if (!c->unseen && w->st->n_stop_ns == w->st->cap_stop_ns) {
			size_t cap = w->st->cap_stop_ns ? w->st->cap_stop_ns * 2 : 64;
			uint64_t *v = realloc(w->st->stop_ns, cap * sizeof *v);
			if (v) {
				w->st->stop_ns = v;
				w->st->cap_stop_ns = cap;
			}
		}
		if (!c->unseen && w->st->n_stop_ns < w->st->cap_stop_ns)
			w->st->stop_ns[w->st->n_stop_ns++] = c->stop_ns;
		w->o.on_sample(w->o.arg, &s);
		free(c->stack);
	}
	free(q);
}

static int clones_poll(void *state, uint64_t deadline)
{
	struct watcher *w = state;
	uint64_t now = attach_now_ns();
	uint64_t wait = deadline > now ? deadline - now : 0;
	if (wait > CHECK_NS)
		wait = CHECK_NS;
	struct pollfd pf = { w->efd, POLLIN, 0 };
	struct timespec ts = { (time_t)(wait / 1000000000u), (long)(wait % 1000000000u) };
	uint64_t v;
	if (ppoll(&pf, 1, &ts, NULL) > 0 && read(w->efd, &v, sizeof v) < 0) {
		/* drained by an earlier read */
	}
	hand_out(w);
	pthread_mutex_lock(&w->mu);
	int ended = w->ended;
	pthread_mutex_unlock(&w->mu);
	return ended;
}

static void clones_close(void *state)
{
	struct watcher *w = state;
	if (w->running) {
		w->quit = 1;
		pthread_join(w->thread, NULL);
		/* Its tracees are let go of: it exited. */
		hand_out(w);
	}
	w->st->duration_ns = attach_now_ns() - w->st->duration_ns;
	if (w->efd >= 0)
		close(w->efd);
	for (size_t i = 0; i < w->nq; i++)
		free(w->q[i].stack);
	free(w->q);
	free(w->tids);
	free(w->let_go);
	attach_maps_free(&w->maps);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->setup_cv);
	free(w);
}

const struct attach_engine_ops attach_engine_clones_ops = {
	.name = "ptrace",
	.open = clones_open,
	.poll = clones_poll,
	.close = clones_close,
};
