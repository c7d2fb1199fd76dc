/* server.c — the server object: its target and cumulative collections,
 * the libmicrohttpd daemon, each request's way to its handler, and the
 * end (a signal, or the target exiting).
 *
 * Reads top to bottom as a server lives:
 *   1. serve_open: credentials read, the address bound (listen.c, auth.c);
 *   2. serve_target_*: the target, and the cumulative block and mutex
 *      collections (and heap for a command serve starts: accum.c);
 *   3. serve_start: the daemon, one thread per connection, so that a
 *      handler may take the seconds a profile asks for;
 *   4. each request: body gathered (symbol's POST), credentials, then
 *      410 / 503 / 404 or the endpoint (endpoints.c, index.c);
 *   5. serve_wait, then serve_close: no new requests, collections in
 *      flight cancelled (their clients get what was collected), threads
 *      joined, the target let go of.
 */
#include <assert.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "../attach/proc.h"
#include "../attach/snapshot.h"
#include "internal.h"

/* The most bytes of a POST body (symbol's addresses) accepted. */
#define MAX_BODY (64u << 10)
/* Memory per connection, which bounds the request line and headers
 * (libmicrohttpd answers 414 or 431 beyond). */
#define CONNECTION_MEMORY (32u << 10)
/* How long answers already made may take to reach their clients at the
 * end. */
#define SEND_GRACE_S 10
/* serve_wait: how often it looks at the target without a pidfd; at
 * most how long it sleeps with one; how often it looks while the target's
 * end is being read (its pidfd said it exited). */
#define WAIT_POLL_MS 100
#define GUARD_MS 1000
#define EXIT_POLL_MS 10

void serve_default_opts(struct serve_opts *o)
{
	*o = (struct serve_opts){ .listen = "127.0.0.1:6060", .max_connections = 16, .max_profiles = 4,
				  .max_seconds = 600, .idle_timeout = 60, .hz = 100, .offcpu_hz = 10,
				  .offcpu_keep = 600,
				  .heap_rate = 512 * 1024, .max_hit_rate = 100000 };
}

struct serve_server *serve_open(const struct serve_opts *o, struct serve_error *err)
{
	struct serve_server *s = calloc(1, sizeof *s);
	memset(err, 0, sizeof *err);
	if (!s) {
		snprintf(err->msg, sizeof err->msg, "out of memory");
		return NULL;
	}
	s->o = *o;
	s->listen_fd = -1;
	s->exit_status = -1;
	s->pidfd = -1;
	pthread_mutex_init(&s->mu, NULL);
	pthread_mutex_init(&s->acc_mu, NULL);
	pthread_mutex_init(&s->sym_mu, NULL);
	pthread_mutex_init(&s->dump_mu, NULL);
	pthread_cond_init(&s->idle, NULL);
	if (serve_auth_load(s, err) || serve_listen(s, err)) {
		serve_close(s);
		return NULL;
	}
	return s;
}

int serve_is_private(const struct serve_server *s)
{
	return s->private_addr;
}

const char *serve_url(const struct serve_server *s)
{
	return s->url;
}

pid_t serve_target(const struct serve_server *s)
{
	return s->pid;
}

const char *serve_cumulative(const struct serve_server *s)
{
	return s->acc_names;
}

const char *serve_cumulative_missing(const struct serve_server *s)
{
	return s->acc_missing;
}

/* ---- the target and its cumulative collections -------------------------- */

/* --linger: the symbolizer for symbol requests opened now, while the
 * target's files can be, so that it still answers after the exit. */
static void open_symbolizer(struct serve_server *s)
{
	char why[256];
	if (!s->o.linger)
		return;
	pthread_mutex_lock(&s->sym_mu);
	if (!s->sym && (s->sym = sym_open(attach_mm_pid(s->pid), why, sizeof why)))
		sym_prepare(s->sym);
	pthread_mutex_unlock(&s->sym_mu);
}

/* What serve_cumulative says. */
static void describe_cumulative(struct serve_server *s)
{
	snprintf(s->acc_names, sizeof s->acc_names, "%s; %s from the first request for each",
		 s->acc_on[ACC_HEAP] ? "heap, allocs from now" : "",
		 s->o.offcpu_hz > 0 ? "block, mutex, threadcreate" : "threadcreate");
	if (!s->acc_on[ACC_HEAP])
		memmove(s->acc_names, s->acc_names + 2, strlen(s->acc_names + 2) + 1);
}

/* What the index says is not collected: "name: why" of each collection
 * whose last start failed, each text once (block and mutex share one). */
