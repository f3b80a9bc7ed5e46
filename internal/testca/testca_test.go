package testca_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"testing"
	"time"

	"github.com/leashpki/leash/internal/testca"
)

func TestIssueVerifiesAgainstRoot(t *testing.T) {
	ca := testca.New(t)
	foreign := testca.New(t, testca.WithName("Foreign"))

	tests := []struct {
		name string
		opts testca.LeafOptions
		pool *x509.CertPool
		eku  x509.ExtKeyUsage
		ok   bool
	}{
		{"server", testca.LeafOptions{DNSNames: []string{"localhost"}, IPs: []string{"127.0.0.1"}}, ca.Pool(), x509.ExtKeyUsageServerAuth, true},
		{"client identity", testca.LeafOptions{Role: "runner", Name: "r1"}, ca.Pool(), x509.ExtKeyUsageClientAuth, true},
		{"p384", testca.LeafOptions{KeyType: testca.ECDSAP384}, ca.Pool(), x509.ExtKeyUsageClientAuth, true},
		{"ed25519", testca.LeafOptions{KeyType: testca.Ed25519}, ca.Pool(), x509.ExtKeyUsageClientAuth, true},
		{"rsa", testca.LeafOptions{KeyType: testca.RSA2048}, ca.Pool(), x509.ExtKeyUsageClientAuth, true},
		{"foreign root", testca.LeafOptions{}, foreign.Pool(), x509.ExtKeyUsageClientAuth, false},
		{"server only", testca.LeafOptions{EKUs: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, ca.Pool(), x509.ExtKeyUsageClientAuth, false},
		{"expired", testca.LeafOptions{NotAfter: time.Now().Add(-time.Minute)}, ca.Pool(), x509.ExtKeyUsageClientAuth, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leaf := ca.Issue(t, tt.opts)
			inter := x509.NewCertPool()
			inter.AddCert(ca.Intermediate)
			_, err := leaf.Cert.Verify(x509.VerifyOptions{
				Roots: tt.pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{tt.eku},
			})
			if (err == nil) != tt.ok {
				t.Fatalf("Verify: err = %v, want ok = %v", err, tt.ok)
			}
		})
	}
}

func TestLeafEncodings(t *testing.T) {
	ca := testca.New(t)
	leaf := ca.Issue(t, testca.LeafOptions{CommonName: "x", Role: "operator", Name: "alice"})

	pair, err := tls.X509KeyPair(leaf.ChainPEM(), leaf.KeyPEM())
	if err != nil {
		t.Fatalf("X509KeyPair: %v", err)
	}
	if len(pair.Certificate) != 2 {
		t.Errorf("chain has %d certificates, want 2", len(pair.Certificate))
	}
	if got := leaf.TLSCertificate(); got.Leaf != leaf.Cert || len(got.Certificate) != 2 {
		t.Errorf("TLSCertificate: leaf %p, %d certificates", got.Leaf, len(got.Certificate))
	}
	if b, _ := pem.Decode(leaf.CertPEM()); b == nil || b.Type != "CERTIFICATE" {
		t.Errorf("CertPEM is not a certificate block")
	}
	if b, _ := pem.Decode(ca.RootPEM()); b == nil || string(b.Bytes) != string(ca.Root.Raw) {
		t.Errorf("RootPEM does not hold the root")
	}
	if got, want := leaf.Cert.URIs[0].String(), "leash://operator/alice"; got != want {
		t.Errorf("URI = %q, want %q", got, want)
	}
}

func TestSerialsAreRandom128Bit(t *testing.T) {
	seen := map[string]bool{}
	for range 64 {
		s := testca.Serial(t)
		if s.Sign() <= 0 || s.BitLen() > 128 {
			t.Fatalf("serial %s out of range", s)
		}
		if seen[s.String()] {
			t.Fatalf("serial %s repeated", s)
		}
		seen[s.String()] = true
	}
}
