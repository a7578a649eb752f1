// rt_bench.go: Go's side of the process-runtime benchmark (rt_bench.c is
// otpc's, rt_bench.erl is Erlang's). Same workloads, same sizes, same
// workload names; a process is a goroutine, a mailbox a channel.
//
// bench/run.sh builds it with `go build` and runs it with GOMAXPROCS set
// from BENCH_SCHEDULERS (otpc's scheduler count). QUICK=1 in the
// environment: smaller sizes and one run per workload (otherwise the best
// of three). Prints
//
//	BENCH <workload> go <value> <unit>
//	NOTE  <workload> go <text>
//
// Arguments select workloads (rt_bench_go ring skynet_1m).
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	ringN       = 10000
	ringRounds  = 100
	skynetSize  = 1000000
	m2oSenders  = 20
	m2oChanSize = 1024
)

func rss() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.ParseInt(f[1], 10, 64)
	return n * int64(os.Getpagesize())
}

func fmtVal(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	case v >= 1:
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.3f", v)
}

func bench(name string, v float64, unit string) {
	fmt.Printf("BENCH %s go %s %s\n", name, fmtVal(v), unit)
}

// ---- idle goroutines -------------------------------------------------------

func idle(n int) {
	runtime.GC()
	r0 := rss()
	t0 := time.Now()
	ch := make(chan struct{})
	var up, down sync.WaitGroup
	up.Add(n)
	down.Add(n)
	for i := 0; i < n; i++ {
		go func() {
			up.Done()
			<-ch
			down.Done()
		}()
	}
	up.Wait()
	secs := time.Since(t0).Seconds()
	time.Sleep(100 * time.Millisecond)
	r1 := rss()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	each := float64(r1-r0) / float64(n)
	bench("idle_memory_handler", each, "B")
	bench("idle_memory_seq", each, "B")
	note := fmt.Sprintf("%d goroutines blocked on a channel, started in %.0f ms; RSS +%.1f MiB; stacks in use %.1f MiB",
		n, secs*1e3, float64(r1-r0)/1048576, float64(ms.StackInuse)/1048576)
	fmt.Printf("NOTE idle_memory_handler go %s\n", note)
	fmt.Printf("NOTE idle_memory_seq go %s\n", note)
	close(ch)
	down.Wait()
}

// ---- spawn + exit + one message --------------------------------------------

func spawnExit(n int) float64 {
	// A mailbox holds every message without blocking the sender: a buffer
	// of n, so that children exit at once as Erlang's do.
	done := make(chan struct{}, n)
	t0 := time.Now()
	for i := 0; i < n; i++ {
		go func() { done <- struct{}{} }()
	}
	for i := 0; i < n; i++ {
		<-done
	}
	return time.Since(t0).Seconds()
}

// ---- ring (and ping-pong: a ring of two) -----------------------------------

func ring(n, rounds int) float64 {
	chans := make([]chan int, n)
	for i := range chans {
		chans[i] = make(chan int)
	}
	finished := make(chan struct{})
	// the first goroutine counts the rounds
	go func() {
		seen := 0
		for t := range chans[0] {
			seen++
			if seen > rounds {
				finished <- struct{}{}
				continue
			}
			chans[1%n] <- t
		}
	}()
	for i := 1; i < n; i++ {
		go func(in, out chan int) {
			for t := range in {
				out <- t
			}
		}(chans[i], chans[(i+1)%n])
	}
	t0 := time.Now()
	chans[0] <- 1
	<-finished
	secs := time.Since(t0).Seconds()
	// The token stopped at the first goroutine: nothing is in flight, so
	// closing every channel ends them all.
	for _, c := range chans {
		close(c)
	}
	return secs
}

// ---- skynet ----------------------------------------------------------------

