/* profile.h — building a pprof profile and writing it (gzip'ed protobuf).
 *
 * The builder interns strings and deduplicates mappings, functions,
 * locations and samples, so memory grows with distinct stacks, not with
 * the number of samples.  Ids are dense, 1..N, in order of first use.
 * Conventions (docs/FORMATS.md §1.2, §1.3): one Location per distinct address, its Line
 * list the inline chain innermost first; sample location ids leaf first.
 */
#ifndef PPROFC_PPROFOUT_PROFILE_H
#define PPROFC_PPROFOUT_PROFILE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define PP_MAX_VALUES 4
#define PP_MAX_LABELS 16

struct pp_profile;

struct pp_value_type {
	const char *type, *unit;        /* e.g. "cpu", "nanoseconds" */
};

struct pp_profile_spec {
	struct pp_value_type sample_types[PP_MAX_VALUES];
	size_t n_sample_types;
	struct pp_value_type period_type;
	int64_t period;
	int64_t time_nanos;             /* when collection started (Unix epoch) */
	const char *default_sample_type;    /* NULL: unset (readers show the last) */
	const char *comment;            /* one comment (go tool pprof -comments); NULL: none */
};

struct pp_mapping {
	uint64_t start, limit, offset;
	const char *filename;
	const char *build_id;           /* lowercase hex, or NULL */
	int symbolized;                 /* sets has_functions/filenames/lines/inlines */
};

struct pp_line {
	const char *name;               /* demangled; NULL: unknown */
	const char *system_name;        /* raw symbol; NULL: same as name */
	const char *filename;           /* NULL: unknown */
	int64_t line;
	int64_t start_line;
};

struct pp_label {
	const char *key;
	const char *str;                /* string label, or NULL for numeric */
	int64_t num;
	const char *num_unit;           /* NULL: none */
};

struct pp_profile *pp_profile_new(const struct pp_profile_spec *spec);
void pp_profile_free(struct pp_profile *p);

/* Each returns the id (>= 1), or 0 when out of memory. */
uint64_t pp_profile_mapping(struct pp_profile *p, const struct pp_mapping *m);
/* A mapping is the same as one already added when its start, limit,
 * offset, file name and build ID are; the first call's symbolized stays
 * unless this marks it symbolized (as pp_profile_mapping_symbolized). */
void pp_profile_mapping_symbolized(struct pp_profile *p, uint64_t mapping_id);
/* One location per (mapping, address): a second call with the same pair
 * returns the first one's id, whatever its lines. */
uint64_t pp_profile_location(struct pp_profile *p, uint64_t mapping_id, uint64_t address,
			     const struct pp_line *lines, size_t n_lines);
/* The same, one location per (scope, mapping, address): scope keeps apart
 * what the profile cannot tell by mapping (code in no mapping, in two
 * processes); it is not written. */
uint64_t pp_profile_location_scoped(struct pp_profile *p, uint64_t scope, uint64_t mapping_id,
				    uint64_t address, const struct pp_line *lines, size_t n_lines);
/* Adds values to the sample with these locations (leaf first) and labels
 * (at most PP_MAX_LABELS), creating it if new; sums saturate.  values has
 * n_sample_types entries.  0 or -1. */
int pp_profile_add(struct pp_profile *p, const uint64_t *locations, size_t n,
		   const int64_t *values, const struct pp_label *labels, size_t n_labels);

/* Adds every sample of src into p (built with the same sample types),
 * each with src's labels followed by the extra ones (src's samples must
 * leave room for them under PP_MAX_LABELS): one profile of several
 * processes, each collected on its own.  src's mappings become p's (one
 * Mapping when start, limit, offset, file and build ID are all equal:
 * then so is the code); its locations in no mapping are kept apart from
 * other sources' by scope (nonzero).  0, or -1 when out of memory. */
int pp_profile_merge(struct pp_profile *p, const struct pp_profile *src, uint64_t scope,
		     const struct pp_label *extra, size_t n_extra);

/* Removes every sample, keeping strings, mappings, locations and
 * functions (their ids stay valid): a profile of a state that changes
 * (heap: live values go down) is filled again for each snapshot. */
void pp_profile_clear_samples(struct pp_profile *p);

/* Writes the profile, serialized and gzip'ed, to out.  0 or -1. */
int pp_profile_write(struct pp_profile *p, int64_t duration_nanos, FILE *out);

/* A copy of p's samples as they are now, for pp_profile_write_delta: a
 * profile that accumulates (block, mutex, allocs) minus an earlier state
 * of itself is what happened in between (Go's `seconds=N` on those).
 * Only for p itself later, not for another builder.  Free it with
 * pp_profile_free.  NULL when out of memory. */
struct pp_profile *pp_profile_save(const struct pp_profile *p);
/* Writes p minus base (a pp_profile_save of p), sample by sample, leaving
 * out samples whose values are all 0; time_nanos and duration_nanos as
 * given (the earlier state's time, and the time in between). */
int pp_profile_write_delta(struct pp_profile *p, const struct pp_profile *base, int64_t time_nanos,
			   int64_t duration_nanos, FILE *out);

/* Sets which sample type readers show first (NULL: unset, they show the
 * last): one heap profile served as heap and as allocs.  0 or -1. */
int pp_profile_set_default_sample_type(struct pp_profile *p, const char *type);

/* For tests and text writers: the counts the builder holds. */
size_t pp_profile_count(const struct pp_profile *p, char what);   /* 's' 'l' 'f' 'm' 'S' */

/* Reading back what was built (the text reports use this).  Sample i's
 * locations are leaf first; a location's names are its inline chain,
 * innermost first.  Returns the number of entries. */
size_t pp_profile_sample(const struct pp_profile *p, size_t i, const uint64_t **locations,
			 const int64_t **values);
/* How many names pp_profile_location_names gives for location id. */
size_t pp_profile_location_depth(const struct pp_profile *p, uint64_t id);
size_t pp_profile_location_names(const struct pp_profile *p, uint64_t location_id,
				 const char **names, size_t max);
/* Location id's address and lines (its inline chain, innermost first;
 * names, file NULL when unknown), at most max of them; returns how many
 * it has (0: a location without names). */
size_t pp_profile_location_lines(const struct pp_profile *p, uint64_t id, uint64_t *address,
				 struct pp_line *lines, size_t max);
int64_t pp_profile_period(const struct pp_profile *p);
size_t pp_profile_n_values(const struct pp_profile *p);
/* The value readers show first: default_sample_type's, else the last. */
size_t pp_profile_default_value(const struct pp_profile *p);
/* The unit of sample value i ("nanoseconds", "count"...), "" if none. */
const char *pp_profile_value_unit(const struct pp_profile *p, size_t i);
/* The type of sample value i ("cpu", "alloc_space"...), "" if none. */
const char *pp_profile_value_type(const struct pp_profile *p, size_t i);
/* Sample i's labels, at most max of them, into labels (strings owned by
 * p; a numeric label has str NULL).  Returns how many sample i has. */
size_t pp_profile_sample_labels(const struct pp_profile *p, size_t i, struct pp_label *labels,
				size_t max);

/* Reads a profile written by pp_profile_write (or by Go: gzip'ed or not)
 * back into a builder, so the text reports can be made from a file.
 * NULL and a one-line reason in err when it is not a valid profile. */
struct pp_profile *pp_profile_read(FILE *in, char *err, size_t errlen);

#endif
