package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/leashpki/leash/gateway/store/sqlitestore"
	"github.com/leashpki/leash/internal/tunnelio"
	"github.com/leashpki/leash/protocol"
	leashtls "github.com/leashpki/leash/tls"
)

// heldConn holds its first Write until gate is closed: the gateway's
// answer to an upgrade, written while the test looks at the gateway.
// writing is closed when that Write begins.
type heldConn struct {
	net.Conn
	gate    <-chan struct{}
	writing chan struct{}
	once    sync.Once
}

func (c *heldConn) Write(p []byte) (int, error) {
	c.once.Do(func() {
		close(c.writing)
		<-c.gate
	})
	return c.Conn.Write(p)
}

// hijackable is a ResponseWriter whose connection is conn.
type hijackable struct {
	http.ResponseWriter
	conn net.Conn
}

func (h hijackable) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return h.conn, bufio.NewReadWriter(bufio.NewReader(h.conn), bufio.NewWriter(h.conn)), nil
}

// heldTunnel is a runner's tunnel upgrade whose answer the gateway
// writes only once open is called. No synctest bubble: yamux keeps
// timers in a package-wide pool, which bubbles must not share.
type heldTunnel struct {
	s          *Server
	req        *http.Request
	runnerEnd  net.Conn
	open       func()          // lets the answer through
	handled    chan struct{}   // closed when the tunnel handler returns
	handlerErr error           // what it returned
	dials      chan dialResult // the stream asked for by dial
}

type dialResult struct {
	conn net.Conn
	err  error
}

// before, if not nil, is registered first: the runner's tunnel before a
// rotation.
func startHeldTunnel(t *testing.T, before *tunnel) *heldTunnel {
	log := slog.New(slog.DiscardHandler)
	st, err := sqlitestore.Open(t.Context(), filepath.Join(t.TempDir(), "leash.db"))
	if err != nil {
		t.Fatal(err)
	}
	h := &heldTunnel{
		s: &Server{st: st, log: log, now: time.Now, tunnels: newTunnels(log),
			conns: newConnTracker(log, time.Now), stopping: make(chan struct{})},
		handled: make(chan struct{}),
		dials:   make(chan dialResult, 1),
	}
	if before != nil {
		h.s.tunnels.add(before)
	}
	gatewayEnd, runnerEnd := net.Pipe()
	h.runnerEnd = runnerEnd
	gate := make(chan struct{})
	var release sync.Once
	h.open = func() { release.Do(func() { close(gate) }) }
	t.Cleanup(func() { // on failure too: nothing left blocked
		h.open()
		_ = runnerEnd.Close()
		<-h.handled
		_ = st.Close()
	})
	h.req = httptest.NewRequest(http.MethodGet, strings.Fields(protocol.RouteTunnel)[1], nil)
	h.req.Header.Set("Connection", "Upgrade")
	h.req.Header.Set("Upgrade", protocol.TunnelProtocol)
	c := caller{id: leashtls.Identity{Role: leashtls.RoleRunner, Name: "edge-1", Serial: "10"}, verified: true}
	held := &heldConn{Conn: gatewayEnd, gate: gate, writing: make(chan struct{})}
	go func() {
		defer close(h.handled)
		w := hijackable{ResponseWriter: httptest.NewRecorder(), conn: held}
		h.handlerErr = h.s.tunnelHandler(w, h.req, c)
	}()
	<-held.writing
	if got := h.s.tunnels.get("edge-1"); got == nil || got == before {
		t.Fatal("the tunnel is not registered while its upgrade answer is being written")
	}
	go func() {
		conn, err := h.s.tunnels.dialKind(context.Background(), "edge-1", protocol.StreamTCP, "db", "tcp://client")
		h.dials <- dialResult{conn, err}
	}()
	return h
}

