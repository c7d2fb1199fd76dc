/* collect.h — collecting a profile of one target: the interface the CLI
 * (and, later, the HTTP server) uses.
 *
 * A collection is a session object: one target (a running PID, or a
 * command it starts for `run`), one profile kind, one engine.  It chooses
 * the engine (auto: perf_event where the kernel allows it, else ptrace,
 * keeping the reason), drives it, unwinds each raw sample with
 * symbolize/, does the kind's accounting (CPU weights; wall states; block
 * delays; mutex delays charged to holders) and fills a pprof profile.
 * Everything lives in the session: several can run in one process.
 *
 *     s = collect_open(pid, &opts, &err)      or collect_spawn(argv, ...)
 *     collect_run(s)                          until seconds, cancel or exit
 *     collect_profile(s), collect_summary(s)  the profile, the figures
 *     collect_close(s)
 *
 * See docs/ARCHITECTURE.md, "Data flow".
 */
#ifndef PPROFC_COLLECT_H
#define PPROFC_COLLECT_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "../attach/engine.h"
#include "../attach/proc.h"
#include "../attach/wait.h"
#include "../pprofout/dump.h"
#include "../pprofout/profile.h"
#include "../symbolize/sym.h"

/* heap and allocs: the same data (sampled allocations, live or not, of a
 * command started by `run`); allocs sets default_sample_type alloc_space.
 * trace: a timeline of every thread (running, waiting and why), written
 * as trace-event JSON by collect_trace_write, not as a profile.
 * threadcreate: the threads alive at the start under their start routine,
 * and each thread created in the window under its creator's stack at the
 * clone (threadcreate.c). */
enum collect_kind { COLLECT_CPU, COLLECT_WALL, COLLECT_BLOCK, COLLECT_MUTEX, COLLECT_HEAP,
		    COLLECT_ALLOCS, COLLECT_TRACE, COLLECT_THREADCREATE };
enum collect_engine { COLLECT_ENGINE_AUTO, COLLECT_ENGINE_PERF, COLLECT_ENGINE_PTRACE };

struct collect_session;

struct collect_opts {
	enum collect_kind kind;
	enum collect_engine engine;
	int hz;
	double seconds;                 /* 0: until the target exits */
	size_t stack_size;
	const pid_t *tids;              /* only these threads (NULL: all) */
	size_t n_tids;
	int force_stop;                 /* ptrace, for comparison only */
	volatile sig_atomic_t *cancel;  /* set asynchronously: stop early */
	/* About once a second, for a progress line. */
	void (*on_progress)(void *arg, double elapsed_s, uint64_t samples);
	void *arg;
	/* heap, allocs: */
	uint64_t heap_rate;             /* mean bytes between samples; 1: all */
	int children;                   /* run: follow the processes the command
					 * starts (heap, allocs: by the sampler
					 * they inherit; the others: group.c) */
	double interval;                /* > 0: a snapshot every interval s */
	/* heap, allocs of run; block, mutex, wall: set asynchronously for a
	 * snapshot now (block, mutex, wall: looked at every 20 ms or less). */
	volatile sig_atomic_t *snapshot;
	/* Called during collect_run (on its thread) for each snapshot;
	 * collect_profile(s) holds it until the next one and may be read
	 * only meanwhile: collect_run changes it after. */
	void (*on_snapshot)(void *arg, struct collect_session *s);
	/* heap, allocs of attach: probe hits per second above which the
	 * probes are closed early (0: no cap). */
	uint64_t max_hit_rate;
};

