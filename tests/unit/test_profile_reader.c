/* test_profile_reader.c — tests pp_profile_read (pprofout/profile.h):
 * write -> read -> write gives the same profile, field by field, and the
 * same top and folded reports; a second round trip gives the same bytes;
 * uncompressed protobuf and several gzip members are read, as Go reads
 * them; arbitrary (sparse, huge, unordered) file ids are mapped to dense
 * ones.  Malformed input — empty, random bytes, every truncation of a gzip
 * file, garbage after the gzip data, string indices out of range in every
 * field, string_table[0] not "", missing or duplicate ids, a location with
 * a missing function, wrong value counts, too many sample types, values
 * whose sum overflows — returns NULL and a one-line reason; thousands of
 * randomly corrupted files never crash (run under ASan+UBSan too).
 */
#include "test_profile_common.c"

/* ---- comparing two decoded profiles, strings by content ---------------------- */

static void compare_value_type(const PbProfile *a, const PbValueType *x, const PbProfile *b,
			       const PbValueType *y)
{
	CHECK(x && y);
	if (!x || !y)
		return;
	CHECK_STR_EQ(pb_str(a, x->type), pb_str(b, y->type));
	CHECK_STR_EQ(pb_str(a, x->unit), pb_str(b, y->unit));
}

static void compare_mappings(const PbProfile *a, const PbProfile *b)
{
	CHECK_INT_EQ(a->n_mapping, b->n_mapping);
	for (size_t i = 0; i < a->n_mapping && i < b->n_mapping; i++) {
		const PbMapping *x = a->mapping[i], *y = b->mapping[i];
		CHECK_U64_EQ(x->id, y->id);
		CHECK_U64_EQ(x->memory_start, y->memory_start);
		CHECK_U64_EQ(x->memory_limit, y->memory_limit);
		CHECK_U64_EQ(x->file_offset, y->file_offset);
		CHECK_STR_EQ(pb_str(a, x->filename), pb_str(b, y->filename));
		CHECK_STR_EQ(pb_str(a, x->build_id), pb_str(b, y->build_id));
		CHECK_INT_EQ(x->has_functions, y->has_functions);
		CHECK_INT_EQ(x->has_filenames, y->has_filenames);
		CHECK_INT_EQ(x->has_line_numbers, y->has_line_numbers);
		CHECK_INT_EQ(x->has_inline_frames, y->has_inline_frames);
	}
}

static void compare_locations(const PbProfile *a, const PbProfile *b)
{
	CHECK_INT_EQ(a->n_location, b->n_location);
	for (size_t i = 0; i < a->n_location && i < b->n_location; i++) {
		const PbLocation *x = a->location[i], *y = b->location[i];
		CHECK_U64_EQ(x->id, y->id);
		CHECK_U64_EQ(x->mapping_id, y->mapping_id);
		CHECK_U64_EQ(x->address, y->address);
		CHECK_INT_EQ(x->n_line, y->n_line);
		for (size_t j = 0; j < x->n_line && j < y->n_line; j++) {
			CHECK_U64_EQ(x->line[j]->function_id, y->line[j]->function_id);
			CHECK_INT_EQ(x->line[j]->line, y->line[j]->line);
		}
	}
}

static void compare_functions(const PbProfile *a, const PbProfile *b)
{
	CHECK_INT_EQ(a->n_function, b->n_function);
	for (size_t i = 0; i < a->n_function && i < b->n_function; i++) {
		const PbFunction *x = a->function[i], *y = b->function[i];
		CHECK_U64_EQ(x->id, y->id);
		CHECK_STR_EQ(pb_str(a, x->name), pb_str(b, y->name));
		CHECK_STR_EQ(pb_str(a, x->system_name), pb_str(b, y->system_name));
		CHECK_STR_EQ(pb_str(a, x->filename), pb_str(b, y->filename));
		CHECK_INT_EQ(x->start_line, y->start_line);
	}
}

