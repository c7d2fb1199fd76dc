/* profile.c — what `pprofc attach` and `pprofc run` share: their options,
 * and taking a CPU profile of a process into a pprof file.
 *
 * Reads top to bottom as the work happens:
 *   1. check the target, open its symbolizer and warm it up (so the first
 *      samples are not slow), list its executable mappings;
 *   2. run the sampler (attach/sampler.h): at each tick it stops only the
 *      running threads, copies registers and stacks, resumes them, then
 *      hands each copy to on_sample(), which unwinds, symbolizes and adds
 *      the stack to the profile (pprofout/profile.h);
 *   3. write the profile (gzip'ed protobuf, `top` or `folded`) and a
 *      one-line summary that compares the CPU time the samples account for
 *      with the kernel's own accounting.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../attach/proc.h"
#include "../attach/sampler.h"
#include "../attach/snapshot.h"
#include "../attach/wait.h"
#include "../pprofout/profile.h"
#include "../pprofout/report.h"
#include "../symbolize/sym.h"
#include "cli.h"

static const char attach_help[] =
	"usage: pprofc attach [options] PID\n"
	"\n"
	"Profile the running process PID and write a pprof profile, as Go's\n"
	"net/http/pprof would: open it with `go tool pprof -http=:8080 FILE`.\n"
	"Only threads running on a CPU are stopped, for a fraction of a\n"
	"millisecond per sample; threads asleep in a system call are not touched.\n"
	"\n"
	"options:\n"
	"      --profile=NAME    cpu (default); wall: every thread, running or not,\n"
	"                        labelled with its wait state; block: where threads\n"
	"                        block and for how long; mutex: the stacks of the\n"
	"                        threads holding contended mutexes, weighted by the\n"
	"                        waiters' delay; threads: one snapshot of thread\n"
	"                        counts by stack (Go's goroutine profile)\n"
	"      --seconds=N       how long to sample (default 30); Ctrl-C ends early\n"
	"      --hz=N            samples per second per running thread (default 100)\n"
	"      --tid=T1,T2...    sample only these threads\n"
	"  -o, --output=FILE     write here (\"-\": stdout); default: $PPROF_TMPDIR or\n"
	"                        $HOME/pprof, pprof.<exe>.samples.cpu.NNN.pb.gz\n"
	"      --format=FORMAT   proto (default), top (what go tool pprof -top shows)\n"
	"                        or folded (collapsed stacks for flame graphs)\n"
	"      --stack-size=SIZE stack bytes copied per sample (default 64K)\n"
	"      --force-stop      for comparison only: stop every thread at every\n"
	"                        tick, blocked or not, as plain ptrace samplers do;\n"
	"                        calls such as epoll_wait then fail with EINTR in\n"
	"                        the target\n"
	"  -v, --verbose         more detail in the summary\n"
	"  -h, --help            show this help\n";

static const char run_help[] =
	"usage: pprofc run [options] -- COMMAND [ARGS...]\n"
	"\n"
	"Start COMMAND (with this environment), profile it and the threads it\n"
	"creates until it exits (or --seconds pass), write the profile, and exit\n"
	"with COMMAND's own exit status.\n"
	"\n"
	"options: --profile=cpu, --seconds=N (default: until COMMAND exits), --hz=N,\n"
	"-o FILE, --format=proto|top|folded, --stack-size=SIZE, --force-stop, -v, -h:\n"
	"as for `pprofc attach`.\n";

static int parse_tids(const char *s, struct cli_profile_options *o)
{
	char *copy = strdup(s), *save = NULL;
	for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		pid_t tid;
		pid_t *v = realloc(o->tids, (o->n_tids + 1) * sizeof *v);
		if (!v || cli_parse_pid(tok, &tid)) {
			free(v ? v : o->tids);
			o->tids = NULL;
			free(copy);
			return -1;
		}
		o->tids = v;
		o->tids[o->n_tids++] = tid;
	}
	free(copy);
	return o->n_tids ? 0 : -1;
}

int cli_profile_parse(int argc, char **argv, int run, struct cli_profile_options *o)
{
	static const struct option longopts[] = {
		{ "profile", required_argument, NULL, 'p' },
		{ "seconds", required_argument, NULL, 's' },
		{ "hz", required_argument, NULL, 'z' },
		{ "tid", required_argument, NULL, 't' },
		{ "output", required_argument, NULL, 'o' },
		{ "format", required_argument, NULL, 'f' },
		{ "stack-size", required_argument, NULL, 'k' },
		{ "force-stop", no_argument, NULL, 'F' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *cmd = run ? "run" : "attach";
	char *end;
	int c;
	*o = (struct cli_profile_options){ .seconds = run ? 0 : 30, .hz = 100, .stack_size = 64 * 1024 };
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "o:vh", longopts, NULL)) != -1) {
		switch (c) {
		case 'p':
			if (strcmp(optarg, "threads") == 0 && !run)
				o->threads = 1;
			else if (strcmp(optarg, "wall") == 0)
				o->wall = 1;
			else if (strcmp(optarg, "block") == 0)
				o->block = 1;
			else if (strcmp(optarg, "mutex") == 0)
				o->mutex = 1;
			else if (strcmp(optarg, "cpu") != 0)
				return cli_usage_error(cmd, "--profile takes cpu, wall, block, mutex%s, not '%s'",
						       run ? "" : " or threads", optarg);
			break;
		case 's':
			o->seconds = strtod(optarg, &end);
			if (*end || end == optarg || !(o->seconds > 0 && o->seconds <= 86400))
				return cli_usage_error(cmd, "--seconds takes a duration in seconds, not '%s'", optarg);
			break;
		case 'z':
			if (cli_parse_int(optarg, 1, 10000, &o->hz))
				return cli_usage_error(cmd, "--hz takes 1 to 10000, not '%s'", optarg);
			break;
		case 't':
			if (parse_tids(optarg, o))
				return cli_usage_error(cmd, "--tid takes thread IDs like 1234,1240, not '%s'", optarg);
			break;
		case 'o':
			o->output = optarg;
			break;
		case 'f':
			if (strcmp(optarg, "proto") == 0)
				o->format = FMT_PROTO;
			else if (strcmp(optarg, "top") == 0)
				o->format = FMT_TOP;
			else if (strcmp(optarg, "folded") == 0)
				o->format = FMT_FOLDED;
			else
				return cli_usage_error(cmd, "--format takes proto, top or folded, not '%s'", optarg);
			break;
		case 'k':
			if (cli_parse_size(optarg, &o->stack_size) || o->stack_size < 4096)
				return cli_usage_error(cmd, "--stack-size takes a size like 64K, not '%s'", optarg);
			break;
		case 'F':
			o->force_stop = 1;
			break;
		case 'v':
			o->verbose = 1;
			break;
		case 'h':
			fputs(run ? run_help : attach_help, stdout);
			return -1;
		default:
			return cli_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (run) {
		/* getopt stops at "--"; what follows is the command. */
		if (o->n_tids)
			return cli_usage_error(cmd, "--tid makes no sense for a command not started yet");
		if (optind >= argc)
			return cli_usage_error(cmd, "missing COMMAND (pprofc run [options] -- COMMAND [ARGS...])");
		o->command = argv + optind;
		return 0;
	}
	if (optind + 1 != argc)
		return cli_usage_error(cmd, optind == argc ? "missing PID" : "too many arguments");
	if (cli_parse_pid(argv[optind], &o->pid))
		return cli_usage_error(cmd, "'%s' is not a process ID", argv[optind]);
	return 0;
}

