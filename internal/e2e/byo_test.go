package e2e

import (
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/leashpki/leash/ca"
	"github.com/leashpki/leash/internal/testharness"
	"github.com/leashpki/leash/protocol"
)

// TestBringYourOwnCertificates: a runner started FANGS style with
// -tls-ca/-tls-cert/-tls-key files registers and runs jobs without any
// enrollment, and picks up replaced files without a restart.
func TestBringYourOwnCertificates(t *testing.T) {
	h := testharness.New(t, testharness.Options{})
	gw := h.StartGateway(t)
	files := h.Client(t, ca.ProfileRunner, "byo-1")
	r := h.StartRunner(t, gw, "byo-1", testharness.RunnerOptions{TLSCA: files.CAFile, TLSCert: files.CertFile, TLSKey: files.KeyFile})
	op := h.Client(t, ca.ProfileOperator, "alice")
	testharness.Eventually(t, 10*time.Second, "registered", func() bool { return r.Agent.Sessions() == 1 })
	j := waitJob(t, op, gw, submit(t, op, gw, protocol.JobSubmit{Runner: "byo-1", Kind: protocol.JobInfo}).ID)
	if j.State != protocol.JobSucceeded {
		t.Fatalf("job on a bring-your-own runner: %+v", j)
	}
	if r.Agent.Certificate().SerialNumber.Cmp(files.Cert.SerialNumber) != 0 {
		t.Fatal("runner does not present the given certificate")
	}

	// The operator replaces the files (their own rotation); the runner
	// follows within its poll interval and keeps working.
	next := h.Client(t, ca.ProfileRunner, "byo-1")
	for src, dst := range map[string]string{next.KeyFile: files.KeyFile, next.CertFile: files.CertFile} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	testharness.Eventually(t, 15*time.Second, "replaced certificate in use", func() bool {
		return r.Agent.Certificate().SerialNumber.Cmp(next.Cert.SerialNumber) == 0
	})
	j = waitJob(t, op, gw, submit(t, op, gw, protocol.JobSubmit{Runner: "byo-1", Kind: protocol.JobInfo}).ID)
	var rn protocol.Runner
	op.Do(t, http.MethodGet, gw.APIURL+"/v1/runners/byo-1", nil, &rn)
	if j.State != protocol.JobSucceeded || r.Agent.Sessions() != 1 {
		t.Fatalf("after the file swap: job %s, %d sessions", j.State, r.Agent.Sessions())
	}
}
