package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/leashpki/leash/protocol"
)

// Event queue limits. The queue keeps events while the gateway cannot be
// reached; beyond maxQueuedEvents the oldest are dropped and the drop is
// itself reported once the gateway is back.
const (
	maxQueuedEvents = 10000
	eventBatch      = 500
	eventFlushEvery = 500 * time.Millisecond
)

// eventQueue buffers events for the event stream. It never blocks the
// code that emits an event.
type eventQueue struct {
	mu      sync.Mutex
	q       []protocol.Event
	dropped int
	ready   chan struct{} // one token: something is queued
}

func newEventQueue() *eventQueue { return &eventQueue{ready: make(chan struct{}, 1)} }

// add queues e, stamping its time if unset.
func (q *eventQueue) add(e protocol.Event) {
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	if len(e.Data) > protocol.MaxEventDataBytes {
		e.Data = e.Data[:protocol.MaxEventDataBytes]
	}
	if len(e.Message) > protocol.MaxEventDataBytes {
		e.Message = e.Message[:protocol.MaxEventDataBytes]
	}
	q.mu.Lock()
	if len(q.q) >= maxQueuedEvents {
		q.q = q.q[1:]
		q.dropped++
	}
	q.q = append(q.q, e)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// take removes up to n events from the front, adding a notice about
// dropped events first when there were any.
func (q *eventQueue) take(n int) []protocol.Event {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []protocol.Event
	if q.dropped > 0 {
		out = append(out, protocol.Event{Time: time.Now().UTC(), Kind: protocol.EventLog, Level: "warn",
			Message: fmt.Sprintf("%d events dropped while the gateway was unreachable (queue limit %d)", q.dropped, maxQueuedEvents)})
		q.dropped = 0
	}
	k := min(n, len(q.q))
	out = append(out, q.q[:k]...)
	q.q = q.q[k:]
	return out
}

// putBack returns a batch that could not be sent to the front of the queue.
func (q *eventQueue) putBack(batch []protocol.Event) {
	q.mu.Lock()
	q.q = append(append([]protocol.Event(nil), batch...), q.q...)
	if over := len(q.q) - maxQueuedEvents; over > 0 {
		q.q = q.q[:maxQueuedEvents]
		q.dropped += over
	}
	q.mu.Unlock()
}

func (q *eventQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.q)
}

// streamEvents uploads queued events as ndjson batches until ctx ends or
// an upload fails; unsent events stay queued for the next session.
func (a *Agent) streamEvents(ctx context.Context) error {
	tick := time.NewTicker(eventFlushEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-a.events.ready:
		case <-tick.C:
		}
		for {
			batch := a.events.take(eventBatch)
			if len(batch) == 0 {
				break
			}
			if err := a.sendEvents(ctx, batch); err != nil {
				a.events.putBack(batch)
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("event stream: %w", err)
			}
		}
	}
}

func (a *Agent) sendEvents(ctx context.Context, batch []protocol.Event) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, e := range batch {
		if err := enc.Encode(e); err != nil {
			return err
		}
	}
	var ack protocol.EventsAccepted
	status, err := a.call(ctx, http.MethodPost, "/v1/events", buf.Bytes(), protocol.ContentTypeNDJSON, &ack)
	if err != nil {
		if status == http.StatusBadRequest || status == http.StatusRequestEntityTooLarge {
			// The gateway will never take this batch; keeping it would
			// block the stream forever. Say so in the log and move on.
			a.log.Error("gateway refused an event batch; dropping it", "events", len(batch), "err", err)
			return nil
		}
		return err
	}
	return nil
}
