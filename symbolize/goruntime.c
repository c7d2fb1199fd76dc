/* goruntime.c — the Go runtime's goroutine structures, from the binary's
 * DWARF (without DWARF: golayout.c), and unwinding goroutines from the registers they saved
 * (goruntime.h).
 *
 * Go writes every package-level variable and every type into its DWARF
 * (one compile unit per package): runtime.allgs, runtime.g, runtime.m...
 * So the offsets come from the very build that runs, whatever its Go
 * version; a member that moved or changed type between versions is found
 * where it is (g.atomicstatus, a uint32 in Go 1.19, is the runtime's
 * atomic.Uint32 struct from 1.20: its "value").  Names are Go's, read in Go 1.19's
 * src/runtime/runtime2.go.
 */
#include "goruntime.h"
#include "internal.h"

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <gelf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- finding the module that holds the Go runtime ---------------------- */

/* Every Go binary, stripped or not, keeps its build ID note, its build
 * info and (outside PIE builds) its line table under these names. */
static int is_go_elf(Elf *elf)
{
	static const char *const names[] = { ".note.go.buildid", ".go.buildinfo", ".gopclntab" };
	size_t shstrndx;
	Elf_Scn *scn = NULL;
	if (elf_getshdrstrndx(elf, &shstrndx) != 0)
		return 0;
	while ((scn = elf_nextscn(elf, scn))) {
		GElf_Shdr sh;
		const char *name = gelf_getshdr(scn, &sh) ? elf_strptr(elf, shstrndx, sh.sh_name) : NULL;
		for (size_t i = 0; name && i < sizeof names / sizeof names[0]; i++)
			if (strcmp(name, names[i]) == 0)
				return 1;
	}
	return 0;
}

static int find_go_module(Dwfl_Module *mod, void **ud, const char *name, Dwarf_Addr start, void *arg)
{
	(void)ud;
	(void)start;
	Dwfl_Module **found = arg;
	GElf_Addr bias;
	Elf *elf = dwfl_module_getelf(mod, &bias);
	if (!elf || !is_go_elf(elf) || !name)
		return DWARF_CB_OK;
	*found = mod;
	return DWARF_CB_ABORT;
}

/* ---- types and members ------------------------------------------------- */

static int type_of(Dwarf_Die *die, Dwarf_Die *type)
{
	Dwarf_Attribute a;
	if (!dwarf_attr_integrate(die, DW_AT_type, &a) || !dwarf_formref_die(&a, type))
		return -1;
	while (dwarf_tag(type) == DW_TAG_typedef)
		if (!dwarf_attr_integrate(type, DW_AT_type, &a) || !dwarf_formref_die(&a, type))
			return -1;
	return 0;
}

/* The member called name of struct st: its offset and its type. */
static int member(Dwarf_Die *st, const char *name, size_t *off, Dwarf_Die *type)
{
	Dwarf_Die m;
	if (dwarf_child(st, &m) != 0)
		return -1;
	do {
		const char *n = dwarf_diename(&m);
		Dwarf_Attribute a;
		Dwarf_Word w;
		if (dwarf_tag(&m) != DW_TAG_member || !n || strcmp(n, name) != 0)
			continue;
		if (!dwarf_attr_integrate(&m, DW_AT_data_member_location, &a) || dwarf_formudata(&a, &w) != 0 ||
		    type_of(&m, type) != 0)
			return -1;
		*off = (size_t)w;
		return 0;
	} while (dwarf_siblingof(&m, &m) == 0);
	return -1;
}

static size_t size_of(Dwarf_Die *type)
{
	Dwarf_Word size;
	int tag = dwarf_tag(type);
	if (tag == DW_TAG_pointer_type)
		return 8;
	return dwarf_aggregate_size(type, &size) == 0 ? (size_t)size : 0;
}

/* A member by its path ("sched.pc") from struct st.  A struct wrapping
 * one value stands for that value: the runtime's own atomic types
 * (runtime/internal/atomic, internal/runtime/atomic from Go 1.23), which
 * g.atomicstatus is from Go 1.20, name it "value"; sync/atomic's name it
 * "v".  Only plain scalars of 1, 2, 4 or 8 bytes are accepted. */
