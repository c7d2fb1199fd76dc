/* legacy.c — Go's legacy text profiles from a built profile (legacy.h),
 * written as runtime/pprof's writeHeapInternal and writeProfileInternal
 * write them at debug=1 (docs/FORMATS.md §10):
 *
 *   heap profile: INUSE_N: INUSE_B [ALLOC_N: ALLOC_B] @ heap/2*RATE
 *   INUSE_N: INUSE_B [ALLOC_N: ALLOC_B] @ 0xPC 0xPC ...
 *   #	0xPC	function+0xOFF	file:line
 *
 *   --- contention:            (block; "--- mutex:" and "sampling period=1")
 *   cycles/second=1000000000
 *   CYCLES COUNT @ 0xPC 0xPC ...
 *
 *   goroutine profile: total N (printCountProfile; from the stacks Go's
 *   COUNT @ 0xPC 0xPC ...       runtime records, not from a profile)
 *
 * Three things make go tool pprof read back exactly what the profile
 * holds:
 * - Addresses.  Its parser takes every address for a return address and
 *   subtracts 1; a pprofc location's address is already the call's
 *   (return address - 1, FORMATS.md §1.3), so the '@' lists print it + 1.
 *   The '#' lines print the location's own, as Go prints frame.PC.
 * - Heap values.  The text carries what the sampler saw, and the reader
 *   unsamples it (Go's scaleHeapSample) as the proto writer did.  The
 *   profile holds the unsampled values, each truncated from count *
 *   scale, so count = ceil(value / scale) undoes it exactly (scale >= 1:
 *   one integer only is that close); each record keeps one block size.
 * - Delays.  The "cycles" are nanoseconds, and cycles/second says so.
 *
 * Records are a profile's samples merged by stack (their labels, which
 * the format has no room for, dropped), sorted as Go sorts them: heap by
 * in-use bytes, contention by cycles, largest first.  The '#' columns
 * are aligned as Go's text/tabwriter aligns them (minwidth 1, tabwidth
 * 8, padding 1, padded with tabs).
 */
#include "legacy.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* One line of the text: a stack and its values. */
struct record {
	const uint64_t *locs;           /* leaf first, the profile's */
	size_t n;
	int64_t v[4];                   /* heap: inuse n, b, alloc n, b; else cycles, count */
	int64_t size;                   /* heap: the block size, 0 unknown */
	int64_t key;                    /* sorted on, largest first */
};

static int cmp_stack(const void *x, const void *y)
{
	const struct record *a = x, *b = y;
	if (a->n != b->n)
		return a->n < b->n ? -1 : 1;
	for (size_t i = 0; i < a->n; i++)
		if (a->locs[i] != b->locs[i])
			return a->locs[i] < b->locs[i] ? -1 : 1;
	return a->size < b->size ? -1 : a->size > b->size;
}

static int cmp_key(const void *x, const void *y)
{
	const struct record *a = x, *b = y;
	if (a->key != b->key)
		return a->key > b->key ? -1 : 1;
	return cmp_stack(x, y);         /* ties: the same order every time */
}

/* Sums records with the same stack (and block size) into one; the count
 * left, sorted by key. */
static size_t merge(struct record *r, size_t n, int key_ix)
{
	size_t out = 0;
	qsort(r, n, sizeof *r, cmp_stack);
	for (size_t i = 0; i < n; i++) {
		if (out && cmp_stack(&r[out - 1], &r[i]) == 0) {
			for (size_t k = 0; k < 4; k++)
				r[out - 1].v[k] += r[i].v[k];
			continue;
		}
		r[out++] = r[i];
	}
	for (size_t i = 0; i < out; i++)
		r[i].key = r[i].v[key_ix];
	qsort(r, out, sizeof *r, cmp_key);
	return out;
}

/* The index of the sample type named type, or -1. */
static int value_index(const struct pp_profile *p, const char *type)
{
	for (size_t i = 0; i < pp_profile_n_values(p); i++)
		if (strcmp(pp_profile_value_type(p, i), type) == 0)
			return (int)i;
	return -1;
}

/* ---- the '#' lines -------------------------------------------------------- */

/* One frame as Go's printStackRecord prints it. */
struct frame {
	uint64_t pc;
	const char *name;               /* NULL: unknown */
	const char *file;
	int64_t line;
	char addr[24], func[4096];      /* the aligned cells */
};

