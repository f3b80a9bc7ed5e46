package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/leashpki/leash/ca"
	leashtls "github.com/leashpki/leash/tls"
)

// serverCerts is where the gateway's own TLS certificate comes from: files
// the operator gives (re-read when they change), or certmagic managing one
// certificate per configured host name, issued in-process by the embedded
// CA and kept in the store, so that replicas share it and renew it once.
type serverCerts struct {
	get   func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	files *leashtls.FileSource  // file mode
	cache *certmagic.Cache      // managed mode
	sni   *sniCerts             // public listener: files chosen by SNI
	acme  *certmagic.ACMEIssuer // public listener: ACME instead of the embedded CA
	hosts []string
}

// managedServerCerts obtains (or loads from the store) a certificate for
// every host name before it returns.
func (s *Server) managedServerCerts(ctx context.Context) (*serverCerts, error) {
	cfg, cache, _ := s.certmagicConfig("certmagic", certmagic.Config{
		Issuers:           []certmagic.Issuer{&caIssuer{ca: s.ca, log: s.log}},
		DefaultServerName: s.cfg.Hostnames[0],
	})
	if err := cfg.ManageSync(ctx, s.cfg.Hostnames); err != nil {
		cache.Stop()
		return nil, fmt.Errorf("gateway server certificate for %v: %w", s.cfg.Hostnames, err)
	}
	return &serverCerts{get: cfg.GetCertificate, cache: cache, hosts: s.cfg.Hostnames}, nil
}

// certmagicConfig makes a certmagic cache and a config of tmpl on it, with
// the store as storage and logs through slog. The cache must hand back
// this config (GetConfigForCert), or renewals would fall back to
// certmagic's default CA.
func (s *Server) certmagicConfig(component string, tmpl certmagic.Config) (*certmagic.Config, *certmagic.Cache, *zap.Logger) {
	zl := zapToSlog(s.log.With("component", component))
	var cfg *certmagic.Config
	cache := certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) { return cfg, nil },
		Logger:           zl,
	})
	tmpl.Storage = newBlobStorage(s.st, s.cfg.ID, s.now)
	tmpl.Logger = zl
	cfg = certmagic.New(cache, tmpl)
	return cfg, cache, zl
}

func fileServerCerts(certFile, keyFile string, log *slog.Logger) (*serverCerts, error) {
	fs, err := leashtls.NewFileSource(certFile, keyFile, leashtls.WithLogger(log))
	if err != nil {
		return nil, fmt.Errorf("gateway server certificate: %w", err)
	}
	return &serverCerts{get: fs.GetCertificate, files: fs}, nil
}

// run keeps the certificates fresh until ctx ends: file mode re-reads the
// files, managed mode lets certmagic's maintenance renew.
func (c *serverCerts) run(ctx context.Context) error {
	if c.files != nil {
		return c.files.Run(ctx)
	}
	if c.sni != nil {
		err := c.sni.run(ctx)
		c.cache.Stop()
		return err
	}
	<-ctx.Done()
	c.cache.Stop()
	return nil
}

// problems lists what is wrong with the certificates served right now.
func (c *serverCerts) problems(now time.Time) []string {
	names := c.hosts
	if c.files != nil {
		names = []string{""}
	}
	var out []string
	for _, name := range names {
		hello := &tls.ClientHelloInfo{ServerName: name}
		if ip := net.ParseIP(name); ip != nil {
			hello.ServerName = ""
			hello.Conn = fakeLocalConn{ip: ip}
		}
		cert, err := c.get(hello)
		switch {
		case err != nil:
			out = append(out, fmt.Sprintf("server certificate for %q: %v", name, err))
		case cert.Leaf != nil && now.After(cert.Leaf.NotAfter):
			out = append(out, fmt.Sprintf("server certificate for %q expired at %s", name, cert.Leaf.NotAfter.UTC().Format(time.RFC3339)))
		}
	}
	return out
}

// caIssuer is a certmagic.Issuer that signs with the embedded CA directly:
// no ACME round trip, the same profile rules as every other certificate.
type caIssuer struct {
	ca  *ca.Authority
	log *slog.Logger
}

