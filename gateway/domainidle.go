package gateway

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/leashpki/leash/internal/tunnelio"
)

// publicConn is a connection on a public listener. It carries the idle
// timeout of the domain its last request was for, and applies it to the
// wait for the next request.
//
//   - HTTP/1.x: net/http's server starts that wait with one
//     SetReadDeadline right after it reports the connection idle, and this
//     connection replaces that deadline when the domain has its own.
//   - HTTP/2: one connection carries requests for one domain or several
//     at once, and the HTTP/2 server keeps its own idle timer (the
//     listener's). The connection counts its requests in progress; when
//     the last one ends and its domain has an idle timeout, a timer closes
//     the connection unless a request begins first. The listener's idle
//     timeout still applies too, so on HTTP/2 a domain's idle timeout can
//     shorten the wait but not lengthen it.
type publicConn struct {
	net.Conn
	idle     atomic.Int64 // nanoseconds; 0: the listener's idle timeout
	idleNext atomic.Bool  // the next SetReadDeadline starts an idle wait
	h2       atomic.Int32 // 0 not known yet, 1 HTTP/1.x, 2 HTTP/2

	mu      sync.Mutex  // HTTP/2: guards the three below
	active  int         // requests in progress
	idleGen uint64      // counts idle periods; a timer closes its own only
	timer   *time.Timer // the running idle timer, if any
}

// SetReadDeadline sets t, or the domain's idle deadline for an idle wait.
func (c *publicConn) SetReadDeadline(t time.Time) error {
	if c.idleNext.Swap(false) {
		if d := time.Duration(c.idle.Load()); d > 0 {
			t = time.Now().Add(d)
		}
	}
	return c.Conn.SetReadDeadline(t)
}

// CloseWrite half-closes the TCP connection underneath, as net/http's
// server does before it closes a connection whose request body it did not
// read (so that the client gets the answer, not a reset).
func (c *publicConn) CloseWrite() error {
	tunnelio.CloseWrite(c.Conn)
	return nil
}

type publicListener struct{ net.Listener }

func (l publicListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &publicConn{Conn: c}, nil
}

// publicConnOf returns the publicConn under c (through TLS), or nil.
func publicConnOf(c net.Conn) *publicConn {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	pc, _ := c.(*publicConn)
	return pc
}

// http1 reports whether c (pc's TLS connection, or pc) speaks HTTP/1.x,
// asking TLS once, when the connection first becomes active.
func (pc *publicConn) http1(c net.Conn) bool {
	if pc.h2.Load() == 0 {
		v := int32(1)
		if tc, ok := c.(*tls.Conn); ok && tc.ConnectionState().NegotiatedProtocol == "h2" {
			v = 2
		}
		pc.h2.Store(v)
	}
	return pc.h2.Load() == 1
}

type publicConnKey struct{}

// withPublicConn installs the hooks that hand a domain's idle timeout to
// its connection: the connection in every request's context, and the
// idle wait marked when the server reports the connection idle.
func withPublicConn(srv *http.Server) {
	srv.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		if pc := publicConnOf(c); pc != nil {
			return context.WithValue(ctx, publicConnKey{}, pc)
		}
		return ctx
	}
	srv.ConnState = func(c net.Conn, state http.ConnState) {
		if pc := publicConnOf(c); pc != nil && state != http.StateNew {
			pc.idleNext.Store(state == http.StateIdle && pc.http1(c))
		}
	}
}

// trackIdle makes d (0: the listener's) the idle timeout of the
// connection r arrived on, from the end of this request. Call the
// returned function when the request ends.
func trackIdle(r *http.Request, d time.Duration) (done func()) {
	pc, _ := r.Context().Value(publicConnKey{}).(*publicConn)
	switch {
	case pc == nil:
		return func() {}
	case r.ProtoMajor == 1:
		pc.idle.Store(int64(d))
		return func() {}
	}
	pc.mu.Lock()
	pc.active++
	pc.idleGen++
	if pc.timer != nil {
		pc.timer.Stop()
		pc.timer = nil
	}
	pc.mu.Unlock()
	return func() {
		pc.mu.Lock()
		defer pc.mu.Unlock()
		pc.active--
		if pc.active > 0 || d <= 0 {
			return
		}
		gen := pc.idleGen
		pc.timer = time.AfterFunc(d, func() {
			pc.mu.Lock()
			idle := pc.active == 0 && pc.idleGen == gen
			pc.mu.Unlock()
			if idle {
				_ = pc.Close() // the HTTP/2 server's reads end, and with them the connection
			}
		})
	}
}
