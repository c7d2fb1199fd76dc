/* heap.c — the heap and allocs kinds of run: reading the rings that the
 * allocation sampler in the command (and, with --children, in every
 * process it starts) writes (preload/heapring.h), and keeping Go's four
 * values for each allocation stack of each process.
 *
 * Reads top to bottom as the work happens:
 *   1. collect_heap_spawn: the command starts with the sampler preloaded
 *      (heap_start.c); one process image records into one ring (struct
 *      heap_proc).  Without --children that is the command, whose ring
 *      pprofc made before it started, and symbolize/ is opened at the
 *      first record, when the command's libraries (the sampler's among
 *      them) are mapped.  With --children each image asks for its ring on
 *      a socket (heap_follow.c) from its constructor, or a forked child at
 *      its first sampled allocation; symbolize/ and the process's
 *      mappings are opened before the answer, while the asker waits in
 *      the very image that will record;
 *   2. collect_heap_run: every 15 ms (at once for an ask or an exit), the
 *      heartbeat (a sampler that finds it stale stops recording: pprofc
 *      died) and the records published since, from tail to head, ring by
 *      ring.  An ALLOC record is unwound exactly as a CPU sample (all 17
 *      registers and the stack copy) against its own process, the
 *      allocator's frames are trimmed from its leaf end, and it counts for
 *      its (stack, size) entry; its block goes into the live map (address
 *      -> entry).  A FREE record takes its block out of the live map and
 *      out of the entry's live count.  A process that exits (its pidfd),
 *      or runs another program (the same pid asks again), has its ring
 *      read to the end and closed, its symbolizer freed; its entries stay.
 *      Snapshots on the way (--interval, SIGUSR1) and at the end: the
 *      command exited (after the rings are drained), or --seconds passed
 *      (every sampler is told to stop; the processes run on);
 *   3. collect_heap_profile: every process's entries as Go writes a heap
 *      profile, one profile; with --children each sample has the numeric
 *      label `pid` and the string label `process` (its name when it asked).
 *
 * The accounting (entries, live map, unsampling) is heap_account.c's,
 * shared with attach's uprobes (heap_attach.c).
 */
#include <assert.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

_Static_assert(HEAPRING_REGS == ARCH_NREGS, "the ring's registers are arch/regs.h's");

#define POLL_NS 15000000u                       /* ring reads: every 15 ms */
/* Reading one ring takes at most this long before the others, the asks
 * and the exits get their turn: a process allocating faster than pprofc
 * unwinds would otherwise keep the reader on its ring for good (and an
 * asker waits at most HEAPRING_ASK_NS). */
#define READ_SLICE_NS 20000000u
#define READ_CHECK_EVERY 64                     /* records between clock reads */

/* What the profile's comment says with --children (go tool pprof
 * -comments): which values an exited process keeps. */
#define FOLLOW_COMMENT "pprofc run --children: one profile of the command and the processes it " \
	"started, by the labels pid and process; a process that exited before the profile was " \
	"written keeps its allocations, and in inuse the sampled blocks it had not freed when it exited"

enum proc_end { PROC_LIVE, PROC_EXITED, PROC_EXECED };

/* Location ids of the stacks the memo answered, by the memo's key: most
 * records of a process come down a handful of call chains, and turning
 * each one's frames into location ids again (trimmed, names compared and
 * hashed) was most of what the reader did per sample after the memo. */
#define LOC_CACHE_MAX 4096              /* entries; past it, no more are kept */
struct loc_cached {
	uint64_t key;                   /* sym_memo_key; 0: empty */
	size_t n;
	uint64_t *locs;
};
struct loc_cache {
	struct loc_cached *slots;       /* open addressing, cap a power of 2 */
	size_t cap, used;
};

/* One process image recording into a ring of its own. */
struct heap_proc {
	pid_t pid;
	uint64_t serial;                /* 1, 2...: keeps its pcs in no mapping apart */
	int pidfd;                      /* readable once it exited; -1: none */
	enum proc_end end;
	int counted;                    /* a new process, not the exec of one followed */
	int sym_tried, prepared, broken;
	struct collect_ring ring;
	struct sym_session *sym;
	struct collect_stacks stacks;   /* its maps into the shared profile */
	struct sym_memo *memo;          /* unwinds of ALLOC records, NULL: off */
	struct loc_cache locs;          /* the memo's answers as location ids */
	struct collect_heap_account acct;
	char name[64];                  /* its comm when it asked */
};

