/* heap_attach.c — the heap and allocs kinds of `attach`: the allocations
 * of a running process over a window, seen by uprobes on its allocator
 * (attach/uprobes.h) through the perf engine.  Nothing is injected into
 * the target and nothing is stopped; the probes live as long as pprofc's
 * perf_event descriptors.
 *
 * Reads top to bottom as the work happens:
 *   1. collect_heap_attach_start: the allocator and its probes, and the
 *      perf engine on them;
 *   2. each probe hit comes as a raw sample, in time order.  An entry
 *      (malloc, calloc...) reads its arguments from the registers and, if
 *      this thread's byte countdown says so (Poisson, as `run`'s sampler:
 *      --heap-rate), is unwound at once: its stack is the caller's, the
 *      leaf frame the allocator's first instruction (trimmed).  It waits
 *      on the thread's pending list for its return, which gives the block's
 *      address (rax).  Pairing is by stack pointer: a return lands 8 bytes
 *      above its entry's, so a lost record cannot pair the wrong calls.  A
 *      free takes a sampled block of the window out of the live map;
 *   3. every second, the hit rate: the first second's gives the estimated
 *      slowdown, and a rate above --max-hit-rate closes the probes;
 *   4. the profile: heap_account.c's, as `run` makes it.  inuse counts
 *      only the blocks allocated in the window and not freed in it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include "../attach/uprobes.h"
#include "internal.h"

#define PENDING_MAX 4                   /* allocator calls nested per thread */
/* Every entry hit copies this much stack through the ring, sampled or
 * not: allocation stacks are rarely deeper. */
#define HEAP_ATTACH_STACK_DEFAULT (8u * 1024)
#define HEAP_ATTACH_COMMENT "pprofc attach: inuse counts only the allocations made " \
	"during the profile's window (and not freed in it); older blocks are not seen"

/* An allocator call whose return has not come yet. */
struct pending {
	enum attach_alloc_fn fn;
	uint64_t sp;                    /* at the entry: the return pops it */
	uint64_t size, old, memptr;
	int nested;                     /* inside another allocator call: its
					 * caller accounts for it */
	size_t n;                       /* sampled: its stack, else 0 */
	uint64_t locs[COLLECT_MAX_LOCS];
};

struct uthread {
	pid_t tid;                      /* 0: free slot */
	uint64_t rng, left;             /* bytes until its next sample */
	int entered;                    /* an entry was seen */
	size_t n;
	struct pending p[PENDING_MAX];
};

struct heap_attach {
	struct collect_heap_account acct;
	struct attach_allocator alloc;
	const char *trim_lib;           /* the allocator's frames: its module's */
	uint64_t rate;
	struct uthread *t;              /* open addressing by tid */
	size_t nt, capt;
	uint64_t hits, hits_at_last_check, next_check_ns;
	int capped;
};

/* ---- per thread: the pending calls and the sampling countdown ---------- */

static struct uthread *thread_grow(struct heap_attach *h)
{
	size_t cap = h->capt ? h->capt * 2 : 64;
	struct uthread *t = calloc(cap, sizeof *t);
	if (!t)
		return NULL;
	for (size_t i = 0; i < h->capt; i++) {
		if (!h->t[i].tid)
			continue;
		size_t j = ((size_t)h->t[i].tid * 2654435761u) & (cap - 1);
		while (t[j].tid)
			j = (j + 1) & (cap - 1);
		t[j] = h->t[i];
	}
	free(h->t);
	h->t = t;
	h->capt = cap;
	return t;
}

static struct uthread *thread_of(struct heap_attach *h, pid_t tid)
{
	if ((h->nt + 1) * 2 > h->capt && !thread_grow(h))
		return NULL;
	size_t j = ((size_t)tid * 2654435761u) & (h->capt - 1);
	for (; h->t[j].tid; j = (j + 1) & (h->capt - 1))
		if (h->t[j].tid == tid)
			return &h->t[j];
	h->t[j].tid = tid;
	h->t[j].rng = ((uint64_t)tid * 0x9e3779b97f4a7c15ull) ^ collect_now_ns();
	h->t[j].rng += !h->t[j].rng;
	h->nt++;
	return &h->t[j];
}

