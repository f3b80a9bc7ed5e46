package leashtls_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/leashpki/leash/internal/testca"
	leashtls "github.com/leashpki/leash/tls"
)

// A session ticket carries the client certificate of the handshake that
// created it; resuming must not skip revocation.
func TestResumedSessionIsRecheckedForRevocation(t *testing.T) {
	for _, version := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			p := newPKI(t)
			rev := &fakeRevocation{}
			rej := &rejectLog{}
			srv := mtlsServer(t, p, rev, rej, func(o *leashtls.ServerOptions) { o.MinVersion = tls.VersionTLS12 })
			runner := runnerLeaf(p)(t)
			ccfg := p.clientConfig(t, runner)
			ccfg.MinVersion, ccfg.MaxVersion = version, version
			ccfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)

			// First a full handshake, then one that resumes it.
			for i, wantResume := range []bool{false, true} {
				state, err := dial(srv.addr, ccfg)
				if err != nil {
					t.Fatalf("connection %d: %v", i+1, err)
				}
				res := srv.next(t)
				if res.err != nil {
					t.Fatalf("connection %d: server: %v", i+1, res.err)
				}
				if state.DidResume != wantResume || res.state.DidResume != wantResume {
					t.Fatalf("connection %d: DidResume client %v server %v, want %v", i+1, state.DidResume, res.state.DidResume, wantResume)
				}
				if id, err := leashtls.PeerIdentity(res.state); err != nil || id.Serial != runner.Serial() {
					t.Fatalf("connection %d: PeerIdentity = %+v, %v", i+1, id, err)
				}
			}

			rev.Revoke(runner.Serial())
			state, err := dial(srv.addr, ccfg)
			if err == nil {
				t.Fatal("resumed connection with a revoked certificate was accepted")
			}
			res := srv.next(t)
			// The server decided on the resumed session. A TLS 1.3 client has
			// finished its side before the server's verdict (it learns of it
			// as an alert on its first read), so it saw the resumption too; a
			// TLS 1.2 client is still waiting for the server's Finished.
			if !res.state.DidResume {
				t.Fatalf("third connection did not resume (client err: %v, server err: %v)", err, res.err)
			}
			if version == tls.VersionTLS13 && !state.DidResume {
				t.Errorf("TLS 1.3 client did not see the resumption")
			}
			if !errors.Is(res.err, leashtls.ErrRevoked) || !strings.Contains(res.err.Error(), "resumed session") {
				t.Errorf("server err = %v, want ErrRevoked on a resumed session", res.err)
			}
			if got := rej.Reasons(); !slices.Equal(got, []leashtls.Reason{leashtls.ReasonRevoked}) {
				t.Errorf("OnReject reasons = %v, want [revoked]", got)
			}
			if got := len(rev.Calls()); got != 3 {
				t.Errorf("revocation lookups = %d, want one per handshake (3)", got)
			}
		})
	}
}

// A session must not outlive the certificate it was made with. crypto/tls
// itself declines to resume a session whose leaf has expired by
// Config.Time and falls back to a full handshake, which then fails chain
// verification; VerifyConnection's own expiry check (tested directly in
// TestVerifyConnectionOnResumedState) is the second line.
func TestSessionDoesNotOutliveCertificate(t *testing.T) {
	p := newPKI(t)
	clock := newFakeClock()
	rej := &rejectLog{}
	srv := mtlsServer(t, p, leashtls.NoRevocation{}, rej, func(o *leashtls.ServerOptions) { o.Now = clock.Now })
	start := clock.Now()
	runner := p.ca.Issue(t, testca.LeafOptions{Role: "runner", Name: "r1", EKUs: clientAuthOnly(), NotAfter: start.Add(time.Hour)})
	ccfg := p.clientConfig(t, runner)
	ccfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)

	if _, err := dial(srv.addr, ccfg); err != nil {
		t.Fatalf("first connection: %v", err)
	}
	if res := srv.next(t); res.err != nil {
		t.Fatalf("first connection: server: %v", res.err)
	}

	clock.Set(runner.Cert.NotAfter.Add(time.Minute))
	state, err := dial(srv.addr, ccfg)
	if err == nil {
		t.Fatal("connection after expiry accepted")
	}
	res := srv.next(t)
	if got := leashtls.FailureReason(res.err); got != leashtls.ReasonExpired {
		t.Errorf("server FailureReason = %q, want expired (err: %v)", got, res.err)
	}
	if state.DidResume {
		t.Errorf("client resumed an expired session")
	}
}

// TestVerifyConnectionOnResumedState drives Config.VerifyConnection with
// the connection states a resumption hands it, including ones crypto/tls
// would not produce today, so each check stands on its own.
func TestVerifyConnectionOnResumedState(t *testing.T) {
	p := newPKI(t)
	clock := newFakeClock()
	rev := &fakeRevocation{}
	rej := &rejectLog{}
	cfg, err := leashtls.ServerConfig(leashtls.ServerOptions{
		Mode: leashtls.ModeMTLS, Certificate: p.src.GetCertificate, ClientCAs: p.ca.Pool(),
		Revocation: rev, OnReject: rej.OnReject, Now: clock.Now,
		Roles: []leashtls.Role{leashtls.RoleRunner},
	})
	if err != nil {
		t.Fatalf("ServerConfig: %v", err)
	}
	now := clock.Now()
	issue := func(o testca.LeafOptions) *testca.Leaf { return p.ca.Issue(t, o) }
	resumed := func(l *testca.Leaf) tls.ConnectionState {
		chain := append(slices.Clone(l.Chain), p.ca.Root)
		return tls.ConnectionState{
			HandshakeComplete: true, DidResume: true, Version: tls.VersionTLS13,
			PeerCertificates: l.Chain, VerifiedChains: [][]*x509.Certificate{chain},
		}
	}
	good := issue(testca.LeafOptions{Role: "runner", Name: "r1", EKUs: clientAuthOnly(), NotAfter: now.Add(time.Hour)})

	tests := []struct {
		name  string
		state tls.ConnectionState
		at    time.Time
		want  error
	}{
		{"valid", resumed(good), now, nil},
		{"leaf expired since the ticket", resumed(good), now.Add(2 * time.Hour), leashtls.ErrExpired},
		{"clock before notBefore", resumed(good), good.Cert.NotBefore.Add(-time.Minute), leashtls.ErrExpired},
		{"server-only usage", resumed(issue(testca.LeafOptions{Role: "runner", Name: "r1",
			EKUs: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})), now, leashtls.ErrBadUsage},
		{"any usage is not client auth", resumed(issue(testca.LeafOptions{Role: "runner", Name: "r1",
			EKUs: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})), now, leashtls.ErrBadUsage},
		{"no identity", resumed(issue(testca.LeafOptions{EKUs: clientAuthOnly()})), now, leashtls.ErrNoIdentity},
		{"role denied", resumed(issue(testca.LeafOptions{Role: "operator", Name: "alice", EKUs: clientAuthOnly()})), now, leashtls.ErrRoleDenied},
		{"certificate never verified", tls.ConnectionState{DidResume: true, PeerCertificates: good.Chain}, now, leashtls.ErrNotVerified},
		{"no certificate", tls.ConnectionState{DidResume: true}, now, leashtls.ErrNoClientCert},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock.Set(tt.at)
			err := cfg.VerifyConnection(tt.state)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("VerifyConnection = %v, want %v", err, tt.want)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "resumed session: ") {
				t.Errorf("error %q does not say the session was resumed", err)
			}
		})
	}
}
