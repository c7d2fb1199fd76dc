/* kinds.c — the accounting of each profile kind: what a raw sample adds
 * to the profile.
 *
 *   cpu    every sample: its stack, weighted by the CPU time it stands for;
 *          with the perf engine, each thread's weights are scaled at the
 *          end to its CPU time by the kernel's account (schedstat).
 *   wall   every thread at every tick: the time since its last sample,
 *          split as the kernel accounted it (on a CPU, waiting for one,
 *          blocked), each part on its stack and labelled with its state;
 *          a blocked thread that has not run repeats its last stack.
 *   block  blocking episodes (contentions) and how long they lasted.
 *   mutex  a waiter's delay, charged to the stack of the thread holding the
 *          mutex, sampled in the same tick (Go's mutex profile).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

/* The thread's last sample; the table grows, so no thread is ever left
 * out (a process creating threads all the time needs many slots). */
static struct last_sample *last_for(struct collect_session *p, pid_t tid)
{
	if ((p->nlast + 1) * 2 > p->caplast) {
		size_t cap = p->caplast ? p->caplast * 2 : 256;
		struct last_sample *t = calloc(cap, sizeof *t);
		if (!t)
			return NULL;
		for (size_t i = 0; i < p->caplast; i++) {
			if (!p->last[i].tid)
				continue;
			size_t j = ((size_t)p->last[i].tid * 2654435761u) & (cap - 1);
			while (t[j].tid)
				j = (j + 1) & (cap - 1);
			t[j] = p->last[i];
		}
		free(p->last);
		p->last = t;
		p->caplast = cap;
	}
	size_t j = ((size_t)tid * 2654435761u) & (p->caplast - 1);
	while (p->last[j].tid && p->last[j].tid != tid)
		j = (j + 1) & (p->caplast - 1);
	if (!p->last[j].tid) {
		p->last[j].tid = tid;
		p->nlast++;
	}
	return &p->last[j];
}

/* The thread's entry if it has one (a tid read from the target's memory
 * may be anything: it must not make entries). */
static struct last_sample *find_last(struct collect_session *p, pid_t tid)
{
	if (!p->caplast)
		return NULL;
	size_t j = ((size_t)tid * 2654435761u) & (p->caplast - 1);
	while (p->last[j].tid && p->last[j].tid != tid)
		j = (j + 1) & (p->caplast - 1);
	return p->last[j].tid ? &p->last[j] : NULL;
}

/* The wait state of a thread sampled without stopping it, for the label. */
static void state_label(const struct attach_raw_sample *s, const struct sym_stack *st, char *buf,
			size_t len)
{
	struct attach_wait w;
	if (s->state == 'R') {
		snprintf(buf, len, "running");
		return;
	}
	collect_wait_of(s->state, &s->sc, st, &w);
	attach_reason_text(&w, buf, len);
}

/* Block and mutex: one blocking episode counts once (contentions); its
 * delay is observed tick by tick: of the interval since the thread's
 * previous sample, the time the kernel counted it neither on a CPU nor
 * waiting for one (schedstat, as the wall kind splits it), charged to the
 * wait this tick finds it in.  Not the time since it last ran (its
 * exec_start): that is on the clock of the CPU it ran on, which only the
 * first tick reads (docs/ARCHITECTURE.md, "Wait durations"), and it would
 * leave out the waits that ended between two ticks (at 10 Hz, three
 * quarters of a wait that lasts 50 ms at a time).  The first time a
 * thread is seen blocked, the wait so far counts instead where it is
 * known, but only the part of it inside the profile's window (in_window
 * ns so far): a profile's delay never exceeds threads x its duration. */
static void delay_of(const struct attach_raw_sample *s, int first, int64_t in_window,
		     int64_t *contentions, int64_t *delay)
{
	uint64_t on = s->cpu_ns + s->runq_ns;   /* <= weight_ns */
	*contentions = s->repeat ? 0 : 1;
	*delay = s->weight_ns > on ? (int64_t)(s->weight_ns - on) : 0;
	if (first && !s->repeat && s->blocked_ms >= 0)
		*delay = (int64_t)(s->blocked_ms * 1e6);
	if (*delay > in_window)
		*delay = in_window;
}

static int64_t in_window_ns(const struct collect_session *p)
{
	uint64_t now = collect_now_ns();
	return now > p->start_ns ? (int64_t)(now - p->start_ns) : 0;
}

