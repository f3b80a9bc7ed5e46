package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

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
	sans := rec.SANs
	if sans == nil {
		sans = []string{}
	}
	sansJSON, err := json.Marshal(sans)
	if err != nil {
		return fmt.Errorf("put certificate %s: encode SANs: %w", rec.Serial, err)
	}
	res, err := s.db.ExecContext(ctx, `
INSERT INTO certificates (serial, profile, subject, sans, not_before, not_after, issued_at, der)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (serial) DO NOTHING`,
		rec.Serial, rec.Profile, rec.Subject, string(sansJSON), notBefore, notAfter, issuedAt, blob(rec.DER))
	if err != nil {
		return fmt.Errorf("put certificate %s: %w", rec.Serial, err)
	}
	n, err := affected(res)
	if err != nil {
		return fmt.Errorf("put certificate %s: %w", rec.Serial, err)
	}
	if n == 0 {
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
	row := s.db.QueryRowContext(ctx, certColumns+` WHERE c.serial = ?`, serial)
	rec, err := scanCert(row)
	if errors.Is(err, sql.ErrNoRows) {
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
	var args []any
	if q.Profile != "" {
		where = append(where, "c.profile = ?")
		args = append(args, q.Profile)
	}
	if q.Subject != "" {
		where = append(where, "c.subject = ?")
		args = append(args, q.Subject)
	}
	if !q.NotAfterBefore.IsZero() {
		before, err := encodeTime(q.NotAfterBefore)
		if err != nil {
			return nil, fmt.Errorf("list certificates: not_after bound: %w", err)
		}
		where = append(where, "c.not_after < ?")
		args = append(args, before)
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
		query += " LIMIT ?"
		args = append(args, q.Limit)
	}
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list certificates: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var out []ca.CertRecord
	for rows.Next() {
		rec, err := scanCert(rows)
		if err != nil {
			return nil, fmt.Errorf("list certificates: %w", err)
		}
		out = append(out, rec)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list certificates: %w", err)
	}
	return out, nil
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface {
	Scan(dest ...any) error
}

func scanCert(sc scanner) (ca.CertRecord, error) {
	var (
		rec                                     ca.CertRecord
		sans                                    string
		notBefore, notAfter, issuedAt, revokeAt sql.NullString
		reasonCode                              sql.NullInt64
		reason                                  sql.NullString
	)
	err := sc.Scan(&rec.Serial, &rec.Profile, &rec.Subject, &sans, &notBefore, &notAfter, &issuedAt, &rec.DER,
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
	rec.ReasonCode = int(reasonCode.Int64)
	rec.Reason = reason.String
	if err := json.Unmarshal([]byte(sans), &rec.SANs); err != nil {
		return ca.CertRecord{}, fmt.Errorf("certificate %s: stored SANs: %w", rec.Serial, err)
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
	res, err := s.db.ExecContext(ctx, `
INSERT INTO revocations (serial, reason_code, reason, revoked_at, expires_at)
VALUES (?, ?, ?, ?, ?)
ON CONFLICT (serial) DO NOTHING`,
		r.Serial, r.ReasonCode, r.Reason, revokedAt, expiresAt)
	if err != nil {
		return fmt.Errorf("revoke %s: %w", r.Serial, err)
	}
	n, err := affected(res)
	if err != nil {
		return fmt.Errorf("revoke %s: %w", r.Serial, err)
	}
	if n == 0 {
		return fmt.Errorf("revoke %s: %w", r.Serial, ca.ErrAlreadyRevoked)
	}
	return nil
}

const revocationColumns = `SELECT serial, reason_code, reason, revoked_at, expires_at FROM revocations`

// Revocation returns the revocation of serial, or ca.ErrNotFound.
func (s *Store) Revocation(ctx context.Context, serial string) (ca.Revocation, error) {
	row := s.db.QueryRowContext(ctx, revocationColumns+` WHERE serial = ?`, serial)
	r, err := scanRevocation(row)
	if errors.Is(err, sql.ErrNoRows) {
		return ca.Revocation{}, fmt.Errorf("revocation of %s: %w", serial, ca.ErrNotFound)
	}
	if err != nil {
		return ca.Revocation{}, fmt.Errorf("revocation of %s: %w", serial, err)
	}
	return r, nil
}

// Revocations lists every revocation, oldest first.
func (s *Store) Revocations(ctx context.Context) ([]ca.Revocation, error) {
	rows, err := s.db.QueryContext(ctx, revocationColumns+` ORDER BY revoked_at, serial`)
	if err != nil {
		return nil, fmt.Errorf("list revocations: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var out []ca.Revocation
	for rows.Next() {
		r, err := scanRevocation(rows)
		if err != nil {
			return nil, fmt.Errorf("list revocations: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list revocations: %w", err)
	}
	return out, nil
}

func scanRevocation(sc scanner) (ca.Revocation, error) {
	var (
		r                    ca.Revocation
		revokedAt, expiresAt sql.NullString
	)
	if err := sc.Scan(&r.Serial, &r.ReasonCode, &r.Reason, &revokedAt, &expiresAt); err != nil {
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

// blob returns b, or an empty non-nil slice for nil, so that the NOT NULL
// BLOB columns store an empty value rather than refusing NULL.
func blob(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
