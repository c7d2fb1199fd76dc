/* resolve.c — address -> frames (function, file:line, inline chain, module).
 *
 * Three caches keep this fast (docs/ARCHITECTURE.md, "Measured costs"):
 *  - per module, a symbol table sorted by address, built once; libdwfl's
 *    own dwfl_module_addrinfo scans the whole table on every call;
 *  - per address, the finished inline chain, so dwarf_getscopes and the
 *    line table run once per distinct pc;
 *  - interned strings, so frames share one copy of each name.
 */
#include "internal.h"

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <gelf.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- per-module data, kept in the module's libdwfl userdata slot ------- */

struct symbol {
	uint64_t addr, size;
	const char *name;           /* interned, raw (mangled) */
	int global;
};

struct modinfo {
	const char *path;           /* interned */
	const char *build_id;       /* interned hex, or NULL */
	uint64_t low;
	struct symbol *syms;
	size_t nsyms;
	/* .eh_frame_hdr's sorted table of function starts (load_fde_starts
	 * below): nfde entries of 8 bytes, offsets from hdr_vaddr. */
	const unsigned char *fdes;
	size_t nfde;
	uint64_t hdr_vaddr, bias;
	/* A Go module's own line table (gopclntab.c), or NULL. */
	struct sym_gotab *go;
	uint64_t elf_bias;          /* load address - link-time address */
};

static int cmp_symbol(const void *a, const void *b)
{
	const struct symbol *x = a, *y = b;
	if (x->addr != y->addr)
		return x->addr < y->addr ? -1 : 1;
	/* Among aliases, the global name first: it is the one people know. */
	return y->global - x->global;
}

/* "memcpy@@GLIBC_2.14" -> "memcpy": the version is noise in a stack. */
static const char *intern_unversioned(struct sym_session *s, const char *name)
{
	const char *at = strchr(name, '@');
	if (!at || at == name)
		return sym_intern(&s->strings, name);
	char *copy = strndup(name, (size_t)(at - name));
	const char *r = sym_intern(&s->strings, copy ? copy : name);
	free(copy);
	return r;
}

static void load_symbols(struct sym_session *s, Dwfl_Module *mod, struct modinfo *mi)
{
	int n = dwfl_module_getsymtab(mod);
	if (n <= 0)
		return;
	mi->syms = calloc((size_t)n, sizeof *mi->syms);
	if (!mi->syms)
		return;
	for (int i = 1; i < n; i++) {
		GElf_Sym sym;
		GElf_Addr addr;
		const char *name = dwfl_module_getsym_info(mod, i, &sym, &addr, NULL, NULL, NULL);
		int type = GELF_ST_TYPE(sym.st_info);
		if (!name || !*name || addr == 0 || (type != STT_FUNC && type != STT_GNU_IFUNC))
			continue;
		struct symbol *e = &mi->syms[mi->nsyms++];
		e->addr = addr;
		e->size = sym.st_size;
		e->name = intern_unversioned(s, name);
		e->global = GELF_ST_BIND(sym.st_info) == STB_GLOBAL;
	}
	qsort(mi->syms, mi->nsyms, sizeof *mi->syms, cmp_symbol);
}

/* ---- functions without a symbol: named by module and start ------------ */

/* A stripped library (libc.so.6 without libc6-dbg) has no symbol for its
 * internal functions (start_thread, clone3), but it has .eh_frame for
 * unwinding, and .eh_frame_hdr indexes it: a table of every FDE's start
 * address, sorted.  The start of the function holding pc is the greatest
 * start not above it.  libdw searches this table for its own use without
 * exposing what it found, so it is read here; only the encoding every
 * linker writes is accepted (pairs of signed 4-byte offsets from the
 * section, DW_EH_PE_datarel|DW_EH_PE_sdata4), anything else is ignored.
 * Format: the LSB's "Linux Standard Base Core Specification", .eh_frame_hdr.
 * Little-endian reads: x86_64 only, like arch/regs.h. */
