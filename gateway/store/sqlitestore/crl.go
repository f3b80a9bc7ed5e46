package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/leashpki/leash/ca"
)

// CRL returns the stored CRL with the highest number, or ca.ErrNotFound.
func (s *Store) CRL(ctx context.Context) (ca.CRLRecord, error) {
	var (
		rec                    ca.CRLRecord
		thisUpdate, nextUpdate sql.NullString
		duration               int64
	)
	err := s.db.QueryRowContext(ctx, `
SELECT number, this_update, next_update, duration_ns, der FROM crls ORDER BY number DESC LIMIT 1`).
		Scan(&rec.Number, &thisUpdate, &nextUpdate, &duration, &rec.DER)
	if errors.Is(err, sql.ErrNoRows) {
		return ca.CRLRecord{}, fmt.Errorf("CRL: %w", ca.ErrNotFound)
	}
	if err != nil {
		return ca.CRLRecord{}, fmt.Errorf("CRL: %w", err)
	}
	var td timeDecoder
	rec.ThisUpdate = td.decode(thisUpdate)
	rec.NextUpdate = td.decode(nextUpdate)
	if td.err != nil {
		return ca.CRLRecord{}, fmt.Errorf("CRL %d: %w", rec.Number, td.err)
	}
	rec.Duration = time.Duration(duration)
	return rec, nil
}

// PutCRL stores rec if its number is higher than every stored CRL's, and
// otherwise returns ca.ErrExists and keeps the stored CRLs. The check and
// the insert are one statement, so concurrent writers cannot both win.
// Older CRLs are kept as a record of what was published.
func (s *Store) PutCRL(ctx context.Context, rec ca.CRLRecord) error {
	if rec.Number < 0 {
		return fmt.Errorf("put CRL %d: CRL numbers are not negative", rec.Number)
	}
	var te timeEncoder
	thisUpdate := te.encode("this_update", rec.ThisUpdate)
	nextUpdate := te.encode("next_update", rec.NextUpdate)
	if te.err != nil {
		return fmt.Errorf("put CRL %d: %w", rec.Number, te.err)
	}
	res, err := s.db.ExecContext(ctx, `
INSERT INTO crls (number, this_update, next_update, duration_ns, der)
SELECT ?1, ?2, ?3, ?4, ?5
WHERE NOT EXISTS (SELECT 1 FROM crls WHERE number >= ?1)`,
		rec.Number, thisUpdate, nextUpdate, int64(rec.Duration), blob(rec.DER))
	if err != nil {
		return fmt.Errorf("put CRL %d: %w", rec.Number, err)
	}
	n, err := affected(res)
	if err != nil {
		return fmt.Errorf("put CRL %d: %w", rec.Number, err)
	}
	if n == 0 {
		return fmt.Errorf("put CRL %d: a CRL with this or a higher number is stored: %w", rec.Number, ca.ErrExists)
	}
	return nil
}
