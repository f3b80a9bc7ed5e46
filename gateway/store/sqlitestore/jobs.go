package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/leashpki/leash/gateway/store"
	"github.com/leashpki/leash/protocol"
)

// SubmitJob stores a queued job and signals the runner's long-pollers.
func (s *Store) SubmitJob(ctx context.Context, j store.JobRecord) error {
	if j.ID == "" || j.Runner == "" || j.Kind == "" {
		return fmt.Errorf("submit job: id, runner and kind are required")
	}
	created, err := encodeTime(j.CreatedAt)
	if err != nil {
		return fmt.Errorf("submit job %s: %w", j.ID, err)
	}
	res, err := s.db.ExecContext(ctx, `
INSERT INTO jobs (id, runner, kind, command, timeout_ns, state, submitted_by, created_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
		j.ID, j.Runner, j.Kind, j.Command, int64(j.Timeout), protocol.JobQueued, j.SubmittedBy, created)
	if err != nil {
		return fmt.Errorf("submit job %s: %w", j.ID, err)
	}
	n, err := affected(res)
	if err != nil {
		return fmt.Errorf("submit job %s: %w", j.ID, err)
	}
	if n == 0 {
		return fmt.Errorf("submit job %s: %w", j.ID, store.ErrExists)
	}
	s.signals.publish(j.Runner)
	return nil
}

// ClaimJob hands runner its oldest claimable job inside one write
// transaction: SQLite has a single writer, so two claims never see the same
// job as claimable.
func (s *Store) ClaimJob(ctx context.Context, runner string, now, leaseUntil time.Time) (store.JobRecord, error) {
	var te timeEncoder
	nowS := te.encode("now", now)
	leaseS := te.encode("lease_until", leaseUntil)
	if te.err != nil {
		return store.JobRecord{}, fmt.Errorf("claim job: %w", te.err)
	}
	// Long-polls ask every second; most of the time there is nothing to
	// claim, and finding that out must not take the write lock.
	var one int
	err := s.db.QueryRowContext(ctx, `
SELECT 1 FROM jobs WHERE runner = ? AND (state = ? OR (state = ? AND lease_until < ?)) LIMIT 1`,
		runner, protocol.JobQueued, protocol.JobRunning, nowS).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return store.JobRecord{}, fmt.Errorf("claim job for %s: %w", runner, store.ErrNotFound)
	}
	if err != nil {
		return store.JobRecord{}, fmt.Errorf("claim job for %s: %w", runner, err)
	}
	var job store.JobRecord
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		var id string
		err := tx.QueryRowContext(ctx, `
SELECT id FROM jobs WHERE runner = ? AND (state = ? OR (state = ? AND lease_until < ?))
ORDER BY created_at, id LIMIT 1`, runner, protocol.JobQueued, protocol.JobRunning, nowS).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `
UPDATE jobs SET state = ?, attempts = attempts + 1, claimed_at = ?, lease_until = ? WHERE id = ?`,
			protocol.JobRunning, nowS, leaseS, id); err != nil {
			return err
		}
		job, err = scanJob(tx.QueryRowContext(ctx, jobColumns+` WHERE id = ?`, id))
		return err
	})
	if err != nil {
		return store.JobRecord{}, fmt.Errorf("claim job for %s: %w", runner, err)
	}
	return job, nil
}

// FinishJob records a job's result once, for the runner it belongs to.
func (s *Store) FinishJob(ctx context.Context, id, runner, state string, result []byte, at time.Time) error {
	if state != protocol.JobSucceeded && state != protocol.JobFailed {
		return fmt.Errorf("finish job %s: state %q is not a final state", id, state)
	}
	atS, err := encodeTime(at)
	if err != nil {
		return fmt.Errorf("finish job %s: %w", id, err)
	}
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		var owner, cur string
		err := tx.QueryRowContext(ctx, `SELECT runner, state FROM jobs WHERE id = ?`, id).Scan(&owner, &cur)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		switch {
		case owner != runner:
			return fmt.Errorf("%w: the job belongs to another runner", store.ErrConflict)
		case cur == protocol.JobSucceeded || cur == protocol.JobFailed:
			return fmt.Errorf("%w: the job already finished (%s)", store.ErrConflict, cur)
		case cur == protocol.JobQueued:
			// Only a claimed job can finish; a queued job that was
			// claimed before (attempts > 0, lease ran out) may still
			// receive the late result of that attempt.
			var attempts int
			if err := tx.QueryRowContext(ctx, `SELECT attempts FROM jobs WHERE id = ?`, id).Scan(&attempts); err != nil {
				return err
			}
			if attempts == 0 {
				return fmt.Errorf("%w: the job was never claimed", store.ErrConflict)
			}
		}
		_, err = tx.ExecContext(ctx, `UPDATE jobs SET state = ?, finished_at = ?, lease_until = NULL, result = ? WHERE id = ?`,
			state, atS, result, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("finish job %s: %w", id, err)
	}
	return nil
}

const jobColumns = `SELECT id, runner, kind, command, timeout_ns, state, attempts, submitted_by, created_at,
	claimed_at, lease_until, finished_at, result FROM jobs`

// Job returns one job or store.ErrNotFound.
func (s *Store) Job(ctx context.Context, id string) (store.JobRecord, error) {
	j, err := scanJob(s.db.QueryRowContext(ctx, jobColumns+` WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return store.JobRecord{}, fmt.Errorf("job %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.JobRecord{}, fmt.Errorf("job %s: %w", id, err)
	}
	return j, nil
}

// Jobs lists jobs newest first.
func (s *Store) Jobs(ctx context.Context, q store.JobQuery) ([]store.JobRecord, error) {
	var where []string
	var args []any
	if q.Runner != "" {
		where = append(where, "runner = ?")
		args = append(args, q.Runner)
	}
	if q.State != "" {
		where = append(where, "state = ?")
		args = append(args, q.State)
	}
	query := jobColumns
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY created_at DESC, id DESC"
	if q.Limit > 0 {
		query += fmt.Sprintf(" LIMIT %d", q.Limit)
	}
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	defer rows.Close()
	var out []store.JobRecord
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, fmt.Errorf("list jobs: %w", err)
		}
		out = append(out, j)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	return out, nil
}

// JobSignals subscribes to job submissions made through this Store. SQLite
// has no cross-process notification, so a gateway sharing the file with
// another process learns of its jobs through its re-check timer.
func (s *Store) JobSignals(ctx context.Context) (<-chan string, error) {
	return s.signals.subscribe(ctx), nil
}

func scanJob(sc scanner) (store.JobRecord, error) {
	var j store.JobRecord
	var timeout int64
	var created, claimed, lease, finished sql.NullString
	if err := sc.Scan(&j.ID, &j.Runner, &j.Kind, &j.Command, &timeout, &j.State, &j.Attempts, &j.SubmittedBy,
		&created, &claimed, &lease, &finished, &j.Result); err != nil {
		return j, err
	}
	j.Timeout = time.Duration(timeout)
	var td timeDecoder
	j.CreatedAt = td.decode(created)
	j.ClaimedAt = td.decode(claimed)
	j.LeaseUntil = td.decode(lease)
	j.FinishedAt = td.decode(finished)
	return j, td.err
}
