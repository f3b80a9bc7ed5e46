package ca

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/leashpki/leash/internal/keyfile"
)

// InitOptions configure Init.
type InitOptions struct {
	Name     string  // CA name, used in the root and intermediate subjects
	KeyType  KeyType // key type of the root and intermediate; "" = ec-p256
	Audience string  // host name in token audiences; "" = "leash-ca"
	// Password encrypts every private key written. It is required unless
	// InsecureNoPassword is set: keys are never silently left in clear.
	Password           []byte
	InsecureNoPassword bool
	// RootLifetime and IntermediateLifetime default to 10 and 5 years.
	RootLifetime         time.Duration
	IntermediateLifetime time.Duration
	Now                  func() time.Time
}

func (o InitOptions) validate() error {
	var errs []error
	if o.Name == "" {
		errs = append(errs, errors.New("CA name is empty"))
	}
	if _, err := ParseKeyType(string(o.KeyType)); err != nil {
		errs = append(errs, err)
	}
	switch {
	case len(o.Password) == 0 && !o.InsecureNoPassword:
		errs = append(errs, fmt.Errorf("%w: a password is required to encrypt the CA keys (--password-file); to store them in clear say so with --insecure-no-password", ErrPassword))
	case len(o.Password) > 0 && o.InsecureNoPassword:
		errs = append(errs, errors.New("a password and --insecure-no-password were both given; choose one"))
	case len(o.Password) > 0 && len(o.Password) < 8:
		errs = append(errs, fmt.Errorf("%w: the CA password must be at least 8 bytes", ErrPassword))
	}
	if o.RootLifetime < 0 || o.IntermediateLifetime < 0 {
		errs = append(errs, errors.New("lifetimes must be positive"))
	}
	if o.RootLifetime > 0 && o.IntermediateLifetime > o.RootLifetime {
		errs = append(errs, errors.New("the intermediate cannot outlive the root"))
	}
	return errors.Join(errs...)
}

// Info describes an initialised CA.
type Info struct {
	Dir             string
	Settings        Settings
	Root            *x509.Certificate
	Intermediate    *x509.Certificate
	RootKeyOnline   bool // root_ca.key is present in the directory
	RootFingerprint string
}

// Init creates a new CA in dir: a self-signed root, an intermediate signed
// by it, and a token signing key. It refuses to touch a directory that
// already holds a CA. On error nothing is left half-written.
func Init(dir string, o InitOptions) (*Info, error) {
	if o.KeyType == "" {
		o.KeyType = KeyECP256
	}
	if o.Audience == "" {
		o.Audience = "leash-ca"
	}
	if o.RootLifetime == 0 {
		o.RootLifetime = 10 * 365 * 24 * time.Hour
	}
	if o.IntermediateLifetime == 0 {
		o.IntermediateLifetime = 5 * 365 * 24 * time.Hour
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(dir, SettingsFile)); err == nil {
		return nil, fmt.Errorf("%w in %s; remove the directory first if you really want a new CA", ErrAlreadyInitialized, dir)
	}
	for _, f := range []string{RootCertFile, RootKeyFile, IntermediateCertFile, IntermediateKeyFile, TokenKeyFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			return nil, fmt.Errorf("%w: %s already exists; refusing to overwrite CA material", ErrAlreadyInitialized, filepath.Join(dir, f))
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create CA directory: %w", err)
	}

	now := o.Now().UTC().Truncate(time.Second)
	rootKey, err := o.KeyType.Generate()
	if err != nil {
		return nil, err
	}
	root, err := createCACert(pkix.Name{CommonName: o.Name + " Root CA", Organization: []string{o.Name}},
		now, now.Add(o.RootLifetime), 1, rootKey.Public(), nil, rootKey)
	if err != nil {
		return nil, err
	}
	interKey, err := o.KeyType.Generate()
	if err != nil {
		return nil, err
	}
	inter, err := createCACert(pkix.Name{CommonName: o.Name + " Intermediate CA", Organization: []string{o.Name}},
		now, now.Add(o.IntermediateLifetime), 0, interKey.Public(), root, rootKey)
	if err != nil {
		return nil, err
	}
	tokenKey, err := KeyECP256.Generate()
	if err != nil {
		return nil, err
	}

	settings := Settings{
		Name:            o.Name,
		Audience:        o.Audience,
		KeyType:         o.KeyType,
		EncryptedKeys:   !o.InsecureNoPassword,
		CreatedAt:       now,
		RootFingerprint: Fingerprint(root),
	}
	var written []string
	fail := func(err error) (*Info, error) {
		for _, p := range written {
			_ = os.Remove(p)
		}
		return nil, err
	}
	pw := o.Password
	steps := []struct {
		file string
		do   func(path string) error
	}{
		{RootKeyFile, func(p string) error { return writePrivateKey(p, rootKey, pw) }},
		{IntermediateKeyFile, func(p string) error { return writePrivateKey(p, interKey, pw) }},
		{TokenKeyFile, func(p string) error { return writePrivateKey(p, tokenKey, pw) }},
		{RootCertFile, func(p string) error { return keyfile.WriteAtomic(p, EncodeCerts(root), 0o644) }},
		{IntermediateCertFile, func(p string) error { return keyfile.WriteAtomic(p, EncodeCerts(inter), 0o644) }},
		// ca.json last: its presence marks the CA as complete.
		{SettingsFile, func(string) error { return writeSettings(dir, settings) }},
	}
	for _, s := range steps {
		p := filepath.Join(dir, s.file)
		if err := s.do(p); err != nil {
			return fail(err)
		}
		written = append(written, p)
	}
	return &Info{Dir: dir, Settings: settings, Root: root, Intermediate: inter, RootKeyOnline: true,
		RootFingerprint: settings.RootFingerprint}, nil
}

