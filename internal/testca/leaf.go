package testca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"net"
	"net/url"
	"testing"
	"time"
)

// KeyType selects the key algorithm of an issued leaf.
type KeyType int

// Key types. The zero value is ECDSA P-256.
const (
	ECDSAP256 KeyType = iota
	ECDSAP384
	Ed25519
	RSA2048
)

// LeafOptions describes a certificate for Issue. The zero value is a leaf
// with a fresh P-256 key, valid from an hour ago for a day, with both the
// serverAuth and clientAuth extended key usages and no names.
type LeafOptions struct {
	CommonName string
	DNSNames   []string
	// IPs are textual IP addresses; a bad one fails the test.
	IPs []string
	// URIs are added verbatim as URI SANs; a bad one fails the test. Use
	// them for hostile identities.
	URIs []string
	// Role and Name, when Role is set, add the identity URI
	// leash://<role>/<name> without validating either part.
	Role, Name string

	// EKUs replaces the default {serverAuth, clientAuth}. NoEKU leaves the
	// extension out altogether.
	EKUs  []x509.ExtKeyUsage
	NoEKU bool

	// NotBefore and NotAfter default to one hour ago and one day from now
	// (NotBefore moves earlier when NotAfter is in the past).
	NotBefore, NotAfter time.Time

	// IsCA marks the leaf as a CA certificate (basic constraints CA:true).
	IsCA bool

	KeyType KeyType
}

// Leaf is an issued certificate and its key.
type Leaf struct {
	Cert *x509.Certificate
	// Chain is Cert followed by the intermediate; the root is left out, as
	// a TLS peer sends it.
	Chain []*x509.Certificate
	Key   crypto.Signer
}

// Issue signs a leaf with the intermediate.
func (c *CA) Issue(t testing.TB, o LeafOptions) *Leaf {
	t.Helper()
	now := time.Now()
	notAfter := o.NotAfter
	if notAfter.IsZero() {
		notAfter = now.Add(24 * time.Hour)
	}
	notBefore := o.NotBefore
	if notBefore.IsZero() {
		notBefore = now.Add(-time.Hour)
		if !notBefore.Before(notAfter) {
			notBefore = notAfter.Add(-24 * time.Hour)
		}
	}

	tmpl := &x509.Certificate{
		SerialNumber:          Serial(t),
		Subject:               pkix.Name{CommonName: o.CommonName},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		DNSNames:              o.DNSNames,
		BasicConstraintsValid: true,
		IsCA:                  o.IsCA,
	}
	for _, s := range o.IPs {
		ip := net.ParseIP(s)
		if ip == nil {
			t.Fatalf("testca: bad IP %q", s)
		}
		tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
	}
	uris := o.URIs
	if o.Role != "" {
		uris = append([]string{"leash://" + o.Role + "/" + o.Name}, uris...)
	}
	for _, s := range uris {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatalf("testca: bad URI %q: %v", s, err)
		}
		tmpl.URIs = append(tmpl.URIs, u)
	}
	switch {
	case o.NoEKU:
	case o.EKUs != nil:
		tmpl.ExtKeyUsage = o.EKUs
	default:
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}

	key := newKey(t, o.KeyType)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	if o.KeyType == RSA2048 {
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	if o.IsCA {
		tmpl.KeyUsage |= x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	}

	cert := sign(t, tmpl, c.Intermediate, key.Public(), c.IntermediateKey)
	return &Leaf{Cert: cert, Chain: []*x509.Certificate{cert, c.Intermediate}, Key: key}
}

// TLSCertificate returns the leaf as crypto/tls wants it, chain and parsed
// Leaf included.
func (l *Leaf) TLSCertificate() tls.Certificate {
	tc := tls.Certificate{PrivateKey: l.Key, Leaf: l.Cert}
	for _, c := range l.Chain {
		tc.Certificate = append(tc.Certificate, c.Raw)
	}
	return tc
}

// Serial returns the serial number in decimal.
func (l *Leaf) Serial() string { return l.Cert.SerialNumber.String() }

// CertPEM returns the leaf certificate alone in PEM.
func (l *Leaf) CertPEM() []byte { return certsPEM(l.Cert) }

// ChainPEM returns the leaf followed by the intermediate in PEM, as a
// certificate file on disk holds them.
func (l *Leaf) ChainPEM() []byte { return certsPEM(l.Chain...) }

// KeyPEM returns the private key as PKCS#8 PEM.
func (l *Leaf) KeyPEM() []byte {
	der, err := x509.MarshalPKCS8PrivateKey(l.Key)
	if err != nil {
		// Every key type newKey makes is marshalable; this is a bug here.
		panic("testca: marshal key: " + err.Error())
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func newKey(t testing.TB, kt KeyType) crypto.Signer {
	t.Helper()
	var (
		key crypto.Signer
		err error
	)
	switch kt {
	case ECDSAP256:
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case ECDSAP384:
		key, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case Ed25519:
		_, key, err = ed25519.GenerateKey(rand.Reader)
	case RSA2048:
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		t.Fatalf("testca: unknown key type %d", kt)
	}
	if err != nil {
		t.Fatalf("testca: generate key: %v", err)
	}
	return key
}
