// cxx_names.cpp - pprofc test target: C++ symbol demangling.
//
// Threads (names set with pthread_setname_np):
//   "cxx-worker"  blocks in read() inside fixture::Worker<int>::park(),
//                 called from fixture::Worker<int>::run()
//   "cxx-sleeper" loops on nanosleep() inside fixture::detail::sleep_forever(long)
//   "cxx-spinner" burns CPU in fixture::Spinner<unsigned long>::spin (for CPU profiles)
// Once both are parked the main thread prints "ready\n" and pauses forever.
//
// Build: g++ -std=c++17 -O2 -g -pthread cxx_names.cpp -o cxx_names
#include <pthread.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

// Threads + main meet here right before blocking, so "ready" means parked.
static pthread_barrier_t g_parked;

// Empty asm after a call stops -O2 from turning it into a tail call, which
// would drop the caller's frame from the stack.
#define NO_TAIL_CALL() asm volatile("" ::: "memory")

namespace fixture {

namespace detail {
// Non-template free function in a nested namespace (plain demangling case).
__attribute__((noinline)) void sleep_forever(long secs) {
  struct timespec ts = {secs, 0};
  pthread_barrier_wait(&g_parked);
  for (;;) {
    nanosleep(&ts, nullptr);
    NO_TAIL_CALL();
  }
}
}  // namespace detail

// Class template so the symbol carries template args: Worker<int>::park().
template <typename T>
class Worker {
 public:
  explicit Worker(int fd) : fd_(fd) {}

  __attribute__((noinline)) void run() {
    park();
    NO_TAIL_CALL();
  }

  __attribute__((noinline)) void park() {
    T buf[4];
    pthread_barrier_wait(&g_parked);
    // Nobody writes to the pipe and the write end stays open: blocks forever.
    ssize_t n = read(fd_, buf, sizeof buf);
    NO_TAIL_CALL();
    (void)n;
  }

 private:
  int fd_;
};

// Explicit instantiation keeps the out-of-line symbol in the binary.
template class Worker<int>;

// Burns CPU, so a CPU profile shows a demangled template name in -top.
template <typename T>
struct Spinner {
  __attribute__((noinline)) static T spin(T x) {
    for (;;) {
      x = x * 6364136223846793005ULL + 1;
      asm volatile("" : "+r"(x));
    }
  }
};
template struct Spinner<unsigned long>;

}  // namespace fixture

static int g_pipe[2];

static void *worker_main(void *) {
  pthread_setname_np(pthread_self(), "cxx-worker");
  fixture::Worker<int> w(g_pipe[0]);
  w.run();
  NO_TAIL_CALL();
  return nullptr;
}

static void *spinner_main(void *) {
  pthread_setname_np(pthread_self(), "cxx-spinner");
  fixture::Spinner<unsigned long>::spin(1);
  return nullptr;
}

static void *sleeper_main(void *) {
  pthread_setname_np(pthread_self(), "cxx-sleeper");
  fixture::detail::sleep_forever(3600);
  NO_TAIL_CALL();
  return nullptr;
}

int main() {
  if (pipe(g_pipe) != 0) return 1;
  pthread_barrier_init(&g_parked, nullptr, 3);  // 2 threads + main
  pthread_t t1, t2;
  pthread_create(&t1, nullptr, worker_main, nullptr);
  pthread_create(&t2, nullptr, sleeper_main, nullptr);
  pthread_create(&t2, nullptr, spinner_main, nullptr);  // not in the barrier
  pthread_barrier_wait(&g_parked);
  printf("ready\n");
  fflush(stdout);
  for (;;) pause();
}
