/* test_golayout.c — the Go runtime's layouts as golayout.c knows them
 * without DWARF, against the DWARF of the same build.
 *
 * argv[1] is tests/targets/go_goroutines (Debian's Go 1.19, with DWARF),
 * argv[2] the same program built with -ldflags=-s -w (from
 * test_golayout_toolchains.py: the same pair built by Debian's Go 1.21,
 * 1.22, 1.23, 1.24 and 1.26).  On the first, the
 * layout read from DWARF (goruntime.c: where this build put each field)
 * is the oracle: the version table's offsets of every g and m field, and
 * what golayout.c finds in the binary's code and data (runtime.allgs from
 * runtime.allgadd's code, runtime.waitReasonStrings by its first strings,
 * the wrappers by funcID), must equal it.  On the stripped twin the same
 * must be found (the same counts; the addresses moved a little with the
 * link).  Any further
 * arguments are other Go binaries (esbuild, stripped): their layout is
 * printed, for a look by hand.  It reaches into symbolize's internal
 * header on purpose: the finders are the unit under test.
 */
#include <elfutils/libdwfl.h>
#include <libelf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../symbolize/goruntime.h"
#include "../../symbolize/internal.h"
#include "check.h"

static char *debuginfo_path;
static const Dwfl_Callbacks offline = {
	.find_elf = dwfl_build_id_find_elf,
	.find_debuginfo = dwfl_standard_find_debuginfo,
	.section_address = dwfl_offline_section_address,
	.debuginfo_path = &debuginfo_path,
};

struct binary {
	Dwfl *dwfl;
	Dwfl_Module *mod;
	struct sym_gotab *tab;
	Elf *elf;
};

static int open_binary(const char *path, struct binary *b)
{
	GElf_Addr bias;
	b->dwfl = dwfl_begin(&offline);
	b->mod = b->dwfl ? dwfl_report_offline(b->dwfl, "go", path, -1) : NULL;
	if (!b->mod || dwfl_report_end(b->dwfl, NULL, NULL) != 0)
		return -1;
	b->elf = dwfl_module_getelf(b->mod, &bias);
	b->tab = sym_gotab_open(b->elf);
	return b->tab ? 0 : -1;
}

static void close_binary(struct binary *b)
{
	sym_gotab_free(b->tab);
	dwfl_end(b->dwfl);
}

static void same_field(const char *name, struct sym_go_field dwarf, struct sym_go_field table)
{
	CHECK_MSG(dwarf.off == table.off && dwarf.size == table.size,
		  "%s: DWARF says offset %zu size %zu, the table %zu size %zu", name, dwarf.off, dwarf.size,
		  table.off, table.size);
}

static void compare_fields(const struct sym_go_layout *d, const struct sym_go_layout *t)
{
	same_field("g.goid", d->g.goid, t->g.goid);
	same_field("g.atomicstatus", d->g.status, t->g.status);
	same_field("g.waitreason", d->g.waitreason, t->g.waitreason);
	same_field("g.waitsince", d->g.waitsince, t->g.waitsince);
	same_field("g.sched.pc", d->g.sched_pc, t->g.sched_pc);
	same_field("g.sched.sp", d->g.sched_sp, t->g.sched_sp);
	same_field("g.sched.bp", d->g.sched_bp, t->g.sched_bp);
	same_field("g.syscallsp", d->g.syscallsp, t->g.syscallsp);
	same_field("g.syscallpc", d->g.syscallpc, t->g.syscallpc);
	same_field("g.gopc", d->g.gopc, t->g.gopc);
	same_field("g.startpc", d->g.startpc, t->g.startpc);
	same_field("g.m", d->g.m, t->g.m);
	same_field("g.lockedm", d->g.lockedm, t->g.lockedm);
	same_field("g.stack.lo", d->g.stack_lo, t->g.stack_lo);
	same_field("g.stack.hi", d->g.stack_hi, t->g.stack_hi);
	same_field("g.parentGoid", d->g.parent_goid, t->g.parent_goid);
	same_field("g.labels", d->g.labels, t->g.labels);
	CHECK_MSG(d->labels_slice == t->labels_slice && d->labels_list == t->labels_list,
		  "labelMap: DWARF says %s (list at %zu), the table %s (list at %zu)",
		  d->labels_slice ? "a slice" : "a map", d->labels_list, t->labels_slice ? "a slice" : "a map",
		  t->labels_list);
	if (d->labels_slice)
		goto m;
	same_field("hmap.count", d->hmap.count, t->hmap.count);
	same_field("hmap.flags", d->hmap.flags, t->hmap.flags);
	same_field("hmap.B", d->hmap.B, t->hmap.B);
	same_field("hmap.buckets", d->hmap.buckets, t->hmap.buckets);
	same_field("hmap.oldbuckets", d->hmap.oldbuckets, t->hmap.oldbuckets);
	CHECK_MSG(d->hmap.size == t->hmap.size, "runtime.hmap: %zu bytes, the table says %zu",
		  d->hmap.size, t->hmap.size);
	CHECK_MSG(memcmp(&d->bucket, &t->bucket, sizeof d->bucket) == 0,
		  "map[string]string's bucket: %zu bytes (keys at %zu), the table says %zu (keys at %zu)",
		  d->bucket.size, d->bucket.keys, t->bucket.size, t->bucket.keys);
m:
	same_field("m.procid", d->m.procid, t->m.procid);
	same_field("m.curg", d->m.curg, t->m.curg);
	CHECK_MSG(t->g_size <= d->g_size, "the table reads %zu bytes of a g of %zu", t->g_size, d->g_size);
}

