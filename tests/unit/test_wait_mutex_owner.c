/* test_wait_mutex_owner.c — tests attach_mutex_owner() (attach/wait.h) on
 * this process's own memory: real glibc pthread_mutex_t values (normal,
 * recursive, robust and priority-inheritance) locked by a second thread,
 * unlocked, and contended (a third thread blocked in the futex, found and
 * classified through /proc like pprofc does); plus hand-made mutex words
 * and unreadable addresses.  Threads are synchronised with semaphores and
 * by waiting until /proc shows the waiter blocked: nothing depends on timing.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stddef.h>
#include <time.h>

#include "attach/wait.h"
#include "check.h"

static void sem_wait_all(sem_t *s)
{
	while (sem_wait(s) != 0 && errno == EINTR)
		;
}

/* A thread that locks m, says so, and unlocks it when told. */
struct holder {
	pthread_mutex_t *m;
	int twice;              /* lock it twice (recursive mutexes) */
	sem_t locked, release;
	pid_t tid;
	int lock_rc;
	pthread_t th;
};

static void *holder_main(void *arg)
{
	struct holder *h = arg;
	h->tid = gettid();
	h->lock_rc = pthread_mutex_lock(h->m);
	if (h->lock_rc == 0 && h->twice)
		h->lock_rc = pthread_mutex_lock(h->m);
	sem_post(&h->locked);
	sem_wait_all(&h->release);
	if (h->lock_rc == 0) {
		pthread_mutex_unlock(h->m);
		if (h->twice)
			pthread_mutex_unlock(h->m);
	}
	return NULL;
}

static int holder_start(struct holder *h, pthread_mutex_t *m, int twice)
{
	memset(h, 0, sizeof *h);
	h->m = m;
	h->twice = twice;
	sem_init(&h->locked, 0, 0);
	sem_init(&h->release, 0, 0);
	if (pthread_create(&h->th, NULL, holder_main, h) != 0)
		return -1;
	sem_wait_all(&h->locked);
	return 0;
}

static void holder_stop(struct holder *h)
{
	sem_post(&h->release);
	pthread_join(h->th, NULL);
	sem_destroy(&h->locked);
	sem_destroy(&h->release);
}

static pid_t owner_of(pthread_mutex_t *m)
{
	return attach_mutex_owner(getpid(), (uint64_t)(uintptr_t)m);
}

static void init_mutex(pthread_mutex_t *m, int type, int protocol, int robust)
{
	pthread_mutexattr_t a;
	pthread_mutexattr_init(&a);
	pthread_mutexattr_settype(&a, type);
	pthread_mutexattr_setprotocol(&a, protocol);
	if (robust)
		pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	int rc = pthread_mutex_init(m, &a);
	pthread_mutexattr_destroy(&a);
	if (rc != 0) {
		fprintf(stderr, "pthread_mutex_init: %s\n", strerror(rc));
		exit(2);
	}
}

/* Locks m in another thread, checks the owner while held and after. */
static void check_locked_by_other_thread(pthread_mutex_t *m, int twice, const char *what)
{
	struct holder h;
	CHECK_MSG(owner_of(m) == 0, "%s: unlocked mutex has an owner", what);
	if (holder_start(&h, m, twice) != 0) {
		CHECK_MSG(0, "%s: pthread_create failed", what);
		return;
	}
	CHECK_MSG(h.lock_rc == 0, "%s: pthread_mutex_lock: %s", what, strerror(h.lock_rc));
	pid_t owner = owner_of(m);
	CHECK_MSG(owner == h.tid, "%s: owner %d, locked by thread %d", what, (int)owner, (int)h.tid);
	CHECK_MSG(owner != gettid(), "%s: reported the reader as owner", what);
	holder_stop(&h);
	CHECK_MSG(owner_of(m) == 0, "%s: owner %d after unlock", what, (int)owner_of(m));
}

