/* targets.c — the processes that `attach` and `dump-threads` are given:
 * one PID, several, or with --children each one's descendants as they are
 * at the start (the tree is read once; processes started later are not
 * added: `run --children` follows those).
 */
#include <getopt.h>
#include <stdlib.h>

#include "../attach/snapshot.h"
#include "cli.h"

int cli_parse_pids(const char *cmd, int argc, char **argv, pid_t **pids, size_t *n)
{
	if (optind == argc)
		return cli_usage_error(cmd, "missing PID");
	if (!(*pids = calloc((size_t)(argc - optind), sizeof **pids)))
		return cli_usage_error(cmd, "out of memory");
	for (int i = optind; i < argc; i++)
		if (cli_parse_pid(argv[i], &(*pids)[(*n)++]))
			return cli_usage_error(cmd, "'%s' is not a process ID", argv[i]);
	return 0;
}

static int has(const struct cli_targets *t, pid_t pid)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->pids[i] == pid)
			return 1;
	return 0;
}

static int push(struct cli_targets *t, pid_t pid)
{
	pid_t *v = realloc(t->pids, (t->n + 1) * sizeof *v);
	if (!v)
		return -1;
	t->pids = v;
	t->pids[t->n++] = pid;
	return 0;
}

static int check(pid_t pid, int dump, pid_t *tgid, struct attach_error *err)
{
	return dump ? attach_check_process(pid, tgid, err) : attach_check_target(pid, tgid, err);
}

/* With --children: each named process's descendants now.  One that cannot
 * be profiled (it is exiting, or traced by a debugger) is left out with a
 * note: the tree changes under us. */
static int add_descendants(struct cli_targets *t, int dump)
{
	pid_t *d = NULL;
	size_t nd = 0;
	if (attach_list_descendants(t->pids, t->n_named, &d, &nd)) {
		cli_error("cannot list the processes in /proc to find the children");
		return -1;
	}
	for (size_t i = 0; i < nd; i++) {
		struct attach_error err;
		pid_t tgid;
		if (has(t, d[i]))
			continue;
		if (check(d[i], dump, &tgid, &err)) {
			if (err.code != ATTACH_ERR_NOPROC && err.code != ATTACH_ERR_ZOMBIE)
				cli_error("child %d left out: %s", (int)d[i], err.msg);
			continue;
		}
		if (push(t, tgid)) {
			free(d);
			cli_error("out of memory");
			return -1;
		}
	}
	free(d);
	return 0;
}

int cli_targets_resolve(struct cli_targets *t, const pid_t *named, size_t n, int children, int dump)
{
	*t = (struct cli_targets){ 0 };
	for (size_t i = 0; i < n; i++) {
		struct attach_error err;
		pid_t tgid;
		if (check(named[i], dump, &tgid, &err)) {
			cli_error("%s", err.msg);
			cli_targets_free(t);
			return EXIT_FAIL;
		}
		if (!has(t, tgid) && push(t, tgid)) {
			cli_error("out of memory");
			cli_targets_free(t);
			return EXIT_FAIL;
		}
	}
	t->n_named = t->n;
	if (children && add_descendants(t, dump)) {
		cli_targets_free(t);
		return EXIT_FAIL;
	}
	return EXIT_OK;
}

void cli_targets_free(struct cli_targets *t)
{
	free(t->pids);
	*t = (struct cli_targets){ 0 };
}
