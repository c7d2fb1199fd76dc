/* serve.h — Go's /debug/pprof/ HTTP endpoint for one target process:
 * `pprofc serve PID` and `pprofc run --serve ADDR -- COMMAND`.
 *
 * The server answers each request by running the same collections as the
 * CLI (collect/): a CPU profile for profile?seconds=N, a thread dump for
 * goroutine, a uprobe window for heap?seconds=N.  block and mutex (and,
 * for a command it starts, heap and allocs) are cumulative, as Go's are:
 * collections that run on their own threads and never stop the target,
 * read by snapshot; heap and allocs from the start, block and mutex from
 * the first request for each until offcpu_keep seconds pass without one
 * (so that a server nobody asks costs nothing).  HTTP is
 * libmicrohttpd's, one thread per connection.  Semantics, headers and
 * error bodies are net/http/pprof's (docs/FORMATS.md §8).
 *
 *     s = serve_open(&opts, &err)            credentials read, address bound
 *     serve_target_pid(s, pid) or serve_target_command(s, argv, ...)
 *     serve_start(s)                         accepting requests
 *     serve_wait(s, &stop)                   until *stop or the target exits
 *     serve_close(s)                         in-flight requests finish first
 *
 * Everything lives in the server object; nothing here prints.
 */
#ifndef PPROFC_SERVE_SERVE_H
#define PPROFC_SERVE_SERVE_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../collect/collect.h"

struct serve_opts {
	const char *listen;             /* host:port, [v6addr]:port or unix:/path */
	const char *basic_auth_file;    /* one line "user:password", or NULL */
	const char *token_file;         /* one line, a bearer token, or NULL */
	unsigned max_connections;       /* open connections at once */
	unsigned max_profiles;          /* collections of the target at once */
	unsigned max_seconds;           /* longest seconds=N accepted */
	unsigned idle_timeout;          /* seconds a connection may sit idle */
	enum collect_engine engine;     /* CPU profiles */
	int hz;                         /* CPU profiles */
	int offcpu_hz;                  /* the cumulative block and mutex ticks */
	unsigned offcpu_keep;           /* seconds block and mutex run on unasked */
	int linger;                     /* the target exited: serve on (serve_wait) */
	size_t heap_rate;               /* heap windows; run's sampler */
	size_t max_hit_rate;            /* heap windows (uprobes) */
	/* Called on a connection's thread after each request, for -v. */
	void (*on_request)(void *arg, const char *method, const char *url, unsigned status,
			   size_t bytes, double seconds);
	void *arg;
};

/* Defaults: 16 connections, 4 profiles, 600 s, idle 60 s, 100 Hz,
 * off-CPU 10 Hz kept 600 s unasked, heap rate 512 KiB, 100000 probe
 * hits/s, no linger. */
void serve_default_opts(struct serve_opts *o);

struct serve_error {
	int usage;                      /* the options were wrong (exit 2) */
	char msg[600];
};

struct serve_server;

/* Reads the credentials and binds the address (nothing accepted yet).
 * NULL with err set. */
struct serve_server *serve_open(const struct serve_opts *o, struct serve_error *err);
/* Whether the address is loopback or a unix socket (else anyone who can
 * reach it can read the process's stacks and memory layout). */
int serve_is_private(const struct serve_server *s);
/* "http://127.0.0.1:6060/debug/pprof/" (the port bound, when 0 was asked)
 * or "unix:/path". */
const char *serve_url(const struct serve_server *s);

/* The target: a running process (checked with attach_check_target), or a
 * command started with the allocation sampler preloaded (run --serve;
 * *status as for collect_spawn).  Starts the cumulative collections.
 * -1 with err set. */
int serve_target_pid(struct serve_server *s, pid_t pid, struct serve_error *err);
int serve_target_command(struct serve_server *s, char **argv, struct serve_error *err, int *status);
pid_t serve_target(const struct serve_server *s);
/* Which profiles are cumulative, and from when ("heap, allocs from now;
 * block, mutex from the first request for each"), and why some cannot
 * run ("" when all can, as far as known yet). */
const char *serve_cumulative(const struct serve_server *s);
const char *serve_cumulative_missing(const struct serve_server *s);

int serve_start(struct serve_server *s, struct serve_error *err);

enum serve_end { SERVE_END_STOPPED, SERVE_END_TARGET_EXITED };
/* Serves until *stop is set (by a signal handler for SIGINT, SIGTERM or
 * SIGHUP: serve's own threads block those, so the caller's thread takes
 * them) or the target exits; then refuses new requests (410 once the
 * target is gone, 503 while stopping), cancels the collections in flight
 * (their requests get what was collected), and returns when none is left.
 * With o.linger the target's exit returns at once and the server serves
 * on: the cumulative profiles as they ended, 410 for the others; call
 * serve_wait again to wait for *stop.  Idle, it makes no system call but
 * one ppoll a second. */
enum serve_end serve_wait(struct serve_server *s, volatile sig_atomic_t *stop);
/* run --serve: the command's wait status once it exited (else -1); passes
 * a signal on to it; waits for it (after serve_wait). */
int serve_exit_status(const struct serve_server *s);
void serve_signal_command(struct serve_server *s, int sig);
int serve_wait_command(struct serve_server *s, volatile sig_atomic_t *pass);
/* Stops the HTTP daemon and every collection, removes a unix socket,
 * frees.  The target is let go of (it never was stopped in between). */
void serve_close(struct serve_server *s);

#endif
