/* trace.c — the trace kind: what each thread did over the window, as a
 * timeline (Chrome trace-event JSON, pprofout/trace.h).
 *
 * Two sources, kept as events and put in order at the end:
 *   - the tick loop (the ptrace engine in wall mode) visits every thread
 *     at every tick: a blocked one is read without stopping it (its call,
 *     its stack, since when it waits), which gives each wait its reason
 *     and detail (the mutex and its holder, the fd and what it is...);
 *   - with perf_event, the CPU samples give the stacks of running
 *     threads, and PERF_RECORD_SWITCH (attach/engine_perf.c says why not
 *     the sched_switch tracepoint) the exact times each thread came onto
 *     and left a CPU, preempted or blocked; FORK and EXIT records its
 *     birth and end.
 * A thread with switch records gets exact slices: running from each
 * switch in to the next switch out, waiting (or runnable, if preempted)
 * from there to the next switch in; a wait takes its reason from a tick
 * that saw it, else it is named for what is missing.  Without them (the
 * ptrace engine, or a thread that never switched) the slices come from
 * the ticks: at each, the CPU time since the last one (schedstat) is put
 * as running just before the wait began (sched's exec_start) or before
 * the tick (before it left the CPU, for a thread the tick found preempted:
 * its stop says how long it had waited for one, attach/engine.h's
 * off_cpu_ns), and the rest of the interval to the wait it was in:
 * accurate to a tick, and marked as inferred.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../pprofout/trace.h"
#include "internal.h"

/* Events kept at most (40 bytes each): a busy process switching 100,000
 * times a second fills it in 20 s.  Beyond, events are counted, not kept. */
#define TRACE_MAX_EVENTS (4u << 20)

/* In the order events of the same instant are taken. */
enum ev_type { EV_BORN, EV_FOUND, EV_IN, EV_CPU, EV_RUN, EV_WAIT, EV_REPEAT, EV_PREEMPT, EV_OUT,
	       EV_GONE, EV_EXIT };

struct trace_ev {
	uint64_t t;                     /* CLOCK_MONOTONIC ns */
	uint64_t a;                     /* CPU: weight; ticks: CPU ns since the last */
	uint64_t b;                     /* WAIT: when the wait began (0: unknown);
					 * RUN: 1 + how long before t it had been
					 * waiting for a CPU (0: unknown) */
	pid_t tid;
	uint32_t ref;                   /* CPU, RUN: stack + 1; WAIT, REPEAT: wait + 1 */
	uint32_t runq_us;               /* ticks: time waiting for a CPU since the last */
	uint8_t type;
};

/* One wait as a tick read it. */
struct trace_wait {
	char reason[48];
	char detail[320];
	char syscall[32];
	pid_t holder;                   /* mutex wait: the holder's tid, 0 unknown */
	uint32_t stack;                 /* + 1; 0: not unwound */
};

struct trace_stack {
	uint64_t hash;
	uint64_t *locs;
	size_t n;
};

struct trace_thread {
	pid_t tid;                      /* 0: free slot */
	char comm[64];
	uint32_t last_wait;             /* + 1: what its repeats repeat */
};

struct collect_trace {
	struct trace_ev *ev;
	size_t nev, capev;
	struct trace_wait *w;
	size_t nw, capw;
	struct trace_stack *st;
	size_t nst, capst;
	size_t *stix, capstix;          /* open addressing over st: index + 1 */
	struct trace_thread *th;
	size_t nth, capth;              /* open addressing by tid */
	struct attach_fdcache fdc;
};

/* ---- tables --------------------------------------------------------------- */

static struct trace_thread *thread_of(struct collect_trace *t, pid_t tid)
{
	if ((t->nth + 1) * 2 > t->capth) {
		size_t cap = t->capth ? t->capth * 2 : 64;
		struct trace_thread *v = calloc(cap, sizeof *v);
		if (!v)
			return NULL;
		for (size_t i = 0; i < t->capth; i++) {
			if (!t->th[i].tid)
				continue;
			size_t j = ((size_t)t->th[i].tid * 2654435761u) & (cap - 1);
			while (v[j].tid)
				j = (j + 1) & (cap - 1);
			v[j] = t->th[i];
		}
		free(t->th);
		t->th = v;
		t->capth = cap;
	}
	size_t j = ((size_t)tid * 2654435761u) & (t->capth - 1);
	while (t->th[j].tid && t->th[j].tid != tid)
		j = (j + 1) & (t->capth - 1);
	if (!t->th[j].tid) {
		t->th[j].tid = tid;
		t->nth++;
	}
	return &t->th[j];
}

