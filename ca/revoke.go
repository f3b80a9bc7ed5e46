package ca

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// Reason is an RFC 5280 CRL reason code.
type Reason int

// Revocation reasons Leash accepts. certificateHold (6) and removeFromCRL
// (8) are deliberately missing: a Leash revocation is final.
const (
	ReasonUnspecified          Reason = 0
	ReasonKeyCompromise        Reason = 1
	ReasonCACompromise         Reason = 2
	ReasonAffiliationChanged   Reason = 3
	ReasonSuperseded           Reason = 4
	ReasonCessationOfOperation Reason = 5
	ReasonPrivilegeWithdrawn   Reason = 9
)

var reasonNames = []struct {
	name   string
	reason Reason
}{
	{"unspecified", ReasonUnspecified},
	{"key-compromise", ReasonKeyCompromise},
	{"ca-compromise", ReasonCACompromise},
	{"affiliation-changed", ReasonAffiliationChanged},
	{"superseded", ReasonSuperseded},
	{"cessation-of-operation", ReasonCessationOfOperation},
	{"privilege-withdrawn", ReasonPrivilegeWithdrawn},
}

// ReasonNames lists the accepted reason names.
func ReasonNames() []string {
	out := make([]string, len(reasonNames))
	for i, r := range reasonNames {
		out[i] = r.name
	}
	return out
}

// ParseReason reads a reason name such as "key-compromise".
func ParseReason(s string) (Reason, error) {
	for _, r := range reasonNames {
		// Also accept RFC 5280's spelling (keyCompromise).
		if strings.EqualFold(s, r.name) || strings.EqualFold(s, strings.ReplaceAll(r.name, "-", "")) {
			return r.reason, nil
		}
	}
	return 0, fmt.Errorf("unknown revocation reason %q: use one of %s", s, strings.Join(ReasonNames(), ", "))
}

// String returns the reason's name.
func (r Reason) String() string {
	for _, n := range reasonNames {
		if n.reason == r {
			return n.name
		}
	}
	return fmt.Sprintf("reason-%d", int(r))
}

// ParseSerial reads a serial number written in decimal (as Leash prints
// it) or in hex with a 0x prefix or colons (as openssl prints it), and
// returns it in decimal.
func ParseSerial(s string) (string, error) {
	s = strings.TrimSpace(s)
	base := 10
	digits := s
	switch {
	case strings.HasPrefix(s, "0x"), strings.HasPrefix(s, "0X"):
		base, digits = 16, s[2:]
	case strings.Contains(s, ":"):
		base, digits = 16, strings.ReplaceAll(s, ":", "")
	}
	n, ok := new(big.Int).SetString(digits, base)
	if !ok || digits == "" || n.Sign() <= 0 {
		return "", fmt.Errorf("serial %q is not a positive decimal number or 0x/colon-separated hex", s)
	}
	return n.String(), nil
}

// Revoke revokes the certificate with the given decimal serial and
// regenerates the CRL. The serial must be in the inventory, so a typo
// cannot revoke nothing and look like success.
func (a *Authority) Revoke(ctx context.Context, serial string, reason Reason, text string) (Revocation, error) {
	if reason.String() == fmt.Sprintf("reason-%d", int(reason)) {
		return Revocation{}, fmt.Errorf("revoke: unsupported reason code %d", int(reason))
	}
	rec, err := a.store.Certificate(ctx, serial)
	if errors.Is(err, ErrNotFound) {
		return Revocation{}, fmt.Errorf("revoke: serial %s: %w in this CA's inventory (see leash cert list)", serial, ErrNotFound)
	}
	if err != nil {
		return Revocation{}, fmt.Errorf("revoke: look up %s: %w", serial, err)
	}
	if rec.Revoked() {
		return Revocation{}, fmt.Errorf("revoke: serial %s: %w at %s (%s)", serial, ErrAlreadyRevoked,
			rec.RevokedAt.Format(time.RFC3339), Reason(rec.ReasonCode))
	}
	rev := Revocation{Serial: serial, ReasonCode: int(reason), Reason: text, RevokedAt: a.clock(), ExpiresAt: rec.NotAfter}
	if err := a.store.Revoke(ctx, rev); err != nil {
		return Revocation{}, fmt.Errorf("revoke: serial %s: %w", serial, err)
	}
	a.log.Info("certificate revoked", "serial", serial, "subject", rec.Subject, "profile", rec.Profile, "reason", reason.String())
	if _, err := a.regenerateCRL(ctx); err != nil {
		return rev, fmt.Errorf("revoked %s but the CRL could not be regenerated (run leash ca crl): %w", serial, err)
	}
	return rev, nil
}

