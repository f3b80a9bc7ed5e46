package leashtls_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leashpki/leash/internal/testca"
	leashtls "github.com/leashpki/leash/tls"
)

func clientAuthOnly() []x509.ExtKeyUsage { return []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth} }

// mtlsServer starts an mTLS test server for p; mutate adjusts the options.
func mtlsServer(t *testing.T, p *pki, rev leashtls.RevocationChecker, rej *rejectLog, mutate func(*leashtls.ServerOptions)) *testServer {
	t.Helper()
	opts := leashtls.ServerOptions{
		Mode:        leashtls.ModeMTLS,
		Certificate: p.src.GetCertificate,
		ClientCAs:   p.ca.Pool(),
		Revocation:  rev,
		OnReject:    rej.OnReject,
	}
	if mutate != nil {
		mutate(&opts)
	}
	cfg, err := leashtls.ServerConfig(opts)
	if err != nil {
		t.Fatalf("ServerConfig: %v", err)
	}
	return startServer(t, cfg)
}

func TestMTLSAcceptsRunner(t *testing.T) {
	p := newPKI(t)
	rev := &fakeRevocation{}
	rej := &rejectLog{}
	srv := mtlsServer(t, p, rev, rej, func(o *leashtls.ServerOptions) {
		o.Roles = []leashtls.Role{leashtls.RoleRunner}
	})
	runner := p.ca.Issue(t, testca.LeafOptions{Role: "runner", Name: "r1", EKUs: clientAuthOnly()})

	state, err := dial(srv.addr, p.clientConfig(t, runner))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	if state.Version != tls.VersionTLS13 {
		t.Errorf("version = %s, want TLS 1.3", tls.VersionName(state.Version))
	}
	res := srv.next(t)
	if res.err != nil {
		t.Fatalf("server handshake: %v", res.err)
	}
	id, err := leashtls.PeerIdentity(res.state)
	if err != nil {
		t.Fatalf("PeerIdentity: %v", err)
	}
	want := leashtls.Identity{Role: leashtls.RoleRunner, Name: "r1", Serial: runner.Serial()}
	if id != want {
		t.Errorf("PeerIdentity = %+v, want %+v", id, want)
	}
	if got := rev.Calls(); !slices.Equal(got, []string{runner.Serial()}) {
		t.Errorf("revocation lookups = %v, want [%s]", got, runner.Serial())
	}
	if got := rej.Reasons(); len(got) != 0 {
		t.Errorf("OnReject called: %v", got)
	}
}

