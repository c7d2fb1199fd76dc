/* uprobes.h — the allocator a running process really calls, and the
 * uprobes to put on it (uprobes.c).
 *
 * The allocator is the first module in the target's link order that
 * defines malloc: a loaded module other than libc and the dynamic loader
 * exporting malloc (or je_malloc, tc_malloc, mi_malloc) in its .dynsym is
 * jemalloc, tcmalloc or mimalloc, interposed before libc; else it is libc.
 * Each function found gets an entry probe (its arguments are in the
 * registers at its first instruction) and, unless it is a free, a return
 * probe (the result in rax).  Return probes come first in the list: the
 * perf engine opens events in list order, so any entry it samples has
 * its return probe in place.
 */
#ifndef PPROFC_ATTACH_UPROBES_H
#define PPROFC_ATTACH_UPROBES_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "engine.h"
#include "snapshot.h"

enum attach_alloc_fn {
	ATTACH_FN_MALLOC, ATTACH_FN_CALLOC, ATTACH_FN_REALLOC, ATTACH_FN_FREE,
	ATTACH_FN_REALLOCARRAY, ATTACH_FN_POSIX_MEMALIGN, ATTACH_FN_ALIGNED_ALLOC,
	ATTACH_FN_MEMALIGN, ATTACH_FN_VALLOC, ATTACH_FN_PVALLOC, ATTACH_FN_COUNT
};

#define ATTACH_MAX_UPROBES (2 * ATTACH_FN_COUNT)

struct attach_allocator {
	char module[4096];              /* its path in the target's maps */
	char path[4200];                /* ...as pprofc opens it (/proc/PID/root) */
	int is_libc;
	struct attach_uprobe probes[ATTACH_MAX_UPROBES];
	enum attach_alloc_fn fn[ATTACH_MAX_UPROBES];    /* per probe */
	size_t n;
};

/* Finds the allocator of pid and its functions' file offsets.  0, or -1
 * with err set (one line). */
int attach_allocator_find(pid_t pid, struct attach_allocator *a, struct attach_error *err);
/* The uprobe PMU's type and its retprobe bit (sysfs).  0, or -1 with
 * errno set (ENOENT: no uprobe PMU in this kernel). */
int attach_uprobe_pmu(int *type, int *ret_bit);
const char *attach_alloc_fn_name(enum attach_alloc_fn fn);

/* The probes defined in tracefs (uprobe_events.c), for perf events of
 * type PERF_TYPE_TRACEPOINT: inherited by new threads, cheap to close.
 * define: 0, or -1 with errno (tracefs missing or not writable, a path
 * it cannot spell) and nothing left defined.  remove: after every event
 * on them is closed. */
struct attach_uprobe_events {
	const char *root;               /* where tracefs is (attach_tracefs) */
	char group[32];
	int ids[ATTACH_MAX_UPROBES];    /* the tracepoint id of each probe */
	size_t n;                       /* probes defined */
};
int attach_uprobe_events_define(const struct attach_uprobe *u, size_t n,
				struct attach_uprobe_events *ev);
void attach_uprobe_events_remove(struct attach_uprobe_events *ev);

#endif
