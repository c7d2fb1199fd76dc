/* memo.c — an exact memo of unwinds, for snapshots taken at a few fixed
 * pcs: the heap sampler's (preload/record.c), with all registers, and a
 * dump's threads blocked in the same few system calls, read without
 * stopping them (only sp and pc known).
 *
 * The rule.  Take a complete plain walk (sym_unwind_traced: the first
 * libdwfl walk, nothing guessed, ending where the CFI says the stack ends)
 * of frames pc_0..pc_n.  libdwfl unwinds frame i with the CFI row at pc_i
 * (frame 0) or pc_i - 1 (callers, none after a signal frame).  If, for
 * every frame i < n, that row says
 *     CFA = rsp + c_i,  return address = [CFA - 8],  rsp of the caller =
 *     CFA,  not a signal frame,
 * then rsp_i = sp_0 + c_0 + ... + c_(i-1), and frame i+1's pc is the word
 * at off_i = c_0 + ... + c_i - 8 above sp_0: each offset is a function of
 * pc_0..pc_i alone.  No other register and no other memory enters the
 * walk (libdwfl ignores a saved register it cannot read; none of them is
 * used).  Frame n's row says the return address is undefined, which ends
 * the walk, and depends on pc_n alone.  So another snapshot with pc_0,
 * all registers known, whose stack copy holds pc_(i+1) at sp'_0 + off_i
 * for every i < n, is walked by libdwfl through exactly pc_0..pc_n and
 * ends there.  What sym_unwind does around the walk is then the same as
 * well: refreshing modules (pc_0 is in one: no-op while the module
 * generation is unchanged), the newborn path (not taken: pc_0 is no
 * newborn's site, a fact of the code), the frameless leaf (needs pc_0
 * without CFI), the cut at a Go stack switch and the root test (functions
 * of the pcs), the cut-short test (the walk reached the root).  And the
 * frames are names of the pcs, the same while the modules are.
 *
 * Snapshots with sp and pc alone (a thread read without stopping it).
 * Their first walk starts from sp and pc, every other register undefined.
 * A walk whose every row takes the rule reads rsp and those words and
 * nothing else, so it is the same walk from sp and pc alone as from all
 * registers: such a snapshot may be looked up, and its own plain walk
 * (the first one, complete, before any guess of rbp) inserted.  Around
 * that walk sym_unwind guesses rbp and tries the frameless leaf only
 * when the walk failed or pc_0 has no CFI, neither of which holds; and a
 * partial snapshot never takes the newborn path.
 *
 * So the memo is a trie: the root's children are keyed by pc_0; a node
 * for pc_0..pc_i holds off_i, and its children are keyed by the word found
 * there; the node of a walk's last pc holds its frames.  A lookup is one
 * hash probe per frame.  Anything else (frame-pointer code, whose CFA is
 * rbp-based; signal frames; Go's roots; incomplete or cut-short walks;
 * any fallback, such as a guessed rbp) is never memoized and always
 * unwound.
 * Emptied when the modules are read again; past MEMO_MAX_NODES nodes or
 * MEMO_MAX_FRAMES frames nothing more is memoized.
 */
#include "internal.h"

#include <dwarf.h>
#include <stdlib.h>
#include <string.h>

#define MEMO_MAX_NODES (1u << 16)        /* ~4 MB with their edges */
#define MEMO_MAX_FRAMES (1u << 17)       /* ~13 MB of sym_frame */
#define ROW_CACHE 4096          /* verdicts on CFI rows, direct-mapped */

struct memo_node {
	int64_t off;                /* internal: where the next pc is, from sp */
	int terminal;               /* the walk ends at this node's pc */
	struct sym_frame *frames;   /* terminal: the resolved stack */
	size_t nframes;
};

/* An edge parent --pc--> child; child 0 marks an empty slot. */
struct memo_edge {
	uint64_t pc;
	uint32_t parent, child;
};

enum row_kind { ROW_UNKNOWN, ROW_OTHER, ROW_STEP, ROW_ROOT };

struct memo_row {
	uint64_t pc;
	int64_t cfa_off;
	enum row_kind kind;
};

struct sym_memo {
	struct memo_node *nodes;    /* nodes[0]: the root, keyed by nothing */
	size_t nnodes, capnodes;
	struct memo_edge *edges;    /* open addressing, capedges a power of 2 */
	size_t capedges;
	size_t nframes;
	uint64_t gen;               /* sym_modules_generation it was built at */
	struct sym_memo_stats st;
	struct memo_row rows[ROW_CACHE];
	uint64_t pcs[SYM_MAX_DEPTH];    /* a miss's walk, and its offsets */
	int64_t offs[SYM_MAX_DEPTH];
};

