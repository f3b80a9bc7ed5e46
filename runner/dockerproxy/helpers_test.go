package dockerproxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// shortDir returns a new directory with a short path, for unix sockets
// (at most 107 bytes; t.TempDir's names grow with the test's name).
func shortDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "ldp-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// seen is a request as the fake engine received it.
type seen struct {
	Method, URI, Host string
	Header            http.Header
	Body              string
}

// fakeEngine is a recording stand-in for dockerd on a unix socket.
type fakeEngine struct {
	socket  string
	respond func(w http.ResponseWriter, r *http.Request) // default: 200 {"ok":true}

	mu   sync.Mutex
	reqs []seen
}

// startFakeEngine serves a recording engine until t ends.
func startFakeEngine(t testing.TB, respond func(http.ResponseWriter, *http.Request)) *fakeEngine {
	t.Helper()
	f := &fakeEngine{socket: filepath.Join(shortDir(t), "docker.sock"), respond: respond}
	ln, err := net.Listen("unix", f.socket)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(f.serve), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("fake engine: %v", err)
		}
	})
	return f
}

func (f *fakeEngine) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.reqs = append(f.reqs, seen{r.Method, r.RequestURI, r.Host, r.Header.Clone(), string(body)})
	f.mu.Unlock()
	if f.respond != nil {
		f.respond(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"ok":true}`)
}

// take returns and forgets the requests received so far.
func (f *fakeEngine) take() []seen {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.reqs
	f.reqs = nil
	return r
}

// serveProxy serves p over TCP until t ends and returns its address.
func serveProxy(t testing.TB, p *Proxy) string {
	t.Helper()
	srv := httptest.NewServer(p)
	t.Cleanup(func() {
		srv.Close()
		p.CloseIdleConnections()
	})
	return srv.Listener.Addr().String()
}

// newProxy returns a Proxy for cfg or fails t.
func newProxy(t testing.TB, cfg Config) *Proxy {
	t.Helper()
	p, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p
}

// rawConn is a client connection that writes requests byte for byte.
type rawConn struct {
	t  testing.TB
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t testing.TB, network, addr string) *rawConn {
	t.Helper()
	c, err := net.DialTimeout(network, addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := c.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	return &rawConn{t: t, c: c, br: bufio.NewReader(c)}
}

func (rc *rawConn) send(raw string) {
	rc.t.Helper()
	if _, err := io.WriteString(rc.c, raw); err != nil {
		rc.t.Fatalf("write request: %v", err)
	}
}

// read reads one answer (to a request of method) and its whole body.
func (rc *rawConn) read(method string) (*http.Response, string) {
	rc.t.Helper()
	resp, err := http.ReadResponse(rc.br, &http.Request{Method: method})
	if err != nil {
		rc.t.Fatalf("read answer: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		rc.t.Fatalf("read body: %v", err)
	}
	return resp, string(b)
}

// do sends one raw request on a new connection and reads the answer.
func do(t testing.TB, addr, raw string) (*http.Response, string) {
	t.Helper()
	rc := dialRaw(t, "tcp", addr)
	rc.send(raw)
	method, _, _ := strings.Cut(raw, " ")
	return rc.read(method)
}

// req builds a raw HTTP/1.1 request with extra header lines, and Host
// docker unless they name another.
func req(method, target string, headers ...string) string {
	var b strings.Builder
	b.WriteString(method + " " + target + " HTTP/1.1\r\n")
	if !slices.ContainsFunc(headers, func(h string) bool { return strings.HasPrefix(strings.ToLower(h), "host:") }) {
		b.WriteString("Host: docker\r\n")
	}
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

// testContext is a context ending with t, or after a minute.
func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}