// IssuerKey names this CA, so certificates from another CA are not taken
// for ours.
func (i *caIssuer) IssuerKey() string { return "leash-" + i.ca.RootFingerprint()[:16] }

// Issue signs csr under the server profile for the names it asks for.
func (i *caIssuer) Issue(ctx context.Context, csr *x509.CertificateRequest) (*certmagic.IssuedCertificate, error) {
	hosts := slices.Clone(csr.DNSNames)
	for _, ip := range csr.IPAddresses {
		hosts = append(hosts, ip.String())
	}
	if len(hosts) == 0 {
		return nil, errors.New("the certificate request names no host")
	}
	iss, err := i.ca.Issue(ctx, ca.IssueRequest{Profile: ca.ProfileServer, Hosts: hosts, CSR: csr})
	if err != nil {
		return nil, err
	}
	i.log.Info("gateway server certificate issued", "hosts", hosts, "serial", iss.Leaf.SerialNumber.String(),
		"not_after", iss.Leaf.NotAfter.UTC())
	return &certmagic.IssuedCertificate{Certificate: iss.ChainPEM()}, nil
}

// fakeLocalConn lets problems ask certmagic for the certificate of an IP
// address the way a handshake without SNI on that address would.
type fakeLocalConn struct {
	net.Conn
	ip net.IP
}

func (c fakeLocalConn) LocalAddr() net.Addr { return &net.TCPAddr{IP: c.ip, Port: 443} }

// onDemandCerts issues certificates for the HTTP domains at their first
// TLS handshake, for served domains only, kept in the store like the
// gateway's own: from the ACME CA when one is configured, otherwise from
// the embedded CA. Certificate files cover their names first (acme.go
// has the whole order).
func (s *Server) onDemandCerts() (*serverCerts, error) {
	cfg, cache, zl := s.certmagicConfig("certmagic-public", certmagic.Config{
		OnDemand: &certmagic.OnDemandConfig{DecisionFunc: func(_ context.Context, name string) error {
			if !s.domains.has(name) {
				return fmt.Errorf("%q is not a served domain", name)
			}
			return nil
		}},
	})
	out := &serverCerts{get: cfg.GetCertificate, cache: cache}
	if s.cfg.ACME.Enabled() {
		iss, err := s.acmeIssuer(cfg, zl)
		if err != nil {
			cache.Stop()
			return nil, err
		}
		cfg.Issuers = []certmagic.Issuer{iss}
		out.acme = iss
	} else {
		cfg.Issuers = []certmagic.Issuer{&caIssuer{ca: s.ca, log: s.log}}
	}
	if len(s.cfg.PublicCerts) > 0 {
		files, err := newSNICerts(s.cfg.PublicCerts, s.log)
		if err != nil {
			cache.Stop()
			return nil, err
		}
		out.sni = files
		out.get = func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			if out.acme != nil && isACMEChallenge(hello) {
				return cfg.GetCertificate(hello)
			}
			if c := files.match(hello.ServerName); c != nil {
				return c, nil
			}
			return cfg.GetCertificate(hello)
		}
	}
	return out, nil
}

// sniCerts are certificate files chosen by SNI.
type sniCerts struct {
	files []*leashtls.FileSource
}

func newSNICerts(pairs []string, log *slog.Logger) (*sniCerts, error) {
	out := &sniCerts{}
	for _, p := range pairs {
		cert, key, _ := strings.Cut(p, ":")
		fs, err := leashtls.NewFileSource(cert, key, leashtls.WithLogger(log))
		if err != nil {
			return nil, fmt.Errorf("public cert %s: %w", cert, err)
		}
		out.files = append(out.files, fs)
	}
	return out, nil
}

// match returns the first certificate whose DNS names cover name.
func (c *sniCerts) match(name string) *tls.Certificate {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	for _, fs := range c.files {
		cert := fs.Load()
		if cert == nil || cert.Leaf == nil {
			continue
		}
		if cert.Leaf.VerifyHostname(name) == nil {
			return cert
		}
	}
	return nil
}

func (c *sniCerts) run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	for _, fs := range c.files {
		g.Go(func() error { return fs.Run(ctx) })
	}
	return g.Wait()
}