struct sym_memo *sym_memo_new(void)
{
	return calloc(1, sizeof(struct sym_memo));
}

static void memo_clear(struct sym_memo *m)
{
	for (size_t i = 0; i < m->nnodes; i++)
		free(m->nodes[i].frames);
	free(m->nodes);
	free(m->edges);
	m->nodes = NULL;
	m->edges = NULL;
	m->nnodes = m->capnodes = m->capedges = m->nframes = 0;
	/* Rows are facts of the modules' code: read again, they may differ. */
	memset(m->rows, 0, sizeof m->rows);
}

void sym_memo_free(struct sym_memo *m)
{
	if (!m)
		return;
	memo_clear(m);
	free(m);
}

struct sym_memo_stats sym_memo_stats(const struct sym_memo *m)
{
	struct sym_memo_stats none = { 0 };
	return m ? m->st : none;
}

/* ---- the CFI rows: does one take the rule? ----------------------------- */

/* Whether the row's CFA is rsp plus a constant, into *off. */
static int cfa_on_rsp(Dwarf_Frame *f, int64_t *off)
{
	Dwarf_Op *ops;
	size_t nops;
	if (dwarf_frame_cfa(f, &ops, &nops) != 0 || nops != 1)
		return 0;
	if (ops[0].atom == DW_OP_bregx && ops[0].number == REGNAME(SP)) {
		*off = (int64_t)ops[0].number2;
		return 1;
	}
	if (ops[0].atom == DW_OP_breg7) {
		*off = (int64_t)ops[0].number;
		return 1;
	}
	return 0;
}

/* Whether register reg's rule is (CFA + off) as a location (offset rule)
 * or as a value (val_offset), as libdw's dwarf_frame_register spells it. */
static int reg_rule_is(Dwarf_Frame *f, int reg, int64_t off, int value)
{
	Dwarf_Op mem[3], *ops = NULL;
	size_t nops = 0, want = 1;
	if (dwarf_frame_register(f, reg, mem, &ops, &nops) != 0 || !ops || nops < 1 ||
	    ops[0].atom != DW_OP_call_frame_cfa)
		return 0;
	if (off != 0) {
		if (nops < 2 || ops[1].atom != DW_OP_plus_uconst || ops[1].number != (Dwarf_Word)off)
			return 0;
		want = 2;
	}
	if (value) {
		if (nops <= want || ops[want].atom != DW_OP_stack_value)
			return 0;
		want++;
	}
	return nops == want;
}

/* The rule's verdict on the row at lookup pc (see the header comment). */
static enum row_kind row_kind(struct sym_session *s, uint64_t pc, int64_t *cfa_off)
{
	Dwarf_Frame *f = sym_cfi_at(s, pc);
	enum row_kind k = ROW_OTHER;
	bool signalp = true;
	Dwarf_Op mem[3], *ops = NULL;
	size_t nops = 1;
	int ra = f ? dwarf_frame_info(f, NULL, NULL, &signalp) : -1;
	if (ra == REGNAME(PC) && dwarf_frame_register(f, ra, mem, &ops, &nops) == 0 && nops == 0 &&
	    ops == mem)
		k = ROW_ROOT;   /* return address undefined: the walk ends */
	else if (ra == REGNAME(PC) && !signalp && cfa_on_rsp(f, cfa_off) &&
		 reg_rule_is(f, ra, -8, 0) && reg_rule_is(f, REGNAME(SP), 0, 1))
		k = ROW_STEP;
	free(f);
	return k;
}

static enum row_kind row_cached(struct sym_session *s, struct sym_memo *m, uint64_t pc,
				int64_t *cfa_off)
{
	struct memo_row *r = &m->rows[(pc ^ pc >> 12) % ROW_CACHE];
	if (r->kind == ROW_UNKNOWN || r->pc != pc) {
		r->pc = pc;
		r->cfa_off = 0;
		r->kind = row_kind(s, pc, &r->cfa_off);
	}
	*cfa_off = r->cfa_off;
	return r->kind;
}

/* The offsets of a plain walk's return addresses from sp, if every frame
 * takes the rule; 0 if one does not. */
