package testharness

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/leashpki/leash/internal/tunnelio"
	"github.com/leashpki/leash/protocol"
)

// Connect opens a byte stream to a runner's declared service through gw,
// as 'leash connect' does, with c's certificate. On a refusal it returns
// the HTTP status and body in the error.
func (c *Client) Connect(t testing.TB, gw *Gateway, runner, service string) (net.Conn, error) {
	t.Helper()
	conn, err := c.upgrade(gw, fmt.Sprintf("/v1/runners/%s/services/%s/connect", runner, service), nil)
	if err != nil {
		return nil, fmt.Errorf("connect %s/%s: %w", runner, service, err)
	}
	return conn, nil
}

// SessionPort opens a byte stream to port on the runner of a session, with
// the session token, as 'leash connect --port' does.
func (c *Client) SessionPort(t testing.TB, gw *Gateway, sessionID, token string, port int) (net.Conn, error) {
	t.Helper()
	return c.upgrade(gw, fmt.Sprintf("/v1/tunnel/sessions/%s/ports/%d", sessionID, port),
		http.Header{protocol.HeaderSessionToken: {token}})
}

// upgrade dials gw's API with c's certificate and upgrades path to a byte
// stream, with the code 'leash connect' uses.
func (c *Client) upgrade(gw *Gateway, path string, header http.Header) (net.Conn, error) {
	conn, err := tls.Dial("tcp", strings.TrimPrefix(gw.APIURL, "https://"), c.TLS)
	if err != nil {
		return nil, err
	}
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	stream, resp, err := tunnelio.Upgrade(conn, "gateway", path, protocol.StreamProtocol, header)
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	if resp != nil {
		body, _ := io.ReadAll(resp.Body)
		_ = conn.Close()
		return nil, fmt.Errorf("%s: %d %s", path, resp.StatusCode, body)
	}
	_ = conn.SetDeadline(time.Time{})
	return stream, nil
}