/* heap, allocs: what the ring brought. */
struct collect_heap_summary {
	uint64_t samples;               /* sampled allocations read */
	uint64_t frees;                 /* ...of which freed since */
	uint64_t stacks;                /* distinct (stack, size) */
	uint64_t dropped_full;          /* by the sampler: the ring was full */
	uint64_t no_stack;              /* recorded without a stack copy */
	uint64_t no_maps;               /* read when the process's maps could not be
					 * (it had gone): no stack */
	uint64_t untracked_frees;       /* sampled blocks whose free cannot be seen */
	uint64_t unmatched_frees;       /* frees of blocks whose allocation was not read */
	uint64_t bad_records;           /* malformed: reading stopped there */
	uint64_t memo_hits;             /* records unwound from the memo */
	uint64_t memo_misses;           /* ...unwound with libdwfl */
	uint64_t memo_inserted;         /* ...of which went into the memo */
	/* run --children: */
	uint64_t processes;             /* followed (each got a ring) */
	uint64_t processes_exited;      /* ...of which exited before the end */
	uint64_t asks_refused;          /* asks not answered (not ours, malformed, too late) */
	/* attach (uprobes): */
	char allocator[4096];           /* the module probed */
	uint64_t probes;                /* probes placed on it */
	int probes_inherited;           /* new threads carry them from birth */
	uint64_t hits;                  /* probe hits over the window */
	uint64_t first_second_hits;     /* hits per second in the first second */
	uint64_t capped_rate;           /* > 0: the probes were closed early at
					 * this many hits per second */
	uint64_t unpaired;              /* calls whose entry or return was not
					 * seen (lost records, or in flight at
					 * the window's start) */
};

/* threadcreate: how the count is made up. */
struct collect_threadcreate_summary {
	uint64_t alive;                 /* threads alive at the start */
	uint64_t alive_no_root;         /* ...whose stack did not reach its root */
	uint64_t created;               /* threads created in the window */
	uint64_t unseen;                /* created while the watch began: no stack */
	uint64_t alive_and_created;     /* created while it began, and read alive
					 * too: counted once, as created */
	uint64_t no_stack;              /* created, the creator's stack not unwound */
};

/* What a collection did, for the summary line. */
struct collect_summary {
	const char *engine;             /* "perf" or "ptrace" */
	char fallback[512];             /* auto chose ptrace: why ("" if not) */
	struct attach_engine_stats st;
	struct attach_engine_stats cpu_st;  /* off-CPU kinds: the perf engine
					     * giving running threads' stacks */
	uint64_t no_cpu_stack;          /* ...a running thread had none yet:
					 * block, mutex: the tick is lost; wall:
					 * its CPU time goes to a marker stack */
	uint64_t threads_evicted;       /* exited threads whose state was
					 * flushed to the profile and freed */
	uint64_t holder_unknown;        /* mutex: waits whose holder's stack
					 * was unknown (not counted) */
	uint64_t dropped_nomem;         /* samples dropped: out of memory */
	uint64_t recorded_ns;           /* CPU, wall or delay in the profile */
	uint64_t unwind_failures;       /* stacks not unwound to their root */
	uint64_t cut_short;             /* ...of which the copy was too short */
	int target_exited, exit_status; /* exit_status: wait status, -1 unknown */
	int target_execed;
	/* several processes (collect_open_many, run --children): */
	uint64_t processes;             /* collected */
	uint64_t processes_exited;      /* ...of which exited in the window */
	uint64_t processes_missed;      /* found, gone before they were opened */
	char missed[600];               /* ...the first one's reason */
	struct collect_heap_summary heap;
	/* trace: */
	int trace_switches;             /* exact switch times (perf) */
	uint64_t trace_events;          /* events kept (switches, samples, ticks) */
	uint64_t trace_dropped;         /* ...not kept: the cap was reached */
	uint64_t trace_slices;          /* slices written */
	struct collect_threadcreate_summary tc;
};

struct collect_error {
	int usage;                      /* the options were wrong (exit 2) */
	char msg[600];
};

/* Prepares a collection of the running process pid (already checked with
 * attach_check_target) and starts its engine.  NULL with err set. */
struct collect_session *collect_open(pid_t pid, const struct collect_opts *o,
				     struct collect_error *err);