static int walk_offsets(struct sym_session *s, struct sym_memo *m, const uint64_t *pcs, size_t n,
			int64_t *offs)
{
	int64_t cfa = 0;
	for (size_t i = 0; i < n; i++) {
		int64_t c;
		enum row_kind k = row_cached(s, m, i ? pcs[i] - 1 : pcs[i], &c);
		if (i == n - 1)
			return k == ROW_ROOT;
		if (k != ROW_STEP)
			return 0;
		cfa += c;
		offs[i] = cfa - 8;
	}
	return 0;
}

/* ---- the trie ------------------------------------------------------------ */

static size_t edge_slot(const struct sym_memo *m, uint32_t parent, uint64_t pc)
{
	uint64_t h = (pc ^ (uint64_t)parent * 0x9e3779b97f4a7c15ull) * 0xff51afd7ed558ccdull;
	return (size_t)(h >> 17) & (m->capedges - 1);
}

/* The child of parent by pc, 0 if none. */
static uint32_t edge_find(const struct sym_memo *m, uint32_t parent, uint64_t pc)
{
	if (!m->capedges)
		return 0;
	for (size_t i = edge_slot(m, parent, pc);; i = (i + 1) & (m->capedges - 1)) {
		const struct memo_edge *e = &m->edges[i];
		if (!e->child)
			return 0;
		if (e->parent == parent && e->pc == pc)
			return e->child;
	}
}

static void edge_put(struct sym_memo *m, uint32_t parent, uint64_t pc, uint32_t child)
{
	size_t i = edge_slot(m, parent, pc);
	while (m->edges[i].child)
		i = (i + 1) & (m->capedges - 1);
	m->edges[i] = (struct memo_edge){ pc, parent, child };
}

/* Room for one more node and its edge (edges at most half full). */
static int memo_grow(struct sym_memo *m)
{
	if (m->nnodes == m->capnodes) {
		size_t cap = m->capnodes ? m->capnodes * 2 : 256;
		struct memo_node *n = realloc(m->nodes, cap * sizeof *n);
		if (!n)
			return -1;
		m->nodes = n;
		m->capnodes = cap;
	}
	if ((m->nnodes + 1) * 2 <= m->capedges)
		return 0;
	size_t old = m->capedges;
	struct memo_edge *e = m->edges;
	m->capedges = old ? old * 2 : 512;
	if (!(m->edges = calloc(m->capedges, sizeof *m->edges))) {
		m->edges = e;
		m->capedges = old;
		return -1;
	}
	for (size_t i = 0; i < old; i++)
		if (e[i].child)
			edge_put(m, e[i].parent, e[i].pc, e[i].child);
	free(e);
	return 0;
}

/* The child of parent by pc, made if missing: the frame it stands for
 * ends the walk (terminal) or has its next pc at off. */
static uint32_t memo_child(struct sym_memo *m, uint32_t parent, uint64_t pc, int terminal,
			   int64_t off)
{
	uint32_t c = edge_find(m, parent, pc);
	if (c) {
		/* The same pcs give the same rows: a mismatch is a bug. */
		const struct memo_node *n = &m->nodes[c];
		return n->terminal == terminal && (terminal || n->off == off) ? c : 0;
	}
	if (memo_grow(m))
		return 0;
	c = (uint32_t)m->nnodes++;
	m->nodes[c] = (struct memo_node){ .off = terminal ? 0 : off, .terminal = terminal };
	edge_put(m, parent, pc, c);
	return c;
}

/* Inserts a plain walk that takes the rule, with its frames. */
static void memo_insert(struct sym_memo *m, const uint64_t *pcs, const int64_t *offs, size_t n,
			const struct sym_stack *st)
{
	if (m->nnodes + n + 1 > MEMO_MAX_NODES || m->nframes + st->n > MEMO_MAX_FRAMES)
		return;
	if (!m->nnodes) {
		if (memo_grow(m))
			return;
		m->nodes[m->nnodes++] = (struct memo_node){ 0 };    /* the root */
	}
	uint32_t node = 0;
	for (size_t i = 0; i < n && (i == 0 || node); i++)
		node = memo_child(m, node, pcs[i], i == n - 1, i < n - 1 ? offs[i] : 0);
	struct memo_node *t = node ? &m->nodes[node] : NULL;
	if (!t || t->frames || !st->n || !(t->frames = malloc(st->n * sizeof *st->frames)))
		return;
	memcpy(t->frames, st->frames, st->n * sizeof *st->frames);
	t->nframes = st->n;
	m->nframes += st->n;
	m->st.inserted++;
}