/* Adds a thread's accumulated repeats to the profile. */
static void flush_pending(struct collect_session *p, struct last_sample *last)
{
	if (!last->pending[0] && !last->pending[1])
		return;
	struct pp_label labels[3] = { { "thread", last->comm, 0, NULL },
				      { "tid", NULL, last->tid, NULL },
				      { "state", last->state, 0, NULL } };
	pp_profile_add(p->stacks.prof, last->locs, last->n, last->pending, labels, 3);
	last->pending[0] = last->pending[1] = 0;
}

/* ---- the CPU kind: samples kept per thread, scaled at the end ---------- */

static void keep_cpu_sample(struct collect_session *p, const struct attach_raw_sample *s,
			    const uint64_t *locs, size_t n)
{
	struct last_sample *t = last_for(p, s->tid);
	if (!t) {
		p->sum.dropped_nomem++;
		return;
	}
	uint64_t h = collect_hash_locs(locs, n);
	struct cpu_entry *e = NULL;
	for (size_t i = 0; i < t->ncpu && !e; i++)
		if (t->cpu[i].hash == h && t->cpu[i].n == n &&
		    memcmp(t->cpu[i].locs, locs, n * sizeof *locs) == 0 &&
		    strcmp(t->cpu[i].comm, s->comm) == 0)
			e = &t->cpu[i];
	if (!e) {
		struct cpu_entry *v = collect_grow(t->cpu, t->ncpu, &t->capcpu, sizeof *v, 8);
		if (!v) {
			p->sum.dropped_nomem++;
			return;
		}
		t->cpu = v;
		e = &t->cpu[t->ncpu];
		*e = (struct cpu_entry){ .hash = h, .n = n };
		if (!(e->locs = collect_copy_locs(locs, n))) {
			p->sum.dropped_nomem++;
			return;
		}
		snprintf(e->comm, sizeof e->comm, "%s", s->comm);
		t->ncpu++;
	}
	e->count++;
	e->weight += (int64_t)s->weight_ns;
	t->cpu_w += (int64_t)s->weight_ns;
}

static const struct attach_thread_cpu *kernel_cpu_of(const struct attach_engine_stats *st, pid_t tid)
{
	for (size_t i = 0; i < st->n_thread_cpu; i++)
		if (st->thread_cpu[i].tid == tid)
			return &st->thread_cpu[i];
	return NULL;
}

/* perf engine: the factor that brings a thread's samples to the CPU time
 * the kernel counted for it (attach_thread_cpu); 1 where it is unknown
 * (the thread exited, or the ptrace engine, whose weights are the
 * kernel's already). */
static double scale_of(const struct collect_session *p, const struct last_sample *t,
		       const struct attach_thread_cpu *k)
{
	/* Kernel time not sampled (perf_event_paranoid): the kernel's count
	 * holds time no sample stands for; scaling would spread it over user
	 * stacks. */
	if (!k || !k->cpu_ns || t->cpu_w <= 0 || p->sum.st.kernel_excluded)
		return 1;
	double f = (double)k->cpu_ns / (double)t->cpu_w;
	/* A correction, not a rewrite: far from 1, something else is off. */
	return f > 0.5 && f < 2 ? f : 1;
}

static void flush_cpu(struct collect_session *p, struct last_sample *t)
{
	double f = scale_of(p, t, kernel_cpu_of(&p->sum.st, t->tid));
	for (size_t i = 0; i < t->ncpu; i++) {
		struct cpu_entry *e = &t->cpu[i];
		int64_t values[2] = { e->count, (int64_t)((double)e->weight * f + 0.5) };
		struct pp_label labels[2] = { { "thread", e->comm, 0, NULL }, { "tid", NULL, t->tid, NULL } };
		pp_profile_add(p->stacks.prof, e->locs, e->n, values, labels, 2);
	}
}

void collect_kinds_flush(struct collect_session *p)
{
	for (size_t i = 0; i < p->caplast; i++) {
		if (!p->last[i].tid)
			continue;
		if (p->last[i].locs)
			flush_pending(p, &p->last[i]);
		if (p->last[i].ncpu)
			flush_cpu(p, &p->last[i]);
	}
}

