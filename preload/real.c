/* real.c — the allocator behind the sampler: the functions the target
 * would call without us, found with dlsym(RTLD_NEXT, ...), and a small
 * static pool for the allocations dlsym itself makes while we look them
 * up.
 *
 * dlsym(RTLD_NEXT) rather than glibc's __libc_malloc: a target that links
 * jemalloc or tcmalloc keeps its own allocator.  dlsym may allocate (its
 * error buffers) and so reach our malloc before the originals are known;
 * those few blocks come from the pool, are never reused, and their free is
 * a no-op.  Any thread that allocates while the lookup runs is served from
 * the pool too, rather than waiting on it.
 */
#include <dlfcn.h>
#include <stdint.h>
#include <string.h>

#include "preload.h"

#define POOL_HEADER 16          /* the block's size, just before it */

struct preload_real preload_real;
atomic_int preload_resolved;    /* 0: not looked up, 1: looking up, 2: done */

_Alignas(4096) unsigned char preload_pool[PRELOAD_POOL_SIZE];
static atomic_size_t pool_used;

/* Looks the originals up once; false when another lookup is under way
 * (on this thread, from inside dlsym, or on another one). */
bool preload_real_resolve(void)
{
	int expected = 0;

	if (!atomic_compare_exchange_strong(&preload_resolved, &expected, 1))
		return expected == 2;
	preload_real.malloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
	preload_real.calloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "calloc");
	preload_real.realloc = (void *(*)(void *, size_t))dlsym(RTLD_NEXT, "realloc");
	preload_real.free = (void (*)(void *))dlsym(RTLD_NEXT, "free");
	preload_real.posix_memalign = (int (*)(void **, size_t, size_t))dlsym(RTLD_NEXT, "posix_memalign");
	preload_real.aligned_alloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "aligned_alloc");
	preload_real.memalign = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "memalign");
	preload_real.valloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "valloc");
	preload_real.pvalloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "pvalloc");
	/* glibc's malloc is an alias of its __libc_malloc; another allocator's is not. */
	preload_real.is_glibc = preload_real.malloc &&
				(void *)preload_real.malloc == dlsym(RTLD_NEXT, "__libc_malloc");
	atomic_store_explicit(&preload_resolved, 2, memory_order_release);
	return true;
}

/* A bump allocation from the pool, aligned to align; NULL once the pool
 * is spent, or for an alignment that is not a power of two. */
void *preload_pool_alloc(size_t size, size_t align)
{
	size_t start = atomic_load_explicit(&pool_used, memory_order_relaxed);
	uintptr_t base = (uintptr_t)preload_pool;
	uintptr_t p, end;

	if (align & (align - 1))
		return NULL;
	if (align < POOL_HEADER)
		align = POOL_HEADER;
	do {
		p = (base + start + POOL_HEADER + align - 1) & ~(uintptr_t)(align - 1);
		if (size > PRELOAD_POOL_SIZE || p + size > base + PRELOAD_POOL_SIZE)
			return NULL;
		end = p + size - base;
	} while (!atomic_compare_exchange_weak(&pool_used, &start, end));
	memcpy((void *)(p - POOL_HEADER), &size, sizeof size);
	return (void *)p;
}

/* The size a pool block was asked with (for realloc, which must copy it). */
size_t preload_pool_size(const void *p)
{
	size_t size;

	memcpy(&size, (const unsigned char *)p - POOL_HEADER, sizeof size);
	return size;
}
