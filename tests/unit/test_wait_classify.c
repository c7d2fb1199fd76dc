/* test_wait_classify.c — tests attach_classify(), attach_refine(),
 * attach_reason_text() and attach_syscall_name() (attach/wait.h): state
 * letters, /proc syscall kinds, the x86_64 system calls of docs/FORMATS.md §2's
 * wait-reason table, futex refinement from the innermost function names
 * (only the first 8 frames count) and restart_syscall.
 */
#include "attach/wait.h"
#include "check.h"

/* x86_64 system call numbers, written out on purpose (not <sys/syscall.h>):
 * the test states the ABI instead of trusting the same header as the code. */
enum {
	NR_read = 0, NR_poll = 7, NR_ioctl = 16, NR_pause = 34, NR_nanosleep = 35,
	NR_accept = 43, NR_wait4 = 61, NR_futex = 202, NR_restart_syscall = 219,
	NR_clock_nanosleep = 230, NR_epoll_wait = 232,
};

static struct attach_syscall in_syscall(long nr, uint64_t a0, uint64_t a1, uint64_t a2)
{
	struct attach_syscall sc;
	memset(&sc, 0, sizeof sc);
	sc.kind = ATTACH_SC_IN;
	sc.nr = nr;
	sc.args[0] = a0;
	sc.args[1] = a1;
	sc.args[2] = a2;
	sc.sp = 0x7ffd00001000;
	sc.pc = 0x7f0000012345;
	return sc;
}

static struct attach_wait classify(char state, struct attach_syscall sc)
{
	struct attach_wait w;
	memset(&w, 0x5a, sizeof w);     /* every field must be written */
	attach_classify(state, &sc, &w);
	return w;
}

static void text_of(const struct attach_wait *w, char *buf, size_t len)
{
	attach_reason_text(w, buf, len);
}

#define CHECK_TEXT(w, expected)                                  \
	do {                                                     \
		char t_[64];                                     \
		text_of(&(w), t_, sizeof t_);                    \
		CHECK_STR_EQ(t_, expected);                      \
	} while (0)

static void test_state_letters(void)
{
	struct attach_syscall running = { .kind = ATTACH_SC_RUNNING };
	struct attach_syscall read5 = in_syscall(NR_read, 5, 0x1000, 10);
	struct attach_wait w;

	w = classify('R', running);
	CHECK_INT_EQ(w.reason, ATTACH_R_RUNNING);
	CHECK_TEXT(w, "running");
	/* The state letter wins over a stale syscall line. */
	w = classify('R', read5);
	CHECK_INT_EQ(w.reason, ATTACH_R_RUNNING);

	w = classify('D', read5);
	CHECK_INT_EQ(w.reason, ATTACH_R_DISK);
	CHECK_TEXT(w, "disk wait");
	w = classify('T', read5);
	CHECK_INT_EQ(w.reason, ATTACH_R_STOPPED);
	CHECK_TEXT(w, "stopped");
	w = classify('t', read5);
	CHECK_INT_EQ(w.reason, ATTACH_R_TRACED);
	CHECK_TEXT(w, "traced");
	struct attach_syscall unknown = { .kind = ATTACH_SC_UNKNOWN };
	w = classify('Z', unknown);
	CHECK_INT_EQ(w.reason, ATTACH_R_ZOMBIE);
	CHECK_TEXT(w, "zombie");
}

static void test_syscall_kinds(void)
{
	struct attach_wait w;
	/* Sleeping but not in a system call (-1 sp pc): no syscall name. */
	struct attach_syscall none = { .kind = ATTACH_SC_NONE, .nr = -1 };
	w = classify('S', none);
	CHECK(w.reason != ATTACH_R_RUNNING && w.reason != ATTACH_R_SYSCALL);
	CHECK_STR_EQ(w.syscall, "");
	CHECK_INT_EQ(w.fd, -1);
	CHECK_U64_EQ(w.futex, 0);
}

static void test_io_waits(void)
{
	struct attach_wait w = classify('S', in_syscall(NR_read, 5, 0x7f0000001000, 4096));
	CHECK_INT_EQ(w.reason, ATTACH_R_IO);
	CHECK_STR_EQ(w.syscall, "read");
	CHECK_INT_EQ(w.fd, 5);
	CHECK_U64_EQ(w.futex, 0);
	CHECK_TEXT(w, "IO wait");

	w = classify('S', in_syscall(NR_accept, 3, 0, 0));
	CHECK_INT_EQ(w.reason, ATTACH_R_IO);
	CHECK_STR_EQ(w.syscall, "accept");
	CHECK_INT_EQ(w.fd, 3);

	w = classify('S', in_syscall(NR_epoll_wait, 7, 0x7ffd00002000, 64));
	CHECK_INT_EQ(w.reason, ATTACH_R_IO);
	CHECK_STR_EQ(w.syscall, "epoll_wait");
	CHECK_INT_EQ(w.fd, 7);

	/* poll on two descriptors: IO wait, the pollfd array recorded. */
	w = classify('S', in_syscall(NR_poll, 0x7ffd00003000, 2, 1000));
	CHECK_INT_EQ(w.reason, ATTACH_R_IO);
	CHECK_STR_EQ(w.syscall, "poll");
	CHECK_U64_EQ(w.poll_fds, 0x7ffd00003000);
	CHECK_INT_EQ(w.poll_nfds, 2);
}

