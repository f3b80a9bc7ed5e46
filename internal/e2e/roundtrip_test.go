package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/leashpki/leash/ca"
	"github.com/leashpki/leash/gateway/store"
	"github.com/leashpki/leash/internal/testharness"
	"github.com/leashpki/leash/protocol"
)

// TestRoundTrip: enroll → register → heartbeat → event → job round trip.
func TestRoundTrip(t *testing.T) {
	forEachStore(t, func(t *testing.T, opts testharness.Options) {
		h := testharness.New(t, opts)
		gw := h.StartGateway(t)
		r := h.StartRunner(t, gw, "web-1", testharness.RunnerOptions{
			Commands: map[string][]string{"hello": {"sh", "-c", "echo hello; echo oops >&2"}},
			Labels:   map[string]string{"env": "test"}})
		op := h.Client(t, ca.ProfileOperator, "alice")

		var rn protocol.Runner
		testharness.Eventually(t, 20*time.Second, "runner web-1 online with a heartbeat", func() bool {
			status := op.Do(t, http.MethodGet, gw.APIURL+"/v1/runners/web-1", nil, &rn)
			return status == http.StatusOK && rn.Status == protocol.RunnerOnline && rn.MemTotalBytes > 0
		})
		if rn.CertSerial != r.Agent.Certificate().SerialNumber.String() || rn.Labels["env"] != "test" || rn.OS == "" {
			t.Errorf("runner record %+v does not match the runner (serial %s)", rn, r.Agent.Certificate().SerialNumber)
		}

		job := submit(t, op, gw, protocol.JobSubmit{Runner: "web-1", Kind: protocol.JobExec, Command: "hello"})
		done := waitJob(t, op, gw, job.ID)
		if done.State != protocol.JobSucceeded || done.Result == nil || done.Result.Output != "hello\noops\n" && done.Result.Output != "oops\nhello\n" {
			t.Fatalf("exec job: %+v result %+v", done, done.Result)
		}
		info := waitJob(t, op, gw, submit(t, op, gw, protocol.JobSubmit{Runner: "web-1", Kind: protocol.JobInfo}).ID)
		var hi protocol.HostInfo
		if info.Result == nil || json.Unmarshal(info.Result.Data, &hi) != nil || hi.CPUs == 0 || len(hi.Commands) != 1 {
			t.Fatalf("info job: %+v", info.Result)
		}
		undeclared := waitJob(t, op, gw, submit(t, op, gw, protocol.JobSubmit{Runner: "web-1", Kind: protocol.JobExec, Command: "rm-rf"}).ID)
		if undeclared.State != protocol.JobFailed {
			t.Fatalf("an undeclared command ran: %+v", undeclared.Result)
		}

		// The job's life is in the audit log, each row naming who did it.
		rows, err := h.Store.AuditLog(context.Background(), store.AuditQuery{Target: job.ID})
		if err != nil {
			t.Fatal(err)
		}
		actors := map[string]string{}
		for _, a := range rows {
			actors[a.Action] = a.Actor
		}
		for action, actor := range map[string]string{"job.submit": "operator/alice", "job.claim": "runner/web-1", "job.finish": "runner/web-1"} {
			if !strings.Contains(actors[action], actor) {
				t.Errorf("audit %s by %q; want an actor naming %s (rows %+v)", action, actors[action], actor, rows)
			}
		}

		// Output streamed back as events, and the connection was reported.
		testharness.Eventually(t, 10*time.Second, "job output and connection events stored", func() bool {
			evs, err := h.Store.Events(context.Background(), store.EventQuery{RunnerID: "web-1"})
			if err != nil {
				t.Fatal(err)
			}
			var out, conn bool
			for _, e := range evs {
				out = out || e.Kind == protocol.EventJobOutput && e.JobID == job.ID && e.Data == "hello" && e.Stream == "stdout"
				conn = conn || e.Kind == protocol.EventConnection
			}
			return out && conn
		})
	})
}

func submit(t *testing.T, op *testharness.Client, gw *testharness.Gateway, js protocol.JobSubmit) protocol.Job {
	t.Helper()
	var job protocol.Job
	if status := op.Do(t, http.MethodPost, gw.APIURL+"/v1/jobs", js, &job); status != http.StatusCreated {
		t.Fatalf("submit %+v: status %d", js, status)
	}
	return job
}

func waitJob(t *testing.T, op *testharness.Client, gw *testharness.Gateway, id string) protocol.Job {
	t.Helper()
	var job protocol.Job
	testharness.Eventually(t, 30*time.Second, "job "+id+" finished", func() bool {
		op.Do(t, http.MethodGet, gw.APIURL+"/v1/jobs/"+id, nil, &job)
		return job.State == protocol.JobSucceeded || job.State == protocol.JobFailed
	})
	return job
}
