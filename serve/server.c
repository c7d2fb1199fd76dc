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
#include <stdlib.h>
#include <string.h>
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
/* How often serve_wait looks at the stop flag and at the target. */
#define WAIT_POLL_NS 100000000u

void serve_default_opts(struct serve_opts *o)
{
	*o = (struct serve_opts){ .listen = "127.0.0.1:6060", .max_connections = 16, .max_profiles = 4,
				  .max_seconds = 600, .idle_timeout = 60, .hz = 100, .offcpu_hz = 10,
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
	pthread_mutex_init(&s->mu, NULL);
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

static void name_started(struct serve_server *s, const char *name)
{
	size_t len = strlen(s->acc_names);
	snprintf(s->acc_names + len, sizeof s->acc_names - len, "%s%s", len ? ", " : "", name);
}

/* block and mutex: never stopping the target (the perf engine gives
 * running threads their stacks; blocked ones are read without a stop).
 * Where perf_event is refused they would stop running threads at every
 * tick, between requests: then they do not run, and say why. */
static void start_offcpu(struct serve_server *s)
{
	static const struct { int slot; enum collect_kind kind; const char *name; } kinds[] = {
		{ ACC_BLOCK, COLLECT_BLOCK, "block" }, { ACC_MUTEX, COLLECT_MUTEX, "mutex" },
	};
	if (s->o.offcpu_hz <= 0) {
		snprintf(s->acc_missing, sizeof s->acc_missing, "block and mutex: not collected (--offcpu-hz 0)");
		return;
	}
	for (size_t i = 0; i < 2; i++) {
		struct collect_opts o = { .kind = kinds[i].kind, .engine = COLLECT_ENGINE_PERF,
					  .hz = s->o.offcpu_hz }, co;
		struct collect_error err;
		struct serve_accum *a = &s->acc[kinds[i].slot];
		accum_init(a, &o, &co);
		struct collect_session *cs = collect_open(s->pid, &co, &err);
		if (!cs || accum_start(a, cs, &err)) {
			collect_close(cs);
			if (!s->acc_missing[0])
				snprintf(s->acc_missing, sizeof s->acc_missing, "%s: %s", kinds[i].name, err.msg);
			accum_free(a);
			continue;
		}
		s->acc_on[kinds[i].slot] = 1;
		name_started(s, kinds[i].name);
	}
}

/* Adds "name: why" to what is not collected. */
static void missing(struct serve_server *s, const char *name, const char *why)
{
	size_t len = strlen(s->acc_missing);
	snprintf(s->acc_missing + len, sizeof s->acc_missing - len, "%s%s: %s", len ? "; " : "", name, why);
}

/* threadcreate, cumulative as Go's: the threads alive now (a thread
 * blocked in a system call is read without a stop; a running one is
 * stopped once, for a fraction of a millisecond, as a dump does), then
 * each created since, from the perf engine's inherited clone tracepoints:
 * nothing is stopped while serving, and an idle target makes no event.
 * Never the ptrace watch: it would keep every thread traced between
 * requests. */
static void start_threadcreate(struct serve_server *s)
{
	struct collect_opts o = { .kind = COLLECT_THREADCREATE, .engine = COLLECT_ENGINE_PERF }, co;
	struct collect_error err;
	struct serve_accum *a = &s->acc[ACC_THREADCREATE];
	accum_init(a, &o, &co);
	struct collect_session *cs = collect_open(s->pid, &co, &err);
	if (!cs || accum_start(a, cs, &err)) {
		collect_close(cs);
		missing(s, "threadcreate", err.msg);
		accum_free(a);
		return;
	}
	s->acc_on[ACC_THREADCREATE] = 1;
	name_started(s, "threadcreate");
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
	start_offcpu(s);
	start_threadcreate(s);
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
	name_started(s, "heap, allocs");
	start_offcpu(s);
	start_threadcreate(s);
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

/* 410 once the target is gone, 503 while stopping; else counts r in. */
static int admit(struct serve_req *r)
{
	struct serve_server *s = r->srv;
	pthread_mutex_lock(&s->mu);
	int gone = s->gone, stopping = s->stopping;
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
	s->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s,
				  MHD_OPTION_LISTEN_SOCKET, s->listen_fd,
				  MHD_OPTION_CONNECTION_LIMIT, s->o.max_connections,
				  MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONNECTION_MEMORY,
				  MHD_OPTION_CONNECTION_TIMEOUT, s->o.idle_timeout,
				  MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
				  MHD_OPTION_END);
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

enum serve_end serve_wait(struct serve_server *s, volatile sig_atomic_t *stop)
{
	enum serve_end why = SERVE_END_STOPPED;
	while (!*stop) {
		if (target_exited(s)) {
			why = SERVE_END_TARGET_EXITED;
			break;
		}
		struct timespec ts = { 0, WAIT_POLL_NS };
		nanosleep(&ts, NULL);   /* a signal cuts it short: fine */
	}
	pthread_mutex_lock(&s->mu);
	if (why == SERVE_END_TARGET_EXITED)
		s->gone = 1;
	else
		s->stopping = 1;        /* in-flight collections see it and end */
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
	pthread_mutex_destroy(&s->mu);
	pthread_mutex_destroy(&s->sym_mu);
	pthread_mutex_destroy(&s->dump_mu);
	pthread_cond_destroy(&s->idle);
	free(s);
}