/* Bytes until the next sample: exponential of mean rate (xorshift*). */
static uint64_t draw(struct heap_attach *h, struct uthread *t)
{
	t->rng ^= t->rng >> 12;
	t->rng ^= t->rng << 25;
	t->rng ^= t->rng >> 27;
	double u = (double)(((t->rng * 0x2545f4914f6cdd1dull) >> 11) + 1) * 0x1p-53;
	double bytes = -log(u) * (double)h->rate;
	return bytes >= 0x1p63 ? (uint64_t)1 << 63 : (uint64_t)bytes;
}

/* Whether an allocation of n bytes is sampled: a block of n bytes with
 * probability 1 - exp(-n/rate), as Go and `run`'s sampler do. */
static int sample_due(struct heap_attach *h, struct uthread *t, uint64_t n)
{
	if (h->rate <= 1)
		return 1;
	if (!t->left)
		t->left = draw(h, t) + 1;
	if (n < t->left) {
		t->left -= n;
		return 0;
	}
	t->left = draw(h, t) + 1;
	return 1;
}

/* ---- a probe hit -------------------------------------------------------- */

/* The caller's stack as location ids, the allocator's frames trimmed. */
static size_t stack_of(struct collect_session *s, const struct attach_raw_sample *r, uint64_t *locs)
{
	struct sym_stack st;
	struct sym_snapshot snap = { r->tid, &r->regs, r->stack_addr, r->stack, r->stack_len,
				     r->stack_cut, attach_read_mem };
	size_t n = 0;
	if (r->stack_len && sym_unwind(s->sym, &snap, &st) == 0 && st.n) {
		s->sum.unwind_failures += !st.complete;
		s->sum.cut_short += st.cut_short != 0;
		n = collect_stacks_locations_from(&s->stacks, &st, collect_heap_trim(&st, s->uheap->trim_lib),
						  locs, COLLECT_MAX_LOCS);
		sym_stack_free(&st);
	} else {
		s->sum.unwind_failures++;
		if (r->stack_len)
			sym_stack_free(&st);
	}
	if (!n && (locs[0] = collect_stacks_marker(&s->stacks, COLLECT_MARK_NO_ALLOC_STACK)))
		n = 1;
	return n;
}

/* An allocation function's size and old block from its arguments (SysV:
 * rdi, rsi, rdx). */
static void args_of(struct pending *p, const struct arch_regs *regs)
{
	uint64_t a0 = REG(regs, DI), a1 = REG(regs, SI), a2 = REG(regs, DX);
	switch (p->fn) {
	case ATTACH_FN_CALLOC: p->size = a0 * a1; break;
	case ATTACH_FN_REALLOC: p->old = a0; p->size = a1; break;
	case ATTACH_FN_REALLOCARRAY: p->old = a0; p->size = a1 * a2; break;
	case ATTACH_FN_POSIX_MEMALIGN: p->memptr = a0; p->size = a2; break;
	case ATTACH_FN_ALIGNED_ALLOC: case ATTACH_FN_MEMALIGN: p->size = a1; break;
	default: p->size = a0; break;   /* malloc, valloc, pvalloc */
	}
}

static void on_free(struct collect_session *s, uint64_t addr)
{
	if (!addr)
		return;
	if (collect_heap_free_block(&s->uheap->acct, addr))
		s->sum.heap.frees++;
	else
		s->sum.heap.unmatched_frees++;  /* older than the window, or not sampled */
}

static void on_entry(struct collect_session *s, enum attach_alloc_fn fn, const struct attach_raw_sample *r)
{
	struct heap_attach *h = s->uheap;
	uint64_t sp = REG(&r->regs, SP);
	if (fn == ATTACH_FN_FREE) {
		on_free(s, REG(&r->regs, DI));
		return;
	}
	struct uthread *t = thread_of(h, r->tid);
	if (!t) {
		s->sum.dropped_nomem++;
		return;
	}
	/* Calls whose return did not come (lost records) are below this one:
	 * their frames are gone.  At the same stack pointer, this is a tail
	 * call from the allocator itself (jemalloc's): nested, and both
	 * returns come, innermost first. */
	t->entered = 1;
	while (t->n && t->p[t->n - 1].sp < sp) {
		t->n--;
		s->sum.heap.unpaired++;
	}
	if (t->n == PENDING_MAX) {
		s->sum.heap.unpaired++;
		return;
	}
	struct pending *p = &t->p[t->n++];
	p->fn = fn;
	p->sp = sp;
	p->old = p->memptr = 0;
	p->n = 0;
	p->nested = t->n > 1;           /* glibc's realloc(NULL) calls malloc */
	args_of(p, &r->regs);
	if (!p->nested && sample_due(h, t, p->size))
		p->n = stack_of(s, r, p->locs);
}

