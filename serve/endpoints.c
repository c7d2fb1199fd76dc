/* endpoints.c — what each /debug/pprof/NAME answers, with
 * net/http/pprof's semantics (docs/FORMATS.md §8), by running collect/'s
 * collections:
 *
 *   profile       a CPU profile of seconds=N (default 30), one at a time
 *   goroutine     a thread dump: debug=0 the goroutine/count profile (of a
 *                 Go program's goroutines, else of the threads), 1
 *                 grouped, 2 one block per goroutine and thread
 *                 (dump-threads' texts)
 *   block, mutex  cumulative since the start (accum.c); seconds=N: the
 *                 difference over N seconds (NAME-delta)
 *   heap, allocs  run --serve: cumulative (the preload sampler); serve
 *                 PID: the uprobe window of seconds=N, required
 *   cmdline       argv joined by NUL bytes
 *   symbol        GET: num_symbols; addresses (POST body or query) to names
 *   trace         the threads' timeline over seconds=N (float, default 1)
 *                 as trace-event JSON (not Go's runtime/trace format)
 *   threadcreate  cumulative since serve started (accum.c): the threads
 *                 alive then, and each created since
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "../attach/proc.h"
#include "internal.h"

/* ---- counting collections of the target ----------------------------------- */

int serve_collect_begin(struct serve_req *r)
{
	struct serve_server *s = r->srv;
	pthread_mutex_lock(&s->mu);
	int full = s->collecting >= s->o.max_profiles;
	if (!full)
		s->collecting++;
	pthread_mutex_unlock(&s->mu);
	if (full)
		reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "%u profiles of process %d are in progress, the "
			    "most pprofc serve runs at once (--max-profiles): try again when one ends",
			    s->o.max_profiles, (int)s->pid);
	return full ? -1 : 0;
}

void serve_collect_end(struct serve_req *r)
{
	pthread_mutex_lock(&r->srv->mu);
	r->srv->collecting--;
	pthread_mutex_unlock(&r->srv->mu);
}

/* An exclusive slot (a CPU profile, a uprobe window): 0, or -1 if taken. */
static int take_slot(struct serve_server *s, int *slot)
{
	pthread_mutex_lock(&s->mu);
	int busy = *slot;
	*slot = 1;
	pthread_mutex_unlock(&s->mu);
	return busy ? -1 : 0;
}

static void give_slot(struct serve_server *s, int *slot)
{
	pthread_mutex_lock(&s->mu);
	*slot = 0;
	pthread_mutex_unlock(&s->mu);
}

/* collect_opts.on_progress, about once a second: a client that left, or
 * the server stopping, ends the collection (the target is let go of as
 * at any end). */
static void on_progress(void *arg, double elapsed, uint64_t samples)
{
	(void)elapsed;
	(void)samples;
	req_cancelled(arg);
}

void serve_collect_opts(struct serve_req *r, enum collect_kind kind, double seconds,
			struct collect_opts *co)
{
	const struct serve_opts *o = &r->srv->o;
	*co = (struct collect_opts){ .kind = kind, .engine = o->engine, .hz = o->hz, .seconds = seconds,
				     .cancel = &r->cancel, .on_progress = on_progress, .arg = r,
				     .heap_rate = o->heap_rate, .max_hit_rate = o->max_hit_rate };
}

/* ---- arguments, as Go reads them --------------------------------------- */

/* strconv.ParseInt: the whole string, base 10. */
static int parse_int(const char *s, long long *v)
{
	char *end;
	errno = 0;
	if (!s || !*s)
		return -1;
	*v = strtoll(s, &end, 10);
	return *end || errno ? -1 : 0;
}

/* debug=N: strconv.Atoi, errors read as 0. */
static long long debug_arg(struct serve_req *r)
{
	long long d;
	return parse_int(req_arg(r, "debug"), &d) ? 0 : d;
}

/* ---- profile: CPU -------------------------------------------------------- */

