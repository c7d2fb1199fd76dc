/* read.c — reading a saved pprof profile back into a builder (profile.h),
 * so that the text reports (report.h) can be made from a file.
 *
 * The bytes are untrusted.  They are gunzip'ed when they start with the
 * gzip magic (with a cap on the size), unpacked with protobuf-c, and every
 * string index, id and id reference is checked before anything is built.
 * The profile is then rebuilt in file order with the builder's own calls:
 * mappings, locations with their inline chains, samples with their labels.
 * What the builder has no room for (duration, comments, drop/keep frames,
 * default sample type, line columns, is_folded) is dropped.
 */
#include "profile.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "profile.pb-c.h"

/* Neither the file nor its uncompressed contents may be larger. */
#define MAX_BYTES ((size_t)1 << 30)

typedef Perftools__Profiles__Profile PbProfile;
typedef Perftools__Profiles__Sample PbSample;
typedef Perftools__Profiles__Label PbLabel;
typedef Perftools__Profiles__Location PbLocation;
typedef Perftools__Profiles__Function PbFunction;

/* A file id and the index, in the message's array, of what carries it. */
struct id_ix {
	uint64_t id;
	size_t ix;
};

struct reader {
	const PbProfile *pb;
	char *err;
	size_t errlen;
	struct id_ix *mapping_ix, *location_ix, *function_ix;   /* sorted by id */
	uint64_t *mapping_ids;          /* per file mapping: the builder's id */
	uint64_t *location_ids;         /* per file location: the builder's id */
	size_t *location_owner;         /* per builder location: the file location */
};

static void verror(char *err, size_t errlen, const char *fmt, va_list ap)
{
	if (err && errlen)
		vsnprintf(err, errlen, fmt, ap);
}

__attribute__((format(printf, 3, 4)))
static void set_error(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	verror(err, errlen, fmt, ap);
	va_end(ap);
}

/* Sets the reader's error; returns -1. */
__attribute__((format(printf, 2, 3)))
static int fail(struct reader *r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	verror(r->err, r->errlen, fmt, ap);
	va_end(ap);
	return -1;
}

/* ---- bytes: read them all, gunzip when gzip'ed --------------------------- */

static uint8_t *read_all(FILE *in, size_t *len, char *err, size_t errlen)
{
	/* The buffer never grows past MAX_BYTES + 1: one byte more says "too big". */
	size_t cap = 65536, n = 0;
	uint8_t *buf = malloc(cap), *nb;
	const char *why = NULL;
	while (buf && !why) {
		n += fread(buf + n, 1, cap - n, in);
		size_t nc = cap * 2 < MAX_BYTES + 1 ? cap * 2 : MAX_BYTES + 1;
		if (n > MAX_BYTES)
			why = "file larger than 1 GiB";
		else if (n < cap)
			break;          /* end of file, or an error */
		else if (!(nb = realloc(buf, nc)))
			why = "out of memory";
		else
			buf = nb, cap = nc;
	}
	if (!why && (!buf || ferror(in)))
		why = buf ? "read error" : "out of memory";
	if (why) {
		set_error(err, errlen, "%s", why);
		free(buf);
		return NULL;
	}
	*len = n;
	return buf;
}

static int is_gzip(const uint8_t *p, size_t len)
{
	return len >= 2 && p[0] == 0x1f && p[1] == 0x8b;
}

/* Makes room for more output: doubles the buffer, up to MAX_BYTES. */
static int grow_output(uint8_t **out, size_t *cap, char *err, size_t errlen)
{
	if (*cap >= MAX_BYTES) {
		set_error(err, errlen, "uncompressed profile larger than 1 GiB");
		return -1;
	}
	size_t nc = *cap * 2 < MAX_BYTES ? *cap * 2 : MAX_BYTES;
	uint8_t *nb = realloc(*out, nc);
	if (!nb) {
		set_error(err, errlen, "out of memory");
		return -1;
	}
	*out = nb;
	*cap = nc;
	return 0;
}

