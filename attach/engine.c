/* engine.c — the engine interface (engine.h) dispatched to the engine
 * chosen: engine_perf.c, engine_ptrace.c, or engine_clones.c (thread creations
 * with ptrace). */
#include "engine.h"

#include <stdlib.h>
#include <string.h>

#include "engine_impl.h"

struct attach_engine {
	const struct attach_engine_ops *ops;
	void *state;
	struct attach_engine_stats st;
};

struct attach_engine *attach_engine_open(enum attach_engine_kind kind, pid_t pid,
					 const struct attach_engine_opts *o,
					 struct attach_error *err)
{
	struct attach_engine *e = calloc(1, sizeof *e);
	err->code = ATTACH_OK;
	err->msg[0] = 0;
	if (!e) {
		err->code = ATTACH_ERR_OTHER;
		strcpy(err->msg, "out of memory");
		return NULL;
	}
	e->ops = kind == ATTACH_ENGINE_PERF ? &attach_engine_perf_ops
	       : o->clones ? &attach_engine_clones_ops : &attach_engine_ptrace_ops;
	if (!(e->state = e->ops->open(pid, o, &e->st, err))) {
		attach_engine_stats_free(&e->st);
		free(e);
		return NULL;
	}
	return e;
}

int attach_engine_poll(struct attach_engine *e, uint64_t deadline_ns)
{
	return e->ops->poll(e->state, deadline_ns);
}

const char *attach_engine_name(const struct attach_engine *e)
{
	return e->ops->name;
}

const struct attach_engine_stats *attach_engine_stats(const struct attach_engine *e)
{
	return &e->st;
}

void attach_engine_close(struct attach_engine *e, struct attach_engine_stats *st)
{
	e->ops->close(e->state);
	*st = e->st;
	free(e);
}

void attach_engine_stats_free(struct attach_engine_stats *st)
{
	free(st->stop_ns);
	st->stop_ns = NULL;
	st->n_stop_ns = st->cap_stop_ns = 0;
	free(st->thread_cpu);
	st->thread_cpu = NULL;
	st->n_thread_cpu = 0;
}

int attach_engine_wants(const struct attach_engine_opts *o, pid_t tid)
{
	if (!o->only)
		return 1;
	for (size_t i = 0; i < o->n_only; i++)
		if (o->only[i] == tid)
			return 1;
	return 0;
}
