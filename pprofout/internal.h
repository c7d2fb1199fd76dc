/* internal.h — shared by the files of pprofout/ only. */
#ifndef PPROFC_PPROFOUT_INTERNAL_H
#define PPROFC_PPROFOUT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "profile.h"

/* Length of the well-formed UTF-8 sequence at s (1-4), or 0 when s starts
 * with a byte that is not one (overlong forms, surrogates and code points
 * past U+10FFFF are not).  Never reads past a NUL. */
size_t pp_utf8_len(const unsigned char *s);

/* A sample's frames as names (frames.c), reused from sample to sample. */
struct pp_frames {
	const char **v;                 /* names interned by p: the pointer is the identity */
	char *inlined;                  /* v[k] is an inlined frame */
	size_t cap;
};
/* The stack of sample i as names in b, innermost first, and its value
 * number value_ix; -1 if out of memory. */
ssize_t pp_sample_frames(const struct pp_profile *p, size_t i, size_t value_ix,
			 struct pp_frames *b, int64_t *value);
void pp_frames_free(struct pp_frames *b);

/* pprof's style (report.c): nanoseconds in the largest unit that keeps
 * the value >= 1, two decimals, ".00" dropped ("2.50s", "10ms"); other
 * units as plain numbers. */
void pp_format_value(int64_t v, int is_time, char *buf, size_t len);
/* go tool pprof's percentages: "  100%", "43.20%", "0.45%", "    0%". */
void pp_format_percent(int64_t v, double total, char *buf, size_t len);

/* The script of a flame graph page (flame_script.c). */
extern const char pp_flame_script[];

#endif
