package gateway

import (
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/leashpki/leash/internal/testca"
)

// tlsServerConn is the gateway's end of a TLS connection over a pipe whose
// client presented leaf, handshake done.
func tlsServerConn(t *testing.T, ca *testca.CA, server, client *testca.Leaf) *tls.Conn {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() { _ = a.Close(); _ = b.Close() })
	srv := tls.Server(a, &tls.Config{Certificates: []tls.Certificate{server.TLSCertificate()},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.Pool()})
	cli := tls.Client(b, &tls.Config{Certificates: []tls.Certificate{client.TLSCertificate()},
		RootCAs: ca.Pool(), ServerName: "gateway.test"})
	done := make(chan error, 1)
	go func() { done <- cli.Handshake() }()
	if err := srv.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = io.Copy(io.Discard, cli) }() // drain, so that the server's writes and close_notify go through
	return srv
}

// TestCloseSerialCountsEveryClose: closeSerial reports every connection
// closed because a serial is revoked, also those an earlier call closed
// (the revocation watch can get there between the revoking handler's
// store write and its own call), and counts none twice; a connection of a
// revoked serial tracked later is closed and counted too.
func TestCloseSerialCountsEveryClose(t *testing.T) {
	ca := testca.New(t)
	server := ca.Issue(t, testca.LeafOptions{DNSNames: []string{"gateway.test"}})
	victim := ca.Issue(t, testca.LeafOptions{Role: "runner", Name: "victim"})
	other := ca.Issue(t, testca.LeafOptions{Role: "runner", Name: "other"})
	tr := newConnTracker(slog.New(slog.DiscardHandler), time.Now)
	first, second := tlsServerConn(t, ca, server, victim), tlsServerConn(t, ca, server, victim)
	bystander := tlsServerConn(t, ca, server, other)
	for _, c := range []net.Conn{first, second, bystander} {
		tr.track(c)
	}

	if n := tr.closeSerial(victim.Serial(), "revoked"); n != 2 {
		t.Fatalf("the watch's call closed %d, want 2", n)
	}
	// The server reports both closed, as net/http does.
	tr.connState(first, http.StateClosed)
	tr.connState(second, http.StateClosed)
	if n := tr.closeSerial(victim.Serial(), "revoked"); n != 2 {
		t.Fatalf("the handler's call after it reports %d, want 2", n)
	}
	for name, c := range map[string]net.Conn{"first": first, "second": second} {
		if _, err := c.Write([]byte("x")); err == nil {
			t.Errorf("%s connection of the revoked serial still open", name)
		}
	}
	if _, err := bystander.Write([]byte("x")); err != nil {
		t.Errorf("another serial's connection was closed: %v", err)
	}

	late := tlsServerConn(t, ca, server, victim)
	tr.track(late)
	if n := tr.closeSerial(victim.Serial(), "revoked"); n != 3 {
		t.Fatalf("after a connection tracked late: %d, want 3", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := late.Write([]byte("x")); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a connection of a revoked serial, tracked after the revocation, stays open")
		}
		time.Sleep(10 * time.Millisecond) // track closes it from a goroutine of its own
	}
}
