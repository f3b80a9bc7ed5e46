package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/leashpki/leash/gateway/store"
	"github.com/leashpki/leash/protocol"
)

// RegisterRunner inserts or updates a runner and returns its previous
// status ("" when new).
func (s *Store) RegisterRunner(ctx context.Context, r store.RunnerRecord) (string, error) {
	if r.ID == "" {
		return "", errors.New("register runner: empty id")
	}
	labels, err := json.Marshal(nonNilMap(r.Labels))
	if err != nil {
		return "", fmt.Errorf("register runner %s: %w", r.ID, err)
	}
	caps, err := json.Marshal(nonNilSlice(r.Capabilities))
	if err != nil {
		return "", fmt.Errorf("register runner %s: %w", r.ID, err)
	}
	var te timeEncoder
	seen := te.encode("last_seen", r.LastSeen)
	notAfter := te.encodeOpt("cert_not_after", r.CertNotAfter)
	if te.err != nil {
		return "", fmt.Errorf("register runner %s: %w", r.ID, te.err)
	}
	var prev string
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT status FROM runners WHERE id = ?`, r.ID).Scan(&prev)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		_, err = tx.ExecContext(ctx, `
INSERT INTO runners (id, status, hostname, os, arch, version, labels, capabilities, cert_serial, cert_not_after,
	first_seen, last_seen)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET status = excluded.status, hostname = excluded.hostname, os = excluded.os,
	arch = excluded.arch, version = excluded.version, labels = excluded.labels,
	capabilities = excluded.capabilities, cert_serial = excluded.cert_serial,
	cert_not_after = excluded.cert_not_after, last_seen = excluded.last_seen`,
			r.ID, protocol.RunnerOnline, r.Hostname, r.OS, r.Arch, r.Version, string(labels), string(caps),
			r.CertSerial, notAfter, seen, seen)
		return err
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
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT status FROM runners WHERE id = ?`, h.RunnerID).Scan(&prev)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		if prev == protocol.RunnerRevoked {
			return fmt.Errorf("%w: runner is revoked; it must enroll and register again", store.ErrConflict)
		}
		_, err = tx.ExecContext(ctx, `
UPDATE runners SET status = ?, last_seen = ?, load1 = ?, mem_used = ?, mem_total = ?,
	cert_serial = CASE WHEN ? <> '' THEN ? ELSE cert_serial END,
	cert_not_after = COALESCE(?, cert_not_after)
WHERE id = ?`, protocol.RunnerOnline, at, h.Load1, int64(h.MemUsed), int64(h.MemTotal),
			h.CertSerial, h.CertSerial, notAfter, h.RunnerID)
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
	r, err := scanRunner(s.db.QueryRowContext(ctx, runnerColumns+` WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
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
	var args []any
	if q.Status != "" {
		query += ` WHERE status = ?`
		args = append(args, q.Status)
	}
	query += ` ORDER BY id`
	if q.Limit > 0 {
		query += fmt.Sprintf(" LIMIT %d", q.Limit)
	}
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list runners: %w", err)
	}
	defer rows.Close()
	var out []store.RunnerRecord
	for rows.Next() {
		r, err := scanRunner(rows)
		if err != nil {
			return nil, fmt.Errorf("list runners: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list runners: %w", err)
	}
	return out, nil
}

// MarkOffline sets online runners not seen since cutoff offline, in one
// statement, and returns their ids.
func (s *Store) MarkOffline(ctx context.Context, cutoff time.Time) ([]string, error) {
	c, err := encodeTime(cutoff)
	if err != nil {
		return nil, fmt.Errorf("mark offline: %w", err)
	}
	rows, err := s.db.QueryContext(ctx, `UPDATE runners SET status = ? WHERE status = ? AND last_seen < ? RETURNING id`,
		protocol.RunnerOffline, protocol.RunnerOnline, c)
	if err != nil {
		return nil, fmt.Errorf("mark offline: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("mark offline: %w", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("mark offline: %w", err)
	}
	return ids, nil
}

// SetRunnerStatus sets a runner's status.
func (s *Store) SetRunnerStatus(ctx context.Context, id, status string) error {
	switch status {
	case protocol.RunnerOnline, protocol.RunnerOffline, protocol.RunnerRevoked:
	default:
		return fmt.Errorf("set runner %s status: unknown status %q", id, status)
	}
	res, err := s.db.ExecContext(ctx, `UPDATE runners SET status = ? WHERE id = ?`, status, id)
	if err != nil {
		return fmt.Errorf("set runner %s status: %w", id, err)
	}
	n, err := affected(res)
	if err != nil {
		return fmt.Errorf("set runner %s status: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("set runner %s status: %w", id, store.ErrNotFound)
	}
	return nil
}

func scanRunner(sc scanner) (store.RunnerRecord, error) {
	var r store.RunnerRecord
	var labels, caps string
	var notAfter, first, last sql.NullString
	var memUsed, memTotal int64
	if err := sc.Scan(&r.ID, &r.Status, &r.Hostname, &r.OS, &r.Arch, &r.Version, &labels, &caps, &r.CertSerial,
		&notAfter, &first, &last, &r.Load1, &memUsed, &memTotal); err != nil {
		return r, err
	}
	if err := json.Unmarshal([]byte(labels), &r.Labels); err != nil {
		return r, fmt.Errorf("runner %s labels: %w", r.ID, err)
	}
	if err := json.Unmarshal([]byte(caps), &r.Capabilities); err != nil {
		return r, fmt.Errorf("runner %s capabilities: %w", r.ID, err)
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
	r.MemUsed, r.MemTotal = uint64(memUsed), uint64(memTotal)
	return r, td.err
}

// inTx runs fn in one IMMEDIATE transaction (the DSN's _txlock), so reads
// inside it see no concurrent writer.
func (s *Store) inTx(ctx context.Context, fn func(tx *sql.Tx) error) (err error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

func nonNilMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func nonNilSlice(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
