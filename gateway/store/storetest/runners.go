package storetest

import (
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/leashpki/leash/gateway/store"
	"github.com/leashpki/leash/protocol"
)

func runnerRecord(id string, seen time.Time) store.RunnerRecord {
	return store.RunnerRecord{ID: id, Hostname: id + ".example", OS: "linux", Arch: "amd64", Version: "v1",
		Labels: map[string]string{"zone": "eu", "tier": "web"}, Capabilities: []string{"info", "exec:uptime"},
		CertSerial: "1001", CertNotAfter: seen.Add(time.Hour).Add(123 * time.Nanosecond), LastSeen: seen}
}

func testRunnerRegister(t *testing.T, s store.Store) {
	ctx := testContext(t)
	t0 := baseTime()
	prev, err := s.RegisterRunner(ctx, runnerRecord("web-1", t0))
	must(t, "register", err)
	if prev != "" {
		t.Fatalf("new runner: previous status %q, want empty", prev)
	}
	got, err := s.Runner(ctx, "web-1")
	must(t, "runner", err)
	var d differ
	field(&d, "status", got.Status, protocol.RunnerOnline)
	field(&d, "hostname", got.Hostname, "web-1.example")
	field(&d, "labels", fmt.Sprint(got.Labels), fmt.Sprint(map[string]string{"zone": "eu", "tier": "web"}))
	d.strings("capabilities", got.Capabilities, []string{"info", "exec:uptime"})
	d.time("first_seen", got.FirstSeen, t0)
	d.time("last_seen", got.LastSeen, t0)
	d.time("cert_not_after", got.CertNotAfter, t0.Add(time.Hour).Add(123*time.Nanosecond))
	d.report(t, "registered runner")

	// Registering again keeps FirstSeen and replaces the facts.
	must(t, "offline", s.SetRunnerStatus(ctx, "web-1", protocol.RunnerOffline))
	again := runnerRecord("web-1", t0.Add(time.Minute))
	again.Hostname, again.Labels, again.Capabilities, again.CertSerial = "moved.example", nil, nil, "2002"
	prev, err = s.RegisterRunner(ctx, again)
	must(t, "re-register", err)
	got, err = s.Runner(ctx, "web-1")
	must(t, "runner", err)
	d = differ{}
	field(&d, "previous", prev, protocol.RunnerOffline)
	field(&d, "status", got.Status, protocol.RunnerOnline)
	field(&d, "hostname", got.Hostname, "moved.example")
	field(&d, "serial", got.CertSerial, "2002")
	field(&d, "labels", len(got.Labels), 0)
	d.time("first_seen", got.FirstSeen, t0)
	d.time("last_seen", got.LastSeen, t0.Add(time.Minute))
	d.report(t, "re-registered runner")

	_, err = s.Runner(ctx, "nobody")
	wantErr(t, "unknown runner", err, store.ErrNotFound)
	wantErr(t, "status of unknown runner", s.SetRunnerStatus(ctx, "nobody", protocol.RunnerRevoked), store.ErrNotFound)
	if err := s.SetRunnerStatus(ctx, "web-1", "sleeping"); err == nil {
		t.Fatal("unknown status accepted")
	}
}

func testRunnerHeartbeat(t *testing.T, s store.Store) {
	ctx := testContext(t)
	t0 := baseTime()
	_, err := s.Heartbeat(ctx, store.HeartbeatRecord{RunnerID: "ghost", At: t0})
	wantErr(t, "heartbeat before register", err, store.ErrNotFound)
	if _, err := s.Runner(ctx, "ghost"); err == nil {
		t.Fatal("a heartbeat for an unknown runner created it")
	}
	_, err = s.RegisterRunner(ctx, runnerRecord("web-1", t0))
	must(t, "register", err)
	must(t, "offline", s.SetRunnerStatus(ctx, "web-1", protocol.RunnerOffline))
	hb := store.HeartbeatRecord{RunnerID: "web-1", At: t0.Add(5 * time.Second), Load1: 0.75, MemUsed: 1 << 30,
		MemTotal: 4 << 30, CertSerial: "3003", CertNotAfter: t0.Add(2 * time.Hour)}
	prev, err := s.Heartbeat(ctx, hb)
	must(t, "heartbeat", err)
	got, err := s.Runner(ctx, "web-1")
	must(t, "runner", err)
	var d differ
	field(&d, "previous", prev, protocol.RunnerOffline)
	field(&d, "status", got.Status, protocol.RunnerOnline)
	field(&d, "load1", got.Load1, 0.75)
	field(&d, "mem_used", got.MemUsed, uint64(1<<30))
	field(&d, "mem_total", got.MemTotal, uint64(4<<30))
	field(&d, "serial", got.CertSerial, "3003")
	d.time("last_seen", got.LastSeen, hb.At)
	d.time("cert_not_after", got.CertNotAfter, hb.CertNotAfter)
	d.report(t, "after heartbeat")

	must(t, "revoke", s.SetRunnerStatus(ctx, "web-1", protocol.RunnerRevoked))
	_, err = s.Heartbeat(ctx, store.HeartbeatRecord{RunnerID: "web-1", At: t0.Add(10 * time.Second)})
	wantErr(t, "heartbeat of revoked runner", err, store.ErrConflict)
	got, err = s.Runner(ctx, "web-1")
	must(t, "runner", err)
	if got.Status != protocol.RunnerRevoked || !got.LastSeen.Equal(hb.At) {
		t.Fatalf("refused heartbeat changed the runner: %+v", got)
	}
}

