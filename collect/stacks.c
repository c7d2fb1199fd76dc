/* stacks.c — symbolized stacks of one process into a pprof profile.
 *
 * Shared by the profile kinds (kinds.c) and dump-threads --pprof (one
 * sample per thread).  Mappings come from /proc/PID/maps, one per executable
 * line, the main executable first (go tool pprof names the profile after
 * mapping 1); each pc becomes one Location holding its inline chain.
 *
 * Several processes may share one profile (run --children): a mapping is
 * the same only if its range, offset, file and build ID are, and then so
 * is its code, so their Locations are shared exactly where the code is
 * the same; pcs in no mapping are kept apart per process (scope).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../attach/proc.h"
#include "collect.h"

static void strip_deleted(char *path)
{
	char *del = strstr(path, " (deleted)");
	if (del && del[10] == 0)
		*del = 0;
}

void collect_exe_of(pid_t pid, char *exe, size_t len)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/exe", (int)attach_mm_pid(pid));
	ssize_t n = readlink(path, exe, len - 1);
	exe[n > 0 ? n : 0] = 0;
	strip_deleted(exe);
}

void collect_name_of(pid_t pid, char *name, size_t len)
{
	char path[64], comm[64] = "", cmd[4096];
	size_t n = 0, clen = 0;
	snprintf(path, sizeof path, "/proc/%d/comm", (int)pid);
	if (attach_read_small(path, comm, sizeof comm, &n) == 0 && n > 0)
		comm[comm[n - 1] == '\n' ? n - 1 : n] = 0;
	snprintf(path, sizeof path, "/proc/%d/cmdline", (int)attach_mm_pid(pid));
	if (attach_read_small(path, cmd, sizeof cmd, &clen) != 0)
		clen = 0;
	/* argv[0]'s file name, up to what a process title appends ("redis-
	 * server 127.0.0.1:6379", "nginx: worker process"). */
	cmd[clen < sizeof cmd ? clen : sizeof cmd - 1] = 0;
	const char *base = strrchr(cmd, '/') ? strrchr(cmd, '/') + 1 : cmd;
	size_t bl = strcspn(base, " :");
	if (comm[0] && bl >= strlen(comm) && strncmp(base, comm, strlen(comm)) == 0)
		snprintf(name, len, "%.*s", (int)bl, base);     /* comm, untruncated */
	else if (comm[0])
		snprintf(name, len, "%s", comm);
	else {
		char exe[4096];
		collect_exe_of(pid, exe, sizeof exe);
		snprintf(name, len, "%s", strrchr(exe, '/') ? strrchr(exe, '/') + 1 : exe);
	}
	/* A name is anything a thread set with prctl: keep the file name one
	 * plain path component. */
	for (char *p = name; *p; p++)
		if (*p == '/' || (unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '_';
}

static int add_mappings(struct collect_stacks *c)
{
	free(c->mapping_ids);
	c->mapping_ids = calloc(c->maps.n ? c->maps.n : 1, sizeof *c->mapping_ids);
	if (!c->mapping_ids)
		return -1;
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < c->maps.n; i++) {
			const struct attach_map *m = &c->maps.v[i];
			char path[4096];
			if (m->perms[2] != 'x' || m->path[0] != '/')
				continue;
			snprintf(path, sizeof path, "%s", m->path);
			strip_deleted(path);
			if ((strcmp(path, c->exe) == 0) != (pass == 0))
				continue;
			struct pp_mapping pm = { m->start, m->end, m->offset, path,
						 sym_build_id(c->sym, m->start), 0 };
			c->mapping_ids[i] = pp_profile_mapping(c->prof, &pm);
		}
	return 0;
}

/* Reads /proc/PID/maps; the mappings wait for add_mappings. */
static int read_maps_only(struct collect_stacks *c)
{
	char path[64], *buf;
	size_t len;
	struct attach_maps maps;
	/* Looked up at each read: the thread standing for a process whose
	 * main thread exited may have exited since. */
	snprintf(path, sizeof path, "/proc/%d/maps", (int)attach_mm_pid(c->pid));
	if (attach_read_file(path, &buf, &len))
		return -1;
	int r = attach_parse_maps(buf, len, &maps);
	free(buf);
	if (r)
		return r;
	attach_maps_free(&c->maps);
	c->maps = maps;
	return 0;
}