func TestMTLSRefuses(t *testing.T) {
	p := newPKI(t)
	foreign := testca.New(t, testca.WithName("Foreign"))
	now := time.Now()

	tests := []struct {
		name string
		// leaf is the client certificate; nil sends none.
		leaf func(t *testing.T) *testca.Leaf
		// setup adjusts the server options and the checker.
		setup  func(o *leashtls.ServerOptions, rev *fakeRevocation, leaf *testca.Leaf)
		reason leashtls.Reason
		// hook: the refusal is this package's and reaches OnReject;
		// otherwise crypto/tls refuses before VerifyConnection runs.
		hook bool
		// client is what FailureReason makes of the client's error.
		client leashtls.Reason
	}{
		{
			name:   "no client certificate",
			leaf:   func(*testing.T) *testca.Leaf { return nil },
			reason: leashtls.ReasonNoClientCert, client: leashtls.ReasonNoClientCert,
		},
		{
			name: "foreign CA",
			leaf: func(t *testing.T) *testca.Leaf {
				return foreign.Issue(t, testca.LeafOptions{Role: "runner", Name: "r1", EKUs: clientAuthOnly()})
			},
			reason: leashtls.ReasonUnknownAuthority, client: leashtls.ReasonUnknownAuthority,
		},
		{
			name: "expired",
			leaf: func(t *testing.T) *testca.Leaf {
				return p.ca.Issue(t, testca.LeafOptions{Role: "runner", Name: "r1", EKUs: clientAuthOnly(), NotAfter: now.Add(-time.Minute)})
			},
			reason: leashtls.ReasonExpired, client: leashtls.ReasonExpired,
		},
		{
			name: "not yet valid",
			leaf: func(t *testing.T) *testca.Leaf {
				return p.ca.Issue(t, testca.LeafOptions{Role: "runner", Name: "r1", EKUs: clientAuthOnly(),
					NotBefore: now.Add(time.Hour), NotAfter: now.Add(2 * time.Hour)})
			},
			reason: leashtls.ReasonExpired, client: leashtls.ReasonExpired,
		},
		{
			name: "revoked",
			leaf: runnerLeaf(p),
			setup: func(_ *leashtls.ServerOptions, rev *fakeRevocation, leaf *testca.Leaf) {
				rev.Revoke(leaf.Serial())
			},
			reason: leashtls.ReasonRevoked, hook: true, client: leashtls.ReasonOther,
		},
		{
			name: "revocation checker fails closed",
			leaf: runnerLeaf(p),
			setup: func(_ *leashtls.ServerOptions, rev *fakeRevocation, _ *testca.Leaf) {
				rev.Fail(errors.New("database is down"))
			},
			reason: leashtls.ReasonRevocationUnavailable, hook: true, client: leashtls.ReasonOther,
		},
		{
			name: "serverAuth-only certificate",
			leaf: func(t *testing.T) *testca.Leaf {
				return p.ca.Issue(t, testca.LeafOptions{Role: "runner", Name: "r1",
					EKUs: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
			},
			reason: leashtls.ReasonBadUsage, client: leashtls.ReasonOther,
		},
		{
			name: "no extended key usage at all",
			leaf: func(t *testing.T) *testca.Leaf {
				return p.ca.Issue(t, testca.LeafOptions{Role: "runner", Name: "r1", NoEKU: true})
			},
			reason: leashtls.ReasonBadUsage, hook: true, client: leashtls.ReasonOther,
		},
		{
			name: "CA certificate as client certificate",
			leaf: func(t *testing.T) *testca.Leaf {
				return p.ca.Issue(t, testca.LeafOptions{Role: "runner", Name: "r1", EKUs: clientAuthOnly(), IsCA: true})
			},
			reason: leashtls.ReasonBadUsage, hook: true, client: leashtls.ReasonOther,
		},
		{
			name: "no leash URI",
			leaf: func(t *testing.T) *testca.Leaf {
				return p.ca.Issue(t, testca.LeafOptions{CommonName: "r1", URIs: []string{"spiffe://example.org/r1"}, EKUs: clientAuthOnly()})
			},
			reason: leashtls.ReasonNoIdentity, hook: true, client: leashtls.ReasonOther,
		},
		{
			name: "two identity URIs",
			leaf: func(t *testing.T) *testca.Leaf {
				return p.ca.Issue(t, testca.LeafOptions{Role: "runner", Name: "r1",
					URIs: []string{"leash://operator/alice"}, EKUs: clientAuthOnly()})
			},
			reason: leashtls.ReasonNoIdentity, hook: true, client: leashtls.ReasonOther,
		},
		{
			name: "malformed identity URI",
			leaf: func(t *testing.T) *testca.Leaf {
				return p.ca.Issue(t, testca.LeafOptions{URIs: []string{"leash://runner/../gateway"}, EKUs: clientAuthOnly()})
			},
			reason: leashtls.ReasonNoIdentity, hook: true, client: leashtls.ReasonOther,
		},
		{
			name: "role not allowed",
			leaf: runnerLeaf(p),
			setup: func(o *leashtls.ServerOptions, _ *fakeRevocation, _ *testca.Leaf) {
				o.Roles = []leashtls.Role{leashtls.RoleOperator, leashtls.RolePrometheus}
			},
			reason: leashtls.ReasonRoleDenied, hook: true, client: leashtls.ReasonOther,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leaf := tt.leaf(t)
			rev := &fakeRevocation{}
			rej := &rejectLog{}
			srv := mtlsServer(t, p, rev, rej, func(o *leashtls.ServerOptions) {
				if tt.setup != nil {
					tt.setup(o, rev, leaf)
				}
			})

			_, clientErr := dial(srv.addr, p.clientConfig(t, leaf))
			if clientErr == nil {
				t.Fatal("client: connection accepted, want refusal")
			}
			res := srv.next(t)
			if res.err == nil {
				t.Fatal("server: handshake succeeded, want refusal")
			}
			t.Logf("server: %v\nclient: %v", res.err, clientErr)
			if got := leashtls.FailureReason(res.err); got != tt.reason {
				t.Errorf("server FailureReason = %q, want %q (err: %v)", got, tt.reason, res.err)
			}
			wantHook := []leashtls.Reason(nil)
			if tt.hook {
				wantHook = []leashtls.Reason{tt.reason}
			}
			if got := rej.Reasons(); !slices.Equal(got, wantHook) {
				t.Errorf("OnReject reasons = %v, want %v", got, wantHook)
			}
			if got := leashtls.FailureReason(clientErr); got != tt.client {
				t.Errorf("client FailureReason = %q, want %q (err: %v)", got, tt.client, clientErr)
			}
		})
	}
}

func runnerLeaf(p *pki) func(t *testing.T) *testca.Leaf {
	return func(t *testing.T) *testca.Leaf {
		return p.ca.Issue(t, testca.LeafOptions{Role: "runner", Name: "r1", EKUs: clientAuthOnly()})
	}
}

// serveHTTP runs an http.Server with cfg on 127.0.0.1 until the test ends.
func serveHTTP(t *testing.T, cfg *tls.Config, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	srv := &http.Server{Handler: h, TLSConfig: cfg, ReadHeaderTimeout: waitTimeout}
	var wg sync.WaitGroup
	wg.Go(func() { _ = srv.ServeTLS(ln, "", "") })
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("http server shutdown: %v", err)
		}
		wg.Wait()
	})
	return "https://" + ln.Addr().String()
}

