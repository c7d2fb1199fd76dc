// go_leak.go — goroutines Go 1.26's garbage collector finds leaked, for
// the goroutine dump's leaked status (tests/integration/
// test_golayout_toolchains.py; built by Go 1.26 with
// GOEXPERIMENT=goroutineleakprofile, which makes the status).
//
// Two goroutines block for good on channels nobody else can reach (a
// receive and a send); runtime/pprof's goroutineleak profile runs the GC
// cycle that moves them to _Gleaked.  Then the program's own
// runtime.Stack(buf, true) is written to the file named by the first
// argument (the oracle: "goroutine N [chan receive (leaked)]:"), "ready"
// is printed, and it sleeps until killed (a sleep, not select{}: with
// every goroutine blocked for good, Go would end it as a deadlock).
package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"
)

func receiver(ch chan int) { <-ch }

func sender(ch chan int) { ch <- 1 }

// leak starts the two; their channels are unreachable once it returns.
func leak() {
	go receiver(make(chan int))
	go sender(make(chan int))
}

func allStack() string {
	buf := make([]byte, 1<<20)
	return string(buf[:runtime.Stack(buf, true)])
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: go_leak ORACLE_FILE")
		os.Exit(2)
	}
	leak()
	p := pprof.Lookup("goroutineleak")
	if p == nil {
		fmt.Fprintln(os.Stderr, "go_leak: no goroutineleak profile (Go 1.26 with GOEXPERIMENT=goroutineleakprofile)")
		os.Exit(3)
	}
	// Until both are parked and found: each round is one leak-finding GC.
	for i := 0; i < 100 && strings.Count(allStack(), "(leaked)]") < 2; i++ {
		runtime.Gosched()
		p.WriteTo(io.Discard, 0)
	}
	if err := os.WriteFile(os.Args[1], []byte(allStack()), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("ready")
	for {
		time.Sleep(time.Hour)
	}
}
