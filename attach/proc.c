/* proc.c — parsers and readers for /proc files (see proc.h).
 *
 * The parsers never trust their input: every field is bounded, a missing or
 * malformed field makes the parser return -1 instead of reading past the end.
 */
#include "proc.h"

#include <ctype.h>
#include <sched.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A cursor over a buffer that is not necessarily NUL-terminated. */
struct cur {
	const char *p, *end;
};

static void skip_spaces(struct cur *c)
{
	while (c->p < c->end && (*c->p == ' ' || *c->p == '\t'))
		c->p++;
}

static int read_ull(struct cur *c, int base, unsigned long long *v)
{
	skip_spaces(c);
	unsigned long long x = 0;
	int digits = 0;
	while (c->p < c->end) {
		int d;
		char ch = *c->p;
		if (ch >= '0' && ch <= '9')
			d = ch - '0';
		else if (base == 16 && ch >= 'a' && ch <= 'f')
			d = ch - 'a' + 10;
		else if (base == 16 && ch >= 'A' && ch <= 'F')
			d = ch - 'A' + 10;
		else
			break;
		x = x * (unsigned)base + (unsigned)d;
		digits++;
		c->p++;
	}
	if (!digits)
		return -1;
	*v = x;
	return 0;
}

static int read_ll(struct cur *c, long long *v)
{
	skip_spaces(c);
	int neg = 0;
	if (c->p < c->end && *c->p == '-') {
		neg = 1;
		c->p++;
	}
	unsigned long long u;
	if (read_ull(c, 10, &u))
		return -1;
	/* Negated as unsigned: -(long long)u overflows for "-9223372036854775808". */
	*v = (long long)(neg ? 0 - u : u);
	return 0;
}

static void skip_field(struct cur *c)
{
	skip_spaces(c);
	while (c->p < c->end && *c->p != ' ' && *c->p != '\n')
		c->p++;
}

int attach_parse_stat(const char *buf, size_t len, struct attach_stat *out)
{
	memset(out, 0, sizeof *out);
	/* The comm sits between the first '(' and the LAST ')': it may itself
	 * hold parentheses, spaces and newlines. */
	const char *open = memchr(buf, '(', len);
	const char *close = NULL;
	for (const char *q = buf + len; q > buf; q--)
		if (q[-1] == ')') {
			close = q - 1;
			break;
		}
	if (!open || !close || close < open)
		return -1;
	size_t n = (size_t)(close - open - 1);
	if (n >= sizeof out->comm)
		n = sizeof out->comm - 1;
	memcpy(out->comm, open + 1, n);
	out->comm[n] = '\0';

	struct cur c = { close + 1, buf + len };
	skip_spaces(&c);
	if (c.p >= c.end)
		return -1;
	out->state = *c.p++;
	long long v;
	if (read_ll(&c, &v))            /* 4 ppid */
		return -1;
	out->ppid = (pid_t)v;
	for (int i = 5; i <= 8; i++)    /* pgrp session tty_nr tpgid */
		skip_field(&c);
	unsigned long long u;
	if (read_ull(&c, 10, &u))       /* 9 flags */
		return -1;
	out->flags = (unsigned)u;
	for (int i = 10; i <= 13; i++)  /* minflt cminflt majflt cmajflt */
		skip_field(&c);
	if (read_ull(&c, 10, &out->utime) || read_ull(&c, 10, &out->stime))
		return -1;
	/* 16..38, then 39: the CPU it last ran on (optional for the parser). */
	out->processor = -1;
	for (int i = 16; i <= 38; i++)
		skip_field(&c);
	long long cpu;
	if (read_ll(&c, &cpu) == 0 && cpu >= 0 && cpu < 65536)
		out->processor = (int)cpu;
	/* 40..51, then 52: the exit status a zombie leaves for its parent. */
	out->exit_code = -1;
	for (int i = 40; i <= 51; i++)
		skip_field(&c);
	long long code;
	if (read_ll(&c, &code) == 0 && code >= 0 && code <= 0xffff)
		out->exit_code = (int)code;
	return 0;
}

