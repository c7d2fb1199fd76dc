/* text.c — the thread dump as text: debug=2 (one block per thread, like
 * Go's goroutine?debug=2) and debug=1 (identical stacks grouped with a
 * count, like goroutine?debug=1).  Formats: docs/FORMATS.md §2 and §3.
 */
#include "dump.h"
#include "internal.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static int is_hex(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

void pp_write_cstring(FILE *out, const char *str)
{
	const unsigned char *s = (const unsigned char *)(str ? str : "");
	while (*s) {
		size_t n = pp_utf8_len(s);
		if (*s == '"' || *s == '\\')
			fprintf(out, "\\%c", *s);
		else if (*s == '\n')
			fputs("\\n", out);
		else if (*s == '\t')
			fputs("\\t", out);
		else if (n == 0 || *s < 0x20 || *s == 0x7f)
			/* C's \x takes every hex digit that follows: before one,
			 * spell the byte in octal, which stops after three. */
			fprintf(out, is_hex(s[1]) ? "\\%03o" : "\\x%02x", *s);
		else {
			fwrite(s, 1, n, out);
			s += n;
			continue;
		}
		s++;
	}
}

void pp_format_duration(double seconds, char *buf, size_t len)
{
	if (seconds < 1)
		snprintf(buf, len, "%s", "");
	else if (seconds < 2)
		snprintf(buf, len, "1 second");         /* ours: Go shows none below a minute */
	else if (seconds < 60)
		snprintf(buf, len, "%d seconds", (int)seconds);
	else
		snprintf(buf, len, "%lld minutes", (long long)(seconds / 60));
}

static void write_header(FILE *out, const struct pp_thread *t)
{
	char dur[32];
	fprintf(out, "thread %d \"", (int)t->tid);
	pp_write_cstring(out, t->name);
	fputc('"', out);
	if (t->goroutine)
		fprintf(out, " goroutine %lld", (long long)t->goroutine);
	fprintf(out, " [%s", t->reason);
	if (t->detail && *t->detail)
		fprintf(out, " (%s)", t->detail);
	pp_format_duration(t->wait_seconds, dur, sizeof dur);
	if (*dur)
		fprintf(out, ", %s", dur);
	fputs("]:\n", out);
}

/* Frame lines are most of a dump (27,000 lines for 500 threads), and
 * fprintf, which parses its format on every call, was a fifth of the
 * dump's user time: they are put together from plain strings here, under
 * one lock of the stream (pp_write_debug2). */
static void put_str(FILE *out, const char *s)
{
	fputs_unlocked(s, out);
}

static void put_hex(FILE *out, uint64_t v)
{
	char buf[16];
	size_t n = 0;
	do
		buf[sizeof buf - ++n] = "0123456789abcdef"[v & 15];
	while ((v >>= 4) != 0);
	fputs_unlocked("0x", out);
	fwrite_unlocked(buf + sizeof buf - n, 1, n, out);
}

static void put_int(FILE *out, int v)
{
	char buf[12];
	size_t n = 0;
	unsigned u = v < 0 ? 0u - (unsigned)v : (unsigned)v;
	do
		buf[sizeof buf - ++n] = (char)('0' + u % 10);
	while ((u /= 10) != 0);
	if (v < 0)
		buf[sizeof buf - ++n] = '-';
	fwrite_unlocked(buf + sizeof buf - n, 1, n, out);
}

/* mark_inlined: " (inlined)" after an inlined frame's name; Go's own
 * tracebacks tell one only by the offset it lacks. */
static void write_frame(FILE *out, const struct pp_frame *f, int mark_inlined)
{
	put_str(out, f->function ? f->function : "??");
	put_str(out, f->inlined && mark_inlined ? "(...) (inlined)\n\t" : "(...)\n\t");
	if (f->file) {
		put_str(out, f->file);
		putc_unlocked(':', out);
		put_int(out, f->line);
		if (!f->inlined && f->has_offset) {
			put_str(out, " +");
			put_hex(out, f->func_offset);
		}
	} else if (f->module) {
		put_str(out, f->module);
		put_str(out, " +");
		put_hex(out, f->module_offset);
	} else {
		put_str(out, "?? ");
		put_hex(out, f->pc);
	}
	putc_unlocked('\n', out);
}