// TestTunnelKnownBeforeItsAnswer: the gateway registers a tunnel before
// the runner can read the answer to its upgrade, so a runner that counts
// its tunnel open can be reached through it at once. A stream asked for
// while the answer is held opens on the tunnel after the answer (that it
// waits for it: TestStreamWaitsForTunnelAnswer).
func TestTunnelKnownBeforeItsAnswer(t *testing.T) {
	h := startHeldTunnel(t, nil)

	// The runner: the answer first, then the stream request on yamux.
	h.open()
	br := bufio.NewReader(h.runnerEnd)
	resp, err := http.ReadResponse(br, h.req)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("first on the connection: %v %v; want the 101 answer", resp, err)
	}
	sess, err := yamux.Client(tunnelio.Buffered(h.runnerEnd, br), tunnelio.Config(slog.New(slog.DiscardHandler), 0))
	if err != nil {
		t.Fatal(err)
	}
	stream, err := sess.AcceptStream()
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stream).ReadSlice('\n')
	if err != nil {
		t.Fatal(err)
	}
	var req protocol.StreamRequest
	if err := json.Unmarshal(line, &req); err != nil || req.Service != "db" {
		t.Fatalf("stream request %q: %v", line, err)
	}
	reply, _ := json.Marshal(protocol.StreamReply{OK: true})
	if _, err := stream.Write(append(reply, '\n')); err != nil {
		t.Fatal(err)
	}
	d := <-h.dials
	if d.err != nil {
		t.Fatalf("the stream asked for during the answer: %v", d.err)
	}
	_ = d.conn.Close()
	_ = sess.Close()
	<-h.handled
	if h.handlerErr != nil {
		t.Fatalf("tunnel handler: %v", h.handlerErr)
	}
	if h.s.tunnels.get("edge-1") != nil {
		t.Fatal("the tunnel is still registered after its session ended")
	}
}

// TestTunnelAnswerFails: a runner that goes away before its answer is
// written leaves no tunnel behind: the stream that waited for the answer
// is refused as to a runner without a tunnel, and the tunnel it was to
// replace after a rotation, still open, is the runner's live one again.
func TestTunnelAnswerFails(t *testing.T) {
	answered := make(chan struct{})
	close(answered)
	for _, tc := range []struct {
		name   string
		before *tunnel
	}{
		{"first tunnel", nil},
		{"after a rotation", &tunnel{runner: "edge-1", ready: answered}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := startHeldTunnel(t, tc.before)
			_ = h.runnerEnd.Close()
			h.open()
			d := <-h.dials
			if !errors.Is(d.err, errNoTunnel) {
				t.Fatalf("the stream that waited for a failed answer: %v %v; want errNoTunnel", d.conn, d.err)
			}
			<-h.handled
			if got := h.s.tunnels.get("edge-1"); got != tc.before {
				t.Fatalf("live tunnel after a failed answer: %p, want %p (the one before)", got, tc.before)
			}
		})
	}
}

// TestStreamWaitsForTunnelAnswer: a stream asked for on a tunnel whose
// upgrade answer is still being written waits for it, and ends as the
// answer does, or when its context ends first.
func TestStreamWaitsForTunnelAnswer(t *testing.T) {
	for _, tc := range []struct {
		name string
		end  func(tn *tunnel, cancel context.CancelFunc)
		want error
	}{
		{"answer failed", func(tn *tunnel, _ context.CancelFunc) { close(tn.ready) }, errNoTunnel},
		{"context ended", func(_ *tunnel, cancel context.CancelFunc) { cancel() }, context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ts := newTunnels(slog.New(slog.DiscardHandler))
				tn := &tunnel{runner: "edge-1", ready: make(chan struct{})}
				ts.add(tn)
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				errs := make(chan error, 1)
				go func() {
					_, err := ts.dialKind(ctx, "edge-1", protocol.StreamTCP, "db", "tcp://client")
					errs <- err
				}()
				synctest.Wait()
				select {
				case err := <-errs:
					t.Fatalf("the stream did not wait for the upgrade answer: %v", err)
				default:
				}
				tc.end(tn, cancel)
				if err := <-errs; !errors.Is(err, tc.want) {
					t.Fatalf("got %v, want %v", err, tc.want)
				}
			})
		})
	}
}
