package runner

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/leashpki/leash/internal/enroll"
	"github.com/leashpki/leash/internal/keyfile"
)

// Files in the state directory. identity.pem holds the private key and the
// certificate chain together so that one atomic rename replaces both: a
// crash during rotation leaves the old pair or the new one, never a key
// that does not match its certificate. cert.pem is a public copy of the
// chain for people and tools (openssl x509 -in cert.pem); ca.pem is the
// pinned root.
const (
	identityFile = "identity.pem"
	certFile     = "cert.pem"
	rootFile     = "ca.pem"
)

// identity is what the runner proves itself with.
type identity struct {
	cert     *tls.Certificate // key + chain, Leaf parsed
	root     *x509.Certificate
	obtained time.Time // when it was issued to us: now, or the identity file's mtime
}

// newKey generates the runner's private key. It never leaves the host.
func newKey() (*ecdsa.PrivateKey, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

// newCSR builds a certificate request for key naming the runner. The CA
// decides everything else from the token or the current certificate.
func newCSR(key crypto.Signer, name string) ([]byte, error) {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: name}}, key)
	if err != nil {
		return nil, fmt.Errorf("create csr: %w", err)
	}
	return der, nil
}

// fingerprint is the hex SHA-256 of a certificate's DER, as tokens carry it.
func fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// pairFromChain builds a tls.Certificate from a key and an issued chain,
// leaf first.
func pairFromChain(key crypto.Signer, chain []*x509.Certificate) (*tls.Certificate, error) {
	if len(chain) == 0 {
		return nil, errors.New("empty certificate chain")
	}
	if !publicKeysEqual(key.Public(), chain[0].PublicKey) {
		return nil, errors.New("the issued certificate is not for our key")
	}
	c := &tls.Certificate{PrivateKey: key, Leaf: chain[0]}
	for _, x := range chain {
		c.Certificate = append(c.Certificate, x.Raw)
	}
	return c, nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	ka, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ka.Equal(b)
}

// verifyChain checks that chain is issued (through its intermediates) by
// root and fit for client authentication as name.
func verifyChain(chain []*x509.Certificate, root *x509.Certificate, name string) error {
	roots := x509.NewCertPool()
	roots.AddCert(root)
	inter := x509.NewCertPool()
	// Verify at the latest NotBefore in the chain rather than by the
	// local clock: the leaf is backdated a little, a fresh CA is not, and
	// a runner's clock may be off. Expiry is checked where it matters, by
	// the rotation schedule and by the gateway.
	at := chain[0].NotBefore
	if root.NotBefore.After(at) {
		at = root.NotBefore
	}
	for _, c := range chain[1:] {
		inter.AddCert(c)
		if c.NotBefore.After(at) {
			at = c.NotBefore
		}
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, CurrentTime: at}); err != nil {
		return fmt.Errorf("issued certificate does not verify against the pinned root: %w", err)
	}
	if chain[0].Subject.CommonName != name {
		return fmt.Errorf("issued certificate names %q, not %q", chain[0].Subject.CommonName, name)
	}
	return nil
}

// saveIdentity writes the state directory: identity.pem (0600) atomically,
// then the public copies.
func saveIdentity(dir string, id identity) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(id.cert.PrivateKey)
	if err != nil {
		return fmt.Errorf("marshal key: %w", err)
	}
	chainPEM := encodeChain(id.cert.Certificate)
	data := append(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), chainPEM...)
	if err := keyfile.WriteAtomic(filepath.Join(dir, identityFile), data, keyfile.PrivateMode); err != nil {
		return err
	}
	if err := keyfile.WriteAtomic(filepath.Join(dir, certFile), chainPEM, 0o644); err != nil {
		return err
	}
	rootPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: id.root.Raw})
	return keyfile.WriteAtomic(filepath.Join(dir, rootFile), rootPEM, 0o644)
}

func encodeChain(ders [][]byte) []byte {
	var out []byte
	for _, d := range ders {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: d})...)
	}
	return out
}

// errNoIdentity means the state directory holds no identity yet.
var errNoIdentity = errors.New("no identity in the state directory")

// loadIdentity reads the state directory. It refuses an identity file
// readable by others and one whose certificate does not match its key or
// does not chain to the pinned root.
func loadIdentity(dir, name string) (identity, error) {
	path := filepath.Join(dir, identityFile)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return identity{}, errNoIdentity
	}
	data, err := keyfile.ReadPrivate(path)
	if err != nil {
		return identity{}, err
	}
	var obtained time.Time
	if st, err := os.Stat(path); err == nil {
		obtained = st.ModTime()
	}
	var key crypto.Signer
	var certPEM []byte
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		switch b.Type {
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
			if err != nil {
				return identity{}, fmt.Errorf("%s: private key: %w", path, err)
			}
			signer, ok := k.(crypto.Signer)
			if !ok {
				return identity{}, fmt.Errorf("%s: private key of type %T cannot sign", path, k)
			}
			key = signer
		case "CERTIFICATE":
			certPEM = append(certPEM, pem.EncodeToMemory(b)...)
		}
	}
	if key == nil {
		return identity{}, fmt.Errorf("%s: no private key", path)
	}
	chain, err := enroll.ParseChain(certPEM)
	if err != nil {
		return identity{}, fmt.Errorf("%s: %w", path, err)
	}
	cert, err := pairFromChain(key, chain)
	if err != nil {
		return identity{}, fmt.Errorf("%s: %w", path, err)
	}
	rootData, err := os.ReadFile(filepath.Join(dir, rootFile))
	if err != nil {
		return identity{}, fmt.Errorf("pinned root: %w", err)
	}
	roots, err := enroll.ParseChain(rootData)
	if err != nil {
		return identity{}, fmt.Errorf("pinned root %s: %w", filepath.Join(dir, rootFile), err)
	}
	if err := verifyChain(chain, roots[0], name); err != nil {
		return identity{}, fmt.Errorf("%s: %w", path, err)
	}
	return identity{cert: cert, root: roots[0], obtained: obtained}, nil
}