func testRunnerList(t *testing.T, s store.Store) {
	ctx := testContext(t)
	for _, id := range []string{"c-3", "a-1", "b-2"} {
		_, err := s.RegisterRunner(ctx, runnerRecord(id, baseTime()))
		must(t, "register", err)
	}
	must(t, "offline", s.SetRunnerStatus(ctx, "b-2", protocol.RunnerOffline))
	ids := func(q store.RunnerQuery) []string {
		rs, err := s.Runners(ctx, q)
		must(t, "runners", err)
		var out []string
		for _, r := range rs {
			out = append(out, r.ID)
		}
		return out
	}
	for _, tt := range []struct {
		q    store.RunnerQuery
		want []string
	}{
		{store.RunnerQuery{}, []string{"a-1", "b-2", "c-3"}},
		{store.RunnerQuery{Status: protocol.RunnerOnline}, []string{"a-1", "c-3"}},
		{store.RunnerQuery{Status: protocol.RunnerOffline}, []string{"b-2"}},
		{store.RunnerQuery{Limit: 2}, []string{"a-1", "b-2"}},
	} {
		if got := ids(tt.q); !slices.Equal(got, tt.want) {
			t.Errorf("Runners(%+v) = %v, want %v", tt.q, got, tt.want)
		}
	}
}

func testMarkOffline(t *testing.T, s store.Store) {
	ctx := testContext(t)
	t0 := baseTime()
	for i, id := range []string{"old", "fresh", "revoked"} {
		_, err := s.RegisterRunner(ctx, runnerRecord(id, t0.Add(time.Duration(i)*10*time.Second)))
		must(t, "register", err)
	}
	must(t, "revoke", s.SetRunnerStatus(ctx, "revoked", protocol.RunnerRevoked))
	got, err := s.MarkOffline(ctx, t0.Add(5*time.Second))
	must(t, "mark offline", err)
	if !slices.Equal(got, []string{"old"}) {
		t.Fatalf("MarkOffline = %v, want [old]", got)
	}
	again, err := s.MarkOffline(ctx, t0.Add(5*time.Second))
	must(t, "mark offline again", err)
	if len(again) != 0 {
		t.Fatalf("second MarkOffline reported %v again", again)
	}
	r, err := s.Runner(ctx, "revoked")
	must(t, "runner", err)
	if r.Status != protocol.RunnerRevoked {
		t.Fatalf("revoked runner became %s", r.Status)
	}
}

// MarkOfflineRace registers runners stale runners through stores[0], then
// calls MarkOffline from racers goroutines spread over stores at once. It
// fails t unless every runner is reported by exactly one call.
func MarkOfflineRace(t *testing.T, stores []store.Store, runners, racers int) {
	t.Helper()
	ctx := testContext(t)
	for i := range runners {
		_, err := stores[0].RegisterRunner(ctx, runnerRecord(fmt.Sprintf("stale-%03d", i), baseTime()))
		must(t, "register", err)
	}
	results := make([][]string, racers)
	errs := make([]error, racers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range racers {
		s := stores[i%len(stores)]
		wg.Go(func() {
			<-start
			results[i], errs[i] = s.MarkOffline(ctx, baseTime().Add(time.Minute))
		})
	}
	close(start)
	wg.Wait()
	seen := map[string]int{}
	for i, ids := range results {
		must(t, fmt.Sprintf("racer %d", i), errs[i])
		for _, id := range ids {
			seen[id]++
		}
	}
	if len(seen) != runners {
		t.Errorf("%d of %d runners reported offline: %v", len(seen), runners, slices.Sorted(maps.Keys(seen)))
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("runner %s reported offline by %d calls, want exactly 1", id, n)
		}
	}
}