func skynet(c chan int, num, size int) {
	if size == 1 {
		c <- num
		return
	}
	rc := make(chan int)
	sub := size / 10
	for i := 0; i < 10; i++ {
		go skynet(rc, num+i*sub, sub)
	}
	sum := 0
	for i := 0; i < 10; i++ {
		sum += <-rc
	}
	c <- sum
}

func skynetRun() float64 {
	c := make(chan int)
	t0 := time.Now()
	go skynet(c, 0, skynetSize)
	sum := <-c
	secs := time.Since(t0).Seconds()
	if sum != skynetSize*(skynetSize-1)/2 {
		fmt.Fprintf(os.Stderr, "rt_bench_go: skynet: wrong sum %d\n", sum)
		os.Exit(1)
	}
	return secs
}

// ---- many senders, one receiver --------------------------------------------

func manyToOne(senders, msgs int) float64 {
	ch := make(chan int, m2oChanSize)
	finished := make(chan struct{})
	total := senders * msgs
	go func() {
		for i := 0; i < total; i++ {
			<-ch
		}
		finished <- struct{}{}
	}()
	t0 := time.Now()
	for s := 0; s < senders; s++ {
		go func(id int) {
			for i := 0; i < msgs; i++ {
				ch <- id
			}
		}(s)
	}
	<-finished
	return time.Since(t0).Seconds()
}

// ---- main ------------------------------------------------------------------

func main() {
	q := os.Getenv("QUICK")
	quick := q != "" && q != "0"
	if s, err := strconv.Atoi(os.Getenv("BENCH_SCHEDULERS")); err == nil && s > 0 {
		runtime.GOMAXPROCS(s)
	}
	sel := map[string]bool{}
	for _, a := range os.Args[1:] {
		sel[a] = true
	}
	want := func(w string) bool { return len(sel) == 0 || sel[w] }
	reps, idleN, m2o := 3, 1000000, 1000000
	if quick {
		reps, idleN, m2o = 1, 200000, 100000
	}
	spawnN, pingN := idleN, idleN

	if want("idle_memory_handler") || want("idle_memory_seq") {
		idle(idleN)
	}
	type load struct {
		name  string
		run   func() float64 // seconds
		lower bool
		unit  string
		conv  func(float64) float64
		twin  string
	}
	loads := []load{
		{"spawn_exit_msg", func() float64 { return spawnExit(spawnN) }, false, "Mops/s",
			func(s float64) float64 { return float64(spawnN) / s / 1e6 }, "spawn_exit_msg_seq"},
		{"ring", func() float64 { return ring(ringN, ringRounds) }, false, "Mmsg/s",
			func(s float64) float64 { return ringN * ringRounds / s / 1e6 }, "ring_seq"},
		{"pingpong", func() float64 { return ring(2, pingN) }, false, "Mops/s",
			func(s float64) float64 { return float64(pingN) / s / 1e6 }, "pingpong_seq"},
		{"skynet_1m", skynetRun, true, "ms",
			func(s float64) float64 { return s * 1e3 }, ""},
		{"many_to_one", func() float64 { return manyToOne(m2oSenders, m2o) }, false, "Mmsg/s",
			func(s float64) float64 { return float64(m2oSenders*m2o) / s / 1e6 }, ""},
	}
	// The runs go in passes over the workloads, not one workload's runs in
	// a row, as otpc's side does (rt_bench.c): a slow spell of the machine
	// then costs one run of several workloads.
	best := make([]float64, len(loads))
	for i := 0; i < reps; i++ {
		for j, l := range loads {
			if !want(l.name) {
				continue
			}
			runtime.GC()
			v := l.conv(l.run())
			if i == 0 || (l.lower && v < best[j]) || (!l.lower && v > best[j]) {
				best[j] = v
			}
		}
	}
	for j, l := range loads {
		if !want(l.name) {
			continue
		}
		bench(l.name, best[j], l.unit)
		if l.twin != "" {
			bench(l.twin, best[j], l.unit)
		}
	}
}