/* Finds "Key:" at the start of a line; returns a cursor after the colon. */
static int find_key(const char *buf, size_t len, const char *key, struct cur *c)
{
	size_t kl = strlen(key);
	const char *p = buf, *end = buf + len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		if ((size_t)(le - p) > kl && memcmp(p, key, kl) == 0 && p[kl] == ':') {
			c->p = p + kl + 1;
			c->end = le;
			return 0;
		}
		p = nl ? nl + 1 : end;
	}
	return -1;
}

int attach_parse_status(const char *buf, size_t len, struct attach_status *out)
{
	memset(out, 0, sizeof *out);
	struct cur c;
	long long v;
	unsigned long long u;
	if (find_key(buf, len, "Tgid", &c) || read_ll(&c, &v))
		return -1;
	out->tgid = (pid_t)v;
	if (find_key(buf, len, "TracerPid", &c) || read_ll(&c, &v))
		return -1;
	out->tracer_pid = (pid_t)v;
	if (find_key(buf, len, "Uid", &c) || read_ull(&c, 10, &u))
		return -1;
	out->uid = (uid_t)u;
	return 0;
}

int attach_parse_syscall(const char *buf, size_t len, struct attach_syscall *out)
{
	memset(out, 0, sizeof *out);
	out->kind = ATTACH_SC_UNKNOWN;
	if (len >= 7 && memcmp(buf, "running", 7) == 0) {
		out->kind = ATTACH_SC_RUNNING;
		return 0;
	}
	struct cur c = { buf, buf + len };
	long long nr;
	if (read_ll(&c, &nr))
		return -1;
	unsigned long long u;
	if (nr < 0) {
		/* Blocked, but not in a system call: only sp and pc follow. */
		skip_spaces(&c);
		if (c.end - c.p >= 2 && c.p[0] == '0' && c.p[1] == 'x')
			c.p += 2;
		if (read_ull(&c, 16, &u))
			return -1;
		out->sp = u;
		skip_spaces(&c);
		if (c.end - c.p >= 2 && c.p[0] == '0' && c.p[1] == 'x')
			c.p += 2;
		if (read_ull(&c, 16, &u))
			return -1;
		out->pc = u;
		out->kind = ATTACH_SC_NONE;
		out->nr = -1;
		return 0;
	}
	out->nr = (long)nr;
	uint64_t vals[8];
	for (int i = 0; i < 8; i++) {
		skip_spaces(&c);
		if (c.end - c.p >= 2 && c.p[0] == '0' && c.p[1] == 'x')
			c.p += 2;
		if (read_ull(&c, 16, &u))
			return -1;
		vals[i] = u;
	}
	memcpy(out->args, vals, sizeof out->args);
	out->sp = vals[6];
	out->pc = vals[7];
	out->kind = ATTACH_SC_IN;
	return 0;
}

int attach_parse_sched(const char *buf, size_t len, struct attach_sched *out)
{
	memset(out, 0, sizeof *out);
	unsigned long long u;
	const char *p = buf, *end = buf + len;
	int found = -1;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		const char *colon = memchr(p, ':', (size_t)(le - p));
		if (colon) {
			const char *ke = colon;
			while (ke > p && (ke[-1] == ' ' || ke[-1] == '\t'))
				ke--;
			size_t kl = (size_t)(ke - p);
			struct cur v = { colon + 1, le };
			if (kl == 13 && memcmp(p, "se.exec_start", 13) == 0) {
				unsigned long long ip, fp = 0;
				if (read_ull(&v, 10, &ip) == 0) {
					double frac = 0, scale = 1;
					if (v.p < v.end && *v.p == '.') {
						v.p++;
						while (v.p < v.end && isdigit((unsigned char)*v.p)) {
							fp = fp * 10 + (unsigned)(*v.p - '0');
							scale *= 10;
							v.p++;
						}
						frac = (double)fp / scale;
					}
					out->exec_start_ms = (double)ip + frac;
					found = 0;
				}
			} else if (kl == 11 && memcmp(p, "nr_switches", 11) == 0) {
				if (read_ull(&v, 10, &u) == 0)
					out->nr_switches = u;
			}
		}
		p = nl ? nl + 1 : end;
	}
	return found;
}