/* Writes prof gzip'ed into a malloc'ed buffer; NULL if out of memory. */
static char *write_profile(struct pp_profile *prof, int64_t duration_ns, size_t *len)
{
	struct membuf m;
	if (!prof || membuf_open(&m))
		return NULL;
	int r = pp_profile_write(prof, duration_ns, m.f);
	if (membuf_close(&m) || r) {
		free(m.buf);
		return NULL;
	}
	*len = m.len;
	return m.buf;
}

/* Runs a collection of kind over seconds and answers with its profile;
 * what: Go's words for the 500 when it cannot start. */
static enum MHD_Result collect_and_reply(struct serve_req *r, enum collect_kind kind, double seconds,
					 const char *what, const char *filename)
{
	struct collect_opts co;
	struct collect_error err;
	serve_collect_opts(r, kind, seconds, &co);
	struct collect_session *cs = collect_open(r->srv->pid, &co, &err);
	if (!cs)
		return reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "%s: %s", what, err.msg);
	/* Long collections: the connection is not idle meanwhile. */
	MHD_set_connection_option(r->conn, MHD_CONNECTION_OPTION_TIMEOUT, 0u);
	collect_run(cs);
	MHD_set_connection_option(r->conn, MHD_CONNECTION_OPTION_TIMEOUT, r->srv->o.idle_timeout);
	size_t len = 0;
	char *buf = write_profile(collect_profile(cs), (int64_t)collect_summary(cs)->st.duration_ns, &len);
	collect_close(cs);
	if (!buf)
		return reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory writing the profile");
	return reply_profile(r, buf, len, filename);
}

static enum MHD_Result cpu_profile(struct serve_req *r)
{
	struct serve_server *s = r->srv;
	long long sec;
	if (parse_int(req_arg(r, "seconds"), &sec) || sec <= 0)
		sec = 30;
	if (sec > (long long)s->o.max_seconds)
		return reply_error(r, MHD_HTTP_BAD_REQUEST, "profile duration exceeds server's WriteTimeout");
	if (take_slot(s, &s->cpu_busy))
		return reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR,
				   "Could not enable CPU profiling: cpu profiling already in use");
	enum MHD_Result ret = MHD_YES;
	if (serve_collect_begin(r) == 0) {
		ret = collect_and_reply(r, COLLECT_CPU, (double)sec, "Could not enable CPU profiling", "profile");
		serve_collect_end(r);
	}
	give_slot(s, &s->cpu_busy);
	return ret;
}

/* ---- goroutine: a thread dump ----------------------------------------- */

/* debug=0: the goroutine/count profile (a Go program's goroutines, else
 * its threads); else dump-threads' text. */
static char *write_dump(struct collect_dump *d, long long debug, size_t *len, struct collect_error *err)
{
	struct membuf m;
	int r = -1;
	if (membuf_open(&m)) {
		snprintf(err->msg, sizeof err->msg, "out of memory");
		return NULL;
	}
	if (debug >= 2) {
		r = pp_write_debug2(m.f, collect_dump_view(d));
	} else if (debug == 1) {
		r = collect_dump_write_debug1(d, m.f);
	} else {
		struct collect_stacks c;
		r = collect_dump_profile(d, "goroutine", &c, err) ? -1 : pp_profile_write(c.prof, 0, m.f);
		collect_stacks_free(&c);
	}
	if (membuf_close(&m) || r) {
		if (!err->msg[0])
			snprintf(err->msg, sizeof err->msg, "out of memory writing the dump");
		free(m.buf);
		return NULL;
	}
	*len = m.len;
	return m.buf;
}