/* The word at addr in the snapshot's stack copy, as session.c's
 * memory_read serves it; 0 if the copy does not hold it. */
static int copy_word(const struct sym_snapshot *snap, uint64_t addr, uint64_t *v)
{
	if (addr < snap->stack_addr || snap->stack_len < 8 || addr - snap->stack_addr > snap->stack_len - 8)
		return 0;
	memcpy(v, snap->stack + (addr - snap->stack_addr), 8);
	return 1;
}

/* The terminal node the snapshot's stack leads to, or NULL. */
static const struct memo_node *memo_find(const struct sym_memo *m, const struct sym_snapshot *snap)
{
	uint64_t sp = REG(snap->regs, SP), v;
	uint32_t node = edge_find(m, 0, REG(snap->regs, PC));
	while (node && !m->nodes[node].terminal) {
		if (!copy_word(snap, sp + (uint64_t)m->nodes[node].off, &v))
			return NULL;
		node = edge_find(m, node, v);
	}
	return node && m->nodes[node].frames ? &m->nodes[node] : NULL;
}

static int memo_hand_out(const struct memo_node *t, struct sym_stack *out)
{
	memset(out, 0, sizeof *out);
	if (!(out->frames = malloc(t->nframes * sizeof *out->frames)))
		return -1;
	memcpy(out->frames, t->frames, t->nframes * sizeof *out->frames);
	out->n = t->nframes;
	out->complete = 1;
	return 0;
}

/* Whether the walk's pcs are the words the rule says they are in this very
 * snapshot: a check of the rule against libdwfl, before trusting it. */
static int offsets_agree(const struct sym_snapshot *snap, const uint64_t *pcs, const int64_t *offs,
			 size_t n)
{
	uint64_t v;
	for (size_t i = 0; i + 1 < n; i++)
		if (!copy_word(snap, REG(snap->regs, SP) + (uint64_t)offs[i], &v) || v != pcs[i + 1])
			return 0;
	return 1;
}

/* The memo holds unwinds of the modules as read now: emptied when they
 * were read again. */
static void memo_check_gen(struct sym_session *s, struct sym_memo *m)
{
	if (m->gen != sym_modules_generation(s)) {
		memo_clear(m);
		m->gen = sym_modules_generation(s);
		m->st.clears++;
	}
}

static int memo_usable(const struct sym_memo *m, const struct sym_snapshot *snap)
{
	const uint64_t sp_pc = REGBIT(SP) | REGBIT(PC);
	return m && (snap->regs->known & sp_pc) == sp_pc;
}

/* A key names a terminal node for as long as the memo is not emptied:
 * the count of clears above, the node's index below. */
uint64_t sym_memo_key(struct sym_session *s, struct sym_memo *m, const struct sym_snapshot *snap)
{
	if (!memo_usable(m, snap))
		return 0;
	memo_check_gen(s, m);
	const struct memo_node *t = memo_find(m, snap);
	if (!t)
		return 0;
	m->st.hits++;
	return (m->st.clears + 1) << 32 | (uint64_t)(t - m->nodes);
}

int sym_memo_frames(const struct sym_memo *m, uint64_t key, struct sym_stack *out)
{
	uint64_t node = key & 0xffffffffu;
	memset(out, 0, sizeof *out);
	if (!m || key >> 32 != m->st.clears + 1 || !node || node >= m->nnodes || !m->nodes[node].frames)
		return -1;
	return memo_hand_out(&m->nodes[node], out);
}

int sym_unwind_memo(struct sym_session *s, struct sym_memo *m, const struct sym_snapshot *snap,
		    struct sym_stack *out)
{
	if (!memo_usable(m, snap))
		return sym_unwind(s, snap, out);
	memo_check_gen(s, m);
	const struct memo_node *t = memo_find(m, snap);
	if (t) {
		m->st.hits++;
		return memo_hand_out(t, out);
	}
	m->st.misses++;
	uint64_t *pcs = m->pcs;
	int64_t *offs = m->offs;
	struct sym_unwind_trace tr = { .pcs = pcs };
	int r = sym_unwind_traced(s, snap, out, &tr);
	if (r != 0 || !tr.plain)
		return r;
	memo_check_gen(s, m);     /* read again during this walk: it is of the new ones */
	if (walk_offsets(s, m, pcs, tr.n, offs) && offsets_agree(snap, pcs, offs, tr.n))
		memo_insert(m, pcs, offs, tr.n, out);
	return r;
}
