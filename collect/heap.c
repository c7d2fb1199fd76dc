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
 *   3. collect_heap_profile: the entries as Go writes a heap profile
 *      (docs/FORMATS.md §6): counts unsampled with scaleHeapSample.
 *
 * Entries are keyed by stack and block size, as Go's buckets are: the
 * unsampling scale depends on the size, so blocks of different sizes on
 * one stack are scaled each with its own (Go's `bytes` label is then the
 * exact size).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

_Static_assert(HEAPRING_REGS == ARCH_NREGS, "the ring's registers are arch/regs.h's");

#define POLL_NS 15000000u                       /* ring reads: every 15 ms */
#define SAMPLER_LIB "libpprofc_heap.so"

/* One stack and block size: its sampled blocks, all and still live. */
struct heap_entry {
	uint64_t hash, size;
	uint64_t *locs;
	size_t n;
	int64_t allocs, live;
};

/* A live sampled block (addr 0: an empty slot of the live map). */
struct heap_block {
	uint64_t addr;
	size_t entry;
};

struct collect_heap {
	struct collect_ring ring;
	struct pp_profile_spec spec;
	struct heap_entry *e;
	size_t ne, cape;
	size_t *eix;                    /* open addressing over e: index + 1 */
	size_t capeix;
	struct heap_block *live;        /* open addressing by address */
	size_t nlive, caplive;
	int sym_tried, broken, stopped;
	struct sym_memo *memo;          /* unwinds of ALLOC records, NULL: off */
};

/* ---- the entries: (stack, size) -> counts ---------------------------- */

static uint64_t hash_entry(const uint64_t *locs, size_t n, uint64_t size)
{
	uint64_t h = 1469598103934665603ull ^ size;
	for (size_t i = 0; i < n; i++)
		h = (h ^ locs[i]) * 1099511628211ull;
	return h;
}

static int eix_grow(struct collect_heap *h)
{
	size_t cap = h->capeix ? h->capeix * 2 : 1024;
	size_t *ix = calloc(cap, sizeof *ix);
	if (!ix)
		return -1;
	for (size_t i = 0; i < h->ne; i++) {
		size_t j = h->e[i].hash & (cap - 1);
		while (ix[j])
			j = (j + 1) & (cap - 1);
		ix[j] = i + 1;
	}
	free(h->eix);
	h->eix = ix;
	h->capeix = cap;
	return 0;
}

static int entry_add(struct collect_heap *h, const uint64_t *locs, size_t n, uint64_t size,
		     uint64_t hash, size_t slot)
{
	if (h->ne == h->cape) {
		size_t cap = h->cape ? h->cape * 2 : 256;
		struct heap_entry *v = realloc(h->e, cap * sizeof *v);
		if (!v)
			return -1;
		h->e = v;
		h->cape = cap;
	}
	struct heap_entry *e = &h->e[h->ne];
	*e = (struct heap_entry){ .hash = hash, .size = size, .n = n };
	if (!(e->locs = malloc((n ? n : 1) * sizeof *locs)))
		return -1;
	memcpy(e->locs, locs, n * sizeof *locs);
	h->eix[slot] = ++h->ne;
	return 0;
}

/* The entry of this stack and size, made if new; its index or -1. */
static long entry_for(struct collect_heap *h, const uint64_t *locs, size_t n, uint64_t size)
{
	if ((h->ne + 1) * 2 > h->capeix && eix_grow(h))
		return -1;
	uint64_t hash = hash_entry(locs, n, size);
	size_t j = hash & (h->capeix - 1);
	for (; h->eix[j]; j = (j + 1) & (h->capeix - 1)) {
		const struct heap_entry *e = &h->e[h->eix[j] - 1];
		if (e->hash == hash && e->size == size && e->n == n &&
		    memcmp(e->locs, locs, n * sizeof *locs) == 0)
			return (long)h->eix[j] - 1;
	}
	return entry_add(h, locs, n, size, hash, j) ? -1 : (long)h->ne - 1;
}

/* ---- the live map: sampled blocks not freed yet ----------------------- */

static size_t home_of(uint64_t addr, size_t cap)
{
	return (size_t)((addr >> 4) * 0x9e3779b97f4a7c15ull >> 20) & (cap - 1);
}

static struct heap_block *live_find(struct collect_heap *h, uint64_t addr)
{
	if (!h->caplive)
		return NULL;
	size_t j = home_of(addr, h->caplive);
	while (h->live[j].addr && h->live[j].addr != addr)
		j = (j + 1) & (h->caplive - 1);
	return h->live[j].addr ? &h->live[j] : NULL;
}

static int live_grow(struct collect_heap *h)
{
	size_t cap = h->caplive ? h->caplive * 2 : 4096;
	struct heap_block *t = calloc(cap, sizeof *t);
	if (!t)
		return -1;
	for (size_t i = 0; i < h->caplive; i++) {
		if (!h->live[i].addr)
			continue;
		size_t j = home_of(h->live[i].addr, cap);
		while (t[j].addr)
			j = (j + 1) & (cap - 1);
		t[j] = h->live[i];
	}
	free(h->live);
	h->live = t;
	h->caplive = cap;
	return 0;
}

/* Takes the block out of the map and out of its entry's live count:
 * the slots after it in its probe run move back where lookups find them. */
static void live_remove(struct collect_heap *h, struct heap_block *b)
{
	size_t mask = h->caplive - 1, i = (size_t)(b - h->live);
	h->e[b->entry].live--;
	h->live[i].addr = 0;
	h->nlive--;
	for (size_t j = (i + 1) & mask; h->live[j].addr; j = (j + 1) & mask) {
		size_t home = home_of(h->live[j].addr, h->caplive);
		if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
			h->live[i] = h->live[j];
			h->live[j].addr = 0;
			i = j;
		}
	}
}

