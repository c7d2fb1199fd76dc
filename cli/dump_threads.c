/* dump_threads.c — `pprofc dump-threads PID`: what every thread is doing.
 *
 * Reads top to bottom as the work happens:
 *   1. check the target (exists, not a zombie or kernel thread, not traced);
 *   2. take one snapshot of every thread, and with the target running
 *      again unwind, symbolize and classify each (collect/dump.c);
 *   3. print debug=2, debug=1 or JSON (pprofout/), and the threads/count
 *      profile with --pprof (goroutine/count for a Go program).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../attach/snapshot.h"
#include "../pprofout/dump.h"
#include "../pprofout/report.h"
#include "../symbolize/sym.h"
#include "cli.h"

static const char help[] =
	"usage: pprofc dump-threads [options] PID [PID...]\n"
	"\n"
	"Print what every thread of process PID is doing: its name, what it waits\n"
	"on (mutex and holder, file descriptor, ...), for how long, and its stack\n"
	"with inlined frames and source lines.  The process is stopped only while\n"
	"registers and stacks are copied (milliseconds), then runs on.\n"
	"With several PIDs (or --children), one process after another, each under\n"
	"a line `process PID \"NAME\": ARGV` (JSON: {\"processes\": [...]}).\n"
	"\n"
	"For a Go program, its goroutines come first, as Go's goroutine?debug=2\n"
	"prints them (read without stopping it; needs the binary's DWARF), then\n"
	"the threads, each with the goroutine it runs; with --debug=1, Go's\n"
	"goroutine?debug=1 (`goroutine profile: total N`), then the threads'\n"
	"(`thread profile: total N`).\n"
	"\n"
	"options:\n"
	"      --debug=N         2: one block per thread (default); 1: identical\n"
	"                        stacks grouped with a count\n"
	"      --format=FORMAT   text (default) or json\n"
	"  -o, --output=FILE     write to FILE (atomically) instead of stdout\n"
	"      --pprof=FILE      also write the snapshot as a pprof profile of thread\n"
	"                        counts by stack (like Go's goroutine profile; for a\n"
	"                        Go program, Go's goroutine profile)\n"
	"      --stack-size=SIZE most stack bytes copied per thread (default 512K)\n"
	"      --stop-timeout=MS how long to wait for threads to stop (default 500)\n"
	"      --children        also the PIDs' descendants (processes they started,\n"
	"                        theirs...)\n"
	"      --stop-all        also stop threads blocked in system calls (by default\n"
	"                        they are read without stopping them), for comparison\n"
	"  -v, --verbose         report on stderr how long the process was stopped\n"
	"  -h, --help            show this help\n";

struct options {
	int debug;
	int json;
	int text;                       /* print the dump (not for attach --profile threads) */
	const char *output;
	const char *pprof;              /* also write a threads/count profile here */
	int stop_all;                   /* stop blocked threads too (for comparison) */
	int pprof_numbered;             /* ...or under go tool pprof's name */
	enum cli_format pprof_format;
	size_t stack_size;
	long stop_timeout_ms;
	int verbose;
	pid_t pid;
	pid_t *pids;                    /* every PID named (pid is the first) */
	size_t n_pids;
	int children;                   /* --children: their descendants too */
};

static int parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "debug", required_argument, NULL, 'd' },
		{ "format", required_argument, NULL, 'f' },
		{ "output", required_argument, NULL, 'o' },
		{ "pprof", required_argument, NULL, 'p' },
		{ "stop-all", no_argument, NULL, 'S' },
		{ "children", no_argument, NULL, 'C' },
		{ "stack-size", required_argument, NULL, 's' },
		{ "stop-timeout", required_argument, NULL, 't' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *cmd = "dump-threads";
	long v;
	int c;
	*o = (struct options){ .debug = 2, .text = 1, .stack_size = 512 * 1024, .stop_timeout_ms = 500 };
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "o:vh", longopts, NULL)) != -1) {
		switch (c) {
		case 'd':
			if (cli_parse_int(optarg, 1, 2, &v))
				return cli_usage_error(cmd, "--debug takes 1 or 2, not '%s'", optarg);
			o->debug = (int)v;
			break;
		case 'f':
			if (strcmp(optarg, "json") == 0)
				o->json = 1;
			else if (strcmp(optarg, "text") != 0)
				return cli_usage_error(cmd, "--format takes text or json, not '%s'", optarg);
			break;
		case 'o':
			o->output = optarg;
			break;
		case 'p':
			if (strcmp(optarg, "-") == 0)
				return cli_usage_error(cmd, "--pprof needs a file name (stdout holds the dump)");
			o->pprof = optarg;
			break;
		case 's':
			if (cli_parse_size(optarg, &o->stack_size) || o->stack_size < 4096)
				return cli_usage_error(cmd, "--stack-size takes a size of 4K or more, like 512K, not '%s'",
						       optarg);
			break;
		case 't':
			if (cli_parse_int(optarg, 1, 60000, &o->stop_timeout_ms))
				return cli_usage_error(cmd, "--stop-timeout takes milliseconds (1-60000), not '%s'",
						       optarg);
			break;
		case 'v':
			o->verbose = 1;
			break;
		case 'S':
			o->stop_all = 1;
			break;
		case 'C':
			o->children = 1;
			break;
		case 'h':
			fputs(help, stdout);
			return -1;
		default:
			return cli_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
		}
	}
	int r = cli_parse_pids(cmd, argc, argv, &o->pids, &o->n_pids);
	if (r)
		return r;
	o->pid = o->pids[0];
	return 0;
}

