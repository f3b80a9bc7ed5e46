package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/leashpki/leash/gateway/store"
	"github.com/leashpki/leash/protocol"
)

func jobRecord(id, runner string, created time.Time) store.JobRecord {
	return store.JobRecord{ID: id, Runner: runner, Kind: protocol.JobExec, Command: "uptime",
		Timeout: 90 * time.Second, SubmittedBy: "leash://operator/alice", CreatedAt: created}
}

func testJobSubmitClaimFinish(t *testing.T, s store.Store) {
	ctx := testContext(t)
	t0 := baseTime()
	must(t, "submit", s.SubmitJob(ctx, jobRecord("j1", "web-1", t0)))
	wantErr(t, "duplicate submit", s.SubmitJob(ctx, jobRecord("j1", "web-2", t0)), store.ErrExists)
	wantErr(t, "finish unclaimed", s.FinishJob(ctx, "j1", "web-1", protocol.JobSucceeded, nil, t0), store.ErrConflict)

	claimedAt, lease := t0.Add(time.Second), t0.Add(time.Minute)
	j, err := s.ClaimJob(ctx, "web-1", claimedAt, lease)
	must(t, "claim", err)
	var d differ
	field(&d, "id", j.ID, "j1")
	field(&d, "state", j.State, protocol.JobRunning)
	field(&d, "attempts", j.Attempts, 1)
	field(&d, "command", j.Command, "uptime")
	field(&d, "timeout", j.Timeout, 90*time.Second)
	field(&d, "submitted_by", j.SubmittedBy, "leash://operator/alice")
	d.time("created", j.CreatedAt, t0)
	d.time("claimed", j.ClaimedAt, claimedAt)
	d.time("lease", j.LeaseUntil, lease)
	d.report(t, "claimed job")
	_, err = s.ClaimJob(ctx, "web-1", claimedAt, lease)
	wantErr(t, "claim with nothing queued", err, store.ErrNotFound)

	result := []byte(`{"ok":true,"exit_code":0,"output":"up 3 days"}`)
	wantErr(t, "finish by another runner", s.FinishJob(ctx, "j1", "web-2", protocol.JobSucceeded, []byte("x"), t0), store.ErrConflict)
	wantErr(t, "finish unknown", s.FinishJob(ctx, "nope", "web-1", protocol.JobSucceeded, nil, t0), store.ErrNotFound)
	if err := s.FinishJob(ctx, "j1", "web-1", "done", nil, t0); err == nil {
		t.Fatal("a non-final state was accepted")
	}
	done := t0.Add(2 * time.Second)
	must(t, "finish", s.FinishJob(ctx, "j1", "web-1", protocol.JobSucceeded, result, done))
	wantErr(t, "finish twice", s.FinishJob(ctx, "j1", "web-1", protocol.JobFailed, []byte("late"), t0), store.ErrConflict)
	got, err := s.Job(ctx, "j1")
	must(t, "job", err)
	d = differ{}
	field(&d, "state", got.State, protocol.JobSucceeded)
	d.bytes("result", got.Result, result)
	d.time("finished", got.FinishedAt, done)
	d.time("lease", got.LeaseUntil, time.Time{})
	d.report(t, "finished job")
	_, err = s.Job(ctx, "nope")
	wantErr(t, "unknown job", err, store.ErrNotFound)
}

func testJobClaimOrderAndOwnership(t *testing.T, s store.Store) {
	ctx := testContext(t)
	t0 := baseTime()
	must(t, "submit", s.SubmitJob(ctx, jobRecord("late", "web-1", t0.Add(2*time.Second))))
	must(t, "submit", s.SubmitJob(ctx, jobRecord("early", "web-1", t0)))
	must(t, "submit", s.SubmitJob(ctx, jobRecord("other", "web-2", t0.Add(-time.Hour))))
	var order []string
	for range 2 {
		j, err := s.ClaimJob(ctx, "web-1", t0, t0.Add(time.Minute))
		must(t, "claim", err)
		order = append(order, j.ID)
	}
	if !slices.Equal(order, []string{"early", "late"}) {
		t.Fatalf("claim order %v, want oldest first [early late]", order)
	}
	_, err := s.ClaimJob(ctx, "web-1", t0, t0.Add(time.Minute))
	wantErr(t, "web-1 claims web-2's job", err, store.ErrNotFound)
	other, err := s.Job(ctx, "other")
	must(t, "job", err)
	if other.State != protocol.JobQueued {
		t.Fatalf("web-2's job became %s after web-1's claims", other.State)
	}
}

