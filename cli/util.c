/* util.c — helpers shared by the subcommands: errors, number parsing,
 * stop signals, and output files written atomically. */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

volatile sig_atomic_t cli_stop;

void cli_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("pprofc: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("pprofc: ", stderr);
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, " (try 'pprofc %s%s--help')\n", cmd ? cmd : "", cmd ? " " : "");
	va_end(ap);
	return EXIT_USAGE;
}

int cli_parse_int(const char *s, long min, long max, long *v)
{
	char *end;
	errno = 0;
	long x = strtol(s, &end, 10);
	if (!*s || *end || errno || x < min || x > max)
		return -1;
	*v = x;
	return 0;
}

int cli_parse_pid(const char *s, pid_t *pid)
{
	long v;
	if (cli_parse_int(s, 1, INT_MAX, &v))
		return -1;
	*pid = (pid_t)v;
	return 0;
}

int cli_parse_size(const char *s, size_t *bytes)
{
	char *end;
	errno = 0;
	unsigned long long x = strtoull(s, &end, 10);
	if (end == s || errno || *s == '-')
		return -1;
	unsigned long long mul = 1;
	if (*end == 'k' || *end == 'K')
		mul = 1024, end++;
	else if (*end == 'm' || *end == 'M')
		mul = 1024 * 1024, end++;
	if (*end == 'i' || *end == 'B')
		end += (*end == 'i' && end[1] == 'B') ? 2 : 1;
	if (*end || x == 0 || x > (1ULL << 40) / mul)
		return -1;
	*bytes = (size_t)(x * mul);
	return 0;
}

volatile sig_atomic_t cli_stop_from_terminal;

static void on_stop_signal(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	cli_stop = sig;         /* which one: `run` passes it to its command */
	/* The terminal's Ctrl-C reaches the whole foreground group (the
	 * kernel sends it); kill(1) reaches pprofc alone. */
	cli_stop_from_terminal = si && si->si_code == SI_KERNEL;
}

void cli_catch_stop_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_stop_signal;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	/* No SA_RESTART: a wait in progress should return and look at the flag. */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

/* A buffer of CLI_OUTPUT_BUFFER bytes instead of stdio's 4 KiB (glibc
 * ignores setvbuf's size unless given the buffer).  Without memory the
 * default one stays. */
static void big_buffer(struct cli_output *o)
{
	if ((o->buf = malloc(CLI_OUTPUT_BUFFER)) && setvbuf(o->f, o->buf, _IOFBF, CLI_OUTPUT_BUFFER)) {
		free(o->buf);
		o->buf = NULL;
	}
}

/* A device or a FIFO (-o /dev/null, /dev/stdout, a named pipe) is
 * written in place: renaming a temporary file over it would replace the
 * device node itself with a regular file (as root, /dev/null). */
static int open_in_place(struct cli_output *o)
{
	int fd = open(o->path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0 || !(o->f = fdopen(fd, "w"))) {
		cli_error("cannot open %s: %s", o->path, strerror(errno));
		if (fd >= 0)
			close(fd);
		cli_output_abort(o);
		return -1;
	}
	big_buffer(o);
	return 0;
}

int cli_output_open(struct cli_output *o, const char *path)
{
	memset(o, 0, sizeof *o);
	if (!path || strcmp(path, "-") == 0) {
		o->f = stdout;
		return 0;
	}
	o->path = strdup(path);
	struct stat st;
	if (o->path && stat(path, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
		return open_in_place(o);
	if (!o->path || asprintf(&o->tmp, "%s.tmp.XXXXXX", path) < 0) {
		o->tmp = NULL;
		cli_output_abort(o);
		cli_error("out of memory");
		return -1;
	}
	/* mkstemp creates a new file (O_EXCL): it never follows a planted
	 * symlink, and rename() replaces the final name itself, not its target. */
	int fd = mkstemp(o->tmp);
	if (fd < 0 || !(o->f = fdopen(fd, "w"))) {
		cli_error("cannot create %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		free(o->tmp);
		o->tmp = NULL;
		cli_output_abort(o);
		return -1;
	}
	big_buffer(o);
	return 0;
}

int cli_output_commit(struct cli_output *o)
{
	if (o->f == stdout) {
		if (fflush(stdout) != 0) {
			cli_error("cannot write the output: %s", strerror(errno));
			return -1;
		}
		return 0;
	}
	int bad = ferror(o->f);
	int e = errno;
	/* A device or FIFO written in place (no tmp) has nothing to sync. */
	if (fflush(o->f) != 0 || (o->tmp && fsync(fileno(o->f)) != 0))
		bad = 1, e = errno;
	if (fclose(o->f) != 0)
		bad = 1, e = errno;
	o->f = NULL;
	if (bad || (o->tmp && rename(o->tmp, o->path) != 0)) {
		if (!bad)
			e = errno;
		cli_error("cannot write %s: %s", o->path, strerror(e));
		cli_output_abort(o);
		return -1;
	}
	free(o->tmp);
	free(o->path);
	free(o->buf);
	o->tmp = o->path = o->buf = NULL;
	return 0;
}

int cli_output_commit_numbered(struct cli_output *o, const char *dir, const char *prefix,
			       const char *suffix, char *saved, size_t saved_len)
{
	int bad = ferror(o->f) || fflush(o->f) != 0 || fsync(fileno(o->f)) != 0;
	int e = errno;
	bad |= fclose(o->f) != 0;
	o->f = NULL;
	for (int n = 1; !bad && n < 1000; n++) {
		snprintf(saved, saved_len, "%s/%s%03d%s", dir, prefix, n, suffix);
		/* link() fails if the name exists (even as a symlink): the first
		 * free number wins, and nothing is ever overwritten. */
		if (link(o->tmp, saved) == 0) {
			cli_output_abort(o);    /* removes the temporary name */
			return 0;
		}
		if (errno != EEXIST) {
			e = errno;
			break;
		}
	}
	cli_error("cannot save the profile in %s: %s", dir, strerror(bad ? e : errno ? errno : EEXIST));
	cli_output_abort(o);
	return -1;
}

void cli_profile_dir(char *dir, size_t len)
{
	const char *env = getenv("PPROF_TMPDIR"), *home = getenv("HOME");
	if (env && *env) {
		snprintf(dir, len, "%s", env);
		mkdir(dir, 0755);       /* as go tool pprof does; errors show at open */
		return;
	}
	if (home && *home) {
		snprintf(dir, len, "%s/pprof", home);
		if (mkdir(dir, 0755) == 0 || errno == EEXIST)
			return;
	}
	env = getenv("TMPDIR");
	snprintf(dir, len, "%s", env && *env ? env : "/tmp");
}

void cli_output_failed(struct cli_output *o, const char *what)
{
	int e = errno;
	cli_error("cannot write %s: %s", o->path ? o->path : what, e ? strerror(e) : "write error");
	cli_output_abort(o);
}

void cli_output_abort(struct cli_output *o)
{
	if (o->f && o->f != stdout)
		fclose(o->f);
	if (o->tmp)
		unlink(o->tmp);
	free(o->tmp);
	free(o->path);
	free(o->buf);   /* after fclose, which writes from it */
	memset(o, 0, sizeof *o);
}