/* Several running processes in one collection and one profile (each
 * checked with attach_check_target): each gets a collection of its own,
 * on a thread of its own, over the same window; the profile merges them,
 * every sample labelled with the numeric `pid` and the string `process`
 * (docs/FORMATS.md §1.7).  o->seconds and o->cancel end the window, as
 * does the exit (or exec) of every process.  When one of the first
 * n_named cannot be opened, none stays attached: NULL with err saying
 * which and why; the others (descendants found in /proc) may have ended
 * meanwhile and are left out (summary: processes_missed, missed). */
struct collect_session *collect_open_many(const pid_t *pids, size_t n, size_t n_named,
					  const struct collect_opts *o, struct collect_error *err);
/* `run`: starts argv (with pprofc's environment) and prepares a collection
 * of it from its first instruction (the exec).  NULL with err set; then
 * *status is the command's wait status if it could not run (exec failed:
 * the child said why), else -1.  If the collection cannot start, the
 * command is killed at its exec, before it ran anything. */
struct collect_session *collect_spawn(char **argv, const struct collect_opts *o,
				      struct collect_error *err, int *status);
/* Collects until o->seconds pass, *o->cancel is set, or the target exits
 * or execs. */
void collect_run(struct collect_session *s);
/* Stops the engine (every thread is let go) and completes the summary;
 * collect_run() calls it, and it may be called again. */
void collect_stop(struct collect_session *s);
struct pp_profile *collect_profile(struct collect_session *s);
const struct collect_summary *collect_summary(const struct collect_session *s);
pid_t collect_pid(const struct collect_session *s);
/* `run`: passes sig to the command (SIGTERM, SIGINT...). */
void collect_signal_child(struct collect_session *s, int sig);
/* `run`: waits for the command to exit; its wait status.  A signal number
 * set in *pass meanwhile (by a handler) is passed on to it.  pass may be
 * NULL. */
int collect_wait_child(struct collect_session *s, volatile sig_atomic_t *pass);
void collect_close(struct collect_session *s);

/* trace: the timeline as Chrome trace-event JSON (docs/FORMATS.md §9),
 * after collect_run.  0, or -1 if out of memory or the stream failed. */
int collect_trace_write(struct collect_session *s, FILE *out);

/* The pprof sample types and file-name kind of a profile kind
 * (docs/FORMATS.md §1.4, file names §1.5). */
void collect_spec(const struct collect_opts *o, struct pp_profile_spec *spec);
const char *collect_file_kind(enum collect_kind kind);

/* threadcreate: Go's debug=1 text of the profile as it is now
 * ("threadcreate profile: total N", then each stack with its count,
 * largest first).  Only while collect_run is not running, or from its
 * on_snapshot.  0 or -1. */
int collect_threadcreate_text(struct collect_session *s, FILE *out);

/* ---- stacks into a profile (stacks.c), also for dump-threads --pprof ---- */

/* Locations of one stack: every frame a walk can give, and the marker of a
 * stack cut short. */
#define COLLECT_MAX_LOCS (SYM_MAX_DEPTH + 1)

/* One-location stacks that say what is missing, for the profile never to
 * pass a guess for a stack: the root-side end of a stack cut short by its
 * copy; in a wall profile, a thread's time on a CPU before any stack of it
 * running was sampled, and time off CPU whose wait was not read; in a
 * heap profile, an allocation whose stack was not copied or unwound; in a
 * goroutine profile, a goroutine whose stack was not read. */
enum collect_marker { COLLECT_MARK_CUT, COLLECT_MARK_NO_CPU_STACK, COLLECT_MARK_NO_WAIT_STACK,
		      COLLECT_MARK_NO_ALLOC_STACK, COLLECT_MARK_TC_NO_ROOT, COLLECT_MARK_TC_UNSEEN,
		      COLLECT_MARK_TC_MAIN, COLLECT_MARK_TC_NO_STACK, COLLECT_MARK_GO_NO_STACK,
		      COLLECT_MARKERS };

