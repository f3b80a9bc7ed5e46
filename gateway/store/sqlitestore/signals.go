package sqlitestore

import (
	"context"
	"sync"
)

// signalHub fans job submissions out to subscribers in this process.
// Sends never block: a subscriber that is behind misses a signal and
// catches up on its own re-check timer, as store.Jobs allows.
type signalHub struct {
	mu   sync.Mutex
	subs map[chan string]struct{}
}

func (h *signalHub) subscribe(ctx context.Context) <-chan string {
	ch := make(chan string, 64)
	h.mu.Lock()
	if h.subs == nil {
		h.subs = make(map[chan string]struct{})
	}
	h.subs[ch] = struct{}{}
	h.mu.Unlock()
	context.AfterFunc(ctx, func() {
		h.mu.Lock()
		delete(h.subs, ch)
		h.mu.Unlock()
		close(ch)
	})
	return ch
}

func (h *signalHub) publish(runner string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		select {
		case ch <- runner:
		default:
		}
	}
}
