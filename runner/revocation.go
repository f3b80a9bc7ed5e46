package runner

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/leashpki/leash/internal/enroll"
)

// refusedCertificate reports whether err is the gateway refusing our
// client certificate in the handshake. crypto/tls sends bad_certificate
// for every reason (revoked, expired, unknown CA, a revocation check that
// could not be made), so the alert alone cannot say whether retrying helps.
func refusedCertificate(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "remote error" && op.Err != nil &&
		strings.Contains(op.Err.Error(), "bad certificate")
}

// maxCRLBytes bounds the CRL the runner downloads.
const maxCRLBytes = 4 << 20

// revoked asks the enrollment listener's public CRL whether the current
// certificate is revoked. The CRL must be signed by the CA that issued the
// certificate, so a gateway impostor cannot make the runner give up.
func (a *Agent) revoked(ctx context.Context) (bool, error) {
	cur := a.source.Load()
	if a.root == nil || cur == nil || len(cur.Certificate) < 2 {
		return false, errors.New("no issuing CA to check revocation against")
	}
	issuer, err := x509.ParseCertificate(cur.Certificate[1])
	if err != nil {
		return false, err
	}
	enrollURL := a.cfg.EnrollURL
	if enrollURL == "" {
		if enrollURL, err = enroll.DefaultURL(a.cfg.Gateway); err != nil {
			return false, err
		}
	}
	pool := x509.NewCertPool()
	pool.AddCert(a.root)
	proxy := a.proxy
	if proxy == nil {
		proxy = http.ProxyFromEnvironment
	}
	tr := &http.Transport{Proxy: proxy, TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout: 10 * time.Second}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(enrollURL, "/")+"/v1/enroll/crl", nil)
	if err != nil {
		return false, err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return false, fmt.Errorf("fetch CRL: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("fetch CRL: status %d", resp.StatusCode)
	}
	der, err := io.ReadAll(io.LimitReader(resp.Body, maxCRLBytes))
	if err != nil {
		return false, fmt.Errorf("fetch CRL: %w", err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		return false, fmt.Errorf("parse CRL: %w", err)
	}
	if err := crl.CheckSignatureFrom(issuer); err != nil {
		return false, fmt.Errorf("CRL is not signed by our issuing CA: %w", err)
	}
	serial := cur.Leaf.SerialNumber
	for _, e := range crl.RevokedCertificateEntries {
		if e.SerialNumber.Cmp(serial) == 0 {
			return true, nil
		}
	}
	return false, nil
}