/* A sampled block at addr: live from now on.  A block still in the map at
 * that address was freed unseen (its FREE record dropped): it goes. */
static int live_put(struct collect_heap *h, uint64_t addr, size_t entry)
{
	struct heap_block *old = live_find(h, addr);
	if (old)
		live_remove(h, old);
	if ((h->nlive + 1) * 2 > h->caplive && live_grow(h))
		return -1;
	size_t j = home_of(addr, h->caplive);
	while (h->live[j].addr)
		j = (j + 1) & (h->caplive - 1);
	h->live[j] = (struct heap_block){ addr, entry };
	h->nlive++;
	h->e[entry].live++;
	return 0;
}

/* ---- unwinding a sampled allocation ----------------------------------- */

/* Whether name is an allocation function itself (C, glibc's entry points,
 * C++'s operator new in all its overloads). */
static int is_allocator(const char *name)
{
	static const char *const names[] = {
		"malloc", "calloc", "realloc", "reallocarray", "free", "posix_memalign",
		"aligned_alloc", "memalign", "valloc", "pvalloc", "__libc_malloc",
		"__libc_calloc", "__libc_realloc", "__libc_memalign", "__libc_valloc",
		"__libc_pvalloc", "__posix_memalign",
	};
	if (!name)
		return 0;
	if (strncmp(name, "operator new", 12) == 0)
		return 1;
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (strcmp(name, names[i]) == 0)
			return 1;
	return 0;
}

static int in_sampler(const struct sym_frame *f, const char *lib)
{
	const char *base = f->module ? strrchr(f->module, '/') : NULL;
	return f->module && (strcmp(f->module, lib) == 0 || (base && strcmp(base + 1, SAMPLER_LIB) == 0));
}

/* How many frames, from the leaf, are the allocator's.  They are trimmed
 * so that a stack starts at the code that asked for memory, as Go's heap
 * profiles start at the caller of mallocgc: a sample is taken inside the
 * sampler (its recording function, its interposed malloc: every frame in
 * the sampler's library), which the application reached through malloc
 * and friends, maybe through libstdc++'s operator new (frames named as
 * allocation functions, wherever they are).  Whole physical frames are
 * trimmed, with their inline chains; the first frame not the allocator's
 * ends the trimming. */
static size_t allocator_frames(const struct sym_stack *st, const char *lib)
{
	size_t i = 0;
	while (i < st->n) {
		size_t j = i;     /* as collect_stacks_locations groups them */
		while (j < st->n && st->frames[j].pc == st->frames[i].pc && st->frames[j].inlined)
			j++;
		const struct sym_frame *phys = &st->frames[j < st->n ? j : st->n - 1];
		if (!in_sampler(phys, lib) && !is_allocator(phys->function)) {
			/* An allocation function inlined into its caller (ld.so's
			 * calloc wrapper in allocate_dtv) is the allocator's too:
			 * the caller's Location keeps only the rest of its chain. */
			while (i < j && is_allocator(st->frames[i].function))
				i++;
			break;
		}
		i = j + 1;
	}
	return i < st->n ? i : st->n;
}

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
	size_t n = collect_stacks_locations_from(&s->stacks, &st, allocator_frames(&st, r->lib), locs,
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
	long e = entry_for(h, locs, n, a.size);
	if (e < 0 || live_put(h, a.addr, (size_t)e)) {
		s->sum.dropped_nomem++;
		return 0;
	}
	h->e[e].allocs++;
	s->sum.heap.samples++;
	return 0;
}

static int on_free(struct collect_session *s, const unsigned char *rec, uint32_t size)
{
	struct heapring_free f;
	if (size < sizeof f)
		return -1;
	memcpy(&f, rec, sizeof f);
	struct heap_block *b = live_find(s->heap, f.addr);
	if (b) {
		live_remove(s->heap, b);
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
	s->sum.heap.stacks = s->heap->ne;
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

/* Go's scaleHeapSample (runtime/pprof/protomem.go): a block of avg bytes
 * is sampled with probability 1 - exp(-avg/rate). */
static void unsample(int64_t count, int64_t bytes, uint64_t rate, int64_t *out)
{
	if (count == 0 || bytes == 0) {
		out[0] = out[1] = 0;
		return;
	}
	if (rate <= 1) {
		out[0] = count;
		out[1] = bytes;
		return;
	}
	double avg = (double)bytes / (double)count;
	double scale = 1 / (1 - exp(-avg / (double)rate));
	out[0] = (int64_t)((double)count * scale);
	out[1] = (int64_t)((double)bytes * scale);
}

struct pp_profile *collect_heap_profile(struct collect_session *s)
{
	struct collect_heap *h = s->heap;
	struct pp_profile *prof = profile_of(s);
	if (!prof)
		return NULL;
	read_counters(s);
	pp_profile_clear_samples(prof);
	for (size_t i = 0; i < h->ne; i++) {
		const struct heap_entry *e = &h->e[i];
		int64_t v[4];
		unsample(e->allocs, e->allocs * (int64_t)e->size, h->ring.hdr->rate, v);
		unsample(e->live, e->live * (int64_t)e->size, h->ring.hdr->rate, v + 2);
		struct pp_label bytes = { "bytes", NULL, (int64_t)e->size, NULL };
		if (pp_profile_add(prof, e->locs, e->n, v, &bytes, e->size != 0))
			s->sum.dropped_nomem++;
	}
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
	for (size_t i = 0; i < h->ne; i++)
		free(h->e[i].locs);
	free(h->e);
	free(h->eix);
	free(h->live);
	sym_memo_free(h->memo);
	collect_ring_close(&h->ring);
	free(h);
	s->heap = NULL;
}
