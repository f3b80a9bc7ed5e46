package runner

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/leashpki/leash/internal/enroll"
	"github.com/leashpki/leash/internal/keyfile"
)

// testCA is a root and an intermediate made in the test, as a fresh Leash
// CA makes them: both valid from "now", while leaves are backdated.
type testCA struct {
	now      time.Time
	root     *x509.Certificate
	inter    *x509.Certificate
	interKey crypto.Signer
	serial   int64
}

func testKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func createCert(t *testing.T, tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	// Certificates carry whole seconds; "now" is what they will say.
	now := time.Now().UTC().Truncate(time.Second)
	rootKey, interKey := testKey(t), testKey(t)
	rootTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Test Root CA"},
		NotBefore: now, NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true, MaxPathLen: 1,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	root := createCert(t, rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	interTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "Test Intermediate CA"},
		NotBefore: now, NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true, MaxPathLenZero: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	inter := createCert(t, interTmpl, root, interKey.Public(), rootKey)
	return &testCA{now: now, root: root, inter: inter, interKey: interKey, serial: 100}
}

// issue returns the chain (leaf, intermediate) of a leaf for pub naming cn,
// backdated by a minute, with the given extended key usages.
func (ca *testCA) issue(t *testing.T, cn string, pub crypto.PublicKey, eku ...x509.ExtKeyUsage) []*x509.Certificate {
	t.Helper()
	if len(eku) == 0 {
		eku = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	ca.serial++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(ca.serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: ca.now.Add(-time.Minute), NotAfter: ca.now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: eku}
	return []*x509.Certificate{createCert(t, tmpl, ca.inter, pub, ca.interKey), ca.inter}
}

// identityFor is a complete identity named cn: a fresh key and its chain.
func (ca *testCA) identityFor(t *testing.T, cn string, eku ...x509.ExtKeyUsage) identity {
	t.Helper()
	key := testKey(t)
	cert, err := pairFromChain(key, ca.issue(t, cn, key.Public(), eku...))
	if err != nil {
		t.Fatal(err)
	}
	return identity{cert: cert, root: ca.root}
}

func TestVerifyChainFreshCABackdatedLeaf(t *testing.T) {
	ca := newTestCA(t)
	chain := ca.issue(t, "runner-1", testKey(t).Public())
	if !chain[0].NotBefore.Before(ca.root.NotBefore) {
		t.Fatalf("test setup: leaf valid from %v, root from %v; want the leaf earlier", chain[0].NotBefore, ca.root.NotBefore)
	}
	if err := verifyChain(chain, ca.root, "runner-1"); err != nil {
		t.Fatalf("verifyChain: %v", err)
	}
}

func TestVerifyChainRefuses(t *testing.T) {
	ca, other := newTestCA(t), newTestCA(t)
	pub := testKey(t).Public()
	tests := []struct {
		name  string
		chain []*x509.Certificate
		want  string
	}{
		{"another CA", other.issue(t, "runner-1", pub), "does not verify against the pinned root"},
		{"another name", ca.issue(t, "runner-2", pub), `names "runner-2", not "runner-1"`},
		{"server certificate", ca.issue(t, "runner-1", pub, x509.ExtKeyUsageServerAuth), "does not verify"},
		{"no intermediate", ca.issue(t, "runner-1", pub)[:1], "does not verify"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := verifyChain(tt.chain, ca.root, "runner-1")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("verifyChain: got %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
}

func TestIdentityRoundTrip(t *testing.T) {
	ca := newTestCA(t)
	id := ca.identityFor(t, "runner-1")
	dir := filepath.Join(t.TempDir(), "state") // saveIdentity creates it
	if err := saveIdentity(dir, id); err != nil {
		t.Fatalf("saveIdentity: %v", err)
	}
	wantModes := map[string]os.FileMode{identityFile: 0o600, certFile: 0o644, rootFile: 0o644}
	for name, mode := range wantModes {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if st.Mode().Perm() != mode {
			t.Errorf("%s has mode %04o, want %04o", name, st.Mode().Perm(), mode)
		}
	}
	if st, err := os.Stat(dir); err != nil {
		t.Error(err)
	} else if st.Mode().Perm() != 0o700 {
		t.Errorf("state dir has mode %04o, want 0700", st.Mode().Perm())
	}
	// cert.pem is the public chain, ca.pem the root.
	pub, err := os.ReadFile(filepath.Join(dir, certFile))
	if err != nil {
		t.Fatal(err)
	}
	chain, err := enroll.ParseChain(pub)
	if err != nil || len(chain) != 2 || !chain[0].Equal(id.cert.Leaf) || !chain[1].Equal(ca.inter) {
		t.Errorf("cert.pem holds %d certificates (%v), want leaf and intermediate", len(chain), err)
	}
	if strings.Contains(string(pub), "PRIVATE KEY") {
		t.Error("cert.pem holds the private key")
	}

	got, err := loadIdentity(dir, "runner-1")
	if err != nil {
		t.Fatalf("loadIdentity: %v", err)
	}
	if !got.cert.Leaf.Equal(id.cert.Leaf) {
		t.Error("loaded leaf differs from the saved one")
	}
	if !reflect.DeepEqual(got.cert.Certificate, id.cert.Certificate) {
		t.Error("loaded chain differs from the saved one")
	}
	if k, ok := got.cert.PrivateKey.(*ecdsa.PrivateKey); !ok || !k.Equal(id.cert.PrivateKey) {
		t.Errorf("loaded key (%T) differs from the saved one", got.cert.PrivateKey)
	}
	if !got.root.Equal(ca.root) {
		t.Error("loaded root differs from the saved one")
	}
	if got.obtained.IsZero() {
		t.Error("obtained is not set from the identity file")
	}
}

func TestLoadIdentityRefuses(t *testing.T) {
	ca, other := newTestCA(t), newTestCA(t)
	tests := []struct {
		name   string
		setup  func(t *testing.T, dir string)
		target error  // errors.Is target, or nil
		want   string // substring, or ""
	}{
		{"identity readable by others", func(t *testing.T, dir string) {
			mustSave(t, dir, ca.identityFor(t, "runner-1"))
			if err := os.Chmod(filepath.Join(dir, identityFile), 0o644); err != nil {
				t.Fatal(err)
			}
		}, keyfile.ErrPermissions, "chmod 600"},
		{"chain from another CA", func(t *testing.T, dir string) {
			id := other.identityFor(t, "runner-1")
			id.root = ca.root
			mustSave(t, dir, id)
		}, nil, "does not verify against the pinned root"},
		{"leaf names another runner", func(t *testing.T, dir string) {
			mustSave(t, dir, ca.identityFor(t, "runner-2"))
		}, nil, `names "runner-2", not "runner-1"`},
		{"key does not match the certificate", func(t *testing.T, dir string) {
			id := ca.identityFor(t, "runner-1")
			id.cert = &tls.Certificate{PrivateKey: testKey(t), Certificate: id.cert.Certificate, Leaf: id.cert.Leaf}
			mustSave(t, dir, id)
		}, nil, "not for our key"},
		{"leaf without clientAuth", func(t *testing.T, dir string) {
			mustSave(t, dir, ca.identityFor(t, "runner-1", x509.ExtKeyUsageServerAuth))
		}, nil, "does not verify"},
		{"no private key", func(t *testing.T, dir string) {
			mustSave(t, dir, ca.identityFor(t, "runner-1"))
			chain, err := os.ReadFile(filepath.Join(dir, certFile))
			if err != nil {
				t.Fatal(err)
			}
			if err := keyfile.WriteAtomic(filepath.Join(dir, identityFile), chain, keyfile.PrivateMode); err != nil {
				t.Fatal(err)
			}
		}, nil, "no private key"},
		{"no certificate", func(t *testing.T, dir string) {
			der, err := x509.MarshalPKCS8PrivateKey(testKey(t))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			data := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
			if err := keyfile.WriteAtomic(filepath.Join(dir, identityFile), data, keyfile.PrivateMode); err != nil {
				t.Fatal(err)
			}
		}, nil, "no certificate"},
		{"pinned root missing", func(t *testing.T, dir string) {
			mustSave(t, dir, ca.identityFor(t, "runner-1"))
			if err := os.Remove(filepath.Join(dir, rootFile)); err != nil {
				t.Fatal(err)
			}
		}, nil, "pinned root"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tt.setup(t, dir)
			_, err := loadIdentity(dir, "runner-1")
			if err == nil {
				t.Fatal("loadIdentity accepted it")
			}
			if errors.Is(err, errNoIdentity) {
				t.Fatalf("loadIdentity: %v; want a refusal, not errNoIdentity", err)
			}
			if tt.target != nil && !errors.Is(err, tt.target) {
				t.Errorf("loadIdentity: %v; want an error wrapping %v", err, tt.target)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("loadIdentity: %q does not mention %q", err, tt.want)
			}
		})
	}
}

func TestLoadIdentityServerCertificateIsIncompatible(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	mustSave(t, dir, ca.identityFor(t, "runner-1", x509.ExtKeyUsageServerAuth))
	_, err := loadIdentity(dir, "runner-1")
	var invalid x509.CertificateInvalidError
	if !errors.As(err, &invalid) || invalid.Reason != x509.IncompatibleUsage {
		t.Errorf("loadIdentity: %v; want x509 IncompatibleUsage", err)
	}
}

func TestLoadIdentityNoIdentity(t *testing.T) {
	tests := []struct {
		name string
		dir  func(t *testing.T) string
	}{
		{"missing dir", func(t *testing.T) string { return filepath.Join(t.TempDir(), "absent") }},
		{"empty dir", func(t *testing.T) string { return t.TempDir() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := loadIdentity(tt.dir(t), "runner-1"); !errors.Is(err, errNoIdentity) {
				t.Errorf("loadIdentity: got %v, want errNoIdentity", err)
			}
		})
	}
}

func TestPairFromChain(t *testing.T) {
	ca := newTestCA(t)
	key := testKey(t)
	chain := ca.issue(t, "runner-1", key.Public())
	tests := []struct {
		name  string
		key   crypto.Signer
		chain []*x509.Certificate
		want  string
	}{
		{"own key", key, chain, ""},
		{"foreign key", testKey(t), chain, "not for our key"},
		{"empty chain", key, nil, "empty certificate chain"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := pairFromChain(tt.key, tt.chain)
			if tt.want != "" {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("pairFromChain: got %v, want an error mentioning %q", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("pairFromChain: %v", err)
			}
			if c.Leaf != chain[0] || c.PrivateKey != tt.key || len(c.Certificate) != len(chain) {
				t.Errorf("pairFromChain: leaf, key or chain length (%d) wrong", len(c.Certificate))
			}
			for i, x := range chain {
				if string(c.Certificate[i]) != string(x.Raw) {
					t.Errorf("certificate %d is not the chain's", i)
				}
			}
		})
	}
}

func mustSave(t *testing.T, dir string, id identity) {
	t.Helper()
	if err := saveIdentity(dir, id); err != nil {
		t.Fatalf("saveIdentity: %v", err)
	}
}
