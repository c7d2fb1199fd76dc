/* golayout.c — the Go runtime's goroutine structures in a binary without
 * DWARF (built with -ldflags=-s -w: no DWARF, no .symtab), for the Go
 * versions whose layouts are written here (goruntime.h).
 *
 * What stripping keeps, and what each answer comes from:
 *   - the Go version: .go.buildinfo, else the string runtime.buildVersion
 *     points at, found in the data by its text;
 *   - the offsets in runtime.g and runtime.m: the table below, written by
 *     hand from src/runtime/runtime2.go of each release (amd64), and
 *     checked against the DWARF of the Debian Go 1.19 build
 *     (tests/unit/test_golayout.c) and of Debian's Go 1.21-1.24 and 1.26
 *     builds (tests/integration/test_golayout_toolchains.py);
 *   - runtime.allgs: runtime.allgadd, found by name in .gopclntab, appends
 *     to it: among the RIP-relative operands of its code, the one address
 *     A whose A+8 (len) and A+16 (cap) are operands too;
 *   - runtime.waitReasonStrings: the initialized [N]string array in the
 *     data whose first strings are Go's first three wait reasons (the same
 *     from Go 1.11 to 1.26);
 *   - the compiler's wrappers (left out of tracebacks): the functions of
 *     .gopclntab whose funcID is funcID_wrapper, which in every version
 *     here is two after runtime.systemstack's (Go's traceback elides
 *     frames by that funcID; DWARF's DW_AT_trampoline marks fewer).
 * Anything not found or not as expected leaves the layout unknown, with
 * one line saying why; collect/goroutines.c then validates what it reads
 * (goids, stacks) before showing it.
 */
#include "goruntime.h"
#include "internal.h"

#include <capstone.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define F(off, size) { (off), (size) }

/* One layout, for Go 1.first to 1.last (amd64). */
struct go_table {
	int first, last;
	size_t g_read;              /* bytes of g read: past the last field used */
	struct sym_go_field goid, status, waitreason, waitsince, sched_pc, sched_sp, sched_bp,
		syscallsp, syscallpc, gopc, startpc, m, lockedm, stack_lo, stack_hi, parent_goid;
	/* g.labels (size 0: labels not read) */
	struct sym_go_field labels;
	struct sym_go_field procid, curg;
	/* runtime/pprof's labelMap (runtime/pprof/label.go): 0, a
	 * map[string]string (Go 1.17-1.23); 1, a struct that starts with a
	 * slice of {key, value string} (Go 1.24-1.26) */
	int labels_slice;
};

/* runtime.hmap (src/runtime/map.go), the same from Go 1.17 to 1.23:
 * count 0, flags 8, B 9, noverflow 10, hash0 12, buckets 16, oldbuckets
 * 24, nevacuate 32, extra 40; and a map[string]string's bucket: 8
 * tophash bytes, 8 keys, 8 values, the overflow pointer. */
static const size_t hmap_size = 48;
static const struct sym_go_field hmap_count = F(0, 8), hmap_flags = F(8, 1), hmap_B = F(9, 1),
				 hmap_buckets = F(16, 8), hmap_oldbuckets = F(24, 8);
static const struct sym_go_bucket string_bucket = { 8 + 8 * 16 + 8 * 16 + 8, 0, 8, 8 + 8 * 16,
						    8 + 8 * 16 * 2 };

