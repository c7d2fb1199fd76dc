/* test_profile_builder.c — tests the pprof profile builder (pprofout/
 * profile.h) against docs/FORMATS.md §1: strings, functions, locations,
 * mappings and samples are deduplicated (the same stack added 1000 times
 * is one sample with the summed values), ids are dense 1..N in order of
 * first use (also after the lookup tables grow), every sample holds exactly
 * n_sample_types values, labels tell samples apart, and reading back
 * (pp_profile_sample, pp_profile_location_names) gives the inline chain
 * innermost first and the stack leaf first.
 */
#include "test_profile_common.c"

static struct pp_profile *cpu_profile(void)
{
	struct pp_profile_spec spec = cpu_spec();
	struct pp_profile *p = pp_profile_new(&spec);
	if (!p)
		abort();
	return p;
}

static const struct pp_line F[] = { { "f", NULL, "/f.c", 10, 1 } };
static const struct pp_line G[] = { { "g", NULL, "/f.c", 20, 15 } };

static void test_same_stack_1000_times_is_one_sample(void)
{
	struct pp_profile *p = cpu_profile();
	struct pp_mapping m = { 0x1000, 0x2000, 0, "/bin/x", NULL, 1 };
	const struct pp_label lab[] = { { "thread", "w", 0, NULL }, { "tid", NULL, 7, NULL } };
	for (int i = 0; i < 1000; i++) {
		uint64_t mid = pp_profile_mapping(p, &m);
		uint64_t stack[] = { pp_profile_location(p, mid, 0x1010, F, 1),
				     pp_profile_location(p, mid, 0x1020, G, 1) };
		int64_t v[] = { 1, 250 + i };
		CHECK_INT_EQ(pp_profile_add(p, stack, 2, v, lab, 2), 0);
	}
	CHECK_INT_EQ(pp_profile_count(p, 's'), 1);
	CHECK_INT_EQ(pp_profile_count(p, 'l'), 2);
	CHECK_INT_EQ(pp_profile_count(p, 'f'), 2);
	CHECK_INT_EQ(pp_profile_count(p, 'm'), 1);
	/* "", samples, count, cpu, nanoseconds, /bin/x, f, /f.c, g, thread, w, tid */
	CHECK_INT_EQ(pp_profile_count(p, 'S'), 12);
	const uint64_t *locs;
	const int64_t *values;
	CHECK_INT_EQ(pp_profile_sample(p, 0, &locs, &values), 2);
	CHECK_INT_EQ(values[0], 1000);
	CHECK_INT_EQ(values[1], 1000 * 250 + 999 * 1000 / 2);
	CHECK_U64_EQ(locs[0], 1);
	CHECK_U64_EQ(locs[1], 2);
	pp_profile_free(p);
}

static void test_ids_dense_in_order_of_first_use(void)
{
	struct pp_profile *p = cpu_profile();
	struct pp_mapping a = { 0x1000, 0x2000, 0, "/bin/a", "aa", 1 };
	struct pp_mapping b = { 0x3000, 0x4000, 0x1000, "/lib/b.so", NULL, 0 };
	struct pp_mapping c = { 0x5000, 0x6000, 0, "/lib/c.so", NULL, 0 };
	CHECK_U64_EQ(pp_profile_mapping(p, &b), 1);
	CHECK_U64_EQ(pp_profile_mapping(p, &a), 2);
	CHECK_U64_EQ(pp_profile_mapping(p, &b), 1);
	CHECK_U64_EQ(pp_profile_mapping(p, &c), 3);
	CHECK_U64_EQ(pp_profile_mapping(p, &a), 2);
	CHECK_U64_EQ(pp_profile_location(p, 2, 0x1100, G, 1), 1);
	CHECK_U64_EQ(pp_profile_location(p, 1, 0x3100, F, 1), 2);
	CHECK_U64_EQ(pp_profile_location(p, 2, 0x1100, G, 1), 1);
	CHECK_U64_EQ(pp_profile_location(p, 2, 0x1200, F, 1), 3);
	/* Same address in another mapping: another location. */
	CHECK_U64_EQ(pp_profile_location(p, 3, 0x1200, F, 1), 4);
	CHECK_INT_EQ(pp_profile_count(p, 'm'), 3);
	CHECK_INT_EQ(pp_profile_count(p, 'l'), 4);
	CHECK_INT_EQ(pp_profile_count(p, 'f'), 2);
	pp_profile_free(p);
}

/* A mapping is found again by its range, offset and file: symbolized is
 * the OR of what was said. */
