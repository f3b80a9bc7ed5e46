package pgstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/leashpki/leash/gateway/store"
)

// AppendEvents stores events in order, all or none.
//
// The transaction holds an advisory lock until it commits, so appends from
// all gateways take their sequence numbers one transaction at a time. A
// sequence hands out numbers at insert, not at commit: without the lock, a
// reader paging with AfterSeq could see number 11 committed, move past it,
// and never see 10 commit a moment later. SQLite gets this order for free
// from its single writer.
func (s *Store) AppendEvents(ctx context.Context, events []store.EventRecord) error {
	if len(events) == 0 {
		return nil
	}
	times := make([]string, len(events))
	for i, e := range events {
		if e.RunnerID == "" || e.Kind == "" {
			return fmt.Errorf("append events: event %d: runner id and kind are required", i)
		}
		t, err := encodeTime(e.Time)
		if err != nil {
			return fmt.Errorf("append events: event %d: %w", i, err)
		}
		times[i] = t
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockEvents); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		// One round trip; the statements run in order, so sequence
		// numbers follow the slice.
		var b pgx.Batch
		for i, e := range events {
			b.Queue(`
INSERT INTO events (runner_id, time, kind, level, job_id, stream, message, data) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
				e.RunnerID, times[i], e.Kind, e.Level, e.JobID, e.Stream, e.Message, e.Data)
		}
		return tx.SendBatch(ctx, &b).Close()
	})
	if err != nil {
		return fmt.Errorf("append events: %w", err)
	}
	return nil
}

// Events lists events oldest first.
func (s *Store) Events(ctx context.Context, q store.EventQuery) ([]store.EventRecord, error) {
	var args params
	where := []string{"seq > " + args.add(q.AfterSeq)}
	if q.RunnerID != "" {
		where = append(where, "runner_id = "+args.add(q.RunnerID))
	}
	if q.JobID != "" {
		where = append(where, "job_id = "+args.add(q.JobID))
	}
	query := `SELECT seq, runner_id, time, kind, level, job_id, stream, message, data FROM events WHERE ` +
		strings.Join(where, " AND ") + ` ORDER BY seq`
	if q.Limit > 0 {
		query += " LIMIT " + args.add(q.Limit)
	}
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.EventRecord, error) {
		var e store.EventRecord
		var t *string
		if err := row.Scan(&e.Seq, &e.RunnerID, &t, &e.Kind, &e.Level, &e.JobID, &e.Stream, &e.Message, &e.Data); err != nil {
			return e, err
		}
		var td timeDecoder
		e.Time = td.decode(t)
		return e, td.err
	})
	if err != nil {
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
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM events WHERE time < $1`, b)
		if err != nil {
			return err
		}
		total = tag.RowsAffected()
		if keepPerRunner == 0 {
			return nil
		}
		tag, err = tx.Exec(ctx, `
DELETE FROM events WHERE seq IN (
	SELECT seq FROM (
		SELECT seq, row_number() OVER (PARTITION BY runner_id ORDER BY seq DESC) AS rn FROM events
	) AS ranked WHERE rn > $1)`, keepPerRunner)
		if err != nil {
			return err
		}
		total += tag.RowsAffected()
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("prune events: %w", err)
	}
	return int(total), nil
}