static void compare_samples(const PbProfile *a, const PbProfile *b)
{
	CHECK_INT_EQ(a->n_sample, b->n_sample);
	for (size_t i = 0; i < a->n_sample && i < b->n_sample; i++) {
		const PbSample *x = a->sample[i], *y = b->sample[i];
		CHECK_INT_EQ(x->n_location_id, y->n_location_id);
		for (size_t j = 0; j < x->n_location_id && j < y->n_location_id; j++)
			CHECK_U64_EQ(x->location_id[j], y->location_id[j]);
		CHECK_INT_EQ(x->n_value, y->n_value);
		for (size_t j = 0; j < x->n_value && j < y->n_value; j++)
			CHECK_INT_EQ(x->value[j], y->value[j]);
		CHECK_INT_EQ(x->n_label, y->n_label);
		for (size_t j = 0; j < x->n_label && j < y->n_label; j++) {
			CHECK_STR_EQ(pb_str(a, x->label[j]->key), pb_str(b, y->label[j]->key));
			CHECK_STR_EQ(pb_str(a, x->label[j]->str), pb_str(b, y->label[j]->str));
			CHECK_INT_EQ(x->label[j]->num, y->label[j]->num);
			CHECK_STR_EQ(pb_str(a, x->label[j]->num_unit), pb_str(b, y->label[j]->num_unit));
		}
	}
}

static void compare_profiles(const PbProfile *a, const PbProfile *b)
{
	CHECK_STR_EQ(b->string_table[0], "");
	CHECK_INT_EQ(a->n_sample_type, b->n_sample_type);
	for (size_t i = 0; i < a->n_sample_type && i < b->n_sample_type; i++)
		compare_value_type(a, a->sample_type[i], b, b->sample_type[i]);
	compare_value_type(a, a->period_type, b, b->period_type);
	CHECK_INT_EQ(a->period, b->period);
	CHECK_INT_EQ(a->time_nanos, b->time_nanos);
	CHECK_INT_EQ(a->duration_nanos, b->duration_nanos);
	compare_mappings(a, b);
	compare_locations(a, b);
	compare_functions(a, b);
	compare_samples(a, b);
}

/* ---- round trips ----------------------------------------------------------- */

/* Reads back bytes that must be a valid profile. */
static struct pp_profile *read_ok(const void *data, size_t len)
{
	char err[256] = "";
	struct pp_profile *p = read_from(data, len, err, sizeof err);
	CHECK_MSG(p != NULL, "pp_profile_read failed: %s", err);
	return p;
}

static void test_round_trip_field_by_field(void)
{
	struct example_ids ids;
	struct pp_profile *p = example_profile(&ids);
	size_t len;
	uint8_t *gz = write_bytes(p, EX_DURATION, &len);
	struct pp_profile *q = read_ok(gz, len);
	if (q) {
		PbProfile *a = write_and_decode(p, EX_DURATION), *b = write_and_decode(q, EX_DURATION);
		if (a && b)
			compare_profiles(a, b);
		perftools__profiles__profile__free_unpacked(a, NULL);
		perftools__profiles__profile__free_unpacked(b, NULL);
		CHECK_INT_EQ(pp_profile_count(q, 's'), 4);
		CHECK_INT_EQ(pp_profile_count(q, 'l'), 5);
		CHECK_INT_EQ(pp_profile_count(q, 'f'), 6);
		CHECK_INT_EQ(pp_profile_count(q, 'm'), 2);
		CHECK_INT_EQ(pp_profile_count(q, 'S'), pp_profile_count(p, 'S'));
	}
	free(gz);
	pp_profile_free(q);
	pp_profile_free(p);
}

static void test_round_trip_reports_identical(void)
{
	struct example_ids ids;
	struct pp_profile *p = example_profile(&ids);
	size_t len;
	uint8_t *gz = write_bytes(p, EX_DURATION, &len);
	struct pp_profile *q = read_ok(gz, len);
	if (q) {
		char *t1 = report_of(p, 't'), *t2 = report_of(q, 't');
		char *f1 = report_of(p, 'f'), *f2 = report_of(q, 'f');
		CHECK_STR_EQ(t2, t1);
		CHECK_STR_EQ(f2, f1);
		CHECK(strstr(f1, "main;worker_main;helper;__lll_lock_wait;futex_wait 40000000\n") != NULL);
		free(t1);
		free(t2);
		free(f1);
		free(f2);
	}
	free(gz);
	pp_profile_free(q);
	pp_profile_free(p);
}

/* The reader keeps as many labels per sample as the builder does (it
 * kept 8 while the builder kept 16, dropping the rest without a word). */
