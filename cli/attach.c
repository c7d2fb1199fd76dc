/* attach.c — `pprofc attach PID --profile cpu|wall|block|mutex|threads`:
 * profile a running process into a pprof file (the profile kinds:
 * profile.c and collect/; threads: dump_threads.c, one snapshot); several
 * processes (PIDs, --children: targets.c) into one. */
#include <stdio.h>
#include <stdlib.h>

#include "../attach/snapshot.h"
#include "cli.h"

/* A process stopped by job control stays stopped while profiled and
 * after: say so, or a profile with nothing in it would be a puzzle. */
static void say_if_stopped(pid_t pid)
{
	char path[64], buf[1024];
	size_t len;
	struct attach_stat st;
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	if (attach_read_small(path, buf, sizeof buf, &len) == 0 &&
	    attach_parse_stat(buf, len, &st) == 0 && st.state == 'T')
		cli_error("PID %d is stopped (SIGSTOP or Ctrl-Z) and stays stopped: it runs, and a CPU "
			  "profile records, nothing until it gets SIGCONT", (int)pid);
}

/* One process: as it always was. */
static int attach_one(const struct cli_profile_options *o)
{
	struct attach_error err;
	pid_t tgid;
	if (attach_check_target(o->pid, &tgid, &err)) {
		cli_error("%s", err.msg);
		return EXIT_FAIL;
	}
	if (!o->threads)
		say_if_stopped(tgid);
	return o->threads ? cli_threads_profile(tgid, o->output, o->format) : cli_profile_take(o, tgid);
}

/* Several processes (PIDs, or --children): one profile of them all. */
static int attach_many(const struct cli_profile_options *o)
{
	struct cli_targets t;
	int r = cli_targets_resolve(&t, o->pids, o->n_pids, o->children, o->threads);
	if (r)
		return r;
	for (size_t i = 0; !o->threads && i < t.n; i++)
		say_if_stopped(t.pids[i]);
	r = o->threads ? cli_threads_profile_many(&t, o->output, o->format) : cli_profile_take_many(o, &t);
	cli_targets_free(&t);
	return r;
}

int cmd_attach(int argc, char **argv)
{
	struct cli_profile_options o;
	cli_catch_stop_signals();
	int r = cli_profile_parse(argc, argv, 0, &o);
	if (!r && (o.n_pids > 1 || o.children))
		r = attach_many(&o);
	else if (!r)
		r = attach_one(&o);
	free(o.tids);
	free(o.pids);
	return r < 0 ? EXIT_OK : r;
}
