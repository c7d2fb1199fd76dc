/* engine_perf.c — the perf_event engine (see engine.h).
 *
 * The kernel samples for us.  One task-clock event per thread and CPU,
 * sample_period = 1e9/hz ns of the thread's CPU time: the kernel's timer
 * interrupt takes each sample on the CPU, while the thread runs, with its
 * user registers (PERF_SAMPLE_REGS_USER) and the top of its user stack
 * (PERF_SAMPLE_STACK_USER).  Nothing is ever stopped.  A sample taken
 * while the thread runs in the kernel (a system call) carries the user
 * registers at the call: kernel time is charged to the user code that
 * made the call, as perf's user stacks do.
 *
 * The events are inherited (inherit + inherit_thread): threads created
 * later get their own, which write into their parent's buffer.  Each CPU's
 * events share one ring buffer (PERF_EVENT_IOC_SET_OUTPUT; the kernel
 * allows sharing between events of one CPU only, and refuses to mmap an
 * inherited per-task event).
 *
 * Threads that exist at the start are found in /proc/PID/task, again and
 * again until no new one shows up.  A thread found in a later pass may
 * already carry inherited events (its creator had its own): the
 * PERF_RECORD_FORK it caused says so, and a thread's own events are then
 * not counted (PERF_SAMPLE_IDENTIFIER names the event of each sample).
 *
 * With opts.uprobes, the events are uprobes (the `uprobe` PMU) instead of
 * the clock: one per probe, thread and CPU, a sample at every hit (the
 * heap kinds of attach: collect/heap_attach.c).  Defined in tracefs
 * (uprobe_events.c), they are tracepoint events, inherited like the
 * clock.  Where tracefs cannot be written, they are the uprobe PMU's,
 * which cannot be inherited (set_events says why): a thread created later
 * gets probes of its own as soon as its PERF_RECORD_FORK is read (the
 * kernel still writes one: the creator's events ask for task records),
 * and /proc is looked at every 0.1 s as well; what such a thread does
 * before then is not seen.  Samples of all rings are
 * then handed out in time order, so that a thread's entry into a function
 * comes before its return even when it moved to another CPU between them.
 *
 * With opts.clones, the events are the syscall tracepoints of clone and
 * clone3 (entry and exit), inherited like the clock: an entry with
 * CLONE_THREAD in its flags (clone: the first argument; clone3: the first
 * field of the struct it points to, read from the stack copy, where
 * glibc builds it) keeps its registers and stack until the same thread's
 * exit says whether a thread was made (the return value, its tid, > 0).
 * A fork (no CLONE_THREAD) is not a thread creation: counted apart.
 *
 * If pprofc dies, the kernel closes the events with its descriptors and
 * the target runs on as if nothing happened.  See docs/ARCHITECTURE.md,
 * "Engines", and docs/NOTES.md, "perf_event".
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/perf_event.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <asm/perf_regs.h>

#include "engine_impl.h"
#include "internal.h"
#include "uprobes.h"

#define MAX_STACK_COPY 65528u           /* the kernel's limit (u16, 8-aligned) */
#define CLONE_THREAD_FLAG 0x00010000u   /* <linux/sched.h>'s CLONE_THREAD */

/* opts.clones: the events, in this order (the index is the sample's probe). */
enum { TP_ENTER_CLONE, TP_ENTER_CLONE3, TP_EXIT_CLONE, TP_EXIT_CLONE3, TP_N };
static const char *const tracepoints[TP_N] = {
	"syscalls/sys_enter_clone", "syscalls/sys_enter_clone3",
	"syscalls/sys_exit_clone", "syscalls/sys_exit_clone3",
};
#define EXIT_CHECK_NS 100000000u        /* how often to look for the target's end */

/* The user registers asked for, in perf's numbering; the kernel writes
 * them in increasing bit order, and regs_order[] says where each goes. */
static const int regs_order[] = {
	PERF_REG_X86_AX, PERF_REG_X86_BX, PERF_REG_X86_CX, PERF_REG_X86_DX,
	PERF_REG_X86_SI, PERF_REG_X86_DI, PERF_REG_X86_BP, PERF_REG_X86_SP,
	PERF_REG_X86_IP, PERF_REG_X86_R8, PERF_REG_X86_R9, PERF_REG_X86_R10,
	PERF_REG_X86_R11, PERF_REG_X86_R12, PERF_REG_X86_R13, PERF_REG_X86_R14,
	PERF_REG_X86_R15,
};
#define NREGS_USER (sizeof regs_order / sizeof regs_order[0])

static int dwarf_of(int perf_reg)
{
	switch (perf_reg) {
	case PERF_REG_X86_AX: return REGNAME(AX);
	case PERF_REG_X86_BX: return REGNAME(BX);
	case PERF_REG_X86_CX: return REGNAME(CX);
	case PERF_REG_X86_DX: return REGNAME(DX);
	case PERF_REG_X86_SI: return REGNAME(SI);
	case PERF_REG_X86_DI: return REGNAME(DI);
	case PERF_REG_X86_BP: return REGNAME(BP);
	case PERF_REG_X86_SP: return REGNAME(SP);
	case PERF_REG_X86_IP: return REGNAME(PC);
	default: return REGNAME(R8) + (perf_reg - PERF_REG_X86_R8);
	}
}

/* One CPU's ring buffer, owned by the first event opened on that CPU. */
struct ring {
	int cpu;
	int fd;                         /* -1: no event on this CPU yet */
	struct perf_event_mmap_page *meta;
	unsigned char *data;
	size_t size;                    /* data bytes, a power of two */
	size_t map_len;
	uint64_t head;                  /* this pass: where samples end */
	uint64_t tail;                  /* this pass: the next record to read */
};

/* opts.clones: a thread inside clone(CLONE_THREAD...): its entry's
 * registers and stack, until its exit says whether a thread was made. */
struct pending_clone {
	pid_t tid;                      /* 0: free */
	struct attach_raw_sample s;
	unsigned char *stack;           /* s.stack points here */
	size_t cap;
};

/* A thread the engine knows of. */
struct pthread_entry {
	pid_t tid;                      /* 0: free slot; -1: deleted */
	char comm[16];
	int inherited;                  /* a PERF_RECORD_FORK showed its creator
					 * was sampled: its events are inherited */
	int own_events;                 /* we opened events for it */
	uint64_t exited;                /* the drain that saw its
					 * PERF_RECORD_EXIT (0: none); it is
					 * forgotten a drain later */
	int start_known;                /* cpu_start is its schedstat when the
					 * window began (0 if born in it) */
	uint64_t cpu_start;
};