/* One inflate step's outcome: 1 done, 0 go on, -1 error (err set). */
static int inflate_step(z_stream *z, char *err, size_t errlen)
{
	int rc = inflate(z, Z_NO_FLUSH);
	if (rc == Z_STREAM_END) {
		if (z->avail_in == 0)
			return 1;
		/* Another gzip member follows: read on, as gzip and Go do. */
		if (!is_gzip(z->next_in, z->avail_in)) {
			set_error(err, errlen, "garbage after the gzip data");
			return -1;
		}
		if (inflateReset(z) != Z_OK) {
			set_error(err, errlen, "inflateReset failed");
			return -1;
		}
		return 0;
	}
	if (rc != Z_OK && rc != Z_BUF_ERROR) {
		set_error(err, errlen, "corrupt gzip data: %s", z->msg ? z->msg : "inflate failed");
		return -1;
	}
	if (z->avail_in == 0 && z->avail_out != 0) {
		set_error(err, errlen, "truncated gzip data");
		return -1;
	}
	return 0;
}

/* Inflates gzip data, one member or several; NULL and err on failure. */
static uint8_t *gunzip(const uint8_t *in, size_t len, size_t *out_len, char *err, size_t errlen)
{
	z_stream z;
	memset(&z, 0, sizeof z);
	size_t cap = len < MAX_BYTES / 4 ? len * 4 + 1024 : MAX_BYTES;
	uint8_t *out = malloc(cap);
	if (!out || inflateInit2(&z, 15 + 32) != Z_OK) {
		set_error(err, errlen, "out of memory");
		free(out);
		return NULL;
	}
	z.next_in = (Bytef *)in;
	z.avail_in = (uInt)len;         /* len <= MAX_BYTES fits */
	size_t n = 0;
	int r = 0;
	while (r == 0) {
		if (n == cap && grow_output(&out, &cap, err, errlen)) {
			r = -1;
			break;
		}
		z.next_out = out + n;
		z.avail_out = (uInt)(cap - n);
		r = inflate_step(&z, err, errlen);
		n = cap - z.avail_out;
	}
	inflateEnd(&z);
	if (r < 0) {
		free(out);
		return NULL;
	}
	*out_len = n;
	return out;
}

/* The profile's bytes, uncompressed; NULL and err on failure. */
static uint8_t *read_bytes(FILE *in, size_t *len, char *err, size_t errlen)
{
	uint8_t *raw = read_all(in, len, err, errlen);
	if (!raw)
		return NULL;
	if (*len == 0) {
		set_error(err, errlen, "empty file");
		free(raw);
		return NULL;
	}
	if (!is_gzip(raw, *len))
		return raw;             /* Go reads an uncompressed profile too */
	uint8_t *data = gunzip(raw, *len, len, err, errlen);
	free(raw);
	return data;
}

/* ---- checks: string indices and ids ------------------------------------- */

static int check_str(struct reader *r, int64_t ix, const char *what)
{
	if (ix < 0 || (uint64_t)ix >= r->pb->n_string_table || !r->pb->string_table[ix])
		return fail(r, "%s: string index %" PRId64 " out of range (%zu strings)", what, ix,
			    r->pb->n_string_table);
	return 0;
}

static const char *str(const struct reader *r, int64_t ix)
{
	return r->pb->string_table[ix];
}

static int check_profile_strings(struct reader *r)
{
	const PbProfile *pb = r->pb;
	if (pb->n_string_table == 0 || !pb->string_table[0] || pb->string_table[0][0])
		return fail(r, "string_table[0] is not \"\"");
	int bad = 0;
	for (size_t i = 0; i < pb->n_sample_type && !bad; i++)
		bad = check_str(r, pb->sample_type[i]->type, "sample_type") ||
		      check_str(r, pb->sample_type[i]->unit, "sample_type");
	if (pb->period_type && !bad)
		bad = check_str(r, pb->period_type->type, "period_type") ||
		      check_str(r, pb->period_type->unit, "period_type");
	for (size_t i = 0; i < pb->n_comment && !bad; i++)
		bad = check_str(r, pb->comment[i], "comment");
	return bad || check_str(r, pb->drop_frames, "drop_frames") ||
	       check_str(r, pb->keep_frames, "keep_frames") ||
	       check_str(r, pb->default_sample_type, "default_sample_type") ||
	       check_str(r, pb->doc_url, "doc_url") ? -1 : 0;
}