static void test_labels_kept(void)
{
	struct pp_profile_spec spec = cpu_spec();
	struct pp_profile *p = pp_profile_new(&spec);
	struct pp_line line = { "f", NULL, NULL, 0, 0 };
	uint64_t loc = pp_profile_location(p, 0, 0x1000, &line, 1);
	struct pp_label labels[PP_MAX_LABELS];
	char keys[PP_MAX_LABELS][8];
	for (int i = 0; i < PP_MAX_LABELS; i++) {
		snprintf(keys[i], sizeof keys[i], "k%d", i);
		labels[i] = (struct pp_label){ keys[i], NULL, i + 1, NULL };
	}
	int64_t values[2] = { 1, 10 };
	CHECK_INT_EQ(pp_profile_add(p, &loc, 1, values, labels, PP_MAX_LABELS), 0);
	size_t len;
	uint8_t *gz = write_bytes(p, EX_DURATION, &len);
	struct pp_profile *q = read_ok(gz, len);
	if (q) {
		PbProfile *m = write_and_decode(q, EX_DURATION);
		CHECK(m && m->n_sample == 1);
		if (m && m->n_sample == 1)
			CHECK_INT_EQ(m->sample[0]->n_label, PP_MAX_LABELS);
		perftools__profiles__profile__free_unpacked(m, NULL);
	}
	free(gz);
	pp_profile_free(q);
	pp_profile_free(p);
}

/* After one round trip the profile is in the reader's order: a second one
 * gives the very same bytes. */
static void test_second_round_trip_same_bytes(void)
{
	struct example_ids ids;
	struct pp_profile *p = example_profile(&ids);
	size_t l1, l2, l3;
	uint8_t *b1 = write_bytes(p, EX_DURATION, &l1);
	struct pp_profile *q = read_ok(b1, l1);
	uint8_t *b2 = q ? write_bytes(q, EX_DURATION, &l2) : NULL;
	struct pp_profile *r = b2 ? read_ok(b2, l2) : NULL;
	uint8_t *b3 = r ? write_bytes(r, EX_DURATION, &l3) : NULL;
	CHECK(b2 && b3 && l2 == l3 && memcmp(b2, b3, l2) == 0);
	free(b1);
	free(b2);
	free(b3);
	pp_profile_free(p);
	pp_profile_free(q);
	pp_profile_free(r);
}

/* Go reads an uncompressed profile, and a gzip file of several members. */
static void test_uncompressed_and_multi_member(void)
{
	struct example_ids ids;
	struct pp_profile *p = example_profile(&ids);
	PbProfile *m = write_and_decode(p, EX_DURATION);
	char *want = report_of(p, 'f');
	size_t len = 0;
	uint8_t *raw = m ? pack(m, &len) : NULL;
	struct pp_profile *q = raw ? read_ok(raw, len) : NULL;
	if (q) {
		char *got = report_of(q, 'f');
		CHECK_STR_EQ(got, want);
		free(got);
	}
	/* The protobuf bytes split in two, each half its own gzip member. */
	size_t la = 0, lb = 0;
	uint8_t *a = raw ? gzip_bytes(raw, len / 2, &la) : NULL;
	uint8_t *b = raw ? gzip_bytes(raw + len / 2, len - len / 2, &lb) : NULL;
	uint8_t *both = malloc(la + lb + 1);
	if (a && b && both) {
		memcpy(both, a, la);
		memcpy(both + la, b, lb);
		struct pp_profile *r = read_ok(both, la + lb);
		if (r) {
			char *got = report_of(r, 'f');
			CHECK_STR_EQ(got, want);
			free(got);
		}
		pp_profile_free(r);
	}
	free(a);
	free(b);
	free(both);
	free(raw);
	free(want);
	perftools__profiles__profile__free_unpacked(m, NULL);
	pp_profile_free(q);
	pp_profile_free(p);
}

/* ---- a hand-made message, to break one field at a time --------------------- */

enum { S_EMPTY, S_SAMPLES, S_COUNT, S_CPU, S_NS, S_APP, S_F, S_G, S_FILE, S_THREAD, S_W, S_TID,
       S_N };

static char *hand_strings[S_N] = { "", "samples", "count", "cpu", "nanoseconds", "/bin/app",
				   "f", "g", "/src/a.c", "thread", "w", "tid" };

/* Deliberately odd ids: sparse, huge, not in order. */
#define MAP_ID (1ULL << 63)
#define FN_F 900ULL
#define FN_G UINT64_MAX
#define LOC_A 42ULL
#define LOC_B 3ULL
#define LOC_C (1ULL << 40)

struct hand {
	PbProfile m;
	char *strings[S_N];
	PbValueType st[PP_MAX_VALUES + 1], *stp[PP_MAX_VALUES + 1], pt;
	PbMapping map, *mapp[1];
	PbFunction fn[2], *fnp[2];
	PbLine line[3], *linep[3];
	PbLocation loc[3], *locp[3];
	PbSample smp[2], *smpp[2];
	PbLabel lab[2], *labp[2];
	uint64_t stack0[2], stack1[1];
	int64_t val0[PP_MAX_VALUES + 1], val1[PP_MAX_VALUES + 1];
	int64_t comment[1];
};