struct perf_engine {
	pid_t pid;
	struct attach_engine_opts o;
	struct attach_engine_stats *st;
	struct perf_event_attr attr;    /* the clock, or the base of attrs */
	struct perf_event_attr *attrs;  /* each event opened per thread and CPU */
	size_t nattrs;
	struct ring *rings;
	size_t nrings;
	struct pollfd *pfds;
	int *fds;                       /* every event we opened */
	uint64_t *fd_ids;               /* ...its id (PERF_EVENT_IOC_ID) */
	pid_t *fd_tids;                 /* ...and its thread */
	int *fd_probes;                 /* ...and its uprobe, or -1 */
	size_t nfds, capfds;
	size_t last_fd;                 /* probe_of's last find */
	struct pthread_entry *threads;  /* open addressing by tid */
	size_t cap_threads, n_used;     /* slots used, deleted ones included */
	unsigned char *scratch;         /* a record that wraps the ring's end */
	size_t scratch_len;
	uint64_t start_ns, next_check_ns;
	uint64_t drains;                /* how many times the rings were read */
	int any_doubled;                /* some thread has events twice */
	uint64_t *probe_hits;           /* uprobes: samples of each probe */
	struct attach_uprobe_events tracefs;    /* uprobes defined there, if
					 * .n: inherited events on them */
	int forked;                     /* uprobes: a FORK read, its thread
					 * without probes yet (open_all) */
	struct pending_clone *pending;  /* clones: calls in flight */
	size_t npending;
	uint64_t cpu_start;             /* the kernel's count at the start */
	uint64_t cpu_last;              /* ...and when last looked at */
	int ended;
};

/* ---- the kernel's CPU accounting, for the summary ---------------------- */

/* The CPU time of the whole process (its exited threads included), or of
 * the threads asked for, in ns. */
static uint64_t kernel_cpu(const struct perf_engine *e)
{
	if (e->o.only) {
		uint64_t sum = 0;
		for (size_t i = 0; i < e->o.n_only; i++)
			sum += attach_read_schedstat(e->pid, e->o.only[i]);
		return sum;
	}
	char path[64], buf[1024];
	size_t len;
	struct attach_stat st;
	snprintf(path, sizeof path, "/proc/%d/stat", (int)e->pid);
	if (attach_read_small(path, buf, sizeof buf, &len) || attach_parse_stat(buf, len, &st))
		return 0;
	long hz = sysconf(_SC_CLK_TCK);
	return (st.utime + st.stime) * (1000000000ull / (uint64_t)(hz > 0 ? hz : 100));
}

/* ---- threads ------------------------------------------------------------ */

/* Rebuilds the table at cap slots, dropping deleted entries. */
static int rehash(struct perf_engine *e, size_t cap)
{
	struct pthread_entry *t = calloc(cap, sizeof *t), *old = e->threads;
	if (!t)
		return -1;
	size_t oldcap = e->cap_threads;
	e->threads = t;
	e->cap_threads = cap;
	e->n_used = 0;
	for (size_t i = 0; i < oldcap; i++) {
		if (old[i].tid <= 0)
			continue;
		size_t j = ((size_t)old[i].tid * 2654435761u) & (cap - 1);
		while (t[j].tid)
			j = (j + 1) & (cap - 1);
		t[j] = old[i];
		e->n_used++;
	}
	free(old);
	return 0;
}

/* The entry of tid; with add, created if absent.  Deleted entries keep
 * their slot (so probing goes on past them) until the next rehash. */
static struct pthread_entry *thread_slot(struct perf_engine *e, pid_t tid, int add)
{
	if (add && (e->n_used + 1) * 2 > e->cap_threads) {
		size_t live = 0, cap = 256;
		for (size_t i = 0; i < e->cap_threads; i++)
			live += e->threads[i].tid > 0;
		while (cap < (live + 1) * 4)
			cap *= 2;
		if (rehash(e, cap))
			return NULL;
	}
	if (!e->cap_threads)
		return NULL;
	size_t j = ((size_t)tid * 2654435761u) & (e->cap_threads - 1);
	for (; e->threads[j].tid; j = (j + 1) & (e->cap_threads - 1))
		if (e->threads[j].tid == tid)
			return &e->threads[j];
	if (!add)
		return NULL;
	memset(&e->threads[j], 0, sizeof e->threads[j]);
	e->threads[j].tid = tid;
	e->n_used++;
	e->st->threads_seen++;
	return &e->threads[j];
}

static void read_comm(const struct perf_engine *e, struct pthread_entry *t)
{
	char path[64], buf[64];
	size_t len;
	snprintf(path, sizeof path, "/proc/%d/task/%d/comm", (int)e->pid, (int)t->tid);
	if (attach_read_small(path, buf, sizeof buf, &len) == 0 && len > 0) {
		/* The name, then a newline; the name may hold newlines too. */
		buf[buf[len - 1] == '\n' ? len - 1 : len] = 0;
		snprintf(t->comm, sizeof t->comm, "%.15s", buf);
	} else {
		snprintf(t->comm, sizeof t->comm, "?");
	}
}

static struct pthread_entry *thread_of(struct perf_engine *e, pid_t tid)
{
	struct pthread_entry *t = thread_slot(e, tid, 0);
	if (!t && (t = thread_slot(e, tid, 1)))
		read_comm(e, t);
	return t;
}

/* ---- opening events ------------------------------------------------------ */

static int perf_open(struct perf_event_attr *a, pid_t tid, int cpu)
{
	return (int)syscall(SYS_perf_event_open, a, tid, cpu, -1, PERF_FLAG_FD_CLOEXEC);
}

static int seccomp_filtered(void)
{
	char buf[4096];
	size_t len;
	const char *p;
	return attach_read_small("/proc/self/status", buf, sizeof buf, &len) == 0 &&
	       (p = strstr(buf, "\nSeccomp:")) && atoi(p + 9) == 2;
}

/* Why perf_event_open failed, and what to do: one line for the summary
 * (auto falls back to ptrace) or the error (--engine perf). */
