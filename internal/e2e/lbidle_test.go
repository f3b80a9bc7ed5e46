package e2e

import (
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leashpki/leash/gateway"
	"github.com/leashpki/leash/internal/testharness"
	"github.com/leashpki/leash/runner"
)

// idleCutter is a TCP relay that behaves like a load balancer with an idle
// timeout: a connection that carries no byte in either direction for idle
// is closed at both ends.
type idleCutter struct {
	ln     net.Listener
	target string
	idle   time.Duration
	cuts   atomic.Int64
	wg     sync.WaitGroup

	mu     sync.Mutex
	opened map[net.Conn]time.Time // connections open now, by accept time
}

func newIdleCutter(t *testing.T, target string, idle time.Duration) *idleCutter {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &idleCutter{ln: ln, target: target, idle: idle, opened: map[net.Conn]time.Time{}}
	c.wg.Go(c.serve)
	t.Cleanup(func() { _ = ln.Close(); c.wg.Wait() })
	return c
}

func (c *idleCutter) serve() {
	for {
		down, err := c.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", c.target)
		if err != nil {
			_ = down.Close()
			continue
		}
		c.mu.Lock()
		c.opened[down] = time.Now()
		c.mu.Unlock()
		var last atomic.Int64 // unix nanoseconds of the last byte either way
		last.Store(time.Now().UnixNano())
		var once sync.Once
		closeBoth := func(cut bool) {
			once.Do(func() {
				if cut {
					c.cuts.Add(1)
				}
				_ = up.Close()
				_ = down.Close()
				c.mu.Lock()
				delete(c.opened, down)
				c.mu.Unlock()
			})
		}
		pipe := func(dst, src net.Conn) {
			buf := make([]byte, 32<<10)
			for {
				_ = src.SetReadDeadline(time.Now().Add(c.idle / 4))
				n, err := src.Read(buf)
				if n > 0 {
					last.Store(time.Now().UnixNano())
					if _, werr := dst.Write(buf[:n]); werr != nil {
						closeBoth(false)
						return
					}
				}
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					if time.Since(time.Unix(0, last.Load())) >= c.idle {
						closeBoth(true)
						return
					}
					continue
				}
				if err != nil {
					closeBoth(false)
					return
				}
			}
		}
		c.wg.Go(func() { pipe(up, down) })
		c.wg.Go(func() { pipe(down, up) })
	}
}

// upFor reports whether a connection has been open for at least d.
func (c *idleCutter) upFor(d time.Duration) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, at := range c.opened {
		if time.Since(at) >= d {
			return true
		}
	}
	return false
}

// TestTunnelSurvivesLoadBalancerIdleTimeout: with keepalives shorter than
// a load balancer's idle timeout (30 s against the usual 60 s in
// production; 300 ms against 1 s here) the tunnel stays up through long
// quiet periods; with keepalives longer than it, the same balancer cuts
// the tunnel, which shows the cutter works.
func TestTunnelSurvivesLoadBalancerIdleTimeout(t *testing.T) {
	const idle = time.Second
	tests := []struct {
		name      string
		keepAlive time.Duration
		survives  bool
	}{
		{"keepalive below the idle timeout", 300 * time.Millisecond, true},
		{"keepalive above the idle timeout", 3 * time.Second, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := testharness.New(t, testharness.Options{Gateway: func(c *gateway.Config) { c.TunnelKeepAlive = tt.keepAlive }})
			gw := h.StartGateway(t)
			lb := newIdleCutter(t, strings.TrimPrefix(gw.APIURL, "https://"), idle)
			r := h.StartRunner(t, gw, "behind-lb", testharness.RunnerOptions{
				Gateway: "https://" + lb.ln.Addr().String(),
				Options: []runner.Option{runner.WithTunnelKeepAlive(tt.keepAlive)},
			})
			testharness.Eventually(t, 10*time.Second, "tunnel", func() bool { return r.Agent.Tunnels() >= 1 })
			if tt.survives {
				// No user traffic for four idle timeouts: only keepalives
				// cross the tunnel's connection. (The runner's other
				// connections, a long poll among them, may be cut; its
				// client transport redials them.)
				testharness.Eventually(t, 10*time.Second, "a connection open for 4 idle timeouts", func() bool {
					return lb.upFor(4*idle) || r.Agent.Tunnels() > 1
				})
				if n := r.Agent.Tunnels(); n != 1 {
					t.Fatalf("tunnels opened %d, want 1: the balancer cut the tunnel (%d cuts in all)", n, lb.cuts.Load())
				}
				return
			}
			testharness.Eventually(t, 15*time.Second, "the balancer cuts the quiet tunnel and the runner reopens it", func() bool {
				return lb.cuts.Load() > 0 && r.Agent.Tunnels() >= 2
			})
		})
	}
}