static void say_missing(struct serve_server *s)
{
	s->acc_missing[0] = 0;
	for (int i = 0; i < ACC_N; i++) {
		char entry[sizeof s->acc_missing];
		if (!s->acc_why[i][0])
			continue;
		snprintf(entry, sizeof entry, "%s: %s", s->acc_why_name[i], s->acc_why[i]);
		if (strstr(s->acc_missing, entry))
			continue;
		size_t len = strlen(s->acc_missing);
		snprintf(s->acc_missing + len, sizeof s->acc_missing - len, "%s%s", len ? "; " : "", entry);
	}
}

/* Keeps why slot's collection could not start (its 501, and the index's
 * note): every request for it tries again; a start that then succeeds
 * clears it (started()). */
static void missing(struct serve_server *s, int slot, const char *name, const char *why)
{
	/* Cut to fit (an error message is at most a line). */
	snprintf(s->acc_why[slot], sizeof s->acc_why[slot], "%.*s", (int)sizeof s->acc_why[slot] - 1, why);
	snprintf(s->acc_why_name[slot], sizeof s->acc_why_name[slot], "%.*s",
		 (int)sizeof s->acc_why_name[slot] - 1, name);
	say_missing(s);
}

/* slot's collection runs: whatever kept it from starting before is over
 * (another tracer detached, say). */
static void started(struct serve_server *s, int slot)
{
	s->acc_on[slot] = 1;
	s->acc_why[slot][0] = 0;
	say_missing(s);
}

/* block and mutex: never stopping the target (the perf engine gives
 * running threads their stacks; blocked ones are read without a stop).
 * Where perf_event is refused they would stop running threads at every
 * tick, between requests: then they do not run, and say why.  They start
 * at the first request for them and end after offcpu_keep seconds
 * without one: ticking every thread of a big process costs a few percent
 * of a core, which nobody should pay for profiles nobody reads.
 * s->acc_mu is held. */
static int start_offcpu(struct serve_server *s, int slot)
{
	enum collect_kind kind = slot == ACC_BLOCK ? COLLECT_BLOCK : COLLECT_MUTEX;
	const char *name = slot == ACC_BLOCK ? "block" : "mutex";
	struct collect_opts o = { .kind = kind, .engine = COLLECT_ENGINE_PERF, .hz = s->o.offcpu_hz }, co;
	struct collect_error err;
	struct serve_accum *a = &s->acc[slot];
	if (s->o.offcpu_hz <= 0) {
		missing(s, slot, "block and mutex not collected", "--offcpu-hz 0");
		return -1;
	}
	accum_init(a, &o, &co);
	a->keep_ns = (uint64_t)s->o.offcpu_keep * 1000000000u;
	struct collect_session *cs = collect_open(s->pid, &co, &err);
	if (!cs || accum_start(a, cs, &err)) {
		collect_close(cs);
		missing(s, slot, name, err.msg);
		accum_free(a);
		return -1;
	}
	started(s, slot);
	return 0;
}

/* threadcreate, cumulative as Go's from its first request on (as block
 * and mutex: a collection nobody reads would poll for nothing, and ends
 * after --offcpu-keep unasked): the threads alive then (a thread
 * blocked in a system call is read without a stop; a running one is
 * stopped once, for a fraction of a millisecond, as a dump does), then
 * each created since, from the perf engine's inherited clone tracepoints:
 * nothing is stopped while serving, and an idle target makes no event.
 * Never the ptrace watch: it would keep every thread traced between
 * requests. */
static int start_threadcreate(struct serve_server *s)
{
	struct collect_opts o = { .kind = COLLECT_THREADCREATE, .engine = COLLECT_ENGINE_PERF }, co;
	struct collect_error err;
	struct serve_accum *a = &s->acc[ACC_THREADCREATE];
	accum_init(a, &o, &co);
	a->keep_ns = (uint64_t)s->o.offcpu_keep * 1000000000u;
	/* Reading the threads alive seizes the running ones, as a goroutine
	 * dump does: at the same time, each found the other's seized
	 * threads traced (by this process) and refused: a 500 or a 501 in
	 * 2 of 4 runs of test_serve's parallel requests, in 5 of 20 fresh
	 * servers asked for threadcreate and two dumps at once. */
	pthread_mutex_lock(&s->dump_mu);
	struct collect_session *cs = collect_open(s->pid, &co, &err);
	pthread_mutex_unlock(&s->dump_mu);
	if (!cs || accum_start(a, cs, &err)) {
		collect_close(cs);
		missing(s, ACC_THREADCREATE, "threadcreate", err.msg);
		accum_free(a);
		return -1;
	}
	started(s, ACC_THREADCREATE);
	return 0;
}