void collect_kinds_sync(struct collect_session *p)
{
	for (size_t i = 0; i < p->caplast; i++)
		if (p->last[i].tid && p->last[i].locs)
			flush_pending(p, &p->last[i]);
}

static void free_last(struct last_sample *t)
{
	free(t->locs);
	free(t->cpu_locs);
	for (size_t j = 0; j < t->ncpu; j++)
		free(t->cpu[j].locs);
	free(t->cpu);
}

void collect_kinds_free(struct collect_session *p)
{
	for (size_t i = 0; i < p->caplast; i++)
		free_last(&p->last[i]);
	free(p->last);
	free(p->waiters);
	p->last = NULL;
	p->waiters = NULL;
	p->nlast = p->caplast = p->nwaiters = p->capwaiters = 0;
}

/* Block and mutex.  Block samples accumulate on the thread's last sample
 * while its stack stays the same, and reach the profile when it changes
 * (the sum is the same: the profile merges samples with equal stacks and
 * labels). */
static void charge(struct collect_session *p, const struct attach_raw_sample *s,
		   struct last_sample *last, int first)
{
	int64_t values[2];
	if (strcmp(last->state, "running") == 0)
		return;         /* not blocked: nothing to count */
	delay_of(s, first, in_window_ns(p), &values[0], &values[1]);
	if (p->o.kind == COLLECT_BLOCK) {
		last->pending[0] += values[0];
		last->pending[1] += values[1];
		p->sum.recorded_ns += (uint64_t)values[1];
	} else if (strcmp(last->state, "mutex wait") == 0 && last->futex) {
		struct waiter *w = collect_grow(p->waiters, p->nwaiters, &p->capwaiters, sizeof *w, 16);
		if (!w) {
			p->sum.dropped_nomem++;
			return;
		}
		p->waiters = w;
		p->waiters[p->nwaiters++] = (struct waiter){ last->futex, values[0], values[1] };
	}
}

void collect_on_tick_end(void *arg)
{
	struct collect_session *p = arg;
	for (size_t i = 0; i < p->nwaiters; i++) {
		pid_t owner = attach_mutex_owner(p->pid, p->waiters[i].futex);
		struct last_sample *h = owner ? find_last(p, owner) : NULL;
		if (!h || !h->locs) {
			p->sum.holder_unknown++;  /* gone, or not sampled yet */
			continue;
		}
		int64_t values[2] = { p->waiters[i].contentions, p->waiters[i].delay };
		struct pp_label labels[2] = { { "thread", h->comm, 0, NULL }, { "tid", NULL, owner, NULL } };
		pp_profile_add(p->stacks.prof, h->locs, h->n, values, labels, 2);
		p->sum.recorded_ns += (uint64_t)values[1];
	}
	p->nwaiters = 0;
}

int collect_unwind_sample(struct collect_session *p, const struct attach_raw_sample *s,
			  struct sym_stack *st)
{
	struct sym_snapshot snap = { s->tid, &s->regs, s->stack_addr, s->stack, s->stack_len,
				     s->stack_cut, attach_read_mem };
	if (sym_unwind(p->sym, &snap, st) || st->n == 0) {
		p->sum.unwind_failures++;
		sym_stack_free(st);
		return -1;
	}
	if (!st->complete)
		p->sum.unwind_failures++;
	p->sum.cut_short += st->cut_short != 0;
	return 0;
}

/* Replaces a thread's current stack with locs (n of them). */
static int set_locs(struct collect_session *p, struct last_sample *last, const uint64_t *locs,
		    size_t n, int first)
{
	uint64_t *copy = collect_copy_locs(locs, n);
	if (!copy) {
		p->sum.dropped_nomem++;
		return -1;
	}
	if (!first)
		flush_pending(p, last);
	free(last->locs);
	last->locs = copy;
	last->n = n;
	return 0;
}

/* Off-CPU kinds with the perf engine: a CPU sample is not counted; its
 * stack becomes the thread's stack for the ticks that find it running. */