static struct sym_go_field field(Dwarf_Die *st, const char *path)
{
	struct sym_go_field f = { 0, 0 };
	char part[64];
	Dwarf_Die cur = *st, type;
	size_t off = 0;
	while (*path) {
		size_t len = strcspn(path, ".");
		size_t at;
		if (len >= sizeof part)
			return f;
		memcpy(part, path, len);
		part[len] = 0;
		if (member(&cur, part, &at, &type) != 0)
			return f;
		off += at;
		cur = type;
		path += len + (path[len] == '.');
	}
	if (dwarf_tag(&cur) == DW_TAG_structure_type) {
		size_t at;
		if (member(&cur, "value", &at, &type) != 0 && member(&cur, "v", &at, &type) != 0)
			return f;
		off += at;
		cur = type;
	}
	size_t size = size_of(&cur);
	if (size == 1 || size == 2 || size == 4 || size == 8)
		f = (struct sym_go_field){ off, size };
	return f;
}

/* ---- the runtime's variables and structs ------------------------------- */

struct scan {
	uint64_t (*wrappers)[2];
	size_t nwrappers, cap;
	int nomem;
	Dwarf_Die g, m, hmap, bucket, labelmap;
	int has_g, has_m, has_hmap, has_bucket, has_labelmap;
	Dwarf_Die wait_reasons_type;
	uint64_t allgs, fing_running, wait_reasons, build_version;
};

/* A variable's address: its location is the one operation DW_OP_addr.
 * Go writes it as a DW_FORM_block1, which dwarf_getlocation refuses in
 * a DWARF 4 unit ("not a location list value"), so it is decoded here. */
static uint64_t var_address(Dwarf_Die *die)
{
	Dwarf_Attribute a;
	Dwarf_Block b;
	uint64_t addr = 0;
	if (!dwarf_attr(die, DW_AT_location, &a) || dwarf_formblock(&a, &b) != 0 || b.length != 9 ||
	    b.data[0] != DW_OP_addr)
		return 0;
	for (int i = 8; i >= 1; i--)    /* little-endian, x86_64 */
		addr = addr << 8 | b.data[i];
	return addr;
}

/* A function marked DW_AT_trampoline: a wrapper (goruntime.h). */
static void add_wrapper(Dwarf_Die *die, struct scan *sc)
{
	Dwarf_Addr lo, hi;
	if (!dwarf_hasattr(die, DW_AT_trampoline) || dwarf_lowpc(die, &lo) != 0 || dwarf_highpc(die, &hi) != 0)
		return;
	if (sc->nwrappers == sc->cap) {
		size_t cap = sc->cap ? 2 * sc->cap : 64;
		uint64_t (*w)[2] = realloc(sc->wrappers, cap * sizeof *w);
		if (!w) {
			sc->nomem = 1;
			return;
		}
		sc->wrappers = w;
		sc->cap = cap;
	}
	sc->wrappers[sc->nwrappers][0] = lo;
	sc->wrappers[sc->nwrappers++][1] = hi;
}

static void scan_die(Dwarf_Die *die, struct scan *sc)
{
	const char *name = dwarf_diename(die);
	int tag = dwarf_tag(die);
	if (tag == DW_TAG_subprogram)
		add_wrapper(die, sc);
	/* The bucket type the compiler made for map[string]string, present
	 * when the program has such a map (runtime/pprof's labelMap is one). */
	if (tag == DW_TAG_structure_type && !sc->has_bucket && name &&
	    strcmp(name, "bucket<string,string>") == 0)
		sc->bucket = *die, sc->has_bucket = 1;
	/* runtime/pprof's labelMap is a struct from Go 1.24 (the slice form);
	 * before, a map type, which is no struct. */
	if (tag == DW_TAG_structure_type && !sc->has_labelmap && name &&
	    strcmp(name, "runtime/pprof.labelMap") == 0)
		sc->labelmap = *die, sc->has_labelmap = 1;
	if (!name || strncmp(name, "runtime.", 8) != 0)
		return;
	if (tag == DW_TAG_structure_type && !sc->has_g && strcmp(name, "runtime.g") == 0)
		sc->g = *die, sc->has_g = 1;
	else if (tag == DW_TAG_structure_type && !sc->has_m && strcmp(name, "runtime.m") == 0)
		sc->m = *die, sc->has_m = 1;
	else if (tag == DW_TAG_structure_type && !sc->has_hmap && strcmp(name, "runtime.hmap") == 0)
		sc->hmap = *die, sc->has_hmap = 1;
	else if (tag != DW_TAG_variable)
		return;
	else if (strcmp(name, "runtime.allgs") == 0)
		sc->allgs = var_address(die);
	else if (strcmp(name, "runtime.fingRunning") == 0)
		sc->fing_running = var_address(die);
	else if (strcmp(name, "runtime.buildVersion") == 0)
		sc->build_version = var_address(die);
	else if (strcmp(name, "runtime.waitReasonStrings") == 0 &&
		 (sc->wait_reasons = var_address(die)) && type_of(die, &sc->wait_reasons_type) != 0)
		sc->wait_reasons = 0;
}

