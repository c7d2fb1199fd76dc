/* stale_frames.c — a stack full of stale return addresses, for the test
 * that a blocked thread read without stopping it gets no invented frames
 * (test_dump_threads.py, issue seen on chromium).
 *
 * Built with frame pointers.  Thread "stale" calls outer() -> middle() ->
 * inner(), which return; then it calls blocker(), whose uninitialised
 * buffer covers the frames those three left behind: return addresses into
 * outer and middle, their saved frame pointers, chained up to the live
 * frame of the thread's function.  blocker() then waits in poll() for
 * ever.  The frame above poll() is blocker's, and its CFA is rbp + 16:
 * an unwinder that guesses rbp from the first return address it finds on
 * the stack reports "poll, blocker, middle, outer, stale_main, ..." where
 * the thread really is in "poll, blocker, stale_main, ...".
 *
 * Prints "ready" once the thread is in blocker(), then runs until killed.
 */
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile int sink;

__attribute__((noinline)) static void inner(volatile char *p)
{
	p[0] = 1;
	sink += p[0];
}

__attribute__((noinline)) static void middle(void)
{
	volatile char buf[48];
	inner(buf);
	sink += buf[1];
}

__attribute__((noinline)) static void outer(void)
{
	volatile char buf[48];
	middle();
	sink += buf[2];
}

static volatile int ready;

__attribute__((noinline)) static void blocker(void)
{
	/* Never written: it holds whatever outer, middle and inner left. */
	char buf[512];
	__asm__ volatile("" : : "r"(buf) : "memory");
	ready = 1;
	poll(NULL, 0, -1);
	sink += buf[0];
}

static void *stale_main(void *arg)
{
	(void)arg;
	outer();
	blocker();
	return NULL;
}

int main(void)
{
	pthread_t t;
	if (pthread_create(&t, NULL, stale_main, NULL) != 0)
		return 1;
	pthread_setname_np(t, "stale");
	while (!ready)
		usleep(1000);
	printf("ready\n");
	fflush(stdout);
	for (;;)
		pause();
}