/* The block a finished call returned, 0 if none.  posix_memalign's is
 * in *memptr: from the stack copied at its return when memptr is in it
 * (it is pprofc's own copy: the caller's frame has moved on since), else
 * read now from the target (a block on the heap, usually still there). */
static uint64_t result_of(const struct collect_session *s, const struct pending *p,
			  const struct attach_raw_sample *r)
{
	uint64_t addr = REG(&r->regs, AX);
	if (p->fn != ATTACH_FN_POSIX_MEMALIGN)
		return addr;
	if (addr != 0)
		return 0;       /* failed: an errno */
	if (p->memptr >= r->stack_addr && r->stack_len >= 8 &&
	    p->memptr - r->stack_addr <= r->stack_len - 8) {
		memcpy(&addr, r->stack + (p->memptr - r->stack_addr), 8);
		return addr;
	}
	return attach_read_mem(s->pid, p->memptr, &addr, sizeof addr) == sizeof addr ? addr : 0;
}

static void on_return(struct collect_session *s, const struct attach_raw_sample *r)
{
	struct uthread *t = thread_of(s->uheap, r->tid);
	uint64_t sp = REG(&r->regs, SP);
	if (!t)
		return;
	while (t->n && t->p[t->n - 1].sp + 8 < sp) {
		t->n--;                 /* deeper calls whose return was lost */
		s->sum.heap.unpaired++;
	}
	if (!t->n || t->p[t->n - 1].sp + 8 != sp) {
		/* Before the thread's first entry: a call made while the return
		 * probes were open and the entry probes not yet (they open in
		 * that order), the window's start. */
		s->sum.heap.unpaired += t->entered;
		return;
	}
	const struct pending *p = &t->p[--t->n];
	if (p->nested)
		return;
	uint64_t addr = result_of(s, p, r);
	if (p->old && (addr || p->size == 0))
		on_free(s, p->old);     /* realloc moved or freed it */
	if (!addr || !p->n)
		return;
	if (collect_heap_alloc(&s->uheap->acct, addr, 0, p->locs, p->n, p->size))
		s->sum.dropped_nomem++;
	else
		s->sum.heap.samples++;
}

static void on_hit(void *arg, const struct attach_raw_sample *r)
{
	struct collect_session *s = arg;
	struct heap_attach *h = s->uheap;
	if (r->probe < 0 || (size_t)r->probe >= h->alloc.n)
		return;
	h->hits++;
	if (h->alloc.probes[r->probe].ret)
		on_return(s, r);
	else
		on_entry(s, h->alloc.fn[r->probe], r);
}

/* ---- the session ---------------------------------------------------------- */

/* Why uprobes cannot be had, in one line, and what to use instead. */
static void explain(const struct attach_error *ae, struct collect_error *err)
{
	if (ae->code == ATTACH_ERR_PERM)
		snprintf(err->msg, sizeof err->msg, "uprobes are not permitted here: perf_event_open "
			 "refused them (they need CAP_SYS_ADMIN, and no seccomp filter against "
			 "perf_event_open): start the program with `pprofc run --profile heap -- CMD`");
	else if (strstr(ae->msg, "not available"))
		snprintf(err->msg, sizeof err->msg, "uprobes are not available: this kernel has no "
			 "uprobe PMU (/sys/bus/event_source/devices/uprobe): start the program with "
			 "`pprofc run --profile heap -- CMD`");
	else
		snprintf(err->msg, sizeof err->msg, "%s", ae->msg);
}

