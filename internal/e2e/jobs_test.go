package e2e

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/leashpki/leash/ca"
	"github.com/leashpki/leash/gateway"
	"github.com/leashpki/leash/gateway/store"
	"github.com/leashpki/leash/internal/testharness"
	"github.com/leashpki/leash/protocol"
)

// fakeRunner registers a runner-role client that speaks the API by hand,
// to hold leases, skip answers and try what a real runner never would.
func fakeRunner(t *testing.T, h *testharness.Harness, gw *testharness.Gateway, name string) *testharness.Client {
	t.Helper()
	c := h.Client(t, ca.ProfileRunner, name)
	reg := protocol.RegisterRequest{Hostname: name + ".test", OS: "linux", Arch: "amd64", Version: "fake"}
	if status := c.Do(t, http.MethodPost, gw.APIURL+"/v1/register", reg, nil); status != http.StatusOK {
		t.Fatalf("register %s: status %d", name, status)
	}
	return c
}

// TestRunnerIsolation: runner A can neither claim nor answer runner B's
// jobs, and operator routes refuse runners.
func TestRunnerIsolation(t *testing.T) {
	forEachStore(t, func(t *testing.T, opts testharness.Options) {
		h := testharness.New(t, opts)
		gw := h.StartGateway(t)
		a := fakeRunner(t, h, gw, "runner-a")
		b := fakeRunner(t, h, gw, "runner-b")
		op := h.Client(t, ca.ProfileOperator, "alice")
		job := submit(t, op, gw, protocol.JobSubmit{Runner: "runner-b", Kind: protocol.JobInfo})

		if status := a.Do(t, http.MethodGet, gw.APIURL+"/v1/jobs/next?wait=0s", nil, nil); status != http.StatusNoContent {
			t.Fatalf("runner A polled B's queue: status %d, want 204", status)
		}
		// Claiming to be B in a header changes nothing in mTLS mode.
		spoof, err := http.NewRequest(http.MethodGet, gw.APIURL+"/v1/jobs/next?wait=0s", nil)
		if err != nil {
			t.Fatal(err)
		}
		spoof.Header.Set(protocol.HeaderRunnerID, "runner-b")
		resp, err := a.HTTP.Do(spoof)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("runner A with a Leash-Runner-Id: runner-b header: status %d, want 204 (its own empty queue)", resp.StatusCode)
		}
		res := protocol.JobResult{OK: true, Output: "forged"}
		if status := a.Do(t, http.MethodPost, gw.APIURL+"/v1/jobs/"+job.ID+"/result", res, nil); status != http.StatusConflict {
			t.Fatalf("runner A answered B's queued job: status %d, want 409", status)
		}
		var claimed protocol.Job
		if status := b.Do(t, http.MethodGet, gw.APIURL+"/v1/jobs/next?wait=5s", nil, &claimed); status != http.StatusOK || claimed.ID != job.ID {
			t.Fatalf("runner B claim: status %d job %+v", status, claimed)
		}
		if status := a.Do(t, http.MethodPost, gw.APIURL+"/v1/jobs/"+job.ID+"/result", res, nil); status != http.StatusConflict {
			t.Fatalf("runner A answered B's running job: status %d, want 409", status)
		}
		var got protocol.Job
		op.Do(t, http.MethodGet, gw.APIURL+"/v1/jobs/"+job.ID, nil, &got)
		if got.State != protocol.JobRunning || got.Result != nil {
			t.Fatalf("job changed by another runner: %+v", got)
		}
		for _, route := range []string{"/v1/runners", "/v1/jobs", "/v1/runners/runner-b"} {
			if status := a.Do(t, http.MethodGet, gw.APIURL+route, nil, nil); status != http.StatusForbidden {
				t.Errorf("runner GET %s: status %d, want 403", route, status)
			}
		}
		if status := op.Do(t, http.MethodGet, gw.APIURL+"/v1/jobs/next?wait=0s", nil, nil); status != http.StatusForbidden {
			t.Errorf("operator polled jobs: status %d, want 403", status)
		}
	})
}