struct collect_heap {
	struct pp_profile_spec spec;
	struct pp_profile *prof;        /* every process's stacks */
	struct heap_proc **procs;
	size_t nprocs, capprocs;
	struct collect_follow follow;   /* fd -1: not following */
	int stopped;
	char lib[PATH_MAX];             /* the sampler library's real path */
	/* Counts of rings already closed. */
	uint64_t closed_full, closed_stack, closed_untracked;
	struct sym_memo_stats closed_memo;
};

static int following(const struct collect_session *s)
{
	return s->o.children;
}

/* ---- the processes ----------------------------------------------------- */

static struct heap_proc *proc_new(struct collect_heap *h, pid_t pid)
{
	struct heap_proc **v = collect_grow(h->procs, h->nprocs, &h->capprocs, sizeof *v, 8);
	if (!v)
		return NULL;
	h->procs = v;
	struct heap_proc *p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	p->pid = pid;
	p->serial = h->nprocs + 1;
	p->pidfd = -1;
	p->counted = 1;
	p->ring.fd = -1;
	h->procs[h->nprocs++] = p;
	return p;
}

/* symbolize/ and the process's mappings into the shared profile: at
 * once for a followed process (it waits for its ring meanwhile), at the
 * first record for the command when not following (its libraries are
 * mapped by then). */
static int proc_open_symbols(struct collect_session *s, struct heap_proc *p)
{
	struct collect_heap *h = s->heap;
	char why[256];
	if (p->sym || p->sym_tried)
		return p->sym ? 0 : -1;
	p->sym_tried = 1;
	if (!(p->sym = sym_open(attach_mm_pid(p->pid), why, sizeof why)))
		return -1;
	/* The command's mappings first (go tool pprof names the profile after
	 * mapping 1); a followed process's when it has its first stack. */
	if (collect_stacks_init_shared(&p->stacks, p->pid, p->sym, h->prof,
				       following(s) ? p->serial : 0, p->pid != s->child)) {
		collect_stacks_free(&p->stacks);
		sym_close(p->sym);
		p->sym = NULL;
		return -1;
	}
	return 0;
}

/* The symbolizer warmed up and the unwind memo, at the first record. */
static int proc_prepare(struct collect_session *s, struct heap_proc *p)
{
	if (proc_open_symbols(s, p))
		return -1;
	if (p->prepared)
		return 0;
	p->prepared = 1;
	sym_prepare(p->sym);
	/* Records are snapshots taken at a few pcs inside the sampler, most
	 * from a handful of call chains: the memo unwinds each chain once
	 * (symbolize/memo.c, exact).  PPROFC_UNWIND_MEMO=0 turns it off: a
	 * testing switch, to compare profiles with and without it. */
	const char *memo = getenv("PPROFC_UNWIND_MEMO");
	if (!memo || strcmp(memo, "0") != 0)
		p->memo = sym_memo_new();
	return 0;
}

/* ---- unwinding a sampled allocation ----------------------------------- */

static size_t loc_slot(const struct loc_cache *c, uint64_t key)
{
	return (size_t)((key * 0x9e3779b97f4a7c15ull) >> 32) & (c->cap - 1);
}

static const struct loc_cached *loc_find(const struct loc_cache *c, uint64_t key)
{
	if (!c->cap)
		return NULL;
	for (size_t i = loc_slot(c, key);; i = (i + 1) & (c->cap - 1)) {
		if (c->slots[i].key == key)
			return &c->slots[i];
		if (!c->slots[i].key)
			return NULL;
	}
}

/* Keeps a copy of locs under key; nothing when full or out of memory. */
static void loc_put(struct loc_cache *c, uint64_t key, const uint64_t *locs, size_t n)
{
	if (!c->slots) {
		if (!(c->slots = calloc(2 * LOC_CACHE_MAX, sizeof *c->slots)))
			return;
		c->cap = 2 * LOC_CACHE_MAX;
	}
	if (c->used >= LOC_CACHE_MAX)
		return;
	uint64_t *copy = malloc(n * sizeof *copy);
	if (!copy)
		return;
	memcpy(copy, locs, n * sizeof *copy);
	size_t i = loc_slot(c, key);
	while (c->slots[i].key)
		i = (i + 1) & (c->cap - 1);
	c->slots[i] = (struct loc_cached){ key, n, copy };
	c->used++;
}

