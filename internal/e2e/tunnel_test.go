package e2e

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leashpki/leash/ca"
	"github.com/leashpki/leash/gateway"
	"github.com/leashpki/leash/internal/testharness"
	"github.com/leashpki/leash/protocol"
)

// echoServer echoes every connection until EOF, then closes its write
// half; "count" mode instead reads to EOF and answers with the byte count
// and a SHA-256, which only works if the client's half-close arrived.
func echoServer(t *testing.T, mode string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer func() { _ = c.Close() }()
				switch mode {
				case "count":
					h := sha256.New()
					n, _ := io.Copy(h, c)
					fmt.Fprintf(c, "%d %x\n", n, h.Sum(nil))
				default:
					_, _ = io.Copy(c, c)
					_ = c.(*net.TCPConn).CloseWrite()
				}
			})
		}
	})
	return ln.Addr().String()
}

func tunnelSetup(t *testing.T) (*testharness.Harness, *testharness.Gateway, *testharness.Runner, *testharness.Client) {
	t.Helper()
	h := testharness.New(t, testharness.Options{})
	gw := h.StartGateway(t)
	r := h.StartRunner(t, gw, "svc-1", testharness.RunnerOptions{Services: map[string]string{
		"echo": echoServer(t, "echo"), "count": echoServer(t, "count"), "closed": "127.0.0.1:1"}})
	testharness.Eventually(t, 10*time.Second, "tunnel open", func() bool { return r.Agent.Tunnels() == 1 })
	return h, gw, r, h.Client(t, ca.ProfileOperator, "alice")
}

