/* run.c — `pprofc run -- COMMAND [ARGS...]`: start a command, profile it
 * until it exits, and exit with its status.
 *
 * The child waits on a pipe until pprofc has seized it, then execs the
 * command: the PTRACE_EVENT_EXEC stop that follows is the first moment
 * the new program's code is mapped, so symbolization starts from there.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"

#define SEIZE_OPTIONS (PTRACE_O_TRACECLONE | PTRACE_O_TRACEEXEC | PTRACE_O_TRACEEXIT)

/* Shell convention: 128 + signal for a command killed by a signal. */
static int exit_code(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return EXIT_FAIL;
}

static pid_t start(char **command, int *go)
{
	int fds[2];
	if (pipe(fds))
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		char c;
		close(fds[1]);
		/* Wait until the parent has seized us (or died). */
		if (read(fds[0], &c, 1) != 1)
			_exit(127);
		close(fds[0]);
		execvp(command[0], command);
		fprintf(stderr, "pprofc: cannot run %s: %s\n", command[0], strerror(errno));
		_exit(127);
	}
	close(fds[0]);
	*go = fds[1];
	return pid;
}

/* Waits for the child's exec (the program is now mapped), or its exit. */
static int wait_exec(pid_t pid, int *status)
{
	for (;;) {
		if (waitpid(pid, status, __WALL) < 0)
			return -1;
		if (!WIFSTOPPED(*status))
			return -1;              /* exited: exec failed */
		if ((*status >> 16) == PTRACE_EVENT_EXEC)
			return 0;
		int sig = (*status >> 16) == 0 ? WSTOPSIG(*status) : 0;
		ptrace(PTRACE_CONT, pid, 0, (void *)(long)sig);
	}
}

int cmd_run(int argc, char **argv)
{
	struct cli_profile_options o;
	int r = cli_profile_parse(argc, argv, 1, &o);
	if (r)
		return r < 0 ? EXIT_OK : r;
	int go, status;
	pid_t pid = start(o.command, &go);
	if (pid < 0) {
		cli_error("cannot start %s: %s", o.command[0], strerror(errno));
		return EXIT_FAIL;
	}
	if (ptrace(PTRACE_SEIZE, pid, 0, (void *)(long)SEIZE_OPTIONS) != 0) {
		cli_error("cannot trace %s: %s", o.command[0], strerror(errno));
		close(go);                      /* the child exits 127 */
		waitpid(pid, &status, 0);
		return EXIT_FAIL;
	}
	if (write(go, "g", 1) != 1 || wait_exec(pid, &status)) {
		close(go);
		if (waitpid(pid, &status, 0) == pid || WIFEXITED(status))
			return exit_code(status);
		return EXIT_FAIL;
	}
	close(go);
	/* Ctrl-C reaches the command too (same process group): pprofc then
	 * writes what it has and waits for the command to finish. */
	cli_catch_stop_signals();
	int exited = -1;
	r = cli_profile_take(&o, pid, 1, &exited);
	if (exited == -1) {
		/* --seconds passed first: the command runs on, untraced. */
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		exited = status;
	}
	return r != EXIT_OK ? r : exit_code(exited);
}