/* The stack's index + 1 in the table (added if new), 0 if out of memory. */
static uint32_t intern_stack(struct collect_trace *t, const uint64_t *locs, size_t n)
{
	uint64_t h = collect_hash_locs(locs, n);
	if ((t->nst + 1) * 2 > t->capstix) {
		size_t cap = t->capstix ? t->capstix * 2 : 256;
		size_t *ix = calloc(cap, sizeof *ix);
		if (!ix)
			return 0;
		for (size_t i = 0; i < t->nst; i++) {
			size_t j = (size_t)t->st[i].hash & (cap - 1);
			while (ix[j])
				j = (j + 1) & (cap - 1);
			ix[j] = i + 1;
		}
		free(t->stix);
		t->stix = ix;
		t->capstix = cap;
	}
	size_t j = (size_t)h & (t->capstix - 1);
	for (; t->stix[j]; j = (j + 1) & (t->capstix - 1)) {
		const struct trace_stack *s = &t->st[t->stix[j] - 1];
		if (s->hash == h && s->n == n && memcmp(s->locs, locs, n * sizeof *locs) == 0)
			return (uint32_t)t->stix[j];
	}
	struct trace_stack *st = collect_grow(t->st, t->nst, &t->capst, sizeof *st, 256);
	if (!st)
		return 0;
	t->st = st;
	uint64_t *copy = collect_copy_locs(locs, n);
	if (!copy)
		return 0;
	t->st[t->nst] = (struct trace_stack){ h, copy, n };
	t->stix[j] = ++t->nst;
	return (uint32_t)t->nst;
}

static struct trace_ev *add_event(struct collect_session *s, enum ev_type type, pid_t tid,
				   uint64_t time, uint64_t a, uint64_t b, uint32_t ref)
{
	struct collect_trace *t = s->trace;
	struct trace_ev *ev = t->nev < TRACE_MAX_EVENTS ?
			      collect_grow(t->ev, t->nev, &t->capev, sizeof *ev, 256) : NULL;
	if (!ev) {
		s->sum.trace_dropped++;
		return NULL;
	}
	t->ev = ev;
	t->ev[t->nev] = (struct trace_ev){ .t = time, .a = a, .b = b, .tid = tid, .ref = ref,
					   .type = (uint8_t)type };
	s->sum.trace_events++;
	return &t->ev[t->nev++];
}

/* A tick's event, with the thread's time waiting for a CPU since the last. */
static void add_tick(struct collect_session *s, enum ev_type type, const struct attach_raw_sample *smp,
		     uint64_t b, uint32_t ref)
{
	struct trace_ev *e = add_event(s, type, smp->tid, smp->time_ns, smp->cpu_ns, b, ref);
	if (e)
		e->runq_us = smp->runq_ns / 1000 > UINT32_MAX ? UINT32_MAX : (uint32_t)(smp->runq_ns / 1000);
}

/* The sample unwound into the stack table: its index + 1, 0 if not. */
static uint32_t stack_of(struct collect_session *s, const struct attach_raw_sample *smp,
			 struct sym_stack *st, int *unwound)
{
	uint64_t locs[COLLECT_MAX_LOCS];
	*unwound = collect_unwind_sample(s, smp, st) == 0;
	if (!*unwound)
		return 0;
	size_t n = collect_stacks_locations(&s->stacks, st, locs, COLLECT_MAX_LOCS);
	return intern_stack(s->trace, locs, n);
}

/* ---- the engines' callbacks ---------------------------------------------- */