static void test_mapping_dedup_merges_symbolized(void)
{
	struct pp_profile *p = cpu_profile();
	struct pp_mapping m = { 0x1000, 0x2000, 0, "/bin/a", "aa", 0 };
	uint64_t id = pp_profile_mapping(p, &m);
	m.symbolized = 1;
	CHECK_U64_EQ(pp_profile_mapping(p, &m), id);
	m.offset = 0x1000;
	CHECK_U64_EQ(pp_profile_mapping(p, &m), id + 1);
	CHECK_INT_EQ(pp_profile_count(p, 'm'), 2);
	PbProfile *d = write_and_decode(p, 0);
	if (d && d->n_mapping == 2) {
		CHECK(d->mapping[0]->has_functions);
		CHECK(d->mapping[0]->has_inline_frames);
	}
	perftools__profiles__profile__free_unpacked(d, NULL);
	pp_profile_free(p);
}

/* Functions are deduplicated by content, across locations; a function
 * differing only by start line or file is another function. */
static void test_functions_dedup_by_content(void)
{
	struct pp_profile *p = cpu_profile();
	const struct pp_line a[] = { { "f", NULL, "/f.c", 11, 1 }, { "g", NULL, "/f.c", 21, 15 } };
	const struct pp_line b[] = { { "f", NULL, "/f.c", 12, 2 } };            /* start_line */
	const struct pp_line c[] = { { "f", NULL, "/other.c", 12, 1 } };        /* filename */
	const struct pp_line d[] = { { "f", "_Z1fv", "/f.c", 13, 1 } };         /* system_name */
	pp_profile_location(p, 0, 0x10, F, 1);
	pp_profile_location(p, 0, 0x20, a, 2);
	CHECK_INT_EQ(pp_profile_count(p, 'f'), 2);
	pp_profile_location(p, 0, 0x30, b, 1);
	pp_profile_location(p, 0, 0x40, c, 1);
	pp_profile_location(p, 0, 0x50, d, 1);
	CHECK_INT_EQ(pp_profile_count(p, 'f'), 5);
	CHECK_INT_EQ(pp_profile_count(p, 'l'), 5);
	pp_profile_free(p);
}

static void test_every_sample_has_n_sample_types_values(void)
{
	struct pp_profile_spec spec = {
		.sample_types = { { "a", "count" }, { "b", "bytes" }, { "c", "nanoseconds" } },
		.n_sample_types = 3, .period_type = { "a", "count" }, .period = 1,
	};
	struct pp_profile *p = pp_profile_new(&spec);
	uint64_t l1 = pp_profile_location(p, 0, 0x10, F, 1), l2 = pp_profile_location(p, 0, 0x20, G, 1);
	const int64_t v[] = { 1, 2, 3 }, w[] = { 10, 20, 30 };
	pp_profile_add(p, &l1, 1, v, NULL, 0);
	pp_profile_add(p, &l2, 1, w, NULL, 0);
	pp_profile_add(p, &l1, 1, w, NULL, 0);
	CHECK_INT_EQ(pp_profile_n_values(p), 3);
	const uint64_t *locs;
	const int64_t *values;
	pp_profile_sample(p, 0, &locs, &values);
	CHECK(values[0] == 11 && values[1] == 22 && values[2] == 33);
	pp_profile_sample(p, 1, &locs, &values);
	CHECK(values[0] == 10 && values[1] == 20 && values[2] == 30);
	PbProfile *d = write_and_decode(p, 0);
	CHECK(d && d->n_sample == 2 && d->n_sample_type == 3);
	for (size_t i = 0; d && i < d->n_sample; i++)
		CHECK_INT_EQ(d->sample[i]->n_value, 3);
	perftools__profiles__profile__free_unpacked(d, NULL);
	pp_profile_free(p);
}

static void test_labels_distinguish_samples(void)
{
	struct pp_profile *p = cpu_profile();
	uint64_t stack[] = { pp_profile_location(p, 0, 0x10, F, 1), pp_profile_location(p, 0, 0x20, G, 1) };
	const int64_t v[] = { 1, 100 };
	const struct pp_label t1[] = { { "thread", "one", 0, NULL }, { "tid", NULL, 1, NULL } };
	const struct pp_label t2[] = { { "thread", "two", 0, NULL }, { "tid", NULL, 1, NULL } };
	const struct pp_label t3[] = { { "thread", "one", 0, NULL }, { "tid", NULL, 2, NULL } };
	const struct pp_label t4[] = { { "thread", "one", 0, NULL }, { "tid", NULL, 1, "id" } };
	pp_profile_add(p, stack, 2, v, t1, 2);
	pp_profile_add(p, stack, 2, v, t2, 2);
	CHECK_INT_EQ(pp_profile_count(p, 's'), 2);
	pp_profile_add(p, stack, 2, v, t1, 2);
	pp_profile_add(p, stack, 2, v, t2, 2);
	CHECK_INT_EQ(pp_profile_count(p, 's'), 2);
	pp_profile_add(p, stack, 2, v, t3, 2);          /* numeric label differs */
	CHECK_INT_EQ(pp_profile_count(p, 's'), 3);
	pp_profile_add(p, stack, 2, v, t4, 2);          /* unit differs */
	CHECK_INT_EQ(pp_profile_count(p, 's'), 4);
	pp_profile_add(p, stack, 2, v, NULL, 0);        /* no labels */
	pp_profile_add(p, stack, 1, v, t1, 2);          /* shorter stack */
	CHECK_INT_EQ(pp_profile_count(p, 's'), 6);
	const uint64_t *locs;
	const int64_t *values;
	pp_profile_sample(p, 0, &locs, &values);
	CHECK(values[0] == 2 && values[1] == 200);
	pp_profile_sample(p, 1, &locs, &values);
	CHECK(values[0] == 2 && values[1] == 200);
	pp_profile_free(p);
}

