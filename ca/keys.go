package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"go.step.sm/crypto/keyutil"
	"go.step.sm/crypto/pemutil"

	"github.com/leashpki/leash/internal/keyfile"
)

// KeyType names a key algorithm and size for CA and leaf keys.
type KeyType string

// Supported key types. ECDSA P-256 is the default.
const (
	KeyECP256  KeyType = "ec-p256"
	KeyECP384  KeyType = "ec-p384"
	KeyRSA2048 KeyType = "rsa-2048"
	KeyRSA3072 KeyType = "rsa-3072"
	KeyRSA4096 KeyType = "rsa-4096"
	KeyEd25519 KeyType = "ed25519"
)

// KeyTypes lists every supported key type, default first.
func KeyTypes() []KeyType {
	return []KeyType{KeyECP256, KeyECP384, KeyRSA2048, KeyRSA3072, KeyRSA4096, KeyEd25519}
}

// ParseKeyType accepts a key type name; "" means the default.
func ParseKeyType(s string) (KeyType, error) {
	if s == "" {
		return KeyECP256, nil
	}
	for _, k := range KeyTypes() {
		if strings.EqualFold(s, string(k)) {
			return k, nil
		}
	}
	names := make([]string, 0, len(KeyTypes()))
	for _, k := range KeyTypes() {
		names = append(names, string(k))
	}
	return "", fmt.Errorf("unknown key type %q: use one of %s", s, strings.Join(names, ", "))
}

// Generate creates a new private key of this type.
func (k KeyType) Generate() (crypto.Signer, error) {
	var (
		key any
		err error
	)
	switch k {
	case KeyECP256:
		key, err = keyutil.GenerateKey("EC", "P-256", 0)
	case KeyECP384:
		key, err = keyutil.GenerateKey("EC", "P-384", 0)
	case KeyRSA2048:
		key, err = keyutil.GenerateKey("RSA", "", 2048)
	case KeyRSA3072:
		key, err = keyutil.GenerateKey("RSA", "", 3072)
	case KeyRSA4096:
		key, err = keyutil.GenerateKey("RSA", "", 4096)
	case KeyEd25519:
		key, err = keyutil.GenerateKey("OKP", "Ed25519", 0)
	default:
		return nil, fmt.Errorf("unknown key type %q", string(k))
	}
	if err != nil {
		return nil, fmt.Errorf("generate %s key: %w", k, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("generate %s key: not a signer", k)
	}
	return signer, nil
}

// CheckPublicKey refuses leaf keys that are too weak or of an unknown kind.
func CheckPublicKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return nil
		}
		return fmt.Errorf("%w: ECDSA curve %s is not accepted (use P-256, P-384 or P-521)", ErrPolicy, k.Curve.Params().Name)
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return fmt.Errorf("%w: RSA key of %d bits is too short (at least 2048)", ErrPolicy, k.N.BitLen())
		}
		return nil
	case ed25519.PublicKey:
		return nil
	default:
		return fmt.Errorf("%w: unsupported public key type %T", ErrPolicy, pub)
	}
}

// MarshalPrivateKey encodes key as PEM (PKCS#8), encrypted when password is
// not empty.
func MarshalPrivateKey(key crypto.Signer, password []byte) ([]byte, error) {
	opts := []pemutil.Options{pemutil.WithPKCS8(true)}
	if len(password) > 0 {
		opts = append(opts, pemutil.WithPassword(password))
	}
	block, err := pemutil.Serialize(key, opts...)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	return pem.EncodeToMemory(block), nil
}

// writePrivateKey writes key to path, 0600, atomically.
func writePrivateKey(path string, key crypto.Signer, password []byte) error {
	b, err := MarshalPrivateKey(key, password)
	if err != nil {
		return err
	}
	return keyfile.WriteAtomic(path, b, keyfile.PrivateMode)
}

// readPrivateKey reads a PEM private key, refusing loose permissions and
// reporting a wrong or missing password as ErrPassword.
func readPrivateKey(path string, password []byte) (crypto.Signer, error) {
	b, err := keyfile.ReadPrivate(path)
	if err != nil {
		if errors.Is(err, keyfile.ErrPermissions) {
			return nil, fmt.Errorf("%w: %w", ErrKeyPermissions, err)
		}
		return nil, err
	}
	return ParsePrivateKey(path, b, password)
}

// ParsePrivateKey decodes a PEM private key, encrypted or not. name is used
// in error messages.
func ParsePrivateKey(name string, b []byte, password []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("%s: no PEM data found", name)
	}
	// Legacy RFC 1423 encryption is recognised by its header so a wrong or
	// missing password is reported as such.
	encrypted := block.Type == "ENCRYPTED PRIVATE KEY" || strings.Contains(block.Headers["Proc-Type"], "ENCRYPTED")
	if encrypted && len(password) == 0 {
		return nil, fmt.Errorf("%w: %s is encrypted; give the CA password (--password-file or LEASH_CA_PASSWORD_FILE)", ErrPassword, name)
	}
	opts := []pemutil.Options{}
	if encrypted {
		opts = append(opts, pemutil.WithPassword(password))
	}
	key, err := pemutil.ParseKey(b, opts...)
	if err != nil {
		if encrypted {
			return nil, fmt.Errorf("%w: cannot decrypt %s: the password is wrong", ErrPassword, name)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: not a private key", name)
	}
	return signer, nil
}

// PublicKeyMatches reports whether priv is the private half of pub.
func PublicKeyMatches(priv crypto.Signer, pub crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := priv.Public().(equaler)
	return ok && e.Equal(pub)
}

// NewCSR makes a bare certificate request for key: no subject, no SANs.
// The CA fills both in from the profile and the token, so a request never
// needs to (and never can) ask for more.
func NewCSR(key crypto.Signer) (*x509.CertificateRequest, error) {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		return nil, fmt.Errorf("create certificate request: %w", err)
	}
	return x509.ParseCertificateRequest(der)
}