// TestTunnelTCP: byte-exact echo of a large transfer, half-close in both
// directions, and many concurrent connections through one tunnel.
func TestTunnelTCP(t *testing.T) {
	_, gw, _, op := tunnelSetup(t)

	t.Run("large transfer is byte-exact", func(t *testing.T) {
		size := int64(256 << 20)
		if !testing.Short() {
			size = 1 << 30
		}
		c, err := op.Connect(t, gw, "svc-1", "echo")
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = c.Close() }()
		src := rand.NewChaCha8([32]byte{1})
		sent, got := sha256.New(), sha256.New()
		var wg sync.WaitGroup
		var werr error
		wg.Go(func() {
			_, werr = io.Copy(c, io.TeeReader(io.LimitReader(src, size), sent))
			_ = c.(interface{ CloseWrite() error }).CloseWrite()
		})
		n, err := io.Copy(got, c)
		wg.Wait()
		if err != nil || werr != nil || n != size || !bytes.Equal(sent.Sum(nil), got.Sum(nil)) {
			t.Fatalf("echoed %d of %d bytes (read err %v, write err %v), digests equal: %v", n, size, err, werr, bytes.Equal(sent.Sum(nil), got.Sum(nil)))
		}
	})

	t.Run("half-close", func(t *testing.T) {
		c, err := op.Connect(t, gw, "svc-1", "count")
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = c.Close() }()
		payload := bytes.Repeat([]byte("leash"), 100000)
		if _, err := c.Write(payload); err != nil {
			t.Fatal(err)
		}
		// The service answers only after it saw EOF: our write half must
		// close through the tunnel while our read half stays open.
		_ = c.(interface{ CloseWrite() error }).CloseWrite()
		answer, err := io.ReadAll(c)
		want := fmt.Sprintf("%d %x\n", len(payload), sha256.Sum256(payload))
		if err != nil || string(answer) != want {
			t.Fatalf("answer %q (%v), want %q", answer, err, want)
		}
	})

	t.Run("200 concurrent connections", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 200)
		for i := range 200 {
			wg.Go(func() {
				c, err := op.Connect(t, gw, "svc-1", "echo")
				if err != nil {
					errs <- err
					return
				}
				defer func() { _ = c.Close() }()
				msg := bytes.Repeat([]byte{byte(i)}, 64<<10)
				go func() {
					_, _ = c.Write(msg)
					_ = c.(interface{ CloseWrite() error }).CloseWrite()
				}()
				back, err := io.ReadAll(c)
				if err != nil || !bytes.Equal(back, msg) {
					errs <- fmt.Errorf("connection %d: %d bytes back (%v)", i, len(back), err)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})

	// Every stream is given back: the gateway tracks the streams in use
	// to wake them when a tunnel ends, and must not keep any.
	noStreamsInUse(t, op, gw)
}

// noStreamsInUse waits until the gateway has no tunnel stream in use.
func noStreamsInUse(t *testing.T, op *testharness.Client, gw *testharness.Gateway) {
	t.Helper()
	testharness.Eventually(t, 10*time.Second, "no tunnel stream in use", func() bool {
		return strings.Contains(scrape(t, op, gw), "leash_gateway_tunnel_streams_open 0\n")
	})
}

// TestTunnelRefusals: the runner refuses what it did not declare, whatever
// name the gateway passes on; a service that does not answer and a runner
// without a tunnel are clear errors; runners cannot use the connect route.
func TestTunnelRefusals(t *testing.T) {
	h, gw, _, op := tunnelSetup(t)
	tests := []struct {
		runner, service string
		want            string
	}{
		{"svc-1", "metadata", "403"},
		{"svc-1", "169.254.169.254:80", "403"},
		{"svc-1", "closed", "403"},
		{"nobody", "echo", "503"},
	}
	for _, tt := range tests {
		c, err := op.Connect(t, gw, tt.runner, tt.service)
		if err == nil {
			_ = c.Close()
			t.Errorf("connect %s/%s succeeded", tt.runner, tt.service)
			continue
		}
		if !strings.Contains(err.Error(), ": "+tt.want+" ") {
			t.Errorf("connect %s/%s: %v; want %s", tt.runner, tt.service, err, tt.want)
		}
	}
	nosy := h.Client(t, ca.ProfileRunner, "nosy")
	if _, err := nosy.Connect(t, gw, "svc-1", "echo"); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("a runner used the operator connect route: %v", err)
	}
	// svc-1 declares no Docker API: the gateway refuses before it asks.
	for _, path := range []string{"/v1/runners/svc-1/containers", "/v1/runners/svc-1/docker/_ping"} {
		if status, body, err := op.Raw(http.MethodGet, gw.APIURL+path, "", ""); err != nil || status != http.StatusForbidden {
			t.Errorf("GET %s on a runner without Docker: %d %s %v; want 403", path, status, body, err)
		}
	}
}

// TestTunnelRevocationAndRotation: after a rotation new streams go through
// the new tunnel and the old one drains away; revoking the runner tears
// the tunnel and its live streams down within a second.
func TestTunnelRevocationAndRotation(t *testing.T) {
	_, gw, r, op := tunnelSetup(t)
	live, err := op.Connect(t, gw, "svc-1", "echo")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = live.Close() }()

	j := waitJob(t, op, gw, submit(t, op, gw, protocol.JobSubmit{Runner: "svc-1", Kind: protocol.JobRotate}).ID)
	if j.State != protocol.JobSucceeded {
		t.Fatalf("rotate: %+v", j.Result)
	}
	testharness.Eventually(t, 10*time.Second, "second tunnel", func() bool { return r.Agent.Tunnels() == 2 })
	c, err := op.Connect(t, gw, "svc-1", "echo")
	if err != nil {
		t.Fatalf("connect after rotation: %v", err)
	}
	_ = c.Close()
	// The stream opened before the rotation still works on the old tunnel.
	if _, err := live.Write([]byte("still here")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	if _, err := io.ReadFull(live, buf); err != nil || string(buf) != "still here" {
		t.Fatalf("old stream after rotation: %q %v", buf, err)
	}

	var resp protocol.RevokeResponse
	revoked := time.Now()
	if status := op.Do(t, http.MethodPost, gw.APIURL+"/v1/runners/svc-1/revoke", protocol.RevokeRequest{}, &resp); status != http.StatusOK {
		t.Fatalf("revoke: %d", status)
	}
	_ = live.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = io.Copy(io.Discard, live)
	if d := time.Since(revoked); d > time.Second {
		t.Errorf("live stream ended %s after the revocation (%v); want < 1s", d, err)
	}
	testharness.Eventually(t, 5*time.Second, "no tunnel left", func() bool {
		return strings.Contains(scrape(t, op, gw), "leash_gateway_tunnels 0")
	})
}

