/* profile.c — the pprof profile builder and writer (see profile.h).
 *
 * Everything is kept in flat arrays indexed by id - 1, with one small
 * open-addressing table per kind to find an existing entry by content.
 * Writing builds protobuf-c messages that point into those arrays, packs
 * them, and gzips the bytes with zlib.
 */
#include "profile.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "profile.pb-c.h"

/* ---- a hash index over an array: slot -> (hash, id) --------------------- */

struct slot {
	uint64_t hash;
	uint64_t id;            /* 0: empty */
};

struct index {
	struct slot *slots;
	size_t cap, n;
};

static uint64_t mix(uint64_t h, uint64_t v)
{
	h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
	return h * 0xff51afd7ed558ccdULL;
}

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static int index_grow(struct index *x)
{
	size_t cap = x->cap ? x->cap * 2 : 256;
	struct slot *s = calloc(cap, sizeof *s);
	if (!s)
		return -1;
	for (size_t i = 0; i < x->cap; i++) {
		if (!x->slots[i].id)
			continue;
		size_t j = x->slots[i].hash & (cap - 1);
		while (s[j].id)
			j = (j + 1) & (cap - 1);
		s[j] = x->slots[i];
	}
	free(x->slots);
	x->slots = s;
	x->cap = cap;
	return 0;
}

/* Finds an id with this hash for which same(ctx, id) holds; else returns
 * 0 and, in *slot, where to insert. */
static uint64_t index_find(struct index *x, uint64_t h, int (*same)(const void *, uint64_t),
			   const void *ctx, size_t *slot)
{
	size_t j = h & (x->cap - 1);
	while (x->slots[j].id) {
		if (x->slots[j].hash == h && same(ctx, x->slots[j].id))
			return x->slots[j].id;
		j = (j + 1) & (x->cap - 1);
	}
	*slot = j;
	return 0;
}

static int index_reserve(struct index *x)
{
	return (x->n + 1) * 2 > x->cap ? index_grow(x) : 0;
}

static void index_put(struct index *x, size_t slot, uint64_t h, uint64_t id)
{
	x->slots[slot] = (struct slot){ h, id };
	x->n++;
}

/* ---- the builder's tables ----------------------------------------------- */

struct function {
	int64_t name, system_name, filename, start_line;
};

struct line {
	uint64_t function_id;
	int64_t line;
};

struct location {
	uint64_t scope, mapping_id, address;
	struct line *lines;
	size_t n_lines;
	int64_t fallback;       /* name for text reports when there are no lines */
};

struct mapping {
	uint64_t start, limit, offset;
	int64_t filename, build_id;
	int symbolized;
};

struct label {
	int64_t key, str, num, num_unit;
};

struct sample {
	uint64_t *locations;
	size_t n;
	int64_t values[PP_MAX_VALUES];
	struct label *labels;
	size_t n_labels;
};

#define ARRAY(T) struct { T *v; size_t n, cap; }

struct pp_profile {
	struct pp_profile_spec spec;
	ARRAY(char *) strings;
	ARRAY(struct function) functions;
	ARRAY(struct location) locations;
	ARRAY(struct mapping) mappings;
	ARRAY(struct sample) samples;
	struct index string_ix, function_ix, location_ix, mapping_ix, sample_ix;
	int64_t sample_type_ix[PP_MAX_VALUES][2];
	int64_t period_type_ix[2];
	int64_t default_type_ix;        /* 0: unset */
	int64_t comment_ix;             /* 0: none */
};

/* Makes room for one more element in an ARRAY. */
#define RESERVE(a) reserve((void **)&(a).v, &(a).cap, (a).n, sizeof *(a).v)

static int reserve(void **v, size_t *cap, size_t n, size_t size)
{
	if (n < *cap)
		return 0;
	size_t nc = *cap ? *cap * 2 : 64;
	void *nv = realloc(*v, nc * size);
	if (!nv)
		return -1;
	*v = nv;
	*cap = nc;
	return 0;
}

/* Comparison contexts: the candidate being looked up. */
struct str_key { const struct pp_profile *p; const char *s; };
struct fn_key { const struct pp_profile *p; const struct function *f; };
struct loc_key { const struct pp_profile *p; uint64_t scope, mapping_id, address; };
struct map_key { const struct pp_profile *p; const struct mapping *m; };
struct sample_key {
	const struct pp_profile *p;
	const uint64_t *locations;
	size_t n;
	const struct label *labels;
	size_t n_labels;
};

static int same_str(const void *ctx, uint64_t id)
{
	const struct str_key *k = ctx;
	return strcmp(k->p->strings.v[id - 1], k->s) == 0;
}

