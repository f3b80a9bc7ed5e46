package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// migrations returns the schema scripts in order. Version N of the schema is
// the first N scripts. Never edit a script once released: append a new one.
func migrations() []string {
	return []string{
		// 1: the certificate authority's records.
		`
CREATE TABLE certificates (
	serial     TEXT PRIMARY KEY,
	profile    TEXT NOT NULL,
	subject    TEXT NOT NULL,
	sans       TEXT NOT NULL DEFAULT '[]', -- JSON array of strings
	not_before TEXT NOT NULL,
	not_after  TEXT NOT NULL,
	issued_at  TEXT NOT NULL,
	der        BLOB NOT NULL
) STRICT;
CREATE INDEX certificates_issued_at ON certificates (issued_at);
CREATE INDEX certificates_not_after ON certificates (not_after);
CREATE INDEX certificates_subject ON certificates (subject);

-- A revocation may name a serial this store never issued, so no foreign key.
CREATE TABLE revocations (
	serial      TEXT PRIMARY KEY,
	reason_code INTEGER NOT NULL,
	reason      TEXT NOT NULL,
	revoked_at  TEXT NOT NULL,
	expires_at  TEXT
) STRICT;
CREATE INDEX revocations_revoked_at ON revocations (revoked_at);

CREATE TABLE tokens (
	id          TEXT PRIMARY KEY,
	kind        TEXT NOT NULL,
	profile     TEXT NOT NULL,
	subject     TEXT NOT NULL,
	created_at  TEXT NOT NULL,
	expires_at  TEXT NOT NULL,
	used_at     TEXT,
	revoked_at  TEXT,
	cert_serial TEXT
) STRICT;
CREATE INDEX tokens_created_at ON tokens (created_at);
CREATE INDEX tokens_subject ON tokens (subject);

CREATE TABLE crls (
	number      INTEGER PRIMARY KEY,
	this_update TEXT NOT NULL,
	next_update TEXT NOT NULL,
	duration_ns INTEGER NOT NULL,
	der         BLOB NOT NULL
) STRICT;
`,
		// 2: runner registrations, the job queue, events and the audit log.
		`
CREATE TABLE runners (
	id             TEXT PRIMARY KEY,
	status         TEXT NOT NULL,
	hostname       TEXT NOT NULL,
	os             TEXT NOT NULL,
	arch           TEXT NOT NULL,
	version        TEXT NOT NULL,
	labels         TEXT NOT NULL DEFAULT '{}', -- JSON object
	capabilities   TEXT NOT NULL DEFAULT '[]', -- JSON array
	cert_serial    TEXT NOT NULL,
	cert_not_after TEXT,
	first_seen     TEXT NOT NULL,
	last_seen      TEXT NOT NULL,
	load1          REAL NOT NULL DEFAULT 0,
	mem_used       INTEGER NOT NULL DEFAULT 0,
	mem_total      INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX runners_status_last_seen ON runners (status, last_seen);

CREATE TABLE jobs (
	id           TEXT PRIMARY KEY,
	runner       TEXT NOT NULL,
	kind         TEXT NOT NULL,
	command      TEXT NOT NULL DEFAULT '',
	timeout_ns   INTEGER NOT NULL DEFAULT 0,
	state        TEXT NOT NULL,
	attempts     INTEGER NOT NULL DEFAULT 0,
	submitted_by TEXT NOT NULL DEFAULT '',
	created_at   TEXT NOT NULL,
	claimed_at   TEXT,
	lease_until  TEXT,
	finished_at  TEXT,
	result       BLOB
) STRICT;
CREATE INDEX jobs_runner_state ON jobs (runner, state, created_at);
CREATE INDEX jobs_created_at ON jobs (created_at);

CREATE TABLE events (
	seq       INTEGER PRIMARY KEY AUTOINCREMENT,
	runner_id TEXT NOT NULL,
	time      TEXT NOT NULL,
	kind      TEXT NOT NULL,
	level     TEXT NOT NULL DEFAULT '',
	job_id    TEXT NOT NULL DEFAULT '',
	stream    TEXT NOT NULL DEFAULT '',
	message   TEXT NOT NULL DEFAULT '',
	data      TEXT NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX events_runner_seq ON events (runner_id, seq);
CREATE INDEX events_time ON events (time);

CREATE TABLE audit (
	seq    INTEGER PRIMARY KEY AUTOINCREMENT,
	time   TEXT NOT NULL,
	actor  TEXT NOT NULL,
	action TEXT NOT NULL,
	target TEXT NOT NULL DEFAULT '',
	detail TEXT NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX audit_action ON audit (action, seq);
CREATE INDEX audit_target ON audit (target, seq);
`,
		// 3: the blob key space and named locks (certmagic's storage).
		`
-- Keys are slash-separated paths. Their BINARY collation compares bytes, so
-- the keys below "a/b" are exactly those from "a/b/" up to, not including,
-- "a/b0" ('0' follows '/'), and prefix queries are range scans of the
-- primary key.
CREATE TABLE blobs (
	key      TEXT PRIMARY KEY,
	value    BLOB NOT NULL,
	modified TEXT NOT NULL
) STRICT;

CREATE TABLE locks (
	name    TEXT PRIMARY KEY,
	owner   TEXT NOT NULL,
	expires TEXT NOT NULL
) STRICT;
`,
	}
}