static void hand_tables(struct hand *h)
{
	perftools__profiles__mapping__init(&h->map);
	h->map.id = MAP_ID;
	h->map.memory_start = 0x400000, h->map.memory_limit = 0x500000;
	h->map.filename = S_APP;
	h->map.has_functions = h->map.has_filenames = 1;
	h->map.has_line_numbers = h->map.has_inline_frames = 1;
	h->mapp[0] = &h->map;
	const uint64_t fids[2] = { FN_F, FN_G };
	for (int i = 0; i < 2; i++) {
		perftools__profiles__function__init(&h->fn[i]);
		h->fn[i].id = fids[i];
		h->fn[i].name = h->fn[i].system_name = i ? S_G : S_F;
		h->fn[i].filename = S_FILE;
		h->fn[i].start_line = 10 * (i + 1);
		h->fnp[i] = &h->fn[i];
	}
	/* A: f inlined into g; B: g; C: f, no mapping. */
	const uint64_t lfn[3] = { FN_F, FN_G, FN_G };
	for (int i = 0; i < 3; i++) {
		perftools__profiles__line__init(&h->line[i]);
		h->line[i].function_id = lfn[i];
		h->line[i].line = 11 + i;
		h->linep[i] = &h->line[i];
	}
	const uint64_t lids[3] = { LOC_A, LOC_B, LOC_C };
	for (int i = 0; i < 3; i++) {
		perftools__profiles__location__init(&h->loc[i]);
		h->loc[i].id = lids[i];
		h->loc[i].mapping_id = i < 2 ? MAP_ID : 0;
		h->loc[i].address = 0x401000 + 0x10 * (uint64_t)i;
		h->locp[i] = &h->loc[i];
	}
	h->loc[0].n_line = 2, h->loc[0].line = &h->linep[0];
	h->loc[1].n_line = 1, h->loc[1].line = &h->linep[2];
	h->loc[2].n_line = 1, h->loc[2].line = &h->linep[0];
}

static void hand_samples(struct hand *h)
{
	h->stack0[0] = LOC_A, h->stack0[1] = LOC_B;
	h->stack1[0] = LOC_C;
	h->val0[0] = 2, h->val0[1] = 20;
	h->val1[0] = 1, h->val1[1] = 10;
	for (int i = 0; i < 2; i++) {
		perftools__profiles__label__init(&h->lab[i]);
		perftools__profiles__sample__init(&h->smp[i]);
		h->labp[i] = &h->lab[i];
		h->smpp[i] = &h->smp[i];
		h->smp[i].n_value = 2;
	}
	h->lab[0].key = S_THREAD, h->lab[0].str = S_W;
	h->lab[1].key = S_TID, h->lab[1].num = 9;
	h->smp[0].n_location_id = 2, h->smp[0].location_id = h->stack0, h->smp[0].value = h->val0;
	h->smp[0].n_label = 2, h->smp[0].label = h->labp;
	h->smp[1].n_location_id = 1, h->smp[1].location_id = h->stack1, h->smp[1].value = h->val1;
}

/* The folded report of p is these two lines, in either order. */
static void check_folded(const struct pp_profile *p, const char *a, const char *b)
{
	char *f = report_of(p, 'f');
	size_t la = strlen(a), lb = strlen(b);
	int ok = strlen(f) == la + lb && ((strncmp(f, a, la) == 0 && strcmp(f + la, b) == 0) ||
					  (strncmp(f, b, lb) == 0 && strcmp(f + lb, a) == 0));
	CHECK_MSG(ok, "folded report \"%s\", expected the lines \"%s\" and \"%s\"", f, a, b);
	free(f);
}

/* A valid profile: samples (f inlined into g) <- g, and f; thread "w", tid 9. */
static void hand_init(struct hand *h)
{
	memset(h, 0, sizeof *h);
	memcpy(h->strings, hand_strings, sizeof h->strings);
	PbProfile *m = &h->m;
	perftools__profiles__profile__init(m);
	for (int i = 0; i <= PP_MAX_VALUES; i++) {
		perftools__profiles__value_type__init(&h->st[i]);
		h->st[i].type = i ? S_CPU : S_SAMPLES;
		h->st[i].unit = i ? S_NS : S_COUNT;
		h->stp[i] = &h->st[i];
	}
	perftools__profiles__value_type__init(&h->pt);
	h->pt.type = S_CPU, h->pt.unit = S_NS;
	hand_tables(h);
	hand_samples(h);
	m->n_sample_type = 2, m->sample_type = h->stp;
	m->period_type = &h->pt, m->period = 10;
	m->n_mapping = 1, m->mapping = h->mapp;
	m->n_function = 2, m->function = h->fnp;
	m->n_location = 3, m->location = h->locp;
	m->n_sample = 2, m->sample = h->smpp;
	m->n_string_table = S_N, m->string_table = h->strings;
	m->time_nanos = 77, m->duration_nanos = 88;
	m->comment = h->comment;
}

