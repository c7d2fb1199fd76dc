/* internal.h — shared by the files of symbolize/ only. */
#ifndef PPROFC_SYMBOLIZE_INTERNAL_H
#define PPROFC_SYMBOLIZE_INTERNAL_H

#include <elfutils/libdwfl.h>
#include <libelf.h>

#include "sym.h"

/* Interned strings: one copy of each, freed with the table. */
struct sym_strings {
	char **slots;
	size_t cap, n;
};
const char *sym_intern(struct sym_strings *t, const char *s);
void sym_strings_free(struct sym_strings *t);

/* The frames one looked-up address expands to (its inline chain). */
struct sym_resolved {
	uint64_t key;
	struct sym_frame *frames;
	size_t n;
	int in_module;              /* found in a module: final */
	uint64_t gen;               /* else: s->modules_gen when looked up */
};

struct sym_addrcache {
	struct sym_resolved *slots;
	size_t cap, n;
};

struct modinfo;

struct sym_session {
	pid_t pid;                  /* the id its /proc files are read by (sym.h) */
	Dwfl *dwfl;
	Dwfl_Callbacks callbacks;   /* libdwfl keeps a pointer to it */
	char *debuginfo_path;
	struct sym_strings strings;
	struct sym_addrcache cache;
	struct modinfo **mods;       /* every module's data, to free at the end */
	size_t nmods, capmods;
	/* Modules are re-read when a pc falls in none (dlopen after the
	 * session opened), no sooner than next_refresh_ns (monotonic). */
	uint64_t modules_gen;       /* count of re-reads */
	uint64_t next_refresh_ns;
	/* Whether the CFI at a pc ends the stack (session.c), asked at every
	 * unwind: a direct-mapped cache by pc, entries 0 when empty, else
	 * pc << 1 | answer (code pcs are far below 2^63). */
	uint64_t outermost[512];
	/* the snapshot being unwound, served by the thread callbacks */
	const struct sym_snapshot *cur;
	uint64_t rbp_guess;             /* partial snapshots: rbp to try, 0: none */
	pid_t last_tid;                 /* the thread last unwound (alive when its
					 * snapshot was taken), 0: none yet */
	void *walks;                    /* session.c's two walks, reused (or NULL) */
	/* The process's executable mappings outside every module (JIT code,
	 * anonymous code), as [lo, hi) pairs: session.c's check of suspect
	 * return addresses.  Re-read on a miss, no sooner than
	 * next_exec_read_ns, as the modules are. */
	uint64_t *exec;
	size_t nexec, capexec;
	int exec_read;                  /* read at least once */
	uint64_t next_exec_read_ns;
};

/* What sym_unwind did, for the memo (memo.c).  plain: out is exactly the
 * first libdwfl walk of a snapshot with every register known, complete
 * (ending where the CFI says the stack ends, or at a Go root), with no
 * other path taken (newborn thread, module re-read and walk again, cut at
 * a Go stack switch, rbp guessed, frameless leaf), and pc is no newborn's
 * site.  pcs (SYM_MAX_DEPTH room, the caller's) then holds the walk's n
 * pcs, innermost first. */
struct sym_unwind_trace {
	int plain;
	uint64_t *pcs;
	size_t n;
};
int sym_unwind_traced(struct sym_session *s, const struct sym_snapshot *snap,
		      struct sym_stack *out, struct sym_unwind_trace *t);
/* The CFI row libdwfl unwinds pc with (.eh_frame, else .debug_frame), to
 * free; NULL if none. */
Dwarf_Frame *sym_cfi_at(struct sym_session *s, uint64_t pc);

/* Go's own line table of a Go module (gopclntab.c): names, file:line and
 * inlined frames for Go code, where DWARF has no lines or is stripped. */
