// go_threads.go — a Go program for the integration tests: pprofc sees a Go
// process as OS threads (the runtime's Ms), whose stacks end at Go's own
// roots (runtime.goexit, runtime.clone, runtime.mcall...), not glibc's.
//
// One goroutine spins in main.spin (locked to its thread, so a thread is
// always running it); the main goroutine then sleeps.  Prints "ready" once
// the spinner runs, then runs until killed.  Built by tests/targets/
// meson.build when the go tool is installed.
package main

import (
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"time"
)

var started int32

//go:noinline
func spin(n int) int {
	s := 0
	for i := 0; i < n; i++ {
		s += i * i % 7
	}
	return s
}

func spinner() {
	runtime.LockOSThread()
	atomic.StoreInt32(&started, 1)
	sink := 0
	for {
		sink += spin(1000000)
	}
}

func main() {
	go spinner()
	for atomic.LoadInt32(&started) == 0 {
		time.Sleep(time.Millisecond)
	}
	fmt.Println("ready")
	os.Stdout.Sync()
	time.Sleep(24 * time.Hour)
}