/* A wait's reason and detail, as dump-threads words them (collect/dump.c). */
static void describe_wait(struct collect_session *s, const struct attach_raw_sample *smp,
			  const struct sym_stack *st, struct trace_wait *w)
{
	struct attach_wait aw;
	struct sym_stack none = { 0 };
	char target[512], desc[256];
	collect_wait_of(smp->state, &smp->sc, st ? st : &none, &aw);
	attach_reason_text(&aw, w->reason, sizeof w->reason);
	snprintf(w->syscall, sizeof w->syscall, "%s", aw.syscall);
	if (aw.reason == ATTACH_R_MUTEX && (w->holder = attach_mutex_owner(s->pid, aw.futex)))
		snprintf(w->detail, sizeof w->detail, "0x%" PRIx64 " held by thread %d", aw.futex,
			 (int)w->holder);
	else if (aw.reason == ATTACH_R_MUTEX || aw.reason == ATTACH_R_FUTEX || aw.reason == ATTACH_R_COND)
		snprintf(w->detail, sizeof w->detail, "0x%" PRIx64, aw.futex);
	else if (aw.reason == ATTACH_R_IO && aw.fd >= 0) {
		attach_describe_fd(&s->trace->fdc, aw.fd, target, sizeof target, desc, sizeof desc);
		snprintf(w->detail, sizeof w->detail, "fd %d: %s", aw.fd, desc);
	}
}

void collect_trace_on_tick(void *arg, const struct attach_raw_sample *smp)
{
	struct collect_session *s = arg;
	struct collect_trace *t = s->trace;
	struct trace_thread *th = thread_of(t, smp->tid);
	struct sym_stack st;
	int unwound = 0;
	if (!th) {
		s->sum.dropped_nomem++;
		return;
	}
	snprintf(th->comm, sizeof th->comm, "%s", smp->comm);
	if (smp->use_cpu_stack || (!smp->repeat && smp->state == 'R')) {
		/* Running: its stack is the perf engine's (use_cpu_stack), or
		 * the one the ptrace engine stopped it for.  Preempted (off
		 * CPU for off ns at the tick), the stack is where it left the
		 * CPU: drawn at the end of its running, as a CPU sample. */
		uint32_t ref = smp->use_cpu_stack ? 0 : stack_of(s, smp, &st, &unwound);
		uint64_t off = smp->off_cpu_ns > 0 ? (uint64_t)smp->off_cpu_ns : 0;
		if (unwound)
			sym_stack_free(&st);
		if (ref && off && off < smp->time_ns) {
			add_event(s, EV_CPU, smp->tid, smp->time_ns - off, smp->cpu_ns, 0, ref);
			ref = 0;
		}
		add_tick(s, EV_RUN, smp, smp->off_cpu_ns >= 0 ? off + 1 : 0, ref);
		th->last_wait = 0;
		return;
	}
	if (smp->repeat) {
		if (th->last_wait)
			add_tick(s, EV_REPEAT, smp, 0, th->last_wait);
		return;
	}
	struct trace_wait *ws = collect_grow(t->w, t->nw, &t->capw, sizeof *ws, 256);
	if (!ws) {
		s->sum.dropped_nomem++;
		return;
	}
	t->w = ws;
	struct trace_wait *w = &t->w[t->nw];
	memset(w, 0, sizeof *w);
	w->stack = stack_of(s, smp, &st, &unwound);
	describe_wait(s, smp, unwound ? &st : NULL, w);
	if (unwound)
		sym_stack_free(&st);
	/* Read again (it woke and slept again, or ran a moment): the same
	 * wait if nothing about it changed. */
	const struct trace_wait *l = th->last_wait ? &t->w[th->last_wait - 1] : NULL;
	if (!l || l->stack != w->stack || strcmp(l->reason, w->reason) || strcmp(l->detail, w->detail))
		th->last_wait = (uint32_t)++t->nw;
	uint64_t began = smp->blocked_ms >= 0 && smp->time_ns > (uint64_t)(smp->blocked_ms * 1e6)
				 ? smp->time_ns - (uint64_t)(smp->blocked_ms * 1e6) : 0;
	add_tick(s, EV_WAIT, smp, began, th->last_wait);
}

