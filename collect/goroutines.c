/* goroutines.c — the goroutines of a live Go program, as Go's own
 * goroutine?debug=2 shows them, read from outside without stopping it.
 *
 * Reads top to bottom as the work happens:
 *   1. the runtime's layouts, from the binary's DWARF (symbolize/goruntime.h);
 *   2. runtime.allgs, then each g: its id, status, wait reason, and where
 *      it would resume (gobuf pc, sp, bp; or the pc and sp of the system
 *      call it is in), and its stack from there up.  Nothing is stopped:
 *      each g and its stack are read again after the stack, and read
 *      anew (at most MAX_TRIES times) if either changed meanwhile;
 *   3. the stacks unwound (any symbolizer session: collect_go_unwind); a
 *      running goroutine takes the stack of its thread from the dump,
 *      which stopped that thread (never one blocked in a system call);
 *   4. the view, filtered as Go filters it at its default traceback level
 *      (runtime.Stack, goroutine?debug=2: Go 1.19's src/runtime/traceback.go):
 *      no runtime goroutine (its first function is in package runtime,
 *      but runtime.main, and the finalizer goroutine while it runs user
 *      code), no unexported runtime frame; and the same goroutines' stacks
 *      as Go's goroutine profile records them (every frame), for the
 *      goroutine/count profile dump.c builds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../attach/snapshot.h"
#include "../symbolize/goruntime.h"
#include "goroutines.h"
#include "internal.h"

/* Go's g status values (runtime2.go), the same from Go 1.14 on; Go 1.26
 * added leaked (a goroutine the GC found blocked for good, shown with its
 * wait reason) and deadextra (a dead g kept for an extra M's cgo
 * callbacks, left out of tracebacks as a dead one is). */
enum { G_RUNNING = 2, G_SYSCALL = 3, G_WAITING = 4, G_DEAD = 6, G_LEAKED = 10,
       G_DEADEXTRA = 11, G_SCAN = 0x1000 };
/* gStatusStrings, indexed by status. */
static const char *const status_text[] = { "idle", "runnable", "running", "syscall", "waiting",
					   "", "dead", "", "copystack", "preempted", "leaked",
					   "waiting for cgo callback" };

#define MAX_TRIES 5
#define MAX_GS (1u << 24)       /* more is a misread slice, not goroutines */
/* pprof labels: more than these is not a label set a program made. */
#define MAX_LABELS 64
#define MAX_LABEL_LEN 1024
#define MAX_MAP_B 8             /* 256 buckets: far more than 64 entries need */
#define MAX_BUCKETS 1024        /* buckets visited, overflow ones included */
/* map.go: a slot's tophash below this is empty or evacuated; its flag of
 * a grow to the same size (oldbuckets as many as buckets). */
enum { MIN_TOP_HASH = 5, SAME_SIZE_GROW = 8 };

struct gor {
	uint64_t addr;
	int dead;
	int64_t goid, parent;
	uint32_t status;                /* with the scan bit */
	unsigned waitreason;
	int64_t waitsince;
	uint64_t pc, sp, bp;            /* where to unwind from (bp 0: unknown) */
	uint64_t gopc, startpc, m, lockedm, lo, hi;
	pid_t tid;                      /* the thread running it (m.procid) */
	unsigned char *stack;
	size_t stack_len;
	int cut;                        /* the copy stopped at the size limit */
	int unstable;                   /* never read the same twice */
	char error[160];                /* no stack: why */
	struct sym_stack st;
	const struct sym_stack *from;   /* the stack shown: st or its thread's */
	struct pp_frame *frames;
	struct pp_frame created;
	struct sym_frame *rec;          /* as Go's goroutine profile records it */
	size_t nrec;
	uint64_t labels_at;             /* g.labels: its *labelMap, 0: none */
	struct pp_go_label *labels;     /* read from it, sorted by key; strings owned */
	size_t nlabels;
	int has_labels;
	int labels_bad;                 /* not read whole, so dropped */
};

struct collect_go {
	pid_t pid;
	struct sym_go_layout L;
	size_t stack_limit;
	struct gor *g;
	size_t n;
	char **reasons;                 /* waitReasonStrings */
	size_t nreasons;
	char version[64];
	int fing_running;
	uint64_t read_at_ns;            /* CLOCK_MONOTONIC, as Go's nanotime() */
	struct collect_go_stats stats;
	char **names;                   /* names made here (".abi0" removed) */
	size_t nnames, capnames;
	struct pp_goroutine *view_g;
	struct pp_goroutines view;
	size_t *shown;                  /* view entry -> its g */
};

