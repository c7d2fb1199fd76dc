/* select.h — what a view of a profile shows (report.h, flame.h): which of
 * the sample values (go tool pprof's -sample_index) and which samples
 * (its -tagfocus and -tagignore), for every format of `pprofc report`. */
#ifndef PPROFC_PPROFOUT_SELECT_H
#define PPROFC_PPROFOUT_SELECT_H

#include <regex.h>
#include <stddef.h>
#include <stdint.h>

#include "profile.h"

/* One --tagfocus (or --tagignore) filter, as go tool pprof reads it:
 *   KEY=RE[,RE...]  a string label KEY whose value one RE matches
 *   RE[,RE...]      every RE matches some "key:value" of a string label
 *   [KEY=]LO:HI     a numeric label (KEY, else any) in [LO, HI]; either
 *                   end may be left out; a single N means exactly N;
 *                   units b kb mb gb tb (x1024) and ns us ms s scale.
 * REs are POSIX extended expressions, unanchored, as Go's are. */
struct pp_tagfilter {
	int ignore;                     /* --tagignore: drop the samples it matches */
	char *key;                      /* NULL: any key */
	int numeric;
	int64_t lo, hi;                 /* numeric: the range, inclusive */
	regex_t *rx;                    /* string: any of n_rx expressions */
	size_t n_rx;
	char *spec;                     /* as given, for "Active filters" */
};

/* What a view shows.  A NULL view shows the default value of every sample. */
struct pp_view {
	size_t value;                   /* index of the sample value shown */
	const struct pp_tagfilter *filters;
	size_t n_filters;
	const char *source;             /* the file's name, for titles; NULL: none */
};

/* Parses spec into f; 0, or -1 with a one-line reason in err. */
int pp_tagfilter_parse(struct pp_tagfilter *f, const char *spec, int ignore, char *err, size_t errlen);
void pp_tagfilter_free(struct pp_tagfilter *f);

/* The value index -sample_index names: a sample type ("cpu",
 * "alloc_space") or its index (0 first); NULL: the default one.  0, or -1
 * with err listing the types the profile has. */
int pp_view_value(const struct pp_profile *p, const char *spec, size_t *value, char *err,
		  size_t errlen);

/* Whether view v shows sample i: every focus filter matches it and no
 * ignore filter does. */
int pp_view_keeps(const struct pp_view *v, const struct pp_profile *p, size_t i);
/* The value v shows (the profile's default one for a NULL v). */
size_t pp_view_value_index(const struct pp_view *v, const struct pp_profile *p);

#endif
