/* test_proc_net.c — tests attach_net_find_inet(), attach_net_find_unix()
 * and attach_tcp_state_name() (attach/proc.h) on excerpts of
 * /proc/net/{tcp,tcp6,unix} in the kernel's exact format (captured on this
 * machine, inodes changed): a 127.0.0.1:8080 listener, an established
 * connection, IPv4-mapped and real IPv6 addresses, unix sockets with a path
 * holding spaces, abstract and unnamed ones.
 */
#include <arpa/inet.h>

#include "attach/proc.h"
#include "check.h"

static const char tcp_text[] =
	"  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode                                                     \n"
	"   0: 0100007F:B43B 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 22042 1 000000004fa400ba 100 0 0 10 0                     \n"
	"   1: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4242 1 00000000205e3569 100 0 0 10 0                      \n"
	"   2: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000  1000        0 4243 1 0000000012345678 20 4 30 10 -1                     \n"
	"   3: 0F02000A:0016 6401A8C0:D431 06 00000000:00000000 03:00000A1B 00000000     0        0 0 3 0000000000000000                                      \n"
	"   4: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 42420 1 00000000205e3569 100 0 0 10 0                     \n";

/* Looks inode up in the first len bytes of s (guarded copy). */
static int find_inet(const char *s, size_t len, uint64_t inode, int v6,
		     char *local, char *remote, int *state)
{
	struct guarded g;
	const char *p = guard_copy(&g, s, len);
	strcpy(local, "untouched");
	strcpy(remote, "untouched");
	*state = -99;
	int rc = attach_net_find_inet(p, len, inode, v6, local, 80, remote, 80, state);
	guard_free(&g);
	return rc;
}

static void test_tcp_listener(void)
{
	char l[80], r[80];
	int st;
	CHECK_INT_EQ(find_inet(tcp_text, strlen(tcp_text), 4242, 0, l, r, &st), 0);
	CHECK_STR_EQ(l, "127.0.0.1:8080");
	CHECK_STR_EQ(r, "0.0.0.0:0");
	CHECK_INT_EQ(st, 0x0A);
	CHECK_STR_EQ(attach_tcp_state_name(st), "listen");
}

static void test_tcp_established_and_others(void)
{
	char l[80], r[80];
	int st;
	CHECK_INT_EQ(find_inet(tcp_text, strlen(tcp_text), 4243, 0, l, r, &st), 0);
	CHECK_STR_EQ(l, "127.0.0.1:8080");
	CHECK_STR_EQ(r, "127.0.0.1:50000");
	CHECK_INT_EQ(st, 1);
	CHECK_STR_EQ(attach_tcp_state_name(st), "established");

	CHECK_INT_EQ(find_inet(tcp_text, strlen(tcp_text), 22042, 0, l, r, &st), 0);
	CHECK_STR_EQ(l, "127.0.0.1:46139");

	CHECK_INT_EQ(find_inet(tcp_text, strlen(tcp_text), 42420, 0, l, r, &st), 0);
	CHECK_STR_EQ(l, "0.0.0.0:2024");
}

static void test_tcp_inode_must_match_exactly(void)
{
	char l[80], r[80];
	int st;
	/* 424 is a prefix of 4242 and 42420; 1000 is in the uid column and
	 * 100 in a column after the inode: only the inode column counts. */
	CHECK_INT_EQ(find_inet(tcp_text, strlen(tcp_text), 424, 0, l, r, &st), -1);
	CHECK_INT_EQ(find_inet(tcp_text, strlen(tcp_text), 1000, 0, l, r, &st), -1);
	CHECK_INT_EQ(find_inet(tcp_text, strlen(tcp_text), 100, 0, l, r, &st), -1);
	CHECK_INT_EQ(find_inet(tcp_text, strlen(tcp_text), 99999, 0, l, r, &st), -1);
}

