/* flame.h — a profile as a self-contained interactive flame graph (SVG),
 * for `pprofc report --format svg`: no Go, no network, opens in any
 * browser.  The view (select.h) chooses the value and the samples. */
#ifndef PPROFC_PPROFOUT_FLAME_H
#define PPROFC_PPROFOUT_FLAME_H

#include <stdio.h>

#include "profile.h"
#include "select.h"

/* Writes the flame graph of p as v shows it (NULL: the default value,
 * every sample).  0, or -1 when out of memory or the write failed. */
int pp_report_svg(const struct pp_profile *p, const struct pp_view *v, FILE *out);

#endif
