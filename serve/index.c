/* index.c — the /debug/pprof/ page, in the layout of Go's (a table of the
 * profiles with their counts and debug=1 links, sorted by name, the "full
 * goroutine stack dump" link, the descriptions), with pprofc's own words
 * where its profiles differ from Go's.
 */
#include <stdlib.h>
#include <string.h>

#include "../attach/proc.h"
#include "internal.h"

struct row {
	const char *name;
	const char *desc;
};

/* Sorted by name, as Go sorts them.  symbol is not listed (nor by Go). */
static const struct row rows[] = {
	{ "allocs", "A sampling of all past memory allocations (run --serve: since the start; serve "
		    "PID: allocs?seconds=N, the allocations made in those seconds)" },
	{ "block", "Stack traces where threads blocked (every off-CPU wait, labelled with its state), "
		   "cumulative from the first request for it (from zero again after --offcpu-keep "
		   "seconds without one)" },
	{ "cmdline", "The command line invocation of the current program" },
	{ "goroutine", "Stack traces of all current goroutines of a Go program, then its threads; "
		       "of any other program, of its OS threads (the count is of threads)" },
	{ "heap", "A sampling of memory allocations of live objects (run --serve: since the start; "
		  "serve PID: heap?seconds=N, the blocks allocated in those seconds and still live)" },
	{ "mutex", "Stack traces of holders of contended mutexes, cumulative from the first request "
		   "for it (from zero again after --offcpu-keep seconds without one)" },
	{ "profile", "CPU profile. You can specify the duration in the seconds GET parameter. After you "
		     "get the profile file, use the go tool pprof command to investigate the profile." },
	{ "threadcreate", "Stack traces that led to the creation of new OS threads: the threads alive "
			  "at the first request for it under their start routine, and each thread "
			  "created since under the stack that created it" },
	{ "trace", "A timeline of every thread (running with its stacks, each wait with its reason, "
		   "created, exited) as trace-event JSON, not Go's execution trace: open it in "
		   "ui.perfetto.dev or chrome://tracing, not go tool trace. You can specify the duration "
		   "in the seconds GET parameter (default 1)." },
};

static size_t count_of(struct serve_server *s, const char *name)
{
	if (strcmp(name, "goroutine") == 0)
		return attach_count_threads(s->pid);
	int slot = strcmp(name, "block") == 0 ? ACC_BLOCK : strcmp(name, "mutex") == 0 ? ACC_MUTEX
		 : strcmp(name, "heap") == 0 || strcmp(name, "allocs") == 0 ? ACC_HEAP
		 : strcmp(name, "threadcreate") == 0 ? ACC_THREADCREATE : -1;
	struct accum_ask k = { .op = ACCUM_COUNT };
	/* Not started by the index: block and mutex not asked for yet are 0. */
	struct serve_accum *a = slot < 0 ? NULL : serve_accum_use(s, slot, 0);
	int failed = !a || accum_ask(a, &k);
	serve_accum_done(a);
	return failed ? 0 : k.samples;
}

/* s with <, >, & and quotes as entities (a process name is anything). */
static void put_html(FILE *f, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '&': fputs("&amp;", f); break;
		case '"': fputs("&#34;", f); break;
		case '\'': fputs("&#39;", f); break;
		default: fputc(*s, f);
		}
	}
}

static void page(struct serve_server *s, FILE *f)
{
	char name[256];
	collect_name_of(s->pid, name, sizeof name);
	fputs("<html>\n<head>\n<title>/debug/pprof/</title>\n<style>\n.profile-name{\n"
	      "\tdisplay:inline-block;\n\twidth:6rem;\n}\n</style>\n</head>\n<body>\n"
	      "/debug/pprof/<br>\n<br>\n", f);
	fprintf(f, "pprofc serving process %d (", (int)s->pid);
	put_html(f, name);
	fputs(")<br>\n<br>\nTypes of profiles available:\n<table>\n"
	      "<thead><td>Count</td><td>Profile</td></thead>\n", f);
	for (size_t i = 0; i < sizeof rows / sizeof *rows; i++)
		fprintf(f, "<tr><td>%zu</td><td><a href='%s?debug=1'>%s</a></td></tr>\n",
			count_of(s, rows[i].name), rows[i].name, rows[i].name);
	fputs("</table>\n<a href=\"goroutine?debug=2\">full goroutine stack dump</a>\n<br>\n<p>\n"
	      "Profile Descriptions:\n<ul>\n", f);
	for (size_t i = 0; i < sizeof rows / sizeof *rows; i++)
		fprintf(f, "<li><div class=profile-name>%s: </div> %s</li>\n", rows[i].name, rows[i].desc);
	fputs("</ul>\n</p>\n<p>\n", f);
	char missing[sizeof s->acc_missing];
	pthread_mutex_lock(&s->acc_mu);         /* a request may start one meanwhile */
	snprintf(missing, sizeof missing, "%s", s->acc_missing);
	pthread_mutex_unlock(&s->acc_mu);
	if (missing[0]) {
		fputs("<br>\n", f);
		put_html(f, missing);
		fputs("\n", f);
	}
	fputs("</p>\n</body>\n</html>\n", f);
}

enum MHD_Result serve_index(struct serve_req *r)
{
	struct membuf m;
	if (membuf_open(&m))
		return reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
	page(r->srv, m.f);
	if (membuf_close(&m))
		return reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
	return reply_text(r, m.buf, m.len, "text/html; charset=utf-8");
}
