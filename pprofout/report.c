/* report.c — `top` and `folded` views of a built profile (report.h).
 *
 * Nodes are functions, by name, as in go tool pprof's default granularity:
 * every line of a location's inline chain is a node.  flat: the value of
 * samples whose innermost frame is the function; cum: the value of samples
 * in which it appears at least once.  The value is the one go tool pprof
 * shows first: default_sample_type's (alloc_space in an allocs profile),
 * else the last, unless the view (select.h) names another; the view's
 * tag filters drop samples before anything is counted, as go tool pprof
 * drops them from the profile.
 */
#include "report.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "internal.h"

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

void pp_format_value(int64_t ns, int is_time, char *buf, size_t len)
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

void pp_format_percent(int64_t v, double total, char *buf, size_t len)
{
	double r = total ? 100.0 * (double)(v < 0 ? -v : v) / total : 0;
	if (r >= 99.95 && r <= 100.05)
		snprintf(buf, len, "  100%%");
	else if (r >= 1.0)
		snprintf(buf, len, "%5.2f%%", r);
	else
		snprintf(buf, len, "%5.2g%%", r);
}

/* As go tool pprof heads a report made with filters. */
static void active_filters(const struct pp_view *v, FILE *out)
{
	if (!v || !v->n_filters)
		return;
	fputs("Active filters:\n", out);
	for (size_t k = 0; k < v->n_filters; k++)
		fprintf(out, "   %s=%s\n", v->filters[k].ignore ? "tagignore" : "tagfocus",
			v->filters[k].spec);
}

/* flat and cum of every function, over the samples v keeps. */
static int top_nodes(const struct pp_profile *p, const struct pp_view *v, struct nodes *t,
		     int64_t *total)
{
	struct pp_frames nb = { 0 };
	size_t ns = pp_profile_count(p, 's'), vix = pp_view_value_index(v, p);
	int r = 0;
	for (size_t i = 0; i < ns && !r; i++) {
		int64_t val;
		if (!pp_view_keeps(v, p, i))
			continue;
		ssize_t n = pp_sample_frames(p, i, vix, &nb, &val);
		r = n < 0 ? -1 : 0;
		*total += val;
		for (ssize_t k = 0; k < n; k++) {
			struct node *e = node_for(t, nb.v[k]);
			if (!e)
				continue;
			e->inline_only &= nb.inlined[k];
			if (k == 0)
				e->flat += val;
			if (e->seen != i + 1) {
				e->cum += val;
				e->seen = i + 1;
			}
		}
	}
	pp_frames_free(&nb);
	return r;
}

int pp_report_top(const struct pp_profile *p, const struct pp_view *v, FILE *out)
{
	struct nodes t = { 0 };
	int64_t total = 0;
	if (top_nodes(p, v, &t, &total)) {
		free(t.v);
		free(t.slots);
		return -1;
	}
	if (t.n)
		qsort(t.v, t.n, sizeof *t.v, cmp_node);
	char a[32], b[32], c[32];
	size_t nv = pp_profile_n_values(p);
	int is_time = nv && strcmp(pp_profile_value_unit(p, pp_view_value_index(v, p)), "nanoseconds") == 0;
	pp_format_value(total, is_time, a, sizeof a);
	active_filters(v, out);
	fprintf(out, "Showing nodes accounting for %s, 100%% of %s total\n", a, a);
	fprintf(out, "%10s %6s %6s %10s %6s\n", "flat", "flat%", "sum%", "cum", "cum%");
	int64_t sum = 0;
	double d = total ? (double)total : 1;
	for (size_t i = 0; i < t.n; i++) {
		char pf[16], ps[16], pc[16];
		sum += t.v[i].flat;
		pp_format_value(t.v[i].flat, is_time, b, sizeof b);
		pp_format_value(t.v[i].cum, is_time, c, sizeof c);
		pp_format_percent(t.v[i].flat, d, pf, sizeof pf);
		pp_format_percent(sum, d, ps, sizeof ps);
		pp_format_percent(t.v[i].cum, d, pc, sizeof pc);
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
static char *folded_line(const struct pp_profile *p, size_t i, size_t vix, struct pp_frames *b,
			 int64_t *v)
{
	ssize_t got = pp_sample_frames(p, i, vix, b, v);
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

int pp_report_folded(const struct pp_profile *p, const struct pp_view *v, FILE *out)
{
	struct pp_frames b = { 0 };
	size_t ns = pp_profile_count(p, 's'), n = 0, vix = pp_view_value_index(v, p);
	struct folded *f = calloc(ns ? ns : 1, sizeof *f);
	int r = -1;
	if (!f)
		goto out;
	for (size_t i = 0; i < ns; i++) {
		if (!pp_view_keeps(v, p, i))
			continue;
		if (!(f[n].stack = folded_line(p, i, vix, &b, &f[n].value)))
			goto out;
		n++;
	}
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
	pp_frames_free(&b);
	return r;
}
