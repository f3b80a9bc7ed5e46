package e2e

import (
	"net/http"
	"testing"
	"time"

	"github.com/leashpki/leash/ca"
	"github.com/leashpki/leash/internal/testharness"
	"github.com/leashpki/leash/protocol"
	leashtls "github.com/leashpki/leash/tls"
)

// TestPlainAndHTTPSModes: the FANGS modes below mTLS. Without client
// certificates the runner names itself in the Leash-Runner-Id header, and
// the whole round trip still works; in HTTPS mode the server is verified,
// in plain mode nothing is (loopback only, which the gateway enforces).
func TestPlainAndHTTPSModes(t *testing.T) {
	for _, mode := range []leashtls.Mode{leashtls.ModePlain, leashtls.ModeHTTPS} {
		t.Run(string(mode), func(t *testing.T) {
			h := testharness.New(t, testharness.Options{})
			gw := h.StartGateway(t, testharness.GatewayOptions{Mode: mode})
			opts := testharness.RunnerOptions{Commands: map[string][]string{"echo": {"echo", "ok"}}}
			if mode == leashtls.ModePlain {
				opts.NoToken = true // nothing to enroll for: no TLS at all
			}
			r := h.StartRunner(t, gw, "modal-1", opts)
			testharness.Eventually(t, 10*time.Second, "registered", func() bool { return r.Agent.Sessions() == 1 })
			if (r.Agent.Certificate() == nil) != (mode == leashtls.ModePlain) {
				t.Fatalf("runner certificate %v in %s mode", r.Agent.Certificate(), mode)
			}
			// An operator needs no certificate here: anyone who can reach
			// the port is the local operator.
			op := h.Anonymous(t)
			if mode == leashtls.ModeHTTPS {
				op = h.Client(t, ca.ProfileOperator, "alice") // presented, but HTTPS mode does not ask for it
			}
			j := waitJob(t, op, gw, submit(t, op, gw, protocol.JobSubmit{Runner: "modal-1", Kind: protocol.JobExec, Command: "echo"}).ID)
			if j.State != protocol.JobSucceeded || j.Result.Output != "ok\n" || j.SubmittedBy != "local-operator" {
				t.Fatalf("job in %s mode: %+v %+v", mode, j, j.Result)
			}
			var rn protocol.Runner
			if status := op.Do(t, http.MethodGet, gw.APIURL+"/v1/runners/modal-1", nil, &rn); status != http.StatusOK || rn.Status != protocol.RunnerOnline {
				t.Fatalf("runner in %s mode: %d %+v", mode, status, rn)
			}
		})
	}
}