static void loc_cache_free(struct loc_cache *c)
{
	for (size_t i = 0; i < c->cap; i++)
		free(c->slots[i].locs);
	free(c->slots);
	*c = (struct loc_cache){ 0 };
}

/* The allocation's stack as location ids, the allocator's frames trimmed;
 * 0 when it has none (not copied, or not unwound).  A stack the memo
 * answered is turned into ids once, then found by its key, which is
 * handed back in *stack_key (left alone otherwise): the same key, the
 * same ids, for the accounting's own lookup. */
static size_t stack_of(struct collect_session *s, struct heap_proc *p, const struct heapring_alloc *a,
		       const unsigned char *stack, uint64_t *locs, uint64_t *stack_key)
{
	struct arch_regs regs = { .known = ARCH_REGS_ALL };
	struct sym_stack st;
	if (!a->stack_len)
		return 0;
	if (proc_prepare(s, p)) {
		s->sum.heap.no_maps++;
		return 0;
	}
	memcpy(regs.v, a->regs, sizeof regs.v);
	struct sym_snapshot snap = { a->tid, &regs, REG(&regs, SP), stack, a->stack_len,
				     a->stack_len >= p->ring.hdr->stack_size, attach_read_mem };
	uint64_t key = sym_memo_key(p->sym, p->memo, &snap);
	const struct loc_cached *hit = key ? loc_find(&p->locs, key) : NULL;
	if (hit) {
		memcpy(locs, hit->locs, hit->n * sizeof *locs);
		*stack_key = key;
		return hit->n;
	}
	if ((key ? sym_memo_frames(p->memo, key, &st) : sym_unwind_memo(p->sym, p->memo, &snap, &st)) ||
	    st.n == 0) {
		s->sum.unwind_failures++;
		sym_stack_free(&st);
		return 0;
	}
	s->sum.unwind_failures += !st.complete;
	s->sum.cut_short += st.cut_short != 0;
	size_t n = collect_stacks_locations_from(&p->stacks, &st, collect_heap_trim(&st, s->heap->lib),
						 locs, COLLECT_MAX_LOCS);
	sym_stack_free(&st);
	if (key && n) {
		loc_put(&p->locs, key, locs, n);
		*stack_key = key;
	}
	return n;
}

static int on_alloc(struct collect_session *s, struct heap_proc *p, const unsigned char *rec,
		    uint32_t size)
{
	struct heapring_alloc a;
	uint64_t locs[COLLECT_MAX_LOCS], key = 0;
	if (size < sizeof a)
		return -1;
	memcpy(&a, rec, sizeof a);
	if (a.stack_len > size - sizeof a || a.stack_len > p->ring.hdr->stack_size)
		return -1;
	size_t n = stack_of(s, p, &a, rec + sizeof a, locs, &key);
	if (!n) {
		/* No symbolizer at all: the marker still goes into the
		 * shared profile. */
		if (!p->stacks.prof) {
			p->stacks.prof = s->heap->prof;
			p->stacks.shared = 1;
		}
		locs[0] = collect_stacks_marker(&p->stacks, COLLECT_MARK_NO_ALLOC_STACK);
		n = locs[0] != 0;
	}
	if (collect_heap_alloc(&p->acct, a.addr, key, locs, n, a.size)) {
		s->sum.dropped_nomem++;
		return 0;
	}
	s->sum.heap.samples++;
	return 0;
}

static int on_free(struct collect_session *s, struct heap_proc *p, const unsigned char *rec,
		   uint32_t size)
{
	struct heapring_free f;
	if (size < sizeof f)
		return -1;
	memcpy(&f, rec, sizeof f);
	if (collect_heap_free_block(&p->acct, f.addr)) {
		s->sum.heap.frees++;
	} else {
		s->sum.heap.unmatched_frees++;
	}
	return 0;
}

/* ---- reading a ring -------------------------------------------------- */

