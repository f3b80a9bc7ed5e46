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

// SessionPort opens a byte stream to port on the runner of a session, with
// the session token, as 'leash connect --port' does.
func (c *Client) SessionPort(t testing.TB, gw *Gateway, sessionID, token string, port int) (net.Conn, error) {
	t.Helper()
	return c.upgrade(gw, fmt.Sprintf("/v1/tunnel/sessions/%s/ports/%d", sessionID, port), map[string]string{protocol.HeaderSessionToken: token})
}

func (c *Client) upgrade(gw *Gateway, path string, headers map[string]string) (net.Conn, error) {
	conn, err := tls.Dial("tcp", strings.TrimPrefix(gw.APIURL, "https://"), c.TLS)
	if err != nil {
		return nil, err
	}
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	req := "GET " + path + " HTTP/1.1\r\nHost: gateway\r\nConnection: Upgrade\r\nUpgrade: " + protocol.StreamProtocol + "\r\n"
	for k, v := range headers {
		req += k + ": " + v + "\r\n"
	}
	if _, err := io.WriteString(conn, req+"\r\n"); err != nil {
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
		return nil, fmt.Errorf("%s: %d %s", path, resp.StatusCode, body)
	}
	_ = conn.SetDeadline(time.Time{})
	return &bufferedConn{Conn: conn, r: br}, nil
}
