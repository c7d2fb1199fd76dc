/* accum.c — a cumulative collection (block, mutex; heap and allocs of a
 * command serve started) on a thread of its own, for the server's
 * lifetime, read by snapshots.
 *
 * collect_run() owns its session's profile while it runs, so nothing
 * else may read it: a request queues an ask and sets the session's
 * snapshot flag; collect_run then calls on_snapshot (on this thread,
 * within 20 ms) with the profile complete up to that moment, and the
 * asks are done there: a copy of the samples to subtract later (SAVE),
 * the profile written (WRITE), or written minus a saved copy (DELTA: Go's
 * seconds=N).  Once collect_run has returned (the target exited) the
 * profile no longer changes and asks are done at once.
 *
 * A collection with keep_ns ends itself when no request has used it for
 * that long (the server's idle cost is then nothing); requests hold it
 * while they use it (accum_hold, accum_release), so it never ends under
 * one, whose delta may span minutes.
 */
#include <assert.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static void do_ask(struct serve_accum *a, struct pp_profile *prof, struct accum_ask *k)
{
	struct membuf m;
	uint64_t now = serve_now_ns();
	k->failed = 1;
	if (!prof)
		return;
	switch (k->op) {
	case ACCUM_SAVE:
		k->base = pp_profile_save(prof);
		k->base_ns = now;
		k->base_time_nanos = serve_wall_ns();
		k->failed = !k->base;
		return;
	case ACCUM_COUNT:
		if (a->kind == COLLECT_THREADCREATE) {
			const struct collect_threadcreate_summary *tc = &collect_summary(a->cs)->tc;
			k->samples = tc->alive + tc->created + tc->unseen;
		} else {
			k->samples = pp_profile_count(prof, 's');
		}
		k->failed = 0;
		return;
	case ACCUM_WRITE_TEXT:
	case ACCUM_WRITE:
	case ACCUM_WRITE_DELTA:
	case ACCUM_WRITE_LEGACY:
		break;
	}
	if (membuf_open(&m))
		return;
	int r = pp_profile_set_default_sample_type(prof, k->default_type);
	if (r == 0 && k->op == ACCUM_WRITE_LEGACY && strcmp(k->legacy_name, "heap") == 0)
		r = pp_write_legacy_heap(m.f, prof, k->legacy);
	else if (r == 0 && k->op == ACCUM_WRITE_LEGACY)
		r = pp_write_legacy_contention(m.f, prof, k->legacy_name, k->legacy);
	else if (r == 0 && k->op == ACCUM_WRITE_TEXT)
		r = collect_threadcreate_text(a->cs, m.f);
	else if (r == 0 && k->op == ACCUM_WRITE)
		r = pp_profile_write(prof, (int64_t)(now - a->start_ns), m.f);
	else if (r == 0)
		r = pp_profile_write_delta(prof, k->base, k->base_time_nanos, (int64_t)(now - k->base_ns), m.f);
	if (membuf_close(&m) == 0 && r == 0) {
		k->buf = m.buf;
		k->len = m.len;
		k->failed = 0;
	} else if (r) {
		free(m.buf);
	}
}

/* Every ask queued, done; a is locked. */
static void answer_all(struct serve_accum *a, struct pp_profile *prof)
{
	while (a->asks) {
		struct accum_ask *k = a->asks;
		a->asks = k->next;
		do_ask(a, prof, k);
		k->done = 1;
	}
	pthread_cond_broadcast(&a->cv);
}

/* collect_opts.on_progress, about once a second on this collection's
 * thread: ends it after keep_ns unused. */
static void on_progress(void *arg, double elapsed, uint64_t samples)
{
	(void)elapsed;
	(void)samples;
	struct serve_accum *a = arg;
	pthread_mutex_lock(&a->mu);
	if (a->keep_ns && !a->users && serve_now_ns() - a->last_used_ns >= a->keep_ns) {
		a->idled = 1;
		a->cancel = 1;
	}
	pthread_mutex_unlock(&a->mu);
}