// migrate brings the schema to the newest version, one script per
// transaction. It refuses a schema newer than this code knows.
func (s *Store) migrate(ctx context.Context) error {
	const create = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    INTEGER PRIMARY KEY,
	applied_at TEXT NOT NULL
) STRICT`
	if _, err := s.db.ExecContext(ctx, create); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	scripts := migrations()
	latest := len(scripts)
	from, err := schemaVersion(ctx, s.db)
	if err != nil {
		return err
	}
	if err := checkVersion(from, latest); err != nil {
		return err
	}
	if from == latest {
		s.log.Debug("database opened", "schema_version", from)
		return nil
	}
	for {
		done, err := s.step(ctx, scripts)
		if err != nil {
			return err
		}
		if done {
			break
		}
	}
	s.log.Info("database schema migrated", "from_version", from, "to_version", latest)
	return nil
}

// step applies the next missing script in one transaction and reports
// whether the schema is already up to date. The version is read inside the
// transaction (which holds SQLite's write lock from its start), so a process
// that lost a race to migrate sees the winner's work and applies nothing.
func (s *Store) step(ctx context.Context, scripts []string) (done bool, err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("migrate: begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	v, err := schemaVersion(ctx, tx)
	if err != nil {
		return false, err
	}
	if err := checkVersion(v, len(scripts)); err != nil {
		return false, err
	}
	if v == len(scripts) {
		return true, tx.Commit()
	}
	next := v + 1
	if _, err := tx.ExecContext(ctx, scripts[v]); err != nil {
		return false, fmt.Errorf("migrate to version %d: %w", next, err)
	}
	now, err := encodeTime(time.Now())
	if err != nil {
		return false, fmt.Errorf("migrate to version %d: %w", next, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`, next, now); err != nil {
		return false, fmt.Errorf("migrate to version %d: record version: %w", next, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("migrate to version %d: commit: %w", next, err)
	}
	s.log.Debug("database schema migration applied", "version", next)
	return false, nil
}

// querier is what schemaVersion needs of a *sql.DB or *sql.Tx.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func schemaVersion(ctx context.Context, q querier) (int, error) {
	var v int
	if err := q.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}

func checkVersion(have, known int) error {
	if have > known {
		return fmt.Errorf("%w: the database is at schema version %d but this leash knows versions up to %d; run the newer leash that migrated it, or restore a backup taken before the upgrade",
			ErrSchemaTooNew, have, known)
	}
	return nil
}
