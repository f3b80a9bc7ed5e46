package testpg

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { os.Exit(Run(m)) }

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func connect(ctx context.Context, t *testing.T, u string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

func TestStartGivesFreshEmptyDatabase(t *testing.T) {
	ctx := testContext(t)
	var names []string
	for range 2 {
		conn := connect(ctx, t, Start(t))
		var name string
		var tables int
		err := conn.QueryRow(ctx, `SELECT current_database(),
	(SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public')`).Scan(&name, &tables)
		if err != nil {
			t.Fatalf("query: %v", err)
		}
		if !strings.HasPrefix(name, "leash_test_") {
			t.Errorf("database %q, want a leash_test_ name", name)
		}
		if tables != 0 {
			t.Errorf("database %s has %d tables, want none", name, tables)
		}
		if _, err := conn.Exec(ctx, `CREATE TABLE t (x int)`); err != nil {
			t.Fatalf("create table: %v", err)
		}
		names = append(names, name)
	}
	if names[0] == names[1] {
		t.Errorf("two Starts gave the same database %s", names[0])
	}
}

func TestDatabaseDroppedAtCleanup(t *testing.T) {
	ctx := testContext(t)
	var leaked *pgx.Conn
	var dbURL string
	t.Run("user", func(t *testing.T) {
		dbURL = Start(t)
		// A connection the test forgets to close must not keep the
		// database alive; the outer test closes it afterwards.
		conn, err := pgx.Connect(ctx, dbURL)
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		leaked = conn
	})
	if leaked != nil {
		defer func() { _ = leaked.Close(context.Background()) }()
	}
	cfg, err := pgx.ParseConfig(dbURL)
	if err != nil {
		t.Fatalf("parse %s: %v", dbURL, err)
	}
	admin := connect(ctx, t, server(t))
	var n int
	if err := admin.QueryRow(ctx, `SELECT count(*) FROM pg_database WHERE datname = $1`, cfg.Database).Scan(&n); err != nil {
		t.Fatalf("query: %v", err)
	}
	if n != 0 {
		t.Errorf("database %s still exists after its test ended", cfg.Database)
	}
}

func TestWithDatabase(t *testing.T) {
	tests := []struct {
		base, want string
	}{
		{"postgres://u:p%40ss@db.example:5433/postgres?sslmode=require", "postgres://u:p%40ss@db.example:5433/leash_test_x?sslmode=require"},
		{"postgresql://u@127.0.0.1/", "postgresql://u@127.0.0.1/leash_test_x"},
		{"postgres:///postgres?host=/run/postgresql", "postgres:///leash_test_x?host=/run/postgresql"},
		{"host=/run/postgresql user=u dbname=postgres ", "host=/run/postgresql user=u dbname=postgres dbname=leash_test_x"},
	}
	for _, tt := range tests {
		got, err := withDatabase(tt.base, "leash_test_x")
		if err != nil {
			t.Errorf("withDatabase(%q): %v", tt.base, err)
			continue
		}
		if got != tt.want {
			t.Errorf("withDatabase(%q) = %q, want %q", tt.base, got, tt.want)
		}
		cfg, err := pgx.ParseConfig(got)
		if err != nil {
			t.Errorf("ParseConfig(%q): %v", got, err)
			continue
		}
		if cfg.Database != "leash_test_x" {
			t.Errorf("%q names database %q", got, cfg.Database)
		}
	}
}

func TestCompareVersions(t *testing.T) {
	ordered := []string{"x", "9.6", "10", "15", "15.2", "16"}
	for i := range ordered {
		for j := range ordered {
			got := compareVersions(ordered[i], ordered[j])
			if (got < 0) != (i < j) || (got == 0) != (i == j) {
				t.Errorf("compareVersions(%s, %s) = %d", ordered[i], ordered[j], got)
			}
		}
	}
}
