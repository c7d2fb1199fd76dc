/* heap_account.c — the accounting of the heap and allocs kinds, whoever
 * reads the allocations: the ring of `run`'s preloaded sampler (heap.c)
 * or the uprobes of `attach` (heap_attach.c).
 *
 * Entries are keyed by stack and block size, as Go's buckets are: the
 * unsampling scale depends on the size, so blocks of different sizes on
 * one stack are scaled each with its own (Go's `bytes` label is then the
 * exact size).  The live map (address -> entry) holds the sampled blocks
 * not freed yet.  The profile is Go's (docs/FORMATS.md §6): counts
 * unsampled with scaleHeapSample.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

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

/* ---- the entries: (stack, size) -> counts ---------------------------- */

static uint64_t hash_entry(const uint64_t *locs, size_t n, uint64_t size)
{
	uint64_t h = 1469598103934665603ull ^ size;
	for (size_t i = 0; i < n; i++)
		h = (h ^ locs[i]) * 1099511628211ull;
	return h;
}

static int eix_grow(struct collect_heap_account *h)
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

static int entry_add(struct collect_heap_account *h, const uint64_t *locs, size_t n, uint64_t size,
		     uint64_t hash, size_t slot)
{
	struct heap_entry *v = collect_grow(h->e, h->ne, &h->cape, sizeof *v, 256);
	if (!v)
		return -1;
	h->e = v;
	struct heap_entry *e = &h->e[h->ne];
	*e = (struct heap_entry){ .hash = hash, .size = size, .n = n };
	if (!(e->locs = collect_copy_locs(locs, n)))
		return -1;
	h->eix[slot] = ++h->ne;
	return 0;
}

/* The entry of this stack and size, made if new; its index or -1. */
static long entry_for(struct collect_heap_account *h, const uint64_t *locs, size_t n, uint64_t size)
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

/* ---- entries by stack key: (key, size) -> entry ------------------------ */

/* One slot of the keyed index (key 0: empty).  Inline, so that a sample
 * whose stack has a key costs one cache line here, not the three of
 * entry_for (index, entry, its locs: perf record of the heap reader on
 * pure churn put ~28% of its samples in entry_for and memcmp). */
struct heap_keyed {
	uint64_t key, size;
	size_t entry;
};

static size_t keyed_home(uint64_t key, uint64_t size, size_t cap)
{
	return (size_t)(((key ^ size * 0xff51afd7ed558ccdull) * 0x9e3779b97f4a7c15ull) >> 24) & (cap - 1);
}

static size_t keyed_slot_home(const void *slot, size_t cap)
{
	const struct heap_keyed *k = slot;
	return keyed_home(k->key, k->size, cap);
}

static int kix_grow(struct collect_heap_account *h)
{
	struct heap_keyed *v = collect_table_grow(h->kix, &h->capkix, sizeof *v, 1024, keyed_slot_home);
	if (!v)
		return -1;
	h->kix = v;
	return 0;
}

static long entry_keyed(struct collect_heap_account *h, uint64_t key, const uint64_t *locs, size_t n,
			uint64_t size)
{
	if ((h->nkix + 1) * 2 > h->capkix && kix_grow(h))
		return -1;
	size_t j = keyed_home(key, size, h->capkix);
	for (; h->kix[j].key; j = (j + 1) & (h->capkix - 1))
		if (h->kix[j].key == key && h->kix[j].size == size)
			return (long)h->kix[j].entry;
	long e = entry_for(h, locs, n, size);
	if (e >= 0) {
		h->kix[j] = (struct heap_keyed){ key, size, (size_t)e };
		h->nkix++;
	}
	return e;
}

/* ---- the live map: sampled blocks not freed yet ----------------------- */

static size_t home_of(uint64_t addr, size_t cap)
{
	return (size_t)((addr >> 4) * 0x9e3779b97f4a7c15ull >> 20) & (cap - 1);
}