/* ---- building the profile from samples --------------------------------- */

/* Off-CPU modes: a thread's last sample, repeated while it does not run. */
struct last_sample {
	pid_t tid;
	uint64_t *locs;
	size_t n;
	char state[48];
	char comm[64];
	uint64_t futex;                 /* mutex wait: the mutex */
	int64_t pending[2];             /* wall, block: values of repeats not yet
					 * added to the profile (one add per run
					 * of repeats, not one per tick) */
};

/* Mutex mode: this tick's waiters, charged to holders at the tick's end. */
struct waiter {
	uint64_t futex;
	int64_t contentions, delay;
};

enum mode { M_CPU, M_WALL, M_BLOCK, M_MUTEX };

struct profiler {
	struct cli_stacks stacks;
	enum mode mode;
	struct waiter *waiters;
	size_t nwaiters, capwaiters;
	struct last_sample *last;       /* hash by tid */
	size_t nlast;
	uint64_t sampled_ns;            /* the samples' CPU weights, summed */
	uint64_t unwind_failures;
	int tty;
	double seconds;
};

static struct last_sample *last_for(struct profiler *p, pid_t tid)
{
	if (!p->nlast) {
		p->nlast = 4096;
		if (!(p->last = calloc(p->nlast, sizeof *p->last)))
			return p->nlast = 0, NULL;
	}
	size_t j = ((size_t)tid * 2654435761u) & (p->nlast - 1);
	for (size_t k = 0; k < p->nlast; k++, j = (j + 1) & (p->nlast - 1))
		if (p->last[j].tid == tid || p->last[j].tid == 0) {
			p->last[j].tid = tid;
			return &p->last[j];
		}
	return NULL;                    /* over 4096 threads: no repeats */
}