struct serve_accum *serve_accum_use(struct serve_server *s, int slot, int start)
{
	struct serve_accum *a = NULL;
	pthread_mutex_lock(&s->acc_mu);
	pthread_mutex_lock(&s->mu);
	int gone = s->gone;
	pthread_mutex_unlock(&s->mu);
	/* Once the target is gone, what each had is all there is (--linger). */
	int on_demand = slot == ACC_BLOCK || slot == ACC_MUTEX || slot == ACC_THREADCREATE;
	if (s->acc_on[slot] && on_demand && !gone && accum_idled(&s->acc[slot])) {
		/* Ended unused: a fresh one, from now. */
		accum_free(&s->acc[slot]);
		s->acc_on[slot] = 0;
	}
	if (!s->acc_on[slot] && start && on_demand && !gone) {
		if (slot == ACC_THREADCREATE)
			start_threadcreate(s);
		else
			start_offcpu(s, slot);
	}
	if (s->acc_on[slot]) {
		a = &s->acc[slot];
		accum_hold(a);
	}
	pthread_mutex_unlock(&s->acc_mu);
	return a;
}

void serve_accum_why(struct serve_server *s, int slot, char *buf, size_t size)
{
	pthread_mutex_lock(&s->acc_mu);
	snprintf(buf, size, "%s", s->acc_why[slot][0] ? s->acc_why[slot] : "not started");
	pthread_mutex_unlock(&s->acc_mu);
}

void serve_accum_done(struct serve_accum *a)
{
	if (a)
		accum_release(a);
}

int serve_target_pid(struct serve_server *s, pid_t pid, struct serve_error *err)
{
	struct attach_error ae;
	pid_t tgid;
	memset(err, 0, sizeof *err);
	if (attach_check_target(pid, &tgid, &ae)) {
		snprintf(err->msg, sizeof err->msg, "%s", ae.msg);
		return -1;
	}
	s->pid = tgid;
	s->start_ns = serve_now_ns();
	describe_cumulative(s);
	open_symbolizer(s);
	return 0;
}

int serve_target_command(struct serve_server *s, char **argv, struct serve_error *err, int *status)
{
	struct collect_opts o = { .kind = COLLECT_HEAP, .heap_rate = s->o.heap_rate }, co;
	struct collect_error ce;
	struct serve_accum *a = &s->acc[ACC_HEAP];
	memset(err, 0, sizeof *err);
	accum_init(a, &o, &co);
	struct collect_session *cs = collect_spawn(argv, &co, &ce, status);
	if (!cs || accum_start(a, cs, &ce)) {
		snprintf(err->msg, sizeof err->msg, "%s", ce.msg);
		if (cs) {
			collect_signal_child(cs, SIGKILL);
			collect_wait_child(cs, NULL);
			collect_close(cs);
		}
		accum_free(a);
		return -1;
	}
	s->acc_on[ACC_HEAP] = 1;
	s->command = 1;
	s->pid = collect_pid(cs);
	s->start_ns = serve_now_ns();
	describe_cumulative(s);
	open_symbolizer(s);
	return 0;
}

/* ---- requests ---------------------------------------------------------- */

static void request_log(struct serve_req *r)
{
	if (r->srv->o.on_request)
		r->srv->o.on_request(r->srv->o.arg, r->method, r->url, r->status, r->bytes,
				     (double)(serve_now_ns() - r->start_ns) / 1e9);
}

/* Keeps the POST body (bounded); 0 once it is complete. */
static int gather_body(struct serve_req *r, const char *data, size_t *size)
{
	if (!*size)
		return 0;
	if (r->body_len + *size > MAX_BODY) {
		r->body_too_big = 1;
	} else {
		char *b = realloc(r->body, r->body_len + *size + 1);
		if (b) {
			memcpy(b + r->body_len, data, *size);
			r->body = b;
			r->body_len += *size;
			b[r->body_len] = 0;
		} else {
			r->body_too_big = 1;
		}
	}
	*size = 0;
	return 1;
}

/* 410 once the target is gone (unless lingering: then the endpoints
 * say what is left), 503 while stopping; else counts r in. */
static int admit(struct serve_req *r)
{
	struct serve_server *s = r->srv;
	pthread_mutex_lock(&s->mu);
	int gone = s->gone && !s->o.linger, stopping = s->stopping;
	if (!gone && !stopping) {
		s->active++;
		s->unsent++;
		r->admitted = 1;
	}
	pthread_mutex_unlock(&s->mu);
	if (gone)
		reply_error(r, MHD_HTTP_GONE, "process %d exited: nothing more to profile", (int)s->pid);
	else if (stopping)
		reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "pprofc is stopping");
	return gone || stopping ? -1 : 0;
}

