package bench

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leashpki/leash/ca"
	"github.com/leashpki/leash/gateway"
	"github.com/leashpki/leash/internal/testharness"
	"github.com/leashpki/leash/runner"
)

const (
	domainRunner = "bench-web"
	domainName   = "bench.test"

	targetDomainHTTP = 0.35 // HTTP domain req/s ≥ 0.35x direct
)

// domainRig is one gateway in mTLS mode with both public listeners (plain
// HTTP and HTTPS, certificates from the embedded CA on demand) and one
// runner that serves domainName from the http service (serveHTTPBackend)
// with a single catch-all route. The domain is set through the operator
// API with no client policy, as `leash domain set --runner` would.
//
//	direct  a client of the backend's own address
//	http    a client of http://bench.test through the plain public listener
//	https   a client of https://bench.test through the HTTPS one
//
// backendConns counts the connections the backend accepted: through the
// domain these are the runner's, so churn in its pool shows there.
type domainRig struct {
	direct, http, https *httpLoad
	backendConns        atomic.Int64
}

func newDomainRig(b *testing.B) *domainRig {
	b.Helper()
	rig := &domainRig{}
	direct := serveCountingHTTPBackend(b, &rig.backendConns)
	h := testharness.New(b, testharness.Options{Gateway: func(c *gateway.Config) {
		c.PublicListen = "127.0.0.1:0"
		c.PublicTLSListen = "127.0.0.1:0"
		c.HeartbeatInterval = gateway.DefaultHeartbeatInterval
		c.OfflineAfter = time.Hour
	}})
	gw := h.StartGateway(b)
	r := h.StartRunner(b, gw, domainRunner, testharness.RunnerOptions{Domains: map[string][]runner.Route{
		domainName: {{Target: "http://" + direct}},
	}})
	testharness.Eventually(b, 10*time.Second, "tunnel open", func() bool { return r.Agent.Tunnels() == 1 })
	op := h.Client(b, ca.ProfileOperator, "bench-operator")
	status, answer, err := op.Raw(http.MethodPut, gw.APIURL+"/v1/domains/"+domainName, "application/json",
		`{"runner":"`+domainRunner+`"}`)
	if err != nil || status != http.StatusOK {
		b.Fatalf("set domain %s: %d %s %v", domainName, status, answer, err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(h.CA.Root())
	rig.direct = newHTTPLoad(b, direct)
	rig.http = newDomainLoad(b, "http://"+domainName+"/bench", gw.Server.PublicAddr().String(), nil)
	rig.https = newDomainLoad(b, "https://"+domainName+"/bench", gw.Server.PublicTLSAddr().String(),
		&tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12})
	body := bytes.Repeat([]byte("q"), httpBodySize)
	// The gateway routes the domain once the runner's tunnel is registered
	// with it; until then it answers 503. HTTPS also waits for the first
	// certificate the embedded CA issues for domainName.
	for _, l := range []*httpLoad{rig.http, rig.https} {
		testharness.Eventually(b, 20*time.Second, "1 KiB answer through "+l.url, func() bool {
			return l.do(body) == nil
		})
	}
	return rig
}

// newDomainLoad is an httpLoad for url (whose host names the domain)
// that dials addr, the gateway's public listener, for every connection.
// tlsConfig, when set, is used for https URLs; the server name is the
// URL's host.
func newDomainLoad(b *testing.B, url, addr string, tlsConfig *tls.Config) *httpLoad {
	l := &httpLoad{url: url}
	d := &net.Dialer{Timeout: 10 * time.Second}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			l.dials.Add(1)
			return d.DialContext(ctx, "tcp", addr)
		},
		TLSClientConfig:     tlsConfig,
		MaxIdleConns:        httpConns,
		MaxIdleConnsPerHost: httpConns,
		MaxConnsPerHost:     httpConns,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
		// HTTP/1.1 like the direct rows: 50 connections, one request each
		// at a time. (A custom DialContext turns HTTP/2 off anyway.)
		ForceAttemptHTTP2: false,
	}
	b.Cleanup(tr.CloseIdleConnections)
	l.client = &http.Client{Transport: tr, Timeout: 30 * time.Second}
	return l
}

// BenchmarkTunnelDomainHTTP is BenchmarkTunnelHTTP through an HTTP domain
// instead of a TCP service: httpConns (50) client goroutines, each on its
// own keep-alive connection, POST 1 KiB and read a 1 KiB answer, b.N
// requests in all.
//
//	direct         the client talks to the backend on loopback
//	http           the client talks to the gateway's plain HTTP public
//	               listener with Host: bench.test; the gateway applies the
//	               domain's (empty) client policy and reverse-proxies over
//	               a keep-alive yamux stream in the runner's mTLS tunnel;
//	               the runner matches its route and reverse-proxies to the
//	               backend
//	https          the same through the HTTPS public listener: the client
//	               trusts the harness root, and the gateway serves a
//	               certificate for bench.test issued by the embedded CA
//	paced/…        as above, but the 50 connections together send
//	               httpPacedRate (1,000) requests per second on a fixed
//	               schedule
//
// Reported metrics: req/s, p50-ms, p99-ms, dials (client connections
// opened during the timed loop; 0 when keep-alive holds), backend-dials
// (connections the backend accepted during it: through the domain these
// are the runner's, so they show churn in its pool), and for the
// domain rows x-direct (closed loop only), p50-added-ms and p99-added-ms
// against the plain direct figures, which are measured inside the same
// sub-benchmark over as many requests, half before and half after the
// timed loop (bracket). The https rows compare with plain HTTP direct, so
// their x-direct includes the TLS termination the gateway does.
func BenchmarkTunnelDomainHTTP(b *testing.B) {
	rig := newDomainRig(b)
	body := bytes.Repeat([]byte("q"), httpBodySize)
	warmHTTP(b, body, rig.direct, rig.http, rig.https)
	closed, paced := httpLoops(body)
	// runHTTP, and the connections the backend accepted meanwhile.
	run := func(b *testing.B, l *httpLoad, load func(int) poolResult) poolResult {
		backendDials := rig.backendConns.Load()
		res := runHTTP(b, l, load)
		b.ReportMetric(float64(rig.backendConns.Load()-backendDials), "backend-dials")
		return res
	}
	b.Run("direct", func(b *testing.B) { run(b, rig.direct, closed(rig.direct)) })
	b.Run("http", func(b *testing.B) { compareHTTP(b, rig.direct, rig.http, closed, run, targetDomainHTTP, "domain") })
	b.Run("https", func(b *testing.B) { compareHTTP(b, rig.direct, rig.https, closed, run, targetDomainHTTP, "domain") })
	b.Run("paced", func(b *testing.B) {
		b.Run("direct", func(b *testing.B) { run(b, rig.direct, paced(rig.direct)) })
		b.Run("http", func(b *testing.B) { compareHTTP(b, rig.direct, rig.http, paced, run, 0, "domain") })
		b.Run("https", func(b *testing.B) { compareHTTP(b, rig.direct, rig.https, paced, run, 0, "domain") })
	})
}