static void test_glibc_layout(void)
{
	/* The offsets attach_mutex_owner() relies on (docs/NOTES.md, "glibc pthread_mutex_t on x86_64"). */
	CHECK_INT_EQ(offsetof(pthread_mutex_t, __data.__lock), 0);
	CHECK_INT_EQ(offsetof(pthread_mutex_t, __data.__owner), 8);
	CHECK_INT_EQ(offsetof(pthread_mutex_t, __data.__kind), 16);
	CHECK_INT_EQ(PTHREAD_PRIO_INHERIT, 1);
}

static void test_unlocked(void)
{
	pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
	CHECK_INT_EQ(owner_of(&m), 0);
	pthread_mutex_lock(&m);
	pthread_mutex_unlock(&m);
	CHECK_INT_EQ(owner_of(&m), 0);
}

static void test_normal_locked_by_other_thread(void)
{
	pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
	check_locked_by_other_thread(&m, 0, "static initializer");
	pthread_mutex_t e;
	init_mutex(&e, PTHREAD_MUTEX_ERRORCHECK, PTHREAD_PRIO_NONE, 0);
	check_locked_by_other_thread(&e, 0, "error-checking");
	pthread_mutex_destroy(&e);
}

static void test_locked_by_this_thread(void)
{
	pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
	pthread_mutex_lock(&m);
	CHECK_INT_EQ(owner_of(&m), gettid());
	pthread_mutex_unlock(&m);
}

static void test_recursive_held_twice(void)
{
	pthread_mutex_t m;
	init_mutex(&m, PTHREAD_MUTEX_RECURSIVE, PTHREAD_PRIO_NONE, 0);
	check_locked_by_other_thread(&m, 1, "recursive");
	pthread_mutex_destroy(&m);
}

static void test_priority_inheritance(void)
{
	pthread_mutex_t m;
	init_mutex(&m, PTHREAD_MUTEX_NORMAL, PTHREAD_PRIO_INHERIT, 0);
	check_locked_by_other_thread(&m, 0, "PTHREAD_PRIO_INHERIT");
	pthread_mutex_destroy(&m);
}

static void test_robust(void)
{
	pthread_mutex_t m;
	init_mutex(&m, PTHREAD_MUTEX_NORMAL, PTHREAD_PRIO_NONE, 1);
	check_locked_by_other_thread(&m, 0, "robust");
	pthread_mutex_destroy(&m);
}

/* ---- contended: a waiter blocked in the futex --------------------------- */

struct waiter {
	pthread_mutex_t *m;
	sem_t started;
	pid_t tid;
	pthread_t th;
};

static void *waiter_main(void *arg)
{
	struct waiter *w = arg;
	w->tid = gettid();
	sem_post(&w->started);
	if (pthread_mutex_lock(w->m) == 0)
		pthread_mutex_unlock(w->m);
	return NULL;
}

/* Waits (however long it takes) until /proc shows tid sleeping in futex(),
 * and returns what pprofc would read there. */
static struct attach_syscall wait_blocked_in_futex(pid_t tid)
{
	char path[64];
	struct attach_syscall sc;
	memset(&sc, 0, sizeof sc);
	for (;;) {
		char buf[512], sbuf[1024];
		size_t len, slen;
		struct attach_stat st;
		snprintf(path, sizeof path, "/proc/self/task/%d/syscall", (int)tid);
		int ok = attach_read_small(path, buf, sizeof buf, &len) == 0 &&
			 attach_parse_syscall(buf, len, &sc) == 0 && sc.kind == ATTACH_SC_IN &&
			 sc.nr == 202;
		snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)tid);
		ok = ok && attach_read_small(path, sbuf, sizeof sbuf, &slen) == 0 &&
		     attach_parse_stat(sbuf, slen, &st) == 0 && st.state == 'S';
		if (ok)
			return sc;
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
}

