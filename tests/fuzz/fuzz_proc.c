/* fuzz_proc.c — libFuzzer target for the /proc parsers of attach/proc.h.
 *
 * The first input byte picks the parser; the rest is the file's text.  The
 * parsers' contract (proc.h: "Every parser takes a buffer and its length")
 * is a buffer that is NOT NUL-terminated, so the text is handed over as a
 * heap copy of exactly its length, with no terminator: AddressSanitizer then
 * reports any read past the length.  The network tables take 10 more bytes
 * before the text: output sizes (1) and the inode looked up (8, little
 * endian).  Beyond "no crash", each call checks what the header promises
 * (NUL-terminated outputs, a found map holds its address) and aborts if not.
 */
#include <stdlib.h>
#include <string.h>

#include "attach/proc.h"
#include "fuzz.h"

enum { F_STAT, F_STATUS, F_SYSCALL, F_SCHED, F_MAPS, F_INET4, F_INET6, F_UNIX, F_COUNT };

/* Output buffer sizes the network lookups are given (never 0: they always
 * write a terminator). */
static const size_t out_sizes[] = { 1, 2, 7, 16, 80, 256 };

static void require(int cond)
{
	if (!cond)
		abort();
}

/* A heap copy of exactly len bytes, no terminator (malloc(0) may be NULL:
 * then a 1-byte block stands in, still with len 0). */
static char *exact_copy(const uint8_t *data, size_t len)
{
	char *p = malloc(len ? len : 1);
	require(p != NULL);
	if (len)
		memcpy(p, data, len);
	return p;
}

static void fuzz_stat(const char *b, size_t n)
{
	struct attach_stat st;
	if (attach_parse_stat(b, n, &st) == 0) {
		require(strnlen(st.comm, sizeof st.comm) < sizeof st.comm);
		require(st.processor >= -1 && st.processor < 65536);
	}
}

static void fuzz_status(const char *b, size_t n)
{
	struct attach_status st;
	(void)attach_parse_status(b, n, &st);
}

static void fuzz_syscall(const char *b, size_t n)
{
	struct attach_syscall sc;
	if (attach_parse_syscall(b, n, &sc) == 0)
		require(sc.kind != ATTACH_SC_UNKNOWN);
}

static void fuzz_sched(const char *b, size_t n)
{
	struct attach_sched sc;
	(void)attach_parse_sched(b, n, &sc);
}

static void find_check(const struct attach_maps *m, uint64_t addr)
{
	const struct attach_map *e = attach_maps_find(m, addr);
	if (e)
		require(addr >= e->start && addr < e->end);
}

static void fuzz_maps(const char *b, size_t n)
{
	struct attach_maps m;
	if (attach_parse_maps(b, n, &m))
		return;
	for (size_t i = 0; i < m.n; i++)
		require(m.v[i].path != NULL && m.v[i].perms[4] == '\0');
	find_check(&m, 0);
	find_check(&m, UINT64_MAX);
	if (m.n) {
		const struct attach_map *mid = &m.v[m.n / 2];
		find_check(&m, m.v[0].start);
		find_check(&m, mid->start + (mid->end - mid->start) / 2);
		find_check(&m, m.v[m.n - 1].end - 1);
	}
	attach_maps_free(&m);
	require(m.v == NULL && m.n == 0);
}

static uint64_t le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static void fuzz_inet(const char *b, size_t n, uint64_t inode, size_t olen, int ipv6)
{
	char *local = malloc(olen), *remote = malloc(olen);
	int state = -1;
	require(local && remote);
	if (attach_net_find_inet(b, n, inode, ipv6, local, olen, remote, olen, &state) == 0) {
		require(strnlen(local, olen) < olen && strnlen(remote, olen) < olen);
		require(attach_tcp_state_name(state) != NULL);
	}
	free(local);
	free(remote);
}

static void fuzz_unix(const char *b, size_t n, uint64_t inode, size_t olen)
{
	char *path = malloc(olen);
	require(path != NULL);
	if (attach_net_find_unix(b, n, inode, path, olen) == 0)
		require(strnlen(path, olen) < olen);
	free(path);
}

/* The network tables: [size selector][inode, 8 bytes LE][table text]. */
static void fuzz_net(int which, const uint8_t *data, size_t size)
{
	if (size < 9)
		return;
	size_t olen = out_sizes[data[0] % (sizeof out_sizes / sizeof out_sizes[0])];
	uint64_t inode = le64(data + 1);
	size_t n = size - 9;
	char *b = exact_copy(data + 9, n);
	if (which == F_UNIX)
		fuzz_unix(b, n, inode, olen);
	else
		fuzz_inet(b, n, inode, olen, which == F_INET6);
	free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	int which = data[0] % F_COUNT;
	data++;
	size--;
	if (which >= F_INET4) {
		fuzz_net(which, data, size);
		return 0;
	}
	char *b = exact_copy(data, size);
	switch (which) {
	case F_STAT: fuzz_stat(b, size); break;
	case F_STATUS: fuzz_status(b, size); break;
	case F_SYSCALL: fuzz_syscall(b, size); break;
	case F_SCHED: fuzz_sched(b, size); break;
	case F_MAPS: fuzz_maps(b, size); break;
	}
	free(b);
	return 0;
}
