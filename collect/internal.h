/* internal.h — the collection session, shared by the files of collect/
 * only.  Callers see collect.h. */
#ifndef PPROFC_COLLECT_INTERNAL_H
#define PPROFC_COLLECT_INTERNAL_H

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../preload/heapring.h"
#include "collect.h"

/* CLOCK_MONOTONIC in ns: the window, deadlines, progress. */
static inline uint64_t collect_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A stack's location ids hashed (FNV-1a over the ids): the key under
 * which kinds.c, trace.c and threadcreate.c each intern their stacks. */
static inline uint64_t collect_hash_locs(const uint64_t *locs, size_t n)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ locs[i]) * 1099511628211ull;
	return h;
}

/* An array v of n elements of size bytes, with room for *cap, made to
 * hold one more: as it is while n < *cap, else grown to twice *cap (or
 * first).  Returns the array to use from now on, or NULL when out of
 * memory (v is then untouched and still the caller's). */
static inline void *collect_grow(void *v, size_t n, size_t *cap, size_t size, size_t first)
{
	if (n < *cap)
		return v;
	size_t c = *cap ? *cap * 2 : first;
	void *p = realloc(v, c * size);
	if (p)
		*cap = c;
	return p;
}

/* Open-addressing tables with linear probing whose slots each begin with
 * a uint64_t key, 0 in an empty slot. */
static inline uint64_t collect_slot_key(const void *slot)
{
	uint64_t key;
	memcpy(&key, slot, sizeof key);
	return key;
}

/* The *cap slots of size bytes at slots (freed) rehashed into a table of
 * twice as many (or first), each put at home(slot, new cap) or the first
 * empty slot after it: the new table, or NULL when out of memory (slots
 * is then untouched and still the caller's). */
static inline void *collect_table_grow(void *slots, size_t *cap, size_t size, size_t first,
				       size_t (*home)(const void *slot, size_t cap))
{
	size_t c = *cap ? *cap * 2 : first;
	unsigned char *to = calloc(c, size);
	const unsigned char *from = slots;
	if (!to)
		return NULL;
	for (size_t i = 0; i < *cap; i++) {
		const unsigned char *slot = from + i * size;
		if (!collect_slot_key(slot))
			continue;
		size_t j = home(slot, c);
		while (collect_slot_key(to + j * size))
			j = (j + 1) & (c - 1);
		memcpy(to + j * size, slot, size);
	}
	free(slots);
	*cap = c;
	return to;
}

/* A malloc'ed copy of a stack's n location ids (n may be 0), or NULL. */
static inline uint64_t *collect_copy_locs(const uint64_t *locs, size_t n)
{
	uint64_t *copy = malloc((n ? n : 1) * sizeof *copy);
	if (copy)
		memcpy(copy, locs, n * sizeof *locs);
	return copy;
}

/* CPU kind: one stack of a thread, its samples kept until the end, when
 * they are scaled to the kernel's count of the thread's CPU time. */
struct cpu_entry {
	uint64_t hash;
	uint64_t *locs;
	size_t n;
	char comm[64];
	int64_t count, weight;
};

/* Per thread: off-CPU kinds keep its last sample, repeated while it does
 * not run; the CPU kind its stacks (cpu_entry). */
struct last_sample {
	pid_t tid;                      /* 0: free slot */
	uint64_t *locs;
	size_t n;
	char state[48];
	char comm[64];
	uint64_t futex;                 /* mutex wait: the mutex */
	uint64_t *cpu_locs;             /* off-CPU kinds with perf: its latest
					 * CPU sample's stack, for when it runs */
	size_t cpu_n;
	struct cpu_entry *cpu;          /* CPU kind */
	size_t ncpu, capcpu;
	int64_t cpu_w;                  /* weights sampled */
	int64_t pending[2];             /* wall, block: values of repeats not yet
					 * added to the profile (one add per run
					 * of repeats, not one per tick) */
};

/* Mutex kind: this tick's waiters, charged to holders at the tick's end. */
struct waiter {
	uint64_t futex;
	int64_t contentions, delay;
};

/* heap_start.c: the ring shared with the sampler in the target. */
struct collect_ring {
	int fd;                         /* the memfd, -1: none */
	struct heapring_header *hdr;    /* mapped MAP_SHARED */
	unsigned char *data;
	size_t data_size, map_size;
	uint64_t tail;                  /* our copy of hdr->tail */
};

/* Ring data: room for a burst of records (each the registers and up to
 * --stack-size bytes of stack: 2000 of 32 KiB) while pprofc unwinds.  Pages
 * are used only as far as the ring fills.  The same for every process
 * that --children follows: with a quarter of it (500 records), a
 * process's first records, waiting while pprofc loads its debug info,
 * filled the ring at the default rate (heap_alloc 2048 2048: 52 dropped). */
#define COLLECT_RING_DATA_SIZE (64u << 20)

/* heap_follow.c: the socket the processes that --children follows ask
 * for their rings on. */
