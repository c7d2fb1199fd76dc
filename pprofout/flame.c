/* flame.c — the flame graph writer (flame.h): samples merged into a tree of
 * frames, drawn as an SVG page with its own script (flame_script.c).
 *
 * Orientation: icicle, the root on top and callees below their callers.
 * A page opens at its top, so the widest frames are in view at once
 * however deep the stacks go (a root at the bottom of a 2000-row graph is
 * a scroll away), and it is the way go tool pprof -http draws its flame
 * graph, so the two read alike.
 *
 * Nodes are frames by function name (every line of an inline chain is
 * one, as in the top view), merged with their siblings of the same name;
 * siblings are in name order, so two profiles of one program compare
 * side by side.  A frame's width is the sum of the magnitudes of the
 * chosen value over its samples (a diff profile's negative values draw
 * too).  Frames narrower than MIN_PX are left out with all their callees:
 * their time stays in their caller's self part.  Stacks deeper than
 * MAX_DEPTH frames end in one "[deeper frames not drawn]" frame.
 *
 * Everything that comes from the profile is XML-escaped; bytes that are
 * not UTF-8, and characters XML 1.0 forbids, become U+FFFD, so the page
 * parses whatever the names hold.
 */
#include "flame.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define WIDTH 1200              /* the page, in px */
#define PAD 10                  /* left and right margins */
#define DRAW (WIDTH - 2 * PAD)  /* the root's width */
#define TOP 56                  /* the first row's y: title and buttons above */
#define ROW 16                  /* a row's height: 15 px box, 1 px gap */
#define BOTTOM 34               /* the details and search lines */
#define MIN_PX 0.1              /* narrower frames are not drawn */
#define CHAR_PX 7.3             /* 12 px monospace, as the script assumes */
#define MAX_DEPTH 2048

static const char deeper[] = "[deeper frames not drawn]";

/* ---- the tree ----------------------------------------------------------- */

struct fnode {
	const char *name;               /* interned by the profile, or a literal */
	int64_t total, self;
	size_t child, next;             /* first child, next sibling; 0: none */
	uint32_t depth;
	int inline_only;                /* an inlined frame wherever it appears */
};

struct tree {
	struct fnode *v;                /* v[0]: the root */
	size_t n, cap;
	size_t *slots;                  /* (parent, name) -> index; 0: empty */
	size_t nslots;
};

static size_t slot_hash(size_t parent, const char *name)
{
	uint64_t h = (uint64_t)(uintptr_t)name * 0x9e3779b97f4a7c15ULL;
	h ^= (uint64_t)parent * 0xff51afd7ed558ccdULL;
	return (size_t)(h ^ (h >> 29));
}

/* The slot of parent's child named name, or the empty slot it would take
 * (parents: each node's parent, kept beside the tree while it is built). */
static size_t *find_slot(struct tree *t, size_t parent, const char *name, const size_t *parents)
{
	size_t j = slot_hash(parent, name) & (t->nslots - 1);
	while (t->slots[j] && (t->v[t->slots[j]].name != name || parents[t->slots[j]] != parent))
		j = (j + 1) & (t->nslots - 1);
	return &t->slots[j];
}

struct builder {
	struct tree t;
	size_t *parent;                 /* per node: its parent */
};

static int grow(struct builder *b)
{
	struct tree *t = &b->t;
	size_t cap = t->cap * 2;
	struct fnode *v = realloc(t->v, cap * sizeof *v);
	if (v)
		t->v = v;
	size_t *parent = realloc(b->parent, cap * sizeof *parent);
	if (parent)
		b->parent = parent;
	size_t *slots = calloc(cap * 2, sizeof *slots);
	if (!v || !parent || !slots) {
		free(slots);
		return -1;
	}
	free(t->slots);
	t->slots = slots;
	t->nslots = cap * 2;
	t->cap = cap;
	for (size_t i = 1; i < t->n; i++)
		*find_slot(t, b->parent[i], t->v[i].name, b->parent) = i;
	return 0;
}