static void explain(int e, pid_t pid, struct attach_error *err)
{
	char paranoid[16] = "?";
	size_t len;
	if (attach_read_small("/proc/sys/kernel/perf_event_paranoid", paranoid, sizeof paranoid, &len) == 0)
		paranoid[strcspn(paranoid, "\n")] = 0;
	err->code = e == ESRCH ? ATTACH_ERR_NOPROC : e == EACCES || e == EPERM ? ATTACH_ERR_PERM
									 : ATTACH_ERR_OTHER;
	const char *name = strerrorname_np(e) ? strerrorname_np(e) : "error";
	int privileged = attach_has_cap(38 /* CAP_PERFMON */) || attach_has_cap(21 /* CAP_SYS_ADMIN */);
	if ((e == EPERM || e == EACCES) && (seccomp_filtered() || privileged))
		snprintf(err->msg, sizeof err->msg,
			 "perf_event_open refused (%s) by a seccomp filter, as in a container's default "
			 "profile: allow perf_event_open in the filter, or use --engine ptrace", name);
	else if (e == EPERM || e == EACCES)
		snprintf(err->msg, sizeof err->msg,
			 "perf_event_open refused (%s): perf_event_paranoid is %s and pprofc has neither "
			 "CAP_PERFMON nor CAP_SYS_ADMIN: run as root, or set "
			 "/proc/sys/kernel/perf_event_paranoid to 1 or less, or use --engine ptrace",
			 name, paranoid);
	else if (e == ENOSYS || e == ENOENT || e == EOPNOTSUPP || e == ENODEV)
		snprintf(err->msg, sizeof err->msg,
			 "perf_event_open is not available (%s): this kernel has no perf events "
			 "(CONFIG_PERF_EVENTS) or blocks them; use --engine ptrace", name);
	else if (e == EMFILE || e == ENFILE)
		snprintf(err->msg, sizeof err->msg,
			 "perf_event_open: out of file descriptors (%s) for one event per thread and "
			 "CPU of PID %d: raise `ulimit -n`, or use --engine ptrace", name, (int)pid);
	else
		snprintf(err->msg, sizeof err->msg, "perf_event_open failed for PID %d: %s",
			 (int)pid, strerror(e));
}

/* The data bytes a ring should hold: a tenth of a second of samples at
 * the full rate of one CPU, and at least 16 samples. */
static size_t ring_bytes(const struct perf_engine *e)
{
	size_t per = e->o.stack_size + 256;     /* the stack, registers, header */
	if (e->o.n_uprobes)
		return 64u << 20;       /* hits come as fast as the code calls */
	if (e->o.clones)
		return per * 64;        /* a burst of thread creations */
	return per * (size_t)(e->o.hz / 10 > 16 ? e->o.hz / 10 : 16);
}

/* Maps a ring of at least want bytes of data, halving under the locked
 * memory limit (perf_event_mlock_kb, for users without CAP_IPC_LOCK). */
static int map_ring(struct ring *r, size_t want)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE), size = page * 8;
	while (size < want && size < (64u << 20))
		size *= 2;
	for (; size >= page * 2; size /= 2) {
		void *p = mmap(NULL, size + page, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, 0);
		if (p != MAP_FAILED) {
			r->meta = p;
			r->data = (unsigned char *)p + page;
			r->size = size;
			r->map_len = size + page;
			return 0;
		}
		if (errno != EPERM && errno != ENOMEM)
			return -1;
	}
	return -1;
}

static int remember_fd(struct perf_engine *e, int fd, pid_t tid, int probe)
{
	if (e->nfds == e->capfds) {
		size_t cap = e->capfds ? e->capfds * 2 : 64;
		int *f = realloc(e->fds, cap * sizeof *f);
		if (f)
			e->fds = f;
		uint64_t *ids = realloc(e->fd_ids, cap * sizeof *ids);
		if (ids)
			e->fd_ids = ids;
		pid_t *tids = realloc(e->fd_tids, cap * sizeof *tids);
		if (tids)
			e->fd_tids = tids;
		int *probes = realloc(e->fd_probes, cap * sizeof *probes);
		if (probes)
			e->fd_probes = probes;
		if (!f || !ids || !tids || !probes)
			return -1;
		e->capfds = cap;
	}
	uint64_t id = 0;
	ioctl(fd, PERF_EVENT_IOC_ID, &id);
	e->fds[e->nfds] = fd;
	e->fd_ids[e->nfds] = id;
	e->fd_tids[e->nfds] = tid;
	e->fd_probes[e->nfds] = probe;
	e->nfds++;
	return 0;
}

/* The uprobe an event of ours stands for, or -1.  The last one found is
 * kept: hits come in runs of the same probe. */
static int probe_of(struct perf_engine *e, uint64_t id)
{
	if (e->last_fd < e->nfds && e->fd_ids[e->last_fd] == id)
		return e->fd_probes[e->last_fd];
	for (size_t i = 0; i < e->nfds; i++)
		if (e->fd_ids[i] == id) {
			e->last_fd = i;
			return e->fd_probes[i];
		}
	return -1;
}

/* The thread an event of ours was opened for, or 0. */
static pid_t owner_of(const struct perf_engine *e, uint64_t id)
{
	for (size_t i = 0; i < e->nfds; i++)
		if (e->fd_ids[i] == id)
			return e->fd_tids[i];
	return 0;
}

static struct pthread_entry *thread_slot(struct perf_engine *e, pid_t tid, int add);

/* A thread found in /proc after its creator's events already covered it:
 * its own events (and their copies in the threads it creates) count the
 * same time again.  Samples of an event opened for such a thread are not
 * counted (PERF_SAMPLE_IDENTIFIER names the event each comes from, the
 * opened one for inherited copies too). */
static int doubled(struct perf_engine *e, uint64_t id)
{
	if (!e->any_doubled)
		return 0;       /* the usual case: no search per sample */
	pid_t owner = owner_of(e, id);
	struct pthread_entry *o = owner ? thread_slot(e, owner, 0) : NULL;
	return o && o->inherited && o->own_events;
}

/* ...and its own events are switched off at once; the switch reaches the
 * copies its threads inherited. */
static void disable_own_events(struct perf_engine *e, pid_t tid)
{
	e->any_doubled = 1;
	for (size_t i = 0; i < e->nfds; i++)
		if (e->fd_tids[i] == tid)
			ioctl(e->fds[i], PERF_EVENT_IOC_DISABLE, 0);
}

/* Opens event a for tid on one CPU; an fd, or -1 with errno set. */
static int open_event(struct perf_engine *e, struct perf_event_attr *a, pid_t tid, int cpu)
{
	int fd = perf_open(a, tid, cpu);
	if (fd < 0 && (errno == EACCES || errno == EPERM) && !a->exclude_kernel && e->nfds == 0 &&
	    !e->o.n_uprobes && !e->o.clones) {
		/* perf_event_paranoid 2 allows user-space samples only:
		 * take those, and say that kernel time is not sampled. */
		a->exclude_kernel = 1;
		e->st->kernel_excluded = 1;
		fd = perf_open(a, tid, cpu);
	}
	if (fd < 0 && errno == EINVAL && a->inherit_thread) {
		for (size_t i = 0; i < e->nattrs; i++)
			e->attrs[i].inherit_thread = 0;     /* kernels before 5.13 */
		fd = perf_open(a, tid, cpu);
	}
	return fd;
}