/* String index of s ("" is 0); -1 when out of memory. */
static int64_t intern(struct pp_profile *p, const char *s)
{
	if (!s)
		s = "";
	struct str_key k = { p, s };
	uint64_t h = hash_str(s);
	size_t slot;
	if (index_reserve(&p->string_ix))
		return -1;
	uint64_t id = index_find(&p->string_ix, h, same_str, &k, &slot);
	if (id)
		return (int64_t)id - 1;
	char *copy = strdup(s);
	if (!copy || RESERVE(p->strings)) {
		free(copy);
		return -1;
	}
	p->strings.v[p->strings.n++] = copy;
	index_put(&p->string_ix, slot, h, p->strings.n);
	return (int64_t)p->strings.n - 1;
}

struct pp_profile *pp_profile_new(const struct pp_profile_spec *spec)
{
	if (spec->n_sample_types > PP_MAX_VALUES)
		return NULL;
	struct pp_profile *p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	p->spec = *spec;
	int bad = intern(p, "") != 0;
	for (size_t i = 0; i < spec->n_sample_types && i < PP_MAX_VALUES; i++) {
		p->sample_type_ix[i][0] = intern(p, spec->sample_types[i].type);
		p->sample_type_ix[i][1] = intern(p, spec->sample_types[i].unit);
		bad |= p->sample_type_ix[i][0] < 0 || p->sample_type_ix[i][1] < 0;
	}
	p->period_type_ix[0] = intern(p, spec->period_type.type);
	p->period_type_ix[1] = intern(p, spec->period_type.unit);
	if (spec->default_sample_type)
		bad |= (p->default_type_ix = intern(p, spec->default_sample_type)) < 0;
	p->spec.default_sample_type = NULL;     /* the caller's string: kept interned */
	if (spec->comment)
		bad |= (p->comment_ix = intern(p, spec->comment)) < 0;
	p->spec.comment = NULL;
	if (bad || p->period_type_ix[0] < 0 || p->period_type_ix[1] < 0) {
		pp_profile_free(p);
		return NULL;
	}
	return p;
}

int pp_profile_set_default_sample_type(struct pp_profile *p, const char *type)
{
	int64_t ix = type ? intern(p, type) : 0;
	if (ix < 0)
		return -1;
	p->default_type_ix = ix;
	return 0;
}

void pp_profile_clear_samples(struct pp_profile *p)
{
	for (size_t i = 0; i < p->samples.n; i++) {
		free(p->samples.v[i].locations);
		free(p->samples.v[i].labels);
	}
	p->samples.n = 0;
	if (p->sample_ix.cap)
		memset(p->sample_ix.slots, 0, p->sample_ix.cap * sizeof *p->sample_ix.slots);
	p->sample_ix.n = 0;
}

void pp_profile_free(struct pp_profile *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->strings.n; i++)
		free(p->strings.v[i]);
	for (size_t i = 0; i < p->locations.n; i++)
		free(p->locations.v[i].lines);
	pp_profile_clear_samples(p);
	free(p->strings.v);
	free(p->functions.v);
	free(p->locations.v);
	free(p->mappings.v);
	free(p->samples.v);
	free(p->string_ix.slots);
	free(p->function_ix.slots);
	free(p->location_ix.slots);
	free(p->mapping_ix.slots);
	free(p->sample_ix.slots);
	free(p);
}

static int same_mapping(const void *ctx, uint64_t id)
{
	const struct map_key *k = ctx;
	const struct mapping *a = &k->p->mappings.v[id - 1], *b = k->m;
	return a->start == b->start && a->limit == b->limit && a->offset == b->offset &&
	       a->filename == b->filename && a->build_id == b->build_id;
}

uint64_t pp_profile_mapping(struct pp_profile *p, const struct pp_mapping *m)
{
	struct mapping e = { m->start, m->limit, m->offset, intern(p, m->filename),
			     intern(p, m->build_id), m->symbolized };
	if (e.filename < 0 || e.build_id < 0 || index_reserve(&p->mapping_ix))
		return 0;
	struct map_key k = { p, &e };
	uint64_t h = mix(mix(mix(m->start, m->limit), m->offset), (uint64_t)e.filename);
	size_t slot;
	uint64_t id = index_find(&p->mapping_ix, h, same_mapping, &k, &slot);
	if (id) {
		p->mappings.v[id - 1].symbolized |= m->symbolized;
		return id;
	}
	if (RESERVE(p->mappings))
		return 0;
	p->mappings.v[p->mappings.n++] = e;
	index_put(&p->mapping_ix, slot, h, p->mappings.n);
	return p->mappings.n;
}

