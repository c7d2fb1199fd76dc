// go_cgo.go — built together with go_threads.go into go_cgo: the same
// program, but with cgo, so the runtime starts its threads through C
// (threadentry -> crosscall_amd64 -> runtime.mstart) and one goroutine
// waits in C's sleep().  A no-stop read of such a thread once went past
// crosscall_amd64 on a guessed frame pointer and called the stack complete
// where a stopped read ends there.
package main

// #include <unistd.h>
// static void sleep_in_c(void) { for (;;) sleep(1000); }
import "C"

func init() { go C.sleep_in_c() }
