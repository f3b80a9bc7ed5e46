package bench

import (
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/leashpki/leash/internal/testharness"
)

// BenchmarkTunnelIdleStreams measures the memory one idle TCP connection
// through the tunnel holds. One op opens idleStreams (500) connections,
// each proven end to end by one echoed byte, and leaves them idle; the
// process is sampled (forced GC, pages returned to the OS, see sampleMem)
// before and after; then the connections are closed and the op waits
// until their goroutines are gone. ns/op is the time to open the 500.
//
//	direct   500 connections straight to the echo service
//	tunnel   500 connections to the gateway's exposed port, each one
//	         yamux stream and one runner connection to the echo service
//
// Everything runs in this one process, so each figure counts the client's
// connections and the echo service's handlers too. The tunnel's own cost,
// gateway plus runner, is the difference to direct, measured in the same
// op just before (added-*). Reported per connection (stream), averaged
// over the ops:
//
//	heap-B/stream        Δ(HeapInuse+StackInuse)
//	stack-B/stream       Δ StackInuse, the goroutine stacks alone
//	rss-B/stream         Δ VmRSS (Linux)
//	goroutines/stream
//	added-heap-B/stream  tunnel minus direct: gateway + runner per stream
//	added-goroutines/stream
//
// This is not the gateway's and the runner's RSS with N idle tunnels: one
// runner has one tunnel here and the streams share it.
func BenchmarkTunnelIdleStreams(b *testing.B) {
	rig := newTunnelRig(b, "echo")
	b.Run("direct", func(b *testing.B) {
		var sum idleCost
		for range b.N {
			sum = sum.add(idleRound(b, rig.direct, true))
		}
		sum.div(b.N).report(b)
	})
	b.Run("tunnel", func(b *testing.B) {
		var sum, base idleCost
		for range b.N {
			base = base.add(idleRound(b, rig.direct, false))
			sum = sum.add(idleRound(b, rig.exposed, true))
		}
		sum, base = sum.div(b.N), base.div(b.N)
		sum.report(b)
		b.ReportMetric(sum.heap-base.heap, "added-heap-B/stream")
		b.ReportMetric(sum.goroutines-base.goroutines, "added-goroutines/stream")
		b.Logf("%d idle connections: %.1f KiB heap+stack each through the tunnel, %.1f KiB direct: %.1f KiB for gateway + runner; goroutines %.1f vs %.1f",
			idleStreams, sum.heap/1024, base.heap/1024, (sum.heap-base.heap)/1024, sum.goroutines, base.goroutines)
	})
}

// idleCost is what one idle connection held, in bytes and goroutines;
// heap counts heap and stacks, stack the stacks alone.
type idleCost struct{ heap, stack, rss, goroutines float64 }

func (c idleCost) add(o idleCost) idleCost {
	return idleCost{c.heap + o.heap, c.stack + o.stack, c.rss + o.rss, c.goroutines + o.goroutines}
}

func (c idleCost) div(n int) idleCost {
	f := float64(max(n, 1))
	return idleCost{c.heap / f, c.stack / f, c.rss / f, c.goroutines / f}
}

func (c idleCost) report(b *testing.B) {
	b.ReportMetric(c.heap, "heap-B/stream")
	b.ReportMetric(c.stack, "stack-B/stream")
	b.ReportMetric(c.rss, "rss-B/stream")
	b.ReportMetric(c.goroutines, "goroutines/stream")
}

// openIdleEchoes opens idleStreams connections to the echo service at
// addr, each proven by one echoed byte and then left idle, appending each
// to conns as soon as it is open (so the caller's cleanup closes it even
// when a later one fails).
func openIdleEchoes(b *testing.B, addr string, conns *[]net.Conn) {
	b.Helper()
	for range idleStreams {
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		*conns = append(*conns, c)
		var one [1]byte
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write([]byte{'x'}); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, one[:]); err != nil {
			b.Fatalf("echo from %s on connection %d: %v", addr, len(*conns), err)
		}
		_ = c.SetDeadline(time.Time{})
	}
}

// idleRound opens idleStreams connections to addr (timed when timed is
// true, otherwise with the timer stopped), samples memory, closes them
// and waits for the process to settle.
func idleRound(b *testing.B, addr string, timed bool) idleCost {
	b.Helper()
	b.StopTimer()
	before := sampleMem(b)
	conns := make([]net.Conn, 0, idleStreams)
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
		testharness.Eventually(b, 30*time.Second, "idle connections' goroutines gone", func() bool {
			return runtime.NumGoroutine() <= before.goroutines+idleSettleSlack
		})
	}()
	if timed {
		b.StartTimer()
	}
	openIdleEchoes(b, addr, &conns)
	b.StopTimer()
	after := sampleMem(b)
	per := func(x, y uint64) float64 { return (float64(x) - float64(y)) / idleStreams }
	return idleCost{
		heap:       per(after.heap+after.stack, before.heap+before.stack),
		stack:      per(after.stack, before.stack),
		rss:        per(after.rss, before.rss),
		goroutines: float64(after.goroutines-before.goroutines) / idleStreams,
	}
}