static uint64_t get(const unsigned char *buf, struct sym_go_field f)
{
	uint64_t v = 0;
	for (size_t i = f.size; i-- > 0;)       /* little-endian */
		v = v << 8 | buf[f.off + i];
	return v;
}

static int read_word(pid_t pid, uint64_t addr, uint64_t *v)
{
	return attach_read_mem(pid, addr, v, 8) == 8 ? 0 : -1;
}

/* A Go string {ptr, len} at addr, at most len - 1 bytes of it. */
static void read_gostring(pid_t pid, uint64_t addr, char *buf, size_t len)
{
	uint64_t h[2];
	buf[0] = 0;
	if (attach_read_mem(pid, addr, h, sizeof h) != sizeof h)
		return;
	size_t n = h[1] < len - 1 ? (size_t)h[1] : len - 1;
	ssize_t r = n ? attach_read_mem(pid, h[0], buf, n) : 0;
	buf[r > 0 ? r : 0] = 0;
}

/* The runtime's own words for wait reasons, its version, whether the
 * finalizer goroutine runs user code. */
static int read_globals(struct collect_go *go)
{
	const struct sym_go_layout *L = &go->L;
	if (L->version[0])
		snprintf(go->version, sizeof go->version, "%s", L->version);
	else if (L->build_version)
		read_gostring(go->pid, L->build_version, go->version, sizeof go->version);
	uint8_t fr = 0;
	if (L->fing_running && attach_read_mem(go->pid, L->fing_running, &fr, 1) == 1)
		go->fing_running = fr != 0;
	go->reasons = calloc(L->n_wait_reasons ? L->n_wait_reasons : 1, sizeof *go->reasons);
	if (!go->reasons)
		return -1;
	go->nreasons = L->n_wait_reasons;
	for (size_t i = 0; i < go->nreasons; i++) {
		char buf[64];
		read_gostring(go->pid, L->wait_reasons + 16 * i, buf, sizeof buf);
		if (!(go->reasons[i] = strdup(buf)))
			return -1;
	}
	return 0;
}

/* runtime.allgs: the slice header read before and after its array, the
 * same both times (it grows by reallocation while goroutines start). */
static int read_allgs(struct collect_go *go, uint64_t **ptrs, size_t *n)
{
	for (int t = 0; t < MAX_TRIES; t++) {
		uint64_t h[3], h2[3];
		if (attach_read_mem(go->pid, go->L.allgs, h, sizeof h) != sizeof h || h[1] > MAX_GS)
			return -1;
		uint64_t *p = malloc((h[1] ? h[1] : 1) * 8);
		if (!p)
			return -1;
		if ((h[1] == 0 || attach_read_mem(go->pid, h[0], p, h[1] * 8) == (ssize_t)(h[1] * 8)) &&
		    attach_read_mem(go->pid, go->L.allgs, h2, sizeof h2) == sizeof h2 &&
		    memcmp(h, h2, sizeof h) == 0) {
			*ptrs = p;
			*n = h[1];
			return 0;
		}
		free(p);
		go->stats.retries++;
	}
	return -1;
}

/* Whether what the stack copy depends on is the same in both reads. */
static int same_g(const struct sym_go_layout *L, const unsigned char *a, const unsigned char *b)
{
	const struct sym_go_field f[] = { L->g.goid, L->g.status, L->g.waitreason, L->g.sched_pc,
					  L->g.sched_sp, L->g.sched_bp, L->g.syscallsp, L->g.syscallpc,
					  L->g.m, L->g.stack_lo, L->g.stack_hi, L->g.labels };
	for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
		if (get(a, f[i]) != get(b, f[i]))
			return 0;
	return 1;
}

static void decode(const struct sym_go_layout *L, const unsigned char *b, struct gor *g)
{
	g->goid = (int64_t)get(b, L->g.goid);
	g->status = (uint32_t)get(b, L->g.status);
	g->dead = (g->status & ~G_SCAN) == G_DEAD || (g->status & ~G_SCAN) == G_DEADEXTRA;
	g->waitreason = (unsigned)get(b, L->g.waitreason);
	g->waitsince = (int64_t)get(b, L->g.waitsince);
	g->gopc = get(b, L->g.gopc);
	g->startpc = get(b, L->g.startpc);
	g->m = get(b, L->g.m);
	g->lockedm = get(b, L->g.lockedm);
	g->lo = get(b, L->g.stack_lo);
	g->hi = get(b, L->g.stack_hi);
	g->parent = L->g.parent_goid.size ? (int64_t)get(b, L->g.parent_goid) : -1;
	g->labels_at = L->g.labels.size ? get(b, L->g.labels) : 0;
	/* As Go's traceback: a goroutine in a system call from where it
	 * entered it (its sched is stale then), else from its gobuf. */
	uint64_t syscallsp = get(b, L->g.syscallsp);
	g->sp = syscallsp ? syscallsp : get(b, L->g.sched_sp);
	g->pc = syscallsp ? get(b, L->g.syscallpc) : get(b, L->g.sched_pc);
	g->bp = syscallsp ? 0 : get(b, L->g.sched_bp);
}