func testJobLeaseExpiry(t *testing.T, s store.Store) {
	ctx := testContext(t)
	t0 := baseTime()
	must(t, "submit", s.SubmitJob(ctx, jobRecord("j1", "web-1", t0)))
	_, err := s.ClaimJob(ctx, "web-1", t0, t0.Add(30*time.Second))
	must(t, "claim", err)
	_, err = s.ClaimJob(ctx, "web-1", t0.Add(29*time.Second), t0.Add(time.Minute))
	wantErr(t, "claim while leased", err, store.ErrNotFound)
	j, err := s.ClaimJob(ctx, "web-1", t0.Add(31*time.Second), t0.Add(2*time.Minute))
	must(t, "claim after lease expiry", err)
	if j.ID != "j1" || j.Attempts != 2 || !j.LeaseUntil.Equal(t0.Add(2*time.Minute)) {
		t.Fatalf("re-claimed job = %+v, want j1 with 2 attempts and the new lease", j)
	}
	must(t, "finish second attempt", s.FinishJob(ctx, "j1", "web-1", protocol.JobFailed, []byte(`{"ok":false}`), t0.Add(40*time.Second)))
	_, err = s.ClaimJob(ctx, "web-1", t0.Add(time.Hour), t0.Add(2*time.Hour))
	wantErr(t, "claim a finished job", err, store.ErrNotFound)
}

func testJobList(t *testing.T, s store.Store) {
	ctx := testContext(t)
	t0 := baseTime()
	for i, r := range []string{"web-1", "web-2", "web-1"} {
		must(t, "submit", s.SubmitJob(ctx, jobRecord(fmt.Sprintf("j%d", i), r, t0.Add(time.Duration(i)*time.Second))))
	}
	_, err := s.ClaimJob(ctx, "web-1", t0.Add(time.Minute), t0.Add(2*time.Minute))
	must(t, "claim", err)
	ids := func(q store.JobQuery) []string {
		js, err := s.Jobs(ctx, q)
		must(t, "jobs", err)
		var out []string
		for _, j := range js {
			out = append(out, j.ID)
		}
		return out
	}
	for _, tt := range []struct {
		q    store.JobQuery
		want []string
	}{
		{store.JobQuery{}, []string{"j2", "j1", "j0"}},
		{store.JobQuery{Runner: "web-1"}, []string{"j2", "j0"}},
		{store.JobQuery{State: protocol.JobRunning}, []string{"j0"}},
		{store.JobQuery{Runner: "web-1", State: protocol.JobQueued}, []string{"j2"}},
		{store.JobQuery{Limit: 1}, []string{"j2"}},
	} {
		if got := ids(tt.q); !slices.Equal(got, tt.want) {
			t.Errorf("Jobs(%+v) = %v, want %v", tt.q, got, tt.want)
		}
	}
}

func testJobSignals(t *testing.T, s store.Store) {
	ctx := testContext(t)
	sub, cancel := contextWithCancel(ctx)
	ch, err := s.JobSignals(sub)
	must(t, "subscribe", err)
	must(t, "submit", s.SubmitJob(ctx, jobRecord("j1", "web-7", baseTime())))
	select {
	case got := <-ch:
		if got != "web-7" {
			t.Fatalf("signal for %q, want web-7", got)
		}
	case <-ctx.Done():
		t.Fatal("no signal for a submitted job")
	}
	cancel()
	for range ch { // drains, then ends when the store closes the channel
	}
}

// ClaimRace submits jobs jobs for one runner through stores[0], then claims
// from racers goroutines spread over stores until nothing is left. It fails
// t unless every job is claimed exactly once.
func ClaimRace(t *testing.T, stores []store.Store, jobs, racers int) {
	t.Helper()
	ctx := testContext(t)
	t0 := baseTime()
	for i := range jobs {
		must(t, "submit", stores[0].SubmitJob(ctx, jobRecord(fmt.Sprintf("race-%03d", i), "racer", t0.Add(time.Duration(i)))))
	}
	var mu sync.Mutex
	claims := map[string]int{}
	var failures []error
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range racers {
		s := stores[i%len(stores)]
		wg.Go(func() {
			<-start
			for {
				j, err := s.ClaimJob(ctx, "racer", t0.Add(time.Second), t0.Add(time.Hour))
				mu.Lock()
				switch {
				case err == nil:
					claims[j.ID]++
				case !errors.Is(err, store.ErrNotFound):
					failures = append(failures, err)
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	close(start)
	wg.Wait()
	for _, err := range failures {
		t.Errorf("claim: %v", err)
	}
	if len(claims) != jobs {
		t.Errorf("%d of %d jobs claimed", len(claims), jobs)
	}
	for id, n := range claims {
		if n != 1 {
			t.Errorf("job %s claimed %d times, want exactly once", id, n)
		}
	}
}