/* parent's child named name, created if new; 0 when out of memory. */
static size_t child_of(struct builder *b, size_t parent, const char *name, int inlined)
{
	struct tree *t = &b->t;
	if (t->n == t->cap && grow(b))
		return 0;
	size_t *slot = find_slot(t, parent, name, b->parent);
	if (*slot) {
		t->v[*slot].inline_only &= inlined;
		return *slot;
	}
	size_t i = *slot = t->n++;
	struct fnode *p = &t->v[parent];
	t->v[i] = (struct fnode){ name, 0, 0, 0, p->child, p->depth + 1, inlined };
	p->child = i;
	b->parent[i] = parent;
	return i;
}

/* A read file's sums fit (read.c checks them), but a profile built in
 * memory saturates its values instead: so do the sums here. */
static void add_sat(int64_t *sum, int64_t a)
{
	if (__builtin_add_overflow(*sum, a, sum))
		*sum = INT64_MAX;
}

/* Adds one sample: frames innermost first, a the magnitude of its value. */
static int add_stack(struct builder *b, const struct pp_frames *f, size_t n, int64_t a)
{
	size_t cur = 0;
	add_sat(&b->t.v[0].total, a);
	for (size_t k = n; k-- > 0;) {
		int cut = n - k > MAX_DEPTH;
		cur = child_of(b, cur, cut ? deeper : f->v[k], cut ? 0 : f->inlined[k]);
		if (!cur)
			return -1;
		add_sat(&b->t.v[cur].total, a);
		if (cut)
			break;
	}
	add_sat(&b->t.v[cur].self, a);
	return 0;
}

static int build_tree(const struct pp_profile *p, const struct pp_view *v, struct tree *out)
{
	struct builder b = { { calloc(256, sizeof *b.t.v), 1, 256, calloc(512, sizeof(size_t)), 512 },
			     calloc(256, sizeof(size_t)) };
	struct pp_frames fr = { 0 };
	int r = b.t.v && b.t.slots && b.parent ? 0 : -1;
	if (!r)
		b.t.v[0] = (struct fnode){ "root", 0, 0, 0, 0, 0, 0 };
	size_t ns = pp_profile_count(p, 's'), vix = pp_view_value_index(v, p);
	for (size_t i = 0; i < ns && !r; i++) {
		int64_t val;
		if (!pp_view_keeps(v, p, i))
			continue;
		ssize_t n = pp_sample_frames(p, i, vix, &fr, &val);
		if (n < 0)
			r = -1;
		else if (val)
			r = add_stack(&b, &fr, (size_t)n, val == INT64_MIN ? INT64_MAX : val < 0 ? -val : val);
	}
	pp_frames_free(&fr);
	free(b.parent);
	free(b.t.slots);
	b.t.slots = NULL;
	*out = b.t;
	return r;
}

/* ---- text: XML-escaped, valid UTF-8, optionally cut to a width ---------- */

/* The characters of name, counted as the browser will (code points). */
static size_t char_count(const char *s)
{
	size_t n = 0;
	for (const unsigned char *c = (const unsigned char *)s; *c; n++) {
		size_t k = pp_utf8_len(c);
		c += k ? k : 1;
	}
	return n;
}

/* Writes at most max characters of s, escaped for XML text and attributes. */
static void write_xml(FILE *out, const char *s, size_t max)
{
	const unsigned char *c = (const unsigned char *)s;
	for (size_t n = 0; *c && n < max; n++) {
		size_t k = pp_utf8_len(c);
		/* U+FFFE and U+FFFF are not XML characters either. */
		int bad = !k || (*c < 0x20 && *c != '\t') || (k == 3 && c[0] == 0xef && c[1] == 0xbf && c[2] >= 0xbe);
		if (bad)
			fputs("\xef\xbf\xbd", out);
		else if (*c == '<')
			fputs("&lt;", out);
		else if (*c == '>')
			fputs("&gt;", out);
		else if (*c == '&')
			fputs("&amp;", out);
		else if (*c == '"')
			fputs("&quot;", out);
		else
			fwrite(c, 1, k, out);
		c += k ? k : 1;
	}
}

