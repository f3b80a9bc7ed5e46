package bench

import (
	"net"
	"testing"
	"time"

	"github.com/leashpki/leash/internal/tunnelio"
)

// The relay ceiling. Every byte through a tunnel crosses two sockets more
// than a direct connection: the client's connection to the gateway, the
// tunnel itself, and the runner's connection to the service. A relay
// chain is that path and nothing else: two relays, each copying with the
// tunnel's own user-space copy, with no TLS, no multiplexing and no
// splice(2). A tunnel through two processes does all that work and
// more, so the relay chain's ratio to direct is the most its ratio can be
// in the same setting: the bulk/relay rows.

// envRelayTo, set for TestHelperBackends, makes it a relay to the
// address it names instead of the services.
const envRelayTo = "LEASH_BENCH_RELAY_TO"

// relayChain starts two relays in this process, the first to the second
// and the second to target, and returns the first one's address.
func relayChain(tb testing.TB, target string) string {
	tb.Helper()
	return serveTCP(tb, relayConn(serveTCP(tb, relayConn(target))))
}

// relayConn returns a serveTCP handler that carries each connection to a
// new connection to target with the tunnel's own copy (tunnelio.Splice:
// user-space reads and writes, up to 256 KiB at a time, half-closes
// passed on), until both directions have ended.
func relayConn(target string) func(net.Conn) {
	var bufs tunnelio.Buffers
	return func(c net.Conn) {
		up, err := net.DialTimeout("tcp", target, 10*time.Second)
		if err != nil {
			return
		}
		defer func() { _ = up.Close() }()
		bufs.Splice(c, up)
	}
}
