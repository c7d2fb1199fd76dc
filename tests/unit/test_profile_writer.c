/* test_profile_writer.c — tests pp_profile_write (pprofout/profile.h)
 * against docs/FORMATS.md §1 by decoding what it writes with zlib and
 * protobuf-c: exactly one gzip member; string_table[0] == "" and no string
 * twice; sample types, period type, period, time_nanos, duration_nanos;
 * mappings with build_id and the four has_* flags; locations whose Line
 * lists are the inline chain innermost first, with function ids that
 * resolve; samples leaf first with one value per sample type and the
 * labels 'thread' (string) and 'tid' (numeric); ids nonzero, unique and
 * dense 1..N; every string index in range.
 */
#include "test_profile_common.c"

static PbProfile *example_decoded(struct example_ids *ids)
{
	struct pp_profile *p = example_profile(ids);
	PbProfile *m = write_and_decode(p, EX_DURATION);
	pp_profile_free(p);
	return m;
}

static void test_header_fields(void)
{
	struct example_ids ids;
	PbProfile *m = example_decoded(&ids);
	if (!m)
		return;
	CHECK(m->n_string_table > 0);
	CHECK_STR_EQ(m->string_table[0], "");
	CHECK_INT_EQ(m->n_sample_type, 2);
	if (m->n_sample_type == 2) {
		CHECK_STR_EQ(pb_str(m, m->sample_type[0]->type), "samples");
		CHECK_STR_EQ(pb_str(m, m->sample_type[0]->unit), "count");
		CHECK_STR_EQ(pb_str(m, m->sample_type[1]->type), "cpu");
		CHECK_STR_EQ(pb_str(m, m->sample_type[1]->unit), "nanoseconds");
	}
	CHECK(m->period_type != NULL);
	if (m->period_type) {
		CHECK_STR_EQ(pb_str(m, m->period_type->type), "cpu");
		CHECK_STR_EQ(pb_str(m, m->period_type->unit), "nanoseconds");
	}
	CHECK_INT_EQ(m->period, EX_PERIOD);
	CHECK_INT_EQ(m->time_nanos, EX_TIME);
	CHECK_INT_EQ(m->duration_nanos, EX_DURATION);
	CHECK_INT_EQ(m->n_comment, 0);
	CHECK_INT_EQ(m->drop_frames, 0);
	CHECK_INT_EQ(m->keep_frames, 0);
	perftools__profiles__profile__free_unpacked(m, NULL);
}

static void test_strings_unique_and_indices_in_range(void)
{
	struct example_ids ids;
	PbProfile *m = example_decoded(&ids);
	if (!m)
		return;
	for (size_t i = 0; i < m->n_string_table; i++)
		for (size_t j = i + 1; j < m->n_string_table; j++)
			CHECK_MSG(strcmp(m->string_table[i], m->string_table[j]) != 0,
				  "strings %zu and %zu are both \"%s\"", i, j, m->string_table[i]);
	int64_t n = (int64_t)m->n_string_table;
#define IN_RANGE(x) CHECK_MSG((x) >= 0 && (x) < n, "%s = %lld", #x, (long long)(x))
	for (size_t i = 0; i < m->n_mapping; i++) {
		IN_RANGE(m->mapping[i]->filename);
		IN_RANGE(m->mapping[i]->build_id);
	}
	for (size_t i = 0; i < m->n_function; i++) {
		IN_RANGE(m->function[i]->name);
		IN_RANGE(m->function[i]->system_name);
		IN_RANGE(m->function[i]->filename);
	}
	for (size_t i = 0; i < m->n_sample; i++)
		for (size_t j = 0; j < m->sample[i]->n_label; j++) {
			IN_RANGE(m->sample[i]->label[j]->key);
			IN_RANGE(m->sample[i]->label[j]->str);
			IN_RANGE(m->sample[i]->label[j]->num_unit);
		}
#undef IN_RANGE
	perftools__profiles__profile__free_unpacked(m, NULL);
}

