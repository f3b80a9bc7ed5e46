package runner

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"
)

// connLog records the server side's connection states by client address.
type connLog struct {
	mu      sync.Mutex
	opened  []string // in order of StateNew
	closed  map[string]bool
	changed chan struct{} // one token: something was recorded
}

func newConnLog() *connLog {
	return &connLog{closed: map[string]bool{}, changed: make(chan struct{}, 1)}
}

func (l *connLog) hook(c net.Conn, s http.ConnState) {
	l.mu.Lock()
	switch s {
	case http.StateNew:
		l.opened = append(l.opened, c.RemoteAddr().String())
	case http.StateClosed, http.StateHijacked:
		l.closed[c.RemoteAddr().String()] = true
	}
	l.mu.Unlock()
	select {
	case l.changed <- struct{}{}:
	default:
	}
}

func (l *connLog) connections() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.opened...)
}

func (l *connLog) isClosed(addr string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed[addr]
}

// waitClosed waits until the server saw the connection from addr close.
func (l *connLog) waitClosed(t *testing.T, addr string) {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for !l.isClosed(addr) {
		select {
		case <-l.changed:
		case <-deadline.C:
			t.Fatalf("connection from %s still open after 10s", addr)
		}
	}
}

// transportFixture is a TLS test server and a rotatingTransport that
// trusts it. /ok answers at once; /block answers once release is called.
// A request for /gated stops on the client side, after the
// rotatingTransport picked its generation but before the http.Transport
// looks for a connection, until openGate is called.
type transportFixture struct {
	srv      *httptest.Server
	log      *connLog
	rt       *rotatingTransport
	client   *http.Client
	entered  chan string // /block sends the client's address on arrival
	release  func()
	gated    chan struct{} // a /gated request is waiting
	openGate func()
}

func newTransportFixture(t *testing.T) *transportFixture {
	t.Helper()
	f := &transportFixture{log: newConnLog(), entered: make(chan string, 1), gated: make(chan struct{}, 1)}
	unblock, gate := make(chan struct{}), make(chan struct{})
	var unblockOnce, gateOnce sync.Once
	f.release = func() { unblockOnce.Do(func() { close(unblock) }) }
	f.openGate = func() { gateOnce.Do(func() { close(gate) }) }
	ok := func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", ok)
	mux.HandleFunc("/gated", ok)
	mux.HandleFunc("/block", func(w http.ResponseWriter, r *http.Request) {
		f.entered <- r.RemoteAddr
		select {
		case <-unblock:
			_, _ = io.WriteString(w, "late")
		case <-r.Context().Done():
		}
	})
	f.srv = httptest.NewUnstartedServer(mux)
	f.srv.Config.ConnState = f.log.hook
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	t.Cleanup(f.release) // runs before srv.Close, which waits for handlers
	t.Cleanup(f.openGate)

	pool := x509.NewCertPool()
	pool.AddCert(f.srv.Certificate())
	// http.Transport asks Proxy before it looks for a connection, which
	// makes it the place to hold a request.
	proxy := func(r *http.Request) (*url.URL, error) {
		if r.URL.Path == "/gated" {
			f.gated <- struct{}{}
			<-gate
		}
		return nil, nil
	}
	f.rt = newRotatingTransport(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, proxy)
	f.client = &http.Client{Transport: f.rt}
	t.Cleanup(f.client.CloseIdleConnections)
	return f
}

// get fetches path, reads the whole answer and closes it.
func (f *transportFixture) get(t *testing.T, path string) string {
	t.Helper()
	resp, err := f.client.Get(f.srv.URL + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d, %v", path, resp.StatusCode, err)
	}
	return string(b)
}

func (f *transportFixture) inflight(g *generation) int {
	f.rt.mu.Lock()
	defer f.rt.mu.Unlock()
	return g.inflight
}

func TestRotatingTransportRotateUsesNewConnection(t *testing.T) {
	f := newTransportFixture(t)
	f.get(t, "/ok")
	f.get(t, "/ok")
	before := f.log.connections()
	if len(before) != 1 {
		t.Fatalf("two requests before rotation used %d connections, want 1 (keep-alive)", len(before))
	}

	f.rt.rotate()
	// The old generation's idle connection closes at once.
	f.log.waitClosed(t, before[0])
	f.get(t, "/ok")
	after := f.log.connections()
	if len(after) != 2 || after[1] == before[0] {
		t.Fatalf("after rotation: connections %v, want a second, new one", after)
	}
	f.get(t, "/ok")
	if got := f.log.connections(); len(got) != 2 {
		t.Errorf("the new generation did not reuse its connection: %v", got)
	}
}

