/* test_wait_deadlock.c — tests attach_find_deadlocks() (attach/wait.h):
 * cycles in the waits-for graph, each reported once, starting at its
 * smallest tid and following the waits-for edges; no cycle, a 2-cycle, a
 * 3-cycle with a chain leading into it, two separate cycles, a self-wait,
 * waits for unknown tids, and the max_cycles limit.
 */
#include "attach/wait.h"
#include "check.h"

#define MAXN 16

struct result {
	size_t count;
	pid_t cycles[MAXN];
	size_t lens[MAXN];
};

static struct result find(const pid_t *tids, const pid_t *waits_for, size_t n, size_t max_cycles)
{
	struct result r;
	for (size_t i = 0; i < MAXN; i++) {
		r.cycles[i] = -7;
		r.lens[i] = 777;
	}
	r.count = attach_find_deadlocks(tids, waits_for, n, r.cycles, r.lens, max_cycles);
	return r;
}

/* Checks cycle k of r (cycles are packed one after the other). */
static void check_cycle(const struct result *r, size_t k, const pid_t *want, size_t len)
{
	CHECK_MSG(k < r->count, "no cycle %zu (found %zu)", k, r->count);
	if (k >= r->count)
		return;
	size_t at = 0;
	for (size_t i = 0; i < k; i++)
		at += r->lens[i];
	CHECK_INT_EQ(r->lens[k], len);
	if (r->lens[k] != len || at + len > MAXN)
		return;
	for (size_t i = 0; i < len; i++)
		CHECK_MSG(r->cycles[at + i] == want[i], "cycle %zu, position %zu: tid %d, expected %d",
			  k, i, (int)r->cycles[at + i], (int)want[i]);
}

static void test_no_cycle(void)
{
	static const pid_t tids[] = { 100, 101, 102, 103 };
	static const pid_t wf[] = { 101, 102, 0, 102 };      /* a chain ending in 102 */
	struct result r = find(tids, wf, 4, MAXN);
	CHECK_INT_EQ(r.count, 0);

	static const pid_t none[] = { 0, 0, 0, 0 };
	r = find(tids, none, 4, MAXN);
	CHECK_INT_EQ(r.count, 0);

	r = find(tids, wf, 0, MAXN);
	CHECK_INT_EQ(r.count, 0);
}

static void test_two_cycle(void)
{
	static const pid_t tids[] = { 5921, 5922, 5923 };
	static const pid_t wf[] = { 5922, 5921, 0 };
	struct result r = find(tids, wf, 3, MAXN);
	CHECK_INT_EQ(r.count, 1);
	static const pid_t want[] = { 5921, 5922 };
	check_cycle(&r, 0, want, 2);
}

static void test_two_cycle_smallest_not_first(void)
{
	/* The larger tid comes first in the array; the cycle still starts at
	 * the smallest. */
	static const pid_t tids[] = { 9000, 20, 8000 };
	static const pid_t wf[] = { 20, 9000, 0 };
	struct result r = find(tids, wf, 3, MAXN);
	CHECK_INT_EQ(r.count, 1);
	static const pid_t want[] = { 20, 9000 };
	check_cycle(&r, 0, want, 2);
}

static void test_three_cycle_with_chain(void)
{
	/* 4 -> 7 -> 5 -> 9 -> 3 -> 5: the cycle is 3 -> 5 -> 9, reached from
	 * a chain (4, 7) that is not part of it; 11 waits for nobody. */
	static const pid_t tids[] = { 7, 5, 9, 3, 4, 11 };
	static const pid_t wf[] = { 5, 9, 3, 5, 7, 0 };
	struct result r = find(tids, wf, 6, MAXN);
	CHECK_INT_EQ(r.count, 1);
	static const pid_t want[] = { 3, 5, 9 };
	check_cycle(&r, 0, want, 3);

	/* The same graph listed in another order gives the same cycle. */
	static const pid_t tids2[] = { 4, 11, 9, 3, 7, 5 };
	static const pid_t wf2[] = { 7, 0, 3, 5, 5, 9 };
	r = find(tids2, wf2, 6, MAXN);
	CHECK_INT_EQ(r.count, 1);
	check_cycle(&r, 0, want, 3);
}

