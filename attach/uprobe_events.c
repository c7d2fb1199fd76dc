/* uprobe_events.c — uprobes defined once in tracefs, for perf events of
 * type PERF_TYPE_TRACEPOINT (see uprobes.h).
 *
 * Why not only the uprobe PMU (perf_event_open with the file's path in
 * config1)?  Measured here: its events cannot be inherited (a new thread's
 * copy is set up by reading config1 as a pointer into the target's memory,
 * and the target's clone() fails), so each thread needs events of its own
 * and a thread born meanwhile is unseen until pprofc finds it; and each
 * event is a uprobe of its own, whose close waits for a grace period
 * under a lock they all share: ~50 ms per descriptor, one after the other
 * (27,200 descriptors for 100 threads on 16 CPUs).  A probe defined in
 * /sys/kernel/tracing/uprobe_events instead is one trace event whatever
 * the number of perf events on it: those are inherited by new threads
 * from their first instruction, and closing them costs a grace period per
 * probe, not per descriptor.
 *
 * The definitions are named pprofc_<pid>/pN, pid being pprofc's: several
 * pprofc at once never share one.  They are removed after the events are
 * closed; a pprofc killed leaves its group defined (with no events, no
 * breakpoint is anywhere) and the next pprofc removes groups whose pprofc
 * is gone.  A definition is global, so it needs tracefs mounted (pprofc
 * mounts it where it is nowhere: tracefs.c) and writable (root); where
 * it is not, the engine uses the PMU.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "proc.h"
#include "uprobes.h"

#define GROUP_PREFIX "pprofc_"

/* Writes one command line to uprobe_events (appending: O_TRUNC would
 * remove every uprobe on the machine).  0, or -1 with errno. */
static int command(const char *root, const char *line)
{
	char path[96];
	snprintf(path, sizeof path, "%s/uprobe_events", root);
	int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t len = strlen(line);
	ssize_t w = write(fd, line, len);
	int e = errno;
	close(fd);
	if (w != (ssize_t)len) {
		errno = w < 0 ? e : EIO;
		return -1;
	}
	return 0;
}

/* The pid in a group name pprofc_<pid>, or 0 if it is not one. */
static pid_t group_pid(const char *group, size_t len)
{
	size_t pl = strlen(GROUP_PREFIX);
	if (len <= pl || strncmp(group, GROUP_PREFIX, pl) != 0)
		return 0;
	long v = 0;
	for (size_t i = pl; i < len; i++) {
		if (group[i] < '0' || group[i] > '9' || v > 100000000)
			return 0;
		v = v * 10 + (group[i] - '0');
	}
	return (pid_t)v;
}

/* Removes the definitions of pprofc runs that are gone (killed before
 * they could): lines "p:pprofc_<pid>/pN ..." whose pid is not alive. */
static void remove_stale(const char *root)
{
	char path[96], *buf;
	size_t len;
	snprintf(path, sizeof path, "%s/uprobe_events", root);
	if (attach_read_file(path, &buf, &len))
		return;
	for (char *line = buf, *nl; line < buf + len; line = nl + 1) {
		nl = memchr(line, '\n', (size_t)(buf + len - line));
		if (!nl)
			nl = buf + len;
		*nl = 0;
		char *name = strchr(line, ':'), *slash = name ? strchr(name, '/') : NULL;
		char *end = slash ? strpbrk(slash, " \t") : NULL;
		if (!end)
			continue;
		pid_t pid = group_pid(name + 1, (size_t)(slash - name - 1));
		if (pid <= 0 || (kill(pid, 0) != 0 && errno == ESRCH) == 0)
			continue;
		char cmd[256];
		snprintf(cmd, sizeof cmd, "-:%.*s\n", (int)(end - name - 1), name + 1);
		command(root, cmd);
	}
	free(buf);
}

static int read_id(const struct attach_uprobe_events *ev, size_t i, int *id)
{
	char path[160], buf[32];
	size_t len;
	snprintf(path, sizeof path, "%s/events/%s/p%zu/id", ev->root, ev->group, i);
	if (attach_read_small(path, buf, sizeof buf, &len))
		return -1;
	buf[len < sizeof buf ? len : sizeof buf - 1] = 0;
	*id = atoi(buf);
	return *id > 0 ? 0 : (errno = EINVAL, -1);
}

int attach_uprobe_events_define(const struct attach_uprobe *u, size_t n,
				struct attach_uprobe_events *ev)
{
	memset(ev, 0, sizeof *ev);
	if (n > ATTACH_MAX_UPROBES)
		return errno = E2BIG, -1;
	char path[96];
	if (!(ev->root = attach_tracefs()))
		return -1;
	snprintf(path, sizeof path, "%s/uprobe_events", ev->root);
	if (access(path, W_OK) != 0)
		return -1;
	remove_stale(ev->root);
	snprintf(ev->group, sizeof ev->group, GROUP_PREFIX "%d", (int)getpid());
	for (size_t i = 0; i < n; i++) {
		/* tracefs splits its commands at blanks: such a path cannot
		 * be spelled (the PMU takes it as is). */
		if (strpbrk(u[i].path, " \t\n")) {
			attach_uprobe_events_remove(ev);
			return errno = EINVAL, -1;
		}
		char cmd[4400];
		snprintf(cmd, sizeof cmd, "%c:%s/p%zu %s:0x%llx\n", u[i].ret ? 'r' : 'p', ev->group, i,
			 u[i].path, (unsigned long long)u[i].offset);
		if (command(ev->root, cmd) || read_id(ev, i, &ev->ids[i])) {
			int e = errno;
			attach_uprobe_events_remove(ev);
			return errno = e, -1;
		}
		ev->n = i + 1;
	}
	return 0;
}

void attach_uprobe_events_remove(struct attach_uprobe_events *ev)
{
	for (size_t i = 0; i < ev->n; i++) {
		char cmd[64];
		snprintf(cmd, sizeof cmd, "-:%s/p%zu\n", ev->group, i);
		command(ev->root, cmd);
	}
	ev->n = 0;
}
