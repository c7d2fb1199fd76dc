/* internal.h — the server object and what serve/'s files share.  Callers
 * see serve.h. */
#ifndef PPROFC_SERVE_INTERNAL_H
#define PPROFC_SERVE_INTERNAL_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>

#include "../pprofout/legacy.h"
#include "serve.h"

/* ---- accum.c: a cumulative collection, on its own thread --------------- */

/* What a request asks of a cumulative collection, done on its thread
 * (the only one that may read its profile while it runs). */
enum accum_op { ACCUM_SAVE, ACCUM_WRITE, ACCUM_WRITE_DELTA, ACCUM_WRITE_LEGACY, ACCUM_WRITE_TEXT,
		ACCUM_COUNT };

struct accum_ask {
	enum accum_op op;
	const char *default_type;       /* WRITE*: the sample type shown first (NULL: unset) */
	struct pp_profile *base;        /* SAVE: out; WRITE_DELTA: in */
	int64_t base_time_nanos;        /* SAVE: out (wall clock); DELTA: in */
	uint64_t base_ns;               /* SAVE: out (monotonic); DELTA: in */
	char *buf;                      /* WRITE*: the gzip'ed profile, Go's
					 * legacy text (LEGACY), or the kind's own
					 * debug=1 text (TEXT: threadcreate),
					 * malloc'ed */
	const char *legacy_name;        /* LEGACY: "heap", "contention" or "mutex" */
	const struct pp_legacy *legacy; /* LEGACY: the frames' offsets */
	size_t len;
	size_t samples;                 /* COUNT: out (threadcreate: threads) */
	int done, failed;
	struct accum_ask *next;
};

struct serve_accum {
	enum collect_kind kind;
	struct collect_session *cs;
	pthread_t thread;
	int started;                    /* thread runs (joined in accum_stop) */
	volatile sig_atomic_t cancel, snapshot;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct accum_ask *asks;         /* waiting for the next snapshot */
	int ended;                      /* collect_run returned: read directly */
	uint64_t start_ns;              /* CLOCK_MONOTONIC at the start */
	uint64_t keep_ns;               /* ends itself unused this long (0: never) */
	unsigned users;                 /* requests holding it */
	uint64_t last_used_ns;          /* the last release */
	int idled;                      /* it ended for keep_ns unused */
};

/* Prepares a (zeroed) a for a collection of o->kind: co is o with a's
 * callbacks, for collect_open or collect_spawn; accum_start then runs the
 * session cs (taken over: accum_free closes it) on a's thread.  -1 with
 * err set (cs is still the caller's). */
void accum_init(struct serve_accum *a, const struct collect_opts *o, struct collect_opts *co);
int accum_start(struct serve_accum *a, struct collect_session *cs, struct collect_error *err);
/* Does *ask on the collection's thread (or at once if it ended); 0, or
 * -1 (not running, out of memory). */
int accum_ask(struct serve_accum *a, struct accum_ask *ask);
int accum_ended(struct serve_accum *a);
/* A request using a: it does not end for keep_ns meanwhile; release
 * counts as a use. */
void accum_hold(struct serve_accum *a);
void accum_release(struct serve_accum *a);
/* Whether it ended for keep_ns unused (not for the target's exit), and
 * nobody holds it: then it may be freed and started again. */
int accum_idled(struct serve_accum *a);
/* Cancels the collection and joins its thread (safe if never started). */
void accum_stop(struct serve_accum *a);
void accum_free(struct serve_accum *a);

/* ---- server.c: the server object --------------------------------------- */

/* Which cumulative collections a server runs. */
enum { ACC_BLOCK, ACC_MUTEX, ACC_HEAP, ACC_THREADCREATE, ACC_N };

struct serve_server {
	struct serve_opts o;
	char url[4200];
	int listen_fd;
	char unix_path[108];            /* "" unless a unix socket */
	int private_addr;
	char *basic_user, *basic_pass, *token;
	struct MHD_Daemon *mhd;
	pid_t pid;                      /* 0: no target yet */
	int pidfd;                      /* the target's, for serve_wait; -1 */
	int command;                    /* run --serve: we started it */
	pthread_mutex_t acc_mu;         /* acc_on, acc_missing, acc_why(_name), starting and
					 * ending the collections (server.c) */
	struct serve_accum acc[ACC_N];
	int acc_on[ACC_N];              /* started (and not freed) */
	char acc_names[128];
	char acc_missing[700];
	char acc_why[ACC_N][300];       /* why each could not start ("") */
	char acc_why_name[ACC_N][64];   /* ...and what, as the index says it */
	uint64_t start_ns;
	pthread_mutex_t mu;             /* everything below */
	pthread_cond_t idle;            /* signalled when active reaches 0 */
	unsigned active;                /* requests being answered */
	unsigned unsent;                /* ...or answered, not yet sent */
	unsigned collecting;            /* ...of which collect the target */
	int cpu_busy, heap_busy;        /* a CPU profile, a uprobe window */
	int gone;                       /* the target exited: 410 */
	int stopping;                   /* SIGTERM...: 503 to new requests */
	int exit_status;                /* the target's, -1 unknown */
	pthread_mutex_t sym_mu;         /* symbol: one symbolizer, not thread-safe */
	pthread_mutex_t dump_mu;        /* one thread dump (or threadcreate's
					 * read of the threads alive) at a time:
					 * two would each find the threads the
					 * other seized traced (by pprofc) and
					 * refuse; taken after acc_mu */
	struct sym_session *sym;        /* opened at the first symbol request */
};

