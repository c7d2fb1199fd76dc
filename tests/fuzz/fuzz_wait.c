/* fuzz_wait.c — libFuzzer target for the wait classifier of attach/wait.h.
 *
 * data[0] % 3 picks the mode:
 *   0  [state][syscall line]\n[function names, one a line]: the line goes
 *      through attach_parse_syscall (an exact-length heap copy, no NUL, as
 *      proc.h's contract says), then attach_classify, attach_refine,
 *      attach_reason_text and attach_syscall_name;
 *   1  [state][kind][nr, 8 bytes][6 args, 8 bytes each][function names]:
 *      the same with an attach_syscall built field by field (any nr);
 *   2  [max cycles][tid, waits-for byte pairs]: attach_find_deadlocks.
 * Function names are C strings (wait.h hands it plain strings), each its own
 * heap block with a terminator; an empty line is a NULL entry.
 *
 * Not fuzzed: attach_mutex_owner and attach_describe_fd read a live
 * process (its memory, /proc/PID/fd and /proc/PID/net), not the input.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "attach/wait.h"
#include "fuzz.h"

#define MAX_FUNCS 12            /* more than the 8 attach_refine looks at */
#define MAX_THREADS 64

static const size_t text_sizes[] = { 1, 2, 8, 11, 64 };

static void require(int cond)
{
	if (!cond)
		abort();
}

/* A cursor over the input: reads past its end give zeros. */
struct in {
	const uint8_t *p;
	size_t n;
};

static uint8_t take8(struct in *in)
{
	if (!in->n)
		return 0;
	in->n--;
	return *in->p++;
}

static uint64_t take64(struct in *in)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)take8(in) << (8 * i);
	return v;
}

/* Splits the rest of the input into up to MAX_FUNCS lines. */
static size_t carve_funcs(struct in *in, char **funcs)
{
	size_t n = 0;
	while (in->n && n < MAX_FUNCS) {
		const uint8_t *nl = memchr(in->p, '\n', in->n);
		size_t len = nl ? (size_t)(nl - in->p) : in->n;
		funcs[n] = NULL;
		if (len) {
			funcs[n] = malloc(len + 1);
			require(funcs[n] != NULL);
			memcpy(funcs[n], in->p, len);
			funcs[n][len] = '\0';
		}
		n++;
		in->p += len + (nl != NULL);
		in->n -= len + (nl != NULL);
	}
	return n;
}

static void check_wait(const struct attach_wait *w)
{
	require(w->reason >= ATTACH_R_UNKNOWN && w->reason <= ATTACH_R_SYSCALL);
	require(strnlen(w->syscall, sizeof w->syscall) < sizeof w->syscall);
}

static void check_text(const struct attach_wait *w)
{
	for (size_t i = 0; i < sizeof text_sizes / sizeof text_sizes[0]; i++) {
		size_t len = text_sizes[i];
		char *buf = malloc(len);
		require(buf != NULL);
		attach_reason_text(w, buf, len);
		require(strnlen(buf, len) < len);
		free(buf);
	}
}

static void check_name(long nr)
{
	const char *name = attach_syscall_name(nr);
	if (name)
		require(strlen(name) > 0);
}

/* Classifies, refines with the carved names, and renders the reason. */
static void run_wait(char state, const struct attach_syscall *sc, struct in *in)
{
	struct attach_wait w;
	char *funcs[MAX_FUNCS];
	attach_classify(state, sc, &w);
	check_wait(&w);
	check_text(&w);
	size_t n = carve_funcs(in, funcs);
	attach_refine(&w, (const char *const *)funcs, n);
	check_wait(&w);
	check_text(&w);
	check_name(sc->nr);
	for (size_t i = 0; i < n; i++)
		free(funcs[i]);
}

static void mode_parsed(struct in *in)
{
	char state = (char)take8(in);
	const uint8_t *nl = memchr(in->p, '\n', in->n);
	size_t len = nl ? (size_t)(nl - in->p) : in->n;
	char *line = malloc(len ? len : 1);
	require(line != NULL);
	if (len)
		memcpy(line, in->p, len);
	struct attach_syscall sc;
	(void)attach_parse_syscall(line, len, &sc);
	free(line);
	in->p += len + (nl != NULL);
	in->n -= len + (nl != NULL);
	run_wait(state, &sc, in);
}

static void mode_built(struct in *in)
{
	struct attach_syscall sc;
	memset(&sc, 0, sizeof sc);
	char state = (char)take8(in);
	sc.kind = (enum attach_sc_kind)(take8(in) % 4);
	sc.nr = (long)take64(in);
	for (int i = 0; i < 6; i++)
		sc.args[i] = take64(in);
	run_wait(state, &sc, in);
}

/* Every cycle is a run of known tids starting at its smallest, and all of
 * them fit in n entries (a thread is on one cycle at most). */
static void check_cycles(const pid_t *tids, size_t n, const pid_t *cycles, const size_t *lens,
			 size_t found)
{
	size_t used = 0;
	for (size_t c = 0; c < found; c++) {
		require(lens[c] >= 1 && lens[c] <= n - used);
		for (size_t k = 0; k < lens[c]; k++) {
			size_t i = 0;
			while (i < n && tids[i] != cycles[used + k])
				i++;
			require(i < n);
			require(cycles[used] <= cycles[used + k]);
		}
		used += lens[c];
	}
}

static void mode_deadlocks(struct in *in)
{
	size_t max_cycles = take8(in) % 8 + 1;
	size_t n = in->n / 2 < MAX_THREADS ? in->n / 2 : MAX_THREADS;
	pid_t *tids = malloc((n ? n : 1) * sizeof *tids);
	pid_t *waits = malloc((n ? n : 1) * sizeof *waits);
	pid_t *cycles = malloc((n ? n : 1) * sizeof *cycles);
	size_t *lens = malloc(max_cycles * sizeof *lens);
	require(tids && waits && cycles && lens);
	for (size_t i = 0; i < n; i++) {
		tids[i] = (pid_t)(take8(in) % 32);        /* small: cycles are likely */
		waits[i] = (pid_t)(take8(in) % 33);
	}
	size_t found = attach_find_deadlocks(tids, waits, n, cycles, lens, max_cycles);
	require(found <= max_cycles);
	check_cycles(tids, n, cycles, lens, found);
	free(tids);
	free(waits);
	free(cycles);
	free(lens);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct in in = { data, size };
	if (!size)
		return 0;
	switch (take8(&in) % 3) {
	case 0: mode_parsed(&in); break;
	case 1: mode_built(&in); break;
	case 2: mode_deadlocks(&in); break;
	}
	check_name(LONG_MIN);
	check_name(LONG_MAX);
	check_name(-1);
	return 0;
}
