/* json.c — the thread dump as JSON for scripts (docs/FORMATS.md §4).
 *
 * Hand-written because the document is small and flat; every string goes
 * through pp_write_json_string so thread names holding quotes, newlines or
 * invalid UTF-8 still give valid JSON.
 */
#include "dump.h"
#include "internal.h"

#include <inttypes.h>
#include <string.h>

void pp_write_json_string(FILE *out, const char *str)
{
	const unsigned char *s = (const unsigned char *)(str ? str : "");
	fputc('"', out);
	while (*s) {
		unsigned char c = *s;
		size_t n = 1;
		if (c >= 0x80) {
			/* Pass valid UTF-8 through; show stray bytes as the Latin-1
			 * characters of the same value so nothing is lost. */
			size_t ok = pp_utf8_len(s);
			if (ok) {
				fwrite(s, 1, ok, out);
				s += ok;
				continue;
			}
			fprintf(out, "\\u%04x", c);
		} else if (c == '"' || c == '\\') {
			fprintf(out, "\\%c", c);
		} else if (c == '\n') {
			fputs("\\n", out);
		} else if (c == '\t') {
			fputs("\\t", out);
		} else if (c < 0x20 || c == 0x7f) {
			fprintf(out, "\\u%04x", c);
		} else {
			fputc(c, out);
		}
		s += n;
	}
	fputc('"', out);
}

void pp_write_json_string_or_null(FILE *out, const char *s)
{
	if (s)
		pp_write_json_string(out, s);
	else
		fputs("null", out);
}

static void write_blocked(FILE *out, const struct pp_blocked *b)
{
	switch (b->kind) {
	case PP_BLOCK_MUTEX:
		fprintf(out, "{\"kind\": \"mutex\", \"address\": \"0x%" PRIx64 "\", \"owner_tid\": ",
			b->address);
		if (b->owner)
			fprintf(out, "%d}", (int)b->owner);
		else
			fputs("null}", out);
		break;
	case PP_BLOCK_FUTEX:
		fprintf(out, "{\"kind\": \"futex\", \"address\": \"0x%" PRIx64 "\"}", b->address);
		break;
	case PP_BLOCK_FD:
		fprintf(out, "{\"kind\": \"fd\", \"fd\": %d, \"target\": ", b->fd);
		pp_write_json_string_or_null(out, b->target);
		fputs(", \"description\": ", out);
		pp_write_json_string_or_null(out, b->description);
		fputc('}', out);
		break;
	default:
		fputs("null", out);
	}
}

void pp_write_json_frame(FILE *out, const struct pp_frame *f, int last)
{
	fprintf(out, "        { \"pc\": \"0x%" PRIx64 "\", \"function\": ", f->pc);
	pp_write_json_string_or_null(out, f->function);
	fputs(", \"file\": ", out);
	pp_write_json_string_or_null(out, f->file);
	if (f->file)
		fprintf(out, ", \"line\": %d", f->line);
	else
		fputs(", \"line\": null", out);
	fprintf(out, ", \"inlined\": %s, \"module\": ", f->inlined ? "true" : "false");
	pp_write_json_string_or_null(out, f->module);
	if (f->has_offset && !f->inlined)
		fprintf(out, ", \"offset\": \"0x%" PRIx64 "\"", f->func_offset);
	else
		fputs(", \"offset\": null", out);
	fprintf(out, " }%s\n", last ? "" : ",");
}

static void write_thread(FILE *out, const struct pp_thread *t, int last)
{
	fprintf(out, "    { \"tid\": %d, \"name\": ", (int)t->tid);
	pp_write_json_string(out, t->name);
	fprintf(out, ", \"state\": \"%c\", \"reason\": ", t->state ? t->state : '?');
	pp_write_json_string(out, t->reason);
	fputs(", \"detail\": ", out);
	pp_write_json_string_or_null(out, t->detail && *t->detail ? t->detail : NULL);
	if (t->wait_seconds >= 0)
		fprintf(out, ", \"wait_seconds\": %.1f", t->wait_seconds);
	else
		fputs(", \"wait_seconds\": null", out);
	fputs(", \"syscall\": ", out);
	pp_write_json_string_or_null(out, t->syscall);
	fputs(", \"wchan\": ", out);
	pp_write_json_string_or_null(out, t->wchan);
	fputs(",\n      \"blocked_on\": ", out);
	write_blocked(out, &t->blocked);
	fputs(",\n      \"frames\": [\n", out);
	for (size_t k = 0; k < t->nframes; k++)
		pp_write_json_frame(out, &t->frames[k], k + 1 == t->nframes);
	fprintf(out, "      ],\n      \"complete\": %s, \"stack_taken\": %s, \"stack_error\": ",
		t->complete ? "true" : "false", t->stack_taken ? "true" : "false");
	pp_write_json_string_or_null(out, t->complete ? NULL : t->stack_error);
	if (t->goroutine)
		fprintf(out, ", \"goroutine\": %lld", (long long)t->goroutine);
	else
		fputs(", \"goroutine\": null", out);
	fprintf(out, " }%s\n", last ? "" : ",");
}

/* One process's object, without the newline after it. */
static void write_process(FILE *out, const struct pp_dump *d)
{
	char when[32];
	struct tm tm;
	gmtime_r(&d->time, &tm);
	strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
	fprintf(out, "{\n  \"pid\": %d, \"exe\": ", (int)d->pid);
	pp_write_json_string_or_null(out, d->exe);
	fputs(", \"cmdline\": [", out);
	for (size_t i = 0; i < d->argc; i++) {
		if (i)
			fputs(", ", out);
		pp_write_json_string(out, d->argv[i]);
	}
	fprintf(out, "], \"time\": \"%s\",\n", when);
	pp_write_goroutines_json(out, d->go);
	fputs("  \"threads\": [\n", out);
	for (size_t i = 0; i < d->n; i++)
		write_thread(out, &d->threads[i], i + 1 == d->n);
	fputs("  ],\n  \"deadlocks\": [", out);
	size_t at = 0;
	for (size_t c = 0; c < d->ncycles; c++) {
		fprintf(out, "%s{ \"threads\": [", c ? ", " : "");
		for (size_t k = 0; k < d->cycle_lens[c]; k++)
			fprintf(out, "%s%d", k ? ", " : "", (int)d->cycles[at + k]);
		fputs("] }", out);
		at += d->cycle_lens[c];
	}
	fputs("]\n}", out);
}

int pp_write_json(FILE *out, const struct pp_dump *d)
{
	write_process(out, d);
	fputc('\n', out);
	return ferror(out) ? -1 : 0;
}

int pp_write_json_processes(FILE *out, const struct pp_dump *const *d, size_t n)
{
	fputs("{\n\"processes\": [\n", out);
	for (size_t i = 0; i < n; i++) {
		write_process(out, d[i]);
		fputs(i + 1 < n ? ",\n" : "\n", out);
	}
	fputs("]\n}\n", out);
	return ferror(out) ? -1 : 0;
}