/* The same settings as dump-threads' defaults, so the texts match. */
static enum MHD_Result goroutine(struct serve_req *r, long long debug)
{
	struct collect_dump_opts o = { .stack_limit = 512 * 1024, .stop_timeout_ms = 500,
				       .goroutines = 1, .cancel = &r->cancel };
	struct collect_error err = { 0 };
	char *buf = NULL;
	size_t len = 0;
	if (serve_collect_begin(r))
		return MHD_YES;
	pthread_mutex_lock(&r->srv->dump_mu);
	struct collect_dump *d = collect_dump_take(r->srv->pid, &o, &err);
	if (d && collect_dump_resolve(d, &err) == 0)
		buf = write_dump(d, debug, &len, &err);
	if (d) {
		collect_dump_release(d, 500 * 1000000u);
		collect_dump_free(d);
	}
	pthread_mutex_unlock(&r->srv->dump_mu);
	serve_collect_end(r);
	if (!buf)
		return reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "thread dump failed: %s", err.msg);
	if (debug)
		return reply_text(r, buf, len, "text/plain; charset=utf-8");
	return reply_profile(r, buf, len, "goroutine");
}

/* ---- block, mutex, heap, allocs: cumulative and deltas ----------------- */

static int slot_of(const char *name)
{
	return strcmp(name, "block") == 0 ? ACC_BLOCK : strcmp(name, "mutex") == 0 ? ACC_MUTEX
	     : strcmp(name, "threadcreate") == 0 ? ACC_THREADCREATE : ACC_HEAP;
}

/* Whether the target exited (then, with --linger, only the cumulative
 * profiles as they ended are served). */
static int target_gone(struct serve_server *s)
{
	pthread_mutex_lock(&s->mu);
	int gone = s->gone;
	pthread_mutex_unlock(&s->mu);
	return gone;
}

static enum MHD_Result reply_gone(struct serve_req *r)
{
	return reply_error(r, MHD_HTTP_GONE, "process %d exited: nothing more to profile", (int)r->srv->pid);
}

static const char *default_type(const char *name)
{
	return strcmp(name, "allocs") == 0 ? "alloc_space" : NULL;
}

/* pp_legacy.func_start: by the server's symbolizer (symbol's), opened
 * at the first use while the target runs. */
static uint64_t func_start(void *arg, uint64_t address)
{
	struct serve_server *s = arg;
	char why[256];
	uint64_t start = 0;
	pthread_mutex_lock(&s->sym_mu);
	if (!s->sym && !target_gone(s))
		s->sym = sym_open(attach_mm_pid(s->pid), why, sizeof why);
	if (s->sym)
		start = sym_function_start(s->sym, address);
	pthread_mutex_unlock(&s->sym_mu);
	return start;
}

/* Where Go's heap text ends with runtime.MemStats, which only Go's
 * runtime has: the process's memory as the kernel counts it, the
 * /proc/PID/status Vm and Rss lines in bytes, as "# NAME = VALUE". */
static void put_memory(FILE *out, pid_t pid)
{
	char path[64], *buf = NULL, *save = NULL;
	size_t len = 0;
	/* A zombie main thread's status has no memory lines: a live
	 * thread's has the process's. */
	snprintf(path, sizeof path, "/proc/%d/status", (int)attach_mm_pid(pid));
	fprintf(out, "\n# %s (in place of Go's runtime.MemStats: the kernel's counts of the process's "
		"memory, in bytes)\n", path);
	if (attach_read_file(path, &buf, &len)) {
		fprintf(out, "# not readable: %s\n", errno == ENOENT ? "the process exited" : strerror(errno));
		return;
	}
	for (char *l = strtok_r(buf, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		char name[32];
		unsigned long long kb;
		if ((strncmp(l, "Vm", 2) == 0 || strncmp(l, "Rss", 3) == 0) &&
		    sscanf(l, "%31[^:]: %llu kB", name, &kb) == 2)
			fprintf(out, "# %s = %llu\n", name, kb * 1024);
	}
	free(buf);
}

/* debug=N (N > 0): Go's legacy text of the profile. */
static enum MHD_Result legacy_text(struct serve_req *r, struct serve_accum *a, const char *name)
{
	struct pp_legacy lo = { func_start, r->srv };
	int heap = strcmp(name, "heap") == 0 || strcmp(name, "allocs") == 0;
	struct accum_ask k = { .op = ACCUM_WRITE_LEGACY, .legacy = &lo,
			       .legacy_name = heap ? "heap" : strcmp(name, "block") == 0 ? "contention" : "mutex" };
	if (accum_ask(a, &k))
		return reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "%s profile: out of memory", name);
	if (heap) {
		struct membuf m;
		if (membuf_open(&m)) {
			free(k.buf);
			return reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
		}
		fwrite(k.buf, 1, k.len, m.f);
		put_memory(m.f, r->srv->pid);
		free(k.buf);
		if (membuf_close(&m))
			return reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
		k.buf = m.buf;
		k.len = m.len;
	}
	return reply_text(r, k.buf, k.len, "text/plain; charset=utf-8");
}

