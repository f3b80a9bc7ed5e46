package pgstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/leashpki/leash/gateway/store"
	"github.com/leashpki/leash/protocol"
)

// RegisterRunner inserts or updates a runner and returns its previous
// status ("" when new).
func (s *Store) RegisterRunner(ctx context.Context, r store.RunnerRecord) (string, error) {
	if r.ID == "" {
		return "", errors.New("register runner: empty id")
	}
	var te timeEncoder
	seen := te.encode("last_seen", r.LastSeen)
	notAfter := te.encodeOpt("cert_not_after", r.CertNotAfter)
	if te.err != nil {
		return "", fmt.Errorf("register runner %s: %w", r.ID, te.err)
	}
	labels := r.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	caps := nonNilSlice(r.Capabilities)
	var prev string
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// Either lock the existing row and update it, or insert a new
		// one. An insert that finds the id taken has waited for the
		// concurrent registration that took it to commit, so the next
		// locking read sees that row. Runners are never deleted, so a
		// second pass always finds it.
		for range 2 {
			err := tx.QueryRow(ctx, `SELECT status FROM runners WHERE id = $1 FOR UPDATE`, r.ID).Scan(&prev)
			if err == nil {
				_, err = tx.Exec(ctx, `
UPDATE runners SET status = $2, hostname = $3, os = $4, arch = $5, version = $6, labels = $7, capabilities = $8,
	cert_serial = $9, cert_not_after = $10, last_seen = $11
WHERE id = $1`,
					r.ID, protocol.RunnerOnline, r.Hostname, r.OS, r.Arch, r.Version, labels, caps,
					r.CertSerial, notAfter, seen)
				return err
			}
			if !isNoRows(err) {
				return err
			}
			tag, err := tx.Exec(ctx, `
INSERT INTO runners (id, status, hostname, os, arch, version, labels, capabilities, cert_serial, cert_not_after,
	first_seen, last_seen)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)
ON CONFLICT (id) DO NOTHING`,
				r.ID, protocol.RunnerOnline, r.Hostname, r.OS, r.Arch, r.Version, labels, caps,
				r.CertSerial, notAfter, seen)
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 1 {
				prev = ""
				return nil
			}
		}
		return errors.New("the runner was registered and removed concurrently; try again")
	})
	if err != nil {
		return "", fmt.Errorf("register runner %s: %w", r.ID, err)
	}
	return prev, nil
}

// Heartbeat records a heartbeat and returns the previous status.
func (s *Store) Heartbeat(ctx context.Context, h store.HeartbeatRecord) (string, error) {
	var te timeEncoder
	at := te.encode("at", h.At)
	notAfter := te.encodeOpt("cert_not_after", h.CertNotAfter)
	if te.err != nil {
		return "", fmt.Errorf("heartbeat %s: %w", h.RunnerID, te.err)
	}
	var prev string
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `SELECT status FROM runners WHERE id = $1 FOR UPDATE`, h.RunnerID).Scan(&prev)
		if isNoRows(err) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		if prev == protocol.RunnerRevoked {
			return fmt.Errorf("%w: runner is revoked; it must enroll and register again", store.ErrConflict)
		}
		_, err = tx.Exec(ctx, `
UPDATE runners SET status = $2, last_seen = $3, load1 = $4, mem_used = $5, mem_total = $6,
	cert_serial = CASE WHEN $7::text <> '' THEN $7::text ELSE cert_serial END,
	cert_not_after = COALESCE($8, cert_not_after)
WHERE id = $1`, h.RunnerID, protocol.RunnerOnline, at, h.Load1, int64(h.MemUsed), int64(h.MemTotal),
			h.CertSerial, notAfter)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("heartbeat %s: %w", h.RunnerID, err)
	}
	return prev, nil
}

const runnerColumns = `SELECT id, status, hostname, os, arch, version, labels, capabilities, cert_serial,
	cert_not_after, first_seen, last_seen, load1, mem_used, mem_total FROM runners`

