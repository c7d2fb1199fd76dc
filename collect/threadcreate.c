/* threadcreate.c — the threadcreate kind: Go's threadcreate profile for
 * OS threads (docs/FORMATS.md §7).
 *
 * Two parts, one count each (sample type threadcreate/count):
 *   - each thread created in the window, under the stack of the thread
 *     that created it, taken at the clone by the engine (opts.clones: the
 *     perf engine's clone tracepoints, nothing stopped; or ptrace's clone
 *     event stop); label origin=created;
 *   - each thread alive at the start, under its start routine: the
 *     outermost frames of its stack, from its root up to the first frame
 *     outside the C library and the dynamic loader (start_thread ->
 *     worker; _start -> __libc_start_main -> main).  Fewer frames would
 *     say only "a thread" (every pthread starts in clone and
 *     start_thread); more would say where the thread is now, not how it
 *     began.  Read as dump-threads reads threads: a thread blocked in a
 *     system call is not stopped.  Label origin=alive at start.
 *
 * The two must not count a thread twice, nor miss one created while the
 * watch begins.  With perf the events are on before the threads are
 * read, so a thread created meanwhile may be both in the snapshot and in
 * a creation still on its way; with ptrace the snapshot comes first (its
 * stops and the watcher's seizing would meet), so a thread created in
 * between has no creation.  So until the watch has settled (SETTLE_NS;
 * the engines hand creations out within 0.1 s) the alive threads wait,
 * and the tids listed once the engine is open are kept as candidates:
 * then an alive thread that has a creation is not counted alive, and a
 * listed thread that has neither is counted under a marker saying its
 * creating stack was not seen.  The ptrace watch also hands out, as
 * created unseen, a thread it found only after it began (born of a clone
 * already under way when its creator was seized: engine_clones.c); one
 * listed here as well is counted once.
 *
 * Go's debug=1 text is written from a table of the distinct stacks kept
 * here with their frames (collect_threadcreate_text).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define SETTLE_NS 300000000u
#define PERF_STACK_DEFAULT (32u * 1024)
#define PTRACE_STACK_DEFAULT (64u * 1024)
#define ALIVE_STACK (64u * 1024)        /* copied per thread alive at the start */

/* A distinct stack with its count, for the debug=1 text. */
struct tc_stack {
	uint64_t hash;
	uint64_t *locs;
	size_t nlocs;
	struct pp_frame *frames;
	size_t nframes;
	int callers_only;
	size_t count;
};

/* A thread alive at the start, waiting for the watch to settle. */
struct tc_alive {
	pid_t tid;
	uint64_t *locs;
	size_t nlocs;
	struct pp_frame *frames;
	size_t nframes;
	int callers_only;               /* kept from the root side: frames[0]
					 * is a caller */
	enum collect_marker mark;       /* COLLECT_MARKERS: none, its stack */
};

struct collect_tc {
	struct tc_stack *st;
	size_t nst, capst;
	struct tc_alive *alive;
	size_t nalive;
	pid_t *candidates;              /* listed once the engine was open */
	size_t ncand;
	pid_t *created;                 /* created before settling */
	size_t ncreated, capcreated;
	int settled;
	int deferred;                   /* run with ptrace: open after release */
	uint64_t settle_at;
	struct attach_snapshot snap;
	int has_snap;
};

static struct pp_frame *copy_frames(const struct sym_stack *st, size_t first, size_t *n)
{
	*n = st->n > first ? st->n - first : 0;
	struct pp_frame *f = calloc(*n ? *n : 1, sizeof *f);
	if (!f)
		return NULL;
	for (size_t i = 0; i < *n; i++) {
		const struct sym_frame *s = &st->frames[first + i];
		f[i] = (struct pp_frame){ .pc = s->pc, .function = s->function, .file = s->file,
					  .line = s->line, .inlined = s->inlined,
					  .has_offset = s->has_offset, .func_offset = s->func_offset,
					  .module = s->module, .module_offset = s->module_offset };
	}
	return f;
}

/* A marker's one frame for the text (the marker's text is its name). */
static struct pp_frame *marker_frame(enum collect_marker m, size_t *n)
{
	static const char *const names[COLLECT_MARKERS] = {
		[COLLECT_MARK_TC_NO_ROOT] = "[thread alive at the start: stack not unwound to its root]",
		[COLLECT_MARK_TC_UNSEEN] = "[thread created before the watch began: creating stack not seen]",
		[COLLECT_MARK_TC_MAIN] = "[the program's main thread]",
		[COLLECT_MARK_TC_NO_STACK] = "[thread created: the creator's stack not unwound]",
	};
	struct pp_frame *f = calloc(1, sizeof *f);
	if (f)
		f->function = names[m];
	*n = f != NULL;
	return f;
}

