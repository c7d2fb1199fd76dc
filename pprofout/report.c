/* report.c — `top` and `folded` views of a built profile (report.h).
 *
 * Nodes are functions, by name, as in go tool pprof's default granularity:
 * every line of a location's inline chain is a node.  flat: the value of
 * samples whose innermost frame is the function; cum: the value of samples
 * in which it appears at least once.
 */
#include "report.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FRAMES 4096

struct node {
	const char *name;
	int64_t flat, cum;
	uint64_t seen;          /* last sample that counted it in cum */
	int inline_only;        /* never seen as a physical frame: "(inline)" */
};

struct nodes {
	struct node *v;
	size_t n, cap;
};

static struct node *node_for(struct nodes *t, const char *name)
{
	for (size_t i = 0; i < t->n; i++)   /* names are interned: compare pointers */
		if (t->v[i].name == name)
			return &t->v[i];
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 64;
		struct node *v = realloc(t->v, cap * sizeof *v);
		if (!v)
			return NULL;
		t->v = v;
		t->cap = cap;
	}
	t->v[t->n] = (struct node){ name, 0, 0, 0, 1 };
	return &t->v[t->n++];
}

/* The stack of sample i as function names, innermost first; inlined[k]
 * (if not NULL) says whether names[k] is an inlined frame. */
static size_t sample_names(const struct pp_profile *p, size_t i, const char **names, char *inlined,
			   int64_t *value)
{
	const uint64_t *locs;
	const int64_t *values;
	size_t nl = pp_profile_sample(p, i, &locs, &values), n = 0;
	*value = values[pp_profile_n_values(p) - 1];
	for (size_t k = 0; k < nl && n < MAX_FRAMES; k++) {
		size_t m = pp_profile_location_names(p, locs[k], names + n, MAX_FRAMES - n);
		for (size_t j = 0; inlined && j < m; j++)
			inlined[n + j] = j + 1 < m;     /* all but a location's last line */
		n += m;
	}
	return n;
}

static int cmp_node(const void *a, const void *b)
{
	const struct node *x = a, *y = b;
	if (x->flat != y->flat)
		return x->flat > y->flat ? -1 : 1;
	if (x->cum != y->cum)
		return x->cum > y->cum ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* pprof's style: the largest unit that keeps the value >= 1, two decimals,
 * ".00" dropped ("2.50s", "10ms"). */
static void scaled(int64_t ns, char *buf, size_t len)
{
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

int pp_report_top(const struct pp_profile *p, FILE *out)
{
	struct nodes t = { 0 };
	const char **names = malloc(MAX_FRAMES * sizeof *names);
	char *inlined = malloc(MAX_FRAMES);
	int64_t total = 0;
	size_t ns = pp_profile_count(p, 's');
	if (!names || !inlined) {
		free(names);
		free(inlined);
		return -1;
	}
	for (size_t i = 0; i < ns; i++) {
		int64_t v;
		size_t n = sample_names(p, i, names, inlined, &v);
		total += v;
		for (size_t k = 0; k < n; k++) {
			struct node *e = node_for(&t, names[k]);
			if (!e)
				continue;
			e->inline_only &= inlined[k];
			if (k == 0)
				e->flat += v;
			if (e->seen != i + 1) {
				e->cum += v;
				e->seen = i + 1;
			}
		}
	}
	qsort(t.v, t.n, sizeof *t.v, cmp_node);
	char a[32], b[32], c[32];
	scaled(total, a, sizeof a);
	fprintf(out, "Showing nodes accounting for %s, 100%% of %s total\n", a, a);
	fprintf(out, "%10s %6s %6s %10s %6s\n", "flat", "flat%", "sum%", "cum", "cum%");
	int64_t sum = 0;
	double d = total ? (double)total : 1;
	for (size_t i = 0; i < t.n; i++) {
		sum += t.v[i].flat;
		scaled(t.v[i].flat, b, sizeof b);
		scaled(t.v[i].cum, c, sizeof c);
		fprintf(out, "%10s %5.2f%% %5.2f%% %10s %5.2f%%  %s%s\n", b, 100.0 * (double)t.v[i].flat / d,
			100.0 * (double)sum / d, c, 100.0 * (double)t.v[i].cum / d, t.v[i].name,
			t.v[i].inline_only ? " (inline)" : "");
	}
	free(t.v);
	free(names);
	free(inlined);
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
static char *folded_line(const struct pp_profile *p, size_t i, const char **names, int64_t *v)
{
	size_t n = sample_names(p, i, names, NULL, v), len = 1;
	for (size_t k = 0; k < n; k++)
		len += strlen(names[k]) + 1;
	char *line = malloc(len), *w = line;
	if (!line)
		return NULL;
	for (size_t k = n; k-- > 0;) {
		for (const char *c = names[k]; *c; c++)
			*w++ = *c == ';' || *c == ' ' || *c == '\n' ? '_' : *c;
		if (k)
			*w++ = ';';
	}
	*w = 0;
	return line;
}

int pp_report_folded(const struct pp_profile *p, FILE *out)
{
	const char **names = malloc(MAX_FRAMES * sizeof *names);
	size_t ns = pp_profile_count(p, 's'), n = 0;
	struct folded *f = calloc(ns ? ns : 1, sizeof *f);
	int r = -1;
	if (!names || !f)
		goto out;
	for (size_t i = 0; i < ns; i++, n++)
		if (!(f[n].stack = folded_line(p, i, names, &f[n].value)))
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
	free(names);
	return r;
}