static void leave(struct serve_req *r)
{
	struct serve_server *s = r->srv;
	pthread_mutex_lock(&s->mu);
	assert(s->active > 0);
	if (--s->active == 0)
		pthread_cond_broadcast(&s->idle);
	pthread_mutex_unlock(&s->mu);
}

static enum MHD_Result answer(struct serve_req *r)
{
	static const char prefix[] = "/debug/pprof/";
	if (r->body_too_big)
		return reply_error(r, MHD_HTTP_CONTENT_TOO_LARGE, "request body larger than %u bytes", MAX_BODY);
	if (strcmp(r->method, "GET") && strcmp(r->method, "HEAD") && strcmp(r->method, "POST"))
		return reply_error(r, MHD_HTTP_METHOD_NOT_ALLOWED, "method %s not allowed: use GET or POST",
				   r->method);
	if (!serve_auth_ok(r->srv, r->conn)) {
		enum MHD_Result ret = reply_error(r, MHD_HTTP_UNAUTHORIZED, "authorization required");
		return ret;
	}
	if (strcmp(r->url, "/debug/pprof") == 0)
		return reply_redirect(r, prefix);
	if (strncmp(r->url, prefix, sizeof prefix - 1) != 0)
		return reply_error(r, MHD_HTTP_NOT_FOUND, "404 page not found");
	if (admit(r))
		return MHD_YES;
	const char *name = r->url + sizeof prefix - 1;
	enum MHD_Result ret = *name ? serve_endpoint(r, name) : serve_index(r);
	leave(r);
	return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *data,
				  size_t *size, void **req_cls)
{
	(void)version;
	struct serve_req *r = *req_cls;
	if (!r) {
		/* Headers only, so far: keep a request for the body to come. */
		if (!(r = calloc(1, sizeof *r)))
			return MHD_NO;
		*r = (struct serve_req){ .srv = cls, .conn = conn, .method = method, .url = url,
					 .start_ns = serve_now_ns() };
		*req_cls = r;
		return MHD_YES;
	}
	if (gather_body(r, data, size))
		return MHD_YES;
	return answer(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
			 enum MHD_RequestTerminationCode code)
{
	(void)cls;
	(void)conn;
	(void)code;
	struct serve_req *r = *req_cls;
	if (!r)
		return;
	if (r->status)
		request_log(r);
	if (r->admitted) {
		/* Sent (or given up on): serve_close may close it now. */
		pthread_mutex_lock(&r->srv->mu);
		assert(r->srv->unsent > 0);
		if (--r->srv->unsent == 0)
			pthread_cond_broadcast(&r->srv->idle);
		pthread_mutex_unlock(&r->srv->mu);
	}
	free(r->body);
	free(r);
	*req_cls = NULL;
}

int serve_start(struct serve_server *s, struct serve_error *err)
{
	assert(s->pid && !s->mhd);
	/* poll(), not select(): the target's threads take descriptors
	 * (perf events, /proc files), so ours may be past FD_SETSIZE. */
	unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
			 MHD_USE_ITC;
	/* The daemon's threads (and those they start: connections, and the
	 * collections requests start) take no signal: SIGTERM and the like
	 * go to serve_wait's thread, which sleeps until one comes. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	s->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s,
				  MHD_OPTION_LISTEN_SOCKET, s->listen_fd,
				  MHD_OPTION_CONNECTION_LIMIT, s->o.max_connections,
				  MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONNECTION_MEMORY,
				  MHD_OPTION_CONNECTION_TIMEOUT, s->o.idle_timeout,
				  MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
				  MHD_OPTION_END);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!s->mhd) {
		snprintf(err->msg, sizeof err->msg, "cannot start the HTTP server (libmicrohttpd) on %.400s",
			 s->url);
		return -1;
	}
	return 0;
}

/* ---- the end ------------------------------------------------------------ */

/* Whether the target has exited: its cumulative collections say so
 * (run's heap session reaps the command), else /proc does. */
static int target_exited(struct serve_server *s)
{
	if (s->acc_on[ACC_HEAP])
		return accum_ended(&s->acc[ACC_HEAP]);
	int status = -1;
	uint64_t cpu;
	if (attach_process_ended(s->pid, &status, &cpu)) {
		s->exit_status = status;
		return 1;
	}
	return 0;
}

/* Sleeps until a stop signal, the target's pidfd says it exited, or
 * timeout_ms; the signals are taken only inside ppoll (unblocked), so
 * one that came after *stop was looked at cuts it short. */
static int sleep_for(struct serve_server *s, int watch, int timeout_ms, const sigset_t *unblocked)
{
	struct pollfd pfd = { s->pidfd, POLLIN, 0 };
	struct timespec ts = { timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000 };
	return ppoll(watch ? &pfd : NULL, watch ? 1 : 0, &ts, unblocked) > 0 && pfd.revents;
}

/* Until *stop, or (unless the target is gone already) the target exits.
 * With a pidfd the server sleeps until either happens (waking once a
 * GUARD_MS, in case a signal went to another thread); without one (Linux
 * before 5.3) it looks every WAIT_POLL_MS. */
static enum serve_end wait_for_end(struct serve_server *s, volatile sig_atomic_t *stop)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP };
	sigset_t block, old;
	sigemptyset(&block);
	for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++)
		sigaddset(&block, sigs[i]);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	enum serve_end why = SERVE_END_STOPPED;
	int first = 1, seen = 0;        /* seen: the pidfd said it exited */
	while (!*stop) {
		if (!s->gone && (first || seen || s->pidfd < 0) && target_exited(s)) {
			why = SERVE_END_TARGET_EXITED;
			break;
		}
		first = 0;
		/* Once seen, its end is being read (run's heap session): soon. */
		int watch = !s->gone && s->pidfd >= 0 && !seen;
		int ms = s->gone ? GUARD_MS : s->pidfd < 0 ? WAIT_POLL_MS : seen ? EXIT_POLL_MS : GUARD_MS;
		if (sleep_for(s, watch, ms, &old))
			seen = 1;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return why;
}

