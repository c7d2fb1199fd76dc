/* unwinders.c — several symbolizer sessions of one target, to unwind many
 * snapshots at once (dump-threads of a process with hundreds of threads).
 *
 * A Dwfl is not thread-safe, so each worker thread has its own
 * sym_session, with its own modules and debug information: that costs each
 * one a load of its own (mostly glibc's debug info, ~10 ms), so there are
 * extra sessions only where there are threads enough to win it back.  The
 * sessions are opened and warmed up in background threads while the
 * caller takes its snapshot: the loading overlaps the /proc reads.  Then
 * collect_unwinders_run() hands out snapshot indexes from a shared counter
 * to one thread per session (the caller's is one of them).  Each session
 * has an unwind memo (symbolize/memo.c): the threads of a pool wait in
 * the same calls with the same callers, and a stack proven the same as
 * one already unwound is not unwound again.  PPROFC_UNWIND_MEMO=0 turns
 * it off (tests compare both).
 */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "collect.h"

#define MAX_SESSIONS 8
/* Fewer snapshots than this per session do not pay for its loading:
 * measured on 2 CPUs, a second session for 500 threads cost 25 ms of CPU
 * and no wall time (its loading slowed the /proc reads it overlapped as
 * much as it then sped up the unwinding). */
#define MIN_PER_SESSION 1000
/* Snapshots a thread claims at a time from the shared counter. */
#define CHUNK 4

struct unwinder {
	struct collect_unwinders *u;
	pthread_t thread;
	int started;                    /* thread running (to join) */
	struct sym_session *sym;
	struct sym_memo *memo;          /* NULL: off */
	char err[256];
};

struct collect_unwinders {
	pid_t pid;
	struct unwinder w[MAX_SESSIONS];
	size_t n;
	/* collect_unwinders_run() */
	size_t jobs;
	atomic_size_t next;
	void (*fn)(struct sym_session *sym, struct sym_memo *memo, size_t i, void *arg);
	void *arg;
	volatile sig_atomic_t *cancel;
};

static void *open_one(void *arg)
{
	struct unwinder *w = arg;
	/* Loading runs while the caller takes the snapshot, at the same
	 * priority: the target's threads are stopped for about a millisecond
	 * of it, and a loader at nice 10 starved behind busy CPUs (the dump
	 * then waited 90 ms for it, measured with a spinner on each CPU). */
	w->sym = sym_open(attach_mm_pid(w->u->pid), w->err, sizeof w->err);
	if (w->sym)
		sym_prepare(w->sym);
	const char *memo = getenv("PPROFC_UNWIND_MEMO");
	if (w->sym && (!memo || strcmp(memo, "0") != 0))
		w->memo = sym_memo_new();       /* NULL (no memory): unwinds without */
	return NULL;
}

static size_t sessions_for(size_t nthreads)
{
	size_t cpus = attach_usable_cpus();
	size_t n = nthreads / MIN_PER_SESSION;
	n = n < cpus ? n : cpus;
	n = n < MAX_SESSIONS ? n : MAX_SESSIONS;
	return n ? n : 1;
}

struct collect_unwinders *collect_unwinders_open(pid_t pid, size_t nthreads)
{
	struct collect_unwinders *u = calloc(1, sizeof *u);
	if (!u)
		return NULL;
	u->pid = pid;
	u->n = sessions_for(nthreads);
	/* The loaders run while the caller's snapshot waits for SIGCHLD with
	 * it blocked: a loader must not take (and, by default, ignore) one.
	 * So they start with every signal blocked. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (size_t i = 0; i < u->n; i++) {
		u->w[i].u = u;
		u->w[i].started = pthread_create(&u->w[i].thread, NULL, open_one, &u->w[i]) == 0;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	for (size_t i = 0; i < u->n; i++)
		if (!u->w[i].started)
			open_one(&u->w[i]);     /* no thread: open it here */
	return u;
}

/* Waits for the sessions; drops those that failed (keeping the first
 * error), so w[0..n) all hold one. */
static void join_all(struct collect_unwinders *u, char *err, size_t errlen)
{
	size_t kept = 0;
	err[0] = 0;
	for (size_t i = 0; i < u->n; i++) {
		if (u->w[i].started)
			pthread_join(u->w[i].thread, NULL);
		u->w[i].started = 0;
		if (!u->w[i].sym && !err[0])
			snprintf(err, errlen, "%s", u->w[i].err);
		if (u->w[i].sym) {
			u->w[kept].sym = u->w[i].sym;
			u->w[kept++].memo = u->w[i].memo;
		}
	}
	u->n = kept;
}

struct sym_session *collect_unwinders_sym(struct collect_unwinders *u, char *err, size_t errlen)
{
	if (!u) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	join_all(u, err, errlen);
	return u->n ? u->w[0].sym : NULL;
}

static void *run_one(void *arg)
{
	struct unwinder *w = arg;
	struct collect_unwinders *u = w->u;
	for (;;) {
		size_t i = atomic_fetch_add(&u->next, CHUNK);
		for (size_t end = i + CHUNK; i < end && i < u->jobs; i++)
			if (!(u->cancel && *u->cancel))
				u->fn(w->sym, w->memo, i, u->arg);
		if (i >= u->jobs)
			return NULL;
	}
}

void collect_unwinders_run(struct collect_unwinders *u, size_t jobs,
			   void (*fn)(struct sym_session *sym, struct sym_memo *memo, size_t i,
				      void *arg),
			   void *arg, volatile sig_atomic_t *cancel)
{
	char err[256];
	join_all(u, err, sizeof err);
	if (!u->n)
		return;
	u->jobs = jobs;
	u->fn = fn;
	u->arg = arg;
	u->cancel = cancel;
	atomic_init(&u->next, 0);
	for (size_t i = 1; i < u->n; i++)
		u->w[i].started = pthread_create(&u->w[i].thread, NULL, run_one, &u->w[i]) == 0;
	run_one(&u->w[0]);
	for (size_t i = 1; i < u->n; i++) {
		if (u->w[i].started)
			pthread_join(u->w[i].thread, NULL);
		u->w[i].started = 0;
	}
}

struct sym_memo_stats collect_unwinders_memo_stats(const struct collect_unwinders *u)
{
	struct sym_memo_stats sum = { 0 };
	for (size_t i = 0; u && i < u->n; i++) {
		struct sym_memo_stats one = sym_memo_stats(u->w[i].memo);
		sum.hits += one.hits;
		sum.misses += one.misses;
		sum.inserted += one.inserted;
		sum.clears += one.clears;
	}
	return sum;
}

void collect_unwinders_close(struct collect_unwinders *u)
{
	if (!u)
		return;
	char err[256];
	join_all(u, err, sizeof err);
	for (size_t i = 0; i < u->n; i++) {
		sym_memo_free(u->w[i].memo);    /* its frames name the session's strings */
		sym_close(u->w[i].sym);
	}
	free(u);
}
