/* dump_threads.c — `pprofc dump-threads PID`: what every thread is doing.
 *
 * Reads top to bottom as the work happens:
 *   1. check the target (exists, not a zombie or kernel thread, not traced);
 *   2. take one snapshot of every thread (attach/: the only part during
 *      which the target is stopped);
 *   3. with the target running again, unwind and symbolize each stack
 *      (symbolize/), classify each wait and find what it waits on
 *      (attach/wait.h), and look for mutex deadlocks;
 *   4. print debug=2, debug=1 or JSON (pprofout/).
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "../attach/snapshot.h"
#include "../attach/wait.h"
#include "../pprofout/dump.h"
#include "../pprofout/report.h"
#include "../symbolize/sym.h"
#include "cli.h"

static const char help[] =
	"usage: pprofc dump-threads [options] PID\n"
	"\n"
	"Print what every thread of process PID is doing: its name, what it waits\n"
	"on (mutex and holder, file descriptor, ...), for how long, and its stack\n"
	"with inlined frames and source lines.  The process is stopped only while\n"
	"registers and stacks are copied (milliseconds), then runs on.\n"
	"\n"
	"options:\n"
	"      --debug=N         2: one block per thread (default); 1: identical\n"
	"                        stacks grouped with a count\n"
	"      --format=FORMAT   text (default) or json\n"
	"  -o, --output=FILE     write to FILE (atomically) instead of stdout\n"
	"      --pprof=FILE      also write the snapshot as a pprof profile of thread\n"
	"                        counts by stack (like Go's goroutine profile)\n"
	"      --stack-size=SIZE most stack bytes copied per thread (default 512K)\n"
	"      --stop-timeout=MS how long to wait for threads to stop (default 500)\n"
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
};

static int parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "debug", required_argument, NULL, 'd' },
		{ "format", required_argument, NULL, 'f' },
		{ "output", required_argument, NULL, 'o' },
		{ "pprof", required_argument, NULL, 'p' },
		{ "stop-all", no_argument, NULL, 'S' },
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
		case 'h':
			fputs(help, stdout);
			return -1;
		default:
			return cli_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind + 1 != argc)
		return cli_usage_error(cmd, optind == argc ? "missing PID" : "too many arguments");
	if (cli_parse_pid(argv[optind], &o->pid))
		return cli_usage_error(cmd, "'%s' is not a process ID", argv[optind]);
	return 0;
}

/* ---- turning a snapshot into the dump ---------------------------------- */

/* Everything one thread's entry needs, owned here. */
struct entry {
	struct attach_thread *t;
	struct attach_wait wait;
	struct sym_stack stack;
	struct pp_frame *frames;
	char reason[48];
	char detail[320];
	char fd_target[512];
	char fd_desc[256];
	char stack_error[256];
};

static void copy_frames(struct entry *e)
{
	e->frames = calloc(e->stack.n ? e->stack.n : 1, sizeof *e->frames);
	if (!e->frames)
		return;
	for (size_t i = 0; i < e->stack.n; i++) {
		const struct sym_frame *s = &e->stack.frames[i];
		e->frames[i] = (struct pp_frame){
			.pc = s->pc, .function = s->function, .file = s->file, .line = s->line,
			.inlined = s->inlined, .has_offset = s->has_offset,
			.func_offset = s->func_offset, .module = s->module,
			.module_offset = s->module_offset,
		};
	}
}

static void unwind(struct sym_session *sym, struct sym_memo *memo, const char *sym_err,
		   struct entry *e)
{
	struct attach_thread *t = e->t;
	if (!t->taken) {
		snprintf(e->stack_error, sizeof e->stack_error, "%s",
			 t->not_taken[0] ? t->not_taken : "the thread was not stopped");
		return;
	}
	if (!sym) {
		snprintf(e->stack_error, sizeof e->stack_error, "%s", sym_err);
		return;
	}
	struct sym_snapshot snap = { t->tid, &t->regs, t->stack_addr, t->stack, t->stack_len, 0,
				     attach_read_mem };
	if (sym_unwind_memo(sym, memo, &snap, &e->stack)) {
		snprintf(e->stack_error, sizeof e->stack_error, "out of memory while unwinding");
		return;
	}
	if (!e->stack.complete)
		snprintf(e->stack_error, sizeof e->stack_error, "%s", e->stack.stop_reason);
	copy_frames(e);
}

/* collect_unwinders_run()'s job i: entry i, with that thread's session. */
static void unwind_one(struct sym_session *sym, struct sym_memo *memo, size_t i, void *entries)
{
	unwind(sym, memo, "", &((struct entry *)entries)[i]);
}