static const struct go_table tables[] = {
	/* Go 1.17, 1.18, 1.19: g = stack{lo 0, hi 8}, stackguard0 16,
	 * stackguard1 24, _panic 32, _defer 40, m 48, sched gobuf{sp 56,
	 * pc 64, g 72, ctxt 80, ret 88, lr 96, bp 104}, syscallsp 112,
	 * syscallpc 120, stktopsp 128, param 136, atomicstatus uint32 144,
	 * stackLock 148, goid int64 152, schedlink 160, waitsince 168,
	 * waitreason uint8 176, 13 one-byte fields 177-189, runnableStamp
	 * 192, runnableTime 200, sysexitticks 208, traceseq 216, tracelastp
	 * 224, lockedm 232, sig 240, writebuf 248-271, sigcode0 272,
	 * sigcode1 280, sigpc 288, gopc 296, ancestors 304, startpc 312,
	 * racectx 320, waiting 328, cgoCtxt 336-359, labels 360 (a
	 * map[string]string in these releases).
	 * m = g0 0, morebuf gobuf 8-63, divmod 64, procid 72, gsignal 80,
	 * goSigStack 88-127, sigmask 128, tls [6] 136-183, mstartfn 184,
	 * curg 192.
	 * Go 1.20: the same offsets; atomicstatus became atomic.Uint32 (a
	 * uint32 still at 144), goid a uint64, runnableStamp trackingStamp,
	 * parkingOnChan an atomic.Bool (one byte, 185) among the one-byte
	 * fields, which still end before 192. */
	{ 17, 20, 368,
	  F(152, 8), F(144, 4), F(176, 1), F(168, 8), F(64, 8), F(56, 8), F(104, 8),
	  F(112, 8), F(120, 8), F(296, 8), F(312, 8), F(48, 8), F(232, 8), F(0, 8), F(8, 8), F(0, 0),
	  F(360, 8), F(72, 8), F(192, 8), 0 },
	/* Go 1.21, 1.22 (1.21.13's and 1.22.12's runtime2.go): as 1.20 up to
	 * waitreason 176; one-byte fields 177-191 (1.21 has 12: preempt ...
	 * parkingOnChan, raceignore, tracking, trackingSeq; 1.22 adds
	 * inMarkAssist, coroexit, nocgocallback), trackingStamp 192,
	 * runnableTime 200 (the trace fields moved to the end, in trace),
	 * lockedm 208, sig 216, writebuf 224-247, sigcode0 248, sigcode1 256,
	 * sigpc 264, parentGoid 272, gopc 280, ancestors 288, startpc 296,
	 * racectx 304, waiting 312, cgoCtxt 320-343, labels 344 (a
	 * map[string]string).  m as in 1.17-1.20. */
	{ 21, 22, 352,
	  F(152, 8), F(144, 4), F(176, 1), F(168, 8), F(64, 8), F(56, 8), F(104, 8),
	  F(112, 8), F(120, 8), F(280, 8), F(296, 8), F(48, 8), F(208, 8), F(0, 8), F(8, 8), F(272, 8),
	  F(344, 8), F(72, 8), F(192, 8), 0 },
	/* Go 1.23 (1.23.5's runtime2.go): syscallbp after syscallpc moves
	 * the rest by 8: syscallsp 112, syscallpc 120, syscallbp 128,
	 * stktopsp 136, param 144, atomicstatus 152, stackLock 156, goid 160,
	 * schedlink 168, waitsince 176, waitreason 184, 15 one-byte fields
	 * 185-199, trackingStamp 200, runnableTime 208, lockedm 216, sig 224,
	 * writebuf 232-255, sigcode0 256, sigcode1 264, sigpc 272, parentGoid
	 * 280, gopc 288, ancestors 296, startpc 304, racectx 312, waiting 320,
	 * cgoCtxt 328-351, labels 352 (a map[string]string).  m unchanged. */
	{ 23, 23, 360,
	  F(160, 8), F(152, 4), F(184, 1), F(176, 8), F(64, 8), F(56, 8), F(104, 8),
	  F(112, 8), F(120, 8), F(288, 8), F(304, 8), F(48, 8), F(216, 8), F(0, 8), F(8, 8), F(280, 8),
	  F(352, 8), F(72, 8), F(192, 8), 0 },
	/* Go 1.24 (1.24.4's runtime2.go): as 1.23 with fipsIndicator uint8
	 * 224 after lockedm 216, sig 228, writebuf 232: the same offsets from
	 * there (labels 352).  runtime/pprof's labelMap is now a struct whose
	 * LabelSet.list is a []label {key, value string}, and Go's maps are
	 * swiss tables (no runtime.hmap).  m unchanged. */
	{ 24, 24, 360,
	  F(160, 8), F(152, 4), F(184, 1), F(176, 8), F(64, 8), F(56, 8), F(104, 8),
	  F(112, 8), F(120, 8), F(288, 8), F(304, 8), F(48, 8), F(216, 8), F(0, 8), F(8, 8), F(280, 8),
	  F(352, 8), F(72, 8), F(192, 8), 1 },
	/* Go 1.25 (1.25.3's runtime2.go): gobuf lost ret: sched{sp 56, pc 64,
	 * g 72, ctxt 80, lr 88, bp 96}, syscallsp 104, syscallpc 112,
	 * syscallbp 120, stktopsp 128, param 136, atomicstatus 144, stackLock
	 * 148, goid uint64 152, schedlink 160, waitsince 168, waitreason 176,
	 * 15 one-byte fields 177-191, trackingStamp 192, runnableTime 200,
	 * lockedm 208, fipsIndicator 216, syncSafePoint 217, runningCleanups
	 * 218, sig 220, writebuf 224-247, sigcode0 248, sigcode1 256, sigpc
	 * 264, parentGoid 272, gopc 280, ancestors 288, startpc 296, racectx
	 * 304, waiting 312, cgoCtxt 320-343, labels 344 (labelMap's slice
	 * form, as in 1.24).
	 * m = g0 0, morebuf 8-55, divmod 56, procid 64, gsignal 72,
	 * goSigStack 80-119, sigmask 120, tls 128-175, mstartfn 176, curg 184. */
	{ 25, 25, 352,
	  F(152, 8), F(144, 4), F(176, 1), F(168, 8), F(64, 8), F(56, 8), F(96, 8),
	  F(104, 8), F(112, 8), F(280, 8), F(296, 8), F(48, 8), F(208, 8), F(0, 8), F(8, 8), F(272, 8),
	  F(344, 8), F(64, 8), F(184, 8), 1 },
	/* Go 1.26: as 1.25 up to lockedm 208, then fipsIndicator 216,
	 * fipsOnlyBypass 217, ditWanted 218, syncSafePoint 219,
	 * runningCleanups 220, sig 224, secret int32 228, writebuf 232-255,
	 * sigcode0 256, sigcode1 264, sigpc 272, parentGoid 280, gopc 288,
	 * ancestors 296, startpc 304, racectx 312, waiting 320, cgoCtxt
	 * 328-351, labels 352 (the slice form: labelMap embeds
	 * internal/runtime/pprof/label's Set, whose List, at 0, is a []Label
	 * {Key, Value string}, laid out as 1.24's); m unchanged from 1.25.  Statuses 10 (leaked) and 11
	 * (deadextra) are new (collect/goroutines.c). */
	{ 26, 26, 360,
	  F(152, 8), F(144, 4), F(176, 1), F(168, 8), F(64, 8), F(56, 8), F(96, 8),
	  F(104, 8), F(112, 8), F(288, 8), F(304, 8), F(48, 8), F(208, 8), F(0, 8), F(8, 8), F(280, 8),
	  F(352, 8), F(64, 8), F(184, 8), 1 },
};

