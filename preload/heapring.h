/* heapring.h — the shared-memory ring between the allocation sampler that
 * `pprofc run --profile heap|allocs` loads into its command (preload/,
 * LD_PRELOAD) and pprofc itself (collect/, the reader): a wire format,
 * nothing else.  Both sides include this header; neither includes the
 * other's code.
 *
 * pprofc creates a memfd of HEAPRING_SIZE(data_size) bytes, writes the
 * header, and passes the descriptor's number to the command in the
 * environment (HEAPRING_ENV_FD).  The sampler maps it MAP_SHARED in its
 * constructor and closes the descriptor.  Many threads of the target
 * write (each reserves space with a compare-and-swap on head), one reader
 * consumes (it advances tail).  A record is published by storing its
 * size word last, with release order; until then the reader sees 0 there
 * and waits.  So the reader zeroes every byte writers wrote in what it
 * consumed before it moves tail (release), not only the size words: a
 * later record may start anywhere in them.  A writer writes nothing in its
 * record past the fixed part and stack_len bytes (an ALLOC record reserves
 * room for stack_size bytes of stack, most of it usually left as zeroes),
 * so that is all the reader has to zero.  A writer that finds too little
 * room drops its record and counts it (dropped_full): the target never
 * blocks on pprofc.  Except at rate 1, where the user asked for every
 * allocation: there a writer waits for room (short naps) as long as the
 * reader's heartbeat is fresh and stopped is not set, so a reader that
 * keeps up loses nothing and one that died or is done lets the target go
 * within HEAPRING_ALIVE_NS.  A writer waits only before it reserves, never
 * between reserve and publish: the reader never waits on a waiting writer.
 *
 * At exit() (not _exit, not a fatal signal) the target waits, while
 * recording and for at most 2 s, until tail reaches the head it saw
 * when the exit began: the reader can still unwind those records against
 * the live process (its maps, its modules).  The reader needs to do
 * nothing for that but keep reading.
 *
 * Positions are byte counts that only grow; a record starts at
 * (position % data_size) and never wraps: when the space left before the
 * end of the data is too small, the writer publishes a PAD record that
 * fills it and reserves again at the start.  Records are 8-byte aligned.
 *
 * Following children (`run --children`): instead of a descriptor, the
 * environment holds HEAPRING_ENV_SOCK, the name of pprofc's listening
 * unix socket (SOCK_SEQPACKET, Linux's abstract namespace: a name, not a
 * file, so it survives programs that close every inherited descriptor,
 * as python's subprocess does, and vanishes with pprofc).  Every process
 * image that loads the sampler with it (the command, each program a
 * process runs, each forked child before its first sampled allocation)
 * connects, sends a struct heapring_ask, and waits at most
 * HEAPRING_ASK_NS for a struct heapring_answer carrying the memfd of a
 * ring of its own (SCM_RIGHTS), made for it alone; then it maps the ring
 * and records exactly as above.  pprofc knows who asks from the
 * connection's credentials (SO_PEERCRED), not from what the message
 * says.  No answer, no connection (pprofc gone) or a refusal: that
 * process records nothing and runs on.
 *
 * Liveness: the reader stores CLOCK_MONOTONIC nanoseconds in
 * reader_alive_ns at least every HEAPRING_ALIVE_NS / 4; a writer that
 * finds it older than HEAPRING_ALIVE_NS stops recording for good (pprofc
 * died: the target runs on, untouched), and so does every writer once
 * stopped is set.
 */
#ifndef PPROFC_HEAPRING_H
#define PPROFC_HEAPRING_H

#include <stdint.h>

