/* record.c — the sampled path: what a sampled allocation writes into the
 * ring (the block, the thread's registers and a copy of the top of its
 * stack, as a perf sample has them) and what the free of a sampled block
 * writes.  pprofc unwinds the record later, outside the target, with the
 * CFI of this library from the captured pc; nothing is unwound here.
 *
 * It runs inside malloc, maybe inside a signal handler that interrupted
 * malloc: no lock, no allocation, no stdio; only the vDSO clock and
 * system calls that take no user-space lock.
 */
#include <errno.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "arch/regs.h"
#include "preload.h"

#define STACK_IOVECS (65536 / 4096 + 1)
#define ALLOC_RECORD_SIZE(stack) \
	((uint32_t)(sizeof(struct heapring_alloc) + (((stack) + 7u) & ~7u)))

/* All 17 registers, DWARF-numbered (arch/regs.h), in one asm block whose
 * first instruction is the pc we report: every register is stored before
 * any is changed (r11 only after its own store), so the values are the
 * ones at that pc, and its caller's CFI at that pc describes them.  It is
 * always inlined: the pc must be in the function that copies the stack
 * from the captured rsp, so that the frame the CFI describes is copied. */
static inline __attribute__((always_inline)) void capture_regs(uint64_t *r)
{
	__asm__ volatile(
		"1:\n\t"
		"movq %%rax, 0(%0)\n\t"
		"movq %%rdx, 8(%0)\n\t"
		"movq %%rcx, 16(%0)\n\t"
		"movq %%rbx, 24(%0)\n\t"
		"movq %%rsi, 32(%0)\n\t"
		"movq %%rdi, 40(%0)\n\t"
		"movq %%rbp, 48(%0)\n\t"
		"movq %%rsp, 56(%0)\n\t"
		"movq %%r8, 64(%0)\n\t"
		"movq %%r9, 72(%0)\n\t"
		"movq %%r10, 80(%0)\n\t"
		"movq %%r11, 88(%0)\n\t"
		"movq %%r12, 96(%0)\n\t"
		"movq %%r13, 104(%0)\n\t"
		"movq %%r14, 112(%0)\n\t"
		"movq %%r15, 120(%0)\n\t"
		"leaq 1b(%%rip), %%r11\n\t"
		"movq %%r11, 128(%0)\n\t"
		: : "r"(r) : "r11", "memory");
}

/* The slow and safe copy: the stack from sp upward into dst, at most
 * room bytes, fewer where readable memory ends.  process_vm_readv
 * on ourselves rather than memcpy: an unreadable page fails the read
 * instead of faulting, and one remote iovec per page makes that failure
 * cut the copy at the page (the call never splits an iovec) and keep what
 * came before.  No need for the stack's bounds (pthread_getattr_np takes
 * locks).  Returns the bytes copied. */
static uint32_t copy_stack_checked(void *dst, uint64_t sp, uint32_t room)
{
	struct iovec local = { dst, room };
	struct iovec remote[STACK_IOVECS];
	uint64_t at = sp, left = room;
	unsigned n = 0;
	ssize_t got;

	while (left && n < STACK_IOVECS) {
		uint64_t chunk = preload_page_size - (at & (preload_page_size - 1));

		if (chunk > left)
			chunk = left;
		remote[n++] = (struct iovec){ (void *)at, chunk };
		at += chunk;
		left -= chunk;
	}
	got = process_vm_readv(getpid(), &local, 1, remote, n, 0);
	return got > 0 ? (uint32_t)got : 0;
}

/* The stack bytes a record makes room for, from sp upward: where this
 * thread's stack between sp and its top has been proven readable
 * (stack_proof.c, *proven), the proven part, usually a few KiB; else what
 * the first checked copy needs to prove it, up to the page of the
 * thread's anchor, or the whole --stack-size where no anchor is within
 * reach.  A record that reserved all 32 KiB for a 2 KiB copy held the
 * ring to a fourteenth of the records it could hold, and a burst of
 * samples while the reader was slow (the sanitizer build's, or every new
 * thread's and new process's first samples while pprofc loads the new
 * process's debug info: a record dropped, ring full, once in 14,559)
 * filled it.  The anchor lies above the outermost frame: the reader
 * loses nothing it could unwind. */
static uint32_t stack_room(uint64_t sp, bool *proven)
{
	uint64_t len;

	*proven = preload_stack_size && preload_stack_proven(sp, &len);
	if (!*proven)
		return preload_stack_size ? preload_stack_reach(sp, preload_stack_size) : 0;
	return len < preload_stack_size ? (uint32_t)len : preload_stack_size;
}

/* Copies room bytes of the stack from sp into dst: the sampled path's
 * main cost, so a plain memcpy where stack_room found them proven, and
 * the checked copy otherwise, which then proves what it read. */
static uint32_t copy_stack(void *dst, uint64_t sp, bool proven, uint32_t room)
{
	uint32_t got;

	if (proven) {
		memcpy(dst, (const void *)(uintptr_t)sp, room);
		return room;
	}
	got = copy_stack_checked(dst, sp, room);
	preload_stack_prove(sp, got);
	return got;
}

/* noinline: the registers are captured in this very frame, the frame the
 * reader starts its unwind from (it trims the allocator's frames).  Only
 * sample() calls it, never nested on one thread (the reentrancy guard):
 * it may wait for room. */
__attribute__((noinline)) void preload_record_alloc(void *addr, size_t size, int32_t tid)
{
	uint64_t regs[HEAPRING_REGS];
	uint64_t now = preload_now_ns();
	struct heapring_alloc *rec;
	int saved_errno = errno;        /* a successful malloc leaves errno alone */
	uint32_t room, len;
	bool proven;

	capture_regs(regs);
	room = stack_room(regs[REGNAME(SP)], &proven);
	len = ALLOC_RECORD_SIZE(room);
	if (!preload_still_recording(now) || !(rec = preload_ring_reserve(len, true)))
		goto out;
	rec->addr = (uintptr_t)addr;
	rec->size = size;
	rec->time_ns = now;
	rec->tid = tid;
	memcpy(rec->regs, regs, sizeof rec->regs);
	rec->stack_len = room ? copy_stack(rec + 1, regs[REGNAME(SP)], proven, room) : 0;
	if (preload_stack_size && !rec->stack_len)
		preload_ring_count(&preload_ring->dropped_stack);
	/* Remembered only once recorded: a free the reader cannot match
	 * would be noise. */
	if (!preload_set_add((uintptr_t)addr))
		preload_ring_count(&preload_ring->untracked_frees);
	preload_ring_publish(rec, len, HEAPRING_ALLOC);
out:
	errno = saved_errno;
}

/* addr was a sampled block and is about to go back to the allocator:
 * the record is reserved before that, so that it precedes the record of
 * any block that reuses the address. */
void preload_record_free(void *addr, bool may_wait)
{
	uint64_t now = preload_now_ns();
	struct heapring_free *rec;

	if (!preload_still_recording(now) || !(rec = preload_ring_reserve(sizeof *rec, may_wait)))
		return;
	rec->addr = (uintptr_t)addr;
	rec->time_ns = now;
	preload_ring_publish(rec, sizeof *rec, HEAPRING_FREE);
}