struct collect_follow {
	int fd;                         /* listening, -1: not following */
	char name[HEAPRING_SOCK_NAME_MAX + 1];
	uint64_t refused;               /* asks not answered: not ours, or malformed */
};
/* Listens under a fresh abstract name (pprofc-heap-PID-RANDOM).  0, or -1
 * with err set. */
int collect_follow_open(struct collect_follow *f, pid_t self, struct collect_error *err);
void collect_follow_close(struct collect_follow *f);
/* The next ask waiting (never blocks but to read an ask already
 * connected): 1 with its connection and the asker's pid (SO_PEERCRED);
 * 0 when none is waiting.  Asks from processes neither of our user nor
 * descending from root are refused (and counted). */
int collect_follow_next(struct collect_follow *f, pid_t root, int *conn, pid_t *pid);
/* Sends the ring's memfd over conn and closes conn; -1 if the asker is
 * no longer waiting. */
int collect_follow_answer(int conn, int ring_fd);
/* A descriptor that polls readable once pid has exited; -1 on error. */
int collect_follow_pidfd(pid_t pid);

/* Stack bytes the sampler copies per allocation when not asked, as for
 * the perf engine's samples. */
#define COLLECT_HEAP_STACK_DEFAULT (32u * 1024)

struct collect_heap;
struct heap_attach;
struct collect_tc;

/* heap_account.c: sampled allocations by (stack, size), and the sampled
 * blocks still live.  Zeroed: empty. */
struct collect_heap_account {
	struct heap_entry *e;
	size_t ne, cape;
	size_t *eix;                    /* open addressing over e: index + 1 */
	size_t capeix;
	struct heap_block *live;        /* open addressing by address */
	size_t nlive, caplive;
	struct heap_keyed *kix;         /* open addressing by (stack key, size) */
	size_t nkix, capkix;
};
/* A sampled block of size bytes at addr, allocated on stack locs: -1 if
 * out of memory.  A block still live at addr was freed unseen: it goes.
 * stack_key: 0, or a number that names locs for as long as h lives (the
 * heap reader's unwind-memo key): its entry is then found by the key and
 * the size, without hashing and comparing locs. */
int collect_heap_alloc(struct collect_heap_account *h, uint64_t addr, uint64_t stack_key,
		       const uint64_t *locs, size_t n, uint64_t size);
/* addr freed: 1 if it was a sampled block live, else 0. */
int collect_heap_free_block(struct collect_heap_account *h, uint64_t addr);
/* The entries into prof (its samples cleared first), unsampled at rate;
 * how many could not be added (out of memory). */
uint64_t collect_heap_account_profile(struct collect_heap_account *h, struct pp_profile *prof,
				      uint64_t rate);
/* The entries added to prof's samples (not cleared), each with the extra
 * labels after its `bytes` label; how many could not be added. */
uint64_t collect_heap_account_add(struct collect_heap_account *h, struct pp_profile *prof,
				  uint64_t rate, const struct pp_label *extra, size_t n_extra);
void collect_heap_account_free(struct collect_heap_account *h);
/* How many frames of st, from the leaf, are the allocator's (trimmed so
 * that a stack starts at the code that asked for memory): allocation
 * functions by name, and every frame of the module lib. */
size_t collect_heap_trim(const struct sym_stack *st, const char *lib);

struct collect_session {
	pid_t pid;
	struct collect_opts o;
	pid_t child;                    /* run: the command, our child (0: none) */
	int child_reaped, child_status;
	struct sym_session *sym;
	struct collect_stacks stacks;
	struct attach_engine *engine;
	struct attach_engine *cpu_engine;  /* off-CPU kinds: perf_event samples
					    * give running threads' stacks */
	struct collect_summary sum;
	int stopped;
	uint64_t start_ns;
	/* kinds.c */
	struct last_sample *last;       /* open addressing by tid */
	size_t nlast, caplast;
	struct waiter *waiters;
	size_t nwaiters, capwaiters;
	/* heap.c: heap and allocs (NULL for the other kinds) */
	struct collect_heap *heap;
	/* heap_attach.c: heap and allocs of attach (NULL for the others) */
	struct heap_attach *uheap;
	/* trace.c: the trace kind (NULL for the others) */
	struct collect_trace *trace;
	uint64_t end_ns;                /* when the engines were closed */
	/* threadcreate.c (NULL for the other kinds) */
	struct collect_tc *tc;
	/* group.c: several processes, each with a session of its own (NULL:
	 * this one collects) */
	struct collect_group *group;
};

/* threadcreate.c: the threadcreate kind behind collect_open and
 * collect_spawn (start: the engine watching creations, the threads alive
 * now; released: run's command let go of, the ptrace watch opened then),
 * collect_run (tick: counts the alive threads once the watch settled) and
 * collect_stop (finish).  start and released: 0, or -1 with err set. */