#define HEAPRING_MAGIC 0x676e697270616568ULL     /* "heapring" */
#define HEAPRING_VERSION 1
#define HEAPRING_ENV_FD "PPROFC_HEAP_FD"
#define HEAPRING_ENV_SOCK "PPROFC_HEAP_SOCK"      /* --children: the socket's name */
#define HEAPRING_SOCK_NAME_MAX 100              /* abstract name bytes, < sun_path */
#define HEAPRING_ASK_NS 5000000000ULL           /* 5 s, as long as a stale heartbeat */
#define HEAPRING_HEADER_SIZE 4096               /* the data starts a page in */
#define HEAPRING_SIZE(data_size) (HEAPRING_HEADER_SIZE + (data_size))
#define HEAPRING_ALIVE_NS 5000000000ULL         /* 5 s */
#define HEAPRING_REGS 17                        /* arch/regs.h: DWARF 0..16 */

/* Everything but the counters is written by pprofc before the command
 * starts, and read-only afterwards. */
struct heapring_header {
	uint64_t magic;
	uint32_t version;
	uint32_t stack_size;            /* stack bytes copied per sample (<= 65536) */
	uint64_t data_size;             /* a power of two, >= 1 MiB */
	uint64_t rate;                  /* mean bytes between samples; 1: every allocation */
	int32_t owner_pid;              /* the process that records; a forked child does not */
	uint32_t pad0;
	/* Shared counters, each on its own cache line. */
	_Alignas(64) uint64_t head;     /* writers: bytes reserved (atomic CAS) */
	_Alignas(64) uint64_t tail;     /* reader: bytes consumed (atomic store) */
	_Alignas(64) uint64_t reader_alive_ns;  /* reader: heartbeat (atomic store) */
	_Alignas(64) uint64_t dropped_full;     /* writers: records dropped, ring full */
	uint64_t dropped_stack;         /* sampled allocations whose stack could not be copied
					 * (recorded without stack: stack_len 0) */
	uint64_t untracked_frees;       /* sampled blocks the sampler could not remember
					 * (its address set was full): their free is never seen */
	uint64_t stopped;               /* 1: record no more (atomic).  The reader stores it
					 * when it is done (--seconds passed); a writer stores it
					 * when the reader's heartbeat is stale (pprofc died) */
};

enum heapring_type {
	HEAPRING_PAD = 1,               /* skip size bytes */
	HEAPRING_ALLOC = 2,             /* struct heapring_alloc + stack bytes */
	HEAPRING_FREE = 3,              /* struct heapring_free: a sampled block went away */
};

/* Common to every record: size is the whole record's size in bytes (a
 * multiple of 8), stored last with release order. */
struct heapring_rec {
	uint32_t size;
	uint32_t type;
};

/* A sampled allocation: the block, and the thread's registers and stack at
 * a point inside the sampler (the allocator's own frames are on top of the
 * stack; the reader trims them).  regs[] is indexed by DWARF register
 * number (arch/regs.h), all 17 known.  The stack copy starts at regs[SP]
 * and holds stack_len bytes; the record is padded to 8 bytes after it.
 * stack_len < stack_size: the copy reaches past the thread's outermost
 * frame (the end of the stack's mapping, or a page above the top frame:
 * the sampler may stop there rather than copy whatever lies beyond). */
struct heapring_alloc {
	struct heapring_rec h;
	uint64_t addr;                  /* what the allocation function returned */
	uint64_t size;                  /* bytes asked for */
	uint64_t time_ns;               /* CLOCK_MONOTONIC */
	int32_t tid;
	uint32_t stack_len;
	uint64_t regs[HEAPRING_REGS];
	/* unsigned char stack[stack_len]; */
};

/* A sampled block was freed, or moved by realloc (then an ALLOC record for
 * the new block follows if the new one is sampled too). */
struct heapring_free {
	struct heapring_rec h;
	uint64_t addr;
	uint64_t time_ns;
};

/* --children: what a process sends once connected, and what pprofc
 * answers (with the ring's memfd in an SCM_RIGHTS message when ok). */
struct heapring_ask {
	uint64_t magic;                 /* HEAPRING_MAGIC */
	uint32_t version;               /* HEAPRING_VERSION */
	int32_t pid;                    /* getpid(): informative (pid namespaces) */
};

struct heapring_answer {
	uint64_t magic;
	uint32_t version;
	uint32_t ok;                    /* 1: the ring's memfd comes with it */
};

#endif
