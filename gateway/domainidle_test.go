package gateway

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// TestPublicConnHalfClose: the wrapper on public connections keeps the
// TCP half-close net/http's server relies on: the peer reads EOF and can
// still answer.
func TestPublicConnHalfClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return
		}
		defer c.Close()
		got, _ := io.ReadAll(c) // until the FIN
		_, _ = c.Write(append([]byte("got "), got...))
	}()
	raw, err := publicListener{ln}.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := raw.Write([]byte("answer")); err != nil {
		t.Fatal(err)
	}
	cw, ok := raw.(interface{ CloseWrite() error })
	if !ok {
		t.Fatal("a public connection cannot half-close")
	}
	if err := cw.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	back, err := io.ReadAll(raw)
	if err != nil || string(back) != "got answer" {
		t.Fatalf("after half-close: %q, %v", back, err)
	}
}

// closeCounter is a connection that only counts its closes.
type closeCounter struct {
	net.Conn
	closes atomic.Int32
}

func (c *closeCounter) Close() error { c.closes.Add(1); return nil }

// TestTrackIdleHTTP2: on an HTTP/2 connection the idle timeout of the
// last request to end closes the connection once no request has begun
// for that long; a request in progress, or one that begins in time, keeps
// it; a domain without an idle timeout leaves the connection to the
// listener. HTTP/1.x requests only hand their domain's timeout on.
func TestTrackIdleHTTP2(t *testing.T) {
	const d = 300 * time.Millisecond
	type step struct {
		at    time.Duration // from the start
		begin bool          // begin request id, else end it
		id    int
		idle  time.Duration // its domain's idle timeout
	}
	for _, tc := range []struct {
		name     string
		proto    int
		steps    []step
		closedAt time.Duration // 0: not closed within 5 s
	}{
		{"one request", 2, []step{{0, true, 1, d}, {time.Second, false, 1, d}}, time.Second + d},
		{"a request begins within the timeout", 2,
			[]step{{0, true, 1, d}, {100 * time.Millisecond, false, 1, d}, {300 * time.Millisecond, true, 2, d}, {time.Second, false, 2, d}},
			time.Second + d},
		{"overlapping requests: the last to end counts", 2,
			[]step{{0, true, 1, d}, {0, true, 2, d}, {100 * time.Millisecond, false, 1, d}, {2 * time.Second, false, 2, d}},
			2*time.Second + d},
		{"last domain has none", 2, []step{{0, true, 1, d}, {100 * time.Millisecond, false, 1, d}, {200 * time.Millisecond, true, 2, 0}, {300 * time.Millisecond, false, 2, 0}}, 0},
		{"HTTP/1.1 leaves it to the read deadline", 1, []step{{0, true, 1, d}, {100 * time.Millisecond, false, 1, d}}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cc := &closeCounter{}
				pc := &publicConn{Conn: cc}
				start := time.Now()
				done := map[int]func(){}
				for _, s := range tc.steps {
					time.Sleep(s.at - time.Since(start))
					if s.begin {
						r := httptest.NewRequest(http.MethodGet, "/", nil)
						r.ProtoMajor = tc.proto
						done[s.id] = trackIdle(r.WithContext(context.WithValue(r.Context(), publicConnKey{}, pc)), s.idle)
					} else {
						done[s.id]()
					}
				}
				// Just before the expected close (or 5 s when none), then at it.
				before := 5 * time.Second
				if tc.closedAt > 0 {
					before = tc.closedAt - time.Millisecond
				}
				time.Sleep(before - time.Since(start))
				synctest.Wait()
				if n := cc.closes.Load(); n != 0 {
					t.Fatalf("closed before %s", before)
				}
				if tc.closedAt > 0 {
					time.Sleep(time.Millisecond)
					synctest.Wait()
					if n := cc.closes.Load(); n != 1 {
						t.Fatalf("%d closes at %s, want 1", n, tc.closedAt)
					}
				}
				if tc.proto == 1 && time.Duration(pc.idle.Load()) != d {
					t.Fatalf("HTTP/1.1 idle timeout handed on: %s, want %s", time.Duration(pc.idle.Load()), d)
				}
			})
		})
	}
}
