/* report.h — text views of a profile, for terminals and scripts without Go:
 * `top` (what `go tool pprof -top` prints) and `folded` (one line per
 * distinct stack, root first, ';'-separated, then the value: the input of
 * flamegraph.pl, speedscope and inferno).  Both use the default sample
 * type (cpu nanoseconds for a CPU profile), as go tool pprof does, unless
 * the view asks for another. */
#ifndef PPROFC_PPROFOUT_REPORT_H
#define PPROFC_PPROFOUT_REPORT_H

#include <stdio.h>

#include "profile.h"
#include "select.h"

/* v: which value and which samples (NULL: the default value, every
 * sample).  0, or -1 when out of memory or the write failed. */
int pp_report_top(const struct pp_profile *p, const struct pp_view *v, FILE *out);
int pp_report_folded(const struct pp_profile *p, const struct pp_view *v, FILE *out);

#endif