/* poll(2): the descriptors are in the target's memory. */
static void describe_poll(pid_t pid, struct entry *e)
{
	struct { int fd; short events, revents; } p[8];
	unsigned n = e->wait.poll_nfds < 8 ? e->wait.poll_nfds : 8;
	if (attach_read_mem(pid, e->wait.poll_fds, p, n * sizeof p[0]) != (ssize_t)(n * sizeof p[0]))
		return;
	if (e->wait.poll_nfds == 1) {
		e->wait.fd = p[0].fd;
		return;
	}
	size_t len = (size_t)snprintf(e->detail, sizeof e->detail, "poll on fds");
	for (unsigned i = 0; i < n && len < sizeof e->detail; i++)
		len += (size_t)snprintf(e->detail + len, sizeof e->detail - len, "%s %d", i ? "," : "", p[i].fd);
	if (e->wait.poll_nfds > n && len < sizeof e->detail)
		snprintf(e->detail + len, sizeof e->detail - len, ", ...");
}

static void classify(pid_t pid, struct entry *e, struct attach_fdcache *fc)
{
	struct attach_thread *t = e->t;
	collect_wait_of(t->has_stat ? t->stat.state : '?', &t->sc, &e->stack, &e->wait);
	if (e->wait.reason == ATTACH_R_MUTEX)
		e->wait.owner = attach_mutex_owner(pid, e->wait.futex);
	attach_reason_text(&e->wait, e->reason, sizeof e->reason);

	if (e->wait.poll_nfds)
		describe_poll(pid, e);
	if (e->wait.reason == ATTACH_R_MUTEX && e->wait.owner)
		snprintf(e->detail, sizeof e->detail, "0x%" PRIx64 " held by thread %d", e->wait.futex,
			 (int)e->wait.owner);
	else if (e->wait.reason == ATTACH_R_MUTEX || e->wait.reason == ATTACH_R_FUTEX ||
		 e->wait.reason == ATTACH_R_COND)
		snprintf(e->detail, sizeof e->detail, "0x%" PRIx64, e->wait.futex);
	else if (e->wait.reason == ATTACH_R_IO && e->wait.fd >= 0) {
		attach_describe_fd(fc, e->wait.fd, e->fd_target, sizeof e->fd_target, e->fd_desc,
				   sizeof e->fd_desc);
		snprintf(e->detail, sizeof e->detail, "fd %d: %s", e->wait.fd, e->fd_desc);
	} else if (e->wait.reason == ATTACH_R_DISK && t->wchan[0])
		snprintf(e->detail, sizeof e->detail, "%s", t->wchan);
}

static void fill_thread(const struct attach_snapshot *s, struct entry *e, struct pp_thread *p)
{
	struct attach_thread *t = e->t;
	memset(p, 0, sizeof *p);
	p->tid = t->tid;
	p->name = t->has_stat ? t->stat.comm : "";
	p->state = t->has_stat ? t->stat.state : '?';
	p->reason = e->reason;
	p->detail = e->detail[0] ? e->detail : NULL;
	/* How long it has not run: the scheduler clock now (our own
	 * exec_start) minus the thread's.  Unknown for a running thread. */
	p->wait_seconds = -1;
	int cpu = t->has_stat ? t->stat.processor : -1;
	double now = cpu >= 0 && (size_t)cpu < s->ncpu && s->now_cpu[cpu] >= 0 ? s->now_cpu[cpu] : s->now_ms;
	if ((s->has_now || now > 0) && t->has_sched && e->wait.reason != ATTACH_R_RUNNING) {
		/* Against the clock of the CPU it last ran on (they drift). */
		double d = (now - t->sched.exec_start_ms) / 1000.0;
		/* Each CPU keeps its own scheduler clock: a thread that ran a
		 * moment ago on another CPU can look a little in the future. */
		if (d > -1.0)
			p->wait_seconds = d > 0 ? d : 0;
	}
	p->syscall = e->wait.syscall[0] ? e->wait.syscall : NULL;
	p->wchan = t->wchan[0] ? t->wchan : NULL;
	if (e->wait.reason == ATTACH_R_MUTEX)
		p->blocked = (struct pp_blocked){ .kind = PP_BLOCK_MUTEX, .address = e->wait.futex,
						  .owner = e->wait.owner };
	else if (e->wait.futex)
		p->blocked = (struct pp_blocked){ .kind = PP_BLOCK_FUTEX, .address = e->wait.futex };
	else if (e->wait.reason == ATTACH_R_IO && e->wait.fd >= 0)
		p->blocked = (struct pp_blocked){ .kind = PP_BLOCK_FD, .fd = e->wait.fd,
						  .target = e->fd_target, .description = e->fd_desc };
	p->frames = e->frames;
	p->nframes = e->frames ? e->stack.n : 0;
	p->stack_taken = t->taken;
	p->complete = t->taken && e->stack.complete && e->frames;
	p->stack_error = e->stack_error[0] ? e->stack_error : NULL;
}

