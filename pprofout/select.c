/* select.c — the sample index and the tag filters of a view (select.h),
 * read as go tool pprof reads its -sample_index, -tagfocus and -tagignore
 * (google/pprof's driver: compileTagFilter, parseTagFilterRange), so the
 * same flags give the same samples in `pprofc report` and in Go's tool. */
#include "select.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

__attribute__((format(printf, 3, 4)))
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (err && errlen)
		vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

/* ---- numeric ranges: "N", "N:", ":N", "N:M", each N with a unit -------- */

static const struct { const char *unit; int64_t scale; } units[] = {
	{ "b", 1 }, { "byte", 1 }, { "bytes", 1 }, { "kb", 1LL << 10 }, { "kib", 1LL << 10 },
	{ "mb", 1LL << 20 }, { "mib", 1LL << 20 }, { "gb", 1LL << 30 }, { "gib", 1LL << 30 },
	{ "tb", 1LL << 40 }, { "tib", 1LL << 40 },
	{ "ns", 1 }, { "us", 1000 }, { "ms", 1000000 }, { "s", 1000000000 },
};

/* One bound, "[+-]digits[unit]", scaled to bytes or nanoseconds; 0, or -1
 * when s is not one (then the filter is a regular expression, as in Go). */
static int parse_bound(const char *s, size_t len, int64_t *v)
{
	size_t i = (len && (s[0] == '+' || s[0] == '-')) ? 1 : 0, digits = i;
	while (i < len && isdigit((unsigned char)s[i]))
		i++;
	if (i == digits)
		return -1;
	char num[32];
	if (i >= sizeof num)
		return -1;
	memcpy(num, s, i);
	num[i] = 0;
	errno = 0;
	long long n = strtoll(num, NULL, 10);
	if (errno)
		return -1;
	int64_t scale = 1;
	if (i < len) {
		size_t k, ulen = len - i;
		for (k = 0; k < sizeof units / sizeof units[0]; k++)
			if (strlen(units[k].unit) == ulen && strncasecmp(units[k].unit, s + i, ulen) == 0)
				break;
		if (k == sizeof units / sizeof units[0])
			return -1;
		scale = units[k].scale;
	}
	if (__builtin_mul_overflow((int64_t)n, scale, v))
		return -1;
	return 0;
}

/* Whether value is a range; sets f->lo and f->hi when it is. */
static int parse_range(struct pp_tagfilter *f, const char *value)
{
	const char *colon = strchr(value, ':');
	size_t len = strlen(value);
	f->lo = INT64_MIN;
	f->hi = INT64_MAX;
	if (!colon) {
		if (parse_bound(value, len, &f->lo))
			return 0;
		f->hi = f->lo;
		return 1;
	}
	size_t left = (size_t)(colon - value), right = len - left - 1;
	if ((!left && !right) || strchr(colon + 1, ':'))
		return 0;
	if (left && parse_bound(value, left, &f->lo))
		return 0;
	if (right && parse_bound(colon + 1, right, &f->hi))
		return 0;
	return 1;
}

/* ---- regular expressions: "RE,RE,..." ------------------------------------ */

static int compile_all(struct pp_tagfilter *f, const char *value, char *err, size_t errlen)
{
	size_t n = 1;
	for (const char *c = value; *c; c++)
		n += *c == ',';
	if (!(f->rx = calloc(n, sizeof *f->rx)))
		return fail(err, errlen, "out of memory");
	for (const char *s = value; f->n_rx < n; s = strchr(s, ',') + 1) {
		size_t len = strcspn(s, ",");
		char *one = strndup(s, len);
		if (!one)
			return fail(err, errlen, "out of memory");
		int rc = regcomp(&f->rx[f->n_rx], one, REG_EXTENDED | REG_NOSUB);
		free(one);
		if (rc) {
			char why[128];
			regerror(rc, &f->rx[f->n_rx], why, sizeof why);
			return fail(err, errlen, "bad regular expression '%.*s': %s", (int)len, s, why);
		}
		f->n_rx++;
	}
	return 0;
}