static int maps_push(struct attach_maps *m, const struct attach_map *e)
{
	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 64;
		struct attach_map *v = realloc(m->v, cap * sizeof *v);
		if (!v)
			return -1;
		m->v = v;
		m->cap = cap;
	}
	m->v[m->n++] = *e;
	return 0;
}

static int parse_maps_line(const char *p, const char *le, struct attach_map *e)
{
	struct cur c = { p, le };
	unsigned long long a, b, off, ino;
	memset(e, 0, sizeof *e);
	if (read_ull(&c, 16, &a) || c.p >= le || *c.p++ != '-' || read_ull(&c, 16, &b))
		return -1;
	skip_spaces(&c);
	if (le - c.p < 4)
		return -1;
	memcpy(e->perms, c.p, 4);
	c.p += 4;
	if (read_ull(&c, 16, &off))
		return -1;
	skip_field(&c);                 /* dev */
	if (read_ull(&c, 10, &ino))
		return -1;
	skip_spaces(&c);
	e->start = a;
	e->end = b;
	e->offset = off;
	e->inode = ino;
	e->path = strndup(c.p, (size_t)(le - c.p));
	return e->path ? 0 : -1;
}

int attach_parse_maps(const char *buf, size_t len, struct attach_maps *out)
{
	memset(out, 0, sizeof *out);
	const char *p = buf, *end = buf + len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		struct attach_map e;
		if (le > p && parse_maps_line(p, le, &e) == 0 && maps_push(out, &e)) {
			free(e.path);
			attach_maps_free(out);
			return -1;
		}
		p = nl ? nl + 1 : end;
	}
	return 0;
}

const struct attach_map *attach_maps_find(const struct attach_maps *m, uint64_t addr)
{
	/* /proc/PID/maps is sorted by address: binary search. */
	size_t lo = 0, hi = m->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (addr < m->v[mid].start)
			hi = mid;
		else if (addr >= m->v[mid].end)
			lo = mid + 1;
		else
			return &m->v[mid];
	}
	return NULL;
}

void attach_maps_free(struct attach_maps *m)
{
	for (size_t i = 0; i < m->n; i++)
		free(m->v[i].path);
	free(m->v);
	memset(m, 0, sizeof *m);
}

/* "0100007F:1F90" (IPv4) or 32 hex digits (IPv6), in host word order. */
static void format_inet(const char *hex, size_t hl, int ipv6, char *out, size_t olen)
{
	const char *colon = memchr(hex, ':', hl);
	if (!colon) {
		snprintf(out, olen, "?");
		return;
	}
	unsigned port = (unsigned)strtoul(colon + 1, NULL, 16);
	size_t al = (size_t)(colon - hex);
	unsigned char b[16] = { 0 };
	size_t nb = ipv6 ? 16 : 4;
	if (al != nb * 2) {
		snprintf(out, olen, "?");
		return;
	}
	/* The kernel prints each 32-bit word in host order (little-endian here). */
	for (size_t w = 0; w < nb / 4; w++)
		for (size_t i = 0; i < 4; i++) {
			char tmp[3] = { hex[w * 8 + i * 2], hex[w * 8 + i * 2 + 1], 0 };
			b[w * 4 + 3 - i] = (unsigned char)strtoul(tmp, NULL, 16);
		}
	if (!ipv6) {
		snprintf(out, olen, "%u.%u.%u.%u:%u", b[0], b[1], b[2], b[3], port);
		return;
	}
	static const unsigned char v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	if (memcmp(b, v4mapped, 12) == 0) {
		snprintf(out, olen, "%u.%u.%u.%u:%u", b[12], b[13], b[14], b[15], port);
		return;
	}
	char a[64];
	size_t n = 0;
	for (int i = 0; i < 16; i += 2)
		n += (size_t)snprintf(a + n, sizeof a - n, "%s%x", i ? ":" : "", (b[i] << 8) | b[i + 1]);
	snprintf(out, olen, "[%s]:%u", a, port);
}