static enum MHD_Result cumulative(struct serve_req *r, struct serve_accum *a, const char *name,
				  long long debug)
{
	if (debug && a->kind == COLLECT_THREADCREATE) {        /* Go's own text */
		struct accum_ask k = { .op = ACCUM_WRITE_TEXT };
		if (accum_ask(a, &k))
			return reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "%s profile: out of memory", name);
		return reply_text(r, k.buf, k.len, "text/plain; charset=utf-8");
	}
	if (debug)
		return legacy_text(r, a, name);
	struct accum_ask k = { .op = ACCUM_WRITE, .default_type = default_type(name) };
	if (accum_ask(a, &k))
		return reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "%s profile: out of memory", name);
	return reply_profile(r, k.buf, k.len, name);
}

/* Go's serveDeltaProfile: the cumulative profile N seconds later minus
 * now, never stopping the target. */
static enum MHD_Result delta(struct serve_req *r, struct serve_accum *a, const char *name, long long sec)
{
	struct accum_ask base = { .op = ACCUM_SAVE };
	char filename[64];
	if (serve_collect_begin(r))
		return MHD_YES;
	if (accum_ask(a, &base)) {
		serve_collect_end(r);
		return reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "%s profile: out of memory", name);
	}
	MHD_set_connection_option(r->conn, MHD_CONNECTION_OPTION_TIMEOUT, 0u);
	req_sleep_until(r, base.base_ns + (uint64_t)sec * 1000000000u);
	MHD_set_connection_option(r->conn, MHD_CONNECTION_OPTION_TIMEOUT, r->srv->o.idle_timeout);
	struct accum_ask k = { .op = ACCUM_WRITE_DELTA, .default_type = default_type(name), .base = base.base,
			       .base_ns = base.base_ns, .base_time_nanos = base.base_time_nanos };
	int failed = accum_ask(a, &k);
	pp_profile_free(base.base);
	serve_collect_end(r);
	if (failed)
		return reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "%s profile: out of memory", name);
	snprintf(filename, sizeof filename, "%s-delta", name);
	return reply_profile(r, k.buf, k.len, filename);
}

/* serve PID: allocations are seen only from when the probes are in
 * place, so the window is the profile. */
static enum MHD_Result heap_window(struct serve_req *r, const char *name, long long sec)
{
	struct serve_server *s = r->srv;
	char filename[64];
	if (take_slot(s, &s->heap_busy))
		return reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "Could not enable heap profiling: a "
				   "heap or allocs window of this process is already in progress");
	enum MHD_Result ret = MHD_YES;
	if (serve_collect_begin(r) == 0) {
		snprintf(filename, sizeof filename, "%s-delta", name);
		ret = collect_and_reply(r, strcmp(name, "heap") == 0 ? COLLECT_HEAP : COLLECT_ALLOCS, (double)sec,
					"Could not enable heap profiling", filename);
		serve_collect_end(r);
	}
	give_slot(s, &s->heap_busy);
	return ret;
}

/* What a profile without its collection says: cumulative block and mutex
 * need perf_event; a running process's heap needs a window. */
static enum MHD_Result unavailable(struct serve_req *r, const char *name)
{
	if (strcmp(name, "heap") == 0 || strcmp(name, "allocs") == 0)
		return reply_error(r, MHD_HTTP_BAD_REQUEST, "%s profile of a running process needs "
				   "?seconds=N: pprofc serve PID sees the allocations made from when its "
				   "probes are in place (uprobes), not before; pprofc run --serve gives "
				   "cumulative heap and allocs", name);
	char why[sizeof r->srv->acc_why[0]];
	serve_accum_why(r->srv, slot_of(name), why, sizeof why);
	return reply_error(r, MHD_HTTP_NOT_IMPLEMENTED, "%s profile not collected: %s", name, why);
}

