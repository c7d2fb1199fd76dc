/* serve.c — `pprofc serve PID` and `pprofc run --serve ADDR -- COMMAND`:
 * Go's /debug/pprof/ endpoint for a process.  Parses the options, says
 * where it listens, waits for a signal or the target's exit, and says
 * why it ended; the server itself is serve/'s (serve.h).
 */
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "../serve/serve.h"
#include "cli.h"

static const char help[] =
	"usage: pprofc serve [options] PID\n"
	"\n"
	"Serve Go's /debug/pprof/ endpoint for the running process PID, as if it\n"
	"imported net/http/pprof:\n"
	"\n"
	"    go tool pprof http://127.0.0.1:6060/debug/pprof/profile?seconds=30\n"
	"    curl http://127.0.0.1:6060/debug/pprof/goroutine?debug=2\n"
	"\n"
	"profile (CPU), goroutine (debug=0, 1, 2: the process's threads), block and\n"
	"mutex (cumulative from the first request for each; seconds=N: the\n"
	"difference over N s), heap and allocs (heap?seconds=N: the allocations of\n"
	"those seconds), cmdline, symbol; debug=1 gives Go's legacy texts.  The\n"
	"process is never stopped between requests.  SIGINT or SIGTERM end it\n"
	"(requests in flight get what was collected); it also ends when the\n"
	"process exits, unless --linger.\n"
	"\n"
	"options:\n"
	"      --listen=ADDR         HOST:PORT, [IPV6]:PORT or unix:PATH (created 0600;\n"
	"                            default 127.0.0.1:6060; a port of 0 picks one)\n"
	"      --basic-auth-file=F   require HTTP basic auth: F holds USER:PASSWORD\n"
	"      --token-file=F        require 'Authorization: Bearer TOKEN': F holds it\n"
	"      --max-connections=N   open connections at once (default 16)\n"
	"      --max-profiles=N      collections of the process at once (default 4)\n"
	"      --max-seconds=N       longest seconds=N accepted (default 600)\n"
	"      --hz=N                CPU profiles' samples per second (default 100)\n"
	"      --offcpu-hz=N         ticks per second of the cumulative block and mutex\n"
	"                            profiles (default 10; 0: not collected)\n"
	"      --offcpu-keep=S       block, mutex and threadcreate stop after S seconds\n"
	"                            without a request for them (default 600; 0: never)\n"
	"      --linger              when the process exits, keep serving the last\n"
	"                            cumulative profiles (block, mutex) until SIGINT\n"
	"                            or SIGTERM; the others answer 410 Gone\n"
	"      --engine=ENGINE       CPU profiles: auto (default), perf or ptrace\n"
	"      --heap-rate=BYTES     heap windows: mean bytes between samples (512K)\n"
	"      --max-hit-rate=N      heap windows: close the probes above N calls/s\n"
	"  -v, --verbose             one line per request on stderr\n"
	"  -h, --help                show this help\n"
	"\n"
	"Anyone who can connect can read the process's stacks, thread names and\n"
	"memory layout: a non-loopback address is refused unless spelled out, and\n"
	"then warned about.\n";

struct options {
	struct serve_opts so;
	int verbose;
	pid_t pid;
};

static int parse_count(const char *opt, const char *arg, long min, long max, unsigned *v)
{
	long x;
	if (cli_parse_int(arg, min, max, &x))
		return cli_usage_error("serve", "%s takes %ld to %ld, not '%s'", opt, min, max, arg);
	*v = (unsigned)x;
	return 0;
}

static int parse_engine(const char *arg, enum collect_engine *e)
{
	if (strcmp(arg, "auto") == 0)
		*e = COLLECT_ENGINE_AUTO;
	else if (strcmp(arg, "perf") == 0)
		*e = COLLECT_ENGINE_PERF;
	else if (strcmp(arg, "ptrace") == 0)
		*e = COLLECT_ENGINE_PTRACE;
	else
		return cli_usage_error("serve", "--engine takes auto, perf or ptrace, not '%s'", arg);
	return 0;
}

