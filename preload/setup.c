/* setup.c — the sampler's start in the target and its stop: the
 * constructor maps the ring pprofc passed (HEAPRING_ENV_FD), hides the
 * sampler from the processes the target starts, and decides once whether
 * this process records.  Recording stops for good when pprofc says so
 * (stopped), when its heartbeat goes stale (pprofc died), or in a forked
 * child: the ring belongs to the process pprofc started.
 *
 * Following children (`run --children`, HEAPRING_ENV_SOCK): the sampler
 * stays in LD_PRELOAD, the constructor asks pprofc for a ring (follow.c),
 * and a forked child does not stop: at its first sampled allocation it
 * asks for a ring of its own (preload_adopt), and records into it.
 *
 * Without a valid ring the library passes every call through and records
 * nothing: a stray LD_PRELOAD must never break a program.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "preload.h"

#define PRELOAD_LIB_NAME "libpprofc_heap.so"
#define STACK_SIZE_MAX 65536
#define DATA_SIZE_MIN (1u << 20)

atomic_int preload_state;
struct heapring_header *preload_ring;
unsigned char *preload_ring_data;
uint64_t preload_rate;
uintptr_t preload_free_mask;    /* preload.h; 0 until the constructor: free() looks up */
uint32_t preload_stack_size;
size_t preload_page_size;
atomic_uint preload_epoch;
static pid_t owner_pid;
/* A page that the kernel zeroes in any child that does not share our
 * memory (MADV_WIPEONFORK: fork, _Fork, a raw clone alike), holding 1
 * in its first word here: the sampled path tells a child from its parent
 * with a load instead of getpid(), a system call (~370 ns on the test VM,
 * a third of a sampled allocation).  Its second word is 1 while a thread
 * of a forked child asks for the child's own ring (preload_adopt).  NULL
 * where the kernel lacks it (before 4.14): then getpid(), and a forked
 * child is never followed. */
static uint64_t *fork_canary;

#define CANARY_OWNER 0
#define CANARY_ASKING 1
#define ADOPT_NAP_NS 100000     /* 100 us: another thread asks for the ring */

/* CLOCK_MONOTONIC through the vDSO: no lock, no system call. */
uint64_t preload_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Sleeps about ns nanoseconds: a raw system call, not nanosleep(), which
 * is a cancellation point (malloc is not one) and may take no lock
 * either way; an interruption by a signal only shortens the nap. */
void preload_nap(uint64_t ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000u), (long)(ns % 1000000000u) };

	syscall(SYS_clock_nanosleep, CLOCK_MONOTONIC, 0, &ts, NULL);
}

/* The descriptor number in HEAPRING_ENV_FD, or -1 if absent or not a
 * plain decimal number. */
static int ring_fd_from_env(void)
{
	const char *s = getenv(HEAPRING_ENV_FD);
	long fd = 0;

	if (!s || !*s)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || fd > 1000000)
			return -1;
		fd = fd * 10 + (*s - '0');
	}
	return (int)fd;
}

/* Whether the header read from fd is a ring pprofc made for this process
 * (owner 0: handed over our own connection, which says whose it is) and
 * the file is large enough to map all of it (a shorter file would turn
 * the writer's stores into SIGBUS). */
static bool ring_header_valid(int fd, const struct heapring_header *h, pid_t owner)
{
	struct stat st;

	if (h->magic != HEAPRING_MAGIC || h->version != HEAPRING_VERSION)
		return false;
	if (h->data_size < DATA_SIZE_MIN || (h->data_size & (h->data_size - 1)))
		return false;
	if (h->stack_size > STACK_SIZE_MAX || h->rate == 0 || h->owner_pid != owner)
		return false;
	return fstat(fd, &st) == 0 && (uint64_t)st.st_size >= HEAPRING_SIZE(h->data_size);
}

/* Maps the ring and closes its descriptor; leaves a descriptor that is
 * not a ring alone (it may be the program's own).  Raw pread and close:
 * a forked child calls this inside malloc, which is no cancellation
 * point. */
