// go_pprof_http.go — a Go service with many idle goroutines that imports
// net/http/pprof, for bench/goroutines.py: pprofc's goroutine dump against
// Delve's and against the program's own goroutine?debug=2.
//
//	go_pprof_http [COUNT]
//
// COUNT goroutines (default 10000) park on one channel receive, goroutine
// i (i % 4) calls deep in descend(), so the stacks are not all alike but
// stay within Delve's default depth of 10 frames.  The server listens on
// 127.0.0.1:0 and serves net/http/pprof's /debug/pprof/ and /gap; the
// program prints "port N", then "ready" once every goroutine is parked
// (by its own runtime.Stack), then runs until killed.
//
// How long the program was held still is measured from inside, since a
// tool's own account of it is what is under test: a ticker goroutine
// sleeps 1 ms at a time and keeps the longest gap between two of its
// wake-ups (Go's monotonic clock runs on while the process is stopped, so
// a ptrace stop or a stop-the-world shows as one long gap).  GET /gap
// answers "max_gap_us N ticks N goroutines N" (the longest gap and the
// number of ticks since the last /gap, and runtime.NumGoroutine()) and
// starts a new window.
package main

import (
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

var (
	maxGap int64 // nanoseconds, longest gap between ticks in this window
	ticks  int64
)

//go:noinline
func descend(n int, c chan int) {
	if n > 0 {
		descend(n-1, c)
		return
	}
	<-c
}

func idler(i int, c chan int) { descend(i%4, c) }

// ticker records the longest gap between its 1 ms wake-ups; the
// compare-and-swap loop is needed because /gap resets maxGap to 0
// concurrently.
func ticker() {
	last := time.Now()
	for {
		time.Sleep(time.Millisecond)
		now := time.Now()
		gap := int64(now.Sub(last))
		last = now
		atomic.AddInt64(&ticks, 1)
		for {
			old := atomic.LoadInt64(&maxGap)
			if gap <= old || atomic.CompareAndSwapInt64(&maxGap, old, gap) {
				break
			}
		}
	}
}

func gapHandler(w http.ResponseWriter, r *http.Request) {
	gap := atomic.SwapInt64(&maxGap, 0)
	n := atomic.SwapInt64(&ticks, 0)
	fmt.Fprintf(w, "max_gap_us %d ticks %d goroutines %d\n", gap/1000, n, runtime.NumGoroutine())
}

// parked counts the goroutines in idler that the program's own
// runtime.Stack shows waiting on the channel.
func parked() int {
	buf := make([]byte, 64<<20)
	n := 0
	for _, block := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(block, "[chan receive") && strings.Contains(block, "\nmain.idler(") {
			n++
		}
	}
	return n
}

func main() {
	count := 10000
	if len(os.Args) > 1 {
		var err error
		if count, err = strconv.Atoi(os.Args[1]); err != nil || count < 0 {
			fmt.Fprintln(os.Stderr, "usage: go_pprof_http [COUNT]")
			os.Exit(2)
		}
	}
	never := make(chan int)
	for i := 0; i < count; i++ {
		go idler(i, never)
	}
	go ticker()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "go_pprof_http:", err)
		os.Exit(1)
	}
	http.HandleFunc("/gap", gapHandler)
	go http.Serve(l, nil)
	fmt.Println("port", l.Addr().(*net.TCPAddr).Port)
	for parked() != count {
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Println("ready")
	os.Stdout.Sync()
	select {}
}