void pp_profile_mapping_symbolized(struct pp_profile *p, uint64_t mapping_id)
{
	if (mapping_id && mapping_id <= p->mappings.n)
		p->mappings.v[mapping_id - 1].symbolized = 1;
}

static int same_function(const void *ctx, uint64_t id)
{
	const struct fn_key *k = ctx;
	return memcmp(&k->p->functions.v[id - 1], k->f, sizeof *k->f) == 0;
}

static uint64_t function_id(struct pp_profile *p, const struct pp_line *l)
{
	struct function f = { intern(p, l->name ? l->name : "??"),
			      intern(p, l->system_name ? l->system_name : l->name ? l->name : "??"),
			      intern(p, l->filename), l->start_line };
	if (f.name < 0 || f.system_name < 0 || f.filename < 0 || index_reserve(&p->function_ix))
		return 0;
	struct fn_key k = { p, &f };
	uint64_t h = mix(mix(mix((uint64_t)f.name, (uint64_t)f.system_name), (uint64_t)f.filename),
			 (uint64_t)f.start_line);
	size_t slot;
	uint64_t id = index_find(&p->function_ix, h, same_function, &k, &slot);
	if (id)
		return id;
	if (RESERVE(p->functions))
		return 0;
	p->functions.v[p->functions.n++] = f;
	index_put(&p->function_ix, slot, h, p->functions.n);
	return p->functions.n;
}

static int same_location(const void *ctx, uint64_t id)
{
	const struct loc_key *k = ctx;
	const struct location *l = &k->p->locations.v[id - 1];
	return l->scope == k->scope && l->mapping_id == k->mapping_id && l->address == k->address;
}

uint64_t pp_profile_location(struct pp_profile *p, uint64_t mapping_id, uint64_t address,
			     const struct pp_line *lines, size_t n_lines)
{
	return pp_profile_location_scoped(p, 0, mapping_id, address, lines, n_lines);
}

uint64_t pp_profile_location_scoped(struct pp_profile *p, uint64_t scope, uint64_t mapping_id,
				    uint64_t address, const struct pp_line *lines, size_t n_lines)
{
	struct loc_key k = { p, scope, mapping_id, address };
	uint64_t h = mix(mix(mapping_id, address), scope);
	size_t slot;
	if (index_reserve(&p->location_ix))
		return 0;
	uint64_t id = index_find(&p->location_ix, h, same_location, &k, &slot);
	if (id)
		return id;
	struct location loc = { scope, mapping_id, address, NULL, n_lines, 0 };
	if (!n_lines) {
		/* As go tool pprof names an unsymbolized frame: "[libc.so.6]". */
		char name[300];
		const char *file = mapping_id && mapping_id <= p->mappings.n
					   ? p->strings.v[p->mappings.v[mapping_id - 1].filename] : "";
		const char *base = strrchr(file, '/');
		if (*file)
			snprintf(name, sizeof name, "[%.280s]", base ? base + 1 : file);
		else
			snprintf(name, sizeof name, "0x%llx", (unsigned long long)address);
		if ((loc.fallback = intern(p, name)) < 0)
			return 0;
	}
	if (n_lines && !(loc.lines = calloc(n_lines, sizeof *loc.lines)))
		return 0;
	for (size_t i = 0; i < n_lines; i++) {
		loc.lines[i].function_id = function_id(p, &lines[i]);
		loc.lines[i].line = lines[i].line;
		if (!loc.lines[i].function_id) {
			free(loc.lines);
			return 0;
		}
	}
	if (RESERVE(p->locations)) {
		free(loc.lines);
		return 0;
	}
	p->locations.v[p->locations.n++] = loc;
	index_put(&p->location_ix, slot, h, p->locations.n);
	return p->locations.n;
}

static int same_sample(const void *ctx, uint64_t id)
{
	const struct sample_key *k = ctx;
	const struct sample *s = &k->p->samples.v[id - 1];
	return s->n == k->n && s->n_labels == k->n_labels &&
	       (!k->n || memcmp(s->locations, k->locations, k->n * sizeof *k->locations) == 0) &&
	       (!k->n_labels || memcmp(s->labels, k->labels, k->n_labels * sizeof *k->labels) == 0);
}

