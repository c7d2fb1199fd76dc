/* report.c — `pprofc report FILE`: the top or folded view of a saved
 * profile, for machines without Go.  Reads any pprof file (pprofc's or
 * Go's) through pprofout/read.c. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "../pprofout/profile.h"
#include "../pprofout/report.h"
#include "cli.h"

static const char help[] =
	"usage: pprofc report [options] FILE\n"
	"\n"
	"Print a view of the pprof profile in FILE (gzip'ed or not).\n"
	"\n"
	"options:\n"
	"      --format=FORMAT   top (default: what `go tool pprof -top` shows) or\n"
	"                        folded (collapsed stacks for flame graphs)\n"
	"  -o, --output=FILE     write to FILE instead of stdout\n"
	"  -h, --help            show this help\n";

int cmd_report(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "format", required_argument, NULL, 'f' },
		{ "output", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int folded = 0, c;
	const char *output = NULL;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'f':
			if (strcmp(optarg, "folded") == 0)
				folded = 1;
			else if (strcmp(optarg, "top") != 0)
				return cli_usage_error("report", "--format takes top or folded, not '%s'", optarg);
			break;
		case 'o':
			output = optarg;
			break;
		case 'h':
			fputs(help, stdout);
			return EXIT_OK;
		default:
			return cli_usage_error("report", "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind + 1 != argc)
		return cli_usage_error("report", optind == argc ? "missing FILE" : "too many arguments");
	const char *path = argv[optind];
	FILE *in = fopen(path, "rb");
	if (!in) {
		cli_error("cannot open %s: %m", path);
		return EXIT_FAIL;
	}
	char err[256];
	struct pp_profile *p = pp_profile_read(in, err, sizeof err);
	fclose(in);
	if (!p) {
		cli_error("%s is not a pprof profile (%s): give a file written by pprofc, Go's "
			  "runtime/pprof or go tool pprof", path, err);
		return EXIT_FAIL;
	}
	struct cli_output out;
	int rc = EXIT_FAIL;
	if (cli_output_open(&out, output) == 0) {
		if ((folded ? pp_report_folded(p, out.f) : pp_report_top(p, out.f)) == 0)
			rc = cli_output_commit(&out) ? EXIT_FAIL : EXIT_OK;
		else {
			cli_error("cannot write the report");
			cli_output_abort(&out);
		}
	}
	pp_profile_free(p);
	return rc;
}