static int check_table_strings(struct reader *r)
{
	const PbProfile *pb = r->pb;
	int bad = 0;
	for (size_t i = 0; i < pb->n_mapping && !bad; i++)
		bad = check_str(r, pb->mapping[i]->filename, "mapping filename") ||
		      check_str(r, pb->mapping[i]->build_id, "mapping build_id");
	for (size_t i = 0; i < pb->n_function && !bad; i++)
		bad = check_str(r, pb->function[i]->name, "function name") ||
		      check_str(r, pb->function[i]->system_name, "function system_name") ||
		      check_str(r, pb->function[i]->filename, "function filename");
	for (size_t i = 0; i < pb->n_sample && !bad; i++) {
		const PbSample *s = pb->sample[i];
		for (size_t j = 0; j < s->n_label && !bad; j++)
			bad = check_str(r, s->label[j]->key, "label key") ||
			      check_str(r, s->label[j]->str, "label str") ||
			      check_str(r, s->label[j]->num_unit, "label num_unit");
	}
	return bad ? -1 : 0;
}

static int cmp_id(const void *a, const void *b)
{
	const struct id_ix *x = a, *y = b;
	return x->id < y->id ? -1 : x->id > y->id;
}

/* Sorts the (id, index) pairs of one table; ids must be nonzero and unique. */
static int sort_ids(struct reader *r, struct id_ix *v, size_t n, const char *what)
{
	qsort(v, n, sizeof *v, cmp_id);
	for (size_t i = 0; i < n; i++) {
		if (v[i].id == 0)
			return fail(r, "%s with id 0", what);
		if (i && v[i].id == v[i - 1].id)
			return fail(r, "two %ss with id %" PRIu64, what, v[i].id);
	}
	return 0;
}

static int build_id_tables(struct reader *r)
{
	const PbProfile *pb = r->pb;
	for (size_t i = 0; i < pb->n_mapping; i++)
		r->mapping_ix[i] = (struct id_ix){ pb->mapping[i]->id, i };
	for (size_t i = 0; i < pb->n_location; i++)
		r->location_ix[i] = (struct id_ix){ pb->location[i]->id, i };
	for (size_t i = 0; i < pb->n_function; i++)
		r->function_ix[i] = (struct id_ix){ pb->function[i]->id, i };
	return sort_ids(r, r->mapping_ix, pb->n_mapping, "mapping") ||
	       sort_ids(r, r->location_ix, pb->n_location, "location") ||
	       sort_ids(r, r->function_ix, pb->n_function, "function") ? -1 : 0;
}

/* The index of the entry with this id, or -1. */
static ptrdiff_t find_id(const struct id_ix *v, size_t n, uint64_t id)
{
	struct id_ix key = { id, 0 };
	const struct id_ix *e = n ? bsearch(&key, v, n, sizeof *v, cmp_id) : NULL;
	return e ? (ptrdiff_t)e->ix : -1;
}

/* Every value fits, and so does any sum of them the builder or a report
 * may make: the sum of the magnitudes of each column fits in int64. */
static int check_values(struct reader *r)
{
	const PbProfile *pb = r->pb;
	if (pb->n_sample_type > PP_MAX_VALUES)
		return fail(r, "%zu sample types (at most %d supported)", pb->n_sample_type, PP_MAX_VALUES);
	if (pb->n_sample_type == 0 && pb->n_sample)
		return fail(r, "samples but no sample types");
	int64_t total[PP_MAX_VALUES] = { 0 };
	for (size_t i = 0; i < pb->n_sample; i++) {
		const PbSample *s = pb->sample[i];
		if (s->n_value != pb->n_sample_type)
			return fail(r, "sample %zu has %zu values, %zu sample types", i, s->n_value,
				    pb->n_sample_type);
		for (size_t j = 0; j < s->n_value; j++) {
			int64_t v = s->value[j];
			if (v == INT64_MIN || (v < 0 ? -v : v) > INT64_MAX - total[j])
				return fail(r, "sample values too large (their sum overflows)");
			total[j] += v < 0 ? -v : v;
		}
	}
	return 0;
}

/* ---- rebuilding ---------------------------------------------------------- */

static struct pp_profile *new_profile(struct reader *r)
{
	const PbProfile *pb = r->pb;
	struct pp_profile_spec spec;
	memset(&spec, 0, sizeof spec);
	spec.n_sample_types = pb->n_sample_type;
	for (size_t i = 0; i < pb->n_sample_type; i++)
		spec.sample_types[i] = (struct pp_value_type){ str(r, pb->sample_type[i]->type),
							       str(r, pb->sample_type[i]->unit) };
	spec.period_type.type = pb->period_type ? str(r, pb->period_type->type) : "";
	spec.period_type.unit = pb->period_type ? str(r, pb->period_type->unit) : "";
	spec.period = pb->period;
	spec.time_nanos = pb->time_nanos;
	spec.default_sample_type = pb->default_sample_type ? str(r, pb->default_sample_type) : NULL;
	struct pp_profile *p = pp_profile_new(&spec);
	if (!p)
		(void)fail(r, "out of memory");
	return p;
}