func httpGet(t *testing.T, url string, cfg *tls.Config) (int, string, error) {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: cfg}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: waitTimeout}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

func TestHTTPSModeNeedsNoClientCertificate(t *testing.T) {
	p := newPKI(t)
	cfg, err := leashtls.ServerConfig(leashtls.ServerOptions{Mode: leashtls.ModeHTTPS, Certificate: p.src.GetCertificate})
	if err != nil {
		t.Fatalf("ServerConfig: %v", err)
	}
	url := serveHTTP(t, cfg, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := leashtls.PeerIdentity(*r.TLS)
		_, _ = io.WriteString(w, string(leashtls.FailureReason(err)))
	}))

	code, body, err := httpGet(t, url, p.clientConfig(t, nil))
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	if code != http.StatusOK || body != string(leashtls.ReasonNoClientCert) {
		t.Errorf("GET = %d %q, want 200 %q", code, body, leashtls.ReasonNoClientCert)
	}
}

func TestMTLSOverHTTP(t *testing.T) {
	p := newPKI(t)
	cfg, err := leashtls.ServerConfig(leashtls.ServerOptions{
		Mode: leashtls.ModeMTLS, Certificate: p.src.GetCertificate,
		ClientCAs: p.ca.Pool(), Revocation: leashtls.NoRevocation{},
	})
	if err != nil {
		t.Fatalf("ServerConfig: %v", err)
	}
	url := serveHTTP(t, cfg, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := leashtls.PeerIdentity(*r.TLS)
		if err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		_, _ = io.WriteString(w, id.String())
	}))

	op := p.ca.Issue(t, testca.LeafOptions{Role: "operator", Name: "alice", EKUs: clientAuthOnly()})
	code, body, err := httpGet(t, url, p.clientConfig(t, op))
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	if code != http.StatusOK || body != "leash://operator/alice" {
		t.Errorf("GET = %d %q, want 200 leash://operator/alice", code, body)
	}
	if _, _, err := httpGet(t, url, p.clientConfig(t, nil)); err == nil {
		t.Error("GET without a client certificate succeeded")
	}
}