/* (Re)reads /proc/PID/maps and adds a mapping for each new executable
 * line (the profile builder merges those it has already). */
static int read_maps(struct collect_stacks *c)
{
	c->mappings_pending = 0;
	return read_maps_only(c) ? -1 : add_mappings(c);
}

int collect_stacks_init(struct collect_stacks *c, pid_t pid, struct sym_session *sym,
		    const struct pp_profile_spec *spec)
{
	memset(c, 0, sizeof *c);
	c->pid = pid;
	c->sym = sym;
	collect_exe_of(pid, c->exe, sizeof c->exe);
	if (!(c->prof = pp_profile_new(spec)))
		return -1;
	return read_maps(c);
}

int collect_stacks_init_shared(struct collect_stacks *c, pid_t pid, struct sym_session *sym,
			       struct pp_profile *prof, uint64_t scope, int lazy)
{
	memset(c, 0, sizeof *c);
	c->pid = pid;
	c->sym = sym;
	c->prof = prof;
	c->shared = 1;
	c->scope = scope;
	collect_exe_of(pid, c->exe, sizeof c->exe);
	if (!lazy)
		return read_maps(c);
	/* The build IDs of the mappings need each module's ELF (and
	 * symbolize/ loads its symbol table with it: ~5 ms a process with
	 * glibc's), so they wait for the first stack. */
	c->mappings_pending = 1;
	return read_maps_only(c);
}

/* A pc in no line of the maps read: a library mapped since (dlopen), or
 * an address no re-read will explain.  Its frames were resolved first, so
 * symbolize/ has already read the modules again if that was due (and
 * rate-limits it): the maps follow, once per re-read of the modules. */
static const struct attach_map *find_map(struct collect_stacks *c, uint64_t pc)
{
	const struct attach_map *m = attach_maps_find(&c->maps, pc);
	uint64_t gen = sym_modules_generation(c->sym);
	if (m || gen == c->maps_gen)
		return m;
	c->maps_gen = gen;
	return read_maps(c) ? NULL : attach_maps_find(&c->maps, pc);
}

void collect_wait_of(char state, const struct attach_syscall *sc, const struct sym_stack *st,
		 struct attach_wait *w)
{
	const char *funcs[8];
	size_t nf = 0;
	attach_classify(state, sc, w);
	for (size_t i = 0; i < st->n && nf < 8; i++)
		funcs[nf++] = st->frames[i].function;
	attach_refine(w, funcs, nf);
}

void collect_stacks_free(struct collect_stacks *c)
{
	attach_maps_free(&c->maps);
	free(c->mapping_ids);
	if (!c->shared)
		pp_profile_free(c->prof);
	memset(c, 0, sizeof *c);
}

static uint64_t mapping_for(struct collect_stacks *c, uint64_t pc, int symbolized)
{
	if (c->mappings_pending) {
		c->mappings_pending = 0;
		if (add_mappings(c))
			return 0;
	}
	const struct attach_map *m = find_map(c, pc);
	if (!m || !c->mapping_ids)
		return 0;
	uint64_t id = c->mapping_ids[m - c->maps.v];
	if (id && symbolized)
		pp_profile_mapping_symbolized(c->prof, id);
	return id;
}

/* Frames sharing one pc (an inline chain) become one Location, however
 * long the chain. */