/* The top-level entries of every compile unit: Go puts its variables,
 * types and functions there (10,000 entries for a small program: a few
 * ms). */
static void scan_dwarf(Dwarf *dw, struct scan *sc)
{
	Dwarf_Off off = 0, next;
	size_t hsize;
	while (dwarf_nextcu(dw, off, &next, &hsize, NULL, NULL, NULL) == 0) {
		Dwarf_Die cu, die;
		if (dwarf_offdie(dw, off + hsize, &cu) && dwarf_child(&cu, &die) == 0)
			do
				scan_die(&die, sc);
			while (dwarf_siblingof(&die, &die) == 0);
		off = next;
	}
}

/* Fills the members; the name of the first one missing (in buf), or NULL. */
static const char *fill_fields(struct scan *sc, struct sym_go_layout *L, char *buf, size_t len)
{
	static const char *const gpaths[] = {
		"goid", "atomicstatus", "waitreason", "waitsince", "sched.pc", "sched.sp", "sched.bp",
		"syscallsp", "syscallpc", "gopc", "startpc", "m", "lockedm", "stack.lo", "stack.hi",
	};
	struct sym_go_field *gf[] = {
		&L->g.goid, &L->g.status, &L->g.waitreason, &L->g.waitsince, &L->g.sched_pc,
		&L->g.sched_sp, &L->g.sched_bp, &L->g.syscallsp, &L->g.syscallpc, &L->g.gopc,
		&L->g.startpc, &L->g.m, &L->g.lockedm, &L->g.stack_lo, &L->g.stack_hi,
	};
	L->g_size = size_of(&sc->g);
	for (size_t i = 0; i < sizeof gpaths / sizeof gpaths[0]; i++) {
		*gf[i] = field(&sc->g, gpaths[i]);
		if (!gf[i]->size || gf[i]->off + gf[i]->size > L->g_size) {
			snprintf(buf, len, "g.%s", gpaths[i]);
			return buf;
		}
	}
	L->g.parent_goid = field(&sc->g, "parentGoid");
	if (L->g.parent_goid.off + L->g.parent_goid.size > L->g_size)
		L->g.parent_goid.size = 0;
	L->m.procid = field(&sc->m, "procid");
	L->m.curg = field(&sc->m, "curg");
	if (!L->m.procid.size)
		return "m.procid";
	if (!L->m.curg.size)
		return "m.curg";
	return NULL;
}

/* A member's offset, or -1. */
static long member_off(Dwarf_Die *st, const char *name)
{
	size_t off;
	Dwarf_Die type;
	return member(st, name, &off, &type) == 0 ? (long)off : -1;
}

/* Go 1.24+'s labelMap: where its label slice (a slice header: 24 bytes)
 * is: LabelSet.list in 1.24, the embedded label.Set's List
 * (internal/runtime/pprof/label) in 1.26; -1 if not as expected. */
static int fill_label_slice(struct scan *sc, struct sym_go_layout *L)
{
	size_t set, list;
	Dwarf_Die set_type, list_type;
	if ((member(&sc->labelmap, "LabelSet", &set, &set_type) != 0 &&
	     member(&sc->labelmap, "Set", &set, &set_type) != 0) ||
	    (member(&set_type, "list", &list, &list_type) != 0 &&
	     member(&set_type, "List", &list, &list_type) != 0) || size_of(&list_type) != 24)
		return -1;
	L->labels_slice = 1;
	L->labels_list = set + list;
	return 0;
}