struct frames {
	struct frame *v;
	size_t n, cap;
	struct pp_line *lines;
	size_t cap_lines;
};

static int push_frame(struct frames *f, const struct frame *fr)
{
	if (f->n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 64;
		struct frame *v = realloc(f->v, cap * sizeof *v);
		if (!v)
			return -1;
		f->v = v;
		f->cap = cap;
	}
	f->v[f->n++] = *fr;
	return 0;
}

/* The frames of a stack, innermost first, an inline chain's lines each
 * a frame at the same pc (as runtime.CallersFrames gives them). */
static int stack_frames(const struct pp_profile *p, const struct record *r, const struct pp_legacy *o,
			struct frames *f)
{
	f->n = 0;
	for (size_t i = 0; i < r->n; i++) {
		uint64_t pc;
		size_t n = pp_profile_location_lines(p, r->locs[i], &pc, f->lines, f->cap_lines);
		if (n > f->cap_lines) {
			struct pp_line *l = realloc(f->lines, n * sizeof *l);
			if (!l)
				return -1;
			f->lines = l;
			f->cap_lines = n;
			pp_profile_location_lines(p, r->locs[i], &pc, f->lines, f->cap_lines);
		}
		uint64_t start = n && o && o->func_start ? o->func_start(o->arg, pc) : 0;
		for (size_t j = 0; j < (n ? n : 1); j++) {
			struct frame fr = { .pc = pc };
			const struct pp_line *l = n ? &f->lines[j] : NULL;
			if (l && l->name && strcmp(l->name, "??") != 0) {
				fr.name = l->name;
				fr.file = l->filename;
				fr.line = l->line;
			}
			snprintf(fr.addr, sizeof fr.addr, "0x%" PRIx64, pc);
			if (fr.name && start && start <= pc)
				snprintf(fr.func, sizeof fr.func, "%s+0x%" PRIx64, fr.name, pc - start);
			else if (fr.name)
				snprintf(fr.func, sizeof fr.func, "%s", fr.name);
			if (push_frame(f, &fr))
				return -1;
		}
	}
	return 0;
}

/* Go's choice (printStackRecord): without all, runtime.goexit and the
 * runtime.* frames at the leaf end are left out, unless that leaves
 * nothing.  Marks what is shown by clearing the others' addr. */
static void choose_frames(struct frames *f, int all)
{
	int show = all;
	size_t shown = 0;
	for (size_t i = 0; i < f->n; i++) {
		const char *name = f->v[i].name;
		if (!name || (strcmp(name, "runtime.goexit") != 0 && (show || strncmp(name, "runtime.", 8) != 0))) {
			show = 1;
			shown++;
		} else {
			f->v[i].addr[0] = 0;
		}
	}
	if (!shown && !all) {
		for (size_t i = 0; i < f->n; i++)
			snprintf(f->v[i].addr, sizeof f->v[i].addr, "0x%" PRIx64, f->v[i].pc);
		choose_frames(f, 1);
	}
}

/* Characters, as text/tabwriter counts a cell's width (UTF-8 runes). */
static size_t text_width(const char *s)
{
	size_t w = 0;
	for (; *s; s++)
		w += ((unsigned char)*s & 0xc0) != 0x80;
	return w;
}

/* tabwriter's padding with tabs: the column's width (widest cell +
 * padding 1) rounded up to the tab width 8, filled from the cell's end. */
static void pad(FILE *out, size_t cell, size_t widest)
{
	size_t col = (widest + 1 + 7) / 8 * 8;
	for (size_t n = (col - cell + 7) / 8; n; n--)
		fputc('\t', out);
}

/* The '#' lines: a named frame has three cells (#, pc, function) before
 * its file:line, an unknown one one (#) before its pc; tabwriter aligns
 * a column over each run of lines that have it. */
static void put_frames(FILE *out, const struct frames *f)
{
	size_t i = 0;
	while (i < f->n) {
		if (!f->v[i].addr[0]) {
			i++;
			continue;
		}
		if (!f->v[i].name) {
			fprintf(out, "#\t%s\n", f->v[i].addr);
			i++;
			continue;
		}
		size_t end = i, w_addr = 0, w_func = 0;
		for (; end < f->n && (!f->v[end].addr[0] || f->v[end].name); end++) {
			if (!f->v[end].addr[0])
				continue;
			size_t a = text_width(f->v[end].addr), b = text_width(f->v[end].func);
			w_addr = a > w_addr ? a : w_addr;
			w_func = b > w_func ? b : w_func;
		}
		for (; i < end; i++) {
			const struct frame *fr = &f->v[i];
			if (!fr->addr[0])
				continue;
			fprintf(out, "#\t%s", fr->addr);
			pad(out, text_width(fr->addr), w_addr);
			fputs(fr->func, out);
			pad(out, text_width(fr->func), w_func);
			fprintf(out, "%s:%" PRId64 "\n", fr->file ? fr->file : "?", fr->line);
		}
	}
}

