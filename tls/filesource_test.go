package leashtls_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/leashpki/leash/internal/keyfile"
	"github.com/leashpki/leash/internal/testca"
	leashtls "github.com/leashpki/leash/tls"
)

// logBuffer collects log output written from another goroutine.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) Count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.buf.String(), s)
}

func (l *logBuffer) Logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

// serialRecorder records the serials OnReload reports.
type serialRecorder struct {
	mu      sync.Mutex
	serials []string
}

func (r *serialRecorder) OnReload(c *tls.Certificate) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.serials = append(r.serials, c.Leaf.SerialNumber.String())
}

func (r *serialRecorder) Serials() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.serials...)
}

const reloadFailed = "reload failed"

// TestFileSourcePolling runs Run under a fake clock: each step lets exactly
// one poll interval pass and waits until Run is idle again.
func TestFileSourcePolling(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ca := testca.New(t)
		a := ca.Issue(t, testca.LeafOptions{CommonName: "a"})
		b := ca.Issue(t, testca.LeafOptions{CommonName: "b"})
		c := ca.Issue(t, testca.LeafOptions{CommonName: "c"})
		d := ca.Issue(t, testca.LeafOptions{CommonName: "d", KeyType: testca.Ed25519})
		dir := t.TempDir()
		certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
		writePair(t, certFile, keyFile, a.ChainPEM(), a.KeyPEM(), 0o600)

		logs := &logBuffer{}
		rec := &serialRecorder{}
		fs, err := leashtls.NewFileSource(certFile, keyFile, leashtls.WithPollInterval(time.Second),
			leashtls.WithLogger(logs.Logger()), leashtls.WithOnReload(rec.OnReload))
		if err != nil {
			t.Fatalf("NewFileSource: %v", err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- fs.Run(ctx) }()

		step := func() {
			time.Sleep(time.Second)
			synctest.Wait()
		}
		serving := func(want *testca.Leaf, when string) {
			t.Helper()
			got, err := fs.GetCertificate(nil)
			if err != nil || got.Leaf.SerialNumber.String() != want.Serial() {
				t.Fatalf("%s: serving %s, want %s (%v)", when, got.Leaf.Subject.CommonName, want.Cert.Subject.CommonName, err)
			}
		}

		step()
		serving(a, "unchanged files")
		if got := rec.Serials(); len(got) != 0 {
			t.Fatalf("reloaded unchanged files: %v", got)
		}

		writePair(t, certFile, keyFile, b.ChainPEM(), b.KeyPEM(), 0o600)
		synctest.Wait()
		serving(a, "before the next poll")
		step()
		serving(b, "one interval after replacing the pair")

		// Garbage is logged once, however many polls see it.
		if err := keyfile.WriteAtomic(certFile, []byte("garbage"), 0o644); err != nil {
			t.Fatal(err)
		}
		step()
		step()
		step()
		serving(b, "after a garbage certificate")
		if n := logs.Count(reloadFailed); n != 1 {
			t.Fatalf("logged %d reload failures for one bad file, want 1", n)
		}

		// A new pair whose key others may read is refused until fixed.
		writePair(t, certFile, keyFile, c.ChainPEM(), c.KeyPEM(), 0o644)
		step()
		serving(b, "with a key file readable by others")
		if n := logs.Count("chmod 600 " + keyFile); n != 1 {
			t.Fatalf("permission error logged %d times, want once", n)
		}
		if err := os.Chmod(keyFile, 0o600); err != nil {
			t.Fatal(err)
		}
		step()
		serving(c, "after chmod 600")

		// New content behind old modification times still counts.
		certInfo, err := os.Stat(certFile)
		if err != nil {
			t.Fatal(err)
		}
		keyInfo, err := os.Stat(keyFile)
		if err != nil {
			t.Fatal(err)
		}
		writePair(t, certFile, keyFile, d.ChainPEM(), d.KeyPEM(), 0o600)
		if err := os.Chtimes(certFile, time.Time{}, certInfo.ModTime()); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(keyFile, time.Time{}, keyInfo.ModTime()); err != nil {
			t.Fatal(err)
		}
		step()
		serving(d, "after a change that kept the modification times")

		// Rewriting the same content is not a reload.
		writePair(t, certFile, keyFile, d.ChainPEM(), d.KeyPEM(), 0o600)
		step()
		want := []string{b.Serial(), c.Serial(), d.Serial()}
		if got := rec.Serials(); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("OnReload saw %v, want %v", got, want)
		}

		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run returned %v after cancel, want nil", err)
		}
	})
}