/* Opens tid's events, each once per CPU.  Returns 0, or an errno. */
static int open_thread(struct perf_engine *e, pid_t tid)
{
	int opened = 0;
	for (size_t k = 0; k < e->nattrs * e->nrings; k++) {
		struct ring *r = &e->rings[k % e->nrings];
		int fd = open_event(e, &e->attrs[k / e->nrings], tid, r->cpu);
		if (fd < 0) {
			if (errno == ENODEV || errno == ENXIO)
				continue;               /* an offline CPU */
			return errno;   /* any other CPU missing would lose its samples */
		}
		if (r->fd < 0) {
			r->fd = fd;
			if (map_ring(r, ring_bytes(e))) {
				int er = errno;
				close(fd);
				r->fd = -1;
				return er ? er : ENOMEM;
			}
		} else if (ioctl(fd, PERF_EVENT_IOC_SET_OUTPUT, r->fd) != 0) {
			int er = errno;
			close(fd);
			return er;
		}
		if (remember_fd(e, fd, tid, e->nattrs > 1 ? (int)(k / e->nrings) : -1)) {
			close(fd);
			return ENOMEM;
		}
		opened++;
	}
	return opened ? 0 : ENODEV;
}

static int wanted(const struct perf_engine *e, pid_t tid)
{
	return attach_engine_wants(&e->o, tid);
}

static void scan_task_records(struct perf_engine *e);

/* Opens events for every thread in /proc/PID/task not covered yet, again
 * until a pass finds none (threads are created meanwhile).  Returns 0 or
 * an errno. */
static int open_all(struct perf_engine *e)
{
	for (int round = 0; round < 64; round++) {
		pid_t *tids;
		size_t n, added = 0;
		int r = attach_list_tasks(e->pid, &tids, &n);
		if (r)
			return -r;
		scan_task_records(e);   /* learn which new threads inherited */
		for (size_t i = 0; i < n; i++) {
			struct pthread_entry *t = thread_slot(e, tids[i], 0);
			if ((t && (t->own_events || t->inherited)) || !wanted(e, tids[i]))
				continue;
			if (!t && !(t = thread_slot(e, tids[i], 1))) {
				free(tids);
				return ENOMEM;
			}
			read_comm(e, t);
			t->cpu_start = attach_read_schedstat(e->pid, tids[i]);
			t->start_known = 1;
			int er = open_thread(e, tids[i]);
			if (er == ESRCH)
				continue;       /* exited meanwhile */
			if (er) {
				free(tids);
				return er;
			}
			t->own_events = 1;
			added++;
		}
		free(tids);
		if (!added)
			return 0;
	}
	return 0;
}

/* ---- reading the rings --------------------------------------------------- */

/* A record at offset off of ring r, contiguous (copied if it wraps). */
static const unsigned char *record_at(struct perf_engine *e, const struct ring *r, uint64_t off,
				      size_t len)
{
	size_t at = (size_t)(off & (r->size - 1));
	if (at + len <= r->size)
		return r->data + at;
	if (e->scratch_len < len) {
		unsigned char *b = realloc(e->scratch, len);
		if (!b)
			return NULL;
		e->scratch = b;
		e->scratch_len = len;
	}
	size_t first = r->size - at;
	memcpy(e->scratch, r->data + at, first);
	memcpy(e->scratch + first, r->data, len - first);
	return e->scratch;
}

/* ---- thread creations (opts.clones) -------------------------------------- */

static struct pending_clone *pending_of(struct perf_engine *e, pid_t tid, int add)
{
	struct pending_clone *free_slot = NULL;
	for (size_t i = 0; i < e->npending; i++) {
		if (e->pending[i].tid == tid)
			return &e->pending[i];
		if (!e->pending[i].tid && !free_slot)
			free_slot = &e->pending[i];
	}
	if (!add || free_slot)
		return free_slot;
	struct pending_clone *v = realloc(e->pending, (e->npending + 1) * sizeof *v);
	if (!v)
		return NULL;
	e->pending = v;
	memset(&v[e->npending], 0, sizeof *v);
	return &v[e->npending++];
}

/* The flags of a clone entry: clone's first argument; clone3's struct
 * clone_args (its flags first) is in the caller's frame, so in the stack
 * copy, or else still in the target's memory (the call is in flight). */
static uint64_t clone_flags(const struct attach_raw_sample *s)
{
	uint64_t arg = REG(&s->regs, DI), flags = 0;
	if (s->probe == TP_ENTER_CLONE)
		return arg;
	if (s->stack && arg >= s->stack_addr && arg - s->stack_addr + 8 <= s->stack_len)
		memcpy(&flags, s->stack + (arg - s->stack_addr), 8);
	else if (attach_read_mem(s->tid, arg, &flags, 8) != 8)
		flags = CLONE_THREAD_FLAG;      /* unreadable: the exit decides */
	return flags;
}

/* An entry with CLONE_THREAD is kept until its exit; an exit that made a
 * thread (its tid returned, > 0, to the creator; the new thread's own
 * exit returns 0) hands the entry out as the sample. */
static void on_clone_event(struct perf_engine *e, const struct attach_raw_sample *s)
{
	struct pending_clone *pc;
	if (s->probe == TP_ENTER_CLONE || s->probe == TP_ENTER_CLONE3) {
		if (!(clone_flags(s) & CLONE_THREAD_FLAG)) {
			e->st->clones_not_threads++;
			return;
		}
		if (!(pc = pending_of(e, s->tid, 1)))
			return;
		if (pc->cap < s->stack_len) {
			unsigned char *b = realloc(pc->stack, s->stack_len);
			if (!b) {
				pc->tid = 0;
				return;
			}
			pc->stack = b;
			pc->cap = s->stack_len;
		}
		pc->tid = s->tid;
		pc->s = *s;
		if (s->stack_len)
			memcpy(pc->stack, s->stack, s->stack_len);
		pc->s.stack = pc->stack;
		pc->s.comm = NULL;
		return;
	}
	if (s->probe != TP_EXIT_CLONE && s->probe != TP_EXIT_CLONE3)
		return;
	if (!(pc = pending_of(e, s->tid, 0)) || pc->tid != s->tid)
		return;
	int64_t ret = (int64_t)REG(&s->regs, AX);
	pc->tid = 0;
	if (ret <= 0) {
		e->st->clones_failed++;
		return;
	}
	pc->s.created = (pid_t)ret;
	pc->s.comm = s->comm;
	pc->s.weight_ns = 1;
	e->st->samples++;
	e->o.on_sample(e->o.arg, &pc->s);
}