int collect_tc_start(struct collect_session *s, struct collect_error *err);
int collect_tc_released(struct collect_session *s, struct collect_error *err);
void collect_tc_tick(struct collect_session *s);
void collect_tc_finish(struct collect_session *s);
void collect_tc_free(struct collect_session *s);

/* group.c: several processes behind collect_open_many and
 * collect_spawn_following, then collect_run, collect_stop,
 * collect_profile, collect_close; run's command is the session
 * collect_group_child gives (NULL when attached). */
struct collect_session *collect_spawn_following(char **argv, const struct collect_opts *o,
						struct collect_error *err, int *status);
void collect_group_run(struct collect_session *s);
void collect_group_stop(struct collect_session *s);
struct pp_profile *collect_group_profile(struct collect_session *s);
struct collect_session *collect_group_child(struct collect_session *s);
void collect_group_free(struct collect_session *s);

/* heap_attach.c: the heap and allocs kinds of attach (uprobes), behind
 * collect_open (after prepare), collect_run, collect_stop,
 * collect_profile and collect_close.  start: 0, or -1 with err set. */
int collect_heap_attach_start(struct collect_session *s, struct collect_error *err);
void collect_heap_attach_run(struct collect_session *s);
void collect_heap_attach_stop(struct collect_session *s);
struct pp_profile *collect_heap_attach_profile(struct collect_session *s);
void collect_heap_attach_free(struct collect_session *s);
/* The profile's comment: what inuse means for a window. */
const char *collect_heap_attach_comment(void);

/* session.c: whether run's command has exited (reaped, status kept). */
int collect_child_exited(struct collect_session *s);

/* heap.c: the heap and allocs kinds behind collect_spawn, collect_run,
 * collect_stop, collect_profile and collect_close. */
struct collect_session *collect_heap_spawn(char **argv, const struct collect_opts *o,
					   struct collect_error *err, int *status);
void collect_heap_run(struct collect_session *s);
void collect_heap_stop(struct collect_session *s);
struct pp_profile *collect_heap_profile(struct collect_session *s);
void collect_heap_free(struct collect_session *s);

/* heap_start.c: starts argv with the sampler preloaded (no ptrace) and,
 * unless sock (following: the socket's name for its environment), the
 * ring r created and shared.  Its pid, or -1 with err set (and *status
 * the command's wait status if it could not run, else -1); lib (PATH_MAX
 * bytes) gets the sampler library's real path. */
pid_t collect_heap_start(char **argv, const struct collect_opts *o, struct collect_ring *r,
			 const char *sock, char *lib, struct collect_error *err, int *status);
/* A ring of data_size bytes (a power of two) for o's rate and stack size,
 * created and mapped; sealed: its size fixed for whoever holds it.  0, or
 * -1 with err set. */
int collect_ring_make(struct collect_ring *r, size_t data_size, int sealed, const struct collect_opts *o,
		      struct collect_error *err);
void collect_ring_close(struct collect_ring *r);

/* kinds.c: the engine's callbacks, and the end of the accounting. */
void collect_on_sample(void *arg, const struct attach_raw_sample *s);
void collect_on_tick_end(void *arg);
void collect_on_cpu_stack(void *arg, const struct attach_raw_sample *s);
void collect_on_thread_gone(void *arg, pid_t tid);
void collect_kinds_flush(struct collect_session *s);
/* Off-CPU kinds: what accumulates for a wait still going on goes into the
 * profile now (the sums are unchanged), so that it can be read mid-run. */
void collect_kinds_sync(struct collect_session *s);
void collect_kinds_free(struct collect_session *s);
/* Unwinds a sample (counting failures and incomplete stacks); 0 with a
 * stack to free, -1 with nothing. */
int collect_unwind_sample(struct collect_session *p, const struct attach_raw_sample *s,
			  struct sym_stack *st);

/* trace.c: the trace kind.  The tick loop's samples (every thread at
 * every tick: its state and wait), the perf engine's CPU samples, context
 * switches, births and exits are kept as events, and made into each
 * thread's timeline by collect_trace_write. */
struct collect_trace;
int collect_trace_open(struct collect_session *s);
void collect_trace_on_tick(void *arg, const struct attach_raw_sample *s);
void collect_trace_on_cpu(void *arg, const struct attach_raw_sample *s);
void collect_trace_on_sched(void *arg, const struct attach_sched_event *ev);
void collect_trace_on_gone(void *arg, pid_t tid);
void collect_trace_on_new(void *arg, pid_t tid);
void collect_trace_free(struct collect_session *s);

/* spawn.c: starts argv stopped at its exec (ptrace), so the engine can be
 * opened before its first instruction; collect_release_child() then lets
 * it run untraced.  Returns its pid, or -1 with err set (and *status the
 * command's wait status if it already exited, else -1). */
pid_t collect_start_child(char **argv, struct collect_error *err, int *status);
void collect_release_child(pid_t pid);
/* Kills the child at its exec stop, before it ran anything, and reaps it. */
void collect_kill_child(pid_t pid);

#endif