// TestLeaseExpiryRequeues: a job whose runner never answers goes back to
// the queue when its lease ends; the late answer of the first attempt is
// refused, the second attempt's is kept.
func TestLeaseExpiryRequeues(t *testing.T) {
	forEachStore(t, func(t *testing.T, opts testharness.Options) {
		opts.Gateway = func(c *gateway.Config) { c.JobLease = time.Second }
		h := testharness.New(t, opts)
		gw := h.StartGateway(t)
		r := fakeRunner(t, h, gw, "slow")
		op := h.Client(t, ca.ProfileOperator, "alice")
		job := submit(t, op, gw, protocol.JobSubmit{Runner: "slow", Kind: protocol.JobInfo})

		var first, second protocol.Job
		if status := r.Do(t, http.MethodGet, gw.APIURL+"/v1/jobs/next?wait=5s", nil, &first); status != http.StatusOK || first.Attempts != 1 {
			t.Fatalf("first claim: status %d %+v", status, first)
		}
		// The long-poll returns the job again once the lease has expired.
		start := time.Now()
		if status := r.Do(t, http.MethodGet, gw.APIURL+"/v1/jobs/next?wait=10s", nil, &second); status != http.StatusOK ||
			second.ID != job.ID || second.Attempts != 2 {
			t.Fatalf("second claim after lease expiry: status %d %+v", status, second)
		}
		if waited := time.Since(start); waited > 5*time.Second {
			t.Errorf("re-queue took %s with a 1s lease", waited)
		}
		ok := protocol.JobResult{OK: true}
		if status := r.Do(t, http.MethodPost, gw.APIURL+"/v1/jobs/"+job.ID+"/result", ok, nil); status != http.StatusNoContent {
			t.Fatalf("result of the live attempt: status %d", status)
		}
		if status := r.Do(t, http.MethodPost, gw.APIURL+"/v1/jobs/"+job.ID+"/result", ok, nil); status != http.StatusConflict {
			t.Fatalf("second result for a finished job: status %d, want 409", status)
		}
		var got protocol.Job
		op.Do(t, http.MethodGet, gw.APIURL+"/v1/jobs/"+job.ID, nil, &got)
		if got.State != protocol.JobSucceeded || got.Attempts != 2 {
			t.Fatalf("job after re-queue: %+v", got)
		}
	})
}

// TestOfflineDetection: a runner that stops heartbeating is offline after
// OfflineAfter, audited, and online again when it comes back.
func TestOfflineDetection(t *testing.T) {
	forEachStore(t, func(t *testing.T, opts testharness.Options) {
		h := testharness.New(t, opts)
		gw := h.StartGateway(t)
		r := h.StartRunner(t, gw, "edge-1")
		op := h.Client(t, ca.ProfileOperator, "alice")
		status := func() string {
			var rn protocol.Runner
			op.Do(t, http.MethodGet, gw.APIURL+"/v1/runners/edge-1", nil, &rn)
			return rn.Status
		}
		testharness.Eventually(t, 10*time.Second, "online", func() bool { return status() == protocol.RunnerOnline })
		if err := r.Stop(t); err != nil {
			t.Fatal(err)
		}
		stopped := time.Now()
		testharness.Eventually(t, 15*time.Second, "offline", func() bool { return status() == protocol.RunnerOffline })
		// OfflineAfter is 3s in the harness; the detector may add a period.
		if d := time.Since(stopped); d < 2*time.Second {
			t.Errorf("offline after only %s; OfflineAfter is 3s", d)
		}
		h.StartRunner(t, gw, "edge-1", testharness.RunnerOptions{StateDir: r.StateDir, NoToken: true})
		testharness.Eventually(t, 10*time.Second, "online again", func() bool { return status() == protocol.RunnerOnline })
		// The status changes before the handler writes its audit rows, so
		// the rows are waited for, not read once.
		seen := map[string]bool{}
		testharness.Eventually(t, 5*time.Second, "enroll, register, offline and online audit rows", func() bool {
			rows, err := h.Store.AuditLog(context.Background(), auditQuery("edge-1"))
			if err != nil {
				t.Fatal(err)
			}
			clear(seen)
			for _, a := range rows {
				seen[a.Action] = true
			}
			return seen["enroll"] && seen["register"] && seen["offline"] && seen["online"]
		})
	})
}

func auditQuery(target string) store.AuditQuery { return store.AuditQuery{Target: target, Limit: 1000} }
