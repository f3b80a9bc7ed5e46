package ca_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"net"
	"net/url"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/leashpki/leash/ca"
	"github.com/leashpki/leash/gateway/store/sqlitestore"
)

var testPassword = []byte("correct horse battery")

// fakeClock is a settable clock for Leash's own time checks.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type fixture struct {
	dir      string
	password []byte
	auth     *ca.Authority
	store    *sqlitestore.Store
	clock    *fakeClock
}

// newFixture initialises a CA of the given key type in a temp dir and opens
// it on a fresh SQLite store. Its keys are stored in clear: encrypting them
// costs 600k PBKDF2 rounds per key, which under the race detector makes each
// fixture take seconds. Tests about passwords use newEncryptedFixture.
func newFixture(t testing.TB, kt ca.KeyType) *fixture {
	return initFixture(t, kt, nil)
}

// newEncryptedFixture is newFixture with keys encrypted by testPassword.
func newEncryptedFixture(t testing.TB, kt ca.KeyType) *fixture {
	return initFixture(t, kt, testPassword)
}

func initFixture(t testing.TB, kt ca.KeyType, password []byte) *fixture {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ca")
	if _, err := ca.Init(dir, ca.InitOptions{Name: "Test", KeyType: kt, Password: password, InsecureNoPassword: password == nil}); err != nil {
		t.Fatalf("Init: %v", err)
	}
	f := &fixture{dir: dir, password: password, clock: &fakeClock{t: time.Now()}}
	st, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "leash.db"))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	f.store = st
	f.auth = f.open(t)
	return f
}

func (f *fixture) open(t testing.TB) *ca.Authority {
	t.Helper()
	a, err := ca.Open(ca.Config{Dir: f.dir, Password: f.password}, f.store, ca.WithClock(f.clock.Now))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a
}

func newKey(t testing.TB) crypto.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// csrOpts is what a test CSR asks for.
type csrOpts struct {
	cn     string
	dns    []string
	ips    []string
	uris   []string
	emails []string
	exts   []pkix.Extension
}

func newCSR(t testing.TB, key crypto.Signer, o csrOpts) *x509.CertificateRequest {
	t.Helper()
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: o.cn}, DNSNames: o.dns,
		EmailAddresses: o.emails, ExtraExtensions: o.exts}
	for _, ip := range o.ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(ip))
	}
	for _, u := range o.uris {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, pu)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	return csr
}

// verifyChain checks leaf against the CA root with the given usage.
func verifyChain(t *testing.T, a *ca.Authority, leaf *x509.Certificate, usage x509.ExtKeyUsage) error {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(a.Root())
	inter := x509.NewCertPool()
	inter.AddCert(a.Intermediate())
	_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}})
	return err
}

func (f *fixture) enrollToken(t testing.TB, profile, subject string) ca.Token {
	t.Helper()
	tok, err := f.auth.CreateToken(context.Background(), ca.TokenRequest{Profile: profile, Subject: subject})
	if err != nil {
		t.Fatalf("CreateToken: %v", err)
	}
	return tok
}