/* The label inside a box w px wide: the name, or its start and "..",
 * or nothing when fewer than 3 characters fit (the script does the same). */
static void write_label(FILE *out, const char *name, double x, int y, double w)
{
	double fit = (w - 6) / CHAR_PX;
	if (fit < 3)
		return;
	size_t n = (size_t)fit, len = char_count(name);
	fprintf(out, "<text x=\"%.2f\" y=\"%.1f\">", x + 3, y + 11.5);
	write_xml(out, name, len > n ? n - 2 : n);
	if (len > n)
		fputs("..", out);
	fputs("</text>", out);
}

/* ---- values ------------------------------------------------------------- */

struct units {
	const char *unit;               /* of the value shown */
	int64_t total;
};

/* A value as pprof prints it: "1.23s", "4.50MB", "1234". */
static void format_value(const struct units *u, int64_t v, char *buf, size_t len)
{
	if (strcmp(u->unit, "bytes") != 0) {
		pp_format_value(v, strcmp(u->unit, "nanoseconds") == 0, buf, len);
		return;
	}
	static const char *const names[] = { "B", "kB", "MB", "GB", "TB", "PB" };
	double d = (double)v;
	size_t k = 0;
	while (k + 1 < sizeof names / sizeof names[0] && (d >= 1024 || d <= -1024))
		d /= 1024, k++;
	snprintf(buf, len, "%.2f", d);
	size_t n = strlen(buf);
	if (n > 3 && strcmp(buf + n - 3, ".00") == 0)
		buf[n - 3] = 0;
	strncat(buf, names[k], len - strlen(buf) - 1);
}

static double pct(const struct units *u, int64_t v)
{
	return u->total ? 100.0 * (double)v / (double)u->total : 0;
}

/* ---- colors: warm, by module and name ----------------------------------- */

static uint32_t fnv(const char *s, size_t n)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n && s[i]; i++)
		h = (h ^ (unsigned char)s[i]) * 16777619u;
	return h;
}

/* The length of name's module: a Go package path ("net/http" of
 * "net/http.(*conn).serve"), a C++ or Rust top namespace ("std" of
 * "std::vector<int>::size"); the whole name when it has none. */
static size_t module_len(const char *name)
{
	const char *slash = strrchr(name, '/'), *from = slash ? slash + 1 : name;
	size_t cc = strstr(name, "::") ? (size_t)(strstr(name, "::") - name) : SIZE_MAX;
	size_t stop = strcspn(name, "(<[ ");
	size_t dot = strchr(from, '.') ? (size_t)(strchr(from, '.') - name) : SIZE_MAX;
	size_t m = cc < dot ? cc : dot;
	return m < stop && m > 0 ? m : strlen(name);
}

/* One module's frames share a hue (green channel), each name its shade. */
static void color(const char *name, char *buf, size_t len)
{
	uint32_t mod = fnv(name, module_len(name)), h = fnv(name, SIZE_MAX);
	unsigned r = 205 + (h & 0xff) % 50, g = (mod % 190) + ((h >> 8) & 0xff) % 40, b = ((h >> 16) & 0xff) % 55;
	snprintf(buf, len, "#%02x%02x%02x", r, g, b);
}

/* ---- the frames --------------------------------------------------------- */

