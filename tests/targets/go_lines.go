// go_lines.go — a Go program for test_gopclntab.py: Go's line table.
//
// Two goroutines, each locked to its own OS thread so that the thread's
// stack is the goroutine's: main.reader blocks in a read(2) of a pipe
// nobody writes, through readOne, which the compiler inlines (the test
// checks with -gcflags=-m); main.spin burns the CPU in a loop whose body,
// square, is inlined too.  Prints "ready" once both run, then runs until
// killed.  On SIGQUIT with GOTRACEBACK=all Go prints every goroutine with
// file:line to stderr: the oracle.  Built with and without -ldflags=-s -w
// by tests/targets/meson.build.
package main

import (
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

var running int32

func readOne(fd int, b *byte) int {
	n, _, _ := syscall.Syscall(syscall.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(b)), 1)
	return int(n)
}

//go:noinline
func reader(fd int) {
	runtime.LockOSThread()
	atomic.AddInt32(&running, 1)
	var b byte
	for {
		if readOne(fd, &b) <= 0 {
			time.Sleep(time.Second)
		}
	}
}

func square(i int) int {
	return i * i % 7
}

//go:noinline
func spin(n int) int {
	s := 0
	for i := 0; i < n; i++ {
		s += square(i)
	}
	return s
}

func spinner() {
	runtime.LockOSThread()
	atomic.AddInt32(&running, 1)
	sink := 0
	for {
		sink += spin(1000000)
	}
}

func main() {
	var p [2]int
	if err := syscall.Pipe(p[:]); err != nil {
		panic(err)
	}
	go reader(p[0])
	go spinner()
	for atomic.LoadInt32(&running) < 2 {
		time.Sleep(time.Millisecond)
	}
	fmt.Println("ready")
	os.Stdout.Sync()
	time.Sleep(24 * time.Hour)
	_ = p[1]
}