void collect_trace_on_cpu(void *arg, const struct attach_raw_sample *smp)
{
	struct collect_session *s = arg;
	struct sym_stack st;
	int unwound;
	uint32_t ref = stack_of(s, smp, &st, &unwound);
	if (unwound)
		sym_stack_free(&st);
	struct trace_thread *th = thread_of(s->trace, smp->tid);
	if (th && !th->comm[0])
		snprintf(th->comm, sizeof th->comm, "%s", smp->comm);
	if (ref)
		add_event(s, EV_CPU, smp->tid, smp->time_ns, smp->weight_ns, 0, ref);
}

void collect_trace_on_sched(void *arg, const struct attach_sched_event *ev)
{
	static const enum ev_type types[] = { [ATTACH_SCHED_IN] = EV_IN, [ATTACH_SCHED_OUT] = EV_OUT,
					      [ATTACH_SCHED_PREEMPTED] = EV_PREEMPT,
					      [ATTACH_SCHED_BORN] = EV_BORN,
					      [ATTACH_SCHED_EXITED] = EV_EXIT };
	add_event(arg, types[ev->kind], ev->tid, ev->time_ns, 0, 0, 0);
}

void collect_trace_on_gone(void *arg, pid_t tid)
{
	add_event(arg, EV_GONE, tid, collect_now_ns(), 0, 0, 0);
}

/* ptrace engine: a thread born in the window, as a tick found it. */
void collect_trace_on_new(void *arg, pid_t tid)
{
	add_event(arg, EV_FOUND, tid, collect_now_ns(), 0, 0, 0);
}

int collect_trace_open(struct collect_session *s)
{
	s->trace = calloc(1, sizeof *s->trace);
	if (!s->trace)
		return -1;
	s->trace->fdc.pid = s->pid;
	return 0;
}

void collect_trace_free(struct collect_session *s)
{
	struct collect_trace *t = s->trace;
	if (!t)
		return;
	for (size_t i = 0; i < t->nst; i++)
		free(t->st[i].locs);
	free(t->st);
	free(t->stix);
	free(t->ev);
	free(t->w);
	free(t->th);
	attach_fdcache_free(&t->fdc);
	free(t);
	s->trace = NULL;
}

/* ---- from events to slices ----------------------------------------------- */

enum seg_kind { SEG_NONE, SEG_RUN, SEG_RUNNABLE, SEG_WAIT };

struct seg {
	uint64_t from, to;
	enum seg_kind kind;
	uint32_t ref;                   /* SEG_WAIT: wait + 1, 0 unknown */
};

/* One thread's timeline being built. */
struct build {
	struct seg *v;
	size_t n, cap;
	struct seg cur;                 /* open: from .from to now */
	uint64_t start, end;            /* the window */
	uint64_t runq_ahead;            /* time waiting for a CPU drawn already
					 * that the next ticks' schedstat count */
	int runq_after;                 /* the next tick's time waiting for a
					 * CPU lies after the last tick */
	int oom;
};

static uint64_t clamp(const struct build *b, uint64_t t)
{
	return t < b->start ? b->start : t > b->end ? b->end : t;
}

/* Closes the open segment at t (kept if not empty) and opens kind. */
static void switch_to(struct build *b, uint64_t t, enum seg_kind kind, uint32_t ref)
{
	t = clamp(b, t);
	if (t < b->cur.from)
		t = b->cur.from;
	if (b->cur.kind != SEG_NONE && t >= b->cur.from + 3) {    /* 3 ns: see SLICE_GAP_NS */
		struct seg *v = collect_grow(b->v, b->n, &b->cap, sizeof *v, 256);
		if (v) {
			b->v = v;
			b->cur.to = t;
			b->v[b->n++] = b->cur;
		} else {
			b->oom = 1;
		}
	}
	b->cur = (struct seg){ .from = t, .kind = kind, .ref = ref };
}

/* A tick's reading of the thread's wait, for the open segment. */
static void note_wait(struct build *b, uint32_t ref)
{
	if (b->cur.kind == SEG_WAIT && !b->cur.ref)
		b->cur.ref = ref;
}

