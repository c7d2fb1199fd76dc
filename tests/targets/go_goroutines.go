// go_goroutines.go — a Go program with goroutines in every common wait, for
// the goroutine dump (tests/integration/test_goroutines.py).
//
// Goroutines blocked on a channel receive, a send, a select, a sync.Mutex,
// time.Sleep, a loopback accept and a read, a sync.WaitGroup, a raw
// epoll_wait (which counts the EINTRs it sees), plus IDLE idle goroutines
// (default 2000) parked on one channel and one spinning (running).
// Six more are parked on that channel too, started under pprof labels
// (pprof.Do): three with {worker: a, shard: 3}, one with {worker: b}, one
// with 10 labels (a map grown past its first bucket) and one with an empty
// label set.
//
// With a third argument N, N pairs of goroutines also pass a token back and
// forth without end, and a spawner starts short-lived goroutines one after
// another: goroutines that change while pprofc reads them.
//
// The oracle: on SIGUSR1 a goroutine writes, to the file named by the first
// argument, the program's own runtime.Stack(buf, true) after a line
// "spins N eintr M" (the spinner's progress and the EINTR count), then
// renames it into place (PATH.tmp -> PATH).  On SIGUSR2 it collects garbage
// (runtime.GC), which dates the waits under way (g.waitsince).  Before that it writes the
// goroutine profile as runtime/pprof does, to PATH.debug1 (grouped text,
// WriteTo(f, 1)) and PATH.pb (protobuf, WriteTo(f, 0)): once PATH is
// there, so are they.  Prints "ready" once every
// goroutine is parked where it should be (by its own runtime.Stack), then
// runs until killed.
package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

var (
	spins int64
	eintr int64
	sink  int
	keep  net.Conn
)

//go:noinline
func spinStep(n int) int {
	s := 0
	for i := 0; i < n; i++ {
		s += i * i % 7
	}
	return s
}

func spinner() {
	for {
		sink += spinStep(100000)
		atomic.AddInt64(&spins, 1)
	}
}

func chanReceiver(c chan int) { <-c }

func chanSender(c chan int) { c <- 1 }

func selecter(a, b chan int) {
	select {
	case <-a:
	case b <- 1:
	}
}

func mutexWaiter(mu *sync.Mutex) {
	mu.Lock()
	mu.Unlock()
}

func sleeper() { time.Sleep(24 * time.Hour) }

func acceptor(l net.Listener) {
	c, err := l.Accept()
	if err == nil {
		c.Close()
	}
}

func reader(c net.Conn) {
	buf := make([]byte, 16)
	c.Read(buf)
}

func waitGroupWaiter(wg *sync.WaitGroup) { wg.Wait() }

func idler(c chan int) { <-c }

func labelled(c chan int) { <-c }

// startLabelled starts n labelled goroutines under the labels kv.
func startLabelled(c chan int, n int, kv ...string) {
	pprof.Do(context.Background(), pprof.Labels(kv...), func(context.Context) {
		for i := 0; i < n; i++ {
			go labelled(c)
		}
	})
}

// A raw epoll_wait on an epoll with nothing in it: a ptrace stop of the
// thread under it would make it fail with EINTR, which Go hands back.
func epoller() {
	fd, err := syscall.EpollCreate1(0)
	if err != nil {
		panic(err)
	}
	events := make([]syscall.EpollEvent, 1)
	for {
		_, err := syscall.EpollWait(fd, events, -1)
		if err == syscall.EINTR {
			atomic.AddInt64(&eintr, 1)
		}
	}
}

func pingPong(in, out chan int) {
	for v := range in {
		out <- v + 1
	}
}

//go:noinline
func shortLived(done chan int) { done <- 1 }

func spawner() {
	done := make(chan int)
	for {
		go shortLived(done)
		<-done
	}
}

// writeProfile writes the goroutine profile at this debug level to path,
// through path.tmp.
func writeProfile(path string, debug int) error {
	f, err := os.Create(path + ".tmp")
	if err != nil {
		return err
	}
	err = pprof.Lookup("goroutine").WriteTo(f, debug)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(path+".tmp", path)
	}
	return err
}

