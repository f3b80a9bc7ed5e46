package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/leashpki/leash/gateway/store"
)

// AppendEvents stores events in order, all or none.
func (s *Store) AppendEvents(ctx context.Context, events []store.EventRecord) error {
	if len(events) == 0 {
		return nil
	}
	type row struct {
		e store.EventRecord
		t string
	}
	rows := make([]row, 0, len(events))
	for i, e := range events {
		if e.RunnerID == "" || e.Kind == "" {
			return fmt.Errorf("append events: event %d: runner id and kind are required", i)
		}
		t, err := encodeTime(e.Time)
		if err != nil {
			return fmt.Errorf("append events: event %d: %w", i, err)
		}
		rows = append(rows, row{e, t})
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `
INSERT INTO events (runner_id, time, kind, level, job_id, stream, message, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, r := range rows {
			if _, err := stmt.ExecContext(ctx, r.e.RunnerID, r.t, r.e.Kind, r.e.Level, r.e.JobID, r.e.Stream,
				r.e.Message, r.e.Data); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("append events: %w", err)
	}
	return nil
}

// Events lists events oldest first.
func (s *Store) Events(ctx context.Context, q store.EventQuery) ([]store.EventRecord, error) {
	where := []string{"seq > ?"}
	args := []any{q.AfterSeq}
	if q.RunnerID != "" {
		where = append(where, "runner_id = ?")
		args = append(args, q.RunnerID)
	}
	if q.JobID != "" {
		where = append(where, "job_id = ?")
		args = append(args, q.JobID)
	}
	query := `SELECT seq, runner_id, time, kind, level, job_id, stream, message, data FROM events WHERE ` +
		strings.Join(where, " AND ") + ` ORDER BY seq`
	if q.Limit > 0 {
		query += fmt.Sprintf(" LIMIT %d", q.Limit)
	}
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	defer rows.Close()
	var out []store.EventRecord
	for rows.Next() {
		var e store.EventRecord
		var t sql.NullString
		if err := rows.Scan(&e.Seq, &e.RunnerID, &t, &e.Kind, &e.Level, &e.JobID, &e.Stream, &e.Message, &e.Data); err != nil {
			return nil, fmt.Errorf("list events: %w", err)
		}
		var td timeDecoder
		e.Time = td.decode(t)
		if td.err != nil {
			return nil, fmt.Errorf("list events: %w", td.err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	return out, nil
}

// PruneEvents deletes events older than before and, per runner, all but
// the newest keepPerRunner.
func (s *Store) PruneEvents(ctx context.Context, before time.Time, keepPerRunner int) (int, error) {
	if keepPerRunner < 0 {
		return 0, errors.New("prune events: keepPerRunner must not be negative")
	}
	b, err := encodeTime(before)
	if err != nil {
		return 0, fmt.Errorf("prune events: %w", err)
	}
	var total int64
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM events WHERE time < ?`, b)
		if err != nil {
			return err
		}
		n, err := affected(res)
		if err != nil {
			return err
		}
		total += n
		if keepPerRunner == 0 {
			return nil
		}
		res, err = tx.ExecContext(ctx, `
DELETE FROM events WHERE seq IN (
	SELECT seq FROM (
		SELECT seq, ROW_NUMBER() OVER (PARTITION BY runner_id ORDER BY seq DESC) AS rn FROM events
	) WHERE rn > ?)`, keepPerRunner)
		if err != nil {
			return err
		}
		n, err = affected(res)
		total += n
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("prune events: %w", err)
	}
	return int(total), nil
}
