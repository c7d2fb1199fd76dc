/* saved.c — saving a profile where and as `go tool pprof` saves its own:
 * <dir>/pprof.<exe>.<kind>.NNN.pb.gz, never replacing a file (a trace
 * timeline: pprof.<exe>.trace.NNN.json). */
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
	/* The trace timeline is JSON (Chrome's trace events), not pprof. */
	w->suffix = strcmp(kind, "trace") == 0 ? ".json" : ".pb.gz";
	if (w->numbered) {
		cli_profile_dir(w->dir, sizeof w->dir);
		snprintf(w->prefix, sizeof w->prefix, "pprof.%.400s.%s.", basename_of(exe), kind);
		/* The name errors show; the file gets its number when saved. */
		snprintf(path, sizeof path, "%s/%sNNN%s", w->dir, w->prefix, w->suffix);
	}
	return cli_output_open(&w->out, w->numbered ? path : output);
}

void cli_saved_set_kind(struct cli_saved *w, const char *exe, const char *kind)
{
	if (w->numbered)
		snprintf(w->prefix, sizeof w->prefix, "pprof.%.400s.%s.", basename_of(exe), kind);
}

int cli_saved_commit(struct cli_saved *w)
{
	char saved[4700];
	if (!w->numbered)
		return cli_output_commit(&w->out);
	if (cli_output_commit_numbered(&w->out, w->dir, w->prefix, w->suffix, saved, sizeof saved))
		return -1;
	fprintf(stderr, "Saved %s in %s\n", strcmp(w->suffix, ".json") == 0 ? "trace" : "profile", saved);
	return 0;
}
