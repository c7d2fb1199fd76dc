/* trace.h — writing a timeline as Chrome's trace-event JSON, the format
 * that ui.perfetto.dev, chrome://tracing and Chrome DevTools' Performance
 * panel open (docs/FORMATS.md §9).
 *
 * A stream: pp_trace_begin, then events in any order (each thread's in
 * time order is what readers like best), then pp_trace_end.  The writer
 * knows nothing of threads or engines: it is handed plain values.  Times
 * are CLOCK_MONOTONIC nanoseconds, written as microseconds with the
 * nanoseconds as three decimals (the format's unit is the microsecond).
 */
#ifndef PPROFC_PPROFOUT_TRACE_H
#define PPROFC_PPROFOUT_TRACE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* One entry of an event's "args": a string, a number, or a list of
 * strings (a stack, innermost frame first). */
enum pp_trace_arg_kind { PP_ARG_STR, PP_ARG_NUM, PP_ARG_LIST };
struct pp_trace_arg {
	const char *key;
	enum pp_trace_arg_kind kind;
	const char *str;
	int64_t num;
	const char *const *list;
	size_t n_list;
};

struct pp_trace_writer {
	FILE *out;
	int any;                        /* an event was written: a comma next */
};

void pp_trace_begin(struct pp_trace_writer *w, FILE *out);
/* Names a process (tid 0) or a thread: Chrome's "M" metadata events. */
void pp_trace_name(struct pp_trace_writer *w, int pid, int tid, const char *name);
/* A complete event ("X"): a slice of [ts, ts + dur] on the thread's track. */
void pp_trace_slice(struct pp_trace_writer *w, int pid, int tid, uint64_t ts_ns, uint64_t dur_ns,
		    const char *name, const char *cat, const struct pp_trace_arg *args, size_t nargs);
/* An instant event ("i", thread scope). */
void pp_trace_instant(struct pp_trace_writer *w, int pid, int tid, uint64_t ts_ns, const char *name,
		      const char *cat, const struct pp_trace_arg *args, size_t nargs);
/* Closes the document, with args as its "otherData"; 0, or -1 if the
 * stream failed. */
int pp_trace_end(struct pp_trace_writer *w, const struct pp_trace_arg *other, size_t nother);

#endif
