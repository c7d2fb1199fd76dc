/* dump.c — one thread dump of a live process, as data: what
 * `pprofc dump-threads` prints and what `serve` answers for
 * goroutine?debug=0|1|2 (see collect.h, "thread dumps").
 *
 * Reads top to bottom as the work happens:
 *   1. start opening the symbolizer sessions (collect_unwinders_open):
 *      none of that touches the target, and it overlaps step 2;
 *   2. take one snapshot of every thread (attach/: the only part during
 *      which the target is stopped);
 *   3. with the target running again, unwind and symbolize each stack,
 *      classify each wait and find what it waits on (attach/wait.h), and
 *      look for mutex deadlocks;
 *   4. for a Go program, its goroutines (goroutines.c): read right after
 *      the symbolizer knows the runtime's layouts, unwound with the
 *      threads, a running one given its thread's stack;
 *   5. hand out the result as pprofout's plain struct pp_dump, or as a
 *      count profile: a Go program's goroutines (goroutine/count, as Go's
 *      goroutine profile), any other's threads (threads/count); and the
 *      debug=1 text, which for a Go program starts with the goroutines'.
 */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../pprofout/legacy.h"
#include "goroutines.h"
#include "internal.h"

/* Everything one thread's entry needs, owned here. */
struct entry {
	struct attach_thread *t;
	struct attach_wait wait;
	struct sym_stack stack;
	struct pp_frame *frames;
	char reason[48];
	char detail[320];
	char fd_target[512];
	char fd_desc[256];
	char stack_error[256];
};

struct collect_dump {
	struct collect_dump_opts o;
	struct attach_snapshot snap;
	int taken;                      /* snap holds a snapshot */
	struct collect_unwinders *u;
	struct sym_session *sym;        /* the first of u's sessions, or NULL */
	char sym_err[256];
	struct entry *e;
	struct pp_thread *pt;
	pid_t *tids, *waits, *cycles;
	size_t *lens;
	const char **argv;
	struct pp_dump view;
	struct collect_go *go;          /* a Go program's goroutines, or NULL */
	int resolved;
};

static void copy_frames(struct entry *e)
{
	e->frames = calloc(e->stack.n ? e->stack.n : 1, sizeof *e->frames);
	if (!e->frames)
		return;
	for (size_t i = 0; i < e->stack.n; i++) {
		const struct sym_frame *s = &e->stack.frames[i];
		e->frames[i] = (struct pp_frame){
			.pc = s->pc, .function = s->function, .file = s->file, .line = s->line,
			.inlined = s->inlined, .has_offset = s->has_offset,
			.func_offset = s->func_offset, .module = s->module,
			.module_offset = s->module_offset,
		};
	}
}

static void unwind(struct sym_session *sym, struct sym_memo *memo, const char *sym_err,
		   struct entry *e)
{
	struct attach_thread *t = e->t;
	if (!t->taken) {
		snprintf(e->stack_error, sizeof e->stack_error, "%s",
			 t->not_taken[0] ? t->not_taken : "the thread was not stopped");
		return;
	}
	if (!sym) {
		snprintf(e->stack_error, sizeof e->stack_error, "%s", sym_err);
		return;
	}
	struct sym_snapshot snap = { t->tid, &t->regs, t->stack_addr, t->stack, t->stack_len, 0,
				     attach_read_mem };
	if (sym_unwind_memo(sym, memo, &snap, &e->stack)) {
		snprintf(e->stack_error, sizeof e->stack_error, "out of memory while unwinding");
		return;
	}
	if (!e->stack.complete)
		snprintf(e->stack_error, sizeof e->stack_error, "%s", e->stack.stop_reason);
	copy_frames(e);
}

/* collect_unwinders_run()'s job i: entry i, with that thread's session. */
static void unwind_one(struct sym_session *sym, struct sym_memo *memo, size_t i, void *entries)
{
	unwind(sym, memo, "", &((struct entry *)entries)[i]);
}