#define KNOWN "Go 1.17-1.26"

/* "go1.19.8" -> 19; -1 for anything else ("devel ...", a Go 2). */
static int go_minor(const char *v)
{
	char *end;
	if (strncmp(v, "go1.", 4) != 0 || v[4] < '0' || v[4] > '9')
		return -1;
	long minor = strtol(v + 4, &end, 10);
	return (*end == 0 || *end == '.' || *end == 'r' || *end == 'b' || *end == ' ' || *end == '-') &&
	       minor < 1000 ? (int)minor : -1;
}

static const struct go_table *table_for(int minor)
{
	for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++)
		if (minor >= tables[i].first && minor <= tables[i].last)
			return &tables[i];
	return NULL;
}

int sym_go_table_fields(const char *version, struct sym_go_layout *L)
{
	const struct go_table *t = table_for(go_minor(version));
	if (!t)
		return -1;
	L->g_size = t->g_read;
	L->g.goid = t->goid;
	L->g.status = t->status;
	L->g.waitreason = t->waitreason;
	L->g.waitsince = t->waitsince;
	L->g.sched_pc = t->sched_pc;
	L->g.sched_sp = t->sched_sp;
	L->g.sched_bp = t->sched_bp;
	L->g.syscallsp = t->syscallsp;
	L->g.syscallpc = t->syscallpc;
	L->g.gopc = t->gopc;
	L->g.startpc = t->startpc;
	L->g.m = t->m;
	L->g.lockedm = t->lockedm;
	L->g.stack_lo = t->stack_lo;
	L->g.stack_hi = t->stack_hi;
	L->g.parent_goid = t->parent_goid;
	L->g.labels = t->labels;
	L->labels_slice = t->labels_slice;
	L->labels_list = 0;
	if (t->labels.size && !t->labels_slice) {
		L->hmap.count = hmap_count;
		L->hmap.flags = hmap_flags;
		L->hmap.B = hmap_B;
		L->hmap.buckets = hmap_buckets;
		L->hmap.oldbuckets = hmap_oldbuckets;
		L->hmap.size = hmap_size;
		L->bucket = string_bucket;
	}
	L->m.procid = t->procid;
	L->m.curg = t->curg;
	return 0;
}