/* Counts one thread on locs (frames: for the text, taken over). */
static void count(struct collect_session *s, const uint64_t *locs, size_t n, struct pp_frame *frames,
		  size_t nframes, int callers_only, const char *origin)
{
	struct collect_tc *tc = s->tc;
	int64_t one = 1;
	struct pp_label label = { "origin", origin, 0, NULL };
	if (pp_profile_add(s->stacks.prof, locs, n, &one, &label, 1)) {
		s->sum.dropped_nomem++;
		free(frames);
		return;
	}
	uint64_t h = collect_hash_locs(locs, n);
	for (size_t i = 0; i < tc->nst; i++) {
		struct tc_stack *e = &tc->st[i];
		if (e->hash == h && e->nlocs == n && memcmp(e->locs, locs, n * sizeof *locs) == 0) {
			e->count++;
			free(frames);
			return;
		}
	}
	struct tc_stack *v = collect_grow(tc->st, tc->nst, &tc->capst, sizeof *v, 16);
	if (!v) {
		free(frames);
		return;
	}
	tc->st = v;
	uint64_t *copy = collect_copy_locs(locs, n);
	if (!copy) {
		free(frames);
		return;
	}
	tc->st[tc->nst++] = (struct tc_stack){ h, copy, n, frames, nframes, callers_only, 1 };
}

static void count_marker(struct collect_session *s, enum collect_marker m, const char *origin)
{
	uint64_t id = collect_stacks_marker(&s->stacks, m);
	size_t nf;
	struct pp_frame *f = marker_frame(m, &nf);
	count(s, &id, id != 0, f, nf, 0, origin);
}

static int has(const pid_t *v, size_t n, pid_t tid)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] == tid)
			return 1;
	return 0;
}

/* ---- threads alive at the start ------------------------------------------- */

/* The C library or the dynamic loader: the machinery every thread starts
 * in, not the program's start routine. */
static int is_libc(const char *module)
{
	const char *b = module ? strrchr(module, '/') : NULL;
	b = b ? b + 1 : module;
	return b && (strncmp(b, "libc.so", 7) == 0 || strncmp(b, "libc-", 5) == 0 ||
		     strncmp(b, "ld-linux", 8) == 0 || strncmp(b, "libpthread", 10) == 0);
}

/* Where the start routine's frames begin: from the root (skipped: it is
 * the entry, _start or clone), past the library's frames, the first frame
 * of the program, with the frames inlined into it.  0: the whole stack. */
static size_t start_routine(const struct sym_stack *st)
{
	if (st->n < 2)
		return 0;
	size_t i = st->n - 1;
	while (i > 0 && st->frames[i - 1].inlined)     /* the root's own chain */
		i--;
	while (i > 0) {
		i--;
		if (!is_libc(st->frames[i].module))
			break;
	}
	if (is_libc(st->frames[i].module))
		return 0;
	while (i > 0 && st->frames[i - 1].inlined && st->frames[i - 1].pc == st->frames[i].pc)
		i--;
	return i;
}

static void keep_alive(struct collect_session *s, struct tc_alive *a, const struct attach_thread *t)
{
	struct sym_stack st;
	a->tid = t->tid;
	a->mark = COLLECT_MARK_TC_NO_ROOT;
	/* A main thread that called pthread_exit, the others running on: no
	 * stack left, but it is known how it began. */
	if (!t->taken && t->tid == s->pid && t->has_stat && (t->stat.state == 'Z' || t->stat.state == 'X'))
		a->mark = COLLECT_MARK_TC_MAIN;
	if (!t->taken)
		return;
	struct sym_snapshot snap = { t->tid, &t->regs, t->stack_addr, t->stack, t->stack_len, 0,
				     attach_read_mem };
	if (sym_unwind(s->sym, &snap, &st))
		return;
	if (st.complete && st.n) {
		size_t first = start_routine(&st);
		uint64_t locs[COLLECT_MAX_LOCS];
		size_t n = collect_stacks_locations_from(&s->stacks, &st, first, locs, COLLECT_MAX_LOCS);
		if ((a->locs = collect_copy_locs(locs, n)) &&
		    (a->frames = copy_frames(&st, first, &a->nframes))) {
			a->nlocs = n;
			a->callers_only = first > 0;
			a->mark = COLLECT_MARKERS;
		}
	}
	sym_stack_free(&st);
}

/* Reads every thread now (a thread blocked in a system call is not
 * stopped; a running one is, for its registers and stack). */
