package bench

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// tally is one worker's share of a poolResult.
type tally struct {
	lat      []time.Duration
	failures int
	first    error
}

// add records one call: its latency and its error, if any.
func (t *tally) add(d time.Duration, err error) {
	t.lat = append(t.lat, d)
	if err != nil {
		t.failures++
		if t.first == nil {
			t.first = err
		}
	}
}

// runPool runs work(w, tally) on workers goroutines, w = 0…workers-1, and
// merges their tallies into the result of n calls.
func runPool(n, workers int, work func(w int, t *tally)) poolResult {
	var (
		mu  sync.Mutex
		wg  sync.WaitGroup
		res = poolResult{n: n, lat: make([]time.Duration, 0, n)}
	)
	start := time.Now()
	for w := range workers {
		wg.Go(func() {
			var t tally
			work(w, &t)
			mu.Lock()
			defer mu.Unlock()
			res.lat = append(res.lat, t.lat...)
			res.failures += t.failures
			if res.err == nil {
				res.err = t.first
			}
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	slices.Sort(res.lat)
	return res
}

// hammer makes n calls of do from workers goroutines, taking the next call
// from a shared counter, and times each.
func hammer(workers, n int, do func() error) poolResult {
	var next atomic.Int64
	return runPool(n, min(workers, max(n, 1)), func(_ int, t *tally) {
		for next.Add(1) <= int64(n) {
			t0 := time.Now()
			err := do()
			t.add(time.Since(t0), err)
		}
	})
}

// pace makes n calls of do from workers goroutines on a fixed schedule:
// call i is due at start + i/rate, on worker i mod workers. A call's
// latency counts from when it was due if its worker was still busy then,
// and otherwise from when it started (timer lateness is not the callee's).
func pace(workers, n int, rate float64, do func() error) poolResult {
	start := time.Now()
	return runPool(n, min(workers, n), func(w int, t *tally) {
		for i := w; i < n; i += workers {
			due := start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
			from := due
			if wait := time.Until(due); wait > 0 {
				time.Sleep(wait) // the schedule, not a wait for a condition
				from = time.Now()
			}
			err := do()
			t.add(time.Since(from), err)
		}
	})
}

// bracket runs baseline over n calls, half just before measure and half
// just after, and returns measure's result and the baseline's, merged. A
// failed baseline ends the benchmark.
func bracket(b *testing.B, n int, baseline func(n int) poolResult, measure func() poolResult) (res, base poolResult) {
	b.Helper()
	first := baseline((n + 1) / 2)
	res = measure()
	second := baseline(n / 2)
	base = poolResult{n: first.n + second.n, elapsed: first.elapsed + second.elapsed,
		lat: slices.Concat(first.lat, second.lat), failures: first.failures + second.failures, err: first.err}
	if base.err == nil {
		base.err = second.err
	}
	slices.Sort(base.lat)
	if base.err != nil {
		b.Fatalf("direct baseline: %d of %d failed, first: %v", base.failures, base.n, base.err)
	}
	return res, base
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func rps(r poolResult) float64 { return float64(r.n) / r.elapsed.Seconds() }

// target says whether a ratio reached its target (at least want).
func target(ratio, want float64, what string) string {
	verdict := "missed"
	if ratio >= want {
		verdict = "met"
	}
	return fmt.Sprintf("%s %.2fx direct, target ≥ %.2fx: %s", what, ratio, want, verdict)
}

// targetBelow says whether a cost stayed under its target.
func targetBelow(v, limit float64, what string) string {
	verdict := "missed"
	if v < limit {
		verdict = "met"
	}
	return fmt.Sprintf("%.2f %s, target < %.1f: %s", v, what, limit, verdict)
}
