package leashtls_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/leashpki/leash/internal/testca"
	leashtls "github.com/leashpki/leash/tls"
)

// waitTimeout bounds every wait in these tests; nothing should come close.
const waitTimeout = 10 * time.Second

// fakeClock is a settable clock for ServerOptions.Now.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Now()} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// fakeRevocation is a RevocationChecker whose answers a test flips.
type fakeRevocation struct {
	mu      sync.Mutex
	revoked map[string]bool
	err     error
	calls   []string
}

func (f *fakeRevocation) IsRevoked(_ context.Context, serial string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, serial)
	if f.err != nil {
		return false, f.err
	}
	return f.revoked[serial], nil
}

func (f *fakeRevocation) Revoke(serial string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.revoked == nil {
		f.revoked = map[string]bool{}
	}
	f.revoked[serial] = true
}

func (f *fakeRevocation) Fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

func (f *fakeRevocation) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// rejectLog records OnReject calls.
type rejectLog struct {
	mu      sync.Mutex
	reasons []leashtls.Reason
	errs    []error
}

func (r *rejectLog) OnReject(reason leashtls.Reason, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reasons = append(r.reasons, reason)
	r.errs = append(r.errs, err)
}

func (r *rejectLog) Reasons() []leashtls.Reason {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]leashtls.Reason(nil), r.reasons...)
}

// pki is a CA with a server certificate for localhost / 127.0.0.1.
type pki struct {
	ca     *testca.CA
	server *testca.Leaf
	src    *leashtls.Source
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	ca := testca.New(t)
	server := ca.Issue(t, testca.LeafOptions{
		CommonName: "gateway",
		DNSNames:   []string{"localhost"},
		IPs:        []string{"127.0.0.1"},
		EKUs:       []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	cert := server.TLSCertificate()
	src, err := leashtls.NewSource(&cert)
	if err != nil {
		t.Fatalf("NewSource: %v", err)
	}
	return &pki{ca: ca, server: server, src: src}
}

// clientConfig returns a client config trusting p's root, presenting leaf
// (nil: no certificate).
func (p *pki) clientConfig(t *testing.T, leaf *testca.Leaf) *tls.Config {
	t.Helper()
	opts := leashtls.ClientOptions{Roots: p.ca.Pool(), ServerName: "localhost"}
	if leaf != nil {
		cert := leaf.TLSCertificate()
		src, err := leashtls.NewSource(&cert)
		if err != nil {
			t.Fatalf("NewSource: %v", err)
		}
		opts.Certificate = src.GetClientCertificate
	}
	cfg, err := leashtls.ClientConfig(opts)
	if err != nil {
		t.Fatalf("ClientConfig: %v", err)
	}
	return cfg
}

// serverResult is what the test server saw of one connection.
type serverResult struct {
	err   error
	state tls.ConnectionState
}

// testServer accepts TLS connections on 127.0.0.1, completes the handshake
// itself so the test sees the server-side error, answers "ok\n" on success
// and closes. Cleanup closes the listener and waits for every goroutine.
type testServer struct {
	addr    string
	results chan serverResult
}

func startServer(t *testing.T, cfg *tls.Config) *testServer {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	s := &testServer{addr: ln.Addr().String(), results: make(chan serverResult, 64)}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { s.serve(conn.(*tls.Conn)) })
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
	})
	return s
}

func (s *testServer) serve(conn *tls.Conn) {
	defer func() { _ = conn.Close() }()
	_ = conn.SetDeadline(time.Now().Add(waitTimeout))
	err := conn.Handshake()
	s.results <- serverResult{err: err, state: conn.ConnectionState()}
	if err == nil {
		_, _ = conn.Write([]byte("ok\n"))
	}
}

// next returns what the server saw of the next connection.
func (s *testServer) next(t *testing.T) serverResult {
	t.Helper()
	select {
	case r := <-s.results:
		return r
	case <-time.After(waitTimeout):
		t.Fatalf("no handshake result within %s", waitTimeout)
		return serverResult{}
	}
}

// dial connects, handshakes and reads the server's "ok". In TLS 1.3 the
// client finishes its handshake before the server has judged the client
// certificate, so a refusal shows up on the read, as a received alert.
func dial(addr string, cfg *tls.Config) (tls.ConnectionState, error) {
	d := &net.Dialer{Timeout: waitTimeout}
	conn, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer func() { _ = conn.Close() }()
	_ = conn.SetDeadline(time.Now().Add(waitTimeout))
	state := conn.ConnectionState()
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return state, err
	}
	if line != "ok\n" {
		return state, errors.New("unexpected reply " + line)
	}
	return state, nil
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", waitTimeout, what)
		}
		<-tick.C
	}
}