/* Packs h, gzip'ed or not, and reads it. */
static struct pp_profile *hand_read(struct hand *h, int gzip, char *err, size_t errlen)
{
	size_t len, gz_len;
	uint8_t *raw = pack(&h->m, &len);
	uint8_t *gz = gzip ? gzip_bytes(raw, len, &gz_len) : NULL;
	struct pp_profile *p = gzip ? read_from(gz, gz_len, err, errlen) : read_from(raw, len, err, errlen);
	free(raw);
	free(gz);
	return p;
}

static void test_hand_made_arbitrary_ids(void)
{
	struct hand h;
	hand_init(&h);
	char err[256] = "";
	struct pp_profile *p = hand_read(&h, 1, err, sizeof err);
	CHECK_MSG(p != NULL, "%s", err);
	if (!p)
		return;
	check_folded(p, "g;g;f 20\n", "f 10\n");
	PbProfile *m = write_and_decode(p, 0);
	if (m) {
		CHECK_INT_EQ(m->time_nanos, 77);
		CHECK_INT_EQ(m->period, 10);
		CHECK(m->n_mapping == 1 && m->mapping[0]->id == 1 && m->mapping[0]->has_functions);
		CHECK(m->n_location == 3 && m->location[0]->id == 1 && m->location[2]->id == 3);
		CHECK(m->n_location == 3 && m->location[0]->mapping_id == 1 && m->location[2]->mapping_id == 0);
		CHECK(m->n_function == 2 && m->function[1]->id == 2);
		CHECK(m->n_sample == 2 && m->sample[0]->location_id[0] == 1 &&
		      m->sample[0]->location_id[1] == 2 && m->sample[1]->location_id[0] == 3);
		CHECK_STR_EQ(pb_line_name(m, 1, 0), "f");
		CHECK_STR_EQ(pb_line_name(m, 1, 1), "g");
		if (m->n_sample == 2 && m->sample[0]->n_label == 2) {
			CHECK_STR_EQ(pb_str(m, m->sample[0]->label[0]->str), "w");
			CHECK_INT_EQ(m->sample[0]->label[1]->num, 9);
		}
	}
	perftools__profiles__profile__free_unpacked(m, NULL);
	pp_profile_free(p);
}

/* Two file locations at the same address: fine when they agree (they are
 * one location to the builder), an error when their lines differ. */
static void test_duplicate_address(void)
{
	struct hand h;
	hand_init(&h);
	h.loc[1].address = h.loc[0].address;
	char err[256] = "";
	struct pp_profile *p = hand_read(&h, 0, err, sizeof err);
	CHECK(p == NULL);
	CHECK_MSG(strstr(err, "share mapping and address") != NULL, "err: %s", err);
	pp_profile_free(p);

	hand_init(&h);
	h.loc[1].address = h.loc[0].address;
	h.loc[1].n_line = 2, h.loc[1].line = &h.linep[0];
	err[0] = 0;
	p = hand_read(&h, 0, err, sizeof err);
	CHECK_MSG(p != NULL, "%s", err);
	if (p) {
		CHECK_INT_EQ(pp_profile_count(p, 'l'), 2);
		check_folded(p, "g;f;g;f 20\n", "f 10\n");
	}
	pp_profile_free(p);
}

/* Two file samples that are one to the builder are summed. */
static void test_duplicate_samples_summed(void)
{
	struct hand h;
	hand_init(&h);
	h.smp[1] = h.smp[0];
	char err[256] = "";
	struct pp_profile *p = hand_read(&h, 0, err, sizeof err);
	CHECK_MSG(p != NULL, "%s", err);
	if (p) {
		CHECK_INT_EQ(pp_profile_count(p, 's'), 1);
		const uint64_t *locs;
		const int64_t *values;
		pp_profile_sample(p, 0, &locs, &values);
		CHECK(values[0] == 4 && values[1] == 40);
	}
	pp_profile_free(p);
}

/* ---- malformed input --------------------------------------------------------- */

