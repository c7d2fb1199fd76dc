/* saved.c — saving a profile where and as `go tool pprof` saves its own:
 * <dir>/pprof.<exe>.<kind>.NNN.pb.gz, never replacing a file. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char *basename_of(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

int cli_saved_open(struct cli_saved *w, const char *output, int numbered, const char *exe,
		   const char *kind)
{
	char path[4700];
	w->numbered = numbered && !output;
	if (w->numbered) {
		cli_profile_dir(w->dir, sizeof w->dir);
		snprintf(w->prefix, sizeof w->prefix, "pprof.%.400s.%s.", basename_of(exe), kind);
		/* The name errors show; the file gets its number when saved. */
		snprintf(path, sizeof path, "%s/%sNNN.pb.gz", w->dir, w->prefix);
	}
	return cli_output_open(&w->out, w->numbered ? path : output);
}

int cli_saved_commit(struct cli_saved *w)
{
	char saved[4700];
	if (!w->numbered)
		return cli_output_commit(&w->out);
	if (cli_output_commit_numbered(&w->out, w->dir, w->prefix, ".pb.gz", saved, sizeof saved))
		return -1;
	fprintf(stderr, "Saved profile in %s\n", saved);
	return 0;
}
