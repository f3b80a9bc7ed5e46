package gateway

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"sync"
	"sync/atomic"
	"time"
)

// Limits of the domain proxies' stream transport.
const (
	// inlineBodyMax is the largest request body the stream transport
	// reads into memory and sends together with the headers. Larger
	// bodies and bodies of unknown length stream through http.Transport.
	inlineBodyMax = 16 << 10
	// maxResponseHeader bounds the status line and headers a runner's
	// application may send: a runner must not be able to exhaust the
	// gateway's memory.
	maxResponseHeader = 1 << 20
)

// aLongTimeAgo is a deadline in the past: it wakes blocked reads now.
var aLongTimeAgo = time.Unix(1, 0)

// streamTransport is the round tripper of an HTTP domain's proxy. It
// sends a request on a kept-alive tunnel stream and reads the answer in
// the caller's goroutine: one write, one read, and no goroutine hand-off
// per request, where http.Transport has a read and a write goroutine per
// connection and writes the headers of a body it cannot see into (such
// as the public listener's request body) in a write of their own, which
// over the tunnel is one more yamux frame and TLS record.
//
// It takes the requests that are a single write: no body, or a body of
// known length up to inlineBodyMax, which it reads first. Everything
// else (protocol upgrades such as WebSocket, Expect: 100-continue,
// streamed or large bodies, trailers) goes to fallback, an http.Transport
// on the same streams, so that uploads stream and an application can
// still refuse a body before it is sent.
//
// Kept-alive streams are reused newest first. Before a stream is reused it
// is checked without blocking: one the runner has closed meanwhile (its
// application closed an idle connection) is dropped, not written to. A
// request that fails on a reused stream before any byte of the answer
// arrives is sent once more on a new stream when that is safe, as
// http.Transport does: after a failed write always, after a failed read
// only when the method is idempotent.
type streamTransport struct {
	dial        func(ctx context.Context) (net.Conn, error)
	fallback    *http.Transport
	maxIdle     int
	idleTimeout time.Duration

	writers sync.Pool // *bufio.Writer, only while a request is written

	mu      sync.Mutex
	idle    []*httpStream // oldest first
	sweep   *time.Timer   // closes streams idle for idleTimeout
	retired bool
}

func newStreamTransport(dial func(ctx context.Context) (net.Conn, error), maxIdle int, idleTimeout time.Duration) *streamTransport {
	return &streamTransport{
		dial:        dial,
		maxIdle:     maxIdle,
		idleTimeout: idleTimeout,
		fallback: &http.Transport{
			DialContext:            func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx) },
			MaxIdleConnsPerHost:    maxIdle,
			DisableCompression:     true, // a proxy passes Accept-Encoding and bodies on as they are
			IdleConnTimeout:        idleTimeout,
			ResponseHeaderTimeout:  0, // long polls and SSE may wait
			ExpectContinueTimeout:  time.Second,
			MaxResponseHeaderBytes: maxResponseHeader,
		},
	}
}

// httpStream is one tunnel stream carrying HTTP/1.1 requests in turn.
type httpStream struct {
	conn      net.Conn
	br        *bufio.Reader
	got       int64 // bytes read from conn, to tell "nothing answered"
	headerCap int64 // > 0 while reading a response head: bytes it may still take
	idleSince time.Time
}

var errResponseHeaderTooLarge = errors.New("the answer's headers are larger than 1 MiB")

// Read feeds br, counting bytes and enforcing the header limit.
func (hs *httpStream) Read(p []byte) (int, error) {
	if hs.headerCap > 0 && int64(len(p)) > hs.headerCap {
		p = p[:hs.headerCap]
	} else if hs.headerCap < 0 {
		return 0, errResponseHeaderTooLarge
	}
	n, err := hs.conn.Read(p)
	hs.got += int64(n)
	if hs.headerCap > 0 {
		if hs.headerCap -= int64(n); hs.headerCap == 0 {
			hs.headerCap = -1
		}
	}
	return n, err
}

// abort ends the stream now: a blocked read wakes, the runner sees it end.
func (hs *httpStream) abort() {
	_ = hs.conn.SetDeadline(aLongTimeAgo)
	_ = hs.conn.Close()
}

