package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// pipeBackend is an application served over in-memory connections: every
// dial of the transport under test is one net.Pipe, whose far end a real
// http.Server serves. Closing a far end is seen by the near end at once,
// which makes "the application closed an idle connection" exact.
type pipeBackend struct {
	srv   *http.Server
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
	dials atomic.Int32
	mu    sync.Mutex
	ends  []net.Conn // the server ends, in dial order
}

func newPipeBackend(t *testing.T, h http.Handler) *pipeBackend {
	t.Helper()
	b := &pipeBackend{conns: make(chan net.Conn), done: make(chan struct{}), srv: &http.Server{Handler: h}}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = b.srv.Serve(b)
	}()
	t.Cleanup(func() {
		_ = b.srv.Close()
		<-served
	})
	return b
}

func (b *pipeBackend) Accept() (net.Conn, error) {
	select {
	case c := <-b.conns:
		return c, nil
	case <-b.done:
		return nil, net.ErrClosed
	}
}

func (b *pipeBackend) Close() error {
	b.once.Do(func() { close(b.done) })
	return nil
}

func (b *pipeBackend) Addr() net.Addr { return &net.UnixAddr{Name: "pipe", Net: "pipe"} }

func (b *pipeBackend) dial(ctx context.Context) (net.Conn, error) {
	near, far := net.Pipe()
	select {
	case b.conns <- far:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	b.dials.Add(1)
	b.mu.Lock()
	b.ends = append(b.ends, far)
	b.mu.Unlock()
	return near, nil
}

// closeServerEnds closes every connection from the application's side.
func (b *pipeBackend) closeServerEnds() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.ends {
		_ = c.Close()
	}
}

// echo answers "METHOD PATH BODY".
var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	w.Header().Set("X-Got-Length", fmt.Sprint(r.ContentLength))
	switch r.URL.Path {
	case "/empty":
		w.WriteHeader(http.StatusNoContent)
		return
	case "/not-modified":
		w.WriteHeader(http.StatusNotModified)
		return
	}
	fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.RequestURI(), body)
})

func do(t *testing.T, rt http.RoundTripper, method, path string, body io.Reader, length int64) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://app.test"+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Body = io.NopCloser(body) // like a server's body: nothing the transport can see into
		req.ContentLength = length
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read answer: %v", method, path, err)
	}
	_ = resp.Body.Close()
	return resp, string(got)
}

func TestStreamTransportKeepsOneStream(t *testing.T) {
	b := newPipeBackend(t, echo)
	tr := newStreamTransport(b.dial, 4, time.Minute)
	defer tr.CloseIdleConnections()
	for _, tc := range []struct {
		method, path, body string
		status             int
		want               string
	}{
		{"GET", "/a?x=1", "", 200, "GET /a?x=1 "},
		{"POST", "/form", "k=v", 200, "POST /form k=v"},
		{"PUT", "/big", strings.Repeat("p", inlineBodyMax), 200, "PUT /big " + strings.Repeat("p", inlineBodyMax)},
		{"HEAD", "/a", "", 200, ""},
		{"GET", "/empty", "", 204, ""},
		{"GET", "/not-modified", "", 304, ""},
		{"DELETE", "/a", "", 200, "DELETE /a "},
	} {
		var body io.Reader
		if tc.body != "" {
			body = strings.NewReader(tc.body)
		}
		resp, got := do(t, tr, tc.method, tc.path, body, int64(len(tc.body)))
		if resp.StatusCode != tc.status || got != tc.want {
			t.Errorf("%s %s: %d %.40q, want %d %.40q", tc.method, tc.path, resp.StatusCode, got, tc.status, tc.want)
		}
	}
	if n := b.dials.Load(); n != 1 {
		t.Errorf("%d streams opened for requests in turn, want 1", n)
	}
}

