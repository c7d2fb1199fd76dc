/* group.c — one profile of several processes: `attach PID PID...`,
 * `attach --children PID` and `run --children` for the kinds that sample
 * threads (cpu, wall, block, mutex).  See collect.h, collect_open_many.
 *
 * Each process gets a collection of its own (session.c) on a thread of
 * its own: an engine keeps all its state per process and waits only on
 * its own threads (waitpid(tid), never -1), and a symbolizer is one
 * process's, so they run side by side as they would in separate pprofc
 * processes.  The caller's thread only watches:
 *   1. a member thread opens its collection (or, for run's command,
 *      starts it: collect_spawn) and runs it until the group's stop flag
 *      is set, its process exits or execs;
 *   2. the caller's thread waits for every member to be open (one that
 *      fails fails the group: every member stops and lets go), then until
 *      the window ends: --seconds, the caller's cancel flag, every process
 *      gone, or (run) the command's exit.  Following (run --children), it
 *      looks for new descendants of the tree every FOLLOW_SCAN_NS and
 *      gives each a member; a member whose process exec'ed gets a
 *      successor for the new program;
 *   3. it sets the stop flag, joins the members, and merges their
 *      profiles into one (pp_profile_merge), each sample labelled with the
 *      numeric `pid` and the string `process` (the process's comm), each
 *      process's mappings its own unless identical (docs/FORMATS.md §1.7).
 * SIGCHLD is blocked in the caller's thread meanwhile: ptrace stops are
 * reported to the process, and a thread that does not block SIGCHLD would
 * take (and drop) a signal meant to wake a member's wait.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

/* How often run --children looks for new processes in the tree: a
 * process that starts and ends within it may be missed (counted in the
 * summary when seen too late to open). */
#define FOLLOW_SCAN_NS 20000000u

enum member_state { M_OPENING, M_RUNNING, M_DONE, M_FAILED };

struct member {
	struct collect_group *g;
	pid_t pid;
	char name[64];                  /* comm when its collection opened */
	struct collect_opts o;
	char **argv;                    /* run: the command (the first member) */
	struct collect_session *s;
	struct collect_error err;
	int status;                     /* run: the command's status if it could not run */
	pthread_t thread;
	int started;
	int optional;                   /* found, not named: may be gone */
	enum member_state state;        /* under g->mu */
	int succeeded;                  /* exec'ed: a successor took over */
	uint64_t samples;               /* progress (atomic) */
};

struct collect_group {
	struct collect_opts o;          /* the caller's */
	volatile sig_atomic_t stop;     /* every member's cancel flag */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct member **m;
	size_t n, cap;
	int follow;                     /* run --children */
	uint64_t missed;                /* followed processes gone before they opened */
	sigset_t old_mask;
	int masked;
	struct pp_profile *prof;        /* the merged profile */
};

static void member_progress(void *arg, double elapsed_s, uint64_t samples)
{
	(void)elapsed_s;
	struct member *m = arg;
	__atomic_store_n(&m->samples, samples, __ATOMIC_RELAXED);
}

/* What the process calls itself now (comm); "?" if it is gone. */
static void read_comm(pid_t pid, char *name, size_t len)
{
	char path[64], buf[1024];
	size_t n;
	struct attach_stat st;
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	if (attach_read_small(path, buf, sizeof buf, &n) == 0 && attach_parse_stat(buf, n, &st) == 0)
		snprintf(name, len, "%s", st.comm);
	else
		snprintf(name, len, "?");
}

static void set_state(struct member *m, enum member_state st)
{
	pthread_mutex_lock(&m->g->mu);
	m->state = st;
	pthread_cond_broadcast(&m->g->cv);
	pthread_mutex_unlock(&m->g->mu);
}