static void check_contended(pthread_mutex_t *m, const char *what)
{
	struct holder h;
	struct waiter w;
	if (holder_start(&h, m, 0) != 0) {
		CHECK_MSG(0, "%s: pthread_create failed", what);
		return;
	}
	CHECK_MSG(h.lock_rc == 0, "%s: pthread_mutex_lock: %s", what, strerror(h.lock_rc));
	memset(&w, 0, sizeof w);
	w.m = m;
	sem_init(&w.started, 0, 0);
	pthread_create(&w.th, NULL, waiter_main, &w);
	sem_wait_all(&w.started);

	/* As pprofc sees it: the waiter's futex address is the mutex. */
	struct attach_syscall sc = wait_blocked_in_futex(w.tid);
	struct attach_wait aw;
	attach_classify('S', &sc, &aw);
	CHECK_MSG(aw.reason == ATTACH_R_FUTEX, "%s: waiter classified as %d", what, (int)aw.reason);
	CHECK_MSG(aw.futex == (uint64_t)(uintptr_t)m, "%s: futex 0x%llx, mutex %p", what,
		  (unsigned long long)aw.futex, (void *)m);
	pid_t owner = attach_mutex_owner(getpid(), aw.futex);
	CHECK_MSG(owner == h.tid, "%s: owner %d, held by %d (waiter %d)", what, (int)owner,
		  (int)h.tid, (int)w.tid);

	holder_stop(&h);
	pthread_join(w.th, NULL);
	sem_destroy(&w.started);
	CHECK_MSG(owner_of(m) == 0, "%s: owner %d after both unlocked", what, (int)owner_of(m));
}

static void test_contended_normal(void)
{
	pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
	check_contended(&m, "normal, contended");
}

static void test_contended_priority_inheritance(void)
{
	/* The lock word holds the owner's tid with FUTEX_WAITERS set. */
	pthread_mutex_t m;
	init_mutex(&m, PTHREAD_MUTEX_NORMAL, PTHREAD_PRIO_INHERIT, 0);
	check_contended(&m, "PTHREAD_PRIO_INHERIT, contended");
	pthread_mutex_destroy(&m);
}

/* ---- hand-made mutex words, unreadable memory --------------------------- */

static void test_fake_mutex_words(void)
{
	/* __lock, __count, __owner, __nusers, __kind, ... */
	int32_t locked[10] = { 2, 0, 1234, 1, 0 };
	CHECK_INT_EQ(attach_mutex_owner(getpid(), (uint64_t)(uintptr_t)locked), 1234);
	int32_t stale_owner[10] = { 0, 0, 1234, 0, 0 };
	CHECK_INT_EQ(attach_mutex_owner(getpid(), (uint64_t)(uintptr_t)stale_owner), 0);
	int32_t pi[10] = { (int32_t)(0x80000000u | 777u), 0, 0, 1, 0x20 };
	CHECK_INT_EQ(attach_mutex_owner(getpid(), (uint64_t)(uintptr_t)pi), 777);
}

static void test_unreadable(void)
{
	CHECK_INT_EQ(attach_mutex_owner(getpid(), 0), 0);
	CHECK_INT_EQ(attach_mutex_owner(getpid(), 8), 0);
	/* A mutex word that straddles the end of readable memory. */
	int32_t words[2] = { 2, 0 };
	struct guarded g;
	const char *p = guard_copy(&g, words, sizeof words);
	CHECK_INT_EQ(attach_mutex_owner(getpid(), (uint64_t)(uintptr_t)p), 0);
	guard_free(&g);
}

int main(void)
{
	RUN(test_glibc_layout);
	RUN(test_unlocked);
	RUN(test_normal_locked_by_other_thread);
	RUN(test_locked_by_this_thread);
	RUN(test_recursive_held_twice);
	RUN(test_priority_inheritance);
	RUN(test_robust);
	RUN(test_contended_normal);
	RUN(test_contended_priority_inheritance);
	RUN(test_fake_mutex_words);
	RUN(test_unreadable);
	return check_summary("test_wait_mutex_owner");
}
