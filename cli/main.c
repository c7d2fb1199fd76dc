/* main.c — pprofc's entry point: finds the subcommand and runs it. */
#include <malloc.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cli.h"
#include "config.h"

static const char usage[] =
	"usage: pprofc <command> [options]\n"
	"\n"
	"Profile and inspect a running Linux process from the outside, with the\n"
	"Go pprof experience.\n"
	"\n"
	"commands:\n"
	"  attach PID         profile a running process (--profile cpu) into a pprof\n"
	"                     file for `go tool pprof`\n"
	"  run -- COMMAND     start COMMAND and profile it until it exits\n"
	"  report FILE        top or folded view of a saved profile (no Go needed)\n"
	"  serve PID          serve Go's /debug/pprof/ HTTP endpoint for a running\n"
	"                     process (go tool pprof http://127.0.0.1:6060/...)\n"
	"  dump-threads PID   print every thread's state, what it waits on, and its\n"
	"                     stack (like Go's goroutine?debug=2)\n"
	"  help [COMMAND]     show help\n"
	"\n"
	"options:\n"
	"  -h, --help         show this help\n"
	"  --version          print the version\n"
	"\n"
	"'pprofc COMMAND --help' describes a command.\n";

struct command {
	const char *name;
	int (*run)(int argc, char **argv);
};

static const struct command commands[] = {
	{ "dump-threads", cmd_dump_threads },
	{ "attach", cmd_attach },
	{ "run", cmd_run },
	{ "report", cmd_report },
	{ "serve", cmd_serve },
};

static const struct command *find(const char *name)
{
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

/* The sampler keeps two /proc files open per thread of the target: allow
 * as many descriptors as the hard limit permits. */
static void raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int main(int argc, char **argv)
{
	raise_fd_limit();
	/* Worker threads allocate from glibc's per-thread arenas, which grow
	 * by mprotect() a little at a time: a dump of 500 threads made 820
	 * such calls, 13% of its CPU time.  Growing by 16 MiB at a time (of
	 * address space; pages cost only when touched) makes it a dozen. */
	mallopt(M_TOP_PAD, 16 << 20);
	/* A dump of 500 threads is about 1 MB of text: through stdio's
	 * default 4 KiB buffer that was 215 write() calls.  A terminal keeps
	 * its line buffering. */
	static char stdout_buffer[CLI_OUTPUT_BUFFER];
	if (!isatty(STDOUT_FILENO))
		setvbuf(stdout, stdout_buffer, _IOFBF, sizeof stdout_buffer);
	if (argc < 2) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	const char *cmd = argv[1];
	if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0) {
		fputs(usage, stdout);
		return EXIT_OK;
	}
	if (strcmp(cmd, "--version") == 0) {
		printf("pprofc %s\n", PPROFC_VERSION);
		return EXIT_OK;
	}
	if (strcmp(cmd, "help") == 0) {
		if (argc < 3) {
			fputs(usage, stdout);
			return EXIT_OK;
		}
		const struct command *c = find(argv[2]);
		if (!c)
			return cli_usage_error(NULL, "unknown command '%s'", argv[2]);
		char *help_argv[] = { argv[2], "--help", NULL };
		return c->run(2, help_argv);
	}
	const struct command *c = find(cmd);
	if (!c)
		return cli_usage_error(NULL, "unknown command '%s'", cmd);
	return c->run(argc - 1, argv + 1);
}
