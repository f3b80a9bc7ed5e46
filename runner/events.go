package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

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
	e.Data = clip(e.Data, protocol.MaxEventDataBytes)
	e.Message = clip(e.Message, protocol.MaxEventDataBytes)
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
		q.q = q.q[over:] // the oldest go, as in add
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
	for _, e := range batch {
		buf.Write(encodeEvent(e))
	}
	status, err := a.call(ctx, http.MethodPost, "/v1/events", buf.Bytes(), protocol.ContentTypeNDJSON, nil)
	if status != http.StatusBadRequest && status != http.StatusRequestEntityTooLarge {
		return err
	}
	// The gateway refuses the whole batch for one bad event. Send them one
	// by one so that only the events it will never take are lost.
	if len(batch) == 1 {
		a.log.Error("gateway refused an event; dropping it", "kind", batch[0].Kind, "job", batch[0].JobID, "err", err)
		return nil
	}
	for _, e := range batch {
		if err := a.sendEvents(ctx, []protocol.Event{e}); err != nil {
			return err
		}
	}
	return nil
}

// encodeEvent encodes e as one ndjson line that fits the gateway's line
// limit: without HTML escaping, and with Data and Message halved until
// escaping (control characters grow sixfold) no longer pushes it over.
func encodeEvent(e protocol.Event) []byte {
	for {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(e) // an Event always encodes
		if buf.Len() <= protocol.MaxEventLineBytes || (e.Data == "" && e.Message == "") {
			return buf.Bytes()
		}
		e.Data = clip(e.Data, len(e.Data)/2)
		e.Message = clip(e.Message, len(e.Message)/2)
	}
}

// clip makes s valid UTF-8 and at most n bytes long, cutting only between
// characters.
func clip(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
