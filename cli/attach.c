/* attach.c — `pprofc attach PID --profile cpu|threads`: profile a running
 * process into a pprof file (CPU: profile.c, shared with run; threads:
 * dump_threads.c, one snapshot). */
#include <stdlib.h>

#include "../attach/snapshot.h"
#include "cli.h"

int cmd_attach(int argc, char **argv)
{
	struct cli_profile_options o;
	cli_catch_stop_signals();
	int r = cli_profile_parse(argc, argv, 0, &o);
	if (r) {
		free(o.tids);
		return r < 0 ? EXIT_OK : r;
	}
	struct attach_error err;
	pid_t tgid;
	if (attach_check_target(o.pid, &tgid, &err)) {
		cli_error("%s", err.msg);
		free(o.tids);
		return EXIT_FAIL;
	}
	r = o.threads ? cli_threads_profile(tgid, o.output, o.format)
		      : cli_profile_take(&o, tgid, 0, NULL);
	free(o.tids);
	return r;
}