static void test_cycle_direction(void)
{
	/* 30 -> 10 -> 20 -> 30: from 10 the edges go to 20, then 30. */
	static const pid_t tids[] = { 30, 20, 10 };
	static const pid_t wf[] = { 10, 30, 20 };
	struct result r = find(tids, wf, 3, MAXN);
	CHECK_INT_EQ(r.count, 1);
	static const pid_t want[] = { 10, 20, 30 };
	check_cycle(&r, 0, want, 3);
}

static void test_two_separate_cycles(void)
{
	static const pid_t tids[] = { 1, 2, 3, 4, 5, 6 };
	static const pid_t wf[] = { 2, 1, 4, 6, 0, 3 };   /* 1<->2 and 3->4->6->3 */
	struct result r = find(tids, wf, 6, MAXN);
	CHECK_INT_EQ(r.count, 2);
	if (r.count != 2)
		return;
	/* Either order is acceptable; each must be right. */
	static const pid_t a[] = { 1, 2 }, b[] = { 3, 4, 6 };
	if (r.lens[0] == 2) {
		check_cycle(&r, 0, a, 2);
		check_cycle(&r, 1, b, 3);
	} else {
		check_cycle(&r, 0, b, 3);
		check_cycle(&r, 1, a, 2);
	}
}

static void test_self_wait(void)
{
	/* A thread relocking a non-recursive mutex it holds waits for itself. */
	static const pid_t tids[] = { 41, 42, 43 };
	static const pid_t wf[] = { 0, 42, 42 };
	struct result r = find(tids, wf, 3, MAXN);
	CHECK_INT_EQ(r.count, 1);
	static const pid_t want[] = { 42 };
	check_cycle(&r, 0, want, 1);
}

static void test_wait_for_unknown_tid(void)
{
	static const pid_t tids[] = { 1, 2 };
	static const pid_t wf[] = { 99, 1 };
	struct result r = find(tids, wf, 2, MAXN);
	CHECK_INT_EQ(r.count, 0);
}

static void test_max_cycles(void)
{
	static const pid_t tids[] = { 1, 2, 3, 4 };
	static const pid_t wf[] = { 2, 1, 4, 3 };
	struct result r = find(tids, wf, 4, 1);
	CHECK_INT_EQ(r.count, 1);
	CHECK_INT_EQ(r.lens[0], 2);
	CHECK_INT_EQ(r.lens[1], 777);            /* nothing written past the limit */
	CHECK_INT_EQ(r.cycles[2], -7);
	r = find(tids, wf, 4, 0);
	CHECK_INT_EQ(r.count, 0);
	CHECK_INT_EQ(r.cycles[0], -7);
}

static void test_all_threads_in_one_big_cycle(void)
{
	pid_t tids[MAXN], wf[MAXN], want[MAXN];
	for (size_t i = 0; i < MAXN; i++) {
		tids[i] = (pid_t)(1000 + (i * 7) % MAXN);   /* a permutation of 1000..1015 */
	}
	/* tid t waits for t+1, 1015 waits for 1000 */
	for (size_t i = 0; i < MAXN; i++)
		wf[i] = tids[i] == 1000 + MAXN - 1 ? 1000 : tids[i] + 1;
	for (size_t i = 0; i < MAXN; i++)
		want[i] = (pid_t)(1000 + i);
	struct result r = find(tids, wf, MAXN, MAXN);
	CHECK_INT_EQ(r.count, 1);
	check_cycle(&r, 0, want, MAXN);
}

int main(void)
{
	RUN(test_no_cycle);
	RUN(test_two_cycle);
	RUN(test_two_cycle_smallest_not_first);
	RUN(test_three_cycle_with_chain);
	RUN(test_cycle_direction);
	RUN(test_two_separate_cycles);
	RUN(test_self_wait);
	RUN(test_wait_for_unknown_tid);
	RUN(test_max_cycles);
	RUN(test_all_threads_in_one_big_cycle);
	return check_summary("test_wait_deadlock");
}
