/* follow.c — `pprofc run --children`: how a process asks pprofc for a
 * ring of its own (heapring.h, "Following children").  The constructor of
 * every program the command runs asks once; a forked child that keeps
 * running the same program asks at its first sampled allocation
 * (setup.c), so the child of a shell that only execs never asks.
 *
 * That second caller is inside malloc, maybe in the child of a
 * multithreaded parent whose other threads held locks at the fork: so
 * only raw system calls here (no glibc wrapper that is a cancellation
 * point, no lock, no allocation, no stdio).  Every wait is bounded by
 * HEAPRING_ASK_NS: a pprofc that is gone refuses the connection or closes
 * it at once, one that hangs costs that process at most that long, once.
 */
#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "preload.h"

#define CONNECT_NAP_NS 1000000          /* 1 ms: pprofc's backlog is full */

/* The socket's abstract name, read once by the constructor: a forked
 * child must not read the environment (another thread of its parent may
 * have been changing it at the fork). */
static char sock_name[HEAPRING_SOCK_NAME_MAX + 1];
static size_t sock_name_len;

bool preload_follow_init(const char *name)
{
	size_t len = name ? strlen(name) : 0;

	if (!len || len > HEAPRING_SOCK_NAME_MAX)
		return false;
	memcpy(sock_name, name, len);
	sock_name_len = len;
	return true;
}

bool preload_following(void)
{
	return sock_name_len != 0;
}

static long sys_close(int fd)
{
	return syscall(SYS_close, fd);
}

/* Connects to the abstract name; a full backlog (EAGAIN: pprofc is busy)
 * is retried until the deadline.  The descriptor, or -1. */
static int connect_until(uint64_t deadline)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + sock_name_len);
	int fd = (int)syscall(SYS_socket, AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	if (fd < 0)
		return -1;
	memcpy(addr.sun_path + 1, sock_name, sock_name_len);    /* sun_path[0] = 0: abstract */
	while (syscall(SYS_connect, fd, &addr, len) != 0) {
		if (errno != EAGAIN || preload_now_ns() >= deadline) {
			sys_close(fd);
			return -1;
		}
		preload_nap(CONNECT_NAP_NS);
	}
	return fd;
}

/* Waits for the answer until the deadline; whether one is there. */
static bool answer_ready(int fd, uint64_t deadline)
{
	for (;;) {
		uint64_t now = preload_now_ns();
		struct pollfd p = { fd, POLLIN, 0 };
		struct timespec ts;

		if (now >= deadline)
			return false;
		ts.tv_sec = (time_t)((deadline - now) / 1000000000u);
		ts.tv_nsec = (long)((deadline - now) % 1000000000u);
		if (syscall(SYS_ppoll, &p, 1, &ts, NULL, 0) > 0)
			return (p.revents & POLLIN) != 0;
		if (errno != EINTR)
			return false;
	}
}

/* The answer and the descriptor it carries, or -1. */
static int receive_ring(int fd)
{
	struct heapring_answer a;
	struct iovec iov = { &a, sizeof a };
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} c;
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = c.buf,
			    .msg_controllen = sizeof c.buf };
	struct cmsghdr *h;
	int ring = -1;

	if (syscall(SYS_recvmsg, fd, &m, MSG_CMSG_CLOEXEC) != (long)sizeof a)
		return -1;
	h = CMSG_FIRSTHDR(&m);
	if (h && h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS &&
	    h->cmsg_len == CMSG_LEN(sizeof(int)))
		memcpy(&ring, CMSG_DATA(h), sizeof ring);
	if (ring >= 0 && (a.magic != HEAPRING_MAGIC || a.version != HEAPRING_VERSION || a.ok != 1 ||
			  (m.msg_flags & MSG_CTRUNC))) {
		sys_close(ring);
		ring = -1;
	}
	return ring;
}

int preload_follow_ask(void)
{
	uint64_t deadline = preload_now_ns() + HEAPRING_ASK_NS;
	struct heapring_ask ask = { HEAPRING_MAGIC, HEAPRING_VERSION, (int32_t)syscall(SYS_getpid) };
	int fd, ring = -1;

	if (!sock_name_len || (fd = connect_until(deadline)) < 0)
		return -1;
	/* MSG_NOSIGNAL: a pprofc gone must not kill us with SIGPIPE. */
	if (syscall(SYS_sendto, fd, &ask, sizeof ask, MSG_NOSIGNAL, NULL, 0) == (long)sizeof ask &&
	    answer_ready(fd, deadline))
		ring = receive_ring(fd);
	sys_close(fd);
	return ring;
}