/* The layouts of a record's first line. */
enum kind { HEAP, CONTENTION, COUNT };

/* "v0: v1 [v2: v3] @", "v0 v1 @" or "v0 @", the addresses, then the
 * frames (all of them for contention, as Go's printStackRecord is told). */
static int put_record(FILE *out, const struct pp_profile *p, const struct record *r, enum kind kind,
		      const struct pp_legacy *o, struct frames *f)
{
	if (kind == HEAP)
		fprintf(out, "%" PRId64 ": %" PRId64 " [%" PRId64 ": %" PRId64 "] @", r->v[0], r->v[1], r->v[2],
			r->v[3]);
	else if (kind == CONTENTION)
		fprintf(out, "%" PRId64 " %" PRId64 " @", r->v[0], r->v[1]);
	else
		fprintf(out, "%" PRId64 " @", r->v[0]);
	for (size_t i = 0; i < r->n; i++) {
		uint64_t pc;
		pp_profile_location_lines(p, r->locs[i], &pc, NULL, 0);
		fprintf(out, " 0x%" PRIx64, pc + 1);
	}
	fputc('\n', out);
	if (stack_frames(p, r, o, f))
		return -1;
	choose_frames(f, kind == CONTENTION);
	put_frames(out, f);
	fputc('\n', out);
	return 0;
}

static int put_records(FILE *out, const struct pp_profile *p, const struct record *r, size_t n,
		       enum kind kind, const struct pp_legacy *o)
{
	struct frames f = { 0 };
	int bad = 0;
	for (size_t i = 0; i < n && !bad; i++)
		bad = put_record(out, p, &r[i], kind, o, &f);
	free(f.v);
	free(f.lines);
	return bad || ferror(out) ? -1 : 0;
}

/* ---- heap ------------------------------------------------------------------ */

/* What the sampler saw of a count the profile holds unsampled. */
static int64_t sampled_count(int64_t count, int64_t size, int64_t rate)
{
	if (count <= 0 || size <= 0 || rate <= 1)
		return count > 0 ? count : 0;
	double scale = 1 / (1 - exp(-(double)size / (double)rate));
	double x = (double)count / scale;
	return (int64_t)ceil(x - 1e-9 * (x + 1));
}

static int64_t block_size(const struct pp_profile *p, size_t i, const int64_t *v, int an, int ab)
{
	struct pp_label labels[PP_MAX_LABELS];
	size_t n = pp_profile_sample_labels(p, i, labels, PP_MAX_LABELS);
	for (size_t j = 0; j < n && j < PP_MAX_LABELS; j++)
		if (!labels[j].str && strcmp(labels[j].key, "bytes") == 0)
			return labels[j].num;
	return v[an] > 0 ? (int64_t)llround((double)v[ab] / (double)v[an]) : 0;
}

int pp_write_legacy_heap(FILE *out, const struct pp_profile *p, const struct pp_legacy *o)
{
	int an = value_index(p, "alloc_objects"), ab = value_index(p, "alloc_space"),
	    in = value_index(p, "inuse_objects"), ib = value_index(p, "inuse_space");
	size_t n = pp_profile_count(p, 's');
	if (an < 0 || ab < 0 || in < 0 || ib < 0)
		return -1;
	struct record *r = calloc(n ? n : 1, sizeof *r);
	if (!r)
		return -1;
	int64_t rate = pp_profile_period(p), total[4] = { 0 };
	for (size_t i = 0; i < n; i++) {
		const int64_t *v;
		r[i].n = pp_profile_sample(p, i, &r[i].locs, &v);
		int64_t size = block_size(p, i, v, an, ab);
		int64_t live = sampled_count(v[in], size, rate), all = sampled_count(v[an], size, rate);
		/* Without a size the bytes are turned back with the counts' scale. */
		r[i].v[0] = live;
		r[i].v[1] = size ? live * size : v[in] ? (int64_t)llround((double)v[ib] * live / v[in]) : 0;
		r[i].v[2] = all;
		r[i].v[3] = size ? all * size : v[an] ? (int64_t)llround((double)v[ab] * all / v[an]) : 0;
		r[i].size = size;
	}
	n = merge(r, n, 1);
	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; k < 4; k++)
			total[k] += r[i].v[k];
	/* Go prints 2 * MemProfileRate, as early C++ heap profilers did; the
	 * reader halves it. */
	fprintf(out, "heap profile: %" PRId64 ": %" PRId64 " [%" PRId64 ": %" PRId64 "] @ heap/%" PRId64 "\n",
		total[0], total[1], total[2], total[3], 2 * (rate > 0 ? rate : 1));
	int bad = put_records(out, p, r, n, HEAP, o);
	free(r);
	return bad;
}

