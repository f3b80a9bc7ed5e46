package ca

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/smallstep/certificates/authority/provisioner"
	"github.com/smallstep/certificates/db"
	"golang.org/x/crypto/ssh"
)

// storeTimeout bounds store calls made on behalf of step, which passes no
// context.
const storeTimeout = 30 * time.Second

// authDB adapts a Store to step's db.AuthDB (plus the certificate chain
// storer extensions), so step records certificates and spends tokens in
// Leash's store. SSH is not used by Leash and is refused.
type authDB struct {
	store Store
	now   func() time.Time
}

var (
	_ db.AuthDB            = (*authDB)(nil)
	_ db.CertificateStorer = (*authDB)(nil)
)

var errNoSSH = errors.New("leash CA: SSH certificates are not supported")

func (d *authDB) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), storeTimeout)
}

func (d *authDB) IsRevoked(sn string) (bool, error) {
	ctx, cancel := d.ctx()
	defer cancel()
	_, err := d.store.Revocation(ctx, sn)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, ErrNotFound):
		return false, nil
	default:
		return false, err
	}
}

func (d *authDB) IsSSHRevoked(string) (bool, error) { return false, nil }

func (d *authDB) Revoke(rci *db.RevokedCertificateInfo) error {
	ctx, cancel := d.ctx()
	defer cancel()
	err := d.store.Revoke(ctx, Revocation{
		Serial:     rci.Serial,
		ReasonCode: rci.ReasonCode,
		Reason:     rci.Reason,
		RevokedAt:  rci.RevokedAt.UTC(),
		ExpiresAt:  rci.ExpiresAt.UTC(),
	})
	if errors.Is(err, ErrAlreadyRevoked) {
		return db.ErrAlreadyExists
	}
	return err
}

func (d *authDB) RevokeSSH(*db.RevokedCertificateInfo) error { return errNoSSH }

func (d *authDB) GetCertificate(serial string) (*x509.Certificate, error) {
	ctx, cancel := d.ctx()
	defer cancel()
	rec, err := d.store.Certificate(ctx, serial)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(rec.DER)
}

// UseToken spends a token atomically. Leash verified the token before step
// got it, so an unknown, used or revoked id simply means "not usable".
func (d *authDB) UseToken(id, _ string) (bool, error) {
	ctx, cancel := d.ctx()
	defer cancel()
	err := d.store.SpendToken(ctx, id, d.now())
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, ErrTokenUsed), errors.Is(err, ErrTokenRevoked), errors.Is(err, ErrNotFound):
		return false, nil
	default:
		return false, err
	}
}

func (d *authDB) IsSSHHost(string) (bool, error)             { return false, nil }
func (d *authDB) GetSSHHostPrincipals() ([]string, error)    { return nil, errNoSSH }
func (d *authDB) StoreSSHCertificate(*ssh.Certificate) error { return errNoSSH }
func (d *authDB) Shutdown() error                            { return nil }

// StoreCertificate is the fallback step uses when it has no provisioner.
func (d *authDB) StoreCertificate(crt *x509.Certificate) error {
	return d.put(crt, "")
}

// StoreCertificateChain records a certificate with the profile
// (provisioner name) that authorised it.
func (d *authDB) StoreCertificateChain(p provisioner.Interface, chain ...*x509.Certificate) error {
	if len(chain) == 0 {
		return errors.New("leash CA: empty chain")
	}
	name := ""
	if p != nil {
		name = p.GetName()
	}
	return d.put(chain[0], name)
}

// StoreRenewedCertificate records a renewed certificate under the profile
// of the one it replaces.
func (d *authDB) StoreRenewedCertificate(old *x509.Certificate, chain ...*x509.Certificate) error {
	if len(chain) == 0 {
		return errors.New("leash CA: empty chain")
	}
	ctx, cancel := d.ctx()
	defer cancel()
	profile := ""
	if rec, err := d.store.Certificate(ctx, old.SerialNumber.String()); err == nil {
		profile = rec.Profile
	}
	return d.put(chain[0], profile)
}

func (d *authDB) put(crt *x509.Certificate, profile string) error {
	ctx, cancel := d.ctx()
	defer cancel()
	err := d.store.PutCertificate(ctx, certRecord(crt, profile, d.now()))
	if err != nil {
		return fmt.Errorf("record certificate %s: %w", crt.SerialNumber, err)
	}
	return nil
}

func certRecord(crt *x509.Certificate, profile string, now time.Time) CertRecord {
	var sans []string
	sans = append(sans, crt.DNSNames...)
	for _, ip := range crt.IPAddresses {
		sans = append(sans, ip.String())
	}
	for _, u := range crt.URIs {
		sans = append(sans, u.String())
	}
	return CertRecord{
		Serial:    crt.SerialNumber.String(),
		Profile:   profile,
		Subject:   crt.Subject.CommonName,
		SANs:      sans,
		NotBefore: crt.NotBefore.UTC(),
		NotAfter:  crt.NotAfter.UTC(),
		IssuedAt:  now.UTC(),
		DER:       crt.Raw,
	}
}