// TestExposedServicePort: a gateway port published with Expose carries
// plain TCP clients to the runner's service; while the runner has no
// tunnel the connection is closed at once.
func TestExposedServicePort(t *testing.T) {
	h, gw, addr := exposeDB(t)

	// No runner yet: accepted, then closed without a byte.
	if c, err := net.Dial("tcp", addr); err == nil {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, _ := c.Read(make([]byte, 1))
		_ = c.Close()
		if n != 0 {
			t.Fatal("bytes from an exposed port without a runner")
		}
	}
	r := h.StartRunner(t, gw, "db-host", testharness.RunnerOptions{Services: map[string]string{"db": echoServer(t, "count")}})
	testharness.Eventually(t, 10*time.Second, "tunnel", func() bool { return r.Agent.Tunnels() == 1 })
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	payload := bytes.Repeat([]byte("x"), 3<<20)
	go func() {
		_, _ = c.Write(payload)
		_ = c.(*net.TCPConn).CloseWrite()
	}()
	answer, err := io.ReadAll(c)
	if want := fmt.Sprintf("%d %x\n", len(payload), sha256.Sum256(payload)); err != nil || string(answer) != want {
		t.Fatalf("through the exposed port: %q %v; want %q", answer, err, want)
	}
}

// TestExposedServicePortRefused: the gateway sends a client's first bytes
// with the stream request, before the runner answers. When the runner then
// refuses (its service does not answer), the client's connection is closed
// without a byte, the bytes go nowhere, and the refusal is counted.
func TestExposedServicePortRefused(t *testing.T) {
	h, gw, addr := exposeDB(t)
	r := h.StartRunner(t, gw, "db-host", testharness.RunnerOptions{Services: map[string]string{"db": freeAddr(t)}})
	testharness.Eventually(t, 10*time.Second, "tunnel", func() bool { return r.Agent.Tunnels() == 1 })
	op := h.Client(t, ca.ProfileOperator, "alice")

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	if _, err := c.Write([]byte("early bytes\n")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(c)
	var ne net.Error
	if len(got) != 0 || (errors.As(err, &ne) && ne.Timeout()) {
		t.Fatalf("a refused stream's client read %q, %v; want its connection closed without a byte", got, err)
	}
	// Closed, not only half-closed: the client's next writes are reset.
	testharness.Eventually(t, 5*time.Second, "the connection closed by the gateway", func() bool {
		_, err := c.Write([]byte("more\n"))
		return err != nil
	})
	testharness.Eventually(t, 5*time.Second, "the refusal counted", func() bool {
		return strings.Contains(scrape(t, op, gw), `leash_gateway_tunnel_streams_total{result="refused"} 1`)
	})
	noStreamsInUse(t, op, gw)
}

// exposeDB starts a gateway that exposes runner db-host's service db on
// a port of its own, and returns that port's address.
func exposeDB(t *testing.T) (*testharness.Harness, *testharness.Gateway, string) {
	t.Helper()
	expose := freeAddr(t)
	h := testharness.New(t, testharness.Options{Gateway: func(c *gateway.Config) {
		c.Expose = []gateway.Exposure{{Listen: expose, Runner: "db-host", Service: "db"}}
	}})
	gw := h.StartGateway(t)
	return h, gw, gw.Server.ExposedAddrs()[0].String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().String()
}