/* The order of stack frames matters: a reversed stack is another sample. */
static void test_stack_order_matters(void)
{
	struct pp_profile *p = cpu_profile();
	uint64_t f = pp_profile_location(p, 0, 0x10, F, 1), g = pp_profile_location(p, 0, 0x20, G, 1);
	uint64_t fg[] = { f, g }, gf[] = { g, f };
	const int64_t v[] = { 1, 1 };
	pp_profile_add(p, fg, 2, v, NULL, 0);
	pp_profile_add(p, gf, 2, v, NULL, 0);
	CHECK_INT_EQ(pp_profile_count(p, 's'), 2);
	const uint64_t *locs;
	const int64_t *values;
	CHECK_INT_EQ(pp_profile_sample(p, 1, &locs, &values), 2);
	CHECK(locs[0] == g && locs[1] == f);
	pp_profile_free(p);
}

static void test_location_names_innermost_first(void)
{
	struct example_ids ids;
	struct pp_profile *p = example_profile(&ids);
	const char *names[4] = { 0 };
	CHECK_INT_EQ(pp_profile_location_names(p, ids.loc[0], names, 4), 2);
	CHECK_STR_EQ(names[0], "futex_wait");
	CHECK_STR_EQ(names[1], "__lll_lock_wait");
	CHECK_INT_EQ(pp_profile_location_names(p, ids.loc[2], names, 1), 1);   /* max */
	CHECK_STR_EQ(names[0], "helper");
	/* No lines: one name for text reports, as go tool pprof shows it:
	 * "[file]" of its mapping, else the address. */
	CHECK_INT_EQ(pp_profile_location_names(p, ids.loc[4], names, 4), 1);
	CHECK_MSG(names[0][0] == '[' || strncmp(names[0], "0x", 2) == 0, "fallback name %s", names[0]);
	CHECK_INT_EQ(pp_profile_location_names(p, 0, names, 4), 0);
	CHECK_INT_EQ(pp_profile_location_names(p, 99, names, 4), 0);
	/* Interned: the same name is the same pointer. */
	const char *a[2], *b[2];
	pp_profile_location_names(p, ids.loc[3], a, 2);
	pp_profile_location_names(p, ids.loc[3], b, 2);
	CHECK(a[0] == b[0]);
	/* First-use order and merged values. */
	CHECK_INT_EQ(pp_profile_count(p, 's'), 4);
	const uint64_t *locs;
	const int64_t *values;
	CHECK_INT_EQ(pp_profile_sample(p, 0, &locs, &values), 3);
	CHECK(locs[0] == ids.loc[0] && locs[2] == ids.loc[3]);
	CHECK(values[0] == 4 && values[1] == 4 * EX_PERIOD);
	pp_profile_free(p);
}

/* A NULL name is "??", a NULL system_name is the name, a NULL file "". */
static void test_null_names(void)
{
	struct pp_profile *p = cpu_profile();
	const struct pp_line l[] = { { NULL, NULL, NULL, 0, 0 }, { "n", NULL, NULL, 0, 0 } };
	uint64_t id = pp_profile_location(p, 0, 0x10, l, 2);
	const char *names[2];
	CHECK_INT_EQ(pp_profile_location_names(p, id, names, 2), 2);
	CHECK_STR_EQ(names[0], "??");
	CHECK_STR_EQ(names[1], "n");
	PbProfile *d = write_and_decode(p, 0);
	if (d && d->n_function == 2) {
		CHECK_STR_EQ(pb_str(d, d->function[0]->system_name), "??");
		CHECK_STR_EQ(pb_str(d, d->function[1]->system_name), "n");
		CHECK_INT_EQ(d->function[1]->filename, 0);
	} else {
		CHECK_MSG(0, "expected 2 functions");
	}
	perftools__profiles__profile__free_unpacked(d, NULL);
	pp_profile_free(p);
}

