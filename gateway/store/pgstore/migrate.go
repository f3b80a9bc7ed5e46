package pgstore

import (
	"context"
	"embed"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Advisory lock keys. PostgreSQL's advisory locks share one bigint key
// space per database; these are "leash" in ASCII followed by a number per
// purpose, so that another application's keys are unlikely to collide.
const (
	lockMigrate int64 = 0x6c_65_61_73_68_00_00_01 // held while migrating
	lockEvents  int64 = 0x6c_65_61_73_68_00_00_02 // held while appending events
)

// migrationFiles holds the schema scripts, named NNNN_topic.sql. Never edit
// a script once released: add the next one.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// migration is one schema script.
type migration struct {
	version int
	name    string // file name, for messages
	sql     string
}

// migrations returns the embedded scripts ordered by version, and checks
// that the versions run 1, 2, ... without a gap or a repeat.
func migrations() ([]migration, error) {
	entries, err := migrationFiles.ReadDir("migrations")
	if err != nil {
		return nil, fmt.Errorf("read embedded migrations: %w", err)
	}
	var out []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || !strings.HasSuffix(e.Name(), ".sql") {
			return nil, fmt.Errorf("embedded migration %s is not named NNNN_topic.sql", e.Name())
		}
		b, err := migrationFiles.ReadFile(path.Join("migrations", e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read embedded migration %s: %w", e.Name(), err)
		}
		out = append(out, migration{version: v, name: e.Name(), sql: string(b)})
	}
	slices.SortFunc(out, func(a, b migration) int { return a.version - b.version })
	for i, m := range out {
		if m.version != i+1 {
			return nil, fmt.Errorf("embedded migration %s should have version %d", m.name, i+1)
		}
	}
	return out, nil
}

// migrate brings the schema to the newest version in one transaction. The
// transaction first takes an advisory lock, so a concurrent Open waits here
// and then reads the version this one recorded. It refuses a schema newer
// than this code knows.
func (s *Store) migrate(ctx context.Context) error {
	scripts, err := migrations()
	if err != nil {
		return err
	}
	latest := len(scripts)
	var from int
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockMigrate); err != nil {
			return fmt.Errorf("migrate: lock: %w", err)
		}
		if err := createVersionTable(ctx, tx); err != nil {
			return err
		}
		from, err = schemaVersion(ctx, tx)
		if err != nil {
			return err
		}
		if err := checkVersion(from, latest); err != nil {
			return err
		}
		for _, m := range scripts[from:] {
			// Without arguments pgx sends the script as one simple query,
			// which may hold several statements.
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return fmt.Errorf("migrate to version %d (%s): %w", m.version, m.name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.version, m.name); err != nil {
				return fmt.Errorf("migrate to version %d: record version: %w", m.version, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if from == latest {
		s.log.Debug("database opened", "schema_version", from)
		return nil
	}
	s.log.Info("database schema migrated", "from_version", from, "to_version", latest)
	return nil
}

// createVersionTable creates schema_migrations when it is missing. Checking
// first lets a role without CREATE privilege open a migrated database.
func createVersionTable(ctx context.Context, q querier) error {
	var exists bool
	if err := q.QueryRow(ctx, `SELECT to_regclass('schema_migrations') IS NOT NULL`).Scan(&exists); err != nil {
		return fmt.Errorf("look for schema_migrations: %w", err)
	}
	if exists {
		return nil
	}
	if _, err := q.Exec(ctx, `
CREATE TABLE schema_migrations (
	version    integer PRIMARY KEY,
	name       text NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now()
)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	return nil
}

func schemaVersion(ctx context.Context, q querier) (int, error) {
	var v int
	if err := q.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
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