static void write_frame(FILE *out, const struct units *u, const struct fnode *f, double x, double w)
{
	char tv[32], sv[32], fill[8];
	int y = TOP + (int)f->depth * ROW;
	format_value(u, f->total, tv, sizeof tv);
	format_value(u, f->self, sv, sizeof sv);
	color(f->name, fill, sizeof fill);
	fputs(f->inline_only ? "<g class=\"f i\"><title>" : "<g class=\"f\"><title>", out);
	write_xml(out, f->name, SIZE_MAX);
	fprintf(out, "\n%s (%.2f%%), self %s (%.2f%%)%s</title>", tv, pct(u, f->total), sv,
		pct(u, f->self), f->inline_only ? "\ninlined" : "");
	fprintf(out, "<rect x=\"%.3f\" y=\"%d\" width=\"%.3f\" height=\"%d\" fill=\"%s\"/>", x, y, w,
		ROW - 1, fill);
	write_label(out, f->name, x, y, w);
	fputs("</g>\n", out);
}

static int cmp_by_name(const void *a, const void *b)
{
	return strcmp((*(const struct fnode *const *)a)->name, (*(const struct fnode *const *)b)->name);
}

/* Pushes node's children on the stack in reverse name order, so they pop
 * left to right, each with its x; those lighter than min are left out. */
static size_t push_children(const struct tree *t, size_t node, double x, double scale, int64_t min,
			    const struct fnode **kids, size_t *stack, double *xs, size_t sp)
{
	size_t n = 0;
	for (size_t c = t->v[node].child; c; c = t->v[c].next)
		kids[n++] = &t->v[c];
	qsort(kids, n, sizeof *kids, cmp_by_name);
	double end = x;
	for (size_t k = 0; k < n; k++)
		end += (double)kids[k]->total * scale;
	for (size_t k = n; k-- > 0;) {
		end -= (double)kids[k]->total * scale;
		if (kids[k]->total < min)
			continue;
		stack[sp] = (size_t)(kids[k] - t->v);
		xs[sp++] = end;
	}
	return sp;
}

/* The smallest value drawn: MIN_PX wide. */
static int64_t min_value(const struct tree *t)
{
	int64_t min = (int64_t)((double)t->v[0].total * MIN_PX / DRAW);
	return min > 0 ? min : 1;
}

/* The deepest row drawn: a node's callers are at least as heavy, so every
 * node heavy enough is drawn. */
static long rows_drawn(const struct tree *t)
{
	int64_t min = min_value(t);
	uint32_t deepest = 0;
	for (size_t i = 0; i < t->n; i++)
		if (t->v[i].total >= min && t->v[i].depth > deepest)
			deepest = t->v[i].depth;
	return (long)deepest + 1;
}

/* Writes the frames, depth first without recursion (stacks may be
 * MAX_DEPTH deep).  0 or -1. */
static int write_frames(FILE *out, const struct tree *t, const struct units *u)
{
	const struct fnode **kids = malloc(t->n * sizeof *kids);
	size_t *stack = malloc(t->n * sizeof *stack);
	double *xs = malloc(t->n * sizeof *xs);
	int r = kids && stack && xs ? 0 : -1;
	double scale = (double)DRAW / (double)t->v[0].total;
	int64_t min = min_value(t);
	size_t sp = 0;
	if (!r) {
		stack[sp] = 0;
		xs[sp++] = PAD;
	}
	while (sp > 0) {
		size_t i = stack[--sp];
		double x = xs[sp];
		write_frame(out, u, &t->v[i], x, (double)t->v[i].total * scale);
		sp = push_children(t, i, x, scale, min, kids, stack, xs, sp);
	}
	free(kids);
	free(stack);
	free(xs);
	return r;
}

/* ---- the page ----------------------------------------------------------- */

static const char style[] =
	"<style>\n"
	"text{font-family:monospace;font-size:12px;fill:#000}\n"
	"#title{font-size:17px;text-anchor:middle}\n"
	"#sub{fill:#555;text-anchor:middle}\n"
	".b{fill:#0645ad;cursor:pointer}\n"
	".f{cursor:pointer}\n"
	".f:hover rect{stroke:#000;stroke-width:1}\n"
	".i rect{stroke:#444;stroke-width:.8;stroke-dasharray:3 2}\n"
	".m rect{fill:#e040e0}\n"
	".a{opacity:.55}\n"
	".h{display:none}\n"
	"</style>\n";

