package testharness

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/leashpki/leash/ca"
)

// ServerCert issues a server certificate for hosts from the harness CA
// and writes the chain and key as PEM files (for nginx, say).
func (h *Harness) ServerCert(t testing.TB, hosts ...string) (certFile, keyFile string) {
	t.Helper()
	key, err := ca.KeyECP256.Generate()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := ca.NewCSR(key)
	if err != nil {
		t.Fatal(err)
	}
	iss, err := h.CA.Issue(context.Background(), ca.IssueRequest{Profile: ca.ProfileServer, Hosts: hosts, CSR: csr})
	if err != nil {
		t.Fatalf("issue server certificate for %v: %v", hosts, err)
	}
	keyPEM, err := ca.MarshalPrivateKey(key, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	if err := os.WriteFile(certFile, iss.ChainPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}
