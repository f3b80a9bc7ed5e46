package tunnelio

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"

	"github.com/hashicorp/yamux"
)

// Buffered returns c reading first what r, a reader over c, has buffered:
// the bytes that came after an HTTP Upgrade answer or a stream header.
// Its CloseWrite half-closes c as CloseWrite does.
func Buffered(c net.Conn, r *bufio.Reader) net.Conn {
	if r.Buffered() == 0 {
		// Nothing read ahead: reading c directly skips a copy.
		return &bufferedConn{Conn: c, r: c}
	}
	return &bufferedConn{Conn: c, r: r}
}

type bufferedConn struct {
	net.Conn
	r io.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if br, ok := b.r.(*bufio.Reader); ok && br.Buffered() == 0 && err == nil {
		// Read-ahead drained: later reads bypass the bufio.Reader.
		b.r = b.Conn
	}
	return n, err
}

// CloseWrite half-closes the underlying connection.
func (b *bufferedConn) CloseWrite() error {
	CloseWrite(b.Conn)
	return nil
}

// CloseWrite ends c's write half and keeps its read half open where c
// can do that: a TCP or TLS connection's CloseWrite, a yamux stream's
// Close (which sends FIN and goes on reading). Other connections are
// closed.
func CloseWrite(c net.Conn) {
	switch cw := c.(type) {
	case interface{ CloseWrite() error }:
		_ = cw.CloseWrite()
	case *yamux.Stream:
		_ = cw.Close()
	default:
		_ = c.Close()
	}
}

// Splice copies a to b and b to a until both directions are done,
// passing each half-close on: EOF from one side ends the other side's
// write half.
func (b *Buffers) Splice(x, y net.Conn) {
	var wg sync.WaitGroup
	wg.Go(func() {
		_, _ = b.Copy(y, x)
		CloseWrite(y)
	})
	_, _ = b.Copy(x, y)
	CloseWrite(x)
	wg.Wait()
}

// Upgrade asks, over conn (an HTTP/1.1 connection the caller dialed), for
// path to switch to proto. On 101 Switching Protocols it returns the
// byte stream and a nil response. On any other answer it returns the
// response, its body readable from conn, and a nil stream; the caller
// closes conn. The caller sets and clears deadlines on conn.
func Upgrade(conn net.Conn, host, path, proto string, header http.Header) (net.Conn, *http.Response, error) {
	req, err := http.NewRequest(http.MethodGet, "http://"+host+path, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("upgrade request: %w", err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", proto)
	if err := req.Write(conn); err != nil {
		return nil, nil, fmt.Errorf("upgrade request: %w", err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return nil, nil, fmt.Errorf("upgrade answer: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return nil, resp, nil
	}
	return Buffered(conn, br), nil, nil
}