/* ---- writing what collect/ made of the snapshot ------------------------ */

static int write_dump(const struct options *o, struct collect_dump *d)
{
	struct cli_output out;
	if (cli_output_open(&out, o->output))
		return -1;
	const struct pp_dump *v = collect_dump_view(d);
	int r = o->json ? pp_write_json(out.f, v) : o->debug == 1 ? collect_dump_write_debug1(d, out.f)
							       : pp_write_debug2(out.f, v);
	if (r) {
		cli_output_failed(&out, "the dump");
		return -1;
	}
	return cli_output_commit(&out);
}

/* A Go program's profile counts its goroutines (said even without -v:
 * the user asked for threads), and is saved under Go's name for it. */
static void say_goroutines(struct cli_saved *w, struct collect_dump *d, const char *exe)
{
	struct collect_go_stats st;
	collect_dump_go_stats(d, &st);
	fprintf(stderr, "pprofc: a Go program: the profile counts its %zu goroutines (goroutine/count, "
		"as Go's goroutine profile), not its threads\n", st.shown);
	cli_saved_set_kind(w, exe, "goroutine");
}

static int write_threads_profile(const struct options *o, struct cli_saved *w, struct collect_dump *d,
				 const char *exe)
{
	struct collect_stacks c;
	struct collect_error err;
	int r = -1;
	if (collect_dump_profile(d, "threads", &c, &err)) {
		cli_error("%s", err.msg);
	} else {
		if (collect_dump_goroutines(d))
			say_goroutines(w, d, exe);
		FILE *f = w->out.f;
		r = o->pprof_format == FMT_PROTO ? pp_profile_write(c.prof, 0, f)
		  : o->pprof_format == FMT_TOP   ? pp_report_top(c.prof, NULL, f)
						 : pp_report_folded(c.prof, NULL, f);
		if (r)
			cli_output_failed(&w->out, "the profile");
		else
			r = cli_saved_commit(w);
	}
	collect_stacks_free(&c);
	return r;
}

/* Unwinds, classifies and writes what o asks for. */
static int report(const struct options *o, struct collect_dump *d, struct cli_saved *w, const char *exe)
{
	struct collect_error err;
	if (collect_dump_resolve(d, &err)) {
		cli_error("%s; no output written", err.msg);
		return EXIT_FAIL;
	}
	if (o->text && write_dump(o, d))
		return EXIT_FAIL;
	if (w && write_threads_profile(o, w, d, exe))
		return EXIT_FAIL;
	return EXIT_OK;
}

static double ms_since(const struct timespec *t0)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) * 1e3 + (double)(t.tv_nsec - t0->tv_nsec) / 1e6;
}

/* A Go program: what reading its goroutines took, or why they are not
 * shown (said even without -v: a Go user expects them). */
static void report_go(const struct collect_dump *d, int verbose)
{
	struct collect_go_stats st;
	collect_dump_go_stats(d, &st);
	if (!st.go)
		return;
	if (st.note) {
		fprintf(stderr, "pprofc: %s\n", st.note);
		return;
	}
	if (verbose)
		fprintf(stderr, "pprofc: %s: %zu goroutines read in %.1f ms without stopping the process "
			"(%zu shown, as Go shows them), %zu read again as they changed, %zu never read "
			"the same twice, %zu with pprof labels not read whole (left out)\n",
			st.version ? st.version : "Go", st.goroutines, st.read_ms,
			st.shown, st.retries, st.unstable, st.labels_dropped);
}

static void report_stop(const struct attach_snapshot *s)
{
	size_t taken = 0;
	for (size_t i = 0; i < s->n; i++)
		taken += s->threads[i].taken;
	fprintf(stderr, "pprofc: %zu threads, %zu stacks taken (%zu of blocked threads, without "
		"stopping them); process stopped for %.3f ms (%.1f ms of /proc reads and seizing before)\n",
		s->n, taken, s->peeked, (double)s->stopped_ns / 1e6, (double)s->prepare_ns / 1e6);
	if (s->stragglers)
		fprintf(stderr, "pprofc: %zu threads did not stop within the deadline and were not dumped\n",
			s->stragglers);
}