/* A sample's key (its locations and interned labels) hashed. */
static uint64_t sample_hash(const uint64_t *locations, size_t n, const struct label *lab, size_t n_labels)
{
	uint64_t h = mix(n, n_labels);
	for (size_t i = 0; i < n_labels; i++)
		h = mix(mix(mix(h, (uint64_t)lab[i].key), (uint64_t)lab[i].str), (uint64_t)lab[i].num);
	for (size_t i = 0; i < n; i++)
		h = mix(h, locations[i]);
	return h;
}

int pp_profile_add(struct pp_profile *p, const uint64_t *locations, size_t n,
		   const int64_t *values, const struct pp_label *labels, size_t n_labels)
{
	struct label lab[PP_MAX_LABELS];
	if (n_labels > PP_MAX_LABELS)
		return -1;
	for (size_t i = 0; i < n_labels; i++) {
		lab[i] = (struct label){ intern(p, labels[i].key), labels[i].str ? intern(p, labels[i].str) : 0,
					 labels[i].str ? 0 : labels[i].num,
					 labels[i].num_unit ? intern(p, labels[i].num_unit) : 0 };
		if (lab[i].key < 0 || lab[i].str < 0 || lab[i].num_unit < 0)
			return -1;
	}
	uint64_t h = sample_hash(locations, n, lab, n_labels);
	struct sample_key k = { p, locations, n, lab, n_labels };
	size_t slot;
	if (index_reserve(&p->sample_ix))
		return -1;
	uint64_t id = index_find(&p->sample_ix, h, same_sample, &k, &slot);
	if (!id) {
		struct sample s = { calloc(n ? n : 1, sizeof *locations), n, { 0 },
				    calloc(n_labels ? n_labels : 1, sizeof *lab), n_labels };
		if (!s.locations || !s.labels || RESERVE(p->samples)) {
			free(s.locations);
			free(s.labels);
			return -1;
		}
		if (n)
			memcpy(s.locations, locations, n * sizeof *locations);
		if (n_labels)
			memcpy(s.labels, lab, n_labels * sizeof *lab);
		p->samples.v[p->samples.n++] = s;
		index_put(&p->sample_ix, slot, h, p->samples.n);
		id = p->samples.n;
	}
	for (size_t i = 0; i < p->spec.n_sample_types; i++) {
		int64_t *v = &p->samples.v[id - 1].values[i];
		if (__builtin_add_overflow(*v, values[i], v))
			*v = values[i] > 0 ? INT64_MAX : INT64_MIN;     /* saturate */
	}
	return 0;
}

/* ---- merging the profile of another process ------------------------------ */

/* src's string at index ix, NULL for "" (pp_line and pp_mapping's unset). */
static const char *src_str(const struct pp_profile *src, int64_t ix)
{
	return ix > 0 ? src->strings.v[ix] : NULL;
}

/* src's location id's counterpart in p; 0 when out of memory.  map holds
 * p's id of each src mapping. */
static uint64_t merge_location(struct pp_profile *p, const struct pp_profile *src, uint64_t id,
			       const uint64_t *map, uint64_t scope)
{
	const struct location *l = &src->locations.v[id - 1];
	struct pp_line stack_lines[16], *lines = stack_lines;
	if (l->n_lines > 16 && !(lines = calloc(l->n_lines, sizeof *lines)))
		return 0;
	for (size_t i = 0; i < l->n_lines; i++) {
		const struct function *f = &src->functions.v[l->lines[i].function_id - 1];
		lines[i] = (struct pp_line){ src_str(src, f->name), src_str(src, f->system_name),
					     src_str(src, f->filename), l->lines[i].line, f->start_line };
	}
	uint64_t mapping = l->mapping_id ? map[l->mapping_id - 1] : 0;
	uint64_t r = pp_profile_location_scoped(p, mapping ? 0 : scope, mapping, l->address, lines,
						l->n_lines);
	if (lines != stack_lines)
		free(lines);
	return r;
}

/* src's mappings into p: their ids in p, in map (src->mappings.n). */
static int merge_mappings(struct pp_profile *p, const struct pp_profile *src, uint64_t *map)
{
	for (size_t i = 0; i < src->mappings.n; i++) {
		const struct mapping *m = &src->mappings.v[i];
		struct pp_mapping e = { m->start, m->limit, m->offset, src_str(src, m->filename),
					src_str(src, m->build_id), m->symbolized };
		if (!(map[i] = pp_profile_mapping(p, &e)))
			return -1;
	}
	return 0;
}

