/* spawn.c — starting the command of `pprofc run`, so that it is profiled
 * from its first instruction.
 *
 * The child waits on a pipe until pprofc has seized it (PTRACE_SEIZE with
 * PTRACE_O_TRACEEXEC), then execs the command: the PTRACE_EVENT_EXEC stop
 * that follows is the first moment the new program is mapped.  The engine
 * is opened there, and the child is detached: it runs untraced from then
 * on, whatever the engine.  If pprofc dies meanwhile, the kernel lets go
 * of it and it runs as if started without pprofc.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"

/* Waits for the exec stop, giving back any signal that arrives first.
 * 0 at the stop; -1 when the child exited instead (exec failed). */
static int wait_exec(pid_t pid, int *status)
{
	for (;;) {
		if (waitpid(pid, status, __WALL) < 0) {
			if (errno == EINTR)
				continue;       /* a stop signal for pprofc: the
						 * exec is a moment away */
			return -1;
		}
		if (!WIFSTOPPED(*status))
			return -1;
		int event = *status >> 16, sig = WSTOPSIG(*status);
		if (event == PTRACE_EVENT_EXEC)
			return 0;
		if (event == PTRACE_EVENT_STOP &&
		    (sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU)) {
			/* A job-control stop before the exec: kept (it runs on
			 * to its exec when continued). */
			ptrace(PTRACE_LISTEN, pid, 0, 0);
			continue;
		}
		ptrace(PTRACE_CONT, pid, 0, (void *)(long)(event == 0 ? sig : 0));
	}
}

pid_t collect_start_child(char **argv, struct collect_error *err, int *status)
{
	int fds[2], st;
	*status = -1;
	if (pipe2(fds, O_CLOEXEC)) {
		snprintf(err->msg, sizeof err->msg, "cannot start %s: %s", argv[0], strerror(errno));
		return -1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(err->msg, sizeof err->msg, "cannot start %s: %s", argv[0], strerror(errno));
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	if (pid == 0) {
		char c;
		close(fds[1]);
		/* Wait until the parent has seized us (or died). */
		if (read(fds[0], &c, 1) != 1)
			_exit(127);
		execvp(argv[0], argv);
		fprintf(stderr, "pprofc: cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(fds[0]);
	if (ptrace(PTRACE_SEIZE, pid, 0, (void *)(long)PTRACE_O_TRACEEXEC) != 0) {
		snprintf(err->msg, sizeof err->msg, "cannot trace %s: %s", argv[0], strerror(errno));
		close(fds[1]);                  /* the child exits 127 */
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
		return -1;
	}
	if (write(fds[1], "g", 1) != 1 || wait_exec(pid, &st)) {
		close(fds[1]);
		while (waitpid(pid, &st, __WALL) < 0 && errno == EINTR)
			;
		*status = st;
		err->msg[0] = 0;                /* the child said why */
		return -1;
	}
	close(fds[1]);
	return pid;
}

void collect_release_child(pid_t pid)
{
	ptrace(PTRACE_DETACH, pid, 0, 0);
}

void collect_kill_child(pid_t pid)
{
	int st;
	kill(pid, SIGKILL);
	while (waitpid(pid, &st, __WALL) == pid && !WIFEXITED(st) && !WIFSIGNALED(st))
		;
}