static enum MHD_Result named_with(struct serve_req *r, const char *name, struct serve_accum *a)
{
	const char *secs = req_arg(r, "seconds");
	long long sec = 0, debug = debug_arg(r);
	int is_heap = strcmp(name, "heap") == 0 || strcmp(name, "allocs") == 0;
	if (secs && *secs) {
		if (parse_int(secs, &sec) || sec <= 0)
			return reply_error(r, MHD_HTTP_BAD_REQUEST,
					   "invalid value for \"seconds\" - must be a positive integer");
		if (strcmp(name, "goroutine") == 0)
			return reply_error(r, MHD_HTTP_BAD_REQUEST,
					   "\"seconds\" parameter is not supported for this profile type");
		if (sec > (long long)r->srv->o.max_seconds)
			return reply_error(r, MHD_HTTP_BAD_REQUEST, "profile duration exceeds server's WriteTimeout");
		if (debug)
			return reply_error(r, MHD_HTTP_BAD_REQUEST, "seconds and debug params are incompatible");
		if (a)
			return delta(r, a, name, sec);
		return is_heap ? heap_window(r, name, sec) : unavailable(r, name);
	}
	if (strcmp(name, "goroutine") == 0)
		return goroutine(r, debug);
	return a ? cumulative(r, a, name, debug) : unavailable(r, name);
}

/* A named profile, with its cumulative collection held meanwhile (block
 * and mutex start at their first request).  Once the target is gone only
 * the cumulative ones that ran are left (--linger). */
static enum MHD_Result named(struct serve_req *r, const char *name)
{
	int gone = target_gone(r->srv);
	const char *secs = req_arg(r, "seconds");
	if (gone && (strcmp(name, "goroutine") == 0 || (secs && *secs)))
		return reply_gone(r);
	struct serve_accum *a = strcmp(name, "goroutine") ? serve_accum_use(r->srv, slot_of(name), 1) : NULL;
	if (gone && !a)
		return reply_gone(r);
	enum MHD_Result ret = named_with(r, name, a);
	serve_accum_done(a);
	return ret;
}

/* ---- cmdline, symbol, and what is not there ----------------------------- */

static enum MHD_Result cmdline(struct serve_req *r)
{
	char path[64], *buf = NULL;
	size_t len = 0;
	snprintf(path, sizeof path, "/proc/%d/cmdline", (int)attach_mm_pid(r->srv->pid));
	if (attach_read_file(path, &buf, &len))
		return reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot read %s: %s", path, strerror(errno));
	/* Go joins os.Args with NUL: no NUL after the last. */
	if (len && buf[len - 1] == 0)
		len--;
	return reply_text(r, buf, len, "text/plain; charset=utf-8");
}

/* Each address in words ("0x1+0x2", or with spaces: the query's '+' is
 * decoded to one), as Go's Symbol handler writes them. */
static void symbolize_words(struct serve_server *s, const char *words, FILE *out)
{
	char *copy = strdup(words), *save = NULL;
	if (!copy)
		return;
	for (char *w = strtok_r(copy, "+ \r\n", &save); w; w = strtok_r(NULL, "+ \r\n", &save)) {
		char *end;
		errno = 0;
		unsigned long long pc = strtoull(w, &end, 0);
		if (*end || errno || !pc)
			continue;
		const char *name = sym_function_at(s->sym, pc);
		if (name)
			fprintf(out, "%#llx %s\n", pc, name);
	}
	free(copy);
}

/* GET args without values: "symbol?0x1+0x2" is one key. */
static enum MHD_Result each_key(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	(void)kind;
	(void)value;
	struct { struct serve_server *s; FILE *out; } *ctx = cls;
	symbolize_words(ctx->s, key, ctx->out);
	return MHD_YES;
}

