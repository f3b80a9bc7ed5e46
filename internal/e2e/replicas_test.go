package e2e

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/leashpki/leash/ca"
	"github.com/leashpki/leash/gateway/store"
	"github.com/leashpki/leash/internal/enroll"
	"github.com/leashpki/leash/internal/testharness"
	"github.com/leashpki/leash/protocol"
)

// TestGatewayRestart: runners reconnect by themselves after the gateway
// restarts on the same address, and jobs flow again. The stop closes
// every tunnel, so each runner opens a new one. It need not register
// again: a long-poll that the stopping gateway answered is simply sent
// again, and may reach the new gateway without any error.
func TestGatewayRestart(t *testing.T) {
	forEachStore(t, func(t *testing.T, opts testharness.Options) {
		h := testharness.New(t, opts)
		gw := h.StartGateway(t)
		var runners []*testharness.Runner
		for _, name := range []string{"r-1", "r-2", "r-3"} {
			runners = append(runners, h.StartRunner(t, gw, name))
		}
		op := h.Client(t, ca.ProfileOperator, "alice")
		for _, r := range runners {
			testharness.Eventually(t, 10*time.Second, r.Name+" connected", func() bool {
				return r.Agent.Sessions() == 1 && r.Agent.Tunnels() == 1
			})
		}
		gw = h.Restart(t, gw)
		// The stopped gateway waited for its tunnels' handlers, which write
		// the closing audit rows.
		rows, err := h.Store.AuditLog(context.Background(), store.AuditQuery{Action: "tunnel.close", Limit: 10})
		if err != nil || len(rows) != len(runners) {
			t.Fatalf("tunnel.close audit rows after the stop: %d (%v), want %d", len(rows), err, len(runners))
		}
		for _, r := range runners {
			testharness.Eventually(t, 20*time.Second, r.Name+" reconnected", func() bool { return r.Agent.Tunnels() >= 2 })
			j := waitJob(t, op, gw, submit(t, op, gw, protocol.JobSubmit{Runner: r.Name, Kind: protocol.JobInfo}).ID)
			if j.State != protocol.JobSucceeded {
				t.Fatalf("%s after restart: %+v", r.Name, j)
			}
		}
	})
}

// TestTwoGateways: two replicas on one store. A token spent on one is
// refused on the other, and a job submitted on one reaches a runner
// long-polling the other. A runner's tunnel serves through the replica
// that holds it only (docs/protocol.md, "Tunnel"): a session through the
// other one is refused with 503, not sent anywhere.
func TestTwoGateways(t *testing.T) {
	forEachStore(t, func(t *testing.T, opts testharness.Options) {
		h := testharness.New(t, opts)
		gw1 := h.StartGateway(t, testharness.GatewayOptions{ID: "gw-1"})
		gw2 := h.StartGateway(t, testharness.GatewayOptions{ID: "gw-2"})
		// The embedded CA's server certificate is managed by certmagic in
		// the shared store: the second replica serves the first one's.
		if s1, s2 := serverSerial(t, h, gw1), serverSerial(t, h, gw2); s1 != s2 {
			t.Errorf("replicas serve different server certificates: %s and %s", s1, s2)
		}
		token := h.Token(t, "shared")
		first := h.StartRunner(t, gw1, "shared", testharness.RunnerOptions{Token: token})
		testharness.Eventually(t, 10*time.Second, "enrolled on gw-1", func() bool { return first.Agent.Certificate() != nil })
		replay := h.StartRunner(t, gw2, "shared", testharness.RunnerOptions{Token: token})
		if exited, err := replay.Exited(20 * time.Second); !exited || !errors.Is(err, enroll.ErrRefused) {
			t.Fatalf("token replayed on gw-2: exited=%v err=%v; want enroll.ErrRefused", exited, err)
		}

		far := h.StartRunner(t, gw2, "far", testharness.RunnerOptions{SessionPorts: []int{22}})
		op1 := h.Client(t, ca.ProfileOperator, "alice")
		testharness.Eventually(t, 10*time.Second, "far long-polling gw-2 with its tunnel", func() bool {
			return far.Agent.Sessions() == 1 && far.Agent.Tunnels() == 1 &&
				op1.Do(t, http.MethodGet, gw2.APIURL+"/v1/runners/far", nil, nil) == http.StatusOK
		})
		for gw, want := range map[*testharness.Gateway]int{gw1: http.StatusServiceUnavailable, gw2: http.StatusOK} {
			status, answer, err := op1.Raw(http.MethodPost, gw.APIURL+"/v1/tunnel/connect", "application/json", `{"runner":"far","ports":[22]}`)
			if err != nil || status != want {
				t.Errorf("session to far through %s: %d %s %v, want %d", gw.APIURL, status, answer, err, want)
			}
		}
		start := time.Now()
		j := waitJob(t, op1, gw1, submit(t, op1, gw1, protocol.JobSubmit{Runner: "far", Kind: protocol.JobInfo}).ID)
		if j.State != protocol.JobSucceeded {
			t.Fatalf("job submitted on gw-1 for a runner on gw-2: %+v", j)
		}
		t.Logf("cross-replica job done in %s", time.Since(start))
	})
}

// serverSerial returns the serial of the certificate gw presents to a
// client that connects to 127.0.0.1.
func serverSerial(t *testing.T, h *testharness.Harness, gw *testharness.Gateway) string {
	t.Helper()
	c := h.Client(t, ca.ProfileOperator, "probe")
	conn, err := tls.Dial("tcp", strings.TrimPrefix(gw.APIURL, "https://"), c.TLS)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	leaf := conn.ConnectionState().PeerCertificates[0]
	if len(leaf.IPAddresses) != 1 || leaf.IPAddresses[0].String() != "127.0.0.1" {
		t.Errorf("server certificate for 127.0.0.1 names %v %v", leaf.DNSNames, leaf.IPAddresses)
	}
	return leaf.SerialNumber.String()
}
