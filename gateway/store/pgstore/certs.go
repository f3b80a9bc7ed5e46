package pgstore

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/leashpki/leash/ca"
)

// PutCertificate records an issued certificate; a stored serial returns
// ca.ErrExists and leaves the stored record as it was. Revocation fields of
// rec are ignored.
func (s *Store) PutCertificate(ctx context.Context, rec ca.CertRecord) error {
	var te timeEncoder
	notBefore := te.encode("not_before", rec.NotBefore)
	notAfter := te.encode("not_after", rec.NotAfter)
	issuedAt := te.encode("issued_at", rec.IssuedAt)
	if te.err != nil {
		return fmt.Errorf("put certificate %s: %w", rec.Serial, te.err)
	}
	tag, err := s.pool.Exec(ctx, `
INSERT INTO certificates (serial, profile, subject, sans, not_before, not_after, issued_at, der)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (serial) DO NOTHING`,
		rec.Serial, rec.Profile, rec.Subject, nonNilSlice(rec.SANs), notBefore, notAfter, issuedAt, blob(rec.DER))
	if err != nil {
		return fmt.Errorf("put certificate %s: %w", rec.Serial, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("put certificate %s: serial %w", rec.Serial, ca.ErrExists)
	}
	return nil
}

// certColumns selects a certificate joined with its revocation, in the
// order scanCert reads them.
const certColumns = `
SELECT c.serial, c.profile, c.subject, c.sans, c.not_before, c.not_after, c.issued_at, c.der,
       r.revoked_at, r.reason_code, r.reason
FROM certificates c LEFT JOIN revocations r ON r.serial = c.serial`

// Certificate returns the certificate with serial, with its revocation if
// any, or ca.ErrNotFound.
func (s *Store) Certificate(ctx context.Context, serial string) (ca.CertRecord, error) {
	rec, err := scanCert(s.pool.QueryRow(ctx, certColumns+` WHERE c.serial = $1`, serial))
	if isNoRows(err) {
		return ca.CertRecord{}, fmt.Errorf("certificate %s: %w", serial, ca.ErrNotFound)
	}
	if err != nil {
		return ca.CertRecord{}, fmt.Errorf("certificate %s: %w", serial, err)
	}
	return rec, nil
}

// Certificates lists certificates matching q, most recently issued first.
func (s *Store) Certificates(ctx context.Context, q ca.CertQuery) ([]ca.CertRecord, error) {
	var where []string
	var args params
	if q.Profile != "" {
		where = append(where, "c.profile = "+args.add(q.Profile))
	}
	if q.Subject != "" {
		where = append(where, "c.subject = "+args.add(q.Subject))
	}
	if !q.NotAfterBefore.IsZero() {
		before, err := encodeTime(q.NotAfterBefore)
		if err != nil {
			return nil, fmt.Errorf("list certificates: not_after bound: %w", err)
		}
		where = append(where, "c.not_after < "+args.add(before))
	}
	if q.Revoked != nil {
		if *q.Revoked {
			where = append(where, "r.serial IS NOT NULL")
		} else {
			where = append(where, "r.serial IS NULL")
		}
	}
	query := certColumns
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY c.issued_at DESC, c.serial DESC"
	if q.Limit > 0 {
		query += " LIMIT " + args.add(q.Limit)
	}
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list certificates: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ca.CertRecord, error) { return scanCert(r) })
	if err != nil {
		return nil, fmt.Errorf("list certificates: %w", err)
	}
	return out, nil
}

