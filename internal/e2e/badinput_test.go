package e2e

import (
	"context"
	"crypto/tls"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/leashpki/leash/ca"
	"github.com/leashpki/leash/gateway"
	"github.com/leashpki/leash/gateway/store"
	"github.com/leashpki/leash/internal/testharness"
	"github.com/leashpki/leash/protocol"
)

// TestBadInput: every malformed request gets a clear 4xx with a protocol
// error body, and nothing is stored half-way.
func TestBadInput(t *testing.T) {
	h := testharness.New(t, testharness.Options{})
	gw := h.StartGateway(t)
	known := fakeRunner(t, h, gw, "known")
	stranger := h.Client(t, ca.ProfileRunner, "stranger") // valid cert, never registered
	op := h.Client(t, ca.ProfileOperator, "alice")
	big := strings.Repeat("x", protocol.MaxBodyBytes+1)
	goodEvent := `{"kind":"log","message":"fine"}`

	tests := []struct {
		name        string
		c           *testharness.Client
		method      string
		path        string
		contentType string
		body        string
		status      int
		code        string
	}{
		{"oversized register", known, "POST", "/v1/register", "application/json", `{"hostname":"` + big + `"}`, 413, protocol.CodeTooLarge},
		{"malformed json", known, "POST", "/v1/heartbeat", "application/json", `{"load1": 0.5`, 400, protocol.CodeBadRequest},
		{"unknown field", known, "POST", "/v1/heartbeat", "application/json", `{"load1": 0.5, "root": true}`, 400, protocol.CodeBadRequest},
		{"trailing data", known, "POST", "/v1/heartbeat", "application/json", `{"load1": 0.5} {"load1": 1}`, 400, protocol.CodeBadRequest},
		{"wrong type", known, "POST", "/v1/heartbeat", "application/json", `{"load1": "high"}`, 400, protocol.CodeBadRequest},
		{"wrong content type", known, "POST", "/v1/heartbeat", "text/plain", `{"load1": 0.5}`, 415, protocol.CodeUnsupportedMedia},
		{"json sent as events", known, "POST", "/v1/events", "application/json", goodEvent, 415, protocol.CodeUnsupportedMedia},
		{"negative load", known, "POST", "/v1/heartbeat", "application/json", `{"load1": -1}`, 400, protocol.CodeBadRequest},
		{"heartbeat of an unknown runner", stranger, "POST", "/v1/heartbeat", "application/json", `{"load1": 0.5}`, 404, protocol.CodeUnknownRunner},
		{"events of an unknown runner", stranger, "POST", "/v1/events", "application/x-ndjson", goodEvent, 404, protocol.CodeUnknownRunner},
		{"one bad event line", known, "POST", "/v1/events", "application/x-ndjson", goodEvent + "\n" + `{"kind":"nonsense"}` + "\n", 400, protocol.CodeBadRequest},
		{"event line too long", known, "POST", "/v1/events", "application/x-ndjson", goodEvent + "\n" + `{"kind":"log","data":"` + strings.Repeat("y", protocol.MaxEventLineBytes) + `"}`, 413, protocol.CodeTooLarge},
		{"register without hostname", known, "POST", "/v1/register", "application/json", `{"os":"linux"}`, 400, protocol.CodeBadRequest},
		{"wait too long", known, "GET", "/v1/jobs/next?wait=1h", "", "", 400, protocol.CodeBadRequest},
		{"submit for nobody", op, "POST", "/v1/jobs", "application/json", `{"runner":"","kind":"info"}`, 400, protocol.CodeBadRequest},
		{"submit unknown kind", op, "POST", "/v1/jobs", "application/json", `{"runner":"known","kind":"shell"}`, 400, protocol.CodeBadRequest},
		{"unknown route", op, "GET", "/v1/nothing", "", "", 404, protocol.CodeNotFound},
		{"path tricks", op, "GET", "/v1/runners/../../etc/passwd", "", "", 404, protocol.CodeNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body any
			if tt.body != "" {
				body = tt.body
			}
			status, answer, err := tt.c.Raw(tt.method, gw.APIURL+tt.path, tt.contentType, body)
			if err != nil {
				t.Fatal(err)
			}
			if status != tt.status || !strings.Contains(string(answer), `"code":"`+tt.code+`"`) {
				t.Fatalf("status %d body %s; want %d with code %s", status, answer, tt.status, tt.code)
			}
		})
	}

	// The enrollment listener serves enrollment and nothing else.
	for _, path := range []string{"/v1/runners", "/v1/health", "/metrics", "/v1/jobs/next"} {
		status, _, err := op.Raw("GET", gw.EnrollURL+path, "", nil)
		if err != nil || status != 404 {
			t.Errorf("enrollment listener GET %s: %d %v; want 404", path, status, err)
		}
	}

	// Nothing half-stored: only the runner "known" exists, with no events,
	// and the failed heartbeats did not touch it.
	runners, err := h.Store.Runners(context.Background(), store.RunnerQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(runners) != 1 || runners[0].ID != "known" || runners[0].Load1 != 0 {
		t.Errorf("runners after bad input: %+v", runners)
	}
	evs, err := h.Store.Events(context.Background(), store.EventQuery{RunnerID: "known"})
	if err != nil || len(evs) != 0 {
		t.Errorf("events stored from refused batches: %v %+v", err, evs)
	}
	jobs, err := h.Store.Jobs(context.Background(), store.JobQuery{})
	if err != nil || len(jobs) != 0 {
		t.Errorf("jobs stored from refused submissions: %v %+v", err, jobs)
	}
}

// TestSlowlorisHeaders: a client that trickles its request headers is cut
// off after the read-header timeout instead of holding a connection.
func TestSlowlorisHeaders(t *testing.T) {
	h := testharness.New(t, testharness.Options{Gateway: func(c *gateway.Config) { c.ReadHeaderTimeout = time.Second }})
	gw := h.StartGateway(t)
	c := h.Client(t, ca.ProfileOperator, "slow")
	conn, err := tls.Dial("tcp", strings.TrimPrefix(gw.APIURL, "https://"), c.TLS)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	start := time.Now()
	if _, err := io.WriteString(conn, "GET /v1/health HTTP/1.1\r\nHost: x\r\n"); err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, conn)
		closed <- err
	}()
	tick := time.NewTicker(300 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-closed:
			if d := time.Since(start); d > 3*time.Second {
				t.Fatalf("slow headers held the connection for %s with a 1s read-header timeout", d)
			}
			return
		case <-tick.C:
			// One more header byte, never the end of the headers.
			_, _ = io.WriteString(conn, "X")
		case <-time.After(5 * time.Second):
			t.Fatal("connection still open after 5s of trickled headers")
		}
	}
}