static void test_futex_waits(void)
{
	/* FUTEX_WAIT_PRIVATE = 128 */
	struct attach_wait w = classify('S', in_syscall(NR_futex, 0x55d87942a2c0, 128, 2));
	CHECK_INT_EQ(w.reason, ATTACH_R_FUTEX);
	CHECK_STR_EQ(w.syscall, "futex");
	CHECK_U64_EQ(w.futex, 0x55d87942a2c0);
	CHECK_INT_EQ(w.fd, -1);
	CHECK_TEXT(w, "futex wait");

	/* FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG = 137 (glibc's condvars) */
	w = classify('S', in_syscall(NR_futex, 0x7f636a7fe910, 137, 0));
	CHECK_INT_EQ(w.reason, ATTACH_R_FUTEX);
	CHECK_U64_EQ(w.futex, 0x7f636a7fe910);

	/* Shared (no private flag) FUTEX_WAIT = 0 */
	w = classify('S', in_syscall(NR_futex, 0x7f0000000040, 0, 1));
	CHECK_INT_EQ(w.reason, ATTACH_R_FUTEX);
	CHECK_U64_EQ(w.futex, 0x7f0000000040);

	/* FUTEX_WAKE_PRIVATE = 129 is not a wait. */
	w = classify('S', in_syscall(NR_futex, 0x7f0000000040, 129, 1));
	CHECK(w.reason != ATTACH_R_FUTEX && w.reason != ATTACH_R_MUTEX && w.reason != ATTACH_R_COND);
	CHECK_TEXT(w, "syscall futex");
}

static void test_sleep_signal_child(void)
{
	struct attach_wait w = classify('S', in_syscall(NR_nanosleep, 0x7ffd00004000, 0, 0));
	CHECK_INT_EQ(w.reason, ATTACH_R_SLEEP);
	CHECK_STR_EQ(w.syscall, "nanosleep");
	CHECK_TEXT(w, "sleep");

	w = classify('S', in_syscall(NR_clock_nanosleep, 0, 0, 0x7ffd00004000));
	CHECK_INT_EQ(w.reason, ATTACH_R_SLEEP);
	CHECK_STR_EQ(w.syscall, "clock_nanosleep");

	/* poll with nfds 0 is how some programs sleep. */
	w = classify('S', in_syscall(NR_poll, 0, 0, 5000));
	CHECK_INT_EQ(w.reason, ATTACH_R_SLEEP);

	w = classify('S', in_syscall(NR_pause, 0, 0, 0));
	CHECK_INT_EQ(w.reason, ATTACH_R_SIGNAL);
	CHECK_STR_EQ(w.syscall, "pause");
	CHECK_TEXT(w, "signal wait");

	w = classify('S', in_syscall(NR_wait4, (uint64_t)-1, 0x7ffd00005000, 0));
	CHECK_INT_EQ(w.reason, ATTACH_R_CHILD);
	CHECK_STR_EQ(w.syscall, "wait4");
	CHECK_TEXT(w, "child wait");
	CHECK_INT_EQ(w.fd, -1);
}

static void test_other_syscall(void)
{
	struct attach_wait w = classify('S', in_syscall(NR_ioctl, 3, 0x5401, 0x7ffd00006000));
	CHECK_INT_EQ(w.reason, ATTACH_R_SYSCALL);
	CHECK_STR_EQ(w.syscall, "ioctl");
	CHECK_TEXT(w, "syscall ioctl");
	CHECK_INT_EQ(w.fd, -1);
	CHECK_U64_EQ(w.futex, 0);
}

/* ---- refine ------------------------------------------------------------- */

static struct attach_wait futex_wait(void)
{
	return classify('S', in_syscall(NR_futex, 0x55d87942a2c0, 128, 2));
}

static struct attach_wait refined(struct attach_wait w, const char *const *funcs, size_t n)
{
	attach_refine(&w, funcs, n);
	return w;
}