/* The main thread (arg: its tid) first, then by tid. */
static int cmp_thread(const void *a, const void *b, void *arg)
{
	const struct pp_thread *x = a, *y = b;
	pid_t main_tid = *(const pid_t *)arg;
	if ((x->tid == main_tid) != (y->tid == main_tid))
		return x->tid == main_tid ? -1 : 1;
	return (x->tid > y->tid) - (x->tid < y->tid);
}

/* argv of the target, split from /proc/PID/cmdline. */
static const char **split_cmdline(const struct attach_snapshot *s, size_t *argc)
{
	size_t n = 0;
	for (size_t i = 0; i < s->cmdline_len; i++)
		n += s->cmdline[i] == 0;
	const char **argv = calloc(n + 1, sizeof *argv);
	*argc = 0;
	if (!argv || !s->cmdline)
		return argv;
	for (size_t i = 0; i < s->cmdline_len; i += strlen(s->cmdline + i) + 1)
		if (*argc < n)
			argv[(*argc)++] = s->cmdline + i;
	return argv;
}

static int write_dump(const struct options *o, const struct pp_dump *d)
{
	struct cli_output out;
	if (cli_output_open(&out, o->output))
		return -1;
	int r = o->json ? pp_write_json(out.f, d) : o->debug == 1 ? pp_write_debug1(out.f, d)
							       : pp_write_debug2(out.f, d);
	if (r) {
		cli_output_failed(&out, "the dump");
		return -1;
	}
	return cli_output_commit(&out);
}

/* One sample per thread: threads/count, labelled with its name, tid and
 * wait reason, so `go tool pprof -tagfocus=state=IO` splits by reason. */
static int add_thread_samples(struct collect_stacks *c, const struct entry *e, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char tid[32];
		int64_t one = 1;
		snprintf(tid, sizeof tid, "%d", (int)e[i].t->tid);
		struct pp_label labels[3] = {
			{ "thread", e[i].t->has_stat ? e[i].t->stat.comm : "?", 0, NULL },
			{ "tid", NULL, e[i].t->tid, NULL },
			{ "state", e[i].reason, 0, NULL },
		};
		if (collect_stacks_add(c, &e[i].stack, &one, labels, 3))
			return -1;
	}
	return 0;
}

static int write_threads_profile(const struct options *o, struct cli_saved *w, struct collect_stacks *c)
{
	FILE *f = w->out.f;
	int r = o->pprof_format == FMT_PROTO ? pp_profile_write(c->prof, 0, f)
	      : o->pprof_format == FMT_TOP   ? pp_report_top(c->prof, NULL, f)
					     : pp_report_folded(c->prof, NULL, f);
	if (r) {
		cli_output_failed(&w->out, "the profile");
		return -1;
	}
	return cli_saved_commit(w);
}