/* Sample s of src with its labels as pp_labels, then the extra ones. */
static size_t merge_labels(const struct pp_profile *src, const struct sample *s, const struct pp_label *extra,
			   size_t n_extra, struct pp_label *out)
{
	size_t n = 0;
	for (size_t i = 0; i < s->n_labels; i++, n++) {
		const struct label *l = &s->labels[i];
		out[n] = (struct pp_label){ src->strings.v[l->key], l->str ? src->strings.v[l->str] : NULL,
					    l->num, src_str(src, l->num_unit) };
	}
	for (size_t i = 0; i < n_extra; i++)
		out[n++] = extra[i];
	return n;
}

int pp_profile_merge(struct pp_profile *p, const struct pp_profile *src, uint64_t scope,
		     const struct pp_label *extra, size_t n_extra)
{
	uint64_t *map = calloc(src->mappings.n + 1, sizeof *map);
	uint64_t *loc = calloc(src->locations.n + 1, sizeof *loc);
	uint64_t *locs = NULL;
	size_t cap = 0;
	int r = -1;
	if (!map || !loc || merge_mappings(p, src, map))
		goto out;
	for (size_t i = 0; i < src->samples.n; i++) {
		const struct sample *s = &src->samples.v[i];
		struct pp_label labels[PP_MAX_LABELS];
		if (s->n_labels + n_extra > PP_MAX_LABELS)
			goto out;
		if (s->n > cap) {
			uint64_t *v = realloc(locs, s->n * sizeof *v);
			if (!v)
				goto out;
			locs = v;
			cap = s->n;
		}
		for (size_t j = 0; j < s->n; j++) {
			uint64_t id = s->locations[j];
			if (!loc[id - 1] && !(loc[id - 1] = merge_location(p, src, id, map, scope)))
				goto out;
			locs[j] = loc[id - 1];
		}
		size_t nl = merge_labels(src, s, extra, n_extra, labels);
		if (pp_profile_add(p, locs, s->n, s->values, labels, nl))
			goto out;
	}
	r = 0;
out:
	free(map);
	free(loc);
	free(locs);
	return r;
}

/* ---- a saved state, and the difference from it ---------------------------- */

/* The copy holds only the samples (and their index): their location and
 * label ids are p's, which stay valid as p grows (ids are never reused,
 * pp_profile_clear_samples keeps them), so a later state of p is matched
 * against it by ids alone. */
struct pp_profile *pp_profile_save(const struct pp_profile *p)
{
	struct pp_profile *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->spec = p->spec;
	c->samples.v = calloc(p->samples.n ? p->samples.n : 1, sizeof *c->samples.v);
	c->sample_ix.slots = calloc(p->sample_ix.cap ? p->sample_ix.cap : 1, sizeof *c->sample_ix.slots);
	if (!c->samples.v || !c->sample_ix.slots) {
		pp_profile_free(c);
		return NULL;
	}
	c->samples.cap = p->samples.n;
	for (size_t i = 0; i < p->samples.n; i++) {
		const struct sample *from = &p->samples.v[i];
		struct sample *to = &c->samples.v[i];
		*to = (struct sample){ calloc(from->n ? from->n : 1, sizeof *from->locations), from->n, { 0 },
				       calloc(from->n_labels ? from->n_labels : 1, sizeof *from->labels),
				       from->n_labels };
		c->samples.n = i + 1;
		if (!to->locations || !to->labels) {
			pp_profile_free(c);
			return NULL;
		}
		memcpy(to->values, from->values, sizeof to->values);
		if (from->n)
			memcpy(to->locations, from->locations, from->n * sizeof *from->locations);
		if (from->n_labels)
			memcpy(to->labels, from->labels, from->n_labels * sizeof *from->labels);
	}
	if (p->sample_ix.cap)            /* memcpy from NULL is undefined, even of 0 bytes */
		memcpy(c->sample_ix.slots, p->sample_ix.slots, p->sample_ix.cap * sizeof *p->sample_ix.slots);
	c->sample_ix.cap = p->sample_ix.cap;
	c->sample_ix.n = p->sample_ix.n;
	return c;
}

/* Sample s of p minus its match in base (0 where it has none), into v;
 * whether any value is nonzero. */
static int sample_delta(const struct pp_profile *p, const struct sample *s, const struct pp_profile *base,
			int64_t *v)
{
	size_t nv = p->spec.n_sample_types, slot;
	const struct sample *b = NULL;
	if (base->sample_ix.cap) {
		struct sample_key k = { base, s->locations, s->n, s->labels, s->n_labels };
		uint64_t id = index_find((struct index *)&base->sample_ix,
					 sample_hash(s->locations, s->n, s->labels, s->n_labels), same_sample, &k,
					 &slot);
		b = id ? &base->samples.v[id - 1] : NULL;
	}
	int nonzero = 0;
	for (size_t i = 0; i < nv; i++) {
		if (__builtin_sub_overflow(s->values[i], b ? b->values[i] : 0, &v[i]))
			v[i] = s->values[i] > 0 ? INT64_MAX : INT64_MIN;
		nonzero |= v[i] != 0;
	}
	return nonzero;
}