/* collect_unwinders_run()'s job i: goroutine i. */
static void unwind_goroutine(struct sym_session *sym, struct sym_memo *memo, size_t i, void *go)
{
	(void)memo;             /* Go's stacks end at Go's roots: never memoized */
	collect_go_unwind(go, sym, i);
}

/* Each thread's goroutine, and the running goroutines' stacks. */
static int finish_goroutines(struct collect_dump *d)
{
	size_t n = d->snap.n;
	struct collect_go_thread *t = calloc(n ? n : 1, sizeof *t);
	int64_t *goids = calloc(n ? n : 1, sizeof *goids);
	int r = -1;
	if (t && goids) {
		for (size_t i = 0; i < n; i++) {
			const struct attach_thread *at = d->e[i].t;
			t[i] = (struct collect_go_thread){ at->tid, at->taken, REG(&at->regs, SP),
							   d->e[i].frames ? &d->e[i].stack : NULL };
		}
		r = collect_go_finish(d->go, d->sym, t, n, goids);
		for (size_t i = 0; r == 0 && i < n; i++)
			d->pt[i].goroutine = goids[i];
	}
	free(t);
	free(goids);
	return r;
}

/* poll(2): the descriptors are in the target's memory. */
static void describe_poll(pid_t pid, struct entry *e)
{
	struct { int fd; short events, revents; } p[8];
	unsigned n = e->wait.poll_nfds < 8 ? e->wait.poll_nfds : 8;
	if (attach_read_mem(pid, e->wait.poll_fds, p, n * sizeof p[0]) != (ssize_t)(n * sizeof p[0]))
		return;
	if (e->wait.poll_nfds == 1) {
		e->wait.fd = p[0].fd;
		return;
	}
	size_t len = (size_t)snprintf(e->detail, sizeof e->detail, "poll on fds");
	for (unsigned i = 0; i < n && len < sizeof e->detail; i++)
		len += (size_t)snprintf(e->detail + len, sizeof e->detail - len, "%s %d", i ? "," : "", p[i].fd);
	if (e->wait.poll_nfds > n && len < sizeof e->detail)
		snprintf(e->detail + len, sizeof e->detail - len, ", ...");
}

static void classify(pid_t pid, struct entry *e, struct attach_fdcache *fc)
{
	struct attach_thread *t = e->t;
	collect_wait_of(t->has_stat ? t->stat.state : '?', &t->sc, &e->stack, &e->wait);
	if (e->wait.reason == ATTACH_R_MUTEX)
		e->wait.owner = attach_mutex_owner(pid, e->wait.futex);
	attach_reason_text(&e->wait, e->reason, sizeof e->reason);

	if (e->wait.poll_nfds)
		describe_poll(pid, e);
	if (e->wait.reason == ATTACH_R_MUTEX && e->wait.owner)
		snprintf(e->detail, sizeof e->detail, "0x%" PRIx64 " held by thread %d", e->wait.futex,
			 (int)e->wait.owner);
	else if (e->wait.reason == ATTACH_R_MUTEX || e->wait.reason == ATTACH_R_FUTEX ||
		 e->wait.reason == ATTACH_R_COND)
		snprintf(e->detail, sizeof e->detail, "0x%" PRIx64, e->wait.futex);
	else if (e->wait.reason == ATTACH_R_IO && e->wait.fd >= 0) {
		attach_describe_fd(fc, e->wait.fd, e->fd_target, sizeof e->fd_target, e->fd_desc,
				   sizeof e->fd_desc);
		snprintf(e->detail, sizeof e->detail, "fd %d: %s", e->wait.fd, e->fd_desc);
	} else if (e->wait.reason == ATTACH_R_DISK && t->wchan[0])
		snprintf(e->detail, sizeof e->detail, "%s", t->wchan);
}

/* How long the thread has not run: the scheduler clock now (our own
 * exec_start, per CPU, as each keeps its own) minus the thread's; -1 when
 * unknown (a running thread, or no sched file). */