/* collect_opts.on_snapshot: on this collection's thread. */
static void on_snapshot(void *arg, struct collect_session *cs)
{
	struct serve_accum *a = arg;
	pthread_mutex_lock(&a->mu);
	answer_all(a, collect_profile(cs));
	pthread_mutex_unlock(&a->mu);
}

static void *run(void *arg)
{
	struct serve_accum *a = arg;
	collect_run(a->cs);
	pthread_mutex_lock(&a->mu);
	a->ended = 1;
	answer_all(a, collect_profile(a->cs));
	pthread_mutex_unlock(&a->mu);
	return NULL;
}

void accum_init(struct serve_accum *a, const struct collect_opts *o, struct collect_opts *co)
{
	memset(a, 0, sizeof *a);
	pthread_mutex_init(&a->mu, NULL);
	pthread_cond_init(&a->cv, NULL);
	a->kind = o->kind;
	*co = *o;
	co->seconds = 0;
	co->cancel = &a->cancel;
	co->snapshot = &a->snapshot;
	co->on_snapshot = on_snapshot;
	co->on_progress = on_progress;
	co->arg = a;
}

int accum_start(struct serve_accum *a, struct collect_session *cs, struct collect_error *err)
{
	sigset_t all, old;
	a->cs = cs;
	a->start_ns = a->last_used_ns = serve_now_ns();
	/* Signals for pprofc (SIGTERM...) go to the thread waiting for them
	 * (serve_wait), not to this one. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int failed = pthread_create(&a->thread, NULL, run, a);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (failed) {
		snprintf(err->msg, sizeof err->msg, "cannot start a thread for the cumulative profile");
		a->cs = NULL;
		return -1;
	}
	pthread_mutex_lock(&a->mu);
	a->started = 1;
	pthread_mutex_unlock(&a->mu);
	return 0;
}

int accum_ask(struct serve_accum *a, struct accum_ask *k)
{
	k->done = 0;
	k->next = NULL;
	pthread_mutex_lock(&a->mu);
	if (!a->started) {
		pthread_mutex_unlock(&a->mu);
		return -1;
	}
	if (a->ended) {
		do_ask(a, collect_profile(a->cs), k);
		k->done = 1;
	} else {
		k->next = a->asks;
		a->asks = k;
		a->snapshot = 1;
		while (!k->done)
			pthread_cond_wait(&a->cv, &a->mu);
	}
	pthread_mutex_unlock(&a->mu);
	return k->failed ? -1 : 0;
}

void accum_hold(struct serve_accum *a)
{
	pthread_mutex_lock(&a->mu);
	a->users++;
	pthread_mutex_unlock(&a->mu);
}

void accum_release(struct serve_accum *a)
{
	pthread_mutex_lock(&a->mu);
	assert(a->users > 0);
	a->users--;
	a->last_used_ns = serve_now_ns();
	pthread_mutex_unlock(&a->mu);
}

int accum_idled(struct serve_accum *a)
{
	pthread_mutex_lock(&a->mu);
	int idled = a->idled && a->ended && !a->users;
	pthread_mutex_unlock(&a->mu);
	return idled;
}

int accum_ended(struct serve_accum *a)
{
	pthread_mutex_lock(&a->mu);
	int ended = !a->started || a->ended;
	pthread_mutex_unlock(&a->mu);
	return ended;
}

void accum_stop(struct serve_accum *a)
{
	if (!a->started)
		return;
	a->cancel = 1;
	pthread_join(a->thread, NULL);
	pthread_mutex_lock(&a->mu);
	a->started = 0;
	pthread_mutex_unlock(&a->mu);
	/* run() answered every ask on its way out; none can come now. */
	assert(!a->asks);
}

void accum_free(struct serve_accum *a)
{
	accum_stop(a);
	collect_close(a->cs);
	a->cs = NULL;
	pthread_mutex_destroy(&a->mu);
	pthread_cond_destroy(&a->cv);
}
