package runner

import (
	"context"
	"math/rand/v2"
	"time"
)

// backoff waits exponentially longer after each failure, with full jitter,
// between Min and Max; Reset after a success.
type backoff struct {
	Min, Max time.Duration
	n        int
	rand     func() float64 // in [0,1); default math/rand/v2
}

// next returns the delay before the next attempt.
func (b *backoff) next() time.Duration {
	d := b.Min
	for i := 0; i < b.n && d < b.Max; i++ {
		d *= 2 // at most doubles past Max once, then capped below
	}
	if d > b.Max || d <= 0 {
		d = b.Max
	}
	b.n++
	r := rand.Float64
	if b.rand != nil {
		r = b.rand
	}
	// Full jitter over the upper half keeps the delay at least d/2.
	return d/2 + time.Duration(r()*float64(d/2))
}

// Reset starts over at Min.
func (b *backoff) Reset() { b.n = 0 }

// Wait sleeps for the next delay or until ctx ends.
func (b *backoff) Wait(ctx context.Context) error {
	t := time.NewTimer(b.next())
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
