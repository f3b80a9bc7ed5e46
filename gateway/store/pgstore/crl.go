package pgstore

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/leashpki/leash/ca"
)

// CRL returns the stored CRL with the highest number, or ca.ErrNotFound.
func (s *Store) CRL(ctx context.Context) (ca.CRLRecord, error) {
	var (
		rec                    ca.CRLRecord
		thisUpdate, nextUpdate *string
		duration               int64
	)
	err := s.pool.QueryRow(ctx, `
SELECT number, this_update, next_update, duration_ns, der FROM crls ORDER BY number DESC LIMIT 1`).
		Scan(&rec.Number, &thisUpdate, &nextUpdate, &duration, &rec.DER)
	if isNoRows(err) {
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
// the insert run under a table lock that only one writer holds at a time,
// so of two concurrent writers the second sees the first's CRL. Readers
// are not blocked. Older CRLs are kept as a record of what was published.
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
	var inserted int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `LOCK TABLE crls IN EXCLUSIVE MODE`); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `
INSERT INTO crls (number, this_update, next_update, duration_ns, der)
SELECT $1::bigint, $2::text, $3::text, $4::bigint, $5::bytea
WHERE NOT EXISTS (SELECT 1 FROM crls WHERE number >= $1)`,
			rec.Number, thisUpdate, nextUpdate, int64(rec.Duration), blob(rec.DER))
		inserted = tag.RowsAffected()
		return err
	})
	if err != nil {
		return fmt.Errorf("put CRL %d: %w", rec.Number, err)
	}
	if inserted == 0 {
		return fmt.Errorf("put CRL %d: a CRL with this or a higher number is stored: %w", rec.Number, ca.ErrExists)
	}
	return nil
}