/* The wait state of a thread sampled without stopping it, for the label. */
static void state_label(const struct attach_sample *s, const struct sym_stack *st, char *buf,
			size_t len)
{
	struct attach_wait w;
	if (s->state == 'R') {
		snprintf(buf, len, "running");
		return;
	}
	cli_wait_of(s->state, &s->sc, st, &w);
	attach_reason_text(&w, buf, len);
}

/* Block and mutex: one blocking episode counts once (contentions); its
 * delay is observed tick by tick (the time since the thread's previous
 * sample, which counts skipped ticks too).  The first time a thread is seen blocked,
 * the wait so far counts too (its scheduler clock, DESIGN.md). */
static void delay_of(const struct attach_sample *s, int first, int64_t *contentions,
		     int64_t *delay)
{
	*contentions = s->repeat ? 0 : 1;
	*delay = (int64_t)s->weight_ns;         /* since it was last seen */
	if (!s->repeat && s->blocked_ms >= 0) {
		int64_t seen = (int64_t)(s->blocked_ms * 1e6);
		*delay = first || seen < *delay ? seen : *delay;
	}
}

/* Adds a thread's accumulated repeats to the profile. */
static void flush_pending(struct profiler *p, struct last_sample *last)
{
	if (!last->pending[0] && !last->pending[1])
		return;
	struct pp_label labels[3] = { { "thread", last->comm, 0, NULL },
				      { "tid", NULL, last->tid, NULL },
				      { "state", last->state, 0, NULL } };
	pp_profile_add(p->stacks.prof, last->locs, last->n, last->pending, labels, 3);
	last->pending[0] = last->pending[1] = 0;
}

static void flush_all(struct profiler *p)
{
	for (size_t i = 0; i < p->nlast; i++)
		if (p->last[i].tid && p->last[i].locs)
			flush_pending(p, &p->last[i]);
}

/* Wall and block samples accumulate on the thread's last sample while its
 * stack stays the same, and reach the profile when it changes (the sum is
 * the same: the profile merges samples with equal stacks and labels). */
