package leashtls_test

import (
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/leashpki/leash/internal/keyfile"
	"github.com/leashpki/leash/internal/testca"
	leashtls "github.com/leashpki/leash/tls"
)

func TestSourceSwapsServerCertificateWithoutRestart(t *testing.T) {
	p := newPKI(t)
	cfg, err := leashtls.ServerConfig(leashtls.ServerOptions{Mode: leashtls.ModeHTTPS, Certificate: p.src.GetCertificate})
	if err != nil {
		t.Fatalf("ServerConfig: %v", err)
	}
	srv := startServer(t, cfg)
	renewed := p.ca.Issue(t, testca.LeafOptions{DNSNames: []string{"localhost"}})

	for _, want := range []*testca.Leaf{p.server, renewed} {
		if want == renewed {
			cert := renewed.TLSCertificate()
			if err := p.src.Store(&cert); err != nil {
				t.Fatalf("Store: %v", err)
			}
		}
		state, err := dial(srv.addr, p.clientConfig(t, nil))
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		srv.next(t)
		if got := state.PeerCertificates[0].SerialNumber.String(); got != want.Serial() {
			t.Errorf("server presented serial %s, want %s", got, want.Serial())
		}
	}
}

func TestSourceSwapsClientCertificate(t *testing.T) {
	p := newPKI(t)
	srv := mtlsServer(t, p, leashtls.NoRevocation{}, &rejectLog{}, nil)
	first := runnerLeaf(p)(t)
	second := runnerLeaf(p)(t)
	cert := first.TLSCertificate()
	src, err := leashtls.NewSource(&cert)
	if err != nil {
		t.Fatalf("NewSource: %v", err)
	}
	ccfg, err := leashtls.ClientConfig(leashtls.ClientOptions{Roots: p.ca.Pool(), ServerName: "localhost", Certificate: src.GetClientCertificate})
	if err != nil {
		t.Fatalf("ClientConfig: %v", err)
	}

	for _, want := range []*testca.Leaf{first, second} {
		if want == second {
			cert := second.TLSCertificate()
			if err := src.Store(&cert); err != nil {
				t.Fatalf("Store: %v", err)
			}
		}
		if _, err := dial(srv.addr, ccfg); err != nil {
			t.Fatalf("dial: %v", err)
		}
		res := srv.next(t)
		if id, err := leashtls.PeerIdentity(res.state); err != nil || id.Serial != want.Serial() {
			t.Errorf("server saw %+v, %v; want serial %s", id, err, want.Serial())
		}
	}
}

func TestSourceStoreChecks(t *testing.T) {
	ca := testca.New(t)
	a := ca.Issue(t, testca.LeafOptions{CommonName: "a"})
	b := ca.Issue(t, testca.LeafOptions{CommonName: "b", KeyType: testca.Ed25519})

	withoutLeaf := a.TLSCertificate()
	withoutLeaf.Leaf = nil
	mismatched := a.TLSCertificate()
	mismatched.PrivateKey = b.Key
	noKey := a.TLSCertificate()
	noKey.PrivateKey = nil
	garbage := tls.Certificate{Certificate: [][]byte{[]byte("not DER")}, PrivateKey: a.Key}

	tests := []struct {
		name    string
		cert    *tls.Certificate
		wantErr error // nil: accepted
		anyErr  bool
	}{
		{name: "nil", cert: nil, wantErr: leashtls.ErrNoCertificate},
		{name: "empty", cert: &tls.Certificate{}, wantErr: leashtls.ErrNoCertificate},
		{name: "leaf parsed when missing", cert: &withoutLeaf},
		{name: "key of another certificate", cert: &mismatched, wantErr: leashtls.ErrKeyMismatch},
		{name: "no key", cert: &noKey, wantErr: leashtls.ErrKeyMismatch},
		{name: "garbage DER", cert: &garbage, anyErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			initial := b.TLSCertificate()
			src, err := leashtls.NewSource(&initial)
			if err != nil {
				t.Fatalf("NewSource: %v", err)
			}
			err = src.Store(tt.cert)
			switch {
			case tt.wantErr == nil && !tt.anyErr:
				if err != nil {
					t.Fatalf("Store: %v", err)
				}
				got := src.Load()
				if got.Leaf == nil || got.Leaf.SerialNumber.String() != a.Serial() || !src.NotAfter().Equal(a.Cert.NotAfter) {
					t.Errorf("Load after Store: leaf %v", got.Leaf)
				}
				if tt.cert.Leaf != nil {
					t.Errorf("Store modified the caller's certificate")
				}
			default:
				if err == nil || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) {
					t.Fatalf("Store error = %v, want %v", err, tt.wantErr)
				}
				if got, _ := src.GetCertificate(nil); got.Leaf.SerialNumber.String() != b.Serial() {
					t.Errorf("failed Store replaced the certificate")
				}
			}
		})
	}

	var empty leashtls.Source
	if _, err := empty.GetClientCertificate(nil); !errors.Is(err, leashtls.ErrNoCertificate) {
		t.Errorf("empty Source: GetClientCertificate error = %v, want ErrNoCertificate", err)
	}
	if !empty.NotAfter().IsZero() {
		t.Errorf("empty Source: NotAfter = %v, want zero", empty.NotAfter())
	}
}