struct sym_gotab;
struct sym_goframe {
	const char *function;       /* as Go names it, raw (".abi0" kept) */
	const char *file;           /* NULL when unknown */
	int line;
	int inlined;                /* inlined into the frame that follows it */
	uint64_t entry;             /* the physical function's link-time entry */
	uint64_t pc;                /* the link-time pc file and line were read
				     * at: pc, then where the inline tree puts
				     * each inlined call */
};
/* The table of elf, or NULL if it has none (not Go, or a layout not
 * known).  It points into elf's data: free it before elf ends. */
struct sym_gotab *sym_gotab_open(Elf *elf);
/* The frames at link-time pc, innermost first, physical function last:
 * how many (at most max) were written, 0 if no Go function holds pc.
 * Strings point into the ELF file. */
int sym_gotab_lookup(const struct sym_gotab *t, uint64_t pc, struct sym_goframe *out, size_t max);
/* "1.16", "1.18" or "1.20": the first Go release of the table's layout. */
const char *sym_gotab_version(const struct sym_gotab *t);
void sym_gotab_free(struct sym_gotab *t);
/* For a binary without symbols (golayout.c): the file's bytes at
 * link-time vaddr, or NULL; the number of functions and the i-th's
 * link-time [entry, end), name and the funcID Go's linker gave it (-1 if
 * unreadable); the Go version ("go1.19.8") from .go.buildinfo, else
 * from the string runtime.buildVersion points at;
 * the link-time address of an initialized [N]string array in the writable
 * data whose first nfirst strings are first (0: none), with count the
 * entries that read as strings from there (at most 256: the array and
 * maybe a neighbour's). */
const unsigned char *sym_gotab_bytes(const struct sym_gotab *t, uint64_t vaddr, size_t n);
uint32_t sym_gotab_nfunc(const struct sym_gotab *t);
int sym_gotab_func_i(const struct sym_gotab *t, uint32_t i, uint64_t *entry, uint64_t *end,
		     const char **name, int *funcid);
int sym_gotab_build_version(const struct sym_gotab *t, Elf *elf, char *buf, size_t len);
/* How far below its entry sp a Go function's sp is at link-time pc (its
 * pcsp table, as Go's own traceback uses it); -1 if unknown. */
int sym_gotab_sp_delta(const struct sym_gotab *t, uint64_t pc, int32_t *delta);
uint64_t sym_gotab_find_strings(const struct sym_gotab *t, const char *const *first, size_t nfirst,
				size_t *count);

/* The Go runtime's layouts of a module (goruntime.h): from its DWARF
 * (goruntime.c), or, without DWARF, from the table and the binary's own
 * code and data (golayout.c; t: its line table, bias: load bias).  0, or
 * -1 when out of memory; L->kind says what was found. */
struct sym_go_layout;
int sym_go_layout_dwarf(Dwfl_Module *mod, struct sym_go_layout *L);
int sym_go_layout_table(const struct sym_gotab *t, Elf *elf, uint64_t bias, struct sym_go_layout *L);
/* A module's line table (resolve.c), or NULL. */
const struct sym_gotab *sym_module_gotab(struct sym_session *s, Dwfl_Module *mod);

/* Resolves one address into its inline chain (cached). */
const struct sym_resolved *sym_resolve(struct sym_session *s, uint64_t lookup_pc);
void sym_cache_free(struct sym_session *s);
/* Loads a module's sorted symbol table now rather than at first use. */
void sym_module_warm(struct sym_session *s, Dwfl_Module *mod);
int sym_report_modules(struct sym_session *s);
/* Re-reads the modules if no module holds pc and the rate limit allows;
 * returns 1 if one holds it afterwards thanks to the re-read. */
int sym_refresh_for(struct sym_session *s, uint64_t pc);
/* libdwfl's find_debuginfo, with inflated copies of compressed separate
 * debug files cached on disk by build ID (debugcache.c). */
int sym_find_debuginfo(Dwfl_Module *mod, void **userdata, const char *modname,
		       Dwarf_Addr base, const char *file_name, const char *debuglink_file,
		       GElf_Word debuglink_crc, char **debuginfo_file_name);

#endif