/* The id of a tracepoint ("syscalls/sys_enter_clone"), from tracefs; -1
 * with errno set. */
static int tracepoint_id(const char *name)
{
	const char *root = attach_tracefs();
	char path[160], buf[32];
	size_t len;
	if (!root)
		return -1;
	snprintf(path, sizeof path, "%s/events/%s/id", root, name);
	if (attach_read_small(path, buf, sizeof buf, &len) == 0) {
		buf[len < sizeof buf ? len : sizeof buf - 1] = 0;
		int id = atoi(buf);
		if (id > 0)
			return id;
	}
	if (errno != EACCES && errno != EPERM)
		errno = ENOENT;
	return -1;
}

static void on_sample_record(struct perf_engine *e, const unsigned char *p, size_t len)
{
	const unsigned char *end = p + len;
	uint64_t id, time, period, abi;
	uint32_t pid, tid;
	p += sizeof(struct perf_event_header);
	if (end - p < 32)
		return;
	memcpy(&id, p, 8);
	memcpy(&pid, p + 8, 4);
	memcpy(&tid, p + 12, 4);
	memcpy(&time, p + 16, 8);
	memcpy(&period, p + 24, 8);
	p += 32;
	if ((pid_t)pid != e->pid || !wanted(e, (pid_t)tid))
		return;                 /* a child process (inherit without
					 * inherit_thread, old kernels) */
	struct pthread_entry *t = thread_of(e, (pid_t)tid);
	if (t && doubled(e, id))
		return;                 /* counted by inherited events */
	if (end - p < 8)
		return;
	memcpy(&abi, p, 8);
	p += 8;
	struct attach_raw_sample s;
	memset(&s, 0, sizeof s);
	if (abi == PERF_SAMPLE_REGS_ABI_NONE || (size_t)(end - p) < NREGS_USER * 8) {
		e->st->no_user_regs++;  /* a kernel thread: never ours */
		return;
	}
	for (size_t i = 0; i < NREGS_USER; i++)
		memcpy(&s.regs.v[dwarf_of(regs_order[i])], p + 8 * i, 8);
	s.regs.known = ARCH_REGS_ALL;
	p += NREGS_USER * 8;
	uint64_t size = 0, dyn = 0;
	if (end - p >= 8) {
		memcpy(&size, p, 8);
		p += 8;
	}
	if (size && (uint64_t)(end - p) >= size + 8) {
		memcpy(&dyn, p + size, 8);
		s.stack = p;
		s.stack_len = (size_t)(dyn < size ? dyn : size);
	}
	s.tid = (pid_t)tid;
	s.probe = e->nattrs > 1 ? probe_of(e, id) : -1;
	if (s.probe >= 0 && e->probe_hits)
		e->probe_hits[s.probe]++;
	s.time_ns = time;
	s.comm = t ? t->comm : "?";
	s.weight_ns = period;
	s.stack_addr = REG(&s.regs, SP);
	/* The kernel copies up to the size asked for (less if the record
	 * would pass 64 KiB: then size is what it kept), and dyn_size less
	 * where the stack's mapping ends: a full copy may have cut a deeper
	 * stack. */
	s.stack_cut = size && dyn >= size;
	s.state = 'R';
	s.blocked_ms = -1;
	if (e->o.clones) {
		on_clone_event(e, &s);
		return;
	}
	e->st->samples++;
	e->st->sampled_ns += period;
	e->o.on_sample(e->o.arg, &s);
}

/* The sample_id trailer of a non-sample record (sample_id_all): with our
 * sample_type, pid and tid, time, then the identifier, in its last 24
 * bytes. */
static int trailer_of(const unsigned char *p, size_t len, uint32_t *tid, uint64_t *time, uint64_t *id)
{
	if (len < sizeof(struct perf_event_header) + 24)
		return -1;
	const unsigned char *t = p + len - 24;
	memcpy(tid, t + 4, 4);
	memcpy(time, t + 8, 8);
	memcpy(id, t + 16, 8);
	return 0;
}

/* opts.switches: a record about one of the target's threads to on_sched,
 * once (records are read here as they are consumed, never rescanned). */
static void on_sched_record(struct perf_engine *e, const struct perf_event_header *h,
			    const unsigned char *p, size_t len)
{
	struct attach_sched_event ev;
	uint32_t pid, tid;
	uint64_t time, id;
	if (!e->o.switches || !e->o.on_sched || trailer_of(p, len, &tid, &time, &id))
		return;
	if (h->type == PERF_RECORD_SWITCH) {
		memcpy(&pid, p + len - 24, 4);
		if ((pid_t)pid != e->pid || !wanted(e, (pid_t)tid) || doubled(e, id))
			return;
		ev.kind = !(h->misc & PERF_RECORD_MISC_SWITCH_OUT) ? ATTACH_SCHED_IN
			: (h->misc & PERF_RECORD_MISC_SWITCH_OUT_PREEMPT) ? ATTACH_SCHED_PREEMPTED
									    : ATTACH_SCHED_OUT;
	} else {
		/* FORK and EXIT: pid, ppid, tid, ptid, time (the task's own). */
		if (len < sizeof *h + 24)
			return;
		memcpy(&pid, p + sizeof *h, 4);
		memcpy(&tid, p + sizeof *h + 8, 4);
		memcpy(&time, p + sizeof *h + 16, 8);
		if ((pid_t)pid != e->pid || doubled(e, id))
			return;
		ev.kind = h->type == PERF_RECORD_FORK ? ATTACH_SCHED_BORN : ATTACH_SCHED_EXITED;
	}
	ev.tid = (pid_t)tid;
	ev.time_ns = time;
	e->o.on_sched(e->o.arg, &ev);
}

