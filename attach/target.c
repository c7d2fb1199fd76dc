/* target.c — deciding whether a PID is something pprofc can attach to, and
 * saying clearly why not (no such process, zombie, kernel thread, already
 * traced, not permitted, pprofc itself).  Nothing here stops the target.
 */
#include "snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

static int fail(struct attach_error *err, enum attach_err code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof err->msg, fmt, ap);
	va_end(ap);
	err->code = code;
	return -1;
}

int attach_has_cap(int cap)
{
	char buf[4096];
	size_t len;
	const char *p;
	if (attach_read_small("/proc/self/status", buf, sizeof buf, &len) || !(p = strstr(buf, "\nCapEff:")))
		return 0;
	return (strtoull(p + 8, NULL, 16) >> cap) & 1;
}

int attach_fail_perm(struct attach_error *err, pid_t pid)
{
	char scope[16] = "";
	size_t len;
	char how[96];
	if (attach_read_small("/proc/sys/kernel/yama/ptrace_scope", scope, sizeof scope, &len) == 0) {
		scope[strcspn(scope, "\n")] = 0;
		snprintf(how, sizeof how, "/proc/sys/kernel/yama/ptrace_scope is %s", scope);
	} else {
		snprintf(how, sizeof how, "/proc/sys/kernel/yama/ptrace_scope is absent (Yama off)");
	}
	if (geteuid() != 0)
		return fail(err, ATTACH_ERR_PERM,
			    "permission denied attaching to PID %d: ptrace needs CAP_SYS_PTRACE "
			    "(run as root) or the target's user with ptrace_scope 0 (%s)",
			    (int)pid, how);
	/* Root already: telling it to run as root would not help. */
	if (!attach_has_cap(19 /* CAP_SYS_PTRACE */))
		return fail(err, ATTACH_ERR_PERM,
			    "permission denied attaching to PID %d: pprofc runs as root but without "
			    "CAP_SYS_PTRACE (dropped, as containers do by default): grant it, e.g. "
			    "docker run --cap-add SYS_PTRACE", (int)pid);
	return fail(err, ATTACH_ERR_PERM,
		    "permission denied attaching to PID %d although pprofc runs as root with "
		    "CAP_SYS_PTRACE: the process is protected from outside (another user "
		    "namespace, or a security module: %s, SELinux, AppArmor)", (int)pid, how);
}

/* tid 0: the process itself (its main thread) is traced. */
static int fail_traced(struct attach_error *err, pid_t pid, pid_t tid, pid_t tracer)
{
	char path[64], comm[64] = "?", which[48] = "";
	size_t len;
	snprintf(path, sizeof path, "/proc/%d/comm", (int)tracer);
	if (attach_read_small(path, comm, sizeof comm, &len) == 0)
		comm[strcspn(comm, "\n")] = 0;
	if (tid)
		snprintf(which, sizeof which, " (its thread %d)", (int)tid);
	return fail(err, ATTACH_ERR_TRACED,
		    "PID %d%s is already traced by PID %d (%s): detach that tracer (gdb, strace...) and retry",
		    (int)pid, which, (int)tracer, comm);
}

int attach_fail_traced(struct attach_error *err, pid_t pid, pid_t tracer)
{
	return fail_traced(err, pid, 0, tracer);
}

int attach_fail_traced_tid(struct attach_error *err, pid_t pid, pid_t tid, pid_t tracer)
{
	return fail_traced(err, pid, tid == pid ? 0 : tid, tracer);
}

/* Reads /proc/PID/status; maps errno to the message the user needs. */
static int read_status(pid_t pid, struct attach_status *st, struct attach_error *err)
{
	char path[64], buf[4096];
	size_t len;
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	int r = attach_read_small(path, buf, sizeof buf, &len);
	if (r == -ENOENT || r == -ESRCH)
		return fail(err, ATTACH_ERR_NOPROC,
			    "no such process: PID %d (it may have exited: find its current PID with pgrep or ps)",
			    (int)pid);
	if (r == -EACCES || r == -EPERM)
		return attach_fail_perm(err, pid);
	if (r < 0 || attach_parse_status(buf, len, st))
		return fail(err, ATTACH_ERR_OTHER, "cannot read /proc/%d/status: %s", (int)pid,
			    r < 0 ? strerror(-r) : "unexpected format");
	return 0;
}