static int read_alive(struct collect_session *s, struct collect_error *err)
{
	struct collect_tc *tc = s->tc;
	struct attach_opts ao = { .stack_limit = ALIVE_STACK, .stop_timeout_ms = 500,
				  .cancel = s->o.cancel };
	struct attach_error ae;
	if (attach_snapshot_take(s->pid, &ao, &tc->snap, &ae)) {
		snprintf(err->msg, sizeof err->msg, "%s", ae.msg);
		return -1;
	}
	tc->has_snap = 1;
	if (!(tc->alive = calloc(tc->snap.n ? tc->snap.n : 1, sizeof *tc->alive))) {
		snprintf(err->msg, sizeof err->msg, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < tc->snap.n; i++)
		keep_alive(s, &tc->alive[tc->nalive++], &tc->snap.threads[i]);
	attach_snapshot_release(&tc->snap, 500000000u);
	attach_snapshot_free(&tc->snap);
	tc->has_snap = 0;
	return 0;
}

/* The threads there once the watch is on: those that turn out neither
 * alive at the start nor created were made while it began. */
static void list_candidates(struct collect_session *s)
{
	size_t n;
	if (attach_list_tasks(s->pid, &s->tc->candidates, &n) == 0)
		s->tc->ncand = n;
}

/* The watch has settled: the alive threads without a creation counted,
 * and the unseen ones. */
static void settle(struct collect_session *s)
{
	struct collect_tc *tc = s->tc;
	if (tc->settled || tc->deferred)
		return;
	tc->settled = 1;
	for (size_t i = 0; i < tc->nalive; i++) {
		struct tc_alive *a = &tc->alive[i];
		/* Its frames leave it here, counted or not: collect_tc_free
		 * frees what is left, which must not be them again. */
		struct pp_frame *frames = a->frames;
		a->frames = NULL;
		if (has(tc->created, tc->ncreated, a->tid)) {
			/* Created after the events were on, listed before the
			 * snapshot: its creation counts it. */
			s->sum.tc.alive_and_created++;
			free(frames);
		} else if (a->mark != COLLECT_MARKERS) {
			s->sum.tc.alive++;
			s->sum.tc.alive_no_root += a->mark == COLLECT_MARK_TC_NO_ROOT;
			count_marker(s, a->mark, "alive at start");
			free(frames);
		} else {
			s->sum.tc.alive++;
			count(s, a->locs, a->nlocs, frames, a->nframes, a->callers_only, "alive at start");
		}
	}
	for (size_t i = 0; i < tc->ncand; i++) {
		pid_t tid = tc->candidates[i];
		int alive = 0;
		for (size_t j = 0; j < tc->nalive && !alive; j++)
			alive = tc->alive[j].tid == tid;
		if (alive || has(tc->created, tc->ncreated, tid))
			continue;
		s->sum.tc.unseen++;
		count_marker(s, COLLECT_MARK_TC_UNSEEN, "created");
	}
}

void collect_tc_tick(struct collect_session *s)
{
	if (s->tc && !s->tc->settled && collect_now_ns() >= s->tc->settle_at)
		settle(s);
}

void collect_tc_finish(struct collect_session *s)
{
	if (s->tc)
		settle(s);
}

/* ---- threads created ------------------------------------------------------ */

static void on_created(void *arg, const struct attach_raw_sample *smp)
{
	struct collect_session *s = arg;
	struct collect_tc *tc = s->tc;
	struct sym_stack st;
	/* A late joiner (ptrace): a candidate already counted unseen once
	 * settled, else it is one now (and not a candidate later). */
	if (smp->created_unseen && tc->settled && has(tc->candidates, tc->ncand, smp->created))
		return;
	if (!tc->settled && tc->ncreated < 65536) {
		pid_t *v = collect_grow(tc->created, tc->ncreated, &tc->capcreated, sizeof *v, 64);
		if (v) {
			tc->created = v;
			tc->created[tc->ncreated++] = smp->created;
		}
	}
	if (smp->created_unseen) {
		s->sum.tc.unseen++;
		count_marker(s, COLLECT_MARK_TC_UNSEEN, "created");
		return;
	}
	s->sum.tc.created++;
	struct sym_snapshot snap = { smp->tid, &smp->regs, smp->stack_addr, smp->stack, smp->stack_len,
				     smp->stack_cut, attach_read_mem };
	/* A creation is rare and each counts: a library the command loaded
	 * a moment ago (run) is read now, not up to 100 ms later. */
	sym_refresh_now(s->sym, REG(&smp->regs, PC));
	if (sym_unwind(s->sym, &snap, &st) || st.n == 0) {
		sym_stack_free(&st);
		s->sum.unwind_failures++;
		s->sum.tc.no_stack++;
		count_marker(s, COLLECT_MARK_TC_NO_STACK, "created");
		return;
	}
	if (!st.complete)
		s->sum.unwind_failures++;
	s->sum.cut_short += st.cut_short != 0;
	uint64_t locs[COLLECT_MAX_LOCS];
	size_t n = collect_stacks_locations(&s->stacks, &st, locs, COLLECT_MAX_LOCS), nf;
	struct pp_frame *f = copy_frames(&st, 0, &nf);
	count(s, locs, n, f, nf, 0, "created");
	sym_stack_free(&st);
}

/* ---- the session's side ----------------------------------------------------- */

static struct attach_engine *open_engine(struct collect_session *s, enum attach_engine_kind kind,
					 struct attach_error *ae)
{
	struct attach_engine_opts eo = {
		.clones = 1, .on_sample = on_created, .arg = s,
		.stack_size = s->o.stack_size ? s->o.stack_size
			    : kind == ATTACH_ENGINE_PERF ? PERF_STACK_DEFAULT : PTRACE_STACK_DEFAULT,
	};
	return attach_engine_open(kind, s->pid, &eo, ae);
}

int collect_tc_start(struct collect_session *s, struct collect_error *err)
{
	struct attach_error ae;
	if (!(s->tc = calloc(1, sizeof *s->tc))) {
		snprintf(err->msg, sizeof err->msg, "out of memory");
		return -1;
	}
	struct collect_tc *tc = s->tc;
	if (s->o.engine != COLLECT_ENGINE_PTRACE) {
		if (!(s->engine = open_engine(s, ATTACH_ENGINE_PERF, &ae))) {
			if (s->o.engine == COLLECT_ENGINE_PERF || ae.code == ATTACH_ERR_NOPROC) {
				snprintf(err->msg, sizeof err->msg, "%s", ae.msg);
				return -1;
			}
			snprintf(s->sum.fallback, sizeof s->sum.fallback, "%s", ae.msg);
		}
	}
	if (s->child) {
		/* run: the command at its exec, before its first instruction:
		 * one thread, the program's main thread.  With ptrace the
		 * watch is opened once the command is let go of (spawn holds
		 * it traced until then). */
		if (!(tc->alive = calloc(1, sizeof *tc->alive))) {
			snprintf(err->msg, sizeof err->msg, "out of memory");
			return -1;
		}
		tc->alive[0] = (struct tc_alive){ .tid = s->pid, .mark = COLLECT_MARK_TC_MAIN };
		tc->nalive = 1;
		tc->deferred = !s->engine;
		tc->settle_at = collect_now_ns() + SETTLE_NS;
		return 0;
	}
	if (read_alive(s, err))
		return -1;
	if (!s->engine && !(s->engine = open_engine(s, ATTACH_ENGINE_PTRACE, &ae))) {
		snprintf(err->msg, sizeof err->msg, "%s", ae.msg);
		return -1;
	}
	list_candidates(s);
	tc->settle_at = collect_now_ns() + SETTLE_NS;
	return 0;
}

int collect_tc_released(struct collect_session *s, struct collect_error *err)
{
	struct attach_error ae;
	struct collect_tc *tc = s->tc;
	if (!tc || !tc->deferred)
		return 0;
	if (!(s->engine = open_engine(s, ATTACH_ENGINE_PTRACE, &ae))) {
		snprintf(err->msg, sizeof err->msg, "%s", ae.msg);
		return -1;
	}
	s->sum.engine = attach_engine_name(s->engine);
	tc->deferred = 0;
	list_candidates(s);
	tc->settle_at = collect_now_ns() + SETTLE_NS;
	return 0;
}

void collect_tc_free(struct collect_session *s)
{
	struct collect_tc *tc = s->tc;
	if (!tc)
		return;
	for (size_t i = 0; i < tc->nst; i++) {
		free(tc->st[i].locs);
		free(tc->st[i].frames);
	}
	for (size_t i = 0; i < tc->nalive; i++) {
		free(tc->alive[i].locs);
		free(tc->alive[i].frames);
	}
	if (tc->has_snap)
		attach_snapshot_free(&tc->snap);
	free(tc->st);
	free(tc->alive);
	free(tc->candidates);
	free(tc->created);
	free(tc);
	s->tc = NULL;
}

int collect_threadcreate_text(struct collect_session *s, FILE *out)
{
	struct collect_tc *tc = s->tc;
	size_t n = tc ? tc->nst : 0;
	struct pp_count_stack *v = calloc(n ? n : 1, sizeof *v);
	if (!v)
		return -1;
	for (size_t i = 0; i < n; i++)
		v[i] = (struct pp_count_stack){ tc->st[i].frames, tc->st[i].frames ? tc->st[i].nframes : 0,
						tc->st[i].count, tc->st[i].callers_only, { 0, NULL, 0 } };
	int r = pp_write_count_profile(out, "threadcreate", v, n);
	free(v);
	return r;
}