int collect_heap_attach_start(struct collect_session *s, struct collect_error *err)
{
	struct heap_attach *h = calloc(1, sizeof *h);
	struct attach_error ae = { 0 };
	if (!(s->uheap = h)) {
		snprintf(err->msg, sizeof err->msg, "out of memory");
		return -1;
	}
	h->rate = s->o.heap_rate;
	if (attach_allocator_find(s->pid, &h->alloc, &ae)) {
		snprintf(err->msg, sizeof err->msg, "%s", ae.msg);
		return -1;
	}
	h->trim_lib = h->alloc.is_libc ? "" : h->alloc.module;
	snprintf(s->sum.heap.allocator, sizeof s->sum.heap.allocator, "%s", h->alloc.module);
	s->sum.heap.probes = h->alloc.n;
	struct attach_engine_opts eo = {
		.hz = 1, .uprobes = h->alloc.probes, .n_uprobes = h->alloc.n,
		.stack_size = s->o.stack_size ? s->o.stack_size : HEAP_ATTACH_STACK_DEFAULT,
		.only = s->o.tids, .n_only = s->o.n_tids, .on_sample = on_hit, .arg = s,
	};
	sym_prepare(s->sym);
	if (!(s->engine = attach_engine_open(ATTACH_ENGINE_PERF, s->pid, &eo, &ae))) {
		explain(&ae, err);
		return -1;
	}
	s->sum.engine = "uprobes";
	s->sum.heap.probes_inherited = attach_engine_stats(s->engine)->uprobes_inherited;
	s->start_ns = collect_now_ns();
	h->next_check_ns = s->start_ns + 1000000000u;
	return 0;
}

/* Once a second: the first second's hit rate (the slowdown estimate), and
 * the cap.  1 if the probes must close. */
static int check_rate(struct collect_session *s, uint64_t now)
{
	struct heap_attach *h = s->uheap;
	if (now < h->next_check_ns)
		return 0;
	double secs = (double)(now - h->next_check_ns + 1000000000u) / 1e9;
	uint64_t rate = (uint64_t)((double)(h->hits - h->hits_at_last_check) / secs);
	if (!s->sum.heap.first_second_hits)
		s->sum.heap.first_second_hits = rate ? rate : 1;
	h->hits_at_last_check = h->hits;
	h->next_check_ns = now + 1000000000u;
	if (s->o.max_hit_rate && rate > s->o.max_hit_rate) {
		s->sum.heap.capped_rate = rate;
		return 1;
	}
	return 0;
}

void collect_heap_attach_run(struct collect_session *s)
{
	uint64_t end = s->o.seconds > 0 ? s->start_ns + (uint64_t)(s->o.seconds * 1e9) : 0;
	while (!(s->o.cancel && *s->o.cancel)) {
		uint64_t now = collect_now_ns();
		if (end && now >= end)
			break;
		uint64_t deadline = end && end < s->uheap->next_check_ns ? end : s->uheap->next_check_ns;
		if (attach_engine_poll(s->engine, deadline))
			break;
		now = collect_now_ns();
		if (check_rate(s, now))
			break;
		if (s->o.on_progress)
			s->o.on_progress(s->o.arg, (double)(now - s->start_ns) / 1e9, s->sum.heap.samples);
	}
	collect_heap_attach_stop(s);
}

void collect_heap_attach_stop(struct collect_session *s)
{
	if (!s->engine)
		return;
	attach_engine_close(s->engine, &s->sum.st);
	s->engine = NULL;
	s->sum.heap.hits = s->uheap->hits;
	s->sum.heap.stacks = s->uheap->acct.ne;
	s->sum.target_exited = s->sum.st.target_exited;
	s->sum.target_execed = s->sum.st.target_execed;
	s->sum.exit_status = s->sum.st.exit_status;
}

struct pp_profile *collect_heap_attach_profile(struct collect_session *s)
{
	struct pp_profile *prof = s->stacks.prof;
	if (prof)
		s->sum.dropped_nomem += collect_heap_account_profile(&s->uheap->acct, prof, s->uheap->rate);
	return prof;
}

const char *collect_heap_attach_comment(void)
{
	return HEAP_ATTACH_COMMENT;
}

void collect_heap_attach_free(struct collect_session *s)
{
	if (!s->uheap)
		return;
	collect_heap_account_free(&s->uheap->acct);
	free(s->uheap->t);
	free(s->uheap);
	s->uheap = NULL;
}
