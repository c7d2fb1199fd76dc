/* trace.c — the trace-event JSON writer (see trace.h).
 *
 * One event per line, so that a file of a million events stays readable
 * with grep; every string goes through pp_write_json_string (thread names
 * and symbols may hold anything).
 */
#include <inttypes.h>

#include "dump.h"
#include "trace.h"

/* Microseconds with three decimals: the nanoseconds kept exactly. */
static void write_us(FILE *out, uint64_t ns)
{
	fprintf(out, "%" PRIu64 ".%03u", ns / 1000u, (unsigned)(ns % 1000u));
}

static void write_args(FILE *out, const struct pp_trace_arg *args, size_t n)
{
	fputc('{', out);
	for (size_t i = 0; i < n; i++) {
		if (i)
			fputc(',', out);
		pp_write_json_string(out, args[i].key);
		fputc(':', out);
		if (args[i].kind == PP_ARG_NUM) {
			fprintf(out, "%" PRId64, args[i].num);
		} else if (args[i].kind == PP_ARG_STR) {
			pp_write_json_string(out, args[i].str);
		} else {
			fputc('[', out);
			for (size_t j = 0; j < args[i].n_list; j++) {
				if (j)
					fputc(',', out);
				pp_write_json_string(out, args[i].list[j]);
			}
			fputc(']', out);
		}
	}
	fputc('}', out);
}

/* The fields every event has, up to its timestamp. */
static void event_head(struct pp_trace_writer *w, const char *ph, int pid, int tid, const char *name)
{
	fputs(w->any ? ",\n" : "\n", w->out);
	w->any = 1;
	fprintf(w->out, "{\"ph\":\"%s\",\"pid\":%d,\"tid\":%d,\"name\":", ph, pid, tid);
	pp_write_json_string(w->out, name);
}

void pp_trace_begin(struct pp_trace_writer *w, FILE *out)
{
	w->out = out;
	w->any = 0;
	fputs("{\"displayTimeUnit\":\"ns\",\"traceEvents\":[", out);
}

void pp_trace_name(struct pp_trace_writer *w, int pid, int tid, const char *name)
{
	event_head(w, "M", pid, tid, tid ? "thread_name" : "process_name");
	fputs(",\"args\":{\"name\":", w->out);
	pp_write_json_string(w->out, name);
	fputs("}}", w->out);
}

void pp_trace_slice(struct pp_trace_writer *w, int pid, int tid, uint64_t ts_ns, uint64_t dur_ns,
		    const char *name, const char *cat, const struct pp_trace_arg *args, size_t nargs)
{
	event_head(w, "X", pid, tid, name);
	fputs(",\"cat\":", w->out);
	pp_write_json_string(w->out, cat);
	fputs(",\"ts\":", w->out);
	write_us(w->out, ts_ns);
	fputs(",\"dur\":", w->out);
	write_us(w->out, dur_ns);
	fputs(",\"args\":", w->out);
	write_args(w->out, args, nargs);
	fputc('}', w->out);
}

void pp_trace_instant(struct pp_trace_writer *w, int pid, int tid, uint64_t ts_ns, const char *name,
		      const char *cat, const struct pp_trace_arg *args, size_t nargs)
{
	event_head(w, "i", pid, tid, name);
	fputs(",\"s\":\"t\",\"cat\":", w->out);
	pp_write_json_string(w->out, cat);
	fputs(",\"ts\":", w->out);
	write_us(w->out, ts_ns);
	fputs(",\"args\":", w->out);
	write_args(w->out, args, nargs);
	fputc('}', w->out);
}

int pp_trace_end(struct pp_trace_writer *w, const struct pp_trace_arg *other, size_t nother)
{
	fputs("\n],\"otherData\":", w->out);
	write_args(w->out, other, nother);
	fputs("}\n", w->out);
	return ferror(w->out) ? -1 : 0;
}