func TestFileSourceServesReplacedPair(t *testing.T) {
	p := newPKI(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	writePair(t, certFile, keyFile, p.server.ChainPEM(), p.server.KeyPEM(), 0o600)

	logs := &logBuffer{}
	reloads := make(chan *tls.Certificate, 8)
	fs, err := leashtls.NewFileSource(certFile, keyFile, leashtls.WithPollInterval(10*time.Millisecond),
		leashtls.WithLogger(logs.Logger()), leashtls.WithOnReload(func(c *tls.Certificate) { reloads <- c }))
	if err != nil {
		t.Fatalf("NewFileSource: %v", err)
	}
	cfg, err := leashtls.ServerConfig(leashtls.ServerOptions{Mode: leashtls.ModeHTTPS, Certificate: fs.GetCertificate})
	if err != nil {
		t.Fatalf("ServerConfig: %v", err)
	}
	srv := startServer(t, cfg)

	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := fs.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})

	presented := func() string {
		t.Helper()
		state, err := dial(srv.addr, p.clientConfig(t, nil))
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		srv.next(t)
		return state.PeerCertificates[0].SerialNumber.String()
	}
	if got := presented(); got != p.server.Serial() {
		t.Fatalf("serving %s, want the initial %s", got, p.server.Serial())
	}

	renewed := p.ca.Issue(t, testca.LeafOptions{DNSNames: []string{"localhost"}})
	writePair(t, certFile, keyFile, renewed.ChainPEM(), renewed.KeyPEM(), 0o600)
	select {
	case c := <-reloads:
		if got := c.Leaf.SerialNumber.String(); got != renewed.Serial() {
			t.Fatalf("reloaded %s, want %s", got, renewed.Serial())
		}
	case <-time.After(waitTimeout):
		t.Fatalf("no reload within %s", waitTimeout)
	}
	if got := presented(); got != renewed.Serial() {
		t.Fatalf("after replacing the files: serving %s, want %s", got, renewed.Serial())
	}

	if err := keyfile.WriteAtomic(certFile, []byte("-----BEGIN CERTIFICATE-----\ngarbage\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the bad certificate to be logged", func() bool { return logs.Count(reloadFailed) > 0 })
	if got := presented(); got != renewed.Serial() {
		t.Fatalf("after a garbage certificate: serving %s, want %s", got, renewed.Serial())
	}
	if err := fs.Reload(); err == nil {
		t.Error("explicit Reload of a garbage certificate succeeded")
	}
}

func TestNewFileSourceRefuses(t *testing.T) {
	ca := testca.New(t)
	leaf := ca.Issue(t, testca.LeafOptions{})
	other := ca.Issue(t, testca.LeafOptions{})
	tests := []struct {
		name     string
		keyPEM   []byte
		keyMode  os.FileMode
		opts     []leashtls.FileOption
		wantErr  error
		wantText string
	}{
		{name: "key readable by others", keyPEM: leaf.KeyPEM(), keyMode: 0o644, wantErr: keyfile.ErrPermissions, wantText: "chmod 600 "},
		{name: "key of another certificate", keyPEM: other.KeyPEM(), keyMode: 0o600, wantText: "private key does not match"},
		{name: "zero interval", keyPEM: leaf.KeyPEM(), keyMode: 0o600, opts: []leashtls.FileOption{leashtls.WithPollInterval(0)}, wantErr: leashtls.ErrInvalidConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
			writePair(t, certFile, keyFile, leaf.ChainPEM(), tt.keyPEM, tt.keyMode)
			fs, err := leashtls.NewFileSource(certFile, keyFile, tt.opts...)
			if err == nil {
				t.Fatalf("NewFileSource = %v, want error", fs)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error = %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error %q does not mention %q", err, tt.wantText)
			}
			if tt.wantErr == keyfile.ErrPermissions && !strings.Contains(err.Error(), "chmod 600 "+keyFile) {
				t.Errorf("error %q does not name the fix for %s", err, keyFile)
			}
		})
	}
}
