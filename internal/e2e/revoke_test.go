package e2e

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/leashpki/leash/ca"
	"github.com/leashpki/leash/gateway/store"
	"github.com/leashpki/leash/internal/testharness"
	"github.com/leashpki/leash/protocol"
	"github.com/leashpki/leash/runner"
)

// TestRevokeClosesLiveConnection: revoking a runner closes its live
// connection (a long-poll in flight) within a second, refuses its next
// handshake, and a real runner stops saying it needs a new token.
func TestRevokeClosesLiveConnection(t *testing.T) {
	forEachStore(t, func(t *testing.T, opts testharness.Options) {
		h := testharness.New(t, opts)
		gw := h.StartGateway(t)
		victim := fakeRunner(t, h, gw, "victim")
		op := h.Client(t, ca.ProfileOperator, "alice")

		// A long-poll on a raw TLS connection, so that its closing is seen
		// directly rather than through an HTTP client's retries.
		conn, err := tls.Dial("tcp", strings.TrimPrefix(gw.APIURL, "https://"), victim.TLS)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = conn.Close() }()
		if _, err := io.WriteString(conn, "GET /v1/jobs/next?wait=30s HTTP/1.1\r\nHost: gateway\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		closed := make(chan time.Time, 1)
		go func() {
			_, _ = io.Copy(io.Discard, conn) // returns when the gateway closes the connection
			closed <- time.Now()
		}()
		// The victim's long-poll is the only one until it waits; the real
		// runner starts after that, so the count cannot be someone else's.
		testharness.Eventually(t, 5*time.Second, "long-poll waiting", func() bool {
			return strings.Contains(scrape(t, op, gw), "leash_gateway_longpoll_waiters 1")
		})
		real := h.StartRunner(t, gw, "real-1")
		testharness.Eventually(t, 10*time.Second, "real-1 registered", func() bool {
			return op.Do(t, http.MethodGet, gw.APIURL+"/v1/runners/real-1", nil, nil) == http.StatusOK
		})

		var resp protocol.RevokeResponse
		revoked := time.Now()
		if status := op.Do(t, http.MethodPost, gw.APIURL+"/v1/runners/victim/revoke", protocol.RevokeRequest{Reason: "keyCompromise"}, &resp); status != http.StatusOK {
			t.Fatalf("revoke: status %d", status)
		}
		if len(resp.Serials) != 1 || resp.ClosedConnections < 1 {
			t.Fatalf("revoke response %+v", resp)
		}
		if rows, err := h.Store.AuditLog(context.Background(), store.AuditQuery{Action: "revoke", Target: "victim"}); err != nil ||
			len(rows) != 1 || !strings.Contains(rows[0].Actor, "operator/alice") || !strings.Contains(rows[0].Detail, "key-compromise") {
			t.Errorf("revoke audit rows: %+v %v", rows, err)
		}
		select {
		case at := <-closed:
			if d := at.Sub(revoked); d > time.Second {
				t.Errorf("live connection closed %s after the revocation; want < 1s", d)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("live connection still open 5s after the revocation")
		}

		// A new handshake with the revoked certificate is refused.
		// crypto/tls sends bad_certificate for every refusal; the gateway
		// counts the reason.
		_, err = victim.HTTP.Get(gw.APIURL + "/v1/health")
		if err == nil || !strings.Contains(err.Error(), "bad certificate") {
			t.Fatalf("request with a revoked certificate: %v; want a refused handshake", err)
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("refusal was a timeout: %v", err)
		}
		if m := scrape(t, op, gw); !strings.Contains(m, `leash_gateway_handshake_failures_total{reason="revoked"} 1`) {
			t.Errorf("metrics do not count the revoked handshake:\n%s", grepLines(m, "handshake_failures"))
		}

		// A real runner, revoked, stops and says what it needs.
		if status := op.Do(t, http.MethodPost, gw.APIURL+"/v1/runners/real-1/revoke", protocol.RevokeRequest{}, nil); status != http.StatusOK {
			t.Fatalf("revoke real-1: status %d", status)
		}
		exited, err := real.Exited(15 * time.Second)
		if !exited || !errors.Is(err, runner.ErrNeedToken) {
			t.Fatalf("revoked runner: exited=%v err=%v; want ErrNeedToken", exited, err)
		}
		var rn protocol.Runner
		op.Do(t, http.MethodGet, gw.APIURL+"/v1/runners/real-1", nil, &rn)
		if rn.Status != protocol.RunnerRevoked {
			t.Errorf("runner status %q after revocation", rn.Status)
		}
	})
}

// scrape returns the gateway's /metrics text as the operator sees it.
func scrape(t *testing.T, c *testharness.Client, gw *testharness.Gateway) string {
	t.Helper()
	status, body, err := c.Raw(http.MethodGet, gw.APIURL+"/metrics", "", nil)
	if err != nil || status != http.StatusOK {
		t.Fatalf("scrape: %d %v", status, err)
	}
	return string(body)
}

func grepLines(text, substr string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
