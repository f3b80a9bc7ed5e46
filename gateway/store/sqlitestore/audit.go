package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

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
	if _, err := s.db.ExecContext(ctx, `INSERT INTO audit (time, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)`,
		t, r.Actor, r.Action, r.Target, r.Detail); err != nil {
		return fmt.Errorf("append audit %s: %w", r.Action, err)
	}
	return nil
}

// AuditLog lists audit rows newest first.
func (s *Store) AuditLog(ctx context.Context, q store.AuditQuery) ([]store.AuditRecord, error) {
	var where []string
	var args []any
	if q.Action != "" {
		where = append(where, "action = ?")
		args = append(args, q.Action)
	}
	if q.Target != "" {
		where = append(where, "target = ?")
		args = append(args, q.Target)
	}
	query := `SELECT seq, time, actor, action, target, detail FROM audit`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY seq DESC"
	if q.Limit > 0 {
		query += fmt.Sprintf(" LIMIT %d", q.Limit)
	}
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	defer rows.Close()
	var out []store.AuditRecord
	for rows.Next() {
		var r store.AuditRecord
		var t sql.NullString
		if err := rows.Scan(&r.Seq, &t, &r.Actor, &r.Action, &r.Target, &r.Detail); err != nil {
			return nil, fmt.Errorf("audit log: %w", err)
		}
		var td timeDecoder
		r.Time = td.decode(t)
		if td.err != nil {
			return nil, fmt.Errorf("audit log: %w", td.err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	return out, nil
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("ping database %s: %w", s.path, err)
	}
	return nil
}