static const char *next_token(const char **p, const char *end, size_t *tl)
{
	while (*p < end && (**p == ' ' || **p == '\t'))
		(*p)++;
	const char *s = *p;
	while (*p < end && **p != ' ' && **p != '\t')
		(*p)++;
	*tl = (size_t)(*p - s);
	return *tl ? s : NULL;
}

/* A table row of /proc/net/: its first tokens and where the line ends. */
struct row {
	const char *tok[10];
	size_t tl[10];
	size_t n;
	const char *end;
};

/* Finds the row (after the header line) whose token number `col` is the
 * decimal inode; returns 0 and fills r, or -1. */
static int find_row(const char *buf, size_t len, size_t col, uint64_t inode, size_t want,
		    struct row *r)
{
	const char *p = buf, *end = buf + len;
	int header = 1;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *q = p;
		r->end = nl ? nl : end;
		p = nl ? nl + 1 : end;
		if (header) {
			header = 0;
			continue;
		}
		for (r->n = 0; r->n < want; r->n++)
			if (!(r->tok[r->n] = next_token(&q, r->end, &r->tl[r->n])))
				break;
		if (r->n <= col)
			continue;
		char tmp[32], *e;
		size_t n = r->tl[col] < sizeof tmp - 1 ? r->tl[col] : sizeof tmp - 1;
		memcpy(tmp, r->tok[col], n);
		tmp[n] = 0;
		if (strtoull(tmp, &e, 10) == inode && e != tmp)
			return 0;
	}
	return -1;
}

int attach_net_find_inet(const char *buf, size_t len, uint64_t inode, int ipv6,
			 char *local, size_t local_len, char *remote, size_t remote_len,
			 int *state)
{
	/* sl local rem st queues tr:tm retrnsmt uid timeout inode */
	struct row r;
	if (find_row(buf, len, 9, inode, 10, &r))
		return -1;
	format_inet(r.tok[1], r.tl[1], ipv6, local, local_len);
	format_inet(r.tok[2], r.tl[2], ipv6, remote, remote_len);
	char tmp[8] = { 0 };
	memcpy(tmp, r.tok[3], r.tl[3] < sizeof tmp - 1 ? r.tl[3] : sizeof tmp - 1);
	*state = (int)strtol(tmp, NULL, 16);
	return 0;
}

int attach_net_find_unix(const char *buf, size_t len, uint64_t inode, char *path, size_t path_len)
{
	/* Num RefCount Protocol Flags Type St Inode [Path]; the path may hold
	 * spaces, so it runs to the end of the line. */
	struct row r;
	if (path_len == 0 || find_row(buf, len, 6, inode, 8, &r))
		return -1;
	size_t pl = r.n == 8 ? (size_t)(r.end - r.tok[7]) : 0;
	if (pl >= path_len)
		pl = path_len - 1;
	memcpy(path, pl ? r.tok[7] : "", pl);
	path[pl] = 0;
	return 0;
}

const char *attach_tcp_state_name(int state)
{
	static const char *names[] = {
		"?", "established", "syn-sent", "syn-recv", "fin-wait1", "fin-wait2",
		"time-wait", "close", "close-wait", "last-ack", "listen", "closing",
	};
	if (state < 0 || (size_t)state >= sizeof names / sizeof names[0])
		return "?";
	return names[state];
}

int attach_read_file(const char *path, char **bufp, size_t *lenp)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap + 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	for (;;) {
		if (len == cap) {
			char *nb = realloc(buf, cap * 2 + 1);
			if (!nb) {
				free(buf);
				close(fd);
				return -ENOMEM;
			}
			buf = nb;
			cap *= 2;
		}
		ssize_t r = read(fd, buf + len, cap - len);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			int e = errno;
			free(buf);
			close(fd);
			return -e;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	buf[len] = '\0';
	*bufp = buf;
	*lenp = len;
	return 0;
}

