// Package testca builds throw-away certificate authorities for tests, so no
// key or certificate is ever checked into the repository.
//
// A CA is an in-memory ECDSA P-256 root and one intermediate below it; Issue
// signs leaves with the intermediate. A "foreign" CA for negative tests is
// simply a second New. Everything fails the test through t.Fatal rather than
// returning errors: a broken fixture is never something a test wants to
// handle.
//
//	ca := testca.New(t)
//	leaf := ca.Issue(t, testca.LeafOptions{Role: "runner", Name: "r1"})
//	cert := leaf.TLSCertificate()
//
// The package does not import the tls package it helps to test, so that
// package's internal tests can use it too.
package testca

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"
)

// CA is a root and an intermediate, both with keys in memory.
type CA struct {
	Root            *x509.Certificate
	RootKey         crypto.Signer
	Intermediate    *x509.Certificate
	IntermediateKey crypto.Signer
}

// Option changes how New builds a CA.
type Option func(*options)

type options struct {
	name      string
	notBefore time.Time
	notAfter  time.Time
}

// WithName sets the common-name prefix of the root and the intermediate
// ("<name> Root", "<name> Intermediate"); the default is "Test".
func WithName(name string) Option { return func(o *options) { o.name = name } }

// WithValidity sets the validity window of the root and the intermediate.
// The default is one hour ago until ten years from now.
func WithValidity(notBefore, notAfter time.Time) Option {
	return func(o *options) { o.notBefore, o.notAfter = notBefore, notAfter }
}

// New creates a fresh root and intermediate.
func New(t testing.TB, opts ...Option) *CA {
	t.Helper()
	now := time.Now()
	o := options{name: "Test", notBefore: now.Add(-time.Hour), notAfter: now.AddDate(10, 0, 0)}
	for _, opt := range opts {
		opt(&o)
	}

	rootKey := newKey(t, ECDSAP256)
	rootTmpl := &x509.Certificate{
		SerialNumber:          Serial(t),
		Subject:               pkix.Name{CommonName: o.name + " Root"},
		NotBefore:             o.notBefore,
		NotAfter:              o.notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            1,
	}
	root := sign(t, rootTmpl, rootTmpl, rootKey.Public(), rootKey)

	intKey := newKey(t, ECDSAP256)
	intTmpl := &x509.Certificate{
		SerialNumber:          Serial(t),
		Subject:               pkix.Name{CommonName: o.name + " Intermediate"},
		NotBefore:             o.notBefore,
		NotAfter:              o.notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	intermediate := sign(t, intTmpl, root, intKey.Public(), rootKey)

	return &CA{Root: root, RootKey: rootKey, Intermediate: intermediate, IntermediateKey: intKey}
}

// Pool returns a pool holding only the root.
func (c *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c.Root)
	return p
}

// RootPEM returns the root certificate in PEM.
func (c *CA) RootPEM() []byte { return certsPEM(c.Root) }

// IntermediatePEM returns the intermediate certificate in PEM.
func (c *CA) IntermediatePEM() []byte { return certsPEM(c.Intermediate) }

// Serial returns a random positive 128-bit serial number.
func Serial(t testing.TB) *big.Int {
	t.Helper()
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			t.Fatalf("testca: serial: %v", err)
		}
		if n.Sign() > 0 {
			return n
		}
	}
}

func sign(t testing.TB, tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		t.Fatalf("testca: sign %q: %v", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("testca: parse %q: %v", tmpl.Subject.CommonName, err)
	}
	return cert
}

func certsPEM(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}
