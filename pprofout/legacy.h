/* legacy.h — Go's legacy text profiles, what runtime/pprof writes for
 * heap, allocs, block, mutex and goroutine at debug=1, made from a built profile;
 * go tool pprof reads them (its legacy_profile.go).  docs/FORMATS.md §10.
 */
#ifndef PPROFC_PPROFOUT_LEGACY_H
#define PPROFC_PPROFOUT_LEGACY_H

#include <stdint.h>
#include <stdio.h>

#include "dump.h"
#include "profile.h"

struct pp_legacy {
	/* The start of the function holding a location's address, for the
	 * "name+0xOFFSET" of the '#' lines (0: unknown, the offset is left
	 * out).  NULL: never known. */
	uint64_t (*func_start)(void *arg, uint64_t address);
	void *arg;
};

/* A heap profile (alloc_objects, alloc_space, inuse_objects, inuse_space,
 * unsampled as Go's proto: FORMATS.md §6) as Go's "heap profile: ..."
 * text, without the trailing "# runtime.MemStats" lines (the caller adds
 * what it has instead).  0, or -1 (not such a profile, out of memory, the
 * write failed). */
int pp_write_legacy_heap(FILE *out, const struct pp_profile *p, const struct pp_legacy *o);
/* A contentions/delay profile as Go's block ("--- contention:") or
 * mutex ("--- mutex:") text; name is "contention" or "mutex".  0 or -1. */
int pp_write_legacy_contention(FILE *out, const struct pp_profile *p, const char *name,
			       const struct pp_legacy *o);

/* A count profile (goroutine) as Go's printCountProfile writes it at
 * debug=1, from the stacks Go's runtime records: "NAME profile: total N",
 * then each distinct stack (equal '@' lists), largest count first (equal
 * counts in the order of their '@' lists as strings), "COUNT @ 0xPC..."
 * and its '#' lines as printStackRecord shows them, a blank line after
 * each.  Each of v's frames is one pc of Go's record, inlined frames
 * included: frames[k].pc as Go stores it (a return address, or the
 * inline tree's mark of an inlined call, + 1), func_offset its pc - 1
 * from the start of the function holding it.  A stack without frames
 * shows "...stack not read".  dump.h's callers_only is not used.  0 or
 * -1. */
int pp_write_legacy_count(FILE *out, const char *name, const struct pp_count_stack *v, size_t n);

#endif
