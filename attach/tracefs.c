/* tracefs.c — where the kernel's tracing filesystem is, mounted first
 * when it is nowhere.  The perf engine reads the ids of the clone system
 * call tracepoints there (the threadcreate profile), and heap `attach`
 * defines its uprobes there (uprobe_events.c).
 *
 * A machine whose init mounts neither tracefs (/sys/kernel/tracing) nor
 * debugfs (whose tracing/ directory is tracefs) has none until someone
 * mounts it: this Debian 12 VM had none after boot, and perf mounts it at
 * its first tracepoint (seen: `perf record -e sched:sched_switch true`
 * left tracefs on /sys/kernel/tracing).  So a first pprofc would fail
 * where a pprofc run after perf works.  pprofc mounts it as perf does:
 * root only, in pprofc's mount namespace, and left mounted, as perf
 * leaves it (an unmount could pull it from under another tool).
 */
#include <errno.h>
#include <sys/mount.h>
#include <unistd.h>

#include "internal.h"

#define TRACEFS "/sys/kernel/tracing"
#define DEBUGFS_TRACING "/sys/kernel/debug/tracing"

const char *attach_tracefs(void)
{
	if (access(TRACEFS "/events", F_OK) == 0)
		return TRACEFS;
	if (access(DEBUGFS_TRACING "/events", F_OK) == 0)
		return DEBUGFS_TRACING;
	if (mount("nodev", TRACEFS, "tracefs", 0, NULL) != 0)
		return NULL;            /* errno: EPERM when not root */
	if (access(TRACEFS "/events", F_OK) != 0)
		return NULL;
	return TRACEFS;
}