static void test_tcp_header_only_and_empty(void)
{
	char l[80], r[80];
	int st;
	const char *nl = strchr(tcp_text, '\n');
	CHECK_INT_EQ(find_inet(tcp_text, (size_t)(nl - tcp_text) + 1, 4242, 0, l, r, &st), -1);
	CHECK_INT_EQ(find_inet("", 0, 4242, 0, l, r, &st), -1);
}

static void test_tcp_not_nul_terminated(void)
{
	/* The table is cut right after the wanted line's inode: the last
	 * line has no newline and no bytes after len are read. */
	static const char s[] =
		"  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
		"   1: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4242";
	char l[80], r[80];
	int st;
	CHECK_INT_EQ(find_inet(s, strlen(s), 4242, 0, l, r, &st), 0);
	CHECK_STR_EQ(l, "127.0.0.1:8080");
	CHECK_INT_EQ(st, 10);
	/* One byte shorter: the inode reads 424. */
	CHECK_INT_EQ(find_inet(s, strlen(s) - 1, 4242, 0, l, r, &st), -1);
	CHECK_INT_EQ(find_inet(s, strlen(s) - 1, 424, 0, l, r, &st), 0);
}

/* Captured from this machine: a listener on ::1 and one on ::ffff:127.0.0.1,
 * plus a hand-made 2001:db8::1 -> fe80::1:2 connection. */
static const char tcp6_text[] =
	"  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
	"   0: 00000000000000000000000001000000:CB87 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 29311 1 0000000067c30b77 100 0 0 10 0\n"
	"   1: 0000000000000000FFFF00000100007F:99E1 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 29312 1 00000000bfeab6e7 100 0 0 10 0\n"
	"   2: B80D0120000000000000000001000000:1F90 000080FE000000000000000002000100:E2D4 01 00000000:00000000 00:00000000 00000000  1000        0 29313 1 00000000bfeab6e8 20 4 30 10 -1\n";

/* Splits "[addr]:port", checks the address with inet_pton. */
static void check_v6(const char *got, const char *want_addr, unsigned want_port)
{
	char addr[80];
	unsigned port = 0;
	const char *close = strrchr(got, ']');
	CHECK_MSG(got[0] == '[' && close && close[1] == ':', "not [addr]:port: \"%s\"", got);
	if (got[0] != '[' || !close || close[1] != ':')
		return;
	size_t n = (size_t)(close - got - 1);
	memcpy(addr, got + 1, n);
	addr[n] = 0;
	sscanf(close + 2, "%u", &port);
	unsigned char a[16], b[16];
	CHECK_MSG(inet_pton(AF_INET6, addr, a) == 1, "not an IPv6 address: \"%s\"", addr);
	CHECK(inet_pton(AF_INET6, want_addr, b) == 1);
	CHECK_MSG(memcmp(a, b, 16) == 0, "\"%s\" is not %s", addr, want_addr);
	CHECK_INT_EQ(port, want_port);
}

static void test_tcp6(void)
{
	char l[80], r[80];
	int st;
	CHECK_INT_EQ(find_inet(tcp6_text, strlen(tcp6_text), 29311, 1, l, r, &st), 0);
	check_v6(l, "::1", 52103);
	check_v6(r, "::", 0);
	CHECK_INT_EQ(st, 10);

	/* IPv4-mapped addresses print as plain IPv4. */
	CHECK_INT_EQ(find_inet(tcp6_text, strlen(tcp6_text), 29312, 1, l, r, &st), 0);
	CHECK_STR_EQ(l, "127.0.0.1:39393");

	CHECK_INT_EQ(find_inet(tcp6_text, strlen(tcp6_text), 29313, 1, l, r, &st), 0);
	check_v6(l, "2001:db8::1", 8080);
	check_v6(r, "fe80::1:2", 58068);
	CHECK_INT_EQ(st, 1);

	CHECK_INT_EQ(find_inet(tcp6_text, strlen(tcp6_text), 2931, 1, l, r, &st), -1);
}

