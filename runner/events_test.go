package runner

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/leashpki/leash/protocol"
)

func logEvent(msg string) protocol.Event {
	return protocol.Event{Kind: protocol.EventLog, Level: "info", Message: msg}
}

// messages lists the events' messages, for comparing order.
func messages(es []protocol.Event) []string {
	out := make([]string, 0, len(es))
	for _, e := range es {
		out = append(out, e.Message)
	}
	return out
}

func fill(q *eventQueue, from, to int) {
	for i := from; i < to; i++ {
		q.add(logEvent(strconv.Itoa(i)))
	}
}

func TestEventQueueTakeKeepsOrder(t *testing.T) {
	q := newEventQueue()
	fill(q, 0, 5)
	if got, want := strings.Join(messages(q.take(3)), ","), "0,1,2"; got != want {
		t.Errorf("take(3) = %s, want %s", got, want)
	}
	fill(q, 5, 7)
	if got, want := strings.Join(messages(q.take(10)), ","), "3,4,5,6"; got != want {
		t.Errorf("take(10) = %s, want %s", got, want)
	}
	if got := q.take(10); len(got) != 0 {
		t.Errorf("take on an empty queue = %v", got)
	}
}

func TestEventQueueTakeBounds(t *testing.T) {
	tests := []struct {
		queued, n, want int
	}{
		{0, 10, 0},
		{5, 0, 0},
		{5, 1, 1},
		{5, 5, 5},
		{5, 6, 5},
		{eventBatch + 10, eventBatch, eventBatch},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d queued, take %d", tt.queued, tt.n), func(t *testing.T) {
			q := newEventQueue()
			fill(q, 0, tt.queued)
			got := q.take(tt.n)
			if len(got) != tt.want {
				t.Errorf("take(%d) returned %d events, want %d", tt.n, len(got), tt.want)
			}
			if left := q.len(); left != tt.queued-tt.want {
				t.Errorf("%d events left, want %d", left, tt.queued-tt.want)
			}
		})
	}
}

func TestEventQueueStampsTime(t *testing.T) {
	q := newEventQueue()
	set := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	before := time.Now()
	q.add(logEvent("unset"))
	q.add(protocol.Event{Kind: protocol.EventLog, Message: "set", Time: set})
	got := q.take(2)
	if got[0].Time.Before(before.Add(-time.Second)) || got[0].Time.Location() != time.UTC {
		t.Errorf("an unset time became %v, want now in UTC", got[0].Time)
	}
	if !got[1].Time.Equal(set) {
		t.Errorf("a set time became %v, want %v", got[1].Time, set)
	}
}

func TestEventQueueDropsOldestOverLimit(t *testing.T) {
	const over = 7
	q := newEventQueue()
	fill(q, 0, maxQueuedEvents+over)
	if n := q.len(); n != maxQueuedEvents {
		t.Fatalf("queue holds %d events, want the limit %d", n, maxQueuedEvents)
	}
	got := q.take(2)
	if len(got) != 3 {
		t.Fatalf("take(2) after drops returned %d events, want the notice and 2", len(got))
	}
	notice := got[0]
	if notice.Kind != protocol.EventLog || notice.Level != "warn" ||
		!strings.Contains(notice.Message, fmt.Sprintf("%d events dropped", over)) || notice.Time.IsZero() {
		t.Errorf("first event after drops = %+v, want a warn log saying %d events were dropped", notice, over)
	}
	if got, want := strings.Join(messages(got[1:]), ","), fmt.Sprintf("%d,%d", over, over+1); got != want {
		t.Errorf("oldest kept events = %s, want %s", got, want)
	}
	// The notice comes once.
	if next := q.take(1); len(next) != 1 || next[0].Message != strconv.Itoa(over+2) {
		t.Errorf("second take = %v, want event %d alone", messages(next), over+2)
	}
}

func TestEventQueuePutBack(t *testing.T) {
	q := newEventQueue()
	fill(q, 0, 3)
	batch := q.take(2)
	fill(q, 3, 4)
	q.putBack(batch)
	if got, want := strings.Join(messages(q.take(10)), ","), "0,1,2,3"; got != want {
		t.Errorf("after putBack: %s, want %s", got, want)
	}
}

func TestEventQueuePutBackOverLimit(t *testing.T) {
	q := newEventQueue()
	fill(q, 0, 3)
	batch := q.take(3)
	fill(q, 3, maxQueuedEvents+3)
	q.putBack(batch)
	if n := q.len(); n != maxQueuedEvents {
		t.Fatalf("queue holds %d events, want the limit %d", n, maxQueuedEvents)
	}
	got := q.take(1)
	if len(got) != 2 || got[0].Level != "warn" || !strings.Contains(got[0].Message, "3 events dropped") {
		t.Fatalf("after an overfull putBack: %v, want a notice of 3 dropped events first", messages(got))
	}
	// Over the limit the oldest go, as in add: that is the returned batch.
	if got[1].Message != "3" {
		t.Errorf("after dropping the oldest, want event 3 first; got %q", got[1].Message)
	}
}

func TestEventQueueTruncates(t *testing.T) {
	const limit = protocol.MaxEventDataBytes
	tests := []struct {
		name              string
		data, message     int // lengths in
		wantData, wantMsg int // lengths out
	}{
		{"short", 10, 10, 10, 10},
		{"at the limit", limit, limit, limit, limit},
		{"data over", limit + 1, 0, limit, 0},
		{"message over", 0, limit + 100, 0, limit},
		{"both over", 3 * limit, 2 * limit, limit, limit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := newEventQueue()
			q.add(protocol.Event{Kind: protocol.EventJobOutput, Stream: "stdout",
				Data: strings.Repeat("d", tt.data), Message: strings.Repeat("m", tt.message)})
			e := q.take(1)[0]
			if len(e.Data) != tt.wantData || len(e.Message) != tt.wantMsg {
				t.Errorf("data %d, message %d bytes; want %d and %d", len(e.Data), len(e.Message), tt.wantData, tt.wantMsg)
			}
		})
	}
}

func TestEventQueueReadyNeverBlocks(t *testing.T) {
	// In a bubble, an add blocked on the ready channel would fail the test
	// as a deadlock instead of hanging it.
	synctest.Test(t, func(t *testing.T) {
		q := newEventQueue()
		fill(q, 0, 3) // nobody takes the ready token
		if n := len(q.ready); n != 1 {
			t.Fatalf("ready holds %d tokens, want 1", n)
		}
		<-q.ready
		select {
		case <-q.ready:
			t.Fatal("a second ready token for one batch of adds")
		default:
		}
		q.add(logEvent("again"))
		select {
		case <-q.ready:
		default:
			t.Error("no ready token after an add following a take of the token")
		}
	})
}
