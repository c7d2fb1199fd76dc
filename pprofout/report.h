/* report.h — text views of a profile, for terminals and scripts without Go:
 * `top` (what `go tool pprof -top` prints) and `folded` (one line per
 * distinct stack, root first, ';'-separated, then the value: the input of
 * flamegraph.pl, speedscope and inferno).  Both use the last sample type
 * (cpu nanoseconds for a CPU profile), as go tool pprof does by default. */
#ifndef PPROFC_PPROFOUT_REPORT_H
#define PPROFC_PPROFOUT_REPORT_H

#include <stdio.h>

#include "profile.h"

int pp_report_top(const struct pp_profile *p, FILE *out);
int pp_report_folded(const struct pp_profile *p, FILE *out);

#endif