/* Reads bytes that are not a valid profile: NULL, and a one-line reason
 * (containing want, when given). */
static void expect_bad(const void *data, size_t len, const char *want, const char *what)
{
	char err[256];
	memset(err, 0, sizeof err);
	struct pp_profile *p = read_from(data, len, err, sizeof err);
	CHECK_MSG(p == NULL, "%s: read as a profile", what);
	CHECK_MSG(err[0] != 0 && !strchr(err, '\n'), "%s: reason \"%s\"", what, err);
	if (want)
		CHECK_MSG(strstr(err, want) != NULL, "%s: reason \"%s\", expected \"%s\"", what, err, want);
	pp_profile_free(p);
}

static void expect_hand_bad(struct hand *h, const char *want, const char *what)
{
	size_t len, gz_len;
	uint8_t *raw = pack(&h->m, &len);
	uint8_t *gz = gzip_bytes(raw, len, &gz_len);
	expect_bad(raw, len, want, what);
	expect_bad(gz, gz_len, want, what);
	free(raw);
	free(gz);
}

static void test_empty_file(void)
{
	expect_bad("", 0, "empty", "empty file");
	/* Two bytes of gzip magic and nothing else. */
	expect_bad("\x1f\x8b", 2, "gzip", "gzip magic only");
}

static void test_random_bytes(void)
{
	uint32_t x = 12345;
	uint8_t buf[4096];
	for (int round = 0; round < 200; round++) {
		size_t len = 1 + (size_t)round * 20;
		for (size_t i = 0; i < len; i++) {
			x = x * 1103515245 + 12345;
			buf[i] = (uint8_t)(x >> 16);
		}
		if (round % 2)          /* half of them look gzip'ed */
			buf[0] = 0x1f, buf[1] = 0x8b;
		expect_bad(buf, len, NULL, "random bytes");
	}
}

/* Every truncation of a valid gzip'ed profile. */
static void test_truncated_gzip(void)
{
	struct example_ids ids;
	struct pp_profile *p = example_profile(&ids);
	size_t len;
	uint8_t *gz = write_bytes(p, EX_DURATION, &len);
	for (size_t n = 1; n < len; n++)
		expect_bad(gz, n, n > 10 ? "truncated" : NULL, "truncated gzip");
	free(gz);
	pp_profile_free(p);
}

static void test_garbage_after_gzip(void)
{
	struct example_ids ids;
	struct pp_profile *p = example_profile(&ids);
	size_t len;
	uint8_t *gz = write_bytes(p, EX_DURATION, &len);
	uint8_t *more = malloc(len + 4);
	memcpy(more, gz, len);
	memcpy(more + len, "junk", 4);
	expect_bad(more, len + 4, "garbage", "garbage after gzip");
	free(more);
	free(gz);
	pp_profile_free(p);
}

/* Every truncation of the uncompressed protobuf: NULL, or a profile (a cut
 * on a field boundary is a valid shorter message) whose reports work. */
static void test_truncated_protobuf(void)
{
	struct example_ids ids;
	struct pp_profile *p = example_profile(&ids);
	PbProfile *m = write_and_decode(p, EX_DURATION);
	size_t len = 0;
	uint8_t *raw = m ? pack(m, &len) : NULL;
	int accepted = 0;
	for (size_t n = 1; n < len; n++) {
		char err[256] = "";
		struct pp_profile *q = read_from(raw, n, err, sizeof err);
		if (q) {
			accepted++;
			free(report_of(q, 't'));
			free(report_of(q, 'f'));
		} else {
			CHECK_MSG(err[0], "truncated at %zu: no reason", n);
		}
		pp_profile_free(q);
	}
	CHECK(len > 0 && accepted < (int)len);
	free(raw);
	perftools__profiles__profile__free_unpacked(m, NULL);
	pp_profile_free(p);
}