static struct heap_block *live_find(struct collect_heap_account *h, uint64_t addr)
{
	if (!h->caplive)
		return NULL;
	size_t j = home_of(addr, h->caplive);
	while (h->live[j].addr && h->live[j].addr != addr)
		j = (j + 1) & (h->caplive - 1);
	return h->live[j].addr ? &h->live[j] : NULL;
}

static size_t block_home(const void *slot, size_t cap)
{
	return home_of(((const struct heap_block *)slot)->addr, cap);
}

static int live_grow(struct collect_heap_account *h)
{
	struct heap_block *t = collect_table_grow(h->live, &h->caplive, sizeof *t, 4096, block_home);
	if (!t)
		return -1;
	h->live = t;
	return 0;
}

/* Takes the block out of the map and out of its entry's live count:
 * the slots after it in its probe run move back where lookups find them. */
static void live_remove(struct collect_heap_account *h, struct heap_block *b)
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
static int live_put(struct collect_heap_account *h, uint64_t addr, size_t entry)
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

/* ---- trimming the allocator's frames ------------------------------------ */

/* Whether name is an allocation function itself (C, glibc's entry points,
 * C++'s operator new in all its overloads). */
static int is_allocator(const char *name)
{
	static const char *const names[] = {
		"malloc", "calloc", "realloc", "reallocarray", "free", "posix_memalign",
		"aligned_alloc", "memalign", "valloc", "pvalloc", "__libc_malloc",
		"__libc_calloc", "__libc_realloc", "__libc_memalign", "__libc_valloc",
		"__libc_pvalloc", "__posix_memalign", "__libc_reallocarray",
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
size_t collect_heap_trim(const struct sym_stack *st, const char *lib)
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


int collect_heap_alloc(struct collect_heap_account *h, uint64_t addr, uint64_t stack_key,
		       const uint64_t *locs, size_t n, uint64_t size)
{
	long e = stack_key ? entry_keyed(h, stack_key, locs, n, size) : entry_for(h, locs, n, size);
	if (e < 0 || live_put(h, addr, (size_t)e))
		return -1;
	h->e[e].allocs++;
	return 0;
}

int collect_heap_free_block(struct collect_heap_account *h, uint64_t addr)
{
	struct heap_block *b = live_find(h, addr);
	if (b)
		live_remove(h, b);
	return b != NULL;
}

uint64_t collect_heap_account_add(struct collect_heap_account *h, struct pp_profile *prof,
				  uint64_t rate, const struct pp_label *extra, size_t n_extra)
{
	uint64_t dropped = 0;
	struct pp_label labels[PP_MAX_LABELS];
	if (n_extra >= PP_MAX_LABELS)
		return h->ne;
	for (size_t i = 0; i < h->ne; i++) {
		const struct heap_entry *e = &h->e[i];
		int64_t v[4];
		size_t nl = 0;
		unsample(e->allocs, e->allocs * (int64_t)e->size, rate, v);
		unsample(e->live, e->live * (int64_t)e->size, rate, v + 2);
		/* Go's label, omitted when 0 (a reader drops it anyway). */
		if (e->size)
			labels[nl++] = (struct pp_label){ "bytes", NULL, (int64_t)e->size, NULL };
		for (size_t j = 0; j < n_extra; j++)
			labels[nl++] = extra[j];
		if (pp_profile_add(prof, e->locs, e->n, v, labels, nl))
			dropped++;
	}
	return dropped;
}

uint64_t collect_heap_account_profile(struct collect_heap_account *h, struct pp_profile *prof,
				      uint64_t rate)
{
	pp_profile_clear_samples(prof);
	return collect_heap_account_add(h, prof, rate, NULL, 0);
}

void collect_heap_account_free(struct collect_heap_account *h)
{
	for (size_t i = 0; i < h->ne; i++)
		free(h->e[i].locs);
	free(h->e);
	free(h->eix);
	free(h->kix);
	free(h->live);
	memset(h, 0, sizeof *h);
}
