package pgstore

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/leashpki/leash/gateway/store"
	"github.com/leashpki/leash/protocol"
)

// SubmitJob stores a queued job and, in the same transaction, notifies
// every store listening on the database (JobSignals, on any gateway) with
// the runner's id. PostgreSQL delivers the notification when the
// transaction commits, so no listener hears of a job it cannot yet claim.
func (s *Store) SubmitJob(ctx context.Context, j store.JobRecord) error {
	if j.ID == "" || j.Runner == "" || j.Kind == "" {
		return fmt.Errorf("submit job: id, runner and kind are required")
	}
	created, err := encodeTime(j.CreatedAt)
	if err != nil {
		return fmt.Errorf("submit job %s: %w", j.ID, err)
	}
	var inserted int64
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `
INSERT INTO jobs (id, runner, kind, command, timeout_ns, state, submitted_by, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING`,
			j.ID, j.Runner, j.Kind, j.Command, int64(j.Timeout), protocol.JobQueued, j.SubmittedBy, created)
		if err != nil {
			return err
		}
		if inserted = tag.RowsAffected(); inserted == 0 {
			return nil
		}
		_, err = tx.Exec(ctx, `SELECT pg_notify($1, $2)`, jobChannel, j.Runner)
		return err
	})
	if err != nil {
		return fmt.Errorf("submit job %s: %w", j.ID, err)
	}
	if inserted == 0 {
		return fmt.Errorf("submit job %s: %w", j.ID, store.ErrExists)
	}
	return nil
}

// ClaimJob hands runner its oldest claimable job in one statement. The
// inner SELECT locks the job it picks and skips jobs another claim has
// locked, so concurrent claims take different jobs instead of queueing on
// one; a job another claim has just taken no longer matches when its lock
// is released, and the SELECT moves on to the next.
func (s *Store) ClaimJob(ctx context.Context, runner string, now, leaseUntil time.Time) (store.JobRecord, error) {
	var te timeEncoder
	nowS := te.encode("now", now)
	leaseS := te.encode("lease_until", leaseUntil)
	if te.err != nil {
		return store.JobRecord{}, fmt.Errorf("claim job: %w", te.err)
	}
	job, err := scanJob(s.pool.QueryRow(ctx, `
UPDATE jobs SET state = $3, attempts = attempts + 1, claimed_at = $4, lease_until = $5
WHERE id = (
	SELECT id FROM jobs
	WHERE runner = $1 AND (state = $2 OR (state = $3 AND lease_until < $4))
	ORDER BY created_at, id
	LIMIT 1
	FOR UPDATE SKIP LOCKED)
RETURNING `+jobFields, runner, protocol.JobQueued, protocol.JobRunning, nowS, leaseS))
	if isNoRows(err) {
		return store.JobRecord{}, fmt.Errorf("claim job for %s: %w", runner, store.ErrNotFound)
	}
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
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var owner, cur string
		var attempts int
		err := tx.QueryRow(ctx, `SELECT runner, state, attempts FROM jobs WHERE id = $1 FOR UPDATE`, id).
			Scan(&owner, &cur, &attempts)
		if isNoRows(err) {
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
		case cur == protocol.JobQueued && attempts == 0:
			// Only a claimed job can finish. (A queued job that was
			// claimed before could take the late result of that attempt,
			// as in sqlitestore; no store puts a claimed job back in the
			// queue today, so that case does not arise.)
			return fmt.Errorf("%w: the job was never claimed", store.ErrConflict)
		}
		_, err = tx.Exec(ctx, `UPDATE jobs SET state = $2, finished_at = $3, lease_until = NULL, result = $4 WHERE id = $1`,
			id, state, atS, result)
		return err
	})
	if err != nil {
		return fmt.Errorf("finish job %s: %w", id, err)
	}
	return nil
}

// jobFields are a job's columns in the order scanJob reads them.
const jobFields = `id, runner, kind, command, timeout_ns, state, attempts, submitted_by, created_at,
	claimed_at, lease_until, finished_at, result`

// Job returns one job or store.ErrNotFound.
func (s *Store) Job(ctx context.Context, id string) (store.JobRecord, error) {
	j, err := scanJob(s.pool.QueryRow(ctx, `SELECT `+jobFields+` FROM jobs WHERE id = $1`, id))
	if isNoRows(err) {
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
	var args params
	if q.Runner != "" {
		where = append(where, "runner = "+args.add(q.Runner))
	}
	if q.State != "" {
		where = append(where, "state = "+args.add(q.State))
	}
	query := `SELECT ` + jobFields + ` FROM jobs`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY created_at DESC, id DESC"
	if q.Limit > 0 {
		query += " LIMIT " + args.add(q.Limit)
	}
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.JobRecord, error) { return scanJob(r) })
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	return out, nil
}

func scanJob(row pgx.Row) (store.JobRecord, error) {
	var j store.JobRecord
	var timeout int64
	var created, claimed, lease, finished *string
	if err := row.Scan(&j.ID, &j.Runner, &j.Kind, &j.Command, &timeout, &j.State, &j.Attempts, &j.SubmittedBy,
		&created, &claimed, &lease, &finished, &j.Result); err != nil {
		return store.JobRecord{}, err
	}
	j.Timeout = time.Duration(timeout)
	var td timeDecoder
	j.CreatedAt = td.decode(created)
	j.ClaimedAt = td.decode(claimed)
	j.LeaseUntil = td.decode(lease)
	j.FinishedAt = td.decode(finished)
	if td.err != nil {
		return store.JobRecord{}, fmt.Errorf("job %s: %w", j.ID, td.err)
	}
	return j, nil
}