int attach_read_small(const char *path, char *buf, size_t size, size_t *lenp)
{
	return attach_read_at(AT_FDCWD, path, buf, size, lenp);
}

size_t attach_count_threads(pid_t pid)
{
	char path[64], buf[4096];
	size_t len;
	struct cur c;
	unsigned long long n;
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	if (attach_read_small(path, buf, sizeof buf, &len) || find_key(buf, len, "Threads", &c) ||
	    read_ull(&c, 10, &n))
		return 0;
	return (size_t)n;
}

int attach_read_at(int dirfd, const char *name, char *buf, size_t size, size_t *lenp)
{
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t r;
	do
		r = read(fd, buf, size - 1);
	while (r < 0 && errno == EINTR);
	int e = errno;
	close(fd);
	if (r < 0)
		return -e;
	buf[r] = '\0';
	*lenp = (size_t)r;
	return 0;
}

size_t attach_usable_cpus(void)
{
	cpu_set_t set;
	return sched_getaffinity(0, sizeof set, &set) == 0 ? (size_t)CPU_COUNT(&set) : 1;
}

int attach_task_exists(pid_t pid, pid_t tid)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/task/%d", (int)pid, (int)tid);
	return access(path, F_OK) == 0;
}

int attach_read_task_status(pid_t pid, pid_t tid, char *buf, size_t size, size_t *len)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/task/%d/status", (int)pid, (int)tid);
	if (attach_read_small(path, buf, size, len))
		return -1;
	buf[*len < size ? *len : size - 1] = 0;
	return 0;
}

static int state_exiting(const char *status)
{
	const char *st = strstr(status, "\nState:\t");
	return st && (st[8] == 'Z' || st[8] == 'X');
}

int attach_task_exiting(pid_t pid, pid_t tid)
{
	char buf[2048];
	size_t len;
	return attach_read_task_status(pid, tid, buf, sizeof buf, &len) || state_exiting(buf);
}

/* The first thread of pid that is not exiting, other than pid itself;
 * pid when there is none (the process is over). */
static pid_t live_thread(pid_t pid)
{
	pid_t *tids = NULL, found = pid;
	size_t n = 0;
	if (attach_list_tasks(pid, &tids, &n))
		return pid;
	for (size_t i = 0; i < n && found == pid; i++)
		if (tids[i] != pid && !attach_task_exiting(pid, tids[i]))
			found = tids[i];
	free(tids);
	return found;
}

pid_t attach_mm_pid(pid_t pid)
{
	char buf[2048];
	size_t len;
	struct attach_status st;
	if (attach_read_task_status(pid, pid, buf, sizeof buf, &len) || !state_exiting(buf))
		return pid;
	/* Only a thread-group leader stands for its process: an exiting
	 * thread of it answers for itself (its own stack is gone). */
	if (attach_parse_status(buf, len, &st) || st.tgid != pid)
		return pid;
	return live_thread(pid);
}

size_t attach_parse_cpu_list(const char *list)
{
	size_t n = 0;
	for (const char *p = list; *p;) {
		char *end;
		/* Digits only: strtoul would read the "-1" of "0-1" as -1. */
		if (*p < '0' || *p > '9') {
			p++;
			continue;
		}
		unsigned long v = strtoul(p, &end, 10);
		if (v + 1 > n)
			n = v + 1;
		p = end;
	}
	return n;
}

/* How many CPUs this kernel can have, from /sys/devices/system/cpu/possible,
 * else the CPUs configured; at least 1. */
size_t attach_possible_cpus(void)
{
	char buf[4096];
	size_t len, n = 0;
	if (attach_read_small("/sys/devices/system/cpu/possible", buf, sizeof buf, &len) == 0)
		n = attach_parse_cpu_list(buf);
	if (!n) {
		long c = sysconf(_SC_NPROCESSORS_CONF);
		n = c > 0 ? (size_t)c : 1;
	}
	return n;
}