/* Every wrapper DWARF marks (DW_AT_trampoline) starts a function of the
 * funcID list; the list has more (the type hash and equality functions
 * Go's traceback also leaves out by their funcID). */
static void compare_wrappers(const struct sym_go_layout *d, const struct sym_go_layout *t)
{
	size_t found = 0;
	for (size_t i = 0; i < d->nwrappers; i++)
		for (size_t k = 0; k < t->nwrappers; k++)
			if (t->wrappers[k][0] == d->wrappers[i][0]) {
				found++;
				break;
			}
	CHECK_MSG(d->nwrappers > 0 && found == d->nwrappers && t->nwrappers >= d->nwrappers,
		  "wrappers: %zu in DWARF, %zu by funcID, %zu of DWARF's found", d->nwrappers, t->nwrappers,
		  found);
}

static void print_layout(const char *path, const struct sym_go_layout *L)
{
	printf("%s: %s%s%s allgs 0x%llx waitReasonStrings 0x%llx (%zu strings) %zu wrappers\n", path,
	       L->version, L->kind == SYM_GO_OK ? "" : ": ", L->kind == SYM_GO_OK ? "" : L->why,
	       (unsigned long long)L->allgs, (unsigned long long)L->wait_reasons, L->n_wait_reasons,
	       L->nwrappers);
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		printf("skipped: the Go fixtures are not built (no go tool)\n");
		return 77;
	}
	struct binary full, stripped;
	elf_version(EV_CURRENT);
	if (open_binary(argv[1], &full) || open_binary(argv[2], &stripped)) {
		fprintf(stderr, "cannot read %s or %s as a Go binary\n", argv[1], argv[2]);
		return 1;
	}
	struct sym_go_layout d, t, s;
	memset(&d, 0, sizeof d);
	memset(&t, 0, sizeof t);
	memset(&s, 0, sizeof s);
	if (sym_go_layout_dwarf(full.mod, &d) || d.kind != SYM_GO_OK ||
	    sym_go_layout_table(full.tab, full.elf, 0, &t) || t.kind != SYM_GO_OK ||
	    sym_go_layout_table(stripped.tab, stripped.elf, 0, &s) || s.kind != SYM_GO_OK) {
		fprintf(stderr, "no layout: DWARF: %s; table on %s: %s; on %s: %s\n", d.why, argv[1], t.why,
			argv[2], s.why);
		return 1;
	}
	print_layout(argv[1], &t);
	print_layout(argv[2], &s);
	CHECK_MSG(strncmp(t.version, "go1.", 4) == 0, "version %s", t.version);
	compare_fields(&d, &t);
	CHECK_MSG(t.allgs == d.allgs, "runtime.allgs at 0x%llx, DWARF says 0x%llx",
		  (unsigned long long)t.allgs, (unsigned long long)d.allgs);
	CHECK_MSG(t.wait_reasons == d.wait_reasons, "runtime.waitReasonStrings at 0x%llx, DWARF says 0x%llx",
		  (unsigned long long)t.wait_reasons, (unsigned long long)d.wait_reasons);
	CHECK_MSG(t.n_wait_reasons >= d.n_wait_reasons, "%zu wait reasons read as strings, DWARF has %zu",
		  t.n_wait_reasons, d.n_wait_reasons);
	compare_wrappers(&d, &t);
	/* The stripped twin: the same build less DWARF and symbols. */
	CHECK(strcmp(s.version, t.version) == 0 && s.allgs && s.wait_reasons &&
	      s.n_wait_reasons == t.n_wait_reasons && s.nwrappers == t.nwrappers);
	compare_fields(&d, &s);
	sym_go_layout_free(&d);
	sym_go_layout_free(&t);
	sym_go_layout_free(&s);
	close_binary(&full);
	close_binary(&stripped);
	for (int i = 3; i < argc; i++) {
		struct binary b;
		struct sym_go_layout L;
		memset(&L, 0, sizeof L);
		if (open_binary(argv[i], &b) != 0) {
			printf("%s: no Go line table\n", argv[i]);
			continue;
		}
		CHECK(sym_go_layout_table(b.tab, b.elf, 0, &L) == 0);
		print_layout(argv[i], &L);
		sym_go_layout_free(&L);
		close_binary(&b);
	}
	return check_summary(argv[0]);
}