/* Exact: the switch records say when it ran; ticks say why it waited. */
static void build_exact(struct build *b, const struct trace_ev *e, size_t n)
{
	/* Before its first switch: running if that switch takes it off. */
	for (size_t i = 0; i < n; i++)
		if (e[i].type == EV_IN || e[i].type == EV_OUT || e[i].type == EV_PREEMPT) {
			b->cur.kind = e[i].type == EV_IN ? SEG_WAIT : SEG_RUN;
			break;
		}
	for (size_t i = 0; i < n; i++) {
		switch (e[i].type) {
		case EV_BORN:
			switch_to(b, e[i].t, SEG_RUNNABLE, 0);
			break;
		case EV_IN:
			switch_to(b, e[i].t, SEG_RUN, 0);
			break;
		case EV_OUT:
			switch_to(b, e[i].t, SEG_WAIT, 0);
			break;
		case EV_PREEMPT:
			switch_to(b, e[i].t, SEG_RUNNABLE, 0);
			break;
		case EV_WAIT:
		case EV_REPEAT:
			note_wait(b, e[i].ref);
			break;
		case EV_EXIT:
		case EV_GONE:
			switch_to(b, e[i].t, SEG_NONE, 0);
			break;
		default:
			break;
		}
	}
	switch_to(b, b->end, SEG_NONE, 0);
}

/* A tick saw the thread on a CPU for c ns of the interval (prev, t] and
 * waiting for one q ns: running over [to - c, to], where to is when it
 * stopped (the tick, or when its wait began); what of the interval comes
 * before that and is not the state it was in is runnable (q) or off CPU. */
static void place_run(struct build *b, uint64_t prev, uint64_t to, uint64_t c, uint64_t q)
{
	uint64_t from = to - c > prev ? to - c : prev;
	if (b->cur.kind == SEG_RUN && from > prev + q + 1000)
		switch_to(b, prev, SEG_WAIT, 0);        /* it blocked meanwhile: unread */
	if (b->cur.kind == SEG_RUN && from > prev + 1000)
		switch_to(b, from - q > prev ? from - q : prev, SEG_RUNNABLE, 0);
	else if (b->cur.kind != SEG_RUN && q && from - q > prev)
		switch_to(b, from - q, SEG_RUNNABLE, 0);
	if (b->cur.kind != SEG_RUN && to > from)
		switch_to(b, from, SEG_RUN, 0);
}

/* When the wait a tick found began, for build_ticks.  A thread that ran in
 * the interval (c > 0) began it after running, so no earlier than c (and
 * its time waiting for a CPU, q, unless the last tick found it running
 * without knowing how long it had waited for a CPU: that wait ended in
 * this interval but began before it) after the interval's start: when
 * the engine could not date the wait (the thread last ran on a CPU whose
 * clock it does not know) or dates it too early (schedstat's lag), the
 * earliest time it can have begun is taken.  Otherwise its CPU time would be lost: on a loaded machine, half
 * a thread's running went missing so. */
static uint64_t wait_began(const struct build *b, const struct trace_ev *e, uint64_t prev, uint64_t t,
			   uint64_t c, uint64_t q)
{
	if (c == 0)
		return e->b;
	uint64_t lo = prev + c + (b->cur.kind == SEG_RUN && !b->runq_after ? 0 : q);
	if (lo > t)
		lo = t;
	return e->b > lo && e->b <= t ? e->b : lo;
}

/* A tick found the thread in state R and stopped it: running up to when
 * it left the CPU, if it had (off: how long before the tick it had been
 * waiting for one, which e->b holds), and runnable from there on, until
 * it gets a CPU after the tick.  That whole wait is in the next tick's
 * time waiting for a CPU (the kernel counts a wait when it ends): what is
 * drawn here is not drawn again, and the rest of it lies after the tick. */
static void place_stopped(struct build *b, const struct trace_ev *e, uint64_t prev, uint64_t t,
			  uint64_t c, uint64_t q)
{
	uint64_t off = e->b ? e->b - 1 : 0;
	b->runq_ahead += off;
	b->runq_after = e->b != 0;
	if (off > t - prev - c - q)
		off = t - prev - c - q;         /* it began before the interval */
	place_run(b, prev, t - off, c, q);
	if (off)
		switch_to(b, t - off, SEG_RUNNABLE, 0);
}