void collect_on_cpu_stack(void *arg, const struct attach_raw_sample *s)
{
	struct collect_session *p = arg;
	struct sym_stack st;
	/* A sample read from the ring after its thread exited (and was
	 * evicted) must not make it a new entry that nothing would evict. */
	struct last_sample *last = find_last(p, s->tid);
	if (!last && attach_task_exists(p->pid, s->tid))
		last = last_for(p, s->tid);
	if (!last || collect_unwind_sample(p, s, &st))
		return;
	uint64_t locs[COLLECT_MAX_LOCS];
	size_t n = collect_stacks_locations(&p->stacks, &st, locs, COLLECT_MAX_LOCS);
	uint64_t *copy = collect_copy_locs(locs, n);
	if (copy) {
		free(last->cpu_locs);
		last->cpu_locs = copy;
		last->cpu_n = n;
	}
	sym_stack_free(&st);
}

/* A tick found the thread running and did not stop it: it is where its
 * latest CPU sample (at most a period of its CPU time ago) saw it. */
static void on_running(struct collect_session *p, const struct attach_raw_sample *s)
{
	struct last_sample *last = last_for(p, s->tid);
	if (!last) {
		p->sum.dropped_nomem++;
		return;
	}
	if (!last->cpu_locs) {
		p->sum.no_cpu_stack++;  /* it has not run a whole period yet */
		return;
	}
	int first = last->locs == NULL;
	if (set_locs(p, last, last->cpu_locs, last->cpu_n, first))
		return;
	snprintf(last->state, sizeof last->state, "running");
	snprintf(last->comm, sizeof last->comm, "%s", s->comm);
	last->futex = 0;
	charge(p, s, last, first);
}

/* Empties slot i of the open-addressing table: the entries after it in
 * its probe run move back where their lookups will find them. */
static void delete_slot(struct collect_session *p, size_t i)
{
	size_t mask = p->caplast - 1;
	memset(&p->last[i], 0, sizeof p->last[i]);
	p->nlast--;
	for (size_t j = (i + 1) & mask; p->last[j].tid; j = (j + 1) & mask) {
		size_t home = ((size_t)p->last[j].tid * 2654435761u) & mask;
		/* Movable to i if home is not cyclically in (i, j]. */
		if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
			p->last[i] = p->last[j];
			memset(&p->last[j], 0, sizeof p->last[j]);
			i = j;
		}
	}
}

/* The engine says the thread exited: what it has pending goes to the
 * profile (its CPU samples unscaled, as for any thread that exited before
 * the end), and its slot is freed, so a process creating threads all the
 * time does not grow this table without bound. */
void collect_on_thread_gone(void *arg, pid_t tid)
{
	struct collect_session *p = arg;
	struct last_sample *t = find_last(p, tid);
	if (!t)
		return;
	if (t->locs)
		flush_pending(p, t);
	if (t->ncpu)
		flush_cpu(p, t);
	free_last(t);
	delete_slot(p, (size_t)(t - p->last));
	p->sum.threads_evicted++;
}

/* ---- the wall kind: each interval split by the kernel's account ------- */

/* One part of a wall sample, added to the profile at once. */
static void wall_add(struct collect_session *p, const struct last_sample *last, const uint64_t *locs,
		     size_t n, const char *state, int64_t count, int64_t ns)
{
	if (!count && !ns)
		return;
	int64_t values[2] = { count, ns };
	struct pp_label labels[3] = { { "thread", last->comm, 0, NULL },
				      { "tid", NULL, last->tid, NULL },
				      { "state", state, 0, NULL } };
	pp_profile_add(p->stacks.prof, locs, n, values, labels, 3);
	p->sum.recorded_ns += (uint64_t)ns;
}

/* The time a wall sample stands for, split as the kernel accounted it
 * (cpu_ns, runq_ns: docs/FORMATS.md §1.4).  On a CPU: the thread's latest
 * running stack, labelled running; waiting for a CPU: the same stack,
 * labelled runnable; the rest: its current wait (last->locs and state).
 * The state seen at the tick only says which part the sample's count of 1
 * goes to: a thread working 3 ms of every 10 is seen running at anything
 * from 0 to 100% of the ticks, as the two periods beat.  A stack that was
 * not sampled is a marker, never a guess. */