// Runner returns one runner or store.ErrNotFound.
func (s *Store) Runner(ctx context.Context, id string) (store.RunnerRecord, error) {
	r, err := scanRunner(s.pool.QueryRow(ctx, runnerColumns+` WHERE id = $1`, id))
	if isNoRows(err) {
		return store.RunnerRecord{}, fmt.Errorf("runner %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.RunnerRecord{}, fmt.Errorf("runner %s: %w", id, err)
	}
	return r, nil
}

// Runners lists runners ordered by id.
func (s *Store) Runners(ctx context.Context, q store.RunnerQuery) ([]store.RunnerRecord, error) {
	query := runnerColumns
	var args params
	if q.Status != "" {
		query += ` WHERE status = ` + args.add(q.Status)
	}
	query += ` ORDER BY id`
	if q.Limit > 0 {
		query += ` LIMIT ` + args.add(q.Limit)
	}
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list runners: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.RunnerRecord, error) { return scanRunner(r) })
	if err != nil {
		return nil, fmt.Errorf("list runners: %w", err)
	}
	return out, nil
}

// MarkOffline sets online runners not seen since cutoff offline, in one
// statement, and returns their ids in order. The inner SELECT locks the
// rows in id order, so concurrent calls queue rather than deadlock, and
// re-checks each row after waiting for its lock: a runner another call
// has just marked offline no longer matches and is reported there only.
func (s *Store) MarkOffline(ctx context.Context, cutoff time.Time) ([]string, error) {
	c, err := encodeTime(cutoff)
	if err != nil {
		return nil, fmt.Errorf("mark offline: %w", err)
	}
	rows, err := s.pool.Query(ctx, `
UPDATE runners SET status = $1
WHERE status = $2 AND id IN (
	SELECT id FROM runners WHERE status = $2 AND last_seen < $3 ORDER BY id FOR UPDATE)
RETURNING id`, protocol.RunnerOffline, protocol.RunnerOnline, c)
	if err != nil {
		return nil, fmt.Errorf("mark offline: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("mark offline: %w", err)
	}
	slices.Sort(ids)
	return ids, nil
}

// SetRunnerStatus sets a runner's status.
func (s *Store) SetRunnerStatus(ctx context.Context, id, status string) error {
	switch status {
	case protocol.RunnerOnline, protocol.RunnerOffline, protocol.RunnerRevoked:
	default:
		return fmt.Errorf("set runner %s status: unknown status %q", id, status)
	}
	tag, err := s.pool.Exec(ctx, `UPDATE runners SET status = $1 WHERE id = $2`, status, id)
	if err != nil {
		return fmt.Errorf("set runner %s status: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("set runner %s status: %w", id, store.ErrNotFound)
	}
	return nil
}

func scanRunner(row pgx.Row) (store.RunnerRecord, error) {
	var r store.RunnerRecord
	var notAfter, first, last *string
	var memUsed, memTotal int64
	if err := row.Scan(&r.ID, &r.Status, &r.Hostname, &r.OS, &r.Arch, &r.Version, &r.Labels, &r.Capabilities,
		&r.CertSerial, &notAfter, &first, &last, &r.Load1, &memUsed, &memTotal); err != nil {
		return store.RunnerRecord{}, err
	}
	if len(r.Labels) == 0 {
		r.Labels = nil
	}
	if len(r.Capabilities) == 0 {
		r.Capabilities = nil
	}
	var td timeDecoder
	r.CertNotAfter = td.decode(notAfter)
	r.FirstSeen = td.decode(first)
	r.LastSeen = td.decode(last)
	if td.err != nil {
		return store.RunnerRecord{}, fmt.Errorf("runner %s: %w", r.ID, td.err)
	}
	r.MemUsed, r.MemTotal = uint64(memUsed), uint64(memTotal)
	return r, nil
}