/* Takes the snapshot and writes what o asks for; the pprof output (if
 * any) is opened first, so a bad path fails before the target is touched. */
static int dump(const struct options *o, pid_t tgid)
{
	struct cli_saved w;
	int want_pprof = o->pprof || o->pprof_numbered;
	char exe[4096];
	collect_name_of(tgid, exe, sizeof exe);
	if (want_pprof && cli_saved_open(&w, o->pprof, o->pprof_numbered && o->pprof_format == FMT_PROTO,
					 exe, "threads"))
		return EXIT_FAIL;
	if (cli_stop) {
		cli_error("interrupted before attaching; the target was not touched");
		if (want_pprof)
			cli_output_abort(&w.out);
		return EXIT_FAIL;
	}
	struct collect_dump_opts co = { .stack_limit = o->stack_size,
					.stop_timeout_ms = (int)o->stop_timeout_ms, .cancel = &cli_stop,
					.stop_all = o->stop_all, .all_wchan = o->json,
					.goroutines = 1 };
	struct collect_error err;
	int r = EXIT_FAIL;
	struct collect_dump *d = collect_dump_take(tgid, &co, &err);
	if (!d) {
		cli_error("%s", err.msg);
	} else {
		if (o->verbose)
			report_stop(collect_dump_snapshot(d));
		struct timespec t0;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		r = report(o, d, want_pprof ? &w : NULL, exe);
		if (collect_dump_view(d))
			report_go(d, o->verbose);
		if (o->verbose && collect_dump_view(d)) {
			struct sym_memo_stats ms = collect_dump_memo_stats(d);
			fprintf(stderr, "pprofc: unwound, symbolized and written in %.1f ms\n", ms_since(&t0));
			fprintf(stderr, "pprofc: %llu stacks unwound, %llu more proven the same "
				"as one of them (unwind memo)\n",
				(unsigned long long)ms.misses, (unsigned long long)ms.hits);
		}
	}
	if (want_pprof)
		cli_output_abort(&w.out);       /* not written (harmless if committed) */
	/* Threads that had not stopped by the deadline are detached as they
	 * stop, for up to another deadline; the kernel lets go of any left
	 * when pprofc exits. */
	size_t left = d ? collect_dump_release(d, (uint64_t)o->stop_timeout_ms * 1000000u) : 0;
	if (left && o->verbose)
		fprintf(stderr, "pprofc: %zu threads had still not stopped; they are let go as pprofc exits\n",
			left);
	collect_dump_free(d);
	return r;
}

int cli_threads_profile(pid_t tgid, const char *output, enum cli_format format)
{
	struct options o = { .debug = 2, .stack_size = 512 * 1024, .stop_timeout_ms = 500,
			     .pprof = output, .pprof_numbered = 1, .pprof_format = format };
	return dump(&o, tgid);
}

/* ---- several processes --------------------------------------------------- */