func writeOracle(path string) {
	if writeProfile(path+".debug1", 1) != nil || writeProfile(path+".pb", 0) != nil {
		return
	}
	buf := make([]byte, 64<<20)
	n := runtime.Stack(buf, true)
	tmp := path + ".tmp"
	head := fmt.Sprintf("spins %d eintr %d\n", atomic.LoadInt64(&spins), atomic.LoadInt64(&eintr))
	if err := os.WriteFile(tmp, append([]byte(head), buf[:n]...), 0o644); err == nil {
		os.Rename(tmp, path)
	}
}

func allStack() string {
	buf := make([]byte, 64<<20)
	return string(buf[:runtime.Stack(buf, true)])
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: go_goroutines ORACLE_FILE [IDLE [CHURN]]")
		os.Exit(2)
	}
	idle := 2000
	if len(os.Args) > 2 {
		idle, _ = strconv.Atoi(os.Args[2])
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGUSR2)
	go func() {
		for sig := range sigs {
			if sig == syscall.SIGUSR2 {
				// A collection dates the waits: it sets g.waitsince of
				// every goroutine waiting since before it, which Go's
				// traceback turns into ", N minutes".
				runtime.GC()
				continue
			}
			writeOracle(os.Args[1])
		}
	}()

	never := make(chan int)
	go chanReceiver(never)
	go chanSender(make(chan int))
	go selecter(never, make(chan int))
	var mu sync.Mutex
	mu.Lock()
	go mutexWaiter(&mu)
	go sleeper()
	quiet, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go acceptor(quiet)
	talk, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	client, err := net.Dial("tcp", talk.Addr().String())
	if err != nil {
		panic(err)
	}
	server, err := talk.Accept()
	if err != nil {
		panic(err)
	}
	go reader(server)
	var wg sync.WaitGroup
	wg.Add(1)
	go waitGroupWaiter(&wg)
	for i := 0; i < idle; i++ {
		go idler(never)
	}
	startLabelled(never, 3, "worker", "a", "shard", "3")
	startLabelled(never, 1, "worker", "b")
	startLabelled(never, 1, "k0", "v0", "k1", "v1", "k2", "v2", "k3", "v3", "k4", "v4",
		"k5", "v5", "k6", "v6", "k7", "v7", "k8", "v8", "k9", "with \"quotes\"\tand a tab")
	startLabelled(never, 1)
	go epoller()
	go spinner()
	churn := 0
	if len(os.Args) > 3 {
		churn, _ = strconv.Atoi(os.Args[3])
	}
	for i := 0; i < churn; i++ {
		a, b := make(chan int), make(chan int)
		go pingPong(a, b)
		go pingPong(b, a)
		a <- 0
	}
	if churn > 0 {
		go spawner()
	}

	// Ready once every goroutine is parked where it should be, by the
	// program's own account.
	want := map[string]int{"main.chanReceiver": 1, "main.chanSender": 1, "main.selecter": 1,
		"main.mutexWaiter": 1, "main.sleeper": 1, "main.acceptor": 1, "main.reader": 1,
		"main.waitGroupWaiter": 1, "main.idler": idle, "main.epoller": 1, "main.labelled": 6}
	for {
		got := map[string]int{}
		for _, block := range strings.Split(allStack(), "\n\n") {
			if strings.Contains(block, "[running]") || strings.Contains(block, "[runnable]") {
				continue
			}
			for name := range want {
				if strings.Contains(block, "\n"+name+"(") {
					got[name]++
				}
			}
		}
		ok := true
		for name, n := range want {
			ok = ok && got[name] == n
		}
		if ok && atomic.LoadInt64(&spins) > 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	keep = client // reachable: never collected, so the reader's peer stays open
	// "ready" once main itself is parked in the select below: printed
	// from main, a dump taken at once could catch main still printing.
	// The goroutine that says it parks for good too.
	go func() {
		for !strings.Contains(allStack(), "goroutine 1 [select (no cases)") {
			time.Sleep(time.Millisecond)
		}
		fmt.Println("ready")
		os.Stdout.Sync()
		select {}
	}()
	select {}
}
