package interop

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/leashpki/leash/ca"
	"github.com/leashpki/leash/gateway/store/sqlitestore"
)

var password = []byte("interop password")

// pki is a real Leash CA on a real store, plus a directory to write PEM
// files for the external tools.
type pki struct {
	dir  string
	auth *ca.Authority
}

func newPKI(t *testing.T, name string) *pki {
	t.Helper()
	dir := t.TempDir()
	caDir := filepath.Join(dir, "ca")
	if _, err := ca.Init(caDir, ca.InitOptions{Name: name, Password: password}); err != nil {
		t.Fatal(err)
	}
	st, err := sqlitestore.Open(context.Background(), filepath.Join(dir, "leash.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	a, err := ca.Open(ca.Config{Dir: caDir, Password: password}, st)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	p := &pki{dir: dir, auth: a}
	p.write(t, "root.pem", ca.EncodeCerts(a.Root()), 0o644)
	p.write(t, "intermediate.pem", ca.EncodeCerts(a.Intermediate()), 0o644)
	return p
}

func (p *pki) path(name string) string { return filepath.Join(p.dir, name) }

func (p *pki) write(t *testing.T, name string, data []byte, mode os.FileMode) string {
	t.Helper()
	path := p.path(name)
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

// leaf is a minted certificate written as <name>.crt (leaf only),
// <name>-chain.crt (leaf + intermediate) and <name>.key.
type leaf struct {
	cert             *x509.Certificate
	key              crypto.Signer
	crt, chain, keyf string
}

// issue mints a certificate through the authority, as the CLI does.
func (p *pki) issue(t *testing.T, file string, req ca.IssueRequest) *leaf {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	req.CSR, err = ca.NewCSR(key)
	if err != nil {
		t.Fatal(err)
	}
	iss, err := p.auth.Issue(context.Background(), req)
	if err != nil {
		t.Fatalf("issue %s: %v", file, err)
	}
	return p.save(t, file, iss.Leaf, key)
}

func (p *pki) save(t *testing.T, file string, cert *x509.Certificate, key crypto.Signer) *leaf {
	t.Helper()
	kb, err := ca.MarshalPrivateKey(key, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &leaf{
		cert:  cert,
		key:   key,
		crt:   p.write(t, file+".crt", ca.EncodeCerts(cert), 0o644),
		chain: p.write(t, file+"-chain.crt", ca.EncodeCerts(cert, p.auth.Intermediate()), 0o644),
		keyf:  p.write(t, file+".key", kb, 0o600),
	}
}

// signExpired signs, with the CA's real intermediate key, a runner
// certificate that expired an hour ago: the authority itself never issues
// one, but an attacker replaying an old certificate holds exactly this.
func (p *pki) signExpired(t *testing.T, file, name string) *leaf {
	t.Helper()
	kb, err := os.ReadFile(filepath.Join(p.dir, "ca", ca.IntermediateKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	interKey, err := ca.ParsePrivateKey("intermediate", kb, password)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse("leash://runner/" + name)
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: name}, URIs: []*url.URL{u},
		NotBefore: time.Now().Add(-25 * time.Hour), NotAfter: time.Now().Add(-time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.auth.Intermediate(), &key.PublicKey, interKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return p.save(t, file, cert, key)
}

// run runs a tool and returns its combined output and exit error.
func run(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}
