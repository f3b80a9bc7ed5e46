package e2e

import (
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leashpki/leash/ca"
	"github.com/leashpki/leash/gateway"
	"github.com/leashpki/leash/internal/testharness"
	"github.com/leashpki/leash/runner"
)

// freezer is a TCP relay that can stop moving bytes without closing
// anything: a peer that vanished (a dropped NAT mapping, a dead host), not
// one that said goodbye.
type freezer struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	frozen bool
	thaw   chan struct{}
	wg     sync.WaitGroup
}

func newFreezer(t *testing.T, target string) *freezer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &freezer{ln: ln, target: target, thaw: make(chan struct{})}
	close(f.thaw)
	f.wg.Go(f.serve)
	t.Cleanup(func() {
		f.set(false)
		_ = ln.Close()
		f.wg.Wait()
	})
	return f
}

func (f *freezer) set(frozen bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if frozen == f.frozen {
		return
	}
	f.frozen = frozen
	if frozen {
		f.thaw = make(chan struct{})
	} else {
		close(f.thaw)
	}
}

func (f *freezer) wait() {
	f.mu.Lock()
	ch := f.thaw
	f.mu.Unlock()
	<-ch
}

func (f *freezer) serve() {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", f.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		pipe := func(dst, src net.Conn) {
			defer f.wg.Done()
			buf := make([]byte, 32<<10)
			for {
				n, err := src.Read(buf)
				f.wait()
				if n > 0 {
					if _, werr := dst.Write(buf[:n]); werr != nil {
						break
					}
				}
				if err != nil {
					break
				}
			}
			_ = dst.Close()
			_ = src.Close()
		}
		f.wg.Add(2)
		go pipe(up, c)
		go pipe(c, up)
	}
}

// TestTunnelDeadPeer: when the path to the gateway silently stops moving
// bytes, both ends notice within about two keepalive intervals; the
// runner reopens its tunnel when the path works again.
func TestTunnelDeadPeer(t *testing.T) {
	const keepAlive = 500 * time.Millisecond
	h := testharness.New(t, testharness.Options{Gateway: func(c *gateway.Config) { c.TunnelKeepAlive = keepAlive }})
	gw := h.StartGateway(t)
	relay := newFreezer(t, strings.TrimPrefix(gw.APIURL, "https://"))
	r := h.StartRunner(t, gw, "far-away", testharness.RunnerOptions{
		Gateway:  "https://" + relay.ln.Addr().String(),
		Services: map[string]string{"echo": echoServer(t, "echo")},
		Options:  []runner.Option{runner.WithTunnelKeepAlive(keepAlive)},
	})
	testharness.Eventually(t, 10*time.Second, "tunnel", func() bool { return r.Agent.Tunnels() == 1 })
	op := h.Client(t, ca.ProfileOperator, "alice")
	c, err := op.Connect(t, gw, "far-away", "echo")
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Close()

	relay.set(true)
	frozeAt := time.Now()
	testharness.Eventually(t, 4*keepAlive+time.Second, "gateway notices the dead tunnel", func() bool {
		return strings.Contains(scrape(t, op, gw), "leash_gateway_tunnels 0")
	})
	t.Logf("gateway noticed after %s (keepalive %s)", time.Since(frozeAt).Round(time.Millisecond), keepAlive)
	relay.set(false)
	testharness.Eventually(t, 15*time.Second, "runner reopened its tunnel", func() bool { return r.Agent.Tunnels() >= 2 })
	testharness.Eventually(t, 10*time.Second, "service reachable again", func() bool {
		c, err := op.Connect(t, gw, "far-away", "echo")
		if err != nil {
			return false
		}
		defer func() { _ = c.Close() }()
		_, _ = io.WriteString(c, "ping")
		buf := make([]byte, 4)
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, err = io.ReadFull(c, buf)
		return err == nil && string(buf) == "ping"
	})
}
