/* ring.c — the writer's half of the shared-memory ring (heapring.h): any
 * thread of the target, a signal handler included, reserves room with a
 * compare-and-swap on head, fills its record, and publishes it by storing
 * the size word last.  Nothing here blocks or takes a lock: a writer that
 * finds no room drops its record and counts it, so the target never waits
 * on pprofc.
 */
#include "preload.h"

/* Stores a PAD record over the room left before the end of the data, so
 * that the reader skips it and finds the next record at the start. */
static void publish_pad(uint64_t pos, uint64_t len)
{
	void *rec = preload_ring_data + (pos & (preload_ring->data_size - 1));

	preload_ring_publish(rec, (uint32_t)len, HEAPRING_PAD);
}

/* Room for one record of size bytes (a multiple of 8, never 0), or NULL
 * when the reader is too far behind.  A record never wraps: when the room
 * before the end is too small, that room is reserved too and padded. */
void *preload_ring_reserve(uint32_t size)
{
	struct heapring_header *h = preload_ring;
	uint64_t head = __atomic_load_n(&h->head, __ATOMIC_RELAXED);
	uint64_t tail, off, pad, next;

	do {
		/* Acquire: the reader zeroes what it consumed before it moves
		 * tail, and those zeroes must land before our record. */
		tail = __atomic_load_n(&h->tail, __ATOMIC_ACQUIRE);
		off = head & (h->data_size - 1);
		pad = h->data_size - off < size ? h->data_size - off : 0;
		next = head + pad + size;
		if (next - tail > h->data_size) {
			preload_ring_count(&h->dropped_full);
			return NULL;
		}
	} while (!__atomic_compare_exchange_n(&h->head, &head, next, true,
					     __ATOMIC_RELAXED, __ATOMIC_RELAXED));
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