/* A thread of pid traced by another process (a debugger attached to one
 * thread only): 1 with its tid and tracer, else 0. */
static int traced_thread(pid_t pid, pid_t *tid, pid_t *tracer)
{
	pid_t *tids = NULL;
	size_t n = 0;
	int found = 0;
	if (attach_list_tasks(pid, &tids, &n))
		return 0;
	for (size_t i = 0; i < n && !found; i++) {
		char path[64], buf[4096];
		size_t len;
		struct attach_status st;
		snprintf(path, sizeof path, "/proc/%d/task/%d/status", (int)pid, (int)tids[i]);
		if (attach_read_small(path, buf, sizeof buf, &len) == 0 &&
		    attach_parse_status(buf, len, &st) == 0 && st.tracer_pid) {
			*tid = tids[i];
			*tracer = st.tracer_pid;
			found = 1;
		}
	}
	free(tids);
	return found;
}

/* Whether ptrace would be refused: opening /proc/PID/mem needs the same
 * permission as attaching (PTRACE_MODE_ATTACH), and has no effect on the
 * target.  Checked up front so every command, whatever it reads first,
 * reports a refusal the same way. */
static int may_not_trace(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/mem", (int)attach_mm_pid(pid));
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		close(fd);
		return 0;
	}
	return errno == EACCES || errno == EPERM;
}

int attach_check_process(pid_t pid, pid_t *tgid, struct attach_error *err)
{
	struct attach_status st;
	err->code = ATTACH_OK;
	err->msg[0] = 0;
	if (read_status(pid, &st, err))
		return -1;
	pid_t tg = st.tgid ? st.tgid : pid;
	if (tg == getpid())
		return fail(err, ATTACH_ERR_SELF,
			    "PID %d is pprofc itself: a process cannot trace itself; give the PID of another process",
			    (int)pid);

	char path[64], buf[1024];
	size_t len;
	struct attach_stat s;
	snprintf(path, sizeof path, "/proc/%d/stat", (int)tg);
	if (attach_read_small(path, buf, sizeof buf, &len) || attach_parse_stat(buf, len, &s))
		return fail(err, ATTACH_ERR_NOPROC, "no such process: PID %d", (int)pid);
	if (s.flags & ATTACH_PF_KTHREAD)
		return fail(err, ATTACH_ERR_KTHREAD,
			    "PID %d is a kernel thread (%s): it has no user-space stack to dump; "
			    "give the PID of a user-space process",
			    (int)pid, s.comm);
	if (s.state == 'Z' || s.state == 'X') {
		/* A dead leader with live threads is still a process to dump. */
		pid_t *tids = NULL;
		size_t n = 0;
		int r = attach_list_tasks(tg, &tids, &n);
		free(tids);
		if (r != 0 || n <= 1)
			return fail(err, ATTACH_ERR_ZOMBIE,
				    "PID %d is a zombie: it has exited and waits for its parent (PID %d) to reap it; "
				    "there is nothing left to look at",
				    (int)pid, (int)s.ppid);
	}
	if (st.tracer_pid)
		return attach_fail_traced(err, pid, st.tracer_pid);
	if (may_not_trace(tg))
		return attach_fail_perm(err, pid);
	*tgid = tg;
	return 0;
}

int attach_check_target(pid_t pid, pid_t *tgid, struct attach_error *err)
{
	pid_t tid, tracer;
	if (attach_check_process(pid, tgid, err))
		return -1;
	if (traced_thread(*tgid, &tid, &tracer))
		return fail_traced(err, pid, tid, tracer);
	return 0;
}