static void charge(struct profiler *p, const struct attach_sample *s, struct last_sample *last,
		   int first)
{
	int64_t values[2] = { 1, (int64_t)s->weight_ns };
	if (p->mode != M_WALL) {
		if (strcmp(last->state, "running") == 0)
			return;         /* not blocked: nothing to count */
		delay_of(s, first, &values[0], &values[1]);
	}
	if (p->mode == M_WALL || p->mode == M_BLOCK) {
		last->pending[0] += values[0];
		last->pending[1] += values[1];
		p->sampled_ns += (uint64_t)values[1];
	} else if (strcmp(last->state, "mutex wait") == 0 && last->futex) {
		if (p->nwaiters == p->capwaiters) {
			size_t cap = p->capwaiters ? p->capwaiters * 2 : 16;
			struct waiter *w = realloc(p->waiters, cap * sizeof *w);
			if (!w)
				return;
			p->waiters = w;
			p->capwaiters = cap;
		}
		p->waiters[p->nwaiters++] = (struct waiter){ last->futex, values[0], values[1] };
	}
}

/* Mutex: each waiter's delay goes to the stack of the thread holding the
 * mutex, as sampled in the same tick (Go's mutex profile semantics). */
static void on_tick_end(void *arg)
{
	struct profiler *p = arg;
	for (size_t i = 0; i < p->nwaiters; i++) {
		pid_t owner = attach_mutex_owner(p->stacks.pid, p->waiters[i].futex);
		struct last_sample *h = owner ? last_for(p, owner) : NULL;
		if (!h || !h->locs)
			continue;       /* holder unknown or not sampled yet */
		int64_t values[2] = { p->waiters[i].contentions, p->waiters[i].delay };
		struct pp_label labels[2] = { { "thread", h->comm, 0, NULL }, { "tid", NULL, owner, NULL } };
		pp_profile_add(p->stacks.prof, h->locs, h->n, values, labels, 2);
		p->sampled_ns += (uint64_t)values[1];
	}
	p->nwaiters = 0;
}

/* Unwinds a sample (counting failures and incomplete stacks); 0 with a
 * stack to free, -1 with nothing. */
static int unwind(struct profiler *p, const struct attach_sample *s, struct sym_stack *st)
{
	struct sym_snapshot snap = { s->tid, s->regs, s->stack_addr, s->stack, s->stack_len,
				     s->partial, attach_read_mem };
	if (sym_unwind(p->stacks.sym, &snap, st) || st->n == 0) {
		p->unwind_failures++;
		sym_stack_free(st);
		return -1;
	}
	if (!st->complete)
		p->unwind_failures++;
	return 0;
}

static void on_sample(void *arg, const struct attach_sample *s)
{
	struct profiler *p = arg;
	struct sym_stack st;
	if (p->mode == M_CPU) {
		if (unwind(p, s, &st))
			return;
		int64_t values[2] = { 1, (int64_t)s->weight_ns };
		struct pp_label labels[2] = { { "thread", s->comm, 0, NULL }, { "tid", NULL, s->tid, NULL } };
		cli_stacks_add(&p->stacks, &st, values, labels, 2);
		p->sampled_ns += s->weight_ns;
		sym_stack_free(&st);
		return;
	}
	struct last_sample *last = last_for(p, s->tid);
	if (!last)
		return;
	int first = last->locs == NULL;
	if (s->repeat) {
		if (!first)
			charge(p, s, last, 0);
		return;
	}
	if (unwind(p, s, &st))
		return;
	uint64_t locs[1024];
	size_t n = cli_stacks_locations(&p->stacks, &st, locs, 1024);
	uint64_t *copy = malloc((n ? n : 1) * sizeof *copy);
	if (copy) {
		memcpy(copy, locs, n * sizeof *locs);
		if (!first)
			flush_pending(p, last);
		free(last->locs);
		last->locs = copy;
		last->n = n;
		state_label(s, &st, last->state, sizeof last->state);
		snprintf(last->comm, sizeof last->comm, "%s", s->comm);
		last->futex = s->sc.kind == ATTACH_SC_IN && s->state != 'R' ? s->sc.args[0] : 0;
		charge(p, s, last, first);
	}
	sym_stack_free(&st);
}

