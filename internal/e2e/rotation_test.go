package e2e

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/leashpki/leash/ca"
	"github.com/leashpki/leash/gateway/store"
	"github.com/leashpki/leash/internal/testenv"
	"github.com/leashpki/leash/internal/testharness"
	"github.com/leashpki/leash/protocol"
)

// TestRotationUnderLoad: with 30 s runner certificates the runner renews
// (at least twice in 50 s) while jobs run back to back, heartbeats keep
// coming and the job long-poll stays open. Zero requests may fail: every
// job succeeds and the runner never needs a second session (any failed
// register, heartbeat, event upload or poll would end the first).
func TestRotationUnderLoad(t *testing.T) {
	if testing.Short() && !testenv.InCI() { // CI always runs it
		t.Skip("50 s of rotation; run without -short (under CI=true it always runs)")
	}
	forEachStore(t, func(t *testing.T, opts testharness.Options) {
		opts.RunnerLifetime = 30 * time.Second
		h := testharness.New(t, opts)
		gw := h.StartGateway(t)
		r := h.StartRunner(t, gw, "busy-1", testharness.RunnerOptions{Commands: map[string][]string{"true": {"true"}}})
		op := h.Client(t, ca.ProfileOperator, "alice")
		testharness.Eventually(t, 10*time.Second, "registered", func() bool { return r.Agent.Sessions() == 1 })

		serials := map[string]bool{r.Agent.Certificate().SerialNumber.String(): true}
		deadline := time.Now().Add(50 * time.Second)
		jobs, failed := 0, 0
		for time.Now().Before(deadline) {
			kind := protocol.JobInfo
			if jobs%2 == 1 {
				kind = protocol.JobExec
			}
			j := waitJob(t, op, gw, submit(t, op, gw, protocol.JobSubmit{Runner: "busy-1", Kind: kind, Command: map[bool]string{true: "true"}[kind == protocol.JobExec]}).ID)
			jobs++
			if j.State != protocol.JobSucceeded || j.Attempts != 1 {
				failed++
				t.Errorf("job %s: state %s attempts %d result %+v", j.ID, j.State, j.Attempts, j.Result)
			}
			serials[r.Agent.Certificate().SerialNumber.String()] = true
		}
		// Renewal at 2/3 of 30 s ± 10 %: the 2nd and 3rd certificates
		// arrive at about 20 s and 40 s, a 4th at the earliest at 54 s.
		if len(serials) != 3 {
			t.Fatalf("saw %d certificates in 50 s with a 30 s lifetime; want 3 (renewal at ~2/3 of the lifetime)", len(serials))
		}
		if s := r.Agent.Sessions(); s != 1 {
			t.Errorf("runner needed %d sessions; a request failed during rotation", s)
		}
		if exited, err := r.Exited(0); exited {
			t.Fatalf("runner stopped: %v", err)
		}
		evs, err := h.Store.Events(context.Background(), store.EventQuery{RunnerID: "busy-1", Limit: 100000})
		if err != nil {
			t.Fatal(err)
		}
		renewed := 0
		for _, e := range evs {
			switch {
			case e.Kind == protocol.EventRotation && e.Level == "info":
				renewed++
			case e.Kind == protocol.EventConnection && e.Level != "info", e.Level == "error":
				t.Errorf("unexpected event: %+v", e)
			}
		}
		if renewed < 2 {
			t.Errorf("%d rotation events; want at least 2", renewed)
		}
		renewals, err := h.Store.AuditLog(context.Background(), store.AuditQuery{Action: "renew", Target: "busy-1"})
		if err != nil || len(renewals) != len(serials)-1 {
			t.Errorf("%d renew audit rows for %d renewals (%v)", len(renewals), len(serials)-1, err)
		}
		var rn protocol.Runner
		op.Do(t, http.MethodGet, gw.APIURL+"/v1/runners/busy-1", nil, &rn)
		if rn.Status != protocol.RunnerOnline || !serials[rn.CertSerial] {
			t.Errorf("runner record after rotation: %+v", rn)
		}
		t.Logf("%d jobs, %d failed, %d certificates, %d sessions", jobs, failed, len(serials), r.Agent.Sessions())
	})
}
