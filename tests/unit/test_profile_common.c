/* test_profile_common.c — what the test_profile_*.c tests share, #included
 * by each (not a test itself; static inline, so a test may use any part):
 * an example CPU profile built with the builder (profile.h), writing a
 * profile to memory, gunzip'ing it while counting gzip members, decoding
 * it with protobuf-c, capturing the top and folded reports, and small
 * helpers to look things up in a decoded message.
 */
#ifndef PPROFC_TESTS_UNIT_TEST_PROFILE_COMMON_C
#define PPROFC_TESTS_UNIT_TEST_PROFILE_COMMON_C

#include <zlib.h>

#include "check.h"
#include "pprofout/profile.h"
#include "pprofout/report.h"
#include "profile.pb-c.h"

typedef Perftools__Profiles__Profile PbProfile;
typedef Perftools__Profiles__Sample PbSample;
typedef Perftools__Profiles__Label PbLabel;
typedef Perftools__Profiles__Mapping PbMapping;
typedef Perftools__Profiles__Location PbLocation;
typedef Perftools__Profiles__Line PbLine;
typedef Perftools__Profiles__Function PbFunction;
typedef Perftools__Profiles__ValueType PbValueType;

#define LIBC_PATH "/usr/lib/x86_64-linux-gnu/libc.so.6"
#define APP_PATH "/srv/app"
#define EX_TIME 1700000000123456789LL
#define EX_PERIOD 10000000LL
#define EX_DURATION 2500000000LL

static inline struct pp_profile_spec cpu_spec(void)
{
	struct pp_profile_spec s = {
		.sample_types = { { "samples", "count" }, { "cpu", "nanoseconds" } },
		.n_sample_types = 2,
		.period_type = { "cpu", "nanoseconds" },
		.period = EX_PERIOD,
		.time_nanos = EX_TIME,
	};
	return s;
}

/* The example: two mappings, five locations (one an inline chain of two,
 * one with no line at all), four samples over three threads; the first
 * sample is added twice.  ids[] receives the location ids L1..L5. */
struct example_ids {
	uint64_t app, libc, loc[5];
};

static inline struct pp_profile *example_profile(struct example_ids *ids)
{
	struct pp_profile_spec spec = cpu_spec();
	struct pp_profile *p = pp_profile_new(&spec);
	if (!p)
		abort();
	struct pp_mapping app = { 0x555500000000, 0x555500010000, 0x1000, APP_PATH, "a1b2c3d4e5", 1 };
	struct pp_mapping libc = { 0x7f0000000000, 0x7f0000200000, 0x28000, LIBC_PATH, "0011ff", 1 };
	ids->app = pp_profile_mapping(p, &app);
	ids->libc = pp_profile_mapping(p, &libc);
	const struct pp_line lock[] = {
		{ "futex_wait", NULL, "../sysdeps/nptl/futex-internal.h", 146, 140 },
		{ "__lll_lock_wait", NULL, "./nptl/lowlevellock.c", 49, 40 },
	};
	const struct pp_line work[] = { { "ns::work(int)", "_ZN2ns4workEi", "/src/app.cc", 12, 10 } };
	const struct pp_line worker[] = {
		{ "helper", NULL, "/src/app.cc", 30, 28 },
		{ "worker_main", NULL, "/src/app.cc", 40, 38 },
	};
	const struct pp_line mainf[] = { { "main", NULL, "/src/app.cc", 50, 48 } };
	ids->loc[0] = pp_profile_location(p, ids->libc, 0x7f0000001234, lock, 2);
	ids->loc[1] = pp_profile_location(p, ids->app, 0x555500001100, work, 1);
	ids->loc[2] = pp_profile_location(p, ids->app, 0x555500001200, worker, 2);
	ids->loc[3] = pp_profile_location(p, ids->app, 0x555500001300, mainf, 1);
	ids->loc[4] = pp_profile_location(p, ids->libc, 0x7f0000005000, NULL, 0);
	const uint64_t *L = ids->loc;
	const uint64_t s1[] = { L[0], L[2], L[3] }, s2[] = { L[1], L[2], L[3] };
	const uint64_t s3[] = { L[1], L[3] }, s4[] = { L[4], L[3] };
	const struct pp_label w1[] = { { "thread", "worker-1", 0, NULL }, { "tid", NULL, 101, NULL } };
	const struct pp_label w2[] = { { "thread", "worker-2", 0, NULL }, { "tid", NULL, 102, NULL } };
	const struct pp_label mn[] = { { "thread", "app", 0, NULL }, { "tid", NULL, 100, NULL } };
	const int64_t v3[] = { 3, 3 * EX_PERIOD }, v1[] = { 1, EX_PERIOD }, v2[] = { 2, 2 * EX_PERIOD };
	if (pp_profile_add(p, s1, 3, v3, w1, 2) || pp_profile_add(p, s2, 3, v1, w2, 2) ||
	    pp_profile_add(p, s3, 2, v2, mn, 2) || pp_profile_add(p, s1, 3, v1, w1, 2) ||
	    pp_profile_add(p, s4, 2, v1, mn, 2))
		abort();
	return p;
}

