package testharness

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/leashpki/leash/ca"
)

// Client is an HTTP client with a certificate of one profile, for the
// operator API, /metrics and hostile tests.
type Client struct {
	HTTP *http.Client
	Cert *x509.Certificate
	TLS  *tls.Config
	// Files hold the key pair and root as PEM files, for curl, openssl
	// and Prometheus.
	CertFile, KeyFile, CAFile string
}

// Client issues a certificate of profile (operator, prometheus, runner…)
// named name directly from the CA and returns a client presenting it.
func (h *Harness) Client(t testing.TB, profile, name string) *Client {
	t.Helper()
	key, iss, certFile, keyFile := h.issueToFiles(t, ca.IssueRequest{Profile: profile, Name: name}, name)
	pair := tls.Certificate{PrivateKey: key, Leaf: iss.Leaf}
	for _, c := range iss.Chain {
		pair.Certificate = append(pair.Certificate, c.Raw)
	}
	c := h.clientWith(t, &pair)
	c.Cert = iss.Leaf
	c.CertFile, c.KeyFile = certFile, keyFile
	c.CAFile = filepath.Join(filepath.Dir(certFile), "ca.crt")
	if err := os.WriteFile(c.CAFile, ca.EncodeCerts(h.CA.Root()), 0o600); err != nil {
		t.Fatal(err)
	}
	return c
}

// Anonymous returns a client that trusts the CA but presents no
// certificate.
func (h *Harness) Anonymous(t testing.TB) *Client { return h.clientWith(t, nil) }

func (h *Harness) clientWith(t testing.TB, pair *tls.Certificate) *Client {
	pool := x509.NewCertPool()
	pool.AddCert(h.CA.Root())
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if pair != nil {
		cfg.Certificates = []tls.Certificate{*pair}
	}
	tr := &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: false}
	t.Cleanup(tr.CloseIdleConnections)
	return &Client{HTTP: &http.Client{Transport: tr, Timeout: time.Minute}, TLS: cfg}
}

// Do sends a JSON request (in nil: no body) and decodes a JSON answer into
// out when out is not nil. It returns the status code.
func (c *Client) Do(t testing.TB, method, url string, in, out any) int {
	t.Helper()
	status, body, err := c.Raw(method, url, "application/json", in)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	if out != nil && len(body) > 0 {
		if err := json.Unmarshal(body, out); err != nil {
			t.Fatalf("%s %s: decode %q: %v", method, url, body, err)
		}
	}
	return status
}

// Raw sends body (a []byte or string as is, anything else as JSON) with
// contentType and returns the status and the answer body.
func (c *Client) Raw(method, url, contentType string, body any) (int, []byte, error) {
	var r io.Reader
	switch v := body.(type) {
	case nil:
	case []byte:
		r = bytes.NewReader(v)
	case string:
		r = bytes.NewReader([]byte(v))
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return 0, nil, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("read answer: %w", err)
	}
	return resp.StatusCode, b, nil
}
