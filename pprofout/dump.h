/* dump.h — the thread dump as the writers see it, and the writers.
 *
 * pprofout/ knows neither ptrace nor DWARF: cli/ fills these plain structs
 * from what attach/ and symbolize/ produced, and the writers print them in
 * the formats of docs/FORMATS.md: debug=2 (§2), debug=1 (§3) and JSON (§4).
 */
#ifndef PPROFC_PPROFOUT_DUMP_H
#define PPROFC_PPROFOUT_DUMP_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <time.h>

struct pp_frame {
	uint64_t pc;                /* leaf: exact pc; callers: return address */
	const char *function;       /* NULL: unknown */
	const char *file;           /* NULL: no line information */
	int line;
	int inlined;
	int has_offset;
	uint64_t func_offset;
	const char *module;         /* NULL: no module */
	uint64_t module_offset;
};

enum pp_block_kind { PP_BLOCK_NONE, PP_BLOCK_MUTEX, PP_BLOCK_FUTEX, PP_BLOCK_FD };

struct pp_blocked {
	enum pp_block_kind kind;
	uint64_t address;           /* mutex, futex */
	pid_t owner;                /* mutex: holder tid, 0 when unknown */
	int fd;                     /* fd */
	const char *target;         /* fd: what /proc/PID/fd/N links to */
	const char *description;    /* fd: "TCP 127.0.0.1:8080 listen" */
};

struct pp_thread {
	pid_t tid;
	const char *name;           /* raw comm bytes */
	char state;                 /* /proc state letter */
	const char *reason;         /* "mutex wait", "syscall ioctl"... */
	const char *detail;         /* text in the parentheses, or NULL */
	double wait_seconds;        /* < 0: unknown */
	const char *syscall;        /* NULL: not in a system call */
	const char *wchan;          /* NULL: none */
	struct pp_blocked blocked;
	const struct pp_frame *frames;
	size_t nframes;
	int complete;               /* the stack reaches the thread's root */
	const char *stack_error;    /* why the stack is missing or cut short */
	int stack_taken;            /* 0: the thread was not stopped */
	int64_t goroutine;          /* Go: the goroutine it runs, 0: none */
};

/* A pprof label of a goroutine (runtime/pprof's pprof.Do, SetGoroutineLabels). */
struct pp_go_label {
	const char *key, *value;
};

/* A goroutine's labels: has is 0 when it has none (no label set, or not
 * read: a binary without DWARF), 1 when it has a set, even an empty one
 * (Go prints "# labels: {}" then).  Sorted by key. */
struct pp_go_labels {
	int has;
	const struct pp_go_label *v;
	size_t n;
};

/* A goroutine of a Go program, as Go's goroutine?debug=2 shows it
 * (FORMATS.md §2.1): frames already filtered as Go filters them. */
struct pp_goroutine {
	int64_t goid;
	const char *status;         /* "chan receive", "running", "syscall"... */
	int leaked;                 /* Go 1.26's leaked status: " (leaked)" */
	int scan;                   /* the GC's scan bit was set: " (scan)" */
	int64_t wait_minutes;       /* shown when >= 1 */
	int locked;                 /* locked to its thread */
	pid_t tid;                  /* the thread running it, 0: none */
	const struct pp_frame *frames;
	size_t nframes;
	int complete;               /* the stack reaches the goroutine's root */
	const char *stack_error;    /* why the stack is missing or cut short */
	int stack_taken;            /* 0: no stack (stack_error says why) */
	const struct pp_frame *created_by;  /* NULL: not shown (goroutine 1...) */
	int64_t creator;            /* Go 1.21+: "in goroutine N"; < 0: not shown */
	struct pp_go_labels labels; /* JSON only: Go's debug=2 has none */
};

struct pp_goroutines {
	const char *go_version;     /* runtime.buildVersion, NULL: unknown */
	const char *note;           /* a Go program whose goroutines are not
				     * shown: why (NULL otherwise) */
	const struct pp_goroutine *g;
	size_t n;
};

struct pp_dump {
	pid_t pid;
	const char *exe;
	const char *const *argv;
	size_t argc;
	time_t time;
	const struct pp_thread *threads;   /* main thread first, then by tid */
	size_t n;
	const pid_t *cycles;               /* deadlocks: cycle_lens[i] tids each */
	const size_t *cycle_lens;
	size_t ncycles;
	const struct pp_goroutines *go;    /* NULL: not a Go program */
};

int pp_write_debug2(FILE *out, const struct pp_dump *d);
int pp_write_debug1(FILE *out, const struct pp_dump *d);
int pp_write_json(FILE *out, const struct pp_dump *d);

/* A count profile's debug=1 text, as Go's runtime/pprof writes
 * threadcreate?debug=1 (printCountProfile): "NAME profile: total N", then
 * each distinct stack, largest count first: "COUNT @ pc pc..." and a
 * "#\tpc\tfunction+0xoff\tfile:line" line per frame, a blank line after. */
struct pp_count_stack {
	const struct pp_frame *frames;  /* innermost first, inline frames expanded */
	size_t nframes;
	size_t count;
	int callers_only;               /* frames[0] is a caller (a return
					 * address): a stack kept from its root
					 * side, shown at return address - 1 */
	struct pp_go_labels labels;     /* goroutine: "# labels: {...}" */
};
int pp_write_count_profile(FILE *out, const char *name, const struct pp_count_stack *v, size_t n);
/* Several processes (docs/FORMATS.md §2-§4): in text, each process's dump
 * (debug=2 or 1) follows a header line, `process <pid> "<name>": <argv>`
 * and a blank line; in JSON, one object {"processes": [...]} holding each
 * process's object as pp_write_json writes it. */
int pp_write_process_header(FILE *out, const struct pp_dump *d);
int pp_write_json_processes(FILE *out, const struct pp_dump *const *d, size_t n);
/* The goroutines of d->go (goroutines.c), as debug=2 text, each block
 * followed by a blank line; and as the JSON members "go" and
 * "goroutines" (each line indented, ending with a comma). */
void pp_write_goroutines(FILE *out, const struct pp_goroutines *go);
void pp_write_goroutines_json(FILE *out, const struct pp_goroutines *go);
/* One frame as the text dump prints it (text.c), two lines. */
void pp_write_frame(FILE *out, const struct pp_frame *f);
/* The same as Go's tracebacks print it: an inlined frame is not marked
 * " (inlined)" (it has no "+0x" offset, as there). */
void pp_write_go_frame(FILE *out, const struct pp_frame *f);
/* One frame as a JSON object (json.c), on one line; comma after it unless last. */
void pp_write_json_frame(FILE *out, const struct pp_frame *f, int last);

/* "12 seconds", "3 minutes", or "" below one second (Go's wording). */
void pp_format_duration(double seconds, char *buf, size_t len);
/* Writes s as the inside of a C string literal (invalid UTF-8 as \xNN). */
void pp_write_cstring(FILE *out, const char *s);
/* Writes s as a JSON string, quotes included (invalid UTF-8 as \u00NN). */
void pp_write_json_string(FILE *out, const char *s);
/* The same, or null when s is NULL. */
void pp_write_json_string_or_null(FILE *out, const char *s);

#endif