static double wait_seconds(const struct attach_snapshot *s, const struct entry *e)
{
	const struct attach_thread *t = e->t;
	int cpu = t->has_stat ? t->stat.processor : -1;
	double now = cpu >= 0 && (size_t)cpu < s->ncpu && s->now_cpu[cpu] >= 0 ? s->now_cpu[cpu] : s->now_ms;
	if (!(s->has_now || now > 0) || !t->has_sched || e->wait.reason == ATTACH_R_RUNNING)
		return -1;
	double d = (now - t->sched.exec_start_ms) / 1000.0;
	/* A thread that ran a moment ago on another CPU can look a little in
	 * the future. */
	return d > -1.0 ? (d > 0 ? d : 0) : -1;
}

static void fill_thread(const struct attach_snapshot *s, struct entry *e, struct pp_thread *p)
{
	struct attach_thread *t = e->t;
	memset(p, 0, sizeof *p);
	p->tid = t->tid;
	p->name = t->has_stat ? t->stat.comm : "";
	p->state = t->has_stat ? t->stat.state : '?';
	p->reason = e->reason;
	p->detail = e->detail[0] ? e->detail : NULL;
	p->wait_seconds = wait_seconds(s, e);
	p->syscall = e->wait.syscall[0] ? e->wait.syscall : NULL;
	p->wchan = t->wchan[0] ? t->wchan : NULL;
	if (e->wait.reason == ATTACH_R_MUTEX)
		p->blocked = (struct pp_blocked){ .kind = PP_BLOCK_MUTEX, .address = e->wait.futex,
						  .owner = e->wait.owner };
	else if (e->wait.futex)
		p->blocked = (struct pp_blocked){ .kind = PP_BLOCK_FUTEX, .address = e->wait.futex };
	else if (e->wait.reason == ATTACH_R_IO && e->wait.fd >= 0)
		p->blocked = (struct pp_blocked){ .kind = PP_BLOCK_FD, .fd = e->wait.fd,
						  .target = e->fd_target, .description = e->fd_desc };
	p->frames = e->frames;
	p->nframes = e->frames ? e->stack.n : 0;
	p->stack_taken = t->taken;
	p->complete = t->taken && e->stack.complete && e->frames;
	p->stack_error = e->stack_error[0] ? e->stack_error : NULL;
}

/* The main thread (arg: its tid) first, then by tid. */
static int cmp_thread(const void *a, const void *b, void *arg)
{
	const struct pp_thread *x = a, *y = b;
	pid_t main_tid = *(const pid_t *)arg;
	if ((x->tid == main_tid) != (y->tid == main_tid))
		return x->tid == main_tid ? -1 : 1;
	return (x->tid > y->tid) - (x->tid < y->tid);
}

/* argv of the target, split from /proc/PID/cmdline. */
static const char **split_cmdline(const struct attach_snapshot *s, size_t *argc)
{
	size_t n = 0;
	for (size_t i = 0; i < s->cmdline_len; i++)
		n += s->cmdline[i] == 0;
	const char **argv = calloc(n + 1, sizeof *argv);
	*argc = 0;
	if (!argv || !s->cmdline)
		return argv;
	for (size_t i = 0; i < s->cmdline_len; i += strlen(s->cmdline + i) + 1)
		if (*argc < n)
			argv[(*argc)++] = s->cmdline + i;
	return argv;
}

struct collect_dump *collect_dump_take(pid_t tgid, const struct collect_dump_opts *o,
				       struct collect_error *err)
{
	struct collect_dump *d = calloc(1, sizeof *d);
	memset(err, 0, sizeof *err);
	if (!d) {
		snprintf(err->msg, sizeof err->msg, "out of memory");
		return NULL;
	}
	d->o = *o;
	struct attach_opts ao = { .stack_limit = o->stack_limit, .stop_timeout_ms = o->stop_timeout_ms,
				  .cancel = o->cancel, .stop_all = o->stop_all, .all_wchan = o->all_wchan };
	struct attach_error ae;
	/* The symbolizer loads its modules meanwhile: none of that touches
	 * the target, and it overlaps the snapshot's /proc reads. */
	d->u = collect_unwinders_open(tgid, attach_count_threads(tgid));
	if (attach_snapshot_take(tgid, &ao, &d->snap, &ae)) {
		snprintf(err->msg, sizeof err->msg, "%s", ae.msg);
		collect_dump_free(d);
		return NULL;
	}
	d->taken = 1;
	return d;
}