func scanCert(row pgx.Row) (ca.CertRecord, error) {
	var (
		rec                                     ca.CertRecord
		notBefore, notAfter, issuedAt, revokeAt *string
		reasonCode                              *int
		reason                                  *string
	)
	err := row.Scan(&rec.Serial, &rec.Profile, &rec.Subject, &rec.SANs, &notBefore, &notAfter, &issuedAt, &rec.DER,
		&revokeAt, &reasonCode, &reason)
	if err != nil {
		return ca.CertRecord{}, err
	}
	var td timeDecoder
	rec.NotBefore = td.decode(notBefore)
	rec.NotAfter = td.decode(notAfter)
	rec.IssuedAt = td.decode(issuedAt)
	rec.RevokedAt = td.decode(revokeAt)
	if td.err != nil {
		return ca.CertRecord{}, fmt.Errorf("certificate %s: %w", rec.Serial, td.err)
	}
	if reasonCode != nil {
		rec.ReasonCode = *reasonCode
	}
	if reason != nil {
		rec.Reason = *reason
	}
	if len(rec.SANs) == 0 {
		rec.SANs = nil
	}
	return rec, nil
}

// Revoke records a revocation. The first revocation of a serial wins: a
// second returns ca.ErrAlreadyRevoked and changes nothing. The serial need
// not name a stored certificate. RevokedAt must be set.
func (s *Store) Revoke(ctx context.Context, r ca.Revocation) error {
	if r.RevokedAt.IsZero() {
		return fmt.Errorf("revoke %s: revocation time is not set", r.Serial)
	}
	var te timeEncoder
	revokedAt := te.encode("revoked_at", r.RevokedAt)
	expiresAt := te.encodeOpt("expires_at", r.ExpiresAt)
	if te.err != nil {
		return fmt.Errorf("revoke %s: %w", r.Serial, te.err)
	}
	tag, err := s.pool.Exec(ctx, `
INSERT INTO revocations (serial, reason_code, reason, revoked_at, expires_at)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (serial) DO NOTHING`,
		r.Serial, r.ReasonCode, r.Reason, revokedAt, expiresAt)
	if err != nil {
		return fmt.Errorf("revoke %s: %w", r.Serial, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("revoke %s: %w", r.Serial, ca.ErrAlreadyRevoked)
	}
	return nil
}

const revocationColumns = `SELECT serial, reason_code, reason, revoked_at, expires_at FROM revocations`

// Revocation returns the revocation of serial, or ca.ErrNotFound.
func (s *Store) Revocation(ctx context.Context, serial string) (ca.Revocation, error) {
	r, err := scanRevocation(s.pool.QueryRow(ctx, revocationColumns+` WHERE serial = $1`, serial))
	if isNoRows(err) {
		return ca.Revocation{}, fmt.Errorf("revocation of %s: %w", serial, ca.ErrNotFound)
	}
	if err != nil {
		return ca.Revocation{}, fmt.Errorf("revocation of %s: %w", serial, err)
	}
	return r, nil
}

// Revocations lists every revocation, oldest first.
func (s *Store) Revocations(ctx context.Context) ([]ca.Revocation, error) {
	rows, err := s.pool.Query(ctx, revocationColumns+` ORDER BY revoked_at, serial`)
	if err != nil {
		return nil, fmt.Errorf("list revocations: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ca.Revocation, error) { return scanRevocation(r) })
	if err != nil {
		return nil, fmt.Errorf("list revocations: %w", err)
	}
	return out, nil
}

func scanRevocation(row pgx.Row) (ca.Revocation, error) {
	var (
		r                    ca.Revocation
		revokedAt, expiresAt *string
	)
	if err := row.Scan(&r.Serial, &r.ReasonCode, &r.Reason, &revokedAt, &expiresAt); err != nil {
		return ca.Revocation{}, err
	}
	var td timeDecoder
	r.RevokedAt = td.decode(revokedAt)
	r.ExpiresAt = td.decode(expiresAt)
	if td.err != nil {
		return ca.Revocation{}, fmt.Errorf("revocation of %s: %w", r.Serial, td.err)
	}
	return r, nil
}

// nonNilSlice returns s, or an empty slice for nil: pgx sends a nil slice
// as NULL, which the NOT NULL array columns refuse.
func nonNilSlice(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