/* The stack from sp to the top of the goroutine's stack, at most limit. */
static int copy_stack(struct collect_go *go, struct gor *g)
{
	if (!g->sp || g->sp < g->lo || g->sp >= g->hi) {
		snprintf(g->error, sizeof g->error, "its stack pointer 0x%llx is outside its stack [0x%llx, 0x%llx)",
			 (unsigned long long)g->sp, (unsigned long long)g->lo, (unsigned long long)g->hi);
		return -1;
	}
	size_t len = g->hi - g->sp;
	g->cut = len > go->stack_limit;
	if (g->cut)
		len = go->stack_limit;
	g->stack = malloc(len);
	if (!g->stack || attach_read_mem(go->pid, g->sp, g->stack, len) != (ssize_t)len) {
		free(g->stack);
		g->stack = NULL;
		snprintf(g->error, sizeof g->error, "its stack at 0x%llx could not be read",
			 (unsigned long long)g->sp);
		return -1;
	}
	g->stack_len = len;
	return 0;
}

/* Which thread runs it: m.procid, if that m's curg is this g. */
static void find_thread(struct collect_go *go, struct gor *g)
{
	uint64_t procid, curg;
	if (g->m && read_word(go->pid, g->m + go->L.m.procid.off, &procid) == 0 &&
	    read_word(go->pid, g->m + go->L.m.curg.off, &curg) == 0 && curg == g->addr)
		g->tid = (pid_t)procid;
}

/* Whether the stack copied still holds what it held.  The g reading the
 * same twice does not prove the copy whole: a goroutine passing a token
 * parks in the same call with the same pc, sp and bp each time round, and
 * may have run between the two reads, writing the frames of its other
 * calls over the ones being copied.  A second copy that equals the first
 * shows a moment when the stack was as copied (both copies torn the same
 * way is not a case to plan for). */
static int stack_still(struct collect_go *go, const struct gor *g)
{
	unsigned char *again = malloc(g->stack_len);
	int same = again && attach_read_mem(go->pid, g->sp, again, g->stack_len) == (ssize_t)g->stack_len &&
		   memcmp(again, g->stack, g->stack_len) == 0;
	free(again);
	return same;
}

/* ---- pprof labels: a Go map[string]string or a slice, read from outside - */

static void free_labels(struct gor *g)
{
	for (size_t i = 0; i < g->nlabels; i++) {
		free((void *)g->labels[i].key);
		free((void *)g->labels[i].value);
	}
	free(g->labels);
	g->labels = NULL;
	g->nlabels = 0;
	g->has_labels = 0;
}

/* A Go string {ptr, len} from a bucket copy: NULL if too long or unreadable. */
static char *label_string(pid_t pid, const unsigned char *hdr)
{
	uint64_t h[2];
	memcpy(h, hdr, sizeof h);
	if (h[1] > MAX_LABEL_LEN)
		return NULL;
	char *s = malloc(h[1] + 1);
	if (s && h[1] && attach_read_mem(pid, h[0], s, h[1]) != (ssize_t)h[1]) {
		free(s);
		return NULL;
	}
	if (s)
		s[h[1]] = 0;
	return s;
}

/* The live slots of nb buckets from addr, each with its overflow chain,
 * into g's labels.  -1: a read failed or a bound was passed. */
static int walk_buckets(struct collect_go *go, struct gor *g, uint64_t addr, size_t nb,
			size_t *visits, unsigned char *buf)
{
	const struct sym_go_bucket *B = &go->L.bucket;
	for (size_t i = 0; i < nb; i++) {
		uint64_t b = addr + i * B->size;
		while (b) {
			if (++*visits > MAX_BUCKETS || attach_read_mem(go->pid, b, buf, B->size) != (ssize_t)B->size)
				return -1;
			for (size_t k = 0; k < 8; k++) {
				if (buf[B->tophash + k] < MIN_TOP_HASH)
					continue;
				if (g->nlabels == MAX_LABELS)
					return -1;
				struct pp_go_label *l = &g->labels[g->nlabels];
				l->key = label_string(go->pid, buf + B->keys + 16 * k);
				l->value = l->key ? label_string(go->pid, buf + B->elems + 16 * k) : NULL;
				if (!l->value) {
					free((void *)l->key);
					return -1;
				}
				g->nlabels++;
			}
			memcpy(&b, buf + B->overflow, 8);
		}
	}
	return 0;
}

