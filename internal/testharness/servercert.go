package testharness

import (
	"context"
	"crypto"
	"os"
	"path/filepath"
	"testing"

	"github.com/leashpki/leash/ca"
)

// ServerCert issues a server certificate for hosts from the harness CA
// and writes the chain and key as PEM files (for nginx, say).
func (h *Harness) ServerCert(t testing.TB, hosts ...string) (certFile, keyFile string) {
	t.Helper()
	_, _, certFile, keyFile = h.issueToFiles(t, ca.IssueRequest{Profile: ca.ProfileServer, Hosts: hosts}, "server")
	return certFile, keyFile
}

// issueToFiles issues req (its CSR made here, for a new P-256 key) and
// writes the chain and the key as PEM files base.crt and base.key in a
// fresh temporary directory.
func (h *Harness) issueToFiles(t testing.TB, req ca.IssueRequest, base string) (crypto.Signer, *ca.Issued, string, string) {
	t.Helper()
	key, err := ca.KeyECP256.Generate()
	if err != nil {
		t.Fatal(err)
	}
	if req.CSR, err = ca.NewCSR(key); err != nil {
		t.Fatal(err)
	}
	iss, err := h.CA.Issue(context.Background(), req)
	if err != nil {
		t.Fatalf("issue %s certificate %s%v: %v", req.Profile, req.Name, req.Hosts, err)
	}
	keyPEM, err := ca.MarshalPrivateKey(key, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, base+".crt"), filepath.Join(dir, base+".key")
	for path, data := range map[string][]byte{certFile: iss.ChainPEM(), keyFile: keyPEM} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return key, iss, certFile, keyFile
}