size_t pp_profile_count(const struct pp_profile *p, char what)
{
	switch (what) {
	case 's': return p->samples.n;
	case 'l': return p->locations.n;
	case 'f': return p->functions.n;
	case 'm': return p->mappings.n;
	case 'S': return p->strings.n;
	}
	return 0;
}

size_t pp_profile_sample(const struct pp_profile *p, size_t i, const uint64_t **locations,
			 const int64_t **values)
{
	if (i >= p->samples.n) {
		*locations = NULL;
		*values = NULL;
		return 0;
	}
	*locations = p->samples.v[i].locations;
	*values = p->samples.v[i].values;
	return p->samples.v[i].n;
}

size_t pp_profile_location_depth(const struct pp_profile *p, uint64_t id)
{
	if (id == 0 || id > p->locations.n)
		return 0;
	const struct location *l = &p->locations.v[id - 1];
	return l->n_lines ? l->n_lines : 1;
}

size_t pp_profile_location_names(const struct pp_profile *p, uint64_t id, const char **names,
				 size_t max)
{
	if (id == 0 || id > p->locations.n)
		return 0;
	const struct location *l = &p->locations.v[id - 1];
	if (!l->n_lines && max) {
		names[0] = p->strings.v[l->fallback];
		return 1;
	}
	size_t n = l->n_lines < max ? l->n_lines : max;
	for (size_t i = 0; i < n; i++)
		names[i] = p->strings.v[p->functions.v[l->lines[i].function_id - 1].name];
	return n;
}

size_t pp_profile_location_lines(const struct pp_profile *p, uint64_t id, uint64_t *address,
				 struct pp_line *lines, size_t max)
{
	if (id == 0 || id > p->locations.n)
		return 0;
	const struct location *l = &p->locations.v[id - 1];
	*address = l->address;
	for (size_t i = 0; i < l->n_lines && i < max; i++) {
		const struct function *f = &p->functions.v[l->lines[i].function_id - 1];
		/* String 0 is "": unknown. */
		lines[i] = (struct pp_line){ f->name ? p->strings.v[f->name] : NULL,
					     f->system_name ? p->strings.v[f->system_name] : NULL,
					     f->filename ? p->strings.v[f->filename] : NULL, l->lines[i].line,
					     f->start_line };
	}
	return l->n_lines;
}

int64_t pp_profile_period(const struct pp_profile *p)
{
	return p->spec.period;
}

size_t pp_profile_n_values(const struct pp_profile *p)
{
	return p->spec.n_sample_types;
}

size_t pp_profile_default_value(const struct pp_profile *p)
{
	size_t n = p->spec.n_sample_types;
	for (size_t i = 0; p->default_type_ix && i < n; i++)
		if (p->sample_type_ix[i][0] == p->default_type_ix)
			return i;
	return n ? n - 1 : 0;
}

const char *pp_profile_value_unit(const struct pp_profile *p, size_t i)
{
	if (i >= p->spec.n_sample_types)
		return "";
	int64_t ix = p->sample_type_ix[i][1];
	return ix >= 0 && (size_t)ix < p->strings.n ? p->strings.v[ix] : "";
}

const char *pp_profile_value_type(const struct pp_profile *p, size_t i)
{
	if (i >= p->spec.n_sample_types)
		return "";
	int64_t ix = p->sample_type_ix[i][0];
	return ix >= 0 && (size_t)ix < p->strings.n ? p->strings.v[ix] : "";
}

size_t pp_profile_sample_labels(const struct pp_profile *p, size_t i, struct pp_label *labels,
				size_t max)
{
	if (i >= p->samples.n)
		return 0;
	const struct sample *s = &p->samples.v[i];
	for (size_t j = 0; j < s->n_labels && j < max; j++) {
		const struct label *l = &s->labels[j];
		/* str 0 is "": a numeric label (pp_profile_add stores it so). */
		labels[j] = (struct pp_label){ p->strings.v[l->key], l->str ? p->strings.v[l->str] : NULL,
					       l->num, l->num_unit ? p->strings.v[l->num_unit] : NULL };
	}
	return s->n_labels;
}

/* ---- writing: protobuf-c messages pointing into the tables, then gzip ---- */