/* The text or JSON of every dump taken (NULL entries: processes gone). */
static int write_dumps(const struct options *o, struct collect_dump **d, size_t n)
{
	const struct pp_dump **v = calloc(n ? n : 1, sizeof *v);
	size_t nv = 0;
	struct cli_output out;
	if (!v || cli_output_open(&out, o->output)) {
		free(v);
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		if (d[i])
			v[nv++] = collect_dump_view(d[i]);
	int r = 0;
	if (o->json)
		r = pp_write_json_processes(out.f, v, nv);
	for (size_t i = 0; !o->json && i < nv && !r; i++) {
		if (i)
			fputc('\n', out.f);
		r = pp_write_process_header(out.f, v[i]) ||
		    (o->debug == 1 ? pp_write_debug1(out.f, v[i]) : pp_write_debug2(out.f, v[i]));
	}
	free(v);
	if (r) {
		cli_output_failed(&out, "the dump");
		return -1;
	}
	return cli_output_commit(&out);
}

/* One threads/count profile of every dump, labelled pid and process. */
static int write_threads_profiles(const struct options *o, struct cli_saved *w, struct collect_dump **d,
				  const pid_t *pids, size_t n)
{
	struct pp_profile *all = NULL;
	int r = 0;
	for (size_t i = 0; i < n && !r; i++) {
		struct collect_stacks c;
		struct collect_error err;
		if (!d[i])
			continue;
		if (collect_dump_profile(d[i], "threads", &c, &err)) {
			cli_error("%s", err.msg);
			r = -1;
		} else {
			const struct pp_dump *v = collect_dump_view(d[i]);
			const char *name = v->n && v->threads[0].tid == pids[i] ? v->threads[0].name : "?";
			struct pp_label who[2] = { { "pid", NULL, pids[i], NULL }, { "process", name, 0, NULL } };
			struct pp_profile_spec spec = { .sample_types = { { "threads", "count" } },
							.n_sample_types = 1, .period_type = { "threads", "count" },
							.period = 1, .time_nanos = (int64_t)time(NULL) * 1000000000LL };
			if ((!all && !(all = pp_profile_new(&spec))) || pp_profile_merge(all, c.prof, i + 1, who, 2)) {
				cli_error("out of memory");
				r = -1;
			}
		}
		collect_stacks_free(&c);
	}
	if (r == 0 && all) {
		FILE *f = w->out.f;
		r = o->pprof_format == FMT_PROTO ? pp_profile_write(all, 0, f)
		  : o->pprof_format == FMT_TOP   ? pp_report_top(all, NULL, f)
						 : pp_report_folded(all, NULL, f);
		if (r)
			cli_output_failed(&w->out, "the profile");
		else
			r = cli_saved_commit(w);
	}
	pp_profile_free(all);
	return r;
}

/* Snapshots of each process, one after another (each runs again before
 * the next is stopped), then unwound and written.  A named process that
 * cannot be dumped fails the command; a child that ended meanwhile is
 * left out. */
static int take_all(const struct options *o, const struct cli_targets *t, struct collect_dump **d)
{
	struct collect_dump_opts co = { .stack_limit = o->stack_size,
					.stop_timeout_ms = (int)o->stop_timeout_ms, .cancel = &cli_stop,
					.stop_all = o->stop_all, .all_wchan = o->json };
	for (size_t i = 0; i < t->n; i++) {
		struct collect_error err;
		if (cli_stop) {
			cli_error("interrupted; no output written");
			return -1;
		}
		if (!(d[i] = collect_dump_take(t->pids[i], &co, &err)) && i < t->n_named) {
			cli_error("%s; no output written", err.msg);
			return -1;
		}
		if (d[i] && o->verbose) {
			fprintf(stderr, "pprofc: PID %d: ", (int)t->pids[i]);
			report_stop(collect_dump_snapshot(d[i]));
		}
	}
	for (size_t i = 0; i < t->n; i++) {
		struct collect_error err;
		if (d[i] && collect_dump_resolve(d[i], &err)) {
			cli_error("PID %d: %s; no output written", (int)t->pids[i], err.msg);
			return -1;
		}
	}
	return 0;
}

static int dump_many(const struct options *o, const struct cli_targets *t)
{
	struct cli_saved w;
	int want_pprof = o->pprof || o->pprof_numbered;
	char exe[4096];
	collect_name_of(t->pids[0], exe, sizeof exe);
	if (want_pprof && cli_saved_open(&w, o->pprof, o->pprof_numbered && o->pprof_format == FMT_PROTO,
					 exe, "threads"))
		return EXIT_FAIL;
	struct collect_dump **d = calloc(t->n, sizeof *d);
	int r = EXIT_FAIL;
	if (!d)
		cli_error("out of memory");
	else if (take_all(o, t, d) == 0 && (!o->text || write_dumps(o, d, t->n) == 0) &&
		 (!want_pprof || write_threads_profiles(o, &w, d, t->pids, t->n) == 0))
		r = EXIT_OK;
	if (want_pprof)
		cli_output_abort(&w.out);       /* not written (harmless if committed) */
	for (size_t i = 0; d && i < t->n; i++) {
		if (d[i])
			collect_dump_release(d[i], (uint64_t)o->stop_timeout_ms * 1000000u);
		collect_dump_free(d[i]);
	}
	free(d);
	return r;
}

int cli_threads_profile_many(const struct cli_targets *t, const char *output, enum cli_format format)
{
	struct options o = { .debug = 2, .stack_size = 512 * 1024, .stop_timeout_ms = 500,
			     .pprof = output, .pprof_numbered = 1, .pprof_format = format };
	return dump_many(&o, t);
}

int cmd_dump_threads(int argc, char **argv)
{
	struct options o;
	cli_catch_stop_signals();
	int r = parse_options(argc, argv, &o);
	if (r) {
		free(o.pids);
		return r < 0 ? EXIT_OK : r;
	}
	if (o.n_pids > 1 || o.children) {
		struct cli_targets t;
		/* dump: each thread's tracer is checked by the snapshot */
		r = cli_targets_resolve(&t, o.pids, o.n_pids, o.children, 1);
		if (r == EXIT_OK)
			r = dump_many(&o, &t);
		cli_targets_free(&t);
		free(o.pids);
		return r;
	}
	free(o.pids);
	struct attach_error err;
	pid_t tgid;
	/* Each thread's tracer is checked by the snapshot, which reads its
	 * status anyway. */
	if (attach_check_process(o.pid, &tgid, &err)) {
		cli_error("%s", err.msg);
		return EXIT_FAIL;
	}
	return dump(&o, tgid);
}