static void beat(struct collect_ring *r)
{
	__atomic_store_n(&r->hdr->reader_alive_ns, collect_now_ns(), __ATOMIC_RELEASE);
}

/* Checks and handles the record of type at rec; -1 if malformed. */
static int on_record(struct collect_session *s, struct heap_proc *p, uint64_t head,
		     const unsigned char *rec, uint32_t size, size_t pos)
{
	struct collect_ring *r = &p->ring;
	uint32_t type = ((const struct heapring_rec *)rec)->type;
	if (size % 8 || size < sizeof(struct heapring_rec) || size > r->data_size - pos ||
	    size > head - r->tail)
		return -1;
	if (type == HEAPRING_ALLOC)
		return on_alloc(s, p, rec, size);
	if (type == HEAPRING_FREE)
		return on_free(s, p, rec, size);
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

/* Hands what was consumed back to the writers: tail (release: the zeroes
 * land first), and the heartbeat.  Once every READ_CHECK_EVERY records,
 * not once a record, while the ring has room: the writers read both lines
 * at every sample, and each store of ours would make them miss (cache
 * lines between CPUs).  Once the ring is half full, at every record: a
 * sample whose thread's stack is not proven yet reserves room for a whole
 * stack copy (32 KiB by default), and a burst of them can fill even the
 * default 64 MiB ring while the reader is slow (the sanitizer build's, in
 * test_preload: one record dropped when 64 of them were held back). */
static void give_back(struct collect_ring *r)
{
	__atomic_store_n(&r->hdr->tail, r->tail, __ATOMIC_RELEASE);
	beat(r);
}

/* The records ahead of the one being read, asked into the cache before
 * they are needed.  Each was written by another CPU: on pure churn perf
 * annotate put most of drain_until's samples (a quarter of the reader's)
 * on the first load of a record's size word, and most of memo_find's on
 * its loads of the stack words.  While one record is read (~1.5 us), the
 * lines of the next PREFETCH_AHEAD bytes arrive: the reader's CPU per
 * record 1.55 -> 1.35 us (medians of 4 alternating runs; 256 bytes ahead
 * gave 1.48).  Only lines far behind head, where every writer reserved
 * long ago and has published: a line still being written would be taken
 * from its writer, a miss in the target.  *upto: where the lines asked
 * for so far end. */
#define PREFETCH_AHEAD 1024
#define PREFETCH_BEHIND_HEAD 65536
#define CACHE_LINE 64

static void prefetch_ahead(const struct collect_ring *r, uint64_t pos, uint64_t head, uint64_t *upto)
{
	if (head - pos < PREFETCH_AHEAD + PREFETCH_BEHIND_HEAD)
		return;
	uint64_t from = *upto > pos ? *upto : pos & ~(uint64_t)(CACHE_LINE - 1);
	for (; from < pos + PREFETCH_AHEAD; from += CACHE_LINE)
		__builtin_prefetch(r->data + (from & (r->data_size - 1)));
	*upto = from;
}

/* Consumes the records of p's ring published so far, until the clock
 * passes until (0: all of them).  Each is zeroed before tail moves past
 * it: a writer's reservation must find 0 in its size word until it
 * publishes.  A malformed record ends the reading of that ring for good
 * (and tells its sampler to stop): nothing after it can be trusted to be
 * aligned.  Returns whether anything was read. */
static int drain_until(struct collect_session *s, struct heap_proc *p, uint64_t until)
{
	struct collect_ring *r = &p->ring;
	uint64_t from = r->tail, given = r->tail, fetched = 0;
	for (unsigned n = 1; r->hdr && !p->broken; n++) {
		uint64_t head = __atomic_load_n(&r->hdr->head, __ATOMIC_ACQUIRE);
		if (r->tail != given && (n % READ_CHECK_EVERY == 0 || head - given > r->data_size / 2)) {
			give_back(r);
			given = r->tail;
		}
		if (until && n % READ_CHECK_EVERY == 0 && collect_now_ns() >= until)
			break;
		size_t pos = (size_t)(r->tail & (r->data_size - 1));
		unsigned char *rec = r->data + pos;
		uint32_t size = r->tail == head ? 0 : __atomic_load_n((uint32_t *)rec, __ATOMIC_ACQUIRE);
		if (!size)
			break;          /* none, or reserved and not published yet */
		prefetch_ahead(r, r->tail + size, head, &fetched);
		if (on_record(s, p, head, rec, size, pos)) {
			p->broken = 1;
			s->sum.heap.bad_records++;
			__atomic_store_n(&r->hdr->stopped, 1, __ATOMIC_RELEASE);
			break;
		}
		memset(rec, 0, written(rec, size));
		r->tail += size;
	}
	if (r->hdr && r->tail != from)
		give_back(r);
	return r->tail != from;
}

static int drain(struct collect_session *s, struct heap_proc *p)
{
	return drain_until(s, p, 0);
}

/* A slice of reading for every ring; whether anything was read. */
static int drain_all(struct collect_session *s)
{
	int busy = 0;
	for (size_t i = 0; i < s->heap->nprocs; i++)
		busy |= drain_until(s, s->heap->procs[i], collect_now_ns() + READ_SLICE_NS);
	return busy;
}

static void beat_all(struct collect_heap *h)
{
	for (size_t i = 0; i < h->nprocs; i++)
		if (h->procs[i]->ring.hdr)
			beat(&h->procs[i]->ring);
}

/* The image is gone (exited, or replaced by exec): what it published is
 * read (unless the profile is done), its ring, symbolizer and maps freed;
 * its entries stay. */
static void proc_close(struct collect_session *s, struct heap_proc *p, enum proc_end end)
{
	struct collect_heap *h = s->heap;
	assert(p->end == PROC_LIVE);
	if (!h->stopped)
		drain(s, p);
	if (p->ring.hdr) {
		h->closed_full += __atomic_load_n(&p->ring.hdr->dropped_full, __ATOMIC_RELAXED);
		h->closed_stack += __atomic_load_n(&p->ring.hdr->dropped_stack, __ATOMIC_RELAXED);
		h->closed_untracked += __atomic_load_n(&p->ring.hdr->untracked_frees, __ATOMIC_RELAXED);
	}
	struct sym_memo_stats ms = sym_memo_stats(p->memo);
	h->closed_memo.hits += ms.hits;
	h->closed_memo.misses += ms.misses;
	h->closed_memo.inserted += ms.inserted;
	collect_ring_close(&p->ring);
	sym_memo_free(p->memo);
	p->memo = NULL;
	loc_cache_free(&p->locs);
	collect_stacks_free(&p->stacks);
	sym_close(p->sym);
	p->sym = NULL;
	if (p->pidfd >= 0)
		close(p->pidfd);
	p->pidfd = -1;
	p->end = end;
}

/* ---- following: the asks ------------------------------------------------- */

static void proc_name(pid_t pid, char *name, size_t len)
{
	char path[64];
	size_t n = 0;
	snprintf(path, sizeof path, "/proc/%d/comm", (int)pid);
	if (attach_read_small(path, name, len - 1, &n))
		n = 0;
	name[n && name[n - 1] == '\n' ? n - 1 : n] = 0;
}

/* A ring for the asker, its symbolizer opened while it waits in the
 * image that will record.  0, or -1 (then it gets no answer: it reads
 * end-of-file and records nothing). */
static int proc_start(struct collect_session *s, struct heap_proc *p)
{
	struct collect_error err;
	if (collect_ring_make(&p->ring, COLLECT_RING_DATA_SIZE, 1, &s->o, &err))
		return -1;
	proc_name(p->pid, p->name, sizeof p->name);
	p->pidfd = collect_follow_pidfd(p->pid);
	return p->pidfd < 0 || proc_open_symbols(s, p) ? -1 : 0;
}

/* An ask from pid on conn.  The same pid asking again has run another
 * program (exec): its previous image is done. */
static void on_ask(struct collect_session *s, int conn, pid_t pid)
{
	struct collect_heap *h = s->heap;
	int exec = 0;
	for (size_t i = 0; i < h->nprocs; i++) {
		struct heap_proc *old = h->procs[i];
		if (old->pid == pid && old->end == PROC_LIVE) {
			proc_close(s, old, PROC_EXECED);
			exec = 1;
		}
	}
	struct heap_proc *p = h->stopped ? NULL : proc_new(h, pid);
	int ready = p && proc_start(s, p) == 0;
	if (ready && collect_follow_answer(conn, p->ring.fd) == 0) {
		p->counted = !exec;
		/* Mapped on both sides now: the descriptor is not needed. */
		close(p->ring.fd);
		p->ring.fd = -1;
		return;
	}
	if (!ready)
		close(conn);    /* the asker reads end-of-file (an answer closes it) */
	if (p) {
		/* Nothing was recorded into it: it was never followed. */
		assert(p == h->procs[h->nprocs - 1]);
		proc_close(s, p, PROC_EXITED);
		free(p);
		h->nprocs--;
	}
	h->follow.refused++;
}

static void take_asks(struct collect_session *s)
{
	int conn;
	pid_t pid;
	while (collect_follow_next(&s->heap->follow, s->child, &conn, &pid) == 1)
		on_ask(s, conn, pid);
}

/* Waits up to timeout_ms for an ask or a followed process's exit, and
 * handles them.  Without --children, a plain sleep. */
static void wait_for_work(struct collect_session *s, int timeout_ms)
{
	struct collect_heap *h = s->heap;
	if (!following(s)) {
		struct timespec ts = { 0, (long)timeout_ms * 1000000 };
		if (timeout_ms)
			nanosleep(&ts, NULL);   /* a signal cuts it short: fine */
		return;
	}
	struct pollfd *fds = calloc(h->nprocs + 1, sizeof *fds);
	struct heap_proc **who = calloc(h->nprocs + 1, sizeof *who);
	size_t n = 0;
	if (fds && who) {
		fds[n++] = (struct pollfd){ h->follow.fd, POLLIN, 0 };
		for (size_t i = 0; i < h->nprocs; i++)
			if (h->procs[i]->end == PROC_LIVE && h->procs[i]->pidfd >= 0) {
				who[n] = h->procs[i];
				fds[n++] = (struct pollfd){ h->procs[i]->pidfd, POLLIN, 0 };
			}
		if (poll(fds, n, timeout_ms) > 0) {
			for (size_t i = 1; i < n; i++)
				if (fds[i].revents)
					proc_close(s, who[i], PROC_EXITED);
			if (fds[0].revents)
				take_asks(s);
		}
	} else {
		take_asks(s);   /* out of memory: at least the asks */
	}
	free(fds);
	free(who);
}

/* ---- the session --------------------------------------------------------- */

/* The samplers' own counts, over every ring, into the summary. */
static void read_counters(struct collect_session *s)
{
	struct collect_heap *h = s->heap;
	struct collect_heap_summary *sum = &s->sum.heap;
	sum->dropped_full = h->closed_full;
	sum->no_stack = h->closed_stack;
	sum->untracked_frees = h->closed_untracked;
	sum->memo_hits = h->closed_memo.hits;
	sum->memo_misses = h->closed_memo.misses;
	sum->memo_inserted = h->closed_memo.inserted;
	sum->stacks = sum->processes = sum->processes_exited = 0;
	for (size_t i = 0; i < h->nprocs; i++) {
		const struct heap_proc *p = h->procs[i];
		struct heapring_header *hdr = p->ring.hdr;
		sum->stacks += p->acct.ne;
		sum->processes += p->counted;
		sum->processes_exited += p->end == PROC_EXITED;
		if (!hdr)
			continue;
		sum->dropped_full += __atomic_load_n(&hdr->dropped_full, __ATOMIC_RELAXED);
		sum->no_stack += __atomic_load_n(&hdr->dropped_stack, __ATOMIC_RELAXED);
		sum->untracked_frees += __atomic_load_n(&hdr->untracked_frees, __ATOMIC_RELAXED);
		struct sym_memo_stats ms = sym_memo_stats(p->memo);
		sum->memo_hits += ms.hits;
		sum->memo_misses += ms.misses;
		sum->memo_inserted += ms.inserted;
	}
	sum->asks_refused = h->follow.refused;
	s->sum.st.samples = sum->samples;
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

/* The command exited: what its ring holds is read to the end, the
 * followed processes that exited meanwhile are closed as such (which
 * reads theirs to the end), and those still running get one slice. */
static void finish_reading(struct collect_session *s)
{
	struct collect_heap *h = s->heap;
	for (size_t i = 0; i < h->nprocs; i++)
		if (h->procs[i]->pid == s->child)
			drain(s, h->procs[i]);
	if (following(s))
		wait_for_work(s, 0);
	drain_all(s);
}

void collect_heap_run(struct collect_session *s)
{
	uint64_t end = s->o.seconds > 0 ? s->start_ns + (uint64_t)(s->o.seconds * 1e9) : 0;
	uint64_t next = s->o.interval > 0 ? s->start_ns + (uint64_t)(s->o.interval * 1e9) : 0;
	uint64_t next_progress = s->start_ns + 1000000000u;
	for (;;) {
		beat_all(s->heap);
		int busy = drain_all(s);   /* records came: more may be waiting */
		if (collect_child_exited(s)) {
			finish_reading(s);      /* what was published before the exit */
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
		wait_for_work(s, busy ? 0 : (int)(POLL_NS / 1000000));
	}
	collect_heap_stop(s);
}

void collect_heap_stop(struct collect_session *s)
{
	struct collect_heap *h = s->heap;
	if (h->stopped)
		return;
	h->stopped = 1;
	/* --seconds passed, pprofc was told to stop, or the command exited:
	 * the processes still running run on, their samplers idle, and no
	 * new one is followed (the socket's name is gone: they cannot
	 * connect). */
	collect_follow_close(&h->follow);
	for (size_t i = 0; i < h->nprocs; i++)
		if (h->procs[i]->ring.hdr)
			__atomic_store_n(&h->procs[i]->ring.hdr->stopped, 1, __ATOMIC_RELEASE);
	read_counters(s);
	s->sum.target_exited = s->child_reaped;
	s->sum.exit_status = s->child_reaped ? s->child_status : -1;
}

struct pp_profile *collect_heap_profile(struct collect_session *s)
{
	struct collect_heap *h = s->heap;
	uint64_t rate = s->o.heap_rate ? s->o.heap_rate : 1;
	read_counters(s);
	pp_profile_clear_samples(h->prof);
	for (size_t i = 0; i < h->nprocs; i++) {
		struct heap_proc *p = h->procs[i];
		struct pp_label who[2] = { { "pid", NULL, p->pid, NULL },
					   { "process", p->name[0] ? p->name : "?", 0, NULL } };
		s->sum.dropped_nomem += collect_heap_account_add(&p->acct, h->prof, rate, who,
								 following(s) ? 2 : 0);
	}
	return h->prof;
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
	struct collect_heap *h = s->heap;
	s->o = *o;
	s->sum.exit_status = -1;
	s->sum.engine = "preload";
	h->follow.fd = -1;
	collect_spec(o, &h->spec);
	if (o->children)
		h->spec.comment = FOLLOW_COMMENT;
	struct heap_proc *cmd = NULL;
	if (!(h->prof = pp_profile_new(&h->spec)) || (!o->children && !(cmd = proc_new(h, 0)))) {
		snprintf(err->msg, sizeof err->msg, "out of memory");
		collect_close(s);
		return NULL;
	}
	if (o->children && collect_follow_open(&h->follow, getpid(), err)) {
		collect_close(s);
		return NULL;
	}
	/* Without --children the command's ring is made here and passed to
	 * it; with it, the command asks for its ring like its children. */
	struct collect_ring none = { .fd = -1 };
	s->pid = collect_heap_start(argv, o, cmd ? &cmd->ring : &none, o->children ? h->follow.name : NULL,
				    h->lib, err, status);
	if (s->pid < 0) {
		collect_close(s);
		return NULL;
	}
	if (cmd)
		cmd->pid = s->pid;
	s->child = s->pid;
	s->start_ns = collect_now_ns();
	return s;
}

void collect_heap_free(struct collect_session *s)
{
	struct collect_heap *h = s->heap;
	if (!h)
		return;
	for (size_t i = 0; i < h->nprocs; i++) {
		struct heap_proc *p = h->procs[i];
		if (p->end == PROC_LIVE)
			proc_close(s, p, PROC_EXITED);
		collect_heap_account_free(&p->acct);
		free(p);
	}
	free(h->procs);
	collect_follow_close(&h->follow);
	pp_profile_free(h->prof);
	free(h);
	s->heap = NULL;
}
