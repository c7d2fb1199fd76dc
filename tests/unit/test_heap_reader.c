/* test_heap_reader.c — collect/heap.c's reading of the ring, through the
 * public interface, with records written here exactly as
 * preload/heapring.h describes them (not by the sampler: this checks the
 * reader against the header alone).
 *
 * The command is `sleep`, with a harmless library (libm) standing in for
 * the sampler: it keeps the ring's descriptor open, so the test maps the
 * same memfd through /proc/PID/fd and plays the sampler.  Records carry no
 * stack (stack_len 0): they land on the [no stack] marker, which is what
 * lets the counts be checked without unwinding.
 */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>

#include "../../collect/collect.h"
#include "../../preload/heapring.h"
#include "check.h"

struct fake {
	struct heapring_header *hdr;
	unsigned char *data;
	size_t map_size;
};

/* Maps the ring of the command pid (its descriptor number from its
 * environment). */
static int fake_open(pid_t pid, struct fake *f)
{
	char path[64], env[65536];
	snprintf(path, sizeof path, "/proc/%d/environ", (int)pid);
	int fd = open(path, O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, env, sizeof env - 1) : -1;
	if (fd >= 0)
		close(fd);
	long num = -1;
	for (ssize_t i = 0; i < n; i += (ssize_t)strlen(env + i) + 1)
		if (strncmp(env + i, HEAPRING_ENV_FD "=", sizeof HEAPRING_ENV_FD) == 0)
			num = atol(env + i + sizeof HEAPRING_ENV_FD);
	snprintf(path, sizeof path, "/proc/%d/fd/%ld", (int)pid, num);
	if (num < 0 || (fd = open(path, O_RDWR)) < 0)
		return -1;
	struct heapring_header h;
	if (pread(fd, &h, sizeof h, 0) != (ssize_t)sizeof h) {
		close(fd);
		return -1;
	}
	f->map_size = HEAPRING_SIZE(h.data_size);
	f->hdr = mmap(NULL, f->map_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	f->data = (unsigned char *)f->hdr + HEAPRING_HEADER_SIZE;
	return f->hdr == MAP_FAILED ? -1 : 0;
}

/* Reserves size bytes, fills them with the len bytes of rec, then
 * publishes the record's own size word last, as a writer does. */
static void put(struct fake *f, const void *rec, size_t len, uint32_t size)
{
	uint64_t head = f->hdr->head;
	unsigned char *p = f->data + (head & (f->hdr->data_size - 1));
	f->hdr->head = head + size;
	memcpy(p + 4, (const unsigned char *)rec + 4, len - 4);
	__atomic_store_n((uint32_t *)p, ((const struct heapring_rec *)rec)->size, __ATOMIC_RELEASE);
}

static void put_alloc(struct fake *f, uint64_t addr, uint64_t size)
{
	struct heapring_alloc a = { { sizeof a, HEAPRING_ALLOC }, addr, size, 1, 1, 0, { 0 } };
	put(f, &a, sizeof a, sizeof a);
}

static void put_free(struct fake *f, uint64_t addr)
{
	struct heapring_free r = { { sizeof r, HEAPRING_FREE }, addr, 2 };
	put(f, &r, sizeof r, sizeof r);
}

static struct collect_session *spawn(int rate)
{
	static char *argv[] = { "sleep", "60", NULL };
	struct collect_opts o = { .kind = COLLECT_HEAP, .heap_rate = (uint64_t)rate };
	struct collect_error err;
	int status;
	setenv("PPROFC_HEAP_LIB", "/lib/x86_64-linux-gnu/libm.so.6", 1);
	struct collect_session *s = collect_spawn(argv, &o, &err, &status);
	CHECK_MSG(s != NULL, "spawn: %s", err.msg);
	return s;
}

/* The values of the sample whose bytes label is size (one per size here). */
static const int64_t *values_of(struct pp_profile *p, int64_t alloc_bytes)
{
	const uint64_t *locs;
	const int64_t *v;
	for (size_t i = 0; i < pp_profile_count(p, 's'); i++) {
		pp_profile_sample(p, i, &locs, &v);
		if (v[1] == alloc_bytes)
			return v;
	}
	return NULL;
}

static void test_allocs_frees_and_pads(void)
{
	struct collect_session *s = spawn(1);
	struct fake f;
	if (!s)
		return;
	CHECK(fake_open(collect_pid(s), &f) == 0);
	CHECK_U64_EQ(f.hdr->magic, HEAPRING_MAGIC);
	CHECK_U64_EQ(f.hdr->rate, 1);
	CHECK_INT_EQ(f.hdr->owner_pid, collect_pid(s));
	CHECK_INT_EQ(f.hdr->stack_size, 32 * 1024);
	for (int i = 0; i < 3; i++)
		put_alloc(&f, 0x1000 + 16 * (uint64_t)i, 100);
	put_free(&f, 0x1010);
	put_free(&f, 0xdead0);          /* never allocated: unmatched */
	put_alloc(&f, 0x9000, 1000);
	kill(collect_pid(s), SIGTERM);
	collect_run(s);
	const struct collect_summary *sum = collect_summary(s);
	struct pp_profile *p = collect_profile(s);
	CHECK_U64_EQ(sum->heap.samples, 4);
	CHECK_U64_EQ(sum->heap.frees, 1);
	CHECK_U64_EQ(sum->heap.unmatched_frees, 1);
	CHECK_U64_EQ(sum->heap.bad_records, 0);
	CHECK(sum->target_exited);
	const int64_t *v = values_of(p, 300);
	CHECK(v && v[0] == 3 && v[2] == 2 && v[3] == 200);
	v = values_of(p, 1000);
	CHECK(v && v[0] == 1 && v[2] == 1 && v[3] == 1000);
	CHECK_U64_EQ(f.hdr->tail, f.hdr->head);
	CHECK_U64_EQ(*(uint32_t *)f.data, 0);  /* consumed records are zeroed */
	munmap(f.hdr, f.map_size);
	collect_close(s);
}

static void *run_thread(void *s)
{
	collect_run(s);
	return NULL;
}

static void test_pad_and_wrap(void)
{
	struct collect_session *s = spawn(1);
	struct fake f;
	if (!s || fake_open(collect_pid(s), &f))
		return;
	/* Round the ring: a record as long as the data but 64 bytes, a PAD
	 * to its end, and an allocation at its start again. */
	struct heapring_rec big = { (uint32_t)f.hdr->data_size - 64, HEAPRING_PAD };
	struct heapring_rec pad = { 64, HEAPRING_PAD };
	pthread_t reader;
	put(&f, &big, sizeof big, big.size);
	put(&f, &pad, sizeof pad, 64);
	pthread_create(&reader, NULL, run_thread, s);
	/* The space is free again once the reader has moved tail past it. */
	while (__atomic_load_n(&f.hdr->tail, __ATOMIC_ACQUIRE) != f.hdr->data_size)
		usleep(1000);
	CHECK_U64_EQ(*(uint32_t *)f.data, 0);
	put_alloc(&f, 0x5000, 64);
	kill(collect_pid(s), SIGTERM);
	pthread_join(reader, NULL);
	CHECK_U64_EQ(collect_summary(s)->heap.samples, 1);
	CHECK_U64_EQ(f.hdr->tail, f.hdr->data_size + sizeof(struct heapring_alloc));
	munmap(f.hdr, f.map_size);
	collect_close(s);
}

static void test_malformed_record_stops_reading(void)
{
	struct collect_session *s = spawn(1);
	struct fake f;
	if (!s || fake_open(collect_pid(s), &f))
		return;
	struct heapring_rec bad = { 12, HEAPRING_FREE };   /* not a multiple of 8 */
	put(&f, &bad, sizeof bad, 16);
	put_alloc(&f, 0x5000, 64);
	kill(collect_pid(s), SIGTERM);
	collect_run(s);
	CHECK_U64_EQ(collect_summary(s)->heap.bad_records, 1);
	CHECK_U64_EQ(collect_summary(s)->heap.samples, 0);
	CHECK_U64_EQ(f.hdr->stopped, 1);
	munmap(f.hdr, f.map_size);
	collect_close(s);
}

/* Go's scaleHeapSample at rate 512 KiB: one sampled 100-byte block stands
 * for 1/(1-exp(-100/524288)) of them. */
static void test_unsampled_as_go(void)
{
	struct collect_session *s = spawn(524288);
	struct fake f;
	if (!s || fake_open(collect_pid(s), &f))
		return;
	put_alloc(&f, 0x7000, 100);
	kill(collect_pid(s), SIGTERM);
	collect_run(s);
	const int64_t *v = NULL;
	struct pp_profile *p = collect_profile(s);
	const uint64_t *locs;
	if (pp_profile_count(p, 's') == 1)
		pp_profile_sample(p, 0, &locs, &v);
	/* 1/(1-exp(-100/524288)) = 5243.38; bytes 524338.6 */
	CHECK(v && v[0] == 5243 && v[1] == 524338 && v[2] == 5243 && v[3] == 524338);
	munmap(f.hdr, f.map_size);
	collect_close(s);
}

int main(void)
{
	RUN(test_allocs_frees_and_pads);
	RUN(test_pad_and_wrap);
	RUN(test_malformed_record_stops_reading);
	RUN(test_unsampled_as_go);
	return check_summary("test_heap_reader");
}