// reusable reports, without blocking, whether an idle stream can carry
// another request: the runner has not closed it and sent nothing unasked.
func (hs *httpStream) reusable() bool {
	if hs.br.Buffered() > 0 {
		return false
	}
	_ = hs.conn.SetReadDeadline(aLongTimeAgo)
	var one [1]byte
	n, err := hs.conn.Read(one[:])
	_ = hs.conn.SetReadDeadline(time.Time{})
	var ne net.Error
	return n == 0 && errors.As(err, &ne) && ne.Timeout()
}

// RoundTrip implements http.RoundTripper.
func (t *streamTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if !singleWrite(r) {
		return t.fallback.RoundTrip(r)
	}
	var body []byte
	if r.Body != nil && r.Body != http.NoBody {
		body = make([]byte, r.ContentLength)
		_, err := io.ReadFull(r.Body, body)
		_ = r.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("read the request body (%d bytes announced): %w", r.ContentLength, err)
		}
	}
	for attempt := 0; ; attempt++ {
		hs, reused, err := t.get(r.Context())
		if err != nil {
			return nil, err
		}
		resp, wrote, err := t.exchange(r, hs, body)
		if err == nil {
			return resp, nil
		}
		hs.abort()
		if ctxErr := r.Context().Err(); ctxErr != nil {
			return nil, fmt.Errorf("%w (%w)", ctxErr, err)
		}
		retry := reused && attempt == 0 && (!wrote || errors.Is(err, errNothingAnswered) && idempotent(r))
		if !retry {
			return nil, err
		}
	}
}

// singleWrite reports whether r is for the stream path (see streamTransport).
func singleWrite(r *http.Request) bool {
	switch {
	case r.Header.Get("Upgrade") != "", r.Header.Get("Expect") != "", len(r.Trailer) > 0, r.Close:
		return false
	case r.Body == nil || r.Body == http.NoBody:
		return true
	default:
		return r.ContentLength > 0 && r.ContentLength <= inlineBodyMax
	}
}

// idempotent reports whether r may be sent twice (RFC 9110, 9.2.2), the
// rule http.Transport retries by.
func idempotent(r *http.Request) bool {
	switch r.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	_, key := r.Header["Idempotency-Key"]
	_, xkey := r.Header["X-Idempotency-Key"]
	return key || xkey
}

var errNothingAnswered = errors.New("the stream ended before any answer")

// exchange writes r on hs and reads the answer's head. wrote is false when
// the request could not be written at all.
func (t *streamTransport) exchange(r *http.Request, hs *httpStream, body []byte) (resp *http.Response, wrote bool, err error) {
	stop := context.AfterFunc(r.Context(), hs.abort)
	defer func() {
		if err != nil {
			stop()
		}
	}()
	out := *r // Request.Write consumes the body; r itself stays as it was
	out.Body = nil
	if body != nil {
		out.Body = io.NopCloser(bytes.NewReader(body))
	}
	bw, _ := t.writers.Get().(*bufio.Writer)
	if bw == nil {
		bw = bufio.NewWriterSize(hs.conn, 4<<10)
	} else {
		bw.Reset(hs.conn)
	}
	err = out.Write(bw)
	if err == nil {
		err = bw.Flush()
	}
	bw.Reset(nil)
	t.writers.Put(bw)
	if err != nil {
		return nil, false, fmt.Errorf("send the request on the tunnel stream: %w", err)
	}
	before := hs.got
	trace := httptrace.ContextClientTrace(r.Context())
	for {
		hs.headerCap = maxResponseHeader
		resp, err = http.ReadResponse(hs.br, r)
		hs.headerCap = 0
		if err != nil {
			if hs.got == before {
				err = fmt.Errorf("%w: %w", errNothingAnswered, err)
			}
			return nil, true, fmt.Errorf("read the answer from the tunnel stream: %w", err)
		}
		if resp.StatusCode == http.StatusSwitchingProtocols {
			_ = resp.Body.Close()
			return nil, true, errors.New("the application switched protocols without being asked")
		}
		if resp.StatusCode >= 200 {
			break
		}
		if trace != nil && trace.Got1xxResponse != nil {
			if err = trace.Got1xxResponse(resp.StatusCode, textproto.MIMEHeader(resp.Header)); err != nil {
				return nil, true, err
			}
		}
	}
	keep := !resp.Close
	if resp.Body == http.NoBody {
		stopped := stop()
		t.release(hs, keep && stopped)
		return resp, true, nil
	}
	resp.Body = &streamBody{t: t, hs: hs, body: resp.Body, ctx: r.Context(), stop: stop, keep: keep}
	return resp, true, nil
}