void pp_write_frame(FILE *out, const struct pp_frame *f)
{
	write_frame(out, f, 1);
}

void pp_write_go_frame(FILE *out, const struct pp_frame *f)
{
	write_frame(out, f, 0);
}

static void write_deadlocks(FILE *out, const struct pp_dump *d)
{
	size_t at = 0;
	for (size_t c = 0; c < d->ncycles; c++) {
		const pid_t *cy = d->cycles + at;
		size_t len = d->cycle_lens[c];
		fputs("deadlock:", out);
		for (size_t k = 0; k <= len; k++) {
			pid_t tid = cy[k % len];
			const char *name = "";
			for (size_t i = 0; i < d->n; i++)
				if (d->threads[i].tid == tid)
					name = d->threads[i].name;
			fprintf(out, "%s thread %d \"", k ? " waits for" : "", (int)tid);
			pp_write_cstring(out, name);
			fputc('"', out);
		}
		fputc('\n', out);
		at += len;
	}
}

int pp_write_process_header(FILE *out, const struct pp_dump *d)
{
	/* The name is the main thread's (the process's comm), as ps shows it. */
	const char *name = d->n && d->threads[0].tid == d->pid ? d->threads[0].name : NULL;
	const char *base = d->exe ? strrchr(d->exe, '/') : NULL;
	fprintf(out, "process %d \"", (int)d->pid);
	pp_write_cstring(out, name ? name : base ? base + 1 : d->exe ? d->exe : "?");
	fputs("\":", out);
	for (size_t i = 0; i < d->argc; i++) {
		fputc(' ', out);
		pp_write_cstring(out, d->argv[i]);
	}
	fputs("\n\n", out);
	return ferror(out) ? -1 : 0;
}

int pp_write_debug2(FILE *out, const struct pp_dump *d)
{
	flockfile(out);
	/* A Go program: its goroutines first, as Go prints them: they are
	 * what a Go programmer thinks in; the threads follow. */
	if (d->go)
		pp_write_goroutines(out, d->go);
	for (size_t i = 0; i < d->n; i++) {
		const struct pp_thread *t = &d->threads[i];
		if (i)
			fputc('\n', out);
		write_header(out, t);
		for (size_t k = 0; k < t->nframes; k++)
			pp_write_frame(out, &t->frames[k]);
		if (!t->stack_taken)
			fprintf(out, "...stack not taken: %s\n", t->stack_error ? t->stack_error : "unknown");
		else if (!t->complete)
			fprintf(out, "...unwinding stopped: %s\n", t->stack_error ? t->stack_error : "unknown");
	}
	if (d->ncycles) {
		fputc('\n', out);
		write_deadlocks(out, d);
	}
	funlockfile(out);
	return ferror(out) ? -1 : 0;
}

/* ---- debug=1: group identical stacks ------------------------------------ */

static int same_stack(const struct pp_thread *a, const struct pp_thread *b)
{
	if (a->nframes != b->nframes || a->complete != b->complete || a->stack_taken != b->stack_taken)
		return 0;
	for (size_t i = 0; i < a->nframes; i++)
		if (a->frames[i].pc != b->frames[i].pc)
			return 0;
	if (!a->stack_taken || !a->complete) {
		const char *x = a->stack_error ? a->stack_error : "", *y = b->stack_error ? b->stack_error : "";
		return strcmp(x, y) == 0;
	}
	return 1;
}

struct group {
	const struct pp_thread *rep;
	size_t count;
};

static int cmp_group(const void *a, const void *b)
{
	const struct group *x = a, *y = b;
	if (x->count != y->count)
		return x->count > y->count ? -1 : 1;
	return (x->rep->tid > y->rep->tid) - (x->rep->tid < y->rep->tid);
}

