/* heap.c — the heap and allocs kinds: reading the ring that the
 * allocation sampler in the target writes (preload/heapring.h) and keeping
 * Go's four values for each allocation stack.
 *
 * Reads top to bottom as the work happens:
 *   1. collect_heap_spawn: the command starts with the sampler preloaded
 *      (heap_start.c); symbolize/ is opened at the first record, when the
 *      command's libraries (the sampler's among them) are mapped;
 *   2. collect_heap_run: every 15 ms, the heartbeat (a sampler that finds
 *      it stale stops recording: pprofc died) and the records published
 *      since, from tail to head.  An ALLOC record is unwound exactly as a
 *      CPU sample (all 17 registers and the stack copy), the allocator's
 *      frames are trimmed from its leaf end, and it counts for its (stack,
 *      size) entry; its block goes into the live map (address -> entry).  A
 *      FREE record takes its block out of the live map and out of the
 *      entry's live count.  Snapshots on the way (--interval, SIGUSR1) and
 *      at the end: the command exited (after the ring is drained), or
 *      --seconds passed (the sampler is told to stop; the command runs on);
 *   3. collect_heap_profile: the entries as Go writes a heap profile.
 *
 * The accounting (entries, live map, unsampling) is heap_account.c's,
 * shared with attach's uprobes (heap_attach.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

_Static_assert(HEAPRING_REGS == ARCH_NREGS, "the ring's registers are arch/regs.h's");

#define POLL_NS 15000000u                       /* ring reads: every 15 ms */

struct collect_heap {
	struct collect_ring ring;
	struct pp_profile_spec spec;
	struct collect_heap_account acct;       /* heap_account.c */
	int sym_tried, broken, stopped;
	struct sym_memo *memo;          /* unwinds of ALLOC records, NULL: off */
};

/* ---- unwinding a sampled allocation ----------------------------------- */

/* symbolize/ and the profile's mappings, opened at the first record: the
 * command's libraries are mapped by then. */
static int open_symbols(struct collect_session *s)
{
	char why[256];
	if (s->sym || s->heap->sym_tried)
		return s->sym ? 0 : -1;
	s->heap->sym_tried = 1;
	if (!(s->sym = sym_open(s->pid, why, sizeof why)))
		return -1;
	if (collect_stacks_init(&s->stacks, s->pid, s->sym, &s->heap->spec)) {
		pp_profile_free(s->stacks.prof);
		memset(&s->stacks, 0, sizeof s->stacks);
		return -1;
	}
	sym_prepare(s->sym);
	/* Records are snapshots taken at a few pcs inside the sampler, most
	 * from a handful of call chains: the memo unwinds each chain once
	 * (symbolize/memo.c, exact).  PPROFC_UNWIND_MEMO=0 turns it off: a
	 * testing switch, to compare profiles with and without it. */
	const char *memo = getenv("PPROFC_UNWIND_MEMO");
	if (!memo || strcmp(memo, "0") != 0)
		s->heap->memo = sym_memo_new();
	return 0;
}

/* The profile, with no mapping if symbolize/ could not be opened. */
static struct pp_profile *profile_of(struct collect_session *s)
{
	if (!s->stacks.prof) {
		memset(&s->stacks, 0, sizeof s->stacks);
		s->stacks.pid = s->pid;
		s->stacks.prof = pp_profile_new(&s->heap->spec);
	}
	return s->stacks.prof;
}

/* The allocation's stack as location ids, the allocator's frames trimmed;
 * 0 when it has none (not copied, or not unwound). */
static size_t stack_of(struct collect_session *s, const struct heapring_alloc *a,
		       const unsigned char *stack, uint64_t *locs)
{
	struct collect_ring *r = &s->heap->ring;
	struct arch_regs regs = { .known = ARCH_REGS_ALL };
	struct sym_stack st;
	if (!a->stack_len || open_symbols(s))
		return 0;
	memcpy(regs.v, a->regs, sizeof regs.v);
	struct sym_snapshot snap = { a->tid, &regs, REG(&regs, SP), stack, a->stack_len,
				     a->stack_len >= r->hdr->stack_size, attach_read_mem };
	if (sym_unwind_memo(s->sym, s->heap->memo, &snap, &st) || st.n == 0) {
		s->sum.unwind_failures++;
		sym_stack_free(&st);
		return 0;
	}
	s->sum.unwind_failures += !st.complete;
	s->sum.cut_short += st.cut_short != 0;
	size_t n = collect_stacks_locations_from(&s->stacks, &st, collect_heap_trim(&st, r->lib), locs,
						 COLLECT_MAX_LOCS);
	sym_stack_free(&st);
	return n;
}