/* Where a goroutine's pprof labels are (g.labels) and how its labelMap is
 * laid out: from Go 1.24 a struct holding a slice (fill_label_slice);
 * before, a map: runtime.hmap's members, and the map[string]string
 * bucket's from its type, or as map.go lays it out (8 tophash bytes, then
 * 8 keys of 16 bytes, 8 values, the overflow pointer) when the program
 * has none.  Anything missing leaves labels unread (g.labels size 0). */
static void fill_labels(struct scan *sc, struct sym_go_layout *L)
{
	struct sym_go_field *hf[] = { &L->hmap.count, &L->hmap.flags, &L->hmap.B, &L->hmap.buckets,
				      &L->hmap.oldbuckets };
	static const char *const hnames[] = { "count", "flags", "B", "buckets", "oldbuckets" };
	L->g.labels = field(&sc->g, "labels");
	if (L->g.labels.size != 8 || L->g.labels.off + 8 > L->g_size ||
	    (sc->has_labelmap ? fill_label_slice(sc, L) != 0 : !sc->has_hmap)) {
		L->g.labels.size = 0;
		return;
	}
	if (L->labels_slice)
		return;
	L->hmap.size = size_of(&sc->hmap);
	for (size_t i = 0; i < sizeof hf / sizeof hf[0]; i++) {
		*hf[i] = field(&sc->hmap, hnames[i]);
		if (!hf[i]->size || hf[i]->off + hf[i]->size > L->hmap.size) {
			L->g.labels.size = 0;
			return;
		}
	}
	L->bucket = (struct sym_go_bucket){ 8 + 8 * 16 + 8 * 16 + 8, 0, 8, 8 + 8 * 16, 8 + 8 * 16 * 2 };
	if (sc->has_bucket) {
		long k = member_off(&sc->bucket, "keys"), v = member_off(&sc->bucket, "values"),
		     t = member_off(&sc->bucket, "tophash"), o = member_off(&sc->bucket, "overflow");
		size_t size = size_of(&sc->bucket);
		if (k < 0 || v < 0 || t < 0 || o < 0 || (size_t)k + 128 > size || (size_t)v + 128 > size ||
		    (size_t)t + 8 > size || (size_t)o + 8 > size) {
			L->g.labels.size = 0;
			return;
		}
		L->bucket = (struct sym_go_bucket){ size, (size_t)t, (size_t)k, (size_t)v, (size_t)o };
	}
}

static int cmp_range(const void *a, const void *b)
{
	const uint64_t *x = a, *y = b;
	return (x[0] > y[0]) - (x[0] < y[0]);
}

int sym_go_is_wrapper(const struct sym_go_layout *L, uint64_t pc)
{
	size_t lo = 0, hi = L->nwrappers;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (pc < L->wrappers[mid][0])
			hi = mid;
		else if (pc >= L->wrappers[mid][1])
			lo = mid + 1;
		else
			return 1;
	}
	return 0;
}

void sym_go_layout_free(struct sym_go_layout *L)
{
	free(L->wrappers);
	L->wrappers = NULL;
	L->nwrappers = 0;
}

