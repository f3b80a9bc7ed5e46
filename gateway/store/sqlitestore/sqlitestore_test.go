package sqlitestore

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leashpki/leash/ca"
	"github.com/leashpki/leash/gateway/store"
	"github.com/leashpki/leash/gateway/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return openTemp(t, filepath.Join(t.TempDir(), "leash.db"))
	})
}

// openTemp opens the store at path and closes it when the test ends.
func openTemp(t *testing.T, path string, opts ...Option) *Store {
	t.Helper()
	s, err := Open(testContext(t), path, opts...)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestNewFileIsPrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "leash.db")
	s := openTemp(t, path)
	ctx := testContext(t)
	// A write makes SQLite create the -wal and -shm files next to the
	// database; they hold the same records and must be as private.
	tok := ca.TokenRecord{ID: "t", Kind: ca.TokenEnroll, Profile: "runner", Subject: "r1",
		CreatedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}
	if err := s.PutToken(ctx, tok); err != nil {
		t.Fatalf("PutToken: %v", err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		st, err := os.Stat(p)
		if err != nil {
			t.Errorf("stat: %v", err)
			continue
		}
		if got := st.Mode().Perm(); got != 0o600 {
			t.Errorf("%s has mode %04o, want 0600", filepath.Base(p), got)
		}
	}
	var mode string
	if err := s.db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		t.Fatalf("journal_mode: %v", err)
	}
	if !strings.EqualFold(mode, "wal") {
		t.Errorf("journal_mode = %s, want wal", mode)
	}
}

func TestExistingFilePermissions(t *testing.T) {
	tests := []struct {
		mode    fs.FileMode
		wantErr bool
	}{
		{0o600, false},
		{0o700, false},
		{0o640, true},
		{0o620, true},
		{0o604, true},
		{0o660, true},
		{0o644, true},
	}
	for _, tt := range tests {
		t.Run(tt.mode.String(), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "leash.db")
			s := openTemp(t, path)
			if err := s.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if err := os.Chmod(path, tt.mode); err != nil {
				t.Fatal(err)
			}
			s2, err := Open(testContext(t), path)
			if !tt.wantErr {
				if err != nil {
					t.Fatalf("Open of a mode %04o file: %v", tt.mode, err)
				}
				_ = s2.Close()
				return
			}
			if err == nil {
				_ = s2.Close()
				t.Fatalf("Open of a mode %04o file succeeded, want ErrPermissions", tt.mode)
			}
			if !errors.Is(err, ErrPermissions) {
				t.Errorf("Open: %v, want ErrPermissions", err)
			}
			if want := "chmod 600 " + path; !strings.Contains(err.Error(), want) {
				t.Errorf("Open: %q does not say how to fix it (%q)", err, want)
			}
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != tt.mode {
				t.Errorf("refused Open changed the mode to %04o", st.Mode().Perm())
			}
		})
	}
}

func TestReopenKeepsData(t *testing.T) {
	ctx := testContext(t)
	path := filepath.Join(t.TempDir(), "leash.db")
	at := time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.UTC)
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	cert := ca.CertRecord{Serial: "12", Profile: "server", Subject: "gw", SANs: []string{"gw.example.com"},
		NotBefore: at, NotAfter: at.Add(time.Hour), IssuedAt: at, DER: []byte{1, 2, 3}}
	tok := ca.TokenRecord{ID: "t1", Kind: ca.TokenEnroll, Profile: "runner", Subject: "r1", CreatedAt: at, ExpiresAt: at.Add(time.Hour)}
	crl := ca.CRLRecord{Number: 3, ThisUpdate: at, NextUpdate: at.Add(time.Hour), Duration: time.Hour, DER: []byte{4}}
	for _, err := range []error{
		s.PutCertificate(ctx, cert),
		s.Revoke(ctx, ca.Revocation{Serial: "12", ReasonCode: 1, Reason: "key compromise", RevokedAt: at}),
		s.PutToken(ctx, tok),
		s.SpendToken(ctx, "t1", at),
		s.PutCRL(ctx, crl),
	} {
		if err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = openTemp(t, path)
	gotCert, err := s.Certificate(ctx, "12")
	if err != nil {
		t.Fatalf("Certificate after reopen: %v", err)
	}
	if gotCert.Subject != "gw" || !gotCert.RevokedAt.Equal(at) || !bytes.Equal(gotCert.DER, cert.DER) {
		t.Errorf("Certificate after reopen = %+v", gotCert)
	}
	if err := s.SpendToken(ctx, "t1", at.Add(time.Second)); !errors.Is(err, ca.ErrTokenUsed) {
		t.Errorf("SpendToken of a token spent before reopen: %v, want ErrTokenUsed", err)
	}
	gotCRL, err := s.CRL(ctx)
	if err != nil {
		t.Fatalf("CRL after reopen: %v", err)
	}
	if gotCRL.Number != 3 || !bytes.Equal(gotCRL.DER, crl.DER) {
		t.Errorf("CRL after reopen = %+v", gotCRL)
	}
	if got := appliedVersions(t, path); !slices.Equal(got, knownVersions()) {
		t.Errorf("schema_migrations after reopen = %v, want %v (each migration recorded once)", got, knownVersions())
	}
}