/* ---- block and mutex ---------------------------------------------------------- */

int pp_write_legacy_contention(FILE *out, const struct pp_profile *p, const char *name,
			       const struct pp_legacy *o)
{
	int cn = value_index(p, "contentions"), dl = value_index(p, "delay");
	size_t n = pp_profile_count(p, 's');
	if (cn < 0 || dl < 0)
		return -1;
	struct record *r = calloc(n ? n : 1, sizeof *r);
	if (!r)
		return -1;
	for (size_t i = 0; i < n; i++) {
		const int64_t *v;
		r[i].n = pp_profile_sample(p, i, &r[i].locs, &v);
		r[i].v[0] = v[dl];
		r[i].v[1] = v[cn];
	}
	n = merge(r, n, 0);
	fprintf(out, "--- %s:\ncycles/second=1000000000\n", name);
	if (strcmp(name, "mutex") == 0)
		fputs("sampling period=1\n", out);
	int bad = put_records(out, p, r, n, CONTENTION, o);
	free(r);
	return bad;
}

/* ---- count profiles: goroutine ------------------------------------------------ */

/* A distinct stack of a count profile: its '@' list as Go writes it
 * ("@ 0x1 0x2", also what equal counts are sorted by) and its count. */
struct counted {
	const struct pp_count_stack *v;
	char *key;
	size_t count;
};

static int cmp_counted_key(const void *x, const void *y)
{
	const struct counted *a = x, *b = y;
	return strcmp(a->key, b->key);
}

/* Go's keysByCount: larger counts first, then by key string. */
static int cmp_counted(const void *x, const void *y)
{
	const struct counted *a = x, *b = y;
	if (a->count != b->count)
		return a->count > b->count ? -1 : 1;
	return strcmp(a->key, b->key);
}