static int cmp_label(const void *a, const void *b)
{
	return strcmp(((const struct pp_go_label *)a)->key, ((const struct pp_go_label *)b)->key);
}

/* Sorts g's labels by key; -1 if two have the same key (not a label set
 * Go made: a misread). */
static int sort_labels(struct gor *g)
{
	if (g->nlabels)
		qsort(g->labels, g->nlabels, sizeof *g->labels, cmp_label);
	for (size_t i = 1; i < g->nlabels; i++)
		if (strcmp(g->labels[i - 1].key, g->labels[i].key) == 0)
			return -1;
	return 0;
}

/* The labels of Go 1.24+'s labelMap: a slice of {key, value string} at
 * L->labels_list in it, sorted by key.  0, or -1 when not read whole. */
static int read_label_slice(struct collect_go *go, struct gor *g)
{
	enum { LABEL_SIZE = 32 };       /* two Go strings {ptr, len} */
	uint64_t hdr[3];                /* ptr, len, cap */
	unsigned char buf[LABEL_SIZE];
	if (attach_read_mem(go->pid, g->labels_at + go->L.labels_list, hdr, sizeof hdr) != sizeof hdr ||
	    hdr[1] > MAX_LABELS || hdr[1] > hdr[2] || (hdr[1] && !hdr[0]))
		return -1;
	g->has_labels = 1;
	if (!hdr[1])
		return 0;
	if (!(g->labels = calloc(hdr[1], sizeof *g->labels)))
		return -1;
	for (uint64_t i = 0; i < hdr[1]; i++) {
		struct pp_go_label *l = &g->labels[g->nlabels];
		if (attach_read_mem(go->pid, hdr[0] + i * LABEL_SIZE, buf, sizeof buf) != sizeof buf ||
		    !(l->key = label_string(go->pid, buf)))
			return -1;
		if (!(l->value = label_string(go->pid, buf + 16))) {
			free((void *)l->key);
			return -1;
		}
		g->nlabels++;
	}
	return 0;
}

/* The labels g.labels points to: a *labelMap.  From Go 1.24 it holds a
 * slice (read_label_slice); before, it is a map whose *hmap it holds.
 * Go's maps grow incrementally: while oldbuckets is set, an entry not yet
 * moved is still there (a moved one's old slot is marked evacuated, below
 * MIN_TOP_HASH), so both arrays are walked.  What is found must be count
 * entries with distinct keys, else the labels are dropped: never shown
 * half read.  (runtime/pprof never changes a label map once a goroutine
 * has it: each set is a new map, so g.labels reading the same before and
 * after vouches for its contents.) */
static void read_labels(struct collect_go *go, struct gor *g)
{
	const struct sym_go_layout *L = &go->L;
	unsigned char hm[256], *buf = NULL;
	uint64_t map;
	free_labels(g);
	g->labels_bad = 0;
	if (!g->labels_at)
		return;
	if (L->labels_slice) {
		if (read_label_slice(go, g) || sort_labels(g))
			goto bad;
		return;
	}
	if (read_word(go->pid, g->labels_at, &map))
		goto bad;
	g->has_labels = 1;
	if (!map)               /* a nil map: an empty set */
		return;
	if (L->hmap.size > sizeof hm || attach_read_mem(go->pid, map, hm, L->hmap.size) != (ssize_t)L->hmap.size)
		goto bad;
	uint64_t count = get(hm, L->hmap.count), flags = get(hm, L->hmap.flags), lg = get(hm, L->hmap.B),
		 buckets = get(hm, L->hmap.buckets), old = get(hm, L->hmap.oldbuckets);
	size_t visits = 0;
	if (count > MAX_LABELS || lg > MAX_MAP_B || (count && !buckets))
		goto bad;
	if (!count)
		return;
	g->labels = calloc(MAX_LABELS, sizeof *g->labels);
	buf = malloc(L->bucket.size);
	if (!g->labels || !buf)
		goto bad;
	size_t nold = old ? (flags & SAME_SIZE_GROW ? (size_t)1 << lg : (size_t)1 << lg >> 1) : 0;
	if (walk_buckets(go, g, buckets, (size_t)1 << lg, &visits, buf) ||
	    (nold && walk_buckets(go, g, old, nold, &visits, buf)) || g->nlabels != count ||
	    sort_labels(g))
		goto bad;
	free(buf);
	return;
bad:
	free(buf);
	free_labels(g);
	g->labels_bad = 1;
}

