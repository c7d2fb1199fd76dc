/* goroutines.c — a Go program's goroutines as text, in the layout of Go's
 * goroutine?debug=2 (runtime.Stack of every goroutine), and as JSON:
 * docs/FORMATS.md §2.1 and §4.
 *
 *     goroutine 7 [chan receive, 3 minutes]:
 *     main.worker(...)
 *     	/src/main.go:42 +0x1d
 *     created by main.main                      (Go 1.21+: "... in goroutine 1")
 *     	/src/main.go:17 +0x65
 */
#include "dump.h"
#include "internal.h"

#include <inttypes.h>

static void write_header(FILE *out, const struct pp_goroutine *g)
{
	fprintf(out, "goroutine %lld [%s", (long long)g->goid, g->status);
	if (g->leaked)
		fputs(" (leaked)", out);
	if (g->scan)
		fputs(" (scan)", out);
	if (g->wait_minutes >= 1)
		fprintf(out, ", %lld minutes", (long long)g->wait_minutes);
	if (g->locked)
		fputs(", locked to thread", out);
	fputs("]:\n", out);
}

static void write_created_by(FILE *out, const struct pp_goroutine *g)
{
	const struct pp_frame *f = g->created_by;
	fprintf(out, "created by %s", f->function ? f->function : "??");
	if (g->creator >= 0)
		fprintf(out, " in goroutine %lld", (long long)g->creator);
	fputc('\n', out);
	/* The frame's second line, as for any frame. */
	if (f->file) {
		fprintf(out, "\t%s:%d", f->file, f->line);
		if (f->has_offset)
			fprintf(out, " +0x%" PRIx64, f->func_offset);
	} else if (f->module) {
		fprintf(out, "\t%s +0x%" PRIx64, f->module, f->module_offset);
	} else {
		fprintf(out, "\t?? 0x%" PRIx64, f->pc);
	}
	fputc('\n', out);
}

void pp_write_goroutines(FILE *out, const struct pp_goroutines *go)
{
	for (size_t i = 0; i < go->n; i++) {
		const struct pp_goroutine *g = &go->g[i];
		write_header(out, g);
		for (size_t k = 0; k < g->nframes; k++)
			pp_write_go_frame(out, &g->frames[k]);
		if (!g->stack_taken)
			fprintf(out, "...stack unavailable: %s\n", g->stack_error ? g->stack_error : "unknown");
		else if (!g->complete)
			fprintf(out, "...unwinding stopped: %s\n", g->stack_error ? g->stack_error : "unknown");
		if (g->created_by)
			write_created_by(out, g);
		fputc('\n', out);
	}
}

/* {"k": "v", ...} by key; null when it has no label set. */
static void write_labels_json(FILE *out, const struct pp_go_labels *l)
{
	if (!l->has) {
		fputs("null", out);
		return;
	}
	fputc('{', out);
	for (size_t i = 0; i < l->n; i++) {
		fputs(i ? ", " : "", out);
		pp_write_json_string(out, l->v[i].key);
		fputs(": ", out);
		pp_write_json_string(out, l->v[i].value);
	}
	fputc('}', out);
}

static void write_goroutine_json(FILE *out, const struct pp_goroutine *g, int last)
{
	fprintf(out, "    { \"goid\": %lld, \"status\": ", (long long)g->goid);
	pp_write_json_string(out, g->status);
	fprintf(out, ", \"leaked\": %s, \"scan\": %s, \"wait_minutes\": %lld, \"locked_to_thread\": %s, \"tid\": ",
		g->leaked ? "true" : "false", g->scan ? "true" : "false", (long long)(g->wait_minutes > 0 ? g->wait_minutes : 0),
		g->locked ? "true" : "false");
	if (g->tid)
		fprintf(out, "%d", (int)g->tid);
	else
		fputs("null", out);
	fputs(",\n      \"frames\": [\n", out);
	for (size_t k = 0; k < g->nframes; k++)
		pp_write_json_frame(out, &g->frames[k], k + 1 == g->nframes);
	fprintf(out, "      ],\n      \"complete\": %s, \"stack_taken\": %s, \"stack_error\": ",
		g->complete ? "true" : "false", g->stack_taken ? "true" : "false");
	pp_write_json_string_or_null(out, g->complete ? NULL : g->stack_error);
	fputs(",\n      \"created_by\": ", out);
	if (g->created_by) {
		fputc('\n', out);
		pp_write_json_frame(out, g->created_by, 1);
		fputs("      ", out);
	} else {
		fputs("null", out);
	}
	fputs(", \"creator_goid\": ", out);
	if (g->created_by && g->creator >= 0)
		fprintf(out, "%lld", (long long)g->creator);
	else
		fputs("null", out);
	fputs(", \"labels\": ", out);
	write_labels_json(out, &g->labels);
	fprintf(out, " }%s\n", last ? "" : ",");
}

void pp_write_goroutines_json(FILE *out, const struct pp_goroutines *go)
{
	if (!go) {
		fputs("  \"go\": null, \"goroutines\": null,\n", out);
		return;
	}
	fputs("  \"go\": { \"version\": ", out);
	pp_write_json_string_or_null(out, go->go_version);
	fputs(", \"note\": ", out);
	pp_write_json_string_or_null(out, go->note);
	fputs(" },\n", out);
	if (go->note) {
		fputs("  \"goroutines\": null,\n", out);
		return;
	}
	fputs("  \"goroutines\": [\n", out);
	for (size_t i = 0; i < go->n; i++)
		write_goroutine_json(out, &go->g[i], i + 1 == go->n);
	fputs("  ],\n", out);
}
