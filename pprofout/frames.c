/* frames.c — a sample's stack as function names, for the views made from a
 * built profile (report.c, flame.c): every line of a location's inline
 * chain is one frame, innermost first, as go tool pprof counts them. */
#include "internal.h"

#include <stdlib.h>

/* Grown to the deepest sample: a profile read from elsewhere may hold
 * stacks of any depth. */
static int frames_fit(struct pp_frames *b, size_t n)
{
	if (n <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < n)
		cap *= 2;
	const char **v = realloc(b->v, cap * sizeof *v);
	if (v)
		b->v = v;
	char *in = realloc(b->inlined, cap);
	if (in)
		b->inlined = in;
	if (!v || !in)
		return -1;
	b->cap = cap;
	return 0;
}

ssize_t pp_sample_frames(const struct pp_profile *p, size_t i, size_t value_ix,
			 struct pp_frames *b, int64_t *value)
{
	const uint64_t *locs;
	const int64_t *values;
	size_t nl = pp_profile_sample(p, i, &locs, &values), n = 0, depth = 0;
	*value = values && value_ix < pp_profile_n_values(p) ? values[value_ix] : 0;
	for (size_t k = 0; k < nl; k++)
		depth += pp_profile_location_depth(p, locs[k]);
	if (frames_fit(b, depth))
		return -1;
	for (size_t k = 0; k < nl; k++) {
		size_t m = pp_profile_location_names(p, locs[k], b->v + n, depth - n);
		for (size_t j = 0; j < m; j++)
			b->inlined[n + j] = j + 1 < m;  /* all but a location's last line */
		n += m;
	}
	return (ssize_t)n;
}

void pp_frames_free(struct pp_frames *b)
{
	free(b->v);
	free(b->inlined);
	b->v = NULL;
	b->inlined = NULL;
	b->cap = 0;
}