enum serve_end serve_wait(struct serve_server *s, volatile sig_atomic_t *stop)
{
	if (s->pidfd < 0 && !s->gone)
		s->pidfd = (int)syscall(SYS_pidfd_open, s->pid, 0);
	enum serve_end why = wait_for_end(s, stop);
	pthread_mutex_lock(&s->mu);
	if (why == SERVE_END_TARGET_EXITED) {
		s->gone = 1;
		if (s->o.linger) {
			/* Serving on: the cumulative profiles as they ended. */
			pthread_mutex_unlock(&s->mu);
			return why;
		}
	} else {
		s->stopping = 1;        /* in-flight collections see it and end */
	}
	while (s->active)
		pthread_cond_wait(&s->idle, &s->mu);
	/* Answers queued are sent before the daemon closes their
	 * connections; a client that does not read gets SEND_GRACE_S. */
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += SEND_GRACE_S;
	while (s->unsent && pthread_cond_timedwait(&s->idle, &s->mu, &until) == 0)
		;
	pthread_mutex_unlock(&s->mu);
	return why;
}

int serve_exit_status(const struct serve_server *s)
{
	if (s->acc_on[ACC_HEAP])
		return collect_summary(s->acc[ACC_HEAP].cs)->exit_status;
	return s->exit_status;
}

void serve_signal_command(struct serve_server *s, int sig)
{
	if (s->acc_on[ACC_HEAP])
		collect_signal_child(s->acc[ACC_HEAP].cs, sig);
}

int serve_wait_command(struct serve_server *s, volatile sig_atomic_t *pass)
{
	if (!s->acc_on[ACC_HEAP])
		return -1;
	/* Its collection's thread must be done with the session first. */
	accum_stop(&s->acc[ACC_HEAP]);
	return collect_wait_child(s->acc[ACC_HEAP].cs, pass);
}

void serve_close(struct serve_server *s)
{
	if (!s)
		return;
	if (s->mhd) {
		/* No new connections; those open are closed and their threads
		 * joined (every handler has returned: serve_wait saw to it). */
		int fd = MHD_quiesce_daemon(s->mhd);
		if (fd < 0)
			s->listen_fd = -1;      /* still the daemon's: it closes it */
		MHD_stop_daemon(s->mhd);
		s->mhd = NULL;
	}
	for (int i = 0; i < ACC_N; i++)
		if (s->acc_on[i])
			accum_free(&s->acc[i]);
	serve_unlisten(s);
	serve_auth_free(s);
	sym_close(s->sym);
	if (s->pidfd >= 0)
		close(s->pidfd);
	pthread_mutex_destroy(&s->mu);
	pthread_mutex_destroy(&s->acc_mu);
	pthread_mutex_destroy(&s->sym_mu);
	pthread_mutex_destroy(&s->dump_mu);
	pthread_cond_destroy(&s->idle);
	free(s);
}