const struct attach_snapshot *collect_dump_snapshot(const struct collect_dump *d)
{
	return &d->snap;
}

static int alloc_tables(struct collect_dump *d, size_t n)
{
	size_t k = n ? n : 1;
	d->e = calloc(k, sizeof *d->e);
	d->pt = calloc(k, sizeof *d->pt);
	d->tids = calloc(k, sizeof *d->tids);
	d->waits = calloc(k, sizeof *d->waits);
	d->cycles = calloc(k, sizeof *d->cycles);
	d->lens = calloc(k, sizeof *d->lens);
	return d->e && d->pt && d->tids && d->waits && d->cycles && d->lens ? 0 : -1;
}

int collect_dump_resolve(struct collect_dump *d, struct collect_error *err)
{
	struct attach_snapshot *s = &d->snap;
	volatile sig_atomic_t *cancel = d->o.cancel;
	struct attach_fdcache fc = { .pid = s->pid };
	memset(err, 0, sizeof *err);
	assert(d->taken && !d->resolved);
	if (s->cancelled) {
		snprintf(err->msg, sizeof err->msg, "interrupted: every thread was resumed and detached");
		return -1;
	}
	if (alloc_tables(d, s->n)) {
		snprintf(err->msg, sizeof err->msg, "out of memory");
		return -1;
	}
	d->sym = collect_unwinders_sym(d->u, d->sym_err, sizeof d->sym_err);
	int nomem = 0;
	if (d->sym && d->o.goroutines)
		d->go = collect_go_read(s->pid, d->sym, d->o.stack_limit, &nomem);
	if (nomem) {
		snprintf(err->msg, sizeof err->msg, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < s->n; i++)
		d->e[i].t = &s->threads[i];
	if (d->sym)
		collect_unwinders_run(d->u, s->n, unwind_one, d->e, cancel);
	if (d->go)
		collect_unwinders_run(d->u, collect_go_count(d->go), unwind_goroutine, d->go, cancel);
	for (size_t i = 0; i < s->n && !(cancel && *cancel); i++) {
		if (!d->sym)
			unwind(NULL, NULL, d->sym_err, &d->e[i]);
		classify(s->pid, &d->e[i], &fc);
		fill_thread(s, &d->e[i], &d->pt[i]);
		d->tids[i] = d->pt[i].tid;
		d->waits[i] = d->e[i].wait.reason == ATTACH_R_MUTEX ? d->e[i].wait.owner : 0;
	}
	attach_fdcache_free(&fc);
	if (d->go && !(cancel && *cancel) && finish_goroutines(d)) {
		snprintf(err->msg, sizeof err->msg, "out of memory");
		return -1;
	}
	if (cancel && *cancel) {
		snprintf(err->msg, sizeof err->msg, "interrupted: the target was already resumed and detached");
		return -1;
	}
	size_t ncycles = attach_find_deadlocks(d->tids, d->waits, s->n, d->cycles, d->lens, s->n);
	pid_t main_tid = s->pid;
	qsort_r(d->pt, s->n, sizeof *d->pt, cmp_thread, &main_tid);
	size_t argc;
	d->argv = split_cmdline(s, &argc);
	d->view = (struct pp_dump){
		.pid = s->pid, .exe = s->exe, .argv = d->argv, .argc = argc, .time = time(NULL),
		.threads = d->pt, .n = s->n, .cycles = d->cycles, .cycle_lens = d->lens, .ncycles = ncycles,
		.go = collect_go_view(d->go),
	};
	d->resolved = 1;
	return 0;
}

const struct pp_dump *collect_dump_view(const struct collect_dump *d)
{
	return d->resolved ? &d->view : NULL;
}

/* One sample per thread: threads/count, labelled with its name, tid and
 * wait reason, so `go tool pprof -tagfocus=state=IO` splits by reason. */
static int add_thread_samples(struct collect_stacks *c, const struct entry *e, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int64_t one = 1;
		struct pp_label labels[3] = {
			{ "thread", e[i].t->has_stat ? e[i].t->stat.comm : "?", 0, NULL },
			{ "tid", NULL, e[i].t->tid, NULL },
			{ "state", e[i].reason, 0, NULL },
		};
		if (collect_stacks_add(c, &e[i].stack, &one, labels, 3))
			return -1;
	}
	return 0;
}