static uint64_t location_for(struct collect_stacks *c, const struct sym_frame *f, size_t n, int leaf,
			     int resumed)
{
	struct pp_line few[64], *lines = few;
	int symbolized = 0;
	if (n > sizeof few / sizeof few[0] && !(lines = malloc(n * sizeof *lines)))
		return 0;
	for (size_t i = 0; i < n; i++) {
		lines[i] = (struct pp_line){ f[i].function, f[i].mangled, f[i].file, f[i].line, 0 };
		symbolized |= f[i].function != NULL;
	}
	/* The leaf is the exact pc; a caller's is its return address - 1,
	 * inside the call instruction (pprof readers do not adjust).  A
	 * resumed stack's leaf is where it was looked up: a goroutine not
	 * running resumes at a return address, placed at pc - 1 as Go
	 * places it. */
	uint64_t addr = leaf && resumed ? f[0].lookup_pc : leaf ? f[0].pc : f[0].pc - 1;
	uint64_t mapping = mapping_for(c, f[0].pc, symbolized);
	uint64_t id = pp_profile_location_scoped(c->prof, mapping ? 0 : c->scope, mapping, addr,
						 symbolized ? lines : NULL, symbolized ? n : 0);
	if (lines != few)
		free(lines);
	return id;
}

uint64_t collect_stacks_marker(struct collect_stacks *c, enum collect_marker m)
{
	static const char *const text[COLLECT_MARKERS] = {
		[COLLECT_MARK_CUT] = "[stack cut short: deeper than the copy, see --stack-size]",
		[COLLECT_MARK_NO_CPU_STACK] = "[on CPU: no stack sampled yet]",
		[COLLECT_MARK_NO_WAIT_STACK] = "[off CPU: wait not sampled]",
		[COLLECT_MARK_NO_ALLOC_STACK] = "[allocation: no stack copied or unwound]",
		[COLLECT_MARK_TC_NO_ROOT] = "[thread alive at the start: stack not unwound to its root]",
		[COLLECT_MARK_TC_UNSEEN] = "[thread created before the watch began: creating stack not seen]",
		[COLLECT_MARK_TC_MAIN] = "[the program's main thread]",
		[COLLECT_MARK_TC_NO_STACK] = "[thread created: the creator's stack not unwound]",
		[COLLECT_MARK_GO_NO_STACK] = "[goroutine: its stack was not read]",
	};
	if (!c->markers[m]) {
		/* No mapping; the builder keys locations by (mapping, address),
		 * so each marker has its own address: its number. */
		struct pp_line line = { text[m], NULL, NULL, 0, 0 };
		c->markers[m] = pp_profile_location(c->prof, 0, (uint64_t)m, &line, 1);
	}
	return c->markers[m];
}

size_t collect_stacks_locations(struct collect_stacks *c, const struct sym_stack *st, uint64_t *locs,
			    size_t max)
{
	return collect_stacks_locations_from(c, st, 0, locs, max);
}

static size_t locations(struct collect_stacks *c, const struct sym_stack *st, size_t first,
			int resumed, uint64_t *locs, size_t max)
{
	size_t nl = 0;
	for (size_t i = first; i < st->n && nl < max;) {
		size_t j = i;
		while (j < st->n && st->frames[j].pc == st->frames[i].pc && st->frames[j].inlined)
			j++;
		if (j < st->n)
			j++;            /* the physical frame closing the chain */
		uint64_t id = location_for(c, &st->frames[i], j - i, i == 0, resumed);
		if (id)
			locs[nl++] = id;
		i = j;
	}
	if (st->cut_short && nl < max && (locs[nl] = collect_stacks_marker(c, COLLECT_MARK_CUT)))
		nl++;
	return nl;
}

size_t collect_stacks_locations_from(struct collect_stacks *c, const struct sym_stack *st,
				     size_t first, uint64_t *locs, size_t max)
{
	return locations(c, st, first, 0, locs, max);
}

size_t collect_stacks_locations_resumed(struct collect_stacks *c, const struct sym_stack *st,
					uint64_t *locs, size_t max)
{
	return locations(c, st, 0, 1, locs, max);
}

int collect_stacks_add(struct collect_stacks *c, const struct sym_stack *st, const int64_t *values,
		   const struct pp_label *labels, size_t n_labels)
{
	uint64_t locs[COLLECT_MAX_LOCS];
	size_t nl = collect_stacks_locations(c, st, locs, COLLECT_MAX_LOCS);
	return pp_profile_add(c->prof, locs, nl, values, labels, n_labels);
}
