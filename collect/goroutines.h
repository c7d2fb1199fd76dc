/* goroutines.h — a Go program's goroutines, read from its memory without
 * stopping it (goroutines.c); for dump.c only.
 *
 *     go = collect_go_read(pid, sym, limit, &err)   NULL: not a Go program
 *     collect_go_unwind(go, sym, i)                 each i < collect_go_count(go),
 *                                                   on any of the sessions
 *     collect_go_finish(go, sym, threads, n, goids) running goroutines take their
 *                                                   thread's stack; the view
 *     collect_go_view(go), collect_go_stats(go)
 *     collect_go_record(go, i, &st, &resumed)       view entry i as Go's goroutine
 *                                                   profile records it
 *     collect_go_free(go)
 */
#ifndef PPROFC_COLLECT_GOROUTINES_H
#define PPROFC_COLLECT_GOROUTINES_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../pprofout/dump.h"
#include "../symbolize/sym.h"
#include "collect.h"

struct collect_go;

/* A thread of the dump, for the goroutine it runs. */
struct collect_go_thread {
	pid_t tid;
	int taken;                      /* its registers and stack were read */
	uint64_t sp;                    /* its stack pointer then */
	const struct sym_stack *stack;  /* unwound */
};

/* NULL if pid is not a Go program (or out of memory: *nomem set).  A Go
 * program whose layouts are unknown gives a view with a note saying why. */
struct collect_go *collect_go_read(pid_t pid, struct sym_session *sym, size_t stack_limit,
				   int *nomem);
size_t collect_go_count(const struct collect_go *go);
void collect_go_unwind(struct collect_go *go, struct sym_session *sym, size_t i);
/* goids[i]: the goroutine threads[i] runs, 0: none.  -1 out of memory. */
int collect_go_finish(struct collect_go *go, struct sym_session *sym,
		      const struct collect_go_thread *threads, size_t n, int64_t *goids);
const struct pp_goroutines *collect_go_view(const struct collect_go *go);
/* Goroutine i of the view (i < its n), as Go's goroutine profile records
 * it: every frame but the compiler's wrappers (st's frames owned by go);
 * *resumed when its innermost pc is where it will resume (a return
 * address: it was not running).  -1 when its stack was not read. */
int collect_go_record(const struct collect_go *go, size_t i, struct sym_stack *st, int *resumed);
void collect_go_stats(const struct collect_go *go, struct collect_go_stats *st);
void collect_go_free(struct collect_go *go);

#endif