static void test_string_index_out_of_range(void)
{
	struct hand h;
	const struct {
		int64_t *field;
		int64_t value;
		const char *want;
	} cases[] = {
		{ &h.fn[0].name, S_N, "function name" },
		{ &h.fn[1].system_name, 1000, "function system_name" },
		{ &h.fn[1].filename, -1, "function filename" },
		{ &h.map.filename, S_N, "mapping filename" },
		{ &h.map.build_id, INT64_MAX, "mapping build_id" },
		{ &h.lab[0].key, S_N + 5, "label key" },
		{ &h.lab[0].str, -5, "label str" },
		{ &h.lab[1].num_unit, S_N, "label num_unit" },
		{ &h.st[1].type, S_N, "sample_type" },
		{ &h.st[0].unit, INT64_MIN, "sample_type" },
		{ &h.pt.unit, S_N, "period_type" },
		{ &h.comment[0], S_N, "comment" },
		{ &h.m.drop_frames, S_N, "drop_frames" },
		{ &h.m.keep_frames, -2, "keep_frames" },
		{ &h.m.default_sample_type, S_N, "default_sample_type" },
		{ &h.m.doc_url, S_N, "doc_url" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		hand_init(&h);
		h.m.n_comment = 1;
		*cases[i].field = cases[i].value;
		expect_hand_bad(&h, cases[i].want, cases[i].want);
	}
}

static void test_string_table_zero(void)
{
	struct hand h;
	hand_init(&h);
	h.strings[0] = "x";
	expect_hand_bad(&h, "string_table[0]", "string_table[0] == x");
	hand_init(&h);
	h.m.n_string_table = 0;
	expect_hand_bad(&h, "string_table[0]", "no string table");
}

static void test_missing_references(void)
{
	struct hand h;
	hand_init(&h);
	h.line[1].function_id = 12345;
	expect_hand_bad(&h, "missing function 12345", "line -> missing function");
	hand_init(&h);
	h.line[0].function_id = 0;
	expect_hand_bad(&h, "missing function 0", "line -> function 0");
	hand_init(&h);
	h.stack0[1] = 4;
	expect_hand_bad(&h, "missing location 4", "sample -> missing location");
	hand_init(&h);
	h.stack1[0] = 0;
	expect_hand_bad(&h, "missing location 0", "sample -> location 0");
	hand_init(&h);
	h.loc[1].mapping_id = 1;
	expect_hand_bad(&h, "missing mapping 1", "location -> missing mapping");
	hand_init(&h);
	h.m.n_function = 0;
	expect_hand_bad(&h, "missing function", "no functions");
}

static void test_bad_ids(void)
{
	struct hand h;
	hand_init(&h);
	h.loc[2].id = LOC_A;
	expect_hand_bad(&h, "two locations with id 42", "duplicate location id");
	hand_init(&h);
	h.fn[1].id = FN_F;
	expect_hand_bad(&h, "two functions", "duplicate function id");
	hand_init(&h);
	h.fn[0].id = 0;
	expect_hand_bad(&h, "function with id 0", "function id 0");
	hand_init(&h);
	h.map.id = 0;
	expect_hand_bad(&h, "mapping with id 0", "mapping id 0");
	hand_init(&h);
	h.loc[0].id = 0;
	expect_hand_bad(&h, "location with id 0", "location id 0");
}

static void test_bad_values(void)
{
	struct hand h;
	hand_init(&h);
	h.smp[1].n_value = 1;
	expect_hand_bad(&h, "1 values, 2 sample types", "too few values");
	hand_init(&h);
	h.smp[0].n_value = 3;
	expect_hand_bad(&h, "3 values", "too many values");
	hand_init(&h);
	h.m.n_sample_type = PP_MAX_VALUES + 1;
	h.smp[0].n_value = h.smp[1].n_value = PP_MAX_VALUES + 1;
	expect_hand_bad(&h, "sample types", "too many sample types");
	hand_init(&h);
	h.m.n_sample_type = 0;
	h.smp[0].n_value = h.smp[1].n_value = 0;
	expect_hand_bad(&h, "no sample types", "samples without sample types");
	hand_init(&h);
	h.val0[1] = INT64_MIN;
	expect_hand_bad(&h, "overflow", "INT64_MIN");
	hand_init(&h);
	h.val0[1] = INT64_MAX;
	h.val1[1] = 1;
	expect_hand_bad(&h, "overflow", "sum over INT64_MAX");
	hand_init(&h);
	h.val0[1] = INT64_MAX - 10;     /* the sum of magnitudes still fits */
	h.val1[1] = -10;
	char err[256] = "";
	struct pp_profile *p = hand_read(&h, 0, err, sizeof err);
	CHECK_MSG(p != NULL, "%s", err);
	pp_profile_free(p);
}

/* Up to PP_MAX_VALUES sample types are fine; so is a profile with neither
 * sample types nor samples, or with no period type. */
static void test_edge_but_valid(void)
{
	struct hand h;
	hand_init(&h);
	h.m.n_sample_type = PP_MAX_VALUES;
	h.smp[0].n_value = h.smp[1].n_value = PP_MAX_VALUES;
	h.val0[PP_MAX_VALUES - 1] = 7;
	char err[256] = "";
	struct pp_profile *p = hand_read(&h, 0, err, sizeof err);
	CHECK_MSG(p != NULL, "%s", err);
	if (p) {
		CHECK_INT_EQ(pp_profile_n_values(p), PP_MAX_VALUES);
		check_folded(p, "g;g;f 7\n", "f 0\n");
	}
	pp_profile_free(p);

	hand_init(&h);
	h.m.n_sample_type = 0, h.m.n_sample = 0, h.m.period_type = NULL;
	p = hand_read(&h, 1, err, sizeof err);
	CHECK_MSG(p != NULL, "%s", err);
	if (p) {
		CHECK_INT_EQ(pp_profile_count(p, 's'), 0);
		CHECK_INT_EQ(pp_profile_count(p, 'l'), 3);
		char *f = report_of(p, 'f');
		CHECK_STR_EQ(f, "");
		free(f);
	}
	pp_profile_free(p);
}

/* err may be NULL, or too small for the reason. */
static void test_err_buffer(void)
{
	FILE *f = file_of("", 0);
	CHECK(pp_profile_read(f, NULL, 0) == NULL);
	fclose(f);
	char small[6];
	memset(small, 'x', sizeof small);
	f = file_of("", 0);
	CHECK(pp_profile_read(f, small, sizeof small) == NULL);
	fclose(f);
	CHECK_STR_EQ(small, "empty");
	char one[1] = { 'x' };
	f = file_of("", 0);
	CHECK(pp_profile_read(f, one, 1) == NULL);
	fclose(f);
	CHECK_INT_EQ(one[0], 0);
}

/* Random corruption of a valid profile, raw and gzip'ed: never a crash;
 * NULL with a reason, or a profile whose reports and writer work. */
static void fuzz_one(uint8_t *buf, size_t len, uint32_t *x, int *accepted)
{
	int flips = 1 + (int)(*x % 4);
	for (int k = 0; k < flips; k++) {
		*x = *x * 1103515245 + 12345;
		buf[(*x >> 8) % len] ^= (uint8_t)(1u << (*x % 8));
	}
	char err[256] = "";
	struct pp_profile *q = read_from(buf, len, err, sizeof err);
	if (q) {
		++*accepted;
		free(report_of(q, 't'));
		free(report_of(q, 'f'));
		size_t n;
		free(write_bytes(q, 0, &n));
	} else {
		CHECK_MSG(err[0], "no reason given");
	}
	pp_profile_free(q);
}

static void test_fuzz(void)
{
	struct example_ids ids;
	struct pp_profile *p = example_profile(&ids);
	PbProfile *m = write_and_decode(p, EX_DURATION);
	size_t raw_len = 0, gz_len = 0;
	uint8_t *raw = m ? pack(m, &raw_len) : NULL;
	uint8_t *gz = raw ? gzip_bytes(raw, raw_len, &gz_len) : NULL;
	uint8_t *buf = malloc(raw_len > gz_len ? raw_len : gz_len);
	uint32_t x = 987654321;
	int accepted = 0, rounds = 3000;
	for (int i = 0; buf && i < rounds; i++) {
		int use_gz = i % 3 == 0;
		memcpy(buf, use_gz ? gz : raw, use_gz ? gz_len : raw_len);
		fuzz_one(buf, use_gz ? gz_len : raw_len, &x, &accepted);
	}
	CHECK(raw && accepted < rounds);
	printf("     fuzz: %d of %d corrupted profiles accepted\n", accepted, rounds);
	free(buf);
	free(raw);
	free(gz);
	perftools__profiles__profile__free_unpacked(m, NULL);
	pp_profile_free(p);
}

int main(void)
{
	RUN(test_round_trip_field_by_field);
	RUN(test_round_trip_reports_identical);
	RUN(test_labels_kept);
	RUN(test_second_round_trip_same_bytes);
	RUN(test_uncompressed_and_multi_member);
	RUN(test_hand_made_arbitrary_ids);
	RUN(test_duplicate_address);
	RUN(test_duplicate_samples_summed);
	RUN(test_empty_file);
	RUN(test_random_bytes);
	RUN(test_truncated_gzip);
	RUN(test_garbage_after_gzip);
	RUN(test_truncated_protobuf);
	RUN(test_string_index_out_of_range);
	RUN(test_string_table_zero);
	RUN(test_missing_references);
	RUN(test_bad_ids);
	RUN(test_bad_values);
	RUN(test_edge_but_valid);
	RUN(test_err_buffer);
	RUN(test_fuzz);
	return check_summary("test_profile_reader");
}