func TestStreamTransportSingleWrite(t *testing.T) {
	req := func(change func(*http.Request)) *http.Request {
		r, _ := http.NewRequest("POST", "http://app.test/", nil)
		change(r)
		return r
	}
	body := func(n int64) func(*http.Request) {
		return func(r *http.Request) { r.Body, r.ContentLength = io.NopCloser(strings.NewReader("x")), n }
	}
	for _, tc := range []struct {
		name string
		r    *http.Request
		want bool
	}{
		{"no body", req(func(*http.Request) {}), true},
		{"NoBody", req(func(r *http.Request) { r.Body = http.NoBody }), true},
		{"small body", req(body(1)), true},
		{"body at the limit", req(body(inlineBodyMax)), true},
		{"body over the limit streams", req(body(inlineBodyMax + 1)), false},
		{"unknown length streams", req(body(-1)), false},
		{"websocket upgrade", req(func(r *http.Request) { r.Header.Set("Upgrade", "websocket") }), false},
		{"100-continue", req(func(r *http.Request) { body(1)(r); r.Header.Set("Expect", "100-continue") }), false},
		{"trailers", req(func(r *http.Request) { body(1)(r); r.Trailer = http.Header{"X-Sum": nil} }), false},
	} {
		if got := singleWrite(tc.r); got != tc.want {
			t.Errorf("%s: singleWrite = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestStreamTransportFallbackBodies: bodies the stream path does not take
// arrive whole through the fallback transport.
func TestStreamTransportFallbackBodies(t *testing.T) {
	b := newPipeBackend(t, echo)
	tr := newStreamTransport(b.dial, 4, time.Minute)
	defer tr.CloseIdleConnections()
	large := strings.Repeat("0123456789", 10_000)
	for _, length := range []int64{int64(len(large)), -1} {
		resp, got := do(t, tr, "POST", "/up", strings.NewReader(large), length)
		if want := "POST /up " + large; resp.StatusCode != 200 || got != want {
			t.Errorf("length %d: %d, %d bytes back, want %d", length, resp.StatusCode, len(got), len(want))
		}
		if gotLen := resp.Header.Get("X-Got-Length"); gotLen != fmt.Sprint(length) {
			t.Errorf("length %d: the application saw Content-Length %s", length, gotLen)
		}
	}
}

// TestStreamTransportStaleStream: a stream the application closed while
// it was idle is never written to; a POST after it goes out once, on a
// new stream, and succeeds.
func TestStreamTransportStaleStream(t *testing.T) {
	var posts atomic.Int32
	b := newPipeBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			posts.Add(1)
		}
		echo(w, r)
	}))
	tr := newStreamTransport(b.dial, 4, time.Minute)
	defer tr.CloseIdleConnections()
	do(t, tr, "GET", "/", nil, 0)
	b.closeServerEnds()
	resp, got := do(t, tr, "POST", "/order", strings.NewReader("one"), 3)
	if resp.StatusCode != 200 || got != "POST /order one" {
		t.Fatalf("POST after a stale stream: %d %q", resp.StatusCode, got)
	}
	if n := posts.Load(); n != 1 {
		t.Errorf("the application got the POST %d times, want once", n)
	}
	if n := b.dials.Load(); n != 2 {
		t.Errorf("%d streams, want 2 (the stale one dropped)", n)
	}
}

// TestStreamTransportRetry: a request whose reused stream ends without an
// answer is sent again on a new stream only if it is idempotent.
func TestStreamTransportRetry(t *testing.T) {
	for _, tc := range []struct {
		method    string
		header    string
		wantRetry bool
	}{
		{"GET", "", true},
		{"HEAD", "", true},
		{"PUT", "Idempotency-Key", true},
		{"POST", "", false},
		{"PATCH", "", false},
	} {
		t.Run(tc.method+tc.header, func(t *testing.T) {
			var hits atomic.Int32
			b := newPipeBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/drop-once" && hits.Add(1) == 1 {
					conn, _, err := http.NewResponseController(w).Hijack()
					if err == nil {
						_ = conn.Close() // read the request, answer nothing
					}
					return
				}
				w.WriteHeader(http.StatusOK)
			}))
			tr := newStreamTransport(b.dial, 4, time.Minute)
			defer tr.CloseIdleConnections()
			do(t, tr, "GET", "/warm", nil, 0)
			req, _ := http.NewRequest(tc.method, "http://app.test/drop-once", nil)
			if tc.header != "" {
				req.Header.Set(tc.header, "k1")
			}
			resp, err := tr.RoundTrip(req)
			if tc.wantRetry {
				if err != nil || resp.StatusCode != 200 {
					t.Fatalf("idempotent request not retried: %v", err)
				}
				_ = resp.Body.Close()
				if n := hits.Load(); n != 2 {
					t.Errorf("application saw it %d times, want 2", n)
				}
				return
			}
			if err == nil {
				_ = resp.Body.Close()
				t.Fatalf("%s answered %d after the stream ended without an answer; want an error", tc.method, resp.StatusCode)
			}
			if !errors.Is(err, errNothingAnswered) {
				t.Errorf("error %v does not say nothing was answered", err)
			}
			if n := hits.Load(); n != 1 {
				t.Errorf("%s reached the application %d times, want once", tc.method, n)
			}
		})
	}
}