static void *member_main(void *arg)
{
	struct member *m = arg;
	struct collect_session *s = m->argv ? collect_spawn(m->argv, &m->o, &m->err, &m->status)
					    : collect_open(m->pid, &m->o, &m->err);
	if (s) {
		m->pid = collect_pid(s);
		read_comm(m->pid, m->name, sizeof m->name);
	}
	m->s = s;
	set_state(m, s ? M_RUNNING : M_FAILED);
	if (s) {
		collect_run(s);
		set_state(m, M_DONE);
	}
	return NULL;
}

/* A member for pid (or, with argv, run's command), its thread started;
 * NULL if out of memory.  An optional member (found, not named) may
 * fail to open: its process may have ended.  g->mu is not held. */
static struct member *add_member(struct collect_group *g, pid_t pid, char **argv, int optional)
{
	struct member *m = calloc(1, sizeof *m);
	if (!m)
		return NULL;
	struct member **v = collect_grow(g->m, g->n, &g->cap, sizeof *v, 8);
	if (!v) {
		free(m);
		return NULL;
	}
	g->m = v;
	*m = (struct member){ .g = g, .pid = pid, .o = g->o, .argv = argv, .status = -1,
			      .optional = optional };
	m->o.seconds = 0;               /* the group ends the window */
	m->o.cancel = &g->stop;
	m->o.on_progress = member_progress;
	m->o.arg = m;
	m->o.children = 0;
	m->o.snapshot = NULL;
	m->o.on_snapshot = NULL;
	snprintf(m->name, sizeof m->name, "?");
	pthread_mutex_lock(&g->mu);
	g->m[g->n++] = m;
	pthread_mutex_unlock(&g->mu);
	m->started = pthread_create(&m->thread, NULL, member_main, m) == 0;
	if (!m->started) {
		snprintf(m->err.msg, sizeof m->err.msg, "cannot start a thread for PID %d: %s", (int)pid,
			 strerror(errno));
		set_state(m, M_FAILED);
	}
	return m;
}

/* Waits until no member is opening; the first named one that failed
 * (NULL: none). */
static struct member *wait_opened(struct collect_group *g)
{
	struct member *failed = NULL;
	pthread_mutex_lock(&g->mu);
	for (size_t i = 0; i < g->n; i++) {
		while (g->m[i]->state == M_OPENING)
			pthread_cond_wait(&g->cv, &g->mu);
		if (g->m[i]->state == M_FAILED && !failed && !g->m[i]->optional)
			failed = g->m[i];
	}
	pthread_mutex_unlock(&g->mu);
	return failed;
}

/* Stops every member and waits for its thread: each engine has let go
 * of its process when this returns. */
static void stop_all(struct collect_group *g)
{
	g->stop = 1;
	for (size_t i = 0; i < g->n; i++)
		if (g->m[i]->started) {
			pthread_join(g->m[i]->thread, NULL);
			g->m[i]->started = 0;
		}
	if (g->masked) {
		pthread_sigmask(SIG_SETMASK, &g->old_mask, NULL);
		g->masked = 0;
	}
}

static void group_free(struct collect_group *g)
{
	if (!g)
		return;
	stop_all(g);
	for (size_t i = 0; i < g->n; i++) {
		collect_close(g->m[i]->s);
		free(g->m[i]);
	}
	free(g->m);
	pp_profile_free(g->prof);
	pthread_mutex_destroy(&g->mu);
	pthread_cond_destroy(&g->cv);
	free(g);
}

static struct collect_group *group_new(const struct collect_opts *o, int follow)
{
	struct collect_group *g = calloc(1, sizeof *g);
	if (!g)
		return NULL;
	g->o = *o;
	g->follow = follow;
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);   /* wait_until's deadlines */
	pthread_mutex_init(&g->mu, NULL);
	pthread_cond_init(&g->cv, &ca);
	pthread_condattr_destroy(&ca);
	sigset_t chld;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	g->masked = pthread_sigmask(SIG_BLOCK, &chld, &g->old_mask) == 0;
	return g;
}

