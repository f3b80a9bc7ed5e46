// Package storetest is the conformance suite every store.Store backend must
// pass. A backend's own test calls RunCA with a function that opens a fresh,
// empty store:
//
//	func TestConformance(t *testing.T) {
//		storetest.RunCA(t, func(t *testing.T) ca.Store {
//			s, err := Open(t.Context(), filepath.Join(t.TempDir(), "leash.db"))
//			if err != nil {
//				t.Fatal(err)
//			}
//			t.Cleanup(func() { _ = s.Close() })
//			return s
//		})
//	}
//
// The suite pins down what ca.Store's documentation promises: sentinel
// errors matched with errors.Is, first revocation wins, one-time tokens
// spent exactly once under concurrency, CRL numbers that only grow, times
// returned in UTC and equal to the nanosecond, and list order and filters.
// SpendRace, ClaimRace, MarkOfflineRace and LockRace are exported so a
// backend can also race several instances of itself on one database, as
// gateway replicas would.
package storetest

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/leashpki/leash/ca"
)

// opTimeout bounds every store call the suite makes, so a backend that
// deadlocks fails the test instead of hanging it.
const opTimeout = time.Minute

// RunCA runs the ca.Store conformance tests as subtests of t. open is
// called once or more per subtest and must return a new, empty store that
// it closes through t.Cleanup.
func RunCA(t *testing.T, open func(t *testing.T) ca.Store) {
	tests := []struct {
		name string
		run  func(t *testing.T, open func(t *testing.T) ca.Store)
	}{
		{"CertificatePutGet", testCertificatePutGet},
		{"CertificateDuplicate", testCertificateDuplicate},
		{"CertificateNotFound", testCertificateNotFound},
		{"CertificateIgnoresRevocationFields", testCertificateIgnoresRevocationFields},
		{"CertificateSANs", testCertificateSANs},
		{"CertificateList", testCertificateList},
		{"TimeRoundTrip", testTimeRoundTrip},
		{"Revoke", testRevoke},
		{"RevokeFirstWins", testRevokeFirstWins},
		{"RevokeUnknownSerial", testRevokeUnknownSerial},
		{"RevocationsOrder", testRevocationsOrder},
		{"TokenPutGet", testTokenPutGet},
		{"TokenDuplicate", testTokenDuplicate},
		{"TokenList", testTokenList},
		{"TokenTransitions", testTokenTransitions},
		{"SetTokenCertificate", testSetTokenCertificate},
		{"SpendRaceOneToken", func(t *testing.T, open func(t *testing.T) ca.Store) {
			SpendRace(t, []ca.Store{open(t)}, 1, 50)
		}},
		{"SpendRaceManyTokens", func(t *testing.T, open func(t *testing.T) ca.Store) {
			SpendRace(t, []ca.Store{open(t)}, 20, 10)
		}},
		{"CRL", testCRL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, open) })
	}
}

// testContext returns a context that ends with the test or after opTimeout.
func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), opTimeout)
	t.Cleanup(cancel)
	return ctx
}

// baseTime is an instant with every nanosecond digit in use.
func baseTime() time.Time {
	return time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.UTC)
}

// differ collects field mismatches between a got and a want record.
type differ struct{ diffs []string }

func field[T comparable](d *differ, name string, got, want T) {
	if got != want {
		d.diffs = append(d.diffs, fmt.Sprintf("%s = %v, want %v", name, got, want))
	}
}

func (d *differ) time(name string, got, want time.Time) {
	if !got.Equal(want) {
		d.diffs = append(d.diffs, fmt.Sprintf("%s = %s, want %s", name,
			got.Format(time.RFC3339Nano), want.Format(time.RFC3339Nano)))
	}
	if got.Location() != time.UTC {
		d.diffs = append(d.diffs, fmt.Sprintf("%s is in %s, want UTC", name, got.Location()))
	}
}

func (d *differ) bytes(name string, got, want []byte) {
	if !bytes.Equal(got, want) {
		d.diffs = append(d.diffs, fmt.Sprintf("%s = %x, want %x", name, got, want))
	}
}

func (d *differ) strings(name string, got, want []string) {
	if !slices.Equal(got, want) {
		d.diffs = append(d.diffs, fmt.Sprintf("%s = %q, want %q", name, got, want))
	}
}