int collect_dump_goroutines(const struct collect_dump *d)
{
	const struct pp_goroutines *v = collect_go_view(d->go);
	return d->resolved && v && !v->note;
}

/* At most this many of a goroutine's pprof labels go on its sample
 * (those first by key), leaving room under PP_MAX_LABELS for the labels
 * a profile of several processes adds. */
#define GO_SAMPLE_LABELS (PP_MAX_LABELS - 4)

/* One sample per distinct goroutine stack and label set, its count the
 * value, the goroutine's pprof labels as string labels: Go's goroutine
 * profile (printCountProfile), which leaves runtime.goexit out. */
static int add_goroutine_samples(struct collect_stacks *c, const struct collect_go *go, size_t n)
{
	const struct pp_goroutines *view = collect_go_view(go);
	for (size_t i = 0; i < n; i++) {
		struct pp_label labels[GO_SAMPLE_LABELS];
		const struct pp_go_labels *gl = &view->g[i].labels;
		size_t nlabels = gl->n < GO_SAMPLE_LABELS ? gl->n : GO_SAMPLE_LABELS;
		for (size_t k = 0; k < nlabels; k++)
			labels[k] = (struct pp_label){ gl->v[k].key, gl->v[k].value, 0, NULL };
		uint64_t locs[COLLECT_MAX_LOCS];
		size_t nl = 0;
		int64_t one = 1;
		struct sym_stack st;
		int resumed;
		if (collect_go_record(go, i, &st, &resumed) == 0) {
			if (st.n && st.frames[st.n - 1].function &&
			    strcmp(st.frames[st.n - 1].function, "runtime.goexit") == 0)
				st.n--;
			nl = resumed ? collect_stacks_locations_resumed(c, &st, locs, COLLECT_MAX_LOCS)
				     : collect_stacks_locations(c, &st, locs, COLLECT_MAX_LOCS);
		} else if ((locs[0] = collect_stacks_marker(c, COLLECT_MARK_GO_NO_STACK))) {
			nl = 1;
		}
		if (pp_profile_add(c->prof, locs, nl, &one, labels, nlabels))
			return -1;
	}
	return 0;
}

int collect_dump_profile(struct collect_dump *d, const char *type, struct collect_stacks *c,
			 struct collect_error *err)
{
	struct timespec now;
	int go = collect_dump_goroutines(d);
	memset(err, 0, sizeof *err);
	assert(d->resolved);
	clock_gettime(CLOCK_REALTIME, &now);
	if (go)
		type = "goroutine";
	struct pp_profile_spec spec = {
		.sample_types = { { type, "count" } }, .n_sample_types = 1,
		.period_type = { type, "count" }, .period = 1,
		.time_nanos = (int64_t)now.tv_sec * 1000000000LL + now.tv_nsec,
	};
	if (!d->sym) {
		snprintf(err->msg, sizeof err->msg, "cannot write the profile: %s", d->sym_err);
		memset(c, 0, sizeof *c);
		return -1;
	}
	if (collect_stacks_init(c, d->snap.pid, d->sym, &spec) ||
	    (go ? add_goroutine_samples(c, d->go, collect_go_view(d->go)->n)
		: add_thread_samples(c, d->e, d->snap.n))) {
		snprintf(err->msg, sizeof err->msg, "out of memory");
		return -1;
	}
	return 0;
}

