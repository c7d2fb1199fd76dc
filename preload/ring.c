/* ring.c — the writer's half of the shared-memory ring (heapring.h): any
 * thread of the target, a signal handler included, reserves room with a
 * compare-and-swap on head, fills its record, and publishes it by storing
 * the size word last.  Nothing here takes a lock.  A writer that finds no
 * room drops its record and counts it, so the target never waits on
 * pprofc; except at rate 1, where the user asked for every allocation:
 * there it waits for room while the reader lives (heapring.h).
 */
#include "preload.h"

#define ROOM_NAP_NS 100000      /* 100 us: the reader frees room in batches */

/* Stores a PAD record over the room left before the end of the data, so
 * that the reader skips it and finds the next record at the start. */
static void publish_pad(uint64_t pos, uint64_t len)
{
	void *rec = preload_ring_data + (pos & (preload_ring->data_size - 1));

	preload_ring_publish(rec, (uint32_t)len, HEAPRING_PAD);
}

/* The ring is full: whether to try again.  At rate 1, after a nap, as
 * long as the reader lives and recording goes on (a reader that died or
 * is done lets us go within HEAPRING_ALIVE_NS); at any other rate, or
 * when the caller may not wait, no: the record is dropped and counted.
 *
 * Waiting is safe because the waiter holds nothing: it has reserved no
 * room yet (a writer never waits between reserve and publish, so the
 * reader never waits on a waiter's record), real malloc has returned (no
 * allocator lock) and the sampler takes no lock.  A signal handler that
 * allocates on the waiting thread meets the sampler's reentrancy guard
 * (sampler.c): not sampled; one that frees a sampled block records the
 * free with may_wait false, so it never waits on a ring that the
 * interrupted thread may hold a reserved, unpublished record in.  The nap
 * is a raw system call: nanosleep() is a cancellation point, malloc is
 * not. */
static bool wait_for_room(bool may_wait)
{
	if (!may_wait || preload_rate != 1)
		return false;
	preload_nap(ROOM_NAP_NS);
	return preload_still_recording(preload_now_ns());
}

/* Room for one record of size bytes (a multiple of 8, never 0), or NULL
 * when the reader is too far behind (and we may not, or need not, wait).
 * A record never wraps: when the room before the end is too small, that
 * room is reserved too and padded. */
void *preload_ring_reserve(uint32_t size, bool may_wait)
{
	struct heapring_header *h = preload_ring;
	uint64_t head = __atomic_load_n(&h->head, __ATOMIC_RELAXED);
	uint64_t tail, off, pad, next;

	for (;;) {
		/* Acquire: the reader zeroes what it consumed before it moves
		 * tail, and those zeroes must land before our record. */
		tail = __atomic_load_n(&h->tail, __ATOMIC_ACQUIRE);
		off = head & (h->data_size - 1);
		pad = h->data_size - off < size ? h->data_size - off : 0;
		next = head + pad + size;
		if (next - tail <= h->data_size) {
			if (__atomic_compare_exchange_n(&h->head, &head, next, true,
							__ATOMIC_RELAXED, __ATOMIC_RELAXED))
				break;
			continue;       /* head moved: it holds the new value */
		}
		if (!wait_for_room(may_wait)) {
			/* Not counted once recording stopped: nothing records. */
			if (atomic_load_explicit(&preload_state, memory_order_relaxed) == PRELOAD_RECORDING)
				preload_ring_count(&h->dropped_full);
			return NULL;
		}
		head = __atomic_load_n(&h->head, __ATOMIC_RELAXED);
	}
	if (pad)
		publish_pad(head, pad);
	return preload_ring_data + ((head + pad) & (h->data_size - 1));
}

/* Makes a filled record visible to the reader: the type, then the size
 * with release order, so that the reader that sees the size sees the
 * whole record. */
void preload_ring_publish(void *rec, uint32_t size, uint32_t type)
{
	struct heapring_rec *r = rec;

	r->type = type;
	__atomic_store_n(&r->size, size, __ATOMIC_RELEASE);
}

/* One more event in a shared counter of the header (drops, untracked). */
void preload_ring_count(uint64_t *counter)
{
	__atomic_fetch_add(counter, 1, __ATOMIC_RELAXED);
}
