package e2e

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/leashpki/leash/gateway/store"
	"github.com/leashpki/leash/internal/testharness"
	"github.com/leashpki/leash/protocol"
	"github.com/leashpki/leash/runner"
)

// TestConnectionClosedAtExpiry: the gateway closes a connection when the
// certificate it was opened with expires, even mid long-poll.
func TestConnectionClosedAtExpiry(t *testing.T) {
	h := testharness.New(t, testharness.Options{RunnerLifetime: 10 * time.Second})
	gw := h.StartGateway(t)
	c := fakeRunner(t, h, gw, "short-lived")
	conn, err := tls.Dial("tcp", strings.TrimPrefix(gw.APIURL, "https://"), c.TLS)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	if _, err := io.WriteString(conn, "GET /v1/jobs/next?wait=30s HTTP/1.1\r\nHost: gateway\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(25 * time.Second))
	_, err = io.Copy(io.Discard, conn) // ends when the gateway closes the connection
	closedAt := time.Now()
	var ne interface{ Timeout() bool }
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open 25s into a 30s long-poll with a 10s certificate")
	}
	notAfter := c.Cert.NotAfter
	if closedAt.Before(notAfter) || closedAt.After(notAfter.Add(2*time.Second)) {
		t.Fatalf("connection closed at %s; the certificate expired at %s", closedAt.Format(time.RFC3339Nano), notAfter.Format(time.RFC3339Nano))
	}
}

// TestRenewalWhileGatewayDown: a runner whose gateway is unreachable when
// renewal is due keeps its certificate, retries, reports it, and renews
// when the gateway is back; if the certificate expires first it stops
// with a clear need-a-token error.
func TestRenewalWhileGatewayDown(t *testing.T) {
	h := testharness.New(t, testharness.Options{RunnerLifetime: 12 * time.Second})
	gw := h.StartGateway(t)
	r := h.StartRunner(t, gw, "patient")
	testharness.Eventually(t, 10*time.Second, "enrolled", func() bool { return r.Agent.Certificate() != nil })
	first := r.Agent.Certificate()

	gw.Stop(t)
	// Past the renewal time (about 8s into 12s) with the gateway down.
	testharness.Eventually(t, 15*time.Second, "renewal overdue", func() bool { return time.Until(first.NotAfter) < 2500*time.Millisecond })
	if exited, err := r.Exited(0); exited {
		t.Fatalf("runner gave up before its certificate expired: %v", err)
	}
	gw = h.Restart(t, gw)
	testharness.Eventually(t, 10*time.Second, "renewed after the gateway came back", func() bool {
		return r.Agent.Certificate().SerialNumber.Cmp(first.SerialNumber) != 0
	})
	testharness.Eventually(t, 10*time.Second, "retry reported as an event", func() bool {
		evs, err := h.Store.Events(context.Background(), store.EventQuery{RunnerID: "patient", Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			if e.Kind == protocol.EventRotation && e.Level == "warn" && strings.Contains(e.Message, "retrying") {
				return true
			}
		}
		return false
	})

	gw.Stop(t)
	exited, err := r.Exited(20 * time.Second)
	if !exited || !errors.Is(err, runner.ErrNeedToken) || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("certificate expired with the gateway down: exited=%v err=%v; want ErrNeedToken saying it expired", exited, err)
	}
}
