// Package enroll is the client side of token enrollment, shared by the
// runner and 'leash login': pin the root by the fingerprint a token
// carries, then trade the token and a CSR for a certificate. It never sees
// a private key; callers generate keys and build CSRs themselves.
package enroll

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/leashpki/leash/protocol"
)

// ErrFingerprint means the enrollment server offered a root whose
// fingerprint is not the one the token names: someone else's CA, or an
// impostor in between.
var ErrFingerprint = errors.New("root fingerprint mismatch")

// ErrRefused means the gateway refused the enrollment (token used, expired,
// revoked, forged, or the request is outside the profile).
var ErrRefused = errors.New("enrollment refused")

// maxAnswer bounds what is read from the enrollment server.
const maxAnswer = 1 << 20

// DefaultURL derives the enrollment URL from a gateway URL: same host,
// protocol.DefaultEnrollPort, https.
func DefaultURL(gateway string) (string, error) {
	u, err := url.Parse(gateway)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("gateway URL %q has no host", gateway)
	}
	return "https://" + net.JoinHostPort(u.Hostname(), strconv.Itoa(protocol.DefaultEnrollPort)), nil
}

// Client enrolls against one enrollment listener.
type Client struct {
	URL string // https://host:port of the enrollment listener
	// Proxy selects a proxy per request; nil means http.ProxyFromEnvironment.
	Proxy func(*http.Request) (*url.URL, error)
}

func (c Client) transport(cfg *tls.Config) *http.Transport {
	proxy := c.Proxy
	if proxy == nil {
		proxy = http.ProxyFromEnvironment
	}
	return &http.Transport{Proxy: proxy, TLSClientConfig: cfg, TLSHandshakeTimeout: 10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second}
}

// FetchRoot downloads the root named by fingerprint and returns it only if
// its SHA-256 matches. The download itself trusts nothing (there is nothing
// to trust yet); the hash comparison is what makes the answer trustworthy.
func (c Client) FetchRoot(ctx context.Context, fingerprint string) (*x509.Certificate, error) {
	// The TLS layer cannot verify the server yet; the certificate that
	// comes back is checked against the fingerprint below instead.
	tr := c.transport(&tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}) //nolint:gosec // pinned by hash below
	defer tr.CloseIdleConnections()
	u := c.URL + "/v1/enroll/root/" + url.PathEscape(fingerprint)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch root from %s: %w", c.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return nil, fmt.Errorf("fetch root from %s: %w", c.URL, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch root from %s: %s: %w (is this the enrollment listener of the CA the token came from?)",
			c.URL, resp.Status, ErrFingerprint)
	}
	block, _ := pem.Decode(body)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("fetch root from %s: answer is not a PEM certificate", c.URL)
	}
	sum := sha256.Sum256(block.Bytes)
	if got := hex.EncodeToString(sum[:]); got != fingerprint {
		return nil, fmt.Errorf("%w: the token pins %s but %s offered %s", ErrFingerprint, fingerprint, c.URL, got)
	}
	root, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("fetch root: %w", err)
	}
	return root, nil
}

// Enroll sends token and csrDER to the enrollment listener, verifying the
// server against root, and returns the issued chain (leaf first).
func (c Client) Enroll(ctx context.Context, root *x509.Certificate, token string, csrDER []byte) ([]*x509.Certificate, error) {
	pool := x509.NewCertPool()
	pool.AddCert(root)
	tr := c.transport(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	defer tr.CloseIdleConnections()
	body, err := json.Marshal(protocol.EnrollRequest{Token: token,
		CSR: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER}))})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL+"/v1/enroll", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", protocol.ContentTypeJSON)
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("enroll at %s: %w", c.URL, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return nil, fmt.Errorf("enroll at %s: %w", c.URL, err)
	}
	if resp.StatusCode != http.StatusOK {
		var pe protocol.Error
		if json.Unmarshal(data, &pe) == nil && pe.Code != "" {
			return nil, fmt.Errorf("%w: %s", ErrRefused, pe.Message)
		}
		return nil, fmt.Errorf("%w: %s", ErrRefused, resp.Status)
	}
	var cr protocol.CertificateResponse
	if err := json.Unmarshal(data, &cr); err != nil {
		return nil, fmt.Errorf("enroll: malformed answer: %w", err)
	}
	chain, err := ParseChain([]byte(cr.Certificate))
	if err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: intermediates(chain),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return nil, fmt.Errorf("enroll: the issued certificate does not verify against the pinned root: %w", err)
	}
	return chain, nil
}

// ParseChain parses PEM certificates, leaf first.
func ParseChain(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate chain: %w", err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("certificate chain: no certificate")
	}
	return out, nil
}

func intermediates(chain []*x509.Certificate) *x509.CertPool {
	pool := x509.NewCertPool()
	for _, c := range chain[1:] {
		pool.AddCert(c)
	}
	return pool
}
