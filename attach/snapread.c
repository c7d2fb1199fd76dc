/* snapread.c — the snapshot's first pass: every thread's /proc state, and
 * the stacks of threads blocked in a system call, taken without stopping
 * them (peek.c).
 *
 * Nothing in this pass uses ptrace (a tracee belongs to the one thread that
 * seized it), so it can be spread over worker threads: with hundreds of
 * threads it is a few thousand small /proc reads, most of the snapshot's
 * time, and each thread's reads depend on no other thread's.  Each worker
 * takes the next few threads from a shared counter; each thread's results
 * go to its own slot, so the workers share nothing else.
 *
 * Per thread it reads what the dump prints or needs to decide:
 *   stat     state, comm, the CPU it last ran on (whose clock dates its wait)
 *   sched    se.exec_start (how long it waited) and nr_switches; read
 *            before syscall and, for a peek, again after the copy (peek.c)
 *   syscall  the call it is blocked in, with its user sp and pc
 *   wchan    only where the output shows it (state D, or every thread for
 *            JSON)
 *   status   TracerPid, only for a thread that will be seized: another
 *            tool's tracer makes the snapshot refuse it.  A thread read
 *            without stopping needs no ptrace, and status is the dearest
 *            of these files (22 us a thread here, against 16 for stat).
 * Each through openat() on the thread's own /proc directory, so the path
 * is walked once per thread, not once per file.
 */
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

/* Threads a worker claims at a time: enough to keep the shared counter
 * cold, few enough that the workers finish together. */
#define CHUNK 8
/* Fewer threads than this per worker are not worth a thread of pprofc. */
#define MIN_PER_WORKER 32
#define MAX_WORKERS 16

struct pass {
	int taskdir;                    /* /proc/PID/task, O_PATH */
	struct attach_thread *threads;
	unsigned char *done;
	size_t n;
	const struct attach_maps *maps;
	const struct attach_opts *o;
	atomic_size_t next;
	atomic_size_t peeked;
};

/* Reads thread t's files; its sched file stays open in *sched_fd (peek.c). */
static void read_thread(int dir, struct attach_thread *t, const struct attach_opts *o,
			int *sched_fd)
{
	char buf[4096];
	size_t len;
	t->has_stat = attach_read_at(dir, "stat", buf, sizeof buf, &len) == 0 &&
		      attach_parse_stat(buf, len, &t->stat) == 0;
	t->wchan[0] = 0;
	if ((o->all_wchan || (t->has_stat && t->stat.state == 'D')) &&
	    attach_read_at(dir, "wchan", buf, sizeof buf, &len) == 0 && strcmp(buf, "0") != 0)
		snprintf(t->wchan, sizeof t->wchan, "%.63s", buf);
	attach_read_wait_files(dir, t, sched_fd);
}

/* Another process's tracer on the thread, from its status, else 0. */
static pid_t tracer_of(int dir)
{
	char buf[4096];
	size_t len;
	struct attach_status st;
	if (attach_read_at(dir, "status", buf, sizeof buf, &len) || attach_parse_status(buf, len, &st))
		return 0;
	return st.tracer_pid;
}

/* System calls that fail with EINTR when their thread is stopped: never
 * stop a thread blocked in one of them, even when peeking fails. */
static int eintr_prone(long nr)
{
	return nr == SYS_epoll_wait || nr == SYS_epoll_pwait || nr == SYS_epoll_pwait2 ||
	       nr == SYS_semop || nr == SYS_semtimedop || nr == SYS_rt_sigtimedwait ||
	       nr == SYS_io_getevents || nr == SYS_io_pgetevents;
}

/* Reads a blocked thread without stopping it; retries a few times if it
 * ran meanwhile.  1 when done (taken, or deliberately left running). */
static int peek(struct pass *p, int dir, struct attach_thread *t, int *sched_fd)
{
	if (!t->has_stat || (t->stat.state != 'S' && t->stat.state != 'D') || t->sc.kind != ATTACH_SC_IN)
		return 0;
	for (int tries = 0; tries < 3; tries++) {
		if (attach_peek_blocked(*sched_fd, t, p->maps, p->o->stack_limit) == 0) {
			atomic_fetch_add(&p->peeked, 1);
			return 1;
		}
		if (*sched_fd >= 0)
			close(*sched_fd);
		read_thread(dir, t, p->o, sched_fd);    /* it moved: look again */
		if (!t->has_stat || t->sc.kind != ATTACH_SC_IN)
			return 0;
	}
	if (eintr_prone(t->sc.nr) || t->stat.state == 'D') {
		snprintf(t->not_taken, sizeof t->not_taken,
			 "woke up too often to be read without stopping it, and stopping it would disturb it");
		return 1;
	}
	return 0;
}

static void one_thread(struct pass *p, size_t i)
{
	struct attach_thread *t = &p->threads[i];
	char name[16];
	snprintf(name, sizeof name, "%d", (int)t->tid);
	int dir = openat(p->taskdir, name, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0)
		return;                 /* gone: seizing it will say so */
	int sched_fd = -1;
	read_thread(dir, t, p->o, &sched_fd);
	if (!p->o->stop_all && peek(p, dir, t, &sched_fd))
		p->done[i] = 1;
	else if (!(t->has_stat && t->stat.state == 'D'))
		t->tracer = tracer_of(dir);
	if (sched_fd >= 0)
		close(sched_fd);
	close(dir);
}

static void *worker(void *arg)
{
	struct pass *p = arg;
	for (;;) {
		size_t i = atomic_fetch_add(&p->next, CHUNK);
		if (i >= p->n)
			return NULL;
		size_t end = i + CHUNK < p->n ? i + CHUNK : p->n;
		for (; i < end; i++)
			if (!(p->o->cancel && *p->o->cancel))
				one_thread(p, i);
	}
}

/* One worker per CPU pprofc may run on, as far as there is work for it. */
static size_t workers_for(size_t n)
{
	size_t cpus = attach_usable_cpus();
	size_t w = n / MIN_PER_WORKER;
	w = w < cpus ? w : cpus;
	w = w < MAX_WORKERS ? w : MAX_WORKERS;
	return w ? w : 1;
}

size_t attach_read_threads(pid_t pid, struct attach_thread *threads, unsigned char *done,
			   size_t n, const struct attach_maps *maps, const struct attach_opts *o)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
	struct pass p = { .threads = threads, .done = done, .n = n, .maps = maps, .o = o };
	p.taskdir = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (p.taskdir < 0)
		return 0;               /* the process is gone: seizing says so */
	atomic_init(&p.next, 0);
	atomic_init(&p.peeked, 0);
	pthread_t tids[MAX_WORKERS];
	size_t started = 0, want = workers_for(n);
	/* The calling thread is one of the workers. */
	while (started + 1 < want && pthread_create(&tids[started], NULL, worker, &p) == 0)
		started++;
	worker(&p);
	for (size_t i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
	close(p.taskdir);
	return atomic_load(&p.peeked);
}