static int32_t le32(const unsigned char *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return (int32_t)v;
}

static void load_fde_starts(Dwfl_Module *mod, struct modinfo *mi)
{
	Dwarf_Addr bias;
	Elf *elf = dwfl_module_getelf(mod, &bias);
	size_t nph;
	if (!elf || elf_getphdrnum(elf, &nph) != 0)
		return;
	for (size_t i = 0; i < nph; i++) {
		GElf_Phdr ph;
		if (!gelf_getphdr(elf, (int)i, &ph) || ph.p_type != PT_GNU_EH_FRAME)
			continue;
		Elf_Data *d = elf_getdata_rawchunk(elf, (int64_t)ph.p_offset, ph.p_filesz, ELF_T_BYTE);
		const unsigned char *b = d ? d->d_buf : NULL;
		/* version 1; eh_frame_ptr 4 bytes (u/sdata4, any base);
		 * fde_count udata4; the table datarel|sdata4 */
		if (!b || d->d_size < 12 || b[0] != 1 || (b[1] & 0x07) != 0x03 || b[2] != 0x03 ||
		    b[3] != 0x3b)
			return;
		uint32_t n = (uint32_t)le32(b + 8);
		if (n > (d->d_size - 12) / 8)
			return;
		mi->fdes = b + 12;
		mi->nfde = n;
		mi->hdr_vaddr = ph.p_vaddr;
		mi->bias = bias;
		return;
	}
}

/* The start (absolute address) of the function holding pc by the FDE
 * that covers it, or 0.  Only a pc that some FDE covers is answered: FDEs
 * do not overlap, so that one has the greatest start not above pc. */
