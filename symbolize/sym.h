/* sym.h — unwinding stack snapshots and turning addresses into frames.
 *
 * One sym_session per target process holds one Dwfl, attached once with
 * thread callbacks that serve whichever snapshot is being unwound (registers
 * and a copy of the stack taken earlier by attach/).  Nothing here stops or
 * traces the target: it only reads /proc/PID/maps, the mapped files (through
 * /proc/PID/root or /proc/PID/map_files) and, for the vDSO, /proc/PID/mem.
 *
 * Strings in returned frames belong to the session and stay valid until
 * sym_close().
 */
#ifndef PPROFC_SYMBOLIZE_SYM_H
#define PPROFC_SYMBOLIZE_SYM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../arch/regs.h"

struct sym_session;

struct sym_frame {
	uint64_t pc;            /* leaf: the exact pc; callers: the return address */
	uint64_t lookup_pc;     /* what was looked up: pc, or pc - 1 for callers */
	const char *function;   /* demangled name, or NULL when unknown */
	const char *mangled;    /* the raw symbol or linkage name, or NULL */
	const char *file;       /* source file, or NULL */
	int line;               /* 0 when unknown */
	int inlined;            /* inlined into the frame that follows it */
	int has_offset;
	uint64_t func_offset;   /* pc - start of the function (physical frames) */
	const char *module;     /* path of the mapped file, or NULL */
	uint64_t module_offset; /* pc relative to the module's load address */
	const char *build_id;   /* lowercase hex, or NULL */
	/* Go code: the pc this frame's file:line was read at, as Go's
	 * runtime.Frame.PC gives it: lookup_pc, but for the caller of an
	 * inlined call, the pc Go's inline tree gives that call.  0 when not
	 * known (code not Go's): lookup_pc. */
	uint64_t frame_pc;
};

/* The deepest stack a walk follows; deeper ones end with a reason. */
#define SYM_MAX_DEPTH 2048

struct sym_stack {
	struct sym_frame *frames;   /* innermost first, inline frames expanded */
	size_t n;
	int complete;               /* unwinding reached the thread's root */
	int cut_short;              /* !complete because the stack copy ended */
	char stop_reason[256];      /* why not, when !complete */
};

/* The snapshot of one thread, as an engine took it (a ptrace stop, a
 * perf_event sample, or a blocked thread read without stopping it). */
struct sym_snapshot {
	pid_t tid;
	/* DWARF-numbered (arch/regs.h).  Read without stopping the thread,
	 * only SP and PC are known: a frame whose CFA needs BP is then unwound
	 * with candidate BP values found on the stack, and a candidate is
	 * accepted only if the unwinding it allows reaches the thread's root. */
	const struct arch_regs *regs;
	uint64_t stack_addr;
	const unsigned char *stack;
	size_t stack_len;
	/* The copy ended at its size limit, not at the top of the stack: a
	 * walk that runs out of copied stack says so instead of ending
	 * quietly (perf_event copies at most 65528 bytes). */
	int stack_cut;
	/* Reads the target's code, to check that a guessed return address
	 * follows a call instruction: for partial snapshots, and for a leaf
	 * function without CFI (maybe without a frame pointer).  May be NULL.
	 * Code, not data: it is the same now as when the snapshot was taken. */
	ssize_t (*read_code)(pid_t tid, uint64_t addr, void *buf, size_t len);
};

/* pid: the id whose /proc files give the process's memory map and files:
 * the process id, or, when its main thread has exited (pthread_exit) and
 * the others run on, one of those (the caller finds it: attach_mm_pid).
 * Should that thread exit too, the modules are read again through the
 * thread of the snapshot last unwound. */
struct sym_session *sym_open(pid_t pid, char *err, size_t errlen);
int sym_unwind(struct sym_session *s, const struct sym_snapshot *snap, struct sym_stack *out);
void sym_stack_free(struct sym_stack *st);
void sym_close(struct sym_session *s);
/* How many times the modules were read again since sym_open (a pc fell in
 * none: a library loaded since); rate-limited.  A caller keeping its own
 * copy of the maps reads them again when this changes. */
uint64_t sym_modules_generation(const struct sym_session *s);
/* If pc is in no module, reads the modules again now, whenever they were
 * last read (sym_unwind re-reads them at most every 100 ms): for a rare
 * event that must not be lost to a library loaded a moment ago (a thread
 * creation right after `run` started the command).  1 if pc is in a
 * module now and was not before. */
int sym_refresh_now(struct sym_session *s, uint64_t pc);

/* A memo of unwinds (memo.c), owned by the caller, for snapshots taken
 * at a few fixed pcs (the heap sampler's; a dump's threads blocked in the
 * same calls, read without stopping them): a snapshot whose unwind is
 * provably the same as one already done gets that one's frames without
 * unwinding.  Exact: sym_unwind_memo gives what sym_unwind would.  Its
 * frames' strings are the session's, so it is for one session only. */
struct sym_memo;
struct sym_memo_stats {
	uint64_t hits;          /* frames from the memo */
	uint64_t misses;        /* unwound with sym_unwind */
	uint64_t inserted;      /* ...whose unwind went into the memo */
	uint64_t clears;        /* emptied: the modules were read again */
};
struct sym_memo *sym_memo_new(void);
int sym_unwind_memo(struct sym_session *s, struct sym_memo *m, const struct sym_snapshot *snap,
		    struct sym_stack *out);
/* For a caller that derives something costly from a memo's frames (the
 * heap profile's location ids) and keeps it: the key of the memo's answer
 * for snap (counted as a hit), or 0 when the memo has none (then
 * sym_unwind_memo unwinds).  A key names the same frames until the memo
 * is emptied (the modules read again), and never another answer after:
 * keys are not reused.  sym_memo_frames gives a key's frames as
 * sym_unwind_memo would, -1 once the key is stale. */
uint64_t sym_memo_key(struct sym_session *s, struct sym_memo *m, const struct sym_snapshot *snap);
int sym_memo_frames(const struct sym_memo *m, uint64_t key, struct sym_stack *out);
struct sym_memo_stats sym_memo_stats(const struct sym_memo *m);
void sym_memo_free(struct sym_memo *m);

/* Loads symbols, DWARF and CFI of the main executable and libc now, so the
 * first samples of a profile are not slowed by it (~50 ms with libc6-dbg). */
void sym_prepare(struct sym_session *s);

/* The build ID (lowercase hex) of the module mapped at addr, or NULL. */
const char *sym_build_id(struct sym_session *s, uint64_t addr);

/* The name of the function at pc (the innermost of an inline chain, as
 * Go's runtime.FuncForPC names it), or NULL when unknown: for serve's
 * /debug/pprof/symbol. */
const char *sym_function_at(struct sym_session *s, uint64_t pc);
/* The start address of the function that holds pc (the one an inline
 * chain at pc is inlined into), or 0 when unknown: serve's debug=1 texts
 * print Go's "function+0xOFFSET". */
uint64_t sym_function_start(struct sym_session *s, uint64_t pc);

/* Demangles C++ and Rust names; returns a malloc'ed string or NULL when
 * name is not mangled. */
char *sym_demangle(const char *name);

#endif