static void test_tcp_state_names(void)
{
	static const char *const want[] = {
		[1] = "established", [2] = "syn-sent", [3] = "syn-recv", [4] = "fin-wait1",
		[5] = "fin-wait2", [6] = "time-wait", [7] = "close", [8] = "close-wait",
		[9] = "last-ack", [10] = "listen", [11] = "closing",
	};
	for (int s = 1; s <= 11; s++)
		CHECK_STR_EQ(attach_tcp_state_name(s), want[s]);
	CHECK_STR_EQ(attach_tcp_state_name(0), "?");
	CHECK_STR_EQ(attach_tcp_state_name(12), "?");
	CHECK_STR_EQ(attach_tcp_state_name(-1), "?");
	CHECK_STR_EQ(attach_tcp_state_name(1 << 30), "?");
}

/* ---- unix --------------------------------------------------------------- */

static const char unix_text[] =
	"Num       RefCount Protocol Flags    Type St Inode Path\n"
	"0000000063da53b3: 00000003 00000000 00000000 0001 03  1664\n"
	"000000009375f579: 00000002 00000000 00010000 0001 01 29314 /tmp/x y.sock\n"
	"00000000bcbeda35: 00000003 00000000 00000000 0001 03  1663 /run/systemd/journal/stdout\n"
	"00000000b868af58: 00000002 00000000 00010000 0001 01 29315 @abstract name\n";

static int find_unix(const char *s, size_t len, uint64_t inode, char *path, size_t path_len)
{
	struct guarded g;
	const char *p = guard_copy(&g, s, len);
	strcpy(path, "untouched");
	int rc = attach_net_find_unix(p, len, inode, path, path_len);
	guard_free(&g);
	return rc;
}

static void test_unix(void)
{
	char path[256];
	CHECK_INT_EQ(find_unix(unix_text, strlen(unix_text), 29314, path, sizeof path), 0);
	CHECK_STR_EQ(path, "/tmp/x y.sock");
	CHECK_INT_EQ(find_unix(unix_text, strlen(unix_text), 1663, path, sizeof path), 0);
	CHECK_STR_EQ(path, "/run/systemd/journal/stdout");
	CHECK_INT_EQ(find_unix(unix_text, strlen(unix_text), 29315, path, sizeof path), 0);
	CHECK_STR_EQ(path, "@abstract name");
	/* Unnamed: found, empty path. */
	CHECK_INT_EQ(find_unix(unix_text, strlen(unix_text), 1664, path, sizeof path), 0);
	CHECK_STR_EQ(path, "");
	/* Not there; 2931 is a prefix of 29314. */
	CHECK_INT_EQ(find_unix(unix_text, strlen(unix_text), 2931, path, sizeof path), -1);
	CHECK_INT_EQ(find_unix(unix_text, strlen(unix_text), 3, path, sizeof path), -1);
	CHECK_INT_EQ(find_unix("", 0, 1664, path, sizeof path), -1);
}

static void test_unix_small_buffer_and_unterminated(void)
{
	char path[256];
	CHECK_INT_EQ(find_unix(unix_text, strlen(unix_text), 29314, path, 5), 0);
	CHECK_STR_EQ(path, "/tmp");
	/* The table ends inside the last path. */
	CHECK_INT_EQ(find_unix(unix_text, strlen(unix_text) - 6, 29315, path, sizeof path), 0);
	CHECK_STR_EQ(path, "@abstract");
}

int main(void)
{
	RUN(test_tcp_listener);
	RUN(test_tcp_established_and_others);
	RUN(test_tcp_inode_must_match_exactly);
	RUN(test_tcp_header_only_and_empty);
	RUN(test_tcp_not_nul_terminated);
	RUN(test_tcp6);
	RUN(test_tcp_state_names);
	RUN(test_unix);
	RUN(test_unix_small_buffer_and_unterminated);
	return check_summary("test_proc_net");
}