/* The outer session: what collect_run and the rest see. */
static struct collect_session *group_session(struct collect_group *g, struct collect_error *err)
{
	struct collect_session *s = calloc(1, sizeof *s);
	if (!s) {
		snprintf(err->msg, sizeof err->msg, "out of memory");
		group_free(g);
		return NULL;
	}
	s->group = g;
	s->o = g->o;
	s->pid = g->m[0]->pid;
	s->sum.exit_status = -1;
	s->sum.engine = collect_summary(g->m[0]->s)->engine;
	s->start_ns = collect_now_ns();
	return s;
}

/* A member failed to open: every member lets go, the group is freed, and
 * err says what failed. */
static struct collect_session *group_fail(struct collect_group *g, struct member *m,
					  struct collect_error *err, int *status)
{
	*err = m->err;
	if (status)
		*status = m->status;
	group_free(g);
	return NULL;
}

struct collect_session *collect_open_many(const pid_t *pids, size_t n, size_t n_named,
					  const struct collect_opts *o, struct collect_error *err)
{
	memset(err, 0, sizeof *err);
	struct collect_group *g = group_new(o, 0);
	if (!g) {
		snprintf(err->msg, sizeof err->msg, "out of memory");
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		if (!add_member(g, pids[i], NULL, i >= n_named)) {
			snprintf(err->msg, sizeof err->msg, "out of memory");
			group_free(g);
			return NULL;
		}
	}
	struct member *failed = wait_opened(g);
	return failed ? group_fail(g, failed, err, NULL) : group_session(g, err);
}

struct collect_session *collect_spawn_following(char **argv, const struct collect_opts *o,
						struct collect_error *err, int *status)
{
	memset(err, 0, sizeof *err);
	*status = -1;
	struct collect_group *g = group_new(o, 1);
	if (!g) {
		snprintf(err->msg, sizeof err->msg, "out of memory");
		return NULL;
	}
	struct member *failed = add_member(g, 0, argv, 0) ? wait_opened(g) : NULL;
	if (!g->n) {
		snprintf(err->msg, sizeof err->msg, "out of memory");
		group_free(g);
		return NULL;
	}
	if (failed)
		return group_fail(g, failed, err, status);
	struct collect_session *s = group_session(g, err);
	if (s)
		s->child = g->m[0]->pid;
	return s;
}

/* ---- the window ---------------------------------------------------------- */

/* Whether m's collection ended at an exec of its process (seen by either
 * engine: off-CPU kinds' perf engine may see it first). */
static int execed(const struct member *m)
{
	const struct collect_summary *sum = collect_summary(m->s);
	return sum->target_execed || sum->cpu_st.target_execed;
}

static int known(const struct collect_group *g, pid_t pid)
{
	for (size_t i = 0; i < g->n; i++)
		if (g->m[i]->pid == pid)
			return 1;
	return 0;
}

/* run --children: a member for each new process of the tree, and a
 * successor for each member whose process exec'ed. */
static void follow(struct collect_group *g)
{
	size_t n0 = g->n, nroots = 0, nd = 0;
	pid_t *roots = malloc((n0 ? n0 : 1) * sizeof *roots), *d = NULL;
	if (!roots)
		return;
	for (size_t i = 0; i < n0; i++) {
		struct member *m = g->m[i];
		pthread_mutex_lock(&g->mu);
		enum member_state st = m->state;
		pthread_mutex_unlock(&g->mu);
		if (st == M_FAILED || m->pid <= 0)
			continue;
		roots[nroots++] = m->pid;
		if (st == M_DONE && !m->succeeded && execed(m)) {
			m->succeeded = 1;
			add_member(g, m->pid, NULL, 1);
		}
	}
	if (attach_list_descendants(roots, nroots, &d, &nd) == 0)
		for (size_t i = 0; i < nd; i++)
			if (!known(g, d[i]))
				add_member(g, d[i], NULL, 1);
	free(roots);
	free(d);
}

