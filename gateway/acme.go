package gateway

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3"
	"github.com/mholt/acmez/v3/acme"
	"go.uber.org/zap"
)

// ACME for the public listeners.
//
// Where a public certificate comes from, for the SNI name of a handshake:
//  1. a PublicCerts file whose names cover it;
//  2. with ACME configured, the ACME CA, on demand, for served domains
//     only (the same decision as the embedded CA's); without ACME, the
//     embedded CA. There is no fallback from one to the other: a gateway
//     that silently served a privately issued certificate when its public
//     CA failed would break browsers in a way that is hard to trace.
//
// Challenges are answered by the gateway's own public listeners and never
// by a listener certmagic opens: http-01 on PublicListen (ahead of the
// domains' client policies, which the CA's validation could not pass)
// and tls-alpn-01 on PublicTLSListen, whose ALPN list then carries
// acme-tls/1. certmagic's distributed solvers keep the challenge data in
// the store, so any replica can answer a validation another replica's
// order started; the account, certificates and locks are in the store too.

// acmeIssuer builds the ACME issuer for cfg from the configuration.
func (s *Server) acmeIssuer(cfg *certmagic.Config, zl *zap.Logger) (*certmagic.ACMEIssuer, error) {
	a := s.cfg.ACME
	tmpl := certmagic.ACMEIssuer{
		CA:     a.Directory,
		Email:  a.Email,
		Agreed: a.AgreeTOS,
		Logger: zl,
	}
	if a.CARoots != "" {
		b, err := os.ReadFile(a.CARoots)
		if err != nil {
			return nil, fmt.Errorf("acme CA roots: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("acme CA roots %s hold no PEM certificate", a.CARoots)
		}
		tmpl.TrustedRoots = pool
	}
	if a.EABKeyID != "" {
		b, err := os.ReadFile(a.EABMACKeyFile)
		if err != nil {
			return nil, fmt.Errorf("acme eab mac key: %w", err)
		}
		key := strings.TrimSpace(string(b))
		if _, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(key, "=")); err != nil || key == "" {
			return nil, fmt.Errorf("acme eab mac key %s: want the base64url-encoded HMAC key the CA gave", a.EABMACKeyFile)
		}
		tmpl.ExternalAccount = &acme.EAB{KeyID: a.EABKeyID, MACKey: strings.TrimRight(key, "=")}
	}
	// The solvers "listen" on the addresses of our own listeners: certmagic
	// finds them taken and leaves the answering to the handlers below.
	tlsHost, tlsPort, err := hostPort(s.publicTLSLn.Addr())
	if err != nil {
		return nil, err
	}
	tmpl.ListenHost, tmpl.AltTLSALPNPort = tlsHost, tlsPort
	tmpl.DisableHTTPChallenge = true
	if s.publicLn != nil {
		httpHost, httpPort, err := hostPort(s.publicLn.Addr())
		if err != nil {
			return nil, err
		}
		// certmagic has one listen host for both challenges; on another
		// host it would open a challenge listener of its own.
		if httpHost == tlsHost {
			tmpl.AltHTTPPort, tmpl.DisableHTTPChallenge = httpPort, false
		} else {
			s.log.Warn("acme http-01 is off: the public listeners are on different hosts; tls-alpn-01 only",
				"public_listen", s.publicLn.Addr().String(), "public_tls_listen", s.publicTLSLn.Addr().String())
		}
	}
	s.log.Info("public certificates from ACME", "directory", a.Directory, "email", a.Email,
		"http_01", !tmpl.DisableHTTPChallenge, "tls_alpn_01", true, "eab", a.EABKeyID != "")
	return certmagic.NewACMEIssuer(cfg, tmpl), nil
}

func hostPort(addr net.Addr) (string, int, error) {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return "", 0, fmt.Errorf("public listener address %s: %w", addr, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return "", 0, fmt.Errorf("public listener address %s: %w", addr, err)
	}
	return host, p, nil
}

// isACMEChallenge reports whether hello is an ACME server's tls-alpn-01
// validation (RFC 8737: exactly acme-tls/1, with SNI), which only
// certmagic can answer, even for a name a certificate file covers.
func isACMEChallenge(hello *tls.ClientHelloInfo) bool {
	return hello.ServerName != "" && len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == acmez.ACMETLS1Protocol
}

// publicHandler is the public HTTP listener's handler: http-01
// challenges first when ACME is on, then the domains.
func (c *serverCerts) publicHandler(next http.Handler) http.Handler {
	if c == nil || c.acme == nil || c.acme.DisableHTTPChallenge {
		return next
	}
	return c.acme.HTTPChallengeHandler(next)
}

// nextProtos is the public TLS listener's ALPN list.
func (c *serverCerts) nextProtos() []string {
	if c != nil && c.acme != nil {
		return []string{"h2", "http/1.1", acmez.ACMETLS1Protocol}
	}
	return []string{"h2", "http/1.1"}
}
