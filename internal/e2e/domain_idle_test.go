package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/leashpki/leash/ca"
	"github.com/leashpki/leash/gateway"
	"github.com/leashpki/leash/internal/testharness"
	"github.com/leashpki/leash/runner"
)

// TestHTTPDomainIdleTimeout: a domain's idle_timeout ends a kept-alive
// HTTP/1.1 connection that waits that long for its next request, on the
// plain and the HTTPS listener; a domain without one leaves the
// connection to the listener's idle timeout (2 minutes); on a connection
// that served both, the last request's domain counts.
func TestHTTPDomainIdleTimeout(t *testing.T) {
	gw, roots := startIdleDomains(t)
	dialers := map[string]func(host string) (net.Conn, error){
		"http": func(string) (net.Conn, error) {
			return net.DialTimeout("tcp", gw.Server.PublicAddr().String(), 5*time.Second)
		},
		"https": func(host string) (net.Conn, error) {
			return tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", gw.Server.PublicTLSAddr().String(),
				&tls.Config{ServerName: host, RootCAs: roots, NextProtos: []string{"http/1.1"}})
		},
	}
	// get sends one request for host on c and reads its answer.
	get := func(c net.Conn, br *bufio.Reader, host string) error {
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", host); err != nil {
			return err
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return err
		}
		body, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || string(body) != "ok" {
			return fmt.Errorf("%s: %d %q %v", host, resp.StatusCode, body, err)
		}
		return nil
	}
	for scheme, dial := range dialers {
		for _, tc := range idleCases {
			t.Run(scheme+"/"+tc.name, func(t *testing.T) {
				last := tc.hosts[len(tc.hosts)-1]
				// The domain answers once the gateway has registered the
				// tunnel (503 before), and over HTTPS once its first
				// certificate is issued.
				var c net.Conn
				var br *bufio.Reader
				testharness.Eventually(t, 20*time.Second, "a first answer through "+tc.hosts[0], func() bool {
					if c != nil {
						_ = c.Close()
					}
					var err error
					if c, err = dial(last); err != nil {
						return false
					}
					br = bufio.NewReader(c)
					for _, host := range tc.hosts {
						if get(c, br, host) != nil {
							return false
						}
					}
					return true
				})
				defer func() { _ = c.Close() }()
				// Wait for the next request: the gateway either closes the
				// connection (EOF) or still holds it when our deadline comes.
				answered := time.Now()
				_ = c.SetReadDeadline(answered.Add(2 * time.Second))
				_, err := br.ReadByte()
				waited := time.Since(answered)
				switch {
				case tc.closes && !errors.Is(err, io.EOF):
					t.Fatalf("connection not closed by the 300ms idle timeout: %v after %s", err, waited)
				case tc.closes && waited < 200*time.Millisecond:
					t.Fatalf("connection closed after %s, before the 300ms idle timeout", waited)
				case !tc.closes && !errors.Is(err, os.ErrDeadlineExceeded):
					t.Fatalf("connection ended after %s (%v); the listener's idle timeout is 2 minutes", waited, err)
				}
			})
		}
	}
}

// idleCases are the idle-timeout cases both tests run: the domains
// requested in turn on one connection, and whether the gateway closes it
// within the 2 s the tests wait (brief.test has a 300ms idle timeout,
// patient.test none).
var idleCases = []struct {
	name   string
	hosts  []string
	closes bool
}{
	{"idle_timeout set", []string{"brief.test"}, true},
	{"no idle_timeout", []string{"patient.test"}, false},
	{"last domain counts", []string{"brief.test", "patient.test"}, false},
}