// report fails t with every mismatch, prefixed by what.
func (d *differ) report(t *testing.T, what string) {
	t.Helper()
	for _, s := range d.diffs {
		t.Errorf("%s: %s", what, s)
	}
}

func checkCert(t *testing.T, what string, got, want ca.CertRecord) {
	t.Helper()
	var d differ
	field(&d, "Serial", got.Serial, want.Serial)
	field(&d, "Profile", got.Profile, want.Profile)
	field(&d, "Subject", got.Subject, want.Subject)
	d.strings("SANs", got.SANs, want.SANs)
	d.time("NotBefore", got.NotBefore, want.NotBefore)
	d.time("NotAfter", got.NotAfter, want.NotAfter)
	d.time("IssuedAt", got.IssuedAt, want.IssuedAt)
	d.bytes("DER", got.DER, want.DER)
	d.time("RevokedAt", got.RevokedAt, want.RevokedAt)
	field(&d, "ReasonCode", got.ReasonCode, want.ReasonCode)
	field(&d, "Reason", got.Reason, want.Reason)
	d.report(t, what)
}

func checkRevocation(t *testing.T, what string, got, want ca.Revocation) {
	t.Helper()
	var d differ
	field(&d, "Serial", got.Serial, want.Serial)
	field(&d, "ReasonCode", got.ReasonCode, want.ReasonCode)
	field(&d, "Reason", got.Reason, want.Reason)
	d.time("RevokedAt", got.RevokedAt, want.RevokedAt)
	d.time("ExpiresAt", got.ExpiresAt, want.ExpiresAt)
	d.report(t, what)
}

func checkToken(t *testing.T, what string, got, want ca.TokenRecord) {
	t.Helper()
	var d differ
	field(&d, "ID", got.ID, want.ID)
	field(&d, "Kind", got.Kind, want.Kind)
	field(&d, "Profile", got.Profile, want.Profile)
	field(&d, "Subject", got.Subject, want.Subject)
	d.time("CreatedAt", got.CreatedAt, want.CreatedAt)
	d.time("ExpiresAt", got.ExpiresAt, want.ExpiresAt)
	d.time("UsedAt", got.UsedAt, want.UsedAt)
	d.time("RevokedAt", got.RevokedAt, want.RevokedAt)
	field(&d, "CertSerial", got.CertSerial, want.CertSerial)
	d.report(t, what)
}

func checkCRL(t *testing.T, what string, got, want ca.CRLRecord) {
	t.Helper()
	var d differ
	field(&d, "Number", got.Number, want.Number)
	d.time("ThisUpdate", got.ThisUpdate, want.ThisUpdate)
	d.time("NextUpdate", got.NextUpdate, want.NextUpdate)
	field(&d, "Duration", got.Duration, want.Duration)
	d.bytes("DER", got.DER, want.DER)
	d.report(t, what)
}

// certRecord returns a certificate record issued at issued and valid for a
// day from a minute before.
func certRecord(serial, profile, subject string, issued time.Time) ca.CertRecord {
	return ca.CertRecord{
		Serial:    serial,
		Profile:   profile,
		Subject:   subject,
		SANs:      []string{subject + ".example.com", "10.0.0.7", "spiffe://leash/" + profile + "/" + subject},
		NotBefore: issued.Add(-time.Minute),
		NotAfter:  issued.Add(24 * time.Hour),
		IssuedAt:  issued,
		DER:       []byte{0x30, 0x82, 0x00, 0xff, byte(len(serial))},
	}
}

// tokenRecord returns an unused enrollment token created at created that
// expires an hour later.
func tokenRecord(id, kind, subject string, created time.Time) ca.TokenRecord {
	return ca.TokenRecord{
		ID:        id,
		Kind:      kind,
		Profile:   "runner",
		Subject:   subject,
		CreatedAt: created,
		ExpiresAt: created.Add(time.Hour),
	}
}

func putCert(ctx context.Context, t *testing.T, s ca.Store, rec ca.CertRecord) {
	t.Helper()
	if err := s.PutCertificate(ctx, rec); err != nil {
		t.Fatalf("PutCertificate(%s): %v", rec.Serial, err)
	}
}

func putToken(ctx context.Context, t *testing.T, s ca.Store, rec ca.TokenRecord) {
	t.Helper()
	if err := s.PutToken(ctx, rec); err != nil {
		t.Fatalf("PutToken(%s): %v", rec.ID, err)
	}
}
