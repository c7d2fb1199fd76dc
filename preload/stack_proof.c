/* stack_proof.c — per thread, the part of its own stack already proven
 * readable, so that a sampled allocation copies the top of its stack with
 * a plain memcpy instead of a system call (record.c).  At the default
 * rate an allocation-heavy program takes ~80k samples a second: the
 * sampled path must cost well under a microsecond.
 *
 * The proof is a past checked copy (process_vm_readv) by this very
 * thread that read contiguously from its sp up past the thread's anchor,
 * an address above every frame of the thread's own stack: for a thread
 * that pthread_create started, this file's thread-local (glibc puts the
 * static TLS, ours included — initial-exec — at the top of the thread's
 * stack block, above its first frame); for the main thread,
 * __libc_stack_end (the sp at the process's entry).  The proven range is
 * [lowest such sp, end of the anchor's page), nothing above that page
 * (the read may have run on into a neighbouring mapping, which may go
 * away; the anchor's page is the stack's own).
 *
 * Why it stays readable: a thread's own stack between a proven sp and its
 * top stays mapped while the thread lives.  The main thread's stack only
 * grows (the kernel never shrinks it), and a thread's stack block is
 * unmapped or cached by glibc only after the thread is gone; a new
 * thread's TLS starts zeroed (glibc clears static TLS even in a reused
 * stack block), so its range starts empty.  A sigaltstack, or a coroutine
 * stack of the program's own, is another mapping below or apart from the
 * anchor's: a read from it stops at its end short of the anchor and
 * proves nothing, so samples there always take the checked copy.  Only a
 * program that unmaps or mprotects its own live stack, or runs a
 * coroutine on a stack mapped right below a thread's stack with no guard
 * page between (glibc always leaves one), could break this.
 *
 * Only the thread itself reads or writes its range, inside the sampler's
 * reentrancy guard: a signal handler that allocates meanwhile is not
 * sampled, so the range never changes under a copy.
 */
#include "preload.h"

/* ld.so's: the stack pointer at the process's entry (argc's address). */
extern void *__libc_stack_end;

struct stack_proof {
	uintptr_t lo;           /* lowest proven sp */
	uintptr_t top;          /* end of the proven range; 0: none yet */
	uintptr_t useful;       /* where a copy may stop: min(top, anchor) for a
				 * thread's TLS anchor, top for the main thread */
};

static __thread struct stack_proof proof;

/* Whether [sp, top) is proven readable; *len: the bytes from sp worth
 * copying.  Above a thread's TLS anchor there is only static TLS and
 * glibc's thread descriptor (2-3 KiB, more than the frames of a shallow
 * stack), which no unwind reads: the copy stops at the anchor.  The main
 * thread's anchor is the sp at entry, where _start's frame begins: its
 * copy runs to the proven top, as the unwinder may read there. */
bool preload_stack_proven(uint64_t sp, uint64_t *len)
{
	const struct stack_proof *p = &proof;

	if (sp < p->lo || sp >= p->top)
		return false;
	*len = p->useful > sp ? p->useful - sp : p->top - sp;
	return true;
}

/* The anchor of the thread's stack that [sp, end) contains, or 0. */
static uintptr_t anchor_within(uintptr_t sp, uintptr_t end)
{
	uintptr_t tls = (uintptr_t)&proof, entry = (uintptr_t)__libc_stack_end;

	if (sp <= tls && tls < end)
		return tls;
	if (sp <= entry && entry < end)
		return entry;
	return 0;
}

/* The end of the anchor's page: where a proven range stops. */
static uintptr_t anchor_page_end(uintptr_t anchor)
{
	return (anchor | (preload_page_size - 1)) + 1;
}

/* Before the range is proven: the bytes a checked copy from sp must read
 * to prove it, from sp to the end of the anchor's page (every frame of
 * the thread's stack lies below its anchor), if that is under limit; else
 * limit (no anchor within reach: a sigaltstack, a coroutine's stack, or a
 * deep one). */
uint32_t preload_stack_reach(uint64_t sp, uint32_t limit)
{
	uintptr_t anchor = anchor_within((uintptr_t)sp, (uintptr_t)sp + limit);
	uintptr_t end = anchor ? anchor_page_end(anchor) : 0;

	return end && end - (uintptr_t)sp < limit ? (uint32_t)(end - (uintptr_t)sp) : limit;
}

/* A checked copy read got bytes from sp: what it proves.  Two proven
 * ranges of one thread both hold its anchor, so their union is one
 * contiguous readable range. */
void preload_stack_prove(uint64_t sp, uint32_t got)
{
	struct stack_proof *p = &proof;
	uintptr_t end = (uintptr_t)sp + got;
	uintptr_t anchor = anchor_within((uintptr_t)sp, end);
	uintptr_t top;

	if (!anchor)
		return;
	top = anchor_page_end(anchor);
	if (top > end)
		top = end;
	if (p->top && p->lo <= anchor && anchor < p->top) {
		if (sp < p->lo)
			p->lo = (uintptr_t)sp;
		if (top > p->top)
			p->top = top;
	} else {
		p->lo = (uintptr_t)sp;
		p->top = top;
	}
	p->useful = anchor == (uintptr_t)&proof ? anchor : p->top;
}