int pp_tagfilter_parse(struct pp_tagfilter *f, const char *spec, int ignore, char *err, size_t errlen)
{
	memset(f, 0, sizeof *f);
	f->ignore = ignore;
	const char *eq = strchr(spec, '='), *value = eq ? eq + 1 : spec;
	if (!(f->spec = strdup(spec)) || (eq && !(f->key = strndup(spec, (size_t)(eq - spec))))) {
		pp_tagfilter_free(f);
		return fail(err, errlen, "out of memory");
	}
	if (!*value || (f->key && !*f->key)) {
		pp_tagfilter_free(f);
		return fail(err, errlen, "'%s' is not KEY=VALUE, VALUE or a range", spec);
	}
	f->numeric = parse_range(f, value);
	if (!f->numeric && compile_all(f, value, err, errlen)) {
		pp_tagfilter_free(f);
		return -1;
	}
	return 0;
}

void pp_tagfilter_free(struct pp_tagfilter *f)
{
	for (size_t i = 0; i < f->n_rx; i++)
		regfree(&f->rx[i]);
	free(f->rx);
	free(f->key);
	free(f->spec);
	memset(f, 0, sizeof *f);
}

/* ---- matching a sample -------------------------------------------------- */

static int matches_string(const struct pp_tagfilter *f, const struct pp_label *l, size_t n)
{
	if (f->key) {           /* any expression matches a value of key */
		for (size_t j = 0; j < n; j++)
			for (size_t r = 0; l[j].str && strcmp(l[j].key, f->key) == 0 && r < f->n_rx; r++)
				if (regexec(&f->rx[r], l[j].str, 0, NULL, 0) == 0)
					return 1;
		return 0;
	}
	/* No key: each expression matches some "key:value", as in Go. */
	for (size_t r = 0; r < f->n_rx; r++) {
		int hit = 0;
		for (size_t j = 0; j < n && !hit; j++) {
			if (!l[j].str)
				continue;
			size_t kl = strlen(l[j].key), vl = strlen(l[j].str);
			char small[256], *kv = kl + vl + 2 <= sizeof small ? small : malloc(kl + vl + 2);
			if (!kv)
				return 0;
			memcpy(kv, l[j].key, kl);
			kv[kl] = ':';
			memcpy(kv + kl + 1, l[j].str, vl + 1);
			hit = regexec(&f->rx[r], kv, 0, NULL, 0) == 0;
			if (kv != small)
				free(kv);
		}
		if (!hit)
			return 0;
	}
	return 1;
}

static int matches(const struct pp_tagfilter *f, const struct pp_label *l, size_t n)
{
	if (!f->numeric)
		return matches_string(f, l, n);
	for (size_t j = 0; j < n; j++)
		if (!l[j].str && (!f->key || strcmp(l[j].key, f->key) == 0) && l[j].num >= f->lo &&
		    l[j].num <= f->hi)
			return 1;
	return 0;
}

int pp_view_keeps(const struct pp_view *v, const struct pp_profile *p, size_t i)
{
	if (!v || !v->n_filters)
		return 1;
	struct pp_label l[PP_MAX_LABELS];
	size_t n = pp_profile_sample_labels(p, i, l, PP_MAX_LABELS);
	if (n > PP_MAX_LABELS)
		n = PP_MAX_LABELS;
	for (size_t k = 0; k < v->n_filters; k++)
		if (matches(&v->filters[k], l, n) == v->filters[k].ignore)
			return 0;
	return 1;
}

size_t pp_view_value_index(const struct pp_view *v, const struct pp_profile *p)
{
	size_t n = pp_profile_n_values(p);
	if (v && v->value < n)
		return v->value;
	return pp_profile_default_value(p);
}

/* ---- -sample_index ------------------------------------------------------ */

int pp_view_value(const struct pp_profile *p, const char *spec, size_t *value, char *err,
		  size_t errlen)
{
	size_t n = pp_profile_n_values(p);
	*value = pp_profile_default_value(p);
	if (!spec)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (strcmp(spec, pp_profile_value_type(p, i)) == 0) {
			*value = i;
			return 0;
		}
	char *end;
	errno = 0;
	unsigned long long ix = strtoull(spec, &end, 10);
	if (isdigit((unsigned char)*spec) && !*end && !errno && ix < n) {
		*value = (size_t)ix;
		return 0;
	}
	char types[200] = "";
	for (size_t i = 0; i < n; i++)
		snprintf(types + strlen(types), sizeof types - strlen(types), "%s%s", i ? " " : "",
			 pp_profile_value_type(p, i));
	return fail(err, errlen, "sample index '%s' is not one of the profile's sample types [%s] "
		    "nor an index 0..%zu", spec, types, n ? n - 1 : 0);
}