/* The function called name: its link-time range and funcID; -1 if none. */
static int func_named(const struct sym_gotab *t, const char *name, uint64_t *entry, uint64_t *end,
		      int *funcid)
{
	uint32_t n = sym_gotab_nfunc(t);
	for (uint32_t i = 0; i < n; i++) {
		const char *fn;
		if (sym_gotab_func_i(t, i, entry, end, &fn, funcid) == 0 && strcmp(fn, name) == 0)
			return 0;
	}
	return -1;
}

static int has_addr(const uint64_t *a, size_t n, uint64_t v)
{
	for (size_t i = 0; i < n; i++)
		if (a[i] == v)
			return 1;
	return 0;
}

/* runtime.allgs from the code of runtime.allgadd ("allgs = append(allgs,
 * gp)" reads and writes its pointer, len and cap): the one address A
 * among its RIP-relative operands with A+8 and A+16 there too; 0 if
 * none or more than one. */
static uint64_t find_allgs(const struct sym_gotab *t)
{
	enum { MAX_OPS = 256, MAX_CODE = 4096 };
	uint64_t entry, end, ops[MAX_OPS], found = 0;
	size_t nops = 0;
	int id;
	csh cs;
	if (func_named(t, "runtime.allgadd", &entry, &end, &id) || end - entry > MAX_CODE)
		return 0;
	const unsigned char *code = sym_gotab_bytes(t, entry, end - entry);
	if (!code || cs_open(CS_ARCH_X86, CS_MODE_64, &cs) != CS_ERR_OK)
		return 0;
	cs_option(cs, CS_OPT_DETAIL, CS_OPT_ON);
	cs_insn *insn = cs_malloc(cs);
	const uint8_t *p = code;
	size_t left = end - entry;
	uint64_t pc = entry;
	while (insn && nops < MAX_OPS && cs_disasm_iter(cs, &p, &left, &pc, insn)) {
		const cs_x86 *x = &insn->detail->x86;
		for (uint8_t i = 0; i < x->op_count && nops < MAX_OPS; i++)
			if (x->operands[i].type == X86_OP_MEM && x->operands[i].mem.base == X86_REG_RIP)
				ops[nops++] = insn->address + insn->size + (uint64_t)x->operands[i].mem.disp;
	}
	if (insn)
		cs_free(insn, 1);
	cs_close(&cs);
	for (size_t i = 0; i < nops; i++) {
		if (ops[i] == found || !has_addr(ops, nops, ops[i] + 8) || !has_addr(ops, nops, ops[i] + 16))
			continue;
		if (found)
			return 0;       /* two candidates: not the code expected */
		found = ops[i];
	}
	return found;
}