static void test_refine_mutex(void)
{
	static const char *const lll[] = { "__lll_lock_wait", "___pthread_mutex_lock", "worker_loop",
					   "start_thread", "clone3" };
	struct attach_wait w = refined(futex_wait(), lll, 5);
	CHECK_INT_EQ(w.reason, ATTACH_R_MUTEX);
	CHECK_U64_EQ(w.futex, 0x55d87942a2c0);   /* the address is kept */
	CHECK_TEXT(w, "mutex wait");

	/* Only ___pthread_mutex_lock (e.g. a PI mutex, no __lll_lock_wait). */
	static const char *const pml[] = { "futex_lock_pi64", "___pthread_mutex_lock", "main" };
	w = refined(futex_wait(), pml, 3);
	CHECK_INT_EQ(w.reason, ATTACH_R_MUTEX);

	/* Unknown (NULL) innermost frames do not hide the mutex function. */
	static const char *const unknown[] = { NULL, NULL, "__lll_lock_wait", "main" };
	w = refined(futex_wait(), unknown, 4);
	CHECK_INT_EQ(w.reason, ATTACH_R_MUTEX);
}

static void test_refine_cond(void)
{
	static const char *const cond[] = { "__futex_abstimed_wait_common64",
					    "__futex_abstimed_wait_common",
					    "__GI___futex_abstimed_wait_cancelable64",
					    "___pthread_cond_wait", "consumer", "start_thread" };
	struct attach_wait w = refined(futex_wait(), cond, 6);
	CHECK_INT_EQ(w.reason, ATTACH_R_COND);
	CHECK_TEXT(w, "cond wait");
	/* The futex is __g_signals[0] or [1] of glibc's pthread_cond_t, at
	 * 0x28 or 0x2c: the wait names the pthread_cond_t, as gdb does. */
	CHECK_U64_EQ(w.futex, 0x55d87942a2c0 - 0x28);
	w = refined(classify('S', in_syscall(NR_futex, 0x55d87942a2c4, 128, 2)), cond, 6);
	CHECK_U64_EQ(w.futex, 0x55d87942a2c4 - 0x2c);

	static const char *const plain[] = { "pthread_cond_wait" };
	w = refined(futex_wait(), plain, 1);
	CHECK_INT_EQ(w.reason, ATTACH_R_COND);

	/* Woken, and now blocked re-acquiring the mutex inside
	 * pthread_cond_wait: that is a wait for the mutex. */
	static const char *const relock[] = { "__lll_lock_wait", "__pthread_mutex_cond_lock",
					      "___pthread_cond_wait", "consumer" };
	w = refined(futex_wait(), relock, 4);
	CHECK_INT_EQ(w.reason, ATTACH_R_MUTEX);
}

static void test_refine_other_futex(void)
{
	static const char *const sem[] = { "__futex_abstimed_wait_common64", "do_futex_wait",
					   "__new_sem_wait_slow64", "sem_worker", "start_thread" };
	struct attach_wait w = refined(futex_wait(), sem, 5);
	CHECK_INT_EQ(w.reason, ATTACH_R_FUTEX);
	CHECK_TEXT(w, "futex wait");

	w = refined(futex_wait(), NULL, 0);
	CHECK_INT_EQ(w.reason, ATTACH_R_FUTEX);
}

static void test_refine_only_innermost_8_frames(void)
{
	const char *funcs[12];
	static const char *const filler = "my_custom_lock_spin";
	for (size_t i = 0; i < 12; i++)
		funcs[i] = filler;

	/* The 9th frame (index 8) is too far up: still a plain futex wait. */
	funcs[8] = "___pthread_mutex_lock";
	struct attach_wait w = refined(futex_wait(), funcs, 12);
	CHECK_INT_EQ(w.reason, ATTACH_R_FUTEX);
	funcs[8] = "pthread_cond_wait";
	w = refined(futex_wait(), funcs, 12);
	CHECK_INT_EQ(w.reason, ATTACH_R_FUTEX);

	/* The 8th frame (index 7) still counts. */
	funcs[8] = filler;
	funcs[7] = "__lll_lock_wait";
	w = refined(futex_wait(), funcs, 12);
	CHECK_INT_EQ(w.reason, ATTACH_R_MUTEX);
}

static void test_refine_leaves_other_reasons(void)
{
	static const char *const lll[] = { "__lll_lock_wait", "___pthread_mutex_lock", "main" };
	struct attach_wait w = refined(classify('S', in_syscall(NR_read, 5, 0, 1)), lll, 3);
	CHECK_INT_EQ(w.reason, ATTACH_R_IO);
	w = refined(classify('D', in_syscall(NR_futex, 0x1000, 128, 0)), lll, 3);
	CHECK_INT_EQ(w.reason, ATTACH_R_DISK);
	w = refined(classify('S', in_syscall(NR_nanosleep, 0, 0, 0)), lll, 3);
	CHECK_INT_EQ(w.reason, ATTACH_R_SLEEP);
}