static void on_task_record(struct perf_engine *e, const struct perf_event_header *h,
			   const unsigned char *p, size_t len)
{
	uint32_t pid, tid;
	if (len < sizeof *h + 16)
		return;
	memcpy(&pid, p + sizeof *h, 4);
	if ((pid_t)pid != e->pid)
		return;
	if (h->type == PERF_RECORD_FORK) {
		memcpy(&tid, p + sizeof *h + 8, 4);
		struct pthread_entry *t = thread_slot(e, (pid_t)tid, 1);
		if (t && e->o.n_uprobes && !e->tracefs.n) {
			/* The PMU's uprobe events are never inherited: the new
			 * thread has none until open_all gives it its own. */
			e->forked = 1;
		} else if (t) {
			if (!t->comm[0])
				read_comm(e, t);
			if (t->own_events && !t->inherited)
				disable_own_events(e, t->tid);
			t->inherited = 1;
			if (!t->start_known) {
				t->start_known = 1;     /* born in the window */
				t->cpu_start = 0;
			}
		}
	} else if (h->type == PERF_RECORD_EXIT) {
		memcpy(&tid, p + sizeof *h + 8, 4);
		struct pthread_entry *t = thread_slot(e, (pid_t)tid, 0);
		if (t && !t->exited)
			t->exited = e->drains;
	} else if (h->type == PERF_RECORD_COMM) {
		memcpy(&tid, p + sizeof *h + 4, 4);
		struct pthread_entry *t = thread_slot(e, (pid_t)tid, 1);
		if (t)
			snprintf(t->comm, sizeof t->comm, "%.15s", (const char *)p + sizeof *h + 8);
		if (h->misc & PERF_RECORD_MISC_COMM_EXEC) {
			e->ended = 1;
			e->st->target_execed = 1;
		}
	}
}

/* The whole record at r->tail if one is there before end (NULL if not),
 * its header in *h. */
static const unsigned char *next_record(struct perf_engine *e, const struct ring *r, uint64_t end,
					struct perf_event_header *h)
{
	const unsigned char *hp;
	if (r->fd < 0 || r->tail >= end || !(hp = record_at(e, r, r->tail, sizeof *h)))
		return NULL;
	memcpy(h, hp, sizeof *h);
	if (h->size < sizeof *h || r->tail + h->size > end)
		return NULL;
	return record_at(e, r, r->tail, h->size);
}

/* The task records (forks, exits, names), as far as the rings go now,
 * consuming nothing. */
static void scan_task_records(struct perf_engine *e)
{
	for (size_t c = 0; c < e->nrings; c++) {
		struct ring *r = &e->rings[c];
		if (r->fd < 0)
			continue;
		uint64_t head = __atomic_load_n(&r->meta->data_head, __ATOMIC_ACQUIRE);
		struct perf_event_header h;
		const unsigned char *p;
		for (r->tail = r->meta->data_tail; (p = next_record(e, r, head, &h)); r->tail += h.size)
			if (h.type == PERF_RECORD_FORK || h.type == PERF_RECORD_EXIT ||
			    h.type == PERF_RECORD_COMM)
				on_task_record(e, &h, p, h.size);
	}
}

/* The time of a sample record (PERF_SAMPLE_IDENTIFIER, TID, then TIME). */
static uint64_t sample_time(const unsigned char *p, size_t len)
{
	uint64_t t = 0;
	if (len >= sizeof(struct perf_event_header) + 24)
		memcpy(&t, p + sizeof(struct perf_event_header) + 16, 8);
	return t;
}

/* Ring c's next sample taken before upto (records of other types before
 * it are handled on the way); its time in *t, or NULL. */
static const unsigned char *next_sample(struct perf_engine *e, struct ring *r, uint64_t upto,
					uint64_t *t, struct perf_event_header *h)
{
	const unsigned char *p;
	while ((p = next_record(e, r, r->head, h))) {
		if (h->type == PERF_RECORD_SAMPLE) {
			*t = sample_time(p, h->size);
			return *t <= upto ? p : NULL;
		}
		if (h->type == PERF_RECORD_SWITCH || h->type == PERF_RECORD_FORK ||
		    h->type == PERF_RECORD_EXIT)
			on_sched_record(e, h, p, h->size);
		if (h->type == PERF_RECORD_LOST && h->size >= sizeof *h + 16) {
			uint64_t lost;
			memcpy(&lost, p + sizeof *h + 8, 8);
			e->st->lost_records += lost;
		}
		r->tail += h->size;
	}
	return NULL;
}

/* Every sample up to the heads taken before the task records were read
 * (so a thread's fork is always seen before its samples), and taken
 * before upto, oldest first across the rings: a sample stamped before
 * upto on one CPU is in its ring by the time the heads are read, so none
 * older than one handed out can come later.  Then those bytes are given
 * back to the kernel. */
static void scan_samples(struct perf_engine *e, uint64_t upto)
{
	for (size_t c = 0; c < e->nrings; c++)
		if (e->rings[c].fd >= 0)
			e->rings[c].tail = e->rings[c].meta->data_tail;
	for (;;) {
		struct ring *best = NULL;
		uint64_t best_t = 0, t;
		struct perf_event_header h;
		for (size_t c = 0; c < e->nrings; c++)
			if (next_sample(e, &e->rings[c], upto, &t, &h) && (!best || t < best_t)) {
				best = &e->rings[c];
				best_t = t;
			}
		if (!best)
			break;
		const unsigned char *p = next_record(e, best, best->head, &h);
		on_sample_record(e, p, h.size);
		best->tail += h.size;
	}
	for (size_t c = 0; c < e->nrings; c++)
		if (e->rings[c].fd >= 0)
			__atomic_store_n(&e->rings[c].meta->data_tail, e->rings[c].tail, __ATOMIC_RELEASE);
}


/* Threads that exited are forgotten once their last samples (in any
 * ring) were read: a process that churns through threads keeps a small
 * table.  Threads with events of their own stay, for their descriptors. */
static void forget_exited(struct perf_engine *e)
{
	for (size_t i = 0; i < e->cap_threads; i++)
		if (e->threads[i].tid > 0 && e->threads[i].exited && e->threads[i].exited < e->drains &&
		    !e->threads[i].own_events)
			e->threads[i].tid = -1;
}

static void drain(struct perf_engine *e)
{
	uint64_t upto = attach_now_ns();        /* before the heads: see scan_samples */
	for (size_t c = 0; c < e->nrings; c++)
		if (e->rings[c].fd >= 0)
			e->rings[c].head = __atomic_load_n(&e->rings[c].meta->data_head, __ATOMIC_ACQUIRE);
	e->drains++;
	scan_task_records(e);
	scan_samples(e, upto);
	forget_exited(e);
}

/* Each live thread's CPU time over the window, by schedstat: collect/
 * scales the thread's samples to it (task-clock misses the scheduler's own
 * time around each switch, a few percent for threads that switch often). */