struct collect_stacks {
	pid_t pid;
	struct sym_session *sym;
	struct pp_profile *prof;
	struct attach_maps maps;
	uint64_t *mapping_ids;          /* per maps line; 0: not executable */
	uint64_t maps_gen;              /* sym_modules_generation() when maps were read */
	uint64_t markers[COLLECT_MARKERS];  /* their location ids, 0: none yet */
	/* Keys the locations of pcs in no mapping (anonymous code: a JIT's)
	 * apart from another process's at the same address, when several
	 * processes share prof; 0 when one process has it. */
	uint64_t scope;
	int shared;                     /* prof is not ours to free */
	int mappings_pending;           /* maps read, mappings not added yet */
	char exe[4096];
};
/* A marker's location id (0 if out of memory). */
uint64_t collect_stacks_marker(struct collect_stacks *c, enum collect_marker m);
int collect_stacks_init(struct collect_stacks *c, pid_t pid, struct sym_session *sym,
			const struct pp_profile_spec *spec);
/* The same into prof, which several processes share (run --children):
 * this process's mappings are added to it (lazy: at its first stack; the
 * maps are read now), and its pcs in no mapping are kept apart by scope
 * (nonzero).  prof is not freed with c. */
int collect_stacks_init_shared(struct collect_stacks *c, pid_t pid, struct sym_session *sym,
			       struct pp_profile *prof, uint64_t scope, int lazy);
int collect_stacks_add(struct collect_stacks *c, const struct sym_stack *st, const int64_t *values,
		       const struct pp_label *labels, size_t n_labels);
/* The stack's location ids, leaf first (at most max); a stack cut short
 * by its copy ends with a marker location saying so.  Returns the count. */
size_t collect_stacks_locations(struct collect_stacks *c, const struct sym_stack *st,
				uint64_t *locs, size_t max);
/* The same for st's frames from first on (where a physical frame starts):
 * when first > 0 its frame is a caller (return address - 1), not a leaf. */
size_t collect_stacks_locations_from(struct collect_stacks *c, const struct sym_stack *st,
				     size_t first, uint64_t *locs, size_t max);
/* The same for a stack unwound from where it will resume (a goroutine
 * not running: sym_unwind_resumable), whose leaf is a return address:
 * placed where it was looked up, pc - 1. */
size_t collect_stacks_locations_resumed(struct collect_stacks *c, const struct sym_stack *st,
					uint64_t *locs, size_t max);
void collect_stacks_free(struct collect_stacks *c);
/* A thread's wait state from its /proc state, its system call and the
 * functions on its stack (attach_classify, then attach_refine). */
void collect_wait_of(char state, const struct attach_syscall *sc, const struct sym_stack *st,
		     struct attach_wait *w);
/* The target's executable path, " (deleted)" removed. */
void collect_exe_of(pid_t pid, char *exe, size_t len);
/* What the process calls itself, for file names: its name (comm), which
 * is the name it was started by, not where a symlink leads (redis-server,
 * not redis-check-rdb); longer from argv[0] when comm was cut at 15. */
void collect_name_of(pid_t pid, char *name, size_t len);

/* ---- thread dumps (dump.c): dump-threads, serve's goroutine -------------- */

struct collect_dump_opts {
	size_t stack_limit;             /* most stack bytes copied per thread */
	int stop_timeout_ms;            /* how long to wait for threads to stop */
	int stop_all;                   /* also stop blocked threads (comparison) */
	int all_wchan;                  /* read every thread's wchan (JSON) */
	int goroutines;                 /* a Go program: read its goroutines too */
	volatile sig_atomic_t *cancel;  /* set asynchronously: give up (may be NULL) */
};
/* What reading a Go program's goroutines took (collect_dump_go_stats). */
struct collect_go_stats {
	int go;                         /* a Go program */
	const char *note;               /* ...whose goroutines were not read: why */
	const char *version;            /* runtime.buildVersion, or NULL */
	size_t goroutines;              /* read (dead ones left out) */
	size_t shown;                   /* ...not the runtime's own (as Go shows them) */
	size_t retries;                 /* reads made again: the goroutine changed */
	size_t unstable;                /* ...never read the same twice: no stack */
	size_t labels_dropped;          /* pprof labels not read whole: left out */
	double read_ms;                 /* reading them (the target ran on) */
};
struct collect_dump;
/* Takes one snapshot of every thread of tgid (checked with
 * attach_check_process); the target runs again when it returns.  NULL with
 * err set.  Then collect_dump_resolve() unwinds, names and classifies,
 * collect_dump_view() is the dump for pprofout's writers, and
 * collect_dump_profile() the same as a threads/count profile; frames'
 * strings stay valid until collect_dump_release(), which lets go of the
 * symbolizer and of any thread that had not stopped by the deadline
 * (waiting up to wait_ns for them; returns how many are left). */