// writePair writes leaf's chain and key the way the CLI does: atomically,
// the key with mode keyMode.
func writePair(t *testing.T, certFile, keyFile string, certPEM, keyPEM []byte, keyMode os.FileMode) {
	t.Helper()
	if err := keyfile.WriteAtomic(certFile, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := keyfile.WriteAtomic(keyFile, keyPEM, keyMode); err != nil {
		t.Fatal(err)
	}
}

func TestLoadKeyPair(t *testing.T) {
	ca := testca.New(t)
	a := ca.Issue(t, testca.LeafOptions{CommonName: "a"})
	b := ca.Issue(t, testca.LeafOptions{CommonName: "b"})

	tests := []struct {
		name     string
		certPEM  []byte
		keyPEM   []byte
		keyMode  os.FileMode
		noKey    bool
		wantErr  error
		wantText string
	}{
		{name: "good pair", certPEM: a.ChainPEM(), keyPEM: a.KeyPEM(), keyMode: 0o600},
		{name: "owner read-only key", certPEM: a.ChainPEM(), keyPEM: a.KeyPEM(), keyMode: 0o400},
		{name: "key readable by others", certPEM: a.ChainPEM(), keyPEM: a.KeyPEM(), keyMode: 0o644, wantErr: keyfile.ErrPermissions, wantText: "chmod 600 "},
		{name: "key readable by group", certPEM: a.ChainPEM(), keyPEM: a.KeyPEM(), keyMode: 0o640, wantErr: keyfile.ErrPermissions, wantText: "chmod 600 "},
		{name: "mismatched key", certPEM: a.ChainPEM(), keyPEM: b.KeyPEM(), keyMode: 0o600, wantText: "private key does not match"},
		{name: "garbage certificate", certPEM: []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), keyPEM: a.KeyPEM(), keyMode: 0o600, wantText: "key pair"},
		{name: "missing key", certPEM: a.ChainPEM(), noKey: true, wantErr: os.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
			writePair(t, certFile, keyFile, tt.certPEM, tt.keyPEM, tt.keyMode)
			if tt.noKey {
				if err := os.Remove(keyFile); err != nil {
					t.Fatal(err)
				}
			}
			cert, err := leashtls.LoadKeyPair(certFile, keyFile)
			if tt.wantErr == nil && tt.wantText == "" {
				if err != nil {
					t.Fatalf("LoadKeyPair: %v", err)
				}
				if cert.Leaf == nil || cert.Leaf.SerialNumber.String() != a.Serial() || len(cert.Certificate) != 2 {
					t.Errorf("LoadKeyPair: leaf %v, %d certificates", cert.Leaf, len(cert.Certificate))
				}
				return
			}
			if err == nil {
				t.Fatal("LoadKeyPair succeeded, want error")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr == keyfile.ErrPermissions && !strings.Contains(err.Error(), "chmod 600 "+keyFile) {
				t.Errorf("error %q does not say chmod 600 %s", err, keyFile)
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error %q does not mention %q", err, tt.wantText)
			}
		})
	}
}