/* From the ticks alone: each interval's CPU time (schedstat) is put as
 * running just before the wait began (exec_start), or just before the
 * tick that found the thread running (or before it left the CPU, if the
 * stop says it had), after its time waiting for a CPU; the rest stays in
 * the state it was in.  Right to within a tick. */
static void build_ticks(struct build *b, const struct trace_ev *e, size_t n)
{
	uint64_t prev = b->start;
	for (size_t i = 0; i < n; i++) {
		uint64_t t = clamp(b, e[i].t), c = e[i].a < t - prev ? e[i].a : t - prev;
		uint64_t q = (uint64_t)e[i].runq_us * 1000, drawn = q < b->runq_ahead ? q : b->runq_ahead;
		q -= drawn;
		b->runq_ahead -= drawn;
		q = q < t - prev - c ? q : t - prev - c;
		switch (e[i].type) {
		case EV_BORN:
			switch_to(b, e[i].t, SEG_RUNNABLE, 0);
			break;
		case EV_RUN:
			place_stopped(b, &e[i], prev, t, c, q);
			break;
		case EV_WAIT: {
			/* A wait that began in the interval, unless it did not run
			 * (no CPU time: the same wait read again; the CPUs'
			 * scheduler clocks, which date it, differ a little). */
			uint64_t began = wait_began(b, &e[i], prev, t, c, q);
			int same = b->cur.kind == SEG_WAIT && b->cur.ref == e[i].ref && c == 0;
			if (began > prev && began <= t && !same) {
				place_run(b, prev, began, c, q);
				switch_to(b, began, SEG_WAIT, e[i].ref);
			} else if (b->cur.kind != SEG_WAIT || (b->cur.ref && b->cur.ref != e[i].ref)) {
				switch_to(b, prev, SEG_WAIT, e[i].ref);
			}
			note_wait(b, e[i].ref);
			break;
		}
		case EV_REPEAT:
			if (b->cur.kind != SEG_WAIT)
				switch_to(b, prev, SEG_WAIT, e[i].ref);
			break;
		case EV_EXIT:
		case EV_GONE:
			switch_to(b, e[i].t, SEG_NONE, 0);
			break;
		default:
			continue;       /* CPU samples: drawn inside the running slices */
		}
		prev = t;
	}
	switch_to(b, b->end, SEG_NONE, 0);
}

/* ---- writing ----------------------------------------------------------------- */

#define MAX_NAMES 512

/* Each slice ends this much before the next one on its track begins, and
 * a CPU stack inside a running slice this much before the slice ends:
 * readers that add ts and dur as floating-point microseconds (Chrome
 * DevTools' engine) would otherwise find two slices that touch overlapping
 * by a rounding error, and leave one out. */
#define SLICE_GAP_NS 1u

/* The function names of stack ref (+ 1), innermost first; how many. */
static size_t stack_names(struct collect_session *s, uint32_t ref, const char **names, size_t max)
{
	size_t n = 0;
	if (!ref)
		return 0;
	const struct trace_stack *st = &s->trace->st[ref - 1];
	for (size_t i = 0; i < st->n && n < max; i++) {
		size_t k = pp_profile_location_names(s->stacks.prof, st->locs[i], names + n, max - n);
		if (k == 0 && n < max)
			names[n++] = "??";
		n += k;
	}
	for (size_t i = 0; i < n; i++)
		if (!names[i])
			names[i] = "??";
	return n;
}

struct writer {
	struct collect_session *s;
	struct pp_trace_writer w;
	int pid;
};

/* A CPU stack inside a running slice: named by its innermost function. */
static void write_stack_slice(struct writer *wr, pid_t tid, uint64_t from, uint64_t to, uint32_t ref,
			      uint64_t count)
{
	const char *names[MAX_NAMES];
	size_t n = stack_names(wr->s, ref, names, MAX_NAMES);
	struct pp_trace_arg args[2] = { { .key = "stack", .kind = PP_ARG_LIST, .list = names, .n_list = n },
					{ .key = "samples", .kind = PP_ARG_NUM, .num = (int64_t)count } };
	pp_trace_slice(&wr->w, wr->pid, (int)tid, from, to - from, n ? names[0] : "??", "cpu", args, 2);
	wr->s->sum.trace_slices++;
}

