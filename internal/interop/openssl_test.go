package interop

import (
	"context"
	"strings"
	"testing"

	"github.com/leashpki/leash/ca"
	"github.com/leashpki/leash/internal/testenv"
)

// TestOpenSSLVerify: openssl accepts every minted certificate for its own
// purpose with the right chain, refuses it for the other purpose, and sees
// the SANs and EKUs each profile promises.
func TestOpenSSLVerify(t *testing.T) {
	openssl := testenv.RequireTool(t, "openssl", "openssl")
	p := newPKI(t, "Interop")
	for _, tc := range []struct {
		name     string
		req      ca.IssueRequest
		purpose  string // accepted
		refused  string // refused purpose
		sans     []string
		eku      string
		notInEKU string
	}{
		{"server", ca.IssueRequest{Profile: "server", Hosts: []string{"gw.example.com", "10.1.2.3", "::1"}},
			"sslserver", "sslclient", []string{"DNS:gw.example.com", "IP Address:10.1.2.3", "IP Address:0:0:0:0:0:0:0:1"},
			"TLS Web Server Authentication", "Client"},
		{"runner", ca.IssueRequest{Profile: "runner", Name: "web-1"},
			"sslclient", "sslserver", []string{"URI:leash://runner/web-1"}, "TLS Web Client Authentication", "Server"},
		{"operator", ca.IssueRequest{Profile: "operator", Name: "alice"},
			"sslclient", "sslserver", []string{"URI:leash://operator/alice"}, "TLS Web Client Authentication", "Server"},
		{"prometheus", ca.IssueRequest{Profile: "prometheus", Name: "prom"},
			"sslclient", "sslserver", []string{"URI:leash://prometheus/prom"}, "TLS Web Client Authentication", "Server"},
		{"ui-proxy", ca.IssueRequest{Profile: "ui-proxy", Name: "nginx"},
			"sslclient", "sslserver", []string{"URI:leash://ui-proxy/nginx"}, "TLS Web Client Authentication", "Server"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := p.issue(t, tc.name, tc.req)
			verify := func(purpose string, extra ...string) (string, error) {
				args := append([]string{"verify", "-CAfile", p.path("root.pem"), "-untrusted", p.path("intermediate.pem"),
					"-purpose", purpose}, extra...)
				return run(t, openssl, append(args, l.crt)...)
			}
			out, err := verify(tc.purpose)
			if err != nil || !strings.HasSuffix(out, ": OK") {
				t.Fatalf("openssl verify -purpose %s: %v\n%s", tc.purpose, err, out)
			}
			out, err = verify(tc.refused)
			if err == nil || !strings.Contains(out, "unsuitable certificate purpose") {
				t.Fatalf("openssl verify -purpose %s did not refuse a %s certificate for the purpose: %v\n%s", tc.refused, tc.name, err, out)
			}
			// Without the intermediate the chain is incomplete.
			out, err = run(t, openssl, "verify", "-CAfile", p.path("root.pem"), "-purpose", tc.purpose, l.crt)
			if err == nil {
				t.Fatalf("verified without the intermediate:\n%s", out)
			}
			text, err := run(t, openssl, "x509", "-in", l.crt, "-noout", "-ext", "subjectAltName,extendedKeyUsage,basicConstraints")
			if err != nil {
				t.Fatalf("openssl x509: %v\n%s", err, text)
			}
			for _, s := range tc.sans {
				if !strings.Contains(text, s) {
					t.Errorf("SAN %q missing:\n%s", s, text)
				}
			}
			if !strings.Contains(text, tc.eku) || strings.Contains(text, tc.notInEKU+" Authentication") {
				t.Errorf("EKU: want only %q:\n%s", tc.eku, text)
			}
			if !strings.Contains(text, "CA:FALSE") {
				t.Errorf("leaf is not CA:FALSE:\n%s", text)
			}
		})
	}
}

// TestOpenSSLCRL: openssl accepts the CA's CRL signature and, with
// -crl_check, refuses a revoked certificate while accepting a good one.
func TestOpenSSLCRL(t *testing.T) {
	openssl := testenv.RequireTool(t, "openssl", "openssl")
	p := newPKI(t, "Interop CRL")
	good := p.issue(t, "good", ca.IssueRequest{Profile: "runner", Name: "good"})
	bad := p.issue(t, "bad", ca.IssueRequest{Profile: "runner", Name: "bad"})
	if _, err := p.auth.Revoke(context.Background(), bad.cert.SerialNumber.String(), ca.ReasonKeyCompromise, ""); err != nil {
		t.Fatal(err)
	}
	crl, err := p.auth.CRL(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	crlPath := p.write(t, "crl.pem", crl.PEM(), 0o644)
	out, err := run(t, openssl, "crl", "-in", crlPath, "-CAfile", p.path("intermediate.pem"), "-noout", "-verify")
	if err != nil || !strings.Contains(out, "verify OK") {
		t.Fatalf("openssl crl -verify: %v\n%s", err, out)
	}
	check := func(l *leaf) (string, error) {
		return run(t, openssl, "verify", "-CAfile", p.path("root.pem"), "-untrusted", p.path("intermediate.pem"),
			"-crl_check", "-CRLfile", crlPath, "-purpose", "sslclient", l.crt)
	}
	if out, err := check(good); err != nil {
		t.Fatalf("good certificate with CRL check: %v\n%s", err, out)
	}
	if out, err := check(bad); err == nil || !strings.Contains(out, "certificate revoked") {
		t.Fatalf("revoked certificate passed the CRL check: %v\n%s", err, out)
	}
}
