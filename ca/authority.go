package ca

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/smallstep/certificates/authority"
	"github.com/smallstep/certificates/authority/config"
	"github.com/smallstep/certificates/authority/provisioner"
	"go.step.sm/crypto/jose"
)

// Config locates a CA and unlocks its keys.
type Config struct {
	Dir      string // the CA directory written by Init
	Password []byte // decrypts the intermediate and token keys
}

// Option changes how Open builds an Authority.
type Option func(*Authority)

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(a *Authority) { a.log = l } }

// WithClock sets the clock Leash's own checks use (token and certificate
// expiry, inventory status, CRL times). Step's internal checks keep the
// real clock.
func WithClock(now func() time.Time) Option { return func(a *Authority) { a.now = now } }

// Authority is an open CA: step's authority plus Leash's token, policy,
// revocation and inventory logic over a Store.
type Authority struct {
	dir      string
	settings Settings
	profiles map[string]Profile

	root, inter *x509.Certificate
	interKey    crypto.Signer
	tokenKey    crypto.Signer
	tokenJWK    jose.JSONWebKey // public half, as the provisioners know it

	store Store
	step  *authority.Authority
	log   *slog.Logger
	now   func() time.Time

	crlMu sync.Mutex
}

// Open loads the CA in cfg.Dir and starts the embedded step authority on
// store. The root key is not needed and may be offline.
func Open(cfg Config, store Store, opts ...Option) (*Authority, error) {
	a := &Authority{dir: cfg.Dir, store: store, now: time.Now,
		log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, o := range opts {
		o(a)
	}
	if store == nil {
		return nil, errors.New("ca: Open needs a store")
	}
	info, err := ReadInfo(cfg.Dir)
	if err != nil {
		return nil, err
	}
	a.settings, a.root, a.inter = info.Settings, info.Root, info.Intermediate
	a.profiles = profilesFor(a.settings)
	if a.settings.EncryptedKeys && len(cfg.Password) == 0 {
		return nil, fmt.Errorf("%w: the keys in %s are encrypted; give the CA password (--password-file or LEASH_CA_PASSWORD_FILE)", ErrPassword, cfg.Dir)
	}
	pw := cfg.Password
	if !a.settings.EncryptedKeys {
		pw = nil
	}
	if a.interKey, err = readPrivateKey(filepath.Join(cfg.Dir, IntermediateKeyFile), pw); err != nil {
		return nil, err
	}
	if !PublicKeyMatches(a.interKey, a.inter.PublicKey) {
		return nil, fmt.Errorf("%s does not belong to %s", IntermediateKeyFile, IntermediateCertFile)
	}
	if a.tokenKey, err = readPrivateKey(filepath.Join(cfg.Dir, TokenKeyFile), pw); err != nil {
		return nil, err
	}
	a.tokenJWK = jose.JSONWebKey{Key: a.tokenKey.Public(), Algorithm: string(jose.ES256), Use: "sig"}
	kid, err := jose.Thumbprint(&a.tokenJWK)
	if err != nil {
		return nil, fmt.Errorf("token key id: %w", err)
	}
	a.tokenJWK.KeyID = kid

	stepCfg, err := a.stepConfig()
	if err != nil {
		return nil, err
	}
	a.step, err = authority.NewEmbedded(
		authority.WithConfig(stepCfg),
		authority.WithDatabase(&authDB{store: a.store, now: a.clock}),
		authority.WithX509RootCerts(a.root),
		authority.WithX509Signer(a.inter, a.interKey),
		authority.WithQuietInit(),
	)
	if err != nil {
		return nil, fmt.Errorf("start embedded authority: %w", err)
	}
	return a, nil
}

func (a *Authority) clock() time.Time { return a.now().UTC() }

// stepConfig builds the step configuration: one JWK provisioner per
// profile, all trusting the CA's token key, each with its own lifetimes and
// X.509 template. CRL generation stays with Leash (see crl.go).
func (a *Authority) stepConfig() (*config.Config, error) {
	d := func(v Duration) *provisioner.Duration { return &provisioner.Duration{Duration: time.Duration(v)} }
	no := false
	var provs provisioner.List
	for _, name := range ProfileNames() {
		p := a.profiles[name]
		key := a.tokenJWK
		provs = append(provs, &provisioner.JWK{
			Type: "JWK",
			Name: p.Name,
			Key:  &key,
			Claims: &provisioner.Claims{
				MinTLSDur:               d(p.Lifetimes.Min),
				MaxTLSDur:               d(p.Lifetimes.Max),
				DefaultTLSDur:           d(p.Lifetimes.Default),
				DisableRenewal:          &no,
				AllowRenewalAfterExpiry: &no,
			},
			Options: &provisioner.Options{X509: &provisioner.X509Options{Template: p.template()}},
		})
	}
	return &config.Config{
		DNSNames: []string{a.settings.Audience},
		AuthorityConfig: &config.AuthConfig{
			Provisioners: provs,
			// Tokens outlive gateway restarts: Leash tracks them in the store.
			DisableIssuedAtCheck: true,
			Claims: &provisioner.Claims{
				MinTLSDur:     &provisioner.Duration{Duration: 10 * time.Second},
				MaxTLSDur:     &provisioner.Duration{Duration: 398 * 24 * time.Hour},
				DefaultTLSDur: &provisioner.Duration{Duration: 24 * time.Hour},
			},
			Backdate: &provisioner.Duration{Duration: time.Minute},
		},
	}, nil
}

// Close stops the embedded authority. It does not close the store.
func (a *Authority) Close() error {
	if err := a.step.Shutdown(); err != nil {
		return fmt.Errorf("stop embedded authority: %w", err)
	}
	return nil
}

// Settings returns the CA's settings.
func (a *Authority) Settings() Settings { return a.settings }

// Root returns the root certificate.
func (a *Authority) Root() *x509.Certificate { return a.root }

// Intermediate returns the issuing intermediate certificate.
func (a *Authority) Intermediate() *x509.Certificate { return a.inter }

// RootFingerprint is the hex SHA-256 of the root, as tokens carry it.
func (a *Authority) RootFingerprint() string { return a.settings.RootFingerprint }

// Profile returns the named profile.
func (a *Authority) Profile(name string) (Profile, error) {
	p, ok := a.profiles[name]
	if !ok {
		return Profile{}, fmt.Errorf("%w %q: use one of %v", ErrUnknownProfile, name, ProfileNames())
	}
	return p, nil
}

// Issued is a freshly signed certificate.
type Issued struct {
	Leaf    *x509.Certificate
	Chain   []*x509.Certificate // leaf, then intermediate
	Profile string
}

// ChainPEM is the leaf and intermediate as PEM, ready for a .crt file.
func (i *Issued) ChainPEM() []byte { return EncodeCerts(i.Chain...) }