// TestStreamTransportUnreadBody: a body closed before its end ends the
// stream (what is left of it cannot be told from the next answer).
func TestStreamTransportUnreadBody(t *testing.T) {
	b := newPipeBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(bytes.Repeat([]byte("z"), 256<<10))
	}))
	tr := newStreamTransport(b.dial, 4, time.Minute)
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest("GET", "http://app.test/", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if _, err := resp.Body.Read(make([]byte, 1)); err == nil {
		t.Error("read after Close succeeded")
	}
	if _, got := do(t, tr, "GET", "/", nil, 0); len(got) != 256<<10 {
		t.Errorf("next answer has %d bytes", len(got))
	}
	if n := b.dials.Load(); n != 2 {
		t.Errorf("%d streams, want 2: a half-read stream must not be reused", n)
	}
}

// TestStreamTransportCancel: a request whose context ends while the
// application thinks returns at once, and the application sees it go.
func TestStreamTransportCancel(t *testing.T) {
	gone := make(chan struct{})
	b := newPipeBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
		close(gone)
	}))
	tr := newStreamTransport(b.dial, 4, time.Minute)
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://app.test/slow", nil)
	errc := make(chan error, 1)
	go func() {
		_, err := tr.RoundTrip(req)
		errc <- err
	}()
	deadline := time.After(10 * time.Second)
	for b.dials.Load() == 0 {
		select {
		case <-deadline:
			t.Fatal("no stream opened")
		case <-time.After(time.Millisecond):
		}
	}
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("error %v, want context.Canceled", err)
		}
	case <-deadline:
		t.Fatal("RoundTrip did not return after its context ended")
	}
	select {
	case <-gone:
	case <-deadline:
		t.Fatal("the application never saw the request go")
	}
}

// TestStreamTransportCancelDuringBody: a request that ends while its body
// streams (the client went away) ends the body read with the context's
// error, which a proxy does not log, and the stream is not kept.
func TestStreamTransportCancelDuringBody(t *testing.T) {
	b := newPipeBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: first\n\n")
		_ = http.NewResponseController(w).Flush()
		<-r.Context().Done()
	}))
	tr := newStreamTransport(b.dial, 4, time.Minute)
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://app.test/events", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	first := make([]byte, len("data: first\n\n"))
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := resp.Body.Read(make([]byte, 10)); err != context.Canceled {
		t.Errorf("read after the request ended: %v, want context.Canceled itself", err)
	}
	_ = resp.Body.Close()
	if n := len(tr.idle); n != 0 {
		t.Errorf("%d streams kept after a cancelled body", n)
	}
}

// rawAnswer is an application that writes answer as is after the request.
func rawAnswer(answer string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = rw.WriteString(answer)
		_ = rw.Flush()
		_, _ = io.Copy(io.Discard, conn) // until the transport ends the stream
	})
}