/* Reads the clock of the CPU we now run on from our own exec_start.  A
 * thread's exec_start is set when a CPU starts running it, and after that
 * only at scheduler events (a tick, at most 1/HZ later).  Having just
 * arrived from another CPU, we started running here a moment ago; if we
 * did not move, a sched_yield makes this CPU start us anew.  The yield is
 * kept for that case only: on a busy CPU it gives the rest of a time
 * slice away (8-18 ms with a spinner on each CPU, measured). */
static double clock_here(int moved)
{
	if (!moved && sched_yield() != 0)
		return -1;
	return attach_sched_clock_here(NULL);
}

double attach_sched_clock_here(int *cpu)
{
	char buf[8192];
	size_t len;
	struct attach_sched me;
	int before = sched_getcpu();
	if (cpu)
		*cpu = -1;
	/* thread-self: this may be any thread of pprofc (a tick loop, or
	 * snapshot.c's helper); /proc/self is the main thread's, which may
	 * have slept for a second (serve's does) and on another CPU. */
	if (attach_read_small("/proc/thread-self/sched", buf, sizeof buf, &len) ||
	    attach_parse_sched(buf, len, &me))
		return -1;
	if (cpu)
		*cpu = before >= 0 && sched_getcpu() == before ? before : -1;
	return me.exec_start_ms;
}

double *attach_sched_clocks(size_t *n_out)
{
	size_t max = attach_possible_cpus(), n = 0;
	size_t size = CPU_ALLOC_SIZE(max);
	double *now_ms = malloc(max * sizeof *now_ms);
	cpu_set_t *old = CPU_ALLOC(max), *one = CPU_ALLOC(max);
	*n_out = 0;
	if (!now_ms || !old || !one || sched_getaffinity(0, size, old)) {
		free(now_ms);
		CPU_FREE(old);
		CPU_FREE(one);
		return NULL;
	}
	for (size_t cpu = 0; cpu < max; cpu++)
		now_ms[cpu] = -1;
	/* Start with the CPU after the one we are on and end with it, so
	 * that with two CPUs or more every visit is a move (clock_here). */
	int here = sched_getcpu();
	size_t first = here >= 0 ? ((size_t)here + 1) % max : 0;
	for (size_t k = 0; k < max; k++) {
		size_t cpu = (first + k) % max;
		if (!CPU_ISSET_S(cpu, size, old))
			continue;
		CPU_ZERO_S(size, one);
		CPU_SET_S(cpu, size, one);
		int before = sched_getcpu();
		if (sched_setaffinity(0, size, one) != 0)
			continue;
		int after = sched_getcpu();
		now_ms[cpu] = clock_here(before >= 0 && after == (int)cpu && before != after);
		if (cpu + 1 > n)
			n = cpu + 1;
	}
	sched_setaffinity(0, size, old);
	CPU_FREE(old);
	CPU_FREE(one);
	*n_out = n;
	return now_ms;
}

static int cmp_pid(const void *a, const void *b)
{
	pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;
	return (x > y) - (x < y);
}

int attach_list_tasks(pid_t pid, pid_t **tidsp, size_t *np)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
	DIR *d = opendir(path);
	if (!d)
		return -errno;
	size_t n = 0, cap = 16;
	pid_t *tids = malloc(cap * sizeof *tids);
	struct dirent *de;
	while (tids && (de = readdir(d))) {
		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		if (n == cap) {
			pid_t *nt = realloc(tids, cap * 2 * sizeof *tids);
			if (!nt) {
				free(tids);
				tids = NULL;
				break;
			}
			tids = nt;
			cap *= 2;
		}
		tids[n++] = (pid_t)atoi(de->d_name);
	}
	closedir(d);
	if (!tids)
		return -ENOMEM;
	qsort(tids, n, sizeof *tids, cmp_pid);
	*tidsp = tids;
	*np = n;
	return 0;
}