/* The CPU stacks of one running slice: each sample covers the CPU time it
 * stands for, up to its own time, within the slice; consecutive samples
 * of one stack are one slice. */
static void write_samples(struct writer *wr, pid_t tid, const struct seg *g, const struct trace_ev *e,
			  size_t n, size_t *k)
{
	uint64_t from = 0, to = 0, count = 0;
	uint32_t ref = 0;
	uint64_t end = g->to - 2 * SLICE_GAP_NS;     /* segments are at least 1 us */
	for (; *k < n && e[*k].t <= g->to; (*k)++) {
		const struct trace_ev *x = &e[*k];
		if (x->t < g->from || !((x->type == EV_CPU) || (x->type == EV_RUN && x->ref)))
			continue;
		uint64_t start = x->t > x->a ? x->t - x->a : 0;
		if (start < g->from)
			start = g->from;
		if (ref && start < to)
			start = to;
		uint64_t stop = x->t < end ? x->t : end;
		if (ref == x->ref && start <= to + x->a / 2) {  /* the same stack goes on */
			to = stop > to ? stop : to;
			count++;
			continue;
		}
		if (ref && to > from)
			write_stack_slice(wr, tid, from, to, ref, count);
		ref = x->ref;
		from = start;
		to = stop > start ? stop : start;
		count = 1;
	}
	if (ref && to > from)
		write_stack_slice(wr, tid, from, to, ref, count);
}

static void write_seg(struct writer *wr, pid_t tid, const struct seg *g, int exact)
{
	struct collect_trace *t = wr->s->trace;
	struct pp_trace_arg args[6];
	const char *names[MAX_NAMES];
	size_t na = 0;
	const char *name = "running", *cat = exact ? "sched" : "sched.inferred";
	if (!exact)
		args[na++] = (struct pp_trace_arg){ .key = "timing", .kind = PP_ARG_STR,
						    .str = "inferred from the ticks (schedstat, exec_start): "
							   "within a tick" };
	if (g->kind == SEG_RUNNABLE) {
		name = "runnable";
		args[na++] = (struct pp_trace_arg){ .key = "why", .kind = PP_ARG_STR,
						    .str = "preempted or woken: waiting for a CPU" };
	} else if (g->kind == SEG_WAIT && g->ref) {
		const struct trace_wait *w = &t->w[g->ref - 1];
		name = w->reason;
		cat = "wait";
		if (w->detail[0])
			args[na++] = (struct pp_trace_arg){ .key = "detail", .kind = PP_ARG_STR, .str = w->detail };
		if (w->holder)
			args[na++] = (struct pp_trace_arg){ .key = "holder_tid", .kind = PP_ARG_NUM,
							    .num = w->holder };
		if (w->syscall[0])
			args[na++] = (struct pp_trace_arg){ .key = "syscall", .kind = PP_ARG_STR,
							    .str = w->syscall };
		size_t n = stack_names(wr->s, w->stack, names, MAX_NAMES);
		args[na++] = (struct pp_trace_arg){ .key = "stack", .kind = PP_ARG_LIST, .list = names,
						    .n_list = n };
	} else if (g->kind == SEG_WAIT) {
		name = "off CPU";
		cat = "wait";
		args[na++] = (struct pp_trace_arg){ .key = "why", .kind = PP_ARG_STR,
						    .str = "blocked; no tick read this wait (shorter than a "
							   "tick: raise --hz)" };
	}
	pp_trace_slice(&wr->w, wr->pid, (int)tid, g->from, g->to - g->from - SLICE_GAP_NS, name, cat, args, na);
	wr->s->sum.trace_slices++;
}

/* One thread's created and exited instants.  With perf_event the tick
 * loop also finds an exited thread gone, a tick later: the kernel's exit
 * record stands for both (test_trace_events.py saw every thread exit
 * twice). */