static void test_mappings(void)
{
	struct example_ids ids;
	PbProfile *m = example_decoded(&ids);
	if (!m)
		return;
	CHECK_INT_EQ(m->n_mapping, 2);
	const PbMapping *app = pb_mapping(m, ids.app), *libc = pb_mapping(m, ids.libc);
	CHECK(app && libc);
	if (app && libc) {
		CHECK_U64_EQ(app->id, 1);     /* the main executable first */
		CHECK_U64_EQ(app->memory_start, 0x555500000000);
		CHECK_U64_EQ(app->memory_limit, 0x555500010000);
		CHECK_U64_EQ(app->file_offset, 0x1000);
		CHECK_STR_EQ(pb_str(m, app->filename), APP_PATH);
		CHECK_STR_EQ(pb_str(m, app->build_id), "a1b2c3d4e5");
		CHECK(app->has_functions && app->has_filenames && app->has_line_numbers &&
		      app->has_inline_frames);
		CHECK_U64_EQ(libc->file_offset, 0x28000);
		CHECK_STR_EQ(pb_str(m, libc->filename), LIBC_PATH);
		CHECK_STR_EQ(pb_str(m, libc->build_id), "0011ff");
	}
	perftools__profiles__profile__free_unpacked(m, NULL);
}

/* Without symbolized, none of the has_* flags is set (go tool pprof then
 * symbolizes on its own); a NULL build_id is "". */
static void test_unsymbolized_mapping(void)
{
	struct pp_profile_spec spec = cpu_spec();
	struct pp_profile *p = pp_profile_new(&spec);
	struct pp_mapping mp = { 0x1000, 0x2000, 0, "/bin/x", NULL, 0 };
	pp_profile_mapping(p, &mp);
	PbProfile *m = write_and_decode(p, 0);
	if (m && m->n_mapping == 1) {
		const PbMapping *x = m->mapping[0];
		CHECK(!x->has_functions && !x->has_filenames && !x->has_line_numbers &&
		      !x->has_inline_frames);
		CHECK_INT_EQ(x->build_id, 0);
	} else {
		CHECK_MSG(0, "expected one mapping");
	}
	perftools__profiles__profile__free_unpacked(m, NULL);
	pp_profile_free(p);
}

static void check_line(const PbProfile *m, uint64_t loc, size_t j, const char *name,
		       const char *system_name, const char *file, int64_t line, int64_t start)
{
	const PbLocation *l = pb_location(m, loc);
	if (!l || j >= l->n_line) {
		CHECK_MSG(0, "location %" PRIu64 " has no line %zu", loc, j);
		return;
	}
	const PbFunction *f = pb_function(m, l->line[j]->function_id);
	CHECK_MSG(f != NULL, "location %" PRIu64 " line %zu: function %" PRIu64 " not found", loc, j,
		  l->line[j]->function_id);
	if (!f)
		return;
	CHECK_STR_EQ(pb_str(m, f->name), name);
	CHECK_STR_EQ(pb_str(m, f->system_name), system_name);
	CHECK_STR_EQ(pb_str(m, f->filename), file);
	CHECK_INT_EQ(l->line[j]->line, line);
	CHECK_INT_EQ(f->start_line, start);
}

static void test_locations_inline_chain_innermost_first(void)
{
	struct example_ids ids;
	PbProfile *m = example_decoded(&ids);
	if (!m)
		return;
	CHECK_INT_EQ(m->n_location, 5);
	CHECK_INT_EQ(m->n_function, 6);
	const PbLocation *l0 = pb_location(m, ids.loc[0]), *l4 = pb_location(m, ids.loc[4]);
	if (l0 && l4) {
		CHECK_U64_EQ(l0->address, 0x7f0000001234);
		CHECK_U64_EQ(l0->mapping_id, ids.libc);
		CHECK_INT_EQ(l0->n_line, 2);
		CHECK_INT_EQ(l4->n_line, 0);
		CHECK_U64_EQ(l4->address, 0x7f0000005000);
	} else {
		CHECK_MSG(0, "locations missing");
	}
	check_line(m, ids.loc[0], 0, "futex_wait", "futex_wait", "../sysdeps/nptl/futex-internal.h", 146, 140);
	check_line(m, ids.loc[0], 1, "__lll_lock_wait", "__lll_lock_wait", "./nptl/lowlevellock.c", 49, 40);
	check_line(m, ids.loc[1], 0, "ns::work(int)", "_ZN2ns4workEi", "/src/app.cc", 12, 10);
	check_line(m, ids.loc[2], 0, "helper", "helper", "/src/app.cc", 30, 28);
	check_line(m, ids.loc[2], 1, "worker_main", "worker_main", "/src/app.cc", 40, 38);
	check_line(m, ids.loc[3], 0, "main", "main", "/src/app.cc", 50, 48);
	for (size_t i = 0; i < m->n_location; i++)
		for (size_t j = 0; j < m->location[i]->n_line; j++)
			CHECK(pb_function(m, m->location[i]->line[j]->function_id) != NULL);
	perftools__profiles__profile__free_unpacked(m, NULL);
}