int sym_go_layout_dwarf(Dwfl_Module *mod, struct sym_go_layout *L)
{
	Dwarf_Addr bias;
	Dwarf *dw = dwfl_module_getdwarf(mod, &bias);
	L->kind = SYM_GO_UNKNOWN;
	if (!dw) {
		snprintf(L->why, sizeof L->why, "a Go program without DWARF: only OS threads are shown");
		return 0;
	}
	struct scan *sc = calloc(1, sizeof *sc);
	if (!sc)
		return -1;
	char buf[64];
	scan_dwarf(dw, sc);
	if (sc->nomem) {
		free(sc->wrappers);
		free(sc);
		return -1;
	}
	for (size_t i = 0; i < sc->nwrappers; i++)
		sc->wrappers[i][0] += bias, sc->wrappers[i][1] += bias;
	qsort(sc->wrappers, sc->nwrappers, sizeof *sc->wrappers, cmp_range);
	L->wrappers = sc->wrappers;
	L->nwrappers = sc->nwrappers;
	const char *missing = !sc->has_g ? "the type runtime.g" : !sc->has_m ? "the type runtime.m"
			    : !sc->allgs ? "runtime.allgs" : !sc->wait_reasons ? "runtime.waitReasonStrings"
			    : fill_fields(sc, L, buf, sizeof buf);
	if (missing) {
		snprintf(L->why, sizeof L->why,
			 "this Go program's DWARF has no %s: only OS threads are shown", missing);
		free(sc);
		return 0;
	}
	L->allgs = sc->allgs + bias;
	L->fing_running = sc->fing_running ? sc->fing_running + bias : 0;
	L->build_version = sc->build_version ? sc->build_version + bias : 0;
	L->wait_reasons = sc->wait_reasons + bias;
	fill_labels(sc, L);
	L->n_wait_reasons = size_of(&sc->wait_reasons_type) / 16;      /* [N]string: {ptr, len} */
	L->kind = SYM_GO_OK;
	free(sc);
	return 0;
}

/* Without DWARF: golayout.c's table, for the versions it knows. */
static int layout_without_dwarf(struct sym_session *s, Dwfl_Module *mod, struct sym_go_layout *L)
{
	GElf_Addr bias;
	Elf *elf = dwfl_module_getelf(mod, &bias);
	int r = sym_go_layout_table(sym_module_gotab(s, mod), elf, bias, L);
	if (L->nwrappers)
		qsort(L->wrappers, L->nwrappers, sizeof *L->wrappers, cmp_range);
	return r;
}

