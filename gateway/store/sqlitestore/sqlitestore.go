package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"modernc.org/sqlite" // also registers the "sqlite" database/sql driver
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/leashpki/leash/gateway/store"
)

// fileMode is the mode the database file is created with and the most any
// existing database file may allow.
const fileMode fs.FileMode = 0o600

// Store is a store.Store backed by one SQLite file. It is safe for concurrent
// use; several Stores, in one process or many, may share a file.
type Store struct {
	db      *sql.DB
	path    string
	log     *slog.Logger
	signals signalHub
	// writeMu serialises this process's write transactions. SQLite takes
	// one writer at a time anyway; queueing here instead of in SQLite's
	// busy handler (which sleeps 1, 2, 5 … 100 ms between retries) cut the
	// p99 of 64 concurrent heartbeats from ~700 ms to ~60 ms (bench/).
	writeMu sync.Mutex
}

var _ store.Store = (*Store)(nil)

// Option configures Open.
type Option func(*options)

type options struct {
	log *slog.Logger
}

// WithLogger makes the store log to l. Without it the store logs nothing.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.log = l
		}
	}
}

// Open opens the SQLite database at path, creating the file with mode 0600
// if it does not exist, and migrates its schema to the newest version this
// code knows. The directory must exist. An existing file that group or
// others can access is refused (ErrPermissions), as is a schema newer than
// this code (ErrSchemaTooNew).
func Open(ctx context.Context, path string, opts ...Option) (*Store, error) {
	o := options{log: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(&o)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	if err := prepareFile(abs); err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	db, err := sql.Open("sqlite", dsn(abs))
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", abs, err)
	}
	s := &Store{db: db, path: abs, log: o.log.With("database", abs)}
	mode, err := journalMode(ctx, db)
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open database %s: %w", abs, err)
	}
	// journal_mode(WAL) does not fail where WAL is unavailable (some network
	// file systems): SQLite keeps its rollback journal. That is still
	// correct, with readers and the writer blocking each other; say so.
	if !strings.EqualFold(mode, "wal") {
		s.log.Warn("database is not in WAL mode; concurrent access will be slower", "journal_mode", mode)
	}
	if err := s.migrate(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open database %s: %w", abs, err)
	}
	return s, nil
}

// Close closes the store's connections.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close database %s: %w", s.path, err)
	}
	return nil
}

// prepareFile creates path with mode 0600 when it is missing, and otherwise
// checks that nobody but its owner can access it. SQLite creates the -wal
// and -shm files next to it with the same mode.
func prepareFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, fileMode)
	switch {
	case err == nil:
		// The umask may have taken bits away but never adds any; set the
		// mode explicitly so the file is exactly 0600.
		cerr := f.Chmod(fileMode)
		if err := f.Close(); err != nil {
			return fmt.Errorf("create %s: %w", path, err)
		}
		if cerr != nil {
			return fmt.Errorf("create %s: %w", path, cerr)
		}
		return nil
	case !errors.Is(err, fs.ErrExist):
		return fmt.Errorf("create %s: %w", path, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("stat %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%w: %s has mode %04o, so group or others can access the certificate and token records; fix it with: chmod 600 %s",
			ErrPermissions, path, perm, path)
	}
	return nil
}

// busyWait bounds how long Open waits out SQLITE_BUSY on the first
// connection, as the busy_timeout pragma does for everything after it.
const busyWait = 10 * time.Second

// journalMode makes the pool's first connection, which runs the pragmas,
// and returns the journal mode it ended in.
//
// Switching a new file to WAL upgrades the pragma's read lock to a write
// lock, and SQLite returns SQLITE_BUSY at once, without its busy handler,
// when another process is making the same switch. Only the first
// connections to a fresh file can meet that (afterwards the file is in WAL
// and the pragma changes nothing), so the first connection is retried here
// with a short backoff until busyWait has passed.
func journalMode(ctx context.Context, db *sql.DB) (string, error) {
	deadline := time.Now().Add(busyWait)
	delay := time.Millisecond
	for {
		var mode string
		err := db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode)
		if err == nil {
			return mode, nil
		}
		if !isBusy(err) || time.Now().Add(delay).After(deadline) {
			return "", fmt.Errorf("connect: %w", err)
		}
		timer := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			timer.Stop()
			return "", fmt.Errorf("connect: %w (gave up waiting: %w)", err, ctx.Err())
		case <-timer.C:
		}
		delay = min(2*delay, 100*time.Millisecond)
	}
}

// isBusy reports whether err is SQLite's SQLITE_BUSY, in any extended form.
func isBusy(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_BUSY
}

// dsn builds the driver's data source name for the absolute path abs. The
// URI form (file:) keeps characters such as '?' and '#' in the path intact,
// and mode=rw stops SQLite from creating a file Open did not create.
func dsn(abs string) string {
	// The driver runs these on every new connection, in this order.
	// busy_timeout comes first so that switching to WAL waits for other
	// processes instead of failing.
	pragmas := []string{
		"busy_timeout(10000)",
		"journal_mode(WAL)",
		"foreign_keys(1)",
		"synchronous(NORMAL)",
	}
	q := url.Values{}
	for _, p := range pragmas {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	q.Set("mode", "rw")
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: q.Encode()}
	return u.String()
}

// timeLayout is the stored form of every time: fixed width, so that text
// order is time order, and nanosecond precision.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

// encodeTime returns the stored form of t, which must fall in the years
// 0000 to 9999.
func encodeTime(t time.Time) (string, error) {
	t = t.UTC()
	if y := t.Year(); y < 0 || y > 9999 {
		return "", fmt.Errorf("time %s is outside the years 0000-9999 the store can hold", t.Format(time.RFC3339Nano))
	}
	return t.Format(timeLayout), nil
}

// encodeOptTime is encodeTime for optional columns: the zero time is NULL.
func encodeOptTime(t time.Time) (sql.NullString, error) {
	if t.IsZero() {
		return sql.NullString{}, nil
	}
	s, err := encodeTime(t)
	if err != nil {
		return sql.NullString{}, err
	}
	return sql.NullString{String: s, Valid: true}, nil
}

// decodeTime parses a stored time; NULL becomes the zero time.
func decodeTime(s sql.NullString) (time.Time, error) {
	if !s.Valid {
		return time.Time{}, nil
	}
	t, err := time.Parse(timeLayout, s.String)
	if err != nil {
		return time.Time{}, fmt.Errorf("stored time %q: %w", s.String, err)
	}
	return t.UTC(), nil
}

// timeDecoder decodes several stored times and keeps the first error, so
// that a scan function reads as a list of fields rather than of checks.
type timeDecoder struct{ err error }

func (d *timeDecoder) decode(s sql.NullString) time.Time {
	if d.err != nil {
		return time.Time{}
	}
	t, err := decodeTime(s)
	d.err = err
	return t
}

// timeEncoder is the encoding counterpart of timeDecoder.
type timeEncoder struct{ err error }

func (e *timeEncoder) encode(name string, t time.Time) string {
	if e.err != nil {
		return ""
	}
	s, err := encodeTime(t)
	if err != nil {
		e.err = fmt.Errorf("%s: %w", name, err)
	}
	return s
}

func (e *timeEncoder) encodeOpt(name string, t time.Time) sql.NullString {
	if e.err != nil {
		return sql.NullString{}
	}
	s, err := encodeOptTime(t)
	if err != nil {
		e.err = fmt.Errorf("%s: %w", name, err)
	}
	return s
}

// affected returns the number of rows res changed.
func affected(res sql.Result) (int64, error) {
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("rows affected: %w", err)
	}
	return n, nil
}