/* Every process's (pid, ppid), from each /proc/PID/stat; 0 or -errno. */
static int list_parents(pid_t (**pairs)[2], size_t *np)
{
	DIR *d = opendir("/proc");
	if (!d)
		return -errno;
	size_t n = 0, cap = 0;
	pid_t (*v)[2] = NULL;
	struct dirent *de;
	int r = 0;
	while ((de = readdir(d))) {
		char path[300], buf[1024];
		size_t len;
		struct attach_stat st;
		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		snprintf(path, sizeof path, "/proc/%s/stat", de->d_name);
		if (attach_read_small(path, buf, sizeof buf, &len) || attach_parse_stat(buf, len, &st))
			continue;       /* gone meanwhile */
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 256;
			pid_t (*nv)[2] = realloc(v, nc * sizeof *v);
			if (!nv) {
				r = -ENOMEM;
				break;
			}
			v = nv;
			cap = nc;
		}
		v[n][0] = (pid_t)atoi(de->d_name);
		v[n++][1] = st.ppid;
	}
	closedir(d);
	if (r)
		free(v);
	else
		*pairs = v, *np = n;
	return r;
}

static int in_list(const pid_t *v, size_t n, pid_t pid)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] == pid)
			return 1;
	return 0;
}

int attach_list_descendants(const pid_t *roots, size_t nroots, pid_t **pidsp, size_t *np)
{
	pid_t (*pairs)[2] = NULL, *out = NULL;
	size_t npairs = 0, n = 0;
	int r = list_parents(&pairs, &npairs);
	if (r)
		return r;
	if (npairs && !(out = malloc(npairs * sizeof *out))) {
		free(pairs);
		return -ENOMEM;
	}
	/* Breadth first: out grows while it is walked, each parent before
	 * its children; a process is taken once (pids are unique). */
	for (size_t head = 0;; head++) {
		pid_t parent;
		if (head < nroots)
			parent = roots[head];
		else if (head - nroots < n)
			parent = out[head - nroots];
		else
			break;
		for (size_t i = 0; i < npairs; i++)
			if (pairs[i][1] == parent && !in_list(roots, nroots, pairs[i][0]) &&
			    !in_list(out, n, pairs[i][0]))
				out[n++] = pairs[i][0];
	}
	free(pairs);
	if (!n) {
		free(out);
		out = NULL;
	}
	*pidsp = out;
	*np = n;
	return 0;
}

/* A zombie leader alone does not end a process (its other threads may
 * run on after it called pthread_exit): every thread must be a zombie. */
static int all_zombies(pid_t pid)
{
	pid_t *tids;
	size_t n;
	if (attach_list_tasks(pid, &tids, &n))
		return 1;
	int all = 1;
	for (size_t i = 0; i < n && all; i++) {
		char path[64], buf[1024];
		size_t len;
		struct attach_stat st;
		snprintf(path, sizeof path, "/proc/%d/task/%d/stat", (int)pid, (int)tids[i]);
		if (attach_read_small(path, buf, sizeof buf, &len) == 0 &&
		    attach_parse_stat(buf, len, &st) == 0 && st.state != 'Z' && st.state != 'X')
			all = 0;
	}
	free(tids);
	return all;
}

int attach_process_ended(pid_t pid, int *exit_status, uint64_t *cpu_ns)
{
	char path[64], buf[1024];
	size_t len;
	struct attach_stat st;
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	if (attach_read_small(path, buf, sizeof buf, &len) || attach_parse_stat(buf, len, &st))
		return 1;               /* gone, reaped */
	if (cpu_ns) {
		long hz = sysconf(_SC_CLK_TCK);
		*cpu_ns = (st.utime + st.stime) * (1000000000ull / (uint64_t)(hz > 0 ? hz : 100));
	}
	if (st.state != 'Z' || !all_zombies(pid))
		return 0;
	*exit_status = st.exit_code;    /* until the parent reaps it */
	return 1;
}

uint64_t attach_read_schedstat(pid_t pid, pid_t tid)
{
	char path[64], buf[128];
	size_t len;
	snprintf(path, sizeof path, "/proc/%d/task/%d/schedstat", (int)pid, (int)tid);
	return attach_read_small(path, buf, sizeof buf, &len) ? 0 : strtoull(buf, NULL, 10);
}