static int add_mappings(struct reader *r, struct pp_profile *p)
{
	for (size_t i = 0; i < r->pb->n_mapping; i++) {
		const Perftools__Profiles__Mapping *m = r->pb->mapping[i];
		struct pp_mapping e = { m->memory_start, m->memory_limit, m->file_offset,
					str(r, m->filename), str(r, m->build_id), m->has_functions };
		if (!(r->mapping_ids[i] = pp_profile_mapping(p, &e)))
			return fail(r, "out of memory");
	}
	return 0;
}

/* Location l's Line list as the builder takes it: names looked up through
 * the function table. */
static int location_lines(struct reader *r, const PbLocation *l, struct pp_line *out)
{
	for (size_t j = 0; j < l->n_line; j++) {
		uint64_t fid = l->line[j]->function_id;
		ptrdiff_t f = find_id(r->function_ix, r->pb->n_function, fid);
		if (f < 0)
			return fail(r, "location %" PRIu64 " references missing function %" PRIu64,
				    l->id, fid);
		const PbFunction *fn = r->pb->function[f];
		out[j] = (struct pp_line){ str(r, fn->name), str(r, fn->system_name),
					   str(r, fn->filename), l->line[j]->line, fn->start_line };
	}
	return 0;
}

static int same_text(const char *a, const char *b)
{
	return strcmp(a, b) == 0;
}

/* Whether two file locations carry the same inline chain, by content. */
static int same_lines(struct reader *r, const PbLocation *a, const PbLocation *b)
{
	if (a->n_line != b->n_line)
		return 0;
	for (size_t j = 0; j < a->n_line; j++) {
		const PbFunction *fa = r->pb->function[find_id(r->function_ix, r->pb->n_function,
							       a->line[j]->function_id)];
		const PbFunction *fb = r->pb->function[find_id(r->function_ix, r->pb->n_function,
							       b->line[j]->function_id)];
		if (a->line[j]->line != b->line[j]->line || fa->start_line != fb->start_line ||
		    !same_text(str(r, fa->name), str(r, fb->name)) ||
		    !same_text(str(r, fa->system_name), str(r, fb->system_name)) ||
		    !same_text(str(r, fa->filename), str(r, fb->filename)))
			return 0;
	}
	return 1;
}

/* The builder keeps one location per (mapping, address): a second file
 * location there is fine only when it says the same thing. */
static int check_duplicate(struct reader *r, size_t i, uint64_t id)
{
	const PbLocation *first = r->pb->location[r->location_owner[id - 1]];
	const PbLocation *l = r->pb->location[i];
	if (!same_lines(r, first, l))
		return fail(r, "locations %" PRIu64 " and %" PRIu64 " share mapping and address "
			    "0x%" PRIx64 " but not their lines", first->id, l->id, l->address);
	return 0;
}

static int add_location(struct reader *r, struct pp_profile *p, size_t i, struct pp_line *lines)
{
	const PbLocation *l = r->pb->location[i];
	uint64_t mapping = 0;
	if (l->mapping_id) {
		ptrdiff_t m = find_id(r->mapping_ix, r->pb->n_mapping, l->mapping_id);
		if (m < 0)
			return fail(r, "location %" PRIu64 " references missing mapping %" PRIu64,
				    l->id, l->mapping_id);
		mapping = r->mapping_ids[m];
	}
	if (location_lines(r, l, lines))
		return -1;
	size_t before = pp_profile_count(p, 'l');
	uint64_t id = pp_profile_location(p, mapping, l->address, lines, l->n_line);
	if (!id)
		return fail(r, "out of memory");
	r->location_ids[i] = id;
	if (pp_profile_count(p, 'l') > before) {
		r->location_owner[id - 1] = i;
		return 0;
	}
	return check_duplicate(r, i, id);
}

static int add_locations(struct reader *r, struct pp_profile *p)
{
	size_t most = 0;
	for (size_t i = 0; i < r->pb->n_location; i++)
		if (r->pb->location[i]->n_line > most)
			most = r->pb->location[i]->n_line;
	struct pp_line *lines = malloc((most ? most : 1) * sizeof *lines);
	if (!lines)
		return fail(r, "out of memory");
	int rc = 0;
	for (size_t i = 0; i < r->pb->n_location && !rc; i++)
		rc = add_location(r, p, i, lines);
	free(lines);
	return rc;
}