/* Unwinds every stack over u's sessions, then classifies and writes. */
static int report(const struct options *o, struct attach_snapshot *s, struct cli_saved *w,
		  struct collect_unwinders *u)
{
	char sym_err[256] = "";
	struct sym_session *sym = collect_unwinders_sym(u, sym_err, sizeof sym_err);
	struct entry *e = calloc(s->n ? s->n : 1, sizeof *e);
	struct pp_thread *pt = calloc(s->n ? s->n : 1, sizeof *pt);
	pid_t *tids = calloc(s->n ? s->n : 1, sizeof *tids);
	pid_t *waits = calloc(s->n ? s->n : 1, sizeof *waits);
	pid_t *cycles = calloc(s->n ? s->n : 1, sizeof *cycles);
	size_t *lens = calloc(s->n ? s->n : 1, sizeof *lens);
	struct attach_fdcache fc = { .pid = s->pid };
	int rc = EXIT_FAIL;
	if (!e || !pt || !tids || !waits || !cycles || !lens) {
		cli_error("out of memory");
		goto out;
	}
	for (size_t i = 0; i < s->n; i++)
		e[i].t = &s->threads[i];
	if (sym)
		collect_unwinders_run(u, s->n, unwind_one, e, &cli_stop);
	for (size_t i = 0; i < s->n && !cli_stop; i++) {
		if (!sym)
			unwind(NULL, NULL, sym_err, &e[i]);
		classify(s->pid, &e[i], &fc);
		fill_thread(s, &e[i], &pt[i]);
		tids[i] = pt[i].tid;
		waits[i] = e[i].wait.reason == ATTACH_R_MUTEX ? e[i].wait.owner : 0;
	}
	if (cli_stop) {
		cli_error("interrupted: the target was already resumed and detached; no output written");
		goto out;
	}
	size_t ncycles = attach_find_deadlocks(tids, waits, s->n, cycles, lens, s->n);
	pid_t main_tid = s->pid;
	qsort_r(pt, s->n, sizeof *pt, cmp_thread, &main_tid);
	size_t argc;
	const char **argv = split_cmdline(s, &argc);
	struct pp_dump d = {
		.pid = s->pid, .exe = s->exe, .argv = argv, .argc = argc, .time = time(NULL),
		.threads = pt, .n = s->n, .cycles = cycles, .cycle_lens = lens, .ncycles = ncycles,
	};
	rc = o->text && write_dump(o, &d) ? EXIT_FAIL : EXIT_OK;
	free(argv);
	if (rc == EXIT_OK && w) {
		struct timespec now;
		clock_gettime(CLOCK_REALTIME, &now);
		struct pp_profile_spec spec = {
			.sample_types = { { "threads", "count" } }, .n_sample_types = 1,
			.period_type = { "threads", "count" }, .period = 1,
			.time_nanos = (int64_t)now.tv_sec * 1000000000LL + now.tv_nsec,
		};
		struct collect_stacks c;
		if (!sym || collect_stacks_init(&c, s->pid, sym, &spec) || add_thread_samples(&c, e, s->n) ||
		    write_threads_profile(o, w, &c)) {
			if (!sym)
				cli_error("cannot write the profile: %s", sym_err);
			rc = EXIT_FAIL;
		}
		collect_stacks_free(&c);
	}
out:
	if (w)
		cli_output_abort(&w->out);      /* not written (harmless if committed) */
	for (size_t i = 0; e && i < s->n; i++) {
		sym_stack_free(&e[i].stack);
		free(e[i].frames);
	}
	free(e);
	free(pt);
	free(tids);
	free(waits);
	free(cycles);
	free(lens);
	attach_fdcache_free(&fc);
	return rc;
}

static double ms_since(const struct timespec *t0)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) * 1e3 + (double)(t.tv_nsec - t0->tv_nsec) / 1e6;
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
	struct attach_error err;
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
	struct attach_opts ao = { .stack_limit = o->stack_size,
				  .stop_timeout_ms = (int)o->stop_timeout_ms, .cancel = &cli_stop,
				  .stop_all = o->stop_all, .all_wchan = o->json };
	struct attach_snapshot snap;
	int r = EXIT_FAIL;
	/* The symbolizer loads its modules meanwhile: none of that touches
	 * the target, and it overlaps the snapshot's /proc reads. */
	struct collect_unwinders *u = collect_unwinders_open(tgid, attach_count_threads(tgid));
	if (attach_snapshot_take(tgid, &ao, &snap, &err)) {
		cli_error("%s", err.msg);
	} else {
		if (o->verbose)
			report_stop(&snap);
		if (snap.cancelled) {
			cli_error("interrupted: every thread was resumed and detached; no output written");
		} else {
			struct timespec t0;
			clock_gettime(CLOCK_MONOTONIC, &t0);
			r = report(o, &snap, want_pprof ? &w : NULL, u);
			want_pprof = 0;         /* report() committed or aborted it */
			if (o->verbose) {
				struct sym_memo_stats ms = collect_unwinders_memo_stats(u);
				fprintf(stderr, "pprofc: unwound, symbolized and written in %.1f ms\n",
					ms_since(&t0));
				fprintf(stderr, "pprofc: %llu stacks unwound, %llu more proven the same "
					"as one of them (unwind memo)\n",
					(unsigned long long)ms.misses, (unsigned long long)ms.hits);
			}
		}
	}
	if (want_pprof)
		cli_output_abort(&w.out);
	collect_unwinders_close(u);
	/* Threads that had not stopped by the deadline are detached as they
	 * stop, for up to another deadline; the kernel lets go of any left
	 * when pprofc exits. */
	size_t left = attach_snapshot_release(&snap, (uint64_t)o->stop_timeout_ms * 1000000u);
	if (left && o->verbose)
		fprintf(stderr, "pprofc: %zu threads had still not stopped; they are let go as pprofc exits\n",
			left);
	attach_snapshot_free(&snap);
	return r;
}

int cli_threads_profile(pid_t tgid, const char *output, enum cli_format format)
{
	struct options o = { .debug = 2, .stack_size = 512 * 1024, .stop_timeout_ms = 500,
			     .pprof = output, .pprof_numbered = 1, .pprof_format = format };
	return dump(&o, tgid);
}

int cmd_dump_threads(int argc, char **argv)
{
	struct options o;
	cli_catch_stop_signals();
	int r = parse_options(argc, argv, &o);
	if (r)
		return r < 0 ? EXIT_OK : r;
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
