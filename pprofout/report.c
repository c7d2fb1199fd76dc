/* report.c — `top` and `folded` views of a built profile (report.h).
 *
 * Nodes are functions, by name, as in go tool pprof's default granularity:
 * every line of a location's inline chain is a node.  flat: the value of
 * samples whose innermost frame is the function; cum: the value of samples
 * in which it appears at least once.  The value is the one go tool pprof
 * shows first: default_sample_type's (alloc_space in an allocs profile),
 * else the last.
 */
#include "report.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>


struct node {
	const char *name;
	int64_t flat, cum;
	uint64_t seen;          /* last sample that counted it in cum */
	int inline_only;        /* never seen as a physical frame: "(inline)" */
};

struct nodes {
	struct node *v;
	size_t n, cap;
	size_t *slots;          /* hash of name pointers -> index + 1 */
	size_t nslots;
};

static size_t slot_of(const struct nodes *t, const char *name)
{
	/* Names are interned by the builder: the pointer is the identity. */
	uintptr_t h = (uintptr_t)name;
	h ^= h >> 17;
	h *= 0x9e3779b97f4a7c15ULL;
	size_t j = (size_t)h & (t->nslots - 1);
	while (t->slots[j] && t->v[t->slots[j] - 1].name != name)
		j = (j + 1) & (t->nslots - 1);
	return j;
}

static int grow_nodes(struct nodes *t)
{
	size_t cap = t->cap ? t->cap * 2 : 64;
	struct node *v = realloc(t->v, cap * sizeof *v);
	size_t *slots = calloc(cap * 2, sizeof *slots);
	if (!v || !slots) {
		if (v)
			t->v = v;
		free(slots);
		return -1;
	}
	t->v = v;
	t->cap = cap;
	free(t->slots);
	t->slots = slots;
	t->nslots = cap * 2;
	for (size_t i = 0; i < t->n; i++)
		t->slots[slot_of(t, t->v[i].name)] = i + 1;
	return 0;
}

static struct node *node_for(struct nodes *t, const char *name)
{
	if (t->n == t->cap && grow_nodes(t))
		return NULL;
	size_t j = slot_of(t, name);
	if (t->slots[j])
		return &t->v[t->slots[j] - 1];
	t->v[t->n] = (struct node){ name, 0, 0, 0, 1 };
	t->slots[j] = ++t->n;
	return &t->v[t->n - 1];
}

/* A sample's frames as names, grown to the deepest sample: a profile
 * read from elsewhere may hold stacks of any depth. */
struct names {
	const char **v;
	char *inlined;          /* v[k] is an inlined frame */
	size_t cap;
};

static int names_fit(struct names *b, size_t n)
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

/* The stack of sample i as function names in b, innermost first; -1 if
 * out of memory. */
static ssize_t sample_names(const struct pp_profile *p, size_t i, struct names *b, int64_t *value)
{
	const uint64_t *locs;
	const int64_t *values;
	size_t nl = pp_profile_sample(p, i, &locs, &values), n = 0, depth = 0;
	size_t nv = pp_profile_n_values(p);
	*value = values && nv ? values[pp_profile_default_value(p)] : 0;
	for (size_t k = 0; k < nl; k++)
		depth += pp_profile_location_depth(p, locs[k]);
	if (names_fit(b, depth))
		return -1;
	for (size_t k = 0; k < nl; k++) {
		size_t m = pp_profile_location_names(p, locs[k], b->v + n, depth - n);
		for (size_t j = 0; j < m; j++)
			b->inlined[n + j] = j + 1 < m;  /* all but a location's last line */
		n += m;
	}
	return (ssize_t)n;
}

static int cmp_node(const void *a, const void *b)
{
	const struct node *x = a, *y = b;
	if (x->flat != y->flat)
		return x->flat > y->flat ? -1 : 1;
	int c = strcmp(x->name, y->name);       /* go tool pprof's tie order */
	if (c)
		return c;
	return (x->cum < y->cum) - (x->cum > y->cum);
}

/* pprof's style: times in the largest unit that keeps the value >= 1, two
 * decimals, ".00" dropped ("2.50s", "10ms"); counts as plain numbers. */
static void scaled(int64_t ns, int is_time, char *buf, size_t len)
{
	if (!is_time) {
		snprintf(buf, len, "%" PRId64, ns);
		return;
	}
	if (ns == 0) {
		snprintf(buf, len, "0");
		return;
	}
	static const struct { const char *unit; double div; } units[] = {
		{ "hrs", 3600e9 }, { "mins", 60e9 }, { "s", 1e9 }, { "ms", 1e6 }, { "us", 1e3 }, { "ns", 1 },
	};
	size_t u = 0;
	while (u + 1 < sizeof units / sizeof units[0] && (double)llabs(ns) < units[u].div)
		u++;
	snprintf(buf, len, "%.2f", (double)ns / units[u].div);
	size_t n = strlen(buf);
	if (n > 3 && strcmp(buf + n - 3, ".00") == 0)
		buf[n - 3] = 0;
	strncat(buf, units[u].unit, len - strlen(buf) - 1);
}

