/* goruntime.h — what symbolize/ knows of a Go program's runtime: where its
 * goroutine structures are and how they are laid out, as the binary's own
 * DWARF says (a field is where this build put it), or, for a binary
 * without DWARF, as a table per Go version says (golayout.c), and the
 * unwinding of a goroutine that is not running, from the pc, sp (and
 * bp) it saved.
 *
 * Nothing here reads the target's memory: collect/goroutines.c does, with
 * these offsets.  Go binaries built with -ldflags=-s -w have no DWARF:
 * for a Go version without a table the layout says why none is known.
 */
#ifndef PPROFC_SYMBOLIZE_GORUNTIME_H
#define PPROFC_SYMBOLIZE_GORUNTIME_H

#include <stddef.h>
#include <stdint.h>

#include "sym.h"

enum sym_go_kind {
	SYM_GO_NONE,                /* not a Go program */
	SYM_GO_UNKNOWN,             /* a Go program whose layouts are unknown (why) */
	SYM_GO_OK,
};

/* A member of a runtime struct: its offset and size (1, 2, 4 or 8);
 * size 0 when this Go version has no such member. */
struct sym_go_field {
	size_t off, size;
};

struct sym_go_layout {
	enum sym_go_kind kind;
	char why[256];              /* SYM_GO_UNKNOWN: one line for the user */
	char module[4096];          /* the module holding the runtime */
	int from_table;             /* no DWARF: offsets from golayout.c's table, to validate */
	char version[64];           /* "go1.19.8" when read from the file (no DWARF), else "" */
	/* Addresses (load bias applied) of runtime variables; 0: absent. */
	uint64_t allgs;             /* []*g: the slice header */
	uint64_t fing_running;      /* bool: the finalizer goroutine runs user code */
	uint64_t wait_reasons;      /* [N]string: runtime.waitReasonStrings */
	size_t n_wait_reasons;
	uint64_t build_version;     /* string: runtime.buildVersion */
	size_t g_size;
	struct {
		struct sym_go_field goid, status, waitreason, waitsince, sched_pc, sched_sp, sched_bp,
			syscallsp, syscallpc, gopc, startpc, m, lockedm, stack_lo, stack_hi,
			parent_goid,    /* Go 1.21+: "created by F in goroutine N" */
			labels;         /* *labelMap of runtime/pprof; size 0: labels not read */
	} g;
	/* runtime/pprof's labelMap, which g.labels points to, has two forms:
	 * a map[string]string up to Go 1.23 (labels_slice 0: hmap and bucket
	 * below), and from Go 1.24 a struct whose LabelSet.list, at
	 * labels_list in it, is a slice of labels {key, value string} sorted
	 * by key (labels_slice 1: 32 bytes an element). */
	int labels_slice;
	size_t labels_list;
	/* Go's map (runtime.hmap, src/runtime/map.go), for the pprof labels
	 * of the map form, whose buckets hold 8 tophash bytes, 8 keys, 8
	 * values and the overflow bucket's address. */
	struct {
		struct sym_go_field count, flags, B, buckets, oldbuckets;
		size_t size;
	} hmap;
	struct sym_go_bucket {
		size_t size, tophash, keys, elems, overflow;
	} bucket;
	struct {
		struct sym_go_field procid, curg;
	} m;
	/* The compiler's wrapper functions: [start, end) pairs, sorted. */
	uint64_t (*wrappers)[2];
	size_t nwrappers;
};

/* Finds the Go runtime among the target's modules and reads its layouts
 * from DWARF.  Returns 0 (out->kind says what was found) or -1 when out
 * of memory.  sym_go_layout_free() it either way. */
int sym_go_layout(struct sym_session *s, struct sym_go_layout *out);

/* The offsets (g_size, g and m) the table of golayout.c gives for Go
 * version ("go1.19.8"), as used without DWARF; -1 if it has none. */
int sym_go_table_fields(const char *version, struct sym_go_layout *L);

/* The inline chain at lookup_pc, innermost first (the last frame is the
 * function that holds the code), as the session resolves addresses; NULL
 * when unknown.  Owned by the session. */
const struct sym_frame *sym_frames_at(struct sym_session *s, uint64_t lookup_pc, size_t *n);

/* Whether the function holding pc is a wrapper the Go compiler made (a
 * closure around a go statement's call, a method value's "-fm"...): Go
 * marks them DW_AT_trampoline in its DWARF, and its tracebacks leave
 * them out.  0 when unknown. */
int sym_go_is_wrapper(const struct sym_go_layout *L, uint64_t pc);
void sym_go_layout_free(struct sym_go_layout *L);

/* Unwinds a goroutine that is not running, from what it saved for later
 * (Go's gobuf, or the pc and sp of the system call it is in): its pc is
 * a return address, where execution resumes, unless it is a function's
 * entry (a goroutine that never ran), so the innermost frame is named and
 * placed at pc - 1 as a caller's is, and shown at pc, as Go does.  snap's
 * registers: SP and PC, and BP where known. */
int sym_unwind_resumable(struct sym_session *s, const struct sym_snapshot *snap,
			 struct sym_stack *out);

#endif