/* Whether the window is over for the members: every process gone (attach);
 * the command gone (run: no collection of its pid running or opening, nor
 * one that exec'ed still waiting for follow() to give it a successor). */
static int members_over(struct collect_group *g)
{
	int over = 1;
	pthread_mutex_lock(&g->mu);
	for (size_t i = 0; i < g->n && over; i++)
		if (!g->follow || g->m[i]->pid == g->m[0]->pid)
			over = g->m[i]->state == M_FAILED ||
			       (g->m[i]->state == M_DONE && (!g->follow || g->m[i]->succeeded ||
							      !execed(g->m[i])));
	pthread_mutex_unlock(&g->mu);
	return over;
}

/* run: the last collection of the command's pid (it may have exec'ed). */
static struct member *command(struct collect_group *g)
{
	struct member *last = g->m[0];
	for (size_t i = 1; i < g->n; i++)
		if (g->m[i]->pid == g->m[0]->pid && g->m[i]->s)
			last = g->m[i];
	return last;
}

static uint64_t samples_so_far(struct collect_group *g)
{
	uint64_t n = 0;
	pthread_mutex_lock(&g->mu);
	for (size_t i = 0; i < g->n; i++)
		n += __atomic_load_n(&g->m[i]->samples, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&g->mu);
	return n;
}

/* The longest the watcher sleeps: a change of state that came just
 * before it waited is seen this late at most. */
#define WATCH_NS 100000000u

/* Sleeps until deadline or a member's change of state. */
static void wait_until(struct collect_group *g, uint64_t deadline)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	uint64_t now = collect_now_ns();
	if (deadline <= now)
		return;
	if (deadline - now > WATCH_NS)
		deadline = now + WATCH_NS;
	uint64_t ns = (uint64_t)ts.tv_nsec + (deadline - now);
	ts.tv_sec += (time_t)(ns / 1000000000u);
	ts.tv_nsec = (long)(ns % 1000000000u);
	pthread_mutex_lock(&g->mu);
	pthread_cond_timedwait(&g->cv, &g->mu, &ts);
	pthread_mutex_unlock(&g->mu);
}

/* ---- the end: one summary, one profile ---------------------------------- */

static void add_stats(struct attach_engine_stats *to, const struct attach_engine_stats *st)
{
	to->ticks += st->ticks;
	to->skipped_ticks += st->skipped_ticks;
	to->samples += st->samples;
	to->lost_not_stopped += st->lost_not_stopped;
	to->lost_exited += st->lost_exited;
	to->landed_off_cpu += st->landed_off_cpu;
	to->lost_records += st->lost_records;
	to->no_user_regs += st->no_user_regs;
	to->threads_seen += st->threads_seen;
	to->cpu_ns += st->cpu_ns;
	to->sampled_ns += st->sampled_ns;
	to->kernel_excluded |= st->kernel_excluded;
	if (st->n_stop_ns && to->n_stop_ns + st->n_stop_ns > to->cap_stop_ns) {
		size_t cap = to->n_stop_ns + st->n_stop_ns;
		uint64_t *v = realloc(to->stop_ns, cap * sizeof *v);
		if (!v)
			return;         /* the medians leave this process out */
		to->stop_ns = v;
		to->cap_stop_ns = cap;
	}
	if (st->n_stop_ns) {
		memcpy(to->stop_ns + to->n_stop_ns, st->stop_ns, st->n_stop_ns * sizeof *st->stop_ns);
		to->n_stop_ns += st->n_stop_ns;
	}
}

static void add_summary(struct collect_summary *to, const struct collect_summary *from)
{
	add_stats(&to->st, &from->st);
	add_stats(&to->cpu_st, &from->cpu_st);
	to->no_cpu_stack += from->no_cpu_stack;
	to->threads_evicted += from->threads_evicted;
	to->holder_unknown += from->holder_unknown;
	to->dropped_nomem += from->dropped_nomem;
	to->recorded_ns += from->recorded_ns;
	to->unwind_failures += from->unwind_failures;
	to->cut_short += from->cut_short;
	if (!to->fallback[0] && from->fallback[0])
		snprintf(to->fallback, sizeof to->fallback, "%s", from->fallback);
}