static void record_thread_cpu(struct perf_engine *e)
{
	struct attach_engine_stats *st = e->st;
	size_t n = 0;
	for (size_t i = 0; i < e->cap_threads; i++)
		n += e->threads[i].tid > 0;
	if (!n || !(st->thread_cpu = calloc(n, sizeof *st->thread_cpu)))
		return;
	for (size_t i = 0; i < e->cap_threads; i++) {
		const struct pthread_entry *t = &e->threads[i];
		if (t->tid <= 0 || t->exited || !t->start_known || !wanted(e, t->tid))
			continue;
		uint64_t now = attach_read_schedstat(e->pid, t->tid);
		if (now > t->cpu_start)
			st->thread_cpu[st->n_thread_cpu++] = (struct attach_thread_cpu){
				.tid = t->tid, .cpu_ns = now - t->cpu_start };
	}
}

/* ---- the interface ------------------------------------------------------- */

/* opts.clones: the four syscall tracepoints, each sampled at every hit;
 * only the entries copy the stack. */
static int set_clone_events(struct perf_engine *e)
{
	for (size_t i = 0; i < TP_N; i++) {
		struct perf_event_attr *a = &e->attrs[i];
		int id = tracepoint_id(tracepoints[i]);
		if (id < 0)
			return -1;
		*a = e->attr;
		a->type = PERF_TYPE_TRACEPOINT;
		a->config = (uint64_t)id;
		a->sample_period = 1;
		a->task = a->comm = a->comm_exec = i == 0;      /* one copy of each */
		if (i >= TP_EXIT_CLONE) {
			a->sample_type &= ~(uint64_t)PERF_SAMPLE_STACK_USER;
			a->sample_stack_user = 0;
		}
	}
	return 0;
}

/* The events opened per thread and CPU: the clock (e->attr), or one
 * uprobe per probe asked for, made from it.  Return probes are opened
 * before entry probes (see uprobes.h): an entry seen has its return to
 * come.  -1 with errno set. */
static int set_events(struct perf_engine *e)
{
	size_t n = e->o.n_uprobes ? e->o.n_uprobes : e->o.clones ? TP_N : 1;
	if (!(e->attrs = calloc(n, sizeof *e->attrs)) || !(e->probe_hits = calloc(n, sizeof *e->probe_hits)))
		return -1;
	e->nattrs = n;
	if (e->o.clones)
		return set_clone_events(e);
	if (!e->o.n_uprobes) {
		e->attrs[0] = e->attr;
		return 0;
	}
	/* Probes defined in tracefs where it can (uprobe_events.c says why),
	 * else the uprobe PMU.  PPROFC_UPROBES=pmu forces the PMU (tests). */
	const char *force = getenv("PPROFC_UPROBES");
	int type = 0, ret_bit = 0;
	if ((force && strcmp(force, "pmu") == 0) ||
	    attach_uprobe_events_define(e->o.uprobes, n, &e->tracefs) != 0) {
		e->tracefs.n = 0;
		if (attach_uprobe_pmu(&type, &ret_bit))
			return -1;
	}
	e->st->uprobes_inherited = e->tracefs.n > 0;
	for (size_t i = 0; i < n; i++) {
		const struct attach_uprobe *u = &e->o.uprobes[i];
		struct perf_event_attr *a = &e->attrs[i];
		*a = e->attr;
		a->sample_period = 1;
		a->task = a->comm = a->comm_exec = i == 0;      /* one copy of each */
		if (e->tracefs.n) {
			a->type = PERF_TYPE_TRACEPOINT;
			a->config = (uint64_t)e->tracefs.ids[i];
		} else {
			a->type = (uint32_t)type;
			a->config = u->ret ? 1ull << ret_bit : 0;
			a->config1 = (uint64_t)(uintptr_t)u->path;
			a->config2 = u->offset;
			/* Not inherited: the kernel would set up a new thread's
			 * copy by reading config1, the path, as a pointer into
			 * the target's memory, and the target's clone() fails
			 * (EFAULT).  New threads get events of their own. */
			a->inherit = a->inherit_thread = 0;
		}
		if (!u->stack) {
			a->sample_type &= ~(uint64_t)PERF_SAMPLE_STACK_USER;
			a->sample_stack_user = 0;
		}
	}
	return 0;
}

static void perf_close(void *state);

static void *perf_open_engine(pid_t pid, const struct attach_engine_opts *o,
			      struct attach_engine_stats *st, struct attach_error *err)
{
	struct perf_engine *e = calloc(1, sizeof *e);
	long ncpu = sysconf(_SC_NPROCESSORS_CONF);
	if (!e || ncpu < 1 || !(e->rings = calloc((size_t)ncpu, sizeof *e->rings))) {
		free(e);
		err->code = ATTACH_ERR_OTHER;
		snprintf(err->msg, sizeof err->msg, "out of memory");
		return NULL;
	}
	e->pid = pid;
	e->o = *o;
	if (e->o.stack_size > MAX_STACK_COPY)
		e->o.stack_size = MAX_STACK_COPY;
	e->o.stack_size &= ~(size_t)7;
	e->st = st;
	e->st->exit_status = -1;
	e->nrings = (size_t)ncpu;
	for (size_t c = 0; c < e->nrings; c++)
		e->rings[c] = (struct ring){ .cpu = (int)c, .fd = -1 };
	struct perf_event_attr *a = &e->attr;
	a->size = sizeof *a;
	a->type = PERF_TYPE_SOFTWARE;
	a->config = PERF_COUNT_SW_TASK_CLOCK;
	a->sample_period = o->clones ? 1 : 1000000000u / (unsigned)(o->hz > 0 ? o->hz : 100);
	a->sample_type = PERF_SAMPLE_IDENTIFIER | PERF_SAMPLE_TID | PERF_SAMPLE_TIME |
			 PERF_SAMPLE_PERIOD | PERF_SAMPLE_REGS_USER | PERF_SAMPLE_STACK_USER;
	for (size_t i = 0; i < NREGS_USER; i++)
		a->sample_regs_user |= 1ull << regs_order[i];
	a->sample_stack_user = (uint32_t)e->o.stack_size;
	a->inherit = !o->only;
	a->inherit_thread = !o->only;
	a->task = 1;
	a->comm = 1;
	a->comm_exec = 1;
	a->sample_id_all = 1;
	/* The trace timeline's exact switch times: PERF_RECORD_SWITCH from the
	 * same per-thread events, rather than the sched:sched_switch
	 * tracepoint.  The tracepoint sees every task of a CPU and needs
	 * perf_event_paranoid -1 or CAP_PERFMON (raw tracepoint data); these
	 * records come only for the threads the events follow, with the
	 * permission the samples already have, are inherited with them, and
	 * say whether a thread left its CPU preempted (still runnable,
	 * PERF_RECORD_MISC_SWITCH_OUT_PREEMPT, Linux 4.17) or blocked. */
	a->context_switch = o->switches ? 1 : 0;
	a->exclude_hv = 1;
	a->use_clockid = 1;
	a->clockid = CLOCK_MONOTONIC;
	a->watermark = 1;
	a->wakeup_watermark = 0;        /* set per ring size below */