// IsRevoked reports whether the decimal serial is revoked. It satisfies
// leashtls.RevocationChecker; a store error is returned, never hidden.
func (a *Authority) IsRevoked(ctx context.Context, serial string) (bool, error) {
	_, err := a.store.Revocation(ctx, serial)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, ErrNotFound):
		return false, nil
	default:
		return false, fmt.Errorf("revocation lookup for %s: %w", serial, err)
	}
}

// DefaultCRLLifetime is how long a CRL is valid; it is re-signed after
// half of that, and on every revocation.
const DefaultCRLLifetime = 24 * time.Hour

// CRL is a signed certificate revocation list.
type CRL struct {
	Number     int64
	ThisUpdate time.Time
	NextUpdate time.Time
	DER        []byte
}

// PEM returns the CRL in PEM ("X509 CRL").
func (c CRL) PEM() []byte { return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: c.DER}) }

// CRL returns the current CRL, signing a new one when none exists or the
// stored one is past half of its life.
func (a *Authority) CRL(ctx context.Context) (CRL, error) {
	rec, err := a.store.CRL(ctx)
	switch {
	case errors.Is(err, ErrNotFound):
		return a.regenerateCRL(ctx)
	case err != nil:
		return CRL{}, fmt.Errorf("read CRL: %w", err)
	}
	if a.clock().After(rec.ThisUpdate.Add(rec.Duration / 2)) {
		return a.regenerateCRL(ctx)
	}
	return CRL{Number: rec.Number, ThisUpdate: rec.ThisUpdate, NextUpdate: rec.NextUpdate, DER: rec.DER}, nil
}

// RegenerateCRL signs a fresh CRL now.
func (a *Authority) RegenerateCRL(ctx context.Context) (CRL, error) { return a.regenerateCRL(ctx) }

func (a *Authority) regenerateCRL(ctx context.Context) (CRL, error) {
	a.crlMu.Lock()
	defer a.crlMu.Unlock()
	// Another process sharing the store may sign concurrently; numbers
	// only grow, so retry with the next number a few times.
	for attempt := 0; attempt < 5; attempt++ {
		crl, err := a.signCRL(ctx)
		if errors.Is(err, ErrExists) {
			continue
		}
		return crl, err
	}
	return CRL{}, errors.New("sign CRL: lost the race for a CRL number five times")
}