/* Ids of one table: nonzero, unique and dense 1..N, in array order. */
#define CHECK_DENSE(m, arr, n)                                                            \
	do {                                                                              \
		for (size_t i_ = 0; i_ < (n); i_++)                                       \
			CHECK_MSG((m)->arr[i_]->id == i_ + 1, #arr "[%zu].id = %" PRIu64, \
				  i_, (m)->arr[i_]->id);                                  \
	} while (0)

static void test_ids_dense(void)
{
	struct example_ids ids;
	PbProfile *m = example_decoded(&ids);
	if (!m)
		return;
	CHECK_DENSE(m, mapping, m->n_mapping);
	CHECK_DENSE(m, location, m->n_location);
	CHECK_DENSE(m, function, m->n_function);
	CHECK(ids.app == 1 && ids.libc == 2);
	for (size_t i = 0; i < 5; i++)
		CHECK_U64_EQ(ids.loc[i], i + 1);
	/* Functions numbered in order of first use. */
	CHECK_STR_EQ(pb_line_name(m, 1, 0), "futex_wait");
	CHECK_U64_EQ(m->location[0]->line[0]->function_id, 1);
	CHECK_U64_EQ(m->location[0]->line[1]->function_id, 2);
	CHECK_U64_EQ(m->location[1]->line[0]->function_id, 3);
	CHECK_U64_EQ(m->location[3]->line[0]->function_id, 6);
	for (size_t i = 0; i < m->n_location; i++) {
		uint64_t mid = m->location[i]->mapping_id;
		CHECK_MSG(mid == 0 || pb_mapping(m, mid), "location %zu: mapping %" PRIu64, i, mid);
	}
	perftools__profiles__profile__free_unpacked(m, NULL);
}

/* The label of sample s with this key, or NULL. */
static const PbLabel *label(const PbProfile *m, const PbSample *s, const char *key)
{
	for (size_t i = 0; i < s->n_label; i++)
		if (strcmp(pb_str(m, s->label[i]->key), key) == 0)
			return s->label[i];
	return NULL;
}

static void check_sample(const PbProfile *m, size_t i, const uint64_t *stack, size_t n,
			 int64_t count, const char *thread, int64_t tid)
{
	if (i >= m->n_sample) {
		CHECK_MSG(0, "no sample %zu", i);
		return;
	}
	const PbSample *s = m->sample[i];
	CHECK_INT_EQ(s->n_location_id, n);
	for (size_t j = 0; j < n && j < s->n_location_id; j++)
		CHECK_U64_EQ(s->location_id[j], stack[j]);
	CHECK_INT_EQ(s->n_value, 2);
	if (s->n_value == 2) {
		CHECK_INT_EQ(s->value[0], count);
		CHECK_INT_EQ(s->value[1], count * EX_PERIOD);
	}
	CHECK_INT_EQ(s->n_label, 2);
	const PbLabel *t = label(m, s, "thread"), *id = label(m, s, "tid");
	CHECK(t && id);
	if (t && id) {
		CHECK_STR_EQ(pb_str(m, t->str), thread);
		CHECK_INT_EQ(t->num, 0);
		CHECK_INT_EQ(id->str, 0);
		CHECK_INT_EQ(id->num, tid);
		CHECK_INT_EQ(id->num_unit, 0);
	}
}