typedef Perftools__Profiles__Profile PbProfile;
typedef Perftools__Profiles__ValueType PbValueType;
typedef Perftools__Profiles__Sample PbSample;
typedef Perftools__Profiles__Label PbLabel;
typedef Perftools__Profiles__Mapping PbMapping;
typedef Perftools__Profiles__Location PbLocation;
typedef Perftools__Profiles__Line PbLine;
typedef Perftools__Profiles__Function PbFunction;

/* Everything allocated for one write, freed together. */
struct pb {
	PbProfile prof;
	PbValueType st[PP_MAX_VALUES], pt, *stp[PP_MAX_VALUES];
	PbSample *samples, **samplep;
	PbLabel *labels, **labelp;
	PbMapping *maps, **mapp;
	PbLocation *locs, **locp;
	PbLine *lines, **linep;
	PbFunction *funcs, **funcp;
};

static void pb_free(struct pb *b)
{
	free(b->samples);
	free(b->samplep);
	free(b->labels);
	free(b->labelp);
	free(b->maps);
	free(b->mapp);
	free(b->locs);
	free(b->locp);
	free(b->lines);
	free(b->linep);
	free(b->funcs);
	free(b->funcp);
}

static int pb_alloc(struct pb *b, const struct pp_profile *p, size_t n_labels, size_t n_lines)
{
#define ALLOC(field, count) ((b->field = calloc((count) ? (count) : 1, sizeof *b->field)) != NULL)
	return ALLOC(samples, p->samples.n) && ALLOC(samplep, p->samples.n) &&
	       ALLOC(labels, n_labels) && ALLOC(labelp, n_labels) &&
	       ALLOC(maps, p->mappings.n) && ALLOC(mapp, p->mappings.n) &&
	       ALLOC(locs, p->locations.n) && ALLOC(locp, p->locations.n) &&
	       ALLOC(lines, n_lines) && ALLOC(linep, n_lines) &&
	       ALLOC(funcs, p->functions.n) && ALLOC(funcp, p->functions.n) ? 0 : -1;
#undef ALLOC
}

/* The samples, or with base their difference from it (dvalues: room for
 * every sample's values); samples whose values are all 0 are left out,
 * as go tool pprof's merge leaves them.  Returns how many. */
static size_t pb_fill_samples(struct pb *b, struct pp_profile *p, const struct pp_profile *base,
			      int64_t *dvalues)
{
	size_t nl = 0, out = 0;
	for (size_t i = 0; i < p->samples.n; i++) {
		struct sample *s = &p->samples.v[i];
		int64_t *v = s->values;
		if (base) {
			v = dvalues + i * PP_MAX_VALUES;
			if (!sample_delta(p, s, base, v))
				continue;
		}
		PbSample *m = &b->samples[out];
		perftools__profiles__sample__init(m);
		m->n_location_id = s->n;
		m->location_id = s->locations;
		m->n_value = p->spec.n_sample_types;
		m->value = v;
		m->label = &b->labelp[nl];
		for (size_t j = 0; j < s->n_labels; j++, nl++) {
			PbLabel *l = &b->labels[nl];
			perftools__profiles__label__init(l);
			l->key = s->labels[j].key;
			l->str = s->labels[j].str;
			l->num = s->labels[j].num;
			l->num_unit = s->labels[j].num_unit;
			b->labelp[nl] = l;
		}
		m->n_label = s->n_labels;
		b->samplep[out++] = m;
	}
	return out;
}

static void pb_fill_tables(struct pb *b, struct pp_profile *p)
{
	for (size_t i = 0; i < p->mappings.n; i++) {
		struct mapping *e = &p->mappings.v[i];
		PbMapping *m = &b->maps[i];
		perftools__profiles__mapping__init(m);
		m->id = i + 1;
		m->memory_start = e->start;
		m->memory_limit = e->limit;
		m->file_offset = e->offset;
		m->filename = e->filename;
		m->build_id = e->build_id;
		/* Without these go tool pprof re-symbolizes on its own, with a
		 * weaker reader that drops inline chains (docs/FORMATS.md §1). */
		m->has_functions = m->has_filenames = m->has_line_numbers =
			m->has_inline_frames = e->symbolized != 0;
		b->mapp[i] = m;
	}
	size_t nl = 0;
	for (size_t i = 0; i < p->locations.n; i++) {
		struct location *e = &p->locations.v[i];
		PbLocation *m = &b->locs[i];
		perftools__profiles__location__init(m);
		m->id = i + 1;
		m->mapping_id = e->mapping_id;
		m->address = e->address;
		m->line = &b->linep[nl];
		m->n_line = e->n_lines;
		for (size_t j = 0; j < e->n_lines; j++, nl++) {
			perftools__profiles__line__init(&b->lines[nl]);
			b->lines[nl].function_id = e->lines[j].function_id;
			b->lines[nl].line = e->lines[j].line;
			b->linep[nl] = &b->lines[nl];
		}
		b->locp[i] = m;
	}
	for (size_t i = 0; i < p->functions.n; i++) {
		struct function *e = &p->functions.v[i];
		PbFunction *m = &b->funcs[i];
		perftools__profiles__function__init(m);
		m->id = i + 1;
		m->name = e->name;
		m->system_name = e->system_name;
		m->filename = e->filename;
		m->start_line = e->start_line;
		b->funcp[i] = m;
	}
}

