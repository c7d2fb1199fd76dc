/* gopclntab.c — Go's own line table, read from a Go module's ELF file.
 *
 * Every Go binary, stripped or not, carries the table its runtime uses for
 * tracebacks (.gopclntab): for each function its entry, name, and pc-value
 * tables giving file and line at every pc, plus the inline tree that says
 * which inlined calls a pc belongs to.  elfutils finds no line in Go's
 * DWARF (and there is no DWARF at all under -ldflags=-s -w), and it loses
 * inlined Go frames; this file answers instead, as Go's own traceback does.
 *
 * Layouts, told apart by the header's magic (Go's src/runtime/symtab.go
 * and runtime2.go of each release, src/debug/gosym/pclntab.go):
 *   0xfffffffa  Go 1.16-1.17: absolute entry pcs; funcdata are pointers;
 *   0xfffffff0  Go 1.18-1.19: entries are 32-bit offsets from the text
 *               start; funcdata are 32-bit offsets from moduledata.gofunc;
 *   0xfffffff1  Go 1.20 and later: _func gains startLine, inline tree
 *               entries lose parent/file/line and gain startLine.
 * Only 64-bit little-endian tables are read (x86_64, like arch/regs.h).
 * Every offset comes from a file and is checked against the bytes it
 * points into: a corrupt table gives no answer, never a bad read.
 */
#include "internal.h"

#include <gelf.h>
#include <stdlib.h>
#include <string.h>

enum { GO116 = 116, GO118 = 118, GO120 = 120 };

#define FUNCDATA_INLTREE 3      /* runtime's _FUNCDATA_InlTree */
#define PCDATA_INLTREEINDEX 2   /* runtime's _PCDATA_InlTreeIndex */
#define MAX_INLINE_DEPTH 64     /* a guard against a cyclic inline tree */

/* A loadable segment: link-time addresses [vaddr, vaddr+filesz) are file
 * bytes at offset. */
struct segment {
	uint64_t vaddr, filesz, offset;
	int writable, exec;
};

struct sym_gotab {
	const unsigned char *file;      /* the whole ELF file (elf_rawfile) */
	size_t file_size;
	struct segment *segs;
	size_t nsegs;
	int version;                    /* GO116, GO118, GO120 */
	const unsigned char *tab;       /* the pclntab */
	size_t len;
	uint64_t vaddr;                 /* its link-time address */
	uint32_t nfunc;
	uint64_t text;                  /* 1.18+: what entry offsets add to */
	uint64_t gofunc;                /* 1.18+: what funcdata offsets add to; 0: unknown */
	size_t funcname, cutab, filetab, pctab, functab;   /* offsets into tab */
	size_t func_size;               /* sizeof(_func) */
};

/* ---- bounded reads --------------------------------------------------- */