/* One g, its stack and the g again, until both reads agree and the stack
 * did not change under its copy. */
static void read_g(struct collect_go *go, struct gor *g, unsigned char *a, unsigned char *b)
{
	const struct sym_go_layout *L = &go->L;
	for (int t = 0; t < MAX_TRIES; t++) {
		if (t)
			go->stats.retries++;
		g->error[0] = 0;
		free(g->stack);
		g->stack = NULL;
		if (attach_read_mem(go->pid, g->addr, a, L->g_size) != (ssize_t)L->g_size) {
			snprintf(g->error, sizeof g->error, "its g at 0x%llx could not be read",
				 (unsigned long long)g->addr);
			return;
		}
		decode(L, a, g);
		if (g->dead)
			return;
		int running = (g->status & ~G_SCAN) == G_RUNNING;
		if (!running)
			copy_stack(go, g);
		read_labels(go, g);
		if (attach_read_mem(go->pid, g->addr, b, L->g_size) == (ssize_t)L->g_size && same_g(L, a, b) &&
		    (!g->stack || stack_still(go, g))) {
			find_thread(go, g);
			return;
		}
	}
	free(g->stack);
	g->stack = NULL;
	free_labels(g);
	go->stats.unstable++;
	g->unstable = 1;
	snprintf(g->error, sizeof g->error, "it changed under each of %d reads", MAX_TRIES);
}