static uint64_t fde_start(Dwfl_Module *mod, const struct modinfo *mi, uint64_t pc)
{
	Dwarf_Addr bias;
	Dwarf_CFI *cfi = dwfl_module_eh_cfi(mod, &bias);
	Dwarf_Frame *frame;
	if (!mi->nfde || !cfi || dwarf_cfi_addrframe(cfi, pc - bias, &frame) != 0)
		return 0;
	free(frame);
	int64_t rel = (int64_t)(pc - mi->bias - mi->hdr_vaddr);
	size_t lo = 0, hi = mi->nfde;
	while (lo < hi) {                   /* first entry starting above pc */
		size_t mid = lo + (hi - lo) / 2;
		if (le32(mi->fdes + 8 * mid) <= rel)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return 0;
	return mi->bias + mi->hdr_vaddr + (uint64_t)(int64_t)le32(mi->fdes + 8 * (lo - 1));
}

/* "libc.so.6+0x891d0": the module's file name and the function's start
 * as an address in that file, what addr2line and objdump take.  Every pc
 * of one function gets the same name, so its frames merge in a profile. */
static void name_by_fde(struct sym_session *s, Dwfl_Module *mod, const struct modinfo *mi,
			uint64_t pc, struct sym_frame *f)
{
	uint64_t start = mi && mi->path ? fde_start(mod, mi, pc) : 0;
	if (!start)
		return;
	const char *base = strrchr(mi->path, '/');
	char name[512];
	snprintf(name, sizeof name, "%s+0x%" PRIx64, base ? base + 1 : mi->path, start - mi->bias);
	f->function = sym_intern(&s->strings, name);
	f->has_offset = 1;
	f->func_offset = pc - start;
}

static struct modinfo *module_info(struct sym_session *s, Dwfl_Module *mod)
{
	void **ud;
	Dwarf_Addr low;
	const char *name = dwfl_module_info(mod, &ud, &low, NULL, NULL, NULL, NULL, NULL);
	if (*ud)
		return *ud;
	struct modinfo *mi = calloc(1, sizeof *mi);
	if (!mi)
		return NULL;
	/* libdwfl never hands userdata back for freeing: keep a list. */
	if (s->nmods == s->capmods) {
		size_t cap = s->capmods ? s->capmods * 2 : 32;
		struct modinfo **v = realloc(s->mods, cap * sizeof *v);
		if (!v) {
			free(mi);
			return NULL;
		}
		s->mods = v;
		s->capmods = cap;
	}
	s->mods[s->nmods++] = mi;
	mi->low = low;
	if (name) {
		/* "/usr/lib/x.so (deleted)" names the file it was. */
		char *clean = strdup(name);
		char *del = clean ? strstr(clean, " (deleted)") : NULL;
		if (del && del[10] == 0)
			*del = 0;
		mi->path = sym_intern(&s->strings, clean ? clean : name);
		free(clean);
	}
	const unsigned char *bits;
	GElf_Addr vaddr;
	Dwarf_Addr elf_bias;
	dwfl_module_getelf(mod, &elf_bias);   /* the build ID is known once the ELF is */
	int len = dwfl_module_build_id(mod, &bits, &vaddr);
	if (len > 0) {
		char hex[2 * 64 + 1];
		int k = len > 64 ? 64 : len;
		for (int i = 0; i < k; i++)
			snprintf(hex + 2 * i, 3, "%02x", bits[i]);
		mi->build_id = sym_intern(&s->strings, hex);
	}
	load_symbols(s, mod, mi);
	load_fde_starts(mod, mi);
	mi->go = sym_gotab_open(dwfl_module_getelf(mod, &elf_bias));
	mi->elf_bias = elf_bias;
	*ud = mi;
	return mi;
}

void sym_module_warm(struct sym_session *s, Dwfl_Module *mod)
{
	module_info(s, mod);
}

const struct sym_gotab *sym_module_gotab(struct sym_session *s, Dwfl_Module *mod)
{
	struct modinfo *mi = module_info(s, mod);
	return mi ? mi->go : NULL;
}

const char *sym_build_id(struct sym_session *s, uint64_t addr)
{
	Dwfl_Module *mod = dwfl_addrmodule(s->dwfl, addr);
	struct modinfo *mi = mod ? module_info(s, mod) : NULL;
	return mi ? mi->build_id : NULL;
}

static const struct symbol *find_symbol(const struct modinfo *mi, uint64_t pc)
{
	size_t lo = 0, hi = mi->nsyms;
	while (lo < hi) {                   /* first symbol with addr > pc */
		size_t mid = lo + (hi - lo) / 2;
		if (mi->syms[mid].addr <= pc)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return NULL;
	const struct symbol *e = &mi->syms[lo - 1];
	/* Step back to the first (preferred) alias at that address. */
	while (e > mi->syms && e[-1].addr == e->addr)
		e--;
	/* Sized symbols must contain pc; some hand-written ones have size 0. */
	for (const struct symbol *a = e; a < mi->syms + mi->nsyms && a->addr == e->addr; a++)
		if (a->size == 0 || pc < a->addr + a->size)
			return a;
	return NULL;
}

/* ---- DWARF: lines and the inline chain ---------------------------------- */

static const char *die_name(struct sym_session *s, Dwarf_Die *die, const char **mangled)
{
	Dwarf_Attribute attr;
	const char *link = NULL;
	if (dwarf_attr_integrate(die, DW_AT_linkage_name, &attr) ||
	    dwarf_attr_integrate(die, DW_AT_MIPS_linkage_name, &attr))
		link = dwarf_formstring(&attr);
	*mangled = link ? sym_intern(&s->strings, link) : NULL;
	if (link) {
		char *d = sym_demangle(link);
		if (d) {
			const char *r = sym_intern(&s->strings, d);
			free(d);
			return r;
		}
	}
	const char *name = dwarf_diename(die);
	return name ? sym_intern(&s->strings, name) : NULL;
}

/* Removes "." and ".." segments of an absolute path, in place. */
static void normalize(char *path)
{
	char *out = path, *p = path;
	while (*p) {
		while (*p == '/')
			p++;
		char *seg = p;
		while (*p && *p != '/')
			p++;
		size_t len = (size_t)(p - seg);
		if (len == 0 || (len == 1 && seg[0] == '.'))
			continue;
		if (len == 2 && seg[0] == '.' && seg[1] == '.') {
			while (out > path && *--out != '/')
				;
			continue;
		}
		*out++ = '/';
		memmove(out, seg, len);
		out += len;
	}
	if (out == path)
		*out++ = '/';
	*out = 0;
}

/* Line tables hold paths relative to the compilation directory.  Where that
 * directory and the file exist here (the user's own tree), show the real
 * absolute path; otherwise (glibc's "./nptl/..." from a build machine) keep
 * the path as the compiler wrote it. */
static const char *source_path(struct sym_session *s, Dwarf_Die *cu, const char *file)
{
	Dwarf_Attribute attr;
	const char *dir = NULL;
	if (file[0] != '/' && cu && dwarf_attr(cu, DW_AT_comp_dir, &attr))
		dir = dwarf_formstring(&attr);
	char *joined;
	if (!dir || dir[0] != '/' || asprintf(&joined, "%s/%s", dir, file) < 0)
		return sym_intern(&s->strings, file);
	normalize(joined);
	const char *r = sym_intern(&s->strings, access(joined, F_OK) == 0 ? joined : file);
	free(joined);
	return r;
}

static void call_site(struct sym_session *s, Dwarf_Die *cu, Dwarf_Die *inl,
		      const char **file, int *line)
{
	Dwarf_Attribute attr;
	Dwarf_Word v;
	*file = NULL;
	*line = 0;
	if (dwarf_attr(inl, DW_AT_call_line, &attr) && dwarf_formudata(&attr, &v) == 0)
		*line = (int)v;
	Dwarf_Files *files;
	size_t nfiles;
	if (dwarf_attr(inl, DW_AT_call_file, &attr) && dwarf_formudata(&attr, &v) == 0 &&
	    dwarf_getsrcfiles(cu, &files, &nfiles) == 0 && v < nfiles) {
		const char *f = dwarf_filesrc(files, v, NULL, NULL);
		if (f)
			*file = source_path(s, cu, f);
	}
}

/* ---- Go code: Go's own line table ------------------------------------- */

/* A name as Go's own tracebacks and profiles print it: without the
 * ".abi0" suffix the linker gives assembly functions, and with a generic
 * function's type arguments as "[...]" (runtime.funcNameForPrint). */
static const char *go_name(struct sym_session *s, const char *raw)
{
	size_t n = strlen(raw);
	const char *open = strchr(raw, '['), *close = strrchr(raw, ']');
	int abi0 = n > 5 && strcmp(raw + n - 5, ".abi0") == 0;
	if (!abi0 && !(open && close > open + 1))
		return sym_intern(&s->strings, raw);
	char *copy = malloc(n + 4);
	if (!copy)
		return sym_intern(&s->strings, raw);
	if (abi0)
		n -= 5;
	if (open && close > open + 1 && (size_t)(close - raw) < n)
		snprintf(copy, n + 4, "%.*s[...]%.*s", (int)(open - raw), raw,
			 (int)(n - (size_t)(close - raw) - 1), close + 1);
	else
		snprintf(copy, n + 4, "%.*s", (int)n, raw);
	const char *r = sym_intern(&s->strings, copy);
	free(copy);
	return r;
}

/* The frames of Go code at pc from the module's pclntab, as Go's own
 * traceback makes them: inlined calls first, the physical function last,
 * each at the file:line its pc-value tables give.  NULL if no Go function
 * holds pc (cgo's C code, assembly trampolines of the C side). */
static struct sym_frame *expand_go(struct sym_session *s, const struct modinfo *mi, uint64_t pc,
				   size_t *n_out)
{
	struct sym_goframe g[64];
	int n = sym_gotab_lookup(mi->go, pc - mi->elf_bias, g, sizeof g / sizeof g[0]);
	struct sym_frame *frames = n > 0 ? calloc((size_t)n, sizeof *frames) : NULL;
	if (!frames)
		return NULL;
	for (int i = 0; i < n; i++) {
		struct sym_frame *f = &frames[i];
		f->lookup_pc = pc;
		f->module = mi->path;
		f->build_id = mi->build_id;
		f->module_offset = pc - mi->low;
		f->function = go_name(s, g[i].function);
		f->mangled = f->function;       /* Go's profiles: system name = name */
		f->file = g[i].file ? sym_intern(&s->strings, g[i].file) : NULL;
		f->line = g[i].file ? g[i].line : 0;
		f->inlined = g[i].inlined;
		f->frame_pc = g[i].pc + mi->elf_bias;
	}
	frames[n - 1].has_offset = 1;
	frames[n - 1].func_offset = pc - (g[n - 1].entry + mi->elf_bias);
	*n_out = (size_t)n;
	return frames;
}

/* Whether the line libdwfl found for pc belongs to pc: the compile unit
 * it comes from covers pc.  elfutils 0.188 answers an address just past
 * a line sequence's end with the sequence's last row: crt1's _start,
 * right after a main that ends in a call that never returns, got main's
 * last line (eu-addr2line says the same).  A unit that says nothing of
 * its ranges is taken at its word. */
static int line_covers(Dwfl_Module *mod, Dwfl_Line *dl, uint64_t pc)
{
	Dwarf_Die *cu = dwfl_linecu(dl);
	Dwarf_Addr bias;
	if (!cu || !dwfl_module_getdwarf(mod, &bias))
		return 1;
	if (!dwarf_hasattr(cu, DW_AT_low_pc) && !dwarf_hasattr(cu, DW_AT_ranges))
		return 1;
	return dwarf_haspc(cu, pc - bias) != 0;
}

/* The inline chain at pc, innermost first, ending with the physical
 * function: a malloc'ed array of *n frames (at least 1), or NULL.  Each
 * scope adds at most one frame, so the array is sized from the scopes and
 * no chain is ever cut short. */
static struct sym_frame *expand(struct sym_session *s, Dwfl_Module *mod, struct modinfo *mi,
				uint64_t pc, size_t *n_out)
{
	if (mi && mi->go) {
		struct sym_frame *go = expand_go(s, mi, pc, n_out);
		if (go)
			return go;
	}
	struct sym_frame base = { .lookup_pc = pc };
	if (mi) {
		base.module = mi->path;
		base.build_id = mi->build_id;
		base.module_offset = pc - mi->low;
	}
	const struct symbol *sym = mi ? find_symbol(mi, pc) : NULL;
	if (sym) {
		base.mangled = sym->name;
		char *d = sym_demangle(sym->name);
		base.function = d ? sym_intern(&s->strings, d) : sym->name;
		free(d);
		base.has_offset = 1;
		base.func_offset = pc - sym->addr;
	}
	Dwfl_Line *dl = mod ? dwfl_module_getsrc(mod, pc) : NULL;
	if (dl && !line_covers(mod, dl, pc))
		dl = NULL;
	if (dl) {
		int line;
		const char *f = dwfl_lineinfo(dl, NULL, &line, NULL, NULL, NULL);
		if (f) {
			base.file = source_path(s, dwfl_linecu(dl), f);
			base.line = line;
		}
	}
	Dwarf_Addr bias;
	Dwarf_Die *cu = mod ? dwfl_module_addrdie(mod, pc, &bias) : NULL;
	Dwarf_Die *scopes = NULL;
	int ns = cu ? dwarf_getscopes(cu, pc - bias, &scopes) : 0;
	struct sym_frame *frames = malloc(((size_t)(ns > 0 ? ns : 0) + 1) * sizeof *frames);
	if (!frames) {
		free(scopes);
		return NULL;
	}
	frames[0] = base;
	size_t n = 1;
	for (int i = 0; i < ns; i++) {
		int tag = dwarf_tag(&scopes[i]);
		if (tag == DW_TAG_subprogram) {
			/* The physical function: keep the ELF symbol's name when we
			 * have one, else take DWARF's. */
			if (!frames[n - 1].function)
				frames[n - 1].function = die_name(s, &scopes[i], &frames[n - 1].mangled);
			break;
		}
		if (tag != DW_TAG_inlined_subroutine)
			continue;
		/* Frame n-1 is really this inlined function; the next frame out
		 * is its caller, at the call site. */
		struct sym_frame outer = frames[n - 1];
		struct sym_frame *in = &frames[n - 1];
		in->function = die_name(s, &scopes[i], &in->mangled);
		in->inlined = 1;
		in->has_offset = 0;
		call_site(s, cu, &scopes[i], &outer.file, &outer.line);
		frames[n++] = outer;
	}
	free(scopes);
	if (!frames[n - 1].function && mod)
		name_by_fde(s, mod, mi, pc, &frames[n - 1]);
	*n_out = n;
	return frames;
}

/* ---- the per-address cache --------------------------------------------- */

static uint64_t hash64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	return x;
}

static int cache_grow(struct sym_addrcache *c)
{
	size_t cap = c->cap ? c->cap * 2 : 1024;
	struct sym_resolved *slots = calloc(cap, sizeof *slots);
	if (!slots)
		return -1;
	for (size_t i = 0; i < c->cap; i++) {
		if (!c->slots[i].frames)
			continue;
		size_t j = hash64(c->slots[i].key) & (cap - 1);
		while (slots[j].frames)
			j = (j + 1) & (cap - 1);
		slots[j] = c->slots[i];
	}
	free(c->slots);
	c->slots = slots;
	c->cap = cap;
	return 0;
}

const struct sym_resolved *sym_resolve(struct sym_session *s, uint64_t pc)
{
	struct sym_addrcache *c = &s->cache;
	if (c->n * 2 >= c->cap && cache_grow(c))
		return NULL;
	size_t j = hash64(pc) & (c->cap - 1);
	while (c->slots[j].frames && c->slots[j].key != pc)
		j = (j + 1) & (c->cap - 1);
	struct sym_resolved *e = &c->slots[j];
	if (e->frames && e->in_module)
		return e;
	/* Not in any module yet: maybe a library loaded since (dlopen).  An
	 * address already looked up is looked up again only if the modules
	 * were re-read meanwhile. */
	sym_refresh_for(s, pc);
	if (e->frames && e->gen == s->modules_gen)
		return e;
	Dwfl_Module *mod = dwfl_addrmodule(s->dwfl, pc);
	struct modinfo *mi = mod ? module_info(s, mod) : NULL;
	size_t n;
	struct sym_frame *frames = expand(s, mod, mi, pc, &n);
	if (!frames)
		return NULL;
	if (e->frames)
		free(e->frames);
	else
		c->n++;
	*e = (struct sym_resolved){ pc, frames, n, mod != NULL, s->modules_gen };
	return e;
}

void sym_cache_free(struct sym_session *s)
{
	for (size_t i = 0; i < s->cache.cap; i++)
		free(s->cache.slots[i].frames);
	free(s->cache.slots);
	memset(&s->cache, 0, sizeof s->cache);
	for (size_t i = 0; i < s->nmods; i++) {
		free(s->mods[i]->syms);
		sym_gotab_free(s->mods[i]->go);
		free(s->mods[i]);
	}
	free(s->mods);
	s->mods = NULL;
	s->nmods = s->capmods = 0;
}

const char *sym_function_at(struct sym_session *s, uint64_t pc)
{
	const struct sym_resolved *r = sym_resolve(s, pc);
	return r && r->n && r->frames[0].function ? r->frames[0].function : NULL;
}

uint64_t sym_function_start(struct sym_session *s, uint64_t pc)
{
	/* The outermost frame of the chain is the physical function. */
	const struct sym_resolved *r = sym_resolve(s, pc);
	const struct sym_frame *f = r && r->n ? &r->frames[r->n - 1] : NULL;
	return f && f->has_offset ? pc - f->func_offset : 0;
}
