/* wait.c — wait reasons, mutex owners, fd descriptions, deadlocks (wait.h). */
#include "wait.h"

#include <linux/futex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "snapshot.h"

static int is_fd_io(long nr)
{
	switch (nr) {
	case SYS_read: case SYS_readv: case SYS_pread64: case SYS_preadv: case SYS_preadv2:
	case SYS_write: case SYS_writev: case SYS_pwrite64: case SYS_pwritev: case SYS_pwritev2:
	case SYS_recvfrom: case SYS_recvmsg: case SYS_recvmmsg:
	case SYS_sendto: case SYS_sendmsg: case SYS_sendmmsg:
	case SYS_accept: case SYS_accept4: case SYS_connect:
	case SYS_epoll_wait: case SYS_epoll_pwait: case SYS_epoll_pwait2:
	case SYS_flock: case SYS_fsync: case SYS_fdatasync: case SYS_splice: case SYS_tee:
	case SYS_sendfile:
		return 1;
	}
	return 0;
}

static void classify_syscall(const struct attach_syscall *sc, struct attach_wait *w)
{
	long nr = sc->nr;
	int op = (int)(sc->args[1] & FUTEX_CMD_MASK);
	const char *name = attach_syscall_name(nr);
	snprintf(w->syscall, sizeof w->syscall, "%s", name ? name : "?");
	if (is_fd_io(nr)) {
		w->reason = ATTACH_R_IO;
		w->fd = (int)sc->args[0];
	} else if (nr == SYS_poll || nr == SYS_ppoll) {
		w->reason = sc->args[1] ? ATTACH_R_IO : ATTACH_R_SLEEP;
		w->poll_fds = sc->args[0];
		w->poll_nfds = (unsigned)sc->args[1];
	} else if (nr == SYS_select || nr == SYS_pselect6) {
		w->reason = sc->args[0] ? ATTACH_R_IO : ATTACH_R_SLEEP;
	} else if (nr == SYS_futex && (op == FUTEX_WAIT || op == FUTEX_WAIT_BITSET ||
				       op == FUTEX_LOCK_PI || op == FUTEX_LOCK_PI2 ||
				       op == FUTEX_WAIT_REQUEUE_PI)) {
		w->reason = ATTACH_R_FUTEX;
		w->futex = sc->args[0];
	} else if (nr == SYS_futex_waitv) {
		w->reason = ATTACH_R_FUTEX;
	} else if (nr == SYS_nanosleep || nr == SYS_clock_nanosleep) {
		w->reason = ATTACH_R_SLEEP;
	} else if (nr == SYS_pause || nr == SYS_rt_sigsuspend || nr == SYS_rt_sigtimedwait) {
		w->reason = ATTACH_R_SIGNAL;
	} else if (nr == SYS_wait4 || nr == SYS_waitid) {
		w->reason = ATTACH_R_CHILD;
	} else {
		w->reason = ATTACH_R_SYSCALL;
	}
}

void attach_classify(char state, const struct attach_syscall *sc, struct attach_wait *w)
{
	memset(w, 0, sizeof *w);
	w->fd = -1;
	if (sc->kind == ATTACH_SC_IN) {
		const char *name = attach_syscall_name(sc->nr);
		snprintf(w->syscall, sizeof w->syscall, "%s", name ? name : "?");
	}
	switch (state) {
	case 'R':
		w->reason = ATTACH_R_RUNNING;
		return;
	case 'D':
		w->reason = ATTACH_R_DISK;
		return;
	case 'T':
		w->reason = ATTACH_R_STOPPED;
		return;
	case 't':
		w->reason = ATTACH_R_TRACED;
		return;
	case 'Z': case 'X':
		w->reason = ATTACH_R_ZOMBIE;
		return;
	}
	if (sc->kind == ATTACH_SC_IN)
		classify_syscall(sc, w);
	else if (sc->kind == ATTACH_SC_RUNNING)
		w->reason = ATTACH_R_RUNNING;
	else
		w->reason = ATTACH_R_UNKNOWN;
}

static int any_contains(const char *const *funcs, size_t n, const char *needle)
{
	for (size_t i = 0; i < n; i++)
		if (funcs[i] && strstr(funcs[i], needle))
			return 1;
	return 0;
}

