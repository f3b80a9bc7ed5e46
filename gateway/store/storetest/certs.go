package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/leashpki/leash/ca"
)

func testCertificatePutGet(t *testing.T, open func(t *testing.T) ca.Store) {
	ctx := testContext(t)
	s := open(t)
	want := certRecord("340282366920938463463374607431768211455", "server", "gw", baseTime())
	putCert(ctx, t, s, want)
	got, err := s.Certificate(ctx, want.Serial)
	if err != nil {
		t.Fatalf("Certificate: %v", err)
	}
	checkCert(t, "Certificate", got, want)
	if got.Revoked() {
		t.Error("a certificate nobody revoked reports Revoked() = true")
	}
	list, err := s.Certificates(ctx, ca.CertQuery{})
	if err != nil {
		t.Fatalf("Certificates: %v", err)
	}
	if len(list) != 1 {
		t.Fatalf("Certificates returned %d records, want 1", len(list))
	}
	checkCert(t, "Certificates[0]", list[0], want)
}

func testCertificateDuplicate(t *testing.T, open func(t *testing.T) ca.Store) {
	ctx := testContext(t)
	s := open(t)
	first := certRecord("1001", "runner", "r1", baseTime())
	putCert(ctx, t, s, first)
	second := certRecord("1001", "operator", "mallory", baseTime().Add(time.Hour))
	if err := s.PutCertificate(ctx, second); !errors.Is(err, ca.ErrExists) {
		t.Fatalf("second PutCertificate with serial 1001: %v, want ErrExists", err)
	}
	got, err := s.Certificate(ctx, "1001")
	if err != nil {
		t.Fatalf("Certificate: %v", err)
	}
	checkCert(t, "after duplicate put", got, first)
}

func testCertificateNotFound(t *testing.T, open func(t *testing.T) ca.Store) {
	ctx := testContext(t)
	s := open(t)
	if _, err := s.Certificate(ctx, "42"); !errors.Is(err, ca.ErrNotFound) {
		t.Errorf("Certificate on an empty store: %v, want ErrNotFound", err)
	}
	list, err := s.Certificates(ctx, ca.CertQuery{})
	if err != nil {
		t.Fatalf("Certificates on an empty store: %v", err)
	}
	if len(list) != 0 {
		t.Errorf("Certificates on an empty store returned %d records", len(list))
	}
	putCert(ctx, t, s, certRecord("43", "server", "gw", baseTime()))
	if _, err := s.Certificate(ctx, "42"); !errors.Is(err, ca.ErrNotFound) {
		t.Errorf("Certificate for a serial never stored: %v, want ErrNotFound", err)
	}
}

func testCertificateIgnoresRevocationFields(t *testing.T, open func(t *testing.T) ca.Store) {
	ctx := testContext(t)
	s := open(t)
	rec := certRecord("77", "runner", "r1", baseTime())
	want := rec
	rec.RevokedAt = baseTime().Add(time.Minute)
	rec.ReasonCode = 1
	rec.Reason = "key compromise"
	putCert(ctx, t, s, rec)
	got, err := s.Certificate(ctx, "77")
	if err != nil {
		t.Fatalf("Certificate: %v", err)
	}
	checkCert(t, "Certificate", got, want)
	if _, err := s.Revocation(ctx, "77"); !errors.Is(err, ca.ErrNotFound) {
		t.Errorf("Revocation after PutCertificate with revocation fields: %v, want ErrNotFound", err)
	}
}

func testCertificateSANs(t *testing.T, open func(t *testing.T) ca.Store) {
	tests := []struct {
		name string
		sans []string
	}{
		{"none", nil},
		{"empty", []string{}},
		{"one", []string{"gw.example.com"}},
		{"order kept", []string{"z.example.com", "a.example.com", "10.0.0.1", "::1", "spiffe://leash/runner/r1"}},
		{"awkward characters", []string{"a,b", `q"uote`, `back\slash`, "ünïcode.example", "[", "null", ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			s := open(t)
			rec := certRecord("5", "server", "gw", baseTime())
			rec.SANs = tt.sans
			putCert(ctx, t, s, rec)
			got, err := s.Certificate(ctx, "5")
			if err != nil {
				t.Fatalf("Certificate: %v", err)
			}
			checkCert(t, "Certificate", got, rec)
		})
	}
}