static int on_alloc(struct collect_session *s, const unsigned char *rec, uint32_t size)
{
	struct collect_heap *h = s->heap;
	struct heapring_alloc a;
	uint64_t locs[COLLECT_MAX_LOCS];
	if (size < sizeof a)
		return -1;
	memcpy(&a, rec, sizeof a);
	if (a.stack_len > size - sizeof a || a.stack_len > h->ring.hdr->stack_size)
		return -1;
	size_t n = stack_of(s, &a, rec + sizeof a, locs);
	if (!n && profile_of(s)) {
		locs[0] = collect_stacks_marker(&s->stacks, COLLECT_MARK_NO_ALLOC_STACK);
		n = locs[0] != 0;
	}
	if (collect_heap_alloc(&h->acct, a.addr, locs, n, a.size)) {
		s->sum.dropped_nomem++;
		return 0;
	}
	s->sum.heap.samples++;
	return 0;
}

static int on_free(struct collect_session *s, const unsigned char *rec, uint32_t size)
{
	struct heapring_free f;
	if (size < sizeof f)
		return -1;
	memcpy(&f, rec, sizeof f);
	if (collect_heap_free_block(&s->heap->acct, f.addr)) {
		s->sum.heap.frees++;
	} else {
		s->sum.heap.unmatched_frees++;
	}
	return 0;
}

/* ---- reading the ring ----------------------------------------------- */

static void beat(struct collect_ring *r)
{
	__atomic_store_n(&r->hdr->reader_alive_ns, collect_now_ns(), __ATOMIC_RELEASE);
}

/* Checks and handles the record of type at rec; -1 if malformed. */
static int on_record(struct collect_session *s, uint64_t head, const unsigned char *rec,
		     uint32_t size, size_t pos)
{
	struct collect_ring *r = &s->heap->ring;
	uint32_t type = ((const struct heapring_rec *)rec)->type;
	if (size % 8 || size < sizeof(struct heapring_rec) || size > r->data_size - pos ||
	    size > head - r->tail)
		return -1;
	if (type == HEAPRING_ALLOC)
		return on_alloc(s, rec, size);
	if (type == HEAPRING_FREE)
		return on_free(s, rec, size);
	return type == HEAPRING_PAD ? 0 : -1;
}

/* The bytes of a well-formed record the writer wrote, which are all that
 * need zeroing (heapring.h): an ALLOC record's stack room is mostly left
 * untouched, and zeroing all of it was a fifth of the reader's time. */
static uint32_t written(const unsigned char *rec, uint32_t size)
{
	const struct heapring_rec *h = (const struct heapring_rec *)rec;
	if (h->type == HEAPRING_FREE)
		return sizeof(struct heapring_free);
	if (h->type != HEAPRING_ALLOC)
		return sizeof(struct heapring_rec);
	uint32_t len = ((const struct heapring_alloc *)rec)->stack_len;
	uint32_t n = (uint32_t)sizeof(struct heapring_alloc) + ((len + 7) & ~7u);
	return n < size ? n : size;
}

/* Consumes every record published so far.  Each is zeroed before tail
 * moves past it: a writer's reservation must find 0 in its size word until
 * it publishes.  A malformed record ends the reading for good (and tells
 * the sampler to stop): nothing after it can be trusted to be aligned.
 * Returns whether anything was read. */
static int drain(struct collect_session *s)
{
	struct collect_heap *h = s->heap;
	struct collect_ring *r = &h->ring;
	uint64_t from = r->tail;
	while (!h->broken) {
		uint64_t head = __atomic_load_n(&r->hdr->head, __ATOMIC_ACQUIRE);
		size_t pos = (size_t)(r->tail & (r->data_size - 1));
		unsigned char *rec = r->data + pos;
		uint32_t size = r->tail == head ? 0 : __atomic_load_n((uint32_t *)rec, __ATOMIC_ACQUIRE);
		if (!size)
			break;          /* none, or reserved and not published yet */
		if (on_record(s, head, rec, size, pos)) {
			h->broken = 1;
			s->sum.heap.bad_records++;
			__atomic_store_n(&r->hdr->stopped, 1, __ATOMIC_RELEASE);
			break;
		}
		memset(rec, 0, written(rec, size));
		r->tail += size;
		__atomic_store_n(&r->hdr->tail, r->tail, __ATOMIC_RELEASE);
		beat(r);
	}
	return r->tail != from;
}