func TestStreamTransportHostileAnswers(t *testing.T) {
	for _, tc := range []struct {
		name, answer, wantErr string
	}{
		{"headers over 1 MiB", "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("a", 2<<20) + "\r\n\r\n", "larger than 1 MiB"},
		{"101 not asked for", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n", "switched protocols"},
		{"not HTTP", "SSH-2.0-OpenSSH_9.6\r\n\r\n", "malformed HTTP"},
		{"bad status line", "HTTP/1.1 2OO OK\r\n\r\n", "malformed HTTP status code"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newPipeBackend(t, rawAnswer(tc.answer))
			tr := newStreamTransport(b.dial, 4, time.Minute)
			defer tr.CloseIdleConnections()
			req, _ := http.NewRequest("GET", "http://app.test/", nil)
			resp, err := tr.RoundTrip(req)
			if err == nil {
				_ = resp.Body.Close()
				t.Fatalf("answer accepted (%d)", resp.StatusCode)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q does not mention %q", err, tc.wantErr)
			}
			if n := len(tr.idle); n != 0 {
				t.Errorf("%d streams kept after a bad answer", n)
			}
		})
	}
}

// TestStreamTransportBytesAfterBody: bytes after the announced body are
// not taken for the next answer: the stream ends.
func TestStreamTransportBytesAfterBody(t *testing.T) {
	b := newPipeBackend(t, rawAnswer("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nforged"))
	tr := newStreamTransport(b.dial, 4, time.Minute)
	defer tr.CloseIdleConnections()
	if resp, got := do(t, tr, "GET", "/", nil, 0); resp.StatusCode != 200 || got != "ok" {
		t.Fatalf("answer %d %q", resp.StatusCode, got)
	}
	if n := len(tr.idle); n != 0 {
		t.Errorf("a stream with unasked bytes was kept (%d idle)", n)
	}
}

// TestStreamTransportCloseDelimited: an answer without a length ends when
// the application closes; the whole body arrives and the stream is not
// reused.
func TestStreamTransportCloseDelimited(t *testing.T) {
	b := newPipeBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		_, _ = rw.WriteString("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end")
		_ = rw.Flush()
		_ = conn.Close()
	}))
	tr := newStreamTransport(b.dial, 4, time.Minute)
	defer tr.CloseIdleConnections()
	for range 2 {
		if resp, got := do(t, tr, "GET", "/", nil, 0); resp.StatusCode != 200 || got != "until the end" {
			t.Fatalf("answer %d %q", resp.StatusCode, got)
		}
	}
	if n := b.dials.Load(); n != 2 {
		t.Errorf("%d streams for two close-delimited answers, want 2", n)
	}
}

// TestStreamTransportInformational: 1xx answers before the final one
// reach the proxy's trace hook (which forwards them to the client).
func TestStreamTransportInformational(t *testing.T) {
	b := newPipeBackend(t, rawAnswer("HTTP/1.1 103 Early Hints\r\nLink: </app.css>; rel=preload\r\n\r\n"+
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
	tr := newStreamTransport(b.dial, 4, time.Minute)
	defer tr.CloseIdleConnections()
	var got []string
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		got = append(got, fmt.Sprintf("%d %s", code, h.Get("Link")))
		return nil
	}}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", "http://app.test/", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ok" {
		t.Errorf("final answer %d %q", resp.StatusCode, body)
	}
	if want := []string{"103 </app.css>; rel=preload"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("informational answers %q, want %q", got, want)
	}
}

// TestStreamTransportIdleLimits: streams idle for the idle timeout are
// ended by the sweep, at most maxIdle are kept, and a retired transport
// keeps none.
func TestStreamTransportIdleLimits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newPipeBackend(t, echo)
		tr := newStreamTransport(b.dial, 2, 90*time.Second)
		// Three answers open at once: three streams, two kept.
		var bodies []io.ReadCloser
		for range 3 {
			req, _ := http.NewRequest("GET", "http://app.test/", nil)
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			bodies = append(bodies, resp.Body)
		}
		for _, body := range bodies {
			_, _ = io.Copy(io.Discard, body)
			_ = body.Close()
		}
		if n := len(tr.idle); n != 2 {
			t.Fatalf("%d idle streams kept, want maxIdle = 2", n)
		}
		time.Sleep(89 * time.Second)
		synctest.Wait()
		if n := len(tr.idle); n != 2 {
			t.Fatalf("%d idle streams after 89 s, want 2", n)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		tr.mu.Lock()
		n := len(tr.idle)
		tr.mu.Unlock()
		if n != 0 {
			t.Fatalf("%d idle streams after the idle timeout, want 0", n)
		}
		do(t, tr, "GET", "/", nil, 0)
		if n := b.dials.Load(); n != 4 {
			t.Errorf("%d streams after the sweep, want a fourth", n)
		}
		tr.retire()
		do(t, tr, "GET", "/", nil, 0)
		if n := len(tr.idle); n != 0 || b.dials.Load() != 5 {
			t.Errorf("retired transport kept %d streams (dials %d)", n, b.dials.Load())
		}
	})
}
