/* many_threads.c - pprofc benchmark target: many threads, varied stack depth.
 *
 * Usage: many_threads [N [DEPTH]]   (N threads, default 500)
 * Thread i is named "park-<i>", recurses through descend() to depth
 * (i % DEPTH) + 1, then parks forever (DEPTH: argv[2], default 40):
 *   i % 3 == 0  park_condvar(): pthread_cond_wait on a never-signalled condvar
 *   i % 3 == 1  park_pipe():    read() on a pipe that is never written
 *   i % 3 == 2  park_sleep():   nanosleep loop (1 hour per call)
 * Once all threads are parked main prints "ready\n" and pauses forever.
 *
 * Build: gcc -std=c11 -O2 -g -pthread many_threads.c -o many_threads
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* Empty asm after a call stops -O2 from turning it into a tail call (and the
 * recursion into a loop), so every level keeps its own frame. */
#define NO_TAIL_CALL() __asm__ volatile("" ::: "memory")

static pthread_barrier_t parked; /* N threads + main */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t never = PTHREAD_COND_INITIALIZER;
static int pipe_fd[2];
static int max_depth = 40;
/* Never cleared; being volatile, it stops gcc from proving the park loops
 * never return (which would make it treat them as noreturn). */
static volatile int forever = 1;

__attribute__((noinline)) static void park_condvar(void) {
  pthread_barrier_wait(&parked);
  pthread_mutex_lock(&mu);
  while (forever) /* loop guards against spurious wakeups */
    pthread_cond_wait(&never, &mu);
  pthread_mutex_unlock(&mu);
}

__attribute__((noinline)) static void park_pipe(void) {
  char c;
  pthread_barrier_wait(&parked);
  /* Write end stays open in main, so read() never sees EOF. */
  while (forever) {
    ssize_t r = read(pipe_fd[0], &c, 1);
    NO_TAIL_CALL();
    (void)r;
  }
}

__attribute__((noinline)) static void park_sleep(void) {
  struct timespec ts = {3600, 0};
  pthread_barrier_wait(&parked);
  while (forever) {
    nanosleep(&ts, NULL);
    NO_TAIL_CALL();
  }
}

__attribute__((noinline)) static void descend(int depth, int idx) {
  /* Small live local array: gives each frame real stack contents. */
  volatile char pad[64];
  pad[0] = (char)depth;
  if (depth > 1)
    descend(depth - 1, idx);
  else if (idx % 3 == 0)
    park_condvar();
  else if (idx % 3 == 1)
    park_pipe();
  else
    park_sleep();
  NO_TAIL_CALL();
  (void)pad[0]; /* use after the call keeps pad alive across it */
}

static void *thread_main(void *arg) {
  int idx = (int)(long)arg;
  char name[16];
  snprintf(name, sizeof name, "park-%d", idx);
  pthread_setname_np(pthread_self(), name);
  descend(idx % max_depth + 1, idx);
  NO_TAIL_CALL();
  return NULL;
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 500;
  max_depth = argc > 2 ? atoi(argv[2]) : 40;
  if (max_depth < 1)
    max_depth = 1;
  if (n < 1 || pipe(pipe_fd) != 0) return 1;
  pthread_barrier_init(&parked, NULL, (unsigned)n + 1);

  /* 256 KiB stacks so a few thousand threads fit comfortably. */
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  for (int i = 0; i < n; i++) {
    pthread_t t;
    if (pthread_create(&t, &attr, thread_main, (void *)(long)i) != 0) {
      fprintf(stderr, "many_threads: pthread_create failed at %d\n", i);
      return 1;
    }
  }
  pthread_barrier_wait(&parked);
  printf("ready\n");
  fflush(stdout);
  for (;;) pause();
}