struct collect_dump *collect_dump_take(pid_t tgid, const struct collect_dump_opts *o,
				       struct collect_error *err);
const struct attach_snapshot *collect_dump_snapshot(const struct collect_dump *d);
int collect_dump_resolve(struct collect_dump *d, struct collect_error *err);
const struct pp_dump *collect_dump_view(const struct collect_dump *d);
/* Whether the dump holds a Go program's goroutines (read, not only
 * noted as unreadable): then its profile counts goroutines. */
int collect_dump_goroutines(const struct collect_dump *d);
/* The dump as a count profile.  A Go program whose goroutines were read:
 * Go's goroutine profile (goroutine/count, one sample per distinct
 * goroutine stack, no labels, whatever type says); else one sample per
 * thread, labelled thread, tid and state, of sample type type: "threads"
 * (dump-threads --pprof) or "goroutine" (serve, as Go names it).  c is
 * initialized either way: collect_stacks_free() it. */
int collect_dump_profile(struct collect_dump *d, const char *type, struct collect_stacks *c,
			 struct collect_error *err);
/* The debug=1 text: for a Go program whose goroutines were read, Go's
 * goroutine?debug=1 first ("goroutine profile: total N", each distinct
 * stack with its count, pprofout/legacy.h), then the threads grouped
 * ("thread profile: total N", pp_write_debug1).  0 or -1. */
int collect_dump_write_debug1(struct collect_dump *d, FILE *out);
struct sym_memo_stats collect_dump_memo_stats(const struct collect_dump *d);
/* After collect_dump_resolve(): st->go is 0 for a program not in Go. */
void collect_dump_go_stats(const struct collect_dump *d, struct collect_go_stats *st);
size_t collect_dump_release(struct collect_dump *d, uint64_t wait_ns);
void collect_dump_free(struct collect_dump *d);

/* Symbolizer sessions of one target for unwinding many snapshots at once
 * (unwinders.c): collect_unwinders_open() starts opening them in the
 * background, one per CPU as far as nthreads (the snapshots expected) pays
 * for the loading each needs; collect_unwinders_sym() waits for them and
 * gives the first (NULL with err if none opened);
 * collect_unwinders_run() calls fn(sym, memo, i, arg) for each i in
 * [0, jobs), over one thread per session, until *cancel (may be NULL); memo
 * is that session's unwind memo for sym_unwind_memo (NULL: off, with
 * PPROFC_UNWIND_MEMO=0).  fn must touch only job i's data.  Frames'
 * strings stay valid until close. */
struct collect_unwinders;
struct collect_unwinders *collect_unwinders_open(pid_t pid, size_t nthreads);
struct sym_session *collect_unwinders_sym(struct collect_unwinders *u, char *err, size_t errlen);
void collect_unwinders_run(struct collect_unwinders *u, size_t jobs,
			   void (*fn)(struct sym_session *sym, struct sym_memo *memo, size_t i,
				      void *arg),
			   void *arg, volatile sig_atomic_t *cancel);
/* The memos' counts, summed over the sessions (for -v). */
struct sym_memo_stats collect_unwinders_memo_stats(const struct collect_unwinders *u);
void collect_unwinders_close(struct collect_unwinders *u);

#endif