static int cmp_goid(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* Offsets from a version table (no DWARF) are checked against what was
 * read, as Go's own invariants: the first g is goroutine 1 (runtime.main),
 * each live g has a distinct positive goid, a known status and wait
 * reason, a stack [lo, hi) of sane size holding its saved sp (when not
 * running), and its start and creator pcs in functions.  NULL, or what failed. */
static const char *table_mismatch(const struct collect_go *go, struct sym_session *sym)
{
	if (!go->n || go->g[0].dead || go->g[0].goid != 1)
		return "its first goroutine is not goroutine 1";
	int64_t *ids = malloc(go->n * sizeof *ids);
	size_t n = 0;
	const char *bad = ids ? NULL : "out of memory";
	for (size_t i = 0; i < go->n && !bad; i++) {
		const struct gor *g = &go->g[i];
		uint32_t s = g->status & ~(uint32_t)G_SCAN;
		if (g->dead || g->unstable)
			continue;
		if (g->goid <= 0 || s > G_DEADEXTRA || g->waitreason >= go->nreasons || g->lo >= g->hi ||
		    g->hi - g->lo > (1u << 30) || (s != G_RUNNING && (g->sp < g->lo || g->sp >= g->hi)))
			bad = "a goroutine's id, status, wait reason or stack is implausible";
		else if (!sym_function_at(sym, g->startpc) || (g->goid != 1 && !sym_function_at(sym, g->gopc)))
			bad = "a goroutine's start or creator is in no function";
		ids[n++] = g->goid;
	}
	if (!bad) {
		qsort(ids, n, sizeof *ids, cmp_goid);
		for (size_t i = 1; i < n && !bad; i++)
			if (ids[i] == ids[i - 1])
				bad = "two goroutines have the same id";
	}
	free(ids);
	return bad;
}

struct collect_go *collect_go_read(pid_t pid, struct sym_session *sym, size_t stack_limit,
				   int *nomem)
{
	struct collect_go *go = calloc(1, sizeof *go);
	*nomem = 0;
	if (!go || sym_go_layout(sym, &go->L)) {
		if (go)
			sym_go_layout_free(&go->L);
		free(go);
		*nomem = 1;
		return NULL;
	}
	if (go->L.kind == SYM_GO_NONE) {
		sym_go_layout_free(&go->L);
		free(go);
		return NULL;
	}
	go->pid = pid;
	go->stack_limit = stack_limit;
	go->stats.go = 1;
	if (go->L.kind != SYM_GO_OK) {
		go->stats.note = go->L.why;
		return go;
	}
	uint64_t t0 = collect_now_ns();
	uint64_t *ptrs = NULL;
	size_t n = 0;
	unsigned char *a = malloc(2 * go->L.g_size);
	if (!a || read_globals(go)) {
		free(a);
		collect_go_free(go);
		*nomem = 1;
		return NULL;
	}
	if (read_allgs(go, &ptrs, &n)) {
		snprintf(go->L.why, sizeof go->L.why,
			 "runtime.allgs could not be read consistently: only OS threads are shown");
		go->stats.note = go->L.why;
		free(a);
		return go;
	}
	go->read_at_ns = collect_now_ns();
	go->g = calloc(n ? n : 1, sizeof *go->g);
	if (!go->g) {
		free(a);
		free(ptrs);
		collect_go_free(go);
		*nomem = 1;
		return NULL;
	}
	go->n = n;
	for (size_t i = 0; i < n; i++) {
		go->g[i].addr = ptrs[i];
		read_g(go, &go->g[i], a, a + go->L.g_size);
		go->stats.goroutines += !go->g[i].dead;
		go->stats.labels_dropped += !go->g[i].dead && go->g[i].labels_bad;
	}
	free(a);
	free(ptrs);
	go->stats.read_ms = (double)(collect_now_ns() - t0) / 1e6;
	const char *bad = go->L.from_table ? table_mismatch(go, sym) : NULL;
	if (bad) {
		snprintf(go->L.why, sizeof go->L.why,
			 "the goroutines of this Go program without DWARF (%s) do not read as its version's "
			 "layout says (%s): only OS threads are shown", go->version, bad);
		go->stats.note = go->L.why;
	}
	return go;
}

size_t collect_go_count(const struct collect_go *go)
{
	return go ? go->n : 0;
}

void collect_go_unwind(struct collect_go *go, struct sym_session *sym, size_t i)
{
	struct gor *g = &go->g[i];
	if (g->dead || !g->stack)
		return;
	struct arch_regs regs = { .known = REGBIT(SP) | REGBIT(PC) };
	REG(&regs, SP) = g->sp;
	REG(&regs, PC) = g->pc;
	if (g->bp) {
		REG(&regs, BP) = g->bp;
		regs.known |= REGBIT(BP);
	}
	/* The tid only names the snapshot to the unwinder; code is read
	 * through the process. */
	struct sym_snapshot snap = { go->pid, &regs, g->sp, g->stack, g->stack_len, g->cut,
				     attach_read_mem };
	if (sym_unwind_resumable(sym, &snap, &g->st))
		snprintf(g->error, sizeof g->error, "out of memory while unwinding");
	else
		g->from = &g->st;
}

/* ---- the view: as Go filters and names ---------------------------------- */

/* Go's showfuncinfo at traceback level 1: package functions, and of the
 * runtime's only exported ones (and gopanic past the first frame).  A
 * frame without a name is shown: that something is unknown must show. */
static int shown(const char *name, int first)
{
	if (!name)
		return 1;
	if (strcmp(name, "runtime.gopanic") == 0 && !first)
		return 1;
	if (!strchr(name, '.'))
		return 0;
	return strncmp(name, "runtime.", 8) != 0 || (name[8] >= 'A' && name[8] <= 'Z');
}

/* Go's names carry no ".abi0" (the linker's mark of assembly functions). */
static const char *go_name(struct collect_go *go, const char *name)
{
	static const char suffix[] = ".abi0";
	size_t len = name ? strlen(name) : 0;
	if (len <= sizeof suffix - 1 || strcmp(name + len - (sizeof suffix - 1), suffix) != 0)
		return name;
	char **names = collect_grow(go->names, go->nnames, &go->capnames, sizeof *names, 16);
	if (!names)
		return name;
	go->names = names;
	char *s = strndup(name, len - (sizeof suffix - 1));
	if (!s)
		return name;
	go->names[go->nnames++] = s;
	return s;
}

/* isSystemGoroutine: started in package runtime, but runtime.main, and
 * the finalizer goroutine while it runs user code. */
static int is_system(struct collect_go *go, struct sym_session *sym, const struct gor *g)
{
	const char *name = sym_function_at(sym, g->startpc);
	if (!name || strcmp(name, "runtime.main") == 0 || strcmp(name, "runtime.handleAsyncEvent") == 0)
		return 0;
	if (strcmp(name, "runtime.runfinq") == 0)
		return !go->fing_running;
	return strncmp(name, "runtime.", 8) == 0;
}

static const char *status_of(const struct collect_go *go, const struct gor *g)
{
	uint32_t s = g->status & ~(uint32_t)G_SCAN;
	if ((s == G_WAITING || s == G_LEAKED) && g->waitreason)
		return g->waitreason < go->nreasons ? go->reasons[g->waitreason] : "unknown wait reason";
	return s < sizeof status_text / sizeof status_text[0] ? status_text[s] : "???";
}

/* Go's elideWrapperCalling: a wrapper is left out unless what it called
 * panicked. */
static int elided_wrapper(const struct collect_go *go, const struct sym_frame *f, const char *callee)
{
	static const char *const panics[] = { "runtime.gopanic", "runtime.sigpanic", "runtime.panicwrap" };
	if (f->inlined || !sym_go_is_wrapper(&go->L, f->lookup_pc))
		return 0;
	for (size_t i = 0; callee && i < sizeof panics / sizeof panics[0]; i++)
		if (strcmp(callee, panics[i]) == 0)
			return 0;
	return 1;
}

/* The frames Go would print, renamed as Go names them. */
static size_t filter_frames(struct collect_go *go, const struct sym_stack *st, struct pp_frame *out)
{
	size_t n = 0;
	for (size_t i = 0; i < st->n; i++) {
		const struct sym_frame *s = &st->frames[i];
		if (!shown(s->function, n == 0) ||
		    elided_wrapper(go, s, i ? st->frames[i - 1].function : NULL))
			continue;
		const char *name = go_name(go, s->function);
		if (name && strcmp(name, "runtime.gopanic") == 0)
			name = "panic";
		out[n++] = (struct pp_frame){
			.pc = s->pc, .function = name, .file = s->file, .line = s->line,
			.inlined = s->inlined, .has_offset = s->has_offset, .func_offset = s->func_offset,
			.module = s->module, .module_offset = s->module_offset,
		};
	}
	return n;
}

/* "created by": the function holding the go statement, the line of the
 * innermost function inlined there (as Go's funcline gives it). */
static int creator(struct collect_go *go, struct sym_session *sym, struct gor *g)
{
	size_t n;
	if (!g->gopc || g->goid == 1)
		return 0;
	const struct sym_frame *chain = sym_frames_at(sym, g->gopc - 1, &n);
	const struct sym_frame *phys = chain ? &chain[n - 1] : NULL;
	if (phys && !shown(phys->function, 0))
		return 0;
	g->created = (struct pp_frame){
		.pc = g->gopc, .function = phys ? go_name(go, phys->function) : NULL,
		.file = chain ? chain[0].file : NULL, .line = chain ? chain[0].line : 0,
		.has_offset = phys && phys->has_offset, .func_offset = phys ? phys->func_offset + 1 : 0,
		.module = phys ? phys->module : NULL, .module_offset = phys ? phys->module_offset + 1 : 0,
	};
	return 1;
}

/* A running goroutine: the stack of the thread that the dump took while it
 * ran on this goroutine's stack.  Its m, read before the stop, names a
 * thread (m.procid), but a goroutine moves between threads: preempted
 * (every 10 ms while it runs on), it may resume on another one before the
 * stop, and the thread it left sits in the scheduler.  Goroutine stacks
 * are disjoint, so the thread whose sp was in [lo, hi) when stopped is the
 * one that ran it then, whatever m said. */
static void from_thread(struct gor *g, const struct collect_go_thread *threads, size_t n)
{
	const struct collect_go_thread *t = NULL, *on = NULL;
	for (size_t i = 0; i < n; i++) {
		if (g->tid && threads[i].tid == g->tid)
			t = &threads[i];
		if (threads[i].taken && threads[i].stack && threads[i].sp >= g->lo && threads[i].sp < g->hi)
			on = &threads[i];
	}
	if (on) {
		g->tid = on->tid;
		g->from = on->stack;
	} else if (!t) {
		snprintf(g->error, sizeof g->error, "running, and no thread of the dump runs it");
	} else if (!t->taken || !t->stack) {
		snprintf(g->error, sizeof g->error, "running on thread %d, whose stack was not taken",
			 (int)g->tid);
	} else {
		snprintf(g->error, sizeof g->error,
			 "running on thread %d, which was on another stack when stopped (the scheduler's or a signal handler's)",
			 (int)g->tid);
	}
}

static void fill_view(struct collect_go *go, struct sym_session *sym, struct gor *g,
		      struct pp_goroutine *v)
{
	uint32_t s = g->status & ~(uint32_t)G_SCAN;
	int64_t minutes = 0;
	if ((s == G_WAITING || s == G_SYSCALL) && g->waitsince)
		minutes = ((int64_t)go->read_at_ns - g->waitsince) / 60000000000LL;
	*v = (struct pp_goroutine){
		.goid = g->goid, .status = status_of(go, g), .leaked = s == G_LEAKED,
		.scan = (g->status & G_SCAN) != 0,
		.wait_minutes = minutes, .locked = g->lockedm != 0, .tid = g->tid, .creator = g->parent,
		.stack_error = g->error[0] ? g->error : NULL,
		.labels = { g->has_labels, g->labels, g->nlabels },
	};
	if (g->from && g->frames) {
		v->frames = g->frames;
		v->nframes = filter_frames(go, g->from, g->frames);
		v->stack_taken = 1;
		v->complete = g->from->complete;
		if (!v->complete)
			v->stack_error = g->from->stop_reason;
	}
	if (creator(go, sym, g))
		v->created_by = &g->created;
}

/* What Go's goroutine profile records of the stack (runtime/mprof.go's
 * saveg: gentraceback into a pc buffer): every frame, the runtime's and
 * runtime.goexit too, but the compiler's wrappers, elided as in the dump;
 * named as Go names them.  Go keeps at most 32 pcs; all are kept here. */
static int make_record(struct collect_go *go, struct gor *g)
{
	const struct sym_stack *st = g->from;
	if (!st || !(g->rec = calloc(st->n ? st->n : 1, sizeof *g->rec)))
		return st ? -1 : 0;
	for (size_t i = 0; i < st->n; i++) {
		const struct sym_frame *s = &st->frames[i];
		if (elided_wrapper(go, s, i ? st->frames[i - 1].function : NULL))
			continue;
		g->rec[g->nrec] = *s;
		g->rec[g->nrec++].function = go_name(go, s->function);
	}
	return 0;
}

int collect_go_finish(struct collect_go *go, struct sym_session *sym,
		      const struct collect_go_thread *threads, size_t n, int64_t *goids)
{
	for (size_t i = 0; i < n; i++)
		goids[i] = 0;
	go->view = (struct pp_goroutines){ .go_version = go->version[0] ? go->version : NULL,
					   .note = go->stats.note };
	go->stats.version = go->view.go_version;
	if (go->stats.note)
		return 0;
	go->view_g = calloc(go->n ? go->n : 1, sizeof *go->view_g);
	go->shown = calloc(go->n ? go->n : 1, sizeof *go->shown);
	if (!go->view_g || !go->shown)
		return -1;
	for (size_t i = 0; i < go->n; i++) {
		struct gor *g = &go->g[i];
		if (g->dead)
			continue;
		if ((g->status & ~(uint32_t)G_SCAN) == G_RUNNING && !g->error[0])
			from_thread(g, threads, n);
		for (size_t k = 0; g->tid && k < n; k++)
			if (threads[k].tid == g->tid)
				goids[k] = g->goid;
		if (is_system(go, sym, g))
			continue;
		if (g->from && !(g->frames = calloc(g->from->n ? g->from->n : 1, sizeof *g->frames)))
			return -1;
		if (make_record(go, g))
			return -1;
		go->shown[go->view.n] = i;
		fill_view(go, sym, g, &go->view_g[go->view.n++]);
	}
	go->view.g = go->view_g;
	go->stats.shown = go->view.n;
	return 0;
}

const struct pp_goroutines *collect_go_view(const struct collect_go *go)
{
	return go ? &go->view : NULL;
}

int collect_go_record(const struct collect_go *go, size_t i, struct sym_stack *st, int *resumed)
{
	const struct gor *g = &go->g[go->shown[i]];
	memset(st, 0, sizeof *st);
	*resumed = g->from == &g->st;
	if (!g->from)
		return -1;
	st->frames = g->rec;
	st->n = g->nrec;
	st->complete = g->from->complete;
	st->cut_short = g->from->cut_short;
	return 0;
}

void collect_go_stats(const struct collect_go *go, struct collect_go_stats *st)
{
	if (go)
		*st = go->stats;
	else
		memset(st, 0, sizeof *st);
}

void collect_go_free(struct collect_go *go)
{
	if (!go)
		return;
	for (size_t i = 0; i < go->n; i++) {
		free(go->g[i].stack);
		free(go->g[i].frames);
		free(go->g[i].rec);
		free_labels(&go->g[i]);
		sym_stack_free(&go->g[i].st);
	}
	free(go->g);
	for (size_t i = 0; go->reasons && i < go->nreasons; i++)
		free(go->reasons[i]);
	free(go->reasons);
	for (size_t i = 0; i < go->nnames; i++)
		free(go->names[i]);
	free(go->names);
	free(go->view_g);
	free(go->shown);
	sym_go_layout_free(&go->L);
	free(go);
}