func (a *Authority) signCRL(ctx context.Context) (CRL, error) {
	var number int64 = 1
	prev, err := a.store.CRL(ctx)
	switch {
	case err == nil:
		number = prev.Number + 1
	case !errors.Is(err, ErrNotFound):
		return CRL{}, fmt.Errorf("read CRL: %w", err)
	}
	revs, err := a.store.Revocations(ctx)
	if err != nil {
		return CRL{}, fmt.Errorf("list revocations: %w", err)
	}
	now := a.clock()
	tmpl := &x509.RevocationList{
		Number:     big.NewInt(number),
		ThisUpdate: now,
		NextUpdate: now.Add(DefaultCRLLifetime),
	}
	for _, r := range revs {
		// An expired certificate fails verification anyway; RFC 5280 lets
		// its entry go, which keeps the CRL small.
		if !r.ExpiresAt.IsZero() && r.ExpiresAt.Before(now) {
			continue
		}
		sn, ok := new(big.Int).SetString(r.Serial, 10)
		if !ok {
			return CRL{}, fmt.Errorf("revocation with malformed serial %q in the store", r.Serial)
		}
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{
			SerialNumber: sn, RevocationTime: r.RevokedAt, ReasonCode: r.ReasonCode,
		})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, a.inter, a.interKey)
	if err != nil {
		return CRL{}, fmt.Errorf("sign CRL: %w", err)
	}
	rec := CRLRecord{Number: number, ThisUpdate: now, NextUpdate: tmpl.NextUpdate, Duration: DefaultCRLLifetime, DER: der}
	if err := a.store.PutCRL(ctx, rec); err != nil {
		return CRL{}, fmt.Errorf("store CRL %d: %w", number, err)
	}
	a.log.Info("CRL signed", "number", number, "entries", len(tmpl.RevokedCertificateEntries))
	return CRL{Number: number, ThisUpdate: now, NextUpdate: rec.NextUpdate, DER: der}, nil
}

// Status is where a certificate is in its life.
type Status string

// Certificate states in the inventory.
const (
	StatusValid    Status = "valid"
	StatusExpiring Status = "expiring" // less than a third of its lifetime left
	StatusExpired  Status = "expired"
	StatusRevoked  Status = "revoked"
)

// ParseStatus reads a status name.
func ParseStatus(s string) (Status, error) {
	for _, st := range []Status{StatusValid, StatusExpiring, StatusExpired, StatusRevoked} {
		if s == string(st) {
			return st, nil
		}
	}
	return "", fmt.Errorf("unknown status %q: use valid, expiring, expired or revoked", s)
}

// CertInfo is one inventory entry.
type CertInfo struct {
	CertRecord
	Status Status
}

// InventoryQuery filters Certificates. Zero values match everything.
type InventoryQuery struct {
	Profile string
	Subject string
	Status  Status
	Limit   int
}

// Certificates lists issued certificates, newest first, with their status.
func (a *Authority) Certificates(ctx context.Context, q InventoryQuery) ([]CertInfo, error) {
	sq := CertQuery{Profile: q.Profile, Subject: q.Subject}
	now := a.clock()
	switch q.Status {
	case StatusRevoked:
		t := true
		sq.Revoked = &t
	case StatusValid, StatusExpiring:
		f := false
		sq.Revoked = &f
	case StatusExpired:
		f := false
		sq.Revoked = &f
		sq.NotAfterBefore = now.Add(time.Nanosecond)
	}
	if q.Status == "" {
		sq.Limit = q.Limit
	}
	recs, err := a.store.Certificates(ctx, sq)
	if err != nil {
		return nil, fmt.Errorf("list certificates: %w", err)
	}
	var out []CertInfo
	for _, r := range recs {
		info := CertInfo{CertRecord: r, Status: statusAt(r, now)}
		if q.Status != "" && info.Status != q.Status {
			continue
		}
		out = append(out, info)
		if q.Limit > 0 && len(out) == q.Limit {
			break
		}
	}
	return out, nil
}

// Certificate returns one inventory entry by decimal serial.
func (a *Authority) Certificate(ctx context.Context, serial string) (CertInfo, error) {
	r, err := a.store.Certificate(ctx, serial)
	if err != nil {
		return CertInfo{}, fmt.Errorf("certificate %s: %w", serial, err)
	}
	return CertInfo{CertRecord: r, Status: statusAt(r, a.clock())}, nil
}

func statusAt(r CertRecord, now time.Time) Status {
	switch {
	case r.Revoked():
		return StatusRevoked
	case !now.Before(r.NotAfter):
		return StatusExpired
	case r.NotAfter.Sub(now) < r.NotAfter.Sub(r.NotBefore)/3:
		return StatusExpiring
	default:
		return StatusValid
	}
}
