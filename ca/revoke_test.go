package ca_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/leashpki/leash/ca"
)

func TestRevokeAndCRL(t *testing.T) {
	t.Parallel()
	f := newFixture(t, ca.KeyECP256)
	ctx := context.Background()
	issue := func(name string) *x509.Certificate {
		iss, err := f.auth.Issue(ctx, ca.IssueRequest{Profile: "runner", Name: name, CSR: newCSR(t, newKey(t), csrOpts{})})
		if err != nil {
			t.Fatal(err)
		}
		return iss.Leaf
	}
	a, b := issue("a"), issue("b")

	first, err := f.auth.CRL(ctx)
	if err != nil {
		t.Fatalf("initial CRL: %v", err)
	}
	if n := len(parseCRL(t, f, first.DER).RevokedCertificateEntries); n != 0 {
		t.Fatalf("fresh CRL has %d entries", n)
	}
	again, err := f.auth.CRL(ctx)
	if err != nil || again.Number != first.Number {
		t.Fatalf("a fresh CRL was re-signed without need: %d -> %d (%v)", first.Number, again.Number, err)
	}

	serial := a.SerialNumber.String()
	if revoked, err := f.auth.IsRevoked(ctx, serial); err != nil || revoked {
		t.Fatalf("IsRevoked before revoke = %v, %v", revoked, err)
	}
	rev, err := f.auth.Revoke(ctx, serial, ca.ReasonKeyCompromise, "laptop stolen")
	if err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if rev.ReasonCode != 1 || !rev.ExpiresAt.Equal(a.NotAfter) {
		t.Fatalf("revocation %+v", rev)
	}
	if revoked, err := f.auth.IsRevoked(ctx, serial); err != nil || !revoked {
		t.Fatalf("IsRevoked after revoke = %v, %v", revoked, err)
	}
	if revoked, _ := f.auth.IsRevoked(ctx, b.SerialNumber.String()); revoked {
		t.Fatal("revoking a also revoked b")
	}
	after, err := f.auth.CRL(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after.Number <= first.Number {
		t.Fatalf("CRL number did not grow: %d -> %d", first.Number, after.Number)
	}
	crl := parseCRL(t, f, after.DER)
	if len(crl.RevokedCertificateEntries) != 1 || crl.RevokedCertificateEntries[0].SerialNumber.Cmp(a.SerialNumber) != 0 ||
		crl.RevokedCertificateEntries[0].ReasonCode != 1 {
		t.Fatalf("CRL entries %+v, want exactly a with keyCompromise", crl.RevokedCertificateEntries)
	}
	if block, _ := pem.Decode(after.PEM()); block == nil || block.Type != "X509 CRL" {
		t.Fatal("CRL PEM has the wrong block type")
	}

	_, err = f.auth.Revoke(ctx, serial, ca.ReasonSuperseded, "")
	if !errors.Is(err, ca.ErrAlreadyRevoked) || !strings.Contains(err.Error(), "key-compromise") {
		t.Fatalf("second revoke: %v, want ErrAlreadyRevoked naming the first reason", err)
	}
	if _, err := f.auth.Revoke(ctx, "12345", ca.ReasonUnspecified, ""); !errors.Is(err, ca.ErrNotFound) {
		t.Fatalf("unknown serial: %v, want ErrNotFound", err)
	}
	if _, err := f.auth.Revoke(ctx, b.SerialNumber.String(), ca.Reason(6), ""); err == nil {
		t.Fatal("certificateHold accepted")
	}

	// The CRL is re-signed once past half of its life, and drops entries
	// of certificates that have expired.
	f.clock.Advance(ca.DefaultCRLLifetime/2 + time.Minute)
	later, err := f.auth.CRL(ctx)
	if err != nil || later.Number != after.Number+1 {
		t.Fatalf("stale CRL not re-signed: %d -> %d (%v)", after.Number, later.Number, err)
	}
	f.clock.Advance(48 * time.Hour)
	expired, err := f.auth.RegenerateCRL(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(parseCRL(t, f, expired.DER).RevokedCertificateEntries); n != 0 {
		t.Fatalf("CRL still lists %d expired certificates", n)
	}
}

func parseCRL(t *testing.T, f *fixture, der []byte) *x509.RevocationList {
	t.Helper()
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatalf("parse CRL: %v", err)
	}
	if err := crl.CheckSignatureFrom(f.auth.Intermediate()); err != nil {
		t.Fatalf("CRL signature: %v", err)
	}
	return crl
}

func TestInventoryStatus(t *testing.T) {
	t.Parallel()
	f := newFixture(t, ca.KeyECP256)
	ctx := context.Background()
	issue := func(name string, life time.Duration) *x509.Certificate {
		iss, err := f.auth.Issue(ctx, ca.IssueRequest{Profile: "runner", Name: name, CSR: newCSR(t, newKey(t), csrOpts{}), Lifetime: life})
		if err != nil {
			t.Fatal(err)
		}
		return iss.Leaf
	}
	issue("short", time.Hour)
	issue("long", 30*24*time.Hour)
	gone := issue("gone", 24*time.Hour)
	if _, err := f.auth.Revoke(ctx, gone.SerialNumber.String(), ca.ReasonCessationOfOperation, ""); err != nil {
		t.Fatal(err)
	}
	status := func() map[string]ca.Status {
		infos, err := f.auth.Certificates(ctx, ca.InventoryQuery{})
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]ca.Status{}
		for _, i := range infos {
			m[i.Subject] = i.Status
		}
		return m
	}
	for _, step := range []struct {
		advance time.Duration
		want    map[string]ca.Status
	}{
		{0, map[string]ca.Status{"short": ca.StatusValid, "long": ca.StatusValid, "gone": ca.StatusRevoked}},
		{45 * time.Minute, map[string]ca.Status{"short": ca.StatusExpiring, "long": ca.StatusValid, "gone": ca.StatusRevoked}},
		{time.Hour, map[string]ca.Status{"short": ca.StatusExpired, "long": ca.StatusValid, "gone": ca.StatusRevoked}},
		{21 * 24 * time.Hour, map[string]ca.Status{"short": ca.StatusExpired, "long": ca.StatusExpiring, "gone": ca.StatusRevoked}},
	} {
		f.clock.Advance(step.advance)
		got := status()
		for k, v := range step.want {
			if got[k] != v {
				t.Errorf("after +%s: %s is %s, want %s", step.advance, k, got[k], v)
			}
		}
	}
	for _, st := range []ca.Status{ca.StatusExpired, ca.StatusExpiring, ca.StatusRevoked} {
		infos, err := f.auth.Certificates(ctx, ca.InventoryQuery{Status: st})
		if err != nil || len(infos) != 1 {
			t.Errorf("filter %s: %d entries (%v), want 1", st, len(infos), err)
		}
	}
}

func TestParseSerialAndReason(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"255", "255"}, {"0xff", "255"}, {"0XFF", "255"}, {"00:ff", "255"}, {" 17 ", "17"},
		{"", ""}, {"0", ""}, {"-5", ""}, {"12ab", ""}, {"0x", ""}, {"zz:zz", ""},
	} {
		got, err := ca.ParseSerial(tc.in)
		if tc.want == "" {
			if err == nil {
				t.Errorf("ParseSerial(%q) = %q, want error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseSerial(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	if r, err := ca.ParseReason("Key-Compromise"); err != nil || r != ca.ReasonKeyCompromise {
		t.Errorf("ParseReason: %v %v", r, err)
	}
	if _, err := ca.ParseReason("certificate-hold"); err == nil || !strings.Contains(err.Error(), "superseded") {
		t.Errorf("ParseReason(certificate-hold) = %v, want an error listing valid reasons", err)
	}
}
