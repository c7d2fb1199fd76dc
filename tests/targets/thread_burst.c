/* thread_burst.c — makes N threads (argument, default 400) one after the
 * other as fast as it can from its start, each blocked in read() for
 * good; then prints "ready" and waits for stdin to close.  Under `pprofc
 * run --profile threadcreate --engine ptrace` the watch begins while they
 * are being made (test_threadcreate.py, test_run_burst).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static int parked[2];           /* never written: threads block reading it */

static void *parked_worker(void *arg)
{
	char c;
	(void)arg;
	while (read(parked[0], &c, 1) < 0)
		;
	return NULL;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 400;
	pthread_attr_t attr;
	if (pipe(parked) || pthread_attr_init(&attr) || pthread_attr_setstacksize(&attr, 64 * 1024)) {
		perror("thread_burst");
		return 1;
	}
	for (int i = 0; i < n; i++) {
		pthread_t t;
		if (pthread_create(&t, &attr, parked_worker, NULL) != 0) {
			perror("pthread_create");
			return 1;
		}
	}
	printf("ready\n");
	fflush(stdout);
	while (getchar() != EOF)
		;
	return 0;
}
