// heap_new.cpp - C++ allocations for the heap profile (test_heap.py):
// every block comes through operator new or new[] (libstdc++, then
// malloc), from functions of the program's own, so a profile shows
// whether operator new is trimmed from the top of the stacks.
//
// Keeps 1024 objects of 5000 bytes made by fixture::Pool<Node>::grow()
// and 500 arrays of 3000 bytes made by fixture::make_arrays() live until
// exit, and prints its truth as heap_alloc does, "PATH SIZE ALLOCS FREES",
// then "done".
#include <stdio.h>

#include <new>

namespace fixture {

struct Node {
  char payload[5000];
};

template <typename T>
class Pool {
 public:
  __attribute__((noinline)) void grow(int n) {
    for (int i = 0; i < n; i++) {
      items_[count_] = new T;
      items_[count_]->payload[0] = 1;  // touched: not optimized away
      count_++;
    }
  }
  int count() const { return count_; }

 private:
  T *items_[4096];
  int count_ = 0;
};

__attribute__((noinline)) char **make_arrays(int n) {
  char **v = new char *[n];
  for (int i = 0; i < n; i++) {
    v[i] = new char[3000];
    v[i][0] = 1;
  }
  return v;
}

}  // namespace fixture

static fixture::Pool<fixture::Node> pool;

int main() {
  const int nodes = 1024, arrays = 500;  // 5000, 3000 and 4000 bytes:
  // sizes of their own (stdio's buffer is 4096)
  pool.grow(nodes);
  char **arr = fixture::make_arrays(arrays);
  printf("Pool::grow %zu %d 0\n", sizeof(fixture::Node), pool.count());
  printf("make_arrays 3000 %d 0\n", arrays);
  printf("done\n");
  return arr[0][0] == 1 ? 0 : 1;
}
