package bench

import (
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
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
//
// BenchmarkTunnelServerCore measures the same kind of reference for new
// connections and for HTTP. For new connections the relay chain does one
// thing the tunnel does not (the first relay dials the second, where the
// gateway opens a stream on a connection it has), so it is a reference,
// not a strict bound. For a domain the gateway must read every request
// (filters, limits, X-Forwarded-*) and the runner passes the stream on: the
// reference is a bare httputil.ReverseProxy in one process in front of a
// relay in another, with no TLS, no filters and no multiplexing.

// envRelayTo, set for TestHelperBackends, makes it a relay to each of
// the addresses it names (separated by spaces) instead of the services.
// envProxyTo makes it a bare HTTP reverse proxy to the address it names.
const (
	envRelayTo = "LEASH_BENCH_RELAY_TO"
	envProxyTo = "LEASH_BENCH_PROXY_TO"
)

// serveRelays starts a relay to each of targets and returns their
// addresses, separated by spaces.
func serveRelays(tb testing.TB, targets string) string {
	tb.Helper()
	var addrs []string
	for _, t := range strings.Fields(targets) {
		addrs = append(addrs, serveTCP(tb, relayConn(t)))
	}
	return strings.Join(addrs, " ")
}

// serveProxy starts a bare HTTP reverse proxy to target, with a kept-alive
// connection pool as large as the gateway's for a domain, and returns its
// address.
func serveProxy(tb testing.TB, target string) string {
	tb.Helper()
	to := &url.URL{Scheme: "http", Host: target}
	srv := httptest.NewUnstartedServer(&httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(to) },
		Transport: &http.Transport{MaxIdleConnsPerHost: 128, IdleConnTimeout: time.Minute, DisableCompression: true},
	})
	srv.Start()
	tb.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

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