func TestRotatingTransportInFlightRequestSurvivesRotation(t *testing.T) {
	f := newTransportFixture(t)
	type result struct {
		resp *http.Response
		err  error
	}
	results := make(chan result, 1)
	var wg sync.WaitGroup
	// Cleanups run last-registered first: unblock the handler, then wait.
	t.Cleanup(wg.Wait)
	t.Cleanup(f.release)
	wg.Go(func() {
		resp, err := f.client.Get(f.srv.URL + "/block")
		results <- result{resp, err}
	})
	var busy string
	select {
	case busy = <-f.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the blocking request never reached the server")
	}

	f.rt.mu.Lock()
	old := f.rt.current
	f.rt.mu.Unlock()
	f.rt.rotate()
	if n := f.inflight(old); n != 1 {
		t.Fatalf("old generation has %d requests in flight, want 1", n)
	}
	// (a) a new request does not wait for the busy connection, nor reuse
	// the old generation's pool.
	f.get(t, "/ok")
	if conns := f.log.connections(); len(conns) != 2 || conns[1] == busy {
		t.Fatalf("connections %v: want a second one besides %s", conns, busy)
	}

	// (b) the request in flight during the rotation completes.
	f.release()
	var r result
	select {
	case r = <-results:
	case <-time.After(10 * time.Second):
		t.Fatal("the in-flight request did not complete")
	}
	if r.err != nil {
		t.Fatalf("in-flight request: %v", r.err)
	}
	body, err := io.ReadAll(r.resp.Body)
	if err != nil || string(body) != "late" || r.resp.StatusCode != http.StatusOK {
		t.Fatalf("in-flight request: status %d, body %q, %v", r.resp.StatusCode, body, err)
	}
	// Read to the end but not closed: still counted. (The connection itself
	// may already be gone: once a retired http.Transport's connection turns
	// idle at the body's EOF, net/http closes it, because rotate called
	// CloseIdleConnections on that transport. Either way it is never reused.)
	if n := f.inflight(old); n != 1 {
		t.Errorf("before Close the old generation has %d requests in flight, want 1", n)
	}

	// (c) closing the body retires the old generation's connection.
	if err := r.resp.Body.Close(); err != nil {
		t.Fatal(err)
	}
	f.log.waitClosed(t, busy)
	if n := f.inflight(old); n != 0 {
		t.Errorf("after Close the old generation has %d requests in flight, want 0", n)
	}
	f.rt.mu.Lock()
	cur := f.rt.current
	f.rt.mu.Unlock()
	if n := f.inflight(cur); n != 0 {
		t.Errorf("the current generation has %d requests in flight, want 0", n)
	}
}

// A request that picked the old generation but gets its connection only
// after the rotation (so after the old generation's idle connections were
// closed) must still not leave that connection open in the old pool: it
// closes when the request's body does.
func TestRotatingTransportRetiredGenerationClosesLateConnection(t *testing.T) {
	f := newTransportFixture(t)
	results := make(chan *http.Response, 1)
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	t.Cleanup(f.openGate)
	wg.Go(func() {
		resp, err := f.client.Get(f.srv.URL + "/gated")
		if err != nil {
			t.Errorf("GET /gated: %v", err)
		}
		results <- resp
	})
	select {
	case <-f.gated:
	case <-time.After(10 * time.Second):
		t.Fatal("the gated request never started")
	}
	f.rt.mu.Lock()
	old := f.rt.current
	f.rt.mu.Unlock()
	f.rt.rotate()
	f.openGate()

	var resp *http.Response
	select {
	case resp = <-results:
	case <-time.After(10 * time.Second):
		t.Fatal("the gated request did not complete")
	}
	if resp == nil {
		t.FailNow()
	}
	if body, err := io.ReadAll(resp.Body); err != nil || string(body) != "ok" {
		t.Fatalf("GET /gated: %q, %v", body, err)
	}
	conns := f.log.connections()
	if len(conns) != 1 {
		t.Fatalf("connections %v, want 1", conns)
	}
	if n := f.inflight(old); n != 1 {
		t.Errorf("before Close the old generation has %d requests in flight, want 1", n)
	}
	if err := resp.Body.Close(); err != nil {
		t.Fatal(err)
	}
	f.log.waitClosed(t, conns[0])
}

func TestRotatingTransportCloseIdleConnections(t *testing.T) {
	tests := []struct {
		name    string
		rotated bool
	}{
		{"first generation", false},
		{"after a rotation", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newTransportFixture(t)
			if tt.rotated {
				f.rt.rotate()
			}
			if got := f.get(t, "/ok"); got != "ok" {
				t.Fatalf("GET /ok = %q", got)
			}
			conns := f.log.connections()
			if len(conns) != 1 {
				t.Fatalf("connections %v, want 1", conns)
			}
			// http.Client passes the call on to its Transport.
			f.client.CloseIdleConnections()
			f.log.waitClosed(t, conns[0])
		})
	}
}

func TestRotatingTransportFailedRequestIsNotInFlight(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	rt := newRotatingTransport(&tls.Config{MinVersion: tls.VersionTLS12}, nil)
	client := &http.Client{Transport: rt}
	defer client.CloseIdleConnections()
	resp, err := client.Get("https://" + addr + "/")
	if err == nil {
		_ = resp.Body.Close()
		t.Fatal("a request to a closed port succeeded")
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.current.inflight != 0 {
		t.Errorf("a failed request left %d in flight", rt.current.inflight)
	}
}