/* One stack of a debug=1 text: its count, raw pcs, then a line per frame. */
static void write_counted(FILE *out, size_t count, const struct pp_frame *frames, size_t nframes,
			  int callers_only, int taken, int complete, const char *error)
{
	fprintf(out, "%zu @", count);
	for (size_t k = 0; k < nframes; k++)
		if (!frames[k].inlined)         /* one raw pc per physical frame */
			fprintf(out, " 0x%" PRIx64, frames[k].pc);
	fputc('\n', out);
	size_t leaf_end = 0;            /* the leaf's inline chain ends here */
	while (leaf_end + 1 < nframes && frames[leaf_end].inlined)
		leaf_end++;
	for (size_t k = 0; k < nframes; k++) {
		const struct pp_frame *f = &frames[k];
		/* Callers are shown at return address - 1, inside the call. */
		int caller = callers_only || k > leaf_end;
		uint64_t pc = caller ? f->pc - 1 : f->pc;
		size_t phys = k;
		while (phys < nframes && frames[phys].inlined)
			phys++;
		uint64_t off = phys < nframes ? frames[phys].func_offset : 0;
		int has = phys < nframes && frames[phys].has_offset;
		if (caller && has)
			off = off ? off - 1 : 0;
		fprintf(out, "#\t0x%" PRIx64 "\t%s", pc, f->function ? f->function : "??");
		if (has)
			fprintf(out, "+0x%" PRIx64, off);
		if (f->file)
			fprintf(out, "\t%s:%d\n", f->file, f->line);
		else if (f->module)
			fprintf(out, "\t%s+0x%" PRIx64 "\n", f->module, f->module_offset);
		else
			fputc('\n', out);
	}
	if (!taken)
		fprintf(out, "#\t...stack not taken: %s\n", error ? error : "unknown");
	else if (!complete)
		fprintf(out, "#\t...unwinding stopped: %s\n", error ? error : "unknown");
	fputc('\n', out);
}

static void write_group(FILE *out, const struct group *g)
{
	const struct pp_thread *t = g->rep;
	write_counted(out, g->count, t->frames, t->nframes, 0, t->stack_taken, t->complete,
		      t->stack_error);
}

static int cmp_counted(const void *a, const void *b)
{
	const struct pp_count_stack *x = *(const struct pp_count_stack *const *)a;
	const struct pp_count_stack *y = *(const struct pp_count_stack *const *)b;
	if (x->count != y->count)
		return x->count > y->count ? -1 : 1;
	for (size_t k = 0; k < x->nframes && k < y->nframes; k++)
		if (x->frames[k].pc != y->frames[k].pc)
			return x->frames[k].pc < y->frames[k].pc ? -1 : 1;
	return (x->nframes > y->nframes) - (x->nframes < y->nframes);
}

int pp_write_count_profile(FILE *out, const char *name, const struct pp_count_stack *v, size_t n)
{
	const struct pp_count_stack **order = malloc((n ? n : 1) * sizeof *order);
	size_t total = 0;
	if (!order)
		return -1;
	for (size_t i = 0; i < n; i++) {
		order[i] = &v[i];
		total += v[i].count;
	}
	qsort(order, n, sizeof *order, cmp_counted);
	fprintf(out, "%s profile: total %zu\n", name, total);
	for (size_t i = 0; i < n; i++)
		if (order[i]->count)
			write_counted(out, order[i]->count, order[i]->frames, order[i]->nframes,
				      order[i]->callers_only, 1, 1, NULL);
	free(order);
	return ferror(out) ? -1 : 0;
}

int pp_write_debug1(FILE *out, const struct pp_dump *d)
{
	struct group *g = calloc(d->n ? d->n : 1, sizeof *g);
	size_t ng = 0;
	if (!g)
		return -1;
	for (size_t i = 0; i < d->n; i++) {
		size_t j;
		for (j = 0; j < ng; j++)
			if (same_stack(g[j].rep, &d->threads[i]))
				break;
		if (j == ng)
			g[ng++] = (struct group){ &d->threads[i], 0 };
		g[j].count++;
	}
	qsort(g, ng, sizeof *g, cmp_group);
	fprintf(out, "thread profile: total %zu\n", d->n);
	for (size_t j = 0; j < ng; j++)
		write_group(out, &g[j]);
	free(g);
	write_deadlocks(out, d);
	return ferror(out) ? -1 : 0;
}
