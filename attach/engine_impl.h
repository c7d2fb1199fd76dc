/* engine_impl.h — what an engine file implements (engine.c dispatches to
 * it).  Shared by the files of attach/ only; callers use engine.h. */
#ifndef PPROFC_ATTACH_ENGINE_IMPL_H
#define PPROFC_ATTACH_ENGINE_IMPL_H

#include "engine.h"

struct attach_engine_ops {
	const char *name;
	/* Returns the engine's state, or NULL with err set.  st belongs to
	 * the caller and stays valid until close. */
	void *(*open)(pid_t pid, const struct attach_engine_opts *o, struct attach_engine_stats *st,
		      struct attach_error *err);
	int (*poll)(void *state, uint64_t deadline_ns);
	/* Lets go of the target, completes st, frees the state. */
	void (*close)(void *state);
};

/* Whether o asks for thread tid (o->only, NULL: every thread). */
int attach_engine_wants(const struct attach_engine_opts *o, pid_t tid);

extern const struct attach_engine_ops attach_engine_perf_ops;
extern const struct attach_engine_ops attach_engine_ptrace_ops;
extern const struct attach_engine_ops attach_engine_clones_ops;

#endif