	if (set_events(e)) {
		int er = errno;
		explain(er, pid, err);
		if (o->clones && (er == ENOENT || er == EACCES || er == EPERM))
			snprintf(err->msg, sizeof err->msg, "the clone system call tracepoints cannot be "
				 "read (%s: %s): mount tracefs on /sys/kernel/tracing and run as root, or "
				 "use --engine ptrace", tracepoints[0], strerror(er));
		perf_close(e);
		return NULL;
	}
	/* One event per thread and CPU: raise the descriptor limit to what
	 * the hard limit allows. */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	e->cpu_start = e->cpu_last = kernel_cpu(e);
	/* Wake pprofc when a quarter of a ring is filled. */
	a->wakeup_watermark = (uint32_t)(ring_bytes(e) / 4 > 4096 ? ring_bytes(e) / 4 : 4096);
	if (e->o.n_uprobes)
		a->wakeup_watermark = (uint32_t)(ring_bytes(e) / 16);   /* hits come in floods */
	for (size_t i = 0; i < e->nattrs; i++)
		e->attrs[i].wakeup_watermark = a->wakeup_watermark;
	int er = open_all(e);
	if (er || e->nfds == 0) {
		explain(er ? er : ESRCH, pid, err);
		perf_close(e);
		return NULL;
	}
	if (!(e->pfds = calloc(e->nrings, sizeof *e->pfds))) {
		explain(ENOMEM, pid, err);
		perf_close(e);
		return NULL;
	}
	e->start_ns = attach_now_ns();
	e->next_check_ns = e->start_ns + EXIT_CHECK_NS;
	return e;
}

static int perf_poll(void *state, uint64_t deadline)
{
	struct perf_engine *e = state;
	size_t n = 0;
	for (size_t c = 0; c < e->nrings; c++)
		if (e->rings[c].fd >= 0)
			e->pfds[n++] = (struct pollfd){ e->rings[c].fd, POLLIN, 0 };
	uint64_t now = attach_now_ns();
	uint64_t wait = deadline > now ? deadline - now : 0;
	if (wait > EXIT_CHECK_NS)
		wait = EXIT_CHECK_NS;
	struct timespec ts = { (time_t)(wait / 1000000000u), (long)(wait % 1000000000u) };
	ppoll(e->pfds, n, &ts, NULL);
	drain(e);
	if (e->forked && !e->o.only) {
		e->forked = 0;
		open_all(e);    /* threads just born: their probes now */
	}
	now = attach_now_ns();
	if (!e->ended && now >= e->next_check_ns) {
		e->next_check_ns = now + EXIT_CHECK_NS;
		int status = -1;
		if (e->o.n_uprobes && !e->o.only)
			open_all(e);    /* threads created since: their probes */
		if (attach_process_ended(e->pid, &status, e->o.only ? NULL : &e->cpu_last)) {
			e->st->exit_status = status;
			drain(e);
			e->ended = 1;
			e->st->target_exited = 1;
		}
	}
	return e->ended;
}

/* Closing a uprobe event unregisters it, and the kernel waits for a
 * grace period each time, under a lock all of them share: about 50 ms per
 * descriptor here (9 s for the 177 of three threads on two CPUs; closing
 * from 32 threads at once took as long), while the breakpoints go on
 * slowing the target: a probe's breakpoint leaves the target with the last
 * of its events.  So the probes are closed one after the other, the
 * busiest first (most hits in the window): malloc's and free's
 * breakpoints are gone after a few descriptors, not after all. */
static int busier_first(const void *a, const void *b, void *arg)
{
	const struct perf_engine *closing = arg;
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	int px = closing->fd_probes[x], py = closing->fd_probes[y];
	uint64_t hx = px >= 0 ? closing->probe_hits[px] : 0, hy = py >= 0 ? closing->probe_hits[py] : 0;
	if (hx != hy)
		return hx > hy ? -1 : 1;
	if (px != py)
		return px < py ? -1 : 1;
	return (x > y) - (x < y);
}

static void close_all(struct perf_engine *e)
{
	size_t *order = e->o.n_uprobes && e->probe_hits ? malloc(e->nfds * sizeof *order) : NULL;
	if (!order) {
		for (size_t i = 0; i < e->nfds; i++)
			close(e->fds[i]);
		return;
	}
	for (size_t i = 0; i < e->nfds; i++)
		order[i] = i;
	qsort_r(order, e->nfds, sizeof *order, busier_first, e);
	for (size_t i = 0; i < e->nfds; i++)
		close(e->fds[order[i]]);
	free(order);
}

static void perf_close(void *state)
{
	struct perf_engine *e = state;
	for (size_t i = 0; i < e->nfds; i++)
		ioctl(e->fds[i], PERF_EVENT_IOC_DISABLE, 0);
	if (e->pfds)
		drain(e);
	if (!e->st->target_exited)
		record_thread_cpu(e);
	if (!e->st->target_exited) {
		uint64_t now = kernel_cpu(e);
		e->st->cpu_ns = now > e->cpu_start ? now - e->cpu_start : 0;
	} else {
		/* The process is gone, its count with it: the last one read
		 * (at most 0.1 s old) is the best account left. */
		e->st->cpu_ns = e->cpu_last > e->cpu_start ? e->cpu_last - e->cpu_start : 0;
	}
	e->st->duration_ns = e->start_ns ? attach_now_ns() - e->start_ns : 0;
	for (size_t c = 0; c < e->nrings; c++)
		if (e->rings[c].meta)
			munmap(e->rings[c].meta, e->rings[c].map_len);
	close_all(e);
	attach_uprobe_events_remove(&e->tracefs);       /* unused now */
	free(e->fds);
	free(e->fd_ids);
	free(e->fd_tids);
	free(e->fd_probes);
	free(e->probe_hits);
	free(e->attrs);
	free(e->rings);
	free(e->pfds);
	free(e->threads);
	free(e->scratch);
	for (size_t i = 0; i < e->npending; i++)
		free(e->pending[i].stack);
	free(e->pending);
	free(e);
}

const struct attach_engine_ops attach_engine_perf_ops = {
	.name = "perf",
	.open = perf_open_engine,
	.poll = perf_poll,
	.close = perf_close,
};