/* ---- bytes ----------------------------------------------------------------- */

/* The whole of f from its start; *len its size.  Aborts on failure. */
static inline uint8_t *slurp(FILE *f, size_t *len)
{
	rewind(f);
	size_t cap = 4096, n = 0;
	uint8_t *buf = malloc(cap);
	for (;;) {
		if (!buf)
			abort();
		n += fread(buf + n, 1, cap - n, f);
		if (n < cap)
			break;
		buf = realloc(buf, cap *= 2);
	}
	*len = n;
	return buf;
}

/* A tmpfile holding these bytes, positioned at its start. */
static inline FILE *file_of(const void *data, size_t len)
{
	FILE *f = tmpfile();
	if (!f || (len && fwrite(data, 1, len, f) != len))
		abort();
	rewind(f);
	return f;
}

/* Writes p (duration d) to a tmpfile; returns its bytes, *len their size. */
static inline uint8_t *write_bytes(struct pp_profile *p, int64_t d, size_t *len)
{
	FILE *f = tmpfile();
	if (!f)
		abort();
	int rc = pp_profile_write(p, d, f);
	CHECK_INT_EQ(rc, 0);
	fflush(f);
	uint8_t *b = slurp(f, len);
	fclose(f);
	return b;
}

/* Gunzips data (gzip only); *members receives the number of gzip members.
 * NULL when it is not valid gzip. */
static inline uint8_t *gunzip_members(const uint8_t *data, size_t len, size_t *out_len, int *members)
{
	z_stream z;
	memset(&z, 0, sizeof z);
	if (inflateInit2(&z, 15 + 16) != Z_OK)
		abort();
	size_t cap = 1 << 16, n = 0;
	uint8_t *out = malloc(cap);
	z.next_in = (Bytef *)data;
	z.avail_in = (uInt)len;
	*members = 0;
	int rc = Z_OK;
	while (out && z.avail_in) {
		if (n == cap)
			out = realloc(out, cap *= 2);
		if (!out)
			break;
		z.next_out = out + n;
		z.avail_out = (uInt)(cap - n);
		rc = inflate(&z, Z_NO_FLUSH);
		n = cap - z.avail_out;
		if (rc == Z_STREAM_END) {
			++*members;
			inflateReset(&z);
		} else if (rc != Z_OK && rc != Z_BUF_ERROR) {
			break;
		} else if (z.avail_in == 0 && z.avail_out) {
			rc = Z_BUF_ERROR;       /* truncated */
			break;
		}
	}
	inflateEnd(&z);
	if (rc != Z_STREAM_END) {
		free(out);
		return NULL;
	}
	*out_len = n;
	return out;
}

/* Writes p and decodes what was written (checking it is one gzip member);
 * NULL when it does not decode. */