static void summarize(struct collect_session *s)
{
	struct collect_group *g = s->group;
	struct collect_summary *sum = &s->sum;
	int all_exited = 1;
	for (size_t i = 0; i < g->n; i++) {
		struct member *m = g->m[i];
		if (!m->s)
			continue;
		const struct collect_summary *ms = collect_summary(m->s);
		add_summary(sum, ms);
		sum->processes += !m->succeeded;   /* its successor is the same process */
		if (ms->target_exited)
			sum->processes_exited++;
		all_exited &= ms->target_exited;
	}
	for (size_t i = 0; i < g->n; i++)
		if (g->m[i]->state == M_FAILED && !sum->processes_missed++)
			snprintf(sum->missed, sizeof sum->missed, "%s", g->m[i]->err.msg);
	sum->st.duration_ns = collect_now_ns() - s->start_ns;
	if (g->follow) {
		/* run: the command's end, as for one process */
		const struct collect_summary *root = collect_summary(command(g)->s);
		sum->target_exited = root->target_exited;
		sum->target_execed = root->target_execed;
		sum->exit_status = root->exit_status;
	} else {
		sum->target_exited = all_exited;
	}
}

/* Every member's profile into one, labelled pid and process. */
static struct pp_profile *merge(struct collect_session *s)
{
	struct collect_group *g = s->group;
	struct pp_profile_spec spec;
	collect_spec(&g->o, &spec);
	struct pp_profile *prof = pp_profile_new(&spec);
	for (size_t i = 0; prof && i < g->n; i++) {
		struct member *m = g->m[i];
		struct pp_profile *p = m->s ? collect_profile(m->s) : NULL;
		struct pp_label who[2] = { { "pid", NULL, m->pid, NULL }, { "process", m->name, 0, NULL } };
		if (p && pp_profile_merge(prof, p, i + 1, who, 2)) {
			pp_profile_free(prof);
			prof = NULL;
		}
	}
	return prof;
}

void collect_group_run(struct collect_session *s)
{
	struct collect_group *g = s->group;
	uint64_t end = s->o.seconds > 0 ? s->start_ns + (uint64_t)(s->o.seconds * 1e9) : 0;
	uint64_t next_progress = s->start_ns + 1000000000u;
	while (!(s->o.cancel && *s->o.cancel) && !g->stop) {
		uint64_t now = collect_now_ns();
		if (end && now >= end)
			break;
		if (g->follow)
			follow(g);
		if (members_over(g))
			break;
		if (now >= next_progress) {
			if (s->o.on_progress)
				s->o.on_progress(s->o.arg, (double)(now - s->start_ns) / 1e9, samples_so_far(g));
			next_progress += 1000000000u;
		}
		uint64_t deadline = next_progress;
		if (end && end < deadline)
			deadline = end;
		if (g->follow && now + FOLLOW_SCAN_NS < deadline)
			deadline = now + FOLLOW_SCAN_NS;
		wait_until(g, deadline);
	}
	collect_group_stop(s);
}

void collect_group_stop(struct collect_session *s)
{
	struct collect_group *g = s->group;
	if (s->stopped)
		return;
	s->stopped = 1;
	stop_all(g);
	summarize(s);
	g->prof = merge(s);
	if (!g->prof)
		s->sum.dropped_nomem++;
}

struct pp_profile *collect_group_profile(struct collect_session *s)
{
	return s->group->prof;
}

struct collect_session *collect_group_child(struct collect_session *s)
{
	return s->group->follow ? s->group->m[0]->s : NULL;
}

void collect_group_free(struct collect_session *s)
{
	group_free(s->group);
	s->group = NULL;
}
