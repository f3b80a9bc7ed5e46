package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/leashpki/leash/ca"
)

func testRevoke(t *testing.T, open func(t *testing.T) ca.Store) {
	ctx := testContext(t)
	s := open(t)
	cert := certRecord("3003", "runner", "r1", baseTime())
	other := certRecord("3004", "runner", "r2", baseTime())
	putCert(ctx, t, s, cert)
	putCert(ctx, t, s, other)
	if _, err := s.Revocation(ctx, "3003"); !errors.Is(err, ca.ErrNotFound) {
		t.Errorf("Revocation before Revoke: %v, want ErrNotFound", err)
	}
	revs, err := s.Revocations(ctx)
	if err != nil {
		t.Fatalf("Revocations on a store without any: %v", err)
	}
	if len(revs) != 0 {
		t.Errorf("Revocations on a store without any returned %d", len(revs))
	}

	rev := ca.Revocation{Serial: "3003", ReasonCode: 1, Reason: "key compromise",
		RevokedAt: baseTime().Add(time.Hour), ExpiresAt: cert.NotAfter}
	if err := s.Revoke(ctx, rev); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	got, err := s.Revocation(ctx, "3003")
	if err != nil {
		t.Fatalf("Revocation: %v", err)
	}
	checkRevocation(t, "Revocation", got, rev)

	gotCert, err := s.Certificate(ctx, "3003")
	if err != nil {
		t.Fatalf("Certificate: %v", err)
	}
	want := cert
	want.RevokedAt, want.ReasonCode, want.Reason = rev.RevokedAt, rev.ReasonCode, rev.Reason
	checkCert(t, "revoked Certificate", gotCert, want)
	if !gotCert.Revoked() {
		t.Error("revoked certificate reports Revoked() = false")
	}
	gotOther, err := s.Certificate(ctx, "3004")
	if err != nil {
		t.Fatalf("Certificate: %v", err)
	}
	checkCert(t, "other Certificate", gotOther, other)
}

func testRevokeFirstWins(t *testing.T, open func(t *testing.T) ca.Store) {
	ctx := testContext(t)
	s := open(t)
	cert := certRecord("4004", "operator", "alice", baseTime())
	putCert(ctx, t, s, cert)
	first := ca.Revocation{Serial: "4004", ReasonCode: 4, Reason: "superseded",
		RevokedAt: baseTime().Add(time.Minute), ExpiresAt: cert.NotAfter}
	if err := s.Revoke(ctx, first); err != nil {
		t.Fatalf("first Revoke: %v", err)
	}
	second := ca.Revocation{Serial: "4004", ReasonCode: 1, Reason: "key compromise",
		RevokedAt: baseTime().Add(time.Hour)}
	if err := s.Revoke(ctx, second); !errors.Is(err, ca.ErrAlreadyRevoked) {
		t.Fatalf("second Revoke: %v, want ErrAlreadyRevoked", err)
	}
	got, err := s.Revocation(ctx, "4004")
	if err != nil {
		t.Fatalf("Revocation: %v", err)
	}
	checkRevocation(t, "Revocation after second Revoke", got, first)
	gotCert, err := s.Certificate(ctx, "4004")
	if err != nil {
		t.Fatalf("Certificate: %v", err)
	}
	want := cert
	want.RevokedAt, want.ReasonCode, want.Reason = first.RevokedAt, first.ReasonCode, first.Reason
	checkCert(t, "Certificate after second Revoke", gotCert, want)
	revs, err := s.Revocations(ctx)
	if err != nil {
		t.Fatalf("Revocations: %v", err)
	}
	if len(revs) != 1 {
		t.Fatalf("Revocations returned %d entries after revoking one serial twice, want 1", len(revs))
	}
	checkRevocation(t, "Revocations[0]", revs[0], first)
}

func testRevokeUnknownSerial(t *testing.T, open func(t *testing.T) ca.Store) {
	ctx := testContext(t)
	s := open(t)
	// Neither a certificate in the store nor an expiry: a serial reported
	// compromised before (or without) its issuance being recorded.
	rev := ca.Revocation{Serial: "999", ReasonCode: 1, Reason: "key compromise", RevokedAt: baseTime()}
	if err := s.Revoke(ctx, rev); err != nil {
		t.Fatalf("Revoke of a serial the store holds no certificate for: %v", err)
	}
	got, err := s.Revocation(ctx, "999")
	if err != nil {
		t.Fatalf("Revocation: %v", err)
	}
	checkRevocation(t, "Revocation", got, rev)
	if !got.ExpiresAt.IsZero() {
		t.Errorf("ExpiresAt = %s, want the zero time", got.ExpiresAt)
	}
	if _, err := s.Certificate(ctx, "999"); !errors.Is(err, ca.ErrNotFound) {
		t.Errorf("Certificate for a revoked but never stored serial: %v, want ErrNotFound", err)
	}
	yes := true
	list, err := s.Certificates(ctx, ca.CertQuery{Revoked: &yes})
	if err != nil {
		t.Fatalf("Certificates: %v", err)
	}
	if len(list) != 0 {
		t.Errorf("Certificates(revoked) lists %d records for a store without certificates", len(list))
	}
	revs, err := s.Revocations(ctx)
	if err != nil {
		t.Fatalf("Revocations: %v", err)
	}
	if len(revs) != 1 {
		t.Fatalf("Revocations returned %d entries, want 1", len(revs))
	}
	checkRevocation(t, "Revocations[0]", revs[0], rev)
}

func testRevocationsOrder(t *testing.T, open func(t *testing.T) ca.Store) {
	ctx := testContext(t)
	s := open(t)
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	// Inserted in neither time nor serial order.
	revs := []ca.Revocation{
		{Serial: "11", ReasonCode: 0, Reason: "unspecified", RevokedAt: base.Add(time.Second)},
		{Serial: "12", ReasonCode: 1, Reason: "key compromise", RevokedAt: base},
		{Serial: "10", ReasonCode: 4, Reason: "superseded", RevokedAt: base.Add(500 * time.Millisecond)},
		{Serial: "13", ReasonCode: 5, Reason: "cessation of operation", RevokedAt: base.Add(time.Nanosecond)},
	}
	for _, r := range revs {
		if err := s.Revoke(ctx, r); err != nil {
			t.Fatalf("Revoke(%s): %v", r.Serial, err)
		}
	}
	got, err := s.Revocations(ctx)
	if err != nil {
		t.Fatalf("Revocations: %v", err)
	}
	want := []ca.Revocation{revs[1], revs[3], revs[2], revs[0]}
	if len(got) != len(want) {
		t.Fatalf("Revocations returned %d entries, want %d", len(got), len(want))
	}
	for i := range want {
		checkRevocation(t, "Revocations (oldest first) entry "+want[i].Serial, got[i], want[i])
	}
}
