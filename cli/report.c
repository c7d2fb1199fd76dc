/* report.c — `pprofc report FILE`: the top, folded or flame graph (svg)
 * view of a saved profile, for machines without Go.  Reads any pprof file
 * (pprofc's or Go's) through pprofout/read.c; which value and which
 * samples are shown is pprofout/select.c's business. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../pprofout/flame.h"
#include "../pprofout/profile.h"
#include "../pprofout/report.h"
#include "../pprofout/select.h"
#include "cli.h"

static const char help[] =
	"usage: pprofc report [options] FILE\n"
	"\n"
	"Print a view of the pprof profile in FILE (gzip'ed or not).\n"
	"\n"
	"options:\n"
	"      --format=FORMAT   top (default: what `go tool pprof -top` shows),\n"
	"                        folded (collapsed stacks for flame graphs) or\n"
	"                        svg (an interactive flame graph: open it in a browser)\n"
	"      --sample-index=TYPE\n"
	"                        the sample value shown, by type (cpu, samples,\n"
	"                        alloc_space...) or index (0 first); default: the\n"
	"                        one go tool pprof shows (also --sample_index)\n"
	"      --tagfocus=[KEY=]RE[,RE...] | [KEY=]LO:HI\n"
	"                        only samples with a label matching (thread=worker,\n"
	"                        bytes=64kb:); repeatable: all must match\n"
	"      --tagignore=FILTER  leave out the samples the filter matches; repeatable\n"
	"  -o, --output=FILE     write to FILE instead of stdout\n"
	"  -h, --help            show this help\n";

enum { FMT_REPORT_TOP, FMT_REPORT_FOLDED, FMT_REPORT_SVG };

/* The command line, parsed; the filters are compiled and freed by it. */
struct report_args {
	int format;
	const char *output, *sample_index, *path;
	struct pp_tagfilter *filters;
	size_t n_filters;
};

static void args_free(struct report_args *a)
{
	for (size_t i = 0; i < a->n_filters; i++)
		pp_tagfilter_free(&a->filters[i]);
	free(a->filters);
}

static int add_filter(struct report_args *a, const char *spec, int ignore)
{
	struct pp_tagfilter *f = realloc(a->filters, (a->n_filters + 1) * sizeof *f);
	if (!f) {
		cli_error("out of memory");
		return EXIT_FAIL;
	}
	a->filters = f;
	char err[256];
	if (pp_tagfilter_parse(&f[a->n_filters], spec, ignore, err, sizeof err))
		return cli_usage_error("report", "--%s: %s", ignore ? "tagignore" : "tagfocus", err);
	a->n_filters++;
	return EXIT_OK;
}

/* EXIT_OK to go on, -1 after --help, else the exit status. */
static int parse(int argc, char **argv, struct report_args *a)
{
	static const struct option longopts[] = {
		{ "format", required_argument, NULL, 'f' },
		{ "output", required_argument, NULL, 'o' },
		{ "sample-index", required_argument, NULL, 's' },
		{ "sample_index", required_argument, NULL, 's' },
		{ "tagfocus", required_argument, NULL, 't' },
		{ "tagignore", required_argument, NULL, 'i' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const char *const formats[] = { "top", "folded", "svg" };
	int c, rc;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'f':
			for (a->format = 0; a->format < 3 && strcmp(optarg, formats[a->format]); a->format++)
				;
			if (a->format == 3)
				return cli_usage_error("report", "--format takes top, folded or svg, not '%s'",
						       optarg);
			break;
		case 'o':
			a->output = optarg;
			break;
		case 's':
			a->sample_index = optarg;
			break;
		case 't':
		case 'i':
			if ((rc = add_filter(a, optarg, c == 'i')) != EXIT_OK)
				return rc;
			break;
		case 'h':
			fputs(help, stdout);
			return -1;
		default:
			return cli_usage_error("report", "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind + 1 != argc)
		return cli_usage_error("report", optind == argc ? "missing FILE" : "too many arguments");
	a->path = argv[optind];
	return EXIT_OK;
}

static struct pp_profile *load(const char *path)
{
	FILE *in = fopen(path, "rb");
	if (!in) {
		cli_error("cannot open %s: %m", path);
		return NULL;
	}
	char err[256];
	struct pp_profile *p = pp_profile_read(in, err, sizeof err);
	fclose(in);
	if (!p)
		cli_error("%s is not a pprof profile (%s): give a file written by pprofc, Go's "
			  "runtime/pprof or go tool pprof", path, err);
	return p;
}

static int write_view(const struct report_args *a, const struct pp_profile *p, const struct pp_view *v)
{
	struct cli_output out;
	if (cli_output_open(&out, a->output))
		return EXIT_FAIL;
	int r = a->format == FMT_REPORT_SVG	 ? pp_report_svg(p, v, out.f)
		: a->format == FMT_REPORT_FOLDED ? pp_report_folded(p, v, out.f)
						 : pp_report_top(p, v, out.f);
	if (r == 0)
		return cli_output_commit(&out) ? EXIT_FAIL : EXIT_OK;
	cli_error("cannot write the report");
	cli_output_abort(&out);
	return EXIT_FAIL;
}

int cmd_report(int argc, char **argv)
{
	struct report_args a = { 0 };
	int rc = parse(argc, argv, &a);
	struct pp_profile *p = NULL;
	if (rc == EXIT_OK && !(p = load(a.path)))
		rc = EXIT_FAIL;
	struct pp_view v = { 0, a.filters, a.n_filters, a.path };
	char err[512];
	if (p && pp_view_value(p, a.sample_index, &v.value, err, sizeof err))
		rc = cli_usage_error("report", "--sample-index: %s", err);
	if (rc == EXIT_OK)
		rc = write_view(&a, p, &v);
	pp_profile_free(p);
	args_free(&a);
	return rc < 0 ? EXIT_OK : rc;
}