static int parse_one(int c, const char *arg, struct options *o)
{
	unsigned v = 0;
	int r = 0;
	switch (c) {
	case 'l': o->so.listen = arg; break;
	case 'b': o->so.basic_auth_file = arg; break;
	case 't': o->so.token_file = arg; break;
	case 'c': r = parse_count("--max-connections", arg, 1, 10000, &o->so.max_connections); break;
	case 'p': r = parse_count("--max-profiles", arg, 1, 1000, &o->so.max_profiles); break;
	case 's': r = parse_count("--max-seconds", arg, 1, 86400, &o->so.max_seconds); break;
	case 'z': r = parse_count("--hz", arg, 1, 10000, &v); o->so.hz = (int)v; break;
	case 'o': r = parse_count("--offcpu-hz", arg, 0, 1000, &v); o->so.offcpu_hz = (int)v; break;
	case 'k': r = parse_count("--offcpu-keep", arg, 0, 31536000, &o->so.offcpu_keep); break;
	case 'L': o->so.linger = 1; break;
	case 'e': r = parse_engine(arg, &o->so.engine); break;
	case 'r':
		if (cli_parse_size(arg, &o->so.heap_rate))
			r = cli_usage_error("serve", "--heap-rate takes a number of bytes, like 512K, not '%s'", arg);
		break;
	case 'M': r = parse_count("--max-hit-rate", arg, 0, INT_MAX, &v); o->so.max_hit_rate = v; break;
	case 'v': o->verbose = 1; break;
	default: r = EXIT_USAGE; break;
	}
	return r;
}

static int parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "basic-auth-file", required_argument, NULL, 'b' },
		{ "token-file", required_argument, NULL, 't' },
		{ "max-connections", required_argument, NULL, 'c' },
		{ "max-profiles", required_argument, NULL, 'p' },
		{ "max-seconds", required_argument, NULL, 's' },
		{ "hz", required_argument, NULL, 'z' },
		{ "offcpu-hz", required_argument, NULL, 'o' },
		{ "offcpu-keep", required_argument, NULL, 'k' },
		{ "linger", no_argument, NULL, 'L' },
		{ "engine", required_argument, NULL, 'e' },
		{ "heap-rate", required_argument, NULL, 'r' },
		{ "max-hit-rate", required_argument, NULL, 'M' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	memset(o, 0, sizeof *o);
	serve_default_opts(&o->so);
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "vh", longopts, NULL)) != -1) {
		if (c == 'h') {
			fputs(help, stdout);
			return -1;
		}
		if (c == '?')
			return cli_usage_error("serve", "unknown option '%s'", argv[optind - 1]);
		int r = parse_one(c, optarg, o);
		if (r)
			return r;
	}
	if (optind + 1 != argc)
		return cli_usage_error("serve", optind == argc ? "missing PID" : "too many arguments");
	if (cli_parse_pid(argv[optind], &o->pid))
		return cli_usage_error("serve", "'%s' is not a process ID", argv[optind]);
	return 0;
}

/* serve_opts.on_request, with -v. */
static void log_request(void *arg, const char *method, const char *url, unsigned status, size_t bytes,
			double seconds)
{
	(void)arg;
	fprintf(stderr, "pprofc: %s %s: %u, %zu bytes in %.3f s\n", method, url, status, bytes, seconds);
}