static void write_head(FILE *out, const struct pp_profile *p, const struct pp_view *v,
		       const struct units *u, int height)
{
	size_t vix = pp_view_value_index(v, p);
	char total[32];
	format_value(u, u->total, total, sizeof total);
	fprintf(out, "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n"
		"<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%d\" height=\"%d\" "
		"viewBox=\"0 0 %d %d\">\n%s", WIDTH, height, WIDTH, height, style);
	fprintf(out, "<rect width=\"100%%\" height=\"100%%\" fill=\"#f6f4ee\"/>\n<text id=\"title\" "
		"x=\"%d\" y=\"24\">Flame graph of ", WIDTH / 2);
	write_xml(out, pp_profile_value_type(p, vix), 64);
	fputs(" (", out);
	write_xml(out, u->unit, 64);
	fprintf(out, "): %s total</text>\n<text id=\"sub\" x=\"%d\" y=\"42\">", total, WIDTH / 2);
	if (v && v->source) {
		write_xml(out, v->source, 80);
		fputs(" \xc2\xb7 ", out);
	}
	for (size_t k = 0; v && k < v->n_filters; k++) {
		fputs(v->filters[k].ignore ? "tagignore=" : "tagfocus=", out);
		write_xml(out, v->filters[k].spec, 60);
		fputs(" \xc2\xb7 ", out);
	}
	fputs("callers above callees; click to zoom, / or Ctrl-F to search</text>\n", out);
	fprintf(out, "<text id=\"reset\" class=\"b\" x=\"%d\" y=\"24\">Reset zoom</text>\n"
		"<text id=\"search\" class=\"b\" x=\"%d\" y=\"24\" style=\"text-anchor:end\">Search"
		"</text>\n<text id=\"matched\" x=\"%d\" y=\"42\" style=\"text-anchor:end\"> </text>\n"
		"<g id=\"frames\">\n", PAD, WIDTH - PAD, WIDTH - PAD);
}

static void write_tail(FILE *out, int height)
{
	/* The search result goes under "Search" (write_head), in view on a
	 * tall page; the details of the frame under the pointer at the foot. */
	fprintf(out, "</g>\n<text id=\"details\" x=\"%d\" y=\"%d\"> </text>\n"
		"<script type=\"text/ecmascript\"><![CDATA[\n%s]]></script>\n</svg>\n",
		PAD, height - 12, pp_flame_script);
}

static int height_for(long rows)
{
	return TOP + (int)rows * ROW + BOTTOM;
}

/* The page of a view without a single sample: a title and a sentence. */
static void write_empty(FILE *out, const struct pp_profile *p, const struct pp_view *v,
			const struct units *u)
{
	int h = height_for(2);
	write_head(out, p, v, u, h);
	fprintf(out, "<text x=\"%d\" y=\"%d\" style=\"text-anchor:middle\">No samples%s</text>\n",
		WIDTH / 2, TOP + ROW, v && v->n_filters ? " match the filters" : "");
	write_tail(out, h);
}

int pp_report_svg(const struct pp_profile *p, const struct pp_view *v, FILE *out)
{
	struct tree t;
	if (build_tree(p, v, &t)) {
		free(t.v);
		return -1;
	}
	struct units u = { pp_profile_value_unit(p, pp_view_value_index(v, p)), t.v[0].total };
	if (!*u.unit)
		u.unit = "count";
	int r = 0;
	if (!u.total)
		write_empty(out, p, v, &u);
	else {
		long rows = rows_drawn(&t);
		write_head(out, p, v, &u, height_for(rows));
		r = write_frames(out, &t, &u);
		write_tail(out, height_for(rows));
	}
	free(t.v);
	return r || ferror(out) ? -1 : 0;
}
