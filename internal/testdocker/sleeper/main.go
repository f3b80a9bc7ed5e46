// Command sleeper is the program inside testdocker's test image: a static
// binary (CGO_ENABLED=0) that can run in a FROM scratch image. It prints
// one line when it starts, then, when $TICK holds a duration, a numbered
// line every TICK, so tests can follow a log stream; it exits at once on
// SIGTERM or SIGINT, so stopping or removing its container is fast even
// though it runs as PID 1 (which gets no default signal handling).
//
// It never prints its environment: tests give it secrets to prove that
// they do not leak, and its logs are one of the places they would.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	fmt.Println("sleeper ready")

	var tick <-chan time.Time
	if d, err := time.ParseDuration(os.Getenv("TICK")); err == nil && d > 0 {
		t := time.NewTicker(d)
		defer t.Stop()
		tick = t.C
	}
	for n := 1; ; n++ {
		select {
		case <-stop:
			fmt.Println("sleeper stopping")
			return
		case <-tick:
			fmt.Printf("tick %d\n", n)
		}
	}
}
