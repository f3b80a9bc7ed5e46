package testharness

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/leashpki/leash/protocol"
)

// Connect opens a byte stream to a runner's declared service through gw,
// as 'leash connect' does, with c's certificate. On a refusal it returns
// the HTTP status and body in the error.
func (c *Client) Connect(t testing.TB, gw *Gateway, runner, service string) (net.Conn, error) {
	t.Helper()
	conn, err := tls.Dial("tcp", strings.TrimPrefix(gw.APIURL, "https://"), c.TLS)
	if err != nil {
		return nil, err
	}
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	req := fmt.Sprintf("GET /v1/runners/%s/services/%s/connect HTTP/1.1\r\nHost: gateway\r\nConnection: Upgrade\r\nUpgrade: %s\r\n\r\n",
		runner, service, protocol.StreamProtocol)
	if _, err := io.WriteString(conn, req); err != nil {
		_ = conn.Close()
		return nil, err
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(resp.Body)
		_ = conn.Close()
		return nil, fmt.Errorf("connect %s/%s: %d %s", runner, service, resp.StatusCode, body)
	}
	_ = conn.SetDeadline(time.Time{})
	return &bufferedConn{Conn: conn, r: br}, nil
}

type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// CloseWrite half-closes the TLS connection (close_notify).
func (b *bufferedConn) CloseWrite() error { return b.Conn.(*tls.Conn).CloseWrite() }
