package pgstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/leashpki/leash/ca"
)

// PutToken records a newly minted token; a stored id returns ca.ErrExists
// and leaves the stored record as it was.
func (s *Store) PutToken(ctx context.Context, rec ca.TokenRecord) error {
	var te timeEncoder
	createdAt := te.encode("created_at", rec.CreatedAt)
	expiresAt := te.encode("expires_at", rec.ExpiresAt)
	usedAt := te.encodeOpt("used_at", rec.UsedAt)
	revokedAt := te.encodeOpt("revoked_at", rec.RevokedAt)
	if te.err != nil {
		return fmt.Errorf("put token %s: %w", rec.ID, te.err)
	}
	tag, err := s.pool.Exec(ctx, `
INSERT INTO tokens (id, kind, profile, subject, created_at, expires_at, used_at, revoked_at, cert_serial)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (id) DO NOTHING`,
		rec.ID, rec.Kind, rec.Profile, rec.Subject, createdAt, expiresAt, usedAt, revokedAt, nullIfEmpty(rec.CertSerial))
	if err != nil {
		return fmt.Errorf("put token %s: %w", rec.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("put token %s: id %w", rec.ID, ca.ErrExists)
	}
	return nil
}

const tokenColumns = `
SELECT id, kind, profile, subject, created_at, expires_at, used_at, revoked_at, cert_serial FROM tokens`

// Token returns the token record for id, or ca.ErrNotFound.
func (s *Store) Token(ctx context.Context, id string) (ca.TokenRecord, error) {
	rec, err := s.token(ctx, id)
	if err != nil {
		return ca.TokenRecord{}, fmt.Errorf("token %s: %w", id, err)
	}
	return rec, nil
}

// token is Token without the context in its errors.
func (s *Store) token(ctx context.Context, id string) (ca.TokenRecord, error) {
	rec, err := scanToken(s.pool.QueryRow(ctx, tokenColumns+` WHERE id = $1`, id))
	if isNoRows(err) {
		return ca.TokenRecord{}, ca.ErrNotFound
	}
	return rec, err
}

// Tokens lists token records matching q, most recently created first.
func (s *Store) Tokens(ctx context.Context, q ca.TokenQuery) ([]ca.TokenRecord, error) {
	var where []string
	var args params
	if q.Kind != "" {
		where = append(where, "kind = "+args.add(q.Kind))
	}
	if q.Subject != "" {
		where = append(where, "subject = "+args.add(q.Subject))
	}
	query := tokenColumns
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY created_at DESC, id DESC"
	if q.Limit > 0 {
		query += " LIMIT " + args.add(q.Limit)
	}
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ca.TokenRecord, error) { return scanToken(r) })
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	return out, nil
}

func scanToken(row pgx.Row) (ca.TokenRecord, error) {
	var (
		rec                                     ca.TokenRecord
		createdAt, expiresAt, usedAt, revokedAt *string
		certSerial                              *string
	)
	err := row.Scan(&rec.ID, &rec.Kind, &rec.Profile, &rec.Subject, &createdAt, &expiresAt, &usedAt, &revokedAt, &certSerial)
	if err != nil {
		return ca.TokenRecord{}, err
	}
	var td timeDecoder
	rec.CreatedAt = td.decode(createdAt)
	rec.ExpiresAt = td.decode(expiresAt)
	rec.UsedAt = td.decode(usedAt)
	rec.RevokedAt = td.decode(revokedAt)
	if td.err != nil {
		return ca.TokenRecord{}, fmt.Errorf("token %s: %w", rec.ID, td.err)
	}
	if certSerial != nil {
		rec.CertSerial = *certSerial
	}
	return rec, nil
}

// SpendToken marks id used at. One conditional UPDATE does it: PostgreSQL
// makes a concurrent UPDATE of the row wait for this one to commit and
// then re-check the condition, so of any number of concurrent calls, from
// any number of gateways, exactly one succeeds; the others get
// ca.ErrTokenUsed. An unknown id returns ca.ErrNotFound and a revoked one
// ca.ErrTokenRevoked.
func (s *Store) SpendToken(ctx context.Context, id string, at time.Time) error {
	const spend = `UPDATE tokens SET used_at = $1 WHERE id = $2 AND used_at IS NULL AND revoked_at IS NULL`
	if err := s.settle(ctx, id, spend, at); err != nil {
		return fmt.Errorf("spend token %s: %w", id, err)
	}
	return nil
}

// RevokeToken marks an unused token revoked at. It returns ca.ErrNotFound,
// ca.ErrTokenUsed (already spent) or ca.ErrTokenRevoked.
func (s *Store) RevokeToken(ctx context.Context, id string, at time.Time) error {
	const revoke = `UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND used_at IS NULL AND revoked_at IS NULL`
	if err := s.settle(ctx, id, revoke, at); err != nil {
		return fmt.Errorf("revoke token %s: %w", id, err)
	}
	return nil
}

// settle runs update, which stamps an open token (neither used nor revoked)
// with at. Both end states are final, so when the UPDATE changes nothing
// the row read afterwards says why, unless the token did not exist at the
// UPDATE and was stored just before the read: then the UPDATE is simply
// tried again.
func (s *Store) settle(ctx context.Context, id, update string, at time.Time) error {
	if at.IsZero() {
		return errors.New("time is not set")
	}
	stamp, err := encodeTime(at)
	if err != nil {
		return err
	}
	const attempts = 3
	for range attempts {
		tag, err := s.pool.Exec(ctx, update, stamp, id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 1 {
			return nil
		}
		rec, err := s.token(ctx, id)
		switch {
		case err != nil:
			return err
		case !rec.UsedAt.IsZero():
			return ca.ErrTokenUsed
		case !rec.RevokedAt.IsZero():
			return ca.ErrTokenRevoked
		}
	}
	return fmt.Errorf("token changed concurrently %d times; try again", attempts)
}

// SetTokenCertificate links token id to the certificate serial it produced,
// or returns ca.ErrNotFound.
func (s *Store) SetTokenCertificate(ctx context.Context, id, serial string) error {
	tag, err := s.pool.Exec(ctx, `UPDATE tokens SET cert_serial = $1 WHERE id = $2`, serial, id)
	if err != nil {
		return fmt.Errorf("link token %s to certificate %s: %w", id, serial, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("link token %s to certificate %s: token %w", id, serial, ca.ErrNotFound)
	}
	return nil
}
