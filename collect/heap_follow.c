/* heap_follow.c — `pprofc run --profile heap|allocs --children`: the
 * socket through which every process the command starts asks for a ring
 * of its own (preload/heapring.h, "Following children"), and the rings
 * made for them.  What is done with an ask (the process's symbolizer, its
 * accounting) is heap.c's.
 *
 * The socket lives in Linux's abstract namespace: a name, not a file, so
 * nothing is left behind when pprofc is killed, and the children reach it
 * by name even after a program closed every descriptor it did not know
 * (python's subprocess does, by default).  The name holds 64 random bits,
 * but abstract names are listed in /proc/net/unix: so an ask is answered
 * only for a process of pprofc's own user or a descendant of the command
 * (by SO_PEERCRED, which the kernel fills in, not by what the asker says).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal.h"

#define ASK_WAIT_MS 200         /* the asker sends right after its connect */
#define ANCESTRY_MAX 64         /* parent links followed to find the command */

static socklen_t address_of(const struct collect_follow *f, struct sockaddr_un *a)
{
	size_t len = strlen(f->name);
	memset(a, 0, sizeof *a);
	a->sun_family = AF_UNIX;
	memcpy(a->sun_path + 1, f->name, len);  /* sun_path[0] = 0: abstract */
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + len);
}

int collect_follow_open(struct collect_follow *f, pid_t self, struct collect_error *err)
{
	uint64_t nonce = 0;
	struct sockaddr_un a;
	f->fd = -1;
	if (getrandom(&nonce, sizeof nonce, 0) != (ssize_t)sizeof nonce)
		nonce = (uint64_t)collect_now_ns() * 0x9e3779b97f4a7c15ull;
	snprintf(f->name, sizeof f->name, "pprofc-heap-%d-%016" PRIx64, (int)self, nonce);
	socklen_t len = address_of(f, &a);
	f->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (f->fd < 0 || bind(f->fd, (struct sockaddr *)&a, len) || listen(f->fd, SOMAXCONN)) {
		snprintf(err->msg, sizeof err->msg, "--children: cannot listen on a unix socket for "
			 "the processes to follow: %s", strerror(errno));
		collect_follow_close(f);
		return -1;
	}
	return 0;
}

void collect_follow_close(struct collect_follow *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
}

/* The parent of pid, from /proc/PID/stat (after the last ')': the name
 * may hold any byte); 0 if unknown. */
static pid_t parent_of(pid_t pid)
{
	char path[64], buf[512];
	size_t n = 0;
	int ppid = 0;
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	if (attach_read_small(path, buf, sizeof buf - 1, &n))
		return 0;
	buf[n] = 0;
	const char *close = strrchr(buf, ')');
	return close && sscanf(close + 1, " %*c %d", &ppid) == 1 ? (pid_t)ppid : 0;
}

static int descends_from(pid_t pid, pid_t root)
{
	for (int i = 0; i < ANCESTRY_MAX && pid > 1; i++, pid = parent_of(pid))
		if (pid == root)
			return 1;
	return 0;
}

/* The ask the asker sends on its connection, checked. */
static int read_ask(int conn)
{
	struct heapring_ask ask;
	struct pollfd p = { conn, POLLIN, 0 };
	if (poll(&p, 1, ASK_WAIT_MS) != 1 || recv(conn, &ask, sizeof ask, MSG_DONTWAIT) != (ssize_t)sizeof ask)
		return -1;
	return ask.magic == HEAPRING_MAGIC && ask.version == HEAPRING_VERSION ? 0 : -1;
}

int collect_follow_next(struct collect_follow *f, pid_t root, int *conn, pid_t *pid)
{
	struct ucred cred;
	for (;;) {
		socklen_t len = sizeof cred;
		int c = f->fd < 0 ? -1 : accept4(f->fd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0)
			return errno == EINTR ? -1 : 0;
		if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && cred.pid > 0 &&
		    (cred.uid == geteuid() || descends_from(cred.pid, root)) && read_ask(c) == 0) {
			*conn = c;
			*pid = cred.pid;
			return 1;
		}
		f->refused++;
		close(c);       /* the asker reads end-of-file: it records nothing */
	}
}

int collect_follow_answer(int conn, int ring_fd)
{
	struct heapring_answer a = { HEAPRING_MAGIC, HEAPRING_VERSION, 1 };
	struct iovec iov = { &a, sizeof a };
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} c;
	memset(&c, 0, sizeof c);
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = c.buf,
			    .msg_controllen = sizeof c.buf };
	struct cmsghdr *h = CMSG_FIRSTHDR(&m);
	h->cmsg_level = SOL_SOCKET;
	h->cmsg_type = SCM_RIGHTS;
	h->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(h), &ring_fd, sizeof ring_fd);
	/* The asker waits for this (HEAPRING_ASK_NS); one that gave up has
	 * closed its end: EPIPE, without SIGPIPE. */
	ssize_t sent = sendmsg(conn, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
	close(conn);
	return sent == (ssize_t)sizeof a ? 0 : -1;
}

int collect_follow_pidfd(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}