func testCertificateList(t *testing.T, open func(t *testing.T) ca.Store) {
	// Issue times differ by a nanosecond, by half a second and by whole
	// seconds, so that a backend ordering by a lossy or badly sortable
	// encoding of time gets the order wrong. Serials are in neither issue
	// nor reverse order, so ordering by serial is wrong too.
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	recs := map[string]ca.CertRecord{
		"105": certRecord("105", "server", "gw", base),
		"101": certRecord("101", "runner", "r1", base.Add(time.Nanosecond)),
		"104": certRecord("104", "runner", "r2", base.Add(500*time.Millisecond)),
		"102": certRecord("102", "operator", "alice", base.Add(time.Second)),
		"103": certRecord("103", "runner", "r1", base.Add(time.Hour)),
	}
	withNotAfter := func(serial string, d time.Duration) {
		r := recs[serial]
		r.NotAfter = base.Add(d)
		recs[serial] = r
	}
	withNotAfter("101", time.Hour)
	withNotAfter("104", 2*time.Hour)
	withNotAfter("103", 2*time.Hour-time.Nanosecond)
	revoked := map[string]ca.Revocation{
		"102": {Serial: "102", ReasonCode: 1, Reason: "key compromise", RevokedAt: base.Add(2 * time.Hour)},
		"103": {Serial: "103", ReasonCode: 4, Reason: "superseded", RevokedAt: base.Add(3 * time.Hour)},
	}

	ctx := testContext(t)
	s := open(t)
	for _, serial := range []string{"101", "102", "103", "104", "105"} {
		putCert(ctx, t, s, recs[serial])
	}
	for serial, r := range revoked {
		if err := s.Revoke(ctx, r); err != nil {
			t.Fatalf("Revoke(%s): %v", serial, err)
		}
		rec := recs[serial]
		rec.RevokedAt, rec.ReasonCode, rec.Reason = r.RevokedAt, r.ReasonCode, r.Reason
		recs[serial] = rec
	}

	yes, no := true, false
	tests := []struct {
		name string
		q    ca.CertQuery
		want []string
	}{
		{"all, newest first", ca.CertQuery{}, []string{"103", "102", "104", "101", "105"}},
		{"profile", ca.CertQuery{Profile: "runner"}, []string{"103", "104", "101"}},
		{"subject", ca.CertQuery{Subject: "r1"}, []string{"103", "101"}},
		{"profile and subject", ca.CertQuery{Profile: "operator", Subject: "alice"}, []string{"102"}},
		{"not after before is strict", ca.CertQuery{NotAfterBefore: base.Add(2 * time.Hour)}, []string{"103", "101"}},
		{"revoked only", ca.CertQuery{Revoked: &yes}, []string{"103", "102"}},
		{"not revoked only", ca.CertQuery{Revoked: &no}, []string{"104", "101", "105"}},
		{"profile and not revoked", ca.CertQuery{Profile: "runner", Revoked: &no}, []string{"104", "101"}},
		{"expiring and revoked", ca.CertQuery{NotAfterBefore: base.Add(2 * time.Hour), Revoked: &yes}, []string{"103"}},
		{"limit", ca.CertQuery{Limit: 2}, []string{"103", "102"}},
		{"limit with filter", ca.CertQuery{Profile: "runner", Limit: 1}, []string{"103"}},
		{"limit above count", ca.CertQuery{Limit: 50}, []string{"103", "102", "104", "101", "105"}},
		{"no match", ca.CertQuery{Profile: "prometheus"}, nil},
		{"subject of another profile", ca.CertQuery{Profile: "server", Subject: "r1"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Certificates(ctx, tt.q)
			if err != nil {
				t.Fatalf("Certificates: %v", err)
			}
			var serials []string
			for _, r := range got {
				serials = append(serials, r.Serial)
			}
			var d differ
			d.strings("serials", serials, tt.want)
			d.report(t, "Certificates")
			if len(d.diffs) > 0 {
				return
			}
			for _, r := range got {
				checkCert(t, "record "+r.Serial, r, recs[r.Serial])
			}
		})
	}
}

func testTimeRoundTrip(t *testing.T, open func(t *testing.T) ca.Store) {
	tests := []struct {
		name string
		at   time.Time
	}{
		{"nanoseconds", baseTime()},
		{"one nanosecond after the epoch", time.Unix(0, 1).UTC()},
		{"before the epoch", time.Date(1969, 12, 31, 23, 59, 59, 999999999, time.UTC)},
		{"other zone comes back as UTC", time.Date(2025, 6, 1, 12, 0, 0, 123, time.FixedZone("CEST", 2*60*60))},
		{"local clock with monotonic reading", time.Now()},
		// RFC 5280 4.1.2.5: 99991231235959Z means "no well-defined
		// expiration"; a store must be able to hold it.
		{"no well-defined expiration", time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			s := open(t)
			at := tt.at

			cert := certRecord("9", "server", "gw", at)
			cert.NotBefore, cert.NotAfter = at, at
			putCert(ctx, t, s, cert)
			rev := ca.Revocation{Serial: "9", ReasonCode: 5, Reason: "cessation of operation", RevokedAt: at, ExpiresAt: at}
			if err := s.Revoke(ctx, rev); err != nil {
				t.Fatalf("Revoke: %v", err)
			}
			cert.RevokedAt, cert.ReasonCode, cert.Reason = at, rev.ReasonCode, rev.Reason
			gotCert, err := s.Certificate(ctx, "9")
			if err != nil {
				t.Fatalf("Certificate: %v", err)
			}
			checkCert(t, "Certificate", gotCert, cert)
			gotRev, err := s.Revocation(ctx, "9")
			if err != nil {
				t.Fatalf("Revocation: %v", err)
			}
			checkRevocation(t, "Revocation", gotRev, rev)

			tok := tokenRecord("tok", ca.TokenEnroll, "r1", at)
			tok.ExpiresAt = at
			putToken(ctx, t, s, tok)
			if err := s.SpendToken(ctx, "tok", at); err != nil {
				t.Fatalf("SpendToken: %v", err)
			}
			tok.UsedAt = at
			gotTok, err := s.Token(ctx, "tok")
			if err != nil {
				t.Fatalf("Token: %v", err)
			}
			checkToken(t, "Token", gotTok, tok)

			crl := ca.CRLRecord{Number: 1, ThisUpdate: at, NextUpdate: at, Duration: 7*24*time.Hour + time.Nanosecond, DER: []byte{1}}
			if err := s.PutCRL(ctx, crl); err != nil {
				t.Fatalf("PutCRL: %v", err)
			}
			gotCRL, err := s.CRL(ctx)
			if err != nil {
				t.Fatalf("CRL: %v", err)
			}
			checkCRL(t, "CRL", gotCRL, crl)
		})
	}
}