/* The builder keeps this many labels per sample (profile.c). */
#define MAX_LABELS PP_MAX_LABELS

static int add_sample(struct reader *r, struct pp_profile *p, const PbSample *s, uint64_t *locs)
{
	for (size_t j = 0; j < s->n_location_id; j++) {
		ptrdiff_t l = find_id(r->location_ix, r->pb->n_location, s->location_id[j]);
		if (l < 0)
			return fail(r, "sample references missing location %" PRIu64, s->location_id[j]);
		locs[j] = r->location_ids[l];
	}
	struct pp_label labels[MAX_LABELS];
	size_t n = s->n_label < MAX_LABELS ? s->n_label : MAX_LABELS;
	for (size_t j = 0; j < n; j++) {
		const PbLabel *b = s->label[j];
		/* As Go reads it: a label with a string is a string label. */
		labels[j] = (struct pp_label){ str(r, b->key), b->str ? str(r, b->str) : NULL,
					       b->str ? 0 : b->num, b->num_unit ? str(r, b->num_unit) : NULL };
	}
	int64_t values[PP_MAX_VALUES] = { 0 };
	if (s->n_value)         /* checked: n_value == n_sample_type <= PP_MAX_VALUES */
		memcpy(values, s->value, s->n_value * sizeof *values);
	if (pp_profile_add(p, locs, s->n_location_id, values, labels, n))
		return fail(r, "out of memory");
	return 0;
}

static int add_samples(struct reader *r, struct pp_profile *p)
{
	size_t most = 0;
	for (size_t i = 0; i < r->pb->n_sample; i++)
		if (r->pb->sample[i]->n_location_id > most)
			most = r->pb->sample[i]->n_location_id;
	uint64_t *locs = malloc((most ? most : 1) * sizeof *locs);
	if (!locs)
		return fail(r, "out of memory");
	int rc = 0;
	for (size_t i = 0; i < r->pb->n_sample && !rc; i++)
		rc = add_sample(r, p, r->pb->sample[i], locs);
	free(locs);
	return rc;
}

static int alloc_tables(struct reader *r)
{
	const PbProfile *pb = r->pb;
#define ALLOC(field, count) ((r->field = calloc((count) ? (count) : 1, sizeof *r->field)) != NULL)
	int ok = ALLOC(mapping_ix, pb->n_mapping) && ALLOC(location_ix, pb->n_location) &&
		 ALLOC(function_ix, pb->n_function) && ALLOC(mapping_ids, pb->n_mapping) &&
		 ALLOC(location_ids, pb->n_location) && ALLOC(location_owner, pb->n_location);
#undef ALLOC
	return ok ? 0 : fail(r, "out of memory");
}

static void free_tables(struct reader *r)
{
	free(r->mapping_ix);
	free(r->location_ix);
	free(r->function_ix);
	free(r->mapping_ids);
	free(r->location_ids);
	free(r->location_owner);
}

/* Checks the unpacked message, then rebuilds it; NULL and err on failure. */
static struct pp_profile *rebuild(const PbProfile *pb, char *err, size_t errlen)
{
	struct reader r = { .pb = pb, .err = err, .errlen = errlen };
	struct pp_profile *p = NULL;
	if (check_profile_strings(&r) || check_table_strings(&r) || check_values(&r) ||
	    alloc_tables(&r) || build_id_tables(&r) || !(p = new_profile(&r)) ||
	    add_mappings(&r, p) || add_locations(&r, p) || add_samples(&r, p)) {
		pp_profile_free(p);
		p = NULL;
	}
	free_tables(&r);
	return p;
}

struct pp_profile *pp_profile_read(FILE *in, char *err, size_t errlen)
{
	size_t len = 0;
	uint8_t *data = read_bytes(in, &len, err, errlen);
	if (!data)
		return NULL;
	PbProfile *pb = perftools__profiles__profile__unpack(NULL, len, data);
	free(data);
	if (!pb) {
		set_error(err, errlen, "its bytes do not decode as a pprof protobuf");
		return NULL;
	}
	struct pp_profile *p = rebuild(pb, err, errlen);
	perftools__profiles__profile__free_unpacked(pb, NULL);
	return p;
}