static void on_progress(void *arg, const struct attach_sampler_stats *st)
{
	struct profiler *p = arg;
	if (!p->tty)
		return;
	if (p->seconds > 0)
		fprintf(stderr, "\rpprofc: %.0f/%.0f s, %" PRIu64 " samples ",
			(double)st->duration_ns / 1e9, p->seconds, st->samples);
	else
		fprintf(stderr, "\rpprofc: %.0f s, %" PRIu64 " samples ", (double)st->duration_ns / 1e9,
			st->samples);
	fflush(stderr);
}

/* ---- output and summary ------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

static void summary(const struct cli_profile_options *o, const struct profiler *p, struct attach_sampler_stats *st)
{
	if (p->tty)
		fputs("\r\033[K", stderr);
	uint64_t med = 0, p99 = 0;
	if (st->n_stop_ns) {
		qsort(st->stop_ns, st->n_stop_ns, sizeof *st->stop_ns, cmp_u64);
		med = st->stop_ns[st->n_stop_ns / 2];
		p99 = st->stop_ns[(st->n_stop_ns * 99) / 100 < st->n_stop_ns ? (st->n_stop_ns * 99) / 100
									  : st->n_stop_ns - 1];
	}
	double sampled = (double)p->sampled_ns / 1e9;
	uint64_t lost = st->lost_not_stopped + st->lost_exited;
	if (p->mode == M_BLOCK || p->mode == M_MUTEX)
		fprintf(stderr, "pprofc: %" PRIu64 " samples of %" PRIu64 " threads in %.2f s: %.2f s of "
			"delay recorded; %" PRIu64 " lost", st->samples, st->threads_seen,
			(double)st->duration_ns / 1e9, sampled, lost);
	else if (p->mode == M_WALL)
		fprintf(stderr, "pprofc: %" PRIu64 " samples of %" PRIu64 " threads in %.2f s: %.2f s of "
			"thread time by the samples, of which CPU %.2f s by the kernel; %" PRIu64 " lost",
			st->samples, st->threads_seen, (double)st->duration_ns / 1e9, sampled,
			(double)st->cpu_ns / 1e9, lost);
	else
		fprintf(stderr, "pprofc: %" PRIu64 " samples of %" PRIu64 " threads in %.2f s: %.2f s of CPU "
			"by the samples, %.2f s by the kernel; %" PRIu64 " lost",
			st->samples, st->threads_seen, (double)st->duration_ns / 1e9, sampled,
			(double)st->cpu_ns / 1e9, lost);
	if (lost)
		fprintf(stderr, " (%" PRIu64 " did not stop in time or ran while read, %" PRIu64 " exited)",
			st->lost_not_stopped, st->lost_exited);
	fprintf(stderr, "; stopped per sample: median %.0f us, p99 %.0f us\n", (double)med / 1e3,
		(double)p99 / 1e3);
	if (st->skipped_ticks)
		fprintf(stderr, "pprofc: fell behind: %" PRIu64 " of %" PRIu64 " ticks skipped while "
			"pprofc was busy (too many running threads for --hz %ld, or loading debug info)\n",
			st->skipped_ticks, st->ticks + st->skipped_ticks, o->hz);
	if (o->verbose && p->unwind_failures)
		fprintf(stderr, "pprofc: %" PRIu64 " stacks could not be unwound to their root\n",
			p->unwind_failures);
}

static int write_profile(const struct cli_profile_options *o, struct profiler *p,
			 struct cli_saved *w, uint64_t duration_ns)
{
	FILE *f = w->out.f;
	struct pp_profile *prof = p->stacks.prof;
	int r = o->format == FMT_PROTO ? pp_profile_write(prof, (int64_t)duration_ns, f)
	      : o->format == FMT_TOP   ? pp_report_top(prof, f)
				       : pp_report_folded(prof, f);
	if (r) {
		cli_output_failed(&w->out, "the profile");
		return -1;
	}
	return cli_saved_commit(w);
}

static void report_end(const struct attach_sampler_stats *st, pid_t pid)
{
	if (st->target_exited) {
		int s = st->exit_status;
		if (WIFEXITED(s))
			cli_error("PID %d exited with status %d during the profile; writing what was collected",
				  (int)pid, WEXITSTATUS(s));
		else
			cli_error("PID %d was killed by signal %d (%s) during the profile; writing what was collected",
				  (int)pid, WTERMSIG(s), strsignal(WTERMSIG(s)));
	} else if (st->target_execed) {
		cli_error("PID %d ran a new program (exec) during the profile; writing what was collected",
			  (int)pid);
	}
}

int cli_profile_take(const struct cli_profile_options *o, pid_t pid, int already_seized,
		     int *exit_status)
{
	struct profiler p = { .seconds = o->seconds, .tty = isatty(2),
			      .mode = o->wall ? M_WALL : o->block ? M_BLOCK : o->mutex ? M_MUTEX : M_CPU };
	char exe[4096], err[256];
	cli_exe_of(pid, exe, sizeof exe);
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	/* FORMATS.md §1: Go's names where Go has the profile. */
	int offcpu = p.mode == M_BLOCK || p.mode == M_MUTEX;
	const char *kind = p.mode == M_WALL ? "wall" : "cpu";
	struct pp_profile_spec spec = {
		.sample_types = { { offcpu ? "contentions" : "samples", "count" },
				  { offcpu ? "delay" : kind, "nanoseconds" } },
		.n_sample_types = 2,
		.period_type = { offcpu ? "contentions" : kind, offcpu ? "count" : "nanoseconds" },
		.period = offcpu ? 1 : 1000000000LL / o->hz,
		.time_nanos = (int64_t)now.tv_sec * 1000000000LL + now.tv_nsec,
	};
	static const char *const file_kind[] = { "samples.cpu", "samples.wall", "contentions.delay",
						 "contentions.delay" };
	struct cli_saved w;
	if (cli_saved_open(&w, o->output, o->format == FMT_PROTO, exe, file_kind[p.mode]))
		return EXIT_FAIL;
	struct sym_session *sym = sym_open(pid, err, sizeof err);
	if (!sym || cli_stacks_init(&p.stacks, pid, sym, &spec)) {
		cli_error("cannot prepare PID %d for profiling: %s", (int)pid, sym ? "out of memory" : err);
		cli_output_abort(&w.out);
		cli_stacks_free(&p.stacks);
		sym_close(sym);
		return EXIT_FAIL;
	}
	sym_prepare(sym);

	struct attach_sampler_opts so = {
		.hz = (int)o->hz, .duration_ns = (uint64_t)(o->seconds * 1e9),
		.stack_limit = o->stack_size, .only = o->tids, .n_only = o->n_tids,
		.cancel = &cli_stop, .on_sample = on_sample, .on_progress = on_progress, .arg = &p,
		.already_seized = already_seized, .wall = p.mode != M_CPU,
		.force_stop = o->force_stop,
		.on_tick_end = p.mode == M_MUTEX ? on_tick_end : NULL,
	};
	struct attach_sampler_stats st;
	struct attach_error aerr;
	int rc = EXIT_FAIL;
	if (attach_sample_run(pid, &so, &st, &aerr)) {
		cli_error("%s", aerr.msg);
		cli_output_abort(&w.out);
	} else {
		if (!already_seized)
			report_end(&st, pid);
		if (exit_status)
			*exit_status = st.target_exited ? st.exit_status : -1;
		flush_all(&p);
		summary(o, &p, &st);
		rc = write_profile(o, &p, &w, st.duration_ns) ? EXIT_FAIL : EXIT_OK;
	}
	attach_sampler_stats_free(&st);
	for (size_t i = 0; i < p.nlast; i++)
		free(p.last[i].locs);
	free(p.last);
	free(p.waiters);
	cli_stacks_free(&p.stacks);
	sym_close(sym);
	return rc;
}