// ReadInfo describes the CA in dir without decrypting any key.
func ReadInfo(dir string) (*Info, error) {
	s, err := ReadSettings(dir)
	if err != nil {
		return nil, err
	}
	root, err := ReadCertFile(filepath.Join(dir, RootCertFile))
	if err != nil {
		return nil, err
	}
	inter, err := ReadCertFile(filepath.Join(dir, IntermediateCertFile))
	if err != nil {
		return nil, err
	}
	if fp := Fingerprint(root); fp != s.RootFingerprint {
		return nil, fmt.Errorf("%s does not match the root fingerprint in %s (%s != %s)", RootCertFile, SettingsFile, fp, s.RootFingerprint)
	}
	if err := inter.CheckSignatureFrom(root); err != nil {
		return nil, fmt.Errorf("%s is not signed by %s: %w", IntermediateCertFile, RootCertFile, err)
	}
	_, statErr := os.Stat(filepath.Join(dir, RootKeyFile))
	return &Info{Dir: dir, Settings: s, Root: root, Intermediate: inter, RootKeyOnline: statErr == nil,
		RootFingerprint: s.RootFingerprint}, nil
}

func createCACert(subject pkix.Name, notBefore, notAfter time.Time, maxPathLen int,
	pub crypto.PublicKey, parent *x509.Certificate, parentKey crypto.Signer) (*x509.Certificate, error) {
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encode public key: %w", err)
	}
	ski := sha256.Sum256(pubDER)
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               subject,
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            maxPathLen,
		MaxPathLenZero:        maxPathLen == 0,
		SubjectKeyId:          ski[:20],
	}
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, parentKey)
	if err != nil {
		return nil, fmt.Errorf("sign %s: %w", subject.CommonName, err)
	}
	return x509.ParseCertificate(der)
}

func randomSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}

// Fingerprint is the lower-case hex SHA-256 of a certificate's DER, the
// form tokens carry to pin the root.
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// EncodeCerts encodes certificates as concatenated PEM blocks.
func EncodeCerts(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// ParseCerts decodes every CERTIFICATE block in PEM data; name is used in
// errors. Other block types are an error: they usually mean the wrong file.
func ParseCerts(name string, data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%s: found a %q PEM block where a CERTIFICATE was expected", name, block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%s: no PEM certificate found", name)
	}
	return certs, nil
}

// ReadCertFile reads the first certificate of a PEM file.
func ReadCertFile(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read certificate: %w", err)
	}
	certs, err := ParseCerts(path, b)
	if err != nil {
		return nil, err
	}
	return certs[0], nil
}

// ParseCSR decodes a PEM or DER certificate request and checks its
// self-signature.
func ParseCSR(data []byte) (*x509.CertificateRequest, error) {
	der := data
	if block, _ := pem.Decode(data); block != nil {
		if block.Type != "CERTIFICATE REQUEST" && block.Type != "NEW CERTIFICATE REQUEST" {
			return nil, fmt.Errorf("found a %q PEM block where a CERTIFICATE REQUEST was expected", block.Type)
		}
		der = block.Bytes
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fmt.Errorf("malformed certificate request: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("certificate request signature invalid: %w", err)
	}
	return csr, nil
}