// release puts a finished stream back for reuse, or ends it.
func (t *streamTransport) release(hs *httpStream, keep bool) {
	if !keep || hs.br.Buffered() > 0 {
		hs.abort()
		return
	}
	hs.idleSince = time.Now()
	t.mu.Lock()
	if t.retired || len(t.idle) >= t.maxIdle {
		t.mu.Unlock()
		hs.abort()
		return
	}
	t.idle = append(t.idle, hs)
	if t.sweep == nil {
		t.sweep = time.AfterFunc(t.idleTimeout, t.sweepIdle)
	} else if len(t.idle) == 1 {
		t.sweep.Reset(t.idleTimeout)
	}
	t.mu.Unlock()
}

// get returns an idle stream that can be reused (reused true) or a new one.
func (t *streamTransport) get(ctx context.Context) (*httpStream, bool, error) {
	for {
		t.mu.Lock()
		n := len(t.idle)
		if n == 0 {
			t.mu.Unlock()
			break
		}
		hs := t.idle[n-1]
		t.idle[n-1] = nil
		t.idle = t.idle[:n-1]
		t.mu.Unlock()
		if time.Since(hs.idleSince) < t.idleTimeout && hs.reusable() {
			return hs, true, nil
		}
		hs.abort()
	}
	conn, err := t.dial(ctx)
	if err != nil {
		return nil, false, err
	}
	hs := &httpStream{conn: conn}
	hs.br = bufio.NewReaderSize(hs, 4<<10)
	return hs, false, nil
}

// sweepIdle ends the streams idle for idleTimeout and rearms for the next.
func (t *streamTransport) sweepIdle() {
	var expired []*httpStream
	t.mu.Lock()
	now := time.Now()
	for len(t.idle) > 0 && now.Sub(t.idle[0].idleSince) >= t.idleTimeout {
		expired = append(expired, t.idle[0])
		t.idle[0] = nil
		t.idle = t.idle[1:]
	}
	if len(t.idle) > 0 {
		t.sweep.Reset(t.idleTimeout - now.Sub(t.idle[0].idleSince))
	}
	t.mu.Unlock()
	for _, hs := range expired {
		hs.abort()
	}
}

// CloseIdleConnections ends every idle stream, as http.Transport's does.
func (t *streamTransport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = nil
	t.mu.Unlock()
	for _, hs := range idle {
		hs.abort()
	}
	t.fallback.CloseIdleConnections()
}

// retire ends the idle streams and keeps no stream from now on: the domain
// moved to another runner or is gone. Requests in flight finish.
func (t *streamTransport) retire() {
	t.mu.Lock()
	t.retired = true
	if t.sweep != nil {
		t.sweep.Stop()
	}
	t.mu.Unlock()
	t.CloseIdleConnections()
}

// streamBody is an answer's body on a stream: read to its end, the stream
// is kept for the next request; closed before that, the stream ends.
type streamBody struct {
	t    *streamTransport
	hs   *httpStream
	body io.ReadCloser
	ctx  context.Context // the request's: its end aborts the stream
	stop func() bool     // unhooks the request context's abort
	keep bool
	done atomic.Bool
}

func (b *streamBody) Read(p []byte) (int, error) {
	if b.done.Load() {
		return 0, errors.New("read after the body was closed")
	}
	n, err := b.body.Read(p)
	switch {
	case err == io.EOF:
		b.finish(true)
	case err != nil:
		b.finish(false)
		if cerr := b.ctx.Err(); cerr != nil {
			// The abort's deadline error means the request ended; say so
			// as http.Transport does (a proxy logs other read errors).
			err = cerr
		}
	}
	return n, err
}

func (b *streamBody) Close() error {
	b.finish(false)
	return nil
}

func (b *streamBody) finish(complete bool) {
	if !b.done.CompareAndSwap(false, true) {
		return
	}
	// stop reports false once the context's abort has run (or runs).
	stopped := b.stop()
	b.t.release(b.hs, stopped && complete && b.keep)
}
