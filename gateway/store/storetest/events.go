package storetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/leashpki/leash/gateway/store"
	"github.com/leashpki/leash/protocol"
)

func contextWithCancel(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithCancel(ctx)
}

func event(runner string, at time.Time, msg string) store.EventRecord {
	return store.EventRecord{RunnerID: runner, Time: at, Kind: protocol.EventLog, Level: "info", Message: msg}
}

func messages(es []store.EventRecord) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Message)
	}
	return out
}

func testEvents(t *testing.T, s store.Store) {
	ctx := testContext(t)
	t0 := baseTime()
	out := store.EventRecord{RunnerID: "web-1", Time: t0.Add(3 * time.Nanosecond), Kind: protocol.EventJobOutput,
		JobID: "j1", Stream: "stdout", Data: "line 1\n"}
	must(t, "append", s.AppendEvents(ctx, []store.EventRecord{event("web-1", t0, "a"), event("web-2", t0, "b"), out, event("web-1", t0, "c")}))
	all, err := s.Events(ctx, store.EventQuery{})
	must(t, "events", err)
	if got := messages(all); !slices.Equal(got, []string{"a", "b", "", "c"}) {
		t.Fatalf("events %v, want in append order", got)
	}
	for i := 1; i < len(all); i++ {
		if all[i].Seq <= all[i-1].Seq {
			t.Fatalf("sequence numbers do not increase: %d then %d", all[i-1].Seq, all[i].Seq)
		}
	}
	var d differ
	field(&d, "kind", all[2].Kind, protocol.EventJobOutput)
	field(&d, "job", all[2].JobID, "j1")
	field(&d, "stream", all[2].Stream, "stdout")
	field(&d, "data", all[2].Data, "line 1\n")
	d.time("time", all[2].Time, t0.Add(3*time.Nanosecond))
	d.report(t, "job output event")

	for _, tt := range []struct {
		q    store.EventQuery
		want int
	}{
		{store.EventQuery{RunnerID: "web-1"}, 3},
		{store.EventQuery{JobID: "j1"}, 1},
		{store.EventQuery{AfterSeq: all[1].Seq}, 2},
		{store.EventQuery{Limit: 2}, 2},
	} {
		got, err := s.Events(ctx, tt.q)
		must(t, "events", err)
		if len(got) != tt.want {
			t.Errorf("Events(%+v): %d events, want %d", tt.q, len(got), tt.want)
		}
	}
}

func testEventsAllOrNone(t *testing.T, s store.Store) {
	ctx := testContext(t)
	bad := []store.EventRecord{event("web-1", baseTime(), "kept?"), {Time: baseTime(), Kind: protocol.EventLog}}
	if err := s.AppendEvents(ctx, bad); err == nil {
		t.Fatal("an event without a runner id was accepted")
	}
	got, err := s.Events(ctx, store.EventQuery{})
	must(t, "events", err)
	if len(got) != 0 {
		t.Fatalf("a refused batch stored %d events", len(got))
	}
}

func testPruneEvents(t *testing.T, s store.Store) {
	ctx := testContext(t)
	t0 := baseTime()
	var batch []store.EventRecord
	for i := range 5 {
		batch = append(batch, event("web-1", t0.Add(time.Duration(i)*time.Minute), string(rune('a'+i))))
	}
	batch = append(batch, event("web-2", t0, "old"), event("web-2", t0.Add(10*time.Minute), "new"))
	must(t, "append", s.AppendEvents(ctx, batch))
	n, err := s.PruneEvents(ctx, t0.Add(time.Minute), 0)
	must(t, "prune by age", err)
	if n != 2 {
		t.Fatalf("pruned %d by age, want 2 (web-1 a, web-2 old)", n)
	}
	n, err = s.PruneEvents(ctx, t0, 2)
	must(t, "prune by count", err)
	if n != 2 {
		t.Fatalf("pruned %d by count, want 2 (web-1 b, c)", n)
	}
	left, err := s.Events(ctx, store.EventQuery{})
	must(t, "events", err)
	if got := messages(left); !slices.Equal(got, []string{"d", "e", "new"}) {
		t.Fatalf("after pruning: %v, want [d e new]", got)
	}
	if _, err := s.PruneEvents(ctx, t0, -1); err == nil {
		t.Fatal("negative keepPerRunner accepted")
	}
}

func testAudit(t *testing.T, s store.Store) {
	ctx := testContext(t)
	t0 := baseTime()
	rows := []store.AuditRecord{
		{Time: t0, Actor: "leash://runner/web-1", Action: "enroll", Target: "web-1", Detail: "serial 1"},
		{Time: t0.Add(time.Second), Actor: "leash://operator/alice", Action: "job.submit", Target: "j1"},
		{Time: t0.Add(2 * time.Second), Actor: "gateway", Action: "offline", Target: "web-1"},
	}
	for _, r := range rows {
		must(t, "append", s.AppendAudit(ctx, r))
	}
	if err := s.AppendAudit(ctx, store.AuditRecord{Time: t0}); err == nil {
		t.Fatal("an audit row without actor and action was accepted")
	}
	all, err := s.AuditLog(ctx, store.AuditQuery{})
	must(t, "audit", err)
	if len(all) != 3 || all[0].Action != "offline" || all[2].Action != "enroll" {
		t.Fatalf("audit log %+v, want 3 rows newest first", all)
	}
	var d differ
	field(&d, "actor", all[2].Actor, "leash://runner/web-1")
	field(&d, "detail", all[2].Detail, "serial 1")
	d.time("time", all[2].Time, t0)
	d.report(t, "audit row")
	for _, tt := range []struct {
		q    store.AuditQuery
		want int
	}{
		{store.AuditQuery{Target: "web-1"}, 2},
		{store.AuditQuery{Action: "job.submit"}, 1},
		{store.AuditQuery{Limit: 1}, 1},
	} {
		got, err := s.AuditLog(ctx, tt.q)
		must(t, "audit", err)
		if len(got) != tt.want {
			t.Errorf("AuditLog(%+v): %d rows, want %d", tt.q, len(got), tt.want)
		}
	}
}
