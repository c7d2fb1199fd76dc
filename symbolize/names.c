/* names.c — interned strings and demangling (libiberty). */
#include "internal.h"

#include <libiberty/demangle.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL;    /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static int grow(struct sym_strings *t)
{
	size_t cap = t->cap ? t->cap * 2 : 1024;
	char **slots = calloc(cap, sizeof *slots);
	if (!slots)
		return -1;
	for (size_t i = 0; i < t->cap; i++) {
		if (!t->slots[i])
			continue;
		size_t j = hash_str(t->slots[i]) & (cap - 1);
		while (slots[j])
			j = (j + 1) & (cap - 1);
		slots[j] = t->slots[i];
	}
	free(t->slots);
	t->slots = slots;
	t->cap = cap;
	return 0;
}

const char *sym_intern(struct sym_strings *t, const char *s)
{
	if (!s)
		return NULL;
	if (t->n * 2 >= t->cap && grow(t))
		return NULL;
	size_t j = hash_str(s) & (t->cap - 1);
	while (t->slots[j]) {
		if (strcmp(t->slots[j], s) == 0)
			return t->slots[j];
		j = (j + 1) & (t->cap - 1);
	}
	t->slots[j] = strdup(s);
	if (t->slots[j])
		t->n++;
	return t->slots[j];
}

void sym_strings_free(struct sym_strings *t)
{
	for (size_t i = 0; i < t->cap; i++)
		free(t->slots[i]);
	free(t->slots);
	memset(t, 0, sizeof *t);
}

char *sym_demangle(const char *name)
{
	/* C++ and Rust legacy names start with _Z, Rust v0 with _R.  Without
	 * DMGL_PARAMS the argument list is left out: the text outputs print
	 * "name(...)" and pprof shows names without parameters too. */
	if (!name || name[0] != '_' || (name[1] != 'Z' && name[1] != 'R'))
		return NULL;
	return cplus_demangle(name, DMGL_AUTO);
}
