/* run.c — `pprofc run -- COMMAND [ARGS...]`: start a command, profile it
 * until it exits (or --seconds pass), and exit with its status.
 *
 * The output is opened before the command starts: a path that cannot be
 * written fails at once, with nothing started.  collect_spawn() starts the
 * command and opens the engine at its exec, then lets it run untraced.
 * SIGINT, SIGTERM or SIGHUP to pprofc end the profile and are passed on to
 * the command, as `perf record` does (but a Ctrl-C from the terminal,
 * which the command received too, is not sent twice); pprofc then waits
 * for the command and exits with its status.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"

/* Shell convention: 128 + signal for a command killed by a signal. */
static int exit_code(int status)
{
	if (status < 0)
		return EXIT_FAIL;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return EXIT_FAIL;
}

int cmd_run(int argc, char **argv)
{
	struct cli_profile_options o;
	int r = cli_profile_parse(argc, argv, 1, &o);
	if (r)
		return r < 0 ? EXIT_OK : r;
	cli_catch_stop_signals();
	if (o.serve)
		return cli_serve_command(&o, o.serve, o.basic_auth_file, o.token_file);
	if (o.kind == COLLECT_HEAP || o.kind == COLLECT_ALLOCS)
		cli_heap_catch_snapshot();
	/* The profile is named after the command as it was called. */
	struct cli_saved w;
	if (cli_saved_open(&w, o.output, o.format == FMT_PROTO || o.format == FMT_JSON, o.command[0],
			   collect_file_kind(o.kind)))
		return EXIT_FAIL;
	struct collect_opts co;
	struct cli_progress pr;
	struct collect_error err;
	int status;
	cli_collect_opts(&o, &pr, &co);
	struct collect_session *s = collect_spawn(o.command, &co, &err, &status);
	if (!s) {
		if (err.msg[0])
			cli_error("%s", err.msg);
		cli_output_abort(&w.out);
		return status >= 0 ? exit_code(status) : EXIT_FAIL;
	}
	cli_profile_window_starts(o.kind, collect_pid(s));
	r = cli_profile_finish(&o, s, &w, 1);
	int sig = cli_stop;
	if (sig && !cli_stop_from_terminal)
		collect_signal_child(s, sig);
	cli_stop = 0;
	/* --seconds passed first: the command runs on, untraced, to its end;
	 * a signal for pprofc meanwhile is passed on. */
	status = collect_wait_child(s, &cli_stop);
	collect_close(s);
	return r != EXIT_OK ? r : exit_code(status);
}