/* One frame of a goroutine's record as Go's runtime stores it (saveg's
 * pc buffer): the pc its line was read at, + 1 (a return address as it
 * was, the inline tree's mark of an inlined call + 1), with its offset
 * from the start of the function holding it (runtime.Frame's PC - Entry). */
static struct pp_frame go_record_frame(const struct sym_frame *f, const struct sym_frame *phys)
{
	uint64_t pc = f->frame_pc ? f->frame_pc : f->lookup_pc;
	uint64_t start = phys->pc - phys->func_offset;
	return (struct pp_frame){
		.pc = pc + 1, .function = f->function, .file = f->file, .line = f->line,
		.inlined = f->inlined, .has_offset = phys->has_offset && start <= pc,
		.func_offset = pc - start, .module = f->module, .module_offset = f->module_offset,
	};
}

/* Each goroutine of the view as Go's goroutine profile records it, for
 * pprofout's debug=1 text (*v and each frames array to free). */
static int go_count_stacks(const struct collect_go *go, struct pp_count_stack **out, size_t *n)
{
	*n = collect_go_view(go)->n;
	struct pp_count_stack *v = *out = calloc(*n ? *n : 1, sizeof *v);
	if (!v)
		return -1;
	for (size_t i = 0; i < *n; i++) {
		struct sym_stack st;
		int resumed;
		v[i].count = 1;
		v[i].labels = collect_go_view(go)->g[i].labels;
		if (collect_go_record(go, i, &st, &resumed) || !st.n)
			continue;
		struct pp_frame *f = calloc(st.n, sizeof *f);
		if (!f)
			return -1;
		for (size_t k = 0, phys = 0; k < st.n; k++) {
			if (phys < k)
				phys = k;
			while (phys + 1 < st.n && st.frames[phys].inlined)
				phys++;
			f[k] = go_record_frame(&st.frames[k], &st.frames[phys]);
		}
		v[i].frames = f;
		v[i].nframes = st.n;
	}
	return 0;
}

int collect_dump_write_debug1(struct collect_dump *d, FILE *out)
{
	const struct pp_dump *view = collect_dump_view(d);
	if (collect_dump_goroutines(d)) {
		struct pp_count_stack *v = NULL;
		size_t n = 0;
		int r = go_count_stacks(d->go, &v, &n) ? -1 : pp_write_legacy_count(out, "goroutine", v, n);
		for (size_t i = 0; v && i < n; i++)
			free((void *)v[i].frames);
		free(v);
		if (r)
			return -1;
	}
	return pp_write_debug1(out, view);
}

struct sym_memo_stats collect_dump_memo_stats(const struct collect_dump *d)
{
	return collect_unwinders_memo_stats(d->u);
}

void collect_dump_go_stats(const struct collect_dump *d, struct collect_go_stats *st)
{
	collect_go_stats(d->go, st);
}

size_t collect_dump_release(struct collect_dump *d, uint64_t wait_ns)
{
	/* The symbolizer's threads first: they may hold the target's files. */
	collect_unwinders_close(d->u);
	d->u = NULL;
	d->sym = NULL;
	return d->taken ? attach_snapshot_release(&d->snap, wait_ns) : 0;
}

void collect_dump_free(struct collect_dump *d)
{
	if (!d)
		return;
	collect_unwinders_close(d->u);
	for (size_t i = 0; d->e && i < d->snap.n; i++) {
		sym_stack_free(&d->e[i].stack);
		free(d->e[i].frames);
	}
	collect_go_free(d->go);
	free(d->e);
	free(d->pt);
	free(d->tids);
	free(d->waits);
	free(d->cycles);
	free(d->lens);
	free(d->argv);
	/* Also after a failed take: it fills the snapshot as it goes. */
	attach_snapshot_free(&d->snap);
	free(d);
}