/* The sampler's own counts, into the summary. */
static void read_counters(struct collect_session *s)
{
	struct heapring_header *hdr = s->heap->ring.hdr;
	s->sum.heap.dropped_full = __atomic_load_n(&hdr->dropped_full, __ATOMIC_RELAXED);
	s->sum.heap.no_stack = __atomic_load_n(&hdr->dropped_stack, __ATOMIC_RELAXED);
	s->sum.heap.untracked_frees = __atomic_load_n(&hdr->untracked_frees, __ATOMIC_RELAXED);
	s->sum.heap.stacks = s->heap->acct.ne;
	struct sym_memo_stats ms = sym_memo_stats(s->heap->memo);
	s->sum.heap.memo_hits = ms.hits;
	s->sum.heap.memo_misses = ms.misses;
	s->sum.heap.memo_inserted = ms.inserted;
	s->sum.st.samples = s->sum.heap.samples;
	s->sum.st.duration_ns = collect_now_ns() - s->start_ns;
}

/* Whether a snapshot is due now: asked for (SIGUSR1), or the interval. */
static int snapshot_due(struct collect_session *s, uint64_t now, uint64_t *next)
{
	if (s->o.snapshot && *s->o.snapshot) {
		*s->o.snapshot = 0;
		return 1;
	}
	if (!*next || now < *next)
		return 0;
	while (*next <= now)
		*next += (uint64_t)(s->o.interval * 1e9);
	return 1;
}

void collect_heap_run(struct collect_session *s)
{
	uint64_t end = s->o.seconds > 0 ? s->start_ns + (uint64_t)(s->o.seconds * 1e9) : 0;
	uint64_t next = s->o.interval > 0 ? s->start_ns + (uint64_t)(s->o.interval * 1e9) : 0;
	uint64_t next_progress = s->start_ns + 1000000000u;
	for (;;) {
		beat(&s->heap->ring);
		int busy = drain(s);   /* records came: more may be waiting */
		if (collect_child_exited(s)) {
			drain(s);       /* what it published before it exited */
			break;
		}
		uint64_t now = collect_now_ns();
		if ((s->o.cancel && *s->o.cancel) || (end && now >= end))
			break;
		if (snapshot_due(s, now, &next) && s->o.on_snapshot)
			s->o.on_snapshot(s->o.arg, s);
		if (s->o.on_progress && now >= next_progress) {
			s->o.on_progress(s->o.arg, (double)(now - s->start_ns) / 1e9, s->sum.heap.samples);
			next_progress += 1000000000u;
		}
		struct timespec ts = { 0, POLL_NS };
		if (!busy)
			nanosleep(&ts, NULL);   /* a signal cuts it short: fine */
	}
	collect_heap_stop(s);
}

void collect_heap_stop(struct collect_session *s)
{
	struct collect_heap *h = s->heap;
	if (h->stopped)
		return;
	h->stopped = 1;
	/* --seconds passed or pprofc was told to stop: the command runs on,
	 * its sampler idle. */
	__atomic_store_n(&h->ring.hdr->stopped, 1, __ATOMIC_RELEASE);
	read_counters(s);
	s->sum.target_exited = s->child_reaped;
	s->sum.exit_status = s->child_reaped ? s->child_status : -1;
}

struct pp_profile *collect_heap_profile(struct collect_session *s)
{
	struct collect_heap *h = s->heap;
	struct pp_profile *prof = profile_of(s);
	if (!prof)
		return NULL;
	read_counters(s);
	s->sum.dropped_nomem += collect_heap_account_profile(&h->acct, prof, h->ring.hdr->rate);
	return prof;
}

struct collect_session *collect_heap_spawn(char **argv, const struct collect_opts *o,
					   struct collect_error *err, int *status)
{
	struct collect_session *s = calloc(1, sizeof *s);
	if (!s || !(s->heap = calloc(1, sizeof *s->heap))) {
		free(s);
		snprintf(err->msg, sizeof err->msg, "out of memory");
		return NULL;
	}
	s->o = *o;
	s->sum.exit_status = -1;
	s->sum.engine = "preload";
	collect_spec(o, &s->heap->spec);
	s->pid = collect_heap_start(argv, o, &s->heap->ring, err, status);
	if (s->pid < 0) {
		collect_close(s);
		return NULL;
	}
	s->child = s->pid;
	s->start_ns = collect_now_ns();
	return s;
}

void collect_heap_free(struct collect_session *s)
{
	struct collect_heap *h = s->heap;
	if (!h)
		return;
	collect_heap_account_free(&h->acct);
	sym_memo_free(h->memo);
	collect_ring_close(&h->ring);
	free(h);
	s->heap = NULL;
}
