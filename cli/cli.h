/* cli.h — what the subcommands in cli/ share: exit codes, error printing,
 * option helpers.  One file per subcommand, like git's builtin/. */
#ifndef PPROFC_CLI_H
#define PPROFC_CLI_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "../attach/proc.h"
#include "../collect/collect.h"
#include "../pprofout/profile.h"

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

int cmd_dump_threads(int argc, char **argv);
int cmd_attach(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_serve(int argc, char **argv);

/* "pprofc: <message>" on stderr, one line. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints the error and "try 'pprofc CMD --help'"; returns EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Strict parsers: the whole string must be a number. */
int cli_parse_pid(const char *s, pid_t *pid);
int cli_parse_size(const char *s, size_t *bytes);   /* 512K, 1M, 65536 */
int cli_parse_int(const char *s, long min, long max, long *v);

/* SIGINT, SIGTERM and SIGHUP set cli_stop instead of killing pprofc, so
 * it can let go of the target first. */
extern volatile sig_atomic_t cli_stop;          /* the signal, 0: none */
extern volatile sig_atomic_t cli_stop_from_terminal;  /* sent by the tty */
void cli_catch_stop_signals(void);

/* Output that never leaves a half-written file: to a temporary name next
 * to path, renamed into place by cli_output_commit.  path "-" or NULL is
 * stdout. */
/* stdio buffer for outputs (a dump of 500 threads is about 1 MB). */
#define CLI_OUTPUT_BUFFER (64 << 10)

struct cli_output {
	FILE *f;
	char *path, *tmp;
	char *buf;                      /* f's stdio buffer, freed after it */
};
int cli_output_open(struct cli_output *o, const char *path);
int cli_output_commit(struct cli_output *o);
/* Instead of cli_output_commit: saves under the first free name
 * dir/<prefix>NNN<suffix> (001, 002...), never replacing a file; the name
 * chosen is written to saved. */
int cli_output_commit_numbered(struct cli_output *o, const char *dir, const char *prefix,
			       const char *suffix, char *saved, size_t saved_len);
/* Where profiles go by default, as go tool pprof saves them:
 * $PPROF_TMPDIR, else $HOME/pprof (created), else the temp directory. */
void cli_profile_dir(char *dir, size_t len);
void cli_output_abort(struct cli_output *o);
/* A write into o failed (errno tells why): says so, naming the file (what
 * when it is stdout), and aborts o: no partial file is left. */
void cli_output_failed(struct cli_output *o, const char *what);

/* A profile file: with numbered and no explicit output, saved as
 * go tool pprof does, <dir>/pprof.<exe>.<kind>.NNN.pb.gz ("Saved profile
 * in ..." on stderr).  Opened before the work starts, so a bad path fails
 * at once. */
struct cli_saved {
	struct cli_output out;
	int numbered;
	const char *suffix;             /* ".pb.gz", or ".json" for a trace */
	char dir[4096], prefix[512];
};
int cli_saved_open(struct cli_saved *w, const char *output, int numbered, const char *exe,
		   const char *kind);
/* What turned out to be in it (a Go program's threads profile is its
 * goroutine profile): the name it will be saved under, before commit. */
void cli_saved_set_kind(struct cli_saved *w, const char *exe, const char *kind);
int cli_saved_commit(struct cli_saved *w);

/* The processes attach and dump-threads work on (targets.c): the PIDs
 * named (each checked; a TID stands for its process), then with children
 * their descendants now.  pids[0..n_named) are the named.  Returns
 * EXIT_OK, or EXIT_FAIL after saying why. */
struct cli_targets {
	pid_t *pids;
	size_t n, n_named;
};
int cli_targets_resolve(struct cli_targets *t, const pid_t *named, size_t n, int children, int dump);
/* The PIDs left in argv after the options (at least one): into a
 * calloc'ed *pids of *n.  0, or cli_usage_error's code. */
int cli_parse_pids(const char *cmd, int argc, char **argv, pid_t **pids, size_t *n);
void cli_targets_free(struct cli_targets *t);

/* attach and run (profile.c). */
enum cli_format { FMT_PROTO, FMT_TOP, FMT_FOLDED, FMT_JSON };   /* JSON: the trace's */
struct cli_profile_options {
	pid_t pid;                      /* attach: the first PID */
	pid_t *pids;                    /* ...all of them (free them) */
	size_t n_pids;
	int threads;                    /* --profile threads: one snapshot */
	enum collect_kind kind;         /* cpu, wall, block, mutex */
	enum collect_engine engine;     /* --engine auto|perf|ptrace */
	char **command;                 /* run: the command and its arguments */
	double seconds;                 /* 0: until the target exits */
	long hz;
	pid_t *tids;
	size_t n_tids;
	const char *output;
	enum cli_format format;
	size_t stack_size;
	int verbose;
	int force_stop;                 /* --force-stop: for comparison */
	size_t heap_rate;               /* heap, allocs: --heap-rate */
	double interval;                /* heap, allocs: --interval, 0: none */
	size_t max_hit_rate;            /* attach heap, allocs: --max-hit-rate */
	int children;                   /* --children: run: follow the processes
					 * COMMAND starts; attach: the PIDs'
					 * descendants at the start */
	const char *serve;              /* run --serve ADDR: serve /debug/pprof/ */
	const char *basic_auth_file;    /* ...with these credentials */
	const char *token_file;
	int linger;                     /* ...and on after the command exits */
};
/* attach --profile heap|allocs: the probes close above this many hits/s
 * (at ~9 us a hit, measured here, about 0.9 of a CPU added). */
#define CLI_MAX_HIT_RATE 100000
/* Parses attach's (run = 0) or run's options; -1 after --help, 2 on a
 * usage error (already reported), 0 otherwise. */
int cli_profile_parse(int argc, char **argv, int run, struct cli_profile_options *o);
/* The collection options the command line asks for, with a progress line
 * on a terminal (pr: its state, kept by the caller). */
struct cli_progress {
	double seconds;
	int tty;
	const struct cli_profile_options *o;    /* heap snapshots: where to */
};
void cli_collect_opts(const struct cli_profile_options *o, struct cli_progress *pr,
		      struct collect_opts *co);
/* "the window starts" on stderr, for threadcreate and trace. */
void cli_profile_window_starts(enum collect_kind kind, pid_t pid);
/* Runs the collection s to its end, prints the summary and writes the
 * profile into w (opened before the collection started).  Returns EXIT_*. */
int cli_profile_finish(const struct cli_profile_options *o, struct collect_session *s,
		       struct cli_saved *w, int run);
/* Writes prof into w as o->format asks and commits it.  Returns EXIT_*. */
int cli_profile_write(const struct cli_profile_options *o, struct pp_profile *prof,
		      int64_t duration_ns, struct cli_saved *w);
/* attach: profiles the running process pid.  Returns EXIT_*. */
int cli_profile_take(const struct cli_profile_options *o, pid_t pid);
/* attach: profiles several processes into one profile.  Returns EXIT_*. */
int cli_profile_take_many(const struct cli_profile_options *o, const struct cli_targets *t);

/* run --profile heap|allocs (heap.c): SIGUSR1 asks for a snapshot
 * (cli_snapshot set); cli_heap_snapshot writes one (collect_opts'
 * on_snapshot, arg a cli_progress); the summary line. */
extern volatile sig_atomic_t cli_snapshot;
void cli_heap_catch_snapshot(void);
void cli_heap_snapshot(void *arg, struct collect_session *s);
void cli_heap_summary(const struct collect_summary *sum, const char *command, int children,
		      int verbose);
/* attach --profile heap|allocs: the line saying every probe is in place
 * (the window starts there), and the summary (uprobes). */
void cli_heap_attach_ready(const struct collect_summary *sum);
void cli_heap_attach_summary(const struct collect_summary *sum);

/* run --serve (serve.c): starts the command with the heap sampler and
 * serves /debug/pprof/ for it until it exits.  Returns its exit code. */
int cli_serve_command(const struct cli_profile_options *o, const char *listen, const char *basic_auth_file,
		      const char *token_file);

/* attach --profile threads: one snapshot as a threads/count profile
 * (dump_threads.c). */
int cli_threads_profile(pid_t tgid, const char *output, enum cli_format format);
/* The same of several processes, one profile labelled pid and process. */
int cli_threads_profile_many(const struct cli_targets *t, const char *output, enum cli_format format);

#endif
