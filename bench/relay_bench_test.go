package bench

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// The relay ceiling. Every byte through a tunnel crosses two sockets more
// than a direct connection: the client's connection to the gateway, the
// tunnel itself, and the runner's connection to the service. A relay
// chain is that path and nothing else: two relays, each reading and
// writing through a user-space buffer, with no TLS, no multiplexing and
// no splice(2). A tunnel through two processes does all that work and
// more, so the relay chain's ratio to direct is the most its ratio can be
// in the same setting: the bulk/relay rows.

// envRelayTo, set for TestHelperBackends, makes it a relay to the
// address it names instead of the services.
const envRelayTo = "LEASH_BENCH_RELAY_TO"

// relayChunk is a relay's read size: the tunnel's big copy buffer.
const relayChunk = 256 << 10

// relayChain starts two relays in this process, the first to the second
// and the second to target, and returns the first one's address.
func relayChain(tb testing.TB, target string) string {
	tb.Helper()
	return serveTCP(tb, relayConn(serveTCP(tb, relayConn(target))))
}

// relayConn returns a serveTCP handler that carries each connection to a
// new connection to target, both ways, until both directions have ended;
// half-closes pass through.
func relayConn(target string) func(net.Conn) {
	return func(c net.Conn) {
		up, err := net.DialTimeout("tcp", target, 10*time.Second)
		if err != nil {
			return
		}
		defer func() { _ = up.Close() }()
		var wg sync.WaitGroup
		wg.Go(func() {
			userCopy(up, c)
			_ = up.(*net.TCPConn).CloseWrite()
		})
		userCopy(c, up)
		_ = c.(*net.TCPConn).CloseWrite()
		wg.Wait()
	}
}

// userCopy copies src to dst through a buffer of its own. io.Copy between
// two TCP connections would splice(2) in the kernel, which no tunnel that
// encrypts can do, so the wrappers hide ReadFrom and WriteTo.
func userCopy(dst, src net.Conn) {
	buf := make([]byte, relayChunk)
	_, _ = io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, buf)
}
