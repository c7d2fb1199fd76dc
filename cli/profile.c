/* profile.c — what `pprofc attach` and `pprofc run` share: their options,
 * the progress line, the summary and writing the profile.  The collection
 * itself is collect/'s (collect.h).
 *
 * Reads top to bottom as the work happens:
 *   1. parse the options;
 *   2. open the output first, so a bad path fails before anything starts;
 *   3. collect (collect_open or collect_spawn, then collect_run);
 *   4. a summary that compares the CPU time the samples account for with
 *      the kernel's own accounting and says which engine ran, then the
 *      profile (gzip'ed protobuf, `top` or `folded`).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../collect/collect.h"
#include "../pprofout/profile.h"
#include "../pprofout/report.h"
#include "cli.h"

static const char attach_help[] =
	"usage: pprofc attach [options] PID [PID...]\n"
	"\n"
	"Profile the running process PID and write a pprof profile, as Go's\n"
	"net/http/pprof would: open it with `go tool pprof -http=:8080 FILE`.\n"
	"With several PIDs (or --children), one profile of them all over the\n"
	"same window, each sample labelled pid and process: see one with\n"
	"`go tool pprof -tagfocus=pid=1234 FILE`.\n"
	"CPU profiles are sampled by the kernel (perf_event): nothing is stopped.\n"
	"Where perf_event_open is refused, or for the wall, block and mutex\n"
	"profiles, threads running on a CPU are stopped for a fraction of a\n"
	"millisecond per sample (ptrace); threads asleep in a system call are\n"
	"never touched.\n"
	"\n"
	"options:\n"
	"      --profile=NAME    cpu (default); wall: every thread, running or not,\n"
	"                        labelled with its wait state; block: where threads\n"
	"                        block and for how long; mutex: the stacks of the\n"
	"                        threads holding contended mutexes, weighted by the\n"
	"                        waiters' delay; threads: one snapshot of thread\n"
	"                        counts by stack (like Go's goroutine profile; for\n"
	"                        a Go program, its goroutines: Go's goroutine\n"
	"                        profile, pprof.<exe>.goroutine.NNN.pb.gz); heap and\n"
	"                        allocs: the allocations made during the window\n"
	"                        (uprobes on the allocator the process calls: each\n"
	"                        call traps, ~9 us here; inuse counts only the\n"
	"                        window's blocks not freed in it); trace: a timeline\n"
	"                        of every thread (running with its stacks, each wait\n"
	"                        with its reason, mutex holder or fd; created,\n"
	"                        exited) as trace-event JSON for ui.perfetto.dev or\n"
	"                        chrome://tracing, default pprof.<exe>.trace.NNN.json;\n"
	"                        threadcreate: each thread created in the window\n"
	"                        under the stack that created it, and the threads\n"
	"                        alive at the start under their start routine (Go's\n"
	"                        threadcreate)\n"
	"      --heap-rate=BYTES heap, allocs: mean bytes between sampled\n"
	"                        allocations (default 512K; 1: every one)\n"
	"      --max-hit-rate=N  heap, allocs: close the probes above N calls per\n"
	"                        second (default 100000; 0: no cap)\n"
	"      --seconds=N       how long to sample (default 30); Ctrl-C ends early\n"
	"      --hz=N            samples per second per running thread (default 100)\n"
	"      --tid=T1,T2...    sample only these threads (one PID only)\n"
	"      --children        also the PIDs' descendants (processes they started,\n"
	"                        theirs...) as they are at the start; not heap, allocs\n"
	"  -o, --output=FILE     write here (\"-\": stdout); default: $PPROF_TMPDIR or\n"
	"                        $HOME/pprof, pprof.<exe>.samples.cpu.NNN.pb.gz\n"
	"      --format=FORMAT   proto (default), top (what go tool pprof -top shows)\n"
	"                        or folded (collapsed stacks for flame graphs)\n"
	"      --engine=ENGINE   auto (default: perf where the kernel allows it,\n"
	"                        else ptrace, saying why), perf or ptrace\n"
	"      --stack-size=SIZE stack bytes copied per sample (default 32K with\n"
	"                        perf, at most 65528; 64K with ptrace)\n"
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
	"If the output cannot be created, COMMAND is not started.  SIGINT,\n"
	"SIGTERM or SIGHUP to pprofc end the profile, write it, pass the signal\n"
	"on to COMMAND and wait for it, as perf record does.\n"
	"\n"
	"options: --profile=cpu|wall|block|mutex|trace|threadcreate, --seconds=N\n"
	"(default: until COMMAND exits), --hz=N, --engine=auto|perf|ptrace, -o FILE,\n"
	"--format=proto|top|folded, --stack-size=SIZE, --force-stop, -v, -h:\n"
	"as for `pprofc attach`.\n"
	"      --children        also profile every process COMMAND starts (and\n"
	"                        theirs), found as they start (within 20 ms; one\n"
	"                        that ends sooner is missed) and followed through\n"
	"                        exec, all in one profile labelled pid and process;\n"
	"                        the profile ends when COMMAND exits\n"
	"\n"
	"heap and allocs profiles (Go's: inuse and alloc objects and space):\n"
	"      --profile=heap    live allocations (go tool pprof shows inuse_space)\n"
	"      --profile=allocs  the same data, shown as alloc_space\n"
	"      --heap-rate=BYTES mean bytes between sampled allocations (default\n"
	"                        512K, as Go; 1: every allocation)\n"
	"      --interval=SECS   also a numbered snapshot every SECS\n"
	"      --stack-size=SIZE stack bytes copied per sampled allocation\n"
	"                        (default 32K, at most 64K)\n"
	"      --children        also record every process COMMAND starts (programs\n"
	"                        it runs, children it forks), all in one profile\n"
	"                        labelled pid and process\n"
	"  kill -USR1 <pprofc pid>  a snapshot now (numbered, or replacing -o FILE)\n"
	"COMMAND gets the sampler libpprofc_heap.so in LD_PRELOAD (found through\n"
	"$PPROFC_HEAP_LIB, next to pprofc in a build tree, or where installed);\n"
	"statically linked commands are refused.  Without --children the sampler\n"
	"removes itself from the environment of the programs COMMAND runs, and\n"
	"records nothing in the children it forks.  The profile is written when\n"
	"COMMAND exits, or after --seconds (COMMAND then runs on, not recorded;\n"
	"with --children so do the processes it started that are still running).\n"
	"\n"
	"      --serve=ADDR      instead of writing a profile, serve Go's /debug/pprof/\n"
	"                        for COMMAND on ADDR (as pprofc serve does, with heap\n"
	"                        and allocs cumulative from its start), until it exits\n"
	"      --basic-auth-file=F, --token-file=F   with --serve: as for pprofc serve\n"
	"      --linger          with --serve: when COMMAND exits, keep serving its final\n"
	"                        heap and allocs until SIGINT or SIGTERM\n";

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

/* attach's PIDs, the arguments left after the options. */
static int parse_pids(const char *cmd, int argc, char **argv, struct cli_profile_options *o, int heap)
{
	int r = cli_parse_pids(cmd, argc, argv, &o->pids, &o->n_pids);
	if (r)
		return r;
	o->pid = o->pids[0];
	if (o->n_pids > 1 && heap)
		return cli_usage_error(cmd, "heap and allocs take one PID (for several processes: "
				       "pprofc run --children)");
	if (o->n_pids > 1 && (o->kind == COLLECT_TRACE || o->kind == COLLECT_THREADCREATE))
		return cli_usage_error(cmd, "--profile %s takes one process: one PID, without --children",
				       o->kind == COLLECT_TRACE ? "trace" : "threadcreate");
	if ((o->n_pids > 1 || o->children) && o->n_tids)
		return cli_usage_error(cmd, "--tid names threads of one process: it goes with one PID "
				       "and without --children");
	return 0;
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
		{ "engine", required_argument, NULL, 'e' },
		{ "heap-rate", required_argument, NULL, 'r' },
		{ "interval", required_argument, NULL, 'i' },
		{ "max-hit-rate", required_argument, NULL, 'M' },
		{ "children", no_argument, NULL, 'C' },
		{ "serve", required_argument, NULL, 'S' },
		{ "basic-auth-file", required_argument, NULL, 'B' },
		{ "token-file", required_argument, NULL, 'T' },
		{ "linger", no_argument, NULL, 'L' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *cmd = run ? "run" : "attach", *heap_only = NULL;
	char *end;
	int c;
	*o = (struct cli_profile_options){ .seconds = run ? 0 : 30, .hz = 100, .heap_rate = 512 * 1024,
					   .max_hit_rate = CLI_MAX_HIT_RATE };
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "o:vh", longopts, NULL)) != -1) {
		switch (c) {
		case 'p':
			if (strcmp(optarg, "threads") == 0 && !run)
				o->threads = 1;
			else if (strcmp(optarg, "wall") == 0)
				o->kind = COLLECT_WALL;
			else if (strcmp(optarg, "block") == 0)
				o->kind = COLLECT_BLOCK;
			else if (strcmp(optarg, "mutex") == 0)
				o->kind = COLLECT_MUTEX;
			else if (strcmp(optarg, "cpu") == 0)
				o->kind = COLLECT_CPU;
			else if (strcmp(optarg, "heap") == 0)
				o->kind = COLLECT_HEAP;
			else if (strcmp(optarg, "allocs") == 0)
				o->kind = COLLECT_ALLOCS;
			else if (strcmp(optarg, "trace") == 0)
				o->kind = COLLECT_TRACE;
			else if (strcmp(optarg, "threadcreate") == 0)
				o->kind = COLLECT_THREADCREATE;
			else
				return cli_usage_error(cmd, "--profile takes cpu, wall, block, mutex, heap, "
						       "allocs, trace, threadcreate%s, not '%s'",
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
			else if (strcmp(optarg, "json") == 0)
				o->format = FMT_JSON;
			else
				return cli_usage_error(cmd, "--format takes proto, top or folded (json: the "
						       "trace's, its only one), not '%s'", optarg);
			break;
		case 'k':
			if (cli_parse_size(optarg, &o->stack_size) || o->stack_size < 4096 ||
			    o->stack_size > 64 * 1024 * 1024)
				return cli_usage_error(cmd, "--stack-size takes a size from 4K to 64M, like 64K, not '%s'",
						       optarg);
			break;
		case 'F':
			o->force_stop = 1;
			break;
		case 'e':
			if (strcmp(optarg, "auto") == 0)
				o->engine = COLLECT_ENGINE_AUTO;
			else if (strcmp(optarg, "perf") == 0)
				o->engine = COLLECT_ENGINE_PERF;
			else if (strcmp(optarg, "ptrace") == 0)
				o->engine = COLLECT_ENGINE_PTRACE;
			else
				return cli_usage_error(cmd, "--engine takes auto, perf or ptrace, not '%s'", optarg);
			break;
		case 'r':
			heap_only = "--heap-rate";
			if (cli_parse_size(optarg, &o->heap_rate))
				return cli_usage_error(cmd, "--heap-rate takes a number of bytes (1: every "
						       "allocation), like 512K, not '%s'", optarg);
			break;
		case 'i':
			heap_only = "--interval";
			o->interval = strtod(optarg, &end);
			if (*end || end == optarg || !(o->interval > 0 && o->interval <= 86400))
				return cli_usage_error(cmd, "--interval takes a duration in seconds, not '%s'", optarg);
			break;
		case 'M':
			heap_only = "--max-hit-rate";
			o->max_hit_rate = strtoull(optarg, &end, 10);
			if (run || *end || end == optarg || optarg[0] == '-')
				return cli_usage_error(cmd, run ? "--max-hit-rate goes with attach" :
						       "--max-hit-rate takes probe hits per second (0: no "
						       "cap), not '%s'", optarg);
			break;
		case 'C':
			o->children = 1;
			break;
		case 'S':
		case 'B':
		case 'T':
			if (!run)
				return cli_usage_error(cmd, "--serve, --basic-auth-file and --token-file go with "
						       "run (for a running process: pprofc serve PID)");
			*(c == 'S' ? &o->serve : c == 'B' ? &o->basic_auth_file : &o->token_file) = optarg;
			break;
		case 'L':
			if (!run)
				return cli_usage_error(cmd, "--linger goes with run --serve (for a running "
						       "process: pprofc serve --linger PID)");
			o->linger = 1;
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
	if (o->kind == COLLECT_TRACE && o->format != FMT_PROTO && o->format != FMT_JSON)
		return cli_usage_error(cmd, "--profile trace writes a timeline as JSON (trace events), "
				       "not pprof: --format does not apply");
	if (o->kind != COLLECT_TRACE && o->format == FMT_JSON)
		return cli_usage_error(cmd, "--format json goes with --profile trace");
	if (o->kind == COLLECT_TRACE) {
		o->format = FMT_JSON;
		if (o->force_stop)
			return cli_usage_error(cmd, "--force-stop goes with the pprof profiles, not trace");
	}
	if (o->output && strcmp(o->output, "-") == 0 && o->format == FMT_PROTO && isatty(STDOUT_FILENO))
		return cli_usage_error(cmd, "-o -: stdout is a terminal and a pprof profile is binary: "
				       "redirect stdout to a file, or use --format top");
	if (o->engine == COLLECT_ENGINE_PERF && o->stack_size > 65528)
		return cli_usage_error(cmd, "--stack-size: the perf engine copies at most 65528 bytes per sample");
	if (o->force_stop && o->kind == COLLECT_THREADCREATE)
		return cli_usage_error(cmd, "--force-stop goes with the sampled profiles, not threadcreate");
	if (o->force_stop && o->engine == COLLECT_ENGINE_PERF)
		return cli_usage_error(cmd, "--force-stop stops threads: it goes with --engine ptrace, not perf");
	int heap = o->kind == COLLECT_HEAP || o->kind == COLLECT_ALLOCS;
	if (heap_only && !heap)
		return cli_usage_error(cmd, "%s goes with --profile heap or allocs", heap_only);
	/* heap of attach: uprobes in one process (collect/heap_attach.c) */
	if (!run && o->children && heap)
		return cli_usage_error(cmd, "--children goes with cpu, wall, block, mutex or threads "
				       "(for heap and allocs of several processes: pprofc run --children)");
	/* One timeline, one creation watch: per process (collect/group.c
	 * merges profiles, which these are not, or not yet). */
	if (o->children && (o->kind == COLLECT_TRACE || o->kind == COLLECT_THREADCREATE))
		return cli_usage_error(cmd, "--profile %s takes one process: one PID, without --children",
				       o->kind == COLLECT_TRACE ? "trace" : "threadcreate");
	if (o->serve && o->children && !heap)
		return cli_usage_error(cmd, "--serve with --children serves heap and allocs only: add "
				       "--profile heap");
	if (!run && o->interval)
		return cli_usage_error(cmd, "--interval goes with run: attach writes one profile, at the "
				       "window's end");
	if (heap && o->stack_size > 65536)
		return cli_usage_error(cmd, "--stack-size: heap profiles copy at most 65536 bytes per sample");
	if ((o->basic_auth_file || o->token_file || o->linger) && !o->serve)
		return cli_usage_error(cmd, "--basic-auth-file, --token-file and --linger go with --serve");
	if (o->serve && (o->output || o->interval || o->seconds))
		return cli_usage_error(cmd, "--serve answers HTTP requests: -o, --interval and --seconds "
				       "do not apply (ask /debug/pprof/...?seconds=N)");
	if (run) {
		/* getopt stops at "--"; what follows is the command. */
		if (o->n_tids)
			return cli_usage_error(cmd, "--tid makes no sense for a command not started yet");
		if (optind >= argc)
			return cli_usage_error(cmd, "missing COMMAND (pprofc run [options] -- COMMAND [ARGS...])");
		o->command = argv + optind;
		return 0;
	}
	return parse_pids(cmd, argc, argv, o, heap);
}

/* ---- progress, summary, output ------------------------------------------ */

static void on_progress(void *arg, double elapsed, uint64_t samples)
{
	const struct cli_progress *p = arg;
	if (!p->tty)
		return;
	if (p->seconds > 0)
		fprintf(stderr, "\rpprofc: %.0f/%.0f s, %" PRIu64 " samples ", elapsed, p->seconds, samples);
	else
		fprintf(stderr, "\rpprofc: %.0f s, %" PRIu64 " samples ", elapsed, samples);
	fflush(stderr);
}

void cli_collect_opts(const struct cli_profile_options *o, struct cli_progress *pr,
		      struct collect_opts *co)
{
	/* Snapshots are heap's (SIGUSR1); the other kinds' loop would poll
	 * more often for nothing. */
	int heap = o->kind == COLLECT_HEAP || o->kind == COLLECT_ALLOCS;
	*pr = (struct cli_progress){ o->seconds, isatty(2), o };
	*co = (struct collect_opts){
		.kind = o->kind, .engine = o->engine, .hz = (int)o->hz, .seconds = o->seconds,
		.stack_size = o->stack_size, .tids = o->tids, .n_tids = o->n_tids,
		.force_stop = o->force_stop, .cancel = &cli_stop,
		.on_progress = on_progress, .arg = pr,
		.heap_rate = o->heap_rate, .children = o->children, .interval = o->interval,
		.snapshot = heap ? &cli_snapshot : NULL,
		.on_snapshot = cli_heap_snapshot, .max_hit_rate = o->max_hit_rate,
	};
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

/* "engine: perf" or "engine: ptrace, stopped per sample: median, p99". */
static void engine_part(const struct collect_summary *sum)
{
	const struct attach_engine_stats *st = &sum->st;
	if (strcmp(sum->engine, "perf") == 0) {
		fprintf(stderr, "; engine: perf, nothing stopped\n");
		return;
	}
	uint64_t med = 0, p99 = 0;
	size_t n = st->n_stop_ns;
	if (n) {
		qsort(st->stop_ns, n, sizeof *st->stop_ns, cmp_u64);
		med = st->stop_ns[n / 2];
		p99 = st->stop_ns[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1];
	}
	fprintf(stderr, "; engine: ptrace, stopped per sample: median %.0f us, p99 %.0f us\n",
		(double)med / 1e3, (double)p99 / 1e3);
}

/* The end of a sampling summary, whatever the kind: the engine, why not
 * perf, what the kernel would not sample, and ticks pprofc missed. */
static void engine_tail(const struct cli_profile_options *o, const struct collect_summary *sum)
{
	const struct attach_engine_stats *st = &sum->st;
	engine_part(sum);
	if (sum->fallback[0])
		fprintf(stderr, "pprofc: engine: ptrace instead of perf: %s\n", sum->fallback);
	if (st->kernel_excluded || sum->cpu_st.kernel_excluded)
		fprintf(stderr, "pprofc: time in the kernel was not sampled (perf_event_paranoid allows "
			"user-space samples only): system calls are missing from the profile\n");
	if (st->skipped_ticks)
		fprintf(stderr, "pprofc: fell behind: %" PRIu64 " of %" PRIu64 " ticks skipped while "
			"pprofc was busy (too many running threads for --hz %ld, or loading debug info)\n",
			st->skipped_ticks, st->ticks + st->skipped_ticks, o->hz);
}

static void summary(const struct cli_profile_options *o, const struct collect_summary *sum)
{
	const struct attach_engine_stats *st = &sum->st;
	if (isatty(2))
		fputs("\r\033[K", stderr);
	double recorded = (double)sum->recorded_ns / 1e9, secs = (double)st->duration_ns / 1e9;
	/* wall: a running thread without a stack yet is charged to a marker
	 * stack, not lost */
	uint64_t no_stack_lost = o->kind == COLLECT_WALL ? 0 : sum->no_cpu_stack;
	uint64_t lost = st->lost_not_stopped + st->lost_exited + st->lost_records +
			sum->cpu_st.lost_records + no_stack_lost + st->no_user_regs;
	if (o->kind == COLLECT_BLOCK || o->kind == COLLECT_MUTEX)
		fprintf(stderr, "pprofc: %" PRIu64 " samples of %" PRIu64 " threads in %.2f s: %.2f s of "
			"delay recorded; %" PRIu64 " lost", st->samples, st->threads_seen, secs, recorded, lost);
	else if (o->kind == COLLECT_WALL)
		fprintf(stderr, "pprofc: %" PRIu64 " samples of %" PRIu64 " threads in %.2f s: %.2f s of "
			"thread time by the samples, of which CPU %.2f s by the kernel; %" PRIu64 " lost",
			st->samples, st->threads_seen, secs, recorded, (double)st->cpu_ns / 1e9, lost);
	else
		fprintf(stderr, "pprofc: %" PRIu64 " samples of %" PRIu64 " threads in %.2f s: %.2f s of CPU "
			"by the samples, %.2f s by the kernel; %" PRIu64 " lost", st->samples,
			st->threads_seen, secs, recorded, (double)st->cpu_ns / 1e9, lost);
	if (st->lost_records + sum->cpu_st.lost_records)
		fprintf(stderr, " (%" PRIu64 " dropped by the kernel: its buffer was full)",
			st->lost_records + sum->cpu_st.lost_records);
	if (st->no_user_regs)
		fprintf(stderr, " (%" PRIu64 " without user registers)", st->no_user_regs);
	if (no_stack_lost)
		fprintf(stderr, " (%" PRIu64 " of threads running without a CPU sample yet)",
			no_stack_lost);
	if (st->lost_not_stopped + st->lost_exited)
		fprintf(stderr, " (%" PRIu64 " did not stop in time or ran while read, %" PRIu64 " exited)",
			st->lost_not_stopped, st->lost_exited);
	if (st->landed_off_cpu)
		fprintf(stderr, ", %" PRIu64 " landed off-CPU (the stop found the thread in a system "
			"call: dropped)", st->landed_off_cpu);
	if (o->kind == COLLECT_WALL && sum->no_cpu_stack)
		fprintf(stderr, ", %" PRIu64 " samples' CPU time under [on CPU: no stack sampled yet] "
			"(no stack of the thread running taken before)", sum->no_cpu_stack);
	if (sum->holder_unknown)
		fprintf(stderr, ", %" PRIu64 " mutex waits not counted (holder unknown or not "
			"sampled yet)", sum->holder_unknown);
	if (sum->dropped_nomem)
		fprintf(stderr, ", %" PRIu64 " dropped (out of memory)", sum->dropped_nomem);
	engine_tail(o, sum);
	if (sum->cut_short)
		fprintf(stderr, "pprofc: %" PRIu64 " stacks were deeper than the stack copied per sample: "
			"they end with a [stack cut short] frame (raise --stack-size)\n", sum->cut_short);
	if (o->verbose && sum->threads_evicted)
		fprintf(stderr, "pprofc: %" PRIu64 " threads exited during the profile (their samples "
			"added, their state freed)\n", sum->threads_evicted);
	if (o->verbose && sum->unwind_failures)
		fprintf(stderr, "pprofc: %" PRIu64 " stacks could not be unwound to their root\n",
			sum->unwind_failures);
}

/* trace: what the timeline holds and how exact its times are. */
static void trace_summary(const struct cli_profile_options *o, const struct collect_summary *sum)
{
	const struct attach_engine_stats *st = &sum->st;
	if (isatty(2))
		fputs("\r\033[K", stderr);
	fprintf(stderr, "pprofc: trace of %" PRIu64 " threads in %.2f s: %" PRIu64 " slices; switch "
		"times %s", st->threads_seen, (double)st->duration_ns / 1e9, sum->trace_slices,
		sum->trace_switches ? "exact (perf_event context switches)"
				    : "from the ticks (within a tick)");
	if (sum->trace_dropped)
		fprintf(stderr, "; %" PRIu64 " events not kept (the cap was reached: the timeline "
			"ends early for busy threads)", sum->trace_dropped);
	if (sum->dropped_nomem)
		fprintf(stderr, "; %" PRIu64 " dropped (out of memory)", sum->dropped_nomem);
	engine_tail(o, sum);
}

/* threadcreate: what the count is made of. */
static void tc_summary(const struct cli_profile_options *o, const struct collect_summary *sum)
{
	const struct collect_threadcreate_summary *tc = &sum->tc;
	const struct attach_engine_stats *st = &sum->st;
	if (isatty(2))
		fputs("\r\033[K", stderr);
	fprintf(stderr, "pprofc: %" PRIu64 " threads: %" PRIu64 " alive at the start, %" PRIu64
		" created in %.2f s", tc->alive + tc->created + tc->unseen, tc->alive,
		tc->created + tc->unseen, (double)st->duration_ns / 1e9);
	if (tc->unseen)
		fprintf(stderr, " (%" PRIu64 " while the watch began: their creating stacks not seen)",
			tc->unseen);
	if (st->clones_not_threads)
		fprintf(stderr, "; %" PRIu64 " processes forked (not counted)", st->clones_not_threads);
	if (st->clones_failed)
		fprintf(stderr, "; %" PRIu64 " thread creations failed (not counted)", st->clones_failed);
	if (st->lost_records)
		fprintf(stderr, "; %" PRIu64 " events dropped by the kernel (its buffer was full)",
			st->lost_records);
	if (strcmp(sum->engine, "perf") == 0) {
		fprintf(stderr, "; engine: perf, nothing stopped\n");
	} else {
		uint64_t max = 0;
		for (size_t i = 0; i < st->n_stop_ns; i++)
			max = st->stop_ns[i] > max ? st->stop_ns[i] : max;
		fprintf(stderr, "; engine: ptrace, each creator stopped at its clone: at most %.0f us\n",
			(double)max / 1e3);
	}
	if (sum->fallback[0])
		fprintf(stderr, "pprofc: engine: ptrace instead of perf: %s\n", sum->fallback);
	if (tc->alive_no_root)
		fprintf(stderr, "pprofc: %" PRIu64 " threads alive at the start could not be unwound to "
			"their root: counted under a marker\n", tc->alive_no_root);
	if (st->threads_released)
		fprintf(stderr, "pprofc: %" PRIu64 " threads were let go of in a job-control stop: what "
			"they created after was not seen\n", st->threads_released);
	if (sum->cut_short)
		fprintf(stderr, "pprofc: %" PRIu64 " stacks were deeper than the stack copied: they end "
			"with a [stack cut short] frame (raise --stack-size)\n", sum->cut_short);
	if (o->verbose && sum->unwind_failures)
		fprintf(stderr, "pprofc: %" PRIu64 " stacks could not be unwound to their root\n",
			sum->unwind_failures);
	if (o->verbose && tc->alive_and_created)
		fprintf(stderr, "pprofc: %" PRIu64 " threads created while the watch began were read "
			"alive too: counted once, as created\n", tc->alive_and_created);
}

static void report_end(const struct collect_summary *sum, pid_t pid)
{
	if (sum->target_exited) {
		int s = sum->exit_status;
		if (s < 0)
			cli_error("PID %d exited during the profile; writing what was collected", (int)pid);
		else if (WIFEXITED(s))
			cli_error("PID %d exited with status %d during the profile; writing what was collected",
				  (int)pid, WEXITSTATUS(s));
		else
			cli_error("PID %d was killed by signal %d (%s) during the profile; writing what was collected",
				  (int)pid, WTERMSIG(s), strsignal(WTERMSIG(s)));
	} else if (sum->target_execed) {
		cli_error("PID %d ran a new program (exec) during the profile; writing what was collected",
			  (int)pid);
	}
}

/* Said once the window has begun (attach, and run once the command is
 * released): a script (or a test) may make the target act on cue,
 * knowing the trace or the watch sees it. */
void cli_profile_window_starts(enum collect_kind kind, pid_t pid)
{
	if (kind == COLLECT_THREADCREATE)
		fprintf(stderr, "pprofc: watching thread creations of PID %d: the window starts\n", (int)pid);
	else if (kind == COLLECT_TRACE)
		fprintf(stderr, "pprofc: tracing PID %d: the window starts\n", (int)pid);
}

/* Several processes: how many, and what became of them. */
static void report_processes(const struct collect_summary *sum, int run)
{
	fprintf(stderr, "pprofc: %" PRIu64 " process%s in the profile (label pid)", sum->processes,
		sum->processes == 1 ? "" : "es");
	if (sum->processes_exited)
		fprintf(stderr, ", %" PRIu64 " of which exited during it", sum->processes_exited);
	fputc('\n', stderr);
	if (sum->processes_missed)
		fprintf(stderr, "pprofc: %" PRIu64 " processes %s could not be profiled (the first: %s)\n",
			sum->processes_missed, run ? "started by the command" : "of the tree", sum->missed);
	if (!run && sum->target_exited)
		cli_error("every process exited during the profile; writing what was collected");
}

int cli_profile_finish(const struct cli_profile_options *o, struct collect_session *s,
		       struct cli_saved *w, int run)
{
	int several = o->children || o->n_pids > 1;
	collect_run(s);
	const struct collect_summary *sum = collect_summary(s);
	if (!run && !several)
		report_end(sum, collect_pid(s));
	struct pp_profile *prof = collect_profile(s);
	if ((o->kind == COLLECT_HEAP || o->kind == COLLECT_ALLOCS) && run)
		cli_heap_summary(sum, o->command[0], o->children, o->verbose);
	else if (o->kind == COLLECT_HEAP || o->kind == COLLECT_ALLOCS)
		cli_heap_attach_summary(sum);
	else if (o->kind == COLLECT_THREADCREATE)
		tc_summary(o, sum);
	else if (o->kind != COLLECT_TRACE)
		summary(o, sum);
	if (several && o->kind != COLLECT_HEAP && o->kind != COLLECT_ALLOCS)
		report_processes(sum, run);
	if (o->kind == COLLECT_TRACE) {
		int r = collect_trace_write(s, w->out.f);
		trace_summary(o, sum);
		if (r) {
			cli_output_failed(&w->out, "the trace");
			return EXIT_FAIL;
		}
		return cli_saved_commit(w) ? EXIT_FAIL : EXIT_OK;
	}
	return cli_profile_write(o, prof, (int64_t)sum->st.duration_ns, w);
}

int cli_profile_write(const struct cli_profile_options *o, struct pp_profile *prof,
		      int64_t duration_ns, struct cli_saved *w)
{
	int r = !prof ? (errno = ENOMEM, -1)
	      : o->format == FMT_PROTO ? pp_profile_write(prof, duration_ns, w->out.f)
	      : o->format == FMT_TOP   ? pp_report_top(prof, NULL, w->out.f)
				       : pp_report_folded(prof, NULL, w->out.f);
	if (r) {
		cli_output_failed(&w->out, "the profile");
		return EXIT_FAIL;
	}
	return cli_saved_commit(w) ? EXIT_FAIL : EXIT_OK;
}

int cli_profile_take(const struct cli_profile_options *o, pid_t pid)
{
	char exe[4096];
	struct collect_opts co;
	struct collect_error err;
	struct cli_saved w;
	struct cli_progress pr;
	collect_name_of(pid, exe, sizeof exe);
	if (cli_saved_open(&w, o->output, o->format == FMT_PROTO || o->format == FMT_JSON, exe,
			   collect_file_kind(o->kind)))
		return EXIT_FAIL;
	cli_collect_opts(o, &pr, &co);
	struct collect_session *s = collect_open(pid, &co, &err);
	if (!s) {
		cli_error("%s", err.msg);
		cli_output_abort(&w.out);
		return EXIT_FAIL;
	}
	if (o->kind == COLLECT_HEAP || o->kind == COLLECT_ALLOCS)
		cli_heap_attach_ready(collect_summary(s));
	cli_profile_window_starts(o->kind, pid);
	int rc = cli_profile_finish(o, s, &w, 0);
	collect_close(s);
	return rc;
}

int cli_profile_take_many(const struct cli_profile_options *o, const struct cli_targets *t)
{
	char exe[4096];
	struct collect_opts co;
	struct collect_error err;
	struct cli_saved w;
	struct cli_progress pr;
	/* Named after the first process, as go tool pprof would name it
	 * (its main mapping comes first). */
	collect_name_of(t->pids[0], exe, sizeof exe);
	if (cli_saved_open(&w, o->output, o->format == FMT_PROTO, exe, collect_file_kind(o->kind)))
		return EXIT_FAIL;
	cli_collect_opts(o, &pr, &co);
	struct collect_session *s = collect_open_many(t->pids, t->n, t->n_named, &co, &err);
	if (!s) {
		cli_error("%s; nothing was profiled", err.msg);
		cli_output_abort(&w.out);
		return EXIT_FAIL;
	}
	int rc = cli_profile_finish(o, s, &w, 0);
	collect_close(s);
	return rc;
}