static bool map_ring(int fd, pid_t owner)
{
	struct heapring_header h;
	void *m;

	if (fd < 0 || syscall(SYS_pread64, fd, &h, sizeof h, 0) != (long)sizeof h ||
	    !ring_header_valid(fd, &h, owner))
		return false;
	m = mmap(NULL, HEAPRING_SIZE(h.data_size), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	syscall(SYS_close, fd);
	if (m == MAP_FAILED)
		return false;
	preload_ring = m;
	preload_ring_data = (unsigned char *)m + HEAPRING_HEADER_SIZE;
	preload_rate = h.rate;
	preload_stack_size = h.stack_size;
	return true;
}

static bool is_this_library(const char *entry, size_t len)
{
	size_t n = sizeof PRELOAD_LIB_NAME - 1;

	return len >= n && memcmp(entry + len - n, PRELOAD_LIB_NAME, n) == 0 &&
	       (len == n || entry[len - n - 1] == '/');
}

/* Removes our entry from LD_PRELOAD, in place (the string shrinks, so no
 * allocation), keeping the others; unsets it when none is left. */
static void drop_from_ld_preload(void)
{
	char *value = getenv("LD_PRELOAD");
	char *out = value, *in = value;

	if (!value)
		return;
	while (*in) {
		size_t len = strcspn(in, ": ");

		if (len && !is_this_library(in, len)) {
			if (out != value)
				*out++ = ':';
			memmove(out, in, len);
			out += len;
		}
		in += len;
		in += *in != '\0';
	}
	*out = '\0';
	if (out == value)
		unsetenv("LD_PRELOAD");
}

/* A forked child must not write into its parent's ring. */
static void stop_in_child(void)
{
	atomic_store(&preload_state, PRELOAD_OFF);
}

/* The canary page, or NULL (then getpid() it is). */
static uint64_t *make_fork_canary(void)
{
	uint64_t *page = mmap(NULL, preload_page_size, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (page == MAP_FAILED)
		return NULL;
	if (madvise(page, preload_page_size, MADV_WIPEONFORK) != 0) {
		munmap(page, preload_page_size);
		return NULL;
	}
	page[CANARY_OWNER] = 1;
	return page;
}

/* Following: the ring comes over pprofc's socket, and a forked child asks
 * for its own (preload_adopt) rather than stop.  Otherwise from the
 * descriptor pprofc passed, and a forked child stops. */
static bool start_recording(bool following)
{
	int fd = following ? -1 : ring_fd_from_env();

	preload_page_size = (size_t)sysconf(_SC_PAGESIZE);
	owner_pid = getpid();
	fork_canary = make_fork_canary();
	if (!preload_set_init())
		return false;
	if (following)
		return map_ring(preload_follow_ask(), 0);
	return fd >= 0 && map_ring(fd, owner_pid) && pthread_atfork(NULL, NULL, stop_in_child) == 0;
}

__attribute__((constructor)) static void preload_init(void)
{
	int saved_errno = errno;
	bool following = preload_follow_init(getenv(HEAPRING_ENV_SOCK));
	bool recording;

	preload_real_ready();   /* now, before the target starts threads */
	recording = start_recording(following);
	unsetenv(HEAPRING_ENV_FD);
	if (!following)
		drop_from_ld_preload();
	/* Not recording: no block is ever sampled, nothing to look up.  A
	 * forked child that follows keeps its parent's rate (same ring). */
	if (!recording)
		preload_free_mask = ~(uintptr_t)0;
	else if (preload_rate >= PRELOAD_MARK_MIN_RATE && preload_real.memalign && preload_real.is_glibc)
		preload_free_mask = PRELOAD_MARK_MASK;
	atomic_store(&preload_state, recording ? PRELOAD_RECORDING : PRELOAD_OFF);
	errno = saved_errno;
}

/* Stops recording for good; and tells every writer through the header,
 * unless this is a forked child (the parent's ring is not ours). */
static bool stop(bool tell_others)
{
	if (tell_others)
		__atomic_store_n(&preload_ring->stopped, 1, __ATOMIC_RELAXED);
	atomic_store(&preload_state, PRELOAD_OFF);
	return false;
}

/* Whether this is still the process pprofc started: a forked child runs
 * stop_in_child, but one made by a raw clone or _Fork runs no atfork
 * handler.  A vfork child (it shares our memory, canary included) passes
 * where the canary exists; it may only exec or _exit anyway, and with
 * getpid() it would turn recording off for its parent too (preload_state
 * is shared). */
static bool is_owner(void)
{
	if (fork_canary)
		return __atomic_load_n(&fork_canary[CANARY_OWNER], __ATOMIC_ACQUIRE) != 0;
	return getpid() == owner_pid;
}

/* Another thread of this forked child asks for its ring: wait for it (at
 * rate 1 every allocation counts), as long as it may take. */
static bool wait_adopted(void)
{
	uint64_t deadline = preload_now_ns() + HEAPRING_ASK_NS + ADOPT_NAP_NS;

	while (!is_owner() && preload_now_ns() < deadline &&
	       atomic_load_explicit(&preload_state, memory_order_acquire) == PRELOAD_RECORDING)
		preload_nap(ADOPT_NAP_NS);
	return is_owner();
}

/* The child's own ring, asked for by one thread.  The set of sampled
 * addresses came wiped with the fork (its pages are MADV_WIPEONFORK:
 * the parent's blocks are the parent's). */
static bool adopt(void)
{
	uint64_t idle = 0;

	if (!__atomic_compare_exchange_n(&fork_canary[CANARY_ASKING], &idle, 1, false,
					 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		return wait_adopted();
	if (!map_ring(preload_follow_ask(), 0)) {
		atomic_store(&preload_state, PRELOAD_OFF);
		return false;
	}
	owner_pid = (pid_t)syscall(SYS_getpid);
	atomic_fetch_add(&preload_epoch, 1);
	__atomic_store_n(&fork_canary[CANARY_OWNER], 1, __ATOMIC_RELEASE);
	return true;
}

bool preload_adopt(void)
{
	/* Not following: preload_still_recording alone decides. */
	if (!preload_following() || is_owner())
		return true;
	if (!fork_canary ||
	    atomic_load_explicit(&preload_state, memory_order_relaxed) != PRELOAD_RECORDING)
		return false;
	return adopt();
}

/* Whether a sampled event may still be written: checked on the sampled
 * path only. */
bool preload_still_recording(uint64_t now_ns)
{
	uint64_t alive;

	if (atomic_load_explicit(&preload_state, memory_order_relaxed) != PRELOAD_RECORDING)
		return false;
	if (!is_owner())        /* following: preload_adopt may still give it a ring */
		return preload_following() ? false : stop(false);
	alive = __atomic_load_n(&preload_ring->reader_alive_ns, __ATOMIC_RELAXED);
	if (__atomic_load_n(&preload_ring->stopped, __ATOMIC_RELAXED) ||
	    (now_ns > alive && now_ns - alive > HEAPRING_ALIVE_NS))
		return stop(true);
	return true;
}