void attach_refine(struct attach_wait *w, const char *const *funcs, size_t n)
{
	/* Only the innermost frames count: a mutex taken by a caller far up
	 * the stack says nothing about this futex. */
	if (n > 8)
		n = 8;
	if (w->reason == ATTACH_R_SYSCALL && strcmp(w->syscall, "restart_syscall") == 0) {
		/* An interrupted timed wait resumed by the kernel: the original
		 * call is gone from /proc, but the stack still names it. */
		if (any_contains(funcs, n, "nanosleep"))
			w->reason = ATTACH_R_SLEEP;
		else if (any_contains(funcs, n, "poll") || any_contains(funcs, n, "select"))
			w->reason = ATTACH_R_IO;
		else if (any_contains(funcs, n, "futex") || any_contains(funcs, n, "lll_"))
			w->reason = ATTACH_R_FUTEX;
	}
	if (w->reason != ATTACH_R_FUTEX)
		return;
	/* __lll_lock_wait_private is glibc's own lock (malloc arenas, stdio
	 * FILEs): a bare int, not a pthread_mutex_t with an owner field. */
	if (any_contains(funcs, n, "lll_lock_wait_private"))
		return;
	if (any_contains(funcs, n, "lll_lock_wait") || any_contains(funcs, n, "pthread_mutex_lock") ||
	    any_contains(funcs, n, "pthread_mutex_timedlock") ||
	    any_contains(funcs, n, "pthread_mutex_clocklock"))
		w->reason = ATTACH_R_MUTEX;
	else if (any_contains(funcs, n, "pthread_cond_")) {
		w->reason = ATTACH_R_COND;
		/* The futex is one of the two __g_signals words of glibc's
		 * pthread_cond_t (2.25 and later, x86_64: offsets 0x28 and
		 * 0x2c of an 8-aligned struct): name the condition variable
		 * itself, as gdb does. */
		if (w->futex >= 0x2c)
			w->futex -= (w->futex & 7) == 0 ? 0x28 : 0x2c;
	}
}

void attach_reason_text(const struct attach_wait *w, char *buf, size_t len)
{
	static const char *const names[] = {
		[ATTACH_R_UNKNOWN] = "waiting",      [ATTACH_R_RUNNING] = "running",
		[ATTACH_R_MUTEX] = "mutex wait",     [ATTACH_R_COND] = "cond wait",
		[ATTACH_R_FUTEX] = "futex wait",     [ATTACH_R_IO] = "IO wait",
		[ATTACH_R_SLEEP] = "sleep",          [ATTACH_R_SIGNAL] = "signal wait",
		[ATTACH_R_CHILD] = "child wait",     [ATTACH_R_DISK] = "disk wait",
		[ATTACH_R_STOPPED] = "stopped",      [ATTACH_R_TRACED] = "traced",
		[ATTACH_R_ZOMBIE] = "zombie",        [ATTACH_R_SYSCALL] = "syscall",
	};
	if (w->reason == ATTACH_R_SYSCALL)
		snprintf(buf, len, "syscall %s", w->syscall[0] ? w->syscall : "?");
	else
		snprintf(buf, len, "%s", names[w->reason]);
}

pid_t attach_mutex_owner(pid_t pid, uint64_t addr)
{
	/* glibc x86_64 struct __pthread_mutex_s: __lock @0, __count @4,
	 * __owner @8, __nusers @12, __kind @16 (bits/struct_mutex.h). */
	int32_t m[5];
	if (attach_read_mem(pid, addr, m, sizeof m) != (ssize_t)sizeof m)
		return 0;
	int32_t lock = m[0], owner = m[2], kind = m[4];
	if (lock == 0)
		return 0;               /* unlocked: a stale or non-mutex futex */
	if (kind & 0x20)                /* PTHREAD_MUTEX_PRIO_INHERIT_NP: tid in the lock word */
		return (pid_t)(lock & FUTEX_TID_MASK);
	return owner > 0 ? (pid_t)owner : 0;
}

/* ---- fd descriptions --------------------------------------------------- */