static uint32_t u32(const unsigned char *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

static uint64_t u64(const unsigned char *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

/* n bytes of the file at link-time address vaddr, or NULL. */
static const unsigned char *at_vaddr(const struct sym_gotab *t, uint64_t vaddr, size_t n)
{
	for (size_t i = 0; i < t->nsegs; i++) {
		const struct segment *s = &t->segs[i];
		if (vaddr < s->vaddr || vaddr - s->vaddr > s->filesz || s->filesz - (vaddr - s->vaddr) < n)
			continue;
		uint64_t off = s->offset + (vaddr - s->vaddr);
		if (off > t->file_size || t->file_size - off < n)
			return NULL;
		return t->file + off;
	}
	return NULL;
}

/* n bytes of the table at offset off, or NULL. */
static const unsigned char *at_tab(const struct sym_gotab *t, uint64_t off, size_t n)
{
	return off <= t->len && t->len - off >= n ? t->tab + off : NULL;
}

/* The NUL-terminated string at offset off of a region of the table that
 * starts at base, or NULL if it does not end inside the table. */
static const char *tab_string(const struct sym_gotab *t, size_t base, uint64_t off)
{
	if (base > t->len || off >= t->len - base)
		return NULL;
	const unsigned char *s = t->tab + base + off;
	return memchr(s, 0, t->len - base - off) ? (const char *)s : NULL;
}

/* ---- finding the table and the module data --------------------------- */

static int load_segments(struct sym_gotab *t, Elf *elf)
{
	size_t nph;
	if (elf_getphdrnum(elf, &nph) != 0 || nph == 0)
		return -1;
	t->segs = calloc(nph, sizeof *t->segs);
	if (!t->segs)
		return -1;
	for (size_t i = 0; i < nph; i++) {
		GElf_Phdr ph;
		if (!gelf_getphdr(elf, (int)i, &ph) || ph.p_type != PT_LOAD)
			continue;
		t->segs[t->nsegs++] = (struct segment){ ph.p_vaddr, ph.p_filesz, ph.p_offset,
							(ph.p_flags & PF_W) != 0, (ph.p_flags & PF_X) != 0 };
	}
	return t->nsegs ? 0 : -1;
}

static Elf_Scn *section_named(Elf *elf, const char *name, GElf_Shdr *sh)
{
	size_t shstrndx;
	if (elf_getshdrstrndx(elf, &shstrndx) != 0)
		return NULL;
	for (Elf_Scn *scn = elf_nextscn(elf, NULL); scn; scn = elf_nextscn(elf, scn)) {
		const char *n;
		if (gelf_getshdr(scn, sh) && (n = elf_strptr(elf, shstrndx, sh->sh_name)) &&
		    strcmp(n, name) == 0)
			return scn;
	}
	return NULL;
}

/* The value of a symbol of .symtab (absent once stripped), or 0. */
static uint64_t symbol_value(Elf *elf, const char *name)
{
	GElf_Shdr sh;
	Elf_Scn *scn = section_named(elf, ".symtab", &sh);
	Elf_Data *d = scn ? elf_getdata(scn, NULL) : NULL;
	if (!d || sh.sh_entsize == 0)
		return 0;
	for (size_t i = 0; i < sh.sh_size / sh.sh_entsize; i++) {
		GElf_Sym sym;
		const char *n;
		if (gelf_getsym(d, (int)i, &sym) && (n = elf_strptr(elf, sh.sh_link, sym.st_name)) &&
		    strcmp(n, name) == 0)
			return sym.st_value;
	}
	return 0;
}

static int known_magic(uint32_t m)
{
	return m == 0xfffffffa || m == 0xfffffff0 || m == 0xfffffff1;
}

/* The header's fixed part: magic, two zero bytes, the pc quantum (1 on
 * x86_64) and the pointer size. */
static int header_ok(const unsigned char *p)
{
	return known_magic(u32(p)) && p[4] == 0 && p[5] == 0 && p[6] == 1 && p[7] == 8;
}

/* Where the table is: its section (.gopclntab, or .data.rel.ro.gopclntab
 * in a position-independent binary), else, in a Go binary (.go.buildinfo)
 * whose table an external linker merged into another section, the
 * runtime.pclntab and runtime.epclntab symbols, else, in a binary without
 * section headers, a search of the read-only segments for its header.
 * Any other ELF (every library of every process) costs one walk of its
 * section headers. */
static int locate_table(struct sym_gotab *t, Elf *elf)
{
	static const char *const names[] = { ".gopclntab", ".data.rel.ro.gopclntab" };
	for (size_t i = 0; i < 2; i++) {
		GElf_Shdr sh;
		if (section_named(elf, names[i], &sh) && sh.sh_type == SHT_PROGBITS &&
		    (t->tab = at_vaddr(t, sh.sh_addr, sh.sh_size))) {
			t->vaddr = sh.sh_addr;
			t->len = sh.sh_size;
			return header_ok(t->tab) ? 0 : -1;
		}
	}
	GElf_Shdr sh;
	if (section_named(elf, ".go.buildinfo", &sh)) {
		uint64_t start = symbol_value(elf, "runtime.pclntab");
		uint64_t end = symbol_value(elf, "runtime.epclntab");
		if (start && end > start && (t->tab = at_vaddr(t, start, end - start))) {
			t->vaddr = start;
			t->len = end - start;
			return header_ok(t->tab) ? 0 : -1;
		}
		return -1;
	}
	size_t nsec;
	if (elf_getshdrnum(elf, &nsec) != 0 || nsec != 0)
		return -1;
	for (size_t i = 0; i < t->nsegs; i++) {
		const struct segment *s = &t->segs[i];
		if (s->writable || s->exec)
			continue;
		for (uint64_t a = (s->vaddr + 7) & ~7ULL; a + 64 <= s->vaddr + s->filesz; a += 8) {
			const unsigned char *p = at_vaddr(t, a, 8);
			if (p && header_ok(p)) {
				t->tab = p;
				t->vaddr = a;
				t->len = s->vaddr + s->filesz - a;
				return 0;
			}
		}
	}
	return -1;
}

/* Reads the header's table offsets; 0 if they fit in the table. */
static int parse_header(struct sym_gotab *t)
{
	uint32_t magic = u32(t->tab);
	t->version = magic == 0xfffffffa ? GO116 : magic == 0xfffffff0 ? GO118 : GO120;
	/* 1.16: nfunc, nfiles, then five offsets; 1.18+: a text start after
	 * nfiles.  All are 8-byte words after the 8-byte fixed part. */
	int w = t->version == GO116 ? 2 : 3;
	const unsigned char *h = at_tab(t, 8, 8 * (size_t)(w + 5));
	if (!h)
		return -1;
	uint64_t nfunc = u64(h);
	if (t->version != GO116)
		t->text = u64(h + 16);
	uint64_t off[5];
	for (int i = 0; i < 5; i++) {
		off[i] = u64(h + 8 * (w + i));
		if (off[i] >= t->len)
			return -1;
	}
	t->funcname = off[0];
	t->cutab = off[1];
	t->filetab = off[2];
	t->pctab = off[3];
	t->functab = off[4];
	t->func_size = t->version == GO116 ? 44 : t->version == GO118 ? 40 : 44;
	size_t field = t->version == GO116 ? 8 : 4;
	if (nfunc == 0 || nfunc + 1 > (t->len - t->functab) / (2 * field))
		return -1;
	t->nfunc = (uint32_t)nfunc;
	return 0;
}

/* The module data (runtime.moduledata): the runtime's own record of this
 * module, whose first word points at the table and whose next holds the
 * function name table's address.  Go 1.26 gives it a section; older
 * binaries have the runtime.firstmoduledata symbol unless stripped; else
 * the writable segments are searched for those two words. */
static const unsigned char *find_moduledata(const struct sym_gotab *t, Elf *elf, size_t words)
{
	GElf_Shdr sh;
	const unsigned char *m;
	if (section_named(elf, ".go.module", &sh) && sh.sh_type == SHT_PROGBITS &&
	    (m = at_vaddr(t, sh.sh_addr, 8 * words)) && u64(m) == t->vaddr)
		return m;
	uint64_t a = symbol_value(elf, "runtime.firstmoduledata");
	if (a && (m = at_vaddr(t, a, 8 * words)) && u64(m) == t->vaddr)
		return m;
	for (size_t i = 0; i < t->nsegs; i++) {
		const struct segment *s = &t->segs[i];
		if (!s->writable)
			continue;
		for (a = (s->vaddr + 7) & ~7ULL; a + 8 * words <= s->vaddr + s->filesz; a += 8) {
			m = at_vaddr(t, a, 16);
			if (m && u64(m) == t->vaddr && u64(m + 8) == t->vaddr + t->funcname &&
			    (m = at_vaddr(t, a, 8 * words)))
				return m;
		}
	}
	return NULL;
}

/* From the module data, for 1.18+: the text start (when the header has
 * none: Go 1.26 writes 0 there) and gofunc, the base of funcdata offsets.
 * Its words (runtime/symtab.go): 0 pcHeader, 1-18 six slices, 19
 * findfunctab, 20 minpc, 21 maxpc, 22 text, ... then "types, etypes,
 * rodata, gofunc": gofunc is word 38 in Go 1.18-1.19 and 40 from 1.20
 * (covctrs, ecovctrs came in).  Each is checked: minpc is the first
 * function's entry, and rodata equals types two words before gofunc. */
static void read_moduledata(struct sym_gotab *t, Elf *elf)
{
	enum { WORDS = 44 };
	const unsigned char *m = find_moduledata(t, elf, WORDS);
	if (!m)
		return;
	const unsigned char *ft = at_tab(t, t->functab, 4);
	if (!t->text && ft && u64(m + 8 * 20) - u32(ft) == u64(m + 8 * 22))
		t->text = u64(m + 8 * 22);
	size_t g = t->version == GO118 ? 38 : 40;
	for (size_t i = g; i < WORDS - 1 && i <= g + 2; i++) {
		uint64_t types = u64(m + 8 * (i - 3)), etypes = u64(m + 8 * (i - 2));
		if (u64(m + 8 * (i - 1)) == types && etypes > types && u64(m + 8 * i)) {
			t->gofunc = u64(m + 8 * i);
			return;
		}
	}
}

/* Whether elf may be a Go binary: it has one of the sections the Go
 * linker writes, or no section headers at all (then the search decides).
 * Asked first, as it costs nothing more than the section headers: every
 * library of every process comes here. */
static int maybe_go(Elf *elf)
{
	static const char *const names[] = { ".gopclntab", ".data.rel.ro.gopclntab", ".go.buildinfo" };
	GElf_Shdr sh;
	size_t nsec;
	if (elf_getshdrnum(elf, &nsec) != 0)
		return 0;
	for (size_t i = 0; nsec && i < sizeof names / sizeof names[0]; i++)
		if (section_named(elf, names[i], &sh))
			return 1;
	return nsec == 0;
}

struct sym_gotab *sym_gotab_open(Elf *elf)
{
	size_t size;
	GElf_Ehdr eh;
	if (!elf || !gelf_getehdr(elf, &eh) || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh.e_ident[EI_DATA] != ELFDATA2LSB || !maybe_go(elf))
		return NULL;
	/* The file's bytes: mapped by libelf (a file it could not map is read
	 * whole, which only a Go binary gets this far to pay). */
	char *raw = elf_rawfile(elf, &size);
	if (!raw)
		return NULL;
	struct sym_gotab *t = calloc(1, sizeof *t);
	if (!t)
		return NULL;
	t->file = (const unsigned char *)raw;
	t->file_size = size;
	if (load_segments(t, elf) || locate_table(t, elf) || parse_header(t)) {
		sym_gotab_free(t);
		return NULL;
	}
	if (t->version != GO116) {
		read_moduledata(t, elf);
		if (!t->text)
			t->text = symbol_value(elf, "runtime.text");
		if (!t->gofunc)
			t->gofunc = symbol_value(elf, "go:func.*");
		if (!t->gofunc)
			t->gofunc = symbol_value(elf, "go.func.*");
		if (!t->text) {         /* entries cannot be placed */
			sym_gotab_free(t);
			return NULL;
		}
	}
	return t;
}

void sym_gotab_free(struct sym_gotab *t)
{
	if (!t)
		return;
	free(t->segs);
	free(t);
}

const char *sym_gotab_version(const struct sym_gotab *t)
{
	return t->version == GO116 ? "1.16" : t->version == GO118 ? "1.18" : "1.20";
}

/* ---- functions and their pc-value tables ----------------------------- */

/* The i-th entry pc of the function table (i == nfunc: the end). */
static int functab_pc(const struct sym_gotab *t, uint32_t i, uint64_t *pc, uint64_t *funcoff)
{
	size_t field = t->version == GO116 ? 8 : 4;
	const unsigned char *p = at_tab(t, t->functab + 2 * field * (uint64_t)i, 2 * field);
	if (!p)
		return -1;
	*pc = field == 8 ? u64(p) : t->text + u32(p);
	*funcoff = field == 8 ? u64(p + 8) : u32(p + 4);
	return 0;
}

struct gofunc {
	const unsigned char *f;         /* the _func record */
	uint64_t entry, end;
	uint32_t npcdata;
	uint8_t nfuncdata;
};

/* The function holding link-time pc, by binary search. */
static int find_func(const struct sym_gotab *t, uint64_t pc, struct gofunc *out)
{
	uint64_t first, last, off;
	if (functab_pc(t, 0, &first, &off) || functab_pc(t, t->nfunc, &last, &off) ||
	    pc < first || pc >= last)
		return -1;
	uint32_t lo = 0, hi = t->nfunc;
	while (hi - lo > 1) {               /* entry(lo) <= pc < entry(hi) */
		uint32_t mid = lo + (hi - lo) / 2;
		uint64_t e;
		if (functab_pc(t, mid, &e, &off))
			return -1;
		if (e <= pc)
			lo = mid;
		else
			hi = mid;
	}
	uint64_t funcoff;
	if (functab_pc(t, lo, &out->entry, &funcoff) || functab_pc(t, lo + 1, &out->end, &off))
		return -1;
	out->f = at_tab(t, t->functab + funcoff, t->func_size);
	if (!out->f)
		return -1;
	/* The record repeats the entry: a check that this is one. */
	uint64_t e = t->version == GO116 ? u64(out->f) : t->text + u32(out->f);
	if (e != out->entry)
		return -1;
	size_t np = t->version == GO116 ? 32 : 28;
	out->npcdata = u32(out->f + np);
	out->nfuncdata = out->f[t->func_size - 1];
	if (out->npcdata > 1024)
		return -1;
	return 0;
}

/* A 32-bit field of _func: the fields after the entry are 4 bytes each,
 * starting at 8 (1.16) or 4 (1.18+).  n counts from nameoff = 1, as
 * debug/gosym's field() does: nameoff 1, pcsp 4, pcfile 5, pcln 6,
 * cuOffset 8. */
static uint32_t func_field(const struct sym_gotab *t, const struct gofunc *fn, int n)
{
	return u32(fn->f + (t->version == GO116 ? 8 : 4) + 4 * (n - 1));
}

static int varint(const unsigned char **p, const unsigned char *end, uint32_t *v)
{
	uint32_t r = 0;
	for (int shift = 0; shift < 35; shift += 7) {
		if (*p >= end)
			return -1;
		unsigned char b = *(*p)++;
		r |= (uint32_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*v = r;
			return 0;
		}
	}
	return -1;
}

/* The value a pc-value table (offset off into pctab) gives at pc, or -1.
 * Each step is a zig-zag value delta then a pc delta (in quanta of 1
 * byte on x86_64); a zero value delta after the first ends the table. */
static int32_t pcvalue(const struct sym_gotab *t, const struct gofunc *fn, uint32_t off, uint64_t pc)
{
	if (off == 0 || t->pctab + (uint64_t)off >= t->len)
		return -1;
	const unsigned char *p = t->tab + t->pctab + off, *end = t->tab + t->len;
	uint64_t at = fn->entry;
	int32_t val = -1;
	for (int first = 1;; first = 0) {
		uint32_t dv, dpc;
		if (varint(&p, end, &dv) || (dv == 0 && !first) || varint(&p, end, &dpc))
			return -1;
		/* unsigned: a corrupt table may overflow, which is no UB so */
		val = (int32_t)((uint32_t)val + ((dv >> 1) ^ -(dv & 1)));
		at += dpc;
		if (pc < at)
			return val;
		if (at >= fn->end)
			return -1;
	}
}

static const char *file_at(const struct sym_gotab *t, const struct gofunc *fn, uint64_t pc, int *line)
{
	int32_t fileno = pcvalue(t, fn, func_field(t, fn, 5), pc);
	int32_t ln = pcvalue(t, fn, func_field(t, fn, 6), pc);
	if (fileno < 0 || ln < 0)
		return NULL;
	const unsigned char *cu = at_tab(t, t->cutab + 4 * ((uint64_t)func_field(t, fn, 8) + (uint32_t)fileno), 4);
	if (!cu || u32(cu) == UINT32_MAX)
		return NULL;
	*line = ln;
	return tab_string(t, t->filetab, u32(cu));
}

/* The link-time address of the inline tree of fn, or 0. */
static uint64_t inline_tree(const struct sym_gotab *t, const struct gofunc *fn)
{
	if (fn->nfuncdata <= FUNCDATA_INLTREE)
		return 0;
	size_t off = (size_t)(fn->f - t->tab) + t->func_size + 4 * (size_t)fn->npcdata;
	if (t->version == GO116) {
		/* Pointers, 8-aligned in memory (the record is at vaddr + off). */
		if ((t->vaddr + off) & 4)
			off += 4;
		const unsigned char *p = at_tab(t, off + 8 * FUNCDATA_INLTREE, 8);
		return p ? u64(p) : 0;
	}
	const unsigned char *p = at_tab(t, off + 4 * FUNCDATA_INLTREE, 4);
	if (!p || u32(p) == UINT32_MAX || !t->gofunc)
		return 0;
	return t->gofunc + u32(p);
}

/* The inline tree index at pc (-1: in the function's own body). */
static int32_t inline_index(const struct sym_gotab *t, const struct gofunc *fn, uint64_t pc)
{
	const unsigned char *p = fn->npcdata > PCDATA_INLTREEINDEX
		? at_tab(t, (size_t)(fn->f - t->tab) + t->func_size + 4 * PCDATA_INLTREEINDEX, 4) : NULL;
	return p ? pcvalue(t, fn, u32(p), pc) : -1;
}

int sym_gotab_lookup(const struct sym_gotab *t, uint64_t pc, struct sym_goframe *out, size_t max)
{
	struct gofunc fn;
	if (!max || find_func(t, pc, &fn))
		return 0;
	const char *phys = tab_string(t, t->funcname, func_field(t, &fn, 1));
	if (!phys || !*phys)
		return 0;
	uint64_t tree = inline_tree(t, &fn);
	/* 1.16-1.19: 20-byte entries, name at 12, parentPc at 16; 1.20+:
	 * 16-byte entries, name at 4, parentPc at 8. */
	size_t esize = t->version == GO120 ? 16 : 20;
	size_t name_at = t->version == GO120 ? 4 : 12, parent_at = t->version == GO120 ? 8 : 16;
	size_t n = 0;
	int32_t ix = tree ? inline_index(t, &fn, pc) : -1;
	for (;;) {
		struct sym_goframe *f = &out[n++];
		f->pc = pc;
		f->file = file_at(t, &fn, pc, &f->line);
		if (!f->file)
			f->line = 0;
		f->entry = fn.entry;
		const unsigned char *e = ix >= 0 ? at_vaddr(t, tree + esize * (uint64_t)ix, esize) : NULL;
		const char *name = e ? tab_string(t, t->funcname, u32(e + name_at)) : NULL;
		int32_t parent = e ? (int32_t)u32(e + parent_at) : -1;
		if (!name || parent < 0 || fn.entry + (uint64_t)parent >= fn.end || n == max ||
		    n == MAX_INLINE_DEPTH) {
			f->function = phys;     /* the physical function: the chain ends */
			f->inlined = 0;
			return (int)n;
		}
		f->function = name;
		f->inlined = 1;
		pc = fn.entry + (uint64_t)parent;
		ix = inline_index(t, &fn, pc);
	}
}

/* ---- what a binary without symbols still tells of its runtime -------- */

const unsigned char *sym_gotab_bytes(const struct sym_gotab *t, uint64_t vaddr, size_t n)
{
	return at_vaddr(t, vaddr, n);
}

uint32_t sym_gotab_nfunc(const struct sym_gotab *t)
{
	return t->nfunc;
}

/* The funcID byte is the fourth last of _func in every layout (funcID,
 * flag, a pad byte, nfuncdata). */
int sym_gotab_func_i(const struct sym_gotab *t, uint32_t i, uint64_t *entry, uint64_t *end,
		     const char **name, int *funcid)
{
	uint64_t funcoff, off;
	const unsigned char *f;
	if (i >= t->nfunc || functab_pc(t, i, entry, &funcoff) || functab_pc(t, i + 1, end, &off) ||
	    *end <= *entry || !(f = at_tab(t, t->functab + funcoff, t->func_size)))
		return -1;
	*name = tab_string(t, t->funcname, u32(f + (t->version == GO116 ? 8 : 4)));
	*funcid = f[t->func_size - 4];
	return *name ? 0 : -1;
}

/* .go.buildinfo (src/debug/buildinfo/buildinfo.go): a 32-byte header, 14
 * bytes of magic, the pointer size, flags; with flag 2 (Go 1.18 on) the
 * version follows as a varint-prefixed string, else (up to Go 1.17) the
 * header's words 2 and 3 point at runtime.buildVersion (a string) and
 * runtime.modinfo. */
/* "go1.N" or "go1.N.M", exactly. */
static int version_text(const unsigned char *s, uint64_t n)
{
	int dots = 0, digits = 0;
	if (n < 5 || memcmp(s, "go1.", 4) != 0)
		return 0;
	for (uint64_t i = 4; i < n; i++) {
		if (s[i] >= '0' && s[i] <= '9')
			digits++;
		else if (s[i] == '.' && digits && !dots)
			dots = 1, digits = 0;
		else
			return 0;
	}
	return digits > 0;
}

/* Without .go.buildinfo (esbuild's Go 1.26 build has none): the string
 * headers of the writable data that point at a version's text, as
 * runtime.buildVersion does.  The longest wins, if every other is the
 * start of it ("go1.26" and "go1.26.5"); else none. */
static int version_from_data(const struct sym_gotab *t, char *buf, size_t len)
{
	const unsigned char *best = NULL;
	uint64_t nbest = 0;
	for (size_t i = 0; i < t->nsegs; i++) {
		const struct segment *sg = &t->segs[i];
		if (!sg->writable)
			continue;
		for (uint64_t a = (sg->vaddr + 7) & ~7ULL; a + 16 <= sg->vaddr + sg->filesz; a += 8) {
			const unsigned char *p = at_vaddr(t, a, 16), *s;
			uint64_t n = p ? u64(p + 8) : 0;
			if (n < 5 || n > 16 || !(s = at_vaddr(t, u64(p), n)) || !version_text(s, n))
				continue;
			const unsigned char *lo = n < nbest ? s : best, *hi = n < nbest ? best : s;
			if (best && memcmp(lo, hi, n < nbest ? n : nbest) != 0)
				return -1;
			if (n > nbest)
				best = s, nbest = n;
		}
	}
	if (!best || nbest >= len)
		return -1;
	memcpy(buf, best, nbest);
	buf[nbest] = 0;
	return 0;
}

int sym_gotab_build_version(const struct sym_gotab *t, Elf *elf, char *buf, size_t len)
{
	static const char magic[] = "\xff Go buildinf:";
	GElf_Shdr sh;
	const unsigned char *h, *s = NULL;
	uint64_t n = 0;
	buf[0] = 0;
	if (!section_named(elf, ".go.buildinfo", &sh))
		return version_from_data(t, buf, len);
	if (!(h = at_vaddr(t, sh.sh_addr, 32)) || memcmp(h, magic, 14) != 0 || h[14] != 8 || (h[15] & 1))
		return -1;
	if (h[15] & 2) {
		const unsigned char *start = at_vaddr(t, sh.sh_addr + 32, 10), *p = start;
		uint32_t v;
		if (!start || varint(&p, start + 10, &v))
			return -1;
		n = v;
		s = at_vaddr(t, sh.sh_addr + 32 + (uint64_t)(p - start), n);
	} else {
		const unsigned char *str = at_vaddr(t, u64(h + 16), 16);
		if (str) {
			n = u64(str + 8);
			s = n < 256 ? at_vaddr(t, u64(str), n) : NULL;
		}
	}
	if (!s || n == 0 || n >= len)
		return -1;
	memcpy(buf, s, n);
	buf[n] = 0;
	return 0;
}

/* The Go string {ptr, len} at p equals want. */
static int string_is(const struct sym_gotab *t, const unsigned char *p, const char *want)
{
	size_t n = strlen(want);
	const unsigned char *s = n ? at_vaddr(t, u64(p), n) : NULL;
	return u64(p + 8) == n && (n == 0 || (s && memcmp(s, want, n) == 0));
}

/* A Go string that reads as text: what a table of names holds. */
static int plausible_string(const struct sym_gotab *t, const unsigned char *p)
{
	uint64_t n = u64(p + 8);
	const unsigned char *s = n && n <= 128 ? at_vaddr(t, u64(p), n) : NULL;
	for (uint64_t i = 0; s && i < n; i++)
		if (s[i] < 0x20 || s[i] > 0x7e)
			return 0;
	return s != NULL;
}

uint64_t sym_gotab_find_strings(const struct sym_gotab *t, const char *const *first, size_t nfirst,
				size_t *count)
{
	enum { MAX_STRINGS = 256 };
	for (size_t i = 0; i < t->nsegs; i++) {
		const struct segment *s = &t->segs[i];
		if (!s->writable)
			continue;
		for (uint64_t a = (s->vaddr + 7) & ~7ULL; a + 16 * nfirst <= s->vaddr + s->filesz; a += 8) {
			const unsigned char *p = at_vaddr(t, a, 16 * nfirst);
			size_t k = 0;
			while (p && k < nfirst && string_is(t, p + 16 * k, first[k]))
				k++;
			if (k < nfirst)
				continue;
			while (k < MAX_STRINGS && (p = at_vaddr(t, a + 16 * k, 16)) && plausible_string(t, p))
				k++;
			*count = k;
			return a;
		}
	}
	return 0;
}

int sym_gotab_sp_delta(const struct sym_gotab *t, uint64_t pc, int32_t *delta)
{
	struct gofunc fn;
	if (find_func(t, pc, &fn))
		return -1;
	*delta = pcvalue(t, &fn, func_field(t, &fn, 4), pc);
	return *delta < 0 ? -1 : 0;
}