static inline PbProfile *write_and_decode(struct pp_profile *p, int64_t d)
{
	size_t len, plain_len;
	int members = 0;
	uint8_t *gz = write_bytes(p, d, &len);
	CHECK(len >= 2 && gz[0] == 0x1f && gz[1] == 0x8b);
	uint8_t *plain = gunzip_members(gz, len, &plain_len, &members);
	free(gz);
	CHECK_MSG(plain != NULL, "the written profile is not valid gzip");
	CHECK_INT_EQ(members, 1);
	if (!plain)
		return NULL;
	PbProfile *m = perftools__profiles__profile__unpack(NULL, plain_len, plain);
	free(plain);
	CHECK_MSG(m != NULL, "the written profile does not unpack");
	return m;
}

/* Packs a message without gzip; *len its size. */
static inline uint8_t *pack(const PbProfile *m, size_t *len)
{
	*len = perftools__profiles__profile__get_packed_size(m);
	uint8_t *b = malloc(*len ? *len : 1);
	if (!b)
		abort();
	perftools__profiles__profile__pack(m, b);
	return b;
}

/* Gzips data into one gzip member; *out_len its size. */
static inline uint8_t *gzip_bytes(const uint8_t *data, size_t len, size_t *out_len)
{
	z_stream z;
	memset(&z, 0, sizeof z);
	if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		abort();
	size_t cap = deflateBound(&z, (uLong)len) + 64;
	uint8_t *out = malloc(cap);
	if (!out)
		abort();
	z.next_in = (Bytef *)data;
	z.avail_in = (uInt)len;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	if (deflate(&z, Z_FINISH) != Z_STREAM_END)
		abort();
	*out_len = cap - z.avail_out;
	deflateEnd(&z);
	return out;
}

/* ---- reports ------------------------------------------------------------ */

/* The top ('t') or folded ('f') report of p, as a malloc'ed string. */
static inline char *report_of(const struct pp_profile *p, char which)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		abort();
	int rc = which == 't' ? pp_report_top(p, NULL, f) : pp_report_folded(p, NULL, f);
	CHECK_INT_EQ(rc, 0);
	fclose(f);
	return buf;
}

/* ---- lookups in a decoded message ---------------------------------------- */

/* String i of m's table, or "<bad index>". */
static inline const char *pb_str(const PbProfile *m, int64_t i)
{
	return i >= 0 && (uint64_t)i < m->n_string_table ? m->string_table[i] : "<bad index>";
}

static inline const PbFunction *pb_function(const PbProfile *m, uint64_t id)
{
	for (size_t i = 0; i < m->n_function; i++)
		if (m->function[i]->id == id)
			return m->function[i];
	return NULL;
}

static inline const PbLocation *pb_location(const PbProfile *m, uint64_t id)
{
	for (size_t i = 0; i < m->n_location; i++)
		if (m->location[i]->id == id)
			return m->location[i];
	return NULL;
}

static inline const PbMapping *pb_mapping(const PbProfile *m, uint64_t id)
{
	for (size_t i = 0; i < m->n_mapping; i++)
		if (m->mapping[i]->id == id)
			return m->mapping[i];
	return NULL;
}

/* The name of the function of line j of location id, or NULL. */
static inline const char *pb_line_name(const PbProfile *m, uint64_t id, size_t j)
{
	const PbLocation *l = pb_location(m, id);
	if (!l || j >= l->n_line)
		return NULL;
	const PbFunction *f = pb_function(m, l->line[j]->function_id);
	return f ? pb_str(m, f->name) : NULL;
}

/* Reads a profile from these bytes; err receives the reason on failure. */
static inline struct pp_profile *read_from(const void *data, size_t len, char *err, size_t errlen)
{
	FILE *f = file_of(data, len);
	struct pp_profile *p = pp_profile_read(f, err, errlen);
	fclose(f);
	return p;
}

#endif
