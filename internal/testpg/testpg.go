// Package testpg gives a test a fresh, empty PostgreSQL database.
//
// Start creates a database with a unique name (leash_test_<random>) and
// drops it when the test ends. The server it lives on is either
//
//   - the server named by LEASH_TEST_POSTGRES_URL: a postgres:// URL or a
//     keyword/value string for a role that may create databases; its own
//     database is used only to create and drop the test databases; or
//   - a throwaway cluster shared by the tests of the test binary: initdb and
//     pg_ctl from $PATH or the newest /usr/lib/postgresql/<version>/bin, run
//     as the postgres user when the tests run as root (initdb refuses root),
//     on a free 127.0.0.1 port with durability switched off, sorting text by
//     ICU's en-US rules where the server can, as production databases do.
//
// The first Start that needs the throwaway cluster starts it; Run stops it
// (pg_ctl stop -m immediate) and removes its files when the tests end, so a
// package whose tests use it runs them through Run:
//
//	func TestMain(m *testing.M) { os.Exit(testpg.Run(m)) }
//
// When neither server is available the test is skipped, or fails in CI
// (CI=true), through testenv.Missing: a skipped database test proves nothing
// there.
//
// A test binary that dies without returning from Run (a panic, a -timeout)
// leaves its cluster running; its directory is named leash-testpg-* in the
// temporary directory, and pg_ctl stop -D <dir>/data stops it.
package testpg

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/leashpki/leash/internal/testenv"
)

// EnvURL names the environment variable that points the tests at an
// existing server instead of a throwaway cluster.
const EnvURL = "LEASH_TEST_POSTGRES_URL"

// opTimeout bounds each administrative step (create or drop a database,
// start or stop the cluster).
const opTimeout = 2 * time.Minute

// local is the throwaway cluster of this test binary, and the package's
// only mutable state. Starting a cluster costs a second or more, so the
// tests of one binary share it: the first Start that needs it starts it
// and Run, which alone knows when the last test has ended, stops it. mu
// guards every field.
var local struct {
	mu      sync.Mutex
	managed bool     // Run is active and will stop the cluster
	c       *cluster // nil until started
	err     error    // why starting failed; every later Start reports it
}

// Run runs the package's tests and then stops the throwaway cluster, if
// one was started, and removes its files. It returns m.Run's exit code, or
// 1 when the tests passed but the cluster could not be stopped.
func Run(m *testing.M) int {
	local.mu.Lock()
	local.managed = true
	local.mu.Unlock()

	code := m.Run()

	local.mu.Lock()
	defer local.mu.Unlock()
	local.managed = false
	if local.c != nil {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		if err := local.c.stop(ctx); err != nil {
			fmt.Fprintf(os.Stderr, "testpg: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
		local.c = nil
	}
	local.err = nil
	return code
}

// Start returns the connection URL of a new, empty database that is
// dropped, with any connections still open to it, when t ends. Stores
// opened on it must be closed through t.Cleanup (registered after Start,
// so they close first).
func Start(t testing.TB) string {
	t.Helper()
	admin := server(t)
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	name, err := databaseName()
	if err != nil {
		t.Fatalf("testpg: %v", err)
	}
	dbURL, err := withDatabase(admin, name)
	if err != nil {
		t.Fatalf("testpg: %v", err)
	}
	if err := adminExec(ctx, admin, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("testpg: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		// FORCE ends the connections a test left open, which would
		// otherwise make the drop fail and the database linger.
		if err := adminExec(ctx, admin, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("testpg: drop database %s: %v", name, err)
		}
	})
	return dbURL
}

// server returns the administrative URL of the server to create test
// databases on, starting the throwaway cluster if need be. When no server
// is available it skips t, or fails it in CI.
func server(t testing.TB) string {
	t.Helper()
	if u := os.Getenv(EnvURL); u != "" {
		return u
	}
	c, err := sharedCluster()
	var missing *unavailableError
	switch {
	case errors.As(err, &missing):
		testenv.Missing(t, "PostgreSQL: "+missing.reason+"; install it (Debian package postgresql) or set "+EnvURL)
	case err != nil:
		t.Fatalf("testpg: %v", err)
	}
	return c.url
}

// sharedCluster returns the binary's throwaway cluster, starting it on
// first use.
func sharedCluster() (*cluster, error) {
	local.mu.Lock()
	defer local.mu.Unlock()
	if !local.managed {
		return nil, errors.New("a throwaway PostgreSQL cluster needs testpg.Run to stop it: add " +
			"func TestMain(m *testing.M) { os.Exit(testpg.Run(m)) } to the package's tests, or set " + EnvURL)
	}
	if local.c == nil && local.err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		local.c, local.err = startCluster(ctx)
	}
	return local.c, local.err
}

// databaseName returns a new random database name.
func databaseName() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random database name: %w", err)
	}
	return "leash_test_" + hex.EncodeToString(b), nil
}

// withDatabase returns the connection string base pointed at database
// name. base is a postgres:// (or postgresql://) URL or a keyword/value
// string, where a later keyword overrides an earlier one.
func withDatabase(base, name string) (string, error) {
	if !strings.HasPrefix(base, "postgres://") && !strings.HasPrefix(base, "postgresql://") {
		return strings.TrimSpace(base) + " dbname=" + name, nil
	}
	u, err := url.Parse(base)
	if err != nil {
		// The message would repeat the URL and its password.
		return "", errors.New("the PostgreSQL URL does not parse")
	}
	u.Path, u.RawPath = "/"+name, ""
	return u.String(), nil
}

// adminExec runs one statement on its own connection to the server at
// admin. CREATE and DROP DATABASE cannot run inside a transaction, and a
// connection of their own keeps them out of any pool a test holds.
func adminExec(ctx context.Context, admin, sql string) error {
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	if _, err := conn.Exec(ctx, sql); err != nil {
		return err
	}
	return nil
}

// ping connects to the server at u and checks that it answers.
func ping(ctx context.Context, u string) error {
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(context.Background()) }()
	return conn.Ping(ctx)
}

// waitReady polls the server at u until it answers or ctx ends.
func waitReady(ctx context.Context, u string) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := ping(ctx, u)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("server not ready: %w (gave up: %w)", err, ctx.Err())
		case <-tick.C:
		}
	}
}