static void load_net(struct attach_fdcache *c)
{
	static const char *const names[] = { "tcp", "tcp6", "udp", "udp6", "unix" };
	char **bufs[] = { &c->tcp, &c->tcp6, &c->udp, &c->udp6, &c->unx };
	size_t *lens[] = { &c->tcp_len, &c->tcp6_len, &c->udp_len, &c->udp6_len, &c->unx_len };
	/* A zombie main thread has no network namespace left: see proc.h. */
	pid_t mm = attach_mm_pid(c->pid);
	for (int i = 0; i < 5; i++) {
		char path[64];
		snprintf(path, sizeof path, "/proc/%d/net/%s", (int)mm, names[i]);
		if (attach_read_file(path, bufs[i], lens[i])) {
			*bufs[i] = NULL;
			*lens[i] = 0;
		}
	}
	c->loaded = 1;
}

static void describe_socket(struct attach_fdcache *c, uint64_t ino, char *buf, size_t len)
{
	char local[80], remote[80], path[256];
	int state;
	if (!c->loaded)
		load_net(c);
	struct { const char *name; char *b; size_t l; int v6; int tcp; } t[] = {
		{ "TCP", c->tcp, c->tcp_len, 0, 1 },  { "TCP", c->tcp6, c->tcp6_len, 1, 1 },
		{ "UDP", c->udp, c->udp_len, 0, 0 },  { "UDP", c->udp6, c->udp6_len, 1, 0 },
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		if (!t[i].b || attach_net_find_inet(t[i].b, t[i].l, ino, t[i].v6, local, sizeof local,
						    remote, sizeof remote, &state))
			continue;
		if (t[i].tcp && state == 10)
			snprintf(buf, len, "TCP %s listen", local);
		else if (t[i].tcp)
			snprintf(buf, len, "TCP %s -> %s %s", local, remote, attach_tcp_state_name(state));
		else
			snprintf(buf, len, "UDP %s", local);
		return;
	}
	if (c->unx && attach_net_find_unix(c->unx, c->unx_len, ino, path, sizeof path) == 0) {
		snprintf(buf, len, path[0] ? "unix %s" : "unix socket", path);
		return;
	}
	snprintf(buf, len, "socket");
}

static void describe_fd(struct attach_fdcache *c, int fd, char *link, size_t linklen, char *buf,
			size_t len, int nested);

/* "epoll on fd 5 (TCP 127.0.0.1:6379 listen), fd 7 (pipe)": each watched
 * fd described as the fd itself would be (an epoll inside one: "epoll"). */
static void describe_epoll(struct attach_fdcache *c, int fd, char *buf, size_t len, int nested)
{
	char path[64], *info, what[160];
	size_t il, n = 0;
	snprintf(path, sizeof path, "/proc/%d/fdinfo/%d", (int)attach_mm_pid(c->pid), fd);
	n = (size_t)snprintf(buf, len, "epoll");
	if (nested || attach_read_file(path, &info, &il))
		return;
	int count = 0;
	for (char *p = info; (p = strstr(p, "tfd:")) && n < len; p += 4) {
		int tfd = atoi(p + 4);
		char link[256];
		describe_fd(c, tfd, link, sizeof link, what, sizeof what, 1);
		n += (size_t)snprintf(buf + n, len - n, "%sfd %d (%s)", count++ ? ", " : " on ", tfd, what);
	}
	free(info);
}

/* One fd described: the memo is an open-addressing table of these,
 * keyed by fd, at most half full. */
struct attach_fdmemo {
	struct fdmemo_entry {
		int fd;
		char link[512];
		char desc[256];
	} *e;                           /* NULL: a free slot */
};

static struct fdmemo_entry **memo_slot(struct attach_fdmemo *memo, size_t cap, int fd)
{
	size_t i = ((unsigned)fd * 2654435761u) & (cap - 1);
	while (memo[i].e && memo[i].e->fd != fd)
		i = (i + 1) & (cap - 1);
	return &memo[i].e;
}

/* Room for one more entry; 0, or -1 when out of memory. */
static int memo_reserve(struct attach_fdcache *c)
{
	if (2 * (c->nmemo + 1) <= c->capmemo)
		return 0;
	size_t cap = c->capmemo ? 2 * c->capmemo : 16;
	struct attach_fdmemo *m = calloc(cap, sizeof *m);
	if (!m)
		return -1;
	for (size_t i = 0; i < c->capmemo; i++)
		if (c->memo[i].e)
			*memo_slot(m, cap, c->memo[i].e->fd) = c->memo[i].e;
	free(c->memo);
	c->memo = m;
	c->capmemo = cap;
	return 0;
}