static void wall_charge(struct collect_session *p, const struct attach_raw_sample *s,
			struct last_sample *last, int running)
{
	uint64_t cpu = s->cpu_ns < s->weight_ns ? s->cpu_ns : s->weight_ns;
	uint64_t runq = s->runq_ns < s->weight_ns - cpu ? s->runq_ns : s->weight_ns - cpu;
	int64_t off = (int64_t)(s->weight_ns - cpu - runq);
	const uint64_t *locs = last->cpu_locs;
	size_t n = last->cpu_n;
	uint64_t mark;
	if (!locs && (running || cpu || runq)) {
		p->sum.no_cpu_stack++;
		mark = collect_stacks_marker(&p->stacks, COLLECT_MARK_NO_CPU_STACK);
		locs = &mark;
		n = mark != 0;
	}
	wall_add(p, last, locs, n, "running", running, (int64_t)cpu);
	wall_add(p, last, locs, n, "runnable", 0, (int64_t)runq);
	if (last->locs) {
		/* Accumulated while the wait goes on (flush_pending). */
		last->pending[0] += !running;
		last->pending[1] += off;
		p->sum.recorded_ns += (uint64_t)off;
		return;
	}
	mark = collect_stacks_marker(&p->stacks, COLLECT_MARK_NO_WAIT_STACK);
	wall_add(p, last, &mark, mark != 0, last->state[0] ? last->state : "waiting", !running, off);
}

/* A fresh stack of the thread (NULL: it could not be unwound): on a CPU,
 * its running stack from now on; blocked, its current wait, labelled. */
static void wall_new_stack(struct collect_session *p, const struct attach_raw_sample *s,
			   struct last_sample *last, const struct sym_stack *st, int running)
{
	uint64_t locs[COLLECT_MAX_LOCS], *copy = NULL;
	size_t n = st ? collect_stacks_locations(&p->stacks, st, locs, COLLECT_MAX_LOCS) : 0;
	if (st && !(copy = collect_copy_locs(locs, n))) {
		p->sum.dropped_nomem++;
		return;
	}
	if (running) {
		free(last->cpu_locs);
		last->cpu_locs = copy;
		last->cpu_n = n;
		return;
	}
	struct sym_stack none = { 0 };
	flush_pending(p, last);
	free(last->locs);
	last->locs = copy;
	last->n = n;
	state_label(s, st ? st : &none, last->state, sizeof last->state);
}

static void on_wall(struct collect_session *p, const struct attach_raw_sample *s)
{
	struct last_sample *last = last_for(p, s->tid);
	struct sym_stack st;
	if (!last) {
		p->sum.dropped_nomem++;
		return;
	}
	int running = s->use_cpu_stack || (!s->repeat && s->state == 'R');
	if (!s->repeat && !s->use_cpu_stack) {
		int ok = collect_unwind_sample(p, s, &st) == 0;
		wall_new_stack(p, s, last, ok ? &st : NULL, running);
		if (ok)
			sym_stack_free(&st);
	}
	snprintf(last->comm, sizeof last->comm, "%s", s->comm);
	wall_charge(p, s, last, running);
}

void collect_on_sample(void *arg, const struct attach_raw_sample *s)
{
	struct collect_session *p = arg;
	struct sym_stack st;
	if (p->o.kind == COLLECT_WALL) {
		on_wall(p, s);
		return;
	}
	if (s->use_cpu_stack) {
		on_running(p, s);
		return;
	}
	if (p->o.kind == COLLECT_CPU) {
		if (collect_unwind_sample(p, s, &st))
			return;
		uint64_t locs[COLLECT_MAX_LOCS];
		size_t n = collect_stacks_locations(&p->stacks, &st, locs, COLLECT_MAX_LOCS);
		keep_cpu_sample(p, s, locs, n);
		p->sum.recorded_ns += s->weight_ns;
		sym_stack_free(&st);
		return;
	}
	struct last_sample *last = last_for(p, s->tid);
	if (!last) {
		p->sum.dropped_nomem++;
		return;
	}
	int first = last->locs == NULL;
	if (s->repeat) {
		if (!first)
			charge(p, s, last, 0);
		return;
	}
	if (collect_unwind_sample(p, s, &st))
		return;
	uint64_t locs[COLLECT_MAX_LOCS];
	size_t n = collect_stacks_locations(&p->stacks, &st, locs, COLLECT_MAX_LOCS);
	if (set_locs(p, last, locs, n, first) == 0) {
		state_label(s, &st, last->state, sizeof last->state);
		snprintf(last->comm, sizeof last->comm, "%s", s->comm);
		last->futex = s->sc.kind == ATTACH_SC_IN && s->state != 'R' ? s->sc.args[0] : 0;
		charge(p, s, last, first);
	}
	sym_stack_free(&st);
}