/* The length of the valid UTF-8 sequence at s (1 to 4), or 0. */
static size_t utf8_len(const unsigned char *s)
{
	size_t n = s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 ? 2 : 0;
	if (n == 0 || s[0] >= 0xf5)
		return 0;
	for (size_t i = 1; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	uint32_t c = n == 2 ? (s[0] & 0x1fu) : n == 3 ? (s[0] & 0x0fu) : (s[0] & 0x07u);
	for (size_t i = 1; i < n; i++)
		c = c << 6 | (s[i] & 0x3fu);
	if ((n == 3 && (c < 0x800 || (c >= 0xd800 && c < 0xe000))) || (n == 4 && (c < 0x10000 || c > 0x10ffff)))
		return 0;
	return n;
}

/* s as Go's %q quotes it (strconv.Quote): the escapes Go uses for ASCII,
 * \xHH for other control bytes and bytes that are not UTF-8.  A valid
 * multibyte character is kept as it is (Go escapes the few it deems
 * unprintable as \u: not done here). */
static void go_quote(FILE *m, const char *str)
{
	static const char esc[] = "\\a\\b\\t\\n\\v\\f\\r";
	const unsigned char *s = (const unsigned char *)str;
	fputc('"', m);
	while (*s) {
		size_t n;
		if (*s == '"' || *s == '\\')
			fprintf(m, "\\%c", *s);
		else if (*s >= 7 && *s <= 13)
			fwrite(esc + 2 * (*s - 7), 1, 2, m);
		else if (*s >= 0x20 && *s < 0x7f)
			fputc(*s, m);
		else if (*s >= 0x80 && (n = utf8_len(s))) {
			fwrite(s, 1, n, m);
			s += n;
			continue;
		} else
			fprintf(m, "\\x%02x", *s);
		s++;
	}
	fputc('"', m);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "\n# labels: {...}" as Go's labelMap.String() writes it: each "k":"v"
 * quoted, sorted as strings, joined by ", ". */
static int put_labels(FILE *m, const struct pp_go_labels *l)
{
	char **kv = calloc(l->n ? l->n : 1, sizeof *kv);
	int bad = !kv;
	for (size_t i = 0; i < l->n && !bad; i++) {
		size_t len;
		FILE *q = open_memstream(&kv[i], &len);
		if (!q) {
			bad = 1;
			break;
		}
		go_quote(q, l->v[i].key);
		fputc(':', q);
		go_quote(q, l->v[i].value);
		bad = fclose(q) != 0;
	}
	if (!bad) {
		qsort(kv, l->n, sizeof *kv, cmp_str);
		fputs("\n# labels: {", m);
		for (size_t i = 0; i < l->n; i++)
			fprintf(m, "%s%s", i ? ", " : "", kv[i]);
		fputc('}', m);
	}
	for (size_t i = 0; kv && i < l->n; i++)
		free(kv[i]);
	free(kv);
	return bad ? -1 : 0;
}

static char *key_of(const struct pp_count_stack *v)
{
	char *key = NULL;
	size_t len;
	FILE *m = open_memstream(&key, &len);
	if (!m)
		return NULL;
	fputc('@', m);
	for (size_t k = 0; k < v->nframes; k++)
		fprintf(m, " 0x%" PRIx64, v->frames[k].pc);
	int bad = v->labels.has && put_labels(m, &v->labels);
	if (fclose(m) || bad) {
		free(key);
		return NULL;
	}
	return key;
}

/* The '#' lines of one stack: each pc one before the one stored (the
 * call, or the inline tree's mark), as runtime.CallersFrames gives it. */
static int count_frames(const struct pp_count_stack *v, struct frames *f)
{
	f->n = 0;
	for (size_t k = 0; k < v->nframes; k++) {
		const struct pp_frame *pf = &v->frames[k];
		struct frame fr = { .pc = pf->pc - 1, .name = pf->function, .file = pf->file,
				    .line = pf->line };
		snprintf(fr.addr, sizeof fr.addr, "0x%" PRIx64, fr.pc);
		if (fr.name && pf->has_offset)
			snprintf(fr.func, sizeof fr.func, "%s+0x%" PRIx64, fr.name, pf->func_offset);
		else if (fr.name)
			snprintf(fr.func, sizeof fr.func, "%s", fr.name);
		if (push_frame(f, &fr))
			return -1;
	}
	return 0;
}

static int put_counted(FILE *out, const struct counted *c, struct frames *f)
{
	fprintf(out, "%zu %s\n", c->count, c->key);
	if (!c->v->nframes) {
		fputs("#\t...stack not read\n\n", out);
		return 0;
	}
	if (count_frames(c->v, f))
		return -1;
	choose_frames(f, 0);
	put_frames(out, f);
	fputc('\n', out);
	return 0;
}

int pp_write_legacy_count(FILE *out, const char *name, const struct pp_count_stack *v, size_t n)
{
	struct counted *c = calloc(n ? n : 1, sizeof *c);
	struct frames f = { 0 };
	size_t total = 0, nc = 0;
	int bad = !c;
	for (size_t i = 0; i < n && !bad; i++) {
		c[i] = (struct counted){ &v[i], key_of(&v[i]), v[i].count };
		bad = !c[i].key;
		total += v[i].count;
	}
	/* Equal stacks (equal '@' lists) summed into one. */
	int merged = !bad;
	if (merged)
		qsort(c, n, sizeof *c, cmp_counted_key);
	for (size_t i = 0; i < n && merged; i++) {
		if (nc && strcmp(c[nc - 1].key, c[i].key) == 0) {
			c[nc - 1].count += c[i].count;
			free(c[i].key);
			continue;
		}
		c[nc++] = c[i];
	}
	if (!bad) {
		qsort(c, nc, sizeof *c, cmp_counted);
		fprintf(out, "%s profile: total %zu\n", name, total);
	}
	for (size_t i = 0; i < nc && !bad; i++)
		bad = put_counted(out, &c[i], &f);
	for (size_t i = 0; c && i < (merged ? nc : n); i++)
		free(c[i].key);
	free(c);
	free(f.v);
	free(f.lines);
	return bad || ferror(out) ? -1 : 0;
}