/* Enough entries to grow every lookup table several times: ids stay dense
 * and every entry is still found after the tables are rehashed. */
static void test_many_entries(void)
{
	enum { N = 5000 };
	struct pp_profile *p = cpu_profile();
	char name[32], file[32];
	for (int round = 0; round < 2; round++) {
		for (uint64_t i = 0; i < N; i++) {
			snprintf(name, sizeof name, "fn%" PRIu64, i);
			snprintf(file, sizeof file, "/lib/m%" PRIu64 ".so", i % 100);
			struct pp_mapping m = { 0x1000 * (i % 100), 0x1000 * (i % 100) + 0x1000, 0, file, NULL, 1 };
			uint64_t mid = pp_profile_mapping(p, &m);
			const struct pp_line l[] = { { name, NULL, "/f.c", (int64_t)i, 1 } };
			uint64_t loc = pp_profile_location(p, mid, 0x10000 + i, l, 1);
			const int64_t v[] = { 1, (int64_t)i };
			if (mid != i % 100 + 1 || loc != i + 1 || pp_profile_add(p, &loc, 1, v, NULL, 0)) {
				CHECK_MSG(0, "round %d entry %" PRIu64 ": mapping %" PRIu64 " location %" PRIu64,
					  round, i, mid, loc);
				break;
			}
		}
	}
	CHECK_INT_EQ(pp_profile_count(p, 'm'), 100);
	CHECK_INT_EQ(pp_profile_count(p, 'l'), N);
	CHECK_INT_EQ(pp_profile_count(p, 'f'), N);
	CHECK_INT_EQ(pp_profile_count(p, 's'), N);
	const uint64_t *locs;
	const int64_t *values;
	pp_profile_sample(p, N - 1, &locs, &values);
	CHECK(locs[0] == N && values[0] == 2 && values[1] == 2 * (N - 1));
	pp_profile_free(p);
}

/* A sample with no locations at all is still a sample.  (Not NULL: the
 * builder hands it to memcpy and memcmp, which UBSan rejects.) */
static void test_empty_stack(void)
{
	struct pp_profile *p = cpu_profile();
	const int64_t v[] = { 1, 5 };
	const uint64_t none[1] = { 0 };
	CHECK_INT_EQ(pp_profile_add(p, none, 0, v, NULL, 0), 0);
	CHECK_INT_EQ(pp_profile_add(p, none, 0, v, NULL, 0), 0);
	CHECK_INT_EQ(pp_profile_count(p, 's'), 1);
	const uint64_t *locs;
	const int64_t *values;
	CHECK_INT_EQ(pp_profile_sample(p, 0, &locs, &values), 0);
	CHECK_INT_EQ(values[1], 10);
	pp_profile_free(p);
	pp_profile_free(NULL);
}

/* A profile read from elsewhere may hold stacks deeper than pprofc's own
 * (2048 frames): the reports once stopped at 4096 names without a word. */
static void test_reports_keep_deep_stacks(void)
{
	struct pp_profile *p = cpu_profile();
	enum { DEPTH = 5000 };
	static uint64_t stack[DEPTH];
	for (int i = 0; i < DEPTH; i++) {
		char name[32];
		snprintf(name, sizeof name, "f%d", i);
		struct pp_line l = { name, NULL, NULL, 0, 0 };
		stack[i] = pp_profile_location(p, 0, 0x1000 + (uint64_t)i, &l, 1);
	}
	int64_t v[] = { 1, 10 };
	CHECK_INT_EQ(pp_profile_add(p, stack, DEPTH, v, NULL, 0), 0);
	char *folded = report_of(p, 'f');
	CHECK(strncmp(folded, "f4999;", 6) == 0);
	CHECK(strstr(folded, ";f0 10\n") != NULL);
	char *top = report_of(p, 't');
	CHECK(strstr(top, " f4999\n") != NULL && strstr(top, " f0\n") != NULL);
	free(folded);
	free(top);
	pp_profile_free(p);
}

int main(void)
{
	RUN(test_same_stack_1000_times_is_one_sample);
	RUN(test_ids_dense_in_order_of_first_use);
	RUN(test_mapping_dedup_merges_symbolized);
	RUN(test_functions_dedup_by_content);
	RUN(test_every_sample_has_n_sample_types_values);
	RUN(test_labels_distinguish_samples);
	RUN(test_stack_order_matters);
	RUN(test_location_names_innermost_first);
	RUN(test_null_names);
	RUN(test_many_entries);
	RUN(test_empty_stack);
	RUN(test_reports_keep_deep_stacks);
	return check_summary("test_profile_builder");
}