static void write_instants(struct writer *wr, const struct trace_ev *e, size_t n)
{
	int kernel_exit = 0, kernel_birth = 0;
	for (size_t i = 0; i < n; i++) {
		kernel_exit |= e[i].type == EV_EXIT;
		kernel_birth |= e[i].type == EV_BORN;
	}
	for (size_t i = 0; i < n; i++) {
		int exact = e[i].type == EV_BORN || e[i].type == EV_EXIT;
		int found = e[i].type == EV_FOUND && !kernel_birth, gone = e[i].type == EV_GONE && !kernel_exit;
		if (!exact && !found && !gone)
			continue;
		struct pp_trace_arg arg = { .key = "timing", .kind = PP_ARG_STR,
					    .str = exact ? "the kernel's (perf_event)"
					    : found ? "when the tick loop first found it"
						    : "when the tick loop found it gone" };
		pp_trace_instant(&wr->w, wr->pid, (int)e[i].tid, e[i].t,
				 e[i].type == EV_BORN || found ? "thread created" : "thread exited", "thread", &arg, 1);
	}
}

/* One thread's events (sorted) into slices. */
static int write_thread(struct writer *wr, const struct trace_ev *e, size_t n)
{
	struct collect_session *s = wr->s;
	struct build b = { .start = s->start_ns, .end = s->end_ns > s->start_ns ? s->end_ns : s->start_ns };
	int exact = 0;
	for (size_t i = 0; i < n && !exact; i++)
		exact = e[i].type == EV_IN || e[i].type == EV_OUT || e[i].type == EV_PREEMPT;
	b.cur.from = b.start;
	if (exact)
		build_exact(&b, e, n);
	else
		build_ticks(&b, e, n);
	size_t k = 0;
	for (size_t i = 0; i < b.n; i++) {
		write_seg(wr, e[0].tid, &b.v[i], exact);
		if (b.v[i].kind == SEG_RUN)
			write_samples(wr, e[0].tid, &b.v[i], e, n, &k);
	}
	write_instants(wr, e, n);
	free(b.v);
	return b.oom ? -1 : 0;
}

static int by_tid_time(const void *x, const void *y)
{
	const struct trace_ev *a = x, *b = y;
	if (a->tid != b->tid)
		return a->tid < b->tid ? -1 : 1;
	if (a->t != b->t)
		return a->t < b->t ? -1 : 1;
	return (a->type > b->type) - (a->type < b->type);
}

int collect_trace_write(struct collect_session *s, FILE *out)
{
	struct collect_trace *t = s->trace;
	struct writer wr = { .s = s, .pid = (int)s->pid };
	char name[4096];
	int oom = 0;
	if (!t)
		return -1;
	qsort(t->ev, t->nev, sizeof *t->ev, by_tid_time);
	pp_trace_begin(&wr.w, out);
	collect_name_of(s->pid, name, sizeof name);
	pp_trace_name(&wr.w, wr.pid, 0, name);
	for (size_t i = 0; i < t->capth; i++)
		if (t->th[i].tid)
			pp_trace_name(&wr.w, wr.pid, (int)t->th[i].tid, t->th[i].comm[0] ? t->th[i].comm : "?");
	for (size_t i = 0, j; i < t->nev; i = j) {
		for (j = i + 1; j < t->nev && t->ev[j].tid == t->ev[i].tid; j++)
			;
		oom |= write_thread(&wr, t->ev + i, j - i);
	}
	struct pp_trace_arg other[] = {
		{ .key = "producer", .kind = PP_ARG_STR, .str = "pprofc" },
		{ .key = "pid", .kind = PP_ARG_NUM, .num = s->pid },
		{ .key = "clock", .kind = PP_ARG_STR, .str = "CLOCK_MONOTONIC" },
		{ .key = "start_ns", .kind = PP_ARG_NUM, .num = (int64_t)s->start_ns },
		{ .key = "end_ns", .kind = PP_ARG_NUM, .num = (int64_t)s->end_ns },
		{ .key = "switches", .kind = PP_ARG_STR,
		  .str = s->sum.trace_switches ? "exact (perf_event context switches)"
					       : "inferred from the ticks (ptrace engine)" },
		{ .key = "hz", .kind = PP_ARG_NUM, .num = s->o.hz },
		{ .key = "events_dropped", .kind = PP_ARG_NUM, .num = (int64_t)s->sum.trace_dropped },
	};
	int r = pp_trace_end(&wr.w, other, sizeof other / sizeof *other);
	return r || oom ? -1 : 0;
}