static void test_samples_leaf_first_with_labels(void)
{
	struct example_ids ids;
	PbProfile *m = example_decoded(&ids);
	if (!m)
		return;
	CHECK_INT_EQ(m->n_sample, 4);
	const uint64_t *L = ids.loc;
	const uint64_t s1[] = { L[0], L[2], L[3] }, s2[] = { L[1], L[2], L[3] };
	const uint64_t s3[] = { L[1], L[3] }, s4[] = { L[4], L[3] };
	check_sample(m, 0, s1, 3, 4, "worker-1", 101);
	check_sample(m, 1, s2, 3, 1, "worker-2", 102);
	check_sample(m, 2, s3, 2, 2, "app", 100);
	check_sample(m, 3, s4, 2, 1, "app", 100);
	/* The leaf is the innermost frame: sample 0 starts in futex_wait. */
	CHECK_STR_EQ(pb_line_name(m, m->sample[0]->location_id[0], 0), "futex_wait");
	CHECK_STR_EQ(pb_line_name(m, m->sample[0]->location_id[2], 0), "main");
	perftools__profiles__profile__free_unpacked(m, NULL);
}

/* A numeric label with a unit keeps it. */
static void test_label_num_unit(void)
{
	struct pp_profile_spec spec = cpu_spec();
	struct pp_profile *p = pp_profile_new(&spec);
	const struct pp_label lab[] = { { "bytes", NULL, 4096, "bytes" } };
	const int64_t v[] = { 1, 1 };
	const uint64_t none[1] = { 0 };
	pp_profile_add(p, none, 0, v, lab, 1);
	PbProfile *m = write_and_decode(p, 0);
	if (m && m->n_sample == 1 && m->sample[0]->n_label == 1) {
		const PbLabel *l = m->sample[0]->label[0];
		CHECK_STR_EQ(pb_str(m, l->key), "bytes");
		CHECK_INT_EQ(l->num, 4096);
		CHECK_STR_EQ(pb_str(m, l->num_unit), "bytes");
		CHECK_INT_EQ(l->str, 0);
	} else {
		CHECK_MSG(0, "expected one sample with one label");
	}
	perftools__profiles__profile__free_unpacked(m, NULL);
	pp_profile_free(p);
}

/* A profile with nothing in it is still a valid one. */
static void test_empty_profile(void)
{
	struct pp_profile_spec spec = {
		.sample_types = { { "threads", "count" } }, .n_sample_types = 1,
		.period_type = { "threads", "count" }, .period = 1,
	};
	struct pp_profile *p = pp_profile_new(&spec);
	PbProfile *m = write_and_decode(p, 0);
	if (m) {
		CHECK_STR_EQ(m->string_table[0], "");
		CHECK_INT_EQ(m->n_string_table, 3);
		CHECK_INT_EQ(m->n_sample + m->n_location + m->n_function + m->n_mapping, 0);
		CHECK_INT_EQ(m->n_sample_type, 1);
	}
	perftools__profiles__profile__free_unpacked(m, NULL);
	pp_profile_free(p);
}

/* Writing twice gives the same bytes: nothing is consumed by a write. */
static void test_write_is_repeatable(void)
{
	struct example_ids ids;
	struct pp_profile *p = example_profile(&ids);
	size_t a_len, b_len;
	uint8_t *a = write_bytes(p, EX_DURATION, &a_len), *b = write_bytes(p, EX_DURATION, &b_len);
	CHECK(a_len == b_len && memcmp(a, b, a_len) == 0);
	free(a);
	free(b);
	pp_profile_free(p);
}

int main(void)
{
	RUN(test_header_fields);
	RUN(test_strings_unique_and_indices_in_range);
	RUN(test_mappings);
	RUN(test_unsymbolized_mapping);
	RUN(test_locations_inline_chain_innermost_first);
	RUN(test_ids_dense);
	RUN(test_samples_leaf_first_with_labels);
	RUN(test_label_num_unit);
	RUN(test_empty_profile);
	RUN(test_write_is_repeatable);
	return check_summary("test_profile_writer");
}