/* go tool pprof's percentages: "  100%", "43.20%", "0.45%", "    0%". */
static void percent(int64_t v, double total, char *buf, size_t len)
{
	double r = total ? 100.0 * (double)(v < 0 ? -v : v) / total : 0;
	if (r >= 99.95 && r <= 100.05)
		snprintf(buf, len, "  100%%");
	else if (r >= 1.0)
		snprintf(buf, len, "%5.2f%%", r);
	else
		snprintf(buf, len, "%5.2g%%", r);
}

int pp_report_top(const struct pp_profile *p, FILE *out)
{
	struct nodes t = { 0 };
	struct names nb = { 0 };
	int64_t total = 0;
	size_t ns = pp_profile_count(p, 's');
	int r = 0;
	for (size_t i = 0; i < ns && !r; i++) {
		int64_t v;
		ssize_t n = sample_names(p, i, &nb, &v);
		r = n < 0 ? -1 : 0;
		total += v;
		for (ssize_t k = 0; k < n; k++) {
			struct node *e = node_for(&t, nb.v[k]);
			if (!e)
				continue;
			e->inline_only &= nb.inlined[k];
			if (k == 0)
				e->flat += v;
			if (e->seen != i + 1) {
				e->cum += v;
				e->seen = i + 1;
			}
		}
	}
	free(nb.v);
	free(nb.inlined);
	if (r) {
		free(t.v);
		free(t.slots);
		return -1;
	}
	if (t.n)
		qsort(t.v, t.n, sizeof *t.v, cmp_node);
	char a[32], b[32], c[32];
	size_t nv = pp_profile_n_values(p);
	int is_time = nv && strcmp(pp_profile_value_unit(p, pp_profile_default_value(p)), "nanoseconds") == 0;
	scaled(total, is_time, a, sizeof a);
	fprintf(out, "Showing nodes accounting for %s, 100%% of %s total\n", a, a);
	fprintf(out, "%10s %6s %6s %10s %6s\n", "flat", "flat%", "sum%", "cum", "cum%");
	int64_t sum = 0;
	double d = total ? (double)total : 1;
	for (size_t i = 0; i < t.n; i++) {
		char pf[16], ps[16], pc[16];
		sum += t.v[i].flat;
		scaled(t.v[i].flat, is_time, b, sizeof b);
		scaled(t.v[i].cum, is_time, c, sizeof c);
		percent(t.v[i].flat, d, pf, sizeof pf);
		percent(sum, d, ps, sizeof ps);
		percent(t.v[i].cum, d, pc, sizeof pc);
		fprintf(out, "%10s %s %s %10s %s  %s%s\n", b, pf, ps, c, pc, t.v[i].name,
			t.v[i].inline_only ? " (inline)" : "");
	}
	free(t.v);
	free(t.slots);
	return ferror(out) ? -1 : 0;
}

struct folded {
	char *stack;
	int64_t value;
};

static int cmp_folded(const void *a, const void *b)
{
	return strcmp(((const struct folded *)a)->stack, ((const struct folded *)b)->stack);
}

/* "root;...;leaf" for sample i; ';' and ' ' separate fields, so they are
 * replaced in names. */
static char *folded_line(const struct pp_profile *p, size_t i, struct names *b, int64_t *v)
{
	ssize_t got = sample_names(p, i, b, v);
	if (got < 0)
		return NULL;
	size_t n = (size_t)got, len = 1;
	for (size_t k = 0; k < n; k++)
		len += strlen(b->v[k]) + 1;
	char *line = malloc(len), *w = line;
	if (!line)
		return NULL;
	for (size_t k = n; k-- > 0;) {
		for (const char *c = b->v[k]; *c; c++)
			*w++ = *c == ';' || *c == ' ' || *c == '\n' ? '_' : *c;
		if (k)
			*w++ = ';';
	}
	*w = 0;
	return line;
}

int pp_report_folded(const struct pp_profile *p, FILE *out)
{
	struct names b = { 0 };
	size_t ns = pp_profile_count(p, 's'), n = 0;
	struct folded *f = calloc(ns ? ns : 1, sizeof *f);
	int r = -1;
	if (!f)
		goto out;
	for (size_t i = 0; i < ns; i++, n++)
		if (!(f[n].stack = folded_line(p, i, &b, &f[n].value)))
			goto out;
	/* Samples that differ only in labels or exact pcs fold into one line. */
	qsort(f, n, sizeof *f, cmp_folded);
	for (size_t i = 0; i < n;) {
		int64_t sum = 0;
		size_t j = i;
		while (j < n && strcmp(f[j].stack, f[i].stack) == 0)
			sum += f[j++].value;
		fprintf(out, "%s %" PRId64 "\n", f[i].stack, sum);
		i = j;
	}
	r = ferror(out) ? -1 : 0;
out:
	for (size_t i = 0; f && i < n; i++)
		free(f[i].stack);
	free(f);
	free(b.v);
	free(b.inlined);
	return r;
}