static void test_refine_restart_syscall(void)
{
	struct attach_wait w = classify('S', in_syscall(NR_restart_syscall, 0, 0, 0));
	CHECK_STR_EQ(w.syscall, "restart_syscall");
	static const char *const sleep_funcs[] = { "__GI___clock_nanosleep", "__GI___nanosleep",
						   "sleep", "main" };
	struct attach_wait r = refined(w, sleep_funcs, 4);
	CHECK_INT_EQ(r.reason, ATTACH_R_SLEEP);
	CHECK_TEXT(r, "sleep");

	static const char *const cn[] = { "clock_nanosleep", "main" };
	r = refined(w, cn, 2);
	CHECK_INT_EQ(r.reason, ATTACH_R_SLEEP);

	/* Nothing recognisable: it stays a plain system call. */
	static const char *const other[] = { "mystery", "main" };
	r = refined(w, other, 2);
	CHECK_INT_EQ(r.reason, ATTACH_R_SYSCALL);
	CHECK_TEXT(r, "syscall restart_syscall");
}

/* ---- reason text, syscall names ----------------------------------------- */

static void test_reason_text_all(void)
{
	static const struct { enum attach_reason r; const char *text; } want[] = {
		{ ATTACH_R_RUNNING, "running" },   { ATTACH_R_MUTEX, "mutex wait" },
		{ ATTACH_R_COND, "cond wait" },    { ATTACH_R_FUTEX, "futex wait" },
		{ ATTACH_R_IO, "IO wait" },        { ATTACH_R_SLEEP, "sleep" },
		{ ATTACH_R_SIGNAL, "signal wait" }, { ATTACH_R_CHILD, "child wait" },
		{ ATTACH_R_DISK, "disk wait" },    { ATTACH_R_STOPPED, "stopped" },
		{ ATTACH_R_TRACED, "traced" },     { ATTACH_R_ZOMBIE, "zombie" },
	};
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
		struct attach_wait w;
		memset(&w, 0, sizeof w);
		w.reason = want[i].r;
		CHECK_TEXT(w, want[i].text);
	}
	struct attach_wait w;
	memset(&w, 0, sizeof w);
	w.reason = ATTACH_R_SYSCALL;
	snprintf(w.syscall, sizeof w.syscall, "ioctl");
	CHECK_TEXT(w, "syscall ioctl");
	/* Unknown: some non-empty text that is not another reason's. */
	w.reason = ATTACH_R_UNKNOWN;
	char t[64];
	attach_reason_text(&w, t, sizeof t);
	CHECK(t[0] != '\0');
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
		CHECK(strcmp(t, want[i].text) != 0);
}

static void test_reason_text_truncates(void)
{
	struct attach_wait w;
	memset(&w, 0, sizeof w);
	w.reason = ATTACH_R_MUTEX;
	char t[8];
	memset(t, 'x', sizeof t);
	attach_reason_text(&w, t, 4);
	CHECK_STR_EQ(t, "mut");
	CHECK_INT_EQ(t[4], 'x');
}

static void test_syscall_names(void)
{
	CHECK_STR_EQ(attach_syscall_name(0), "read");
	CHECK_STR_EQ(attach_syscall_name(7), "poll");
	CHECK_STR_EQ(attach_syscall_name(16), "ioctl");
	CHECK_STR_EQ(attach_syscall_name(43), "accept");
	CHECK_STR_EQ(attach_syscall_name(202), "futex");
	CHECK_STR_EQ(attach_syscall_name(219), "restart_syscall");
	CHECK_STR_EQ(attach_syscall_name(230), "clock_nanosleep");
	CHECK_STR_EQ(attach_syscall_name(232), "epoll_wait");
	CHECK(attach_syscall_name(-1) == NULL);
	CHECK(attach_syscall_name(100000) == NULL);
	CHECK(attach_syscall_name(-100000) == NULL);
	/* 335..423 are unassigned on x86_64. */
	CHECK(attach_syscall_name(335) == NULL);
	CHECK(attach_syscall_name(400) == NULL);
}

int main(void)
{
	RUN(test_state_letters);
	RUN(test_syscall_kinds);
	RUN(test_io_waits);
	RUN(test_futex_waits);
	RUN(test_sleep_signal_child);
	RUN(test_other_syscall);
	RUN(test_refine_mutex);
	RUN(test_refine_cond);
	RUN(test_refine_other_futex);
	RUN(test_refine_only_innermost_8_frames);
	RUN(test_refine_leaves_other_reasons);
	RUN(test_refine_restart_syscall);
	RUN(test_reason_text_all);
	RUN(test_reason_text_truncates);
	RUN(test_syscall_names);
	return check_summary("test_wait_classify");
}