int sym_go_layout(struct sym_session *s, struct sym_go_layout *L)
{
	Dwfl_Module *mod = NULL;
	Dwarf_Addr bias;
	memset(L, 0, sizeof *L);
	dwfl_getmodules(s->dwfl, find_go_module, &mod, 0);
	if (!mod)
		return 0;
	const char *name = dwfl_module_info(mod, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
	snprintf(L->module, sizeof L->module, "%s", name ? name : "?");
	L->kind = SYM_GO_UNKNOWN;
	if (!dwfl_module_getdwarf(mod, &bias))
		return layout_without_dwarf(s, mod, L);
	return sym_go_layout_dwarf(mod, L);
}

/* ---- addresses and unwinding ------------------------------------------- */

const struct sym_frame *sym_frames_at(struct sym_session *s, uint64_t lookup_pc, size_t *n)
{
	const struct sym_resolved *r = sym_resolve(s, lookup_pc);
	*n = r ? r->n : 0;
	return r && r->n ? r->frames : NULL;
}

/* A goroutine in a system call saved no frame pointer (Go 1.23 added
 * syscallbp), and without .debug_frame its frames cannot be found from
 * pc and sp alone.  Go's traceback uses the line table's sp deltas: the
 * function holding pc has its frame [sp, sp + delta) under the return
 * address, and a Go function with a frame (delta >= 16) keeps the
 * caller's bp in its top word, where its own bp points.  Frameless
 * functions (assembly such as Go 1.17's syscall.Syscall) are stepped over
 * by their delta and remembered, to be put back in front of the frame
 * pointer walk; bp is then that of the first function with a frame. */
enum { MAX_FRAMELESS = 8 };

struct frameless {
	uint64_t pc[MAX_FRAMELESS];     /* shown pcs: the first, then return addresses */
	size_t n;
};

static int stack_word(const struct sym_snapshot *snap, uint64_t addr, uint64_t *v)
{
	if (addr < snap->stack_addr || addr - snap->stack_addr > snap->stack_len ||
	    snap->stack_len - (addr - snap->stack_addr) < 8)
		return -1;
	memcpy(v, snap->stack + (addr - snap->stack_addr), 8);
	return 0;
}

/* Sets regs (PC as shown, SP, BP) to the first frame with a frame
 * pointer; back: what the lookup of regs' PC subtracts (1 past the first
 * frame: a return address).  Leaves regs as they are if anything is not
 * known. */
static void frame_pointer_at(struct sym_session *s, const struct sym_snapshot *snap,
			     struct arch_regs *regs, uint64_t *back, struct frameless *skipped)
{
	uint64_t pc = REG(regs, PC), sp = REG(regs, SP), b = *back;
	skipped->n = 0;
	for (size_t k = 0; k <= MAX_FRAMELESS; k++) {
		Dwfl_Module *mod = dwfl_addrmodule(s->dwfl, pc - b);
		GElf_Addr bias;
		const struct sym_gotab *t = mod && dwfl_module_getelf(mod, &bias) ? sym_module_gotab(s, mod) : NULL;
		int32_t delta;
		uint64_t ret;
		if (!t || sym_gotab_sp_delta(t, pc - b - bias, &delta))
			break;
		if (delta >= 16) {
			REG(regs, PC) = pc;
			REG(regs, SP) = sp;
			REG(regs, BP) = sp + (uint64_t)delta - 8;
			regs->known |= REGBIT(BP);
			*back = b;
			return;
		}
		if (k == MAX_FRAMELESS || stack_word(snap, sp + (uint64_t)delta, &ret))
			break;
		skipped->pc[skipped->n++] = pc;
		pc = ret;
		sp += (uint64_t)delta + 8;
		b = 1;
	}
	skipped->n = 0;
}

/* Puts the frameless frames back in front of the walk's: each pc named at
 * its lookup address (pc - back for the first, pc - 1 for return
 * addresses) and shown at pc. */
static int prepend(struct sym_session *s, const struct frameless *skipped, uint64_t back,
		   struct sym_stack *out)
{
	size_t n = 0;
	for (size_t i = 0; i < skipped->n; i++) {
		const struct sym_resolved *r = sym_resolve(s, skipped->pc[i] - (i ? 1 : back));
		n += r && r->n ? r->n : 0;
	}
	struct sym_frame *f = malloc((n + out->n + 1) * sizeof *f);
	if (!f)
		return -1;
	size_t k = 0;
	for (size_t i = 0; i < skipped->n; i++) {
		uint64_t pc = skipped->pc[i];
		const struct sym_resolved *r = sym_resolve(s, pc - (i ? 1 : back));
		for (size_t j = 0; r && j < r->n; j++) {
			f[k] = r->frames[j];
			f[k].func_offset += pc - f[k].lookup_pc;
			f[k].module_offset += pc - f[k].lookup_pc;
			f[k++].pc = pc;
		}
	}
	if (out->n)
		memcpy(f + k, out->frames, out->n * sizeof *f);
	free(out->frames);
	out->frames = f;
	out->n += k;
	return 0;
}

int sym_unwind_resumable(struct sym_session *s, const struct sym_snapshot *snap,
			 struct sym_stack *out)
{
	uint64_t pc = REG(snap->regs, PC);
	const struct sym_resolved *r = sym_resolve(s, pc);
	const struct sym_frame *phys = r && r->n ? &r->frames[r->n - 1] : NULL;
	/* At a function's entry nothing has called anything yet: a goroutine
	 * that never ran starts there. */
	uint64_t back = phys && phys->has_offset && phys->func_offset == 0 ? 0 : 1, first_back = back;
	struct arch_regs regs = *snap->regs;
	struct sym_snapshot at = *snap;
	struct frameless skipped = { .n = 0 };
	if (!(regs.known & REGBIT(BP)))
		frame_pointer_at(s, snap, &regs, &back, &skipped);
	pc = REG(&regs, PC);
	REG(&regs, PC) = pc - back;
	at.regs = &regs;
	if (sym_unwind(s, &at, out))
		return -1;
	/* The innermost physical frame and the frames inlined into it, back
	 * at pc (the lookup stays at pc - 1, where the call is). */
	for (size_t i = 0; back && i < out->n && out->frames[i].pc == pc - back; i++) {
		out->frames[i].pc = pc;
		out->frames[i].func_offset += back;
		out->frames[i].module_offset += back;
		if (!out->frames[i].inlined)
			break;
	}
	if (skipped.n && prepend(s, &skipped, first_back, out)) {
		sym_stack_free(out);
		return -1;
	}
	return 0;
}