/* The compiler's wrappers: every function whose funcID is two after
 * runtime.systemstack's (Go's funcID list ends "..., systemstack,
 * systemstack_switch, wrapper" from 1.17 to 1.26; the linker of 1.17
 * gives systemstack_switch no funcID, so it cannot be the anchor). */
static int find_wrappers(const struct sym_gotab *t, struct sym_go_layout *L)
{
	uint64_t entry, end;
	int id;
	if ((func_named(t, "runtime.systemstack", &entry, &end, &id) &&
	     func_named(t, "runtime.systemstack.abi0", &entry, &end, &id)) || id <= 0)
		return -1;
	uint32_t n = sym_gotab_nfunc(t);
	size_t cap = 0;
	for (uint32_t i = 0; i < n; i++) {
		const char *name;
		int fid;
		if (sym_gotab_func_i(t, i, &entry, &end, &name, &fid) || fid != id + 2)
			continue;
		if (L->nwrappers == cap) {
			size_t c = cap ? 2 * cap : 64;
			uint64_t (*w)[2] = realloc(L->wrappers, c * sizeof *w);
			if (!w)
				return -2;
			L->wrappers = w;
			cap = c;
		}
		L->wrappers[L->nwrappers][0] = entry;
		L->wrappers[L->nwrappers++][1] = end;
	}
	return 0;
}

/* Go's first wait reasons (runtime2.go: waitReasonZero, GCAssistMarking,
 * IOWait; Go 1.26 reordered what follows). */
static const char *const first_reasons[] = { "", "GC assist marking", "IO wait" };

int sym_go_layout_table(const struct sym_gotab *t, Elf *elf, uint64_t bias, struct sym_go_layout *L)
{
	char version[64];
	L->kind = SYM_GO_UNKNOWN;
	if (!t || sym_gotab_build_version(t, elf, version, sizeof version) != 0) {
		snprintf(L->why, sizeof L->why,
			 "a Go program without DWARF (built with -ldflags=-s -w?) whose Go version is "
			 "unreadable: only OS threads are shown");
		return 0;
	}
	snprintf(L->version, sizeof L->version, "%s", version);
	if (sym_go_table_fields(version, L) != 0) {
		snprintf(L->why, sizeof L->why,
			 "a Go program without DWARF (built with -ldflags=-s -w?) by %s: its goroutines' "
			 "layouts are known without DWARF for " KNOWN " only, so only OS threads are shown",
			 version);
		return 0;
	}
	const char *missing = NULL;
	size_t nreasons = 0;
	uint64_t allgs = find_allgs(t);
	uint64_t reasons = sym_gotab_find_strings(t, first_reasons,
						  sizeof first_reasons / sizeof first_reasons[0], &nreasons);
	int w = find_wrappers(t, L);
	if (w == -2)
		return -1;
	if (!allgs)
		missing = "runtime.allgs (in the code of runtime.allgadd)";
	else if (!reasons)
		missing = "runtime.waitReasonStrings (in its data)";
	else if (w)
		missing = "runtime.systemstack (in its line table)";
	if (missing) {
		snprintf(L->why, sizeof L->why,
			 "a Go program without DWARF (built with -ldflags=-s -w?) by %s: %s was not found, "
			 "so only OS threads are shown", version, missing);
		return 0;
	}
	for (size_t i = 0; i < L->nwrappers; i++)
		L->wrappers[i][0] += bias, L->wrappers[i][1] += bias;
	L->allgs = allgs + bias;
	L->wait_reasons = reasons + bias;
	L->n_wait_reasons = nreasons;
	L->from_table = 1;
	L->kind = SYM_GO_OK;
	return 0;
}