func TestFutureSchemaRefused(t *testing.T) {
	ctx := testContext(t)
	path := filepath.Join(t.TempDir(), "leash.db")
	s := openTemp(t, path)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	future := len(migrations()) + 1
	execRaw(t, path, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, 'later')`, future)

	s2, err := Open(ctx, path)
	if err == nil {
		_ = s2.Close()
		t.Fatal("Open of a database with a newer schema succeeded")
	}
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Errorf("Open: %v, want ErrSchemaTooNew", err)
	}
	for _, want := range []string{strconv.Itoa(future), strconv.Itoa(len(migrations())), path} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Open: %q does not mention %q", err, want)
		}
	}
	want := append(knownVersions(), future)
	if got := appliedVersions(t, path); !slices.Equal(got, want) {
		t.Errorf("schema_migrations after refused Open = %v, want %v untouched", got, want)
	}
}

func TestTwoStoresSpendRace(t *testing.T) {
	// Two Stores are two connection pools on one file, as two processes
	// would have; SQLite's file locks are all that keeps them apart.
	path := filepath.Join(t.TempDir(), "leash.db")
	a := openTemp(t, path)
	b := openTemp(t, path)
	storetest.SpendRace(t, []ca.Store{a, b}, 20, 10)
}

func TestTwoStoresRaces(t *testing.T) {
	path := filepath.Join(t.TempDir(), "leash.db")
	a := openTemp(t, path)
	b := openTemp(t, path)
	t.Run("claims", func(t *testing.T) { storetest.ClaimRace(t, []store.Store{a, b}, 30, 6) })
	t.Run("offline", func(t *testing.T) { storetest.MarkOfflineRace(t, []store.Store{a, b}, 30, 6) })
	t.Run("locks", func(t *testing.T) { storetest.LockRace(t, a, b) })
}

func TestConcurrentOpenOfNewFile(t *testing.T) {
	ctx := testContext(t)
	path := filepath.Join(t.TempDir(), "leash.db")
	const n = 4
	stores := make([]*Store, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			stores[i], errs[i] = Open(ctx, path)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open %d: %v", i, err)
			continue
		}
		if err := stores[i].Close(); err != nil {
			t.Errorf("Close %d: %v", i, err)
		}
	}
	if got := appliedVersions(t, path); !slices.Equal(got, knownVersions()) {
		t.Errorf("schema_migrations = %v, want %v (each migration applied once)", got, knownVersions())
	}
}

func TestOpenPaths(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		path    string
		wantErr bool
	}{
		{"characters a URI would misread", filepath.Join(dir, "a b?c#d%20e", "leash.db"), false},
		{"missing directory", filepath.Join(dir, "missing", "leash.db"), true},
		{"directory", dir, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !tt.wantErr {
				if err := os.MkdirAll(filepath.Dir(tt.path), 0o700); err != nil {
					t.Fatal(err)
				}
			}
			s, err := Open(testContext(t), tt.path)
			if tt.wantErr {
				if err == nil {
					_ = s.Close()
					t.Fatalf("Open(%q) succeeded, want an error", tt.path)
				}
				if !strings.Contains(err.Error(), tt.path) {
					t.Errorf("Open: %q does not name the path %q", err, tt.path)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open(%q): %v", tt.path, err)
			}
			if err := s.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if got := appliedVersions(t, tt.path); !slices.Equal(got, knownVersions()) {
				t.Errorf("the file at %q has schema versions %v, want %v", tt.path, got, knownVersions())
			}
		})
	}
}

func TestUnsetTimesRefused(t *testing.T) {
	ctx := testContext(t)
	s := openTemp(t, filepath.Join(t.TempDir(), "leash.db"))
	now := time.Now()
	tok := ca.TokenRecord{ID: "t", Kind: ca.TokenEnroll, Profile: "runner", Subject: "r1", CreatedAt: now, ExpiresAt: now}
	if err := s.PutToken(ctx, tok); err != nil {
		t.Fatalf("PutToken: %v", err)
	}
	// A zero time would be stored as NULL and leave the token open.
	if err := s.SpendToken(ctx, "t", time.Time{}); err == nil {
		t.Error("SpendToken with a zero time succeeded")
	}
	if err := s.RevokeToken(ctx, "t", time.Time{}); err == nil {
		t.Error("RevokeToken with a zero time succeeded")
	}
	if err := s.Revoke(ctx, ca.Revocation{Serial: "1", ReasonCode: 1}); err == nil {
		t.Error("Revoke with a zero RevokedAt succeeded")
	}
	if err := s.SpendToken(ctx, "t", now); err != nil {
		t.Errorf("SpendToken after refused calls: %v, want the token still open", err)
	}
	if _, err := s.Revocation(ctx, "1"); !errors.Is(err, ca.ErrNotFound) {
		t.Errorf("Revocation after a refused Revoke: %v, want ErrNotFound", err)
	}
}

func TestEmptyValues(t *testing.T) {
	// The schema's NOT NULL columns take empty values: a record without DER
	// or SANs is stored, not refused, and comes back empty.
	ctx := testContext(t)
	s := openTemp(t, filepath.Join(t.TempDir(), "leash.db"))
	now := time.Now()
	if err := s.PutCertificate(ctx, ca.CertRecord{Serial: "1", NotBefore: now, NotAfter: now, IssuedAt: now}); err != nil {
		t.Fatalf("PutCertificate: %v", err)
	}
	cert, err := s.Certificate(ctx, "1")
	if err != nil {
		t.Fatalf("Certificate: %v", err)
	}
	if len(cert.DER) != 0 || len(cert.SANs) != 0 || cert.Profile != "" {
		t.Errorf("Certificate = %+v, want empty DER, SANs and profile", cert)
	}
	if err := s.PutCRL(ctx, ca.CRLRecord{Number: 0, ThisUpdate: now, NextUpdate: now}); err != nil {
		t.Fatalf("PutCRL: %v", err)
	}
	crl, err := s.CRL(ctx)
	if err != nil {
		t.Fatalf("CRL: %v", err)
	}
	if crl.Number != 0 || len(crl.DER) != 0 {
		t.Errorf("CRL = %+v, want number 0 without DER", crl)
	}
	if err := s.PutCRL(ctx, ca.CRLRecord{Number: -1, ThisUpdate: now, NextUpdate: now}); err == nil {
		t.Error("PutCRL with a negative number succeeded")
	}
}

func TestWithLogger(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	path := filepath.Join(t.TempDir(), "leash.db")
	openTemp(t, path, WithLogger(log))
	out := buf.String()
	for _, want := range []string{"database schema migrated", "from_version=0", "to_version=" + strconv.Itoa(len(migrations())), path} {
		if !strings.Contains(out, want) {
			t.Errorf("log %q lacks %q", out, want)
		}
	}
}

// execRaw runs one statement on the file at path without going through the
// store, as another tool (or a newer leash) would.
func execRaw(t *testing.T, path, query string, args ...any) {
	t.Helper()
	db, err := sql.Open("sqlite", dsn(path))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	if _, err := db.ExecContext(testContext(t), query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// appliedVersions reads schema_migrations from the file at path.
func appliedVersions(t *testing.T, path string) []int {
	t.Helper()
	db, err := sql.Open("sqlite", dsn(path))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	rows, err := db.QueryContext(testContext(t), `SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatalf("read schema_migrations: %v", err)
	}
	defer func() { _ = rows.Close() }()
	var out []int
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// knownVersions is 1..N for the N migrations this code knows.
func knownVersions() []int {
	var out []int
	for i := range migrations() {
		out = append(out, i+1)
	}
	return out
}
