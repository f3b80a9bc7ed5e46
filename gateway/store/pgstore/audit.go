package pgstore

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/leashpki/leash/gateway/store"
)

// AppendAudit appends one audit row.
func (s *Store) AppendAudit(ctx context.Context, r store.AuditRecord) error {
	if r.Actor == "" || r.Action == "" {
		return fmt.Errorf("append audit: actor and action are required")
	}
	t, err := encodeTime(r.Time)
	if err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO audit (time, actor, action, target, detail) VALUES ($1, $2, $3, $4, $5)`,
		t, r.Actor, r.Action, r.Target, r.Detail); err != nil {
		return fmt.Errorf("append audit %s: %w", r.Action, err)
	}
	return nil
}

// AuditLog lists audit rows newest first.
func (s *Store) AuditLog(ctx context.Context, q store.AuditQuery) ([]store.AuditRecord, error) {
	var where []string
	var args params
	if q.Action != "" {
		where = append(where, "action = "+args.add(q.Action))
	}
	if q.Target != "" {
		where = append(where, "target = "+args.add(q.Target))
	}
	query := `SELECT seq, time, actor, action, target, detail FROM audit`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY seq DESC"
	if q.Limit > 0 {
		query += " LIMIT " + args.add(q.Limit)
	}
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.AuditRecord, error) {
		var r store.AuditRecord
		var t *string
		if err := row.Scan(&r.Seq, &t, &r.Actor, &r.Action, &r.Target, &r.Detail); err != nil {
			return r, err
		}
		var td timeDecoder
		r.Time = td.decode(t)
		return r, td.err
	})
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	return out, nil
}
