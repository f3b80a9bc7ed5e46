package runner

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/leashpki/leash/internal/tunnelio"
)

// rotatingTransport is the one RoundTripper behind the runner's one
// http.Client. Every request goes through it; it hands each to the
// http.Transport of the current certificate generation.
//
// Why generations: an HTTP/1.1 connection keeps the client certificate it
// handshook with. After a rotation, closing idle connections is not
// enough, because a connection busy with a long-poll returns to the pool
// afterwards and would be reused with the old certificate, until the
// gateway closes it when that certificate expires, possibly in the middle
// of a request. So a rotation starts a new generation: new requests go to
// a fresh http.Transport that handshakes with the new certificate, while
// requests in flight finish undisturbed on the old one, whose connections
// are closed as soon as its last request is done.
type rotatingTransport struct {
	newTransport func() *http.Transport

	mu      sync.Mutex
	current *generation
}

type generation struct {
	t        *http.Transport
	inflight int
	retired  bool
}

func newRotatingTransport(tlsConfig *tls.Config, proxy func(*http.Request) (*url.URL, error)) *rotatingTransport {
	if proxy == nil {
		proxy = http.ProxyFromEnvironment
	}
	// Every connection can gather a tunnel's large frames into one write
	// (see openTunnel); the buffers are shared and held only while used.
	gather := &tunnelio.Gatherer{}
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	rt := &rotatingTransport{newTransport: func() *http.Transport {
		return &http.Transport{
			Proxy: proxy,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				c, err := dialer.DialContext(ctx, network, addr)
				if err != nil {
					return nil, err
				}
				return gather.Conn(c), nil
			},
			TLSClientConfig:       tlsConfig,
			TLSHandshakeTimeout:   10 * time.Second,
			MaxIdleConnsPerHost:   4,
			IdleConnTimeout:       90 * time.Second,
			ExpectContinueTimeout: time.Second,
		}
	}}
	rt.current = &generation{t: rt.newTransport()}
	return rt
}

// RoundTrip sends req on the current generation.
func (rt *rotatingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	rt.mu.Lock()
	g := rt.current
	g.inflight++
	rt.mu.Unlock()
	resp, err := g.t.RoundTrip(req)
	if err != nil {
		rt.done(g)
		return nil, err
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		// An upgraded connection (the tunnel) has left the pool; its body
		// is the connection itself and must stay writable.
		rt.done(g)
		return resp, nil
	}
	// The request is in flight until its body is consumed or closed.
	resp.Body = &trackedBody{ReadCloser: resp.Body, done: func() { rt.done(g) }}
	return resp, nil
}

func (rt *rotatingTransport) done(g *generation) {
	rt.mu.Lock()
	g.inflight--
	closeNow := g.retired && g.inflight == 0
	rt.mu.Unlock()
	if closeNow {
		g.t.CloseIdleConnections()
	}
}

// rotate starts a new generation after a certificate swap. Idle
// connections of the old one close at once, busy ones after their request.
func (rt *rotatingTransport) rotate() {
	rt.mu.Lock()
	old := rt.current
	old.retired = true
	rt.current = &generation{t: rt.newTransport()}
	rt.mu.Unlock()
	old.t.CloseIdleConnections()
}

// CloseIdleConnections is called by http.Client.CloseIdleConnections.
func (rt *rotatingTransport) CloseIdleConnections() {
	rt.mu.Lock()
	g := rt.current
	rt.mu.Unlock()
	g.t.CloseIdleConnections()
}

type trackedBody struct {
	io.ReadCloser
	once sync.Once
	done func()
}

func (b *trackedBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.done)
	return err
}
