package runner

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"testing"
	"testing/synctest"
	"time"
)

// justBelowOne is the largest value a rand func may return.
var justBelowOne = math.Nextafter(1, 0)

func constRand(v float64) func() float64 { return func() float64 { return v } }

func TestBackoffNextGrowsFromMinToMax(t *testing.T) {
	tests := []struct {
		name     string
		min, max time.Duration
		// ceilings are the jitter-free delays d of attempts 0, 1, 2, ...;
		// every delay must fall in [d/2, d].
		ceilings []time.Duration
	}{
		{"doubles until capped", 100 * time.Millisecond, time.Second,
			[]time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond,
				800 * time.Millisecond, time.Second, time.Second, time.Second}},
		{"reconnect defaults", time.Second, 30 * time.Second,
			[]time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second,
				30 * time.Second, 30 * time.Second}},
		{"min equals max", 5 * time.Second, 5 * time.Second,
			[]time.Duration{5 * time.Second, 5 * time.Second, 5 * time.Second}},
		{"min above max is capped", 2 * time.Second, time.Second,
			[]time.Duration{time.Second, time.Second}},
		{"zero min waits max", 0, time.Second,
			[]time.Duration{time.Second, time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			low := backoff{Min: tt.min, Max: tt.max, rand: constRand(0)}
			mid := backoff{Min: tt.min, Max: tt.max, rand: constRand(0.5)}
			high := backoff{Min: tt.min, Max: tt.max, rand: constRand(justBelowOne)}
			for i, d := range tt.ceilings {
				if got := low.next(); got != d/2 {
					t.Errorf("attempt %d, rand 0: got %v, want d/2 = %v", i, got, d/2)
				}
				if got, want := mid.next(), d/2+d/4; got != want {
					t.Errorf("attempt %d, rand 0.5: got %v, want %v", i, got, want)
				}
				// Jitter covers the whole upper half: just below 1 lands
				// within a nanosecond of d, never above it.
				if got := high.next(); got > d || got < d-time.Nanosecond {
					t.Errorf("attempt %d, rand ~1: got %v, want just below %v", i, got, d)
				}
			}
		})
	}
}

func TestBackoffResetStartsOver(t *testing.T) {
	b := backoff{Min: 10 * time.Millisecond, Max: time.Second, rand: constRand(0)}
	first := b.next()
	for range 5 {
		b.next()
	}
	if got := b.next(); got <= first {
		t.Fatalf("after 6 failures the delay is %v, not above the first %v", got, first)
	}
	b.Reset()
	if got := b.next(); got != first {
		t.Errorf("after Reset: got %v, want the first delay %v", got, first)
	}
	if got, want := b.next(), 2*first; got != want {
		t.Errorf("second delay after Reset: got %v, want %v", got, want)
	}
}

func TestBackoffLargeAttemptCountsStayBounded(t *testing.T) {
	tests := []struct {
		name     string
		min, max time.Duration
	}{
		{"microsecond min", time.Microsecond, 30 * time.Second},
		{"millisecond min", time.Millisecond, time.Minute},
		{"second min", time.Second, 30 * time.Second},
		{"second min, day max", time.Second, 24 * time.Hour},
		{"ten second min, hour max", 10 * time.Second, time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := backoff{Min: tt.min, Max: tt.max, rand: constRand(justBelowOne)}
			var prev time.Duration
			for n := 0; n <= 100; n++ {
				got := b.next()
				if got <= 0 || got > tt.max {
					t.Fatalf("attempt %d: delay %v, want in (0, %v]", n, got, tt.max)
				}
				if got < prev {
					t.Fatalf("attempt %d: delay %v shrank from %v", n, got, prev)
				}
				prev = got
			}
			if prev < tt.max-time.Nanosecond {
				t.Errorf("attempt 100: delay %v, want the cap %v", prev, tt.max)
			}
		})
	}
}

func TestBackoffJitterVaries(t *testing.T) {
	tests := []struct {
		name string
		rand func() float64
	}{
		{"injected", rand.New(rand.NewPCG(1, 2)).Float64},
		{"default source", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := backoff{Min: time.Second, Max: 30 * time.Second, rand: tt.rand}
			seen := map[time.Duration]bool{}
			for range 50 {
				b.Reset()
				d := b.next() // always attempt 0: d = Min
				if d < time.Second/2 || d > time.Second {
					t.Fatalf("first delay %v outside [%v, %v]", d, time.Second/2, time.Second)
				}
				seen[d] = true
			}
			if len(seen) < 2 {
				t.Errorf("50 first delays were all %v: no jitter", seen)
			}
		})
	}
}

func TestBackoffWait(t *testing.T) {
	tests := []struct {
		name    string
		ctx     func() (context.Context, context.CancelFunc)
		want    error
		elapsed func(time.Duration) bool
	}{
		{"waits the delay", func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) },
			nil, func(d time.Duration) bool { return d >= 30*time.Minute && d <= time.Hour }},
		{"cancelled context returns at once", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, cancel
		}, context.Canceled, func(d time.Duration) bool { return d == 0 }},
		{"deadline ends the wait", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), time.Minute)
		}, context.DeadlineExceeded, func(d time.Duration) bool { return d == time.Minute }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The bubble's fake clock makes an hour-long backoff instant
			// and the elapsed time exact.
			synctest.Test(t, func(t *testing.T) {
				ctx, cancel := tt.ctx()
				defer cancel()
				b := backoff{Min: time.Hour, Max: time.Hour}
				start := time.Now()
				err := b.Wait(ctx)
				elapsed := time.Since(start)
				if !errors.Is(err, tt.want) {
					t.Errorf("Wait: got %v, want %v", err, tt.want)
				}
				if !tt.elapsed(elapsed) {
					t.Errorf("Wait took %v", elapsed)
				}
			})
		})
	}
}