static int gzip_write(const uint8_t *data, size_t len, FILE *out)
{
	z_stream z;
	memset(&z, 0, sizeof z);
	/* windowBits 15 + 16: a gzip wrapper, which is what pprof readers expect. */
	if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return -1;
	unsigned char buf[65536];
	z.next_in = (Bytef *)data;
	z.avail_in = (uInt)len;
	int r;
	do {
		z.next_out = buf;
		z.avail_out = sizeof buf;
		r = deflate(&z, Z_FINISH);
		size_t have = sizeof buf - z.avail_out;
		if (r == Z_STREAM_ERROR || fwrite(buf, 1, have, out) != have) {
			deflateEnd(&z);
			return -1;
		}
	} while (r != Z_STREAM_END);
	deflateEnd(&z);
	return ferror(out) ? -1 : 0;
}

static int write_profile(struct pp_profile *p, const struct pp_profile *base, int64_t time_nanos,
			 int64_t duration_nanos, FILE *out)
{
	struct pb b;
	int64_t *dvalues = NULL;
	memset(&b, 0, sizeof b);
	if (base && !(dvalues = calloc(p->samples.n ? p->samples.n * PP_MAX_VALUES : 1, sizeof *dvalues)))
		return -1;
	size_t n_labels = 0, n_lines = 0;
	for (size_t i = 0; i < p->samples.n; i++)
		n_labels += p->samples.v[i].n_labels;
	for (size_t i = 0; i < p->locations.n; i++)
		n_lines += p->locations.v[i].n_lines;
	if (pb_alloc(&b, p, n_labels, n_lines)) {
		pb_free(&b);
		free(dvalues);
		return -1;
	}
	PbProfile *m = &b.prof;
	perftools__profiles__profile__init(m);
	for (size_t i = 0; i < p->spec.n_sample_types; i++) {
		perftools__profiles__value_type__init(&b.st[i]);
		b.st[i].type = p->sample_type_ix[i][0];
		b.st[i].unit = p->sample_type_ix[i][1];
		b.stp[i] = &b.st[i];
	}
	m->n_sample_type = p->spec.n_sample_types;
	m->sample_type = b.stp;
	perftools__profiles__value_type__init(&b.pt);
	b.pt.type = p->period_type_ix[0];
	b.pt.unit = p->period_type_ix[1];
	m->period_type = &b.pt;
	m->period = p->spec.period;
	m->default_sample_type = p->default_type_ix;
	if (p->comment_ix) {
		m->n_comment = 1;
		m->comment = &p->comment_ix;
	}
	m->time_nanos = time_nanos;
	m->duration_nanos = duration_nanos;
	m->n_sample = pb_fill_samples(&b, p, base, dvalues);
	pb_fill_tables(&b, p);
	m->sample = b.samplep;
	m->n_mapping = p->mappings.n;
	m->mapping = b.mapp;
	m->n_location = p->locations.n;
	m->location = b.locp;
	m->n_function = p->functions.n;
	m->function = b.funcp;
	m->n_string_table = p->strings.n;
	m->string_table = p->strings.v;

	size_t len = perftools__profiles__profile__get_packed_size(m);
	uint8_t *buf = malloc(len ? len : 1);
	int r = -1;
	if (buf) {
		perftools__profiles__profile__pack(m, buf);
		r = gzip_write(buf, len, out);
	}
	free(buf);
	pb_free(&b);
	free(dvalues);
	return r;
}

int pp_profile_write(struct pp_profile *p, int64_t duration_nanos, FILE *out)
{
	return write_profile(p, NULL, p->spec.time_nanos, duration_nanos, out);
}

int pp_profile_write_delta(struct pp_profile *p, const struct pp_profile *base, int64_t time_nanos,
			   int64_t duration_nanos, FILE *out)
{
	return write_profile(p, base, time_nanos, duration_nanos, out);
}