static enum MHD_Result symbol(struct serve_req *r)
{
	struct serve_server *s = r->srv;
	struct membuf m;
	char why[256];
	if (membuf_open(&m))
		return reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
	/* pprof only asks whether there are symbols at all (> 0). */
	fputs("num_symbols: 1\n", m.f);
	pthread_mutex_lock(&s->sym_mu);
	if (!s->sym && target_gone(s)) {
		/* One opened before the exit still answers (go tool pprof asks
		 * it about the addresses of debug=1 texts); none can open now. */
		pthread_mutex_unlock(&s->sym_mu);
		if (membuf_close(&m) == 0)
			free(m.buf);
		return reply_gone(r);
	}
	if (!s->sym)
		s->sym = sym_open(attach_mm_pid(s->pid), why, sizeof why);
	if (s->sym && strcmp(r->method, "POST") == 0) {
		symbolize_words(s, r->body ? r->body : "", m.f);
	} else if (s->sym) {
		struct { struct serve_server *s; FILE *out; } ctx = { s, m.f };
		MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, each_key, &ctx);
	}
	pthread_mutex_unlock(&s->sym_mu);
	if (membuf_close(&m))
		return reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
	return reply_text(r, m.buf, m.len, "text/plain; charset=utf-8");
}

/* ---- trace: the timeline ------------------------------------------------ */

/* Go's trace?seconds=N: a float, 1 when missing or not positive (as
 * net/http/pprof's Trace reads it).  Not Go's runtime/trace binary, which
 * only Go programs make: the threads' timeline as trace-event JSON
 * (docs/FORMATS.md §9), for ui.perfetto.dev or chrome://tracing. */
static enum MHD_Result trace(struct serve_req *r)
{
	struct serve_server *s = r->srv;
	const char *arg = req_arg(r, "seconds");
	char *end;
	double sec = arg ? strtod(arg, &end) : 0;
	if (!arg || *end || end == arg || !(sec > 0))
		sec = 1;
	if (sec > (double)s->o.max_seconds)
		return reply_error(r, MHD_HTTP_BAD_REQUEST, "profile duration exceeds server's WriteTimeout");
	if (serve_collect_begin(r))
		return MHD_YES;
	struct collect_opts co;
	struct collect_error err;
	serve_collect_opts(r, COLLECT_TRACE, sec, &co);
	struct collect_session *cs = collect_open(s->pid, &co, &err);
	if (!cs) {
		serve_collect_end(r);
		return reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "Could not enable tracing: %s", err.msg);
	}
	MHD_set_connection_option(r->conn, MHD_CONNECTION_OPTION_TIMEOUT, 0u);
	collect_run(cs);
	MHD_set_connection_option(r->conn, MHD_CONNECTION_OPTION_TIMEOUT, s->o.idle_timeout);
	struct membuf m = { 0 };
	int bad = membuf_open(&m);
	if (!bad) {
		int w = collect_trace_write(cs, m.f);
		bad = membuf_close(&m) || w;
	}
	collect_close(cs);
	serve_collect_end(r);
	if (bad) {
		free(m.buf);
		return reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory writing the trace");
	}
	return reply_trace(r, m.buf, m.len);
}

enum MHD_Result serve_endpoint(struct serve_req *r, const char *name)
{
	static const char *const named_profiles[] = { "goroutine", "block", "mutex", "heap", "allocs",
						      "threadcreate" };
	for (size_t i = 0; i < sizeof named_profiles / sizeof *named_profiles; i++)
		if (strcmp(name, named_profiles[i]) == 0)
			return named(r, name);
	if (target_gone(r->srv) && strcmp(name, "symbol"))
		return reply_gone(r);
	if (strcmp(name, "profile") == 0)
		return cpu_profile(r);
	if (strcmp(name, "cmdline") == 0)
		return cmdline(r);
	if (strcmp(name, "symbol") == 0)
		return symbol(r);
	if (strcmp(name, "trace") == 0)
		return trace(r);
	return reply_error(r, MHD_HTTP_NOT_FOUND, "Unknown profile");
}