void attach_describe_fd(struct attach_fdcache *c, int fd, char *target, size_t tlen, char *buf,
			size_t len)
{
	struct fdmemo_entry *e = NULL, **slot;
	if (memo_reserve(c) == 0) {
		slot = memo_slot(c->memo, c->capmemo, fd);
		if (!*slot && (*slot = malloc(sizeof **slot))) {
			(*slot)->fd = fd;
			describe_fd(c, fd, (*slot)->link, sizeof (*slot)->link, (*slot)->desc,
				    sizeof (*slot)->desc, 0);
			c->nmemo++;
		}
		e = *slot;
	}
	if (e) {
		if (target)
			snprintf(target, tlen, "%s", e->link);
		snprintf(buf, len, "%s", e->desc);
	} else {                        /* out of memory: not remembered */
		char link[512];
		describe_fd(c, fd, link, sizeof link, buf, len, 0);
		if (target)
			snprintf(target, tlen, "%s", link);
	}
}

static void describe_fd(struct attach_fdcache *c, int fd, char *link, size_t linklen, char *buf,
			size_t len, int nested)
{
	char path[64];
	/* A zombie main thread has no fd table left: see proc.h. */
	snprintf(path, sizeof path, "/proc/%d/fd/%d", (int)attach_mm_pid(c->pid), fd);
	ssize_t n = readlink(path, link, linklen - 1);
	if (n < 0) {
		link[0] = 0;
		snprintf(buf, len, "closed");
		return;
	}
	link[n] = 0;
	unsigned long long ino;
	if (sscanf(link, "socket:[%llu]", &ino) == 1)
		describe_socket(c, ino, buf, len);
	else if (strncmp(link, "pipe:", 5) == 0)
		snprintf(buf, len, "pipe");
	else if (strcmp(link, "anon_inode:[eventpoll]") == 0)
		describe_epoll(c, fd, buf, len, nested);
	else if (strncmp(link, "anon_inode:", 11) == 0)
		snprintf(buf, len, "%s", link + 11);
	else
		snprintf(buf, len, "%s", link);
}

void attach_fdcache_free(struct attach_fdcache *c)
{
	free(c->tcp);
	free(c->tcp6);
	free(c->udp);
	free(c->udp6);
	free(c->unx);
	for (size_t i = 0; i < c->capmemo; i++)
		free(c->memo[i].e);
	free(c->memo);
	memset(c, 0, sizeof *c);
}

/* ---- deadlocks ---------------------------------------------------------- */

static long index_of(const pid_t *tids, size_t n, pid_t tid)
{
	for (size_t i = 0; i < n; i++)
		if (tids[i] == tid)
			return (long)i;
	return -1;
}

size_t attach_find_deadlocks(const pid_t *tids, const pid_t *waits_for, size_t n,
			     pid_t *cycles, size_t *lens, size_t max_cycles)
{
	/* Each thread waits for at most one other, so the graph is a set of
	 * chains: walk each one, marking the walk number; meeting our own
	 * walk's mark closes a cycle. */
	long *mark = calloc(n ? n : 1, sizeof *mark);
	size_t found = 0, used = 0;
	if (!mark)
		return 0;
	for (size_t start = 0; start < n && found < max_cycles; start++) {
		long i = (long)start;
		while (i >= 0 && !mark[i]) {
			mark[i] = (long)start + 1;
			i = waits_for[i] ? index_of(tids, n, waits_for[i]) : -1;
		}
		if (i < 0 || mark[i] != (long)start + 1)
			continue;
		/* i is on a new cycle: rotate it to begin at its smallest tid. */
		long min = i, j = i;
		size_t len = 0;
		do {
			if (tids[j] < tids[min])
				min = j;
			j = index_of(tids, n, waits_for[j]);
			len++;
		} while (j != i);
		j = min;
		for (size_t k = 0; k < len; k++) {
			cycles[used + k] = tids[j];
			j = index_of(tids, n, waits_for[j]);
		}
		lens[found++] = len;
		used += len;
	}
	free(mark);
	return found;
}
