package leashtls

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/leashpki/leash/internal/keyfile"
)

// Source holds the certificate a process currently presents. Handshakes
// read it through GetCertificate or GetClientCertificate without locking;
// Store swaps in a renewed certificate for every later handshake, without
// restarting a listener or rebuilding a client. The zero Source serves
// nothing (ErrNoCertificate) until Store is called.
type Source struct {
	cur atomic.Pointer[tls.Certificate]
}

// NewSource returns a Source serving cert. See Store for the checks.
func NewSource(cert *tls.Certificate) (*Source, error) {
	s := &Source{}
	if err := s.Store(cert); err != nil {
		return nil, err
	}
	return s, nil
}

// Store makes cert the certificate of every later handshake, after checking
// that it holds a certificate chain and a private key that belongs to its
// leaf. It stores a copy with Leaf parsed; the caller's value is not
// changed. On error the previous certificate stays.
func (s *Source) Store(cert *tls.Certificate) error {
	c, err := checkCertificate(cert)
	if err != nil {
		return err
	}
	s.cur.Store(c)
	return nil
}

// Load returns the current certificate, or nil if none was stored. The
// result is shared and must not be modified.
func (s *Source) Load() *tls.Certificate { return s.cur.Load() }

// NotAfter returns the expiry of the current certificate, or the zero time
// if none was stored.
func (s *Source) NotAfter() time.Time {
	if c := s.cur.Load(); c != nil {
		return c.Leaf.NotAfter
	}
	return time.Time{}
}

// GetCertificate is for tls.Config.GetCertificate.
func (s *Source) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return s.current()
}

// GetClientCertificate is for tls.Config.GetClientCertificate.
func (s *Source) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return s.current()
}

func (s *Source) current() (*tls.Certificate, error) {
	if c := s.cur.Load(); c != nil {
		return c, nil
	}
	return nil, ErrNoCertificate
}

func checkCertificate(cert *tls.Certificate) (*tls.Certificate, error) {
	if cert == nil || len(cert.Certificate) == 0 {
		return nil, fmt.Errorf("%w: empty certificate", ErrNoCertificate)
	}
	c := *cert
	if c.Leaf == nil {
		leaf, err := x509.ParseCertificate(c.Certificate[0])
		if err != nil {
			return nil, fmt.Errorf("parse certificate: %w", err)
		}
		c.Leaf = leaf
	}
	signer, ok := c.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: private key of type %T cannot sign", ErrKeyMismatch, c.PrivateKey)
	}
	pub, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(c.Leaf.PublicKey) {
		return nil, fmt.Errorf("%w: serial %s", ErrKeyMismatch, c.Leaf.SerialNumber)
	}
	return &c, nil
}

// LoadKeyPair reads a PEM certificate file (the leaf first, then any
// intermediates) and a PEM private key file. It refuses a key file that
// group or others may read, with an error wrapping keyfile.ErrPermissions
// that names the chmod 600 fixing it.
func LoadKeyPair(certFile, keyFile string) (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("certificate file: %w", err)
	}
	keyPEM, err := keyfile.ReadPrivate(keyFile)
	if err != nil {
		return nil, err
	}
	return parseKeyPair(certFile, keyFile, certPEM, keyPEM)
}

func parseKeyPair(certFile, keyFile string, certPEM, keyPEM []byte) (*tls.Certificate, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("key pair %s, %s: %w", certFile, keyFile, err)
	}
	c, err := checkCertificate(&pair)
	if err != nil {
		return nil, fmt.Errorf("key pair %s, %s: %w", certFile, keyFile, err)
	}
	return c, nil
}