/* The lines saying where, what, and the warning for a public address. */
static void announce(struct serve_server *s, const struct serve_opts *so)
{
	char name[256];
	pid_t pid = serve_target(s);
	collect_name_of(pid, name, sizeof name);
	if (!serve_is_private(s))
		cli_error("warning: %s is not a loopback address: anyone who can reach it can read process "
			  "%d's stacks, thread names and memory layout%s", so->listen, (int)pid,
			  so->basic_auth_file || so->token_file ? "" : " (no --basic-auth-file or --token-file)");
	if (serve_cumulative_missing(s)[0])
		cli_error("%s", serve_cumulative_missing(s));
	cli_error("serving process %d (%s) on %s%s%s", (int)pid, name, serve_url(s),
		  serve_cumulative(s)[0] ? "; cumulative: " : "", serve_cumulative(s));
}

/* Opens, binds and starts the server for a target (pid, or argv for run
 * --serve); NULL after saying why (*rc set). */
static struct serve_server *start(const struct serve_opts *so, pid_t pid, char **argv, int *rc)
{
	struct serve_error err;
	int status = -1;
	struct serve_server *s = serve_open(so, &err);
	*rc = EXIT_FAIL;
	if (s && (argv ? serve_target_command(s, argv, &err, &status) : serve_target_pid(s, pid, &err)) == 0 &&
	    serve_start(s, &err) == 0) {
		announce(s, so);
		return s;
	}
	if (err.msg[0])
		cli_error("%s", err.msg);
	if (err.usage)
		*rc = EXIT_USAGE;
	else if (status >= 0)
		*rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	serve_close(s);
	return NULL;
}

int cmd_serve(int argc, char **argv)
{
	struct options o;
	int r = parse_options(argc, argv, &o);
	if (r)
		return r < 0 ? EXIT_OK : r;
	if (o.verbose)
		o.so.on_request = log_request;
	cli_catch_stop_signals();
	signal(SIGPIPE, SIG_IGN);       /* a client gone mid-answer is no reason to die */
	struct serve_server *s = start(&o.so, o.pid, NULL, &r);
	if (!s)
		return r;
	enum serve_end why = serve_wait(s, &cli_stop);
	pid_t pid = serve_target(s);
	if (why == SERVE_END_TARGET_EXITED && o.so.linger) {
		cli_error("process %d exited; serving its last profiles until SIGINT or SIGTERM (--linger)", (int)pid);
		serve_wait(s, &cli_stop);
		cli_error("stopped (signal %d)", (int)cli_stop);
	} else if (why == SERVE_END_TARGET_EXITED)
		cli_error("process %d exited; stopped serving", (int)pid);
	else
		cli_error("stopped (signal %d); process %d was left running, untouched", (int)cli_stop, (int)pid);
	serve_close(s);
	return EXIT_OK;
}

int cli_serve_command(const struct cli_profile_options *po, const char *listen, const char *basic_auth_file,
		      const char *token_file)
{
	struct serve_opts so;
	int r;
	serve_default_opts(&so);
	so.listen = listen;
	so.basic_auth_file = basic_auth_file;
	so.token_file = token_file;
	so.hz = (int)po->hz;
	so.engine = po->engine;
	so.heap_rate = po->heap_rate;
	so.linger = po->linger;
	if (po->verbose)
		so.on_request = log_request;
	signal(SIGPIPE, SIG_IGN);
	struct serve_server *s = start(&so, 0, po->command, &r);
	if (!s)
		return r;
	enum serve_end why = serve_wait(s, &cli_stop);
	if (why == SERVE_END_TARGET_EXITED && so.linger) {
		cli_error("%s exited; serving its last profiles until SIGINT or SIGTERM (--linger)", po->command[0]);
		why = serve_wait(s, &cli_stop);
	}
	/* As run does: a signal for pprofc goes on to the command (a Ctrl-C,
	 * which it got from the terminal already, is not sent twice). */
	int sig = cli_stop;
	if (why == SERVE_END_STOPPED && sig && !cli_stop_from_terminal)
		serve_signal_command(s, sig);
	cli_stop = 0;
	int status = serve_wait_command(s, &cli_stop);
	cli_error("%s exited; stopped serving", po->command[0]);
	serve_close(s);
	if (status < 0)
		return EXIT_FAIL;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
