/* wait.h — what a thread is waiting for.
 *
 * attach_classify() turns a thread's /proc state (state letter, current
 * system call and its arguments, wchan) into one of the wait reasons of
 * docs/FORMATS.md §2.  A futex wait is refined into "mutex wait" or "cond wait"
 * by attach_refine() once the caller knows the innermost function
 * names (attach/ never reads DWARF itself: it is handed plain strings).
 * The mutex owner comes from the glibc pthread_mutex_t in the target's
 * memory, fd descriptions from /proc/PID/fd and /proc/PID/net/, deadlocks
 * from cycles in the waits-for graph.
 */
#ifndef PPROFC_ATTACH_WAIT_H
#define PPROFC_ATTACH_WAIT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proc.h"

enum attach_reason {
	ATTACH_R_UNKNOWN,
	ATTACH_R_RUNNING,
	ATTACH_R_MUTEX,
	ATTACH_R_COND,
	ATTACH_R_FUTEX,
	ATTACH_R_IO,
	ATTACH_R_SLEEP,
	ATTACH_R_SIGNAL,
	ATTACH_R_CHILD,
	ATTACH_R_DISK,
	ATTACH_R_STOPPED,
	ATTACH_R_TRACED,
	ATTACH_R_ZOMBIE,
	ATTACH_R_SYSCALL,
};

struct attach_wait {
	enum attach_reason reason;
	char syscall[32];       /* the system call it is blocked in, or "" */
	int fd;                 /* IO wait on one descriptor, else -1 */
	uint64_t futex;         /* futex waits: the address, else 0 */
	uint64_t poll_fds;      /* poll/ppoll: address of the pollfd array */
	unsigned poll_nfds;
	pid_t owner;            /* mutex wait: the holder's tid, 0 if unknown */
};

void attach_classify(char state, const struct attach_syscall *sc, struct attach_wait *out);
/* Refines a classification with the innermost function names of the
 * thread's stack: futex -> mutex/cond wait, restart_syscall -> what it
 * restarts. */
void attach_refine(struct attach_wait *w, const char *const *funcs, size_t n);

/* "mutex wait", "IO wait", "syscall ioctl"... */
void attach_reason_text(const struct attach_wait *w, char *buf, size_t len);

/* The x86_64 name of a system call number, or NULL. */
const char *attach_syscall_name(long nr);

/* Reads the glibc pthread_mutex_t at addr and returns the owner's tid, or 0. */
pid_t attach_mutex_owner(pid_t pid, uint64_t addr);

/* Describes what fd is in the target ("TCP 127.0.0.1:8080 listen", "pipe",
 * "/var/log/x.log", "epoll on fd 4 (pipe), fd 6 (TCP ...)") and gives its
 * /proc/PID/fd link in target (may be NULL; "" when closed).  Socket tables
 * are read once per cache, and each fd once: a process's threads share one
 * fd table, and hundreds of them often wait on the same fd.  Free it with
 * attach_fdcache_free(). */
struct attach_fdmemo;
struct attach_fdcache {
	pid_t pid;                      /* the process (read by attach_mm_pid) */
	int loaded;
	char *tcp, *tcp6, *udp, *udp6, *unx;
	size_t tcp_len, tcp6_len, udp_len, udp6_len, unx_len;
	struct attach_fdmemo *memo;     /* fds described so far */
	size_t nmemo, capmemo;
};
void attach_describe_fd(struct attach_fdcache *c, int fd, char *target, size_t tlen, char *buf,
			size_t len);
void attach_fdcache_free(struct attach_fdcache *c);

/* Cycles in the waits-for graph: waits_for[i] is the tid thread tids[i]
 * waits for (0: none).  Writes each cycle into cycles as a run of tids
 * starting at its smallest, with its length in lens; returns the count. */
size_t attach_find_deadlocks(const pid_t *tids, const pid_t *waits_for, size_t n,
			     pid_t *cycles, size_t *lens, size_t max_cycles);

#endif