/* The cumulative collection of slot (ACC_*) held for a request (NULL:
 * none, and s->acc_missing says why if one could not start).  block and
 * mutex start here when asked to (start), at their first request, and
 * again after they ended unused.  serve_accum_done() releases it. */
struct serve_accum *serve_accum_use(struct serve_server *s, int slot, int start);
/* Why slot's collection is not running, for its 501. */
void serve_accum_why(struct serve_server *s, int slot, char *buf, size_t size);
void serve_accum_done(struct serve_accum *a);

/* ---- listen.c: the address ---------------------------------------------- */

/* Binds and listens on o->listen; fills listen_fd, url, unix_path,
 * private_addr.  -1 with err set. */
int serve_listen(struct serve_server *s, struct serve_error *err);
void serve_unlisten(struct serve_server *s);

/* ---- auth.c: credentials ------------------------------------------------- */

int serve_auth_load(struct serve_server *s, struct serve_error *err);
/* Whether the request carries the credentials (always, with none set). */
int serve_auth_ok(struct serve_server *s, struct MHD_Connection *c);
void serve_auth_free(struct serve_server *s);

/* ---- reply.c: responses as net/http/pprof makes them --------------------- */

/* One request being answered: what the handlers need. */
struct serve_req {
	struct serve_server *srv;
	struct MHD_Connection *conn;
	const char *method, *url;
	char *body;                     /* POST body (symbol), NUL-terminated */
	size_t body_len;
	int body_too_big;
	int admitted;                   /* counted in srv->unsent */
	volatile sig_atomic_t cancel;   /* the client left, or the server stops */
	unsigned status;
	size_t bytes;
	uint64_t start_ns;
};

/* Text error: text/plain, X-Go-Pprof: 1, the body txt and a newline. */
enum MHD_Result reply_error(struct serve_req *r, unsigned status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* A profile (gzip'ed protobuf, buf malloc'ed and taken over) as an
 * attachment named filename. */
enum MHD_Result reply_profile(struct serve_req *r, char *buf, size_t len, const char *filename);
/* Text (taken over) with a content type. */
enum MHD_Result reply_text(struct serve_req *r, char *buf, size_t len, const char *type);
/* The trace timeline: JSON, as a download named trace.json. */
enum MHD_Result reply_trace(struct serve_req *r, char *buf, size_t len);
/* 301 to location. */
enum MHD_Result reply_redirect(struct serve_req *r, const char *location);

/* A request argument, or NULL. */
const char *req_arg(struct serve_req *r, const char *name);
/* Whether the client has gone (its side of the connection closed), or
 * the server stops: sets r->cancel. */
int req_cancelled(struct serve_req *r);
/* Sleeps until the monotonic time end, or until req_cancelled. */
void req_sleep_until(struct serve_req *r, uint64_t end_ns);

/* A memory stream for building a body: open, then close into buf/len. */
struct membuf {
	FILE *f;
	char *buf;
	size_t len;
};
int membuf_open(struct membuf *m);
/* 0 with m->buf (malloc'ed) and m->len, or -1 (freed). */
int membuf_close(struct membuf *m);

/* CLOCK_MONOTONIC and CLOCK_REALTIME in ns. */
uint64_t serve_now_ns(void);
int64_t serve_wall_ns(void);

/* ---- endpoints.c and index.c: the answers --------------------------------- */

/* Answers r (the URL is under /debug/pprof/); name: what follows. */
enum MHD_Result serve_endpoint(struct serve_req *r, const char *name);
/* The HTML index. */
enum MHD_Result serve_index(struct serve_req *r);

/* Counting collections of the target at once: 0, or -1 after replying
 * 503 (too many).  Every serve_collect_begin that returned 0 is paired
 * with serve_collect_end. */
int serve_collect_begin(struct serve_req *r);
void serve_collect_end(struct serve_req *r);

/* collect_opts for a collection answering r: its cancel flag, progress
 * callback that notices the client leaving. */
void serve_collect_opts(struct serve_req *r, enum collect_kind kind, double seconds,
			struct collect_opts *co);

#endif