func TestProtocolErrors(t *testing.T) {
	p := newPKI(t)
	cfg, err := leashtls.ServerConfig(leashtls.ServerOptions{Mode: leashtls.ModeHTTPS, Certificate: p.src.GetCertificate})
	if err != nil {
		t.Fatalf("ServerConfig: %v", err)
	}
	srv := startServer(t, cfg)

	t.Run("plain HTTP to a TLS port", func(t *testing.T) {
		conn, err := net.DialTimeout("tcp", srv.addr, waitTimeout)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer func() { _ = conn.Close() }()
		_ = conn.SetDeadline(time.Now().Add(waitTimeout))
		if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"); err != nil {
			t.Fatalf("write: %v", err)
		}
		res := srv.next(t)
		if got := leashtls.FailureReason(res.err); got != leashtls.ReasonProtocol {
			t.Errorf("server FailureReason = %q, want protocol (err: %v)", got, res.err)
		}
	})

	t.Run("TLS 1.2 client to a TLS 1.3 server", func(t *testing.T) {
		ccfg := p.clientConfig(t, nil)
		ccfg.MinVersion, ccfg.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
		_, clientErr := dial(srv.addr, ccfg)
		res := srv.next(t)
		if got := leashtls.FailureReason(res.err); got != leashtls.ReasonProtocol {
			t.Errorf("server FailureReason = %q, want protocol (err: %v)", got, res.err)
		}
		if got := leashtls.FailureReason(clientErr); got != leashtls.ReasonProtocol {
			t.Errorf("client FailureReason = %q, want protocol (err: %v)", got, clientErr)
		}
	})

	t.Run("TLS client to a plain HTTP port", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen: %v", err)
		}
		var wg sync.WaitGroup
		defer wg.Wait()
		defer func() { _ = ln.Close() }()
		wg.Go(func() {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			defer func() { _ = conn.Close() }()
			_, _ = io.WriteString(conn, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
		})
		_, clientErr := dial(ln.Addr().String(), p.clientConfig(t, nil))
		if got := leashtls.FailureReason(clientErr); got != leashtls.ReasonProtocol {
			t.Errorf("client FailureReason = %q, want protocol (err: %v)", got, clientErr)
		}
	})
}

func TestTLS12WhenAllowed(t *testing.T) {
	p := newPKI(t)
	rej := &rejectLog{}
	srv := mtlsServer(t, p, leashtls.NoRevocation{}, rej, func(o *leashtls.ServerOptions) {
		o.MinVersion = tls.VersionTLS12
	})
	ccfg := p.clientConfig(t, runnerLeaf(p)(t))
	ccfg.MaxVersion = tls.VersionTLS12
	ccfg.MinVersion = tls.VersionTLS12
	state, err := dial(srv.addr, ccfg)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	if state.Version != tls.VersionTLS12 {
		t.Errorf("version = %s, want TLS 1.2", tls.VersionName(state.Version))
	}
	if res := srv.next(t); res.err != nil {
		t.Errorf("server: %v", res.err)
	}
}

func TestReasonsAreStable(t *testing.T) {
	var got []string
	for _, r := range leashtls.Reasons() {
		got = append(got, string(r))
	}
	want := "no_client_cert unknown_authority expired revoked bad_usage no_identity role_denied revocation_unavailable protocol other"
	if strings.Join(got, " ") != want {
		t.Errorf("Reasons() = %v, want %s", got, want)
	}
}