// startIdleDomains starts a gateway with both public listeners and a
// runner serving brief.test (idle_timeout 300ms) and patient.test (none).
// It returns the gateway and the roots its HTTPS listener chains to.
func startIdleDomains(t *testing.T) (*testharness.Gateway, *x509.CertPool) {
	t.Helper()
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(backend.Close)
	h := testharness.New(t, testharness.Options{Gateway: func(c *gateway.Config) {
		c.PublicListen = "127.0.0.1:0"
		c.PublicTLSListen = "127.0.0.1:0"
	}})
	gw := h.StartGateway(t)
	r := h.StartRunner(t, gw, "web-idle", testharness.RunnerOptions{Domains: map[string][]runner.Route{
		"brief.test": {{Target: backend.URL}}, "patient.test": {{Target: backend.URL}},
	}})
	testharness.Eventually(t, 10*time.Second, "tunnel", func() bool { return r.Agent.Tunnels() == 1 })
	op := h.Client(t, ca.ProfileOperator, "alice")
	for name, policy := range map[string]string{"brief.test": `{"idle_timeout":"300ms"}`, "patient.test": `{}`} {
		body := fmt.Sprintf(`{"runner":"web-idle","policy":%s}`, policy)
		if status, answer, err := op.Raw(http.MethodPut, gw.APIURL+"/v1/domains/"+name, "application/json", body); err != nil || status != http.StatusOK {
			t.Fatalf("set %s: %d %s %v", name, status, answer, err)
		}
	}
	roots := x509.NewCertPool()
	roots.AddCert(h.CA.Root())
	return gw, roots
}

// TestHTTPDomainIdleTimeoutHTTP2: the same cases on HTTP/2 connections
// (Go's client, ALPN h2), where the gateway counts the requests in
// progress on a connection and closes it when the last one's domain has
// an idle timeout and nothing else begins within it. The last case sends
// its second request for patient.test on the connection made for
// brief.test (the Host differs from the SNI).
func TestHTTPDomainIdleTimeoutHTTP2(t *testing.T) {
	gw, roots := startIdleDomains(t)
	for _, tc := range idleCases {
		t.Run(tc.name, func(t *testing.T) {
			var closed chan time.Time // when the gateway ended the connection
			var client *http.Client
			testharness.Eventually(t, 20*time.Second, "a first HTTP/2 answer through "+tc.hosts[0], func() bool {
				if client != nil {
					client.CloseIdleConnections()
				}
				closed = make(chan time.Time, 1)
				client = h2IdleClient(gw.Server.PublicTLSAddr().String(), roots, closed)
				for _, host := range tc.hosts {
					if err := getH2(client, tc.hosts[0], host); err != nil {
						t.Logf("not yet: %v", err)
						return false
					}
				}
				return true
			})
			defer client.CloseIdleConnections()
			answered := time.Now()
			select {
			case at := <-closed:
				waited := at.Sub(answered)
				switch {
				case !tc.closes:
					t.Fatalf("HTTP/2 connection ended after %s; the listener's idle timeout is 2 minutes", waited)
				case waited < 200*time.Millisecond:
					t.Fatalf("HTTP/2 connection closed after %s, before the 300ms idle timeout", waited)
				}
			case <-time.After(2 * time.Second):
				if tc.closes {
					t.Fatal("HTTP/2 connection not closed by the 300ms idle timeout within 2s")
				}
			}
		})
	}
}

// h2IdleClient is an HTTP/2 client whose connections go to addr with the
// SNI of the URL's host; closed receives the time a connection's first
// read failed (the gateway closed it).
func h2IdleClient(addr string, roots *x509.CertPool, closed chan<- time.Time) *http.Client {
	tr := &http.Transport{ForceAttemptHTTP2: true,
		DialTLSContext: func(ctx context.Context, _, hostPort string) (net.Conn, error) {
			host, _, _ := net.SplitHostPort(hostPort)
			raw, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "tcp", addr)
			if err != nil {
				return nil, err
			}
			tc := tls.Client(&readWatch{Conn: raw, failed: closed},
				&tls.Config{ServerName: host, RootCAs: roots, NextProtos: []string{"h2"}})
			if err := tc.HandshakeContext(ctx); err != nil {
				_ = raw.Close()
				return nil, err
			}
			return tc, nil
		}}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// getH2 sends one GET for host on the connection to urlHost and checks
// that it went over HTTP/2 and was answered by the backend.
func getH2(c *http.Client, urlHost, host string) error {
	req, err := http.NewRequest(http.MethodGet, "https://"+urlHost+"/", nil)
	if err != nil {
		return err
	}
	req.Host = host
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || string(body) != "ok" || resp.ProtoMajor != 2 {
		return fmt.Errorf("%s: %s %d %q %v", host, resp.Proto, resp.StatusCode, body, err)
	}
	return nil
}

// readWatch reports the time of its first failed read.
type readWatch struct {
	net.Conn
	failed chan<- time.Time
	once   sync.Once
}

func (c *readWatch) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil {
		c.once.Do(func() { c.failed <- time.Now() })
	}
	return n, err
}
